//! Declared vs observed: for every process in a unit's cgroup, read
//! /proc/PID/status and /proc/PID/mountinfo and report each difference from
//! what the unit declares (identity, groups, the five capability sets,
//! NoNewPrivs, seccomp, read-only mounts).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use rip_core::accounts::Accounts;
use serde_json::json;

use crate::finding::{Finding, Severity};
use crate::lint::implied_nnp;
use crate::model::{cap_names, ProtectHome, ProtectSystem, Settings};

/// Fields of /proc/PID/status rip-audit compares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Real, effective, saved, fs uid.
    pub uid: Vec<u32>,
    /// Real, effective, saved, fs gid.
    pub gid: Vec<u32>,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// CapInh, CapPrm, CapEff, CapBnd, CapAmb.
    pub caps: [u64; 5],
    /// NoNewPrivs.
    pub no_new_privs: Option<u32>,
    /// Seccomp mode.
    pub seccomp: Option<u32>,
}

/// Parse the text of /proc/PID/status.
pub fn parse_status(text: &str) -> Status {
    let mut st = Status::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        let nums = || -> Vec<u32> {
            v.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        };
        let hex = || u64::from_str_radix(v, 16).unwrap_or(0);
        match k {
            "Uid" => st.uid = nums(),
            "Gid" => st.gid = nums(),
            "Groups" => st.groups = nums(),
            "CapInh" => st.caps[0] = hex(),
            "CapPrm" => st.caps[1] = hex(),
            "CapEff" => st.caps[2] = hex(),
            "CapBnd" => st.caps[3] = hex(),
            "CapAmb" => st.caps[4] = hex(),
            "NoNewPrivs" => st.no_new_privs = v.parse().ok(),
            "Seccomp" => st.seccomp = v.parse().ok(),
            _ => {}
        }
    }
    st
}

/// One mountinfo line, the parts rip-audit uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Root of the mount within its file system.
    pub root: String,
    /// Mount point.
    pub point: String,
    /// Per-mount options (field 6): `ro` lives here, not in super options.
    pub options: Vec<String>,
    /// File system type.
    pub fstype: String,
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Parse /proc/PID/mountinfo.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            Some(Mount {
                root: unescape(f.get(3)?),
                point: unescape(f.get(4)?),
                options: f.get(5)?.split(',').map(str::to_owned).collect(),
                fstype: f.get(dash + 1).map(|s| (*s).to_owned()).unwrap_or_default(),
            })
        })
        .collect()
}

/// The mount that decides access to `path` (longest mount-point prefix,
/// last one wins when stacked).
pub fn mount_of<'a>(mounts: &'a [Mount], path: &str) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| Path::new(path).starts_with(&m.point))
        .max_by_key(|m| m.point.len())
        .and_then(|best| mounts.iter().rev().find(|m| m.point == best.point))
}

/// Where to look for the unit's processes.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The /proc to read.
    pub proc_dir: PathBuf,
    /// The cgroup file system.
    pub cgroup_dir: PathBuf,
}

