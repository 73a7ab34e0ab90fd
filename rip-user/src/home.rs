//! Home directories and the backup user's `~/.ssh/authorized_keys`, done
//! with directory file descriptors and `O_NOFOLLOW` so that a symlink
//! planted by a home's low-privilege owner never redirects a root write;
//! plus `--archive` and `--purge` for removed accounts.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{fchown, fsync, unlinkat, Gid, Uid, UnlinkatFlags};
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

// TODO(#4): new homes start empty; /etc/skel is not copied (useradd -m
// would), so `su - app` gets no .profile/.bashrc.

/// Create the home `target` when missing (parents root-owned 0755), owned
/// by `want` and with its mode; an existing home is only brought to
/// `want` when `converge` is set. Returns its fd, whether it was created,
/// and the changes.
pub fn ensure_home(
    root: &Root,
    target: &str,
    want: Want,
    converge: bool,
) -> anyhow::Result<(OwnedFd, bool, DirChanges)> {
    let (parent, name) = split(root, target)?;
    fs::create_dir_all(&parent).with_context(|| format!("cannot create {parent:?}"))?;
    let pfd = open_dir(None, &parent).with_context(|| format!("cannot open {parent:?}"))?;
    ensure_dir_at(&pfd, &parent, &name, want, converge)
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

        let (_, created, _) = ensure_home(&root, "/home/app1", want, false).unwrap();
        fs::set_permissions(
            dir.path().join("home/app1"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let (_, again, changes) = ensure_home(&root, "/home/app1", want, false).unwrap();

        assert!(created && !again && changes.is_empty());
        assert_eq!(
            inspect_dir(&root, "/home/app1").unwrap().unwrap().mode,
            "0755"
        );
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
