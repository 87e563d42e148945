//! ICMP echo NAT (RFC 792): every (network, container, identifier, outside address) gets its
//! own identifier on the wire, so that two containers pinging the same address with the
//! same identifier stay apart; replies are rewritten back to the container's identifier.
//! Idle flows expire after [`ECHO_IDLE`].

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::Duration;

use smoltcp::wire::{Icmpv4Message, Icmpv4Packet, IpProtocol, Ipv4Packet};
use weft_switch::{NetworkId, Timestamp};

/// ICMP echo flows kept at once.
pub const MAX_ECHO_FLOWS: usize = 1024;
/// ICMP echo flows one container (network, address) may hold: its neighbours keep the rest.
pub const MAX_ECHO_FLOWS_PER_ENDPOINT: usize = 128;
/// Most echo flows of one network's containers together (a quarter of the table).
pub const MAX_ECHO_FLOWS_PER_NETWORK: usize = 256;
/// Idle ICMP echo flows are forgotten after this.
pub const ECHO_IDLE: Duration = Duration::from_secs(30);

/// One container's echo conversation with one outside address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EchoKey {
    pub network: NetworkId,
    pub container: Ipv4Addr,
    /// The container's own identifier.
    pub ident: u16,
    pub outside: Ipv4Addr,
}

/// One echo flow: its key, where replies go (`back`, the runtime's) and counters.
#[derive(Debug, Clone)]
pub struct EchoFlow<V> {
    pub key: EchoKey,
    pub back: V,
    pub created: Timestamp,
    pub last_active: Timestamp,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EchoError {
    #[error("not an ICMP echo request")]
    NotEchoRequest,
    #[error("the echo flow table is full ({MAX_ECHO_FLOWS} flows)")]
    Busy,
    #[error("the container holds its share of echo flows ({MAX_ECHO_FLOWS_PER_ENDPOINT})")]
    EndpointBusy,
    #[error(
        "the container's network holds its share of echo flows ({MAX_ECHO_FLOWS_PER_NETWORK})"
    )]
    NetworkBusy,
}

/// The echo flows by wire identifier.
#[derive(Debug)]
pub struct EchoNat<V> {
    flows: HashMap<u16, EchoFlow<V>>,
    by_key: HashMap<EchoKey, u16>,
    /// Flows per container (network, address).
    per_endpoint: HashMap<(NetworkId, Ipv4Addr), usize>,
    /// Flows per network.
    per_network: HashMap<NetworkId, usize>,
    next_ident: u16,
    idle: Duration,
    max: usize,
}

impl<V> Default for EchoNat<V> {
    fn default() -> Self {
        EchoNat::new(ECHO_IDLE, MAX_ECHO_FLOWS)
    }
}

