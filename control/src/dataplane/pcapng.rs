//! pcapng (the IETF draft-ietf-opsawg-pcapng format Wireshark and tcpdump read) for
//! `weft capture --network`: a Section Header Block, one Interface Description Block per
//! port (`if_name` = the port's name), then an Enhanced Packet Block per frame with its
//! interface and direction (`epb_flags` inbound/outbound). Little-endian, microsecond
//! timestamps (the default `if_tsresol`), LINKTYPE_ETHERNET. Written by hand: three block
//! kinds (see ARCHITECTURE.md, Decisions).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const LINKTYPE_ETHERNET: u16 = 1;
const OPT_END: u16 = 0;
const IF_NAME: u16 = 2;
const EPB_FLAGS: u16 = 2;
/// `epb_flags` direction bits: 01 inbound, 10 outbound.
const INBOUND: u32 = 1;
const OUTBOUND: u32 = 2;

/// Pads `b` to a multiple of 4 octets.
fn pad(b: &mut BytesMut) {
    while !b.len().is_multiple_of(4) {
        b.put_u8(0);
    }
}

/// Wraps a block body: type, total length, body, total length.
fn block(kind: u32, body: &[u8]) -> Bytes {
    let total = 12 + body.len() as u32;
    let mut b = BytesMut::with_capacity(total as usize);
    b.put_u32_le(kind);
    b.put_u32_le(total);
    b.put_slice(body);
    b.put_u32_le(total);
    b.freeze()
}

/// The Section Header Block and one Interface Description Block per name, in order
/// (interface id = index).
pub fn header(interfaces: &[String]) -> Bytes {
    let mut out = BytesMut::new();
    let mut shb = BytesMut::new();
    shb.put_u32_le(BYTE_ORDER_MAGIC);
    shb.put_u16_le(1);
    shb.put_u16_le(0);
    shb.put_i64_le(-1); // section length unknown
    out.put_slice(&block(SHB, &shb));
    for name in interfaces {
        let mut idb = BytesMut::new();
        idb.put_u16_le(LINKTYPE_ETHERNET);
        idb.put_u16_le(0);
        idb.put_u32_le(super::pcap::SNAPLEN);
        let name = name.as_bytes();
        idb.put_u16_le(IF_NAME);
        idb.put_u16_le(name.len() as u16);
        idb.put_slice(name);
        pad(&mut idb);
        idb.put_u16_le(OPT_END);
        idb.put_u16_le(0);
        out.put_slice(&block(IDB, &idb));
    }
    out.freeze()
}

/// One Enhanced Packet Block: `frame` seen at `at` on interface `interface`, going out of
/// the port (`outbound`) or coming in.
pub fn packet(interface: u32, at: SystemTime, outbound: bool, frame: &[u8]) -> Bytes {
    let micros = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64;
    let len = frame.len().min(super::pcap::SNAPLEN as usize);
    let mut epb = BytesMut::with_capacity(32 + len);
    epb.put_u32_le(interface);
    epb.put_u32_le((micros >> 32) as u32);
    epb.put_u32_le(micros as u32);
    epb.put_u32_le(len as u32);
    epb.put_u32_le(frame.len() as u32);
    epb.put_slice(&frame[..len]);
    pad(&mut epb);
    epb.put_u16_le(EPB_FLAGS);
    epb.put_u16_le(4);
    epb.put_u32_le(if outbound { OUTBOUND } else { INBOUND });
    epb.put_u16_le(OPT_END);
    epb.put_u16_le(0);
    block(EPB, &epb)
}

/// A block read back: its type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block<'a> {
    pub kind: u32,
    pub body: &'a [u8],
}

/// The first whole block of `b` and its length, or None if `b` holds less than one.
pub fn next_block(b: &[u8]) -> Option<(Block<'_>, usize)> {
    let word = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
    let kind = word(0)?;
    let total = word(4)? as usize;
    if total < 12 || b.len() < total {
        return None;
    }
    Some((
        Block {
            kind,
            body: &b[8..total - 4],
        },
        total,
    ))
}

/// The `if_name` of an Interface Description Block.
pub fn interface_name(block: &Block<'_>) -> Option<String> {
    if block.kind != IDB {
        return None;
    }
    let opts = block.body.get(8..)?;
    let code = u16::from_le_bytes([*opts.first()?, *opts.get(1)?]);
    let len = usize::from(u16::from_le_bytes([*opts.get(2)?, *opts.get(3)?]));
    let name = opts.get(4..4 + len).filter(|_| code == IF_NAME)?;
    Some(String::from_utf8_lossy(name).into_owned())
}

/// An Enhanced Packet Block's interface id, timestamp (µs), original length, captured
/// frame and whether it was outbound.
pub fn parse_packet<'a>(block: &Block<'a>) -> Option<(u32, u64, u32, &'a [u8], bool)> {
    if block.kind != EPB {
        return None;
    }
    let b = block.body;
    let word = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
    let interface = word(0)?;
    let ts = (u64::from(word(4)?) << 32) | u64::from(word(8)?);
    let caplen = word(12)? as usize;
    let origlen = word(16)?;
    let frame = b.get(20..20 + caplen)?;
    let opts = b.get((20 + caplen).div_ceil(4) * 4..)?;
    let outbound = opts.len() >= 8
        && u16::from_le_bytes([opts[0], opts[1]]) == EPB_FLAGS
        && u32::from_le_bytes([opts[4], opts[5], opts[6], opts[7]]) & 3 == OUTBOUND;
    Some((interface, ts, origlen, frame, outbound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_with_interfaces_and_directions() {
        let head = header(&["web".into(), "db-1".into()]);
        let (shb, n) = next_block(&head).unwrap();
        assert_eq!(shb.kind, SHB);
        assert_eq!(&shb.body[..4], &BYTE_ORDER_MAGIC.to_le_bytes());
        let (idb, m) = next_block(&head[n..]).unwrap();
        assert_eq!(idb.kind, IDB);
        assert_eq!(&idb.body[12..15], b"web");
        assert_eq!(interface_name(&idb).as_deref(), Some("web"));
        let (idb2, k) = next_block(&head[n + m..]).unwrap();
        assert_eq!(&idb2.body[12..16], b"db-1");
        assert_eq!(n + m + k, head.len());
        assert_eq!(head.len() % 4, 0);

        let at = UNIX_EPOCH + std::time::Duration::from_micros(5_000_000_123);
        let p = packet(1, at, true, &[0xaa; 61]);
        assert_eq!(p.len() % 4, 0);
        let (blk, used) = next_block(&p).unwrap();
        assert_eq!(used, p.len());
        let (iface, ts, orig, frame, outbound) = parse_packet(&blk).unwrap();
        assert_eq!(
            (iface, ts, orig, frame.len(), outbound),
            (1, 5_000_000_123, 61, 61, true)
        );
        let inbound = packet(0, at, false, &[1; 60]);
        let (blk, _) = next_block(&inbound).unwrap();
        assert!(!parse_packet(&blk).unwrap().4);
        assert!(next_block(&p[..p.len() - 1]).is_none());
    }
}
