//! Which running processes keep an outdated group list: the kernel gives a
//! process its groups at login (`initgroups`), so a membership change
//! reaches a service or session only when it restarts (CASES.md USER-04).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use serde::Serialize;

/// A process whose credentials lag behind the account files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stale {
    /// Process id.
    pub pid: u32,
    /// User name it runs as.
    pub user: String,
    /// `comm` of the process.
    pub comm: String,
    /// The systemd unit (service or session scope) it belongs to, if any.
    pub unit: Option<String>,
}

/// One process's real and effective uid and its group list, from
/// `/proc/PID/status`.
fn status_of(text: &str) -> Option<(u32, u32, BTreeSet<u32>, u32)> {
    let mut ids = None;
    let mut gid = None;
    let mut groups = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Uid:") {
            let v: Vec<u32> = rest
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
            ids = Some((*v.first()?, *v.get(1)?));
        } else if let Some(rest) = line.strip_prefix("Gid:") {
            gid = rest.split_whitespace().next().and_then(|s| s.parse().ok());
        } else if let Some(rest) = line.strip_prefix("Groups:") {
            groups = rest
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
        }
    }
    let (ruid, euid) = ids?;
    Some((ruid, euid, groups, gid?))
}

/// The unit from `/proc/PID/cgroup` (cgroup v2 or the v1 name=systemd line).
fn unit_of(text: &str) -> Option<String> {
    let path = text.lines().find_map(|l| {
        l.strip_prefix("0::")
            .or_else(|| l.strip_prefix("1:name=systemd:"))
    })?;
    path.split('/')
        .rev()
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"))
        .map(str::to_owned)
}

/// A running process of one of the watched users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    /// What is reported about it.
    pub info: Stale,
    /// Its gid set: the primary gid plus the supplementary groups.
    pub groups: BTreeSet<u32>,
}

/// Processes under `proc` (normally `/proc`) whose real or effective uid is
/// one of `users` (name, uid).
pub fn scan(proc: &Path, users: &[(String, u32)]) -> Vec<Proc> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir(proc) else {
        return out;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let p = entry.path();
        let Some((ruid, euid, mut groups, gid)) = fs::read_to_string(p.join("status"))
            .ok()
            .as_deref()
            .and_then(status_of)
        else {
            continue;
        };
        groups.insert(gid);
        for (user, uid) in users {
            if ruid == *uid || euid == *uid {
                out.push(Proc {
                    info: Stale {
                        pid,
                        user: user.clone(),
                        comm: fs::read_to_string(p.join("comm"))
                            .map(|s| s.trim().to_owned())
                            .unwrap_or_default(),
                        unit: fs::read_to_string(p.join("cgroup"))
                            .ok()
                            .as_deref()
                            .and_then(unit_of),
                    },
                    groups: groups.clone(),
                });
            }
        }
    }
    out.sort_by_key(|p| p.info.pid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_processes_and_their_group_lists() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("4242");
        fs::create_dir(&p).unwrap();
        fs::write(
            p.join("status"),
            "Name:\tsshd\nUid:\t34\t34\t34\t34\nGid:\t34\t34\t34\t34\nGroups:\t34 \n",
        )
        .unwrap();
        fs::write(p.join("comm"), "sshd\n").unwrap();
        fs::write(
            p.join("cgroup"),
            "0::/user.slice/user-34.slice/session-7.scope\n",
        )
        .unwrap();
        let ok = dir.path().join("4243");
        fs::create_dir(&ok).unwrap();
        fs::write(
            ok.join("status"),
            "Uid:\t34\t34\t34\t34\nGid:\t34\t34\t34\t34\nGroups:\t34 999\n",
        )
        .unwrap();

        let procs = scan(dir.path(), &[("backup".into(), 34)]);
        let stale: Vec<&Proc> = procs.iter().filter(|p| !p.groups.contains(&999)).collect();

        assert_eq!(procs.len(), 2);
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].info.pid, 4242);
        assert_eq!(stale[0].info.unit.as_deref(), Some("session-7.scope"));
    }
}
