//! The hardening: from one app spec to the text of its `.service` (and,
//! for the strict profile, `.socket`), fitted to the app's runtime and
//! profile, with notes on what the unit cannot promise.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rip_core::{AppSpec, Profile, Runtime};
use serde::Serialize;

use crate::escape::{self, Unrepresentable};
use crate::unit::UnitFile;

/// A remark for the JSON output: something the unit cannot enforce, or
/// that the operator should know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// Machine-readable code, e.g. `UNIT_LIMIT_UNENFORCED`.
    pub code: &'static str,
    /// What and why, for people.
    pub message: String,
}

impl Note {
    /// A note with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// How the unit fits a runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeFit {
    /// `MemoryDenyWriteExecute=yes` (only for runtimes without a JIT).
    pub memory_deny_write_execute: bool,
    /// `SystemCallFilter=` lines, in order.
    pub syscall_filter: Vec<String>,
    /// `RestrictAddressFamilies=`.
    pub address_families: Vec<String>,
}

/// Runtimes whose code never needs writable-and-executable memory.
fn wx_clean(runtime: Runtime) -> bool {
    matches!(runtime, Runtime::Go | Runtime::Rust | Runtime::C)
}

/// The runtime fit of `runtime` under `profile`.
///
/// Every runtime gets `@system-service` minus `@privileged` (an
/// unprivileged service has no use for it; denied calls fail with EPERM
/// instead of killing the process). `@resources` is also denied except for
/// the JVM (it raises RLIMIT_NOFILE at start) and unknown runtimes.
pub fn runtime_fit(runtime: Runtime, profile: Profile) -> RuntimeFit {
    let deny = match runtime {
        Runtime::Jvm | Runtime::Other => "~@privileged",
        _ => "~@privileged @resources",
    };
    let mut families = vec!["AF_UNIX".to_owned()];
    if profile == Profile::Default {
        families.push("AF_INET".to_owned());
        families.push("AF_INET6".to_owned());
    }
    if runtime == Runtime::Other {
        families.push("AF_NETLINK".to_owned());
    }
    RuntimeFit {
        memory_deny_write_execute: wx_clean(runtime),
        syscall_filter: vec!["@system-service".to_owned(), deny.to_owned()],
        address_families: families,
    }
}

/// A summary of the decisions, for the JSON output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decisions {
    /// `ExecStart=` as argv.
    pub exec_start: Vec<String>,
    /// Capabilities kept (bounding = ambient).
    pub capabilities: Vec<String>,
    /// `PrivateUsers=yes`.
    pub private_users: bool,
    /// `PrivateNetwork=yes`.
    pub private_network: bool,
    /// `ProtectHome=` value.
    pub protect_home: String,
    /// Writable bind mounts (`BindPaths=`).
    pub bind_paths: Vec<String>,
    /// Read-only bind mounts (`BindReadOnlyPaths=`).
    pub bind_read_only_paths: Vec<String>,
    /// `ReadWritePaths=`.
    pub read_write_paths: Vec<String>,
    /// `IPAddressAllow=` after `IPAddressDeny=any` (empty: nothing allowed).
    pub ip_address_allow: Vec<String>,
    /// `ListenStream=` of the socket unit (strict profile).
    pub listen_streams: Vec<String>,
    /// `UMask=`.
    pub umask: String,
    /// The runtime fit.
    #[serde(flatten)]
    pub fit: RuntimeFit,
    /// Credentials (`LoadCredential=` ids).
    pub credentials: Vec<String>,
    /// `EnvironmentFile=` paths.
    pub environment_files: Vec<String>,
    /// Resource directives set.
    pub limits: Vec<String>,
}

/// What the target system can enforce, gathered once per run.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// Available cgroup controllers, if known.
    pub controllers: Option<crate::host::Controllers>,
    /// PID 1's hard RLIMIT_NOFILE, if known.
    pub nofile_hard: Option<u64>,
}

/// The generated files of one app.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The `.service` file.
    pub service: UnitFile,
    /// The `.socket` file (strict profile).
    pub socket: Option<UnitFile>,
    /// Summary of what was decided.
    pub decisions: Decisions,
    /// Remarks for the operator.
    pub notes: Vec<Note>,
}

/// Which field of the spec a value came from, for error messages.
#[derive(Debug)]
pub struct FieldError {
    /// Dotted field path.
    pub field: String,
    /// The problem.
    pub message: String,
}

fn field_err(field: impl Into<String>) -> impl FnOnce(Unrepresentable) -> FieldError {
    let field = field.into();
    move |e| FieldError {
        field,
        message: e.to_string(),
    }
}

/// Prefixes hidden by `ProtectHome=`.
const HOME_PREFIXES: &[&str] = &["/home", "/root", "/run/user"];

fn under_home(p: &Path) -> bool {
    HOME_PREFIXES.iter().any(|h| p.starts_with(h))
}

fn inside_any(p: &Path, set: &[PathBuf]) -> bool {
    set.iter().any(|w| p.starts_with(w))
}

