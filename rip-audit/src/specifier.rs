//! systemd's `%` specifiers in path settings, resolved the way the system
//! service manager of systemd 252 resolves them (`systemd.unit(5)`,
//! "Specifiers"), so that `ReadWritePaths=%S/app1` is checked as
//! `/var/lib/app1`.
//!
//! Only the specifiers whose value a unit file and its name determine are
//! resolved; one that depends on the running machine (`%H`, `%m`, `%b`,
//! ...) leaves the word unresolved (`None`), and callers skip it.
//!
//! [`expand`] resolves them all, as systemd does, for the scored settings.

use std::borrow::Cow;
use std::path::Path;
use std::sync::OnceLock;

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

/// Why systemd fails a directive's specifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecifierError {
    /// A `%` before a letter or digit systemd does not know ("Invalid
    /// slot").
    Unknown(char),
    /// The value of this specifier cannot be had (an instance name that
    /// does not unescape, no machine ID).
    Unresolvable(char),
    /// The result is longer than the directive allows (`-ENAMETOOLONG`),
    /// `%` or not.
    TooLong,
}

/// The longest value `unit_path_printf()` gives (`PATH_MAX - 1`), for
/// path settings.
pub const PATH_MAX_LEN: usize = 4095;

/// Expand the specifiers of `value` exactly as systemd 252's
/// `unit_full_printf()` does, for the settings rip-audit scores (`User=`,
/// `Group=`, `SupplementaryGroups=`, `RootDirectory=`, `RootImage=`, the
/// `DeviceAllow=` path: `User=%i` in `app@root.service` runs as root), for
/// unit `unit` whose fragment is `fragment`. Machine-dependent specifiers
/// take this machine's values. Borrowed when there is no `%`. A `%` before any other
/// character (or at the end) stays as it is, as in systemd. A result over
/// `max` bytes fails, as systemd's `specifier_printf()` fails it.
pub fn expand<'a>(
    value: &'a str,
    unit: &str,
    fragment: &Path,
    max: usize,
) -> Result<Cow<'a, str>, SpecifierError> {
    if !value.contains('%') {
        if value.len() > max {
            return Err(SpecifierError::TooLong);
        }
        return Ok(Cow::Borrowed(value));
    }
    let mut out = String::with_capacity(value.len() + 16);
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(s) = chars.next() else {
            out.push('%');
            break;
        };
        match lookup(s, unit, fragment)? {
            Some(v) => out.push_str(&v),
            None if s.is_ascii_alphanumeric() => return Err(SpecifierError::Unknown(s)),
            None => {
                out.push('%');
                out.push(s);
            }
        }
        // The result only grows: a check per step as systemd's fails where
        // this one does, and an earlier unknown specifier still wins.
        if out.len() > max {
            return Err(SpecifierError::TooLong);
        }
    }
    if out.len() > max {
        return Err(SpecifierError::TooLong);
    }
    Ok(Cow::Owned(out))
}

/// The name systemd-analyze gives a unit file: a template (`x@.service`)
/// is analysed as the instance `x@i.service`.
pub fn instantiated(unit: &str) -> Cow<'_, str> {
    // Most names have no `@` at all: no substring search for them.
    if !unit.as_bytes().contains(&b'@') {
        return Cow::Borrowed(unit);
    }
    match unit.split_once("@.") {
        Some((t, suffix)) if !suffix.contains(['@', '.']) => Cow::Owned(format!("{t}@i.{suffix}")),
        _ => Cow::Borrowed(unit),
    }
}

