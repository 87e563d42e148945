//! VXLAN overlay networks (RFC 7348) with static peers, end to end.
//!
//! A "host" here is a network namespace with its own underlay address and its own weft daemon
//! started inside it (`ip netns exec HOST weft daemon --advertise ADDR`); containers are other
//! namespaces that host's daemon attaches. Hosts are joined by an underlay: a veth pair for
//! two hosts, or a "switch" namespace with a Linux bridge for more. The Lab's own daemon (in
//! the root namespace) is not started.
//!
//! - `kernel_vxlan_interop`: weft and a Linux `vxlan` device exchange pings and several MiB of
//!   TCP both ways, the overlay MTU is 1450, the kernel device's MAC is learned on the tunnel
//!   port, `weft peers` counts traffic.
//! - `vxlan_on_the_wire`: the datagrams weft sends, parsed from a pcap taken on the underlay.
//! - `three_weft_hosts`: three daemons, full mesh of static peers, ARP through head-end
//!   replication, split horizon (each broadcast arrives exactly once everywhere), TCP c1->c3.
//! - `hostile_vxlan_input`: forged and malformed datagrams are dropped by reason, nothing leaks
//!   into the overlay, the daemon keeps forwarding.
//! - `overlay_errors_and_persistence`: CLI errors leave nothing behind; the overlay network and
//!   its peers survive a daemon restart; `peer rm` stops forwarding.
//!
//! Addresses: underlays 10.171-10.175.0.0/24, overlays 10.191-10.195.0.0/24, one pair per test.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use weft_tests::*;

/// IANA's VXLAN port, weft's default `--vxlan-port`.
const VXLAN_PORT: u16 = 4789;
/// A local experimental ethertype (IEEE 802 "local experimental 1") for marker frames.
const MARKER_ETHERTYPE: u16 = 0x88b5;

// ---------------------------------------------------------------------------
// python3 helpers run inside namespaces
// ---------------------------------------------------------------------------

/// Accepts one connection on argv[1]:argv[2], prints "ready" once listening; receives a
/// length-prefixed payload (8-byte big-endian length, then the bytes) and answers
/// "LENGTH SHA256HEX\n".
const UPLOAD_SERVER: &str = r#"
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
const UPLOAD_CLIENT: &str = r#"
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

/// Opens several inner flows to argv[1]: one UDP datagram to each of the ports 7001..7008
/// (each from its own socket, so its own source port) and a TCP connection attempt to 7101
/// and 7102 (refused: nothing listens). Prints "done".
const FLOWS: &str = r#"
import socket, sys
dst = sys.argv[1]
for p in range(7001, 7009):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"weft-overlay-flow-%d" % p, (dst, p))
    s.close()
for p in (7101, 7102):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((dst, p))
    except OSError:
        pass
    s.close()
print("done")
"#;

/// Binds a UDP socket to argv[1] (any port) and sends every line of the file argv[4]
/// (hex, one datagram a line; an empty line is an empty datagram) to argv[2]:argv[3].
/// Prints how many were sent.
const UDP_SENDER: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
s.bind((sys.argv[1], 0))
n = 0
for line in open(sys.argv[4]):
    s.sendto(bytes.fromhex(line.strip()), (sys.argv[2], int(sys.argv[3])))
    n += 1
    time.sleep(0.005)
print(n)
"#;

// ---------------------------------------------------------------------------
// a weft daemon inside a host namespace
// ---------------------------------------------------------------------------

