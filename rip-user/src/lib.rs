//! rip-user: every app's system user and group, and the least-privilege
//! backup user, converged in `<root>/etc/{passwd,group,shadow,gshadow}`.
//! `run` validates everything, takes the shadow-utils locks, plans every
//! account in memory, refuses conflicts before any write, then writes.

pub mod cli;
pub mod files;
pub mod home;
pub mod lock;
pub mod logindefs;
pub mod plan;
pub mod procs;
pub mod sshkey;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use nix::unistd::Uid;
use rip_core::{Exit, Record};
use serde::Serialize;

use crate::home::{Found, KeysSeen};
use crate::logindefs::IdRanges;
use crate::plan::{Change, Db, GroupReport, State, UserReport};
use crate::procs::Stale;
use crate::sshkey::PublicKey;

/// The key this tool adds to each record.
pub const KEY: &str = "rip_user";
const TOOL: &str = "rip-user";
/// The backup user's shell: sshd runs the forced command through it, so
/// it must be a real shell; the key's `restrict,command=` keeps it from
/// ever being given a session.
pub const BACKUP_SHELL: &str = "/bin/sh";

/// The home directory part of the result.
#[derive(Debug, Clone, Serialize)]
pub struct HomeReport {
    /// Home path on the target system.
    pub path: String,
    /// `created`, `exists`, `kept`, `archived`, `purged` or `absent`.
    pub state: &'static str,
    /// Owner and mode found, or wanted for a new home.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<Found>,
    /// `applied`, or `planned` when not running as root (no chown possible).
    pub ownership: &'static str,
    /// The archive written by --archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    /// Changes made to an existing directory.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// The backup user's `authorized_keys`.
#[derive(Debug, Clone, Serialize)]
pub struct KeysReport {
    /// Path on the target system.
    pub path: String,
    /// Whether this run manages it (`--backup-key` given).
    pub managed: bool,
    /// `installed`, `replaced`, `unchanged`, `absent` or `not_managed`.
    pub state: &'static str,
    /// What the file held before this run.
    pub before: Option<KeysSeen>,
    /// The forced command of the installed key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Whether `<root>/usr/bin/rrsync` exists.
    pub rrsync_present: bool,
}

/// The backup user, as reported with every app that has backups enabled.
#[derive(Debug, Clone, Serialize)]
pub struct BackupUserReport {
    /// The account.
    #[serde(flatten)]
    pub account: UserReport,
    /// Its primary group.
    pub primary_group: GroupReport,
    /// Its supplementary groups after the run.
    pub groups: Vec<String>,
    /// Its home directory.
    pub home_dir: HomeReport,
    /// Its SSH key.
    pub authorized_keys: KeysReport,
}

impl BackupUserReport {
    fn changed(&self) -> bool {
        self.account.changed()
            || self.primary_group.changed()
            || self.home_dir.state == "created"
            || !self.home_dir.changes.is_empty()
            || matches!(self.authorized_keys.state, "installed" | "replaced")
    }
}

/// Backup membership of one app.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// Whether the app has backups enabled.
    pub enabled: bool,
    /// The backup user's name.
    pub user: String,
    /// Whether the backup user is a member of the app's group after the run.
    pub member: bool,
    /// `added`, `removed` or `unchanged`.
    pub membership: &'static str,
    /// What the pull script passes after `backup@HOST:` (relative to
    /// --backup-root), when backups are enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_path: Option<String>,
    /// The backup user itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<BackupUserReport>,
}

/// Who must restart for group changes to apply.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestartReport {
    /// Users whose set of groups changed.
    pub users: Vec<String>,
    /// Their running processes that still hold the old set (only when
    /// --root is /).
    pub processes: Vec<Stale>,
    /// Units and sessions of those processes, to restart or log out.
    pub units: Vec<String>,
    /// Whether /proc was scanned (only for --root /).
    pub processes_checked: bool,
}

/// The value of `rip_user` for one app.
#[derive(Debug, Clone, Serialize)]
pub struct AppResult {
    /// Whether anything changed (or would, with --dry-run).
    pub changed: bool,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// `ensure` or `remove`.
    pub action: &'static str,
    /// The user.
    pub user: UserReport,
    /// The primary group.
    pub group: GroupReport,
    /// The home directory.
    pub home: HomeReport,
    /// The backup user's membership in the app's group.
    pub backup: BackupReport,
    /// Restarts needed for group changes to take effect.
    pub restart_needed: RestartReport,
}

