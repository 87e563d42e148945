//! Isolation and robustness of a cluster node against a hostile container, a hostile
//! underlay and other local users, end to end.
//!
//! - `overlay_flags_are_adopted_as_created`: an overlay network created with `--icc=false
//!   --internal` (and one with `--nat none`) on one node is adopted with the same flags on
//!   the other, and behaves so there: endpoints reach the gateway only, nothing leaves.
//! - `replayed_gossip_is_dropped_and_counted`: gossip datagrams captured on the underlay and
//!   sent again are refused (`weft metrics`: replayed), the cluster stays formed.
//! - `key_files_are_private`: `weft keygen --out FILE` writes mode 0600 and does not
//!   overwrite without `--force`; the daemon refuses a key file others can read.
//!
//! Addresses: underlays 10.166-10.169.0.0/24, overlays 10.206-10.209.0.0/24, VNIs 96xx, one
//! set per test.

use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};
use weft_tests::hosts::*;
use weft_tests::*;

// ---------------------------------------------------------------------------
// set-up
// ---------------------------------------------------------------------------

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
    // cluster publishes for it: b's state is edited to the open flags (and e1 given a
    // published port, as it could have while the network was open), b restarts.
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
    for e in doc["endpoints"].as_array_mut().expect("endpoints") {
        if e["name"] == e1.name.as_str() {
            e["published"] = serde_json::json!([{
                "host_ip": "127.0.0.1", "host_port": 18_433, "container_port": 80,
                "protocol": "tcp"
            }]);
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
    // An --internal network publishes nothing: e1's port was withdrawn, and said so.
    let e1_now = last["endpoints"]
        .as_array()
        .and_then(|eps| eps.iter().find(|e| e["name"] == e1.name.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(e1_now["published"], serde_json::json!([]), "{last:#}");
    assert!(
        b.log()
            .contains("no longer publishes 127.0.0.1:18433->80/tcp"),
        "b's log does not say the published port was withdrawn:\n{}",
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
    // `weft cluster` shows the same count.
    let shown = a.cluster()["gossip_replayed"].as_u64().unwrap_or(0);
    assert!(
        shown >= before + 3 * n,
        "weft cluster: gossip_replayed {shown}"
    );
    let text = a.weft_ok(&["cluster"]);
    assert!(text.contains(" replayed,"), "{text}");
}

// ---------------------------------------------------------------------------
// 3. key file permissions
// ---------------------------------------------------------------------------

/// `weft args...` without a daemon.
fn weft_plain(args: &[&str]) -> std::process::Output {
    run_timeout(Command::new(weft_bin()).args(args), CLI_TIMEOUT)
}

/// The permission bits of `path`.
fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The single line of 64 hex digits in the key file `path`.
fn key_line(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let line = text.trim().to_string();
    assert!(
        text.lines().count() == 1
            && line.len() == 64
            && line.bytes().all(|b| b.is_ascii_hexdigit()),
        "{} should hold one line of 64 hex digits: {text:?}",
        path.display()
    );
    line
}

#[test]
fn key_files_are_private() {
    root_or_skip!();
    let lab = Lab::without_daemon();
    let path = lab.dir.join("k").join("cluster.key");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let p = path.to_str().unwrap();

    // keygen --out: mode 0600 whatever the umask, nothing on stdout.
    let o = run_timeout(
        Command::new("sh").args([
            "-c",
            &format!("umask 000; exec {} keygen --out {p}", weft_bin().display()),
        ]),
        CLI_TIMEOUT,
    );
    assert!(o.status.success(), "keygen --out failed: {}", stderr_of(&o));
    assert!(
        stdout_of(&o).trim().is_empty(),
        "the key went to stdout too"
    );
    assert_eq!(mode_of(&path), 0o600, "keygen --out under umask 000");
    let first = key_line(&path);

    // No overwrite without --force: the file is kept as it was.
    let o = weft_plain(&["keygen", "--out", p]);
    check_error(&o, "keygen --out on an existing file", &[p, "--force"]);
    assert_eq!(key_line(&path), first, "the key was overwritten");

    // --force replaces it, still 0600 even if the old file was open to others.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let o = weft_plain(&["keygen", "--out", p, "--force"]);
    assert!(o.status.success(), "keygen --force: {}", stderr_of(&o));
    assert_ne!(key_line(&path), first, "--force kept the old key");
    assert_eq!(mode_of(&path), 0o600, "after --force");

    // The daemon refuses a key file group or others can read, naming the fix.
    let (h1, _h2, a1, _a2) = underlay(&lab, "10.168.0");
    for mode in [0o644, 0o640] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let dir = lab.dir.join(format!("refused-{mode:o}"));
        fs::create_dir_all(&dir).unwrap();
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &h1])
            .arg(weft_bin())
            .arg("--socket")
            .arg(dir.join("weft.sock"))
            .arg("daemon")
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(["--advertise", &a1, "--cluster-key-file", p]);
        let mut bg = Bg::spawn(c);
        let st = bg.wait(Duration::from_secs(10));
        let err = bg.stderr();
        assert_eq!(
            st.code(),
            Some(1),
            "daemon with a key file of mode {mode:04o}: {st}, stderr {err:?}"
        );
        let fix = format!("chmod 600 {p}");
        assert!(
            err.trim_start().starts_with("error: ") && err.contains(&fix),
            "the refusal of mode {mode:04o} should name the file and `{fix}`: {err:?}"
        );
    }
    // The control: mode 0600 starts.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let d = HostDaemon::start(&lab, "ok", &h1, &a1, &member_args(&path, None));
    assert_eq!(d.cluster()["nodes_alive"], 1);
}
