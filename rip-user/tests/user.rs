//! rip-user end to end: the real binary against temporary roots, checked
//! against shadow-utils' own output and with pwck/grpck.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rip-user");
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIImtor211e0BGf/XjabJqaDRgm3uEHf5Z+6Kmctn9PXf ops@example.com\n";

/// A Debian 12 base: root, a few static accounts, Debian's `backup` (34).
const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
backup:x:34:34:backup:/var/backups:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";
const GROUP: &str = "root:x:0:
daemon:x:1:
disk:x:6:
backup:x:34:
shadow:x:42:
users:x:100:
nogroup:x:65534:
";
const SHADOW: &str = "root:*:19000:0:99999:7:::
daemon:*:19000:0:99999:7:::
backup:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
";
const GSHADOW: &str = "root:*::
daemon:*::
disk:*::
backup:*::
shadow:*::
users:*::
nogroup:*::
";
const LOGIN_DEFS: &str =
    "UID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\nUSERGROUPS_ENAB yes\n";

struct Root {
    dir: PathBuf,
}

struct Run {
    code: i32,
    out: Vec<Value>,
    stderr: String,
}

impl Run {
    fn app(&self, name: &str) -> &Value {
        self.out
            .iter()
            .find(|v| v["name"] == name)
            .map(|v| &v["rip_user"])
            .unwrap_or_else(|| panic!("no output for {name}: {:?}\n{}", self.out, self.stderr))
    }
}

