//! Exit codes and the shared `main` of every tool.

use std::io::{self, Write};
use std::process::ExitCode;

/// How a tool run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok,
    /// Ran fine, but the answer is negative (e.g. audit findings).
    Negative,
    /// Bad usage, bad input or a failure.
    Error,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(match e {
            Exit::Ok => 0,
            Exit::Negative => 1,
            Exit::Error => 2,
        })
    }
}

/// Whether the error chain contains a broken pipe (stdout closed early).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                .is_some_and(|k| k == io::ErrorKind::BrokenPipe)
    })
}

/// Run a tool's body and turn its result into an exit code, printing any
/// error as `TOOL: error: CAUSE: CAUSE...` on stderr. A broken pipe on
/// stdout ends the run quietly.
pub fn main_with(tool: &str, body: impl FnOnce() -> anyhow::Result<Exit>) -> ExitCode {
    match body() {
        Ok(exit) => exit.into(),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(io::stderr(), "{tool}: error: {err:#}");
            Exit::Error.into()
        }
    }
}

/// Print a message on stderr, prefixed with the tool name.
pub fn note(tool: &str, message: impl std::fmt::Display) {
    let _ = writeln!(io::stderr(), "{tool}: {message}");
}
