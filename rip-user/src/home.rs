//! Home directories, filled from `/etc/skel` when new, and the backup
//! user's `~/.ssh/authorized_keys`, done with directory file descriptors
//! and `O_NOFOLLOW` so that a symlink planted by a home's low-privilege
//! owner never redirects a root write; plus `--archive` and `--purge`.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, renameat, renameat2, AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{fchmod, fstat, fstatat, futimens, mkdirat, FileStat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, fsync, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use rip_core::Root;
use serde::Serialize;

/// Changes made to a directory: (field, from, to).
pub type DirChanges = Vec<(String, String, String)>;

/// Owner and mode wanted for a directory or file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Mode bits.
    pub mode: u32,
}

/// Owner and mode found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// Mode, as an octal string such as `"0700"`.
    pub mode: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

impl Found {
    fn of(st: &FileStat) -> Self {
        Self {
            mode: format!("{:04o}", st.st_mode & 0o7777),
            uid: st.st_uid,
            gid: st.st_gid,
        }
    }
}

fn is_root() -> bool {
    Uid::effective().is_root()
}

/// Open `name` in `dir` (or a path when `dir` is None) without following a
/// symlink in the last component.
fn open_at(dir: Option<&OwnedFd>, name: &Path, flags: OFlag, mode: Mode) -> nix::Result<OwnedFd> {
    let fd = openat(
        dir.map(AsRawFd::as_raw_fd),
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        mode,
    )?;
    // SAFETY: openat just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_dir(dir: Option<&OwnedFd>, name: &Path) -> nix::Result<OwnedFd> {
    open_at(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
}

/// Split a target path into its parent (on this machine) and last name.
fn split(root: &Root, target: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let host = root.join(target);
    let parent = host
        .parent()
        .with_context(|| format!("{target:?} has no parent directory"))?
        .to_path_buf();
    let name = host
        .file_name()
        .with_context(|| format!("{target:?} has no last component"))?;
    Ok((parent, PathBuf::from(name)))
}

/// `lstat` of `name` in `dir`; None when absent.
fn lstat_at(dir: &OwnedFd, name: &Path) -> nix::Result<Option<FileStat>> {
    match fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn kind_of(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Look at the directory `target` without changing anything: None when it
/// does not exist; an error when it is a symlink or not a directory.
pub fn inspect_dir(root: &Root, target: &str) -> anyhow::Result<Option<Found>> {
    let (parent, name) = split(root, target)?;
    let pfd = match open_dir(None, &parent) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {parent:?}")),
    };
    let path = parent.join(&name);
    match lstat_at(&pfd, &name).with_context(|| format!("cannot stat {path:?}"))? {
        None => Ok(None),
        Some(st) if kind_of(&st) == SFlag::S_IFLNK => {
            bail!("{path:?} is a symlink; refusing to use it as a home")
        }
        Some(st) if kind_of(&st) != SFlag::S_IFDIR => {
            bail!("{path:?} exists and is not a directory")
        }
        Some(st) => Ok(Some(Found::of(&st))),
    }
}

/// Bring an open directory to `want`: owner (only as root) and mode.
/// Returns the changes made, as (field, from, to).
fn converge_fd(fd: &OwnedFd, path: &Path, want: Want) -> anyhow::Result<DirChanges> {
    let st = fstat(fd.as_raw_fd()).with_context(|| format!("cannot stat {path:?}"))?;
    let mut changes = Vec::new();
    if is_root() && (st.st_uid != want.uid || st.st_gid != want.gid) {
        fchown(
            fd.as_raw_fd(),
            Some(Uid::from_raw(want.uid)),
            Some(Gid::from_raw(want.gid)),
        )
        .with_context(|| format!("cannot chown {path:?}"))?;
        changes.push((
            "owner".to_owned(),
            format!("{}:{}", st.st_uid, st.st_gid),
            format!("{}:{}", want.uid, want.gid),
        ));
    }
    if st.st_mode & 0o7777 != want.mode {
        fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(want.mode))
            .with_context(|| format!("cannot chmod {path:?}"))?;
        changes.push((
            "mode".to_owned(),
            format!("{:04o}", st.st_mode & 0o7777),
            format!("{:04o}", want.mode),
        ));
    }
    Ok(changes)
}

/// Create the directory `name` in `dir` if missing and open it without
/// following symlinks. With `converge`, an existing one is brought to
/// `want` too. Returns the fd, whether it was created, and the changes.
fn ensure_dir_at(
    dir: &OwnedFd,
    dir_path: &Path,
    name: &Path,
    want: Want,
    converge: bool,
) -> anyhow::Result<(OwnedFd, bool, DirChanges)> {
    let path = dir_path.join(name);
    let created = match mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o700)) {
        Ok(()) => true,
        Err(Errno::EEXIST) => false,
        Err(e) => return Err(e).with_context(|| format!("cannot create {path:?}")),
    };
    let fd = open_dir(Some(dir), name).with_context(|| {
        format!("cannot open {path:?} (a symlink or not a directory?); refusing to follow it")
    })?;
    let changes = if created || converge {
        converge_fd(&fd, &path, want)?
    } else {
        Vec::new()
    };
    Ok((fd, created, changes))
}

