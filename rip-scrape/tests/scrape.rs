//! Integration tests of rip-scrape: the real binary on temp roots, its
//! files checked by Debian's promtool, and a real Prometheus on loopback
//! scraping small metrics servers while the fleet changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_rip-scrape");
const PROMTOOL: &str = "/usr/bin/promtool";
const PROMETHEUS: &str = "/usr/bin/prometheus";

// ---------------------------------------------------------------- harness

/// A fresh directory named after the test, kept after the run.
fn test_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("rip-scrape")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

struct Run {
    cmd: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{self}")))
            .collect()
    }

    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{self}");
        self
    }

    fn result(&self, app: &str) -> Value {
        self.json()
            .into_iter()
            .find(|v| v["name"] == app)
            .unwrap_or_else(|| panic!("no record for {app}\n{self}"))["rip_scrape"]
            .clone()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "command: {}\nexit: {}\nstdout:\n{}\nstderr:\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

fn run_env(root: &Path, args: &[&str], input: &str, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.arg("--root").arg(root).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The tool may exit before reading stdin (a usage error): ignore EPIPE.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let out = child.wait_with_output().unwrap();
    Run {
        cmd: format!("{BIN} --root {root:?} {}", args.join(" ")),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn run(root: &Path, args: &[&str], input: &str) -> Run {
    run_env(root, args, input, &[])
}

fn demo_fleet() -> String {
    fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/apps.json"
    ))
    .unwrap()
}

fn prom_dir(root: &Path) -> PathBuf {
    root.join("etc/prometheus")
}

fn need(tool: &str) {
    assert!(
        Path::new(tool).exists(),
        "{tool} is missing: install Debian's prometheus package (apt-get install prometheus)"
    );
}

/// `promtool check config` on a written file: (success, output).
fn promtool_check(config: &Path) -> (bool, String) {
    need(PROMTOOL);
    let out = Command::new(PROMTOOL)
        .args(["check", "config"])
        .arg(config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn assert_promtool_ok(root: &Path) {
    let (ok, text) = promtool_check(&prom_dir(root).join("prometheus.yml"));
    assert!(ok, "promtool check config failed:\n{text}");
}

/// The targets Prometheus' own service discovery finds for `job`, with
/// their labels after relabelling, keyed by the `app` label.
fn discovered(root: &Path, job: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    need(PROMTOOL);
    let out = Command::new(PROMTOOL)
        .args([
            "check",
            "service-discovery",
            "--timeout=2s",
            "prometheus.yml",
            job,
        ])
        .current_dir(prom_dir(root))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check service-discovery: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.iter()
        .map(|t| {
            let labels: BTreeMap<String, String> =
                serde_json::from_value(t["labels"].clone()).unwrap();
            (labels["app"].clone(), labels)
        })
        .collect()
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A small xorshift generator; the seed is printed on failure and can be
/// set with RIP_SCRAPE_SEED to replay a run.
struct Rng(u64);

impl Rng {
    fn new() -> (Self, u64) {
        let seed = std::env::var("RIP_SCRAPE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        (Rng(seed), seed)
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

    /// A label value: printable ASCII (quotes, colons, '#', spaces),
    /// Latin-1, CJK, emoji and YAML-significant words, never a control
    /// character (rip-core rejects those) and never empty.
    fn label_value(&mut self) -> String {
        const WORDS: [&str; 12] = [
            "yes", "no", "on", "off", "~", "null", "0x1F", "1e3", "- ", ": ", " #", "'",
        ];
        let len = 1 + self.below(12);
        let mut s = String::new();
        for _ in 0..len {
            match self.below(6) {
                0 => s.push_str(WORDS[self.below(WORDS.len() as u64) as usize]),
                1 => s.push(char::from_u32(0xA0 + self.below(0x60) as u32).unwrap()),
                2 => s.push(char::from_u32(0x4E00 + self.below(0x5000) as u32).unwrap()),
                3 => s.push(char::from_u32(0x1F300 + self.below(0x300) as u32).unwrap()),
                _ => s.push(char::from(0x20 + self.below(0x5F) as u8)),
            }
        }
        s
    }
}

// ------------------------------------------------------------ file rules

#[test]
fn demo_fleet_gives_a_valid_config_and_a_second_run_changes_nothing() {
    let root = test_dir("demo");

    let first = run(&root, &[], &demo_fleet()).ok();

    assert_promtool_ok(&root);
    let r = first.result("app1");
    assert_eq!(r["changed"], true);
    assert_eq!(r["dry_run"], false);
    assert_eq!(r["job"], "rip");
    assert_eq!(r["target"], "127.0.0.1:9101");
    assert_eq!(
        r["labels"],
        json!({"app": "app1", "instance": "127.0.0.1:9101", "job": "rip"})
    );
    assert_eq!(
        r["files"],
        json!([
            {"path": "/etc/prometheus/rip.d/rip.json", "action": "created"},
            {"path": "/etc/prometheus/prometheus.yml", "action": "created"}
        ])
    );
    let found = discovered(&root, "rip");
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        vec!["app1", "app2", "app3"]
    );
    assert_eq!(found["app2"]["instance"], "127.0.0.1:9102");
    let files = files_under(&root);
    let mtimes: Vec<i64> = files
        .iter()
        .map(|f| fs::metadata(f).unwrap().mtime_nsec())
        .collect();

    let second = run(&root, &[], &demo_fleet()).ok();

    for app in ["app1", "app2", "app3"] {
        let r = second.result(app);
        assert_eq!(r["changed"], false, "{second}");
        assert_eq!(r["reload_required"], false);
    }
    assert_eq!(
        files_under(&root),
        files,
        "no file added (no temp file left)"
    );
    let again: Vec<i64> = files
        .iter()
        .map(|f| fs::metadata(f).unwrap().mtime_nsec())
        .collect();
    assert_eq!(mtimes, again, "nothing rewritten");
}

#[test]
fn files_are_0644_and_the_config_reads_rip_d_relatively() {
    let root = test_dir("modes");

    run(&root, &[], &demo_fleet()).ok();

    for f in ["prometheus.yml", "rip.d/rip.json"] {
        let mode = fs::metadata(prom_dir(&root).join(f)).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o644, "{f}");
    }
    let cfg: Value = serde_yaml_ng::from_str(
        &fs::read_to_string(prom_dir(&root).join("prometheus.yml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        cfg["scrape_configs"][0]["file_sd_configs"][0]["files"],
        json!(["rip.d/rip.json"])
    );
}

#[test]
fn per_app_jobs_and_an_app_removed_later() {
    let root = test_dir("per-app");
    let fleet = demo_fleet();

    let first = run(
        &root,
        &["--jobs", "per-app", "--job-prefix", "rip-"],
        &fleet,
    )
    .ok();

    assert_promtool_ok(&root);
    assert_eq!(first.result("app2")["job"], "rip-app2");
    assert_eq!(
        files_under(&prom_dir(&root).join("rip.d")).len(),
        3,
        "{first}"
    );
    assert_eq!(discovered(&root, "rip-app3")["app3"]["job"], "rip-app3");

    let mut apps: Vec<Value> = serde_json::from_str(&fleet).unwrap();
    apps.pop();
    let second = run(
        &root,
        &["--jobs", "per-app", "--job-prefix", "rip-"],
        &serde_json::to_string(&apps).unwrap(),
    )
    .ok();

    assert_promtool_ok(&root);
    assert!(!prom_dir(&root).join("rip.d/rip-app3.json").exists());
    let r = second.result("app1");
    assert_eq!(r["reload_required"], true);
    assert!(r["files"]
        .as_array()
        .unwrap()
        .contains(&json!({"path": "/etc/prometheus/rip.d/rip-app3.json", "action": "removed"})));
    assert!(second.stderr.contains("rip-app3.json removed"), "{second}");
    let cfg = fs::read_to_string(prom_dir(&root).join("prometheus.yml")).unwrap();
    assert!(!cfg.contains("rip-app3"), "{cfg}");
}

#[test]
fn an_empty_fleet_writes_an_empty_list() {
    let root = test_dir("empty");

    let r = run(&root, &["--allow-empty"], "").ok();

    assert_eq!(r.stdout, "");
    assert_eq!(
        fs::read_to_string(prom_dir(&root).join("rip.d/rip.json")).unwrap(),
        "[]\n"
    );
    assert_promtool_ok(&root);
    assert!(discovered(&root, "rip").is_empty());
}

/// See: red-team finding 6. An earlier tool that failed leaves no records;
/// acting on "no apps" would empty every target file.
#[test]
fn empty_input_without_allow_empty_is_refused_and_writes_nothing() {
    let root = test_dir("empty-refused");
    run(&root, &[], &demo_fleet()).ok();
    let before = fs::read_to_string(prom_dir(&root).join("rip.d/rip.json")).unwrap();

    let r = run(&root, &[], "");

    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("--allow-empty"), "{r}");
    assert_eq!(
        fs::read_to_string(prom_dir(&root).join("rip.d/rip.json")).unwrap(),
        before
    );
}

#[test]
fn an_empty_yaml_target_list_is_valid_too() {
    let root = test_dir("empty-yaml");

    run(&root, &["--sd-format", "yaml", "--allow-empty"], "[]").ok();

    assert_eq!(
        fs::read_to_string(prom_dir(&root).join("rip.d/rip.yml")).unwrap(),
        "[]\n"
    );
    assert_promtool_ok(&root);
}

#[test]
fn apps_without_metrics_are_skipped_with_a_notice() {
    let root = test_dir("skipped");
    let input = r#"{"name":"web"}
{"name":"api","metrics":{"port":9201}}"#;

    let r = run(&root, &[], input).ok();

    assert!(
        r.stderr
            .contains("rip-scrape: app \"web\": no metrics port; not scraped"),
        "{r}"
    );
    let web = r.result("web");
    assert_eq!(web["skipped"], "no metrics port");
    assert_eq!(web["changed"], false);
    assert!(web.get("target").is_none());
    assert_eq!(r.result("api")["target"], "127.0.0.1:9201");
    assert_promtool_ok(&root);
}

#[test]
fn one_app_from_flags() {
    let root = test_dir("flags");

    let r = run(&root, &["--app", "solo", "--metrics-port", "9201"], "").ok();

    assert_eq!(r.result("solo")["target"], "127.0.0.1:9201");
    assert_promtool_ok(&root);
}

#[test]
fn dry_run_reports_and_writes_nothing() {
    let root = test_dir("dry-run");

    let r = run(&root, &["--dry-run"], &demo_fleet()).ok();

    let a = r.result("app1");
    assert_eq!(
        (a["changed"].clone(), a["dry_run"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(a["files"][0]["action"], "created");
    assert!(files_under(&root).is_empty(), "{:?}", files_under(&root));
}

#[test]
fn input_that_rip_core_rejects_writes_nothing() {
    let root = test_dir("bad-input");

    let r = run(
        &root,
        &[],
        "{\"name\":\"a\\nb\",\"metrics\":{\"port\":9101}}",
    );

    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.starts_with("rip-scrape: error: record 1"), "{r}");
    assert!(files_under(&root).is_empty());
}

#[test]
fn output_pipes_into_a_second_run_keeping_other_tools_results() {
    let root = test_dir("pipeline");
    let mut apps: Vec<Value> = serde_json::from_str(&demo_fleet()).unwrap();
    for a in &mut apps {
        a["rip_unit"] = json!({"changed": true, "unit": "/etc/systemd/system/x.service"});
    }
    let ndjson: String = apps.iter().map(|a| format!("{a}\n")).collect();

    let first = run(&root, &[], &ndjson).ok();
    let second = run(&root, &[], &first.stdout).ok();

    let out = second.json();
    assert_eq!(out.len(), 3);
    for rec in &out {
        assert_eq!(rec["rip_unit"]["changed"], true, "{second}");
        assert_eq!(rec["rip_scrape"]["changed"], false, "{second}");
    }
}

// ----------------------------------------------------------- fleet checks

#[test]
fn prometheus_default_ports_are_refused_naming_record_and_field() {
    let root = test_dir("reserved");
    let input = r#"{"name":"ok","metrics":{"port":9101}}
{"name":"bad","listen":[{"port":9090}],"metrics":{"port":9100}}"#;

    let r = run(&root, &[], input);

    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr.contains(
            "record 2 (line 2), app \"bad\", field \"listen[0].port\": SCRAPE_RESERVED_PORT"
        ),
        "{r}"
    );
    assert!(
        r.stderr
            .contains("field \"metrics.port\": SCRAPE_RESERVED_PORT"),
        "{r}"
    );
    assert!(files_under(&root).is_empty());
    assert_eq!(r.stdout, "");
}

#[test]
fn allowed_default_ports_only_warn() {
    let root = test_dir("reserved-allowed");

    let r = run(
        &root,
        &["--allow-reserved-ports"],
        r#"{"name":"a","metrics":{"port":9091}}"#,
    )
    .ok();

    assert!(r.stderr.contains("warning: app \"a\""), "{r}");
    assert_eq!(r.result("a")["warnings"].as_array().unwrap().len(), 1);
    assert_promtool_ok(&root);
}

#[test]
fn one_address_for_two_hosts_is_a_duplicate_target() {
    let root = test_dir("dup-target");
    let input = r#"{"name":"a","host":"h1","metrics":{"port":9101,"addr":"10.1.1.1"}}
{"name":"b","host":"h2","metrics":{"port":9101,"addr":"10.1.1.1"}}"#;

    let r = run(&root, &[], input);

    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr
            .contains("app \"b\", field \"metrics.port\": SCRAPE_DUPLICATE_TARGET"),
        "{r}"
    );
    assert!(files_under(&root).is_empty());
}

#[test]
fn a_tunnelled_target_on_another_apps_port_is_refused() {
    let root = test_dir("port-clash");
    let input = r#"{"name":"local1","listen":[{"port":9200}]}
{"name":"far","host":"h2","metrics":{"port":9200,"addr":"127.0.0.1"}}"#;

    let r = run(&root, &[], input);

    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("SCRAPE_PORT_CLASH"), "{r}");
    assert!(r.stderr.contains("app \"local1\" (listen[0].port)"), "{r}");
    assert!(files_under(&root).is_empty());
}

#[test]
fn empty_label_values_are_refused() {
    let root = test_dir("empty-label");

    let r = run(
        &root,
        &[],
        r#"{"name":"a","metrics":{"port":9101},"labels":{"team":""}}"#,
    );

    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr
            .contains("field \"labels.team\": SCRAPE_EMPTY_LABEL"),
        "{r}"
    );
}

#[test]
fn a_hand_written_job_of_the_same_name_is_refused() {
    // See: SCRAPE-01.
    let root = test_dir("dup-job");
    let dir = prom_dir(&root);
    fs::create_dir_all(&dir).unwrap();
    let mine = "scrape_configs:\n  - job_name: app1 # mine\n    static_configs:\n      - targets: ['localhost:1234']\n";
    fs::write(dir.join("prometheus.yml"), mine).unwrap();

    let r = run(&root, &["--jobs", "per-app"], &demo_fleet());

    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr
            .contains("app \"app1\", field \"job\": SCRAPE_DUPLICATE_JOB: job \"app1\""),
        "{r}"
    );
    assert_eq!(
        fs::read_to_string(dir.join("prometheus.yml")).unwrap(),
        mine
    );
    assert!(!dir.join("rip.d").exists());
}

#[test]
fn the_single_job_is_checked_against_existing_jobs_too() {
    let root = test_dir("dup-job-one");
    let dir = prom_dir(&root);
    fs::create_dir_all(&dir).unwrap();
    let mine =
        "scrape_configs:\n  - job_name: rip\n    static_configs: [{targets: ['localhost:1']}]\n";
    fs::write(dir.join("prometheus.yml"), mine).unwrap();

    let r = run(&root, &[], &demo_fleet());
    let renamed = run(&root, &["--job-name", "apps"], &demo_fleet()).ok();

    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr.contains("SCRAPE_DUPLICATE_JOB: job \"rip\""),
        "{r}"
    );
    assert_eq!(renamed.result("app1")["job"], "apps");
    assert_promtool_ok(&root);
}

#[test]
fn an_existing_file_with_a_duplicate_job_is_refused() {
    let root = test_dir("dup-job-foreign");
    let dir = prom_dir(&root);
    fs::create_dir_all(&dir).unwrap();
    let mine = "scrape_configs:\n  - job_name: x\n  - job_name: x\n";
    fs::write(dir.join("prometheus.yml"), mine).unwrap();

    let r = run(&root, &[], &demo_fleet());

    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("job \"x\" appears more than once"), "{r}");
    assert_eq!(
        fs::read_to_string(dir.join("prometheus.yml")).unwrap(),
        mine
    );
}

