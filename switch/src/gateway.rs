//! The network gateway and the switch's ARP responder.
//!
//! Every network may own a *gateway*: an IPv4 address held by an internal
//! port of the switch with its own MAC address ([`GatewayConfig`], part of
//! [`NetworkConfig`](crate::NetworkConfig)). This is the first step of weft's
//! L3 gateway: the gateway answers
//!
//! * ARP requests for its address (RFC 826), and
//! * ICMP echo requests ("ping", RFC 792) sent to its address.
//!
//! Independently of the gateway, the switch performs **ARP suppression**:
//! the control plane registers the IP → MAC bindings it allocated from IPAM
//! as *neighbours* ([`Bridge::set_neighbor`](crate::Bridge::set_neighbor)),
//! and ARP requests for a neighbour's address are answered by the switch on
//! the neighbour's behalf instead of being flooded to every port — like the
//! Linux bridge's `neigh_suppress` port option.
//!
//! [`Bridge::process`](crate::Bridge::process) returns
//! [`Verdict::ToGateway`](crate::Verdict::ToGateway) for such frames, and
//! [`Bridge::gateway_reply`](crate::Bridge::gateway_reply) builds the answer
//! into a caller-supplied buffer, to be sent back out of the ingress port.
//! Neither allocates.
//!
//! What the gateway does not handle yet (TCP/UDP to its address, traffic
//! routed through it, fragments, IPv6, 802.1Q-tagged frames…) is dropped as
//! [`DropReason::GatewayUnsupported`]; malformed input addressed to it as
//! [`DropReason::Malformed`].
//!
//! ```
//! use weft_switch::{Bridge, GatewayConfig, MacAddr, NetworkConfig, NetworkId, PortId, Timestamp, Verdict};
//!
//! let gw = GatewayConfig {
//!     ip: "172.18.0.1".parse().unwrap(),
//!     mac: "02:42:00:00:00:01".parse().unwrap(),
//! };
//! let mut bridge = Bridge::new();
//! let net = NetworkId(1);
//! bridge
//!     .add_network(net, NetworkConfig { gateway: Some(gw), ..NetworkConfig::default() })
//!     .unwrap();
//! bridge.add_port(PortId(1), net).unwrap();
//! bridge.add_port(PortId(2), net).unwrap();
//!
//! // "Who has 172.18.0.1? Tell 172.18.0.2" from 02:42:ac:12:00:02.
//! let station = [0x02, 0x42, 0xac, 0x12, 0x00, 0x02];
//! let mut req = Vec::new();
//! req.extend_from_slice(&[0xff; 6]); // Ethernet: to broadcast,
//! req.extend_from_slice(&station); //   from the station,
//! req.extend_from_slice(&[0x08, 0x06]); //   ARP.
//! req.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet/IPv4, request
//! req.extend_from_slice(&station);
//! req.extend_from_slice(&[172, 18, 0, 2]);
//! req.extend_from_slice(&[0; 6]);
//! req.extend_from_slice(&[172, 18, 0, 1]);
//!
//! let now = Timestamp::from_millis(0);
//! assert_eq!(bridge.process(now, PortId(1), &req, false), Verdict::ToGateway);
//! let mut out = [0u8; 128];
//! let len = bridge.gateway_reply(PortId(1), &req, &mut out).unwrap();
//! let reply = &out[..len];
//! assert_eq!(&reply[..6], &station); // back to the requester
//! assert_eq!(&reply[6..12], &gw.mac.0); // from the gateway
//! assert_eq!(&reply[20..22], &[0, 2]); // an ARP reply
//! assert_eq!(&reply[22..28], &gw.mac.0); // "172.18.0.1 is at 02:42:00:00:00:01"
//! assert_eq!(&reply[28..32], &[172, 18, 0, 1]);
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::counters::DropReason;
use crate::frame::{EthernetFrame, ETHERNET_HEADER_LEN};
use crate::mac::MacAddr;
use weft_wire::checksum::{fold, internet_checksum, ones_sum};

/// The gateway of a network: an IPv4 address owned by an internal port of
/// the switch, with its own MAC address.
///
/// The MAC must be an individual (unicast), non-zero address and the IP a
/// unicast address (not `0.0.0.0`, `255.255.255.255`, multicast or
/// loopback); [`Bridge::add_network`](crate::Bridge::add_network) and
/// [`Bridge::set_network_config`](crate::Bridge::set_network_config) reject
/// anything else with [`BridgeError::InvalidGateway`](crate::BridgeError::InvalidGateway).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The gateway's address in the network's subnet.
    pub ip: Ipv4Addr,
    /// The MAC address of the gateway's internal port.
    pub mac: MacAddr,
}

