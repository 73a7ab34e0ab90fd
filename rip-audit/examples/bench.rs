//! Benchmark: audit N generated unit files with one
//! `systemd-analyze security --offline=true` call, with rip-audit's full
//! JSON mode (`--unit FILE...`) and with its lean mode (`--unit FILE...
//! --format scores`); print the wall times side by side and the ratios,
//! and check that every score equals systemd's (and, for the full mode,
//! every check's badness).
//!
//! Timed runs write stdout to /dev/null, as hyperfine does. Each command
//! is timed two ways: back to back (two untimed warm-up runs, then RUNS in
//! a row, as hyperfine does) and interleaved (RUNS rounds of
//! systemd-analyze, full, lean, so that each rip-audit run comes right
//! after other work, as a one-off run would, and a busy machine hurts all
//! three alike). Min and median are shown. The outputs compared come from
//! one more, untimed, run of each command.
//!
//! A last row times the `io_floor` example (built next to this one), which
//! opens, reads and closes the same files and lists the same directories
//! as the lean mode, on as many threads, and parses nothing: how much of
//! the lean mode's time is file-system work that any tool reading these
//! files pays.
//!
//! cargo build --release -p rip-audit --bins --examples
//! target/release/examples/bench [N] [RUNS] [path/to/rip-audit]
//!
//! With RIP_BENCH_DIR=DIR the units are written to DIR and kept.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/gen.rs"]
mod gen;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
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

fn timed(cmd: &mut Command) -> Duration {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let t = Instant::now();
    let status = cmd.status().expect("cannot run the benchmarked command");
    let elapsed = t.elapsed();
    assert!(status.code().is_some(), "killed by a signal");
    elapsed
}

/// The stdout of one untimed run.
fn captured(cmd: &mut Command) -> Vec<u8> {
    let out: Output = cmd
        .stderr(Stdio::null())
        .output()
        .expect("cannot run the command");
    out.stdout
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
    // RIP_BENCH_DIR keeps the generated units (for profiling by hand).
    let tmp = tempfile::tempdir().unwrap();
    let dir =
        std::env::var_os("RIP_BENCH_DIR").map_or_else(|| tmp.path().to_owned(), PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    let files = gen::write_units(&dir, 0xbe9c_4000, n);
    let policy = dir.join("EMPTY.json");
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

    let floor = std::env::current_exe().unwrap().with_file_name("io_floor");
    let floor_cmd = || {
        let mut c = Command::new(&floor);
        c.args(&files);
        c
    };

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut cmds: Vec<&dyn Fn() -> Command> = vec![&sd_cmd, &full_cmd, &lean_cmd];
    if floor.exists() {
        cmds.push(&floor_cmd);
    }
    // times[way][command]: back to back, then interleaved.
    let mut times: [Vec<Vec<Duration>>; 2] = Default::default();
    for way in &mut times {
        way.resize(cmds.len(), Vec::new());
    }
    for (k, cmd) in cmds.iter().enumerate() {
        for _ in 0..2 {
            timed(&mut cmd());
        }
        for _ in 0..runs.max(1) {
            times[0][k].push(timed(&mut cmd()));
        }
    }
    for _ in 0..runs.max(1) {
        for (k, cmd) in cmds.iter().enumerate() {
            times[1][k].push(timed(&mut cmd()));
        }
    }
    let (sd_out, full_out, lean_out) = (
        captured(&mut sd_cmd()),
        captured(&mut full_cmd()),
        captured(&mut lean_cmd()),
    );

    let expected: Vec<(u64, BTreeSet<String>)> = String::from_utf8_lossy(&sd_out)
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| systemd_unit(&serde_json::from_str::<Vec<serde_json::Value>>(l).unwrap()))
        .collect();
    let full: Vec<(u64, BTreeSet<String>)> = String::from_utf8_lossy(&full_out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let u = &v["rip_audit"]["unit"];
            let failing = u["checks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["badness"].as_u64().is_some_and(|b| b > 0))
                .map(|r| r["json_field"].as_str().unwrap().to_owned())
                .collect();
            (u["score"].as_u64().unwrap(), failing)
        })
        .collect();
    let lean: Vec<u64> = String::from_utf8_lossy(&lean_out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["score"].as_u64().unwrap()
        })
        .collect();
    let expected_scores: Vec<u64> = expected.iter().map(|(s, _)| *s).collect();
    let full_same = full == expected;
    let lean_same = lean == expected_scores;

    let ms = |s: f64| s * 1000.0;
    println!(
        "units: {n}, runs: {}, load before: {}, output: full {} KB, scores {} KB",
        runs.max(1),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        full_out.len() / 1024,
        lean_out.len() / 1024
    );
    println!("stdout to /dev/null; min / median ms, ratio to systemd-analyze of the medians");
    println!("{:<28}{:>28}{:>28}", "", "back to back", "interleaved");
    let [back, inter] = &mut times;
    let sd = [stats(&mut back[0]), stats(&mut inter[0])];
    let names = [
        "systemd-analyze",
        "rip-audit (full JSON)",
        "rip-audit --format scores",
        "I/O floor (io_floor)",
    ];
    for (k, name) in names.iter().take(cmds.len()).enumerate() {
        let mut line = format!("{name:<28}");
        for (w, way) in [&mut *back, &mut *inter].into_iter().enumerate() {
            let (min, med) = stats(&mut way[k]);
            let cell = if k == 0 {
                format!("{:.1} / {:.1}", ms(min), ms(med))
            } else {
                format!("{:.1} / {:.1}  {:.4}x", ms(min), ms(med), med / sd[w].1)
            };
            line.push_str(&format!("{cell:>28}"));
        }
        println!("{line}");
    }
    println!("target: --format scores <= 0.02x");
    println!(
        "identical to systemd: full mode {full_same} ({} of {}, every check's badness > 0 included), \
         scores mode {lean_same} ({} of {})",
        full.len(),
        expected.len(),
        lean.len(),
        expected.len()
    );
    if !(full_same && lean_same) {
        std::process::exit(1);
    }
}
