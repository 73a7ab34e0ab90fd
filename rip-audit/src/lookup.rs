//! Where systemd 252 finds a unit's files: the unit search path, the
//! name map it builds from the unit files and symlinks on that path
//! (`unit_file_build_name_map()`: the first directory with a name wins, a
//! symlink to a unit on the path is an alias, one elsewhere a linked unit
//! file), the fragment a name resolves to along its alias chain, every
//! name of the unit, and the drop-ins of all those names.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use rip_core::Root;

use crate::unitfile::stat_in;

/// The unit search path of a system manager (systemd 252, Debian), relative
/// to the root.
pub const SEARCH_PATH: &[&str] = &[
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/run/systemd/generator.early",
    "/etc/systemd/system",
    "/etc/systemd/system.attached",
    "/run/systemd/system",
    "/run/systemd/system.attached",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/run/systemd/generator.late",
];

/// How many alias links systemd follows from a name (`FOLLOW_MAX`).
const FOLLOW_MAX: usize = 8;

/// A unit's fragment and its drop-ins, in the order systemd applies them.
#[derive(Debug, Clone)]
pub struct UnitFiles {
    /// The unit's name as systemd shows it: the file given, or for an
    /// alias the name of the fragment it leads to (`app1.service`).
    pub name: String,
    /// The file systemd reads: the one given, unless a file or link of the
    /// same name comes earlier on the search path or the file given is an
    /// alias link (then the fragment at the end of the alias chain).
    pub fragment: PathBuf,
    /// Drop-ins, sorted by file name (the first directory on the search
    /// path wins for equal names). All regular files.
    pub dropins: Vec<PathBuf>,
    /// Whether the fragment was listed as a regular file (not a symlink,
    /// FIFO...): such a file is read without the final read for EOF.
    pub fragment_regular: bool,
    /// Why systemd finds no fragment for the unit ("not found": an alias
    /// chain that is broken, loops or is too long, or a name listed only
    /// as something other than a file or link, such as a FIFO). Nothing is
    /// read then.
    pub not_found: Option<String>,
    /// Under `--root`, the root: the files are opened inside it (see
    /// [`crate::unitfile::open_in`]).
    pub root: Option<PathBuf>,
    /// The fragment is the file given, and the unit has its name.
    pub as_given: bool,
}

impl UnitFiles {
    /// The unit of `file` as given: its own fragment, no drop-ins (nothing
    /// is read when systemd does not find it: `not_found`).
    pub fn given(
        file: &Path,
        root: Option<PathBuf>,
        not_found: Option<String>,
    ) -> anyhow::Result<Self> {
        Ok(UnitFiles {
            name: unit_name(file)?.to_owned(),
            fragment: file.to_path_buf(),
            dropins: Vec::new(),
            fragment_regular: false,
            as_given: not_found.is_none(),
            not_found,
            root,
        })
    }
}

/// What a directory of the search path holds under a unit name (systemd
/// ignores anything else, a FIFO or a directory so named).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File,
    Link,
}

/// A set of names with a fast non-keyed hash: these sets (and the maps
/// below) only answer lookups, so a crafted set of names could only slow a
/// run down.
type NameSet = HashSet<Box<str>, foldhash::fast::RandomState>;

/// A map with the same fast hash.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One directory of the search path, listed once.
#[derive(Debug)]
struct Listed {
    /// As given (a file's directory) or under the root (the search path).
    dir: PathBuf,
    /// Absolute and without `.`/`..`: what a link target is compared with.
    abs: PathBuf,
    /// Where it really is, symlinks resolved (inside the root under
    /// `--root`): compared with link targets too, and where it is listed
    /// and its links and drop-in directories are read.
    real: Option<PathBuf>,
    /// Where to list and read it: as resolved inside the root under
    /// `--root` (never through a link out of it), as given on the host.
    io: PathBuf,
    /// Its `*.d` directories.
    dropin_dirs: NameSet,
    /// Its `*.service` files and links.
    units: FastMap<Box<str>, Entry>,
    /// Device and inode, when it could be opened.
    id: Option<(u64, u64)>,
}

/// Where a name leads, as one entry of systemd's name map.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A fragment: the entry `name` of directory `dir` (a link when
    /// `linked`, read through it).
    Fragment {
        dir: usize,
        name: Box<str>,
        linked: bool,
    },
    /// An alias: the name it points to.
    Alias(String),
}

