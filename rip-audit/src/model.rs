//! From assignments to the settings systemd 252 scores: each directive is
//! parsed with the semantics of systemd's own parser (scalar failures drop
//! the line, lists go word by word, capability merge rules, empty resets,
//! `~` inversion), then the implied settings of `unit_patch_contexts` apply.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use crate::syscalls;
use crate::unitfile::{is_ws, Assignment};

/// Capability names, by bit number.
pub const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The mask bit of a capability name spelled exactly as in [`CAPS`] (0 for
/// any other name), usable in constants.
pub const fn cap_mask(name: &str) -> u64 {
    let mut i = 0;
    while i < CAPS.len() {
        let (a, b) = (CAPS[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return 1u64 << i;
            }
        }
        i += 1;
    }
    0
}

/// Bit number of a capability name (case-insensitive, as systemd), or of a
/// number 0-63.
pub fn cap_from_name(name: &str) -> Option<u32> {
    if name
        .as_bytes()
        .first()
        .is_some_and(|b| !b.is_ascii_alphabetic())
    {
        if let Ok(n) = name.parse::<i64>() {
            return (0..64).contains(&n).then_some(n as u32);
        }
    }
    CAPS.iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .map(|i| i as u32)
}

/// Names of the bits set in `mask`.
pub fn cap_names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|b| mask & (1u64 << b) != 0)
        .map(|b| {
            CAPS.get(b as usize)
                .map(|s| (*s).to_owned())
                .unwrap_or_else(|| format!("cap_{b}"))
        })
        .collect()
}

/// Address family names systemd 252 accepts (glibc 2.36 `AF_*`, aliases
/// included) and their numbers.
pub const ADDRESS_FAMILIES: &[(&str, i32)] = &[
    ("AF_LOCAL", 1),
    ("AF_UNIX", 1),
    ("AF_FILE", 1),
    ("AF_INET", 2),
    ("AF_AX25", 3),
    ("AF_IPX", 4),
    ("AF_APPLETALK", 5),
    ("AF_NETROM", 6),
    ("AF_BRIDGE", 7),
    ("AF_ATMPVC", 8),
    ("AF_X25", 9),
    ("AF_INET6", 10),
    ("AF_ROSE", 11),
    ("AF_DECnet", 12),
    ("AF_NETBEUI", 13),
    ("AF_SECURITY", 14),
    ("AF_KEY", 15),
    ("AF_NETLINK", 16),
    ("AF_ROUTE", 16),
    ("AF_PACKET", 17),
    ("AF_ASH", 18),
    ("AF_ECONET", 19),
    ("AF_ATMSVC", 20),
    ("AF_RDS", 21),
    ("AF_SNA", 22),
    ("AF_IRDA", 23),
    ("AF_PPPOX", 24),
    ("AF_WANPIPE", 25),
    ("AF_LLC", 26),
    ("AF_IB", 27),
    ("AF_MPLS", 28),
    ("AF_CAN", 29),
    ("AF_TIPC", 30),
    ("AF_BLUETOOTH", 31),
    ("AF_IUCV", 32),
    ("AF_RXRPC", 33),
    ("AF_ISDN", 34),
    ("AF_PHONET", 35),
    ("AF_IEEE802154", 36),
    ("AF_CAIF", 37),
    ("AF_ALG", 38),
    ("AF_NFC", 39),
    ("AF_VSOCK", 40),
    ("AF_KCM", 41),
    ("AF_QIPCRTR", 42),
    ("AF_SMC", 43),
    ("AF_XDP", 44),
    ("AF_MCTP", 45),
];

