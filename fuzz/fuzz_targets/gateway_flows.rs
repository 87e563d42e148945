//! The gateway's flow state machines driven the way hostile containers and outside hosts can
//! drive them: `TcpTable` (SYNs, connect results, published connections, expiry), `EchoNat`
//! (echo requests written by the container, replies read from the outside as raw IPv4),
//! `UdpClients` (published UDP clients) and `FlowTable` with shares per holder and per
//! network (the UDP NAT's). Each is
//! checked against a plain model of what it holds.
//!
//! Input: `[tcp_max, echo_max, udp_range, flow_max, ops...]`; each op is one byte whose low
//! 4 bits pick the operation and whose high bits (and the next bytes) its arguments. Three
//! networks, four endpoint ports, eight outside addresses keep collisions likely.
//!
//! Invariants: the tables hold what the model holds; every refusal is one the model says is
//! due (a neighbour is never refused for another endpoint's load); no share is ever exceeded;
//! a published UDP port never goes to a second live client; rewritten echo messages carry
//! valid checksums and the container's identifier comes back only from the pinged address.
#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use weft_gateway::echo::{
    EchoError, EchoNat, MAX_ECHO_FLOWS_PER_ENDPOINT, MAX_ECHO_FLOWS_PER_NETWORK,
};
use weft_gateway::flows::{FlowTable, Full, Holder};
use weft_gateway::published_udp::UdpClients;
use weft_gateway::tcp::{
    ConnectAction, ConnectResult, Direction, Expired, FlowId, FlowState, SynAction, TcpKey,
    TcpTable, FAILED_CONNECT_MEMORY, MAX_CONNECTING_PER_ENDPOINT, MAX_CONNECTING_PER_NETWORK,
    MAX_TCP_FLOWS_PER_ENDPOINT, MAX_TCP_FLOWS_PER_NETWORK,
};
use weft_gateway::Timestamp;
use weft_switch::{NetworkId, PortId};
use weft_wire::internet_checksum;

const IDLE: Duration = Duration::from_millis(1000);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const UDP_FIRST: u16 = 60000;
const FLOW_SHARE: usize = 6;
const FLOW_NETWORK_SHARE: usize = 10;

/// The input, read a byte at a time; 0 once it ends.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
}

/// An endpoint: its port and network fix its address, as in the runtime's registry.
fn endpoint(b: u8) -> (NetworkId, PortId, Ipv4Addr) {
    let network = NetworkId(u32::from(b % 3));
    let port = PortId(u32::from(b / 3 % 4));
    let ip = Ipv4Addr::new(10, network.0 as u8, 0, 2 + port.0 as u8);
    (network, port, ip)
}

fn outside(b: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, b % 8)
}

#[derive(Debug, Clone)]
struct TcpModel {
    network: NetworkId,
    port: PortId,
    key: Option<TcpKey>,
    connecting: bool,
    created: u64,
    last_active: u64,
}

/// Outbound flows of one share: (open or connecting, connecting).
type Load = (usize, usize);

#[derive(Default)]
struct Tcp {
    table: TcpTable,
    max: usize,
    flows: BTreeMap<FlowId, TcpModel>,
    failed: HashMap<TcpKey, u64>,
    /// The outbound flows by key, and the loads of the shares.
    by_key: HashMap<TcpKey, FlowId>,
    outbound: usize,
    per_network: HashMap<NetworkId, Load>,
    per_endpoint: HashMap<PortId, Load>,
}

impl Tcp {
    /// Adds (`sign` 1) or takes away (-1) an outbound flow's load.
    fn count(&mut self, f: &TcpModel, sign: isize) {
        if f.key.is_none() {
            return;
        }
        let conn = isize::from(f.connecting);
        let add = |n: &mut usize, d: isize| *n = n.checked_add_signed(d).expect("load");
        add(&mut self.outbound, sign);
        for load in [
            self.per_network.entry(f.network).or_default(),
            self.per_endpoint.entry(f.port).or_default(),
        ] {
            add(&mut load.0, sign);
            add(&mut load.1, sign * conn);
        }
    }

