//! VXLAN tunnel I/O (RFC 7348): the sockets of the daemon's VTEP, encapsulation of frames
//! leaving through a tunnel port, and classification of datagrams arriving on the VXLAN
//! port.
//!
//! Each remote VTEP of an overlay network is a port of that network in the bridge (a
//! "tunnel port"), so learning, flooding (head-end replication: one copy per peer port) and
//! static entries work unchanged; frames written to a tunnel port are wrapped in a VXLAN
//! header and sent to the peer. Frames from a tunnel are never sent into another tunnel
//! (split horizon: every node replicates to all peers itself).
//!
//! Sending uses a pool of UDP sockets bound to ports of the range RFC 7348 §5 recommends for
//! the outer source port; a hash of the inner flow ([`weft_vtep::source_port_for_inner`])
//! picks the socket, so the source port varies with the inner flow and one flow keeps one
//! port. All segments of a TCP superframe leave in one `sendmsg` with UDP segmentation
//! offload. (The outer UDP checksum is therefore computed, which RFC 7348 §5 allows: "SHOULD
//! be transmitted as zero", receivers accept both.) Receiving uses an ordinary UDP socket
//! bound to the VXLAN port.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::ops::Range;
use std::sync::Arc;

use smoltcp::wire::{IpProtocol, Ipv4Packet};
use weft_switch::{DropReason, PortId};
use weft_sys::GsoUdpSocket;
use weft_vtep::{source_port_for_inner, Vni, VxlanError, VxlanHeader, SOURCE_PORT_RANGE};
use weft_wire::checksum::{fold, ones_sum};
use weft_wire::gso::segment_tcp4;

/// Receive and send buffer of the VXLAN sockets (the kernel doubles it).
const TUNNEL_SOCKET_BUF: libc::c_int = 8 << 20;

/// Errors opening the VTEP.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("cannot open the VXLAN socket on UDP port {port}: {source}; another VTEP (a kernel vxlan device or another weft daemon) may use it here: start weft daemon with another --vxlan-port")]
    Bind { port: u16, source: std::io::Error },
    #[error("--advertise {addr} is not an address of this host; start weft daemon with --advertise set to one of its underlay addresses")]
    NotLocal { addr: Ipv4Addr },
    #[error("cannot open the UDP sockets VXLAN packets are sent from: {0}")]
    Raw(std::io::Error),
    #[error("the VXLAN socket is already open on UDP port {open}, not {wanted}")]
    OtherPort { open: u16, wanted: u16 },
}

/// Outer source ports (sending sockets) per VTEP: flows spread over this many.
const SENDERS: usize = 8;
/// Largest run of datagrams sent with one `sendmsg` (the kernel takes at most 64 segments
/// and one UDP datagram's worth, 65 507 octets of payload, so a 64 KiB superframe of
/// 1 450-octet segments takes two).
const MAX_SEGMENTS: usize = 64;
const MAX_GSO_BYTES: usize = 65_000;

/// The daemon's VTEP: where VXLAN datagrams arrive and leave.
#[derive(Debug)]
pub struct VxlanSockets {
    pub recv: GsoUdpSocket,
    senders: Vec<GsoUdpSocket>,
    pub port: u16,
    /// The address datagrams leave from (`--advertise`; unspecified if not given).
    pub local: Ipv4Addr,
}

/// Datagrams of one tunnel send being gathered for one `sendmsg`.
#[derive(Debug, Default)]
pub struct DatagramRun {
    buf: Vec<u8>,
    segment: usize,
    count: usize,
    sender: usize,
    /// The last datagram was shorter than the first: the run must end.
    closed: bool,
}

