//! Converging the account tables: create, adopt or refuse users and groups,
//! allocate ids the way shadow-utils does for system accounts, change group
//! memberships, remove accounts. Everything here edits the in-memory tables
//! only; a refused account leaves them exactly as they were.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};

use crate::files::{members, Kind, Table};
use crate::logindefs::IdRanges;

/// The four tables of one root.
#[derive(Debug, Clone)]
pub struct Db {
    /// `/etc/passwd`.
    pub passwd: Table,
    /// `/etc/group`.
    pub group: Table,
    /// `/etc/shadow`.
    pub shadow: Table,
    /// `/etc/gshadow`.
    pub gshadow: Table,
}

/// Why an account cannot be managed: the field at fault and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Spec field the refusal is about (`user`, `group`, `home`).
    pub field: String,
    /// What is wrong, naming the record in the account files.
    pub message: String,
}

fn refuse<T>(field: &str, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        field: field.to_owned(),
        message: message.into(),
    })
}

/// One field that changed, from what to what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Field name (`uid`, `gid`, `home`, `shell`, `gecos`, `password`, ...).
    pub field: String,
    /// Old value (null when there was none).
    pub from: Value,
    /// New value (null when removed).
    pub to: Value,
}

fn change(field: &str, from: impl Into<Value>, to: impl Into<Value>) -> Change {
    Change {
        field: field.to_owned(),
        from: from.into(),
        to: to.into(),
    }
}

/// What happened to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// It did not exist and was created.
    Created,
    /// It existed and some fields were brought in line.
    Converged,
    /// It existed and already matched.
    #[default]
    Unchanged,
    /// It was removed.
    Removed,
    /// It was left in place on removal (shared, or not the private group).
    Kept,
    /// It does not exist (removal of an absent account).
    Absent,
}

/// The user part of the JSON result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UserReport {
    /// Login name.
    pub name: String,
    /// User id (null when absent).
    pub uid: Option<u32>,
    /// Primary group id.
    pub gid: Option<u32>,
    /// Home directory.
    pub home: Option<String>,
    /// Login shell.
    pub shell: Option<String>,
    /// What was done.
    pub state: State,
    /// Whether an account that rip-user had not created was taken over.
    pub adopted: bool,
    /// Every field changed, from what to what.
    pub changes: Vec<Change>,
}

/// The group part of the JSON result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupReport {
    /// Group name.
    pub name: String,
    /// Group id (null when absent).
    pub gid: Option<u32>,
    /// Supplementary members after the run.
    pub members: Vec<String>,
    /// What was done.
    pub state: State,
    /// Whether an existing group that rip-user had not created was taken over.
    pub adopted: bool,
    /// Every field changed.
    pub changes: Vec<Change>,
    /// Why a group was kept on removal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_because: Option<String>,
}

impl UserReport {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        matches!(
            self.state,
            State::Created | State::Converged | State::Removed
        )
    }
}

impl GroupReport {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
            || matches!(
                self.state,
                State::Created | State::Converged | State::Removed
            )
    }
}

/// The account one wants.
#[derive(Debug, Clone)]
pub struct Want {
    /// User name.
    pub user: String,
    /// Primary group name.
    pub group: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
    /// GECOS for a new user; also enforced on an existing one when
    /// `enforce_gecos` is set.
    pub gecos: String,
    /// Bring an existing user's GECOS in line too.
    pub enforce_gecos: bool,
    /// Accept an existing account with an id below the dynamic system range
    /// (a distribution's static account, such as Debian's `backup`, 34).
    pub allow_static: bool,
    /// Take over an existing user whose GECOS is not `gecos` (one rip-user
    /// did not create): only with `--adopt`, or for Debian's static
    /// `backup` account. Otherwise such a user is refused.
    pub adopt_unmarked: bool,
    /// Users that may already be members of the group (the app user
    /// itself, the backup user).
    pub allowed_members: Vec<String>,
}

/// Groups that grant privileges on the host (root-equivalence, logs,
/// devices, container or VM control, password hashes). An app's primary
/// group is never one of them, whatever its gid: the app's user would get
/// the privilege, and every member of the group the app's files.
/// `video` and `audio` are in: they open camera, screen and microphone
/// devices, which no web app needs.
pub const PRIVILEGED_GROUPS: &[&str] = &[
    "root",
    "sudo",
    "adm",
    "wheel",
    "admin",
    "staff",
    "shadow",
    "disk",
    "kmem",
    "tty",
    "utmp",
    "docker",
    "lxd",
    "libvirt",
    "libvirt-qemu",
    "kvm",
    "systemd-journal",
    "systemd-network",
    "input",
    "video",
    "audio",
    "render",
    "plugdev",
    "netdev",
    "dialout",
    "crontab",
    "ssl-cert",
    "_ssh",
    "messagebus",
    "polkitd",
    "tss",
    "sgx",
    "www-data",
];