impl GatewayConfig {
    /// `true` if the MAC is unicast and non-zero and the IP is unicast.
    pub fn is_valid(&self) -> bool {
        is_station_mac(self.mac) && is_unicast_ip(self.ip)
    }
}

/// An IP → MAC binding registered for ARP suppression (an address the
/// control plane allocated from IPAM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// The endpoint's IPv4 address.
    pub ip: Ipv4Addr,
    /// The endpoint's MAC address.
    pub mac: MacAddr,
}

impl Neighbor {
    /// `true` if the MAC is unicast and non-zero and the IP is unicast
    /// (same rules as [`GatewayConfig::is_valid`]).
    pub fn is_valid(&self) -> bool {
        is_station_mac(self.mac) && is_unicast_ip(self.ip)
    }
}

/// EtherType of ARP (RFC 826).
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv4 (RFC 894).
pub const ETHERTYPE_IPV4: u16 = 0x0800;

/// Length of an ARP packet for Ethernet/IPv4: 8 fixed octets plus two
/// (6-octet hardware, 4-octet protocol) address pairs (RFC 826).
const ARP_LEN: usize = 28;
/// RFC 826 `ar$hrd` for Ethernet (hardware type 1).
const ARP_HTYPE_ETHERNET: u16 = 1;
/// RFC 826 `ar$op` values.
const ARP_OP_REQUEST: u16 = 1;
const ARP_OP_REPLY: u16 = 2;

/// Length of an IPv4 header without options (IHL = 5, RFC 791 §3.1).
const IPV4_MIN_HEADER_LEN: usize = 20;
/// IPv4 protocol number of ICMP.
const IPPROTO_ICMP: u8 = 1;
/// RFC 791 §3.1 flags/fragment offset: Don't Fragment, More Fragments, and
/// the 13-bit fragment offset.
const IPV4_DF: u16 = 0x4000;
const IPV4_MF: u16 = 0x2000;
const IPV4_OFFSET_MASK: u16 = 0x1fff;
/// TTL of the datagrams the gateway originates (the Linux default).
const REPLY_TTL: u8 = 64;

/// Length of the ICMP echo header: type, code, checksum, identifier,
/// sequence number (RFC 792).
const ICMP_ECHO_HEADER_LEN: usize = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;

/// `true` for an address that may identify a station: individual and
/// non-zero.
fn is_station_mac(mac: MacAddr) -> bool {
    mac.is_unicast() && !mac.is_zero()
}

/// `true` for an address that may identify one host: not unspecified,
/// limited broadcast, multicast or loopback (RFC 1122 §3.2.1.3).
fn is_unicast_ip(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback())
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn mac_at(bytes: &[u8], at: usize) -> MacAddr {
    let mut octets = [0u8; 6];
    octets.copy_from_slice(&bytes[at..at + 6]);
    MacAddr(octets)
}

fn ip_at(bytes: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3])
}

/// The fields of an ARP request the responder needs (RFC 826).
#[derive(Clone, Copy, Debug)]
struct ArpRequest {
    /// Sender hardware address (`ar$sha`): the requester.
    sha: MacAddr,
    /// Sender protocol address (`ar$spa`); `0.0.0.0` for an RFC 5227 probe.
    spa: Ipv4Addr,
    /// Target protocol address (`ar$tpa`): the address being resolved.
    tpa: Ipv4Addr,
}

