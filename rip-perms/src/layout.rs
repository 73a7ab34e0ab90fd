//! One app's layout: the policy, the owner, and a small tree of the named
//! directories (home, `bin/`, `data/`, the backups dir, `rw_paths`) that
//! tells the walker which rule applies where and what to create.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rip_core::AppSpec;
use serde::Serialize;

use crate::policy::{Mode, Policy};

/// Which rule of the policy a directory (and what is below it) follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The home itself.
    Home,
    /// `bin/` and below.
    Bin,
    /// `data/`, `rw_paths` and below.
    Data,
    /// The backups dir and below.
    Backups,
    /// Anything else in the home.
    Other,
}

impl Class {
    /// The class of what lies below a directory of this class.
    pub fn below(self) -> Class {
        match self {
            Class::Home => Class::Other,
            c => c,
        }
    }

    /// Name in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Home => "home",
            Class::Bin => "bin",
            Class::Data => "data",
            Class::Backups => "backups",
            Class::Other => "other",
        }
    }
}

/// A named directory of the layout.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its name in its parent (empty for the home).
    pub name: Vec<u8>,
    /// The rule it follows.
    pub class: Class,
    /// Whether it lies on the way to the backups dir (gets the traverse bits).
    pub traverse: bool,
    /// Named subdirectories, as indexes into [`Layout::nodes`].
    pub children: Vec<usize>,
}

/// Everything the walker needs to know about one app.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The policy, overrides merged.
    pub policy: Policy,
    /// App user id (from `<root>/etc/passwd`).
    pub uid: u32,
    /// App group id (from `<root>/etc/group`).
    pub gid: u32,
    /// The home, as the target system sees it.
    pub home: PathBuf,
    /// The backups dir, if backups are enabled.
    pub backup_dir: Option<PathBuf>,
    /// Named directories; `nodes[0]` is the home.
    pub nodes: Vec<Node>,
    /// `rw_paths` outside the home (walked on their own, class data).
    pub outside: Vec<PathBuf>,
}

fn rel_components(base: &Path, p: &Path) -> Option<Vec<Vec<u8>>> {
    let rel = p.strip_prefix(base).ok()?;
    Some(
        rel.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.as_encoded_bytes().to_vec()),
                _ => None,
            })
            .collect(),
    )
}

impl Layout {
    /// Build the layout of `spec` under `policy`, owned by `uid:gid`.
    pub fn new(spec: &AppSpec, policy: Policy, uid: u32, gid: u32) -> Self {
        let mut layout = Layout {
            policy,
            uid,
            gid,
            home: spec.home.clone(),
            backup_dir: spec.backup_dir.clone(),
            nodes: vec![Node {
                name: Vec::new(),
                class: Class::Home,
                traverse: spec.backups_enabled(),
                children: Vec::new(),
            }],
            outside: Vec::new(),
        };
        layout.add(&[b"bin".to_vec()], |_| Class::Bin, false);
        layout.add(&[b"data".to_vec()], |_| Class::Data, false);
        for p in &spec.rw_paths {
            match rel_components(&spec.home, p) {
                Some(comps) if !comps.is_empty() => {
                    layout.add(
                        &comps,
                        |inherited| match inherited {
                            Class::Backups => Class::Backups,
                            _ => Class::Data,
                        },
                        false,
                    );
                }
                Some(_) => {}
                None => {
                    if !layout.outside.contains(p) {
                        layout.outside.push(p.clone());
                    }
                }
            }
        }
        if let Some(dir) = &spec.backup_dir {
            if let Some(comps) = rel_components(&spec.home, dir) {
                if !comps.is_empty() {
                    layout.add(&comps, |_| Class::Backups, true);
                }
            }
        }
        layout
    }

