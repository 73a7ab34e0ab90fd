//! Command-line definition of rip-user.

use std::path::PathBuf;

use clap::Parser;
use rip_core::{InputArgs, SystemArgs};

/// Create and converge each app's system user and group, and the backup user
///
/// Reads app specs (NDJSON or a JSON array) on stdin and makes
/// the root's /etc/{passwd,group,shadow,gshadow} hold, for every app, a locked
/// system user and its private group with the spec's home and shell, ids
/// taken top-down from the system range of its /etc/login.defs (uid ==
/// gid where free). Existing accounts are brought in line; conflicts are
/// refused before anything is written. The backup user is made a member of
/// the group of every app with backups enabled, and of no other group. The
/// account files are edited under the same locks as shadow-utils, with
/// `-` backup copies. Each record is printed back with a "rip_user" key.
#[derive(Debug, Parser)]
#[command(name = "rip-user", version)]
pub struct Cli {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub system: SystemArgs,

    /// Remove the apps' accounts instead of creating them
    ///
    /// Removes each app's user (only one rip-user created or adopted: its
    /// GECOS is "rip app NAME"), its private group when no one else uses
    /// it, and the backup user's membership. The home is kept unless
    /// --purge is given.
    #[arg(long)]
    pub remove: bool,

    /// With --remove: first archive each home to /var/backups/rip-user/ under the root
    ///
    /// Writes NAME-SECONDS.tar.gz (mode 0600) with tar, which stores
    /// symlinks as symlinks and stays on one file system.
    #[arg(long, requires = "remove")]
    pub archive: bool,

    /// With --remove: delete each home directory (after --archive, if given)
    ///
    /// Only a real directory owned by the removed user is deleted; symlinks
    /// inside it are removed, never followed.
    #[arg(long, requires = "remove")]
    pub purge: bool,

    /// Take over existing system users that rip-user did not create
    ///
    /// Without it an existing user is only converged when its GECOS is
    /// rip-user's marker ("rip app NAME"); any other account (a package's
    /// own, such as prometheus or systemd-network) is refused. With it, an
    /// existing user with a uid in the system range of login.defs (never
    /// root, never a regular account) is adopted: its GECOS, home and shell
    /// are converged, its password locked. Privileged groups are never
    /// adopted, --adopt or not.
    #[arg(long)]
    pub adopt: bool,

    /// Name of the backup user
    ///
    /// An existing account of that name is adopted when rip-user created it
    /// (GECOS "rip backup"), when it is Debian's static `backup` (uid 34,
    /// the default name), or with --adopt: its home and shell are converged
    /// and the changes reported.
    #[arg(long, value_name = "NAME", default_value = "backup")]
    pub backup_user: String,

    /// Home of the backup user [default: /home/NAME]
    ///
    /// Checked like an app's home: absolute and normalized, at least two
    /// levels deep, not in a system directory (/etc, /usr, /var, ...), not
    /// another account's home, and neither inside nor around an app's home.
    #[arg(long, value_name = "DIR")]
    pub backup_home: Option<String>,

    /// Install this SSH public key for the backup user, restricted to rrsync -ro
    ///
    /// The file must hold exactly one public key line (ssh-ed25519, ssh-rsa,
    /// ecdsa-sha2-*, sk-*), without options. It replaces
    /// ~backup/.ssh/authorized_keys with one line
    /// `restrict,command="/usr/bin/rrsync -ro DIR" KEY`, so the key can only
    /// pull files read-only below --backup-root, never get a shell.
    #[arg(long, value_name = "PATH")]
    pub backup_key: Option<PathBuf>,

    /// Directory the backup key is confined to (rrsync's DIR)
    ///
    /// Pull paths are relative to it: with the default /home, app1's
    /// snapshots are `backup@HOST:app1/data/backups/`. Every backups
    /// directory of the input must lie below it.
    #[arg(long, value_name = "DIR", default_value = "/home")]
    pub backup_root: String,

    /// Seconds to wait for the account-file locks held by others
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub lock_timeout: u64,
}
