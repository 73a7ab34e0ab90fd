//! Command-line arguments shared by every tool.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Map, Value};

use crate::exit::note;
use crate::io::{read_records, record_from_value, unknown_keys, Record};

/// The running tool's name, for messages.
fn program_name() -> String {
    std::env::args()
        .next()
        .as_deref()
        .and_then(|a| a.rsplit('/').next().map(str::to_owned))
        .unwrap_or_else(|| "rip".to_owned())
}
use crate::root::Root;

/// `--root` and `--dry-run`, for tools that change the system.
#[derive(Debug, Clone, Args)]
pub struct SystemArgs {
    /// Act on the system rooted at DIR instead of /
    ///
    /// Every path of the app specs is taken relative to DIR, so a fleet can
    /// be prepared in a scratch directory or a container's root file system.
    /// DIR must exist: a mistyped root is refused, not created.
    #[arg(long, value_name = "DIR", default_value = "/", value_parser = existing_dir)]
    pub root: PathBuf,

    /// Report what would change, and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `--root`'s parser: an existing directory (symlinks followed: the root
/// is the operator's choice, not an app's).
fn existing_dir(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    match std::fs::metadata(&p) {
        Ok(m) if m.is_dir() => Ok(p),
        Ok(_) => Err("not a directory".to_owned()),
        Err(e) => Err(format!("not an existing directory ({e})")),
    }
}

impl SystemArgs {
    /// The root as a [`Root`].
    pub fn root(&self) -> Root {
        Root::new(&self.root)
    }
}

/// Where the app specs come from: stdin, or one app given by flags.
#[derive(Debug, Clone, Default, Args)]
pub struct InputArgs {
    /// Act on one app given by flags instead of reading specs on stdin
    ///
    /// Builds the spec {"name": NAME} plus the other app flags; every
    /// default of the app spec applies (see rip(7)).
    #[arg(long, value_name = "NAME", help_heading = "One app from flags")]
    pub app: Option<String>,

    /// With --app: a port the app listens on (repeatable)
    #[arg(
        long = "port",
        value_name = "PORT",
        requires = "app",
        help_heading = "One app from flags"
    )]
    pub ports: Vec<u16>,

    /// With --app: the app's metrics port
    #[arg(
        long,
        value_name = "PORT",
        requires = "app",
        help_heading = "One app from flags"
    )]
    pub metrics_port: Option<u16>,

    /// With --app: enable backups in the default directory
    #[arg(long, requires = "app", help_heading = "One app from flags")]
    pub backups: bool,

    /// With --app: runtime of the binary (go, rust, c, node, jvm, python, other)
    #[arg(
        long,
        value_name = "KIND",
        requires = "app",
        help_heading = "One app from flags"
    )]
    pub runtime: Option<String>,

    /// With --app: the app's home directory
    #[arg(
        long,
        value_name = "DIR",
        requires = "app",
        help_heading = "One app from flags"
    )]
    pub home: Option<String>,

    /// Accept an input with no app at all
    ///
    /// Empty input is an error by default: in a pipeline it usually means an
    /// earlier tool failed, and acting on "no apps" would, for example, empty
    /// the Prometheus targets.
    #[arg(long)]
    pub allow_empty: bool,
}

impl InputArgs {
    /// The spec built from flags, if `--app` was given.
    pub fn flag_spec(&self) -> Option<Map<String, Value>> {
        let name = self.app.as_ref()?;
        let mut spec = Map::new();
        spec.insert("name".into(), json!(name));
        if !self.ports.is_empty() {
            let listen: Vec<Value> = self.ports.iter().map(|p| json!({ "port": p })).collect();
            spec.insert("listen".into(), Value::Array(listen));
        }
        if let Some(p) = self.metrics_port {
            spec.insert("metrics".into(), json!({ "port": p }));
        }
        if self.backups {
            spec.insert("backups".into(), json!({ "enabled": true }));
        }
        if let Some(r) = &self.runtime {
            spec.insert("runtime".into(), json!(r));
        }
        if let Some(h) = &self.home {
            spec.insert("home".into(), json!(h));
        }
        Some(spec)
    }

    /// Read the records: from the flags when `--app` is given, else from
    /// `stdin`. Every record is validated before this returns.
    ///
    /// Empty input is refused unless `--allow-empty` was given. Unknown keys
    /// that look like typos are reported on stderr and kept.
    pub fn records(&self, stdin: impl Read) -> anyhow::Result<Vec<Record>> {
        let records = match self.flag_spec() {
            Some(spec) => vec![record_from_value(spec)?],
            None => read_records(stdin)?,
        };
        if records.is_empty() && !self.allow_empty {
            anyhow::bail!(
                "no app specs on stdin (an earlier tool in the pipeline may have failed); \
                 pass --allow-empty to act on an empty fleet"
            );
        }
        for r in &records {
            for key in unknown_keys(&r.raw) {
                note(
                    &program_name(),
                    format!(
                        "warning: record {} (line {}), app {:?}: unknown key {key:?} passed through \
                         untouched (prefix it with x- to silence this)",
                        r.index, r.line, r.spec.name
                    ),
                );
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_build_a_valid_record() {
        let args = InputArgs {
            app: Some("app1".into()),
            ports: vec![80],
            metrics_port: Some(9101),
            backups: true,
            ..Default::default()
        };

        let recs = args.records(std::io::empty()).unwrap();

        assert_eq!(recs[0].spec.listen[0].port, 80);
        assert!(recs[0].spec.backups_enabled());
    }

    #[test]
    fn bad_flag_name_is_rejected() {
        let args = InputArgs {
            app: Some("App".into()),
            ..Default::default()
        };

        assert!(args.records(std::io::empty()).is_err());
    }
}
