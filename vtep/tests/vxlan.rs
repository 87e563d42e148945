//! Tests of the RFC 7348 header codec and source-port hash.

use std::collections::HashSet;

use proptest::prelude::*;
use weft_vtep::{
    source_port_for_inner, Vni, VniError, VxlanError, VxlanHeader, SOURCE_PORT_RANGE,
    VXLAN_DEFAULT_PORT, VXLAN_FLAG_VNI_VALID, VXLAN_HEADER_LEN,
};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// IPv4 header (no options) + the first 8 bytes of a TCP/UDP header.
fn ipv4_l4(proto: u8, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, frag: u16) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 28, 0, 1];
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[0, 8, 0, 0]);
    p
}

fn tcp4_frame(sport: u16, dport: u16) -> Vec<u8> {
    eth(
        MAC_B,
        MAC_A,
        0x0800,
        &ipv4_l4(6, [10, 231, 0, 11], [10, 231, 0, 12], sport, dport, 0),
    )
}

fn udp6_frame(src_last: u8, sport: u16, dport: u16) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
    let mut src = [0u8; 16];
    src[0] = 0xfd;
    src[15] = src_last;
    let mut dst = [0u8; 16];
    dst[0] = 0xfd;
    dst[15] = 0xff;
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[0, 8, 0, 0]);
    eth(MAC_B, MAC_A, 0x86DD, &p)
}

fn packet(header: [u8; 8], inner_len: usize) -> Vec<u8> {
    let mut p = header.to_vec();
    p.extend((0..inner_len).map(|i| i as u8));
    p
}

// ---- constants and Vni ----

#[test]
fn constants_match_rfc7348() {
    assert_eq!(VXLAN_HEADER_LEN, 8);
    assert_eq!(VXLAN_DEFAULT_PORT, 4789);
    assert_eq!(VXLAN_FLAG_VNI_VALID, 0x08);
    assert_eq!(Vni::MAX, (1 << 24) - 1);
    assert_eq!(SOURCE_PORT_RANGE, 49152..=65535);
}

#[test]
fn vni_range() {
    assert_eq!(Vni::new(0).unwrap().get(), 0);
    assert_eq!(Vni::new(Vni::MAX).unwrap().get(), Vni::MAX);
    assert_eq!(
        Vni::new(Vni::MAX + 1),
        Err(VniError::OutOfRange(16_777_216))
    );
    assert_eq!(
        Vni::new(u32::MAX),
        Err(VniError::OutOfRange(u64::from(u32::MAX)))
    );
    assert_eq!(
        Vni::new(16_777_216).unwrap_err().to_string(),
        "VNI 16777216 out of range: must be 0..=16777215"
    );
    assert_eq!(Vni::try_from(7u32).map(u32::from), Ok(7));
}

#[test]
fn vni_display_and_from_str() {
    let v: Vni = "4096".parse().unwrap();
    assert_eq!(v.get(), 4096);
    assert_eq!(v.to_string(), "4096");
    assert_eq!("16777215".parse::<Vni>().unwrap().get(), Vni::MAX);
    assert_eq!(
        "16777216".parse::<Vni>(),
        Err(VniError::OutOfRange(16_777_216))
    );
    assert_eq!(
        "99999999999".parse::<Vni>(),
        Err(VniError::OutOfRange(99_999_999_999))
    );
    for bad in ["", "-1", "0x10", "12 ", "vni"] {
        let err = bad.parse::<Vni>().unwrap_err();
        assert!(matches!(err, VniError::Parse { .. }), "{bad:?}: {err:?}");
        assert!(err.to_string().starts_with("invalid VNI"), "{err}");
    }
}

#[test]
fn vni_ordering() {
    assert!(Vni::new(1).unwrap() < Vni::new(2).unwrap());
}

// ---- encode ----

