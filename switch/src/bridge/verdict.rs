//! What the bridge answers for one frame ([`Verdict`], with the flood set it may carry) and
//! the steps of its decision as [`Bridge::process_traced`](super::Bridge::process_traced)
//! reports them ([`TraceStep`]).

use super::*;

/// The decision of [`Bridge::process`] for one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Send the frame out of exactly this port (a known unicast destination).
    Forward(PortId),
    /// Send a copy out of every port of the set (group or unknown unicast
    /// destination). Never empty.
    Flood(FloodSet<'a>),
    /// Do not deliver the frame. The bridge counts nothing: the adapter counts
    /// the reason on the ingress port (except [`DropReason::UnknownPort`]).
    Drop(DropReason),
    /// The frame is for the network's gateway or for the switch's ARP
    /// responder: deliver it to no port; the task says what to do with it (the
    /// switch's own answer, [`GatewayTask::write_reply`], sent back out of the
    /// ingress port, or the gateway runtime's work).
    ToGateway(GatewayTask),
}

/// Ports of the ingress network except the ingress port: where a flooded
/// frame must be copied.
///
/// Borrowed from the bridge, so producing it does not allocate. Yields ports
/// in ascending order; implements [`ExactSizeIterator`], so `len()` tells
/// how many copies the adapter must send.
#[derive(Clone, Debug)]
pub struct FloodSet<'a> {
    head: slice::Iter<'a, PortId>,
    tail: slice::Iter<'a, PortId>,
}

impl<'a> FloodSet<'a> {
    /// The ports of `ports` except `skip`; `ports` must be sorted.
    pub(super) fn new(ports: &'a [PortId], skip: PortId) -> FloodSet<'a> {
        let (head, tail) = match ports.binary_search(&skip) {
            Ok(i) => (&ports[..i], &ports[i + 1..]),
            Err(_) => (ports, &ports[..0]),
        };
        FloodSet {
            head: head.iter(),
            tail: tail.iter(),
        }
    }

    /// The remaining ports as (at most) two contiguous slices, in order.
    pub fn as_slices(&self) -> (&'a [PortId], &'a [PortId]) {
        (self.head.as_slice(), self.tail.as_slice())
    }

    /// `true` if the set has no (remaining) port.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Iterator for FloodSet<'_> {
    type Item = PortId;

    fn next(&mut self) -> Option<PortId> {
        self.head.next().or_else(|| self.tail.next()).copied()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.head.len() + self.tail.len();
        (n, Some(n))
    }
}

impl DoubleEndedIterator for FloodSet<'_> {
    fn next_back(&mut self) -> Option<PortId> {
        self.tail
            .next_back()
            .or_else(|| self.head.next_back())
            .copied()
    }
}

impl ExactSizeIterator for FloodSet<'_> {}

impl FusedIterator for FloodSet<'_> {}

impl PartialEq for FloodSet<'_> {
    /// Two flood sets are equal when they yield the same remaining ports.
    fn eq(&self, other: &Self) -> bool {
        self.clone().eq(other.clone())
    }
}

impl Eq for FloodSet<'_> {}

/// One step of the forwarding decision, as [`Bridge::process_traced`] takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceStep {
    /// The ingress port is not attached to the bridge.
    UnknownPort,
    /// The frame entered the ingress port's network.
    Ingress {
        /// The ingress port's network.
        network: NetworkId,
    },
    /// Shorter than an Ethernet header: dropped.
    Runt {
        /// The frame's length.
        len: usize,
    },
    /// Longer than the network's MTU allows (and not a GSO superframe): dropped.
    Oversized {
        /// The frame's length.
        len: usize,
        /// The longest frame the network's MTU allows, Ethernet (and VLAN) header included.
        max: usize,
    },
    /// A multicast or all-zero source address: dropped.
    InvalidSource {
        /// The source address.
        mac: MacAddr,
    },
    /// The source address was offered to the FDB (802.1D §7.8).
    Learn {
        /// The source address.
        mac: MacAddr,
        /// What learning did with it.
        outcome: LearnOutcome,
    },
    /// The source is the gateway's own MAC, which is never learned.
    GatewaySource {
        /// The gateway's MAC.
        mac: MacAddr,
    },
    /// Port security refused the frame: the port's endpoint may not send it.
    Spoofed {
        /// The frame's source MAC.
        mac: MacAddr,
        /// Which rule it broke ([`DropReason::SpoofedMac`], `SpoofedIp` or `SpoofedArp`).
        reason: DropReason,
    },
    /// The gateway takes the frame.
    ToGateway {
        /// Sent to the gateway's MAC (true), or an ARP request the switch answers itself,
        /// for the gateway's address or (suppression) a registered endpoint's (false).
        to_gateway_mac: bool,
    },
    /// `--icc=false`: endpoints may reach the gateway only; dropped.
    IccDenied,
    /// The destination is in the FDB.
    FdbHit {
        /// The destination address.
        mac: MacAddr,
        /// The port it is behind.
        port: PortId,
    },
    /// The destination is behind the ingress port itself: filtered (802.1D §7.7.1).
    SameSegment,
    /// Broadcast, multicast or unknown unicast: flooded to the network's other ports.
    Flood {
        /// The destination address.
        mac: MacAddr,
        /// How many ports get a copy (0: nowhere to go, dropped).
        ports: usize,
    },
}
