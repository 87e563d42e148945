//! `weft trace PORT --inject SPEC`: a synthetic frame from a tcpdump-like description (or
//! hex), filled in from the port's endpoint and network, built with smoltcp's `wire`
//! emitters. Pure: the daemon supplies a [`FrameContext`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr,
    TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr,
};
use weft_switch::MacAddr;

/// The syntax, shown with every parse error.
pub const SYNTAX: &str = "a frame is described as one of:
  arp who-has IP [tell IP]
  icmp [SRC >] DST
  tcp [SRC:PORT >] DST:PORT [syn|ack|fin|rst|psh ...]
  udp [SRC:PORT >] DST:PORT
where an address is an IPv4 address, GW (the network's gateway) or an endpoint's name;
options after it: src-mac MAC, dst-mac MAC, len N (payload octets);
left out: the source (the port's endpoint), the source port (49152), the TCP flags (syn)";

/// Why a description does not make a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("empty frame description\n{SYNTAX}")]
    Empty,
    #[error("{token:?}: {problem}\n{SYNTAX}")]
    Token { token: String, problem: String },
    #[error("the description ends early: {0}\n{SYNTAX}")]
    Missing(&'static str),
    #[error("{0}")]
    Unresolved(String),
    #[error("--hex: {0}; give the frame as hex digits (spaces and colons allowed), Ethernet header first")]
    Hex(String),
}

fn token(t: &str, problem: impl Into<String>) -> SpecError {
    SpecError::Token {
        token: t.to_string(),
        problem: problem.into(),
    }
}

/// An address as written: resolved against the [`FrameContext`] when the frame is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(Ipv4Addr),
    Gateway,
    Name(String),
}

/// One end of a datagram: an address and, for TCP and UDP, a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub host: Host,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Arp,
    Icmp,
    Tcp,
    Udp,
}

/// TCP flags asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
}

/// A parsed description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSpec {
    pub proto: Proto,
    /// The source, if given (else the port's endpoint); for ARP the `tell` address.
    pub src: Option<End>,
    /// The destination; for ARP the address asked for.
    pub dst: End,
    pub flags: TcpFlags,
    pub src_mac: Option<MacAddr>,
    pub dst_mac: Option<MacAddr>,
    /// Payload octets (ICMP: 56, as ping sends, else 0).
    pub len: Option<usize>,
}

/// What the port and its network supply to a description.
#[derive(Debug, Clone, Default)]
pub struct FrameContext {
    /// The port's endpoint's MAC (a tunnel port has none: give `src-mac`).
    pub src_mac: Option<MacAddr>,
    /// The port's endpoint's address.
    pub src_ip: Option<Ipv4Addr>,
    /// The network's gateway (address, MAC).
    pub gateway: Option<(Ipv4Addr, MacAddr)>,
    pub subnet: Option<Ipv4Net>,
    /// The network's neighbour (ARP) table.
    pub neighbors: BTreeMap<Ipv4Addr, MacAddr>,
    /// Endpoint names (and aliases) on the network, with their addresses.
    pub names: BTreeMap<String, Ipv4Addr>,
}

/// Parses a description (see [`SYNTAX`]).
pub fn parse(spec: &str) -> Result<FrameSpec, SpecError> {
    let mut words = spec.split_whitespace();
    let proto = match words.next().ok_or(SpecError::Empty)? {
        "arp" => Proto::Arp,
        "icmp" => Proto::Icmp,
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => return Err(token(other, "unknown protocol: arp, icmp, tcp or udp")),
    };
    let rest: Vec<&str> = words.collect();
    let (src, dst, options) = if proto == Proto::Arp {
        parse_arp(&rest)?
    } else {
        parse_ends(proto, &rest)?
    };
    let mut spec = FrameSpec {
        proto,
        src,
        dst,
        flags: TcpFlags::default(),
        src_mac: None,
        dst_mac: None,
        len: None,
    };
    parse_options(&mut spec, options)?;
    if proto == Proto::Tcp && spec.flags == TcpFlags::default() {
        spec.flags.syn = true;
    }
    Ok(spec)
}

