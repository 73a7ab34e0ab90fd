//! systemd 252's system call groups (`@privileged`, `@clock`, ...), taken
//! verbatim from `systemd-analyze syscall-filter` and committed as data, plus
//! the names libseccomp 2.5.4 cannot resolve natively (skipped when scoring).
//! Regenerate both with `data/gen-tables.sh`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    known: BTreeSet<String>,
    /// Interned names: id -> name (sorted, so ids sort like names).
    names: Vec<String>,
    ids: HashMap<String, u16>,
    /// Per group: the natively resolvable member ids, recursively, sorted.
    flat_ids: HashMap<String, Vec<u16>>,
    /// Per group: every member id, recursively, sorted.
    flat_all_ids: HashMap<String, Vec<u16>>,
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
        let unresolved: BTreeSet<&str> = UNRESOLVED_TEXT
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let known: BTreeSet<String> = groups
            .values()
            .flatten()
            .filter(|m| !m.starts_with('@'))
            .cloned()
            .collect();
        let names: Vec<String> = known.iter().cloned().collect();
        let ids: HashMap<String, u16> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u16))
            .collect();
        let resolvable: Vec<bool> = names
            .iter()
            .map(|n| !unresolved.contains(n.as_str()))
            .collect();
        let mut flat_ids = HashMap::new();
        let mut flat_all_ids = HashMap::new();
        // Expand each group over ids: a mark per id, then the marked ids
        // in order (sorted, like the names).
        let mut seen = vec![false; names.len()];
        for g in groups.keys() {
            seen.iter_mut().for_each(|m| *m = false);
            expand_ids(&groups, &ids, g, &mut seen, 0);
            let all: Vec<u16> = (0..names.len())
                .filter(|&i| seen[i])
                .map(|i| i as u16)
                .collect();
            let native = all
                .iter()
                .copied()
                .filter(|&i| resolvable[usize::from(i)])
                .collect();
            flat_ids.insert(g.clone(), native);
            flat_all_ids.insert(g.clone(), all);
        }
        Tables {
            groups,
            known,
            names,
            ids,
            flat_ids,
            flat_all_ids,
        }
    }

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
        let ids = self.flat_ids.get(group)?;
        Some(ids.iter().map(|&i| self.name(i)).collect())
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

fn expand_ids(
    groups: &BTreeMap<String, Vec<String>>,
    ids: &HashMap<String, u16>,
    group: &str,
    seen: &mut [bool],
    depth: usize,
) {
    if depth > 16 {
        return;
    }
    let Some(members) = groups.get(group) else {
        return;
    };
    for m in members {
        if m.starts_with('@') {
            expand_ids(groups, ids, m, seen, depth + 1);
        } else if let Some(&id) = ids.get(m) {
            seen[usize::from(id)] = true;
        }
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

        assert!(t.expand_all("@default").contains(&"clock_gettime64"));
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
