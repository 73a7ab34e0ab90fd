//! Seeded generator of random service units mixing every directive systemd
//! 252 scores (with trailing comments, typos, resets, `~` lists and
//! continuation lines), for the differential test and the benchmark.

#![allow(dead_code)]

/// splitmix64: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }

    pub fn some<'a>(&mut self, xs: &[&'a str], max: usize) -> Vec<&'a str> {
        let n = 1 + self.below(max);
        (0..n).map(|_| self.pick(xs)).collect()
    }
}

const BOOLS: &[&str] = &[
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
    "DynamicUser",
    "Delegate",
];

const BOOL_VALUES: &[&str] = &[
    "yes", "no", "true", "false", "on", "off", "1", "0", "YES", "True", "y", "t", "n", "f", "",
    "maybe", "yes # on", "true ; x",
];

const CAPS: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SYS_PTRACE",
    "CAP_SYS_TIME",
    "CAP_NET_ADMIN",
    "CAP_SYS_RAWIO",
    "CAP_SYS_MODULE",
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_AUDIT_WRITE",
    "CAP_SYSLOG",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_MKNOD",
    "CAP_CHOWN",
    "CAP_FSETID",
    "CAP_SETFCAP",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_SYS_BOOT",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_IPC_LOCK",
    "CAP_SYS_CHROOT",
    "CAP_BLOCK_SUSPEND",
    "CAP_WAKE_ALARM",
    "CAP_LEASE",
    "CAP_SYS_TTY_CONFIG",
    "CAP_SYS_PACCT",
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_CHECKPOINT_RESTORE",
    "cap_net_raw",
    "CAP_SYS_ADMN",
    "CAP_NET_BIND_SERVIC",
    "#",
    "comment",
];

const FAMILIES: &[&str] = &[
    "AF_INET",
    "AF_INET6",
    "AF_UNIX",
    "AF_LOCAL",
    "AF_NETLINK",
    "AF_ROUTE",
    "AF_PACKET",
    "AF_BLUETOOTH",
    "AF_CAN",
    "AF_VSOCK",
    "AF_XDP",
    "AF_ALG",
    "AF_INTE",
    "af_inet",
    "#",
    "comment",
];

const SYSCALL_WORDS: &[&str] = &[
    "@system-service",
    "@privileged",
    "@resources",
    "@clock",
    "@swap",
    "@obsolete",
    "@cpu-emulation",
    "@debug",
    "@mount",
    "@module",
    "@raw-io",
    "@reboot",
    "@default",
    "@basic-io",
    "@file-system",
    "@io-event",
    "@ipc",
    "@network-io",
    "@process",
    "@signal",
    "@timer",
    "@setuid",
    "@chown",
    "@known",
    "@aio",
    "@sync",
    "@memlock",
    "@pkey",
    "@keyring",
    "@bogus",
    "mount",
    "umount2",
    "swapon",
    "swapoff",
    "reboot",
    "kexec_load",
    "ptrace",
    "init_module",
    "delete_module",
    "ioperm",
    "iopl",
    "clock_settime",
    "settimeofday",
    "adjtimex",
    "setrlimit",
    "sched_setattr",
    "personality",
    "uselib",
    "setuid",
    "chown",
    "read",
    "write",
    "bogus_call",
    "#",
    "comment",
];

const ERRNOS: &[&str] = &["EPERM", "EACCES", "ENOSYS", "kill", "1", "EFOO"];

const NAMESPACES: &[&str] = &["user", "mnt", "ipc", "pid", "cgroup", "net", "uts", "usr"];

const IPS: &[&str] = &[
    "any",
    "localhost",
    "link-local",
    "multicast",
    "127.0.0.1",
    "127.0.0.0/8",
    "::1",
    "::1/128",
    "0.0.0.0/0",
    "::/0",
    "10.0.0.0/8",
    "192.168.1.1",
    "fe80::/64",
    "2001:db8::/32",
    "127.0.0.1/0",
    "300.1.1.1",
    "#",
];

const COMMENTS: &[&str] = &[" # comment", " ; note", " #", "  # hardening"];

fn maybe_comment(r: &mut Rng, v: String) -> String {
    if r.chance(12) {
        format!("{v}{}", r.pick(COMMENTS))
    } else {
        v
    }
}

fn mc(r: &mut Rng, xs: &[&str]) -> String {
    let v = r.pick(xs).to_owned();
    maybe_comment(r, v)
}

fn cap_list(r: &mut Rng) -> String {
    let mut v = String::new();
    if r.chance(35) {
        v.push('~');
    }
    if r.chance(10) {
        return v;
    }
    v.push_str(&r.some(CAPS, 5).join(" "));
    v
}

