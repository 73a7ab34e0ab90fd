//! Reading unit files the way systemd 252's loader does: sections, `#`/`;`
//! comment lines only at the start of a line, backslash continuation; the
//! files of a unit (fragment, drop-ins) are found by [`crate::lookup`].

use std::borrow::Cow;
use std::cell::RefCell;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

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

pub use crate::lookup::{locate, unit_name, UnitFiles, UnitIndex, SEARCH_PATH};

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
    if files.not_found.is_some() {
        return Ok(Vec::new());
    }
    let within = files.root.as_deref();
    let mut issues = read_one(&files.fragment, within, files.fragment_regular, &mut each)?;
    for d in &files.dropins {
        issues.extend(read_one(d, within, true, &mut each)?);
    }
    Ok(issues)
}

/// Read and parse one file (a fragment or a drop-in; `within` a root, see
/// [`open_in`]), handing each assignment to `each`; returns the syntax
/// issues. A `regular` file is read without the final read for EOF (see
/// [`read_file`]).
pub fn read_one(
    f: &Path,
    within: Option<&Path>,
    regular: bool,
    mut each: impl FnMut(Line<'_>),
) -> anyhow::Result<Vec<SyntaxIssue>> {
    thread_local! {
        /// One read buffer per thread, reused for every file.
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        let len =
            read_file(f, within, buf, regular).with_context(|| format!("cannot read {f:?}"))?;
        Ok(parse_ini_with(&buf[..len], &Arc::from(f), &mut each))
    })
}

/// Read a whole file (see [`open_in`] for `within`) into the start of
/// `buf`, a buffer kept initialised
/// and reused across calls (grown when a file fills it); returns the
/// length read. One open, read and close per file: for a `regular` file a
/// short read is its end (Linux reads regular files in full up to EOF), so
/// the extra read that would return 0 is skipped; anything else (a
/// symlink, a file not listed) has its status checked before anything is
/// read, and is read until a read returns 0, or until a short read that
/// reaches the size `fstat` gives when that shows a regular file (a file
/// of /proc shows size 0 and is read to the end). The file is opened
/// without blocking and must be a regular file: a character device (a unit
/// masked with a link to /dev/null) reads as empty, as systemd takes it
/// for an empty (masked) file, and anything else (a FIFO, a socket) is an
/// error, never read.
pub fn read_file(
    path: &Path,
    within: Option<&Path>,
    buf: &mut Vec<u8>,
    regular: bool,
) -> std::io::Result<usize> {
    use std::os::unix::fs::FileTypeExt;
    if buf.len() < 16 * 1024 {
        buf.resize(16 * 1024, 0);
    }
    let mut f = open_in(within, path, libc::O_RDONLY | libc::O_NONBLOCK)?;
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

/// Open `path` (with `flags`, close-on-exec added). `within` a root, a
/// path inside it resolves as if the root were `/` (openat2 with
/// RESOLVE_IN_ROOT): no symlink, absolute or with `..`, leads out of it, so
/// a unit or drop-in linked to `/etc/shadow` in an image is read from the
/// image, never from this machine. (systemd-analyze --root follows such a
/// link on the machine it runs on.)
pub fn open_in(within: Option<&Path>, path: &Path, flags: i32) -> std::io::Result<fs::File> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::fs::OpenOptionsExt;
    let inside = within.and_then(|r| Some((r, path.strip_prefix(r).ok()?)));
    let Some((root, rel)) = inside else {
        return fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags | libc::O_CLOEXEC)
            .open(path);
    };
    let dir = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root)?;
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let how = OpenHow::new()
        .flags(OFlag::from_bits_truncate(flags | libc::O_CLOEXEC))
        .resolve(ResolveFlag::RESOLVE_IN_ROOT);
    let fd = openat2(dir.as_raw_fd(), rel, how)?;
    // SAFETY: openat2 just returned this descriptor; nothing else owns it.
    Ok(unsafe { fs::File::from_raw_fd(fd) })
}

/// The status of `path` (following links; see [`open_in`] for `within`).
pub fn stat_in(within: Option<&Path>, path: &Path) -> std::io::Result<fs::Metadata> {
    match within {
        Some(_) => open_in(within, path, libc::O_PATH)?.metadata(),
        None => fs::metadata(path),
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
}
