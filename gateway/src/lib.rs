//! The gateway's protocol logic, pure: no sockets, no threads, no clock. Time is a
//! [`Timestamp`] the caller passes in, the way smoltcp and quinn-proto are written, so every
//! state machine here is driven by hand in its tests.
//!
//! Each piece takes what arrived and *returns what to do*; the runtime in
//! `weft-control` (`control/src/gateway/`) does the I/O:
//!
//! - [`tcp`]: outbound TCP connects with the container's SYN held until the host's
//!   `connect()` finishes (RFC 9293), failed-connect memory, the TCP flow table.
//! - [`flows`]: a flow table with idle expiry and a bound (the UDP NAT's).
//! - [`echo`]: ICMP echo NAT, one wire identifier per (network, container, identifier,
//!   outside address), and the reply rewritten back (RFC 792).
//! - [`published_udp`]: a gateway source port per host client of a published UDP port.
//! - [`dns`]: a network's zone (endpoint names, aliases, PTR) and the answer to a query
//!   (RFC 1035), or the decision to forward it.
//! - [`dns_tcp`]: DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766).
//! - [`publish`]: Docker's `-p` specs and the mappings they expand to.
//! - [`reach`]: the destinations the proxy NAT never connects a container to.

#![forbid(unsafe_code)]

pub mod dns;
pub mod dns_tcp;
pub mod echo;
pub mod flows;
pub mod publish;
pub mod published_udp;
pub mod reach;
pub mod tcp;

pub use weft_switch::Timestamp;