fn syscall_list(r: &mut Rng) -> String {
    let mut v = String::new();
    let invert = r.chance(45);
    if invert {
        v.push('~');
    }
    let n = 1 + r.below(5);
    let mut ws = Vec::new();
    for _ in 0..n {
        let mut w = r.pick(SYSCALL_WORDS).to_owned();
        if invert && r.chance(20) {
            w = format!("{w}:{}", r.pick(ERRNOS));
        }
        ws.push(w);
    }
    // Multi-line lists through continuation, sometimes with a comment line.
    if ws.len() > 2 && r.chance(30) {
        let mid = ws.len() / 2;
        let tail = ws.split_off(mid);
        let sep = if r.chance(30) {
            " \\\n# continued\n    "
        } else {
            " \\\n    "
        };
        v.push_str(&ws.join(" "));
        v.push_str(sep);
        v.push_str(&tail.join(" "));
    } else {
        v.push_str(&ws.join(" "));
    }
    v
}

/// One random `[Service]`/`[Unit]` body (without the section headers).
pub struct Unit {
    pub unit_lines: Vec<String>,
    pub service_lines: Vec<String>,
    pub dropin_lines: Vec<String>,
}

fn directive(r: &mut Rng) -> (bool, String) {
    let k = r.below(30);
    let line = match k {
        0..=5 => {
            let b = r.pick(BOOLS);
            if b == "DynamicUser" {
                // An unparsable DynamicUser= makes the unit fail to load.
                format!("{b}={}", r.pick(&["yes", "no", "true", "off", "1"]))
            } else {
                format!("{b}={}", r.pick(BOOL_VALUES))
            }
        }
        6 => format!(
            "User={}",
            r.pick(&[
                "app1",
                "root",
                "0",
                "nobody",
                "65534",
                "app1 # me",
                "",
                "_svc",
                "0x0",
                "1000",
                "root # x",
            ])
        ),
        7 => format!(
            "SupplementaryGroups={}",
            r.pick(&["", "app2", "app2 backup", "wheel # admin", "1000"])
        ),
        8 => format!(
            "ProtectHome={}",
            mc(
                r,
                &[
                    "yes",
                    "no",
                    "read-only",
                    "tmpfs",
                    "Read-Only",
                    "",
                    "true",
                    "off"
                ]
            )
        ),
        9 => format!(
            "ProtectSystem={}",
            mc(
                r,
                &["yes", "no", "full", "strict", "FULL", "", "1", "false"]
            )
        ),
        10 => format!(
            "{}={}",
            r.pick(&["RootDirectory", "RootImage"]),
            r.pick(&["/", "/srv/root", "", "//", "/srv/img.raw # img", "/."])
        ),
        11 => {
            let v = cap_list(r);
            format!("CapabilityBoundingSet={}", maybe_comment(r, v))
        }
        12 => {
            let v = cap_list(r);
            format!("AmbientCapabilities={}", maybe_comment(r, v))
        }
        13 => format!(
            "UMask={}",
            mc(
                r,
                &[
                    "0022", "0027", "0077", "0007", "0002", "022", "0177", "0", "", "8", "0020",
                    "0070"
                ]
            )
        ),
        14 => format!(
            "KeyringMode={}",
            mc(r, &["private", "shared", "inherit", "", "Private"])
        ),
        15 => format!(
            "ProtectProc={}",
            mc(
                r,
                &[
                    "invisible",
                    "ptraceable",
                    "noaccess",
                    "default",
                    "",
                    "hidden"
                ]
            )
        ),
        16 => format!("ProcSubset={}", mc(r, &["pid", "all", "", "PID"])),
        17 => format!(
            "{}={}",
            r.pick(&["NotifyAccess", "Type"]),
            r.pick(&["all", "main", "none", "exec", "notify", "simple", ""])
        ),
        18 => {
            let v = if r.chance(30) {
                r.pick(&["yes", "no", "", "true", "off"]).to_owned()
            } else {
                let mut v = String::new();
                if r.chance(40) {
                    v.push('~');
                }
                v.push_str(&r.some(NAMESPACES, 3).join(" "));
                v
            };
            format!("RestrictNamespaces={}", maybe_comment(r, v))
        }
        19 | 20 => {
            let v = if r.chance(10) {
                r.pick(&["none", ""]).to_owned()
            } else {
                let mut v = String::new();
                if r.chance(40) {
                    v.push('~');
                }
                v.push_str(&r.some(FAMILIES, 4).join(" "));
                v
            };
            format!("RestrictAddressFamilies={}", maybe_comment(r, v))
        }
        21 => format!(
            "SystemCallArchitectures={}",
            r.pick(&[
                "native",
                "x86-64",
                "native x86",
                "",
                "bogus",
                "native # n",
                "x86-64 native"
            ])
        ),
        22..=24 => {
            let v = if r.chance(5) {
                String::new()
            } else {
                syscall_list(r)
            };
            format!("SystemCallFilter={v}")
        }
        25 => {
            let v = if r.chance(10) {
                String::new()
            } else {
                r.some(IPS, 3).join(" ")
            };
            format!(
                "{}={v}",
                r.pick(&["IPAddressAllow", "IPAddressDeny", "IPAddressDeny"])
            )
        }
        26 => format!(
            "DevicePolicy={}",
            mc(r, &["closed", "strict", "auto", "", "Closed"])
        ),
        27 => format!(
            "DeviceAllow={}",
            r.pick(&[
                "/dev/null rw",
                "char-rtc r",
                "/dev/zero",
                "block-loop rwm",
                "",
                "/tmp/x r",
                "/dev/null rw # x",
                "/dev/sda xyz",
            ])
        ),
        28 => {
            return (
                true,
                format!(
                    "DefaultDependencies={}",
                    r.pick(&["no", "yes", "false", "no # boot", ""])
                ),
            )
        }
        _ => r
            .pick(&[
                "NoNewPrivilege=yes",
                "ProtectKernelTunable=yes",
                "ReadWritePaths=/home/app1/data # data",
                "Environment=A=1",
                "Restart=on-failure",
                "WorkingDirectory=/home/app1",
                "ProtectHostname=yes",
            ])
            .to_owned(),
    };
    (false, line)
}

