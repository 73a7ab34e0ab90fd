//! `--check`: run `promtool check config` on a staged copy of the new files
//! before anything is written, so a rejected config never reaches disk.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::render::{CONFIG_FILE, SD_DIR};

/// How long promtool may take before the check counts as failed.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The first executable `name` in `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Stage `config` and `sd_files` (name, contents) in a temporary directory
/// next to links to everything else in `out_dir` (so relative rule_files
/// and the like resolve), and run promtool on it. Returns promtool's output.
pub fn promtool_check(
    out_dir: &Path,
    config: &[u8],
    sd_files: &[(String, Vec<u8>)],
) -> anyhow::Result<String> {
    let promtool = find_in_path("promtool").context(
        "--check needs promtool in PATH (Debian: apt-get install prometheus); nothing written",
    )?;
    let stage = tempfile::Builder::new()
        .prefix("rip-scrape-check.")
        .tempdir()
        .context("cannot create a temporary directory for --check")?;
    let dir = stage.path();

    // TODO(#6): paths that climb out of the config's directory (`../x`)
    // or absolute ones under --root still resolve against the staging
    // directory or the host's /, not the target root.
    if let Ok(entries) = fs::read_dir(out_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == OsStr::new(CONFIG_FILE) || name == OsStr::new(SD_DIR) {
                continue;
            }
            let link = dir.join(&name);
            std::os::unix::fs::symlink(entry.path(), &link)
                .with_context(|| format!("cannot link {:?} to {link:?}", entry.path()))?;
        }
    }
    let sd_dir = dir.join(SD_DIR);
    fs::create_dir(&sd_dir).with_context(|| format!("cannot create {sd_dir:?}"))?;
    for (name, contents) in sd_files {
        let p = sd_dir.join(name);
        fs::write(&p, contents).with_context(|| format!("cannot write {p:?}"))?;
    }
    let config_path = dir.join(CONFIG_FILE);
    fs::write(&config_path, config).with_context(|| format!("cannot write {config_path:?}"))?;

    // Output goes to files, not pipes, so a chatty promtool cannot block
    // while we poll it against the deadline.
    let log_path = dir.join(".promtool.log");
    let log = fs::File::create(&log_path).with_context(|| format!("cannot create {log_path:?}"))?;
    let log_err = log
        .try_clone()
        .with_context(|| format!("cannot reopen {log_path:?}"))?;
    let mut child = Command::new(&promtool)
        .arg("check")
        .arg("config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .with_context(|| format!("cannot run {promtool:?}"))?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("cannot wait for {promtool:?}"))?
        {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("promtool check config took longer than {TIMEOUT:?}; nothing written");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = fs::read_to_string(&log_path).unwrap_or_default();
    let output = output.replace(&dir.display().to_string(), "<staged>");
    if !status.success() {
        bail!(
            "promtool check config rejected the new files ({status}); nothing written:\n{}",
            output.trim_end()
        );
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_in_path() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("no-such-tool-rip").is_none());
    }
}
