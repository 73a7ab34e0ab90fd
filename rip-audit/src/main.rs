//! `rip-audit`: see `man/rip-audit.1`.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the full mode allocates much (every assignment, check row and
/// finding of every unit); with glibc's allocator it took half as long
/// again. Built without transparent huge pages: zeroing a 2 MiB page on
/// first touch cost the lean `--format scores` run more than it saved.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's `mi_option_purge_delay` (its place in `mi_option_e`, in
/// `mimalloc.h`; the crate names no constant for it).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Never hand freed pages back to the kernel: a run lasts milliseconds,
    // and at exit mimalloc would otherwise purge every page it used, one
    // `madvise` each (about ninety, a tenth of a millisecond of a 6 ms
    // `--format scores` run). MIMALLOC_PURGE_DELAY still overrides.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: no other thread runs yet (the option is not thread-safe).
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
    }
    let args = rip_audit::cli::Cli::parse();
    rip_core::main_with("rip-audit", || {
        rip_audit::run(&args, std::io::stdin().lock(), std::io::stdout().lock())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tripwire for a mimalloc upgrade that renumbers its options: the
    /// option at PURGE_DELAY must have purge_delay's default in the
    /// mimalloc built here (1000 ms, `options.c`), unless the environment
    /// sets it.
    #[test]
    fn purge_delay_is_the_option_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reading an option.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, 1000);
    }
}
