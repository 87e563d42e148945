//! Unit tests of the gateway and ARP responder, on frames built byte by byte.

use super::*;
use crate::bridge::{Bridge, BridgeError, NetworkConfig, NetworkId, NetworkStats, PortId, Verdict};
use crate::time::Timestamp;

const N1: NetworkId = NetworkId(1);
const N2: NetworkId = NetworkId(2);
pub(super) const GW_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub(super) const GW_MAC: MacAddr = MacAddr([0x02, 0x42, 0, 0, 0, 0xfe]);

fn p(n: u32) -> PortId {
    PortId(n)
}

pub(super) fn mac(n: u8) -> MacAddr {
    MacAddr::local_from_bytes([0, 0, 0, 0, n])
}

/// 10.0.0.n
pub(super) fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

fn now() -> Timestamp {
    Timestamp::ZERO
}

pub(super) fn gw() -> GatewayConfig {
    GatewayConfig {
        ip: GW_IP,
        mac: GW_MAC,
    }
}

fn with_gateway() -> NetworkConfig {
    NetworkConfig {
        gateway: Some(gw()),
        ..NetworkConfig::default()
    }
}

/// Network 1 (gateway 10.0.0.1) with ports 1, 2, 3; network 2 (no gateway)
/// with ports 4, 5, 6.
fn setup() -> Bridge {
    let mut b = Bridge::new();
    b.add_network(N1, with_gateway()).unwrap();
    b.add_network(N2, NetworkConfig::default()).unwrap();
    for i in 1..=3 {
        b.add_port(p(i), N1).unwrap();
        b.add_port(p(i + 3), N2).unwrap();
    }
    b
}

// ---- frame builders -------------------------------------------------------

pub(super) fn eth_header(dst: MacAddr, src: MacAddr, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An Ethernet/IPv4 ARP packet (RFC 826), 42 octets, no padding.
#[allow(clippy::too_many_arguments)]
pub(super) fn arp(
    dst: MacAddr,
    src: MacAddr,
    op: u16,
    sha: MacAddr,
    spa: Ipv4Addr,
    tha: MacAddr,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut f = eth_header(dst, src, 0x0806);
    f.extend_from_slice(&[0x00, 0x01]); // hrd: Ethernet
    f.extend_from_slice(&[0x08, 0x00]); // pro: IPv4
    f.push(6); // hln
    f.push(4); // pln
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha.0);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&tha.0);
    f.extend_from_slice(&tpa.octets());
    assert_eq!(f.len(), 42);
    f
}

/// "Who has `tpa`? Tell `spa`", broadcast from station `n` (MAC n, IP n).
pub(super) fn who_has(n: u8, tpa: Ipv4Addr) -> Vec<u8> {
    arp(
        MacAddr::BROADCAST,
        mac(n),
        1,
        mac(n),
        ip(n),
        MacAddr::ZERO,
        tpa,
    )
}

/// The RFC 1071 checksum, written independently of the crate's: add the
/// 16-bit words with end-around carry one at a time.
pub(super) fn checksum(data: &[u8]) -> u16 {
    let mut sum: u16 = 0;
    let mut i = 0;
    while i < data.len() {
        let hi = data[i];
        let lo = if i + 1 < data.len() { data[i + 1] } else { 0 };
        let (s, carry) = sum.overflowing_add(u16::from(hi) << 8 | u16::from(lo));
        sum = s + u16::from(carry);
        i += 2;
    }
    !sum
}

/// An ICMP echo request (RFC 792) with a correct checksum.
pub(super) fn echo_request(id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// Fields of an IPv4 header (RFC 791) to build.
#[derive(Clone)]
pub(super) struct Ip {
    pub(super) src: Ipv4Addr,
    pub(super) dst: Ipv4Addr,
    pub(super) proto: u8,
    pub(super) tos: u8,
    pub(super) id: u16,
    pub(super) flags_frag: u16,
    pub(super) ttl: u8,
    pub(super) options: Vec<u8>,
}

impl Ip {
    pub(super) fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Ip {
        Ip {
            src,
            dst,
            proto,
            tos: 0,
            id: 0x1234,
            flags_frag: 0x4000, // DF, as Linux ping sends
            ttl: 64,
            options: Vec::new(),
        }
    }

    /// The datagram carrying `payload`, with a correct header checksum.
    pub(super) fn datagram(&self, payload: &[u8]) -> Vec<u8> {
        assert_eq!(self.options.len() % 4, 0);
        let ihl = 20 + self.options.len();
        let total = (ihl + payload.len()) as u16;
        let mut h = vec![0x40 | (ihl / 4) as u8, self.tos];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&self.id.to_be_bytes());
        h.extend_from_slice(&self.flags_frag.to_be_bytes());
        h.push(self.ttl);
        h.push(self.proto);
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&self.src.octets());
        h.extend_from_slice(&self.dst.octets());
        h.extend_from_slice(&self.options);
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }
}

pub(super) fn ipv4_frame(dst: MacAddr, src: MacAddr, datagram: &[u8]) -> Vec<u8> {
    let mut f = eth_header(dst, src, 0x0800);
    f.extend_from_slice(datagram);
    f
}

/// A ping from station `n` to the gateway.
pub(super) fn ping(n: u8, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let dgram = Ip::new(ip(n), GW_IP, 1).datagram(&echo_request(id, seq, data));
    ipv4_frame(GW_MAC, mac(n), &dgram)
}

// ---- running --------------------------------------------------------------

/// The task `process` hands the gateway for `frame`.
pub(super) fn task(b: &mut Bridge, port: PortId, frame: &[u8]) -> GatewayTask {
    match b.process(now(), port, frame, Offload::NONE) {
        Verdict::ToGateway(task) => task,
        other => panic!("expected the gateway to take the frame, got {other:?}"),
    }
}