/// The search path listed once per run, with systemd's name map over it,
/// so that auditing many units probes no path twice.
#[derive(Debug)]
pub struct UnitIndex {
    /// The search path, in order, duplicates (by device and inode) dropped.
    path: Vec<Listed>,
    /// Each directory of the search path before duplicates were dropped,
    /// absolute: a link pointing into one of these is an alias.
    prefixes: Vec<PathBuf>,
    /// What each link on the path leads to (None: systemd ignores it).
    links: FastMap<(usize, Box<str>), Option<Target>>,
    /// For a unit name, the alias links whose chain ends at it (systemd's
    /// `unit_name_map` without the names that stand for themselves; see
    /// [`UnitIndex::add_names`] for the one case where that matters).
    aliases: FastMap<String, Vec<String>>,
    /// The root, for absolute link targets (None on the host).
    root: Option<PathBuf>,
    /// The root with its own symlinks resolved.
    real_root: Option<PathBuf>,
    /// For each file the index was built for, the earlier one whose unit
    /// systemd merges its unit into (see [`UnitIndex::merged_into`]).
    merged: Vec<Option<usize>>,
}

impl UnitIndex {
    /// Index the search path under `root` and the directories of `files`.
    /// On the host the files' directories come first, in the order given,
    /// as `systemd-analyze` puts them; under `--root` a directory that is
    /// on the search path keeps its place there, as when systemd loads the
    /// unit by name (`system.control` before `/etc/systemd/system`).
    pub fn new(root: &Root, files: &[PathBuf]) -> Self {
        let rooted = !root.is_host();
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let root_dir = rooted.then(|| root.join("/"));
        let within = root_dir.as_deref();
        let mut search = list_search_path(root, &cwd, within);
        // The files' directories, each listed once, in the order of their
        // first file that exists (systemd-analyze leaves out the directory
        // of a missing file or dangling link, seen with systemd 252.39).
        let mut listed: Vec<(&Path, Option<Listed>)> = Vec::new();
        let mut order: Vec<usize> = Vec::new();
        let mut last: Option<usize> = None;
        for f in files {
            let p = parent_of(f);
            let at = match last.filter(|&i| listed[i].0 == p) {
                Some(i) => i,
                None => match listed.iter().position(|(q, _)| *q == p) {
                    Some(i) => i,
                    None => {
                        let l = list(p.to_path_buf(), &cwd, within, &mut Vec::new());
                        listed.push((p, Some(l)));
                        listed.len() - 1
                    }
                },
            };
            last = Some(at);
            if order.contains(&at) {
                continue;
            }
            if exists(f, listed[at].1.as_ref()) {
                order.push(at);
            }
        }
        let mut path: Vec<Listed> = Vec::new();
        for at in order {
            let Some(l) = listed[at].1.take() else {
                continue;
            };
            let on_search = l.id.is_some() && search.iter().any(|s| s.id == l.id);
            if !(rooted && on_search) {
                path.push(l);
            }
        }
        // On the host, where each directory really is matters only to tell
        // an alias from a linked unit file.
        let links = path
            .iter()
            .chain(&search)
            .any(|l| l.units.values().any(|e| *e == Entry::Link));
        if !rooted && links {
            for l in path
                .iter_mut()
                .chain(search.iter_mut())
                .filter(|l| l.id.is_some())
            {
                l.real = real_dir(None, &l.dir);
            }
        }
        let prefixes = path
            .iter()
            .chain(&search)
            .flat_map(|l| [Some(l.abs.clone()), l.real.clone()])
            .flatten()
            .collect();
        for l in search {
            if l.id.is_none() || !path.iter().any(|p| p.id == l.id) {
                path.push(l);
            }
        }
        let mut idx = UnitIndex {
            path,
            prefixes,
            links: FastMap::default(),
            aliases: FastMap::default(),
            real_root: root_dir.as_deref().and_then(|r| fs::canonicalize(r).ok()),
            root: root_dir,
            merged: Vec::new(),
        };
        let mut links = FastMap::default();
        let mut chased = FastMap::default();
        for (i, l) in idx.path.iter().enumerate() {
            for (name, e) in &l.units {
                if *e == Entry::Link {
                    links.insert((i, name.clone()), idx.read_link(i, name, &mut chased));
                }
            }
        }
        idx.links = links;
        idx.aliases = idx.alias_map();
        idx.merged = idx.merge_plan(files);
        idx
    }

    /// The earlier file (an index into the files the index was built for)
    /// whose unit the unit of file `i` is, as systemd loads the files of one
    /// run in order: a name already loaded is that unit, and a unit one of
    /// whose names (aliases, a template's instance) another loaded unit
    /// has is merged into that one. None: the file's own unit.
    pub fn merged_into(&self, i: usize) -> Option<usize> {
        self.merged.get(i).copied().flatten()
    }

