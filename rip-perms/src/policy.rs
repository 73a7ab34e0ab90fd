//! The layout policy: which owner and mode each part of an app's tree gets.
//! It is plain data (printed by `--show-policy`), overridable per app by the
//! spec's `perms` object, and validated before anything is touched.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A permission mode, written in JSON as an octal string such as `"0640"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_mode(&s).map_err(serde::de::Error::custom)
    }
}

/// Parse `"640"`, `"0640"`, `"0o640"` or `"2750"`.
pub fn parse_mode(s: &str) -> Result<Mode, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Err(format!(
            "{s:?} is not an octal mode string such as \"0640\""
        ));
    }
    let v = u32::from_str_radix(digits, 8).map_err(|e| e.to_string())?;
    if v > 0o7777 {
        return Err(format!("{s:?} is larger than 7777"));
    }
    Ok(Mode(v))
}

/// Modes of a part of the tree that holds directories only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirRule {
    /// Mode of the directory.
    pub dir: Mode,
}

/// Modes of the directories and files of one part of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeRule {
    /// Mode of every directory.
    pub dir: Mode,
    /// Mode of every regular file.
    pub file: Mode,
}

/// The backups dir, the snapshots in it, and how the group reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupsRule {
    /// Mode of the backups dir and its subdirectories (setgid by default).
    pub dir: Mode,
    /// Mode of the snapshots.
    pub file: Mode,
    /// Bits added to the home and every directory between it and the
    /// backups dir, so the backup user can reach the snapshots.
    pub traverse: Mode,
}

/// Files recognized by name wherever they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternRule {
    /// Mode of a matching file.
    pub file: Mode,
    /// Shell-style name patterns (`*` and `?`), matched on the file name.
    pub patterns: Vec<String>,
}

/// The whole layout policy of one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The home directory itself.
    pub home: DirRule,
    /// `<home>/bin` and the binaries in it.
    pub bin: TreeRule,
    /// `<home>/data`, everything under it, and every `rw_paths` entry.
    pub data: TreeRule,
    /// The backups dir and the snapshots in it.
    pub backups: BackupsRule,
    /// Anything else under the home (e.g. `logs/`).
    pub other: TreeRule,
    /// Live databases and their `-wal`/`-shm` companions (not in the
    /// backups dir, where they are snapshots).
    pub database: PatternRule,
    /// Keys, anywhere (also in the backups dir).
    pub key: PatternRule,
}

impl Default for Policy {
    fn default() -> Self {
        let tree = |dir, file| TreeRule {
            dir: Mode(dir),
            file: Mode(file),
        };
        Policy {
            home: DirRule { dir: Mode(0o700) },
            bin: tree(0o700, 0o700),
            data: tree(0o700, 0o600),
            backups: BackupsRule {
                dir: Mode(0o2750),
                file: Mode(0o640),
                traverse: Mode(0o010),
            },
            other: tree(0o700, 0o600),
            database: PatternRule {
                file: Mode(0o600),
                patterns: [
                    "*.db",
                    "*.sqlite",
                    "*.sqlite3",
                    "*-wal",
                    "*-shm",
                    "*-journal",
                ]
                .map(String::from)
                .to_vec(),
            },
            key: PatternRule {
                file: Mode(0o600),
                patterns: vec!["*.key".to_owned()],
            },
        }
    }
}

