//! Merges the TCP segments the gateway's stack sends to a container into GSO superframes.
//!
//! smoltcp sends segments of at most the container's MSS (1460 octets on a 1500 MTU). Written
//! to a TAP one by one, each costs a syscall and a trip through the container's TCP. Runs of
//! consecutive segments of one connection (same addresses, ports, acknowledgment and header
//! length, contiguous sequence numbers, plain ACK/PSH) are instead written as one frame of up
//! to 64 KiB with a `virtio_net_hdr` asking for TCPv4 GSO and checksum offload — the frames a
//! container's own kernel hands weft with TSO on (the receiving kernel never even segments them
//! for local delivery). Pure byte work, no I/O.
//!
//! Every packet here is `headroom` octets (room for the virtio_net_hdr and Ethernet header)
//! followed by an IPv4 packet.

use smoltcp::wire::{IpProtocol, Ipv4Packet, TcpPacket};

use crate::vnet::{VnetHdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, VNET_HDR_LEN};

const ETHERNET_HEADER_LEN: usize = 14;
const TCP_FLAG_PSH: u8 = 0x08;
const TCP_FLAG_ACK: u8 = 0x10;
/// Largest IPv4 packet (total length is 16 bits).
const MAX_IP_LEN: usize = 65535;
/// Emptied buffers [`Coalescer::push`] hands back at most.
pub const SPARE_BUFFERS: usize = 64;

/// What merging needs of one TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    /// IPv4 header length, TCP header length.
    ihl: usize,
    thl: usize,
    /// Source and destination address and port.
    flow: [u8; 12],
    seq: u32,
    ack: u32,
    flags: u8,
    payload: usize,
}

/// Reads one TCP segment's headers (RFC 791 §3.1, RFC 9293 §3.1) through smoltcp's checked
/// views; None for anything that is not a whole, unfragmented IPv4/TCP packet.
fn segment(ip: &[u8]) -> Option<Segment> {
    let packet = Ipv4Packet::new_checked(ip).ok()?;
    let ihl = usize::from(packet.header_len());
    if packet.version() != 4 || ihl < 20 || packet.next_header() != IpProtocol::Tcp {
        return None;
    }
    // Fragments never merge; nor does a packet with octets past its total length.
    if usize::from(packet.total_len()) != ip.len()
        || packet.more_frags()
        || packet.frag_offset() != 0
    {
        return None;
    }
    let tcp = TcpPacket::new_checked(&ip[ihl..]).ok()?;
    let thl = usize::from(tcp.header_len());
    let mut flow = [0u8; 12];
    flow[..4].copy_from_slice(&packet.src_addr().octets());
    flow[4..8].copy_from_slice(&packet.dst_addr().octets());
    flow[8..10].copy_from_slice(&tcp.src_port().to_be_bytes());
    flow[10..].copy_from_slice(&tcp.dst_port().to_be_bytes());
    // The flags octet (RFC 9293 §3.1), compared whole: CWR, ECE, URG, ACK, PSH, RST, SYN, FIN.
    let flags = ip[ihl + 13];
    Some(Segment {
        ihl,
        thl,
        flow,
        // Sequence numbers wrap (RFC 9293 §3.4): their bits, unsigned.
        seq: tcp.seq_number().0 as u32,
        ack: tcp.ack_number().0 as u32,
        flags,
        payload: ip.len() - ihl - thl,
    })
}

/// What [`Coalescer::offer`] did with a packet.
enum Offer {
    /// Its payload joined the superframe being built.
    Merged,
    /// It starts a new one: a data segment, or (None) a packet that passes on by itself.
    Starts(Option<Segment>),
}