    /// See [`UnitIndex::merged_into`]. Only units with more than their
    /// own name can merge (a second file of the same name is the same unit
    /// anyway), so a run without them costs a lookup per file.
    fn merge_plan(&self, files: &[PathBuf]) -> Vec<Option<usize>> {
        let mut plan = vec![None; files.len()];
        fn requested(f: &Path) -> Option<std::borrow::Cow<'_, str>> {
            let name = crate::specifier::instantiated(unit_name(f).ok()?);
            kind(&name).is_some().then_some(name)
        }
        let alone = |name: &str| {
            !self.aliases.contains_key(name)
                && matches!(self.lookup(name), Some(Target::Fragment { name: n, .. }) if *n == *name)
        };
        if files
            .iter()
            .all(|f| requested(f).map_or(true, |n| alone(&n)))
        {
            return plan;
        }
        let mut owner: FastMap<String, usize> = FastMap::default();
        for (k, f) in files.iter().enumerate() {
            let Some(name) = requested(f) else { continue };
            if let Some(&j) = owner.get(&*name) {
                plan[k] = Some(j);
                continue;
            }
            let Ok((unit, names)) = self.locate_names(f) else {
                continue;
            };
            if unit.not_found.is_some() {
                continue;
            }
            // A name another unit already has merges this one into it;
            // a template name stands for the unit's instance, but merging
            // through it fails (systemd looks the template up as it is), and
            // the unit stays its own.
            let instance = match kind(&name) {
                Some(Kind::Instance(i)) => Some(i.to_owned()),
                _ => None,
            };
            let into = names
                .iter()
                .filter(|n| kind(n) != Some(Kind::Template))
                .find_map(|n| owner.get(n).copied());
            let holder = into.unwrap_or(k);
            plan[k] = into;
            let all = names
                .into_iter()
                .map(|n| match (kind(&n), &instance) {
                    (Some(Kind::Template), Some(i)) => with_instance(&n, i),
                    _ => n,
                })
                .chain(std::iter::once(name.into_owned()));
            for n in all {
                owner.entry(n).or_insert(holder);
            }
        }
        plan
    }

    /// What link `name` of directory `dir` leads to, as systemd's
    /// `unit_file_resolve_symlink()` sees it: a target on the search path
    /// makes an alias (if the names agree: same type, template or
    /// instance rules, not itself), any other a linked unit file. The
    /// target's directory is resolved first, as systemd's `chase_symlinks()`
    /// does (symlinks before `..`); under `--root` inside the root, where
    /// an absolute link starts at the root and `..` stops there.
    fn read_link(
        &self,
        dir: usize,
        name: &str,
        chased: &mut FastMap<PathBuf, Option<PathBuf>>,
    ) -> Option<Target> {
        let l = &self.path[dir];
        let target = fs::read_link(l.io.join(name)).ok()?;
        let joined = match &self.root {
            None if target.is_absolute() => target,
            None => l.abs.join(target),
            Some(root) => {
                // The link's directory as a path inside the root.
                let real_root = self.real_root.as_deref().unwrap_or(root);
                let here = l
                    .real
                    .as_deref()
                    .and_then(|r| r.strip_prefix(real_root).ok());
                let inside = Path::new("/")
                    .join(here.unwrap_or(Path::new("")))
                    .join(target);
                root.join(normalize(&inside).strip_prefix("/").ok()?)
            }
        };
        // Links share directories: each is resolved once.
        let real = match (joined.parent(), joined.file_name()) {
            (Some(p), Some(n)) => chased
                .entry(p.to_path_buf())
                .or_insert_with(|| real_dir(self.root.as_deref(), p))
                .as_ref()
                .map(|p| p.join(n)),
            _ => None,
        };
        let t = real.unwrap_or_else(|| normalize(&joined));
        if !self.prefixes.iter().any(|p| t.starts_with(p)) {
            return Some(Target::Fragment {
                dir,
                name: name.into(),
                linked: true,
            });
        }
        let target_name = t.file_name()?.to_str()?;
        (target_name != name && alias_allowed(name, target_name))
            .then(|| Target::Alias(target_name.to_owned()))
    }

    /// What `name` maps to: its first file or link on the search path
    /// (systemd skips a link it cannot use and looks further).
    fn lookup(&self, name: &str) -> Option<Target> {
        self.path
            .iter()
            .enumerate()
            .find_map(|(i, l)| match l.units.get(name)? {
                Entry::File => Some(Target::Fragment {
                    dir: i,
                    name: name.into(),
                    linked: false,
                }),
                Entry::Link => self.links.get(&(i, Box::from(name))).cloned().flatten(),
            })
    }

    /// Follow `name`'s alias chain to a fragment, as systemd 252's
    /// `unit_ids_map_get()` does: at most [`FOLLOW_MAX`] steps, and an
    /// instance the chain reaches without an entry of its own stands on its
    /// template's. Err: why there is no fragment.
    fn follow(&self, name: &str) -> Result<Target, &'static str> {
        let mut key = name.to_owned();
        for step in 0..FOLLOW_MAX {
            let found = match self.lookup(&key) {
                None if step == 0 => return Err("no such file on the search path"),
                None => template_of(&key)
                    .and_then(|t| self.lookup(&t))
                    .ok_or("its alias points to a missing unit")?,
                Some(t) => t,
            };
            match found {
                Target::Alias(next) => key = next,
                fragment => return Ok(fragment),
            }
        }
        Err("its alias chain is too long or loops")
    }

    /// systemd's reverse map, for alias links: the name at the end of each
    /// chain (an instance put into a template) to the links that lead
    /// there. A chain that ends at a masked (empty or /dev/null) or
    /// missing file counts for none.
    fn alias_map(&self) -> FastMap<String, Vec<String>> {
        let mut out: FastMap<String, Vec<String>> = FastMap::default();
        let mut done = NameSet::default();
        for l in &self.path {
            for (src, e) in &l.units {
                // Only a name's first usable entry counts.
                if *e != Entry::Link || !done.insert(src.clone()) {
                    continue;
                }
                if !matches!(self.lookup(src), Some(Target::Alias(_))) {
                    continue;
                }
                let Ok(Target::Fragment { dir, name, .. }) = self.follow(src) else {
                    continue;
                };
                // systemd's `null_or_empty_path()`: a mask, or a fragment
                // it cannot stat (a dangling link), counts for none.
                if !loadable(self.root.as_deref(), &self.path[dir].dir.join(&*name)) {
                    continue;
                }
                let dst = match (kind(&name), kind(src)) {
                    (Some(Kind::Template), Some(Kind::Instance(inst))) => {
                        with_instance(&name, inst)
                    }
                    _ => name.to_string(),
                };
                out.entry(dst).or_default().push(src.to_string());
            }
        }
        for v in out.values_mut() {
            v.sort();
        }
        out
    }

    /// Find the unit `file` names: its fragment along the search path and
    /// the alias chain (see [`UnitFiles::fragment`]), its names, and the
    /// drop-ins of every name, in the order systemd 252 applies them.
    ///
    /// Where two alias names of one unit have a drop-in of the same file
    /// name, systemd takes the one of whichever name its hash table lists
    /// first; rip-audit takes the unit's own name first, then the others in
    /// sorted order.
    ///
    /// Each file is located as if given alone; in a run of several, see
    /// [`UnitIndex::merged_into`] first.
    pub fn locate(&self, file: &Path) -> anyhow::Result<UnitFiles> {
        Ok(self.locate_names(file)?.0)
    }

    /// [`UnitIndex::locate`], and the unit's names (its own first).
    fn locate_names(&self, file: &Path) -> anyhow::Result<(UnitFiles, Vec<String>)> {
        let given = unit_name(file)?;
        // A template is analysed as an instance, as systemd-analyze does.
        let name = crate::specifier::instantiated(given);
        let Some(name_kind) = kind(&name) else {
            // Not a unit name: the model says why systemd refuses it.
            return Ok((UnitFiles::given(file, self.root.clone(), None)?, Vec::new()));
        };
        let mut names: Vec<String> = Vec::with_capacity(1);
        self.add_names(name_kind, None, &name, &mut names);
        let mut found = self.follow(&name);
        if found.is_err() {
            if let Some(tpl) = template_of(&name) {
                found = self.follow(&tpl);
            }
        }
        // A linked unit file whose link leads nowhere: systemd cannot open
        // it and takes the unit for not found.
        if let Ok(Target::Fragment {
            dir,
            name: f,
            linked: true,
        }) = &found
        {
            let p = self.path[*dir].dir.join(&**f);
            let gone = stat_in(self.root.as_deref(), &p);
            if gone.is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
                found = Err("its link leads to a missing file");
            }
        }
        let (dir, fname, linked) = match found {
            Ok(Target::Fragment { dir, name, linked }) => (dir, name, linked),
            Ok(Target::Alias(_)) => unreachable!("follow() ends at a fragment"),
            Err(mut why) => {
                let other = fs::symlink_metadata(file)
                    .is_ok_and(|m| !m.is_file() && !m.file_type().is_symlink());
                if other && given == name {
                    why = "neither a file nor a symlink, which systemd skips";
                }
                let why = format!("unit {name} not found: {why}");
                return Ok((
                    UnitFiles::given(file, self.root.clone(), Some(why))?,
                    Vec::new(),
                ));
            }
        };
        if *fname != *name {
            self.add_names(name_kind, Some(&fname), &fname, &mut names);
        }
        let l = &self.path[dir];
        // The file given, as given (the common case).
        let own = *fname == *given && l.dir.as_os_str() == parent_of(file).as_os_str();
        // systemd names the unit after its fragment (an instance put into
        // a template) when that name is among the unit's names, else keeps
        // the name it was loaded by.
        let id = if *fname == *name {
            name.to_string()
        } else {
            match (kind(&fname), name_kind) {
                (Some(Kind::Template), Kind::Instance(i)) => with_instance(&fname, i),
                _ => fname.to_string(),
            }
        };
        let id = if names.contains(&id) {
            id
        } else {
            name.to_string()
        };
        if names.len() != 1 || names[0] != id {
            names.retain(|n| *n != id);
            names.sort();
            names.insert(0, id);
        }
        let unit = UnitFiles {
            as_given: own && names[0] == given,
            dropins: self.dropins(&names),
            name: names[0].clone(),
            fragment: if own {
                file.to_path_buf()
            } else {
                l.dir.join(&*fname)
            },
            fragment_regular: !linked,
            not_found: None,
            root: self.root.clone(),
        };
        Ok((unit, names))
    }

    /// systemd's `add_names()` for a unit of kind `unit`: `name` itself
    /// unless a template, and the aliases that end at it (for an instance,
    /// a template alias made an instance, unless that instance has a
    /// fragment of its own elsewhere).
    fn add_names(
        &self,
        unit: Kind<'_>,
        fragment_name: Option<&str>,
        name: &str,
        names: &mut Vec<String>,
    ) {
        let mut add = |n: String| {
            if !names.contains(&n) {
                names.push(n);
            }
        };
        if unit != Kind::Template {
            add(name.to_owned());
        }
        // systemd's map lists a name among its own aliases when it has a
        // fragment of its own: that matters for a template, which an
        // instance unit takes as its instance.
        let own = if kind(name) == Some(Kind::Template) {
            match self.follow(name) {
                Ok(Target::Fragment { dir, name: f, .. }) if *f == *name => {
                    let p = self.path[dir].dir.join(&*f);
                    loadable(self.root.as_deref(), &p).then_some(name)
                }
                _ => None,
            }
        } else {
            None
        };
        let aliases = self.aliases.get(name).into_iter().flatten();
        for alias in own.into_iter().chain(aliases.map(String::as_str)) {
            match (unit, kind(alias)) {
                (Kind::Instance(i), Some(Kind::Template)) => {
                    let inst = with_instance(alias, i);
                    let elsewhere = match self.follow(&inst) {
                        Ok(Target::Fragment { name: f, .. }) => fragment_name != Some(&*f),
                        _ => false,
                    };
                    if !elsewhere {
                        add(inst);
                    }
                }
                _ => add(alias.to_owned()),
            }
        }
    }

    /// The drop-ins of a unit with these names (its own first), as
    /// systemd's `unit_file_find_dropin_paths()` collects them: for each
    /// name, in every directory of the search path, that name's directories
    /// (see [`dropin_dir_names`]); then `service.d` in each; by file name,
    /// the first one found wins.
    fn dropins(&self, names: &[String]) -> Vec<PathBuf> {
        let mut by_name: BTreeMap<OsString, Option<PathBuf>> = BTreeMap::new();
        let dirs: Vec<&Listed> = self
            .path
            .iter()
            .filter(|l| !l.dropin_dirs.is_empty())
            .collect();
        if dirs.is_empty() {
            return Vec::new();
        }
        for n in names {
            let subs = dropin_dir_names(n);
            for l in &dirs {
                for sub in &subs {
                    add_dropins(l, sub, self.root.as_deref(), &mut by_name);
                }
            }
        }
        for l in &dirs {
            add_dropins(l, "service.d", self.root.as_deref(), &mut by_name);
        }
        by_name.into_values().flatten().collect()
    }
}