/// A home after [`ensure_home`].
#[derive(Debug)]
pub struct Home {
    /// The home, opened without following symlinks.
    pub fd: OwnedFd,
    /// Whether this call created it.
    pub created: bool,
    /// Changes made to an existing home.
    pub changes: DirChanges,
    /// What was copied from the skeleton into a new home.
    pub skel: Option<SkelReport>,
}

/// Create the home `target` when missing (parents root-owned 0755), owned
/// by `want`, with its mode and a copy of the skeleton (see [`copy_skel`]);
/// an existing home is never filled, and only brought to `want` when
/// `converge` is set.
///
/// A new home is built under a temporary name in the same directory while
/// only root can enter it (0700, owned by the invoking user), handed to
/// `want` and then renamed into place, so it appears whole or not at all
/// and its owner never sees it half-filled.
pub fn ensure_home(root: &Root, target: &str, want: Want, converge: bool) -> anyhow::Result<Home> {
    let (parent, name) = split(root, target)?;
    fs::create_dir_all(&parent).with_context(|| format!("cannot create {parent:?}"))?;
    let pfd = open_dir(None, &parent).with_context(|| format!("cannot open {parent:?}"))?;
    let path = parent.join(&name);
    if lstat_at(&pfd, &name)
        .with_context(|| format!("cannot stat {path:?}"))?
        .is_some()
    {
        let (fd, _, changes) = ensure_dir_at(&pfd, &parent, &name, want, converge)?;
        return Ok(Home {
            fd,
            created: false,
            changes,
            skel: None,
        });
    }

    let tmp = PathBuf::from(format!(
        ".{}.{}.rip-tmp",
        name.display(),
        crate::files::unique_suffix()
    ));
    let tmp_path = parent.join(&tmp);
    mkdirat(Some(pfd.as_raw_fd()), &tmp, Mode::from_bits_truncate(0o700))
        .with_context(|| format!("cannot create {tmp_path:?}"))?;
    let built = (|| -> anyhow::Result<(OwnedFd, SkelReport)> {
        let fd = open_dir(Some(&pfd), &tmp).with_context(|| format!("cannot open {tmp_path:?}"))?;
        let skel = copy_skel(root, Some(&fd), (want.uid, want.gid))?;
        converge_fd(&fd, &path, want)?;
        rename_new(&pfd, &tmp, &name).with_context(|| {
            format!("cannot rename {tmp_path:?} to {path:?} (did it appear meanwhile?)")
        })?;
        fsync(pfd.as_raw_fd()).with_context(|| format!("cannot fsync {parent:?}"))?;
        Ok((fd, skel))
    })();
    match built {
        Ok((fd, skel)) => Ok(Home {
            fd,
            created: true,
            changes: Vec::new(),
            skel: Some(skel),
        }),
        Err(e) => {
            // Nothing outside the temporary directory was touched.
            let _ = fs::remove_dir_all(&tmp_path);
            Err(e)
        }
    }
}

