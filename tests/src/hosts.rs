//! Hosts for multi-host tests: a weft daemon inside a host namespace ([`HostDaemon`]),
//! underlays between host namespaces, a pcap [`Sniffer`], packet parsing basics and TCP
//! transfer helpers, shared by the overlay and cluster tests.

use crate::*;
use serde_json::Value;
use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A new cluster key (`weft keygen --out`) in `lab.dir/name`.
pub fn key_file(lab: &Lab, name: &str) -> PathBuf {
    let path = lab.dir.join(name);
    let o = run_timeout(
        Command::new(weft_bin())
            .arg("keygen")
            .arg("--out")
            .arg(&path),
        CLI_TIMEOUT,
    );
    assert!(o.status.success(), "weft keygen failed: {}", stderr_of(&o));
    path
}

/// IANA's VXLAN port, weft's default `--vxlan-port`.
pub const VXLAN_PORT: u16 = 4789;
/// A local experimental ethertype (IEEE 802 "local experimental 1") for marker frames.
pub const MARKER_ETHERTYPE: u16 = 0x88b5;

// ---------------------------------------------------------------------------
// python3 helpers run inside namespaces
// ---------------------------------------------------------------------------

/// Accepts one connection on argv[1]:argv[2], prints "ready" once listening; receives a
/// length-prefixed payload (8-byte big-endian length, then the bytes) and answers
/// "LENGTH SHA256HEX\n".
pub const UPLOAD_SERVER: &str = r#"
import hashlib, socket, struct, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4)
s.settimeout(45)
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(30)
hdr = b""
while len(hdr) < 8:
    b = c.recv(8 - len(hdr))
    if not b:
        sys.exit("connection closed in the length header")
    hdr += b
want = struct.unpack("!Q", hdr)[0]
h = hashlib.sha256()
n = 0
while n < want:
    b = c.recv(min(1 << 16, want - n))
    if not b:
        break
    h.update(b)
    n += len(b)
c.sendall(("%d %s\n" % (n, h.hexdigest())).encode())
c.close()
"#;

/// Sends the file argv[3] length-prefixed to argv[1]:argv[2] and prints the server's answer.
pub const UPLOAD_CLIENT: &str = r#"
import socket, struct, sys
data = open(sys.argv[3], "rb").read()
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=25)
s.sendall(struct.pack("!Q", len(data)) + data)
reply = b""
while not reply.endswith(b"\n"):
    b = s.recv(256)
    if not b:
        break
    reply += b
print(reply.decode().strip())
"#;

// ---------------------------------------------------------------------------
// a weft daemon inside a host namespace
// ---------------------------------------------------------------------------

/// `weft daemon` running inside a host namespace, with its own socket, state directory and
/// log under the lab's temp dir. SIGTERMed (then SIGKILLed) and reaped on drop, also when
/// the test panics; its log is printed then.
pub struct HostDaemon {
    /// Short name for messages and the daemon's directory under the lab's temp dir.
    pub label: String,
    /// The host namespace the daemon runs in.
    pub ns: String,
    /// Its underlay address (`--advertise`).
    pub addr: String,
    /// The node name the others list it under (`--node-name`, else the advertise address).
    pub node: String,
    /// The daemon's control socket.
    pub socket: PathBuf,
    /// The daemon's `--state-dir`.
    pub state_dir: PathBuf,
    /// The daemon's log (stdout and stderr, appended across restarts).
    pub log_path: PathBuf,
    /// Extra `weft daemon` arguments.
    pub extra: Vec<String>,
    child: Option<Child>,
}

