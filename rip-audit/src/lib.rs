//! rip-audit: systemd 252's exposure score, reproduced exactly, plus what it
//! cannot see (unit lint, declared vs observed, cross-app file access).
//! It reads and never writes.

pub mod cli;
pub mod finding;
pub mod isolation;
pub mod lint;
pub mod lookup;
pub mod model;
pub mod observe;
pub mod score;
pub mod specifier;
pub mod syscalls;
pub mod text;
pub mod unitfile;
pub mod weaken;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use rip_core::{Exit, Root};
use serde::Serialize;

use crate::finding::{Finding, Override, Severity};

/// The key this tool adds to each record.
pub const KEY: &str = "rip_audit";

/// The unit part of a result.
#[derive(Debug, Clone, Serialize)]
pub struct UnitReport {
    /// Unit name.
    pub name: String,
    /// The file read (target-system path).
    pub path: String,
    /// Drop-ins merged, in order.
    pub dropins: Vec<String>,
    /// Whether systemd would load it (false: score is systemd's view of a
    /// unit it refuses, given for reference only).
    pub loaded: bool,
    /// 0.0-10.0, one decimal, as systemd prints it.
    pub exposure: Option<f64>,
    /// 0-100.
    pub score: Option<u64>,
    /// systemd's label.
    pub label: Option<&'static str>,
    /// Every check.
    pub checks: Vec<score::Row>,
}

/// One audited unit, before it is turned into output.
#[derive(Debug, Clone)]
pub struct AuditedUnit {
    /// Report.
    pub report: UnitReport,
    /// Settings as systemd loaded them.
    pub settings: model::Settings,
    /// Syntax issues of the files.
    pub syntax: Vec<unitfile::SyntaxIssue>,
    /// The main unit file (host path).
    pub fragment: PathBuf,
    /// The checks of the unit file alone, without its drop-ins (None when
    /// there is no drop-in).
    pub fragment_checks: Option<Vec<score::Row>>,
}

/// Load and score one unit file (`host_path` is where to read it).
pub fn audit_unit_file(root: &Root, host_path: &Path) -> anyhow::Result<AuditedUnit> {
    let files = [host_path.to_path_buf()];
    let idx = unitfile::UnitIndex::new(root, &files);
    audit_indexed(root, &idx, host_path)
}

/// Whether systemd would load the unit: no fatal error and nothing its
/// `service_verify()` refuses.
fn loads(settings: &model::Settings) -> bool {
    settings.fatal.is_empty() && settings.load_error().is_none()
}

/// Why systemd 252 refuses a unit for its files: none found (see
/// `UnitFiles::not_found`), or a fragment with a line its parser fails on
/// (over `LONG_LINE_MAX`, "No buffer space available"; not UTF-8; a bad
/// section header); in a drop-in such a line only ends that drop-in (see
/// `unitfile::parse_ini`).
fn file_errors(
    files: &unitfile::UnitFiles,
    syntax: &[unitfile::SyntaxIssue],
    settings: &mut model::Settings,
) {
    settings.fatal.extend(files.not_found.clone());
    for i in syntax
        .iter()
        .filter(|i| i.fatal && i.file == files.fragment)
    {
        settings
            .fatal
            .push(format!("{}:{}: {}", i.file.display(), i.line, i.message));
    }
}

