//! weft's VXLAN header codec (RFC 7348).
//!
//! This crate is the wire format of the 8-byte VXLAN header (RFC 7348 §5),
//! and the recommended outer UDP source-port hash (segmenting what enters a
//! tunnel is `weft_wire::gso`). It does no
//! I/O, keeps no state, contains no `unsafe`, and decoding never allocates:
//! the inner Ethernet frame is returned as a borrowed sub-slice of the input.
//!
//! Not covered (on purpose, for now): the outer Ethernet/IP/UDP headers, VTEP
//! learning or flooding (RFC 7348 §4), and the extensions that reuse the
//! reserved bits (VXLAN-GPE, Group Based Policy). Those bits are ignored by
//! [`VxlanHeader::decode`] as §5 requires and rejected by
//! [`VxlanHeader::decode_strict`].
//!
//! ```
//! use weft_vtep::{Vni, VxlanHeader, VXLAN_HEADER_LEN};
//!
//! let hdr = VxlanHeader::new(Vni::new(42).unwrap());
//! let mut packet = [0u8; VXLAN_HEADER_LEN + 14];
//! hdr.encode(&mut packet).unwrap();
//! let (decoded, inner) = VxlanHeader::decode(&packet).unwrap();
//! assert_eq!(decoded, hdr);
//! assert_eq!(inner.len(), 14);
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use smoltcp::wire::Ipv4Packet;

/// Length of the VXLAN header in bytes (RFC 7348 §5, "VXLAN Header").
pub const VXLAN_HEADER_LEN: usize = 8;

/// IANA-assigned UDP destination port for VXLAN (RFC 7348 §5, "Destination
/// Port").
pub const VXLAN_DEFAULT_PORT: u16 = 4789;

/// The I flag: "MUST be set to 1 for a valid VXLAN Network ID (VNI)"
/// (RFC 7348 §5, "Flags").
pub const VXLAN_FLAG_VNI_VALID: u8 = 0x08;

/// Minimum length of the encapsulated frame: an Ethernet header without
/// FCS (RFC 7348 §5, "Inner Ethernet Header").
pub const INNER_ETHERNET_MIN_LEN: usize = 14;

/// The dynamic/private port range RFC 7348 §5 recommends for the outer UDP
/// source port ("Source Port": "the dynamic/private port range 49152-65535").
pub const SOURCE_PORT_RANGE: RangeInclusive<u16> = RangeInclusive::new(49152, 65535);

/// A 24-bit VXLAN Network Identifier (RFC 7348 §5, "VXLAN Network
/// Identifier").
///
/// Every value in `0..=Vni::MAX` is representable. RFC 7348 reserves no VNI,
/// so VNI 0 is accepted both by [`Vni::new`] and on decode; callers that want
/// to keep 0 out of user configuration must check for it themselves.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Vni(u32);

impl Vni {
    /// Largest VNI that fits the 24-bit field (16 777 215).
    pub const MAX: u32 = 0xFF_FFFF;

    /// Checks that `v` fits in 24 bits.
    ///
    /// # Errors
    ///
    /// [`VniError::OutOfRange`] if `v > Vni::MAX`.
    pub fn new(v: u32) -> Result<Vni, VniError> {
        if v > Self::MAX {
            Err(VniError::OutOfRange(u64::from(v)))
        } else {
            Ok(Vni(v))
        }
    }

    /// The VNI as an integer, always `<= Vni::MAX`.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Vni {
    type Err = VniError;

    /// Parses a decimal VNI, e.g. `"4096"`.
    fn from_str(s: &str) -> Result<Vni, VniError> {
        let v: u64 = s.parse().map_err(|source| VniError::Parse {
            input: s.to_owned(),
            source,
        })?;
        match u32::try_from(v) {
            Ok(v) => Vni::new(v),
            Err(_) => Err(VniError::OutOfRange(v)),
        }
    }
}

impl From<Vni> for u32 {
    fn from(v: Vni) -> u32 {
        v.0
    }
}

impl TryFrom<u32> for Vni {
    type Error = VniError;

    fn try_from(v: u32) -> Result<Vni, VniError> {
        Vni::new(v)
    }
}

/// Why a value is not a valid [`Vni`].
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum VniError {
    /// The value does not fit the 24-bit VNI field.
    #[error("VNI {0} out of range: must be 0..=16777215")]
    OutOfRange(u64),
    /// The text is not a decimal unsigned integer.
    #[error("invalid VNI {input:?}: {source}")]
    Parse {
        /// The rejected text.
        input: String,
        /// Why it did not parse.
        source: std::num::ParseIntError,
    },
}

