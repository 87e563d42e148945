//! Embedded DNS server of a network's gateway address.
//!
//! Containers use the gateway (e.g. 10.1.0.1) as their resolver. [`answer`] decides, per query
//! datagram, whether the switch answers from the network's [`Zone`] (endpoint names, aliases and
//! their reverse `in-addr.arpa` names), rejects it (FORMERR / NOTIMP), drops it, or hands it to
//! the runtime's `forward` (control/src/gateway/dns.rs), which relays it unchanged to the
//! host's upstream resolvers.
//!
//! Parsing: the 12-byte header and the question are read by hand (RFC 1035 §4.1.1, §4.1.2),
//! because simple-dns 0.13 refuses whole classes of well-formed queries (QTYPEs it does not model,
//! such as TLSA or SSHFP, classes other than IN/CS/CH/HS/NONE/ANY, a set Z bit) and writes
//! unassigned opcodes back as 6. Replies that carry records are written with simple-dns; replies
//! without records are a header plus the question echoed byte for byte.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use simple_dns::rdata::{RData, A, PTR};
use simple_dns::{Label, Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, QCLASS, QTYPE};

/// TTL of local answers (seconds), RFC 1035 §3.2.1 / §4.1.3.
const TTL: u32 = 600;
/// Fixed header length, RFC 1035 §4.1.1.
pub const HEADER_LEN: usize = 12;
/// Largest UDP reply without EDNS, RFC 1035 §2.3.4 / §4.2.1. Local replies never carry an OPT
/// record, so this is the limit even when the query advertised a larger EDNS buffer (RFC 6891 §7).
const MAX_UDP_REPLY: usize = 512;
/// Names are at most 255 octets on the wire, labels at most 63 (RFC 1035 §2.3.4, §3.1).
const MAX_NAME_WIRE: usize = 255;
const MAX_LABEL: usize = 63;

// Header flag bits of the second 16-bit word, RFC 1035 §4.1.1.
const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const OPCODE_SHIFT: u16 = 11;
const OPCODE_MASK: u16 = 0x7800;

// RCODEs, RFC 1035 §4.1.1.
const RCODE_NOERROR: u16 = 0;
const RCODE_FORMERR: u16 = 1;
const RCODE_SERVFAIL: u16 = 2;
const RCODE_NXDOMAIN: u16 = 3;
const RCODE_NOTIMP: u16 = 4;

// TYPE / QTYPE and CLASS / QCLASS values, RFC 1035 §3.2.2 - §3.2.5.
const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const QTYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const QCLASS_ANY: u16 = 255;

/// Names of one network: endpoint names and aliases -> addresses, for A and PTR answers.
///
/// Names are stored in lowercase without a trailing dot (DNS names compare case-insensitively,
/// RFC 1034 §3.1, RFC 4343).
#[derive(Debug, Clone, Default)]
pub struct Zone {
    /// Name -> addresses, in insertion order, without duplicates.
    names: BTreeMap<String, Vec<Ipv4Addr>>,
    /// Address -> its primary (first added) name.
    primary: BTreeMap<Ipv4Addr, String>,
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    /// Adds a name (endpoint name or alias) for `ip`. Case-insensitive; a trailing dot is ignored.
    /// Several endpoints may share an alias (all addresses are returned).
    ///
    /// Names that cannot be a DNS name (empty, an empty label, a label over 63 octets, over 253
    /// characters, or a backslash, which the presentation format reserves for escapes) are
    /// ignored with a warning.
    pub fn add(&mut self, name: &str, ip: Ipv4Addr) {
        let Some(key) = normalize(name) else {
            log::warn!("dns: ignoring invalid name {name:?} for {ip}");
            return;
        };
        let addrs = self.names.entry(key.clone()).or_default();
        if !addrs.contains(&ip) {
            addrs.push(ip);
        }
        self.primary.entry(ip).or_insert(key);
    }

    #[cfg(test)]
    /// Addresses of `name` (case-insensitive, trailing dot ignored), in insertion order.
    pub fn lookup(&self, name: &str) -> Vec<Ipv4Addr> {
        normalize(name)
            .and_then(|key| self.names.get(&key).cloned())
            .unwrap_or_default()
    }

    #[cfg(test)]
    /// The primary (first added) name of `ip`, lowercase.
    pub fn reverse(&self, ip: Ipv4Addr) -> Option<String> {
        self.primary.get(&ip).cloned()
    }
}

/// Lowercase, trailing dot removed, validated against RFC 1035 §2.3.4 / §3.1 length limits.
fn normalize(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_WIRE - 2
        && !name.contains('\\')
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= MAX_LABEL);
    ok.then(|| name.to_ascii_lowercase())
}

