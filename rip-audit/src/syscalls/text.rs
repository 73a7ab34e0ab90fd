//! The text formats of the committed syscall data, parsed the same way by
//! `build.rs` (which turns them into static tables) and by the tests.

use std::collections::{BTreeMap, BTreeSet};

/// Parse the `systemd-analyze syscall-filter` text format: a line `@name`
/// starts a group, indented lines are members, `#` lines are comments.
pub fn parse_groups(text: &str) -> BTreeMap<&str, Vec<&str>> {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if !line.starts_with(char::is_whitespace) && trimmed.starts_with('@') {
            current = Some(trimmed);
            groups.entry(trimmed).or_default();
        } else if let Some(g) = current {
            groups.entry(g).or_default().push(trimmed);
        }
    }
    groups
}

/// Parse the unresolved-names list: one name per line, `#` comments.
pub fn parse_names(text: &str) -> BTreeSet<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Every member of `group`, recursively (subgroups expanded), marked in
/// `seen` by its index in the sorted `names`.
pub fn expand(
    groups: &BTreeMap<&str, Vec<&str>>,
    names: &[&str],
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
            expand(groups, names, m, seen, depth + 1);
        } else if let Ok(id) = names.binary_search(m) {
            seen[id] = true;
        }
    }
}