/// The GECOS that marks a user as an app account managed by rip-user.
pub fn app_gecos(name: &str) -> String {
    format!("rip app {name}")
}

/// Whether a shadow password field forbids password login.
pub fn is_locked(pw: &str) -> bool {
    pw.starts_with('!') || pw.starts_with('*')
}

/// Shadow's choice of a system id: the highest free id below the lowest
/// one in use in `min..=max`; when that runs out, the highest free id of
/// the whole range.
pub fn alloc_id(used: &BTreeSet<u32>, min: u32, max: u32) -> Option<u32> {
    let lowest = used
        .range(min..=max)
        .next()
        .copied()
        .unwrap_or(max.saturating_add(1));
    (min..lowest)
        .rev()
        .chain((min..=max).rev())
        .find(|id| !used.contains(id))
}

fn parse_id(field: &str, what: &str, name: &str, value: &str) -> Result<u32, Refusal> {
    value.parse().or_else(|_| {
        refuse(
            field,
            format!(
                "{what} entry of {name:?} has a malformed id {value:?}; fix it first (pwck/grpck)"
            ),
        )
    })
}

impl Db {
    /// Load the four tables under `root`.
    pub fn load(root: &rip_core::Root) -> anyhow::Result<Self> {
        Ok(Self {
            passwd: Table::load(Kind::Passwd, root)?,
            group: Table::load(Kind::Group, root)?,
            shadow: Table::load(Kind::Shadow, root)?,
            gshadow: Table::load(Kind::Gshadow, root)?,
        })
    }

    /// Whether user passwords live in `/etc/shadow`: it exists, or
    /// `/etc/passwd` does not either (a fresh root gets all four files, as
    /// Debian ships them). A root with passwd but no shadow stays
    /// shadow-less, as `useradd` keeps it: the lock `!` goes into passwd.
    pub fn shadowed_users(&self) -> bool {
        self.shadow.meta.is_some() || self.passwd.meta.is_none()
    }

    /// The same for groups: `/etc/gshadow` exists, or `/etc/group` does not.
    pub fn shadowed_groups(&self) -> bool {
        self.gshadow.meta.is_some() || self.group.meta.is_none()
    }

    /// Every uid in use.
    pub fn uids(&self) -> BTreeSet<u32> {
        self.passwd
            .entries()
            .filter_map(|f| f[2].parse().ok())
            .collect()
    }

    /// Every gid in use.
    pub fn gids(&self) -> BTreeSet<u32> {
        self.group
            .entries()
            .filter_map(|f| f[2].parse().ok())
            .collect()
    }

    /// Users whose primary group is `gid`.
    fn primary_users(&self, gid: u32) -> Vec<String> {
        self.passwd
            .entries()
            .filter(|f| f[3].parse::<u32>().ok() == Some(gid))
            .map(|f| f[0].clone())
            .collect()
    }

    /// Names of the groups `user` is a supplementary member of.
    pub fn groups_of(&self, user: &str) -> Vec<String> {
        self.group
            .entries()
            .filter(|f| members(&f[3]).iter().any(|m| m == user))
            .map(|f| f[0].clone())
            .collect()
    }

    /// The gid of group `name`.
    pub fn gid_of(&self, name: &str) -> Option<u32> {
        self.group.get(name).and_then(|f| f[2].parse().ok())
    }

    /// Every gid `user` gets at login (primary first), sorted after it.
    pub fn gid_set(&self, user: &str) -> BTreeSet<u32> {
        let mut set: BTreeSet<u32> = self
            .passwd
            .get(user)
            .and_then(|f| f[3].parse().ok())
            .into_iter()
            .collect();
        for g in self.groups_of(user) {
            if let Some(gid) = self.gid_of(&g) {
                set.insert(gid);
            }
        }
        set
    }

    /// Members of group `name`, from `/etc/group`.
    pub fn members_of(&self, name: &str) -> Vec<String> {
        self.group
            .get(name)
            .map(|f| members(&f[3]))
            .unwrap_or_default()
    }

    /// Whether `user` is an app account created (or adopted) by rip-user.
    pub fn is_managed_app(&self, user: &str) -> bool {
        self.passwd
            .get(user)
            .is_some_and(|f| f[4] == app_gecos(user))
    }

    /// Add `user` to group `name` in group and gshadow, appending.
    /// Whether it was added.
    pub fn add_member(&mut self, name: &str, user: &str) -> bool {
        let mut added = false;
        for t in [&mut self.group, &mut self.gshadow] {
            if let Some(f) = t.get_mut(name) {
                let mut m = members(&f[3]);
                if !m.iter().any(|x| x == user) {
                    m.push(user.to_owned());
                    f[3] = m.join(",");
                    added = true;
                }
            }
        }
        added
    }