impl HostDaemon {
    /// Starts `ip netns exec NS weft --socket S daemon --state-dir D --dns-upstream
    /// 127.0.0.1:9 --advertise ADDR extra...` and waits until its socket accepts connections.
    pub fn start(lab: &Lab, label: &str, ns: &str, addr: &str, extra: &[String]) -> HostDaemon {
        let dir = lab.dir.join(format!("daemon-{label}"));
        let state_dir = dir.join("state");
        fs::create_dir_all(&state_dir).expect("create the host daemon's state dir");
        let node = extra
            .iter()
            .position(|a| a == "--node-name")
            .and_then(|i| extra.get(i + 1))
            .cloned()
            .unwrap_or_else(|| addr.to_string());
        let mut d = HostDaemon {
            label: label.to_string(),
            ns: ns.to_string(),
            addr: addr.to_string(),
            node,
            socket: dir.join("weft.sock"),
            state_dir,
            log_path: dir.join("daemon.log"),
            extra: extra.to_vec(),
            child: None,
        };
        d.launch();
        d
    }

    /// (Re)starts the daemon process with the same arguments.
    pub fn launch(&mut self) {
        assert!(
            self.child.is_none(),
            "daemon {} is already running",
            self.label
        );
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open the host daemon's log");
        let log2 = log.try_clone().expect("clone the log fd");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(weft_bin())
            .arg("--socket")
            .arg(&self.socket)
            .arg("daemon")
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["--dns-upstream", "127.0.0.1:9", "--advertise", &self.addr])
            .args(&self.extra);
        // An empty RUST_LOG (as some environments set) would silence the log.
        if std::env::var("RUST_LOG").map_or(true, |v| v.trim().is_empty()) {
            cmd.env("RUST_LOG", "info");
        }
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start weft daemon {}: {e}", self.label));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = self.child.as_mut().unwrap().try_wait() {
                self.child = None;
                panic!(
                    "weft daemon {} (in {}) exited during startup ({st}); log:\n{}",
                    self.label,
                    self.ns,
                    self.log()
                );
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "weft daemon {}: socket {} did not accept connections within 10 s; log:\n{}",
                self.label,
                self.socket.display(),
                self.log()
            );
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGTERM and wait (<= 10 s); returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("daemon {} is not running", self.label));
        send_signal(child.id(), libc::SIGTERM);
        match wait_child(&mut child, Duration::from_secs(10)) {
            Some(st) => st,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "weft daemon {} did not exit within 10 s of SIGTERM; log:\n{}",
                    self.label,
                    self.log()
                );
            }
        }
    }

    /// SIGKILL (no chance to say goodbye to the cluster) and reap.
    pub fn kill9(&mut self) -> ExitStatus {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("daemon {} is not running", self.label));
        // `ip netns exec` execs the daemon, so the child's pid is the daemon's.
        send_signal(child.id(), libc::SIGKILL);
        wait_child(&mut child, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("daemon {} survived SIGKILL for 10 s", self.label))
    }

    /// True while the daemon process runs.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A `weft --socket S` command for this daemon.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(weft_bin());
        c.arg("--socket").arg(&self.socket);
        c
    }

    /// `weft args...` against this daemon.
    pub fn weft(&self, args: &[&str]) -> Output {
        run_timeout(self.cmd().args(args), CLI_TIMEOUT)
    }

    /// `weft network create NAME --driver overlay --vni VNI --subnet SUBNET` on this daemon,
    /// asserted to succeed; returns stdout.
    pub fn create_overlay(&self, name: &str, vni: &str, subnet: &str) -> String {
        self.weft_ok(&[
            "network", "create", name, "--driver", "overlay", "--vni", vni, "--subnet", subnet,
        ])
    }

    /// `weft args...`, asserted to succeed; returns stdout.
    pub fn weft_ok(&self, args: &[&str]) -> String {
        let o = self.weft(args);
        assert!(
            o.status.success(),
            "`weft {}` on {} failed ({}):\n{}{}",
            args.join(" "),
            self.label,
            o.status,
            stdout_of(&o),
            stderr_of(&o)
        );
        stdout_of(&o)
    }

    /// `weft --json args...`: Ok(parsed) or Err(description of the failure).
    pub fn try_json(&self, args: &[&str]) -> Result<Value, String> {
        let o = run_timeout(self.cmd().arg("--json").args(args), CLI_TIMEOUT);
        if !o.status.success() {
            return Err(format!(
                "`weft --json {}` on {} failed ({}):\n{}{}",
                args.join(" "),
                self.label,
                o.status,
                stdout_of(&o),
                stderr_of(&o)
            ));
        }
        serde_json::from_slice(&o.stdout).map_err(|e| {
            format!(
                "`weft --json {}` on {} printed invalid JSON ({e}):\n{}",
                args.join(" "),
                self.label,
                stdout_of(&o)
            )
        })
    }

    /// `weft --json args...`, asserted to succeed and print JSON.
    pub fn weft_json(&self, args: &[&str]) -> Value {
        self.try_json(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `weft --json args...`, asserted to print a JSON array.
    pub fn weft_array(&self, args: &[&str]) -> Vec<Value> {
        match self.weft_json(args) {
            Value::Array(a) => a,
            other => panic!(
                "`weft --json {}` on {} should print an array, printed {other}",
                args.join(" "),
                self.label
            ),
        }
    }

    /// Asserts a proper CLI failure (exit 1, "error: ...", one of `words`); returns stderr.
    pub fn weft_err(&self, args: &[&str], words: &[&str]) -> String {
        let o = self.weft(args);
        check_error(
            &o,
            &format!("weft {} (daemon {})", args.join(" "), self.label),
            words,
        )
    }

    /// `weft connect NET --netns NS extra...`: the new endpoint.
    pub fn connect(&self, net: &str, ns: &str, extra: &[&str]) -> Endpoint {
        let mut args = vec!["connect", net, "--netns", ns];
        args.extend_from_slice(extra);
        Endpoint::from_json(&self.weft_json(&args), ns)
    }

    /// `weft ports`.
    pub fn ports(&self) -> Vec<Value> {
        self.weft_array(&["ports"])
    }

    /// The `weft ports` row of port `name`; panics if there is none.
    pub fn port(&self, name: &str) -> Value {
        let ports = self.ports();
        ports
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no port named {name:?} in `weft ports --json` of {}: {ports:#?}",
                    self.label
                )
            })
    }

    /// `weft fdb NET`.
    pub fn fdb(&self, net: &str) -> Vec<Value> {
        self.weft_array(&["fdb", net])
    }

    /// `weft arp NET`.
    pub fn arp(&self, net: &str) -> Vec<Value> {
        self.weft_array(&["arp", net])
    }

    /// `weft peers`.
    pub fn peers(&self) -> Vec<Value> {
        self.weft_array(&["peers"])
    }

    /// `weft cluster`.
    pub fn cluster(&self) -> Value {
        self.weft_json(&["cluster"])
    }

    /// `weft network ls`.
    pub fn networks(&self) -> Vec<Value> {
        self.weft_array(&["network", "ls"])
    }

    /// The `weft network ls` row of `net`, if listed.
    pub fn network(&self, net: &str) -> Option<Value> {
        self.networks().into_iter().find(|n| n["name"] == net)
    }

    /// The state (`alive`, `suspect`, `dead`) under which this daemon lists `node`.
    pub fn peer_state(&self, node: &str) -> Option<String> {
        self.peer_row(node)
            .and_then(|p| p["state"].as_str().map(str::to_string))
    }

    /// The `weft peers` row of `node`, if listed.
    pub fn peer_row(&self, node: &str) -> Option<Value> {
        self.peers().into_iter().find(|p| p["name"] == node)
    }

    /// True if `weft ports` lists a port `name`.
    pub fn has_port(&self, name: &str) -> bool {
        self.ports().iter().any(|p| p["name"] == name)
    }

    /// The networks of the tunnels this daemon has to `node`, per `weft peers` ("" when
    /// none: the node is in no flood list here).
    pub fn tunnels_to(&self, node: &str) -> Option<String> {
        self.peer_row(node)
            .and_then(|p| p["network"].as_str().map(str::to_string))
    }

    /// `weft cluster`, `peers`, `network ls`, `ports`, `fdb`, `arp` and the end of the log,
    /// for failure messages. Never panics.
    pub fn diag(&self) -> String {
        let mut s = format!(
            "===== daemon {} (node {}, in {}) =====\n",
            self.label, self.node, self.ns
        );
        for args in [
            &["cluster"][..],
            &["peers"],
            &["network", "ls"],
            &["ports"],
            &["fdb"],
            &["arp"],
        ] {
            let o = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.weft(args)));
            match o {
                Ok(o) => s.push_str(&format!(
                    "--- weft {} ({}) ---\n{}{}",
                    args.join(" "),
                    o.status,
                    stdout_of(&o),
                    stderr_of(&o)
                )),
                Err(_) => s.push_str(&format!("--- weft {}: timed out ---\n", args.join(" "))),
            }
        }
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        s.push_str("--- log (last 40 lines) ---\n");
        for l in tail.iter().rev() {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

impl Drop for HostDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), libc::SIGTERM);
            if wait_child(&mut child, Duration::from_secs(5)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if thread::panicking() {
            eprintln!(
                "===== weft daemon {} (in {}) log ({}) =====\n{}\n===== end of log =====",
                self.label,
                self.ns,
                self.log_path.display(),
                self.log()
            );
        }
    }
}

