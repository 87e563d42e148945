//! weft-wire's offloads on hostile frames: `VnetHdr::parse`, `gso::segment_tcp4` and
//! `gso::complete_checksum` on an arbitrary superframe, and `Coalescer` (GRO) on an arbitrary
//! run of segments, its superframes cut again by `segment_tcp4`.
//!
//! Input: `[mode, mss_hi, mss_lo, rest...]`. `rest` is tried whole as a vnet header plus
//! superframe; then it is split into packets `[len_hi, len_lo, eth, ip...]` for the
//! coalescer, each laid out as a caller does (virtio_net_hdr room, an Ethernet header whose
//! destination's last octet is `eth & 1`, the IPv4 packet). `mode` bit 0: `push_slice`
//! rather than `push`; bit 1: fix each packet's IPv4 and TCP checksums; bit 2: pass only
//! packets whose checksums hold (as the VXLAN receive path does); bit 3: 8 more octets of
//! headroom.
//!
//! Invariants: segments carry at most `mss` payload octets, add up to the superframe's
//! payload, and have valid IPv4 and TCP checksums; a packet that is not merged comes out as
//! it went in; a superframe cut again at its `gso_size` gives back exactly the segments
//! merged into it (payload and sequence number), in order; every packet comes out once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_wire::checksum::{fold, ones_sum};
use weft_wire::coalesce::{tcp_checksum_ok, SPARE_BUFFERS};
use weft_wire::gso::{complete_checksum, segment_tcp4, GsoError};
use weft_wire::{internet_checksum, Coalescer, VnetHdr, VIRTIO_NET_HDR_GSO_TCPV4, VNET_HDR_LEN};

const ETH: usize = 14;

fuzz_target!(|data: &[u8]| {
    let [mode, mss_hi, mss_lo, rest @ ..] = data else {
        return;
    };
    let mss = usize::from(u16::from_be_bytes([*mss_hi, *mss_lo]));

    // A vnet header and a superframe, as a TAP hands them over.
    if let Some(hdr) = VnetHdr::parse(rest) {
        let mut back = [0u8; VNET_HDR_LEN];
        hdr.write(&mut back);
        assert_eq!(back, rest[..VNET_HDR_LEN], "vnet header round trip");
        let _ = (hdr.is_gso(), hdr.needs_csum());
        let mut frame = rest[VNET_HDR_LEN..].to_vec();
        let ok = complete_checksum(&mut frame, hdr.csum_start.into(), hdr.csum_offset.into());
        let at = usize::from(hdr.csum_start) + usize::from(hdr.csum_offset);
        assert_eq!(ok, at + 2 <= frame.len());
    }
    check_segments(rest, mss);

    coalesce(*mode, rest);
});

/// `segment_tcp4` on `frame`, with what comes out checked; the segments as (headers, payload).
fn check_segments(frame: &[u8], mss: usize) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut headers = Vec::new();
    let mut segments = Vec::new();
    let r = segment_tcp4(frame, mss, &mut headers, |h, p| {
        segments.push((h.to_vec(), p.to_vec()))
    });
    let count = match r {
        Ok(count) => count,
        Err(GsoError::ZeroMss) => {
            assert_eq!(mss, 0);
            return None;
        }
        Err(GsoError::Malformed) => return None,
    };
    assert_eq!(count, segments.len());
    assert!(count >= 1);
    let header_len = segments[0].0.len();
    let payload = &frame[header_len..];
    assert_eq!(count, payload.len().div_ceil(mss).max(1));
    let mut joined = Vec::new();
    for (h, p) in &segments {
        assert_eq!(h.len(), header_len, "segments with different headers");
        assert!(p.len() <= mss, "a {}-byte segment for MSS {mss}", p.len());
        joined.extend_from_slice(p);
        let ip = &h[ETH..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        if h.len() - ETH + p.len() <= 65535 {
            assert_eq!(total, h.len() - ETH + p.len(), "IPv4 total length");
            assert_eq!(internet_checksum(&ip[..ihl]), 0, "IPv4 header checksum");
            let tcp = &ip[ihl..];
            let mut pseudo = [0u8; 12];
            pseudo[..8].copy_from_slice(&ip[12..20]);
            pseudo[9] = 6;
            pseudo[10..12].copy_from_slice(&((tcp.len() + p.len()) as u16).to_be_bytes());
            let sum = fold(ones_sum(p, ones_sum(tcp, ones_sum(&pseudo, 0))));
            if tcp.len() + p.len() > 0 {
                assert_eq!(sum, 0xffff, "TCP checksum");
            }
        }
    }
    assert_eq!(joined, payload, "segments do not add up to the superframe");
    Some(segments)
}

