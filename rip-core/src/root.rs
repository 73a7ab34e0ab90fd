//! `--root DIR`: act on an alternate root instead of `/`.

use std::path::{Component, Path, PathBuf};

/// The root directory every system path is taken relative to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    /// A root at `dir` (`/` for the running system).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The root directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this is the running system's `/`.
    pub fn is_host(&self) -> bool {
        self.dir == Path::new("/")
    }

    /// Map an absolute path of the target system to a path on this machine.
    /// Only normal components are kept, so the result never leaves the root
    /// lexically; symlinks are the caller's concern.
    pub fn join(&self, path: impl AsRef<Path>) -> PathBuf {
        let mut out = self.dir.clone();
        for comp in path.as_ref().components() {
            if let Component::Normal(c) = comp {
                out.push(c);
            }
        }
        out
    }

    /// The inverse of [`Root::join`]: the target system's view of a host path.
    pub fn strip(&self, host_path: &Path) -> PathBuf {
        match host_path.strip_prefix(&self.dir) {
            Ok(rest) => Path::new("/").join(rest),
            Err(_) => host_path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_under_the_root() {
        let root = Root::new("/tmp/r");

        assert_eq!(root.join("/etc/passwd"), PathBuf::from("/tmp/r/etc/passwd"));
        assert_eq!(root.join("/../etc"), PathBuf::from("/tmp/r/etc"));
    }

    #[test]
    fn strips_back() {
        let root = Root::new("/tmp/r");

        assert_eq!(
            root.strip(Path::new("/tmp/r/etc/x")),
            PathBuf::from("/etc/x")
        );
    }
}
