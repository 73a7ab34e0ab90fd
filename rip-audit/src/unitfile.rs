//! Reading unit files the way systemd 252's loader does: sections, `#`/`;`
//! comment lines only at the start of a line, backslash continuation, and
//! drop-ins (`<unit>.d/*.conf`, `service.d/`, dash prefixes) found next to
//! the file and on the unit search path under `--root`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use rip_core::Root;

/// One `Key=value` line of a unit file or drop-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Section name without brackets (`Service`), shared by the lines of
    /// the section.
    pub section: Arc<str>,
    /// Directive name (`NoNewPrivileges`).
    pub key: String,
    /// The value, stripped of surrounding whitespace, comments included.
    pub value: String,
    /// File it comes from (as given, under the root when one is used),
    /// shared by the lines of the file.
    pub file: Arc<Path>,
    /// 1-based line of the assignment's first line.
    pub line: usize,
}

/// One `Key=value` line as the parser hands it out, borrowed from the
/// file's text (or from the joined text of a continued line).
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// Section name without brackets.
    pub section: &'a Arc<str>,
    /// Directive name.
    pub key: &'a str,
    /// The value, stripped of surrounding whitespace, comments included.
    pub value: &'a str,
    /// File it comes from.
    pub file: &'a Arc<Path>,
    /// 1-based line of the assignment's first line.
    pub line: usize,
}

impl Line<'_> {
    /// The owned form.
    pub fn to_assignment(&self) -> Assignment {
        Assignment {
            section: Arc::clone(self.section),
            key: self.key.to_owned(),
            value: self.value.to_owned(),
            file: Arc::clone(self.file),
            line: self.line,
        }
    }
}

impl Assignment {
    /// The borrowed form.
    pub fn as_line(&self) -> Line<'_> {
        Line {
            section: &self.section,
            key: &self.key,
            value: &self.value,
            file: &self.file,
            line: self.line,
        }
    }
}

/// A line systemd would not accept as an assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxIssue {
    /// File.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
    /// The line is over systemd's [`LONG_LINE_MAX`]: systemd stops reading
    /// the file there (a fragment then fails to load; the rest of a
    /// drop-in is ignored).
    pub too_long: bool,
}

/// systemd's `LONG_LINE_MAX` (1 MiB): `read_line()` fails with ENOBUFS
/// ("No buffer space available") on a line of this many bytes or more, and
/// a continued line may not grow beyond it.
pub const LONG_LINE_MAX: usize = 1024 * 1024;

/// Parse one file's text. Continuation lines (odd trailing backslash) are
/// joined with the backslash replaced by a space; comment lines inside a
/// continuation are skipped, as systemd does. A line over
/// [`LONG_LINE_MAX`] ends the parse with a `too_long` issue (systemd's
/// `config_parse()` returns -ENOBUFS there; the lines before it stay).
pub fn parse_ini(text: &str, file: &Path) -> (Vec<Assignment>, Vec<SyntaxIssue>) {
    let mut out = Vec::new();
    let issues = parse_ini_with(text, &Arc::from(file), |l| out.push(l.to_assignment()));
    (out, issues)
}