/// A unit name's kind (`.service` names only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind<'a> {
    Plain,
    Template,
    Instance(&'a str),
}

/// The kind of `name` if it is a valid service name as systemd's
/// `unit_name_is_valid()` has it: under 256 bytes, ASCII letters, digits
/// and `:-_.\@`, a prefix before any `@`.
fn kind(name: &str) -> Option<Kind<'_>> {
    let stem = name.strip_suffix(".service")?;
    let ok =
        |c: u8| c.is_ascii_alphanumeric() || matches!(c, b':' | b'-' | b'_' | b'.' | b'\\' | b'@');
    if name.len() >= 256 || stem.is_empty() || !stem.bytes().all(ok) {
        return None;
    }
    match stem.split_once('@') {
        None => Some(Kind::Plain),
        Some(("", _)) => None,
        Some((_, "")) => Some(Kind::Template),
        Some((_, i)) => Some(Kind::Instance(i)),
    }
}

/// Whether `file` counts as there for systemd-analyze to put its
/// directory on the search path (`listed`: that directory's listing): it
/// exists, through links; for an instance (or a template, analysed as
/// one), its template in the same directory will do.
fn exists(file: &Path, listed: Option<&Listed>) -> bool {
    let Some(n) = file_name(file) else {
        return false;
    };
    if listed.is_some_and(|l| l.units.get(n) == Some(&Entry::File)) || fs::metadata(file).is_ok() {
        return true;
    }
    template_of(n).is_some_and(|t| fs::metadata(parent_of(file).join(t)).is_ok())
}

