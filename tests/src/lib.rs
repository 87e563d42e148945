//! End-to-end test harness for weft.
//!
//! Every test builds a [`Lab`]: its own daemon (own socket and state dir in a
//! fresh temp dir) and its own network namespaces, all named with a short
//! random prefix so that tests can run in parallel (cargo-nextest runs each
//! test in its own process). Everything is torn down in `Drop`, also when the
//! test panicked; the daemon log is printed then.
//!
//! Everything is real: `ip netns`, `ping`, `iperf3`, `tcpdump`, raw
//! AF_PACKET sockets (through `python3`).
//!
//! All external commands run with a timeout, and every lab has a watchdog
//! (default 120 s, env `WEFT_TEST_TIMEOUT_SECS`) that cleans up and exits the
//! process if a test hangs, so the suite cannot wedge.
//!
//! Almost every test needs root (namespaces, TAPs, raw sockets) and starts with
//! [`root_or_skip!`]: run by anyone else, it prints `skipped: TEST (FILE) needs root ...`
//! to stderr and passes without doing anything (`WEFT_TEST_REQUIRE_ROOT=1` turns that
//! skip into a failure).

#![forbid(unsafe_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub mod docker;
pub mod hosts;
pub mod iperf;

/// Timeout for one `weft` CLI call.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout for one command run inside a namespace (ping, python, ...).
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// binaries, root
// ---------------------------------------------------------------------------

/// Path of the `weft` binary: `$WEFT_BIN`, else `<target>/release/weft`
/// (relative to this test executable, which lives in `<target>/release/deps/`),
/// else `<target>/debug/weft`.
pub fn weft_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WEFT_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "WEFT_BIN={} does not exist; build it with `cargo build --release -p weft-control`",
            p.display()
        );
        return p;
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // <target>/<profile>/deps/<test-exe>
        if let Some(target) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            candidates.push(target.join("release").join("weft"));
            candidates.push(target.join("debug").join("weft"));
        }
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(&t).join("release").join("weft"));
        candidates.push(PathBuf::from(&t).join("debug").join("weft"));
    }
    let ws_target = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target");
    candidates.push(ws_target.join("release").join("weft"));
    candidates.push(ws_target.join("debug").join("weft"));
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "weft binary not found (looked at {:?}); build it with `cargo build --release -p weft-control` \
         or point WEFT_BIN at it",
        candidates
    );
}

/// True if this process runs with effective uid 0.
pub fn is_root() -> bool {
    weft_sys::effective_uid() == 0
}

/// Panics with a clear message unless running as root. [`Lab::without_daemon`] calls it as
/// a backstop; tests start with [`root_or_skip!`] instead, which skips rather than fails.
pub fn require_root() {
    let euid = weft_sys::effective_uid();
    assert!(
        euid == 0,
        "the weft e2e tests need root (network namespaces, TAP devices, raw sockets); euid is {euid} \
         (a test that needs root should start with `weft_tests::root_or_skip!();`)"
    );
}

/// Set to `1` to make a test that needs root fail instead of skip when not run as root (for
/// CI, where a skip that counts as a pass would hide that nothing was tested).
pub const REQUIRE_ROOT_ENV: &str = "WEFT_TEST_REQUIRE_ROOT";

/// The gate behind [`root_or_skip!`]: true when running as root. Otherwise prints
/// `skipped: TEST needs root ...` to stderr (straight to the process's stderr, so that the
/// line shows even when the test harness captures output) and returns false, so that the
/// test can return early and count as passed; with `WEFT_TEST_REQUIRE_ROOT=1` it panics
/// instead.
pub fn root_or_skip_named(test: &str) -> bool {
    if is_root() {
        return true;
    }
    let euid = weft_sys::effective_uid();
    let why = "needs root (network namespaces, TAPs, raw sockets)";
    if std::env::var(REQUIRE_ROOT_ENV).is_ok_and(|v| v.trim() == "1") {
        panic!("{test} {why} but runs as euid {euid}, and {REQUIRE_ROOT_ENV}=1 forbids skipping");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "skipped: {test} {why}; run as root (euid is {euid})"
    );
    false
}

/// The path of the function this is expanded in, without the crate name, e.g.
/// `demo_runs_and_cleans_up` (a test in `tests/tests/demo.rs`).
#[macro_export]
macro_rules! test_name {
    () => {{
        fn __weft_test_name_marker() {}
        let path = ::std::any::type_name_of_val(&__weft_test_name_marker);
        let path = path
            .strip_suffix("::__weft_test_name_marker")
            .unwrap_or(path);
        path.split_once("::").map_or(path, |(_crate, rest)| rest)
    }};
}