/// Rename `from` to `to` in `dir`, never replacing an existing `to`.
fn rename_new(dir: &OwnedFd, from: &Path, to: &Path) -> nix::Result<()> {
    let fd = Some(dir.as_raw_fd());
    match renameat2(fd, from, fd, to, RenameFlags::RENAME_NOREPLACE) {
        // A file system without RENAME_NOREPLACE: a plain rename replaces
        // at most an empty directory, and only root can make one here.
        Err(Errno::EINVAL) if matches!(lstat_at(dir, to), Ok(None)) => renameat(fd, from, fd, to),
        other => other,
    }
}

/// Where a new home's first files come from, as with `useradd -m`.
pub const SKEL: &str = "/etc/skel";
/// Skeleton directories nested deeper than this are left out.
const SKEL_MAX_DEPTH: usize = 16;

/// A skeleton entry that was not copied, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkelSkip {
    /// Path relative to the skeleton (`.` for the skeleton itself).
    pub path: String,
    /// Why it was left out.
    pub reason: String,
}

/// What copying the skeleton into a new home did, or would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkelReport {
    /// The skeleton on the target system: `/etc/skel`.
    pub source: String,
    /// Whether it exists as a directory.
    pub found: bool,
    /// Entries copied (files, directories, symlinks), relative to the home.
    pub copied: Vec<String>,
    /// Entries left out.
    pub skipped: Vec<SkelSkip>,
}

/// Copy `<root>/etc/skel` into the new home `home`, or with `None` only
/// look at what would be copied (for the plan; a skeleton that cannot be
/// read is an error either way). Entries get `owner`; files keep their
/// owner bits and times and lose every group, other, setuid, setgid and
/// sticky bit, directories become 0700: the mode rip-perms gives files
/// outside `bin/`, `data/` and the backups directory. Symlinks are copied
/// as symlinks, never followed. Left out: `.ssh` (who may log in is not a
/// skeleton's call), special files (fifos, sockets, devices), and anything
/// nested deeper than 16 directories. ACLs and extended attributes are not
/// copied: they could open the files to others.
pub fn copy_skel(
    root: &Root,
    home: Option<&OwnedFd>,
    owner: (u32, u32),
) -> anyhow::Result<SkelReport> {
    let mut report = SkelReport {
        source: SKEL.to_owned(),
        found: false,
        copied: Vec::new(),
        skipped: Vec::new(),
    };
    let (parent, name) = split(root, SKEL)?;
    let skel = parent.join(&name);
    let not_dir = |why: &str| SkelSkip {
        path: ".".to_owned(),
        reason: format!("{SKEL} {why}; nothing copied"),
    };
    let pfd = match open_dir(None, &parent) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(report),
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            report.skipped.push(not_dir("lies in a symlink or a file"));
            return Ok(report);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot open {parent:?}")),
    };
    let sfd = match lstat_at(&pfd, &name).with_context(|| format!("cannot stat {skel:?}"))? {
        None => return Ok(report),
        Some(st) if kind_of(&st) == SFlag::S_IFLNK => {
            report.skipped.push(not_dir("is a symlink, not followed"));
            return Ok(report);
        }
        Some(st) if kind_of(&st) != SFlag::S_IFDIR => {
            report.skipped.push(not_dir("is not a directory"));
            return Ok(report);
        }
        Some(_) => open_dir(Some(&pfd), &name).with_context(|| format!("cannot open {skel:?}"))?,
    };
    report.found = true;
    let mut walk = SkelWalk {
        owner,
        report: &mut report,
    };
    walk.dir(&sfd, &skel, home, Path::new(""), 0)?;
    Ok(report)
}

/// One walk over the skeleton.
struct SkelWalk<'a> {
    owner: (u32, u32),
    report: &'a mut SkelReport,
}

