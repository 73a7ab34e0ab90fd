//! Integration tests of rip-audit: the real binary against temp roots, and
//! the differential test against systemd 252's own `systemd-analyze`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/gen.rs"]
mod gen;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rip-audit");
const NA: u64 = u64::MAX;

/// A fresh directory for one test, kept after the run for inspection.
fn test_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("rip-audit")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn show(cmd: &str, out: &Output) -> String {
    format!(
        "command: {cmd}\nexit: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn rip_audit(args: &[&str], stdin: &str) -> (i32, Vec<Value>, Output) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The tool may exit before reading (usage errors): a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    let recs = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.code().unwrap_or(-1), recs, out)
}

fn systemd_analyze_or_fail() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("systemd-analyze"))
            .find(|c| c.is_file())
    });
    match found {
        Some(p) => p,
        None => panic!(
            "systemd-analyze is not installed: the differential test needs systemd 252's \
             systemd-analyze (Debian 12 package `systemd`); refusing to pass without it"
        ),
    }
}

/// The rows systemd-analyze gives for each file, in argument order.
fn analyze(dir: &Path, files: &[PathBuf]) -> Vec<Vec<Value>> {
    let tool = systemd_analyze_or_fail();
    let policy = dir.join("EMPTY.json");
    std::fs::write(&policy, "{}").unwrap();
    let mut out = Vec::new();
    for chunk in files.chunks(250) {
        let mut cmd = Command::new(&tool);
        cmd.env("SYSTEMD_ANALYZE_DEBUG", "1")
            .env("SYSTEMD_LOG_LEVEL", "err")
            .arg("security")
            .arg("--offline=true")
            .arg("--json=short")
            .arg(format!("--security-policy={}", policy.display()))
            .args(chunk);
        let res = cmd.output().unwrap();
        let arrays: Vec<Vec<Value>> = String::from_utf8_lossy(&res.stdout)
            .lines()
            .filter(|l| l.starts_with('['))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            arrays.len(),
            chunk.len(),
            "systemd-analyze printed {} arrays for {} units\n{}",
            arrays.len(),
            chunk.len(),
            show("systemd-analyze security --offline=true ...", &res)
        );
        out.extend(arrays);
    }
    out
}

#[derive(Debug, PartialEq)]
struct Row {
    set: Option<bool>,
    weight: u64,
    badness: u64,
    range: u64,
    exposure: Option<String>,
}

fn systemd_rows(rows: &[Value]) -> BTreeMap<String, Row> {
    rows.iter()
        .map(|r| {
            (
                r["json_field"].as_str().unwrap().to_owned(),
                Row {
                    set: r["set"].as_bool(),
                    weight: r["weight"].as_u64().unwrap(),
                    badness: r["badness"].as_u64().unwrap(),
                    range: r["range"].as_u64().unwrap(),
                    exposure: r["exposure"].as_str().map(str::to_owned),
                },
            )
        })
        .collect()
}

fn rip_rows(unit: &Value) -> BTreeMap<String, Row> {
    unit["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["json_field"].as_str().unwrap().to_owned(),
                Row {
                    set: r["set"].as_bool(),
                    weight: r["weight"].as_u64().unwrap(),
                    badness: r["badness"].as_u64().unwrap_or(NA),
                    range: r["range"].as_u64().unwrap(),
                    exposure: r["exposure"].as_f64().map(|x| format!("{x:.1}")),
                },
            )
        })
        .collect()
}

/// systemd's overall formula over its own rows.
fn overall(rows: &BTreeMap<String, Row>) -> u64 {
    let (mut b, mut w) = (0u64, 0u64);
    for r in rows.values() {
        if r.badness != NA {
            b += (r.badness * r.weight).div_ceil(r.range);
            w += r.weight;
        }
    }
    (b * 100).div_ceil(w)
}

/// Compare rip-audit with systemd-analyze on `files`; returns mismatches.
fn differential(dir: &Path, files: &[PathBuf]) -> Vec<String> {
    let expected = analyze(dir, files);
    let mut args: Vec<String> = vec!["--unit".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.push("--fail-on".into());
    args.push("critical".into());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, recs, out) = rip_audit(&argv, "");
    assert!(
        code == 0 || code == 1,
        "{}",
        show("rip-audit --unit ...", &out)
    );
    assert_eq!(recs.len(), files.len(), "{}", show("rip-audit", &out));
    let mut bad = Vec::new();
    for ((file, exp), rec) in files.iter().zip(&expected).zip(&recs) {
        let unit = &rec["rip_audit"]["unit"];
        let want = systemd_rows(exp);
        let got = rip_rows(unit);
        assert_eq!(want.len(), 81, "systemd-analyze gave {} rows", want.len());
        for (field, w) in &want {
            match got.get(field) {
                Some(g) if g == w => {}
                g => bad.push(format!(
                    "{}: {field}: systemd {w:?}, rip-audit {g:?}",
                    file.display()
                )),
            }
        }
        let want_score = overall(&want);
        if unit["score"].as_u64() != Some(want_score) {
            bad.push(format!(
                "{}: overall: systemd {want_score}, rip-audit {}",
                file.display(),
                unit["score"]
            ));
        }
        let shown = format!("{}.{}", want_score / 10, want_score % 10);
        if unit["exposure"].as_f64().map(|x| format!("{x:.1}")) != Some(shown.clone()) {
            bad.push(format!(
                "{}: exposure string {shown} vs {}",
                file.display(),
                unit["exposure"]
            ));
        }
    }
    bad
}