/// Absolute paths an argv word or environment value names: the whole word,
/// or what follows `=` in `--flag=/path`.
fn named_path(word: &str) -> Option<PathBuf> {
    let candidate = if word.starts_with('/') {
        word
    } else {
        word.split_once('=').map(|(_, v)| v)?
    };
    let ok = candidate.starts_with('/')
        && candidate.len() > 1
        && !candidate.ends_with('/')
        && candidate
            .split('/')
            .skip(1)
            .all(|c| !c.is_empty() && c != "." && c != "..");
    ok.then(|| PathBuf::from(candidate))
}

/// A relative argv word naming a file that exists under the working
/// directory (the seed's `-agekey age.key`): that file, else `None`.
/// TODO(#5): a relative path that does not exist yet when the unit is
/// written is not bound into the tmpfs home.
fn relative_file(word: &str, workdir: &Path, fs: &dyn Exists) -> Option<PathBuf> {
    let plain = !word.is_empty()
        && !word.starts_with(['/', '-'])
        && !word.contains('=')
        && !word.ends_with('/')
        && word
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    let p = workdir.join(word);
    (plain && fs.exists(&p)).then_some(p)
}

fn is_loopback(addr: &str) -> bool {
    addr.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// Whether anything outside the machine must reach the app's own sockets.
fn serves_remote_clients(spec: &AppSpec) -> bool {
    spec.listen
        .iter()
        .any(|l| !l.addr.as_deref().is_some_and(is_loopback))
        || spec
            .metrics
            .as_ref()
            .and_then(|m| m.addr.as_deref())
            .is_some_and(|a| !is_loopback(a))
}

fn listen_stream(addr: Option<&str>, port: u16) -> String {
    match addr.map(|a| a.parse::<IpAddr>()) {
        Some(Ok(IpAddr::V6(a))) => format!("[{a}]:{port}"),
        Some(Ok(IpAddr::V4(a))) => format!("{a}:{port}"),
        _ => port.to_string(),
    }
}

/// Existence of a path under the root, as the unit will need it.
pub trait Exists {
    /// Whether `path` (a target-system path) exists.
    fn exists(&self, path: &Path) -> bool;
}

impl Exists for rip_core::Root {
    fn exists(&self, path: &Path) -> bool {
        self.join(path).symlink_metadata().is_ok()
    }
}

/// Build the unit(s) of `spec`.
pub fn generate(
    spec: &AppSpec,
    facts: &HostFacts,
    fs: &dyn Exists,
) -> Result<Generated, FieldError> {
    let mut notes = Vec::new();
    let strict = spec.profile == Profile::Strict;
    let name = &spec.name;
    if strict && spec.outbound_https {
        return Err(FieldError {
            field: "profile".into(),
            message: "the strict profile gives the app no network of its own \
                      (PrivateNetwork=yes), so it cannot reach S3; use the default \
                      profile for apps with outbound_https"
                .into(),
        });
    }
    let fit = runtime_fit(spec.runtime, spec.profile);
    // See: CASES UNIT-09. PrivateTmp= gives the app its own /tmp and
    // /var/tmp, so a path there that something else shares never meets.
    let words = spec
        .exec
        .iter()
        .enumerate()
        .map(|(i, w)| (format!("exec[{i}]"), w));
    let envs = spec.env.iter().map(|(k, v)| (format!("env.{k}"), v));
    for (field, word) in words.chain(envs) {
        if let Some(p) = named_path(word) {
            if p.starts_with("/tmp") || p.starts_with("/var/tmp") {
                return Err(FieldError {
                    field,
                    message: format!(
                        "{p:?} is under /tmp or /var/tmp, which the unit makes private \
                         (PrivateTmp=yes): nothing outside the service would see it \
                         (UNIT_SHARED_TMP_PATH); use a path in the app's data dir"
                    ),
                });
            }
        }
    }

    // See: red-team finding "writable binary". Defence in depth (rip-core
    // validates the same): no writable path may be or contain the home,
    // bin/ or the executable, or the app could rewrite the code it runs and
    // the read-only bind of its binary would be dropped.
    let exec0 = PathBuf::from(&spec.exec[0]);
    let mut candidates: Vec<(String, &str, PathBuf)> =
        vec![("exec[0]".to_owned(), "the data dir", spec.data_dir())];
    for (i, p) in spec.rw_paths.iter().enumerate() {
        candidates.push((format!("rw_paths[{i}]"), "rw_paths entry", p.clone()));
    }
    if let Some(b) = &spec.backup_dir {
        candidates.push(("backups.dir".to_owned(), "backups dir", b.clone()));
    }
    let protected = [
        (spec.home.clone(), "the app's home"),
        (spec.bin_dir(), "the app's bin/ directory"),
        (exec0.clone(), "the app's executable (exec[0])"),
    ];
    for (field, what, p) in candidates {
        if let Some((q, qwhat)) = protected.iter().find(|(q, _)| q.starts_with(&p)) {
            return Err(FieldError {
                field,
                message: format!(
                    "{what} {p:?} would be writable by the app and covers {qwhat} {q:?}: \
                     the app could rewrite the code it runs; writable paths must lie \
                     beside bin/, inside the home (like {:?})",
                    spec.data_dir()
                ),
            });
        }
    }

    // Writable paths: the data dir, the backups dir, rw_paths; drop those
    // inside another.
    let mut writable: Vec<PathBuf> = spec.writable_paths();
    if let Some(b) = &spec.backup_dir {
        writable.push(b.clone());
    }
    writable.sort();
    writable.dedup();
    let all = writable.clone();
    writable.retain(|p| !all.iter().any(|o| o != p && p.starts_with(o)));

    // Read-only paths the app names: its binary (required), then every
    // absolute path in its argv and environment inside its own home.
    let mut read_only: Vec<(PathBuf, bool)> = Vec::new();
    if !inside_any(&exec0, &writable) {
        read_only.push((exec0.clone(), true));
    }
    let mentioned = spec.exec[1..]
        .iter()
        .map(String::as_str)
        .chain(spec.env.values().map(String::as_str));
    for word in mentioned {
        let Some(p) = named_path(word).or_else(|| relative_file(word, &spec.workdir, fs)) else {
            continue;
        };
        if !under_home(&p) || inside_any(&p, &writable) {
            continue;
        }
        if !spec.in_home(&p) {
            notes.push(Note::new(
                "UNIT_FOREIGN_HOME_PATH",
                format!(
                    "{p:?} is named in exec or env but lies outside the app's home under \
                     {}; ProtectHome=tmpfs hides it from the app",
                    HOME_PREFIXES.join(", ")
                ),
            ));
            continue;
        }
        read_only.push((p, false));
    }
    let workdir = spec.workdir.clone();
    let needs_tmpfs = under_home(&workdir)
        || under_home(&exec0)
        || writable.iter().any(|p| under_home(p))
        || read_only.iter().any(|(p, _)| under_home(p));
    read_only.retain(|(p, _)| under_home(p));
    read_only.sort();
    read_only.dedup_by(|a, b| a.0 == b.0);
    let ro_all: Vec<PathBuf> = read_only.iter().map(|(p, _)| p.clone()).collect();
    read_only.retain(|(p, _)| !ro_all.iter().any(|o| o != p && p.starts_with(o)));
    if needs_tmpfs && under_home(&workdir) {
        let covered = inside_any(&workdir, &writable)
            || read_only.iter().any(|(p, _)| workdir.starts_with(p))
            || writable.iter().any(|p| p.starts_with(&workdir))
            || read_only.iter().any(|(p, _)| p.starts_with(&workdir));
        if !covered {
            read_only.push((workdir.clone(), true));
        }
    }

    let mut bind_paths = Vec::new();
    let mut read_write_paths = Vec::new();
    let guaranteed: Vec<PathBuf> = std::iter::once(spec.data_dir())
        .chain(spec.backup_dir.clone())
        .collect();
    for p in &writable {
        let optional = !guaranteed.contains(p) && !fs.exists(p);
        if optional {
            notes.push(Note::new(
                "UNIT_RWP_OPTIONAL",
                format!(
                    "writable path {p:?} does not exist yet; it is listed with '-' so the \
                     unit still starts, and becomes writable once created and the \
                     service restarted"
                ),
            ));
        }
        let entry = (p.display().to_string(), optional);
        if needs_tmpfs && under_home(p) {
            bind_paths.push(entry);
        } else {
            read_write_paths.push(entry);
        }
    }

    let privileged_port = !strict && spec.binds_privileged_port();
    let caps: Vec<String> = if privileged_port {
        vec!["CAP_NET_BIND_SERVICE".to_owned()]
    } else {
        Vec::new()
    };
    let private_users = !privileged_port;
    let ip_allow: Vec<String> = if strict {
        Vec::new()
    } else if spec.outbound_https || serves_remote_clients(spec) {
        vec!["any".to_owned()]
    } else {
        vec!["localhost".to_owned()]
    };
    if !strict && ip_allow == ["any"] {
        let (why, rule) = if spec.outbound_https {
            (
                "the app needs outbound HTTPS (outbound_https)",
                format!("'meta skuid {} ct state new tcp dport != 443 drop' (plus the DNS your resolver needs)", spec.user),
            )
        } else {
            (
                "the app serves clients beyond localhost, and IPAddressAllow= filters both directions",
                format!("'meta skuid {} ct state new drop' (replies to clients still flow)", spec.user),
            )
        };
        notes.push(Note::new(
            "UNIT_IP_ALLOW_ANY",
            format!(
                "IPAddressAllow=any because {why}: the app may also open connections to any \
                 address, port and protocol. systemd 252 cannot filter by port: \
                 SocketBindAllow=/SocketBindDeny= only restrict bind() and are no-ops on \
                 Debian 12's build (no BPF framework), so rip-unit does not emit them. \
                 Restrict egress in the host firewall, e.g. an nftables output rule {rule}, \
                 or use the strict profile when the app needs no outbound connections"
            ),
        ));
    }
    let umask = if spec.backups_enabled() {
        "0027"
    } else {
        "0077"
    };
    if !fit.memory_deny_write_execute {
        notes.push(Note::new(
            "UNIT_MDWE_OFF",
            format!(
                "MemoryDenyWriteExecute= is off: runtime {:?} may JIT or unpack code at \
                 run time and would abort under it",
                runtime_name(spec.runtime)
            ),
        ));
    }

    // The unit text.
    let version = env!("CARGO_PKG_VERSION");
    let mut u = UnitFile::new(vec![
        format!(
            "Generated by rip-unit {version} from the app spec of {name}; rewritten on every run."
        ),
        format!("Local changes belong in drop-ins: /etc/systemd/system/{name}.service.d/*.conf"),
    ]);
    u.section("Unit");
    u.set(
        "Description",
        escape::raw_value(spec.description.trim_matches([' ', '\t']))
            .map_err(field_err("description"))?,
    );
    if strict {
        u.set("Requires", format!("{name}.socket"));
        u.set("After", format!("{name}.socket"));
    } else if spec.outbound_https {
        u.set("Wants", "network-online.target");
        u.set("After", "network-online.target");
    } else {
        u.set("After", "network.target");
    }

    u.section("Service");
    u.set("Type", "exec");
    u.set("User", &spec.user);
    u.set("Group", &spec.group);
    u.set(
        "WorkingDirectory",
        escape::raw_value(&workdir.display().to_string()).map_err(field_err("workdir"))?,
    );
    for (i, a) in spec.exec.iter().enumerate() {
        escape::exec_word(a).map_err(field_err(format!("exec[{i}]")))?;
    }
    u.set(
        "ExecStart",
        escape::exec_line(&spec.exec).map_err(field_err("exec[0]"))?,
    );
    for (k, v) in &spec.env {
        u.set(
            "Environment",
            escape::env_assignment(k, v).map_err(field_err(format!("env.{k}")))?,
        );
    }
    let mut environment_files = Vec::new();
    for (i, f) in spec.env_files.iter().enumerate() {
        let s = f.display().to_string();
        u.set(
            "EnvironmentFile",
            escape::glob_path(&s).map_err(field_err(format!("env_files[{i}]")))?,
        );
        environment_files.push(s);
    }
    let mut credentials = Vec::new();
    for (i, s) in spec.secrets.iter().enumerate() {
        let path = escape::raw_value(&s.path).map_err(field_err(format!("secrets[{i}].path")))?;
        u.set("LoadCredential", format!("{}:{path}", s.name));
        credentials.push(s.name.clone());
    }

    u.comment("Identity and privileges");
    u.set("NoNewPrivileges", "yes");
    if privileged_port {
        u.comment("Only to bind a port below 1024; ambient is a subset of bounding.");
    }
    u.set("CapabilityBoundingSet", caps.join(" "));
    u.set("AmbientCapabilities", caps.join(" "));
    if private_users {
        u.set("PrivateUsers", "yes");
    } else {
        u.comment(
            "PrivateUsers= is off: a capability in a user namespace cannot bind the host's ports.",
        );
    }

    u.comment("File system: read-only everywhere, homes replaced by an empty tmpfs,");
    u.comment("the app's own paths bound back in.");
    u.set("ProtectSystem", "strict");
    u.set("ProtectHome", if needs_tmpfs { "tmpfs" } else { "yes" });
    for (p, optional) in &bind_paths {
        let v = escape::list_path(if *optional { "-" } else { "" }, p)
            .map_err(field_err("rw_paths"))?;
        u.set("BindPaths", v);
    }
    for (p, required) in &read_only {
        let v = escape::list_path(if *required { "" } else { "-" }, &p.display().to_string())
            .map_err(field_err("exec"))?;
        u.set("BindReadOnlyPaths", v);
    }
    for (p, optional) in &read_write_paths {
        let v = escape::list_path(if *optional { "-" } else { "" }, p)
            .map_err(field_err("rw_paths"))?;
        u.set("ReadWritePaths", v);
    }
    u.set("PrivateTmp", "yes");
    u.set("PrivateDevices", "yes");
    u.set("DevicePolicy", "closed");
    u.set("PrivateMounts", "yes");
    u.set("PrivateIPC", "yes");
    u.set("UMask", umask);

    u.comment("Kernel, processes and clock");
    for k in [
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
    ] {
        u.set(k, "yes");
    }
    u.set("ProtectProc", "invisible");
    u.set("ProcSubset", "pid");
    u.set("KeyringMode", "private");
    u.set("RemoveIPC", "yes");
    u.set("RestrictNamespaces", "yes");
    u.set("RestrictRealtime", "yes");
    u.set("RestrictSUIDSGID", "yes");
    u.set("LockPersonality", "yes");

    u.comment(format!("Fitted to runtime {}", runtime_name(spec.runtime)));
    if fit.memory_deny_write_execute {
        u.set("MemoryDenyWriteExecute", "yes");
    }
    u.set("SystemCallArchitectures", "native");
    for f in &fit.syscall_filter {
        u.set("SystemCallFilter", f);
    }
    u.set("SystemCallErrorNumber", "EPERM");
    u.set("RestrictAddressFamilies", fit.address_families.join(" "));

    u.comment("Network");
    if strict {
        u.comment(format!(
            "Sockets come from {name}.socket; the app has no network of its own."
        ));
        u.set("PrivateNetwork", "yes");
    }
    u.set("IPAddressDeny", "any");
    if !ip_allow.is_empty() {
        u.set("IPAddressAllow", ip_allow.join(" "));
    }

    let limits = limit_lines(spec, facts, &mut notes);
    if !limits.is_empty() {
        u.comment("Resources");
        for (k, v) in &limits {
            u.set(k, v.as_str());
        }
    }

    u.comment("Lifecycle");
    u.set("Restart", "on-failure");
    u.set("RestartSec", "5s");
    u.set("StandardOutput", "journal");
    u.set("StandardError", "journal");

    u.section("Install");
    u.set("WantedBy", "multi-user.target");

    // The socket unit of the strict profile.
    let mut listen_streams = Vec::new();
    let socket = if strict {
        for l in &spec.listen {
            listen_streams.push(listen_stream(l.addr.as_deref(), l.port));
        }
        if let Some(m) = &spec.metrics {
            listen_streams.push(listen_stream(
                Some(m.addr.as_deref().unwrap_or("127.0.0.1")),
                m.port,
            ));
        }
        if listen_streams.is_empty() {
            return Err(FieldError {
                field: "listen".into(),
                message: "the strict profile binds the app's ports through a socket unit, \
                          but the spec lists no listen or metrics port"
                    .into(),
            });
        }
        let mut s = UnitFile::new(vec![
            format!("Generated by rip-unit {version} from the app spec of {name}; rewritten on every run."),
            format!("systemd binds these ports and passes them to {name}.service (sd_listen_fds)."),
        ]);
        s.section("Unit");
        s.set(
            "Description",
            escape::raw_value(&format!(
                "Sockets of {}",
                spec.description.trim_matches([' ', '\t'])
            ))
            .map_err(field_err("description"))?,
        );
        s.section("Socket");
        for ls in &listen_streams {
            s.set("ListenStream", ls.as_str());
        }
        if spec.listen.iter().any(|l| l.addr.is_none()) {
            s.set("BindIPv6Only", "both");
        }
        s.section("Install");
        s.set("WantedBy", "sockets.target");
        Some(s)
    } else {
        None
    };

    check_lengths(spec, &u)?;
    if let Some(s) = &socket {
        check_lengths(spec, s)?;
    }

    Ok(Generated {
        service: u,
        socket,
        decisions: Decisions {
            exec_start: spec.exec.clone(),
            capabilities: caps,
            private_users,
            private_network: strict,
            protect_home: if needs_tmpfs { "tmpfs" } else { "yes" }.to_owned(),
            bind_paths: bind_paths.iter().map(|(p, _)| p.clone()).collect(),
            bind_read_only_paths: read_only
                .iter()
                .map(|(p, _)| p.display().to_string())
                .collect(),
            read_write_paths: read_write_paths.iter().map(|(p, _)| p.clone()).collect(),
            ip_address_allow: ip_allow,
            listen_streams,
            umask: umask.to_owned(),
            fit,
            credentials,
            environment_files,
            limits: limits.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        },
        notes,
    })
}

/// The longest line rip-unit writes. systemd refuses a unit with a line
/// over LONG_LINE_MAX (1 MiB: "No buffer space available"); nothing sane
/// comes near 64 KiB, so longer lines are refused well before that.
pub const MAX_LINE: usize = 64 * 1024;

/// The most argv and environment bytes rip-unit lets a unit hand to
/// execve(): Linux refuses more than ARG_MAX (2 MiB with the default 8 MiB
/// stack) with E2BIG, and EnvironmentFile= and systemd add their own.
pub const MAX_EXEC_BYTES: usize = 1024 * 1024;

/// The spec field a directive's value comes from, for error messages.
fn field_of(key: &str, value: &str) -> String {
    match key {
        "Description" => "description".to_owned(),
        "ExecStart" | "BindReadOnlyPaths" => "exec".to_owned(),
        "WorkingDirectory" => "workdir".to_owned(),
        "Environment" => {
            let var = value
                .trim_start_matches('"')
                .split('=')
                .next()
                .unwrap_or("");
            format!("env.{var}")
        }
        "EnvironmentFile" => "env_files".to_owned(),
        "LoadCredential" => "secrets".to_owned(),
        "BindPaths" | "ReadWritePaths" => "rw_paths".to_owned(),
        "User" => "user".to_owned(),
        "Group" => "group".to_owned(),
        "MemoryMax" | "CPUQuota" | "TasksMax" | "LimitNOFILE" => "limits".to_owned(),
        _ => "name".to_owned(),
    }
}

/// Refuse a unit with a line longer than [`MAX_LINE`], naming the field it
/// comes from, and argv plus environment beyond [`MAX_EXEC_BYTES`].
fn check_lengths(spec: &AppSpec, unit: &UnitFile) -> Result<(), FieldError> {
    for line in unit.render().lines() {
        if line.len() + 1 > MAX_LINE {
            let (key, value) = line.split_once('=').unwrap_or(("comment", ""));
            return Err(FieldError {
                field: field_of(key, value),
                message: format!(
                    "the {key}= line of the unit would be {} bytes; rip-unit writes no line \
                     over {MAX_LINE} bytes (systemd refuses to load a unit with a line over \
                     1 MiB: \"No buffer space available\")",
                    line.len() + 1
                ),
            });
        }
    }
    let argv: usize = spec.exec.iter().map(|a| a.len() + 1).sum();
    let env: usize = spec.env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    if argv + env > MAX_EXEC_BYTES {
        return Err(FieldError {
            field: if argv > MAX_EXEC_BYTES { "exec" } else { "env" }.to_owned(),
            message: format!(
                "argv ({argv} bytes) and environment ({env} bytes) together exceed \
                 {MAX_EXEC_BYTES} bytes; execve() would fail with E2BIG (Linux ARG_MAX)"
            ),
        });
    }
    Ok(())
}

/// The runtime's name as the spec spells it.
pub fn runtime_name(r: Runtime) -> &'static str {
    match r {
        Runtime::Go => "go",
        Runtime::Rust => "rust",
        Runtime::C => "c",
        Runtime::Node => "node",
        Runtime::Jvm => "jvm",
        Runtime::Python => "python",
        Runtime::Other => "other",
    }
}

