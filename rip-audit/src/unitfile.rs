//! Reading unit files the way systemd 252's loader does: sections, `#`/`;`
//! comment lines only at the start of a line, backslash continuation, and
//! drop-ins (`<unit>.d/*.conf`, `service.d/`, dash prefixes) found next to
//! the file and on the unit search path under `--root`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rip_core::Root;

/// One `Key=value` line of a unit file or drop-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Section name without brackets (`Service`).
    pub section: String,
    /// Directive name (`NoNewPrivileges`).
    pub key: String,
    /// The value, stripped of surrounding whitespace, comments included.
    pub value: String,
    /// File it comes from (as given, under the root when one is used).
    pub file: PathBuf,
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
}

/// Parse one file's text. Continuation lines (odd trailing backslash) are
/// joined with the backslash replaced by a space; comment lines inside a
/// continuation are skipped, as systemd does.
pub fn parse_ini(text: &str, file: &Path) -> (Vec<Assignment>, Vec<SyntaxIssue>) {
    let mut out = Vec::new();
    let mut issues = Vec::new();
    let mut section: Option<String> = None;
    let mut cont: Option<(String, usize)> = None;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').collect();
    let n = lines.len();
    for (i, raw) in lines.iter().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if i + 1 == n && raw.is_empty() && cont.is_none() {
            break;
        }
        let lead = raw.trim_start_matches([' ', '\t', '\n', '\r']);
        if lead.starts_with(['#', ';']) {
            continue;
        }
        let (mut text, start) = match cont.take() {
            Some((mut c, start)) => {
                c.push_str(raw);
                (c, start)
            }
            None => (raw.to_owned(), i + 1),
        };
        if ends_with_escape(&text) {
            text.pop();
            text.push(' ');
            cont = Some((text, start));
            continue;
        }
        parse_line(&text, start, file, &mut section, &mut out, &mut issues);
    }
    if let Some((text, start)) = cont {
        parse_line(&text, start, file, &mut section, &mut out, &mut issues);
    }
    (out, issues)
}

fn ends_with_escape(s: &str) -> bool {
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
    file: &Path,
    section: &mut Option<String>,
    out: &mut Vec<Assignment>,
    issues: &mut Vec<SyntaxIssue>,
) {
    let l = text.trim_matches(is_ws);
    if l.is_empty() || l.starts_with(['#', ';']) {
        return;
    }
    if let Some(rest) = l.strip_prefix('[') {
        match rest.strip_suffix(']') {
            Some(name) => *section = Some(name.to_owned()),
            None => issues.push(SyntaxIssue {
                file: file.to_path_buf(),
                line,
                message: format!("invalid section header {l:?}"),
            }),
        }
        return;
    }
    let Some(sec) = section.clone() else {
        issues.push(SyntaxIssue {
            file: file.to_path_buf(),
            line,
            message: "assignment outside of any section".into(),
        });
        return;
    };
    let Some((k, v)) = l.split_once('=') else {
        issues.push(SyntaxIssue {
            file: file.to_path_buf(),
            line,
            message: format!("missing '=' in {l:?}"),
        });
        return;
    };
    out.push(Assignment {
        section: sec,
        key: k.trim_matches(is_ws).to_owned(),
        value: v.trim_matches(is_ws).to_owned(),
        file: file.to_path_buf(),
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
    /// path wins for equal names).
    pub dropins: Vec<PathBuf>,
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
    search: Vec<PathBuf>,
}

impl DropinIndex {
    /// Index the search path under `root` and the directories of `files`.
    pub fn new(root: &Root, files: &[PathBuf]) -> Self {
        let mut idx = DropinIndex::default();
        for f in files {
            let parent = parent_dir(f);
            idx.add(parent);
        }
        for d in SEARCH_PATH {
            let p = root.join(d);
            idx.search.push(p.clone());
            idx.add(p);
        }
        idx
    }

    fn add(&mut self, dir: PathBuf) {
        if self.dirs.contains_key(&dir) {
            return;
        }
        let mut names = HashSet::new();
        if let Ok(rd) = fs::read_dir(&dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with(".d") {
                    names.insert(n);
                }
            }
        }
        self.dirs.insert(dir, names);
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
                .filter(|d| d.as_os_str() != parent.as_os_str())
                .map(|d| (d, self.dirs.get(d))),
        );
        for (dir, present) in dirs {
            for sub in &subs {
                if present.is_some_and(|p| !p.contains(sub)) {
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
        Ok(UnitFiles {
            name,
            fragment: file.to_path_buf(),
            dropins: by_name.into_values().collect(),
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
    let mut all = Vec::new();
    let mut issues = Vec::new();
    let mut buf = Vec::new();
    for f in std::iter::once(&files.fragment).chain(files.dropins.iter()) {
        read_file(f, &mut buf).with_context(|| format!("cannot read {f:?}"))?;
        let text = String::from_utf8_lossy(&buf);
        let (a, i) = parse_ini(&text, f);
        all.extend(a);
        issues.extend(i);
    }
    Ok((all, issues))
}

/// Read a whole file into `buf` (cleared first, its capacity reused):
/// open, read until EOF, close. `fs::read` and `File::read_to_end` ask for
/// the size first (statx and lseek); going through `Take` uses the
/// generic loop, which reads straight into the spare capacity instead.
pub fn read_file(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    buf.reserve(16 * 1024);
    fs::File::open(path)?.take(u64::MAX).read_to_end(buf)?;
    Ok(())
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
    fn dropin_dirs_cover_prefixes() {
        assert_eq!(
            dropin_dir_names("a-b.service"),
            vec!["service.d", "a-.service.d", "a-b.service.d"]
        );
    }
}