/// `process` returns a task the switch answers itself: returns the answer.
fn answer(b: &mut Bridge, port: PortId, frame: &[u8]) -> Vec<u8> {
    let task = task(b, port, frame);
    assert!(task.is_switch_answer(), "{task:?}");
    let mut out = vec![0u8; frame.len() + 64];
    let len = task.write_reply(frame, &mut out).unwrap();
    out.truncate(len);
    out
}

/// `process` drops the frame for the gateway with `reason` (for the adapter to count on
/// `port`).
fn refused(b: &mut Bridge, port: PortId, frame: &[u8], reason: DropReason) {
    assert_eq!(
        b.process(now(), port, frame, Offload::NONE),
        Verdict::Drop(reason)
    );
}

fn flood(b: &mut Bridge, port: PortId, frame: &[u8]) -> Vec<PortId> {
    match b.process(now(), port, frame, Offload::NONE) {
        Verdict::Flood(set) => set.collect(),
        other => panic!("expected a flood, got {other:?}"),
    }
}

fn stats(b: &Bridge, net: NetworkId) -> NetworkStats {
    b.network_stats(net).unwrap()
}

/// Checks an ARP reply frame: `from` answers that `who` is at `from`, to
/// station `to` (MAC and IP).
fn assert_arp_reply(reply: &[u8], from: MacAddr, who: Ipv4Addr, to_mac: MacAddr, to_ip: Ipv4Addr) {
    let expected = arp(to_mac, from, 2, from, who, to_mac, to_ip);
    assert_eq!(reply, &expected[..]);
}

// ---- ARP ------------------------------------------------------------------

#[test]
fn arp_for_the_gateway_is_answered() {
    let mut b = setup();
    let req = who_has(2, GW_IP);
    let reply = answer(&mut b, p(2), &req);
    // RFC 826: op 2, sender = gateway, target = requester, sent to it.
    assert_eq!(reply.len(), 42);
    assert_eq!(&reply[0..6], &mac(2).0);
    assert_eq!(&reply[6..12], &GW_MAC.0);
    assert_eq!(&reply[12..14], &[0x08, 0x06]);
    assert_eq!(&reply[14..22], &[0, 1, 0x08, 0, 6, 4, 0, 2]);
    assert_eq!(&reply[22..28], &GW_MAC.0);
    assert_eq!(&reply[28..32], &[10, 0, 0, 1]);
    assert_eq!(&reply[32..38], &mac(2).0);
    assert_eq!(&reply[38..42], &[10, 0, 0, 2]);
    assert_arp_reply(&reply, GW_MAC, GW_IP, mac(2), ip(2));

    // Padded to the Ethernet minimum, and unicast to the gateway's MAC (as
    // a kernel re-validating its neighbour entry sends): same answer.
    let mut padded = req.clone();
    padded.resize(60, 0);
    assert_eq!(answer(&mut b, p(2), &padded), reply);
    let unicast = arp(GW_MAC, mac(2), 1, mac(2), ip(2), GW_MAC, GW_IP);
    assert_eq!(answer(&mut b, p(2), &unicast), reply);

    let s = stats(&b, N1);
    assert_eq!(
        (
            s.gateway_arp_replies,
            s.arp_suppressed,
            s.gateway_echo_replies
        ),
        (3, 0, 0)
    );
    // The requester was learned as usual.
    assert_eq!(b.lookup(N1, mac(2), now()).unwrap().port, p(2));
    // The gateway's MAC is not a port's.
    assert_eq!(b.lookup(N1, GW_MAC, now()), None);
}

#[test]
fn arp_for_a_neighbor_is_answered_with_its_mac_and_not_flooded() {
    let mut b = setup();
    b.set_neighbor(N1, ip(3), mac(3)).unwrap();
    let reply = answer(&mut b, p(2), &who_has(2, ip(3)));
    // As the kernel's neigh_suppress: the neighbour's MAC is both the
    // sender hardware address and the Ethernet source.
    assert_arp_reply(&reply, mac(3), ip(3), mac(2), ip(2));
    assert_eq!(stats(&b, N1).arp_suppressed, 1);
    assert_eq!(stats(&b, N1).gateway_arp_replies, 0);

    // Suppression works without a gateway too (network 2).
    b.set_neighbor(N2, ip(5), mac(5)).unwrap();
    let reply = answer(&mut b, p(4), &who_has(4, ip(5)));
    assert_arp_reply(&reply, mac(5), ip(5), mac(4), ip(4));
    assert_eq!(stats(&b, N2).arp_suppressed, 1);

    // Unicast to the neighbour's MAC (cache re-validation): answered too.
    let unicast = arp(mac(3), mac(2), 1, mac(2), ip(2), mac(3), ip(3));
    assert_arp_reply(
        &answer(&mut b, p(2), &unicast),
        mac(3),
        ip(3),
        mac(2),
        ip(2),
    );

    // An RFC 5227 probe for the neighbour's address by another station is
    // answered (target IP 0.0.0.0): the address is taken.
    let probe = arp(
        MacAddr::BROADCAST,
        mac(2),
        1,
        mac(2),
        Ipv4Addr::UNSPECIFIED,
        MacAddr::ZERO,
        ip(3),
    );
    let reply = answer(&mut b, p(2), &probe);
    assert_arp_reply(&reply, mac(3), ip(3), mac(2), Ipv4Addr::UNSPECIFIED);
    assert_eq!(stats(&b, N1).arp_suppressed, 3);

    // The neighbour resolving or probing its own address is bridged.
    let own = arp(
        MacAddr::BROADCAST,
        mac(3),
        1,
        mac(3),
        Ipv4Addr::UNSPECIFIED,
        MacAddr::ZERO,
        ip(3),
    );
    assert_eq!(flood(&mut b, p(3), &own), [p(1), p(2)]);
    // An announcement (RFC 5227 §2.3, sender IP = target IP) reaches everyone.
    let announce = arp(
        MacAddr::BROADCAST,
        mac(1),
        1,
        mac(1),
        ip(3),
        MacAddr::ZERO,
        ip(3),
    );
    assert_eq!(flood(&mut b, p(1), &announce), [p(2), p(3)]);
    let gw_announce = arp(
        MacAddr::BROADCAST,
        mac(1),
        1,
        mac(1),
        GW_IP,
        MacAddr::ZERO,
        GW_IP,
    );
    assert_eq!(flood(&mut b, p(1), &gw_announce), [p(2), p(3)]);
    assert_eq!(stats(&b, N1).arp_suppressed, 3);
}