/// Parses the payload of an ARP frame as an Ethernet/IPv4 request the
/// responder could answer.
///
/// * truncated packets, other hardware/protocol types or address lengths,
///   a group or zero sender MAC, and a sender IP that is neither unicast nor
///   `0.0.0.0` (an RFC 5227 probe) are [`DropReason::Malformed`];
/// * replies (and other opcodes) and announcements / gratuitous ARP
///   (`ar$spa == ar$tpa`, RFC 5227 §2.3) are
///   [`DropReason::GatewayUnsupported`]: there is nothing to answer, and an
///   announcement must reach every station to update their caches.
fn parse_arp_request(payload: &[u8]) -> Result<ArpRequest, DropReason> {
    // RFC 826 packet format: hrd(2) pro(2) hln(1) pln(1) op(2) sha spa tha tpa.
    let Some(arp) = payload.get(..ARP_LEN) else {
        return Err(DropReason::Malformed);
    };
    if be16(arp, 0) != ARP_HTYPE_ETHERNET
        || be16(arp, 2) != ETHERTYPE_IPV4
        || arp[4] != 6
        || arp[5] != 4
    {
        return Err(DropReason::Malformed);
    }
    if be16(arp, 6) != ARP_OP_REQUEST {
        return Err(DropReason::GatewayUnsupported);
    }
    let req = ArpRequest {
        sha: mac_at(arp, 8),
        spa: ip_at(arp, 14),
        tpa: ip_at(arp, 24),
    };
    if !is_station_mac(req.sha) || !(req.spa.is_unspecified() || is_unicast_ip(req.spa)) {
        return Err(DropReason::Malformed);
    }
    if req.spa == req.tpa {
        return Err(DropReason::GatewayUnsupported);
    }
    Ok(req)
}

/// Who answers an ARP request, and with which MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArpAnswer {
    /// The request is for the gateway's own address.
    Gateway(MacAddr),
    /// The request is for a registered neighbour (ARP suppression).
    Neighbor(MacAddr),
}

/// Per-network state of the gateway and ARP responder: the registered
/// neighbours and the responder's statistics. The gateway itself lives in
/// the network's configuration.
#[derive(Clone, Debug, Default)]
pub(crate) struct Responder {
    /// Sorted by address, so listing needs no sort and lookups never
    /// allocate.
    neighbors: BTreeMap<Ipv4Addr, MacAddr>,
    /// ARP requests for neighbours answered by the switch.
    pub(crate) arp_suppressed: u64,
    /// ARP requests for the gateway answered.
    pub(crate) gateway_arp_replies: u64,
    /// ICMP echo requests to the gateway answered.
    pub(crate) gateway_echo_replies: u64,
}

impl Responder {
    /// Registers (or replaces) the binding `ip -> mac`.
    pub(crate) fn set_neighbor(&mut self, ip: Ipv4Addr, mac: MacAddr) {
        self.neighbors.insert(ip, mac);
    }

    /// Forgets the binding for `ip`, if any.
    pub(crate) fn remove_neighbor(&mut self, ip: Ipv4Addr) {
        self.neighbors.remove(&ip);
    }

    /// Every binding, sorted by IP.
    pub(crate) fn neighbors(&self) -> Vec<Neighbor> {
        self.neighbors
            .iter()
            .map(|(ip, mac)| Neighbor { ip: *ip, mac: *mac })
            .collect()
    }

    /// The answer to `req` received from Ethernet source `eth_src`, if the
    /// switch answers it: the gateway's address, or a neighbour's address
    /// asked by someone other than that neighbour itself. The gateway takes
    /// precedence over a neighbour registered with the same address.
    fn arp_answer(
        &self,
        gateway: Option<&GatewayConfig>,
        eth_src: MacAddr,
        req: &ArpRequest,
    ) -> Option<ArpAnswer> {
        if let Some(gw) = gateway.filter(|gw| gw.ip == req.tpa) {
            return Some(ArpAnswer::Gateway(gw.mac));
        }
        let mac = *self.neighbors.get(&req.tpa)?;
        // A station resolving (or probing, RFC 5227 §2.1) its own address
        // gets no answer from us: the request is bridged as usual.
        (mac != req.sha && mac != eth_src).then_some(ArpAnswer::Neighbor(mac))
    }

    /// `true` if `frame` (already validated and learned by the bridge) is
    /// for the gateway or the ARP responder rather than for the ports: it is
    /// addressed to the gateway's MAC, or it is an ARP request the switch
    /// answers. Does not allocate.
    pub(crate) fn intercepts(
        &self,
        gateway: Option<&GatewayConfig>,
        frame: &EthernetFrame<'_>,
    ) -> bool {
        if gateway.is_some_and(|gw| frame.dst() == gw.mac) {
            return true;
        }
        if frame.ethertype() != ETHERTYPE_ARP || (gateway.is_none() && self.neighbors.is_empty()) {
            return false;
        }
        parse_arp_request(frame.payload())
            .ok()
            .and_then(|req| self.arp_answer(gateway, frame.src(), &req))
            .is_some()
    }

