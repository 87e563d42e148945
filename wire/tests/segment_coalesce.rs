//! Segmentation (GSO) and coalescing (GRO) are each other's inverse: cutting a TCP
//! superframe into segments and merging those segments again gives back the superframe,
//! header for header and octet for octet (the TCP checksum aside, which a merged
//! superframe carries as the pseudo-header sum for the receiver to complete).

use proptest::prelude::*;
use weft_wire::checksum::internet_checksum;
use weft_wire::coalesce::Coalescer;
use weft_wire::gso::{complete_checksum, segment_tcp4};
use weft_wire::{VnetHdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, VNET_HDR_LEN};

const ETH: usize = 14;
const HEADROOM: usize = VNET_HDR_LEN + ETH;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// An Ethernet/IPv4/TCP superframe with `payload`, valid IPv4 header checksum, TCP checksum
/// filled in, `tcp_options` (a multiple of 4 octets) after the TCP header.
fn superframe(payload: &[u8], seq: u32, flags: u8, tcp_options: &[u8], id: u16) -> Vec<u8> {
    let thl = 20 + tcp_options.len();
    let mut f = vec![0u8; ETH + 20 + thl];
    f[..6].copy_from_slice(&[0x02, 0x42, 10, 0, 0, 3]);
    f[6..12].copy_from_slice(&[0x02, 0x42, 10, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[ETH..];
    ip[0] = 0x45;
    let total = (20 + thl + payload.len()) as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[10, 0, 0, 2]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 3]);
    let sum = internet_checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let tcp = &mut ip[20..];
    tcp[..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&7u32.to_be_bytes());
    tcp[12] = ((thl / 4) as u8) << 4;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&502u16.to_be_bytes());
    tcp[20..thl].copy_from_slice(tcp_options);
    f.extend_from_slice(payload);
    fill_tcp_checksum(&mut f);
    f
}

/// RFC 9293 §3.1: the checksum over the pseudo-header, the TCP header and the data; done as
/// a NIC does for CHECKSUM_PARTIAL (the field holds the pseudo-header sum first).
fn fill_tcp_checksum(f: &mut [u8]) {
    let tcp_len = (f.len() - ETH - 20) as u16;
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&f[ETH + 12..ETH + 20]);
    pseudo[9] = 6;
    pseudo[10..].copy_from_slice(&tcp_len.to_be_bytes());
    let partial = !internet_checksum(&pseudo);
    f[ETH + 20 + 16..ETH + 20 + 18].copy_from_slice(&partial.to_be_bytes());
    assert!(complete_checksum(f, ETH + 20, 16));
}

/// The segments of `frame`, each as the coalescer takes them: headroom, then IPv4.
fn segments(frame: &[u8], mss: usize) -> Vec<Vec<u8>> {
    let mut headers = Vec::new();
    let mut out = Vec::new();
    segment_tcp4(frame, mss, &mut headers, |h, payload| {
        let mut p = vec![0u8; VNET_HDR_LEN];
        p.extend_from_slice(h);
        p.extend_from_slice(payload);
        out.push(p);
    })
    .expect("a well-formed superframe segments");
    out
}

/// Merges `packets` in order; every packet the coalescer hands back, in order.
fn coalesce(packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut c = Coalescer::new(HEADROOM);
    let mut spare = Vec::new();
    let mut out: Vec<Vec<u8>> = packets
        .iter()
        .filter_map(|p| c.push_slice(p, &mut spare))
        .collect();
    out.extend(c.finish());
    out
}

fn tcp_checksum_field(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[ETH + 20 + 16], frame[ETH + 20 + 17]])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn coalescing_the_segments_of_a_superframe_gives_it_back(
        payload in proptest::collection::vec(any::<u8>(), 1..20_000),
        mss in 100usize..1500,
        seq in any::<u32>(),
        id in any::<u16>(),
        psh in any::<bool>(),
        timestamps in any::<bool>(),
    ) {
        let options: &[u8] = if timestamps { &[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 4] } else { &[] };
        let flags = ACK | if psh { PSH } else { 0 };
        let original = superframe(&payload, seq, flags, options, id);
        let segs = segments(&original, mss);
        prop_assert_eq!(segs.len(), payload.len().div_ceil(mss));
        let merged = coalesce(&segs);
        prop_assert_eq!(merged.len(), 1, "all segments of one superframe merge into one");
        let merged = &merged[0];
        let frame = &merged[VNET_HDR_LEN..];
        let hdr = VnetHdr::parse(merged).expect("a virtio_net_hdr");
        if segs.len() == 1 {
            // A lone segment passes on as it came: complete checksums, no GSO.
            prop_assert_eq!(hdr, VnetHdr::default());
            prop_assert_eq!(frame, &original[..]);
        } else {
            prop_assert_eq!(hdr.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
            prop_assert_eq!(hdr.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
            prop_assert_eq!(usize::from(hdr.gso_size), mss);
            prop_assert_eq!(usize::from(hdr.hdr_len), ETH + 20 + 20 + options.len());
            prop_assert_eq!(usize::from(hdr.csum_start), ETH + 20);
            prop_assert_eq!(hdr.csum_offset, 16);
            // Every octet but the TCP checksum is the superframe's own.
            let at = ETH + 20 + 16;
            prop_assert_eq!(frame.len(), original.len());
            prop_assert_eq!(&frame[..at], &original[..at]);
            prop_assert_eq!(&frame[at + 2..], &original[at + 2..]);
            // Completing the partial checksum gives the superframe's checksum.
            let mut completed = frame.to_vec();
            prop_assert!(complete_checksum(&mut completed, usize::from(hdr.csum_start), 16));
            prop_assert_eq!(tcp_checksum_field(&completed), tcp_checksum_field(&original));
        }
    }

    #[test]
    fn segments_of_two_flows_interleaved_never_merge_across_flows(
        len in 3000usize..6000,
        mss in 500usize..1400,
    ) {
        let a = superframe(&vec![0xaa; len], 1000, ACK, &[], 1);
        let mut b = superframe(&vec![0xbb; len], 5000, ACK, &[], 2);
        // Another source port: another flow.
        b[ETH + 20..ETH + 22].copy_from_slice(&40001u16.to_be_bytes());
        fill_tcp_checksum(&mut b);
        let (sa, sb) = (segments(&a, mss), segments(&b, mss));
        let mixed: Vec<Vec<u8>> = sa.iter().zip(sb.iter()).flat_map(|(x, y)| [x.clone(), y.clone()]).collect();
        let out = coalesce(&mixed);
        // Alternating flows: nothing merges, every segment passes on by itself and intact.
        prop_assert_eq!(out.len(), mixed.len());
        for (o, m) in out.iter().zip(mixed.iter()) {
            prop_assert_eq!(&o[VNET_HDR_LEN..], &m[VNET_HDR_LEN..]);
        }
    }
}
