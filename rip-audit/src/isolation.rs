//! Cross-app isolation: from real owners, modes, runtime groups and POSIX
//! ACLs, which principal (each app user, the backup user, any other local
//! user) can read or write which app's home, data, databases, keys, backups
//! and binaries; plus the file findings that follow from it.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rip_core::accounts::Accounts;
use rip_core::{AppSpec, Root};
use serde_json::json;

use crate::finding::{Finding, Severity};

/// A principal: a uid and its runtime gids.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Label in the matrix (user name, or `other`).
    pub name: String,
    /// Role: `app`, `backup` or `other`.
    pub role: &'static str,
    /// uid.
    pub uid: u32,
    /// Primary gid and /etc/group memberships.
    pub gids: BTreeSet<u32>,
}

/// One POSIX ACL entry (tag, permission bits, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclEntry {
    tag: u16,
    perm: u16,
    id: u32,
}

const ACL_USER_OBJ: u16 = 1;
const ACL_USER: u16 = 2;
const ACL_GROUP_OBJ: u16 = 4;
const ACL_GROUP: u16 = 8;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;

/// Decode the `system.posix_acl_access` xattr value.
pub fn parse_acl(raw: &[u8]) -> Option<Vec<AclEntry>> {
    if raw.len() < 4 || u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) != 2 {
        return None;
    }
    Some(
        raw[4..]
            .chunks_exact(8)
            .map(|c| AclEntry {
                tag: u16::from_le_bytes([c[0], c[1]]),
                perm: u16::from_le_bytes([c[2], c[3]]),
                id: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

/// Read an extended attribute of `path` without following a symlink.
pub fn lgetxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = vec![0u8; 1024];
    // SAFETY: both strings are NUL-terminated and live across the call; the
    // buffer pointer and length describe `buf`, which the kernel fills at
    // most `buf.len()` bytes of.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return None;
    }
    buf.truncate(r as usize);
    Some(buf)
}

/// A file's owner, group, mode and ACL.
#[derive(Debug, Clone)]
pub struct Node {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Mode bits (with type).
    pub mode: u32,
    /// ACL entries, if an extended ACL is set.
    pub acl: Option<Vec<AclEntry>>,
}

impl Node {
    /// lstat + ACL of `path`.
    pub fn read(path: &Path) -> Option<Node> {
        let m = std::fs::symlink_metadata(path).ok()?;
        let acl = lgetxattr(path, "system.posix_acl_access").and_then(|r| parse_acl(&r));
        Some(Node {
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode(),
            acl,
        })
    }

    /// Permission bits (r=4, w=2, x=1) `p` gets, by the POSIX.1e algorithm.
    pub fn perms(&self, p: &Principal) -> u32 {
        if p.uid == 0 {
            return 7;
        }
        let mode = self.mode;
        let Some(acl) = &self.acl else {
            return if p.uid == self.uid {
                (mode >> 6) & 7
            } else if p.gids.contains(&self.gid) {
                (mode >> 3) & 7
            } else {
                mode & 7
            };
        };
        let get = |tag: u16| acl.iter().find(|e| e.tag == tag).map(|e| u32::from(e.perm));
        let mask = get(ACL_MASK).unwrap_or(7);
        if p.uid == self.uid {
            return get(ACL_USER_OBJ).unwrap_or((mode >> 6) & 7);
        }
        if let Some(e) = acl.iter().find(|e| e.tag == ACL_USER && e.id == p.uid) {
            return u32::from(e.perm) & mask;
        }
        let mut matched = false;
        let mut g = 0;
        for e in acl {
            let hit = (e.tag == ACL_GROUP_OBJ && p.gids.contains(&self.gid))
                || (e.tag == ACL_GROUP && p.gids.contains(&e.id));
            if hit {
                matched = true;
                g |= u32::from(e.perm) & mask;
            }
        }
        if matched {
            return g;
        }
        get(ACL_OTHER).unwrap_or(mode & 7)
    }

    fn is_dir(&self) -> bool {
        self.mode & 0o170000 == 0o040000
    }
}

/// Access summary: `rw`, `r`, `w`, `x` (traverse only) or `-`.
fn access(node: &Node, p: &Principal, reachable: bool) -> String {
    if !reachable {
        return "-".into();
    }
    let b = node.perms(p);
    let (r, w, x) = (b & 4 != 0, b & 2 != 0, b & 1 != 0);
    if node.is_dir() {
        match (r && x, w && x, x) {
            (true, true, _) => "rw".into(),
            (true, false, _) => "r".into(),
            (false, true, _) => "w".into(),
            (false, false, true) => "x".into(),
            _ => "-".into(),
        }
    } else {
        match (r, w) {
            (true, true) => "rw".into(),
            (true, false) => "r".into(),
            (false, true) => "w".into(),
            _ => "-".into(),
        }
    }
}

/// Whether `p` can traverse every directory from `from` (inclusive) down to
/// `target`'s parent.
fn reachable(
    root: &Root,
    from: &Path,
    target: &Path,
    p: &Principal,
    cache: &mut BTreeMap<PathBuf, Option<Node>>,
) -> bool {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut cur = target.parent();
    while let Some(d) = cur {
        dirs.push(d.to_path_buf());
        if d == from || !d.starts_with(from) {
            break;
        }
        cur = d.parent();
    }
    dirs.iter().all(|d| {
        let node = cache
            .entry(d.clone())
            .or_insert_with(|| Node::read(&root.join(d)))
            .clone();
        node.is_some_and(|n| n.perms(p) & 1 != 0)
    })
}

/// The principals of the fleet: each app user, the backup user and
/// `other` (a local user in no app group).
pub fn principals(acc: &Accounts, fleet: &[&AppSpec], backup_user: &str) -> Vec<Principal> {
    let mut out = Vec::new();
    for spec in fleet {
        if let Some(u) = acc.user(&spec.user) {
            if out
                .iter()
                .any(|p: &Principal| p.uid == u.uid && p.name == u.name)
            {
                continue;
            }
            out.push(Principal {
                name: u.name.clone(),
                role: "app",
                uid: u.uid,
                gids: acc.gids_of(&u.name).into_iter().collect(),
            });
        }
    }
    if let Some(u) = acc.user(backup_user) {
        out.push(Principal {
            name: u.name.clone(),
            role: "backup",
            uid: u.uid,
            gids: acc.gids_of(&u.name).into_iter().collect(),
        });
    }
    out.push(Principal {
        name: "other".into(),
        role: "other",
        uid: 4_294_967_294,
        gids: [4_294_967_294].into_iter().collect(),
    });
    out
}

fn kind_of(spec: &AppSpec, path: &Path, is_dir: bool) -> &'static str {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let in_backups = spec
        .backup_dir
        .as_ref()
        .is_some_and(|b| path.starts_with(b) && path != b.as_path());
    if path == spec.home {
        "home"
    } else if spec.backup_dir.as_deref() == Some(path) {
        "backups"
    } else if path == spec.data_dir() {
        "data"
    } else if in_backups {
        "backup"
    } else if is_dir {
        "dir"
    } else if name.ends_with(".key") {
        "key"
    } else if [
        ".db",
        ".sqlite",
        ".db-wal",
        ".db-shm",
        ".sqlite-wal",
        ".sqlite-shm",
        "-wal",
        "-shm",
    ]
    .iter()
    .any(|s| name.ends_with(s))
    {
        "database"
    } else if path.starts_with(spec.bin_dir())
        || spec.exec.first().is_some_and(|e| Path::new(e) == path)
    {
        "binary"
    } else {
        "file"
    }
}

