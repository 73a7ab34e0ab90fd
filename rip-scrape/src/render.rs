//! The files rip-scrape writes, built by serializers only: the file_sd
//! target lists (JSON or YAML) and prometheus.yml, merged into an existing
//! one when asked.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use serde::Serialize;
use serde_yaml_ng::{Mapping, Value};

use crate::cli::SdFormat;
use crate::plan::{Plan, Target};

/// Directory of the target files, relative to the output directory. Jobs
/// whose file_sd files all lie in it are the ones rip-scrape manages.
pub const SD_DIR: &str = "rip.d";

/// Name of the configuration file in the output directory.
pub const CONFIG_FILE: &str = "prometheus.yml";

/// Constant comment on top of a generated prometheus.yml (no data in it).
pub const HEADER: &str =
    "# Written by rip-scrape. Jobs that read rip.d/ are regenerated on every\n\
# run; other jobs are kept as they are, comments are not.\n";

/// One file_sd target group: one app.
#[derive(Debug, Serialize)]
struct TargetGroup<'a> {
    targets: [&'a str; 1],
    labels: &'a BTreeMap<String, String>,
}

/// The target file of one job: a list of groups, `[]` when empty.
pub fn sd_contents(targets: &[&Target], format: SdFormat) -> anyhow::Result<Vec<u8>> {
    let groups: Vec<TargetGroup<'_>> = targets
        .iter()
        .map(|t| TargetGroup {
            targets: [t.address.as_str()],
            labels: &t.group_labels,
        })
        .collect();
    let mut out = match format {
        SdFormat::Json => {
            serde_json::to_vec_pretty(&groups).context("cannot encode the target list")?
        }
        SdFormat::Yaml => serde_yaml_ng::to_string(&groups)
            .context("cannot encode the target list")?
            .into_bytes(),
    };
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    Ok(out)
}

/// File name of a job's target file inside [`SD_DIR`].
pub fn sd_file_name(job: &str, format: SdFormat) -> String {
    format!("{job}.{}", format.ext())
}

/// The `global` section of a new prometheus.yml.
#[derive(Debug, Clone, Serialize)]
pub struct Global {
    /// How often targets are scraped.
    pub scrape_interval: String,
    /// Scrape timeout, written only when the interval is below Prometheus'
    /// 10s default (the timeout may not exceed the interval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<String>,
    /// How often rules are evaluated.
    pub evaluation_interval: String,
}

#[derive(Debug, Serialize)]
struct FileSd {
    files: Vec<String>,
    refresh_interval: String,
}

#[derive(Debug, Serialize)]
struct Job {
    job_name: String,
    file_sd_configs: Vec<FileSd>,
}

/// The generated scrape configs, one per job of the plan.
pub fn generated_jobs(
    plan: &Plan,
    format: SdFormat,
    refresh_interval: &str,
) -> anyhow::Result<Vec<Value>> {
    plan.jobs
        .iter()
        .map(|job| {
            let j = Job {
                job_name: job.clone(),
                file_sd_configs: vec![FileSd {
                    files: vec![format!("{SD_DIR}/{}", sd_file_name(job, format))],
                    refresh_interval: refresh_interval.to_owned(),
                }],
            };
            serde_yaml_ng::to_value(&j).context("cannot encode a scrape config")
        })
        .collect()
}

/// Whether a scrape config of an existing file is one rip-scrape manages:
/// it has file_sd configs and every file they list lies in [`SD_DIR`].
pub fn is_managed(job: &Value) -> bool {
    let Some(sds) = job.get("file_sd_configs").and_then(Value::as_sequence) else {
        return false;
    };
    let prefix = format!("{SD_DIR}/");
    !sds.is_empty()
        && sds.iter().all(|sd| {
            sd.get("files")
                .and_then(Value::as_sequence)
                .is_some_and(|files| {
                    !files.is_empty()
                        && files
                            .iter()
                            .all(|f| f.as_str().is_some_and(|f| f.starts_with(&prefix)))
                })
        })
}

/// Job name of a scrape config value.
pub fn job_name(job: &Value) -> Option<&str> {
    job.get("job_name").and_then(Value::as_str)
}