/// [`parse_ini`], handing each assignment to `each` as it is read instead
/// of collecting them (nothing is allocated for a plain line); returns the
/// syntax issues.
pub fn parse_ini_with(
    text: &str,
    shared_file: &Arc<Path>,
    mut each: impl FnMut(Line<'_>),
) -> Vec<SyntaxIssue> {
    let file: &Path = shared_file;
    let mut issues = Vec::new();
    let mut section: Option<Arc<str>> = None;
    let mut cont: Option<(String, usize)> = None;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // The pieces between `\n`s, as `text.split('\n')` gives them, scanned
    // by bytes (unit files are mostly short lines).
    let (bytes, mut at, mut i) = (text.as_bytes(), 0, 0);
    while at <= bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |n| at + n);
        let last = end == bytes.len();
        let raw = &text[at..end];
        (at, i) = (end + 1, i + 1);
        let i = i - 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if last && raw.is_empty() && cont.is_none() {
            break;
        }
        let joined = cont.as_ref().map_or(0, |(c, _)| c.len());
        if raw.len() >= LONG_LINE_MAX || (joined > 0 && joined + raw.len() > LONG_LINE_MAX) {
            issues.push(SyntaxIssue {
                file: file.to_path_buf(),
                line: i + 1,
                message: format!(
                    "line too long ({} bytes; systemd's limit is {LONG_LINE_MAX}): \
                     No buffer space available",
                    joined + raw.len()
                ),
                too_long: true,
            });
            return issues;
        }
        if matches!(trim_ws_start(raw).as_bytes().first(), Some(b'#' | b';')) {
            continue;
        }
        let (text, start) = match cont.take() {
            Some((mut c, start)) => {
                c.push_str(raw);
                (Cow::Owned(c), start)
            }
            None => (Cow::Borrowed(raw), i + 1),
        };
        if ends_with_escape(&text) {
            let mut text = text.into_owned();
            text.pop();
            text.push(' ');
            cont = Some((text, start));
            continue;
        }
        parse_line(
            &text,
            start,
            shared_file,
            &mut section,
            &mut each,
            &mut issues,
        );
    }
    if let Some((text, start)) = cont {
        parse_line(
            &text,
            start,
            shared_file,
            &mut section,
            &mut each,
            &mut issues,
        );
    }
    issues
}

/// `s` without leading systemd WHITESPACE (all ASCII, so any byte offset
/// found is a char boundary).
fn trim_ws_start(s: &str) -> &str {
    let n = s
        .bytes()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    &s[n..]
}

/// `s` without surrounding systemd WHITESPACE.
pub fn trim_ws(s: &str) -> &str {
    let s = trim_ws_start(s);
    let n = s
        .bytes()
        .rev()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    &s[..s.len() - n]
}

fn ends_with_escape(s: &str) -> bool {
    if !s.ends_with('\\') {
        return false;
    }
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        }
    }
    escaped
}