/// What to do with one query datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send this response (local answer, NXDOMAIN, NODATA, FORMERR, NOTIMP).
    Reply(Vec<u8>),
    /// Not ours: forward the query bytes unchanged to the upstream resolvers.
    Forward,
    /// Garbage we cannot even answer FORMERR to: drop and count.
    Drop(DropKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropKind {
    /// Shorter than a DNS header (RFC 1035 §4.1.1): there is no ID to answer to.
    Truncated,
    /// QR=1: a response. Answering responses invites reflection loops (RFC 1035 §4.1.1).
    NotAQuery,
}

/// The fixed header, RFC 1035 §4.1.1.
struct Header {
    id: u16,
    flags: u16,
    qdcount: u16,
}

impl Header {
    fn parse(msg: &[u8]) -> Option<Header> {
        let word = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
        (msg.len() >= HEADER_LEN).then(|| Header {
            id: word(0),
            flags: word(2),
            qdcount: word(4),
        })
    }

    fn opcode(&self) -> u16 {
        (self.flags & OPCODE_MASK) >> OPCODE_SHIFT
    }

    fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }

    /// The header of our response: same ID and OPCODE, QR=1, RD copied (RFC 1035 §4.1.1), RA=1
    /// because non-local names are resolved recursively via the upstreams. Z, AD and CD are 0.
    fn reply_flags(&self, rcode: u16, authoritative: bool) -> u16 {
        let mut flags = FLAG_QR | FLAG_RA | (self.flags & (OPCODE_MASK | FLAG_RD)) | rcode;
        if authoritative {
            flags |= FLAG_AA;
        }
        flags
    }
}

/// The single question of a query, RFC 1035 §4.1.2.
struct Query<'a> {
    /// QNAME labels, as sent (case preserved).
    labels: Vec<&'a [u8]>,
    qtype: u16,
    qclass: u16,
    /// The question section's bytes (QNAME..QCLASS). It sits at offset 12 in the query and in our
    /// reply, so compression pointers inside it stay valid when it is copied.
    raw: &'a [u8],
}

impl<'a> Query<'a> {
    /// Parses the question that starts right after the header. None on any format error.
    fn parse(msg: &'a [u8]) -> Option<Query<'a>> {
        let (labels, name_end) = parse_name(msg, HEADER_LEN)?;
        let fixed = msg.get(name_end..name_end + 4)?;
        Some(Query {
            labels,
            qtype: u16::from_be_bytes([fixed[0], fixed[1]]),
            qclass: u16::from_be_bytes([fixed[2], fixed[3]]),
            raw: &msg[HEADER_LEN..name_end + 4],
        })
    }

    /// The QNAME as a zone key (lowercase, dot-separated), if it can be one at all: a label that
    /// holds a '.' octet or non-UTF-8 bytes can never match a zone name.
    fn key(&self) -> Option<String> {
        let mut key = String::new();
        for (i, label) in self.labels.iter().enumerate() {
            if label.contains(&b'.') {
                return None;
            }
            if i > 0 {
                key.push('.');
            }
            key.push_str(std::str::from_utf8(label).ok()?);
        }
        Some(key.to_ascii_lowercase())
    }
}

/// Reads a domain name at `pos`: a sequence of length-prefixed labels ending with the root label
/// (RFC 1035 §3.1, §4.1.2), possibly ending in a compression pointer (RFC 1035 §4.1.4).
/// Returns the labels and the offset just past the name where it started.
///
/// Pointers must point strictly backwards (and past the header), so a chain of pointers ends,
/// and every label counts against the 255-octet limit, so a pointer back into the same name
/// ends too. The 0b01 / 0b10 label types are reserved (RFC 1035 §4.1.4, RFC 6891 §5).
fn parse_name(msg: &[u8], mut pos: usize) -> Option<(Vec<&[u8]>, usize)> {
    let mut labels = Vec::new();
    let mut end = None;
    let mut wire_len = 1; // the root label
    loop {
        let len = *msg.get(pos)?;
        match len & 0xC0 {
            0x00 if len == 0 => return Some((labels, end.unwrap_or(pos + 1))),
            0x00 => {
                let label = msg.get(pos + 1..pos + 1 + usize::from(len))?;
                wire_len += 1 + label.len();
                if wire_len > MAX_NAME_WIRE {
                    return None;
                }
                labels.push(label);
                pos += 1 + label.len();
            }
            0xC0 => {
                let target = usize::from(u16::from_be_bytes([len & 0x3F, *msg.get(pos + 1)?]));
                end.get_or_insert(pos + 2);
                if target < HEADER_LEN || target >= pos {
                    return None;
                }
                pos = target;
            }
            _ => return None,
        }
    }
}

/// A header-only reply (QDCOUNT=0), or, if `question` is given, a reply that echoes it.
fn reply_without_records(
    header: &Header,
    rcode: u16,
    aa: bool,
    question: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + question.map_or(0, <[u8]>::len));
    out.extend_from_slice(&header.id.to_be_bytes());
    out.extend_from_slice(&header.reply_flags(rcode, aa).to_be_bytes());
    out.extend_from_slice(&u16::from(question.is_some()).to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&[0; 6]); // ANCOUNT, NSCOUNT, ARCOUNT
    out.extend_from_slice(question.unwrap_or_default());
    out
}

/// One local answer record.
enum Record<'z> {
    A(Ipv4Addr),
    Ptr(&'z str),
}

/// What the zone says about a question.
enum Local<'z> {
    Records(Vec<Record<'z>>),
    /// The name exists but has no record of this type (RFC 2308 §2.2).
    NoData,
    /// The name does not exist (RFC 1035 §4.1.1 RCODE 3, RFC 2308 §2.1).
    NxDomain,
    NotOurs,
}

