//! `struct virtio_net_hdr` (legacy, without `num_buffers`): 10 bytes in front of every frame
//! read from or written to a TAP opened with IFF_VNET_HDR or a packet socket with
//! PACKET_VNET_HDR. Legacy virtio headers are in the host's native byte order (both the tun
//! driver, unless TUNSETVNETLE/BE is used, and AF_PACKET use `virtio_legacy_is_little_endian`),
//! i.e. little-endian on x86.

/// Length of the legacy `struct virtio_net_hdr`.
pub const VNET_HDR_LEN: usize = 10;

/// `flags`: the checksum at `csum_start + csum_offset` still has to be computed (it holds the
/// pseudo-header sum); the frame is otherwise valid (CHECKSUM_PARTIAL).
pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
/// `flags` (receive only): the checksum was already verified.
pub const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;

pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
pub const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
pub const VIRTIO_NET_HDR_GSO_UDP: u8 = 3;
pub const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
pub const VIRTIO_NET_HDR_GSO_UDP_L4: u8 = 5;
/// Flag bit in `gso_type`: the TCP superframe carries ECN (CWR must be set on the first segment only).
pub const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

/// The decoded `struct virtio_net_hdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    /// Length of the headers (Ethernet + IP + L4) to replicate on every segment (a hint).
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS for TCP).
    pub gso_size: u16,
    /// Offset from the start of the Ethernet frame where checksumming starts.
    pub csum_start: u16,
    /// Offset from `csum_start` where the checksum is stored.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Decodes the first [`VNET_HDR_LEN`] bytes of `buf`; `None` if it is shorter.
    pub fn parse(buf: &[u8]) -> Option<VnetHdr> {
        let b = buf.get(..VNET_HDR_LEN)?;
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    /// The frame is a GSO superframe (bigger than the MTU) that must be segmented before it
    /// can go anywhere that does not take vnet headers.
    pub fn is_gso(&self) -> bool {
        self.gso_type & !VIRTIO_NET_HDR_GSO_ECN != VIRTIO_NET_HDR_GSO_NONE
    }

    /// The checksum still has to be filled in (see [`VIRTIO_NET_HDR_F_NEEDS_CSUM`]).
    pub fn needs_csum(&self) -> bool {
        self.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0
    }

    /// Encodes into the first [`VNET_HDR_LEN`] bytes of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`VNET_HDR_LEN`].
    pub fn write(&self, buf: &mut [u8]) {
        let b = &mut buf[..VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn roundtrip_and_layout() {
        let h = VnetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type: VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut buf = [0u8; 12];
        h.write(&mut buf);
        assert_eq!(VnetHdr::parse(&buf), Some(h));
        assert!(h.is_gso());
        assert!(h.needs_csum());
        if cfg!(target_endian = "little") {
            assert_eq!(&buf[..10], &[1, 0x81, 66, 0, 0xa8, 0x05, 34, 0, 16, 0]);
        }
        assert_eq!(VnetHdr::parse(&buf[..9]), None);
        let ecn_only = VnetHdr {
            gso_type: VIRTIO_NET_HDR_GSO_ECN,
            ..VnetHdr::default()
        };
        assert!(!ecn_only.is_gso());
        assert!(!VnetHdr::default().is_gso());
    }
}
