//! One app: reach its home (and each `rw_paths` entry outside the home) from
//! the root fd one component at a time, create what is missing, then hand
//! the trees to the walker.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use crate::layout::{Class, Layout};
use crate::policy::Mode;
use crate::report::{Entry, Owner, Partial, ShownPath};
use crate::sys::{self, Acls, Stat};
use crate::walk::{self, Ctx, Job, RootInfo};

/// How to run.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Report only.
    pub dry_run: bool,
    /// Walker threads.
    pub threads: usize,
    /// Cap on listed entries.
    pub cap: usize,
}

/// How far reaching the top of a tree got.
enum Reach {
    /// Open, with its stat; `created` when we made it.
    Open(OwnedFd, Stat, bool),
    /// Missing (dry run): the caller reports it as to be created.
    Missing,
    /// Could not reach it (recorded in the partial result).
    Failed,
}

/// Mode of the directories rip-perms creates above a tree (e.g. `/home`).
const SYSTEM_DIR_MODE: u32 = 0o755;

/// Whether a directory above an app's tree can be trusted: owned by root
/// (or by us when not root) and not writable by group or others, so no app
/// can swap anything in it.
fn trusted(st: &Stat, euid: u32) -> bool {
    (st.uid == 0 || st.uid == euid) && st.perm() & 0o022 == 0
}

/// Open the directory `target` (a path of the target system) from `root`:
/// every component above it must be a trusted directory (created 0755 if
/// missing), and none may be a symlink.
fn reach(
    root: BorrowedFd<'_>,
    target: &Path,
    dry_run: bool,
    euid: u32,
    out: &mut Partial,
) -> Reach {
    let comps: Vec<&OsStr> = target
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let Some((last, parents)) = comps.split_last() else {
        out.fail(target.as_os_str().as_bytes(), "is the root itself");
        return Reach::Failed;
    };
    let mut cur: Option<OwnedFd> = None;
    let mut shown: Vec<u8> = Vec::new();
    for (i, c) in parents.iter().enumerate() {
        shown.push(b'/');
        shown.extend_from_slice(c.as_bytes());
        let dirfd = cur.as_ref().map_or(root, |f| f.as_fd());
        let Ok(name) = sys::cpath(c.as_bytes()) else {
            out.fail(&shown, "contains a NUL byte");
            return Reach::Failed;
        };
        let fd = match sys::open_dir_at(dirfd, &name) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                if dry_run {
                    system_entry(out, &shown, None, euid);
                    let mut rest = shown.clone();
                    for c2 in &parents[i + 1..] {
                        rest.push(b'/');
                        rest.extend_from_slice(c2.as_bytes());
                        system_entry(out, &rest, None, euid);
                    }
                    return Reach::Missing;
                }
                match make_dir(dirfd, &name, SYSTEM_DIR_MODE) {
                    Ok((fd, st)) => {
                        system_entry(out, &shown, Some(st), euid);
                        fd
                    }
                    Err(e) => {
                        out.fail(&shown, format!("cannot create directory: {e}"));
                        return Reach::Failed;
                    }
                }
            }
            Err(e) => {
                out.fail(&shown, not_opened(dirfd, &name, &e));
                return Reach::Failed;
            }
        };
        match sys::stat_fd(fd.as_fd()) {
            Ok(st) if trusted(&st, euid) => {}
            Ok(st) => {
                out.fail(
                    &shown,
                    format!(
                        "PERMS_UNSAFE_PARENT: owned by uid {} with mode {}; a directory above an \
                         app's tree must belong to root and not be writable by group or others",
                        st.uid,
                        Mode(st.perm())
                    ),
                );
                return Reach::Failed;
            }
            Err(e) => {
                out.fail(&shown, format!("cannot stat: {e}"));
                return Reach::Failed;
            }
        }
        cur = Some(fd);
    }
    let path = target.as_os_str().as_bytes();
    let dirfd = cur.as_ref().map_or(root, |f| f.as_fd());
    let Ok(name) = sys::cpath(last.as_bytes()) else {
        out.fail(path, "contains a NUL byte");
        return Reach::Failed;
    };
    match sys::open_dir_at(dirfd, &name) {
        Ok(fd) => match sys::stat_fd(fd.as_fd()) {
            Ok(st) => Reach::Open(fd, st, false),
            Err(e) => {
                out.fail(path, format!("cannot stat: {e}"));
                Reach::Failed
            }
        },
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            if dry_run {
                return Reach::Missing;
            }
            match make_dir(dirfd, &name, 0o700) {
                Ok((fd, st)) => Reach::Open(fd, st, true),
                Err(e) => {
                    out.fail(path, format!("cannot create directory: {e}"));
                    Reach::Failed
                }
            }
        }
        Err(e) => {
            out.fail(path, not_opened(dirfd, &name, &e));
            Reach::Failed
        }
    }
}

