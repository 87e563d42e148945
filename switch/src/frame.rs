//! A zero-copy, bounds-checked view of an Ethernet II frame.
//!
//! In the style of smoltcp's wire types, [`EthernetFrame::new_checked`]
//! validates the length once, after which every accessor is infallible. The
//! header layout is the IEEE 802.3 MAC frame without preamble and FCS:
//! destination (6 octets), source (6 octets), EtherType/length (2 octets,
//! big-endian), payload.

use crate::mac::MacAddr;

/// Length of the Ethernet header: destination, source and EtherType.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// EtherType of an IEEE 802.1Q VLAN tag (TPID).
pub const ETHERTYPE_VLAN: u16 = 0x8100;

/// EtherType of an IEEE 802.1ad service tag (QinQ outer tag).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

/// Length of an IEEE 802.1Q tag (TPID + TCI), which a frame may carry on top
/// of the network MTU.
pub const VLAN_TAG_LEN: usize = 4;

/// Why a byte slice is not an Ethernet frame.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The slice cannot even hold the 14-byte header.
    #[error("frame of {len} bytes is shorter than the 14-byte Ethernet header")]
    Truncated {
        /// Length of the rejected slice.
        len: usize,
    },
}

/// A read-only view of an Ethernet frame whose header is known to be present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetFrame<'a> {
    bytes: &'a [u8],
}

impl<'a> EthernetFrame<'a> {
    /// Wraps `bytes`, checking that the 14-byte header is present.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, FrameError> {
        if bytes.len() < ETHERNET_HEADER_LEN {
            return Err(FrameError::Truncated { len: bytes.len() });
        }
        Ok(EthernetFrame { bytes })
    }

    fn mac_at(&self, at: usize) -> MacAddr {
        let mut octets = [0u8; 6];
        octets.copy_from_slice(&self.bytes[at..at + 6]);
        MacAddr(octets)
    }

    /// Destination address (octets 0..6).
    pub fn dst(&self) -> MacAddr {
        self.mac_at(0)
    }

    /// Source address (octets 6..12).
    pub fn src(&self) -> MacAddr {
        self.mac_at(6)
    }

    /// EtherType (octets 12..14, big-endian). For an 802.1Q-tagged frame this
    /// is the TPID [`ETHERTYPE_VLAN`].
    pub fn ethertype(&self) -> u16 {
        u16::from_be_bytes([self.bytes[12], self.bytes[13]])
    }

    /// Everything after the 14-byte header (possibly empty).
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[ETHERNET_HEADER_LEN..]
    }

    /// The whole frame, header included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Total length in bytes, header included.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always `false` for a checked frame (it holds at least a header);
    /// provided for API symmetry with [`EthernetFrame::len`].
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_runts() {
        for len in 0..ETHERNET_HEADER_LEN {
            let bytes = vec![0u8; len];
            assert_eq!(
                EthernetFrame::new_checked(&bytes),
                Err(FrameError::Truncated { len })
            );
        }
        assert_eq!(
            FrameError::Truncated { len: 3 }.to_string(),
            "frame of 3 bytes is shorter than the 14-byte Ethernet header"
        );
    }

    #[test]
    fn parses_header_fields() {
        let mut bytes = vec![0xff; 6];
        bytes.extend_from_slice(&[0x02, 0x42, 0xac, 0x11, 0x00, 0x02]);
        bytes.extend_from_slice(&[0x08, 0x00]);
        bytes.extend_from_slice(b"payload");
        let frame = EthernetFrame::new_checked(&bytes).unwrap();
        assert_eq!(frame.dst(), MacAddr::BROADCAST);
        assert_eq!(frame.src(), "02:42:ac:11:00:02".parse().unwrap());
        assert_eq!(frame.ethertype(), 0x0800);
        assert_eq!(frame.payload(), b"payload");
        assert_eq!(frame.len(), 21);
        assert!(!frame.is_empty());
        assert_eq!(frame.as_bytes(), &bytes[..]);
    }

    #[test]
    fn header_only_frame_has_empty_payload() {
        let bytes = [0u8; ETHERNET_HEADER_LEN];
        let frame = EthernetFrame::new_checked(&bytes).unwrap();
        assert!(frame.payload().is_empty());
        assert_eq!(frame.len(), ETHERNET_HEADER_LEN);
    }
}
