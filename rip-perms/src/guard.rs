//! Refuse, before anything is touched, a home or `rw_paths` entry that is
//! someone else's tree: a system directory, a path that equals, lies in or
//! holds the home of another account of `<root>/etc/passwd`, or an existing
//! directory that belongs to another account. rip-perms takes over (chowns
//! recursively) what it is given, so it checks this itself, from what it
//! sees on disk, whatever the spec validation upstream let through.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rip_core::accounts::Accounts;
use rip_core::AppSpec;

use crate::policy::Mode;
use crate::sys::{self, Kind, Stat};

/// Top-level directories of the system: no app tree may be one of them or
/// lie inside one (`/var` included: `/var/log`, `/var/spool`, daemons'
/// `/var/lib/*` homes). rip-core refuses them in specs already; this guard
/// checks again on what is on disk.
pub use rip_core::validate::SYSTEM_DIRS as SYSTEM_TOPS;

/// Homes of passwd entries that mean "no home".
const NO_HOME: &[&str] = &["/", "/nonexistent"];

/// A refusal: the spec field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `home` or `rw_paths[i]`.
    pub field: String,
    /// What is wrong, for the operator.
    pub message: String,
}

/// `p` made absolute and lexical: normal components kept, `.` dropped,
/// `..` pops. `None` when `p` is not absolute.
pub fn normalize(p: &Path) -> Option<PathBuf> {
    if !p.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Some(out)
}

/// How a path relates to another account's home.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The same directory.
    Equals,
    /// Inside that home.
    Inside,
    /// Holds that home.
    Contains,
}

impl Relation {
    fn as_str(self) -> &'static str {
        match self {
            Relation::Equals => "is",
            Relation::Inside => "lies inside",
            Relation::Contains => "contains",
        }
    }
}

/// How `target` relates to `home` (both normalized), if at all.
pub fn relation(target: &Path, home: &Path) -> Option<Relation> {
    if target == home {
        Some(Relation::Equals)
    } else if target.starts_with(home) {
        Some(Relation::Inside)
    } else if home.starts_with(target) {
        Some(Relation::Contains)
    } else {
        None
    }
}

/// Why `p` (normalized) is a system directory, if it is one.
pub fn system_tree(p: &Path) -> Option<String> {
    let comps: Vec<&OsStr> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    match comps.first() {
        None => Some("is the root directory".to_owned()),
        Some(first) if SYSTEM_TOPS.iter().any(|s| s.as_bytes() == first.as_bytes()) => {
            Some(format!(
                "lies in the system directory \"/{}\"; rip-perms never takes over system trees",
                first.to_string_lossy()
            ))
        }
        Some(_) if comps.len() < 2 => Some(
            "is a top-level directory; an app's tree must be at least two levels deep \
             (like /home/app)"
                .to_owned(),
        ),
        Some(_) => None,
    }
}

/// What is at a path, looked at without following any symlink.
#[derive(Debug)]
pub enum Probe {
    /// Nothing there (a component is missing).
    Missing,
    /// A directory, open, with its stat.
    Dir(OwnedFd, Stat),
    /// Something else, or a symlink on the way: left to the walk, which
    /// refuses it.
    Other,
}

/// Look at `path` (of the target system) from `root`, one component at a
/// time with `O_NOFOLLOW`; nothing is created or changed.
pub fn probe(root: BorrowedFd<'_>, path: &Path) -> Probe {
    let mut cur: Option<OwnedFd> = None;
    for c in path.components() {
        let Component::Normal(n) = c else { continue };
        let dir = cur.as_ref().map_or(root, |f| f.as_fd());
        let Ok(name) = sys::cpath(n.as_bytes()) else {
            return Probe::Other;
        };
        match sys::open_dir_at(dir, &name) {
            Ok(fd) => cur = Some(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Probe::Missing,
            Err(_) => return Probe::Other,
        }
    }
    match cur {
        Some(fd) => match sys::stat_fd(fd.as_fd()) {
            Ok(st) => Probe::Dir(fd, st),
            Err(_) => Probe::Other,
        },
        None => Probe::Other,
    }
}

/// Who may own an existing tree rip-perms is asked to take over, and whose
/// ids mark a file as another account's.
#[derive(Debug, Clone)]
pub struct Owners<'a> {
    /// The accounts of `<root>/etc`.
    pub accounts: &'a Accounts,
    /// App user name.
    pub user: &'a str,
    /// App uid.
    pub uid: u32,
    /// App gid.
    pub gid: u32,
    /// Our effective uid (allowed as owner when not root, so that a run as
    /// an ordinary user can be repeated).
    pub euid: u32,
    /// Our effective gid (likewise).
    pub egid: u32,
}

