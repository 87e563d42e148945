//! What the gateway's runtime needs of frames routed through the gateway: the views of UDP
//! to the gateway (DNS) or through it (NAT) and of ICMP echo to the outside (decided in
//! [`task`](super::task)), and the frames the runtime writes back (UDP from the outside or
//! the gateway, ICMP unreachable, echo replies).

use super::*;

const IPPROTO_UDP: u8 = 17;
pub(super) const UDP_HEADER_LEN: usize = 8;

/// A UDP datagram (RFC 768) sent to the gateway's MAC: for one of the gateway's own services
/// (DNS on port 53) when addressed to its address, or routed through it (outbound NAT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpToGateway {
    /// The client's MAC (the frame's source).
    pub src_mac: MacAddr,
    /// The client's address.
    pub src_ip: Ipv4Addr,
    /// The client's UDP port.
    pub src_port: u16,
    /// The destination address: the gateway's own, or one routed through it.
    pub dst_ip: Ipv4Addr,
    /// The destination UDP port (53 for the gateway's DNS).
    pub dst_port: u16,
    /// Where the UDP payload lies in the frame.
    pub payload: core::ops::Range<usize>,
}

/// The UDP checksum (RFC 768): over the IPv4 pseudo-header and the whole UDP datagram.
/// Returns the value to store (0 is sent as 0xffff, since 0 means "no checksum").
fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    match !fold(ones_sum(
        udp,
        ones_sum(&pseudo_header(src, dst, udp.len()), 0),
    )) {
        0 => 0xffff,
        sum => sum,
    }
}

pub(super) fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, udp_len: usize) -> [u8; 12] {
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = IPPROTO_UDP;
    pseudo[10..12].copy_from_slice(&(udp_len as u16).to_be_bytes());
    pseudo
}

/// Writes an Ethernet/IPv4/UDP frame from the gateway (its MAC, its address, `src_port`) to
/// `dst` carrying `payload`, with both checksums (RFC 791, RFC 768). Returns the frame's
/// length, or None if `out` is too small or the payload does not fit one datagram.
pub fn write_udp_from_gateway(
    gw: &GatewayConfig,
    src_port: u16,
    dst: (MacAddr, Ipv4Addr, u16),
    payload: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    write_udp((gw.mac, gw.ip, src_port), dst, payload, out)
}