    /// Remove `user` from group `name` (members, and gshadow admins).
    /// Whether it was a member.
    pub fn remove_member(&mut self, name: &str, user: &str) -> bool {
        let mut removed = false;
        for t in [&mut self.group, &mut self.gshadow] {
            let is_gshadow = t.kind == Kind::Gshadow;
            if let Some(f) = t.get_mut(name) {
                let cols: &[usize] = if is_gshadow { &[2, 3] } else { &[3] };
                for &c in cols {
                    let m = members(&f[c]);
                    if m.iter().any(|x| x == user) {
                        f[c] = m
                            .into_iter()
                            .filter(|x| x != user)
                            .collect::<Vec<_>>()
                            .join(",");
                        removed = true;
                    }
                }
            }
        }
        removed
    }

    /// Why `home` cannot be `user`'s home: it is, lies inside or contains
    /// the home of another account in /etc/passwd (a home of `/` is
    /// ignored: it means "none").
    pub fn home_clash(&self, user: &str, home: &str) -> Option<String> {
        let want = Path::new(home);
        self.passwd
            .entries()
            .filter(|f| f[0] != user && f[5] != "/" && f[5].starts_with('/'))
            .find_map(|f| {
                let other = Path::new(&f[5]);
                let how = if want == other {
                    "is already"
                } else if want.starts_with(other) {
                    "lies inside"
                } else if other.starts_with(want) {
                    "contains"
                } else {
                    return None;
                };
                Some(format!(
                    "{home:?} {how} the home {:?} of user {:?} in /etc/passwd; an app's home must not overlap another account's",
                    f[5], f[0]
                ))
            })
    }

    fn check_user_id(&self, r: &IdRanges, want: &Want, uid: u32) -> Result<(), Refusal> {
        let name = &want.user;
        if uid == 0 {
            return refuse(
                "user",
                format!("user {name:?} in /etc/passwd has uid 0 (root); refusing to manage it"),
            );
        }
        let static_ok = want.allow_static && uid < r.sys_uid_min;
        if r.is_sys_uid(uid) || static_ok {
            return Ok(());
        }
        if uid >= r.uid_min {
            refuse("user", format!(
                "user {name:?} already exists in /etc/passwd with uid {uid}, a regular (non-system) account (UID_MIN {}); refusing to take it over",
                r.uid_min
            ))
        } else {
            refuse("user", format!(
                "user {name:?} already exists in /etc/passwd with uid {uid}, outside the system range {}..{} (a distribution's static account); refusing to take it over",
                r.sys_uid_min, r.sys_uid_max
            ))
        }
    }

    fn check_group(&self, r: &IdRanges, want: &Want, gid: u32) -> Result<(), Refusal> {
        let name = &want.group;
        if gid == 0 {
            return refuse(
                "group",
                format!("group {name:?} in /etc/group has gid 0 (root); refusing to use it"),
            );
        }
        let static_ok = want.allow_static && gid < r.sys_gid_min;
        if !r.is_sys_gid(gid) && !static_ok {
            return refuse("group", format!(
                "group {name:?} already exists in /etc/group with gid {gid}, outside the system range {}..{}; refusing to take it over",
                r.sys_gid_min, r.sys_gid_max
            ));
        }
        let others: Vec<String> = self
            .primary_users(gid)
            .into_iter()
            .filter(|u| *u != want.user)
            .collect();
        if !others.is_empty() {
            return refuse("group", format!(
                "group {name:?} (gid {gid}) is the primary group of user {:?}; sharing it would give that user the app's files",
                others.join(",")
            ));
        }
        let mut listed = self.members_of(name);
        if let Some(f) = self.gshadow.get(name) {
            listed.extend(members(&f[3]));
            listed.extend(members(&f[2]));
        }
        let extra: BTreeSet<String> = listed
            .into_iter()
            .filter(|m| !want.allowed_members.contains(m))
            .collect();
        if !extra.is_empty() {
            return refuse("group", format!(
                "group {name:?} (gid {gid}) has other members ({}) who would gain access to the app's files; remove them first",
                extra.into_iter().collect::<Vec<_>>().join(",")
            ));
        }
        Ok(())
    }

