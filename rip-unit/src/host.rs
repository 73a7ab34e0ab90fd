//! What rip-unit reads from the target system before it writes: which
//! cgroup controllers can enforce limits, who owns secret files, and the
//! user's drop-ins.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rip_core::Root;
use serde::Serialize;

/// Where the list of cgroup controllers came from, and the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Controllers {
    /// The file or directory that was read, as seen on this machine.
    pub source: String,
    /// Controllers systemd can use for the unit (`memory`, `pids`, `cpu`...).
    pub available: Vec<String>,
}

/// Read the controllers available to units on the target: the root's
/// cgroup2 `cgroup.controllers`, else the host's (unified or, in hybrid
/// mode, the v1 hierarchies systemd also drives). `None` when unknown.
pub fn controllers(root: &Root) -> anyhow::Result<Option<Controllers>> {
    let mut candidates = vec![root.join("/sys/fs/cgroup/cgroup.controllers")];
    if !root.is_host() {
        candidates.push(PathBuf::from("/sys/fs/cgroup/cgroup.controllers"));
    }
    for path in candidates {
        match fs::read_to_string(&path) {
            Ok(text) => {
                return Ok(Some(Controllers {
                    source: path.display().to_string(),
                    available: text.split_whitespace().map(str::to_owned).collect(),
                }))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {path:?}")),
        }
    }
    // Hybrid hierarchy (v1 controllers mounted under /sys/fs/cgroup/NAME):
    // systemd maps MemoryMax=, TasksMax= and CPUQuota= onto them.
    let v1 = Path::new("/sys/fs/cgroup");
    if v1.join("unified").is_dir() || v1.join("systemd").is_dir() {
        let mut available = Vec::new();
        for (dir, name) in [("memory", "memory"), ("pids", "pids"), ("cpu", "cpu")] {
            if v1.join(dir).join("tasks").exists() {
                available.push(name.to_owned());
            }
        }
        return Ok(Some(Controllers {
            source: format!("{} (cgroup v1 hierarchies)", v1.display()),
            available,
        }));
    }
    Ok(None)
}

/// The hard `RLIMIT_NOFILE` the service manager can hand out, when known:
/// PID 1's hard limit on the running system.
pub fn nofile_hard_limit(root: &Root) -> Option<u64> {
    if !root.is_host() {
        return None;
    }
    let text = fs::read_to_string("/proc/1/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(4)?.parse().ok()
}

/// Owner and mode of a file (not following a symlink), or `None` if absent.
pub fn owner_mode(path: &Path) -> anyhow::Result<Option<(u32, u32, bool)>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some((m.uid(), m.mode() & 0o7777, m.file_type().is_file()))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot stat {path:?}")),
    }
}

/// Whether a systemd instance manages the target right now (sd_booted()).
pub fn systemd_running(root: &Root) -> bool {
    root.is_host() && Path::new("/run/systemd/system").is_dir()
}

/// One drop-in file of the user, read only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropIn {
    /// Path on the target system.
    pub path: String,
    /// Every `Key=value` it sets, in order, continuation lines joined.
    pub settings: Vec<(String, String)>,
}

/// Directories whose `*.conf` files systemd merges into `unit`, most
/// specific last does not matter here: all are listed.
fn dropin_dirs(unit: &str) -> Vec<String> {
    let kind = unit.rsplit('.').next().unwrap_or("service");
    let mut dirs = Vec::new();
    for base in [
        "/etc/systemd/system",
        "/run/systemd/system",
        "/usr/local/lib/systemd/system",
        "/usr/lib/systemd/system",
        "/lib/systemd/system",
    ] {
        dirs.push(format!("{base}/{unit}.d"));
        dirs.push(format!("{base}/{kind}.d"));
    }
    dirs
}

/// Parse the assignments of a unit file fragment (comments and section
/// headers skipped, backslash continuations joined).
pub fn parse_settings(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        if let Some(body) = line.strip_suffix('\\') {
            pending.push_str(body);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let full = std::mem::take(&mut pending);
        if full.starts_with('[') || full.is_empty() {
            continue;
        }
        if let Some((k, v)) = full.split_once('=') {
            out.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

/// Every drop-in of `unit` (e.g. `app1.service`) under the root, sorted by
/// path. Symlinks to `/dev/null` (masked drop-ins) are listed with no settings.
pub fn dropins(root: &Root, unit: &str) -> anyhow::Result<Vec<DropIn>> {
    let mut found = Vec::new();
    // /lib is often a symlink to /usr/lib: list each real file once.
    let mut seen = std::collections::HashSet::new();
    for dir in dropin_dirs(unit) {
        let host_dir = root.join(&dir);
        let entries = match fs::read_dir(&host_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot list {host_dir:?}")),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {host_dir:?}"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".conf") {
                continue;
            }
            let path = entry.path();
            if !seen.insert(fs::canonicalize(&path).unwrap_or_else(|_| path.clone())) {
                continue;
            }
            let text = match fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
                Err(e) => return Err(e).with_context(|| format!("cannot read {path:?}")),
            };
            found.push(DropIn {
                path: format!("{dir}/{name}"),
                settings: parse_settings(&text),
            });
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_settings_with_continuations_and_comments() {
        let text =
            "# c\n[Service]\nProtectHome=no\nExecStart=\nExecStart=/bin/a \\\n  -x\n; other\n";

        let s = parse_settings(text);

        assert_eq!(
            s,
            vec![
                ("ProtectHome".to_owned(), "no".to_owned()),
                ("ExecStart".to_owned(), String::new()),
                ("ExecStart".to_owned(), "/bin/a  -x".to_owned()),
            ]
        );
    }

    #[test]
    fn lists_dropins_of_the_unit_and_of_all_services() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let d = root.join("/etc/systemd/system/app1.service.d");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("10-x.conf"), "[Service]\nUMask=0022\n").unwrap();
        fs::write(d.join("ignored.txt"), "x").unwrap();
        let all = root.join("/run/systemd/system/service.d");
        fs::create_dir_all(&all).unwrap();
        fs::write(all.join("a.conf"), "").unwrap();

        let found = dropins(&root, "app1.service").unwrap();

        let paths: Vec<_> = found.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc/systemd/system/app1.service.d/10-x.conf",
                "/run/systemd/system/service.d/a.conf"
            ]
        );
        assert_eq!(found[0].settings[0].0, "UMask");
    }
}
