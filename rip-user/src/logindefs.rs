//! The id ranges of `<root>/etc/login.defs`, read the way shadow-utils reads
//! them (`getdef_ulong`), with shadow's defaults when a key is absent.

use std::io::ErrorKind;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

/// The ranges rip-user allocates from and the bounds it judges accounts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IdRanges {
    /// `SYS_UID_MIN` (default 101).
    pub sys_uid_min: u32,
    /// `SYS_UID_MAX` (default `UID_MIN - 1`).
    pub sys_uid_max: u32,
    /// `SYS_GID_MIN` (default 101).
    pub sys_gid_min: u32,
    /// `SYS_GID_MAX` (default `GID_MIN - 1`).
    pub sys_gid_max: u32,
    /// `UID_MIN`: the first id of ordinary (human) users (default 1000).
    pub uid_min: u32,
    /// `GID_MIN` (default 1000).
    pub gid_min: u32,
}

impl Default for IdRanges {
    fn default() -> Self {
        Self {
            sys_uid_min: 101,
            sys_uid_max: 999,
            sys_gid_min: 101,
            sys_gid_max: 999,
            uid_min: 1000,
            gid_min: 1000,
        }
    }
}

/// Parse a number as `strtoul(s, NULL, 0)` would: decimal, `0x` hex or
/// `0` octal, the whole string.
fn parse_num(s: &str) -> Option<u32> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// The value of `key` in login.defs text (the last occurrence wins, as in
/// shadow, which overwrites earlier definitions).
fn lookup<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        if parts.next() == Some(key) {
            if let Some(value) = parts.next() {
                found = Some(value.trim_matches('"'));
            }
        }
    }
    found
}

impl IdRanges {
    /// Ranges from login.defs text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> anyhow::Result<Self> {
        let get = |key: &str, default: u32| -> anyhow::Result<u32> {
            match lookup(text, key) {
                None => Ok(default),
                Some(v) => parse_num(v).with_context(|| {
                    format!("{origin:?}: {key} {v:?} is not a number in the range of ids")
                }),
            }
        };
        let uid_min = get("UID_MIN", 1000)?;
        let gid_min = get("GID_MIN", 1000)?;
        let r = Self {
            sys_uid_min: get("SYS_UID_MIN", 101)?,
            sys_uid_max: get("SYS_UID_MAX", uid_min.saturating_sub(1))?,
            sys_gid_min: get("SYS_GID_MIN", 101)?,
            sys_gid_max: get("SYS_GID_MAX", gid_min.saturating_sub(1))?,
            uid_min,
            gid_min,
        };
        if r.sys_uid_min == 0 || r.sys_uid_min > r.sys_uid_max {
            bail!(
                "{origin:?}: the system uid range {}..{} is empty or includes 0",
                r.sys_uid_min,
                r.sys_uid_max
            );
        }
        if r.sys_gid_min == 0 || r.sys_gid_min > r.sys_gid_max {
            bail!(
                "{origin:?}: the system gid range {}..{} is empty or includes 0",
                r.sys_gid_min,
                r.sys_gid_max
            );
        }
        Ok(r)
    }

    /// Ranges of `path`, or the defaults when the file does not exist.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {path:?}")),
        }
    }

    /// Whether `uid` lies in the dynamic system range.
    pub fn is_sys_uid(&self, uid: u32) -> bool {
        (self.sys_uid_min..=self.sys_uid_max).contains(&uid)
    }

    /// Whether `gid` lies in the dynamic system range.
    pub fn is_sys_gid(&self, gid: u32) -> bool {
        (self.sys_gid_min..=self.sys_gid_max).contains(&gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_defaults_without_sys_keys() {
        let text = "UID_MIN 1000\nUID_MAX 60000\n#SYS_UID_MIN 100\nGID_MIN 1000\n";

        let r = IdRanges::parse(text, Path::new("x")).unwrap();

        assert_eq!(r, IdRanges::default());
    }

    #[test]
    fn reads_sys_keys_and_bases() {
        let text = "SYS_UID_MIN\t200\nSYS_UID_MAX 0x1f3\nSYS_GID_MIN 300\nSYS_GID_MAX 01000\n";

        let r = IdRanges::parse(text, Path::new("x")).unwrap();

        assert_eq!((r.sys_uid_min, r.sys_uid_max), (200, 499));
        assert_eq!((r.sys_gid_min, r.sys_gid_max), (300, 512));
    }

    #[test]
    fn sys_max_follows_uid_min() {
        let r = IdRanges::parse("UID_MIN 500\nGID_MIN 600\n", Path::new("x")).unwrap();

        assert_eq!((r.sys_uid_max, r.sys_gid_max), (499, 599));
    }

    #[test]
    fn rejects_an_empty_range_and_garbage() {
        assert!(IdRanges::parse("SYS_UID_MIN 900\nSYS_UID_MAX 800\n", Path::new("x")).is_err());
        assert!(IdRanges::parse("SYS_GID_MIN many\n", Path::new("x")).is_err());
    }
}