/// A prometheus.yml document and the jobs it kept from the existing file.
#[derive(Debug, Clone)]
pub struct Config {
    /// The whole document.
    pub doc: Value,
    /// Names of the existing jobs kept (not managed by rip-scrape).
    pub kept_jobs: Vec<String>,
}

/// Build prometheus.yml: the existing document (if any) with its managed
/// jobs replaced by `jobs`, or a new one with `global`.
pub fn build_config(
    existing: Option<&Value>,
    jobs: Vec<Value>,
    global: &Global,
) -> anyhow::Result<Config> {
    let mut doc = match existing {
        None | Some(Value::Null) => Mapping::new(),
        Some(Value::Mapping(m)) => m.clone(),
        Some(_) => bail!("the existing configuration is not a YAML mapping"),
    };
    if !doc.contains_key("global") {
        let mut fresh = Mapping::new();
        fresh.insert(
            "global".into(),
            serde_yaml_ng::to_value(global).context("cannot encode the global section")?,
        );
        fresh.extend(doc);
        doc = fresh;
    }

    let mut kept = Vec::new();
    let mut configs = Vec::new();
    match doc.get("scrape_configs") {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(seq)) => {
            for job in seq {
                if !is_managed(job) {
                    kept.push(job_name(job).unwrap_or_default().to_owned());
                    configs.push(job.clone());
                }
            }
        }
        Some(_) => bail!("scrape_configs of the existing configuration is not a list"),
    }
    configs.extend(jobs);
    doc.insert("scrape_configs".into(), Value::Sequence(configs));
    Ok(Config {
        doc: Value::Mapping(doc),
        kept_jobs: kept,
    })
}

/// The bytes of prometheus.yml: [`HEADER`] then the serialized document.
/// TODO(#6): comments of a merged file are lost when it is rewritten;
/// keeping them needs a comment-preserving YAML editor.
pub fn config_bytes(doc: &Value) -> anyhow::Result<Vec<u8>> {
    let body = serde_yaml_ng::to_string(doc).context("cannot encode prometheus.yml")?;
    Ok(format!("{HEADER}{body}").into_bytes())
}

