//! A small Markdown-to-roff converter for the hand-written man page sections.
//!
//! It knows only the subset used in `man/src/*.md`, and refuses anything else
//! so that a page never renders silently wrong:
//!
//! - `# TITLE` starts a section (`.SH`), `## Title` a subsection (`.SS`);
//! - blank lines separate paragraphs (`.PP`);
//! - `- item` starts a bullet item; indented lines continue it;
//! - a line starting with `: ` after a term line makes a definition list
//!   entry (`.TP`), as in pandoc; more `: ` or indented lines continue it;
//! - fenced blocks (three backticks), and blocks indented by four spaces
//!   after a blank line outside a list, become literal examples
//!   (`.EX`/`.EE`);
//! - pipe tables (`| a | b |`, then `|---|---|`) become tbl(1) tables;
//! - inline `` `code` `` and `**bold**` are bold, `*text*` is italic.

use anyhow::{bail, Context, Result};

/// One `# SECTION` of a Markdown source: its title and its body in roff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Section title as written after `# `, upper-cased.
    pub title: String,
    /// The body, converted to roff, each line ending in a newline.
    pub roff: String,
}

/// Escape text for roff: backslashes, and in literal text minus signs.
fn escape(text: &str, literal: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            // In literal text a minus must stay an ASCII hyphen-minus so that
            // commands copied from the page work.
            '-' if literal => out.push_str("\\-"),
            _ => out.push(c),
        }
    }
    out
}

/// Keep a line from being read as a roff request when it starts with `.`
/// or `'`.
fn guard(mut line: String) -> String {
    if line.starts_with('.') || line.starts_with('\'') {
        line.insert_str(0, "\\&");
    }
    line
}

/// `*text*` (or `**text**`) at the start of `s`: the text and what follows.
/// As in CommonMark, the opening marker must be followed, and the closing
/// one preceded, by a non-blank character.
fn emphasis<'a>(s: &'a str, marker: &str) -> Option<(&'a str, &'a str)> {
    let after = s.strip_prefix(marker)?;
    if after.starts_with(char::is_whitespace) || after.starts_with('*') {
        return None;
    }
    let end = after.find(marker)?;
    let body = &after[..end];
    if body.is_empty() || body.ends_with(char::is_whitespace) {
        return None;
    }
    Some((body, &after[end + marker.len()..]))
}

/// Convert inline markup of one line of prose.
fn inline(text: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('`') {
            let Some(end) = after.find('`') else {
                bail!("unclosed `code` span in {text:?}");
            };
            out.push_str("\\fB");
            out.push_str(&escape(&after[..end], true));
            out.push_str("\\fR");
            rest = &after[end + 1..];
        } else if let Some((body, after)) = emphasis(rest, "**") {
            out.push_str("\\fB");
            out.push_str(&escape(body, false));
            out.push_str("\\fR");
            rest = after;
        } else if let Some((body, after)) = emphasis(rest, "*") {
            out.push_str("\\fI");
            out.push_str(&escape(body, false));
            out.push_str("\\fR");
            rest = after;
        } else if let Some(after) = rest.strip_prefix('*') {
            // A `*` that opens no emphasis (`ProtectKernel*`, `a * b`) is
            // literal, as in CommonMark.
            out.push('*');
            rest = after;
        } else {
            let end = rest.find(['`', '*']).unwrap_or(rest.len());
            out.push_str(&escape(&rest[..end], false));
            rest = &rest[end..];
        }
    }
    Ok(guard(out))
}

/// What the block being built is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    None,
    Paragraph,
    Bullet,
    Definition,
}

/// Convert the prose gathered so far (the lines of one paragraph, item or
/// definition, joined) and append it to `out` as one line. Inline markup
/// may span the source lines, as in CommonMark.
fn flush(out: &mut String, text: &mut String) -> Result<()> {
    if !text.is_empty() {
        out.push_str(&inline(text)?);
        out.push('\n');
        text.clear();
    }
    Ok(())
}

/// Add one source line to the prose gathered so far.
fn gather(text: &mut String, line: &str) {
    if !text.is_empty() {
        text.push(' ');
    }
    text.push_str(line.trim());
}

