//! Isolation and robustness of a cluster node against a hostile container, a hostile
//! underlay and other local users, end to end.
//!
//! - `overlay_flags_are_adopted_as_created`: an overlay network created with `--icc=false
//!   --internal` (and one with `--nat none`) on one node is adopted with the same flags on
//!   the other, and behaves so there: endpoints reach the gateway only, nothing leaves.
//! - `replayed_gossip_is_dropped_and_counted`: gossip datagrams captured on the underlay and
//!   sent again are refused (`weft metrics`: replayed), the cluster stays formed.
//!
//! Addresses: underlays 10.166-10.169.0.0/24, overlays 10.206-10.209.0.0/24, VNIs 96xx, one
//! set per test.

use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};
use weft_tests::hosts::*;
use weft_tests::*;

// ---------------------------------------------------------------------------
// set-up
// ---------------------------------------------------------------------------

/// A new cluster key (`weft keygen`) in `lab.dir/name`, mode 0600.
fn key_file(lab: &Lab, name: &str) -> PathBuf {
    let o = run_timeout(Command::new(weft_bin()).arg("keygen"), CLI_TIMEOUT);
    assert!(o.status.success(), "weft keygen failed: {}", stderr_of(&o));
    let path = lab.dir.join(name);
    fs::write(&path, stdout_of(&o)).expect("write the cluster key file");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod 600 the key");
    path
}

/// Daemon arguments of a cluster member joining `join` (the seed: None).
fn member_args(key: &Path, join: Option<&str>) -> Vec<String> {
    let mut v = vec![
        "--cluster-key-file".to_string(),
        key.to_str().unwrap().to_string(),
    ];
    if let Some(j) = join {
        v.extend(["--join".to_string(), j.to_string()]);
    }
    v
}

