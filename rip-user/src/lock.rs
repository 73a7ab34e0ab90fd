//! The locks shadow-utils and glibc take before they edit the account
//! files: an fcntl write lock on `<root>/etc/.pwd.lock` (glibc's
//! `lckpwdf`, taken by useradd & co. on the running system) and the
//! per-file `<file>.lock` links that shadow's commonio creates (the only
//! lock `useradd --prefix` takes). rip-user takes both, in that order, and
//! holds them across the whole read-modify-write of the four files.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::files::Kind;

/// The held locks; dropping it releases them.
#[derive(Debug)]
pub struct PwdLock {
    _pwd_lock: File,
    links: Vec<PathBuf>,
}

const POLL: Duration = Duration::from_millis(10);

/// Try once to take a write lock on the whole of `file` (F_SETLK).
fn try_fcntl_lock(file: &File) -> nix::Result<bool> {
    // SAFETY: flock is a plain C struct; all-zero is a valid value that we
    // then fill in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    match nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_SETLK(&fl)) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether the lock file `lock` names a process that no longer exists.
fn is_stale(lock: &Path) -> bool {
    let Ok(text) = fs::read_to_string(lock) else {
        return false;
    };
    match text.trim().parse::<i32>() {
        Ok(pid) if pid > 0 => kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH),
        // A lock file without a pid is garbage, as shadow judges it.
        _ => true,
    }
}

/// One attempt at shadow's link lock for `file`.
fn try_link_lock(file: &Path, lock: &Path) -> anyhow::Result<bool> {
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(format!(".{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .with_context(|| format!("cannot create {tmp:?}"))?;
    f.write_all(std::process::id().to_string().as_bytes())
        .with_context(|| format!("cannot write {tmp:?}"))?;
    drop(f);
    let linked = fs::hard_link(&tmp, lock);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            if is_stale(lock) {
                let _ = fs::remove_file(lock);
            }
            Ok(false)
        }
        Err(e) => Err(e).with_context(|| format!("cannot link {tmp:?} to {lock:?}")),
    }
}

impl PwdLock {
    /// Take the locks of the account files under `root`, waiting up to
    /// `timeout` for other holders. Creates `<root>/etc` when missing.
    pub fn acquire(root: &rip_core::Root, timeout: Duration) -> anyhow::Result<Self> {
        let etc = root.join("/etc");
        fs::create_dir_all(&etc).with_context(|| format!("cannot create {etc:?}"))?;
        let deadline = Instant::now() + timeout;

        let path = etc.join(".pwd.lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .with_context(|| format!("cannot open {path:?}"))?;
        loop {
            if try_fcntl_lock(&file).with_context(|| format!("cannot lock {path:?}"))? {
                break;
            }
            if Instant::now() >= deadline {
                bail!("{path:?} is locked by another process (waited {timeout:?})");
            }
            std::thread::sleep(POLL);
        }

        let mut held = Self {
            _pwd_lock: file,
            links: Vec::new(),
        };
        for kind in [Kind::Passwd, Kind::Group, Kind::Shadow, Kind::Gshadow] {
            let file = root.join(kind.path());
            let mut lock = file.clone().into_os_string();
            lock.push(".lock");
            let lock = PathBuf::from(lock);
            loop {
                if try_link_lock(&file, &lock)? {
                    held.links.push(lock);
                    break;
                }
                if Instant::now() >= deadline {
                    bail!("{lock:?} is held by another process (waited {timeout:?})");
                }
                std::thread::sleep(POLL);
            }
        }
        Ok(held)
    }
}

impl Drop for PwdLock {
    fn drop(&mut self) {
        for lock in self.links.iter().rev() {
            let _ = fs::remove_file(lock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_locks_are_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let root = rip_core::Root::new(dir.path());

        let lock = PwdLock::acquire(&root, Duration::from_secs(1)).unwrap();
        assert!(dir.path().join("etc/passwd.lock").exists());
        drop(lock);

        assert!(!dir.path().join("etc/passwd.lock").exists());
        assert!(dir.path().join("etc/.pwd.lock").exists());
    }

    #[test]
    fn a_live_link_lock_blocks_until_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let root = rip_core::Root::new(dir.path());
        fs::create_dir(dir.path().join("etc")).unwrap();
        // pid 1 always exists: the lock is live.
        fs::write(dir.path().join("etc/group.lock"), "1").unwrap();

        let err = PwdLock::acquire(&root, Duration::from_millis(50)).unwrap_err();

        assert!(format!("{err:#}").contains("group.lock"));
        assert!(!dir.path().join("etc/passwd.lock").exists());
    }

    #[test]
    fn a_stale_link_lock_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let root = rip_core::Root::new(dir.path());
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/group.lock"), "2147483000").unwrap();

        assert!(PwdLock::acquire(&root, Duration::from_secs(1)).is_ok());
    }
}
