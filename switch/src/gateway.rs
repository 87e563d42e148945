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
//! [`Verdict::ToGateway`](crate::Verdict::ToGateway) for such frames with the
//! [`GatewayTask`] decided from one parse of the frame ([`task`]); for the
//! switch's own answers [`GatewayTask::write_reply`] builds the answer into a
//! caller-supplied buffer, to be sent back out of the ingress port. Neither
//! allocates. The other tasks (DNS, UDP and TCP to the outside, published
//! ports, echo to the outside) are the gateway runtime's.
//!
//! What the gateway does not handle (fragments, IPv6, 802.1Q-tagged frames,
//! protocols other than TCP, UDP and ICMP echo…) is dropped as
//! [`DropReason::GatewayUnsupported`]; malformed input addressed to it as
//! [`DropReason::Malformed`].
//!
//! ```
//! use weft_switch::{
//!     Bridge, GatewayConfig, MacAddr, NetworkConfig, NetworkId, Offload, PortId, Timestamp, Verdict,
//! };
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
//! let Verdict::ToGateway(task) = bridge.process(now, PortId(1), &req, Offload::NONE) else {
//!     panic!("the switch answers ARP for the gateway");
//! };
//! let mut out = [0u8; 128];
//! let len = task.write_reply(&req, &mut out).unwrap();
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
/// RFC 791 §3.1 flags: Don't Fragment.
const IPV4_DF: u16 = 0x4000;
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
    ) -> Option<ArpReply> {
        let reply = |answer, for_gateway| ArpReply {
            answer,
            for_gateway,
            sha: req.sha,
            spa: req.spa,
            tpa: req.tpa,
        };
        if let Some(gw) = gateway.filter(|gw| gw.ip == req.tpa) {
            return Some(reply(gw.mac, true));
        }
        let mac = *self.neighbors.get(&req.tpa)?;
        // A station resolving (or probing, RFC 5227 §2.1) its own address
        // gets no answer from us: the request is bridged as usual.
        (mac != req.sha && mac != eth_src).then(|| reply(mac, false))
    }

    /// [`Responder::task_of`], counting the answers the switch gives.
    pub(crate) fn task(
        &mut self,
        gateway: Option<&GatewayConfig>,
        frame: &EthernetFrame<'_>,
        offload: Offload,
    ) -> Option<Result<GatewayTask, DropReason>> {
        let task = self.task_of(gateway, frame, offload)?;
        self.count(&task);
        Some(task)
    }

    /// Counts an answer the switch gives (ARP for the gateway or a neighbour, echo).
    fn count(&mut self, task: &Result<GatewayTask, DropReason>) {
        let counter = match task {
            Ok(GatewayTask::ArpReply(arp)) if arp.for_gateway => &mut self.gateway_arp_replies,
            Ok(GatewayTask::ArpReply(_)) => &mut self.arp_suppressed,
            Ok(GatewayTask::EchoReply(_)) => &mut self.gateway_echo_replies,
            _ => return,
        };
        *counter = counter.saturating_add(1);
    }

    /// The gateway's task for `frame` (already validated and learned by the bridge), or
    /// None if the frame is for the ports: it is addressed to the gateway's MAC (an IPv4
    /// datagram, see [`ipv4_task`], or ARP), or it is an ARP request the switch answers.
    /// Changes nothing (a synthetic trace asks it too). Does not allocate.
    pub(crate) fn task_of(
        &self,
        gateway: Option<&GatewayConfig>,
        frame: &EthernetFrame<'_>,
        offload: Offload,
    ) -> Option<Result<GatewayTask, DropReason>> {
        let to_gateway = gateway.filter(|gw| frame.dst() == gw.mac);
        let task = match frame.ethertype() {
            ETHERTYPE_ARP => {
                if to_gateway.is_none() && gateway.is_none() && self.neighbors.is_empty() {
                    return None;
                }
                let answer = parse_arp_request(frame.payload()).and_then(|req| {
                    self.arp_answer(gateway, frame.src(), &req)
                        .ok_or(DropReason::GatewayUnsupported)
                });
                match (answer, to_gateway) {
                    (Ok(arp), _) => Ok(GatewayTask::ArpReply(arp)),
                    // Only what is sent to the gateway's MAC is dropped; other ARP is bridged.
                    (Err(reason), Some(_)) => Err(reason),
                    (Err(_), None) => return None,
                }
            }
            ETHERTYPE_IPV4 => ipv4_task(to_gateway?, frame.src(), frame.payload(), offload),
            // 802.1Q-tagged frames, IPv6, and everything else sent to the gateway's MAC.
            _ => {
                to_gateway?;
                Err(DropReason::GatewayUnsupported)
            }
        };
        Some(task)
    }
}

