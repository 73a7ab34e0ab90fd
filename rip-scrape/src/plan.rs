//! From validated app specs to scrape targets: job names, addresses, label
//! sets, and the fleet checks that must pass before anything is written.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use rip_core::{AppSpec, InputError, Record};

use crate::cli::{HostLabel, InstanceLabel, JobMode};

/// Ports Prometheus and its companions listen on by default: the server
/// (9090), Pushgateway (9091), 9092 (kept free by the exporter port
/// allocations), Alertmanager (9093) and node_exporter (9100).
pub const RESERVED_PORTS: [u16; 5] = [9090, 9091, 9092, 9093, 9100];

/// Metrics path Prometheus uses when a target does not say otherwise.
pub const DEFAULT_METRICS_PATH: &str = "/metrics";

/// How the run shapes jobs and labels (from the command line).
#[derive(Debug, Clone)]
pub struct Settings {
    /// One job or one per app.
    pub jobs: JobMode,
    /// Job name with [`JobMode::One`].
    pub job_name: String,
    /// Job name prefix with [`JobMode::PerApp`].
    pub job_prefix: String,
    /// When to add `host`.
    pub host_label: HostLabel,
    /// Name of the local machine (for `host` of local apps).
    pub local_host: String,
    /// What `instance` holds.
    pub instance: InstanceLabel,
    /// Whether Prometheus' default ports only warn.
    pub allow_reserved_ports: bool,
}

/// One app's scrape target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Position of the app's record in the input (0-based).
    pub record: usize,
    /// App name.
    pub app: String,
    /// Job the target belongs to.
    pub job: String,
    /// `host:port` Prometheus scrapes.
    pub address: String,
    /// Host part of [`Target::address`], unbracketed.
    pub addr_host: String,
    /// Metrics port.
    pub port: u16,
    /// HTTP path of the metrics endpoint.
    pub metrics_path: String,
    /// Labels written into the target group (may hold `__metrics_path__`).
    pub group_labels: BTreeMap<String, String>,
    /// Labels of the scraped series' target after Prometheus adds `job` and
    /// `instance`: what must be unique within a job.
    pub final_labels: BTreeMap<String, String>,
}

/// The planned targets of a fleet.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// One target per app with a metrics port, in input order.
    pub targets: Vec<Target>,
    /// Records (0-based) of apps without a metrics port.
    pub skipped: Vec<usize>,
    /// Job names in first-use order, each once.
    pub jobs: Vec<String>,
    /// Non-fatal findings: (record, message).
    pub warnings: Vec<(usize, String)>,
}

impl Plan {
    /// Targets of one job.
    pub fn targets_of<'a>(&'a self, job: &'a str) -> impl Iterator<Item = &'a Target> + 'a {
        self.targets.iter().filter(move |t| t.job == job)
    }

    /// The target of a record, if it has one.
    pub fn target_of(&self, record: usize) -> Option<&Target> {
        self.targets.iter().find(|t| t.record == record)
    }
}

/// Whether `s` may be a job name (it also names a file in rip.d/).
pub fn is_job_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The address Prometheus scrapes for `spec` and the host that address
/// reaches: a loopback address reaches the machine Prometheus runs on
/// (`local`); any other address is taken to be the app's own host.
/// `0.0.0.0` and `::` are bind-all addresses, not scrape targets, so they
/// count as unset.
pub fn scrape_host(spec: &AppSpec) -> Option<(String, String)> {
    let m = spec.metrics.as_ref()?;
    let ip = m
        .addr
        .as_deref()
        .and_then(|a| a.parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_unspecified());
    Some(match ip {
        Some(ip) => {
            let reaches = if ip.is_loopback() {
                "local".to_owned()
            } else {
                spec.host.clone()
            };
            (ip.to_string(), reaches)
        }
        None if spec.host == "local" => ("127.0.0.1".to_owned(), "local".to_owned()),
        None => (spec.host.clone(), spec.host.clone()),
    })
}

