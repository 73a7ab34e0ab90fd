//! Integration tests of rip-unit: the real binary on temp roots, checked with
//! systemd's own tools (`systemd-analyze verify` and `security --offline`
//! on the host), and in a systemd 252 container (tests/e2e/sandbox) where
//! the demo apps must start and serve and random argv/env must come back
//! byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_rip-unit");
const TMP: &str = env!("CARGO_TARGET_TMPDIR");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

// ---------------------------------------------------------------------------
// Harness

/// A directory per test under the target's tmp dir, kept when it fails.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> Self {
        let p = Path::new(TMP).join("rip-unit").join(name);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for inspection: {:?}", self.0);
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

struct Run {
    cmd: String,
    out: Output,
}

impl Run {
    fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn describe(&self) -> String {
        format!(
            "command: {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd,
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }
    fn ok(self) -> Self {
        assert_eq!(self.code(), 0, "{}", self.describe());
        self
    }
    fn records(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{}", self.describe()))
            })
            .collect()
    }
}

fn run(program: &str, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    // A run that fails on its flags may exit before reading its input.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing stdin: {e}"
        );
    }
    let out = child.wait_with_output().unwrap();
    Run {
        cmd: format!("{program} {}", args.join(" ")),
        out,
    }
}

fn rip_unit(root: &Path, extra: &[&str], input: &str) -> Run {
    let r = root.display().to_string();
    let mut args = vec!["--root", r.as_str()];
    args.extend_from_slice(extra);
    run(BIN, &args, input.as_bytes())
}

fn ndjson(apps: &[Value]) -> String {
    apps.iter().map(|a| format!("{a}\n")).collect()
}

fn demo_fleet() -> Vec<Value> {
    let text = std::fs::read_to_string(Path::new(MANIFEST).join("../examples/apps.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A root that `systemd-analyze --root=` accepts: the host's unit
/// directory for the standard targets, and a stand-in executable at every
/// ExecStart path (verify checks that it exists).
fn prepare_root(root: &Path, apps: &[Value]) {
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    if !root.join("usr/lib/systemd/system").exists() {
        std::os::unix::fs::symlink("/lib/systemd/system", root.join("usr/lib/systemd/system"))
            .unwrap();
    }
    for a in apps {
        let name = a["name"].as_str().unwrap();
        let exe = a["exec"][0]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("/home/{name}/bin/{name}"));
        let host = root.join(exe.trim_start_matches('/'));
        std::fs::create_dir_all(host.parent().unwrap()).unwrap();
        std::fs::copy("/bin/true", &host).unwrap();
    }
}

/// `systemd-analyze verify` must print nothing and succeed.
fn assert_verify_clean(root: &Path, unit: &str) {
    let path = root.join("etc/systemd/system").join(unit);
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .arg(&path)
        .output()
        .expect("systemd-analyze is required (Debian package systemd)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify {path:?} is not clean:\n{text}\n--- unit ---\n{}",
        std::fs::read_to_string(&path).unwrap_or_default()
    );
}

/// The overall exposure of `systemd-analyze security --offline=true`.
fn exposure(root: &Path, unit: &str) -> f64 {
    let path = root.join("etc/systemd/system").join(unit);
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(format!("--root={}", root.display()))
        .arg(&path)
        .output()
        .expect("systemd-analyze is required");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no overall exposure for {path:?}:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    line.split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            let content = if m.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            out.insert(p, (content, m.mode(), m.mtime_nsec()));
        }
    }
    out
}

fn unit_text(root: &Path, unit: &str) -> String {
    std::fs::read_to_string(root.join("etc/systemd/system").join(unit)).unwrap()
}

fn notes(rec: &Value) -> Vec<String> {
    rec["rip_unit"]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["code"].as_str().unwrap().to_owned())
        .collect()
}

/// One app of each runtime on :80 with metrics and backups, plus one on a
/// loopback high port, for the exposure matrix.
fn runtime_fleet(runtime: &str, profile: &str) -> Vec<Value> {
    vec![
        json!({"name": format!("{runtime}-low"), "runtime": runtime, "profile": profile,
               "exec": [format!("/home/{runtime}-low/bin/app"), "-listen", ":80",
                        "-metrics", "127.0.0.1:9101", "-dbpath", format!("/home/{runtime}-low/data/app.db")],
               "listen": [{"port": 80}], "metrics": {"port": 9101}, "backups": {"enabled": true}}),
        json!({"name": format!("{runtime}-high"), "runtime": runtime, "profile": profile,
               "exec": [format!("/home/{runtime}-high/bin/app"), "-listen", "127.0.0.1:8080",
                        "-metrics", "127.0.0.1:9102", "-dbpath", format!("/home/{runtime}-high/data/app.db")],
               "listen": [{"addr": "127.0.0.1", "port": 8080}], "metrics": {"port": 9102}}),
    ]
}

// ---------------------------------------------------------------------------
// Host tests: systemd's verifier and scorer on the generated files

#[test]
fn every_runtime_and_profile_verifies_clean_and_meets_its_exposure_bound() {
    let dir = TestDir::new("exposure_matrix");
    let mut table = String::from("runtime  profile  :80-public  127.0.0.1:8080\n");

    for profile in ["default", "strict"] {
        for runtime in ["go", "rust", "c", "node", "jvm", "python", "other"] {
            let root = dir.join(&format!("{profile}-{runtime}"));
            let fleet = runtime_fleet(runtime, profile);
            prepare_root(&root, &fleet);

            rip_unit(&root, &[], &ndjson(&fleet)).ok();

            let mut row = format!("{runtime:8} {profile:8}");
            for app in &fleet {
                let name = app["name"].as_str().unwrap();
                assert_verify_clean(&root, &format!("{name}.service"));
                if profile == "strict" {
                    assert_verify_clean(&root, &format!("{name}.socket"));
                }
                let e = exposure(&root, &format!("{name}.service"));
                let bound = if profile == "strict" { 0.9 } else { 1.5 };
                assert!(e <= bound, "{name} ({profile}) exposure {e} > {bound}");
                row.push_str(&format!(" {e:>10.1}"));
            }
            table.push_str(&row);
            table.push('\n');
        }
    }
    eprintln!("systemd-analyze security --offline=true exposure:\n{table}");
}