/// `evidence` with the path added: `path` shown lossily as UTF-8 and, when
/// the name is not UTF-8, `path_hex` with its exact bytes. Never fails, so a
/// file name an app chose cannot stop the audit.
pub fn at(path: &Path, evidence: serde_json::Value) -> serde_json::Value {
    let mut evidence = match evidence {
        serde_json::Value::Object(m) => m,
        other => {
            let mut m = serde_json::Map::new();
            m.insert("value".into(), other);
            m
        }
    };
    let bytes = path.as_os_str().as_bytes();
    let shown = String::from_utf8_lossy(bytes);
    if let std::borrow::Cow::Owned(_) = shown {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        evidence.insert("path_hex".into(), hex.into());
    }
    evidence.insert("path".into(), shown.into_owned().into());
    serde_json::Value::Object(evidence)
}

fn mode_str(m: u32) -> String {
    format!("{:04o}", m & 0o7777)
}

/// Audit one app's tree against the fleet. `env_files` come from the unit.
pub fn audit_app(
    root: &Root,
    acc: &Accounts,
    spec: &AppSpec,
    fleet: &[&AppSpec],
    backup_user: &str,
    env_files: &[String],
) -> (serde_json::Value, Vec<Finding>) {
    let mut f = Vec::new();
    let princ = principals(acc, fleet, backup_user);
    let owner = acc.user(&spec.user);
    let owner_uid = owner.map(|u| u.uid);
    let name_of = |uid: u32| {
        acc.user_by_uid(uid)
            .map(|u| u.name.clone())
            .unwrap_or_else(|| uid.to_string())
    };
    let group_of = |gid: u32| {
        acc.group_by_gid(gid)
            .map(|g| g.name.clone())
            .unwrap_or_else(|| gid.to_string())
    };
    let mut cache: BTreeMap<PathBuf, Option<Node>> = BTreeMap::new();
    let home_host = root.join(&spec.home);
    let Some(home_node) = Node::read(&home_host) else {
        f.push(Finding::new(
            "PERMS_HOME_MISSING",
            Severity::High,
            format!("the home {} does not exist", spec.home.display()),
            at(&spec.home, json!({})),
            "run rip-perms to create the layout",
        ));
        return (json!({"principals": [], "resources": []}), f);
    };

    // Home: owner and mode (USER-01 and the layout policy).
    if Some(home_node.uid) != owner_uid {
        f.push(Finding::new(
            "PERMS_HOME_OWNER",
            Severity::High,
            format!(
                "{} is owned by {}, not by {}",
                spec.home.display(),
                name_of(home_node.uid),
                spec.user
            ),
            at(
                &spec.home,
                json!({"owner": name_of(home_node.uid), "mode": mode_str(home_node.mode)}),
            ),
            format!("chown {}: {}", spec.user, spec.home.display()),
        ));
    }
    let other_bits = home_node.perms(&princ[princ.len() - 1]);
    if other_bits & 5 != 0 {
        f.push(Finding::new(
            "ISOLATION_HOME_WORLD_ACCESS",
            Severity::High,
            format!(
                "{} is open to every local user ({})",
                spec.home.display(),
                mode_str(home_node.mode)
            ),
            at(
                &spec.home,
                json!({"mode": mode_str(home_node.mode), "acl": home_node.acl.is_some()}),
            ),
            format!(
                "chmod {} {}",
                if spec.backups_enabled() {
                    "0710"
                } else {
                    "0700"
                },
                spec.home.display()
            ),
        ));
    }
    let allowed_group = if spec.backups_enabled() { 0o010 } else { 0 };
    if home_node.mode & 0o070 & !allowed_group != 0 {
        f.push(Finding::new(
            "PERMS_HOME_MODE",
            Severity::Medium,
            format!("{} has group bits beyond the policy", spec.home.display()),
            at(
                &spec.home,
                json!({"mode": mode_str(home_node.mode),
                   "policy": if spec.backups_enabled() { "0710" } else { "0700" }}),
            ),
            format!(
                "chmod {} {}",
                if spec.backups_enabled() {
                    "0710"
                } else {
                    "0700"
                },
                spec.home.display()
            ),
        ));
    }

    // Walk the tree (never following symlinks).
    let mut resources = Vec::new();
    let mut cross: Vec<serde_json::Value> = Vec::new();
    let mut backup_reach: Vec<serde_json::Value> = Vec::new();
    let mut backup_other: Vec<serde_json::Value> = Vec::new();
    let mut count = 0usize;
    for entry in walkdir::WalkDir::new(&home_host)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        count += 1;
        if count > 200_000 {
            f.push(Finding::new(
                "PERMS_WALK_TRUNCATED",
                Severity::Medium,
                format!(
                    "{} has more than 200000 entries: the rest was not checked",
                    spec.home.display()
                ),
                at(&spec.home, json!({"checked": count - 1})),
                "audit the remaining files with find(1), or split the data out of the home",
            ));
            break;
        }
        let host_path = entry.path().to_path_buf();
        let path = root.strip(&host_path);
        let Some(node) = Node::read(&host_path) else {
            continue;
        };
        let is_link = node.mode & 0o170000 == 0o120000;
        if is_link {
            continue;
        }
        let kind = kind_of(spec, &path, node.is_dir());

        if owner_uid.is_some_and(|u| u != node.uid) {
            f.push(Finding::new(
                "PERMS_FOREIGN_OWNER",
                Severity::High,
                format!("{} is owned by {}, not by {}", path.display(), name_of(node.uid), spec.user),
                at(&path, json!({"owner": name_of(node.uid), "group": group_of(node.gid), "mode": mode_str(node.mode)})),
                format!("chown {}:{} {} (run restores as the app user)", spec.user, spec.group, path.display()),
            ));
        }
        if node.mode & 0o6000 != 0 && !node.is_dir() {
            f.push(Finding::new(
                "PERMS_SETUID",
                Severity::High,
                format!("{} is setuid/setgid inside an app tree", path.display()),
                at(
                    &path,
                    json!({"mode": mode_str(node.mode), "owner": name_of(node.uid)}),
                ),
                format!("chmod ug-s {}", path.display()),
            ));
        }
        if !node.is_dir() && lgetxattr(&host_path, "security.capability").is_some() {
            f.push(Finding::new(
                "PERMS_FILE_CAPS",
                Severity::High,
                format!("{} carries file capabilities", path.display()),
                at(&path, json!({})),
                format!(
                    "setcap -r {} (grant capabilities with AmbientCapabilities=)",
                    path.display()
                ),
            ));
        }
        if node.mode & 0o002 != 0 && !(node.is_dir() && node.mode & 0o1000 != 0) {
            f.push(Finding::new(
                "PERMS_WORLD_WRITABLE",
                Severity::High,
                format!("{} is writable by every local user", path.display()),
                at(&path, json!({"mode": mode_str(node.mode)})),
                format!("chmod o-w {}", path.display()),
            ));
        }
        if kind == "database" && node.mode & 0o044 != 0 {
            f.push(Finding::new(
                "PERMS_DB_READABLE",
                Severity::High,
                format!(
                    "live database {} is readable beyond its owner",
                    path.display()
                ),
                at(
                    &path,
                    json!({"mode": mode_str(node.mode), "group": group_of(node.gid)}),
                ),
                format!("chmod 0600 {}", path.display()),
            ));
        }
        if kind == "key" && node.mode & 0o077 != 0 {
            f.push(Finding::new(
                "PERMS_KEY_READABLE",
                Severity::Critical,
                format!("key {} is accessible beyond its owner", path.display()),
                at(&path, json!({"mode": mode_str(node.mode)})),
                format!("chmod 0600 {}", path.display()),
            ));
        }

        let interesting = matches!(
            kind,
            "home" | "data" | "backups" | "backup" | "key" | "database" | "binary"
        );
        let mut row = BTreeMap::new();
        for p in &princ {
            if Some(p.uid) == owner_uid {
                continue;
            }
            let reach = path == spec.home || reachable(root, &spec.home, &path, p, &mut cache);
            let a = access(&node, p, reach);
            if a != "-" && a != "x" {
                match p.role {
                    "app" => cross.push(at(
                        &path,
                        json!({"principal": p.name, "kind": kind, "access": a}),
                    )),
                    "backup" => {
                        let allowed = matches!(kind, "backup" | "backups") && !a.contains('w');
                        let item = at(
                            &path,
                            json!({"principal": p.name, "kind": kind, "access": a}),
                        );
                        if matches!(kind, "file" | "dir") && !a.contains('w') {
                            backup_other.push(item);
                        } else if !allowed {
                            backup_reach.push(item);
                        }
                    }
                    _ => {}
                }
            }
            row.insert(p.name.clone(), a);
        }
        if interesting {
            resources.push(at(
                &path,
                json!({
                    "kind": kind, "owner": name_of(node.uid), "group": group_of(node.gid),
                    "mode": mode_str(node.mode), "acl": node.acl.is_some(), "access": row,
                }),
            ));
        }
    }
    if !cross.is_empty() {
        f.push(Finding::new(
            "ISOLATION_CROSS_APP",
            Severity::Critical,
            format!("other apps' users can reach {}'s files", spec.name),
            json!({"access": cross}),
            "remove the group membership or ACL that grants it, and apply rip-perms modes",
        ));
    }
    if !backup_reach.is_empty() {
        f.push(Finding::new(
            "ISOLATION_BACKUP_REACH",
            Severity::High,
            format!(
                "the backup user reaches more of {} than its snapshots",
                spec.name
            ),
            json!({"access": backup_reach}),
            "keep databases and keys 0600 and the home 0710; backups only in the 2750 backups dir",
        ));
    }

    if !backup_other.is_empty() {
        f.push(Finding::new(
            "ISOLATION_BACKUP_READS_OTHER",
            Severity::Low,
            format!(
                "the backup user can read other files of {} by name",
                spec.name
            ),
            json!({"access": backup_other}),
            "chmod go-rwx the files (e.g. dotfiles copied from /etc/skel)",
        ));
    }

    // EnvironmentFile= targets (read by PID 1 as root).
    let mut envs: Vec<String> = spec
        .env_files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    envs.extend(env_files.iter().cloned());
    envs.sort();
    envs.dedup();
    for e in envs {
        let e = e.trim_start_matches('-').to_owned();
        let Some(node) = Node::read(&root.join(&e)) else {
            continue;
        };
        let shared_group = acc
            .group_by_gid(node.gid)
            .is_some_and(|g| g.members.iter().any(|m| *m != spec.user) || g.name != spec.group);
        let readable =
            node.mode & 0o004 != 0 || (node.mode & 0o040 != 0 && shared_group) || node.uid != 0;
        if readable {
            f.push(Finding::new(
                "PERMS_ENVFILE_READABLE",
                Severity::High,
                format!("EnvironmentFile {e} can be read by others than root"),
                at(Path::new(&e), json!({"owner": name_of(node.uid), "group": group_of(node.gid), "mode": mode_str(node.mode)})),
                format!("chown root:root {e} && chmod 0600 {e} (systemd reads it as root)"),
            ));
        }
    }

    // Group memberships: backup user, and app users in other apps' groups.
    let app_groups: BTreeMap<u32, &AppSpec> = fleet
        .iter()
        .filter_map(|s| acc.group(&s.group).map(|g| (g.gid, *s)))
        .collect();
    if let Some(b) = princ.iter().find(|p| p.role == "backup") {
        let primary = acc.user(&b.name).map(|u| u.gid);
        for gid in &b.gids {
            if Some(*gid) == primary {
                continue;
            }
            let ok = app_groups.get(gid).is_some_and(|s| s.backups_enabled());
            let mine = app_groups.get(gid).is_some_and(|s| s.name == spec.name);
            let unrelated = !app_groups.contains_key(gid);
            // Report each wrong group once: with its app, or with the first app.
            let first = fleet.first().is_some_and(|s| s.name == spec.name);
            if !ok && (mine || (unrelated && first)) {
                f.push(Finding::new(
                    "ISOLATION_BACKUP_GROUPS",
                    Severity::High,
                    format!(
                        "the backup user is in group {}, which it does not need",
                        group_of(*gid)
                    ),
                    json!({"user": b.name, "group": group_of(*gid)}),
                    format!("gpasswd -d {} {}", b.name, group_of(*gid)),
                ));
            }
        }
    }
    if let Some(g) = acc.group(&spec.group) {
        for p in princ
            .iter()
            .filter(|p| p.role == "app" && Some(p.uid) != owner_uid)
        {
            if p.gids.contains(&g.gid) {
                f.push(Finding::new(
                    "ISOLATION_SHARED_GROUP",
                    Severity::Critical,
                    format!("{} is a member of {}'s group {}", p.name, spec.name, g.name),
                    json!({"user": p.name, "group": g.name}),
                    format!("gpasswd -d {} {}", p.name, g.name),
                ));
            }
        }
    }
    let matrix = json!({
        "principals": princ.iter().filter(|p| Some(p.uid) != owner_uid)
            .map(|p| json!({"name": p.name, "role": p.role, "uid": if p.role == "other" { serde_json::Value::Null } else { json!(p.uid) }, "gids": p.gids}))
            .collect::<Vec<_>>(),
        "resources": resources,
    });
    (matrix, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redteam_non_utf8_path_is_shown_lossily_with_hex() {
        let p = Path::new(std::ffi::OsStr::from_bytes(b"/d/x\xfe"));

        let ev = at(p, json!({"mode": "0600"}));
        let plain = at(Path::new("/d/x"), json!({}));

        assert_eq!(ev["path"], "/d/x\u{fffd}");
        assert_eq!(ev["path_hex"], "2f642f78fe");
        assert_eq!(ev["mode"], "0600");
        assert_eq!(plain, json!({"path": "/d/x"}));
    }

    fn who(uid: u32, gids: &[u32]) -> Principal {
        Principal {
            name: "p".into(),
            role: "app",
            uid,
            gids: gids.iter().copied().collect(),
        }
    }

    #[test]
    fn mode_bits_without_acl() {
        let n = Node {
            uid: 10,
            gid: 20,
            mode: 0o100640,
            acl: None,
        };

        assert_eq!(n.perms(&who(10, &[])), 6);
        assert_eq!(n.perms(&who(11, &[20])), 4);
        assert_eq!(n.perms(&who(12, &[])), 0);
    }

    #[test]
    fn named_acl_user_is_masked() {
        let raw: Vec<u8> = [
            2u32.to_le_bytes().to_vec(),
            [1u16.to_le_bytes(), 6u16.to_le_bytes()].concat(),
            u32::MAX.to_le_bytes().to_vec(),
            [2u16.to_le_bytes(), 6u16.to_le_bytes()].concat(),
            12u32.to_le_bytes().to_vec(),
            [4u16.to_le_bytes(), 0u16.to_le_bytes()].concat(),
            u32::MAX.to_le_bytes().to_vec(),
            [0x10u16.to_le_bytes(), 4u16.to_le_bytes()].concat(),
            u32::MAX.to_le_bytes().to_vec(),
            [0x20u16.to_le_bytes(), 0u16.to_le_bytes()].concat(),
            u32::MAX.to_le_bytes().to_vec(),
        ]
        .concat();
        let n = Node {
            uid: 10,
            gid: 20,
            mode: 0o100640,
            acl: parse_acl(&raw),
        };

        assert_eq!(n.perms(&who(12, &[])), 4);
        assert_eq!(n.perms(&who(13, &[])), 0);
    }
}
