//! systemd 252's 81 exposure checks and its overall formula, as
//! `systemd-analyze security --offline=true` computes them. Rows are keyed
//! by `json_field`; see `AUDIT-SCORING.md` for the rules.

use std::sync::OnceLock;

use serde::Serialize;

use crate::model::{bool_index, cap_mask, namespace_bit, ProtectHome, ProtectSystem, Settings};
use crate::syscalls;

/// How a check is assessed.
#[derive(Debug, Clone, Copy)]
enum Rule {
    User,
    SupplementaryGroups,
    /// 0 iff the boolean is on.
    Bool(usize),
    /// 1 iff the boolean is on.
    BoolInverted(usize),
    ProtectHome,
    ProtectSystem,
    RootDirectory,
    /// Badness 1 iff the bounding set keeps any of these bits.
    Caps(u64),
    Umask,
    KeyringMode,
    ProtectProc,
    ProcSubset,
    NotifyAccess,
    RemoveIpc,
    Namespace(u64),
    Family(Family),
    Archs,
    Syscalls(&'static str),
    IpAddress,
    DeviceAllow,
    Ambient,
}

#[derive(Debug, Clone, Copy)]
enum Family {
    Inet,
    Unix,
    Netlink,
    Packet,
    Other,
}

/// One of the 81 checks.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// systemd's id, e.g. `PrivateDevices=`.
    pub id: &'static str,
    /// The JSON key (typo in the NET_BIND_SERVICE row included).
    pub json_field: &'static str,
    /// Weight.
    pub weight: u64,
    /// Range.
    pub range: u64,
    /// N/A with `DefaultDependencies=no`.
    pub dd_only: bool,
    rule: Rule,
}

const fn c(
    id: &'static str,
    json_field: &'static str,
    weight: u64,
    range: u64,
    rule: Rule,
) -> Check {
    Check {
        id,
        json_field,
        weight,
        range,
        dd_only: false,
        rule,
    }
}

const fn dd(check: Check) -> Check {
    Check {
        dd_only: true,
        ..check
    }
}

use Rule::*;

/// The mask of capability names, computed at compile time.
const fn caps(names: &[&str]) -> u64 {
    let mut mask = 0u64;
    let mut i = 0;
    while i < names.len() {
        mask |= cap_mask(names[i]);
        i += 1;
    }
    mask
}

