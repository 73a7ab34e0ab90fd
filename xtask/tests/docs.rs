//! Tests of what users read and install: the man pages and completions are
//! fresh and lint-clean, `make install` lays out every file, and the example
//! Ansible playbook and one-app Makefile deploy into scratch roots.
//!
//! The last three run the real rip binaries from the target directory, which
//! `cargo test` does not build: run `cargo build --workspace --bins` first
//! (`make test` does). Missing tools (mandoc, man, make, ansible-playbook)
//! fail the test with a message naming the Debian package.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use xtask::{completions, man_pages, stale, workspace_root};

const TOOLS: [&str; 5] = [
    "rip-user",
    "rip-perms",
    "rip-unit",
    "rip-audit",
    "rip-scrape",
];

/// The directory of the workspace's binaries: the parent of this test
/// executable's `deps/`. `RIP_BIN_DIR` overrides it.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RIP_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// [`bin_dir`], after checking that every tool was built there.
fn built_tools() -> PathBuf {
    let dir = bin_dir();
    for tool in TOOLS {
        let path = dir.join(tool);
        assert!(
            path.is_file(),
            "{path:?} is missing: run `cargo build --workspace --bins` before these tests \
             (or set RIP_BIN_DIR)"
        );
    }
    dir
}

/// Fail loudly when a command the test needs is not installed.
fn require(command: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .unwrap()
        .status
        .success();
    assert!(
        found,
        "`{command}` is not installed; this test needs it: apt-get install {package}"
    );
}

/// A directory for one test under the target's tmp dir; kept on failure.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> Self {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test directory kept for inspection: {:?}", self.0);
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Run a command; on failure show everything about it.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn committed_pages() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut pages: Vec<PathBuf> = TOOLS
        .iter()
        .map(|t| root.join(format!("man/{t}.1")))
        .collect();
    pages.push(root.join("man/rip.7"));
    pages
}

#[test]
fn committed_pages_and_completions_are_fresh() {
    let root = workspace_root();
    let mut files = man_pages(&root).unwrap();
    files.extend(completions().unwrap());

    let stale = stale(&root, &files);

    assert!(
        stale.is_empty(),
        "stale generated files (regenerate with `cargo run -p xtask -- all`): {stale:?}"
    );
}

#[test]
fn every_page_documents_each_long_option() {
    for (name, cmd) in xtask::tools() {
        let page = fs::read_to_string(workspace_root().join(format!("man/{name}.1"))).unwrap();

        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                let roff = format!("\\fB\\-\\-{}\\fR", long.replace('-', "\\-"));
                assert!(page.contains(&roff), "man/{name}.1 lacks --{long}");
            }
        }
    }
}

/// `-W warning` reports warnings and errors but not mandoc's style hints:
/// clap_mangen writes each option's help as one long line and mandoc's
/// style level flags every input line over 80 bytes, which says nothing
/// about the rendered page.
#[test]
fn mandoc_lint_finds_no_warning() {
    require("mandoc", "mandoc");

    for page in committed_pages() {
        let out = Command::new("mandoc")
            .args(["-T", "lint", "-W", "warning"])
            .arg(&page)
            .output()
            .unwrap();

        let messages = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            out.status.success() && messages.is_empty(),
            "mandoc -T lint -W warning {page:?}: {}\n{messages}",
            out.status
        );
    }
}

#[test]
fn man_renders_the_rip_unit_page() {
    require("man", "man-db");

    let out = run(Command::new("man")
        .arg("-l")
        .arg(workspace_root().join("man/rip-unit.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C.UTF-8"));

    let page = text(&out.stdout);
    assert!(page.starts_with("RIP-UNIT(1)"), "{page}");
    for heading in [
        "NAME",
        "SYNOPSIS",
        "OPTIONS",
        "JSON OUTPUT",
        "EXIT STATUS",
        "EXAMPLES",
    ] {
        assert!(
            page.lines().any(|l| l == heading),
            "no {heading} in:\n{page}"
        );
    }
    assert!(page.contains("--root"), "{page}");
    // groff's layout warnings depend on the terminal width (a long path in a
    // narrow column cannot be adjusted or broken) and change nothing in the
    // text; anything else it says is a defect of the page.
    let stderr = text(&out.stderr);
    let other: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("cannot adjust line") && !l.contains("can't break line"))
        .collect();
    assert!(other.is_empty(), "man printed warnings:\n{stderr}");
}

