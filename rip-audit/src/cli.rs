//! Command-line definition of rip-audit.

use clap::Parser;
use rip_core::{InputArgs, SystemArgs};

/// SCAFFOLD: replace with the real description.
#[derive(Debug, Parser)]
#[command(name = "rip-audit", version)]
pub struct Cli {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub system: SystemArgs,
}