    fn insert_flow(&mut self, id: FlowId, f: TcpModel) {
        self.count(&f, 1);
        if let Some(key) = f.key {
            self.by_key.insert(key, id);
        }
        self.flows.insert(id, f);
    }

    fn remove_flow(&mut self, id: FlowId) -> Option<TcpModel> {
        let f = self.flows.remove(&id)?;
        self.count(&f, -1);
        if let Some(key) = f.key {
            assert_eq!(self.by_key.remove(&key), Some(id));
        }
        Some(f)
    }

    fn open_flow(&mut self, id: FlowId, now: u64) {
        let f = self.remove_flow(id).expect("a live flow");
        let open = TcpModel {
            connecting: false,
            last_active: now,
            ..f
        };
        self.insert_flow(id, open);
    }

    /// Whether the model says a new outbound flow of `key` on `port` is refused.
    fn full(&self, key: &TcpKey, port: PortId) -> bool {
        let net = self
            .per_network
            .get(&key.network)
            .copied()
            .unwrap_or_default();
        let ep = self.per_endpoint.get(&port).copied().unwrap_or_default();
        self.outbound >= self.max
            || net.0 >= MAX_TCP_FLOWS_PER_NETWORK.min(self.max)
            || net.1 >= MAX_CONNECTING_PER_NETWORK
            || ep.0 >= MAX_TCP_FLOWS_PER_ENDPOINT
            || ep.1 >= MAX_CONNECTING_PER_ENDPOINT
    }

    fn syn(&mut self, key: TcpKey, port: PortId, now: u64) {
        let syn = vec![key.container.port() as u8; 3];
        let action = self
            .table
            .on_syn(key, port, syn.clone(), Timestamp::from_millis(now));
        let live = self.by_key.get(&key).map(|id| (id, &self.flows[id]));
        let remembered = self
            .failed
            .get(&key)
            .is_some_and(|&at| now.saturating_sub(at) < FAILED_CONNECT_MEMORY.as_millis() as u64);
        match action {
            SynAction::Answer(back, _) => {
                assert!(remembered, "a SYN answered from a failure not remembered");
                assert_eq!(back, syn);
            }
            SynAction::Pending => {
                assert!(!remembered && live.is_some_and(|(_, f)| f.connecting));
            }
            SynAction::ToStack(back) => {
                assert!(!remembered && live.is_some_and(|(_, f)| !f.connecting));
                assert_eq!(back, syn);
            }
            SynAction::Busy => {
                assert!(!remembered && live.is_none());
                assert!(
                    self.full(&key, port),
                    "a SYN refused with room in every share"
                );
            }
            SynAction::Connect(id) => {
                assert!(!remembered && live.is_none());
                assert!(!self.full(&key, port), "a share exceeded");
                assert!(
                    !self.flows.contains_key(&id),
                    "a live flow's id handed out again"
                );
                self.failed.remove(&key);
                let flow = TcpModel {
                    network: key.network,
                    port,
                    key: Some(key),
                    connecting: true,
                    created: now,
                    last_active: now,
                };
                self.insert_flow(id, flow);
            }
        }
    }

    fn connect_result(&mut self, pick: u8, result: u8, now: u64) {
        let id = self.pick(pick);
        let result = match result % 4 {
            0 => ConnectResult::Connected,
            1 => ConnectResult::Refused,
            2 => ConnectResult::Unreachable(result),
            _ => ConnectResult::TimedOut,
        };
        let action = self
            .table
            .connect_result(id, result, Timestamp::from_millis(now));
        let connecting = self.flows.get(&id).is_some_and(|f| f.connecting);
        match action {
            ConnectAction::Nothing => assert!(!connecting),
            ConnectAction::Accept(_) => {
                assert!(connecting && result == ConnectResult::Connected);
                self.open_flow(id, now);
            }
            ConnectAction::Answer(..) => {
                assert!(connecting && result != ConnectResult::Connected);
                let flow = self.remove_flow(id).expect("checked");
                self.failed.insert(flow.key.expect("outbound"), now);
            }
        }
    }

    /// A flow id: mostly a live one, sometimes one that never was.
    fn pick(&self, b: u8) -> FlowId {
        match self
            .flows
            .keys()
            .nth(usize::from(b) % (self.flows.len() + 1))
        {
            Some(&id) => id,
            None => FlowId(u32::from(b) << 20),
        }
    }