#[test]
fn demo_fleet_units_verify_clean_and_score_within_bounds() {
    let dir = TestDir::new("demo_fleet");
    let root = dir.join("root");
    let fleet = demo_fleet();
    prepare_root(&root, &fleet);

    let out = rip_unit(&root, &[], &ndjson(&fleet)).ok();

    let recs = out.records();
    assert_eq!(recs.len(), 3);
    for rec in &recs {
        let name = rec["name"].as_str().unwrap();
        assert_eq!(rec["rip_unit"]["changed"], true);
        assert_eq!(rec["rip_unit"]["dry_run"], false);
        assert_eq!(rec["rip_unit"]["needs_daemon_reload"], true);
        assert_verify_clean(&root, &format!("{name}.service"));
        let e = exposure(&root, &format!("{name}.service"));
        assert!(e <= 1.5, "{name}: {e}");
        let text = unit_text(&root, &format!("{name}.service"));
        assert!(text.starts_with("# Generated by rip-unit "), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                !line.contains(" #") && !line.contains(" ;"),
                "trailing comment? {line}"
            );
        }
    }
    // app1 binds :80: only CAP_NET_BIND_SERVICE, ambient = bounding.
    let app1 = unit_text(&root, "app1.service");
    assert!(app1.contains("\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n"));
    assert!(app1.contains("\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n"));
    assert!(
        app1.contains("\nProtectHome=tmpfs\n")
            && app1.contains("\nBindPaths=\"/home/app1/data\"\n")
    );
    assert!(app1.contains("\nUMask=0027\n"));
    assert!(
        !app1.contains("ReadWritePaths=/home"),
        "226/NAMESPACE with tmpfs"
    );
    // app2 has no low port: no capability at all.
    let app2 = unit_text(&root, "app2.service");
    assert!(
        app2.contains("\nCapabilityBoundingSet=\n") && app2.contains("\nAmbientCapabilities=\n")
    );
    assert!(app2.contains("\nMemoryMax=512M\n") && app2.contains("\nTasksMax=64\n"));
    assert!(app2.contains("\nIPAddressAllow=localhost\n"));
    // app3 needs outbound HTTPS and has no backups.
    let app3 = unit_text(&root, "app3.service");
    assert!(app3.contains("\nIPAddressAllow=any\n") && app3.contains("\nUMask=0077\n"));
    assert!(notes(&recs[2]).contains(&"UNIT_IP_ALLOW_ANY".to_owned()));
}

#[test]
fn second_run_changes_nothing_and_dry_run_writes_nothing() {
    let dir = TestDir::new("idempotence");
    let root = dir.join("root");
    let mut fleet = demo_fleet();
    fleet[1]["profile"] = json!("strict");
    prepare_root(&root, &fleet);
    let before = snapshot(&root);

    let dry = rip_unit(&root, &["--dry-run"], &ndjson(&fleet)).ok();
    assert_eq!(snapshot(&root), before, "the dry run wrote something");
    for rec in dry.records() {
        assert_eq!(rec["rip_unit"]["dry_run"], true);
        assert_eq!(rec["rip_unit"]["changed"], true);
        assert_eq!(rec["rip_unit"]["files"][0]["outcome"], "created");
    }

    rip_unit(&root, &[], &ndjson(&fleet)).ok();
    let after_first = snapshot(&root);
    let second = rip_unit(&root, &[], &ndjson(&fleet)).ok();

    assert_eq!(snapshot(&root), after_first, "the second run rewrote files");
    for rec in second.records() {
        assert_eq!(rec["rip_unit"]["changed"], false, "{rec}");
        assert_eq!(rec["rip_unit"]["needs_daemon_reload"], false, "{rec}");
        for f in rec["rip_unit"]["files"].as_array().unwrap() {
            assert_eq!(f["outcome"], "unchanged");
        }
    }
    assert!(root.join("etc/systemd/system/app2.socket").is_file());
}

#[test]
fn changed_spec_replaces_the_unit_and_asks_for_reload_and_restart() {
    let dir = TestDir::new("replace");
    let root = dir.join("root");
    let mut fleet = vec![demo_fleet().remove(0)];
    prepare_root(&root, &fleet);
    rip_unit(&root, &[], &ndjson(&fleet)).ok();

    fleet[0]["env"]["APP_MODE"] = json!("staging");
    let rec = rip_unit(&root, &[], &ndjson(&fleet))
        .ok()
        .records()
        .remove(0);

    assert_eq!(rec["rip_unit"]["files"][0]["outcome"], "replaced");
    assert_eq!(rec["rip_unit"]["needs_daemon_reload"], true);
    assert_eq!(rec["rip_unit"]["needs_restart"], true);
    assert!(unit_text(&root, "app1.service").contains("Environment=\"APP_MODE=staging\""));
}

