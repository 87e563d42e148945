//! The header fields the gateway's stack dispatches a frame on, read through smoltcp's
//! `wire` views: which frames are the stack's ([`stack_bound`]) and what each one is
//! ([`parse`]).

use std::net::Ipv4Addr;
use std::ops::Range;

use smoltcp::wire::{IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};
use weft_switch::{GatewayConfig, MacAddr};

/// The DNS port (RFC 1035); the data plane serves UDP to it at the gateway address itself.
pub const DNS_PORT: u16 = 53;

const ETH: usize = 14;

/// Whether a frame for the gateway belongs to the stack: TCP to any address, an ICMP echo
/// request to an outside address, or UDP to the gateway's own address other than DNS
/// (answers to published UDP ports). Cheap: looks at a few header bytes only.
pub fn stack_bound(frame: &[u8], gw: &GatewayConfig) -> bool {
    if frame.len() < ETH + 20 || frame[0..6] != gw.mac.0 || frame[12..14] != [0x08, 0x00] {
        return false;
    }
    let ip = &frame[ETH..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    match ip[9] {
        6 => true,
        1 => dst != gw.ip && ip.get(ihl) == Some(&8),
        17 => {
            dst == gw.ip
                && ip
                    .get(ihl + 2..ihl + 4)
                    .is_some_and(|p| u16::from_be_bytes([p[0], p[1]]) != DNS_PORT)
        }
        _ => false,
    }
}

/// What an IPv4 packet carries, as far as the stack cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Tcp {
        src_port: u16,
        dst_port: u16,
        /// SYN without ACK: a connection's first segment.
        syn: bool,
    },
    Udp {
        dst_port: u16,
        /// The payload's place in the IP packet.
        payload: Range<usize>,
    },
    Icmp,
    Other(u8),
}

/// An Ethernet frame carrying IPv4, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Frame {
    pub src_mac: MacAddr,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// The IP packet's place in the frame (Ethernet padding left out).
    pub ip: Range<usize>,
    pub transport: Transport,
}

/// The frame is not a well-formed IPv4 packet (or its TCP/UDP header is cut short).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed packet")]
pub struct Malformed;

/// Reads an Ethernet frame's IPv4 header and its TCP or UDP header.
pub fn parse(frame: &[u8]) -> Result<Ipv4Frame, Malformed> {
    let bytes = frame.get(ETH..).ok_or(Malformed)?;
    let ip = Ipv4Packet::new_checked(bytes).map_err(|_| Malformed)?;
    if ip.version() != 4 {
        return Err(Malformed);
    }
    let header_len = usize::from(ip.header_len());
    let total = usize::from(ip.total_len());
    let l4 = &bytes[header_len..total];
    let transport = match ip.next_header() {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(l4).map_err(|_| Malformed)?;
            Transport::Tcp {
                src_port: tcp.src_port(),
                dst_port: tcp.dst_port(),
                syn: tcp.syn() && !tcp.ack(),
            }
        }
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(l4).map_err(|_| Malformed)?;
            let end = header_len + usize::from(udp.len());
            Transport::Udp {
                dst_port: udp.dst_port(),
                payload: header_len + 8..end,
            }
        }
        IpProtocol::Icmp => Transport::Icmp,
        other => Transport::Other(u8::from(other)),
    };
    let mac = &frame[6..12];
    Ok(Ipv4Frame {
        src_mac: MacAddr([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]]),
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        ip: ETH..ETH + total,
        transport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW_MAC: MacAddr = MacAddr([2, 0x42, 10, 0, 0, 1]);

    fn gateway() -> GatewayConfig {
        GatewayConfig {
            ip: Ipv4Addr::new(10, 0, 0, 1),
            mac: GW_MAC,
        }
    }

    /// A frame from 10.0.0.2 to `dst` carrying `l4` as protocol `proto`.
    fn frame(proto: u8, dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
        let mut f = GW_MAC.0.to_vec();
        f.extend_from_slice(&[2, 0x42, 10, 0, 0, 2, 0x08, 0x00]);
        let total = (20 + l4.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 2]);
        f.extend_from_slice(&dst);
        f.extend_from_slice(l4);
        f.extend_from_slice(&[0; 6]); // Ethernet padding
        f
    }

    fn tcp(flags: u8) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&443u16.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t
    }

    #[test]
    fn frames_are_read_and_sorted() {
        let f = frame(6, [192, 0, 2, 9], &tcp(0x02));
        let p = parse(&f).unwrap();
        assert_eq!(p.src, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.dst, Ipv4Addr::new(192, 0, 2, 9));
        assert_eq!(p.src_mac, MacAddr([2, 0x42, 10, 0, 0, 2]));
        assert_eq!(p.ip, 14..54, "padding left out");
        assert_eq!(
            p.transport,
            Transport::Tcp {
                src_port: 40000,
                dst_port: 443,
                syn: true
            }
        );
        let synack = parse(&frame(6, [192, 0, 2, 9], &tcp(0x12))).unwrap();
        assert!(matches!(
            synack.transport,
            Transport::Tcp { syn: false, .. }
        ));
        assert!(stack_bound(&f, &gateway()));

        let mut udp = vec![0xc0, 0x00, 0xc0, 0x01, 0, 11, 0, 0];
        udp.extend_from_slice(b"abc");
        let u = frame(17, [10, 0, 0, 1], &udp);
        let p = parse(&u).unwrap();
        assert_eq!(
            p.transport,
            Transport::Udp {
                dst_port: 0xc001,
                payload: 28..31
            }
        );
        assert_eq!(&u[p.ip][28..31], b"abc");
        assert!(stack_bound(&u, &gateway()));
        let dns = frame(17, [10, 0, 0, 1], &[0xc0, 0, 0, 53, 0, 8, 0, 0]);
        assert!(
            !stack_bound(&dns, &gateway()),
            "DNS over UDP is the services'"
        );
        let ping_gw = frame(1, [10, 0, 0, 1], &[8, 0, 0, 0, 0, 1, 0, 1]);
        assert!(
            !stack_bound(&ping_gw, &gateway()),
            "the fast path answers it"
        );
        let ping_out = frame(1, [192, 0, 2, 9], &[8, 0, 0, 0, 0, 1, 0, 1]);
        assert!(stack_bound(&ping_out, &gateway()));
    }

    #[test]
    fn truncated_headers_are_malformed() {
        let f = frame(6, [192, 0, 2, 9], &tcp(0x02)[..12]);
        assert_eq!(parse(&f), Err(Malformed));
        let f = frame(17, [10, 0, 0, 1], &[0xc0, 0, 0xc0, 1, 0, 30, 0, 0]);
        assert_eq!(parse(&f), Err(Malformed), "UDP length beyond the packet");
        let mut f = frame(6, [192, 0, 2, 9], &tcp(0x02));
        f[14] = 0x65;
        assert_eq!(parse(&f), Err(Malformed), "IPv6 version in an IPv4 frame");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..100)) {
            let _ = stack_bound(&bytes, &gateway());
            let _ = parse(&bytes);
        }

        #[test]
        fn arbitrary_ipv4_payloads_never_panic(
            proto in proptest::sample::select(vec![1u8, 6, 17, 47]),
            l4 in proptest::collection::vec(proptest::num::u8::ANY, 0..60),
        ) {
            let f = frame(proto, [192, 0, 2, 9], &l4);
            let _ = stack_bound(&f, &gateway());
            if let Ok(p) = parse(&f) {
                if let Transport::Udp { payload, .. } = p.transport {
                    proptest::prop_assert!(f[p.ip].get(payload).is_some());
                }
            }
        }
    }
}