    /// Add the path `comps` (relative to the home): missing intermediate
    /// nodes inherit their parent's class; the last node gets `last(inherited)`.
    fn add(&mut self, comps: &[Vec<u8>], last: impl Fn(Class) -> Class, traverse: bool) {
        let mut cur = 0usize;
        for (i, comp) in comps.iter().enumerate() {
            let inherited = self.nodes[cur].class.below();
            let next = match self.child(Some(cur), comp) {
                Some(n) => n,
                None => {
                    self.nodes.push(Node {
                        name: comp.clone(),
                        class: inherited,
                        traverse: false,
                        children: Vec::new(),
                    });
                    let n = self.nodes.len() - 1;
                    self.nodes[cur].children.push(n);
                    n
                }
            };
            if i + 1 == comps.len() {
                self.nodes[next].class = last(inherited);
            } else if traverse {
                self.nodes[next].traverse = true;
            }
            cur = next;
        }
    }

    /// The named child `name` of node `node`, if any.
    pub fn child(&self, node: Option<usize>, name: &[u8]) -> Option<usize> {
        let n = &self.nodes[node?];
        n.children
            .iter()
            .copied()
            .find(|&c| self.nodes[c].name == name)
    }

    /// Class and node of the entry `name` in a directory of class `class`
    /// at node `node`.
    pub fn classify(
        &self,
        class: Class,
        node: Option<usize>,
        name: &[u8],
    ) -> (Class, Option<usize>) {
        match self.child(node, name) {
            Some(c) => (self.nodes[c].class, Some(c)),
            None => (class.below(), None),
        }
    }

    /// Mode of a directory of `class`; `node` adds the traverse bits.
    pub fn dir_mode(&self, class: Class, node: Option<usize>) -> u32 {
        let p = &self.policy;
        let base = match class {
            Class::Home => p.home.dir,
            Class::Bin => p.bin.dir,
            Class::Data => p.data.dir,
            Class::Backups => p.backups.dir,
            Class::Other => p.other.dir,
        }
        .0;
        match node {
            Some(n) if self.nodes[n].traverse => base | p.backups.traverse.0,
            _ => base,
        }
    }

    /// Mode and label of a regular file called `name` in a directory of
    /// `class`. Keys win everywhere; database names win except in the
    /// backups dir, where such files are snapshots.
    pub fn file_mode(&self, class: Class, name: &[u8]) -> (u32, &'static str) {
        let p = &self.policy;
        if p.key.matches(name) {
            return (p.key.file.0, "key");
        }
        if class != Class::Backups && p.database.matches(name) {
            return (p.database.file.0, "database");
        }
        match class.below() {
            Class::Bin => (p.bin.file.0, "binary"),
            Class::Data => (p.data.file.0, "data"),
            Class::Backups => (p.backups.file.0, "snapshot"),
            Class::Home | Class::Other => (p.other.file.0, "other"),
        }
    }

    /// The path (as the target system sees it) of every named directory,
    /// in creation order, with its node index.
    pub fn named_dirs(&self) -> Vec<(PathBuf, usize)> {
        let mut out = Vec::new();
        let mut stack = vec![(self.home.clone(), 0usize)];
        while let Some((path, n)) = stack.pop() {
            out.push((path.clone(), n));
            for &c in self.nodes[n].children.iter().rev() {
                let name = std::ffi::OsStr::from_bytes(&self.nodes[c].name);
                stack.push((path.join(name), c));
            }
        }
        out
    }

    /// What `--show-policy` prints for this app: each named directory with
    /// the modes it and its contents get.
    pub fn describe(&self) -> Vec<LayoutLine> {
        let mut lines: Vec<LayoutLine> = self
            .named_dirs()
            .into_iter()
            .map(|(path, n)| {
                let class = self.nodes[n].class;
                LayoutLine {
                    path: path.display().to_string(),
                    class: class.as_str(),
                    dir: Mode(self.dir_mode(class, Some(n))),
                    files: Mode(self.file_mode(class, b"").0),
                    subdirs: Mode(self.dir_mode(class.below(), None)),
                }
            })
            .collect();
        for p in &self.outside {
            lines.push(LayoutLine {
                path: p.display().to_string(),
                class: "data",
                dir: self.policy.data.dir,
                files: self.policy.data.file,
                subdirs: self.policy.data.dir,
            });
        }
        lines
    }
}