impl SkelWalk<'_> {
    fn skip(&mut self, rel: &Path, reason: impl Into<String>) {
        self.report.skipped.push(SkelSkip {
            path: rel.display().to_string(),
            reason: reason.into(),
        });
    }

    /// Copy the entries of the skeleton directory `src` (at `src_path`,
    /// `rel` below the skeleton) into `dst`, in name order.
    fn dir(
        &mut self,
        src: &OwnedFd,
        src_path: &Path,
        dst: Option<&OwnedFd>,
        rel: &Path,
        depth: usize,
    ) -> anyhow::Result<()> {
        for name in dir_names(src).with_context(|| format!("cannot list {src_path:?}"))? {
            let name = Path::new(&name);
            let (from, rel) = (src_path.join(name), rel.join(name));
            if depth == 0 && name == Path::new(".ssh") {
                self.skip(
                    &rel,
                    "who may log in over SSH is not the skeleton's to decide; never copied",
                );
                continue;
            }
            let Some(st) = lstat_at(src, name).with_context(|| format!("cannot stat {from:?}"))?
            else {
                continue;
            };
            match st.st_mode & libc::S_IFMT {
                libc::S_IFREG => self.file(src, &from, name, dst)?,
                libc::S_IFLNK => self.link(src, &from, name, dst)?,
                libc::S_IFDIR if depth >= SKEL_MAX_DEPTH => {
                    let why = format!("nested deeper than {SKEL_MAX_DEPTH} directories");
                    self.skip(&rel, why);
                    continue;
                }
                libc::S_IFDIR => {
                    let sub = open_dir(Some(src), name).with_context(|| {
                        format!("cannot open {from:?} (replaced by a symlink meanwhile?)")
                    })?;
                    let copy = match dst {
                        Some(dst) => Some(self.new_dir(dst, name, &from)?),
                        None => None,
                    };
                    self.report.copied.push(rel.display().to_string());
                    self.dir(&sub, &from, copy.as_ref(), &rel, depth + 1)?;
                    if let Some(copy) = &copy {
                        keep_times(copy, &st).with_context(|| {
                            format!("cannot set the times of the copy of {from:?}")
                        })?;
                    }
                    continue;
                }
                _ => {
                    let why = "a special file (fifo, socket or device) is never copied";
                    self.skip(&rel, why);
                    continue;
                }
            }
            self.report.copied.push(rel.display().to_string());
        }
        Ok(())
    }

    /// Copy the symlink `name` of `src` into `dst` as a symlink to the
    /// same target, owned by the owner.
    fn link(
        &mut self,
        src: &OwnedFd,
        from: &Path,
        name: &Path,
        dst: Option<&OwnedFd>,
    ) -> anyhow::Result<()> {
        let target = readlinkat(Some(src.as_raw_fd()), name)
            .with_context(|| format!("cannot read the symlink {from:?}"))?;
        let Some(dst) = dst else { return Ok(()) };
        symlinkat(&*target, Some(dst.as_raw_fd()), name)
            .with_context(|| format!("cannot copy the symlink {from:?}"))?;
        if is_root() {
            fchownat(
                Some(dst.as_raw_fd()),
                name,
                Some(Uid::from_raw(self.owner.0)),
                Some(Gid::from_raw(self.owner.1)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .with_context(|| format!("cannot chown the copy of {from:?}"))?;
        }
        Ok(())
    }

    /// Copy the regular file `name` of `src` into `dst` (only check that it
    /// can be read when `dst` is None).
    fn file(
        &mut self,
        src: &OwnedFd,
        from: &Path,
        name: &Path,
        dst: Option<&OwnedFd>,
    ) -> anyhow::Result<()> {
        // O_NONBLOCK: a file swapped for a fifo meanwhile must not hang us.
        let sfd = open_at(
            Some(src),
            name,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .with_context(|| format!("cannot open {from:?}"))?;
        let st = fstat(sfd.as_raw_fd()).with_context(|| format!("cannot stat {from:?}"))?;
        if kind_of(&st) != SFlag::S_IFREG {
            bail!("{from:?} changed while being copied; run again");
        }
        let Some(dst) = dst else { return Ok(()) };
        let dfd = open_at(
            Some(dst),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::from_bits_truncate(0o600),
        )
        .with_context(|| format!("cannot create the copy of {from:?}"))?;
        if is_root() {
            fchown(
                dfd.as_raw_fd(),
                Some(Uid::from_raw(self.owner.0)),
                Some(Gid::from_raw(self.owner.1)),
            )
            .with_context(|| format!("cannot chown the copy of {from:?}"))?;
        }
        let mut out = File::from(dfd);
        std::io::copy(&mut File::from(sfd), &mut out)
            .with_context(|| format!("cannot copy {from:?}"))?;
        fchmod(
            out.as_raw_fd(),
            Mode::from_bits_truncate(st.st_mode & 0o700),
        )
        .with_context(|| format!("cannot chmod the copy of {from:?}"))?;
        let out = OwnedFd::from(out);
        keep_times(&out, &st)
            .with_context(|| format!("cannot set the times of the copy of {from:?}"))
    }

    /// Make the directory `name` in `dst`: 0700, owned by the owner.
    fn new_dir(&mut self, dst: &OwnedFd, name: &Path, from: &Path) -> anyhow::Result<OwnedFd> {
        mkdirat(Some(dst.as_raw_fd()), name, Mode::from_bits_truncate(0o700))
            .with_context(|| format!("cannot create the copy of {from:?}"))?;
        let fd = open_dir(Some(dst), name)
            .with_context(|| format!("cannot open the copy of {from:?}"))?;
        if is_root() {
            fchown(
                fd.as_raw_fd(),
                Some(Uid::from_raw(self.owner.0)),
                Some(Gid::from_raw(self.owner.1)),
            )
            .with_context(|| format!("cannot chown the copy of {from:?}"))?;
        }
        fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(0o700))
            .with_context(|| format!("cannot chmod the copy of {from:?}"))?;
        Ok(fd)
    }
}

/// The names in the open directory `dir`, sorted, without `.` and `..`.
fn dir_names(dir: &OwnedFd) -> anyhow::Result<Vec<OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let mut d = Dir::from(dir.try_clone()?)?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(std::ffi::OsStr::from_bytes(&name).to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Give `fd` the access and modification times of `st`, as `useradd -m`
/// keeps them on the copies.
fn keep_times(fd: &OwnedFd, st: &FileStat) -> nix::Result<()> {
    futimens(
        fd.as_raw_fd(),
        &TimeSpec::new(st.st_atime, st.st_atime_nsec),
        &TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
    )
}

/// What `authorized_keys` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeysSeen {
    /// Key lines (not comments or blank lines).
    pub keys: usize,
    /// Key lines without both `restrict` and a forced `command=`.
    pub unrestricted: usize,
}

impl KeysSeen {
    fn of(text: &str) -> Self {
        let mut seen = Self::default();
        for l in text.lines().map(str::trim) {
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            seen.keys += 1;
            if !(l.starts_with("restrict,") && l.contains("command=\"")) {
                seen.unrestricted += 1;
            }
        }
        seen
    }
}

/// Read `name` in `dir` if it is a regular file (never following a link,
/// never blocking on a FIFO). None when absent or not a regular file.
fn read_at(dir: &OwnedFd, name: &Path) -> anyhow::Result<Option<(Vec<u8>, FileStat)>> {
    let fd = match open_at(
        Some(dir),
        name,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ELOOP) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {name:?}")),
    };
    let st = fstat(fd.as_raw_fd()).with_context(|| format!("cannot stat {name:?}"))?;
    if kind_of(&st) != SFlag::S_IFREG {
        return Ok(None);
    }
    let mut buf = Vec::new();
    File::from(fd)
        .take(1 << 20)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {name:?}"))?;
    Ok(Some((buf, st)))
}

