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

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use nix::unistd::Uid;
use rip_core::{Exit, Record};
use serde::Serialize;

use crate::home::{Found, KeysSeen, SkelReport};
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
/// Debian's static backup account (base-passwd, uid 34), which rip-user
/// adopts as the backup user without `--adopt`.
pub const DEBIAN_BACKUP: &str = "backup";
/// The GECOS of a backup user rip-user created.
pub const BACKUP_GECOS: &str = "rip backup";

/// The rules of an app's home, for `--backup-home`: absolute, normalized,
/// not in a system directory, at least two levels deep.
fn check_home_path(what: &str, path: &str) -> anyhow::Result<()> {
    rip_core::validate::check_abs_path(what, path)
        .map_err(|e| anyhow::anyhow!("{what}: {}", e.message))?;
    rip_core::validate::check_not_system(what, path, what)
        .map_err(|e| anyhow::anyhow!("{}", e.message))
}

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
    /// What a new home got from the skeleton (`/etc/skel`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skel: Option<SkelReport>,
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
    check_home_path("--backup-home", &backup_home)?;
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
        let bh = Path::new(&backup_home);
        if s.home == bh {
            return Err(r.error("home", "is the backup user's home").into());
        }
        if s.home.starts_with(bh) || bh.starts_with(&s.home) {
            return Err(r
                .error(
                    "home",
                    format!(
                        "{:?} and the backup user's home {backup_home:?} (--backup-home) lie one inside the other",
                        s.home
                    ),
                )
                .into());
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

/// The backup user's plan.
struct BackupPlan {
    user: UserReport,
    group: GroupReport,
    home: HomeReport,
    ssh: home::SshState,
    keys_state: &'static str,
}

/// One run: the options, the tables before and as planned, and every
/// problem found so far.
struct Session<'a> {
    args: &'a cli::Cli,
    opts: Options,
    records: &'a [Record],
    root: rip_core::Root,
    ranges: IdRanges,
    before: Db,
    db: Db,
    today: i64,
    ownership: &'static str,
    refusals: Vec<String>,
}