impl<V> EchoNat<V> {
    pub fn new(idle: Duration, max: usize) -> Self {
        EchoNat {
            flows: HashMap::new(),
            by_key: HashMap::new(),
            per_endpoint: HashMap::new(),
            per_network: HashMap::new(),
            next_ident: 1,
            idle,
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The flows by wire identifier.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &EchoFlow<V>)> {
        self.flows.iter().map(|(&id, f)| (id, f))
    }

    /// A container's echo request `icmp` (the ICMP message) to `outside`: gives the flow its
    /// wire identifier (a new flow's return path from `back`), writes it into the message
    /// with a new checksum and returns it. The message then goes out as it is.
    pub fn outbound(
        &mut self,
        network: NetworkId,
        (container, outside): (Ipv4Addr, Ipv4Addr),
        icmp: &mut [u8],
        back: impl FnOnce() -> V,
        now: Timestamp,
    ) -> Result<u16, EchoError> {
        let mut packet =
            Icmpv4Packet::new_checked(&mut *icmp).map_err(|_| EchoError::NotEchoRequest)?;
        if packet.msg_type() != Icmpv4Message::EchoRequest || packet.msg_code() != 0 {
            return Err(EchoError::NotEchoRequest);
        }
        let key = EchoKey {
            network,
            container,
            ident: packet.echo_ident(),
            outside,
        };
        let wire = match self.by_key.get(&key) {
            Some(&id) => id,
            None => self.new_flow(key, back(), now)?,
        };
        packet.set_echo_ident(wire);
        packet.fill_checksum();
        Ok(wire)
    }

    /// The rewritten request of flow `wire` (`len` octets of ICMP) left: counted, and the
    /// flow kept alive. Called only after a successful send, so a destination that cannot
    /// be reached neither keeps the flow alive nor counts as traffic.
    pub fn sent(&mut self, wire: u16, len: usize, now: Timestamp) {
        if let Some(f) = self.flows.get_mut(&wire) {
            f.bytes_out += len as u64;
            f.last_active = now;
        }
    }

    fn new_flow(&mut self, key: EchoKey, back: V, now: Timestamp) -> Result<u16, EchoError> {
        if self.flows.len() >= self.max.min(usize::from(u16::MAX)) {
            return Err(EchoError::Busy);
        }
        let holder = (key.network, key.container);
        if self.per_endpoint.get(&holder).copied().unwrap_or(0) >= MAX_ECHO_FLOWS_PER_ENDPOINT {
            return Err(EchoError::EndpointBusy);
        }
        if self.per_network.get(&key.network).copied().unwrap_or(0) >= MAX_ECHO_FLOWS_PER_NETWORK {
            return Err(EchoError::NetworkBusy);
        }
        *self.per_endpoint.entry(holder).or_default() += 1;
        *self.per_network.entry(key.network).or_default() += 1;
        let mut id = self.next_ident;
        while self.flows.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_ident = id.wrapping_add(1);
        self.flows.insert(
            id,
            EchoFlow {
                key,
                back,
                created: now,
                last_active: now,
                bytes_out: 0,
                bytes_in: 0,
            },
        );
        self.by_key.insert(key, id);
        Ok(id)
    }

    /// An IPv4 packet from the outside (as a raw ICMP socket reads it): an echo reply to one
    /// of the flows, from the address the flow pinged, gets the container's identifier back
    /// (checksum updated). Returns the flow and where the ICMP message lies in `ip`; None
    /// for anything else.
    pub fn inbound(
        &mut self,
        ip: &mut [u8],
        now: Timestamp,
    ) -> Option<(&EchoFlow<V>, Range<usize>)> {
        let (from, range) = {
            let packet = Ipv4Packet::new_checked(&*ip).ok()?;
            if packet.next_header() != IpProtocol::Icmp {
                return None;
            }
            let start = packet.header_len().into();
            let end: usize = packet.total_len().into();
            (packet.src_addr(), start..end)
        };
        let mut icmp = Icmpv4Packet::new_checked(ip.get_mut(range.clone())?).ok()?;
        if icmp.msg_type() != Icmpv4Message::EchoReply {
            return None;
        }
        let flow = self.flows.get_mut(&icmp.echo_ident())?;
        if flow.key.outside != from {
            return None;
        }
        icmp.set_echo_ident(flow.key.ident);
        icmp.fill_checksum();
        flow.bytes_in += range.len() as u64;
        flow.last_active = now;
        Some((flow, range))
    }

    /// Forgets the flows idle for the idle time; returns how many.
    pub fn expire(&mut self, now: Timestamp) -> usize {
        let idle = self.idle;
        self.remove_where(|f| now.saturating_duration_since(f.last_active) >= idle)
    }

    /// Forgets a removed network's flows.
    pub fn forget_network(&mut self, network: NetworkId) {
        self.remove_where(|f| f.key.network == network);
    }

    fn remove_where(&mut self, pred: impl Fn(&EchoFlow<V>) -> bool) -> usize {
        let before = self.flows.len();
        self.flows.retain(|_, f| !pred(f));
        let flows = &self.flows;
        self.by_key.retain(|_, id| flows.contains_key(id));
        self.per_endpoint.clear();
        self.per_network.clear();
        for f in self.flows.values() {
            *self
                .per_endpoint
                .entry((f.key.network, f.key.container))
                .or_default() += 1;
            *self.per_network.entry(f.key.network).or_default() += 1;
        }
        before - self.flows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: NetworkId = NetworkId(1);
    const OUTSIDE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);

    /// RFC 1071, written out here so the test does not trust the code under test.
    fn checksum(data: &[u8]) -> u16 {
        let mut sum = 0u32;
        for pair in data.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    fn echo(kind: u8, ident: u16, seq: u16) -> Vec<u8> {
        let mut m = vec![kind, 0, 0, 0];
        m.extend_from_slice(&ident.to_be_bytes());
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(b"weft ping payload!");
        let sum = checksum(&m);
        m[2..4].copy_from_slice(&sum.to_be_bytes());
        m
    }

    /// An IPv4 packet from `src` carrying `icmp`, as a raw socket reads it.
    fn ipv4(src: Ipv4Addr, icmp: &[u8]) -> Vec<u8> {
        let total = (20 + icmp.len()) as u16;
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 1, 0, 0];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&[10, 0, 0, 1]);
        let sum = checksum(&p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(icmp);
        p
    }

    fn ident_of(m: &[u8]) -> u16 {
        u16::from_be_bytes([m[4], m[5]])
    }

    fn at(s: u64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    #[test]
    fn echo_identifier_is_rewritten_and_the_reply_rewritten_back() {
        let mut nat: EchoNat<&str> = EchoNat::default();
        let original = echo(8, 0x1234, 1);
        assert_eq!(checksum(&original), 0, "the request starts out valid");
        let mut request = original.clone();
        let container = Ipv4Addr::new(10, 0, 0, 2);
        let wire = nat
            .outbound(NET, (container, OUTSIDE), &mut request, || "red", at(0))
            .unwrap();
        assert_ne!(wire, 0x1234);
        assert_eq!(ident_of(&request), wire);
        assert_eq!(
            checksum(&request),
            0,
            "the rewritten request's checksum is valid"
        );
        assert_eq!(
            request[6..],
            original[6..],
            "sequence and payload untouched"
        );

        let mut reply = ipv4(OUTSIDE, &echo(0, wire, 1));
        let (flow, range) = nat.inbound(&mut reply, at(1)).unwrap();
        assert_eq!(flow.back, "red");
        assert_eq!(flow.key.container, container);
        assert_eq!(range, 20..reply.len());
        let icmp = &reply[20..];
        assert_eq!(ident_of(icmp), 0x1234, "the container's identifier again");
        assert_eq!(checksum(icmp), 0, "the rewritten reply's checksum is valid");
        assert_eq!(icmp[..], echo(0, 0x1234, 1)[..]);
    }

    #[test]
    fn two_containers_with_the_same_identifier_get_different_wire_identifiers() {
        let mut nat: EchoNat<u8> = EchoNat::default();
        let (red, blue) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3));
        let mut a = echo(8, 7, 1);
        let mut b = echo(8, 7, 1);
        let wa = nat
            .outbound(NET, (red, OUTSIDE), &mut a, || 1, at(0))
            .unwrap();
        let wb = nat
            .outbound(NET, (blue, OUTSIDE), &mut b, || 2, at(0))
            .unwrap();
        assert_ne!(wa, wb);
        // The same conversation keeps its identifier.
        let mut again = echo(8, 7, 2);
        assert_eq!(
            nat.outbound(NET, (red, OUTSIDE), &mut again, || 9, at(1)),
            Ok(wa)
        );
        // Each reply finds its own container.
        let mut ra = ipv4(OUTSIDE, &echo(0, wa, 1));
        let mut rb = ipv4(OUTSIDE, &echo(0, wb, 1));
        assert_eq!(nat.inbound(&mut rb, at(1)).unwrap().0.back, 2);
        assert_eq!(nat.inbound(&mut ra, at(1)).unwrap().0.back, 1);
        assert_eq!(ident_of(&ra[20..]), 7);
        assert_eq!(ident_of(&rb[20..]), 7);
    }