/// Like [`audit_unit_file`], with a shared drop-in index.
pub fn audit_indexed(
    root: &Root,
    idx: &unitfile::UnitIndex,
    host_path: &Path,
) -> anyhow::Result<AuditedUnit> {
    let files = idx.locate(host_path)?;
    let (assignments, syntax) = unitfile::read_all(&files)?;
    let mut settings = model::settings(&files.name, &files.fragment, assignments);
    file_errors(&files, &syntax, &mut settings);
    let sc = score::score(&settings);
    let loaded = loads(&settings);
    // The unit file alone, to see what the drop-ins change.
    let fragment_checks = if files.dropins.is_empty() {
        None
    } else {
        let alone = unitfile::UnitFiles {
            dropins: Vec::new(),
            ..files.clone()
        };
        let (a, _) = unitfile::read_all(&alone)?;
        Some(score::score(&model::settings(&files.name, &files.fragment, a)).checks)
    };
    let shown = |p: &Path| root.strip(p).display().to_string();
    Ok(AuditedUnit {
        report: UnitReport {
            name: files.name.clone(),
            path: shown(&files.fragment),
            dropins: files.dropins.iter().map(|p| shown(p)).collect(),
            loaded,
            exposure: Some(sc.exposure),
            score: Some(sc.score),
            label: Some(sc.label),
            checks: sc.checks,
        },
        settings,
        syntax,
        fragment: files.fragment.clone(),
        fragment_checks,
    })
}

/// The `rip_audit` value.
#[derive(Debug, Clone, Serialize)]
pub struct AuditResult {
    /// Always false: rip-audit changes nothing.
    pub changed: bool,
    /// Echo of --dry-run.
    pub dry_run: bool,
    /// No finding at or above --fail-on and exposure within --threshold.
    pub ok: bool,
    /// The unit and its score (null when there is no unit file).
    pub unit: Option<UnitReport>,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Where rip-audit disagrees with systemd-analyze, and why.
    pub overrides_systemd_analyze: Vec<Override>,
    /// Declared vs observed state of the running service.
    pub observed: Option<serde_json::Value>,
    /// Who can read or write this app's files.
    pub matrix: Option<serde_json::Value>,
}

fn verdict(args: &cli::Cli, unit: Option<&UnitReport>, findings: &[Finding]) -> bool {
    let over = match (args.threshold, unit.and_then(|u| u.score)) {
        (Some(t), Some(s)) => s > t,
        _ => false,
    };
    !over && !findings.iter().any(|f| f.severity >= args.fail_on)
}

fn finish(args: &cli::Cli, mut res: AuditResult) -> AuditResult {
    res.findings
        .sort_by(|a, b| b.severity.cmp(&a.severity).then(a.code.cmp(b.code)));
    res.ok = verdict(args, res.unit.as_ref(), &res.findings);
    res
}

fn empty_result(args: &cli::Cli) -> AuditResult {
    AuditResult {
        changed: false,
        dry_run: args.system.dry_run,
        ok: true,
        unit: None,
        findings: Vec::new(),
        overrides_systemd_analyze: Vec::new(),
        observed: None,
        matrix: None,
    }
}

fn unit_findings(u: &AuditedUnit, root: &Root) -> Vec<Finding> {
    let mut out = weaken::dropins_weaken(u, root);
    if !u.report.loaded {
        let mut why = u.settings.fatal.clone();
        why.extend(u.settings.load_error());
        out.push(Finding::new(
            "UNIT_LOAD_FAILED",
            Severity::Critical,
            format!("systemd would refuse to load {}", u.report.name),
            serde_json::json!({"path": u.report.path, "errors": why}),
            "fix the settings named in the evidence",
        ));
    }
    out
}

/// Map every other unit's resolved user to unit names, for USER_SHARED:
/// the units audited plus every `*.service` in the unit directory.
fn users_of_units(
    root: &Root,
    unit_dir: &Path,
    audited: &[&AuditedUnit],
) -> BTreeMap<String, BTreeSet<String>> {
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for u in audited {
        seen.insert(u.report.name.clone());
        if let Some(user) = &u.settings.user {
            if !u.settings.dynamic_user {
                map.entry(user.clone())
                    .or_default()
                    .insert(u.report.name.clone());
            }
        }
    }
    let dir = root.join(unit_dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "service")
                && std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file())
        })
        .collect();
    files.sort();
    for f in files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if seen.contains(&name) || name.contains('@') {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let (a, _) = unitfile::parse_ini(&text, &f);
        let s = model::settings(&name, &f, a);
        if let (Some(user), false) = (s.user, s.dynamic_user) {
            map.entry(user).or_default().insert(name);
        }
    }
    map
}

