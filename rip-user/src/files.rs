//! The four account files (`passwd`, `group`, `shadow`, `gshadow`) as
//! editable tables that write back byte for byte what they read, plus the
//! shadow-utils way of replacing them: a `-` backup copy of the old file,
//! a temporary file with the old owner and mode, fsync, rename.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use nix::unistd::{fchown, Gid, Uid};

/// Which account file a table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/etc/passwd`: 7 fields.
    Passwd,
    /// `/etc/group`: 4 fields.
    Group,
    /// `/etc/shadow`: 9 fields.
    Shadow,
    /// `/etc/gshadow`: 4 fields.
    Gshadow,
}

impl Kind {
    /// The path of the file on the target system.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Passwd => "/etc/passwd",
            Kind::Group => "/etc/group",
            Kind::Shadow => "/etc/shadow",
            Kind::Gshadow => "/etc/gshadow",
        }
    }

    fn fields(self) -> usize {
        match self {
            Kind::Passwd => 7,
            Kind::Shadow => 9,
            Kind::Group | Kind::Gshadow => 4,
        }
    }

    /// Whether the file holds password hashes (root:shadow 0640 on Debian).
    pub fn is_secret(self) -> bool {
        matches!(self, Kind::Shadow | Kind::Gshadow)
    }
}

/// One line: an entry split on `:`, or anything else kept verbatim
/// (comments, NIS `+`/`-` lines, malformed lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A well-formed entry: its fields.
    Entry(Vec<String>),
    /// A line rip-user does not interpret.
    Raw(String),
}

/// Owner and mode of an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Mode bits (0o7777).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
}

/// One account file, parsed.
#[derive(Debug, Clone)]
pub struct Table {
    /// Which file.
    pub kind: Kind,
    /// Its path on this machine (under the root).
    pub path: PathBuf,
    /// The lines, in file order.
    pub lines: Vec<Line>,
    /// The bytes read (empty when the file was absent).
    pub original: Vec<u8>,
    /// Owner and mode, when the file exists.
    pub meta: Option<Meta>,
}

impl Table {
    /// Parse text of a file of `kind`.
    pub fn parse(kind: Kind, path: PathBuf, original: Vec<u8>, meta: Option<Meta>) -> Self {
        let text = String::from_utf8_lossy(&original).into_owned();
        let lines = text
            .lines()
            .map(|l| {
                let f: Vec<String> = l.split(':').map(str::to_owned).collect();
                if f.len() == kind.fields() && !f[0].is_empty() && !f[0].starts_with(['+', '-']) {
                    Line::Entry(f)
                } else {
                    Line::Raw(l.to_owned())
                }
            })
            .collect();
        Self {
            kind,
            path,
            lines,
            original,
            meta,
        }
    }

    /// Read the file under `root` (absent means empty). Refuses symlinks
    /// and anything that is not a regular file.
    pub fn load(kind: Kind, root: &rip_core::Root) -> anyhow::Result<Self> {
        let path = root.join(kind.path());
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(Self::parse(kind, path, Vec::new(), None))
            }
            Err(e) => return Err(e).with_context(|| format!("cannot stat {path:?}")),
        };
        if !meta.file_type().is_file() {
            bail!("{path:?} is not a regular file; refusing to use it");
        }
        let text = fs::read(&path).with_context(|| format!("cannot read {path:?}"))?;
        if std::str::from_utf8(&text).is_err() {
            // Rewriting it through a lossy conversion would corrupt it.
            bail!("{path:?} is not valid UTF-8; refusing to rewrite it");
        }
        let meta = Meta {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        };
        Ok(Self::parse(kind, path, text, Some(meta)))
    }

    /// The text the table would write.
    pub fn render(&self) -> Vec<u8> {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Entry(f) => out.push_str(&f.join(":")),
                Line::Raw(r) => out.push_str(r),
            }
            out.push('\n');
        }
        out.into_bytes()
    }

    /// Whether the rendered text differs from what was read.
    pub fn is_dirty(&self) -> bool {
        self.render() != self.original
    }

    /// Index of the entry named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| matches!(l, Line::Entry(f) if f[0] == name))
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&Vec<String>> {
        self.find(name).and_then(|i| match &self.lines[i] {
            Line::Entry(f) => Some(f),
            Line::Raw(_) => None,
        })
    }

    /// The entry named `name`, mutable.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Vec<String>> {
        let i = self.find(name)?;
        match &mut self.lines[i] {
            Line::Entry(f) => Some(f),
            Line::Raw(_) => None,
        }
    }

    /// Every entry.
    pub fn entries(&self) -> impl Iterator<Item = &Vec<String>> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry(f) => Some(f),
            Line::Raw(_) => None,
        })
    }

    /// Every entry, mutable.
    pub fn entries_mut(&mut self) -> impl Iterator<Item = &mut Vec<String>> {
        self.lines.iter_mut().filter_map(|l| match l {
            Line::Entry(f) => Some(f),
            Line::Raw(_) => None,
        })
    }

    /// Whether a line, well-formed or not, starts with `name:` (a name
    /// taken even by a malformed line must not be reused).
    pub fn name_taken(&self, name: &str) -> bool {
        self.lines.iter().any(|l| match l {
            Line::Entry(f) => f[0] == name,
            Line::Raw(r) => r.split(':').next() == Some(name),
        })
    }

    /// Add an entry at the end, but before any NIS `+`/`-` line, which
    /// must stay last (as shadow-utils does).
    pub fn append(&mut self, fields: Vec<String>) {
        let at = self
            .lines
            .iter()
            .position(|l| matches!(l, Line::Raw(r) if r.starts_with(['+', '-'])))
            .unwrap_or(self.lines.len());
        self.lines.insert(at, Line::Entry(fields));
    }

    /// Remove the entry named `name`; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.find(name) {
            Some(i) => {
                self.lines.remove(i);
                true
            }
            None => false,
        }
    }
}