/// `host:port`, with brackets around an IPv6 address.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn finding(records: &[Record], i: usize, field: &str, code: &str, msg: String) -> InputError {
    records[i].error(field, format!("{code}: {msg}"))
}

/// Every port an app uses, with the field that declares it.
fn ports_of(spec: &AppSpec) -> Vec<(u16, String)> {
    let mut out: Vec<(u16, String)> = spec
        .listen
        .iter()
        .enumerate()
        .map(|(j, l)| (l.port, format!("listen[{j}].port")))
        .collect();
    if let Some(m) = &spec.metrics {
        out.push((m.port, "metrics.port".to_owned()));
    }
    out
}

/// Build the targets of `records` and run every fleet check. Returns all
/// errors at once; nothing may be written when there is any.
pub fn plan(records: &[Record], s: &Settings) -> Result<Plan, Vec<InputError>> {
    let mut errors = Vec::new();
    let mut out = Plan::default();
    // Apps that are not scraped do not decide the shape of the labels.
    let multi_host = records
        .iter()
        .any(|r| r.spec.host != "local" && r.spec.metrics.is_some());
    let with_host = match s.host_label {
        HostLabel::Auto => multi_host,
        HostLabel::Always => true,
        HostLabel::Never => false,
    };

    // Per-app rules: reserved ports, empty label values.
    for (i, r) in records.iter().enumerate() {
        for (port, field) in ports_of(&r.spec) {
            if RESERVED_PORTS.contains(&port) {
                let msg = format!(
                    "port {port} is a Prometheus default (9090-9093 Prometheus, \
                     Pushgateway, Alertmanager; 9100 node_exporter); pick another \
                     or pass --allow-reserved-ports"
                );
                if s.allow_reserved_ports {
                    out.warnings.push((i, format!("field {field:?}: {msg}")));
                } else {
                    errors.push(finding(records, i, &field, "SCRAPE_RESERVED_PORT", msg));
                }
            }
        }
        for (k, v) in &r.spec.labels {
            if v.is_empty() {
                errors.push(finding(
                    records,
                    i,
                    &format!("labels.{k}"),
                    "SCRAPE_EMPTY_LABEL",
                    "an empty label value means no label to Prometheus; drop it or give a value"
                        .to_owned(),
                ));
            }
        }
    }

    // Targets.
    for (i, r) in records.iter().enumerate() {
        let spec = &r.spec;
        let (Some(m), Some((addr_host, _))) = (&spec.metrics, scrape_host(spec)) else {
            out.skipped.push(i);
            continue;
        };
        let job = match s.jobs {
            JobMode::One => s.job_name.clone(),
            JobMode::PerApp => format!("{}{}", s.job_prefix, spec.name),
        };
        let address = join_host_port(&addr_host, m.port);
        let mut group = spec.labels.clone();
        group.insert("app".into(), spec.name.clone());
        if with_host {
            let host = if spec.host == "local" {
                s.local_host.clone()
            } else {
                spec.host.clone()
            };
            group.insert("host".into(), host);
        }
        if s.instance == InstanceLabel::App {
            group.insert("instance".into(), spec.name.clone());
        }
        if m.path != DEFAULT_METRICS_PATH {
            group.insert("__metrics_path__".into(), m.path.clone());
        }
        let mut fin: BTreeMap<String, String> = group
            .iter()
            .filter(|(k, _)| !k.starts_with("__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        fin.insert("job".into(), job.clone());
        fin.entry("instance".into())
            .or_insert_with(|| address.clone());
        if !out.jobs.contains(&job) {
            out.jobs.push(job.clone());
        }
        out.targets.push(Target {
            record: i,
            app: spec.name.clone(),
            job,
            address,
            addr_host,
            port: m.port,
            metrics_path: m.path.clone(),
            group_labels: group,
            final_labels: fin,
        });
    }

    // The one job exists even with no target, so its file is `[]` and
    // prometheus.yml keeps a stable job list.
    if s.jobs == JobMode::One && out.jobs.is_empty() {
        out.jobs.push(s.job_name.clone());
    }

    errors.extend(check_targets(records, &out.targets));
    for (i, msg) in label_set_collisions(&out.targets) {
        errors.push(finding(
            records,
            i,
            "labels",
            "SCRAPE_LABELSET_COLLISION",
            msg,
        ));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Scrape addresses used twice, and targets that reach a port another app
/// uses on the host the address reaches. rip-core already rejects ports
/// shared on one declared host; this covers what crosses hosts (a remote
/// app scraped through a loopback tunnel, two hosts given one address).
fn check_targets(records: &[Record], targets: &[Target]) -> Vec<InputError> {
    let mut errors = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for t in targets {
        if let Some(&prev) = seen.get(t.address.as_str()) {
            errors.push(finding(
                records,
                t.record,
                "metrics.port",
                "SCRAPE_DUPLICATE_TARGET",
                format!(
                    "target {} is already the metrics target of app {:?}",
                    t.address, records[prev].spec.name
                ),
            ));
            continue;
        }
        seen.insert(&t.address, t.record);

        let Some((_, reaches)) = scrape_host(&records[t.record].spec) else {
            continue;
        };
        for (j, other) in records.iter().enumerate() {
            if j == t.record || other.spec.host != reaches {
                continue;
            }
            // Two metrics targets at one address are reported above.
            let same_target = |field: &str| {
                field == "metrics.port"
                    && targets
                        .iter()
                        .any(|o| o.record == j && o.address == t.address)
            };
            if let Some((port, field)) = ports_of(&other.spec)
                .into_iter()
                .find(|(p, f)| *p == t.port && !same_target(f))
            {
                errors.push(finding(
                    records,
                    t.record,
                    "metrics.addr",
                    "SCRAPE_PORT_CLASH",
                    format!(
                        "target {} reaches host {reaches:?}, where port {port} is \
                         used by app {:?} ({field})",
                        t.address, other.spec.name
                    ),
                ));
            }
        }
    }
    errors
}

/// Targets whose final label set (job, instance and every target label)
/// equals an earlier target's: two scrape loops would write one series.
/// Returns (record, message) for each later target of a colliding pair.
pub fn label_set_collisions(targets: &[Target]) -> Vec<(usize, String)> {
    let mut seen: HashMap<&BTreeMap<String, String>, &Target> = HashMap::new();
    let mut out = Vec::new();
    for t in targets {
        if let Some(prev) = seen.get(&t.final_labels) {
            out.push((
                t.record,
                format!(
                    "target {} of app {:?} has the same labels as target {} of app {:?} \
                     in job {:?}: {:?}",
                    t.address, t.app, prev.address, prev.app, t.job, t.final_labels
                ),
            ));
        } else {
            seen.insert(&t.final_labels, t);
        }
    }
    out
}

/// Job names that occur more than once in `names`, each reported once.
pub fn duplicate_jobs<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    let mut order = Vec::new();
    for n in names {
        let c = count.entry(n).or_insert(0);
        *c += 1;
        if *c == 2 {
            order.push(n);
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(json: &str) -> Vec<Record> {
        rip_core::io::parse_records(json.as_bytes()).unwrap()
    }

    fn settings() -> Settings {
        Settings {
            jobs: JobMode::One,
            job_name: "rip".into(),
            job_prefix: String::new(),
            host_label: HostLabel::Auto,
            local_host: "vm1".into(),
            instance: InstanceLabel::Address,
            allow_reserved_ports: false,
        }
    }

    fn codes(errors: &[InputError]) -> Vec<String> {
        errors
            .iter()
            .map(|e| e.message.split(':').next().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn local_app_gets_loopback_target_and_app_label() {
        let r = recs(r#"{"name":"app1","metrics":{"port":9101}}"#);

        let p = plan(&r, &settings()).unwrap();

        assert_eq!(p.targets[0].address, "127.0.0.1:9101");
        assert_eq!(p.targets[0].job, "rip");
        assert_eq!(p.targets[0].final_labels["app"], "app1");
        assert_eq!(p.targets[0].final_labels["instance"], "127.0.0.1:9101");
        assert!(!p.targets[0].final_labels.contains_key("host"));
    }

    #[test]
    fn remote_app_is_scraped_by_host_name_and_adds_host_labels() {
        let r = recs(
            r#"{"name":"a","metrics":{"port":9101}}
               {"name":"b","host":"web2.example","metrics":{"port":9101}}"#,
        );

        let p = plan(&r, &settings()).unwrap();

        assert_eq!(p.targets[1].address, "web2.example:9101");
        assert_eq!(p.targets[0].final_labels["host"], "vm1");
        assert_eq!(p.targets[1].final_labels["host"], "web2.example");
    }

    #[test]
    fn a_remote_app_without_metrics_adds_no_host_label() {
        let r = recs(
            r#"{"name":"a","metrics":{"port":9101}}
               {"name":"b","host":"web2.example"}"#,
        );

        let p = plan(&r, &settings()).unwrap();

        assert!(!p.targets[0].final_labels.contains_key("host"));
    }

    #[test]
    fn host_label_never_and_always() {
        let r = recs(r#"{"name":"a","metrics":{"port":9101}}"#);
        let mut s = settings();

        s.host_label = HostLabel::Always;
        let always = plan(&r, &s).unwrap();
        s.host_label = HostLabel::Never;
        let never = plan(&r, &s).unwrap();

        assert_eq!(always.targets[0].final_labels["host"], "vm1");
        assert!(!never.targets[0].final_labels.contains_key("host"));
    }

    #[test]
    fn metrics_addr_wins_and_ipv6_is_bracketed() {
        let r = recs(r#"{"name":"a","metrics":{"port":9101,"addr":"::1"}}"#);

        let p = plan(&r, &settings()).unwrap();

        assert_eq!(p.targets[0].address, "[::1]:9101");
    }

    #[test]
    fn bind_all_metrics_addr_counts_as_unset() {
        let r = recs(r#"{"name":"a","metrics":{"port":9101,"addr":"0.0.0.0"}}"#);

        let p = plan(&r, &settings()).unwrap();

        assert_eq!(p.targets[0].address, "127.0.0.1:9101");
    }

    #[test]
    fn per_app_jobs_are_prefixed_app_names() {
        let r = recs(
            r#"{"name":"app-1","metrics":{"port":9101}}
               {"name":"app_1","metrics":{"port":9102}}"#,
        );
        let mut s = settings();
        s.jobs = JobMode::PerApp;
        s.job_prefix = "rip-".into();

        let p = plan(&r, &s).unwrap();

        assert_eq!(p.jobs, vec!["rip-app-1", "rip-app_1"]);
    }

    #[test]
    fn app_without_metrics_is_skipped() {
        let r = recs(r#"{"name":"a"} {"name":"b","metrics":{"port":9102}}"#);

        let p = plan(&r, &settings()).unwrap();

        assert_eq!(p.skipped, vec![0]);
        assert_eq!(p.targets.len(), 1);
    }

    #[test]
    fn reserved_ports_fail_on_listen_and_metrics() {
        let r = recs(r#"{"name":"a","listen":[{"port":9090}],"metrics":{"port":9100}}"#);

        let errs = plan(&r, &settings()).unwrap_err();

        assert_eq!(codes(&errs), vec!["SCRAPE_RESERVED_PORT"; 2]);
        assert_eq!(errs[0].field, "listen[0].port");
        assert_eq!(errs[1].field, "metrics.port");
    }

    #[test]
    fn reserved_ports_only_warn_when_allowed() {
        let r = recs(r#"{"name":"a","metrics":{"port":9093}}"#);
        let mut s = settings();
        s.allow_reserved_ports = true;

        let p = plan(&r, &s).unwrap();

        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].1.contains("9093"));
    }

    #[test]
    fn non_reserved_neighbours_pass() {
        for port in [9089, 9094, 9099, 9101] {
            let r = recs(&format!(r#"{{"name":"a","metrics":{{"port":{port}}}}}"#));

            assert!(plan(&r, &settings()).is_ok(), "port {port}");
        }
    }

    #[test]
    fn same_address_on_two_hosts_is_a_duplicate_target() {
        let r = recs(
            r#"{"name":"a","host":"h1","metrics":{"port":9101,"addr":"10.0.0.5"}}
               {"name":"b","host":"h2","metrics":{"port":9101,"addr":"10.0.0.5"}}"#,
        );

        let errs = plan(&r, &settings()).unwrap_err();

        assert_eq!(codes(&errs), vec!["SCRAPE_DUPLICATE_TARGET"]);
        assert_eq!(errs[0].app.as_deref(), Some("b"));
    }

    #[test]
    fn tunnelled_remote_metrics_clash_with_a_local_listen_port() {
        let r = recs(
            r#"{"name":"a","listen":[{"port":9105}]}
               {"name":"b","host":"h2","metrics":{"port":9105,"addr":"127.0.0.1"}}"#,
        );

        let errs = plan(&r, &settings()).unwrap_err();

        assert_eq!(codes(&errs), vec!["SCRAPE_PORT_CLASH"]);
        assert_eq!(errs[0].field, "metrics.addr");
        assert!(errs[0].message.contains("listen[0].port"));
    }

    #[test]
    fn empty_label_value_is_refused() {
        let r = recs(r#"{"name":"a","metrics":{"port":9101},"labels":{"team":""}}"#);

        let errs = plan(&r, &settings()).unwrap_err();

        assert_eq!(codes(&errs), vec!["SCRAPE_EMPTY_LABEL"]);
        assert_eq!(errs[0].field, "labels.team");
    }

    #[test]
    fn custom_path_goes_into_metrics_path_label_only() {
        let r = recs(r#"{"name":"a","metrics":{"port":9101,"path":"/x/m"}}"#);

        let p = plan(&r, &settings()).unwrap();

        assert_eq!(p.targets[0].group_labels["__metrics_path__"], "/x/m");
        assert!(!p.targets[0].final_labels.contains_key("__metrics_path__"));
    }

    #[test]
    fn equal_final_label_sets_collide() {
        let r = recs(r#"{"name":"a","metrics":{"port":9101}}"#);
        let t = plan(&r, &settings()).unwrap().targets.remove(0);
        let mut u = t.clone();
        u.address = "127.0.0.1:9102".into();
        u.record = 1;

        let found = label_set_collisions(&[t.clone(), u.clone()]);

        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 1);
        u.final_labels.insert("instance".into(), u.address.clone());
        assert!(label_set_collisions(&[t, u]).is_empty());
    }

    #[test]
    fn instance_app_keeps_label_sets_distinct() {
        let r = recs(
            r#"{"name":"a","metrics":{"port":9101}}
               {"name":"b","metrics":{"port":9102}}"#,
        );
        let mut s = settings();
        s.instance = InstanceLabel::App;

        let p = plan(&r, &s).unwrap();

        assert_eq!(p.targets[1].final_labels["instance"], "b");
        assert!(label_set_collisions(&p.targets).is_empty());
    }

    #[test]
    fn duplicate_jobs_are_reported_once() {
        assert_eq!(duplicate_jobs(["a", "b", "a", "a"]), vec!["a"]);
        assert!(duplicate_jobs(["a", "b"]).is_empty());
    }

    #[test]
    fn job_name_rule() {
        assert!(is_job_name("rip-apps_1.x"));
        for bad in ["", ".hidden", "a/b", "a b", "é"] {
            assert!(!is_job_name(bad), "{bad:?}");
        }
    }
}
