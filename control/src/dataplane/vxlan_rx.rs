//! The VXLAN receive path: datagrams from the VTEP socket, checked against the tunnel table,
//! their inner frames forwarded as received on the peer's tunnel port, consecutive TCP
//! segments merged into superframes first (receive offload).

use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;

use weft_switch::PortId;
use weft_wire::coalesce::Coalescer;
use weft_wire::{VnetHdr, VNET_HDR_LEN};

use super::forward::Wake;
use super::{lock, read_lock, vxlan, Dataplane, BATCH};

/// The datagram lands 2 bytes into the buffer: its 8-byte VXLAN header then ends where a
/// virtio_net_hdr would, so the inner frame sits where `forward` expects a frame.
const AT: usize = VNET_HDR_LEN - weft_vtep::VXLAN_HEADER_LEN;

/// The receive offload of one batch: consecutive TCP segments of one connection from one
/// peer are merged into a GSO superframe, so a bulk transfer costs one write into the
/// container per up to 64 KiB instead of one per segment.
struct Gro {
    coalescer: Coalescer,
    /// The tunnel port the segments being merged came from.
    port: Option<PortId>,
}

impl Dataplane {
    /// Reads up to [`BATCH`] datagrams from the VXLAN socket and forwards their inner
    /// frames as received on the sending peer's tunnel port.
    pub(super) fn drain_vxlan(&self, wake: &mut Wake<'_>, buf: &mut [u8]) -> bool {
        let Some(sockets) = self.vxlan.get() else {
            return false;
        };
        let mut moved = false;
        let mut gro = Gro {
            coalescer: Coalescer::new(VNET_HDR_LEN + 14),
            port: None,
        };
        for _ in 0..BATCH {
            // With UDP_GRO the kernel may hand over a run of one peer's datagrams at once,
            // back to back, each `segment` octets (the last may be shorter).
            let received = match sockets.recv.recv_segments(&mut buf[AT..]) {
                Ok(r) => r,
                Err(_) => break,
            };
            let (n, src, segment) = (received.len, received.from, received.segment);
            moved = true;
            let Some(src) = src else {
                continue;
            };
            let segment = segment.map_or(n, usize::from).max(1);
            let mut next = AT;
            // At least once: an empty datagram is classified (and counted) too.
            let mut first = true;
            while first || next < AT + n {
                first = false;
                // `off`: where this datagram starts; its inner frame starts 8 octets later,
                // and the 10-octet virtio_net_hdr goes just before that (over the end of the
                // datagram before it, already handled).
                let off = next;
                let len = segment.min(AT + n - next);
                next += len;
                self.receive_datagram(wake, buf, (off, len), src, &mut gro);
            }
        }
        self.flush_gro(wake, &mut gro);
        moved
    }

