//! Validation of app specs, one record at a time and across the whole input.
//!
//! Every check runs before any tool touches the system; an error names the
//! record, its line, the app and the field.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use serde_json::{Map, Value};

use crate::spec::{AppSpec, RawSpec};

/// A rejected input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// 1-based position of the record in the input.
    pub record: usize,
    /// 1-based line where the record starts (0 when not from a stream).
    pub line: usize,
    /// The app's name, when it could be read.
    pub app: Option<String>,
    /// Dotted path of the offending field (`listen[0].port`), or empty.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {}", self.record)?;
        if self.line > 0 {
            write!(f, " (line {})", self.line)?;
        }
        if let Some(app) = &self.app {
            write!(f, ", app {app:?}")?;
        }
        if !self.field.is_empty() {
            write!(f, ", field {:?}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for InputError {}

/// A field-level problem, before it is tied to a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted field path.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Top-level directories an app's home or writable path must never be in.
/// All of /var is refused: daemons, spools, logs and package databases live
/// there, and a chown of any of them hands a system file to an app.
pub const SYSTEM_DIRS: &[&str] = &[
    "bin",
    "boot",
    "dev",
    "etc",
    "lib",
    "lib32",
    "lib64",
    "libx32",
    "lost+found",
    "proc",
    "root",
    "run",
    "sbin",
    "snap",
    "sys",
    "tmp",
    "usr",
    "var",
];

/// Longest string accepted anywhere in a record, in bytes: far below
/// systemd's line limit, far above any real path, argument or label.
pub const MAX_STRING: usize = 4096;

/// Whether `name` is a valid app, user or group name:
/// `^[a-z_][a-z0-9_-]{0,30}$`.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() || c == '_' => {}
        _ => return false,
    }
    name.len() <= 31
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Check that `path` is absolute and normalized: no empty, `.` or `..`
/// components and no trailing slash.
pub fn check_abs_path(field: &str, path: &str) -> Result<(), FieldError> {
    if !path.starts_with('/') {
        return Err(bad(field, format!("path {path:?} is not absolute")));
    }
    if path == "/" {
        return Ok(());
    }
    for comp in path[1..].split('/') {
        match comp {
            "" => {
                return Err(bad(
                    field,
                    format!("path {path:?} is not normalized (empty component or trailing slash)"),
                ))
            }
            "." | ".." => {
                return Err(bad(
                    field,
                    format!("path {path:?} must not contain {comp:?}"),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Check that `path` (absolute, normalized) is neither `/`, nor a system
/// directory or inside one ([`SYSTEM_DIRS`], `/var/tmp`), and lies at least
/// two levels deep: the rules of an app's home and writable paths.
pub fn check_not_system(field: &str, path: &str, what: &str) -> Result<(), FieldError> {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    if path == "/" || SYSTEM_DIRS.contains(&first) || path.starts_with("/var/tmp") {
        return Err(bad(
            field,
            format!("{what} {path:?} is a system directory or lies under one"),
        ));
    }
    if path.matches('/').count() < 2 {
        return Err(bad(
            field,
            format!("{what} {path:?} must be at least two levels deep (like /home/app)"),
        ));
    }
    Ok(())
}

/// Reject control characters (newlines included) in every key and string
/// of the record, wherever they are.
fn check_no_control(path: &str, value: &Value) -> Result<(), FieldError> {
    match value {
        Value::String(s) => {
            if s.len() > MAX_STRING {
                return Err(bad(
                    path,
                    format!(
                        "is {} bytes long; at most {MAX_STRING} are allowed",
                        s.len()
                    ),
                ));
            }
            if let Some(c) = s.chars().find(|c| c.is_control()) {
                return Err(bad(
                    path,
                    format!("contains the control character {c:?}; none are allowed"),
                ));
            }
        }
        Value::Array(items) => {
            if items.len() > 1024 {
                return Err(bad(path, "has more than 1024 items"));
            }
            for (i, item) in items.iter().enumerate() {
                check_no_control(&format!("{path}[{i}]"), item)?;
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if k.chars().any(|c| c.is_control()) {
                    return Err(bad(sub, "key contains a control character"));
                }
                check_no_control(&sub, v)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn is_memory_size(s: &str) -> bool {
    if s == "infinity" {
        return true;
    }
    let digits = s.trim_end_matches(['K', 'M', 'G', 'T']);
    s.len() - digits.len() <= 1 && !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

fn is_percent(s: &str) -> bool {
    s.strip_suffix('%')
        .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()) && d != "0")
}

/// Parse and check one record. Returns the spec with defaults resolved.
pub fn check_record(raw: &Map<String, Value>) -> Result<AppSpec, FieldError> {
    let whole = Value::Object(raw.clone());
    check_no_control("", &whole)?;

    let parsed: RawSpec = serde_path_to_error::deserialize(&whole).map_err(|e| {
        let field = e.path().to_string();
        bad(
            if field == "." { String::new() } else { field },
            e.inner().to_string(),
        )
    })?;
    if !raw.contains_key("name") {
        return Err(bad("name", "missing; every app needs a name"));
    }
    check_raw(&parsed)?;
    let spec = parsed.resolve();
    check_resolved(&spec)?;
    Ok(spec)
}

fn check_raw(raw: &RawSpec) -> Result<(), FieldError> {
    let name_rule = "must match ^[a-z_][a-z0-9_-]{0,30}$";
    if !is_valid_name(&raw.name) {
        return Err(bad("name", format!("{:?} {name_rule}", raw.name)));
    }
    for (field, value) in [("user", &raw.user), ("group", &raw.group)] {
        if let Some(v) = value {
            if !is_valid_name(v) {
                return Err(bad(field, format!("{v:?} {name_rule}")));
            }
        }
    }
    if let Some(exec) = &raw.exec {
        if exec.is_empty() {
            return Err(bad("exec", "must hold at least the binary's path"));
        }
    }
    if let Some(host) = &raw.host {
        if host != "local" && !is_hostname(host) {
            return Err(bad("host", format!("{host:?} is not a host name")));
        }
    }
    if let Some(desc) = &raw.description {
        if desc.trim().is_empty() {
            return Err(bad("description", "must not be blank"));
        }
    }
    Ok(())
}

fn check_resolved(spec: &AppSpec) -> Result<(), FieldError> {
    let home = spec.home.to_string_lossy();
    check_abs_path("home", &home)?;
    check_not_system("home", &home, "home")?;
    check_abs_path("shell", &spec.shell.to_string_lossy())?;
    check_abs_path("exec[0]", &spec.exec[0])?;
    check_abs_path("workdir", &spec.workdir.to_string_lossy())?;

    let mut ports: BTreeMap<u16, String> = BTreeMap::new();
    for (i, l) in spec.listen.iter().enumerate() {
        let field = format!("listen[{i}]");
        if l.port == 0 {
            return Err(bad(
                format!("{field}.port"),
                "port 0 is not a port (1-65535)",
            ));
        }
        if let Some(addr) = &l.addr {
            if addr.parse::<IpAddr>().is_err() {
                return Err(bad(
                    format!("{field}.addr"),
                    format!("{addr:?} is not an IP address"),
                ));
            }
        }
        if let Some(prev) = ports.insert(l.port, field.clone()) {
            return Err(bad(
                format!("{field}.port"),
                format!("port {} is already used by {prev}", l.port),
            ));
        }
    }
    if let Some(m) = &spec.metrics {
        if m.port == 0 {
            return Err(bad("metrics.port", "port 0 is not a port (1-65535)"));
        }
        if let Some(prev) = ports.get(&m.port) {
            return Err(bad(
                "metrics.port",
                format!("port {} is already used by {prev}", m.port),
            ));
        }
        if !m.path.starts_with('/')
            || m.path
                .chars()
                .any(|c| c.is_whitespace() || c == '?' || c == '#')
        {
            return Err(bad(
                "metrics.path",
                format!(
                    "{:?} must be an absolute URL path without spaces, '?' or '#'",
                    m.path
                ),
            ));
        }
        if let Some(addr) = &m.addr {
            if addr.parse::<IpAddr>().is_err() {
                return Err(bad(
                    "metrics.addr",
                    format!("{addr:?} is not an IP address"),
                ));
            }
        }
    }

    if let Some(dir) = &spec.backup_dir {
        let s = dir.to_string_lossy();
        check_abs_path("backups.dir", &s)?;
        if !spec.in_home(dir) || *dir == spec.home {
            return Err(bad(
                "backups.dir",
                format!("{s:?} must lie inside the app's home {home:?}"),
            ));
        }
    }
    for k in spec.env.keys() {
        if !is_env_name(k) {
            return Err(bad(
                format!("env.{k}"),
                "is not a valid environment variable name",
            ));
        }
    }
    for (i, f) in spec.env_files.iter().enumerate() {
        check_abs_path(&format!("env_files[{i}]"), &f.to_string_lossy())?;
    }
    for (i, s) in spec.secrets.iter().enumerate() {
        let ok = !s.name.is_empty()
            && s.name != "."
            && s.name != ".."
            && s.name.len() <= 255
            && s.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(bad(
                format!("secrets[{i}].name"),
                format!(
                    "{:?} must be made of letters, digits, '_', '.', '-'",
                    s.name
                ),
            ));
        }
        check_abs_path(&format!("secrets[{i}].path"), &s.path)?;
    }
    for (i, p) in spec.rw_paths.iter().enumerate() {
        let field = format!("rw_paths[{i}]");
        let s = p.to_string_lossy();
        check_abs_path(&field, &s)?;
        if s.starts_with("/tmp/") || s == "/tmp" || s.starts_with("/var/tmp") {
            return Err(bad(
                field,
                format!("{s:?} is under a private /tmp; use a directory in the app's home"),
            ));
        }
        check_not_system(&field, &s, "writable path")?;
    }
    if let Some(m) = &spec.limits.memory_max {
        if !is_memory_size(m) {
            return Err(bad(
                "limits.memory_max",
                format!("{m:?} must be like 512M or infinity"),
            ));
        }
    }
    if let Some(c) = &spec.limits.cpu_quota {
        if !is_percent(c) {
            return Err(bad(
                "limits.cpu_quota",
                format!("{c:?} must be a percentage like 50%"),
            ));
        }
    }
    if spec.limits.tasks_max == Some(0) || spec.limits.nofile == Some(0) {
        return Err(bad("limits", "tasks_max and nofile must be at least 1"));
    }
    check_path_relations(spec)?;
    for k in spec.labels.keys() {
        let mut chars = k.chars();
        let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !k.starts_with("__");
        if !ok {
            return Err(bad(
                format!("labels.{k}"),
                "is not a valid Prometheus label name",
            ));
        }
        if ["app", "host", "job", "instance"].contains(&k.as_str()) {
            return Err(bad(
                format!("labels.{k}"),
                "is set by rip-scrape and cannot be overridden",
            ));
        }
    }
    Ok(())
}

/// The writable paths must never cover what the app runs from: a
/// compromised app could otherwise replace its own binary.
fn check_path_relations(spec: &AppSpec) -> Result<(), FieldError> {
    let bin = spec.bin_dir();
    let data = spec.data_dir();
    let exe = Path::new(&spec.exec[0]);
    if let Some(dir) = &spec.backup_dir {
        if data.starts_with(dir) || bin.starts_with(dir) || dir.starts_with(&bin) {
            return Err(bad(
                "backups.dir",
                format!(
                    "{dir:?} must not be or contain {data:?} or {bin:?}, nor lie in {bin:?}: \
                     snapshots get their own directory"
                ),
            ));
        }
    }
    for (i, p) in spec.rw_paths.iter().enumerate() {
        if spec.home.starts_with(p)
            || bin.starts_with(p)
            || p.starts_with(&bin)
            || exe.starts_with(p)
        {
            return Err(bad(
                format!("rw_paths[{i}]"),
                format!("{p:?} would make the home, bin/ or the app's binary writable"),
            ));
        }
    }
    let writable = std::iter::once(&data)
        .chain(spec.backup_dir.iter())
        .chain(spec.rw_paths.iter());
    for w in writable {
        if exe.starts_with(w) {
            return Err(bad(
                "exec[0]",
                format!("the binary {exe:?} lies in the writable path {w:?}; put it in {bin:?}"),
            ));
        }
    }
    Ok(())
}

/// Cross-record checks: unique names, users, groups and homes, no home
/// inside another, and no port used twice on one host.
/// Returns the index of the offending spec with the error.
pub fn check_fleet(specs: &[&AppSpec]) -> Result<(), (usize, FieldError)> {
    let mut names = HashMap::new();
    let mut users = HashMap::new();
    let mut groups = HashMap::new();
    let mut ports: HashMap<(&str, u16), (&str, String)> = HashMap::new();
    for (i, s) in specs.iter().enumerate() {
        for (map, key, field) in [
            (&mut names, &s.name, "name"),
            (&mut users, &s.user, "user"),
            (&mut groups, &s.group, "group"),
        ] {
            if let Some(prev) = map.insert(key.as_str(), s.name.as_str()) {
                return Err((
                    i,
                    bad(field, format!("{key:?} is already used by app {prev:?}")),
                ));
            }
        }

        let mut mine: Vec<(u16, String)> = s
            .listen
            .iter()
            .enumerate()
            .map(|(j, l)| (l.port, format!("listen[{j}].port")))
            .collect();
        if let Some(m) = &s.metrics {
            mine.push((m.port, "metrics.port".to_owned()));
        }
        for (port, field) in mine {
            if let Some((prev, pf)) = ports.get(&(s.host.as_str(), port)) {
                return Err((
                    i,
                    bad(
                        field,
                        format!(
                            "port {port} on host {:?} is already used by app {prev:?} ({pf})",
                            s.host
                        ),
                    ),
                ));
            }
            ports.insert((s.host.as_str(), port), (s.name.as_str(), field));
        }
    }
    for (i, a) in specs.iter().enumerate() {
        for b in specs.iter().take(i) {
            if a.host == b.host && (a.home.starts_with(&b.home) || b.home.starts_with(&a.home)) {
                return Err((
                    i,
                    bad(
                        "home",
                        format!(
                            "{:?} overlaps the home {:?} of app {:?}",
                            a.home, b.home, b.name
                        ),
                    ),
                ));
            }
            for p in &a.rw_paths {
                if a.host == b.host && p.starts_with(&b.home) {
                    return Err((
                        i,
                        bad(
                            "rw_paths",
                            format!("{p:?} lies in the home of app {:?}", b.name),
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn accepts_minimal_spec() {
        assert!(check_record(&record(r#"{"name":"app1"}"#)).is_ok());
    }

    #[test]
    fn rejects_bad_names() {
        for name in ["App", "1app", "a.b", "", "a b", &"a".repeat(32)] {
            let json = serde_json::json!({ "name": name });

            let err = check_record(json.as_object().unwrap()).unwrap_err();

            assert_eq!(err.field, "name", "{name:?}");
        }
    }

    #[test]
    fn accepts_name_of_31_chars() {
        assert!(is_valid_name(&format!("a{}", "b".repeat(30))));
    }

    #[test]
    fn rejects_var_and_its_subtrees() {
        for home in ["/var/spool/cron", "/var/lib/dpkg", "/var/log/app"] {
            let json = serde_json::json!({ "name": "a", "home": home });

            assert!(check_record(json.as_object().unwrap()).is_err(), "{home}");
        }
        let json = serde_json::json!({ "name": "a", "rw_paths": ["/var/log"] });
        assert!(check_record(json.as_object().unwrap()).is_err());
    }

    #[test]
    fn rejects_over_long_strings() {
        let json = serde_json::json!({ "name": "a", "description": "x".repeat(MAX_STRING + 1) });

        let err = check_record(json.as_object().unwrap()).unwrap_err();

        assert_eq!(err.field, "description");
    }

    #[test]
    fn writable_paths_never_cover_the_binary() {
        for (json, field) in [
            (
                r#"{"name":"a","backups":{"dir":"/home/a/bin"}}"#,
                "backups.dir",
            ),
            (
                r#"{"name":"a","backups":{"dir":"/home/a/data"}}"#,
                "backups.dir",
            ),
            (r#"{"name":"a","rw_paths":["/home/a"]}"#, "rw_paths[0]"),
            (
                r#"{"name":"a","rw_paths":["/home/a/bin/x"]}"#,
                "rw_paths[0]",
            ),
            (r#"{"name":"a","exec":["/home/a/data/a"]}"#, "exec[0]"),
        ] {
            let err = check_record(&record(json)).unwrap_err();

            assert_eq!(err.field, field, "{json}");
        }
    }

    #[test]
    fn backups_outside_data_but_in_home_are_fine() {
        assert!(check_record(&record(
            r#"{"name":"a","backups":{"dir":"/home/a/backups"}}"#
        ))
        .is_ok());
    }

    #[test]
    fn rejects_newline_anywhere() {
        let err = check_record(&record(r#"{"name":"a","env":{"X":"1\n2"}}"#)).unwrap_err();

        assert_eq!(err.field, "env.X");
    }

    #[test]
    fn rejects_unnormalized_paths() {
        for home in [
            "home/a",
            "/home/../etc",
            "/home//a",
            "/home/a/",
            "/home/./a",
        ] {
            let json = serde_json::json!({ "name": "a", "home": home });

            let err = check_record(json.as_object().unwrap()).unwrap_err();

            assert_eq!(err.field, "home", "{home}");
        }
    }

    #[test]
    fn rejects_system_homes() {
        for home in ["/etc/a", "/", "/srv", "/tmp/a", "/var/tmp/a"] {
            let json = serde_json::json!({ "name": "a", "home": home });

            assert!(check_record(json.as_object().unwrap()).is_err(), "{home}");
        }
    }

    #[test]
    fn names_the_field_of_a_type_error() {
        let err = check_record(&record(r#"{"name":"a","listen":[{"port":70000}]}"#)).unwrap_err();

        assert_eq!(err.field, "listen[0].port");
    }

    #[test]
    fn rejects_metrics_on_a_listen_port() {
        let err = check_record(&record(
            r#"{"name":"a","listen":[{"port":80}],"metrics":{"port":80}}"#,
        ))
        .unwrap_err();

        assert_eq!(err.field, "metrics.port");
    }

    #[test]
    fn fleet_rejects_shared_port_on_one_host() {
        let a = check_record(&record(r#"{"name":"a","listen":[{"port":8080}]}"#)).unwrap();
        let b = check_record(&record(r#"{"name":"b","metrics":{"port":8080}}"#)).unwrap();

        let (i, err) = check_fleet(&[&a, &b]).unwrap_err();

        assert_eq!((i, err.field.as_str()), (1, "metrics.port"));
    }

    #[test]
    fn fleet_allows_same_port_on_other_hosts() {
        let a = check_record(&record(
            r#"{"name":"a","host":"h1","listen":[{"port":80}]}"#,
        ))
        .unwrap();
        let b = check_record(&record(
            r#"{"name":"b","host":"h2","listen":[{"port":80}]}"#,
        ))
        .unwrap();

        assert!(check_fleet(&[&a, &b]).is_ok());
    }

    #[test]
    fn fleet_rejects_nested_homes() {
        let a = check_record(&record(r#"{"name":"a"}"#)).unwrap();
        let b = check_record(&record(r#"{"name":"b","home":"/home/a/b"}"#)).unwrap();

        assert!(check_fleet(&[&a, &b]).is_err());
    }
}
