//! Read-only view of the account databases under a root
//! (`<root>/etc/passwd` and `<root>/etc/group`), never the host's NSS, so
//! that every tool sees the same users whatever `--root` is.

use std::fs;
use std::io::ErrorKind;

use anyhow::Context;

use crate::root::Root;

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// GECOS field.
    pub gecos: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

/// One `/etc/group` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// Supplementary members, by user name.
    pub members: Vec<String>,
}

/// The users and groups of one root.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    /// `/etc/passwd`, in file order.
    pub users: Vec<PasswdEntry>,
    /// `/etc/group`, in file order.
    pub groups: Vec<GroupEntry>,
}

fn read_optional(path: &std::path::Path) -> anyhow::Result<String> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {path:?}")),
    }
}

/// Parse passwd text; malformed lines (and NIS `+`/`-` lines) are skipped.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() != 7 || f[0].is_empty() || f[0].starts_with(['+', '-']) {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                gecos: f[4].to_owned(),
                home: f[5].to_owned(),
                shell: f[6].to_owned(),
            })
        })
        .collect()
}

/// Parse group text; malformed lines are skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() != 4 || f[0].is_empty() || f[0].starts_with(['+', '-']) {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_owned(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

impl Accounts {
    /// Load `<root>/etc/passwd` and `<root>/etc/group` (missing files are empty).
    pub fn load(root: &Root) -> anyhow::Result<Self> {
        Ok(Self {
            users: parse_passwd(&read_optional(&root.join("/etc/passwd"))?),
            groups: parse_group(&read_optional(&root.join("/etc/group"))?),
        })
    }

    /// The user called `name`.
    pub fn user(&self, name: &str) -> Option<&PasswdEntry> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The user with id `uid`.
    pub fn user_by_uid(&self, uid: u32) -> Option<&PasswdEntry> {
        self.users.iter().find(|u| u.uid == uid)
    }

    /// The group called `name`.
    pub fn group(&self, name: &str) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The group with id `gid`.
    pub fn group_by_gid(&self, gid: u32) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| g.gid == gid)
    }

    /// Every gid a user gets at login: its primary group plus each group
    /// that lists it as a member (what `initgroups()` gives a service).
    pub fn gids_of(&self, user: &str) -> Vec<u32> {
        let mut gids: Vec<u32> = self.user(user).map(|u| vec![u.gid]).unwrap_or_default();
        for g in &self.groups {
            if g.members.iter().any(|m| m == user) && !gids.contains(&g.gid) {
                gids.push(g.gid);
            }
        }
        gids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves_groups() {
        let acc = Accounts {
            users: parse_passwd(
                "root:x:0:0:root:/root:/bin/bash\nbackup:x:998:998::/home/backup:/bin/sh\n",
            ),
            groups: parse_group("root:x:0:\nbackup:x:998:\napp1:x:999:backup\n"),
        };

        assert_eq!(acc.user("backup").unwrap().uid, 998);
        assert_eq!(acc.gids_of("backup"), vec![998, 999]);
    }

    #[test]
    fn skips_malformed_lines() {
        assert!(parse_passwd("bad line\n+nis::::::\n").is_empty());
    }
}