/// Parse a Prometheus duration (`1h30m`, `15s`, `500ms`) into milliseconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut total: u64 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        // "ms" before "m": try the longest unit that matches.
        let (idx, len, mult) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (u, _))| rest.starts_with(u))
            .map(|(i, (u, m))| (i, u.len(), *m))
            .max_by_key(|&(_, len, _)| len)?;
        rest = &rest[len..];
        next_unit = idx + 1;
        total = total.checked_add(n.checked_mul(mult)?)?;
    }
    (total > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{HostLabel, InstanceLabel, JobMode};
    use crate::plan::{plan, Settings};

    fn demo_plan(json: &str, jobs: JobMode) -> Plan {
        let records = rip_core::io::parse_records(json.as_bytes()).unwrap();
        let s = Settings {
            jobs,
            job_name: "rip".into(),
            job_prefix: String::new(),
            host_label: HostLabel::Auto,
            local_host: "vm".into(),
            instance: InstanceLabel::Address,
            allow_reserved_ports: false,
        };
        plan(&records, &s).unwrap()
    }

    fn global() -> Global {
        Global {
            scrape_interval: "15s".into(),
            scrape_timeout: None,
            evaluation_interval: "15s".into(),
        }
    }

    #[test]
    fn empty_target_list_is_brackets_not_nothing() {
        assert_eq!(sd_contents(&[], SdFormat::Json).unwrap(), b"[]\n");
        assert_eq!(sd_contents(&[], SdFormat::Yaml).unwrap(), b"[]\n");
    }

    #[test]
    fn target_group_shape() {
        let p = demo_plan(r#"{"name":"a","metrics":{"port":9101}}"#, JobMode::One);
        let t: Vec<&Target> = p.targets.iter().collect();

        let v: serde_json::Value =
            serde_json::from_slice(&sd_contents(&t, SdFormat::Json).unwrap()).unwrap();

        assert_eq!(
            v,
            serde_json::json!([{"targets": ["127.0.0.1:9101"], "labels": {"app": "a"}}])
        );
    }

    #[test]
    fn yaml_label_values_round_trip() {
        let tricky = [
            "yes",
            "no",
            "on",
            "off",
            "y",
            "N",
            "true",
            "null",
            "~",
            "1",
            "0x10",
            "1e3",
            "010",
            ".inf",
            "- a",
            "a: b",
            "#x",
            " lead",
            "trail ",
            "'q'",
            "\"dq\"",
            "[x]",
            "{y}",
            "&a",
            "*b",
            "!t",
            "%p",
            "@",
            "`",
            "|",
            ">",
            "ä😀",
            "2001-01-01",
            "a\\b",
        ];
        let json = tricky
            .iter()
            .enumerate()
            .map(|(i, v)| format!(r#""l{i}":{}"#, serde_json::to_string(v).unwrap()))
            .collect::<Vec<_>>()
            .join(",");
        let p = demo_plan(
            &format!(r#"{{"name":"a","metrics":{{"port":9101}},"labels":{{{json}}}}}"#),
            JobMode::One,
        );
        let t: Vec<&Target> = p.targets.iter().collect();

        let text = sd_contents(&t, SdFormat::Yaml).unwrap();
        let back: Vec<BTreeMap<String, serde_yaml_ng::Value>> =
            serde_yaml_ng::from_slice(&text).unwrap();

        let labels = back[0]["labels"].as_mapping().unwrap();
        for (i, v) in tricky.iter().enumerate() {
            assert_eq!(labels[format!("l{i}").as_str()].as_str(), Some(*v), "{v:?}");
        }
    }

    #[test]
    fn new_config_has_global_and_one_file_sd_job() {
        let p = demo_plan(r#"{"name":"a","metrics":{"port":9101}}"#, JobMode::One);
        let jobs = generated_jobs(&p, SdFormat::Json, "30s").unwrap();

        let c = build_config(None, jobs, &global()).unwrap();

        let text = String::from_utf8(config_bytes(&c.doc).unwrap()).unwrap();
        assert!(text.starts_with("# Written by rip-scrape."));
        assert_eq!(c.doc["global"]["scrape_interval"].as_str(), Some("15s"));
        let job = &c.doc["scrape_configs"][0];
        assert_eq!(job["job_name"].as_str(), Some("rip"));
        assert_eq!(
            job["file_sd_configs"][0]["files"][0].as_str(),
            Some("rip.d/rip.json")
        );
        assert!(is_managed(job));
    }

    #[test]
    fn merge_keeps_foreign_jobs_and_global_and_replaces_managed_ones() {
        let existing: Value = serde_yaml_ng::from_str(
            "global: {scrape_interval: 1m}\nrule_files: [r.yml]\nscrape_configs:\n\
             - job_name: node\n  static_configs: [{targets: ['localhost:9100']}]\n\
             - job_name: old\n  file_sd_configs: [{files: [rip.d/old.json]}]\n",
        )
        .unwrap();
        let p = demo_plan(r#"{"name":"a","metrics":{"port":9101}}"#, JobMode::PerApp);
        let jobs = generated_jobs(&p, SdFormat::Json, "30s").unwrap();

        let c = build_config(Some(&existing), jobs, &global()).unwrap();

        assert_eq!(c.kept_jobs, vec!["node"]);
        assert_eq!(c.doc["global"]["scrape_interval"].as_str(), Some("1m"));
        assert_eq!(c.doc["rule_files"][0].as_str(), Some("r.yml"));
        let names: Vec<&str> = c.doc["scrape_configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(job_name)
            .collect();
        assert_eq!(names, vec!["node", "a"]);
    }

    #[test]
    fn a_job_reading_other_files_too_is_not_managed() {
        let job: Value = serde_yaml_ng::from_str(
            "job_name: x\nfile_sd_configs: [{files: [rip.d/a.json, other/b.json]}]",
        )
        .unwrap();

        assert!(!is_managed(&job));
    }

    #[test]
    fn merge_refuses_a_non_mapping() {
        let v = Value::Sequence(vec![]);

        assert!(build_config(Some(&v), vec![], &global()).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Some(15_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("1h1ms"), Some(3_600_001));
        for bad in ["", "0s", "15", "s", "1s1m", "1.5s", "-1s", "1 s"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
