//! `weft capture --network NET`: every port of a network in one pcapng file (an interface
//! per port, directions marked), read back by tshark; `weft capture PORT --outer` on a
//! tunnel port: the VXLAN datagrams, decoded by tshark.
//!
//! Addresses: 10.137.0.0/24 (local network), underlay 10.138.0.0/24, overlay 10.139.0.0/24.

use std::process::Command;
use std::time::{Duration, Instant};
use weft_tests::hosts::*;
use weft_tests::*;

/// Starts a capture command and waits until it says `want` on stderr.
fn start(c: Command, want: &str) -> Bg {
    let mut bg = Bg::spawn(c);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bg.stderr().contains(want) {
        assert!(bg.running(), "the capture exited early: {}", bg.stderr());
        assert!(
            Instant::now() < deadline,
            "the capture did not start: {}",
            bg.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    bg
}

/// `tshark -r FILE -T fields -e ...` (with `-Y FILTER` if given): one line per frame.
fn tshark(file: &std::path::Path, filter: Option<&str>, fields: &[&str]) -> Vec<String> {
    let mut c = Command::new("tshark");
    c.arg("-r").arg(file).args(["-T", "fields"]);
    if let Some(f) = filter {
        c.args(["-Y", f]);
    }
    for f in fields {
        c.args(["-e", f]);
    }
    let o = run_timeout(&mut c, Duration::from_secs(30));
    assert!(o.status.success(), "tshark failed: {}", describe(&o));
    stdout_of(&o).lines().map(str::to_string).collect()
}

#[test]
fn a_network_capture_has_an_interface_per_port_and_both_directions() {
    root_or_skip!();
    require_tool("tshark");
    let lab = Lab::new();
    lab.create_network("n", "10.137.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);
    lab.assert_ping(&a, &b);
    let file = lab.dir.join("net.pcapng");
    let mut c = lab.weft_cmd();
    c.args(["capture", "--network", "n", "-c", "8", "-w"])
        .arg(&file);
    let mut cap = start(c, "capturing every port of network n");
    let _ping = lab.spawn_in(&a.ns, &["ping", "-c", "10", "-i", "0.2", &b.ip]);
    let st = cap.wait(Duration::from_secs(20));
    assert!(
        st.success(),
        "capture -c 8 exited with {st}: {}",
        cap.stderr()
    );

    let rows = tshark(
        &file,
        None,
        &["frame.interface_name", "frame.p2p_dir", "icmp.type"],
    );
    assert_eq!(rows.len(), 8, "-c 8 writes 8 frames: {rows:?}");
    // An echo request enters at a's port (in) and leaves at b's (out); the reply the other
    // way. tshark's p2p_dir: 0 sent (outbound), 1 received (inbound).
    let has = |iface: &str, dir: &str, icmp: &str| {
        rows.iter()
            .any(|r| r.split('\t').collect::<Vec<_>>() == [iface, dir, icmp])
    };
    assert!(
        has(&a.name, "1", "8"),
        "no echo request in at {}: {rows:?}",
        a.name
    );
    assert!(
        has(&b.name, "0", "8"),
        "no echo request out at {}: {rows:?}",
        b.name
    );
    assert!(
        has(&b.name, "1", "0"),
        "no echo reply in at {}: {rows:?}",
        b.name
    );
    assert!(
        has(&a.name, "0", "0"),
        "no echo reply out at {}: {rows:?}",
        a.name
    );

    // Without -w: a line per frame with its port and direction.
    let mut c = lab.weft_cmd();
    c.args(["capture", "--network", "n", "-c", "2"]);
    let mut cap = start(c, "capturing every port of network n");
    let _ping = lab.spawn_in(&a.ns, &["ping", "-c", "5", "-i", "0.2", &b.ip]);
    assert!(
        cap.wait(Duration::from_secs(20)).success(),
        "{}",
        cap.stderr()
    );
    let out = cap.stdout();
    assert!(
        out.contains(&format!(" {} in  {} > {}", a.name, a.mac, b.mac)),
        "{out}"
    );
    lab.weft_err(
        &["capture", "--network", "nosuch"],
        &["no network named \"nosuch\""],
    );
    lab.weft_err(&["capture", &a.name, "--outer"], &["not a tunnel port"]);
}

#[test]
fn an_outer_capture_shows_the_vxlan_datagrams() {
    root_or_skip!();
    require_tool("tshark");
    let lab = Lab::without_daemon();
    let (h1_ip, h2_ip) = ("10.138.0.1", "10.138.0.2");
    let (h1, h2) = (lab.ns("h1"), lab.ns("h2"));
    veth_underlay(&h1, h1_ip, &h2, h2_ip);
    let vni = 7137u32;
    let vni_s = vni.to_string();
    let d1 = HostDaemon::start(&lab, "h1", &h1, h1_ip, &[]);
    let d2 = HostDaemon::start(&lab, "h2", &h2, h2_ip, &[]);
    let mut ends = Vec::new();
    for (d, peer, ip) in [(&d1, h2_ip, "10.139.0.11"), (&d2, h1_ip, "10.139.0.12")] {
        d.create_overlay("ov", &vni_s, "10.139.0.0/24");
        d.weft_ok(&["peer", "add", peer, "--vni", &vni_s]);
        let ns = lab.ns(&format!("c{}", ends.len() + 1));
        ends.push(d.connect("ov", &ns, &["--ip", ip]));
    }
    assert!(
        ping_ok(&lab, &ends[0].ns, &ends[1].ip, 2, &[]),
        "{}",
        diag(&[&d1, &d2])
    );
    let file = lab.dir.join("outer.pcap");
    let tunnel = tunnel_name(vni, h2_ip);
    let mut c = d1.cmd();
    c.args(["capture", &tunnel, "--outer", "-c", "6", "-w"])
        .arg(&file);
    let mut cap = start(c, &format!("capturing on {tunnel} (VXLAN datagrams)"));
    let _ping = lab.spawn_in(&ends[0].ns, &["ping", "-c", "10", "-i", "0.2", &ends[1].ip]);
    assert!(
        cap.wait(Duration::from_secs(20)).success(),
        "{}",
        cap.stderr()
    );

    let rows = tshark(
        &file,
        None,
        &[
            "ip.src",
            "ip.dst",
            "udp.dstport",
            "udp.srcport",
            "vxlan.vni",
            "icmp.type",
        ],
    );
    assert_eq!(rows.len(), 6, "{rows:?}");
    let fields: Vec<Vec<&str>> = rows.iter().map(|r| r.split('\t').collect()).collect();
    // Out: h1 -> h2:4789; in: h2 -> h1:4789; each a VXLAN datagram of VNI 7137 around ICMP.
    // tshark prints the inner and outer addresses of a tunnel, outer first.
    let out = fields.iter().any(|f| {
        f[0].starts_with(h1_ip)
            && f[1].starts_with(h2_ip)
            && f[2] == "4789"
            && f[4] == vni_s
            && f[5] == "8"
    });
    let back = fields.iter().any(|f| {
        f[0].starts_with(h2_ip)
            && f[1].starts_with(h1_ip)
            && f[2].starts_with("4789")
            && f[4] == vni_s
            && f[5] == "0"
    });
    assert!(out && back, "VXLAN datagrams both ways expected: {rows:?}");
}