/// The value of specifier `s` (None: not a specifier).
fn lookup(s: char, unit: &str, fragment: &Path) -> Result<Option<String>, SpecifierError> {
    let unit = &*instantiated(unit);
    let bad = || SpecifierError::Unresolvable(s);
    let (stem, _suffix) = unit.rsplit_once('.').unwrap_or((unit, ""));
    let (prefix, instance) = match stem.split_once('@') {
        Some((p, i)) => (p, Some(i).filter(|i| !i.is_empty())),
        None => (stem, None),
    };
    let last = last_component(prefix);
    let host = host();
    let v = match s {
        '%' => "%".to_owned(),
        'n' => unit.to_owned(),
        'N' => stem.to_owned(),
        'p' => prefix.to_owned(),
        'P' => unescape_exact(prefix).ok_or_else(bad)?,
        'i' => instance.unwrap_or_default().to_owned(),
        'I' => unescape_exact(instance.unwrap_or_default()).ok_or_else(bad)?,
        'j' => last.to_owned(),
        'J' => unescape_exact(last).ok_or_else(bad)?,
        'f' => path_unescape(instance.unwrap_or(prefix)).ok_or_else(bad)?,
        'y' => absolute(fragment),
        'Y' => {
            let f = absolute(fragment);
            match f.rfind('/') {
                Some(0) | None => "/".to_owned(),
                Some(i) => f[..i].to_owned(),
            }
        }
        'd' => format!("/run/credentials/{unit}"),
        // Undocumented in 252: the unit's control group (offline, in the
        // root slice) and two that expand to nothing.
        'c' => format!("/{unit}"),
        'r' | 'R' => String::new(),
        't' => "/run".to_owned(),
        'S' => "/var/lib".to_owned(),
        'C' => "/var/cache".to_owned(),
        'L' => "/var/log".to_owned(),
        'E' => "/etc".to_owned(),
        'T' => host.tmp.clone(),
        'V' => host.var_tmp.clone(),
        'u' => host.user.clone(),
        'U' => host.uid.to_string(),
        'g' => host.group.clone(),
        'G' => host.gid.to_string(),
        'h' => host.home.clone(),
        's' => host.shell.clone(),
        'H' => host.hostname.clone(),
        'l' => host
            .hostname
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned(),
        'q' => host.pretty_hostname.clone(),
        'm' => host.machine_id.clone().ok_or_else(bad)?,
        'b' => host.boot_id.clone().ok_or_else(bad)?,
        'v' => host.kernel.clone(),
        'a' => host.arch.to_owned(),
        'o' | 'w' | 'W' | 'B' | 'M' | 'A' => {
            let key = match s {
                'o' => "ID",
                'w' => "VERSION_ID",
                'W' => "VARIANT_ID",
                'B' => "BUILD_ID",
                'M' => "IMAGE_ID",
                _ => "IMAGE_VERSION",
            };
            host.os_release
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        }
        _ => return Ok(None),
    };
    Ok(Some(v))
}

