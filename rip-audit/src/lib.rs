//! rip-audit: systemd 252's exposure score, reproduced exactly, plus what it
//! cannot see (unit lint, declared vs observed, cross-app file access).
//! It reads and never writes.

pub mod cli;
pub mod finding;
pub mod model;
pub mod score;
pub mod syscalls;
pub mod unitfile;

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
}

/// Load and score one unit file (`host_path` is where to read it).
pub fn audit_unit_file(root: &Root, host_path: &Path) -> anyhow::Result<AuditedUnit> {
    let files = unitfile::locate(root, host_path)?;
    let (assignments, syntax) = unitfile::read_all(&files)?;
    let settings = model::settings(&files.name, assignments);
    let sc = score::score(&settings);
    let has_exec = settings
        .assignments
        .iter()
        .any(|a| a.section == "Service" && a.key == "ExecStart" && !a.value.is_empty());
    let loaded = settings.fatal.is_empty() && has_exec;
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

fn unit_findings(u: &AuditedUnit) -> Vec<Finding> {
    let mut out = Vec::new();
    if !u.report.loaded {
        let mut why = u.settings.fatal.clone();
        if !u
            .settings
            .assignments
            .iter()
            .any(|a| a.key == "ExecStart" && !a.value.is_empty())
        {
            why.push("no ExecStart=".into());
        }
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

/// Run rip-audit over parsed arguments.
pub fn run(args: &cli::Cli, stdin: impl Read, mut stdout: impl Write) -> anyhow::Result<Exit> {
    let root = args.system.root();
    let mut all_ok = true;
    if !args.units.is_empty() {
        let mut results = Vec::new();
        for path in &args.units {
            let audited = audit_unit_file(&root, path)
                .with_context(|| format!("cannot audit {path:?}"))?;
            results.push(audited);
        }
        for u in results {
            let mut res = empty_result(args);
            res.findings = unit_findings(&u);
            res.unit = Some(u.report);
            let res = finish(args, res);
            all_ok &= res.ok;
            let line = serde_json::json!({ KEY: res });
            serde_json::to_writer(&mut stdout, &line)?;
            stdout.write_all(b"\n")?;
        }
        return Ok(if all_ok { Exit::Ok } else { Exit::Negative });
    }
    let records = args.input.records(stdin)?;
    for r in &records {
        let path: PathBuf = root.join(args.unit_dir.join(format!("{}.service", r.spec.name)));
        let mut res = empty_result(args);
        if path.exists() {
            let u = audit_unit_file(&root, &path)?;
            res.findings = unit_findings(&u);
            res.unit = Some(u.report);
        }
        let res = finish(args, res);
        all_ok &= res.ok;
        rip_core::write_record(&mut stdout, r, KEY, &res)?;
    }
    Ok(if all_ok { Exit::Ok } else { Exit::Negative })
}