/// What `~/.ssh` of the backup user holds now.
#[derive(Debug, Clone, Default)]
pub struct SshState {
    /// Owner and mode of `.ssh`, when it exists.
    pub dir: Option<Found>,
    /// Contents, owner and mode, and link count of `authorized_keys`.
    pub keys: Option<(Vec<u8>, Found, u64)>,
}

impl SshState {
    /// What the key lines are, for the report.
    pub fn seen(&self) -> Option<KeysSeen> {
        self.keys
            .as_ref()
            .map(|(text, _, _)| KeysSeen::of(&String::from_utf8_lossy(text)))
    }

    /// Whether installing `contents` owned by `owner` would write the file.
    pub fn keys_need_write(&self, contents: &[u8], owner: (u32, u32)) -> bool {
        match &self.keys {
            None => true,
            Some((old, f, nlink)) => {
                let owner_ok = !is_root() || (f.uid, f.gid) == owner;
                !(old == contents && f.mode == "0600" && owner_ok && *nlink == 1)
            }
        }
    }
}

/// The changes bringing `found` to `want` would make (the owner only when
/// we are root, since nobody else can change it).
pub fn planned_changes(found: &Found, want: Want) -> DirChanges {
    let mut changes = Vec::new();
    if is_root() && (found.uid, found.gid) != (want.uid, want.gid) {
        changes.push((
            "owner".to_owned(),
            format!("{}:{}", found.uid, found.gid),
            format!("{}:{}", want.uid, want.gid),
        ));
    }
    let mode = format!("{:04o}", want.mode);
    if found.mode != mode {
        changes.push(("mode".to_owned(), found.mode.clone(), mode));
    }
    changes
}

