//! rip-scrape: turn a fleet of app specs into Prometheus configuration, a
//! prometheus.yml whose jobs read file_sd target files in rip.d/, written
//! atomically after every fleet check passed.

pub mod check;
pub mod cli;
pub mod explain;
pub mod plan;
pub mod render;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rip_core::fsutil::same_file;
use rip_core::{note, write_atomic, Exit, Record};
use serde::Serialize;

use crate::cli::Cli;
use crate::explain::Tunnel;
use crate::plan::{Plan, Settings, Target};
use crate::render::{Global, CONFIG_FILE, SD_DIR};

/// The key this tool adds to each record.
pub const KEY: &str = "rip_scrape";

/// Tool name for stderr messages.
const TOOL: &str = "rip-scrape";

/// Mode of every file written: Prometheus runs as its own user and must
/// read them; they hold no secrets.
const FILE_MODE: u32 = 0o644;

/// Mode of directories rip-scrape creates.
const DIR_MODE: u32 = 0o755;

/// What happens to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Already as wanted.
    Unchanged,
    /// Does not exist yet.
    Created,
    /// Exists with other contents.
    Replaced,
    /// A stale target file of a job that no longer exists.
    Removed,
}

impl Action {
    fn changed(self) -> bool {
        self != Action::Unchanged
    }
}

/// A file in the plan.
#[derive(Debug, Clone)]
struct FileOp {
    /// Path on this machine (under --root).
    host_path: PathBuf,
    /// Path on the target system, for the report.
    shown: String,
    /// New contents; `None` removes the file.
    contents: Option<Vec<u8>>,
    action: Action,
}

/// One file in the JSON output.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// Path on the target system.
    pub path: String,
    /// What was (or, with --dry-run, would be) done.
    pub action: Action,
}

/// The `rip_scrape` value of one output record.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Whether a file this app's target depends on changed.
    pub changed: bool,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Why the app has no target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<&'static str>,
    /// Scrape job of the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// `host:port` Prometheus scrapes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// HTTP path scraped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_path: Option<String>,
    /// Final labels of the target, `job` and `instance` included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Files that concern this app.
    pub files: Vec<FileReport>,
    /// Whether prometheus.yml changed, so Prometheus must reload it.
    pub reload_required: bool,
    /// SSH tunnel to reach the metrics port from elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,
    /// Non-fatal findings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Check the flags that clap cannot, and build the planning settings.
fn settings(args: &Cli) -> anyhow::Result<Settings> {
    if !plan::is_job_name(&args.job_name) {
        bail!(
            "--job-name {:?}: use letters, digits, '_', '.', '-', not starting with '.'",
            args.job_name
        );
    }
    if !args.job_prefix.is_empty() && !plan::is_job_name(&args.job_prefix) {
        bail!(
            "--job-prefix {:?}: use letters, digits, '_', '.', '-', not starting with '.'",
            args.job_prefix
        );
    }
    for (flag, v) in [
        ("--scrape-interval", &args.scrape_interval),
        ("--refresh-interval", &args.refresh_interval),
    ] {
        if render::parse_duration(v).is_none() {
            bail!("{flag} {v:?} is not a Prometheus duration such as 15s or 1m30s");
        }
    }
    let plain = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if let Some(u) = &args.ssh_user {
        if !plain(u) || u.contains('@') || u.starts_with('-') {
            bail!("--ssh-user {u:?} is not a user name");
        }
    }
    if let Some(h) = &args.local_host {
        if !plain(h) || h.starts_with('-') {
            bail!("--local-host {h:?} is not a host name");
        }
    }
    Ok(Settings {
        jobs: args.jobs,
        job_name: args.job_name.clone(),
        job_prefix: args.job_prefix.clone(),
        host_label: args.host_label,
        local_host: local_host(args).unwrap_or_else(|| "local".to_owned()),
        instance: args.instance,
        allow_reserved_ports: args.allow_reserved_ports,
    })
}

/// This machine's name: --local-host, else the first line of
/// ROOT/etc/hostname when it looks like a name.
fn local_host(args: &Cli) -> Option<String> {
    if let Some(h) = &args.local_host {
        return Some(h.clone());
    }
    let file = args.system.root().join("/etc/hostname");
    fs::read_to_string(file)
        .ok()
        .and_then(|t| t.lines().next().map(|l| l.trim().to_owned()))
        .filter(|h| {
            !h.is_empty()
                && !h.starts_with('-')
                && !h.chars().any(|c| c.is_whitespace() || c.is_control())
        })
}

