//! systemd 252's system call groups (`@privileged`, `@clock`, ...), taken
//! verbatim from `systemd-analyze syscall-filter` and committed as data, plus
//! the names libseccomp 2.5.4 cannot resolve natively (skipped when scoring).
//! Regenerate both with `data/gen-tables.sh`; `build.rs` indexes them.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use foldhash::fast::RandomState;

// Shared with build.rs; the library itself only needs `parse_groups`.
#[allow(dead_code)]
mod text;
pub use text::parse_groups;

/// `systemd-analyze syscall-filter` of systemd 252.39 (Debian 12), verbatim.
pub const GROUPS_TEXT: &str = include_str!("../../data/syscall-groups.txt");

/// Group members that `seccomp_syscall_resolve_name()` does not resolve to a
/// native number with libseccomp 2.5.4; systemd's check skips them.
pub const UNRESOLVED_TEXT: &str = include_str!("../../data/syscall-unresolved.txt");

/// The tables `build.rs` derives from the two texts above.
mod generated {
    include!(concat!(env!("OUT_DIR"), "/syscall_tables.rs"));
}
use generated::{ALL_BITS, ALL_IDS, GROUP_NAMES, NAMES, NATIVE_BITS, NATIVE_IDS, WORDS};

/// The syscall tables: interned names (an id is an index into the sorted
/// names) and each group's members, recursively, as ids and as bit sets.
/// Built at compile time; lookups are binary searches.
#[derive(Debug, Default)]
pub struct Tables;

impl Tables {
    /// Every member of `group`, recursively, including names that do not
    /// resolve natively (what systemd puts into a filter when parsing).
    pub fn expand_all(&self, group: &str) -> Vec<&str> {
        self.expand_all_ids(group)
            .iter()
            .map(|&i| self.name(i))
            .collect()
    }

    /// The natively resolvable members of `group`, recursively: what the
    /// exposure check compares the filter with.
    pub fn resolvable(&self, group: &str) -> Option<BTreeSet<&str>> {
        let g = self.group(group)?;
        Some(NATIVE_IDS[g].iter().map(|&i| self.name(i)).collect())
    }

    /// Number of interned syscall names.
    pub fn len(&self) -> usize {
        NAMES.len()
    }

    /// Whether there are no names (never, with the committed data).
    pub fn is_empty(&self) -> bool {
        NAMES.is_empty()
    }

    /// The id of a syscall name.
    pub fn id(&self, name: &str) -> Option<u16> {
        index().get(name).and_then(|&(id, _)| id)
    }

    /// The name of an id.
    pub fn name(&self, id: u16) -> &'static str {
        NAMES.get(usize::from(id)).copied().unwrap_or("")
    }

    /// The index of a group, for [`Tables::group_members`].
    pub fn group(&self, name: &str) -> Option<usize> {
        index().get(name).and_then(|&(_, g)| g)
    }

    /// Every member of the group at `index` (from [`Tables::group`]), as
    /// ids and as a bit set.
    pub fn group_members(&self, index: usize) -> (&'static [u16], &'static [u64]) {
        match (ALL_IDS.get(index), ALL_BITS.get(index)) {
            (Some(ids), Some(bits)) => (ids, bits),
            _ => (&[], &[]),
        }
    }

    /// Ids of every member of `group` (see [`Tables::expand_all`]).
    pub fn expand_all_ids(&self, group: &str) -> &'static [u16] {
        self.group(group).map_or(&[], |g| ALL_IDS[g])
    }

    /// Ids of the natively resolvable members of `group`.
    pub fn resolvable_ids(&self, group: &str) -> &'static [u16] {
        self.group(group).map_or(&[], |g| NATIVE_IDS[g])
    }

    /// Length in words of a bit set over every id.
    pub fn bit_words(&self) -> usize {
        WORDS
    }

    /// [`Tables::expand_all_ids`] as a bit set (empty for an unknown group).
    pub fn expand_all_bits(&self, group: &str) -> &'static [u64] {
        self.group(group).map_or(&[], |g| ALL_BITS[g])
    }

    /// [`Tables::resolvable_ids`] as a bit set (empty for an unknown group).
    pub fn resolvable_bits(&self, group: &str) -> &'static [u64] {
        self.group(group).map_or(&[], |g| NATIVE_BITS[g])
    }

    /// Whether `name` is a group systemd knows.
    pub fn is_group(&self, name: &str) -> bool {
        self.group(name).is_some()
    }

    /// Whether `name` is a system call systemd 252 knows (member of `@known`
    /// or of any group).
    pub fn is_known_syscall(&self, name: &str) -> bool {
        self.id(name).is_some()
    }
}

