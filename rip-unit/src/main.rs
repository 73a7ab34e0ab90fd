//! `rip-unit`: see `man/rip-unit.1`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = rip_unit::cli::Cli::parse();
    rip_core::main_with("rip-unit", || {
        rip_unit::run(&args, std::io::stdin().lock(), std::io::stdout().lock())
    })
}