/// One line of the effective layout printed by `--show-policy`.
#[derive(Debug, Clone, Serialize)]
pub struct LayoutLine {
    /// Directory.
    pub path: String,
    /// Rule it follows.
    pub class: &'static str,
    /// Its own mode.
    pub dir: Mode,
    /// Mode of the files in it (keys and databases excepted).
    pub files: Mode,
    /// Mode of its unnamed subdirectories.
    pub subdirs: Mode,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> AppSpec {
        let recs = rip_core::io::parse_records(json.as_bytes()).unwrap();
        recs[0].spec.clone()
    }

    fn layout(json: &str) -> Layout {
        Layout::new(&spec(json), Policy::default(), 1000, 1000)
    }

    #[test]
    fn home_and_data_traversable_only_with_backups() {
        let with = layout(r#"{"name":"a","backups":{}}"#);
        let without = layout(r#"{"name":"a"}"#);
        let data = with.child(Some(0), b"data");

        assert_eq!(with.dir_mode(Class::Home, Some(0)), 0o710);
        assert_eq!(with.dir_mode(Class::Data, data), 0o710);
        assert_eq!(without.dir_mode(Class::Home, Some(0)), 0o700);
        assert_eq!(
            without.dir_mode(Class::Data, without.child(Some(0), b"data")),
            0o700
        );
    }

    #[test]
    fn backups_dir_is_setgid_and_snapshots_group_readable() {
        let l = layout(r#"{"name":"a","backups":{}}"#);
        let data = l.child(Some(0), b"data");
        let (class, node) = l.classify(Class::Data, data, b"backups");

        assert_eq!(class, Class::Backups);
        assert_eq!(l.dir_mode(class, node), 0o2750);
        assert_eq!(l.file_mode(class, b"app-2026.db"), (0o640, "snapshot"));
        assert_eq!(l.dir_mode(Class::Backups, None), 0o2750);
    }

    #[test]
    fn keys_are_private_even_in_backups() {
        let l = layout(r#"{"name":"a","backups":{}}"#);

        assert_eq!(l.file_mode(Class::Backups, b"age.key"), (0o600, "key"));
        assert_eq!(l.file_mode(Class::Home, b"age.key"), (0o600, "key"));
    }

    #[test]
    fn databases_and_companions_are_private() {
        let l = layout(r#"{"name":"a"}"#);

        for n in [&b"app.db"[..], b"app.db-wal", b"app.db-shm", b"x.sqlite"] {
            assert_eq!(l.file_mode(Class::Data, n), (0o600, "database"));
        }
    }

    #[test]
    fn binaries_and_other_files() {
        let l = layout(r#"{"name":"a"}"#);

        assert_eq!(l.file_mode(Class::Bin, b"a"), (0o700, "binary"));
        assert_eq!(l.file_mode(Class::Data, b"notes.txt"), (0o600, "data"));
        assert_eq!(l.file_mode(Class::Home, b"README"), (0o600, "other"));
        assert_eq!(l.classify(Class::Home, Some(0), b"logs").0, Class::Other);
    }

    #[test]
    fn backups_outside_data_makes_only_home_traversable() {
        let l = layout(r#"{"name":"a","backups":{"dir":"/home/a/snap/b"}}"#);
        let snap = l.child(Some(0), b"snap");
        let data = l.child(Some(0), b"data");

        assert_eq!(l.dir_mode(Class::Other, snap), 0o710);
        assert_eq!(l.dir_mode(Class::Data, data), 0o700);
        assert_eq!(l.dir_mode(Class::Home, Some(0)), 0o710);
    }

    #[test]
    fn rw_paths_inside_and_outside() {
        let l = layout(r#"{"name":"a","rw_paths":["/home/a/up/img","/srv/a"]}"#);
        let up = l.child(Some(0), b"up");

        assert_eq!(l.nodes[up.unwrap()].class, Class::Other);
        assert_eq!(l.classify(Class::Other, up, b"img").0, Class::Data);
        assert_eq!(l.outside, vec![PathBuf::from("/srv/a")]);
    }

    #[test]
    fn policy_override_changes_modes() {
        let s = spec(r#"{"name":"a","perms":{"bin":{"file":"0500"}}}"#);
        let p = Policy::for_spec(s.perms.as_ref()).unwrap();
        let l = Layout::new(&s, p, 1, 1);

        assert_eq!(l.file_mode(Class::Bin, b"a"), (0o500, "binary"));
    }
}