/// The `global` section of a new prometheus.yml.
fn global(args: &Cli) -> Global {
    let below_default = render::parse_duration(&args.scrape_interval).is_some_and(|ms| ms < 10_000);
    Global {
        scrape_interval: args.scrape_interval.clone(),
        scrape_timeout: below_default.then(|| args.scrape_interval.clone()),
        evaluation_interval: args.scrape_interval.clone(),
    }
}

fn action_for(path: &Path, contents: &[u8]) -> anyhow::Result<Action> {
    Ok(match same_file(path, contents, FILE_MODE)? {
        None => Action::Created,
        Some(true) => Action::Unchanged,
        Some(false) => Action::Replaced,
    })
}

/// Stale target files: regular, visible files with a target-file extension
/// in rip.d/ that no job of this run uses. Symlinks are never touched.
fn stale_files(sd_dir: &Path, keep: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(sd_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {sd_dir:?}")),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {sd_dir:?}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = [".json", ".yml", ".yaml"].iter().any(|e| name.ends_with(e));
        let path = entry.path();
        let is_file = fs::symlink_metadata(&path)
            .with_context(|| format!("cannot stat {path:?}"))?
            .file_type()
            .is_file();
        if ours && is_file && !name.starts_with('.') && !keep.contains(&name) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn create_dir(path: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
        .with_context(|| format!("cannot create directory {path:?}"))
}

/// Run rip-scrape over parsed arguments.
pub fn run(args: &Cli, stdin: impl Read, mut stdout: impl Write) -> anyhow::Result<Exit> {
    // Validate: flags, records, fleet.
    let settings = settings(args)?;
    let records = args.input.records(stdin)?;
    let plan = match plan::plan(&records, &settings) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors {
                note(TOOL, format!("error: {e}"));
            }
            bail!("{} fleet check(s) failed; nothing written", errors.len());
        }
    };

    // Where things go.
    let root = args.system.root();
    let out_dir = root.join(&args.out_dir);
    let sd_dir = out_dir.join(SD_DIR);
    let config_path = out_dir.join(CONFIG_FILE);
    let shown = |p: &Path| root.strip(p).display().to_string();

    // Build every file in memory.
    let mut sd_files: Vec<(String, Vec<u8>)> = Vec::new();
    for job in &plan.jobs {
        let targets: Vec<&Target> = plan.targets_of(job).collect();
        sd_files.push((
            render::sd_file_name(job, args.sd_format),
            render::sd_contents(&targets, args.sd_format)?,
        ));
    }
    let jobs = render::generated_jobs(&plan, args.sd_format, &args.refresh_interval)?;
    let existing = if args.no_config || args.replace {
        None
    } else {
        read_existing(&config_path)?
    };
    let config = render::build_config(existing.as_ref(), jobs, &global(args))
        .with_context(|| format!("cannot merge into {config_path:?}"))?;
    check_jobs(
        &records,
        &plan,
        &config.kept_jobs,
        &config_path,
        args.no_config,
    )?;
    let config_bytes = render::config_bytes(&config.doc)?;

    // Decide what each file needs.
    let mut ops = Vec::new();
    for (name, contents) in &sd_files {
        let p = sd_dir.join(name);
        ops.push(FileOp {
            action: action_for(&p, contents)?,
            shown: shown(&p),
            host_path: p,
            contents: Some(contents.clone()),
        });
    }
    let mut config_op = None;
    if !args.no_config {
        // A file that already means the same keeps its bytes and comments.
        let action = if existing.as_ref() == Some(&config.doc) {
            Action::Unchanged
        } else {
            action_for(&config_path, &config_bytes)?
        };
        config_op = Some(FileOp {
            action,
            shown: shown(&config_path),
            host_path: config_path.clone(),
            contents: Some(config_bytes.clone()),
        });
    }
    let keep: Vec<String> = sd_files.iter().map(|(n, _)| n.clone()).collect();
    let removals: Vec<FileOp> = stale_files(&sd_dir, &keep)?
        .into_iter()
        .map(|p| FileOp {
            shown: shown(&p),
            host_path: p,
            contents: None,
            action: Action::Removed,
        })
        .collect();

    // Optional promtool check of the staged result.
    if args.check {
        let staged_config = if args.no_config {
            let jobs = render::generated_jobs(&plan, args.sd_format, &args.refresh_interval)?;
            render::config_bytes(&render::build_config(None, jobs, &global(args))?.doc)?
        } else {
            config_bytes.clone()
        };
        let out = check::promtool_check(&out_dir, &staged_config, &sd_files)?;
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            note(TOOL, format!("promtool: {}", line.trim()));
        }
    }

    // Act: target files first, then the config that reads them, then the
    // removal of files no job reads any more.
    if !args.system.dry_run {
        let all = ops.iter().chain(config_op.iter()).chain(removals.iter());
        if all.clone().any(|op| op.action.changed()) {
            create_dir(&sd_dir)?;
        }
        for op in all {
            match (&op.contents, op.action) {
                (_, Action::Unchanged) => {}
                (Some(c), _) => {
                    write_atomic(&op.host_path, c, FILE_MODE)?;
                }
                (None, _) => fs::remove_file(&op.host_path)
                    .with_context(|| format!("cannot remove {:?}", op.host_path))?,
            }
        }
    }

    // Report.
    report_notes(args, &records, &plan, config_op.as_ref(), &removals);
    let targets: Vec<&Target> = plan.targets.iter().collect();
    let tunnels = explain::tunnels(
        &targets,
        |i| records[i].spec.clone(),
        // A placeholder the user must replace beats a wrong name.
        &local_host(args).unwrap_or_else(|| "SERVER".to_owned()),
        args.ssh_user.as_deref(),
    );
    if args.explain {
        explain_notes(&plan, &tunnels);
    }
    for (i, record) in records.iter().enumerate() {
        let outcome = outcome_of(
            i,
            args,
            &plan,
            &ops,
            config_op.as_ref(),
            &removals,
            &tunnels,
        );
        rip_core::write_record(&mut stdout, record, KEY, &outcome)?;
    }
    stdout.flush()?;
    Ok(Exit::Ok)
}