impl VxlanSockets {
    /// Binds UDP `port` on `local` (all addresses if None) for receiving, and a raw UDP
    /// socket (bound to `local`, so that it is the outer source address) for sending.
    pub fn open(local: Option<Ipv4Addr>, port: u16) -> Result<VxlanSockets, TunnelError> {
        let addr = SocketAddrV4::new(local.unwrap_or(Ipv4Addr::UNSPECIFIED), port);
        let recv = UdpSocket::bind(addr).map_err(|source| match source.raw_os_error() {
            Some(libc::EADDRNOTAVAIL) => TunnelError::NotLocal {
                addr: local.unwrap_or(Ipv4Addr::UNSPECIFIED),
            },
            _ => TunnelError::Bind { port, source },
        })?;
        recv.set_nonblocking(true)
            .map_err(|source| TunnelError::Bind { port, source })?;
        let recv = GsoUdpSocket::from(recv);
        // A burst of segments from a peer must not overflow the default ~200 KiB queue:
        // every datagram lost there is a TCP retransmission inside the tunnel.
        let _ = recv.set_buffers(TUNNEL_SOCKET_BUF);
        // Runs of datagrams from one peer arrive merged (fewer system calls and kernel
        // per-packet work); without it (an old kernel) they arrive one by one.
        let _ = recv.enable_gro();
        let ip = local.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let mut senders = Vec::with_capacity(SENDERS);
        let range = SOURCE_PORT_RANGE;
        let span = u32::from(range.end() - range.start()) + 1;
        // Ports spread over the range from a per-process start; taken ones are skipped.
        let mut candidate = std::process::id() % span;
        for _ in 0..span {
            if senders.len() == SENDERS {
                break;
            }
            let sport = range.start() + candidate as u16;
            candidate = (candidate + 7919) % span;
            if let Ok(s) = UdpSocket::bind(SocketAddrV4::new(ip, sport)) {
                s.set_nonblocking(true).map_err(TunnelError::Raw)?;
                let s = GsoUdpSocket::from(s);
                let _ = s.set_buffers(TUNNEL_SOCKET_BUF);
                senders.push(s);
            }
        }
        if senders.is_empty() {
            return Err(TunnelError::Raw(std::io::ErrorKind::AddrInUse.into()));
        }
        Ok(VxlanSockets {
            recv,
            senders,
            port,
            local: ip,
        })
    }

    /// The sending socket of an inner frame's flow.
    fn sender_for(&self, inner: &[u8]) -> usize {
        usize::from(source_port_for_inner(inner, SOURCE_PORT_RANGE)) % self.senders.len()
    }

    /// Adds `inner` to `run` as one datagram to `remote` in `vni`, sending the run first
    /// when the datagram cannot join it. Returns the bytes sent.
    pub fn push(
        &self,
        run: &mut DatagramRun,
        remote: SocketAddrV4,
        vni: Vni,
        inner: &[u8],
    ) -> std::io::Result<usize> {
        let len = weft_vtep::VXLAN_HEADER_LEN + inner.len();
        let fits = run.count > 0
            && !run.closed
            && len <= run.segment
            && run.count < MAX_SEGMENTS
            && run.buf.len() + len <= MAX_GSO_BYTES;
        let mut sent = 0;
        if !fits {
            sent = self.flush(run, remote)?;
            run.segment = len;
            run.sender = self.sender_for(inner);
        }
        run.closed = len < run.segment;
        run.buf.extend_from_slice(&VxlanHeader::new(vni).to_bytes());
        run.buf.extend_from_slice(inner);
        run.count += 1;
        Ok(sent)
    }

    /// Sends the datagrams gathered in `run` with one system call.
    pub fn flush(&self, run: &mut DatagramRun, remote: SocketAddrV4) -> std::io::Result<usize> {
        if run.count == 0 {
            return Ok(0);
        }
        let segment = if run.count > 1 { run.segment as u16 } else { 0 };
        let socket = &self.senders[run.sender];
        let result = socket.send_segments(&[std::io::IoSlice::new(&run.buf)], remote, segment);
        run.buf.clear();
        run.count = 0;
        run.closed = false;
        result
    }
}