impl Session<'_> {
    fn b(&self) -> &str {
        &self.opts.backup
    }

    fn new_home(&self, path: String) -> HomeReport {
        HomeReport {
            path,
            state: "exists",
            found: None,
            ownership: self.ownership,
            archive: None,
            changes: Vec::new(),
            skel: None,
        }
    }

    /// Create, converge or remove every app's account in memory.
    fn plan_apps(&mut self) -> Vec<Option<AppPlan>> {
        let mut plans = Vec::new();
        for r in self.records {
            let s = &r.spec;
            let home_path = s.home.display().to_string();
            let b = self.opts.backup.clone();
            let res = if self.args.remove {
                self.db.remove(&s.user, &s.group, &b)
            } else {
                let want = plan::Want {
                    user: s.user.clone(),
                    group: s.group.clone(),
                    home: home_path.clone(),
                    shell: s.shell.display().to_string(),
                    gecos: plan::app_gecos(&s.user),
                    enforce_gecos: true,
                    allow_static: false,
                    adopt_unmarked: self.args.adopt,
                    allowed_members: vec![s.user.clone(), b],
                };
                self.db.ensure(&self.ranges, &want, self.today)
            };
            match res {
                Ok((user, group)) => plans.push(Some(AppPlan {
                    user,
                    group,
                    home: self.new_home(home_path),
                    membership: "unchanged",
                })),
                Err(e) => {
                    self.refusals.push(r.error(&e.field, e.message).to_string());
                    plans.push(None);
                }
            }
        }
        plans
    }

    /// The backup user's account, when some app (or --backup-key) needs it.
    fn plan_backup_user(&mut self) -> Option<BackupPlan> {
        let needed = !self.args.remove
            && (self.records.iter().any(|r| r.spec.backups_enabled()) || self.opts.key.is_some());
        if !needed {
            return None;
        }
        let b = self.b().to_owned();
        let want = plan::Want {
            user: b.clone(),
            group: b.clone(),
            home: self.opts.backup_home.clone(),
            shell: BACKUP_SHELL.to_owned(),
            gecos: BACKUP_GECOS.to_owned(),
            enforce_gecos: false,
            // Debian's static `backup` is the documented exception (its
            // uid 34 lies below the system range); no other static account.
            allow_static: b == DEBIAN_BACKUP,
            adopt_unmarked: self.args.adopt || b == DEBIAN_BACKUP,
            allowed_members: vec![b.clone()],
        };
        match self.db.ensure(&self.ranges, &want, self.today) {
            Ok((user, group)) => Some(BackupPlan {
                user,
                group,
                home: self.new_home(self.opts.backup_home.clone()),
                ssh: home::SshState::default(),
                keys_state: if self.opts.key.is_some() {
                    "unchanged"
                } else {
                    "not_managed"
                },
            }),
            Err(e) => {
                self.refusals.push(format!(
                    "backup user {b:?} (--backup-user), field {:?}: {}",
                    e.field, e.message
                ));
                None
            }
        }
    }

    /// The backup user joins the group of every app with backups and
    /// leaves every other group but those of rip-managed apps not in the
    /// input; each app's plan records its membership before and after.
    fn plan_memberships(&mut self, plans: &mut [Option<AppPlan>], backup: Option<&mut BackupPlan>) {
        let b = self.opts.backup.clone();
        let mut foreign_removed = Vec::new();
        if !self.args.remove && self.db.passwd.get(&b).is_some() {
            for r in self.records {
                if r.spec.backups_enabled() {
                    self.db.add_member(&r.spec.group, &b);
                } else {
                    self.db.remove_member(&r.spec.group, &b);
                }
            }
            let input_groups: BTreeSet<&str> =
                self.records.iter().map(|r| r.spec.group.as_str()).collect();
            let app_gids: BTreeSet<String> = self
                .db
                .passwd
                .entries()
                .filter(|f| f[4] == plan::app_gecos(&f[0]))
                .map(|f| f[3].clone())
                .collect();
            for g in self.db.groups_of(&b) {
                let is_app_group = self
                    .db
                    .group
                    .get(&g)
                    .is_some_and(|f| app_gids.contains(&f[2]));
                if !input_groups.contains(g.as_str())
                    && !is_app_group
                    && self.db.remove_member(&g, &b)
                {
                    foreign_removed.push(g);
                }
            }
        }
        if let Some(bp) = backup {
            for g in foreign_removed {
                bp.user.changes.push(Change {
                    field: "groups".into(),
                    from: g.into(),
                    to: serde_json::Value::Null,
                });
            }
            if !bp.user.changes.is_empty() && bp.user.state == State::Unchanged {
                bp.user.state = State::Converged;
            }
        }
        for (r, p) in self.records.iter().zip(plans.iter_mut()) {
            let Some(p) = p else { continue };
            let was = self.before.members_of(&r.spec.group).contains(&b);
            let is = self.db.members_of(&r.spec.group).contains(&b);
            p.membership = match (was, is) {
                (false, true) => "added",
                (true, false) => "removed",
                _ => "unchanged",
            };
            p.group.members = self.db.members_of(&r.spec.group);
        }
    }

    /// Look at every home (and the backup user's `.ssh`) before writing:
    /// symlinks and foreign owners are refused here, and what the run will
    /// do to each is settled, so that --dry-run reports it too.
    fn inspect_homes(&mut self, plans: &mut [Option<AppPlan>], backup: Option<&mut BackupPlan>) {
        let args = self.args;
        // What a new home would get from the skeleton; one that cannot be
        // read is refused now rather than after the account files changed.
        let mut skel_plan = None;
        let mut skel = |refusals: &mut Vec<String>| -> Option<SkelReport> {
            let planned =
                skel_plan.get_or_insert_with(|| home::copy_skel(&self.root, None, (0, 0)));
            match planned {
                Ok(report) => Some(report.clone()),
                Err(e) => {
                    let msg = format!("skeleton {:?} for new homes: {e:#}", home::SKEL);
                    if !refusals.contains(&msg) {
                        refusals.push(msg);
                    }
                    None
                }
            }
        };
        for (r, p) in self.records.iter().zip(plans.iter_mut()) {
            let Some(p) = p else { continue };
            let found = match home::inspect_dir(&self.root, &p.home.path) {
                Ok(found) => found,
                Err(e) => {
                    self.refusals
                        .push(r.error("home", format!("{e:#}")).to_string());
                    continue;
                }
            };
            p.home.found = found.clone();
            if args.remove {
                p.home.state = match (&found, args.purge, args.archive) {
                    (None, _, _) => "absent",
                    (Some(_), true, _) => "purged",
                    (Some(_), false, true) => "archived",
                    (Some(_), false, false) => "kept",
                };
                if let (true, Some(f)) = (args.purge, &found) {
                    if let Some(why) = purge_refusal(&self.before, f, p.user.uid) {
                        let msg = format!("{:?} {why}; refusing to purge it", p.home.path);
                        self.refusals.push(r.error("home", msg).to_string());
                    }
                }
            } else if found.is_none() {
                p.home.state = "created";
                p.home.skel = skel(&mut self.refusals);
                p.home.found = Some(Found {
                    mode: format!("{:04o}", home_mode(r)),
                    uid: p.user.uid.unwrap_or(0),
                    gid: p.user.gid.unwrap_or(0),
                });
            }
        }

        let Some(bp) = backup else { return };
        let b = self.opts.backup.clone();
        let want = backup_home_want(bp);
        // Not as root, a first run could not chown the home it made: it
        // belongs to us, and its ownership stays planned.
        let ours = |uid: u32| !Uid::effective().is_root() && uid == Uid::effective().as_raw();
        match home::inspect_dir(&self.root, &self.opts.backup_home) {
            Ok(Some(f)) if f.uid != 0 && f.uid != want.uid && !ours(f.uid) => self.refusals.push(format!(
                "backup user {b:?}: home {:?} exists and belongs to uid {}, not {b:?}; refusing to adopt it",
                self.opts.backup_home, f.uid
            )),
            Ok(Some(f)) => {
                bp.home.changes = changes_of(home::planned_changes(&f, want));
                bp.home.found = Some(f);
            }
            Ok(None) => {
                bp.home.state = "created";
                bp.home.skel = skel(&mut self.refusals);
            }
            Err(e) => self.refusals.push(format!("backup user {b:?}: {e:#}")),
        }
        match home::precheck_ssh(&self.root, &self.opts.backup_home) {
            Ok(ssh) => {
                if let Some(f) = &ssh.dir {
                    let ssh_want = home::Want {
                        mode: 0o700,
                        ..want
                    };
                    bp.home
                        .changes
                        .extend(prefixed(".ssh", home::planned_changes(f, ssh_want)));
                }
                if let Some(line) = self.key_line() {
                    if ssh.keys_need_write(line.as_bytes(), (want.uid, want.gid)) {
                        bp.keys_state = if ssh.keys.is_some() {
                            "replaced"
                        } else {
                            "installed"
                        };
                    }
                }
                bp.ssh = ssh;
            }
            Err(e) => self.refusals.push(format!("backup user {b:?}: {e:#}")),
        }
    }

    fn key_line(&self) -> Option<String> {
        self.opts
            .key
            .as_ref()
            .map(|k| k.authorized_line(&self.args.backup_root))
    }

    /// On the running system, a user about to be removed must not run.
    fn check_not_running(&self, plans: &[Option<AppPlan>]) -> anyhow::Result<()> {
        if !(self.args.remove && self.root.is_host()) {
            return Ok(());
        }
        let gone: Vec<(String, u32)> = plans
            .iter()
            .flatten()
            .filter(|p| p.user.state == State::Removed)
            .filter_map(|p| Some((p.user.name.clone(), p.user.uid?)))
            .collect();
        if let Some(p) = procs::scan(Path::new("/proc"), &gone)
            .first()
            .map(|p| &p.info)
        {
            bail!(
                "user {:?} still runs processes (pid {} {:?}{}); stop them first; nothing was written",
                p.user,
                p.pid,
                p.comm,
                p.unit.as_ref().map(|u| format!(" in {u}")).unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Write: the account files, then the homes, then the key.
    fn apply(
        &self,
        plans: &mut [Option<AppPlan>],
        backup: Option<&mut BackupPlan>,
    ) -> anyhow::Result<()> {
        let shadow_gid = self.db.gid_of("shadow");
        let mut wrote = false;
        for t in [
            &self.db.group,
            &self.db.gshadow,
            &self.db.passwd,
            &self.db.shadow,
        ] {
            wrote |= t.write(shadow_gid)?.changed();
        }
        if wrote && self.root.is_host() {
            flush_name_caches();
        }

        for (r, p) in self.records.iter().zip(plans.iter_mut()) {
            let Some(p) = p else { continue };
            if self.args.remove {
                if p.home.found.is_none() {
                    continue;
                }
                if self.args.archive {
                    p.home.archive = Some(home::archive(&self.root, &p.home.path, &r.spec.user)?);
                }
                if self.args.purge {
                    home::purge(&self.root, &p.home.path, p.user.uid)?;
                }
            } else if p.home.state == "created" {
                let want = home::Want {
                    uid: p.user.uid.unwrap_or(0),
                    gid: p.user.gid.unwrap_or(0),
                    mode: home_mode(r),
                };
                let made = home::ensure_home(&self.root, &p.home.path, want, false)?;
                p.home.skel = made.skel;
            }
        }

        let Some(bp) = backup else { return Ok(()) };
        let want = backup_home_want(bp);
        let made = home::ensure_home(&self.root, &self.opts.backup_home, want, true)?;
        bp.home.changes = changes_of(made.changes);
        if made.created {
            bp.home.skel = made.skel;
        }
        if let Some(line) = self.key_line() {
            let host = self.root.join(&self.opts.backup_home);
            let (changed, ssh_changes) =
                home::install_keys(&made.fd, &host, line.as_bytes(), (want.uid, want.gid))?;
            bp.home.changes.extend(prefixed(".ssh", ssh_changes));
            bp.keys_state = match (changed, bp.ssh.keys.is_some()) {
                (false, _) => "unchanged",
                (true, true) => "replaced",
                (true, false) => "installed",
            };
        }
        Ok(())
    }
}

fn backup_home_want(bp: &BackupPlan) -> home::Want {
    home::Want {
        uid: bp.user.uid.unwrap_or(0),
        gid: bp.group.gid.unwrap_or(0),
        mode: 0o700,
    }
}

fn prefixed(prefix: &str, list: home::DirChanges) -> Vec<Change> {
    changes_of(list)
        .into_iter()
        .map(|mut c| {
            c.field = format!("{prefix} {}", c.field);
            c
        })
        .collect()
}

/// Run rip-user over parsed arguments.
pub fn run(args: &cli::Cli, stdin: impl Read, mut stdout: impl Write) -> anyhow::Result<Exit> {
    // Validate the input and the options before looking at the root.
    let records = args.input.records(stdin)?;
    let opts = check_options(args, &records)?;
    let root = args.system.root();
    let dry = args.system.dry_run;
    if root.is_host() && !root.join("/etc/passwd").exists() {
        bail!("/etc/passwd does not exist on the running system; refusing to create it");
    }

    // Lock, then read: the whole read-modify-write is under the lock.
    let lock = if dry {
        None
    } else {
        let timeout = Duration::from_secs(args.lock_timeout);
        Some(lock::PwdLock::acquire(&root, timeout)?)
    };
    let db = Db::load(&root)?;
    let mut sx = Session {
        args,
        opts,
        records: &records,
        ranges: IdRanges::load(&root.join("/etc/login.defs"))?,
        root,
        before: db.clone(),
        db,
        today: plan::today(),
        ownership: if Uid::effective().is_root() {
            "applied"
        } else {
            "planned"
        },
        refusals: Vec::new(),
    };

    // Plan everything in memory; refuse before any write.
    let mut plans = sx.plan_apps();
    let mut backup = sx.plan_backup_user();
    sx.plan_memberships(&mut plans, backup.as_mut());
    sx.inspect_homes(&mut plans, backup.as_mut());
    if !sx.refusals.is_empty() {
        for r in &sx.refusals {
            rip_core::note(TOOL, format!("error: {r}"));
        }
        bail!(
            "{} problem(s) found; nothing was written to {:?}",
            sx.refusals.len(),
            sx.root.dir()
        );
    }
    sx.check_not_running(&plans)?;

    if !dry {
        sx.apply(&mut plans, backup.as_mut())?;
    }
    drop(lock);
    report(&sx, plans, backup, &mut stdout)?;
    Ok(Exit::Ok)
}

/// Who must restart, and the output lines.
fn report(
    sx: &Session<'_>,
    plans: Vec<Option<AppPlan>>,
    backup: Option<BackupPlan>,
    stdout: &mut impl Write,
) -> anyhow::Result<()> {
    let (args, db, before, b) = (sx.args, &sx.db, &sx.before, sx.b());

    // Users whose gid set changed, and (on /) every process of a watched
    // user whose groups disagree with the account files, whether or not
    // this run changed them.
    let mut changed_users: BTreeSet<String> = BTreeSet::new();
    let mut watched: Vec<(String, u32)> = Vec::new();
    let mut candidates: Vec<&str> = sx.records.iter().map(|r| r.spec.user.as_str()).collect();
    candidates.push(b);
    for name in candidates {
        if before.passwd.get(name).is_some() && before.gid_set(name) != db.gid_set(name) {
            changed_users.insert(name.to_owned());
        }
        if let Some(uid) = db.passwd.get(name).and_then(|f| f[2].parse::<u32>().ok()) {
            watched.push((name.to_owned(), uid));
        }
    }
    let running = if sx.root.is_host() {
        procs::scan(Path::new("/proc"), &watched)
    } else {
        Vec::new()
    };

    // The backup user's report, shared by every app with backups.
    let backup_report = backup.map(|bp| {
        let mut account = bp.user;
        if !bp.home.changes.is_empty() && account.state == State::Unchanged {
            account.state = State::Converged;
        }
        BackupUserReport {
            groups: db.groups_of(b),
            authorized_keys: KeysReport {
                path: format!(
                    "{}/.ssh/authorized_keys",
                    sx.opts.backup_home.trim_end_matches('/')
                ),
                managed: sx.opts.key.is_some(),
                state: if sx.opts.key.is_none() && bp.ssh.keys.is_none() {
                    "absent"
                } else {
                    bp.keys_state
                },
                before: bp.ssh.seen(),
                command: sx
                    .opts
                    .key
                    .as_ref()
                    .map(|_| format!("{} -ro {}", sshkey::RRSYNC, args.backup_root)),
                rrsync_present: sx.root.join(sshkey::RRSYNC).exists(),
            },
            home_dir: bp.home,
            account,
            primary_group: bp.group,
        }
    });

    for (r, p) in sx.records.iter().zip(plans) {
        let Some(p) = p else { continue };
        let s = &r.spec;
        let enabled = s.backups_enabled();
        let member = db.members_of(&s.group).iter().any(|m| m == b);
        let account = if enabled || p.membership != "unchanged" {
            backup_report.clone()
        } else {
            None
        };

        // A backup process is stale for this app when its groups disagree
        // with the membership; an app process when its gid set changed.
        let gid_x = db.gid_of(&s.group).or_else(|| before.gid_of(&s.group));
        let app_set = db.gid_set(&s.user);
        let processes: Vec<Stale> = running
            .iter()
            .filter(|pr| {
                (pr.info.user == b && gid_x.is_some_and(|g| pr.groups.contains(&g) != member))
                    || (pr.info.user == s.user && !args.remove && pr.groups != app_set)
            })
            .map(|pr| pr.info.clone())
            .collect();
        let mut users = Vec::new();
        if p.membership != "unchanged" && changed_users.contains(b)
            || processes.iter().any(|pr| pr.user == b)
        {
            users.push(b.to_owned());
        }
        if !args.remove
            && (changed_users.contains(&s.user) || processes.iter().any(|pr| pr.user == s.user))
        {
            users.push(s.user.clone());
        }
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
            dry_run: args.system.dry_run,
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
                processes_checked: sx.root.is_host(),
            },
        };
        rip_core::write_record(&mut *stdout, r, KEY, &result)?;
    }
    Ok(())
}

/// Tell name-service caches that the account files changed, as shadow-utils
/// does after each edit (best effort: a missing or stopped daemon is fine).
fn flush_name_caches() {
    let calls: [(&str, &[&str]); 3] = [
        ("/usr/sbin/nscd", &["-i", "passwd"]),
        ("/usr/sbin/nscd", &["-i", "group"]),
        ("/usr/sbin/sss_cache", &["-UG"]),
    ];
    for (cmd, args) in calls {
        if Path::new(cmd).exists() {
            let ok = std::process::Command::new(cmd)
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                rip_core::note(TOOL, format!("warning: {cmd} {} failed", args.join(" ")));
            }
        }
    }
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