#[test]
fn user_dropins_are_kept_listed_and_their_overrides_noted() {
    let dir = TestDir::new("dropins");
    let root = dir.join("root");
    let fleet = vec![demo_fleet().remove(0)];
    prepare_root(&root, &fleet);
    let d = root.join("etc/systemd/system/app1.service.d");
    std::fs::create_dir_all(&d).unwrap();
    let dropin =
        "[Service]\n# operator's choice\nProtectHome=no\nEnvironment=EXTRA=1\nSystemCallFilter=\n";
    std::fs::write(d.join("10-local.conf"), dropin).unwrap();

    let out = rip_unit(&root, &[], &ndjson(&fleet)).ok();
    rip_unit(&root, &[], &ndjson(&fleet)).ok();

    assert_eq!(
        std::fs::read_to_string(d.join("10-local.conf")).unwrap(),
        dropin
    );
    let rec = &out.records()[0];
    let di = &rec["rip_unit"]["drop_ins"][0];
    assert_eq!(
        di["path"],
        "/etc/systemd/system/app1.service.d/10-local.conf"
    );
    let effects: Vec<(String, String)> = di["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["key"].as_str().unwrap().to_owned(),
                s["effect"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        effects,
        [
            ("ProtectHome".to_owned(), "overrides".to_owned()),
            ("Environment".to_owned(), "extends".to_owned()),
            ("SystemCallFilter".to_owned(), "resets".to_owned()),
        ]
    );
    assert!(notes(rec).contains(&"UNIT_DROPIN_OVERRIDE".to_owned()));
    assert!(
        out.stderr().contains("rip-unit: warning: app \"app1\""),
        "{}",
        out.describe()
    );
}

#[test]
fn remove_stops_tracking_and_deletes_only_our_files() {
    let dir = TestDir::new("remove");
    let root = dir.join("root");
    let mut fleet = vec![demo_fleet().remove(1)];
    fleet[0]["profile"] = json!("strict");
    prepare_root(&root, &fleet);
    let enabled = rip_unit(&root, &["--enable"], &ndjson(&fleet))
        .ok()
        .records()
        .remove(0);
    assert_eq!(enabled["rip_unit"]["enabled"], true, "{enabled}");
    let wants = root.join("etc/systemd/system/multi-user.target.wants/app2.service");
    let sock_wants = root.join("etc/systemd/system/sockets.target.wants/app2.socket");
    assert!(wants.symlink_metadata().is_ok() && sock_wants.symlink_metadata().is_ok());
    let again = rip_unit(&root, &["--enable"], &ndjson(&fleet))
        .ok()
        .records()
        .remove(0);
    assert_eq!(again["rip_unit"]["changed"], false, "{again}");
    let d = root.join("etc/systemd/system/app2.service.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("x.conf"), "[Service]\nNice=5\n").unwrap();
    let before = snapshot(&root);

    let dry = rip_unit(&root, &["--remove", "--dry-run"], &ndjson(&fleet)).ok();
    assert_eq!(snapshot(&root), before);
    assert_eq!(dry.records()[0]["rip_unit"]["changed"], true);
    let rec = rip_unit(&root, &["--remove"], &ndjson(&fleet))
        .ok()
        .records()
        .remove(0);

    assert_eq!(rec["rip_unit"]["action"], "remove");
    assert_eq!(rec["rip_unit"]["changed"], true);
    assert!(!root.join("etc/systemd/system/app2.service").exists());
    assert!(!root.join("etc/systemd/system/app2.socket").exists());
    assert!(wants.symlink_metadata().is_err() && sock_wants.symlink_metadata().is_err());
    assert!(d.join("x.conf").is_file(), "the user's drop-in must stay");
    assert!(notes(&rec).contains(&"UNIT_DROPIN_KEPT".to_owned()));
    let second = rip_unit(&root, &["--remove"], &ndjson(&fleet))
        .ok()
        .records()
        .remove(0);
    assert_eq!(second["rip_unit"]["changed"], false);
}

#[test]
fn remove_refuses_a_unit_rip_unit_did_not_write() {
    let dir = TestDir::new("remove_foreign");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    std::fs::write(
        root.join("etc/systemd/system/ssh.service"),
        "[Service]\nExecStart=/usr/sbin/sshd\n",
    )
    .unwrap();

    let out = rip_unit(&root, &["--remove"], "{\"name\":\"ssh\"}\n");

    assert_eq!(out.code(), 2, "{}", out.describe());
    assert!(root.join("etc/systemd/system/ssh.service").exists());
}

/// Finding 1: a unit file rip-unit did not write is never silently
/// replaced; `--force` moves it aside.
#[test]
fn foreign_unit_in_etc_is_not_replaced_without_force() {
    let dir = TestDir::new("foreign_unit");
    let root = dir.join("root");
    let ssh = json!({"name": "ssh"});
    prepare_root(&root, &[json!({"name": "ok1"}), ssh.clone()]);
    let foreign = "[Service]\nExecStart=/usr/sbin/sshd -D\n";
    std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    std::fs::write(root.join("etc/systemd/system/ssh.service"), foreign).unwrap();
    let before = snapshot(&root);

    for extra in [&[][..], &["--dry-run"][..]] {
        let out = rip_unit(&root, extra, "{\"name\":\"ok1\"}\n{\"name\":\"ssh\"}\n");

        assert_eq!(out.code(), 2, "{}", out.describe());
        assert!(
            out.stderr().starts_with("rip-unit: error: record 2")
                && out.stderr().contains("field \"name\"")
                && out.stderr().contains("not written by rip-unit"),
            "{}",
            out.describe()
        );
        assert!(out.stdout().is_empty());
        assert_eq!(snapshot(&root), before, "nothing may be written");
    }

    let rec = rip_unit(&root, &["--force"], &ndjson(std::slice::from_ref(&ssh)))
        .ok()
        .records()
        .remove(0);

    let file = &rec["rip_unit"]["files"][0];
    assert_eq!(file["outcome"], "replaced", "{rec}");
    assert_eq!(
        file["previous"], "/etc/systemd/system/ssh.service.rip-unit-old",
        "{rec}"
    );
    assert!(
        notes(&rec).contains(&"UNIT_REPLACED_FOREIGN".to_owned()),
        "{rec}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/systemd/system/ssh.service.rip-unit-old")).unwrap(),
        foreign
    );
    assert!(unit_text(&root, "ssh.service").starts_with("# Generated by rip-unit "));
    assert_verify_clean(&root, "ssh.service");
    // Now it is ours: no --force needed, nothing to do.
    let again = rip_unit(&root, &[], &ndjson(&[ssh]))
        .ok()
        .records()
        .remove(0);
    assert_eq!(again["rip_unit"]["changed"], false, "{again}");
    assert!(again["rip_unit"]["files"][0].get("previous").is_none());
}

