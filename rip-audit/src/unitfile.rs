//! Reading unit files the way systemd 252's loader does: sections, `#`/`;`
//! comment lines only at the start of a line, backslash continuation, and
//! drop-ins (`<unit>.d/*.conf`, `service.d/`, dash prefixes) found next to
//! the file and on the unit search path under `--root`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
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
    /// The line is over systemd's [`LONG_LINE_MAX`] (then `fatal` too).
    pub too_long: bool,
    /// systemd's `config_parse()` fails at this line (a line too long, not
    /// UTF-8, or a bad section header): it stops reading the file there, so
    /// a fragment fails to load and the rest of a drop-in is ignored.
    pub fatal: bool,
}

/// systemd's `LONG_LINE_MAX` (1 MiB): `read_line()` fails with ENOBUFS
/// ("No buffer space available") on a line of this many bytes or more, and
/// a continued line may not grow beyond it.
pub const LONG_LINE_MAX: usize = 1024 * 1024;

/// Parse one file's text. Lines end as systemd's `read_line()` ends them
/// (`\n`, `\r`, `\r\n`, `\n\r` or a NUL). Continuation lines (odd trailing
/// backslash) are joined with the backslash replaced by a space; comment
/// lines inside a continuation are skipped, as systemd does. A UTF-8 byte
/// order mark is dropped from the first non-comment line that starts with
/// one. A line over [`LONG_LINE_MAX`], not valid UTF-8 or with a bad
/// section header ends the parse with a `fatal` issue (systemd's
/// `config_parse()` fails there; the lines before it stay).
pub fn parse_ini(text: &str, file: &Path) -> (Vec<Assignment>, Vec<SyntaxIssue>) {
    let mut out = Vec::new();
    let issues = parse_ini_with(text.as_bytes(), &Arc::from(file), |l| {
        out.push(l.to_assignment())
    });
    (out, issues)
}

/// The line of `bytes` starting at `at`, cut as systemd's `read_line()`
/// cuts it, and where the next one starts: a line ends at `\n`, `\r` or a
/// NUL, and the end of line runs on over more of these as long as no kind
/// repeats and no NUL came before (`\r\n` and `\n\r` are one end of line,
/// `\n\n` two).
fn next_line(bytes: &[u8], at: usize) -> (&[u8], usize) {
    // A plain scan: lines are short, and the memchr crate would first ask
    // the CPU for its features (CPUID, slow under a hypervisor).
    let end = bytes[at..]
        .iter()
        .position(|&b| matches!(b, b'\n' | b'\r' | 0))
        .map_or(bytes.len(), |n| at + n);
    let (mut next, mut seen) = (end, 0u8);
    while let Some(&c) = bytes.get(next) {
        let kind = match c {
            b'\n' => 1,
            b'\r' => 2,
            0 => 4,
            _ => break,
        };
        if seen & (kind | 4) != 0 {
            break;
        }
        seen |= kind;
        next += 1;
    }
    (&bytes[at..end], next)
}

