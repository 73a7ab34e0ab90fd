//! Command-line definition of rip-perms.

use clap::Parser;
use rip_core::{InputArgs, SystemArgs};

/// Create each app's home layout and set owners and modes by policy, safely
///
/// Reads app specs (or the output of rip-user) on stdin, creates the home,
/// bin/, data/, the backups dir and every rw_paths entry, and brings every
/// file and directory under them to the owner and mode the layout policy
/// asks for, removing any POSIX ACL. It walks by directory file
/// descriptors and never follows a symlink, so an app that controls its own
/// tree cannot turn it against the host. Writes each record back with a
/// "rip_perms" result added.
#[derive(Debug, Parser)]
#[command(name = "rip-perms", version)]
pub struct Cli {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub system: SystemArgs,

    /// Print the layout policy as JSON and exit
    ///
    /// Without specs on stdin (a terminal, or empty input) prints the default
    /// policy. With specs, prints one line per app: the policy with the
    /// app's "perms" overrides merged in, and the effective mode of each
    /// directory of its layout. Touches nothing.
    #[arg(long)]
    pub show_policy: bool,

    /// Walker threads (default: the number of CPUs)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,

    /// List at most N changed and N refused entries per app (counts stay exact)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_entries: usize,

    /// List every changed and refused entry (no cap)
    #[arg(long, short)]
    pub verbose: bool,
}