#[test]
fn differential_1200_generated_units_match_systemd_analyze() {
    let dir = test_dir("differential");
    let units = dir.join("units");
    std::fs::create_dir_all(&units).unwrap();
    // RIP_AUDIT_DIFF_SEED / RIP_AUDIT_DIFF_COUNT explore other corpora.
    let seed = std::env::var("RIP_AUDIT_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2520);
    let count = std::env::var("RIP_AUDIT_DIFF_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1200)
        .max(1000);
    let files = gen::write_units(&units, seed, count);

    let bad = differential(&dir, &files);

    assert!(
        bad.is_empty(),
        "{} mismatches with systemd-analyze (units kept in {}):\n{}",
        bad.len(),
        units.display(),
        bad.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn scores_format_equals_the_full_mode_on_generated_units() {
    let dir = test_dir("scores-format");
    let files = gen::write_units(&dir, 0x5c0f_e5ed, 1200);
    let paths: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    let mut full_args = vec!["--observe=no", "--unit"];
    full_args.extend(&paths);
    let mut lean_args = vec!["--format", "scores", "--unit"];
    lean_args.extend(&paths);

    let (_, full, out) = rip_audit(&full_args, "");
    assert_eq!(
        full.len(),
        files.len(),
        "{}",
        show("rip-audit --unit", &out)
    );
    let (code, lean, out) = rip_audit(&lean_args, "");

    assert_eq!(code, 0, "{}", show("rip-audit --format scores", &out));
    assert_eq!(
        lean.len(),
        files.len(),
        "{}",
        show("rip-audit --format scores", &out)
    );
    for (f, l) in full.iter().zip(&lean) {
        let u = &f["rip_audit"]["unit"];
        let expected = serde_json::json!({
            "unit": u["name"], "path": u["path"], "loaded": u["loaded"],
            "score": u["score"], "exposure": u["exposure"], "label": u["label"],
        });
        assert_eq!(l, &expected);
    }
    // --threshold sets exit 1 exactly when a score is above it.
    let max = lean
        .iter()
        .map(|l| l["score"].as_u64().unwrap())
        .max()
        .unwrap();
    let (at, _, _) = rip_audit(
        &[&["--threshold", &max.to_string()], &lean_args[..]].concat(),
        "",
    );
    let below = (max - 1).to_string();
    let (under, _, _) = rip_audit(
        &[&["--threshold", below.as_str()], &lean_args[..]].concat(),
        "",
    );
    assert_eq!((at, under), (0, 1));
}

// ---------------------------------------------------------------------
// Temp-root fixtures: one failing and one passing case per finding.
// ---------------------------------------------------------------------

const APPS: &str = r#"[
 {"name":"app1","runtime":"go","listen":[{"port":80}],"backups":{"enabled":true}},
 {"name":"app2","runtime":"rust","listen":[{"port":8080}],"backups":{"enabled":true}},
 {"name":"app3","runtime":"go","listen":[{"port":8081}]}
]"#;

fn good_unit(app: &str, ambient: bool) -> String {
    let caps = if ambient {
        "AmbientCapabilities=CAP_NET_BIND_SERVICE\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n"
    } else {
        "CapabilityBoundingSet=\n"
    };
    format!(
        "[Unit]\nDescription={app}\n\n[Service]\nUser={app}\nGroup={app}\n\
         WorkingDirectory=/home/{app}\nExecStart=/home/{app}/bin/{app}\n{caps}\
         NoNewPrivileges=yes\nProtectSystem=strict\nProtectHome=tmpfs\n\
         BindPaths=/home/{app}\nReadWritePaths=/home/{app}/data\nPrivateTmp=yes\n\
         PrivateDevices=yes\nProtectKernelTunables=yes\nProtectKernelModules=yes\n\
         ProtectKernelLogs=yes\nProtectControlGroups=yes\nProtectClock=yes\n\
         ProtectHostname=yes\nProtectProc=invisible\nProcSubset=pid\n\
         RestrictNamespaces=yes\nRestrictRealtime=yes\nRestrictSUIDSGID=yes\n\
         LockPersonality=yes\nMemoryDenyWriteExecute=yes\nUMask=0027\n\
         RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n\
         SystemCallArchitectures=native\nSystemCallFilter=@system-service\n\
         SystemCallFilter=~@privileged @resources\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

struct Fx {
    root: PathBuf,
}

impl Fx {
    /// A root with the demo fleet laid out as the policy wants it.
    fn good(name: &str) -> Fx {
        let root = test_dir(name).join("root");
        let fx = Fx { root };
        fx.write("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\napp1:x:60001:60001::/home/app1:/bin/bash\napp2:x:60002:60002::/home/app2:/bin/bash\napp3:x:60003:60003::/home/app3:/bin/bash\nbackup:x:60010:60010::/var/backups:/usr/sbin/nologin\n", 0o644, 0, 0);
        fx.groups("backup", "backup");
        for (app, uid, backups) in [
            ("app1", 60001, true),
            ("app2", 60002, true),
            ("app3", 60003, false),
        ] {
            let h = format!("/home/{app}");
            fx.dir(&h, if backups { 0o710 } else { 0o700 }, uid);
            fx.dir(&format!("{h}/bin"), 0o700, uid);
            fx.dir(
                &format!("{h}/data"),
                if backups { 0o710 } else { 0o700 },
                uid,
            );
            fx.write(&format!("{h}/bin/{app}"), "#!/bin/true\n", 0o700, uid, uid);
            fx.write(&format!("{h}/data/app.db"), "db", 0o600, uid, uid);
            fx.write(&format!("{h}/age.key"), "key", 0o600, uid, uid);
            if backups {
                fx.dir(&format!("{h}/data/backups"), 0o2750, uid);
                fx.write(
                    &format!("{h}/data/backups/snap-1.db"),
                    "snap",
                    0o640,
                    uid,
                    uid,
                );
            }
            fx.write(
                &format!("/etc/systemd/system/{app}.service"),
                &good_unit(app, app == "app1"),
                0o644,
                0,
                0,
            );
        }
        fx
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    fn groups(&self, backup_in: &str, _unused: &str) {
        let mut g = String::from("root:x:0:\n");
        for (app, gid) in [("app1", 60001), ("app2", 60002), ("app3", 60003)] {
            let members = if backup_in.split(',').any(|b| b == app) {
                "backup"
            } else {
                ""
            };
            g.push_str(&format!("{app}:x:{gid}:{members}\n"));
        }
        g.push_str("backup:x:60010:\n");
        self.write("/etc/group", &g, 0o644, 0, 0);
    }

    fn set_groups(&self, text: &str) {
        self.write("/etc/group", text, 0o644, 0, 0);
    }

    fn dir(&self, p: &str, mode: u32, uid: u32) {
        let path = self.path(p);
        std::fs::create_dir_all(&path).unwrap();
        std::os::unix::fs::chown(&path, Some(uid), Some(uid)).unwrap();
        self.chmod(p, mode);
    }

    fn write(&self, p: &str, text: &str, mode: u32, uid: u32, gid: u32) {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        self.chmod(p, mode);
    }

    fn chmod(&self, p: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.path(p), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn chown(&self, p: &str, uid: u32) {
        std::os::unix::fs::chown(self.path(p), Some(uid), Some(uid)).unwrap();
    }

    fn edit_unit(&self, app: &str, from: &str, to: &str) {
        let p = format!("/etc/systemd/system/{app}.service");
        let text = std::fs::read_to_string(self.path(&p)).unwrap();
        assert!(text.contains(from), "{from:?} not in the unit");
        self.write(&p, &text.replacen(from, to, 1), 0o644, 0, 0);
    }

    fn run(&self, extra: &[&str], apps: &str) -> (i32, Vec<Value>, Output) {
        let root = self.root.display().to_string();
        let mut args = vec!["--root", root.as_str(), "--observe=no"];
        args.extend_from_slice(extra);
        rip_audit(&args, apps)
    }

    /// Codes reported for `app`.
    fn codes(&self, app: &str) -> Vec<String> {
        let (code, recs, out) = self.run(&[], APPS);
        assert!(code == 0 || code == 1, "{}", show("rip-audit --root", &out));
        let rec = recs
            .iter()
            .find(|r| r["name"] == app)
            .unwrap_or_else(|| panic!("no record for {app}\n{}", show("rip-audit", &out)));
        rec["rip_audit"]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn has(codes: &[String], code: &str) -> bool {
    codes.iter().any(|c| c == code)
}

#[test]
fn good_fleet_is_clean_and_exits_zero() {
    let fx = Fx::good("good_fleet");
    fx.groups("app1,app2", "");

    let (code, recs, out) = fx.run(&[], APPS);

    assert_eq!(code, 0, "{}", show("rip-audit", &out));
    assert_eq!(recs.len(), 3);
    for r in &recs {
        let a = &r["rip_audit"];
        assert_eq!(a["changed"], false);
        assert_eq!(a["ok"], true);
        let bad: Vec<&Value> = a["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] != "info" && f["severity"] != "low")
            .collect();
        assert!(bad.is_empty(), "{}: {bad:#?}", r["name"]);
        assert_eq!(a["unit"]["checks"].as_array().unwrap().len(), 81);
    }
}

/// Run a failing and a passing variant of one finding.
fn case(name: &str, app: &str, code: &str, break_it: impl Fn(&Fx), fix_it: impl Fn(&Fx)) {
    let bad = Fx::good(&format!("{name}_bad"));
    bad.groups("app1,app2", "");
    break_it(&bad);
    let codes = bad.codes(app);
    assert!(has(&codes, code), "{name}: {code} not reported: {codes:?}");

    let good = Fx::good(&format!("{name}_good"));
    good.groups("app1,app2", "");
    fix_it(&good);
    let codes = good.codes(app);
    assert!(
        !has(&codes, code),
        "{name}: {code} reported on the passing case: {codes:?}"
    );
}

#[test]
fn unit_03_trailing_comment() {
    case(
        "inline_comment",
        "app2",
        "UNIT_INLINE_COMMENT",
        |fx| {
            fx.edit_unit(
                "app2",
                "NoNewPrivileges=yes",
                "NoNewPrivileges=yes # hardening",
            )
        },
        |fx| {
            fx.edit_unit(
                "app2",
                "NoNewPrivileges=yes",
                "# hardening\nNoNewPrivileges=yes",
            )
        },
    );
}

#[test]
fn audit_02_ambient_not_in_bounding() {
    case(
        "ambient",
        "app1",
        "AUDIT_AMBIENT_NOT_IN_BOUNDING",
        |fx| {
            fx.edit_unit(
                "app1",
                "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                "CapabilityBoundingSet=",
            )
        },
        |_| {},
    );
}

#[test]
fn widened_capability_set() {
    case(
        "widened_caps",
        "app2",
        "UNIT_CAPS_BEYOND_NEED",
        |fx| {
            fx.edit_unit(
                "app2",
                "CapabilityBoundingSet=\n",
                "CapabilityBoundingSet=CAP_SYS_ADMIN CAP_NET_RAW\n",
            )
        },
        |_| {},
    );
}

#[test]
fn unit_01_read_write_path_missing() {
    case(
        "rwp",
        "app1",
        "UNIT_RWP_MISSING",
        |fx| {
            fx.edit_unit(
                "app1",
                "ReadWritePaths=/home/app1/data",
                "ReadWritePaths=/home/app1/data /home/app1/uploads",
            )
        },
        |fx| {
            fx.edit_unit(
                "app1",
                "ReadWritePaths=/home/app1/data",
                "ReadWritePaths=/home/app1/data -/home/app1/uploads",
            )
        },
    );
}

#[test]
fn unit_02_protect_home_hides_the_app() {
    case(
        "protecthome",
        "app1",
        "UNIT_PROTECTHOME_HIDES_APP",
        |fx| fx.edit_unit("app1", "ProtectHome=tmpfs", "ProtectHome=yes"),
        |_| {},
    );
}

#[test]
fn unknown_directive_and_capability() {
    case(
        "unknown_directive",
        "app2",
        "UNIT_UNKNOWN_DIRECTIVE",
        |fx| fx.edit_unit("app2", "NoNewPrivileges=yes", "NoNewPrivilege=yes"),
        |_| {},
    );
    case(
        "unknown_cap",
        "app1",
        "UNIT_UNKNOWN_CAPABILITY",
        |fx| {
            fx.edit_unit(
                "app1",
                "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                "CapabilityBoundingSet=CAP_NET_BIND_SERVIC",
            )
        },
        |_| {},
    );
}

#[test]
fn socket_bind_without_bpf_is_not_enforceable() {
    let out = Command::new("systemctl")
        .arg("--version")
        .output()
        .expect("systemctl is needed");
    let features = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        features.contains("-BPF_FRAMEWORK"),
        "this test expects Debian 12's systemd (-BPF_FRAMEWORK), got: {features}"
    );
    // The root's own systemctl is read, not the host's: Debian's real one
    // (-BPF_FRAMEWORK), then one whose feature list has +BPF_FRAMEWORK.
    let host_systemctl = std::fs::read("/usr/bin/systemctl").unwrap();
    let socket_bind = |fx: &Fx| {
        fx.edit_unit(
            "app2",
            "PrivateTmp=yes",
            "PrivateTmp=yes\nSocketBindAllow=tcp:8080\nSocketBindDeny=any",
        )
    };
    case(
        "socketbind",
        "app2",
        "UNIT_NOT_ENFORCEABLE",
        |fx| {
            std::fs::create_dir_all(fx.path("/usr/bin")).unwrap();
            std::fs::write(fx.path("/usr/bin/systemctl"), &host_systemctl).unwrap();
            socket_bind(fx);
        },
        |fx| {
            let with_bpf = String::from_utf8_lossy(&host_systemctl)
                .replace("-BPF_FRAMEWORK", "+BPF_FRAMEWORK");
            std::fs::create_dir_all(fx.path("/usr/bin")).unwrap();
            std::fs::write(fx.path("/usr/bin/systemctl"), with_bpf).unwrap();
            socket_bind(fx);
        },
    );
}

#[test]
fn user_03_root_missing_and_shared_users() {
    case(
        "user_root",
        "app2",
        "USER_ROOT",
        |fx| fx.edit_unit("app2", "User=app2", "User=root"),
        |_| {},
    );
    case(
        "user_missing",
        "app2",
        "USER_MISSING",
        |fx| fx.edit_unit("app2", "User=app2", "User=ghost"),
        |_| {},
    );
    case(
        "user_shared",
        "app2",
        "USER_SHARED",
        |fx| fx.edit_unit("app2", "User=app2", "User=app1"),
        |_| {},
    );
}

#[test]
fn unit_06_mdwe_for_node() {
    let apps = APPS.replace(
        r#""name":"app2","runtime":"rust""#,
        r#""name":"app2","runtime":"node""#,
    );
    let bad = Fx::good("mdwe_bad");
    bad.groups("app1,app2", "");
    let (_, recs, _) = bad.run(&[], &apps);
    let codes: Vec<&str> = recs[1]["rip_audit"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"UNIT_MDWE_JIT"), "{codes:?}");

    bad.edit_unit("app2", "MemoryDenyWriteExecute=yes\n", "");
    let (_, recs, _) = bad.run(&[], &apps);
    let codes: Vec<&str> = recs[1]["rip_audit"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(!codes.contains(&"UNIT_MDWE_JIT"), "{codes:?}");
}

#[test]
fn user_01_world_readable_home() {
    case(
        "world_home",
        "app3",
        "ISOLATION_HOME_WORLD_ACCESS",
        |fx| fx.chmod("/home/app3", 0o755),
        |_| {},
    );
}

#[test]
fn live_database_and_key_modes() {
    case(
        "db_mode",
        "app1",
        "PERMS_DB_READABLE",
        |fx| fx.chmod("/home/app1/data/app.db", 0o640),
        |_| {},
    );
    case(
        "key_mode",
        "app1",
        "PERMS_KEY_READABLE",
        |fx| fx.chmod("/home/app1/age.key", 0o640),
        |_| {},
    );
}

#[test]
fn backup_user_reaching_keys() {
    case(
        "backup_reach",
        "app1",
        "ISOLATION_BACKUP_REACH",
        |fx| {
            fx.chmod("/home/app1/age.key", 0o640);
        },
        |_| {},
    );
}

#[test]
fn backup_user_in_the_wrong_group() {
    case(
        "backup_groups",
        "app3",
        "ISOLATION_BACKUP_GROUPS",
        |fx| fx.groups("app1,app2,app3", ""),
        |_| {},
    );
}

#[test]
fn app_user_in_another_apps_group_reaches_its_files() {
    case(
        "cross_group",
        "app1",
        "ISOLATION_CROSS_APP",
        |fx| {
            fx.set_groups("root:x:0:\napp1:x:60001:backup,app2\napp2:x:60002:backup\napp3:x:60003:\nbackup:x:60010:\n");
            fx.chmod("/home/app1/data/backups/snap-1.db", 0o640);
        },
        |_| {},
    );
    case(
        "shared_group",
        "app1",
        "ISOLATION_SHARED_GROUP",
        |fx| {
            fx.set_groups("root:x:0:\napp1:x:60001:backup,app2\napp2:x:60002:backup\napp3:x:60003:\nbackup:x:60010:\n")
        },
        |_| {},
    );
}

#[test]
fn acl_grant_to_another_app_is_seen() {
    case(
        "acl",
        "app3",
        "ISOLATION_CROSS_APP",
        |fx| {
            let st = Command::new("setfacl")
                .args(["-m", "u:60002:rx"])
                .arg(fx.path("/home/app3"))
                .status()
                .expect("setfacl (package acl) is needed");
            assert!(st.success());
            let st = Command::new("setfacl")
                .args(["-m", "u:60002:r"])
                .arg(fx.path("/home/app3/age.key"))
                .status()
                .unwrap();
            assert!(st.success());
        },
        |_| {},
    );
}

#[test]
fn setuid_and_file_capabilities_in_app_trees() {
    case(
        "setuid",
        "app2",
        "PERMS_SETUID",
        |fx| fx.chmod("/home/app2/bin/app2", 0o4700),
        |_| {},
    );
    case(
        "filecaps",
        "app2",
        "PERMS_FILE_CAPS",
        |fx| {
            let st = Command::new("setcap")
                .arg("cap_net_bind_service=+ep")
                .arg(fx.path("/home/app2/bin/app2"))
                .status()
                .expect("setcap (package libcap2-bin) is needed");
            assert!(st.success());
        },
        |_| {},
    );
}

#[test]
fn environment_file_readable_by_others() {
    case(
        "envfile",
        "app2",
        "PERMS_ENVFILE_READABLE",
        |fx| {
            fx.write("/etc/rip/app2.env", "TOKEN=x\n", 0o644, 0, 0);
            fx.edit_unit(
                "app2",
                "PrivateTmp=yes",
                "PrivateTmp=yes\nEnvironmentFile=/etc/rip/app2.env",
            );
        },
        |fx| {
            fx.write("/etc/rip/app2.env", "TOKEN=x\n", 0o600, 0, 0);
            fx.edit_unit(
                "app2",
                "PrivateTmp=yes",
                "PrivateTmp=yes\nEnvironmentFile=/etc/rip/app2.env",
            );
        },
    );
}

#[test]
fn perms_05_foreign_owner_in_app_tree() {
    case(
        "foreign",
        "app1",
        "PERMS_FOREIGN_OWNER",
        |fx| fx.chown("/home/app1/data/app.db", 0),
        |_| {},
    );
}

#[test]
fn threshold_and_fail_on_set_the_exit_code() {
    let fx = Fx::good("threshold");
    fx.groups("app1,app2", "");

    let (low, _, _) = fx.run(&["--threshold", "0.5"], APPS);
    let (high, _, _) = fx.run(&["--threshold", "99"], APPS);
    fx.edit_unit(
        "app2",
        "NoNewPrivileges=yes",
        "NoNewPrivileges=yes # high, not critical",
    );
    let (fail_high, _, _) = fx.run(&[], APPS);
    let (fail_crit, _, _) = fx.run(&["--fail-on", "critical"], APPS);
    let (bad, _, _) = fx.run(&["--threshold", "10.5"], APPS);

    assert_eq!((low, high, fail_high, fail_crit, bad), (1, 0, 1, 0, 2));
}

#[test]
fn text_format_prints_a_summary() {
    let fx = Fx::good("text");
    fx.groups("app1,app2", "");

    let (code, _, out) = fx.run(&["--format", "text"], APPS);

    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("unit "), "{text}");
    assert!(text.contains("app1") && text.contains("app3"), "{text}");
}

/// Findings of `app` in a run's records.
fn findings_of<'a>(recs: &'a [Value], app: &str) -> Vec<&'a Value> {
    recs.iter()
        .find(|r| r["name"] == app)
        .unwrap_or_else(|| panic!("no record for {app}"))["rip_audit"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .collect()
}

/// Red-team finding 1: a non-UTF-8 file name under one app's home made
/// rip-audit panic (exit 101, no output) for the whole fleet.
#[test]
fn redteam_non_utf8_file_name_does_not_stop_the_audit() {
    use std::os::unix::ffi::OsStrExt;
    let fx = Fx::good("non_utf8_name");
    fx.groups("app1,app2", "");
    let data = fx.path("/home/app1/data");
    for (name, mode) in [(&b"x\xfe"[..], 0o600), (&b"leak\xff.key"[..], 0o644)] {
        let p = data.join(std::ffi::OsStr::from_bytes(name));
        std::fs::write(&p, "k").unwrap();
        std::os::unix::fs::chown(&p, Some(60001), Some(60001)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    let (code, recs, out) = fx.run(&[], APPS);

    assert_eq!(code, 1, "{}", show("rip-audit", &out));
    assert_eq!(recs.len(), 3, "{}", show("rip-audit", &out));
    let key = findings_of(&recs, "app1")
        .into_iter()
        .find(|f| f["code"] == "PERMS_KEY_READABLE")
        .unwrap_or_else(|| panic!("{}", show("rip-audit", &out)))
        .clone();
    assert_eq!(key["evidence"]["path"], "/home/app1/data/leak\u{fffd}.key");
    assert_eq!(
        key["evidence"]["path_hex"],
        "2f686f6d652f617070312f646174612f6c65616bff2e6b6579"
    );
    let matrix = recs[0]["rip_audit"]["matrix"]["resources"].to_string();
    assert!(matrix.contains("path_hex"), "{matrix}");
    // The other apps are audited as usual.
    for app in ["app2", "app3"] {
        let bad: Vec<_> = findings_of(&recs, app)
            .into_iter()
            .filter(|f| f["severity"] != "info" && f["severity"] != "low")
            .collect();
        assert!(bad.is_empty(), "{app}: {bad:#?}");
    }
}

const EVIL_DROPIN: &str = "[Service]\nProtectHome=no\nProtectSystem=no\nPrivateTmp=no\n\
    SystemCallFilter=\nRestrictAddressFamilies=\nNoNewPrivileges=no\nReadWritePaths=/etc\n";

/// Red-team finding 2: a drop-in that strips the hardening scored "OK"
/// with no finding and exit 0.
#[test]
fn redteam_dropin_weakening_the_unit_is_a_high_finding() {
    let fx = Fx::good("dropin_weakens");
    fx.groups("app1,app2", "");
    let (code, _, out) = fx.run(&[], APPS);
    assert_eq!(code, 0, "{}", show("rip-audit (before)", &out));
    fx.write(
        "/etc/systemd/system/app1.service.d/50-evil.conf",
        EVIL_DROPIN,
        0o644,
        0,
        0,
    );

    let (code, recs, out) = fx.run(&[], APPS);

    assert_eq!(code, 1, "{}", show("rip-audit", &out));
    let f = findings_of(&recs, "app1");
    let weak: Vec<&str> = f
        .iter()
        .filter(|f| f["code"] == "UNIT_DROPIN_WEAKENS")
        .map(|f| {
            assert_eq!(f["severity"], "high");
            assert_eq!(
                f["evidence"]["dropins"][0],
                "/etc/systemd/system/app1.service.d/50-evil.conf"
            );
            assert!(!f["evidence"]["directives"].as_array().unwrap().is_empty());
            f["evidence"]["json_field"].as_str().unwrap()
        })
        .collect();
    for field in [
        "ProtectHome",
        "ProtectSystem",
        "PrivateTmp",
        "NoNewPrivileges",
        "RestrictAddressFamilies_AF_PACKET",
        "SystemCallFilter_swap",
    ] {
        assert!(weak.contains(&field), "{field} not in {weak:?}");
    }
    let ph = f
        .iter()
        .find(|f| {
            f["code"] == "UNIT_DROPIN_WEAKENS" && f["evidence"]["json_field"] == "ProtectHome"
        })
        .unwrap();
    assert_eq!(
        ph["evidence"]["directives"][0]["directive"],
        "ProtectHome=no"
    );
    let rw = f
        .iter()
        .find(|f| f["code"] == "UNIT_WRITABLE_OUTSIDE_APP")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert_eq!(rw["evidence"]["path"], "/etc");
    assert_eq!(rw["severity"], "high");
    // The other apps are untouched.
    assert!(findings_of(&recs, "app2")
        .iter()
        .all(|f| f["code"] != "UNIT_DROPIN_WEAKENS"));

    // A drop-in that only adds hardening is no finding.
    fx.write(
        "/etc/systemd/system/app1.service.d/50-evil.conf",
        "[Service]\nPrivateIPC=yes\nRemoveIPC=yes\n",
        0o644,
        0,
        0,
    );
    let (code, _, out) = fx.run(&[], APPS);
    assert_eq!(code, 0, "{}", show("rip-audit (hardening drop-in)", &out));
}

/// Red-team finding 2 (b): writable paths outside the app's own tree, also
/// in the unit file itself and through `..`.
#[test]
fn redteam_writable_path_outside_the_app() {
    case(
        "writable_outside",
        "app2",
        "UNIT_WRITABLE_OUTSIDE_APP",
        |fx| {
            fx.edit_unit(
                "app2",
                "ReadWritePaths=/home/app2/data",
                "ReadWritePaths=/home/app2/data -/home/app2/../../var/lib",
            )
        },
        |fx| {
            fx.edit_unit(
                "app2",
                "ReadWritePaths=/home/app2/data",
                "ReadWritePaths=/home/app2/data -/home/app2/data/../cache",
            )
        },
    );
    case(
        "bind_outside",
        "app3",
        "UNIT_WRITABLE_OUTSIDE_APP",
        |fx| {
            fx.edit_unit(
                "app3",
                "BindPaths=/home/app3",
                "BindPaths=/home/app3 /etc:/home/app3/etc",
            )
        },
        |_| {},
    );
}

/// Specifiers in writable paths are resolved as the system manager does:
/// `%S/%N-data` is `/var/lib/app2-data`, outside app2's tree, while
/// `%S` spelled into app2's own home stays allowed.
#[test]
fn issue9_specifiers_in_writable_paths_are_resolved() {
    case(
        "writable_specifier",
        "app2",
        "UNIT_WRITABLE_OUTSIDE_APP",
        |fx| {
            fx.edit_unit(
                "app2",
                "ReadWritePaths=/home/app2/data",
                "ReadWritePaths=/home/app2/data -%S/%N-data",
            )
        },
        |fx| {
            fx.edit_unit(
                "app2",
                "ReadWritePaths=/home/app2/data",
                "ReadWritePaths=/home/%p/data",
            )
        },
    );
}

/// Red-team finding 2 (c): a score above rip-unit's `exposure_target`.
#[test]
fn redteam_score_above_rip_unit_exposure_target() {
    let fx = Fx::good("exposure_target");
    fx.groups("app1,app2", "");
    let apps = |target: &str| {
        let mut v: Vec<Value> = serde_json::from_str(APPS).unwrap();
        for r in &mut v {
            let unit = format!(
                "/etc/systemd/system/{}.service",
                r["name"].as_str().unwrap()
            );
            r["rip_unit"] = serde_json::json!({"changed": false, "dry_run": false,
                "unit": unit, "exposure_target": serde_json::from_str::<Value>(target).unwrap()});
        }
        v.iter().map(|r| r.to_string() + "\n").collect::<String>()
    };

    let (code, recs, out) = fx.run(&[], &apps("9.9"));
    assert_eq!(code, 0, "{}", show("rip-audit (target 9.9)", &out));
    let score = recs[0]["rip_audit"]["unit"]["score"].as_u64().unwrap();
    assert!(score > 5, "score {score}");
    let (code, recs, out) = fx.run(&[], &apps("0.5"));

    assert_eq!(code, 1, "{}", show("rip-audit (target 0.5)", &out));
    let f = findings_of(&recs, "app1");
    let over = f
        .iter()
        .find(|f| f["code"] == "UNIT_OVER_EXPOSURE_TARGET")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert_eq!(over["evidence"]["exposure_target"], 0.5);
    assert_eq!(over["evidence"]["score"], score);
}

/// systemd-analyze's rows for `unit` under `root` (`--root`, by name, so
/// drop-ins apply), or its stderr when it cannot load the unit.
fn analyze_in_root(root: &Path, unit: &str) -> Result<Vec<Value>, String> {
    let root_arg = format!("--root={}", root.display());
    first_rows(&systemd_security(root, &[root_arg.as_ref(), unit.as_ref()]))
}

/// `systemd-analyze security --offline=true --json=short` with an empty
/// policy (written into `dir`) and debug mode (the offline checks), over
/// `args`.
fn systemd_security(dir: &Path, args: &[&std::ffi::OsStr]) -> Output {
    let policy = dir.join("EMPTY.json");
    std::fs::write(&policy, "{}").unwrap();
    Command::new(systemd_analyze_or_fail())
        .env("SYSTEMD_ANALYZE_DEBUG", "1")
        .env("SYSTEMD_LOG_LEVEL", "err")
        .args(["security", "--offline=true", "--json=short"])
        .arg(format!("--security-policy={}", policy.display()))
        .args(args)
        .output()
        .unwrap()
}

/// The rows of the first unit systemd-analyze printed, or its stderr when
/// it printed none.
fn first_rows(res: &Output) -> Result<Vec<Value>, String> {
    String::from_utf8_lossy(&res.stdout)
        .lines()
        .find(|l| l.starts_with('['))
        .map(|l| serde_json::from_str(l).unwrap())
        .ok_or_else(|| String::from_utf8_lossy(&res.stderr).into_owned())
}

/// Red-team finding 3: a line over systemd's LONG_LINE_MAX (1 MiB) makes
/// systemd 252 refuse the whole unit ("No buffer space available"); in a
/// drop-in it ends that drop-in only. Checked against systemd-analyze.
#[test]
fn redteam_line_over_long_line_max_fails_to_load() {
    const M: usize = 1024 * 1024;
    let root = test_dir("long_line").join("root");
    let dir = root.join("etc/systemd/system");
    std::fs::create_dir_all(dir.join("drop.service.d")).unwrap();
    let base = "[Service]\nExecStart=/bin/true\nPrivateTmp=yes\n";
    let line = |n: usize| format!("Environment=A={}", "x".repeat(n - 14));
    let cont = format!(
        "Environment=A={}\\\n{}\n",
        "y".repeat(M / 2),
        "z".repeat(M / 2)
    );
    let files = [
        ("short.service", format!("{base}{}\n", line(M - 1))),
        ("long.service", format!("{base}{}\n", line(M))),
        ("comment.service", format!("{base}#{}\n", "c".repeat(M))),
        ("cont.service", format!("{base}{cont}")),
        (
            "drop.service",
            "[Service]\nExecStart=/bin/true\n".to_owned(),
        ),
    ];
    for (name, text) in &files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    std::fs::write(
        dir.join("drop.service.d/a.conf"),
        format!(
            "[Service]\nPrivateTmp=yes\n{}\nProtectSystem=strict\n",
            line(M + 5)
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("drop.service.d/b.conf"),
        "[Service]\nNoNewPrivileges=yes\n",
    )
    .unwrap();
    let r = root.display().to_string();
    let paths: Vec<String> = files
        .iter()
        .map(|(n, _)| dir.join(n).display().to_string())
        .collect();
    let mut args = vec!["--root", r.as_str(), "--observe=no", "--unit"];
    args.extend(paths.iter().map(String::as_str));

    let (code, recs, out) = rip_audit(&args, "");

    assert_eq!(code, 1, "{}", show("rip-audit --unit", &out));
    assert_eq!(
        recs.len(),
        files.len(),
        "{}",
        show("rip-audit --unit", &out)
    );
    for ((name, _), rec) in files.iter().zip(&recs) {
        let a = &rec["rip_audit"];
        let codes = codes_of(rec);
        let systemd = analyze_in_root(&root, name);
        let loads = !matches!(*name, "long.service" | "comment.service" | "cont.service");
        assert_eq!(a["unit"]["loaded"], loads, "{name}: {a:#}");
        assert_eq!(
            systemd.is_ok(),
            loads,
            "{name}: systemd-analyze: {systemd:?}"
        );
        if loads {
            let want = systemd_rows(&systemd.unwrap());
            assert_eq!(rip_rows(&a["unit"]), want, "{name}");
        } else {
            let err = systemd.unwrap_err();
            assert!(err.contains("No buffer space available"), "{name}: {err}");
            assert!(has(&codes, "UNIT_LOAD_FAILED"), "{name}: {codes:?}");
            assert!(has(&codes, "UNIT_LINE_TOO_LONG"), "{name}: {codes:?}");
        }
        assert_eq!(
            has(&codes, "UNIT_LINE_TOO_LONG"),
            *name != "short.service",
            "{name}: {codes:?}"
        );
    }
    let drop = &recs[4]["rip_audit"];
    let f = drop["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "UNIT_LINE_TOO_LONG")
        .unwrap();
    assert_eq!(f["severity"], "high");
    assert_eq!(
        f["evidence"]["file"],
        "/etc/systemd/system/drop.service.d/a.conf"
    );
    assert_eq!(f["evidence"]["line"], 3);

    // --format scores agrees on `loaded`.
    let mut args = vec!["--root", r.as_str(), "--format", "scores", "--unit"];
    args.extend(paths.iter().map(String::as_str));
    let (_, lines, out) = rip_audit(&args, "");
    let loaded: Vec<bool> = lines
        .iter()
        .map(|l| l["loaded"].as_bool().unwrap())
        .collect();
    assert_eq!(
        loaded,
        [true, false, false, false, true],
        "{}",
        show("scores", &out)
    );
}

#[test]
fn scores_format_with_app_specs_gives_one_line_per_app() {
    let fx = Fx::good("scores-specs");
    fx.groups("app1,app2", "");
    std::fs::remove_file(fx.path("/etc/systemd/system/app3.service")).unwrap();

    let (code, recs, out) = fx.run(&["--format", "scores"], APPS);
    let (_, full, _) = fx.run(&[], APPS);

    assert_eq!(code, 0, "{}", show("rip-audit --format scores", &out));
    let apps: Vec<&str> = recs.iter().map(|r| r["app"].as_str().unwrap()).collect();
    assert_eq!(apps, ["app1", "app2", "app3"]);
    assert_eq!(recs[0]["score"], full[0]["rip_audit"]["unit"]["score"]);
    assert_eq!(recs[0]["unit"], "app1.service");
    assert!(recs[2]["unit"].is_null() && recs[2]["score"].is_null());
}

#[test]
fn observed_state_differs_from_the_unit() {
    let fx = Fx::good("observed");
    fx.groups("app1,app2", "");
    let proc_dir = fx.root.parent().unwrap().join("proc");
    let cg = fx.root.parent().unwrap().join("cgroup");
    std::fs::create_dir_all(cg.join("system.slice/app2.service")).unwrap();
    std::fs::write(cg.join("system.slice/app2.service/cgroup.procs"), "4242\n").unwrap();
    std::fs::create_dir_all(proc_dir.join("4242")).unwrap();
    std::fs::create_dir_all(proc_dir.join("sys/kernel")).unwrap();
    std::fs::write(proc_dir.join("sys/kernel/cap_last_cap"), "40\n").unwrap();
    let mounts = "1 0 8:1 / / ro,relatime - ext4 /dev/vda rw\n2 1 8:1 /home/app2/data /home/app2/data rw,relatime - ext4 /dev/vda rw\n4 1 8:1 /home/app2 /home/app2 rw,relatime - ext4 /dev/vda rw\n3 1 0:5 /tmp/systemd-private-x-app2.service-y/tmp /tmp rw - ext4 /dev/vda rw\n";
    std::fs::write(proc_dir.join("4242/mountinfo"), mounts).unwrap();
    let status = |bnd: &str, nnp: u32| {
        format!("Uid:\t60002\t60002\t60002\t60002\nGid:\t60002\t60002\t60002\t60002\nGroups:\t60002\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t{bnd}\nCapAmb:\t0000000000000000\nNoNewPrivs:\t{nnp}\nSeccomp:\t2\n")
    };
    let args = [
        "--proc-dir",
        proc_dir.to_str().unwrap(),
        "--cgroup-dir",
        cg.to_str().unwrap(),
    ];
    let root = fx.root.display().to_string();
    let run = || {
        let mut a = vec!["--root", root.as_str()];
        a.extend_from_slice(&args);
        let (_, recs, out) = rip_audit(&a, APPS);
        assert_eq!(recs.len(), 3, "{}", show("rip-audit", &out));
        recs[1]["rip_audit"].clone()
    };

    std::fs::write(proc_dir.join("4242/status"), status("000001ffffffffff", 0)).unwrap();
    let bad = run();
    std::fs::write(proc_dir.join("4242/status"), status("0000000000000000", 1)).unwrap();
    let good = run();

    let diffs: Vec<String> = bad["observed"]["processes"][0]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        diffs.contains(&"CapBnd".to_owned()) && diffs.contains(&"NoNewPrivs".to_owned()),
        "{diffs:?}"
    );
    assert!(bad["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "OBSERVED_MISMATCH"));
    assert_eq!(
        good["observed"]["processes"][0]["differences"],
        serde_json::json!([]),
        "{:#}",
        good["observed"]
    );
}

#[test]
fn seed_unit_scores_like_systemd_analyze() {
    let dir = test_dir("seed");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/restinpieces.service");
    let unit = dir.join("restinpieces.service");
    std::fs::copy(&fixture, &unit).unwrap();

    let expected = analyze(&dir, std::slice::from_ref(&unit));
    let (_, recs, out) = rip_audit(&["--unit", unit.to_str().unwrap()], "");

    let u = &recs[0]["rip_audit"]["unit"];
    assert_eq!(
        u["score"],
        overall(&systemd_rows(&expected[0])),
        "{}",
        show("rip-audit", &out)
    );
    assert_eq!(u["score"], 40);
    assert_eq!(u["exposure"], 4.0);
    assert_eq!(u["label"], "OK");
}

#[test]
fn demo_units_written_like_rip_unit_score_like_systemd() {
    let fx = Fx::good("demo_units");
    let files: Vec<PathBuf> = ["app1", "app2", "app3"]
        .iter()
        .map(|a| fx.path(&format!("/etc/systemd/system/{a}.service")))
        .collect();

    let bad = differential(&fx.root, &files);

    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn committed_syscall_groups_match_the_installed_systemd() {
    let tool = systemd_analyze_or_fail();
    let out = Command::new(tool).arg("syscall-filter").output().unwrap();
    let committed = include_str!("../data/syscall-groups.txt");
    // systemd appends the running kernel's system calls that no group
    // lists: that part depends on the kernel, not on systemd.
    let installed = String::from_utf8_lossy(&out.stdout);
    let groups = match installed.find("\n# Unlisted System Calls") {
        Some(at) => &installed[..at + 1],
        None => &installed[..],
    };

    assert_eq!(
        groups, committed,
        "data/syscall-groups.txt is stale: run rip-audit/data/gen-tables.sh"
    );
}

// ---------------------------------------------------------------------
// e2e under a real systemd 252 (the project's tests/e2e/sandbox harness):
// rip-audit runs inside the container with --root / and observes the
// running services. Fails loudly when the container cannot boot.
// ---------------------------------------------------------------------

struct Sandbox {
    script: PathBuf,
    name: String,
    rootfs: PathBuf,
}

impl Sandbox {
    fn up(name: &str) -> Sandbox {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let script = ws.join("tests/e2e/sandbox");
        assert!(script.is_file(), "the e2e harness {script:?} is missing");
        let run = |arg: &str| {
            Command::new("bash")
                .arg(&script)
                .arg(arg)
                .env("RIP_SB_NAME", name)
                .output()
                .unwrap()
        };
        let up = run("up");
        assert!(
            up.status.success(),
            "cannot boot the systemd 252 container (needs root, systemd-nspawn, debootstrap):\n{}",
            show("tests/e2e/sandbox up", &up)
        );
        let env = run("env");
        let rootfs = String::from_utf8_lossy(&env.stdout)
            .lines()
            .find_map(|l| {
                l.strip_prefix("RIP_SB_ROOTFS=")
                    .map(|v| v.trim_matches(['\'', '"']).to_owned())
            })
            .unwrap_or_else(|| panic!("no RIP_SB_ROOTFS in {}", show("sandbox env", &env)));
        Sandbox {
            script,
            name: name.to_owned(),
            rootfs: PathBuf::from(rootfs),
        }
    }

    /// Run a shell command inside; returns (rc, stdout, stderr).
    fn sh(&self, cmd: &str) -> (i32, String, String) {
        let out = Command::new("bash")
            .arg(&self.script)
            .args(["exec", "sh", "-c", cmd])
            .env("RIP_SB_NAME", &self.name)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, cmd: &str) -> String {
        let (rc, out, err) = self.sh(cmd);
        assert_eq!(
            rc, 0,
            "inside the container: {cmd}\nstdout:\n{out}\nstderr:\n{err}"
        );
        out
    }

    /// rip-audit inside the container over /root/apps.json.
    fn audit(&self) -> (i32, Vec<Value>, String) {
        let (rc, out, err) = self.sh("rip-audit --root / --observe yes < /root/apps.json");
        let recs = out
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (rc, recs, format!("rc {rc}\nstdout:\n{out}\nstderr:\n{err}"))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::env::var_os("RIP_E2E_KEEP").is_none() {
            let _ = Command::new("bash")
                .arg(&self.script)
                .arg("down")
                .env("RIP_SB_NAME", &self.name)
                .output();
        }
    }
}

fn codes_of(rec: &Value) -> Vec<String> {
    rec["rip_audit"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn e2e_fleet_under_real_systemd_is_clean_and_broken_variants_are_caught() {
    let sb = Sandbox::up("rip-audit-e2e");
    let dest = sb.rootfs.join("usr/local/bin/rip-audit");
    std::fs::copy(BIN, &dest).unwrap();
    let apps = r#"[{"name":"app1","listen":[{"port":80}],"backups":{"enabled":true}},{"name":"app2","listen":[{"port":8080}]}]"#;
    std::fs::write(sb.rootfs.join("root/apps.json"), apps).unwrap();
    for (app, ambient) in [("app1", true), ("app2", false)] {
        let unit = good_unit(app, ambient).replace(
            &format!("ExecStart=/home/{app}/bin/{app}\n"),
            &format!("ExecStart=/home/{app}/bin/{app} infinity\n"),
        );
        std::fs::write(
            sb.rootfs.join(format!("etc/systemd/system/{app}.service")),
            unit,
        )
        .unwrap();
    }
    sb.ok("set -e
        for a in app1 app2; do id $a >/dev/null 2>&1 || useradd -r -U -m -d /home/$a -s /usr/sbin/nologin $a; done
        gpasswd -a backup app1 >/dev/null
        for a in app1 app2; do
          mkdir -p /home/$a/bin /home/$a/data; cp /bin/sleep /home/$a/bin/$a
          printf db > /home/$a/data/app.db; printf key > /home/$a/age.key
          chown -R $a:$a /home/$a; chmod 0700 /home/$a/bin /home/$a/bin/$a
          chmod 0600 /home/$a/data/app.db /home/$a/age.key
        done
        chmod 0710 /home/app1 /home/app1/data; chmod 0700 /home/app2 /home/app2/data
        mkdir -p /home/app1/data/backups; printf s > /home/app1/data/backups/snap.db
        chown -R app1:app1 /home/app1/data/backups; chmod 2750 /home/app1/data/backups
        chmod 0640 /home/app1/data/backups/snap.db
        systemctl daemon-reload; systemctl restart app1 app2; sleep 0.5
        systemctl is-active app1 app2");

    // The fleet as deployed: clean, running, nothing differs from the units.
    let (rc, recs, log) = sb.audit();
    assert_eq!(rc, 0, "clean fleet:\n{log}");
    for r in &recs {
        let a = &r["rip_audit"];
        assert_eq!(a["observed"]["running"], true, "{log}");
        for p in a["observed"]["processes"].as_array().unwrap() {
            assert_eq!(
                p["differences"],
                serde_json::json!([]),
                "{}: {log}",
                r["name"]
            );
        }
    }
    assert_eq!(
        recs[0]["rip_audit"]["observed"]["processes"][0]["cap_amb"],
        serde_json::json!(["CAP_NET_BIND_SERVICE"]),
        "{log}"
    );

    // A widened capability set (drop-in, reload, restart): caught by the lint.
    sb.ok("mkdir -p /etc/systemd/system/app2.service.d && printf '[Service]\\nCapabilityBoundingSet=CAP_SYS_ADMIN CAP_NET_RAW\\n' > /etc/systemd/system/app2.service.d/50-widen.conf && systemctl daemon-reload && systemctl restart app2");
    let (rc, recs, log) = sb.audit();
    assert_eq!(rc, 1, "{log}");
    assert!(
        codes_of(&recs[1]).contains(&"UNIT_CAPS_BEYOND_NEED".to_owned()),
        "{log}"
    );
    // Then narrowed on disk but not restarted: the running process differs.
    sb.ok("rm /etc/systemd/system/app2.service.d/50-widen.conf && systemctl daemon-reload");
    let (rc, recs, log) = sb.audit();
    assert_eq!(rc, 1, "{log}");
    let diffs = recs[1]["rip_audit"]["observed"]["processes"][0]["differences"].to_string();
    assert!(diffs.contains("CapBnd"), "{log}");
    sb.ok("systemctl restart app2");

    // A world-readable home.
    sb.ok("chmod 0755 /home/app2");
    let (rc, recs, log) = sb.audit();
    assert_eq!(rc, 1, "{log}");
    assert!(
        codes_of(&recs[1]).contains(&"ISOLATION_HOME_WORLD_ACCESS".to_owned()),
        "{log}"
    );
    sb.ok("chmod 0700 /home/app2");

    // The backup user in the group of an app without backups.
    sb.ok("gpasswd -a backup app2 >/dev/null");
    let (rc, recs, log) = sb.audit();
    assert_eq!(rc, 1, "{log}");
    assert!(
        codes_of(&recs[1]).contains(&"ISOLATION_BACKUP_GROUPS".to_owned()),
        "{log}"
    );
    sb.ok("gpasswd -d backup app2 >/dev/null");

    let (rc, _, log) = sb.audit();
    assert_eq!(rc, 0, "restored fleet:\n{log}");
}

// ---------------------------------------------------------------------
// Red-team round on the lean rewrite (08ef528): systemd 252 as the oracle,
// unit by unit, for both output modes.
// ---------------------------------------------------------------------

/// systemd-analyze's rows for one unit file given by path, or its stderr
/// when it refuses the unit.
fn analyze_file(file: &Path) -> Result<Vec<Value>, String> {
    first_rows(&systemd_security(file.parent().unwrap(), &[file.as_ref()]))
}

/// Run rip-audit once in full mode and once with `--format scores` over
/// `files` (after `extra` arguments) and compare each unit with
/// `systemd(file)`: a unit systemd loads must give its rows and score, a
/// unit it refuses must have `loaded: false`; both modes must agree.
/// Returns the mismatches.
fn compare_each(
    files: &[PathBuf],
    extra: &[&str],
    systemd: impl Fn(&Path) -> Result<Vec<Value>, String>,
) -> Vec<String> {
    let paths: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    let full_args = [
        extra,
        &["--observe=no", "--fail-on", "critical", "--unit"],
        &paths,
    ]
    .concat();
    let (code, full, out) = rip_audit(&full_args, "");
    assert!(code == 0 || code == 1, "{}", show("rip-audit --unit", &out));
    assert_eq!(full.len(), files.len(), "{}", show("rip-audit", &out));
    let lean_args = [extra, &["--format", "scores", "--unit"], &paths].concat();
    let (code, lean, out) = rip_audit(&lean_args, "");
    assert!(code == 0 || code == 1, "{}", show("--format scores", &out));
    assert_eq!(lean.len(), files.len(), "{}", show("--format scores", &out));
    let mut bad = Vec::new();
    for ((f, rec), line) in files.iter().zip(&full).zip(&lean) {
        let unit = &rec["rip_audit"]["unit"];
        let name = f.file_name().unwrap().to_string_lossy();
        for k in ["score", "loaded"] {
            if line[k] != unit[k] {
                bad.push(format!(
                    "{name}: {k}: scores {} vs full {}",
                    line[k], unit[k]
                ));
            }
        }
        match systemd(f) {
            Ok(rows) => {
                let want = systemd_rows(&rows);
                let got = rip_rows(unit);
                for (field, w) in &want {
                    if got.get(field) != Some(w) {
                        bad.push(format!(
                            "{name}: {field}: systemd {w:?}, rip-audit {:?}",
                            got.get(field)
                        ));
                    }
                }
                if unit["score"].as_u64() != Some(overall(&want)) || unit["loaded"] != true {
                    bad.push(format!(
                        "{name}: systemd loads it with score {}; rip-audit {} loaded={}",
                        overall(&want),
                        unit["score"],
                        unit["loaded"]
                    ));
                }
            }
            Err(e) if unit["loaded"] != false => bad.push(format!(
                "{name}: systemd refuses it ({}), rip-audit loads it",
                e.lines().next().unwrap_or("")
            )),
            Err(_) => {}
        }
    }
    bad
}

/// Write `(file name, bytes)` pairs into `dir`; returns the paths.
fn write_all(dir: &Path, files: &[(&str, Vec<u8>)]) -> Vec<PathBuf> {
    files
        .iter()
        .map(|(name, text)| {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            p
        })
        .collect()
}

/// One service per line of `lines` (`PREFIX<n>.service`), each a runnable
/// `[Service]` with that line added.
fn write_services(dir: &Path, prefix: &str, lines: &[impl AsRef<str>]) -> Vec<PathBuf> {
    let files: Vec<(String, Vec<u8>)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let text = format!("[Service]\nExecStart=/bin/true\n{}\n", l.as_ref());
            (format!("{prefix}{i}.service"), text.into_bytes())
        })
        .collect();
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    write_all(dir, &files)
}

/// Red-team: systemd's `read_line()` ends a line at `\r` or a NUL as well
/// as `\n` (`\r\n` and `\n\r` being one end of line), and drops a UTF-8
/// BOM from the first non-comment line that has one, not only from the
/// start of the file. rip-audit split at `\n` only and stripped a BOM at
/// the start only, so `NoNewPrivileges=yes` ended by `\r` or a NUL, or
/// after a BOM on a later line, was lost (and `PrivateTmp=\ryes` taken).
#[test]
fn redteam_lines_end_like_systemds_read_line() {
    let dir = test_dir("redteam_line_ends");
    let s = "[Service]\nExecStart=/bin/true\n";
    let cat = |a: &str, b: &[u8]| [a.as_bytes(), b].concat();
    let files = write_all(
        &dir,
        &[
            (
                "cr.service",
                b"[Service]\rExecStart=/bin/true\rNoNewPrivileges=yes\r".to_vec(),
            ),
            (
                "cr-inside.service",
                cat(s, b"PrivateTmp=\ryes\nNoNewPrivileges=yes\r\r\n"),
            ),
            (
                "lf-cr.service",
                cat(s, b"NoNewPrivileges=yes\n\rPrivateTmp=yes\n\r"),
            ),
            (
                "nul.service",
                cat(s, b"NoNewPrivileges=yes\0PrivateTmp=yes\n"),
            ),
            ("nul-comment.service", cat(s, b"#x\0NoNewPrivileges=yes\n")),
            ("cr-comment.service", cat(s, b"#x\rNoNewPrivileges=yes\n")),
            ("cr-cont.service", cat(s, b"NoNewPrivileges=\\\ryes\r")),
            (
                "crlf-cont.service",
                cat(s, b"NoNewPrivileges=\\\r\nyes\r\n"),
            ),
            (
                "bom-later.service",
                cat(s, b"\xef\xbb\xbfNoNewPrivileges=yes\n"),
            ),
            (
                "bom-after-comment.service",
                b"# c\n\xef\xbb\xbf[Service]\nExecStart=/bin/true\nPrivateTmp=yes\n".to_vec(),
            ),
            (
                "bom-cont.service",
                cat(s, b"NoNewPrivileges=\\\n\xef\xbb\xbfyes\n"),
            ),
            (
                "bom-twice.service",
                b"\xef\xbb\xbf[Service]\nExecStart=/bin/true\n\xef\xbb\xbfPrivateTmp=yes\n"
                    .to_vec(),
            ),
            // A BOM keeps a comment from being one: the continuation then
            // swallows the section header, and systemd refuses the unit.
            (
                "bom-comment.service",
                b"\xef\xbb\xbf# c \\\n[Service]\nExecStart=/bin/true\n".to_vec(),
            ),
        ],
    );

    let bad = compare_each(&files, &[], analyze_file);

    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Red-team: systemd's parser fails on a line that is not valid UTF-8
/// (noncharacters such as U+FFFE included) or on a bad section header
/// (no `]`, or quotes, backslashes or control characters in the name): it
/// refuses a unit file with such a line and ignores the rest of a drop-in.
/// rip-audit read on (with U+FFFD for bad bytes) and loaded the unit.
#[test]
fn redteam_unparsable_line_refuses_the_unit_or_ends_the_dropin() {
    let dir = test_dir("redteam_unparsable");
    let s = "[Service]\nExecStart=/bin/true\n";
    let cat = |a: &str, b: &[u8]| [a.as_bytes(), b].concat();
    let files = [
        ("latin1.service", cat(s, b"Description=caf\xe9\n")),
        ("latin1-unknown-key.service", cat(s, b"X-Note=\xe9\n")),
        (
            "latin1-first.service",
            b"\xe9x\n[Service]\nExecStart=/bin/true\n".to_vec(),
        ),
        ("surrogate.service", cat(s, b"Description=\xed\xa0\x80\n")),
        ("overlong.service", cat(s, b"Description=\xc0\xaf\n")),
        ("fffe.service", cat(s, "Description=a\u{fffe}\n".as_bytes())),
        ("fdd0.service", cat(s, "Description=a\u{fdd0}\n".as_bytes())),
        (
            "open-header.service",
            cat(s, b"[Service\nNoNewPrivileges=yes\n"),
        ),
        ("quote-header.service", cat(s, b"[X\"y]\n")),
        ("backslash-header.service", cat(s, b"[X\\y]\n")),
        ("ctrl-header.service", cat(s, b"[X\x01y]\n")),
        ("commented-header.service", cat(s, b"[Service] # main\n")),
        (
            "latin1-comment.service",
            cat(s, b"# caf\xe9\nNoNewPrivileges=yes\n"),
        ),
        ("dropins.service", s.as_bytes().to_vec()),
    ];
    let paths = write_all(&dir, &files);
    write_all(
        &dir,
        &[
            (
                "dropins.service.d/a.conf",
                b"[Service]\nPrivateTmp=yes\n[Service\nNoNewPrivileges=yes\n".to_vec(),
            ),
            (
                "dropins.service.d/b.conf",
                b"[Service]\nProtectSystem=strict\n\xe9\nPrivateDevices=yes\n".to_vec(),
            ),
            (
                "dropins.service.d/c.conf",
                b"[Service]\nProtectHome=yes\n".to_vec(),
            ),
        ],
    );

    let bad = compare_each(&paths, &[], analyze_file);

    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Red-team: drop-ins apply in systemd 252's order. For a file name found
/// in several drop-in directories the first one wins, in this order: in
/// each directory of the search path (`/lib` before `/usr/lib` on Debian)
/// the unit's own `.d`, its template's, its dash prefixes' (for an
/// instance also `t-@i.service.d`); `service.d` only after all of these.
/// rip-audit took `service.d` and the prefixes first. Also: hidden files
/// are not drop-ins, a link to /dev/null, a dangling link or a directory
/// masks its name, and a `.d` that is a symlink is not followed.
#[test]
fn redteam_dropins_apply_in_systemds_order() {
    let root = test_dir("redteam_dropin_order").join("root");
    let (e, l, u) = (
        "etc/systemd/system",
        "lib/systemd/system",
        "usr/lib/systemd/system",
    );
    let conf = conf_bytes;
    let unit = b"[Service]\nExecStart=/bin/true\n".to_vec();
    let files = [
        (format!("{e}/a-b.service"), unit.clone()),
        (format!("{e}/t-x@i.service"), unit.clone()),
        (format!("{e}/t-x@.service"), unit.clone()),
        // service.d here against the unit's own .d further down the path.
        (format!("{e}/service.d/1.conf"), conf("PrivateTmp=yes")),
        (format!("{u}/a-b.service.d/1.conf"), conf("PrivateTmp=no")),
        // A prefix here against the unit's own .d further down the path.
        (format!("{e}/a-.service.d/2.conf"), conf("ProtectHome=yes")),
        (format!("{u}/a-b.service.d/2.conf"), conf("ProtectHome=no")),
        // The unit's own .d against its prefix in the same directory.
        (format!("{e}/a-.service.d/3.conf"), conf("ProtectSystem=no")),
        (
            format!("{e}/a-b.service.d/3.conf"),
            conf("ProtectSystem=strict"),
        ),
        // /lib before /usr/lib (not merged here).
        (
            format!("{l}/a-b.service.d/4.conf"),
            conf("PrivateDevices=yes"),
        ),
        (
            format!("{u}/a-b.service.d/4.conf"),
            conf("PrivateDevices=no"),
        ),
        // Hidden files are not drop-ins.
        (
            format!("{e}/a-b.service.d/.5.conf"),
            conf("PrivateNetwork=yes"),
        ),
        // The template's .d against its prefix, and the instance prefix
        // directories.
        (
            format!("{e}/t-x@.service.d/6.conf"),
            conf("LockPersonality=yes"),
        ),
        (
            format!("{e}/t-.service.d/6.conf"),
            conf("LockPersonality=no"),
        ),
        (
            format!("{e}/t-@i.service.d/7.conf"),
            conf("ProtectClock=yes"),
        ),
        (
            format!("{e}/t-@.service.d/8.conf"),
            conf("ProtectHostname=yes"),
        ),
        // Masks in the instance's .d hide the template's.
        (
            format!("{e}/t-x@.service.d/9.conf"),
            conf("RestrictRealtime=yes"),
        ),
        (
            format!("{e}/t-x@.service.d/10.conf"),
            conf("ProtectKernelLogs=yes"),
        ),
        (
            format!("{e}/t-x@.service.d/11.conf"),
            conf("ProtectKernelTunables=yes"),
        ),
        (
            format!("{u}/real/12.conf"),
            conf("MemoryDenyWriteExecute=yes"),
        ),
        // Under --root the unit's directory keeps its place on the path:
        // system.control (systemctl set-property) before it.
        (
            "etc/systemd/system.control/a-b.service.d/13.conf".to_owned(),
            conf("RestrictSUIDSGID=no"),
        ),
        (
            format!("{e}/a-b.service.d/13.conf"),
            conf("RestrictSUIDSGID=yes"),
        ),
    ];
    for (p, text) in &files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let inst = root.join(format!("{e}/t-x@i.service.d"));
    std::fs::create_dir_all(inst.join("11.conf")).unwrap();
    std::os::unix::fs::symlink("/dev/null", inst.join("9.conf")).unwrap();
    std::os::unix::fs::symlink("/nonexistent", inst.join("10.conf")).unwrap();
    std::os::unix::fs::symlink("real", root.join(format!("{u}/t-x@i.service.d"))).unwrap();
    let units = [root.join(&files[0].0), root.join(&files[1].0)];
    let r = root.display().to_string();

    let bad = compare_each(&units, &["--root", &r], |f| {
        analyze_in_root(&root, &f.file_name().unwrap().to_string_lossy())
    });

    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Red-team: a unit file that is a FIFO made rip-audit block forever in
/// open() (systemd-analyze says "not found"), and one linked to /dev/zero
/// made it read until memory ran out (systemd takes any character device
/// for /dev/null: a masked unit). Now a FIFO is not found, as systemd has
/// it (its name map takes only files and links), and a character device
/// reads as empty, in both modes.
#[test]
fn redteam_unit_file_that_is_not_a_regular_file() {
    use std::time::{Duration, Instant};
    let dir = test_dir("redteam_not_regular");
    let fifo = dir.join("fifo.service");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let zero = dir.join("zero.service");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let run = |args: &[&str]| {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(30) {
                child.kill().unwrap();
                panic!("rip-audit {args:?} did not finish");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    };
    let (f, z) = (fifo.to_str().unwrap(), zero.to_str().unwrap());

    for mode in [&["--observe=no"][..], &["--format", "scores"]] {
        let out = run(&[mode, &["--unit", f]].concat());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("\"loaded\":false"), "{}", show("fifo", &out));
        assert_ne!(out.status.code(), Some(2), "{}", show("fifo", &out));
        if mode.len() == 1 {
            assert!(text.contains("not found"), "{}", show("fifo", &out));
        }
        let out = run(&[mode, &["--unit", z]].concat());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("\"loaded\":false"), "{}", show("zero", &out));
    }
    let masked = analyze_file(&zero).unwrap_err();
    assert!(masked.contains("masked"), "{masked}");
    let not_found = analyze_file(&fifo).unwrap_err();
    assert!(not_found.contains("not found"), "{not_found}");
}

/// Red-team: each list directive splits its words as its systemd 252
/// parser does. `SystemCallFilter=`, `RestrictNamespaces=`,
/// `IPAddressAllow=`/`Deny=` and `SupplementaryGroups=` keep quotes;
/// capabilities, address families, architectures and `DeviceAllow=`
/// remove them; a backslash always escapes the next character. A bad
/// quote or trailing backslash ends the list (the words before count),
/// drops the line (`RestrictNamespaces=`) or refuses the unit
/// (`SupplementaryGroups=`). rip-audit kept backslashes in some lists,
/// unquoted others, and dropped whole lines. Also: capability numbers and
/// IP prefix lengths as `safe_atoi()` reads them (`0x15`, `021`, ` 7`),
/// errno names in any case (and all of glibc's), the `time` namespace,
/// the `mips*-le` architectures, `*.localhost.localdomain`, the rights
/// after a quoted `DeviceAllow=` path and its `/dev` and `..` rules.
#[test]
fn redteam_directive_values_parse_like_systemd() {
    let dir = test_dir("redteam_values");
    let lines = [
        "CapabilityBoundingSet=CAP_SYS_ADMIN \"",
        "CapabilityBoundingSet=CAP_SYS_ADMIN \\ ",
        "CapabilityBoundingSet=CAP_SYS_ADMIN \"CAP_KILL",
        "AmbientCapabilities=CAP_KILL \"",
        "CapabilityBoundingSet=0x15",
        "CapabilityBoundingSet=021",
        "CapabilityBoundingSet=0b111",
        "CapabilityBoundingSet=0o25",
        "CapabilityBoundingSet=\" 21\"",
        "CapabilityBoundingSet=08",
        "AmbientCapabilities=0x5",
        "SystemCallFilter=~@clock \\ ",
        "SystemCallFilter=~@clo\\ck",
        "SystemCallFilter=setu\\id ipc \"read\"",
        "SystemCallFilter=~\"@clock\"",
        "SystemCallFilter=~@clock:eperm",
        "SystemCallFilter=~@clock:EBADFD",
        "SystemCallFilter=~@clock:EDEADLOCK",
        "SystemCallFilter=~@clock:0x1",
        "SystemCallFilter=~@clock:4096",
        "RestrictAddressFamilies=AF_UNIX \"",
        "RestrictAddressFamilies=AF_UNIX \\ ",
        "RestrictAddressFamilies=~AF_UNIX \"AF_INET",
        "RestrictAddressFamilies=\"AF_INET\"",
        "RestrictNamespaces=\"user\"",
        "RestrictNamespaces=user 'net'",
        "RestrictNamespaces=us\\er",
        "RestrictNamespaces=time",
        "RestrictNamespaces=~time",
        "SystemCallArchitectures=native \"",
        "SystemCallArchitectures=native \"x86",
        "SystemCallArchitectures=mips64-le",
        "SystemCallArchitectures=mips-le",
        "SystemCallArchitectures=mipsel64",
        "IPAddressDeny=any\nIPAddressAllow=127.0.0.1 \\ ",
        "IPAddressDeny=any\nIPAddressAllow=127.0\\.0.1",
        "IPAddressDeny=any\nIPAddressAllow=x.localhost.localdomain",
        "IPAddressDeny=any\nIPAddressAllow=127.0.0.1/0x8",
        "IPAddressDeny=any\nIPAddressAllow=127.0.0.1/08",
        "IPAddressDeny=any\nIPAddressAllow=127.0.0.1/-0",
        "IPAddressDeny=any\nIPAddressAllow=::1/0200",
        "User=app\nSupplementaryGroups=\"\"",
        "User=app\nSupplementaryGroups=a \"",
        "User=app\nSupplementaryGroups=a \\ ",
        "User=app\nSupplementaryGroups='a:b'",
        "DevicePolicy=closed\nDeviceAllow=\"/dev/null r\"",
        "DevicePolicy=closed\nDeviceAllow=/dev/../tmp/x",
        "DevicePolicy=closed\nDeviceAllow=/dev",
        "DevicePolicy=closed\nDeviceAllow=/sys/x",
        "DevicePolicy=closed\nDeviceAllow=/run/systemd/inaccessible/chr",
    ];
    let paths = write_services(&dir, "v", &lines);

    let bad = compare_each(&paths, &[], analyze_file);

    assert!(bad.is_empty(), "{}\n(lines: {lines:#?})", bad.join("\n"));
}

/// Red-team: systemd resolves `%` specifiers in `User=`, `Group=`,
/// `SupplementaryGroups=`, `RootDirectory=`, `RootImage=` and the
/// `DeviceAllow=` path before scoring, and refuses a unit with an unknown
/// one (`%z`: "Invalid slot"). rip-audit took `User=%i` in
/// `app@root.service`, `User=%u` (the manager's user, root) and `User=%p`
/// in `nobody.service` for static non-root users.
#[test]
fn redteam_specifiers_resolve_before_scoring() {
    let dir = test_dir("redteam_specifiers");
    let s = "[Service]\nExecStart=/bin/true\n";
    let files = [
        ("app@root.service", format!("{s}User=%i\n")),
        ("app@nobody.service", format!("{s}User=%I\n")),
        ("root.service", format!("{s}User=%p\n")),
        ("nobody.service", format!("{s}User=%N\n")),
        ("u.service", format!("{s}User=%u\n")),
        ("uid.service", format!("{s}User=%U\n")),
        (
            "gid.service",
            format!("{s}User=app\nGroup=%G\nSupplementaryGroups=%g\n"),
        ),
        ("empty.service", format!("{s}User=%i\n")),
        ("home.service", format!("{s}User=%h\n")),
        ("unknown.service", format!("{s}User=nobody\nUser=%z\n")),
        ("unknown-group.service", format!("{s}User=app\nGroup=%Z\n")),
        (
            "unknown-sg.service",
            format!("{s}User=app\nSupplementaryGroups=a %1\n"),
        ),
        ("verbatim.service", format!("{s}User=nobody%\nUser=a%!\n")),
        ("rootdir.service", format!("{s}RootDirectory=%t\n")),
        ("rootdir-unknown.service", format!("{s}RootDirectory=/%z\n")),
        (
            "rootimg-empty.service",
            format!("{s}RootImage=/x.raw\nRootImage=%i\n"),
        ),
        ("-.service", format!("{s}RootDirectory=%f\n")),
        (
            "dev.service",
            format!("{s}DevicePolicy=closed\nDeviceAllow=/dev/%z\n"),
        ),
        // A template file is analysed as its instance `i`.
        ("tpl@.service", format!("{s}User=%i\n")),
        ("tpl-x@.service", format!("{s}User=%N\nRootDirectory=/%n\n")),
        (
            "tpl-x@i.service.d/a.conf",
            "[Service]\nNoNewPrivileges=yes\n".into(),
        ),
        (
            "tpl-@i.service.d/a.conf",
            "[Service]\nPrivateTmp=yes\n".into(),
        ),
    ];
    let files: Vec<(&str, Vec<u8>)> = files
        .iter()
        .map(|(n, t)| (*n, t.clone().into_bytes()))
        .collect();
    let mut paths = write_all(&dir, &files);
    paths.retain(|p| !p.to_string_lossy().ends_with(".conf"));

    let bad = compare_each(&paths, &[], analyze_file);

    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Red-team: a setting systemd refuses (a non-boolean `DynamicUser=`, an
/// invalid `User=`, a relative `RootDirectory=`, an unknown specifier)
/// makes it stop reading the file: in the unit file the unit fails to
/// load, but in a drop-in only the rest of that drop-in is lost and the
/// unit loads. rip-audit refused the unit and applied the lines after.
/// Also `User=-` (a dash and no digits) is refused like `User=-1`.
#[test]
fn redteam_refused_setting_in_a_dropin_ends_only_the_dropin() {
    let dir = test_dir("redteam_dropin_refused");
    let s = "[Service]\nExecStart=/bin/true\n";
    let conf = |a: &str, b: &str| format!("[Service]\n{a}\n{b}\n").into_bytes();
    let files = [
        ("a.service", s.as_bytes().to_vec()),
        (
            "a.service.d/1.conf",
            conf("PrivateTmp=yes\nDynamicUser=maybe", "NoNewPrivileges=yes"),
        ),
        (
            "a.service.d/2.conf",
            conf("ProtectHome=yes\nUser=a:b", "ProtectSystem=strict"),
        ),
        (
            "a.service.d/3.conf",
            conf("RootDirectory=srv", "PrivateDevices=yes"),
        ),
        ("a.service.d/4.conf", conf("User=%z", "PrivateNetwork=yes")),
        (
            "a.service.d/5.conf",
            conf("SupplementaryGroups=x \\ ", "LockPersonality=yes"),
        ),
        ("a.service.d/6.conf", conf("ProtectClock=yes", "")),
        ("dash.service", format!("{s}User=-\n").into_bytes()),
        ("dash-dropin.service", s.as_bytes().to_vec()),
        (
            "dash-dropin.service.d/x.conf",
            conf("User=app\nUser=-", "PrivateTmp=yes"),
        ),
    ];
    let mut paths = write_all(&dir, &files);
    paths.retain(|p| !p.to_string_lossy().ends_with(".conf"));

    let bad = compare_each(&paths, &[], analyze_file);

    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Red-team: the path settings rip-audit scores go through systemd's
/// `unit_path_printf()` and `path_simplify_and_warn()`: the value (with its
/// specifiers resolved, `%` or not) may be at most 4095 bytes, no
/// component longer than 255 bytes, and no `..`. `IPIngressFilterPath=`
/// and `IPEgressFilterPath=` resolve specifiers too (`%t/x` is a custom
/// BPF filter) and ignore a path that fails these checks; `RootDirectory=`
/// and `RootImage=` refuse the unit; `DeviceAllow=` ignores the line.
/// rip-audit took `IPIngressFilterPath=%t/x` for relative, `/a/../b` for a
/// filter, and loaded a unit with a 256-byte `RootDirectory=` component.
#[test]
fn redteam_path_settings_resolve_and_validate_like_systemd() {
    let dir = test_dir("redteam_path_settings");
    let (long, max) = ("a".repeat(256), "a".repeat(255));
    let lines = [
        "IPIngressFilterPath=%t/x".to_owned(),
        "IPEgressFilterPath=%S".to_owned(),
        "IPEgressFilterPath=%h/x".to_owned(),
        "IPIngressFilterPath=%y".to_owned(),
        "IPIngressFilterPath=/a/../b".to_owned(),
        "IPIngressFilterPath=/x/..".to_owned(),
        "IPIngressFilterPath=/..".to_owned(),
        "IPIngressFilterPath=/a/./b".to_owned(),
        "IPIngressFilterPath=%n".to_owned(),
        "IPIngressFilterPath=/%z".to_owned(),
        format!("IPIngressFilterPath=/{long}"),
        format!("IPIngressFilterPath=/{max}"),
        format!("IPIngressFilterPath=/{}", "a/".repeat(2100)),
        format!("RootDirectory=/{long}"),
        format!("RootDirectory=/{max}"),
        format!("RootDirectory=/{}", "a/".repeat(2047)),
        format!("RootDirectory=/{}", "a/".repeat(2048)),
        format!("RootDirectory=/{}a", "/".repeat(4200)),
        format!("RootImage=/{long}"),
        format!("DevicePolicy=closed\nDeviceAllow=/dev/{long} rw"),
        format!(
            "DevicePolicy=closed\nDeviceAllow=/dev/{} rw",
            "a/".repeat(2100)
        ),
        format!("DevicePolicy=closed\nDeviceAllow=char-{}", "a".repeat(4100)),
    ];
    let paths = write_services(&dir, "p", &lines);

    let bad = compare_each(&paths, &[], analyze_file);

    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Red-team: systemd-analyze refuses a unit file whose name is not a valid
/// unit name ("Failed to prepare filename ...: Invalid argument"): only
/// ASCII letters, digits and `:-_.\` (and `@` for templates and
/// instances), not starting with `@`, under 256 bytes once a template is
/// named as its instance `i`. rip-audit scored `a b.service`,
/// `a+b.service`, `ünï.service` and the like.
#[test]
fn redteam_invalid_unit_name_is_refused() {
    let dir = test_dir("redteam_unit_names");
    let text = b"[Service]\nExecStart=/bin/true\n".to_vec();
    let long_template = format!("{}@.service", "a".repeat(246));
    let fits_template = format!("{}@.service", "a".repeat(245));
    let long_plain = format!("{}.service", "a".repeat(247));
    let names = [
        "@x.service",
        "a b.service",
        "a%b.service",
        "a+b.service",
        "a,b.service",
        "a~b.service",
        "ünï.service",
        "a:b.service",
        "a\\b.service",
        "a@b@c.service",
        "-.service",
        ".a.service",
        "a..b.service",
        &long_template,
        &fits_template,
        &long_plain,
    ];
    let files: Vec<(&str, Vec<u8>)> = names.iter().map(|n| (*n, text.clone())).collect();
    let paths = write_all(&dir, &files);

    let bad = compare_each(&paths, &[], analyze_file);

    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// `--format scores` over many units with one that cannot be read: exit 2,
/// an error naming the file, and on stdout only whole lines for units
/// before it, in argument order (never the bad one or one after it),
/// however the threads share the work. A link to a unit in the same
/// directory is an alias of it: the same line.
#[test]
fn scores_format_stops_at_an_unreadable_unit_and_keeps_order() {
    let dir = test_dir("scores-error");
    let files = gen::write_units(&dir, 0x0bad_5eed, 300);
    let pipe = test_dir("scores-error-fifo").join("pipe");
    let st = Command::new("mkfifo").arg(&pipe).status().unwrap();
    assert!(st.success());
    let fifo = dir.join("zz-fifo.service");
    std::os::unix::fs::symlink(&pipe, &fifo).unwrap();
    let link = dir.join("zz-link.service");
    std::os::unix::fs::symlink(&files[0], &link).unwrap();
    let mut paths: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    let bad_at = 250;
    paths.insert(bad_at, fifo.to_str().unwrap());
    paths.insert(10, link.to_str().unwrap());
    let bad_at = bad_at + 1;

    for _ in 0..5 {
        let args = [&["--format", "scores", "--unit"][..], &paths].concat();
        let (code, lines, out) = rip_audit(&args, "");

        assert_eq!(code, 2, "{}", show("scores with a fifo", &out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("zz-fifo.service"), "{err}");
        assert!(lines.len() < bad_at, "{}", show("scores with a fifo", &out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.is_empty() || text.ends_with('\n'), "{text}");
        for (i, (l, p)) in lines.iter().zip(&paths).enumerate() {
            // The link is an alias: the unit it leads to is scored.
            let want = if i == 10 { paths[0] } else { p };
            assert_eq!(l["path"], want, "{}", show("scores with a fifo", &out));
        }
        if lines.len() > 10 {
            assert_eq!(lines[10], lines[0]);
        }
    }
}

/// systemd-analyze once over `files` (so that their directories make one
/// search path, in order): one array of rows per unit it loads.
fn analyze_together(files: &[PathBuf]) -> Vec<Vec<Value>> {
    let args: Vec<&std::ffi::OsStr> = files.iter().map(|f| f.as_os_str()).collect();
    let res = systemd_security(files[0].parent().unwrap(), &args);
    String::from_utf8_lossy(&res.stdout)
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Red-team (issue 9): systemd finds a unit by name along the search path
/// (the given files' directories first, in order), not by the path given.
/// A link to a unit on the path is an alias: the unit at the end of the
/// chain is scored, with the drop-ins of every name that leads to it. A
/// link elsewhere is a linked unit file, read through, with its own
/// name's drop-ins only. A broken, looping or self alias, a link to
/// nothing and a FIFO are not found; a link to /dev/null is masked. A file
/// whose name an earlier directory also has is shadowed by that one.
/// rip-audit read each file given under its own name.
#[test]
fn redteam_aliases_linked_files_and_shadowing_as_systemd_finds_them() {
    use std::os::unix::fs::symlink;
    let t = test_dir("redteam_aliases");
    let (a, b, out) = (t.join("a"), t.join("b"), t.join("outside"));
    let unit = service_with;
    let conf = conf_bytes;
    write_all(
        &a,
        &[
            ("bar.service", unit("PrivateTmp=yes")),
            ("bar.service.d/y.conf", conf("ProtectSystem=strict")),
            ("foo.service.d/x.conf", conf("NoNewPrivileges=yes")),
            ("self.service.d/z.conf", conf("ProtectHome=yes")),
            // Same file name under two names: the unit's own name wins.
            ("bar.service.d/same.conf", conf("ProtectClock=yes")),
            ("foo.service.d/same.conf", conf("ProtectClock=no")),
            ("linked.service.d/w.conf", conf("PrivateDevices=yes")),
            ("t@.service", unit("LockPersonality=yes")),
            ("t@.service.d/v.conf", conf("RestrictRealtime=yes")),
            ("a-t@.service.d/u.conf", conf("ProtectHostname=yes")),
            ("plain.service", unit("User=nobody")),
        ],
    );
    write_all(
        &out,
        &[
            ("real.service", unit("User=nobody")),
            ("real.service.d/r.conf", conf("PrivateNetwork=yes")),
        ],
    );
    write_all(&b, &[("bar.service", unit("RestrictSUIDSGID=yes"))]);
    symlink("bar.service", a.join("foo.service")).unwrap();
    symlink("foo.service", a.join("self.service")).unwrap();
    symlink(a.join("bar.service"), a.join("abs.service")).unwrap();
    symlink("../a/./bar.service", a.join("dots.service")).unwrap();
    symlink(out.join("real.service"), a.join("linked.service")).unwrap();
    symlink("t@.service", a.join("a-t@.service")).unwrap();
    symlink("nothere.service", a.join("broken.service")).unwrap();
    symlink("loop2.service", a.join("loop1.service")).unwrap();
    symlink("loop1.service", a.join("loop2.service")).unwrap();
    symlink("self2.service", a.join("self2.service")).unwrap();
    symlink("bar.socket", a.join("socket.service")).unwrap();
    symlink("/dev/null", a.join("masked.service")).unwrap();
    symlink(t.join("gone/x.service"), a.join("gone.service")).unwrap();
    nix::unistd::mkfifo(
        &a.join("fifo.service"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    // Symlinks in the target's directory are followed before `..`:
    // sub/../bar.service is outside/bar.service, a linked file.
    write_all(&out, &[("bar.service", unit("ProtectKernelLogs=yes"))]);
    std::fs::create_dir_all(out.join("deep")).unwrap();
    symlink(out.join("deep"), a.join("sub")).unwrap();
    symlink("sub/../bar.service", a.join("updown.service")).unwrap();
    // Template aliases (an instance reached in a chain is the subject of
    // redteam_missing_files_leave_the_path_and_chains_reach_templates).
    write_all(&a, &[("c@.service", unit("ProtectKernelTunables=yes"))]);
    symlink("c@.service", a.join("b@.service")).unwrap();
    symlink("c@.service", a.join("e@z.service")).unwrap();
    // An instance linked to a template whose own instance of that name
    // is a file: named as loaded.
    write_all(
        &a,
        &[
            ("j@.service", unit("ProtectControlGroups=yes")),
            ("j@x.service", unit("RestrictNamespaces=yes")),
        ],
    );
    symlink("j@.service", a.join("k@x.service")).unwrap();
    let names = [
        "bar", "foo", "self", "abs", "dots", "linked", "t@", "a-t@", "plain", "broken", "loop1",
        "self2", "socket", "masked", "gone", "fifo", "updown", "e@z", "k@x",
    ];
    let files: Vec<PathBuf> = names
        .iter()
        .map(|n| a.join(format!("{n}.service")))
        .collect();

    // One at a time: the file's own directory comes first.
    let mut bad = compare_each(&files, &[], analyze_file);

    // Together with b/ first: bar.service is b's, for the alias too.
    let together = [
        b.join("bar.service"),
        a.join("foo.service"),
        a.join("bar.service"),
    ];
    let want = analyze_together(&together);
    let paths: Vec<&str> = together.iter().map(|f| f.to_str().unwrap()).collect();
    let (_, got, o) = rip_audit(&[&["--observe=no", "--unit"][..], &paths].concat(), "");
    assert_eq!((want.len(), got.len()), (3, 3), "{}", show("together", &o));
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        let (w, g) = (systemd_rows(w), rip_rows(&g["rip_audit"]["unit"]));
        for (field, row) in &w {
            if g.get(field) != Some(row) {
                bad.push(format!(
                    "together #{i}: {field}: systemd {row:?}, rip-audit {:?}",
                    g.get(field)
                ));
            }
        }
    }
    assert_eq!(got[1]["rip_audit"]["unit"]["name"], "bar.service");
    assert_eq!(got[1]["rip_audit"]["unit"]["path"], paths[0]);

    // Names as systemd shows them: a template given is its instance `i`.
    let shown: Vec<String> = ["t@", "a-t@", "e@z", "updown", "foo", "k@x"]
        .iter()
        .map(|n| a.join(format!("{n}.service")).to_str().unwrap().to_owned())
        .collect();
    let shown: Vec<&str> = shown.iter().map(String::as_str).collect();
    let (_, got, o) = rip_audit(
        &[&["--format", "scores", "--unit"][..], &shown].concat(),
        "",
    );
    let got: Vec<&str> = got.iter().map(|l| l["unit"].as_str().unwrap()).collect();
    let want = [
        "t@i.service",
        "t@i.service",
        "c@z.service",
        "updown.service",
        "bar.service",
        "k@x.service",
    ];
    assert_eq!(got, want, "{}", show("names", &o));

    // A given directory reached through a symlink, with an alias to the
    // real path of a unit in it: an alias still.
    let real = t.join("real");
    write_all(
        &real,
        &[
            ("b.service", unit("PrivateTmp=yes")),
            ("b.service.d/p.conf", conf("ProtectSystem=strict")),
        ],
    );
    symlink(real.join("b.service"), real.join("a.service")).unwrap();
    symlink(&real, t.join("link")).unwrap();
    bad.extend(compare_each(&[t.join("link/a.service")], &[], analyze_file));

    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// A drop-in with one `[Service]` line.
fn conf_bytes(line: &str) -> Vec<u8> {
    format!("[Service]\n{line}\n").into_bytes()
}

/// A runnable service with `lines` added.
fn service_with(lines: &str) -> Vec<u8> {
    format!("[Service]\nExecStart=/bin/true\n{lines}\n").into_bytes()
}

/// Red-team (issue 9): under `--root`, units are found by name on the
/// root's search path, as `systemd-analyze --root` loads them: an earlier
/// directory's file of the same name shadows the one given, an absolute
/// alias link is read as a path inside the root. Links are resolved inside
/// the root: a unit or drop-in linked to `/etc/shadow` or `/opt/x` is read
/// from the root, never from this machine (where systemd-analyze would
/// read it; rip-audit deliberately does not).
#[test]
fn redteam_units_under_root_found_by_name_and_read_inside_it() {
    use std::os::unix::fs::symlink;
    let root = test_dir("redteam_root_lookup").join("root");
    let (e, l) = (
        root.join("etc/systemd/system"),
        root.join("lib/systemd/system"),
    );
    let unit = service_with;
    write_all(
        &l,
        &[
            ("bar.service", unit("PrivateTmp=yes")),
            ("shadowed.service", unit("PrivateTmp=yes")),
            (
                "bar.service.d/b.conf",
                b"[Service]\nProtectSystem=strict\n".to_vec(),
            ),
        ],
    );
    write_all(
        &e,
        &[
            ("shadowed.service", unit("User=nobody")),
            (
                "foo.service.d/f.conf",
                b"[Service]\nNoNewPrivileges=yes\n".to_vec(),
            ),
            ("inroot.service.d/x.conf", Vec::new()),
        ],
    );
    write_all(
        &root.join("opt"),
        &[("real.service", unit("ProtectHome=yes"))],
    );
    write_all(
        &root.join("etc"),
        &[("secret.conf", b"[Service]\nPrivateDevices=yes\n".to_vec())],
    );
    symlink("/lib/systemd/system/bar.service", e.join("foo.service")).unwrap();
    symlink("/opt/real.service", e.join("inroot.service")).unwrap();
    std::fs::remove_file(e.join("inroot.service.d/x.conf")).unwrap();
    symlink("/etc/secret.conf", e.join("inroot.service.d/x.conf")).unwrap();
    symlink("/etc/shadow", e.join("shadow.service")).unwrap();
    // Inside the root, links on the way are followed (an absolute one from
    // the root) and `..` stops at the root.
    std::fs::create_dir_all(root.join("srv")).unwrap();
    symlink("/lib/systemd/system", root.join("srv/l")).unwrap();
    symlink("/srv/l/bar.service", e.join("via.service")).unwrap();
    symlink(
        "../../../../../../lib/systemd/system/bar.service",
        e.join("up.service"),
    )
    .unwrap();
    let r = root.to_str().unwrap();

    let by_name = [
        e.join("foo.service"),
        l.join("shadowed.service"),
        e.join("via.service"),
        e.join("up.service"),
    ];
    let bad = compare_each(&by_name, &["--root", r], |f| {
        analyze_in_root(&root, &f.file_name().unwrap().to_string_lossy())
    });
    assert!(bad.is_empty(), "{}", bad.join("\n"));

    // Where rip-audit parts from systemd-analyze --root on purpose:
    // a directory of the search path that links out of the root is not
    // listed on this machine: the root has no such directory.
    let host = test_dir("redteam_root_lookup_host");
    write_all(
        &host,
        &[
            ("shadowed.service", unit("User=hostsecret")),
            ("shadowed.service.d/h.conf", conf_bytes("ProtectClock=yes")),
        ],
    );
    std::fs::create_dir_all(root.join("run/systemd")).unwrap();
    symlink(&host, root.join("run/systemd/system")).unwrap();
    let (_, got, out) = rip_audit(
        &[
            "--root",
            r,
            "--observe=no",
            "--unit",
            e.join("inroot.service").to_str().unwrap(),
            e.join("shadow.service").to_str().unwrap(),
            l.join("shadowed.service").to_str().unwrap(),
        ],
        "",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(got.len(), 3, "{}", show("in root", &out));
    let shadowed = rip_rows(&got[2]["rip_audit"]["unit"]);
    assert_eq!(shadowed["ProtectClock"].badness, 1, "{text}");
    let inroot = rip_rows(&got[0]["rip_audit"]["unit"]);
    assert_eq!(got[0]["rip_audit"]["unit"]["loaded"], true, "{text}");
    assert_eq!(inroot["ProtectHome"].badness, 0, "{text}");
    assert_eq!(inroot["PrivateDevices"].badness, 0, "{text}");
    assert_eq!(got[1]["rip_audit"]["unit"]["loaded"], false, "{text}");
    assert!(!text.contains("root:"), "{text}");
    assert!(!text.contains("hostsecret"), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).is_empty(),
        "{}",
        show("in root", &out)
    );
}

/// Red-team (issue 9): in `--format scores`, a file that cannot be read
/// before the search path is listed (a FIFO, a dangling alias), among
/// more files than one batch holds, made the run fail now and then (exit
/// 2, lines missing), though systemd only finds no such unit. Now such a
/// file waits for the listing: not found, every line written, exit 0.
#[test]
fn scores_format_leaves_unreadable_early_files_to_the_listing() {
    let dir = test_dir("scores-early");
    let mut files = gen::write_units(&dir, 0x0ea7_1e55, 70);
    std::os::unix::fs::symlink("nowhere.service", dir.join("dang.service")).unwrap();
    nix::unistd::mkfifo(
        &dir.join("fifo.service"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    files.insert(3, dir.join("dang.service"));
    files.insert(40, dir.join("fifo.service"));
    let paths: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();

    for _ in 0..8 {
        let args = [&["--format", "scores", "--unit"][..], &paths].concat();
        let (code, lines, out) = rip_audit(&args, "");

        assert_eq!(code, 0, "{}", show("scores", &out));
        assert_eq!(lines.len(), files.len(), "{}", show("scores", &out));
        assert_eq!(lines[3]["loaded"], false);
        assert_eq!(lines[40]["loaded"], false);
        assert_eq!(lines[41]["loaded"], true);
    }
}

/// Red-team (issue 9): systemd-analyze puts the directory of a file given
/// on the search path only if the file exists (a dangling link's does not
/// count), and an instance that an alias chain reaches without a file of
/// its own stands on its template. rip-audit put every directory first and
/// refused the template there.
#[test]
fn redteam_missing_files_leave_the_path_and_chains_reach_templates() {
    use std::os::unix::fs::symlink;
    let t = test_dir("redteam_missing_dirs");
    let unit = service_with;
    let (d0, d1) = (t.join("d0"), t.join("d1"));
    write_all(&d1, &[("x.service", unit("PrivateTmp=yes"))]);
    std::fs::create_dir_all(&d0).unwrap();
    symlink("/nonexistent/x.service", d0.join("x.service")).unwrap();
    write_all(
        &d1,
        &[
            ("t@.service", unit("NoNewPrivileges=yes")),
            ("zz.service", unit("ProtectHome=yes")),
        ],
    );
    symlink("t@x.service", d1.join("a@x.service")).unwrap();
    let files = [
        d0.join("x.service"),
        d1.join("x.service"),
        d1.join("zz.service"),
        d1.join("a@x.service"),
    ];

    let want = analyze_together(&files);
    let paths: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    let (_, got, o) = rip_audit(&[&["--observe=no", "--unit"][..], &paths].concat(), "");
    let (_, lean, _) = rip_audit(
        &[&["--format", "scores", "--unit"][..], &paths].concat(),
        "",
    );

    assert_eq!(
        (want.len(), got.len()),
        (4, 4),
        "{}",
        show("missing dirs", &o)
    );
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        let u = &g["rip_audit"]["unit"];
        let w = systemd_rows(w);
        assert_eq!(u["loaded"], true, "#{i}: {}", show("missing dirs", &o));
        assert_eq!(rip_rows(u), w, "#{i}");
        assert_eq!(lean[i]["score"], u["score"], "#{i}");
    }
    assert_eq!(got[0]["rip_audit"]["unit"]["path"], paths[1]);
    assert_eq!(lean[3]["unit"], "t@x.service");

    // A dangling instance whose template is in its directory does put the
    // directory on the path; its link, to a plain name, is no alias (and
    // ignored), so the template is its fragment.
    let d2 = t.join("d2");
    write_all(&d2, &[("q@.service", unit("ProtectClock=yes"))]);
    symlink("plain.service", d2.join("q@x.service")).unwrap();
    let one = [d2.join("q@x.service")];
    let want = analyze_together(&one);
    let p = one[0].to_str().unwrap();
    let (_, got, o) = rip_audit(&["--observe=no", "--unit", p], "");
    assert_eq!(
        (want.len(), got.len()),
        (1, 1),
        "{}",
        show("dangling instance", &o)
    );
    assert_eq!(
        rip_rows(&got[0]["rip_audit"]["unit"]),
        systemd_rows(&want[0])
    );
}

/// Red-team (issue 9, differential fuzzer): systemd loads the files of one
/// run in order, and a unit one of whose names another loaded unit already
/// has is merged into that one: an instance linked to a template
/// (`t-q@x.service` → `u@.service`) and the instance's own file
/// (`u@x.service`), given together, are both the unit loaded first.
/// rip-audit scored each file as if given alone.
#[test]
fn redteam_units_of_one_run_merge_as_systemd_loads_them() {
    use std::os::unix::fs::symlink;
    let d = test_dir("redteam_merge");
    let unit = service_with;
    write_all(
        &d,
        &[
            ("u@.service", unit("PrivateTmp=yes\nNoNewPrivileges=yes")),
            ("u@x.service", unit("ProtectHome=yes")),
        ],
    );
    symlink("u@.service", d.join("t-q@x.service")).unwrap();
    let (alias, own) = (d.join("t-q@x.service"), d.join("u@x.service"));

    for (files, name) in [
        ([alias.clone(), own.clone()], "t-q@x.service"),
        ([own.clone(), alias.clone()], "u@x.service"),
    ] {
        let want = analyze_together(&files);
        let paths: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
        let (_, got, o) = rip_audit(&[&["--observe=no", "--unit"][..], &paths].concat(), "");
        let (_, lean, _) = rip_audit(
            &[&["--format", "scores", "--unit"][..], &paths].concat(),
            "",
        );

        assert_eq!((want.len(), got.len()), (2, 2), "{}", show("merge", &o));
        assert_eq!(want[0], want[1], "systemd reports one unit twice");
        for (w, (g, l)) in want.iter().zip(got.iter().zip(&lean)) {
            assert_eq!(rip_rows(&g["rip_audit"]["unit"]), systemd_rows(w));
            assert_eq!(l["unit"], name);
        }
    }
}

/// Red-team (issue 9, found on this machine's own units): systemd 252 loads
/// a service without `ExecStart=` when its type is (or defaults to)
/// oneshot and `SuccessAction=` or `RemainAfterExit=yes` makes it useful
/// (`systemd-exit.service`), and refuses more than one `ExecStart=` outside
/// oneshot, `Restart=always` with oneshot, `Type=dbus` without a bus name
/// and `PAMName=` with `KillMode=process`. rip-audit took any unit with an
/// `ExecStart=` as loaded and any without as refused.
#[test]
fn redteam_load_rules_of_service_verify() {
    let dir = test_dir("redteam_verify");
    let lines = [
        "[Unit]\nSuccessAction=exit-force\n[Service]\nPrivateTmp=yes",
        "[Unit]\nSuccessAction=none\n[Service]\nPrivateTmp=yes",
        "[Unit]\nSuccessAction=exit\nSuccessAction=\n[Service]\nPrivateTmp=yes",
        "[Unit]\nSuccessAction=halt\n[Service]\nPrivateTmp=yes",
        "[Service]\nPrivateTmp=yes",
        "[Service]\nType=simple\nExecStop=/bin/true",
        "[Service]\nExecStop=/bin/true",
        "[Service]\nExecStop=/bin/true\nRemainAfterExit=yes",
        "[Service]\nExecStart=/bin/true\nExecStart=/bin/false",
        "[Service]\nType=oneshot\nExecStart=/bin/true\nExecStart=/bin/false",
        "[Service]\nExecStart=/bin/true ; /bin/false",
        "[Service]\nExecStart=/bin/true ;",
        "[Service]\nExecStart=;",
        "[Service]\nExecStart=/bin/true\nExecStart=\nExecStart=/bin/false",
        "[Service]\nType=oneshot\nExecStart=/bin/true\nRestart=always",
        "[Service]\nType=oneshot\nExecStart=/bin/true\nRestart=on-failure",
        "[Service]\nBusName=org.example.x\nExecStart=/bin/true",
        "[Service]\nType=dbus\nExecStart=/bin/true",
        "[Service]\nExecStart=/bin/true\nPAMName=login\nKillMode=process",
        "[Service]\nExecStart=/bin/true\nPAMName=login",
        "[Service]\nType=notify\nExecStop=/bin/true",
    ];
    let files: Vec<(String, Vec<u8>)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("v{i}.service"), format!("{l}\n").into_bytes()))
        .collect();
    let named: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let paths = write_all(&dir, &named);

    let bad = compare_each(&paths, &[], analyze_file);

    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