    /// Builds the answer to `bytes` into `out`; see
    /// [`Bridge::gateway_reply`](crate::Bridge::gateway_reply). Counts the
    /// statistics of successful replies; errors are for the caller to count.
    pub(crate) fn reply(
        &mut self,
        gateway: Option<&GatewayConfig>,
        bytes: &[u8],
        out: &mut [u8],
    ) -> Result<usize, DropReason> {
        let frame = EthernetFrame::new_checked(bytes).map_err(|_| DropReason::Runt)?;
        if !is_station_mac(frame.src()) {
            return Err(DropReason::InvalidSourceMac);
        }
        match frame.ethertype() {
            ETHERTYPE_ARP => {
                let req = parse_arp_request(frame.payload())?;
                let answer = self
                    .arp_answer(gateway, frame.src(), &req)
                    .ok_or(DropReason::GatewayUnsupported)?;
                let len = write_arp_reply(answer, &req, out)?;
                let counter = match answer {
                    ArpAnswer::Gateway(_) => &mut self.gateway_arp_replies,
                    ArpAnswer::Neighbor(_) => &mut self.arp_suppressed,
                };
                *counter = counter.saturating_add(1);
                Ok(len)
            }
            ETHERTYPE_IPV4 => {
                // Only datagrams sent to the gateway's MAC are the gateway's.
                let gw = gateway
                    .filter(|gw| frame.dst() == gw.mac)
                    .ok_or(DropReason::GatewayUnsupported)?;
                let len = write_echo_reply(gw, frame.src(), frame.payload(), out)?;
                self.gateway_echo_replies = self.gateway_echo_replies.saturating_add(1);
                Ok(len)
            }
            // 802.1Q-tagged frames, IPv6, and everything else.
            _ => Err(DropReason::GatewayUnsupported),
        }
    }
}

