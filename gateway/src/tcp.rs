//! TCP through the gateway: the flow table of proxied connections (both directions) and the
//! held SYN of outbound connects (RFC 9293).
//!
//! A container's SYN to an outside address starts a host `connect()` and is held until it
//! finishes, so that the container sees the outside's real answer: accepted (the held SYN goes
//! to the stack, whose listener completes the handshake), refused (the stack answers the SYN
//! with RST, RFC 9293 §3.10.7.1) or unreachable / timed out (ICMP destination unreachable
//! with the code, RFC 792). A retransmitted SYN while the connect is pending is ignored;
//! one within [`FAILED_CONNECT_MEMORY`] of a failure gets the same answer at once.

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use weft_switch::{NetworkId, PortId, Timestamp, ICMP_HOST_UNREACHABLE};

/// TCP connections (both directions) the gateway keeps at once.
pub const MAX_TCP_FLOWS: usize = 4096;
/// Outbound connections one network may hold, so that one network's containers cannot
/// take the whole table from the others.
pub const MAX_TCP_FLOWS_PER_NETWORK: usize = 1024;
/// Outbound connects one network may have under way at once: a SYN flood to a black-holed
/// address fills this, not the host's descriptors.
pub const MAX_CONNECTING_PER_NETWORK: usize = 128;
/// Outbound connections one endpoint may hold: its neighbours on the network keep the rest
/// of the network's share.
pub const MAX_TCP_FLOWS_PER_ENDPOINT: usize = 256;
/// Outbound connects one endpoint may have under way: a flooding container sees its own
/// SYNs dropped, its neighbours still connect.
pub const MAX_CONNECTING_PER_ENDPOINT: usize = 32;
/// How long a failed outbound connect is remembered.
pub const FAILED_CONNECT_MEMORY: Duration = Duration::from_secs(3);
/// A host `connect()` still pending after this is given up and the container told the
/// host is unreachable (rather than waiting out Linux's ~127 s of SYN retries); 10 s, like
/// Docker's userland proxy.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An open connection with no byte either way for this long is dropped: 2 hours 4 minutes,
/// the least RFC 5382 §5 (REQ-5) allows a NAT's established idle timeout to be.
pub const TCP_IDLE: Duration = Duration::from_secs(2 * 3600 + 4 * 60);

/// Outbound flows of one network or one endpoint, to bound them.
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    outbound: usize,
    connecting: usize,
}

impl Load {
    fn within(&self, outbound: usize, connecting: usize) -> bool {
        self.outbound < outbound && self.connecting < connecting
    }
}

/// Who an outbound flow is charged to: its network, and its endpoint's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Share {
    Network(NetworkId),
    Endpoint(PortId),
}

/// An outbound connection: (network, container address:port, outside address:port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TcpKey {
    pub network: NetworkId,
    pub container: SocketAddrV4,
    pub outside: SocketAddrV4,
}

/// The handle of one flow in a [`TcpTable`]; the runtime keys its I/O by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A container's connection to an outside address.
    Out,
    /// A connection to a published host port, into a container.
    In,
}

/// How a SYN whose connect failed is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// RST (the stack answers a SYN no listener takes this way).
    Reset,
    /// ICMP destination unreachable with this code.
    Unreachable(u8),
}

/// What the host's `connect()` met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectResult {
    Connected,
    Refused,
    /// ICMP code for the container (network or host unreachable).
    Unreachable(u8),
    TimedOut,
}

/// What to do with a container's SYN to an outside address.
#[derive(Debug, PartialEq, Eq)]
pub enum SynAction {
    /// Start a host `connect()` to the outside address for this new flow; the SYN is held.
    Connect(FlowId),
    /// The connect is under way: nothing (the held SYN will be answered).
    Pending,
    /// The connection is open: hand the SYN to the stack, which answers it.
    ToStack(Vec<u8>),
    /// Answer it at once (failed-connect memory).
    Answer(Vec<u8>, Refusal),
    /// The flow table is full: drop it.
    Busy,
}

/// What to do once a held SYN's connect finished.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnectAction {
    /// Listen on the outside address and hand the held SYN to the stack.
    Accept(Vec<u8>),
    /// Answer the held SYN; the flow is gone (remove its I/O).
    Answer(Vec<u8>, Refusal),
    /// The flow was not waiting for a connect.
    Nothing,
}

