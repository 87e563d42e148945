//! Published ports (docker -p/-P): the daemon listens on host sockets and carries TCP and UDP
//! to a container port through its userspace TCP/IP stack. `weft publish`, `weft connect -p/-P`,
//! `weft unpublish`, the "published" lists of `weft ports` and `network inspect`, persistence
//! across a daemon restart, hairpin traffic from a container to a host address, and the errors.
//!
//! Host ports come from the kernel (bind port 0, close) or from weft itself (-P); a block of
//! 100 is found by binding 100 consecutive ports from a random base. Another test running in
//! parallel may take a port between the check and the daemon's bind, so the helpers pick a
//! new port when the daemon answers "in use".

use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weft_tests::*;

// ---------------------------------------------------------------------------
// scripts run in the containers and on the host
// ---------------------------------------------------------------------------

/// UDP echo server: answers `echo:` + datagram + `|` + the peer it saw.
const UDP_ECHO: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(4096)
    s.sendto(b"echo:" + data + b"|" + ("%s:%d" % peer).encode(), peer)
"#;

/// N UDP clients (each its own socket) send to 127.0.0.1:PORT, ROUNDS rounds, all clients
/// sending before any reads; each must get back its own datagram, from 127.0.0.1:PORT, and
/// never another client's. Prints "ok PEERS..." (per client, the peers the server saw) or
/// "FAIL reason".
const UDP_CLIENTS: &str = r#"
import socket, sys
port, nclients, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
dst = ("127.0.0.1", port)
socks = []
for _ in range(nclients):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.5)
    socks.append(s)
peers = [set() for _ in socks]
def fail(msg):
    print("FAIL " + msg, flush=True)
    sys.exit(0)
for r in range(rounds):
    msgs = [("c%d-r%d-" % (i, r)).encode() + b"x" * (1 + (i * 7 + r * 397) % 1200)
            for i in range(nclients)]
    pending = set(range(nclients))
    for attempt in range(4):
        if not pending:
            break
        for i in sorted(pending):
            socks[i].sendto(msgs[i], dst)
        for i in sorted(pending):
            while True:
                try:
                    data, addr = socks[i].recvfrom(4096)
                except socket.timeout:
                    break
                if addr != dst:
                    fail("client %d got a reply from %r, expected it from %r" % (i, addr, dst))
                if not data.startswith(b"echo:"):
                    fail("client %d got %r, not an echo" % (i, data[:80]))
                body, _, peer = data[5:].rpartition(b"|")
                tag = body.split(b"-", 1)[0]
                if tag != ("c%d" % i).encode():
                    fail("client %d got the reply meant for %r: %r" % (i, tag, data[:80]))
                if body == msgs[i]:
                    peers[i].add(peer.decode())
                    pending.discard(i)
                    break
                # else: a late duplicate of this client's echo from an earlier attempt
    if pending:
        fail("no echo for client(s) %s in round %d after 4 attempts" % (sorted(pending), r))
print("ok " + " ".join(",".join(sorted(p)) for p in peers), flush=True)
"#;

/// One process listening on BASE..BASE+N-1; every connection gets its own port number, then EOF.
const RANGE_SERVER: &str = r#"
import selectors, socket, sys
base, n = int(sys.argv[1]), int(sys.argv[2])
sel = selectors.DefaultSelector()
for p in range(base, base + n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", p))
    s.listen(16)
    sel.register(s, selectors.EVENT_READ, p)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        try:
            c, _ = key.fileobj.accept()
        except OSError:
            continue
        try:
            c.sendall(str(key.data).encode())
        except OSError:
            pass
        finally:
            c.close()
"#;

/// Connects to HOST:BASE+i for i < N and expects the answer EXPECT+i. Prints "ok" or the
/// mismatches, one a line.
const RANGE_CLIENT: &str = r#"
import socket, sys, time
host, base, n, expect = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
bad = []
deadline = time.time() + 30
for i in range(n):
    p = base + i
    if time.time() > deadline:
        bad.append("gave up at port %d: 30 s passed" % p)
        break
    try:
        s = socket.create_connection((host, p), timeout=3)
        data = b""
        while True:
            d = s.recv(100)
            if not d:
                break
            data += d
        s.close()
        if data != str(expect + i).encode():
            bad.append("port %d answered %r, expected %d" % (p, data, expect + i))
    except Exception as e:
        bad.append("port %d: %r" % (p, e))
print("\n".join(bad) if bad else "ok", flush=True)
"#;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

fn show(o: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        stdout_of(o),
        stderr_of(o)
    )
}

/// The last lines of the daemon log, for panic messages.
fn log_tail(lab: &Lab) -> String {
    let log = lab.daemon_log();
    let lines: Vec<&str> = log.lines().collect();
    let start = lines.len().saturating_sub(40);
    format!(
        "--- daemon log (last {} lines) ---\n{}",
        lines.len() - start,
        lines[start..].join("\n")
    )
}

fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    nanos ^ ((std::process::id() as u64) << 32)
}

/// A host port the kernel considers free for `proto` on 0.0.0.0 (bound to port 0 and closed).
fn free_port(proto: Proto) -> u16 {
    match proto {
        Proto::Tcp => TcpListener::bind(("0.0.0.0", 0))
            .and_then(|l| l.local_addr())
            .expect("bind a TCP port 0")
            .port(),
        Proto::Udp => UdpSocket::bind(("0.0.0.0", 0))
            .and_then(|s| s.local_addr())
            .expect("bind a UDP port 0")
            .port(),
    }
}

/// The first of `n` consecutive TCP ports that are all free on 0.0.0.0, from a random base
/// (below the usual ephemeral range, so that outgoing connections rarely sit on them).
fn free_block(n: u16) -> u16 {
    let mut rng = Rng::new(seed());
    for _ in 0..200 {
        let base = rng.range(20000, 32000) as u16;
        let mut held = Vec::new();
        let all = (0..n).all(|i| match TcpListener::bind(("0.0.0.0", base + i)) {
            Ok(l) => {
                held.push(l);
                true
            }
            Err(_) => false,
        });
        drop(held);
        if all {
            return base;
        }
    }
    panic!("no block of {n} free TCP ports found in 20000..32000");
}

