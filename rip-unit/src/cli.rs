//! Command-line definition of rip-unit.

use clap::Parser;
use rip_core::{InputArgs, SystemArgs};

/// Write a hardened systemd unit for each app spec
///
/// Reads app specs (NDJSON or a JSON array) on stdin and writes
/// ROOT/etc/systemd/system/NAME.service for each, plus NAME.socket for
/// apps with the strict profile. Prints each record with a "rip_unit" key
/// added. User drop-ins in NAME.service.d/ are never touched, only read
/// and reported.
#[derive(Debug, Parser)]
#[command(name = "rip-unit", version)]
pub struct Cli {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub system: SystemArgs,

    /// Run `systemctl daemon-reload` when a unit file changed (needs --root /)
    #[arg(long, conflicts_with = "print")]
    pub reload: bool,

    /// Enable the units (with --root DIR, offline through `systemctl --root`)
    #[arg(long, conflicts_with_all = ["print", "remove"])]
    pub enable: bool,

    /// Start the units, or restart them when their file changed (needs --root /)
    ///
    /// Implies --reload.
    #[arg(long, conflicts_with_all = ["print", "remove"])]
    pub now: bool,

    /// Stop, disable and remove each app's unit (and socket) instead
    ///
    /// The user's drop-in directories are left in place and reported.
    #[arg(long, conflicts_with = "print")]
    pub remove: bool,

    /// Take over a unit name that is already in use
    ///
    /// Without it, rip-unit refuses (exit 2, nothing written) to replace
    /// NAME.service or NAME.socket in /etc/systemd/system when rip-unit did
    /// not write it, and to shadow a unit of that name in
    /// /run/systemd/system, /usr/local/lib/systemd/system,
    /// /usr/lib/systemd/system or /lib/systemd/system (or an init script
    /// /etc/init.d/NAME). With it, a foreign file is moved to
    /// FILE.rip-unit-old (systemd ignores that name) and both are noted.
    #[arg(long, conflicts_with_all = ["print", "remove"])]
    pub force: bool,

    /// Print the unit files on stdout instead of writing them or any JSON
    #[arg(long, alias = "stdout")]
    pub print: bool,
}
