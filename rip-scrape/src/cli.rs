//! Command-line definition of rip-scrape: where the Prometheus files go, how
//! jobs and labels are shaped, and the optional checks.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use rip_core::{InputArgs, SystemArgs};

/// Write the Prometheus scrape configuration of a fleet of apps
///
/// Reads app specs (NDJSON or a JSON array on stdin, or one app from flags)
/// and writes, under --root, a complete prometheus.yml whose rip-managed jobs
/// read file_sd target files in OUT_DIR/rip.d/. Target files change without
/// a Prometheus reload; jobs added or removed need one. Every app with a
/// metrics port becomes one target labelled app=NAME (plus host=HOST in
/// fleets of several machines and the spec's extra labels). Each input
/// record is printed back with a "rip_scrape" result.
#[derive(Debug, Parser)]
#[command(name = "rip-scrape", version)]
pub struct Cli {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub system: SystemArgs,

    /// Directory of prometheus.yml and rip.d/, a path of the target system
    ///
    /// Taken relative to --root. The target files go to OUT_DIR/rip.d/ and
    /// prometheus.yml references them by the relative path rip.d/FILE.
    #[arg(long, value_name = "DIR", default_value = "/etc/prometheus")]
    pub out_dir: PathBuf,

    /// One scrape job for the whole fleet, or one job per app
    #[arg(long, value_enum, default_value_t = JobMode::One)]
    pub jobs: JobMode,

    /// Name of the job with --jobs one
    ///
    /// Letters, digits, '_', '.' and '-' only, not starting with '.'; it
    /// also names the target file rip.d/JOB.json (or .yml).
    #[arg(long, value_name = "JOB", default_value = "rip")]
    pub job_name: String,

    /// Prefix of every job name with --jobs per-app (job = PREFIX + app name)
    #[arg(long, value_name = "PREFIX", default_value = "")]
    pub job_prefix: String,

    /// When targets get a host label (the app's host, or --local-host)
    #[arg(long, value_enum, default_value_t = HostLabel::Auto)]
    pub host_label: HostLabel,

    /// Name of this machine, for host labels and SSH tunnels of local apps
    ///
    /// Default: the first line of ROOT/etc/hostname; else the host label
    /// is "local" and tunnels name the placeholder SERVER.
    #[arg(long, value_name = "NAME")]
    pub local_host: Option<String>,

    /// What the instance label holds
    ///
    /// address: Prometheus' default, the scraped host:port. app: the app
    /// name (unique in a fleet, so label sets stay distinct).
    #[arg(long, value_enum, default_value_t = InstanceLabel::Address)]
    pub instance: InstanceLabel,

    /// Format of the target files (Prometheus reads both)
    #[arg(long, value_enum, default_value_t = SdFormat::Json)]
    pub sd_format: SdFormat,

    /// Scrape interval of a new prometheus.yml
    ///
    /// Written as global.scrape_interval and evaluation_interval (and as
    /// scrape_timeout when below 10s) when prometheus.yml has no global
    /// section yet; an existing global section is kept as it is.
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    pub scrape_interval: String,

    /// How often Prometheus re-reads the target files
    ///
    /// refresh_interval of the file_sd configs; a fallback only, as
    /// Prometheus also watches the files with inotify.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub refresh_interval: String,

    /// Write a fresh prometheus.yml instead of merging into an existing one
    ///
    /// By default the jobs of an existing prometheus.yml that do not read
    /// rip.d/ are kept (comments are lost when the file changes).
    #[arg(long, conflicts_with = "no_config")]
    pub replace: bool,

    /// Write only the target files; leave prometheus.yml alone
    #[arg(long)]
    pub no_config: bool,

    /// Warn instead of failing when an app uses a port of Prometheus
    ///
    /// Ports 9090-9093 (Prometheus, Pushgateway, Alertmanager) and 9100
    /// (node_exporter), as listen or metrics port of any app.
    #[arg(long)]
    pub allow_reserved_ports: bool,

    /// Run `promtool check config` on the new files before writing them
    ///
    /// Fails (exit 2) when promtool is not in PATH or rejects the files.
    #[arg(long)]
    pub check: bool,

    /// Print the SSH tunnel command for each app's metrics port on stderr
    #[arg(long)]
    pub explain: bool,

    /// User for the SSH tunnel commands of --explain (USER@HOST)
    #[arg(long, value_name = "USER")]
    pub ssh_user: Option<String>,
}

/// How apps map to scrape jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JobMode {
    /// One job (--job-name) with every app as a target.
    One,
    /// One job per app, named PREFIX + app name.
    PerApp,
}

/// When targets carry a `host` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostLabel {
    /// Only in fleets where some app's host is not `local`.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// What the `instance` label holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InstanceLabel {
    /// The scraped address (Prometheus' default).
    Address,
    /// The app name.
    App,
}

/// Format of the file_sd target files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SdFormat {
    /// `rip.d/JOB.json`.
    Json,
    /// `rip.d/JOB.yml`.
    Yaml,
}

impl SdFormat {
    /// File extension of the target files.
    pub fn ext(self) -> &'static str {
        match self {
            SdFormat::Json => "json",
            SdFormat::Yaml => "yml",
        }
    }
}
