//! Property tests: arbitrary frames never panic through `process` and
//! [`GatewayTask::write_reply`], every reply is a well-formed frame, what the runtime gets
//! lies in the frame, and the accounting adds up.

use super::tests::{arp, checksum, echo_request, eth_header, gw, ip, ipv4_frame, mac, who_has, Ip};
use super::*;
use crate::bridge::{Bridge, NetworkConfig, NetworkId, NetworkStats, PortId, Verdict};
use crate::time::Timestamp;
use proptest::prelude::*;

const N1: NetworkId = NetworkId(1);
const N2: NetworkId = NetworkId(2);

/// Network 1 (gateway 10.0.0.1, neighbour 10.0.0.3 at mac(3)) with ports
/// 1..=3; network 2 (no gateway, neighbour 10.0.0.5 at mac(5)) with ports 4
/// and 5. Port 9 is unknown.
fn topology() -> Bridge {
    let mut b = Bridge::new();
    let cfg = NetworkConfig {
        gateway: Some(gw()),
        ..NetworkConfig::default()
    };
    b.add_network(N1, cfg).unwrap();
    b.add_network(N2, NetworkConfig::default()).unwrap();
    for port in 1..=3 {
        b.add_port(PortId(port), N1).unwrap();
    }
    for port in 4..=5 {
        b.add_port(PortId(port), N2).unwrap();
    }
    b.set_neighbor(N1, ip(3), mac(3)).unwrap();
    b.set_neighbor(N2, ip(5), mac(5)).unwrap();
    b
}

fn pool_mac(i: u8) -> MacAddr {
    match i % 6 {
        0 => gw().mac,
        1 => MacAddr::BROADCAST,
        2 => MacAddr::ZERO,
        n => mac(n), // mac(3) and mac(5) are neighbours
    }
}

fn pool_ip(i: u8) -> Ipv4Addr {
    match i % 6 {
        0 => gw().ip,
        1 => Ipv4Addr::UNSPECIFIED,
        2 => Ipv4Addr::BROADCAST,
        n => ip(n),
    }
}

/// Valid ARP requests and pings, to be mutated.
fn template() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (any::<u8>(), any::<u8>()).prop_map(|(n, t)| who_has(3 + n % 3, pool_ip(t))),
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(d, s, spa, tpa)| {
            // Mostly valid senders, sometimes the gateway's MAC or a group.
            let src = if s % 8 == 0 {
                pool_mac(s / 8)
            } else {
                mac(2 + s % 4)
            };
            arp(
                pool_mac(d),
                src,
                1,
                src,
                pool_ip(spa),
                MacAddr::ZERO,
                pool_ip(tpa),
            )
        }),
        (
            any::<u8>(),
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..48),
            0usize..3,
            any::<u16>()
        )
            .prop_map(|(n, id, data, opt_words, flags)| {
                let mut h = Ip::new(ip(2 + n % 4), gw().ip, 1);
                h.options = vec![1; opt_words * 4];
                // Mostly unfragmented, DF or not.
                h.flags_frag = if flags % 4 == 0 {
                    flags
                } else {
                    flags & 0x4000
                };
                ipv4_frame(
                    gw().mac,
                    mac(2 + n % 4),
                    &h.datagram(&echo_request(id, id, &data)),
                )
            }),
    ]
}

/// Frames: arbitrary bytes; arbitrary bytes with the destination forced to
/// the gateway's MAC (or broadcast) and the EtherType forced to ARP or IPv4;
/// and valid requests with a few octets flipped and the length changed.
fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..96),
        1 => (
            proptest::collection::vec(any::<u8>(), 14..96),
            prop_oneof![Just(gw().mac), Just(MacAddr::BROADCAST), Just(mac(3))],
            prop_oneof![Just(None), Just(Some(mac(2)))],
            prop_oneof![Just(ETHERTYPE_ARP), Just(ETHERTYPE_IPV4)],
        )
            .prop_map(|(mut f, dst, src, ethertype)| {
                f[..6].copy_from_slice(&dst.0);
                if let Some(src) = src {
                    f[6..12].copy_from_slice(&src.0);
                }
                f[12..14].copy_from_slice(&ethertype.to_be_bytes());
                f
            }),
        2 => (
            template(),
            prop_oneof![
                Just(Vec::new()),
                proptest::collection::vec((any::<usize>(), 1u8..=255), 1..3)
            ],
            prop_oneof![4 => Just(0isize), 1 => -30isize..30],
        )
            .prop_map(|(mut f, flips, resize)| {
                for (at, x) in flips {
                    let at = at % f.len();
                    f[at] ^= x;
                }
                let len = f.len().saturating_add_signed(resize);
                f.resize(len, 0);
                f
            }),
    ]
}

