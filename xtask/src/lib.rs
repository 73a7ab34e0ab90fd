//! Generators for the rip tools' man pages and shell completions.
//!
//! Everything is rendered to memory first ([`man_pages`], [`completions`]) so
//! the same code writes the files (`cargo run -p xtask -- all`) and checks
//! that the committed ones are fresh (the tests in `xtask/tests/`).

pub mod markdown;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Command, CommandFactory};
use clap_complete::Shell;

/// Title of the manual the pages belong to, shown in each page's header.
const MANUAL: &str = "rip manual";

/// Date in every page's header. It is fixed rather than taken from the
/// clock or file times so that regenerating is reproducible and the
/// staleness test can compare bytes; bump it when the pages change
/// meaningfully.
pub const DATE: &str = "2026-12-03";

/// Help texts use `code` spans (shown as is by `--help`); on the page they
/// become bold. Request lines and lines with an odd number of backticks are
/// left alone.
pub fn bold_code_spans(roff: &str) -> String {
    let mut out = String::with_capacity(roff.len());
    for line in roff.lines() {
        let ticks = line.matches('`').count();
        if line.starts_with('.') || ticks == 0 || ticks % 2 == 1 {
            out.push_str(line);
        } else {
            for (k, piece) in line.split('`').enumerate() {
                if k > 0 {
                    out.push_str(if k % 2 == 1 { "\\fB" } else { "\\fR" });
                }
                out.push_str(piece);
            }
        }
        out.push('\n');
    }
    out
}

/// Set after the title: ragged right. Long paths and option names, above
/// all in narrow table columns, stretch justified lines badly (and groff
/// warns "cannot adjust line" for many of them).
const RAGGED: &str = ".ad l\n";

/// Clean up what clap_mangen and the converter produce, so that
/// `mandoc -T lint -W warning` has nothing to say:
/// - the `Aq` string definition that every clap_mangen part repeats is kept
///   once;
/// - a `.PP` right after `.SH` or `.SS` is dropped (the heading already
///   starts a paragraph);
/// - a `.br` next to an empty line is dropped (the empty line already
///   breaks);
/// - trailing blanks are removed, except an escaped one (`\ `).
pub fn tidy(page: &str) -> String {
    let lines: Vec<&str> = page.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut seen_aq = false;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq") {
            // The pair comes first in every part; keep the first pair only.
            if !seen_aq {
                out.push((*line).to_owned());
            }
            if line.starts_with(".el") {
                seen_aq = true;
            }
            continue;
        }
        let prev = out.last().map(String::as_str).unwrap_or("");
        if *line == ".PP" && (prev.starts_with(".SH") || prev.starts_with(".SS")) {
            continue;
        }
        let next = lines.get(i + 1).copied().unwrap_or("x");
        if *line == ".br" && (prev.is_empty() || next.is_empty()) {
            continue;
        }
        let mut l = line.trim_end().to_owned();
        if l.ends_with('\\') && line.len() > l.len() {
            l.push(' ');
        }
        out.push(l);
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// One generated file: where it goes (relative to the workspace) and what
/// it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Path relative to the workspace root, e.g. `man/rip-unit.1`.
    pub path: PathBuf,
    /// The file's bytes.
    pub contents: Vec<u8>,
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// The tools, by binary name, with their clap definitions.
pub fn tools() -> Vec<(&'static str, Command)> {
    vec![
        ("rip-user", rip_user::cli::Cli::command()),
        ("rip-perms", rip_perms::cli::Cli::command()),
        ("rip-unit", rip_unit::cli::Cli::command()),
        ("rip-audit", rip_audit::cli::Cli::command()),
        ("rip-scrape", rip_scrape::cli::Cli::command()),
    ]
}

/// Where the hand-written sections of a page come from: the tool's own
/// `rip-<x>/MANUAL.md`, kept by the tool's authors next to its code, when
/// it exists; otherwise `man/src/<name>.md`.
pub fn hand_source(root: &Path, name: &str) -> PathBuf {
    let manual = root.join(name).join("MANUAL.md");
    if manual.is_file() {
        manual
    } else {
        root.join("man/src").join(format!("{name}.md"))
    }
}

