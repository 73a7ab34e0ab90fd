//! rip-unit: writes a hardened systemd unit (and, for the strict profile, a
//! socket unit) for each app spec, fitted to its runtime, and reports what
//! it did, what the host cannot enforce and what the user's drop-ins change.

pub mod cli;
pub mod escape;
pub mod harden;
pub mod host;
pub mod install;
pub mod unit;

use std::io::{Read, Write};

use anyhow::bail;
use rip_core::accounts::Accounts;
use rip_core::{Exit, Profile, Record, Root};
use serde::Serialize;

use harden::{Decisions, Generated, HostFacts, Note};
use install::{FileResult, Outcome, Systemctl, UNIT_DIR};

/// The key this tool adds to each record.
pub const KEY: &str = "rip_unit";

/// Tool name for messages.
const TOOL: &str = "rip-unit";

/// Note codes also printed on stderr: things that break or weaken the unit.
const WARN: &[&str] = &[
    "UNIT_DROPIN_OVERRIDE",
    "UNIT_DROPIN_EXECSTART_DUP",
    "UNIT_SECRET_FILE_PERMS",
    "UNIT_SECRET_FILE_MISSING",
];

/// One drop-in assignment and what it does to the generated unit.
#[derive(Debug, Clone, Serialize)]
pub struct DropInSetting {
    /// Directive.
    pub key: String,
    /// Value as written.
    pub value: String,
    /// `overrides` (replaces our value), `extends` (adds to our list),
    /// `resets` (empties our list) or `adds` (we do not set it).
    pub effect: &'static str,
}

/// One drop-in file in the JSON output.
#[derive(Debug, Clone, Serialize)]
pub struct DropInReport {
    /// Path on the target system.
    pub path: String,
    /// Its assignments.
    pub settings: Vec<DropInSetting>,
}

/// The `rip_unit` value of one record.
#[derive(Debug, Clone, Serialize)]
pub struct UnitResult {
    /// Whether anything changed (files, enablement, running state).
    pub changed: bool,
    /// Whether this was a dry run (nothing written, nothing run).
    pub dry_run: bool,
    /// `install` or `remove`.
    pub action: &'static str,
    /// Hardening profile.
    pub profile: &'static str,
    /// Runtime the unit is fitted to.
    pub runtime: &'static str,
    /// The service unit's path on the target system.
    pub unit: String,
    /// Every file touched or checked.
    pub files: Vec<FileResult>,
    /// What the unit decides (absent for `remove`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardening: Option<Decisions>,
    /// The design bound of the profile's exposure score; rip-audit measures
    /// the real one (systemd-analyze security).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposure_target: Option<f64>,
    /// The user's drop-ins, kept untouched.
    pub drop_ins: Vec<DropInReport>,
    /// Remarks: limits the host cannot enforce, secrets files, drop-ins.
    pub notes: Vec<Note>,
    /// Whether the unit is enabled (symlink present), after this run.
    pub enabled: bool,
    /// Whether the service runs, when a live systemd could be asked.
    pub active: Option<bool>,
    /// Whether systemd must reload its unit files to see this run's state.
    pub needs_daemon_reload: bool,
    /// Whether a running instance still uses the old unit.
    pub needs_restart: bool,
    /// systemctl commands run (or, in a dry run, that would run).
    pub systemctl: Vec<String>,
}

/// What one record will get.
struct Plan {
    generated: Option<Generated>,
    drop_ins: Vec<DropInReport>,
    notes: Vec<Note>,
    /// Foreign unit files to move aside first (`--force`): (path, new path).
    aside: Vec<(String, String)>,
}

fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::Default => "default",
        Profile::Strict => "strict",
    }
}

fn service_path(name: &str) -> String {
    format!("{UNIT_DIR}/{name}.service")
}

fn socket_path(name: &str) -> String {
    format!("{UNIT_DIR}/{name}.socket")
}

