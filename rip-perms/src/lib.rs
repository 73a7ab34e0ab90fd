//! rip-perms: create each app's home layout and bring owners and modes to
//! the layout policy, without ever following a symlink (see MANUAL.md).

pub mod app;
pub mod cli;
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
use serde::Serialize;

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

/// Validate every record's policy override and look up its owner, before
/// anything is touched.
fn plan(records: &[Record], accounts: Option<&Accounts>) -> anyhow::Result<Vec<Layout>> {
    let mut plans = Vec::new();
    for r in records {
        let policy =
            Policy::for_spec(r.spec.perms.as_ref()).map_err(|e| r.error(&e.field, e.message))?;
        let (uid, gid) = match accounts {
            None => (0, 0),
            Some(acc) => {
                let user = acc.user(&r.spec.user).ok_or_else(|| {
                    r.error(
                        "user",
                        format!(
                            "user {:?} is not in <root>/etc/passwd; run rip-user first",
                            r.spec.user
                        ),
                    )
                })?;
                let group = acc.group(&r.spec.group).ok_or_else(|| {
                    r.error(
                        "group",
                        format!(
                            "group {:?} is not in <root>/etc/group; run rip-user first",
                            r.spec.group
                        ),
                    )
                })?;
                (user.uid, group.gid)
            }
        };
        plans.push(Layout::new(&r.spec, policy, uid, gid));
    }
    Ok(plans)
}

fn show_policy(args: &cli::Cli, stdin: impl Read, mut stdout: impl Write) -> anyhow::Result<Exit> {
    let records = if args.input.app.is_none() && std::io::stdin().is_terminal() {
        Vec::new()
    } else {
        args.input.records(stdin)?
    };
    if records.is_empty() {
        serde_json::to_writer_pretty(&mut stdout, &Policy::default())?;
        stdout.write_all(b"\n")?;
        return Ok(Exit::Ok);
    }
    for (r, layout) in records.iter().zip(plan(&records, None)?) {
        let line = PolicyLine {
            app: &r.spec.name,
            policy: &layout.policy,
            layout: layout.describe(),
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
    let plans = plan(&records, Some(&accounts))?;
    let root_fd = sys::open_root(root.dir())
        .with_context(|| format!("cannot open the root directory {:?}", root.dir()))?;
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
    for (r, layout) in records.iter().zip(&plans) {
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
        let report = Report::finish(partial, head);
        rip_core::write_record(&mut stdout, r, KEY, &report)?;
    }
    stdout.flush()?;
    Ok(exit)
}
