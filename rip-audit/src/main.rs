//! `rip-audit`: see `man/rip-audit.1`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = rip_audit::cli::Cli::parse();
    rip_core::main_with("rip-audit", || {
        rip_audit::run(&args, std::io::stdin().lock(), std::io::stdout().lock())
    })
}
