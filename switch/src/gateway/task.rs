//! What the gateway is asked to do with a frame ([`GatewayTask`]), decided from one parse of
//! it in [`Bridge::process`](crate::Bridge::process) and carried by
//! [`Verdict::ToGateway`](crate::Verdict::ToGateway): the switch's own answers (ARP, echo to
//! the gateway's address), and what the gateway's runtime terminates (DNS, UDP and TCP to
//! the outside, answers to published ports, ICMP echo to the outside). Headers are read
//! through smoltcp's checked `wire` views.

use core::ops::Range;

use smoltcp::wire::{Icmpv4Packet, IpAddress, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};

use super::*;

/// The DNS port (RFC 1035 §4.2): UDP to it at the gateway's address is a DNS query.
pub const DNS_PORT: u16 = 53;

/// Offloads a frame arrived with (its virtio_net_hdr), as far as the decision cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offload {
    /// A segmentation-offload superframe: it may exceed the MTU legitimately.
    pub gso: bool,
    /// The sender left the transport checksum to be completed (`NEEDS_CSUM`, as a local
    /// stack does on a TAP): the field holds only the pseudo-header sum and is not verified.
    pub checksum_partial: bool,
}

impl Offload {
    /// A plain frame: no segmentation, complete checksums.
    pub const NONE: Offload = Offload {
        gso: false,
        checksum_partial: false,
    };
}

/// What the gateway is asked to do with one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayTask {
    /// An ARP request the switch answers: for the gateway's address, or for a registered
    /// neighbour's (ARP suppression). [`GatewayTask::write_reply`] builds the answer.
    ArpReply(ArpReply),
    /// An ICMP echo request to the gateway's own address; the switch answers it.
    EchoReply(EchoToGateway),
    /// A UDP datagram to the gateway's DNS port.
    Dns(UdpToGateway),
    /// A UDP datagram to another port of the gateway's address: an answer to a client of a
    /// published UDP port.
    PublishedUdp(UdpToGateway),
    /// A UDP datagram routed through the gateway to another address (outbound NAT).
    UdpOut(UdpToGateway),
    /// A TCP segment to the gateway's address or through it (proxy NAT, published ports,
    /// DNS over TCP).
    Tcp(TcpToGateway),
    /// An ICMP echo request routed through the gateway to an outside address.
    EchoOut(EchoViaGateway),
}

impl GatewayTask {
    /// `true` for the tasks the switch answers itself ([`GatewayTask::write_reply`]); the
    /// others are for the gateway's runtime.
    pub fn is_switch_answer(&self) -> bool {
        matches!(self, GatewayTask::ArpReply(_) | GatewayTask::EchoReply(_))
    }

    /// Writes the switch's answer to `frame` (the frame the task was decided from) into
    /// `out` — a complete Ethernet frame, to be sent back out of the ingress port — and
    /// returns its length. The answer is never longer than `frame`, so an `out` of
    /// `frame.len()` octets suffices; a shorter one gives [`DropReason::Oversized`]. A task
    /// for the runtime gives [`DropReason::GatewayUnsupported`]: no runtime took it.
    pub fn write_reply(&self, frame: &[u8], out: &mut [u8]) -> Result<usize, DropReason> {
        match self {
            GatewayTask::ArpReply(arp) => write_arp_reply(arp, out),
            GatewayTask::EchoReply(echo) => {
                let icmp = frame.get(echo.icmp.clone()).ok_or(DropReason::Malformed)?;
                write_echo_reply(echo, icmp, out)
            }
            _ => Err(DropReason::GatewayUnsupported),
        }
    }
}

/// An ARP request the switch answers (RFC 826): who asked, and the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpReply {
    /// The MAC the answer gives (the gateway's, or the neighbour's).
    pub answer: MacAddr,
    /// `true` if the address asked is the gateway's; `false` for ARP suppression.
    pub for_gateway: bool,
    /// Sender hardware address (`ar$sha`): the requester.
    pub sha: MacAddr,
    /// Sender protocol address (`ar$spa`); `0.0.0.0` for an RFC 5227 probe.
    pub spa: Ipv4Addr,
    /// Target protocol address (`ar$tpa`): the address asked.
    pub tpa: Ipv4Addr,
}

/// An ICMP echo request to the gateway's own address (RFC 792).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoToGateway {
    /// The gateway asked.
    pub gateway: GatewayConfig,
    /// The requester's MAC (the frame's source).
    pub src_mac: MacAddr,
    /// The requester's address.
    pub src_ip: Ipv4Addr,
    /// The request's type-of-service octet, kept in the answer.
    pub tos: u8,
    /// The request's Don't Fragment bit, copied to the answer.
    pub dont_fragment: bool,
    /// Where the ICMP message lies in the frame.
    pub icmp: Range<usize>,
}

/// A TCP segment sent to the gateway's MAC (RFC 793).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpToGateway {
    /// The container's MAC (the frame's source).
    pub src_mac: MacAddr,
    /// The container's address and port.
    pub src: (Ipv4Addr, u16),
    /// The destination address and port: the gateway's own, or one routed through it.
    pub dst: (Ipv4Addr, u16),
    /// SYN without ACK: a connection's first segment.
    pub syn: bool,
    /// Where the IP packet lies in the frame (Ethernet padding left out).
    pub ip: Range<usize>,
}

