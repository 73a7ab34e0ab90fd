//! Benchmark: audit N generated unit files with rip-audit and with one
//! `systemd-analyze security --offline=true` call over the same files;
//! print both wall times, the ratio, and check that the scores are equal.
//!
//! cargo build --release -p rip-audit --bins --examples
//! target/release/examples/bench [N] [path/to/rip-audit]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/gen.rs"]
mod gen;

use std::process::Command;
use std::time::Instant;

fn overall(rows: &[serde_json::Value]) -> u64 {
    let (mut b, mut w) = (0u64, 0u64);
    for r in rows {
        let bad = r["badness"].as_u64().unwrap();
        if bad != u64::MAX {
            let weight = r["weight"].as_u64().unwrap();
            b += (bad * weight).div_ceil(r["range"].as_u64().unwrap());
            w += weight;
        }
    }
    (b * 100).div_ceil(w)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(1000);
    let bin = args.next().unwrap_or_else(|| {
        let me = std::env::current_exe().unwrap();
        me.parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("rip-audit")
            .display()
            .to_string()
    });
    let dir = tempfile::tempdir().unwrap();
    let files = gen::write_units(dir.path(), 0xbe9c_4000, n);
    let policy = dir.path().join("EMPTY.json");
    std::fs::write(&policy, "{}").unwrap();

    let t = Instant::now();
    let sd = Command::new("systemd-analyze")
        .env("SYSTEMD_ANALYZE_DEBUG", "1")
        .env("SYSTEMD_LOG_LEVEL", "err")
        .args(["security", "--offline=true", "--json=short"])
        .arg(format!("--security-policy={}", policy.display()))
        .args(&files)
        .output()
        .expect("systemd-analyze is needed for the benchmark");
    let sd_time = t.elapsed();

    let t = Instant::now();
    let rip = Command::new(&bin)
        .arg("--observe=no")
        .arg("--unit")
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let rip_time = t.elapsed();

    let sd_scores: Vec<u64> = String::from_utf8_lossy(&sd.stdout)
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| {
            overall(
                serde_json::from_str::<Vec<serde_json::Value>>(l)
                    .unwrap()
                    .as_slice(),
            )
        })
        .collect();
    let rip_scores: Vec<u64> = String::from_utf8_lossy(&rip.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["rip_audit"]["unit"]["score"].as_u64().unwrap()
        })
        .collect();
    let same = sd_scores == rip_scores;
    println!("units:            {n}");
    println!(
        "systemd-analyze:  {:.3} s ({:.3} ms/unit)",
        sd_time.as_secs_f64(),
        sd_time.as_secs_f64() * 1000.0 / n as f64
    );
    println!(
        "rip-audit:        {:.3} s ({:.3} ms/unit)",
        rip_time.as_secs_f64(),
        rip_time.as_secs_f64() * 1000.0 / n as f64
    );
    println!(
        "ratio:            {:.4}x (target <= 0.02x)",
        rip_time.as_secs_f64() / sd_time.as_secs_f64()
    );
    println!(
        "scores identical: {same} ({} systemd, {} rip-audit)",
        sd_scores.len(),
        rip_scores.len()
    );
    if !same {
        std::process::exit(1);
    }
}
