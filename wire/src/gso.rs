//! Software segmentation and checksum completion for frames entering a VXLAN tunnel.
//!
//! Local ports hand weft TCP superframes (up to 64 KiB, "GSO") with the TCP checksum left
//! for the hardware (CHECKSUM_PARTIAL). Neither may cross a tunnel as is: the underlay
//! carries at most its MTU per datagram, and the remote VTEP (weft or a kernel `vxlan`
//! device) expects complete inner frames. [`segment_tcp4`] cuts a superframe into segments
//! of at most the MSS with every header field a NIC's TSO would fix up (RFC 9293 §3.1 header,
//! RFC 791 identification and checksum); [`complete_checksum`] finishes a partial checksum.

/// Why a superframe could not be segmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GsoError {
    /// Not Ethernet/IPv4/TCP, or its headers are cut short or inconsistent.
    #[error("not a well-formed Ethernet/IPv4/TCP frame")]
    Malformed,
    /// A segment size of zero.
    #[error("segment size 0")]
    ZeroMss,
}

use smoltcp::wire::{IpProtocol, Ipv4Packet, TcpPacket};

use crate::checksum::{fold, ones_sum};

const ETHERNET_HEADER_LEN: usize = 14;

/// Completes a partial checksum in place: the field at `csum_start + csum_offset` holds the
/// pseudo-header sum, and the one's complement of the sum over `frame[csum_start..]` is
/// stored there (what a NIC does for CHECKSUM_PARTIAL). False if the offsets lie outside
/// the frame.
pub fn complete_checksum(frame: &mut [u8], csum_start: usize, csum_offset: usize) -> bool {
    let at = csum_start + csum_offset;
    if at + 2 > frame.len() {
        return false;
    }
    let sum = !fold(ones_sum(&frame[csum_start..], 0));
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

/// Cuts an Ethernet/IPv4/TCP superframe into segments carrying at most `mss` payload octets
/// each, complete with IPv4 total length, identification (incremented per segment) and
/// header checksum, TCP sequence number, flags (CWR on the first segment only, FIN and PSH
/// on the last only) and TCP checksum. Each segment is passed to `emit` as its headers
/// (Ethernet, IPv4, TCP; built in `headers`) and its payload (a slice of `frame`, not
/// copied), so the caller can send both parts with one gather write; returns how many
/// there were. A frame whose payload fits one segment is emitted once, its checksums
/// completed.
pub fn segment_tcp4(
    frame: &[u8],
    mss: usize,
    headers: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8], &[u8]),
) -> Result<usize, GsoError> {
    if mss == 0 {
        return Err(GsoError::ZeroMss);
    }
    // RFC 791 §3.1 and RFC 9293 §3.1 headers through smoltcp's views; the lengths they
    // read are checked here (the IPv4 total length of a superframe is not relied on).
    let ip = frame
        .get(ETHERNET_HEADER_LEN..)
        .filter(|ip| frame[12..14] == [0x08, 0x00] && ip.len() >= 20)
        .map(Ipv4Packet::new_unchecked)
        .ok_or(GsoError::Malformed)?;
    if ip.version() != 4 || ip.next_header() != IpProtocol::Tcp {
        return Err(GsoError::Malformed);
    }
    let ihl = usize::from(ip.header_len());
    let tcp = frame[ETHERNET_HEADER_LEN..]
        .get(ihl..)
        .filter(|tcp| ihl >= 20 && tcp.len() >= 20)
        .map(TcpPacket::new_unchecked)
        .ok_or(GsoError::Malformed)?;
    let thl = usize::from(tcp.header_len());
    if thl < 20 || frame.len() < ETHERNET_HEADER_LEN + ihl + thl {
        return Err(GsoError::Malformed);
    }
    let header_len = ETHERNET_HEADER_LEN + ihl + thl;
    let payload = &frame[header_len..];
    let seq = tcp.seq_number();
    let (cwr, fin, psh) = (tcp.cwr(), tcp.fin(), tcp.psh());
    let id = ip.ident();
    let count = payload.len().div_ceil(mss).max(1);
    for i in 0..count {
        let chunk = &payload[(i * mss).min(payload.len())..((i + 1) * mss).min(payload.len())];
        headers.clear();
        headers.extend_from_slice(&frame[..header_len]);
        let (eth_ip, tcph) = headers.split_at_mut(ETHERNET_HEADER_LEN + ihl);
        let mut iph = Ipv4Packet::new_unchecked(&mut eth_ip[ETHERNET_HEADER_LEN..]);
        iph.set_total_len((ihl + thl + chunk.len()) as u16);
        iph.set_ident(id.wrapping_add(i as u16));
        iph.set_checksum(0);
        let ip_sum = !fold(ones_sum(&iph.as_ref()[..ihl], 0));
        iph.set_checksum(ip_sum);
        let (src, dst) = (iph.src_addr(), iph.dst_addr());
        let mut seg = TcpPacket::new_unchecked(&mut tcph[..]);
        seg.set_seq_number(seq + i * mss);
        // CWR on the first segment only, FIN and PSH on the last only.
        seg.set_cwr(cwr && i == 0);
        seg.set_fin(fin && i + 1 == count);
        seg.set_psh(psh && i + 1 == count);
        seg.set_checksum(0);
        // RFC 9293 §3.1: the checksum covers the pseudo-header, the TCP header and the data.
        let mut pseudo = [0u8; 12];
        pseudo[..4].copy_from_slice(&src.octets());
        pseudo[4..8].copy_from_slice(&dst.octets());
        pseudo[9] = 6;
        pseudo[10..12].copy_from_slice(&((thl + chunk.len()) as u16).to_be_bytes());
        let sum = !fold(ones_sum(
            chunk,
            ones_sum(seg.as_ref(), ones_sum(&pseudo, 0)),
        ));
        seg.set_checksum(sum);
        emit(headers, chunk);
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP_FIN: u8 = 0x01;
    const TCP_PSH: u8 = 0x08;
    const TCP_CWR: u8 = 0x80;

    fn checksum_ok(data: &[u8], init: u64) -> bool {
        fold(ones_sum(data, init)) == 0xffff
    }

    /// Whether a frame's TCP checksum holds, whatever its header lengths.
    fn tcp_ok(seg: &[u8]) -> bool {
        let ip = &seg[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&ip[12..20]);
        pseudo[9] = 6;
        pseudo[10..12].copy_from_slice(&((ip.len() - ihl) as u16).to_be_bytes());
        checksum_ok(&ip[ihl..], ones_sum(&pseudo, 0))
    }

    /// Whether a segment's IPv4 header checksum and TCP checksum both hold.
    fn segment_ok(seg: &[u8]) -> bool {
        let ihl = usize::from(seg[14] & 0x0f) * 4;
        tcp_ok(seg) && crate::checksum::internet_checksum(&seg[14..14 + ihl]) == 0
    }

    /// Ethernet + IPv4 (id 100) + TCP (seq 1000, `flags`) + payload, checksum partial.
    fn superframe(payload: &[u8], flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let total = (40 + payload.len()) as u16;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 100, 0x40, 0, 64, 6, 0, 0, 10, 1, 0, 2, 10, 1, 0, 3,
        ];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&5000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        f.extend_from_slice(&tcp);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn a_superframe_becomes_complete_segments() {
        let payload: Vec<u8> = (0..3500u32).map(|i| (i % 251) as u8).collect();
        let frame = superframe(&payload, 0x10 | TCP_PSH | TCP_FIN | TCP_CWR);
        let mut segs = Vec::new();
        let n = segment_tcp4(&frame, 1448, &mut Vec::new(), |h, p| {
            segs.push([h, p].concat())
        })
        .unwrap();
        assert_eq!(n, 3);
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let ip = &s[14..];
            assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), ip.len());
            assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 100 + i as u16);
            assert!(checksum_ok(&ip[..20], 0), "IP checksum of segment {i}");
            assert!(tcp_ok(s), "TCP checksum of segment {i}");
            let seq = u32::from_be_bytes([ip[24], ip[25], ip[26], ip[27]]);
            assert_eq!(seq, 1000 + (i * 1448) as u32);
            let flags = ip[33];
            assert_eq!(flags & TCP_CWR != 0, i == 0, "CWR on the first only");
            assert_eq!(
                flags & (TCP_FIN | TCP_PSH) != 0,
                i == 2,
                "FIN/PSH on the last only"
            );
            joined.extend_from_slice(&ip[40..]);
        }
        assert_eq!(joined, payload);
        assert_eq!(segs[2].len(), 14 + 40 + 3500 - 2 * 1448);
    }

    #[test]
    fn a_small_frame_gets_its_checksum_completed_and_garbage_is_refused() {
        let frame = superframe(b"hello", 0x18);
        let mut out = Vec::new();
        assert_eq!(
            segment_tcp4(&frame, 1448, &mut Vec::new(), |h, p| out
                .push([h, p].concat())),
            Ok(1)
        );
        assert!(tcp_ok(&out[0]));
        assert_eq!(
            segment_tcp4(&frame[..30], 1448, &mut Vec::new(), |_, _| {}),
            Err(GsoError::Malformed)
        );
        assert_eq!(
            segment_tcp4(&frame, 0, &mut Vec::new(), |_, _| {}),
            Err(GsoError::ZeroMss)
        );
        let mut udp = frame.clone();
        udp[14 + 9] = 17;
        assert_eq!(
            segment_tcp4(&udp, 1448, &mut Vec::new(), |_, _| {}),
            Err(GsoError::Malformed)
        );
    }

    #[test]
    fn partial_checksums_are_completed() {
        let mut frame = superframe(b"abcdefg", 0x18);
        // Write the pseudo-header sum into the field, as a sender with offload does.
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&frame[26..34]);
        pseudo[9] = 6;
        pseudo[10..12].copy_from_slice(&27u16.to_be_bytes());
        let partial = fold(ones_sum(&pseudo, 0));
        frame[50..52].copy_from_slice(&partial.to_be_bytes());
        assert!(complete_checksum(&mut frame, 34, 16));
        assert!(tcp_ok(&frame));
        assert!(!complete_checksum(&mut frame, 60, 16));
    }

    proptest::proptest! {
        /// A superframe with random bytes overwritten (header lengths, flags, anything) and a
        /// random segment size is segmented or refused, never a panic; when segmented, the
        /// payloads put back together are the superframe's and every segment is complete.
        #[test]
        fn hostile_superframes_are_segmented_or_refused(
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..5000),
            pokes in proptest::collection::vec((0usize..60, proptest::prelude::any::<u8>()), 0..4),
            mss in 0usize..2000,
            cut in 0usize..80,
        ) {
            let mut frame = superframe(&payload, 0x18);
            // An empty payload makes a 54-octet frame: pokes past its end are skipped.
            for (at, byte) in pokes {
                if let Some(slot) = frame.get_mut(at) {
                    *slot = byte;
                }
            }
            if cut < 60 {
                frame.truncate(cut);
            }
            let mut joined = Vec::new();
            let mut whole = true;
            let result = segment_tcp4(&frame, mss, &mut Vec::new(), |h, p| {
                whole &= segment_ok(&[h, p].concat());
                joined.extend_from_slice(p);
            });
            if let Ok(n) = result {
                proptest::prop_assert!(n >= 1);
                let ihl = usize::from(frame[14] & 0x0f) * 4;
                let thl = usize::from(frame[14 + ihl + 12] >> 4) * 4;
                proptest::prop_assert_eq!(&joined[..], &frame[14 + ihl + thl..]);
                proptest::prop_assert!(whole, "a segment with a bad TCP checksum");
            }
            let at = cut;
            let _ = complete_checksum(&mut frame, at, mss % 64);
        }
    }
}
