//! Benchmark: audit N generated unit files with one
//! `systemd-analyze security --offline=true` call, with rip-audit's full
//! JSON mode (`--unit FILE...`) and with its lean mode (`--unit FILE...
//! --format scores`); print the wall times side by side, the ratios, and
//! check that every score (and, for the lean mode, the set of failing
//! checks) equals systemd's. Each command runs RUNS times, interleaved, so
//! that a loaded machine hurts them alike; min and median are shown.
//!
//! cargo build --release -p rip-audit --bins --examples
//! target/release/examples/bench [N] [RUNS] [path/to/rip-audit]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/gen.rs"]
mod gen;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// systemd's overall score and its failing checks (badness > 0), from one
/// `--json=short` array.
fn systemd_unit(rows: &[serde_json::Value]) -> (u64, BTreeSet<String>) {
    let (mut b, mut w) = (0u64, 0u64);
    let mut failing = BTreeSet::new();
    for r in rows {
        let bad = r["badness"].as_u64().unwrap();
        if bad != u64::MAX {
            let weight = r["weight"].as_u64().unwrap();
            b += (bad * weight).div_ceil(r["range"].as_u64().unwrap());
            w += weight;
            if bad > 0 {
                failing.insert(r["json_field"].as_str().unwrap().to_owned());
            }
        }
    }
    ((b * 100).div_ceil(w), failing)
}

fn timed(cmd: &mut Command) -> (Duration, Output) {
    let t = Instant::now();
    let out = cmd.output().expect("cannot run the benchmarked command");
    (t.elapsed(), out)
}

fn stats(times: &mut [Duration]) -> (f64, f64) {
    times.sort();
    let min = times[0].as_secs_f64();
    let median = times[times.len() / 2].as_secs_f64();
    (min, median)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(1000);
    let runs: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(3);
    let bin = args.next().map(PathBuf::from).unwrap_or_else(|| {
        let me = std::env::current_exe().unwrap();
        me.parent().unwrap().parent().unwrap().join("rip-audit")
    });
    let dir = tempfile::tempdir().unwrap();
    let files = gen::write_units(dir.path(), 0xbe9c_4000, n);
    let policy = dir.path().join("EMPTY.json");
    std::fs::write(&policy, "{}").unwrap();

    let sd_cmd = || {
        let mut c = Command::new("systemd-analyze");
        c.env("SYSTEMD_ANALYZE_DEBUG", "1")
            .env("SYSTEMD_LOG_LEVEL", "err")
            .args(["security", "--offline=true", "--json=short"])
            .arg(format!("--security-policy={}", policy.display()))
            .args(&files);
        c
    };
    let full_cmd = || {
        let mut c = Command::new(&bin);
        c.arg("--observe=no").arg("--unit").args(&files);
        c
    };
    let lean_cmd = || {
        let mut c = Command::new(&bin);
        c.args(["--format", "scores", "--unit"]).args(&files);
        c
    };

    let (mut sd_t, mut full_t, mut lean_t) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sd_out, mut full_out, mut lean_out) = (None, None, None);
    for _ in 0..runs.max(1) {
        let (t, o) = timed(&mut sd_cmd());
        sd_t.push(t);
        sd_out = Some(o);
        let (t, o) = timed(&mut full_cmd());
        full_t.push(t);
        full_out = Some(o);
        let (t, o) = timed(&mut lean_cmd());
        lean_t.push(t);
        lean_out = Some(o);
    }
    let (sd_out, full_out, lean_out) = (sd_out.unwrap(), full_out.unwrap(), lean_out.unwrap());

    let expected: Vec<(u64, BTreeSet<String>)> = String::from_utf8_lossy(&sd_out.stdout)
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| systemd_unit(&serde_json::from_str::<Vec<serde_json::Value>>(l).unwrap()))
        .collect();
    let full: Vec<u64> = String::from_utf8_lossy(&full_out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["rip_audit"]["unit"]["score"].as_u64().unwrap()
        })
        .collect();
    let lean: Vec<(u64, BTreeSet<String>)> = String::from_utf8_lossy(&lean_out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let failing = v["failing"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_owned())
                .collect();
            (v["score"].as_u64().unwrap(), failing)
        })
        .collect();
    let expected_scores: Vec<u64> = expected.iter().map(|(s, _)| *s).collect();
    let full_same = full == expected_scores;
    let lean_same = lean == expected;

    let (sd_min, sd_med) = stats(&mut sd_t);
    let (full_min, full_med) = stats(&mut full_t);
    let (lean_min, lean_med) = stats(&mut lean_t);
    let ms = |s: f64| s * 1000.0;
    println!(
        "units: {n}, runs: {}, output: full {} KB, scores {} KB",
        runs.max(1),
        full_out.stdout.len() / 1024,
        lean_out.stdout.len() / 1024
    );
    println!(
        "{:<30}{:>9}{:>11}{:>16}{:>13}",
        "", "min ms", "median ms", "ratio (median)", "ratio (min)"
    );
    println!(
        "{:<30}{:>9.1}{:>11.1}",
        "systemd-analyze",
        ms(sd_min),
        ms(sd_med)
    );
    for (name, min, med) in [
        ("rip-audit (full JSON)", full_min, full_med),
        ("rip-audit --format scores", lean_min, lean_med),
    ] {
        println!(
            "{name:<30}{:>9.1}{:>11.1}{:>15.4}x{:>12.4}x",
            ms(min),
            ms(med),
            med / sd_med,
            min / sd_min
        );
    }
    println!("target: --format scores <= 0.02x");
    println!(
        "scores identical: full {full_same} ({} of {}), scores mode {lean_same} ({} of {}, failing checks included)",
        full.len(),
        expected.len(),
        lean.len(),
        expected.len()
    );
    if !(full_same && lean_same) {
        std::process::exit(1);
    }
}
