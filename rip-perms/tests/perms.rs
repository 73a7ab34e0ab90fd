#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Integration tests of rip-perms: the layout policy, the JSON contract, and
//! the hostile-tree suite of issue #8 (symlinks, hard links, fifos, sockets,
//! device nodes, deep and odd names, a bind mount, and a racing app that
//! swaps a directory for a symlink). Run as root, like CI.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

const APP_UID: u32 = 60001;
const APP2_UID: u32 = 60002;
const BIN: &str = env!("CARGO_BIN_EXE_rip-perms");

fn require_root() {
    assert_eq!(
        unsafe_geteuid(),
        0,
        "the rip-perms integration tests must run as root (they chown to numeric ids)"
    );
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// One test's scratch directory under CARGO_TARGET_TMPDIR, named after the
/// test, kept when the test fails; bind mounts are always undone.
struct Scratch {
    dir: PathBuf,
    root: PathBuf,
    mounts: Vec<PathBuf>,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        require_root();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.join("root");
        for d in ["etc", "home"] {
            fs::create_dir_all(root.join(d)).unwrap();
            fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(
            root.join("etc/passwd"),
            format!(
                "root:x:0:0:root:/root:/bin/bash\n\
                 app1:x:{APP_UID}:{APP_UID}::/home/app1:/bin/bash\n\
                 app2:x:{APP2_UID}:{APP2_UID}::/home/app2:/bin/bash\n\
                 backup:x:60009:60009::/home/backup:/bin/sh\n"
            ),
        )
        .unwrap();
        fs::write(
            root.join("etc/group"),
            format!(
                "root:x:0:\napp1:x:{APP_UID}:backup\napp2:x:{APP2_UID}:backup\nbackup:x:60009:\n"
            ),
        )
        .unwrap();
        Scratch {
            dir,
            root,
            mounts: Vec::new(),
        }
    }

    fn home(&self, app: &str) -> PathBuf {
        self.root.join("home").join(app)
    }

    /// A directory outside the root holding root-owned victims.
    fn victims(&self) -> PathBuf {
        let v = self.dir.join("victims");
        fs::create_dir_all(v.join("sub")).unwrap();
        for (name, mode) in [("shadow", 0o640), ("passwd", 0o644), ("sub/secret", 0o600)] {
            let p = v.join(name);
            fs::write(&p, b"victim\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
        v
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        run_as(None, &self.root, args, stdin)
    }

    fn bind(&mut self, src: &Path, dst: &Path) {
        let s = CString::new(src.as_os_str().as_bytes()).unwrap();
        let d = CString::new(dst.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C strings; a bind mount has no fs type or data.
        let r = unsafe {
            libc::mount(
                s.as_ptr(),
                d.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        assert_eq!(
            r,
            0,
            "bind mount {src:?} on {dst:?} failed: {} (the suite needs CAP_SYS_ADMIN)",
            std::io::Error::last_os_error()
        );
        self.mounts.push(dst.to_path_buf());
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let c = CString::new(m.as_os_str().as_bytes()).unwrap();
            // SAFETY: valid C string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("kept {:?} for inspection", self.dir);
        }
    }
}

/// Run rip-perms (as `uid` when given), killing it after 120 s: a hang
/// (e.g. on a fifo) fails the test.
fn run_as(uid: Option<u32>, root: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--root").arg(root).args(args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(u) = uid {
        cmd.uid(u).gid(u);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    // Read the output in another thread (a full pipe must not block the
    // child) and give up after 120 s.
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: plain syscall; the child has not been reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("rip-perms {args:?} did not finish in 120 s (hung?)");
        }
    };
    if !out.stderr.is_empty() {
        eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

fn results(out: &Output) -> Vec<Value> {
    assert_eq!(
        out.status.code(),
        Some(0),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["rip_perms"].clone())
        .collect()
}

/// The one `rip_perms` result of a run, whatever its exit status.
fn record_of(out: &Output) -> Value {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "stdout: {text}");
    serde_json::from_str::<Value>(lines[0]).unwrap()["rip_perms"].clone()
}

fn one(out: &Output) -> Value {
    let mut r = results(out);
    assert_eq!(r.len(), 1);
    r.remove(0)
}

/// (uid, gid, mode) of a path, not following a symlink.
fn meta(p: &Path) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

/// Owner and mode of everything under `dir` (never following symlinks).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u32, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        out.insert(d.clone(), meta(&d));
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), meta(&p));
            }
        }
    }
    out
}

/// Fail with only the entries that differ.
fn assert_unchanged(
    before: &BTreeMap<PathBuf, (u32, u32, u32)>,
    after: &BTreeMap<PathBuf, (u32, u32, u32)>,
    what: &str,
) {
    let changed: Vec<_> = before
        .iter()
        .filter(|(p, m)| after.get(*p) != Some(m))
        .map(|(p, m)| format!("{p:?}: {m:?} -> {:?}", after.get(p)))
        .collect();
    assert!(
        changed.is_empty(),
        "{what}: outside files changed: {changed:#?}"
    );
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
}

fn write(p: &Path, mode: u32, uid: u32) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, b"x").unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    chown(p, uid);
}

