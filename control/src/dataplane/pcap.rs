//! pcap file format (the classic libpcap format read by `tcpdump -r` and Wireshark):
//! a 24-byte global header, then one 16-byte record header before each frame.
//! Microsecond timestamps, LINKTYPE_ETHERNET (1), little-endian magic `0xa1b2c3d4`.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

pub const GLOBAL_HEADER_LEN: usize = 24;
pub const RECORD_HEADER_LEN: usize = 16;
/// Large enough for a 64 KiB GSO superframe: captures show frames as they cross the switch.
pub const SNAPLEN: u32 = 262_144;
const MAGIC: u32 = 0xa1b2_c3d4;
const LINKTYPE_ETHERNET: u32 = 1;

/// The global header that starts every capture stream.
pub fn global_header() -> Bytes {
    let mut b = BytesMut::with_capacity(GLOBAL_HEADER_LEN);
    b.put_u32_le(MAGIC);
    b.put_u16_le(2);
    b.put_u16_le(4);
    b.put_i32_le(0);
    b.put_u32_le(0);
    b.put_u32_le(SNAPLEN);
    b.put_u32_le(LINKTYPE_ETHERNET);
    b.freeze()
}

/// One record: header and the whole frame.
pub fn record(at: SystemTime, frame: &[u8]) -> Bytes {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let len = frame.len().min(SNAPLEN as usize);
    let mut b = BytesMut::with_capacity(RECORD_HEADER_LEN + len);
    b.put_u32_le(since.as_secs() as u32);
    b.put_u32_le(since.subsec_micros());
    b.put_u32_le(len as u32);
    b.put_u32_le(frame.len() as u32);
    b.put_slice(&frame[..len]);
    b.freeze()
}

/// A parsed record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub ts_sec: u32,
    pub ts_usec: u32,
    pub caplen: u32,
    pub origlen: u32,
}

/// Parses a record header from the front of `b` (None if fewer than 16 bytes).
pub fn parse_record_header(b: &[u8]) -> Option<RecordHeader> {
    let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (b.len() >= RECORD_HEADER_LEN).then(|| RecordHeader {
        ts_sec: word(0),
        ts_usec: word(4),
        caplen: word(8),
        origlen: word(12),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let frame = [0xffu8; 60];
        let r = record(
            UNIX_EPOCH + std::time::Duration::from_micros(1_500_000),
            &frame,
        );
        let h = parse_record_header(&r).unwrap();
        assert_eq!(
            (h.ts_sec, h.ts_usec, h.caplen, h.origlen),
            (1, 500_000, 60, 60)
        );
        assert_eq!(&r[RECORD_HEADER_LEN..], &frame[..]);
        assert_eq!(global_header().len(), GLOBAL_HEADER_LEN);
        assert!(parse_record_header(&r[..15]).is_none());
    }
}
