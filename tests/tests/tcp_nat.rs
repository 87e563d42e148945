//! Outbound NAT in proxy mode, TCP and ICMP: a container's connections to an address outside its
//! network are terminated at the gateway and spliced onto host sockets (as slirp4netns does).
//! Downloads and uploads of tens of MiB arrive intact, `weft nat` lists TCP and ICMP flows and
//! forgets closed ones, a refused connection and an unreachable host reach the container as a
//! RST and an ICMP error (not a timeout), `--nat none` and `--internal` networks keep their
//! traffic in, and the embedded DNS answers over TCP. The "outside" is a namespace this test
//! creates and joins to the host namespace with a veth pair (`Lab::outside`).

use serde_json::Value;
use std::fs;
use std::io::Read;
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use weft_tests::*;

// ---------------------------------------------------------------------------
// peers (python3), run in the outside namespace or in a container
// ---------------------------------------------------------------------------

/// Receives a length-prefixed payload (8-byte big-endian length, then the bytes) and answers
/// "LENGTH SHA256HEX\n". One thread per connection.
const UPLOAD_SERVER: &str = r#"
import hashlib, socket, struct, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
def serve(c):
    with c:
        hdr = b""
        while len(hdr) < 8:
            b = c.recv(8 - len(hdr))
            if not b:
                return
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
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
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

/// Echoes every connection; prints "peer ADDR:PORT" for each accepted one.
const ECHO_SERVER: &str = r#"
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
def serve(c):
    with c:
        while True:
            b = c.recv(65536)
            if not b:
                return
            c.sendall(b)
while True:
    c, peer = s.accept()
    print("peer %s:%d" % peer, flush=True)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// Connects, exchanges 10 bytes with the echo server, prints "local ADDR:PORT echo TEXT",
/// holds the connection open until the file argv[3] exists (at most 30 s), closes, prints
/// "closed".
const HOLD_CLIENT: &str = r#"
import os, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"hello weft")
got = b""
while len(got) < 10:
    b = s.recv(100)
    if not b:
        break
    got += b
name = s.getsockname()
print("local %s:%d echo %s" % (name[0], name[1], got.decode()), flush=True)
deadline = time.time() + 30
while not os.path.exists(sys.argv[3]) and time.time() < deadline:
    time.sleep(0.05)
s.close()
print("closed", flush=True)
"#;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// `weft nat` (table) and `weft ports` output, for failure messages.
fn diag(lab: &Lab) -> String {
    let nat = lab.weft(&["nat"]);
    let ports = lab.weft(&["ports"]);
    format!(
        "--- weft nat ({}) ---\n{}{}--- weft ports ({}) ---\n{}{}",
        nat.status,
        stdout_of(&nat),
        stderr_of(&nat),
        ports.status,
        stdout_of(&ports),
        stderr_of(&ports)
    )
}

/// The gateway address of `net` per `network inspect`.
fn gateway(lab: &Lab, net: &str) -> String {
    let v = lab.inspect(net);
    v["gateway"]
        .as_str()
        .unwrap_or_else(|| panic!("network inspect {net}: no gateway in {v}"))
        .to_string()
}

/// Waits until the endpoint's link works (the gateway answers ping): later failures are then
/// about the NAT, not about plumbing.
fn wait_link(lab: &Lab, ep: &Endpoint, gw: &str) {
    assert!(
        lab.wait_ping(&ep.ns, gw, Duration::from_secs(5)),
        "{} ({}) cannot ping its gateway {gw}: the link is not up\n{}",
        ep.name,
        ep.ip,
        diag(lab)
    );
}

