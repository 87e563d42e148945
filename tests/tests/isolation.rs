//! Networks are separate broadcast domains.

use std::time::Duration;
use weft_tests::*;

#[test]
fn networks_do_not_leak_frames_or_traffic() {
    root_or_skip!();
    require_tool("tcpdump");
    let lab = Lab::new();
    lab.create_network("a", "10.31.0.0/24", &[]);
    lab.create_network("b", "10.32.0.0/24", &[]);
    let a1 = lab.connect("a", &lab.ns("a1"), &[]);
    let a2 = lab.connect("a", &lab.ns("a2"), &["--kind", "veth"]);
    let b1 = lab.connect("b", &lab.ns("b1"), &[]);
    let b2 = lab.connect("b", &lab.ns("b2"), &["--kind", "veth"]);

    // Make cross-network traffic possible at L2 if the switch leaked it:
    // on-link routes to the other subnet, so a1 ARPs for b1 directly and b1
    // would answer directly.
    lab.exec_ok(
        &a1.ns,
        &["ip", "route", "add", "10.32.0.0/24", "dev", &a1.ifname],
    );
    lab.exec_ok(
        &b1.ns,
        &["ip", "route", "add", "10.31.0.0/24", "dev", &b1.ifname],
    );
    lab.exec_ok(
        &a1.ns,
        &["sysctl", "-qw", "net.ipv4.icmp_echo_ignore_broadcasts=0"],
    );

    let pcap_b1 = lab.dir.join("b1.pcap");
    let pcap_b2 = lab.dir.join("b2.pcap");
    let pcap_a2 = lab.dir.join("a2.pcap");
    let mut caps = [
        lab.capture(&b1.name, &pcap_b1, None),
        lab.capture(&b2.name, &pcap_b2, None),
        lab.capture(&a2.name, &pcap_a2, None),
    ];
    for c in caps.iter_mut() {
        c.wait_active(Duration::from_secs(10));
    }

    // Network A traffic: unicast pings (fresh ARP broadcasts), broadcast pings,
    // and direct cross-network attempts that must fail (their ARP requests are
    // broadcast in the sender's network only).
    lab.assert_ping(&a1, &a2);
    lab.assert_ping(&a2, &a1);
    let _ = lab.exec(
        &a2.ns,
        &[
            "ping",
            "-b",
            "-c",
            "3",
            "-W",
            "1",
            "-i",
            "0.2",
            "10.31.0.255",
        ],
    );
    lab.exec_ok(&a1.ns, &["ip", "neigh", "flush", "all"]);
    lab.assert_ping(&a1, &a2);
    assert!(
        !lab.ping(&a1.ns, &b1.ip),
        "a1 (network a) could ping b1 (network b) across networks"
    );
    assert!(
        !lab.ping(&a2.ns, &b2.ip),
        "a2 (network a) could ping b2 (network b) across networks"
    );
    assert!(
        !lab.ping(&b1.ns, &a1.ip),
        "b1 (network b) could ping a1 (network a) across networks"
    );

    // Network B traffic, so we know the captures work.
    lab.assert_ping(&b2, &b1);
    let _ = lab.exec(
        &b1.ns,
        &[
            "ping",
            "-b",
            "-c",
            "2",
            "-W",
            "1",
            "-i",
            "0.2",
            "10.32.0.255",
        ],
    );

    for c in caps.iter_mut() {
        let st = c.stop();
        assert!(
            st.code().is_some(),
            "capture killed by SIGTERM instead of exiting ({st}); stderr {:?}",
            c.stderr()
        );
    }

    // Every frame seen on a port of network X comes from an endpoint of X and
    // is not addressed to an endpoint of the other network.
    let check = |path: &std::path::Path,
                 port: &Endpoint,
                 own: [&Endpoint; 2],
                 other: [&Endpoint; 2],
                 other_bcast: &str| {
        let pcap = read_pcap(path)
            .unwrap_or_else(|e| panic!("capture of {} is not a valid pcap: {e}", port.name));
        assert_eq!(pcap.linktype, 1, "LINKTYPE_ETHERNET expected");
        assert!(
            !pcap.frames.is_empty(),
            "capture on {} is empty although its network had traffic",
            port.name
        );
        // The own network's endpoints and its gateway (which answers ARP) may send.
        let gateway_mac = lab.inspect(&own[0].network)["gateway_mac"]
            .as_str()
            .map(mac_bytes)
            .expect("inspect shows gateway_mac");
        let own_macs = [own[0].mac_bytes(), own[1].mac_bytes(), gateway_mac];
        for f in &pcap.frames {
            assert!(f.len() >= 14, "runt frame in capture");
            assert!(
                own_macs.iter().any(|m| f[6..12] == m[..]),
                "capture on {} contains a frame not sent by its own network ({} / {}): {}",
                port.name,
                own[0].name,
                own[1].name,
                to_hex(f)
            );
            for o in other {
                assert!(
                    f[0..6] != o.mac_bytes()[..],
                    "frame to {} (other network) on {}: {}",
                    o.name,
                    port.name,
                    to_hex(f)
                );
            }
        }
        let (ok, out, err) = tcpdump_read(path, &["-e"]);
        assert!(ok, "tcpdump -r failed: {err}");
        assert!(
            out.contains("ICMP echo request") && out.contains("ICMP echo reply"),
            "no ICMP of the own network in the capture on {}:\n{out}",
            port.name
        );
        for bad in [&other[0].mac, &other[1].mac, &other_bcast.to_string()] {
            assert!(
                !out.contains(bad.as_str()),
                "capture on {} shows {bad} of the other network:\n{out}",
                port.name
            );
        }
    };
    check(&pcap_b1, &b1, [&b1, &b2], [&a1, &a2], "10.31.0.255");
    check(&pcap_b2, &b2, [&b1, &b2], [&a1, &a2], "10.31.0.255");
    check(&pcap_a2, &a2, [&a1, &a2], [&b1, &b2], "10.32.0.255");

    // Network A ports never forwarded anything to network B ports and the
    // other way round: b ports only saw b traffic (checked above); and a's
    // FDB holds no b MAC.
    let fdb_a = lab.fdb("a");
    for m in [&b1.mac, &b2.mac] {
        assert!(
            fdb_entry(&fdb_a, m).is_none(),
            "network a's FDB has network b's MAC {m}: {fdb_a:?}"
        );
    }
    let fdb_b = lab.fdb("b");
    for m in [&a1.mac, &a2.mac] {
        assert!(
            fdb_entry(&fdb_b, m).is_none(),
            "network b's FDB has network a's MAC {m}: {fdb_b:?}"
        );
    }
}

