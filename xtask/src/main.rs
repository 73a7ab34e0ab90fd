//! `cargo run -p xtask -- man|completions|all|check`: regenerate (or check)
//! the man pages in `man/` and the shell completions in `completions/`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use xtask::{completions, man_pages, stale, workspace_root, write_all, Generated};

/// Generate the rip tools' man pages and shell completions
#[derive(Debug, Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Regenerate man/*.1 and man/rip.7
    Man,
    /// Regenerate completions/{bash,zsh,fish}/
    Completions,
    /// Regenerate both
    All,
    /// Exit 1 if a committed page or completion differs from a fresh one
    Check,
}

fn run(task: &Task) -> Result<ExitCode> {
    let root = workspace_root();
    let files: Vec<Generated> = match task {
        Task::Man => man_pages(&root)?,
        Task::Completions => completions()?,
        Task::All | Task::Check => {
            let mut all = man_pages(&root)?;
            all.extend(completions()?);
            all
        }
    };
    if let Task::Check = task {
        let stale = stale(&root, &files);
        for path in &stale {
            eprintln!("xtask: stale: {}", path.display());
        }
        if !stale.is_empty() {
            eprintln!("xtask: run `cargo run -p xtask -- all` and commit the result");
            return Ok(ExitCode::from(1));
        }
        return Ok(ExitCode::SUCCESS);
    }
    for path in write_all(&root, &files)? {
        eprintln!("xtask: wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli.task) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