    #[test]
    fn replies_from_elsewhere_or_not_echo_replies_are_ignored() {
        let mut nat: EchoNat<()> = EchoNat::default();
        let mut request = echo(8, 7, 1);
        let c = Ipv4Addr::new(10, 0, 0, 2);
        let wire = nat
            .outbound(NET, (c, OUTSIDE), &mut request, || (), at(0))
            .unwrap();
        let mut other = ipv4(Ipv4Addr::new(192, 0, 2, 10), &echo(0, wire, 1));
        assert!(nat.inbound(&mut other, at(0)).is_none());
        let mut not_reply = ipv4(OUTSIDE, &echo(8, wire, 1));
        assert!(nat.inbound(&mut not_reply, at(0)).is_none());
        let mut reply = echo(0, 7, 1);
        assert_eq!(
            nat.outbound(NET, (c, OUTSIDE), &mut reply, || (), at(0)),
            Err(EchoError::NotEchoRequest)
        );
    }

    #[test]
    fn echo_flows_expire_after_thirty_idle_seconds_and_the_table_is_bounded() {
        let mut nat: EchoNat<()> = EchoNat::new(ECHO_IDLE, 2);
        let c = Ipv4Addr::new(10, 0, 0, 2);
        let w1 = nat
            .outbound(NET, (c, OUTSIDE), &mut echo(8, 1, 1), || (), at(0))
            .unwrap();
        nat.outbound(NET, (c, OUTSIDE), &mut echo(8, 2, 1), || (), at(10))
            .unwrap();
        assert_eq!(
            nat.outbound(NET, (c, OUTSIDE), &mut echo(8, 3, 1), || (), at(10)),
            Err(EchoError::Busy)
        );
        assert_eq!(nat.expire(at(29)), 0);
        assert_eq!(nat.expire(at(30)), 1);
        let mut late = ipv4(OUTSIDE, &echo(0, w1, 1));
        assert!(nat.inbound(&mut late, at(30)).is_none(), "expired");
        assert!(nat
            .outbound(NET, (c, OUTSIDE), &mut echo(8, 3, 1), || (), at(31))
            .is_ok());
        assert_eq!(nat.expire(at(40)), 1);
        assert_eq!(nat.len(), 1);
    }