/// A random unit.
pub fn unit(r: &mut Rng) -> Unit {
    let mut u = Unit {
        unit_lines: vec!["Description=generated".into()],
        service_lines: vec!["ExecStart=/bin/true".into()],
        dropin_lines: Vec::new(),
    };
    let n = r.below(28);
    for _ in 0..n {
        let (is_unit, line) = directive(r);
        if is_unit {
            u.unit_lines.push(line);
        } else {
            u.service_lines.push(line);
        }
    }
    if r.chance(15) {
        for _ in 0..1 + r.below(5) {
            let (is_unit, line) = directive(r);
            if !is_unit {
                u.dropin_lines.push(line);
            }
        }
    }
    u
}

impl Unit {
    /// The unit file text.
    pub fn text(&self) -> String {
        format!(
            "[Unit]\n{}\n\n[Service]\n{}\n",
            self.unit_lines.join("\n"),
            self.service_lines.join("\n")
        )
    }

    /// The drop-in text, if any.
    pub fn dropin(&self) -> Option<String> {
        (!self.dropin_lines.is_empty())
            .then(|| format!("[Service]\n{}\n", self.dropin_lines.join("\n")))
    }
}

/// Write `count` random units (`rf<N>.service`, drop-ins in `.d/`) into
/// `dir`; returns their paths in order.
pub fn write_units(dir: &std::path::Path, seed: u64, count: usize) -> Vec<std::path::PathBuf> {
    let mut r = Rng::new(seed);
    let mut out = Vec::new();
    for i in 0..count {
        let name = match i {
            0 => "root.service".to_owned(),
            1 => "nobody.service".to_owned(),
            _ => format!("rf{i}.service"),
        };
        let mut u = unit(&mut r);
        // A few fixed edge cases first: DynamicUser deriving root/nobody,
        // implied device lists, custom BPF filters.
        let fixed: &[&str] = match i {
            0 | 1 => &["DynamicUser=yes"],
            2 => &["PrivateDevices=yes", "ProtectClock=yes"],
            3 => &["RootImage=/srv/img.raw", "DevicePolicy=closed"],
            4 => &["IPIngressFilterPath=/sys/fs/bpf/in", "IPAddressDeny=any"],
            5 => &["DynamicUser=yes", "User=root"],
            6 => &[
                "LoadCredentialEncrypted=x:/etc/x.cred",
                "DevicePolicy=strict",
            ],
            _ => &[],
        };
        u.service_lines
            .extend(fixed.iter().map(|l| (*l).to_owned()));
        let path = dir.join(&name);
        std::fs::write(&path, u.text()).unwrap();
        if let Some(d) = u.dropin() {
            let dd = dir.join(format!("{name}.d"));
            std::fs::create_dir_all(&dd).unwrap();
            std::fs::write(dd.join("50-extra.conf"), d).unwrap();
        }
        out.push(path);
    }
    out
}
