//! Thin safe wrappers over the Linux calls the walker is built from: every
//! lookup is one name relative to a directory fd, never a path string, and
//! no call follows a symlink.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

/// File type of an inode, from `st_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A unix socket.
    Socket,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
    /// Anything else.
    Unknown,
}

impl Kind {
    /// From the `S_IFMT` bits of a mode.
    pub fn from_mode(mode: u32) -> Self {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFREG => Kind::File,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFSOCK => Kind::Socket,
            libc::S_IFCHR => Kind::CharDevice,
            libc::S_IFBLK => Kind::BlockDevice,
            _ => Kind::Unknown,
        }
    }

    /// From a `d_type` of `getdents64`; `None` when the file system does
    /// not say (`DT_UNKNOWN`).
    pub fn from_dtype(d_type: u8) -> Option<Self> {
        Some(match d_type {
            libc::DT_DIR => Kind::Dir,
            libc::DT_REG => Kind::File,
            libc::DT_LNK => Kind::Symlink,
            libc::DT_FIFO => Kind::Fifo,
            libc::DT_SOCK => Kind::Socket,
            libc::DT_CHR => Kind::CharDevice,
            libc::DT_BLK => Kind::BlockDevice,
            _ => return None,
        })
    }

    /// The name used in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::File => "file",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::CharDevice => "char_device",
            Kind::BlockDevice => "block_device",
            Kind::Unknown => "unknown",
        }
    }
}

/// What the walker needs to know about one inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Full `st_mode` (type and permission bits).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard link count.
    pub nlink: u32,
    /// Inode number.
    pub ino: u64,
    /// Device (major, minor) of the file system.
    pub dev: (u32, u32),
    /// Mount id (0 when the kernel does not report it).
    pub mnt_id: u64,
}

impl Stat {
    /// The file type.
    pub fn kind(&self) -> Kind {
        Kind::from_mode(self.mode)
    }

    /// The permission bits, special bits included.
    pub fn perm(&self) -> u32 {
        self.mode & 0o7777
    }

    /// Whether `other` is the same inode on the same device.
    pub fn same_inode(&self, other: &Stat) -> bool {
        self.ino == other.ino && self.dev == other.dev
    }
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

const EMPTY: &CStr = c"";

fn statx_raw(dirfd: libc::c_int, name: &CStr, flags: libc::c_int) -> io::Result<Stat> {
    let mut buf = std::mem::MaybeUninit::<libc::statx>::zeroed();
    let mask = libc::STATX_TYPE
        | libc::STATX_MODE
        | libc::STATX_NLINK
        | libc::STATX_UID
        | libc::STATX_GID
        | libc::STATX_INO
        | libc::STATX_MNT_ID;
    let flags = flags | libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT;
    // SAFETY: `name` is NUL-terminated, `buf` is a writable statx buffer
    // that outlives the call; the kernel fills it or returns an error.
    cvt(unsafe { libc::statx(dirfd, name.as_ptr(), flags, mask, buf.as_mut_ptr()) })?;
    // SAFETY: statx returned 0 so the buffer is initialized (it was zeroed
    // before anyway, so every field is a valid integer).
    let st = unsafe { buf.assume_init() };
    Ok(Stat {
        mode: u32::from(st.stx_mode),
        uid: st.stx_uid,
        gid: st.stx_gid,
        nlink: st.stx_nlink,
        ino: st.stx_ino,
        dev: (st.stx_dev_major, st.stx_dev_minor),
        mnt_id: if st.stx_mask & libc::STATX_MNT_ID != 0 {
            st.stx_mnt_id
        } else {
            0
        },
    })
}

/// `statx(dir, name, AT_SYMLINK_NOFOLLOW)`: the entry itself, never what a
/// symlink points to.
pub fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Stat> {
    statx_raw(dir.as_raw_fd(), name, 0)
}

/// `statx(fd, "", AT_EMPTY_PATH)`: the inode an fd holds.
pub fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    statx_raw(fd.as_raw_fd(), EMPTY, libc::AT_EMPTY_PATH)
}