/// systemd's WHITESPACE set.
pub fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn parse_line(
    text: &str,
    line: usize,
    file: &Arc<Path>,
    section: &mut Option<Arc<str>>,
    each: &mut impl FnMut(Line<'_>),
    issues: &mut Vec<SyntaxIssue>,
) {
    let l = trim_ws(text);
    if l.is_empty() || l.starts_with(['#', ';']) {
        return;
    }
    if let Some(rest) = l.strip_prefix('[') {
        match rest.strip_suffix(']') {
            Some(name) => *section = Some(Arc::from(name)),
            None => issues.push(SyntaxIssue {
                file: file.to_path_buf(),
                line,
                message: format!("invalid section header {l:?}"),
                too_long: false,
            }),
        }
        return;
    }
    let Some(sec) = section.as_ref() else {
        issues.push(SyntaxIssue {
            file: file.to_path_buf(),
            line,
            message: "assignment outside of any section".into(),
            too_long: false,
        });
        return;
    };
    let eq = l.bytes().position(|b| b == b'=');
    let Some((k, v)) = eq.map(|i| (&l[..i], &l[i + 1..])) else {
        issues.push(SyntaxIssue {
            file: file.to_path_buf(),
            line,
            message: format!("missing '=' in {l:?}"),
            too_long: false,
        });
        return;
    };
    each(Line {
        section: sec,
        key: trim_ws(k),
        value: trim_ws(v),
        file,
        line,
    });
}

/// The unit search path of a system manager (systemd 252, Debian), relative
/// to the root.
pub const SEARCH_PATH: &[&str] = &[
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/run/systemd/generator.early",
    "/etc/systemd/system",
    "/etc/systemd/system.attached",
    "/run/systemd/system",
    "/run/systemd/system.attached",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
    "/run/systemd/generator.late",
];

/// A unit's fragment and its drop-ins, in the order systemd applies them.
#[derive(Debug, Clone)]
pub struct UnitFiles {
    /// Unit name (`app1.service`).
    pub name: String,
    /// The main file.
    pub fragment: PathBuf,
    /// Drop-ins, sorted by file name (the first directory on the search
    /// path wins for equal names). All regular files.
    pub dropins: Vec<PathBuf>,
    /// Whether the fragment was listed as a regular file (not a symlink,
    /// FIFO...): such a file is read without the final read for EOF.
    pub fragment_regular: bool,
}

/// The names whose `.d/` directories apply to `name`: the type directory
/// (`service.d`), each dash prefix (`a-.service.d` for `a-b.service`), then
/// the unit itself; templates instances also get their template's.
fn dropin_dir_names(name: &str) -> Vec<String> {
    let (stem, suffix) = match name.rfind('.') {
        Some(i) => (&name[..i], &name[i..]),
        None => (name, ""),
    };
    let mut out = vec![format!("{}.d", &suffix[1.min(suffix.len())..])];
    let mut idx = 0;
    while let Some(p) = stem[idx..].find('-') {
        let end = idx + p + 1;
        out.push(format!("{}{suffix}.d", &stem[..end]));
        idx = end;
    }
    if let Some(at) = stem.find('@') {
        let template = format!("{}@{suffix}", &stem[..at]);
        if template != name {
            out.push(format!("{template}.d"));
        }
    }
    out.push(format!("{name}.d"));
    out
}

/// A set of names with a fast non-keyed hash: these sets only answer
/// lookups, so a crafted set of names could only slow a run down.
type NameSet = HashSet<Box<str>, foldhash::fast::RandomState>;

/// One directory listed by the index.
#[derive(Debug)]
struct Listed {
    dir: PathBuf,
    /// Its `*.d` entries.
    dropin_dirs: NameSet,
    /// Its regular `*.service` files (only for the directories of the
    /// files given).
    regular: NameSet,
}

/// Which `*.d` directories exist in each directory searched, listed once
/// per run so that auditing many units does not probe every path. A run
/// lists a handful of directories, so they are kept in a small vector and
/// found by comparing paths.
#[derive(Debug, Default)]
pub struct DropinIndex {
    /// The directories of the files given.
    parents: Vec<Listed>,
    /// The search path, in order.
    search: Vec<Listed>,
}

impl DropinIndex {
    /// Index the search path under `root` and the directories of `files`.
    pub fn new(root: &Root, files: &[PathBuf]) -> Self {
        let mut idx = DropinIndex::default();
        let mut last: Option<&Path> = None;
        for f in files {
            let parent = parent_of(f);
            // Files usually come grouped by directory: skip the search
            // when the directory is the previous file's.
            if last == Some(parent) || idx.parent(parent).is_some() {
                last = Some(parent);
                continue;
            }
            last = Some(parent);
            idx.parents
                .push(list(parent.to_path_buf(), true, &mut Vec::new()));
        }
        // Search directories already listed, by device and inode: with a
        // merged /usr, /lib/systemd/system is /usr/lib/systemd/system, and
        // systemd drops such duplicates from its search path too.
        let mut seen = Vec::new();
        for d in SEARCH_PATH {
            idx.search.push(list(root.join(d), false, &mut seen));
        }
        idx
    }

    /// Whether the listing of its directory shows `file` as a regular
    /// file.
    pub fn is_regular(&self, file: &Path) -> bool {
        let listed = self.parent(parent_of(file));
        file_name(file).is_some_and(|n| listed.is_some_and(|l| l.regular.contains(n)))
    }

    fn parent(&self, dir: &Path) -> Option<&Listed> {
        self.parents
            .iter()
            .find(|l| l.dir.as_os_str() == dir.as_os_str())
    }

    /// Find `file`'s drop-ins: in the directory of the file, then along the
    /// search path.
    pub fn locate(&self, file: &Path) -> anyhow::Result<UnitFiles> {
        let name = unit_name(file)?;
        let parent = parent_of(file);
        let listed = self.parent(parent);
        let searched = self
            .search
            .iter()
            .filter(|l| l.dir.as_os_str() != parent.as_os_str());
        let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
        // A directory not listed (the file's own, when the index was built
        // for other files) is probed; a listed one only for names it has.
        let dirs = std::iter::once((parent, listed.map(|l| &l.dropin_dirs)))
            .chain(searched.map(|l| (l.dir.as_path(), Some(&l.dropin_dirs))));
        let mut subs: Option<Vec<String>> = None;
        for (dir, present) in dirs {
            if present.is_some_and(HashSet::is_empty) {
                continue;
            }
            for sub in subs.get_or_insert_with(|| dropin_dir_names(name)).iter() {
                if present.is_some_and(|p| !p.contains(sub.as_str())) {
                    continue;
                }
                let d = dir.join(sub);
                let Ok(rd) = fs::read_dir(&d) else { continue };
                for e in rd.flatten() {
                    let fname = e.file_name().to_string_lossy().into_owned();
                    if !fname.ends_with(".conf") {
                        continue;
                    }
                    let p = e.path();
                    // The entry's type comes with the listing; only a
                    // symlink (or an unknown type) needs a stat.
                    let regular = match e.file_type() {
                        Ok(t) if t.is_file() => true,
                        Ok(t) if t.is_dir() => false,
                        _ => p.is_file(),
                    };
                    if !regular {
                        continue;
                    }
                    by_name.entry(fname).or_insert(p);
                }
            }
        }
        let fragment_regular = listed.is_some_and(|l| l.regular.contains(name));
        Ok(UnitFiles {
            name: name.to_owned(),
            fragment: file.to_path_buf(),
            dropins: by_name.into_values().collect(),
            fragment_regular,
        })
    }
}

/// List `dir` once: its `*.d` names and, with `services`, its regular
/// `*.service` files, read with `getdents` into one buffer (nothing is
/// allocated for an entry that is not kept). A directory that cannot be
/// read, or was listed already (`seen`: device and inode), lists as empty.
fn list(dir: PathBuf, services: bool, seen: &mut Vec<(u64, u64)>) -> Listed {
    use nix::dir::Dir;
    use nix::fcntl::OFlag;
    use nix::sys::stat::{fstat, Mode};
    use std::os::fd::AsRawFd;
    let (mut dropin_dirs, mut regular) = (NameSet::default(), NameSet::default());
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    if let Ok(mut d) = Dir::open(&dir, flags, Mode::empty()) {
        let id = fstat(d.as_raw_fd()).map(|st| (st.st_dev, st.st_ino));
        if let Ok(id) = id {
            if seen.contains(&id) {
                return Listed {
                    dir,
                    dropin_dirs,
                    regular,
                };
            }
            seen.push(id);
        }
        for e in d.iter().flatten() {
            let name = e.file_name().to_bytes();
            let set = if name.ends_with(b".d") {
                &mut dropin_dirs
            } else if services
                && name.ends_with(b".service")
                && e.file_type() == Some(nix::dir::Type::File)
            {
                &mut regular
            } else {
                continue;
            };
            if let Ok(n) = std::str::from_utf8(name) {
                set.insert(Box::from(n));
            }
        }
    }
    Listed {
        dir,
        dropin_dirs,
        regular,
    }
}

/// The unit name of a unit file (its file name), if it names a service.
pub fn unit_name(file: &Path) -> anyhow::Result<&str> {
    let name = file_name(file).with_context(|| format!("{file:?} has no usable file name"))?;
    if !name.ends_with(".service") {
        bail!("{file:?}: only .service units can be audited");
    }
    Ok(name)
}

/// The name of `file`: what follows its last `/`, by bytes (None when
/// that is empty, `.`, `..` or not UTF-8).
fn file_name(file: &Path) -> Option<&str> {
    use std::os::unix::ffi::OsStrExt;
    let b = file.as_os_str().as_bytes();
    let name = b.rsplit(|&c| c == b'/').next()?;
    match name {
        b"" | b"." | b".." => None,
        _ => std::str::from_utf8(name).ok(),
    }
}

/// The directory of `file`: what comes before its last `/` (`.` for a
/// bare name, `/` for a file in the root), by bytes.
fn parent_of(file: &Path) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    let b = file.as_os_str().as_bytes();
    match b.iter().rposition(|&c| c == b'/') {
        None => Path::new("."),
        Some(0) => Path::new("/"),
        Some(i) => Path::new(std::ffi::OsStr::from_bytes(&b[..i])),
    }
}

