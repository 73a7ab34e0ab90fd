//! `rip-perms`: see `man/rip-perms.1`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = rip_perms::cli::Cli::parse();
    rip_core::main_with("rip-perms", || {
        rip_perms::run(&args, std::io::stdin().lock(), std::io::stdout().lock())
    })
}