/// Why `name` in `dir` could not be opened as a directory.
fn not_opened(dir: BorrowedFd<'_>, name: &std::ffi::CStr, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => match sys::stat_at(dir, name) {
            Ok(st) if st.kind() == sys::Kind::Symlink => {
                "is a symlink; rip-perms never follows one (give the real path)".to_owned()
            }
            _ => "is not a directory".to_owned(),
        },
        _ => format!("cannot open directory: {e}"),
    }
}

/// `mkdirat` then open it without following anything, and set `mode`
/// explicitly (the umask may have narrowed it).
fn make_dir(
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    mode: u32,
) -> std::io::Result<(OwnedFd, Stat)> {
    match sys::mkdir_at(dir, name, 0o700) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(e),
    }
    let fd = sys::open_dir_at(dir, name)?;
    let st = sys::stat_fd(fd.as_fd())?;
    if st.perm() != mode && mode != 0o700 {
        sys::chmod_fd(fd.as_fd(), mode, false)?;
        let st = sys::stat_fd(fd.as_fd())?;
        return Ok((fd, st));
    }
    Ok((fd, st))
}

fn system_entry(out: &mut Partial, path: &[u8], st: Option<Stat>, euid: u32) {
    let after = Owner {
        uid: st.map_or(euid, |s| s.uid),
        gid: st.map_or(0, |s| s.gid),
        mode: Mode(SYSTEM_DIR_MODE),
        acl: Acls::NONE,
    };
    out.add(
        Entry {
            path: ShownPath::new(path),
            kind: "dir",
            class: "system",
            created: true,
            before: None,
            after,
            pending: Vec::new(),
        },
        true,
    );
}

/// Fix one app's trees; returns everything seen, changed and refused.
pub fn fix_app(root: BorrowedFd<'_>, layout: &Layout, opts: &Opts) -> Partial {
    let euid = sys::euid();
    let mut out = Partial::new(opts.cap);
    let mut roots = Vec::new();
    let mut jobs = Vec::new();
    let mut missing = Vec::new();

    let mut tops: Vec<(&Path, Class, Option<usize>)> = vec![(&layout.home, Class::Home, Some(0))];
    for p in &layout.outside {
        tops.push((p, Class::Data, None));
    }
    for (path, class, node) in tops {
        let bytes = path.as_os_str().as_bytes().to_vec();
        match reach(root, path, opts.dry_run, euid, &mut out) {
            Reach::Open(fd, st, created) => {
                roots.push(RootInfo {
                    path: bytes.clone(),
                    dev: st.dev,
                    mnt_id: st.mnt_id,
                });
                jobs.push(Job::top(
                    fd,
                    st,
                    bytes,
                    class,
                    node,
                    created,
                    roots.len() - 1,
                ));
            }
            Reach::Missing => missing.push((bytes, class, node)),
            Reach::Failed => {}
        }
    }

    let ctx = Ctx {
        layout,
        dry_run: opts.dry_run,
        privileged: euid == 0,
        euid,
        cap: opts.cap,
        roots,
    };
    for (bytes, class, node) in missing {
        match node {
            Some(n) => walk::plan_created(&ctx, &mut out, &bytes, n),
            None => out.add(
                Entry {
                    path: ShownPath::new(&bytes),
                    kind: "dir",
                    class: class.as_str(),
                    created: true,
                    before: None,
                    after: Owner {
                        uid: layout.uid,
                        gid: layout.gid,
                        mode: Mode(layout.dir_mode(class, None)),
                        acl: Acls::NONE,
                    },
                    pending: if euid != 0 && euid != layout.uid {
                        vec!["owner"]
                    } else {
                        Vec::new()
                    },
                },
                true,
            ),
        }
    }
    out.merge(walk::run(&ctx, jobs, opts.threads));
    out
}