/// Finding 1: a unit of the same name elsewhere on systemd's search path
/// (or an init script) is never silently shadowed.
#[test]
fn vendor_unit_of_the_same_name_is_not_shadowed_without_force() {
    let dir = TestDir::new("vendor_unit");
    let root = dir.join("root");
    // usr/lib/systemd/system is the host's (prepare_root), which always has
    // systemd-journald.service.
    let cases = [
        (json!({"name": "systemd-journald"}), None),
        (
            json!({"name": "vend1"}),
            Some("lib/systemd/system/vend1.service"),
        ),
        (
            json!({"name": "vend2"}),
            Some("usr/local/lib/systemd/system/vend2.service"),
        ),
        (
            json!({"name": "vend3"}),
            Some("run/systemd/system/vend3.service"),
        ),
        (json!({"name": "vend4"}), Some("etc/init.d/vend4")),
        (
            json!({"name": "vend5", "profile": "strict", "listen": [{"port": 8085}]}),
            Some("lib/systemd/system/vend5.socket"),
        ),
    ];
    let apps: Vec<Value> = cases.iter().map(|(a, _)| a.clone()).collect();
    prepare_root(&root, &apps);
    for (_, file) in &cases {
        if let Some(f) = file {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "[Service]\nExecStart=/bin/true\n").unwrap();
        }
    }
    assert!(
        root.join("usr/lib/systemd/system/systemd-journald.service")
            .exists(),
        "the host has no systemd-journald.service in /lib/systemd/system"
    );
    let before = snapshot(&root);

    for (app, file) in &cases {
        let out = rip_unit(&root, &[], &format!("{{\"name\":\"ok1\"}}\n{app}\n"));

        assert_eq!(out.code(), 2, "{}", out.describe());
        let shown = file.map_or(
            "/usr/lib/systemd/system/systemd-journald.service".to_owned(),
            |f| format!("/{f}"),
        );
        assert!(
            out.stderr().starts_with("rip-unit: error: record 2")
                && out.stderr().contains("field \"name\"")
                && out.stderr().contains(&shown)
                && out.stderr().contains("--force"),
            "{}",
            out.describe()
        );
        assert_eq!(snapshot(&root), before, "nothing may be written");
    }

    let recs = rip_unit(&root, &["--force"], &ndjson(&apps)).ok().records();

    for r in &recs {
        assert!(notes(r).contains(&"UNIT_SHADOWS_VENDOR".to_owned()), "{r}");
        assert_eq!(r["rip_unit"]["files"][0]["outcome"], "created", "{r}");
    }
    // The vendor files are untouched.
    for (_, file) in &cases {
        if let Some(f) = file {
            assert!(root.join(f).exists(), "{f}");
        }
    }
}

#[test]
fn switching_from_strict_to_default_removes_our_socket() {
    let dir = TestDir::new("profile_switch");
    let root = dir.join("root");
    let mut fleet = vec![demo_fleet().remove(0)];
    fleet[0]["profile"] = json!("strict");
    prepare_root(&root, &fleet);
    rip_unit(&root, &[], &ndjson(&fleet)).ok();
    assert!(
        unit_text(&root, "app1.socket").contains("ListenStream=80\nListenStream=127.0.0.1:9101\n")
    );

    fleet[0]["profile"] = json!("default");
    let rec = rip_unit(&root, &[], &ndjson(&fleet))
        .ok()
        .records()
        .remove(0);

    assert!(!root.join("etc/systemd/system/app1.socket").exists());
    assert_eq!(rec["rip_unit"]["files"][1]["outcome"], "removed");
}

