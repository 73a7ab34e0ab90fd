//! Hardening taken away after the reviewed unit file: drop-ins that make a
//! check worse than the unit file alone, writable paths outside the app's
//! own tree, and a score above the target rip-unit designed the unit for.

use std::path::{Component, Path, PathBuf};

use rip_core::{AppSpec, Root};
use serde_json::json;

use crate::finding::{Finding, Severity};
use crate::lint::path_words;
use crate::AuditedUnit;

/// The directive names a check row reads (`User=/DynamicUser=` gives
/// `User` and `DynamicUser`; `SystemCallFilter=~@clock` gives
/// `SystemCallFilter`).
fn row_keys(name: &str) -> Vec<&str> {
    name.split('/')
        .filter_map(|part| part.split('=').next())
        .filter(|k| !k.is_empty())
        .collect()
}

/// UNIT_DROPIN_WEAKENS: one finding per check whose badness is higher with
/// the drop-ins applied than for the unit file alone.
pub fn dropins_weaken(u: &AuditedUnit, root: &Root) -> Vec<Finding> {
    let Some(alone) = &u.fragment_checks else {
        return Vec::new();
    };
    let fragment = &u.fragment;
    let dropin_lines: Vec<_> = u
        .settings
        .assignments
        .iter()
        .filter(|a| *a.file != **fragment)
        .collect();
    let mut out = Vec::new();
    for (row, base) in u.report.checks.iter().zip(alone) {
        let (with, without) = (row.badness.unwrap_or(0), base.badness.unwrap_or(0));
        if with <= without {
            continue;
        }
        let keys = row_keys(row.name);
        let mut directives: Vec<_> = dropin_lines
            .iter()
            .filter(|a| keys.contains(&a.key.as_str()))
            .collect();
        if directives.is_empty() {
            // An implied setting (e.g. DynamicUser= turning others on):
            // show every drop-in line rather than none.
            directives = dropin_lines.iter().collect();
        }
        let directives: Vec<_> = directives
            .iter()
            .map(|a| {
                json!({
                    "file": root.strip(&a.file).display().to_string(),
                    "line": a.line,
                    "directive": format!("{}={}", a.key, a.value),
                })
            })
            .collect();
        out.push(Finding::new(
            "UNIT_DROPIN_WEAKENS",
            Severity::High,
            format!(
                "a drop-in weakens {} of {}: badness {without} in the unit file, {with} with the drop-ins",
                row.name, u.report.name
            ),
            json!({
                "json_field": row.json_field,
                "badness_unit_file": without,
                "badness": with,
                "range": row.range,
                "dropins": u.report.dropins,
                "directives": directives,
            }),
            "remove the directive from the drop-in, or change the app spec and let rip-unit rewrite the unit",
        ));
    }
    out
}

/// `p` with `.` and `..` resolved lexically (`/home/app1/../../etc` is
/// `/etc`), so that a prefix test cannot be fooled.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// UNIT_WRITABLE_OUTSIDE_APP: a `ReadWritePaths=` or `BindPaths=` source
/// outside the app's home and the spec's `rw_paths`.
pub fn writable_outside(u: &AuditedUnit, spec: &AppSpec, root: &Root) -> Vec<Finding> {
    let mut allowed: Vec<PathBuf> = vec![normalize(&spec.home)];
    allowed.extend(spec.writable_paths().iter().map(|p| normalize(p)));
    let mut out = Vec::new();
    for key in ["ReadWritePaths", "BindPaths"] {
        for (a, w) in path_words(&u.settings, key) {
            let mut p = w.trim_start_matches(['-', '+']);
            if key == "BindPaths" {
                p = p.split(':').next().unwrap_or(p);
            }
            // Specifiers are resolved (see `path_words`); one that depends
            // on the machine and starts the word leaves it unchecked.
            if !p.starts_with('/') {
                continue;
            }
            let n = normalize(Path::new(p));
            if allowed.iter().any(|ok| n.starts_with(ok)) {
                continue;
            }
            out.push(Finding::new(
                "UNIT_WRITABLE_OUTSIDE_APP",
                Severity::High,
                format!(
                    "{key}={p} lets {} write outside its home and rw_paths",
                    spec.name
                ),
                json!({
                    "file": root.strip(&a.file).display().to_string(),
                    "line": a.line,
                    "directive": key,
                    "path": p,
                    "allowed": allowed.iter().map(|x| x.display().to_string()).collect::<Vec<_>>(),
                }),
                format!("remove {p} from {key}=, or add it to the app's rw_paths if it must be writable"),
            ));
        }
    }
    out
}

/// UNIT_OVER_EXPOSURE_TARGET: the score is above `rip_unit.exposure_target`
/// (0.0-10.0), the bound the generated unit was designed for.
pub fn over_target(u: &AuditedUnit, target: f64) -> Option<Finding> {
    let score = u.report.score?;
    if !target.is_finite() || target < 0.0 {
        return None;
    }
    // The target is given with one decimal, as systemd prints exposure.
    let bound = (target * 10.0).round();
    if (score as f64) <= bound {
        return None;
    }
    Some(Finding::new(
        "UNIT_OVER_EXPOSURE_TARGET",
        Severity::High,
        format!(
            "{} scores {}.{} (systemd's exposure), above rip-unit's target {target:.1}",
            u.report.name,
            score / 10,
            score % 10
        ),
        json!({"exposure": u.report.exposure, "score": score, "exposure_target": target,
               "failing": u.report.checks.iter()
                   .filter(|r| r.badness.is_some_and(|b| b > 0))
                   .map(|r| r.json_field).collect::<Vec<_>>()}),
        "find what changed since rip-unit wrote the unit (drop-ins, edits) and run rip-unit again",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotdot_cannot_escape_the_home() {
        assert_eq!(
            normalize(Path::new("/home/app1/../../etc")),
            PathBuf::from("/etc")
        );
        assert!(normalize(Path::new("/home/app1/./data")).starts_with("/home/app1"));
    }

    #[test]
    fn row_keys_split_alternatives() {
        assert_eq!(row_keys("User=/DynamicUser="), ["User", "DynamicUser"]);
        assert_eq!(row_keys("SystemCallFilter=~@clock"), ["SystemCallFilter"]);
    }
}
