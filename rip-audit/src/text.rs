//! `--format text`: a human summary of the audit (the demo prints it).

use std::io::Write;

use crate::cli::Cli;
use crate::AuditResult;

/// One line of the summary and its findings.
#[derive(Debug, Clone)]
pub struct Summary {
    label: String,
    exposure: Option<(f64, &'static str)>,
    ok: bool,
    findings: Vec<(String, &'static str, String, String)>,
    overrides: usize,
}

impl Summary {
    /// Summarise one result.
    pub fn of(label: &str, res: &AuditResult) -> Self {
        Summary {
            label: label.to_owned(),
            exposure: res
                .unit
                .as_ref()
                .and_then(|u| Some((u.exposure?, u.label?))),
            ok: res.ok,
            findings: res
                .findings
                .iter()
                .map(|f| {
                    (
                        f.severity.to_string(),
                        f.code,
                        f.message.clone(),
                        f.fix.clone(),
                    )
                })
                .collect(),
            overrides: res.overrides_systemd_analyze.len(),
        }
    }
}

/// Write the summary table and the findings.
pub fn write(out: &mut impl Write, all: &[Summary], args: &Cli) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<24} {:>8}  {:<9} {:>8}  verdict",
        "unit", "exposure", "label", "findings"
    )?;
    for s in all {
        let (e, l) = match s.exposure {
            Some((e, l)) => (format!("{e:.1}"), l),
            None => ("-".into(), "-"),
        };
        writeln!(
            out,
            "{:<24} {:>8}  {:<9} {:>8}  {}",
            s.label,
            e,
            l,
            s.findings.len(),
            if s.ok { "ok" } else { "FAIL" }
        )?;
    }
    for s in all.iter().filter(|s| !s.findings.is_empty()) {
        writeln!(out, "\n{}:", s.label)?;
        for (sev, code, msg, fix) in &s.findings {
            writeln!(out, "  [{sev}] {code}: {msg}")?;
            writeln!(out, "      fix: {fix}")?;
        }
        if s.overrides > 0 {
            writeln!(
                out,
                "  ({} row(s) of systemd-analyze overridden, see JSON)",
                s.overrides
            )?;
        }
    }
    let failed = all.iter().filter(|s| !s.ok).count();
    writeln!(
        out,
        "\n{} audited, {} failing (threshold {}, fail on {} or worse)",
        all.len(),
        failed,
        args.threshold
            .map(|t| format!("{}.{}", t / 10, t % 10))
            .unwrap_or_else(|| "none".into()),
        args.fail_on
    )
}