/// Answers a query from the zone. `rotation` is a counter the caller increments per query; when a
/// name has several addresses the answer order is rotated by it (round-robin).
pub fn answer(query: &[u8], zone: &Zone, local_subnet: (Ipv4Addr, u8), rotation: usize) -> Outcome {
    let Some(header) = Header::parse(query) else {
        return Outcome::Drop(DropKind::Truncated);
    };
    if header.is_response() {
        return Outcome::Drop(DropKind::NotAQuery);
    }
    // Only standard queries (OPCODE 0, RFC 1035 §4.1.1); NOTIMP echoes the question if there is
    // exactly one readable question, so that stub resolvers match the reply to their query.
    if header.opcode() != 0 {
        let q = (header.qdcount == 1).then(|| Query::parse(query)).flatten();
        let reply = reply_without_records(&header, RCODE_NOTIMP, false, q.map(|q| q.raw));
        return Outcome::Reply(reply);
    }
    // Exactly one question: RFC 1035 §4.1.2 allows more in theory, but no server answers that
    // (RFC 9619), so anything else is a format error.
    if header.qdcount != 1 {
        return Outcome::Reply(reply_without_records(&header, RCODE_FORMERR, false, None));
    }
    let Some(q) = Query::parse(query) else {
        return Outcome::Reply(reply_without_records(&header, RCODE_FORMERR, false, None));
    };

    match lookup_local(&q, zone, local_subnet, rotation) {
        Local::NotOurs => Outcome::Forward,
        // Negative answers carry no SOA, so they are not cached (RFC 2308 §5): the zone changes
        // whenever an endpoint comes or goes.
        Local::NoData => Outcome::Reply(reply_without_records(
            &header,
            RCODE_NOERROR,
            true,
            Some(q.raw),
        )),
        Local::NxDomain => Outcome::Reply(reply_without_records(
            &header,
            RCODE_NXDOMAIN,
            true,
            Some(q.raw),
        )),
        Local::Records(records) => Outcome::Reply(
            reply_with_records(&header, &q, &records).unwrap_or_else(|| {
                reply_without_records(&header, RCODE_SERVFAIL, false, Some(q.raw))
            }),
        ),
    }
}

fn lookup_local<'z>(
    q: &Query<'_>,
    zone: &'z Zone,
    local_subnet: (Ipv4Addr, u8),
    rotation: usize,
) -> Local<'z> {
    // The zone holds class IN data only (RFC 1035 §3.2.4); QCLASS * matches it (§3.2.5).
    if q.qclass != CLASS_IN && q.qclass != QCLASS_ANY {
        return Local::NotOurs;
    }
    let Some(key) = q.key() else {
        return Local::NotOurs;
    };
    // QTYPE * asks for all records of the name (RFC 1035 §3.2.3); we have one RRset per name, so
    // that is the whole answer (and a minimal one in the sense of RFC 8482).
    let wants = |ty: u16| q.qtype == ty || q.qtype == QTYPE_ANY;

    if let Some(addrs) = zone.names.get(&key) {
        if !wants(TYPE_A) {
            return Local::NoData;
        }
        let mut addrs = addrs.clone();
        let len = addrs.len();
        addrs.rotate_left(rotation % len.max(1));
        return Local::Records(addrs.into_iter().map(Record::A).collect());
    }

    if let Some(ip) = parse_reverse(&key) {
        // IN-ADDR.ARPA, RFC 1035 §3.5.
        if let Some(name) = zone.primary.get(&ip) {
            return if wants(TYPE_PTR) {
                Local::Records(vec![Record::Ptr(name)])
            } else {
                Local::NoData
            };
        }
        if in_subnet(ip, local_subnet) {
            // Private reverse lookups for our own subnet stay here.
            return Local::NxDomain;
        }
    }
    Local::NotOurs
}

/// `d.c.b.a.in-addr.arpa` -> a.b.c.d (RFC 1035 §3.5). Octets must be canonical decimal.
fn parse_reverse(key: &str) -> Option<Ipv4Addr> {
    let octets = key.strip_suffix(".in-addr.arpa")?;
    let mut parts = [0u8; 4];
    let mut n = 0;
    for part in octets.split('.') {
        let canonical = !part.is_empty()
            && part.len() <= 3
            && part.bytes().all(|b| b.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'));
        if !canonical || n == 4 {
            return None;
        }
        parts[n] = part.parse().ok()?;
        n += 1;
    }
    (n == 4).then(|| Ipv4Addr::new(parts[3], parts[2], parts[1], parts[0]))
}

fn in_subnet(ip: Ipv4Addr, (net, prefix): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

/// Builds a NOERROR, AA=1 reply with answer records via simple-dns, compressing names
/// (RFC 1035 §4.1.4). If it would exceed 512 octets, trailing answers are left out and TC is set
/// (RFC 1035 §4.1.1, RFC 2181 §9). None only if simple-dns cannot represent the question.
fn reply_with_records(header: &Header, q: &Query<'_>, records: &[Record<'_>]) -> Option<Vec<u8>> {
    // Owner names are the QNAME exactly as asked, so they compress to a pointer to the question.
    let labels: Vec<Label<'_>> = q.labels.iter().map(|l| Label::new_unchecked(*l)).collect();
    let qname = Name::new_with_labels(&labels);
    let question = Question::new(
        qname.clone(),
        QTYPE::try_from(q.qtype).ok()?,
        QCLASS::try_from(q.qclass).ok()?,
        false,
    );
    let rrs: Vec<ResourceRecord<'_>> = records
        .iter()
        .filter_map(|r| {
            let rdata = match r {
                Record::A(ip) => RData::A(A::from(*ip)),
                Record::Ptr(name) => RData::PTR(PTR(Name::new(name).ok()?)),
            };
            Some(ResourceRecord::new(qname.clone(), CLASS::IN, TTL, rdata))
        })
        .collect();

    let mut count = rrs.len();
    loop {
        let mut packet = Packet::new_reply(header.id);
        let mut flags = PacketFlag::AUTHORITATIVE_ANSWER | PacketFlag::RECURSION_AVAILABLE;
        if header.flags & FLAG_RD != 0 {
            flags |= PacketFlag::RECURSION_DESIRED;
        }
        if count < rrs.len() {
            flags |= PacketFlag::TRUNCATION;
        }
        packet.set_flags(flags);
        packet.questions.push(question.clone());
        packet.answers.extend_from_slice(&rrs[..count]);
        let bytes = packet.build_bytes_vec_compressed().ok()?;
        if bytes.len() <= MAX_UDP_REPLY || count == 0 {
            return Some(bytes);
        }
        count -= 1;
    }
}

/// The SERVFAIL response to a query (id and question copied; RFC 1035 §4.1.1 RCODE 2), for
/// forwarding failures. None if the query cannot be parsed (shorter than a header, a response,
/// or without exactly one readable question).
pub fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let header = Header::parse(query)?;
    if header.is_response() || header.qdcount != 1 {
        return None;
    }
    let q = Query::parse(query)?;
    Some(reply_without_records(
        &header,
        RCODE_SERVFAIL,
        false,
        Some(q.raw),
    ))
}

