//! rip-audit (scaffold, to be replaced).

pub mod cli;

use std::io::{Read, Write};

use rip_core::Exit;

/// The key this tool adds to each record.
pub const KEY: &str = "rip_audit";

/// Run rip-audit over parsed arguments.
pub fn run(args: &cli::Cli, stdin: impl Read, mut stdout: impl Write) -> anyhow::Result<Exit> {
    let records = args.input.records(stdin)?;
    for r in &records {
        rip_core::write_record(&mut stdout, r, KEY, &serde_json::json!({"changed": false}))?;
    }
    Ok(Exit::Ok)
}
