//! The walker: a small pool of threads sharing a stack of directories to
//! visit. Each directory is opened relative to its parent's fd with
//! `O_NOFOLLOW|O_DIRECTORY`, each entry is looked at with `statx` relative to
//! that fd, and an entry that needs a change is opened `O_PATH|O_NOFOLLOW`,
//! checked to be the inode just seen, and changed through that fd. No path
//! string is ever resolved again, so swapping a directory for a symlink
//! mid-walk can only make rip-perms refuse that entry. POSIX ACLs are looked
//! up the same way (`getxattrat` by name, `fgetxattr` on a directory's fd)
//! and removed through the same fd as the mode.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};

use crate::layout::{Class, Layout};
use crate::policy::Mode;
use crate::report::{Entry, Owner, Partial, ShownPath};
use crate::sys::{self, Acl, Acls, Kind, Stat};

/// Refusal codes (stable, documented in MANUAL.md).
pub mod reason {
    /// A symlink whose target stays inside the walked tree.
    pub const SYMLINK_SKIPPED: &str = "PERMS_SYMLINK_SKIPPED";
    /// A symlink whose target (resolved lexically) leaves the walked tree.
    pub const SYMLINK_ESCAPES: &str = "PERMS_SYMLINK_ESCAPES";
    /// A fifo, socket or device node.
    pub const SPECIAL_FILE: &str = "PERMS_SPECIAL_FILE";
    /// A non-directory with several links that the app does not own.
    pub const HARDLINK: &str = "PERMS_HARDLINK";
    /// An entry on another file system.
    pub const OTHER_FS: &str = "PERMS_OTHER_FS";
    /// A mount point (same device, other mount: e.g. a bind mount).
    pub const MOUNT_POINT: &str = "PERMS_MOUNT_POINT";
    /// The entry changed between the look and the open.
    pub const RACE: &str = "PERMS_RACE";
    /// The entry disappeared during the walk.
    pub const VANISHED: &str = "PERMS_VANISHED";
    /// A name the layout needs as a directory is something else.
    pub const NOT_A_DIR: &str = "PERMS_NOT_A_DIR";
}

/// A walked tree's identity: its path and the file system it is on.
#[derive(Debug, Clone)]
pub struct RootInfo {
    /// Path as the target system sees it.
    pub path: Vec<u8>,
    /// Device of the tree's top directory.
    pub dev: (u32, u32),
    /// Mount id of the tree's top directory (0 if unknown).
    pub mnt_id: u64,
}

/// Settings shared by every walker thread of one app.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The app's layout.
    pub layout: &'a Layout,
    /// Report only.
    pub dry_run: bool,
    /// Running as root (owner changes possible).
    pub privileged: bool,
    /// Our effective uid.
    pub euid: u32,
    /// Cap on listed entries.
    pub cap: usize,
    /// The trees being walked.
    pub roots: Vec<RootInfo>,
}

enum DirSrc {
    /// Already open (the top of a tree), with its stat.
    Open(OwnedFd, Stat),
    /// To open: `name` in the directory `parent`.
    At(Arc<OwnedFd>, CString),
}

/// A directory to visit.
pub struct Job {
    src: DirSrc,
    path: Vec<u8>,
    class: Class,
    node: Option<usize>,
    created: bool,
    root: usize,
}

impl Job {
    /// The top directory of tree `root`, already opened and checked.
    pub fn top(
        fd: OwnedFd,
        st: Stat,
        path: Vec<u8>,
        class: Class,
        node: Option<usize>,
        created: bool,
        root: usize,
    ) -> Job {
        Job {
            src: DirSrc::Open(fd, st),
            path,
            class,
            node,
            created,
            root,
        }
    }
}

/// `dir/name` as bytes.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if !dir.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn split(p: &[u8]) -> Vec<&[u8]> {
    p.split(|&b| b == b'/').filter(|c| !c.is_empty()).collect()
}

/// Whether a symlink in directory `dir` pointing to `target` leaves `root`,
/// resolving `.` and `..` lexically (the target is never followed).
pub fn escapes(root: &[u8], dir: &[u8], target: &[u8]) -> bool {
    let mut comps: Vec<&[u8]> = if target.starts_with(b"/") {
        Vec::new()
    } else {
        split(dir)
    };
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                comps.pop();
            }
            c => comps.push(c),
        }
    }
    let root = split(root);
    !(comps.len() >= root.len() && comps[..root.len()] == root[..])
}