/// Why a VXLAN header could not be encoded or decoded.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum VxlanError {
    /// The output buffer cannot hold the 8-byte header.
    #[error("buffer of {len} bytes too small for the 8-byte VXLAN header")]
    BufferTooSmall {
        /// Length of the buffer given.
        len: usize,
    },
    /// The packet is shorter than the 8-byte header.
    #[error("VXLAN packet truncated: {len} bytes, header needs 8")]
    Truncated {
        /// Length of the packet given.
        len: usize,
    },
    /// The I flag is clear, so the VNI is not valid (RFC 7348 §5, "Flags").
    #[error("VXLAN I flag (0x08) not set in flags {flags:#04x}")]
    MissingVniFlag {
        /// The flags byte received.
        flags: u8,
    },
    /// Strict decoding only: a reserved flag bit or reserved field is
    /// nonzero. RFC 7348 §5 says these "MUST be ignored on receipt"; this
    /// error exists to count hostile or non-conforming senders.
    #[error(
        "VXLAN reserved bits set: flags {flags:#04x}, reserved {reserved1:#08x}/{reserved2:#04x}"
    )]
    ReservedBitsSet {
        /// The flags byte received.
        flags: u8,
        /// The 24-bit reserved field after the flags (bytes 1..4).
        reserved1: u32,
        /// The 8-bit reserved field after the VNI (byte 7).
        reserved2: u8,
    },
    /// The encapsulated frame is shorter than an Ethernet header.
    #[error("VXLAN inner frame truncated: {len} bytes, Ethernet header needs 14")]
    InnerFrameTruncated {
        /// Length of the inner frame found after the VXLAN header.
        len: usize,
    },
}

/// The VXLAN header (RFC 7348 §5):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |R|R|R|R|I|R|R|R|            Reserved                           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                VXLAN Network Identifier (VNI) |   Reserved    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// The only information it carries is the VNI; the flags and reserved
/// fields are fixed on send and not represented.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VxlanHeader {
    /// The 24-bit segment identifier.
    pub vni: Vni,
}

impl VxlanHeader {
    /// A header for `vni`.
    pub fn new(vni: Vni) -> VxlanHeader {
        VxlanHeader { vni }
    }

    /// The 8 header bytes: flags `0x08` (I bit set), all reserved fields zero
    /// as RFC 7348 §5 requires on send ("Reserved fields ... MUST be set to
    /// zero on transmission"), VNI in network byte order.
    pub fn to_bytes(&self) -> [u8; VXLAN_HEADER_LEN] {
        let v = self.vni.get().to_be_bytes();
        [VXLAN_FLAG_VNI_VALID, 0, 0, 0, v[1], v[2], v[3], 0]
    }

    /// Writes the header into `out[..8]` (see [`VxlanHeader::to_bytes`]),
    /// leaving any bytes after it untouched.
    ///
    /// # Errors
    ///
    /// [`VxlanError::BufferTooSmall`] if `out.len() < 8`; `out` is then not
    /// modified.
    pub fn encode(&self, out: &mut [u8]) -> Result<(), VxlanError> {
        let len = out.len();
        let dst = out
            .get_mut(..VXLAN_HEADER_LEN)
            .ok_or(VxlanError::BufferTooSmall { len })?;
        dst.copy_from_slice(&self.to_bytes());
        Ok(())
    }

    /// Decodes a VXLAN header (the UDP payload) and returns it with the
    /// encapsulated Ethernet frame, borrowed from `packet`.
    ///
    /// Receive rules of RFC 7348 §5: the I flag must be set; the other flag
    /// bits and both reserved fields "MUST be ignored on receipt" and are.
    ///
    /// # Errors
    ///
    /// In order of checking: [`VxlanError::Truncated`] if `packet` is shorter
    /// than 8 bytes, [`VxlanError::MissingVniFlag`] if the I flag is clear,
    /// [`VxlanError::InnerFrameTruncated`] if fewer than 14 bytes (an
    /// Ethernet header) follow the VXLAN header.
    pub fn decode(packet: &[u8]) -> Result<(VxlanHeader, &[u8]), VxlanError> {
        Self::decode_inner(packet, false)
    }

    /// Like [`VxlanHeader::decode`], but also refuses headers whose flags
    /// byte is anything other than exactly `0x08` or whose reserved fields
    /// are nonzero, with [`VxlanError::ReservedBitsSet`] (checked after the
    /// I flag, before the inner frame length).
    ///
    /// This is stricter than RFC 7348 §5 allows for forwarding; it is meant
    /// for classifying and counting non-conforming or hostile input.
    pub fn decode_strict(packet: &[u8]) -> Result<(VxlanHeader, &[u8]), VxlanError> {
        Self::decode_inner(packet, true)
    }