/// Directives whose repeated assignments add to a list.
const LIST_KEYS: &[&str] = &[
    "Environment",
    "EnvironmentFile",
    "LoadCredential",
    "BindPaths",
    "BindReadOnlyPaths",
    "ReadWritePaths",
    "ReadOnlyPaths",
    "InaccessiblePaths",
    "SystemCallFilter",
    "RestrictAddressFamilies",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "IPAddressAllow",
    "IPAddressDeny",
    "DeviceAllow",
    "ExecStart",
    "After",
    "Requires",
    "Wants",
    "WantedBy",
    "ListenStream",
];

/// Read the user's drop-ins of `unit` and say what each setting does to
/// `ours`; notes for those that weaken or break it.
fn review_dropins(
    root: &Root,
    unit_name: &str,
    ours: &unit::UnitFile,
    notes: &mut Vec<Note>,
) -> anyhow::Result<Vec<DropInReport>> {
    let keys = ours.keys();
    let mut reports = Vec::new();
    for d in host::dropins(root, unit_name)? {
        let mut settings = Vec::new();
        let mut exec_reset = false;
        for (k, v) in &d.settings {
            let list = LIST_KEYS.contains(&k.as_str());
            let effect = if !keys.contains(&k.as_str()) {
                "adds"
            } else if list && v.is_empty() {
                "resets"
            } else if list {
                "extends"
            } else {
                "overrides"
            };
            if k == "ExecStart" {
                if v.is_empty() {
                    exec_reset = true;
                } else if !exec_reset {
                    notes.push(Note::new(
                        "UNIT_DROPIN_EXECSTART_DUP",
                        format!(
                            "{} adds a second ExecStart= without resetting it first \
                             (ExecStart=); systemd refuses to load a Type=exec service \
                             with two",
                            d.path
                        ),
                    ));
                }
            }
            if effect != "adds" && effect != "extends"
                || (effect == "extends" && k != "Environment")
            {
                let ours_v: Vec<&str> = ours
                    .values("Service")
                    .chain(ours.values("Unit"))
                    .filter(|(ok, _)| *ok == k)
                    .map(|(_, v)| v)
                    .collect();
                notes.push(Note::new(
                    "UNIT_DROPIN_OVERRIDE",
                    format!(
                        "{} {effect} {k}= of the generated unit ({k}={v:?} over {:?}); the \
                         hardening described here is not what systemd runs",
                        d.path,
                        ours_v.join(" ")
                    ),
                ));
            }
            settings.push(DropInSetting {
                key: k.clone(),
                value: v.clone(),
                effect,
            });
        }
        reports.push(DropInReport {
            path: d.path,
            settings,
        });
    }
    Ok(reports)
}

/// Notes about a file systemd reads as root for the service (credential or
/// environment file): it should exist, be a regular file, owned by root,
/// mode 0600 or stricter.
fn check_secret_file(
    root: &Root,
    path: &str,
    what: &str,
    notes: &mut Vec<Note>,
) -> anyhow::Result<()> {
    match host::owner_mode(&root.join(path))? {
        None => notes.push(Note::new(
            "UNIT_SECRET_FILE_MISSING",
            format!("{what} {path:?} does not exist under the root; the service will not start until it does"),
        )),
        Some((uid, mode, is_file)) => {
            if !is_file || uid != 0 || mode & 0o177 != 0 {
                notes.push(Note::new(
                    "UNIT_SECRET_FILE_PERMS",
                    format!(
                        "{what} {path:?} is {}owned by uid {uid} with mode {mode:04o}; it should \
                         be a regular file owned by root with mode 0600 (systemd reads it as \
                         root, the app needs no access)",
                        if is_file { "" } else { "not a regular file, " }
                    ),
                ))
            }
        }
    }
    Ok(())
}