/// PIDs in the unit's cgroup (unified, hybrid or the v1 name=systemd tree),
/// and the cgroup file they came from.
pub fn pids(src: &Sources, unit: &str) -> (Vec<u32>, Option<PathBuf>) {
    for base in ["", "unified", "systemd"] {
        let dir = src.cgroup_dir.join(base).join("system.slice").join(unit);
        if !dir.is_dir() {
            continue;
        }
        let mut out = BTreeSet::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            if let Ok(t) = fs::read_to_string(d.join("cgroup.procs")) {
                out.extend(t.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
            }
            if let Ok(rd) = fs::read_dir(&d) {
                stack.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
        }
        return (out.into_iter().collect(), Some(dir));
    }
    (Vec::new(), None)
}

fn last_cap(src: &Sources) -> u32 {
    fs::read_to_string(src.proc_dir.join("sys/kernel/cap_last_cap"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// What the unit declares for a process, in /proc terms.
#[derive(Debug, Clone)]
pub struct Declared {
    /// uid.
    pub uid: Option<u32>,
    /// gids (primary, memberships, SupplementaryGroups).
    pub gids: BTreeSet<u32>,
    /// Bounding set, masked to the kernel's capabilities.
    pub bounding: u64,
    /// Ambient set the kernel keeps (non-root only).
    pub ambient: u64,
    /// NoNewPrivs expected.
    pub nnp: bool,
    /// Seccomp filter expected.
    pub seccomp: bool,
}

/// Compute [`Declared`].
pub fn declared(s: &Settings, acc: &Accounts, last_cap: u32) -> Declared {
    let all = if last_cap >= 63 {
        u64::MAX
    } else {
        (1u64 << (last_cap + 1)) - 1
    };
    let user = s.user.clone().unwrap_or_else(|| "root".into());
    let entry = acc
        .user(&user)
        .or_else(|| user.parse::<u32>().ok().and_then(|u| acc.user_by_uid(u)));
    let uid = entry.map(|e| e.uid);
    let mut gids: BTreeSet<u32> = entry
        .map(|e| acc.gids_of(&e.name))
        .unwrap_or_default()
        .into_iter()
        .collect();
    if let Some(g) = s.group.as_deref() {
        if let Some(ge) = acc.group(g) {
            gids.insert(ge.gid);
        }
    }
    for g in &s.supplementary_groups {
        if let Some(ge) = acc.group(g) {
            gids.insert(ge.gid);
        } else if let Ok(n) = g.parse() {
            gids.insert(n);
        }
    }
    let bounding = s.cap_bounding & all;
    let root = uid == Some(0);
    let seccomp = crate::lint::uses_seccomp(s);
    Declared {
        uid,
        gids,
        bounding,
        ambient: if root { 0 } else { s.cap_ambient & bounding },
        nnp: s.flag("NoNewPrivileges") || (!root && implied_nnp(s)),
        seccomp,
    }
}

/// Writability each path should have under the unit's sandbox: Some(true)
/// rw, Some(false) ro, None: not decided by the unit.
fn expected_rw(s: &Settings, path: &str, rw_paths: &[String]) -> Option<bool> {
    if rw_paths.iter().any(|p| Path::new(path).starts_with(p)) {
        return Some(true);
    }
    if ["/home", "/root", "/run/user"]
        .iter()
        .any(|d| Path::new(path).starts_with(d))
        && s.protect_home == ProtectHome::ReadOnly
    {
        return Some(false);
    }
    match s.protect_system {
        ProtectSystem::Strict => {
            let api = ["/dev", "/proc", "/sys", "/tmp", "/var/tmp", "/run"]
                .iter()
                .any(|d| Path::new(path).starts_with(d));
            let home = ["/home", "/root", "/run/user"]
                .iter()
                .any(|d| Path::new(path).starts_with(d))
                && s.protect_home != ProtectHome::No;
            if api || home {
                None
            } else {
                Some(false)
            }
        }
        ProtectSystem::Full => ["/usr", "/boot", "/efi", "/etc"]
            .iter()
            .any(|d| Path::new(path).starts_with(d))
            .then_some(false),
        ProtectSystem::Yes => ["/usr", "/boot", "/efi"]
            .iter()
            .any(|d| Path::new(path).starts_with(d))
            .then_some(false),
        ProtectSystem::No => None,
    }
}

/// Compare every process of the unit with the declaration. `paths` are the
/// app paths that matter (home, data dir).
pub fn observe(
    s: &Settings,
    acc: &Accounts,
    src: &Sources,
    paths: &[String],
    required: bool,
) -> (serde_json::Value, Vec<Finding>) {
    let (pids, cgroup) = pids(src, &s.name);
    let mut findings = Vec::new();
    if pids.is_empty() {
        if required {
            findings.push(Finding::new(
                "OBSERVED_NOT_RUNNING",
                Severity::Info,
                format!("{} has no process to compare with its unit", s.name),
                json!({"cgroup": cgroup.map(|c| c.display().to_string())}),
                format!(
                    "start it (systemctl start {}) to audit what it really runs with",
                    s.name
                ),
            ));
        }
        return (json!({"running": false, "processes": []}), findings);
    }
    let d = declared(s, acc, last_cap(src));
    // Writable in the namespace: ReadWritePaths= and BindPaths= targets.
    let mut rw_paths: Vec<String> = Vec::new();
    for key in ["ReadWritePaths", "BindPaths"] {
        for a in s.list("Service", key) {
            for w in crate::model::words(&a.value, true).unwrap_or_default() {
                let w = w.trim_start_matches(['-', '+']);
                let target = if key == "BindPaths" {
                    w.split(':')
                        .nth(1)
                        .unwrap_or(w.split(':').next().unwrap_or(w))
                } else {
                    w
                };
                if target.starts_with('/') {
                    rw_paths.push(target.to_owned());
                }
            }
        }
    }
    let mut check_paths: Vec<String> = ["/", "/etc", "/usr", "/tmp"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    check_paths.extend(paths.iter().cloned());
    let mut procs = Vec::new();
    for pid in pids {
        let dir = src.proc_dir.join(pid.to_string());
        let (Ok(st), Ok(mi)) = (
            fs::read_to_string(dir.join("status")),
            fs::read_to_string(dir.join("mountinfo")),
        ) else {
            continue;
        };
        let st = parse_status(&st);
        let mounts = parse_mountinfo(&mi);
        let mut diffs = Vec::new();
        let mut diff = |field: &str,
                        declared: serde_json::Value,
                        observed: serde_json::Value,
                        sev: Severity| {
            diffs.push(json!({"field": field, "declared": declared, "observed": observed}));
            findings.push(Finding::new(
                "OBSERVED_MISMATCH",
                sev,
                format!("pid {pid}: {field} differs from the unit"),
                json!({"pid": pid, "field": field, "declared": declared, "observed": observed}),
                format!("systemctl daemon-reload && systemctl restart {}, then check the host supports the setting", s.name),
            ));
        };
        if let (Some(uid), Some(real)) = (d.uid, st.uid.first()) {
            if st.uid.iter().any(|u| *u != uid) {
                diff(
                    "Uid",
                    json!(uid),
                    json!(st.uid),
                    if *real == 0 {
                        Severity::Critical
                    } else {
                        Severity::High
                    },
                );
            }
        }
        let observed_gids: BTreeSet<u32> = st
            .groups
            .iter()
            .copied()
            .chain(st.gid.first().copied())
            .collect();
        if !d.gids.is_empty() && observed_gids != d.gids {
            let extra: Vec<u32> = observed_gids.difference(&d.gids).copied().collect();
            diff(
                "Groups",
                json!(d.gids),
                json!(observed_gids),
                if extra.is_empty() {
                    Severity::Low
                } else {
                    Severity::High
                },
            );
        }
        if st.caps[3] != d.bounding {
            let wider = st.caps[3] & !d.bounding != 0;
            diff(
                "CapBnd",
                json!(cap_names(d.bounding)),
                json!(cap_names(st.caps[3])),
                if wider { Severity::High } else { Severity::Low },
            );
        }
        if st.caps[4] != d.ambient {
            let wider = st.caps[4] & !d.ambient != 0;
            diff(
                "CapAmb",
                json!(cap_names(d.ambient)),
                json!(cap_names(st.caps[4])),
                if wider {
                    Severity::High
                } else {
                    Severity::Medium
                },
            );
        }
        if d.uid.is_some_and(|u| u != 0) {
            for (i, name) in [(0, "CapInh"), (1, "CapPrm"), (2, "CapEff")] {
                let extra = st.caps[i] & !d.ambient;
                if extra != 0 {
                    diff(
                        name,
                        json!(cap_names(d.ambient)),
                        json!(cap_names(st.caps[i])),
                        Severity::High,
                    );
                }
            }
        }
        if d.nnp && st.no_new_privs == Some(0) {
            diff("NoNewPrivs", json!(1), json!(0), Severity::High);
        }
        if d.seccomp && st.seccomp == Some(0) {
            diff("Seccomp", json!(2), json!(0), Severity::High);
        }
        let mut mounts_out = Vec::new();
        for p in &check_paths {
            let Some(m) = mount_of(&mounts, p) else {
                continue;
            };
            let ro = m.options.iter().any(|o| o == "ro");
            let want = expected_rw(s, p, &rw_paths);
            mounts_out.push(json!({"path": p, "mount": m.point, "ro": ro, "fstype": m.fstype, "expected_rw": want}));
            if let Some(w) = want {
                if w == ro {
                    diff(
                        &format!("mount {p}"),
                        json!(if w { "rw" } else { "ro" }),
                        json!(if ro { "ro" } else { "rw" }),
                        if ro { Severity::Medium } else { Severity::High },
                    );
                }
            }
        }
        if s.flag("PrivateTmp") {
            let private =
                mount_of(&mounts, "/tmp").is_some_and(|m| m.point == "/tmp" && m.root != "/");
            if !private {
                diff("PrivateTmp", json!(true), json!(false), Severity::High);
            }
        }
        procs.push(json!({
            "pid": pid,
            "uid": st.uid, "gid": st.gid, "groups": st.groups,
            "cap_inh": cap_names(st.caps[0]), "cap_prm": cap_names(st.caps[1]),
            "cap_eff": cap_names(st.caps[2]), "cap_bnd": cap_names(st.caps[3]),
            "cap_amb": cap_names(st.caps[4]),
            "no_new_privs": st.no_new_privs, "seccomp": st.seccomp,
            "mounts": mounts_out, "differences": diffs,
        }));
    }
    (
        json!({"running": !procs.is_empty(), "cgroup": cgroup.map(|c| c.display().to_string()), "processes": procs}),
        findings,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_masks() {
        let st = parse_status("Uid:\t998\t998\t998\t998\nGroups:\t997 998\nCapBnd:\t0000000000000400\nCapAmb:\t0000000000000400\nNoNewPrivs:\t1\nSeccomp:\t2\n");

        assert_eq!(st.uid, vec![998; 4]);
        assert_eq!(st.caps[3], 0x400);
        assert_eq!((st.no_new_privs, st.seccomp), (Some(1), Some(2)));
    }

    #[test]
    fn read_only_is_a_per_mount_option() {
        let mi = "22 1 8:1 / / rw,relatime - ext4 /dev/vda rw\n30 22 8:1 /usr /usr ro,relatime - ext4 /dev/vda rw\n";

        let m = parse_mountinfo(mi);

        assert!(mount_of(&m, "/usr/bin")
            .unwrap()
            .options
            .contains(&"ro".to_owned()));
        assert_eq!(mount_of(&m, "/etc").unwrap().point, "/");
    }
}