/// A flow removed by [`TcpTable::expire`].
#[derive(Debug, PartialEq, Eq)]
pub enum Expired {
    /// The connect never finished: answer the held SYN.
    ConnectTimedOut(Vec<u8>, Refusal),
    /// No byte moved for the idle time.
    Idle,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowState {
    /// The host `connect()` is under way; the container's SYN waits.
    Connecting {
        syn: Vec<u8>,
    },
    Open,
}

/// One proxied connection's bookkeeping.
#[derive(Debug, Clone)]
pub struct TcpFlow {
    pub network: NetworkId,
    /// The container's switch port.
    pub port: PortId,
    pub direction: Direction,
    pub container: SocketAddrV4,
    /// For outbound flows the outside address; for inbound the host-side client.
    pub outside: SocketAddr,
    pub state: FlowState,
    pub created: Timestamp,
    pub last_active: Timestamp,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

impl TcpFlow {
    fn key(&self) -> Option<TcpKey> {
        match (self.direction, self.outside) {
            (Direction::Out, SocketAddr::V4(outside)) => Some(TcpKey {
                network: self.network,
                container: self.container,
                outside,
            }),
            _ => None,
        }
    }
}

/// The gateway's TCP flows, with the held SYNs and the failed-connect memory.
#[derive(Debug)]
pub struct TcpTable {
    flows: HashMap<FlowId, TcpFlow>,
    by_key: HashMap<TcpKey, FlowId>,
    /// Inbound (published) flows whose container side speaks from the client's own address:
    /// the container's segments to that address are theirs.
    by_client: HashMap<TcpKey, FlowId>,
    failed: HashMap<TcpKey, (Refusal, Timestamp)>,
    load: HashMap<Share, Load>,
    next_id: u32,
    max: usize,
    idle: Duration,
    connect_timeout: Duration,
}

impl Default for TcpTable {
    fn default() -> Self {
        TcpTable::new(MAX_TCP_FLOWS, TCP_IDLE, CONNECT_TIMEOUT)
    }
}

impl TcpTable {
    pub fn new(max: usize, idle: Duration, connect_timeout: Duration) -> TcpTable {
        TcpTable {
            flows: HashMap::new(),
            by_key: HashMap::new(),
            by_client: HashMap::new(),
            failed: HashMap::new(),
            load: HashMap::new(),
            next_id: 0,
            max,
            idle,
            connect_timeout,
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    pub fn get(&self, id: FlowId) -> Option<&TcpFlow> {
        self.flows.get(&id)
    }

    /// The outbound flow of `key`, if any.
    pub fn outbound(&self, key: &TcpKey) -> Option<FlowId> {
        self.by_key.get(key).copied()
    }

    /// The inbound flow whose container side is `key` (container, client address), if it
    /// keeps the client's address ([`TcpTable::keep_client_address`]).
    pub fn inbound(&self, key: &TcpKey) -> Option<FlowId> {
        self.by_client.get(key).copied()
    }

    /// Lets inbound flow `id` reach the container from its client's own address and port
    /// (the container's answers go to the gateway as its default route, and are this
    /// flow's): true unless that address is IPv6 or another flow to the same container
    /// address has it already (then the gateway's address is used instead).
    pub fn keep_client_address(&mut self, id: FlowId) -> bool {
        let Some(flow) = self.flows.get(&id) else {
            return false;
        };
        let (Direction::In, SocketAddr::V4(client)) = (flow.direction, flow.outside) else {
            return false;
        };
        let key = TcpKey {
            network: flow.network,
            container: flow.container,
            outside: client,
        };
        if self.by_client.contains_key(&key) || self.by_key.contains_key(&key) {
            return false;
        }
        self.by_client.insert(key, id);
        true
    }

    pub fn iter(&self) -> impl Iterator<Item = (FlowId, &TcpFlow)> {
        self.flows.iter().map(|(&id, f)| (id, f))
    }

    fn new_id(&mut self) -> FlowId {
        loop {
            let id = FlowId(self.next_id);
            self.next_id = self.next_id.wrapping_add(1);
            if !self.flows.contains_key(&id) {
                return id;
            }
        }
    }

    /// A container's SYN (not ACK) to an outside address that NAT lets out. (A stale open
    /// flow of the same key, its socket closed, is for the caller to remove first.)
    pub fn on_syn(&mut self, key: TcpKey, port: PortId, syn: Vec<u8>, now: Timestamp) -> SynAction {
        if let Some(&(refusal, at)) = self.failed.get(&key) {
            if now.saturating_duration_since(at) < FAILED_CONNECT_MEMORY {
                return SynAction::Answer(syn, refusal);
            }
            self.failed.remove(&key);
        }
        if let Some(id) = self.outbound(&key) {
            return match self.flows.get(&id).map(|f| &f.state) {
                Some(FlowState::Open) => SynAction::ToStack(syn),
                _ => SynAction::Pending,
            };
        }
        // Outbound connects have their own bound: inbound (published) connections do not
        // take it from the containers; each network its own share of it, and each
        // endpoint its own share of its network's.
        let load = |share| self.load.get(&share).copied().unwrap_or_default();
        let network = load(Share::Network(key.network));
        let endpoint = load(Share::Endpoint(port));
        if self.by_key.len() >= self.max
            || !network.within(
                MAX_TCP_FLOWS_PER_NETWORK.min(self.max),
                MAX_CONNECTING_PER_NETWORK,
            )
            || !endpoint.within(MAX_TCP_FLOWS_PER_ENDPOINT, MAX_CONNECTING_PER_ENDPOINT)
        {
            return SynAction::Busy;
        }
        for share in [Share::Network(key.network), Share::Endpoint(port)] {
            let entry = self.load.entry(share).or_default();
            entry.outbound += 1;
            entry.connecting += 1;
        }
        let id = self.new_id();
        self.flows.insert(
            id,
            TcpFlow {
                network: key.network,
                port,
                direction: Direction::Out,
                container: key.container,
                outside: SocketAddr::V4(key.outside),
                state: FlowState::Connecting { syn },
                created: now,
                last_active: now,
                bytes_out: 0,
                bytes_in: 0,
            },
        );
        self.by_key.insert(key, id);
        SynAction::Connect(id)
    }

    /// The host `connect()` of flow `id` finished.
    pub fn connect_result(
        &mut self,
        id: FlowId,
        result: ConnectResult,
        now: Timestamp,
    ) -> ConnectAction {
        let Some(flow) = self.flows.get_mut(&id) else {
            return ConnectAction::Nothing;
        };
        let FlowState::Connecting { syn } = &mut flow.state else {
            return ConnectAction::Nothing;
        };
        let syn = std::mem::take(syn);
        let refusal = match result {
            ConnectResult::Connected => {
                flow.state = FlowState::Open;
                flow.last_active = now;
                let (network, port) = (flow.network, flow.port);
                self.release(network, port, false);
                return ConnectAction::Accept(syn);
            }
            ConnectResult::Refused => Refusal::Reset,
            ConnectResult::Unreachable(code) => Refusal::Unreachable(code),
            ConnectResult::TimedOut => Refusal::Unreachable(ICMP_HOST_UNREACHABLE),
        };
        if let Some(key) = self.remove(id).and_then(|f| f.key()) {
            self.failed.insert(key, (refusal, now));
        }
        ConnectAction::Answer(syn, refusal)
    }

    /// A host client connected to a published TCP port: a flow into the container, or None
    /// when the table is full.
    pub fn open_inbound(
        &mut self,
        network: NetworkId,
        port: PortId,
        container: SocketAddrV4,
        client: SocketAddr,
        now: Timestamp,
    ) -> Option<FlowId> {
        if self.flows.len() >= self.max {
            return None;
        }
        let id = self.new_id();
        self.flows.insert(
            id,
            TcpFlow {
                network,
                port,
                direction: Direction::In,
                container,
                outside: client,
                state: FlowState::Open,
                created: now,
                last_active: now,
                bytes_out: 0,
                bytes_in: 0,
            },
        );
        Some(id)
    }

    /// Counts bytes moved (container to outside, outside to container) and keeps the flow
    /// alive.
    pub fn moved(&mut self, id: FlowId, out: usize, back: usize, now: Timestamp) {
        if let Some(f) = self.flows.get_mut(&id) {
            f.bytes_out += out as u64;
            f.bytes_in += back as u64;
            f.last_active = now;
        }
    }

    pub fn remove(&mut self, id: FlowId) -> Option<TcpFlow> {
        let flow = self.flows.remove(&id)?;
        if let (Direction::In, SocketAddr::V4(outside)) = (flow.direction, flow.outside) {
            let key = TcpKey {
                network: flow.network,
                container: flow.container,
                outside,
            };
            if self.by_client.get(&key) == Some(&id) {
                self.by_client.remove(&key);
            }
        }
        if let Some(key) = flow.key() {
            if self.by_key.get(&key) == Some(&id) {
                self.by_key.remove(&key);
            }
            let connecting = matches!(flow.state, FlowState::Connecting { .. });
            if connecting {
                self.release(flow.network, flow.port, false);
            }
            self.release(flow.network, flow.port, true);
        }
        Some(flow)
    }

    /// Gives back one connect under way (`open` false) or one outbound flow (`open` true)
    /// to the network's and the endpoint's shares; an empty share is forgotten.
    fn release(&mut self, network: NetworkId, port: PortId, open: bool) {
        for share in [Share::Network(network), Share::Endpoint(port)] {
            if let Some(load) = self.load.get_mut(&share) {
                let n = if open {
                    &mut load.outbound
                } else {
                    &mut load.connecting
                };
                *n = n.saturating_sub(1);
                if load.outbound == 0 && load.connecting == 0 {
                    self.load.remove(&share);
                }
            }
        }
    }

    /// The flows matching `pred` (a removed network's, a disconnected port's).
    pub fn matching(&self, pred: impl Fn(&TcpFlow) -> bool) -> Vec<FlowId> {
        self.iter()
            .filter(|(_, f)| pred(f))
            .map(|(id, _)| id)
            .collect()
    }

    /// Forgets the failed connects of a removed network.
    pub fn forget_network(&mut self, network: NetworkId) {
        self.failed.retain(|k, _| k.network != network);
        self.load.remove(&Share::Network(network));
    }

    /// Drops expired failed-connect memories, and removes connects pending for longer than
    /// the connect timeout and open flows idle for the idle time.
    pub fn expire(&mut self, now: Timestamp) -> Vec<(FlowId, Expired)> {
        self.failed
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < FAILED_CONNECT_MEMORY);
        let (idle, connect_timeout) = (self.idle, self.connect_timeout);
        let dead: Vec<FlowId> = self
            .iter()
            .filter(|(_, f)| match f.state {
                FlowState::Connecting { .. } => {
                    now.saturating_duration_since(f.created) >= connect_timeout
                }
                FlowState::Open => now.saturating_duration_since(f.last_active) >= idle,
            })
            .map(|(id, _)| id)
            .collect();
        let mut out = Vec::new();
        for id in dead {
            let action = self.connect_result(id, ConnectResult::TimedOut, now);
            match action {
                ConnectAction::Answer(syn, refusal) => {
                    out.push((id, Expired::ConnectTimedOut(syn, refusal)))
                }
                _ => {
                    self.remove(id);
                    out.push((id, Expired::Idle));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_switch::ICMP_NET_UNREACHABLE;

    const PORT: PortId = PortId(7);

    fn key(cport: u16) -> TcpKey {
        TcpKey {
            network: NetworkId(1),
            container: SocketAddrV4::new([10, 0, 0, 2].into(), cport),
            outside: SocketAddrV4::new([192, 0, 2, 9].into(), 443),
        }
    }

    fn ms(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn syn(n: u8) -> Vec<u8> {
        vec![0x45, n]
    }

    fn connecting(t: &mut TcpTable, k: TcpKey, now: Timestamp) -> FlowId {
        match t.on_syn(k, PORT, syn(1), now) {
            SynAction::Connect(id) => id,
            other => panic!("expected a connect, got {other:?}"),
        }
    }

    #[test]
    fn held_syn_is_handed_to_the_stack_once_the_connect_is_accepted() {
        let mut t = TcpTable::default();
        let id = connecting(&mut t, key(1000), ms(0));
        assert_eq!(
            t.get(id).unwrap().state,
            FlowState::Connecting { syn: syn(1) }
        );
        assert_eq!(
            t.connect_result(id, ConnectResult::Connected, ms(20)),
            ConnectAction::Accept(syn(1))
        );
        assert_eq!(t.get(id).unwrap().state, FlowState::Open);
        // A retransmitted SYN of an open connection is the stack's to answer.
        assert_eq!(
            t.on_syn(key(1000), PORT, syn(2), ms(30)),
            SynAction::ToStack(syn(2))
        );
        assert_eq!(
            t.connect_result(id, ConnectResult::Refused, ms(40)),
            ConnectAction::Nothing
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn refused_connect_answers_reset_and_remembers_for_three_seconds() {
        let mut t = TcpTable::default();
        let id = connecting(&mut t, key(1000), ms(0));
        assert_eq!(
            t.connect_result(id, ConnectResult::Refused, ms(1_000)),
            ConnectAction::Answer(syn(1), Refusal::Reset)
        );
        assert!(t.get(id).is_none() && t.outbound(&key(1000)).is_none());
        // Retransmissions within 3 s of the failure: the same answer at once, no connect.
        assert_eq!(
            t.on_syn(key(1000), PORT, syn(2), ms(3_999)),
            SynAction::Answer(syn(2), Refusal::Reset)
        );
        assert!(t.is_empty());
        // Another connection is not concerned.
        assert!(matches!(
            t.on_syn(key(1001), PORT, syn(3), ms(2_000)),
            SynAction::Connect(_)
        ));
        // After 3 s, a new connect.
        assert!(matches!(
            t.on_syn(key(1000), PORT, syn(4), ms(4_000)),
            SynAction::Connect(_)
        ));
    }

    #[test]
    fn unreachable_and_timed_out_connects_answer_icmp_with_the_code() {
        let mut t = TcpTable::default();
        let id = connecting(&mut t, key(1000), ms(0));
        assert_eq!(
            t.connect_result(id, ConnectResult::Unreachable(ICMP_NET_UNREACHABLE), ms(5)),
            ConnectAction::Answer(syn(1), Refusal::Unreachable(ICMP_NET_UNREACHABLE))
        );
        assert_eq!(
            t.on_syn(key(1000), PORT, syn(2), ms(2_000)),
            SynAction::Answer(syn(2), Refusal::Unreachable(ICMP_NET_UNREACHABLE))
        );
        let id = connecting(&mut t, key(1001), ms(0));
        assert_eq!(
            t.connect_result(id, ConnectResult::TimedOut, ms(5)),
            ConnectAction::Answer(syn(1), Refusal::Unreachable(ICMP_HOST_UNREACHABLE))
        );
    }

    #[test]
    fn retransmitted_syn_while_the_connect_is_pending_does_nothing() {
        let mut t = TcpTable::default();
        let id = connecting(&mut t, key(1000), ms(0));
        assert_eq!(
            t.on_syn(key(1000), PORT, syn(2), ms(1_000)),
            SynAction::Pending
        );
        assert_eq!(
            t.on_syn(key(1000), PORT, syn(3), ms(3_000)),
            SynAction::Pending
        );
        assert_eq!(t.len(), 1);
        // The first SYN is the one held and answered.
        assert_eq!(
            t.connect_result(id, ConnectResult::Connected, ms(3_100)),
            ConnectAction::Accept(syn(1))
        );
    }

    #[test]
    fn failed_connect_memory_expires_with_the_driven_clock() {
        let mut t = TcpTable::default();
        let id = connecting(&mut t, key(1000), ms(0));
        t.connect_result(id, ConnectResult::Refused, ms(0));
        assert!(t.expire(ms(2_999)).is_empty());
        assert!(matches!(
            t.on_syn(key(1000), PORT, syn(2), ms(2_999)),
            SynAction::Answer(..)
        ));
        t.expire(ms(3_000));
        assert!(t.failed.is_empty(), "forgotten after 3 s");
    }

    #[test]
    fn flows_expire_when_idle_and_connects_time_out() {
        let mut t = TcpTable::new(8, Duration::from_secs(60), Duration::from_secs(10));
        let pending = connecting(&mut t, key(1000), ms(0));
        let open = connecting(&mut t, key(1001), ms(0));
        t.connect_result(open, ConnectResult::Connected, ms(0));
        let inbound = t
            .open_inbound(
                NetworkId(1),
                PORT,
                SocketAddrV4::new([10, 0, 0, 2].into(), 80),
                "198.51.100.1:5000".parse().unwrap(),
                ms(0),
            )
            .unwrap();
        t.moved(inbound, 10, 20, ms(30_000));
        assert!(t.expire(ms(9_999)).is_empty());
        assert_eq!(
            t.expire(ms(10_000)),
            vec![(
                pending,
                Expired::ConnectTimedOut(syn(1), Refusal::Unreachable(ICMP_HOST_UNREACHABLE))
            )]
        );
        assert_eq!(t.expire(ms(60_000)), vec![(open, Expired::Idle)]);
        assert!(t.expire(ms(89_999)).is_empty());
        let f = t.get(inbound).unwrap();
        assert_eq!((f.bytes_out, f.bytes_in), (10, 20));
        assert_eq!(t.expire(ms(90_000)), vec![(inbound, Expired::Idle)]);
        assert!(t.is_empty() && t.by_key.is_empty());
    }

    #[test]
    fn a_full_table_refuses_new_flows() {
        let mut t = TcpTable::new(2, TCP_IDLE, CONNECT_TIMEOUT);
        connecting(&mut t, key(1), ms(0));
        let client: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let container = SocketAddrV4::new([10, 0, 0, 2].into(), 80);
        let id = t
            .open_inbound(NetworkId(1), PORT, container, client, ms(0))
            .unwrap();
        // Two flows in all: no more inbound ones.
        assert!(t
            .open_inbound(NetworkId(1), PORT, container, client, ms(0))
            .is_none());
        // Outbound connects count only themselves: one of two is taken.
        assert!(matches!(
            t.on_syn(key(2), PORT, syn(1), ms(0)),
            SynAction::Connect(_)
        ));
        assert_eq!(t.on_syn(key(3), PORT, syn(1), ms(0)), SynAction::Busy);
        t.remove(id);
        assert!(
            t.open_inbound(NetworkId(1), PORT, container, client, ms(0))
                .is_none(),
            "still two flows: the two outbound ones"
        );
    }

    #[test]
    fn an_inbound_flow_keeps_its_clients_address_once() {
        let mut t = TcpTable::default();
        let client: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let container = SocketAddrV4::new([10, 0, 0, 2].into(), 80);
        let key = TcpKey {
            network: NetworkId(1),
            container,
            outside: "198.51.100.1:5000".parse().unwrap(),
        };
        let a = t
            .open_inbound(NetworkId(1), PORT, container, client, ms(0))
            .unwrap();
        assert_eq!(t.inbound(&key), None, "not until asked for");
        assert!(t.keep_client_address(a));
        assert_eq!(t.inbound(&key), Some(a));
        // The same client through a second published port to the same container port: the
        // container could not tell the two apart, so the second uses the gateway's address.
        let b = t
            .open_inbound(NetworkId(1), PORT, container, client, ms(0))
            .unwrap();
        assert!(!t.keep_client_address(b));
        t.remove(b);
        assert_eq!(t.inbound(&key), Some(a), "removing b leaves a's key");
        t.remove(a);
        assert_eq!(t.inbound(&key), None);
        // IPv6 clients cannot be shown to an IPv4 container.
        let v6: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        let c = t
            .open_inbound(NetworkId(1), PORT, container, v6, ms(0))
            .unwrap();
        assert!(!t.keep_client_address(c));
        // Outbound flows are never taken for inbound ones.
        assert!(!t.keep_client_address(FlowId(9999)));
    }

    #[test]
    fn one_network_cannot_take_the_table_from_the_others() {
        let mut t = TcpTable::default();
        let key_in = |network: u32, cport: u16| TcpKey {
            network: NetworkId(network),
            ..key(cport)
        };
        // Flows spread over endpoints as their shares allow.
        let port_of = |n: usize, per: usize| PortId(100 + (n / per) as u32);
        // A SYN flood from network 1's endpoints to a black-holed address: its connects
        // under way are bounded; network 2 still connects.
        for cport in 0..MAX_CONNECTING_PER_NETWORK as u16 {
            let port = port_of(cport.into(), MAX_CONNECTING_PER_ENDPOINT);
            let action = t.on_syn(key_in(1, cport), port, syn(1), ms(0));
            assert!(matches!(action, SynAction::Connect(_)), "{cport}");
        }
        let flood = key_in(1, 60_000);
        assert_eq!(t.on_syn(flood, PortId(99), syn(1), ms(0)), SynAction::Busy);
        assert!(matches!(
            t.on_syn(key_in(2, 1), PORT, syn(1), ms(0)),
            SynAction::Connect(_)
        ));
        // The connects time out (the container hears "host unreachable"): room again.
        let expired = t.expire(ms(CONNECT_TIMEOUT.as_millis() as u64));
        assert_eq!(expired.len(), MAX_CONNECTING_PER_NETWORK + 1);
        assert!(matches!(
            t.on_syn(
                flood,
                PORT,
                syn(1),
                ms(CONNECT_TIMEOUT.as_millis() as u64 + 5_000)
            ),
            SynAction::Connect(_)
        ));
        // Open connections count against the network's share, not its connects.
        let now = ms(CONNECT_TIMEOUT.as_millis() as u64 + 5_000);
        let mut opened = 0;
        for cport in 1.. {
            let port = port_of(cport.into(), MAX_TCP_FLOWS_PER_ENDPOINT);
            match t.on_syn(key_in(3, cport), port, syn(1), now) {
                SynAction::Connect(id) => {
                    t.connect_result(id, ConnectResult::Connected, now);
                    opened += 1;
                }
                SynAction::Busy => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(opened, MAX_TCP_FLOWS_PER_NETWORK);
    }

    #[test]
    fn one_endpoint_cannot_take_its_networks_share_from_its_neighbours() {
        let mut t = TcpTable::default();
        let (flooder, neighbour) = (PortId(1), PortId(2));
        for cport in 0..MAX_CONNECTING_PER_ENDPOINT as u16 {
            let action = t.on_syn(key(cport), flooder, syn(1), ms(0));
            assert!(matches!(action, SynAction::Connect(_)), "{cport}");
        }
        // The flooder's next SYN is refused; its neighbour on the same network connects.
        assert_eq!(t.on_syn(key(999), flooder, syn(1), ms(0)), SynAction::Busy);
        let other = TcpKey {
            container: SocketAddrV4::new([10, 0, 0, 3].into(), 999),
            ..key(999)
        };
        let id = match t.on_syn(other, neighbour, syn(1), ms(0)) {
            SynAction::Connect(id) => id,
            a => panic!("{a:?}"),
        };
        // Open flows count against the endpoint's share of open flows, not its connects.
        t.connect_result(id, ConnectResult::Connected, ms(1));
        let mut opened = 1;
        for cport in 1000.. {
            let k = TcpKey {
                container: SocketAddrV4::new([10, 0, 0, 3].into(), cport),
                ..key(0)
            };
            match t.on_syn(k, neighbour, syn(1), ms(1)) {
                SynAction::Connect(id) => {
                    t.connect_result(id, ConnectResult::Connected, ms(1));
                    opened += 1;
                }
                SynAction::Busy => break,
                a => panic!("{a:?}"),
            }
        }
        assert_eq!(opened, MAX_TCP_FLOWS_PER_ENDPOINT);
        // The flooder's connects time out: its share is free again, and nothing is left
        // of it once its flows are gone.
        let timed_out = t.expire(ms(CONNECT_TIMEOUT.as_millis() as u64));
        assert_eq!(timed_out.len(), MAX_CONNECTING_PER_ENDPOINT);
        assert!(!t.load.contains_key(&Share::Endpoint(flooder)));
        assert!(matches!(
            t.on_syn(
                key(999),
                flooder,
                syn(1),
                ms(CONNECT_TIMEOUT.as_millis() as u64 + 4_000)
            ),
            SynAction::Connect(_)
        ));
    }

    #[test]
    fn idle_open_flows_expire_after_the_rfc_5382_minimum() {
        let mut t = TcpTable::default();
        let id = connecting(&mut t, key(1), ms(0));
        t.connect_result(id, ConnectResult::Connected, ms(0));
        let just_before = TCP_IDLE.as_millis() as u64 - 1;
        assert!(t.expire(ms(just_before)).is_empty());
        assert!(TCP_IDLE >= Duration::from_secs(2 * 3600 + 4 * 60));
        assert_eq!(t.expire(ms(just_before + 1)), vec![(id, Expired::Idle)]);
    }
}