#[test]
fn per_app_jobs_of_an_empty_fleet_leave_a_valid_config() {
    let root = test_dir("per-app-empty");
    run(&root, &["--jobs", "per-app"], &demo_fleet()).ok();

    let r = run(&root, &["--jobs", "per-app", "--allow-empty"], "").ok();

    assert!(r.stderr.contains("app1.json removed"), "{r}");
    assert!(files_under(&prom_dir(&root).join("rip.d")).is_empty());
    assert_promtool_ok(&root);
}

#[test]
fn merging_keeps_other_jobs_and_an_equal_file_keeps_its_comments() {
    let root = test_dir("merge");
    let dir = prom_dir(&root);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("prometheus.yml"),
        "# my config\nglobal:\n  scrape_interval: 1m\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['localhost:9100']\n",
    )
    .unwrap();

    let first = run(&root, &[], &demo_fleet()).ok();

    assert_eq!(first.result("app1")["files"][1]["action"], "replaced");
    assert_promtool_ok(&root);
    let cfg: Value =
        serde_yaml_ng::from_str(&fs::read_to_string(dir.join("prometheus.yml")).unwrap()).unwrap();
    assert_eq!(cfg["global"]["scrape_interval"], "1m");
    assert_eq!(cfg["scrape_configs"][0]["job_name"], "node");
    assert_eq!(cfg["scrape_configs"][1]["job_name"], "rip");

    let mut text = fs::read_to_string(dir.join("prometheus.yml")).unwrap();
    text.push_str("# a note of mine\n");
    fs::write(dir.join("prometheus.yml"), &text).unwrap();
    let second = run(&root, &[], &demo_fleet()).ok();

    assert_eq!(second.result("app1")["changed"], false, "{second}");
    assert_eq!(
        fs::read_to_string(dir.join("prometheus.yml")).unwrap(),
        text
    );
}