    /// Create or converge the account `want`. On refusal nothing changed.
    pub fn ensure(
        &mut self,
        r: &IdRanges,
        want: &Want,
        today: i64,
    ) -> Result<(UserReport, GroupReport), Refusal> {
        // Look at what exists, and refuse before touching anything.
        let user = self.passwd.get(&want.user).cloned();
        if user.is_none() && self.passwd.name_taken(&want.user) {
            return refuse(
                "user",
                format!(
                    "/etc/passwd has a malformed line for {:?}; fix it first (pwck)",
                    want.user
                ),
            );
        }
        let group = self.group.get(&want.group).cloned();
        if group.is_none() && self.group.name_taken(&want.group) {
            return refuse(
                "group",
                format!(
                    "/etc/group has a malformed line for {:?}; fix it first (grpck)",
                    want.group
                ),
            );
        }
        let cur_uid = match &user {
            Some(f) => Some(parse_id("user", "/etc/passwd", &want.user, &f[2])?),
            None => None,
        };
        let cur_gid = match &group {
            Some(f) => Some(parse_id("group", "/etc/group", &want.group, &f[2])?),
            None => None,
        };
        if let Some(uid) = cur_uid {
            self.check_user_id(r, want, uid)?;
        }
        if let Some(f) = &user {
            if f[4] != want.gecos && !want.adopt_unmarked {
                return refuse("user", format!(
                    "user {:?} (uid {}) already exists in /etc/passwd and was not created by rip-user (its GECOS is {:?}, not {:?}); it may belong to an installed package, so refusing to take it over (pass --adopt to take over a system account on purpose)",
                    want.user, f[2], f[4], want.gecos
                ));
            }
        }
        if PRIVILEGED_GROUPS.contains(&want.group.as_str()) {
            // Also when absent: a package installed later (docker, libvirt)
            // would take the existing group over as its own.
            return refuse("group", format!(
                "group {:?} is a privileged system group name; refusing to create or use it as an app's primary group (its members would gain the app's files, and the app the group's privileges)",
                want.group
            ));
        }
        if let Some(gid) = cur_gid {
            self.check_group(r, want, gid)?;
        }
        if let Some(why) = self.home_clash(&want.user, &want.home) {
            return refuse("home", why);
        }
        if user.is_none() {
            if let Some(f) = self.shadow.get(&want.user) {
                if !is_locked(&f[1]) {
                    return refuse("user", format!(
                        "/etc/shadow has an entry for {:?} with a usable password but /etc/passwd has none; remove it first",
                        want.user
                    ));
                }
            }
        }
        if group.is_none() {
            if let Some(f) = self.gshadow.get(&want.group) {
                if !is_locked(&f[1]) && !f[1].is_empty() {
                    return refuse("group", format!(
                        "/etc/gshadow has an entry for {:?} with a group password but /etc/group has none; remove it first",
                        want.group
                    ));
                }
            }
        }

        // Choose ids: uid == gid where the id is free on both sides.
        let uids = self.uids();
        let gids = self.gids();
        let (uid, gid) = match (cur_uid, cur_gid) {
            (Some(u), Some(g)) => (u, g),
            (Some(u), None) => {
                let g = if !gids.contains(&u) && (r.is_sys_gid(u) || want.allow_static) {
                    Some(u)
                } else {
                    alloc_id(&gids, r.sys_gid_min, r.sys_gid_max)
                };
                match g {
                    Some(g) => (u, g),
                    None => {
                        return refuse(
                            "group",
                            format!("no free gid left in {}..{}", r.sys_gid_min, r.sys_gid_max),
                        )
                    }
                }
            }
            (None, Some(g)) => {
                let u = if !uids.contains(&g) && r.is_sys_uid(g) {
                    Some(g)
                } else {
                    alloc_id(&uids, r.sys_uid_min, r.sys_uid_max)
                };
                match u {
                    Some(u) => (u, g),
                    None => {
                        return refuse(
                            "user",
                            format!("no free uid left in {}..{}", r.sys_uid_min, r.sys_uid_max),
                        )
                    }
                }
            }
            (None, None) => {
                let both: BTreeSet<u32> = uids.union(&gids).copied().collect();
                let lo = r.sys_uid_min.max(r.sys_gid_min);
                let hi = r.sys_uid_max.min(r.sys_gid_max);
                match (lo <= hi).then(|| alloc_id(&both, lo, hi)).flatten() {
                    Some(id) => (id, id),
                    None => {
                        let u = alloc_id(&uids, r.sys_uid_min, r.sys_uid_max);
                        let g = alloc_id(&gids, r.sys_gid_min, r.sys_gid_max);
                        match (u, g) {
                            (Some(u), Some(g)) => (u, g),
                            (None, _) => {
                                return refuse(
                                    "user",
                                    format!(
                                        "no free uid left in {}..{}",
                                        r.sys_uid_min, r.sys_uid_max
                                    ),
                                )
                            }
                            (_, None) => {
                                return refuse(
                                    "group",
                                    format!(
                                        "no free gid left in {}..{}",
                                        r.sys_gid_min, r.sys_gid_max
                                    ),
                                )
                            }
                        }
                    }
                }
            }
        };

        // The group.
        let mut g_rep = GroupReport {
            name: want.group.clone(),
            gid: Some(gid),
            ..Default::default()
        };
        let shadowed_groups = self.shadowed_groups();
        if group.is_none() {
            // Without gshadow, useradd locks the group in /etc/group itself.
            let password = if shadowed_groups { "x" } else { "!" };
            self.group.append(vec![
                want.group.clone(),
                password.into(),
                gid.to_string(),
                String::new(),
            ]);
            g_rep.state = State::Created;
        } else if !self.is_managed_app(&want.user) && want.enforce_gecos {
            g_rep.adopted = true;
        }
        match self.gshadow.get_mut(&want.group) {
            _ if !shadowed_groups => {}
            Some(f) if group.is_none() => {
                // A locked leftover without its /etc/group line: reuse it.
                *f = vec![want.group.clone(), "!".into(), String::new(), String::new()];
            }
            Some(_) => {}
            None => {
                self.gshadow.append(vec![
                    want.group.clone(),
                    "!".into(),
                    String::new(),
                    String::new(),
                ]);
                if group.is_some() {
                    g_rep.changes.push(change("gshadow", Value::Null, "!"));
                    g_rep.state = State::Converged;
                }
            }
        }

        // The user.
        let mut u_rep = UserReport {
            name: want.user.clone(),
            uid: Some(uid),
            gid: Some(gid),
            home: Some(want.home.clone()),
            shell: Some(want.shell.clone()),
            ..Default::default()
        };
        let shadowed_users = self.shadowed_users();
        match user {
            None => {
                // Without shadow, useradd locks the user in /etc/passwd.
                let password = if shadowed_users { "x" } else { "!" };
                self.passwd.append(vec![
                    want.user.clone(),
                    password.into(),
                    uid.to_string(),
                    gid.to_string(),
                    want.gecos.clone(),
                    want.home.clone(),
                    want.shell.clone(),
                ]);
                if shadowed_users {
                    self.shadow.remove(&want.user);
                    self.shadow.append(shadow_entry(&want.user, today));
                }
                u_rep.state = State::Created;
            }
            Some(old) => {
                u_rep.adopted = want.enforce_gecos && old[4] != want.gecos;
                let mut fields = old.clone();
                if !shadowed_users {
                    // The hash lives here: lock it as `usermod -L` does.
                    if !is_locked(&fields[1]) {
                        fields[1] = format!("!{}", fields[1]);
                        u_rep.changes.push(change("password", "usable", "locked"));
                    }
                } else if fields[1] != "x" {
                    u_rep.changes.push(change("passwd_password", "set", "x"));
                    fields[1] = "x".into();
                }
                if fields[3] != gid.to_string() {
                    let from = fields[3]
                        .parse::<u32>()
                        .map(Value::from)
                        .unwrap_or(json!(fields[3]));
                    u_rep.changes.push(change("gid", from, gid));
                    fields[3] = gid.to_string();
                }
                if want.enforce_gecos && fields[4] != want.gecos {
                    u_rep
                        .changes
                        .push(change("gecos", fields[4].clone(), want.gecos.clone()));
                    fields[4] = want.gecos.clone();
                }
                if fields[5] != want.home {
                    u_rep
                        .changes
                        .push(change("home", fields[5].clone(), want.home.clone()));
                    fields[5] = want.home.clone();
                }
                if fields[6] != want.shell {
                    u_rep
                        .changes
                        .push(change("shell", fields[6].clone(), want.shell.clone()));
                    fields[6] = want.shell.clone();
                }
                if let Some(f) = self.passwd.get_mut(&want.user) {
                    *f = fields;
                }
                match self.shadow.get_mut(&want.user) {
                    _ if !shadowed_users => {}
                    None => {
                        self.shadow.append(shadow_entry(&want.user, today));
                        u_rep.changes.push(change("shadow", Value::Null, "!"));
                    }
                    Some(f) if !is_locked(&f[1]) => {
                        // Like `usermod -L`: keep the hash, make it unusable.
                        f[1] = format!("!{}", f[1]);
                        u_rep.changes.push(change("password", "usable", "locked"));
                    }
                    Some(_) => {}
                }
                if !want.enforce_gecos {
                    u_rep.adopted = !u_rep.changes.is_empty();
                }
                u_rep.state = if u_rep.changes.is_empty() {
                    State::Unchanged
                } else {
                    State::Converged
                };
            }
        }
        g_rep.members = self.members_of(&want.group);
        Ok((u_rep, g_rep))
    }

