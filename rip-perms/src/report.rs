//! The `rip_perms` result added to each record, and how the walkers'
//! partial results are merged into it.

use serde::Serialize;

use crate::policy::Mode;
use crate::sys::Acls;

/// Owner, mode and POSIX ACLs of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Permission bits, as an octal string.
    pub mode: Mode,
    /// The POSIX ACLs it carries (`access`, `default`); left out when none,
    /// as the policy wants.
    #[serde(skip_serializing_if = "acl_none")]
    pub acl: Acls,
}

fn acl_none(a: &Acls) -> bool {
    !a.any()
}

impl Serialize for Acls {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(|a| a.as_str()))
    }
}

/// A path as bytes, shown as UTF-8 (lossy) plus, when the name is not
/// UTF-8, the exact bytes in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShownPath {
    /// The path, non-UTF-8 bytes replaced by U+FFFD.
    pub path: String,
    /// Hex of the raw bytes, only when the path is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
}

impl ShownPath {
    /// From raw path bytes.
    pub fn new(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(s) => ShownPath {
                path: s.to_owned(),
                path_hex: None,
            },
            Err(_) => ShownPath {
                path: String::from_utf8_lossy(bytes).into_owned(),
                path_hex: Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
            },
        }
    }
}

/// An entry that changed (or would change, with `--dry-run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Where it is.
    #[serde(flatten)]
    pub path: ShownPath,
    /// `dir` or `file`.
    pub kind: &'static str,
    /// The policy rule that applies (`home`, `bin`, `binary`, `data`,
    /// `database`, `key`, `backups`, `snapshot`, `other`, `system`).
    pub class: &'static str,
    /// Whether rip-perms created the directory.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub created: bool,
    /// Owner, mode and ACLs before (null for a directory still to be
    /// created).
    pub before: Option<Owner>,
    /// Owner and mode the policy wants (and no ACL).
    pub after: Owner,
    /// What was left undone for lack of privilege (`owner`, `mode`, `acl`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<&'static str>,
}

/// An entry rip-perms would not touch, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Where it is.
    #[serde(flatten)]
    pub path: ShownPath,
    /// What it is (`symlink`, `fifo`, `socket`, `char_device`, ...).
    pub kind: &'static str,
    /// A stable code such as `PERMS_SYMLINK_ESCAPES`.
    pub reason: &'static str,
    /// Human-readable detail.
    pub detail: String,
}

/// An entry that could not be handled because of an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Where it is.
    #[serde(flatten)]
    pub path: ShownPath,
    /// The error.
    pub error: String,
}

/// Per-app counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Entries looked at (directories, files, links, special files).
    pub seen: u64,
    /// Entries changed or created (would be, with `--dry-run`).
    pub changed: u64,
    /// Entries refused (see `refused`).
    pub refused: u64,
    /// Entries with a change left pending for lack of privilege.
    pub pending: u64,
    /// Entries that failed (see `errors`).
    pub errors: u64,
}

/// What one walker thread gathered; merged into [`Report`].
#[derive(Debug, Default)]
pub struct Partial {
    /// Counters.
    pub counts: Counts,
    /// Changed entries, at most the cap.
    pub entries: Vec<Entry>,
    /// Refused entries, at most the cap.
    pub refused: Vec<Refusal>,
    /// Failures (never capped).
    pub errors: Vec<Failure>,
    /// The cap on `entries` and `refused`.
    pub cap: usize,
    /// Entries recorded, listed or not.
    pub listed: u64,
}

impl Partial {
    /// An empty partial result with a cap on listed entries.
    pub fn new(cap: usize) -> Self {
        Partial {
            cap,
            ..Default::default()
        }
    }

    /// Record an entry that needs a change; `applied` tells whether some
    /// of it was (or, in a dry run, would be) applied.
    /// `e` is `None` past the cap (see [`Partial::wants_entry`]); `pending`
    /// tells whether something was left undone for lack of privilege.
    pub fn entry(&mut self, e: Option<Entry>, applied: bool, pending: bool) {
        self.listed += 1;
        if applied {
            self.counts.changed += 1;
        }
        if pending {
            self.counts.pending += 1;
        }
        if let Some(e) = e {
            if self.entries.len() < self.cap {
                self.entries.push(e);
            }
        }
    }

    /// Record an entry built in full (rare paths: created directories).
    pub fn add(&mut self, e: Entry, applied: bool) {
        let pending = !e.pending.is_empty();
        self.entry(Some(e), applied, pending);
    }

    /// Whether one more entry would be listed.
    pub fn wants_entry(&self) -> bool {
        self.entries.len() < self.cap
    }

    /// Record a refused entry.
    pub fn refuse(
        &mut self,
        path: &[u8],
        kind: &'static str,
        reason: &'static str,
        detail: String,
    ) {
        self.counts.refused += 1;
        if self.refused.len() < self.cap {
            self.refused.push(Refusal {
                path: ShownPath::new(path),
                kind,
                reason,
                detail,
            });
        }
    }