impl Root {
    /// A fresh root named after the test, kept on failure.
    fn new(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("rip-user")
            .join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("etc")).unwrap();
        Self { dir }
    }

    fn debian(name: &str) -> Self {
        let r = Self::new(name);
        r.write("etc/passwd", PASSWD, 0o644);
        r.write("etc/group", GROUP, 0o644);
        r.write("etc/shadow", SHADOW, 0o640);
        r.write("etc/gshadow", GSHADOW, 0o640);
        r.write("etc/login.defs", LOGIN_DEFS, 0o644);
        for f in ["etc/shadow", "etc/gshadow"] {
            std::os::unix::fs::chown(r.path(f), Some(0), Some(42)).unwrap();
        }
        r
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn write(&self, rel: &str, text: &str, mode: u32) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    fn append(&self, rel: &str, text: &str) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(self.path(rel))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn run(&self, args: &[&str], input: &str) -> Run {
        let mut child = Command::new(BIN)
            .arg("--root")
            .arg(&self.dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        let stdout = String::from_utf8(o.stdout).unwrap();
        let out = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        Run {
            code: o.status.code().unwrap_or(-1),
            out,
            stderr: String::from_utf8(o.stderr).unwrap(),
        }
    }

    fn ok(&self, args: &[&str], input: &str) -> Run {
        let r = self.run(args, input);
        assert_eq!(
            r.code, 0,
            "rip-user {args:?} failed\nstdin: {input}\nstderr: {}\nstdout: {:?}",
            r.stderr, r.out
        );
        r
    }

    /// Every file under the root with its contents, mode, owner and mtime.
    fn snapshot(&self) -> BTreeMap<PathBuf, (Vec<u8>, u32, u32, i64, i64)> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let m = fs::symlink_metadata(&p).unwrap();
                let body = if m.is_file() {
                    fs::read(&p).unwrap()
                } else {
                    Vec::new()
                };
                if m.is_dir() {
                    stack.push(p.clone());
                }
                // A directory's mtime moves with the lock files; files' must not.
                let (t, ns) = if m.is_dir() {
                    (0, 0)
                } else {
                    (m.mtime(), m.mtime_nsec())
                };
                out.insert(p, (body, m.mode(), m.uid(), t, ns));
            }
        }
        out
    }

    fn user(&self, name: &str) -> Option<Vec<String>> {
        self.read("etc/passwd")
            .lines()
            .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
            .find(|f| f[0] == name)
    }

    fn group(&self, name: &str) -> Option<Vec<String>> {
        self.read("etc/group")
            .lines()
            .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
            .find(|f| f[0] == name)
    }

    /// pwck and grpck in read-only, errors-only mode on the root's files.
    /// In a root without shadow (or gshadow) they check it chrooted, as
    /// given only the passwd file they would pair it with the host's
    /// /etc/shadow.
    fn assert_clean(&self) {
        for (tool, a, b) in [
            ("pwck", "etc/passwd", "etc/shadow"),
            ("grpck", "etc/group", "etc/gshadow"),
        ] {
            let mut cmd = Command::new(tool);
            cmd.args(["-r", "-q"]);
            if self.path(b).exists() {
                cmd.arg(self.path(a)).arg(self.path(b));
            } else {
                cmd.arg("-R").arg(&self.dir);
            }
            let o = cmd
                .output()
                .unwrap_or_else(|e| panic!("{tool} is required (package passwd): {e}"));
            assert!(
                o.status.success(),
                "{tool} -r -q found problems in {:?}:\n{}{}",
                self.dir,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

fn app(name: &str, extra: &str) -> String {
    format!("{{\"name\":\"{name}\"{extra}}}\n")
}

const FLEET: &str = r#"{"name":"app1","backups":{"enabled":true}}
{"name":"app2","backups":{"enabled":true},"shell":"/bin/sh"}
{"name":"app3"}
"#;

/// Every account file and its `-` backup, for comparing two roots.
const ACCOUNT_FILES: [&str; 8] = [
    "etc/passwd",
    "etc/group",
    "etc/shadow",
    "etc/gshadow",
    "etc/passwd-",
    "etc/group-",
    "etc/shadow-",
    "etc/gshadow-",
];

/// Whether each account file of `ours` is what `theirs` holds: present or
/// absent alike, same bytes, owner and mode.
fn assert_same_account_files(ours: &Root, theirs: &Root, case: &str) {
    for f in ACCOUNT_FILES {
        let (a, b) = (
            fs::metadata(ours.path(f)).ok(),
            fs::metadata(theirs.path(f)).ok(),
        );
        assert_eq!(
            a.is_some(),
            b.is_some(),
            "{case}: {f} exists in one root only (useradd's: {})",
            b.is_some()
        );
        let (Some(a), Some(b)) = (a, b) else { continue };
        assert_eq!(
            ours.read(f),
            theirs.read(f),
            "{case}: {f} differs from useradd's"
        );
        assert_eq!(
            (a.mode(), a.uid(), a.gid()),
            (b.mode(), b.uid(), b.gid()),
            "{case}: {f} owner/mode"
        );
    }
}

fn useradd_r(root: &Root, name: &str) {
    let o = Command::new("useradd")
        .arg("--prefix")
        .arg(&root.dir)
        .args([
            "-r",
            "-M",
            "-d",
            &format!("/home/{name}"),
            "-s",
            "/bin/bash",
        ])
        .args(["-c", &format!("rip app {name}"), name])
        .output()
        .expect("useradd (package passwd) is required");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// See: #4. Also in roots that have passwd without shadow or group
/// without gshadow, where useradd creates no shadow file and puts the lock
/// `!` into passwd or group instead.
#[test]
fn creates_accounts_exactly_as_useradd_r_does() {
    let cases: [(&str, &[&str]); 4] = [
        ("debian", &[]),
        ("no_shadow", &["etc/shadow"]),
        ("no_gshadow", &["etc/gshadow"]),
        ("no_shadow_files", &["etc/shadow", "etc/gshadow"]),
    ];
    for (case, missing) in cases {
        let ours = Root::debian(&format!("useradd_{case}_ours"));
        let theirs = Root::debian(&format!("useradd_{case}_theirs"));
        for f in missing {
            fs::remove_file(ours.path(f)).unwrap();
            fs::remove_file(theirs.path(f)).unwrap();
        }

        ours.ok(&[], &app("app1", ""));
        useradd_r(&theirs, "app1");
        let before = ours.snapshot();
        let again = ours.ok(&[], &app("app1", ""));

        assert_same_account_files(&ours, &theirs, case);
        assert_eq!(again.app("app1")["changed"], false, "{case}");
        assert_eq!(before, ours.snapshot(), "{case}: second run wrote");
        let locked = if missing.contains(&"etc/shadow") {
            ours.read("etc/passwd").contains("\napp1:!:")
        } else {
            ours.read("etc/shadow").contains("\napp1:!:")
        };
        assert!(locked, "{case}: the app user must be locked");
        ours.assert_clean();
    }
}

/// See: #4. Removal from a shadow-less root matches `userdel`, and
/// leaves it shadow-less.
#[test]
fn issue4_removes_from_a_shadowless_root_like_userdel() {
    let ours = Root::debian("userdel_ours");
    let theirs = Root::debian("userdel_theirs");
    for r in [&ours, &theirs] {
        fs::remove_file(r.path("etc/shadow")).unwrap();
        fs::remove_file(r.path("etc/gshadow")).unwrap();
    }
    ours.ok(&[], &app("app1", ""));
    useradd_r(&theirs, "app1");

    ours.ok(&["--remove"], &app("app1", ""));
    let o = Command::new("userdel")
        .arg("--prefix")
        .arg(&theirs.dir)
        .arg("app1")
        .output()
        .expect("userdel (package passwd) is required");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    assert_same_account_files(&ours, &theirs, "remove");
    assert_eq!(ours.read("etc/passwd"), PASSWD);
    ours.assert_clean();
}

#[test]
fn allocates_top_down_from_login_defs_system_range() {
    let r = Root::debian("login_defs_range");
    r.write(
        "etc/login.defs",
        "SYS_UID_MIN 200\nSYS_UID_MAX 210\nSYS_GID_MIN 200\nSYS_GID_MAX 210\n",
        0o644,
    );
    r.append(
        "etc/passwd",
        "svc:x:210:210::/nonexistent:/usr/sbin/nologin\n",
    );
    r.append("etc/shadow", "svc:!:1::::::\n");
    r.append("etc/group", "svc:x:210:\nother:x:209:\n");
    r.append("etc/gshadow", "svc:!::\nother:!::\n");

    let run = r.ok(&[], &format!("{}{}", app("app1", ""), app("app2", "")));

    assert_eq!(run.app("app1")["user"]["uid"], 208);
    assert_eq!(run.app("app1")["group"]["gid"], 208);
    assert_eq!(run.app("app2")["user"]["uid"], 207);
    r.assert_clean();
}

#[test]
fn uid_matches_gid_and_follows_an_adoptable_group() {
    let r = Root::debian("uid_eq_gid");
    // gid 999 is taken by a group; uid 998 by a user: both skipped.
    r.append("etc/group", "other:x:999:\nsvc:x:997:\napp2:x:996:\n");
    r.append("etc/gshadow", "other:!::\nsvc:!::\napp2:!::\n");
    r.append(
        "etc/passwd",
        "svc:x:998:997::/nonexistent:/usr/sbin/nologin\n",
    );
    r.append("etc/shadow", "svc:!:1::::::\n");

    let run = r.ok(&[], &format!("{}{}", app("app1", ""), app("app2", "")));

    let a1 = run.app("app1");
    assert_eq!(
        (a1["user"]["uid"].as_u64(), a1["group"]["gid"].as_u64()),
        (Some(995), Some(995))
    );
    let a2 = run.app("app2");
    assert_eq!(a2["group"]["state"], "unchanged", "{a2}");
    assert_eq!(a2["group"]["adopted"], true);
    assert_eq!(
        (a2["user"]["uid"].as_u64(), a2["user"]["gid"].as_u64()),
        (Some(996), Some(996))
    );
    r.assert_clean();
}

#[test]
fn converges_home_shell_and_group_of_an_existing_user() {
    let r = Root::debian("converge");
    // As the seed's `useradd -r -m -s /bin/bash app1` left it, then edited.
    r.append(
        "etc/passwd",
        "app1:x:999:999::/srv/app1:/usr/sbin/nologin\n",
    );
    r.append("etc/shadow", "app1:!:20000::::::\n");
    r.append("etc/group", "app1:x:999:\nweb:x:990:\n");
    r.append("etc/gshadow", "app1:!::\nweb:!::\n");

    // An account rip-user did not create (no "rip app" GECOS) is only
    // taken over with --adopt (red-team finding 1; this test used to adopt
    // it silently, which was the insecure behaviour).
    let run = r.ok(&["--adopt"], &app("app1", r#","group":"web""#));

    let u = &run.app("app1")["user"];
    assert_eq!(u["state"], "converged");
    assert_eq!(u["adopted"], true);
    let changes: BTreeMap<String, (Value, Value)> = u["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap().to_owned(),
                (c["from"].clone(), c["to"].clone()),
            )
        })
        .collect();
    assert_eq!(changes["gid"], (Value::from(999), Value::from(990)));
    assert_eq!(
        changes["home"],
        (Value::from("/srv/app1"), Value::from("/home/app1"))
    );
    assert_eq!(
        changes["shell"],
        (Value::from("/usr/sbin/nologin"), Value::from("/bin/bash"))
    );
    assert_eq!(r.user("app1").unwrap()[3], "990");
    let restart = &run.app("app1")["restart_needed"];
    assert_eq!(
        restart["users"],
        serde_json::json!(["app1"]),
        "new primary group needs a restart"
    );
    assert_eq!(
        restart["processes_checked"], false,
        "/proc is only scanned for --root /"
    );
    r.assert_clean();

    let again = r.ok(&[], &app("app1", r#","group":"web""#));
    assert_eq!(again.app("app1")["changed"], false);
}

/// Each case: extra lines for passwd, shadow, group, gshadow; the spec; the
/// field and words the refusal must name.
#[test]
fn every_conflict_is_refused_before_any_write() {
    let cases: &[(&str, [&str; 4], &str, &str, &str)] = &[
        (
            "regular_user",
            [
                "app1:x:1000:1000::/home/app1:/bin/bash\n",
                "app1:!:1::::::\n",
                "app1:x:1000:\n",
                "app1:!::\n",
            ],
            r#"{"name":"app1"}"#,
            "\"user\"",
            "uid 1000",
        ),
        (
            "root_user",
            [
                "app1:x:0:0::/home/app1:/bin/bash\n",
                "app1:!:1::::::\n",
                "",
                "",
            ],
            r#"{"name":"app1"}"#,
            "\"user\"",
            "uid 0",
        ),
        (
            "static_user",
            ["", "", "", ""],
            r#"{"name":"daemon","home":"/home/daemon"}"#,
            "\"user\"",
            "static",
        ),
        (
            "regular_group",
            ["", "", "app1:x:1001:\n", "app1:!::\n"],
            r#"{"name":"app1"}"#,
            "\"group\"",
            "gid 1001",
        ),
        (
            "group_with_members",
            ["", "", "app1:x:500:alice\n", "app1:!::alice\n"],
            r#"{"name":"app1"}"#,
            "\"group\"",
            "alice",
        ),
        (
            "group_is_someones_primary",
            [
                "bob:x:501:500::/home/bob:/bin/sh\n",
                "bob:!:1::::::\n",
                "app1:x:500:\n",
                "app1:!::\n",
            ],
            r#"{"name":"app1"}"#,
            "\"group\"",
            "bob",
        ),
        (
            "shared_group_name",
            ["", "", "", ""],
            r#"{"name":"app1","group":"users"}"#,
            "\"group\"",
            "gid 100",
        ),
        (
            "home_taken",
            [
                "carol:x:502:502::/home/app1:/bin/sh\n",
                "carol:!:1::::::\n",
                "",
                "",
            ],
            r#"{"name":"app1"}"#,
            "\"home\"",
            "carol",
        ),
        (
            "orphan_shadow_password",
            ["", "app1:$6$x$y:1::::::\n", "", ""],
            r#"{"name":"app1"}"#,
            "\"user\"",
            "usable password",
        ),
        (
            "malformed_line",
            ["app1:x:999\n", "", "", ""],
            r#"{"name":"app1"}"#,
            "\"user\"",
            "malformed",
        ),
        (
            "backup_name",
            ["", "", "", ""],
            r#"{"name":"backup"}"#,
            "\"user\"",
            "backup user",
        ),
    ];
    for (name, [p, s, g, gs], spec, field, words) in cases {
        let r = Root::debian(&format!("conflict_{name}"));
        r.append("etc/passwd", p);
        r.append("etc/shadow", s);
        r.append("etc/group", g);
        r.append("etc/gshadow", gs);
        let before = r.snapshot();

        // A good app first: it must not be half-made either.
        let run = r.run(&[], &format!("{}{spec}\n", app("good", r#","backups":{}"#)));

        assert_eq!(
            run.code, 2,
            "{name}: expected exit 2, got {}: {}",
            run.code, run.stderr
        );
        assert!(run.out.is_empty(), "{name}: printed {:?}", run.out);
        assert!(
            run.stderr.contains(field) && run.stderr.contains(words),
            "{name}: stderr lacks {field} / {words}: {}",
            run.stderr
        );
        let after = r.snapshot();
        let changed: Vec<_> = after
            .iter()
            .filter(|(p, v)| before.get(*p) != Some(v) && !p.ends_with(".pwd.lock"))
            .map(|(p, _)| p)
            .collect();
        assert!(changed.is_empty(), "{name}: files changed: {changed:?}");
    }
}

#[test]
fn dry_run_writes_nothing_and_reports_the_same_plan() {
    let r = Root::debian("dry_run");
    let key = r.path("key.pub");
    fs::write(&key, KEY).unwrap();
    // A backup home left too open: the plan must show the mode fixes.
    for (d, mode) in [("home/backup", 0o755), ("home/backup/.ssh", 0o750)] {
        fs::create_dir_all(r.path(d)).unwrap();
        fs::set_permissions(r.path(d), fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(r.path(d), Some(34), Some(34)).unwrap();
    }
    let before = r.snapshot();

    let dry = r.ok(&["--dry-run", "--backup-key", key.to_str().unwrap()], FLEET);

    assert_eq!(before, r.snapshot(), "--dry-run changed files");
    let real = r.ok(&["--backup-key", key.to_str().unwrap()], FLEET);
    for (d, w) in dry.out.iter().zip(&real.out) {
        let (mut d, mut w) = (d["rip_user"].clone(), w["rip_user"].clone());
        assert_eq!(d["dry_run"], true);
        d["dry_run"] = Value::Null;
        w["dry_run"] = Value::Null;
        assert_eq!(d, w, "dry run and real run disagree");
    }
    let home = &real.app("app1")["backup"]["account"]["home_dir"];
    let fields: Vec<&str> = home["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["mode", ".ssh mode"], "{home}");

    // Removal: the plan says "purged", and the home is still there.
    let plan = r.ok(&["--remove", "--purge", "--dry-run"], &app("app3", ""));
    assert_eq!(plan.app("app3")["home"]["state"], "purged");
    assert_eq!(plan.app("app3")["user"]["state"], "removed");
    assert!(r.path("home/app3").is_dir() && r.user("app3").is_some());
}

#[test]
fn second_run_changes_nothing_and_touches_no_file() {
    let r = Root::debian("idempotent");
    let key = r.path("key.pub");
    fs::write(&key, KEY).unwrap();
    let args = ["--backup-key", key.to_str().unwrap()];
    let first = r.ok(&args, FLEET);
    assert!(first.out.iter().all(|v| v["rip_user"]["changed"] == true));
    let before = r.snapshot();

    let second = r.ok(&args, FLEET);

    for v in &second.out {
        assert_eq!(v["rip_user"]["changed"], false, "{v}");
    }
    let after = r.snapshot();
    let touched: Vec<_> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(v))
        .map(|(p, _)| p)
        .collect();
    assert!(touched.is_empty(), "second run touched {touched:?}");
    r.assert_clean();
}

#[test]
fn debian_backup_user_is_adopted_and_confined() {
    let r = Root::debian("backup_user");
    r.write(
        "etc/group",
        &GROUP.replace("disk:x:6:", "disk:x:6:backup"),
        0o644,
    );
    r.write(
        "etc/gshadow",
        &GSHADOW.replace("disk:*::", "disk:*::backup"),
        0o640,
    );
    let key = r.path("key.pub");
    fs::write(&key, KEY).unwrap();

    let run = r.ok(&["--backup-key", key.to_str().unwrap()], FLEET);

    // Debian's static backup (34) is kept, its home and shell converged.
    let acct = &run.app("app1")["backup"]["account"];
    assert_eq!(acct["uid"], 34);
    assert_eq!(acct["adopted"], true);
    let fields: BTreeSet<&str> = acct["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, BTreeSet::from(["home", "shell", "groups"]));
    assert_eq!(
        r.user("backup").unwrap(),
        [
            "backup",
            "x",
            "34",
            "34",
            "backup",
            "/home/backup",
            "/bin/sh"
        ]
    );
    // Member of app1 and app2 (backups), not app3, no longer of disk.
    assert_eq!(acct["groups"], serde_json::json!(["app1", "app2"]));
    assert_eq!(r.group("app3").unwrap()[3], "");
    assert_eq!(r.group("disk").unwrap()[3], "");
    assert_eq!(run.app("app1")["backup"]["membership"], "added");
    assert_eq!(run.app("app1")["backup"]["pull_path"], "app1/data/backups/");
    assert_eq!(
        run.app("app1")["restart_needed"]["users"],
        serde_json::json!(["backup"])
    );
    assert_eq!(run.app("app3")["backup"]["member"], false);
    // The key: one restricted line, .ssh 0700 and the file 0600, owned by backup.
    let ak = r.path("home/backup/.ssh/authorized_keys");
    assert_eq!(
        fs::read_to_string(&ak).unwrap(),
        format!("restrict,command=\"/usr/bin/rrsync -ro /home\" {KEY}")
    );
    let (d, f) = (
        fs::metadata(r.path("home/backup/.ssh")).unwrap(),
        fs::metadata(&ak).unwrap(),
    );
    assert_eq!((d.mode() & 0o7777, d.uid(), d.gid()), (0o700, 34, 34));
    assert_eq!((f.mode() & 0o7777, f.uid(), f.gid()), (0o600, 34, 34));
    let h = fs::metadata(r.path("home/backup")).unwrap();
    assert_eq!((h.mode() & 0o7777, h.uid()), (0o700, 34));
    r.assert_clean();

    // Backups off for app2: the membership goes, and says so.
    let off = r.ok(
        &[],
        &FLEET.replace(r#""backups":{"enabled":true},"shell""#, r#""shell""#),
    );
    assert_eq!(off.app("app2")["backup"]["membership"], "removed");
    assert_eq!(r.group("app2").unwrap()[3], "");
    assert_eq!(r.group("app1").unwrap()[3], "backup");
}

#[test]
fn an_unrestricted_key_is_replaced_and_reported() {
    let r = Root::debian("replace_key");
    r.write("home/backup/.ssh/authorized_keys", KEY, 0o644);
    let key = r.path("key.pub");
    fs::write(&key, KEY).unwrap();

    let run = r.ok(&["--backup-key", key.to_str().unwrap()], FLEET);

    let ak = &run.app("app1")["backup"]["account"]["authorized_keys"];
    assert_eq!(ak["state"], "replaced");
    assert_eq!(ak["before"]["unrestricted"], 1);
    assert!(r
        .read("home/backup/.ssh/authorized_keys")
        .starts_with("restrict,command="));
}

#[test]
fn symlinked_ssh_dir_of_the_backup_user_is_refused() {
    let r = Root::debian("symlink_ssh");
    let victim = r.path("victim");
    fs::create_dir_all(&victim).unwrap();
    fs::create_dir_all(r.path("home/backup")).unwrap();
    std::os::unix::fs::chown(r.path("home/backup"), Some(34), Some(34)).unwrap();
    std::os::unix::fs::symlink(&victim, r.path("home/backup/.ssh")).unwrap();
    let key = r.path("key.pub");
    fs::write(&key, KEY).unwrap();
    let before = r.snapshot();

    let run = r.run(&["--backup-key", key.to_str().unwrap()], FLEET);

    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("symlink"), "{}", run.stderr);
    assert_eq!(
        fs::read_dir(&victim).unwrap().count(),
        0,
        "wrote through the symlink"
    );
    assert_eq!(
        before.get(&r.path("etc/passwd")),
        r.snapshot().get(&r.path("etc/passwd"))
    );
}

#[test]
fn bad_key_files_are_rejected_before_anything() {
    let r = Root::debian("bad_key");
    let before = r.snapshot();
    for (i, bad) in [
        format!("command=\"/bin/sh\" {KEY}"),
        format!("{KEY}{KEY}"),
        "not a key\n".to_owned(),
        KEY.replace("ops@", "ops\x1b@"),
    ]
    .iter()
    .enumerate()
    {
        let key = std::env::temp_dir().join(format!("rip-user-bad-key-{}-{i}", std::process::id()));
        fs::write(&key, bad).unwrap();

        let run = r.run(&["--backup-key", key.to_str().unwrap()], FLEET);

        fs::remove_file(&key).unwrap();
        assert_eq!(run.code, 2, "{bad:?} accepted");
        assert!(run.stderr.contains("public key"), "{}", run.stderr);
    }
    assert_eq!(before, r.snapshot());
}

#[test]
fn removal_keeps_the_home_unless_purged() {
    let r = Root::debian("remove");
    r.ok(&[], FLEET);
    fs::write(r.path("home/app1/data.txt"), "keep me").unwrap_or_else(|_| {
        fs::create_dir_all(r.path("home/app1")).unwrap();
        fs::write(r.path("home/app1/data.txt"), "keep me").unwrap();
    });

    let run = r.ok(&["--remove", "--archive"], &app("app1", r#","backups":{}"#));

    let a = run.app("app1");
    assert_eq!(
        (a["user"]["state"].as_str(), a["group"]["state"].as_str()),
        (Some("removed"), Some("removed"))
    );
    assert_eq!(a["home"]["state"], "archived");
    assert!(r.user("app1").is_none() && r.group("app1").is_none());
    assert!(!r.read("etc/gshadow").contains("app1"));
    assert!(!r.read("etc/shadow").contains("app1"));
    assert_eq!(r.read("home/app1/data.txt"), "keep me");
    let archive = r.path(
        a["home"]["archive"]
            .as_str()
            .unwrap()
            .trim_start_matches('/'),
    );
    let list = Command::new("tar")
        .arg("-tzf")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("app1/data.txt"));
    assert!(r.user("app2").is_some(), "app2 must stay");
    r.assert_clean();

    // Purge app2: its home goes; unmanaged accounts cannot be removed.
    let purged = r.ok(&["--remove", "--purge"], &app("app2", ""));
    assert_eq!(purged.app("app2")["home"]["state"], "purged");
    assert!(!r.path("home/app2").exists());
    let refused = r.run(&["--remove"], &app("daemon", r#","home":"/home/daemon""#));
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("not created by rip-user"),
        "{}",
        refused.stderr
    );
    assert!(r.user("daemon").is_some());
    r.assert_clean();
}

#[test]
fn creates_missing_account_files_in_a_scratch_root() {
    let r = Root::new("scratch");

    let run = r.ok(&[], FLEET);

    assert_eq!(run.app("app1")["user"]["uid"], 999);
    assert_eq!(run.app("app1")["backup"]["account"]["uid"], 996);
    let m = fs::metadata(r.path("etc/shadow")).unwrap();
    assert_eq!(m.mode() & 0o777, 0o600, "no shadow group: root-only shadow");
    r.assert_clean();
}

#[test]
fn eight_concurrent_runs_of_fifty_apps_each() {
    let r = Root::debian("concurrency");
    let inputs: Vec<String> = (0..8)
        .map(|p| {
            (0..50)
                .map(|a| {
                    let backups = if a % 5 == 0 { r#","backups":{}"# } else { "" };
                    app(&format!("c{p}a{a}"), backups)
                })
                .collect()
        })
        .collect();

    let start = Instant::now();
    let children: Vec<_> = inputs
        .iter()
        .map(|input| {
            let mut c = Command::new(BIN)
                .arg("--root")
                .arg(&r.dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
            c
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let elapsed = start.elapsed();
    eprintln!("rip-user concurrency: 8 runs x 50 apps took {elapsed:?}");

    let passwd = r.read("etc/passwd");
    let mut uids = BTreeSet::new();
    let mut names = BTreeSet::new();
    for l in passwd.lines() {
        let f: Vec<&str> = l.split(':').collect();
        assert!(names.insert(f[0].to_owned()), "user {} twice", f[0]);
        assert!(uids.insert(f[2].to_owned()), "uid {} twice", f[2]);
    }
    let mut gids = BTreeSet::new();
    for l in r.read("etc/group").lines() {
        let f: Vec<&str> = l.split(':').collect();
        assert!(gids.insert(f[2].to_owned()), "gid {} twice", f[2]);
    }
    for p in 0..8 {
        for a in 0..50 {
            let n = format!("c{p}a{a}");
            let u = r.user(&n).unwrap_or_else(|| panic!("{n} missing"));
            assert_eq!(u[2], u[3], "{n}: uid != gid");
            assert_eq!(
                r.group(&n).unwrap()[3],
                if a % 5 == 0 { "backup" } else { "" }
            );
        }
    }
    assert_eq!(r.read("etc/shadow").lines().count(), 4 + 400);
    assert!(
        !r.path("etc/passwd.lock").exists(),
        "a lock file was left behind"
    );
    r.assert_clean();
}

/// Run rip-user as uid/gid 60001 without supplementary groups.
fn run_as_60001(r: &Root, args: &[&str], input: &str) -> std::process::Output {
    let mut c = Command::new("setpriv")
        .args([
            "--reuid=60001",
            "--regid=60001",
            "--clear-groups",
            BIN,
            "--root",
        ])
        .arg(&r.dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux) is required");
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

#[test]
fn works_for_an_ordinary_user_on_a_scratch_root() {
    let r = Root::new("unprivileged");
    std::os::unix::fs::chown(&r.dir, Some(60001), Some(60001)).unwrap();
    std::os::unix::fs::chown(r.path("etc"), Some(60001), Some(60001)).unwrap();
    let o = run_as_60001(&r, &[], FLEET);

    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(out["rip_user"]["home"]["ownership"], "planned");
    assert_eq!(fs::metadata(r.path("home/app1")).unwrap().uid(), 60001);
    r.assert_clean();
}

/// The installed key's forced command, run the way sshd would run it for a
/// client (with the backup user's uid and groups), allows a read-only pull
/// of snapshots and nothing else. `restrict` itself is sshd's business.
#[test]
fn forced_rrsync_command_pulls_snapshots_read_only() {
    let r = Root::debian("rrsync_pull");
    let key = r.path("key.pub");
    fs::write(&key, KEY).unwrap();
    r.ok(&["--backup-key", key.to_str().unwrap()], FLEET);
    // The layout rip-perms makes: data 0710, backups 2750, snapshot 0640, db 0600.
    let h = |p: &str| r.path(&format!("home/{p}"));
    for (dir, mode) in [
        ("app1/data", 0o710),
        ("app1/data/backups", 0o2750),
        ("app3/data", 0o700),
    ] {
        fs::create_dir_all(h(dir)).unwrap();
        fs::set_permissions(h(dir), fs::Permissions::from_mode(mode)).unwrap();
    }
    for (file, mode) in [
        ("app1/data/backups/snap.db", 0o640),
        ("app1/data/app.db", 0o600),
        ("app3/data/app.db", 0o600),
    ] {
        fs::write(h(file), "data").unwrap();
        fs::set_permissions(h(file), fs::Permissions::from_mode(mode)).unwrap();
    }
    for p in [
        "app1/data",
        "app1/data/backups",
        "app1/data/backups/snap.db",
        "app1/data/app.db",
    ] {
        std::os::unix::fs::chown(h(p), Some(999), Some(999)).unwrap();
    }
    for p in ["app3/data", "app3/data/app.db"] {
        std::os::unix::fs::chown(h(p), Some(997), Some(997)).unwrap();
    }
    let line = r.read("home/backup/.ssh/authorized_keys");
    let forced = line
        .split('"')
        .nth(1)
        .unwrap()
        .replace(" /home", &format!(" {}", r.path("home").display()));
    assert!(forced.starts_with("/usr/bin/rrsync -ro "), "{forced}");
    assert!(
        Path::new("/usr/bin/rrsync").exists(),
        "rrsync (package rsync) is required"
    );
    // A stand-in for ssh + sshd: drop "-l USER HOST", run the forced command
    // as the backup user with the groups the account files give it.
    let fake = r.path("fake-ssh");
    r.write(
        "fake-ssh",
        &format!(
            "#!/bin/sh\nshift 3\nSSH_ORIGINAL_COMMAND=\"$*\" exec setpriv --reuid=34 --regid=34 --groups=34,999,998 /bin/sh -c '{forced}'\n"
        ),
        0o755,
    );
    let rsync = |args: &[&str]| {
        Command::new("rsync")
            .args(["-a", "-e"])
            .arg(&fake)
            .args(args)
            .output()
            .expect("rsync is required")
    };
    let dest = r.path("pulled");
    fs::create_dir_all(&dest).unwrap();
    let d = |n: &str| format!("{}/{n}/", dest.display());

    let ok = rsync(&["backup@host:app1/data/backups/", &d("snaps")]);
    let db = rsync(&["backup@host:app1/data/app.db", &d("db")]);
    let other = rsync(&["backup@host:app3/data/", &d("app3")]);
    let push = rsync(&[
        &format!("{}/", r.path("etc").display()),
        "backup@host:app1/data/backups/",
    ]);
    let shell = Command::new(&fake)
        .args(["-l", "backup", "host", "sh", "-c", "id"])
        .output()
        .unwrap();

    assert!(
        ok.status.success(),
        "pull failed: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        fs::read_to_string(dest.join("snaps/snap.db")).unwrap(),
        "data"
    );
    assert!(!db.status.success(), "pulling a live database succeeded");
    assert!(
        !other.status.success(),
        "pulling another app's data succeeded"
    );
    assert!(!dest.join("db/app.db").exists(), "read a live database");
    assert!(
        !dest.join("app3/app.db").exists(),
        "read another app's data"
    );
    assert!(!push.status.success(), "a push was accepted");
    assert!(!r.path("home/app1/data/backups/passwd").exists());
    assert!(
        !shell.status.success() && !String::from_utf8_lossy(&shell.stdout).contains("uid="),
        "got a shell"
    );
}

/// rip-user and `useradd --prefix` (which takes only shadow's link locks)
/// running at once on one root lose no entry: rip-user takes those locks
/// too. useradd gives up at once on a held lock, so it is retried.
#[test]
fn runs_alongside_useradd_prefix_without_losing_entries() {
    let r = Root::debian("useradd_interop");
    let ours: Vec<_> = (0..4)
        .map(|p| {
            let input: String = (0..25).map(|a| app(&format!("r{p}a{a}"), "")).collect();
            let mut c = Command::new(BIN)
                .arg("--root")
                .arg(&r.dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
            c
        })
        .collect();
    let dir = r.dir.clone();
    let theirs = std::thread::spawn(move || {
        for i in 0..20 {
            let name = format!("u{i}");
            let mut tries = 0;
            loop {
                let o = Command::new("useradd")
                    .arg("--prefix")
                    .arg(&dir)
                    .args([
                        "-r",
                        "-M",
                        "-d",
                        &format!("/home/{name}"),
                        "-s",
                        "/bin/sh",
                        &name,
                    ])
                    .output()
                    .expect("useradd (package passwd) is required");
                if o.status.success() {
                    break;
                }
                tries += 1;
                assert!(
                    tries < 500,
                    "useradd {name}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    });
    for c in ours {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    theirs.join().unwrap();

    for n in (0..4)
        .flat_map(|p| (0..25).map(move |a| format!("r{p}a{a}")))
        .chain((0..20).map(|i| format!("u{i}")))
    {
        assert!(r.user(&n).is_some(), "{n} lost");
        assert!(r.group(&n).is_some(), "group {n} lost");
    }
    let uids: Vec<String> = r
        .read("etc/passwd")
        .lines()
        .map(|l| l.split(':').nth(2).unwrap().to_owned())
        .collect();
    assert_eq!(
        uids.len(),
        uids.iter().collect::<BTreeSet<_>>().len(),
        "duplicate uid"
    );
    r.assert_clean();
}

/// Red-team finding 1 (HIGH): a package's own system account (here
/// Prometheus's, as Debian creates it) and privileged groups were adopted
/// as app accounts, and `--remove` then deleted the distro account.
#[test]
fn high1_package_accounts_and_privileged_groups_are_not_adopted() {
    let r = Root::debian("high1_adoption");
    r.append(
        "etc/passwd",
        "prometheus:x:102:104:Prometheus daemon,,,:/var/lib/prometheus:/usr/sbin/nologin\n\
         systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin\n",
    );
    r.append(
        "etc/shadow",
        "prometheus:!:19000::::::\nsystemd-network:!*:19000::::::\n",
    );
    r.append(
        "etc/group",
        "prometheus:x:104:\nsystemd-network:x:998:\nsystemd-journal:x:999:\ndocker:x:997:\nsudo:x:27:\n",
    );
    r.append(
        "etc/gshadow",
        "prometheus:!::\nsystemd-network:!::\nsystemd-journal:!::\ndocker:!::\nsudo:*::\n",
    );
    let before = r.snapshot();
    let unchanged = |what: &str| {
        let after = r.snapshot();
        let changed: Vec<_> = after
            .iter()
            .filter(|(p, v)| before.get(*p) != Some(v) && !p.ends_with(".pwd.lock"))
            .map(|(p, _)| p)
            .collect();
        assert!(changed.is_empty(), "{what}: files changed: {changed:?}");
    };

    for (spec, field, words) in [
        (
            r#"{"name":"prometheus"}"#,
            "\"user\"",
            "not created by rip-user",
        ),
        (
            r#"{"name":"systemd-network"}"#,
            "\"user\"",
            "not created by rip-user",
        ),
        (
            r#"{"name":"app1","group":"docker"}"#,
            "\"group\"",
            "privileged",
        ),
        (
            r#"{"name":"app1","group":"systemd-journal"}"#,
            "\"group\"",
            "privileged",
        ),
        (
            r#"{"name":"app1","group":"libvirt"}"#,
            "\"group\"",
            "privileged",
        ),
        (
            r#"{"name":"app1","group":"sudo"}"#,
            "\"group\"",
            "privileged",
        ),
    ] {
        // --adopt takes a package's system user over on purpose; a
        // privileged group never.
        let with_adopt: &[&[&str]] = if field == "\"group\"" {
            &[&[], &["--adopt"]]
        } else {
            &[&[]]
        };
        for extra in with_adopt {
            let run = r.run(extra, &format!("{}{spec}\n", app("good", "")));

            assert_eq!(run.code, 2, "{spec} {extra:?} accepted: {:?}", run.out);
            assert!(run.out.is_empty(), "{spec}: printed {:?}", run.out);
            assert!(
                run.stderr.contains("record 2")
                    && run.stderr.contains(field)
                    && run.stderr.contains(words),
                "{spec}: stderr lacks record 2 / {field} / {words}: {}",
                run.stderr
            );
            unchanged(spec);
        }
    }
    // Only Debian's `backup` is adopted as the backup user by exception: a
    // static account under another name is refused, even with --adopt.
    for extra in [&[][..], &["--adopt"][..]] {
        let args = [&["--backup-user", "daemon"][..], extra].concat();
        let run = r.run(&args, &app("app9", r#","backups":{}"#));
        assert_eq!(run.code, 2, "{args:?}: {:?}", run.out);
        assert!(run.stderr.contains("\"daemon\""), "{}", run.stderr);
        unchanged("--backup-user daemon");
    }
    // Removal of the distro account is refused too.
    let rm = r.run(&["--remove"], "{\"name\":\"prometheus\"}\n");
    assert_eq!(rm.code, 2, "{:?}", rm.out);
    unchanged("--remove prometheus");

    // With --adopt an unprivileged package user is taken over, and marked.
    let run = r.ok(&["--adopt"], "{\"name\":\"prometheus\"}\n");
    assert_eq!(run.app("prometheus")["user"]["adopted"], true);
    assert_eq!(r.user("prometheus").unwrap()[4], "rip app prometheus");
    // ... after which it is rip's and converges without --adopt.
    let again = r.ok(&[], "{\"name\":\"prometheus\"}\n");
    assert_eq!(again.app("prometheus")["changed"], false);
}

/// Red-team finding 2 (HIGH): `--backup-home /etc` made /etc the backup
/// user's 0700 home; app homes could overlap other accounts' homes.
#[test]
fn high2_backup_home_is_validated_and_homes_may_not_overlap() {
    let r = Root::debian("high2_homes");
    r.append(
        "etc/passwd",
        "crontab:x:990:990::/var/spool/cron:/bin/false\nalice:x:1000:1000::/home/alice:/bin/bash\n",
    );
    fs::create_dir_all(r.path("srv/apps/app1")).unwrap();
    let before = r.snapshot();

    for (args, input, words) in [
        (
            &["--backup-home", "/etc"][..],
            FLEET.to_owned(),
            "system directory",
        ),
        (
            &["--backup-home", "/var/backups"][..],
            FLEET.to_owned(),
            "system directory",
        ),
        (
            &["--backup-home", "/usr/local/backup"][..],
            FLEET.to_owned(),
            "system directory",
        ),
        (
            &["--backup-home", "/"][..],
            FLEET.to_owned(),
            "--backup-home",
        ),
        (
            &["--backup-home", "/srv"][..],
            FLEET.to_owned(),
            "two levels",
        ),
        (
            &["--backup-home", "/home/x/../etc"][..],
            FLEET.to_owned(),
            "--backup-home",
        ),
        (
            &["--backup-home", "relative/dir"][..],
            FLEET.to_owned(),
            "not absolute",
        ),
        (
            &["--backup-home", "/home/alice"][..],
            FLEET.to_owned(),
            "alice",
        ),
        (
            &["--backup-home", "/home/alice/bk"][..],
            FLEET.to_owned(),
            "alice",
        ),
        (
            &["--backup-home", "/srv/apps/app1/bk"][..],
            app(
                "app1",
                r#","home":"/srv/apps/app1","backups":{"enabled":true}"#,
            ),
            "one inside the other",
        ),
        (
            &["--backup-home", "/srv/apps"][..],
            app(
                "app1",
                r#","home":"/srv/apps/app1","backups":{"enabled":true}"#,
            ),
            "one inside the other",
        ),
        (
            &[][..],
            app("app1", r#","home":"/home/alice/app1""#),
            "alice",
        ),
        (&[][..], app("app1", r#","home":"/home/backup""#), "backup"),
        (&[][..], app("app1", r#","home":"/var/spool/cron""#), "home"),
    ] {
        let run = r.run(args, &input);

        assert_eq!(run.code, 2, "{args:?} {input}: accepted: {:?}", run.out);
        assert!(run.out.is_empty());
        assert!(
            run.stderr.contains(words),
            "{args:?} {input}: stderr lacks {words:?}: {}",
            run.stderr
        );
        let after = r.snapshot();
        let changed: Vec<_> = after
            .iter()
            .filter(|(p, v)| before.get(*p) != Some(v) && !p.ends_with(".pwd.lock"))
            .map(|(p, _)| p)
            .collect();
        assert!(changed.is_empty(), "{args:?} {input}: wrote {changed:?}");
    }
    // A good one still works.
    let run = r.ok(&["--backup-home", "/srv/backup"], FLEET);
    assert_eq!(run.app("app1")["backup"]["account"]["home"], "/srv/backup");
}

/// Red-team finding 3 (MEDIUM): as an ordinary user, the demo pipeline's
/// second run failed because the backup home the first run made belongs to
/// the invoking uid (it could not chown it).
#[test]
fn medium3_unprivileged_second_run_of_the_demo_fleet_converges() {
    let r = Root::new("medium3_unprivileged_twice");
    let key = r.path("key.pub");
    fs::write(&key, KEY).unwrap();
    for p in [&r.dir, &r.path("etc"), &key] {
        std::os::unix::fs::chown(p, Some(60001), Some(60001)).unwrap();
    }
    let fleet = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/apps.json"
    ))
    .unwrap();
    let args = ["--backup-key", key.to_str().unwrap()];

    let first = run_as_60001(&r, &args, &fleet);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let before = r.snapshot();
    let second = run_as_60001(&r, &args, &fleet);

    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let out: Vec<Value> = String::from_utf8_lossy(&second.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(out.len(), 3);
    for v in &out {
        assert_eq!(v["rip_user"]["changed"], false, "{v}");
        assert_eq!(v["rip_user"]["home"]["ownership"], "planned");
    }
    let acct = &out[0]["rip_user"]["backup"]["account"];
    assert_eq!(acct["home_dir"]["ownership"], "planned", "{acct}");
    assert_eq!(acct["authorized_keys"]["state"], "unchanged", "{acct}");
    let after = r.snapshot();
    let changed: Vec<_> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(v) && !p.ends_with(".pwd.lock"))
        .map(|(p, _)| p)
        .collect();
    assert!(changed.is_empty(), "second run rewrote {changed:?}");

    // Another unprivileged uid's directory is still refused.
    std::os::unix::fs::chown(r.path("home/backup"), Some(60002), Some(60002)).unwrap();
    let third = run_as_60001(&r, &args, &fleet);
    assert_eq!(third.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&third.stderr).contains("uid 60002"));
}

/// Red-team finding 4 (LOW): a private key given as --backup-key was only
/// reported as "holds 7 lines".
#[test]
fn low4_private_key_as_backup_key_is_named() {
    let r = Root::debian("low4_private_key");
    let key = r.path("id_ed25519");
    fs::write(
        &key,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACCJrbaK9tXtARn/142mydmg0YJt7hB3+WfuipnLZ/T13wAAAJi+fWbmvn1m\n5gAAAAtzc2gtZWQyNTUxOQAAACCJrbaK9tXtARn/142mydmg0YJt7hB3+WfuipnLZ/T13w\nAAAEDw4lzqZJ0m0kq6YLBHuG5ue6PAPNWfXaYUsYnD66VN0ImttorS1e0BGf/XjabJqaDR\ngm3uEHf5Z+6Kmctn9PXfAAAAD29wc0BleGFtcGxlLmNvbQECAwQFBg==\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    let before = r.snapshot();

    let run = r.run(&["--backup-key", key.to_str().unwrap()], FLEET);

    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("private key") && run.stderr.contains(".pub"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("lines"), "{}", run.stderr);
    assert_eq!(before, r.snapshot());
}

/// One entry of a tree: kind, contents (or link target), mode, owner, mtime.
type Entry = (char, Vec<u8>, u32, (u32, u32), i64);

/// Every entry under `dir`, by path relative to it, never following links.
fn tree(dir: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let (kind, body) = if m.file_type().is_symlink() {
                (
                    'l',
                    fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else if m.is_dir() {
                stack.push(p.clone());
                ('d', Vec::new())
            } else if m.is_file() {
                ('f', fs::read(&p).unwrap())
            } else {
                ('s', Vec::new())
            };
            let mtime = if m.is_dir() { 0 } else { m.mtime() };
            out.insert(
                rel,
                (kind, body, m.mode() & 0o7777, (m.uid(), m.gid()), mtime),
            );
        }
    }
    out
}

/// A skeleton with what a careless one might hold: loose, setuid and
/// setgid modes, nested directories, links in and out, a hard link, a
/// fifo and an SSH key.
fn make_skel(r: &Root) {
    r.write("etc/skel/.profile", "profile\n", 0o644);
    r.write("etc/skel/.bashrc", "bashrc\n", 0o600);
    r.write("etc/skel/tools/hello", "#!/bin/sh\necho hi\n", 0o4755);
    fs::set_permissions(r.path("etc/skel/tools"), fs::Permissions::from_mode(0o2775)).unwrap();
    r.write("etc/skel/.config/app/settings", "x=1\n", 0o640);
    r.write("etc/skel/.ssh/authorized_keys", KEY, 0o600);
    std::os::unix::fs::symlink("/etc/shadow", r.path("etc/skel/shadow-link")).unwrap();
    std::os::unix::fs::symlink(".profile", r.path("etc/skel/.bash_profile")).unwrap();
    fs::hard_link(r.path("etc/skel/.profile"), r.path("etc/skel/profile-hard")).unwrap();
    nix::unistd::mkfifo(
        &r.path("etc/skel/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
}

/// See: #4. A new home starts with the root's /etc/skel, the same
/// names, contents, links and times as `useradd -m` copies, except what
/// the home's policy forbids: every copy is the app's, files keep only
/// their owner bits, directories are 0700, and `.ssh` and special files
/// stay out. An existing home is never filled again.
#[test]
fn issue4_new_home_gets_the_skeleton_like_useradd_m() {
    let ours = Root::debian("skel_ours");
    let theirs = Root::debian("skel_theirs");
    make_skel(&ours);
    make_skel(&theirs);
    let o = Command::new("useradd")
        .arg("--prefix")
        .arg(&theirs.dir)
        // Debian 12's useradd --prefix copies the host's /etc/skel unless
        // told which one; ours reads the root's.
        .arg("-k")
        .arg(theirs.path("etc/skel"))
        .args(["-r", "-m", "-d", "/home/app1", "-s", "/bin/bash", "app1"])
        .output()
        .expect("useradd (package passwd) is required");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let dry = ours.ok(&["--dry-run"], FLEET);
    let run = ours.ok(&[], FLEET);

    // Same entries as useradd's copy, less what the policy keeps out.
    let skel = &run.app("app1")["home"]["skel"];
    assert_eq!(skel, &dry.app("app1")["home"]["skel"], "dry run disagrees");
    let left_out: Vec<&str> = skel["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(left_out, [".ssh", "fifo"], "{skel}");
    let mine = tree(&ours.path("home/app1"));
    let mut useradds = tree(&theirs.path("home/app1"));
    useradds.retain(|p, _| !(p == "fifo" || p.starts_with(".ssh")));
    assert_eq!(
        mine.keys().collect::<Vec<_>>(),
        useradds.keys().collect::<Vec<_>>()
    );
    let copied: BTreeSet<&str> = skel["copied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(copied, mine.keys().map(String::as_str).collect());
    let uid = run.app("app1")["user"]["uid"].as_u64().unwrap() as u32;
    for (path, (kind, body, mode, owner, mtime)) in &mine {
        let theirs = &useradds[path];
        assert_eq!((kind, body), (&theirs.0, &theirs.1), "{path}: contents");
        assert_eq!(*owner, (uid, uid), "{path}: owner");
        let want = match kind {
            'd' => 0o700,
            'f' => theirs.2 & 0o700,
            _ => *mode,
        };
        assert_eq!(*mode, want, "{path}: mode {mode:o}");
        if *kind == 'f' {
            assert_eq!(*mtime, theirs.4, "{path}: mtime");
        }
    }
    assert_eq!(mine["tools/hello"].2, 0o700, "setuid bit dropped");
    assert_eq!(mine[".profile"].2, 0o600);
    assert_eq!(mine["shadow-link"].1, b"/etc/shadow", "copied as a link");
    let home = fs::metadata(ours.path("home/app1")).unwrap();
    assert_eq!((home.mode() & 0o7777, home.uid()), (0o710, uid));
    let leftovers: Vec<_> = fs::read_dir(ours.path("home"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("rip-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(run.app("app3")["home"]["skel"]["copied"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == ".profile"));

    // Later skeleton changes never reach an existing home, and nothing the
    // app changed in its copies is overwritten.
    fs::write(ours.path("home/app1/.profile"), "mine\n").unwrap();
    ours.write("etc/skel/.profile", "new profile\n", 0o644);
    ours.write("etc/skel/.new", "new\n", 0o644);
    let again = ours.ok(&[], FLEET);

    assert_eq!(again.app("app1")["changed"], false);
    assert!(again.app("app1")["home"].get("skel").is_none());
    assert_eq!(ours.read("home/app1/.profile"), "mine\n");
    assert!(!ours.path("home/app1/.new").exists());
    ours.assert_clean();
}

/// See: #4. A skeleton reached through a symlink is not followed:
/// the home starts empty and the JSON says why.
#[test]
fn issue4_symlinked_skeleton_is_not_followed() {
    let r = Root::debian("skel_symlink");
    r.write("elsewhere/.profile", "profile\n", 0o644);
    std::os::unix::fs::symlink(r.path("elsewhere"), r.path("etc/skel")).unwrap();

    let run = r.ok(&[], &app("app1", ""));

    let skel = &run.app("app1")["home"]["skel"];
    assert_eq!(skel["found"], false, "{skel}");
    assert!(skel["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("symlink"));
    assert_eq!(fs::read_dir(r.path("home/app1")).unwrap().count(), 0);
}