    #[test]
    fn only_requests_that_left_count_and_keep_the_flow_alive() {
        let mut nat: EchoNat<()> = EchoNat::new(ECHO_IDLE, 4);
        let c = Ipv4Addr::new(10, 0, 0, 2);
        let mut request = echo(8, 7, 1);
        let w = nat
            .outbound(NET, (c, OUTSIDE), &mut request, || (), at(0))
            .unwrap();
        nat.sent(w, request.len(), at(0));
        // A second request at 20 s whose send failed: not counted, the flow not refreshed.
        nat.outbound(NET, (c, OUTSIDE), &mut echo(8, 7, 2), || (), at(20))
            .unwrap();
        let (_, f) = nat.iter().next().unwrap();
        assert_eq!(f.bytes_out, request.len() as u64);
        assert_eq!(f.last_active, at(0));
        assert_eq!(
            nat.expire(at(30)),
            1,
            "idle since the last request that left"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_packets_never_panic(mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..120)) {
            let mut nat: EchoNat<()> = EchoNat::default();
            let c = Ipv4Addr::new(10, 0, 0, 2);
            let mut copy = bytes.clone();
            let _ = nat.outbound(NET, (c, OUTSIDE), &mut copy, || (), at(0));
            let _ = nat.inbound(&mut bytes, at(0));
        }
    }

    #[test]
    fn one_container_cannot_take_the_echo_table_from_its_neighbours() {
        let mut nat: EchoNat<()> = EchoNat::default();
        let flooder = Ipv4Addr::new(10, 0, 0, 2);
        let mut request = |container, ident: u16| {
            let mut icmp = [8u8, 0, 0, 0, (ident >> 8) as u8, ident as u8, 0, 1];
            nat.outbound(NET, (container, OUTSIDE), &mut icmp, || (), at(0))
        };
        for ident in 0..MAX_ECHO_FLOWS_PER_ENDPOINT as u16 {
            assert!(request(flooder, ident).is_ok(), "{ident}");
        }
        assert_eq!(request(flooder, 9999), Err(EchoError::EndpointBusy));
        assert!(request(Ipv4Addr::new(10, 0, 0, 3), 1).is_ok());
        // Once its flows expire, its share is free again.
        assert_eq!(
            nat.expire(at(ECHO_IDLE.as_secs())),
            MAX_ECHO_FLOWS_PER_ENDPOINT + 1
        );
        let mut icmp = [8u8, 0, 0, 0, 0x27, 0x0f, 0, 1];
        assert!(nat
            .outbound(
                NET,
                (flooder, OUTSIDE),
                &mut icmp,
                || (),
                at(ECHO_IDLE.as_secs())
            )
            .is_ok());
    }

    #[test]
    fn one_network_cannot_take_the_echo_table_from_the_others() {
        let mut nat: EchoNat<()> = EchoNat::default();
        let request = |nat: &mut EchoNat<()>, network, container: u8, ident: u16| {
            let mut icmp = [8u8, 0, 0, 0, (ident >> 8) as u8, ident as u8, 0, 1];
            let c = Ipv4Addr::new(10, 0, 0, container);
            nat.outbound(network, (c, OUTSIDE), &mut icmp, || (), at(0))
        };
        let per = MAX_ECHO_FLOWS_PER_ENDPOINT as u16;
        for n in 0..MAX_ECHO_FLOWS_PER_NETWORK as u16 {
            let container = 2 + (n / per) as u8;
            assert!(request(&mut nat, NET, container, n % per).is_ok(), "{n}");
        }
        assert_eq!(request(&mut nat, NET, 99, 1), Err(EchoError::NetworkBusy));
        assert!(
            request(&mut nat, NetworkId(2), 2, 1).is_ok(),
            "another network"
        );
        nat.forget_network(NET);
        assert!(
            request(&mut nat, NET, 99, 1).is_ok(),
            "a removed network's share is free again"
        );
    }
}