/// `p@i.service` to `p@.service`.
fn template_of(name: &str) -> Option<String> {
    match kind(name)? {
        Kind::Instance(i) => {
            let prefix = &name[..name.len() - ".service".len() - i.len()];
            Some(format!("{prefix}.service"))
        }
        _ => None,
    }
}

/// `p@.service` and `i` to `p@i.service`.
fn with_instance(template: &str, instance: &str) -> String {
    let stem = template.strip_suffix("@.service").unwrap_or(template);
    format!("{stem}@{instance}.service")
}

/// systemd's `unit_validate_alias_symlink_or_warn()` for a link `src` to
/// `dst` on the search path: both service names, of the same kind (or an
/// instance to its template's kind), an instance to the same instance.
fn alias_allowed(src: &str, dst: &str) -> bool {
    match (kind(src), kind(dst)) {
        (Some(Kind::Instance(a)), Some(Kind::Instance(b))) => a == b,
        (Some(Kind::Instance(_)), Some(Kind::Template)) => true,
        (Some(a), Some(b)) => std::mem::discriminant(&a) == std::mem::discriminant(&b),
        _ => false,
    }
}

/// Whether systemd's `null_or_empty_path()` is 0 for `p`: it can be
/// stat'ed and is neither a character device nor an empty file (a mask).
fn loadable(within: Option<&Path>, p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    stat_in(within, p)
        .is_ok_and(|m| !(m.file_type().is_char_device() || (m.is_file() && m.len() == 0)))
}

