//! A hostile container against the gateway: what one container sends must not stop the
//! gateway's runtime for everyone else.

use std::time::Duration;
use weft_tests::*;

/// Opens `count` TCP connections to `server:53`, sends two octets on each (a DNS-over-TCP
/// length prefix and nothing after it) and resets it at once (SO_LINGER 0).
const RESET_STORM: &str = r#"
import socket, struct, sys, threading
server, count = sys.argv[1], int(sys.argv[2])
def one(i):
    try:
        s = socket.create_connection((server, 53), timeout=3)
        s.send([b"\x00\x00", b"\x00\x05", b"\x00\x00\x00\x00"][i % 3])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    except OSError:
        pass
for round in range(10):
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads: t.start()
    for t in threads: t.join()
print("sent", count)
"#;

#[test]
fn a_reset_storm_on_dns_over_tcp_does_not_stop_the_gateway() {
    root_or_skip!();
    require_tool("dig");
    require_tool("python3");
    let lab = Lab::new();
    lab.create_network("n", "10.91.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &["--name", "attacker"]);
    let b = lab.connect("n", &lab.ns("b"), &["--name", "victim"]);
    let gw = lab.inspect("n")["gateway"].as_str().unwrap().to_string();
    let dig_tcp = |ns: &str| {
        let out = lab.exec(
            ns,
            &[
                "dig",
                "+tcp",
                "+time=3",
                "+tries=1",
                "+short",
                &format!("@{gw}"),
                "attacker",
            ],
        );
        stdout_of(&out).trim().to_string()
    };
    assert_eq!(dig_tcp(&b.ns), a.ip, "DNS over TCP works before the storm");

    let out = lab.exec(&a.ns, &["python3", "-c", RESET_STORM, &gw, "40"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    std::thread::sleep(Duration::from_millis(500));

    // The gateway's runtime still serves the other container, over TCP and for ICMP to
    // the outside... and the attacker too.
    assert_eq!(dig_tcp(&b.ns), a.ip, "DNS over TCP after the storm");
    assert_eq!(dig_tcp(&a.ns), a.ip);
    assert!(lab.daemon_alive());
    let log = lab.daemon_log();
    assert!(!log.contains("panicked"), "the daemon's log:\n{log}");
}

/// Parses "aa:bb:cc:dd:ee:ff".
fn mac_of(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (i, part) in s.split(':').enumerate() {
        m[i] = u8::from_str_radix(part, 16).unwrap();
    }
    m
}

fn ip_of(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

/// The RFC 1071 checksum of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet/IPv4/UDP frame (UDP checksum 0: none) carrying `payload`.
fn udp_frame(eth: ([u8; 6], [u8; 6]), src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut f = eth.0.to_vec();
    f.extend_from_slice(&eth.1);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&9999u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// An ARP reply (RFC 826) "`spa` is at `sha`" sent from `eth_src` to `to` (MAC, address).
fn arp_reply(eth_src: [u8; 6], (sha, spa): ([u8; 6], [u8; 4]), to: ([u8; 6], [u8; 4])) -> Vec<u8> {
    let mut f = to.0.to_vec();
    f.extend_from_slice(&eth_src);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&to.0);
    f.extend_from_slice(&to.1);
    f
}

/// Receives UDP on port 9999 for `secs` seconds and prints each payload on a line.
const UDP_LISTENER: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
s.settimeout(0.2)
print("ready", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    try:
        data, peer = s.recvfrom(2048)
        print(data.decode(errors="replace"), peer[0], flush=True)
    except socket.timeout:
        pass
"#;

/// Starts a Python listener (`script` with `args`) in `ns` and waits until it prints "ready".
fn spawn_ready(lab: &Lab, ns: &str, script: &str, args: &[&str]) -> Bg {
    let mut cmd = vec!["python3", "-u", "-c", script];
    cmd.extend_from_slice(args);
    let l = lab.spawn_in(ns, &cmd);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !l.stdout().contains("ready") {
        assert!(
            std::time::Instant::now() < deadline,
            "listener did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    l
}

/// Starts the UDP listener in `ns` and waits until it is bound.
fn listen_udp(lab: &Lab, ns: &str, secs: &str) -> Bg {
    spawn_ready(lab, ns, UDP_LISTENER, &[secs])
}

/// The MAC `ns` has for `ip` in its neighbour table, if any.
fn neighbour_mac(lab: &Lab, ns: &str, ip: &str) -> Option<String> {
    let out = stdout_of(&lab.exec(ns, &["ip", "neigh", "show", ip]));
    let words: Vec<&str> = out.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "lladdr")?;
    words.get(at + 1).map(|s| s.to_lowercase())
}

#[test]
fn a_container_cannot_spoof_arp_a_neighbours_address_or_its_mac() {
    root_or_skip!();
    require_tool("python3");
    let lab = Lab::new();
    lab.create_network("n", "10.92.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &["--name", "attacker"]);
    let b = lab.connect("n", &lab.ns("b"), &["--name", "victim"]);
    let c = lab.connect("n", &lab.ns("c"), &["--name", "listener"]);
    let gw = lab.inspect("n")["gateway"].as_str().unwrap().to_string();
    assert!(lab.ping(&b.ns, &gw));
    let gw_mac = neighbour_mac(&lab, &b.ns, &gw).expect("the victim resolved its gateway");

    let listener = listen_udp(&lab, &c.ns, "3");
    let (am, bm, cm) = (mac_of(&a.mac), mac_of(&b.mac), mac_of(&c.mac));
    let frames = vec![
        // "The gateway is at my MAC", to the victim (ARP cache poisoning).
        arp_reply(am, (am, ip_of(&gw)), (bm, ip_of(&b.ip))),
        arp_reply(am, (am, ip_of(&gw)), (bm, ip_of(&b.ip))),
        // The victim's address from the attacker's MAC.
        udp_frame((cm, am), ip_of(&b.ip), ip_of(&c.ip), b"spoofed-ip"),
        // The victim's MAC and address.
        udp_frame((cm, bm), ip_of(&b.ip), ip_of(&c.ip), b"spoofed-mac"),
        // The attacker as itself: delivered.
        udp_frame((cm, am), ip_of(&a.ip), ip_of(&c.ip), b"honest"),
    ];
    assert_eq!(lab.send_frames(&a.ns, "eth0", &frames), frames.len());
    let mut listener = listener;
    listener.wait(Duration::from_secs(10));
    let got = listener.stdout();
    assert!(got.contains("honest"), "the honest datagram arrives: {got}");
    assert!(!got.contains("spoofed"), "spoofed datagrams arrived: {got}");

    // The victim still knows its gateway by the gateway's MAC; its own MAC stays on its
    // port; the attacker's port counted each refusal by reason.
    assert_eq!(neighbour_mac(&lab, &b.ns, &gw), Some(gw_mac));
    let entry = lab
        .fdb("n")
        .into_iter()
        .find(|e| e["mac"].as_str() == Some(b.mac.as_str()))
        .expect("the victim's MAC is in the FDB");
    assert!(b.is_port(&entry["port"]), "{entry}");
    let port = lab.port("attacker");
    assert_eq!(drops(&port, "spoofed_arp"), 2, "{:?}", all_drops(&port));
    assert_eq!(drops(&port, "spoofed_ip"), 1, "{:?}", all_drops(&port));
    assert_eq!(drops(&port, "spoofed_mac"), 1, "{:?}", all_drops(&port));
}

#[test]
fn port_security_can_be_turned_off_per_endpoint_and_trace_shows_what_it_refuses() {
    root_or_skip!();
    require_tool("python3");
    let lab = Lab::new();
    lab.create_network("n", "10.93.0.0/24", &[]);
    let router_ns = lab.ns("router");
    let out = lab.weft_ok(&[
        "connect",
        "n",
        "--netns",
        &router_ns,
        "--name",
        "router",
        "--port-security=false",
    ]);
    assert!(out.contains("port security off"), "{out}");
    let b = lab.connect("n", &lab.ns("b"), &["--name", "b"]);
    let c = lab.connect("n", &lab.ns("c"), &["--name", "c"]);
    let endpoints = lab.endpoints("n");
    let security = |name: &str| {
        endpoints
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["port_security"].clone())
    };
    assert_eq!(security("router"), Some(serde_json::Value::Bool(false)));
    assert_eq!(security("b"), Some(serde_json::Value::Bool(true)));

    // The router may send for addresses behind it (here: one it does not own).
    let router_mac = mac_of(
        lab.endpoints("n")
            .iter()
            .find(|e| e["name"] == "router")
            .and_then(|e| e["mac"].as_str())
            .unwrap(),
    );
    let cm = mac_of(&c.mac);
    let listener = listen_udp(&lab, &c.ns, "2");
    let routed = udp_frame((cm, router_mac), [10, 200, 0, 9], ip_of(&c.ip), b"routed");
    // But not as a secured endpoint's MAC.
    let stolen = udp_frame((cm, mac_of(&b.mac)), ip_of(&b.ip), ip_of(&c.ip), b"stolen");
    assert_eq!(lab.send_frames(&router_ns, "eth0", &[routed, stolen]), 2);
    let mut listener = listener;
    listener.wait(Duration::from_secs(10));
    let got = listener.stdout();
    assert!(got.contains("routed 10.200.0.9"), "{got}");
    assert!(!got.contains("stolen"), "{got}");
    assert_eq!(drops(&lab.port("router"), "spoofed_mac"), 1);

    // `weft trace` says why a secured port's spoofed frame is dropped.
    let mut trace = lab.weft_cmd();
    trace.args(["trace", "b", "-c", "1"]);
    let mut trace = Bg::spawn(trace);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !trace.stderr().contains("tracing frames entering b") {
        assert!(
            std::time::Instant::now() < deadline,
            "weft trace did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let spoof = udp_frame((cm, mac_of(&b.mac)), [10, 93, 0, 77], ip_of(&c.ip), b"x");
    assert_eq!(lab.send_frames(&b.ns, "eth0", &[spoof]), 1);
    trace.wait(Duration::from_secs(10));
    let text = trace.stdout();
    assert!(text.contains("port security"), "{text}");
    assert!(text.contains("spoofed_ip"), "{text}");
}

/// Sends one datagram carrying `payload` to `dst:port` (argv: dst port payload).
const UDP_SEND: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
"#;

/// Receives on `ports` for `secs` seconds, printing "PORT PAYLOAD" per datagram.
const UDP_MULTI_LISTENER: &str = r#"
import select, socket, sys, time
socks = []
for p in sys.argv[2:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(p)))
    socks.append((s, p))
print("ready", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    r, _, _ = select.select([s for s, _ in socks], [], [], 0.2)
    for s in r:
        data = s.recv(2048)
        port = [p for q, p in socks if q is s][0]
        print(port, data.decode(errors="replace"), flush=True)
"#;

/// (The gossip port is refused the same way when the daemon is in a cluster.)
#[test]
fn containers_cannot_reach_the_underlays_vxlan_port_through_the_nat() {
    root_or_skip!();
    require_tool("python3");
    let lab = Lab::new();
    let out_ns = lab.outside(221);
    lab.create_network("n", "10.94.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &["--name", "a"]);
    let mut listener = spawn_ready(&lab, &out_ns, UDP_MULTI_LISTENER, &["3", "4789", "5000"]);
    for (port, what) in [("4789", "vxlan"), ("5000", "ordinary")] {
        let out = lab.exec(
            &a.ns,
            &["python3", "-c", UDP_SEND, "10.221.0.2", port, what],
        );
        assert!(out.status.success(), "{}", stderr_of(&out));
    }
    listener.wait(Duration::from_secs(10));
    let got = listener.stdout();
    assert!(
        got.contains("5000 ordinary"),
        "ordinary UDP goes out: {got}"
    );
    assert!(
        !got.contains("vxlan"),
        "a VXLAN datagram left through the NAT: {got}"
    );
    assert!(drops(&lab.port("a"), "nat_refused") >= 1);
}
