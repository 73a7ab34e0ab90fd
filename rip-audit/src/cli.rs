//! Command-line definition of rip-audit.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use rip_core::{InputArgs, SystemArgs};

use crate::finding::Severity;

/// Audit each app's systemd unit, processes and files; change nothing
///
/// For every app spec on stdin (or every unit file given with --unit),
/// rip-audit computes the exposure score exactly as systemd 252's
/// `systemd-analyze security --offline=true` does, then reports what that
/// score cannot see: unit lint, declared vs observed state of running
/// services, and which principal can read or write which app's files.
/// Each input record is written back with a `rip_audit` key.
#[derive(Debug, Parser)]
#[command(name = "rip-audit", version)]
pub struct Cli {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub system: SystemArgs,

    /// Audit these unit files instead of reading app specs
    ///
    /// Each file is found as systemd-analyze finds it: by its name on the
    /// unit search path (the files' directories first; under --root the
    /// root's path), aliases followed, with the drop-ins of every name of
    /// the unit (see UNIT LOOKUP). The file checks that need an app spec
    /// (home, data, backups) are skipped.
    #[arg(long = "unit", value_name = "FILE", num_args = 1..)]
    pub units: Vec<PathBuf>,

    /// Exit 1 when a unit's exposure is above this value
    ///
    /// Either an integer on systemd's 0-100 scale (`45`) or a decimal on
    /// the 0.0-10.0 scale it prints (`4.5`): a value with a dot is read as
    /// the latter. The comparison is "greater than", like systemd-analyze.
    #[arg(long, value_name = "N", value_parser = parse_threshold)]
    pub threshold: Option<u64>,

    /// Exit 1 when any finding has at least this severity
    #[arg(long, value_name = "SEVERITY", default_value = "high")]
    pub fail_on: Severity,

    /// Output format: NDJSON records, a human summary, or compact scores
    ///
    /// `scores` is the lean mode for fleet-wide scoring of many unit files:
    /// one line per unit file (with --unit, in argument order),
    /// `{"unit":NAME,"path":FILE,"loaded":BOOL,"score":0-100,"exposure":0.0-10.0,
    /// "label":LABEL}`; with app specs, one line per app with `"app":NAME`
    /// first (and nulls when the unit is missing). With --unit only
    /// systemd's score is computed (no per-check rows, no lint, no
    /// observation). The exit status follows --threshold only; findings and
    /// --fail-on do not apply.
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,

    /// Compare running services with their units (default: only when
    /// --root is /)
    #[arg(long, value_enum, default_value = "auto")]
    pub observe: Observe,

    /// Where /proc is (for observation; default `<root>/proc`)
    #[arg(long, value_name = "DIR")]
    pub proc_dir: Option<PathBuf>,

    /// Where the cgroup file system is (default `<root>/sys/fs/cgroup`)
    #[arg(long, value_name = "DIR")]
    pub cgroup_dir: Option<PathBuf>,

    /// Directory of the app units, under --root
    #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
    pub unit_dir: PathBuf,

    /// Name of the backup user
    #[arg(long, value_name = "NAME", default_value = "backup")]
    pub backup_user: String,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// NDJSON, one record per app or unit.
    Json,
    /// A human-readable summary.
    Text,
    /// One compact line per unit: score and label (no checks, no
    /// findings).
    Scores,
}

/// `--observe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Observe {
    /// Only when --root is / (or --proc-dir is given).
    Auto,
    /// Always (a missing cgroup is reported).
    Yes,
    /// Never.
    No,
}

/// Parse `--threshold`: `45` (0-100) or `4.5` (0.0-10.0).
pub fn parse_threshold(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Some((int, frac)) = s.split_once('.') {
        let int: u64 = int
            .parse()
            .map_err(|_| format!("{s:?} is not a number like 4.5"))?;
        if frac.len() != 1 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{s:?}: give one decimal, like 4.5"));
        }
        let v = int * 10 + u64::from(frac.as_bytes()[0] - b'0');
        if v > 100 {
            return Err(format!("{s:?} is above 10.0"));
        }
        Ok(v)
    } else {
        let v: u64 = s
            .parse()
            .map_err(|_| format!("{s:?} is not an integer 0-100 or a decimal 0.0-10.0"))?;
        if v > 100 {
            return Err(format!("{s:?} is above 100"));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_accepts_both_scales() {
        assert_eq!(parse_threshold("45"), Ok(45));
        assert_eq!(parse_threshold("4.5"), Ok(45));
        assert_eq!(parse_threshold("10.0"), Ok(100));
        assert!(parse_threshold("101").is_err());
        assert!(parse_threshold("4.55").is_err());
    }
}
