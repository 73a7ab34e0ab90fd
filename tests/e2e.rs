//! End-to-end claims under a real systemd 252 (PID 1 of a systemd-nspawn
//! container booted by tests/e2e/sandbox): the demo fleet is deployed with the
//! real tools and each claim of issue #3 is checked on the running services.
//!
//! Run: `bash tests/e2e/run` (builds everything, boots, tests, tears down).
//! Needs root, systemd-nspawn, debootstrap (a cached rootfs after the first
//! run) and Go; never skips: without them every claim fails with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

// ---- harness -------------------------------------------------------------------

/// The workspace root.
fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The target dir's profile directory, where `cargo build --workspace --bins`
/// put the tools: the parent of this test binary's `deps/`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// Name of the container instance the suite boots: RIP_SB_NAME, else one
/// derived from the target dir, so people building into different target
/// dirs on one machine do not stop each other's containers.
fn sb_name() -> String {
    use std::hash::{Hash, Hasher};
    if let Ok(n) = std::env::var("RIP_SB_NAME") {
        return n;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bin_dir().hash(&mut h);
    format!("rip-e2e-{:08x}", h.finish() as u32)
}

/// One command's result, with everything needed in a failure message.
#[derive(Debug, Clone)]
struct Out {
    what: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) -> bool {
        self.code == 0
    }

    fn describe(&self) -> String {
        format!(
            "$ {}\nexit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.code,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }

    /// Ok(stdout) or Err(description).
    fn checked(self) -> Result<String, String> {
        if self.ok() {
            Ok(self.stdout)
        } else {
            Err(self.describe())
        }
    }
}

fn run_cmd(cmd: &mut Command, what: &str) -> Out {
    match cmd.stdin(Stdio::null()).output() {
        Ok(o) => Out {
            what: what.to_owned(),
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        },
        Err(e) => Out {
            what: what.to_owned(),
            code: -1,
            stdout: String::new(),
            stderr: format!("cannot start: {e}"),
        },
    }
}

/// `bash tests/e2e/sandbox ARGS...`.
fn sandbox(args: &[&str]) -> Out {
    let script = workspace().join("tests/e2e/sandbox");
    run_cmd(
        Command::new("bash")
            .arg(&script)
            .args(args)
            .env("RIP_SB_NAME", sb_name()),
        &format!("sandbox {}", args.join(" ")),
    )
}

/// A shell script run as root inside the container.
fn sh(script: &str) -> Out {
    let mut out = sandbox(&["exec", "/bin/sh", "-c", script]);
    out.what = format!("(in container) {script}");
    out
}

/// Like `sh`, but the stdout of a successful run, else a panic with it all.
fn sh_ok(script: &str) -> String {
    let out = sh(script);
    assert!(
        out.ok(),
        "command failed inside the container\n{}",
        out.describe()
    );
    out.stdout
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Percent-encode a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'-' | b'_' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Print a measured value so the test output (run with --nocapture or on
/// failure) lists what each claim saw.
fn measured(claim: &str, what: &str) {
    use std::io::Write;
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    let line = format!("[{claim} +{t:.1}s] {what}");
    println!("{line}");
    let report = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-report.txt");
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(report)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// When the suite started, for the timings in its output.
static START: OnceLock<Instant> = OnceLock::new();

// ---- the deployed fleet ------------------------------------------------------

#[derive(Debug, Clone)]
struct App {
    name: String,
    port: u16,
    metrics: u16,
    backups: bool,
    runtime: String,
    home: String,
    /// The `-agekey FILE` of its exec line, if any.
    agekey: Option<String>,
}

impl App {
    fn db(&self) -> String {
        format!("{}/data/app.db", self.home)
    }
}

struct Fleet {
    rootfs: PathBuf,
    apps: Vec<App>,
    /// Ok(pipeline stdout lines) or why deployment failed.
    deployed: Result<(), String>,
}

static FLEET: OnceLock<Result<Fleet, String>> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::new(());

extern "C" {
    fn atexit(cb: extern "C" fn()) -> std::os::raw::c_int;
}

extern "C" fn teardown() {
    if std::env::var_os("RIP_E2E_KEEP").is_some() {
        eprintln!(
            "e2e: RIP_E2E_KEEP set; container {} left running",
            sb_name()
        );
        return;
    }
    let out = sandbox(&["down"]);
    if !out.ok() {
        eprintln!("e2e: teardown failed\n{}", out.describe());
    }
}

/// The shared fleet (booted and deployed once per test binary), and a lock
/// that runs the claims one at a time (claim 10 plants files and reruns
/// rip-perms).
fn fleet() -> (MutexGuard<'static, ()>, &'static Fleet) {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    match FLEET.get_or_init(setup) {
        Ok(f) => (guard, f),
        Err(e) => panic!("e2e setup failed, so no claim can be checked:\n{e}"),
    }
}

/// Same, and the deployment must have worked.
fn deployed() -> (MutexGuard<'static, ()>, &'static Fleet) {
    let (g, f) = fleet();
    if let Err(e) = &f.deployed {
        panic!("the demo fleet could not be deployed with rip-user | rip-perms | rip-unit:\n{e}");
    }
    (g, f)
}

fn read_apps() -> Result<Vec<App>, String> {
    let path = workspace().join("examples/apps.json");
    let text = fs::read_to_string(&path).map_err(|e| format!("{path:?}: {e}"))?;
    let specs: Vec<Value> = serde_json::from_str(&text).map_err(|e| format!("{path:?}: {e}"))?;
    let mut apps = Vec::new();
    for s in specs {
        let name = s["name"].as_str().ok_or("app without name")?.to_owned();
        let port = s["listen"][0]["port"]
            .as_u64()
            .ok_or(format!("{name}: no listen port"))?;
        let metrics = s["metrics"]["port"]
            .as_u64()
            .ok_or(format!("{name}: no metrics port"))?;
        apps.push(App {
            home: s["home"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or(format!("/home/{name}")),
            port: port as u16,
            metrics: metrics as u16,
            backups: s["backups"]["enabled"].as_bool().unwrap_or(false),
            runtime: s["runtime"].as_str().unwrap_or("other").to_owned(),
            agekey: s["exec"]
                .as_array()
                .and_then(|argv| argv.iter().skip_while(|a| *a != "-agekey").nth(1))
                .and_then(Value::as_str)
                .map(str::to_owned),
            name,
        });
    }
    Ok(apps)
}

fn setup() -> Result<Fleet, String> {
    let t0 = *START.get_or_init(Instant::now);
    let report = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-report.txt");
    let _ = fs::remove_file(&report);
    measured(
        "setup",
        &format!(
            "container {}; measurements also go to {report:?}",
            sb_name()
        ),
    );
    let apps = read_apps()?;
    let bins = bin_dir();

    // The tools and the Rust test app come from `cargo build --workspace --bins`.
    let mut missing = Vec::new();
    for b in [
        "rip-user",
        "rip-perms",
        "rip-unit",
        "rip-scrape",
        "rip-audit",
        "rip-e2e-testapp",
    ] {
        if !bins.join(b).is_file() {
            missing.push(b);
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "binaries missing from {bins:?}: {missing:?}; run `cargo build --workspace --bins` first"
        ));
    }
    // Boot a fresh container (reusing a running one only when asked to),
    // building the Go app meanwhile.
    let reuse = std::env::var_os("RIP_E2E_REUSE").is_some() && sandbox(&["status"]).ok();
    let (go_app, up) = std::thread::scope(|scope| {
        let go = scope.spawn(|| {
            let t = Instant::now();
            let r = build_go_app(&bins);
            measured(
                "setup",
                &format!("go build took {:.1}s", t.elapsed().as_secs_f64()),
            );
            r
        });
        let up = if reuse {
            None
        } else {
            sandbox(&["down"]);
            let up = sandbox(&["up"]);
            // SAFETY: registers a plain extern "C" fn with no captured state;
            // it runs at process exit and only spawns the sandbox's `down`.
            unsafe {
                atexit(teardown);
            }
            Some(up)
        };
        (
            go.join()
                .unwrap_or_else(|_| Err("go build panicked".into())),
            up,
        )
    });
    if let Some(up) = up {
        for l in up.stderr.lines() {
            measured("setup", l);
        }
        if !up.ok() {
            return Err(format!("the container did not boot\n{}", up.describe()));
        }
    }
    let go_app = go_app?;
    let env = sandbox(&["env"]).checked()?;
    let rootfs = env
        .lines()
        .find_map(|l| l.strip_prefix("RIP_SB_ROOTFS="))
        .map(|v| PathBuf::from(v.trim_matches('\'')))
        .ok_or(format!("no RIP_SB_ROOTFS in:\n{env}"))?;
    measured(
        "setup",
        &format!("container up after {:.1}s", t0.elapsed().as_secs_f64()),
    );

    let deployed = deploy(&rootfs, &bins, &go_app, &apps);
    measured(
        "setup",
        &format!(
            "fleet deployed ({}) after {:.1}s",
            if deployed.is_ok() { "ok" } else { "FAILED" },
            t0.elapsed().as_secs_f64()
        ),
    );
    Ok(Fleet {
        rootfs,
        apps,
        deployed,
    })
}

/// `go build` the Go test app (static) into the target dir.
fn build_go_app(bins: &Path) -> Result<PathBuf, String> {
    let out_dir = bins.join("e2e");
    fs::create_dir_all(&out_dir).map_err(|e| format!("{out_dir:?}: {e}"))?;
    let out = out_dir.join("testapp-go");
    let mut cmd = Command::new("go");
    cmd.args(["build", "-trimpath", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(workspace().join("tests/e2e/testapp-go"))
        .env("CGO_ENABLED", "0");
    if std::env::var_os("GOCACHE").is_none() {
        cmd.env("GOCACHE", out_dir.join("go-cache"));
    }
    if std::env::var_os("GOPATH").is_none() {
        cmd.env("GOPATH", out_dir.join("go-path"));
    }
    run_cmd(&mut cmd, "go build (tests/e2e/testapp-go)").checked()?;
    Ok(out)
}

fn copy_in(rootfs: &Path, src: &Path, dst: &str, mode: u32) -> Result<(), String> {
    let target = rootfs.join(dst.trim_start_matches('/'));
    let dir = target.parent().ok_or(format!("{target:?} has no parent"))?;
    fs::create_dir_all(dir).map_err(|e| format!("{dir:?}: {e}"))?;
    // Copy beside, then rename: the old file may be a running binary.
    let tmp = dir.join(".e2e-copy.tmp");
    fs::copy(src, &tmp).map_err(|e| format!("copy {src:?} -> {tmp:?}: {e}"))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {tmp:?}: {e}"))?;
    fs::rename(&tmp, &target).map_err(|e| format!("rename {tmp:?} -> {target:?}: {e}"))
}

/// Install tools and apps, run the pipeline inside the container (--root /),
/// start every unit and wait until each answers on its port.
fn deploy(rootfs: &Path, bins: &Path, go_app: &Path, apps: &[App]) -> Result<(), String> {
    for b in [
        "rip-user",
        "rip-perms",
        "rip-unit",
        "rip-scrape",
        "rip-audit",
        "rip-e2e-testapp",
    ] {
        copy_in(rootfs, &bins.join(b), &format!("/usr/local/bin/{b}"), 0o755)?;
    }
    copy_in(
        rootfs,
        &workspace().join("examples/apps.json"),
        "/root/e2e/apps.json",
        0o644,
    )?;
    // The binaries are in place before the pipeline, as a deploy script would
    // leave them (root-owned); rip-perms gives them owner and mode.
    for a in apps {
        let src = if a.runtime == "rust" {
            bins.join("rip-e2e-testapp")
        } else {
            go_app.into()
        };
        copy_in(rootfs, &src, &format!("{}/bin/{}", a.home, a.name), 0o755)?;
    }
    sh(
        "mkdir -p /root/e2e && cd /root/e2e && rm -f backup_key backup_key.pub && \
        ssh-keygen -q -t ed25519 -N '' -C e2e-backup -f backup_key",
    )
    .checked()?;
    // Key files the apps read at start (the seed's age.key), root-made 0644.
    for k in apps.iter().filter_map(|a| a.agekey.as_deref()) {
        sh(&format!(
            "printf 'AGE-SECRET-KEY-1E2ETESTKEYNOTREAL\\n' > {k}"
        ))
        .checked()?;
    }

    let pipeline = "cd /root/e2e && \
        rip-user --backup-key /root/e2e/backup_key.pub < apps.json 2> 10-user.err > 10-user.ndjson; \
        echo \"rip-user exit $?\"; \
        rip-perms < 10-user.ndjson 2> 20-perms.err > 20-perms.ndjson; echo \"rip-perms exit $?\"; \
        rip-unit < 20-perms.ndjson 2> 30-unit.err > 30-unit.ndjson; echo \"rip-unit exit $?\"";
    let out = sh(pipeline);
    let log = sh("cd /root/e2e && for f in 10-user 20-perms 30-unit; do \
                  echo \"== $f.err\"; cat $f.err; echo \"== $f.ndjson\"; cat $f.ndjson; done");
    println!("e2e pipeline:\n{}\n{}", out.stdout, log.stdout);
    for (tool, file) in [
        ("rip-user", "10-user"),
        ("rip-perms", "20-perms"),
        ("rip-unit", "30-unit"),
    ] {
        if !out.stdout.contains(&format!("{tool} exit 0")) {
            return Err(format!(
                "{tool} failed (the pipeline stops there):\n{}\n{}",
                out.stdout,
                sh(&format!("cat /root/e2e/{file}.err")).stdout
            ));
        }
    }
    for a in apps {
        let unit = format!("/etc/systemd/system/{}.service", a.name);
        if !rootfs.join(unit.trim_start_matches('/')).is_file() {
            return Err(format!("rip-unit exited 0 but wrote no {unit}"));
        }
    }

    let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
    let start = sh(&format!(
        "systemctl daemon-reload && systemctl start {}",
        names.join(" ")
    ));
    if !start.ok() {
        let status = sh(&format!(
            "systemctl status --no-pager -l {0}; journalctl --no-pager -n 40 -u {0}",
            names.join(" -u ")
        ));
        return Err(format!("{}\n{}", start.describe(), status.stdout));
    }
    for a in apps {
        wait_http(a)?;
    }
    Ok(())
}

/// Wait until `GET /` on the app's port answers with its name.
fn wait_http(a: &App) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = sh(&format!("curl -sS -m 2 http://127.0.0.1:{}/", a.port));
        if out.ok() && out.stdout.trim() == a.name {
            return Ok(());
        }
        if Instant::now() > deadline {
            let st = sh(&format!(
                "systemctl status --no-pager -l {0}; journalctl --no-pager -n 30 -u {0}",
                a.name
            ));
            return Err(format!(
                "{} does not answer on :{}\n{}\n{}",
                a.name,
                a.port,
                out.describe(),
                st.stdout
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// GET /probe on the app's port with `query` (pairs of op and path).
fn probe(a: &App, ops: &[(&str, String)]) -> Value {
    let q: Vec<String> = ops.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
    let url = format!("http://127.0.0.1:{}/probe?{}", a.port, q.join("&"));
    let text = sh_ok(&format!("curl -sS -f -m 20 {}", quote(&url)));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: bad probe JSON ({e}):\n{text}", a.name))
}

/// The probe run once as another user (setpriv, outside any unit).
fn probe_as(user: &str, ops: &[(&str, String)]) -> Value {
    let q: Vec<String> = ops.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
    let text = sh_ok(&format!(
        "setpriv --reuid {user} --regid {user} --init-groups /usr/local/bin/rip-e2e-testapp -probe-cli {}",
        quote(&q.join("&"))
    ));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("probe as {user}: bad JSON ({e}):\n{text}"))
}

/// Result of the check `op` on `path` in a probe report.
fn check(report: &Value, op: &str, path: &str) -> String {
    report["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["op"] == op && c["path"] == path))
        .and_then(|c| c["result"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no check {op} {path} in report:\n{report:#}"))
}

fn check_op(report: &Value, op: &str) -> String {
    report["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["op"] == op))
        .and_then(|c| c["result"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no check {op} in report:\n{report:#}"))
}

/// A refusal is an errno name (EPERM, EACCES, ...), not "ok" and not some
/// other failure of the probe itself.
fn is_errno(r: &str) -> bool {
    r.len() > 1 && r.starts_with('E') && r[1..].bytes().all(|b| b.is_ascii_uppercase())
}

/// Collects every failed expectation of a claim, so one run shows them all.
#[derive(Default)]
struct Verdict {
    failures: Vec<String>,
}

impl Verdict {
    fn expect(&mut self, claim: &str, ok: bool, what: String) {
        measured(
            claim,
            &format!("{} {what}", if ok { "ok  " } else { "FAIL" }),
        );
        if !ok {
            self.failures.push(what);
        }
    }

    fn finish(self, claim: &str) {
        assert!(
            self.failures.is_empty(),
            "{claim}: {} expectation(s) failed:\n  {}",
            self.failures.len(),
            self.failures.join("\n  ")
        );
    }
}

/// Fields of /proc/PID/status inside the container.
fn proc_status(pid: &str) -> BTreeMap<String, String> {
    sh_ok(&format!("cat /proc/{pid}/status"))
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

fn main_pid(app: &str) -> String {
    let pid = sh_ok(&format!("systemctl show -P MainPID {app}"))
        .trim()
        .to_owned();
    assert!(
        pid != "0" && !pid.is_empty(),
        "{app} has no MainPID (not running?)"
    );
    pid
}

// ---- the claims ----------------------------------------------------------------

/// Claim 1: Each app runs as its own user and group (MainPID's uid and gid).
#[test]
fn e2e_claim01_each_app_runs_as_its_own_user_and_group() {
    let (_g, f) = deployed();
    let mut v = Verdict::default();
    let mut uids = BTreeSet::new();
    for a in &f.apps {
        let pid = main_pid(&a.name);
        let st = proc_status(&pid);
        let uid = sh_ok(&format!("id -u {}", a.name)).trim().to_owned();
        let gid = sh_ok(&format!("getent group {} | cut -d: -f3", a.name))
            .trim()
            .to_owned();
        let want_uid = format!("{uid}\t{uid}\t{uid}\t{uid}");
        let want_gid = format!("{gid}\t{gid}\t{gid}\t{gid}");
        v.expect(
            "claim1",
            st["Uid"] == want_uid && uid != "0",
            format!(
                "{} MainPID {pid}: Uid {:?} (user {} = {uid})",
                a.name, st["Uid"], a.name
            ),
        );
        v.expect(
            "claim1",
            st["Gid"] == want_gid && gid != "0",
            format!(
                "{} MainPID {pid}: Gid {:?} (group {} = {gid})",
                a.name, st["Gid"], a.name
            ),
        );
        measured(
            "claim1",
            &format!(
                "info {} MainPID {pid} supplementary Groups: {:?}",
                a.name, st["Groups"]
            ),
        );
        v.expect(
            "claim1",
            uids.insert(uid.clone()),
            format!("{} uid {uid} not shared", a.name),
        );
        let r = probe(a, &[]);
        v.expect(
            "claim1",
            r["uid"].as_u64().map(|x| x.to_string()) == Some(uid.clone())
                && r["gid"].as_u64().map(|x| x.to_string()) == Some(gid.clone()),
            format!(
                "{} sees itself as uid {} gid {} groups {}",
                a.name, r["uid"], r["gid"], r["groups"]
            ),
        );
    }
    v.finish("claim 1");
}

/// Claim 2: The app on :80 binds it with only CAP_NET_BIND_SERVICE:
/// CapEff = CapBnd = 0x400, NoNewPrivs 1, seccomp on.
#[test]
fn e2e_claim02_port_80_with_only_cap_net_bind_service() {
    let (_g, f) = deployed();
    let mut v = Verdict::default();
    let a = f
        .apps
        .iter()
        .find(|a| a.port == 80)
        .expect("the demo fleet has an app on :80");
    let pid = main_pid(&a.name);
    let st = proc_status(&pid);
    let cap = "0000000000000400";
    for k in ["CapEff", "CapBnd", "CapPrm", "CapAmb"] {
        v.expect(
            "claim2",
            st[k] == cap,
            format!("{} {k} = {} (want {cap})", a.name, st[k]),
        );
    }
    v.expect(
        "claim2",
        st["NoNewPrivs"] == "1",
        format!("{} NoNewPrivs = {}", a.name, st["NoNewPrivs"]),
    );
    v.expect(
        "claim2",
        st["Seccomp"] == "2",
        format!(
            "{} Seccomp = {} (2 = filter), filters {:?}",
            a.name,
            st["Seccomp"],
            st.get("Seccomp_filters")
        ),
    );
    let r = probe(a, &[]);
    v.expect(
        "claim2",
        r["status"]["CapEff"] == cap && r["status"]["CapBnd"] == cap,
        format!(
            "{} own view: CapEff {} CapBnd {}",
            a.name, r["status"]["CapEff"], r["status"]["CapBnd"]
        ),
    );
    let listeners = r["listeners"].to_string();
    v.expect(
        "claim2",
        listeners.contains(":80\"") && r["socket_activated"] == false,
        format!("{} bound the port itself: listeners {listeners}", a.name),
    );
    let body = sh("curl -sS -m 5 http://127.0.0.1:80/");
    v.expect(
        "claim2",
        body.stdout.trim() == a.name,
        format!("GET :80 -> {:?}", body.stdout.trim()),
    );
    for o in f.apps.iter().filter(|o| o.port >= 1024) {
        let st = proc_status(&main_pid(&o.name));
        measured(
            "claim2",
            &format!(
                "info {} (port {}) CapEff {} CapBnd {}",
                o.name, o.port, st["CapEff"], st["CapBnd"]
            ),
        );
    }
    v.finish("claim 2");
}

/// Claim 3: Each app writes its data dir and nothing else: its home, bin, /etc,
/// /usr, /var are read-only to it.
#[test]
fn e2e_claim03_writes_only_its_data_dir() {
    let (_g, f) = deployed();
    let mut v = Verdict::default();
    for a in &f.apps {
        let h = &a.home;
        let ok_paths = [format!("{h}/data/e2e-write-probe")];
        let ro_paths = [
            format!("{h}/e2e-write-probe"),
            format!("{h}/bin/e2e-write-probe"),
            "/etc/e2e-write-probe".to_owned(),
            "/usr/e2e-write-probe".to_owned(),
            "/usr/local/bin/e2e-write-probe".to_owned(),
            "/var/e2e-write-probe".to_owned(),
            "/var/lib/e2e-write-probe".to_owned(),
        ];
        let mut ops: Vec<(&str, String)> = Vec::new();
        ops.extend(ok_paths.iter().map(|p| ("write", p.clone())));
        ops.extend(ro_paths.iter().map(|p| ("write", p.clone())));
        ops.push(("openw", format!("{h}/bin/{}", a.name)));
        let r = probe(a, &ops);
        for p in &ok_paths {
            let res = check(&r, "write", p);
            v.expect(
                "claim3",
                res == "ok",
                format!("{} write {p}: {res}", a.name),
            );
        }
        for p in &ro_paths {
            let res = check(&r, "write", p);
            v.expect(
                "claim3",
                is_errno(&res),
                format!("{} write {p}: {res}", a.name),
            );
        }
        // Opening the running binary for writing fails with ETXTBSY before
        // any read-only check, so the binary's mount in the unit's namespace
        // is the evidence.
        let bin = format!("{h}/bin/{}", a.name);
        let res = check(&r, "openw", &bin);
        v.expect(
            "claim3",
            is_errno(&res),
            format!("{} open its binary {bin} for writing: {res}", a.name),
        );
        let pid = main_pid(&a.name);
        for (p, must_ro) in [(bin.as_str(), true), (h.as_str(), false)] {
            let m = sh_ok(&format!(
                "nsenter -t {pid} -m findmnt -no TARGET,FSTYPE,OPTIONS -T {p}"
            ));
            let m = m.split_whitespace().collect::<Vec<_>>().join(" ");
            if must_ro {
                let ro = m
                    .split(' ')
                    .nth(2)
                    .is_some_and(|o| o.split(',').any(|x| x == "ro"));
                v.expect("claim3", ro, format!("{} sees {p} on mount: {m}", a.name));
            } else {
                measured("claim3", &format!("info {} sees {p} on mount: {m}", a.name));
            }
        }
    }
    v.finish("claim 3");
}

/// Claim 4: An app cannot read another app's home, and better: cannot even see it.
#[test]
fn e2e_claim04_cannot_read_or_see_other_homes() {
    let (_g, f) = deployed();
    let mut v = Verdict::default();
    for a in &f.apps {
        let mut ops: Vec<(&str, String)> = Vec::new();
        for o in f.apps.iter().filter(|o| o.name != a.name) {
            ops.push(("read", o.db()));
            ops.push(("list", o.home.clone()));
            ops.push(("stat", o.home.clone()));
        }
        let r = probe(a, &ops);
        for o in f.apps.iter().filter(|o| o.name != a.name) {
            let read = check(&r, "read", &o.db());
            v.expect(
                "claim4",
                is_errno(&read),
                format!("{} read {}: {read}", a.name, o.db()),
            );
            let list = check(&r, "list", &o.home);
            v.expect(
                "claim4",
                is_errno(&list),
                format!("{} list {}: {list}", a.name, o.home),
            );
            let stat = check(&r, "stat", &o.home);
            v.expect(
                "claim4",
                stat == "ENOENT",
                format!("{} stat {} (invisible = ENOENT): {stat}", a.name, o.home),
            );
        }
        let home = r["checks"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["op"] == "list_home"))
            .cloned()
            .unwrap_or_default();
        let others: Vec<&str> = f
            .apps
            .iter()
            .filter(|o| o.name != a.name)
            .map(|o| o.name.as_str())
            .collect();
        let listing = home["detail"].as_str().unwrap_or("").to_owned();
        let sees: Vec<&str> = listing.split(' ').filter(|n| others.contains(n)).collect();
        v.expect(
            "claim4",
            sees.is_empty(),
            format!("{} lists /home: {} {listing:?}", a.name, home["result"]),
        );
    }
    v.finish("claim 4");
}

/// Claim 5: An app cannot escalate: setuid(0), setting a setuid bit, new user or
/// mount namespaces are all refused.
#[test]
fn e2e_claim05_cannot_escalate() {
    let (_g, f) = deployed();
    let mut v = Verdict::default();
    for a in &f.apps {
        let r = probe(a, &[]);
        for op in [
            "setuid0",
            "setgid0",
            "chmod_suid",
            "unshare_user",
            "unshare_mount",
        ] {
            let res = check_op(&r, op);
            v.expect("claim5", is_errno(&res), format!("{} {op}: {res}", a.name));
        }
    }
    v.finish("claim 5");
}

/// Claim 6: An app's /tmp is private.
#[test]
fn e2e_claim06_private_tmp() {
    let (_g, f) = deployed();
    let mut v = Verdict::default();
    let host_marker = "/tmp/e2e-host-marker";
    sh_ok(&format!("echo host > {host_marker}"));
    // Round 1: each app leaves a marker in its /tmp.
    for a in &f.apps {
        let mine = format!("/tmp/e2e-marker-{}", a.name);
        let r = probe(a, &[("mkfile", mine.clone())]);
        let res = check(&r, "mkfile", &mine);
        v.expect(
            "claim6",
            res == "ok",
            format!("{} writes {mine}: {res}", a.name),
        );
        let outside = sh(&format!("test -e {mine}"));
        v.expect(
            "claim6",
            !outside.ok(),
            format!(
                "{}'s {mine} absent from the container's /tmp: {}",
                a.name,
                !outside.ok()
            ),
        );
    }
    // Round 2: nobody sees the container's marker or another app's.
    for a in &f.apps {
        let mut ops = vec![("stat", host_marker.to_owned())];
        for o in f.apps.iter().filter(|o| o.name != a.name) {
            ops.push(("stat", format!("/tmp/e2e-marker-{}", o.name)));
        }
        let r = probe(a, &ops);
        for (_, p) in &ops {
            let res = check(&r, "stat", p);
            v.expect(
                "claim6",
                res == "ENOENT",
                format!("{} stat {p}: {res}", a.name),
            );
        }
    }
    sh(&format!("rm -f {host_marker}"));
    v.finish("claim 6");
}

/// Claim 7: The backup user reads the backup snapshots of every app, and cannot
/// read any live database, key or binary.
#[test]
fn e2e_claim07_backup_user_reads_snapshots_only() {
    let (_g, f) = deployed();
    let mut v = Verdict::default();
    // A fresh snapshot from each app with backups, through the running service.
    for a in f.apps.iter().filter(|a| a.backups) {
        let p = sh(&format!(
            "curl -sS -f -m 10 -X POST http://127.0.0.1:{}/backup",
            a.port
        ));
        v.expect(
            "claim7",
            p.ok(),
            format!("{} POST /backup -> {}", a.name, p.stdout.trim()),
        );
    }
    let mut ops: Vec<(&str, String)> = Vec::new();
    let mut snaps = Vec::new();
    for a in &f.apps {
        ops.push(("read", a.db()));
        ops.push(("read", format!("{}/bin/{}", a.home, a.name)));
        if a.backups {
            let dir = format!("{}/data/backups", a.home);
            let list = sh_ok(&format!("ls -1 {dir}"));
            let files: Vec<String> = list
                .lines()
                .filter(|l| l.ends_with(".snap"))
                .map(|l| format!("{dir}/{l}"))
                .collect();
            v.expect(
                "claim7",
                !files.is_empty(),
                format!("{} has {} snapshot(s) in {dir}", a.name, files.len()),
            );
            ops.push(("list", dir));
            for s in files {
                ops.push(("read", s.clone()));
                snaps.push(s);
            }
        }
    }
    let keys = sh_ok("find /home -path /home/backup -prune -o -name '*.key' -print");
    for k in keys.lines().filter(|l| !l.is_empty()) {
        ops.push(("read", k.to_owned()));
    }
    let r = probe_as("backup", &ops);
    measured(
        "claim7",
        &format!(
            "backup user uid {} gid {} groups {}",
            r["uid"], r["gid"], r["groups"]
        ),
    );
    for (op, p) in &ops {
        let res = check(&r, op, p);
        let want_ok = snaps.contains(p) || *op == "list";
        if want_ok {
            v.expect("claim7", res == "ok", format!("backup {op} {p}: {res}"));
        } else {
            v.expect("claim7", is_errno(&res), format!("backup {op} {p}: {res}"));
        }
    }
    v.finish("claim 7");
}

const SSH: &str = "ssh -i /root/e2e/backup_key -o BatchMode=yes -o IdentitiesOnly=yes \
                   -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR";

/// Claim 8: The backup user's SSH key allows a read-only rsync pull of backups and
/// nothing else.
#[test]
fn e2e_claim08_backup_key_pulls_read_only() {
    let (_g, f) = deployed();
    let mut v = Verdict::default();
    let keys = sh("cat /home/backup/.ssh/authorized_keys 2>&1 || getent passwd backup");
    measured(
        "claim8",
        &format!("authorized_keys: {}", keys.stdout.trim()),
    );
    sh_ok("systemctl start ssh && for i in $(seq 50); do ss -ltn | grep -q ':22 ' && break; sleep 0.1; done");

    for a in f.apps.iter().filter(|a| a.backups) {
        let dst = format!("/root/e2e/pull/{}", a.name);
        let src = format!("backup@127.0.0.1:{}/data/backups/", a.name);
        let pull = sh(&format!("rm -rf {dst}; mkdir -p {dst}; rsync -a -e {} {src} {dst}/ 2>&1; echo rc=$?; ls -1 {dst} | grep -c '.snap$'", quote(SSH)));
        let n: usize = pull
            .stdout
            .lines()
            .last()
            .unwrap_or("0")
            .trim()
            .parse()
            .unwrap_or(0);
        v.expect(
            "claim8",
            pull.stdout.contains("rc=0\n") && n > 0,
            format!(
                "rsync pull {src}: {} snapshot(s); {}",
                n,
                pull.stdout.replace('\n', " | ")
            ),
        );
    }

    // A shell command instead of rsync.
    let shell = sh(&format!(
        "{SSH} backup@127.0.0.1 'echo PWNED-$((6*7)); id' 2>&1; echo rc=$?"
    ));
    v.expect(
        "claim8",
        !shell.stdout.contains("PWNED-42")
            && !shell.stdout.contains("uid=")
            && !shell.stdout.contains("rc=0\n"),
        format!("ssh command: {}", shell.stdout.trim().replace('\n', " | ")),
    );
    let tty = sh(&format!(
        "timeout 10 {SSH} -tt backup@127.0.0.1 </dev/null >/root/e2e/tty.out 2>&1; echo rc=$?; head -c 300 /root/e2e/tty.out"
    ));
    v.expect(
        "claim8",
        !tty.stdout.starts_with("rc=0\n")
            && !tty.stdout.contains("$ ")
            && !tty.stdout.contains("# "),
        format!(
            "ssh login without command: {}",
            tty.stdout.trim().replace('\n', " | ")
        ),
    );

    // A tunnel to an app's port through the backup key.
    let target = f.apps.iter().find(|a| a.port != 80).unwrap_or(&f.apps[0]);
    // The SFTP subsystem (what scp uses too).
    let sftp = sh(&format!(
        "echo 'get app1/data/app.db /root/e2e/sftp.db' | timeout 20 sftp -b - {} backup@127.0.0.1 2>&1; \
         echo rc=$?; test -e /root/e2e/sftp.db && echo GOT-FILE",
        SSH.trim_start_matches("ssh ")
    ));
    v.expect(
        "claim8",
        !sftp.stdout.contains("\nrc=0\n") && !sftp.stdout.contains("GOT-FILE"),
        format!("sftp: {}", sftp.stdout.trim().replace('\n', " | ")),
    );

    // The forward's local listener appears only once the key was accepted;
    // then a connection through it must not reach the app.
    let tunnel = sh(&format!(
        "timeout 20 {SSH} -N -L 127.0.0.1:19999:127.0.0.1:{} backup@127.0.0.1 >/root/e2e/tunnel.out 2>&1 & pid=$!; \
         for i in $(seq 100); do ss -ltn | grep -q '127.0.0.1:19999 ' && break; sleep 0.1; done; \
         ss -ltn | grep -q '127.0.0.1:19999 ' && echo listening=yes || echo listening=no; \
         curl -sS -m 3 http://127.0.0.1:19999/ 2>&1; echo rc=$?; kill $pid; wait; cat /root/e2e/tunnel.out",
        target.port
    ));
    v.expect(
        "claim8",
        tunnel.stdout.starts_with("listening=yes")
            && !tunnel.stdout.contains(&format!("{}\nrc=0", target.name))
            && !tunnel.stdout.contains("\nrc=0\n"),
        format!(
            "port forward to {}'s :{}: {}",
            target.name,
            target.port,
            tunnel.stdout.trim().replace('\n', " | ")
        ),
    );

    // Push (write) into the backups dir of the first app with backups.
    if let Some(a) = f.apps.iter().find(|a| a.backups) {
        let dir = format!("{}/data/backups", a.home);
        let push = sh(&format!(
            "echo evil > /root/e2e/pushed.snap; rsync -a -e {} /root/e2e/pushed.snap backup@127.0.0.1:{}/data/backups/ 2>&1; echo rc=$?",
            quote(SSH),
            a.name
        ));
        let landed = sh(&format!("test -e {dir}/pushed.snap")).ok();
        v.expect(
            "claim8",
            !push.stdout.contains("rc=0\n") && !landed,
            format!(
                "rsync push into {dir}: landed={landed}; {}",
                push.stdout.trim().replace('\n', " | ")
            ),
        );
    }

    // Live database, key, and files outside the backup root.
    let mut targets: Vec<String> = f
        .apps
        .iter()
        .map(|a| format!("{}/data/app.db", a.name))
        .collect();
    targets.push("app1/age.key".into());
    targets.push("../etc/shadow".into());
    targets.push("/etc/shadow".into());
    for t in targets {
        let pull = sh(&format!(
            "rm -rf /root/e2e/stolen; mkdir -p /root/e2e/stolen; rsync -a -e {} backup@127.0.0.1:{} /root/e2e/stolen/ 2>&1; echo rc=$?; find /root/e2e/stolen -type f | wc -l",
            quote(SSH),
            quote(&t)
        ));
        let got: usize = pull
            .stdout
            .lines()
            .last()
            .unwrap_or("0")
            .trim()
            .parse()
            .unwrap_or(99);
        v.expect(
            "claim8",
            got == 0 && !pull.stdout.contains("rc=0\n"),
            format!(
                "rsync pull {t}: {got} file(s); {}",
                pull.stdout.trim().replace('\n', " | ")
            ),
        );
    }
    v.finish("claim 8");
}

/// Claim 9: One Prometheus inside the container scrapes every app's metrics
/// endpoint: all targets up (config from rip-scrape).
#[test]
fn e2e_claim09_prometheus_scrapes_every_app() {
    let (_g, f) = deployed();
    let mut v = Verdict::default();
    let scrape = sh("cd /root/e2e && rip-scrape --root / --replace --scrape-interval 2s < 10-user.ndjson > 40-scrape.ndjson 2> 40-scrape.err; echo rc=$?; cat 40-scrape.err");
    assert!(
        scrape.stdout.starts_with("rc=0"),
        "rip-scrape failed: {}",
        scrape.stdout
    );
    let check_cfg = sh("promtool check config /etc/prometheus/prometheus.yml 2>&1");
    measured(
        "claim9",
        &format!("promtool: {}", check_cfg.stdout.trim().replace('\n', " | ")),
    );
    sh_ok("systemctl restart prometheus");

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let mut health: BTreeMap<String, String> = BTreeMap::new();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        let out = sh("curl -sS -m 5 http://127.0.0.1:9090/api/v1/targets");
        if !out.ok() {
            last = out.describe();
            continue;
        }
        last = out.stdout.clone();
        let Ok(j) = serde_json::from_str::<Value>(&out.stdout) else {
            continue;
        };
        health.clear();
        for t in j["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let key = format!(
                "{} app={} {}",
                t["scrapePool"].as_str().unwrap_or("?"),
                t["labels"]["app"].as_str().unwrap_or("-"),
                t["scrapeUrl"].as_str().unwrap_or("?")
            );
            let h = format!(
                "{} {}",
                t["health"].as_str().unwrap_or("?"),
                t["lastError"].as_str().unwrap_or("")
            );
            health.insert(key, h.trim().to_owned());
        }
        if !health.is_empty() && health.values().all(|h| h == "up") && health.len() >= f.apps.len()
        {
            break;
        }
    }
    for (t, h) in &health {
        v.expect("claim9", h == "up", format!("target {t}: {h}"));
    }
    for a in &f.apps {
        let found = health.keys().any(|k| {
            k.contains(&format!(" app={} ", a.name)) && k.contains(&format!(":{}/", a.metrics))
        });
        v.expect(
            "claim9",
            found,
            format!("a target for {} (app label, port {})", a.name, a.metrics),
        );
    }
    if health.is_empty() {
        v.expect(
            "claim9",
            false,
            format!("no active targets; last answer: {last}"),
        );
    }
    v.finish("claim 9");
}

/// Claim 10: A compromised app (a shell as its user) plants symlinks and hard
/// links in its own tree; rip-perms run afterwards as root changes nothing
/// outside the tree.
#[test]
fn e2e_claim10_rip_perms_ignores_planted_links() {
    let (_g, f) = deployed();
    let mut v = Verdict::default();
    let a = f
        .apps
        .iter()
        .find(|a| a.backups)
        .expect("an app with backups");
    let other = f
        .apps
        .iter()
        .find(|o| o.name != a.name)
        .expect("a second app");
    let (h, n, o) = (&a.home, &a.name, &other.home);

    // What must not change: owner, group, mode and type of every file outside
    // the compromised app's home (minus live state), and the content of the
    // link targets.
    let snapshot = format!(
        "find / -xdev \\( -path {h} -o -path /proc -o -path /sys -o -path /dev -o -path /run \
         -o -path /tmp -o -path /var/log -o -path /var/lib/prometheus -o -path /var/lib/systemd \
         -o -path /var/cache -o -path /root/e2e \\) -prune -o -printf '%y %U:%G %m %p\\n' | sort; \
         sha256sum /etc/shadow /etc/passwd /etc/group {o}/data/app.db {o}/bin/{on}",
        on = other.name
    );
    let before = sh_ok(&snapshot);

    // The attacker: a shell as the app's user, outside its unit.
    let plant = format!(
        "cd {h} && \
         for l in 'data/evil-shadow.db:/etc/shadow' 'data/evil-passwd.key:/etc/passwd' \
                  'data/backups/evil.snap:{o}/data/app.db' 'bin/evil-bin:{o}/bin/{on}' \
                  'data/evil-etc:/etc' 'data/evil-home:{o}'; do \
           dst=${{l%%:*}}; tgt=${{l#*:}}; \
           if ln -s \"$tgt\" \"$dst\" 2>/dev/null; then echo \"symlink $dst -> $tgt: ok\"; \
           else echo \"symlink $dst -> $tgt: refused\"; fi; done; \
         for l in 'data/hard-shadow.db:/etc/shadow' 'data/hard-passwd.key:/etc/passwd' \
                  'data/backups/hard-other.snap:{o}/data/app.db' 'bin/hard-other:{o}/bin/{on}'; do \
           dst=${{l%%:*}}; tgt=${{l#*:}}; \
           if ln \"$tgt\" \"$dst\" 2>/tmp/ln.err; then echo \"hardlink $dst -> $tgt: ok\"; \
           else echo \"hardlink $dst -> $tgt: refused ($(cat /tmp/ln.err))\"; fi; done",
        on = other.name
    );
    let planted = sh_ok(&format!(
        "setpriv --reuid {n} --regid {n} --init-groups /bin/sh -c {}",
        quote(&plant)
    ));
    for l in planted.lines() {
        measured("claim10", &format!("as {n}: {l}"));
    }
    // Hard links the kernel refused to the app user (fs.protected_hardlinks=1)
    // are planted by root, so rip-perms also meets them as on a kernel
    // without that protection.
    let root_plant = sh_ok(&format!(
        "cd {h} && for l in 'data/hard-shadow.db:/etc/shadow' 'data/hard-passwd.key:/etc/passwd' \
           'data/backups/hard-other.snap:{o}/data/app.db' 'bin/hard-other:{o}/bin/{on}'; do \
           dst=${{l%%:*}}; tgt=${{l#*:}}; \
           [ -e \"$dst\" ] || {{ ln \"$tgt\" \"$dst\" && echo \"hardlink $dst -> $tgt planted by root\"; }}; done; \
         cat /proc/sys/fs/protected_hardlinks",
        on = other.name
    ));
    for l in root_plant.lines() {
        measured("claim10", &format!("root: {l}"));
    }

    let perms = sh("cd /root/e2e && rip-perms < 10-user.ndjson > 50-perms-again.ndjson 2> 50-perms-again.err; echo rc=$?; cat 50-perms-again.err; cat 50-perms-again.ndjson");
    measured(
        "claim10",
        &format!("rip-perms rerun: {}", perms.stdout.trim()),
    );
    let after = sh_ok(&snapshot);

    let b: BTreeSet<&str> = before.lines().collect();
    let af: BTreeSet<&str> = after.lines().collect();
    let gone: Vec<&&str> = b.difference(&af).collect();
    let new: Vec<&&str> = af.difference(&b).collect();
    v.expect(
        "claim10",
        gone.is_empty() && new.is_empty(),
        format!(
            "outside {h}: {} entries compared, before-only {gone:?}, after-only {new:?}",
            b.len()
        ),
    );
    v.expect(
        "claim10",
        perms.stdout.starts_with("rc=0"),
        format!(
            "rip-perms rerun exit: {}",
            perms.stdout.lines().next().unwrap_or("")
        ),
    );

    // Remove what was planted (as root, without following anything).
    sh_ok(&format!(
        "cd {h} && rm -f data/evil-shadow.db data/evil-passwd.key data/backups/evil.snap bin/evil-bin \
         data/evil-etc data/evil-home data/hard-shadow.db data/hard-passwd.key \
         data/backups/hard-other.snap bin/hard-other"
    ));
    v.finish("claim 10");
}

/// The suite's own plumbing: the rootfs is where `sandbox env` says, and
/// its systemd is 252.
#[test]
fn e2e_harness_boots_systemd_252() {
    let (_g, f) = fleet();
    let version = sh_ok("systemctl --version | head -n1");
    measured(
        "harness",
        &format!("{} ; rootfs {:?}", version.trim(), f.rootfs),
    );
    assert!(version.starts_with("systemd 252"), "{version}");
    assert!(f.rootfs.join("etc/rip-e2e-release").is_file());
    let pid1 = sh_ok("cat /proc/1/comm");
    assert_eq!(pid1.trim(), "systemd");
    for a in &f.apps {
        let score = sh(&format!(
            "systemd-analyze security --no-pager {} | tail -n1",
            a.name
        ));
        measured(
            "harness",
            &format!("info {}: {}", a.name, score.stdout.trim()),
        );
    }
}

/// Beyond the ten claims: the strict profile under systemd. Two more apps
/// (Go and Rust) get their ports from `NAME.socket` (sd_listen_fds), run
/// with no capability and a private network, and tell the app port from the
/// metrics port by getsockname().
#[test]
fn e2e_strict_profile_socket_activation() {
    let (_g, f) = deployed();
    let mut v = Verdict::default();
    let extra = [
        ("app4", "go", 8090u16, 9104u16),
        ("app5", "rust", 8091, 9105),
    ];
    let bins = bin_dir();
    let mut specs: Vec<Value> =
        serde_json::from_str(&fs::read_to_string(workspace().join("examples/apps.json")).unwrap())
            .unwrap();
    for (name, rt, port, mport) in extra {
        specs.push(serde_json::json!({
            "name": name, "runtime": rt, "profile": "strict",
            "exec": [format!("/home/{name}/bin/{name}"), "-listen", format!(":{port}"),
                     "-metrics", format!("127.0.0.1:{mport}"),
                     "-dbpath", format!("/home/{name}/data/app.db")],
            "listen": [{"port": port}], "metrics": {"port": mport}
        }));
        let src = if rt == "rust" {
            bins.join("rip-e2e-testapp")
        } else {
            bins.join("e2e/testapp-go")
        };
        copy_in(&f.rootfs, &src, &format!("/home/{name}/bin/{name}"), 0o755).unwrap();
    }
    fs::write(
        f.rootfs.join("root/e2e/apps-strict.json"),
        serde_json::to_string_pretty(&specs).unwrap(),
    )
    .unwrap();
    let pipeline = sh("cd /root/e2e && rip-user --backup-key backup_key.pub < apps-strict.json 2>60-strict.err \
                       | rip-perms 2>>60-strict.err | rip-unit > 60-strict.ndjson 2>>60-strict.err; \
                       echo rc=$?; cat 60-strict.err");
    v.expect(
        "strict",
        pipeline.stdout.starts_with("rc=0"),
        format!(
            "pipeline with two strict apps: {}",
            pipeline.stdout.trim().replace('\n', " | ")
        ),
    );
    let start = sh("systemctl daemon-reload && systemctl start app4.socket app5.socket");
    v.expect(
        "strict",
        start.ok(),
        format!("start sockets: {}", start.describe()),
    );
    for (name, _, port, mport) in extra {
        let unit = sh(&format!("cat /etc/systemd/system/{name}.socket"));
        measured(
            "strict",
            &format!("{name}.socket: {}", unit.stdout.trim().replace('\n', " | ")),
        );
        let body = sh(&format!("curl -sS -m 10 http://127.0.0.1:{port}/"));
        v.expect(
            "strict",
            body.stdout.trim() == name,
            format!(
                "GET :{port} -> {:?} {}",
                body.stdout.trim(),
                body.stderr.trim()
            ),
        );
        let app = App {
            name: name.into(),
            port,
            metrics: mport,
            backups: false,
            runtime: String::new(),
            home: format!("/home/{name}"),
            agekey: None,
        };
        let r = probe(&app, &[]);
        v.expect(
            "strict",
            r["socket_activated"] == true,
            format!(
                "{name} socket_activated {} listeners {}",
                r["socket_activated"], r["listeners"]
            ),
        );
        v.expect(
            "strict",
            r["status"]["CapEff"] == "0000000000000000"
                && r["status"]["CapBnd"] == "0000000000000000",
            format!(
                "{name} CapEff {} CapBnd {}",
                r["status"]["CapEff"], r["status"]["CapBnd"]
            ),
        );
        let m = sh(&format!("curl -sS -m 10 http://127.0.0.1:{mport}/metrics"));
        v.expect(
            "strict",
            m.stdout.contains(&format!("testapp_up{{app=\"{name}\"")),
            format!(
                "metrics via the socket on :{mport}: {}",
                m.stdout.lines().nth(2).unwrap_or(m.stderr.trim())
            ),
        );
        let pid = main_pid(name);
        let ns = sh_ok(&format!("readlink /proc/{pid}/ns/net /proc/1/ns/net"));
        let mut l = ns.lines();
        let (a, b) = (l.next().unwrap_or(""), l.next().unwrap_or(""));
        v.expect(
            "strict",
            a != b && !a.is_empty(),
            format!("{name} network namespace {a} (PID 1: {b})"),
        );
    }
    // Leave the fleet as it was: stop and drop the extra units.
    sh(
        "systemctl stop app4.socket app5.socket app4.service app5.service; \
        rm -f /etc/systemd/system/app4.* /etc/systemd/system/app5.*; systemctl daemon-reload",
    );
    v.finish("strict profile");
}

/// The checks discriminate: the same probe run as an app's user but outside
/// its unit (no hardening) must see what the claims say the unit hides, so
/// the claims above cannot pass merely because the probe is broken.
#[test]
fn e2e_control_same_probe_without_the_unit_sees_more() {
    let (_g, f) = deployed();
    let mut v = Verdict::default();
    let a = &f.apps[0];
    let o = f
        .apps
        .iter()
        .find(|o| o.name != a.name)
        .expect("a second app");
    let marker = "/tmp/e2e-control-marker";
    sh_ok(&format!("echo x > {marker}"));
    let r = probe_as(
        &a.name,
        &[
            ("stat", o.home.clone()),
            ("stat", marker.to_owned()),
            ("write", format!("/var/tmp/e2e-control-{}", a.name)),
            ("suiddir", format!("{}/data", a.home)),
        ],
    );
    sh(&format!("rm -f {marker}"));
    let stat_other = check(&r, "stat", &o.home);
    v.expect(
        "control",
        stat_other == "ok",
        format!(
            "{} outside its unit: stat {} = {stat_other} (the unit: ENOENT)",
            a.name, o.home
        ),
    );
    let m = check(&r, "stat", marker);
    v.expect(
        "control",
        m == "ok",
        format!("{} outside its unit: sees {marker}: {m}", a.name),
    );
    let nnp = r["status"]["NoNewPrivs"].as_str().unwrap_or("?").to_owned();
    v.expect(
        "control",
        nnp == "0",
        format!("{} outside its unit: NoNewPrivs {nnp}", a.name),
    );
    let suid = check_op(&r, "chmod_suid");
    v.expect(
        "control",
        suid == "ok",
        format!("{} outside its unit: chmod u+s = {suid}", a.name),
    );
    let userns = check_op(&r, "unshare_user");
    measured("control", &format!("info {} outside its unit: new user ns = {userns} (nspawn's own seccomp filter may refuse it)", a.name));
    v.finish("control");
}
