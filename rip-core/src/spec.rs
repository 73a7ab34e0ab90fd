//! The app spec: one JSON object per app, as every rip tool reads it.
//!
//! [`RawSpec`] mirrors the JSON as written (every field optional but `name`);
//! [`AppSpec`] is the same app with every default filled in, which is what
//! the tools act on. Validation lives in [`crate::validate`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The app spec exactly as given, before defaults. Unknown keys are not
/// listed here: the record keeps them (see [`crate::io::Record::raw`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RawSpec {
    /// App name, also the default user and group name.
    pub name: String,
    /// Unix user the app runs as (default: `name`).
    pub user: Option<String>,
    /// Primary group of that user (default: `name`).
    pub group: Option<String>,
    /// Home directory (default: `/home/<name>`).
    pub home: Option<String>,
    /// Login shell of the app user, for `su -` debugging (default `/bin/bash`).
    pub shell: Option<String>,
    /// One-line description for the unit.
    pub description: Option<String>,
    /// The binary and its arguments (default: `[<home>/bin/<name>]`).
    pub exec: Option<Vec<String>>,
    /// Working directory (default: the home).
    pub workdir: Option<String>,
    /// Addresses and ports the app serves on.
    pub listen: Vec<Listen>,
    /// Where the app serves its Prometheus metrics, if it does.
    pub metrics: Option<Metrics>,
    /// Local backup snapshots.
    pub backups: Option<RawBackups>,
    /// Plain environment variables (never secrets).
    pub env: BTreeMap<String, String>,
    /// Environment files read by systemd (root-owned, 0600).
    pub env_files: Vec<String>,
    /// Secret sources, passed as systemd credentials.
    pub secrets: Vec<Secret>,
    /// Runtime of the binary, so hardening can fit it.
    pub runtime: Runtime,
    /// Hardening profile.
    pub profile: Profile,
    /// Extra writable paths besides the data dir.
    pub rw_paths: Vec<String>,
    /// Resource limits.
    pub limits: Limits,
    /// Whether the app needs outbound HTTPS (e.g. Litestream to S3).
    pub outbound_https: bool,
    /// Host the app runs on, for fleets of several machines.
    pub host: Option<String>,
    /// Extra Prometheus labels for this app's targets.
    pub labels: BTreeMap<String, String>,
    /// Per-app overrides of rip-perms' layout policy (checked by rip-perms).
    pub perms: Option<serde_json::Value>,
}

/// One address the app listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// IP address to bind; absent means all addresses.
    #[serde(default)]
    pub addr: Option<String>,
    /// TCP port, 1-65535.
    pub port: u16,
}

/// Where metrics are served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// TCP port of the metrics endpoint.
    pub port: u16,
    /// HTTP path (default `/metrics`).
    #[serde(default = "default_metrics_path")]
    pub path: String,
    /// Address Prometheus should scrape (default `127.0.0.1`).
    #[serde(default)]
    pub addr: Option<String>,
}

fn default_metrics_path() -> String {
    "/metrics".to_owned()
}

/// Backups as written in the spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackups {
    /// Whether the app writes backup snapshots (default true once the key is given).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Snapshot directory (default `<home>/data/backups`).
    #[serde(default)]
    pub dir: Option<String>,
}

fn yes() -> bool {
    true
}

/// A secret the app reads, given by the path of the file that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    /// Credential name, as the app sees it under `$CREDENTIALS_DIRECTORY`.
    pub name: String,
    /// Absolute path of the file holding the secret (never the value).
    pub path: String,
}

/// Runtime kind of the app's binary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// A Go binary.
    Go,
    /// A Rust binary.
    Rust,
    /// A C or C++ binary.
    C,
    /// Node.js (JIT).
    Node,
    /// A JVM (JIT).
    Jvm,
    /// Python.
    Python,
    /// Anything else: the most permissive hardening.
    #[default]
    #[serde(alias = "unknown")]
    Other,
}

/// Hardening profile of the unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// The app binds its own ports (with CAP_NET_BIND_SERVICE below 1024).
    #[default]
    Default,
    /// systemd binds the ports (socket activation); the app keeps no
    /// capability and no network of its own.
    Strict,
}

/// Resource limits, in systemd's notation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// `MemoryMax=`: bytes with optional K, M, G or T suffix, or `infinity`.
    pub memory_max: Option<String>,
    /// `TasksMax=`.
    pub tasks_max: Option<u64>,
    /// `CPUQuota=`, a percentage such as `50%`.
    pub cpu_quota: Option<String>,
    /// `LimitNOFILE=`.
    pub nofile: Option<u64>,
}