fn tcp_free(port: u16) -> bool {
    TcpListener::bind(("0.0.0.0", port)).is_ok()
}

fn udp_free(port: u16) -> bool {
    UdpSocket::bind(("0.0.0.0", port)).is_ok()
}

/// A TCP connect to IP:PORT on the host: Ok if something accepted it.
fn tcp_connect(ip: &str, port: u16) -> std::io::Result<()> {
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map(|_| ())
}

fn assert_listening(lab: &Lab, ip: &str, port: u16, what: &str) {
    if let Err(e) = tcp_connect(ip, port) {
        panic!(
            "{what}: nothing accepts TCP connections on {ip}:{port} ({e})\n{}",
            log_tail(lab)
        );
    }
}

/// Asserts that a TCP connect to IP:PORT is refused (waiting up to `grace` for a listener
/// that is being closed).
fn assert_refused(lab: &Lab, ip: &str, port: u16, grace: Duration, what: &str) {
    let mut last = None;
    let ok = eventually(grace, || {
        let r = tcp_connect(ip, port);
        let refused = matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionRefused);
        last = Some(r);
        refused
    });
    assert!(
        ok,
        "{what}: TCP connect to {ip}:{port} should be refused, got {last:?}\n{}",
        log_tail(lab)
    );
}

/// `IP:HOST->CONTAINER/PROTO`
fn mapping(ip: &str, host: u16, container: u16, proto: Proto) -> String {
    format!("{ip}:{host}->{container}/{}", proto.as_str())
}

fn bad_mapping(s: &str) -> ! {
    panic!("{s:?} is not a mapping of the form IP:HOST_PORT->CONTAINER_PORT/PROTO")
}

/// Parses `IP:HOST->CONTAINER/PROTO`.
fn parse_mapping(s: &str) -> (String, u16, u16, String) {
    let (left, right) = s.trim().split_once("->").unwrap_or_else(|| bad_mapping(s));
    let (ip, host) = left.rsplit_once(':').unwrap_or_else(|| bad_mapping(s));
    let (cport, proto) = right.split_once('/').unwrap_or_else(|| bad_mapping(s));
    (
        ip.to_string(),
        host.parse().unwrap_or_else(|_| bad_mapping(s)),
        cport.parse().unwrap_or_else(|_| bad_mapping(s)),
        proto.to_string(),
    )
}

/// Non-empty trimmed lines.
fn lines(s: &str) -> BTreeSet<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// A port number in JSON (a number, or tolerated: a numeric string).
fn json_port(v: &Value, what: &str) -> u16 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or_else(|| panic!("{what}: {v} is not a port number"))
}

/// A "published" array of strings (absent = empty).
fn published_field(v: &Value, what: &str) -> BTreeSet<String> {
    match v.get("published") {
        None | Some(Value::Null) => BTreeSet::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .unwrap_or_else(|| panic!("{what}: \"published\" holds a non-string {x}"))
                    .to_string()
            })
            .collect(),
        Some(other) => panic!("{what}: \"published\" is not an array: {other}"),
    }
}

/// The endpoint's "published" list per `weft ports --json`.
fn published_in_ports(lab: &Lab, ep: &str) -> BTreeSet<String> {
    published_field(&lab.port(ep), &format!("`weft ports --json` row {ep}"))
}

/// The endpoint's "published" list per `weft network inspect NET`.
fn published_in_inspect(lab: &Lab, net: &str, ep: &str) -> BTreeSet<String> {
    let eps = lab.endpoints(net);
    let e = eps
        .iter()
        .find(|e| e["name"] == ep)
        .unwrap_or_else(|| panic!("endpoint {ep} not in `network inspect {net}`: {eps:?}"));
    published_field(e, &format!("`network inspect {net}` endpoint {ep}"))
}

fn assert_listed(lab: &Lab, net: &str, ep: &str, m: &str) {
    let p = published_in_ports(lab, ep);
    assert!(
        p.contains(m),
        "{m} missing from \"published\" of {ep} in `weft ports --json`: {p:?}"
    );
    let i = published_in_inspect(lab, net, ep);
    assert!(
        i.contains(m),
        "{m} missing from \"published\" of {ep} in `weft network inspect {net}`: {i:?}"
    );
}

fn assert_not_listed(lab: &Lab, net: &str, ep: &str, m: &str) {
    let p = published_in_ports(lab, ep);
    assert!(
        !p.contains(m),
        "{m} still in \"published\" of {ep} in `weft ports --json`: {p:?}"
    );
    let i = published_in_inspect(lab, net, ep);
    assert!(
        !i.contains(m),
        "{m} still in \"published\" of {ep} in `weft network inspect {net}`: {i:?}"
    );
}

/// Runs `run(port)` with ports from `pick` until it succeeds, retrying (up to 5 times) only
/// while the failure says "in use": somebody took the port between our check and the bind.
fn retry_in_use(
    lab: &Lab,
    what: &str,
    pick: impl Fn() -> u16,
    run: impl Fn(u16) -> Output,
) -> (u16, Output) {
    let mut last = None;
    for _ in 0..5 {
        let port = pick();
        let o = run(port);
        if o.status.success() {
            return (port, o);
        }
        if !stderr_of(&o).to_ascii_lowercase().contains("in use") {
            panic!(
                "{what} (host port {port}) failed: {}\n{}",
                show(&o),
                log_tail(lab)
            );
        }
        last = Some(o);
    }
    panic!(
        "{what}: host ports kept being \"in use\" (5 tries): {}",
        show(&last.unwrap())
    );
}

/// `weft publish EP H:CONTAINER[/udp]` with a free host port H; asserts the one output line.
fn publish_one(lab: &Lab, ep: &str, container: u16, proto: Proto) -> u16 {
    let spec = |h: u16| match proto {
        Proto::Tcp => format!("{h}:{container}"),
        Proto::Udp => format!("{h}:{container}/udp"),
    };
    let (h, o) = retry_in_use(
        lab,
        &format!("weft publish {ep} H:{container}/{}", proto.as_str()),
        || free_port(proto),
        |h| lab.weft(&["publish", ep, &spec(h)]),
    );
    let want = mapping("0.0.0.0", h, container, proto);
    assert_eq!(
        lines(&stdout_of(&o)),
        BTreeSet::from([want.clone()]),
        "`weft publish {ep} {}` should print exactly {want:?}",
        spec(h)
    );
    h
}