    /// Remove the app account `user` and, when it is the user's private
    /// group and nobody else uses it, `group`; `backup` loses its
    /// membership either way. On refusal nothing changed.
    pub fn remove(
        &mut self,
        user: &str,
        group: &str,
        backup: &str,
    ) -> Result<(UserReport, GroupReport), Refusal> {
        let mut u_rep = UserReport {
            name: user.to_owned(),
            ..Default::default()
        };
        let mut g_rep = GroupReport {
            name: group.to_owned(),
            gid: self.gid_of(group),
            ..Default::default()
        };
        let entry = self.passwd.get(user).cloned();
        let user_gid = match &entry {
            Some(f) => {
                if !self.is_managed_app(user) {
                    return refuse("user", format!(
                        "user {user:?} (uid {}) was not created by rip-user (its GECOS is {:?}, not {:?}); refusing to remove it",
                        f[2], f[4], app_gecos(user)
                    ));
                }
                u_rep.uid = f[2].parse().ok();
                u_rep.gid = f[3].parse().ok();
                u_rep.home = Some(f[5].clone());
                u_rep.shell = Some(f[6].clone());
                f[3].parse::<u32>().ok()
            }
            None => None,
        };

        // The user, its shadow entry and its memberships (as userdel does).
        if entry.is_some() {
            self.passwd.remove(user);
            self.shadow.remove(user);
            let groups: Vec<String> = self.group.entries().map(|f| f[0].clone()).collect();
            for g in groups {
                self.remove_member(&g, user);
            }
            u_rep.state = State::Removed;
        } else {
            u_rep.state = State::Absent;
            if self.shadow.get(user).is_some_and(|f| is_locked(&f[1])) {
                self.shadow.remove(user);
                u_rep.state = State::Removed;
                u_rep.changes.push(change("shadow", "!", Value::Null));
            }
        }

        // The group.
        let Some(gid) = g_rep.gid else {
            g_rep.state = State::Absent;
            return Ok((u_rep, g_rep));
        };
        if self.remove_member(group, backup) {
            g_rep.changes.push(change("members", backup, Value::Null));
        }
        let users = self.primary_users(gid);
        let left: Vec<String> = self.members_of(group);
        let why = if group != user {
            Some(format!("it is not {user:?}'s private group"))
        } else if entry.is_some() && user_gid != Some(gid) {
            Some(format!("it was not {user:?}'s primary group"))
        } else if !users.is_empty() {
            Some(format!("it is the primary group of {}", users.join(",")))
        } else if !left.is_empty() {
            Some(format!("it still has members {}", left.join(",")))
        } else {
            None
        };
        match why {
            Some(why) => {
                g_rep.state = State::Kept;
                g_rep.kept_because = Some(why);
                g_rep.members = left;
            }
            None => {
                self.group.remove(group);
                self.gshadow.remove(group);
                g_rep.state = State::Removed;
            }
        }
        Ok((u_rep, g_rep))
    }
}