    fn decode_inner(packet: &[u8], strict: bool) -> Result<(VxlanHeader, &[u8]), VxlanError> {
        let Some((hdr, inner)) = packet.split_first_chunk::<VXLAN_HEADER_LEN>() else {
            return Err(VxlanError::Truncated { len: packet.len() });
        };
        let flags = hdr[0];
        if flags & VXLAN_FLAG_VNI_VALID == 0 {
            return Err(VxlanError::MissingVniFlag { flags });
        }
        if strict {
            let reserved1 = u32::from_be_bytes([0, hdr[1], hdr[2], hdr[3]]);
            let reserved2 = hdr[7];
            if flags != VXLAN_FLAG_VNI_VALID || reserved1 != 0 || reserved2 != 0 {
                return Err(VxlanError::ReservedBitsSet {
                    flags,
                    reserved1,
                    reserved2,
                });
            }
        }
        if inner.len() < INNER_ETHERNET_MIN_LEN {
            return Err(VxlanError::InnerFrameTruncated { len: inner.len() });
        }
        // 24 bits always fit: no range check needed.
        let vni = Vni(u32::from_be_bytes([0, hdr[4], hdr[5], hdr[6]]));
        Ok((VxlanHeader { vni }, inner))
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// 32-bit FNV-1a, fed incrementally.
struct Fnv1a(u32);

impl Fnv1a {
    const OFFSET_BASIS: u32 = 0x811C_9DC5;
    const PRIME: u32 = 0x0100_0193;

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u32::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// FNV-1a followed by the MurmurHash3 32-bit finalizer, so that every
    /// input bit reaches the high bits used to pick the port.
    fn finish(&self) -> u32 {
        let mut h = self.0;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85EB_CA6B);
        h ^= h >> 13;
        h = h.wrapping_mul(0xC2B2_AE35);
        h ^= h >> 16;
        h
    }
}

/// Feeds the flow fields of `frame` into `h`: Ethernet destination and source
/// (or as much of them as present), then, after up to two VLAN tags, IPv4 or
/// IPv6 source and destination, then TCP/UDP source and destination ports.
///
/// Ports are skipped for IPv4 fragments (so all fragments of a datagram hash
/// alike) and for IPv6 packets whose first next-header is not TCP/UDP
/// (extension headers are not walked). Anything truncated simply stops the
/// hash at the last complete field.
fn hash_flow(h: &mut Fnv1a, frame: &[u8]) {
    h.write(frame.get(..12).unwrap_or(frame));
    let mut off = 12;
    let mut ethertype = match be16(frame, off) {
        Some(t) => t,
        None => return,
    };
    let mut tags = 0;
    while (ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ) && tags < 2 {
        // TCI at off+2 (VLAN id is part of the flow), inner type at off+4.
        let Some(tci) = be16(frame, off + 2) else {
            return;
        };
        h.write(&(tci & 0x0FFF).to_be_bytes());
        off += 4;
        tags += 1;
        ethertype = match be16(frame, off) {
            Some(t) => t,
            None => return,
        };
    }
    let l3 = off + 2;
    let (proto, l4) = match ethertype {
        ETHERTYPE_IPV4 => {
            // RFC 791 §3.1, through smoltcp's checked view (IHL and total length checked).
            let Some(Ok(ip)) = frame.get(l3..).map(Ipv4Packet::new_checked) else {
                return;
            };
            if ip.version() != 4 {
                return;
            }
            h.write(&ip.src_addr().octets());
            h.write(&ip.dst_addr().octets());
            // More-fragments set or nonzero offset: no (reliable) L4 header.
            let header_len = usize::from(ip.header_len());
            if header_len < 20 || ip.more_frags() || ip.frag_offset() != 0 {
                return;
            }
            (u8::from(ip.next_header()), l3 + header_len)
        }
        ETHERTYPE_IPV6 => {
            let Some(ip) = frame.get(l3..l3 + 40) else {
                return;
            };
            if ip[0] >> 4 != 6 {
                return;
            }
            h.write(&ip[8..40]);
            (ip[6], l3 + 40)
        }
        _ => return,
    };
    if proto == IPPROTO_TCP || proto == IPPROTO_UDP {
        h.write(&[proto]);
        if let Some(ports) = frame.get(l4..l4 + 4) {
            h.write(ports);
        }
    }
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

/// Outer UDP source port for an encapsulated frame, from a hash of its flow
/// fields, as RFC 7348 §5 ("Source Port") recommends: "it is recommended
/// that the UDP source port number be calculated using a hash of fields from
/// the inner packet", which gives ECMP/LACP entropy in the underlay while
/// keeping each inner flow on one path (no reordering).
///
/// Hashed: inner Ethernet destination and source MAC, the VLAN ids of up to
/// two 802.1Q/802.1ad tags, IPv4 or IPv6 source and destination addresses,
/// and for TCP and UDP (not in IPv4 fragments; IPv6 only when TCP/UDP is the
/// first next header) the IP protocol and both ports. The hash is 32-bit
/// FNV-1a with a MurmurHash3 finalizer: deterministic across runs and
/// builds, no allocation, and never panics on malformed or short frames
/// (it hashes what is there).
///
/// The result is in `range`; pass [`SOURCE_PORT_RANGE`] (49152..=65535) for
/// the RFC's recommendation. An empty range (`start > end`) yields
/// `*range.start()`.
pub fn source_port_for_inner(inner_frame: &[u8], range: RangeInclusive<u16>) -> u16 {
    let (lo, hi) = (*range.start(), *range.end());
    if lo >= hi {
        return lo;
    }
    let mut h = Fnv1a(Fnv1a::OFFSET_BASIS);
    hash_flow(&mut h, inner_frame);
    let span = u64::from(hi - lo) + 1;
    // Multiply-shift maps the 32-bit hash onto 0..span without modulo bias
    // beyond 2^-16 and using the well-mixed high bits.
    let offset = (u64::from(h.finish()) * span) >> 32;
    // offset < span <= 65536 and lo + offset <= hi, so this cannot overflow.
    lo + offset as u16
}