fn plan_one(
    r: &Record,
    root: &Root,
    accounts: &Accounts,
    facts: &HostFacts,
) -> anyhow::Result<Plan> {
    let spec = &r.spec;
    let mut notes = Vec::new();
    match accounts.user(&spec.user) {
        None => notes.push(Note::new(
            "UNIT_USER_MISSING",
            format!(
                "user {:?} is not in {:?}; the service fails with 217/USER until rip-user creates it",
                spec.user,
                root.join("/etc/passwd")
            ),
        )),
        Some(u) if u.uid == 0 => {
            return Err(r.error("user", format!("{:?} has uid 0; rip-unit never runs an app as root", spec.user)).into())
        }
        Some(_) => {}
    }
    if accounts.group(&spec.group).is_some_and(|g| g.gid == 0) {
        return Err(r
            .error(
                "group",
                format!("{:?} has gid 0; refusing a root group", spec.group),
            )
            .into());
    }

    let generated =
        harden::generate(spec, facts, root).map_err(|e| r.error(&e.field, e.message))?;
    let mut all_notes = generated.notes.clone();
    all_notes.append(&mut notes);
    let mut notes = all_notes;

    for f in &spec.env_files {
        check_secret_file(
            root,
            &f.display().to_string(),
            "environment file",
            &mut notes,
        )?;
    }
    for s in &spec.secrets {
        check_secret_file(
            root,
            &s.path,
            &format!("credential {:?} source", s.name),
            &mut notes,
        )?;
    }
    let mut drop_ins = review_dropins(
        root,
        &format!("{}.service", spec.name),
        &generated.service,
        &mut notes,
    )?;
    if let Some(sock) = &generated.socket {
        drop_ins.extend(review_dropins(
            root,
            &format!("{}.socket", spec.name),
            sock,
            &mut notes,
        )?);
    }
    Ok(Plan {
        generated: Some(generated),
        drop_ins,
        notes,
        aside: Vec::new(),
    })
}

/// Refuse (unless `force`) to replace a unit file rip-unit did not write or
/// to shadow a unit of the same name elsewhere on systemd's search path;
/// with `force`, plan to move the foreign file aside and note both.
fn check_clashes(r: &Record, root: &Root, force: bool, plan: &mut Plan) -> anyhow::Result<()> {
    let name = &r.spec.name;
    let strict = plan.generated.as_ref().is_some_and(|g| g.socket.is_some());
    let mut units = vec![format!("{name}.service")];
    if strict {
        units.push(format!("{name}.socket"));
    }
    for unit in &units {
        for clash in install::clashes(root, unit)? {
            if !force {
                return Err(r
                    .error(
                        "name",
                        format!(
                            "{}; refusing to write {UNIT_DIR}/{unit} (choose another name, or \
                             pass --force to take the name over)",
                            clash.describe()
                        ),
                    )
                    .into());
            }
            match clash {
                install::Clash::Foreign(path) => {
                    let to = install::aside_name(root, &path)?;
                    plan.notes.push(Note::new(
                        "UNIT_REPLACED_FOREIGN",
                        format!(
                            "{path} was not written by rip-unit; --force moves it to {to} and \
                             writes the generated unit in its place"
                        ),
                    ));
                    plan.aside.push((path, to));
                }
                install::Clash::Vendor(path) => plan.notes.push(Note::new(
                    "UNIT_SHADOWS_VENDOR",
                    format!(
                        "{path} defines a unit of the same name; with --force the generated \
                         {UNIT_DIR}/{unit} shadows it (its drop-ins still apply)"
                    ),
                )),
            }
        }
    }
    if !strict {
        // A socket of the same name elsewhere would still activate the service.
        let sock = format!("{name}.socket");
        for clash in install::clashes(root, &sock)? {
            if let install::Clash::Vendor(path) = clash {
                plan.notes.push(Note::new(
                    "UNIT_FOREIGN_SOCKET",
                    format!("{path} exists and was not generated by rip-unit; it may still activate the service"),
                ));
            }
        }
    }
    Ok(())
}