/// Turn a tool's MANUAL.md, whose sections are `## ` headings after a
/// `# title` and a preamble, into the `# SECTION` form of `man/src/`: the
/// preamble is dropped and headings move up one level. Fenced blocks are
/// left alone.
pub fn from_manual(text: &str) -> Result<String> {
    let mut out = String::new();
    let mut started = false;
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if !fenced && !line.starts_with(' ') {
            if let Some(rest) = line.strip_prefix("## ") {
                started = true;
                out.push_str(&format!("# {}\n", undouble(rest)));
                continue;
            }
            if let Some(rest) = line.strip_prefix("### ") {
                out.push_str(&format!("## {rest}\n"));
                continue;
            }
            if started && line.starts_with("# ") {
                bail!(
                    "line {}: a '# ' heading after the first '## ' section",
                    i + 1
                );
            }
        }
        if started {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !started {
        bail!("no '## SECTION' heading");
    }
    Ok(out)
}

/// A heading pasted twice on one line (`EXIT STATUS## EXIT STATUS`) is
/// read once.
/// See: rip-audit/MANUAL.md had such a line at the time of writing.
fn undouble(heading: &str) -> &str {
    let mut parts = heading.split("## ").map(str::trim);
    let first = parts.next().unwrap_or(heading);
    if parts.all(|p| p == first) {
        first
    } else {
        heading
    }
}

fn read_source(root: &Path, name: &str) -> Result<Vec<markdown::Section>> {
    let path = hand_source(root, name);
    let mut text = fs::read_to_string(&path).with_context(|| format!("reading {path:?}"))?;
    if path.ends_with("MANUAL.md") {
        text = from_manual(&text).with_context(|| format!("reading {path:?}"))?;
    }
    markdown::to_sections(&text).with_context(|| format!("converting {path:?}"))
}

/// The SEE ALSO section a tool page gets when its source has none.
fn default_see_also(name: &str) -> Result<markdown::Section> {
    let mut refs = vec!["`rip`(7)".to_owned()];
    for (other, _) in tools() {
        if other != name {
            refs.push(format!("`{other}`(1)"));
        }
    }
    let text = format!("# SEE ALSO\n{}\n", refs.join(", "));
    let mut sections = markdown::to_sections(&text)?;
    sections.pop().context("empty SEE ALSO")
}

fn clap_part(man: &clap_mangen::Man, render: RenderFn) -> Result<String> {
    let mut buf = Vec::new();
    render(man, &mut buf)?;
    String::from_utf8(buf).context("clap_mangen wrote invalid UTF-8")
}

type RenderFn = fn(&clap_mangen::Man, &mut dyn std::io::Write) -> std::io::Result<()>;

/// Render the section 1 page of one tool: NAME, SYNOPSIS, DESCRIPTION and
/// the options from clap, then the hand-written sections of
/// `man/src/<name>.md`. A `# DESCRIPTION` there is appended to clap's.
pub fn tool_page(root: &Path, name: &'static str, cmd: Command) -> Result<String> {
    let version = cmd.get_version().unwrap_or_default().to_owned();
    let cmd = cmd.name(name).bin_name(name);
    let man = clap_mangen::Man::new(cmd)
        .title(name.to_uppercase())
        .date(DATE)
        .source(format!("rip {version}"))
        .manual(MANUAL);
    let mut sections = read_source(root, name)?;

    let mut page = String::new();
    page.push_str(&format!(
        ".\\\" Generated by `cargo run -p xtask -- man` from the clap definition of\n\
         .\\\" {name} and man/src/{name}.md. Edit those, not this file.\n"
    ));
    page.push_str(&clap_part(&man, clap_mangen::Man::render_title)?);
    page.push_str(RAGGED);
    page.push_str(&clap_part(&man, clap_mangen::Man::render_name_section)?);
    page.push_str(&clap_part(&man, clap_mangen::Man::render_synopsis_section)?);
    page.push_str(&clap_part(
        &man,
        clap_mangen::Man::render_description_section,
    )?);
    // "DESCRIPTION (summary)" and the like are the description too.
    if let Some(i) = sections
        .iter()
        .position(|s| s.title == "DESCRIPTION" || s.title.starts_with("DESCRIPTION "))
    {
        page.push_str(&sections.remove(i).roff);
    }
    page.push_str(&clap_part(&man, clap_mangen::Man::render_options_section)?);
    let mut page = bold_code_spans(&page);
    if !sections.iter().any(|s| s.title == "SEE ALSO") {
        sections.push(default_see_also(name)?);
    }
    for required in ["JSON OUTPUT", "EXIT STATUS", "EXAMPLES"] {
        if !sections.iter().any(|s| s.title == required) {
            bail!("{:?} has no {required} section", hand_source(root, name));
        }
    }
    page.push_str(&markdown::render(&sections)?);
    Ok(tidy(&page))
}

/// Render `rip(7)` from `man/src/rip.7.md`, whose first section is NAME.
pub fn overview_page(root: &Path) -> Result<String> {
    let sections = read_source(root, "rip.7")?;
    if sections.first().map(|s| s.title.as_str()) != Some("NAME") {
        bail!("man/src/rip.7.md must start with '# NAME'");
    }
    let version = env!("CARGO_PKG_VERSION");
    let mut page = String::new();
    page.push_str(
        ".\\\" Generated by `cargo run -p xtask -- man` from man/src/rip.7.md.\n\
         .\\\" Edit that file, not this one.\n",
    );
    page.push_str(&format!(
        ".TH RIP 7 \"{DATE}\" \"rip {version}\" \"{MANUAL}\"\n"
    ));
    page.push_str(RAGGED);
    page.push_str(&markdown::render(&sections)?);
    Ok(tidy(&page))
}

/// Every man page: `man/rip-<x>.1` for each tool and `man/rip.7`.
pub fn man_pages(root: &Path) -> Result<Vec<Generated>> {
    let mut out = Vec::new();
    for (name, cmd) in tools() {
        out.push(Generated {
            path: PathBuf::from(format!("man/{name}.1")),
            contents: tool_page(root, name, cmd)?.into_bytes(),
        });
    }
    out.push(Generated {
        path: PathBuf::from("man/rip.7"),
        contents: overview_page(root)?.into_bytes(),
    });
    Ok(out)
}

/// The file name clap_complete's scripts get in `completions/`, which is
/// also the name each shell looks for when installed.
pub fn completion_file(shell: Shell, name: &str) -> Result<String> {
    Ok(match shell {
        Shell::Bash => name.to_owned(),
        Shell::Zsh => format!("_{name}"),
        Shell::Fish => format!("{name}.fish"),
        other => bail!("no completion file layout for {other}"),
    })
}

/// Completion scripts for bash, zsh and fish, in
/// `completions/{bash,zsh,fish}/`.
pub fn completions() -> Result<Vec<Generated>> {
    let mut out = Vec::new();
    for (name, cmd) in tools() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut cmd = cmd.clone();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, name, &mut buf);
            out.push(Generated {
                path: PathBuf::from("completions")
                    .join(shell.to_string())
                    .join(completion_file(shell, name)?),
                contents: buf,
            });
        }
    }
    Ok(out)
}

