//! Descriptors and idle flows (issue 10). The gateway's flow tables are sized from the
//! daemon's descriptor limit so that a flood of flows never takes the descriptors the API,
//! new endpoints and gossip need; an established proxied TCP connection left idle is closed
//! after `--tcp-idle-timeout`. (Its own test binary: the first test lowers this process's
//! descriptor limit, which the daemon it starts inherits.)

use std::fs;
use std::time::{Duration, Instant};

use weft_tests::*;

/// Sends one datagram from each of argv[3] sockets to argv[1], ports argv[2].. (a flow
/// each through the NAT), keeps the sockets open for argv[4] s; prints "sent" first.
const UDP_FLOODER: &str = r#"
import socket, sys, time
dst, first, n, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", (dst, first + i))
    socks.append(s)
print("sent", flush=True)
time.sleep(hold)
"#;

fn open_descriptors(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

fn wait_for_sent(flood: &mut Bg) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !flood.stdout().contains("sent") {
        assert!(flood.running(), "the flooder exited: {}", flood.stderr());
        assert!(Instant::now() < deadline, "the flooder did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A daemon whose hard descriptor limit is 700: two containers opening 600 UDP flows each
/// (within their own shares of 512) would need more descriptors than it has. The flow
/// table is sized from the limit, so the daemon stays under it, and the API and a new
/// connect still work during the flood. Failed on the build before (the tables sized for
/// 20 000 descriptors): the flows took the last descriptors, and `weft ports` or the
/// connect failed.
#[test]
fn flows_never_take_the_descriptors_the_api_needs() {
    root_or_skip!();
    weft_sys::set_nofile_limit(700, 700).unwrap();
    let lab = Lab::new();
    let out = lab.outside(236);
    lab.create_network("n", "10.79.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &["--name", "a"]);
    let b = lab.connect("n", &lab.ns("b"), &["--name", "b"]);
    let pid = lab.daemon_pid().expect("daemon running");
    let mut floods = Vec::new();
    for (e, first) in [(&a, "20000"), (&b, "30000")] {
        let cmd = [
            "python3",
            "-c",
            UDP_FLOODER,
            "10.236.0.2",
            first,
            "600",
            "30",
        ];
        floods.push(lab.spawn_in(&e.ns, &cmd));
    }
    for flood in &mut floods {
        wait_for_sent(flood);
    }
    std::thread::sleep(Duration::from_millis(500));
    let fds = open_descriptors(pid);
    assert!(fds < 650, "{fds} descriptors open, hard limit 700");
    let flows = lab.weft_json(&["nat", "n"]);
    let n = flows.as_array().map_or(0, Vec::len);
    assert!(n > 50, "the flood opened only {n} flows: {flows}");
    let c = lab.connect("n", &lab.ns("c"), &["--name", "c"]);
    assert!(lab.ports().iter().any(|p| p["name"] == c.name.as_str()));
    let busy: u64 = ["a", "b"]
        .iter()
        .map(|name| {
            lab.port(name)["drops"]["gateway_busy"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert!(busy > 500, "refusals not counted: {busy}");
    assert!(
        lab.daemon_log()
            .contains("proxied flows: up to 62 TCP and 62 UDP"),
        "{}",
        lab.daemon_log()
    );
    drop(out);
}

/// Accepts one connection on argv[1]:argv[2], prints "accepted", then prints "closed" once
/// the connection ends (EOF or reset).
const IDLE_SERVER: &str = r#"
import socket, sys
s = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
c, _ = s.accept()
print("accepted", flush=True)
try:
    while c.recv(100):
        pass
except OSError:
    pass
print("closed", flush=True)
"#;

/// Connects to argv[1]:argv[2], sends "hi", then waits (no traffic) until the connection
/// ends; prints "open" after sending and "ended" at the end.
const IDLE_CLIENT: &str = r#"
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
c.sendall(b"hi")
print("open", flush=True)
try:
    while c.recv(100):
        pass
except OSError:
    pass
print("ended", flush=True)
"#;

/// An established proxied connection that moves no byte for `--tcp-idle-timeout` is
/// closed at both ends and leaves `weft nat`; one idle for less stays.
#[test]
fn idle_proxied_connections_are_closed_after_the_tcp_idle_timeout() {
    root_or_skip!();
    let lab = Lab::with_daemon_args(&["--tcp-idle-timeout", "3"]);
    let out = lab.outside(237);
    let mut server = lab.spawn_in(&out, &["python3", "-c", IDLE_SERVER, "10.237.0.2", "7100"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stdout().contains("ready") {
        assert!(
            Instant::now() < deadline && server.running(),
            "{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.create_network("n", "10.80.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let started = Instant::now();
    let client = lab.spawn_in(&a.ns, &["python3", "-c", IDLE_CLIENT, "10.237.0.2", "7100"]);
    while !client.stdout().contains("open") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            client.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let listed = |lab: &Lab| {
        let flows = lab.weft_json(&["nat", "n"]);
        flows
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["protocol"] == "tcp" && f["outside"] == "10.237.0.2:7100")
    };
    assert!(listed(&lab), "the connection is not listed");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(listed(&lab), "closed before the idle timeout");
    while !(client.stdout().contains("ended") && server.stdout().contains("closed")) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the idle connection was not closed: client {:?}, server {:?}",
            client.stdout(),
            server.stdout()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert!(!listed(&lab), "the closed connection is still listed");
}