/// First line of every test that needs root: when not run as root, prints
/// `skipped: TEST needs root (...); run as root` to stderr and returns from the test, which
/// then counts as passed (see [`root_or_skip_named`], also for `WEFT_TEST_REQUIRE_ROOT=1`).
#[macro_export]
macro_rules! root_or_skip {
    () => {
        if !$crate::root_or_skip_named(&::std::format!(
            "{} ({})",
            $crate::test_name!(),
            ::std::file!()
        )) {
            return;
        }
    };
}

/// Panics with a clear message unless `tool` is on PATH.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is required by this test but is not installed (apt-get install {tool})"
    );
}

// ---------------------------------------------------------------------------
// running commands with a timeout
// ---------------------------------------------------------------------------

fn pump<R: Read + Send + 'static>(mut r: R, buf: Arc<Mutex<Vec<u8>>>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    })
}

/// Runs `cmd` (stdin null, stdout/stderr captured); panics if it takes longer
/// than `timeout` (the child is killed first).
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let t1 = pump(child.stdout.take().unwrap(), out.clone());
    let t2 = pump(child.stderr.take().unwrap(), err.clone());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            thread::sleep(Duration::from_millis(100));
            panic!(
                "command timed out after {timeout:?}: {desc}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&out.lock().unwrap()),
                String::from_utf8_lossy(&err.lock().unwrap())
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    // A leftover grandchild may keep the pipes open; don't wait for it forever.
    let grace = Instant::now() + Duration::from_secs(2);
    while !(t1.is_finished() && t2.is_finished()) && Instant::now() < grace {
        thread::sleep(Duration::from_millis(5));
    }
    let stdout = out.lock().unwrap().clone();
    let stderr = err.lock().unwrap().clone();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Convenience: stdout of an Output as String.
pub fn stdout_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Convenience: stderr of an Output as String.
pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A command's exit status, stdout and stderr, for assertion messages.
pub fn describe(o: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        stdout_of(o),
        stderr_of(o)
    )
}

fn run_quiet(prog: &str, args: &[&str]) -> Option<Output> {
    let mut c = Command::new(prog);
    c.args(args);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_timeout(&mut c, Duration::from_secs(20))
    }))
    .ok()
}

fn send_signal(pid: u32, sig: libc::c_int) {
    let _ = weft_sys::send_signal(pid, sig);
}