fn owner_of(st: &Stat, acl: Acls) -> Owner {
    Owner {
        uid: st.uid,
        gid: st.gid,
        mode: Mode(st.perm()),
        acl,
    }
}

/// What an owner, mode or ACL change acts on.
#[derive(Clone, Copy)]
enum Target<'f> {
    /// A directory we opened (a real fd).
    Dir(BorrowedFd<'f>),
    /// An `O_PATH` fd of a file, checked to be the inode we looked at.
    Path(BorrowedFd<'f>),
    /// A name in a directory that only root (or we) may change, so the name
    /// cannot be pointed at another inode under us (see `Here::frozen`).
    Name(BorrowedFd<'f>, &'f CStr),
    /// Nothing: a dry run.
    Nothing,
}

impl Target<'_> {
    fn chmod(self, mode: u32) -> io::Result<()> {
        match self {
            Target::Dir(fd) => sys::chmod_fd(fd, mode, false),
            Target::Path(fd) => sys::chmod_fd(fd, mode, true),
            Target::Name(dir, name) => sys::chmod_at_nofollow(dir, name, mode),
            Target::Nothing => Ok(()),
        }
    }

    fn chown(self, uid: u32, gid: u32) -> io::Result<()> {
        match self {
            Target::Dir(fd) | Target::Path(fd) => sys::chown_fd(fd, uid, gid),
            Target::Name(dir, name) => sys::chown_at_nofollow(dir, name, uid, gid),
            Target::Nothing => Ok(()),
        }
    }

    fn remove_acl(self, acl: Acl) -> io::Result<()> {
        match self {
            Target::Dir(fd) => sys::remove_acl_fd(fd, acl, false),
            Target::Path(fd) => sys::remove_acl_fd(fd, acl, true),
            Target::Name(dir, name) => sys::remove_acl_at_nofollow(dir, name, acl),
            Target::Nothing => Ok(()),
        }
    }
}

/// The ACLs of a directory, through its fd. A directory is about one entry
/// in a hundred, so it costs two `fgetxattr` calls per hundred entries.
fn dir_acls(fd: BorrowedFd<'_>) -> io::Result<Acls> {
    Ok(Acls {
        access: sys::has_acl_fd(fd, Acl::Access)?,
        default: sys::has_acl_fd(fd, Acl::Default)?,
    })
}

/// The directory being listed.
struct Here<'d> {
    fd: &'d Arc<OwnedFd>,
    path: &'d [u8],
    class: Class,
    node: Option<usize>,
    root: usize,
    /// Whether the last file needed a change (then open before stat).
    eager: bool,
    /// Whether the directory belongs to root (or us) and is not writable by
    /// group or others: then no app can rename, link or unlink in it while
    /// we work, and its files are changed by name (`AT_SYMLINK_NOFOLLOW`)
    /// without an open. Its own owner and mode are fixed after its entries.
    frozen: bool,
    /// Named subdirectories of the layout seen in it.
    present: Vec<usize>,
}

/// One walker thread's state.
struct Worker<'a> {
    ctx: &'a Ctx<'a>,
    out: Partial,
    reader: Option<sys::DirReader>,
}

impl<'a> Worker<'a> {
    fn new(ctx: &'a Ctx<'a>) -> Self {
        Worker {
            ctx,
            out: Partial::new(ctx.cap),
            reader: Some(sys::DirReader::default()),
        }
    }