/// The existing prometheus.yml as a YAML value, if there is one.
fn read_existing(path: &Path) -> anyhow::Result<Option<serde_yaml_ng::Value>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {path:?}")),
    };
    let value = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{path:?} is not valid YAML; fix it or pass --replace"))?;
    Ok(Some(value))
}

/// SCRAPE_DUPLICATE_JOB: job names must be unique across the generated
/// jobs and the existing jobs that are kept.
fn check_jobs(
    records: &[Record],
    plan: &Plan,
    kept: &[String],
    config_path: &Path,
    no_config: bool,
) -> anyhow::Result<()> {
    let kept: &[String] = if no_config { &[] } else { kept };
    let names = kept
        .iter()
        .map(String::as_str)
        .chain(plan.jobs.iter().map(String::as_str));
    let dups = plan::duplicate_jobs(names);
    if dups.is_empty() {
        return Ok(());
    }
    for job in &dups {
        if !plan.jobs.iter().any(|j| j == job) {
            note(
                TOOL,
                format!(
                    "error: SCRAPE_DUPLICATE_JOB: job {job:?} appears more than once \
                     in {config_path:?}; fix that file first"
                ),
            );
            continue;
        }
        let msg = format!(
            "SCRAPE_DUPLICATE_JOB: job {job:?} is also a job of {config_path:?} that \
             rip-scrape does not manage; rename one of them (--job-name, --job-prefix)"
        );
        match plan.targets_of(job).next() {
            Some(t) => note(
                TOOL,
                format!("error: {}", records[t.record].error("job", msg)),
            ),
            None => note(TOOL, format!("error: {msg}")),
        }
    }
    bail!(
        "{} duplicate job name(s); Prometheus would reject the whole file; nothing written",
        dups.len()
    )
}

fn report_notes(
    args: &Cli,
    records: &[Record],
    plan: &Plan,
    config: Option<&FileOp>,
    removals: &[FileOp],
) {
    for &i in &plan.skipped {
        note(
            TOOL,
            format!(
                "app {:?}: no metrics port; not scraped",
                records[i].spec.name
            ),
        );
    }
    for (i, w) in &plan.warnings {
        note(
            TOOL,
            format!("warning: app {:?}: {w}", records[*i].spec.name),
        );
    }
    let would = if args.system.dry_run { "would be " } else { "" };
    for r in removals {
        note(
            TOOL,
            format!("{} {would}removed (no job reads it)", r.shown),
        );
    }
    if let Some(c) = config.filter(|c| c.action.changed()) {
        note(
            TOOL,
            format!(
                "{} {would}{}: reload Prometheus to apply it (systemctl reload \
                 prometheus, or SIGHUP); target file changes need no reload",
                c.shown,
                if c.action == Action::Created {
                    "created"
                } else {
                    "replaced"
                }
            ),
        );
    }
}