#[test]
fn other_arp_is_bridged_as_before() {
    let mut b = setup();
    b.set_neighbor(N1, ip(3), mac(3)).unwrap();
    // A request for an unknown address floods.
    assert_eq!(flood(&mut b, p(2), &who_has(2, ip(9))), [p(1), p(3)]);
    // Replies are forwarded (mac(2) was learned on port 2) or flooded.
    let reply = arp(mac(2), mac(1), 2, mac(1), ip(1), mac(2), ip(2));
    assert_eq!(
        b.process(now(), p(1), &reply, Offload::NONE),
        Verdict::Forward(p(2))
    );
    let reply = arp(mac(7), mac(1), 2, mac(1), ip(1), mac(7), ip(7));
    assert_eq!(flood(&mut b, p(1), &reply), [p(2), p(3)]);
    // Malformed ARP not addressed to the gateway: bridged, not judged.
    let mut bad = who_has(2, ip(3));
    bad[18] = 8; // hln
    assert_eq!(flood(&mut b, p(2), &bad), [p(1), p(3)]);
    let short = &who_has(2, GW_IP)[..41];
    assert_eq!(flood(&mut b, p(2), short), [p(1), p(3)]);
    // A group sender hardware address is never answered.
    let group_sha = arp(
        MacAddr::BROADCAST,
        mac(2),
        1,
        MacAddr::BROADCAST,
        ip(2),
        MacAddr::ZERO,
        GW_IP,
    );
    assert_eq!(flood(&mut b, p(2), &group_sha), [p(1), p(3)]);
    // 802.1Q-tagged requests are bridged too.
    let mut tagged = eth_header(MacAddr::BROADCAST, mac(2), 0x8100);
    tagged.extend_from_slice(&[0, 5, 0x08, 0x06]);
    tagged.extend_from_slice(&who_has(2, GW_IP)[14..]);
    assert_eq!(flood(&mut b, p(2), &tagged), [p(1), p(3)]);
    // Other broadcasts flood as before.
    let dgram = Ip::new(ip(2), Ipv4Addr::BROADCAST, 17).datagram(&[0; 8]);
    assert_eq!(
        flood(
            &mut b,
            p(2),
            &ipv4_frame(MacAddr::BROADCAST, mac(2), &dgram)
        ),
        [p(1), p(3)]
    );

    assert_eq!(stats(&b, N1).arp_suppressed, 0);
}

#[test]
fn arp_to_the_gateway_mac_that_needs_no_answer_is_dropped() {
    let mut b = setup();
    // Truncated or wrong fixed fields: malformed.
    let mut req = arp(GW_MAC, mac(2), 1, mac(2), ip(2), MacAddr::ZERO, GW_IP);
    refused(&mut b, p(2), &req[..41], DropReason::Malformed);
    req[15] = 6; // hrd: IEEE 802
    refused(&mut b, p(2), &req, DropReason::Malformed);
    let zero_sha = arp(
        GW_MAC,
        mac(2),
        1,
        MacAddr::ZERO,
        ip(2),
        MacAddr::ZERO,
        GW_IP,
    );
    refused(&mut b, p(2), &zero_sha, DropReason::Malformed);
    let bcast_spa = arp(
        GW_MAC,
        mac(2),
        1,
        mac(2),
        Ipv4Addr::BROADCAST,
        MacAddr::ZERO,
        GW_IP,
    );
    refused(&mut b, p(2), &bcast_spa, DropReason::Malformed);
    // A reply, or a request for someone else: nothing to do yet.
    let reply = arp(GW_MAC, mac(2), 2, mac(2), ip(2), GW_MAC, GW_IP);
    refused(&mut b, p(2), &reply, DropReason::GatewayUnsupported);
    let other = arp(GW_MAC, mac(2), 1, mac(2), ip(2), MacAddr::ZERO, ip(9));
    refused(&mut b, p(2), &other, DropReason::GatewayUnsupported);
    assert_eq!(stats(&b, N1).gateway_arp_replies, 0);
}

#[test]
fn neighbors_are_per_network() {
    let mut b = setup();
    b.set_neighbor(N1, ip(3), mac(3)).unwrap();
    assert_arp_reply(
        &answer(&mut b, p(2), &who_has(2, ip(3))),
        mac(3),
        ip(3),
        mac(2),
        ip(2),
    );
    // The same address asked in network 2 is not answered there.
    assert_eq!(flood(&mut b, p(4), &who_has(4, ip(3))), [p(5), p(6)]);
    // Nor is network 1's gateway.
    assert_eq!(flood(&mut b, p(4), &who_has(4, GW_IP)), [p(5), p(6)]);
    assert_eq!(b.neighbors(N2), []);
    assert_eq!(
        stats(&b, N2),
        NetworkStats {
            learned: 1,
            ..NetworkStats::default()
        }
    );
}

