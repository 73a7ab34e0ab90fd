//! The file-system work of a lean `rip-audit --format scores --unit
//! FILE...` run, and nothing else: the benchmark's floor (see bench.rs).
//!
//! Threads as rip-audit starts them (one more than there are CPUs, the
//! calling one among them) open, read once and close every file given,
//! taking batches of 32 from a shared counter; the calling thread first
//! lists the unit search path and the files' directories, then opens every
//! `*.d` directory found there and reads its entries. No line is parsed,
//! nothing is scored: what this takes is what any tool reading the same
//! files in the same way pays before doing its own work. It prints the
//! number of bytes and names seen, so that no work can be skipped.
//!
//! target/release/examples/io_floor FILE...
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rip_audit::unitfile::SEARCH_PATH;

/// Open, read once, close: the bytes read.
fn read_once(p: &Path, buf: &mut [u8]) -> usize {
    File::open(p).and_then(|mut f| f.read(buf)).unwrap_or(0)
}

fn main() {
    let files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) + 1;
    let next = AtomicUsize::new(0);
    let seen = AtomicUsize::new(0);
    let work = || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let at = next.fetch_add(32, Ordering::Relaxed);
            let Some(batch) = files.get(at..(at + 32).min(files.len())) else {
                break;
            };
            let n: usize = batch.iter().map(|f| read_once(f, &mut buf)).sum();
            seen.fetch_add(n, Ordering::Relaxed);
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        let mut dirs: Vec<PathBuf> = SEARCH_PATH.iter().map(PathBuf::from).collect();
        for f in &files {
            let d = f.parent().unwrap_or(Path::new(".")).to_path_buf();
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        // A directory met again under another name (Debian's /lib is
        // /usr/lib) is read once, as rip-audit reads it.
        let mut ids = Vec::new();
        dirs.retain(|d| {
            fs::metadata(d).is_ok_and(|m| {
                let id = (m.dev(), m.ino());
                !ids.contains(&id) && {
                    ids.push(id);
                    true
                }
            })
        });
        let (mut names, mut dropin_dirs) = (0, Vec::new());
        for d in &dirs {
            for e in fs::read_dir(d).into_iter().flatten().flatten() {
                names += 1;
                if e.file_name().as_encoded_bytes().ends_with(b".d") {
                    dropin_dirs.push(e.path());
                }
            }
        }
        let mut buf = vec![0u8; 64 * 1024];
        for d in &dropin_dirs {
            for e in fs::read_dir(d).into_iter().flatten().flatten() {
                names += read_once(&e.path(), &mut buf);
            }
        }
        seen.fetch_add(names, Ordering::Relaxed);
        work();
    });
    println!("{}", seen.into_inner());
}
