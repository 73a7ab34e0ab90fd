//! Reading unit files the way systemd 252's loader does: sections, `#`/`;`
//! comment lines only at the start of a line, backslash continuation, and
//! drop-ins (`<unit>.d/*.conf`, `service.d/`, dash prefixes) found next to
//! the file and on the unit search path under `--root`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
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
    let mut issues = Vec::new();
    let mut section: Option<Arc<str>> = None;
    let shared_file: Arc<Path> = Arc::from(file);
    let mut cont: Option<(String, usize)> = None;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split('\n').enumerate().peekable();
    while let Some((i, raw)) = lines.next() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if lines.peek().is_none() && raw.is_empty() && cont.is_none() {
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
            return (out, issues);
        }
        let lead = raw.trim_start_matches([' ', '\t', '\n', '\r']);
        if lead.starts_with(['#', ';']) {
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
            &shared_file,
            &mut section,
            &mut out,
            &mut issues,
        );
    }
    if let Some((text, start)) = cont {
        parse_line(
            &text,
            start,
            &shared_file,
            &mut section,
            &mut out,
            &mut issues,
        );
    }
    (out, issues)
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
    out: &mut Vec<Assignment>,
    issues: &mut Vec<SyntaxIssue>,
) {
    let l = text.trim_matches(is_ws);
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
    let Some(sec) = section.clone() else {
        issues.push(SyntaxIssue {
            file: file.to_path_buf(),
            line,
            message: "assignment outside of any section".into(),
            too_long: false,
        });
        return;
    };
    let Some((k, v)) = l.split_once('=') else {
        issues.push(SyntaxIssue {
            file: file.to_path_buf(),
            line,
            message: format!("missing '=' in {l:?}"),
            too_long: false,
        });
        return;
    };
    out.push(Assignment {
        section: sec,
        key: k.trim_matches(is_ws).to_owned(),
        value: v.trim_matches(is_ws).to_owned(),
        file: Arc::clone(file),
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

/// Which `*.d` directories exist in each directory searched, listed once
/// per run so that auditing many units does not probe every path.
#[derive(Debug, Default)]
pub struct DropinIndex {
    dirs: HashMap<PathBuf, HashSet<String>>,
    /// The regular `*.service` files of the directories of the files
    /// given (from the same listing).
    regular: HashMap<PathBuf, HashSet<String>>,
    /// The search path, each directory with its `*.d` names (looked up
    /// once here, not per unit).
    search: Vec<(PathBuf, HashSet<String>)>,
}

impl DropinIndex {
    /// Index the search path under `root` and the directories of `files`.
    pub fn new(root: &Root, files: &[PathBuf]) -> Self {
        let mut idx = DropinIndex::default();
        for f in files {
            let parent = parent_dir(f);
            if !idx.regular.contains_key(&parent) {
                let regular = idx.add(parent.clone());
                idx.regular.insert(parent, regular);
            }
        }
        for d in SEARCH_PATH {
            let p = root.join(d);
            idx.add(p.clone());
            let names = idx.dirs.get(&p).cloned().unwrap_or_default();
            idx.search.push((p, names));
        }
        idx
    }

    /// List `dir` once: its `*.d` names go into the index; its regular
    /// `*.service` files are returned.
    fn add(&mut self, dir: PathBuf) -> HashSet<String> {
        let mut regular = HashSet::new();
        if self.dirs.contains_key(&dir) {
            return regular;
        }
        let mut names = HashSet::new();
        if let Ok(rd) = fs::read_dir(&dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with(".d") {
                    names.insert(n);
                } else if n.ends_with(".service") && e.file_type().is_ok_and(|t| t.is_file()) {
                    regular.insert(n);
                }
            }
        }
        self.dirs.insert(dir, names);
        regular
    }

    /// Find `file`'s drop-ins: in the directory of the file, then along the
    /// search path.
    pub fn locate(&self, file: &Path) -> anyhow::Result<UnitFiles> {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{file:?} has no usable file name"))?
            .to_owned();
        if !name.ends_with(".service") {
            bail!("{file:?}: only .service units can be audited");
        }
        let parent = parent_dir(file);
        let subs = dropin_dir_names(&name);
        let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
        let dirs = std::iter::once((&parent, self.dirs.get(&parent))).chain(
            self.search
                .iter()
                .filter(|(d, _)| d.as_os_str() != parent.as_os_str())
                .map(|(d, names)| (d, Some(names))),
        );
        for (dir, present) in dirs {
            for sub in &subs {
                if present.is_some_and(|p| p.is_empty() || !p.contains(sub)) {
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
        let fragment_regular = self.regular.get(&parent).is_some_and(|r| r.contains(&name));
        Ok(UnitFiles {
            name,
            fragment: file.to_path_buf(),
            dropins: by_name.into_values().collect(),
            fragment_regular,
        })
    }
}

fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Find `file`'s drop-ins (one-off; see [`DropinIndex`] for many units).
pub fn locate(root: &Root, file: &Path) -> anyhow::Result<UnitFiles> {
    DropinIndex::new(root, &[file.to_path_buf()]).locate(file)
}

/// Every assignment of the unit and its drop-ins, in application order,
/// plus syntax issues.
pub fn read_all(files: &UnitFiles) -> anyhow::Result<(Vec<Assignment>, Vec<SyntaxIssue>)> {
    thread_local! {
        /// One read buffer per thread, reused for every file.
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    let mut all = Vec::new();
    let mut issues = Vec::new();
    let fragment = std::iter::once((&files.fragment, files.fragment_regular));
    let dropins = files.dropins.iter().map(|d| (d, true));
    BUF.with_borrow_mut(|buf| -> anyhow::Result<()> {
        for (f, regular) in fragment.chain(dropins) {
            let len = read_file(f, buf, regular).with_context(|| format!("cannot read {f:?}"))?;
            let bytes = &buf[..len];
            // Valid UTF-8 (the usual case) is checked by the fast path.
            let text = match std::str::from_utf8(bytes) {
                Ok(t) => Cow::Borrowed(t),
                Err(_) => String::from_utf8_lossy(bytes),
            };
            let (a, i) = parse_ini(&text, f);
            if all.is_empty() {
                all = a;
            } else {
                all.extend(a);
            }
            issues.extend(i);
        }
        Ok(())
    })?;
    Ok((all, issues))
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
