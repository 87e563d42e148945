//! weft's packet byte work, pure and I/O-free: the Internet checksum (RFC 1071), the
//! `virtio_net_hdr` that prefixes frames on TAPs and packet sockets, software TCP
//! segmentation (GSO, for frames entering a tunnel) and its inverse, coalescing segments
//! into superframes (GRO, for frames written to a container). Segmentation and coalescing
//! live side by side so one property test can hold them to being each other's inverse.

#![forbid(unsafe_code)]

pub mod checksum;
pub mod coalesce;
pub mod gso;
pub mod vnet;

pub use checksum::internet_checksum;
pub use coalesce::Coalescer;
pub use vnet::{
    VnetHdr, VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6,
    VIRTIO_NET_HDR_GSO_UDP, VIRTIO_NET_HDR_GSO_UDP_L4, VNET_HDR_LEN,
};