/// Reads `/proc/sys/net/FAMILY/conf/IFNAME/KEY` of the host namespace (None: no such file).
fn host_conf(family: &str, ifname: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/net/{family}/conf/{ifname}/{key}"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// `ip ARGS` in the host namespace: its stdout, asserting success.
fn ip_out(args: &[&str]) -> String {
    let o = run_timeout(std::process::Command::new("ip").args(args), EXEC_TIMEOUT);
    assert!(o.status.success(), "ip {args:?}: {}", stderr_of(&o));
    stdout_of(&o)
}

/// The link-local address the kernel generates from `mac` (modified EUI-64, RFC 4291
/// appendix A), the one a host end would have with IPv6 on.
fn eui64_link_local(mac: [u8; 6]) -> std::net::Ipv6Addr {
    let g = |a: u8, b: u8| u16::from_be_bytes([a, b]);
    std::net::Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        g(mac[0] ^ 2, mac[1]),
        g(mac[2], 0xff),
        g(0xfe, mac[3]),
        g(mac[4], mac[5]),
    )
}

/// `ip -6 -o addr show dev DEV` (in `ns`, or the host), once no address is tentative any
/// more (DAD done; waits <= 5 s).
fn settled_addrs(lab: &Lab, ns: Option<&str>, dev: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let out = match ns {
            Some(ns) => lab.exec_ok(ns, &["ip", "-6", "-o", "addr", "show", "dev", dev]),
            None => ip_out(&["-6", "-o", "addr", "show", "dev", dev]),
        };
        if !out.contains("tentative") || std::time::Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The addresses in `ip -o addr` output.
fn addrs_of(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.find(|t| *t == "inet6" || *t == "inet")?;
            Some(w.next()?.split('/').next()?.to_string())
        })
        .collect()
}

const TCP6_CONNECT: &str = r#"
import socket, sys
addr, port, dev = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET6)
s.settimeout(4)
try:
    s.connect((addr, port, 0, socket.if_nametoindex(dev)))
except OSError as e:
    print("not reached:", e)
    sys.exit(1)
print("connected")
"#;

