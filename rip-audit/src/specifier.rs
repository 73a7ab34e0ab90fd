//! systemd's `%` specifiers in path settings, resolved the way the system
//! service manager of systemd 252 resolves them (`systemd.unit(5)`,
//! "Specifiers"), so that `ReadWritePaths=%S/app1` is checked as
//! `/var/lib/app1`.
//!
//! Only the specifiers whose value a unit file and its name determine are
//! resolved; one that depends on the running machine (`%H`, `%m`, `%b`,
//! ...) leaves the word unresolved (`None`), and callers skip it.

/// `word` with its specifiers resolved for the system unit `unit`
/// (`app1.service`, `x@inst.service`) loaded from `fragment`, or `None`
/// when a specifier cannot be resolved here (or a `%` ends the word).
pub fn resolve(word: &str, unit: &str, fragment: Option<&str>) -> Option<String> {
    if !word.contains('%') {
        return Some(word.to_owned());
    }
    let (name, _suffix) = unit.rsplit_once('.').unwrap_or((unit, ""));
    let (prefix, instance) = match name.split_once('@') {
        Some((p, i)) => (p, Some(i)),
        None => (name, None),
    };
    let mut out = String::with_capacity(word.len() + 16);
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let value: String = match chars.next()? {
            '%' => "%".into(),
            // Directories of the system manager.
            'C' => "/var/cache".into(),
            'E' => "/etc".into(),
            'L' => "/var/log".into(),
            'S' => "/var/lib".into(),
            't' => "/run".into(),
            'T' => "/tmp".into(),
            'V' => "/var/tmp".into(),
            'd' => format!("/run/credentials/{unit}"),
            // The manager's own user: root (its shell, `%s`, depends on the
            // machine's passwd).
            'h' => "/root".into(),
            'u' | 'g' => "root".into(),
            'U' | 'G' => "0".into(),
            // The unit's name.
            'n' => unit.into(),
            'N' => name.into(),
            'p' => prefix.into(),
            'P' => unescape(prefix),
            'i' => instance.unwrap_or("").into(),
            'I' => unescape(instance.unwrap_or("")),
            'j' => last_component(prefix).into(),
            'J' => unescape(last_component(prefix)),
            'f' => format!("/{}", unescape(instance.unwrap_or(prefix))),
            'y' => fragment?.into(),
            'Y' => {
                let f = fragment?;
                match f.rfind('/') {
                    Some(0) => "/".into(),
                    Some(i) => f[..i].into(),
                    None => ".".into(),
                }
            }
            _ => return None,
        };
        out.push_str(&value);
    }
    Some(out)
}

/// The part of a unit name prefix after its last dash.
fn last_component(prefix: &str) -> &str {
    prefix.rsplit('-').next().unwrap_or(prefix)
}

/// systemd's `unit_name_unescape()` followed by the path reading of `%I`
/// and friends: `-` is `/`, `\xNN` is the byte NN.
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'-' => out.push(b'/'),
            b'\\' if b.get(i + 1) == Some(&b'x') => {
                let hex = s
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => out.push(b'\\'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_names_resolve() {
        let r = |w| {
            resolve(
                w,
                "web@blue.service",
                Some("/etc/systemd/system/web@.service"),
            )
        };

        assert_eq!(r("%S/%p").as_deref(), Some("/var/lib/web"));
        assert_eq!(r("%C/%i").as_deref(), Some("/var/cache/blue"));
        assert_eq!(r("%t/%N").as_deref(), Some("/run/web@blue"));
        assert_eq!(r("%h/x").as_deref(), Some("/root/x"));
        assert_eq!(r("%Y").as_deref(), Some("/etc/systemd/system"));
        assert_eq!(r("100%%").as_deref(), Some("100%"));
        assert_eq!(r("/plain").as_deref(), Some("/plain"));
    }

    #[test]
    fn escaped_instances_unescape() {
        let r = resolve("/srv/%I", "mnt@data-a\\x2db.service", None);

        assert_eq!(r.as_deref(), Some("/srv/data/a-b"));
    }

    #[test]
    fn machine_dependent_or_broken_specifiers_stay_unresolved() {
        assert_eq!(resolve("/x/%H", "a.service", None), None);
        assert_eq!(resolve("/x/%", "a.service", None), None);
        assert_eq!(resolve("%y", "a.service", None), None);
    }
}
