//! Cross-tool pipeline tests: the real binaries, piped as a user would pipe
//! them, on the demo fleet in a temp root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use rip_tests::{assert_same_tree, changed_flags, snapshot, tool, workspace, TestDir};
use serde_json::Value;

const TMP: &str = env!("CARGO_TARGET_TMPDIR");

fn demo_fleet() -> Vec<u8> {
    std::fs::read(workspace().join("examples/apps.json")).unwrap()
}

fn app_names() -> Vec<String> {
    let fleet: Vec<Value> = serde_json::from_slice(&demo_fleet()).unwrap();
    fleet
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Put a small executable at each app's binary path, as a deploy would
/// before the pipeline runs (systemd-analyze verify checks ExecStart=).
fn install_fake_binaries(root: &Path) {
    // systemd-analyze --root= looks for the default targets under the root.
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    std::os::unix::fs::symlink("/lib/systemd/system", root.join("usr/lib/systemd/system")).unwrap();
    for name in app_names() {
        let bin = root.join(format!("home/{name}/bin/{name}"));
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::write(&bin, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn backup_key(dir: &TestDir) -> String {
    let key = dir.join("backup_key.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEbW8V0cPZcJxQ7TjN0g1tUJ2P3lqVj1qkX4y6vKJQwL backup@pull\n",
    )
    .unwrap();
    key.display().to_string()
}

/// Run the whole pipeline once and return each stage's records.
fn pipeline(root: &Path, key: &str, input: &[u8]) -> [Vec<Value>; 5] {
    let r = root.display().to_string();
    let user = tool("rip-user", &["--root", &r, "--backup-key", key], input).expect_code(0);
    let perms = tool("rip-perms", &["--root", &r], &user.output.stdout).expect_code(0);
    let unit = tool("rip-unit", &["--root", &r], &perms.output.stdout).expect_code(0);
    let scrape = tool("rip-scrape", &["--root", &r], &unit.output.stdout).expect_code(0);
    let audit = tool("rip-audit", &["--root", &r], &scrape.output.stdout);
    assert!(
        audit.code() == 0,
        "the demo fleet should audit clean\n{}",
        audit.describe()
    );
    [
        user.records(),
        perms.records(),
        unit.records(),
        scrape.records(),
        audit.records(),
    ]
}

fn passwd_lines(root: &Path, file: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(root.join("etc").join(file))
        .unwrap()
        .lines()
        .map(|l| l.split(':').map(str::to_owned).collect())
        .collect()
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
        .mode()
        & 0o7777
}

#[test]
fn demo_fleet_pipeline_end_to_end() {
    let dir = TestDir::new(TMP, "demo_fleet_pipeline_end_to_end");
    let root = dir.join("root");
    install_fake_binaries(&root);
    let key = backup_key(&dir);

    let [user, perms, unit, scrape, audit] = pipeline(&root, &key, &demo_fleet());

    // Every record went through every tool and kept its input keys.
    for stage in [&user, &perms, &unit, &scrape, &audit] {
        assert_eq!(stage.len(), 3);
    }
    let last = &audit[0];
    for key in [
        "rip_user",
        "rip_perms",
        "rip_unit",
        "rip_scrape",
        "rip_audit",
    ] {
        assert!(last.get(key).is_some(), "{key} missing from {last}");
    }
    assert_eq!(last["description"], "Shop front, binds :80");

    // Users and groups present once each; backup in the groups of the apps
    // with backups (app1, app2) and not of app3.
    let passwd = passwd_lines(&root, "passwd");
    let group = passwd_lines(&root, "group");
    for name in app_names() {
        assert_eq!(
            passwd.iter().filter(|l| l[0] == name).count(),
            1,
            "user {name}"
        );
        assert_eq!(
            group.iter().filter(|l| l[0] == name).count(),
            1,
            "group {name}"
        );
        let u = passwd.iter().find(|l| l[0] == name).unwrap();
        assert_eq!(u[5], format!("/home/{name}"));
    }
    let members = |g: &str| -> Vec<String> {
        let line = group.iter().find(|l| l[0] == g).unwrap();
        line[3]
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert!(members("app1").contains(&"backup".to_owned()));
    assert!(members("app2").contains(&"backup".to_owned()));
    assert!(!members("app3").contains(&"backup".to_owned()));
    let shadow = passwd_lines(&root, "shadow");
    for name in app_names() {
        let s = shadow.iter().find(|l| l[0] == name).unwrap();
        assert!(
            s[1].starts_with('!') || s[1].starts_with('*'),
            "{name} not locked: {s:?}"
        );
    }

    // Owners and modes as the layout policy says.
    let uid = |n: &str| -> u32 {
        passwd.iter().find(|l| l[0] == n).unwrap()[2]
            .parse()
            .unwrap()
    };
    for (name, home_mode) in [("app1", 0o710), ("app2", 0o710), ("app3", 0o700)] {
        let home = root.join("home").join(name);
        assert_eq!(mode_of(&home), home_mode, "{home:?}");
        assert_eq!(
            mode_of(&home.join("data")) & 0o007,
            0,
            "data of {name} open to others"
        );
        assert_eq!(
            mode_of(&home.join(format!("bin/{name}"))) & 0o022,
            0,
            "binary of {name} writable"
        );
        if nix::unistd::geteuid().is_root() {
            let meta = std::fs::metadata(&home).unwrap();
            assert_eq!(meta.uid(), uid(name), "owner of {home:?}");
        }
    }
    for name in ["app1", "app2"] {
        let backups = root.join(format!("home/{name}/data/backups"));
        assert_eq!(mode_of(&backups), 0o2750, "{backups:?}");
    }

    // Units: accepted by systemd-analyze verify with nothing on stderr, and
    // scored by rip-audit exactly as systemd-analyze security does.
    for name in app_names() {
        let path = root.join(format!("etc/systemd/system/{name}.service"));
        let verify = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", root.display()))
            .arg(&path)
            .output()
            .expect("systemd-analyze must be installed");
        let stderr = String::from_utf8_lossy(&verify.stderr);
        assert!(
            verify.status.success() && stderr.trim().is_empty() && verify.stdout.is_empty(),
            "verify {path:?}: {stderr}"
        );

        let security = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(format!("--root={}", root.display()))
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&security.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("no overall line in {text}"));
        let expected: f64 = line
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap();
        let rec = audit.iter().find(|r| r["name"] == name.as_str()).unwrap();
        let ours = rec["rip_audit"]["unit"]["exposure"]
            .as_f64()
            .unwrap_or_else(|| panic!("no rip_audit.unit.exposure in {rec}"));
        assert_eq!(ours, expected, "exposure of {name}");
        assert!(ours <= 1.5, "{name} exposure {ours} above 1.5");
    }

    // Prometheus config accepted by promtool.
    let prom = root.join("etc/prometheus/prometheus.yml");
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(&prom)
        .output()
        .expect("promtool must be installed (Debian package prometheus)");
    assert!(
        check.status.success(),
        "promtool check config {prom:?}: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn second_run_changes_nothing() {
    let dir = TestDir::new(TMP, "second_run_changes_nothing");
    let root = dir.join("root");
    install_fake_binaries(&root);
    let key = backup_key(&dir);
    pipeline(&root, &key, &demo_fleet());
    let before = snapshot(&root);

    let stages = pipeline(&root, &key, &demo_fleet());

    for (stage, key) in stages[..4]
        .iter()
        .zip(["rip_user", "rip_perms", "rip_unit", "rip_scrape"])
    {
        assert_eq!(changed_flags(stage, key), vec![false; 3], "{key}");
    }
    assert_same_tree(&before, &snapshot(&root), "the second run rewrote files");
}

#[test]
fn dry_run_changes_nothing() {
    let dir = TestDir::new(TMP, "dry_run_changes_nothing");
    let root = dir.join("root");
    install_fake_binaries(&root);
    let before = snapshot(&root);
    let r = root.display().to_string();
    let mut input = demo_fleet();

    for name in ["rip-user", "rip-perms", "rip-unit", "rip-scrape"] {
        let run = tool(name, &["--root", &r, "--dry-run"], &input);
        // Later tools may refuse apps whose accounts do not exist yet; what
        // matters is that nothing is written.
        assert!(run.code() == 0 || run.code() == 2, "{}", run.describe());
        if run.code() == 0 {
            input = run.output.stdout.clone();
            assert!(run
                .records()
                .iter()
                .all(|r| r[name.replace('-', "_")]["dry_run"] == true));
        }
    }

    assert_same_tree(&before, &snapshot(&root), "a dry run wrote files");
}

/// A bad record is rejected with exit 2 by every tool, the message names the
/// record, the app and the field, and nothing is written.
#[test]
fn bad_records_are_rejected_before_anything_is_written() {
    let dir = TestDir::new(TMP, "bad_records_are_rejected_before_anything_is_written");
    let root = dir.join("root");
    install_fake_binaries(&root);
    let r = root.display().to_string();
    let cases: [(&str, &str); 3] = [
        (
            "{\"name\":\"ok1\"}\n{\"name\":\"bad\\nname\"}\n",
            "field \"name\"",
        ),
        (
            "{\"name\":\"a1\",\"listen\":[{\"port\":8080}]}\n{\"name\":\"a2\",\"listen\":[{\"port\":8080}]}\n",
            "listen[0].port",
        ),
        (
            "{\"name\":\"a1\",\"exec\":[\"/home/a1/bin/a1\",\"x\\u0007\"]}\n",
            "exec[1]",
        ),
    ];
    let before = snapshot(&root);

    for (input, field) in cases {
        for name in rip_tests::TOOLS {
            let run = tool(name, &["--root", &r], input.as_bytes()).expect_code(2);
            let err = run.stderr();
            assert!(err.starts_with(&format!("{name}: ")), "{}", run.describe());
            assert!(
                err.contains(field) && err.contains("record"),
                "{}",
                run.describe()
            );
            assert!(run.stdout().is_empty(), "{}", run.describe());
        }
    }

    assert_same_tree(&before, &snapshot(&root), "a rejected input wrote files");
}

#[test]
fn a_missing_root_is_refused_not_created() {
    let dir = TestDir::new(TMP, "a_missing_root_is_refused_not_created");
    let typo = dir.join("no-such-root");
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();

    for name in rip_tests::TOOLS {
        for root in [&typo, &file] {
            let r = root.display().to_string();
            let run = tool(name, &["--root", &r], b"{\"name\":\"app1\"}\n").expect_code(2);
            assert!(run.stderr().contains("--root"), "{}", run.describe());
            assert!(run.stdout().is_empty(), "{}", run.describe());
        }
        assert!(!typo.exists(), "{name} created the missing root");
    }
}

#[test]
fn unknown_keys_pass_through_every_tool() {
    let dir = TestDir::new(TMP, "unknown_keys_pass_through_every_tool");
    let root = dir.join("root");
    let key = backup_key(&dir);
    let bin = root.join("home/solo/bin/solo");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::write(&bin, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let input = br#"{"name":"solo","x-owner":{"team":"ops","ids":[1,2]},"listen":[{"port":8443}]}"#;

    let [_, _, _, _, audit] = pipeline(&root, &key, input);

    assert_eq!(
        audit[0]["x-owner"],
        serde_json::json!({"team":"ops","ids":[1,2]})
    );
}