fn af_from_name(name: &str) -> Option<i32> {
    ADDRESS_FAMILIES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Namespace types of `RestrictNamespaces=`, with their check bits.
pub const NAMESPACES: &[(&str, u64)] = &[
    ("cgroup", 1),
    ("ipc", 2),
    ("net", 4),
    ("mnt", 8),
    ("pid", 16),
    ("user", 32),
    ("uts", 64),
];
const NS_ALL: u64 = 127;
const NS_INITIAL: u64 = u64::MAX;

/// Architectures `SystemCallArchitectures=` accepts.
const ARCHS: &[&str] = &[
    "native",
    "x86",
    "x86-64",
    "x32",
    "arm",
    "arm64",
    "mips",
    "mips64",
    "mips64-n32",
    "mipsel",
    "mipsel64",
    "mipsel64-n32",
    "ppc",
    "ppc64",
    "ppc64-le",
    "s390",
    "s390x",
    "parisc",
    "parisc64",
    "riscv64",
];

const ERRNO_NAMES: &[&str] = &[
    "EPERM",
    "ENOENT",
    "ESRCH",
    "EINTR",
    "EIO",
    "ENXIO",
    "E2BIG",
    "ENOEXEC",
    "EBADF",
    "ECHILD",
    "EAGAIN",
    "ENOMEM",
    "EACCES",
    "EFAULT",
    "ENOTBLK",
    "EBUSY",
    "EEXIST",
    "EXDEV",
    "ENODEV",
    "ENOTDIR",
    "EISDIR",
    "EINVAL",
    "ENFILE",
    "EMFILE",
    "ENOTTY",
    "ETXTBSY",
    "EFBIG",
    "ENOSPC",
    "ESPIPE",
    "EROFS",
    "EMLINK",
    "EPIPE",
    "EDOM",
    "ERANGE",
    "EDEADLK",
    "ENAMETOOLONG",
    "ENOLCK",
    "ENOSYS",
    "ENOTEMPTY",
    "ELOOP",
    "EWOULDBLOCK",
    "ENOMSG",
    "EIDRM",
    "ENOTSUP",
    "EOPNOTSUPP",
    "EAFNOSUPPORT",
    "EPROTONOSUPPORT",
    "ECONNREFUSED",
    "ENOTCONN",
    "ETIMEDOUT",
    "EHOSTUNREACH",
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "ENETDOWN",
    "ENETUNREACH",
    "ECONNRESET",
    "ENOBUFS",
    "EISCONN",
    "EALREADY",
    "EINPROGRESS",
    "ESTALE",
    "EDQUOT",
    "ECANCELED",
    "EOWNERDEAD",
    "ENOTRECOVERABLE",
    "ERFKILL",
    "EHWPOISON",
    "ENOTSOCK",
    "EDESTADDRREQ",
    "EMSGSIZE",
    "EPROTOTYPE",
    "ENOPROTOOPT",
    "ESOCKTNOSUPPORT",
    "EPFNOSUPPORT",
    "ENETRESET",
    "ECONNABORTED",
    "ESHUTDOWN",
    "ETOOMANYREFS",
    "EHOSTDOWN",
    "EUSERS",
    "ENODATA",
    "ETIME",
    "ENOSR",
    "ENOLINK",
    "EPROTO",
    "EBADMSG",
    "EOVERFLOW",
    "EILSEQ",
    "ENOKEY",
    "EKEYEXPIRED",
    "EKEYREVOKED",
    "EKEYREJECTED",
    "ENOMEDIUM",
    "EMEDIUMTYPE",
    "EREMOTE",
    "ECOMM",
    "ENOSTR",
];

/// A `SystemCallFilter=` set: per interned syscall id, absent or the errno
/// (-1: none) it was listed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallFilter {
    entries: Vec<i32>,
}

const ABSENT: i32 = i32::MIN;

impl SyscallFilter {
    fn new() -> Self {
        SyscallFilter {
            entries: vec![ABSENT; syscalls::tables().len()],
        }
    }

    /// The errno `name` is listed with (-1: none), if listed.
    pub fn get(&self, name: &str) -> Option<i32> {
        let id = syscalls::tables().id(name)?;
        self.get_id(id)
    }

    /// Like [`SyscallFilter::get`], by id.
    pub fn get_id(&self, id: u16) -> Option<i32> {
        match self.entries.get(usize::from(id)) {
            Some(&e) if e != ABSENT => Some(e),
            _ => None,
        }
    }

    fn set(&mut self, id: u16, num: i32) {
        if let Some(e) = self.entries.get_mut(usize::from(id)) {
            *e = num;
        }
    }

    fn remove(&mut self, id: u16) {
        self.set(id, ABSENT);
    }

    /// Every listed id and its errno.
    pub fn iter(&self) -> impl Iterator<Item = (u16, i32)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| **e != ABSENT)
            .map(|(i, e)| (i as u16, *e))
    }
}

/// `ProtectHome=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtectHome {
    /// `no` (default).
    #[default]
    No,
    /// `yes`.
    Yes,
    /// `read-only`.
    ReadOnly,
    /// `tmpfs`.
    Tmpfs,
}

/// `ProtectSystem=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtectSystem {
    /// `no` (default).
    #[default]
    No,
    /// `yes`.
    Yes,
    /// `full`.
    Full,
    /// `strict`.
    Strict,
}

/// An IP prefix (address already masked).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Prefix {
    /// 4 or 6.
    pub v: u8,
    /// Address bytes (4 or 16).
    pub addr: Vec<u8>,
    /// Prefix length.
    pub len: u8,
}

impl Prefix {
    fn masked(v: u8, mut addr: Vec<u8>, len: u8) -> Self {
        for (i, b) in addr.iter_mut().enumerate() {
            let bits = (len as usize).saturating_sub(i * 8).min(8);
            let mask = if bits == 0 { 0u8 } else { 0xffu8 << (8 - bits) };
            *b &= mask;
        }
        Prefix { v, addr, len }
    }

    /// Whether the address is a loopback address (127/8 or ::1).
    pub fn is_localhost(&self) -> bool {
        if self.v == 4 {
            self.addr.first() == Some(&127)
        } else {
            self.addr.len() == 16 && self.addr[..15].iter().all(|&b| b == 0) && self.addr[15] == 1
        }
    }
}

/// A line systemd ignores (wholly or partly), for the lint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// File.
    pub file: Arc<Path>,
    /// Line.
    pub line: usize,
    /// Directive.
    pub key: String,
    /// Full value.
    pub value: String,
    /// What systemd does with it.
    pub reason: String,
    /// Whether the whole line is dropped (false: one word only).
    pub whole_line: bool,
}