#[test]
fn secrets_are_credentials_and_loose_files_are_noted() {
    let dir = TestDir::new("secrets");
    let root = dir.join("root");
    let app = json!({"name": "app1", "runtime": "go",
        "secrets": [{"name": "s3-key", "path": "/etc/rip/app1/s3.key"}],
        "env_files": ["/etc/rip/app1.env"]});
    prepare_root(&root, std::slice::from_ref(&app));
    std::fs::create_dir_all(root.join("etc/rip/app1")).unwrap();
    std::fs::write(root.join("etc/rip/app1/s3.key"), "TOPSECRETVALUE").unwrap();
    std::fs::set_permissions(
        root.join("etc/rip/app1/s3.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(root.join("etc/rip/app1.env"), "TOKEN=ALSOSECRET\n").unwrap();
    std::fs::set_permissions(
        root.join("etc/rip/app1.env"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    let rec = rip_unit(&root, &[], &ndjson(&[app]))
        .ok()
        .records()
        .remove(0);

    let text = unit_text(&root, "app1.service");
    assert!(text.contains("\nLoadCredential=s3-key:/etc/rip/app1/s3.key\n"));
    assert!(text.contains("\nEnvironmentFile=/etc/rip/app1.env\n"));
    assert!(!text.contains("TOPSECRETVALUE") && !text.contains("ALSOSECRET"));
    let perms: Vec<_> = rec["rip_unit"]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["code"] == "UNIT_SECRET_FILE_PERMS")
        .collect();
    assert_eq!(perms.len(), 1, "{rec}");
    assert!(perms[0]["message"].as_str().unwrap().contains("app1.env"));
    assert_verify_clean(&root, "app1.service");
}

#[test]
fn limits_the_root_cannot_enforce_are_noted() {
    let dir = TestDir::new("limits");
    let root = dir.join("root");
    let app = json!({"name": "app1", "limits": {"memory_max": "512M", "tasks_max": 64,
        "cpu_quota": "50%", "nofile": 4096}});
    prepare_root(&root, std::slice::from_ref(&app));
    std::fs::create_dir_all(root.join("sys/fs/cgroup")).unwrap();
    std::fs::write(
        root.join("sys/fs/cgroup/cgroup.controllers"),
        "cpuset cpu io\n",
    )
    .unwrap();

    let rec = rip_unit(&root, &[], &ndjson(&[app]))
        .ok()
        .records()
        .remove(0);

    let unenforced: Vec<String> = rec["rip_unit"]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["code"] == "UNIT_LIMIT_UNENFORCED")
        .map(|n| n["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(unenforced.len(), 2, "{unenforced:?}");
    assert!(
        unenforced[0].starts_with("MemoryMax=512M") && unenforced[1].starts_with("TasksMax=64")
    );
    let text = unit_text(&root, "app1.service");
    for line in [
        "MemoryMax=512M",
        "TasksMax=64",
        "CPUQuota=50%",
        "LimitNOFILE=4096",
    ] {
        assert!(text.contains(&format!("\n{line}\n")), "{line}");
    }
    assert_verify_clean(&root, "app1.service");
}

#[test]
fn values_systemd_cannot_carry_are_refused_before_anything_is_written() {
    let dir = TestDir::new("refused");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let cases = [
        (
            json!({"name": "a1", "exec": ["/home/a1/bin/a1", "x\u{FFFF}"]}),
            "exec[1]",
        ),
        (
            json!({"name": "a1", "exec": ["/home/a1/bin/a\"1"]}),
            "exec[0]",
        ),
        (json!({"name": "a1", "env": {"K": "\u{FDD0}"}}), "env.K"),
        (
            json!({"name": "a1", "description": "ends in a backslash \\"}),
            "description",
        ),
        (
            json!({"name": "a1", "profile": "strict", "outbound_https": true, "listen": [{"port": 80}]}),
            "profile",
        ),
    ];
    let before = snapshot(&root);

    for (bad, field) in cases {
        let input = format!("{{\"name\":\"ok1\"}}\n{bad}\n");
        let out = rip_unit(&root, &[], &input);

        assert_eq!(out.code(), 2, "{}", out.describe());
        assert!(
            out.stderr().starts_with("rip-unit: error: record 2"),
            "{}",
            out.describe()
        );
        assert!(
            out.stderr().contains(&format!("field \"{field}\"")),
            "{}",
            out.describe()
        );
        assert!(out.stdout().is_empty());
    }
    assert_eq!(snapshot(&root), before);
}

/// Finding 2: no writable bind may cover the binary, bin/ or the home
/// (rip-core or rip-unit refuses; either way exit 2 naming the field).
#[test]
fn writable_paths_covering_the_binary_bin_or_home_are_refused() {
    let dir = TestDir::new("writable_binary");
    let root = dir.join("root");
    let cases = [
        (
            json!({"name": "app1", "backups": {"enabled": true, "dir": "/home/app1/bin"}}),
            "backups.dir",
        ),
        (
            json!({"name": "app1", "rw_paths": ["/home/app1"]}),
            "rw_paths[0]",
        ),
        (
            json!({"name": "app1", "rw_paths": ["/home/app1/bin/app1"]}),
            "rw_paths[0]",
        ),
        (
            json!({"name": "app1", "exec": ["/opt/app1/bin/app1"], "rw_paths": ["/opt/app1"]}),
            "rw_paths[0]",
        ),
    ];
    prepare_root(&root, &[json!({"name": "ok1"}), json!({"name": "app1"})]);
    let before = snapshot(&root);

    for (bad, field) in cases {
        let out = rip_unit(&root, &[], &format!("{{\"name\":\"ok1\"}}\n{bad}\n"));

        assert_eq!(out.code(), 2, "{}", out.describe());
        assert!(
            out.stderr().starts_with("rip-unit: error: record 2")
                && out.stderr().contains(&format!("field \"{field}\"")),
            "{}",
            out.describe()
        );
        assert!(out.stdout().is_empty());
    }
    assert_eq!(snapshot(&root), before);
}

/// Finding 3: a value too long for a unit line (systemd: "No buffer space
/// available") is refused, naming the field.
#[test]
fn unbounded_lengths_are_refused() {
    let dir = TestDir::new("unbounded");
    let root = dir.join("root");
    prepare_root(&root, &[json!({"name": "ok1"}), json!({"name": "a1"})]);
    let before = snapshot(&root);
    let big = "d".repeat(2 << 20);
    // Each string within rip-core's cap, together over rip-unit's line
    // limit (one ExecStart= line) and execve()'s argument space.
    let mut argv = vec!["/home/a1/bin/a1".to_owned()];
    argv.extend((0..20).map(|_| "x".repeat(4000)));
    let env: serde_json::Map<String, Value> = (0..300)
        .map(|i| (format!("E{i}"), json!("v".repeat(4000))))
        .collect();

    for (bad, field) in [
        (json!({"name": "a1", "description": big}), "description"),
        (json!({"name": "a1", "env": {"BIG": big}}), "env.BIG"),
        (json!({"name": "a1", "exec": argv}), "exec"),
        (json!({"name": "a1", "env": env}), "env"),
    ] {
        let out = rip_unit(&root, &[], &format!("{{\"name\":\"ok1\"}}\n{bad}\n"));

        let short: String = out.describe().chars().take(4000).collect();
        assert_eq!(out.code(), 2, "{short}");
        assert!(
            out.stderr().starts_with("rip-unit: error: record 2")
                && out.stderr().contains(&format!("field \"{field}")),
            "{short}"
        );
    }
    assert_eq!(snapshot(&root), before);
}

#[test]
fn print_shows_the_units_and_writes_nothing() {
    let dir = TestDir::new("print");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let app = json!({"name": "app1", "profile": "strict", "listen": [{"port": 80}]});

    let out = rip_unit(&root, &["--print"], &ndjson(&[app])).ok();

    let text = out.stdout();
    assert!(text.contains("# ==== /etc/systemd/system/app1.service ====\n# Generated by rip-unit"));
    assert!(
        text.contains("# ==== /etc/systemd/system/app1.socket ====")
            && text.contains("ListenStream=80")
    );
    assert!(!root.join("etc").exists());
}

#[test]
fn reload_needs_the_running_system() {
    let dir = TestDir::new("reload_root");
    std::fs::create_dir_all(dir.join("root")).unwrap();
    let out = rip_unit(&dir.join("root"), &["--reload"], "{\"name\":\"a\"}\n");

    assert_eq!(out.code(), 2);
    assert!(out.stderr().contains("--root /"), "{}", out.describe());
}

/// Random printable text: ASCII specials, spaces, quotes, `%`, `$`, `\`,
/// `;`, `#` and code points from all of Unicode (no controls, no
/// noncharacters, which systemd refuses and rip-unit rejects).
struct Rng(u64);

impl Rng {
    fn from_env() -> Self {
        let seed = std::env::var("RIP_UNIT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("property seed: RIP_UNIT_SEED={seed}");
        Self(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn char(&mut self) -> char {
        const SPECIAL: &str = " \"'\\%$;#=:@-+!~`{}[]()<>|&*?\u{a0}\u{2028}\u{200b}é€✓😀";
        loop {
            let c = match self.below(4) {
                0 => char::from_u32(0x20 + self.below(0x5f) as u32),
                1 => SPECIAL
                    .chars()
                    .nth(self.below(SPECIAL.chars().count() as u64) as usize),
                2 => char::from_u32(0xa0 + self.below(0x2000) as u32),
                _ => char::from_u32(self.below(0x11_0000) as u32),
            };
            let Some(c) = c else { continue };
            let u = c as u32;
            let nonchar = (0xFDD0..=0xFDEF).contains(&u) || (u & 0xFFFE) == 0xFFFE;
            if !c.is_control() && !nonchar {
                return c;
            }
        }
    }
    fn string(&mut self, max: u64) -> String {
        (0..self.below(max + 1)).map(|_| self.char()).collect()
    }
}

/// Random specs whose argv and environment hold every kind of character.
fn random_specs(rng: &mut Rng, n: usize) -> Vec<Value> {
    // One path component: no '/', a letter first (never "." or ".."), and
    // no trailing blank or backslash where systemd takes the value verbatim.
    let component = |rng: &mut Rng, first: char| -> String {
        let mut c: String = rng.string(8).chars().filter(|c| *c != '/').collect();
        c.insert(0, first);
        c.trim_end_matches([' ', '\\']).to_owned()
    };
    (0..n)
        .map(|i| {
            let name = format!("pt{i}");
            let mut exe_name: String = rng
                .string(8)
                .chars()
                .filter(|c| !"/\"'\\".contains(*c))
                .collect();
            exe_name.insert(0, 'e');
            // Every other app lives in a home whose name holds any character.
            let home = if i % 2 == 1 {
                // (no quote or backslash: the executable lives there)
                let h: String = component(rng, 'h')
                    .chars()
                    .filter(|c| !"\"'\\".contains(*c))
                    .collect();
                format!("/home/{name}-{}", h.trim_end())
            } else {
                format!("/home/{name}")
            };
            let mut argv = vec![format!("{home}/bin/{exe_name}")];
            for _ in 0..rng.below(7) {
                argv.push(rng.string(12));
            }
            let rw = format!("/srv/ript/{name}-{}", component(rng, 'w'));
            let mut env = serde_json::Map::new();
            for j in 0..rng.below(4) {
                env.insert(format!("RIPT_{j}"), json!(rng.string(16)));
            }
            env.insert("RIPT_RW".into(), json!(rw));
            json!({"name": name, "runtime": "rust", "exec": argv, "env": env, "home": home,
                   "description": format!("p {}", rng.string(10)).trim_end_matches([' ', '\\']),
                   "rw_paths": [rw],
                   "env_files": [format!("/etc/ript/{name}-{}", component(rng, 'e'))],
                   "secrets": [{"name": format!("cred.{i}"),
                                "path": format!("/etc/ript/{name}-{}", component(rng, 's'))}]})
        })
        .collect()
}

#[test]
fn random_argv_and_env_are_escaped_so_systemd_verifies_them() {
    let dir = TestDir::new("property_verify");
    let root = dir.join("root");
    let mut rng = Rng::from_env();
    let specs = random_specs(&mut rng, 40);
    prepare_root(&root, &specs);

    rip_unit(&root, &[], &ndjson(&specs)).ok();

    for s in &specs {
        let name = s["name"].as_str().unwrap();
        assert_verify_clean(&root, &format!("{name}.service"));
        let text = unit_text(&root, &format!("{name}.service"));
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap();
        let argv: Vec<String> = s["exec"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(rip_unit::escape::exec_argv(exec).unwrap(), argv, "{exec}");
    }
}

// ---------------------------------------------------------------------------
// Under a real systemd 252 (tests/e2e/sandbox)

struct Sandbox {
    script: PathBuf,
    name: String,
    rootfs: PathBuf,
}

impl Sandbox {
    fn up(name: &str) -> Self {
        let script = Path::new(MANIFEST).join("../tests/e2e/sandbox");
        assert!(
            script.is_file(),
            "{script:?} is missing: the e2e harness (issue #3) is needed for rip-unit's container tests"
        );
        let mut sb = Self {
            script,
            name: name.to_owned(),
            rootfs: PathBuf::new(),
        };
        let up = sb.cmd(&["up"]);
        assert_eq!(
            up.code(),
            0,
            "cannot boot the systemd container\n{}",
            up.describe()
        );
        let env = sb.cmd(&["env"]).ok().stdout();
        let rootfs = env
            .lines()
            .find_map(|l| l.strip_prefix("RIP_SB_ROOTFS="))
            .map(|v| PathBuf::from(v.trim_matches(['\'', '"'])))
            .unwrap_or_else(|| panic!("no RIP_SB_ROOTFS in {env}"));
        sb.rootfs = rootfs;
        sb
    }

    fn cmd(&self, args: &[&str]) -> Run {
        let out = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .env("RIP_SB_NAME", &self.name)
            .output()
            .expect("bash");
        Run {
            cmd: format!(
                "RIP_SB_NAME={} bash {} {}",
                self.name,
                self.script.display(),
                args.join(" ")
            ),
            out,
        }
    }

    fn exec(&self, args: &[&str]) -> Run {
        let mut a = vec!["exec"];
        a.extend_from_slice(args);
        self.cmd(&a)
    }

    fn host(&self, path: &str) -> PathBuf {
        self.rootfs.join(path.trim_start_matches('/'))
    }

    /// Create the app's user and home layout inside, as rip-user and
    /// rip-perms would, and install `binary` at its exec path.
    fn deploy_app(&self, app: &Value, binary: &Path) {
        let name = app["name"].as_str().unwrap();
        if self.exec(&["id", name]).code() != 0 {
            self.exec(&[
                "useradd",
                "--system",
                "--home-dir",
                &format!("/home/{name}"),
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .ok();
        }
        let home = app["home"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("/home/{name}"));
        let exe = app["exec"][0].as_str().unwrap();
        std::fs::create_dir_all(self.host(&format!("{home}/data/backups"))).unwrap();
        std::fs::create_dir_all(self.host(exe).parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(self.host(exe));
        std::fs::copy(binary, self.host(exe)).unwrap();
        std::fs::write(
            self.host(&format!("{home}/age.key")),
            "AGE-SECRET-KEY-TEST\n",
        )
        .unwrap();
        // No shell: the home may hold any character.
        self.exec(&["chown", "-R", &format!("{name}:{name}"), &home])
            .ok();
        for (path, mode) in [
            (home.clone(), 0o710),
            (format!("{home}/data"), 0o700),
            (format!("{home}/data/backups"), 0o2750),
            (format!("{home}/age.key"), 0o600),
        ] {
            std::fs::set_permissions(self.host(&path), std::fs::Permissions::from_mode(mode))
                .unwrap();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let down = self.cmd(&["down"]);
        if down.code() != 0 {
            eprintln!("sandbox down failed\n{}", down.describe());
        }
    }
}

fn build_fixtures(out: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(out).unwrap();
    let fixtures = Path::new(MANIFEST).join("tests/fixtures");
    let go = out.join("goapp");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&go)
        .arg(fixtures.join("goapp.go"))
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", out.join("gocache"))
        .env("GOPATH", out.join("gopath"))
        .env("HOME", out)
        .status()
        .expect("go is required (Debian package golang-go)");
    assert!(status.success(), "go build failed");
    let mut built = Vec::new();
    for name in ["rustapp", "echo"] {
        let bin = out.join(name);
        let status = Command::new("rustc")
            .args(["--edition", "2021", "-O", "-o"])
            .arg(&bin)
            .arg(fixtures.join(format!("{name}.rs")))
            .status()
            .expect("rustc");
        assert!(status.success(), "rustc {name}.rs failed");
        built.push(bin);
    }
    let echo = built.pop().unwrap();
    (go, built.pop().unwrap(), echo)
}

fn curl(sb: &Sandbox, url: &str) -> String {
    let mut last = String::new();
    for _ in 0..30 {
        let r = sb.exec(&["curl", "-sS", "-m", "3", url]);
        if r.code() == 0 {
            return r.stdout();
        }
        last = r.describe();
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("{url} does not answer\n{last}");
}

fn journal(sb: &Sandbox, unit: &str) -> String {
    sb.exec(&["journalctl", "--no-pager", "-n", "30", "-u", unit])
        .stdout()
}

/// Deploy `fleet` with rip-unit on the container's root, start every app
/// and check that it serves its port and its metrics.
fn deploy_and_serve(
    sb: &Sandbox,
    fleet: &[Value],
    bins: &BTreeMap<&str, PathBuf>,
    label: &str,
) -> Vec<(String, f64)> {
    for app in fleet {
        sb.exec(&[
            "systemctl",
            "stop",
            &format!("{}.service", app["name"].as_str().unwrap()),
            &format!("{}.socket", app["name"].as_str().unwrap()),
        ]);
        sb.deploy_app(app, &bins[app["runtime"].as_str().unwrap()]);
    }
    let out = rip_unit(&sb.rootfs, &[], &ndjson(fleet)).ok();
    assert_eq!(out.records().len(), fleet.len());
    sb.exec(&["systemctl", "daemon-reload"]).ok();
    let mut scores = Vec::new();
    for app in fleet {
        let name = app["name"].as_str().unwrap();
        let start = sb.exec(&["systemctl", "start", &format!("{name}.service")]);
        assert_eq!(
            start.code(),
            0,
            "{label}: {name} does not start\n{}\n{}",
            start.describe(),
            journal(sb, name)
        );
        let port = app["listen"][0]["port"].as_u64().unwrap();
        let body = curl(sb, &format!("http://127.0.0.1:{port}/"));
        let runtime = app["runtime"].as_str().unwrap();
        assert!(
            body.starts_with(&format!("ok {runtime} uid=")),
            "{label}: {name}: {body}"
        );
        assert!(
            !body.starts_with("ok go uid=0") && !body.starts_with("ok rust uid=0"),
            "{body}"
        );
        let mport = app["metrics"]["port"].as_u64().unwrap();
        let metrics = curl(sb, &format!("http://127.0.0.1:{mport}/metrics"));
        assert!(
            metrics.contains("app_hits_total "),
            "{label}: {name} metrics: {metrics}"
        );
        let active = sb.exec(&["systemctl", "is-active", name]);
        assert_eq!(
            active.stdout().trim(),
            "active",
            "{label}: {name}\n{}",
            journal(sb, name)
        );
        // The app wrote its data dir and snapshots, read its key, and sees
        // no other home: in its mount namespace /home holds only its own,
        // with only the bound paths inside.
        assert!(
            sb.host(&format!("/home/{name}/data/app.db")).is_file(),
            "{label}: {name} db"
        );
        let log = journal(sb, name);
        assert!(
            !log.contains("read key:") && !log.contains("write snapshot:"),
            "{label}: {name}\n{log}"
        );
        if app["backups"]["enabled"] == true {
            assert!(
                sb.host(&format!("/home/{name}/data/backups/snapshot.db"))
                    .is_file(),
                "{label}: {name}"
            );
        }
        let pid = sb
            .exec(&["systemctl", "show", "-P", "MainPID", name])
            .stdout();
        let ls = |dir: &str| -> Vec<String> {
            let r = sb.exec(&["nsenter", "-t", pid.trim(), "-m", "ls", "-A", dir]);
            assert_eq!(r.code(), 0, "{}", r.describe());
            r.stdout().lines().map(str::to_owned).collect()
        };
        assert_eq!(
            ls("/home"),
            [name.to_owned()],
            "{label}: {name} sees other homes"
        );
        let mut own = ls(&format!("/home/{name}"));
        own.sort();
        let mut want = vec!["bin".to_owned(), "data".to_owned()];
        if app["exec"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().ends_with("age.key"))
        {
            want.insert(0, "age.key".to_owned());
        }
        assert_eq!(
            own, want,
            "{label}: {name} sees more of its home than it needs"
        );
        // The score as systemd computes it live.
        let sec = sb
            .exec(&["systemd-analyze", "security", "--no-pager", name])
            .stdout();
        let e: f64 = sec
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .and_then(|l| l.split_whitespace().find_map(|w| w.parse().ok()))
            .unwrap_or_else(|| panic!("no exposure in {sec}"));
        scores.push((format!("{label} {name} ({runtime})"), e));
    }
    scores
}

#[test]
fn in_a_systemd_container() {
    if !nix_is_root() {
        panic!("the container tests need root (systemd-nspawn); run cargo test as root");
    }
    let dir = TestDir::new("container");
    let (go, rust, echo) = build_fixtures(&dir.join("bin"));
    let sb = Sandbox::up(&format!("rip-unit-t{}", std::process::id() % 100000));
    let bins: BTreeMap<&str, PathBuf> = [("go", go.clone()), ("rust", rust.clone())].into();

    // 1. Every demo app starts and serves under both profiles, in both
    //    runtimes (a second pass swaps app1 and app2's runtimes so that Rust
    //    also binds :80 and Go a loopback port).
    let mut scores = Vec::new();
    for swap in [false, true] {
        for profile in ["default", "strict"] {
            let mut fleet = demo_fleet();
            for app in fleet.iter_mut() {
                app["profile"] = json!(profile);
                if profile == "strict" {
                    app.as_object_mut().unwrap().remove("outbound_https");
                }
            }
            if swap {
                fleet[0]["runtime"] = json!("rust");
                fleet[1]["runtime"] = json!("go");
            }
            scores.extend(deploy_and_serve(&sb, &fleet, &bins, profile));
        }
    }
    let mut table = String::new();
    for (what, e) in &scores {
        table.push_str(&format!("{what}: {e}\n"));
        let bound = if what.starts_with("strict") { 0.9 } else { 1.5 };
        assert!(*e <= bound, "{what}: exposure {e} > {bound}");
    }
    eprintln!("live exposure (systemd-analyze security in the container):\n{table}");

    // 2. Property: random argv and environment reach the process byte for
    //    byte (systemd itself parses the unit).
    let mut rng = Rng::from_env();
    let specs = random_specs(&mut rng, 25);
    for s in &specs {
        sb.deploy_app(s, &echo);
        let name = s["name"].as_str().unwrap();
        let rw = s["rw_paths"][0].as_str().unwrap();
        std::fs::create_dir_all(sb.host(rw)).unwrap();
        sb.exec(&["chown", &format!("{name}:{name}"), rw]).ok();
        let env_file = sb.host(s["env_files"][0].as_str().unwrap());
        std::fs::create_dir_all(env_file.parent().unwrap()).unwrap();
        std::fs::write(&env_file, format!("RIPT_FILE=from-file-{name}\n")).unwrap();
        std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secret = sb.host(s["secrets"][0]["path"].as_str().unwrap());
        std::fs::write(&secret, format!("secret of {name}")).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let records = rip_unit(&sb.rootfs, &[], &ndjson(&specs)).ok().records();
    for r in &records {
        let codes = notes(r);
        assert!(
            !codes
                .iter()
                .any(|c| c.starts_with("UNIT_SECRET") || c == "UNIT_RWP_OPTIONAL"),
            "{r}"
        );
    }
    sb.exec(&["systemctl", "daemon-reload"]).ok();
    for s in &specs {
        let name = s["name"].as_str().unwrap();
        let out_file = sb.host(&format!("{}/data/echo.out", s["home"].as_str().unwrap()));
        let _ = std::fs::remove_file(&out_file);
        let start = sb.exec(&["systemctl", "start", name]);
        assert_eq!(
            start.code(),
            0,
            "{name}\n{}\n{}\n{}",
            start.describe(),
            journal(&sb, name),
            unit_text(&sb.rootfs, &format!("{name}.service"))
        );
        let mut text = String::new();
        for _ in 0..50 {
            if let Ok(t) = std::fs::read_to_string(&out_file) {
                text = t;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(
            !text.is_empty(),
            "{name} wrote no echo.out\n{}",
            journal(&sb, name)
        );
        let decode = |h: &str| -> String {
            let bytes: Vec<u8> = (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                .collect();
            String::from_utf8(bytes).unwrap()
        };
        let argv: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("A "))
            .map(decode)
            .collect();
        let envs: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("E "))
            .map(decode)
            .filter(|kv| kv.starts_with("RIPT_"))
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect();
        let want_argv: Vec<String> = s["exec"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let mut want_env: BTreeMap<String, String> = s["env"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        want_env.insert("RIPT_FILE".into(), format!("from-file-{name}"));
        let creds: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("C "))
            .map(|l| {
                let (n, d) = l.split_once(' ').unwrap();
                format!("{}={}", decode(n), decode(d))
            })
            .collect();
        let index = name.trim_start_matches("pt");
        assert_eq!(
            creds,
            [format!("cred.{index}=secret of {name}")],
            "{name}: credentials"
        );
        let rw = s["rw_paths"][0].as_str().unwrap();
        assert!(
            sb.host(&format!("{rw}/rw.ok")).is_file(),
            "{name}: {rw:?} not writable\n{}",
            journal(&sb, name)
        );
        assert_eq!(
            argv,
            want_argv,
            "{name}: argv\n{}",
            unit_text(&sb.rootfs, &format!("{name}.service"))
        );
        assert_eq!(
            envs,
            want_env,
            "{name}: environment\n{}",
            unit_text(&sb.rootfs, &format!("{name}.service"))
        );
        let show = sb
            .exec(&["systemctl", "show", "-p", "Description", "--value", name])
            .stdout();
        assert_eq!(
            show.trim_end_matches('\n'),
            s["description"].as_str().unwrap(),
            "{name}: Description"
        );
    }

    // 3. Run inside with --root /: it sees the container's cgroup
    //    controllers, drives systemctl, and a second run changes nothing;
    //    --remove stops and removes.
    std::fs::copy(BIN, sb.host("/usr/local/bin/rip-unit")).unwrap();
    let app = json!({"name": "inside", "runtime": "go", "profile": "strict",
        "exec": ["/home/inside/bin/inside", "-listen", ":8090", "-metrics", "127.0.0.1:9190", "-dbpath", "/home/inside/data/app.db"],
        "listen": [{"port": 8090}], "metrics": {"port": 9190}, "limits": {"memory_max": "256M", "tasks_max": 32}});
    sb.deploy_app(&app, &go);
    std::fs::write(sb.host("/root/inside.json"), format!("{app}\n")).unwrap();
    let inside = |flags: &str| -> Value {
        let r = sb.exec(&["sh", "-c", &format!("rip-unit {flags} < /root/inside.json")]);
        assert_eq!(r.code(), 0, "{}", r.describe());
        serde_json::from_str(r.stdout().trim()).unwrap()
    };
    let first = inside("--enable --now");
    let codes = notes(&first);
    assert!(
        codes
            .iter()
            .filter(|c| *c == "UNIT_LIMIT_UNENFORCED")
            .count()
            == 2,
        "the container has no memory/pids controller: {first}"
    );
    assert_eq!(first["rip_unit"]["active"], true, "{first}");
    assert_eq!(first["rip_unit"]["enabled"], true, "{first}");
    assert_eq!(first["rip_unit"]["needs_daemon_reload"], false, "{first}");
    assert!(curl(&sb, "http://127.0.0.1:8090/").starts_with("ok go"));
    let second = inside("--enable --now");
    assert_eq!(second["rip_unit"]["changed"], false, "{second}");
    assert_eq!(second["rip_unit"]["systemctl"], json!([]), "{second}");
    let removed = inside("--remove --reload");
    assert_eq!(removed["rip_unit"]["changed"], true, "{removed}");
    assert_ne!(
        sb.exec(&["systemctl", "is-active", "inside.service"])
            .stdout()
            .trim(),
        "active"
    );
    assert!(!sb.host("/etc/systemd/system/inside.service").exists());
    assert!(!sb.host("/etc/systemd/system/inside.socket").exists());
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