/// Options checked before anything is read from the root.
struct Options {
    backup: String,
    backup_home: String,
    key: Option<PublicKey>,
}

fn check_options(args: &cli::Cli, records: &[Record]) -> anyhow::Result<Options> {
    let backup = args.backup_user.clone();
    if !rip_core::validate::is_valid_name(&backup) {
        bail!("--backup-user {backup:?} must match ^[a-z_][a-z0-9_-]{{0,30}}$");
    }
    let backup_home = args
        .backup_home
        .clone()
        .unwrap_or_else(|| format!("/home/{backup}"));
    rip_core::validate::check_abs_path("--backup-home", &backup_home)
        .map_err(|e| anyhow::anyhow!("--backup-home: {}", e.message))?;
    sshkey::check_restrict_dir(&args.backup_root)
        .map_err(|e| anyhow::anyhow!("--backup-root: {e}"))?;
    let key = match &args.backup_key {
        Some(p) => Some(PublicKey::load(p)?),
        None => None,
    };
    for r in records {
        let s = &r.spec;
        for (field, v) in [("user", &s.user), ("group", &s.group)] {
            if *v == backup {
                return Err(r
                    .error(
                        field,
                        format!("{v:?} is the backup user's name (--backup-user)"),
                    )
                    .into());
            }
        }
        if s.home == Path::new(&backup_home) {
            return Err(r.error("home", "is the backup user's home").into());
        }
        if let (Some(dir), Some(_)) = (&s.backup_dir, &key) {
            if !dir.starts_with(&args.backup_root) {
                return Err(r
                    .error(
                        "backups.dir",
                        format!(
                            "{dir:?} is outside --backup-root {:?}, so the backup key could not reach it",
                            args.backup_root
                        ),
                    )
                    .into());
            }
        }
    }
    Ok(Options {
        backup,
        backup_home,
        key,
    })
}

fn pull_path(dir: &Path, backup_root: &str) -> Option<String> {
    let rel = dir.strip_prefix(backup_root).ok()?;
    Some(format!("{}/", rel.display()))
}

fn changes_of(list: Vec<(String, String, String)>) -> Vec<Change> {
    list.into_iter()
        .map(|(field, from, to)| Change {
            field,
            from: from.into(),
            to: to.into(),
        })
        .collect()
}

/// Per-app plan built before anything is written.
struct AppPlan {
    user: UserReport,
    group: GroupReport,
    home: HomeReport,
    membership: &'static str,
}

