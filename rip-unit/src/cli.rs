//! Command-line definition of rip-unit.

use clap::Parser;
use rip_core::{InputArgs, SystemArgs};

/// SCAFFOLD: replace with the real description.
#[derive(Debug, Parser)]
#[command(name = "rip-unit", version)]
pub struct Cli {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub system: SystemArgs,
}