/// Where directory `dir` really is, every symlink on the way resolved:
/// on the host its canonical path; `within` a root, as resolved inside it
/// (see [`crate::unitfile::open_in`]), a path of this machine that the
/// kernel found inside the root. None when it cannot be resolved.
fn real_dir(within: Option<&Path>, dir: &Path) -> Option<PathBuf> {
    match within {
        None => fs::canonicalize(dir).ok(),
        Some(_) => {
            use std::os::fd::AsRawFd;
            let f = crate::unitfile::open_in(within, dir, libc::O_PATH | libc::O_DIRECTORY).ok()?;
            fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).ok()
        }
    }
}

/// `p` without `.` and `..` components, lexically (`..` at the top stays
/// at the top).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The names of the `.d/` directories that apply to `name`, most specific
/// first, as systemd 252's `unit_file_find_dirs()` walks them: the unit
/// itself, for an instance its template (and the template's prefixes),
/// then each dash prefix (`a-b-.service.d`, `a-.service.d` for
/// `a-b-c.service`; `t-@i.service.d` and its template for `t-x@i.service`).
/// The type directory (`service.d`) is not among them: it comes after
/// these in every directory of the search path.
fn dropin_dir_names(name: &str) -> Vec<String> {
    fn walk(name: &str, out: &mut Vec<String>) {
        out.push([name, ".d"].concat());
        let Some((stem, suffix)) = name.rfind('.').map(|i| name.split_at(i)) else {
            return;
        };
        let (prefix, instance) = match stem.split_once('@') {
            Some((p, i)) => (p, Some(i).filter(|i| !i.is_empty())),
            None => (stem, None),
        };
        if instance.is_some() {
            walk(&[prefix, "@", suffix].concat(), out);
        }
        // The prefix up to its last dash (a trailing dash is chopped off
        // once first).
        let mut p = prefix;
        let mut chopped = false;
        let p = loop {
            match p.rfind('-') {
                None | Some(0) => return,
                Some(n) if n + 1 < p.len() || chopped => break &p[..=n],
                Some(n) => (p, chopped) = (&p[..n], true),
            }
        };
        match instance {
            Some(i) => walk(&[p, "@", i, suffix].concat(), out),
            None => walk(&[p, suffix].concat(), out),
        }
    }
    let mut out = Vec::new();
    walk(name, &mut out);
    out
}