/// Segments of one TCP superframe on their way into a tunnel: the headers of each
/// datagram (VXLAN, Ethernet, IPv4, TCP) gathered in one buffer, the payloads left where
/// they are in the superframe.
#[derive(Debug, Default)]
pub struct SegmentScratch {
    /// One segment's Ethernet/IPv4/TCP headers while [`segment_tcp4`] builds them.
    segment_headers: Vec<u8>,
    /// Every datagram's headers, back to back.
    headers: Vec<u8>,
    /// Per datagram: its headers in `headers`, its payload in the superframe.
    parts: Vec<(Range<usize>, Range<usize>)>,
}

impl VxlanSockets {
    /// Cuts the TCP superframe `frame` into segments of at most `mss` payload octets
    /// ([`segment_tcp4`]) and sends each as a VXLAN datagram to `remote` in `vni`, as few
    /// `sendmsg` calls as UDP segmentation offload allows, gathering headers and payloads
    /// without copying the payload in user space. Returns the bytes sent.
    pub fn send_superframe(
        &self,
        scratch: &mut SegmentScratch,
        remote: SocketAddrV4,
        vni: Vni,
        frame: &[u8],
        mss: usize,
    ) -> Result<usize, SuperframeError> {
        let SegmentScratch {
            segment_headers,
            headers,
            parts,
        } = scratch;
        headers.clear();
        parts.clear();
        let base = frame.as_ptr() as usize;
        let vxlan = VxlanHeader::new(vni).to_bytes();
        segment_tcp4(frame, mss, segment_headers, |h, payload| {
            let start = headers.len();
            headers.extend_from_slice(&vxlan);
            headers.extend_from_slice(h);
            let offset = payload.as_ptr() as usize - base;
            parts.push((start..headers.len(), offset..offset + payload.len()));
        })
        .map_err(SuperframeError::Segment)?;
        let socket = &self.senders[self.sender_for(frame)];
        let mut iov = [std::io::IoSlice::new(&[]); 2 * MAX_SEGMENTS];
        let mut sent = 0;
        let mut next = 0;
        while next < parts.len() {
            let datagram = |i: usize| parts[i].0.len() + parts[i].1.len();
            let segment = datagram(next);
            let (mut count, mut bytes) = (0, 0);
            while next + count < parts.len()
                && count < MAX_SEGMENTS
                && bytes + datagram(next + count) <= MAX_GSO_BYTES
                && (count == 0 || datagram(next + count - 1) == segment)
            {
                let (h, p) = &parts[next + count];
                iov[2 * count] = std::io::IoSlice::new(&headers[h.clone()]);
                iov[2 * count + 1] = std::io::IoSlice::new(&frame[p.clone()]);
                bytes += datagram(next + count);
                count += 1;
            }
            if count == 0 {
                // One datagram larger than a run may be (a segment size near 64 KiB):
                // refuse rather than send nothing forever.
                return Err(SuperframeError::TooLarge { sent });
            }
            let segment = if count > 1 { segment as u16 } else { 0 };
            sent += socket
                .send_segments(&iov[..2 * count], remote, segment)
                .map_err(|source| SuperframeError::Send { sent, source })?;
            next += count;
        }
        Ok(sent)
    }
}

/// Why a superframe did not (wholly) reach the tunnel.
#[derive(Debug, thiserror::Error)]
pub enum SuperframeError {
    #[error("cannot segment the superframe: {0}")]
    Segment(weft_wire::gso::GsoError),
    /// `sent` octets (earlier sends of the same superframe) did leave.
    #[error("sending to the peer failed after {sent} bytes: {source}")]
    Send { sent: usize, source: std::io::Error },
    /// A segment too large for one datagram (after `sent` octets).
    #[error("a segment does not fit one VXLAN datagram (after {sent} bytes)")]
    TooLarge { sent: usize },
}

/// Where a tunnel port's frames go.
#[derive(Debug, Clone)]
pub struct TunnelOut {
    pub remote: SocketAddrV4,
    pub vni: Vni,
    pub sockets: Arc<VxlanSockets>,
}