/// Checks that `reply` is a well-formed answer to `request`.
fn check_reply(reply: &[u8], request: &[u8]) -> Result<(), TestCaseError> {
    let mac_at = |f: &[u8], at: usize| MacAddr(f[at..at + 6].try_into().unwrap());
    prop_assert!(reply.len() >= 14 && reply.len() <= request.len().max(42));
    let (dst, src) = (mac_at(reply, 0), mac_at(reply, 6));
    prop_assert!(dst.is_unicast() && !dst.is_zero(), "reply to {}", dst);
    prop_assert!(src.is_unicast() && !src.is_zero(), "reply from {}", src);
    match u16::from_be_bytes([reply[12], reply[13]]) {
        ETHERTYPE_ARP => {
            prop_assert_eq!(reply.len(), 42);
            prop_assert_eq!(&reply[14..22], &[0, 1, 8, 0, 6, 4, 0, 2][..]);
            // Sender = the Ethernet source; target = the Ethernet destination.
            prop_assert_eq!(mac_at(reply, 22), src);
            prop_assert_eq!(mac_at(reply, 32), dst);
            // It answers the question asked, to the one who asked.
            prop_assert_eq!(&reply[28..32], &request[38..42]);
            prop_assert_eq!(&reply[32..42], &request[22..32]);
            let who = Ipv4Addr::new(reply[28], reply[29], reply[30], reply[31]);
            prop_assert!(
                (who, src) == (gw().ip, gw().mac)
                    || (who, src) == (ip(3), mac(3))
                    || (who, src) == (ip(5), mac(5))
            );
        }
        ETHERTYPE_IPV4 => {
            prop_assert!(reply.len() >= 14 + 20 + 8);
            let hdr = &reply[14..34];
            prop_assert_eq!(hdr[0], 0x45);
            prop_assert_eq!(
                usize::from(u16::from_be_bytes([hdr[2], hdr[3]])),
                reply.len() - 14
            );
            prop_assert_eq!(checksum(hdr), 0, "IPv4 header checksum");
            prop_assert_eq!(hdr[9], 1);
            prop_assert_eq!(&hdr[12..16], &gw().ip.octets()[..]);
            prop_assert_eq!(src, gw().mac);
            prop_assert_eq!(dst, mac_at(request, 6));
            let icmp = &reply[34..];
            prop_assert_eq!(checksum(icmp), 0, "ICMP checksum");
            prop_assert_eq!(&icmp[..2], &[0, 0][..]);
        }
        other => prop_assert!(false, "reply with EtherType {:#06x}", other),
    }
    Ok(())
}

fn replies(s: &NetworkStats) -> u64 {
    s.arp_suppressed + s.gateway_arp_replies + s.gateway_echo_replies
}