#[test]
fn neighbor_registration() {
    let mut b = setup();
    assert_eq!(b.neighbors(N1), []);
    b.set_neighbor(N1, ip(9), mac(9)).unwrap();
    b.set_neighbor(N1, ip(3), mac(7)).unwrap();
    b.set_neighbor(N1, Ipv4Addr::new(9, 0, 0, 1), mac(8))
        .unwrap();
    // Replaces the entry for the address.
    b.set_neighbor(N1, ip(3), mac(3)).unwrap();
    assert_eq!(
        b.neighbors(N1),
        [
            Neighbor {
                ip: Ipv4Addr::new(9, 0, 0, 1),
                mac: mac(8)
            },
            Neighbor {
                ip: ip(3),
                mac: mac(3)
            },
            Neighbor {
                ip: ip(9),
                mac: mac(9)
            },
        ]
    );
    assert_arp_reply(
        &answer(&mut b, p(2), &who_has(2, ip(3))),
        mac(3),
        ip(3),
        mac(2),
        ip(2),
    );

    // Removing stops suppression; removing again is fine.
    b.remove_neighbor(N1, ip(3)).unwrap();
    b.remove_neighbor(N1, ip(3)).unwrap();
    assert_eq!(flood(&mut b, p(2), &who_has(2, ip(3))), [p(1), p(3)]);
    assert_eq!(b.neighbors(N1).len(), 2);

    // Errors.
    let n9 = NetworkId(9);
    assert_eq!(
        b.set_neighbor(n9, ip(3), mac(3)),
        Err(BridgeError::UnknownNetwork(n9))
    );
    assert_eq!(
        b.remove_neighbor(n9, ip(3)),
        Err(BridgeError::UnknownNetwork(n9))
    );
    assert_eq!(b.neighbors(n9), []);
    for (ip, mac) in [
        (ip(3), MacAddr::BROADCAST),
        (ip(3), MacAddr::ZERO),
        (ip(3), MacAddr([0x01, 0, 0x5e, 0, 0, 1])),
        (Ipv4Addr::UNSPECIFIED, mac(3)),
        (Ipv4Addr::BROADCAST, mac(3)),
        (Ipv4Addr::new(224, 0, 0, 1), mac(3)),
        (Ipv4Addr::LOCALHOST, mac(3)),
    ] {
        assert_eq!(
            b.set_neighbor(N1, ip, mac),
            Err(BridgeError::InvalidNeighbor(Neighbor { ip, mac }))
        );
    }
    assert_eq!(b.neighbors(N1).len(), 2);
    // The neighbours go with their network.
    for i in 1..=3 {
        b.remove_port(p(i)).unwrap();
    }
    b.remove_network(N1).unwrap();
    b.add_network(N1, NetworkConfig::default()).unwrap();
    assert_eq!(b.neighbors(N1), []);
}

#[test]
fn the_gateway_wins_over_a_neighbor_with_its_address() {
    let mut b = setup();
    b.set_neighbor(N1, GW_IP, mac(3)).unwrap();
    assert_arp_reply(
        &answer(&mut b, p(2), &who_has(2, GW_IP)),
        GW_MAC,
        GW_IP,
        mac(2),
        ip(2),
    );
    assert_eq!(stats(&b, N1).gateway_arp_replies, 1);
}

// ---- ICMP echo ------------------------------------------------------------

/// Checks `reply` is a valid echo reply from the gateway to station `n` for
/// `request` (an ICMP message), and returns its IPv4 header.
fn assert_echo_reply(reply: &[u8], n: u8, icmp_request: &[u8]) -> [u8; 20] {
    assert_eq!(reply.len(), 14 + 20 + icmp_request.len());
    assert_eq!(&reply[0..6], &mac(n).0);
    assert_eq!(&reply[6..12], &GW_MAC.0);
    assert_eq!(&reply[12..14], &[0x08, 0x00]);
    let ip_hdr: [u8; 20] = reply[14..34].try_into().unwrap();
    assert_eq!(ip_hdr[0], 0x45, "version 4, IHL 5");
    assert_eq!(
        usize::from(u16::from_be_bytes([ip_hdr[2], ip_hdr[3]])),
        reply.len() - 14
    );
    assert_eq!(&ip_hdr[4..6], &[0, 0], "fresh id 0");
    assert_eq!(ip_hdr[8], 64, "TTL");
    assert_eq!(ip_hdr[9], 1, "ICMP");
    assert_eq!(&ip_hdr[12..16], &GW_IP.octets());
    assert_eq!(&ip_hdr[16..20], &ip(n).octets());
    assert_eq!(checksum(&ip_hdr), 0, "IPv4 header checksum");
    let icmp = &reply[34..];
    assert_eq!(checksum(icmp), 0, "ICMP checksum");
    assert_eq!(&icmp[..2], &[0, 0], "echo reply");
    assert_eq!(&icmp[4..], &icmp_request[4..], "id, seq and data echoed");
    ip_hdr
}

