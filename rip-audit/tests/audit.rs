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
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
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
    let files = gen::write_units(&units, 0x5eed_2520, 1200);

    let bad = differential(&dir, &files);

    assert!(
        bad.is_empty(),
        "{} mismatches with systemd-analyze (units kept in {}):\n{}",
        bad.len(),
        units.display(),
        bad.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}