/// Check, before anything is written, that `~/.ssh` under the backup home
/// is not a symlink or another non-directory, and read what it holds.
pub fn precheck_ssh(root: &Root, home: &str) -> anyhow::Result<SshState> {
    if inspect_dir(root, home)?.is_none() {
        return Ok(SshState::default());
    }
    let host = root.join(home);
    let hfd = open_dir(None, &host).with_context(|| format!("cannot open {host:?}"))?;
    let ssh = host.join(".ssh");
    let st =
        match lstat_at(&hfd, Path::new(".ssh")).with_context(|| format!("cannot stat {ssh:?}"))? {
            None => return Ok(SshState::default()),
            Some(st) if kind_of(&st) == SFlag::S_IFLNK => {
                bail!("{ssh:?} is a symlink; refusing to write through it (remove it and rerun)")
            }
            Some(st) if kind_of(&st) != SFlag::S_IFDIR => bail!("{ssh:?} is not a directory"),
            Some(st) => st,
        };
    let sfd =
        open_dir(Some(&hfd), Path::new(".ssh")).with_context(|| format!("cannot open {ssh:?}"))?;
    Ok(SshState {
        dir: Some(Found::of(&st)),
        keys: read_at(&sfd, Path::new("authorized_keys"))?
            .map(|(text, st)| (text, Found::of(&st), st.st_nlink)),
    })
}

/// Install `contents` as `.ssh/authorized_keys` in the open home `hfd`:
/// `.ssh` 0700 and the file 0600, both owned by `owner`. Every step is
/// relative to a directory fd opened with O_NOFOLLOW. Returns whether the
/// file changed and the changes made to `.ssh`.
pub fn install_keys(
    hfd: &OwnedFd,
    home_path: &Path,
    contents: &[u8],
    owner: (u32, u32),
) -> anyhow::Result<(bool, DirChanges)> {
    let dir_want = Want {
        uid: owner.0,
        gid: owner.1,
        mode: 0o700,
    };
    let (sfd, created, changes) = ensure_dir_at(hfd, home_path, Path::new(".ssh"), dir_want, true)?;
    // A directory made just now is not a change to report.
    let changes = if created { Vec::new() } else { changes };
    let ssh = home_path.join(".ssh");
    let target = ssh.join("authorized_keys");
    let now = SshState {
        dir: None,
        keys: read_at(&sfd, Path::new("authorized_keys"))?
            .map(|(text, st)| (text, Found::of(&st), st.st_nlink)),
    };
    if !now.keys_need_write(contents, owner) {
        return Ok((false, changes));
    }
    let tmp = PathBuf::from(format!(".authorized_keys.{}.rip-tmp", std::process::id()));
    let fd = open_at(
        Some(&sfd),
        &tmp,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
        Mode::from_bits_truncate(0o600),
    )
    .with_context(|| format!("cannot create {:?}", ssh.join(&tmp)))?;
    let result = (|| -> anyhow::Result<()> {
        if is_root() {
            fchown(
                fd.as_raw_fd(),
                Some(Uid::from_raw(owner.0)),
                Some(Gid::from_raw(owner.1)),
            )
            .with_context(|| format!("cannot chown {:?}", ssh.join(&tmp)))?;
        }
        fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(0o600))
            .with_context(|| format!("cannot chmod {:?}", ssh.join(&tmp)))?;
        let mut f = File::from(fd);
        f.write_all(contents)
            .with_context(|| format!("cannot write {:?}", ssh.join(&tmp)))?;
        f.sync_all()
            .with_context(|| format!("cannot fsync {:?}", ssh.join(&tmp)))?;
        renameat(
            Some(sfd.as_raw_fd()),
            &tmp,
            Some(sfd.as_raw_fd()),
            Path::new("authorized_keys"),
        )
        .with_context(|| format!("cannot rename {:?} to {target:?}", ssh.join(&tmp)))?;
        fsync(sfd.as_raw_fd()).with_context(|| format!("cannot fsync {ssh:?}"))
    })();
    if result.is_err() {
        let _ = unlinkat(Some(sfd.as_raw_fd()), &tmp, UnlinkatFlags::NoRemoveDir);
    }
    result?;
    Ok((true, changes))
}