/// The checks in systemd's table order.
pub const CHECKS: &[Check] = &[
    c("User=/DynamicUser=", "UserOrDynamicUser", 2000, 10, User),
    c(
        "SupplementaryGroups=",
        "SupplementaryGroups",
        200,
        1,
        SupplementaryGroups,
    ),
    c(
        "PrivateDevices=",
        "PrivateDevices",
        1000,
        1,
        Bool(bool_index("PrivateDevices")),
    ),
    c(
        "PrivateMounts=",
        "PrivateMounts",
        1000,
        1,
        Bool(bool_index("PrivateMounts")),
    ),
    c(
        "PrivateNetwork=",
        "PrivateNetwork",
        2500,
        1,
        Bool(bool_index("PrivateNetwork")),
    ),
    dd(c(
        "PrivateTmp=",
        "PrivateTmp",
        1000,
        1,
        Bool(bool_index("PrivateTmp")),
    )),
    c(
        "PrivateUsers=",
        "PrivateUsers",
        1000,
        1,
        Bool(bool_index("PrivateUsers")),
    ),
    c(
        "ProtectControlGroups=",
        "ProtectControlGroups",
        1000,
        1,
        Bool(bool_index("ProtectControlGroups")),
    ),
    c(
        "ProtectKernelModules=",
        "ProtectKernelModules",
        1000,
        1,
        Bool(bool_index("ProtectKernelModules")),
    ),
    c(
        "ProtectKernelTunables=",
        "ProtectKernelTunables",
        1000,
        1,
        Bool(bool_index("ProtectKernelTunables")),
    ),
    c(
        "ProtectKernelLogs=",
        "ProtectKernelLogs",
        1000,
        1,
        Bool(bool_index("ProtectKernelLogs")),
    ),
    c(
        "ProtectClock=",
        "ProtectClock",
        1000,
        1,
        Bool(bool_index("ProtectClock")),
    ),
    dd(c("ProtectHome=", "ProtectHome", 1000, 10, ProtectHome)),
    c(
        "ProtectHostname=",
        "ProtectHostname",
        50,
        1,
        Bool(bool_index("ProtectHostname")),
    ),
    dd(c(
        "ProtectSystem=",
        "ProtectSystem",
        1000,
        10,
        ProtectSystem,
    )),
    dd(c(
        "RootDirectory=/RootImage=",
        "RootDirectoryOrRootImage",
        200,
        1,
        RootDirectory,
    )),
    c(
        "LockPersonality=",
        "LockPersonality",
        100,
        1,
        Bool(bool_index("LockPersonality")),
    ),
    c(
        "MemoryDenyWriteExecute=",
        "MemoryDenyWriteExecute",
        100,
        1,
        Bool(bool_index("MemoryDenyWriteExecute")),
    ),
    c(
        "NoNewPrivileges=",
        "NoNewPrivileges",
        1000,
        1,
        Bool(bool_index("NoNewPrivileges")),
    ),
    c(
        "CapabilityBoundingSet=~CAP_SYS_ADMIN",
        "CapabilityBoundingSet_CAP_SYS_ADMIN",
        1500,
        1,
        Caps(caps(&["CAP_SYS_ADMIN"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_SET(UID|GID|PCAP)",
        "CapabilityBoundingSet_CAP_SET_UID_GID_PCAP",
        1500,
        1,
        Caps(caps(&["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_SYS_PTRACE",
        "CapabilityBoundingSet_CAP_SYS_PTRACE",
        1500,
        1,
        Caps(caps(&["CAP_SYS_PTRACE"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_SYS_TIME",
        "CapabilityBoundingSet_CAP_SYS_TIME",
        1000,
        1,
        Caps(caps(&["CAP_SYS_TIME"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_NET_ADMIN",
        "CapabilityBoundingSet_CAP_NET_ADMIN",
        1000,
        1,
        Caps(caps(&["CAP_NET_ADMIN"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_SYS_RAWIO",
        "CapabilityBoundingSet_CAP_SYS_RAWIO",
        1000,
        1,
        Caps(caps(&["CAP_SYS_RAWIO"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_SYS_MODULE",
        "CapabilityBoundingSet_CAP_SYS_MODULE",
        1000,
        1,
        Caps(caps(&["CAP_SYS_MODULE"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_AUDIT_*",
        "CapabilityBoundingSet_CAP_AUDIT",
        500,
        1,
        Caps(caps(&[
            "CAP_AUDIT_CONTROL",
            "CAP_AUDIT_READ",
            "CAP_AUDIT_WRITE",
        ])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_SYSLOG",
        "CapabilityBoundingSet_CAP_SYSLOG",
        500,
        1,
        Caps(caps(&["CAP_SYSLOG"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_SYS_(NICE|RESOURCE)",
        "CapabilityBoundingSet_CAP_SYS_NICE_RESOURCE",
        500,
        1,
        Caps(caps(&["CAP_SYS_NICE", "CAP_SYS_RESOURCE"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_MKNOD",
        "CapabilityBoundingSet_CAP_MKNOD",
        500,
        1,
        Caps(caps(&["CAP_MKNOD"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_(CHOWN|FSETID|SETFCAP)",
        "CapabilityBoundingSet_CAP_CHOWN_FSETID_SETFCAP",
        1000,
        1,
        Caps(caps(&["CAP_CHOWN", "CAP_FSETID", "CAP_SETFCAP"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_(DAC_*|FOWNER|IPC_OWNER)",
        "CapabilityBoundingSet_CAP_DAC_FOWNER_IPC_OWNER",
        1000,
        1,
        Caps(caps(&[
            "CAP_DAC_OVERRIDE",
            "CAP_DAC_READ_SEARCH",
            "CAP_FOWNER",
            "CAP_IPC_OWNER",
        ])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_KILL",
        "CapabilityBoundingSet_CAP_KILL",
        500,
        1,
        Caps(caps(&["CAP_KILL"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)",
        "CapabilityBoundingSet_CAP_NET_BIND_SERVICE_BROADCAST_RAW)",
        500,
        1,
        Caps(caps(&[
            "CAP_NET_BIND_SERVICE",
            "CAP_NET_BROADCAST",
            "CAP_NET_RAW",
        ])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_SYS_BOOT",
        "CapabilityBoundingSet_CAP_SYS_BOOT",
        100,
        1,
        Caps(caps(&["CAP_SYS_BOOT"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_MAC_*",
        "CapabilityBoundingSet_CAP_MAC",
        100,
        1,
        Caps(caps(&["CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_LINUX_IMMUTABLE",
        "CapabilityBoundingSet_CAP_LINUX_IMMUTABLE",
        75,
        1,
        Caps(caps(&["CAP_LINUX_IMMUTABLE"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_IPC_LOCK",
        "CapabilityBoundingSet_CAP_IPC_LOCK",
        50,
        1,
        Caps(caps(&["CAP_IPC_LOCK"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_SYS_CHROOT",
        "CapabilityBoundingSet_CAP_SYS_CHROOT",
        50,
        1,
        Caps(caps(&["CAP_SYS_CHROOT"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_BLOCK_SUSPEND",
        "CapabilityBoundingSet_CAP_BLOCK_SUSPEND",
        25,
        1,
        Caps(caps(&["CAP_BLOCK_SUSPEND"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_WAKE_ALARM",
        "CapabilityBoundingSet_CAP_WAKE_ALARM",
        25,
        1,
        Caps(caps(&["CAP_WAKE_ALARM"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_LEASE",
        "CapabilityBoundingSet_CAP_LEASE",
        25,
        1,
        Caps(caps(&["CAP_LEASE"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_SYS_TTY_CONFIG",
        "CapabilityBoundingSet_CAP_SYS_TTY_CONFIG",
        25,
        1,
        Caps(caps(&["CAP_SYS_TTY_CONFIG"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_SYS_PACCT",
        "CapabilityBoundingSet_CAP_SYS_PACCT",
        25,
        1,
        Caps(caps(&["CAP_SYS_PACCT"])),
    ),
    c(
        "CapabilityBoundingSet=~CAP_BPF",
        "CapabilityBoundingSet_CAP_BPF",
        25,
        1,
        Caps(caps(&["CAP_BPF"])),
    ),
    c("UMask=", "UMask", 100, 10, Umask),
    c("KeyringMode=", "KeyringMode", 1000, 1, KeyringMode),
    c("ProtectProc=", "ProtectProc", 1000, 3, ProtectProc),
    c("ProcSubset=", "ProcSubset", 10, 1, ProcSubset),
    c("NotifyAccess=", "NotifyAccess", 1000, 1, NotifyAccess),
    c("RemoveIPC=", "RemoveIPC", 100, 1, RemoveIpc),
    c(
        "Delegate=",
        "Delegate",
        100,
        1,
        BoolInverted(bool_index("Delegate")),
    ),
    c(
        "RestrictRealtime=",
        "RestrictRealtime",
        500,
        1,
        Bool(bool_index("RestrictRealtime")),
    ),
    c(
        "RestrictSUIDSGID=",
        "RestrictSUIDSGID",
        1000,
        1,
        Bool(bool_index("RestrictSUIDSGID")),
    ),
    c(
        "RestrictNamespaces=~user",
        "RestrictNamespaces_user",
        1500,
        1,
        Namespace(namespace_bit("user")),
    ),
    c(
        "RestrictNamespaces=~mnt",
        "RestrictNamespaces_mnt",
        500,
        1,
        Namespace(namespace_bit("mnt")),
    ),
    c(
        "RestrictNamespaces=~ipc",
        "RestrictNamespaces_ipc",
        500,
        1,
        Namespace(namespace_bit("ipc")),
    ),
    c(
        "RestrictNamespaces=~pid",
        "RestrictNamespaces_pid",
        500,
        1,
        Namespace(namespace_bit("pid")),
    ),
    c(
        "RestrictNamespaces=~cgroup",
        "RestrictNamespaces_cgroup",
        500,
        1,
        Namespace(namespace_bit("cgroup")),
    ),
    c(
        "RestrictNamespaces=~net",
        "RestrictNamespaces_net",
        500,
        1,
        Namespace(namespace_bit("net")),
    ),
    c(
        "RestrictNamespaces=~uts",
        "RestrictNamespaces_uts",
        100,
        1,
        Namespace(namespace_bit("uts")),
    ),
    c(
        "RestrictAddressFamilies=~AF_(INET|INET6)",
        "RestrictAddressFamilies_AF_INET_INET6",
        1500,
        1,
        Family(Family::Inet),
    ),
    c(
        "RestrictAddressFamilies=~AF_UNIX",
        "RestrictAddressFamilies_AF_UNIX",
        25,
        1,
        Family(Family::Unix),
    ),
    c(
        "RestrictAddressFamilies=~AF_NETLINK",
        "RestrictAddressFamilies_AF_NETLINK",
        200,
        1,
        Family(Family::Netlink),
    ),
    c(
        "RestrictAddressFamilies=~AF_PACKET",
        "RestrictAddressFamilies_AF_PACKET",
        1000,
        1,
        Family(Family::Packet),
    ),
    c(
        "RestrictAddressFamilies=~…",
        "RestrictAddressFamilies_OTHER",
        1250,
        1,
        Family(Family::Other),
    ),
    c(
        "SystemCallArchitectures=",
        "SystemCallArchitectures",
        1000,
        10,
        Archs,
    ),
    c(
        "SystemCallFilter=~@swap",
        "SystemCallFilter_swap",
        1000,
        10,
        Syscalls("@swap"),
    ),
    c(
        "SystemCallFilter=~@obsolete",
        "SystemCallFilter_obsolete",
        250,
        10,
        Syscalls("@obsolete"),
    ),
    c(
        "SystemCallFilter=~@clock",
        "SystemCallFilter_clock",
        1000,
        10,
        Syscalls("@clock"),
    ),
    c(
        "SystemCallFilter=~@cpu-emulation",
        "SystemCallFilter_cpu_emulation",
        250,
        10,
        Syscalls("@cpu-emulation"),
    ),
    c(
        "SystemCallFilter=~@debug",
        "SystemCallFilter_debug",
        1000,
        10,
        Syscalls("@debug"),
    ),
    c(
        "SystemCallFilter=~@mount",
        "SystemCallFilter_mount",
        1000,
        10,
        Syscalls("@mount"),
    ),
    c(
        "SystemCallFilter=~@module",
        "SystemCallFilter_module",
        1000,
        10,
        Syscalls("@module"),
    ),
    c(
        "SystemCallFilter=~@raw-io",
        "SystemCallFilter_raw_io",
        1000,
        10,
        Syscalls("@raw-io"),
    ),
    c(
        "SystemCallFilter=~@reboot",
        "SystemCallFilter_reboot",
        1000,
        10,
        Syscalls("@reboot"),
    ),
    c(
        "SystemCallFilter=~@privileged",
        "SystemCallFilter_privileged",
        700,
        10,
        Syscalls("@privileged"),
    ),
    c(
        "SystemCallFilter=~@resources",
        "SystemCallFilter_resources",
        700,
        10,
        Syscalls("@resources"),
    ),
    c("IPAddressDeny=", "IPAddressDeny", 1000, 10, IpAddress),
    c("DeviceAllow=", "DeviceAllow", 1000, 10, DeviceAllow),
    c(
        "AmbientCapabilities=",
        "AmbientCapabilities",
        500,
        1,
        Ambient,
    ),
];

/// One scored row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// JSON key.
    pub json_field: &'static str,
    /// systemd's id.
    pub name: &'static str,
    /// true: badness 0; false: badness > 0; null: N/A.
    pub set: Option<bool>,
    /// Weight.
    pub weight: u64,
    /// Badness, null when N/A.
    pub badness: Option<u64>,
    /// Range.
    pub range: u64,
    /// The row's share in tenths as systemd prints it (null when 0 or N/A).
    pub exposure: Option<f64>,
}

/// A unit's score.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Score {
    /// 0.0-10.0 as systemd prints it.
    pub exposure: f64,
    /// 0-100.
    pub score: u64,
    /// PERFECT, SAFE, OK, MEDIUM, EXPOSED, UNSAFE or DANGEROUS.
    pub label: &'static str,
    /// Every row.
    pub checks: Vec<Row>,
}

fn privileged(s: &Settings) -> bool {
    match s.user.as_deref() {
        Some("0") | Some("root") => true,
        _ if s.dynamic_user => false,
        u => u.map_or(true, str::is_empty),
    }
}

fn badness(index: usize, check: &Check, s: &Settings, deny_list_empty: bool) -> Option<u64> {
    let b = |x: bool| u64::from(x);
    Some(match check.rule {
        User => {
            let user = s.user.as_deref();
            if user == Some("nobody") {
                9
            } else if (s.dynamic_user && !matches!(user, Some("0") | Some("root")))
                || user.is_some_and(|u| !matches!(u, "0" | "root" | ""))
            {
                0
            } else {
                10
            }
        }
        SupplementaryGroups => {
            if privileged(s) {
                return None;
            }
            b(!s.supplementary_groups.is_empty())
        }
        Bool(i) => b(!s.flag_at(i)),
        BoolInverted(i) => b(s.flag_at(i)),
        ProtectHome => match s.protect_home {
            ProtectHome::Yes => 0,
            ProtectHome::Tmpfs => 1,
            ProtectHome::ReadOnly => 5,
            ProtectHome::No => 10,
        },
        ProtectSystem => match s.protect_system {
            ProtectSystem::Strict => 0,
            ProtectSystem::Full => 3,
            ProtectSystem::Yes => 5,
            ProtectSystem::No => 10,
        },
        RootDirectory => {
            let root = |p: &Option<String>| p.as_deref().map_or(true, |p| p.is_empty() || p == "/");
            b(root(&s.root_directory) && root(&s.root_image))
        }
        Caps(mask) => b(s.cap_bounding & mask != 0),
        Umask => {
            let m = s.umask;
            if m & 0o002 == 0 {
                10
            } else if m & 0o004 == 0 {
                5
            } else if m & 0o020 == 0 {
                2
            } else if m & 0o040 == 0 {
                1
            } else {
                0
            }
        }
        KeyringMode => b(s.keyring_mode != "private"),
        ProtectProc => match s.protect_proc {
            "noaccess" => 1,
            "invisible" | "ptraceable" => 0,
            _ => 3,
        },
        ProcSubset => b(s.proc_subset != "pid"),
        NotifyAccess => b(s.notify_access == "all"),
        RemoveIpc => {
            if privileged(s) {
                return None;
            }
            b(!s.flag("RemoveIPC"))
        }
        Namespace(bit) => b(s.restrict_namespaces & bit != 0),
        Family(f) => b(!family_restricted(s, f)),
        Archs => {
            // ARCHS[0] is `native`.
            if s.syscall_archs == 0 {
                10
            } else if s.syscall_archs == 1 {
                0
            } else {
                8
            }
        }
        Syscalls(_) => syscall_badness(s, group_bits()[index], deny_list_empty),
        IpAddress => {
            if !s.ip_ingress.is_empty() || !s.ip_egress.is_empty() {
                0
            } else {
                let deny4 = s.ip_deny.iter().any(|p| p.v == 4 && p.len == 0);
                let deny6 = s.ip_deny.iter().any(|p| p.v == 6 && p.len == 0);
                if !(deny4 && deny6) {
                    10
                } else if s.ip_allow.iter().any(|p| !p.is_localhost()) {
                    5
                } else if s.ip_allow.iter().any(|p| p.is_localhost()) {
                    2
                } else {
                    0
                }
            }
        }
        DeviceAllow => {
            if matches!(s.device_policy, "strict" | "closed") {
                if s.device_allow.is_empty() {
                    0
                } else {
                    5
                }
            } else {
                10
            }
        }
        Ambient => b(s.cap_ambient != 0),
    })
}

fn family_restricted(s: &Settings, f: Family) -> bool {
    let allow = s.af_allow_list;
    let mut flags = [allow; 5];
    if let Some(set) = s.af_set {
        for af in (1..64).filter(|af| set & (1u64 << af) != 0) {
            let idx = match af {
                2 | 10 => 0,
                1 => 1,
                16 => 2,
                17 => 3,
                _ => 4,
            };
            flags[idx] = !allow;
        }
    }
    flags[f as usize]
}

/// Whether a deny-list filter lists anything at all (computed once per
/// unit: it does not depend on the group).
fn deny_list_empty(s: &Settings) -> bool {
    !s.syscall_allow_list && s.syscall_filter.as_ref().is_some_and(|f| f.is_empty())
}

/// The natively resolvable members of each check's group, as bit sets,
/// in [`CHECKS`] order (empty for checks of other kinds); looked up once.
fn group_bits() -> &'static [&'static [u64]] {
    static BITS: OnceLock<Vec<&'static [u64]>> = OnceLock::new();
    BITS.get_or_init(|| {
        CHECKS
            .iter()
            .map(|c| match c.rule {
                Syscalls(g) => syscalls::tables().resolvable_bits(g),
                _ => &[],
            })
            .collect()
    })
}

fn syscall_badness(s: &Settings, members: &[u64], deny_list_empty: bool) -> u64 {
    let allow_list = s.syscall_allow_list;
    let Some(filter) = &s.syscall_filter else {
        return 10;
    };
    if deny_list_empty {
        return 10;
    }
    // An allow-list is bad when it allows a member (offline, errno-tagged
    // entries count as not allowed); a deny-list when it misses one.
    let bad = if allow_list {
        filter.any_plain(members)
    } else {
        !filter.all_listed(members)
    };
    match (allow_list, bad) {
        (true, true) => 9,
        (true, false) => 0,
        (false, true) => 10,
        (false, false) => 0,
    }
}

/// The label systemd prints for an exposure of 0-100.
pub fn label(score: u64) -> &'static str {
    const T: &[(u64, &str)] = &[
        (100, "DANGEROUS"),
        (90, "UNSAFE"),
        (75, "EXPOSED"),
        (50, "MEDIUM"),
        (10, "OK"),
        (1, "SAFE"),
        (0, "PERFECT"),
    ];
    T.iter()
        .find(|(b, _)| score >= *b)
        .map(|(_, n)| *n)
        .unwrap_or("PERFECT")
}

/// Per check, what a badness of 0 to 10 adds to the sum (`badness *
/// weight / range`, rounded up, as systemd does), computed at compile time
/// so that scoring divides nothing.
const CONTRIBUTION: [[u64; 11]; CHECKS.len()] = {
    let mut t = [[0u64; 11]; CHECKS.len()];
    let mut i = 0;
    while i < CHECKS.len() {
        let mut b = 0;
        while b < 11 {
            t[i][b] = (b as u64 * CHECKS[i].weight).div_ceil(CHECKS[i].range);
            b += 1;
        }
        i += 1;
    }
    t
};

/// Every check's badness (None: N/A), in [`CHECKS`] order, and the sum of
/// the weights that count (at least 1).
fn assess(s: &Settings) -> ([Option<u64>; CHECKS.len()], u64, u64) {
    let mut bad = [None; CHECKS.len()];
    let (mut badness_sum, mut weight_sum) = (0u64, 0u64);
    let empty_deny_list = deny_list_empty(s);
    for (i, (slot, check)) in bad.iter_mut().zip(CHECKS).enumerate() {
        *slot = if check.dd_only && !s.default_dependencies {
            None
        } else {
            badness(i, check, s, empty_deny_list)
        };
        if let Some(b) = *slot {
            badness_sum += match CONTRIBUTION[i].get(b as usize) {
                Some(&c) => c,
                None => (b * check.weight).div_ceil(check.range),
            };
            weight_sum += check.weight;
        }
    }
    let weight_sum = weight_sum.max(1);
    (bad, (badness_sum * 100).div_ceil(weight_sum), weight_sum)
}

/// Score a unit the way systemd 252's offline mode does.
pub fn score(s: &Settings) -> Score {
    let (bad, score, weight_sum) = assess(s);
    let checks = CHECKS
        .iter()
        .zip(bad)
        .map(|(check, bad)| {
            let exposure = match bad {
                Some(b) if b > 0 => {
                    let x = (b * check.weight * 100)
                        .div_ceil(check.range)
                        .div_ceil(weight_sum);
                    Some(x as f64 / 10.0)
                }
                _ => None,
            };
            Row {
                json_field: check.json_field,
                name: check.id,
                set: bad.map(|b| b == 0),
                weight: check.weight,
                badness: bad,
                range: check.range,
                exposure,
            }
        })
        .collect();
    Score {
        exposure: score as f64 / 10.0,
        score,
        label: label(score),
        checks,
    }
}

/// The overall score (0-100) and the failing checks (badness above 0) as
/// a mask of [`CHECKS`] indexes, without building the rows: the same
/// computation as [`score`], for `--format scores`.
pub fn summary(s: &Settings) -> (u64, u128) {
    let (bad, score, _) = assess(s);
    let failing = bad
        .iter()
        .enumerate()
        .filter(|(_, b)| b.is_some_and(|b| b > 0))
        .fold(0u128, |m, (i, _)| m | (1u128 << i));
    (score, failing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eighty_one_checks_with_systemds_total_weight() {
        assert_eq!(CHECKS.len(), 81);
        assert_eq!(CHECKS.iter().map(|c| c.weight).sum::<u64>(), 56460);
    }

    #[test]
    fn capability_rows_name_real_capabilities() {
        for check in CHECKS {
            if let Caps(mask) = check.rule {
                let names = check.id.matches("CAP_").count().max(1) as u32;
                assert!(mask.count_ones() >= names, "{}", check.id);
            }
        }
    }

    #[test]
    fn summary_agrees_with_the_rows() {
        let (a, _) = crate::unitfile::parse_ini(
            "[Service]\nUser=app\nPrivateTmp=yes\nSystemCallFilter=~@mount\n",
            std::path::Path::new("t.service"),
        );
        let s = crate::model::settings("t.service", std::path::Path::new("t.service"), a);

        let full = score(&s);
        let (sc, failing) = summary(&s);

        assert_eq!(sc, full.score);
        for (i, row) in full.checks.iter().enumerate() {
            let bit = failing & (1u128 << i) != 0;
            assert_eq!(
                bit,
                row.badness.is_some_and(|b| b > 0),
                "{}",
                row.json_field
            );
        }
    }

    #[test]
    fn labels_follow_the_bounds() {
        assert_eq!(label(0), "PERFECT");
        assert_eq!(label(9), "SAFE");
        assert_eq!(label(11), "OK");
        assert_eq!(label(74), "MEDIUM");
        assert_eq!(label(100), "DANGEROUS");
    }

    #[test]
    fn empty_unit_scores_like_systemd() {
        let s = crate::model::settings("x.service", std::path::Path::new("x.service"), Vec::new());

        let sc = score(&s);

        assert_eq!(sc.score, 96);
        assert_eq!(sc.label, "UNSAFE");
    }
}