fn observe_sources(args: &cli::Cli, root: &Root) -> Option<(observe::Sources, bool)> {
    let explicit = args.proc_dir.is_some() || args.cgroup_dir.is_some();
    let on = match args.observe {
        cli::Observe::No => false,
        cli::Observe::Yes => true,
        cli::Observe::Auto => explicit || root.is_host(),
    };
    on.then(|| {
        (
            observe::Sources {
                proc_dir: args.proc_dir.clone().unwrap_or_else(|| root.join("/proc")),
                cgroup_dir: args
                    .cgroup_dir
                    .clone()
                    .unwrap_or_else(|| root.join("/sys/fs/cgroup")),
            },
            args.observe == cli::Observe::Yes,
        )
    })
}

fn env_files(s: &model::Settings) -> Vec<String> {
    s.list("Service", "EnvironmentFile")
        .iter()
        .map(|a| a.value.trim_start_matches('-').to_owned())
        .collect()
}

struct Emitter<'a, W: Write> {
    args: &'a cli::Cli,
    out: W,
    all_ok: bool,
    summaries: Vec<text::Summary>,
}

impl<W: Write> Emitter<'_, W> {
    fn emit(
        &mut self,
        record: Option<&rip_core::Record>,
        label: &str,
        res: AuditResult,
    ) -> anyhow::Result<()> {
        self.all_ok &= if self.args.format == cli::Format::Scores {
            verdict(self.args, res.unit.as_ref(), &[])
        } else {
            res.ok
        };
        match self.args.format {
            cli::Format::Json => match record {
                Some(r) => rip_core::write_record(&mut self.out, r, KEY, &res)?,
                None => {
                    self.out.write_all(b"{\"rip_audit\":")?;
                    serde_json::to_writer(&mut self.out, &res)?;
                    self.out.write_all(b"}\n")?;
                }
            },
            cli::Format::Text => self.summaries.push(text::Summary::of(label, &res)),
            cli::Format::Scores => {
                let mut line = Vec::with_capacity(1024);
                score_line(&mut line, record.map(|_| label), res.unit.as_ref())?;
                self.out.write_all(&line)?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<Exit> {
        if self.args.format == cli::Format::Text {
            text::write(&mut self.out, &self.summaries, self.args)?;
        }
        self.out.flush()?;
        Ok(if self.all_ok {
            Exit::Ok
        } else {
            Exit::Negative
        })
    }
}

/// Append one `--format scores` line for a full audit result:
/// `{"app":...,` (spec mode only), then the unit's fields.
fn score_line(buf: &mut Vec<u8>, app: Option<&str>, u: Option<&UnitReport>) -> anyhow::Result<()> {
    buf.push(b'{');
    if let Some(app) = app {
        buf.extend_from_slice(b"\"app\":");
        serde_json::to_writer(&mut *buf, app)?;
        buf.push(b',');
    }
    let Some(u) = u else {
        buf.extend_from_slice(
            b"\"unit\":null,\"path\":null,\"loaded\":false,\"score\":null,\
              \"exposure\":null,\"label\":null}\n",
        );
        return Ok(());
    };
    score_fields(buf, &u.name, &u.path, u.loaded, u.score)
}

/// The unit's fields of a `--format scores` line, and its end.
fn score_fields(
    buf: &mut Vec<u8>,
    name: &str,
    path: &str,
    loaded: bool,
    score: Option<u64>,
) -> anyhow::Result<()> {
    buf.extend_from_slice(b"\"unit\":");
    serde_json::to_writer(&mut *buf, name)?;
    buf.extend_from_slice(b",\"path\":");
    serde_json::to_writer(&mut *buf, path)?;
    buf.extend_from_slice(if loaded {
        b",\"loaded\":true"
    } else {
        b",\"loaded\":false"
    });
    match score {
        Some(sc) => {
            // `exposure` is score / 10 with one decimal, as serde prints it.
            let mut digits = itoa::Buffer::new();
            buf.extend_from_slice(b",\"score\":");
            buf.extend_from_slice(digits.format(sc).as_bytes());
            buf.extend_from_slice(b",\"exposure\":");
            buf.extend_from_slice(digits.format(sc / 10).as_bytes());
            buf.extend_from_slice(&[b'.', b'0' + (sc % 10) as u8]);
            buf.extend_from_slice(b",\"label\":\"");
            buf.extend_from_slice(score::label(sc).as_bytes());
            buf.extend_from_slice(b"\"}\n");
        }
        None => buf.extend_from_slice(b",\"score\":null,\"exposure\":null,\"label\":null}\n"),
    }
    Ok(())
}

/// A unit of `--format scores` whose fragment is read and applied; its
/// drop-ins come next (see [`finish_unit`]).
struct Started {
    // Boxed: it is moved from batch to unit a few times.
    settings: Box<model::Settings>,
    syntax: Vec<unitfile::SyntaxIssue>,
}

/// Read and apply the fragment of `files` (a regular file is read without
/// the final read for EOF; nothing is read for a unit systemd does not
/// find).
fn start_unit(files: &unitfile::UnitFiles) -> anyhow::Result<Started> {
    let (name, host_path) = (files.name.as_str(), files.fragment.as_path());
    // Lines go straight into the settings: nothing is kept for a lint.
    let mut settings = Box::new(model::Settings::new(name));
    settings.details = false;
    settings.fragment = Some(std::sync::Arc::from(host_path));
    let syntax = if files.not_found.is_none() {
        let within = files.root.as_deref();
        unitfile::read_one(host_path, within, files.fragment_regular, |l| {
            settings.apply(&l)
        })?
    } else {
        Vec::new()
    };
    Ok(Started { settings, syntax })
}

/// Read and apply the file given, before the search path is indexed (on
/// the host only): the guess that it is the unit's fragment is checked in
/// [`finish_unit`]. Not known to be a regular file, it has its status
/// checked before it is read (a FIFO or a device is never read).
fn start_given(host_path: &Path) -> anyhow::Result<Started> {
    start_unit(&unitfile::UnitFiles::given(host_path, None, None)?)
}

/// Find the unit's files (the fragment read early is used if it is the
/// one), apply the drop-ins, score it and append its `--format scores`
/// line; returns the score. The same steps as [`audit_indexed`] without
/// the report.
fn finish_unit(
    buf: &mut Vec<u8>,
    root: &Root,
    idx: &unitfile::UnitIndex,
    host_path: &Path,
    started: Option<Started>,
) -> anyhow::Result<u64> {
    let files = idx.locate(host_path)?;
    let Started {
        mut settings,
        mut syntax,
    } = match started {
        Some(st) if files.as_given => st,
        _ => start_unit(&files)?,
    };
    for d in &files.dropins {
        let within = files.root.as_deref();
        syntax.extend(unitfile::read_one(d, within, true, |l| settings.apply(&l))?);
    }
    settings.finish();
    file_errors(&files, &syntax, &mut settings);
    let (sc, _) = score::summary(&settings);
    // Under `/`, a path without `//`, `/./` or a trailing `/` or `/.` is
    // shown as given: what `Root::strip` would make of it, unallocated.
    let given = files.fragment.to_string_lossy();
    let plain = !(given.contains("//")
        || given.contains("/./")
        || given.ends_with('/')
        || given.ends_with("/."));
    let shown;
    let path = if root.is_host() && plain {
        given
    } else {
        shown = root.strip(&files.fragment);
        Cow::Owned(shown.to_string_lossy().into_owned())
    };
    buf.push(b'{');
    score_fields(buf, &files.name, &path, loads(&settings), Some(sc))?;
    Ok(sc)
}

/// A value set once by one thread and awaited by others.
struct Ready<T> {
    value: std::sync::OnceLock<T>,
    lock: std::sync::Mutex<()>,
    set: std::sync::Condvar,
}

impl<T> Ready<T> {
    fn new() -> Self {
        Ready {
            value: std::sync::OnceLock::new(),
            lock: std::sync::Mutex::new(()),
            set: std::sync::Condvar::new(),
        }
    }

    fn put(&self, v: T) {
        let _ = self.value.set(v);
        // Taken after the value is there: a waiter either sees it or is
        // already waiting and gets the notification.
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.set.notify_all();
    }

    fn get(&self) -> Option<&T> {
        self.value.get()
    }

    fn wait(&self) -> &T {
        if let Some(v) = self.value.get() {
            return v;
        }
        let mut g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(v) = self.value.get() {
                return v;
            }
            g = self.set.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// `--unit ... --format scores`: the lean path. The files are cut into
/// small batches that the threads (the calling one among them) take in
/// turn from a shared counter, so a thread slowed down by a busy machine
/// does not hold the others back. While the calling thread lists the
/// drop-in directories, the others read and apply the fragments of the
/// batches they take (up to eight each), and finish them
/// (drop-ins, score, line) once the listing is there. Between its own
/// batches the calling thread writes the lines of the finished ones, in
/// argument order, so output overlaps the work. On an error (a unit that
/// cannot be read, a failed write), every thread stops taking batches; the
/// lines of the batches before the failing one are written, no later one.
fn run_scores(args: &cli::Cli, root: &Root, mut out: impl Write) -> anyhow::Result<Exit> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const BATCH: usize = 32;
    // At most this many batches a thread holds read before the listing.
    const EARLY: usize = 8;
    // One thread more than there are CPUs: a new thread may start on the
    // CPU of the one that made it, and the kernel can take milliseconds to
    // move it to an idle one; with one more, every CPU has work at once.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
        + 1;
    let batches: Vec<&[PathBuf]> = args.units.chunks(BATCH).collect();
    let next = AtomicUsize::new(0);
    let all_ok = AtomicBool::new(true);
    let index = Ready::new();
    let done = std::sync::Mutex::new(Done::default());
    let audit = |p: &PathBuf| format!("cannot audit {p:?}");
    // A fragment that cannot be read early (a FIFO, a dangling link) is
    // left to the listing: systemd may not even take it for the fragment.
    let start = |batch: &[PathBuf]| -> Vec<Option<Started>> {
        batch.iter().map(|p| start_given(p).ok()).collect()
    };
    let finish = |b: usize, started: Vec<Option<Started>>| -> anyhow::Result<Vec<u8>> {
        let idx: &unitfile::UnitIndex = index.wait();
        let batch = batches[b];
        let mut buf = Vec::with_capacity(batch.len() * 128);
        let mut started = started.into_iter();
        for (i, p) in batch.iter().enumerate() {
            let early = started.next().flatten();
            // A unit systemd merges into an earlier file's is that one.
            let (p, early) = match idx.merged_into(b * BATCH + i) {
                Some(j) => (&args.units[j], None),
                None => (p, early),
            };
            let sc = finish_unit(&mut buf, root, idx, p, early).with_context(|| audit(p))?;
            if matches!(args.threshold, Some(t) if sc > t) {
                all_ok.store(false, Ordering::Relaxed);
            }
        }
        Ok(buf)
    };
    let hand_in = |b: usize, result: anyhow::Result<Vec<u8>>| {
        let mut d = done.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(buf) => {
                d.ready.insert(b, buf);
            }
            Err(e) => {
                if !d.failed.as_ref().is_some_and(|(f, _)| *f < b) {
                    d.failed = Some((b, e));
                }
                // Nothing more is wanted: let every thread run out of
                // batches.
                next.store(usize::MAX / 2, Ordering::Relaxed);
            }
        }
    };
    // The calling thread writes the batches that are in turn.
    let mut want = 0;
    let mut write_ready = |out: &mut dyn Write| -> std::io::Result<()> {
        loop {
            let buf = {
                let mut d = done.lock().unwrap_or_else(|e| e.into_inner());
                match d.ready.remove(&want) {
                    Some(buf) => buf,
                    None => return Ok(()),
                }
            };
            out.write_all(&buf)?;
            want += 1;
        }
    };
    let work = |after_batch: &mut dyn FnMut()| {
        // Batches whose fragments were read before the listing was there.
        let mut early: Vec<(usize, Vec<Option<Started>>)> = Vec::new();
        loop {
            let mut listed = index.get().is_some();
            // Under --root nothing is read before the listing says which
            // file is the fragment and how to reach it inside the root.
            if !listed && (early.len() >= EARLY || !root.is_host()) {
                index.wait();
                listed = true;
            }
            if listed {
                for (b, started) in early.drain(..) {
                    hand_in(b, finish(b, started));
                }
            }
            let b = next.fetch_add(1, Ordering::Relaxed);
            let Some(&batch) = batches.get(b) else { break };
            if listed {
                hand_in(b, finish(b, Vec::new()));
                after_batch();
            } else {
                early.push((b, start(batch)));
            }
        }
        for (b, started) in early {
            hand_in(b, finish(b, started));
        }
    };
    let mut write_failed = None;
    std::thread::scope(|sc| {
        for _ in 1..threads.min(batches.len()) {
            sc.spawn(|| {
                own_descriptors();
                work(&mut || ())
            });
        }
        index.put(unitfile::UnitIndex::new(root, &args.units));
        work(&mut || {
            if write_failed.is_none() {
                if let Err(e) = write_ready(&mut out) {
                    write_failed = Some(e);
                    next.store(usize::MAX / 2, Ordering::Relaxed);
                }
            }
        });
    });
    if write_failed.is_none() {
        // The rest, now that every thread is done.
        write_failed = write_ready(&mut out).err();
    }
    let failed = done.into_inner().unwrap_or_else(|e| e.into_inner()).failed;
    if let Some((_, e)) = failed {
        return Err(e);
    }
    if let Some(e) = write_failed {
        return Err(e.into());
    }
    out.flush()?;
    Ok(if all_ok.into_inner() {
        Exit::Ok
    } else {
        Exit::Negative
    })
}

/// Give the calling thread a descriptor table of its own (a copy), where
/// the files it opens and closes are no other thread's concern: with a
/// table that is not shared, Linux takes no reference nor position lock
/// per `read` and no shared lock per `open` and `close`, which made reading
/// a thousand small files a tenth faster here. The thread must not use a
/// descriptor another thread opens later (the workers of
/// [`run_scores`] open and close their own). Best effort: should
/// `unshare` fail, the table stays shared, which is only slower.
fn own_descriptors() {
    // SAFETY: unshare(CLONE_FILES) only copies this thread's table; every
    // descriptor open now stays valid in the copy.
    let _ = unsafe { libc::unshare(libc::CLONE_FILES) };
}

/// The batches of `--format scores` handed in by the threads.
#[derive(Default)]
struct Done {
    /// Lines of finished batches not written yet, by batch.
    ready: BTreeMap<usize, Vec<u8>>,
    /// The first batch that failed, and why.
    failed: Option<(usize, anyhow::Error)>,
}

/// Audit unit files given with --unit (no specs): score and lint.
fn run_units(args: &cli::Cli, root: &Root, out: impl Write) -> anyhow::Result<Exit> {
    let idx = unitfile::UnitIndex::new(root, &args.units);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = args.units.len().div_ceil(threads).max(1);
    let mut audited: Vec<AuditedUnit> = Vec::with_capacity(args.units.len());
    std::thread::scope(|sc| -> anyhow::Result<()> {
        let handles: Vec<_> = args
            .units
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let idx = &idx;
                sc.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, p)| {
                            // A unit systemd merges into an earlier file's
                            // is that one.
                            let p = idx.merged_into(c * chunk + i).map_or(p, |j| &args.units[j]);
                            audit_indexed(root, idx, p)
                                .with_context(|| format!("cannot audit {p:?}"))
                        })
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        for h in handles {
            let part = h
                .join()
                .map_err(|_| anyhow::anyhow!("an audit thread panicked"))??;
            audited.extend(part);
        }
        Ok(())
    })?;
    let accounts = rip_core::accounts::Accounts::load(root)?;
    let host = lint::HostFeatures::probe(root, args.cgroup_dir.as_deref());
    let refs: Vec<&AuditedUnit> = audited.iter().collect();
    let users = users_of_units(root, &args.unit_dir, &refs);
    let obs = observe_sources(args, root);
    let one = |u: AuditedUnit| -> AuditResult {
        let cx = lint::Context {
            root,
            accounts: &accounts,
            spec: None,
            users: &users,
            host: &host,
        };
        let mut res = empty_result(args);
        res.findings = unit_findings(&u, root);
        let (f, ov) = lint::lint(&u, &cx);
        res.findings.extend(f);
        res.overrides_systemd_analyze = ov;
        if let Some((src, required)) = &obs {
            let (o, f) = observe::observe(&u.settings, &accounts, src, &[], *required);
            res.observed = Some(o);
            res.findings.extend(f);
        }
        res.unit = Some(u.report);
        finish(args, res)
    };
    let mut em = Emitter {
        args,
        out,
        all_ok: true,
        summaries: Vec::new(),
    };
    if args.format == cli::Format::Text {
        for u in audited {
            let label = u.report.name.clone();
            em.emit(None, &label, one(u))?;
        }
        return em.finish();
    }
    // JSON: lint and serialise in parallel, write in argument order.
    let mut parts: Vec<Vec<AuditedUnit>> = Vec::new();
    let mut rest = audited;
    while !rest.is_empty() {
        let tail = rest.split_off(chunk.min(rest.len()));
        parts.push(rest);
        rest = tail;
    }
    let outputs = std::thread::scope(|sc| -> anyhow::Result<Vec<(Vec<u8>, bool)>> {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| {
                let one = &one;
                sc.spawn(move || -> anyhow::Result<(Vec<u8>, bool)> {
                    let mut buf = Vec::with_capacity(part.len() * 16 * 1024);
                    let mut ok = true;
                    for u in part {
                        let res = one(u);
                        ok &= res.ok;
                        buf.extend_from_slice(b"{\"rip_audit\":");
                        serde_json::to_writer(&mut buf, &res)?;
                        buf.extend_from_slice(b"}\n");
                    }
                    Ok((buf, ok))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("an audit thread panicked"))?
            })
            .collect()
    })?;
    for (buf, ok) in outputs {
        em.all_ok &= ok;
        em.out.write_all(&buf)?;
    }
    em.finish()
}