/// Archive the home `target` as `<root>/var/backups/rip-user/<user>-<secs>.tar.gz`
/// (0600, root's). tar does not follow symlinks and stays on one file
/// system. Returns the archive's path on the target system.
pub fn archive(root: &Root, target: &str, user: &str) -> anyhow::Result<String> {
    let (parent, name) = split(root, target)?;
    let dir = root.join("/var/backups/rip-user");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {dir:?}"))?;
    fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("cannot chmod {dir:?}"))?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let file = dir.join(format!("{user}-{secs}.tar.gz"));
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&file)
        .with_context(|| format!("cannot create {file:?}"))?;
    let status = Command::new("tar")
        .arg("--one-file-system")
        .arg("-C")
        .arg(&parent)
        .arg("-czf")
        .arg("-")
        .arg(&name)
        .stdout(Stdio::from(out))
        .status()
        .context("cannot run tar")?;
    if !status.success() {
        let _ = fs::remove_file(&file);
        bail!("tar of {:?} failed ({status})", parent.join(&name));
    }
    Ok(root.strip(&file).display().to_string())
}

/// Delete the home `target` of a removed user whose uid was `uid`: only a
/// real directory (not a symlink) owned by that uid. Symlinks inside are
/// removed, never followed.
pub fn purge(root: &Root, target: &str, uid: Option<u32>) -> anyhow::Result<bool> {
    let host = root.join(target);
    let Some(found) = inspect_dir(root, target)? else {
        return Ok(false);
    };
    if uid.is_some_and(|uid| found.uid != uid) {
        bail!(
            "{host:?} belongs to uid {}, not to the removed user; refusing to purge it",
            found.uid
        );
    }
    match fs::remove_dir_all(&host) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot delete {host:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_home_with_the_mode_and_keeps_an_existing_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let me = (Uid::effective().as_raw(), Gid::effective().as_raw());
        let want = Want {
            uid: me.0,
            gid: me.1,
            mode: 0o710,
        };

        let first = ensure_home(&root, "/home/app1", want, false).unwrap();
        fs::set_permissions(
            dir.path().join("home/app1"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let again = ensure_home(&root, "/home/app1", want, false).unwrap();

        assert!(first.created && !again.created && again.changes.is_empty());
        assert!(again.skel.is_none());
        assert_eq!(
            inspect_dir(&root, "/home/app1").unwrap().unwrap().mode,
            "0755"
        );
    }

    #[test]
    fn issue4_a_new_home_never_replaces_one_that_appeared_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("tmp")).unwrap();
        fs::create_dir(dir.path().join("home")).unwrap();
        let fd = open_dir(None, dir.path()).unwrap();

        let e = rename_new(&fd, Path::new("tmp"), Path::new("home")).unwrap_err();

        assert_eq!(e, Errno::EEXIST);
        assert!(dir.path().join("tmp").is_dir());
    }

    #[test]
    fn refuses_a_symlinked_home() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("home")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("home/app1")).unwrap();

        assert!(inspect_dir(&Root::new(dir.path()), "/home/app1").is_err());
    }

    #[test]
    fn counts_unrestricted_keys() {
        let seen = KeysSeen::of(
            "# c\nssh-ed25519 AAAA x\nrestrict,command=\"rrsync -ro /home\" ssh-ed25519 AAAA\n",
        );

        assert_eq!(
            seen,
            KeysSeen {
                keys: 2,
                unrestricted: 1
            }
        );
    }
}