/// A reply to `query` that says "truncated, ask again over TCP" (RFC 1035 §4.1.1 TC bit,
/// RFC 7766): the question and the upstream answer's RCODE, no records. For answers too large
/// for the client's link. None if the query cannot be parsed.
pub fn truncated(query: &[u8], answer: &[u8]) -> Option<Vec<u8>> {
    let header = Header::parse(query)?;
    if header.is_response() || header.qdcount != 1 {
        return None;
    }
    let q = Query::parse(query)?;
    let rcode = answer
        .get(3)
        .map_or(RCODE_SERVFAIL, |b| u16::from(b & 0x0f));
    let mut out = reply_without_records(&header, rcode, false, Some(q.raw));
    out[2] |= 0x02; // TC
    Some(out)
}

/// Upstream resolvers from resolv.conf text ("nameserver ADDR" lines, IPv4 and IPv6, port 53).
/// Loopback stub resolvers (127.0.0.53 systemd-resolved) are kept: the daemon runs in the host
/// namespace. Comment lines ('#' or ';'), other keywords and unparsable addresses are skipped;
/// duplicates are kept once. An IPv6 zone index must be numeric ("fe80::1%2").
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(word) = words.next() else { continue };
        match parse_nameserver(word) {
            Some(addr) if !out.contains(&addr) => out.push(addr),
            Some(_) => {}
            None => log::warn!("dns: resolv.conf: ignoring nameserver {word:?}"),
        }
    }
    out
}