#[test]
fn replace_ignores_the_existing_file() {
    let root = test_dir("replace");
    let dir = prom_dir(&root);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("prometheus.yml"),
        "scrape_configs:\n  - job_name: rip\n",
    )
    .unwrap();

    run(&root, &["--replace"], &demo_fleet()).ok();

    let cfg = fs::read_to_string(dir.join("prometheus.yml")).unwrap();
    assert_eq!(cfg.matches("job_name").count(), 1, "{cfg}");
    assert_promtool_ok(&root);
}

#[test]
fn an_unparsable_existing_config_is_an_error() {
    let root = test_dir("bad-existing");
    let dir = prom_dir(&root);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("prometheus.yml"), "scrape_configs: [\n").unwrap();

    let r = run(&root, &[], &demo_fleet());

    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("is not valid YAML"), "{r}");
}

#[test]
fn no_config_writes_only_target_files() {
    let root = test_dir("no-config");

    let r = run(&root, &["--no-config", "--check"], &demo_fleet()).ok();

    assert!(!prom_dir(&root).join("prometheus.yml").exists());
    assert!(prom_dir(&root).join("rip.d/rip.json").exists());
    assert_eq!(r.result("app1")["files"].as_array().unwrap().len(), 1);
}

#[test]
fn check_runs_promtool_before_writing() {
    let root = test_dir("check");
    let dir = prom_dir(&root);
    fs::create_dir_all(&dir).unwrap();
    // A kept global section promtool rejects: the new files must not land.
    let bad = "global:\n  scrape_interval: 5s\n  scrape_timeout: 1m\n";
    fs::write(dir.join("prometheus.yml"), bad).unwrap();

    let r = run(&root, &["--check"], &demo_fleet());

    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("promtool check config rejected"), "{r}");
    assert_eq!(fs::read_to_string(dir.join("prometheus.yml")).unwrap(), bad);
    assert!(!dir.join("rip.d").exists());

    let good = run(&root, &["--check", "--replace"], &demo_fleet()).ok();
    assert!(
        good.stderr.contains("rip-scrape: promtool: SUCCESS"),
        "{good}"
    );
}