/// Run rip-unit over parsed arguments.
pub fn run(args: &cli::Cli, stdin: impl Read, mut stdout: impl Write) -> anyhow::Result<Exit> {
    let root = args.system.root();
    let dry_run = args.system.dry_run;
    if (args.reload || args.now) && !root.is_host() {
        bail!("--reload and --now drive the running systemd and need --root /");
    }
    if (args.reload || args.now) && !dry_run && !host::systemd_running(&root) {
        bail!("--reload and --now need a running systemd, and /run/systemd/system is absent");
    }

    // Validate and plan everything before touching anything.
    let records = args.input.records(stdin)?;
    let accounts = Accounts::load(&root)?;
    let facts = HostFacts {
        controllers: host::controllers(&root)?,
        nofile_hard: host::nofile_hard_limit(&root),
    };
    let mut plans = Vec::with_capacity(records.len());
    for r in &records {
        if args.remove {
            let mut notes = Vec::new();
            let mut drop_ins = Vec::new();
            for kind in ["service", "socket"] {
                for d in host::dropins(&root, &format!("{}.{kind}", r.spec.name))? {
                    if d.path.contains(&format!("/{}.{kind}.d/", r.spec.name)) {
                        notes.push(Note::new(
                            "UNIT_DROPIN_KEPT",
                            format!(
                                "{} is the user's and stays; remove it by hand if unwanted",
                                d.path
                            ),
                        ));
                    }
                    drop_ins.push(DropInReport {
                        path: d.path,
                        settings: Vec::new(),
                    });
                }
            }
            for path in [service_path(&r.spec.name), socket_path(&r.spec.name)] {
                if install::ours(&root.join(&path))? == Some(false) {
                    return Err(r
                        .error("name", format!("{path} exists and was not generated by rip-unit; refusing to remove it"))
                        .into());
                }
            }
            plans.push(Plan {
                generated: None,
                drop_ins,
                notes,
                aside: Vec::new(),
            });
        } else {
            let mut plan = plan_one(r, &root, &accounts, &facts)?;
            if !args.print {
                check_clashes(r, &root, args.force, &mut plan)?;
            }
            plans.push(plan);
        }
    }

    if args.print {
        print_units(&records, &plans, &mut stdout)?;
        return Ok(Exit::Ok);
    }

    let running = host::systemd_running(&root);
    let mut ctl = Systemctl::new(&root);
    let mut results = Vec::with_capacity(records.len());
    for (r, plan) in records.iter().zip(plans) {
        let res = if args.remove {
            remove_one(r, plan, &root, dry_run, running, &mut ctl)?
        } else {
            install_one(r, plan, &root, dry_run, running, args.enable, &mut ctl)?
        };
        results.push(res);
    }

    // One daemon-reload for the whole fleet, then start or restart.
    let want_reload = args.reload || args.now;
    if want_reload && results.iter().any(|r| r.needs_daemon_reload) {
        if dry_run {
            for r in results.iter_mut().filter(|r| r.needs_daemon_reload) {
                r.systemctl.push("systemctl daemon-reload".into());
            }
        } else {
            ctl.run(&["daemon-reload"])?;
            for r in results.iter_mut() {
                if r.needs_daemon_reload {
                    r.systemctl.push("systemctl daemon-reload".into());
                    r.needs_daemon_reload = false;
                }
            }
        }
    }
    if args.now {
        for (r, res) in records.iter().zip(results.iter_mut()) {
            start_one(r, res, dry_run, &mut ctl)?;
        }
    }

    for (r, res) in records.iter().zip(&results) {
        for n in res.notes.iter().filter(|n| WARN.contains(&n.code)) {
            rip_core::note(
                TOOL,
                format!("warning: app {:?}: {}", r.spec.name, n.message),
            );
        }
        rip_core::write_record(&mut stdout, r, KEY, res)?;
    }
    Ok(Exit::Ok)
}

fn print_units(records: &[Record], plans: &[Plan], out: &mut impl Write) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for (r, p) in records.iter().zip(plans) {
        if let Some(g) = &p.generated {
            files.push((service_path(&r.spec.name), g.service.render()));
            if let Some(s) = &g.socket {
                files.push((socket_path(&r.spec.name), s.render()));
            }
        }
    }
    let several = files.len() > 1;
    for (i, (path, text)) in files.iter().enumerate() {
        if several {
            if i > 0 {
                writeln!(out)?;
            }
            writeln!(out, "# ==== {path} ====")?;
        }
        out.write_all(text.as_bytes())?;
    }
    Ok(())
}

fn live_state(ctl: &Systemctl, unit: &str) -> anyhow::Result<(bool, bool)> {
    let active = ctl.query(&["is-active", unit])? == "active";
    let stale = ctl.query(&["show", "-P", "NeedDaemonReload", unit])? == "yes";
    Ok((active, stale))
}