/// Diagnostics of every daemon in `hosts` that is running.
pub fn diag_all(hosts: &mut [&mut HostDaemon]) -> String {
    hosts
        .iter_mut()
        .map(|h| {
            if h.running() {
                h.diag()
            } else {
                format!("===== daemon {} is not running =====\n", h.label)
            }
        })
        .collect::<Vec<_>>()
        .join("")
}

/// Diagnostics of daemons that are all running.
pub fn diag(hosts: &[&HostDaemon]) -> String {
    hosts.iter().map(|h| h.diag()).collect::<Vec<_>>().join("")
}

// ---------------------------------------------------------------------------
// underlays and captures
// ---------------------------------------------------------------------------

/// Runs `ip args...` (root namespace), asserts success.
pub fn ip(args: &[&str]) {
    let o = run_timeout(Command::new("ip").args(args), EXEC_TIMEOUT);
    assert!(
        o.status.success(),
        "`ip {}` failed ({}): {}",
        args.join(" "),
        o.status,
        stderr_of(&o)
    );
}

/// Joins two host namespaces with a veth pair named `ul0` on both sides, with the addresses
/// `a_ip/24` and `b_ip/24`.
pub fn veth_underlay(a: &str, a_ip: &str, b: &str, b_ip: &str) {
    ip(&[
        "link", "add", "ul0", "netns", a, "type", "veth", "peer", "name", "ul0", "netns", b,
    ]);
    for (ns, addr) in [(a, a_ip), (b, b_ip)] {
        ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "ul0"]);
        ip(&["-n", ns, "link", "set", "ul0", "up"]);
    }
}

