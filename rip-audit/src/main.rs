//! `rip-audit`: see `man/rip-audit.1`.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: auditing many units allocates many small strings, and the
/// system allocator was a third of the lean mode's time (issue 9).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = rip_audit::cli::Cli::parse();
    rip_core::main_with("rip-audit", || {
        rip_audit::run(&args, std::io::stdin().lock(), std::io::stdout().lock())
    })
}