type Ends<'a> = (Option<End>, End, &'a [&'a str]);

/// `who-has IP [tell IP]`.
fn parse_arp<'a>(rest: &'a [&'a str]) -> Result<Ends<'a>, SpecError> {
    match rest.first() {
        Some(&"who-has") => {}
        Some(t) => return Err(token(t, "expected who-has after arp")),
        None => return Err(SpecError::Missing("arp needs who-has IP")),
    }
    let target = rest
        .get(1)
        .ok_or(SpecError::Missing("who-has needs an address"))?;
    let dst = End {
        host: parse_host(target)?,
        port: None,
    };
    if rest.get(2) == Some(&"tell") {
        let t = rest
            .get(3)
            .ok_or(SpecError::Missing("tell needs an address"))?;
        let src = End {
            host: parse_host(t)?,
            port: None,
        };
        return Ok((Some(src), dst, &rest[4..]));
    }
    Ok((None, dst, &rest[2..]))
}

/// `[SRC >] DST`, with ports for TCP and UDP.
fn parse_ends<'a>(proto: Proto, rest: &'a [&'a str]) -> Result<Ends<'a>, SpecError> {
    let ported = proto != Proto::Icmp;
    let first = rest.first().ok_or(SpecError::Missing("a destination"))?;
    if rest.get(1) == Some(&">") {
        let dst = rest
            .get(2)
            .ok_or(SpecError::Missing("a destination after >"))?;
        let src = parse_end(first, ported, false)?;
        Ok((Some(src), parse_end(dst, ported, true)?, &rest[3..]))
    } else {
        Ok((None, parse_end(first, ported, true)?, &rest[1..]))
    }
}

fn parse_end(t: &str, ported: bool, port_required: bool) -> Result<End, SpecError> {
    if !ported {
        return Ok(End {
            host: parse_host(t)?,
            port: None,
        });
    }
    match t.rsplit_once(':') {
        Some((host, port)) => Ok(End {
            host: parse_host(host)?,
            port: Some(
                port.parse()
                    .map_err(|_| token(t, "the port must be 0..65535"))?,
            ),
        }),
        None if port_required => Err(token(t, "tcp and udp destinations need a port: ADDR:PORT")),
        None => Ok(End {
            host: parse_host(t)?,
            port: None,
        }),
    }
}

fn parse_host(t: &str) -> Result<Host, SpecError> {
    if t.eq_ignore_ascii_case("gw") || t == "gateway" {
        return Ok(Host::Gateway);
    }
    if let Ok(ip) = t.parse() {
        return Ok(Host::Ip(ip));
    }
    let looks_numeric = t.chars().all(|c| c.is_ascii_digit() || c == '.');
    if looks_numeric || t.is_empty() || t == ">" || t.contains(':') {
        return Err(token(t, "not an IPv4 address, GW or an endpoint name"));
    }
    Ok(Host::Name(t.to_string()))
}

fn parse_options(spec: &mut FrameSpec, mut words: &[&str]) -> Result<(), SpecError> {
    while let Some((&w, rest)) = words.split_first() {
        words = rest;
        let tcp = spec.proto == Proto::Tcp;
        for flag in w.split(',') {
            match flag {
                "syn" | "S" if tcp => spec.flags.syn = true,
                "ack" | "." if tcp => spec.flags.ack = true,
                "fin" | "F" if tcp => spec.flags.fin = true,
                "rst" | "R" if tcp => spec.flags.rst = true,
                "psh" | "P" if tcp => spec.flags.psh = true,
                "src-mac" | "dst-mac" | "len" => {
                    let (&v, rest) = words
                        .split_first()
                        .ok_or(SpecError::Missing("a value after src-mac, dst-mac or len"))?;
                    words = rest;
                    let mac = || {
                        v.parse::<MacAddr>()
                            .map_err(|_| token(v, "not a MAC address"))
                    };
                    match flag {
                        "src-mac" => spec.src_mac = Some(mac()?),
                        "dst-mac" => spec.dst_mac = Some(mac()?),
                        _ => {
                            let n = v.parse::<usize>().ok().filter(|n| *n <= 9000);
                            spec.len = Some(n.ok_or_else(|| token(v, "len takes 0..9000"))?);
                        }
                    }
                }
                _ => return Err(token(w, "unknown option here")),
            }
        }
    }
    Ok(())
}

fn resolve(host: &Host, ctx: &FrameContext) -> Result<Ipv4Addr, SpecError> {
    match host {
        Host::Ip(ip) => Ok(*ip),
        Host::Gateway => ctx.gateway.map(|g| g.0).ok_or_else(|| {
            SpecError::Unresolved("the port's network has no gateway: give an address".into())
        }),
        Host::Name(n) => ctx.names.get(n).copied().ok_or_else(|| {
            SpecError::Unresolved(format!(
                "no endpoint named {n:?} on the port's network: give its address"
            ))
        }),
    }
}

/// The destination MAC of a datagram to `dst`: a neighbour's on the subnet, else the
/// gateway's (routed), as the sending host's ARP table would have it.
fn next_hop_mac(dst: Ipv4Addr, ctx: &FrameContext) -> Result<MacAddr, SpecError> {
    let on_link = ctx.subnet.is_some_and(|s| s.contains(&dst));
    match ctx.gateway {
        Some((gw, mac)) if gw == dst || !on_link => Ok(mac),
        _ if on_link => ctx.neighbors.get(&dst).copied().ok_or_else(|| {
            SpecError::Unresolved(format!(
                "no endpoint has {dst} in the network's ARP table (weft arp): give dst-mac MAC"
            ))
        }),
        _ => Err(SpecError::Unresolved(format!(
            "{dst} is not on the port's network and it has no gateway: give dst-mac MAC"
        ))),
    }
}

/// Builds the frame a description stands for.
pub fn build(spec: &FrameSpec, ctx: &FrameContext) -> Result<Vec<u8>, SpecError> {
    let src_mac = spec.src_mac.or(ctx.src_mac).ok_or_else(|| {
        SpecError::Unresolved("the port has no endpoint MAC: give src-mac MAC".into())
    })?;
    let src_ip = match &spec.src {
        Some(end) => resolve(&end.host, ctx)?,
        None => ctx.src_ip.ok_or_else(|| {
            SpecError::Unresolved("the port has no endpoint address: give the source".into())
        })?,
    };
    let dst_ip = resolve(&spec.dst.host, ctx)?;
    let dst_mac = match (spec.dst_mac, spec.proto) {
        (Some(mac), _) => mac,
        (None, Proto::Arp) => MacAddr::BROADCAST,
        (None, _) => next_hop_mac(dst_ip, ctx)?,
    };
    let eth = |ethertype| EthernetRepr {
        src_addr: EthernetAddress(src_mac.0),
        dst_addr: EthernetAddress(dst_mac.0),
        ethertype,
    };
    if spec.proto == Proto::Arp {
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress(src_mac.0),
            source_protocol_addr: src_ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: dst_ip,
        };
        let mut frame = vec![0u8; 14 + arp.buffer_len()];
        eth(EthernetProtocol::Arp).emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
        arp.emit(&mut ArpPacket::new_unchecked(&mut frame[14..]));
        return Ok(frame);
    }
    let ports = (
        spec.src.as_ref().and_then(|e| e.port).unwrap_or(49152),
        spec.dst.port.unwrap_or(0),
    );
    let payload = vec![
        0u8;
        spec.len
            .unwrap_or(if spec.proto == Proto::Icmp { 56 } else { 0 })
    ];
    let frame = ip_frame(spec, (src_ip, dst_ip), ports, &payload);
    let mut out = vec![0u8; 14 + frame.len()];
    eth(EthernetProtocol::Ipv4).emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
    out[14..].copy_from_slice(&frame);
    Ok(out)
}

/// The IPv4 datagram of an ICMP echo request, TCP segment or UDP datagram.
fn ip_frame(
    spec: &FrameSpec,
    (src, dst): (Ipv4Addr, Ipv4Addr),
    ports: (u16, u16),
    payload: &[u8],
) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    let (s, d) = (IpAddress::Ipv4(src), IpAddress::Ipv4(dst));
    let (proto, l4): (IpProtocol, Vec<u8>) = match spec.proto {
        Proto::Icmp => {
            let icmp = Icmpv4Repr::EchoRequest {
                ident: 0x5746,
                seq_no: 1,
                data: payload,
            };
            let mut b = vec![0u8; icmp.buffer_len()];
            icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut b[..]), &caps);
            (IpProtocol::Icmp, b)
        }
        Proto::Tcp => {
            let f = spec.flags;
            let control = match (f.syn, f.fin, f.rst, f.psh) {
                (true, ..) => TcpControl::Syn,
                (_, true, ..) => TcpControl::Fin,
                (_, _, true, _) => TcpControl::Rst,
                (_, _, _, true) => TcpControl::Psh,
                _ => TcpControl::None,
            };
            let tcp = TcpRepr {
                src_port: ports.0,
                dst_port: ports.1,
                control,
                seq_number: TcpSeqNumber(1000),
                ack_number: f.ack.then_some(TcpSeqNumber(1)),
                window_len: 64240,
                window_scale: None,
                max_seg_size: f.syn.then_some(1460),
                sack_permitted: false,
                sack_ranges: [None; 3],
                timestamp: None,
                payload,
            };
            let mut b = vec![0u8; tcp.buffer_len()];
            tcp.emit(&mut TcpPacket::new_unchecked(&mut b[..]), &s, &d, &caps);
            (IpProtocol::Tcp, b)
        }
        Proto::Udp | Proto::Arp => {
            let udp = UdpRepr {
                src_port: ports.0,
                dst_port: ports.1,
            };
            let mut b = vec![0u8; udp.header_len() + payload.len()];
            let mut packet = UdpPacket::new_unchecked(&mut b[..]);
            udp.emit(
                &mut packet,
                &s,
                &d,
                payload.len(),
                |p| p.copy_from_slice(payload),
                &caps,
            );
            (IpProtocol::Udp, b)
        }
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: proto,
        payload_len: l4.len(),
        hop_limit: 64,
    };
    let mut out = vec![0u8; ip.buffer_len() + l4.len()];
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]), &caps);
    out[ip.buffer_len()..].copy_from_slice(&l4);
    out
}

/// A frame given as hex digits (`--hex`); spaces, colons and a leading `0x` are allowed.
pub fn parse_hex(hex: &str) -> Result<Vec<u8>, SpecError> {
    let digits: String = hex
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(SpecError::Hex(format!(
            "{bad:?} is not a hex digit: write octets as 0-9 and a-f, like 02:42:0a:00:00:02"
        )));
    }
    if digits.len() % 2 == 1 {
        return Err(SpecError::Hex("an odd number of hex digits".into()));
    }
    if digits.len() < 28 {
        return Err(SpecError::Hex(
            "shorter than an Ethernet header (14 octets)".into(),
        ));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16)
                .map_err(|_| SpecError::Hex(format!("{:?} is not hex", &digits[i..i + 2])))
        })
        .collect()
}

#[cfg(test)]
mod tests;