/// A "switch" namespace with a Linux bridge `br0`; each host namespace gets `ul0` (address
/// `ADDR/24`) joined to the bridge by a veth pair. Returns the switch namespace.
pub fn switch_underlay(lab: &Lab, hosts: &[(&str, &str)]) -> String {
    let sw = lab.ns("sw");
    ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", &sw, "link", "set", "br0", "up"]);
    for (i, (ns, addr)) in hosts.iter().enumerate() {
        let port = format!("p{i}");
        ip(&[
            "link", "add", "ul0", "netns", ns, "type", "veth", "peer", "name", &port, "netns", &sw,
        ]);
        ip(&["-n", &sw, "link", "set", &port, "master", "br0"]);
        ip(&["-n", &sw, "link", "set", &port, "up"]);
        ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "ul0"]);
        ip(&["-n", ns, "link", "set", "ul0", "up"]);
    }
    sw
}

/// tcpdump writing a pcap (packet-buffered) inside a namespace.
pub struct Sniffer {
    bg: Bg,
    file: PathBuf,
    what: String,
}

impl Sniffer {
    /// Starts `tcpdump -i IFACE -n -U --immediate-mode -B 32768 -s 0 -w FILE FILTER...` in
    /// `ns` and waits until it is listening. (Without immediate mode, frames wait in the
    /// capture ring for up to a second and are lost when tcpdump is stopped; the 32 MiB
    /// buffer keeps a bulk transfer from overrunning it.)
    pub fn start(lab: &Lab, ns: &str, iface: &str, filter: &str, file_name: &str) -> Sniffer {
        let file = lab.dir.join(file_name);
        let mut args = vec![
            "tcpdump",
            "-i",
            iface,
            "-n",
            "-U",
            "--immediate-mode",
            "-B",
            "32768",
            "-s",
            "0",
            "-w",
            file.to_str().unwrap(),
        ];
        args.extend(filter.split_whitespace());
        let mut bg = lab.spawn_in(ns, &args);
        let what = format!("tcpdump -i {iface} {filter} (in {ns})");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !bg.stderr().contains("listening on") {
            assert!(
                bg.running(),
                "{what} exited before listening: {}",
                bg.stderr()
            );
            assert!(
                Instant::now() < deadline,
                "{what} not listening after 10 s: {}",
                bg.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
        Sniffer { bg, file, what }
    }

    /// Lets frames in flight arrive, stops tcpdump (SIGINT) and returns the captured frames.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        thread::sleep(Duration::from_millis(300));
        send_signal(self.bg.pid(), libc::SIGINT);
        self.bg.wait(Duration::from_secs(10));
        let pcap =
            read_pcap(&self.file).unwrap_or_else(|e| panic!("{}: unreadable pcap: {e}", self.what));
        assert_eq!(pcap.linktype, 1, "{}: not an Ethernet capture", self.what);
        pcap.frames
    }
}

// ---------------------------------------------------------------------------
// packets
// ---------------------------------------------------------------------------

/// The big-endian u16 at `b[off..off + 2]`.
pub fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// An IPv4 packet inside an Ethernet II frame.
#[derive(Clone, Copy)]
pub struct Ip4<'a> {
    /// The IPv4 header (with options).
    pub header: &'a [u8],
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Protocol number.
    pub proto: u8,
    /// A fragment (MF set or a fragment offset).
    pub fragment: bool,
    /// The total length field.
    pub total_len: usize,
    /// The payload, up to the total length.
    pub payload: &'a [u8],
}

