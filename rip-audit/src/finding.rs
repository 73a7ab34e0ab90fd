//! Findings: a stable code, a severity, the evidence and a one-line fix.

use std::fmt;

use clap::ValueEnum;
use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to fix.
    Info,
    /// Minor hardening gap.
    Low,
    /// Weakens isolation.
    Medium,
    /// Breaks isolation or the app.
    High,
    /// Another principal can take over the app or the host.
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        };
        f.write_str(s)
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    /// Stable machine-readable code (see MANUAL.md).
    pub code: &'static str,
    /// Severity.
    pub severity: Severity,
    /// What is wrong, in one sentence.
    pub message: String,
    /// Where and what was seen (file:line, path, mode, owner, ...).
    pub evidence: serde_json::Value,
    /// How to fix it, in one line.
    pub fix: String,
}

impl Finding {
    /// Build a finding.
    pub fn new(
        code: &'static str,
        severity: Severity,
        message: impl Into<String>,
        evidence: serde_json::Value,
        fix: impl Into<String>,
    ) -> Self {
        Finding {
            code,
            severity,
            message: message.into(),
            evidence,
            fix: fix.into(),
        }
    }
}

/// Where rip-audit's verdict differs from systemd-analyze's row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Override {
    /// The row's json_field.
    pub json_field: &'static str,
    /// What systemd-analyze says (`set` of the row).
    pub systemd_set: Option<bool>,
    /// The finding code that contradicts it.
    pub code: &'static str,
    /// Why.
    pub reason: String,
}