fn mkdir(p: &Path, mode: u32, uid: u32) {
    fs::create_dir_all(p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    chown(p, uid);
}

fn reasons(r: &Value) -> BTreeMap<String, String> {
    r["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["path"].as_str().unwrap().to_owned(),
                x["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const APP1_BACKUPS: &str = r#"{"name":"app1","backups":{"enabled":true}}"#;

// ---------------------------------------------------------------- policy

#[test]
fn layout_with_backups_follows_the_policy() {
    let s = Scratch::new("layout_with_backups");
    let h = s.home("app1");
    write(&h.join("bin/app1"), 0o4755, 0);
    write(&h.join("age.key"), 0o644, 0);
    write(&h.join("data/app.db"), 0o644, 0);
    write(&h.join("data/app.db-wal"), 0o664, APP_UID);
    write(&h.join("data/app.db-shm"), 0o664, APP_UID);
    write(&h.join("data/notes.txt"), 0o666, APP_UID);
    write(&h.join("data/backups/app-2026.db"), 0o600, APP_UID);
    write(&h.join("data/backups/old/app-2025.db"), 0o644, 0);
    write(&h.join("data/backups/stray.key"), 0o644, APP_UID);
    mkdir(&h.join("logs"), 0o777, 0);
    write(&h.join("logs/app.log"), 0o644, APP_UID);

    let r = one(&s.run(&[], APP1_BACKUPS));

    assert_eq!(r["changed"], true);
    let want = [
        ("", 0o710),
        ("bin", 0o700),
        ("bin/app1", 0o700),
        ("age.key", 0o600),
        ("data", 0o710),
        ("data/app.db", 0o600),
        ("data/app.db-wal", 0o600),
        ("data/app.db-shm", 0o600),
        ("data/notes.txt", 0o600),
        ("data/backups", 0o2750),
        ("data/backups/app-2026.db", 0o640),
        ("data/backups/old", 0o2750),
        ("data/backups/old/app-2025.db", 0o640),
        ("data/backups/stray.key", 0o600),
        ("logs", 0o700),
        ("logs/app.log", 0o600),
    ];
    for (rel, mode) in want {
        let p = if rel.is_empty() {
            h.clone()
        } else {
            h.join(rel)
        };
        assert_eq!(meta(&p), (APP_UID, APP_UID, mode), "{rel}");
    }
}

#[test]
fn layout_without_backups_is_closed_to_the_group() {
    let s = Scratch::new("layout_without_backups");

    let r = one(&s.run(&[], r#"{"name":"app2"}"#));

    let h = s.home("app2");
    assert_eq!(r["counts"]["changed"], 3, "{r}");
    assert_eq!(meta(&h), (APP2_UID, APP2_UID, 0o700));
    assert_eq!(meta(&h.join("data")), (APP2_UID, APP2_UID, 0o700));
    assert_eq!(meta(&h.join("bin")), (APP2_UID, APP2_UID, 0o700));
    assert!(!h.join("data/backups").exists());
    assert!(r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["created"] == true));
}

#[test]
fn backups_outside_data_leave_data_closed() {
    let s = Scratch::new("backups_outside_data");

    one(&s.run(
        &[],
        r#"{"name":"app1","backups":{"dir":"/home/app1/snap/daily"}}"#,
    ));

    let h = s.home("app1");
    assert_eq!(meta(&h).2, 0o710);
    assert_eq!(meta(&h.join("snap")).2, 0o710);
    assert_eq!(meta(&h.join("snap/daily")).2, 0o2750);
    assert_eq!(meta(&h.join("data")).2, 0o700);
}

#[test]
fn rw_paths_are_created_inside_and_outside_the_home() {
    let s = Scratch::new("rw_paths_created");

    let r = one(&s.run(
        &[],
        r#"{"name":"app1","rw_paths":["/home/app1/uploads/img","/srv/app1/cache"]}"#,
    ));

    assert_eq!(r["changed"], true);
    assert_eq!(
        meta(&s.home("app1").join("uploads")),
        (APP_UID, APP_UID, 0o700)
    );
    assert_eq!(
        meta(&s.home("app1").join("uploads/img")),
        (APP_UID, APP_UID, 0o700)
    );
    assert_eq!(meta(&s.root.join("srv")), (0, 0, 0o755));
    assert_eq!(meta(&s.root.join("srv/app1")), (0, 0, 0o755));
    assert_eq!(
        meta(&s.root.join("srv/app1/cache")),
        (APP_UID, APP_UID, 0o700)
    );
}

#[test]
fn spec_overrides_the_policy() {
    let s = Scratch::new("spec_override");
    write(&s.home("app1").join("bin/app1"), 0o755, APP_UID);
    write(&s.home("app1").join("data/report.csv"), 0o600, APP_UID);

    one(&s.run(
        &[],
        r#"{"name":"app1","perms":{"bin":{"file":"0500"},"data":{"file":"0400"}}}"#,
    ));

    assert_eq!(meta(&s.home("app1").join("bin/app1")).2, 0o500);
    assert_eq!(meta(&s.home("app1").join("data/report.csv")).2, 0o400);
}

#[test]
fn bad_override_is_rejected_before_anything_is_touched() {
    let s = Scratch::new("bad_override");
    write(&s.home("app1").join("data/app.db"), 0o644, 0);
    let input = format!(
        "{APP1_BACKUPS}\n{}\n",
        r#"{"name":"app2","perms":{"database":{"file":"0640"}}}"#
    );

    let out = s.run(&[], &input);

    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("perms.database.file") && err.contains("app2"),
        "{err}"
    );
    assert_eq!(meta(&s.home("app1").join("data/app.db")), (0, 0, 0o644));
    assert!(!s.home("app2").exists());
}

#[test]
fn unknown_policy_key_is_rejected() {
    let s = Scratch::new("unknown_policy_key");

    let out = s.run(&[], r#"{"name":"app1","perms":{"dta":{"file":"0600"}}}"#);

    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("perms"));
    assert!(!s.home("app1").exists());
}

#[test]
fn missing_account_is_an_error_before_anything_is_touched() {
    let s = Scratch::new("missing_account");

    let out = s.run(&[], &format!("{APP1_BACKUPS}\n{{\"name\":\"app7\"}}\n"));

    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("app7") && err.contains("rip-user"), "{err}");
    assert!(!s.home("app1").exists());
}

#[test]
fn restored_root_owned_database_is_given_back() {
    // CASES PERMS-05: a restore run as root leaves a root-owned database.
    let s = Scratch::new("perms_05_root_owned_db");
    mkdir(&s.home("app1").join("data"), 0o700, APP_UID);
    write(&s.home("app1").join("data/app.db"), 0o644, 0);

    let r = one(&s.run(&[], r#"{"name":"app1"}"#));

    assert_eq!(
        meta(&s.home("app1").join("data/app.db")),
        (APP_UID, APP_UID, 0o600)
    );
    let e = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/home/app1/data/app.db")
        .unwrap();
    assert_eq!(
        e["before"],
        serde_json::json!({"uid": 0, "gid": 0, "mode": "0644"})
    );
    assert_eq!(
        e["after"],
        serde_json::json!({"uid": APP_UID, "gid": APP_UID, "mode": "0600"})
    );
    assert_eq!(e["class"], "database");
}

#[test]
fn existing_backups_dir_gets_setgid_and_explicit_modes() {
    // CASES PERMS-06: an existing 0755 backups dir and a 0644 snapshot.
    let s = Scratch::new("perms_06_setgid");
    mkdir(&s.home("app1").join("data/backups"), 0o755, APP_UID);
    write(&s.home("app1").join("data/backups/db.bak"), 0o644, APP_UID);

    one(&s.run(&[], APP1_BACKUPS));

    assert_eq!(meta(&s.home("app1").join("data/backups")).2, 0o2750);
    assert_eq!(meta(&s.home("app1").join("data/backups/db.bak")).2, 0o640);
}

#[test]
fn second_run_changes_nothing() {
    let s = Scratch::new("second_run");
    write(&s.home("app1").join("data/x"), 0o644, 0);
    one(&s.run(&[], APP1_BACKUPS));

    let r = one(&s.run(&[], APP1_BACKUPS));

    assert_eq!(r["changed"], false);
    assert_eq!(r["counts"]["changed"], 0);
    assert_eq!(r["entries"], serde_json::json!([]));
}

#[test]
fn dry_run_reports_and_changes_nothing() {
    let s = Scratch::new("dry_run");
    write(&s.home("app1").join("data/app.db"), 0o644, 0);
    let before = snapshot(&s.root);

    let r = one(&s.run(&["--dry-run"], APP1_BACKUPS));

    assert_eq!(snapshot(&s.root), before);
    assert_eq!(r["dry_run"], true);
    assert_eq!(r["changed"], true);
    let entries = r["entries"].as_array().unwrap();
    let db = entries
        .iter()
        .find(|e| e["path"] == "/home/app1/data/app.db")
        .unwrap();
    assert_eq!(db["before"]["mode"], "0644");
    assert_eq!(db["after"]["mode"], "0600");
    let backups = entries
        .iter()
        .find(|e| e["path"] == "/home/app1/data/backups")
        .unwrap();
    assert_eq!(backups["created"], true);
    assert_eq!(backups["before"], Value::Null);
    assert_eq!(r["counts"]["changed"].as_u64(), Some(entries.len() as u64));
}

#[test]
fn dry_run_pipeline_uses_ids_planned_by_rip_user() {
    let s = Scratch::new("dry_run_planned_ids");
    let input = r#"{"name":"app7","rip_user":{"changed":true,"dry_run":true,
        "user":{"name":"app7","uid":997},"group":{"name":"app7","gid":996}}}"#
        .replace('\n', "");

    let r = one(&s.run(&["--dry-run"], &input));
    let real = s.run(&[], &input);

    assert_eq!(
        (r["uid"].as_u64(), r["gid"].as_u64()),
        (Some(997), Some(996))
    );
    assert!(r["notes"][0].as_str().unwrap().contains("planned"));
    assert!(!s.home("app7").exists());
    assert_eq!(
        real.status.code(),
        Some(2),
        "without --dry-run the account must exist"
    );
}

#[test]
fn pipeline_records_pass_through() {
    let s = Scratch::new("pipeline_records");
    let input = r#"{"name":"app1","x-team":"ops","rip_user":{"changed":true,"dry_run":false}}"#;

    let out = s.run(&[], input);

    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["x-team"], "ops");
    assert_eq!(line["rip_user"]["changed"], true);
    assert_eq!(line["rip_perms"]["uid"], APP_UID);
}

#[test]
fn show_policy_prints_default_and_per_app() {
    let s = Scratch::new("show_policy");

    let default: Value = serde_json::from_slice(&s.run(&["--show-policy"], "").stdout).unwrap();
    let out = s.run(
        &["--show-policy"],
        &format!(
            "{APP1_BACKUPS}\n{}\n",
            r#"{"name":"app2","perms":{"data":{"file":"0400"}}}"#
        ),
    );

    assert_eq!(default["backups"]["dir"], "2750");
    assert_eq!(default["key"]["patterns"], serde_json::json!(["*.key"]));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["app"], "app1");
    assert_eq!(lines[0]["layout"][0]["path"], "/home/app1");
    assert_eq!(lines[0]["layout"][0]["dir"], "0710");
    assert_eq!(lines[1]["layout"][0]["dir"], "0700");
    assert_eq!(lines[1]["policy"]["data"]["file"], "0400");
    assert!(!s.home("app1").exists());
}

#[test]
fn as_an_ordinary_user_owner_changes_are_pending() {
    let s = Scratch::new("unprivileged");
    let user = 60005;
    for d in [&s.root, &s.root.join("home")] {
        chown(d, user);
    }
    write(&s.home("app1").join("data/app.db"), 0o644, user);
    chown(&s.home("app1").join("data"), user);
    chown(&s.home("app1"), user);

    let r = one(&run_as(Some(user), &s.root, &[], r#"{"name":"app1"}"#));

    assert_eq!(r["privileged"], false);
    assert_eq!(
        meta(&s.home("app1").join("data/app.db")),
        (user, user, 0o600)
    );
    assert!(r["counts"]["pending"].as_u64().unwrap() >= 3, "{r}");
    let db = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/home/app1/data/app.db")
        .unwrap();
    assert_eq!(db["pending"], serde_json::json!(["owner"]));
    assert!(r["notes"][0].as_str().unwrap().contains("planned"));
}

#[test]
fn unsafe_parent_is_an_error() {
    let s = Scratch::new("unsafe_parent");
    fs::set_permissions(s.root.join("home"), fs::Permissions::from_mode(0o777)).unwrap();

    let out = s.run(&[], r#"{"name":"app1"}"#);

    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PERMS_UNSAFE_PARENT"));
    assert!(!s.home("app1").exists());
}

#[test]
fn home_that_is_a_symlink_is_not_followed() {
    let s = Scratch::new("home_symlink");
    let v = s.victims();
    std::os::unix::fs::symlink(&v, s.home("app1")).unwrap();
    let before = snapshot(&v);

    let out = s.run(&[], r#"{"name":"app1"}"#);

    assert_eq!(out.status.code(), Some(2));
    assert_eq!(snapshot(&v), before);
}

#[test]
fn a_file_where_the_layout_needs_a_directory_is_refused() {
    let s = Scratch::new("not_a_dir");
    write(&s.home("app1").join("data"), 0o644, APP_UID);
    chown(&s.home("app1"), APP_UID);

    // A layout directory refused is an error (exit 2), the record is
    // still written.
    let out = s.run(&[], r#"{"name":"app1"}"#);
    assert_eq!(out.status.code(), Some(2));
    let r = record_of(&out);

    assert_eq!(
        reasons(&r).get("/home/app1/data").map(String::as_str),
        Some("PERMS_NOT_A_DIR")
    );
    assert!(fs::symlink_metadata(s.home("app1").join("data"))
        .unwrap()
        .is_file());
    assert!(s.home("app1").join("bin").is_dir());
}

#[test]
fn rw_path_outside_the_home_that_is_a_symlink_is_not_followed() {
    let s = Scratch::new("rw_path_symlink");
    let v = s.victims();
    fs::create_dir_all(s.root.join("srv")).unwrap();
    std::os::unix::fs::symlink(&v, s.root.join("srv/app1")).unwrap();
    let before = snapshot(&v);

    let out = s.run(&[], r#"{"name":"app1","rw_paths":["/srv/app1"]}"#);

    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("symlink"));
    assert_unchanged(&before, &snapshot(&v), "rw_paths symlink");
}

// ---------------------------------------------------------- hostile tree

/// A tree owned by the app with every hostile kind of entry in it.
#[test]
fn hostile_tree_never_touches_outside_files() {
    let mut s = Scratch::new("hostile_tree");
    let v = s.victims();
    let h = s.home("app1");
    let data = h.join("data");
    mkdir(&data.join("mnt"), 0o755, APP_UID);
    let before = snapshot(&v);

    // Symlinks to a file and a directory outside, absolute and relative,
    // and one that stays inside.
    std::os::unix::fs::symlink(v.join("shadow"), data.join("shadow")).unwrap();
    std::os::unix::fs::symlink(&v, data.join("victims")).unwrap();
    std::os::unix::fs::symlink("../../../../victims/passwd", data.join("rel")).unwrap();
    std::os::unix::fs::symlink("app.db", data.join("inside")).unwrap();
    // A hard link to a root-owned file outside.
    fs::hard_link(v.join("passwd"), data.join("hardlink")).unwrap();
    // A fifo, a unix socket, device nodes.
    mkfifo(&data.join("fifo"));
    let _sock = std::os::unix::net::UnixListener::bind(data.join("sock")).unwrap();
    mknod(&data.join("null"), libc::S_IFCHR, libc::makedev(1, 3));
    mknod(&data.join("loop"), libc::S_IFBLK, libc::makedev(7, 0));
    // A 255-byte name and a non-UTF-8 name, both root-owned.
    let long = "l".repeat(252) + ".db";
    write(&data.join(&long), 0o644, 0);
    let odd = data.join(std::ffi::OsStr::from_bytes(b"caf\xe9-\xff.db"));
    write(&odd, 0o666, 0);
    write(&data.join("app.db"), 0o644, 0);
    // A tree restored by root (root-owned dirs: changed by name, no open)
    // with its own escaping symlink and hard link.
    mkdir(&data.join("restored"), 0o755, 0);
    write(&data.join("restored/app.db"), 0o644, 0);
    std::os::unix::fs::symlink(v.join("passwd"), data.join("restored/link")).unwrap();
    fs::hard_link(v.join("shadow"), data.join("restored/hardlink")).unwrap();
    // A bind mount of the victims inside the tree.
    s.bind(&v.join("sub"), &data.join("mnt"));
    for p in [&h, &data] {
        chown(p, APP_UID);
    }

    let r = one(&s.run(&["--verbose"], r#"{"name":"app1"}"#));

    assert_unchanged(&before, &snapshot(&v), "hostile tree");
    let why = reasons(&r);
    let want = [
        ("shadow", "PERMS_SYMLINK_ESCAPES"),
        ("victims", "PERMS_SYMLINK_ESCAPES"),
        ("rel", "PERMS_SYMLINK_ESCAPES"),
        ("inside", "PERMS_SYMLINK_SKIPPED"),
        ("hardlink", "PERMS_HARDLINK"),
        ("fifo", "PERMS_SPECIAL_FILE"),
        ("sock", "PERMS_SPECIAL_FILE"),
        ("null", "PERMS_SPECIAL_FILE"),
        ("loop", "PERMS_SPECIAL_FILE"),
        ("mnt", "PERMS_MOUNT_POINT"),
        ("restored/link", "PERMS_SYMLINK_ESCAPES"),
        ("restored/hardlink", "PERMS_HARDLINK"),
    ];
    for (name, reason) in want {
        assert_eq!(
            why.get(&format!("/home/app1/data/{name}"))
                .map(String::as_str),
            Some(reason),
            "{name}: {r:#}"
        );
    }
    assert_eq!(r["counts"]["refused"], want.len());
    // Links and special files themselves are left as they were.
    assert_eq!(meta(&data.join("shadow")).0, 0);
    assert_eq!(meta(&data.join("fifo")), (0, 0, meta(&data.join("fifo")).2));
    // Odd names are fixed and reported exactly.
    assert_eq!(meta(&data.join(&long)), (APP_UID, APP_UID, 0o600));
    assert_eq!(meta(&odd), (APP_UID, APP_UID, 0o600));
    assert_eq!(meta(&data.join("restored")), (APP_UID, APP_UID, 0o700));
    assert_eq!(
        meta(&data.join("restored/app.db")),
        (APP_UID, APP_UID, 0o600)
    );
    let hex: Vec<&Value> = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.get("path_hex").is_some())
        .collect();
    assert_eq!(hex.len(), 1);
    assert!(hex[0]["path_hex"]
        .as_str()
        .unwrap()
        .ends_with("636166e92dff2e6462"));
    // A second run refuses the same entries and changes nothing.
    let again = one(&s.run(&[], r#"{"name":"app1"}"#));
    assert_eq!(again["changed"], false);
    assert_eq!(again["counts"]["refused"], want.len());
}

fn mkfifo(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

fn mknod(p: &Path, kind: libc::mode_t, dev: libc::dev_t) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C string.
    let r = unsafe { libc::mknod(c.as_ptr(), kind | 0o666, dev) };
    assert_eq!(r, 0, "mknod {p:?}: {}", std::io::Error::last_os_error());
}

fn open_at(dir: &OwnedFd, name: &[u8], flags: i32) -> OwnedFd {
    let c = CString::new(name).unwrap();
    // SAFETY: valid C string; no O_CREAT.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC) };
    assert!(fd >= 0, "openat: {}", std::io::Error::last_os_error());
    // SAFETY: fresh fd.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[test]
fn nesting_deeper_than_path_max() {
    let s = Scratch::new("deep_nesting");
    let data = s.home("app1").join("data");
    mkdir(&data, 0o700, APP_UID);
    chown(&s.home("app1"), APP_UID);
    let name = [b'd'; 100];
    let levels = 60; // 60 * 101 bytes: beyond PATH_MAX (4096)
    let mut fd = open_at(
        &OwnedFd::from(fs::File::open(&data).unwrap()),
        b".",
        libc::O_RDONLY | libc::O_DIRECTORY,
    );
    for _ in 0..levels {
        let c = CString::new(&name[..]).unwrap();
        // SAFETY: valid C string.
        assert_eq!(
            unsafe { libc::mkdirat(fd.as_raw_fd(), c.as_ptr(), 0o755) },
            0
        );
        fd = open_at(&fd, &name, libc::O_RDONLY | libc::O_DIRECTORY);
    }
    let c = CString::new("bottom.db").unwrap();
    // SAFETY: valid C string, O_CREAT with a mode.
    let f = unsafe {
        libc::openat(
            fd.as_raw_fd(),
            c.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY,
            0o644,
        )
    };
    assert!(f >= 0);
    // SAFETY: fresh fd.
    drop(unsafe { OwnedFd::from_raw_fd(f) });

    let r = one(&s.run(&[], r#"{"name":"app1"}"#));

    assert_eq!(r["counts"]["errors"], 0, "{r}");
    assert_eq!(r["counts"]["changed"].as_u64(), Some(levels + 3), "{r}");
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: valid fd and C string, st is writable.
    let rc = unsafe { libc::fstatat(fd.as_raw_fd(), c.as_ptr(), st.as_mut_ptr(), 0) };
    assert_eq!(rc, 0);
    // SAFETY: fstatat succeeded.
    let st = unsafe { st.assume_init() };
    assert_eq!((st.st_uid, st.st_mode & 0o7777), (APP_UID, 0o600));
    let deepest = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().len())
        .max()
        .unwrap();
    assert!(deepest > 4096, "{deepest}");
}

/// CASES PERMS-03: while rip-perms walks, the app (a thread running with
/// the app's uid) keeps swapping a directory full of files with a symlink
/// to a directory of root-owned victims. Nothing outside may ever change.
#[test]
fn racing_symlink_swap_never_escapes() {
    let s = Scratch::new("race_swap");
    let v = s.victims();
    let h = s.home("app1");
    let data = h.join("data");
    let cache = data.join("cache");
    let files = 200;
    for i in 0..files {
        write(&v.join(format!("f{i:03}")), 0o644, 0);
    }
    mkdir(&cache, 0o755, APP_UID);
    for p in [&h, &data] {
        mkdir(p, 0o700, APP_UID);
    }
    std::os::unix::fs::symlink(&v, data.join("cache.lnk")).unwrap();
    std::os::unix::fs::lchown(data.join("cache.lnk"), Some(APP_UID), Some(APP_UID)).unwrap();
    let before = snapshot(&v);

    let stop = Arc::new(AtomicBool::new(false));
    let pause = Arc::new(AtomicBool::new(true));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapping = Arc::new(std::sync::Mutex::new(()));
    let data_fd = OwnedFd::from(fs::File::open(&data).unwrap());
    let racer = {
        let (stop, pause, swaps) = (stop.clone(), pause.clone(), swaps.clone());
        let swapping = swapping.clone();
        std::thread::spawn(move || {
            // Drop to the app's uid for this thread only (raw syscalls act
            // on the calling thread; glibc's wrappers would change all).
            // SAFETY: plain syscalls with integer arguments.
            unsafe {
                assert_eq!(
                    libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<u32>()),
                    0
                );
                assert_eq!(
                    libc::syscall(libc::SYS_setresgid, APP_UID, APP_UID, APP_UID),
                    0
                );
                assert_eq!(
                    libc::syscall(libc::SYS_setresuid, APP_UID, APP_UID, APP_UID),
                    0
                );
            }
            let a = CString::new("cache").unwrap();
            let b = CString::new("cache.lnk").unwrap();
            while !stop.load(Ordering::Relaxed) {
                if pause.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                let _g = swapping.lock().unwrap();
                if pause.load(Ordering::Acquire) {
                    continue;
                }
                // SAFETY: valid fd and C strings.
                let r = unsafe {
                    libc::renameat2(
                        data_fd.as_raw_fd(),
                        a.as_ptr(),
                        data_fd.as_raw_fd(),
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                assert_eq!(r, 0, "swap: {}", std::io::Error::last_os_error());
                swaps.fetch_add(1, Ordering::Relaxed);
                drop(_g);
                // Leave the CPU to rip-perms now and then (2-core CI).
                std::thread::sleep(Duration::from_micros(20));
            }
        })
    };

    let started = Instant::now();
    let (mut runs, mut raced) = (0u32, 0u32);
    while runs < 1000 && started.elapsed() < Duration::from_secs(300) {
        // Reset with the racer paused: "cache" is the real directory again,
        // its files root-owned 0644, so rip-perms has work to do in it.
        pause.store(true, Ordering::Release);
        let held = swapping.lock().unwrap();
        if fs::symlink_metadata(&cache)
            .unwrap()
            .file_type()
            .is_symlink()
        {
            fs::rename(&cache, data.join("tmp")).unwrap();
            fs::rename(data.join("cache.lnk"), &cache).unwrap();
            fs::rename(data.join("tmp"), data.join("cache.lnk")).unwrap();
        }
        assert!(fs::symlink_metadata(&cache).unwrap().is_dir());
        for i in 0..files {
            let p = cache.join(format!("f{i:03}"));
            if !p.exists() {
                fs::write(&p, b"x").unwrap();
            }
            std::os::unix::fs::lchown(&p, Some(0), Some(0)).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        }
        pause.store(false, Ordering::Release);
        drop(held);

        let out = s.run(&["--jobs", "2"], r#"{"name":"app1"}"#);
        runs += 1;
        let r = one(&out);
        if reasons(&r)
            .values()
            .any(|x| x == "PERMS_RACE" || x == "PERMS_VANISHED")
        {
            raced += 1;
        }
        assert_eq!(
            snapshot(&v),
            before,
            "run {runs}: a file outside the tree changed"
        );
    }
    stop.store(true, Ordering::Relaxed);
    racer.join().unwrap();

    eprintln!(
        "race: {runs} runs, {} swaps, {raced} runs saw a swap mid-walk, {:?}",
        swaps.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(runs >= 1000, "only {runs} runs in the time bound");
    assert!(swaps.load(Ordering::Relaxed) >= 1000);
    assert_eq!(snapshot(&v), before);
}

// ------------------------------------------------ red-team review findings

/// Append a line to `<root>/etc/passwd` (and its group to `<root>/etc/group`).
fn add_account(s: &Scratch, name: &str, id: u32, home: &str) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(s.root.join("etc/passwd"))
        .unwrap();
    writeln!(f, "{name}:x:{id}:{id}::{home}:/usr/sbin/nologin").unwrap();
    let mut g = fs::OpenOptions::new()
        .append(true)
        .open(s.root.join("etc/group"))
        .unwrap();
    writeln!(g, "{name}:x:{id}:").unwrap();
}

/// Exit 2 before anything is written, the message naming app and field.
fn assert_refused_up_front(out: &Output, app: &str, field: &str, words: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(out.stdout.is_empty(), "nothing may be written on refusal");
    assert!(
        err.contains(&format!("{app:?}")) && err.contains(&format!("{field:?}")),
        "the error must name app {app:?} and field {field:?}: {err}"
    );
    for w in words {
        assert!(err.contains(w), "{w:?} missing from: {err}");
    }
}

/// Red team HIGH: a home in a system spool (root's crontab inside) was
/// taken over. The lead's rip-core refuses /var too; rip-perms must refuse
/// it on its own whichever layer answers first, and touch nothing.
#[test]
fn red_team_high_system_tree_home_is_never_taken_over() {
    let s = Scratch::new("rt_high_system_tree");
    let tab = s.root.join("var/spool/cron/crontabs/root");
    write(&tab, 0o600, 0);
    mkdir(&s.root.join("var/log"), 0o755, 0);
    write(&s.root.join("var/log/syslog"), 0o640, 0);
    let before = snapshot(&s.root.join("var"));

    let home = s.run(&[], r#"{"name":"app1","home":"/var/spool/cron"}"#);
    let rw = s.run(&[], r#"{"name":"app1","rw_paths":["/var/log"]}"#);

    assert_refused_up_front(&home, "app1", "home", &[]);
    assert_refused_up_front(&rw, "app1", "rw_paths[0]", &[]);
    assert_unchanged(&before, &snapshot(&s.root.join("var")), "system tree");
    assert!(!s.home("app1").exists());
}

/// Red team HIGH: `rw_paths:["/home/backup"]` handed the backup user's
/// authorized_keys to the app. The path equals another account's home.
#[test]
fn red_team_high_rw_path_on_another_accounts_home_is_refused() {
    let s = Scratch::new("rt_high_other_home");
    // Root-owned on purpose: only the passwd check can catch it.
    write(&s.home("backup").join(".ssh/authorized_keys"), 0o600, 0);
    let before = snapshot(&s.home("backup"));

    let out = s.run(&[], r#"{"name":"app1","rw_paths":["/home/backup"]}"#);

    assert_refused_up_front(&out, "app1", "rw_paths[0]", &["backup", "/home/backup"]);
    assert_unchanged(&before, &snapshot(&s.home("backup")), "backup home");
    assert!(!s.home("app1").exists());
}

/// Red team HIGH: `rw_paths:["/home/app2"]`, app2 absent from the input but
/// in passwd with its home on disk.
#[test]
fn red_team_high_home_of_an_app_absent_from_the_input_is_refused() {
    let s = Scratch::new("rt_high_absent_app");
    write(&s.home("app2").join("data/app.db"), 0o600, APP2_UID);
    chown(&s.home("app2"), APP2_UID);
    let before = snapshot(&s.home("app2"));
    // Two records: the valid one must not be touched either.
    let input = format!(
        "{APP1_BACKUPS}\n{}\n",
        r#"{"name":"app3","rw_paths":["/home/app2"]}"#
    );
    add_account(&s, "app3", 60003, "/home/app3");

    let out = s.run(&[], &input);

    assert_refused_up_front(&out, "app3", "rw_paths[0]", &["app2"]);
    assert_unchanged(&before, &snapshot(&s.home("app2")), "app2 home");
    assert!(!s.home("app1").exists(), "nothing is touched on refusal");
    assert!(!s.home("app3").exists());
}

/// Red team HIGH: a daemon's home (`/srv/lib/svc`): a path equal to it,
/// inside it or holding it is refused; entries with no real home (`/`,
/// `/nonexistent`, a home not on disk) are ignored.
#[test]
fn red_team_high_daemon_home_equal_inside_or_contained_is_refused() {
    let s = Scratch::new("rt_high_daemon_home");
    mkdir(&s.root.join("srv/lib/svc"), 0o755, 0);
    write(&s.root.join("srv/lib/svc/state"), 0o600, 0);
    add_account(&s, "svc", 60020, "/srv/lib/svc");
    add_account(&s, "nobody2", 60021, "/nonexistent");
    add_account(&s, "rootish", 60022, "/");
    add_account(&s, "ghost", 60023, "/srv/app1/ghost");
    let before = snapshot(&s.root.join("srv"));

    for (rw, words) in [
        ("/srv/lib/svc", &["is the home"][..]),
        ("/srv/lib/svc/cache", &["lies inside"][..]),
        ("/srv/lib", &["contains"][..]),
    ] {
        let out = s.run(
            &[],
            &format!(r#"{{"name":"app1","rw_paths":["/srv/app1/up","{rw}"]}}"#),
        );
        assert_refused_up_front(&out, "app1", "rw_paths[1]", words);
        assert_unchanged(&before, &snapshot(&s.root.join("srv")), rw);
    }
    // A home that is only in passwd (not on disk) does not block.
    let ok = one(&s.run(&[], r#"{"name":"app1","rw_paths":["/srv/app1/up"]}"#));
    assert_eq!(ok["counts"]["errors"], 0);
    assert_eq!(meta(&s.root.join("srv/app1/up")), (APP_UID, APP_UID, 0o700));
}

/// Red team HIGH: an existing tree owned by another uid (here one in no
/// passwd at all) is never taken over, in a dry run either.
#[test]
fn red_team_high_existing_tree_owned_by_someone_else_is_refused() {
    let s = Scratch::new("rt_high_foreign_owner");
    let shared = s.root.join("srv/shared");
    write(&shared.join("notes.txt"), 0o644, 60077);
    chown(&shared, 60077);
    let before = snapshot(&shared);

    let rw = s.run(&[], r#"{"name":"app1","rw_paths":["/srv/shared"]}"#);
    let dry = s.run(
        &["--dry-run"],
        r#"{"name":"app1","rw_paths":["/srv/shared"]}"#,
    );
    let home = s.run(&[], r#"{"name":"app1","home":"/srv/shared"}"#);

    assert_refused_up_front(
        &rw,
        "app1",
        "rw_paths[0]",
        &["uid 60077", "never taken over"],
    );
    assert_refused_up_front(&dry, "app1", "rw_paths[0]", &["uid 60077"]);
    assert_refused_up_front(&home, "app1", "home", &["uid 60077"]);
    assert_unchanged(&before, &snapshot(&shared), "foreign tree");
}

/// Red team HIGH (judgement): a root-owned directory holding another
/// account's files (by owner or by group, like /var/log or a spool), or a
/// shared sticky/world-writable one, is not an app's tree.
#[test]
fn red_team_high_root_owned_tree_with_other_accounts_files_is_refused() {
    let s = Scratch::new("rt_high_root_tree_foreign_files");
    let logs = s.root.join("srv/logs");
    write(&logs.join("app.log"), 0o640, 0);
    write(&logs.join("backup.log"), 0o640, 0);
    std::os::unix::fs::lchown(logs.join("backup.log"), Some(0), Some(60009)).unwrap();
    let spool = s.root.join("srv/spool");
    mkdir(&spool, 0o1777, 0);
    let before = snapshot(&s.root.join("srv"));

    let out = s.run(&[], r#"{"name":"app1","rw_paths":["/srv/logs"]}"#);
    let sticky = s.run(&[], r#"{"name":"app1","rw_paths":["/srv/spool"]}"#);

    assert_refused_up_front(&out, "app1", "rw_paths[0]", &["backup.log", "gid 60009"]);
    assert_refused_up_front(&sticky, "app1", "rw_paths[0]", &["shared directory"]);
    assert_unchanged(&before, &snapshot(&s.root.join("srv")), "root tree");
    // A root-owned tree holding only root's and the app's files is the
    // usual provisioning shape and is taken over (PERMS-05).
    fs::remove_file(logs.join("backup.log")).unwrap();
    one(&s.run(&[], r#"{"name":"app1","rw_paths":["/srv/logs"]}"#));
    assert_eq!(meta(&logs.join("app.log")), (APP_UID, APP_UID, 0o600));
}

/// Red team MEDIUM: overrides that widen access were accepted.
#[test]
fn red_team_medium_widening_perms_overrides_are_rejected() {
    let s = Scratch::new("rt_medium_widening_perms");

    for (perms, field) in [
        (r#"{"home":{"dir":"0711"}}"#, "perms.home.dir"),
        (r#"{"data":{"dir":"0711","file":"0644"}}"#, "perms.data.dir"),
        (r#"{"data":{"file":"0644"}}"#, "perms.data.file"),
        (
            r#"{"backups":{"traverse":"0011"}}"#,
            "perms.backups.traverse",
        ),
        (r#"{"backups":{"file":"0664"}}"#, "perms.backups.file"),
        (r#"{"bin":{"file":"0750"}}"#, "perms.bin.file"),
        (r#"{"other":{"dir":"0770"}}"#, "perms.other.dir"),
    ] {
        let out = s.run(
            &[],
            &format!(r#"{{"name":"app1","backups":{{}},"perms":{perms}}}"#),
        );
        assert_refused_up_front(&out, "app1", field, &[]);
        assert!(!s.home("app1").exists());
    }
}

/// Red team LOW: data/ or bin/ replaced by a symlink used to exit 0. A
/// refused layout directory is now an error (exit 2, record written);
/// refused ordinary entries stay exit 0.
#[test]
fn red_team_low_refused_layout_directory_is_an_error() {
    let s = Scratch::new("rt_low_layout_symlink");
    let v = s.victims();
    let h = s.home("app1");
    mkdir(&h, 0o700, APP_UID);
    std::os::unix::fs::symlink(&v, h.join("data")).unwrap();
    std::os::unix::fs::symlink("data", h.join("bin")).unwrap();
    std::os::unix::fs::symlink(&v, h.join("stray")).unwrap();
    let before = snapshot(&v);

    let out = s.run(&[], r#"{"name":"app1"}"#);

    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/home/app1/data") && err.contains("layout"),
        "{err}"
    );
    let r = record_of(&out);
    let why = reasons(&r);
    assert_eq!(why["/home/app1/data"], "PERMS_SYMLINK_ESCAPES");
    assert_eq!(why["/home/app1/bin"], "PERMS_SYMLINK_SKIPPED");
    assert_eq!(why["/home/app1/stray"], "PERMS_SYMLINK_ESCAPES");
    let mut errs: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    errs.sort_unstable();
    assert_eq!(errs, ["/home/app1/bin", "/home/app1/data"], "{r}");
    assert_unchanged(&before, &snapshot(&v), "layout symlink");

    // Only an ordinary entry refused: exit 0.
    fs::remove_file(h.join("data")).unwrap();
    fs::remove_file(h.join("bin")).unwrap();
    let ok = one(&s.run(&[], r#"{"name":"app1"}"#));
    assert_eq!(ok["counts"]["errors"], 0);
    assert_eq!(reasons(&ok)["/home/app1/stray"], "PERMS_SYMLINK_ESCAPES");
}

// ------------------------------------------------------------ POSIX ACLs

/// Run `setfacl ARGS PATH` (the real tool: the acl package, see
/// `scripts/deps test`).
fn setfacl(p: &Path, args: &[&str]) {
    let out = Command::new("setfacl")
        .args(args)
        .arg(p)
        .output()
        .unwrap_or_else(|e| panic!("setfacl: {e} (install the acl package: scripts/deps test)"));
    assert!(
        out.status.success(),
        "setfacl {args:?} {p:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `getfacl` of every entry under `p` (symlinks not followed) that has an
/// ACL beyond its mode bits: empty when the mode bits are the whole truth.
fn extended_acls(p: &Path) -> String {
    let out = Command::new("getfacl")
        .args(["--recursive", "--physical", "--absolute-names", "--numeric"])
        .arg("--skip-base")
        .arg(p)
        .output()
        .unwrap_or_else(|e| panic!("getfacl: {e} (install the acl package: scripts/deps test)"));
    assert!(
        out.status.success(),
        "getfacl {p:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn entry_of<'a>(r: &'a Value, path: &str) -> &'a Value {
    r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("no entry for {path}: {r:#}"))
}

/// An app tree where a compromised app1 shared its files with app2 through
/// ACLs: on files whose mode is already right (a snapshot, where the mask
/// `r--` left the named entry effective), on files whose mode is not, on
/// its directories (access and default ACLs), and a root-restored tree.
fn acl_tree(s: &Scratch) -> PathBuf {
    let h = s.home("app1");
    let other = format!("u:{APP2_UID}:r");
    write(&h.join("data/db.sqlite"), 0o600, APP_UID);
    setfacl(&h.join("data/db.sqlite"), &["-m", &other]);
    write(&h.join("data/backups/snap.db"), 0o640, APP_UID);
    setfacl(&h.join("data/backups/snap.db"), &["-m", &other]);
    mkdir(&h.join("data/backups"), 0o2750, APP_UID);
    mkdir(&h.join("data/restored"), 0o755, 0);
    write(&h.join("data/restored/app.db"), 0o644, 0);
    setfacl(
        &h.join("data/restored/app.db"),
        &["-m", &format!("u:{APP2_UID}:rw")],
    );
    mkdir(&h.join("data"), 0o710, APP_UID);
    setfacl(&h.join("data"), &["-m", &format!("u:{APP2_UID}:x")]);
    setfacl(&h.join("data"), &["-d", "-m", &format!("u:{APP2_UID}:rwx")]);
    mkdir(&h, 0o710, APP_UID);
    setfacl(&h, &["-m", &format!("u:{APP2_UID}:x")]);
    mkdir(&h.join("bin"), 0o700, APP_UID);
    h
}

/// Issue #8: named ACL entries used to stay effective (chmod only
/// set their mask); now every ACL under the tree is removed and reported.
#[test]
fn posix_acls_are_removed_and_reported() {
    let s = Scratch::new("acl_removed");
    let h = acl_tree(&s);
    assert!(!extended_acls(&h).is_empty());

    let r = one(&s.run(&["--verbose"], APP1_BACKUPS));

    assert_eq!(extended_acls(&h), "", "ACLs left under the home");
    for (rel, mode) in [
        ("", 0o710),
        ("data", 0o710),
        ("data/db.sqlite", 0o600),
        ("data/backups/snap.db", 0o640),
        ("data/restored", 0o700),
        ("data/restored/app.db", 0o600),
    ] {
        assert_eq!(meta(&h.join(rel)), (APP_UID, APP_UID, mode), "{rel:?}");
    }
    let snap = entry_of(&r, "/home/app1/data/backups/snap.db");
    assert_eq!(
        snap["before"],
        serde_json::json!({"uid": APP_UID, "gid": APP_UID, "mode": "0640", "acl": ["access"]})
    );
    assert_eq!(
        snap["after"],
        serde_json::json!({"uid": APP_UID, "gid": APP_UID, "mode": "0640"})
    );
    assert_eq!(
        entry_of(&r, "/home/app1/data")["before"]["acl"],
        serde_json::json!(["access", "default"])
    );
    assert_eq!(
        entry_of(&r, "/home/app1/data/restored/app.db")["before"],
        serde_json::json!({"uid": 0, "gid": 0, "mode": "0664", "acl": ["access"]})
    );
    assert_eq!(
        entry_of(&r, "/home/app1")["before"]["acl"],
        serde_json::json!(["access"])
    );
    assert_eq!(r["counts"]["errors"], 0);
}

#[test]
fn posix_acls_dry_run_reports_and_changes_nothing() {
    let s = Scratch::new("acl_dry_run");
    let h = acl_tree(&s);
    let (acls, modes) = (extended_acls(&h), snapshot(&h));

    let r = one(&s.run(&["--dry-run", "--verbose"], APP1_BACKUPS));

    assert_eq!(extended_acls(&h), acls);
    assert_eq!(snapshot(&h), modes);
    assert_eq!(r["changed"], true);
    let snap = entry_of(&r, "/home/app1/data/backups/snap.db");
    assert_eq!(snap["before"]["acl"], serde_json::json!(["access"]));
    assert_eq!(snap["after"].get("acl"), None);
    assert_eq!(
        entry_of(&r, "/home/app1/data")["before"]["acl"],
        serde_json::json!(["access", "default"])
    );
}

#[test]
fn posix_acls_second_run_changes_nothing() {
    let s = Scratch::new("acl_second_run");
    let h = acl_tree(&s);
    // A file created under the default ACL (by the app, umask 022) before
    // the first run inherits named entries too.
    fs::write(h.join("data/new.txt"), b"x").unwrap();
    chown(&h.join("data/new.txt"), APP_UID);
    assert!(extended_acls(&h.join("data/new.txt")).contains(&format!("user:{APP2_UID}:")));
    one(&s.run(&[], APP1_BACKUPS));

    let r = one(&s.run(&[], APP1_BACKUPS));

    assert_eq!(r["changed"], false, "{r:#}");
    assert_eq!(r["counts"]["changed"], 0);
    assert_eq!(r["entries"], serde_json::json!([]));
    assert_eq!(extended_acls(&h), "");
}

/// Symlinks are never followed: the ACLs of what they point to (a file and
/// a directory outside the tree) stay, and so do those of a foreign hard
/// link's inode.
#[test]
fn posix_acl_of_a_symlink_target_is_left_alone() {
    let s = Scratch::new("acl_symlink_target");
    let v = s.victims();
    setfacl(&v.join("passwd"), &["-m", &format!("u:{APP_UID}:rw")]);
    setfacl(&v.join("shadow"), &["-m", &format!("u:{APP_UID}:r")]);
    setfacl(&v.join("sub"), &["-d", "-m", &format!("u:{APP_UID}:rwx")]);
    let h = s.home("app1");
    mkdir(&h.join("data"), 0o700, APP_UID);
    chown(&h, APP_UID);
    std::os::unix::fs::symlink(v.join("passwd"), h.join("data/passwd")).unwrap();
    std::os::unix::fs::symlink(v.join("sub"), h.join("data/sub")).unwrap();
    std::os::unix::fs::symlink("../../../../victims/passwd", h.join("data/rel")).unwrap();
    fs::hard_link(v.join("shadow"), h.join("data/hardlink")).unwrap();
    let (acls, modes) = (extended_acls(&v), snapshot(&v));
    assert!(acls.contains("passwd") && acls.contains("sub"), "{acls}");

    let r = one(&s.run(&[], r#"{"name":"app1"}"#));

    assert_eq!(extended_acls(&v), acls, "an ACL outside the tree changed");
    assert_unchanged(&modes, &snapshot(&v), "symlink targets");
    let why = reasons(&r);
    assert_eq!(why["/home/app1/data/passwd"], "PERMS_SYMLINK_ESCAPES");
    assert_eq!(why["/home/app1/data/sub"], "PERMS_SYMLINK_ESCAPES");
    assert_eq!(why["/home/app1/data/hardlink"], "PERMS_HARDLINK");
}

/// Without root, only the owner of an inode may remove its ACLs: those of
/// the invoking user's files go, others' are reported pending.
#[test]
fn posix_acls_as_an_ordinary_user() {
    let s = Scratch::new("acl_unprivileged");
    let user = 60005;
    for d in [&s.root, &s.root.join("home")] {
        chown(d, user);
    }
    let h = s.home("app1");
    write(&h.join("data/mine.db"), 0o600, user);
    setfacl(&h.join("data/mine.db"), &["-m", &format!("u:{APP2_UID}:r")]);
    write(&h.join("data/roots.db"), 0o600, 0);
    setfacl(
        &h.join("data/roots.db"),
        &["-m", &format!("u:{APP2_UID}:r")],
    );
    chown(&h.join("data"), user);
    chown(&h, user);

    let r = one(&run_as(Some(user), &s.root, &[], r#"{"name":"app1"}"#));

    assert_eq!(extended_acls(&h.join("data/mine.db")), "");
    assert!(!extended_acls(&h.join("data/roots.db")).is_empty());
    assert_eq!(
        entry_of(&r, "/home/app1/data/mine.db")["pending"],
        serde_json::json!(["owner"])
    );
    assert_eq!(
        entry_of(&r, "/home/app1/data/roots.db")["pending"],
        serde_json::json!(["owner", "mode", "acl"])
    );
}