#[test]
fn ping_to_the_gateway_is_answered() {
    let mut b = setup();
    let data: Vec<u8> = (0..56u8).collect();
    let icmp = echo_request(0xbeef, 7, &data);
    let req = ping(2, 0xbeef, 7, &data);
    let reply = answer(&mut b, p(2), &req);
    let hdr = assert_echo_reply(&reply, 2, &icmp);
    assert_eq!(&hdr[6..8], &[0x40, 0], "DF copied");
    assert_eq!(stats(&b, N1).gateway_echo_replies, 1);
    // The request's own checksums were valid (sanity check of the builder).
    assert_eq!(checksum(&req[14..34]), 0);

    // Options are dropped, TOS kept, DF cleared when the request has none,
    // an odd-length payload and Ethernet padding past the total length are
    // handled (padding is not echoed).
    let mut hdr = Ip::new(ip(3), GW_IP, 1);
    hdr.options = vec![1, 1, 1, 0]; // NOP, NOP, NOP, EOL
    hdr.tos = 0xb8;
    hdr.flags_frag = 0;
    hdr.ttl = 1;
    let icmp = echo_request(1, 2, b"odd");
    let mut frame = ipv4_frame(GW_MAC, mac(3), &hdr.datagram(&icmp));
    frame.resize(60, 0xaa);
    let reply = answer(&mut b, p(3), &frame);
    let ip_hdr = assert_echo_reply(&reply, 3, &icmp);
    assert_eq!(ip_hdr[1], 0xb8);
    assert_eq!(&ip_hdr[6..8], &[0, 0]);

    // An empty echo (header only) is fine too.
    let icmp = echo_request(0, 0, &[]);
    let frame = ipv4_frame(GW_MAC, mac(2), &Ip::new(ip(2), GW_IP, 1).datagram(&icmp));
    assert_echo_reply(&answer(&mut b, p(2), &frame), 2, &icmp);
    assert_eq!(stats(&b, N1).gateway_echo_replies, 3);
}

#[test]
fn malformed_datagrams_to_the_gateway_are_counted() {
    let mut b = setup();
    let good = ping(2, 1, 1, b"hello, gateway");

    let mut bad_ip_sum = good.clone();
    bad_ip_sum[24] ^= 0x01; // checksum octet
    refused(&mut b, p(2), &bad_ip_sum, DropReason::Malformed);

    let mut bad_icmp_sum = good.clone();
    bad_icmp_sum[40] ^= 0x80; // a data octet
    refused(&mut b, p(2), &bad_icmp_sum, DropReason::Malformed);

    // Truncated: shorter than the total length, or than a header.
    refused(&mut b, p(2), &good[..good.len() - 1], DropReason::Malformed);
    refused(&mut b, p(2), &good[..14 + 19], DropReason::Malformed);
    refused(&mut b, p(2), &good[..14], DropReason::Malformed);

    // IHL below 5, version 6 in an IPv4 frame, total length below the IHL.
    let fix = |f: &mut Vec<u8>| {
        f[24..26].fill(0);
        let c = checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    };
    let mut ihl4 = good.clone();
    ihl4[14] = 0x44;
    fix(&mut ihl4);
    refused(&mut b, p(2), &ihl4, DropReason::Malformed);
    let mut v6 = good.clone();
    v6[14] = 0x65;
    fix(&mut v6);
    refused(&mut b, p(2), &v6, DropReason::Malformed);
    let mut short_total = good.clone();
    short_total[16..18].copy_from_slice(&19u16.to_be_bytes());
    fix(&mut short_total);
    refused(&mut b, p(2), &short_total, DropReason::Malformed);

    // An ICMP message shorter than the echo header.
    let frame = ipv4_frame(
        GW_MAC,
        mac(2),
        &Ip::new(ip(2), GW_IP, 1).datagram(&[8, 0, 0xf7, 0xff]),
    );
    refused(&mut b, p(2), &frame, DropReason::Malformed);
    // A ping from a source no one can be answered at.
    let dgram = Ip::new(Ipv4Addr::UNSPECIFIED, GW_IP, 1).datagram(&echo_request(1, 1, b""));
    refused(
        &mut b,
        p(2),
        &ipv4_frame(GW_MAC, mac(2), &dgram),
        DropReason::Malformed,
    );

    assert_eq!(stats(&b, N1).gateway_echo_replies, 0);
}

#[test]
fn what_the_runtime_takes_is_decided_from_one_parse() {
    let mut b = setup();
    let mut syn = [0u8; 20];
    syn[0..2].copy_from_slice(&40000u16.to_be_bytes());
    syn[2..4].copy_from_slice(&80u16.to_be_bytes());
    syn[12] = 5 << 4;
    syn[13] = 0x02;
    let outside = Ipv4Addr::new(1, 1, 1, 1);
    let tcp = ipv4_frame(GW_MAC, mac(2), &Ip::new(ip(2), outside, 6).datagram(&syn));
    let GatewayTask::Tcp(t) = task(&mut b, p(2), &tcp) else {
        panic!("TCP through the gateway is the runtime's");
    };
    assert_eq!((t.src, t.dst, t.syn), ((ip(2), 40000), (outside, 80), true));
    assert_eq!(t.src_mac, mac(2));
    assert_eq!(t.ip, 14..54);

    let udp_header = |dst_port: u16| {
        let mut u = vec![0xc0, 0x00, 0, 0, 0, 11, 0, 0];
        u[2..4].copy_from_slice(&dst_port.to_be_bytes());
        u.extend_from_slice(b"abc");
        u
    };
    let dns = ipv4_frame(
        GW_MAC,
        mac(2),
        &Ip::new(ip(2), GW_IP, 17).datagram(&udp_header(53)),
    );
    let GatewayTask::Dns(d) = task(&mut b, p(2), &dns) else {
        panic!("UDP to the gateway's port 53 is DNS");
    };
    assert_eq!(&dns[d.payload.clone()], b"abc");
    let published = ipv4_frame(
        GW_MAC,
        mac(2),
        &Ip::new(ip(2), GW_IP, 17).datagram(&udp_header(9)),
    );
    assert!(
        matches!(task(&mut b, p(2), &published), GatewayTask::PublishedUdp(d) if d.dst_port == 9)
    );
    let out = ipv4_frame(
        GW_MAC,
        mac(2),
        &Ip::new(ip(2), outside, 17).datagram(&udp_header(53)),
    );
    assert!(matches!(task(&mut b, p(2), &out), GatewayTask::UdpOut(d) if d.dst_ip == outside));

    let routed_ping = Ip::new(ip(2), outside, 1).datagram(&echo_request(7, 1, b"x"));
    let GatewayTask::EchoOut(e) = task(&mut b, p(2), &ipv4_frame(GW_MAC, mac(2), &routed_ping))
    else {
        panic!("echo to the outside is the runtime's");
    };
    assert_eq!((e.src_ip, e.dst_ip, e.ident), (ip(2), outside, 7));

    // None of these is the switch's to answer.
    let mut out_buf = [0u8; 256];
    for frame in [&tcp, &dns, &published, &out] {
        let t = task(&mut b, p(2), frame);
        assert!(!t.is_switch_answer());
        assert_eq!(
            t.write_reply(frame, &mut out_buf),
            Err(DropReason::GatewayUnsupported)
        );
    }
}