fn open_raw(dirfd: libc::c_int, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; the flags never include O_CREAT so
    // no mode argument is read.
    let fd = cvt(unsafe { libc::openat(dirfd, name.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: openat returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open the directory `name` in `dir` for listing, refusing a symlink
/// (`ELOOP`) or anything not a directory (`ENOTDIR`). `O_NONBLOCK` and the
/// O_DIRECTORY check (made before any device or fifo open) mean a swapped-in
/// fifo can never block us.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    open_raw(
        dir.as_raw_fd(),
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
    )
}

/// Open `name` in `dir` as an `O_PATH` handle: no read or write access, no
/// side effect on fifos or devices, and a symlink is opened as itself.
pub fn open_path_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    open_raw(dir.as_raw_fd(), name, libc::O_PATH | libc::O_NOFOLLOW)
}

/// Open a trusted directory by path (the `--root` given by the operator).
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    let c = cpath(path.as_os_str().as_encoded_bytes())?;
    open_raw(
        libc::AT_FDCWD,
        &c,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOCTTY,
    )
}

/// A C string from bytes; a NUL inside is `InvalidInput`.
pub fn cpath(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

/// `readlinkat(dir, name)`: the target of a symlink, as bytes.
pub fn readlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: `buf` is writable for its whole length, which we pass.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH)`: works on `O_PATH` fds and
/// acts on exactly the inode the fd holds.
pub fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: the empty path is NUL-terminated; AT_EMPTY_PATH makes the
    // call act on `fd` itself.
    cvt(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// Whether `fchmodat2` exists here: 0 unknown, 1 yes, 2 no.
static FCHMODAT2: AtomicU8 = AtomicU8::new(0);

/// Whether `fchmodat2` takes `AT_EMPTY_PATH` here: 0 unknown, 2 no.
static EMPTY_PATH_CHMOD: AtomicU8 = AtomicU8::new(0);

/// Set the mode of the inode held by `fd`. A real (non-`O_PATH`) fd uses
/// `fchmod`; an `O_PATH` fd uses `fchmodat2(fd, "", mode, AT_EMPTY_PATH)`
/// (Linux 6.6+) or, on older kernels, `chmod("/proc/self/fd/N")`, which
/// goes through the fd's own inode and never re-resolves the app's path.
pub fn chmod_fd(fd: BorrowedFd<'_>, mode: u32, o_path: bool) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    if !o_path {
        // SAFETY: plain syscall on an fd we hold.
        return cvt(unsafe { libc::fchmod(raw, mode) }).map(drop);
    }
    if EMPTY_PATH_CHMOD.load(Ordering::Relaxed) != 2 {
        // SAFETY: the empty path is NUL-terminated; the syscall takes
        // (int dirfd, const char *path, mode_t mode, int flags).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fchmodat2,
                raw,
                EMPTY.as_ptr(),
                mode,
                libc::AT_EMPTY_PATH,
            )
        };
        if ret == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // No fchmodat2, or one without AT_EMPTY_PATH: use /proc from now on.
            Some(libc::ENOSYS) | Some(libc::EINVAL) => EMPTY_PATH_CHMOD.store(2, Ordering::Relaxed),
            _ => return Err(err),
        }
    }
    let proc = cpath(format!("/proc/self/fd/{raw}").as_bytes())?;
    // SAFETY: `proc` is NUL-terminated. The magic link resolves to the
    // inode held by `fd`, which we verified to be a regular file or a
    // directory (chmod would follow a symlink, but we never get here with one).
    cvt(unsafe { libc::chmod(proc.as_ptr(), mode) }).map(drop)
}

/// Whether `fchmodat2` (Linux 6.6+) exists, probed once with a bad fd.
pub fn fchmodat2_works() -> bool {
    match FCHMODAT2.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            // SAFETY: an invalid fd and an empty path: the kernel answers
            // EBADF if the call exists, ENOSYS if not, and touches nothing.
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_fchmodat2,
                    -1,
                    EMPTY.as_ptr(),
                    0o700,
                    libc::AT_EMPTY_PATH,
                )
            };
            let ok = ret == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS);
            FCHMODAT2.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
            ok
        }
    }
}

/// `fchmodat2(dir, name, mode, AT_SYMLINK_NOFOLLOW)`: never follows a
/// symlink (it fails with `EOPNOTSUPP` on one). Only for names in a
/// directory no one else can change; needs [`fchmodat2_works`].
pub fn chmod_at_nofollow(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated; (int, const char *, mode_t, int).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            mode,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`.
pub fn chown_at_nofollow(dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    cvt(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// A POSIX ACL, as the extended attribute that holds it. An inode without
/// one has only its mode bits; with one, the mode's group bits are the ACL's
/// mask and named users and groups may get up to that mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acl {
    /// `system.posix_acl_access`: entries beyond owner, group and others.
    Access,
    /// `system.posix_acl_default` (directories): what new entries inherit.
    Default,
}

impl Acl {
    fn xattr(self) -> &'static CStr {
        match self {
            Acl::Access => c"system.posix_acl_access",
            Acl::Default => c"system.posix_acl_default",
        }
    }

    /// The name used in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Acl::Access => "access",
            Acl::Default => "default",
        }
    }
}