fn install_one(
    r: &Record,
    plan: Plan,
    root: &Root,
    dry_run: bool,
    running: bool,
    enable: bool,
    ctl: &mut Systemctl,
) -> anyhow::Result<UnitResult> {
    let spec = &r.spec;
    let name = &spec.name;
    let Some(g) = plan.generated else {
        bail!("internal error: no unit planned for {name:?}");
    };
    let mut notes = plan.notes;
    let mut files = Vec::new();
    // Files rip-unit did not write, moved aside under --force.
    let moved = |path: &str| -> anyhow::Result<Option<String>> {
        match plan.aside.iter().find(|(p, _)| p == path) {
            Some((p, to)) => {
                if !dry_run {
                    install::move_aside(root, p, to)?;
                }
                Ok(Some(to.clone()))
            }
            None => Ok(None),
        }
    };
    let svc = service_path(name);
    let svc_previous = moved(&svc)?;
    let mut svc_outcome = install::put(root, &svc, &g.service.render(), dry_run)?;
    if svc_previous.is_some() {
        svc_outcome = Outcome::Replaced;
    }
    files.push(FileResult {
        path: svc.clone(),
        kind: "service",
        outcome: svc_outcome,
        previous: svc_previous,
    });
    let sock = socket_path(name);
    let mut sock_previous = None;
    let sock_outcome = match &g.socket {
        Some(s) => {
            sock_previous = moved(&sock)?;
            let o = install::put(root, &sock, &s.render(), dry_run)?;
            if sock_previous.is_some() {
                Outcome::Replaced
            } else {
                o
            }
        }
        None => match install::ours(&root.join(&sock))? {
            // Left over from when the app had the strict profile.
            Some(true) => {
                if running && !dry_run {
                    ctl.run(&["disable", "--now", &format!("{name}.socket")])?;
                }
                for link in install::enable_links(root, &format!("{name}.socket"))? {
                    if !dry_run {
                        std::fs::remove_file(&link)
                            .map_err(|e| anyhow::anyhow!("cannot remove {link:?}: {e}"))?;
                    }
                }
                install::remove(root, &sock, dry_run)?
            }
            Some(false) => {
                notes.push(Note::new(
                    "UNIT_FOREIGN_SOCKET",
                    format!("{sock} exists and was not generated by rip-unit; it may still activate the service"),
                ));
                Outcome::Absent
            }
            None => Outcome::Absent,
        },
    };
    if sock_outcome != Outcome::Absent {
        files.push(FileResult {
            path: sock.clone(),
            kind: "socket",
            outcome: sock_outcome,
            previous: sock_previous,
        });
    }
    let files_changed = files.iter().any(|f| f.outcome.changed());

    let svc_unit = format!("{name}.service");
    let (active, stale) = if running {
        let (a, s) = live_state(ctl, &svc_unit)?;
        (Some(a), s)
    } else {
        (None, false)
    };
    let needs_daemon_reload = files_changed || stale;
    let needs_restart = match active {
        Some(a) => a && needs_daemon_reload,
        None => svc_outcome == Outcome::Replaced || sock_outcome == Outcome::Replaced,
    };

    // Enablement.
    let mut wanted = vec![(svc_unit.clone(), "multi-user.target")];
    if g.socket.is_some() {
        wanted.push((format!("{name}.socket"), "sockets.target"));
    }
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(u, t)| !install::is_enabled(root, u, t))
        .map(|(u, _)| u.as_str())
        .collect();
    let mut commands = Vec::new();
    let mut enabled = missing.is_empty();
    let mut enable_changed = false;
    if enable && !missing.is_empty() {
        let mut a = vec!["enable"];
        a.extend(missing.iter().copied());
        if dry_run {
            commands.push(format!("systemctl {}", a.join(" ")));
        } else {
            if !running && root.is_host() {
                a.insert(0, "--root=/");
            }
            ctl.run(&a)?;
            if let Some(c) = ctl.log.last() {
                commands.push(c.clone());
            }
            enabled = true;
        }
        enable_changed = true;
    }

    let exposure_target = Some(match spec.profile {
        Profile::Default => 1.5,
        Profile::Strict => 0.9,
    });
    Ok(UnitResult {
        changed: files_changed || enable_changed,
        dry_run,
        action: "install",
        profile: profile_name(spec.profile),
        runtime: harden::runtime_name(spec.runtime),
        unit: svc,
        files,
        hardening: Some(g.decisions),
        exposure_target,
        drop_ins: plan.drop_ins,
        notes,
        enabled,
        active,
        needs_daemon_reload,
        needs_restart,
        systemctl: commands,
    })
}