/// Polls `f` every 100 ms until it returns true (true) or `timeout` passes (false).
fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t0.elapsed() >= timeout {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Two host namespaces joined by a veth underlay: (h1, h2, PREFIX.1, PREFIX.2).
fn underlay(lab: &Lab, prefix: &str) -> (String, String, String, String) {
    let (h1, h2) = (lab.ns("h1"), lab.ns("h2"));
    let (a1, a2) = (format!("{prefix}.1"), format!("{prefix}.2"));
    veth_underlay(&h1, &a1, &h2, &a2);
    (h1, h2, a1, a2)
}

/// Cluster nodes in the namespaces of [`underlay`], the second joining the first; waits
/// until each lists the other alive.
fn two_nodes_on(
    lab: &Lab,
    (h1, h2, a1, a2): &(String, String, String, String),
) -> (HostDaemon, HostDaemon) {
    let key = key_file(lab, "cluster.key");
    let a = HostDaemon::start(lab, "a", h1, a1, &member_args(&key, None));
    let b = HostDaemon::start(lab, "b", h2, a2, &member_args(&key, Some(a1)));
    let formed = wait_until(Duration::from_secs(15), || {
        a.peer_state(&b.node).as_deref() == Some("alive")
            && b.peer_state(&a.node).as_deref() == Some("alive")
    });
    assert!(
        formed,
        "the two nodes did not see each other alive within 15 s\n{}",
        diag(&[&a, &b])
    );
    (a, b)
}

/// Two cluster nodes on a veth underlay `PREFIX.0/24`.
fn two_nodes(lab: &Lab, prefix: &str) -> (HostDaemon, HostDaemon) {
    two_nodes_on(lab, &underlay(lab, prefix))
}

/// `weft network inspect NET` on `d` once the network is there (<= 10 s).
fn inspect_when_there(d: &HostDaemon, others: &[&HostDaemon], net: &str) -> Value {
    let mut found = None;
    wait_until(Duration::from_secs(10), || {
        found = d.try_json(&["network", "inspect", net]).ok();
        found.is_some()
    });
    found.unwrap_or_else(|| {
        let mut all = vec![d];
        all.extend_from_slice(others);
        panic!(
            "network {net} did not reach {} within 10 s\n{}",
            d.label,
            diag(&all)
        )
    })
}

// ---------------------------------------------------------------------------
// 1. an overlay network's isolation flags
// ---------------------------------------------------------------------------

#[test]
fn overlay_flags_are_adopted_as_created() {
    root_or_skip!();
    let lab = Lab::without_daemon();
    let (a, mut b) = two_nodes(&lab, "10.166.0");
    a.weft_ok(&[
        "network",
        "create",
        "closed",
        "--driver",
        "overlay",
        "--vni",
        "9601",
        "--subnet",
        "10.206.0.0/24",
        "--icc=false",
        "--internal",
    ]);
    a.weft_ok(&[
        "network",
        "create",
        "natless",
        "--driver",
        "overlay",
        "--vni",
        "9602",
        "--subnet",
        "10.207.0.0/24",
        "--nat",
        "none",
    ]);
    a.weft_ok(&[
        "network",
        "create",
        "open",
        "--driver",
        "overlay",
        "--vni",
        "9603",
        "--subnet",
        "10.208.0.0/24",
    ]);

    let closed = inspect_when_there(&b, &[&a], "closed");
    let natless = inspect_when_there(&b, &[&a], "natless");
    let got = |v: &Value| (v["icc"].clone(), v["internal"].clone(), v["nat"].clone());
    assert_eq!(
        got(&closed),
        (Value::from(false), Value::from(true), Value::from("proxy")),
        "b adopted `closed` (--icc=false --internal on a) as icc, internal, nat = {:?}: {closed:#}",
        got(&closed)
    );
    assert_eq!(
        got(&natless),
        (Value::from(true), Value::from(false), Value::from("none")),
        "b adopted `natless` (--nat none on a) as icc, internal, nat = {:?}: {natless:#}",
        got(&natless)
    );

    // Behaviour on b: two endpoints reach their gateway but not each other, and nothing
    // leaves the network. The control: an endpoint of an open network on b reaches b's own
    // underlay address through the proxy NAT.
    inspect_when_there(&b, &[&a], "open");
    let e3 = b.connect("open", &lab.ns("c3"), &[]);
    assert!(
        lab.wait_ping(&e3.ns, &b.addr, Duration::from_secs(5)),
        "control: an endpoint of an open overlay network on b cannot ping {}\n{}",
        b.addr,
        diag(&[&a, &b])
    );
    let (n1, n2) = (lab.ns("c1"), lab.ns("c2"));
    let e1 = b.connect("closed", &n1, &[]);
    let e2 = b.connect("closed", &n2, &[]);
    let gw = closed["gateway"].as_str().expect("gateway in inspect");
    assert!(
        lab.wait_ping(&e1.ns, gw, Duration::from_secs(5)),
        "an endpoint on b cannot ping its gateway {gw}\n{}",
        diag(&[&a, &b])
    );
    assert!(
        !ping_ok(&lab, &e1.ns, &e2.ip, 2, &[]),
        "endpoints of an --icc=false network on b reach each other\n{}",
        diag(&[&a, &b])
    );
    assert!(
        !ping_ok(&lab, &e1.ns, &b.addr, 2, &[]),
        "an endpoint of an --internal network on b reaches the outside ({})\n{}",
        b.addr,
        diag(&[&a, &b])
    );

    // A node that adopted the network as open (as an older weft did) takes the flags the
    // cluster publishes for it: b's state is edited to the open flags, b restarts.
    b.stop();
    let state = b.state_dir.join("state.json");
    let mut doc: Value = serde_json::from_str(&fs::read_to_string(&state).unwrap()).unwrap();
    for n in doc["networks"]
        .as_array_mut()
        .expect("networks in the state")
    {
        if n["name"] == "closed" {
            n["icc"] = Value::from(true);
            n["internal"] = Value::from(false);
        }
    }
    fs::write(&state, serde_json::to_string(&doc).unwrap()).unwrap();
    b.launch();
    let mut last = Value::Null;
    let closed_again = wait_until(Duration::from_secs(10), || {
        last = b
            .try_json(&["network", "inspect", "closed"])
            .unwrap_or_default();
        last["icc"] == false && last["internal"] == true
    });
    assert!(
        closed_again,
        "b restarted with `closed` open did not take the cluster's flags within 10 s: {last:#}\n{}",
        diag(&[&a, &b])
    );
    assert!(
        b.log().contains("closed: flags from the cluster applied"),
        "b's log does not say it applied the flags of `closed`:\n{}",
        b.log()
    );
    assert!(
        !ping_ok(&lab, &e1.ns, &e2.ip, 2, &[]),
        "after the flags were applied, endpoints of `closed` on b reach each other\n{}",
        diag(&[&a, &b])
    );
}

// ---------------------------------------------------------------------------
// 2. replayed gossip
// ---------------------------------------------------------------------------

/// weft's default `--gossip-port`.
const GOSSIP_PORT: u16 = 7946;

/// Sends every hex datagram of argv[3:] three times to argv[1]:argv[2].
const REPLAYER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for d in sys.argv[3:]:
    for _ in range(3):
        s.sendto(bytes.fromhex(d), (sys.argv[1], int(sys.argv[2])))
print("sent")
"#;

/// The value of the series `line_start` in `weft metrics` of `d` (0 if absent).
fn metric(d: &HostDaemon, line_start: &str) -> u64 {
    d.weft_ok(&["metrics"])
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn replayed_gossip_is_dropped_and_counted() {
    root_or_skip!();
    require_tools(&["tcpdump", "python3"]);
    let lab = Lab::without_daemon();
    let (a, b) = two_nodes(&lab, "10.167.0");
    // Datagrams of the formed cluster: each was delivered (and accepted) once already.
    let sniffer = Sniffer::start(
        &lab,
        &a.ns,
        "ul0",
        &format!("udp dst port {GOSSIP_PORT}"),
        "gossip.pcap",
    );
    thread::sleep(Duration::from_millis(1500));
    let captured: Vec<String> = sniffer
        .finish()
        .iter()
        .filter_map(|f| {
            let ip = ipv4(f)?;
            let from_b = ip_string(ip.src) == b.addr;
            (from_b && ip.proto == 17 && ip.payload.len() > 8).then(|| to_hex(&ip.payload[8..]))
        })
        .take(5)
        .collect();
    assert!(
        !captured.is_empty(),
        "no gossip datagram from {} to {} captured",
        b.addr,
        a.addr
    );
    let series = "weft_gossip_dropped_total{reason=\"replayed\"}";
    let before = metric(&a, series);
    let mut args = vec!["python3", "-c", REPLAYER, &a.addr, "7946"];
    args.extend(captured.iter().map(String::as_str));
    let out = lab.exec_ok(&b.ns, &args);
    assert!(out.contains("sent"), "{out}");
    let n = captured.len() as u64;
    let mut now = before;
    let counted = wait_until(Duration::from_secs(5), || {
        now = metric(&a, series);
        now >= before + 3 * n
    });
    assert!(
        counted,
        "{n} captured gossip datagrams sent 3 times each: replayed went from {before} to {now} \
         (expected +{})\n{}",
        3 * n,
        a.weft_ok(&["metrics"])
    );
    assert_eq!(
        a.peer_state(&b.node).as_deref(),
        Some("alive"),
        "the cluster is still formed after the replays"
    );
}