#[test]
fn check_without_promtool_fails_loudly() {
    let root = test_dir("check-missing");

    let r = run_env(
        &root,
        &["--check"],
        &demo_fleet(),
        &[("PATH", "/nonexistent")],
    );

    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("--check needs promtool"), "{r}");
    assert!(files_under(&root).is_empty());
}

#[test]
fn bad_flags_are_usage_errors() {
    let root = test_dir("bad-flags");

    for args in [
        &["--job-name", "a/b"][..],
        &["--scrape-interval", "15"],
        &["--ssh-user", "a b"],
        &["--jobs", "many"],
    ] {
        let r = run(&root, args, "[]");
        assert_eq!(r.code, 2, "{r}");
    }
    assert!(files_under(&root).is_empty());
}

// ------------------------------------------------------------------ labels

#[test]
fn hosts_extra_labels_and_custom_paths_reach_prometheus() {
    let root = test_dir("labels");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/hostname"), "vm1\n").unwrap();
    let input = r#"{"name":"a","metrics":{"port":9201,"path":"/m"},"labels":{"team":"shop"}}
{"name":"b","host":"web2","metrics":{"port":9201}}"#;

    let r = run(&root, &["--instance", "app"], input).ok();

    assert_eq!(
        r.result("a")["labels"],
        json!({"app": "a", "host": "vm1", "instance": "a", "job": "rip", "team": "shop"})
    );
    assert_eq!(r.result("b")["target"], "web2:9201");
    let found = discovered(&root, "rip");
    assert_eq!(found["a"]["host"], "vm1");
    assert_eq!(found["a"]["__metrics_path__"], "/m");
    assert_eq!(found["a"]["instance"], "a");
    assert_eq!(found["b"]["host"], "web2");
    assert_eq!(found["b"]["__address__"], "web2:9201");
}