/// Find `file`'s drop-ins (one-off; see [`DropinIndex`] for many units).
pub fn locate(root: &Root, file: &Path) -> anyhow::Result<UnitFiles> {
    let files = [file.to_path_buf()];
    DropinIndex::new(root, &files).locate(file)
}

/// Every assignment of the unit and its drop-ins, in application order,
/// plus syntax issues.
pub fn read_all(files: &UnitFiles) -> anyhow::Result<(Vec<Assignment>, Vec<SyntaxIssue>)> {
    let mut all = Vec::new();
    let issues = read_each(files, |l| all.push(l.to_assignment()))?;
    Ok((all, issues))
}

/// [`read_all`], handing each assignment to `each` as it is read; returns
/// the syntax issues.
pub fn read_each(
    files: &UnitFiles,
    mut each: impl FnMut(Line<'_>),
) -> anyhow::Result<Vec<SyntaxIssue>> {
    let mut issues = read_one(&files.fragment, files.fragment_regular, &mut each)?;
    for d in &files.dropins {
        issues.extend(read_one(d, true, &mut each)?);
    }
    Ok(issues)
}

/// Read and parse one file (a fragment or a drop-in), handing each
/// assignment to `each`; returns the syntax issues. A `regular` file is
/// read without the final read for EOF (see [`read_file`]).
pub fn read_one(
    f: &Path,
    regular: bool,
    mut each: impl FnMut(Line<'_>),
) -> anyhow::Result<Vec<SyntaxIssue>> {
    thread_local! {
        /// One read buffer per thread, reused for every file.
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        let len = read_file(f, buf, regular).with_context(|| format!("cannot read {f:?}"))?;
        let bytes = &buf[..len];
        // Valid UTF-8 (the usual case) is checked by the fast path.
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => Cow::Borrowed(t),
            Err(_) => String::from_utf8_lossy(bytes),
        };
        Ok(parse_ini_with(&text, &Arc::from(f), &mut each))
    })
}