/// Every syscall and group name, with its id or group index: one hash
/// lookup per word of a filter instead of a binary search over strings.
/// Built once, on first use (a few microseconds).
#[allow(clippy::type_complexity)]
fn index() -> &'static HashMap<&'static str, (Option<u16>, Option<usize>), RandomState> {
    static INDEX: OnceLock<HashMap<&'static str, (Option<u16>, Option<usize>), RandomState>> =
        OnceLock::new();
    INDEX.get_or_init(|| {
        let mut m = HashMap::with_capacity_and_hasher(
            NAMES.len() + GROUP_NAMES.len(),
            RandomState::default(),
        );
        for (i, n) in NAMES.iter().enumerate() {
            m.insert(*n, (u16::try_from(i).ok(), None));
        }
        for (g, n) in GROUP_NAMES.iter().enumerate() {
            m.insert(*n, (None, Some(g)));
        }
        m
    })
}

/// The tables.
pub fn tables() -> &'static Tables {
    &Tables
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileged_contains_its_subgroups() {
        let t = tables();

        let privileged = t.resolvable("@privileged").unwrap();

        assert!(privileged.contains("clock_settime"));
        assert!(privileged.contains("init_module"));
        assert!(privileged.contains("setuid"));
    }

    #[test]
    fn unresolvable_names_are_dropped() {
        let t = tables();

        assert!(t.expand_all("@default").contains(&"clock_gettime64"));
        assert!(!t
            .resolvable("@default")
            .unwrap()
            .contains("clock_gettime64"));
    }

    #[test]
    fn generated_tables_match_the_text() {
        let groups = parse_groups(GROUPS_TEXT);
        let unresolved = text::parse_names(UNRESOLVED_TEXT);
        let t = tables();

        for (g, members) in &groups {
            assert!(t.is_group(g), "{g}");
            let all = t.expand_all(g);
            for m in members.iter().filter(|m| !m.starts_with('@')) {
                assert!(all.contains(m), "{g} lacks {m}");
                assert_eq!(
                    t.resolvable(g).unwrap().contains(m),
                    !unresolved.contains(m),
                    "{g}: {m}"
                );
            }
            let mut names: Vec<&str> = (0..t.len() as u16).map(|i| t.name(i)).collect();
            names.dedup();
            assert_eq!(names.len(), t.len());
            let mut seen = vec![false; t.len()];
            text::expand(&groups, &names, g, &mut seen, 0);
            let expected: Vec<u16> = (0..t.len() as u16)
                .filter(|&i| seen[usize::from(i)])
                .collect();
            assert_eq!(t.expand_all_ids(g), expected, "{g}");
            let bits = t.expand_all_bits(g);
            let from_bits: Vec<u16> = (0..t.len() as u16)
                .filter(|&i| bits[usize::from(i) / 64] & (1 << (i % 64)) != 0)
                .collect();
            assert_eq!(from_bits, t.expand_all_ids(g), "{g}");
        }
        assert!(!t.is_group("@nope") && t.id("nope").is_none());
    }

    #[test]
    fn parses_the_text_format() {
        let g = parse_groups("@a\n    # x\n    foo\n    @b\n\n@b\n    bar\n");

        assert_eq!(g["@a"], vec!["foo", "@b"]);
        assert_eq!(g["@b"], vec!["bar"]);
    }
}
