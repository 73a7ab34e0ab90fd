//! `--explain`: the SSH tunnel that lets a browser or a Prometheus on
//! another machine reach an app's metrics port, which the app binds on
//! loopback of its own host.

use std::collections::BTreeSet;
use std::net::IpAddr;

use rip_core::AppSpec;
use serde::Serialize;

use crate::plan::{join_host_port, Target};

/// One tunnel, as printed and as reported in the JSON output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tunnel {
    /// The command to run on the machine that wants to reach the port.
    pub command: String,
    /// Port opened on that machine.
    pub local_port: u16,
    /// The metrics page through the tunnel.
    pub url: String,
}

/// Where the app serves metrics on its own host: the given metrics address
/// unless it is a bind-all one, else loopback.
fn remote_addr(spec: &AppSpec) -> String {
    spec.metrics
        .as_ref()
        .and_then(|m| m.addr.as_deref())
        .and_then(|a| a.parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_unspecified())
        .map_or_else(|| "127.0.0.1".to_owned(), |ip| ip.to_string())
}

/// The tunnels of `targets`, in order. Each local port is the app's port
/// unless an earlier tunnel took it; then the first free port from
/// port + 10000 up (or from 10000 when that overflows).
pub fn tunnels(
    targets: &[&Target],
    spec_of: impl Fn(usize) -> AppSpec,
    local_host: &str,
    ssh_user: Option<&str>,
) -> Vec<Tunnel> {
    let mut used = BTreeSet::new();
    let mut out = Vec::new();
    for t in targets {
        let spec = spec_of(t.record);
        let mut local = t.port;
        if used.contains(&local) {
            let start = t.port.checked_add(10_000).unwrap_or(10_000);
            local = (start..=u16::MAX)
                .chain(1024..start)
                .find(|p| !used.contains(p))
                .unwrap_or(t.port);
        }
        used.insert(local);

        let host = if spec.host == "local" {
            local_host
        } else {
            spec.host.as_str()
        };
        let dest = match ssh_user {
            Some(u) => format!("{u}@{host}"),
            None => host.to_owned(),
        };
        let remote = join_host_port(&remote_addr(&spec), t.port);
        out.push(Tunnel {
            command: format!("ssh -N -L {local}:{remote} {dest}"),
            local_port: local,
            url: format!("http://127.0.0.1:{local}{}", t.metrics_path),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{HostLabel, InstanceLabel, JobMode};
    use crate::plan::{plan, Settings};

    fn run(json: &str, user: Option<&str>) -> Vec<Tunnel> {
        let records = rip_core::io::parse_records(json.as_bytes()).unwrap();
        let s = Settings {
            jobs: JobMode::One,
            job_name: "rip".into(),
            job_prefix: String::new(),
            host_label: HostLabel::Auto,
            local_host: "vm1".into(),
            instance: InstanceLabel::Address,
            allow_reserved_ports: false,
        };
        let p = plan(&records, &s).unwrap();
        let targets: Vec<&Target> = p.targets.iter().collect();
        tunnels(&targets, |i| records[i].spec.clone(), "vm1", user)
    }

    #[test]
    fn local_app_tunnels_to_this_machine() {
        let t = run(r#"{"name":"a","metrics":{"port":9101}}"#, Some("ops"));

        assert_eq!(t[0].command, "ssh -N -L 9101:127.0.0.1:9101 ops@vm1");
        assert_eq!(t[0].url, "http://127.0.0.1:9101/metrics");
    }

    #[test]
    fn same_port_on_two_hosts_gets_another_local_port() {
        let t = run(
            r#"{"name":"a","host":"h1","metrics":{"port":9101}}
               {"name":"b","host":"h2","metrics":{"port":9101,"path":"/m"}}"#,
            None,
        );

        assert_eq!(t[0].command, "ssh -N -L 9101:127.0.0.1:9101 h1");
        assert_eq!(t[1].command, "ssh -N -L 19101:127.0.0.1:9101 h2");
        assert_eq!(t[1].url, "http://127.0.0.1:19101/m");
    }

    #[test]
    fn ipv6_metrics_addr_is_bracketed() {
        let t = run(r#"{"name":"a","metrics":{"port":9101,"addr":"::1"}}"#, None);

        assert_eq!(t[0].command, "ssh -N -L 9101:[::1]:9101 vm1");
    }
}
