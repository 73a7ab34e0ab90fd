//! The contract every rip tool shares: the app spec and its validation, the
//! JSON input and output of the pipeline, `--root` paths, atomic writes and
//! exit codes. See `man/rip.7` for the spec in prose.
#![warn(missing_docs)]

pub mod accounts;
pub mod cli;
pub mod exit;
pub mod fsutil;
pub mod io;
pub mod root;
pub mod spec;
pub mod validate;

pub use cli::{InputArgs, SystemArgs};
pub use exit::{main_with, note, Exit};
pub use fsutil::{write_atomic, WriteOutcome};
pub use io::{read_records, write_record, Record};
pub use root::Root;
pub use spec::{AppSpec, Limits, Listen, Metrics, Profile, Runtime, Secret};
pub use validate::InputError;