/// Run rip-user over parsed arguments.
pub fn run(args: &cli::Cli, stdin: impl Read, mut stdout: impl Write) -> anyhow::Result<Exit> {
    // Validate the input and the options before looking at the root.
    let records = args.input.records(stdin)?;
    let opts = check_options(args, &records)?;
    let root = args.system.root();
    let dry = args.system.dry_run;
    let as_root = Uid::effective().is_root();
    let ownership = if as_root { "applied" } else { "planned" };
    if root.is_host() && !root.join("/etc/passwd").exists() {
        bail!("/etc/passwd does not exist on the running system; refusing to create it");
    }

    // Lock, then read: the whole read-modify-write is under the lock.
    let _lock = if dry {
        None
    } else {
        Some(lock::PwdLock::acquire(
            &root,
            Duration::from_secs(args.lock_timeout),
        )?)
    };
    let ranges = IdRanges::load(&root.join("/etc/login.defs"))?;
    let mut db = Db::load(&root)?;
    let before = db.clone();
    let today = plan::today();
    let b = opts.backup.as_str();
    let mut refusals: Vec<String> = Vec::new();

    // Plan every app's account in memory.
    let mut plans: Vec<Option<AppPlan>> = Vec::new();
    for r in &records {
        let s = &r.spec;
        let home_path = s.home.display().to_string();
        let res = if args.remove {
            db.remove(&s.user, &s.group, b)
        } else {
            let want = plan::Want {
                user: s.user.clone(),
                group: s.group.clone(),
                home: home_path.clone(),
                shell: s.shell.display().to_string(),
                gecos: plan::app_gecos(&s.user),
                enforce_gecos: true,
                allow_static: false,
                allowed_members: vec![s.user.clone(), b.to_owned()],
            };
            db.ensure(&ranges, &want, today)
        };
        match res {
            Ok((user, group)) => plans.push(Some(AppPlan {
                user,
                group,
                home: HomeReport {
                    path: home_path,
                    state: "exists",
                    found: None,
                    ownership,
                    archive: None,
                    changes: Vec::new(),
                },
                membership: "unchanged",
            })),
            Err(e) => {
                refusals.push(r.error(&e.field, e.message).to_string());
                plans.push(None);
            }
        }
    }

    // The backup user, when some app needs it.
    let need_backup =
        !args.remove && (records.iter().any(|r| r.spec.backups_enabled()) || opts.key.is_some());
    let mut backup_acct: Option<(UserReport, GroupReport)> = None;
    if need_backup {
        let want = plan::Want {
            user: b.to_owned(),
            group: b.to_owned(),
            home: opts.backup_home.clone(),
            shell: BACKUP_SHELL.to_owned(),
            gecos: "rip backup".to_owned(),
            enforce_gecos: false,
            allow_static: true,
            allowed_members: vec![b.to_owned()],
        };
        match db.ensure(&ranges, &want, today) {
            Ok(acct) => backup_acct = Some(acct),
            Err(e) => refusals.push(format!(
                "backup user {b:?} (--backup-user), field {:?}: {}",
                e.field, e.message
            )),
        }
    }

    // Memberships: in the group of every app with backups, of no other.
    let mut foreign_removed = Vec::new();
    if !args.remove && db.passwd.get(b).is_some() {
        let input_groups: BTreeSet<&str> = records.iter().map(|r| r.spec.group.as_str()).collect();
        for (r, p) in records.iter().zip(plans.iter_mut()) {
            let Some(p) = p else { continue };
            if r.spec.backups_enabled() {
                if db.add_member(&r.spec.group, b) {
                    p.membership = "added";
                }
            } else if db.remove_member(&r.spec.group, b) {
                p.membership = "removed";
            }
            p.group.members = db.members_of(&r.spec.group);
        }
        let app_groups: BTreeSet<String> = db
            .passwd
            .entries()
            .filter(|f| f[4] == plan::app_gecos(&f[0]))
            .filter_map(|f| f[3].parse::<u32>().ok())
            .filter_map(|gid| {
                db.group
                    .entries()
                    .find(|g| g[2] == gid.to_string())
                    .map(|g| g[0].clone())
            })
            .collect();
        for g in db.groups_of(b) {
            if !input_groups.contains(g.as_str())
                && !app_groups.contains(&g)
                && db.remove_member(&g, b)
            {
                foreign_removed.push(g);
            }
        }
    }
    if let Some((u, _)) = &mut backup_acct {
        for g in &foreign_removed {
            u.changes.push(Change {
                field: "groups".into(),
                from: g.clone().into(),
                to: serde_json::Value::Null,
            });
        }
        if !foreign_removed.is_empty() && u.state == State::Unchanged {
            u.state = State::Converged;
        }
    }

    // Look at the homes before writing anything.
    for (r, p) in records.iter().zip(plans.iter_mut()) {
        let Some(p) = p else { continue };
        match home::inspect_dir(&root, &p.home.path) {
            Ok(found) => {
                p.home.found = found.clone();
                if args.remove {
                    p.home.state = if found.is_some() { "kept" } else { "absent" };
                    if let (true, Some(f)) = (args.purge, &found) {
                        if let Some(why) = purge_refusal(&before, f, p.user.uid) {
                            refusals.push(
                                r.error(
                                    "home",
                                    format!("{:?} {why}; refusing to purge it", p.home.path),
                                )
                                .to_string(),
                            );
                        }
                    }
                } else if found.is_none() {
                    p.home.state = "created";
                    p.home.found = Some(Found {
                        mode: format!("{:04o}", home_mode(r)),
                        uid: p.user.uid.unwrap_or(0),
                        gid: p.user.gid.unwrap_or(0),
                    });
                }
            }
            Err(e) => refusals.push(r.error("home", format!("{e:#}")).to_string()),
        }
    }
    let mut keys_before = None;
    let mut backup_home_found = None;
    if let Some((u, _)) = &backup_acct {
        match home::inspect_dir(&root, &opts.backup_home) {
            Ok(Some(f)) if f.uid != 0 && Some(f.uid) != u.uid => refusals.push(format!(
                "backup user {b:?}: home {:?} exists and belongs to uid {}, not {b:?}; refusing to adopt it",
                opts.backup_home, f.uid
            )),
            Ok(found) => backup_home_found = found,
            Err(e) => refusals.push(format!("backup user {b:?}: {e:#}")),
        }
        match home::precheck_ssh(&root, &opts.backup_home) {
            Ok(seen) => keys_before = seen,
            Err(e) => refusals.push(format!("backup user {b:?}: {e:#}")),
        }
    }

    if !refusals.is_empty() {
        for r in &refusals {
            rip_core::note(TOOL, format!("error: {r}"));
        }
        bail!(
            "{} problem(s) found; nothing was written to {:?}",
            refusals.len(),
            root.dir()
        );
    }

    // A removed user must not still be running (root / only).
    if args.remove && root.is_host() {
        let gone: Vec<(String, u32, BTreeSet<u32>)> = plans
            .iter()
            .flatten()
            .filter(|p| p.user.state == State::Removed)
            .filter_map(|p| Some((p.user.name.clone(), p.user.uid?, BTreeSet::new())))
            .collect();
        let running = procs::scan(Path::new("/proc"), &gone);
        if let Some(p) = running.first() {
            bail!(
                "user {:?} still runs processes (pid {} {:?}{}); stop them first; nothing was written",
                p.user,
                p.pid,
                p.comm,
                p.unit.as_ref().map(|u| format!(" in {u}")).unwrap_or_default()
            );
        }
    }

    // Act: the account files, then the homes, then the key.
    let mut keys_state = if opts.key.is_some() {
        "unchanged"
    } else {
        "not_managed"
    };
    let mut backup_home_changes = Vec::new();
    let mut backup_home_state = if backup_home_found.is_some() {
        "exists"
    } else {
        "created"
    };
    let key_contents = opts
        .key
        .as_ref()
        .map(|k| k.authorized_line(&args.backup_root));
    if !dry {
        let shadow_gid = db.gid_of("shadow");
        for t in [&db.group, &db.gshadow, &db.passwd, &db.shadow] {
            t.write(shadow_gid)?;
        }
        for (r, p) in records.iter().zip(plans.iter_mut()) {
            let Some(p) = p else { continue };
            if args.remove {
                if p.home.found.is_none() {
                    continue;
                }
                if args.archive {
                    p.home.archive = Some(home::archive(&root, &p.home.path, &r.spec.user)?);
                    p.home.state = "archived";
                }
                if args.purge && home::purge(&root, &p.home.path, p.user.uid)? {
                    p.home.state = "purged";
                }
            } else if p.home.state == "created" {
                let want = home::Want {
                    uid: p.user.uid.unwrap_or(0),
                    gid: p.user.gid.unwrap_or(0),
                    mode: home_mode(r),
                };
                home::ensure_home(&root, &p.home.path, want, false)?;
            }
        }
        if let Some((u, g)) = &backup_acct {
            let owner = (u.uid.unwrap_or(0), g.gid.unwrap_or(0));
            let want = home::Want {
                uid: owner.0,
                gid: owner.1,
                mode: 0o700,
            };
            let (hfd, created, changes) = home::ensure_home(&root, &opts.backup_home, want, true)?;
            backup_home_state = if created { "created" } else { "exists" };
            if !created {
                backup_home_changes = changes_of(changes);
            }
            if let Some(line) = &key_contents {
                let host = root.join(&opts.backup_home);
                let (changed, ssh_changes) =
                    home::install_keys(&hfd, &host, line.as_bytes(), owner)?;
                backup_home_changes.extend(changes_of(ssh_changes).into_iter().map(|mut c| {
                    c.field = format!(".ssh {}", c.field);
                    c
                }));
                if changed {
                    keys_state = if keys_before.is_some() {
                        "replaced"
                    } else {
                        "installed"
                    };
                }
            }
        }
    } else if let (Some(line), Some(_)) = (&key_contents, &backup_acct) {
        // Dry run: say whether the key would change.
        let host = root.join(&opts.backup_home).join(".ssh/authorized_keys");
        let same = std::fs::read(&host).is_ok_and(|old| old == line.as_bytes());
        if !same {
            keys_state = if keys_before.is_some() {
                "replaced"
            } else {
                "installed"
            };
        }
    }
    drop(_lock);

    // Who has to restart for group changes to apply.
    let mut changed_users: BTreeMap<String, (u32, BTreeSet<u32>)> = BTreeMap::new();
    let mut candidates: Vec<&str> = records.iter().map(|r| r.spec.user.as_str()).collect();
    candidates.push(b);
    for name in candidates {
        let (Some(old), Some(new)) = (before.passwd.get(name), db.passwd.get(name)) else {
            continue;
        };
        let (old_set, new_set) = (before.gid_set(name), db.gid_set(name));
        if old_set != new_set {
            if let Ok(uid) = new[2].parse::<u32>() {
                let _ = old;
                changed_users.insert(name.to_owned(), (uid, new_set));
            }
        }
    }
    let stale = if root.is_host() {
        let list: Vec<(String, u32, BTreeSet<u32>)> = changed_users
            .iter()
            .map(|(n, (u, s))| (n.clone(), *u, s.clone()))
            .collect();
        procs::scan(Path::new("/proc"), &list)
    } else {
        Vec::new()
    };

    // The backup user's report, shared by every app with backups.
    let backup_report = backup_acct.map(|(mut account, primary_group)| {
        if !backup_home_changes.is_empty() && account.state == State::Unchanged {
            account.state = State::Converged;
        }
        BackupUserReport {
            groups: db.groups_of(b),
            home_dir: HomeReport {
                path: opts.backup_home.clone(),
                state: backup_home_state,
                found: backup_home_found.clone(),
                ownership,
                archive: None,
                changes: backup_home_changes.clone(),
            },
            authorized_keys: KeysReport {
                path: format!(
                    "{}/.ssh/authorized_keys",
                    opts.backup_home.trim_end_matches('/')
                ),
                managed: opts.key.is_some(),
                state: if opts.key.is_none() && keys_before.is_none() {
                    "absent"
                } else {
                    keys_state
                },
                before: keys_before.clone(),
                command: opts
                    .key
                    .as_ref()
                    .map(|_| format!("{} -ro {}", sshkey::RRSYNC, args.backup_root)),
                rrsync_present: root.join(sshkey::RRSYNC).exists(),
            },
            account,
            primary_group,
        }
    });

    // Output, one line per app.
    for (r, p) in records.iter().zip(plans) {
        let Some(p) = p else { continue };
        let s = &r.spec;
        let enabled = s.backups_enabled();
        let member = db.members_of(&s.group).iter().any(|m| m == b);
        let account = if enabled || p.membership != "unchanged" {
            backup_report.clone()
        } else {
            None
        };
        let mut users = Vec::new();
        if p.membership != "unchanged" && changed_users.contains_key(b) {
            users.push(b.to_owned());
        }
        if enabled
            && backup_report.as_ref().is_some_and(|a| a.account.changed())
            && changed_users.contains_key(b)
            && !users.contains(&b.to_owned())
        {
            users.push(b.to_owned());
        }
        if changed_users.contains_key(&s.user) && !args.remove {
            users.push(s.user.clone());
        }
        let processes: Vec<Stale> = stale
            .iter()
            .filter(|st| users.contains(&st.user))
            .cloned()
            .collect();
        let mut units: Vec<String> = processes.iter().filter_map(|p| p.unit.clone()).collect();
        units.sort();
        units.dedup();
        let changed = p.user.changed()
            || p.group.changed()
            || matches!(p.home.state, "created" | "archived" | "purged")
            || p.membership != "unchanged"
            || (enabled && account.as_ref().is_some_and(BackupUserReport::changed));
        let result = AppResult {
            changed,
            dry_run: dry,
            action: if args.remove { "remove" } else { "ensure" },
            user: p.user,
            group: p.group,
            home: p.home,
            backup: BackupReport {
                enabled,
                user: b.to_owned(),
                member,
                membership: p.membership,
                pull_path: s
                    .backup_dir
                    .as_deref()
                    .filter(|_| enabled)
                    .and_then(|d| pull_path(d, &args.backup_root)),
                account,
            },
            restart_needed: RestartReport {
                users,
                processes,
                units,
                processes_checked: root.is_host(),
            },
        };
        rip_core::write_record(&mut stdout, r, KEY, &result)?;
    }
    Ok(Exit::Ok)
}

/// Why a home must not be purged: it must belong to the removed user, or,
/// when the user was already gone, to a uid no account uses any more.
fn purge_refusal(before: &Db, found: &Found, uid: Option<u32>) -> Option<String> {
    match uid {
        Some(uid) if found.uid != uid => Some(format!(
            "belongs to uid {}, not to the removed user (uid {uid})",
            found.uid
        )),
        Some(_) => None,
        None if found.uid == 0 || before.uids().contains(&found.uid) => Some(format!(
            "belongs to uid {}, which is root or still has an account",
            found.uid
        )),
        None => None,
    }
}

/// The mode of a new home: 0710 when the backup user must traverse it to
/// reach the backups directory, 0700 otherwise (rip-perms owns the rest).
fn home_mode(r: &Record) -> u32 {
    if r.spec.backups_enabled() {
        0o710
    } else {
        0o700
    }
}