/// The POSIX ACLs found on an inode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acls {
    /// An access ACL.
    pub access: bool,
    /// A default ACL.
    pub default: bool,
}

impl Acls {
    /// No ACL: the mode bits are the whole truth.
    pub const NONE: Acls = Acls {
        access: false,
        default: false,
    };

    /// Whether there is any.
    pub fn any(self) -> bool {
        self.access || self.default
    }

    /// The ACLs present, access first.
    pub fn iter(self) -> impl Iterator<Item = Acl> {
        [(self.access, Acl::Access), (self.default, Acl::Default)]
            .into_iter()
            .filter_map(|(on, a)| on.then_some(a))
    }
}

/// `getxattrat`, `removexattrat` (Linux 6.13+): the numbers every
/// architecture but alpha shares; the libc crate does not name them yet.
const SYS_GETXATTRAT: libc::c_long = 464;
const SYS_REMOVEXATTRAT: libc::c_long = 466;

/// `struct xattr_args` of `getxattrat`.
#[repr(C)]
#[derive(Default)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// Whether the `*xattrat` calls exist here: 0 unknown or yes, 2 no.
static XATTRAT: AtomicU8 = AtomicU8::new(0);

fn xattrat_works() -> bool {
    XATTRAT.load(Ordering::Relaxed) != 2
}

/// `/proc/self/fd/<dir>/<name>`: `name` looked up in the directory `dir`
/// holds (for the kernels without the `*xattrat` calls). Used only with
/// the `l*xattr` calls, which do not follow `name` if it is a symlink.
fn proc_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<CString> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name.to_bytes());
    cpath(&p)
}

/// `Ok(true)` for a size (the attribute is there), `Ok(false)` when the
/// inode has none or its file system has no ACLs.
fn present(ret: isize) -> io::Result<bool> {
    if ret >= 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENODATA) | Some(libc::EOPNOTSUPP) => Ok(false),
        _ => Err(err),
    }
}

/// A removal that found nothing to remove did its job too.
fn removed(ret: libc::c_long) -> io::Result<()> {
    if ret >= 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENODATA) => Ok(()),
        _ => Err(err),
    }
}

/// Whether `name` in `dir`, not followed, carries `acl`: one
/// `getxattrat(dir, name, AT_SYMLINK_NOFOLLOW)` asking only for the size,
/// or `lgetxattr` through `proc_at` on older kernels. Only a look: what
/// it answers about a name the app may swap is acted on through an fd
/// checked to hold the inode seen (or by name in a directory no app can
/// change).
pub fn has_acl_at(dir: BorrowedFd<'_>, name: &CStr, acl: Acl) -> io::Result<bool> {
    if xattrat_works() {
        let mut args = XattrArgs::default();
        // SAFETY: `name` and the attribute name are NUL-terminated; `args`
        // is a writable xattr_args of the size passed; with size 0 the
        // kernel writes no value, it returns the value's size.
        let ret = unsafe {
            libc::syscall(
                SYS_GETXATTRAT,
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW as libc::c_uint,
                acl.xattr().as_ptr(),
                &mut args as *mut XattrArgs,
                std::mem::size_of::<XattrArgs>(),
            )
        };
        // A seccomp filter that predates the call may answer EPERM for it;
        // a look has no other reason to (root or not), so fall back then too.
        let missing = ret < 0
            && matches!(
                io::Error::last_os_error().raw_os_error(),
                Some(libc::ENOSYS) | Some(libc::EPERM)
            );
        if !missing {
            return present(ret as isize);
        }
        XATTRAT.store(2, Ordering::Relaxed);
    }
    has_acl_proc(dir, name, acl)
}

