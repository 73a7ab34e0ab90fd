//! Unit lint: what systemd loads silently but differently from what the
//! author meant (trailing comments, typos, ambient outside bounding, missing
//! paths, ProtectHome hiding the app), what this host cannot enforce, and
//! User= problems. Also explains where the verdict differs from systemd's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rip_core::accounts::Accounts;
use rip_core::{AppSpec, Root, Runtime};
use serde_json::json;

use crate::finding::{Finding, Override, Severity};
use crate::model::{self, words, ProtectHome, Settings};
use crate::unitfile::Assignment;
use crate::AuditedUnit;

/// Directives systemd 252 knows, by section (`data/directives.txt`).
const DIRECTIVES: &str = include_str!("../data/directives.txt");

fn directives() -> &'static BTreeMap<String, BTreeSet<String>> {
    static D: OnceLock<BTreeMap<String, BTreeSet<String>>> = OnceLock::new();
    D.get_or_init(|| {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for l in DIRECTIVES.lines() {
            if let Some((s, k)) = l.split_once(' ') {
                m.entry(s.to_owned()).or_default().insert(k.to_owned());
            }
        }
        m
    })
}

/// What the host can enforce.
#[derive(Debug, Default)]
pub struct HostFeatures {
    /// systemd built with BPF_FRAMEWORK (needed by SocketBind*,
    /// RestrictNetworkInterfaces, RestrictFileSystems), probed on first use.
    bpf: OnceLock<Option<bool>>,
    /// The root whose systemd is probed.
    root: Option<PathBuf>,
    /// cgroup controllers available (unified or v1). None: unknown.
    pub controllers: Option<BTreeSet<String>>,
}

impl HostFeatures {
    /// Whether the root's systemd has its BPF framework (None: unknown).
    /// Read from the feature list compiled into `<root>/usr/bin/systemctl`
    /// (what `systemctl --version` prints), without running it: the root
    /// may be another machine's file system.
    pub fn bpf_framework(&self) -> Option<bool> {
        *self.bpf.get_or_init(|| {
            let root = self.root.as_deref()?;
            let bin = ["usr/bin/systemctl", "bin/systemctl"]
                .iter()
                .find_map(|p| read_binary(&root.join(p)))?;
            let has = |s: &[u8]| memchr::memmem::find(&bin, s).is_some();
            match (has(b"+BPF_FRAMEWORK"), has(b"-BPF_FRAMEWORK")) {
                (true, false) => Some(true),
                (false, true) => Some(false),
                _ => None,
            }
        })
    }

    /// A host with known features (for tests).
    pub fn known(bpf_framework: bool, controllers: &[&str]) -> Self {
        let bpf = OnceLock::new();
        let _ = bpf.set(Some(bpf_framework));
        HostFeatures {
            bpf,
            root: None,
            controllers: Some(controllers.iter().map(|c| (*c).to_owned()).collect()),
        }
    }

    /// Probe the cgroup controllers; the systemd features are probed lazily.
    pub fn probe(root: &Root, cgroup_dir: Option<&Path>) -> Self {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(d) = cgroup_dir {
            candidates.push(d.to_path_buf());
        }
        candidates.push(root.join("/sys/fs/cgroup"));
        candidates.push(PathBuf::from("/sys/fs/cgroup"));
        let mut controllers = None;
        for c in candidates {
            let mut set = BTreeSet::new();
            for f in ["cgroup.controllers", "unified/cgroup.controllers"] {
                if let Ok(t) = std::fs::read_to_string(c.join(f)) {
                    set.extend(t.split_whitespace().map(str::to_owned));
                }
            }
            for v1 in ["memory", "cpu", "pids", "blkio", "cpuset", "io"] {
                if c.join(v1).is_dir() {
                    set.insert(if v1 == "blkio" {
                        "io".into()
                    } else {
                        v1.to_owned()
                    });
                }
            }
            if c.join("cgroup.controllers").exists() || c.join("memory").is_dir() {
                controllers = Some(set);
                break;
            }
        }
        HostFeatures {
            bpf: OnceLock::new(),
            root: Some(root.dir().to_path_buf()),
            controllers,
        }
    }
}