/// Convert a whole Markdown source into its sections, in order.
///
/// Text before the first `# ` heading is an error: every part of a page
/// belongs to a section.
pub fn to_sections(source: &str) -> Result<Vec<Section>> {
    let mut sections: Vec<Section> = Vec::new();
    let lines: Vec<&str> = source.lines().collect();
    let mut block = Block::None;
    let mut text = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let lineno = i + 1;
        let trimmed = line.trim_end();
        let context = || format!("line {lineno}");

        if let Some(title) = trimmed.strip_prefix("# ") {
            if let Some(last) = sections.last_mut() {
                flush(&mut last.roff, &mut text).with_context(context)?;
            }
            sections.push(Section {
                title: upper_outside_code(title.trim()),
                roff: String::new(),
            });
            block = Block::None;
            i += 1;
            continue;
        }
        let Some(section) = sections.last_mut() else {
            if trimmed.is_empty() {
                i += 1;
                continue;
            }
            bail!("line {lineno}: text before the first '# SECTION' heading");
        };
        let out = &mut section.roff;

        if trimmed.is_empty() {
            // A blank line ends paragraphs; list items and definitions go on
            // only with an indented continuation.
            flush(out, &mut text).with_context(context)?;
            if block == Block::Paragraph {
                block = Block::None;
            }
            i += 1;
            continue;
        }
        let after_blank = i > 0 && lines[i - 1].trim().is_empty();
        if line.starts_with("    ")
            && after_blank
            && matches!(block, Block::None | Block::Paragraph)
        {
            // An indented literal block: up to the first line that is
            // neither blank nor indented; trailing blank lines are dropped.
            let mut j = i;
            while j < lines.len() && (lines[j].starts_with("    ") || lines[j].trim().is_empty()) {
                j += 1;
            }
            let mut end = j;
            while end > i && lines[end - 1].trim().is_empty() {
                end -= 1;
            }
            out.push_str(".PP\n.RS 4\n.EX\n");
            for l in &lines[i..end] {
                let body = guard(escape(l.get(4..).unwrap_or("").trim_end(), true));
                out.push_str(if body.is_empty() { "\\&" } else { &body });
                out.push('\n');
            }
            out.push_str(".EE\n.RE\n");
            block = Block::None;
            i = end;
            continue;
        }
        let is_item =
            trimmed.starts_with("- ") || trimmed.starts_with("* ") || numbered(trimmed).is_some();
        let is_term = lines.get(i + 1).is_some_and(|next| next.starts_with(": "));
        let continues = (line.starts_with("  ") && block != Block::None)
            || trimmed.starts_with(": ")
            || (block == Block::Paragraph && !is_item && !is_term);
        if !continues || after_blank {
            flush(out, &mut text).with_context(context)?;
        }

        if let Some(title) = trimmed.strip_prefix("## ") {
            flush(out, &mut text).with_context(context)?;
            out.push_str(&format!(".SS {}\n", inline(title.trim())?));
            block = Block::None;
        } else if trimmed.starts_with("```") {
            flush(out, &mut text).with_context(context)?;
            let mut j = i + 1;
            out.push_str(".PP\n.RS 4\n.EX\n");
            while j < lines.len() && !lines[j].trim_end().starts_with("```") {
                let body = guard(escape(lines[j].trim_end(), true));
                out.push_str(if body.is_empty() { "\\&" } else { &body });
                out.push('\n');
                j += 1;
            }
            if j == lines.len() {
                bail!("line {lineno}: code block is not closed");
            }
            out.push_str(".EE\n.RE\n");
            block = Block::None;
            i = j;
        } else if trimmed.starts_with('|') {
            flush(out, &mut text).with_context(context)?;
            let mut j = i;
            let mut rows = Vec::new();
            while j < lines.len() && lines[j].trim_start().starts_with('|') {
                rows.push(lines[j].trim());
                j += 1;
            }
            out.push_str(&table(&rows).with_context(context)?);
            block = Block::None;
            i = j;
            continue;
        } else if let Some(item) = trimmed
            .strip_prefix("- ")
            .or_else(|| trimmed.strip_prefix("* "))
        {
            out.push_str(".IP \\(bu 2\n");
            gather(&mut text, item);
            block = Block::Bullet;
        } else if let Some((num, item)) = numbered(trimmed) {
            out.push_str(&format!(".IP {num}. 4\n"));
            gather(&mut text, item);
            block = Block::Bullet;
        } else if let Some(def) = trimmed.strip_prefix(": ") {
            if block != Block::Definition {
                bail!("line {lineno}: ': ' definition without a term line before it");
            }
            gather(&mut text, def);
        } else if line.starts_with("  ") && block != Block::None {
            // Continuation of the current block. A continuation after a
            // blank line is a new paragraph inside the item.
            if after_blank {
                out.push_str(if block == Block::Paragraph {
                    ".PP\n"
                } else {
                    ".IP\n"
                });
            }
            gather(&mut text, trimmed);
        } else if is_term {
            out.push_str(".TP\n");
            gather(&mut text, trimmed);
            flush(out, &mut text).with_context(context)?;
            block = Block::Definition;
        } else if block == Block::Paragraph {
            gather(&mut text, trimmed);
        } else {
            if line.starts_with(' ') {
                bail!("line {lineno}: indented text outside a list or definition");
            }
            out.push_str(".PP\n");
            gather(&mut text, trimmed);
            block = Block::Paragraph;
        }
        i += 1;
    }
    if let Some(last) = sections.last_mut() {
        flush(&mut last.roff, &mut text)?;
    }
    Ok(sections)
}