impl Owners<'_> {
    fn ok_uid(&self, uid: u32) -> bool {
        uid == 0 || uid == self.uid || (self.euid != 0 && uid == self.euid)
    }

    fn ok_gid(&self, gid: u32) -> bool {
        gid == 0 || gid == self.gid || (self.euid != 0 && gid == self.egid)
    }

    fn uid_name(&self, uid: u32) -> String {
        match self.accounts.user_by_uid(uid) {
            Some(u) => format!("uid {uid} ({})", u.name),
            None => format!("uid {uid}"),
        }
    }

    /// Another account's id on an entry (uid or gid naming an account or a
    /// group of `<root>/etc` that is not root's, the app's or ours).
    fn foreign(&self, st: &Stat) -> Option<String> {
        if !self.ok_uid(st.uid) {
            if let Some(u) = self.accounts.user_by_uid(st.uid) {
                return Some(format!("owned by uid {} ({})", st.uid, u.name));
            }
        }
        if !self.ok_gid(st.gid) {
            if let Some(g) = self.accounts.group_by_gid(st.gid) {
                return Some(format!("in group gid {} ({})", st.gid, g.name));
            }
        }
        None
    }
}

/// The homes of the other accounts that exist on disk, normalized.
pub fn other_homes(root: BorrowedFd<'_>, accounts: &Accounts) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for u in &accounts.users {
        let Some(home) = normalize(Path::new(&u.home)) else {
            continue;
        };
        if NO_HOME.iter().any(|h| Path::new(h) == home) {
            continue;
        }
        if matches!(probe(root, &home), Probe::Missing) {
            continue;
        }
        out.push((u.name.clone(), home));
    }
    out
}

/// Check one tree (`field` is `home` or `rw_paths[i]`).
fn check_tree(
    root: BorrowedFd<'_>,
    field: &str,
    path: &Path,
    homes: &[(String, PathBuf)],
    owners: &Owners<'_>,
) -> Result<(), Refused> {
    let refuse = |message: String| Refused {
        field: field.to_owned(),
        message,
    };
    let Some(p) = normalize(path) else {
        return Err(refuse(format!("{path:?} is not an absolute path")));
    };
    if let Some(why) = system_tree(&p) {
        return Err(refuse(format!("{p:?} {why}")));
    }
    for (name, home) in homes {
        if name == owners.user {
            continue;
        }
        if let Some(rel) = relation(&p, home) {
            return Err(refuse(format!(
                "{p:?} {} the home {home:?} of the account {name:?} in <root>/etc/passwd; \
                 rip-perms never takes over another account's files",
                rel.as_str()
            )));
        }
    }
    let Probe::Dir(fd, st) = probe(root, &p) else {
        return Ok(());
    };
    if !owners.ok_uid(st.uid) {
        return Err(refuse(format!(
            "{p:?} exists and belongs to {}, not to root or the app user {:?}; an existing \
             tree owned by someone else is never taken over (give the app its own directory, \
             or chown this one to the app user first if it really is the app's)",
            owners.uid_name(st.uid),
            owners.user
        )));
    }
    if st.uid == owners.uid {
        // The app's own tree: what is in it is the app's (or a restore's)
        // to be given back.
        return Ok(());
    }
    if st.perm() & 0o1002 != 0 {
        return Err(refuse(format!(
            "{p:?} exists, belongs to {} and has mode {}: a shared directory (sticky or \
             writable by others) is never taken over",
            owners.uid_name(st.uid),
            Mode(st.perm())
        )));
    }
    if let Some(why) = owners.foreign(&st) {
        return Err(refuse(format!(
            "{p:?} exists and is {why}: it belongs to another account and is never taken over"
        )));
    }
    // A directory owned by root: look one level down for another account's
    // files (e.g. /var/log, a spool); a tree root prepared for the app holds
    // only root's and the app's.
    let mut found: Option<String> = None;
    let mut reader = sys::DirReader::default();
    let listed = reader.for_each(fd.as_fd(), |name, _| {
        if found.is_some() {
            return;
        }
        if let Ok(est) = sys::stat_at(fd.as_fd(), name) {
            if est.kind() == Kind::Symlink {
                return;
            }
            if let Some(why) = owners.foreign(&est) {
                found = Some(format!(
                    "{:?} is {why}",
                    p.join(OsStr::from_bytes(name.to_bytes()))
                ));
            }
        }
    });
    if let Err(e) = listed {
        return Err(refuse(format!("cannot list {p:?}: {e}")));
    }
    if let Some(what) = found {
        return Err(refuse(format!(
            "{p:?} exists, belongs to root and holds another account's files ({what}); \
             such a tree is never taken over"
        )));
    }
    Ok(())
}

