//! Port security: what the endpoint attached to a port may send, checked before learning —
//! frames only with its own source MAC, IPv4 only from its own address (`0.0.0.0` only for
//! a DHCP client's first messages, RFC 2131 §4.1), ARP only with its own sender MAC and
//! address (`0.0.0.0` for an RFC 5227 probe). Like OVN's port security or the kernel
//! bridge's locked ports with `ebtables` anti-spoofing rules.

use smoltcp::wire::{IpProtocol, Ipv4Packet, UdpPacket};

use super::*;
use crate::frame::ETHERTYPE_QINQ;
use crate::gateway::{ETHERTYPE_ARP, ETHERTYPE_IPV4};

/// What a port is bound to: the endpoint attached to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortBinding {
    /// The endpoint's MAC: pinned to the port in the FDB (learning never moves or deletes
    /// it), and with `security`, the only source MAC the port may send.
    pub mac: MacAddr,
    /// The endpoint's IPv4 address, if it has one: with `security`, the only IPv4 and ARP
    /// sender address the port may use.
    pub ip: Option<Ipv4Addr>,
    /// Port security on (the default for endpoints); off for a nested router or a lab that
    /// teaches spoofing.
    pub security: bool,
}

/// DHCP's UDP ports (RFC 2131 §4.1): a client sends from 68 to 67.
const DHCP_CLIENT_PORT: u16 = 68;
const DHCP_SERVER_PORT: u16 = 67;

/// The reason a frame from a port with security on is refused, or None if it passes.
pub(super) fn violation(binding: &PortBinding, frame: &EthernetFrame<'_>) -> Option<DropReason> {
    if frame.src() != binding.mac {
        return Some(DropReason::SpoofedMac);
    }
    let (ethertype, payload) = untagged(frame.ethertype(), frame.payload())?;
    match ethertype {
        ETHERTYPE_IPV4 => ipv4_violation(binding.ip, payload),
        ETHERTYPE_ARP => arp_violation(binding, payload),
        _ => None,
    }
}

/// The EtherType and payload inside up to two 802.1Q / 802.1ad tags; None if a tag is cut
/// short (the frame then carries nothing to check).
fn untagged(mut ethertype: u16, mut payload: &[u8]) -> Option<(u16, &[u8])> {
    for _ in 0..2 {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        let tag = payload.get(..VLAN_TAG_LEN)?;
        ethertype = u16::from_be_bytes([tag[2], tag[3]]);
        payload = &payload[VLAN_TAG_LEN..];
    }
    Some((ethertype, payload))
}

/// IPv4 from the endpoint's own address, or from `0.0.0.0` to the DHCP server port.
fn ipv4_violation(own: Option<Ipv4Addr>, payload: &[u8]) -> Option<DropReason> {
    let Ok(ip) = Ipv4Packet::new_checked(payload) else {
        return Some(DropReason::SpoofedIp);
    };
    let src = ip.src_addr();
    if Some(src) == own {
        return None;
    }
    if src.is_unspecified() && ip.next_header() == IpProtocol::Udp {
        let l4 = &payload[usize::from(ip.header_len())..usize::from(ip.total_len())];
        let dhcp = UdpPacket::new_checked(l4)
            .is_ok_and(|u| u.src_port() == DHCP_CLIENT_PORT && u.dst_port() == DHCP_SERVER_PORT);
        if dhcp {
            return None;
        }
    }
    Some(DropReason::SpoofedIp)
}