/// Which peer port a datagram belongs to: (peer address, VNI) -> port, and the VNIs in use.
#[derive(Debug, Default)]
pub struct TunnelTable {
    by_peer: HashMap<(Ipv4Addr, u32), PortId>,
    vnis: HashSet<u32>,
}

impl TunnelTable {
    pub fn add_vni(&mut self, vni: Vni) {
        self.vnis.insert(vni.get());
    }

    pub fn remove_vni(&mut self, vni: Vni) {
        self.vnis.remove(&vni.get());
        self.by_peer.retain(|(_, v), _| *v != vni.get());
    }

    pub fn add_peer(&mut self, peer: Ipv4Addr, vni: Vni, port: PortId) {
        self.by_peer.insert((peer, vni.get()), port);
    }

    pub fn remove_port(&mut self, port: PortId) {
        self.by_peer.retain(|_, p| *p != port);
    }

    /// Classifies a datagram from `src` (the VXLAN header and inner frame): the peer port it
    /// came through and where the inner frame lies, or why it is dropped. Pure.
    pub fn classify(
        &self,
        src: Ipv4Addr,
        datagram: &[u8],
    ) -> Result<(PortId, Range<usize>), DropReason> {
        let (header, inner) = match VxlanHeader::decode_strict(datagram) {
            Ok(ok) => ok,
            Err(VxlanError::InnerFrameTruncated { .. }) => return Err(DropReason::Runt),
            Err(_) => return Err(DropReason::VxlanBadHeader),
        };
        let vni = header.vni.get();
        if !self.vnis.contains(&vni) {
            return Err(DropReason::VxlanUnknownVni);
        }
        let port = *self
            .by_peer
            .get(&(src, vni))
            .ok_or(DropReason::VxlanNotPeer)?;
        let start = datagram.len() - inner.len();
        Ok((port, start..datagram.len()))
    }
}