/// The task for an IPv4 frame addressed to the gateway's MAC, from one parse of its headers:
/// a valid header checksum (RFC 791 §3.1), no fragment (no reassembly), a unicast source
/// (RFC 1122 §3.2.1.3). Malformed headers and checksums are [`DropReason::Malformed`];
/// what the gateway does not do (other protocols, fragments, ICMP other than echo requests,
/// group destinations) is [`DropReason::GatewayUnsupported`]. Never panics.
pub fn ipv4_task(
    gw: &GatewayConfig,
    src_mac: MacAddr,
    payload: &[u8],
    offload: Offload,
) -> Result<GatewayTask, DropReason> {
    let ip = Ipv4Packet::new_checked(payload).map_err(|_| DropReason::Malformed)?;
    let header_len = usize::from(ip.header_len());
    if ip.version() != 4 || header_len < IPV4_MIN_HEADER_LEN || !ip.verify_checksum() {
        return Err(DropReason::Malformed);
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(DropReason::GatewayUnsupported);
    }
    let (src_ip, dst_ip) = (ip.src_addr(), ip.dst_addr());
    if !is_unicast_ip(src_ip) {
        return Err(DropReason::Malformed);
    }
    if !is_unicast_ip(dst_ip) {
        return Err(DropReason::GatewayUnsupported);
    }
    // Octets past the total length are Ethernet padding.
    let total = usize::from(ip.total_len());
    let l4 = &payload[header_len..total];
    let l4_start = ETHERNET_HEADER_LEN + header_len;
    match ip.next_header() {
        IpProtocol::Icmp => {
            let echo = Echo {
                src_mac,
                src_ip,
                dst_ip,
                tos: payload[1],
                dont_fragment: ip.dont_frag(),
                at: l4_start,
            };
            icmp_task(gw, echo, l4)
        }
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(l4).map_err(|_| DropReason::Malformed)?;
            let (src, dst) = (IpAddress::Ipv4(src_ip), IpAddress::Ipv4(dst_ip));
            if !offload.checksum_partial && !udp.verify_checksum(&src, &dst) {
                return Err(DropReason::Malformed);
            }
            let start = l4_start + UDP_HEADER_LEN;
            let datagram = UdpToGateway {
                src_mac,
                src_ip,
                src_port: udp.src_port(),
                dst_ip,
                dst_port: udp.dst_port(),
                payload: start..start + usize::from(udp.len()) - UDP_HEADER_LEN,
            };
            Ok(match (dst_ip == gw.ip, datagram.dst_port == DNS_PORT) {
                (true, true) => GatewayTask::Dns(datagram),
                (true, false) => GatewayTask::PublishedUdp(datagram),
                (false, _) => GatewayTask::UdpOut(datagram),
            })
        }
        IpProtocol::Tcp => {
            // The checksum is the gateway's TCP/IP stack's to verify (it may be partial).
            let tcp = TcpPacket::new_checked(l4).map_err(|_| DropReason::Malformed)?;
            Ok(GatewayTask::Tcp(TcpToGateway {
                src_mac,
                src: (src_ip, tcp.src_port()),
                dst: (dst_ip, tcp.dst_port()),
                syn: tcp.syn() && !tcp.ack(),
                ip: ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + total,
            }))
        }
        _ => Err(DropReason::GatewayUnsupported),
    }
}

/// What an ICMP task needs of the IPv4 header around it.
struct Echo {
    src_mac: MacAddr,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    tos: u8,
    dont_fragment: bool,
    /// Where the ICMP message starts in the frame.
    at: usize,
}

/// An ICMP message to the gateway's MAC: an echo request (RFC 792) to the gateway's address
/// (the switch answers) or through it (echo NAT); anything else is not the gateway's.
fn icmp_task(gw: &GatewayConfig, e: Echo, icmp: &[u8]) -> Result<GatewayTask, DropReason> {
    // The echo header is 8 octets; the checksum covers the whole message (RFC 792).
    let packet = Icmpv4Packet::new_checked(icmp).map_err(|_| DropReason::Malformed)?;
    if icmp.len() < ICMP_ECHO_HEADER_LEN || !packet.verify_checksum() {
        return Err(DropReason::Malformed);
    }
    if packet.msg_type() != smoltcp::wire::Icmpv4Message::EchoRequest || packet.msg_code() != 0 {
        return Err(DropReason::GatewayUnsupported);
    }
    let range = e.at..e.at + icmp.len();
    if e.dst_ip == gw.ip {
        return Ok(GatewayTask::EchoReply(EchoToGateway {
            gateway: *gw,
            src_mac: e.src_mac,
            src_ip: e.src_ip,
            tos: e.tos,
            dont_fragment: e.dont_fragment,
            icmp: range,
        }));
    }
    Ok(GatewayTask::EchoOut(EchoViaGateway {
        src_mac: e.src_mac,
        src_ip: e.src_ip,
        dst_ip: e.dst_ip,
        ident: packet.echo_ident(),
        icmp: range,
    }))
}
