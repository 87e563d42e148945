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