/// A new system user's shadow line, as `useradd -r` writes it: locked,
/// last change today, no ageing.
fn shadow_entry(user: &str, today: i64) -> Vec<String> {
    let mut f = vec![user.to_owned(), "!".into(), today.to_string()];
    f.extend(std::iter::repeat(String::new()).take(6));
    f
}

/// Days since the epoch, from `SOURCE_DATE_EPOCH` when set (as shadow-utils
/// does), else the clock.
pub fn today() -> i64 {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    secs / 86_400
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn db(passwd: &str, group: &str, shadow: &str, gshadow: &str) -> Db {
        let t = |k, s: &str| Table::parse(k, PathBuf::from("/x"), s.as_bytes().to_vec(), None);
        Db {
            passwd: t(Kind::Passwd, passwd),
            group: t(Kind::Group, group),
            shadow: t(Kind::Shadow, shadow),
            gshadow: t(Kind::Gshadow, gshadow),
        }
    }

    /// A root whose passwd and group exist on disk but shadow and gshadow
    /// do not.
    fn shadowless(passwd: &str, group: &str) -> Db {
        let mut d = db(passwd, group, "", "");
        let meta = Some(crate::files::Meta {
            mode: 0o644,
            uid: 0,
            gid: 0,
        });
        d.passwd.meta = meta;
        d.group.meta = meta;
        d
    }

    fn want(name: &str) -> Want {
        Want {
            user: name.into(),
            group: name.into(),
            home: format!("/home/{name}"),
            shell: "/bin/bash".into(),
            gecos: app_gecos(name),
            enforce_gecos: true,
            allow_static: false,
            adopt_unmarked: false,
            allowed_members: vec![name.into(), "backup".into()],
        }
    }

    const ROOT: &str = "root:x:0:0:root:/root:/bin/bash\n";

    #[test]
    fn alloc_goes_down_from_the_top() {
        let used = BTreeSet::from([5, 998, 999]);

        assert_eq!(alloc_id(&BTreeSet::new(), 101, 999), Some(999));
        assert_eq!(alloc_id(&used, 101, 999), Some(997));
    }

    #[test]
    fn alloc_wraps_to_gaps_when_the_bottom_is_used() {
        let used = BTreeSet::from([101, 102, 999]);

        assert_eq!(alloc_id(&used, 101, 999), Some(998));
        assert_eq!(alloc_id(&BTreeSet::from([1, 2]), 1, 2), None);
    }

    #[test]
    fn creates_like_useradd_r() {
        let mut d = db(ROOT, "root:x:0:\n", "", "");

        let (u, g) = d
            .ensure(&IdRanges::default(), &want("app1"), 20000)
            .unwrap();

        assert_eq!(
            (u.uid, g.gid, u.state),
            (Some(999), Some(999), State::Created)
        );
        assert!(String::from_utf8(d.passwd.render())
            .unwrap()
            .ends_with("app1:x:999:999:rip app app1:/home/app1:/bin/bash\n"));
        assert_eq!(d.shadow.render(), b"app1:!:20000::::::\n");
        assert_eq!(d.gshadow.render(), b"app1:!::\n");
    }

    #[test]
    fn issue4_shadowless_root_stays_shadowless_like_useradd() {
        let mut d = shadowless(ROOT, "root:x:0:\n");

        let (u, g) = d
            .ensure(&IdRanges::default(), &want("app1"), 20000)
            .unwrap();

        assert_eq!((u.state, g.state), (State::Created, State::Created));
        assert!(String::from_utf8(d.passwd.render())
            .unwrap()
            .ends_with("app1:!:999:999:rip app app1:/home/app1:/bin/bash\n"));
        assert_eq!(d.group.render(), b"root:x:0:\napp1:!:999:\n");
        assert!(d.shadow.render().is_empty() && d.gshadow.render().is_empty());
    }

    #[test]
    fn issue4_shadowless_root_locks_the_hash_in_passwd() {
        let mut d = shadowless(
            "app1:$6$hash:990:990::/home/app1:/bin/bash\n",
            "app1:!:990:\n",
        );
        let mut w = want("app1");
        w.adopt_unmarked = true;

        let (u, g) = d.ensure(&IdRanges::default(), &w, 1).unwrap();
        let again = d.ensure(&IdRanges::default(), &w, 1).unwrap().0;

        assert_eq!(d.passwd.get("app1").unwrap()[1], "!$6$hash");
        let fields: Vec<&str> = u.changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["password", "gecos"]);
        assert_eq!(g.state, State::Unchanged, "no gshadow entry is added");
        assert!(d.shadow.render().is_empty() && d.gshadow.render().is_empty());
        assert_eq!(again.state, State::Unchanged);
    }

    #[test]
    fn uid_follows_an_existing_group() {
        let mut d = db(ROOT, "root:x:0:\napp1:x:500:\n", "", "app1:!::\n");

        let (u, g) = d.ensure(&IdRanges::default(), &want("app1"), 1).unwrap();

        assert_eq!(
            (u.uid, g.gid, g.state),
            (Some(500), Some(500), State::Unchanged)
        );
    }

    #[test]
    fn pair_skips_ids_taken_on_either_side() {
        let mut d = db("x:x:999:999::/x:/bin/sh\n", "y:x:998:\nx:x:999:\n", "", "");

        let (u, g) = d.ensure(&IdRanges::default(), &want("app1"), 1).unwrap();

        assert_eq!((u.uid, g.gid), (Some(997), Some(997)));
    }

    #[test]
    fn converges_home_shell_and_group_and_says_from_what() {
        let mut d = db(
            "app1:x:990:990:rip app app1:/srv/app1:/usr/sbin/nologin\n",
            "app1:x:990:\nother:x:980:\n",
            "app1:!:1::::::\n",
            "app1:!::\nother:!::\n",
        );
        let mut w = want("app1");
        w.group = "other".into();

        let (u, _) = d.ensure(&IdRanges::default(), &w, 1).unwrap();

        let fields: Vec<&str> = u.changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["gid", "home", "shell"]);
        assert_eq!(u.changes[0].from, json!(990));
        assert_eq!(u.state, State::Converged);
    }

    #[test]
    fn refuses_a_regular_user_and_root() {
        let mut d = db(
            "app1:x:1000:1000::/home/app1:/bin/bash\nroot:x:0:0::/root:/bin/sh\n",
            "",
            "",
            "",
        );

        let e = d
            .ensure(&IdRanges::default(), &want("app1"), 1)
            .unwrap_err();
        let e0 = d
            .ensure(&IdRanges::default(), &want("root"), 1)
            .unwrap_err();

        assert!(e.message.contains("regular (non-system)"), "{}", e.message);
        assert!(e0.message.contains("uid 0"));
    }

    #[test]
    fn refuses_a_group_with_foreign_members_without_changing_anything() {
        let mut d = db(ROOT, "app1:x:900:alice\n", "", "app1:!::alice\n");
        let before = d.clone();

        let e = d
            .ensure(&IdRanges::default(), &want("app1"), 1)
            .unwrap_err();

        assert_eq!(e.field, "group");
        assert!(e.message.contains("alice"));
        assert_eq!(d.passwd.render(), before.passwd.render());
        assert_eq!(d.group.render(), before.group.render());
    }

    #[test]
    fn locks_a_usable_password_of_an_adopted_user() {
        let mut d = db(
            "app1:x:990:990::/home/app1:/bin/bash\n",
            "app1:x:990:\n",
            "app1:$6$hash:1::::::\n",
            "app1:!::\n",
        );

        let mut w = want("app1");
        // An unmarked user is only taken over with --adopt.
        w.adopt_unmarked = true;

        let (u, _) = d.ensure(&IdRanges::default(), &w, 1).unwrap();

        assert!(u.adopted);
        assert_eq!(d.shadow.get("app1").unwrap()[1], "!$6$hash");
    }

    #[test]
    fn high1_refuses_a_package_account_without_the_marker_or_adopt() {
        let passwd =
            "prometheus:x:102:104:Prometheus daemon,,,:/var/lib/prometheus:/usr/sbin/nologin\n";
        let mut d = db(passwd, "prometheus:x:104:\n", "", "");
        let before = d.clone();

        let e = d
            .ensure(&IdRanges::default(), &want("prometheus"), 1)
            .unwrap_err();

        assert_eq!(e.field, "user");
        assert!(
            e.message.contains("not created by rip-user"),
            "{}",
            e.message
        );
        assert!(e.message.contains("--adopt"), "{}", e.message);
        assert_eq!(d.passwd.render(), before.passwd.render());
    }

    #[test]
    fn high1_never_adopts_a_privileged_group() {
        for g in ["docker", "systemd-journal", "sudo", "adm", "shadow", "disk"] {
            let mut d = db(ROOT, &format!("{g}:x:990:\n"), "", &format!("{g}:!::\n"));
            let mut w = want("app1");
            w.group = g.into();
            w.adopt_unmarked = true;

            let e = d.ensure(&IdRanges::default(), &w, 1).unwrap_err();

            assert_eq!(e.field, "group", "{g}");
            assert!(e.message.contains("privileged"), "{g}: {}", e.message);
        }
    }

    #[test]
    fn high1_never_creates_a_group_with_a_privileged_name() {
        let mut d = db(ROOT, "root:x:0:\n", "", "");
        let mut w = want("app1");
        w.group = "docker".into();

        let e = d.ensure(&IdRanges::default(), &w, 1).unwrap_err();

        assert_eq!(e.field, "group");
        assert!(d.group.get("docker").is_none());
    }

    #[test]
    fn high2_home_may_not_overlap_another_accounts_home() {
        let d = db(
            "root:x:0:0::/root:/bin/sh\ncrontab:x:990:990::/var/spool/cron:/bin/false\nnobody:x:65534:65534::/:/bin/false\nbackup:x:34:34::/home/backup:/bin/sh\n",
            "",
            "",
            "",
        );

        let inside = d.home_clash("app1", "/var/spool/cron/x").unwrap();
        let same = d.home_clash("app1", "/home/backup").unwrap();
        let around = d.home_clash("app1", "/var/spool").unwrap();

        assert!(inside.contains("lies inside") && inside.contains("crontab"));
        assert!(same.contains("is already") && same.contains("backup"));
        assert!(around.contains("contains"));
        assert_eq!(
            d.home_clash("app1", "/home/app1"),
            None,
            "a home of / is none"
        );
        assert_eq!(d.home_clash("crontab", "/var/spool/cron"), None, "its own");
    }

    #[test]
    fn removal_drops_the_private_group_and_backup_membership() {
        let mut d = db(
            "app1:x:990:990:rip app app1:/home/app1:/bin/bash\n",
            "app1:x:990:backup\n",
            "app1:!:1::::::\n",
            "app1:!::backup\n",
        );

        let (u, g) = d.remove("app1", "app1", "backup").unwrap();

        assert_eq!((u.state, g.state), (State::Removed, State::Removed));
        assert!(d.passwd.render().is_empty() && d.gshadow.render().is_empty());
    }

    #[test]
    fn removal_keeps_a_group_others_still_use() {
        let mut d = db(
            "app1:x:990:990:rip app app1:/home/app1:/bin/bash\n",
            "app1:x:990:backup,alice\n",
            "app1:!:1::::::\n",
            "app1:!::backup,alice\n",
        );

        let (_, g) = d.remove("app1", "app1", "backup").unwrap();

        assert_eq!(g.state, State::Kept);
        assert!(g.kept_because.unwrap().contains("alice"));
        assert_eq!(d.group.render(), b"app1:x:990:alice\n");
        assert_eq!(d.gshadow.render(), b"app1:!::alice\n");
    }

    #[test]
    fn removal_refuses_an_unmanaged_user() {
        let mut d = db(
            "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n",
            "",
            "",
            "",
        );

        assert!(d.remove("www-data", "www-data", "backup").is_err());
    }
}
