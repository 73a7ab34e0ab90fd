// Command testapp is the Go half of the e2e fleet (tests/e2e.rs): a small web
// app that serves HTTP and Prometheus metrics, writes its "database" and
// backup snapshots, and on GET /probe reports as JSON what its sandbox lets it
// do. The Rust twin (tests/e2e/testapp-rust) has the same CLI and JSON.
//
//	testapp -listen ADDR:PORT [-listen ...] -metrics ADDR:PORT -dbpath FILE
//	        [-agekey FILE] [-backups DIR]
//	testapp -probe-cli QUERY     run the probe once, print the JSON, exit
//
// ":PORT" means all addresses. When LISTEN_PID/LISTEN_FDS name this process,
// the inherited sockets (fd 3 on) are used instead of binding; the one whose
// port equals the -metrics port serves metrics, the others the app.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type config struct {
	name    string
	listen  listFlag
	metrics string
	dbpath  string
	agekey  string
	backups string
}

var (
	cfg       config
	requests  atomic.Int64
	snapshots atomic.Int64
	startup   = map[string]string{}
	bound     []string
	activated bool
)

func main() {
	var probeCLI, probeOp string
	flag.Var(&cfg.listen, "listen", "ADDR:PORT to serve the app on (repeatable)")
	flag.StringVar(&cfg.metrics, "metrics", "", "ADDR:PORT of the metrics endpoint")
	flag.StringVar(&cfg.dbpath, "dbpath", "", "database file")
	flag.StringVar(&cfg.agekey, "agekey", "", "key file, read at start if present")
	flag.StringVar(&cfg.backups, "backups", "", "snapshot directory")
	flag.StringVar(&probeCLI, "probe-cli", "", "run the probe with this query, print JSON, exit")
	flag.StringVar(&probeOp, "probe-op", "", "internal: one privileged probe in a child")
	flag.Parse()
	cfg.name = filepath.Base(os.Args[0])

	if probeOp != "" {
		os.Exit(childOp(probeOp))
	}
	if probeCLI != "" {
		q, err := url.ParseQuery(probeCLI)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: bad query: %v\n", cfg.name, err)
			os.Exit(2)
		}
		out, _ := json.MarshalIndent(runProbe(q), "", " ")
		fmt.Println(string(out))
		return
	}
	if err := serve(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", cfg.name, err)
		os.Exit(1)
	}
}

func serve() error {
	if cfg.metrics == "" {
		return errors.New("-metrics ADDR:PORT is required")
	}
	_, mport, err := net.SplitHostPort(cfg.metrics)
	if err != nil {
		return fmt.Errorf("-metrics %q: %v", cfg.metrics, err)
	}

	var appLs, metricLs []net.Listener
	if os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) {
		n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
		if err != nil || n < 1 {
			return fmt.Errorf("bad LISTEN_FDS %q", os.Getenv("LISTEN_FDS"))
		}
		activated = true
		for fd := 3; fd < 3+n; fd++ {
			f := os.NewFile(uintptr(fd), fmt.Sprintf("fd%d", fd))
			l, err := net.FileListener(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("inherited fd %d: %v", fd, err)
			}
			_, port, _ := net.SplitHostPort(l.Addr().String())
			if port == mport {
				metricLs = append(metricLs, l)
			} else {
				appLs = append(appLs, l)
			}
		}
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
	} else {
		if len(cfg.listen) == 0 {
			return errors.New("at least one -listen ADDR:PORT is required")
		}
		for _, a := range cfg.listen {
			l, err := net.Listen("tcp", a)
			if err != nil {
				return fmt.Errorf("listen %s: %v", a, err)
			}
			appLs = append(appLs, l)
		}
		l, err := net.Listen("tcp", cfg.metrics)
		if err != nil {
			return fmt.Errorf("listen %s (metrics): %v", cfg.metrics, err)
		}
		metricLs = append(metricLs, l)
	}

	startup["dbpath"] = writeDB("start")
	startup["agekey"] = "unset"
	if cfg.agekey != "" {
		startup["agekey"] = result(readSome(cfg.agekey))
	}
	startup["backup"] = "unset"
	if cfg.backups != "" {
		_, err := snapshot()
		startup["backup"] = result(err)
	}

	app := http.NewServeMux()
	app.HandleFunc("/", handleRoot)
	app.HandleFunc("/probe", handleProbe)
	app.HandleFunc("/backup", handleBackup)
	met := http.NewServeMux()
	met.HandleFunc("/metrics", handleMetrics)

	errs := make(chan error, len(appLs)+len(metricLs))
	for _, l := range appLs {
		bound = append(bound, l.Addr().String())
		go func(l net.Listener) { errs <- http.Serve(l, app) }(l)
	}
	for _, l := range metricLs {
		bound = append(bound, "metrics "+l.Addr().String())
		go func(l net.Listener) { errs <- http.Serve(l, met) }(l)
	}
	fmt.Fprintf(os.Stderr, "%s: serving %s (socket activation: %v); startup %v\n",
		cfg.name, strings.Join(bound, ", "), activated, startup)
	return <-errs
}