fn parse_nameserver(word: &str) -> Option<SocketAddr> {
    if let Ok(v4) = word.parse::<Ipv4Addr>() {
        return Some(SocketAddr::new(IpAddr::V4(v4), 53));
    }
    let (addr, scope) = match word.split_once('%') {
        Some((addr, zone)) => (addr, zone.parse::<u32>().ok()?),
        None => (word, 0),
    };
    let v6 = addr.parse::<Ipv6Addr>().ok()?;
    Some(SocketAddr::V6(SocketAddrV6::new(v6, 53, 0, scope)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::{OPCODE, RCODE, TYPE};

    const SUBNET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 1, 0, 0), 24);

    fn zone() -> Zone {
        let mut z = Zone::new();
        z.add("web", Ipv4Addr::new(10, 1, 0, 2));
        z.add("db", Ipv4Addr::new(10, 1, 0, 3));
        z.add("Cache.", Ipv4Addr::new(10, 1, 0, 4));
        for (i, name) in ["api-1", "api-2", "api-3"].iter().enumerate() {
            let ip = Ipv4Addr::new(10, 1, 0, 10 + i as u8);
            z.add(name, ip);
            z.add("api", ip);
        }
        z
    }

    fn query_bytes(id: u16, name: &str, qtype: TYPE) -> Vec<u8> {
        let mut p = Packet::new_query(id);
        p.set_flags(PacketFlag::RECURSION_DESIRED);
        p.questions.push(Question::new(
            Name::new_unchecked(name),
            qtype.into(),
            CLASS::IN.into(),
            false,
        ));
        p.build_bytes_vec().unwrap()
    }

    fn ask(name: &str, qtype: TYPE, rotation: usize) -> Outcome {
        answer(&query_bytes(0x1234, name, qtype), &zone(), SUBNET, rotation)
    }

    fn reply(outcome: Outcome) -> Vec<u8> {
        match outcome {
            Outcome::Reply(bytes) => bytes,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn addrs(p: &Packet<'_>) -> Vec<Ipv4Addr> {
        p.answers
            .iter()
            .map(|rr| match &rr.rdata {
                RData::A(a) => Ipv4Addr::from(a.address),
                other => panic!("not an A record: {other:?}"),
            })
            .collect()
    }

    /// Common checks of a local reply; returns it parsed.
    fn check_local<'a>(bytes: &'a [u8], query: &[u8], rcode: RCODE) -> Packet<'a> {
        let p = Packet::parse(bytes).unwrap();
        assert_eq!(p.id(), u16::from_be_bytes([query[0], query[1]]));
        assert!(p.has_flags(PacketFlag::RESPONSE | PacketFlag::AUTHORITATIVE_ANSWER));
        assert!(p.has_flags(PacketFlag::RECURSION_AVAILABLE | PacketFlag::RECURSION_DESIRED));
        assert!(!p.has_flags(PacketFlag::TRUNCATION));
        assert_eq!(p.rcode(), rcode);
        assert_eq!(p.opcode(), OPCODE::StandardQuery);
        // The question is echoed byte for byte.
        let qlen = query.len() - HEADER_LEN;
        assert_eq!(&bytes[4..6], &[0, 1]);
        assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + qlen], &query[HEADER_LEN..]);
        p
    }

    #[test]
    fn a_single_address() {
        let q = query_bytes(7, "web", TYPE::A);
        let r = reply(answer(&q, &zone(), SUBNET, 0));
        let p = check_local(&r, &q, RCODE::NoError);
        assert_eq!(addrs(&p), [Ipv4Addr::new(10, 1, 0, 2)]);
        assert_eq!(p.answers[0].ttl, 600);
        assert_eq!(p.answers[0].class, CLASS::IN);
        assert_eq!(p.answers[0].name.to_string(), "web");
        assert!(r.len() <= MAX_UDP_REPLY);
    }

    #[test]
    fn a_several_addresses_rotate() {
        let ips: Vec<Ipv4Addr> = (10..13).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect();
        let orders: Vec<Vec<Ipv4Addr>> = (0..4)
            .map(|rot| {
                let q = query_bytes(9, "api", TYPE::A);
                addrs(&check_local(
                    &reply(answer(&q, &zone(), SUBNET, rot)),
                    &q,
                    RCODE::NoError,
                ))
            })
            .collect();
        assert_eq!(orders[0], ips);
        assert_eq!(orders[1], [ips[1], ips[2], ips[0]]);
        assert_eq!(orders[2], [ips[2], ips[0], ips[1]]);
        assert_eq!(orders[3], ips);
        assert_eq!(zone().lookup("API."), ips);
    }

    #[test]
    fn case_insensitive_and_trailing_dot() {
        for name in ["WEB", "Web.", "web."] {
            let q = query_bytes(1, name, TYPE::A);
            let r = reply(answer(&q, &zone(), SUBNET, 0));
            let p = check_local(&r, &q, RCODE::NoError);
            assert_eq!(addrs(&p), [Ipv4Addr::new(10, 1, 0, 2)]);
            // Owner name keeps the case of the question.
            assert_eq!(p.answers[0].name.to_string(), name.trim_end_matches('.'));
        }
        // Added as "Cache." -> stored as "cache".
        assert_eq!(zone().lookup("CACHE"), [Ipv4Addr::new(10, 1, 0, 4)]);
        assert_eq!(
            zone().reverse(Ipv4Addr::new(10, 1, 0, 4)).as_deref(),
            Some("cache")
        );
        let q = query_bytes(1, "cache", TYPE::A);
        assert_eq!(
            addrs(&check_local(
                &reply(answer(&q, &zone(), SUBNET, 0)),
                &q,
                RCODE::NoError
            ))
            .len(),
            1
        );
    }

    #[test]
    fn nodata_for_other_types_of_known_name() {
        for ty in [TYPE::AAAA, TYPE::MX, TYPE::TXT, TYPE::PTR] {
            let q = query_bytes(3, "web", ty);
            let r = reply(answer(&q, &zone(), SUBNET, 0));
            let p = check_local(&r, &q, RCODE::NoError);
            assert!(p.answers.is_empty(), "{ty:?}");
        }
        // A QTYPE simple-dns does not model (TLSA = 52) is still understood (simple-dns cannot
        // parse this reply either, so check the bytes).
        let mut q = query_bytes(3, "web", TYPE::A);
        let n = q.len();
        q[n - 3] = 52;
        let r = reply(answer(&q, &zone(), SUBNET, 0));
        assert_eq!(&r[..2], &[0, 3]);
        assert_eq!(&r[2..4], &[0x85, 0x80]); // QR AA RD, RA NOERROR
        assert_eq!(&r[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&r[HEADER_LEN..], &q[HEADER_LEN..]);
        // ... and forwarded for a name that is not ours.
        let mut q = query_bytes(3, "example.com", TYPE::A);
        let n = q.len();
        q[n - 3] = 52;
        assert_eq!(answer(&q, &zone(), SUBNET, 0), Outcome::Forward);
    }

    #[test]
    fn qtype_any_returns_addresses() {
        let mut q = query_bytes(4, "web", TYPE::A);
        let n = q.len();
        q[n - 3] = 255;
        let r = reply(answer(&q, &zone(), SUBNET, 0));
        let p = check_local(&r, &q, RCODE::NoError);
        assert_eq!(addrs(&p), [Ipv4Addr::new(10, 1, 0, 2)]);
    }

    #[test]
    fn ptr_known() {
        let q = query_bytes(5, "2.0.1.10.in-addr.arpa", TYPE::PTR);
        let r = reply(answer(&q, &zone(), SUBNET, 0));
        let p = check_local(&r, &q, RCODE::NoError);
        assert_eq!(p.answers.len(), 1);
        assert_eq!(p.answers[0].ttl, 600);
        match &p.answers[0].rdata {
            RData::PTR(ptr) => assert_eq!(ptr.0.to_string(), "web"),
            other => panic!("{other:?}"),
        }
        // Primary name, not the shared alias.
        let q = query_bytes(5, "11.0.1.10.IN-ADDR.ARPA.", TYPE::PTR);
        let r = reply(answer(&q, &zone(), SUBNET, 0));
        let p = check_local(&r, &q, RCODE::NoError);
        match &p.answers[0].rdata {
            RData::PTR(ptr) => assert_eq!(ptr.0.to_string(), "api-2"),
            other => panic!("{other:?}"),
        }
        // Other types for an existing reverse name: NODATA.
        let q = query_bytes(5, "2.0.1.10.in-addr.arpa", TYPE::A);
        assert!(
            check_local(&reply(answer(&q, &zone(), SUBNET, 0)), &q, RCODE::NoError)
                .answers
                .is_empty()
        );
    }

    #[test]
    fn ptr_unknown_in_subnet_is_nxdomain() {
        let q = query_bytes(6, "99.0.1.10.in-addr.arpa", TYPE::PTR);
        let r = reply(answer(&q, &zone(), SUBNET, 0));
        let p = check_local(&r, &q, RCODE::NameError);
        assert!(p.answers.is_empty());
        let r = reply(answer(&q, &zone(), SUBNET, 0));
        assert_eq!(&r[6..12], &[0; 6]); // no answer, authority or additional records
    }

    #[test]
    fn ptr_outside_subnet_forwards() {
        for name in [
            "8.8.8.8.in-addr.arpa",
            "1.1.1.10.in-addr.arpa",
            "1.10.in-addr.arpa",
            "01.0.1.10.in-addr.arpa",
        ] {
            assert_eq!(ask(name, TYPE::PTR, 0), Outcome::Forward, "{name}");
        }
    }

    #[test]
    fn unknown_name_forwards() {
        assert_eq!(ask("example.com", TYPE::A, 0), Outcome::Forward);
        assert_eq!(ask("web.example.com", TYPE::A, 0), Outcome::Forward);
        assert_eq!(ask("webx", TYPE::A, 0), Outcome::Forward);
        assert_eq!(ask(".", TYPE::NS, 0), Outcome::Forward);
        // Non-IN class: not ours.
        let mut q = query_bytes(1, "web", TYPE::A);
        let n = q.len();
        q[n - 1] = 3; // CH
        assert_eq!(answer(&q, &zone(), SUBNET, 0), Outcome::Forward);
    }

    #[test]
    fn garbage_and_responses_are_dropped() {
        assert_eq!(
            answer(&[1, 2, 3, 4, 5], &zone(), SUBNET, 0),
            Outcome::Drop(DropKind::Truncated)
        );
        assert_eq!(
            answer(&[], &zone(), SUBNET, 0),
            Outcome::Drop(DropKind::Truncated)
        );
        let q = query_bytes(1, "web", TYPE::A);
        let r = reply(answer(&q, &zone(), SUBNET, 0));
        assert_eq!(
            answer(&r, &zone(), SUBNET, 0),
            Outcome::Drop(DropKind::NotAQuery)
        );
        assert_eq!(servfail(&r), None);
        assert_eq!(servfail(&[0; 5]), None);
    }

    fn header_only(bytes: &[u8], id: u16, rcode: u8, opcode: u8) {
        assert_eq!(bytes.len(), HEADER_LEN, "{bytes:?}");
        assert_eq!(&bytes[..2], &id.to_be_bytes());
        assert_eq!(bytes[2], 0x80 | (opcode << 3) | 0x01); // QR, OPCODE, RD
        assert_eq!(bytes[3], 0x80 | rcode); // RA, RCODE
        assert_eq!(&bytes[4..], &[0; 8]);
    }

    #[test]
    fn formerr_for_garbage_question() {
        // id 0xBEEF, RD, QDCOUNT 1, then a label that runs past the end.
        let mut q = vec![0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        header_only(&reply(answer(&q, &zone(), SUBNET, 0)), 0xBEEF, 1, 0);
        q.extend_from_slice(&[0x3F, b'a', b'b']);
        header_only(&reply(answer(&q, &zone(), SUBNET, 0)), 0xBEEF, 1, 0);
        // Reserved label type 0b10.
        let mut bad = q[..HEADER_LEN].to_vec();
        bad.extend_from_slice(&[0x80, 0, 0, 1, 0, 1]);
        header_only(&reply(answer(&bad, &zone(), SUBNET, 0)), 0xBEEF, 1, 0);
        // Compression pointer to itself (a loop) and into the header.
        for target in [12u8, 2] {
            let mut bad = q[..HEADER_LEN].to_vec();
            bad.extend_from_slice(&[0xC0, target, 0, 1, 0, 1]);
            header_only(&reply(answer(&bad, &zone(), SUBNET, 0)), 0xBEEF, 1, 0);
        }
        // Name without QTYPE/QCLASS.
        let mut bad = q[..HEADER_LEN].to_vec();
        bad.extend_from_slice(&[3, b'w', b'e', b'b', 0, 0, 1]);
        header_only(&reply(answer(&bad, &zone(), SUBNET, 0)), 0xBEEF, 1, 0);
        assert_eq!(servfail(&bad), None);
        // Name longer than 255 octets.
        let mut bad = q[..HEADER_LEN].to_vec();
        for _ in 0..5 {
            bad.push(63);
            bad.extend_from_slice(&[b'a'; 63]);
        }
        bad.extend_from_slice(&[0, 0, 1, 0, 1]);
        header_only(&reply(answer(&bad, &zone(), SUBNET, 0)), 0xBEEF, 1, 0);
    }

    #[test]
    fn formerr_for_two_questions() {
        let mut p = Packet::new_query(0x4242);
        p.set_flags(PacketFlag::RECURSION_DESIRED);
        for name in ["web", "db"] {
            p.questions.push(Question::new(
                Name::new_unchecked(name),
                TYPE::A.into(),
                CLASS::IN.into(),
                false,
            ));
        }
        let q = p.build_bytes_vec().unwrap();
        header_only(&reply(answer(&q, &zone(), SUBNET, 0)), 0x4242, 1, 0);
        // QDCOUNT 0 as well.
        let q = [0x42, 0x42, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
        header_only(&reply(answer(&q, &zone(), SUBNET, 0)), 0x4242, 1, 0);
    }

    #[test]
    fn notimp_for_other_opcodes() {
        let mut q = query_bytes(0x0102, "web", TYPE::A);
        q[2] |= 2 << 3; // OPCODE 2 (STATUS)
        let r = reply(answer(&q, &zone(), SUBNET, 0));
        assert_eq!(&r[..2], &[0x01, 0x02]);
        assert_eq!(r[2], 0x80 | (2 << 3) | 0x01);
        assert_eq!(r[3], 0x80 | 4);
        assert_eq!(&r[4..6], &[0, 1]);
        assert_eq!(&r[HEADER_LEN..], &q[HEADER_LEN..]);
        // Unassigned opcode 3, no question: header only, opcode echoed as is.
        let q = [0x01, 0x02, 0x19, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
        header_only(&reply(answer(&q, &zone(), SUBNET, 0)), 0x0102, 4, 3);
    }

    #[test]
    fn z_bit_and_extra_sections_are_tolerated() {
        let mut q = query_bytes(11, "web", TYPE::A);
        q[3] |= 0x40; // Z
        let r = reply(answer(&q, &zone(), SUBNET, 0));
        assert_eq!(r[3] & 0x70, 0);
        assert_eq!(
            addrs(&Packet::parse(&r).unwrap()),
            [Ipv4Addr::new(10, 1, 0, 2)]
        );
        // EDNS OPT record in the additional section (RFC 6891): ignored, no OPT in the reply.
        let mut p = Packet::new_query(12);
        p.questions.push(Question::new(
            Name::new_unchecked("web"),
            TYPE::A.into(),
            CLASS::IN.into(),
            false,
        ));
        *p.opt_mut() = Some(simple_dns::rdata::OPT {
            opt_codes: vec![],
            udp_packet_size: 1232,
            version: 0,
        });
        let q = p.build_bytes_vec().unwrap();
        let r = reply(answer(&q, &zone(), SUBNET, 0));
        assert_eq!(&r[10..12], &[0, 0]);
        assert_eq!(addrs(&Packet::parse(&r).unwrap()).len(), 1);
    }

    #[test]
    fn raw_question_and_compression_pointers() {
        // A hand-written query for "web" (RD set) is answered.
        let q = [
            0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e', b'b', 0, 0, 1, 0, 1,
        ];
        let r = reply(answer(&q, &zone(), SUBNET, 0));
        assert_eq!(addrs(&check_local(&r, &q, RCODE::NoError)).len(), 1);
        // The answer's owner name is compressed to a pointer to the question (RFC 1035 §4.1.4).
        assert_eq!(&r[q.len()..q.len() + 2], &[0xC0, 12]);
        // The only question has no earlier name to point to: "web" + pointer back to itself
        // would be an endless name, stopped by the 255-octet limit -> FORMERR.
        let q = [
            0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e', b'b', 0xC0, 12, 0, 1, 0, 1,
        ];
        header_only(&reply(answer(&q, &zone(), SUBNET, 0)), 9, 1, 0);
    }

    #[test]
    fn too_many_addresses_truncate() {
        let mut z = Zone::new();
        for i in 0..100u8 {
            z.add("big", Ipv4Addr::new(10, 1, 1, i));
        }
        let q = query_bytes(13, "big", TYPE::A);
        let r = reply(answer(&q, &z, (Ipv4Addr::new(10, 1, 0, 0), 16), 5));
        assert!(r.len() <= MAX_UDP_REPLY);
        let p = Packet::parse(&r).unwrap();
        assert!(p.has_flags(PacketFlag::TRUNCATION));
        let got = addrs(&p);
        assert!(got.len() > 20);
        assert_eq!(got[0], Ipv4Addr::new(10, 1, 1, 5));
    }

    #[test]
    fn zone_basics() {
        let mut z = Zone::new();
        z.add("a", Ipv4Addr::new(10, 0, 0, 1));
        z.add("A.", Ipv4Addr::new(10, 0, 0, 1)); // duplicate
        z.add("alias", Ipv4Addr::new(10, 0, 0, 1));
        z.add("", Ipv4Addr::new(10, 0, 0, 9));
        z.add(".", Ipv4Addr::new(10, 0, 0, 9));
        z.add("a..b", Ipv4Addr::new(10, 0, 0, 9));
        z.add(&"x".repeat(64), Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(z.lookup("a"), [Ipv4Addr::new(10, 0, 0, 1)]);
        assert_eq!(z.reverse(Ipv4Addr::new(10, 0, 0, 1)).as_deref(), Some("a"));
        assert_eq!(z.reverse(Ipv4Addr::new(10, 0, 0, 9)), None);
        assert!(z.lookup("nope").is_empty());
        assert!(z.lookup("").is_empty());
    }

    #[test]
    fn servfail_keeps_id_and_question() {
        let q = query_bytes(0xABCD, "example.com", TYPE::AAAA);
        let r = servfail(&q).unwrap();
        assert_eq!(&r[..2], &[0xAB, 0xCD]);
        assert_eq!(&r[HEADER_LEN..], &q[HEADER_LEN..]);
        let p = Packet::parse(&r).unwrap();
        assert_eq!(p.rcode(), RCODE::ServerFailure);
        assert!(p.has_flags(PacketFlag::RESPONSE | PacketFlag::RECURSION_DESIRED));
        assert!(!p.has_flags(PacketFlag::AUTHORITATIVE_ANSWER));
        assert_eq!(p.questions.len(), 1);
        assert_eq!(p.questions[0].qname.to_string(), "example.com");
        assert_eq!(p.questions[0].qtype, TYPE::AAAA.into());
        assert!(p.answers.is_empty());
    }

    #[test]
    fn truncated_keeps_question_and_rcode_and_sets_tc() {
        let q = query_bytes(0x1234, "big.example", TYPE::TXT);
        let mut upstream = vec![0x12, 0x34, 0x81, 0x83];
        upstream.extend_from_slice(&[0; 2000]);
        let r = truncated(&q, &upstream).unwrap();
        let p = Packet::parse(&r).unwrap();
        assert!(p.has_flags(PacketFlag::TRUNCATION | PacketFlag::RESPONSE));
        assert_eq!(p.rcode(), RCODE::NameError);
        assert_eq!(p.questions.len(), 1);
        assert!(p.answers.is_empty());
        assert!(truncated(&[1, 2, 3], &upstream).is_none());
    }

    #[test]
    fn resolv_conf() {
        let text = "\
# generated by NetworkManager
; another comment
search example.com lan
options edns0 trust-ad ndots:2
nameserver 127.0.0.53
nameserver   1.1.1.1   # trailing words are ignored
nameserver 2606:4700:4700::1111
nameserver fe80::1%2
nameserver fe80::1%eth0
nameserver not-an-address
nameserver 1.2.3.4:53
nameserver
nameservers 9.9.9.9
#nameserver 8.8.8.8
nameserver 1.1.1.1
  nameserver 8.8.4.4
";
        let got = upstreams_from_resolv_conf(text);
        let want: Vec<SocketAddr> = vec![
            "127.0.0.53:53".parse().unwrap(),
            "1.1.1.1:53".parse().unwrap(),
            "[2606:4700:4700::1111]:53".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, 2)),
            "8.8.4.4:53".parse().unwrap(),
        ];
        assert_eq!(got, want);
        assert!(upstreams_from_resolv_conf("").is_empty());
    }

    proptest::proptest! {
        /// A query of arbitrary bytes (or a real one with bytes overwritten) gets an answer,
        /// a forward or a drop, never a panic; every answer is a response to that query's ID,
        /// and so are the SERVFAIL and truncation builders' (RFC 1035 §4.1.1).
        #[test]
        fn hostile_queries_get_answers_that_match_them(
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
            pokes in proptest::collection::vec((0usize..40, proptest::prelude::any::<u8>()), 0..6),
            rotation in proptest::prelude::any::<usize>(),
        ) {
            let zone = zone();
            let subnet = (Ipv4Addr::new(10, 1, 0, 0), 24);
            let mut q = query_bytes(0x1234, "api", TYPE::A);
            for (at, byte) in pokes {
                if at < q.len() {
                    q[at] = byte;
                }
            }
            for query in [&garbage, &q] {
                match answer(query, &zone, subnet, rotation) {
                    Outcome::Reply(r) => {
                        proptest::prop_assert!(r.len() >= HEADER_LEN);
                        proptest::prop_assert_eq!(&r[..2], &query[..2], "the query's ID");
                        proptest::prop_assert!(r[2] & 0x80 != 0, "QR set: a response");
                    }
                    Outcome::Forward => {
                        // Only a query with exactly one question is forwarded.
                        proptest::prop_assert!(query.len() >= HEADER_LEN && query[2] & 0x80 == 0);
                        proptest::prop_assert_eq!(&query[4..6], &[0u8, 1][..]);
                    }
                    Outcome::Drop(DropKind::Truncated) => {
                        proptest::prop_assert!(query.len() < HEADER_LEN)
                    }
                    Outcome::Drop(DropKind::NotAQuery) => {
                        proptest::prop_assert!(query[2] & 0x80 != 0)
                    }
                }
            }
            for query in [&garbage, &q] {
                if let Some(r) = servfail(query) {
                    proptest::prop_assert_eq!(&r[..2], &query[..2]);
                    proptest::prop_assert_eq!(r[3] & 0x0f, 2, "RCODE SERVFAIL");
                }
                if let Some(r) = truncated(query, &garbage) {
                    proptest::prop_assert_eq!(&r[..2], &query[..2]);
                    proptest::prop_assert!(r[2] & 0x02 != 0, "TC set");
                }
            }
        }
    }
}