/// Sends `frame` through `process` and, for a task the switch answers, writes the answer
/// into `out_len` octets; checks the outcome.
fn check_frame(
    b: &mut Bridge,
    port: PortId,
    frame: &[u8],
    out_len: usize,
) -> Result<(), TestCaseError> {
    let net = b.port_network(port);
    let for_gw_mac = net == Some(N1) && frame.len() >= 14 && frame[..6] == gw().mac.0;
    let stats_before = net.and_then(|n| b.network_stats(n));
    // The verdict, owning nothing of the bridge (a flood's port set is not needed here).
    let verdict = match b.process(Timestamp::ZERO, port, frame, Offload::NONE) {
        Verdict::ToGateway(task) => Ok(task),
        Verdict::Flood(_) => Err(None),
        Verdict::Forward(_) => Err(None),
        Verdict::Drop(reason) => Err(Some(reason)),
    };
    let stats_after = net.and_then(|n| b.network_stats(n));
    let task = match verdict {
        Ok(task) => task,
        Err(None) => {
            prop_assert!(!for_gw_mac, "bridged to the gateway's MAC");
            prop_assert_eq!(
                stats_before.map(|s| replies(&s)),
                stats_after.map(|s| replies(&s))
            );
            return Ok(());
        }
        Err(Some(reason)) => {
            prop_assert!(reason != DropReason::UnknownPort || net.is_none());
            prop_assert_eq!(
                stats_before.map(|s| replies(&s)),
                stats_after.map(|s| replies(&s))
            );
            return Ok(());
        }
    };
    // Only frames to the gateway's MAC and ARP are intercepted.
    prop_assert!(for_gw_mac || frame[12..14] == ETHERTYPE_ARP.to_be_bytes());
    let mut out = vec![0u8; out_len];
    if !task.is_switch_answer() {
        // The runtime's work: only what is sent to the gateway's MAC, and it lies in the frame.
        prop_assert!(for_gw_mac);
        prop_assert_eq!(
            stats_before.map(|s| replies(&s)),
            stats_after.map(|s| replies(&s))
        );
        let range = match &task {
            GatewayTask::Dns(d) | GatewayTask::PublishedUdp(d) | GatewayTask::UdpOut(d) => {
                d.payload.clone()
            }
            GatewayTask::Tcp(t) => t.ip.clone(),
            GatewayTask::EchoOut(e) => e.icmp.clone(),
            _ => 0..0,
        };
        prop_assert!(frame.get(range).is_some());
        prop_assert_eq!(
            task.write_reply(frame, &mut out),
            Err(DropReason::GatewayUnsupported)
        );
        return Ok(());
    }
    prop_assert_eq!(
        replies(&stats_before.unwrap()) + 1,
        replies(&stats_after.unwrap())
    );
    match task.write_reply(frame, &mut out) {
        Ok(len) => {
            prop_assert!(len <= out.len());
            check_reply(&out[..len], frame)?;
        }
        // An answer is never longer than the frame asked.
        Err(reason) => prop_assert!(
            reason == DropReason::Oversized && out_len < frame.len(),
            "{:?}",
            reason
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn gateway_is_total_and_replies_are_well_formed(
        frames in proptest::collection::vec(
            (prop_oneof![8 => 1u32..=5, 1 => Just(9u32)], any_frame(), prop_oneof![4 => Just(None), 1 => (0usize..64).prop_map(Some)]),
            1..8,
        )
    ) {
        let mut b = topology();
        for (port, frame, out_len) in &frames {
            let out_len = out_len.unwrap_or(frame.len() + 64);
            check_frame(&mut b, PortId(*port), frame, out_len)?;
        }
    }

    /// Any well-formed ping to the gateway gets an echo of its data.
    #[test]
    fn every_valid_ping_is_echoed(
        id in any::<u16>(),
        seq in any::<u16>(),
        data in proptest::collection::vec(any::<u8>(), 0..1400),
        tos in any::<u8>(),
        df in any::<bool>(),
        options in proptest::collection::vec(any::<u8>(), 0..10).prop_map(|w| w.iter().flat_map(|b| [*b; 4]).collect::<Vec<_>>()),
        padding in 0usize..8,
    ) {
        let mut b = topology();
        let icmp = echo_request(id, seq, &data);
        let mut h = Ip::new(ip(2), gw().ip, 1);
        h.tos = tos;
        h.flags_frag = if df { 0x4000 } else { 0 };
        h.options = options;
        let mut frame = ipv4_frame(gw().mac, mac(2), &h.datagram(&icmp));
        frame.resize(frame.len() + padding, 0xee);
        let Verdict::ToGateway(task) = b.process(Timestamp::ZERO, PortId(2), &frame, Offload::NONE) else {
            return Err(TestCaseError::fail("a valid ping is the gateway's"));
        };
        let mut out = vec![0u8; frame.len()];
        let len = task.write_reply(&frame, &mut out).unwrap();
        let reply = &out[..len];
        check_reply(reply, &frame)?;
        prop_assert_eq!(reply.len(), 34 + icmp.len());
        prop_assert_eq!(&reply[38..], &icmp[4..]);
        prop_assert_eq!(reply[15], tos);
        prop_assert_eq!(reply[20], if df { 0x40 } else { 0 });
        prop_assert_eq!(&reply[30..34], &ip(2).octets()[..]);
    }
}

#[test]
fn helpers_build_what_they_claim() {
    // Sanity checks of the shared builders used above.
    let f = eth_header(MacAddr::BROADCAST, mac(2), ETHERTYPE_ARP);
    assert_eq!(f.len(), 14);
    assert_eq!(pool_mac(0), gw().mac);
    assert_eq!(pool_ip(0), gw().ip);
}
