//! Writing values in systemd's unit file syntax (systemd.syntax(7),
//! systemd.service(5)): specifiers, `$` expansion, quoting, and the values
//! that cannot be written at all.

use std::fmt;

/// A value that no escaping can carry into a unit file intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrepresentable {
    /// The value, for the message.
    pub value: String,
    /// Why systemd would read something else.
    pub reason: &'static str,
}

impl fmt::Display for Unrepresentable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} cannot be written in a unit file: {}",
            self.value, self.reason
        )
    }
}

impl std::error::Error for Unrepresentable {}

/// Whether `c` is a Unicode noncharacter, which systemd's UTF-8 check
/// refuses ("String is not UTF-8 clean, ignoring assignment").
fn is_noncharacter(c: char) -> bool {
    let u = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&u) || (u & 0xFFFE) == 0xFFFE
}

/// Checks shared by every value: systemd drops a whole assignment that holds
/// a noncharacter or a control character (the latter are already refused by
/// the spec validation; checked again so this module stands alone).
pub fn check_chars(s: &str) -> Result<(), Unrepresentable> {
    if s.chars().any(is_noncharacter) {
        return Err(Unrepresentable {
            value: s.to_owned(),
            reason: "it holds a Unicode noncharacter (U+FDD0..U+FDEF or U+xFFFE/U+xFFFF), \
                     which systemd rejects as not UTF-8 clean",
        });
    }
    if s.chars().any(char::is_control) {
        return Err(Unrepresentable {
            value: s.to_owned(),
            reason: "it holds a control character",
        });
    }
    Ok(())
}

/// Double every `%` so that specifier expansion gives the text back.
pub fn specifiers(s: &str) -> String {
    s.replace('%', "%%")
}

/// One double-quoted word as systemd's word splitter reads it: `\` and `"`
/// escaped, everything else literal (UTF-8 included).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One argv element of `ExecStart=`: `%` doubled (specifiers), `$` doubled
/// (environment expansion), then quoted.
pub fn exec_word(s: &str) -> Result<String, Unrepresentable> {
    check_chars(s)?;
    Ok(quote(&specifiers(&s.replace('$', "$$"))))
}

/// The whole `ExecStart=` value for `argv` (`argv[0]` is the executable).
///
/// systemd neither `$`-expands nor accepts quotes or backslashes in the
/// executable path ("Executable name contains special characters"), while
/// it does expand `argv[0]`. A path holding `$` is therefore written in the
/// `@PATH ARGV0` form, where only the second word is expanded.
pub fn exec_line(argv: &[String]) -> Result<String, Unrepresentable> {
    let Some((path, args)) = argv.split_first() else {
        return Err(Unrepresentable {
            value: String::new(),
            reason: "the command is empty",
        });
    };
    check_chars(path)?;
    if path.contains(['"', '\'', '\\']) {
        return Err(Unrepresentable {
            value: path.clone(),
            reason: "systemd refuses quotes and backslashes in the executable path",
        });
    }
    let mut words = Vec::with_capacity(argv.len() + 1);
    if path.contains('$') {
        words.push(format!("@{}", quote(&specifiers(path))));
    }
    words.push(exec_word(path)?);
    for a in args {
        words.push(exec_word(a)?);
    }
    Ok(words.join(" "))
}

/// One `Environment=` assignment: `KEY=value` quoted as a single word with
/// `%` doubled. `$` stays literal: Environment= does no variable expansion.
pub fn env_assignment(key: &str, value: &str) -> Result<String, Unrepresentable> {
    check_chars(key)?;
    check_chars(value)?;
    Ok(quote(&specifiers(&format!("{key}={value}"))))
}

/// One path of a space-separated path list (`ReadWritePaths=`,
/// `BindPaths=`, `BindReadOnlyPaths=`), quoted so spaces and `:` stay in
/// it; `prefix` is systemd's `-` (ignore if missing) or empty.
pub fn list_path(prefix: &str, path: &str) -> Result<String, Unrepresentable> {
    check_chars(path)?;
    Ok(format!("{prefix}{}", quote(&specifiers(path))))
}

/// A value systemd takes verbatim up to the end of the line, expanding only
/// specifiers (`WorkingDirectory=`, `EnvironmentFile=`, `Description=`, the
/// path of `LoadCredential=`). Leading or trailing blanks would be stripped
/// and a trailing backslash would continue the line, so those are refused.
pub fn raw_value(s: &str) -> Result<String, Unrepresentable> {
    check_chars(s)?;
    let bad = |reason| {
        Err(Unrepresentable {
            value: s.to_owned(),
            reason,
        })
    };
    if s.starts_with([' ', '\t']) || s.ends_with([' ', '\t']) {
        return bad("systemd strips leading and trailing blanks of this kind of value");
    }
    if s.ends_with('\\') {
        return bad("a trailing backslash continues the line in a unit file");
    }
    Ok(specifiers(s))
}