/// A spec's `perms` object: any subset of [`Policy`], merged over it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    home: Option<DirPatch>,
    bin: Option<TreePatch>,
    data: Option<TreePatch>,
    backups: Option<BackupsPatch>,
    other: Option<TreePatch>,
    database: Option<PatternPatch>,
    key: Option<PatternPatch>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirPatch {
    dir: Option<Mode>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TreePatch {
    dir: Option<Mode>,
    file: Option<Mode>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupsPatch {
    dir: Option<Mode>,
    file: Option<Mode>,
    traverse: Option<Mode>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternPatch {
    file: Option<Mode>,
    patterns: Option<Vec<String>>,
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn patch_tree(rule: &mut TreeRule, p: Option<TreePatch>) {
    if let Some(p) = p {
        set(&mut rule.dir, p.dir);
        set(&mut rule.file, p.file);
    }
}

fn patch_pattern(rule: &mut PatternRule, p: Option<PatternPatch>) {
    if let Some(p) = p {
        set(&mut rule.file, p.file);
        set(&mut rule.patterns, p.patterns);
    }
}

/// A policy problem: the field (dotted, under `perms`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// e.g. `perms.data.file`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> PolicyError {
    PolicyError {
        field: format!("perms.{field}"),
        message: message.into(),
    }
}

impl Policy {
    /// The default policy with a spec's `perms` override merged in, validated.
    pub fn for_spec(perms: Option<&serde_json::Value>) -> Result<Policy, PolicyError> {
        let mut policy = Policy::default();
        if let Some(v) = perms {
            let patch: PolicyPatch = serde_path_to_error::deserialize(v).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." { String::new() } else { path };
                PolicyError {
                    field: if field.is_empty() {
                        "perms".to_owned()
                    } else {
                        format!("perms.{field}")
                    },
                    message: e.into_inner().to_string(),
                }
            })?;
            policy.apply(patch);
        }
        policy.validate()?;
        Ok(policy)
    }

    fn apply(&mut self, p: PolicyPatch) {
        if let Some(h) = p.home {
            set(&mut self.home.dir, h.dir);
        }
        patch_tree(&mut self.bin, p.bin);
        patch_tree(&mut self.data, p.data);
        if let Some(b) = p.backups {
            set(&mut self.backups.dir, b.dir);
            set(&mut self.backups.file, b.file);
            set(&mut self.backups.traverse, b.traverse);
        }
        patch_tree(&mut self.other, p.other);
        patch_pattern(&mut self.database, p.database);
        patch_pattern(&mut self.key, p.key);
    }

    /// The safety invariants no override may break.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let dirs = [
            ("home.dir", self.home.dir),
            ("bin.dir", self.bin.dir),
            ("data.dir", self.data.dir),
            ("backups.dir", self.backups.dir),
            ("other.dir", self.other.dir),
        ];
        for (field, m) in dirs {
            if m.0 & 0o700 != 0o700 {
                return Err(err(
                    field,
                    format!(
                        "{m} must give the owner rwx (a directory without owner x is unusable)"
                    ),
                ));
            }
            if m.0 & 0o4000 != 0 {
                return Err(err(field, format!("{m} has the setuid bit")));
            }
        }
        let files = [
            ("bin.file", self.bin.file),
            ("data.file", self.data.file),
            ("backups.file", self.backups.file),
            ("other.file", self.other.file),
            ("database.file", self.database.file),
            ("key.file", self.key.file),
        ];
        for (field, m) in files {
            if m.0 & 0o7000 != 0 {
                return Err(err(
                    field,
                    format!("{m}: files never get setuid, setgid or sticky bits"),
                ));
            }
            if m.0 & 0o400 == 0 {
                return Err(err(field, format!("{m} does not let the owner read")));
            }
        }
        // Nothing for others anywhere, never group write, group read only
        // on the backups dir and the snapshots; the group's search bit on
        // the home and the directories down to the backups dir comes from
        // `backups.traverse` alone (and only when backups are enabled).
        let allowed = [
            ("home.dir", self.home.dir, 0),
            ("bin.dir", self.bin.dir, 0),
            ("data.dir", self.data.dir, 0),
            ("other.dir", self.other.dir, 0),
            ("backups.dir", self.backups.dir, 0o050),
            ("bin.file", self.bin.file, 0),
            ("data.file", self.data.file, 0),
            ("other.file", self.other.file, 0),
            ("database.file", self.database.file, 0),
            ("key.file", self.key.file, 0),
            ("backups.file", self.backups.file, 0o040),
            ("backups.traverse", self.backups.traverse, 0o010),
        ];
        for (field, m, group_ok) in allowed {
            if m.0 & 0o007 != 0 {
                return Err(err(
                    field,
                    format!("{m} gives others access; app trees are never open to others"),
                ));
            }
            let extra = m.0 & 0o070 & !group_ok;
            if extra != 0 {
                let what = match field {
                    "backups.dir" => "the group may only read and search the backups dir (0050)",
                    "backups.file" => "the group may only read snapshots (0040)",
                    "backups.traverse" => "traverse may only hold the group's search bit (0010)",
                    _ => {
                        "only the backups dir and snapshots are open to the group; the search \
                         bit on the home and data comes from backups.traverse"
                    }
                };
                return Err(err(
                    field,
                    format!("{m} gives the group {extra:03o}: {what}"),
                ));
            }
        }
        if self.backups.traverse.0 & !0o010 != 0 {
            return Err(err(
                "backups.traverse",
                format!(
                    "{} may only hold the group's search bit (0010) or nothing",
                    self.backups.traverse
                ),
            ));
        }
        for (field, rule) in [("database", &self.database), ("key", &self.key)] {
            for (i, p) in rule.patterns.iter().enumerate() {
                if p.is_empty() || p.len() > 255 || p.contains('/') || p.contains('\0') {
                    return Err(err(
                        &format!("{field}.patterns[{i}]"),
                        format!("{p:?} must be a non-empty file name pattern without '/'"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether `name` matches the shell-style `pattern` (`*`, `?`, literals).
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) && pattern[p] != b'*'
        {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

impl PatternRule {
    /// Whether a file name matches one of the patterns.
    pub fn matches(&self, name: &[u8]) -> bool {
        self.patterns.iter().any(|p| glob_match(p.as_bytes(), name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_policy_is_valid_and_round_trips() {
        let p = Policy::default();

        let v = serde_json::to_value(&p).unwrap();

        assert!(p.validate().is_ok());
        assert_eq!(v["backups"]["dir"], "2750");
        assert_eq!(serde_json::from_value::<Policy>(v).unwrap(), p);
    }

    #[test]
    fn override_merges_one_field() {
        let p = Policy::for_spec(Some(&json!({"data": {"file": "0400"}}))).unwrap();

        assert_eq!(p.data.file, Mode(0o400));
        assert_eq!(p.data.dir, Mode(0o700));
    }

    #[test]
    fn unknown_override_field_names_the_path() {
        let e = Policy::for_spec(Some(&json!({"data": {"fiel": "0640"}}))).unwrap_err();

        assert_eq!(e.field, "perms.data.fiel");
        assert!(e.message.contains("fiel"), "{}", e.message);
    }

    #[test]
    fn integer_modes_are_rejected() {
        let e = Policy::for_spec(Some(&json!({"bin": {"file": 700}}))).unwrap_err();

        assert_eq!(e.field, "perms.bin.file");
    }

    #[test]
    fn group_readable_database_is_rejected() {
        let e = Policy::for_spec(Some(&json!({"database": {"file": "0640"}}))).unwrap_err();

        assert_eq!(e.field, "perms.database.file");
    }

    #[test]
    fn group_readable_key_is_rejected() {
        assert!(Policy::for_spec(Some(&json!({"key": {"file": "0604"}}))).is_err());
    }

    #[test]
    fn dir_without_owner_x_is_rejected() {
        let e = Policy::for_spec(Some(&json!({"data": {"dir": "0600"}}))).unwrap_err();

        assert_eq!(e.field, "perms.data.dir");
    }

    #[test]
    fn setuid_file_is_rejected() {
        assert!(Policy::for_spec(Some(&json!({"bin": {"file": "4700"}}))).is_err());
    }

    #[test]
    fn world_readable_home_is_rejected() {
        assert!(Policy::for_spec(Some(&json!({"home": {"dir": "0755"}}))).is_err());
    }

    #[test]
    fn traverse_must_be_search_bits() {
        assert!(Policy::for_spec(Some(&json!({"backups": {"traverse": "0050"}}))).is_err());
    }

    #[test]
    fn red_team_perms_widening_is_rejected() {
        // The red-team finding: overrides that open the tree to others or
        // the group were accepted.
        let cases = [
            (json!({"home": {"dir": "0711"}}), "perms.home.dir"),
            (json!({"data": {"dir": "0711"}}), "perms.data.dir"),
            (json!({"data": {"file": "0644"}}), "perms.data.file"),
            (json!({"data": {"file": "0640"}}), "perms.data.file"),
            (
                json!({"backups": {"traverse": "0011"}}),
                "perms.backups.traverse",
            ),
            (
                json!({"backups": {"traverse": "0001"}}),
                "perms.backups.traverse",
            ),
            (json!({"backups": {"dir": "2751"}}), "perms.backups.dir"),
            (json!({"backups": {"dir": "2770"}}), "perms.backups.dir"),
            (json!({"backups": {"file": "0660"}}), "perms.backups.file"),
            (json!({"backups": {"file": "0644"}}), "perms.backups.file"),
            (json!({"bin": {"dir": "0750"}}), "perms.bin.dir"),
            (json!({"bin": {"file": "0755"}}), "perms.bin.file"),
            (json!({"bin": {"file": "0710"}}), "perms.bin.file"),
            (json!({"other": {"dir": "0705"}}), "perms.other.dir"),
            (json!({"other": {"file": "0604"}}), "perms.other.file"),
            (json!({"home": {"dir": "0710"}}), "perms.home.dir"),
            (json!({"key": {"file": "0601"}}), "perms.key.file"),
        ];
        for (v, field) in cases {
            let e = Policy::for_spec(Some(&v)).unwrap_err();
            assert_eq!(e.field, field, "{v}: {}", e.message);
        }
    }

    #[test]
    fn narrowing_overrides_are_accepted() {
        let v = json!({
            "bin": {"file": "0500", "dir": "0700"},
            "data": {"file": "0400"},
            "backups": {"dir": "2710", "file": "0440", "traverse": "0000"},
        });

        assert!(Policy::for_spec(Some(&v)).is_ok());
    }

    #[test]
    fn pattern_with_slash_is_rejected() {
        let e = Policy::for_spec(Some(&json!({"key": {"patterns": ["a/*.key"]}}))).unwrap_err();

        assert_eq!(e.field, "perms.key.patterns[0]");
    }

    #[test]
    fn modes_parse() {
        assert_eq!(parse_mode("0640"), Ok(Mode(0o640)));
        assert_eq!(parse_mode("2750"), Ok(Mode(0o2750)));
        assert_eq!(parse_mode("0o700"), Ok(Mode(0o700)));
        assert!(parse_mode("0855").is_err());
        assert!(parse_mode("17777").is_err());
        assert!(parse_mode("").is_err());
    }

    #[test]
    fn globs_match() {
        assert!(glob_match(b"*.db", b"app.db"));
        assert!(glob_match(b"*-wal", b"app.db-wal"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"*.db", b"app.db.bak"));
        assert!(glob_match(b"*.d*b", b"x.dxxb"));
        assert!(!glob_match(b"*.key", b"key"));
    }
}