    fn expire(&mut self, now: u64) {
        let (idle, timeout) = (IDLE.as_millis() as u64, CONNECT_TIMEOUT.as_millis() as u64);
        let mut gone = self.table.expire(Timestamp::from_millis(now));
        gone.sort_by_key(|(id, _)| *id);
        let mut due: Vec<FlowId> = self
            .flows
            .iter()
            .filter(|(_, f)| match f.connecting {
                true => now.saturating_sub(f.created) >= timeout,
                false => now.saturating_sub(f.last_active) >= idle,
            })
            .map(|(&id, _)| id)
            .collect();
        due.sort();
        let ids: Vec<FlowId> = gone.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, due, "expired flows differ from the model's");
        let memory = FAILED_CONNECT_MEMORY.as_millis() as u64;
        self.failed.retain(|_, at| now.saturating_sub(*at) < memory);
        for (id, why) in gone {
            let flow = self.remove_flow(id).expect("due");
            assert_eq!(flow.connecting, matches!(why, Expired::ConnectTimedOut(..)));
            // A connect that timed out is remembered as a failure.
            if flow.connecting {
                self.failed.insert(flow.key.expect("outbound"), now);
            }
        }
    }

    /// A network removed: its flows first, then what the table remembers of it (the
    /// runtime's order).
    fn remove_network(&mut self, network: NetworkId) {
        for id in self.table.matching(|f| f.network == network) {
            assert!(self.table.remove(id).is_some());
            assert!(self.remove_flow(id).is_some_and(|f| f.network == network));
        }
        self.table.forget_network(network);
        self.failed.retain(|k, _| k.network != network);
    }

    fn check(&self) {
        assert_eq!(self.table.len(), self.flows.len());
        for (id, f) in self.table.iter() {
            let m = self.flows.get(&id).expect("a flow the model does not have");
            assert_eq!((f.network, f.port), (m.network, m.port));
            assert_eq!(
                matches!(f.state, FlowState::Connecting { .. }),
                m.connecting
            );
            assert_eq!(f.direction == Direction::Out, m.key.is_some());
        }
    }
}

fn tcp_op(tcp: &mut Tcp, op: u8, input: &mut Input, now: u64) {
    match op % 10 {
        0 | 1 | 8 => {
            let (network, port, ip) = endpoint(input.byte());
            let (o, p) = (input.byte(), input.byte());
            let key = TcpKey {
                network,
                container: SocketAddrV4::new(ip, 40000 + u16::from(p % 4)),
                outside: SocketAddrV4::new(outside(o), 80),
            };
            tcp.syn(key, port, now);
        }
        2 => {
            // A burst: one endpoint's SYNs to many outside ports (a flood).
            let (network, port, ip) = endpoint(input.byte());
            let n = input.byte() % 48;
            for i in 0..u16::from(n) {
                let key = TcpKey {
                    network,
                    container: SocketAddrV4::new(ip, 40000),
                    outside: SocketAddrV4::new(outside(n), 1000 + i),
                };
                tcp.syn(key, port, now);
            }
        }
        3 => tcp.connect_result(input.byte(), input.byte(), now),
        4 => {
            let (network, port, ip) = endpoint(input.byte());
            let client = SocketAddr::V4(SocketAddrV4::new(outside(input.byte()), 5000));
            let container = SocketAddrV4::new(ip, 80);
            let full = tcp.table.len() >= tcp.max;
            let at = Timestamp::from_millis(now);
            match tcp.table.open_inbound(network, port, container, client, at) {
                None => assert!(full),
                Some(id) => {
                    assert!(!full && !tcp.flows.contains_key(&id));
                    let flow = TcpModel {
                        network,
                        port,
                        key: None,
                        connecting: false,
                        created: now,
                        last_active: now,
                    };
                    tcp.insert_flow(id, flow);
                }
            }
        }
        5 => {
            let id = tcp.pick(input.byte());
            tcp.table.moved(id, 10, 20, Timestamp::from_millis(now));
            if let Some(f) = tcp.flows.get_mut(&id) {
                f.last_active = now;
            }
        }
        6 => {
            let id = tcp.pick(input.byte());
            assert_eq!(
                tcp.table.remove(id).is_some(),
                tcp.remove_flow(id).is_some()
            );
        }
        7 => tcp.expire(now),
        _ => tcp.remove_network(endpoint(input.byte()).0),
    }
    assert_eq!(tcp.table.len(), tcp.flows.len());
}