#[test]
fn what_the_gateway_does_not_handle() {
    let mut b = setup();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "broadcast IP to the gateway MAC",
            ipv4_frame(
                GW_MAC,
                mac(2),
                &Ip::new(ip(2), Ipv4Addr::BROADCAST, 1).datagram(&echo_request(1, 1, b"x")),
            ),
        ),
        ("first fragment", {
            let mut h = Ip::new(ip(2), GW_IP, 1);
            h.flags_frag = 0x2000;
            ipv4_frame(GW_MAC, mac(2), &h.datagram(&echo_request(1, 1, b"x")))
        }),
        ("later fragment", {
            let mut h = Ip::new(ip(2), GW_IP, 1);
            h.flags_frag = 0x0010;
            ipv4_frame(GW_MAC, mac(2), &h.datagram(&[0; 16]))
        }),
        ("ICMP echo reply", {
            let mut m = echo_request(1, 1, b"x");
            m[0] = 0;
            m[2..4].fill(0);
            let c = checksum(&m);
            m[2..4].copy_from_slice(&c.to_be_bytes());
            ipv4_frame(GW_MAC, mac(2), &Ip::new(ip(2), GW_IP, 1).datagram(&m))
        }),
        (
            "GRE to the gateway",
            ipv4_frame(GW_MAC, mac(2), &Ip::new(ip(2), GW_IP, 47).datagram(&[0; 8])),
        ),
        ("IPv6", {
            let mut f = eth_header(GW_MAC, mac(2), 0x86dd);
            f.extend_from_slice(&[0x60; 48]);
            f
        }),
        ("802.1Q-tagged ping", {
            let good = ping(2, 1, 1, b"x");
            let mut f = eth_header(GW_MAC, mac(2), 0x8100);
            f.extend_from_slice(&[0, 5, 0x08, 0x00]);
            f.extend_from_slice(&good[14..]);
            f
        }),
    ];
    for (what, frame) in &cases {
        // Never bridged, whatever the FDB says about the gateway's MAC.
        assert_eq!(
            b.process(now(), p(2), frame, Offload::NONE),
            Verdict::Drop(DropReason::GatewayUnsupported),
            "{what}"
        );
    }
    let s = stats(&b, N1);
    assert_eq!((s.gateway_arp_replies, s.gateway_echo_replies), (0, 0));
}

#[test]
fn ipv4_not_to_the_gateway_mac_is_bridged() {
    let mut b = setup();
    // A ping to the gateway's IP but another MAC is not the gateway's.
    let dgram = Ip::new(ip(2), GW_IP, 1).datagram(&echo_request(1, 1, b"x"));
    let frame = ipv4_frame(mac(9), mac(2), &dgram);
    assert_eq!(flood(&mut b, p(2), &frame), [p(1), p(3)]);
    assert_eq!(stats(&b, N1).gateway_echo_replies, 0);
}

// ---- configuration and plumbing -------------------------------------------

#[test]
fn gateway_comes_and_goes_with_the_network_config() {
    let mut b = Bridge::new();
    b.add_network(N1, NetworkConfig::default()).unwrap();
    for i in 1..=3 {
        b.add_port(p(i), N1).unwrap();
    }
    b.set_neighbor(N1, ip(3), mac(3)).unwrap();
    // No gateway: frames to its MAC are unknown unicast, ARP for it floods.
    assert_eq!(flood(&mut b, p(2), &ping(2, 1, 1, b"x")), [p(1), p(3)]);
    assert_eq!(flood(&mut b, p(2), &who_has(2, GW_IP)), [p(1), p(3)]);

    b.set_network_config(N1, with_gateway()).unwrap();
    assert_eq!(b.network_config(N1).unwrap().gateway, Some(gw()));
    assert_arp_reply(
        &answer(&mut b, p(2), &who_has(2, GW_IP)),
        GW_MAC,
        GW_IP,
        mac(2),
        ip(2),
    );
    let icmp = echo_request(1, 1, b"x");
    assert_echo_reply(&answer(&mut b, p(2), &ping(2, 1, 1, b"x")), 2, &icmp);
    // Neighbours survived the reconfiguration.
    assert_eq!(
        b.neighbors(N1),
        [Neighbor {
            ip: ip(3),
            mac: mac(3)
        }]
    );
    assert_arp_reply(
        &answer(&mut b, p(2), &who_has(2, ip(3))),
        mac(3),
        ip(3),
        mac(2),
        ip(2),
    );

    // A new gateway address replaces the old one.
    let moved = GatewayConfig {
        ip: ip(254),
        mac: mac(254),
    };
    b.set_network_config(
        N1,
        NetworkConfig {
            gateway: Some(moved),
            ..NetworkConfig::default()
        },
    )
    .unwrap();
    assert_eq!(flood(&mut b, p(2), &who_has(2, GW_IP)), [p(1), p(3)]);
    assert_arp_reply(
        &answer(&mut b, p(2), &who_has(2, ip(254))),
        mac(254),
        ip(254),
        mac(2),
        ip(2),
    );

    b.set_network_config(N1, NetworkConfig::default()).unwrap();
    assert_eq!(flood(&mut b, p(2), &who_has(2, ip(254))), [p(1), p(3)]);
    assert_eq!(b.neighbors(N1).len(), 1);
    let s = stats(&b, N1);
    assert_eq!(
        (
            s.gateway_arp_replies,
            s.gateway_echo_replies,
            s.arp_suppressed
        ),
        (2, 1, 1)
    );
}