/// [`has_acl_at`] for kernels older than 6.13.
fn has_acl_proc(dir: BorrowedFd<'_>, name: &CStr, acl: Acl) -> io::Result<bool> {
    let p = proc_at(dir, name)?;
    // SAFETY: both strings are NUL-terminated; a null buffer of size 0
    // asks only for the size.
    present(unsafe { libc::lgetxattr(p.as_ptr(), acl.xattr().as_ptr(), std::ptr::null_mut(), 0) })
}

/// Whether the inode held by `fd` (a real fd, not `O_PATH`) carries `acl`.
pub fn has_acl_fd(fd: BorrowedFd<'_>, acl: Acl) -> io::Result<bool> {
    // SAFETY: the attribute name is NUL-terminated; a null buffer of size
    // 0 asks only for the size.
    present(unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            acl.xattr().as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    })
}

/// Remove `acl` from the inode held by `fd`: `fremovexattr` on a real fd;
/// on an `O_PATH` fd (which the xattr calls refuse, even with
/// `AT_EMPTY_PATH`), `removexattr("/proc/self/fd/N")`, whose magic link
/// resolves to the fd's own inode. The mode bits are left as they are (the
/// group bits, the mask until now, become the group's). Removing an ACL
/// that is not there succeeds.
pub fn remove_acl_fd(fd: BorrowedFd<'_>, acl: Acl, o_path: bool) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    if !o_path {
        // SAFETY: the attribute name is NUL-terminated.
        return removed(unsafe { libc::fremovexattr(raw, acl.xattr().as_ptr()) }.into());
    }
    let proc = cpath(format!("/proc/self/fd/{raw}").as_bytes())?;
    // SAFETY: both strings are NUL-terminated. The magic link resolves to
    // the inode held by `fd`, which the caller verified to be a regular
    // file or a directory (removexattr follows a symlink; we never get
    // here with one).
    removed(unsafe { libc::removexattr(proc.as_ptr(), acl.xattr().as_ptr()) }.into())
}

/// Remove `acl` from `name` in `dir`, not following a symlink
/// (`removexattrat(dir, name, AT_SYMLINK_NOFOLLOW)`, or `lremovexattr`
/// through `proc_at` on older kernels). Only for names in a directory no
/// one else can change, like [`chmod_at_nofollow`].
pub fn remove_acl_at_nofollow(dir: BorrowedFd<'_>, name: &CStr, acl: Acl) -> io::Result<()> {
    if xattrat_works() {
        // SAFETY: `name` and the attribute name are NUL-terminated;
        // (int, const char *, unsigned int, const char *).
        let ret = unsafe {
            libc::syscall(
                SYS_REMOVEXATTRAT,
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW as libc::c_uint,
                acl.xattr().as_ptr(),
            )
        };
        if ret >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
            return removed(ret);
        }
        XATTRAT.store(2, Ordering::Relaxed);
    }
    remove_acl_proc(dir, name, acl)
}