fn explain_notes(plan: &Plan, tunnels: &[Tunnel]) {
    if plan.targets.is_empty() {
        note(TOOL, "no app has a metrics port: no tunnel to explain");
        return;
    }
    note(
        TOOL,
        "to reach a metrics port from another machine (a browser, or a Prometheus \
         elsewhere scraping 127.0.0.1:LOCAL), run there:",
    );
    for (t, tun) in plan.targets.iter().zip(tunnels) {
        note(
            TOOL,
            format!("  {}    # app {}: {}", tun.command, t.app, tun.url),
        );
    }
}

fn outcome_of(
    i: usize,
    args: &Cli,
    plan: &Plan,
    ops: &[FileOp],
    config: Option<&FileOp>,
    removals: &[FileOp],
    tunnels: &[Tunnel],
) -> Outcome {
    let reload_required = config.is_some_and(|c| c.action.changed());
    let warnings: Vec<String> = plan
        .warnings
        .iter()
        .filter(|(r, _)| *r == i)
        .map(|(_, w)| w.clone())
        .collect();
    let Some((n, t)) = plan.targets.iter().enumerate().find(|(_, t)| t.record == i) else {
        return Outcome {
            changed: false,
            dry_run: args.system.dry_run,
            skipped: Some("no metrics port"),
            job: None,
            target: None,
            metrics_path: None,
            labels: None,
            files: Vec::new(),
            reload_required,
            tunnel: None,
            warnings,
        };
    };
    let sd_name = render::sd_file_name(&t.job, args.sd_format);
    let files: Vec<FileReport> = ops
        .iter()
        .filter(|op| op.host_path.file_name() == Some(std::ffi::OsStr::new(&sd_name)))
        .chain(config)
        .chain(removals)
        .map(|op| FileReport {
            path: op.shown.clone(),
            action: op.action,
        })
        .collect();
    Outcome {
        changed: files.iter().any(|f| f.action.changed()),
        dry_run: args.system.dry_run,
        skipped: None,
        job: Some(t.job.clone()),
        target: Some(t.address.clone()),
        metrics_path: Some(t.metrics_path.clone()),
        labels: Some(t.final_labels.clone()),
        files,
        reload_required,
        tunnel: tunnels.get(n).cloned(),
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_files_skip_hidden_symlinks_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "keep.json",
            "old.json",
            "old.yml",
            ".x.json.1.rip-tmp",
            "notes.txt",
        ] {
            fs::write(dir.path().join(n), "[]").unwrap();
        }
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link.json")).unwrap();

        let stale = stale_files(dir.path(), &["keep.json".to_owned()]).unwrap();

        let names: Vec<String> = stale
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["old.json", "old.yml"]);
    }

    #[test]
    fn missing_sd_dir_has_no_stale_files() {
        let dir = tempfile::tempdir().unwrap();

        assert!(stale_files(&dir.path().join("nope"), &[])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn short_intervals_lower_the_timeout() {
        use clap::Parser;
        let fast = Cli::parse_from(["rip-scrape", "--scrape-interval", "2s"]);
        let slow = Cli::parse_from(["rip-scrape"]);

        assert_eq!(global(&fast).scrape_timeout.as_deref(), Some("2s"));
        assert_eq!(global(&slow).scrape_timeout, None);
    }

    /// Prometheus' file_sd globs `*.json` (Go's filepath.Match, where `*`
    /// also matches a leading dot): while target files are rewritten over
    /// and over, a reader listing the directory must never meet a
    /// `*.json` name that is not a complete JSON list.
    #[test]
    fn temporary_files_never_match_the_file_sd_glob() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rip.json");
        write_atomic(&path, b"[]\n", FILE_MODE).unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (dir, done) = (dir.path().to_path_buf(), done.clone());
            std::thread::spawn(move || {
                let mut seen = 0u64;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    for e in fs::read_dir(&dir).unwrap().flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if name.ends_with(".json") {
                            assert_eq!(name, "rip.json", "a temp file matches *.json");
                            let text = fs::read(e.path()).unwrap();
                            let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
                            assert!(v.is_array());
                            seen += 1;
                        }
                    }
                }
                seen
            })
        };

        for i in 0..300 {
            let body = serde_json::json!([{"targets": [format!("127.0.0.1:{}", 1000 + i)]}]);
            write_atomic(&path, body.to_string().as_bytes(), FILE_MODE).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);

        assert!(reader.join().unwrap() > 0);
    }
}