/// Whether the TCP checksum of the IPv4 packet `ip` (a segment, not a superframe) is right
/// (RFC 9293 §3.1: over the pseudo-header, the header and the data), and its IPv4 header
/// checksum (RFC 791). A merged superframe
/// leaves with the checksum marked as the hardware's to do (`NEEDS_CSUM`), so the receiving
/// kernel never checks the segments it was made of; whoever merges segments that came over a
/// wire checks them first.
pub fn tcp_checksum_ok(ip: &[u8]) -> bool {
    let Ok(packet) = Ipv4Packet::new_checked(ip) else {
        return false;
    };
    let ihl = usize::from(packet.header_len());
    let total = usize::from(packet.total_len());
    if ihl < 20 || total < ihl + 20 {
        return false;
    }
    // Ethernet pads short frames; the segment ends where IPv4 says.
    let tcp = &ip[ihl..total];
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&packet.src_addr().octets());
    pseudo[4..8].copy_from_slice(&packet.dst_addr().octets());
    pseudo[9] = 6;
    let Ok(len) = u16::try_from(tcp.len()) else {
        return false;
    };
    pseudo[10..12].copy_from_slice(&len.to_be_bytes());
    let sum = crate::checksum::ones_sum(tcp, crate::checksum::ones_sum(&pseudo, 0));
    // The IPv4 header too: merging recomputes it from the first segment's fields.
    crate::checksum::fold(sum) == 0xffff && crate::checksum::internet_checksum(&ip[..ihl]) == 0
}

/// A superframe being built from consecutive segments.
#[derive(Debug)]
pub struct Coalescer {
    headroom: usize,
    packet: Vec<u8>,
    first: Option<Segment>,
    next_seq: u32,
    segments: usize,
    psh: bool,
    /// The last segment was shorter than the first: nothing may follow it.
    closed: bool,
}

impl Coalescer {
    pub fn new(headroom: usize) -> Coalescer {
        assert!(headroom >= VNET_HDR_LEN + ETHERNET_HEADER_LEN);
        Coalescer {
            headroom,
            packet: Vec::new(),
            first: None,
            next_seq: 0,
            segments: 0,
            psh: false,
            closed: true,
        }
    }

    /// Offers the next packet. Returns the finished superframe (or single packet) that the
    /// offered one could not join, if any; the offered packet is kept either way. A packet
    /// that joins the superframe being built leaves its (emptied) buffer in `spare`, for the
    /// caller to reuse, if `spare` holds fewer than [`SPARE_BUFFERS`].
    pub fn push(&mut self, packet: Vec<u8>, spare: &mut Vec<Vec<u8>>) -> Option<Vec<u8>> {
        match self.offer(&packet) {
            Offer::Merged => {
                if spare.len() < SPARE_BUFFERS {
                    let mut emptied = packet;
                    emptied.clear();
                    spare.push(emptied);
                }
                None
            }
            Offer::Starts(segment) => {
                let done = self.finish();
                self.begin(segment, packet, false);
                done
            }
        }
    }

    /// Like [`Coalescer::push`] for a packet the caller keeps (a datagram in its receive
    /// buffer): a segment that joins the superframe costs one copy of its payload, and a
    /// packet that starts a new one is copied into a buffer taken from `spare`.
    pub fn push_slice(&mut self, packet: &[u8], spare: &mut Vec<Vec<u8>>) -> Option<Vec<u8>> {
        match self.offer(packet) {
            Offer::Merged => None,
            Offer::Starts(segment) => {
                let done = self.finish();
                let mut buffer = spare.pop().unwrap_or_default();
                buffer.clear();
                buffer.extend_from_slice(packet);
                self.begin(segment, buffer, true);
                done
            }
        }
    }