/// Waits (from the host namespace, which reaches the outside peer directly) until a TCP
/// listener accepts on `addr`.
fn wait_listening(addr: &str, what: &mut Bg) {
    let sa: SocketAddr = addr.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect_timeout(&sa, Duration::from_millis(500)).is_ok() {
            return;
        }
        if !what.running() {
            panic!(
                "the server for {addr} exited before listening\nstdout: {}\nstderr: {}",
                what.stdout(),
                what.stderr()
            );
        }
        if Instant::now() >= deadline {
            panic!(
                "nothing listens on {addr} after 10 s\nstdout: {}\nstderr: {}",
                what.stdout(),
                what.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `python3 -m http.server 8000 --bind IP --directory DIR` in `ns`, listening when returned.
fn http_server(lab: &Lab, ns: &str, ip: &str, dir: &Path) -> Bg {
    let dir = dir.to_str().unwrap();
    let mut bg = lab.spawn_in(
        ns,
        &[
            "python3",
            "-m",
            "http.server",
            "8000",
            "--bind",
            ip,
            "--directory",
            dir,
        ],
    );
    wait_listening(&format!("{ip}:8000"), &mut bg);
    bg
}

/// Random bytes (from /dev/urandom).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    fs::File::open("/dev/urandom")
        .expect("open /dev/urandom")
        .take(n as u64)
        .read_to_end(&mut v)
        .expect("read /dev/urandom");
    assert_eq!(v.len(), n);
    v
}

/// A fresh directory inside the lab's temp dir (removed with the lab).
fn lab_dir(lab: &Lab, name: &str) -> PathBuf {
    let d = lab.dir.join(name);
    fs::create_dir_all(&d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
    d
}

/// The curl command line used everywhere: no proxy from the environment, errors on stderr.
/// `-v` so that stderr names the socket error ("Connection refused", "No route to host"):
/// curl 7.88 only says "Couldn't connect to server" in its final line.
fn curl_args<'a>(max_time: &'a str, out: &'a str, url: &'a str) -> Vec<&'a str> {
    vec![
        "curl",
        "-sS",
        "-v",
        "--fail",
        "--noproxy",
        "*",
        "--max-time",
        max_time,
        "-o",
        out,
        url,
    ]
}

/// Runs curl in `ns`; returns its output and how long it took.
fn curl(lab: &Lab, ns: &str, url: &str, out: &Path, max_time: u32) -> (Output, Duration) {
    let mt = max_time.to_string();
    let out = out.to_str().unwrap();
    let start = Instant::now();
    let o = lab.exec(ns, &curl_args(&mt, out, url));
    (o, start.elapsed())
}

/// Only the lines of curl's stderr that matter (drops the -v request/response headers).
fn curl_errors(o: &Output) -> String {
    stderr_of(o)
        .lines()
        .filter(|l| l.starts_with("* ") || l.starts_with("curl:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that the file at `got` holds exactly `want`.
fn assert_same_file(lab: &Lab, got: &Path, want: &[u8], what: &str) {
    let data = fs::read(got).unwrap_or_else(|e| {
        panic!(
            "{what}: cannot read the downloaded {}: {e}\n{}",
            got.display(),
            diag(lab)
        )
    });
    if data != want {
        let first = data.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: received {} bytes, sent {}; first differing byte at {:?} \
             (None: one is a prefix of the other)\n{}",
            data.len(),
            want.len(),
            first,
            diag(lab)
        );
    }
}

/// `sha256sum FILE` (hex) in the host namespace.
fn sha256_file(path: &Path) -> String {
    let o = run_timeout(Command::new("sha256sum").arg(path), Duration::from_secs(30));
    assert!(o.status.success(), "sha256sum {}: {o:?}", path.display());
    stdout_of(&o)
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string()
}

/// Rows of `weft --json nat NET`.
fn nat_rows(lab: &Lab, net: &str) -> Vec<Value> {
    match lab.weft_json(&["nat", net]) {
        Value::Array(a) => a,
        other => panic!("`weft --json nat {net}` should print a JSON array, printed {other}"),
    }
}

fn str_field<'a>(row: &'a Value, k: &str) -> &'a str {
    row.get(k)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("nat row has no string field {k:?}: {row}"))
}

fn u64_field(row: &Value, k: &str) -> u64 {
    row.get(k)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("nat row has no numeric field {k:?}: {row}"))
}

