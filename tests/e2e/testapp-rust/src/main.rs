//! Rust half of the e2e test fleet (tests/e2e.rs): serves HTTP and Prometheus
//! metrics, writes its "database" and backup snapshots, and on GET /probe
//! reports as JSON what its sandbox lets it do. Same CLI and JSON as the Go
//! twin in tests/e2e/testapp-go:
//!
//! ```text
//! rip-e2e-testapp -listen ADDR:PORT [-listen ...] -metrics ADDR:PORT -dbpath FILE
//!                 [-agekey FILE] [-backups DIR]
//! rip-e2e-testapp -probe-cli QUERY     run the probe once, print the JSON, exit
//! ```
//!
//! `:PORT` means all addresses. When LISTEN_PID/LISTEN_FDS name this process,
//! the inherited sockets (fd 3 on) are used instead of binding; the one whose
//! port equals the -metrics port serves metrics, the others the app.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{getegid, geteuid, getgid, getgroups, getuid, setgid, setuid, Gid, Uid};
use serde_json::{json, Value};

/// Parsed command line.
#[derive(Debug, Default)]
struct Config {
    name: String,
    listen: Vec<String>,
    metrics: String,
    dbpath: Option<PathBuf>,
    agekey: Option<PathBuf>,
    backups: Option<PathBuf>,
    probe_cli: Option<String>,
    probe_op: Option<String>,
}

/// What the running app knows about itself, shared by the HTTP threads.
#[derive(Debug)]
struct State {
    cfg: Config,
    startup: BTreeMap<String, String>,
    listeners: Vec<String>,
    activated: bool,
    requests: AtomicU64,
    snapshots: AtomicU64,
}