/// ARP (RFC 826) with the endpoint's own sender hardware and protocol addresses (`0.0.0.0`
/// for a probe, RFC 5227 §2.1.1).
fn arp_violation(binding: &PortBinding, payload: &[u8]) -> Option<DropReason> {
    // hrd(2) pro(2) hln(1) pln(1) op(2) sha(6) spa(4) tha(6) tpa(4).
    let Some(arp) = payload.get(..28) else {
        return Some(DropReason::SpoofedArp);
    };
    if arp[4] != 6 || arp[5] != 4 || arp[8..14] != binding.mac.0 {
        return Some(DropReason::SpoofedArp);
    }
    let spa = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
    if spa.is_unspecified() || Some(spa) == binding.ip {
        None
    } else {
        Some(DropReason::SpoofedArp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdb::{FdbOrigin, LearnOutcome};

    const NET: NetworkId = NetworkId(1);
    const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn mac(n: u8) -> MacAddr {
        MacAddr::local_from_bytes([0, 0, 0, 0, n])
    }

    /// Endpoint `n`'s address (never the gateway's).
    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, 10 + n)
    }

    fn binding(n: u8, security: bool) -> PortBinding {
        PortBinding {
            mac: mac(n),
            ip: Some(ip(n)),
            security,
        }
    }

    /// Ports 1..=3 in one network; ports 1 and 2 bound to endpoints 1 and 2 (security on),
    /// port 3 unbound (an uplink, a tunnel).
    fn bridge() -> Bridge {
        let mut b = Bridge::new();
        let gateway = GatewayConfig {
            ip: GW,
            mac: mac(0xfe),
        };
        let config = NetworkConfig {
            gateway: Some(gateway),
            ..NetworkConfig::default()
        };
        b.add_network(NET, config).unwrap();
        for port in 1..=3 {
            b.add_port(PortId(port), NET).unwrap();
        }
        b.bind_port(PortId(1), binding(1, true)).unwrap();
        b.bind_port(PortId(2), binding(2, true)).unwrap();
        b
    }

    fn ipv4(src_mac: MacAddr, src: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = MacAddr::BROADCAST.0.to_vec();
        f.extend_from_slice(&src_mac.0);
        f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let total = (20 + l4.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&[255, 255, 255, 255]);
        f.extend_from_slice(l4);
        f
    }

    fn arp(src_mac: MacAddr, sha: MacAddr, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
        let mut f = MacAddr::BROADCAST.0.to_vec();
        f.extend_from_slice(&src_mac.0);
        f.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 2]); // a reply
        f.extend_from_slice(&sha.0);
        f.extend_from_slice(&spa.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa.octets());
        f
    }

    fn drop_of(b: &mut Bridge, port: u32, frame: &[u8]) -> Option<DropReason> {
        match b.process(Timestamp::ZERO, PortId(port), frame, Offload::NONE) {
            Verdict::Drop(reason) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn a_secured_port_sends_only_as_its_endpoint() {
        let mut b = bridge();
        let udp = [0x30, 0x39, 0x30, 0x39, 0, 8, 0, 0];
        assert_eq!(drop_of(&mut b, 1, &ipv4(mac(1), ip(1), 17, &udp)), None);
        // Another source MAC, even with the endpoint's address.
        let other_mac = ipv4(mac(9), ip(1), 17, &udp);
        assert_eq!(drop_of(&mut b, 1, &other_mac), Some(DropReason::SpoofedMac));
        // The neighbour's address, or any other.
        let neighbour_ip = ipv4(mac(1), ip(2), 17, &udp);
        assert_eq!(
            drop_of(&mut b, 1, &neighbour_ip),
            Some(DropReason::SpoofedIp)
        );
        // 0.0.0.0 only for a DHCP client's first messages (UDP 68 -> 67).
        let dhcp = [0, 68, 0, 67, 0, 8, 0, 0];
        let unspecified = Ipv4Addr::UNSPECIFIED;
        assert_eq!(
            drop_of(&mut b, 1, &ipv4(mac(1), unspecified, 17, &dhcp)),
            None
        );
        let not_dhcp = ipv4(mac(1), unspecified, 17, &udp);
        assert_eq!(drop_of(&mut b, 1, &not_dhcp), Some(DropReason::SpoofedIp));
        // Inside an 802.1Q tag, the same rules.
        let mut tagged = neighbour_ip.clone();
        tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
        assert_eq!(drop_of(&mut b, 1, &tagged), Some(DropReason::SpoofedIp));
        // Nothing refused was learned.
        assert_eq!(b.lookup(NET, mac(9), Timestamp::ZERO), None);
    }

    #[test]
    fn arp_only_as_the_endpoint() {
        let mut b = bridge();
        let own = arp(mac(1), mac(1), ip(1), ip(2));
        assert_eq!(drop_of(&mut b, 1, &own), None);
        let probe = arp(mac(1), mac(1), Ipv4Addr::UNSPECIFIED, ip(7));
        assert_eq!(drop_of(&mut b, 1, &probe), None);
        // "The gateway is at my MAC", "my neighbour is at my MAC", another sender MAC.
        for (sha, spa) in [(mac(1), GW), (mac(1), ip(2)), (mac(2), ip(1))] {
            let spoof = arp(mac(1), sha, spa, spa);
            assert_eq!(drop_of(&mut b, 1, &spoof), Some(DropReason::SpoofedArp));
        }
    }

    #[test]
    fn endpoint_macs_are_pinned_against_every_other_port() {
        let mut b = bridge();
        // Port 3 is not secured, yet it cannot claim endpoint 1's MAC: the frame is
        // dropped and the entry stays on port 1.
        let stolen = ipv4(mac(1), ip(1), 17, &[0; 8]);
        assert_eq!(drop_of(&mut b, 3, &stolen), Some(DropReason::SpoofedMac));
        let entry = b.lookup(NET, mac(1), Timestamp::ZERO).unwrap();
        assert_eq!((entry.port, entry.origin), (PortId(1), FdbOrigin::Endpoint));
        // Neither a static entry nor another binding takes it over.
        assert!(matches!(
            b.add_static(NET, mac(1), PortId(3)),
            Err(BridgeError::MacPinned { .. })
        ));
        assert!(matches!(
            b.bind_port(PortId(3), binding(1, true)),
            Err(BridgeError::MacPinned { .. })
        ));
        // When the endpoint leaves, its MAC is free again.
        b.remove_port(PortId(1)).unwrap();
        assert_eq!(drop_of(&mut b, 3, &stolen), None);
    }

    #[test]
    fn security_off_lets_the_port_spoof_but_keeps_its_mac_pinned() {
        let mut b = bridge();
        b.bind_port(PortId(1), binding(1, false)).unwrap();
        // A nested router: other addresses and MACs pass (and are learned as usual).
        let routed = ipv4(mac(7), ip(99), 17, &[0; 8]);
        assert_eq!(drop_of(&mut b, 1, &routed), None);
        assert_eq!(
            b.lookup(NET, mac(7), Timestamp::ZERO).unwrap().port,
            PortId(1)
        );
        // But it cannot take endpoint 2's MAC.
        let stolen = ipv4(mac(2), ip(2), 17, &[0; 8]);
        assert_eq!(drop_of(&mut b, 1, &stolen), Some(DropReason::SpoofedMac));
        assert_eq!(b.port_binding(PortId(1)), Some(binding(1, false)));
    }

    #[test]
    fn a_full_learning_limit_touches_no_existing_entry() {
        let mut b = Bridge::new();
        let config = NetworkConfig {
            max_fdb_entries_per_port: 1,
            ..NetworkConfig::default()
        };
        b.add_network(NET, config).unwrap();
        b.add_port(PortId(1), NET).unwrap();
        b.add_port(PortId(2), NET).unwrap();
        let frame = |src| ipv4(src, ip(5), 17, &[0; 8]);
        // A victim on port 1; port 2 fills its quota with one MAC, then claims the victim's.
        assert_eq!(drop_of(&mut b, 1, &frame(mac(5))), None);
        assert_eq!(drop_of(&mut b, 2, &frame(mac(6))), None);
        let mut outcome = None;
        let verdict = b.process_traced(
            Timestamp::ZERO,
            PortId(2),
            &frame(mac(5)),
            Offload::NONE,
            &mut |s| {
                if let TraceStep::Learn { outcome: o, .. } = s {
                    outcome = Some(o);
                }
            },
        );
        assert!(!matches!(verdict, Verdict::Drop(_)));
        assert_eq!(outcome, Some(LearnOutcome::Refused));
        // The victim's entry is where it was: its traffic does not flood.
        assert_eq!(
            b.lookup(NET, mac(5), Timestamp::ZERO).unwrap().port,
            PortId(1)
        );
    }
}