fn start_one(
    r: &Record,
    res: &mut UnitResult,
    dry_run: bool,
    ctl: &mut Systemctl,
) -> anyhow::Result<()> {
    let name = &r.spec.name;
    let svc = format!("{name}.service");
    let sock = format!("{name}.socket");
    let strict = r.spec.profile == Profile::Strict;
    let mut steps: Vec<Vec<String>> = Vec::new();
    if res.needs_restart {
        if strict {
            steps.push(vec!["stop".into(), svc.clone(), sock.clone()]);
            steps.push(vec!["start".into(), sock.clone(), svc.clone()]);
        } else {
            steps.push(vec!["restart".into(), svc.clone()]);
        }
    } else if res.active != Some(true) {
        let mut s = vec!["start".to_owned()];
        if strict {
            s.push(sock.clone());
        }
        s.push(svc.clone());
        steps.push(s);
    }
    for step in steps {
        let a: Vec<&str> = step.iter().map(String::as_str).collect();
        if dry_run {
            res.systemctl.push(format!("systemctl {}", a.join(" ")));
        } else {
            ctl.run(&a)?;
            if let Some(c) = ctl.log.last() {
                res.systemctl.push(c.clone());
            }
        }
        res.changed = true;
    }
    if !dry_run {
        res.active = Some(ctl.query(&["is-active", &svc])? == "active");
        res.needs_restart = false;
    }
    Ok(())
}

fn remove_one(
    r: &Record,
    plan: Plan,
    root: &Root,
    dry_run: bool,
    running: bool,
    ctl: &mut Systemctl,
) -> anyhow::Result<UnitResult> {
    let name = &r.spec.name;
    let units = [format!("{name}.service"), format!("{name}.socket")];
    let paths = [service_path(name), socket_path(name)];
    let present: Vec<&str> = units
        .iter()
        .zip(&paths)
        .filter(|(_, p)| root.join(p).exists())
        .map(|(u, _)| u.as_str())
        .collect();
    let mut commands = Vec::new();
    let mut changed = false;

    // Stop and disable through systemd when it runs, then make sure no
    // enablement symlink is left (offline roots have only those).
    if running && !present.is_empty() {
        let mut a = vec!["disable", "--now"];
        a.extend(present.iter().copied());
        if dry_run {
            commands.push(format!("systemctl {}", a.join(" ")));
        } else {
            ctl.run(&a)?;
            if let Some(c) = ctl.log.last() {
                commands.push(c.clone());
            }
        }
        changed = true;
    }
    for u in &units {
        for link in install::enable_links(root, u)? {
            if !dry_run {
                std::fs::remove_file(&link)
                    .map_err(|e| anyhow::anyhow!("cannot remove {link:?}: {e}"))?;
            }
            changed = true;
        }
    }
    let mut files = Vec::new();
    for (path, kind) in paths.iter().zip(["service", "socket"]) {
        let outcome = install::remove(root, path, dry_run)?;
        changed |= outcome.changed();
        files.push(FileResult {
            path: path.clone(),
            kind,
            outcome,
            previous: None,
        });
    }
    Ok(UnitResult {
        changed,
        dry_run,
        action: "remove",
        profile: profile_name(r.spec.profile),
        runtime: harden::runtime_name(r.spec.runtime),
        unit: paths[0].clone(),
        files,
        hardening: None,
        exposure_target: None,
        drop_ins: plan.drop_ins,
        notes: plan.notes,
        enabled: false,
        active: if running && !dry_run {
            Some(false)
        } else {
            None
        },
        needs_daemon_reload: changed,
        needs_restart: false,
        systemctl: commands,
    })
}