/// Split a member list field.
pub fn members(field: &str) -> Vec<String> {
    field
        .split(',')
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Owner and mode for a file that does not exist yet: what Debian's
/// base-passwd and shadow ship (passwd/group root:root 0644; shadow and
/// gshadow root:shadow 0640, or root:root 0600 without a `shadow` group).
/// A shadow file is only ever created together with its passwd or group
/// file; a root that has one without the other stays shadow-less (see
/// `Db::shadowed_users`).
pub fn default_meta(kind: Kind, shadow_gid: Option<u32>) -> Meta {
    match (kind.is_secret(), shadow_gid) {
        (false, _) => Meta {
            mode: 0o644,
            uid: 0,
            gid: 0,
        },
        (true, Some(gid)) => Meta {
            mode: 0o640,
            uid: 0,
            gid,
        },
        (true, None) => Meta {
            mode: 0o600,
            uid: 0,
            gid: 0,
        },
    }
}

/// A name part no other writer in this process or another one picks.
pub(crate) fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}.{}.{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Write `contents` to `path` through a fresh temporary file in the same
/// directory that gets `meta` (owner only when we are root), fsync, rename.
pub fn replace_file(path: &Path, contents: &[u8], meta: Meta) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{path:?} has no parent directory"))?;
    let name = path
        .file_name()
        .with_context(|| format!("{path:?} has no file name"))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.rip-tmp", unique_suffix()));
    let result = (|| -> anyhow::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .with_context(|| format!("cannot create {tmp:?}"))?;
        if Uid::effective().is_root() {
            fchown(
                f.as_raw_fd(),
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )
            .with_context(|| format!("cannot chown {tmp:?}"))?;
        }
        f.set_permissions(fs::Permissions::from_mode(meta.mode))
            .with_context(|| format!("cannot chmod {tmp:?}"))?;
        f.write_all(contents)
            .with_context(|| format!("cannot write {tmp:?}"))?;
        f.sync_all()
            .with_context(|| format!("cannot fsync {tmp:?}"))?;
        fs::rename(&tmp, path).with_context(|| format!("cannot rename {tmp:?} to {path:?}"))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot fsync directory {dir:?}"))
}

/// What writing one table did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Nothing to write.
    Unchanged,
    /// The file did not exist and was created.
    Created,
    /// The file was replaced; its old contents are in `<file>-`.
    Replaced,
}

impl Written {
    /// Whether the file was written.
    pub fn changed(self) -> bool {
        self != Written::Unchanged
    }

    /// As reported in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Written::Unchanged => "unchanged",
            Written::Created => "created",
            Written::Replaced => "replaced",
        }
    }
}

impl Table {
    /// Write the table back if it changed: first the old contents to
    /// `<file>-` (same owner and mode), then the new file.
    pub fn write(&self, shadow_gid: Option<u32>) -> anyhow::Result<Written> {
        if !self.is_dirty() {
            return Ok(Written::Unchanged);
        }
        let meta = self
            .meta
            .unwrap_or_else(|| default_meta(self.kind, shadow_gid));
        match self.meta {
            Some(old) => {
                let mut backup = self.path.clone().into_os_string();
                backup.push("-");
                replace_file(Path::new(&backup), &self.original, old)?;
                replace_file(&self.path, &self.render(), meta)?;
                Ok(Written::Replaced)
            }
            None => {
                replace_file(&self.path, &self.render(), meta)?;
                Ok(Written::Created)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(kind: Kind, text: &str) -> Table {
        Table::parse(kind, PathBuf::from("/x"), text.as_bytes().to_vec(), None)
    }

    #[test]
    fn round_trips_every_line() {
        let text = "# comment\nroot:x:0:0:root:/root:/bin/bash\nbroken line\n+::::::\n";

        let t = table(Kind::Passwd, text);

        assert_eq!(t.render(), text.as_bytes());
        assert!(!t.is_dirty());
    }

    #[test]
    fn appends_before_nis_lines() {
        let mut t = table(Kind::Group, "root:x:0:\n+:::\n");

        t.append(vec!["app1".into(), "x".into(), "999".into(), String::new()]);

        assert_eq!(t.render(), b"root:x:0:\napp1:x:999:\n+:::\n");
    }

    #[test]
    fn malformed_lines_still_take_their_name() {
        let t = table(Kind::Passwd, "app1:x:999\n");

        assert!(t.get("app1").is_none());
        assert!(t.name_taken("app1"));
    }

    #[test]
    fn adds_a_final_newline() {
        let t = table(Kind::Group, "root:x:0:");

        assert!(t.is_dirty());
        assert_eq!(t.render(), b"root:x:0:\n");
    }

    #[test]
    fn write_keeps_a_backup_with_the_old_mode() {
        let dir = tempfile::tempdir().unwrap();
        let root = rip_core::Root::new(dir.path());
        fs::create_dir(dir.path().join("etc")).unwrap();
        let path = dir.path().join("etc/shadow");
        fs::write(&path, "root:*:1:::::::\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let mut t = Table::load(Kind::Shadow, &root).unwrap();
        t.append(
            vec!["a".into(), "!".into(), "2".into()]
                .into_iter()
                .chain(std::iter::repeat(String::new()).take(6))
                .collect(),
        );

        let written = t.write(None).unwrap();

        assert_eq!(written, Written::Replaced);
        assert_eq!(
            fs::read_to_string(dir.path().join("etc/shadow-")).unwrap(),
            "root:*:1:::::::\n"
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "root:*:1:::::::\na:!:2::::::\n"
        );
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);
    }
}