func handleRoot(w http.ResponseWriter, r *http.Request) {
	requests.Add(1)
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	fmt.Fprintln(w, cfg.name)
}

func handleMetrics(w http.ResponseWriter, r *http.Request) {
	requests.Add(1)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# HELP testapp_up Whether the test app runs.\n# TYPE testapp_up gauge\n")
	fmt.Fprintf(w, "testapp_up{app=%q,runtime=\"go\"} 1\n", cfg.name)
	fmt.Fprintf(w, "# HELP testapp_requests_total HTTP requests served.\n# TYPE testapp_requests_total counter\n")
	fmt.Fprintf(w, "testapp_requests_total %d\n", requests.Load())
	fmt.Fprintf(w, "# HELP testapp_snapshots_total Backup snapshots written.\n# TYPE testapp_snapshots_total counter\n")
	fmt.Fprintf(w, "testapp_snapshots_total %d\n", snapshots.Load())
}

func loopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

func handleProbe(w http.ResponseWriter, r *http.Request) {
	requests.Add(1)
	if !loopback(r) {
		http.Error(w, "probe is loopback-only", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	out, _ := json.MarshalIndent(runProbe(r.URL.Query()), "", " ")
	w.Write(append(out, '\n'))
}

func handleBackup(w http.ResponseWriter, r *http.Request) {
	requests.Add(1)
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if cfg.backups == "" {
		http.Error(w, "no -backups dir", http.StatusConflict)
		return
	}
	p, err := snapshot()
	if err != nil {
		http.Error(w, errName(err), http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, p)
}

// writeDB appends one line to the database file (creating it 0600).
func writeDB(what string) string {
	if cfg.dbpath == "" {
		return "unset"
	}
	f, err := os.OpenFile(cfg.dbpath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return errName(err)
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "%s pid=%d time=%d\n", what, os.Getpid(), time.Now().Unix())
	return result(err)
}

// snapshot copies the database into the backups dir as a 0640 file.
func snapshot() (string, error) {
	data, err := os.ReadFile(cfg.dbpath)
	if err != nil {
		return "", err
	}
	name := fmt.Sprintf("%s.%s.snap", filepath.Base(cfg.dbpath),
		time.Now().UTC().Format("20060102T150405.000000000Z"))
	dst := filepath.Join(cfg.backups, name)
	tmp := filepath.Join(cfg.backups, ".tmp-"+name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o640)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	snapshots.Add(1)
	return dst, nil
}

// ---- the probe -------------------------------------------------------------

type check struct {
	Op     string `json:"op"`
	Path   string `json:"path"`
	Result string `json:"result"`
	Detail string `json:"detail"`
}

type report struct {
	App             string            `json:"app"`
	Runtime         string            `json:"runtime"`
	Pid             int               `json:"pid"`
	Uid             int               `json:"uid"`
	Gid             int               `json:"gid"`
	Euid            int               `json:"euid"`
	Egid            int               `json:"egid"`
	Groups          []int             `json:"groups"`
	Status          map[string]string `json:"status"`
	Startup         map[string]string `json:"startup"`
	Listeners       []string          `json:"listeners"`
	SocketActivated bool              `json:"socket_activated"`
	Checks          []check           `json:"checks"`
}

// runProbe runs the fixed checks plus those the query asks for:
// write=P (create a new file, write, remove it), openw=P (open an existing
// file for writing, write nothing), read=P, list=P, stat=P (lstat),
// mkfile=P (create or truncate and keep, e.g. a /tmp marker),
// suiddir=D (where chmod u+s is tried; default: the dir of -dbpath).
func runProbe(q url.Values) report {
	groups, _ := os.Getgroups()
	if groups == nil {
		groups = []int{}
	}
	rep := report{
		App: cfg.name, Runtime: "go", Pid: os.Getpid(),
		Uid: os.Getuid(), Gid: os.Getgid(), Euid: os.Geteuid(), Egid: os.Getegid(),
		Groups: groups, Status: procStatus(), Startup: startup, Listeners: bound,
		SocketActivated: activated, Checks: []check{},
	}
	if rep.Listeners == nil {
		rep.Listeners = []string{}
	}
	add := func(op, path string, err error, detail string) {
		rep.Checks = append(rep.Checks, check{op, path, result(err), detail})
	}
	for _, p := range q["write"] {
		add("write", p, tryCreate(p, true), "")
	}
	for _, p := range q["mkfile"] {
		add("mkfile", p, tryCreate(p, false), "")
	}
	for _, p := range q["openw"] {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err == nil {
			f.Close()
		}
		add("openw", p, err, "")
	}
	for _, p := range q["read"] {
		add("read", p, readSome(p), "")
	}
	for _, p := range q["list"] {
		names, err := listDir(p)
		add("list", p, err, names)
	}
	for _, p := range q["stat"] {
		_, err := os.Lstat(p)
		add("stat", p, err, "")
	}

	names, err := listDir("/home")
	add("list_home", "/home", err, names)
	add("setuid0", "", viaChild("setuid0"), "")
	add("setgid0", "", viaChild("setgid0"), "")
	suidDir := q.Get("suiddir")
	if suidDir == "" && cfg.dbpath != "" {
		suidDir = filepath.Dir(cfg.dbpath)
	}
	if suidDir != "" {
		p := filepath.Join(suidDir, fmt.Sprintf(".probe-suid-%d", os.Getpid()))
		add("chmod_suid", p, trySuid(p), "")
	}
	add("unshare_user", "", cloneWith(syscall.CLONE_NEWUSER), "clone(CLONE_NEWUSER)")
	add("unshare_mount", "", cloneWith(syscall.CLONE_NEWNS), "clone(CLONE_NEWNS)")
	tmp := fmt.Sprintf("/tmp/.probe-%d", os.Getpid())
	add("write_tmp", tmp, tryCreate(tmp, true), "")
	return rep
}

func tryCreate(p string, remove bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if remove {
		flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(p, flags, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString("probe\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if remove {
		if rerr := os.Remove(p); err == nil {
			err = rerr
		}
	}
	return err
}

func trySuid(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		// not a refusal of the chmod: report it apart
		return errors.New("create-failed:" + errName(err))
	}
	f.Close()
	defer os.Remove(p)
	if err := syscall.Chmod(p, 0o4755); err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err == nil && st.Mode&syscall.S_ISUID == 0 {
		return errors.New("SILENTLY_IGNORED")
	}
	return nil
}

func readSome(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Read(make([]byte, 64))
	if err == io.EOF {
		err = nil
	}
	return err
}

func listDir(p string) (string, error) {
	ents, err := os.ReadDir(p)
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, " "), nil
}

func procStatus() map[string]string {
	out := map[string]string{}
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		out["error"] = errName(err)
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if strings.HasPrefix(k, "Cap") || k == "NoNewPrivs" || strings.HasPrefix(k, "Seccomp") {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// viaChild runs one identity-changing call in a fresh copy of this binary, so
// a success cannot change the identity of the app itself.
func viaChild(op string) error {
	out, err := exec.Command("/proc/self/exe", "-probe-op", op).Output()
	if err != nil && len(out) == 0 {
		return fmt.Errorf("child: %w", err)
	}
	if s := strings.TrimSpace(string(out)); s != "ok" {
		return errors.New(s)
	}
	return nil
}

func childOp(op string) int {
	var err error
	switch op {
	case "setuid0":
		err = syscall.Setuid(0)
	case "setgid0":
		err = syscall.Setgid(0)
	default:
		err = errors.New("UNKNOWN_OP")
	}
	fmt.Println(result(err))
	return 0
}

// cloneWith starts /bin/true in new namespaces: Go processes are
// multi-threaded, so unshare(2) of a user or mount namespace would fail with
// EINVAL for that reason alone; clone(2) with the same flag is the test.
func cloneWith(flag uintptr) error {
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flag}
	return cmd.Run()
}

func result(err error) string {
	if err == nil {
		return "ok"
	}
	return errName(err)
}

var errnoNames = map[syscall.Errno]string{
	syscall.EPERM: "EPERM", syscall.ENOENT: "ENOENT", syscall.EACCES: "EACCES",
	syscall.EROFS: "EROFS", syscall.EINVAL: "EINVAL", syscall.EEXIST: "EEXIST",
	syscall.ENOTDIR: "ENOTDIR", syscall.EISDIR: "EISDIR", syscall.ENOSYS: "ENOSYS",
	syscall.EAFNOSUPPORT: "EAFNOSUPPORT", syscall.EXDEV: "EXDEV", syscall.ELOOP: "ELOOP",
	syscall.EBUSY: "EBUSY", syscall.ENOSPC: "ENOSPC", syscall.EAGAIN: "EAGAIN",
	syscall.ENOTEMPTY: "ENOTEMPTY", syscall.EBADF: "EBADF", syscall.EOPNOTSUPP: "EOPNOTSUPP",
	syscall.ENAMETOOLONG: "ENAMETOOLONG", syscall.ETXTBSY: "ETXTBSY", syscall.EIO: "EIO",
	syscall.ENXIO: "ENXIO", syscall.EUSERS: "EUSERS", syscall.ENOMEM: "ENOMEM",
}

// errName turns an error into the errno's symbolic name where there is one.
func errName(err error) string {
	var en syscall.Errno
	if errors.As(err, &en) {
		if n, ok := errnoNames[en]; ok {
			return n
		}
		return "errno" + strconv.Itoa(int(en))
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return "exit:" + ee.ProcessState.String()
	}
	return err.Error()
}