    /// Appends `packet`'s payload to the superframe being built if it continues it.
    fn offer(&mut self, packet: &[u8]) -> Offer {
        let seg = packet.get(self.headroom..).and_then(segment);
        let data_segment = seg.filter(|s| s.payload > 0 && s.flags & !TCP_FLAG_PSH == TCP_FLAG_ACK);
        if let (Some(first), Some(next)) = (self.first, data_segment) {
            let fits = self.packet.len() - self.headroom + next.payload <= MAX_IP_LEN;
            if !self.closed
                && fits
                && next.flow == first.flow
                && next.ack == first.ack
                && next.thl == first.thl
                && next.ihl == first.ihl
                && next.seq == self.next_seq
                && next.payload <= first.payload
                && self.same_headers(packet, &first)
            {
                let start = self.headroom + next.ihl + next.thl;
                self.packet.extend_from_slice(&packet[start..]);
                self.next_seq = next.seq.wrapping_add(next.payload as u32);
                self.segments += 1;
                self.psh |= next.flags & TCP_FLAG_PSH != 0;
                // The window of the newest segment is the freshest.
                let window_at = self.headroom + first.ihl + 14;
                self.packet[window_at..window_at + 2]
                    .copy_from_slice(&packet[window_at..window_at + 2]);
                self.closed = next.payload < first.payload;
                return Offer::Merged;
            }
        }
        Offer::Starts(data_segment)
    }

    /// Whether `packet` carries what the superframe's first segment does in every header
    /// field a merge keeps from the first: the Ethernet header, TOS, TTL and DF, IPv4 and
    /// TCP options (timestamps included), as Linux's GRO requires.
    fn same_headers(&self, packet: &[u8], first: &Segment) -> bool {
        let eth = self.headroom - ETHERNET_HEADER_LEN..self.headroom;
        let ip = self.headroom;
        let options = ip + 20..ip + first.ihl;
        let tcp_options = ip + first.ihl + 20..ip + first.ihl + first.thl;
        let (a, b) = (&self.packet, packet);
        a[eth.clone()] == b[eth]
            && a[ip + 1] == b[ip + 1]
            && a[ip + 8] == b[ip + 8]
            && a[ip + 6] & 0x40 == b[ip + 6] & 0x40
            && a[options.clone()] == b[options]
            && a[tcp_options.clone()] == b[tcp_options]
    }

    /// Starts building from `packet` (the previous superframe is finished): a data segment
    /// others may join, or (None) a packet that passes on by itself. `reserve`: make room for
    /// a whole superframe now (a pooled buffer, reused for many), not as segments join.
    fn begin(&mut self, segment: Option<Segment>, packet: Vec<u8>, reserve: bool) {
        self.packet = packet;
        self.segments = 1;
        match segment {
            Some(s) => {
                self.first = Some(s);
                self.next_seq = s.seq.wrapping_add(s.payload as u32);
                self.psh = s.flags & TCP_FLAG_PSH != 0;
                self.closed = false;
                // Room for the whole superframe at once, not a reallocation per doubling.
                if reserve {
                    let full = self.headroom + MAX_IP_LEN;
                    self.packet.reserve(full.saturating_sub(self.packet.len()));
                }
            }
            None => {
                // Not mergeable (a SYN, FIN, pure ACK, not TCP).
                self.first = None;
                self.closed = true;
            }
        }
    }