    /// Bring one inode to `want`, the app's owner and no POSIX ACL (`acl`:
    /// those it has), through `target`. Order: narrow the mode to what both
    /// the old and the new mode allow (with an ACL, this narrows its mask,
    /// so named entries keep no more than before), remove the ACLs (the
    /// group then gets the narrowed group bits), change the owner (which
    /// drops setuid, setgid and file capabilities; only the policy's bits
    /// are set back), then set the final mode.
    #[allow(clippy::too_many_arguments)]
    fn fix(
        &mut self,
        target: Target<'_>,
        st: &Stat,
        acl: Acls,
        want: u32,
        path: &dyn Fn() -> Vec<u8>,
        kind: &'static str,
        class: &'static str,
        created: bool,
    ) {
        let (uid, gid) = (self.ctx.layout.uid, self.ctx.layout.gid);
        let owner_ok = st.uid == uid && st.gid == gid;
        if owner_ok && st.perm() == want && !acl.any() && !created {
            return;
        }
        let mut pending = Vec::new();
        let privileged = self.ctx.privileged;
        let euid = self.ctx.euid;
        if !privileged && !owner_ok {
            pending.push("owner");
            if st.uid != euid {
                if st.perm() != want {
                    pending.push("mode");
                }
                if acl.any() {
                    pending.push("acl");
                }
            }
        }
        let applied = created
            || pending.is_empty()
            || (st.perm() != want && !pending.contains(&"mode"))
            || (acl.any() && !pending.contains(&"acl"));
        // Build the listed entry only while under the cap (a fix pass over
        // millions of files must not allocate a path for each).
        let listed = self.out.wants_entry();
        let entry = |pending: Vec<&'static str>| Entry {
            path: ShownPath::new(&path()),
            kind,
            class,
            created,
            before: Some(owner_of(st, acl)),
            after: Owner {
                uid,
                gid,
                mode: Mode(want),
                acl: Acls::NONE,
            },
            pending,
        };
        let has_pending = !pending.is_empty();
        let e = listed.then(|| entry(pending));
        if self.ctx.dry_run {
            self.out.entry(e, applied, has_pending);
            return;
        }
        // Without root, only the inode's owner may change its mode or ACLs.
        if !(privileged || owner_ok || st.uid == euid) {
            self.out.entry(e, applied, has_pending);
            return;
        }
        let chown = privileged && !owner_ok;
        let res = (|| -> Result<(), (&str, io::Error)> {
            let chmod = |mode| target.chmod(mode).map_err(|e| ("set the mode", e));
            let mut now = st.perm();
            if chown || acl.any() {
                // Before a chown, special bits go too (chown drops them).
                let narrow = now & want & if chown { 0o777 } else { 0o7777 };
                if narrow != now {
                    chmod(narrow)?;
                    now = narrow;
                }
            }
            for a in acl.iter() {
                target
                    .remove_acl(a)
                    .map_err(|e| ("remove the POSIX ACLs", e))?;
            }
            if chown {
                target.chown(uid, gid).map_err(|e| ("set the owner", e))?;
            }
            if now != want {
                chmod(want)?;
            }
            Ok(())
        })();
        match res {
            Ok(()) => self.out.entry(e, applied, has_pending),
            Err((what, err)) => self.out.fail(&path(), format!("cannot {what}: {err}")),
        }
    }

    /// Refuse an entry; `layout` when it is a named directory of the
    /// layout, which makes it an error too (see [`Partial::refuse_layout`]).
    fn refuse_at(
        &mut self,
        layout: bool,
        path: &[u8],
        kind: &'static str,
        reason: &'static str,
        detail: String,
    ) {
        if layout {
            self.out.refuse_layout(path, kind, reason, detail);
        } else {
            self.out.refuse(path, kind, reason, detail);
        }
    }

    fn check_fs(
        &mut self,
        st: &Stat,
        root: usize,
        path: &dyn Fn() -> Vec<u8>,
        kind: &'static str,
        layout: bool,
    ) -> bool {
        let r = &self.ctx.roots[root];
        if st.dev != r.dev {
            let (a, b) = (r.dev, st.dev);
            self.refuse_at(
                layout,
                &path(),
                kind,
                reason::OTHER_FS,
                format!(
                    "on device {}:{}, not the tree's {}:{}; not touched, not entered",
                    b.0, b.1, a.0, a.1
                ),
            );
            return false;
        }
        if r.mnt_id != 0 && st.mnt_id != 0 && st.mnt_id != r.mnt_id {
            let rm = r.mnt_id;
            self.refuse_at(
                layout,
                &path(),
                kind,
                reason::MOUNT_POINT,
                format!(
                    "a mount point (mount {} inside mount {rm}); not touched, not entered",
                    st.mnt_id
                ),
            );
            return false;
        }
        true
    }

    fn open_failed(&mut self, path: &[u8], e: io::Error, layout: bool) {
        match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => self.refuse_at(
                layout,
                path,
                "dir",
                reason::RACE,
                "was a directory when listed, is now a symlink or not a directory; not followed"
                    .to_owned(),
            ),
            Some(libc::ENOENT) => self.refuse_at(
                layout,
                path,
                "dir",
                reason::VANISHED,
                "disappeared during the walk".to_owned(),
            ),
            _ => self.out.fail(path, format!("cannot open directory: {e}")),
        }
    }

    /// Visit one directory: check and fix it, look at every entry, queue its
    /// subdirectories in `next`.
    fn visit(&mut self, job: Job, next: &mut Vec<Job>) {
        let Job {
            src,
            path,
            class,
            node,
            created,
            root,
        } = job;
        let (fd, st) = match src {
            DirSrc::Open(fd, st) => (fd, st),
            DirSrc::At(parent, name) => {
                let fd = match sys::open_dir_at(parent.as_fd(), &name) {
                    Ok(fd) => fd,
                    Err(e) => return self.open_failed(&path, e, node.is_some()),
                };
                drop(parent);
                match sys::stat_fd(fd.as_fd()) {
                    Ok(st) => (fd, st),
                    Err(e) => return self.out.fail(&path, format!("cannot stat: {e}")),
                }
            }
        };
        self.out.counts.seen += 1;
        if !self.check_fs(&st, root, &|| path.clone(), "dir", node.is_some()) {
            return;
        }
        let layout = self.ctx.layout;
        let want = layout.dir_mode(class, node);
        let acl = match dir_acls(fd.as_fd()) {
            Ok(a) => a,
            Err(e) => {
                self.out
                    .fail(&path, format!("cannot read the POSIX ACLs: {e}"));
                Acls::NONE
            }
        };
        // An ACL cannot open a frozen directory to an app: its named entries
        // get at most the mask, which is the group bits checked here.
        let frozen = !self.ctx.dry_run
            && sys::fchmodat2_works()
            && (st.uid == 0 || st.uid == self.ctx.euid)
            && st.perm() & 0o022 == 0;
        if !frozen {
            let target = if self.ctx.dry_run {
                Target::Nothing
            } else {
                Target::Dir(fd.as_fd())
            };
            self.fix(
                target,
                &st,
                acl,
                want,
                &|| path.clone(),
                "dir",
                class.as_str(),
                created,
            );
        }

        let dir = Arc::new(fd);
        let Some(mut reader) = self.reader.take() else {
            return self.out.fail(&path, "internal: directory buffer in use");
        };
        let mut here = Here {
            fd: &dir,
            path: &path,
            class,
            node,
            root,
            eager: false,
            frozen,
            present: Vec::new(),
        };
        let res = reader.for_each(dir.as_fd(), |name, d_type| {
            self.entry(&mut here, name, d_type, next)
        });
        let present = here.present;
        self.reader = Some(reader);
        if let Err(e) = res {
            self.out.fail(&path, format!("cannot list directory: {e}"));
            return;
        }
        if frozen {
            self.fix(
                Target::Dir(dir.as_fd()),
                &st,
                acl,
                want,
                &|| path.clone(),
                "dir",
                class.as_str(),
                created,
            );
        }

        // Named directories of the layout that do not exist yet.
        let Some(n) = node else { return };
        for &c in &layout.nodes[n].children {
            if present.contains(&c) {
                continue;
            }
            let cname = &layout.nodes[c].name;
            let cpath = join(&path, cname);
            if self.ctx.dry_run {
                plan_created(self.ctx, &mut self.out, &cpath, c);
                continue;
            }
            let made =
                sys::cpath(cname).and_then(|cn| match sys::mkdir_at(dir.as_fd(), &cn, 0o700) {
                    Ok(()) => Ok((cn, true)),
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok((cn, false)),
                    Err(e) => Err(e),
                });
            match made {
                Ok((cn, created)) => next.push(Job {
                    src: DirSrc::At(dir.clone(), cn),
                    path: cpath,
                    class: layout.nodes[c].class,
                    node: Some(c),
                    created,
                    root,
                }),
                Err(e) => self
                    .out
                    .fail(&cpath, format!("cannot create directory: {e}")),
            }
        }
    }

    /// Look at one entry of an open directory.
    fn entry(&mut self, d: &mut Here<'_>, name: &CStr, d_type: u8, next: &mut Vec<Job>) {
        let nb = name.to_bytes();
        let (cclass, cnode) = self.ctx.layout.classify(d.class, d.node, nb);
        if let Some(c) = cnode {
            d.present.push(c);
        }
        let mut kind = Kind::from_dtype(d_type);
        let mut st = None;
        let mut held = None;
        if matches!(kind, None | Some(Kind::File)) {
            // While the entries of this directory keep needing changes, open
            // first and stat the fd (one lookup instead of two); otherwise a
            // plain statx, and no open at all for an entry already right.
            let looked = if d.eager && !d.frozen && kind == Some(Kind::File) {
                sys::open_path_at(d.fd.as_fd(), name).and_then(|fd| {
                    let s = sys::stat_fd(fd.as_fd())?;
                    held = Some(fd);
                    Ok(s)
                })
            } else {
                sys::stat_at(d.fd.as_fd(), name)
            };
            match looked {
                Ok(s) => {
                    kind = Some(s.kind());
                    st = Some(s);
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    return self.out.refuse(
                        &join(d.path, nb),
                        "unknown",
                        reason::VANISHED,
                        "disappeared during the walk".to_owned(),
                    );
                }
                Err(e) => {
                    return self
                        .out
                        .fail(&join(d.path, nb), format!("cannot stat: {e}"))
                }
            }
        }
        match (kind, st) {
            (Some(Kind::Dir), _) => next.push(Job {
                src: DirSrc::At(d.fd.clone(), name.to_owned()),
                path: join(d.path, nb),
                class: cclass,
                node: cnode,
                created: false,
                root: d.root,
            }),
            (Some(Kind::File), Some(st)) => {
                self.out.counts.seen += 1;
                if cnode.is_some() {
                    return self.out.refuse_layout(
                        &join(d.path, nb),
                        "file",
                        reason::NOT_A_DIR,
                        "the layout needs a directory here; left alone".to_owned(),
                    );
                }
                d.eager = self.file(d, name, st, held);
            }
            (Some(Kind::Symlink), _) => {
                self.out.counts.seen += 1;
                let path = join(d.path, nb);
                let target = sys::readlink_at(d.fd.as_fd(), name).unwrap_or_default();
                let out = escapes(&self.ctx.roots[d.root].path, d.path, &target);
                self.refuse_at(
                    cnode.is_some(),
                    &path,
                    "symlink",
                    if out {
                        reason::SYMLINK_ESCAPES
                    } else {
                        reason::SYMLINK_SKIPPED
                    },
                    format!(
                        "-> {}; symlinks are never followed or changed",
                        String::from_utf8_lossy(&target)
                    ),
                );
            }
            (k, _) => {
                self.out.counts.seen += 1;
                let k = k.unwrap_or(Kind::Unknown);
                self.refuse_at(
                    cnode.is_some(),
                    &join(d.path, nb),
                    k.as_str(),
                    reason::SPECIAL_FILE,
                    "special files are never opened or changed".to_owned(),
                );
            }
        }
    }

    /// A regular file. `st` comes from `held` (an `O_PATH` fd) when given,
    /// else from `statx` relative to the directory, and its ACL from
    /// `getxattrat` relative to the directory; then the file is opened only
    /// if it needs a change, and changed only if the fd holds the inode just
    /// seen. Returns whether it needed a change.
    fn file(&mut self, d: &Here<'_>, name: &CStr, st: Stat, held: Option<OwnedFd>) -> bool {
        let layout = self.ctx.layout;
        let path = || join(d.path, name.to_bytes());
        if !self.check_fs(&st, d.root, &path, "file", false) || !self.check_links(&st, &path) {
            return false;
        }
        let (want, label) = layout.file_mode(d.class, name.to_bytes());
        // One more call per file: an ACL can hide in any of them. A name
        // swapped since the statx can only make this answer stale; nothing
        // is removed but through the checked fd (or a frozen name) below.
        let acl = match sys::has_acl_at(d.fd.as_fd(), name, Acl::Access) {
            Ok(access) => Acls {
                access,
                default: false,
            },
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                self.out.refuse(
                    &path(),
                    "file",
                    reason::VANISHED,
                    "disappeared during the walk".to_owned(),
                );
                return false;
            }
            Err(e) => {
                self.out
                    .fail(&path(), format!("cannot read the POSIX ACLs: {e}"));
                return false;
            }
        };
        if st.uid == layout.uid && st.gid == layout.gid && st.perm() == want && !acl.any() {
            return false;
        }
        if self.ctx.dry_run {
            self.fix(Target::Nothing, &st, acl, want, &path, "file", label, false);
            return true;
        }
        if d.frozen && held.is_none() {
            self.fix(
                Target::Name(d.fd.as_fd(), name),
                &st,
                acl,
                want,
                &path,
                "file",
                label,
                false,
            );
            return true;
        }
        let (fd, now) = match held {
            Some(fd) => (fd, st),
            None => {
                let fd = match sys::open_path_at(d.fd.as_fd(), name) {
                    Ok(fd) => fd,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                        self.out.refuse(
                            &path(),
                            "file",
                            reason::VANISHED,
                            "disappeared during the walk".to_owned(),
                        );
                        return true;
                    }
                    Err(e) => {
                        self.out.fail(&path(), format!("cannot open: {e}"));
                        return true;
                    }
                };
                let now = match sys::stat_fd(fd.as_fd()) {
                    Ok(s) => s,
                    Err(e) => {
                        self.out.fail(&path(), format!("cannot stat: {e}"));
                        return true;
                    }
                };
                if !now.same_inode(&st) || now.kind() != Kind::File {
                    self.out.refuse(
                        &path(),
                        now.kind().as_str(),
                        reason::RACE,
                        "replaced between the look and the open; not touched".to_owned(),
                    );
                    return true;
                }
                if !self.check_fs(&now, d.root, &path, "file", false)
                    || !self.check_links(&now, &path)
                {
                    return true;
                }
                (fd, now)
            }
        };
        self.fix(
            Target::Path(fd.as_fd()),
            &now,
            acl,
            want,
            &path,
            "file",
            label,
            false,
        );
        true
    }

    fn check_links(&mut self, st: &Stat, path: &dyn Fn() -> Vec<u8>) -> bool {
        if st.nlink > 1 && st.uid != self.ctx.layout.uid {
            self.out.refuse(
                &path(),
                "file",
                reason::HARDLINK,
                format!(
                    "has {} links and belongs to uid {}, not the app: another link may be \
                     outside the tree; not touched",
                    st.nlink, st.uid
                ),
            );
            return false;
        }
        true
    }
}

