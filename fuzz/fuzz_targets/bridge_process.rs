//! `weft_switch::Bridge::process` on frames from hostile ports.
//!
//! One network with a gateway, two neighbours and three ports (port 1 bound to its endpoint
//! with port security, port 2 bound without it, port 3 unbound), plus a second network with
//! one port (4) to check isolation; port 9 does not exist. The input is a sequence of frames,
//! each `[port, flags, len_hi, len_lo, frame...]`:
//!
//! * `port % 5` picks port 0 (unknown, as 9), 1, 2, 3 or 4;
//! * `flags` bit 0: GSO superframe, bit 1: checksum partial, bit 2: fix the IPv4 header
//!   checksum, bit 3: fix the ICMP/UDP/TCP checksum (so that the fuzzer gets past checksum
//!   checks it could not guess), bits 4..8: how far the clock moves before the frame;
//! * the frame is the next `len` bytes (fewer if the input ends).
//!
//! Invariants checked: a forward or flood never goes back to the ingress port nor leaves its
//! network; a port with security on never gets a frame through with another source MAC; the
//! switch's answers fit in the frame they answer (as `write_reply` documents), start from a
//! unicast MAC and carry valid IPv4 and ICMP checksums; the byte ranges handed to the gateway
//! runtime lie inside the frame; the bound MAC stays pinned to its port; the FDB stays within
//! its bounds.
#![no_main]

use std::net::Ipv4Addr;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use weft_switch::{
    Bridge, DropReason, GatewayConfig, GatewayTask, MacAddr, NetworkConfig, NetworkId, Offload,
    PortBinding, PortId, Timestamp, Verdict,
};
use weft_wire::checksum::{fold, ones_sum};
use weft_wire::internet_checksum;

const NET: NetworkId = NetworkId(1);
const OTHER_NET: NetworkId = NetworkId(2);
const GW_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const GW_MAC: MacAddr = MacAddr([0x02, 0x42, 10, 0, 0, 1]);
const BOUND_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x11]);
const BOUND_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);
const OPEN_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x12]);
const NEIGHBOUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x13]);
const NEIGHBOUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 13);
const MAX_FDB: usize = 16;
const MAX_FDB_PER_PORT: usize = 8;

/// Clock steps, in milliseconds, chosen by the top nibble of a frame's flags: small steps,
/// and steps past the 300 s aging time.
const STEPS_MS: [u64; 16] = [
    0, 0, 0, 0, 1, 10, 100, 1_000, 10_000, 60_000, 150_000, 299_999, 300_001, 600_000, 3_600_000,
    86_400_000,
];

fn bridge() -> Bridge {
    let mut b = Bridge::new();
    let config = NetworkConfig {
        max_fdb_entries: MAX_FDB,
        max_fdb_entries_per_port: MAX_FDB_PER_PORT,
        gateway: Some(GatewayConfig {
            ip: GW_IP,
            mac: GW_MAC,
        }),
        ..NetworkConfig::default()
    };
    b.add_network(NET, config).unwrap();
    b.add_network(
        OTHER_NET,
        NetworkConfig {
            max_fdb_entries: MAX_FDB,
            max_fdb_entries_per_port: MAX_FDB_PER_PORT,
            ..NetworkConfig::default()
        },
    )
    .unwrap();
    for p in 1..=3 {
        b.add_port(PortId(p), NET).unwrap();
    }
    b.add_port(PortId(4), OTHER_NET).unwrap();
    b.bind_port(
        PortId(1),
        PortBinding {
            mac: BOUND_MAC,
            ip: Some(BOUND_IP),
            security: true,
        },
    )
    .unwrap();
    b.bind_port(
        PortId(2),
        PortBinding {
            mac: OPEN_MAC,
            ip: None,
            security: false,
        },
    )
    .unwrap();
    b.set_neighbor(NET, BOUND_IP, BOUND_MAC).unwrap();
    b.set_neighbor(NET, NEIGHBOUR_IP, NEIGHBOUR_MAC).unwrap();
    b
}

/// Rewrites the IPv4 header checksum and, with `l4`, the ICMP, UDP or TCP checksum of an
/// untagged Ethernet/IPv4 frame, where the headers are there to hold them.
fn fix_checksums(frame: &mut [u8], header: bool, l4: bool) {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return;
    }
    let ip = &mut frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ihl < 20 || ip.len() < ihl {
        return;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).clamp(ihl, ip.len());
    if l4 {
        let proto = ip[9];
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&ip[12..20]);
        let (_, l4) = ip[..total].split_at_mut(ihl);
        pseudo[9] = proto;
        pseudo[10..12].copy_from_slice(&(l4.len() as u16).to_be_bytes());
        let at = match proto {
            1 => Some((2, 0)),
            6 => Some((16, ones_sum(&pseudo, 0))),
            17 => Some((6, ones_sum(&pseudo, 0))),
            _ => None,
        };
        if let Some((at, initial)) = at {
            if l4.len() >= at + 2 {
                l4[at..at + 2].fill(0);
                let sum = !fold(ones_sum(l4, initial));
                l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
            }
        }
    }
    if header {
        ip[10..12].fill(0);
        let sum = internet_checksum(&ip[..ihl]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
    }
}

fn inside(range: &std::ops::Range<usize>, len: usize) -> bool {
    range.start <= range.end && range.end <= len
}