    /// Handles the datagram at `buf[off..off + len]` from `src`: counted on the VXLAN
    /// socket, dropped unless a peer of its VNI sent it, else its inner frame forwarded (or
    /// merged into the superframe being built).
    fn receive_datagram(
        &self,
        wake: &mut Wake<'_>,
        buf: &mut [u8],
        (off, len): (usize, usize),
        src: SocketAddrV4,
        gro: &mut Gro,
    ) {
        let classified = read_lock(&self.tunnels).classify(*src.ip(), &buf[off..off + len]);
        self.vxlan_stats.record_rx(len);
        let (port, inner) = match classified {
            Ok(ok) => ok,
            Err(reason) => return self.vxlan_stats.record_drop(reason),
        };
        let table = wake.table;
        let Some(io) = table.get(port.0 as usize).and_then(Option::as_ref) else {
            return;
        };
        io.last_rx_ms
            .store(wake.now.as_millis().max(1), Ordering::Relaxed);
        if let Some(sockets) = self.vxlan.get() {
            let to = SocketAddrV4::new(sockets.local, sockets.port);
            super::monitor::capture_outer_rx(io, src, to, &buf[off..off + len]);
        }
        let start = off - AT;
        let end = off + inner.end;
        let inner_frame = &buf[start + VNET_HDR_LEN..end];
        let hdr = self.inner_vnet_hdr(port, inner_frame);
        // Only segments whose checksum holds are merged: the superframe's checksum is left
        // to the container's kernel as verified, so a segment corrupted on the underlay (a
        // kernel vxlan peer sends no outer UDP checksum) goes on by itself, for that kernel
        // to find and drop.
        let plain_tcp = hdr == VnetHdr::default()
            && inner_frame.len() > 14 + 20
            && inner_frame[12..14] == [0x08, 0x00]
            && inner_frame[14 + 9] == 6
            && weft_wire::coalesce::tcp_checksum_ok(&inner_frame[14..]);
        if plain_tcp {
            if gro.port != Some(port) {
                self.flush_gro(wake, gro);
                gro.port = Some(port);
            }
            // `buf[start..end]` is the datagram with its VXLAN header where the
            // virtio_net_hdr goes: the layout the offload builds superframes in.
            let pool = &mut wake.scratch.gro_pool;
            if let Some(done) = gro.coalescer.push_slice(&buf[start..end], pool) {
                self.forward_owned(wake, port, done);
            }
            return;
        }
        self.flush_gro(wake, gro);
        hdr.write(&mut buf[start..start + VNET_HDR_LEN]);
        self.forward(wake, port, io, &buf[start..end], false);
    }

    /// The virtio_net_hdr for an inner frame that came out of tunnel port `port`: plain, or
    /// with the checksum left to the receiver when the sender left it partial (and GSO when
    /// it is a whole TCP superframe).
    fn inner_vnet_hdr(&self, port: PortId, inner_frame: &[u8]) -> VnetHdr {
        let Some((csum_start, csum_offset)) = vxlan::partial_l4_checksum(inner_frame) else {
            return VnetHdr::default();
        };
        let mut hdr = VnetHdr {
            flags: weft_wire::VIRTIO_NET_HDR_F_NEEDS_CSUM,
            csum_start,
            csum_offset,
            ..VnetHdr::default()
        };
        // A sender on this host (a kernel vxlan device on a veth underlay) may hand over a
        // whole TCP superframe in one datagram: pass it on as one.
        if inner_frame.len() > 1514 && csum_offset == 16 {
            let mtu = {
                let b = lock(&self.bridge);
                b.port_network(port)
                    .and_then(|n| b.network_config(n))
                    .map_or(1500, |c| c.mtu)
            };
            let l4 = usize::from(csum_start);
            let thl = usize::from(inner_frame.get(l4 + 12).copied().unwrap_or(0x50) >> 4) * 4;
            let headers = (l4 - 14 + thl) as u16;
            hdr.gso_type = weft_wire::VIRTIO_NET_HDR_GSO_TCPV4;
            hdr.gso_size = mtu.saturating_sub(headers).max(1);
            hdr.hdr_len = (l4 + thl) as u16;
        }
        hdr
    }

    /// Forwards what the receive offload holds as received on its port.
    fn flush_gro(&self, wake: &mut Wake<'_>, gro: &mut Gro) {
        if let (Some(port), Some(packet)) = (gro.port, gro.coalescer.finish()) {
            self.forward_owned(wake, port, packet);
        }
    }

    /// Forwards a packet (virtio_net_hdr + frame) the receive offload built, then keeps its
    /// buffer for reuse.
    fn forward_owned(&self, wake: &mut Wake<'_>, port: PortId, packet: Vec<u8>) {
        let table = wake.table;
        if let Some(io) = table.get(port.0 as usize).and_then(Option::as_ref) {
            self.forward(wake, port, io, &packet, false);
        }
        if wake.scratch.gro_pool.len() < BATCH {
            wake.scratch.gro_pool.push(packet);
        }
    }
}