/// Add the `*.conf` entries of `l.dir/sub` to `by_name`, as systemd 252's
/// `conf_files_list_strv()` lists drop-ins: hidden names are skipped, a
/// name found earlier wins, and any entry claims its name, but only a
/// regular file (or a link to one) is read (a link to /dev/null, a
/// dangling link or a directory masks the name; systemd would block on a
/// FIFO, rip-audit reads nothing from it).
fn add_dropins(
    l: &Listed,
    sub: &str,
    within: Option<&Path>,
    by_name: &mut BTreeMap<OsString, Option<PathBuf>>,
) {
    use rustix::fs::{FileType, Mode, OFlags, RawDir};
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    // systemd 252 does not follow a drop-in directory that is a symlink;
    // the listing has only real directories.
    if !l.dropin_dirs.contains(sub) {
        return;
    }
    // Opened as opendir(3) would, read with getdents into a buffer on the
    // stack (no status, no allocation but for a name kept).
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let Ok(fd) = rustix::fs::open(l.io.join(sub), flags, Mode::empty()) else {
        return;
    };
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 8192];
    let mut rd = RawDir::new(fd, &mut buf);
    let shown = l.dir.join(sub);
    while let Some(Ok(e)) = rd.next() {
        let b = e.file_name().to_bytes();
        let name = OsStr::from_bytes(b);
        if b.starts_with(b".") || !b.ends_with(b".conf") || by_name.contains_key(name) {
            continue;
        }
        let p = shown.join(name);
        // The entry's type comes with the listing; only a symlink (or an
        // unknown type) needs a stat.
        let regular = match e.file_type() {
            FileType::RegularFile => true,
            FileType::Symlink | FileType::Unknown => {
                stat_in(within, &p).is_ok_and(|m| m.file_type().is_file())
            }
            _ => false,
        };
        by_name.insert(name.to_owned(), regular.then_some(p));
    }
}

/// List every directory of the search path under `root`. A directory met
/// again under another name (Debian's `/lib` is a link to `/usr/lib`) is
/// not read twice: [`UnitIndex::new`] drops it as a duplicate of the first.
fn list_search_path(root: &Root, cwd: &Path, within: Option<&Path>) -> Vec<Listed> {
    let mut seen = Vec::new();
    SEARCH_PATH
        .iter()
        .map(|d| list(root.join(d), cwd, within, &mut seen))
        .collect()
}