/// Waits until `bg` printed a line starting with `prefix`; returns the rest of that line.
fn wait_line(bg: &mut Bg, prefix: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(l) = bg.stdout().lines().find(|l| l.starts_with(prefix)) {
            return l[prefix.len()..].trim().to_string();
        }
        if Instant::now() >= deadline || !bg.running() {
            // One last look: the line may have arrived just before the exit.
            std::thread::sleep(Duration::from_millis(100));
            if let Some(l) = bg.stdout().lines().find(|l| l.starts_with(prefix)) {
                return l[prefix.len()..].trim().to_string();
            }
            panic!(
                "no line starting with {prefix:?} within {timeout:?} (running: {})\nstdout: {}\nstderr: {}",
                bg.running(),
                bg.stdout(),
                bg.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------

#[test]
fn tcp_downloads_through_the_gateway_arrive_complete() {
    root_or_skip!();
    require_tool("curl");
    let lab = Lab::new();
    let out_ns = lab.outside(240);
    let www = lab_dir(&lab, "www");
    let page = b"<html><body>hello from outside</body></html>\n".to_vec();
    fs::write(www.join("index.html"), &page).unwrap();
    let big = random_bytes(32 << 20);
    fs::write(www.join("big.bin"), &big).unwrap();
    let _server = http_server(&lab, &out_ns, "10.240.0.2", &www);

    lab.create_network("n", "10.180.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    wait_link(&lab, &a, &gateway(&lab, "n"));
    let dl = lab_dir(&lab, "dl");

    // A small page.
    let got = dl.join("index.html");
    let (o, took) = curl(&lab, &a.ns, "http://10.240.0.2:8000/index.html", &got, 20);
    assert!(
        o.status.success(),
        "curl of a small page from the outside failed ({:?}, {took:?}):\n{}\n{}",
        o.status.code(),
        curl_errors(&o),
        diag(&lab)
    );
    assert_same_file(&lab, &got, &page, "small page");

    // 32 MiB of random bytes, byte for byte.
    let got = dl.join("big.bin");
    let (o, took) = curl(&lab, &a.ns, "http://10.240.0.2:8000/big.bin", &got, 20);
    assert!(
        o.status.success(),
        "curl of a 32 MiB file from the outside failed ({:?}, {took:?}):\n{}\n{}",
        o.status.code(),
        curl_errors(&o),
        diag(&lab)
    );
    assert_same_file(&lab, &got, &big, "32 MiB download");
    eprintln!("32 MiB download took {took:?}");
}

#[test]
fn tcp_uploads_through_the_gateway_arrive_complete() {
    root_or_skip!();
    let lab = Lab::new();
    let out_ns = lab.outside(241);
    let mut server = lab.spawn_in(
        &out_ns,
        &["python3", "-c", UPLOAD_SERVER, "10.241.0.2", "9000"],
    );
    wait_listening("10.241.0.2:9000", &mut server);

    lab.create_network("n", "10.180.1.0/24", &[]);
    let gw = gateway(&lab, "n");
    // A TAP and a veth endpoint: both hand the gateway TSO superframes.
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);
    wait_link(&lab, &a, &gw);
    wait_link(&lab, &b, &gw);

    let file = lab_dir(&lab, "up").join("payload.bin");
    fs::write(&file, random_bytes(16 << 20)).unwrap();
    let want = format!("{} {}", 16 << 20, sha256_file(&file));
    for ep in [&a, &b] {
        let start = Instant::now();
        let o = lab.exec(
            &ep.ns,
            &[
                "python3",
                "-c",
                UPLOAD_CLIENT,
                "10.241.0.2",
                "9000",
                file.to_str().unwrap(),
            ],
        );
        let took = start.elapsed();
        assert!(
            o.status.success(),
            "16 MiB upload from {} ({}) failed after {took:?}:\n{}\n{}\nserver stderr: {}",
            ep.name,
            ep.kind,
            stderr_of(&o),
            diag(&lab),
            server.stderr()
        );
        assert_eq!(
            stdout_of(&o).trim(),
            want,
            "the outside server received something else than the 16 MiB {} ({}) sent \
             (\"LENGTH SHA256\")\n{}",
            ep.name,
            ep.kind,
            diag(&lab)
        );
        eprintln!("16 MiB upload from {} took {took:?}", ep.kind);
    }
}

#[test]
fn nat_lists_an_open_tcp_flow_and_forgets_it_after_close() {
    root_or_skip!();
    let lab = Lab::new();
    let out_ns = lab.outside(242);
    let mut server = lab.spawn_in(
        &out_ns,
        &["python3", "-c", ECHO_SERVER, "10.242.0.2", "9100"],
    );
    wait_listening("10.242.0.2:9100", &mut server);

    lab.create_network("n", "10.180.2.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    wait_link(&lab, &a, &gateway(&lab, "n"));

    let release = lab.dir.join("release-hold");
    let mut client = lab.spawn_in(
        &a.ns,
        &[
            "python3",
            "-c",
            HOLD_CLIENT,
            "10.242.0.2",
            "9100",
            release.to_str().unwrap(),
        ],
    );
    let local = wait_line(&mut client, "local ", Duration::from_secs(15));
    let (container, echo) = local.split_once(" echo ").unwrap_or((&local, ""));
    let container = container.to_string();
    assert_eq!(echo, "hello weft", "the echo did not come back intact");
    assert!(
        container.starts_with(&format!("{}:", a.ip)),
        "the client's socket is bound to {container}, not to the endpoint address {}",
        a.ip
    );
    // The flow is listed while the connection is open.
    let mut row = None;
    let found = eventually(Duration::from_secs(3), || {
        row = nat_rows(&lab, "n")
            .into_iter()
            .find(|r| r.get("container").and_then(Value::as_str) == Some(container.as_str()));
        row.is_some()
    });
    assert!(
        found,
        "`weft nat n --json` does not list the open TCP connection from {container}: {}\n{}",
        lab.weft_json(&["nat", "n"]),
        diag(&lab)
    );
    let row = row.unwrap();
    assert_eq!(str_field(&row, "protocol"), "tcp", "{row}");
    assert_eq!(str_field(&row, "direction"), "out", "{row}");
    assert_eq!(str_field(&row, "network"), "n", "{row}");
    assert_eq!(str_field(&row, "outside"), "10.242.0.2:9100", "{row}");
    let host_socket = str_field(&row, "host_socket");
    let hs: SocketAddrV4 = host_socket
        .parse()
        .unwrap_or_else(|e| panic!("host_socket {host_socket:?} is not ADDR:PORT ({e}): {row}"));
    assert_ne!(hs.port(), 0, "{row}");
    // The outside server saw the connection come from exactly the host socket.
    let want_peer = format!("peer {host_socket}");
    assert!(
        eventually(Duration::from_secs(3), || server
            .stdout()
            .lines()
            .any(|l| l == want_peer)),
        "host_socket {host_socket} is not the address the outside server saw the connection \
         come from:\n{}\nrow: {row}",
        server.stdout()
    );
    assert!(
        u64_field(&row, "bytes_out") >= 10,
        "10 bytes went out: {row}"
    );
    assert!(
        u64_field(&row, "bytes_in") >= 10,
        "10 bytes came back: {row}"
    );
    let table = lab.weft_ok(&["nat", "n"]);
    assert!(
        table.contains("tcp") && table.contains(&container) && table.contains("10.242.0.2:9100"),
        "`weft nat n` does not show the TCP flow:\n{table}"
    );

    // Close it: the row goes away.
    fs::write(&release, b"").unwrap();
    let st = client.wait(Duration::from_secs(10));
    assert!(
        st.success() && client.stdout().contains("closed"),
        "the client did not close cleanly ({st}): {} {}",
        client.stdout(),
        client.stderr()
    );
    let gone = eventually(Duration::from_secs(6), || {
        !nat_rows(&lab, "n")
            .iter()
            .any(|r| r.get("container").and_then(Value::as_str) == Some(container.as_str()))
    });
    assert!(
        gone,
        "the closed TCP flow from {container} is still listed 6 s after close: {}",
        lab.weft_json(&["nat", "n"])
    );
}

#[test]
fn refused_and_unreachable_reach_the_container_as_errors_not_timeouts() {
    root_or_skip!();
    require_tool("curl");
    let lab = Lab::new();
    lab.outside(243);
    lab.create_network("n", "10.180.3.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    wait_link(&lab, &a, &gateway(&lab, "n"));
    let sink = lab.dir.join("sink");

    // Nothing listens on 10.243.0.2:8001: the outside answers RST, the gateway passes it on.
    let (o, took) = curl(&lab, &a.ns, "http://10.243.0.2:8001/", &sink, 20);
    let errs = curl_errors(&o);
    assert_eq!(
        o.status.code(),
        Some(7),
        "curl to a closed port outside should fail to connect (exit 7) after {took:?}:\n{errs}\n{}",
        diag(&lab)
    );
    assert!(
        errs.contains("Connection refused"),
        "curl to a closed port outside should see \"Connection refused\":\n{errs}"
    );
    assert!(
        took < Duration::from_secs(3),
        "the refusal took {took:?}: it should be a prompt RST, not a retry or timeout"
    );

    // 10.243.0.3 belongs to nobody: the host's connect fails (ARP unanswered), and the
    // gateway reports it with ICMP host unreachable.
    let (o, took) = curl(&lab, &a.ns, "http://10.243.0.3:80/", &sink, 15);
    let errs = curl_errors(&o);
    assert_ne!(
        o.status.code(),
        Some(28),
        "curl to an unreachable host timed out after {took:?} instead of seeing an error:\n{errs}\n{}",
        diag(&lab)
    );
    assert_eq!(
        o.status.code(),
        Some(7),
        "curl to an unreachable host should fail to connect (exit 7) after {took:?}:\n{errs}"
    );
    assert!(
        errs.contains("No route to host"),
        "curl to an unreachable host should see \"No route to host\" (ICMP host unreachable):\n{errs}"
    );
    assert!(
        took < Duration::from_secs(10),
        "the unreachable host was reported after {took:?}"
    );
    assert!(lab.daemon_alive(), "the daemon died");
}

#[test]
fn icmp_echo_goes_out_and_is_listed() {
    root_or_skip!();
    let lab = Lab::new();
    lab.outside(244);
    lab.create_network("n", "10.180.4.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    wait_link(&lab, &a, &gateway(&lab, "n"));

    let o = lab.exec(&a.ns, &["ping", "-c", "2", "-W", "2", "10.244.0.2"]);
    assert!(
        o.status.success(),
        "ping to the outside 10.244.0.2 failed:\n{}{}\n{}",
        stdout_of(&o),
        stderr_of(&o),
        diag(&lab)
    );
    assert!(
        stdout_of(&o).contains("from 10.244.0.2"),
        "the echo replies should come from 10.244.0.2:\n{}",
        stdout_of(&o)
    );

    // While a longer ping runs, the flow is listed.
    let mut pinger = lab.spawn_in(&a.ns, &["ping", "-c", "40", "-i", "0.25", "10.244.0.2"]);
    let mut row = None;
    let found = eventually(Duration::from_secs(5), || {
        row = nat_rows(&lab, "n")
            .into_iter()
            .find(|r| r.get("protocol").and_then(Value::as_str) == Some("icmp"));
        row.is_some()
    });
    pinger.kill();
    assert!(
        found,
        "`weft nat n --json` lists no icmp row while a ping runs: {}\nping: {}",
        lab.weft_json(&["nat", "n"]),
        pinger.stdout()
    );
    let row = row.unwrap();
    assert!(
        str_field(&row, "container").contains(&a.ip),
        "icmp row's container should name {}: {row}",
        a.ip
    );
    assert!(
        str_field(&row, "outside").contains("10.244.0.2"),
        "icmp row's outside should name 10.244.0.2: {row}"
    );

    // Nobody owns 10.244.0.3: the gateway must not make up echo replies.
    let o = lab.exec(&a.ns, &["ping", "-c", "1", "-W", "3", "10.244.0.3"]);
    assert!(
        !o.status.success(),
        "ping to the unowned 10.244.0.3 succeeded:\n{}",
        stdout_of(&o)
    );
}

#[test]
fn nat_none_and_internal_networks_keep_traffic_in() {
    root_or_skip!();
    require_tool("curl");
    let lab = Lab::new();
    let out_ns = lab.outside(245);
    let www = lab_dir(&lab, "www");
    fs::write(www.join("index.html"), b"outside\n").unwrap();
    let _server = http_server(&lab, &out_ns, "10.245.0.2", &www);
    let url = "http://10.245.0.2:8000/index.html";
    let sink = lab.dir.join("sink");

    // Control: from a default (proxy) network, the server is reachable.
    lab.create_network("open", "10.180.5.0/24", &[]);
    let o_ep = lab.connect("open", &lab.ns("o"), &[]);
    wait_link(&lab, &o_ep, &gateway(&lab, "open"));
    let (o, took) = curl(&lab, &o_ep.ns, url, &sink, 20);
    assert!(
        o.status.success(),
        "control: curl from a proxy-NAT network failed ({:?}, {took:?}):\n{}\n{}",
        o.status.code(),
        curl_errors(&o),
        diag(&lab)
    );

    // --nat none: refused at once (ICMP network unreachable from the gateway).
    lab.create_network("closed", "10.180.6.0/24", &["--nat", "none"]);
    assert_eq!(lab.inspect("closed")["nat"], "none");
    let c = lab.connect("closed", &lab.ns("c"), &[]);
    let gw_c = gateway(&lab, "closed");
    wait_link(&lab, &c, &gw_c);
    let (o, took) = curl(&lab, &c.ns, url, &sink, 10);
    let errs = curl_errors(&o);
    assert_eq!(
        o.status.code(),
        Some(7),
        "curl from a --nat none network should fail to connect (exit 7), after {took:?}:\n{errs}\n{}",
        diag(&lab)
    );
    assert!(
        took < Duration::from_secs(3),
        "curl from a --nat none network took {took:?} to fail: the gateway should answer \
         network unreachable at once\n{errs}"
    );
    assert!(
        !lab.ping(&c.ns, "10.245.0.2"),
        "ping from a --nat none network reached the outside"
    );
    // The gateway itself still answers.
    assert!(lab.ping(&c.ns, &gw_c));

    // --internal: no way out either.
    lab.create_network("int", "10.180.7.0/24", &["--internal"]);
    let v = lab.inspect("int");
    assert_eq!(
        v.get("internal"),
        Some(&Value::Bool(true)),
        "`weft network inspect int` should say \"internal\": true: {v}"
    );
    let closed = lab.inspect("closed");
    assert_ne!(
        closed.get("internal"),
        Some(&Value::Bool(true)),
        "a network created without --internal is marked internal: {closed}"
    );
    let i = lab.connect("int", &lab.ns("i"), &[]);
    let gw_i = gateway(&lab, "int");
    wait_link(&lab, &i, &gw_i);
    let (o, took) = curl(&lab, &i.ns, url, &sink, 10);
    let errs = curl_errors(&o);
    assert_eq!(
        o.status.code(),
        Some(7),
        "curl from an --internal network should fail to connect (exit 7), after {took:?}:\n{errs}\n{}",
        diag(&lab)
    );
    assert!(
        !lab.ping(&i.ns, "10.245.0.2"),
        "ping from an --internal network reached the outside"
    );
    // Nothing from the closed networks shows up as a NAT flow.
    let flows = lab.weft_json(&["nat"]);
    let leaked: Vec<&Value> = flows
        .as_array()
        .expect("weft nat --json: array")
        .iter()
        .filter(|r| r["network"] == "closed" || r["network"] == "int")
        .collect();
    assert!(
        leaked.is_empty(),
        "NAT flows for networks without NAT: {leaked:?}"
    );
}

#[test]
fn gateway_dns_answers_over_tcp_and_forwards_over_tcp() {
    root_or_skip!();
    require_tool("dig");
    require_tool("dnsmasq");
    // The upstream only needs to exist when a query is forwarded, after the outside is made.
    let lab = Lab::with_daemon_args(&["--dns-upstream", "10.246.0.2:53"]);
    let out_ns = lab.outside(246);
    let mut dnsmasq = lab.spawn_in(
        &out_ns,
        &[
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=10.246.0.2",
            "--address=/outside.test/192.0.2.77",
            "--pid-file=",
        ],
    );
    wait_listening("10.246.0.2:53", &mut dnsmasq);

    lab.create_network("n", "10.180.8.0/24", &[]);
    let gw = gateway(&lab, "n");
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--alias", "backend"]);
    wait_link(&lab, &a, &gw);

    let dig_tcp = |server: &str, name: &str| -> (Output, String) {
        let at = format!("@{server}");
        let o = lab.exec(
            &a.ns,
            &["dig", "+tcp", "+short", "+time=3", "+tries=1", &at, name],
        );
        let s = stdout_of(&o).trim().to_string();
        (o, s)
    };

    for name in [b.name.as_str(), "backend"] {
        let (o, answer) = dig_tcp(&gw, name);
        assert_eq!(
            answer,
            b.ip,
            "`dig +tcp @{gw} {name}` should answer {}: {}{}\n{}",
            b.ip,
            stdout_of(&o),
            stderr_of(&o),
            diag(&lab)
        );
    }
    // A name the network does not know goes to the upstream (dnsmasq outside).
    let (o, answer) = dig_tcp(&gw, "www.outside.test");
    assert_eq!(
        answer,
        "192.0.2.77",
        "`dig +tcp @{gw} www.outside.test` should be forwarded to the upstream: {}{}\n\
         dnsmasq: {}\n{}",
        stdout_of(&o),
        stderr_of(&o),
        dnsmasq.stderr(),
        diag(&lab)
    );
    // And a TCP query straight to the outside resolver goes through the TCP NAT.
    let (o, answer) = dig_tcp("10.246.0.2", "www.outside.test");
    assert_eq!(
        answer,
        "192.0.2.77",
        "`dig +tcp @10.246.0.2 www.outside.test` (through the TCP NAT): {}{}\n{}",
        stdout_of(&o),
        stderr_of(&o),
        diag(&lab)
    );
}

#[test]
fn two_containers_download_at_once_and_both_files_are_intact() {
    root_or_skip!();
    require_tool("curl");
    let lab = Lab::new();
    let out_ns = lab.outside(247);
    let www = lab_dir(&lab, "www");
    let one = random_bytes(24 << 20);
    let two = random_bytes(24 << 20);
    fs::write(www.join("one.bin"), &one).unwrap();
    fs::write(www.join("two.bin"), &two).unwrap();
    let _server = http_server(&lab, &out_ns, "10.247.0.2", &www);

    lab.create_network("n", "10.180.9.0/24", &[]);
    let gw = gateway(&lab, "n");
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);
    wait_link(&lab, &a, &gw);
    wait_link(&lab, &b, &gw);
    let dl = lab_dir(&lab, "dl");
    let (got_a, got_b) = (dl.join("a.bin"), dl.join("b.bin"));

    let start = Instant::now();
    let mut curl_a = lab.spawn_in(
        &a.ns,
        &curl_args(
            "30",
            got_a.to_str().unwrap(),
            "http://10.247.0.2:8000/one.bin",
        ),
    );
    let mut curl_b = lab.spawn_in(
        &b.ns,
        &curl_args(
            "30",
            got_b.to_str().unwrap(),
            "http://10.247.0.2:8000/two.bin",
        ),
    );
    let st_a = curl_a.wait(Duration::from_secs(35));
    let st_b = curl_b.wait(Duration::from_secs(35));
    let took = start.elapsed();
    for (ep, st, bg) in [(&a, st_a, &curl_a), (&b, st_b, &curl_b)] {
        assert!(
            st.success(),
            "concurrent download into {} ({}) failed ({st}) after {took:?}:\n{}\n{}",
            ep.name,
            ep.kind,
            bg.stderr()
                .lines()
                .filter(|l| l.starts_with("* ") || l.starts_with("curl:"))
                .collect::<Vec<_>>()
                .join("\n"),
            diag(&lab)
        );
    }
    assert_same_file(&lab, &got_a, &one, "concurrent download one.bin (TAP)");
    assert_same_file(&lab, &got_b, &two, "concurrent download two.bin (veth)");
    eprintln!("two concurrent 24 MiB downloads took {took:?}");
}
