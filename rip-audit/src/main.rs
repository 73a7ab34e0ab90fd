//! `rip-audit`: see `man/rip-audit.1`.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the full mode allocates much (every assignment, check row and
/// finding of every unit); with glibc's allocator it took half as long
/// again. Built without transparent huge pages: zeroing a 2 MiB page on
/// first touch cost the lean `--format scores` run more than it saved.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = rip_audit::cli::Cli::parse();
    rip_core::main_with("rip-audit", || {
        rip_audit::run(&args, std::io::stdin().lock(), std::io::stdout().lock())
    })
}
