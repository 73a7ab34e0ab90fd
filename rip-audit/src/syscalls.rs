//! systemd 252's system call groups (`@privileged`, `@clock`, ...), taken
//! verbatim from `systemd-analyze syscall-filter` and committed as data, plus
//! the names libseccomp 2.5.4 cannot resolve natively (skipped when scoring).
//! Regenerate both with `data/gen-tables.sh`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// `systemd-analyze syscall-filter` of systemd 252.39 (Debian 12), verbatim.
pub const GROUPS_TEXT: &str = include_str!("../data/syscall-groups.txt");

/// Group members that `seccomp_syscall_resolve_name()` does not resolve to a
/// native number with libseccomp 2.5.4; systemd's check skips them.
pub const UNRESOLVED_TEXT: &str = include_str!("../data/syscall-unresolved.txt");

/// The parsed tables.
#[derive(Debug, Default)]
pub struct Tables {
    /// Each group's direct members (names and `@subgroups`), in file order.
    pub groups: BTreeMap<String, Vec<String>>,
    unresolved: BTreeSet<String>,
    flat: BTreeMap<String, BTreeSet<String>>,
    flat_all: BTreeMap<String, Vec<String>>,
    known: BTreeSet<String>,
    /// Interned names: id -> name.
    names: Vec<String>,
    ids: std::collections::HashMap<String, u16>,
    flat_ids: BTreeMap<String, Vec<u16>>,
    flat_all_ids: BTreeMap<String, Vec<u16>>,
}

/// Parse the `systemd-analyze syscall-filter` text format: a line `@name`
/// starts a group, indented lines are members, `#` lines are comments.
pub fn parse_groups(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if !line.starts_with(char::is_whitespace) && trimmed.starts_with('@') {
            current = Some(trimmed.to_owned());
            groups.entry(trimmed.to_owned()).or_default();
        } else if let Some(g) = &current {
            groups
                .entry(g.clone())
                .or_default()
                .push(trimmed.to_owned());
        }
    }
    groups
}

impl Tables {
    fn build() -> Self {
        let groups = parse_groups(GROUPS_TEXT);
        let unresolved: BTreeSet<String> = UNRESOLVED_TEXT
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        let known: BTreeSet<String> = groups
            .values()
            .flatten()
            .filter(|m| !m.starts_with('@'))
            .cloned()
            .collect();
        let names: Vec<String> = known.iter().cloned().collect::<Vec<String>>();
        let ids = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u16))
            .collect();
        let mut t = Tables {
            groups,
            unresolved,
            flat: BTreeMap::new(),
            flat_all: BTreeMap::new(),
            known,
            names,
            ids,
            flat_ids: BTreeMap::new(),
            flat_all_ids: BTreeMap::new(),
        };
        let names: Vec<String> = t.groups.keys().cloned().collect();
        for g in names {
            let mut out = BTreeSet::new();
            t.expand_into(&g, &mut out, 0, false);
            t.flat.insert(g.clone(), out);
            let mut all = BTreeSet::new();
            t.expand_into(&g, &mut all, 0, true);
            t.flat_all.insert(g.clone(), all.into_iter().collect());
        }
        for (g, members) in &t.flat {
            let v = members
                .iter()
                .filter_map(|n| t.ids.get(n).copied())
                .collect();
            t.flat_ids.insert(g.clone(), v);
        }
        for (g, members) in &t.flat_all {
            let v = members
                .iter()
                .filter_map(|n| t.ids.get(n).copied())
                .collect();
            t.flat_all_ids.insert(g.clone(), v);
        }
        t
    }

    fn expand_into(&self, group: &str, out: &mut BTreeSet<String>, depth: usize, all: bool) {
        if depth > 16 {
            return;
        }
        let Some(members) = self.groups.get(group) else {
            return;
        };
        for m in members {
            if m.starts_with('@') {
                self.expand_into(m, out, depth + 1, all);
            } else if all || !self.unresolved.contains(m) {
                out.insert(m.clone());
            }
        }
    }

    /// Every member of `group`, recursively, including names that do not
    /// resolve natively (what systemd puts into a filter when parsing).
    pub fn expand_all(&self, group: &str) -> &[String] {
        self.flat_all.get(group).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The natively resolvable members of `group`, recursively: what the
    /// exposure check compares the filter with.
    pub fn resolvable(&self, group: &str) -> Option<&BTreeSet<String>> {
        self.flat.get(group)
    }

    /// Number of interned syscall names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no names (never, with the committed data).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The id of a syscall name.
    pub fn id(&self, name: &str) -> Option<u16> {
        self.ids.get(name).copied()
    }

    /// The name of an id.
    pub fn name(&self, id: u16) -> &str {
        self.names.get(usize::from(id)).map_or("", String::as_str)
    }

    /// Ids of every member of `group` (see [`Tables::expand_all`]).
    pub fn expand_all_ids(&self, group: &str) -> &[u16] {
        self.flat_all_ids.get(group).map_or(&[], Vec::as_slice)
    }

    /// Ids of the natively resolvable members of `group`.
    pub fn resolvable_ids(&self, group: &str) -> &[u16] {
        self.flat_ids.get(group).map_or(&[], Vec::as_slice)
    }

    /// Whether `name` is a group systemd knows.
    pub fn is_group(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }

    /// Whether `name` is a system call systemd 252 knows (member of `@known`
    /// or of any group).
    pub fn is_known_syscall(&self, name: &str) -> bool {
        self.known.contains(name)
    }
}

/// The tables, parsed once.
pub fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(Tables::build)
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

        assert!(t
            .expand_all("@default")
            .iter()
            .any(|n| n == "clock_gettime64"));
        assert!(!t
            .resolvable("@default")
            .unwrap()
            .contains("clock_gettime64"));
    }

    #[test]
    fn parses_the_text_format() {
        let g = parse_groups("@a\n    # x\n    foo\n    @b\n\n@b\n    bar\n");

        assert_eq!(g["@a"], vec!["foo", "@b"]);
        assert_eq!(g["@b"], vec!["bar"]);
    }
}