/// What systemd 252 knows about a service after loading it: the inputs of
/// its exposure checks, plus what the lint needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Unit name.
    pub name: String,
    /// `DefaultDependencies=`.
    pub default_dependencies: bool,
    /// `Type=`.
    pub service_type: String,
    /// `User=` (after DynamicUser's derivation).
    pub user: Option<String>,
    /// `Group=`.
    pub group: Option<String>,
    /// `DynamicUser=`.
    pub dynamic_user: bool,
    /// `SupplementaryGroups=`.
    pub supplementary_groups: Vec<String>,
    /// Booleans, in the order of [`BOOLS`] (read them with
    /// [`Settings::flag`]).
    pub bools: [bool; BOOLS.len()],
    /// `ProtectHome=`.
    pub protect_home: ProtectHome,
    /// `ProtectSystem=`.
    pub protect_system: ProtectSystem,
    /// `RootDirectory=`.
    pub root_directory: Option<String>,
    /// `RootImage=`.
    pub root_image: Option<String>,
    /// `MountImages=` given.
    pub mount_images: bool,
    /// `LoadCredentialEncrypted=`/`SetCredentialEncrypted=` given.
    pub encrypted_credentials: bool,
    /// Bounding set, as a mask.
    pub cap_bounding: u64,
    /// Bounding set as written, before the implied masks.
    pub cap_bounding_declared: u64,
    /// Ambient set.
    pub cap_ambient: u64,
    /// `UMask=`.
    pub umask: u32,
    /// `KeyringMode=`.
    pub keyring_mode: String,
    /// `ProtectProc=`.
    pub protect_proc: String,
    /// `ProcSubset=`.
    pub proc_subset: String,
    /// `NotifyAccess=` (none when unset).
    pub notify_access: String,
    /// Allowed namespace bits.
    pub restrict_namespaces: u64,
    /// Whether `RestrictAddressFamilies=` is an allow-list.
    pub af_allow_list: bool,
    /// Families listed, if the directive is in effect.
    pub af_set: Option<BTreeSet<i32>>,
    /// `SystemCallArchitectures=`.
    pub syscall_archs: BTreeSet<String>,
    /// Whether `SystemCallFilter=` is an allow-list.
    pub syscall_allow_list: bool,
    /// The filter, if one is in effect.
    pub syscall_filter: Option<SyscallFilter>,
    /// `DevicePolicy=`.
    pub device_policy: String,
    /// `DeviceAllow=` entries (`path:rwm`).
    pub device_allow: Vec<String>,
    /// `IPAddressAllow=`.
    pub ip_allow: BTreeSet<Prefix>,
    /// `IPAddressDeny=`.
    pub ip_deny: BTreeSet<Prefix>,
    /// Custom BPF ingress filters.
    pub ip_ingress: Vec<String>,
    /// Custom BPF egress filters.
    pub ip_egress: Vec<String>,
    /// Every assignment, in order (for the lint).
    pub assignments: Vec<Assignment>,
    /// Lines systemd ignores.
    pub ignored: Vec<Ignored>,
    /// Errors that make systemd refuse to load the unit.
    pub fatal: Vec<String>,
    /// Capability words that name no capability.
    pub unknown_caps: Vec<(Assignment, String)>,
}

/// Boolean directives that feed a check or the lint.
pub const BOOLS: &[&str] = &[
    "PrivateDevices",
    "PrivateMounts",
    "PrivateNetwork",
    "PrivateTmp",
    "PrivateUsers",
    "ProtectControlGroups",
    "ProtectKernelModules",
    "ProtectKernelTunables",
    "ProtectKernelLogs",
    "ProtectClock",
    "ProtectHostname",
    "LockPersonality",
    "MemoryDenyWriteExecute",
    "NoNewPrivileges",
    "RemoveIPC",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "Delegate",
];

/// Index of a boolean directive in [`BOOLS`].
fn bool_slot(name: &str) -> Option<usize> {
    BOOLS.iter().position(|b| *b == name)
}

/// systemd's `parse_boolean`.
pub fn parse_bool(s: &str) -> Option<bool> {
    const T: &[&str] = &["1", "yes", "y", "true", "t", "on"];
    const F: &[&str] = &["0", "no", "n", "false", "f", "off"];
    if T.iter().any(|t| t.eq_ignore_ascii_case(s)) {
        Some(true)
    } else if F.iter().any(|f| f.eq_ignore_ascii_case(s)) {
        Some(false)
    } else {
        None
    }
}

/// An unbalanced quote or a trailing backslash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadQuoting;

