//! From assignments to the settings systemd 252 scores: each directive is
//! parsed with the semantics of systemd's own parser (scalar failures drop
//! the line, lists go word by word, capability merge rules, empty resets,
//! `~` inversion), then the implied settings of `unit_patch_contexts` apply.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;
use std::sync::OnceLock;

use crate::specifier::PATH_MAX_LEN;
use crate::unitfile::{is_ws, Assignment, Line, LONG_LINE_MAX};
use crate::{specifier, syscalls};

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
/// number 0-63 as systemd's `safe_atoi()` reads it (`0x15`, `025`, `0o25`,
/// `0b10101`, ` 21`, `+21`).
pub fn cap_from_name(name: &str) -> Option<u32> {
    if let Some(n) = c_number(name) {
        return u32::try_from(n).ok().filter(|n| *n < 64);
    }
    static TABLE: OnceLock<UpperTable<u32>> = OnceLock::new();
    let table = TABLE.get_or_init(|| upper_table(CAPS.iter().zip(0u32..).map(|(n, i)| (*n, i))));
    lookup_upper(table, name)
}

/// A name table keyed by upper-case names, for [`lookup_upper`].
type UpperTable<T> = HashMap<Vec<u8>, T, foldhash::fast::RandomState>;

fn upper_table<T>(entries: impl Iterator<Item = (&'static str, T)>) -> UpperTable<T> {
    entries
        .map(|(n, x)| (n.to_ascii_uppercase().into_bytes(), x))
        .collect()
}

/// Case-insensitive lookup in an [`upper_table`]: the name is upper-cased
/// on the stack, then looked up.
fn lookup_upper<T: Copy>(table: &UpperTable<T>, name: &str) -> Option<T> {
    let mut buf = [0u8; 32];
    let up = buf.get_mut(..name.len())?;
    up.copy_from_slice(name.as_bytes());
    up.make_ascii_uppercase();
    table.get(&*up).copied()
}

/// A number as systemd's `safe_atoi()`/`safe_atou()` read it: leading
/// whitespace skipped, `0b`/`0o` prefixes for binary and octal, then
/// `strtol()` with base 0 (an optional sign, `0x` for hex, a leading `0`
/// for octal); nothing may follow the digits.
pub fn c_number(s: &str) -> Option<i128> {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r']);
    let (base, s) = match s.get(..2) {
        Some("0b" | "0B") => (2, &s[2..]),
        Some("0o" | "0O") => (8, &s[2..]),
        _ => (0, s),
    };
    // strtol() itself skips isspace() too.
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let hex_digits = |t: &str| t.bytes().next().is_some_and(|b| b.is_ascii_hexdigit());
    let (radix, digits) = match (base, s.get(..2)) {
        (0, Some("0x" | "0X")) if hex_digits(&s[2..]) => (16, &s[2..]),
        (0, _) if s.len() > 1 && s.starts_with('0') => (8, &s[1..]),
        (0, _) => (10, s),
        (b, _) => (b, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    // Long enough for any value systemd accepts; longer is out of range.
    let n = i128::from_str_radix(digits.get(..digits.len().min(30))?, radix).ok()?;
    Some(if neg { -n } else { n })
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
    static TABLE: OnceLock<UpperTable<i32>> = OnceLock::new();
    let table = TABLE.get_or_init(|| upper_table(ADDRESS_FAMILIES.iter().copied()));
    lookup_upper(table, name)
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
    // No check of its own, but a namespace type systemd 252 knows.
    ("time", 128),
];
const NS_ALL: u64 = 255;
const NS_INITIAL: u64 = u64::MAX;

/// Architectures `SystemCallArchitectures=` accepts (`native` first).
pub const ARCHS: &[&str] = &[
    "native",
    "x86",
    "x86-64",
    "x32",
    "arm",
    "arm64",
    "mips",
    "mips64",
    "mips64-n32",
    "mips-le",
    "mips64-le",
    "mips64-le-n32",
    "ppc",
    "ppc64",
    "ppc64-le",
    "s390",
    "s390x",
    "parisc",
    "parisc64",
    "riscv64",
];

/// The errno names systemd 252 knows (every `E*` macro of glibc's
/// `errno.h`, aliases included); matched in any case.
const ERRNO_NAMES: &[&str] = &[
    "E2BIG",
    "EACCES",
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "EADV",
    "EAFNOSUPPORT",
    "EAGAIN",
    "EALREADY",
    "EBADE",
    "EBADF",
    "EBADFD",
    "EBADMSG",
    "EBADR",
    "EBADRQC",
    "EBADSLT",
    "EBFONT",
    "EBUSY",
    "ECANCELED",
    "ECHILD",
    "ECHRNG",
    "ECOMM",
    "ECONNABORTED",
    "ECONNREFUSED",
    "ECONNRESET",
    "EDEADLK",
    "EDEADLOCK",
    "EDESTADDRREQ",
    "EDOM",
    "EDOTDOT",
    "EDQUOT",
    "EEXIST",
    "EFAULT",
    "EFBIG",
    "EHOSTDOWN",
    "EHOSTUNREACH",
    "EHWPOISON",
    "EIDRM",
    "EILSEQ",
    "EINPROGRESS",
    "EINTR",
    "EINVAL",
    "EIO",
    "EISCONN",
    "EISDIR",
    "EISNAM",
    "EKEYEXPIRED",
    "EKEYREJECTED",
    "EKEYREVOKED",
    "EL2HLT",
    "EL2NSYNC",
    "EL3HLT",
    "EL3RST",
    "ELIBACC",
    "ELIBBAD",
    "ELIBEXEC",
    "ELIBMAX",
    "ELIBSCN",
    "ELNRNG",
    "ELOOP",
    "EMEDIUMTYPE",
    "EMFILE",
    "EMLINK",
    "EMSGSIZE",
    "EMULTIHOP",
    "ENAMETOOLONG",
    "ENAVAIL",
    "ENETDOWN",
    "ENETRESET",
    "ENETUNREACH",
    "ENFILE",
    "ENOANO",
    "ENOBUFS",
    "ENOCSI",
    "ENODATA",
    "ENODEV",
    "ENOENT",
    "ENOEXEC",
    "ENOKEY",
    "ENOLCK",
    "ENOLINK",
    "ENOMEDIUM",
    "ENOMEM",
    "ENOMSG",
    "ENONET",
    "ENOPKG",
    "ENOPROTOOPT",
    "ENOSPC",
    "ENOSR",
    "ENOSTR",
    "ENOSYS",
    "ENOTBLK",
    "ENOTCONN",
    "ENOTDIR",
    "ENOTEMPTY",
    "ENOTNAM",
    "ENOTRECOVERABLE",
    "ENOTSOCK",
    "ENOTSUP",
    "ENOTTY",
    "ENOTUNIQ",
    "ENXIO",
    "EOPNOTSUPP",
    "EOVERFLOW",
    "EOWNERDEAD",
    "EPERM",
    "EPFNOSUPPORT",
    "EPIPE",
    "EPROTO",
    "EPROTONOSUPPORT",
    "EPROTOTYPE",
    "ERANGE",
    "EREMCHG",
    "EREMOTE",
    "EREMOTEIO",
    "ERESTART",
    "ERFKILL",
    "EROFS",
    "ESHUTDOWN",
    "ESOCKTNOSUPPORT",
    "ESPIPE",
    "ESRCH",
    "ESRMNT",
    "ESTALE",
    "ESTRPIPE",
    "ETIME",
    "ETIMEDOUT",
    "ETOOMANYREFS",
    "ETXTBSY",
    "EUCLEAN",
    "EUNATCH",
    "EUSERS",
    "EWOULDBLOCK",
    "EXDEV",
    "EXFULL",
];

/// A `SystemCallFilter=` set: per interned syscall id, absent or the errno
/// (-1: none) it was listed with. Kept as bit sets over the ids (groups are
/// added and checked a word at a time); the errno values only once some id
/// carries one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallFilter {
    /// Listed ids.
    listed: Vec<u64>,
    /// Listed ids with an errno or action (>= 0), held in `errno`.
    tagged: Vec<u64>,
    /// Per id, the errno of a tagged id (empty until one is tagged).
    errno: Vec<i32>,
}

fn bit(id: u16) -> (usize, u64) {
    (usize::from(id) / 64, 1u64 << (id % 64))
}

impl SyscallFilter {
    fn new() -> Self {
        let words = syscalls::tables().bit_words();
        SyscallFilter {
            listed: vec![0; words],
            tagged: vec![0; words],
            errno: Vec::new(),
        }
    }

    /// The errno `name` is listed with (-1: none), if listed.
    pub fn get(&self, name: &str) -> Option<i32> {
        let id = syscalls::tables().id(name)?;
        self.get_id(id)
    }

    /// Like [`SyscallFilter::get`], by id.
    pub fn get_id(&self, id: u16) -> Option<i32> {
        let (w, b) = bit(id);
        if self.listed.get(w)? & b == 0 {
            None
        } else if self.tagged[w] & b == 0 {
            Some(-1)
        } else {
            self.errno.get(usize::from(id)).copied()
        }
    }

    /// List `ids` (also given as the bit set `bits`) with `num`.
    fn set(&mut self, ids: &[u16], bits: &[u64], num: i32) {
        for (l, b) in self.listed.iter_mut().zip(bits) {
            *l |= b;
        }
        if num < 0 {
            for (t, b) in self.tagged.iter_mut().zip(bits) {
                *t &= !b;
            }
            return;
        }
        for (t, b) in self.tagged.iter_mut().zip(bits) {
            *t |= b;
        }
        if self.errno.is_empty() {
            self.errno = vec![-1; self.listed.len() * 64];
        }
        for &id in ids {
            if let Some(e) = self.errno.get_mut(usize::from(id)) {
                *e = num;
            }
        }
    }

    /// Drop the ids of the bit set `bits`.
    fn remove(&mut self, bits: &[u64]) {
        for ((l, t), b) in self.listed.iter_mut().zip(&mut self.tagged).zip(bits) {
            *l &= !b;
            *t &= !b;
        }
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.listed.iter().all(|w| *w == 0)
    }

    /// Whether any id of the bit set `bits` is listed without an errno.
    pub fn any_plain(&self, bits: &[u64]) -> bool {
        self.listed
            .iter()
            .zip(&self.tagged)
            .zip(bits)
            .any(|((l, t), b)| l & !t & b != 0)
    }

    /// Whether every id of the bit set `bits` is listed.
    pub fn all_listed(&self, bits: &[u64]) -> bool {
        self.listed.iter().zip(bits).all(|(l, b)| b & !l == 0)
    }

    /// Every listed id and its errno.
    pub fn iter(&self) -> impl Iterator<Item = (u16, i32)> + '_ {
        (0..self.listed.len() * 64)
            .filter_map(|i| u16::try_from(i).ok())
            .filter_map(|id| self.get_id(id).map(|e| (id, e)))
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
    /// Address bytes (the first 4 for IPv4).
    pub addr: [u8; 16],
    /// Prefix length.
    pub len: u8,
}

impl Prefix {
    fn masked(v: u8, bytes: &[u8], len: u8) -> Self {
        let mut addr = [0u8; 16];
        addr[..bytes.len()].copy_from_slice(bytes);
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
            self.addr[0] == 127
        } else {
            self.addr[..15].iter().all(|&b| b == 0) && self.addr[15] == 1
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
    pub service_type: &'static str,
    /// What systemd's `service_verify()` looks at (see
    /// [`Settings::load_error`]).
    pub verify: Verify,
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
    pub keyring_mode: &'static str,
    /// `ProtectProc=`.
    pub protect_proc: &'static str,
    /// `ProcSubset=`.
    pub proc_subset: &'static str,
    /// `NotifyAccess=` (none when unset).
    pub notify_access: &'static str,
    /// Allowed namespace bits.
    pub restrict_namespaces: u64,
    /// Whether `RestrictAddressFamilies=` is an allow-list.
    pub af_allow_list: bool,
    /// Families listed (bit `n` for family number `n`), if the directive
    /// is in effect.
    pub af_set: Option<u64>,
    /// `SystemCallArchitectures=`, as a mask of [`ARCHS`] indexes.
    pub syscall_archs: u32,
    /// Whether `SystemCallFilter=` is an allow-list.
    pub syscall_allow_list: bool,
    /// The filter, if one is in effect.
    pub syscall_filter: Option<SyscallFilter>,
    /// `DevicePolicy=`.
    pub device_policy: &'static str,
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
    /// Whether to keep what only the lint reads (`ignored` reasons): on by
    /// default, off for `--format scores`, which needs the score alone.
    pub details: bool,
    /// The unit file (fragment), as opposed to its drop-ins; when unset,
    /// the file of the first line applied.
    pub fragment: Option<Arc<Path>>,
    /// A file systemd stops reading at a setting it cannot take: its lines
    /// after that are not applied.
    stopped: Option<Arc<Path>>,
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

/// Byte-wise string equality, usable in constants.
const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Index of a boolean directive in [`BOOLS`], for constants (a name not
/// in the list fails the build).
#[allow(clippy::panic)] // Only called in constants: the panic is a build error.
pub(crate) const fn bool_index(name: &str) -> usize {
    let mut i = 0;
    while i < BOOLS.len() {
        if const_eq(BOOLS[i], name) {
            return i;
        }
        i += 1;
    }
    panic!("not a boolean directive rip-audit tracks")
}

/// The check bit of a namespace type in [`NAMESPACES`], for constants.
#[allow(clippy::panic)] // Only called in constants: the panic is a build error.
pub(crate) const fn namespace_bit(name: &str) -> u64 {
    let mut i = 0;
    while i < NAMESPACES.len() {
        if const_eq(NAMESPACES[i].0, name) {
            return NAMESPACES[i].1;
        }
        i += 1;
    }
    panic!("not a namespace type")
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

/// The words of a value (see [`words`]).
#[derive(Debug, Clone)]
pub enum Words<'a> {
    /// A value without quotes or escapes: the words are slices of it,
    /// split as they are read (the rest to split).
    Plain(&'a str),
    /// Words unquoted and unescaped up front.
    Parsed(std::vec::IntoIter<Cow<'a, str>>),
}

impl Default for Words<'_> {
    fn default() -> Self {
        Words::Parsed(Vec::new().into_iter())
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Cow<'a, str>> {
        match self {
            Words::Plain(rest) => {
                // WHITESPACE is ASCII: any offset found is a char boundary.
                let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
                let start = rest.bytes().position(|b| !ws(&b))?;
                let len = rest.as_bytes()[start..]
                    .iter()
                    .position(ws)
                    .unwrap_or(rest.len() - start);
                let word = &rest[start..start + len];
                *rest = &rest[start + len..];
                Some(Cow::Borrowed(word))
            }
            Words::Parsed(words) => words.next(),
        }
    }
}

/// Split words like systemd's `extract_first_word` (whitespace separated,
/// optional quote removal and backslash escapes). `Err` on an unbalanced
/// quote.
pub fn words(s: &str, unquote: bool) -> Result<Words<'_>, BadQuoting> {
    // Most values have no quotes or escapes: their words are slices of `s`.
    let plain = !s
        .bytes()
        .any(|b| b == b'\\' || (unquote && (b == b'"' || b == b'\'')));
    if plain {
        return Ok(Words::Plain(s));
    }
    parse_words(s, unquote).map(|w| Words::Parsed(w.into_iter()))
}

/// The slow path of [`words`].
fn parse_words(s: &str, unquote: bool) -> Result<Vec<Cow<'_, str>>, BadQuoting> {
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
                out.push(Cow::Owned(std::mem::take(&mut cur)));
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
        out.push(Cow::Owned(cur));
    }
    Ok(out)
}

/// The words of a value as systemd's `extract_first_word()` gives them,
/// called in a loop with the flags a directive's parser uses: `unquote`
/// (`EXTRACT_UNQUOTE`) removes quotes; a backslash always takes the next
/// character literally. An unbalanced quote or a trailing backslash yields
/// one `Err` and ends the words (systemd's parsers then either stop there,
/// keeping the words before, or drop the line: each directive's choice).
#[derive(Debug, Clone)]
pub struct Extract<'a> {
    /// What is left to split (None once done).
    rest: Option<&'a str>,
    unquote: bool,
}

/// See [`Extract`].
pub fn extract(s: &str, unquote: bool) -> Extract<'_> {
    Extract {
        rest: Some(s),
        unquote,
    }
}

impl<'a> Extract<'a> {
    /// What follows the last word returned, its separators skipped (empty
    /// at the end), as systemd leaves its pointer.
    pub fn remainder(&self) -> &'a str {
        self.rest.unwrap_or_default()
    }
}