fuzz_target!(|data: &[u8]| {
    let mut b = bridge();
    let mut now = Timestamp::from_millis(0);
    let mut rest = data;
    let mut frame = Vec::new();
    let mut out = Vec::new();
    let mut frames = 0;
    while rest.len() >= 4 && frames < 64 {
        frames += 1;
        let port = match rest[0] % 5 {
            0 => PortId(9),
            p => PortId(u32::from(p)),
        };
        let flags = rest[1];
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]])).min(rest.len() - 4);
        frame.clear();
        frame.extend_from_slice(&rest[4..4 + len]);
        rest = &rest[4 + len..];

        now = Timestamp::from_millis(now.as_millis() + STEPS_MS[usize::from(flags >> 4)]);
        fix_checksums(&mut frame, flags & 4 != 0, flags & 8 != 0);
        let offload = Offload {
            gso: flags & 1 != 0,
            checksum_partial: flags & 2 != 0,
        };
        let in_net = b.port_network(port);
        let verdict = b.process(now, port, &frame, offload);
        let passed = !matches!(verdict, Verdict::Drop(_));
        match verdict {
            Verdict::Forward(to) => {
                assert_ne!(to, port, "forwarded back to the ingress port");
                assert_eq!(b.port_network(to), in_net, "forwarded across networks");
            }
            Verdict::Flood(set) => {
                let ports: Vec<PortId> = set.collect();
                assert!(!ports.is_empty(), "empty flood");
                for to in ports {
                    assert_ne!(to, port, "flooded back to the ingress port");
                    assert_eq!(b.port_network(to), in_net, "flooded across networks");
                }
            }
            Verdict::Drop(reason) => {
                if in_net.is_none() {
                    assert_eq!(reason, DropReason::UnknownPort);
                }
            }
            Verdict::ToGateway(task) => {
                assert_eq!(
                    in_net,
                    Some(NET),
                    "gateway task on a network without gateway"
                );
                check_task(&task, &frame, &mut out);
            }
        }
        if passed {
            assert!(in_net.is_some(), "a frame from an unknown port got through");
            assert!(frame.len() >= 14, "a runt got through");
            if port == PortId(1) {
                assert_eq!(
                    frame[6..12],
                    BOUND_MAC.0,
                    "port security let another source MAC through"
                );
            }
            // A bound MAC is pinned: no other port may send as it.
            for (mac, owner) in [(BOUND_MAC, PortId(1)), (OPEN_MAC, PortId(2))] {
                if in_net == Some(NET) && port != owner {
                    assert_ne!(
                        frame[6..12],
                        mac.0,
                        "{port:?} sent as the MAC bound to {owner:?}"
                    );
                }
            }
        }
        if frames % 16 == 0 {
            b.expire(now);
        }
    }

    for net in [NET, OTHER_NET] {
        let entries = b.fdb_entries(net, now);
        assert!(
            entries.len() <= MAX_FDB + 2,
            "FDB over its bound: {}",
            entries.len()
        );
        for e in &entries {
            assert_eq!(
                b.port_network(e.port),
                Some(net),
                "FDB entry on another network's port"
            );
            assert!(
                e.mac.is_unicast() && !e.mac.is_zero(),
                "learned {:?}",
                e.mac
            );
            assert!(
                e.age <= Duration::from_secs(300),
                "entry older than the aging time"
            );
        }
    }
    for (mac, port) in [(BOUND_MAC, PortId(1)), (OPEN_MAC, PortId(2))] {
        let entry = b.lookup(NET, mac, now).expect("the bound MAC left the FDB");
        assert_eq!(entry.port, port, "the bound MAC moved");
    }
    assert!(
        b.lookup(NET, GW_MAC, now).is_none(),
        "the gateway's MAC was learned on a port"
    );
});

fn check_task(task: &GatewayTask, frame: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.resize(frame.len(), 0);
    let written = task.write_reply(frame, out);
    if !task.is_switch_answer() {
        assert_eq!(written, Err(DropReason::GatewayUnsupported));
        let range = match task {
            GatewayTask::Dns(u) | GatewayTask::PublishedUdp(u) | GatewayTask::UdpOut(u) => {
                u.payload.clone()
            }
            GatewayTask::Tcp(t) => t.ip.clone(),
            GatewayTask::EchoOut(e) => e.icmp.clone(),
            GatewayTask::ArpReply(_) | GatewayTask::EchoReply(_) => unreachable!(),
        };
        assert!(
            inside(&range, frame.len()),
            "{range:?} outside a {}-byte frame",
            frame.len()
        );
        if let GatewayTask::Dns(u) = task {
            assert_eq!(u.dst_port, 53);
            assert_eq!(u.dst_ip, GW_IP);
        }
        return;
    }
    if let GatewayTask::EchoReply(e) = task {
        assert!(
            inside(&e.icmp, frame.len()),
            "{:?} outside a {}-byte frame",
            e.icmp,
            frame.len()
        );
    }
    let n = match written {
        Ok(n) => n,
        // An answer that fits in the frame can never be "oversized".
        Err(DropReason::Oversized) => {
            panic!("a reply did not fit in its {}-byte frame", frame.len())
        }
        Err(_) => return,
    };
    assert!(
        n <= frame.len(),
        "a {n}-byte reply to a {}-byte frame",
        frame.len()
    );
    assert!(n >= 14);
    let reply = &out[..n];
    assert!(
        MacAddr(reply[6..12].try_into().unwrap()).is_unicast(),
        "reply from a group MAC"
    );
    if let GatewayTask::EchoReply(e) = task {
        assert_eq!(reply[..6], e.src_mac.0);
        let ip = &reply[14..];
        assert_eq!(internet_checksum(&ip[..20]), 0, "echo reply IPv4 checksum");
        assert_eq!(internet_checksum(&ip[20..]), 0, "echo reply ICMP checksum");
        assert_eq!(ip[20], 0, "not an echo reply");
    }
}