/// Every label value, whatever characters it holds, comes out of
/// Prometheus' own parser (Go, YAML 1.1 for .yml) exactly as it went in.
fn labels_round_trip(format: &str) {
    let root = test_dir(&format!("round-trip-{format}"));
    let (mut rng, seed) = Rng::new();
    let mut fixed = vec![
        "yes",
        "No",
        "on",
        "OFF",
        "y",
        "~",
        "null",
        "true",
        "0x10",
        "010",
        "1e3",
        ".inf",
        "12:30",
        "a: b",
        "- x",
        "#hash",
        "x #y",
        " lead",
        "trail ",
        "'single'",
        "\"double\"",
        "{a}",
        "[b]",
        "&a",
        "*b",
        "!tag",
        "%x",
        "@",
        "`",
        "|",
        ">",
        "\\",
        "ä😀字",
        "\u{2028}line",
        "\u{feff}bom",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    for _ in 0..60 {
        fixed.push(rng.label_value());
    }
    let apps: Vec<Value> = fixed
        .chunks(8)
        .enumerate()
        .map(|(i, chunk)| {
            let labels: serde_json::Map<String, Value> = chunk
                .iter()
                .enumerate()
                .map(|(j, v)| (format!("l{j}"), json!(v)))
                .collect();
            json!({"name": format!("a{i}"), "metrics": {"port": 9300 + i}, "labels": labels})
        })
        .collect();

    run(
        &root,
        &["--sd-format", format],
        &serde_json::to_string(&apps).unwrap(),
    )
    .ok();

    assert_promtool_ok(&root);
    let found = discovered(&root, "rip");
    for app in &apps {
        let name = app["name"].as_str().unwrap();
        for (k, v) in app["labels"].as_object().unwrap() {
            assert_eq!(
                found[name].get(k).map(String::as_str),
                v.as_str(),
                "label {k} of {name} (seed {seed}, format {format})"
            );
        }
    }
}

#[test]
fn label_values_round_trip_through_prometheus_json() {
    labels_round_trip("json");
}

#[test]
fn label_values_round_trip_through_prometheus_yaml() {
    labels_round_trip("yaml");
}

// ----------------------------------------------------------------- explain

#[test]
fn explain_prints_the_ssh_tunnels() {
    let root = test_dir("explain");
    let input = r#"{"name":"a","metrics":{"port":9201}}
{"name":"b","host":"far.example","metrics":{"port":9201}}"#;

    let r = run(
        &root,
        &["--explain", "--local-host", "vm1", "--ssh-user", "ops"],
        input,
    )
    .ok();

    assert!(
        r.stderr
            .contains("rip-scrape:   ssh -N -L 9201:127.0.0.1:9201 ops@vm1"),
        "{r}"
    );
    assert!(
        r.stderr
            .contains("ssh -N -L 19201:127.0.0.1:9201 ops@far.example    # app b: http://127.0.0.1:19201/metrics"),
        "{r}"
    );
    assert_eq!(
        r.result("b")["tunnel"]["command"],
        "ssh -N -L 19201:127.0.0.1:9201 ops@far.example"
    );
}

#[test]
fn explain_without_a_known_host_names_a_placeholder() {
    let root = test_dir("explain-placeholder");

    let r = run(
        &root,
        &["--explain"],
        r#"{"name":"a","metrics":{"port":9201}}"#,
    )
    .ok();

    assert!(
        r.stderr.contains("ssh -N -L 9201:127.0.0.1:9201 SERVER"),
        "{r}"
    );
}

// --------------------------------------------------- a real Prometheus run

/// A tiny HTTP server answering every request with one metric.
struct MetricsServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let mut buf = [0u8; 4096];
                        let _ = s.read(&mut buf);
                        let body = format!("# TYPE rip_test_port gauge\nrip_test_port {port}\n");
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        MetricsServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Prometheus started by the test; stopped by its PID on drop (SIGTERM,
/// bounded wait, then SIGKILL), so no process outlives the test.
struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Prometheus {
    fn start(config: &Path, data: &Path, log: PathBuf) -> Self {
        need(PROMETHEUS);
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let out = fs::File::create(&log).unwrap();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=debug")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Prometheus { child, port, log }
    }

    fn get(&self, path: &str) -> Option<Value> {
        let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).ok()?;
        let text = String::from_utf8_lossy(&resp);
        let (_, body) = text.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    }

    /// Active targets as app -> (health, labels).
    fn targets(&self) -> Option<BTreeMap<String, (String, Value)>> {
        let v = self.get("/api/v1/targets?state=active")?;
        let list = v["data"]["activeTargets"].as_array()?;
        Some(
            list.iter()
                .map(|t| {
                    (
                        t["labels"]["app"].as_str().unwrap_or("").to_owned(),
                        (
                            t["health"].as_str().unwrap_or("").to_owned(),
                            t["labels"].clone(),
                        ),
                    )
                })
                .collect(),
        )
    }

    /// Poll until `done` holds for the active targets, at most `limit`.
    fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn(&BTreeMap<String, (String, Value)>) -> bool,
    ) -> Duration {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "prometheus exited ({status}) while waiting for {what}:\n{}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if let Some(t) = self.targets() {
                if done(&t) {
                    return start.elapsed();
                }
                last = Some(t);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "timed out after {limit:?} waiting for {what}; last targets: {last:?}\nlog:\n{}",
            fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let pid = Pid::from_raw(self.child.id() as i32);
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = kill(pid, Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = kill(pid, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn fleet_json(apps: &[(&str, u16)]) -> String {
    let v: Vec<Value> = apps
        .iter()
        .map(|(name, port)| {
            json!({"name": name, "metrics": {"port": port},
                   "labels": {"tier": format!("{name}: yes #1")}})
        })
        .collect();
    serde_json::to_string(&v).unwrap()
}

fn all_up(t: &BTreeMap<String, (String, Value)>, apps: &[&str]) -> bool {
    t.keys().map(String::as_str).collect::<BTreeSet<_>>() == apps.iter().copied().collect()
        && t.values().all(|(h, _)| h == "up")
}

#[test]
fn a_real_prometheus_scrapes_the_fleet_and_follows_its_changes_without_reload() {
    let dir = test_dir("prometheus");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let servers: Vec<MetricsServer> = (0..4).map(|_| MetricsServer::start()).collect();
    let flags = [
        "--replace",
        "--check",
        "--scrape-interval",
        "1s",
        "--refresh-interval",
        "1s",
    ];
    let fleet1 = [
        ("app1", servers[0].port),
        ("app2", servers[1].port),
        ("app3", servers[2].port),
    ];
    run(&root, &flags, &fleet_json(&fleet1)).ok();
    let config = prom_dir(&root).join("prometheus.yml");
    let mut prom = Prometheus::start(&config, &dir.join("data"), dir.join("prometheus.log"));

    // Every target up, with the right labels.
    let first = prom.wait_for(Duration::from_secs(60), "app1-3 up", |t| {
        all_up(t, &["app1", "app2", "app3"])
    });
    let targets = prom.targets().unwrap();
    for (app, port) in fleet1 {
        let labels = &targets[app].1;
        assert_eq!(labels["job"], "rip");
        assert_eq!(labels["instance"], format!("127.0.0.1:{port}"));
        assert_eq!(labels["tier"], format!("{app}: yes #1"));
    }
    let config_time =
        prom.get("/api/v1/status/runtimeinfo").unwrap()["data"]["lastConfigTime"].clone();

    // The fleet changes: app2 leaves, app4 joins. Only the target file
    // changes; Prometheus must notice it by itself.
    let fleet2 = [
        ("app1", servers[0].port),
        ("app3", servers[2].port),
        ("app4", servers[3].port),
    ];
    let second = run(&root, &flags, &fleet_json(&fleet2)).ok();
    let written = Instant::now();
    assert_eq!(second.result("app4")["reload_required"], false, "{second}");
    assert_eq!(second.result("app4")["files"][1]["action"], "unchanged");

    let seen = prom.wait_for(Duration::from_secs(30), "the new target set", |t| {
        t.keys().map(String::as_str).collect::<BTreeSet<_>>()
            == ["app1", "app3", "app4"].into_iter().collect()
    });
    let up = prom.wait_for(Duration::from_secs(30), "app4 up", |t| {
        all_up(t, &["app1", "app3", "app4"])
    });
    let total_up = written.elapsed();

    // A second change right after Prometheus applied the first one: this
    // lands just after its discovery update tick, so it shows the longest
    // wait (Prometheus batches discovery updates every 5 seconds).
    let fleet3 = [
        ("app1", servers[0].port),
        ("app2", servers[1].port),
        ("app3", servers[2].port),
        ("app4", servers[3].port),
    ];
    run(&root, &flags, &fleet_json(&fleet3)).ok();
    let seen_again = prom.wait_for(Duration::from_secs(30), "app2 back", |t| {
        t.keys().map(String::as_str).collect::<BTreeSet<_>>()
            == ["app1", "app2", "app3", "app4"].into_iter().collect()
    });
    assert!(
        prom.child.try_wait().unwrap().is_none(),
        "prometheus restarted"
    );
    assert_eq!(
        prom.get("/api/v1/status/runtimeinfo").unwrap()["data"]["lastConfigTime"],
        config_time,
        "the config was reloaded"
    );
    let line = format!(
        "first scrape of 3 targets up after {first:?}; changed target set seen after \
         {seen:?} (all up {up:?} later, {total_up:?} after the rewrite); a change \
         right after that one seen after {seen_again:?}\n"
    );
    eprintln!("rip-scrape pickup: {line}");
    fs::write(dir.join("pickup.txt"), line).unwrap();

    drop(prom);
    drop(servers);
}
