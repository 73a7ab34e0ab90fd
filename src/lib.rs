//! Harness for the cross-tool pipeline tests in `tests/`: finds the real
//! binaries in the target directory, gives each test its own directory, runs
//! commands and shows everything about a command that failed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The five tools, in pipeline order.
pub const TOOLS: [&str; 5] = [
    "rip-user",
    "rip-perms",
    "rip-unit",
    "rip-scrape",
    "rip-audit",
];

/// The directory holding the workspace's binaries: the parent of the test
/// executable's `deps/` directory.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a parent directory");
    deps.parent().expect("deps/ has a parent").to_path_buf()
}

/// Path of a workspace binary. Panics with a clear message when it was not
/// built: `cargo test` does not build sibling packages' binaries.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{path:?} is missing: run `cargo build --workspace --bins` before the pipeline tests"
    );
    path
}

/// The workspace root (where `examples/` lives).
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A directory for one test, named after it, under the target's tmp dir;
/// removed when the test passes, kept for inspection when it fails.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Create (afresh) `<tmpdir>/<name>`.
    pub fn new(tmpdir: &str, name: &str) -> Self {
        let path = Path::new(tmpdir).join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create test dir");
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside it.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test directory kept for inspection: {:?}", self.path);
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// What a command did.
pub struct Run {
    /// The command line, for messages.
    pub cmdline: String,
    /// Its output.
    pub output: Output,
}

impl Run {
    /// Exit code (-1 when killed by a signal).
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    /// stdout as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// stderr as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Everything about the run, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }

    /// Assert the exit code, showing the whole run otherwise.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit code\n{}",
            self.describe()
        );
        self
    }

    /// stdout parsed as NDJSON.
    pub fn records(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}\n{}", self.describe()))
            })
            .collect()
    }
}

/// Run `program args...` with `stdin` piped in.
pub fn run<S: AsRef<OsStr>>(program: &Path, args: &[S], stdin: &[u8]) -> Run {
    let cmdline = std::iter::once(program.display().to_string())
        .chain(
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmdline}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().expect("wait");
    let _ = writer.join();
    Run { cmdline, output }
}

/// Run one rip tool.
pub fn tool<S: AsRef<OsStr>>(name: &str, args: &[S], stdin: &[u8]) -> Run {
    run(&bin(name), args, stdin)
}

/// Every `changed` flag of a tool's result key across all records.
pub fn changed_flags(records: &[Value], key: &str) -> Vec<bool> {
    records
        .iter()
        .map(|r| {
            r[key]["changed"]
                .as_bool()
                .unwrap_or_else(|| panic!("record has no {key}.changed: {r}"))
        })
        .collect()
}

/// A snapshot of a tree: every path with its type, mode, owner, size and
/// mtime, to show that a run touched nothing. Directories' mtimes are left
/// out: taking shadow's lock files (`/etc/passwd.lock`...) changes them
/// although nothing was written.
pub fn snapshot(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            let mtime = if m.is_dir() {
                String::new()
            } else {
                format!(" {}.{}", m.mtime(), m.mtime_nsec())
            };
            out.push(format!(
                "{} {:o} {}:{} {}{mtime}",
                p.display(),
                m.mode(),
                m.uid(),
                m.gid(),
                m.len(),
            ));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Assert two snapshots are equal, showing only the lines that differ.
pub fn assert_same_tree(before: &[String], after: &[String], what: &str) {
    let gone: Vec<&String> = before.iter().filter(|l| !after.contains(l)).collect();
    let new: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
    assert!(
        gone.is_empty() && new.is_empty(),
        "{what}\n--- before ---\n{gone:#?}\n--- after ---\n{new:#?}"
    );
}
