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
use std::fs;
use std::process::Command;
use std::thread;
use std::time::Duration;
use weft_tests::hosts::*;
use weft_tests::*;

// ---------------------------------------------------------------------------
// python3 helpers run inside namespaces
// ---------------------------------------------------------------------------

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
// kernel VTEPs and links
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// packets
// ---------------------------------------------------------------------------

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

fn assert_ping(lab: &Lab, from: &str, to: &str, what: &str, hosts: &[&HostDaemon]) {
    if !ping_ok(lab, from, to, 2, &[]) {
        let d = lab.exec(from, &["sh", "-c", "ip addr; ip route; ip neigh"]);
        panic!(
            "ping {what} ({from} -> {to}) failed\n{}\n{}",
            stdout_of(&d),
            diag(hosts)
        );
    }
}

// ---------------------------------------------------------------------------
// 1. interop with the Linux kernel's vxlan device
// ---------------------------------------------------------------------------

#[test]
fn kernel_vxlan_interop() {
    root_or_skip!();
    require_tools(&["bridge"]);
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
        diag(&hosts)
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
        diag(&hosts)
    );
    assert!(
        ping_ok(&lab, &h2, &c1.ip, 2, &["-M", "do", "-s", "1422"]),
        "kernel -> c1: a full-size (1450-byte) packet with DF does not get through\n{}",
        diag(&hosts)
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
    root_or_skip!();
    require_tools(&["bridge"]);
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
        diag(&hosts)
    );
    assert!(
        ping_ok(&lab, &c1ns, kernel_ip, 1, &["-M", "do", "-s", "1422"]),
        "c1 cannot send a full-size packet through the tunnel\n{}",
        diag(&hosts)
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
    root_or_skip!();
    require_tools(&["bridge"]);
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
        diag(&hosts)
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
            diag(&hosts)
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
    root_or_skip!();
    require_tools(&["bridge"]);
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
        weft.running(),
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
    root_or_skip!();
    require_tools(&["bridge"]);
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
    let third = HostDaemon::start(
        &lab,
        "h1-third",
        &h1,
        h1_ip,
        &["--vxlan-port".to_string(), "4790".to_string()],
    );
    third.weft_ok(&as_refs(&create(
        "ov",
        "10.195.0.0/24",
        &["--driver", "overlay", "--vni", "5006"],
    )));
    let p = third.port("vxlan:4790");
    assert_eq!(p["kind"], "vxlan", "{p:#}");
    drop(third);
    assert!(
        weft.running() && ping_ok(&lab, &c1ns, kernel_ip, 2, &[]),
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
    root_or_skip!();
    require_tools(&["bridge"]);
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