#[test]
fn encode_exact_bytes() {
    let hdr = VxlanHeader::new(Vni::new(0x12_3456).unwrap());
    assert_eq!(hdr.to_bytes(), [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
    let mut buf = [0xAAu8; 10];
    hdr.encode(&mut buf).unwrap();
    assert_eq!(buf, [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0, 0xAA, 0xAA]);
}

#[test]
fn encode_buffer_too_small() {
    let hdr = VxlanHeader::new(Vni::new(1).unwrap());
    for len in 0..VXLAN_HEADER_LEN {
        let mut buf = vec![0xEEu8; len];
        assert_eq!(
            hdr.encode(&mut buf),
            Err(VxlanError::BufferTooSmall { len })
        );
        assert!(buf.iter().all(|&b| b == 0xEE), "buffer modified on error");
    }
}

// ---- decode ----

#[test]
fn decode_minimal() {
    let p = packet([0x08, 0, 0, 0, 0xAB, 0xCD, 0xEF, 0], 14);
    let (hdr, inner) = VxlanHeader::decode(&p).unwrap();
    assert_eq!(hdr.vni.get(), 0xAB_CDEF);
    assert_eq!(inner, &p[8..]);
    assert_eq!(VxlanHeader::decode_strict(&p), Ok((hdr, inner)));
}

#[test]
fn decode_truncated() {
    let full = packet([0x08, 0, 0, 0, 0, 0, 1, 0], 14);
    for len in 0..VXLAN_HEADER_LEN {
        assert_eq!(
            VxlanHeader::decode(&full[..len]),
            Err(VxlanError::Truncated { len })
        );
        assert_eq!(
            VxlanHeader::decode_strict(&full[..len]),
            Err(VxlanError::Truncated { len })
        );
    }
}

#[test]
fn decode_inner_frame_truncated() {
    for inner_len in 0..14 {
        let p = packet([0x08, 0, 0, 0, 0, 0, 1, 0], inner_len);
        let want = Err(VxlanError::InnerFrameTruncated { len: inner_len });
        assert_eq!(VxlanHeader::decode(&p), want);
        assert_eq!(VxlanHeader::decode_strict(&p), want);
    }
    assert!(VxlanHeader::decode(&packet([0x08, 0, 0, 0, 0, 0, 1, 0], 14)).is_ok());
}

#[test]
fn decode_missing_flag() {
    for flags in [0x00u8, 0xF7, 0x01, 0x80] {
        let p = packet([flags, 0, 0, 0, 0, 0, 1, 0], 14);
        let want = Err(VxlanError::MissingVniFlag { flags });
        assert_eq!(VxlanHeader::decode(&p), want);
        assert_eq!(VxlanHeader::decode_strict(&p), want);
    }
}

#[test]
fn reserved_bits_ignored_by_decode_rejected_by_strict() {
    let cases: [[u8; 8]; 6] = [
        [0x0C, 0, 0, 0, 0, 0, 5, 0],    // extra flag bit (e.g. VXLAN-GPE P bit)
        [0xFF, 0, 0, 0, 0, 0, 5, 0],    // every flag bit
        [0x08, 0x80, 0, 0, 0, 0, 5, 0], // first reserved field (GBP uses it)
        [0x08, 0, 0, 0x01, 0, 0, 5, 0],
        [0x08, 0, 0, 0, 0, 0, 5, 0x01], // trailing reserved byte
        [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 5, 0xFF],
    ];
    for h in cases {
        let p = packet(h, 20);
        let (hdr, inner) = VxlanHeader::decode(&p).unwrap();
        assert_eq!(hdr.vni.get(), 5, "{h:02x?}");
        assert_eq!(inner, &p[8..]);
        let err = VxlanHeader::decode_strict(&p).unwrap_err();
        assert_eq!(
            err,
            VxlanError::ReservedBitsSet {
                flags: h[0],
                reserved1: u32::from_be_bytes([0, h[1], h[2], h[3]]),
                reserved2: h[7],
            },
            "{h:02x?}"
        );
    }
}

#[test]
fn strict_checks_reserved_before_inner_length() {
    let p = packet([0x08, 1, 0, 0, 0, 0, 5, 0], 3);
    assert!(matches!(
        VxlanHeader::decode_strict(&p),
        Err(VxlanError::ReservedBitsSet { .. })
    ));
    assert_eq!(
        VxlanHeader::decode(&p),
        Err(VxlanError::InnerFrameTruncated { len: 3 })
    );
}

#[test]
fn error_messages() {
    assert_eq!(
        VxlanError::MissingVniFlag { flags: 0 }.to_string(),
        "VXLAN I flag (0x08) not set in flags 0x00"
    );
    assert_eq!(
        VxlanError::Truncated { len: 3 }.to_string(),
        "VXLAN packet truncated: 3 bytes, header needs 8"
    );
    assert_eq!(
        VxlanError::ReservedBitsSet {
            flags: 0x0c,
            reserved1: 0x10,
            reserved2: 0
        }
        .to_string(),
        "VXLAN reserved bits set: flags 0x0c, reserved 0x000010/0x00"
    );
}

proptest! {
    #[test]
    fn round_trip(vni in 0..=Vni::MAX, payload in proptest::collection::vec(any::<u8>(), 14..300)) {
        let hdr = VxlanHeader::new(Vni::new(vni).unwrap());
        let mut p = vec![0u8; VXLAN_HEADER_LEN + payload.len()];
        hdr.encode(&mut p).unwrap();
        p[VXLAN_HEADER_LEN..].copy_from_slice(&payload);
        let (got, inner) = VxlanHeader::decode(&p).unwrap();
        prop_assert_eq!(got, hdr);
        prop_assert_eq!(inner, &payload[..]);
        let (got, inner) = VxlanHeader::decode_strict(&p).unwrap();
        prop_assert_eq!(got, hdr);
        prop_assert_eq!(inner, &payload[..]);
    }

    /// Arbitrary bytes get exactly the verdict RFC 7348 calls for, checked in order: too
    /// short for the header, I flag missing, (strict only) a flag or reserved bit set,
    /// inner frame shorter than an Ethernet header; else the VNI from bytes 4..7 and the
    /// rest as the inner frame.
    #[test]
    fn decode_of_arbitrary_bytes_matches_the_rfc(
        flags in prop_oneof![
            Just(None),
            Just(Some(VXLAN_FLAG_VNI_VALID)),
            any::<u8>().prop_map(|f| Some(f | VXLAN_FLAG_VNI_VALID)),
        ],
        clear_reserved in proptest::array::uniform4(proptest::bool::weighted(0.75)),
        mut bytes in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        // Most cases get the I flag (a third exactly 0x08), and each reserved byte is zeroed
        // in three cases out of four, so that every verdict comes up often: strict success,
        // and strict failure for each single flag or reserved field that is set.
        if let (Some(f), Some(b)) = (flags, bytes.first_mut()) {
            *b = f;
        }
        for (i, clear) in [1, 2, 3, 7].into_iter().zip(clear_reserved) {
            if let (true, Some(b)) = (clear, bytes.get_mut(i)) {
                *b = 0;
            }
        }
        let len = bytes.len();
        let expect = |strict: bool| {
            if len < VXLAN_HEADER_LEN {
                return Err(VxlanError::Truncated { len });
            }
            let flags = bytes[0];
            if flags & VXLAN_FLAG_VNI_VALID == 0 {
                return Err(VxlanError::MissingVniFlag { flags });
            }
            let reserved1 = u32::from_be_bytes([0, bytes[1], bytes[2], bytes[3]]);
            let reserved2 = bytes[7];
            if strict && (flags != VXLAN_FLAG_VNI_VALID || reserved1 != 0 || reserved2 != 0) {
                return Err(VxlanError::ReservedBitsSet { flags, reserved1, reserved2 });
            }
            if len - VXLAN_HEADER_LEN < 14 {
                return Err(VxlanError::InnerFrameTruncated { len: len - VXLAN_HEADER_LEN });
            }
            let vni = Vni::new(u32::from_be_bytes([0, bytes[4], bytes[5], bytes[6]])).unwrap();
            Ok((VxlanHeader::new(vni), &bytes[VXLAN_HEADER_LEN..]))
        };
        let got = VxlanHeader::decode(&bytes);
        prop_assert_eq!(&got, &expect(false));
        prop_assert_eq!(VxlanHeader::decode_strict(&bytes), expect(true));
        if let Ok((hdr, _)) = &got {
            // Re-encoding normalises flags and reserved fields but keeps the VNI.
            let mut re = bytes[..VXLAN_HEADER_LEN].to_vec();
            re[0] = VXLAN_FLAG_VNI_VALID;
            re[1..4].fill(0);
            re[7] = 0;
            prop_assert_eq!(&hdr.to_bytes()[..], &re[..]);
        }
        let port = source_port_for_inner(&bytes, SOURCE_PORT_RANGE);
        prop_assert!(SOURCE_PORT_RANGE.contains(&port));
    }

    #[test]
    fn source_port_in_any_range(
        bytes in proptest::collection::vec(any::<u8>(), 0..120),
        a in any::<u16>(),
        b in any::<u16>(),
    ) {
        let (lo, hi) = (a.min(b), a.max(b));
        let port = source_port_for_inner(&bytes, lo..=hi);
        prop_assert!((lo..=hi).contains(&port));
        prop_assert_eq!(port, source_port_for_inner(&bytes, lo..=hi));
    }

    #[test]
    fn source_port_of_tcp_flows_in_range(sport in any::<u16>(), dport in any::<u16>()) {
        let port = source_port_for_inner(&tcp4_frame(sport, dport), SOURCE_PORT_RANGE);
        prop_assert!(SOURCE_PORT_RANGE.contains(&port));
    }
}

// ---- source port ----

#[test]
fn source_port_stable_for_same_flow() {
    let a = tcp4_frame(40000, 5201);
    let mut b = a.clone();
    b.extend_from_slice(&[0xAB; 100]); // different payload, same flow
    b[14 + 4] = 0x99; // different IP id
    let p = source_port_for_inner(&a, SOURCE_PORT_RANGE);
    assert_eq!(p, source_port_for_inner(&a, SOURCE_PORT_RANGE));
    assert_eq!(p, source_port_for_inner(&b, SOURCE_PORT_RANGE));
}

#[test]
fn source_port_differs_across_flows() {
    let ports: HashSet<u16> = (0..32u16)
        .map(|i| source_port_for_inner(&tcp4_frame(40000 + i, 5201), SOURCE_PORT_RANGE))
        .collect();
    // 32 flows into 16384 ports: collisions are possible but a constant is not.
    assert!(ports.len() > 16, "only {} distinct ports", ports.len());

    let pairs = [
        (1000, 80),
        (1001, 80),
        (80, 1000),
        (5201, 40000),
        (33333, 443),
    ];
    let distinct: HashSet<u16> = pairs
        .iter()
        .map(|&(s, d)| source_port_for_inner(&tcp4_frame(s, d), SOURCE_PORT_RANGE))
        .collect();
    assert!(distinct.len() > 1);
}

#[test]
fn source_port_hashes_addresses_and_macs() {
    let base = tcp4_frame(1234, 80);
    let p = source_port_for_inner(&base, SOURCE_PORT_RANGE);
    let mut variants = HashSet::new();
    for i in 0..16u8 {
        let mut dst_ip = base.clone();
        dst_ip[14 + 19] = i; // last octet of IPv4 destination
        variants.insert(source_port_for_inner(&dst_ip, SOURCE_PORT_RANGE));
        let mut mac = base.clone();
        mac[11] = i; // last octet of source MAC
        variants.insert(source_port_for_inner(&mac, SOURCE_PORT_RANGE));
    }
    variants.insert(p);
    assert!(variants.len() > 16, "{}", variants.len());
}

#[test]
fn source_port_ipv6_udp() {
    let ports: HashSet<u16> = (0..16u8)
        .map(|i| source_port_for_inner(&udp6_frame(i, 5000, 4789), SOURCE_PORT_RANGE))
        .collect();
    assert!(ports.len() > 8);
    let f = udp6_frame(1, 5000, 4789);
    assert_eq!(
        source_port_for_inner(&f, SOURCE_PORT_RANGE),
        source_port_for_inner(&f, SOURCE_PORT_RANGE)
    );
    // Ports matter for IPv6 UDP.
    let ports: HashSet<u16> = (0..16u16)
        .map(|i| source_port_for_inner(&udp6_frame(1, 5000 + i, 53), SOURCE_PORT_RANGE))
        .collect();
    assert!(ports.len() > 8);
}

#[test]
fn ipv4_fragments_ignore_ports() {
    // A non-first fragment has no L4 header; whatever sits there must not
    // move the flow, and the first fragment (MF set) must hash the same.
    let frag = |sport, dport, frag| {
        eth(
            MAC_B,
            MAC_A,
            0x0800,
            &ipv4_l4(17, [10, 231, 0, 11], [10, 231, 0, 12], sport, dport, frag),
        )
    };
    let first = source_port_for_inner(&frag(1111, 2222, 0x2000), SOURCE_PORT_RANGE);
    let later = source_port_for_inner(&frag(0xdead, 0xbeef, 0x00B9), SOURCE_PORT_RANGE);
    assert_eq!(first, later);
}

#[test]
fn vlan_tagged_frames_hash_inner_headers() {
    let untagged = tcp4_frame(1, 2);
    let tagged = |vid: u16, sport: u16| {
        let plain = tcp4_frame(sport, 2);
        let mut f = plain[..12].to_vec();
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
        f.extend_from_slice(&plain[12..]);
        f
    };
    let ports: HashSet<u16> = (0..16)
        .map(|s| source_port_for_inner(&tagged(10, 1000 + s), SOURCE_PORT_RANGE))
        .collect();
    assert!(ports.len() > 8, "ports behind a VLAN tag not hashed");
    assert_ne!(
        source_port_for_inner(&untagged, SOURCE_PORT_RANGE),
        source_port_for_inner(&tagged(10, 1), SOURCE_PORT_RANGE)
    );
    assert_ne!(
        source_port_for_inner(&tagged(10, 1), SOURCE_PORT_RANGE),
        source_port_for_inner(&tagged(11, 1), SOURCE_PORT_RANGE)
    );
}

#[test]
fn source_port_degenerate_ranges() {
    let f = tcp4_frame(1, 2);
    assert_eq!(source_port_for_inner(&f, 7000..=7000), 7000);
    #[allow(clippy::reversed_empty_ranges)]
    let empty = 9000..=8000;
    assert_eq!(source_port_for_inner(&f, empty), 9000);
    let full: HashSet<u16> = (0..64)
        .map(|i| source_port_for_inner(&tcp4_frame(i, 2), 0..=u16::MAX))
        .collect();
    assert!(full.len() > 32);
    assert!((49152..=49153).contains(&source_port_for_inner(&[], 49152..=49153)));
}