/// Run rip-audit over parsed arguments.
pub fn run(args: &cli::Cli, stdin: impl Read, stdout: impl Write) -> anyhow::Result<Exit> {
    let root = args.system.root();
    if !args.units.is_empty() && args.format == cli::Format::Scores {
        // Written in large batches: no buffer needed.
        return run_scores(args, &root, stdout);
    }
    let out = std::io::BufWriter::with_capacity(1 << 16, stdout);
    if !args.units.is_empty() {
        return run_units(args, &root, out);
    }
    let records = args.input.records(stdin)?;
    let accounts = rip_core::accounts::Accounts::load(&root)?;
    let host = lint::HostFeatures::probe(&root, args.cgroup_dir.as_deref());
    let obs = observe_sources(args, &root);
    let fleet: Vec<&rip_core::AppSpec> = records.iter().map(|r| &r.spec).collect();

    // Load every unit first, so that shared users are seen across the fleet.
    let mut units: Vec<Option<AuditedUnit>> = Vec::new();
    for r in &records {
        let path = unit_path(args, &root, r);
        units.push(if path.exists() {
            Some(audit_unit_file(&root, &path)?)
        } else {
            None
        });
    }
    let refs: Vec<&AuditedUnit> = units.iter().flatten().collect();
    let users = users_of_units(&root, &args.unit_dir, &refs);
    let mut em = Emitter {
        args,
        out,
        all_ok: true,
        summaries: Vec::new(),
    };
    for (r, u) in records.iter().zip(&units) {
        let mut res = empty_result(args);
        let mut unit_env = Vec::new();
        match u {
            Some(u) => {
                let cx = lint::Context {
                    root: &root,
                    accounts: &accounts,
                    spec: Some(&r.spec),
                    users: &users,
                    host: &host,
                };
                res.findings = unit_findings(u, &root);
                res.findings
                    .extend(weaken::writable_outside(u, &r.spec, &root));
                let target = r
                    .result_of("rip_unit")
                    .and_then(|v| v.get("exposure_target"))
                    .and_then(serde_json::Value::as_f64);
                if let Some(f) = target.and_then(|t| weaken::over_target(u, t)) {
                    res.findings.push(f);
                }
                let (f, ov) = lint::lint(u, &cx);
                res.findings.extend(f);
                res.overrides_systemd_analyze = ov;
                unit_env = env_files(&u.settings);
                if let Some((src, required)) = &obs {
                    let paths = vec![
                        r.spec.home.display().to_string(),
                        r.spec.data_dir().display().to_string(),
                    ];
                    let (o, f) = observe::observe(&u.settings, &accounts, src, &paths, *required);
                    res.observed = Some(o);
                    res.findings.extend(f);
                }
                res.unit = Some(u.report.clone());
            }
            None => res.findings.push(Finding::new(
                "UNIT_MISSING",
                Severity::High,
                format!("no unit file for {}", r.spec.name),
                isolation::at(
                    &root.strip(&unit_path(args, &root, r)),
                    serde_json::json!({}),
                ),
                "run rip-unit to write it",
            )),
        }
        let (m, f) = isolation::audit_app(
            &root,
            &accounts,
            &r.spec,
            &fleet,
            &args.backup_user,
            &unit_env,
        );
        res.matrix = Some(m);
        res.findings.extend(f);
        let res = finish(args, res);
        em.emit(Some(r), &r.spec.name, res)?;
    }
    em.finish()
}