/// An app with every default resolved: what the tools act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppSpec {
    /// App name.
    pub name: String,
    /// Unix user name.
    pub user: String,
    /// Unix primary group name.
    pub group: String,
    /// Home directory (absolute, normalized).
    pub home: PathBuf,
    /// Login shell.
    pub shell: PathBuf,
    /// Unit description.
    pub description: String,
    /// argv; `exec[0]` is an absolute path.
    pub exec: Vec<String>,
    /// Working directory.
    pub workdir: PathBuf,
    /// Listening sockets.
    pub listen: Vec<Listen>,
    /// Metrics endpoint, if any.
    pub metrics: Option<Metrics>,
    /// Snapshot directory when backups are enabled.
    pub backup_dir: Option<PathBuf>,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// Environment files.
    pub env_files: Vec<PathBuf>,
    /// Secret sources.
    pub secrets: Vec<Secret>,
    /// Runtime kind.
    pub runtime: Runtime,
    /// Hardening profile.
    pub profile: Profile,
    /// Extra writable paths.
    pub rw_paths: Vec<PathBuf>,
    /// Resource limits.
    pub limits: Limits,
    /// Needs outbound HTTPS.
    pub outbound_https: bool,
    /// Host name, `local` by default.
    pub host: String,
    /// Extra Prometheus labels.
    pub labels: BTreeMap<String, String>,
    /// rip-perms policy overrides, unparsed.
    pub perms: Option<serde_json::Value>,
}

impl AppSpec {
    /// `<home>/bin`.
    pub fn bin_dir(&self) -> PathBuf {
        self.home.join("bin")
    }

    /// `<home>/data`: the app's only writable directory by default.
    pub fn data_dir(&self) -> PathBuf {
        self.home.join("data")
    }

    /// Whether backups are enabled.
    pub fn backups_enabled(&self) -> bool {
        self.backup_dir.is_some()
    }

    /// Whether any listening port needs `CAP_NET_BIND_SERVICE`.
    pub fn binds_privileged_port(&self) -> bool {
        self.listen.iter().any(|l| l.port < 1024)
            || self.metrics.as_ref().is_some_and(|m| m.port < 1024)
    }

    /// Every writable path: the data dir first, then `rw_paths`.
    pub fn writable_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.data_dir()];
        for p in &self.rw_paths {
            if !paths.contains(p) {
                paths.push(p.clone());
            }
        }
        paths
    }

    /// Whether `path` lies inside the app's home (or is the home).
    pub fn in_home(&self, path: &Path) -> bool {
        path.starts_with(&self.home)
    }
}

impl RawSpec {
    /// Fill in every default. Call only on a spec that passed validation.
    pub fn resolve(&self) -> AppSpec {
        let name = self.name.clone();
        let home = PathBuf::from(self.home.clone().unwrap_or_else(|| format!("/home/{name}")));
        let exec = self
            .exec
            .clone()
            .unwrap_or_else(|| vec![home.join("bin").join(&name).display().to_string()]);
        let backup_dir = match &self.backups {
            Some(b) if b.enabled => Some(
                b.dir
                    .as_ref()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| home.join("data").join("backups")),
            ),
            _ => None,
        };
        AppSpec {
            user: self.user.clone().unwrap_or_else(|| name.clone()),
            group: self.group.clone().unwrap_or_else(|| name.clone()),
            shell: PathBuf::from(self.shell.as_deref().unwrap_or("/bin/bash")),
            description: self
                .description
                .clone()
                .unwrap_or_else(|| format!("{name} (managed by rip)")),
            exec,
            workdir: self
                .workdir
                .as_ref()
                .map(PathBuf::from)
                .unwrap_or_else(|| home.clone()),
            listen: self.listen.clone(),
            metrics: self.metrics.clone(),
            backup_dir,
            env: self.env.clone(),
            env_files: self.env_files.iter().map(PathBuf::from).collect(),
            secrets: self.secrets.clone(),
            runtime: self.runtime,
            profile: self.profile,
            rw_paths: self.rw_paths.iter().map(PathBuf::from).collect(),
            limits: self.limits.clone(),
            outbound_https: self.outbound_https,
            host: self.host.clone().unwrap_or_else(|| "local".to_owned()),
            labels: self.labels.clone(),
            perms: self.perms.clone(),
            home,
            name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_spec_gets_every_default() {
        let raw: RawSpec = serde_json::from_str(r#"{"name":"app1"}"#).unwrap();

        let spec = raw.resolve();

        assert_eq!(spec.user, "app1");
        assert_eq!(spec.group, "app1");
        assert_eq!(spec.home, PathBuf::from("/home/app1"));
        assert_eq!(spec.exec, vec!["/home/app1/bin/app1".to_owned()]);
        assert_eq!(spec.workdir, PathBuf::from("/home/app1"));
        assert_eq!(spec.host, "local");
        assert_eq!(spec.runtime, Runtime::Other);
        assert_eq!(spec.backup_dir, None);
    }

    #[test]
    fn backups_key_enables_with_default_dir() {
        let raw: RawSpec = serde_json::from_str(r#"{"name":"a","backups":{}}"#).unwrap();

        let spec = raw.resolve();

        assert_eq!(spec.backup_dir, Some(PathBuf::from("/home/a/data/backups")));
    }

    #[test]
    fn metrics_path_defaults() {
        let raw: RawSpec = serde_json::from_str(r#"{"name":"a","metrics":{"port":9101}}"#).unwrap();

        assert_eq!(raw.resolve().metrics.unwrap().path, "/metrics");
    }
}
