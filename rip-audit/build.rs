//! Turn the committed syscall data (`data/syscall-groups.txt`,
//! `data/syscall-unresolved.txt`) into static tables, so that rip-audit
//! does not parse and index them at every start: sorted names (an id is an
//! index), sorted group names, and per group its members recursively as id
//! lists and bit sets, all of them and the natively resolvable ones.

// A build script reports failure by panicking, and writing to a String
// cannot fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "src/syscalls/text.rs"]
mod text;

use std::fmt::Write as _;
use std::path::PathBuf;

fn bits(ids: &[u16], words: usize) -> Vec<u64> {
    let mut b = vec![0u64; words];
    for &id in ids {
        b[usize::from(id) / 64] |= 1u64 << (id % 64);
    }
    b
}

fn main() {
    let groups_path = "data/syscall-groups.txt";
    let unresolved_path = "data/syscall-unresolved.txt";
    println!("cargo:rerun-if-changed={groups_path}");
    println!("cargo:rerun-if-changed={unresolved_path}");
    println!("cargo:rerun-if-changed=src/syscalls/text.rs");
    let read =
        |p: &str| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read {p}: {e}"));
    let groups_text = read(groups_path);
    let unresolved_text = read(unresolved_path);
    let groups = text::parse_groups(&groups_text);
    let unresolved = text::parse_names(&unresolved_text);

    let mut names: Vec<&str> = groups
        .values()
        .flatten()
        .copied()
        .filter(|m| !m.starts_with('@'))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(
        names.len() < usize::from(u16::MAX),
        "too many syscall names"
    );
    let words = names.len().div_ceil(64);

    let mut out = String::new();
    let w = &mut out;
    writeln!(
        w,
        "/// Bit-set length in words.\npub const WORDS: usize = {words};"
    )
    .unwrap();
    writeln!(w, "/// Every syscall name, sorted: an id is an index here.").unwrap();
    writeln!(
        w,
        "pub static NAMES: [&str; {}] = {:?};",
        names.len(),
        names
    )
    .unwrap();
    writeln!(
        w,
        "/// Group names, sorted: a group's index in the lists below."
    )
    .unwrap();
    let group_names: Vec<&str> = groups.keys().copied().collect();
    writeln!(
        w,
        "pub static GROUP_NAMES: [&str; {}] = {:?};",
        group_names.len(),
        group_names
    )
    .unwrap();
    let (mut all_ids, mut native_ids) = (Vec::new(), Vec::new());
    let mut seen = vec![false; names.len()];
    for g in &group_names {
        seen.iter_mut().for_each(|m| *m = false);
        text::expand(&groups, &names, g, &mut seen, 0);
        let all: Vec<u16> = (0..names.len())
            .filter(|&i| seen[i])
            .map(|i| i as u16)
            .collect();
        let native: Vec<u16> = all
            .iter()
            .copied()
            .filter(|&i| !unresolved.contains(names[usize::from(i)]))
            .collect();
        all_ids.push(all);
        native_ids.push(native);
    }
    let table = |w: &mut String, doc: &str, name: &str, ty: &str, rows: Vec<String>| {
        writeln!(
            w,
            "/// {doc}\npub static {name}: [&[{ty}]; {}] = [",
            rows.len()
        )
        .unwrap();
        for r in rows {
            writeln!(w, "    &{r},").unwrap();
        }
        writeln!(w, "];").unwrap();
    };
    let fmt = |v: &[u16]| format!("{v:?}");
    let fmt_bits = |v: &[u16]| format!("{:?}", bits(v, words));
    table(
        w,
        "Per group: every member id, recursively.",
        "ALL_IDS",
        "u16",
        all_ids.iter().map(|v| fmt(v)).collect(),
    );
    table(
        w,
        "Per group: the natively resolvable member ids.",
        "NATIVE_IDS",
        "u16",
        native_ids.iter().map(|v| fmt(v)).collect(),
    );
    table(
        w,
        "`ALL_IDS` as bit sets.",
        "ALL_BITS",
        "u64",
        all_ids.iter().map(|v| fmt_bits(v)).collect(),
    );
    table(
        w,
        "`NATIVE_IDS` as bit sets.",
        "NATIVE_BITS",
        "u64",
        native_ids.iter().map(|v| fmt_bits(v)).collect(),
    );

    let dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(dir.join("syscall_tables.rs"), out).expect("cannot write the syscall tables");
}