    /// Record a refused directory of the app's layout (the home, `bin/`,
    /// `data/`, the backups dir, an `rw_paths` entry or a directory on the
    /// way to one): listed as refused, and also as an error, since the
    /// layout is then not in place (exit 2).
    pub fn refuse_layout(
        &mut self,
        path: &[u8],
        kind: &'static str,
        reason: &'static str,
        detail: String,
    ) {
        self.fail(
            path,
            format!(
                "{reason}: a directory of the app's layout was refused ({detail}); the layout \
                 is not in place: make it a real directory owned by the app (or remove it) and \
                 run rip-perms again"
            ),
        );
        self.refuse(path, kind, reason, detail);
    }

    /// Record a failure.
    pub fn fail(&mut self, path: &[u8], error: impl std::fmt::Display) {
        self.counts.errors += 1;
        self.errors.push(Failure {
            path: ShownPath::new(path),
            error: error.to_string(),
        });
    }

    /// Fold another partial result into this one.
    pub fn merge(&mut self, other: Partial) {
        let c = &mut self.counts;
        c.seen += other.counts.seen;
        c.changed += other.counts.changed;
        c.refused += other.counts.refused;
        c.pending += other.counts.pending;
        c.errors += other.counts.errors;
        self.listed += other.listed;
        self.entries.extend(other.entries);
        self.refused.extend(other.refused);
        self.errors.extend(other.errors);
    }
}

/// The `rip_perms` value of one record.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether anything changed (would change, with `--dry-run`).
    pub changed: bool,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Whether rip-perms ran as root; if not, owner changes stay pending.
    pub privileged: bool,
    /// App user and its id.
    pub user: String,
    /// App user id.
    pub uid: u32,
    /// App group.
    pub group: String,
    /// App group id.
    pub gid: u32,
    /// Counters.
    pub counts: Counts,
    /// Changed entries, sorted by path, at most `--max-entries`.
    pub entries: Vec<Entry>,
    /// How many changed entries were left out of `entries`.
    pub entries_omitted: u64,
    /// Refused entries, sorted by path, at most `--max-entries`.
    pub refused: Vec<Refusal>,
    /// How many refused entries were left out of `refused`.
    pub refused_omitted: u64,
    /// Failures.
    pub errors: Vec<Failure>,
    /// Remarks for the operator.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Report {
    /// Build the report from the merged partial result.
    pub fn finish(mut p: Partial, head: ReportHead) -> Report {
        p.entries.sort_by(|a, b| a.path.path.cmp(&b.path.path));
        p.entries.truncate(p.cap);
        p.refused.sort_by(|a, b| a.path.path.cmp(&b.path.path));
        p.refused.truncate(p.cap);
        let listed = p.entries.len() as u64;
        let refused_listed = p.refused.len() as u64;
        let total_entries = p.listed;
        let mut notes = Vec::new();
        if !head.privileged && p.counts.pending > 0 {
            notes.push(
                "not running as root: owner changes (and modes of files owned by others) \
                 are planned, not applied"
                    .to_owned(),
            );
        }
        Report {
            changed: p.counts.changed > 0,
            dry_run: head.dry_run,
            privileged: head.privileged,
            user: head.user,
            uid: head.uid,
            group: head.group,
            gid: head.gid,
            counts: p.counts,
            entries: p.entries,
            entries_omitted: total_entries.saturating_sub(listed),
            refused_omitted: p.counts.refused.saturating_sub(refused_listed),
            refused: p.refused,
            errors: p.errors,
            notes,
        }
    }
}

/// The fixed part of a [`Report`].
#[derive(Debug, Clone)]
pub struct ReportHead {
    /// Dry run?
    pub dry_run: bool,
    /// Root?
    pub privileged: bool,
    /// App user.
    pub user: String,
    /// Its id.
    pub uid: u32,
    /// App group.
    pub group: String,
    /// Its id.
    pub gid: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_paths_carry_hex() {
        let p = ShownPath::new(b"/home/a/\xff");

        assert_eq!(p.path_hex.as_deref(), Some("2f686f6d652f612fff"));
    }

    #[test]
    fn entries_are_capped_but_counted() {
        let mut p = Partial::new(1);
        for name in ["/b", "/a"] {
            p.entry(
                Some(Entry {
                    path: ShownPath::new(name.as_bytes()),
                    kind: "file",
                    class: "data",
                    created: false,
                    before: None,
                    after: Owner {
                        uid: 1,
                        gid: 1,
                        mode: Mode(0o600),
                        acl: Acls::NONE,
                    },
                    pending: vec![],
                }),
                true,
                false,
            );
        }
        let head = ReportHead {
            dry_run: false,
            privileged: true,
            user: "a".into(),
            uid: 1,
            group: "a".into(),
            gid: 1,
        };

        let r = Report::finish(p, head);

        assert_eq!(
            (r.counts.changed, r.entries.len(), r.entries_omitted),
            (2, 1, 1)
        );
    }
}
