//! Atomic, idempotent file writes.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};

/// What [`write_atomic`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The file already had these contents and mode: nothing was written.
    Unchanged,
    /// The file was created.
    Created,
    /// The file was replaced.
    Replaced,
}

impl WriteOutcome {
    /// Whether anything changed on disk.
    pub fn changed(self) -> bool {
        self != WriteOutcome::Unchanged
    }
}

/// Compare `path` (never following a symlink) with `contents` and `mode`.
/// Returns `None` when absent, `Some(true)` when identical.
pub fn same_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<Option<bool>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot stat {path:?}")),
    };
    if !meta.file_type().is_file() {
        bail!("{path:?} exists and is not a regular file; refusing to replace it");
    }
    if meta.mode() & 0o7777 != mode || meta.len() != contents.len() as u64 {
        return Ok(Some(false));
    }
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nofollow())
        .open(path)
        .with_context(|| format!("cannot open {path:?}"))?;
    let mut old = Vec::with_capacity(contents.len());
    file.read_to_end(&mut old)
        .with_context(|| format!("cannot read {path:?}"))?;
    Ok(Some(old == contents))
}

fn libc_o_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

/// Write `contents` to `path` atomically with `mode`: a temporary file in the
/// same directory (a dot name ending in `.rip-tmp`), fsync, rename, fsync of
/// the directory. Does nothing when the file already matches.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<WriteOutcome> {
    let existed = match same_file(path, contents, mode)? {
        Some(true) => return Ok(WriteOutcome::Unchanged),
        Some(false) => true,
        None => false,
    };
    let dir = path
        .parent()
        .with_context(|| format!("{path:?} has no parent directory"))?;
    let name = path
        .file_name()
        .with_context(|| format!("{path:?} has no file name"))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".rip-tmp")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {dir:?}"))?;
    tmp.write_all(contents)
        .with_context(|| format!("cannot write a temporary file in {dir:?}"))?;
    // The umask may have narrowed the mode given at creation.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of a temporary file in {dir:?}"))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot fsync a temporary file in {dir:?}"))?;
    tmp.persist(path)
        .with_context(|| format!("cannot rename a temporary file to {path:?}"))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot fsync directory {dir:?}"))?;
    Ok(if existed {
        WriteOutcome::Replaced
    } else {
        WriteOutcome::Created
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_write_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");

        let first = write_atomic(&path, b"x\n", 0o644).unwrap();
        let second = write_atomic(&path, b"x\n", 0o644).unwrap();

        assert_eq!(
            (first, second),
            (WriteOutcome::Created, WriteOutcome::Unchanged)
        );
    }

    #[test]
    fn mode_change_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"x", 0o644).unwrap();

        let outcome = write_atomic(&path, b"x", 0o600).unwrap();

        assert_eq!(outcome, WriteOutcome::Replaced);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn refuses_to_replace_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();

        assert!(write_atomic(&path, b"x", 0o644).is_err());
    }

    #[test]
    fn leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();

        write_atomic(&dir.path().join("f"), b"x", 0o644).unwrap();

        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