/// Writes the ARP reply to `arp` (RFC 826: "swap the sender and target
/// fields, put the local hardware and protocol addresses in the sender
/// fields, set the opcode to reply, and send it to the new target hardware
/// address"). The answering MAC is both the sender hardware address and the
/// Ethernet source, as the Linux bridge's `neigh_suppress` does for
/// neighbours. For an RFC 5227 probe (sender IP `0.0.0.0`) the reply's
/// target IP is `0.0.0.0` too, which tells the prober the address is taken
/// (RFC 5227 §2.1.1).
fn write_arp_reply(arp: &ArpReply, out: &mut [u8]) -> Result<usize, DropReason> {
    let mac = arp.answer;
    let len = ETHERNET_HEADER_LEN + ARP_LEN;
    let out = out.get_mut(..len).ok_or(DropReason::Oversized)?;
    out[0..6].copy_from_slice(&arp.sha.0);
    out[6..12].copy_from_slice(&mac.0);
    out[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    let reply = &mut out[ETHERNET_HEADER_LEN..];
    reply[0..2].copy_from_slice(&ARP_HTYPE_ETHERNET.to_be_bytes());
    reply[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    reply[4] = 6;
    reply[5] = 4;
    reply[6..8].copy_from_slice(&ARP_OP_REPLY.to_be_bytes());
    reply[8..14].copy_from_slice(&mac.0);
    reply[14..18].copy_from_slice(&arp.tpa.octets());
    reply[18..24].copy_from_slice(&arp.sha.0);
    reply[24..28].copy_from_slice(&arp.spa.octets());
    Ok(len)
}

/// Writes the echo reply (RFC 792, RFC 1122 §3.2.2.6) to `echo`, whose ICMP message is
/// `icmp`, addressed back to the requester.
fn write_echo_reply(
    echo: &EchoToGateway,
    icmp: &[u8],
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let gw = &echo.gateway;
    let ip_len = IPV4_MIN_HEADER_LEN + icmp.len();
    let len = ETHERNET_HEADER_LEN + ip_len;
    let ip_len = u16::try_from(ip_len).map_err(|_| DropReason::Oversized)?;
    let out = out.get_mut(..len).ok_or(DropReason::Oversized)?;
    out[0..6].copy_from_slice(&echo.src_mac.0);
    out[6..12].copy_from_slice(&gw.mac.0);
    out[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let (ip_header, icmp_out) = out[ETHERNET_HEADER_LEN..].split_at_mut(IPV4_MIN_HEADER_LEN);

    // RFC 791 header: options are not echoed (IHL 5; RFC 1122 §3.2.2.6's
    // SHOULD on reflecting Record Route/Timestamp is not followed), TOS is
    // kept, a fresh identification 0 with DF copied, TTL 64, addresses
    // swapped.
    ip_header[0] = 0x45;
    ip_header[1] = echo.tos;
    ip_header[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip_header[4..6].fill(0);
    let frag = if echo.dont_fragment { IPV4_DF } else { 0 };
    ip_header[6..8].copy_from_slice(&frag.to_be_bytes());
    ip_header[8] = REPLY_TTL;
    ip_header[9] = IPPROTO_ICMP;
    ip_header[10..12].fill(0);
    ip_header[12..16].copy_from_slice(&gw.ip.octets());
    ip_header[16..20].copy_from_slice(&echo.src_ip.octets());
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

mod routed;
pub use routed::*;

mod task;
pub use task::*;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