impl<'a> Iterator for Extract<'a> {
    type Item = Result<Cow<'a, str>, BadQuoting>;

    fn next(&mut self) -> Option<Self::Item> {
        let ws = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
        let s = self.rest?.trim_start_matches(is_ws);
        let special = |b: u8| b == b'\\' || (self.unquote && (b == b'"' || b == b'\''));
        // The usual word: no escapes or quotes, a slice of the value.
        let end = s
            .bytes()
            .position(|b| ws(b) || special(b))
            .unwrap_or(s.len());
        if s.is_empty() || s.as_bytes().get(end).map_or(true, |b| ws(*b)) {
            let rest = s[end..].trim_start_matches(is_ws);
            self.rest = (!s.is_empty()).then_some(rest);
            return (!s.is_empty()).then_some(Ok(Cow::Borrowed(&s[..end])));
        }
        let mut word = String::from(&s[..end]);
        let (mut quote, mut dangling) = (None, false);
        let mut chars = s[end..].char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some((_, n)) => word.push(n),
                    None => dangling = true,
                }
            } else if let Some(q) = quote {
                if c == q {
                    quote = None;
                } else {
                    word.push(c);
                }
            } else if self.unquote && (c == '"' || c == '\'') {
                quote = Some(c);
            } else if is_ws(c) {
                self.rest = Some(s[end + i..].trim_start_matches(is_ws));
                return Some(Ok(Cow::Owned(word)));
            } else {
                word.push(c);
            }
        }
        // The end: fine unless inside quotes or after a lone backslash.
        self.rest = None;
        Some(if quote.is_some() || dangling {
            Err(BadQuoting)
        } else {
            Ok(Cow::Owned(word))
        })
    }
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
    // No padding, no C0 control or DEL (systemd's string_has_cc()), no
    // `:` or `/`, not all digits, not a dash and digits (`-` alone too).
    if u.starts_with(' ') || u.ends_with(' ') {
        return false;
    }
    if u.bytes().any(|b| b < b' ' || b == 0x7f) || u.contains([':', '/']) {
        return false;
    }
    if u.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if let Some(rest) = u.strip_prefix('-') {
        if rest.bytes().all(|b| b.is_ascii_digit()) {
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

/// systemd's `unit_name_is_valid()` for a plain or instance name (the
/// suffix is checked elsewhere): under 256 bytes, only ASCII letters,
/// digits, `:-_.\` and `@`, not starting with `@`, and something
/// between an `@` and the suffix.
fn valid_unit_name(name: &str) -> bool {
    let Some(dot) = name.rfind('.').filter(|d| *d > 0) else {
        return false;
    };
    let stem = &name.as_bytes()[..dot];
    let ok = |c: &u8| c.is_ascii_alphanumeric() || b":-_.\\@".contains(c);
    let at = stem.iter().position(|c| *c == b'@');
    name.len() < 256 && stem.iter().all(ok) && at != Some(0) && at.map_or(true, |a| a + 1 < dot)
}

/// `p` as systemd's `path_simplify_and_warn()` accepts an absolute path:
/// simplified (no `.`, no repeated or trailing `/`), with no `..` and no
/// component over 255 bytes (`NAME_MAX`). None when it refuses it.
fn absolute_path(p: &str) -> Option<String> {
    let bad = |c: &str| c == ".." || c.len() > 255;
    (p.starts_with('/') && !p.split('/').any(bad)).then(|| simplify_path(p))
}

fn parse_prefix(word: &str) -> Option<Prefix> {
    let (a, len) = match word.split_once('/') {
        // The length as systemd's safe_atou8() reads it (`010` is 8, `0x8`
        // and `+8` are 8, `-0` is 0).
        Some((a, l)) => (a, Some(u8::try_from(c_number(l)?).ok()?)),
        None => (a_or(word), None),
    };
    if let Ok(v4) = a.parse::<Ipv4Addr>() {
        let len = len.unwrap_or(32);
        if len > 32 {
            return None;
        }
        return Some(Prefix::masked(4, &v4.octets(), len));
    }
    if let Ok(v6) = a.parse::<Ipv6Addr>() {
        let len = len.unwrap_or(128);
        if len > 128 {
            return None;
        }
        return Some(Prefix::masked(6, &v6.octets(), len));
    }
    None
}

fn a_or(w: &str) -> &str {
    w
}

/// systemd's is_localhost(): `localhost`, `localhost.localdomain` and
/// names under either, with an optional final dot, in any case.
fn is_localhost_name(w: &str) -> bool {
    let w = w.strip_suffix('.').unwrap_or(w).as_bytes();
    let ends =
        |tail: &[u8]| w.len() >= tail.len() && w[w.len() - tail.len()..].eq_ignore_ascii_case(tail);
    w.eq_ignore_ascii_case(b"localhost")
        || w.eq_ignore_ascii_case(b"localhost.localdomain")
        || ends(b".localhost")
        || ends(b".localhost.localdomain")
}

impl Settings {
    /// A service's settings before any line is applied (systemd's
    /// defaults); feed it with [`Settings::apply`], then call
    /// [`Settings::finish`].
    pub fn new(name: &str) -> Self {
        Settings {
            name: name.to_owned(),
            default_dependencies: true,
            service_type: "simple",
            verify: Verify::default(),
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
            keyring_mode: "private",
            protect_proc: "default",
            proc_subset: "all",
            notify_access: "",
            restrict_namespaces: NS_INITIAL,
            af_allow_list: false,
            af_set: None,
            syscall_archs: 0,
            syscall_allow_list: false,
            syscall_filter: None,
            device_policy: "auto",
            device_allow: Vec::new(),
            ip_allow: BTreeSet::new(),
            ip_deny: BTreeSet::new(),
            ip_ingress: Vec::new(),
            ip_egress: Vec::new(),
            assignments: Vec::new(),
            ignored: Vec::new(),
            fatal: Vec::new(),
            unknown_caps: Vec::new(),
            details: true,
            fragment: None,
            stopped: None,
        }
    }

    /// A boolean setting.
    pub fn flag(&self, name: &str) -> bool {
        bool_slot(name).is_some_and(|i| self.bools[i])
    }

    /// The boolean at a `bool_index`.
    pub fn flag_at(&self, index: usize) -> bool {
        self.bools.get(index).copied().unwrap_or(false)
    }

    fn set_flag(&mut self, name: &str, value: bool) {
        if let Some(i) = bool_slot(name) {
            self.bools[i] = value;
        }
    }

    /// Note a line (or one word of it) systemd ignores. The reason is
    /// formatted only when details are kept (see [`Settings::details`]).
    fn ignore(&mut self, a: &Line<'_>, reason: std::fmt::Arguments<'_>, whole_line: bool) {
        if !self.details {
            return;
        }
        self.ignored.push(Ignored {
            file: a.file.clone(),
            line: a.line,
            key: a.key.to_owned(),
            value: a.value.to_owned(),
            reason: reason.to_string(),
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

    /// `v` with its specifiers expanded as systemd does (see
    /// [`specifier::expand`]), at most `max` bytes; None where systemd
    /// fails the directive: a fatal error of the unit when `fatal`, else an
    /// ignored line.
    fn printf<'v>(
        &mut self,
        a: &Line<'_>,
        v: &'v str,
        max: usize,
        fatal: bool,
    ) -> Option<Cow<'v, str>> {
        use specifier::SpecifierError as E;
        let fragment = self.fragment.get_or_insert_with(|| a.file.clone());
        let e = match specifier::expand(v, &self.name, fragment, max) {
            Ok(x) => return Some(x),
            Err(e) => e,
        };
        if fatal {
            let why = match e {
                E::Unknown(c) | E::Unresolvable(c) => format!("cannot resolve the specifier %{c}"),
                E::TooLong => format!("the value is longer than {max} bytes"),
            };
            let message = format!("{}:{}: {why} in {}={v:?}", a.file.display(), a.line, a.key);
            self.fail(a, message);
        } else {
            self.ignore(a, format_args!("a specifier cannot be resolved"), true);
        }
        None
    }

    /// A setting systemd refuses outright (`-ENOEXEC`): it stops reading
    /// the file there; in the fragment the unit then fails to load, in a
    /// drop-in only the rest of the drop-in is lost.
    fn fail(&mut self, a: &Line<'_>, message: String) {
        self.stopped = Some(a.file.clone());
        if self.fragment.as_deref() == Some(&**a.file) {
            self.fatal.push(message);
        } else {
            self.ignore(
                a,
                format_args!("{message}; systemd ignores the rest of this drop-in"),
                true,
            );
        }
    }

    /// Apply one assignment, as systemd's loader would.
    pub fn apply(&mut self, a: &Line<'_>) {
        if self.fragment.is_none() {
            self.fragment = Some(a.file.clone());
        }
        if let Some(stop) = &self.stopped {
            if Arc::ptr_eq(stop, a.file) || **stop == **a.file {
                return;
            }
        }
        let v = a.value;
        match &**a.section {
            "Service" => {}
            "Unit" if a.key == "SuccessAction" => {
                const ACTIONS: &[&str] = &[
                    "none",
                    "reboot",
                    "reboot-force",
                    "reboot-immediate",
                    "poweroff",
                    "poweroff-force",
                    "poweroff-immediate",
                    "exit",
                    "exit-force",
                ];
                // An empty or unknown value is ignored (the last one stays).
                match ACTIONS.iter().position(|x| *x == v) {
                    Some(i) => self.verify.success_action = i > 0,
                    None => self.ignore(a, format_args!("unknown action"), true),
                }
                return;
            }
            "Unit" if a.key == "DefaultDependencies" => {
                match parse_bool(v) {
                    Some(b) => self.default_dependencies = b,
                    None => self.ignore(a, format_args!("not a boolean"), true),
                }
                return;
            }
            _ => return,
        }
        match a.key {
            "ExecStart" => {
                if v.is_empty() {
                    self.verify.exec_starts = 0;
                } else {
                    // Commands on one line are separated by a lone `;`
                    // (quoting is not looked at).
                    let mut words = v.split_whitespace().peekable();
                    while words.peek().is_some() {
                        let command = words.by_ref().take_while(|w| *w != ";").count();
                        self.verify.exec_starts += usize::from(command > 0);
                    }
                }
            }
            "ExecStop" => self.verify.exec_stop = !v.is_empty(),
            "RemainAfterExit" => match parse_bool(v) {
                Some(b) => self.verify.remain_after_exit = b,
                None => self.ignore(a, format_args!("not a boolean"), true),
            },
            // An empty bus name is ignored.
            "BusName" if !v.is_empty() => self.verify.bus_name = true,
            "Restart" => {
                const R: &[&str] = &[
                    "no",
                    "on-success",
                    "on-failure",
                    "on-abnormal",
                    "on-watchdog",
                    "on-abort",
                    "always",
                ];
                match R.iter().find(|r| **r == v) {
                    Some(r) => {
                        self.verify.restart_on_success = matches!(*r, "always" | "on-success")
                    }
                    None => self.ignore(a, format_args!("unknown restart setting"), true),
                }
            }
            "PAMName" => self.verify.pam = !v.is_empty(),
            "KillMode" => {
                const K: &[&str] = &["control-group", "process", "mixed", "none"];
                match K.iter().find(|k| **k == v) {
                    Some(k) => self.verify.kill_main_only = matches!(*k, "process" | "none"),
                    None => self.ignore(a, format_args!("unknown kill mode"), true),
                }
            }
            "Type" => {
                const T: &[&str] = &[
                    "simple", "exec", "forking", "oneshot", "dbus", "notify", "idle",
                ];
                if let Some(t) = T.iter().find(|t| **t == v) {
                    self.service_type = t;
                    self.verify.type_set = true;
                } else {
                    self.ignore(a, format_args!("unknown service type"), true);
                }
            }
            "User" => {
                let Some(v) = self.printf(a, v, LONG_LINE_MAX, true) else {
                    return;
                };
                if a.value.is_empty() {
                    self.user = None;
                } else if valid_user_relaxed(&v) {
                    self.user = Some(v.into_owned());
                } else {
                    self.fail(
                        a,
                        format!(
                            "{}:{}: invalid user name or numeric ID {v:?}",
                            a.file.display(),
                            a.line
                        ),
                    );
                }
            }
            "Group" => {
                let Some(v) = self.printf(a, v, LONG_LINE_MAX, true) else {
                    return;
                };
                if a.value.is_empty() {
                    self.group = None;
                } else if valid_user_relaxed(&v) {
                    self.group = Some(v.into_owned());
                } else {
                    self.fail(
                        a,
                        format!(
                            "{}:{}: invalid group name or numeric ID {v:?}",
                            a.file.display(),
                            a.line
                        ),
                    );
                }
            }
            "SupplementaryGroups" => {
                if v.is_empty() {
                    self.supplementary_groups.clear();
                    return;
                }
                // Words split without unquoting; bad syntax is fatal.
                for w in extract(v, false) {
                    let Ok(w) = w else {
                        self.fail(
                            a,
                            format!(
                                "{}:{}: invalid syntax in SupplementaryGroups={v:?}",
                                a.file.display(),
                                a.line
                            ),
                        );
                        return;
                    };
                    let Some(w) = self.printf(a, &w, LONG_LINE_MAX, true) else {
                        return;
                    };
                    if valid_user_relaxed(&w) {
                        self.supplementary_groups.push(w.into_owned());
                    } else {
                        self.fail(
                            a,
                            format!(
                                "{}:{}: invalid group name or numeric ID {w:?}",
                                a.file.display(),
                                a.line
                            ),
                        );
                        return;
                    }
                }
            }
            "DynamicUser" => match parse_bool(v) {
                Some(b) => self.dynamic_user = b,
                // Fatal: systemd will not guess whether to run as root.
                None => self.fail(
                    a,
                    format!(
                        "{}:{}: DynamicUser= value {v:?} is not a boolean",
                        a.file.display(),
                        a.line
                    ),
                ),
            },
            "Delegate" => {
                if v.is_empty() {
                    self.set_flag("Delegate", true);
                } else if let Some(b) = parse_bool(v) {
                    self.set_flag("Delegate", b);
                } else {
                    // A controller list: delegation is on whatever the words.
                    self.set_flag("Delegate", true);
                }
            }
            k if bool_slot(k).is_some() => match parse_bool(v) {
                Some(b) => self.set_flag(k, b),
                None => self.ignore(a, format_args!("not a boolean"), true),
            },
            "ProtectHome" => {
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
                    None => self.ignore(a, format_args!("not yes, no, read-only or tmpfs"), true),
                }
            }
            "ProtectSystem" => {
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
                    None => self.ignore(a, format_args!("not yes, no, full or strict"), true),
                }
            }
            "RootDirectory" | "RootImage" => {
                let Some(v) = self.printf(a, v, PATH_MAX_LEN, true) else {
                    return;
                };
                let v = &*v;
                let slot = if a.key == "RootDirectory" {
                    &mut self.root_directory
                } else {
                    &mut self.root_image
                };
                if v.is_empty() {
                    *slot = None;
                } else if let Some(p) = absolute_path(v) {
                    *slot = Some(p);
                } else {
                    self.fail(
                        a,
                        format!(
                            "{}:{}: {}= path {v:?} is not absolute and normalized, \
                             or has a component over 255 bytes",
                            a.file.display(),
                            a.line,
                            a.key
                        ),
                    );
                }
            }
            "MountImages" => self.mount_images = !v.is_empty(),
            "LoadCredentialEncrypted" | "SetCredentialEncrypted" if !v.is_empty() => {
                self.encrypted_credentials = true;
            }
            "CapabilityBoundingSet" | "AmbientCapabilities" => {
                self.apply_caps(a);
            }
            "UMask" => {
                let ok = !v.is_empty() && v.bytes().all(|b| (b'0'..=b'7').contains(&b));
                match u32::from_str_radix(v, 8) {
                    Ok(m) if ok && m <= 0o7777 => self.umask = m,
                    _ => self.ignore(a, format_args!("not an octal mode"), true),
                }
            }
            "KeyringMode" => self.set_enum(a, &["inherit", "private", "shared"], |s| {
                &mut s.keyring_mode
            }),
            "ProtectProc" => self.set_enum(
                a,
                &["default", "noaccess", "invisible", "ptraceable"],
                |s| &mut s.protect_proc,
            ),
            "ProcSubset" => self.set_enum(a, &["all", "pid"], |s| &mut s.proc_subset),
            "NotifyAccess" => self.set_enum(a, &["none", "main", "exec", "all"], |s| {
                &mut s.notify_access
            }),
            "DevicePolicy" => {
                self.set_enum(a, &["auto", "closed", "strict"], |s| &mut s.device_policy)
            }
            "RestrictNamespaces" => self.apply_namespaces(a),
            "RestrictAddressFamilies" => self.apply_families(a),
            "SystemCallArchitectures" => {
                if v.is_empty() {
                    self.syscall_archs = 0;
                    return;
                }
                // Unquoted words; bad quoting ends the list.
                for w in extract(v, true) {
                    let Ok(w) = w else {
                        self.ignore(a, format_args!("invalid quoting"), false);
                        break;
                    };
                    if let Some(i) = ARCHS.iter().position(|x| *x == w) {
                        self.syscall_archs |= 1 << i;
                    } else {
                        self.ignore(a, format_args!("unknown architecture {w:?}"), false);
                    }
                }
            }
            "SystemCallFilter" => self.apply_syscall_filter(a),
            "DeviceAllow" => self.apply_device_allow(a),
            "IPAddressAllow" | "IPAddressDeny" => {
                self.apply_ip(a);
            }
            "IPIngressFilterPath" | "IPEgressFilterPath" => {
                let ingress = a.key == "IPIngressFilterPath";
                if v.is_empty() {
                    if ingress {
                        self.ip_ingress.clear();
                    } else {
                        self.ip_egress.clear();
                    }
                    return;
                }
                let Some(v) = self.printf(a, v, PATH_MAX_LEN, false) else {
                    return;
                };
                let Some(p) = absolute_path(&v) else {
                    self.ignore(a, format_args!("not an absolute, normalized path"), true);
                    return;
                };
                let list = if ingress {
                    &mut self.ip_ingress
                } else {
                    &mut self.ip_egress
                };
                list.push(p);
            }
            _ => {}
        }
    }

    fn set_enum(
        &mut self,
        a: &Line<'_>,
        allowed: &[&'static str],
        slot: impl FnOnce(&mut Settings) -> &mut &'static str,
    ) {
        if let Some(v) = allowed.iter().find(|v| **v == a.value) {
            *slot(self) = v;
        } else if self.details {
            let allowed = allowed.join(", ");
            self.ignore(a, format_args!("not one of {allowed}"), true);
        }
    }

    fn apply_caps(&mut self, a: &Line<'_>) {
        let bounding = a.key == "CapabilityBoundingSet";
        let (invert, rest) = match a.value.strip_prefix('~') {
            Some(r) => (true, r),
            None => (false, a.value),
        };
        // Unquoted words; bad quoting ends the list (the words before
        // count).
        let mut sum = 0u64;
        for w in extract(rest, true) {
            let Ok(w) = w else {
                self.ignore(a, format_args!("invalid quoting"), false);
                break;
            };
            match cap_from_name(&w) {
                Some(b) => sum |= 1u64 << b,
                None if self.details => self.unknown_caps.push((a.to_assignment(), w.into_owned())),
                None => {}
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

    fn apply_namespaces(&mut self, a: &Line<'_>) {
        let v = a.value;
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
        // Words split without unquoting; bad quoting drops the line.
        let mut flags = 0u64;
        for w in extract(rest, false) {
            let Ok(w) = w else {
                self.ignore(a, format_args!("invalid quoting"), true);
                return;
            };
            match NAMESPACES.iter().find(|(n, _)| *n == w) {
                Some((_, bit)) => flags |= bit,
                None => {
                    self.ignore(a, format_args!("unknown namespace type {w:?}"), true);
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

    fn apply_families(&mut self, a: &Line<'_>) {
        let v = a.value;
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
            self.af_set = Some(0);
            self.af_allow_list = !invert;
        }
        // Unquoted words; bad quoting ends the list.
        for w in extract(rest, true) {
            let Ok(w) = w else {
                self.ignore(a, format_args!("invalid quoting"), false);
                break;
            };
            let Some(af) = af_from_name(&w) else {
                self.ignore(a, format_args!("unknown address family {w:?}"), false);
                continue;
            };
            let allow = self.af_allow_list;
            if let Some(set) = self.af_set.as_mut() {
                if invert != allow {
                    *set |= 1u64 << af;
                } else {
                    *set &= !(1u64 << af);
                }
            }
        }
    }

    fn apply_syscall_filter(&mut self, a: &Line<'_>) {
        let t = syscalls::tables();
        let v = a.value;
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
                f.set(
                    t.expand_all_ids("@default"),
                    t.expand_all_bits("@default"),
                    -1,
                );
            }
            self.syscall_filter = Some(f);
        }
        let allow_list = self.syscall_allow_list;
        // Words split without unquoting; bad quoting ends the list.
        for w in extract(rest, false) {
            let Ok(w) = w else {
                self.ignore(a, format_args!("invalid quoting"), false);
                break;
            };
            let colon = w.bytes().position(|b| b == b':');
            let (name, num) = match colon.map(|i| (&w[..i], &w[i + 1..])) {
                Some((n, e)) => match parse_errno(e) {
                    Some(num) => (n, num),
                    None => {
                        self.ignore(a, format_args!("bad errno or action in {w:?}"), false);
                        continue;
                    }
                },
                None => (&*w, -1),
            };
            if name.is_empty() {
                self.ignore(a, format_args!("empty system call name in {w:?}"), false);
                continue;
            }
            if !invert && num >= 0 {
                self.ignore(
                    a,
                    format_args!("allow-listed {w:?} cannot take an errno"),
                    false,
                );
                continue;
            }
            let (one, one_bits);
            let (ids, bits): (&[u16], &[u64]) = if name.starts_with('@') {
                let Some(g) = t.group(name) else {
                    self.ignore(a, format_args!("unknown system call group {name:?}"), false);
                    continue;
                };
                t.group_members(g)
            } else {
                match t.id(name) {
                    Some(id) => {
                        one = [id];
                        one_bits = bits_of_one(id, t.bit_words());
                        (&one, &one_bits)
                    }
                    None => {
                        self.ignore(a, format_args!("unknown system call {name:?}"), false);
                        continue;
                    }
                }
            };
            let put = (invert != allow_list) || (invert && allow_list && num >= 0);
            if let Some(f) = self.syscall_filter.as_mut() {
                if put {
                    f.set(ids, bits, num);
                } else {
                    f.remove(bits);
                }
            }
        }
    }

    fn apply_device_allow(&mut self, a: &Line<'_>) {
        let v = a.value;
        if v.is_empty() {
            self.device_allow.clear();
            return;
        }
        // The first word (unquoted) is the device, what follows it
        // (verbatim) the rights.
        let mut ws = extract(v, true);
        let Some(Ok(path)) = ws.next() else {
            self.ignore(a, format_args!("no device or invalid quoting"), true);
            return;
        };
        let rights = ws.remainder();
        let Some(path) = self.printf(a, &path, PATH_MAX_LEN, false) else {
            return;
        };
        if !(path.starts_with("block-") || path.starts_with("char-")) {
            // systemd's valid_device_node_path(): under /dev or
            // /run/systemd/inaccessible, normalized (no `..`).
            let simplified = absolute_path(&path).unwrap_or_default();
            let under = |d: &str| simplified == d || simplified.starts_with(&format!("{d}/"));
            if !(under("/dev") || under("/run/systemd/inaccessible")) {
                self.ignore(a, format_args!("invalid device node path {path:?}"), true);
                return;
            }
        }
        if !rights.is_empty() && !rights.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
            self.ignore(a, format_args!("invalid device rights {rights:?}"), true);
            return;
        }
        let rights = if rights.is_empty() { "rwm" } else { rights };
        self.device_allow.push(format!("{path}:{rights}"));
    }

    fn apply_ip(&mut self, a: &Line<'_>) {
        let allow = a.key == "IPAddressAllow";
        let v = a.value;
        if v.is_empty() {
            if allow {
                self.ip_allow.clear();
            } else {
                self.ip_deny.clear();
            }
            return;
        }
        // Words split without unquoting; bad quoting ends the list.
        for w in extract(v, false) {
            let Ok(w) = w else {
                self.ignore(a, format_args!("invalid quoting"), false);
                break;
            };
            let mut add: Vec<Prefix> = Vec::new();
            let mut one = [0u8; 16];
            one[15] = 1;
            if w == "any" {
                add.push(Prefix::masked(4, &[0; 4], 0));
                add.push(Prefix::masked(6, &[0; 16], 0));
            } else if is_localhost_name(&w) {
                add.push(Prefix::masked(4, &[127, 0, 0, 0], 8));
                add.push(Prefix::masked(6, &one, 128));
            } else if w == "link-local" {
                add.push(Prefix::masked(4, &[169, 254, 0, 0], 16));
                add.push(Prefix::masked(6, &[0xfe, 0x80], 64));
            } else if w == "multicast" {
                add.push(Prefix::masked(4, &[224, 0, 0, 0], 4));
                add.push(Prefix::masked(6, &[0xff], 8));
            } else if let Some(p) = parse_prefix(&w) {
                add.push(p);
            } else {
                self.ignore(a, format_args!("invalid address prefix {w:?}"), false);
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

    /// After the last line: `unit_patch_contexts`, the settings implied by
    /// others.
    pub fn finish(&mut self) {
        if !valid_unit_name(&specifier::instantiated(&self.name)) {
            self.fatal.push(format!(
                "{:?} is not a valid unit name: systemd-analyze refuses the file",
                self.name
            ));
        }
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
            self.device_policy = "closed";
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
                "main"
            } else {
                "none"
            };
        }
    }
}

/// The settings systemd 252's `service_verify()` checks before it loads a
/// service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verify {
    /// `ExecStart=` commands left (an empty assignment clears the list).
    pub exec_starts: usize,
    /// An `ExecStop=` command is set.
    pub exec_stop: bool,
    /// `SuccessAction=` is not `none`.
    pub success_action: bool,
    /// `RemainAfterExit=yes`.
    pub remain_after_exit: bool,
    /// `BusName=` is set.
    pub bus_name: bool,
    /// `Type=` is set (without it systemd picks `dbus` for a bus name,
    /// `simple` with an `ExecStart=`, else `oneshot`).
    pub type_set: bool,
    /// `Restart=always` or `on-success`.
    pub restart_on_success: bool,
    /// `PAMName=` is set.
    pub pam: bool,
    /// `KillMode=process` or `none` (the default is `control-group`).
    pub kill_main_only: bool,
}

impl Settings {
    /// The service type systemd uses: `Type=`, or the one it picks.
    pub fn effective_type(&self) -> &'static str {
        let v = &self.verify;
        match (v.type_set, v.bus_name, v.exec_starts > 0) {
            (true, _, _) => self.service_type,
            (false, true, _) => "dbus",
            (false, false, true) => "simple",
            (false, false, false) => "oneshot",
        }
    }

    /// Why systemd 252 refuses to load the service (`service_verify()`),
    /// if it does: the first rule it breaks.
    pub fn load_error(&self) -> Option<String> {
        let v = &self.verify;
        let ty = self.effective_type();
        let start = v.exec_starts > 0;
        Some(if !start && !v.exec_stop && !v.success_action {
            "no ExecStart=, ExecStop= or SuccessAction=".to_owned()
        } else if ty != "oneshot" && !start {
            format!("no ExecStart=, which only Type=oneshot may lack (Type={ty})")
        } else if !start && !v.success_action && !v.remain_after_exit {
            "no ExecStart= or SuccessAction=, and RemainAfterExit= is not yes".to_owned()
        } else if ty != "oneshot" && v.exec_starts > 1 {
            format!(
                "{} ExecStart= commands, which only Type=oneshot may have",
                v.exec_starts
            )
        } else if ty == "oneshot" && v.restart_on_success {
            "Restart=always or on-success with Type=oneshot".to_owned()
        } else if ty == "dbus" && !v.bus_name {
            "Type=dbus without BusName=".to_owned()
        } else if v.pam && v.kill_main_only {
            "PAMName= needs KillMode=control-group or mixed".to_owned()
        } else {
            return None;
        })
    }
}

/// The bit set of one id.
fn bits_of_one(id: u16, words: usize) -> Vec<u64> {
    let mut b = vec![0u64; words];
    let (w, m) = bit(id);
    if let Some(x) = b.get_mut(w) {
        *x = m;
    }
    b
}

/// systemd's `seccomp_parse_errno_or_action()`: `kill`, an errno name in
/// any case, or a number 0-4095 as `safe_atoi()` reads it.
fn parse_errno(e: &str) -> Option<i32> {
    if e == "kill" {
        return Some(i32::MAX - 1);
    }
    if ERRNO_NAMES.iter().any(|n| n.eq_ignore_ascii_case(e)) {
        return Some(1);
    }
    c_number(e)
        .filter(|n| (0..=4095).contains(n))
        .and_then(|n| i32::try_from(n).ok())
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

/// Load the settings of unit `name` from its assignments (those of the
/// unit file `fragment` first, then its drop-ins').
pub fn settings(name: &str, fragment: &Path, assignments: Vec<Assignment>) -> Settings {
    let mut s = Settings::new(name);
    s.fragment = Some(Arc::from(fragment));
    for a in &assignments {
        s.apply(&a.as_line());
    }
    s.assignments = assignments;
    s.finish();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(text: &str) -> Settings {
        let (a, _) = crate::unitfile::parse_ini(text, Path::new("t.service"));
        settings("t.service", Path::new("t.service"), a)
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