/// A regular file of at most 64 MiB, opened without following a final
/// symlink (`bin/systemctl` under a merged `/usr` is reached through the
/// `usr/bin` spelling).
fn read_binary(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    const MAX: u64 = 64 << 20;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX {
        return None;
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(MAX).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// Everything the lint needs besides the unit.
pub struct Context<'a> {
    /// The root.
    pub root: &'a Root,
    /// `<root>/etc/passwd` and group.
    pub accounts: &'a Accounts,
    /// The app's spec, when auditing records.
    pub spec: Option<&'a AppSpec>,
    /// Resolved user of every other unit: user -> unit names.
    pub users: &'a BTreeMap<String, BTreeSet<String>>,
    /// Host features.
    pub host: &'a HostFeatures,
}

fn at(a: &Assignment, root: &Root) -> serde_json::Value {
    json!({
        "file": root.strip(&a.file).display().to_string(),
        "line": a.line,
        "directive": format!("{}={}", a.key, a.value),
    })
}

/// Whether the value carries a trailing comment (`#`/`;` after whitespace,
/// outside quotes).
pub fn trailing_comment(v: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut prev_ws = false;
    for (i, c) in v.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => {
                if (c == '#' || c == ';') && prev_ws {
                    return Some(i);
                }
                if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
        prev_ws = c.is_whitespace();
    }
    None
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_ascii_lowercase().chars().collect();
    let b: Vec<char> = b.to_ascii_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    candidates
        .filter(|c| c.len().abs_diff(word.len()) <= 2)
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The fix line for an unknown directive, memoised (typos repeat).
fn unknown_directive_fix(
    known: &BTreeMap<String, BTreeSet<String>>,
    section: &str,
    key: &str,
) -> String {
    static MEMO: OnceLock<std::sync::Mutex<BTreeMap<(String, String), String>>> = OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    let k = (section.to_owned(), key.to_owned());
    if let Some(v) = memo.lock().ok().and_then(|m| m.get(&k).cloned()) {
        return v;
    }
    let other = known
        .iter()
        .find(|(sec, keys)| *sec != section && keys.contains(key))
        .map(|(sec, _)| sec.clone());
    let keys = known.get(section);
    let fix = match (&other, keys.and_then(|ks| closest(key, ks.iter()))) {
        (Some(sec), _) => format!("move {key}= to the [{sec}] section"),
        (None, Some(c)) => format!("did you mean {c}=?"),
        (None, None) => format!("remove {key}=, systemd 252 does not know it"),
    };
    if let Ok(mut m) = memo.lock() {
        m.insert(k, fix.clone());
    }
    fix
}

/// Whether systemd 252 applies NoNewPrivileges implicitly
/// (`context_has_no_new_privileges`, for a process without CAP_SYS_ADMIN).
pub fn implied_nnp(s: &Settings) -> bool {
    s.flag("NoNewPrivileges") || s.dynamic_user || uses_seccomp(s)
}

/// Whether any setting systemd implements with a seccomp filter is on.
pub fn uses_seccomp(s: &Settings) -> bool {
    s.syscall_filter.is_some()
        || s.syscall_archs != 0
        || s.af_set.is_some()
        || s.af_allow_list
        || s.restrict_namespaces != u64::MAX
        || [
            "LockPersonality",
            "MemoryDenyWriteExecute",
            "PrivateDevices",
            "ProtectClock",
            "ProtectHostname",
            "ProtectKernelTunables",
            "ProtectKernelModules",
            "ProtectKernelLogs",
            "RestrictRealtime",
            "RestrictSUIDSGID",
        ]
        .iter()
        .any(|f| s.flag(f))
}

fn root_user(s: &Settings) -> bool {
    matches!(s.user.as_deref(), None | Some("root") | Some("0"))
}

fn under(path: &str, dir: &str) -> bool {
    Path::new(path).starts_with(dir)
}

/// Every word of every `key=` line of `[Service]`, with its line, its
/// specifiers resolved as the system manager would (`%S/x` is
/// `/var/lib/x`); a word with a specifier that depends on the machine
/// stays as written.
pub fn path_words(s: &Settings, key: &str) -> Vec<(Assignment, String)> {
    let mut out = Vec::new();
    for a in s.list("Service", key) {
        for w in words(&a.value, true).unwrap_or_default() {
            let w = crate::specifier::resolve(&w, &s.name, None).unwrap_or_else(|| w.into_owned());
            out.push((a.clone(), w));
        }
    }
    out
}

/// Lint one unit; returns findings and overrides of systemd's rows.
pub fn lint(u: &AuditedUnit, cx: &Context<'_>) -> (Vec<Finding>, Vec<Override>) {
    let s = &u.settings;
    let mut f = Vec::new();
    let mut ov = Vec::new();
    let set_of = |field: &str| {
        u.report
            .checks
            .iter()
            .find(|r| r.json_field == field)
            .and_then(|r| r.set)
    };

    // Syntax of the files.
    for i in &u.syntax {
        let file = cx.root.strip(&i.file).display().to_string();
        if i.too_long {
            // See: systemd's LONG_LINE_MAX (conf-parser.c, read_line).
            let (severity, effect) = if file == u.report.path {
                (Severity::Critical, "systemd refuses to load the whole unit")
            } else {
                (
                    Severity::High,
                    "systemd ignores this line and the rest of the drop-in",
                )
            };
            f.push(Finding::new(
                "UNIT_LINE_TOO_LONG",
                severity,
                format!("{}: {effect}", i.message),
                json!({"file": file, "line": i.line, "limit": crate::unitfile::LONG_LINE_MAX}),
                "split the value over several directives (lists accumulate); continuations count toward the limit",
            ));
            continue;
        }
        let effect = match (i.fatal, file == u.report.path) {
            (false, _) => "",
            (true, true) => " (systemd refuses to load the whole unit)",
            (true, false) => " (systemd ignores this line and the rest of the drop-in)",
        };
        f.push(Finding::new(
            "UNIT_SYNTAX",
            Severity::Medium,
            format!("line not understood by systemd: {}{effect}", i.message),
            json!({"file": cx.root.strip(&i.file).display().to_string(), "line": i.line}),
            "put every setting as Key=value under a [Section] header",
        ));
    }

    // Trailing comments and lines systemd ignores (UNIT-03).
    let ignored_lines: BTreeSet<(std::sync::Arc<std::path::Path>, usize)> = s
        .ignored
        .iter()
        .filter(|i| i.whole_line)
        .map(|i| (i.file.clone(), i.line))
        .collect();
    for a in &s.assignments {
        let Some(pos) = trailing_comment(&a.value) else {
            continue;
        };
        let whole = ignored_lines.contains(&(a.file.clone(), a.line));
        let exec = a.key.starts_with("Exec");
        let effect = if whole {
            "systemd fails to parse the value and ignores the whole line"
        } else if exec {
            "the comment words become extra arguments of the command"
        } else {
            "the comment is part of the value (extra words, or part of a name)"
        };
        f.push(Finding::new(
            if exec {
                "UNIT_EXEC_INLINE_COMMENT"
            } else {
                "UNIT_INLINE_COMMENT"
            },
            if whole || exec {
                Severity::High
            } else {
                Severity::Medium
            },
            format!("{}= has a trailing comment: {effect}", a.key),
            {
                let mut e = at(a, cx.root);
                e["comment"] = json!(a.value[pos..]);
                e
            },
            format!(
                "move the comment to its own line: {}={}",
                a.key,
                a.value[..pos].trim_end()
            ),
        ));
    }
    for i in &s.ignored {
        if !i.whole_line || trailing_comment(&i.value).is_some() {
            continue;
        }
        f.push(Finding::new(
            "UNIT_DIRECTIVE_IGNORED",
            Severity::High,
            format!("systemd ignores {}=: {}", i.key, i.reason),
            json!({"file": cx.root.strip(&i.file).display().to_string(), "line": i.line,
                   "directive": format!("{}={}", i.key, i.value)}),
            format!("give {}= a value systemd accepts", i.key),
        ));
    }
    for i in &s.ignored {
        if i.whole_line || trailing_comment(&i.value).is_some() {
            continue;
        }
        f.push(Finding::new(
            "UNIT_VALUE_WORD_IGNORED",
            Severity::Medium,
            format!("systemd drops part of {}=: {}", i.key, i.reason),
            json!({"file": cx.root.strip(&i.file).display().to_string(), "line": i.line,
                   "directive": format!("{}={}", i.key, i.value)}),
            "fix or remove the word",
        ));
    }

    // Unknown sections, directives and capability names.
    let known = directives();
    for a in &s.assignments {
        let Some(keys) = known.get(&*a.section) else {
            if !a.section.starts_with("X-") && &*a.section != "Socket" {
                f.push(Finding::new(
                    "UNIT_UNKNOWN_SECTION",
                    Severity::Low,
                    format!(
                        "section [{}] is not one systemd reads in a service",
                        a.section
                    ),
                    at(a, cx.root),
                    "move the setting to [Unit], [Service] or [Install]",
                ));
            }
            continue;
        };
        if keys.contains(&a.key) || a.key.starts_with("X-") {
            continue;
        }
        let fix = unknown_directive_fix(known, &a.section, &a.key);
        f.push(Finding::new(
            "UNIT_UNKNOWN_DIRECTIVE",
            Severity::High,
            format!(
                "systemd ignores unknown directive {}= in [{}]",
                a.key, a.section
            ),
            at(a, cx.root),
            fix,
        ));
    }
    for (a, w) in &s.unknown_caps {
        if trailing_comment(&a.value).is_some_and(|p| a.value[p..].contains(w.as_str())) {
            continue;
        }
        let inverted = a.value.starts_with('~');
        let caps: Vec<String> = model::CAPS.iter().map(|c| (*c).to_owned()).collect();
        let fix = match closest(w, caps.iter()) {
            Some(c) => format!("did you mean {c}?"),
            None => format!("remove {w}"),
        };
        f.push(Finding::new(
            "UNIT_UNKNOWN_CAPABILITY",
            if inverted {
                Severity::High
            } else {
                Severity::Medium
            },
            format!(
                "{}= names unknown capability {w:?}, which systemd skips silently{}",
                a.key,
                if inverted {
                    " (the ~ list keeps it)"
                } else {
                    ""
                }
            ),
            at(a, cx.root),
            fix,
        ));
    }

    // Ambient capabilities outside the bounding set (AUDIT-02).
    let lost = s.cap_ambient & !s.cap_bounding;
    if lost != 0 && s.cap_ambient != 0 {
        f.push(Finding::new(
            "AUDIT_AMBIENT_NOT_IN_BOUNDING",
            Severity::High,
            "ambient capabilities outside the bounding set are dropped silently at start",
            json!({"ambient": model::cap_names(s.cap_ambient),
                   "bounding": model::cap_names(s.cap_bounding),
                   "dropped": model::cap_names(lost)}),
            format!(
                "add {} to CapabilityBoundingSet= or remove it from AmbientCapabilities=",
                model::cap_names(lost).join(" ")
            ),
        ));
        ov.push(Override {
            json_field: "AmbientCapabilities",
            systemd_set: set_of("AmbientCapabilities"),
            code: "AUDIT_AMBIENT_NOT_IN_BOUNDING",
            reason: format!(
                "systemd counts {} as granted; the kernel never grants it",
                model::cap_names(lost).join(" ")
            ),
        });
    }

    // Capabilities beyond what the spec needs (a widened set).
    if let Some(spec) = cx.spec {
        let need = if spec.binds_privileged_port() && spec.profile == rip_core::Profile::Default {
            model::cap_from_name("CAP_NET_BIND_SERVICE").map_or(0, |b| 1u64 << b)
        } else {
            0
        };
        let all_known = (1u64 << model::CAPS.len()) - 1;
        let extra = (s.cap_bounding | s.cap_ambient) & !need & all_known;
        if extra != 0 && !root_user(s) {
            f.push(Finding::new(
                "UNIT_CAPS_BEYOND_NEED",
                Severity::High,
                format!("the unit keeps capabilities {} does not need", spec.name),
                json!({"bounding": model::cap_names(s.cap_bounding & all_known),
                       "ambient": model::cap_names(s.cap_ambient),
                       "needed": model::cap_names(need),
                       "extra": model::cap_names(extra)}),
                format!(
                    "CapabilityBoundingSet={} and AmbientCapabilities={}",
                    model::cap_names(need).join(" "),
                    model::cap_names(need & s.cap_ambient).join(" ")
                ),
            ));
        }
    }

    // Paths that must exist (UNIT-01).
    for key in [
        "ReadWritePaths",
        "ReadOnlyPaths",
        "BindPaths",
        "BindReadOnlyPaths",
    ] {
        for (a, w) in path_words(s, key) {
            let mut p = w.as_str();
            if p.starts_with('-') {
                continue;
            }
            p = p.trim_start_matches('+');
            if key.starts_with("Bind") {
                p = p.split(':').next().unwrap_or(p);
            }
            // A specifier left unresolved: where it points is not known.
            if !p.starts_with('/') || p.contains('%') {
                continue;
            }
            if std::fs::symlink_metadata(cx.root.join(p)).is_err() {
                f.push(Finding::new(
                    "UNIT_RWP_MISSING",
                    Severity::High,
                    format!("{key}= entry {p} does not exist: the service fails at NAMESPACE"),
                    json!({"file": cx.root.strip(&a.file).display().to_string(),
                           "line": a.line, "path": p}),
                    format!("create {p} before start, or write it as -{p} if optional"),
                ));
            }
        }
    }

    // ProtectHome hiding the app's own home (UNIT-02).
    let exec0 = s
        .list("Service", "ExecStart")
        .last()
        .and_then(|a| words(&a.value, true).ok())
        .and_then(|w| w.into_iter().next())
        .map(|w| w.trim_start_matches(['@', '-', ':', '+', '!']).to_owned());
    let mut needed: Vec<(String, String)> = Vec::new();
    if let Some(w) = s.last("Service", "WorkingDirectory") {
        needed.push((
            "WorkingDirectory".into(),
            w.value.trim_start_matches('-').to_owned(),
        ));
    }
    if let Some(e) = &exec0 {
        needed.push(("ExecStart".into(), e.clone()));
    }
    for (_, w) in path_words(s, "ReadWritePaths") {
        needed.push((
            "ReadWritePaths".into(),
            w.trim_start_matches(['-', '+']).to_owned(),
        ));
    }
    if let Some(spec) = cx.spec {
        needed.push(("home".into(), spec.home.display().to_string()));
    }
    let binds: Vec<String> = ["BindPaths", "BindReadOnlyPaths"]
        .iter()
        .flat_map(|k| path_words(s, k))
        .map(|(_, w)| {
            w.trim_start_matches(['-', '+'])
                .split(':')
                .nth(1)
                .map(str::to_owned)
                .unwrap_or_else(|| w.trim_start_matches(['-', '+']).to_owned())
        })
        .collect();
    let hidden_dirs = ["/home", "/root", "/run/user"];
    let hidden: Vec<&(String, String)> = needed
        .iter()
        .filter(|(_, p)| hidden_dirs.iter().any(|d| under(p, d)))
        .filter(|(from, p)| match s.protect_home {
            ProtectHome::Yes => true,
            // On the tmpfs, a path is there when a bind covers it; a
            // directory that only has to exist (working directory, home) is
            // also there when it is the parent of a bind mount point.
            ProtectHome::Tmpfs => {
                let dir_only = from == "WorkingDirectory" || from == "home";
                !binds
                    .iter()
                    .any(|b| under(p, b) || (dir_only && under(b, p)))
            }
            _ => false,
        })
        .collect();
    if !hidden.is_empty() {
        f.push(Finding::new(
            "UNIT_PROTECTHOME_HIDES_APP",
            Severity::High,
            format!(
                "ProtectHome={} hides paths the service needs",
                if s.protect_home == ProtectHome::Yes { "yes" } else { "tmpfs" }
            ),
            json!({"paths": hidden.iter().map(|(k, p)| json!({"from": k, "path": p})).collect::<Vec<_>>()}),
            "use ProtectHome=tmpfs with BindPaths=/home/<app> (or BindReadOnlyPaths=)",
        ));
        ov.push(Override {
            json_field: "ProtectHome",
            systemd_set: set_of("ProtectHome"),
            code: "UNIT_PROTECTHOME_HIDES_APP",
            reason: "systemd rewards the setting; the service cannot reach its own home".into(),
        });
    } else if s.protect_home == ProtectHome::Tmpfs && needed.iter().any(|(_, p)| under(p, "/home"))
    {
        ov.push(Override {
            json_field: "ProtectHome",
            systemd_set: set_of("ProtectHome"),
            code: "UNIT_PROTECTHOME_TMPFS_BIND",
            reason: "tmpfs with a bind of the app's own home is the correct setting for /home apps"
                .into(),
        });
    }

    // Directives this host cannot enforce.
    for key in [
        "SocketBindAllow",
        "SocketBindDeny",
        "RestrictNetworkInterfaces",
        "RestrictFileSystems",
    ] {
        let uses = s.list("Service", key);
        if !uses.is_empty() && cx.host.bpf_framework() == Some(false) {
            for a in uses {
                f.push(Finding::new(
                    "UNIT_NOT_ENFORCEABLE",
                    Severity::Medium,
                    format!("{key}= needs systemd's BPF framework, which this systemd lacks (-BPF_FRAMEWORK): it is ignored"),
                    at(a, cx.root),
                    "rely on PrivateNetwork=/socket activation or IPAddressDeny= instead",
                ));
            }
        }
    }
    if let Some(ctrl) = &cx.host.controllers {
        const LIMITS: &[(&str, &str)] = &[
            ("MemoryMax", "memory"),
            ("MemoryHigh", "memory"),
            ("MemoryLow", "memory"),
            ("MemoryMin", "memory"),
            ("MemorySwapMax", "memory"),
            ("MemoryLimit", "memory"),
            ("CPUQuota", "cpu"),
            ("CPUWeight", "cpu"),
            ("CPUShares", "cpu"),
            ("TasksMax", "pids"),
            ("IOWeight", "io"),
            ("IOReadBandwidthMax", "io"),
            ("IOWriteBandwidthMax", "io"),
            ("AllowedCPUs", "cpuset"),
        ];
        for (key, c) in LIMITS {
            if ctrl.contains(*c) {
                continue;
            }
            if let Some(a) = s.last("Service", key).filter(|a| !a.value.is_empty()) {
                f.push(Finding::new(
                    "UNIT_NOT_ENFORCEABLE",
                    Severity::Medium,
                    format!("{key}= needs the {c} cgroup controller, which is not available here"),
                    at(a, cx.root),
                    format!("enable the {c} controller (cgroup_enable=, unified hierarchy)"),
                ));
            }
        }
    }

    // User= (USER-03).
    user_findings(s, cx, &set_of, &mut f, &mut ov);

    // MemoryDenyWriteExecute for JIT runtimes (UNIT-06).
    if s.flag("MemoryDenyWriteExecute") {
        let base = exec0
            .as_deref()
            .and_then(|e| Path::new(e).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let jit_bin = ["node", "nodejs", "java", "deno", "bun", "dotnet"].contains(&base.as_str());
        let jit_rt = cx
            .spec
            .is_some_and(|sp| matches!(sp.runtime, Runtime::Node | Runtime::Jvm));
        if jit_bin || jit_rt {
            f.push(Finding::new(
                "UNIT_MDWE_JIT",
                Severity::High,
                "MemoryDenyWriteExecute=yes makes a JIT runtime (node, JVM) abort at start",
                json!({"exec": exec0, "runtime": cx.spec.map(|sp| sp.runtime)}),
                "remove MemoryDenyWriteExecute= for this app",
            ));
            ov.push(Override {
                json_field: "MemoryDenyWriteExecute",
                systemd_set: set_of("MemoryDenyWriteExecute"),
                code: "UNIT_MDWE_JIT",
                reason: "systemd rewards a setting that breaks this runtime".into(),
            });
        }
    }

    // RestrictAddressFamilies without AF_UNIX (UNIT-08).
    if s.af_allow_list && !s.af_set.is_some_and(|set| set & (1 << 1) != 0) {
        f.push(Finding::new(
            "UNIT_RAF_NO_UNIX",
            Severity::Medium,
            "RestrictAddressFamilies= forbids AF_UNIX: logging to the journal and local sockets fail",
            json!({"directive": s.last("Service", "RestrictAddressFamilies").map(|a| a.value.clone())}),
            "add AF_UNIX to RestrictAddressFamilies=",
        ));
    }

    // Secrets in Environment= (visible over D-Bus).
    for a in s.list("Service", "Environment") {
        for w in words(&a.value, true).unwrap_or_default() {
            let k = w.split('=').next().unwrap_or("").to_ascii_uppercase();
            if ["PASSWORD", "TOKEN", "SECRET", "KEY"]
                .iter()
                .any(|x| k.contains(x))
            {
                f.push(Finding::new(
                    "UNIT_ENV_SECRET",
                    Severity::Medium,
                    format!("Environment= sets {k}, readable by any local user over D-Bus"),
                    json!({"file": cx.root.strip(&a.file).display().to_string(), "line": a.line, "variable": k}),
                    "pass it with LoadCredential= instead",
                ));
            }
        }
    }

    // Implied NoNewPrivileges (systemd/systemd#22881).
    let root_user = matches!(s.user.as_deref(), None | Some("root") | Some("0"));
    if set_of("NoNewPrivileges") == Some(false) && implied_nnp(s) && !root_user {
        ov.push(Override {
            json_field: "NoNewPrivileges",
            systemd_set: Some(false),
            code: "AUDIT_NNP_IMPLIED",
            reason: "seccomp-based settings turn NoNewPrivileges on for a non-root service; \
                     systemd-analyze still counts it as off"
                .into(),
        });
    }
    (f, ov)
}

fn user_findings(
    s: &Settings,
    cx: &Context<'_>,
    set_of: &dyn Fn(&str) -> Option<bool>,
    f: &mut Vec<Finding>,
    ov: &mut Vec<Override>,
) {
    let user = s.user.clone();
    let ev = json!({"user": user, "dynamic_user": s.dynamic_user});
    match user.as_deref() {
        None | Some("root") | Some("0") => {
            f.push(Finding::new(
                "USER_ROOT",
                Severity::High,
                "the service runs as root",
                ev,
                "set User= to the app's own user",
            ));
        }
        Some(_) if s.dynamic_user => {}
        Some(name) => {
            let entry = cx.accounts.user(name).or_else(|| {
                name.parse::<u32>()
                    .ok()
                    .and_then(|u| cx.accounts.user_by_uid(u))
            });
            match entry {
                None => {
                    f.push(Finding::new(
                        "USER_MISSING",
                        Severity::High,
                        format!("User={name} does not exist in <root>/etc/passwd: the service fails to start"),
                        ev.clone(),
                        format!("create the user {name} (rip-user) or fix User="),
                    ));
                    ov.push(Override {
                        json_field: "UserOrDynamicUser",
                        systemd_set: set_of("UserOrDynamicUser"),
                        code: "USER_MISSING",
                        reason: "systemd credits a user that does not exist".into(),
                    });
                }
                Some(e) if e.uid == 0 => {
                    f.push(Finding::new(
                        "USER_ROOT",
                        Severity::Critical,
                        format!("User={name} has uid 0"),
                        ev.clone(),
                        "give the app a user with its own non-zero uid",
                    ));
                    ov.push(Override {
                        json_field: "UserOrDynamicUser",
                        systemd_set: set_of("UserOrDynamicUser"),
                        code: "USER_ROOT",
                        reason: "the name is not 'root' but its uid is 0".into(),
                    });
                }
                Some(e) if e.uid == 65534 || e.name == "nobody" => {
                    f.push(Finding::new(
                        "USER_NOBODY",
                        Severity::Medium,
                        format!("User={name} is the shared nobody user"),
                        ev.clone(),
                        "give the app a user of its own",
                    ));
                }
                Some(_) => {}
            }
            if !model::valid_user_strict(name) || name.contains(char::is_uppercase) {
                f.push(Finding::new(
                    "USER_NAME_NOT_STRICT",
                    Severity::Medium,
                    format!("User={name:?} does not match ^[a-z_][a-z0-9_-]{{0,30}}$"),
                    ev.clone(),
                    "rename the user to a strict name",
                ));
            }
            if let Some(others) = cx.users.get(name) {
                let all: Vec<&String> = others.iter().filter(|u| **u != s.name).collect();
                let others: Vec<&String> = all.iter().take(10).copied().collect();
                if !others.is_empty() {
                    f.push(Finding::new(
                        "USER_SHARED",
                        Severity::High,
                        format!(
                            "User={name} is shared with other units: no isolation between them"
                        ),
                        json!({"user": name, "units": others, "count": all.len()}),
                        "give every app its own user",
                    ));
                    ov.push(Override {
                        json_field: "UserOrDynamicUser",
                        systemd_set: set_of("UserOrDynamicUser"),
                        code: "USER_SHARED",
                        reason: "a static user shared by several units isolates nothing".into(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_trailing_comments_outside_quotes() {
        assert_eq!(trailing_comment("yes # x"), Some(4));
        assert_eq!(trailing_comment("\"a # b\""), None);
        assert_eq!(trailing_comment("a#b"), None);
        assert_eq!(trailing_comment("5s ; retry"), Some(3));
    }

    #[test]
    fn limits_without_their_controller_are_not_enforceable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.service");
        std::fs::write(
            &p,
            "[Service]\nUser=a\nExecStart=/bin/true\nMemoryMax=1G\nTasksMax=10\n",
        )
        .unwrap();
        let root = Root::new(dir.path());
        let u = crate::audit_unit_file(&root, &p).unwrap();
        let (acc, users) = (Accounts::default(), BTreeMap::new());
        let host = HostFeatures::known(false, &["pids"]);
        let cx = Context {
            root: &root,
            accounts: &acc,
            spec: None,
            users: &users,
            host: &host,
        };

        let (f, _) = lint(&u, &cx);

        let hits: Vec<&Finding> = f
            .iter()
            .filter(|x| x.code == "UNIT_NOT_ENFORCEABLE")
            .collect();
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert!(hits[0].message.starts_with("MemoryMax="));
    }

    #[test]
    fn suggests_close_names() {
        let known: Vec<String> = vec!["NoNewPrivileges".into(), "PrivateTmp".into()];

        assert_eq!(
            closest("NoNewPrivilege", known.iter()).map(String::as_str),
            Some("NoNewPrivileges")
        );
    }
}