/// An echo request as the container writes it (valid or not).
fn echo_request(input: &mut Input) -> Vec<u8> {
    let form = input.byte();
    let ident = input.u16();
    let mut icmp = vec![8, 0, 0, 0, (ident >> 8) as u8, ident as u8, 0, 1, 0xab];
    match form % 4 {
        0 => icmp[0] = input.byte(),
        1 => icmp[1] = input.byte(),
        2 => icmp.truncate(usize::from(input.byte() % 10)),
        _ => {}
    }
    icmp
}

/// A packet from the outside as a raw socket reads it: an echo reply (valid or not).
fn echo_reply(input: &mut Input, flows: &HashMap<u16, (Ipv4Addr, u16, Ipv4Addr)>) -> Vec<u8> {
    let form = input.byte();
    let mut wire = input.u16();
    let mut from = outside(input.byte());
    if form & 0x10 != 0 {
        // A reply to a live flow, from its outside address.
        let mut live: Vec<_> = flows.iter().collect();
        live.sort();
        if let Some((&w, &(_, _, o))) = live.get(usize::from(form >> 5) % live.len().max(1)) {
            wire = w;
            from = o;
        }
    }
    let mut icmp = vec![0, 0, 0, 0, (wire >> 8) as u8, wire as u8, 0, 1, 0xcd];
    let sum = internet_checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let total = 20 + icmp.len() as u16;
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0,
        0,
        64,
        1,
        0,
        0,
    ];
    ip.extend_from_slice(&from.octets());
    ip.extend_from_slice(&[10, 0, 0, 1]);
    ip.extend_from_slice(&icmp);
    let sum = internet_checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    match form % 4 {
        0 => ip[9] = input.byte(),
        1 => ip[20] = input.byte(),
        2 => ip[2..4].copy_from_slice(&input.u16().to_be_bytes()),
        _ => {}
    }
    ip
}

struct Echo {
    nat: EchoNat<u8>,
    max: usize,
    /// wire identifier -> (container, its identifier, outside address).
    flows: HashMap<u16, (Ipv4Addr, u16, Ipv4Addr)>,
    networks: HashMap<u16, NetworkId>,
}

