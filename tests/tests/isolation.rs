//! Networks are separate broadcast domains.

use std::time::Duration;
use weft_tests::*;

#[test]
fn networks_do_not_leak_frames_or_traffic() {
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
    lab.exec_ok(&a1.ns, &["ip", "route", "add", "10.32.0.0/24", "dev", &a1.ifname]);
    lab.exec_ok(&b1.ns, &["ip", "route", "add", "10.31.0.0/24", "dev", &b1.ifname]);
    lab.exec_ok(&a1.ns, &["sysctl", "-qw", "net.ipv4.icmp_echo_ignore_broadcasts=0"]);

    let pcap_b1 = lab.dir.join("b1.pcap");
    let pcap_b2 = lab.dir.join("b2.pcap");
    let mut cap1 = lab.capture(&b1.name, &pcap_b1, None);
    let mut cap2 = lab.capture(&b2.name, &pcap_b2, None);
    cap1.wait_active(Duration::from_secs(10));
    cap2.wait_active(Duration::from_secs(10));

    // Network A traffic: unicast pings (fresh ARP broadcasts), broadcast pings,
    // and a direct cross-network attempt that must fail.
    lab.assert_ping(&a1, &a2);
    lab.assert_ping(&a2, &a1);
    let _ = lab.exec(&a2.ns, &["ping", "-b", "-c", "3", "-W", "1", "-i", "0.2", "10.31.0.255"]);
    lab.exec_ok(&a1.ns, &["ip", "neigh", "flush", "all"]);
    lab.assert_ping(&a1, &a2);
    assert!(!lab.ping(&a1.ns, &b1.ip), "a1 (network a) could ping b1 (network b) across networks");
    assert!(!lab.ping(&a2.ns, &b2.ip), "a2 (network a) could ping b2 (network b) across networks");
    assert!(!lab.ping(&b1.ns, &a1.ip), "b1 (network b) could ping a1 (network a) across networks");

    // Network B traffic, so we know the captures work.
    lab.assert_ping(&b2, &b1);

    let st1 = cap1.stop();
    let st2 = cap2.stop();
    assert!(st1.code().is_some() && st2.code().is_some(), "capture killed by SIGTERM instead of exiting {st1} / {st2}; stderr {:?} {:?}", cap1.stderr(), cap2.stderr());

    let a_macs = [a1.mac_bytes(), a2.mac_bytes()];
    let a_ips: [[u8; 4]; 2] = [ip_bytes(&a1.ip), ip_bytes(&a2.ip)];
    for (path, who) in [(&pcap_b1, &b1), (&pcap_b2, &b2)] {
        let pcap = read_pcap(path).unwrap_or_else(|e| panic!("capture of {} is not a valid pcap: {e}", who.name));
        assert_eq!(pcap.linktype, 1, "LINKTYPE_ETHERNET expected");
        assert!(!pcap.frames.is_empty(), "capture on {} is empty although b1<->b2 pinged", who.name);
        for f in &pcap.frames {
            assert!(f.len() >= 14, "runt frame in capture");
            for m in &a_macs {
                assert!(
                    f[0..6] != m[..] && f[6..12] != m[..] && !contains(f, m),
                    "capture on {} (network b) contains a frame with network a's MAC {}: {}",
                    who.name,
                    mac_string(m),
                    to_hex(f)
                );
            }
            for ip in &a_ips {
                assert!(
                    !contains(&f[14..], ip),
                    "capture on {} (network b) contains network a's address: {}",
                    who.name,
                    to_hex(f)
                );
            }
        }
        let (ok, out, err) = tcpdump_read(path, &["-e"]);
        assert!(ok, "tcpdump -r failed: {err}");
        assert!(out.contains("ICMP echo request") || out.contains("ICMP echo reply"), "no b1<->b2 ICMP in capture:\n{out}");
        for bad in [&a1.mac, &a2.mac, &a1.ip, &a2.ip, &"10.31.0.255".to_string()] {
            assert!(!out.contains(bad.as_str()), "capture on {} shows {bad} of network a:\n{out}", who.name);
        }
    }

    // Network A ports never forwarded anything to network B ports and the
    // other way round: b ports only saw b traffic (checked above); and a's
    // FDB holds no b MAC.
    let fdb_a = lab.fdb("a");
    for m in [&b1.mac, &b2.mac] {
        assert!(fdb_entry(&fdb_a, m).is_none(), "network a's FDB has network b's MAC {m}: {fdb_a:?}");
    }
    let fdb_b = lab.fdb("b");
    for m in [&a1.mac, &a2.mac] {
        assert!(fdb_entry(&fdb_b, m).is_none(), "network b's FDB has network a's MAC {m}: {fdb_b:?}");
    }
}

fn ip_bytes(ip: &str) -> [u8; 4] {
    let v: Vec<u8> = ip.split('.').map(|p| p.parse().unwrap()).collect();
    v.try_into().unwrap()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
