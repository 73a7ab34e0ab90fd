//! `rip-scrape`: see `man/rip-scrape.1`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = rip_scrape::cli::Cli::parse();
    rip_core::main_with("rip-scrape", || {
        rip_scrape::run(&args, std::io::stdin().lock(), std::io::stdout().lock())
    })
}