#[test]
fn invalid_gateways_are_refused() {
    let mut b = Bridge::new();
    b.add_network(N1, NetworkConfig::default()).unwrap();
    for gw in [
        GatewayConfig {
            ip: GW_IP,
            mac: MacAddr::BROADCAST,
        },
        GatewayConfig {
            ip: GW_IP,
            mac: MacAddr::ZERO,
        },
        GatewayConfig {
            ip: Ipv4Addr::UNSPECIFIED,
            mac: GW_MAC,
        },
        GatewayConfig {
            ip: Ipv4Addr::new(239, 1, 1, 1),
            mac: GW_MAC,
        },
    ] {
        let cfg = NetworkConfig {
            gateway: Some(gw),
            ..NetworkConfig::default()
        };
        assert_eq!(
            b.add_network(N2, cfg.clone()),
            Err(BridgeError::InvalidGateway(gw))
        );
        assert_eq!(
            b.set_network_config(N1, cfg),
            Err(BridgeError::InvalidGateway(gw))
        );
    }
    assert_eq!(b.network_config(N1).unwrap().gateway, None);
    assert!(b.network_config(N2).is_none());
    assert_eq!(
        BridgeError::InvalidGateway(GatewayConfig { ip: GW_IP, mac: MacAddr::BROADCAST }).to_string(),
        "invalid gateway 10.0.0.1 at ff:ff:ff:ff:ff:ff: the MAC must be unicast and non-zero, the IP unicast"
    );
    assert_eq!(
        BridgeError::InvalidNeighbor(Neighbor { ip: Ipv4Addr::UNSPECIFIED, mac: mac(3) }).to_string(),
        "invalid neighbour 0.0.0.0 at 02:00:00:00:00:03: the MAC must be unicast and non-zero, the IP unicast"
    );
}

#[test]
fn frames_from_the_gateway_mac_are_not_learned() {
    let mut b = setup();
    let spoof = ipv4_frame(mac(1), GW_MAC, &[0; 46]);
    assert_eq!(flood(&mut b, p(2), &spoof), [p(1), p(3)]);
    assert_eq!(b.lookup(N1, GW_MAC, now()), None);
    // A static entry for the gateway's MAC does not divert its frames.
    b.add_static(N1, GW_MAC, p(3)).unwrap();
    assert!(matches!(
        b.process(now(), p(2), &ping(2, 1, 1, b""), Offload::NONE),
        Verdict::ToGateway(GatewayTask::EchoReply(_))
    ));
}

#[test]
fn reply_buffer_size() {
    let mut b = setup();
    let req = who_has(2, GW_IP);
    let arp_task = task(&mut b, p(2), &req);
    let mut small = [0u8; 41];
    assert_eq!(
        arp_task.write_reply(&req, &mut small),
        Err(DropReason::Oversized)
    );
    let mut exact = [0u8; 42];
    assert_eq!(arp_task.write_reply(&req, &mut exact), Ok(42));

    let frame = ping(2, 1, 1, &[7; 100]);
    let echo_task = task(&mut b, p(2), &frame);
    let mut small = vec![0u8; frame.len() - 1];
    assert_eq!(
        echo_task.write_reply(&frame, &mut small),
        Err(DropReason::Oversized)
    );
    let mut exact = vec![0u8; frame.len()];
    assert_eq!(echo_task.write_reply(&frame, &mut exact), Ok(frame.len()));

    // Answers are counted when decided, once per frame.
    let s = stats(&b, N1);
    assert_eq!((s.gateway_arp_replies, s.gateway_echo_replies), (1, 1));
}

#[test]
fn internet_checksum_matches_rfc_1071() {
    // RFC 1071 §3 example: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
    assert_eq!(internet_checksum(&data), !0xddf2);
    assert_eq!(internet_checksum(&data), checksum(&data));
    // Odd length: the last octet is padded with zero.
    assert_eq!(internet_checksum(&[0x12]), !0x1200);
    assert_eq!(internet_checksum(&[]), 0xffff);
    // Many carries.
    let ones = [0xff; 4001];
    assert_eq!(internet_checksum(&ones), checksum(&ones));
}

mod udp {
    use super::super::*;

    fn gw() -> GatewayConfig {
        GatewayConfig {
            ip: Ipv4Addr::new(10, 9, 0, 1),
            mac: "02:42:0a:09:00:01".parse().unwrap(),
        }
    }