/// Read a whole file into the start of `buf`, a buffer kept initialised
/// and reused across calls (grown when a file fills it); returns the
/// length read. One open, read and close per file: for a `regular` file a
/// short read is its end (Linux reads regular files in full up to EOF), so
/// the extra read that would return 0 is skipped; anything else (a
/// symlink, a FIFO) is read until a read returns 0.
pub fn read_file(path: &Path, buf: &mut Vec<u8>, regular: bool) -> std::io::Result<usize> {
    if buf.len() < 64 * 1024 {
        buf.resize(64 * 1024, 0);
    }
    let mut f = fs::File::open(path)?;
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let want = buf.len() - len;
        let n = match f.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        len += n;
        if n == 0 || (regular && n < want) {
            return Ok(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_comment_is_part_of_the_value() {
        let (a, _) = parse_ini("[Service]\nNoNewPrivileges=yes # x\n", Path::new("f"));

        assert_eq!(a[0].value, "yes # x");
    }

    #[test]
    fn continuation_joins_and_skips_comment_lines() {
        let text = "[Service]\nSystemCallFilter=@a \\\n# c\n  @b\nUser=x\n";

        let (a, _) = parse_ini(text, Path::new("f"));

        assert_eq!(a[0].value, "@a    @b");
        assert_eq!((a[1].key.as_str(), a[1].line), ("User", 5));
    }

    #[test]
    fn redteam_line_over_long_line_max_ends_the_parse() {
        let ok = format!("[Service]\nA={}\nB=1\n", "x".repeat(LONG_LINE_MAX - 3));
        let long = format!("[Service]\nA=1\nB={}\nC=1\n", "x".repeat(LONG_LINE_MAX - 2));
        let cont = format!(
            "[Service]\nA={}\\\n{}\n",
            "x".repeat(LONG_LINE_MAX / 2),
            "y".repeat(LONG_LINE_MAX / 2)
        );

        let (a_ok, i_ok) = parse_ini(&ok, Path::new("f"));
        let (a_long, i_long) = parse_ini(&long, Path::new("f"));
        let (a_cont, i_cont) = parse_ini(&cont, Path::new("f"));

        assert_eq!((a_ok.len(), i_ok.len()), (2, 0));
        assert_eq!(a_long.len(), 1);
        assert!(i_long[0].too_long && i_long[0].line == 3);
        assert!(a_cont.is_empty() && i_cont[0].too_long && i_cont[0].line == 3);
    }

    #[test]
    fn dropin_dirs_cover_prefixes() {
        assert_eq!(
            dropin_dir_names("a-b.service"),
            vec!["service.d", "a-.service.d", "a-b.service.d"]
        );
    }
}