/// The text of terminal output without its bold and underline overstrikes
/// (`X\x08X`, `_\x08X`).
fn without_overstrike(s: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in s.chars() {
        if c == '\x08' {
            out.pop();
            continue;
        }
        out.push(c);
    }
    out.into_iter().collect()
}

#[test]
fn every_page_renders_with_mandoc() {
    require("mandoc", "mandoc");

    for page in committed_pages() {
        let out = run(Command::new("mandoc").args(["-T", "utf8"]).arg(&page));

        let shown = without_overstrike(&text(&out.stdout));
        let name = page.file_stem().unwrap().to_string_lossy().to_uppercase();
        assert!(shown.starts_with(&name), "{page:?}:\n{shown}");
        assert!(shown.lines().any(|l| l == "SEE ALSO"), "{page:?}:\n{shown}");
    }
}

#[test]
fn bash_completion_registers_each_tool() {
    let root = workspace_root();

    for tool in TOOLS {
        let script = root.join("completions/bash").join(tool);
        let out = run(Command::new("bash")
            .arg("-c")
            .arg(format!("source \"$1\" && complete -p {tool}"))
            .arg("bash")
            .arg(&script));

        assert!(text(&out.stdout).contains(tool), "{}", text(&out.stdout));
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn make_install_lays_out_every_file_under_destdir_and_prefix() {
    require("make", "make");
    let bins = built_tools();
    let dir = TestDir::new("make_install");
    let dest = dir.0.join("dest");
    let make = |target: &str| {
        run(Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(workspace_root())
            .arg(target)
            .arg(format!("DESTDIR={}", dest.display()))
            .arg("PREFIX=/opt/rip")
            .arg(format!("BUILD_DIR={}", bins.display())))
    };

    make("install");

    let prefix = dest.join("opt/rip");
    for tool in TOOLS {
        assert_eq!(mode(&prefix.join("bin").join(tool)), 0o755, "{tool}");
        for file in [
            format!("share/man/man1/{tool}.1"),
            format!("share/bash-completion/completions/{tool}"),
            format!("share/zsh/site-functions/_{tool}"),
            format!("share/fish/vendor_completions.d/{tool}.fish"),
        ] {
            assert_eq!(mode(&prefix.join(&file)), 0o644, "{file}");
        }
    }
    assert_eq!(mode(&prefix.join("share/man/man7/rip.7")), 0o644);
    assert_eq!(
        fs::read(prefix.join("share/man/man1/rip-unit.1")).unwrap(),
        fs::read(workspace_root().join("man/rip-unit.1")).unwrap()
    );

    make("uninstall");

    let left: Vec<_> = walk(&dest).into_iter().filter(|p| p.is_file()).collect();
    assert!(left.is_empty(), "uninstall left {left:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Whether `/etc/passwd` under `root` has a user `name`.
fn has_user(root: &Path, name: &str) -> bool {
    read(&root.join("etc/passwd"))
        .lines()
        .any(|l| l.split(':').next() == Some(name))
}

#[test]
fn ansible_playbook_deploys_each_hosts_apps_and_scrapes_them_all() {
    require("ansible-playbook", "ansible-core");
    require("ssh-keygen", "openssh-client");
    let bins = built_tools();
    let dir = TestDir::new("ansible");
    let t = &dir.0;
    let app_bin = t.join("app1-binary");
    fs::write(&app_bin, "#!/bin/sh\nexec sleep infinity\n").unwrap();
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "backup@test", "-f"])
        .arg(t.join("backup_key")));
    let key = t.join("backup_key.pub");
    let inventory = t.join("inventory.ini");
    fs::write(
        &inventory,
        format!(
            "[rip_apps]\n\
             web1.example.com rip_root={t}/web1\n\
             web2.example.com rip_root={t}/web2\n\
             [rip_monitoring]\n\
             mon.example.com rip_root={t}/mon\n\
             [all:vars]\n\
             ansible_connection=local\n\
             ansible_become=false\n\
             ansible_python_interpreter=/usr/bin/python3\n\
             rip_bindir={{{{ rip_root }}}}/usr/local/bin\n\
             rip_confdir={{{{ rip_root }}}}/etc/rip\n\
             rip_bin_src={bins}\n\
             rip_app_binaries={{\"app1\": \"{app_bin}\"}}\n\
             rip_backup_key={key}\n",
            t = t.display(),
            bins = bins.display(),
            app_bin = app_bin.display(),
            key = key.display(),
        ),
    )
    .unwrap();
    let playbook = workspace_root().join("examples/ansible/site.yml");
    let play = || {
        let out = run(Command::new("ansible-playbook")
            .arg("-i")
            .arg(&inventory)
            .arg(&playbook)
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_HOME", t.join("ansible-home"))
            .env("ANSIBLE_LOCAL_TEMP", t.join("ansible-tmp"))
            .env("ANSIBLE_REMOTE_TEMP", t.join("ansible-tmp"))
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0"));
        text(&out.stdout)
    };

    let first = play();

    // Each host got its own apps, and only those.
    let (web1, web2, mon) = (t.join("web1"), t.join("web2"), t.join("mon"));
    assert!(has_user(&web1, "app1"), "{first}");
    assert!(!has_user(&web1, "app2") && !has_user(&web1, "app3"));
    assert!(has_user(&web2, "app2") && has_user(&web2, "app3"));
    assert!(!has_user(&web2, "app1"));
    assert!(
        has_user(&web1, "backup"),
        "backups of app1 need the backup user"
    );
    let keys = read(&web1.join("home/backup/.ssh/authorized_keys"));
    assert!(keys.contains("rrsync -ro"), "{keys}");
    assert!(web1.join("etc/systemd/system/app1.service").is_file());
    assert!(!web1.join("etc/systemd/system/app2.service").exists());
    for app in ["app2", "app3"] {
        assert!(web2
            .join(format!("etc/systemd/system/{app}.service"))
            .is_file());
    }
    assert_eq!(
        fs::read(web1.join("home/app1/bin/app1")).unwrap(),
        fs::read(&app_bin).unwrap()
    );
    // The monitoring host scrapes every app at its host and metrics port.
    assert!(mon.join("etc/prometheus/prometheus.yml").is_file());
    let targets: String = walk(&mon.join("etc/prometheus/rip.d"))
        .iter()
        .filter(|p| p.is_file())
        .map(|p| read(p))
        .collect();
    for target in [
        "web1.example.com:9101",
        "web2.example.com:9102",
        "web2.example.com:9103",
    ] {
        assert!(targets.contains(target), "no {target} in {targets}");
    }
    assert!(!mon.join("etc/passwd").exists() || !has_user(&mon, "app1"));

    let second = play();

    // A second run changes nothing anywhere.
    let recap: Vec<&str> = second
        .lines()
        .skip_while(|l| !l.starts_with("PLAY RECAP"))
        .filter(|l| l.contains("ok="))
        .collect();
    assert_eq!(recap.len(), 3, "{second}");
    for line in recap {
        assert!(
            line.contains(" changed=0 "),
            "second run changed something:\n{second}"
        );
    }
}

#[test]
fn example_makefile_deploys_one_app_into_a_scratch_root() {
    require("make", "make");
    let bins = built_tools();
    let dir = TestDir::new("makefile_app");
    let t = &dir.0;
    let app_bin = t.join("shop");
    fs::write(&app_bin, "#!/bin/sh\nexec sleep infinity\n").unwrap();
    let root = t.join("root");
    let make = |target: &str| {
        run(Command::new("make")
            .arg("-s")
            .arg("-f")
            .arg(workspace_root().join("examples/Makefile.app"))
            .arg(target)
            .arg("APP=shop")
            .arg("PORT=8088")
            .arg("METRICS_PORT=9188")
            .arg(format!("OUT={}", t.join("out").display()))
            .arg(format!("BIN={}", app_bin.display()))
            .arg(format!("ROOT={}", root.display()))
            .arg(format!("RIP={}", bins.display()))
            .arg("SYSTEMCTL=echo systemctl"))
    };

    let spec: serde_json::Value = serde_json::from_slice(&make("spec").stdout).unwrap();
    let deploy = text(&make("deploy").stdout);

    assert_eq!(spec["exec"][0], "/home/shop/bin/shop");
    assert_eq!(spec["listen"][0]["port"], 8088);
    assert_eq!(spec["backups"]["enabled"], true);
    assert!(has_user(&root, "shop"));
    let unit = read(&root.join("etc/systemd/system/shop.service"));
    assert!(unit.contains("/home/shop/bin/shop"), "{unit}");
    assert!(
        deploy.contains("systemctl enable --now shop.service"),
        "{deploy}"
    );
    assert!(
        deploy.contains("systemctl restart shop.service"),
        "{deploy}"
    );

    let again = text(&make("deploy").stdout);

    assert!(!again.contains("restart"), "nothing changed, yet:\n{again}");

    make("undeploy");

    assert!(!root.join("etc/systemd/system/shop.service").exists());
    assert!(has_user(&root, "shop"), "undeploy keeps the user");
}