/// Waits for `child` to exit, up to `timeout`.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Interface names (without the `@peer` suffix) in the root namespace
/// (`ns = None`) or in a named namespace.
pub fn link_names_in(ns: Option<&str>) -> Vec<String> {
    let out = match ns {
        Some(ns) => run_quiet("ip", &["-n", ns, "-o", "link", "show"]),
        None => run_quiet("ip", &["-o", "link", "show"]),
    };
    let Some(out) = out else { return Vec::new() };
    stdout_of(&out)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// Names in `ip netns list`.
pub fn netns_list() -> Vec<String> {
    let Some(out) = run_quiet("ip", &["netns", "list"]) else {
        return Vec::new();
    };
    stdout_of(&out)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// True if `name` looks like a namespace made by a `Lab` (`wtXXXX-...`).
pub fn is_lab_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 7
        && b.starts_with(b"wt")
        && b[2..6].iter().all(|c| c.is_ascii_hexdigit())
        && b[6] == b'-'
}

// ---------------------------------------------------------------------------
// the lab
// ---------------------------------------------------------------------------

struct Shared {
    prefix: String,
    dir: PathBuf,
    log_path: PathBuf,
    daemon: Option<Child>,
    namespaces: Vec<String>,
    /// Run first at cleanup, last registered first (e.g. stop a dockerd that calls the
    /// daemon's driver while it shuts down).
    before: Vec<Box<dyn FnOnce() + Send>>,
    cleaned: bool,
}

fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

fn kill_daemon(child: &mut Child) {
    send_signal(child.id(), libc::SIGTERM);
    if wait_child(child, Duration::from_secs(5)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn cleanup(shared: &Mutex<Shared>, print_log: bool) {
    let mut s = lock(shared);
    if s.cleaned {
        return;
    }
    s.cleaned = true;
    let before = std::mem::take(&mut s.before);
    drop(s);
    for f in before.into_iter().rev() {
        f();
    }
    let mut s = lock(shared);
    // Processes left running inside our namespaces (iperf3 servers, sleep, ...).
    for ns in &s.namespaces {
        if let Some(out) = run_quiet("ip", &["netns", "pids", ns]) {
            for pid in stdout_of(&out)
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
            {
                send_signal(pid, libc::SIGKILL);
            }
        }
    }
    if let Some(mut d) = s.daemon.take() {
        kill_daemon(&mut d);
    }
    if print_log && s.log_path.exists() {
        let log =
            fs::read_to_string(&s.log_path).unwrap_or_else(|e| format!("<cannot read log: {e}>"));
        eprintln!(
            "===== weft daemon log ({}) =====\n{}\n===== end of daemon log =====",
            s.log_path.display(),
            log
        );
    }
    for ns in s.namespaces.iter().rev() {
        let _ = run_quiet("ip", &["netns", "del", ns]);
        // weft writes /etc/netns/NS/resolv.conf for named namespaces.
        let _ = fs::remove_dir_all(Path::new("/etc/netns").join(ns));
    }
    let prefix = s.prefix.clone();
    for name in link_names_in(None) {
        if name.starts_with(&prefix) {
            let _ = run_quiet("ip", &["link", "del", &name]);
        }
    }
    let _ = fs::remove_dir_all(&s.dir);
}

/// One endpoint as printed by `weft --json connect` / `network inspect`.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub name: String,
    pub network: String,
    pub netns: String,
    pub ifname: String,
    pub kind: String,
    pub ip: String,
    pub prefix_len: u64,
    /// lower-case
    pub mac: String,
    pub port: Value,
    /// The lab namespace the endpoint lives in (for `exec`/`ping`).
    pub ns: String,
    pub json: Value,
}

fn s_field(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        other => panic!("field {k:?} missing or not a string in {v}: {other:?}"),
    }
}

impl Endpoint {
    pub fn from_json(v: &Value, ns: &str) -> Endpoint {
        Endpoint {
            name: s_field(v, "name"),
            network: s_field(v, "network"),
            netns: v
                .get("netns")
                .map(|n| n.as_str().map(str::to_string).unwrap_or(n.to_string()))
                .unwrap_or_default(),
            ifname: s_field(v, "ifname"),
            kind: s_field(v, "kind"),
            ip: s_field(v, "ip"),
            prefix_len: v
                .get("prefix_len")
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("prefix_len missing in {v}")),
            mac: s_field(v, "mac").to_ascii_lowercase(),
            port: v
                .get("port")
                .cloned()
                .unwrap_or_else(|| panic!("port missing in {v}")),
            ns: ns.to_string(),
            json: v.clone(),
        }
    }

    /// True if an FDB "port" value designates this endpoint (either the same
    /// value as the endpoint's "port" field, or the endpoint name).
    pub fn is_port(&self, fdb_port: &Value) -> bool {
        *fdb_port == self.port || fdb_port.as_str() == Some(self.name.as_str())
    }

    pub fn mac_bytes(&self) -> [u8; 6] {
        mac_bytes(&self.mac)
    }
}

/// A test lab: one daemon, namespaces, temp dir. See the module docs.
pub struct Lab {
    pub prefix: String,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub log_path: PathBuf,
    shared: Arc<Mutex<Shared>>,
    done: Arc<AtomicBool>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// New lab with a running daemon.
    pub fn new() -> Lab {
        let lab = Lab::without_daemon();
        lab.start_daemon();
        lab
    }