fn main() -> ExitCode {
    let cfg = match parse_args(std::env::args().collect()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rip-e2e-testapp: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(op) = &cfg.probe_op {
        println!("{}", child_op(op));
        return ExitCode::SUCCESS;
    }
    if let Some(q) = cfg.probe_cli.clone() {
        let state = State::new(cfg, BTreeMap::new(), Vec::new(), false);
        let report = probe(&state, &parse_query(&q));
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    let name = cfg.name.clone();
    if let Err(e) = serve(cfg) {
        eprintln!("{name}: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn parse_args(args: Vec<String>) -> Result<Config, String> {
    let mut cfg = Config {
        name: args
            .first()
            .and_then(|a| Path::new(a).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "testapp".into()),
        ..Config::default()
    };
    let mut it = args.into_iter().skip(1);
    while let Some(flag) = it.next() {
        let flag = flag.trim_start_matches('-').to_owned();
        let (key, inline) = match flag.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (flag, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("-{key} needs a value"))
        };
        match key.as_str() {
            "listen" => cfg.listen.push(value()?),
            "metrics" => cfg.metrics = value()?,
            "dbpath" => cfg.dbpath = Some(value()?.into()),
            "agekey" => cfg.agekey = Some(value()?.into()),
            "backups" => cfg.backups = Some(value()?.into()),
            "probe-cli" => cfg.probe_cli = Some(value()?),
            "probe-op" => cfg.probe_op = Some(value()?),
            _ => return Err(format!("unknown flag -{key}")),
        }
    }
    Ok(cfg)
}

impl State {
    fn new(
        cfg: Config,
        startup: BTreeMap<String, String>,
        listeners: Vec<String>,
        activated: bool,
    ) -> Self {
        State {
            cfg,
            startup,
            listeners,
            activated,
            requests: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
        }
    }
}

/// Port of an `ADDR:PORT` string (`:PORT` allowed).
fn port_of(addr: &str) -> Result<u16, String> {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| format!("{addr:?} is not ADDR:PORT"))
}

fn bind(addr: &str) -> io::Result<TcpListener> {
    match addr.strip_prefix(':') {
        // All addresses: dual-stack where IPv6 is allowed, else IPv4.
        Some(port) => TcpListener::bind(format!("[::]:{port}"))
            .or_else(|_| TcpListener::bind(format!("0.0.0.0:{port}"))),
        None => TcpListener::bind(addr),
    }
}

/// The listeners passed by systemd, if LISTEN_PID names this process.
fn inherited() -> Result<Option<Vec<TcpListener>>, String> {
    let pid = std::env::var("LISTEN_PID").unwrap_or_default();
    if pid != std::process::id().to_string() {
        return Ok(None);
    }
    let n: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .ok_or("LISTEN_PID is set but LISTEN_FDS is not a positive number")?;
    let mut out = Vec::new();
    for fd in 3..3 + n {
        // SAFETY: by the sd_listen_fds protocol, fds 3..3+LISTEN_FDS are open
        // listening sockets handed to this process, owned by nobody else here.
        out.push(unsafe { TcpListener::from_raw_fd(fd) });
    }
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    Ok(Some(out))
}

fn serve(cfg: Config) -> Result<(), String> {
    if cfg.metrics.is_empty() {
        return Err("-metrics ADDR:PORT is required".into());
    }
    let mport = port_of(&cfg.metrics)?;

    let (mut app_ls, mut met_ls) = (Vec::new(), Vec::new());
    let activated = match inherited()? {
        Some(ls) => {
            for l in ls {
                let port = l
                    .local_addr()
                    .map_err(|e| format!("getsockname: {e}"))?
                    .port();
                if port == mport {
                    met_ls.push(l);
                } else {
                    app_ls.push(l);
                }
            }
            true
        }
        None => {
            if cfg.listen.is_empty() {
                return Err("at least one -listen ADDR:PORT is required".into());
            }
            for a in &cfg.listen {
                app_ls.push(bind(a).map_err(|e| format!("listen {a}: {e}"))?);
            }
            let m =
                bind(&cfg.metrics).map_err(|e| format!("listen {} (metrics): {e}", cfg.metrics))?;
            met_ls.push(m);
            false
        }
    };

    let mut startup = BTreeMap::new();
    startup.insert("dbpath".to_owned(), result(write_db(&cfg, "start")));
    startup.insert(
        "agekey".to_owned(),
        match &cfg.agekey {
            None => "unset".into(),
            Some(k) => result(read_some(k)),
        },
    );
    let mut listeners = Vec::new();
    for l in &app_ls {
        listeners.push(addr_string(l.local_addr()));
    }
    for l in &met_ls {
        listeners.push(format!("metrics {}", addr_string(l.local_addr())));
    }
    let backup = match &cfg.backups {
        None => "unset".to_owned(),
        Some(_) => result(snapshot(&cfg).map(|_| ())),
    };
    startup.insert("backup".to_owned(), backup);
    let state = Arc::new(State::new(cfg, startup, listeners, activated));
    if state.startup.get("backup").map(String::as_str) == Some("ok") {
        state.snapshots.fetch_add(1, Ordering::Relaxed);
    }
    eprintln!(
        "{}: serving {} (socket activation: {}); startup {:?}",
        state.cfg.name,
        state.listeners.join(", "),
        activated,
        state.startup
    );

    let mut threads = Vec::new();
    for (l, metrics) in app_ls
        .into_iter()
        .map(|l| (l, false))
        .chain(met_ls.into_iter().map(|l| (l, true)))
    {
        let st = state.clone();
        threads.push(std::thread::spawn(move || accept_loop(&l, metrics, &st)));
    }
    for t in threads {
        let _ = t.join();
    }
    Err("all listeners stopped".into())
}

fn addr_string(a: io::Result<SocketAddr>) -> String {
    a.map(|a| a.to_string())
        .unwrap_or_else(|e| format!("?({e})"))
}

fn accept_loop(l: &TcpListener, metrics: bool, st: &Arc<State>) {
    for conn in l.incoming() {
        let Ok(conn) = conn else { continue };
        let st = st.clone();
        std::thread::spawn(move || {
            let _ = handle(conn, metrics, &st);
        });
    }
}

fn handle(mut conn: TcpStream, metrics: bool, st: &State) -> io::Result<()> {
    st.requests.fetch_add(1, Ordering::Relaxed);
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("/").to_owned();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let loopback = conn
        .peer_addr()
        .map(|a| a.ip().to_canonical().is_loopback())
        .unwrap_or(false);

    let (code, ctype, body) = match (metrics, method.as_str(), path) {
        (true, "GET", "/metrics") => (200, "text/plain; version=0.0.4", metrics_text(st)),
        (false, "GET", "/") => (200, "text/plain", format!("{}\n", st.cfg.name)),
        (false, "GET", "/probe") if !loopback => {
            (403, "text/plain", "probe is loopback-only\n".into())
        }
        (false, "GET", "/probe") => {
            let report = probe(st, &parse_query(query));
            let text = serde_json::to_string_pretty(&report).unwrap_or_default();
            (200, "application/json", text + "\n")
        }
        (false, "POST", "/backup") if st.cfg.backups.is_none() => {
            (409, "text/plain", "no -backups dir\n".into())
        }
        (false, "POST", "/backup") => match snapshot(&st.cfg) {
            Ok(p) => {
                st.snapshots.fetch_add(1, Ordering::Relaxed);
                (200, "text/plain", format!("{}\n", p.display()))
            }
            Err(e) => (500, "text/plain", format!("{}\n", errname(&e))),
        },
        _ => (404, "text/plain", "not found\n".into()),
    };
    let reason = match code {
        200 => "OK",
        403 => "Forbidden",
        409 => "Conflict",
        500 => "Internal Server Error",
        _ => "Not Found",
    };
    write!(
        conn,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

fn metrics_text(st: &State) -> String {
    format!(
        "# HELP testapp_up Whether the test app runs.\n# TYPE testapp_up gauge\n\
         testapp_up{{app=\"{}\",runtime=\"rust\"}} 1\n\
         # HELP testapp_requests_total HTTP requests served.\n# TYPE testapp_requests_total counter\n\
         testapp_requests_total {}\n\
         # HELP testapp_snapshots_total Backup snapshots written.\n# TYPE testapp_snapshots_total counter\n\
         testapp_snapshots_total {}\n",
        st.cfg.name,
        st.requests.load(Ordering::Relaxed),
        st.snapshots.load(Ordering::Relaxed)
    )
}

/// Append one line to the database file (created 0600).
fn write_db(cfg: &Config, what: &str) -> io::Result<()> {
    let Some(db) = &cfg.dbpath else {
        return Err(io::Error::other("unset"));
    };
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(db)?;
    writeln!(
        f,
        "{what} pid={} time={}",
        std::process::id(),
        now().as_secs()
    )
}

fn now() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Copy the database into the backups dir as a 0640 file (temp + rename).
fn snapshot(cfg: &Config) -> io::Result<PathBuf> {
    let (Some(db), Some(dir)) = (&cfg.dbpath, &cfg.backups) else {
        return Err(io::Error::other("no -dbpath or -backups"));
    };
    let data = fs::read(db)?;
    let base = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let t = now();
    let name = format!("{base}.{}.{:09}.snap", t.as_secs(), t.subsec_nanos());
    let dst = dir.join(&name);
    let tmp = dir.join(format!(".tmp-{name}"));
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&data)?;
        f.set_permissions(Permissions::from_mode(0o640))?;
        f.sync_all()?;
        fs::rename(&tmp, &dst)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(dst)
}

// ---- the probe ---------------------------------------------------------------

/// `a=b&c=d` with %XX and `+` decoded; repeated keys kept in order.
fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Run the fixed checks plus those the query asks for: write=P (create a
/// new file, write, remove it), openw=P (open an existing file for writing,
/// write nothing), read=P, list=P, stat=P (lstat), mkfile=P (create or
/// truncate and keep), suiddir=D (where chmod u+s is tried; default: the
/// dir of -dbpath).
fn probe(st: &State, q: &[(String, String)]) -> Value {
    let mut checks = Vec::new();
    let mut add = |op: &str, path: &str, r: io::Result<String>| {
        let (result, detail) = match r {
            Ok(d) => ("ok".to_owned(), d),
            Err(e) => (errname(&e), String::new()),
        };
        checks.push(json!({"op": op, "path": path, "result": result, "detail": detail}));
    };
    let params = |k: &'static str| -> Vec<String> {
        q.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    };
    for p in params("write") {
        add(
            "write",
            &p,
            try_create(Path::new(&p), true).map(|_| String::new()),
        );
    }
    for p in params("mkfile") {
        add(
            "mkfile",
            &p,
            try_create(Path::new(&p), false).map(|_| String::new()),
        );
    }
    for p in params("openw") {
        add(
            "openw",
            &p,
            OpenOptions::new()
                .write(true)
                .open(&p)
                .map(|_| String::new()),
        );
    }
    for p in params("read") {
        add("read", &p, read_some(Path::new(&p)).map(|_| String::new()));
    }
    for p in params("list") {
        add("list", &p, list_dir(Path::new(&p)));
    }
    for p in params("stat") {
        add("stat", &p, fs::symlink_metadata(&p).map(|_| String::new()));
    }

    add("list_home", "/home", list_dir(Path::new("/home")));
    add("setuid0", "", via_child("setuid0"));
    add("setgid0", "", via_child("setgid0"));
    let suid_dir = params("suiddir")
        .into_iter()
        .next()
        .map(PathBuf::from)
        .or_else(|| {
            st.cfg
                .dbpath
                .as_ref()
                .and_then(|d| d.parent().map(Path::to_path_buf))
        });
    if let Some(dir) = suid_dir {
        let p = dir.join(format!(".probe-suid-{}", std::process::id()));
        add(
            "chmod_suid",
            &p.display().to_string(),
            try_suid(&p).map(|_| String::new()),
        );
    }
    add("unshare_user", "", via_child("unshare_user"));
    add("unshare_mount", "", via_child("unshare_mount"));
    let tmp = format!("/tmp/.probe-{}", std::process::id());
    add(
        "write_tmp",
        &tmp,
        try_create(Path::new(&tmp), true).map(|_| String::new()),
    );

    let groups: Vec<u32> = getgroups()
        .unwrap_or_default()
        .iter()
        .map(|g| g.as_raw())
        .collect();
    json!({
        "app": st.cfg.name,
        "runtime": "rust",
        "pid": std::process::id(),
        "uid": getuid().as_raw(),
        "gid": getgid().as_raw(),
        "euid": geteuid().as_raw(),
        "egid": getegid().as_raw(),
        "groups": groups,
        "status": proc_status(),
        "startup": st.startup,
        "listeners": st.listeners,
        "socket_activated": st.activated,
        "checks": checks,
    })
}

fn try_create(p: &Path, remove: bool) -> io::Result<()> {
    let mut o = OpenOptions::new();
    o.write(true).mode(0o600);
    if remove {
        o.create_new(true);
    } else {
        o.create(true).truncate(true);
    }
    let mut f = o.open(p)?;
    f.write_all(b"probe\n")?;
    drop(f);
    if remove {
        fs::remove_file(p)?;
    }
    Ok(())
}

fn try_suid(p: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(p)
        // A failed create is not a refusal of the chmod: report it apart.
        .map_err(|e| io::Error::other(format!("create-failed:{}", errname(&e))))?;
    let res = fs::set_permissions(p, Permissions::from_mode(0o4755)).and_then(|_| {
        let mode = fs::metadata(p)?.permissions().mode();
        if mode & 0o4000 == 0 {
            return Err(io::Error::other("SILENTLY_IGNORED"));
        }
        Ok(())
    });
    let _ = fs::remove_file(p);
    res
}

fn read_some(p: &Path) -> io::Result<()> {
    let mut buf = [0u8; 64];
    File::open(p)?.read(&mut buf).map(|_| ())
}

fn list_dir(p: &Path) -> io::Result<String> {
    let mut names = Vec::new();
    for e in fs::read_dir(p)? {
        names.push(e?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names.join(" "))
}

fn proc_status() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match fs::read_to_string("/proc/self/status") {
        Ok(text) => {
            for line in text.lines() {
                if let Some((k, v)) = line.split_once(':') {
                    if k.starts_with("Cap") || k == "NoNewPrivs" || k.starts_with("Seccomp") {
                        out.insert(k.to_owned(), v.trim().to_owned());
                    }
                }
            }
        }
        Err(e) => {
            out.insert("error".to_owned(), errname(&e));
        }
    }
    out
}

/// Run one identity- or namespace-changing call in a fresh, single-threaded
/// copy of this binary: a success cannot change the app itself, and
/// unshare(2) is not refused merely because the app has threads.
fn via_child(op: &str) -> io::Result<String> {
    let out = Command::new("/proc/self/exe")
        .args(["-probe-op", op])
        .output()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if s == "ok" {
        Ok(String::new())
    } else if s.is_empty() {
        Err(io::Error::other(format!("child died: {}", out.status)))
    } else {
        Err(io::Error::other(s))
    }
}

fn child_op(op: &str) -> String {
    let r = match op {
        "setuid0" => setuid(Uid::from_raw(0)),
        "setgid0" => setgid(Gid::from_raw(0)),
        "unshare_user" => unshare(CloneFlags::CLONE_NEWUSER),
        "unshare_mount" => unshare(CloneFlags::CLONE_NEWNS),
        _ => return "UNKNOWN_OP".into(),
    };
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// The errno's symbolic name (EACCES, ...) or the error text.
fn errname(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?}", Errno::from_raw(n)),
        None => e.to_string(),
    }
}

fn result(r: io::Result<()>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) if e.to_string() == "unset" => "unset".into(),
        Err(e) => errname(&e),
    }
}