/// [`remove_acl_at_nofollow`] for kernels older than 6.13.
fn remove_acl_proc(dir: BorrowedFd<'_>, name: &CStr, acl: Acl) -> io::Result<()> {
    let p = proc_at(dir, name)?;
    // SAFETY: both strings are NUL-terminated.
    removed(unsafe { libc::lremovexattr(p.as_ptr(), acl.xattr().as_ptr()) }.into())
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// The effective group id of this process.
pub fn egid() -> u32 {
    // SAFETY: getegid cannot fail.
    unsafe { libc::getegid() }
}

/// Raise the soft limit of open files to the hard limit (deep trees keep
/// one fd per pending directory level).
pub fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill, then to pass back.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// A reusable `getdents64` buffer.
pub struct DirReader {
    buf: Vec<u8>,
}

impl Default for DirReader {
    fn default() -> Self {
        Self {
            buf: vec![0u8; 64 * 1024],
        }
    }
}

impl DirReader {
    /// Call `f(name, d_type)` for every entry of the open directory `fd`
    /// except `.` and `..`.
    pub fn for_each(&mut self, fd: BorrowedFd<'_>, mut f: impl FnMut(&CStr, u8)) -> io::Result<()> {
        loop {
            // SAFETY: `buf` is writable for its whole length, which we pass;
            // the kernel writes at most that many bytes of dirents.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    fd.as_raw_fd(),
                    self.buf.as_mut_ptr(),
                    self.buf.len(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n == 0 {
                return Ok(());
            }
            let data = &self.buf[..n as usize];
            let mut off = 0usize;
            // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
            while off + 19 <= data.len() {
                let reclen = u16::from_ne_bytes([data[off + 16], data[off + 17]]) as usize;
                if reclen < 19 || off + reclen > data.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "malformed getdents64 record",
                    ));
                }
                let d_type = data[off + 18];
                if let Ok(name) = CStr::from_bytes_until_nul(&data[off + 19..off + reclen]) {
                    let b = name.to_bytes();
                    if b != b"." && b != b".." {
                        f(name, d_type);
                    }
                }
                off += reclen;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn lists_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"").unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        let fd = open_root(dir.path()).unwrap();
        let mut names = Vec::new();

        DirReader::default()
            .for_each(fd.as_fd(), |n, t| {
                names.push((n.to_bytes().to_vec(), Kind::from_dtype(t)))
            })
            .unwrap();

        names.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            names,
            vec![
                (b"a".to_vec(), Some(Kind::File)),
                (b"b".to_vec(), Some(Kind::Dir))
            ]
        );
    }

    #[test]
    fn open_dir_at_refuses_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("l")).unwrap();
        let fd = open_root(dir.path()).unwrap();

        let err = open_dir_at(fd.as_fd(), c"l").unwrap_err();

        assert!(matches!(
            err.raw_os_error(),
            Some(libc::ELOOP) | Some(libc::ENOTDIR)
        ));
    }

    #[test]
    fn chmod_through_an_o_path_fd() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"").unwrap();
        let root = open_root(dir.path()).unwrap();
        let fd = open_path_at(root.as_fd(), c"f").unwrap();

        chmod_fd(fd.as_fd(), 0o640, true).unwrap();

        assert_eq!(stat_fd(fd.as_fd()).unwrap().perm(), 0o640);
    }

    fn setfacl(p: &Path, args: &[&str]) {
        let ok = std::process::Command::new("setfacl")
            .args(args)
            .arg(p)
            .status()
            .expect("setfacl (the acl package: scripts/deps test)")
            .success();
        assert!(ok, "setfacl {args:?} {p:?}");
    }

    /// A directory with `f` and `d` carrying ACLs and a symlink `l` to `f`.
    fn acl_dir() -> (tempfile::TempDir, OwnedFd) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"").unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        setfacl(&dir.path().join("f"), &["-m", "u:60002:r"]);
        setfacl(&dir.path().join("d"), &["-d", "-m", "u:60002:r"]);
        let root = open_root(dir.path()).unwrap();
        (dir, root)
    }

    #[test]
    fn acls_are_seen_by_name_not_through_a_symlink() {
        let (_dir, root) = acl_dir();
        let fd = root.as_fd();

        for look in [has_acl_at, has_acl_proc] {
            assert!(look(fd, c"f", Acl::Access).unwrap());
            assert!(!look(fd, c"d", Acl::Access).unwrap());
            assert!(look(fd, c"d", Acl::Default).unwrap());
            assert!(!look(fd, c"l", Acl::Access).unwrap());
        }
    }

    #[test]
    fn acl_removed_through_an_o_path_fd_keeps_the_mode() {
        let (_dir, root) = acl_dir();
        let before = stat_at(root.as_fd(), c"f").unwrap().perm();
        let fd = open_path_at(root.as_fd(), c"f").unwrap();

        remove_acl_fd(fd.as_fd(), Acl::Access, true).unwrap();
        remove_acl_fd(fd.as_fd(), Acl::Access, true).unwrap();

        assert!(!has_acl_at(root.as_fd(), c"f", Acl::Access).unwrap());
        assert_eq!(stat_at(root.as_fd(), c"f").unwrap().perm(), before);
    }

    #[test]
    fn acl_removed_by_name_with_either_call() {
        for remove in [remove_acl_at_nofollow, remove_acl_proc] {
            let (_dir, root) = acl_dir();
            let fd = root.as_fd();

            remove(fd, c"f", Acl::Access).unwrap();
            remove(fd, c"d", Acl::Default).unwrap();

            assert!(!has_acl_at(fd, c"f", Acl::Access).unwrap());
            assert!(!has_acl_at(fd, c"d", Acl::Default).unwrap());
        }
    }

    #[test]
    fn stat_at_does_not_follow() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("l")).unwrap();
        let root = open_root(dir.path()).unwrap();

        assert_eq!(stat_at(root.as_fd(), c"l").unwrap().kind(), Kind::Symlink);
    }
}