/// Writes an Ethernet/IPv4/UDP frame from `src` (MAC, address, port) to `dst` carrying
/// `payload`, with both checksums (RFC 791, RFC 768): the gateway's own answers, and the
/// replies of outbound NAT flows, which come from the outside address through the gateway's
/// MAC. Returns the frame's length, or None if `out` is too small or the payload does not fit
/// one datagram.
pub fn write_udp(
    src: (MacAddr, Ipv4Addr, u16),
    dst: (MacAddr, Ipv4Addr, u16),
    payload: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    let (src_mac, src_ip, src_port) = src;
    let (dst_mac, dst_ip, dst_port) = dst;
    let udp_len = UDP_HEADER_LEN + payload.len();
    let ip_len = IPV4_MIN_HEADER_LEN + udp_len;
    if ip_len > usize::from(u16::MAX) {
        return None;
    }
    let len = ETHERNET_HEADER_LEN + ip_len;
    let out = out.get_mut(..len)?;
    write_ethernet_ipv4_header(out, src_mac, dst_mac);
    let (ip_header, udp) = out[ETHERNET_HEADER_LEN..].split_at_mut(IPV4_MIN_HEADER_LEN);
    write_ipv4_header(ip_header, IPPROTO_UDP, src_ip, dst_ip, ip_len as u16);
    udp[0..2].copy_from_slice(&src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp[6..8].fill(0);
    udp[8..].copy_from_slice(payload);
    let sum = udp_checksum(src_ip, dst_ip, udp);
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    Some(len)
}

/// ICMP destination unreachable, code 3: port unreachable (RFC 792).
pub const ICMP_PORT_UNREACHABLE: u8 = 3;
const ICMP_DEST_UNREACHABLE: u8 = 3;

/// Writes an ICMP destination-unreachable message (RFC 792, type 3) from `from_ip` (through
/// the gateway's MAC `src_mac`) to the container at `to`, quoting the offending datagram's
/// IPv4 header and first 8 octets (`quoted`) so the container's stack can match it to the
/// socket that sent it (RFC 1122 §3.2.2.1). Returns the frame's length, or None if `out` is
/// too small.
pub fn write_icmp_unreachable(
    src_mac: MacAddr,
    from_ip: Ipv4Addr,
    to: (MacAddr, Ipv4Addr),
    code: u8,
    quoted: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    let icmp_len = ICMP_ECHO_HEADER_LEN + quoted.len();
    let ip_len = IPV4_MIN_HEADER_LEN + icmp_len;
    let len = ETHERNET_HEADER_LEN + ip_len;
    if ip_len > usize::from(u16::MAX) {
        return None;
    }
    let out = out.get_mut(..len)?;
    write_ethernet_ipv4_header(out, src_mac, to.0);
    let (ip_header, icmp) = out[ETHERNET_HEADER_LEN..].split_at_mut(IPV4_MIN_HEADER_LEN);
    write_ipv4_header(ip_header, IPPROTO_ICMP, from_ip, to.1, ip_len as u16);
    icmp[0] = ICMP_DEST_UNREACHABLE;
    icmp[1] = code;
    icmp[2..8].fill(0);
    icmp[8..].copy_from_slice(quoted);
    let sum = internet_checksum(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    Some(len)
}

/// The IPv4 header and first 8 octets of a UDP datagram from `src` to `dst` with a payload of
/// `payload_len` octets, as an ICMP error quotes it (the UDP checksum is left 0: RFC 768 "no
/// checksum").
pub fn quoted_udp_datagram(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload_len: usize,
) -> [u8; IPV4_MIN_HEADER_LEN + UDP_HEADER_LEN] {
    let mut q = [0u8; IPV4_MIN_HEADER_LEN + UDP_HEADER_LEN];
    let udp_len = (UDP_HEADER_LEN + payload_len).min(usize::from(u16::MAX) - IPV4_MIN_HEADER_LEN);
    let (ip, udp) = q.split_at_mut(IPV4_MIN_HEADER_LEN);
    write_ipv4_header(
        ip,
        IPPROTO_UDP,
        src.0,
        dst.0,
        (IPV4_MIN_HEADER_LEN + udp_len) as u16,
    );
    udp[0..2].copy_from_slice(&src.1.to_be_bytes());
    udp[2..4].copy_from_slice(&dst.1.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    q
}

/// ICMP destination unreachable code 0 (RFC 792): no route to the network.
pub const ICMP_NET_UNREACHABLE: u8 = 0;
/// ICMP destination unreachable code 1 (RFC 792): the host does not answer.
pub const ICMP_HOST_UNREACHABLE: u8 = 1;
/// ICMP destination unreachable code 13 (RFC 1812 §5.2.7.1): communication
/// administratively prohibited (a destination the NAT refuses).
pub const ICMP_ADMIN_PROHIBITED: u8 = 13;

/// An ICMP echo request (RFC 792) a container sends through the gateway to an address
/// outside its network: what the echo NAT needs to send it on and match the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoViaGateway {
    /// The container's MAC (the frame's source).
    pub src_mac: MacAddr,
    /// The container's address.
    pub src_ip: Ipv4Addr,
    /// The outside address pinged.
    pub dst_ip: Ipv4Addr,
    /// The echo identifier (RFC 792 "Identifier").
    pub ident: u16,
    /// Where the ICMP message (header and data) lies in the frame.
    pub icmp: core::ops::Range<usize>,
}

/// The identifier of an ICMP echo message, or None if `icmp` is not a well-formed echo
/// request or reply (RFC 792: type 8 or 0, code 0, valid checksum).
pub fn icmp_echo_ident(icmp: &[u8]) -> Option<(u8, u16)> {
    if icmp.len() < ICMP_ECHO_HEADER_LEN
        || !matches!(icmp[0], ICMP_ECHO_REQUEST | ICMP_ECHO_REPLY)
        || icmp[1] != 0
        || internet_checksum(icmp) != 0
    {
        return None;
    }
    Some((icmp[0], be16(icmp, 4)))
}

/// Replaces the identifier of an ICMP echo message in place and recomputes its checksum
/// (what the echo NAT does on the way out and back).
pub fn set_icmp_echo_ident(icmp: &mut [u8], ident: u16) {
    if icmp.len() < ICMP_ECHO_HEADER_LEN {
        return;
    }
    icmp[4..6].copy_from_slice(&ident.to_be_bytes());
    icmp[2..4].fill(0);
    let sum = internet_checksum(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// Writes an Ethernet/IPv4 frame carrying the ICMP message `icmp` (already complete, with
/// its checksum) from `from_ip` through the gateway's MAC to the container at `to`. Returns
/// the frame's length, or None if `out` is too small or the message too long.
pub fn write_icmp_from(
    src_mac: MacAddr,
    from_ip: Ipv4Addr,
    to: (MacAddr, Ipv4Addr),
    icmp: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    let ip_len = IPV4_MIN_HEADER_LEN + icmp.len();
    let len = ETHERNET_HEADER_LEN + ip_len;
    if ip_len > usize::from(u16::MAX) {
        return None;
    }
    let out = out.get_mut(..len)?;
    write_ethernet_ipv4_header(out, src_mac, to.0);
    let (ip_header, body) = out[ETHERNET_HEADER_LEN..].split_at_mut(IPV4_MIN_HEADER_LEN);
    write_ipv4_header(ip_header, IPPROTO_ICMP, from_ip, to.1, ip_len as u16);
    body.copy_from_slice(icmp);
    Some(len)
}

/// The Ethernet header of an IPv4 frame.
fn write_ethernet_ipv4_header(out: &mut [u8], src: MacAddr, dst: MacAddr) {
    out[0..6].copy_from_slice(&dst.0);
    out[6..12].copy_from_slice(&src.0);
    out[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
}

/// A 20-octet IPv4 header (RFC 791): DF, TTL 64, identification 0, checksum computed.
fn write_ipv4_header(h: &mut [u8], protocol: u8, src: Ipv4Addr, dst: Ipv4Addr, total_len: u16) {
    h[0] = 0x45;
    h[1] = 0;
    h[2..4].copy_from_slice(&total_len.to_be_bytes());
    h[4..6].fill(0);
    h[6..8].copy_from_slice(&IPV4_DF.to_be_bytes());
    h[8] = REPLY_TTL;
    h[9] = protocol;
    h[10..12].fill(0);
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let sum = internet_checksum(h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
}
