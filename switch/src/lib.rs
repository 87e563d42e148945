//! # weft-switch — the pure core of weft's userspace learning bridge
//!
//! weft rebuilds Docker-style bridge networking entirely in userspace. This
//! crate is its *decision engine*: given an Ethernet frame and the port it
//! arrived on, [`Bridge::process`] learns the source address and returns a
//! [`Verdict`] — forward to one port, flood to the other ports of the same
//! network, hand the frame to the network's gateway, or drop for a
//! [`DropReason`].
//!
//! The crate is deliberately pure:
//!
//! * **no I/O and no threads** — adapters (TAP devices, vhost-user, VXLAN
//!   tunnels, …) live in other crates and call into this one;
//! * **no clock** — every time-dependent operation takes a caller-supplied
//!   [`Timestamp`], so aging is fully deterministic and testable;
//! * **no allocation per frame** — the per-network filtering database is
//!   pre-sized when the network is created and [`Bridge::process`] only reads
//!   and updates it in place; a flood verdict borrows the network's port list,
//!   and [`GatewayTask::write_reply`] writes into a caller-supplied buffer.
//!
//! The behaviour follows the transparent-bridge model of IEEE 802.1D:
//! learning of source addresses (§7.8), filtering of frames whose destination
//! is on the ingress segment (§7.7.1), forwarding to the learned port or
//! flooding when unknown, and aging of dynamic entries out of the filtering
//! database (§7.9). Each [`NetworkId`] is an independent broadcast domain
//! with its own filtering database: frames never cross networks.
//!
//! Modules:
//!
//! * [`bridge`] — networks, ports and the per-frame decision;
//! * [`fdb`] — the filtering database of one network (learning, aging,
//!   static entries, bounds);
//! * [`gateway`] — each network's gateway ([`GatewayConfig`], an IPv4
//!   address with its own MAC owned by the switch) answering ARP (RFC 826)
//!   and ICMP echo (RFC 792) for its address, and ARP suppression: requests
//!   for registered endpoints ([`Neighbor`]) are answered by the switch
//!   instead of being flooded. [`Bridge::process`] returns
//!   [`Verdict::ToGateway`] for such frames, carrying the [`GatewayTask`]
//!   decided from one parse of the frame: the switch's own answer
//!   ([`GatewayTask::write_reply`]) or the gateway runtime's work (DNS, NAT,
//!   published ports);
//! * [`counters`] — [`DropReason`] and [`PortCounters`], the per-port
//!   counters the adapters keep;
//! * [`frame`], [`mac`], [`time`] — Ethernet frame view, MAC addresses,
//!   caller-supplied time.
//!
//! ```
//! use weft_switch::{Bridge, NetworkConfig, NetworkId, Offload, PortId, Timestamp, Verdict};
//!
//! let mut bridge = Bridge::new();
//! let net = NetworkId(1);
//! bridge.add_network(net, NetworkConfig::default()).unwrap();
//! for p in 1..=3 {
//!     bridge.add_port(PortId(p), net).unwrap();
//! }
//!
//! // A broadcast from port 1 floods to ports 2 and 3 and teaches the bridge
//! // that 02:00:00:00:00:01 lives behind port 1.
//! let mut frame = [0u8; 60];
//! frame[..6].copy_from_slice(&[0xff; 6]);
//! frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
//! let now = Timestamp::from_millis(0);
//! match bridge.process(now, PortId(1), &frame, Offload::NONE) {
//!     Verdict::Flood(ports) => assert_eq!(ports.collect::<Vec<_>>(), [PortId(2), PortId(3)]),
//!     other => panic!("unexpected {other:?}"),
//! }
//!
//! // A reply from port 2 is now forwarded straight to port 1.
//! frame[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
//! frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
//! assert_eq!(bridge.process(now, PortId(2), &frame, Offload::NONE), Verdict::Forward(PortId(1)));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bridge;
pub mod counters;
pub mod fdb;
pub mod frame;
pub mod gateway;
pub mod impair;
pub mod mac;
pub mod time;

pub use bridge::{
    Bridge, BridgeError, FloodSet, NetworkConfig, NetworkStats, PortBinding, TraceStep, Verdict,
};
pub use bridge::{NetworkId, PortId};
pub use counters::{DropReason, PortCounters};
pub use fdb::{Fdb, FdbEntry, FdbOrigin, LearnOutcome};
pub use frame::{EthernetFrame, FrameError, ETHERNET_HEADER_LEN};
pub use gateway::{
    icmp_echo_ident, ipv4_task, quoted_udp_datagram, set_icmp_echo_ident, write_icmp_from,
    write_icmp_unreachable, write_udp, write_udp_from_gateway, ArpReply, EchoToGateway,
    EchoViaGateway, GatewayConfig, GatewayTask, Neighbor, Offload, TcpToGateway, UdpToGateway,
    DNS_PORT, ICMP_ADMIN_PROHIBITED, ICMP_HOST_UNREACHABLE, ICMP_NET_UNREACHABLE,
    ICMP_PORT_UNREACHABLE,
};
pub use mac::{MacAddr, MacParseError};
pub use time::Timestamp;