    /// New lab (prefix, temp dir, watchdog) without starting the daemon.
    pub fn without_daemon() -> Lab {
        require_root();
        let _ = weft_bin();
        let pid = std::process::id();
        let (prefix, dir) = loop {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            let v = (pid ^ n.wrapping_mul(0x9e37_79b9) ^ nanos ^ (nanos >> 16)) & 0xffff;
            let prefix = format!("wt{v:04x}");
            if netns_list().iter().any(|n| n.starts_with(&prefix)) {
                continue;
            }
            if link_names_in(None).iter().any(|n| n.starts_with(&prefix)) {
                continue;
            }
            let dir = std::env::temp_dir().join(format!("weft-test-{prefix}"));
            // create_dir (not _all) fails if it exists: acts as a lock on the prefix.
            if fs::create_dir(&dir).is_ok() {
                break (prefix, dir);
            }
        };
        let state_dir = dir.join("state");
        fs::create_dir(&state_dir).expect("create state dir");
        let socket = dir.join("weft.sock");
        let log_path = dir.join("daemon.log");
        let shared = Arc::new(Mutex::new(Shared {
            prefix: prefix.clone(),
            dir: dir.clone(),
            log_path: log_path.clone(),
            daemon: None,
            namespaces: Vec::new(),
            before: Vec::new(),
            cleaned: false,
        }));
        let done = Arc::new(AtomicBool::new(false));
        let secs = std::env::var("WEFT_TEST_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(120);
        {
            let shared = shared.clone();
            let done = done.clone();
            let prefix = prefix.clone();
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(secs);
                while Instant::now() < deadline {
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                    thread::sleep(Duration::from_millis(200));
                }
                if done.load(Ordering::SeqCst) {
                    return;
                }
                eprintln!("weft-tests: lab {prefix} exceeded {secs} s (WEFT_TEST_TIMEOUT_SECS); cleaning up and exiting");
                cleanup(&shared, true);
                std::process::exit(3);
            });
        }
        Lab {
            prefix,
            dir,
            socket,
            state_dir,
            log_path,
            shared,
            done,
        }
    }

    /// Starts `weft daemon --socket S --state-dir D` and waits (<= 10 s) until
    /// the socket accepts connections.
    pub fn start_daemon(&self) {
        self.start_daemon_with(&[]);
    }

    /// New lab whose daemon gets `extra` arguments (e.g. `--dns-upstream`).
    pub fn with_daemon_args(extra: &[&str]) -> Lab {
        let lab = Lab::without_daemon();
        lab.start_daemon_with(extra);
        lab
    }

    /// `weft daemon --socket S --state-dir D` of this lab, not started.
    pub fn daemon_command(&self) -> Command {
        let mut cmd = Command::new(weft_bin());
        cmd.arg("daemon")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--state-dir")
            .arg(&self.state_dir);
        cmd
    }

    /// Starts the daemon with extra arguments after the socket and state directory.
    pub fn start_daemon_with(&self, extra: &[&str]) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open daemon log");
        let log2 = log.try_clone().unwrap();
        let mut cmd = self.daemon_command();
        cmd.args(extra);
        // Names the embedded DNS does not know must never reach the host's real resolvers
        // from a test: point the upstream at a loopback port nobody listens on.
        if !extra.contains(&"--dns-upstream") {
            cmd.args(["--dns-upstream", "127.0.0.1:9"]);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start weft daemon: {e}"));
        {
            let mut s = lock(&self.shared);
            assert!(s.daemon.is_none(), "start_daemon: daemon already running");
            s.daemon = Some(child);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            {
                let mut s = lock(&self.shared);
                let d = s.daemon.as_mut().unwrap();
                if let Ok(Some(st)) = d.try_wait() {
                    s.daemon = None;
                    drop(s);
                    panic!(
                        "weft daemon exited during startup ({st}); log:\n{}",
                        self.daemon_log()
                    );
                }
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "weft daemon socket {} did not accept connections within 10 s; log:\n{}",
                    self.socket.display(),
                    self.daemon_log()
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Runs `f` when the lab is cleaned up (dropped, or timed out by the watchdog), before
    /// the daemon is stopped and the namespaces are removed.
    pub fn on_cleanup(&self, f: impl FnOnce() + Send + 'static) {
        lock(&self.shared).before.push(Box::new(f));
    }

    /// SIGTERM the daemon and wait (<= 10 s) for it to exit; returns its exit status.
    pub fn stop_daemon(&self) -> ExitStatus {
        self.stop_daemon_with(libc::SIGTERM)
    }

    /// Sends `sig` to the daemon and waits (<= 10 s) for it to exit; returns its exit status.
    pub fn stop_daemon_with(&self, sig: libc::c_int) -> ExitStatus {
        let mut child = lock(&self.shared)
            .daemon
            .take()
            .expect("stop_daemon: daemon not running");
        send_signal(child.id(), sig);
        match wait_child(&mut child, Duration::from_secs(10)) {
            Some(st) => st,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "weft daemon did not exit within 10 s of signal {sig}; log:\n{}",
                    self.daemon_log()
                );
            }
        }
    }

    /// The daemon's process ID, while it runs.
    pub fn daemon_pid(&self) -> Option<u32> {
        lock(&self.shared).daemon.as_ref().map(|d| d.id())
    }

    /// True while the daemon process is running.
    pub fn daemon_alive(&self) -> bool {
        let mut s = lock(&self.shared);
        match s.daemon.as_mut() {
            Some(d) => matches!(d.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn daemon_log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    // ----- namespaces ------------------------------------------------------

    /// Creates namespace `PREFIX-name` (lo up, IPv6 disabled so that the
    /// namespace stays silent unless a test sends something) and returns its name.
    pub fn ns(&self, name: &str) -> String {
        let full = format!("{}-{}", self.prefix, name);
        let mut last = None;
        for _ in 0..5 {
            let o = run_timeout(
                Command::new("ip").args(["netns", "add", &full]),
                EXEC_TIMEOUT,
            );
            if o.status.success() {
                last = None;
                break;
            }
            last = Some(o);
            thread::sleep(Duration::from_millis(100));
        }
        if let Some(o) = last {
            panic!("ip netns add {full} failed: {}", describe(&o));
        }
        lock(&self.shared).namespaces.push(full.clone());
        let o = run_timeout(
            Command::new("ip").args(["-n", &full, "link", "set", "lo", "up"]),
            EXEC_TIMEOUT,
        );
        assert!(o.status.success(), "lo up in {full}: {}", describe(&o));
        let _ = self.exec(
            &full,
            &[
                "sh",
                "-c",
                "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
            ],
        );
        full
    }

    /// An "outside" namespace `PREFIX-outN` with address 10.N.0.2/29 on `eth0`, joined to the
    /// host namespace by a veth pair whose host end has 10.N.0.1/29: a peer reachable from
    /// the host (and so through weft's proxy NAT) that is not on any weft network. Tests
    /// running in parallel must use different `n`. 10.N.0.3-6 belong to nobody (ARP for them
    /// goes unanswered: "no route to host"). The host end dies with the namespace.
    pub fn outside(&self, n: u8) -> String {
        let ns = self.ns(&format!("out{n}"));
        let host_end = format!("{}o{n}", self.prefix);
        let (host_ip, ns_ip) = (format!("10.{n}.0.1/29"), format!("10.{n}.0.2/29"));
        let ip = |args: &[&str]| {
            let o = run_timeout(Command::new("ip").args(args), EXEC_TIMEOUT);
            assert!(o.status.success(), "ip {args:?}: {}", describe(&o));
        };
        ip(&[
            "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip(&["addr", "add", &host_ip, "dev", &host_end]);
        ip(&["link", "set", &host_end, "up"]);
        ip(&["-n", &ns, "addr", "add", &ns_ip, "dev", "eth0"]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ns
    }

    /// `ip netns exec NS cmd...`
    pub fn exec(&self, ns: &str, cmd: &[&str]) -> Output {
        run_timeout(
            Command::new("ip").args(["netns", "exec", ns]).args(cmd),
            EXEC_TIMEOUT,
        )
    }

    /// Like `exec`, asserts success, returns stdout.
    pub fn exec_ok(&self, ns: &str, cmd: &[&str]) -> String {
        let o = self.exec(ns, cmd);
        assert!(
            o.status.success(),
            "`ip netns exec {ns} {}` failed: {}",
            cmd.join(" "),
            describe(&o)
        );
        stdout_of(&o)
    }

    /// `ping -c 2 -W 1 -i 0.2 ip` inside `ns`; true if any reply came back.
    pub fn ping(&self, ns: &str, ip: &str) -> bool {
        self.exec(ns, &["ping", "-c", "2", "-W", "1", "-i", "0.2", ip])
            .status
            .success()
    }

    /// Retries `ping` until it succeeds or `timeout` passes.
    pub fn wait_ping(&self, ns: &str, ip: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.ping(ns, ip) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// Asserts that `from` can ping `to`, with a useful message.
    pub fn assert_ping(&self, from: &Endpoint, to: &Endpoint) {
        if !self.ping(&from.ns, &to.ip) {
            let diag = self.exec(&from.ns, &["sh", "-c", "ip addr; ip route; ip neigh"]);
            panic!(
                "ping {} ({} {}) -> {} ({} {}) failed\n{}\nports: {}",
                from.name,
                from.kind,
                from.ip,
                to.name,
                to.kind,
                to.ip,
                stdout_of(&diag),
                serde_json::to_string_pretty(&Value::Array(self.ports())).unwrap()
            );
        }
    }

    /// Interface names inside `ns`.
    pub fn link_names(&self, ns: &str) -> Vec<String> {
        link_names_in(Some(ns))
    }

    /// Spawns a background command inside `ns`.
    pub fn spawn_in(&self, ns: &str, cmd: &[&str]) -> Bg {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(cmd);
        Bg::spawn(c)
    }

    // ----- the CLI ---------------------------------------------------------

    /// `weft --socket S` command (nothing else added).
    pub fn weft_cmd(&self) -> Command {
        let mut c = Command::new(weft_bin());
        c.arg("--socket").arg(&self.socket);
        c
    }

    /// Runs `weft --socket S args...`.
    pub fn weft<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        run_timeout(self.weft_cmd().args(args), CLI_TIMEOUT)
    }

    /// Runs the CLI, asserts success, returns stdout.
    pub fn weft_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let o = self.weft(args);
        if !o.status.success() {
            panic!("`weft {}` failed: {}", join_args(args), describe(&o));
        }
        stdout_of(&o)
    }

    /// Runs `weft --socket S --json args...`, asserts success, parses stdout.
    pub fn weft_json<S: AsRef<OsStr>>(&self, args: &[S]) -> Value {
        let o = run_timeout(self.weft_cmd().arg("--json").args(args), CLI_TIMEOUT);
        if !o.status.success() {
            panic!("`weft --json {}` failed: {}", join_args(args), describe(&o));
        }
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "`weft --json {}` printed invalid JSON ({e}):\n{}",
                join_args(args),
                stdout_of(&o)
            )
        })
    }

    /// Runs the CLI and asserts it fails properly: exit code 1, stderr starts
    /// with "error: ", and mentions at least one of `words` (case-insensitive;
    /// empty = no check). Returns stderr.
    pub fn weft_err<S: AsRef<OsStr>>(&self, args: &[S], words: &[&str]) -> String {
        let o = self.weft(args);
        check_error(&o, &format!("weft {}", join_args(args)), words)
    }

    // ----- domain helpers --------------------------------------------------

    /// `weft network create NAME --subnet SUBNET extra...`; asserts it prints NAME.
    pub fn create_network(&self, name: &str, subnet: &str, extra: &[&str]) {
        let mut args = vec!["network", "create", name, "--subnet", subnet];
        args.extend_from_slice(extra);
        let out = self.weft_ok(&args);
        assert!(
            out.lines().any(|l| l.trim() == name),
            "`weft network create {name}` should print the network name, printed {out:?}"
        );
    }

    /// `weft --json connect NET --netns NS extra...`.
    pub fn connect(&self, net: &str, ns: &str, extra: &[&str]) -> Endpoint {
        let mut args = vec!["connect", net, "--netns", ns];
        args.extend_from_slice(extra);
        let v = self.weft_json(&args);
        Endpoint::from_json(&v, ns)
    }

    /// `weft network inspect NET` (parsed JSON).
    pub fn inspect(&self, net: &str) -> Value {
        let out = self.weft_ok(&["network", "inspect", net]);
        serde_json::from_str(&out).unwrap_or_else(|e| {
            panic!("`weft network inspect {net}` printed invalid JSON ({e}):\n{out}")
        })
    }

    /// Endpoints of `net` per `network inspect`.
    pub fn endpoints(&self, net: &str) -> Vec<Value> {
        let v = self.inspect(net);
        v.get("endpoints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_else(|| panic!("network inspect {net}: no endpoints array in {v}"))
    }

    /// `weft --json network ls`.
    pub fn networks(&self) -> Vec<Value> {
        as_array(self.weft_json(&["network", "ls"]), "network ls")
    }

    /// `weft --json ports`.
    pub fn ports(&self) -> Vec<Value> {
        as_array(self.weft_json(&["ports"]), "ports")
    }

    /// The `weft ports --json` entry named `name`.
    pub fn port(&self, name: &str) -> Value {
        let ports = self.ports();
        ports
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .cloned()
            .unwrap_or_else(|| panic!("no port named {name:?} in `weft ports --json`: {ports:?}"))
    }

    /// `weft --json fdb NET`.
    pub fn fdb(&self, net: &str) -> Vec<Value> {
        as_array(self.weft_json(&["fdb", net]), "fdb")
    }

    /// Starts `weft capture PORT -w FILE [-c COUNT]`.
    pub fn capture(&self, port: &str, file: &Path, count: Option<u32>) -> Capture {
        let mut c = self.weft_cmd();
        c.arg("capture").arg(port).arg("-w").arg(file);
        if let Some(n) = count {
            c.arg("-c").arg(n.to_string());
        }
        c.stdout(Stdio::null());
        Capture::spawn(c, port)
    }

    /// Starts `weft capture PORT -w - [-c COUNT]` with stdout redirected to `file`.
    pub fn capture_stdout(&self, port: &str, file: &Path, count: Option<u32>) -> Capture {
        let mut c = self.weft_cmd();
        c.arg("capture").arg(port).arg("-w").arg("-");
        if let Some(n) = count {
            c.arg("-c").arg(n.to_string());
        }
        c.stdout(File::create(file).expect("create capture output"));
        Capture::spawn(c, port)
    }

    /// Sends raw Ethernet frames out of `ifname` inside `ns` through an
    /// AF_PACKET/SOCK_RAW socket. Returns how many were sent successfully.
    pub fn send_frames(&self, ns: &str, ifname: &str, frames: &[Vec<u8>]) -> usize {
        const PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
n = 0
for h in sys.argv[2:]:
    b = bytes.fromhex(h)
    try:
        s.send(b)
        n += 1
    except OSError as e:
        print("send of %d bytes failed: %s" % (len(b), e), file=sys.stderr)
print(n)
"#;
        let hex: Vec<String> = frames.iter().map(|f| to_hex(f)).collect();
        let mut args: Vec<&str> = vec!["python3", "-c", PY, ifname];
        args.extend(hex.iter().map(String::as_str));
        let o = self.exec(ns, &args);
        assert!(
            o.status.success(),
            "raw frame sender failed: {}",
            describe(&o)
        );
        let err = stderr_of(&o);
        if !err.trim().is_empty() {
            eprintln!("raw frame sender: {err}");
        }
        stdout_of(&o).trim().parse().unwrap_or(0)
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        cleanup(&self.shared, thread::panicking());
    }
}

fn join_args<S: AsRef<OsStr>>(args: &[S]) -> String {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn as_array(v: Value, what: &str) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => panic!("`weft --json {what}` should print a JSON array, printed {other}"),
    }
}

/// Asserts that `o` is a proper CLI failure (exit code 1, stderr starting
/// with "error: " and mentioning one of `words`). Returns stderr.
pub fn check_error(o: &Output, what: &str, words: &[&str]) -> String {
    let err = stderr_of(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "`{what}` should fail with exit code 1: {}",
        describe(o)
    );
    assert!(
        err.trim_start().starts_with("error: "),
        "`{what}`: stderr should start with \"error: \": {err:?}"
    );
    if !words.is_empty() {
        let lower = err.to_ascii_lowercase();
        assert!(
            words
                .iter()
                .any(|w| lower.contains(&w.to_ascii_lowercase())),
            "`{what}`: stderr should mention one of {words:?}: {err:?}"
        );
    }
    err
}

// ---------------------------------------------------------------------------
// background processes
// ---------------------------------------------------------------------------

/// A background process (killed on drop).
pub struct Bg {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    desc: String,
}

impl Bg {
    pub fn spawn(mut c: Command) -> Bg {
        let desc = format!("{c:?}");
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {desc}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        pump(child.stdout.take().unwrap(), out.clone());
        pump(child.stderr.take().unwrap(), err.clone());
        Bg {
            child,
            out,
            err,
            desc,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for exit (panics after `timeout`).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        match wait_child(&mut self.child, timeout) {
            Some(st) => {
                thread::sleep(Duration::from_millis(50));
                st
            }
            None => panic!(
                "{} did not exit within {timeout:?}\nstdout: {}\nstderr: {}",
                self.desc,
                self.stdout(),
                self.stderr()
            ),
        }
    }

    pub fn kill(&mut self) {
        if self.running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A dnsmasq on loopback answering from `records` (its `--address=`, `--txt-record=`
/// arguments) and nothing else: an upstream resolver for weft's gateway. Returns it (killed
/// on drop) and its address for `--dns-upstream`.
pub fn dnsmasq_upstream(records: &[String]) -> (Bg, String) {
    require_tool("dnsmasq");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port");
    let mut dnsmasq = Command::new("dnsmasq");
    dnsmasq
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--except-interface=*",
            "--pid-file=",
        ])
        .arg(format!("--port={port}"))
        .args(records);
    let bg = Bg::spawn(dnsmasq);
    thread::sleep(Duration::from_millis(300));
    (bg, format!("127.0.0.1:{port}"))
}

/// A running `weft capture`.
pub struct Capture {
    child: Child,
    stderr: Arc<Mutex<String>>,
    port: String,
}

impl Capture {
    fn spawn(mut c: Command, port: &str) -> Capture {
        c.stdin(Stdio::null()).stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn weft capture: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let se = child.stderr.take().unwrap();
        let buf = stderr.clone();
        thread::spawn(move || {
            let mut r = BufReader::new(se);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                buf.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Capture {
            child,
            stderr,
            port: port.to_string(),
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the CLI printed "capturing on PORT" (panics after `timeout`
    /// or if the capture exits first).
    pub fn wait_active(&mut self, timeout: Duration) {
        let want = format!("capturing on {}", self.port);
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr().contains(&want) {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                thread::sleep(Duration::from_millis(50));
                panic!(
                    "weft capture {} exited ({st}) before becoming active; stderr: {:?}",
                    self.port,
                    self.stderr()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "weft capture {} did not print {want:?} within {timeout:?}; stderr: {:?}",
                    self.port,
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the capture to exit by itself (e.g. after -c COUNT).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        match wait_child(&mut self.child, timeout) {
            Some(st) => {
                thread::sleep(Duration::from_millis(50));
                st
            }
            None => panic!(
                "weft capture {} did not exit within {timeout:?}; stderr: {:?}",
                self.port,
                self.stderr()
            ),
        }
    }

    /// Sends `sig` (SIGINT/SIGTERM) and waits (<= 10 s) for exit.
    pub fn stop_with(&mut self, sig: libc::c_int) -> ExitStatus {
        if let Ok(Some(st)) = self.child.try_wait() {
            return st;
        }
        send_signal(self.child.id(), sig);
        self.wait(Duration::from_secs(10))
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGTERM)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// pcap, frames, tools
// ---------------------------------------------------------------------------

/// A parsed pcap file.
#[derive(Debug)]
pub struct Pcap {
    pub linktype: u32,
    pub frames: Vec<Vec<u8>>,
}

/// Parses a classic pcap file strictly: valid global header, every record
/// complete (no trailing partial record).
pub fn read_pcap(path: &Path) -> Result<Pcap, String> {
    let data = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_pcap(&data)
}

pub fn parse_pcap(data: &[u8]) -> Result<Pcap, String> {
    if data.len() < 24 {
        return Err(format!(
            "pcap too short for the global header: {} bytes",
            data.len()
        ));
    }
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let le = match magic {
        0xa1b2c3d4 | 0xa1b23c4d => true,
        0xd4c3b2a1 | 0x4d3cb2a1 => false,
        m => return Err(format!("bad pcap magic {m:#010x}")),
    };
    let rd = |b: &[u8]| -> u32 {
        let a: [u8; 4] = b.try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = rd(&data[20..24]);
    let mut frames = Vec::new();
    let mut off = 24;
    while off < data.len() {
        if data.len() - off < 16 {
            return Err(format!(
                "truncated record header at offset {off} ({} trailing bytes)",
                data.len() - off
            ));
        }
        let incl = rd(&data[off + 8..off + 12]) as usize;
        if incl > 262_144 {
            return Err(format!("implausible record length {incl} at offset {off}"));
        }
        off += 16;
        if data.len() - off < incl {
            return Err(format!(
                "truncated record data at offset {off}: need {incl}, have {}",
                data.len() - off
            ));
        }
        frames.push(data[off..off + incl].to_vec());
        off += incl;
    }
    Ok(Pcap { linktype, frames })
}

/// `tcpdump -r FILE -nn [extra]` → (success, stdout, stderr).
pub fn tcpdump_read(path: &Path, extra: &[&str]) -> (bool, String, String) {
    require_tool("tcpdump");
    let mut c = Command::new("tcpdump");
    c.arg("-r").arg(path).arg("-nn").args(extra);
    let o = run_timeout(&mut c, Duration::from_secs(30));
    (o.status.success(), stdout_of(&o), stderr_of(&o))
}

/// "aa:bb:cc:dd:ee:ff" → bytes (panics on malformed input).
pub fn mac_bytes(s: &str) -> [u8; 6] {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).unwrap_or_else(|_| panic!("bad MAC {s:?}")))
        .collect();
    parts.try_into().unwrap_or_else(|_| panic!("bad MAC {s:?}"))
}

pub fn mac_string(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Builds an Ethernet II frame.
pub fn eth_frame(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn to_hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// Deterministic xorshift PRNG (no deps).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() as usize) % (hi - lo)
    }
}

/// Numeric counter `key` of a ports entry (0 if absent).
pub fn counter(port: &Value, key: &str) -> u64 {
    port.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("ports entry has no numeric {key:?}: {port}"))
}

/// Drop counter `reason` of a ports entry (0 if absent: only nonzero reasons are listed).
pub fn drops(port: &Value, reason: &str) -> u64 {
    port.get("drops")
        .and_then(|d| d.get(reason))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// All drop counters of a ports entry.
pub fn all_drops(port: &Value) -> BTreeMap<String, u64> {
    port.get("drops")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// Finds an FDB entry by MAC (case-insensitive).
pub fn fdb_entry<'a>(fdb: &'a [Value], mac: &str) -> Option<&'a Value> {
    fdb.iter().find(|e| {
        e.get("mac")
            .and_then(Value::as_str)
            .map(|m| m.eq_ignore_ascii_case(mac))
            == Some(true)
    })
}

/// Polls `f` every 200 ms until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(200));
    }
}