    /// The packet being built, finished: a single packet as it came (plain virtio_net_hdr),
    /// several as one GSO superframe.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.segments == 0 {
            return None;
        }
        let mut packet = std::mem::take(&mut self.packet);
        let segments = std::mem::replace(&mut self.segments, 0);
        let first = self.first.take();
        self.closed = true;
        let vnet = self.headroom - ETHERNET_HEADER_LEN - VNET_HDR_LEN;
        let Some(first) = first.filter(|_| segments > 1) else {
            // A packet too short to hold even the header passes on as it came (the caller
            // drops it as malformed); it must not panic the offload.
            if let Some(hdr) = packet.get_mut(vnet..vnet + VNET_HDR_LEN) {
                VnetHdr::default().write(hdr);
            }
            return Some(packet);
        };
        let ip_start = self.headroom;
        let ip_len = packet.len() - ip_start;
        let (ihl, thl) = (first.ihl, first.thl);
        {
            let ip = &mut packet[ip_start..];
            ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
            ip[10..12].fill(0);
            let sum = crate::checksum::internet_checksum(&ip[..ihl]);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            let tcp_len = ip_len - ihl;
            if self.psh {
                ip[ihl + 13] |= TCP_FLAG_PSH;
            }
            // With NEEDS_CSUM the checksum field holds the pseudo-header sum (RFC 9293
            // §3.1), folded but not complemented; the receiver's kernel completes it.
            let mut pseudo = [0u8; 12];
            pseudo[..8].copy_from_slice(&ip[12..20]);
            pseudo[9] = 6;
            pseudo[10..12].copy_from_slice(&(tcp_len as u16).to_be_bytes());
            let partial = !crate::checksum::internet_checksum(&pseudo);
            ip[ihl + 16..ihl + 18].copy_from_slice(&partial.to_be_bytes());
        }
        VnetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
            hdr_len: (ETHERNET_HEADER_LEN + ihl + thl) as u16,
            gso_size: first.payload as u16,
            csum_start: (ETHERNET_HEADER_LEN + ihl) as u16,
            csum_offset: 16,
        }
        .write(&mut packet[vnet..]);
        Some(packet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADROOM: usize = VNET_HDR_LEN + ETHERNET_HEADER_LEN;

    /// HEADROOM + an IPv4/TCP segment with valid checksums.
    fn seg(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; HEADROOM];
        let total = 20 + 20 + payload.len();
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        let sum = crate::checksum::internet_checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&80u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&40000u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&7u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        tcp[14..16].copy_from_slice(&1000u16.to_be_bytes());
        p.extend_from_slice(&ip);
        p.extend_from_slice(&tcp);
        p.extend_from_slice(payload);
        p
    }

    fn run(packets: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut c = Coalescer::new(HEADROOM);
        let mut spare = Vec::new();
        let count = packets.len();
        let copies = packets.clone();
        let mut out: Vec<Vec<u8>> = packets
            .into_iter()
            .filter_map(|p| c.push(p, &mut spare))
            .collect();
        out.extend(c.finish());
        // Every packet is either in the output or was merged and handed back empty.
        assert!(spare.iter().all(Vec::is_empty));
        assert_eq!(
            out.len() + spare.len(),
            count.min(out.len() + SPARE_BUFFERS)
        );
        // The same packets offered as borrowed slices give the same frames.
        assert_eq!(run_slices(&copies), out);
        out
    }

    /// The packets through [`Coalescer::push_slice`], then what is left.
    fn run_slices(packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut c = Coalescer::new(HEADROOM);
        let mut buffers = Vec::new();
        let mut out: Vec<Vec<u8>> = packets
            .iter()
            .filter_map(|p| c.push_slice(p, &mut buffers))
            .collect();
        out.extend(c.finish());
        out
    }

    /// The checksum field of a finished superframe holds the pseudo-header sum that the
    /// receiving kernel completes (CHECKSUM_PARTIAL).
    fn holds_pseudo_header_sum(p: &[u8]) -> bool {
        let ip = &p[HEADROOM..];
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&ip[12..20]);
        pseudo[9] = 6;
        pseudo[10..12].copy_from_slice(&((ip.len() - 20) as u16).to_be_bytes());
        let partial = u16::from_be_bytes([ip[36], ip[37]]);
        partial == !crate::checksum::internet_checksum(&pseudo)
    }

    #[test]
    fn consecutive_full_segments_become_one_gso_superframe() {
        let a = vec![1u8; 1000];
        let b = vec![2u8; 1000];
        let c = vec![3u8; 400];
        let out = run(vec![
            seg(100, TCP_FLAG_ACK, &a),
            seg(1100, TCP_FLAG_ACK, &b),
            seg(2100, TCP_FLAG_ACK | TCP_FLAG_PSH, &c),
        ]);
        assert_eq!(out.len(), 1);
        let p = &out[0];
        let hdr = VnetHdr::parse(p).unwrap();
        assert_eq!(hdr.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
        assert_eq!(hdr.gso_size, 1000);
        assert_eq!(hdr.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
        assert_eq!((hdr.csum_start, hdr.csum_offset, hdr.hdr_len), (34, 16, 54));
        let ip = &p[HEADROOM..];
        assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), 40 + 2400);
        assert_eq!(
            crate::checksum::internet_checksum(&ip[..20]),
            0,
            "IP checksum"
        );
        assert_eq!(&ip[40..1040], &a[..]);
        assert_eq!(&ip[2040..], &c[..]);
        assert_ne!(ip[33] & TCP_FLAG_PSH, 0, "PSH of the last segment is kept");
        assert!(holds_pseudo_header_sum(p));
    }

    #[test]
    fn gaps_other_flows_and_control_segments_are_not_merged() {
        let d = vec![9u8; 500];
        // A sequence gap, a FIN, a pure ACK, a longer segment after a shorter one.
        let out = run(vec![
            seg(0, TCP_FLAG_ACK, &d),
            seg(600, TCP_FLAG_ACK, &d),
            seg(1100, TCP_FLAG_ACK | 0x01, &d),
            seg(1600, TCP_FLAG_ACK, &[]),
            seg(1600, TCP_FLAG_ACK, &d[..100]),
            seg(1700, TCP_FLAG_ACK, &d[..200]),
        ]);
        assert_eq!(out.len(), 6, "nothing here may merge");
        for p in &out {
            assert_eq!(VnetHdr::parse(p).unwrap(), VnetHdr::default());
        }
        // A different port pair interrupts a run.
        let mut other = seg(500, TCP_FLAG_ACK, &d);
        other[HEADROOM + 20] = 0x99;
        let out = run(vec![
            seg(0, TCP_FLAG_ACK, &d),
            other,
            seg(1000, TCP_FLAG_ACK, &d),
        ]);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn superframes_stay_within_one_ipv4_packet() {
        let d = vec![5u8; 1460];
        let packets: Vec<Vec<u8>> = (0..100u32)
            .map(|i| seg(i * 1460, TCP_FLAG_ACK, &d))
            .collect();
        let out = run(packets);
        assert!(out.len() >= 3);
        let mut total = 0;
        for p in &out {
            let ip_len = p.len() - HEADROOM;
            assert!(ip_len <= MAX_IP_LEN);
            total += ip_len - 40;
        }
        assert_eq!(total, 100 * 1460, "no payload lost or duplicated");
    }

    /// `p` (a segment from [`seg`]) with its TCP checksum filled in.
    fn checksummed(mut p: Vec<u8>) -> Vec<u8> {
        let ip = &p[HEADROOM..];
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&ip[12..20]);
        pseudo[9] = 6;
        pseudo[10..12].copy_from_slice(&((ip.len() - 20) as u16).to_be_bytes());
        let mut whole = pseudo.to_vec();
        whole.extend_from_slice(&ip[20..]);
        let sum = crate::checksum::internet_checksum(&whole);
        p[HEADROOM + 36..HEADROOM + 38].copy_from_slice(&sum.to_be_bytes());
        p
    }

    #[test]
    fn tcp_checksums_are_checked_up_to_the_ipv4_length() {
        let good = checksummed(seg(100, TCP_FLAG_ACK, &[7u8; 333]));
        assert!(tcp_checksum_ok(&good[HEADROOM..]));
        // Ethernet padding after the IPv4 packet does not count.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0xaa; 6]);
        assert!(tcp_checksum_ok(&padded[HEADROOM..]));
        let mut bad = good.clone();
        bad[HEADROOM + 100] ^= 0x40;
        assert!(!tcp_checksum_ok(&bad[HEADROOM..]));
        let mut bad_ttl = good.clone();
        bad_ttl[HEADROOM + 8] ^= 0x01;
        assert!(
            !tcp_checksum_ok(&bad_ttl[HEADROOM..]),
            "IPv4 header checksum"
        );
        assert!(!tcp_checksum_ok(&good[HEADROOM..HEADROOM + 30]));
        assert!(!tcp_checksum_ok(&[]));
    }

    #[test]
    fn segments_that_differ_in_kept_headers_are_not_merged() {
        let d = vec![1u8; 500];
        let mut ttl = seg(500, TCP_FLAG_ACK, &d);
        ttl[HEADROOM + 8] = 1;
        let mut tos = seg(500, TCP_FLAG_ACK, &d);
        tos[HEADROOM + 1] = 0x10;
        let mut mac = seg(500, TCP_FLAG_ACK, &d);
        mac[HEADROOM - 14] = 0x02;
        for other in [ttl, tos, mac] {
            let out = run(vec![seg(0, TCP_FLAG_ACK, &d), other]);
            assert_eq!(out.len(), 2, "a differing header must not merge");
        }
        // Identical ones do.
        let out = run(vec![seg(0, TCP_FLAG_ACK, &d), seg(500, TCP_FLAG_ACK, &d)]);
        assert_eq!(out.len(), 1);
    }

    proptest::proptest! {
        /// Hostile input: segments of one flow with random bytes overwritten, random
        /// lengths and random garbage never panic the offload, and every payload octet that
        /// goes in comes out exactly once.
        #[test]
        fn hostile_segments_never_panic_and_lose_nothing(
            mss in 1usize..300,
            packets in proptest::collection::vec(
                (proptest::prelude::any::<bool>(), 0usize..300,
                 proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 0..3),
                 0usize..400),
                0..24)
        ) {
            // Mostly a contiguous run of full segments (which merge), some of another length,
            // then random bytes overwritten and some cut short.
            let mut seq = 0u32;
            let built: Vec<Vec<u8>> = packets
                .iter()
                .map(|(full, len, pokes, cut)| {
                    let len = if *full { mss } else { *len };
                    let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31)).collect();
                    let mut p = seg(seq, TCP_FLAG_ACK, &payload);
                    seq = seq.wrapping_add(len as u32);
                    for &(at, byte) in pokes {
                        if at < p.len() && at % 5 == 0 {
                            p[at] = byte;
                        }
                    }
                    if *cut < p.len() && cut % 7 == 0 {
                        p.truncate(*cut);
                    }
                    p
                })
                .collect();
            let out = run_slices(&built);
            // Conservation: every packet comes out whole or inside a superframe. A superframe
            // of k segments (k-1 of exactly gso_size payload octets, the last no longer)
            // stands for k packets and lacks the headroom and headers of k-1 of them.
            let mut packets_out = 0usize;
            let mut octets_out = 0usize;
            for p in &out {
                packets_out += 1;
                octets_out += p.len();
                let Some(hdr) = VnetHdr::parse(p).filter(|h| h.gso_type != 0) else {
                    // A packet on its own comes out as one of those that went in.
                    proptest::prop_assert!(built.iter().any(|b| b[VNET_HDR_LEN.min(b.len())..] == p[VNET_HDR_LEN.min(p.len())..]));
                    continue;
                };
                proptest::prop_assert!(p.len() - HEADROOM <= MAX_IP_LEN);
                proptest::prop_assert!(holds_pseudo_header_sum(p));
                let headers = usize::from(hdr.hdr_len) - ETHERNET_HEADER_LEN;
                let payload = p.len() - HEADROOM - headers;
                let k = payload.div_ceil(usize::from(hdr.gso_size));
                proptest::prop_assert!(k >= 2, "a superframe of one segment");
                packets_out += k - 1;
                octets_out += (k - 1) * (HEADROOM + headers);
            }
            proptest::prop_assert_eq!(packets_out, built.len());
            let octets_in: usize = built.iter().map(Vec::len).sum();
            proptest::prop_assert_eq!(octets_out, octets_in);
        }
    }
}