/// List `dir` once: its `*.d` directories and its `*.service` files and
/// links, read with `getdents` into one buffer (nothing is allocated for
/// an entry that is not kept). A directory that cannot be read lists as
/// empty; one whose device and inode are in `seen` (already listed under
/// another name) is opened but not read.
fn list(dir: PathBuf, cwd: &Path, within: Option<&Path>, seen: &mut Vec<(u64, u64)>) -> Listed {
    use nix::dir::{Dir, Type};
    use nix::fcntl::OFlag;
    use nix::sys::stat::{fstat, fstatat, Mode, SFlag};
    use std::os::fd::AsRawFd;
    // On the host this is filled in later, if needed.
    let real = within.and_then(|_| real_dir(within, &dir));
    let io = match (within, &real) {
        (Some(_), Some(r)) => r.clone(),
        _ => dir.clone(),
    };
    let mut l = Listed {
        abs: normalize(&cwd.join(&dir)),
        real,
        io,
        dropin_dirs: NameSet::default(),
        units: FastMap::default(),
        id: None,
        dir,
    };
    if within.is_some() && l.real.is_none() {
        // Not inside the root: nothing to list.
        return l;
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let Ok(mut d) = Dir::open(&l.io, flags, Mode::empty()) else {
        return l;
    };
    let fd = d.as_raw_fd();
    l.id = fstat(fd).ok().map(|st| (st.st_dev, st.st_ino));
    if let Some(id) = l.id {
        if seen.contains(&id) {
            return l;
        }
        seen.push(id);
    }
    for e in d.iter().flatten() {
        let name = e.file_name();
        let bytes = name.to_bytes();
        if !(bytes.ends_with(b".d") || bytes.ends_with(b".service")) {
            continue;
        }
        let Ok(n) = std::str::from_utf8(bytes) else {
            continue;
        };
        let t = e.file_type().or_else(|| {
            let st = fstatat(Some(fd), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
            match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
                SFlag::S_IFDIR => Some(Type::Directory),
                SFlag::S_IFREG => Some(Type::File),
                SFlag::S_IFLNK => Some(Type::Symlink),
                _ => None,
            }
        });
        if n.ends_with(".d") {
            // systemd 252 only uses a `.d` entry that is a directory (not
            // a symlink to one).
            if t == Some(Type::Directory) {
                l.dropin_dirs.insert(Box::from(n));
            }
        } else if kind(n).is_some() {
            let entry = match t {
                Some(Type::File) => Entry::File,
                Some(Type::Symlink) => Entry::Link,
                _ => continue,
            };
            l.units.insert(Box::from(n), entry);
        }
    }
    l
}

/// The unit name of a unit file (its file name), if it names a service.
pub fn unit_name(file: &Path) -> anyhow::Result<&str> {
    let name = file_name(file).with_context(|| format!("{file:?} has no usable file name"))?;
    if !name.ends_with(".service") {
        bail!("{file:?}: only .service units can be audited");
    }
    Ok(name)
}

/// The name of `file`: what follows its last `/`, by bytes (None when
/// that is empty, `.`, `..` or not UTF-8).
fn file_name(file: &Path) -> Option<&str> {
    use std::os::unix::ffi::OsStrExt;
    let b = file.as_os_str().as_bytes();
    let name = b.rsplit(|&c| c == b'/').next()?;
    match name {
        b"" | b"." | b".." => None,
        _ => std::str::from_utf8(name).ok(),
    }
}

/// The directory of `file`: what comes before its last `/` (`.` for a
/// bare name, `/` for a file in the root), by bytes.
fn parent_of(file: &Path) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    let b = file.as_os_str().as_bytes();
    match b.iter().rposition(|&c| c == b'/') {
        None => Path::new("."),
        Some(0) => Path::new("/"),
        Some(i) => Path::new(std::ffi::OsStr::from_bytes(&b[..i])),
    }
}

/// Find `file`'s unit files (one-off; see [`UnitIndex`] for many units).
pub fn locate(root: &Root, file: &Path) -> anyhow::Result<UnitFiles> {
    let files = [file.to_path_buf()];
    UnitIndex::new(root, &files).locate(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropin_dirs_cover_prefixes() {
        assert_eq!(
            dropin_dir_names("a-b-c.service"),
            vec!["a-b-c.service.d", "a-b-.service.d", "a-.service.d"]
        );
        assert_eq!(
            dropin_dir_names("t-x@i.service"),
            vec![
                "t-x@i.service.d",
                "t-x@.service.d",
                "t-.service.d",
                "t-@i.service.d",
                "t-@.service.d"
            ]
        );
        assert_eq!(dropin_dir_names("-a.service"), vec!["-a.service.d"]);
        assert_eq!(
            dropin_dir_names("a--b.service"),
            vec!["a--b.service.d", "a--.service.d", "a-.service.d"]
        );
    }

    #[test]
    fn names_kinds_templates_and_alias_rules() {
        assert_eq!(kind("a.service"), Some(Kind::Plain));
        assert_eq!(kind("a@.service"), Some(Kind::Template));
        assert_eq!(kind("a@b.service"), Some(Kind::Instance("b")));
        assert_eq!(kind("@b.service"), None);
        assert_eq!(kind("a b.service"), None);
        assert_eq!(kind("a.socket"), None);
        assert_eq!(
            template_of("a-b@x.y.service").as_deref(),
            Some("a-b@.service")
        );
        assert_eq!(with_instance("a@.service", "x"), "a@x.service");
        assert!(alias_allowed("a.service", "b.service"));
        assert!(alias_allowed("a@x.service", "b@.service"));
        assert!(alias_allowed("a@x.service", "b@x.service"));
        assert!(!alias_allowed("a@x.service", "b@y.service"));
        assert!(!alias_allowed("a.service", "b@.service"));
        assert!(!alias_allowed("a.service", "b.socket"));
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