/// The IPv4 packet in an Ethernet II frame, if it is one and well-formed.
pub fn ipv4(frame: &[u8]) -> Option<Ip4<'_>> {
    if frame.len() < 34 || be16(frame, 12) != 0x0800 {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(be16(ip, 2));
    if ip[0] >> 4 != 4 || ihl < 20 || total < ihl || total > ip.len() {
        return None;
    }
    Some(Ip4 {
        header: &ip[..ihl],
        src: ip[12..16].try_into().unwrap(),
        dst: ip[16..20].try_into().unwrap(),
        proto: ip[9],
        fragment: be16(ip, 6) & 0x3fff != 0,
        total_len: total,
        payload: &ip[ihl..total],
    })
}

/// Dotted-quad form of an IPv4 address.
pub fn ip_string(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// A 60-byte broadcast frame from `src` with the marker ethertype and `tag` in its payload.
pub fn marker_frame(src: [u8; 6], tag: &str) -> Vec<u8> {
    let mut payload = tag.as_bytes().to_vec();
    payload.resize(46, 0);
    eth_frame([0xff; 6], src, MARKER_ETHERTYPE, &payload)
}

/// The payload tag of a marker frame (up to the first NUL).
pub fn marker_tag(frame: &[u8]) -> Option<String> {
    if frame.len() < 14 || be16(frame, 12) != MARKER_ETHERTYPE {
        return None;
    }
    let p = &frame[14..];
    let end = p.iter().position(|b| *b == 0).unwrap_or(p.len());
    Some(String::from_utf8_lossy(&p[..end]).into_owned())
}

// ---------------------------------------------------------------------------
// traffic
// ---------------------------------------------------------------------------

/// `ping -c COUNT -W 1 -i 0.2 [extra] DST` in `ns`.
pub fn ping_ok(lab: &Lab, ns: &str, dst: &str, count: u32, extra: &[&str]) -> bool {
    let count = count.to_string();
    let mut args = vec!["ping", "-c", &count, "-W", "1", "-i", "0.2"];
    args.extend_from_slice(extra);
    args.push(dst);
    lab.exec(ns, &args).status.success()
}

/// Waits (<= 10 s) until `bg` prints "ready".
pub fn wait_ready(bg: &mut Bg, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bg.stdout().contains("ready") {
        assert!(
            bg.running(),
            "{what} exited before it was ready\nstdout: {}\nstderr: {}",
            bg.stdout(),
            bg.stderr()
        );
        assert!(
            Instant::now() < deadline,
            "{what} not ready after 10 s\nstderr: {}",
            bg.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// `n` random bytes in `lab.dir/name`; returns the path and "LEN SHA256".
pub fn random_file(lab: &Lab, name: &str, n: usize) -> (PathBuf, String) {
    let mut data = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut data))
        .expect("read /dev/urandom");
    let path = lab.dir.join(name);
    fs::write(&path, &data).expect("write the payload file");
    let o = run_timeout(Command::new("sha256sum").arg(&path), EXEC_TIMEOUT);
    let sum = stdout_of(&o)
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("sha256sum printed nothing: {}", stderr_of(&o)))
        .to_string();
    (path, format!("{n} {sum}"))
}

/// Sends `file` over TCP from `client_ns` to an upload server at `server_ip:port` in
/// `server_ns` and asserts that the server received exactly its bytes (`expect` is
/// "LEN SHA256"); `what` names the transfer in messages. Returns how long it took.
#[allow(clippy::too_many_arguments)]
pub fn transfer(
    lab: &Lab,
    what: &str,
    server_ns: &str,
    server_ip: &str,
    port: u16,
    client_ns: &str,
    file: &Path,
    expect: &str,
    hosts: &[&HostDaemon],
) -> Duration {
    let port = port.to_string();
    let mut server = lab.spawn_in(
        server_ns,
        &["python3", "-c", UPLOAD_SERVER, server_ip, &port],
    );
    wait_ready(&mut server, &format!("upload server for {what}"));
    let t0 = Instant::now();
    let o = lab.exec(
        client_ns,
        &[
            "python3",
            "-c",
            UPLOAD_CLIENT,
            server_ip,
            &port,
            file.to_str().unwrap(),
        ],
    );
    let took = t0.elapsed();
    let got = stdout_of(&o).trim().to_string();
    assert!(
        o.status.success() && got == expect,
        "TCP transfer {what}: server answered {got:?}, expected {expect:?} (after {took:?})\n\
         client stderr: {}\nserver stderr: {}\n{}",
        stderr_of(&o),
        server.stderr(),
        diag(hosts)
    );
    took
}

/// The tunnel port name to a VTEP (peer) at `addr` in VNI `vni`.
pub fn tunnel_name(vni: u32, addr: &str) -> String {
    format!("vx{vni}-{addr}")
}

/// Panics with a clear message unless `python3`, `tcpdump`, `sha256sum` and every tool in
/// `extra` are on PATH.
pub fn require_tools(extra: &[&str]) {
    for t in ["python3", "tcpdump", "sha256sum"].iter().chain(extra) {
        require_tool(t);
    }
}
