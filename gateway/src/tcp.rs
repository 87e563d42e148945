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
mod tests;