const UDP4_SEND: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(b"probe", (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.1)
"#;

/// The host end of a veth endpoint is a switch port only, not an interface of the host:
/// no IPv6 (disabled before the link went up, so no link-local address ever; router
/// advertisements ignored and no address generated should IPv6 be turned on again), no
/// IPv4 address, and the host's stack takes nothing the container sends into it. So a
/// container reaches no host service through it: not over the host end's link-local
/// address, not by sending IPv4 to a host address at the host end's MAC, and the host
/// answers neither neighbour discovery nor ARP there.
#[test]
fn veth_host_end_is_inert() {
    root_or_skip!();
    require_tool("python3");
    let lab = Lab::new();
    lab.create_network("v", "10.33.0.0/24", &[]);
    let c = lab.connect("v", &lab.ns("c"), &["--kind", "veth"]);
    let host = c.json["host_ifname"]
        .as_str()
        .unwrap_or_else(|| panic!("veth endpoint without host_ifname: {}", c.json))
        .to_string();
    let host_mac = std::fs::read_to_string(format!("/sys/class/net/{host}/address")).unwrap();
    let host_mac = mac_bytes(host_mac.trim());

    // IPv6 on in the container (the lab turns it off), usable at once (no DAD).
    lab.exec_ok(
        &c.ns,
        &[
            "sh",
            "-c",
            &format!(
                "sysctl -qw net.ipv6.conf.{i}.accept_dad=0 && sysctl -qw net.ipv6.conf.all.disable_ipv6=0 && sysctl -qw net.ipv6.conf.{i}.disable_ipv6=0",
                i = c.ifname
            ),
        ],
    );
    let own = addrs_of(&settled_addrs(&lab, Some(&c.ns), &c.ifname));
    assert!(
        own.iter().any(|a| a.starts_with("fe80:")),
        "the container has no link-local address: {own:?}"
    );

    let host_v6 = settled_addrs(&lab, None, &host);
    let mut exposed = host_end_settings(&host, &host_v6);
    exposed.extend(all_nodes_answers(&lab, &c, &own));
    // Candidates: the link-local address the kernel would generate, and any it has.
    let mut candidates = addrs_of(&host_v6);
    candidates.push(eui64_link_local(host_mac).to_string());
    candidates.dedup();
    exposed.extend(ipv6_tcp_reaches(&lab, &c, &candidates));
    exposed.extend(ipv4_reaches(&lab, &c, host_mac));
    assert!(
        exposed.is_empty(),
        "veth host end {host} is exposed to the container:\n  {}",
        exposed.join("\n  ")
    );
}

/// How the host end's own settings and addresses fall short of inert: IPv6 off, router
/// advertisements ignored, no address generated, and no address of either family.
fn host_end_settings(host: &str, host_v6: &str) -> Vec<String> {
    let mut exposed = Vec::new();
    for (family, key, want) in [
        ("ipv6", "disable_ipv6", "1"),
        ("ipv6", "accept_ra", "0"),
        ("ipv6", "addr_gen_mode", "1"),
    ] {
        let got = host_conf(family, host, key);
        if got.as_deref().is_some_and(|g| g != want) {
            exposed.push(format!(
                "net.{family}.conf.{host}.{key} = {got:?}, not {want}"
            ));
        }
    }
    if !host_v6.trim().is_empty() {
        exposed.push(format!("the host end has IPv6 addresses: {host_v6}"));
    }
    let host_v4 = ip_out(&["-4", "-o", "addr", "show", "dev", host]);
    if !host_v4.trim().is_empty() {
        exposed.push(format!("the host end has IPv4 addresses: {host_v4}"));
    }
    exposed
}

/// Who but the container itself (addresses `own`) answers its ping to all nodes on its link.
fn all_nodes_answers(lab: &Lab, c: &Endpoint, own: &[String]) -> Vec<String> {
    let all_nodes = format!("ff02::1%{}", c.ifname);
    let ping = lab.exec(
        &c.ns,
        &[
            "ping", "-6", "-n", "-c", "3", "-i", "0.3", "-W", "1", &all_nodes,
        ],
    );
    stdout_of(&ping)
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter(|l| !own.iter().any(|a| l.contains(&format!("from {a}"))))
        .map(|l| format!("answers the all-nodes ping: {l}"))
        .collect()
}

/// Which of the link-local `candidates` the container reaches a host TCP listener on (bound
/// to [::], as host services often are) through.
fn ipv6_tcp_reaches(lab: &Lab, c: &Endpoint, candidates: &[String]) -> Vec<String> {
    let tcp = std::net::TcpListener::bind("[::]:0").unwrap();
    let port = tcp.local_addr().unwrap().port().to_string();
    let mut exposed = Vec::new();
    for addr in candidates {
        let o = lab.exec(
            &c.ns,
            &["python3", "-c", TCP6_CONNECT, addr, &port, &c.ifname],
        );
        if o.status.success() {
            exposed.push(format!("TCP to [{addr}%{}]:{port} connected", c.ifname));
        }
    }
    exposed
}

/// IPv4 through the host end: whether the host answers ARP for one of its addresses there,
/// and whether datagrams sent to that address at the host end's MAC reach a host socket.
fn ipv4_reaches(lab: &Lab, c: &Endpoint, host_mac: [u8; 6]) -> Vec<String> {
    // An IPv4 address of the host: the host end of the lab's "outside" veth.
    lab.outside(232);
    let host_v4 = "10.232.0.1";
    let udp = std::net::UdpSocket::bind((host_v4, 0)).unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let udp_port = udp.local_addr().unwrap().port().to_string();
    let mut exposed = Vec::new();
    let dev = c.ifname.as_str();
    let route = format!("{host_v4}/32");
    lab.exec_ok(&c.ns, &["ip", "route", "add", &route, "dev", dev]);
    let _ = lab.exec(
        &c.ns,
        &["ping", "-n", "-c", "2", "-i", "0.3", "-W", "1", host_v4],
    );
    let neigh = lab.exec_ok(&c.ns, &["ip", "neigh", "show", host_v4]);
    if neigh.contains("lladdr") {
        exposed.push(format!("the host answered ARP for {host_v4}: {neigh}"));
    }
    let mac = host_mac.map(|b| format!("{b:02x}")).join(":");
    let neigh = ["neigh", "replace", host_v4, "lladdr", &mac, "dev", dev];
    lab.exec_ok(
        &c.ns,
        &[&["ip"][..], &neigh, &["nud", "permanent"]].concat(),
    );
    lab.exec_ok(&c.ns, &["python3", "-c", UDP4_SEND, host_v4, &udp_port]);
    let mut buf = [0u8; 64];
    if let Ok((n, from)) = udp.recv_from(&mut buf) {
        exposed.push(format!(
            "a host UDP socket got {n} bytes from {from} via the host end"
        ));
    }
    exposed
}

/// A daemon started by the test itself (not the lab's), killed when dropped.
struct OwnDaemon(std::process::Child);

impl Drop for OwnDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// When the host end cannot be made inert (here the daemon runs in a mount namespace where
/// /proc/sys/net/ipv6/conf is read-only), connecting a veth endpoint fails with an error
/// naming the interface and the sysctl, and leaves nothing behind: no host end, no
/// interface in the container, no endpoint. The daemon goes on working.
#[test]
fn veth_connect_fails_cleanly_when_the_host_end_cannot_be_made_inert() {
    root_or_skip!();
    require_tool("unshare");
    let lab = Lab::without_daemon();
    // Made before the daemon's mount namespace, which so has its /run/netns mount either
    // way (and, a slave, sees it go when the lab deletes it).
    let ns = lab.ns("c");
    let log = std::fs::File::create(&lab.log_path).unwrap();
    let read_only_conf = "mount --bind /proc/sys/net/ipv6/conf /proc/sys/net/ipv6/conf \
         && mount -o remount,bind,ro /proc/sys/net/ipv6/conf && exec \"$0\" \"$@\"";
    let child = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "slave",
            "sh",
            "-c",
            read_only_conf,
        ])
        .arg(weft_bin())
        .arg("daemon")
        .arg("--socket")
        .arg(&lab.socket)
        .arg("--state-dir")
        .arg(&lab.state_dir)
        .args(["--dns-upstream", "127.0.0.1:9"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start weft daemon under unshare");
    let _daemon = OwnDaemon(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&lab.socket).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "daemon did not start:\n{}",
            lab.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    lab.create_network("f", "10.34.0.0/24", &[]);

    let err = lab.weft_err(
        &["connect", "f", "--netns", &ns, "--kind", "veth"],
        &["disable_ipv6"],
    );
    eprintln!("refused as it should be: {err}");
    let host = err
        .split("interface ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .filter(|h| h.starts_with("wv"))
        .unwrap_or_else(|| panic!("the error does not name the host end: {err}"))
        .to_string();
    assert!(
        err.contains(&format!("net.ipv6.conf.{host}.disable_ipv6=1")),
        "the error does not name the sysctl: {err}"
    );
    assert!(
        !link_names_in(None).contains(&host),
        "host end {host} left behind"
    );
    assert!(
        !lab.link_names(&ns).iter().any(|l| l != "lo"),
        "interfaces left in the container: {:?}",
        lab.link_names(&ns)
    );
    assert!(lab.endpoints("f").is_empty(), "{:?}", lab.endpoints("f"));

    // A TAP endpoint needs no host end: the same namespace connects.
    let tap = lab.connect("f", &ns, &[]);
    assert_eq!(tap.kind, "tap");
}