/// Where the app's unit is: `rip_unit.unit` from the record when rip-unit
/// ran earlier in the pipeline, else `<unit-dir>/<name>.service`.
fn unit_path(args: &cli::Cli, root: &Root, r: &rip_core::Record) -> PathBuf {
    let from_unit = r
        .result_of("rip_unit")
        .and_then(|v| v.get("unit").or_else(|| v.get("path")))
        .and_then(|v| v.as_str())
        .filter(|p| p.ends_with(".service"));
    match from_unit {
        Some(p) if Path::new(p).starts_with(root.dir()) && !root.is_host() => PathBuf::from(p),
        Some(p) => root.join(p),
        None => root.join(args.unit_dir.join(format!("{}.service", r.spec.name))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Red-team: the early read of a file given (before the listing says
    /// what it is) must not read from a FIFO: it once took a writer's data
    /// meant for another reader. Its status is checked first.
    #[test]
    fn early_read_of_a_fifo_leaves_its_data() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.service");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Both ends held here: opening never blocks, and the data stays.
        let mut ends = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        ends.write_all(b"secret\n").unwrap();

        assert!(start_given(&fifo).is_err());

        let mut got = [0u8; 16];
        let n = ends.read(&mut got).unwrap();
        assert_eq!(&got[..n], b"secret\n");
    }
}