/// Where the TCP or UDP checksum of an inner IPv4 frame lies (offset of the L4 header, offset
/// of the field in it) if it was left *partial* by its sender: the field holds just the
/// pseudo-header sum (RFC 9293 §3.1, RFC 768), as a Linux `vxlan` device on a veth underlay
/// sends it (checksum offload that nothing on the way completes). The frame is then
/// delivered with the checksum marked for completion (CHECKSUM_PARTIAL) rather than as
/// corrupt. A complete checksum costs one comparison; only a field equal to the
/// pseudo-header sum is verified in full.
pub fn partial_l4_checksum(frame: &[u8]) -> Option<(u16, u16)> {
    const ETH: usize = 14;
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    // RFC 791 §3.1 through smoltcp's checked view (IHL and total length checked).
    let ip = Ipv4Packet::new_checked(&frame[ETH..]).ok()?;
    let header_len = usize::from(ip.header_len());
    // Fragments carry no (whole) L4 header.
    if ip.version() != 4 || header_len < 20 || ip.more_frags() || ip.frag_offset() != 0 {
        return None;
    }
    // The checksum field's offset in the TCP (RFC 9293 §3.1) or UDP (RFC 768) header.
    let (protocol, field) = match ip.next_header() {
        IpProtocol::Tcp => (6u8, 16),
        IpProtocol::Udp => (17u8, 6),
        _ => return None,
    };
    let l4 = &frame[ETH + header_len..ETH + usize::from(ip.total_len())];
    if l4.len() < field + 2 {
        return None;
    }
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&ip.src_addr().octets());
    pseudo[4..8].copy_from_slice(&ip.dst_addr().octets());
    pseudo[9] = protocol;
    pseudo[10..12].copy_from_slice(&(l4.len() as u16).to_be_bytes());
    let pseudo_sum = ones_sum(&pseudo, 0);
    let stored = u16::from_be_bytes([l4[field], l4[field + 1]]);
    if stored != fold(pseudo_sum) {
        return None;
    }
    // Complete after all? (A checksum that happens to equal the pseudo-header sum.)
    if !fold(ones_sum(l4, pseudo_sum)) == 0 {
        return None;
    }
    Some(((ETH + header_len) as u16, field as u16))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(flags: u8, vni: u32, inner_len: usize) -> Vec<u8> {
        let v = vni.to_be_bytes();
        let mut d = vec![flags, 0, 0, 0, v[1], v[2], v[3], 0];
        d.extend(std::iter::repeat_n(0xab, inner_len));
        d
    }

    /// Ethernet + IPv4 (10.1.0.2 > 10.1.0.3) + TCP (seq 7000) + `payload`.
    fn tcp_superframe(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 3, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        let total = (40 + payload.len()).min(65535) as u16;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 9, 0x40, 0, 64, 6, 0, 0, 10, 1, 0, 2, 10, 1, 0, 3,
        ];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&5000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&7000u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        f.extend_from_slice(&tcp);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn a_superframe_leaves_as_complete_vxlan_datagrams_and_an_oversized_segment_is_refused() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let std::net::SocketAddr::V4(remote) = rx.local_addr().unwrap() else {
            unreachable!("bound to an IPv4 address")
        };
        let sockets = VxlanSockets::open(Some(Ipv4Addr::LOCALHOST), 0).unwrap();
        let vni = Vni::new(4242).unwrap();
        let payload: Vec<u8> = (0..4000u32).map(|i| (i % 253) as u8).collect();
        let frame = tcp_superframe(&payload);
        let mut scratch = SegmentScratch::default();
        let sent = sockets
            .send_superframe(&mut scratch, remote, vni, &frame, 1400)
            .unwrap();
        // Three datagrams (1400 + 1400 + 1200 payload octets), each a VXLAN header and a
        // complete segment with its own sequence number and a valid TCP checksum.
        let mut joined = Vec::new();
        let mut received = 0;
        let mut buf = [0u8; 2000];
        for i in 0..3u32 {
            let n = rx.recv(&mut buf).unwrap();
            received += n;
            let (header, inner) = VxlanHeader::decode_strict(&buf[..n]).unwrap();
            assert_eq!(header.vni, vni);
            let seg = inner;
            assert_eq!(
                &seg[..14],
                &frame[..14],
                "the Ethernet header of the superframe"
            );
            let ip = &seg[14..];
            assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), ip.len());
            assert_eq!(weft_wire::internet_checksum(&ip[..20]), 0, "IPv4 checksum");
            let seq = u32::from_be_bytes([ip[24], ip[25], ip[26], ip[27]]);
            assert_eq!(seq, 7000 + i * 1400);
            let mut pseudo = ip[12..20].to_vec();
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&((ip.len() - 20) as u16).to_be_bytes());
            pseudo.extend_from_slice(&ip[20..]);
            assert_eq!(weft_wire::internet_checksum(&pseudo), 0, "TCP checksum");
            joined.extend_from_slice(&ip[40..]);
        }
        assert_eq!(joined, payload, "the payload, in order, once");
        assert_eq!(received, sent, "the bytes reported are the bytes sent");

        // A segment larger than one datagram may carry is refused, not sent forever.
        let big = tcp_superframe(&vec![1u8; 65_100]);
        match sockets.send_superframe(&mut scratch, remote, vni, &big, 65_000) {
            Err(SuperframeError::TooLarge { sent: 0 }) => {}
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn partial_checksums_are_recognised_and_complete_ones_left_alone() {
        // Ethernet + IPv4 + TCP header + 4 bytes, TCP checksum field = pseudo-header sum.
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut ip = vec![
            0x45, 0, 0, 44, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let sum = weft_wire::internet_checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut tcp = vec![0u8; 20];
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        f.extend_from_slice(&tcp);
        f.extend_from_slice(b"data");
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&f[26..34]);
        pseudo[9] = 6;
        pseudo[10..12].copy_from_slice(&24u16.to_be_bytes());
        let partial = !weft_wire::internet_checksum(&pseudo);
        f[50..52].copy_from_slice(&partial.to_be_bytes());
        assert_eq!(partial_l4_checksum(&f), Some((34, 16)));
        // Completed: left alone.
        assert!(weft_wire::gso::complete_checksum(&mut f, 34, 16));
        assert_eq!(partial_l4_checksum(&f), None);
        // Corrupt (neither complete nor the pseudo-header sum): left for the receiver to drop.
        f[52] ^= 0xff;
        assert_eq!(partial_l4_checksum(&f), None);
        assert_eq!(partial_l4_checksum(&f[..20]), None);
    }

    #[test]
    fn datagrams_are_accepted_from_peers_of_their_vni_only() {
        let mut t = TunnelTable::default();
        let peer = Ipv4Addr::new(10, 0, 0, 2);
        let stranger = Ipv4Addr::new(10, 0, 0, 9);
        t.add_vni(Vni::new(42).unwrap());
        t.add_vni(Vni::new(43).unwrap());
        t.add_peer(peer, Vni::new(42).unwrap(), PortId(7));
        assert_eq!(
            t.classify(peer, &datagram(0x08, 42, 60)),
            Ok((PortId(7), 8..68))
        );
        assert_eq!(
            t.classify(stranger, &datagram(0x08, 42, 60)),
            Err(DropReason::VxlanNotPeer)
        );
        assert_eq!(
            t.classify(peer, &datagram(0x08, 43, 60)),
            Err(DropReason::VxlanNotPeer),
            "a peer of VNI 42 is not a peer of VNI 43"
        );
        assert_eq!(
            t.classify(peer, &datagram(0x08, 99, 60)),
            Err(DropReason::VxlanUnknownVni)
        );
        assert_eq!(
            t.classify(peer, &datagram(0x0c, 42, 60)),
            Err(DropReason::VxlanBadHeader)
        );
        assert_eq!(
            t.classify(peer, &datagram(0x00, 42, 60)),
            Err(DropReason::VxlanBadHeader)
        );
        assert_eq!(
            t.classify(peer, &datagram(0x08, 42, 10)),
            Err(DropReason::Runt)
        );
        assert_eq!(
            t.classify(peer, &[0x08, 0]),
            Err(DropReason::VxlanBadHeader)
        );
        t.remove_port(PortId(7));
        assert_eq!(
            t.classify(peer, &datagram(0x08, 42, 60)),
            Err(DropReason::VxlanNotPeer)
        );
        t.remove_vni(Vni::new(42).unwrap());
        assert_eq!(
            t.classify(peer, &datagram(0x08, 42, 60)),
            Err(DropReason::VxlanUnknownVni)
        );
    }

    proptest::proptest! {
        /// Whatever arrives on the VXLAN port is classified (or refused) without a panic,
        /// and an accepted datagram's inner frame lies inside it.
        #[test]
        fn arbitrary_datagrams_are_classified_without_panic(
            datagram in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            flags_ok in proptest::prelude::any::<bool>(),
        ) {
            let mut table = TunnelTable::default();
            table.add_vni(Vni::new(42).unwrap());
            table.add_peer(Ipv4Addr::new(10, 0, 0, 2), Vni::new(42).unwrap(), PortId(3));
            let mut d = datagram;
            if flags_ok && d.len() >= 8 {
                d[..8].copy_from_slice(&VxlanHeader::new(Vni::new(42).unwrap()).to_bytes());
            }
            if let Ok((port, inner)) = table.classify(Ipv4Addr::new(10, 0, 0, 2), &d) {
                proptest::prop_assert_eq!(port, PortId(3));
                proptest::prop_assert!(inner.end <= d.len());
                let _ = partial_l4_checksum(&d[inner]);
            }
            let _ = partial_l4_checksum(&d);
        }
    }
}