/// systemd's `unit_name_unescape()`: `-` is `/`, `\xNN` a byte; None where
/// systemd fails (a bad escape, or not UTF-8 after it).
fn unescape_exact(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'-' => out.push(b'/'),
            b'\\' => {
                let hex = b.get(i + 1..i + 4).filter(|h| h[0] == b'x')?;
                let hex = std::str::from_utf8(&hex[1..]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// systemd's `unit_name_path_unescape()`: `-` is `/`, otherwise `/` and
/// the unescaped name, which may not start or end with `/` or hold `..`.
fn path_unescape(s: &str) -> Option<String> {
    if s == "-" {
        return Some("/".to_owned());
    }
    let w = unescape_exact(s).filter(|w| !w.is_empty())?;
    let bad = w.starts_with('/') || w.ends_with('/') || w.split('/').any(|c| c == "..");
    (!bad).then(|| format!("/{w}"))
}

fn absolute(p: &Path) -> String {
    let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    p.to_string_lossy().into_owned()
}

/// What the host-dependent specifiers expand to, looked up once.
struct Host {
    user: String,
    uid: u32,
    group: String,
    gid: u32,
    home: String,
    shell: String,
    tmp: String,
    var_tmp: String,
    hostname: String,
    pretty_hostname: String,
    machine_id: Option<String>,
    boot_id: Option<String>,
    kernel: String,
    arch: &'static str,
    os_release: Vec<(String, String)>,
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        use nix::unistd::{getgid, getuid, Group, User};
        let (uid, gid) = (getuid(), getgid());
        let user = User::from_uid(uid).ok().flatten();
        // Like systemd: $HOME, $SHELL and $TMPDIR when absolute, else the
        // user database (root's are fixed).
        let env_path = |k: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| v.starts_with('/') && !v.split('/').any(|c| c == ".." || c == "."))
        };
        let home = env_path("HOME").unwrap_or_else(|| match &user {
            _ if uid.is_root() => "/root".to_owned(),
            Some(u) => u.dir.to_string_lossy().into_owned(),
            None => "/".to_owned(),
        });
        let shell = env_path("SHELL").unwrap_or_else(|| match &user {
            _ if uid.is_root() => "/bin/sh".to_owned(),
            Some(u) => u.shell.to_string_lossy().into_owned(),
            None => "/bin/sh".to_owned(),
        });
        let tmp = env_path("TMPDIR");
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty() && h != "(none)")
            .unwrap_or_else(|| "localhost".to_owned());
        let env_file = |p: &str| -> Vec<(String, String)> {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| {
                    (
                        k.trim().to_owned(),
                        v.trim().trim_matches(['"', '\'']).to_owned(),
                    )
                })
                .collect()
        };
        let pretty = env_file("/etc/machine-info")
            .into_iter()
            .find(|(k, _)| k == "PRETTY_HOSTNAME")
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty());
        let mut os_release = env_file("/etc/os-release");
        if os_release.is_empty() {
            os_release = env_file("/usr/lib/os-release");
        }
        let first_line = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|t| t.lines().next().unwrap_or_default().replace('-', ""))
                .filter(|t| !t.is_empty())
        };
        Host {
            user: user
                .as_ref()
                .map_or_else(|| uid.to_string(), |u| u.name.clone()),
            uid: uid.as_raw(),
            group: Group::from_gid(gid)
                .ok()
                .flatten()
                .map_or_else(|| gid.to_string(), |g| g.name),
            gid: gid.as_raw(),
            home,
            shell,
            var_tmp: tmp.clone().unwrap_or_else(|| "/var/tmp".to_owned()),
            tmp: tmp.unwrap_or_else(|| "/tmp".to_owned()),
            pretty_hostname: pretty.unwrap_or_else(|| hostname.clone()),
            hostname,
            machine_id: first_line("/etc/machine-id"),
            boot_id: first_line("/proc/sys/kernel/random/boot_id"),
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            arch: match std::env::consts::ARCH {
                "x86_64" => "x86-64",
                "aarch64" => "arm64",
                "powerpc64" if cfg!(target_endian = "little") => "ppc64-le",
                "powerpc64" => "ppc64",
                "powerpc" => "ppc",
                "mips64" if cfg!(target_endian = "little") => "mips64-le",
                "mips" if cfg!(target_endian = "little") => "mips-le",
                a => a,
            },
            os_release,
        }
    })
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

    #[test]
    fn expand_like_systemd() {
        let f = Path::new("/etc/systemd/system/a-b@root.service");

        let x = |v| expand(v, "a-b@root.service", f, PATH_MAX_LEN);

        assert_eq!(x("%i").unwrap(), "root");
        assert_eq!(x("%p %P %j %N").unwrap(), "a-b a/b b a-b@root");
        assert_eq!(x("50%% %!").unwrap(), "50% %!");
        assert_eq!(x("a%").unwrap(), "a%");
        assert_eq!(x("%z"), Err(SpecifierError::Unknown('z')));
        assert_eq!(x("%f").unwrap(), "/root");
        assert_eq!(expand("%I", "x@a\\x2db.service", f, 9).unwrap(), "a-b");
        assert_eq!(expand("%f", "x@-.service", f, 9).unwrap(), "/");
        assert_eq!(expand("%i", "plain.service", f, 9).unwrap(), "");
        assert_eq!(
            expand("/1234", "x.service", f, 4),
            Err(SpecifierError::TooLong)
        );
        assert_eq!(
            expand("/%i", "x@123.service", f, 3),
            Err(SpecifierError::TooLong)
        );
    }
}