    /// The UDP view the gateway's task carries for `frame`, if it is UDP to the gateway's
    /// MAC (to its address or through it).
    fn via(frame: &[u8], gw: &GatewayConfig, checksum_partial: bool) -> Option<UdpToGateway> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        if eth.dst() != gw.mac || eth.ethertype() != ETHERTYPE_IPV4 {
            return None;
        }
        let offload = Offload {
            checksum_partial,
            ..Offload::NONE
        };
        match ipv4_task(gw, eth.src(), eth.payload(), offload).ok()? {
            GatewayTask::Dns(d) | GatewayTask::PublishedUdp(d) | GatewayTask::UdpOut(d) => Some(d),
            _ => None,
        }
    }

    /// [`via`], for the gateway's own address only.
    fn to_gw(frame: &[u8], gw: &GatewayConfig, checksum_partial: bool) -> Option<UdpToGateway> {
        via(frame, gw, checksum_partial).filter(|d| d.dst_ip == gw.ip)
    }

    /// A client's datagram to the gateway, built with the writer by swapping roles.
    fn query(payload: &[u8]) -> Vec<u8> {
        let client = GatewayConfig {
            ip: Ipv4Addr::new(10, 9, 0, 2),
            mac: "02:42:0a:09:00:02".parse().unwrap(),
        };
        let mut out = vec![0u8; 1600];
        let g = gw();
        let n =
            write_udp_from_gateway(&client, 40000, (g.mac, g.ip, 53), payload, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn datagrams_to_the_gateway_round_trip() {
        let frame = query(b"hello dns");
        let d = to_gw(&frame, &gw(), false).expect("recognised");
        assert_eq!((d.src_port, d.dst_port), (40000, 53));
        assert_eq!(d.src_ip, Ipv4Addr::new(10, 9, 0, 2));
        assert_eq!(&frame[d.payload.clone()], b"hello dns");
        // Checksums are valid: the IPv4 header sums to zero, and so does the UDP datagram
        // with its pseudo-header.
        assert_eq!(internet_checksum(&frame[14..34]), 0);
        let udp = &frame[34..];
        let pseudo = pseudo_header(Ipv4Addr::new(10, 9, 0, 2), gw().ip, udp.len());
        assert_eq!(!fold(ones_sum(udp, ones_sum(&pseudo, 0))), 0);
        // Ethernet padding after the datagram is ignored.
        let mut padded = frame.clone();
        padded.extend_from_slice(&[0; 20]);
        assert_eq!(to_gw(&padded, &gw(), false).unwrap().payload, d.payload);
    }

    #[test]
    fn corrupted_or_foreign_datagrams_are_not_recognised() {
        let frame = query(b"x");
        let mut bad_udp = frame.clone();
        bad_udp[42] ^= 0xff; // payload byte: UDP checksum no longer matches
        assert!(to_gw(&bad_udp, &gw(), false).is_none());
        // An offloaded checksum (NEEDS_CSUM) is not verified.
        assert!(to_gw(&bad_udp, &gw(), true).is_some());
        let mut no_sum = bad_udp.clone();
        no_sum[40..42].fill(0); // checksum 0: not computed by the sender, accepted
        assert!(to_gw(&no_sum, &gw(), false).is_some());
        let mut bad_ip = frame.clone();
        bad_ip[24] ^= 1;
        assert!(to_gw(&bad_ip, &gw(), false).is_none());
        let mut other_dst = frame.clone();
        other_dst[0] = 0x06;
        assert!(to_gw(&other_dst, &gw(), false).is_none());
        let mut fragment = frame.clone();
        fragment[20] |= 0x20; // MF
        assert!(to_gw(&fragment, &gw(), false).is_none());
        for cut in 0..frame.len() {
            assert!(to_gw(&frame[..cut], &gw(), false).is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn routed_datagrams_are_seen_via_the_gateway_but_not_as_for_it() {
        let client = GatewayConfig {
            ip: Ipv4Addr::new(10, 9, 0, 2),
            mac: "02:42:0a:09:00:02".parse().unwrap(),
        };
        let g = gw();
        let outside = Ipv4Addr::new(192, 0, 2, 7);
        let mut out = vec![0u8; 200];
        let n = write_udp(
            (client.mac, client.ip, 5000),
            (g.mac, outside, 7000),
            b"hi",
            &mut out,
        )
        .unwrap();
        let frame = &out[..n];
        assert!(to_gw(frame, &g, false).is_none());
        let d = via(frame, &g, false).expect("routed via the gateway");
        assert_eq!((d.dst_ip, d.dst_port, d.src_port), (outside, 7000, 5000));
        assert_eq!(&frame[d.payload], b"hi");
    }

    #[test]
    fn port_unreachable_quotes_the_datagram_with_valid_checksums() {
        let g = gw();
        let client = (
            "02:42:0a:09:00:02".parse::<MacAddr>().unwrap(),
            Ipv4Addr::new(10, 9, 0, 2),
        );
        let outside = Ipv4Addr::new(192, 0, 2, 7);
        let quoted = quoted_udp_datagram((client.1, 5000), (outside, 7001), 5);
        assert_eq!(internet_checksum(&quoted[..20]), 0);
        assert_eq!(u16::from_be_bytes([quoted[24], quoted[25]]), 13);
        let mut out = [0u8; 100];
        let n = write_icmp_unreachable(
            g.mac,
            outside,
            client,
            ICMP_PORT_UNREACHABLE,
            &quoted,
            &mut out,
        )
        .unwrap();
        let f = &out[..n];
        assert_eq!(n, 14 + 20 + 8 + 28);
        assert_eq!(&f[0..6], &client.0 .0);
        assert_eq!(internet_checksum(&f[14..34]), 0);
        assert_eq!(ip_at(f, 26), outside);
        assert_eq!((f[34], f[35]), (3, 3));
        assert_eq!(internet_checksum(&f[34..]), 0);
        assert_eq!(&f[42..], &quoted);
        assert!(
            write_icmp_unreachable(g.mac, outside, client, 3, &quoted, &mut [0u8; 40]).is_none()
        );
    }

    #[test]
    fn the_writer_refuses_too_small_buffers() {
        let mut out = [0u8; 40];
        let g = gw();
        assert!(write_udp_from_gateway(&g, 53, (g.mac, g.ip, 1), &[0; 10], &mut out).is_none());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_frames_never_panic(mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let g = gw();
            if bytes.len() >= 14 {
                bytes[0..6].copy_from_slice(&g.mac.0);
                bytes[12..14].copy_from_slice(&[0x08, 0x00]);
            }
            if let Some(d) = to_gw(&bytes, &g, false) {
                proptest::prop_assert!(d.payload.end <= bytes.len());
            }
        }
    }
}