/// Writes the ARP reply to `req` (RFC 826: "swap the sender and target
/// fields, put the local hardware and protocol addresses in the sender
/// fields, set the opcode to reply, and send it to the new target hardware
/// address"). The answering MAC is both the sender hardware address and the
/// Ethernet source, as the Linux bridge's `neigh_suppress` does for
/// neighbours. For an RFC 5227 probe (sender IP `0.0.0.0`) the reply's
/// target IP is `0.0.0.0` too, which tells the prober the address is taken
/// (RFC 5227 §2.1.1).
fn write_arp_reply(
    answer: ArpAnswer,
    req: &ArpRequest,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let (ArpAnswer::Gateway(mac) | ArpAnswer::Neighbor(mac)) = answer;
    let len = ETHERNET_HEADER_LEN + ARP_LEN;
    let out = out.get_mut(..len).ok_or(DropReason::Oversized)?;
    out[0..6].copy_from_slice(&req.sha.0);
    out[6..12].copy_from_slice(&mac.0);
    out[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    let arp = &mut out[ETHERNET_HEADER_LEN..];
    arp[0..2].copy_from_slice(&ARP_HTYPE_ETHERNET.to_be_bytes());
    arp[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    arp[4] = 6;
    arp[5] = 4;
    arp[6..8].copy_from_slice(&ARP_OP_REPLY.to_be_bytes());
    arp[8..14].copy_from_slice(&mac.0);
    arp[14..18].copy_from_slice(&req.tpa.octets());
    arp[18..24].copy_from_slice(&req.sha.0);
    arp[24..28].copy_from_slice(&req.spa.octets());
    Ok(len)
}

/// Validates an IPv4 datagram sent to the gateway's MAC and, if it is an
/// ICMP echo request for the gateway's address, writes the echo reply
/// (RFC 792, RFC 1122 §3.2.2.6) addressed to `eth_dst`.
fn write_echo_reply(
    gw: &GatewayConfig,
    eth_dst: MacAddr,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, DropReason> {
    // RFC 791 §3.1: version, IHL (in 32-bit words), total length, and the
    // header checksum over the IHL * 4 header octets.
    let Some(fixed) = payload.get(..IPV4_MIN_HEADER_LEN) else {
        return Err(DropReason::Malformed);
    };
    let ihl = usize::from(fixed[0] & 0x0f) * 4;
    let total_len = usize::from(be16(fixed, 2));
    if fixed[0] >> 4 != 4 || ihl < IPV4_MIN_HEADER_LEN || total_len < ihl {
        return Err(DropReason::Malformed);
    }
    // Octets past the total length are Ethernet padding: ignored.
    let Some(datagram) = payload.get(..total_len) else {
        return Err(DropReason::Malformed);
    };
    let header = &datagram[..ihl];
    if internet_checksum(header) != 0 {
        return Err(DropReason::Malformed);
    }
    let src = ip_at(header, 12);
    let dst = ip_at(header, 16);
    // Traffic routed via the gateway, and broadcast/multicast datagrams
    // (the gateway's own address is always unicast).
    if dst != gw.ip {
        return Err(DropReason::GatewayUnsupported);
    }
    // Fragments would need reassembly.
    let frag = be16(header, 6);
    if frag & (IPV4_MF | IPV4_OFFSET_MASK) != 0 {
        return Err(DropReason::GatewayUnsupported);
    }
    // TCP, UDP, … to the gateway: not yet (NAT comes later).
    if header[9] != IPPROTO_ICMP {
        return Err(DropReason::GatewayUnsupported);
    }
    // RFC 792: the ICMP checksum covers the whole ICMP message.
    let icmp = &datagram[ihl..];
    if icmp.len() < ICMP_ECHO_HEADER_LEN || internet_checksum(icmp) != 0 {
        return Err(DropReason::Malformed);
    }
    if icmp[0] != ICMP_ECHO_REQUEST || icmp[1] != 0 {
        return Err(DropReason::GatewayUnsupported);
    }
    // RFC 1122 §3.2.1.3: a datagram whose source cannot be a host is
    // silently discarded; there is no one to reply to.
    if !is_unicast_ip(src) {
        return Err(DropReason::Malformed);
    }

    let ip_len = IPV4_MIN_HEADER_LEN + icmp.len();
    let len = ETHERNET_HEADER_LEN + ip_len;
    let out = out.get_mut(..len).ok_or(DropReason::Oversized)?;
    out[0..6].copy_from_slice(&eth_dst.0);
    out[6..12].copy_from_slice(&gw.mac.0);
    out[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let (ip_header, icmp_out) = out[ETHERNET_HEADER_LEN..].split_at_mut(IPV4_MIN_HEADER_LEN);

    // RFC 791 header: options are not echoed (IHL 5; RFC 1122 §3.2.2.6's
    // SHOULD on reflecting Record Route/Timestamp is not followed), TOS is
    // kept, a fresh identification 0 with DF copied, TTL 64, addresses
    // swapped.
    ip_header[0] = 0x45;
    ip_header[1] = header[1];
    // ip_len <= total_len <= u16::MAX.
    ip_header[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip_header[4..6].fill(0);
    ip_header[6..8].copy_from_slice(&(frag & IPV4_DF).to_be_bytes());
    ip_header[8] = REPLY_TTL;
    ip_header[9] = IPPROTO_ICMP;
    ip_header[10..12].fill(0);
    ip_header[12..16].copy_from_slice(&gw.ip.octets());
    ip_header[16..20].copy_from_slice(&src.octets());
    let sum = internet_checksum(ip_header);
    ip_header[10..12].copy_from_slice(&sum.to_be_bytes());

    // RFC 792 echo reply: type 0, code 0, identifier, sequence number and
    // data unchanged, checksum recomputed over the whole message (RFC 1071).
    icmp_out.copy_from_slice(icmp);
    icmp_out[0] = ICMP_ECHO_REPLY;
    icmp_out[1] = 0;
    icmp_out[2..4].fill(0);
    let sum = internet_checksum(icmp_out);
    icmp_out[2..4].copy_from_slice(&sum.to_be_bytes());
    Ok(len)
}

const IPPROTO_UDP: u8 = 17;
const UDP_HEADER_LEN: usize = 8;

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

/// If `frame` is an unfragmented IPv4/UDP datagram for the gateway's own address, with a
/// valid IPv4 header checksum (RFC 791) and a valid UDP checksum where one is present
/// (RFC 768), returns its addressing and where its payload lies. Pure; never panics.
///
/// `checksum_partial`: the sender offloaded the UDP checksum (virtio_net_hdr
/// `NEEDS_CSUM`, as a local stack does on a TAP): the field holds only the pseudo-header
/// sum, the data never left the host, and the checksum is not verified.
pub fn udp_to_gateway(
    frame: &[u8],
    gw: &GatewayConfig,
    checksum_partial: bool,
) -> Option<UdpToGateway> {
    udp_via_gateway(frame, gw, checksum_partial).filter(|d| d.dst_ip == gw.ip)
}

/// Like [`udp_to_gateway`], for any unicast destination: a datagram sent to the gateway's
/// MAC, addressed to the gateway itself or routed through it.
pub fn udp_via_gateway(
    frame: &[u8],
    gw: &GatewayConfig,
    checksum_partial: bool,
) -> Option<UdpToGateway> {
    let (datagram, ihl) = ipv4_to_gateway_mac(frame, gw, IPPROTO_UDP, UDP_HEADER_LEN)?;
    let header = &datagram[..ihl];
    let src_ip = ip_at(header, 12);
    let dst_ip = ip_at(header, 16);
    if !is_unicast_ip(src_ip) || !is_unicast_ip(dst_ip) {
        return None;
    }
    let udp = &datagram[ihl..];
    let udp_len = usize::from(be16(udp, 4));
    if udp_len < UDP_HEADER_LEN || udp_len > udp.len() {
        return None;
    }
    let udp = &udp[..udp_len];
    if !checksum_partial
        && be16(udp, 6) != 0
        && !fold(ones_sum(
            udp,
            ones_sum(&pseudo_header(src_ip, dst_ip, udp_len), 0),
        )) != 0
    {
        return None;
    }
    let start = ETHERNET_HEADER_LEN + ihl + UDP_HEADER_LEN;
    Some(UdpToGateway {
        src_mac: mac_at(frame, 6),
        src_ip,
        src_port: be16(udp, 0),
        dst_ip,
        dst_port: be16(udp, 2),
        payload: start..start + udp_len - UDP_HEADER_LEN,
    })
}

/// The IPv4 datagram of an Ethernet frame addressed to the gateway's MAC, and its header
/// length, if it carries `protocol` with at least `min_l4` octets after the header, has a
/// valid header checksum (RFC 1071) and is not a fragment (RFC 791).
fn ipv4_to_gateway_mac<'f>(
    frame: &'f [u8],
    gw: &GatewayConfig,
    protocol: u8,
    min_l4: usize,
) -> Option<(&'f [u8], usize)> {
    if frame.len() < ETHERNET_HEADER_LEN || mac_at(frame, 0) != gw.mac {
        return None;
    }
    if be16(frame, 12) != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = &frame[ETHERNET_HEADER_LEN..];
    let fixed = ip.get(..IPV4_MIN_HEADER_LEN)?;
    let ihl = usize::from(fixed[0] & 0x0f) * 4;
    let total_len = usize::from(be16(fixed, 2));
    if fixed[0] >> 4 != 4 || ihl < IPV4_MIN_HEADER_LEN || total_len < ihl + min_l4 {
        return None;
    }
    let datagram = ip.get(..total_len)?;
    let header = &datagram[..ihl];
    if internet_checksum(header) != 0
        || header[9] != protocol
        || be16(header, 6) & (IPV4_MF | IPV4_OFFSET_MASK) != 0
    {
        return None;
    }
    Some((datagram, ihl))
}

fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, udp_len: usize) -> [u8; 12] {
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

/// Recognises an ICMP echo request addressed to the gateway's MAC for a unicast address
/// other than the gateway's own (which [`Bridge::gateway_reply`] answers). Fragments, bad
/// checksums and broadcast or multicast addresses are refused.
///
/// [`Bridge::gateway_reply`]: crate::Bridge::gateway_reply
pub fn echo_request_via_gateway(frame: &[u8], gw: &GatewayConfig) -> Option<EchoViaGateway> {
    let (datagram, ihl) = ipv4_to_gateway_mac(frame, gw, IPPROTO_ICMP, ICMP_ECHO_HEADER_LEN)?;
    let header = &datagram[..ihl];
    let (src_ip, dst_ip) = (ip_at(header, 12), ip_at(header, 16));
    if !is_unicast_ip(src_ip) || !is_unicast_ip(dst_ip) || dst_ip == gw.ip {
        return None;
    }
    let icmp = &datagram[ihl..];
    if icmp[0] != ICMP_ECHO_REQUEST || icmp[1] != 0 || internet_checksum(icmp) != 0 {
        return None;
    }
    let start = ETHERNET_HEADER_LEN + ihl;
    Some(EchoViaGateway {
        src_mac: mac_at(frame, 6),
        src_ip,
        dst_ip,
        ident: be16(icmp, 4),
        icmp: start..start + icmp.len(),
    })
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