/// `12. text` as (12, "text").
fn numbered(line: &str) -> Option<(u32, &str)> {
    let (num, rest) = line.split_once(". ")?;
    if num.is_empty() || num.len() > 3 {
        return None;
    }
    Some((num.parse().ok()?, rest))
}

/// The cells of one `| a | b |` row.
fn cells(row: &str) -> Vec<&str> {
    let inner = row.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    inner.split('|').map(str::trim).collect()
}

/// Convert a pipe table (header, `---` separator, rows) to tbl(1): the
/// header in bold over a rule, every cell a text block so long cells wrap,
/// the last column taking the remaining width.
fn table(rows: &[&str]) -> Result<String> {
    if rows.len() < 2
        || !cells(rows[1])
            .iter()
            .all(|c| c.trim_matches([':', '-']).is_empty())
    {
        bail!("a table needs a header row and a |---| separator row");
    }
    let header = cells(rows[0]);
    let n = header.len();
    // Left-adjusted: narrow wrapped cells cannot be justified, and groff
    // warns about each one it tries.
    let mut out = String::from(".PP\n.ad l\n.TS\n");
    let mut format: Vec<&str> = vec!["l"; n];
    if let Some(last) = format.last_mut() {
        *last = "lx";
    }
    out.push_str(&format.join(" "));
    out.push_str(".\n");
    for (k, row) in std::iter::once(rows[0])
        .chain(rows[2..].iter().copied())
        .enumerate()
    {
        let cs = cells(row);
        if cs.len() != n {
            bail!("table row {row:?} has {} cells, the header {n}", cs.len());
        }
        let mut line = Vec::new();
        for c in cs {
            let body = inline(c)?;
            line.push(if body.is_empty() {
                String::new()
            } else if k == 0 {
                format!("T{{\n\\fB{body}\\fR\nT}}")
            } else {
                format!("T{{\n{body}\nT}}")
            });
        }
        out.push_str(&line.join("\t"));
        out.push('\n');
        if k == 0 {
            out.push_str("_\n");
        }
    }
    out.push_str(".TE\n.ad\n");
    Ok(out)
}

