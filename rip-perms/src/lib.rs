//! rip-perms: create each app's home layout and bring owners, modes and
//! POSIX ACLs to the layout policy, without ever following a symlink (see
//! MANUAL.md).

pub mod app;
pub mod cli;
pub mod guard;
pub mod layout;
pub mod policy;
pub mod report;
pub mod sys;
pub mod walk;

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;

use anyhow::Context;
use rip_core::accounts::Accounts;
use rip_core::{Exit, Record};
use serde::{Deserialize, Serialize};

use crate::layout::{Layout, LayoutLine};
use crate::policy::Policy;
use crate::report::{Report, ReportHead};

/// The key this tool adds to each record.
pub const KEY: &str = "rip_perms";

/// The tool name, for messages.
pub const TOOL: &str = "rip-perms";

/// One app's line of `--show-policy`.
#[derive(Debug, Serialize)]
struct PolicyLine<'a> {
    app: &'a str,
    policy: &'a Policy,
    layout: Vec<LayoutLine>,
}

/// The ids rip-user reported earlier in the pipeline (`rip_user.user.uid`,
/// `rip_user.group.gid`): used only by `--dry-run` when rip-user ran with
/// `--dry-run` too and so wrote no account yet.
#[derive(Debug, Deserialize)]
struct RipUserIds {
    user: Option<UidOf>,
    group: Option<GidOf>,
}

#[derive(Debug, Deserialize)]
struct UidOf {
    uid: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct GidOf {
    gid: Option<u32>,
}

fn planned_ids(r: &Record) -> (Option<u32>, Option<u32>) {
    let ids = r
        .result_of("rip_user")
        .and_then(|v| serde_json::from_value::<RipUserIds>(v.clone()).ok());
    match ids {
        Some(ids) => (ids.user.and_then(|u| u.uid), ids.group.and_then(|g| g.gid)),
        None => (None, None),
    }
}

/// One app, planned: its layout and whether its ids come from rip-user's
/// dry run rather than `<root>/etc`.
struct Plan {
    layout: Layout,
    ids_planned: bool,
}

/// Validate every record's policy override and look up its owner, before
/// anything is touched.
fn plan(
    records: &[Record],
    accounts: Option<&Accounts>,
    dry_run: bool,
) -> anyhow::Result<Vec<Plan>> {
    let mut plans = Vec::new();
    for r in records {
        let policy =
            Policy::for_spec(r.spec.perms.as_ref()).map_err(|e| r.error(&e.field, e.message))?;
        let (planned_uid, planned_gid) = if dry_run {
            planned_ids(r)
        } else {
            (None, None)
        };
        let mut ids_planned = false;
        let (uid, gid) = match accounts {
            None => (0, 0),
            Some(acc) => {
                let uid = match (acc.user(&r.spec.user), planned_uid) {
                    (Some(u), _) => u.uid,
                    (None, Some(uid)) => {
                        ids_planned = true;
                        uid
                    }
                    (None, None) => {
                        return Err(r
                            .error(
                                "user",
                                format!(
                                    "user {:?} is not in <root>/etc/passwd; run rip-user first",
                                    r.spec.user
                                ),
                            )
                            .into())
                    }
                };
                let gid = match (acc.group(&r.spec.group), planned_gid) {
                    (Some(g), _) => g.gid,
                    (None, Some(gid)) => {
                        ids_planned = true;
                        gid
                    }
                    (None, None) => {
                        return Err(r
                            .error(
                                "group",
                                format!(
                                    "group {:?} is not in <root>/etc/group; run rip-user first",
                                    r.spec.group
                                ),
                            )
                            .into())
                    }
                };
                (uid, gid)
            }
        };
        plans.push(Plan {
            layout: Layout::new(&r.spec, policy, uid, gid),
            ids_planned,
        });
    }
    Ok(plans)
}

fn show_policy(args: &cli::Cli, stdin: impl Read, mut stdout: impl Write) -> anyhow::Result<Exit> {
    let records = if args.input.app.is_some() {
        args.input.records(stdin)?
    } else if std::io::stdin().is_terminal() {
        Vec::new()
    } else {
        // Empty input here means "print the default policy", not an
        // upstream failure.
        let mut text = Vec::new();
        let mut stdin = stdin;
        stdin
            .read_to_end(&mut text)
            .context("cannot read the app specs on stdin")?;
        if text.iter().all(u8::is_ascii_whitespace) {
            Vec::new()
        } else {
            args.input.records(&text[..])?
        }
    };
    if records.is_empty() {
        serde_json::to_writer_pretty(&mut stdout, &Policy::default())?;
        stdout.write_all(b"\n")?;
        return Ok(Exit::Ok);
    }
    for (r, p) in records.iter().zip(plan(&records, None, false)?) {
        let line = PolicyLine {
            app: &r.spec.name,
            policy: &p.layout.policy,
            layout: p.layout.describe(),
        };
        serde_json::to_writer(&mut stdout, &line)?;
        stdout.write_all(b"\n")?;
    }
    Ok(Exit::Ok)
}

/// Run rip-perms over parsed arguments.
pub fn run(args: &cli::Cli, stdin: impl Read, mut stdout: impl Write) -> anyhow::Result<Exit> {
    if args.show_policy {
        return show_policy(args, stdin, stdout);
    }

    // Validate and plan everything first: nothing is touched on bad input.
    let records = args.input.records(stdin)?;
    let root = args.system.root();
    let accounts = Accounts::load(&root)?;
    let plans = plan(&records, Some(&accounts), args.system.dry_run)?;
    let root_fd = sys::open_root(root.dir())
        .with_context(|| format!("cannot open the root directory {:?}", root.dir()))?;
    // Refuse someone else's tree (a system directory, another account's
    // home, a directory another account owns) before touching anything.
    let homes = guard::other_homes(root_fd.as_fd(), &accounts);
    let (euid, egid) = (sys::euid(), sys::egid());
    for (r, p) in records.iter().zip(&plans) {
        let owners = guard::Owners {
            accounts: &accounts,
            user: &r.spec.user,
            uid: p.layout.uid,
            gid: p.layout.gid,
            euid,
            egid,
        };
        guard::check_spec(root_fd.as_fd(), &r.spec, &homes, &owners)
            .map_err(|e| r.error(&e.field, e.message))?;
    }
    sys::raise_nofile();

    let opts = app::Opts {
        dry_run: args.system.dry_run,
        threads: match args.jobs {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
        },
        cap: if args.verbose {
            usize::MAX
        } else {
            args.max_entries
        },
    };
    let privileged = sys::euid() == 0;
    let mut exit = Exit::Ok;
    for (r, p) in records.iter().zip(&plans) {
        let layout = &p.layout;
        let partial = app::fix_app(root_fd.as_fd(), layout, &opts);
        for f in &partial.errors {
            rip_core::note(
                TOOL,
                format!("{}: {:?}: {}", r.spec.name, f.path.path, f.error),
            );
            exit = Exit::Error;
        }
        let head = ReportHead {
            dry_run: opts.dry_run,
            privileged,
            user: r.spec.user.clone(),
            uid: layout.uid,
            group: r.spec.group.clone(),
            gid: layout.gid,
        };
        let mut report = Report::finish(partial, head);
        if p.ids_planned {
            report.notes.push(
                "the app's account is not in <root>/etc yet: uid and gid are the ones \
                 rip-user planned in its dry run"
                    .to_owned(),
            );
        }
        rip_core::write_record(&mut stdout, r, KEY, &report)?;
    }
    stdout.flush()?;
    Ok(exit)
}