/// Resource directives, with a note for each the host cannot enforce.
fn limit_lines(spec: &AppSpec, facts: &HostFacts, notes: &mut Vec<Note>) -> Vec<(String, String)> {
    let l = &spec.limits;
    let mut out = Vec::new();
    let cgroup = [
        ("MemoryMax", l.memory_max.clone(), "memory"),
        ("TasksMax", l.tasks_max.map(|t| t.to_string()), "pids"),
        ("CPUQuota", l.cpu_quota.clone(), "cpu"),
    ];
    for (key, value, controller) in cgroup {
        let Some(v) = value else { continue };
        match &facts.controllers {
            Some(c) if !c.available.iter().any(|a| a == controller) => notes.push(Note::new(
                "UNIT_LIMIT_UNENFORCED",
                format!(
                    "{key}={v} is set but the '{controller}' cgroup controller is not \
                     available ({} lists: {}); systemd will start the unit and ignore the \
                     limit",
                    c.source,
                    if c.available.is_empty() {
                        "nothing".to_owned()
                    } else {
                        c.available.join(" ")
                    }
                ),
            )),
            None => notes.push(Note::new(
                "UNIT_LIMIT_UNKNOWN",
                format!(
                    "{key}={v} is set but whether the '{controller}' controller is \
                     available could not be determined"
                ),
            )),
            Some(_) => {}
        }
        out.push((key.to_owned(), v));
    }
    if let Some(n) = l.nofile {
        if let Some(hard) = facts.nofile_hard.filter(|h| n > *h) {
            notes.push(Note::new(
                "UNIT_LIMIT_UNENFORCED",
                format!(
                    "LimitNOFILE={n} exceeds the service manager's hard limit {hard}; \
                     the service gets at most {hard}"
                ),
            ));
        }
        out.push(("LimitNOFILE".to_owned(), n.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rip_core::io::parse_records;

    struct NoFs;
    impl Exists for NoFs {
        fn exists(&self, _: &Path) -> bool {
            false
        }
    }

    fn spec(json: &str) -> AppSpec {
        parse_records(json.as_bytes()).unwrap().remove(0).spec
    }

    fn gen(json: &str) -> Generated {
        generate(&spec(json), &HostFacts::default(), &NoFs).unwrap()
    }

    fn values(g: &Generated, key: &str) -> Vec<String> {
        g.service
            .values("Service")
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.to_owned())
            .collect()
    }

    #[test]
    fn privileged_port_gets_only_net_bind_service() {
        let g = gen(r#"{"name":"app1","runtime":"go","listen":[{"port":80}]}"#);

        assert_eq!(
            values(&g, "CapabilityBoundingSet"),
            ["CAP_NET_BIND_SERVICE"]
        );
        assert_eq!(values(&g, "AmbientCapabilities"), ["CAP_NET_BIND_SERVICE"]);
        assert!(values(&g, "PrivateUsers").is_empty());
    }

    #[test]
    fn high_port_gets_no_capability_and_private_users() {
        let g =
            gen(r#"{"name":"app1","runtime":"go","listen":[{"addr":"127.0.0.1","port":8080}]}"#);

        assert_eq!(values(&g, "CapabilityBoundingSet"), [""]);
        assert_eq!(values(&g, "AmbientCapabilities"), [""]);
        assert_eq!(values(&g, "PrivateUsers"), ["yes"]);
        assert_eq!(values(&g, "IPAddressAllow"), ["localhost"]);
    }

    #[test]
    fn public_listener_must_accept_any_address() {
        let g = gen(r#"{"name":"app1","runtime":"go","listen":[{"port":80}]}"#);

        assert_eq!(values(&g, "IPAddressDeny"), ["any"]);
        assert_eq!(values(&g, "IPAddressAllow"), ["any"]);
        assert!(g.notes.iter().any(|n| n.code == "UNIT_IP_ALLOW_ANY"));
    }

    #[test]
    fn jit_runtimes_get_no_mdwe_and_unknown_gets_netlink() {
        for (rt, mdwe) in [
            ("go", true),
            ("rust", true),
            ("c", true),
            ("node", false),
            ("jvm", false),
            ("other", false),
        ] {
            let g = gen(&format!(r#"{{"name":"a","runtime":"{rt}"}}"#));

            assert_eq!(
                !values(&g, "MemoryDenyWriteExecute").is_empty(),
                mdwe,
                "{rt}"
            );
            let raf = values(&g, "RestrictAddressFamilies").join(" ");
            assert!(raf.contains("AF_UNIX"), "{rt}");
            assert_eq!(raf.contains("AF_NETLINK"), rt == "other", "{rt}");
        }
    }

    #[test]
    fn home_is_tmpfs_with_own_paths_bound_back() {
        let g = gen(
            r#"{"name":"app1","exec":["/home/app1/bin/app1","-agekey","/home/app1/age.key","-dbpath","/home/app1/data/app.db","-x=/home/app2/secret"]}"#,
        );

        assert_eq!(values(&g, "ProtectHome"), ["tmpfs"]);
        assert_eq!(values(&g, "BindPaths"), [r#""/home/app1/data""#]);
        assert_eq!(
            values(&g, "BindReadOnlyPaths"),
            [r#"-"/home/app1/age.key""#, r#""/home/app1/bin/app1""#]
        );
        assert!(values(&g, "ReadWritePaths").is_empty());
        assert!(g.notes.iter().any(|n| n.code == "UNIT_FOREIGN_HOME_PATH"));
    }

    #[test]
    fn rw_paths_outside_home_use_read_write_paths_optional_when_missing() {
        let g = gen(r#"{"name":"app1","rw_paths":["/srv/app1/uploads"]}"#);

        assert_eq!(values(&g, "ReadWritePaths"), [r#"-"/srv/app1/uploads""#]);
        assert!(g.notes.iter().any(|n| n.code == "UNIT_RWP_OPTIONAL"));
    }

    #[test]
    fn umask_depends_on_backups() {
        assert_eq!(
            values(&gen(r#"{"name":"a","backups":{}}"#), "UMask"),
            ["0027"]
        );
        assert_eq!(values(&gen(r#"{"name":"a"}"#), "UMask"), ["0077"]);
    }

    #[test]
    fn strict_profile_has_a_socket_and_no_network() {
        let g = gen(
            r#"{"name":"a","runtime":"go","profile":"strict","listen":[{"port":80},{"addr":"::1","port":81}],"metrics":{"port":9101}}"#,
        );

        let s = g.socket.as_ref().unwrap();
        let ls: Vec<_> = s
            .values("Socket")
            .filter(|(k, _)| *k == "ListenStream")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(ls, ["80", "[::1]:81", "127.0.0.1:9101"]);
        assert_eq!(values(&g, "PrivateNetwork"), ["yes"]);
        assert_eq!(values(&g, "CapabilityBoundingSet"), [""]);
        assert_eq!(values(&g, "RestrictAddressFamilies"), ["AF_UNIX"]);
        assert!(values(&g, "IPAddressAllow").is_empty());
    }

    #[test]
    fn strict_with_outbound_https_is_refused() {
        let err = generate(
            &spec(
                r#"{"name":"a","profile":"strict","outbound_https":true,"listen":[{"port":80}]}"#,
            ),
            &HostFacts::default(),
            &NoFs,
        )
        .unwrap_err();

        assert_eq!(err.field, "profile");
    }

    #[test]
    fn unenforceable_limits_are_noted() {
        let facts = HostFacts {
            controllers: Some(crate::host::Controllers {
                source: "x".into(),
                available: vec!["cpu".into()],
            }),
            nofile_hard: Some(1024),
        };
        let s =
            spec(r#"{"name":"a","limits":{"memory_max":"512M","cpu_quota":"50%","nofile":4096}}"#);

        let g = generate(&s, &facts, &NoFs).unwrap();

        let unenforced: Vec<_> = g
            .notes
            .iter()
            .filter(|n| n.code == "UNIT_LIMIT_UNENFORCED")
            .collect();
        assert_eq!(unenforced.len(), 2, "{unenforced:?}");
        assert_eq!(values(&g, "MemoryMax"), ["512M"]);
        assert_eq!(values(&g, "LimitNOFILE"), ["4096"]);
    }

    #[test]
    fn secrets_become_credentials_never_values() {
        let g = gen(
            r#"{"name":"a","secrets":[{"name":"db.pass","path":"/etc/rip/a/db%pass"}],"env_files":["/etc/rip/a.env"]}"#,
        );

        assert_eq!(
            values(&g, "LoadCredential"),
            ["db.pass:/etc/rip/a/db%%pass"]
        );
        assert_eq!(values(&g, "EnvironmentFile"), ["/etc/rip/a.env"]);
    }

    #[test]
    fn relative_files_that_exist_are_bound_read_only() {
        struct Key;
        impl Exists for Key {
            fn exists(&self, p: &Path) -> bool {
                p == Path::new("/home/a/age.key")
            }
        }
        let s = spec(r#"{"name":"a","exec":["/home/a/bin/a","-agekey","age.key","-x","prod"]}"#);

        let g = generate(&s, &HostFacts::default(), &Key).unwrap();

        assert_eq!(
            values(&g, "BindReadOnlyPaths"),
            [r#"-"/home/a/age.key""#, r#""/home/a/bin/a""#]
        );
    }

    #[test]
    fn shared_tmp_paths_are_refused() {
        for json in [
            r#"{"name":"a","exec":["/home/a/bin/a","--socket","/tmp/a.sock"]}"#,
            r#"{"name":"a","exec":["/home/a/bin/a","--dir=/var/tmp/a"]}"#,
            r#"{"name":"a","env":{"SOCK":"/tmp/a.sock"}}"#,
        ] {
            let err = generate(&spec(json), &HostFacts::default(), &NoFs).unwrap_err();

            assert!(err.message.contains("UNIT_SHARED_TMP_PATH"), "{json}");
        }
    }

    /// A spec that passed rip-core's validation, then changed behind its
    /// back: rip-unit's own checks must hold even when rip-core's do not.
    fn unchecked(json: &str, change: impl FnOnce(&mut AppSpec)) -> Result<Generated, FieldError> {
        let mut s = spec(json);
        change(&mut s);
        generate(&s, &HostFacts::default(), &NoFs)
    }

    #[test]
    fn writable_paths_covering_the_binary_bin_or_home_are_refused() {
        type Change = fn(&mut AppSpec);
        let cases: [(&str, Change, &str); 6] = [
            (
                r#"{"name":"app1"}"#,
                |s| s.backup_dir = Some("/home/app1/bin".into()),
                "backups.dir",
            ),
            (
                r#"{"name":"app1"}"#,
                |s| s.rw_paths = vec!["/home/app1".into()],
                "rw_paths[0]",
            ),
            (
                r#"{"name":"app1"}"#,
                |s| s.rw_paths = vec!["/srv/x".into(), "/home/app1/bin/app1".into()],
                "rw_paths[1]",
            ),
            (
                r#"{"name":"app1"}"#,
                |s| s.rw_paths = vec!["/home".into()],
                "rw_paths[0]",
            ),
            (
                r#"{"name":"app1","exec":["/opt/app1/bin/app1"]}"#,
                |s| s.rw_paths = vec!["/opt/app1".into()],
                "rw_paths[0]",
            ),
            (
                r#"{"name":"app1"}"#,
                |s| s.exec = vec!["/home/app1/data/app1".into()],
                "exec[0]",
            ),
        ];
        for (json, change, field) in cases {
            let err = unchecked(json, change).unwrap_err();

            assert_eq!(err.field, field, "{}", err.message);
            assert!(
                err.message.contains("rewrite the code it runs"),
                "{}",
                err.message
            );
        }
        // Beside bin/ stays allowed, also inside it.
        let g = unchecked(r#"{"name":"app1"}"#, |s| {
            s.rw_paths = vec!["/home/app1/cache".into(), "/home/app1/bin/tmp".into()]
        })
        .unwrap();
        assert!(values(&g, "BindReadOnlyPaths").contains(&r#""/home/app1/bin/app1""#.to_owned()));
    }

    #[test]
    fn unbounded_lengths_are_refused() {
        let near = "d".repeat(MAX_LINE - 100);
        assert!(unchecked(r#"{"name":"a"}"#, |s| s.description = near).is_ok());

        let err =
            unchecked(r#"{"name":"a"}"#, |s| s.description = "d".repeat(2 << 20)).unwrap_err();
        assert_eq!(err.field, "description");
        assert!(err.message.contains("No buffer space"), "{}", err.message);

        let err = unchecked(r#"{"name":"a"}"#, |s| {
            s.env.insert("BIG".into(), "v".repeat(MAX_LINE));
        })
        .unwrap_err();
        assert_eq!(err.field, "env.BIG");

        let err = unchecked(r#"{"name":"a"}"#, |s| {
            for i in 0..20 {
                s.env.insert(format!("E{i}"), "v".repeat(60 * 1024));
            }
        })
        .unwrap_err();
        assert_eq!(err.field, "env");
        assert!(err.message.contains("E2BIG"), "{}", err.message);

        let err = unchecked(
            r#"{"name":"a","profile":"strict","listen":[{"port":80}]}"#,
            |s| s.exec.push("x".repeat(MAX_LINE)),
        )
        .unwrap_err();
        assert_eq!(err.field, "exec");
    }

    #[test]
    fn workdir_outside_the_bound_paths_is_bound_read_only() {
        let g = gen(r#"{"name":"a","workdir":"/home/a/www"}"#);

        assert!(values(&g, "BindReadOnlyPaths").contains(&r#""/home/a/www""#.to_owned()));
    }
}