/// Upper-case a heading, except inside `code` spans (option names keep
/// their case).
fn upper_outside_code(title: &str) -> String {
    title
        .split('`')
        .enumerate()
        .map(|(k, piece)| {
            if k % 2 == 0 {
                piece.to_uppercase()
            } else {
                piece.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}

/// Render sections back to back, each with its `.SH` line.
pub fn render(sections: &[Section]) -> Result<String> {
    let mut out = String::new();
    for s in sections {
        let heading = inline(&s.title).with_context(|| format!("heading {:?}", s.title))?;
        out.push_str(&format!(".SH {heading}\n"));
        out.push_str(&s.roff);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(source: &str) -> String {
        let sections = to_sections(source).unwrap();
        assert_eq!(sections.len(), 1);
        sections[0].roff.clone()
    }

    #[test]
    fn paragraphs_and_inline_markup() {
        let roff =
            one("# EXIT STATUS\nSee `--dry-run` and *the spec*.\nSecond line.\n\nNew **para**.\n");

        assert_eq!(
            roff,
            ".PP\nSee \\fB\\-\\-dry\\-run\\fR and \\fIthe spec\\fR. Second line.\n.PP\nNew \\fBpara\\fR.\n"
        );
    }

    #[test]
    fn definition_list_with_continuation() {
        let roff = one("# JSON OUTPUT\n`changed`\n: true when a file\n  was rewritten.\n");

        assert_eq!(
            roff,
            ".TP\n\\fBchanged\\fR\ntrue when a file was rewritten.\n"
        );
    }

    #[test]
    fn code_block_is_literal_and_escaped() {
        let roff = one("# EXAMPLES\n```\nrip-user < a.json | jq '.x'\n.hidden \\n\n```\n");

        assert_eq!(
            roff,
            ".PP\n.RS 4\n.EX\nrip\\-user < a.json | jq '.x'\n\\&.hidden \\en\n.EE\n.RE\n"
        );
    }

    #[test]
    fn indented_code_block_after_a_paragraph() {
        let roff = one("# A\nRun:\n\n    rip-user --app a\n\n    | jq\n\nDone.\n");

        assert_eq!(
            roff,
            ".PP\nRun:\n.PP\n.RS 4\n.EX\nrip\\-user \\-\\-app a\n\\&\n| jq\n.EE\n.RE\n.PP\nDone.\n"
        );
    }

    #[test]
    fn star_bullets_and_numbered_items() {
        let roff = one("# A\n* one\n1. first\n");

        assert_eq!(roff, ".IP \\(bu 2\none\n.IP 1. 4\nfirst\n");
    }

    #[test]
    fn bullets() {
        let roff = one("# FILES\n- one\n  more\n- two\n");

        assert_eq!(roff, ".IP \\(bu 2\none more\n.IP \\(bu 2\ntwo\n");
    }

    #[test]
    fn line_starting_with_a_dot_is_escaped() {
        assert_eq!(one("# A\n.profile is read\n"), ".PP\n\\&.profile is read\n");
    }

    #[test]
    fn rejects_text_before_a_section() {
        assert!(to_sections("hello\n# A\n").is_err());
    }

    #[test]
    fn code_span_may_cross_lines() {
        assert_eq!(
            one("# A\nopened with `openat(fd,\nname)` here\n"),
            ".PP\nopened with \\fBopenat(fd, name)\\fR here\n"
        );
    }

    #[test]
    fn lone_star_is_literal() {
        assert_eq!(
            one("# A\nProtectKernel*, a * b and *it* **bold**\n"),
            ".PP\nProtectKernel*, a * b and \\fIit\\fR \\fBbold\\fR\n"
        );
    }

    #[test]
    fn rejects_unclosed_code_span() {
        assert!(to_sections("# A\nsee `this\n").is_err());
    }

    #[test]
    fn rejects_unclosed_code_block() {
        assert!(to_sections("# A\n```\nx\n").is_err());
    }

    #[test]
    fn pipe_table() {
        let roff = one("# A\n| key | meaning |\n|---|---|\n| `a` | first |\n");

        assert_eq!(
            roff,
            ".PP\n.ad l\n.TS\nl lx.\nT{\n\\fBkey\\fR\nT}\tT{\n\\fBmeaning\\fR\nT}\n_\n\
             T{\n\\fBa\\fR\nT}\tT{\nfirst\nT}\n.TE\n.ad\n"
        );
    }

    #[test]
    fn table_rows_must_match_the_header() {
        assert!(to_sections("# A\n| a | b |\n|---|---|\n| 1 |\n").is_err());
    }

    #[test]
    fn heading_keeps_the_case_of_code() {
        let sections = to_sections("# Scores format (`--format scores`)\nx\n").unwrap();

        assert_eq!(
            render(&sections).unwrap(),
            ".SH SCORES FORMAT (\\fB\\-\\-format scores\\fR)\n.PP\nx\n"
        );
    }

    #[test]
    fn subsection() {
        assert_eq!(
            one("# A\n## Sub title\ntext\n"),
            ".SS Sub title\n.PP\ntext\n"
        );
    }
}