/// Report the named directory `node` (and those below it) as to be created.
pub fn plan_created(ctx: &Ctx<'_>, out: &mut Partial, path: &[u8], node: usize) {
    let layout = ctx.layout;
    let class = layout.nodes[node].class;
    let pending = if !ctx.privileged && ctx.euid != layout.uid {
        vec!["owner"]
    } else {
        Vec::new()
    };
    out.add(
        Entry {
            path: ShownPath::new(path),
            kind: "dir",
            class: class.as_str(),
            created: true,
            before: None,
            after: Owner {
                uid: layout.uid,
                gid: layout.gid,
                mode: Mode(layout.dir_mode(class, Some(node))),
                acl: Acls::NONE,
            },
            pending,
        },
        true,
    );
    for &c in &layout.nodes[node].children {
        plan_created(ctx, out, &join(path, &layout.nodes[c].name), c);
    }
}

struct Queue {
    jobs: Vec<Job>,
    active: usize,
}

fn lock(m: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn work(ctx: &Ctx<'_>, q: &Mutex<Queue>, cv: &Condvar) -> Partial {
    let mut w = Worker::new(ctx);
    let mut next = Vec::new();
    let mut job = None;
    loop {
        let current = match job.take() {
            Some(j) => j,
            None => {
                let mut g = lock(q);
                loop {
                    if let Some(j) = g.jobs.pop() {
                        g.active += 1;
                        break j;
                    }
                    if g.active == 0 {
                        cv.notify_all();
                        return w.out;
                    }
                    g = cv.wait(g).unwrap_or_else(|e| e.into_inner());
                }
            }
        };
        w.visit(current, &mut next);
        // Keep one subdirectory for ourselves, share the rest.
        job = next.pop();
        if !next.is_empty() || job.is_none() {
            let mut g = lock(q);
            let shared = !next.is_empty();
            g.jobs.append(&mut next);
            if job.is_none() {
                g.active -= 1;
            }
            if shared || g.active == 0 {
                cv.notify_all();
            }
        }
    }
}

/// Walk every tree of `jobs` with `threads` threads and merge the results.
pub fn run(ctx: &Ctx<'_>, jobs: Vec<Job>, threads: usize) -> Partial {
    let q = Mutex::new(Queue { jobs, active: 0 });
    let cv = Condvar::new();
    if threads <= 1 {
        return work(ctx, &q, &cv);
    }
    let mut total = Partial::new(ctx.cap);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| work(ctx, &q, &cv)))
            .collect();
        for h in handles {
            match h.join() {
                Ok(p) => total.merge(p),
                Err(_) => total.fail(b"", "a walker thread panicked"),
            }
        }
    });
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_links() {
        assert!(escapes(b"/home/a", b"/home/a/data", b"/etc/shadow"));
        assert!(escapes(b"/home/a", b"/home/a/data", b"../../b/x"));
        assert!(!escapes(b"/home/a", b"/home/a/data", b"../bin/a"));
        assert!(!escapes(b"/home/a", b"/home/a", b"/home/a/data"));
        assert!(escapes(b"/home/a", b"/home/a", b"/home/ab"));
    }

    #[test]
    fn joins_paths() {
        assert_eq!(join(b"/a", b"b"), b"/a/b".to_vec());
        assert_eq!(join(b"/", b"b"), b"/b".to_vec());
    }
}