fn echo_op(echo: &mut Echo, op: u8, input: &mut Input, now: u64) {
    let at = Timestamp::from_millis(now);
    match op % 9 {
        0..=3 => {
            let (network, _, ip) = endpoint(input.byte());
            let to = outside(input.byte());
            let mut icmp = echo_request(input);
            let valid = icmp.len() >= 8 && icmp[0] == 8 && icmp[1] == 0;
            let ident = icmp.get(4..6).map(|b| u16::from_be_bytes([b[0], b[1]]));
            let known = echo.flows.iter().find(|(w, &(c, i, o))| {
                echo.networks[w] == network && c == ip && Some(i) == ident && o == to
            });
            let known = known.map(|(&w, _)| w);
            let held = echo
                .flows
                .iter()
                .filter(|(w, &(c, ..))| echo.networks[w] == network && c == ip)
                .count();
            let network_held = echo
                .flows
                .keys()
                .filter(|w| echo.networks[*w] == network)
                .count();
            match echo.nat.outbound(network, (ip, to), &mut icmp, || 7, at) {
                Err(EchoError::NotEchoRequest) => assert!(!valid),
                Err(EchoError::Busy) => {
                    assert!(valid && known.is_none() && echo.flows.len() >= echo.max)
                }
                Err(EchoError::EndpointBusy) => {
                    assert!(valid && known.is_none() && held >= MAX_ECHO_FLOWS_PER_ENDPOINT)
                }
                Err(EchoError::NetworkBusy) => {
                    assert!(valid && known.is_none() && network_held >= MAX_ECHO_FLOWS_PER_NETWORK)
                }
                Ok(wire) => {
                    assert!(valid);
                    assert_eq!(u16::from_be_bytes([icmp[4], icmp[5]]), wire);
                    assert_eq!(internet_checksum(&icmp), 0, "rewritten echo checksum");
                    match known {
                        Some(w) => assert_eq!(w, wire),
                        None => {
                            assert!(!echo.flows.contains_key(&wire), "a live wire id reused");
                            assert!(
                                held < MAX_ECHO_FLOWS_PER_ENDPOINT && echo.flows.len() < echo.max
                            );
                            assert!(network_held < MAX_ECHO_FLOWS_PER_NETWORK);
                            echo.flows.insert(wire, (ip, ident.expect("valid"), to));
                            echo.networks.insert(wire, network);
                        }
                    }
                    echo.nat.sent(wire, icmp.len(), at);
                }
            }
        }
        4..=6 => {
            let mut ip = echo_reply(input, &echo.flows);
            let wire = u16::from_be_bytes([ip[24], ip[25]]);
            let from = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
            if let Some((flow, range)) = echo.nat.inbound(&mut ip, at) {
                let (c, i, o) = echo.flows[&wire];
                assert_eq!(
                    (flow.key.container, flow.key.ident, flow.key.outside),
                    (c, i, o)
                );
                assert_eq!(
                    o, from,
                    "a reply taken from another address than the pinged one"
                );
                let icmp = &ip[range];
                assert_eq!(u16::from_be_bytes([icmp[4], icmp[5]]), i);
                assert_eq!(internet_checksum(icmp), 0, "restored reply checksum");
            }
        }
        7 => {
            let before = echo.nat.len();
            let gone = echo.nat.expire(at);
            assert_eq!(before - gone, echo.nat.len());
            let kept: Vec<u16> = echo.nat.iter().map(|(w, _)| w).collect();
            echo.flows.retain(|w, _| kept.contains(w));
        }
        _ => {
            let network = endpoint(input.byte()).0;
            echo.nat.forget_network(network);
            echo.flows.retain(|w, _| echo.networks[w] != network);
        }
    }
    assert_eq!(echo.nat.len(), echo.flows.len());
    for (wire, f) in echo.nat.iter() {
        let (c, i, o) = echo.flows[&wire];
        assert_eq!((f.key.container, f.key.ident, f.key.outside), (c, i, o));
        assert_eq!(f.key.network, echo.networks[&wire]);
    }
}

struct Udp {
    clients: UdpClients,
    range: u16,
    by_port: HashMap<u16, (usize, SocketAddr, u64)>,
}

fn udp_op(udp: &mut Udp, op: u8, input: &mut Input, now: u64) {
    let at = Timestamp::from_millis(now);
    match op % 4 {
        0 | 1 => {
            let published = usize::from(input.byte() % 3);
            let client = SocketAddr::V4(SocketAddrV4::new(outside(input.byte()), input.u16() % 6));
            let had = udp
                .by_port
                .iter()
                .find(|(_, &(p, c, _))| (p, c) == (published, client))
                .map(|(&port, _)| port);
            match udp.clients.port_for(published, client, at) {
                None => assert!(had.is_none() && udp.by_port.len() >= usize::from(udp.range)),
                Some(port) => {
                    assert!((UDP_FIRST..UDP_FIRST + udp.range).contains(&port));
                    match had {
                        Some(p) => assert_eq!(p, port),
                        None => assert!(
                            !udp.by_port.contains_key(&port),
                            "a live client's port handed to a new one"
                        ),
                    }
                    udp.by_port.insert(port, (published, client, now));
                }
            }
        }
        2 => {
            let port = UDP_FIRST + u16::from(input.byte()) % (udp.range + 1);
            let got = udp.clients.client_for(port, at);
            let want = udp.by_port.get_mut(&port);
            assert_eq!(
                got.map(|c| (c.published, c.client)),
                want.as_ref().map(|w| (w.0, w.1))
            );
            if let Some(w) = want {
                w.2 = now;
            }
        }
        _ => {
            if input.byte() % 2 == 0 {
                udp.clients.expire(at);
                let idle = IDLE.as_millis() as u64;
                udp.by_port.retain(|_, w| now.saturating_sub(w.2) < idle);
            } else {
                let published = usize::from(input.byte() % 3);
                udp.clients.forget_published(published);
                udp.by_port.retain(|_, w| w.0 != published);
            }
        }
    }
    assert_eq!(udp.clients.len(), udp.by_port.len());
    if let Some(port) = udp.clients.free_port() {
        assert!(
            !udp.by_port.contains_key(&port),
            "a held port given as free"
        );
    }
}