/// Check the home and every `rw_paths` entry of one app.
pub fn check_spec(
    root: BorrowedFd<'_>,
    spec: &AppSpec,
    homes: &[(String, PathBuf)],
    owners: &Owners<'_>,
) -> Result<(), Refused> {
    check_tree(root, "home", &spec.home, homes, owners)?;
    for (i, p) in spec.rw_paths.iter().enumerate() {
        check_tree(root, &format!("rw_paths[{i}]"), p, homes, owners)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn relations_are_component_wise() {
        assert_eq!(
            relation(&p("/var/lib/x"), &p("/var/lib/x")),
            Some(Relation::Equals)
        );
        assert_eq!(
            relation(&p("/var/lib/x/y"), &p("/var/lib/x")),
            Some(Relation::Inside)
        );
        assert_eq!(
            relation(&p("/var/lib"), &p("/var/lib/x")),
            Some(Relation::Contains)
        );
        assert_eq!(relation(&p("/home/app1"), &p("/home/app")), None);
        assert_eq!(relation(&p("/home/app"), &p("/home/app1")), None);
    }

    #[test]
    fn system_trees_are_recognized() {
        assert!(system_tree(&p("/var/log")).is_some());
        assert!(system_tree(&p("/var/spool/cron")).is_some());
        assert!(system_tree(&p("/etc/app")).is_some());
        assert!(system_tree(&p("/")).is_some());
        assert!(system_tree(&p("/srv")).is_some());
        assert!(system_tree(&p("/home/app1")).is_none());
        assert!(system_tree(&p("/srv/app1/cache")).is_none());
        assert!(system_tree(&p("/variable/x")).is_none());
    }

    /// The guard on its own (rip-core's validation refuses these paths too,
    /// so the integration tests cannot tell which layer answered).
    #[test]
    fn red_team_high_guard_refuses_system_trees_and_other_homes_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "var/spool/cron/crontabs",
            "var/log",
            "var/lib/svc",
            "home/app1",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let root = sys::open_root(dir.path()).unwrap();
        let accounts = Accounts {
            users: rip_core::accounts::parse_passwd(
                "svc:x:60020:60020::/var/lib/svc:/usr/sbin/nologin\n\
                 app1:x:60001:60001::/home/app1:/bin/sh\n",
            ),
            groups: Vec::new(),
        };
        let homes = other_homes(root.as_fd(), &accounts);
        let owners = Owners {
            accounts: &accounts,
            user: "app1",
            uid: 60001,
            gid: 60001,
            euid: 0,
            egid: 0,
        };
        let recs = rip_core::io::parse_records(br#"{"name":"app1"}"#).unwrap();
        let check = |home: &str, rw: &[&str]| {
            let mut spec = recs[0].spec.clone();
            spec.home = PathBuf::from(home);
            spec.rw_paths = rw.iter().map(PathBuf::from).collect();
            check_spec(root.as_fd(), &spec, &homes, &owners)
        };

        let cron = check("/var/spool/cron", &[]).unwrap_err();
        let log = check("/home/app1", &["/var/log"]).unwrap_err();
        let daemon = check("/home/app1", &["/srv/x", "/var/lib/svc"]).unwrap_err();

        assert_eq!(cron.field, "home");
        assert!(
            cron.message.contains("system directory"),
            "{}",
            cron.message
        );
        assert_eq!(log.field, "rw_paths[0]");
        assert_eq!(daemon.field, "rw_paths[1]");
        assert_eq!(check("/home/app1", &["/srv/x"]), Ok(()));
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(&p("/home/./a/../b/")), Some(p("/home/b")));
        assert_eq!(normalize(&p("home/a")), None);
    }
}
