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
mod tests;