/// An `EnvironmentFile=` path: systemd passes it to glob(3), so backslash, `*`,
/// `?` and `[` are escaped with a backslash on top of [`raw_value`].
pub fn glob_path(s: &str) -> Result<String, Unrepresentable> {
    let raw = raw_value(s)?;
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '\\' | '*' | '?' | '[') {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(out)
}

/// Split an `ExecStart=`-style value back into words the way systemd 252
/// does (quotes, C escapes, `%%` and `$$`), for tests and drop-in reading.
/// Only the escapes [`exec_word`] produces, plus the common C ones, are
/// understood; an unterminated quote or unknown escape gives `None`.
pub fn split_exec(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(words);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            if quote.is_none() && (c == ' ' || c == '\t') {
                break;
            }
            chars.next();
            match c {
                '"' | '\'' if quote.is_none() => quote = Some(c),
                q if Some(q) == quote => quote = None,
                '\\' => {
                    let e = chars.next()?;
                    word.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        '\\' | '"' | '\'' | ' ' => e,
                        _ => return None,
                    });
                }
                _ => word.push(c),
            }
        }
        if quote.is_some() {
            return None;
        }
        words.push(word.replace("%%", "%").replace("$$", "$"));
    }
}

/// The argv a process started from an `ExecStart=` value receives (the
/// `@PATH ARGV0` form drops PATH). See [`split_exec`].
pub fn exec_argv(line: &str) -> Option<Vec<String>> {
    let mut words = split_exec(line)?;
    if words.first().is_some_and(|w| w.starts_with('@')) {
        words.remove(0);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_words_are_quoted_and_escaped() {
        let argv: Vec<String> = ["/home/a b/bin", "$5", "100%", "say \"hi\"", "back\\slash"]
            .map(str::to_owned)
            .to_vec();

        let line = exec_line(&argv).unwrap();

        assert_eq!(
            line,
            r#""/home/a b/bin" "$$5" "100%%" "say \"hi\"" "back\\slash""#
        );
    }

    #[test]
    fn exec_line_round_trips_through_the_splitter() {
        let argv: Vec<String> = ["/x", "", " ", "#not a comment", ";", "\\;", "'q'", "€ ✓ 😀"]
            .map(str::to_owned)
            .to_vec();

        let line = exec_line(&argv).unwrap();

        assert_eq!(exec_argv(&line).unwrap(), argv);
    }

    #[test]
    fn executable_with_dollar_uses_the_at_form() {
        let argv: Vec<String> = ["/home/a/bin/$x", "-p"].map(str::to_owned).to_vec();

        let line = exec_line(&argv).unwrap();

        assert_eq!(line, r#"@"/home/a/bin/$x" "/home/a/bin/$$x" "-p""#);
        assert_eq!(exec_argv(&line).unwrap(), argv);
    }

    #[test]
    fn executable_with_quotes_or_backslash_is_refused() {
        for p in ["/a/\"b", "/a/'b", "/a/b\\c"] {
            assert!(exec_line(&[p.to_owned()]).is_err(), "{p}");
        }
    }

    #[test]
    fn env_keeps_dollar_and_doubles_percent() {
        assert_eq!(env_assignment("A", "$HOME 5%").unwrap(), r#""A=$HOME 5%%""#);
    }

    #[test]
    fn list_path_quotes_spaces_and_colons() {
        assert_eq!(
            list_path("-", "/home/a/my dir:x").unwrap(),
            r#"-"/home/a/my dir:x""#
        );
    }

    #[test]
    fn raw_value_refuses_what_systemd_would_change() {
        assert!(raw_value("/a/b\\").is_err());
        assert!(raw_value("/a/b ").is_err());
        assert_eq!(raw_value("/a/100%").unwrap(), "/a/100%%");
    }

    #[test]
    fn environment_file_paths_escape_glob_characters() {
        assert_eq!(
            glob_path("/etc/a\\b[c]*?%").unwrap(),
            "/etc/a\\\\b\\[c]\\*\\?%%"
        );
    }

    #[test]
    fn noncharacters_are_refused() {
        for s in ["a\u{FFFF}", "\u{FDD0}", "\u{10FFFE}", "\u{1FFFF}"] {
            assert!(exec_word(s).is_err(), "{s:?}");
        }
        assert!(exec_word("\u{FFFD}\u{FDCF}\u{FDF0}").is_ok());
    }
}