/// A directory served by the container's web server, with an index.html holding a unique token.
fn make_www(lab: &Lab, name: &str) -> (PathBuf, String) {
    let dir = lab.dir.join(name);
    fs::create_dir_all(&dir).expect("create www dir");
    let token = format!("weft-publish-{}-{name}-{:x}", lab.prefix, seed());
    fs::write(
        dir.join("index.html"),
        format!("<html><body>{token}</body></html>\n"),
    )
    .expect("write index.html");
    (dir, token)
}

/// Waits until a background process printed `needle` (panics if it exits or times out).
fn wait_stdout(bg: &mut Bg, needle: &str, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    loop {
        if bg.stdout().contains(needle) {
            return;
        }
        if !bg.running() {
            thread::sleep(Duration::from_millis(100));
            panic!(
                "{what} exited before printing {needle:?}\nstdout: {}\nstderr: {}",
                bg.stdout(),
                bg.stderr()
            );
        }
        if Instant::now() >= deadline {
            panic!(
                "{what} did not print {needle:?} within {timeout:?}\nstdout: {}\nstderr: {}",
                bg.stdout(),
                bg.stderr()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// `python3 -m http.server 80` serving `dir` inside `ns`; returns once it serves `token`
/// inside the namespace (so later failures are weft's, not the server's).
fn start_http(lab: &Lab, ns: &str, dir: &Path, token: &str) -> Bg {
    let dir = dir.to_str().unwrap();
    let mut bg = lab.spawn_in(
        ns,
        &[
            "python3",
            "-u",
            "-m",
            "http.server",
            "80",
            "--bind",
            "0.0.0.0",
            "--directory",
            dir,
        ],
    );
    let mut last = String::new();
    let ok = eventually(Duration::from_secs(10), || {
        if !bg.running() {
            return false;
        }
        let o = lab.exec(
            ns,
            &[
                "curl",
                "-sS",
                "--max-time",
                "2",
                "http://127.0.0.1:80/index.html",
            ],
        );
        last = show(&o);
        stdout_of(&o).contains(token)
    });
    assert!(
        ok,
        "the web server in {ns} does not serve its index.html locally\nlast curl: {last}\nserver stdout: {}\nserver stderr: {}",
        bg.stdout(),
        bg.stderr()
    );
    bg
}

fn curl_host(args: &[&str]) -> Output {
    require_tool("curl");
    run_timeout(Command::new("curl").args(args), Duration::from_secs(40))
}

/// GET `url` from the host namespace; asserts it returns `token`.
fn expect_token_from_host(lab: &Lab, url: &str, token: &str, what: &str) {
    let o = curl_host(&["-sS", "--max-time", "10", url]);
    assert!(
        o.status.success() && stdout_of(&o).contains(token),
        "{what}: `curl {url}` on the host should return {token:?}: {}\n{}",
        show(&o),
        log_tail(lab)
    );
}

/// GET `url` inside `ns`; asserts it returns `token`.
fn expect_token_from_ns(lab: &Lab, ns: &str, url: &str, token: &str, what: &str) {
    let o = lab.exec(ns, &["curl", "-sS", "--max-time", "10", url]);
    assert!(
        o.status.success() && stdout_of(&o).contains(token),
        "{what}: `curl {url}` in {ns} should return {token:?}: {}\n{}",
        show(&o),
        log_tail(lab)
    );
}

/// GET `url` inside `ns` (None: the host) must fail.
fn expect_curl_fails(lab: &Lab, ns: Option<&str>, url: &str, token: &str, what: &str) {
    let args = ["curl", "-sS", "--max-time", "5", url];
    let o = match ns {
        Some(ns) => lab.exec(ns, &args),
        None => curl_host(&args[1..]),
    };
    assert!(
        !o.status.success() && !stdout_of(&o).contains(token),
        "{what}: `curl {url}` in {} should fail: {}",
        ns.unwrap_or("the host namespace"),
        show(&o)
    );
}

/// Runs UDP_CLIENTS on the host; asserts "ok" and returns, per client, the peers the
/// container's server saw.
fn udp_clients(lab: &Lab, port: u16, clients: u32, rounds: u32, what: &str) -> Vec<String> {
    let o = run_timeout(
        Command::new("python3").args([
            "-c",
            UDP_CLIENTS,
            &port.to_string(),
            &clients.to_string(),
            &rounds.to_string(),
        ]),
        Duration::from_secs(40),
    );
    let out = stdout_of(&o);
    let Some(peers) = out.trim().strip_prefix("ok") else {
        panic!(
            "{what}: UDP through 127.0.0.1:{port} failed: {}\n{}",
            show(&o),
            log_tail(lab)
        );
    };
    peers.split_whitespace().map(str::to_string).collect()
}

// ---------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------

/// `weft publish EP H:80` makes the container's web server answer on the host's port H,
/// small and large (8 MiB) responses intact, concurrent requests too; the mapping is listed.
#[test]
fn tcp_published_port_serves_the_container_web_server() {
    root_or_skip!();
    require_tool("curl");
    let lab = Lab::new();
    lab.create_network("n", "10.181.1.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let (www, token) = make_www(&lab, "www");
    let big = Rng::new(seed()).bytes(8 << 20);
    fs::write(www.join("big.bin"), &big).expect("write big.bin");
    let _server = start_http(&lab, &a.ns, &www, &token);

    let hp = publish_one(&lab, &a.name, 80, Proto::Tcp);
    assert_listening(&lab, "127.0.0.1", hp, "right after `weft publish` returned");
    let url = format!("http://127.0.0.1:{hp}/index.html");
    expect_token_from_host(&lab, &url, &token, "published port");

    // 8 MiB of random bytes arrive intact.
    let got_path = lab.dir.join("big.got");
    let big_url = format!("http://127.0.0.1:{hp}/big.bin");
    let o = curl_host(&[
        "-sS",
        "--max-time",
        "25",
        "-o",
        got_path.to_str().unwrap(),
        &big_url,
    ]);
    assert!(
        o.status.success(),
        "`curl {big_url}` failed: {}\n{}",
        show(&o),
        log_tail(&lab)
    );
    let got = fs::read(&got_path).expect("read the downloaded file");
    if got != big {
        let first = got.iter().zip(&big).position(|(x, y)| x != y);
        panic!(
            "big.bin arrived damaged through the published port: {} bytes received, {} sent, \
             first difference at byte {first:?}",
            got.len(),
            big.len()
        );
    }

    // Several connections at once through the one listener.
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            thread::spawn(move || curl_host(&["-sS", "--max-time", "10", &url]))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let o = h.join().expect("curl thread");
        assert!(
            o.status.success() && stdout_of(&o).contains(&token),
            "concurrent request {i} through the published port failed: {}\n{}",
            show(&o),
            log_tail(&lab)
        );
    }

    let m = mapping("0.0.0.0", hp, 80, Proto::Tcp);
    assert_listed(&lab, "n", &a.name, &m);
    assert_eq!(
        published_in_ports(&lab, &a.name),
        BTreeSet::from([m.clone()]),
        "`weft ports --json` should list exactly the one mapping"
    );
}

/// `-P` / `--publish-all` let weft pick free host ports (JSON and text output), and
/// `weft connect -p/-P` publishes at connect time (on a veth endpoint).
#[test]
fn publish_all_picks_host_ports_and_connect_publishes() {
    root_or_skip!();
    require_tool("curl");
    let lab = Lab::new();
    lab.create_network("n", "10.181.2.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let (www, token) = make_www(&lab, "www-a");
    let _sa = start_http(&lab, &a.ns, &www, &token);

    // -P with --json
    let v = lab.weft_json(&["publish", &a.name, "-P", "80"]);
    let rows = v
        .as_array()
        .unwrap_or_else(|| panic!("`weft --json publish -P 80` should print an array: {v}"));
    assert_eq!(rows.len(), 1, "one mapping expected: {v}");
    let r = &rows[0];
    assert_eq!(r["host_ip"], "0.0.0.0", "{r}");
    assert_eq!(json_port(&r["container_port"], "container_port"), 80, "{r}");
    assert_eq!(r["protocol"], "tcp", "{r}");
    let hp = json_port(&r["host_port"], "host_port");
    assert_ne!(hp, 0, "-P must report the port it bound, not 0: {r}");
    expect_token_from_host(
        &lab,
        &format!("http://127.0.0.1:{hp}/index.html"),
        &token,
        "port chosen by -P",
    );
    assert_listed(&lab, "n", &a.name, &mapping("0.0.0.0", hp, 80, Proto::Tcp));

    // -P repeated, --publish-all, UDP; text output.
    let out = lab.weft_ok(&["publish", &a.name, "-P", "8080", "--publish-all", "81/udp"]);
    let got: Vec<_> = lines(&out).iter().map(|l| parse_mapping(l)).collect();
    assert_eq!(got.len(), 2, "two mappings expected, printed {out:?}");
    let tcp = got
        .iter()
        .find(|m| m.2 == 8080 && m.3 == "tcp")
        .unwrap_or_else(|| panic!("no ->8080/tcp line in {out:?}"));
    let udp = got
        .iter()
        .find(|m| m.2 == 81 && m.3 == "udp")
        .unwrap_or_else(|| panic!("no ->81/udp line in {out:?}"));
    for m in [tcp, udp] {
        assert_eq!(m.0, "0.0.0.0", "{out:?}");
        assert!(m.1 != 0 && m.1 != hp, "bad host port chosen: {out:?}");
    }
    assert_listening(&lab, "127.0.0.1", tcp.1, "-P 8080");
    assert!(
        !udp_free(udp.1),
        "--publish-all 81/udp printed host port {} but nothing holds that UDP port",
        udp.1
    );
    for (ip, h, c, p) in [tcp, udp] {
        let proto = if p == "udp" { Proto::Udp } else { Proto::Tcp };
        assert_listed(&lab, "n", &a.name, &mapping(ip, *h, *c, proto));
    }

    // At connect time: -p H:80 and -P 80 on a veth endpoint.
    let nsb = lab.ns("b");
    let (hb, o) = retry_in_use(
        &lab,
        "weft connect -p H:80 -P 80",
        || free_port(Proto::Tcp),
        |h| {
            lab.weft(&[
                "--json",
                "connect",
                "n",
                "--netns",
                &nsb,
                "--kind",
                "veth",
                "-p",
                &format!("{h}:80"),
                "-P",
                "80",
            ])
        },
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "`weft --json connect` printed invalid JSON ({e}): {}",
            show(&o)
        )
    });
    let b = Endpoint::from_json(&v, &nsb);
    let published = published_field(&v, "`weft --json connect` output");
    let fixed = mapping("0.0.0.0", hb, 80, Proto::Tcp);
    assert_eq!(published.len(), 2, "connect output \"published\": {v}");
    assert!(published.contains(&fixed), "{fixed} not in {published:?}");
    let picked = published
        .iter()
        .find(|m| **m != fixed)
        .map(|m| parse_mapping(m))
        .unwrap();
    assert_eq!(
        (picked.0.as_str(), picked.2, picked.3.as_str()),
        ("0.0.0.0", 80, "tcp"),
        "connect -P 80 mapping: {published:?}"
    );
    assert!(picked.1 != 0 && picked.1 != hb, "{published:?}");

    let (www_b, token_b) = make_www(&lab, "www-b");
    let _sb = start_http(&lab, &b.ns, &www_b, &token_b);
    for h in [hb, picked.1] {
        expect_token_from_host(
            &lab,
            &format!("http://127.0.0.1:{h}/index.html"),
            &token_b,
            "port published by `weft connect` (veth endpoint)",
        );
    }
    assert_eq!(
        published_in_ports(&lab, &b.name),
        published,
        "`weft ports --json` and `weft connect --json` disagree on b's mappings"
    );
    assert_eq!(published_in_inspect(&lab, "n", &b.name), published);
    // a's mappings did not move to b
    assert_eq!(published_in_ports(&lab, &a.name).len(), 3);
}

/// `weft publish EP H:7000/udp`: datagrams from host clients reach the container's server and
/// each client gets its own answers, from the published address.
#[test]
fn udp_published_port_answers_each_host_client() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.181.3.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let mut server = lab.spawn_in(&a.ns, &["python3", "-c", UDP_ECHO, "7000"]);
    wait_stdout(
        &mut server,
        "ready",
        Duration::from_secs(10),
        "UDP echo server",
    );

    let hu = publish_one(&lab, &a.name, 7000, Proto::Udp);
    assert!(
        !udp_free(hu),
        "UDP port {hu} is not held by anybody after `weft publish`"
    );
    // One client first, then two interleaved clients.
    udp_clients(&lab, hu, 1, 2, "one client");
    let peers = udp_clients(&lab, hu, 2, 5, "two clients");
    assert_eq!(peers.len(), 2, "{peers:?}");
    let p0: BTreeSet<&str> = peers[0].split(',').collect();
    let p1: BTreeSet<&str> = peers[1].split(',').collect();
    assert!(
        p0.is_disjoint(&p1),
        "two host clients appeared in the container as the same peer: {peers:?}"
    );

    assert_listed(
        &lab,
        "n",
        &a.name,
        &mapping("0.0.0.0", hu, 7000, Proto::Udp),
    );
    // A UDP mapping opens no TCP listener.
    assert_refused(
        &lab,
        "127.0.0.1",
        hu,
        Duration::ZERO,
        "TCP to a port published only for UDP",
    );
    assert!(
        server.running(),
        "the echo server died: {}",
        server.stderr()
    );
}

/// A range of 100 host ports maps port by port onto 100 container ports.
#[test]
fn a_range_of_100_ports_maps_port_by_port() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.181.4.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let mut server = lab.spawn_in(&a.ns, &["python3", "-c", RANGE_SERVER, "9000", "100"]);
    wait_stdout(
        &mut server,
        "ready",
        Duration::from_secs(15),
        "100-port server",
    );
    let local = lab.exec_ok(
        &a.ns,
        &[
            "python3",
            "-c",
            RANGE_CLIENT,
            "127.0.0.1",
            "9000",
            "100",
            "9000",
        ],
    );
    assert_eq!(local.trim(), "ok", "the server does not work locally");

    let (base, o) = retry_in_use(
        &lab,
        "weft publish B-B+99:9000-9099",
        || free_block(100),
        |b| lab.weft(&["publish", &a.name, &format!("{b}-{}:9000-9099", b + 99)]),
    );
    let want: BTreeSet<String> = (0..100u16)
        .map(|i| mapping("0.0.0.0", base + i, 9000 + i, Proto::Tcp))
        .collect();
    let got = lines(&stdout_of(&o));
    assert_eq!(
        got,
        want,
        "`weft publish {base}-{}:9000-9099` should print one line per port",
        base + 99
    );

    let o = run_timeout(
        Command::new("python3").args([
            "-c",
            RANGE_CLIENT,
            "127.0.0.1",
            &base.to_string(),
            "100",
            "9000",
        ]),
        Duration::from_secs(40),
    );
    assert_eq!(
        stdout_of(&o).trim(),
        "ok",
        "host ports {base}..{} do not map one to one onto 9000..9099: {}\n{}",
        base + 99,
        show(&o),
        log_tail(&lab)
    );

    let listed = published_in_ports(&lab, &a.name);
    assert_eq!(
        listed, want,
        "`weft ports --json` should list the 100 mappings"
    );
    assert_eq!(published_in_inspect(&lab, "n", &a.name), want);
}

/// Hairpin: a container reaches another container's published port through a host address
/// (gateway NAT out to the host, the published port back in); an outside peer reaches it too;
/// HOST_IP restricts where the port listens.
#[test]
fn hairpin_and_host_ip_of_a_published_port() {
    root_or_skip!();
    require_tool("curl");
    let lab = Lab::new();
    let out = lab.outside(230);
    let host_ip = "10.230.0.1";
    lab.create_network("n", "10.181.5.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &[]);
    let (www, token) = make_www(&lab, "www");
    let _server = start_http(&lab, &a.ns, &www, &token);
    let hp = publish_one(&lab, &a.name, 80, Proto::Tcp);
    let url = format!("http://{host_ip}:{hp}/index.html");

    expect_token_from_ns(&lab, &b.ns, &url, &token, "hairpin from another container");
    expect_token_from_ns(
        &lab,
        &a.ns,
        &url,
        &token,
        "hairpin from the container itself",
    );
    expect_token_from_ns(&lab, &out, &url, &token, "from a peer outside weft");
    expect_token_from_host(&lab, &url, &token, "host address from the host");

    // HOST_IP 127.0.0.1: only loopback listens.
    let (h_lo, o) = retry_in_use(
        &lab,
        "weft publish 127.0.0.1:H:80",
        || free_port(Proto::Tcp),
        |h| lab.weft(&["publish", &a.name, &format!("127.0.0.1:{h}:80")]),
    );
    let m_lo = mapping("127.0.0.1", h_lo, 80, Proto::Tcp);
    assert_eq!(lines(&stdout_of(&o)), BTreeSet::from([m_lo.clone()]));
    expect_token_from_host(
        &lab,
        &format!("http://127.0.0.1:{h_lo}/index.html"),
        &token,
        "127.0.0.1 mapping",
    );
    let url_lo = format!("http://{host_ip}:{h_lo}/index.html");
    expect_curl_fails(&lab, Some(&out), &url_lo, &token, "127.0.0.1 mapping");
    expect_curl_fails(&lab, Some(&b.ns), &url_lo, &token, "127.0.0.1 mapping");
    assert_listed(&lab, "n", &a.name, &m_lo);

    // HOST_IP 10.230.0.1: not on loopback, but through the host address.
    let (h_ip, o) = retry_in_use(
        &lab,
        "weft publish 10.230.0.1:H:80",
        || free_port(Proto::Tcp),
        |h| lab.weft(&["publish", &a.name, &format!("{host_ip}:{h}:80")]),
    );
    let m_ip = mapping(host_ip, h_ip, 80, Proto::Tcp);
    assert_eq!(lines(&stdout_of(&o)), BTreeSet::from([m_ip.clone()]));
    assert_refused(
        &lab,
        "127.0.0.1",
        h_ip,
        Duration::ZERO,
        "a port published on 10.230.0.1 only",
    );
    expect_token_from_ns(
        &lab,
        &b.ns,
        &format!("http://{host_ip}:{h_ip}/index.html"),
        &token,
        "hairpin to a port published on the host address",
    );
    assert_listed(&lab, "n", &a.name, &m_ip);
}

/// `weft unpublish` closes the host port (TCP, UDP, by HOST_IP, a range), forgets the
/// mapping and leaves the others alone; the port can be published again.
#[test]
fn unpublish_closes_the_host_port_and_forgets_the_mapping() {
    root_or_skip!();
    require_tool("curl");
    let lab = Lab::new();
    lab.create_network("n", "10.181.6.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let (www, token) = make_www(&lab, "www");
    let _http = start_http(&lab, &a.ns, &www, &token);
    let mut echo = lab.spawn_in(&a.ns, &["python3", "-c", UDP_ECHO, "7000"]);
    wait_stdout(
        &mut echo,
        "ready",
        Duration::from_secs(10),
        "UDP echo server",
    );

    let hp = publish_one(&lab, &a.name, 80, Proto::Tcp);
    let hu = publish_one(&lab, &a.name, 7000, Proto::Udp);
    let m_tcp = mapping("0.0.0.0", hp, 80, Proto::Tcp);
    let m_udp = mapping("0.0.0.0", hu, 7000, Proto::Udp);
    let url = format!("http://127.0.0.1:{hp}/index.html");
    expect_token_from_host(&lab, &url, &token, "before unpublish");
    udp_clients(&lab, hu, 1, 1, "before unpublish");

    lab.weft_ok(&["unpublish", &a.name, &hp.to_string()]);
    assert_refused(
        &lab,
        "127.0.0.1",
        hp,
        Duration::from_secs(2),
        "after `weft unpublish EP HOSTPORT`",
    );
    expect_curl_fails(&lab, None, &url, &token, "after unpublish");
    assert_not_listed(&lab, "n", &a.name, &m_tcp);
    assert_listed(&lab, "n", &a.name, &m_udp);
    udp_clients(
        &lab,
        hu,
        1,
        1,
        "the UDP mapping after unpublishing the TCP one",
    );
    assert!(
        tcp_free(hp),
        "host port {hp} cannot be bound after unpublish: still held"
    );

    // The same host port can be published again, by HOST_IP this time, and unpublished so.
    let out = lab.weft_ok(&["publish", &a.name, &format!("0.0.0.0:{hp}:80/tcp")]);
    assert_eq!(lines(&out), BTreeSet::from([m_tcp.clone()]));
    expect_token_from_host(&lab, &url, &token, "published again after unpublish");
    lab.weft_ok(&["unpublish", &a.name, &format!("0.0.0.0:{hp}/tcp")]);
    assert_refused(
        &lab,
        "127.0.0.1",
        hp,
        Duration::from_secs(2),
        "after `weft unpublish EP 0.0.0.0:HOSTPORT/tcp`",
    );
    assert_not_listed(&lab, "n", &a.name, &m_tcp);

    // UDP needs /udp.
    lab.weft_ok(&["unpublish", &a.name, &format!("{hu}/udp")]);
    assert!(
        eventually(Duration::from_secs(2), || udp_free(hu)),
        "UDP port {hu} still held after `weft unpublish EP {hu}/udp`"
    );
    assert_not_listed(&lab, "n", &a.name, &m_udp);

    // A range is unpublished as a whole.
    let (r, _) = retry_in_use(
        &lab,
        "weft publish R-R+2:80-82",
        || free_block(3),
        |r| lab.weft(&["publish", &a.name, &format!("{r}-{}:80-82", r + 2)]),
    );
    for i in 0..3 {
        assert_listening(&lab, "127.0.0.1", r + i, "range port before unpublish");
        assert_listed(
            &lab,
            "n",
            &a.name,
            &mapping("0.0.0.0", r + i, 80 + i, Proto::Tcp),
        );
    }
    lab.weft_ok(&["unpublish", &a.name, &format!("{r}-{}", r + 2)]);
    for i in 0..3 {
        assert_refused(
            &lab,
            "127.0.0.1",
            r + i,
            Duration::from_secs(2),
            "range port after unpublishing the range",
        );
    }
    let left = published_in_ports(&lab, &a.name);
    assert!(
        left.is_empty(),
        "mappings left after unpublishing everything: {left:?}"
    );
    assert!(published_in_inspect(&lab, "n", &a.name).is_empty());
}

/// Mappings persist across a daemon restart: the ports close while the daemon is down and
/// work again (same host ports, also those chosen by -P) once it is back; an unpublished
/// mapping stays gone.
#[test]
fn published_ports_survive_a_daemon_restart() {
    root_or_skip!();
    require_tool("curl");
    let lab = Lab::new();
    lab.create_network("n", "10.181.7.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let (www, token) = make_www(&lab, "www");
    let _http = start_http(&lab, &a.ns, &www, &token);
    let mut echo = lab.spawn_in(&a.ns, &["python3", "-c", UDP_ECHO, "7000"]);
    wait_stdout(
        &mut echo,
        "ready",
        Duration::from_secs(10),
        "UDP echo server",
    );

    let hp = publish_one(&lab, &a.name, 80, Proto::Tcp);
    let v = lab.weft_json(&["publish", &a.name, "-P", "80"]);
    let hq = json_port(&v[0]["host_port"], "host_port of -P 80");
    let hu = publish_one(&lab, &a.name, 7000, Proto::Udp);
    let url_p = format!("http://127.0.0.1:{hp}/index.html");
    let url_q = format!("http://127.0.0.1:{hq}/index.html");
    expect_token_from_host(&lab, &url_p, &token, "before restart");
    expect_token_from_host(&lab, &url_q, &token, "-P port before restart");
    udp_clients(&lab, hu, 1, 1, "before restart");
    let before = published_in_ports(&lab, &a.name);
    assert_eq!(before.len(), 3, "{before:?}");

    let st = lab.stop_daemon();
    assert!(
        st.success(),
        "daemon did not exit cleanly: {st}\n{}",
        log_tail(&lab)
    );
    for h in [hp, hq] {
        assert_refused(
            &lab,
            "127.0.0.1",
            h,
            Duration::ZERO,
            "with the daemon stopped",
        );
    }
    assert!(
        udp_free(hu),
        "UDP port {hu} still held with the daemon stopped"
    );

    lab.start_daemon();
    let mut last = None;
    let back = eventually(Duration::from_secs(10), || {
        let o = curl_host(&["-sS", "--max-time", "3", &url_p]);
        let ok = o.status.success() && stdout_of(&o).contains(&token);
        last = Some(o);
        ok
    });
    assert!(
        back,
        "published port {hp} does not work within 10 s of the restart: {}\n{}",
        show(last.as_ref().unwrap()),
        log_tail(&lab)
    );
    expect_token_from_host(&lab, &url_q, &token, "-P port after restart");
    udp_clients(&lab, hu, 1, 2, "after restart");
    assert_eq!(
        published_in_ports(&lab, &a.name),
        before,
        "`weft ports --json` mappings changed across the restart"
    );
    assert_eq!(published_in_inspect(&lab, "n", &a.name), before);

    // Unpublished after a restart, and it stays unpublished across the next one.
    lab.weft_ok(&["unpublish", &a.name, &hp.to_string()]);
    assert_refused(
        &lab,
        "127.0.0.1",
        hp,
        Duration::from_secs(2),
        "unpublished after a restart",
    );
    let st = lab.stop_daemon();
    assert!(st.success(), "second stop: {st}");
    lab.start_daemon();
    let mut last = None;
    let back = eventually(Duration::from_secs(10), || {
        let o = curl_host(&["-sS", "--max-time", "3", &url_q]);
        let ok = o.status.success() && stdout_of(&o).contains(&token);
        last = Some(o);
        ok
    });
    assert!(
        back,
        "-P port {hq} does not work after the second restart: {}\n{}",
        show(last.as_ref().unwrap()),
        log_tail(&lab)
    );
    assert_refused(
        &lab,
        "127.0.0.1",
        hp,
        Duration::ZERO,
        "an unpublished mapping came back after a restart",
    );
    let after: BTreeSet<String> = published_in_ports(&lab, &a.name);
    assert!(
        !after.contains(&mapping("0.0.0.0", hp, 80, Proto::Tcp)) && after.len() == 2,
        "after unpublish + restart: {after:?}"
    );
}

/// Asserts that the CLI failed with an error naming the problem. Spec syntax errors may be
/// caught by argument parsing (exit 2) or by the daemon (exit 1); both are accepted.
fn expect_spec_error(lab: &Lab, args: &[&str], words: &[&str]) -> String {
    let o = lab.weft(args);
    let what = format!("weft {}", args.join(" "));
    let err = stderr_of(&o);
    assert!(
        matches!(o.status.code(), Some(1) | Some(2)),
        "`{what}` should fail with exit code 1 or 2: {}",
        show(&o)
    );
    assert!(
        err.trim_start().starts_with("error:"),
        "`{what}`: stderr should start with \"error:\": {err:?}"
    );
    let lower = err.to_ascii_lowercase();
    assert!(
        words
            .iter()
            .any(|w| lower.contains(&w.to_ascii_lowercase())),
        "`{what}`: stderr should mention one of {words:?}: {err:?}"
    );
    err
}

/// Every error: exit non-zero with a message naming the problem, and nothing half-applied
/// (no port bound, no mapping listed, no endpoint created).
#[test]
fn bad_publish_requests_are_rejected_without_leftovers() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.181.8.0/24", &[]);
    lab.create_network("int", "10.181.9.0/24", &["--internal"]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let i = lab.connect("int", &lab.ns("i"), &[]);

    // Ports the test itself holds: "in use" for weft.
    let busy_tcp = TcpListener::bind(("0.0.0.0", 0)).expect("bind busy TCP port");
    let busy = busy_tcp.local_addr().unwrap().port();
    let busy_udp_sock = UdpSocket::bind(("0.0.0.0", 0)).expect("bind busy UDP port");
    let busy_u = busy_udp_sock.local_addr().unwrap().port();

    // One good mapping, which every failure below must leave alone.
    let good = publish_one(&lab, &a.name, 80, Proto::Tcp);
    let m_good = mapping("0.0.0.0", good, 80, Proto::Tcp);
    let listed = published_in_ports(&lab, &a.name);
    assert_eq!(listed, BTreeSet::from([m_good.clone()]));

    let check_unchanged = |what: &str| {
        assert_eq!(
            published_in_ports(&lab, &a.name),
            listed,
            "`{what}` failed but changed the mappings in `weft ports --json`"
        );
        assert_eq!(
            published_in_inspect(&lab, "n", &a.name),
            listed,
            "`{what}` failed but changed the mappings in `network inspect`"
        );
        assert!(
            published_in_ports(&lab, &i.name).is_empty(),
            "`{what}`: the internal endpoint has mappings"
        );
        assert_listening(
            &lab,
            "127.0.0.1",
            good,
            &format!("the good mapping after `{what}`"),
        );
    };

    // Host port in use (by the test, by weft itself, UDP), alone and beside a good spec.
    let free1 = free_port(Proto::Tcp);
    let free_u = free_port(Proto::Udp);
    // The same host port twice in one request may be reported as in use or as a duplicate.
    let twice: &[&str] = &["in use", "duplicate", "more than once", "twice"];
    let in_use: Vec<(Vec<String>, &[&str])> = vec![
        (vec![format!("{busy}:80")], &["in use"]),
        (vec![format!("{good}:81")], &["in use"]),
        (vec![format!("{busy_u}:7000/udp")], &["in use"]),
        (
            vec![format!("{free1}:80"), format!("{busy}:81")],
            &["in use"],
        ),
        (
            vec![format!("{free_u}:7000/udp"), format!("{busy_u}:7001/udp")],
            &["in use"],
        ),
        (vec![format!("{free1}:80"), format!("{free1}:81")], twice),
    ];
    for (specs, words) in &in_use {
        let mut args = vec!["publish", a.name.as_str()];
        args.extend(specs.iter().map(String::as_str));
        lab.weft_err(&args, words);
        let what = args.join(" ");
        check_unchanged(&what);
        assert_refused(
            &lab,
            "127.0.0.1",
            free1,
            Duration::ZERO,
            &format!("`weft {what}` failed but left port {free1} bound"),
        );
        assert!(
            udp_free(free_u),
            "`weft {what}` failed but left UDP port {free_u} bound"
        );
    }

    // Malformed specs, out-of-range ports, unequal and reversed ranges.
    let f = free1;
    let bad_specs: Vec<(Vec<String>, &[&str])> = vec![
        (vec!["abc".into()], &["invalid"]),
        (vec![format!("{f}:")], &["invalid"]),
        (vec![":80".into()], &["invalid"]),
        (vec![format!("{f}:http")], &["invalid"]),
        (
            vec![format!("{f}:80/sctp")],
            &["invalid", "sctp", "protocol"],
        ),
        (vec![format!("{f}:80/")], &["invalid", "protocol"]),
        (vec![format!("999.1.1.1:{f}:80")], &["invalid", "999.1.1.1"]),
        (vec![format!("{f}-:80")], &["invalid", "range"]),
        (vec!["70000:80".into()], &["range", "invalid", "70000"]),
        (vec![format!("{f}:70000")], &["range", "invalid", "70000"]),
        (vec!["65536:80".into()], &["range", "invalid", "65536"]),
        (
            vec![format!("{f}-{}:9000-9002", f + 1)],
            &["range", "equal", "length", "size", "match"],
        ),
        (
            vec![format!("{}-{f}:9000-9001", f + 1)],
            &["range", "invalid"],
        ),
        (vec![format!("{f}:80"), "abc".into()], &["invalid"]),
        (
            vec![format!("{f}:80"), "70000:80".into()],
            &["range", "invalid"],
        ),
    ];
    for (specs, words) in &bad_specs {
        let mut args = vec!["publish", a.name.as_str()];
        args.extend(specs.iter().map(String::as_str));
        expect_spec_error(&lab, &args, words);
        let what = args.join(" ");
        check_unchanged(&what);
        assert_refused(
            &lab,
            "127.0.0.1",
            f,
            Duration::ZERO,
            &format!("`weft {what}` failed but left port {f} bound"),
        );
    }
    expect_spec_error(
        &lab,
        &["publish", &a.name, "-P", "70000"],
        &["range", "invalid"],
    );
    expect_spec_error(&lab, &["publish", &a.name, "-P", "http"], &["invalid"]);
    check_unchanged("publish -P 70000 / -P http");

    // An endpoint of an --internal network cannot publish, at publish or connect time.
    lab.weft_err(&["publish", &i.name, &format!("{f}:80")], &["internal"]);
    lab.weft_err(&["publish", &i.name, "-P", "80"], &["internal"]);
    check_unchanged("publish on the internal endpoint");
    assert_refused(&lab, "127.0.0.1", f, Duration::ZERO, "internal endpoint");
    let nsj = lab.ns("j");
    let eps_int = lab.endpoints("int").len();
    lab.weft_err(
        &["connect", "int", "--netns", &nsj, "-p", &format!("{f}:80")],
        &["internal"],
    );
    assert_eq!(
        lab.endpoints("int").len(),
        eps_int,
        "connect -p on an internal network created an endpoint"
    );
    assert_eq!(
        lab.link_names(&nsj),
        vec!["lo".to_string()],
        "connect -p on an internal network left an interface"
    );
    assert_refused(
        &lab,
        "127.0.0.1",
        f,
        Duration::ZERO,
        "connect -p on an internal network",
    );

    // Unknown endpoint.
    let ghost = format!("{}-nosuch", lab.prefix);
    lab.weft_err(
        &["publish", &ghost, &format!("{f}:80")],
        &[&ghost, "not found", "unknown", "no such"],
    );
    lab.weft_err(
        &["unpublish", &ghost, &good.to_string()],
        &[&ghost, "not found", "unknown", "no such"],
    );
    assert_refused(&lab, "127.0.0.1", f, Duration::ZERO, "unknown endpoint");

    // connect with a busy or malformed -p creates nothing.
    let nsk = lab.ns("k");
    let eps_n = lab.endpoints("n").len();
    let ports_n = lab.ports().len();
    lab.weft_err(
        &[
            "connect",
            "n",
            "--netns",
            &nsk,
            "-p",
            &format!("{f}:80"),
            "-p",
            &format!("{busy}:81"),
        ],
        &["in use"],
    );
    expect_spec_error(
        &lab,
        &[
            "connect",
            "n",
            "--netns",
            &nsk,
            "-p",
            &format!("{f}:80"),
            "-p",
            "abc",
        ],
        &["invalid"],
    );
    assert_eq!(
        lab.endpoints("n").len(),
        eps_n,
        "a failed connect -p created an endpoint"
    );
    assert_eq!(
        lab.ports().len(),
        ports_n,
        "a failed connect -p created a port"
    );
    assert_eq!(
        lab.link_names(&nsk),
        vec!["lo".to_string()],
        "a failed connect -p left an interface in {nsk}"
    );
    assert_refused(&lab, "127.0.0.1", f, Duration::ZERO, "failed connect -p");
    check_unchanged("connect -p with a busy port");

    // The daemon is fine and the namespace is still usable.
    let k = lab.connect("n", &nsk, &[]);
    assert!(published_in_ports(&lab, &k.name).is_empty());
    drop(busy_tcp);
    drop(busy_udp_sock);
}
