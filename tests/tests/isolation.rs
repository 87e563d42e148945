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
