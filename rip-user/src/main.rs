//! `rip-user`: see `man/rip-user.1`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = rip_user::cli::Cli::parse();
    rip_core::main_with("rip-user", || {
        rip_user::run(&args, std::io::stdin().lock(), std::io::stdout().lock())
    })
}