/// Split words like systemd's `extract_first_word` (whitespace separated,
/// optional quote removal and backslash escapes). `Err` on an unbalanced
/// quote.
pub fn words(s: &str, unquote: bool) -> Result<Vec<String>, BadQuoting> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == '\\' {
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => return Err(BadQuoting),
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        if is_ws(c) {
            if in_word {
                out.push(std::mem::take(&mut cur));
                in_word = false;
            }
            continue;
        }
        in_word = true;
        if c == '\\' {
            match chars.next() {
                Some(n) => {
                    if !unquote {
                        cur.push('\\');
                    }
                    cur.push(n)
                }
                None => return Err(BadQuoting),
            }
        } else if unquote && (c == '"' || c == '\'') {
            quote = Some(c);
        } else {
            cur.push(c);
        }
    }
    if quote.is_some() {
        return Err(BadQuoting);
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn parse_uid(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    let v: u64 = s.parse().ok()?;
    (v < 4_294_967_295 && v != 65535).then_some(v as u32)
}

/// systemd's relaxed user/group name check (numeric ids allowed).
pub fn valid_user_relaxed(u: &str) -> bool {
    if u.is_empty() {
        return false;
    }
    if parse_uid(u).is_some() {
        return true;
    }
    if u.chars().any(|c| c.is_control()) || u.contains([':', '/']) {
        return false;
    }
    if u.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if let Some(rest) = u.strip_prefix('-') {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    u != "." && u != ".."
}

/// systemd's strict user name check.
pub fn valid_user_strict(u: &str) -> bool {
    let b = u.as_bytes();
    if b.is_empty() || b.len() > 31 {
        return false;
    }
    if !(b[0].is_ascii_lowercase() || b[0].is_ascii_uppercase() || b[0] == b'_') {
        return false;
    }
    b[1..]
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

fn simplify_path(p: &str) -> String {
    let mut parts = Vec::new();
    for c in p.split('/') {
        if c.is_empty() || c == "." {
            continue;
        }
        parts.push(c);
    }
    format!("/{}", parts.join("/"))
}

fn parse_prefix(word: &str) -> Option<Prefix> {
    let (a, len) = match word.split_once('/') {
        Some((a, l)) => {
            if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (a, Some(l.parse::<u8>().ok()?))
        }
        None => (a_or(word), None),
    };
    if let Ok(v4) = a.parse::<Ipv4Addr>() {
        let len = len.unwrap_or(32);
        if len > 32 {
            return None;
        }
        return Some(Prefix::masked(4, v4.octets().to_vec(), len));
    }
    if let Ok(v6) = a.parse::<Ipv6Addr>() {
        let len = len.unwrap_or(128);
        if len > 128 {
            return None;
        }
        return Some(Prefix::masked(6, v6.octets().to_vec(), len));
    }
    None
}

fn a_or(w: &str) -> &str {
    w
}

fn is_localhost_name(w: &str) -> bool {
    let w = w.to_ascii_lowercase();
    let w = w.strip_suffix('.').unwrap_or(&w).to_owned();
    w == "localhost" || w.ends_with(".localhost") || w == "localhost.localdomain"
}

impl Settings {
    fn new(name: &str) -> Self {
        Settings {
            name: name.to_owned(),
            default_dependencies: true,
            service_type: "simple".into(),
            user: None,
            group: None,
            dynamic_user: false,
            supplementary_groups: Vec::new(),
            bools: [false; BOOLS.len()],
            protect_home: ProtectHome::No,
            protect_system: ProtectSystem::No,
            root_directory: None,
            root_image: None,
            mount_images: false,
            encrypted_credentials: false,
            cap_bounding: u64::MAX,
            cap_bounding_declared: u64::MAX,
            cap_ambient: 0,
            umask: 0o022,
            keyring_mode: "private".into(),
            protect_proc: "default".into(),
            proc_subset: "all".into(),
            notify_access: String::new(),
            restrict_namespaces: NS_INITIAL,
            af_allow_list: false,
            af_set: None,
            syscall_archs: BTreeSet::new(),
            syscall_allow_list: false,
            syscall_filter: None,
            device_policy: "auto".into(),
            device_allow: Vec::new(),
            ip_allow: BTreeSet::new(),
            ip_deny: BTreeSet::new(),
            ip_ingress: Vec::new(),
            ip_egress: Vec::new(),
            assignments: Vec::new(),
            ignored: Vec::new(),
            fatal: Vec::new(),
            unknown_caps: Vec::new(),
        }
    }

    /// A boolean setting.
    pub fn flag(&self, name: &str) -> bool {
        bool_slot(name).is_some_and(|i| self.bools[i])
    }

    fn set_flag(&mut self, name: &str, value: bool) {
        if let Some(i) = bool_slot(name) {
            self.bools[i] = value;
        }
    }

    fn ignore(&mut self, a: &Assignment, reason: impl Into<String>, whole_line: bool) {
        self.ignored.push(Ignored {
            file: a.file.clone(),
            line: a.line,
            key: a.key.clone(),
            value: a.value.clone(),
            reason: reason.into(),
            whole_line,
        });
    }

    /// All values of a directive, in order, with the empty-assignment reset
    /// applied (for list directives the lint reads).
    pub fn list(&self, section: &str, key: &str) -> Vec<&Assignment> {
        let mut out = Vec::new();
        for a in &self.assignments {
            if *a.section == *section && a.key == key {
                if a.value.is_empty() {
                    out.clear();
                } else {
                    out.push(a);
                }
            }
        }
        out
    }

    /// The last value of a scalar directive.
    pub fn last(&self, section: &str, key: &str) -> Option<&Assignment> {
        self.assignments
            .iter()
            .rev()
            .find(|a| *a.section == *section && a.key == key)
    }

    fn apply(&mut self, a: &Assignment) {
        let v = a.value.as_str();
        match (&*a.section, a.key.as_str()) {
            ("Unit", "DefaultDependencies") => match parse_bool(v) {
                Some(b) => self.default_dependencies = b,
                None => self.ignore(a, "not a boolean", true),
            },
            ("Service", "Type") => {
                const T: &[&str] = &[
                    "simple", "exec", "forking", "oneshot", "dbus", "notify", "idle",
                ];
                if T.contains(&v) {
                    self.service_type = v.to_owned();
                } else {
                    self.ignore(a, "unknown service type", true);
                }
            }
            ("Service", "User") => {
                if v.is_empty() {
                    self.user = None;
                } else if valid_user_relaxed(v) {
                    self.user = Some(v.to_owned());
                } else {
                    self.fatal.push(format!(
                        "{}:{}: invalid user name or numeric ID {v:?}",
                        a.file.display(),
                        a.line
                    ));
                }
            }
            ("Service", "Group") => {
                if v.is_empty() {
                    self.group = None;
                } else if valid_user_relaxed(v) {
                    self.group = Some(v.to_owned());
                } else {
                    self.fatal.push(format!(
                        "{}:{}: invalid group name or numeric ID {v:?}",
                        a.file.display(),
                        a.line
                    ));
                }
            }
            ("Service", "SupplementaryGroups") => {
                if v.is_empty() {
                    self.supplementary_groups.clear();
                    return;
                }
                let Ok(ws) = words(v, true) else {
                    self.ignore(a, "invalid quoting", true);
                    return;
                };
                for w in ws {
                    if valid_user_relaxed(&w) {
                        self.supplementary_groups.push(w);
                    } else {
                        self.fatal.push(format!(
                            "{}:{}: invalid group name or numeric ID {w:?}",
                            a.file.display(),
                            a.line
                        ));
                        return;
                    }
                }
            }
            ("Service", "DynamicUser") => match parse_bool(v) {
                Some(b) => self.dynamic_user = b,
                // Fatal: systemd will not guess whether to run as root.
                None => self.fatal.push(format!(
                    "{}:{}: DynamicUser= value {v:?} is not a boolean",
                    a.file.display(),
                    a.line
                )),
            },
            ("Service", "Delegate") => {
                if v.is_empty() {
                    self.set_flag("Delegate", true);
                } else if let Some(b) = parse_bool(v) {
                    self.set_flag("Delegate", b);
                } else {
                    // A controller list: delegation is on whatever the words.
                    self.set_flag("Delegate", true);
                }
            }
            ("Service", k) if bool_slot(k).is_some() => match parse_bool(v) {
                Some(b) => self.set_flag(k, b),
                None => self.ignore(a, "not a boolean", true),
            },
            ("Service", "ProtectHome") => {
                let r = match parse_bool(v) {
                    Some(true) => Some(ProtectHome::Yes),
                    Some(false) => Some(ProtectHome::No),
                    None => match v {
                        "read-only" => Some(ProtectHome::ReadOnly),
                        "tmpfs" => Some(ProtectHome::Tmpfs),
                        _ => None,
                    },
                };
                match r {
                    Some(x) => self.protect_home = x,
                    None => self.ignore(a, "not yes, no, read-only or tmpfs", true),
                }
            }
            ("Service", "ProtectSystem") => {
                let r = match parse_bool(v) {
                    Some(true) => Some(ProtectSystem::Yes),
                    Some(false) => Some(ProtectSystem::No),
                    None => match v {
                        "full" => Some(ProtectSystem::Full),
                        "strict" => Some(ProtectSystem::Strict),
                        _ => None,
                    },
                };
                match r {
                    Some(x) => self.protect_system = x,
                    None => self.ignore(a, "not yes, no, full or strict", true),
                }
            }
            ("Service", "RootDirectory") | ("Service", "RootImage") => {
                let slot = if a.key == "RootDirectory" {
                    &mut self.root_directory
                } else {
                    &mut self.root_image
                };
                if v.is_empty() {
                    *slot = None;
                } else if v.starts_with('/') && !v.split('/').any(|c| c == "..") {
                    *slot = Some(simplify_path(v));
                } else {
                    self.fatal.push(format!(
                        "{}:{}: {}= path {v:?} is not absolute and normalized",
                        a.file.display(),
                        a.line,
                        a.key
                    ));
                }
            }
            ("Service", "MountImages") => self.mount_images = !v.is_empty(),
            ("Service", "LoadCredentialEncrypted") | ("Service", "SetCredentialEncrypted")
                if !v.is_empty() =>
            {
                self.encrypted_credentials = true;
            }
            ("Service", "CapabilityBoundingSet") | ("Service", "AmbientCapabilities") => {
                self.apply_caps(a);
            }
            ("Service", "UMask") => {
                let ok = !v.is_empty() && v.bytes().all(|b| (b'0'..=b'7').contains(&b));
                match u32::from_str_radix(v, 8) {
                    Ok(m) if ok && m <= 0o7777 => self.umask = m,
                    _ => self.ignore(a, "not an octal mode", true),
                }
            }
            ("Service", "KeyringMode") => {
                self.set_enum(a, &["inherit", "private", "shared"], |s| {
                    &mut s.keyring_mode
                })
            }
            ("Service", "ProtectProc") => self.set_enum(
                a,
                &["default", "noaccess", "invisible", "ptraceable"],
                |s| &mut s.protect_proc,
            ),
            ("Service", "ProcSubset") => self.set_enum(a, &["all", "pid"], |s| &mut s.proc_subset),
            ("Service", "NotifyAccess") => {
                self.set_enum(a, &["none", "main", "exec", "all"], |s| {
                    &mut s.notify_access
                })
            }
            ("Service", "DevicePolicy") => {
                self.set_enum(a, &["auto", "closed", "strict"], |s| &mut s.device_policy)
            }
            ("Service", "RestrictNamespaces") => self.apply_namespaces(a),
            ("Service", "RestrictAddressFamilies") => self.apply_families(a),
            ("Service", "SystemCallArchitectures") => {
                if v.is_empty() {
                    self.syscall_archs.clear();
                    return;
                }
                let Ok(ws) = words(v, true) else {
                    self.ignore(a, "invalid quoting", true);
                    return;
                };
                for w in ws {
                    if ARCHS.contains(&w.as_str()) {
                        self.syscall_archs.insert(w);
                    } else {
                        self.ignore(a, format!("unknown architecture {w:?}"), false);
                    }
                }
            }
            ("Service", "SystemCallFilter") => self.apply_syscall_filter(a),
            ("Service", "DeviceAllow") => self.apply_device_allow(a),
            ("Service", "IPAddressAllow") | ("Service", "IPAddressDeny") => {
                self.apply_ip(a);
            }
            ("Service", "IPIngressFilterPath") | ("Service", "IPEgressFilterPath") => {
                let ingress = a.key == "IPIngressFilterPath";
                let list = if ingress {
                    &mut self.ip_ingress
                } else {
                    &mut self.ip_egress
                };
                if v.is_empty() {
                    list.clear();
                } else if v.starts_with('/') {
                    list.push(v.to_owned());
                } else {
                    self.ignore(a, "not an absolute path", true);
                }
            }
            _ => {}
        }
    }

    fn set_enum(
        &mut self,
        a: &Assignment,
        allowed: &[&str],
        slot: impl FnOnce(&mut Settings) -> &mut String,
    ) {
        if allowed.contains(&a.value.as_str()) {
            *slot(self) = a.value.clone();
        } else {
            self.ignore(a, format!("not one of {}", allowed.join(", ")), true);
        }
    }

    fn apply_caps(&mut self, a: &Assignment) {
        let bounding = a.key == "CapabilityBoundingSet";
        let (invert, rest) = match a.value.strip_prefix('~') {
            Some(r) => (true, r),
            None => (false, a.value.as_str()),
        };
        let Ok(ws) = words(rest, true) else {
            self.ignore(a, "invalid quoting", true);
            return;
        };
        let mut sum = 0u64;
        for w in ws {
            match cap_from_name(&w) {
                Some(b) => sum |= 1u64 << b,
                None => self.unknown_caps.push((a.clone(), w)),
            }
        }
        let initial = if bounding { u64::MAX } else { 0 };
        let cur = if bounding {
            &mut self.cap_bounding
        } else {
            &mut self.cap_ambient
        };
        if sum == 0 || *cur == initial {
            *cur = if invert { !sum } else { sum };
        } else if invert {
            *cur &= !sum;
        } else {
            *cur |= sum;
        }
    }

    fn apply_namespaces(&mut self, a: &Assignment) {
        let v = a.value.as_str();
        if v.is_empty() {
            self.restrict_namespaces = NS_INITIAL;
            return;
        }
        match parse_bool(v) {
            Some(true) => {
                self.restrict_namespaces = 0;
                return;
            }
            Some(false) => {
                self.restrict_namespaces = NS_ALL;
                return;
            }
            None => {}
        }
        let (invert, rest) = match v.strip_prefix('~') {
            Some(r) => (true, r),
            None => (false, v),
        };
        let Ok(ws) = words(rest, true) else {
            self.ignore(a, "invalid quoting", true);
            return;
        };
        let mut flags = 0u64;
        for w in &ws {
            match NAMESPACES.iter().find(|(n, _)| n == w) {
                Some((_, bit)) => flags |= bit,
                None => {
                    self.ignore(a, format!("unknown namespace type {w:?}"), true);
                    return;
                }
            }
        }
        if self.restrict_namespaces == NS_INITIAL {
            self.restrict_namespaces = if invert { !flags & NS_ALL } else { flags };
        } else if invert {
            self.restrict_namespaces &= !flags;
        } else {
            self.restrict_namespaces |= flags;
        }
    }

    fn apply_families(&mut self, a: &Assignment) {
        let v = a.value.as_str();
        if v.is_empty() {
            self.af_set = None;
            self.af_allow_list = false;
            return;
        }
        if v == "none" {
            self.af_set = None;
            self.af_allow_list = true;
            return;
        }
        let (invert, rest) = match v.strip_prefix('~') {
            Some(r) => (true, r),
            None => (false, v),
        };
        if self.af_set.is_none() {
            self.af_set = Some(BTreeSet::new());
            self.af_allow_list = !invert;
        }
        let ws = match words(rest, true) {
            Ok(ws) => ws,
            Err(BadQuoting) => {
                self.ignore(a, "invalid quoting", true);
                return;
            }
        };
        for w in ws {
            let Some(af) = af_from_name(&w) else {
                self.ignore(a, format!("unknown address family {w:?}"), false);
                continue;
            };
            let allow = self.af_allow_list;
            if let Some(set) = self.af_set.as_mut() {
                if invert != allow {
                    set.insert(af);
                } else {
                    set.remove(&af);
                }
            }
        }
    }

    fn apply_syscall_filter(&mut self, a: &Assignment) {
        let t = syscalls::tables();
        let v = a.value.as_str();
        if v.is_empty() {
            self.syscall_filter = None;
            self.syscall_allow_list = false;
            return;
        }
        let (invert, rest) = match v.strip_prefix('~') {
            Some(r) => (true, r),
            None => (false, v),
        };
        if self.syscall_filter.is_none() {
            let mut f = SyscallFilter::new();
            if invert {
                self.syscall_allow_list = false;
            } else {
                self.syscall_allow_list = true;
                for id in t.expand_all_ids("@default") {
                    f.set(*id, -1);
                }
            }
            self.syscall_filter = Some(f);
        }
        let allow_list = self.syscall_allow_list;
        let ws = words(rest, false).unwrap_or_default();
        for w in ws {
            let (name, num) = match w.split_once(':') {
                Some((n, e)) => match parse_errno(e) {
                    Some(num) => (n.to_owned(), num),
                    None => {
                        self.ignore(a, format!("bad errno or action in {w:?}"), false);
                        continue;
                    }
                },
                None => (w.clone(), -1),
            };
            if name.is_empty() {
                self.ignore(a, format!("empty system call name in {w:?}"), false);
                continue;
            }
            if !invert && num >= 0 {
                self.ignore(a, format!("allow-listed {w:?} cannot take an errno"), false);
                continue;
            }
            let one;
            let ids: &[u16] = if name.starts_with('@') {
                if !t.is_group(&name) {
                    self.ignore(a, format!("unknown system call group {name:?}"), false);
                    continue;
                }
                t.expand_all_ids(&name)
            } else {
                match t.id(&name) {
                    Some(id) => {
                        one = [id];
                        &one
                    }
                    None => {
                        self.ignore(a, format!("unknown system call {name:?}"), false);
                        continue;
                    }
                }
            };
            let put = (invert != allow_list) || (invert && allow_list && num >= 0);
            if let Some(f) = self.syscall_filter.as_mut() {
                for id in ids {
                    if put {
                        f.set(*id, num);
                    } else {
                        f.remove(*id);
                    }
                }
            }
        }
    }

    fn apply_device_allow(&mut self, a: &Assignment) {
        let v = a.value.as_str();
        if v.is_empty() {
            self.device_allow.clear();
            return;
        }
        // The first word is the device, the rest (verbatim) the rights.
        let t = v.trim_start_matches(is_ws);
        let Ok(first) = words(t, true) else {
            self.ignore(a, "invalid quoting", true);
            return;
        };
        let Some(path) = first.first().cloned() else {
            self.ignore(a, "no device", true);
            return;
        };
        let rest = match t.find(is_ws) {
            Some(i) => t[i..].trim_start_matches(is_ws),
            None => "",
        };
        let rights = rest;
        if !(path.starts_with("block-") || path.starts_with("char-")) {
            let simplified = simplify_path(&path);
            if !path.starts_with('/')
                || !(simplified.starts_with("/dev/") || simplified.starts_with("/sys/"))
            {
                self.ignore(a, format!("invalid device node path {path:?}"), true);
                return;
            }
        }
        if !rights.is_empty() && !rights.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
            self.ignore(a, format!("invalid device rights {rights:?}"), true);
            return;
        }
        let rights = if rights.is_empty() { "rwm" } else { rights };
        self.device_allow.push(format!("{path}:{rights}"));
    }

    fn apply_ip(&mut self, a: &Assignment) {
        let allow = a.key == "IPAddressAllow";
        let v = a.value.as_str();
        if v.is_empty() {
            if allow {
                self.ip_allow.clear();
            } else {
                self.ip_deny.clear();
            }
            return;
        }
        let ws = words(v, false).unwrap_or_default();
        for w in ws {
            let mut add: Vec<Prefix> = Vec::new();
            if w == "any" {
                add.push(Prefix::masked(4, vec![0; 4], 0));
                add.push(Prefix::masked(6, vec![0; 16], 0));
            } else if is_localhost_name(&w) {
                add.push(Prefix::masked(4, vec![127, 0, 0, 0], 8));
                let mut one = vec![0; 16];
                one[15] = 1;
                add.push(Prefix::masked(6, one, 128));
            } else if w == "link-local" {
                add.push(Prefix::masked(4, vec![169, 254, 0, 0], 16));
                let mut fe = vec![0; 16];
                fe[0] = 0xfe;
                fe[1] = 0x80;
                add.push(Prefix::masked(6, fe, 64));
            } else if w == "multicast" {
                add.push(Prefix::masked(4, vec![224, 0, 0, 0], 4));
                let mut ff = vec![0; 16];
                ff[0] = 0xff;
                add.push(Prefix::masked(6, ff, 8));
            } else if let Some(p) = parse_prefix(&w) {
                add.push(p);
            } else {
                self.ignore(a, format!("invalid address prefix {w:?}"), false);
                continue;
            }
            let set = if allow {
                &mut self.ip_allow
            } else {
                &mut self.ip_deny
            };
            set.extend(add);
        }
    }

    /// `unit_patch_contexts`: settings implied by others.
    fn patch(&mut self) {
        self.cap_bounding_declared = self.cap_bounding;
        if self.flag("PrivateDevices") {
            self.cap_bounding &=
                !(const { cap_mask("CAP_MKNOD") } | const { cap_mask("CAP_SYS_RAWIO") });
        }
        if self.flag("ProtectKernelModules") {
            self.cap_bounding &= !const { cap_mask("CAP_SYS_MODULE") };
        }
        if self.flag("ProtectKernelLogs") {
            self.cap_bounding &= !const { cap_mask("CAP_SYSLOG") };
        }
        if self.flag("ProtectClock") {
            self.cap_bounding &=
                !(const { cap_mask("CAP_SYS_TIME") } | const { cap_mask("CAP_WAKE_ALARM") });
        }
        if self.dynamic_user {
            if self.user.is_none() {
                self.user = Some(user_from_unit_name(&self.name));
            }
            self.set_flag("PrivateTmp", true);
            self.set_flag("RemoveIPC", true);
            self.protect_system = ProtectSystem::Strict;
            if self.protect_home == ProtectHome::No {
                self.protect_home = ProtectHome::ReadOnly;
            }
            self.set_flag("NoNewPrivileges", true);
            self.set_flag("RestrictSUIDSGID", true);
        }
        if self.flag("PrivateDevices") && self.device_policy == "auto" {
            self.device_policy = "closed".into();
        }
        let touches_devices = self.device_policy != "auto" || !self.device_allow.is_empty();
        if (self.root_image.is_some() || self.mount_images) && touches_devices {
            for d in [
                "/dev/loop-control:rw",
                "/dev/mapper/control:rw",
                "block-loop:rwm",
                "block-blkext:rwm",
                "block-device-mapper:rwm",
            ] {
                self.device_allow.push(d.into());
            }
        }
        if self.encrypted_credentials && touches_devices {
            self.device_allow.push("/dev/tpmrm0:rw".into());
        }
        if self.flag("ProtectClock") && touches_devices {
            self.device_allow.push("char-rtc:r".into());
        }
        if self.notify_access.is_empty() {
            self.notify_access = if self.service_type == "notify" {
                "main".into()
            } else {
                "none".into()
            };
        }
    }
}

fn parse_errno(e: &str) -> Option<i32> {
    if e == "kill" {
        return Some(i32::MAX - 1);
    }
    if let Ok(n) = e.parse::<i32>() {
        return (0..=4095).contains(&n).then_some(n);
    }
    ERRNO_NAMES.contains(&e).then_some(1)
}

fn user_from_unit_name(unit: &str) -> String {
    let stem = unit.rsplit_once('.').map(|(s, _)| s).unwrap_or(unit);
    let prefix = stem.split('@').next().unwrap_or(stem);
    if valid_user_strict(prefix) {
        prefix.to_owned()
    } else {
        // systemd hashes the name; only "not root, not nobody" matters here.
        "_du-hashed".to_owned()
    }
}

/// Load the settings of unit `name` from its assignments.
pub fn settings(name: &str, assignments: Vec<Assignment>) -> Settings {
    let mut s = Settings::new(name);
    for a in &assignments {
        s.apply(a);
    }
    s.assignments = assignments;
    s.patch();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(text: &str) -> Settings {
        let (a, _) = crate::unitfile::parse_ini(text, Path::new("t.service"));
        settings("t.service", a)
    }

    #[test]
    fn trailing_comment_drops_a_boolean() {
        let s = load("[Service]\nNoNewPrivileges=yes # x\n");

        assert!(!s.flag("NoNewPrivileges"));
        assert_eq!(s.ignored.len(), 1);
    }

    #[test]
    fn capability_merge_rules() {
        let s = load("[Service]\nCapabilityBoundingSet=CAP_KILL CAP_SYS_ADMIN\nCapabilityBoundingSet=~CAP_SYS_ADMIN\n");

        assert_eq!(s.cap_bounding, 1 << 5);
    }

    #[test]
    fn capability_typo_in_inverted_list_keeps_everything() {
        let s = load("[Service]\nCapabilityBoundingSet=~CAP_SYS_ADMN\n");

        assert_eq!(s.cap_bounding, u64::MAX);
        assert_eq!(s.unknown_caps.len(), 1);
    }

    #[test]
    fn dynamic_user_implies_a_sandbox() {
        let s = load("[Service]\nDynamicUser=yes\n");

        assert_eq!(s.user.as_deref(), Some("t"));
        assert_eq!(s.protect_system, ProtectSystem::Strict);
        assert_eq!(s.protect_home, ProtectHome::ReadOnly);
    }

    #[test]
    fn allow_list_starts_with_default_and_errno_removes() {
        let s = load(
            "[Service]\nSystemCallFilter=@system-service\nSystemCallFilter=~@privileged:EPERM\n",
        );

        let f = s.syscall_filter.unwrap();
        assert!(s.syscall_allow_list);
        assert_eq!(f.get("brk"), Some(-1));
        assert!(f.get("setuid").is_some_and(|e| e >= 0));
    }

    #[test]
    fn localhost_prefix_detection() {
        assert!(parse_prefix("127.0.0.1").unwrap().is_localhost());
        assert!(!parse_prefix("127.0.0.1/0").unwrap().is_localhost());
        assert!(parse_prefix("::1").unwrap().is_localhost());
    }
}