/// Write the files under `root`, skipping those already identical.
/// Returns the paths that changed.
pub fn write_all(root: &Path, files: &[Generated]) -> Result<Vec<PathBuf>> {
    let mut changed = Vec::new();
    for f in files {
        let path = root.join(&f.path);
        if fs::read(&path).ok().as_deref() == Some(f.contents.as_slice()) {
            continue;
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {dir:?}"))?;
        }
        fs::write(&path, &f.contents).with_context(|| format!("writing {path:?}"))?;
        changed.push(f.path.clone());
    }
    Ok(changed)
}

/// The files under `root` that differ from what the generators produce now.
pub fn stale(root: &Path, files: &[Generated]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|f| fs::read(root.join(&f.path)).ok().as_deref() != Some(f.contents.as_slice()))
        .map(|f| f.path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_listed_once() {
        let names: Vec<&str> = tools().into_iter().map(|(n, _)| n).collect();

        assert_eq!(
            names,
            [
                "rip-user",
                "rip-perms",
                "rip-unit",
                "rip-audit",
                "rip-scrape"
            ]
        );
    }

    #[test]
    fn completion_files_use_each_shells_naming() {
        assert_eq!(
            completion_file(Shell::Zsh, "rip-unit").unwrap(),
            "_rip-unit"
        );
        assert_eq!(
            completion_file(Shell::Bash, "rip-unit").unwrap(),
            "rip-unit"
        );
        assert_eq!(
            completion_file(Shell::Fish, "rip-unit").unwrap(),
            "rip-unit.fish"
        );
    }

    #[test]
    fn manual_sections_move_up_one_level() {
        let text =
            "# rip-x: notes\nPreamble.\n## JSON OUTPUT\n### Keys\nx\n```\n## not a heading\n```\n";

        assert_eq!(
            from_manual(text).unwrap(),
            "# JSON OUTPUT\n## Keys\nx\n```\n## not a heading\n```\n"
        );
    }

    #[test]
    fn doubled_heading_is_read_once() {
        assert_eq!(undouble("EXIT STATUS## EXIT STATUS"), "EXIT STATUS");
        assert_eq!(undouble("A## B"), "A## B");
        assert_eq!(undouble("FILES"), "FILES");
    }

    #[test]
    fn manual_without_sections_is_rejected() {
        assert!(from_manual("# title\ntext\n").is_err());
    }

    #[test]
    fn code_spans_of_help_text_become_bold() {
        assert_eq!(
            bold_code_spans(".TP\nRun `promtool` on `x`\nodd ` tick\n"),
            ".TP\nRun \\fBpromtool\\fR on \\fBx\\fR\nodd ` tick\n"
        );
    }

    #[test]
    fn tidy_drops_redundant_breaks_and_paragraphs() {
        let page = ".SH A\n.PP\ntext  \n.br\n\n.br\nmore\\ \n";

        assert_eq!(tidy(page), ".SH A\ntext\n\nmore\\ \n");
    }

    #[test]
    fn tidy_keeps_one_aq_definition() {
        let aq = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
        let page = format!("{aq}.TH X\n{aq}.SH NAME\n");

        assert_eq!(tidy(&page), format!("{aq}.TH X\n.SH NAME\n"));
    }

    #[test]
    fn stale_reports_missing_and_different_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            Generated {
                path: "a".into(),
                contents: b"new".to_vec(),
            },
            Generated {
                path: "b".into(),
                contents: b"same".to_vec(),
            },
            Generated {
                path: "c".into(),
                contents: b"x".to_vec(),
            },
        ];
        fs::write(dir.path().join("a"), "old").unwrap();
        fs::write(dir.path().join("b"), "same").unwrap();

        let stale = stale(dir.path(), &files);

        assert_eq!(stale, [PathBuf::from("a"), PathBuf::from("c")]);
    }
}