/// [`parse_ini`], handing each assignment to `each` as it is read instead
/// of collecting them (nothing is allocated for a plain line); returns the
/// syntax issues.
pub fn parse_ini_with(
    bytes: &[u8],
    shared_file: &Arc<Path>,
    mut each: impl FnMut(Line<'_>),
) -> Vec<SyntaxIssue> {
    let file: &Path = shared_file;
    let mut issues = Vec::new();
    let mut section: Option<Arc<str>> = None;
    let mut cont: Option<(Vec<u8>, usize)> = None;
    let too_long = |line: usize, len: usize| SyntaxIssue {
        file: file.to_path_buf(),
        line,
        message: format!(
            "line too long ({len} bytes; systemd's limit is {LONG_LINE_MAX}): \
             No buffer space available"
        ),
        too_long: true,
        fatal: true,
    };
    // A file valid as a whole (as most are) has every line valid: its
    // lines are then cut from it as text, not checked one by one.
    let whole = systemd_utf8(bytes);
    let (mut at, mut line, mut bom_seen) = (0, 0, false);
    while at < bytes.len() {
        let (raw, next) = next_line(bytes, at);
        (at, line) = (next, line + 1);
        if raw.len() >= LONG_LINE_MAX {
            let joined = cont.as_ref().map_or(0, |(c, _)| c.len());
            issues.push(too_long(line, joined + raw.len()));
            return issues;
        }
        if matches!(trim_ws_start(raw).first(), Some(b'#' | b';')) {
            continue;
        }
        let mut l = raw;
        if !bom_seen {
            if let Some(rest) = l.strip_prefix("\u{feff}".as_bytes()) {
                (l, bom_seen) = (rest, true);
            }
        }
        let (text, start) = match cont.take() {
            Some((mut c, start)) => {
                if c.len() + l.len() > LONG_LINE_MAX {
                    issues.push(too_long(line, c.len() + l.len()));
                    return issues;
                }
                c.extend_from_slice(l);
                (Cow::Owned(c), start)
            }
            None => (Cow::Borrowed(l), line),
        };
        if ends_with_escape(&text) {
            let mut text = text.into_owned();
            text.pop();
            text.push(b' ');
            cont = Some((text, start));
            continue;
        }
        let valid = match (&text, whole) {
            (Cow::Borrowed(l), Some(w)) => {
                let from = l.as_ptr() as usize - bytes.as_ptr() as usize;
                w.get(from..from + l.len())
            }
            _ => None,
        };
        if !parse_line(
            &text,
            valid,
            start,
            shared_file,
            &mut section,
            &mut each,
            &mut issues,
        ) {
            return issues;
        }
    }
    if let Some((text, start)) = cont {
        parse_line(
            &text,
            None,
            start,
            shared_file,
            &mut section,
            &mut each,
            &mut issues,
        );
    }
    issues
}

/// `s` without leading systemd WHITESPACE.
fn trim_ws_start(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    &s[n..]
}

/// `s` without surrounding systemd WHITESPACE.
fn trim_ws_bytes(s: &[u8]) -> &[u8] {
    let s = trim_ws_start(s);
    let n = s
        .iter()
        .rev()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    &s[..s.len() - n]
}

/// `s` without surrounding systemd WHITESPACE (all ASCII, so any byte
/// offset found is a char boundary).
pub fn trim_ws(s: &str) -> &str {
    let t = trim_ws_bytes(s.as_bytes());
    let start = t.as_ptr() as usize - s.as_ptr() as usize;
    &s[start..start + t.len()]
}

/// `s` as systemd's `utf8_is_valid()` sees it: valid UTF-8 without the
/// noncharacters U+FDD0..U+FDEF and U+xFFFE/U+xFFFF, which systemd
/// refuses too.
fn systemd_utf8(s: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(s).ok()?;
    let nonchar = |c: char| {
        let c = u32::from(c);
        (0xfdd0..=0xfdef).contains(&c) || c & 0xfffe == 0xfffe
    };
    (s.is_ascii() || !s.chars().any(nonchar)).then_some(s)
}

fn ends_with_escape(s: &[u8]) -> bool {
    if s.last() != Some(&b'\\') {
        return false;
    }
    let mut escaped = false;
    for &c in s {
        if escaped {
            escaped = false;
        } else if c == b'\\' {
            escaped = true;
        }
    }
    escaped
}

/// systemd's WHITESPACE set.
pub fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Parse one (joined) line, given as text too when it is known to be
/// valid. Returns false where systemd's `parse_line()` fails, which ends
/// the file (the issue is `fatal`).
fn parse_line(
    text: &[u8],
    valid: Option<&str>,
    line: usize,
    file: &Arc<Path>,
    section: &mut Option<Arc<str>>,
    each: &mut impl FnMut(Line<'_>),
    issues: &mut Vec<SyntaxIssue>,
) -> bool {
    let mut issue = |message: String, fatal: bool| {
        issues.push(SyntaxIssue {
            file: file.to_path_buf(),
            line,
            message,
            too_long: false,
            fatal,
        });
        !fatal
    };
    let l = trim_ws_bytes(text);
    if l.is_empty() || l.starts_with(b"#") || l.starts_with(b";") {
        return true;
    }
    // `valid`: `text` as text, known to be valid.
    let Some(l) = valid.map(trim_ws).or_else(|| systemd_utf8(l)) else {
        let shown = String::from_utf8_lossy(l);
        return issue(format!("line is not valid UTF-8: {shown:?}"), true);
    };
    if let Some(rest) = l.strip_prefix('[') {
        let Some(name) = rest.strip_suffix(']') else {
            return issue(format!("invalid section header {l:?}"), true);
        };
        // systemd's string_is_safe(): no control characters, quotes or
        // backslashes.
        if name.bytes().any(|b| b < b' ' || b"\"'\\\x7f".contains(&b)) {
            return issue(format!("bad characters in section header {l:?}"), true);
        }
        *section = Some(Arc::from(name));
        return true;
    }
    let Some(sec) = section.as_ref() else {
        return issue("assignment outside of any section".into(), false);
    };
    let eq = l.bytes().position(|b| b == b'=');
    let Some((k, v)) = eq.map(|i| (&l[..i], &l[i + 1..])) else {
        return issue(format!("missing '=' in {l:?}"), false);
    };
    each(Line {
        section: sec,
        key: trim_ws(k),
        value: trim_ws(v),
        file,
        line,
    });
    true
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
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
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

/// The names of the `.d/` directories that apply to `name`, most specific
/// first, as systemd 252's `unit_file_find_dirs()` walks them: the unit
/// itself, for an instance its template (and the template's prefixes),
/// then each dash prefix (`a-b-.service.d`, `a-.service.d` for
/// `a-b-c.service`; `t-@i.service.d` and its template for `t-x@i.service`).
/// The type directory (`service.d`) is not among them: it comes after
/// these in every directory of the search path.
fn dropin_dir_names(name: &str) -> Vec<String> {
    fn walk(name: &str, out: &mut Vec<String>) {
        out.push(format!("{name}.d"));
        let Some((stem, suffix)) = name.rfind('.').map(|i| name.split_at(i)) else {
            return;
        };
        let (prefix, instance) = match stem.split_once('@') {
            Some((p, i)) => (p, Some(i).filter(|i| !i.is_empty())),
            None => (stem, None),
        };
        if instance.is_some() {
            walk(&format!("{prefix}@{suffix}"), out);
        }
        // The prefix up to its last dash (a trailing dash is chopped off
        // once first).
        let mut p = prefix;
        let mut chopped = false;
        let p = loop {
            match p.rfind('-') {
                None | Some(0) => return,
                Some(n) if n + 1 < p.len() || chopped => break &p[..=n],
                Some(n) => (p, chopped) = (&p[..n], true),
            }
        };
        match instance {
            Some(i) => walk(&format!("{p}@{i}{suffix}"), out),
            None => walk(&format!("{p}{suffix}"), out),
        }
    }
    let mut out = Vec::new();
    walk(name, &mut out);
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
    /// Under `--root`: a file in a directory of the search path keeps that
    /// directory's place in it, as when systemd loads the unit by name
    /// (`system.control` before `/etc/systemd/system`). On the host the
    /// file's directory goes first, as `systemd-analyze` run on the path
    /// puts it.
    rooted: bool,
}

impl DropinIndex {
    /// Index the search path under `root` and the directories of `files`.
    pub fn new(root: &Root, files: &[PathBuf]) -> Self {
        let mut idx = DropinIndex {
            rooted: !root.is_host(),
            ..DropinIndex::default()
        };
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
    ///
    /// TODO(#9): two cases where systemd 252 loads something other than
    /// the file given, not modelled here. (1) A unit file that is a symlink
    /// to another unit name: systemd follows the alias chain, scores the
    /// target under its name and merges the drop-ins of every alias (here
    /// the link's content is read under the link's own name, so the
    /// target's drop-ins are missed; under `--root` an absolute link is
    /// even followed on the host). (2) Under `--root`, a file shadowed by
    /// a same-named file (or a mask) in an earlier directory of the search
    /// path: systemd scores the earlier one, rip-audit the file given.
    pub fn locate(&self, file: &Path) -> anyhow::Result<UnitFiles> {
        let name = unit_name(file)?;
        let parent = parent_of(file);
        let listed = self.parent(parent);
        let in_search = |l: &Listed| l.dir.as_os_str() == parent.as_os_str();
        let first = !(self.rooted && self.search.iter().any(in_search));
        let searched = self.search.iter().filter(|l| !(first && in_search(l)));
        // A directory not listed (the file's own, when the index was built
        // for other files) is probed; a listed one only for names it has.
        let own = first.then_some((parent, listed.map(|l| &l.dropin_dirs)));
        let dirs: Vec<(&Path, Option<&NameSet>)> = own
            .into_iter()
            .chain(searched.map(|l| (l.dir.as_path(), Some(&l.dropin_dirs))))
            .filter(|(_, present)| !present.is_some_and(HashSet::is_empty))
            .collect();
        // By file name, the first one found in systemd's order: in each
        // directory of the search path, the unit's own directories (see
        // `dropin_dir_names`); then `service.d` in each. None: masked.
        let mut by_name: BTreeMap<OsString, Option<PathBuf>> = BTreeMap::new();
        if !dirs.is_empty() {
            let subs = dropin_dir_names(&crate::specifier::instantiated(name));
            for &(dir, present) in &dirs {
                for sub in &subs {
                    add_dropins(dir, sub, present, &mut by_name);
                }
            }
            for &(dir, present) in &dirs {
                add_dropins(dir, "service.d", present, &mut by_name);
            }
        }
        let fragment_regular = listed.is_some_and(|l| l.regular.contains(name));
        Ok(UnitFiles {
            name: name.to_owned(),
            fragment: file.to_path_buf(),
            dropins: by_name.into_values().flatten().collect(),
            fragment_regular,
        })
    }
}

/// Add the `*.conf` entries of `dir/sub` to `by_name`, as systemd 252's
/// `conf_files_list_strv()` lists drop-ins: hidden names are skipped, a
/// name found earlier wins, and any entry claims its name, but only a
/// regular file (or a link to one) is read (a link to /dev/null, a
/// dangling link or a directory masks the name; systemd would block on a
/// FIFO, rip-audit reads nothing from it).
fn add_dropins(
    dir: &Path,
    sub: &str,
    present: Option<&NameSet>,
    by_name: &mut BTreeMap<OsString, Option<PathBuf>>,
) {
    use std::os::unix::ffi::OsStrExt;
    if present.is_some_and(|p| !p.contains(sub)) {
        return;
    }
    let d = dir.join(sub);
    // systemd 252 does not follow a drop-in directory that is a symlink.
    if present.is_none() && !fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir()) {
        return;
    }
    let Ok(rd) = fs::read_dir(&d) else { return };
    for e in rd.flatten() {
        let fname = e.file_name();
        let b = fname.as_bytes();
        if b.starts_with(b".") || !b.ends_with(b".conf") || by_name.contains_key(&fname) {
            continue;
        }
        let p = e.path();
        // The entry's type comes with the listing; only a symlink (or an
        // unknown type) needs a stat.
        let t = match e.file_type() {
            Ok(t) if t.is_symlink() => fs::metadata(&p).map(|m| m.file_type()),
            t => t,
        };
        let regular = t.is_ok_and(|t| t.is_file());
        by_name.insert(fname, regular.then_some(p));
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
            // systemd 252 only uses a `.d` entry that is a directory (not
            // a symlink to one).
            let set = if name.ends_with(b".d")
                && matches!(e.file_type(), Some(nix::dir::Type::Directory) | None)
            {
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
        Ok(parse_ini_with(&buf[..len], &Arc::from(f), &mut each))
    })
}

/// Read a whole file into the start of `buf`, a buffer kept initialised
/// and reused across calls (grown when a file fills it); returns the
/// length read. One open, read and close per file: for a `regular` file a
/// short read is its end (Linux reads regular files in full up to EOF), so
/// the extra read that would return 0 is skipped; anything else (a
/// symlink, a file not listed) is read until a read returns 0, or until a
/// short read that reaches the size `fstat` gives when that shows a
/// regular file (a file of /proc shows size 0 and is read to the end). The file is opened without
/// blocking and must be a regular file: a character device (a unit masked
/// with a link to /dev/null) reads as empty, as systemd takes it for an
/// empty (masked) file, and anything else (a FIFO, a socket) is an error
/// rather than a read that never ends.
pub fn read_file(path: &Path, buf: &mut Vec<u8>, regular: bool) -> std::io::Result<usize> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    if buf.len() < 64 * 1024 {
        buf.resize(64 * 1024, 0);
    }
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    // A regular file opened through a link: a short read that brought it
    // to the size its status gave is its end too.
    let mut size = None;
    if !regular {
        let m = f.metadata()?;
        let t = m.file_type();
        if t.is_file() {
            size = Some(m.len());
        }
        if t.is_char_device() {
            return Ok(0);
        }
        if !t.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
    }
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
        if n == 0 || (n < want && (regular || size == Some(len as u64))) {
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
    fn a_file_invalid_only_in_a_comment_parses_as_the_valid_one() {
        let valid = "[Service]\r\nUser=caf\u{e9}\nSystemCallFilter=@a \\\n  @b\n\u{feff}X=1\n";
        let with_bad_comment = [b"# \xe9\n".as_slice(), valid.as_bytes()].concat();
        let f: Arc<Path> = Arc::from(Path::new("f"));
        let lines = |bytes: &[u8]| {
            let mut out = Vec::new();
            let issues = parse_ini_with(bytes, &f, |l| {
                out.push((l.key.to_owned(), l.value.to_owned(), l.line))
            });
            (out, issues)
        };

        let (a, ia) = lines(valid.as_bytes());
        let (b, ib) = lines(&with_bad_comment);

        assert!(ia.is_empty() && ib.is_empty());
        assert_eq!(a.len(), 3);
        assert_eq!(a[0], ("User".into(), "caf\u{e9}".into(), 2));
        assert_eq!(a[1].1, "@a    @b");
        let shifted: Vec<_> = a.into_iter().map(|(k, v, n)| (k, v, n + 1)).collect();
        assert_eq!(b, shifted);
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
            dropin_dir_names("a-b-c.service"),
            vec!["a-b-c.service.d", "a-b-.service.d", "a-.service.d"]
        );
        assert_eq!(
            dropin_dir_names("t-x@i.service"),
            vec![
                "t-x@i.service.d",
                "t-x@.service.d",
                "t-.service.d",
                "t-@i.service.d",
                "t-@.service.d"
            ]
        );
        assert_eq!(dropin_dir_names("-a.service"), vec!["-a.service.d"]);
        assert_eq!(
            dropin_dir_names("a--b.service"),
            vec!["a--b.service.d", "a--.service.d", "a-.service.d"]
        );
    }
}