/// Rewrites the IPv4 header and TCP checksums of `ip` where its headers hold them.
fn fix_checksums(ip: &mut [u8]) {
    let Some(ihl) = ip.first().map(|b| usize::from(b & 0x0f) * 4) else {
        return;
    };
    if ihl < 20 || ip.len() < ihl + 20 {
        return;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).clamp(ihl + 20, ip.len());
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&ip[12..20]);
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&((total - ihl) as u16).to_be_bytes());
    let tcp = &mut ip[ihl..total];
    tcp[16..18].fill(0);
    let sum = !fold(ones_sum(tcp, ones_sum(&pseudo, 0)));
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    ip[10..12].fill(0);
    let sum = internet_checksum(&ip[..ihl]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
}

fn coalesce(mode: u8, mut rest: &[u8]) {
    let headroom = VNET_HDR_LEN + ETH + if mode & 8 != 0 { 8 } else { 0 };
    let vnet = headroom - ETH - VNET_HDR_LEN;
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    while let [len_hi, len_lo, eth, more @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*len_hi, *len_lo])).min(more.len());
        let mut packet = vec![0u8; headroom];
        packet[headroom - ETH..headroom - 2].copy_from_slice(&[
            2,
            0,
            0,
            0,
            0,
            eth & 1,
            2,
            0,
            0,
            0,
            0,
            9,
        ]);
        packet[headroom - 2..headroom].copy_from_slice(&[0x08, 0x00]);
        packet.extend_from_slice(&more[..len]);
        rest = &more[len..];
        if mode & 2 != 0 {
            fix_checksums(&mut packet[headroom..]);
        }
        if mode & 4 != 0 && !tcp_checksum_ok(&packet[headroom..]) {
            continue;
        }
        inputs.push(packet);
        if inputs.len() >= 128 {
            break;
        }
    }

    let mut c = Coalescer::new(headroom);
    let mut spare = Vec::new();
    let mut outputs = Vec::new();
    for p in &inputs {
        let done = if mode & 1 != 0 {
            c.push_slice(p, &mut spare)
        } else {
            c.push(p.clone(), &mut spare)
        };
        outputs.extend(done);
        assert!(spare.len() <= SPARE_BUFFERS);
    }
    outputs.extend(c.finish());
    assert!(c.finish().is_none(), "finish twice gave a packet twice");

    // Every output is one input as it came, or a superframe that cuts back into inputs.
    let mut next = inputs.iter();
    for out in &outputs {
        let hdr = VnetHdr::parse(&out[vnet..]).unwrap_or_default();
        if hdr.gso_type != VIRTIO_NET_HDR_GSO_TCPV4 {
            let input = next.next().expect("more packets out than in");
            assert_eq!(
                hdr,
                VnetHdr::default(),
                "a single packet with a vnet header"
            );
            assert_eq!(out[..vnet], input[..vnet]);
            assert_eq!(
                out[vnet + VNET_HDR_LEN..],
                input[vnet + VNET_HDR_LEN..],
                "a single packet changed"
            );
            continue;
        }
        let frame = &out[vnet + VNET_HDR_LEN..];
        assert_eq!(
            usize::from(hdr.csum_start) + usize::from(hdr.csum_offset) + 2 <= frame.len(),
            true
        );
        let segments =
            check_segments(frame, hdr.gso_size.into()).expect("a superframe that does not cut");
        assert!(segments.len() >= 2, "a superframe of one segment");
        for (h, p) in segments {
            let input = next
                .next()
                .expect("a superframe with more segments than went in");
            let ip = &input[headroom..];
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let thl = usize::from(ip[ihl + 12] >> 4) * 4;
            assert_eq!(ip[ihl + thl..], p[..], "a merged segment's payload changed");
            let seq = |tcp: &[u8]| u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
            assert_eq!(
                seq(&h[ETH + ihl..]),
                seq(&ip[ihl..]),
                "a merged segment's sequence number changed"
            );
            assert_eq!(h[ETH + 12..ETH + 20], ip[12..20], "merged across addresses");
            assert_eq!(
                h[ETH + ihl..ETH + ihl + 4],
                ip[ihl..ihl + 4],
                "merged across ports"
            );
        }
    }
    assert!(next.next().is_none(), "a packet went in and never came out");
}