type FlowKey = (NetworkId, Ipv4Addr, u16);

fn holder_of(k: &FlowKey) -> Holder {
    (k.0, k.1)
}

fn flow_op(table: &mut FlowTable<FlowKey, u8>, max: usize, op: u8, input: &mut Input, now: u64) {
    let at = Timestamp::from_millis(now);
    let (network, _, ip) = endpoint(input.byte());
    let key = (network, ip, u16::from(input.byte() % 16));
    let held = table
        .iter()
        .filter(|(k, _)| holder_of(k) == (network, ip))
        .count();
    let network_held = table.iter().filter(|(k, _)| k.0 == network).count();
    let exists = table.get(&key).is_some();
    let len = table.len();
    match op % 4 {
        0 | 1 => {
            let room = table.room_for(&key);
            match (&room, table.insert(key, 1, at)) {
                (Ok(()), Ok(())) => assert!(
                    exists || (len < max && held < FLOW_SHARE && network_held < FLOW_NETWORK_SHARE)
                ),
                (Err(Full::Table), Err(_)) => assert!(!exists && len >= max),
                (Err(Full::Holder), Err(_)) => assert!(!exists && held >= FLOW_SHARE),
                (Err(Full::Network), Err(_)) => {
                    assert!(!exists && network_held >= FLOW_NETWORK_SHARE)
                }
                (room, insert) => panic!("room_for {room:?} but insert {:?}", insert.is_ok()),
            }
        }
        2 => table.sent(&key, 5, at),
        _ => {
            let _ = table.expire(at);
        }
    }
    let mut per: HashMap<Holder, usize> = HashMap::new();
    let mut per_network: HashMap<NetworkId, usize> = HashMap::new();
    for (k, _) in table.iter() {
        *per.entry(holder_of(k)).or_default() += 1;
        *per_network.entry(k.0).or_default() += 1;
    }
    assert!(table.len() <= max && per.values().all(|&n| n <= FLOW_SHARE));
    assert!(per_network.values().all(|&n| n <= FLOW_NETWORK_SHARE));
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    // Up to 297 flows: the table's, the network's connecting (128) and the endpoint's
    // connecting (32) bounds are all reached; the per-endpoint open bound (256) rarely.
    let tcp_max = 1 + usize::from(input.byte() % 75) * 4;
    let mut tcp = Tcp {
        table: TcpTable::new(tcp_max, IDLE, CONNECT_TIMEOUT),
        max: tcp_max,
        ..Tcp::default()
    };
    let echo_max = 1 + usize::from(input.byte());
    let mut echo = Echo {
        nat: EchoNat::new(IDLE, echo_max),
        max: echo_max,
        flows: HashMap::new(),
        networks: HashMap::new(),
    };
    let range = 1 + u16::from(input.byte() % 32);
    let mut udp = Udp {
        clients: UdpClients::new(UDP_FIRST, UDP_FIRST + range - 1, IDLE),
        range,
        by_port: HashMap::new(),
    };
    let flow_max = 1 + usize::from(input.byte() % 24);
    let mut flows = FlowTable::new(IDLE, flow_max)
        .with_shares(FLOW_SHARE, holder_of)
        .with_network_share(FLOW_NETWORK_SHARE);
    let mut now = 0u64;
    while !input.0.is_empty() {
        let op = input.byte();
        match op & 0x0f {
            0..=8 => tcp_op(&mut tcp, op >> 4 & 0x0f, &mut input, now),
            9..=11 => echo_op(&mut echo, op >> 4 & 0x0f, &mut input, now),
            12 | 13 => udp_op(&mut udp, op >> 4, &mut input, now),
            14 => flow_op(&mut flows, flow_max, op >> 4, &mut input, now),
            _ => now += 50 * u64::from(op >> 4),
        }
    }
    tcp.check();
});