/// Sends `sig` to our own child `pid`.
fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: plain syscall on the pid of a child process we spawned and have not reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// `weft daemon` running inside a host namespace, with its own socket, state directory and
/// log under the lab's temp dir. SIGTERMed (then SIGKILLed) and reaped on drop, also when
/// the test panics; its log is printed then.
struct HostDaemon {
    label: String,
    ns: String,
    addr: String,
    socket: PathBuf,
    state_dir: PathBuf,
    log_path: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl HostDaemon {
    /// Starts `ip netns exec NS weft --socket S daemon --state-dir D --dns-upstream
    /// 127.0.0.1:9 --advertise ADDR extra...` and waits until its socket accepts connections.
    fn start(lab: &Lab, label: &str, ns: &str, addr: &str, extra: &[&str]) -> HostDaemon {
        let dir = lab.dir.join(format!("daemon-{label}"));
        let state_dir = dir.join("state");
        fs::create_dir_all(&state_dir).expect("create the host daemon's state dir");
        let mut d = HostDaemon {
            label: label.to_string(),
            ns: ns.to_string(),
            addr: addr.to_string(),
            socket: dir.join("weft.sock"),
            state_dir,
            log_path: dir.join("daemon.log"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        d.launch();
        d
    }

    /// (Re)starts the daemon process with the same arguments.
    fn launch(&mut self) {
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
        if std::env::var_os("RUST_LOG").is_none() {
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
    fn stop(&mut self) -> ExitStatus {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("daemon {} is not running", self.label));
        signal(child.id(), libc::SIGTERM);
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

    fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(weft_bin());
        c.arg("--socket").arg(&self.socket);
        c
    }

    fn weft(&self, args: &[&str]) -> Output {
        run_timeout(self.cmd().args(args), CLI_TIMEOUT)
    }

    fn weft_ok(&self, args: &[&str]) -> String {
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

    fn weft_json(&self, args: &[&str]) -> Value {
        let o = run_timeout(self.cmd().arg("--json").args(args), CLI_TIMEOUT);
        assert!(
            o.status.success(),
            "`weft --json {}` on {} failed ({}):\n{}{}",
            args.join(" "),
            self.label,
            o.status,
            stdout_of(&o),
            stderr_of(&o)
        );
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "`weft --json {}` on {} printed invalid JSON ({e}):\n{}",
                args.join(" "),
                self.label,
                stdout_of(&o)
            )
        })
    }

    fn weft_array(&self, args: &[&str]) -> Vec<Value> {
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
    fn weft_err(&self, args: &[&str], words: &[&str]) -> String {
        let o = self.weft(args);
        check_error(
            &o,
            &format!("weft {} (daemon {})", args.join(" "), self.label),
            words,
        )
    }

    fn connect(&self, net: &str, ns: &str, extra: &[&str]) -> Endpoint {
        let mut args = vec!["connect", net, "--netns", ns];
        args.extend_from_slice(extra);
        Endpoint::from_json(&self.weft_json(&args), ns)
    }

    fn ports(&self) -> Vec<Value> {
        self.weft_array(&["ports"])
    }

    fn port(&self, name: &str) -> Value {
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

    fn fdb(&self, net: &str) -> Vec<Value> {
        self.weft_array(&["fdb", net])
    }

    fn peers(&self) -> Vec<Value> {
        self.weft_array(&["peers"])
    }

    fn networks(&self) -> Vec<Value> {
        self.weft_array(&["network", "ls"])
    }

    /// `weft ports`, `weft peers`, `weft fdb` tables and the end of the log, for failure
    /// messages. Never panics.
    fn diag(&self) -> String {
        let mut s = format!("===== daemon {} (in {}) =====\n", self.label, self.ns);
        for args in [&["ports"][..], &["peers"], &["fdb"]] {
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
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        s.push_str("--- log (last 30 lines) ---\n");
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
            signal(child.id(), libc::SIGTERM);
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

fn diag_all(hosts: &[&HostDaemon]) -> String {
    hosts.iter().map(|h| h.diag()).collect::<Vec<_>>().join("")
}

// ---------------------------------------------------------------------------
// underlays, kernel VTEPs, captures
// ---------------------------------------------------------------------------

/// Runs `ip args...` (root namespace), asserts success.
fn ip(args: &[&str]) {
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
fn veth_underlay(a: &str, a_ip: &str, b: &str, b_ip: &str) {
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
fn switch_underlay(lab: &Lab, hosts: &[(&str, &str)]) -> String {
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

/// A Linux vxlan device `vx` in `ns` (VNI `vni`, UDP 4789, from `local`), flooding to the
/// weft VTEP at `remote` (`bridge fdb append 00:00:00:00:00:00 ... dst REMOTE`), MTU 1450,
/// with `overlay_cidr` on it. Returns its MAC.
fn kernel_vtep(ns: &str, vni: u32, local: &str, remote: &str, overlay_cidr: &str) -> String {
    let vni = vni.to_string();
    let port = VXLAN_PORT.to_string();
    ip(&[
        "-n", ns, "link", "add", "vx", "type", "vxlan", "id", &vni, "dstport", &port, "local",
        local,
    ]);
    let o = run_timeout(
        Command::new("ip").args([
            "netns",
            "exec",
            ns,
            "bridge",
            "fdb",
            "append",
            "00:00:00:00:00:00",
            "dev",
            "vx",
            "dst",
            remote,
        ]),
        EXEC_TIMEOUT,
    );
    assert!(
        o.status.success(),
        "bridge fdb append in {ns} failed: {}",
        stderr_of(&o)
    );
    ip(&["-n", ns, "link", "set", "vx", "mtu", "1450"]);
    ip(&["-n", ns, "addr", "add", overlay_cidr, "dev", "vx"]);
    ip(&["-n", ns, "link", "set", "vx", "up"]);
    link_mac(ns, "vx")
}

/// The MAC of `ifname` in `ns` (lower case).
fn link_mac(ns: &str, ifname: &str) -> String {
    let o = run_timeout(
        Command::new("ip").args(["-n", ns, "-o", "link", "show", ifname]),
        EXEC_TIMEOUT,
    );
    let out = stdout_of(&o);
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| panic!("no link/ether in `ip -n {ns} link show {ifname}`: {out}"))
}

/// The MTU of `ifname` in `ns`.
fn link_mtu(ns: &str, ifname: &str) -> u32 {
    let o = run_timeout(
        Command::new("ip").args(["-n", ns, "-o", "link", "show", ifname]),
        EXEC_TIMEOUT,
    );
    let out = stdout_of(&o);
    out.split_whitespace()
        .skip_while(|w| *w != "mtu")
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no mtu in `ip -n {ns} link show {ifname}`: {out}"))
}

/// tcpdump writing a pcap (packet-buffered) inside a namespace.
struct Sniffer {
    bg: Bg,
    file: PathBuf,
    what: String,
}

impl Sniffer {
    /// Starts `tcpdump -i IFACE -n -U --immediate-mode -B 32768 -s 0 -w FILE FILTER...` in
    /// `ns` and waits until it is listening. (Without immediate mode, frames wait in the
    /// capture ring for up to a second and are lost when tcpdump is stopped; the 32 MiB
    /// buffer keeps a bulk transfer from overrunning it.)
    fn start(lab: &Lab, ns: &str, iface: &str, filter: &str, file_name: &str) -> Sniffer {
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
    fn finish(mut self) -> Vec<Vec<u8>> {
        thread::sleep(Duration::from_millis(300));
        signal(self.bg.pid(), libc::SIGINT);
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

fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// RFC 1071 Internet checksum (0 when `data` includes a correct checksum field).
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet inside an Ethernet II frame.
#[derive(Clone, Copy)]
struct Ip4<'a> {
    header: &'a [u8],
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    fragment: bool,
    total_len: usize,
    payload: &'a [u8],
}

fn ipv4(frame: &[u8]) -> Option<Ip4<'_>> {
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

/// True if the UDP checksum field of `ip` holds just the pseudo-header sum (a checksum left
/// for offload to complete).
fn udp_checksum_partial(ip: &Ip4) -> bool {
    if ip.payload.len() < 8 {
        return false;
    }
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&ip.src);
    pseudo.extend_from_slice(&ip.dst);
    pseudo.push(0);
    pseudo.push(ip.proto);
    pseudo.extend_from_slice(&(ip.payload.len() as u16).to_be_bytes());
    let stored = u16::from_be_bytes([ip.payload[6], ip.payload[7]]);
    stored == !inet_checksum(&pseudo)
}

/// True if the TCP or UDP checksum of `ip` verifies.
fn l4_checksum_ok(ip: &Ip4) -> bool {
    let mut buf = Vec::with_capacity(12 + ip.payload.len());
    buf.extend_from_slice(&ip.src);
    buf.extend_from_slice(&ip.dst);
    buf.push(0);
    buf.push(ip.proto);
    buf.extend_from_slice(&(ip.payload.len() as u16).to_be_bytes());
    buf.extend_from_slice(ip.payload);
    inet_checksum(&buf) == 0
}

/// A VXLAN datagram (UDP destination port 4789, unfragmented) in a captured underlay frame.
struct Outer<'a> {
    ip: Ip4<'a>,
    sport: u16,
    dport: u16,
    udp_len: usize,
    udp_csum: u16,
    header: &'a [u8],
    inner: &'a [u8],
}

/// The VXLAN datagrams in a captured underlay frame. weft sends the segments of a TCP
/// superframe with UDP segmentation offload; on a veth the capture sees them still joined
/// (one IP packet, the datagrams back to back, each as long as its inner IPv4 packet says),
/// where a real NIC would put them on the wire one by one. Such a frame is split here.
fn vxlan_datagrams(frame: &[u8]) -> Vec<Outer<'_>> {
    let Some(ip) = ipv4(frame) else {
        return Vec::new();
    };
    if ip.proto != 17 || ip.fragment || ip.payload.len() < 16 {
        return Vec::new();
    }
    let udp = ip.payload;
    let dport = be16(udp, 2);
    if dport != VXLAN_PORT {
        return Vec::new();
    }
    let udp_len = usize::from(be16(udp, 4));
    let mut out = Vec::new();
    let mut pos = 8;
    while pos + 8 <= udp.len() {
        let rest = &udp[pos + 8..];
        // The inner frame ends where its IPv4 packet does; anything else is one datagram.
        let inner_len = match ipv4(rest) {
            Some(inner_ip) if rest.len() > 14 + inner_ip.total_len => 14 + inner_ip.total_len,
            _ => rest.len(),
        };
        out.push(Outer {
            sport: be16(udp, 0),
            dport,
            udp_len,
            udp_csum: be16(udp, 6),
            header: &udp[pos..pos + 8],
            inner: &rest[..inner_len],
            ip,
        });
        pos += 8 + inner_len;
    }
    out
}

/// A VXLAN datagram (header + inner frame) with arbitrary flags and VNI.
fn vxlan_payload(flags: u8, vni: u32, inner: &[u8]) -> Vec<u8> {
    let v = vni.to_be_bytes();
    let mut d = vec![flags, 0, 0, 0, v[1], v[2], v[3], 0];
    d.extend_from_slice(inner);
    d
}

/// A 60-byte broadcast frame from `src` with the marker ethertype and `tag` in its payload.
fn marker_frame(src: [u8; 6], tag: &str) -> Vec<u8> {
    let mut payload = tag.as_bytes().to_vec();
    payload.resize(46, 0);
    eth_frame([0xff; 6], src, MARKER_ETHERTYPE, &payload)
}

/// The payload tag of a marker frame (up to the first NUL).
fn marker_tag(frame: &[u8]) -> Option<String> {
    if frame.len() < 14 || be16(frame, 12) != MARKER_ETHERTYPE {
        return None;
    }
    let p = &frame[14..];
    let end = p.iter().position(|b| *b == 0).unwrap_or(p.len());
    Some(String::from_utf8_lossy(&p[..end]).into_owned())
}

fn ip_string(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

fn ip_bytes(s: &str) -> [u8; 4] {
    let v: Vec<u8> = s
        .split('.')
        .map(|p| p.parse().unwrap_or_else(|_| panic!("bad IPv4 {s:?}")))
        .collect();
    v.try_into().unwrap_or_else(|_| panic!("bad IPv4 {s:?}"))
}

/// What identifies an inner flow: MACs, ethertype, and for IPv4 the addresses, protocol and
/// (TCP/UDP) ports.
fn flow_key(inner: &[u8]) -> Vec<u8> {
    let mut k = inner[..inner.len().min(14)].to_vec();
    if let Some(ip) = ipv4(inner) {
        k.extend_from_slice(&ip.src);
        k.extend_from_slice(&ip.dst);
        k.push(ip.proto);
        if (ip.proto == 6 || ip.proto == 17) && !ip.fragment && ip.payload.len() >= 4 {
            k.extend_from_slice(&ip.payload[..4]);
        }
    }
    k
}

// ---------------------------------------------------------------------------
// traffic helpers
// ---------------------------------------------------------------------------

/// `ping -c COUNT -W 1 -i 0.2 [extra] DST` in `ns`.
fn ping_ok(lab: &Lab, ns: &str, dst: &str, count: u32, extra: &[&str]) -> bool {
    let count = count.to_string();
    let mut args = vec!["ping", "-c", &count, "-W", "1", "-i", "0.2"];
    args.extend_from_slice(extra);
    args.push(dst);
    lab.exec(ns, &args).status.success()
}

fn assert_ping(lab: &Lab, from: &str, to: &str, what: &str, hosts: &[&HostDaemon]) {
    if !ping_ok(lab, from, to, 2, &[]) {
        let d = lab.exec(from, &["sh", "-c", "ip addr; ip route; ip neigh"]);
        panic!(
            "ping {what} ({from} -> {to}) failed\n{}\n{}",
            stdout_of(&d),
            diag_all(hosts)
        );
    }
}

fn wait_ready(bg: &mut Bg, what: &str) {
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
fn random_file(lab: &Lab, name: &str, n: usize) -> (PathBuf, String) {
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
/// "LEN SHA256").
#[allow(clippy::too_many_arguments)]
fn transfer(
    lab: &Lab,
    what: &str,
    server_ns: &str,
    server_ip: &str,
    port: u16,
    client_ns: &str,
    file: &Path,
    expect: &str,
    hosts: &[&HostDaemon],
) {
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
    let got = stdout_of(&o).trim().to_string();
    assert!(
        o.status.success() && got == expect,
        "TCP transfer {what}: server answered {got:?}, expected {expect:?} (after {:?})\n\
         client stderr: {}\nserver stderr: {}\n{}",
        t0.elapsed(),
        stderr_of(&o),
        server.stderr(),
        diag_all(hosts)
    );
}

/// The tunnel port name of a peer.
fn tunnel_name(vni: u32, addr: &str) -> String {
    format!("vx{vni}-{addr}")
}

fn require_tools() {
    for t in ["python3", "tcpdump", "bridge", "sha256sum"] {
        require_tool(t);
    }
}

// ---------------------------------------------------------------------------
// 1. interop with the Linux kernel's vxlan device
// ---------------------------------------------------------------------------

#[test]
fn kernel_vxlan_interop() {
    require_tools();
    let lab = Lab::without_daemon();
    let (h1_ip, h2_ip) = ("10.171.0.1", "10.171.0.2");
    let (vni, kernel_ip) = (42u32, "10.191.0.100");
    let h1 = lab.ns("h1");
    let h2 = lab.ns("h2");
    let c1ns = lab.ns("c1");
    veth_underlay(&h1, h1_ip, &h2, h2_ip);
    let weft = HostDaemon::start(&lab, "h1", &h1, h1_ip, &[]);

    let out = weft.weft_ok(&[
        "network",
        "create",
        "ov",
        "--driver",
        "overlay",
        "--vni",
        "42",
        "--subnet",
        "10.191.0.0/24",
    ]);
    assert!(
        out.lines().any(|l| l.trim() == "ov"),
        "network create should print the name: {out:?}"
    );
    let inspect = weft.weft_json(&["network", "inspect", "ov"]);
    assert_eq!(inspect["driver"], "overlay", "inspect: {inspect:#}");
    assert_eq!(inspect["vni"], 42, "inspect: {inspect:#}");
    assert_eq!(
        inspect["mtu"], 1450,
        "an overlay network's MTU defaults to 1500 - 50: {inspect:#}"
    );
    let c1 = weft.connect("ov", &c1ns, &["--name", "c1"]);
    let tunnel = tunnel_name(vni, h2_ip);
    let row = weft.weft_json(&["peer", "add", h2_ip, "--vni", "42"]);
    assert_eq!(row["name"], tunnel.as_str(), "peer add --json: {row:#}");
    // Without --json, `peer add` prints the tunnel port's name (checked on a throwaway peer).
    let listed = weft.weft_ok(&["peer", "add", "10.171.0.77", "--vni", "42"]);
    assert!(
        listed.contains(&tunnel_name(vni, "10.171.0.77")),
        "`weft peer add` should print the tunnel port: {listed:?}"
    );
    weft.weft_ok(&["peer", "rm", "10.171.0.77", "--vni", "42"]);
    let kernel_mac = kernel_vtep(&h2, vni, h2_ip, h1_ip, &format!("{kernel_ip}/24"));
    let hosts = [&weft];

    // Ping both ways (the first one resolves ARP through the tunnel).
    assert!(
        lab.wait_ping(&c1ns, kernel_ip, Duration::from_secs(5)),
        "c1 ({}) cannot ping the kernel vxlan device ({kernel_ip})\n{}",
        c1.ip,
        diag_all(&hosts)
    );
    assert_ping(&lab, &h2, &c1.ip, "kernel vxlan -> c1", &hosts);

    // MTU: 1450 on the container; 1422 bytes of ICMP payload + 28 fit, 1423 do not.
    assert_eq!(
        link_mtu(&c1ns, &c1.ifname),
        1450,
        "c1's interface MTU on an overlay network"
    );
    assert!(
        ping_ok(&lab, &c1ns, kernel_ip, 2, &["-M", "do", "-s", "1422"]),
        "c1 -> kernel: a full-size (1450-byte) packet with DF does not get through\n{}",
        diag_all(&hosts)
    );
    assert!(
        ping_ok(&lab, &h2, &c1.ip, 2, &["-M", "do", "-s", "1422"]),
        "kernel -> c1: a full-size (1450-byte) packet with DF does not get through\n{}",
        diag_all(&hosts)
    );
    assert!(
        !ping_ok(&lab, &c1ns, kernel_ip, 1, &["-M", "do", "-s", "1423"]),
        "c1 sent a 1451-byte packet with DF: its MTU is not 1450"
    );

    // Several MiB of TCP each way, intact.
    let (file, expect) = random_file(&lab, "payload", 8 << 20);
    transfer(
        &lab,
        "c1 -> kernel vxlan",
        &h2,
        kernel_ip,
        5201,
        &c1ns,
        &file,
        &expect,
        &hosts,
    );
    transfer(
        &lab,
        "kernel vxlan -> c1",
        &c1ns,
        &c1.ip,
        5202,
        &h2,
        &file,
        &expect,
        &hosts,
    );

    // The kernel device's MAC is learned on the tunnel port, c1's on its own.
    let fdb = weft.fdb("ov");
    let e = fdb_entry(&fdb, &kernel_mac).unwrap_or_else(|| {
        panic!("the kernel vxlan device's MAC {kernel_mac} is not in `weft fdb ov`: {fdb:#?}")
    });
    assert_eq!(
        e["port"],
        tunnel.as_str(),
        "the kernel device's MAC should be learned on the tunnel port: {e}"
    );
    let e = fdb_entry(&fdb, &c1.mac)
        .unwrap_or_else(|| panic!("c1's MAC {} is not in the FDB: {fdb:#?}", c1.mac));
    assert!(c1.is_port(&e["port"]), "c1's MAC on the wrong port: {e}");

    // `weft peers` counts the traffic and has heard from the peer.
    let peers = weft.peers();
    assert_eq!(peers.len(), 1, "exactly one peer: {peers:#?}");
    let p = &peers[0];
    assert_eq!(p["name"], tunnel.as_str(), "{p:#}");
    assert_eq!(p["vtep"], format!("{h2_ip}:{VXLAN_PORT}"), "{p:#}");
    assert_eq!(p["vni"], 42, "{p:#}");
    assert_eq!(p["network"], "ov", "{p:#}");
    assert_eq!(p["state"], "static", "{p:#}");
    let (rx, tx) = (
        p["rx_packets"].as_u64().unwrap_or(0),
        p["tx_packets"].as_u64().unwrap_or(0),
    );
    assert!(
        rx >= 100 && tx >= 100,
        "after 16 MiB of TCP the peer should count traffic both ways: {p:#}"
    );
    let heard = p["last_heard_seconds"].as_f64().unwrap_or_else(|| {
        panic!("last_heard_seconds should be a number once the peer has sent: {p:#}")
    });
    assert!(
        (0.0..30.0).contains(&heard),
        "last_heard_seconds implausible: {p:#}"
    );
    let table = weft.weft_ok(&["peers"]);
    assert!(
        table.contains(&tunnel) && table.contains("static"),
        "`weft peers` table: {table}"
    );
    // The tunnel port and the VXLAN socket are ports of kind vxlan, without drops.
    let tp = weft.port(&tunnel);
    assert_eq!(tp["kind"], "vxlan", "{tp:#}");
    assert_eq!(tp["network"], "ov", "{tp:#}");
    let sock = weft.port(&format!("vxlan:{VXLAN_PORT}"));
    assert_eq!(sock["kind"], "vxlan", "{sock:#}");
    assert!(
        all_drops(&sock).is_empty(),
        "the VXLAN socket dropped well-formed traffic from a peer: {sock:#}"
    );
}

// ---------------------------------------------------------------------------
// 2. what weft puts on the wire
// ---------------------------------------------------------------------------

#[test]
fn vxlan_on_the_wire() {
    require_tools();
    let lab = Lab::without_daemon();
    let (h1_ip, h2_ip) = ("10.172.0.1", "10.172.0.2");
    // All three bytes of the VNI field non-zero, to catch byte-order mistakes.
    let (vni, kernel_ip) = (0x00ab_cdefu32, "10.192.0.100");
    let h1 = lab.ns("h1");
    let h2 = lab.ns("h2");
    let c1ns = lab.ns("c1");
    veth_underlay(&h1, h1_ip, &h2, h2_ip);
    let weft = HostDaemon::start(&lab, "h1", &h1, h1_ip, &[]);
    let vni_s = vni.to_string();
    weft.weft_ok(&[
        "network",
        "create",
        "ov",
        "--driver",
        "overlay",
        "--vni",
        &vni_s,
        "--subnet",
        "10.192.0.0/24",
    ]);
    let c1 = weft.connect("ov", &c1ns, &["--name", "c1"]);
    weft.weft_ok(&["peer", "add", h2_ip, "--vni", &vni_s]);
    let kernel_mac = kernel_vtep(&h2, vni, h2_ip, h1_ip, &format!("{kernel_ip}/24"));
    let hosts = [&weft];

    let underlay = Sniffer::start(&lab, &h2, "ul0", "udp", "underlay.pcap");
    let inside = Sniffer::start(&lab, &c1ns, &c1.ifname, "icmp", "c1.pcap");
    assert!(
        ping_ok(&lab, &c1ns, kernel_ip, 3, &[]),
        "c1 cannot ping the kernel vxlan device\n{}",
        diag_all(&hosts)
    );
    assert!(
        ping_ok(&lab, &c1ns, kernel_ip, 1, &["-M", "do", "-s", "1422"]),
        "c1 cannot send a full-size packet through the tunnel\n{}",
        diag_all(&hosts)
    );
    let o = lab.exec(&c1ns, &["python3", "-c", FLOWS, kernel_ip]);
    assert!(
        o.status.success() && stdout_of(&o).contains("done"),
        "flow generator failed: {}",
        stderr_of(&o)
    );
    // A bulk TCP flow: c1 hands weft superframes of up to 64 KiB (TSO on its TAP), which must
    // leave as MTU-sized segments with complete checksums.
    let (file, expect) = random_file(&lab, "payload", 2 << 20);
    transfer(
        &lab,
        "c1 -> kernel vxlan (captured)",
        &h2,
        kernel_ip,
        5204,
        &c1ns,
        &file,
        &expect,
        &hosts,
    );
    let inside = inside.finish();
    let wire = underlay.finish();

    let (me, peer) = (ip_bytes(h1_ip), ip_bytes(h2_ip));
    let c1_mac = c1.mac_bytes();
    let c1_ip = ip_bytes(&c1.ip);
    let kernel_ip_b = ip_bytes(kernel_ip);
    let mut from_weft = Vec::new();
    let mut from_kernel = 0;
    let mut fragments = 0;
    for f in &wire {
        if let Some(ip) = ipv4(f) {
            if ip.proto == 17 && ip.fragment {
                fragments += 1;
            }
        }
        for d in vxlan_datagrams(f) {
            if d.ip.src == me {
                from_weft.push(d);
            } else if d.ip.src == peer {
                from_kernel += 1;
            }
        }
    }
    assert!(
        from_kernel > 0,
        "the capture holds nothing from the kernel VTEP: is it working at all? ({} frames)",
        wire.len()
    );
    assert_eq!(
        fragments, 0,
        "VXLAN datagrams were fragmented on a 1500-byte underlay"
    );
    assert!(
        from_weft.len() >= 10,
        "only {} VXLAN datagrams from weft ({h1_ip}) on the underlay ({} frames)",
        from_weft.len(),
        wire.len()
    );

    // Every datagram weft sent: outer addresses and ports, lengths, checksums, VXLAN header.
    for (i, d) in from_weft.iter().enumerate() {
        let ctx = format!(
            "datagram #{i} from weft: outer {} -> {}, {}:{}, inner {} bytes {}",
            ip_string(d.ip.src),
            ip_string(d.ip.dst),
            d.sport,
            d.dport,
            d.inner.len(),
            to_hex(&d.inner[..d.inner.len().min(42)])
        );
        assert_eq!(d.ip.dst, peer, "{ctx}: outer destination is not the peer");
        assert_eq!(d.dport, VXLAN_PORT, "{ctx}");
        assert_eq!(
            inet_checksum(d.ip.header),
            0,
            "{ctx}: bad outer IPv4 header checksum"
        );
        assert_eq!(
            d.udp_len,
            d.ip.total_len - d.ip.header.len(),
            "{ctx}: the UDP length does not match the IP length"
        );
        // RFC 7348 §5: the outer UDP checksum SHOULD be 0, and a receiver accepts a non-zero
        // one. weft sends with UDP segmentation offload, which computes it; captured on a
        // veth it is still the partial (pseudo-header) sum that offload would complete.
        assert!(
            d.udp_csum == 0 || l4_checksum_ok(&d.ip) || udp_checksum_partial(&d.ip),
            "{ctx}: the outer UDP checksum {:#06x} is neither 0, valid, nor a partial sum",
            d.udp_csum
        );
        assert!(
            d.sport >= 49152,
            "{ctx}: the outer source port should be in the dynamic range 49152-65535 (RFC 7348 §5)"
        );
        assert_eq!(
            d.header[0], 0x08,
            "{ctx}: VXLAN flags should be exactly 0x08 (I flag)"
        );
        assert_eq!(
            &d.header[1..4],
            &[0, 0, 0],
            "{ctx}: reserved bytes 1-3 not zero"
        );
        let got_vni = u32::from_be_bytes([0, d.header[4], d.header[5], d.header[6]]);
        assert_eq!(got_vni, vni, "{ctx}: wrong VNI");
        assert_eq!(d.header[7], 0, "{ctx}: reserved byte 7 not zero");
        assert!(d.inner.len() >= 14, "{ctx}: inner frame too short");
    }

    // The ARP request c1 broadcast went out (head-end replication to the only peer).
    assert!(
        from_weft.iter().any(|d| d.inner[..6] == [0xff; 6]
            && d.inner[6..12] == c1_mac
            && be16(d.inner, 12) == 0x0806),
        "no ARP broadcast from c1 ({}) on the wire",
        c1.mac
    );

    // Every echo request c1 sent appears byte for byte as an inner frame, addressed to the
    // kernel device's MAC; the full-size one fills a 1500-byte outer packet.
    let requests: Vec<&Vec<u8>> = inside
        .iter()
        .filter(|f| {
            ipv4(f).is_some_and(|ip| ip.src == c1_ip && ip.proto == 1 && ip.payload[0] == 8)
        })
        .collect();
    assert_eq!(
        requests.len(),
        4,
        "c1's own capture should hold its 4 echo requests"
    );
    let kernel_mac_b = mac_bytes(&kernel_mac);
    for r in &requests {
        let d = from_weft
            .iter()
            .find(|d| d.inner == r.as_slice())
            .unwrap_or_else(|| {
                panic!(
                    "c1's echo request ({} bytes) is not on the wire unchanged: {}",
                    r.len(),
                    to_hex(&r[..r.len().min(60)])
                )
            });
        assert_eq!(d.inner[..6], kernel_mac_b, "inner destination MAC");
        assert_eq!(d.inner[6..12], c1_mac, "inner source MAC");
        let ip = ipv4(d.inner).unwrap();
        assert_eq!((ip.src, ip.dst), (c1_ip, kernel_ip_b), "inner addresses");
    }
    assert!(
        from_weft
            .iter()
            .any(|d| d.ip.total_len == 1500 && d.inner.len() == 1464),
        "no 1500-byte outer packet carrying c1's 1464-byte frame"
    );

    // The UDP and TCP flows: inner checksums complete, one outer source port per inner flow,
    // and not the same port for all flows.
    let mut sports: BTreeMap<Vec<u8>, BTreeSet<u16>> = BTreeMap::new();
    let mut udp_flows = BTreeSet::new();
    let mut tcp_flows = BTreeSet::new();
    for d in &from_weft {
        let Some(ip) = ipv4(d.inner) else { continue };
        if ip.src != c1_ip || !(ip.proto == 6 || ip.proto == 17) {
            continue;
        }
        assert_eq!(d.inner[6..12], c1_mac, "inner source MAC of a flow");
        let dport = be16(ip.payload, 2);
        assert!(
            l4_checksum_ok(&ip),
            "inner {} checksum to port {dport} is not complete/valid on the wire (a partial \
             checksum left for offload must be completed before encapsulation): {}",
            if ip.proto == 6 { "TCP" } else { "UDP" },
            to_hex(d.inner)
        );
        if ip.proto == 17 {
            udp_flows.insert(dport);
        } else {
            tcp_flows.insert(dport);
        }
        sports.entry(flow_key(d.inner)).or_default().insert(d.sport);
    }
    assert_eq!(
        udp_flows,
        (7001..=7008).collect::<BTreeSet<u16>>(),
        "the 8 UDP flows from c1 on the wire"
    );
    assert_eq!(
        tcp_flows,
        [5204, 7101, 7102].into_iter().collect::<BTreeSet<u16>>(),
        "the TCP flows from c1 on the wire"
    );
    let bulk: Vec<&Outer> = from_weft
        .iter()
        .filter(|d| {
            ipv4(d.inner)
                .is_some_and(|ip| ip.src == c1_ip && ip.proto == 6 && be16(ip.payload, 2) == 5204)
        })
        .collect();
    assert!(
        bulk.len() >= 500,
        "only {} datagrams of the 2 MiB transfer were captured",
        bulk.len()
    );
    let too_big: Vec<usize> = bulk
        .iter()
        .map(|d| d.inner.len())
        .filter(|&n| n > 1464)
        .collect();
    assert!(
        too_big.is_empty(),
        "inner frames larger than the overlay MTU (1450 + 14) left weft: sizes {too_big:?} \
         (TCP superframes must be segmented before encapsulation)"
    );
    for (k, s) in &sports {
        assert_eq!(
            s.len(),
            1,
            "one inner flow ({}) left with several outer source ports {s:?}: packets of a flow \
             may be reordered on an ECMP underlay",
            to_hex(k)
        );
    }
    let distinct: BTreeSet<u16> = sports.values().flatten().copied().collect();
    assert!(
        distinct.len() >= 2,
        "{} inner TCP/UDP flows all left with the same outer source port {distinct:?}: the \
         source port should come from a hash of the inner flow",
        sports.len()
    );
}

// ---------------------------------------------------------------------------
// 3. three weft hosts
// ---------------------------------------------------------------------------

#[test]
fn three_weft_hosts() {
    require_tools();
    let lab = Lab::without_daemon();
    let addrs = ["10.173.0.1", "10.173.0.2", "10.173.0.3"];
    let hns: Vec<String> = (1..=3).map(|i| lab.ns(&format!("h{i}"))).collect();
    switch_underlay(
        &lab,
        &[
            (&hns[0], addrs[0]),
            (&hns[1], addrs[1]),
            (&hns[2], addrs[2]),
        ],
    );
    let vni = 7003u32;
    let vni_s = vni.to_string();
    let daemons: Vec<HostDaemon> = (0..3)
        .map(|i| HostDaemon::start(&lab, &format!("h{}", i + 1), &hns[i], addrs[i], &[]))
        .collect();
    let hosts: Vec<&HostDaemon> = daemons.iter().collect();
    let mut eps = Vec::new();
    for (i, d) in daemons.iter().enumerate() {
        d.weft_ok(&[
            "network",
            "create",
            "ov",
            "--driver",
            "overlay",
            "--vni",
            &vni_s,
            "--subnet",
            "10.193.0.0/24",
        ]);
        for (j, a) in addrs.iter().enumerate() {
            if i != j {
                d.weft_ok(&["peer", "add", a, "--vni", &vni_s]);
            }
        }
        let cns = lab.ns(&format!("c{}", i + 1));
        let ip = format!("10.193.0.{}", 11 + i);
        let ep = d.connect("ov", &cns, &["--name", &format!("c{}", i + 1), "--ip", &ip]);
        assert_eq!(ep.ip, ip, "--ip was not honoured");
        eps.push(ep);
    }
    for d in &daemons {
        let peers = d.peers();
        assert_eq!(
            peers.len(),
            2,
            "{}: two peers expected: {peers:#?}",
            d.label
        );
    }

    // The very first packet from c1 to c2: the ARP request crosses the tunnels (head-end
    // replication) and is answered with c2's MAC.
    let o = lab.exec(&eps[0].ns, &["ping", "-c", "1", "-W", "3", &eps[1].ip]);
    assert!(
        o.status.success(),
        "the first ping c1 -> c2 (ARP resolved through the overlay) failed: {}\n{}",
        stdout_of(&o),
        diag_all(&hosts)
    );
    let neigh = lab.exec_ok(&eps[0].ns, &["ip", "neigh", "show", &eps[1].ip]);
    assert!(
        neigh.to_ascii_lowercase().contains(&eps[1].mac),
        "c1 resolved c2 ({}) to something else than its MAC {}: {neigh}",
        eps[1].ip,
        eps[1].mac
    );

    // All pairs.
    for a in &eps {
        for b in &eps {
            if a.name != b.name {
                assert_ping(
                    &lab,
                    &a.ns,
                    &b.ip,
                    &format!("{} -> {}", a.name, b.name),
                    &hosts,
                );
            }
        }
    }

    // Remote MACs are learned on the tunnel port of the host they live on.
    for (i, d) in daemons.iter().enumerate() {
        let fdb = d.fdb("ov");
        for (j, ep) in eps.iter().enumerate() {
            let e = fdb_entry(&fdb, &ep.mac).unwrap_or_else(|| {
                panic!(
                    "{}: MAC {} of {} not learned: {fdb:#?}",
                    d.label, ep.mac, ep.name
                )
            });
            if i == j {
                assert!(ep.is_port(&e["port"]), "{}: {e}", d.label);
            } else {
                assert_eq!(
                    e["port"],
                    tunnel_name(vni, addrs[j]).as_str(),
                    "{}: {}'s MAC should be learned on the tunnel to {}",
                    d.label,
                    ep.name,
                    addrs[j]
                );
            }
        }
    }

    // Split horizon: broadcasts from c1 reach c2 and c3 exactly once, the underlay carries
    // exactly one copy per peer from h1 and none from h2 or h3.
    let ul: Vec<Sniffer> = (0..3)
        .map(|i| Sniffer::start(&lab, &hns[i], "ul0", "udp", &format!("ul{i}.pcap")))
        .collect();
    let c2cap = Sniffer::start(
        &lab,
        &eps[1].ns,
        "eth0",
        "ether proto 0x88b5",
        "c2-marker.pcap",
    );
    let c3cap = Sniffer::start(
        &lab,
        &eps[2].ns,
        "eth0",
        "ether proto 0x88b5",
        "c3-marker.pcap",
    );
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|n| marker_frame(eps[0].mac_bytes(), &format!("weft-split-horizon-{n}")))
        .collect();
    assert_eq!(lab.send_frames(&eps[0].ns, "eth0", &frames), 3);
    let want: Vec<String> = (0..3).map(|n| format!("weft-split-horizon-{n}")).collect();
    for (cap, name) in [(c2cap, "c2"), (c3cap, "c3")] {
        let mut got: Vec<String> = cap.finish().iter().filter_map(|f| marker_tag(f)).collect();
        got.sort();
        assert_eq!(
            got,
            want,
            "{name} should receive each broadcast from c1 exactly once\n{}",
            diag_all(&hosts)
        );
    }
    let mut copies: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (i, cap) in ul.into_iter().enumerate() {
        for f in cap.finish() {
            for d in vxlan_datagrams(&f) {
                if let Some(tag) = marker_tag(d.inner) {
                    copies
                        .entry((ip_string(d.ip.src), ip_string(d.ip.dst)))
                        .or_default()
                        .push(format!("{tag} (seen at h{})", i + 1));
                }
            }
        }
    }
    let h1_to = |dst: &str| {
        let mut seen: Vec<String> = copies
            .get(&(addrs[0].to_string(), dst.to_string()))
            .cloned()
            .unwrap_or_default();
        seen.sort();
        seen
    };
    // Each h1 -> hN datagram is captured twice: leaving h1 and arriving at hN.
    for (n, dst) in [(2, addrs[1]), (3, addrs[2])] {
        let mut expected: Vec<String> = want
            .iter()
            .flat_map(|t| [format!("{t} (seen at h1)"), format!("{t} (seen at h{n})")])
            .collect();
        expected.sort();
        assert_eq!(
            h1_to(dst),
            expected,
            "h1 should send exactly one copy of each broadcast to {dst}; all marker copies: \
             {copies:#?}"
        );
    }
    assert_eq!(
        copies.len(),
        2,
        "marker broadcasts went over other tunnels than h1 -> h2 and h1 -> h3 (split horizon \
         violated): {copies:#?}"
    );

    // Several MiB of TCP from c1 to c3.
    let (file, expect) = random_file(&lab, "payload", 8 << 20);
    transfer(
        &lab,
        "c1 -> c3 (weft to weft)",
        &eps[2].ns,
        &eps[2].ip,
        5203,
        &eps[0].ns,
        &file,
        &expect,
        &hosts,
    );
    let p = daemons[0]
        .peers()
        .into_iter()
        .find(|p| p["name"] == tunnel_name(vni, addrs[2]).as_str())
        .expect("h1's peer h3");
    assert!(
        p["tx_packets"].as_u64().unwrap_or(0) >= 100,
        "h1 sent 8 MiB to h3: {p:#}"
    );
}

// ---------------------------------------------------------------------------
// 4. hostile input on the VXLAN socket
// ---------------------------------------------------------------------------

const VXLAN_DROPS: [&str; 4] = [
    "vxlan_not_peer",
    "vxlan_unknown_vni",
    "vxlan_bad_header",
    "runt",
];

#[test]
fn hostile_vxlan_input() {
    require_tools();
    let lab = Lab::without_daemon();
    let (h1_ip, h2_ip, x_ip) = ("10.174.0.1", "10.174.0.2", "10.174.0.3");
    let (vni, kernel_ip) = (4204u32, "10.194.0.100");
    let h1 = lab.ns("h1");
    let h2 = lab.ns("h2");
    let x = lab.ns("x");
    let c1ns = lab.ns("c1");
    switch_underlay(&lab, &[(&h1, h1_ip), (&h2, h2_ip), (&x, x_ip)]);
    let mut weft = HostDaemon::start(&lab, "h1", &h1, h1_ip, &[]);
    let vni_s = vni.to_string();
    weft.weft_ok(&[
        "network",
        "create",
        "ov",
        "--driver",
        "overlay",
        "--vni",
        &vni_s,
        "--subnet",
        "10.194.0.0/24",
    ]);
    let c1 = weft.connect("ov", &c1ns, &["--name", "c1"]);
    weft.weft_ok(&["peer", "add", h2_ip, "--vni", &vni_s]);
    kernel_vtep(&h2, vni, h2_ip, h1_ip, &format!("{kernel_ip}/24"));
    assert!(
        lab.wait_ping(&c1ns, kernel_ip, Duration::from_secs(5)),
        "c1 cannot ping the kernel VTEP before the test\n{}",
        weft.diag()
    );
    let sock_name = format!("vxlan:{VXLAN_PORT}");
    let tunnel = tunnel_name(vni, h2_ip);
    let marker_cap = Sniffer::start(&lab, &c1ns, &c1.ifname, "ether proto 0x88b5", "c1.pcap");

    let mut batch = 0;
    let mut send = |from_ns: &str, from_ip: &str, datagrams: &[Vec<u8>]| {
        batch += 1;
        let file = lab.dir.join(format!("batch{batch}.hex"));
        let text: String = datagrams.iter().map(|d| to_hex(d) + "\n").collect();
        fs::write(&file, text).expect("write datagrams");
        let port = VXLAN_PORT.to_string();
        let o = lab.exec(
            from_ns,
            &[
                "python3",
                "-c",
                UDP_SENDER,
                from_ip,
                h1_ip,
                &port,
                file.to_str().unwrap(),
            ],
        );
        assert!(
            o.status.success() && stdout_of(&o).trim() == datagrams.len().to_string(),
            "sending {} datagrams from {from_ip} failed: {}{}",
            datagrams.len(),
            stdout_of(&o),
            stderr_of(&o)
        );
    };
    // Waits until the VXLAN socket's drops reach `want` (reasons not named: unchanged), then
    // asserts them exactly.
    let expect_drops = |what: &str, want: &BTreeMap<&str, u64>| {
        let current = || {
            let p = weft.port(&sock_name);
            VXLAN_DROPS
                .iter()
                .map(|r| (*r, drops(&p, r)))
                .collect::<BTreeMap<&str, u64>>()
        };
        eventually(Duration::from_secs(5), || current() == *want);
        let p = weft.port(&sock_name);
        let got = current();
        assert_eq!(
            got,
            *want,
            "after {what}: drops of {sock_name} (all: {:?})\n{}",
            all_drops(&p),
            weft.diag()
        );
        assert_eq!(p["kind"], "vxlan", "{p:#}");
    };
    let mut want: BTreeMap<&str, u64> = {
        let p = weft.port(&sock_name);
        VXLAN_DROPS.iter().map(|r| (*r, drops(&p, r))).collect()
    };

    // Control: a well-formed datagram from the peer is delivered (flooded to c1) and its
    // source MAC learned on the tunnel port; nothing is dropped.
    let peer_mac = [0x02, 0, 0, 0x17, 0x04, 0x02];
    send(
        &h2,
        h2_ip,
        &[vxlan_payload(
            0x08,
            vni,
            &marker_frame(peer_mac, "from-peer"),
        )],
    );
    expect_drops("a valid datagram from the peer", &want);
    let fdb = weft.fdb("ov");
    let e = fdb_entry(&fdb, &mac_string(&peer_mac)).unwrap_or_else(|| {
        panic!(
            "a valid VXLAN datagram from the peer was not learned (crafted packet wrong?): \
             {fdb:#?}\n{}",
            weft.diag()
        )
    });
    assert_eq!(e["port"], tunnel.as_str(), "{e}");

    // A well-formed datagram of our VNI from an address that is not a peer.
    let stranger_mac = [0x02, 0, 0, 0x17, 0x04, 0x03];
    let forged = vxlan_payload(0x08, vni, &marker_frame(stranger_mac, "from-stranger"));
    send(&x, x_ip, &[forged.clone(), forged.clone(), forged]);
    *want.get_mut("vxlan_not_peer").unwrap() += 3;
    expect_drops("3 valid datagrams from a non-peer", &want);

    // From the peer's address: a VNI nobody uses.
    let unknown = vxlan_payload(0x08, 99, &marker_frame(peer_mac, "unknown-vni"));
    send(&h2, h2_ip, &[unknown.clone(), unknown]);
    *want.get_mut("vxlan_unknown_vni").unwrap() += 2;
    expect_drops("2 datagrams with VNI 99", &want);

    // Bad headers: wrong flags, reserved bits set, shorter than the header.
    let inner = marker_frame(peer_mac, "bad-header");
    let mut reserved1 = vxlan_payload(0x08, vni, &inner);
    reserved1[2] = 0x01;
    let mut reserved7 = vxlan_payload(0x08, vni, &inner);
    reserved7[7] = 0x80;
    let bad = vec![
        vxlan_payload(0x0c, vni, &inner),
        vxlan_payload(0x00, vni, &inner),
        vxlan_payload(0x88, vni, &inner),
        reserved1,
        reserved7,
        vec![0x08, 0, 0, 0],
        vec![0x08, 0, 0, 0, 0, 0x10, 0x6c],
        Vec::new(),
    ];
    let n_bad = bad.len() as u64;
    send(&h2, h2_ip, &bad);
    *want.get_mut("vxlan_bad_header").unwrap() += n_bad;
    expect_drops(
        "bad flags (0x0c, 0x00, 0x88), reserved bits, 7/4/0-byte datagrams",
        &want,
    );

    // Inner frames shorter than an Ethernet header.
    let runts = vec![
        vxlan_payload(0x08, vni, &[0xff; 10]),
        vxlan_payload(0x08, vni, &[0xff; 13]),
        vxlan_payload(0x08, vni, &[]),
    ];
    send(&h2, h2_ip, &runts);
    *want.get_mut("runt").unwrap() += 3;
    expect_drops("inner frames of 10, 13 and 0 bytes", &want);

    // Random garbage from the peer (first byte never 0x08: always a bad header).
    let mut rng = Rng::new(0x1704_dead_beef);
    let sizes = [
        1usize, 3, 8, 9, 15, 64, 100, 512, 1000, 1472, 4000, 9000, 65000,
    ];
    let garbage: Vec<Vec<u8>> = sizes
        .iter()
        .map(|&n| {
            let mut g = rng.bytes(n);
            if g[0] == 0x08 {
                g[0] = 0x09;
            }
            g
        })
        .collect();
    send(&h2, h2_ip, &garbage);
    *want.get_mut("vxlan_bad_header").unwrap() += sizes.len() as u64;
    expect_drops(&format!("garbage of sizes {sizes:?} from the peer"), &want);

    // Random garbage from the stranger: every datagram dropped, for one reason or another.
    let before: u64 = want.values().sum();
    let garbage: Vec<Vec<u8>> = (0..10)
        .map(|i| {
            let n = rng.range(1, 2000);
            let mut g = rng.bytes(n);
            if i % 2 == 0 {
                g[0] = 0x08;
            }
            g
        })
        .collect();
    send(&x, x_ip, &garbage);
    let total = || -> u64 {
        let p = weft.port(&sock_name);
        VXLAN_DROPS.iter().map(|r| drops(&p, r)).sum()
    };
    eventually(Duration::from_secs(5), || total() == before + 10);
    assert_eq!(
        total(),
        before + 10,
        "10 garbage datagrams from a non-peer should all be dropped and counted\n{}",
        weft.diag()
    );

    // Nothing but the control frame reached c1; no forged MAC was learned; the daemon is
    // alive and forwards.
    let fdb = weft.fdb("ov");
    assert!(
        fdb_entry(&fdb, &mac_string(&stranger_mac)).is_none(),
        "the non-peer's inner source MAC was learned: {fdb:#?}"
    );
    assert!(
        weft.alive(),
        "the daemon died on hostile input\n{}",
        weft.log()
    );
    assert!(
        ping_ok(&lab, &c1ns, kernel_ip, 2, &[]),
        "c1 cannot ping the kernel VTEP after the hostile input\n{}",
        weft.diag()
    );
    let tags: Vec<String> = marker_cap
        .finish()
        .iter()
        .filter_map(|f| marker_tag(f))
        .collect();
    assert_eq!(
        tags,
        vec!["from-peer".to_string()],
        "c1 should have received the peer's valid frame and nothing else"
    );
}

// ---------------------------------------------------------------------------
// 5. errors and persistence
// ---------------------------------------------------------------------------

fn sorted_strings(v: &[Value]) -> Vec<String> {
    let mut s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    s.sort();
    s
}

/// The fields of a peer row that must survive a restart (not counters or last heard).
fn peer_identity(v: &[Value]) -> Vec<String> {
    let mut s: Vec<String> = v
        .iter()
        .map(|p| {
            format!(
                "{} {} {} {} {}",
                p["name"], p["vtep"], p["vni"], p["network"], p["state"]
            )
        })
        .collect();
    s.sort();
    s
}

/// `network create NAME --subnet SUBNET extra...` as owned arguments.
fn create(name: &str, subnet: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["network", "create", name, "--subnet", subnet]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn overlay_errors_and_persistence() {
    require_tools();
    let lab = Lab::without_daemon();
    let (h1_ip, h2_ip) = ("10.175.0.1", "10.175.0.2");
    let (vni, kernel_ip) = (5005u32, "10.195.0.100");
    let vni_s = vni.to_string();
    let h1 = lab.ns("h1");
    let h2 = lab.ns("h2");
    let c1ns = lab.ns("c1");
    veth_underlay(&h1, h1_ip, &h2, h2_ip);
    let mut weft = HostDaemon::start(&lab, "h1", &h1, h1_ip, &[]);

    // Errors before anything exists.
    let nets0 = weft.networks();
    let err = weft.weft_err(
        &as_refs(&create("bad", "10.195.1.0/24", &["--vni", "77"])),
        &["overlay"],
    );
    assert!(
        err.contains("--driver"),
        "--vni without --driver overlay: {err}"
    );
    for bad_vni in ["0", "16777216", "99999999"] {
        let err = weft.weft_err(
            &as_refs(&create(
                "bad",
                "10.195.1.0/24",
                &["--driver", "overlay", "--vni", bad_vni],
            )),
            &["vni"],
        );
        assert!(
            err.contains("16777215"),
            "--vni {bad_vni}: the error should give the valid range: {err}"
        );
    }
    weft.weft_err(
        &["peer", "add", h2_ip, "--vni", &vni_s],
        &["no overlay network", "vni"],
    );
    assert_eq!(
        sorted_strings(&weft.networks()),
        sorted_strings(&nets0),
        "failed creates left networks behind"
    );
    assert!(weft.peers().is_empty(), "a failed peer add left a peer");

    // The overlay network, a container, the kernel peer.
    weft.weft_ok(&as_refs(&create(
        "ov",
        "10.195.0.0/24",
        &["--driver", "overlay", "--vni", &vni_s],
    )));
    let c1 = weft.connect("ov", &c1ns, &["--name", "c1"]);
    weft.weft_ok(&["peer", "add", h2_ip, "--vni", &vni_s]);
    kernel_vtep(&h2, vni, h2_ip, h1_ip, &format!("{kernel_ip}/24"));
    // A second peer on another UDP port (a kernel device with Linux's default port 8472).
    let row = weft.weft_json(&[
        "peer",
        "add",
        "10.175.0.9",
        "--vni",
        &vni_s,
        "--port",
        "8472",
    ]);
    assert_eq!(row["vtep"], "10.175.0.9:8472", "peer add --port: {row:#}");
    assert!(
        row["last_heard_seconds"].is_null() && row["rx_packets"] == 0,
        "a peer never heard from: last_heard_seconds should be null: {row:#}"
    );
    assert!(
        lab.wait_ping(&c1ns, kernel_ip, Duration::from_secs(5)),
        "c1 cannot ping the kernel VTEP\n{}",
        weft.diag()
    );

    // Errors with the overlay in place: nothing changes.
    let nets1 = weft.networks();
    let peers1 = weft.peers();
    assert_eq!(peers1.len(), 2, "{peers1:#?}");
    let err = weft.weft_err(
        &as_refs(&create(
            "ov2",
            "10.195.2.0/24",
            &["--driver", "overlay", "--vni", &vni_s],
        )),
        &["already"],
    );
    assert!(
        err.contains(&vni_s) && err.contains("\"ov\""),
        "a duplicate VNI: the error should name the VNI and its network: {err}"
    );
    weft.weft_err(&["peer", "add", h2_ip, "--vni", &vni_s], &["already"]);
    weft.weft_err(
        &["peer", "add", h2_ip, "--vni", "5999"],
        &["no overlay network"],
    );
    weft.weft_err(
        &["peer", "add", "not-an-address", "--vni", &vni_s],
        &["address"],
    );
    weft.weft_err(&["peer", "add", "224.0.0.1", "--vni", &vni_s], &["unicast"]);
    weft.weft_err(
        &["peer", "rm", "10.175.0.99", "--vni", &vni_s],
        &["not a peer"],
    );
    assert_eq!(
        sorted_strings(&weft.networks()),
        sorted_strings(&nets1),
        "failed commands changed the networks"
    );
    assert_eq!(
        peer_identity(&weft.peers()),
        peer_identity(&peers1),
        "failed commands changed the peers"
    );
    // The largest VNI is accepted.
    weft.weft_ok(&as_refs(&create(
        "ovmax",
        "10.195.3.0/24",
        &["--driver", "overlay", "--vni", "16777215"],
    )));
    let v = weft.weft_json(&["network", "inspect", "ovmax"]);
    assert_eq!(v["vni"], 16_777_215, "{v:#}");
    weft.weft_ok(&["network", "rm", "ovmax"]);

    // A second daemon in the same namespace cannot open the same VXLAN port; with another
    // --vxlan-port it can.
    let other = HostDaemon::start(&lab, "h1-second", &h1, h1_ip, &[]);
    let err = other.weft_err(
        &as_refs(&create(
            "ov",
            "10.195.0.0/24",
            &["--driver", "overlay", "--vni", "5006"],
        )),
        &["in use"],
    );
    assert!(
        err.contains("--vxlan-port") && err.contains(&VXLAN_PORT.to_string()),
        "the port-in-use error should name the port and --vxlan-port: {err}"
    );
    assert!(
        other.networks().is_empty(),
        "the failed overlay create left a network: {:#?}",
        other.networks()
    );
    assert!(
        !other.ports().iter().any(|p| p["kind"] == "vxlan"),
        "the failed overlay create left a VXLAN port: {:#?}",
        other.ports()
    );
    // The name was not reserved by the failed attempt.
    other.weft_ok(&as_refs(&create("ov", "10.195.0.0/24", &[])));
    drop(other);
    let third = HostDaemon::start(&lab, "h1-third", &h1, h1_ip, &["--vxlan-port", "4790"]);
    third.weft_ok(&as_refs(&create(
        "ov",
        "10.195.0.0/24",
        &["--driver", "overlay", "--vni", "5006"],
    )));
    let p = third.port("vxlan:4790");
    assert_eq!(p["kind"], "vxlan", "{p:#}");
    drop(third);
    assert!(
        weft.alive() && ping_ok(&lab, &c1ns, kernel_ip, 2, &[]),
        "the first daemon stopped forwarding while others came and went\n{}",
        weft.diag()
    );

    // Restart: the overlay network, the endpoint and both peers come back and forward.
    let inspect0 = weft.weft_json(&["network", "inspect", "ov"]);
    let st = weft.stop();
    assert!(st.success(), "daemon exit on SIGTERM: {st}\n{}", weft.log());
    assert!(
        !ping_ok(&lab, &c1ns, kernel_ip, 1, &[]),
        "ping through the tunnel works with the daemon stopped?!"
    );
    weft.launch();
    assert!(
        lab.wait_ping(&c1ns, kernel_ip, Duration::from_secs(10)),
        "c1 -> kernel VTEP does not work again after the restart\n{}",
        weft.diag()
    );
    assert_ping(&lab, &h2, &c1.ip, "kernel -> c1 after restart", &[&weft]);
    let inspect1 = weft.weft_json(&["network", "inspect", "ov"]);
    assert_eq!(
        inspect1, inspect0,
        "network inspect changed across the restart"
    );
    assert_eq!(inspect1["driver"], "overlay", "{inspect1:#}");
    assert_eq!(inspect1["vni"], vni, "{inspect1:#}");
    assert_eq!(
        peer_identity(&weft.peers()),
        peer_identity(&peers1),
        "the peers changed across the restart"
    );
    let table = weft.weft_ok(&["peers"]);
    assert!(
        table.contains(&tunnel_name(vni, h2_ip)) && table.contains("10.175.0.9:8472"),
        "`weft peers` after the restart: {table}"
    );
    for name in [tunnel_name(vni, h2_ip), tunnel_name(vni, "10.175.0.9")] {
        assert_eq!(weft.port(&name)["kind"], "vxlan");
    }

    // peer rm: the port goes, forwarding over it stops; adding it back restores it.
    weft.weft_ok(&["peer", "rm", "10.175.0.9", "--vni", &vni_s]);
    weft.weft_ok(&["peer", "rm", h2_ip, "--vni", &vni_s]);
    assert!(weft.peers().is_empty(), "{:#?}", weft.peers());
    let fdb = weft.fdb("ov");
    assert!(
        !fdb.iter()
            .any(|e| e["port"].as_str().is_some_and(|n| n.starts_with("vx"))),
        "FDB entries still point at removed tunnel ports: {fdb:#?}"
    );
    let ports = weft.ports();
    assert!(
        !ports
            .iter()
            .any(|p| p["kind"] == "vxlan" && p["network"] == "ov"),
        "tunnel ports left after peer rm: {ports:#?}"
    );
    assert!(
        !ping_ok(&lab, &c1ns, kernel_ip, 2, &[]),
        "ping through the tunnel still works after `peer rm`\n{}",
        weft.diag()
    );
    weft.weft_ok(&["peer", "add", h2_ip, "--vni", &vni_s]);
    assert!(
        lab.wait_ping(&c1ns, kernel_ip, Duration::from_secs(5)),
        "c1 -> kernel VTEP does not work after the peer was added back\n{}",
        weft.diag()
    );

    // Removing the overlay network removes its peers, also from the saved state.
    weft.weft_ok(&["network", "rm", "ov", "--force"]);
    assert!(
        weft.peers().is_empty(),
        "peers outlived their network: {:#?}",
        weft.peers()
    );
    weft.weft_err(
        &["peer", "add", h2_ip, "--vni", &vni_s],
        &["no overlay network"],
    );
    let st = weft.stop();
    assert!(st.success(), "daemon exit on SIGTERM: {st}\n{}", weft.log());
    weft.launch();
    assert!(
        weft.peers().is_empty() && weft.networks().is_empty(),
        "removed network or peers came back after a restart: {:#?} {:#?}",
        weft.networks(),
        weft.peers()
    );
}

// ---------------------------------------------------------------------------
// 6. the host's own VTEP given as a peer
// ---------------------------------------------------------------------------

/// `weft peer add` of the daemon's own --advertise address is a plausible slip (the same
/// peer list pasted on every host). weft may refuse it, or accept it, but it must not break
/// forwarding between the host's own containers: its floods must not come back to it as
/// frames from a "remote" VTEP that steal the local endpoints' MACs.
#[test]
fn own_vtep_as_peer_is_harmless() {
    require_tools();
    let lab = Lab::without_daemon();
    let (h1_ip, h2_ip) = ("10.176.0.1", "10.176.0.2");
    let h1 = lab.ns("h1");
    let h2 = lab.ns("h2");
    veth_underlay(&h1, h1_ip, &h2, h2_ip);
    let weft = HostDaemon::start(&lab, "h1", &h1, h1_ip, &[]);
    weft.weft_ok(&as_refs(&create(
        "ov",
        "10.196.0.0/24",
        &["--driver", "overlay", "--vni", "6006"],
    )));
    let c1 = weft.connect("ov", &lab.ns("c1"), &["--name", "c1"]);
    let c2 = weft.connect("ov", &lab.ns("c2"), &["--name", "c2"]);
    weft.weft_ok(&["peer", "add", h2_ip, "--vni", "6006"]);
    assert_ping(&lab, &c1.ns, &c2.ip, "c1 -> c2", &[&weft]);

    let o = weft.weft(&["peer", "add", h1_ip, "--vni", "6006"]);
    if !o.status.success() {
        // Refused: fine, as long as it is a proper error.
        check_error(&o, "weft peer add OWN_ADDRESS", &[]);
        return;
    }
    // Any broadcast from a local container (ARP for a non-endpoint address, DHCP, mDNS...)
    // is flooded to every peer; here a marker frame from c1, then c2 pings c1.
    for round in 0..3 {
        for ep in [&c1, &c2] {
            lab.exec_ok(&ep.ns, &["ip", "neigh", "flush", "all"]);
        }
        let frame = marker_frame(c1.mac_bytes(), &format!("own-vtep-{round}"));
        assert_eq!(lab.send_frames(&c1.ns, "eth0", &[frame]), 1);
        thread::sleep(Duration::from_millis(200));
        let o = lab.exec(&c2.ns, &["ping", "-c", "3", "-i", "0.2", "-W", "1", &c1.ip]);
        let fdb = weft.fdb("ov");
        let c1_entry = fdb_entry(&fdb, &c1.mac).cloned();
        assert!(
            o.status.success()
                && stdout_of(&o).contains(" 3 received")
                && c1_entry.as_ref().is_some_and(|e| c1.is_port(&e["port"])),
            "round {round}: after `weft peer add {h1_ip}` (this daemon's own --advertise \
             address) was accepted, a broadcast from c1 comes back through the \"tunnel\" to \
             itself and moves c1's MAC off its port; c2 -> c1 pings are lost:\n{}\n\
             c1's FDB entry: {c1_entry:?}\n{}",
            stdout_of(&o),
            weft.diag()
        );
    }
}
