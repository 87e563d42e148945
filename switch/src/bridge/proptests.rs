//! Property tests: `process` never panics, verdicts never cross networks or
//! return to the ingress port, and FDB bounds always hold.

use super::*;
use crate::fdb::FdbOrigin;
use proptest::prelude::*;

const NETS: [NetworkId; 3] = [NetworkId(1), NetworkId(2), NetworkId(3)];

/// A small pool of station addresses so that learning actually kicks in;
/// index 0 is the broadcast address and index 1 is all-zero.
fn pool_mac(i: u8) -> MacAddr {
    match i % 10 {
        0 => MacAddr::BROADCAST,
        1 => MacAddr::ZERO,
        2 => MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]),
        n => MacAddr::local_from_bytes([0, 0, 0, 0, n]),
    }
}

fn frame(dst: u8, src: u8, ethertype: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(ETHERNET_HEADER_LEN)];
    f[..6].copy_from_slice(&pool_mac(dst).0);
    f[6..12].copy_from_slice(&pool_mac(src).0);
    f[12..14].copy_from_slice(&ethertype.to_be_bytes());
    f.truncate(len);
    f
}

/// Frames: either arbitrary bytes, or well-formed headers over the MAC pool
/// with lengths around the (small) test MTUs.
fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..96),
        (
            any::<u8>(),
            any::<u8>(),
            prop_oneof![Just(0x0800u16), Just(0x8100), any::<u16>()],
            0usize..120
        )
            .prop_map(|(d, s, t, len)| frame(d, s, t, len)),
    ]
}

/// Ports 1..=3 in network 1 (MTU 64), ports 4..=6 in network 2 (MTU 80),
/// port 7 alone in network 3. Ports 0 and 8 are unknown.
fn topology() -> Bridge {
    let mut b = Bridge::new();
    for (net, mtu) in NETS.iter().zip([64u16, 80, 1500]) {
        let cfg = NetworkConfig {
            mtu,
            aging: Duration::from_secs(5),
            max_fdb_entries: 6,
            max_fdb_entries_per_port: 3,
            gateway: None,
            icc: true,
        };
        b.add_network(*net, cfg).unwrap();
    }
    for port in 1..=7u32 {
        let net = NETS[((port - 1) / 3) as usize];
        b.add_port(PortId(port), net).unwrap();
    }
    b
}

/// Runs `process` once and checks the verdict against the topology.
fn check_verdict(
    b: &mut Bridge,
    now: Timestamp,
    in_port: PortId,
    bytes: &[u8],
    gso: bool,
) -> Result<(), TestCaseError> {
    let in_net = b.port_network(in_port);
    let offload = Offload {
        gso,
        ..Offload::NONE
    };
    // The dry run (a synthetic trace) changes nothing and foretells the live decision.
    let before = tables_of(b, now);
    let mut simulated_steps = Vec::new();
    let simulated = owned(b.simulate_traced(now, in_port, bytes, offload, &mut |s| {
        simulated_steps.push(s)
    }));
    prop_assert_eq!(
        &tables_of(b, now),
        &before,
        "simulate_traced changed the tables"
    );
    let mut live_steps = Vec::new();
    let live = owned(b.process_traced(now, in_port, bytes, offload, &mut |s| live_steps.push(s)));
    prop_assert_eq!(&simulated, &live);
    prop_assert_eq!(&simulated_steps, &live_steps);
    let (targets, drop, _) = live;
    prop_assert!(
        drop.is_some() || !targets.is_empty() || simulated.2.is_some() || in_net.is_none(),
        "empty flood set"
    );
    let Some(in_net) = in_net else {
        prop_assert_eq!(drop, Some(DropReason::UnknownPort));
        return Ok(());
    };
    for t in &targets {
        prop_assert_ne!(*t, in_port, "verdict returns to the ingress port");
        prop_assert_eq!(b.port_network(*t), Some(in_net), "verdict crosses networks");
    }
    if let Some(r) = drop {
        prop_assert_ne!(r, DropReason::UnknownPort);
        if bytes.len() < ETHERNET_HEADER_LEN {
            prop_assert_eq!(r, DropReason::Runt);
        }
    }
    Ok(())
}

/// A verdict that borrows nothing: targets, drop reason, gateway task.
type OwnedVerdict = (Vec<PortId>, Option<DropReason>, Option<crate::GatewayTask>);

fn owned(v: Verdict<'_>) -> OwnedVerdict {
    match v {
        Verdict::Forward(p) => (vec![p], None, None),
        Verdict::Flood(set) => (set.collect(), None, None),
        Verdict::Drop(r) => (Vec::new(), Some(r), None),
        Verdict::ToGateway(t) => (Vec::new(), None, Some(t)),
    }
}

/// Everything a decision may change: each network's FDB, statistics and neighbours.
fn tables_of(b: &Bridge, now: Timestamp) -> Vec<(Vec<FdbEntry>, Option<NetworkStats>, usize)> {
    NETS.iter()
        .map(|&n| {
            let learned = b.fdb(n).map_or(0, |f| f.learned_count());
            (b.fdb_entries(n, now), b.network_stats(n), learned)
        })
        .collect()
}

fn check_bounds(b: &Bridge, now: Timestamp) -> Result<(), TestCaseError> {
    for net in NETS {
        let (Some(fdb), Some(cfg)) = (b.fdb(net), b.network_config(net)) else {
            continue;
        };
        prop_assert!(fdb.learned_count() <= cfg.max_fdb_entries);
        prop_assert_eq!(fdb.len(), fdb.learned_count() + fdb.static_count());
        let mut per_port_sum = 0;
        for port in b.network_ports(net) {
            prop_assert!(fdb.learned_on_port(*port) <= cfg.max_fdb_entries_per_port);
            per_port_sum += fdb.learned_on_port(*port);
        }
        prop_assert_eq!(per_port_sum, fdb.learned_count());
        let entries = b.fdb_entries(net, now);
        let learned = entries
            .iter()
            .filter(|e| e.origin == FdbOrigin::Learned)
            .count();
        prop_assert!(learned <= cfg.max_fdb_entries);
        prop_assert!(entries.windows(2).all(|w| w[0].mac < w[1].mac));
        for e in &entries {
            // Every entry points at a port of its own network, and is live.
            prop_assert_eq!(b.port_network(e.port), Some(net));
            prop_assert!(e.mac.is_unicast() && !e.mac.is_zero());
            prop_assert!(e.age < cfg.aging || e.origin == FdbOrigin::Static);
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Op {
    Frame {
        port: u32,
        bytes: Vec<u8>,
        gso: bool,
        advance_ms: u64,
    },
    AddStatic {
        net: usize,
        mac: u8,
        port: u32,
    },
    RemoveStatic {
        net: usize,
        mac: u8,
    },
    RemovePort(u32),
    AddPort {
        port: u32,
        net: usize,
    },
    Expire,
    Reconfigure {
        net: usize,
        aging_s: u64,
        max: usize,
        per_port: usize,
    },
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0u32..9, any_frame(), prop::bool::weighted(0.1), 0u64..2_000)
            .prop_map(|(port, bytes, gso, advance_ms)| Op::Frame { port, bytes, gso, advance_ms }),
        1 => (0usize..3, any::<u8>(), 0u32..9).prop_map(|(net, mac, port)| Op::AddStatic { net, mac, port }),
        1 => (0usize..3, any::<u8>()).prop_map(|(net, mac)| Op::RemoveStatic { net, mac }),
        1 => (0u32..9).prop_map(Op::RemovePort),
        1 => (0u32..9, 0usize..3).prop_map(|(port, net)| Op::AddPort { port, net }),
        1 => Just(Op::Expire),
        1 => (0usize..3, 0u64..10, 0usize..8, 0usize..5)
            .prop_map(|(net, aging_s, max, per_port)| Op::Reconfigure { net, aging_s, max, per_port }),
    ]
}

fn apply(b: &mut Bridge, now: &mut Timestamp, op: &Op) -> Result<(), TestCaseError> {
    match op {
        Op::Frame {
            port,
            bytes,
            gso,
            advance_ms,
        } => {
            *now = *now + Duration::from_millis(*advance_ms);
            check_verdict(b, *now, PortId(*port), bytes, *gso)?;
        }
        Op::AddStatic { net, mac, port } => {
            let (net, mac, port) = (NETS[*net], pool_mac(*mac), PortId(*port));
            let res = b.add_static(net, mac, port);
            let valid = mac.is_unicast() && !mac.is_zero() && b.port_network(port) == Some(net);
            prop_assert_eq!(res.is_ok(), valid);
            if valid {
                prop_assert_eq!(b.lookup(net, mac, *now).map(|e| e.port), Some(port));
            }
        }
        Op::RemoveStatic { net, mac } => {
            let (net, mac) = (NETS[*net], pool_mac(*mac));
            let _ = b.remove_static(net, mac);
            let entry = b.lookup(net, mac, *now);
            prop_assert!(entry.is_none_or(|e| e.origin == FdbOrigin::Learned));
        }
        Op::RemovePort(port) => {
            let port = PortId(*port);
            let net = b.port_network(port);
            prop_assert_eq!(b.remove_port(port).is_ok(), net.is_some());
            if let Some(net) = net {
                prop_assert!(b.fdb_entries(net, *now).iter().all(|e| e.port != port));
            }
        }
        Op::AddPort { port, net } => {
            let _ = b.add_port(PortId(*port), NETS[*net]);
        }
        Op::Expire => {
            b.expire(*now);
            for net in NETS {
                if let Some(fdb) = b.fdb(net) {
                    prop_assert_eq!(fdb.len(), b.fdb_entries(net, *now).len());
                }
            }
        }
        Op::Reconfigure {
            net,
            aging_s,
            max,
            per_port,
        } => {
            let cfg = NetworkConfig {
                aging: Duration::from_secs(*aging_s),
                mtu: 64,
                max_fdb_entries: *max,
                max_fdb_entries_per_port: *per_port,
                gateway: None,
                icc: true,
            };
            b.set_network_config(NETS[*net], cfg).unwrap();
        }
    }
    check_bounds(b, *now)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (a) Arbitrary bytes never panic; targets stay in the ingress network
    /// and never include the ingress port.
    #[test]
    fn process_is_total_and_stays_in_network(
        inputs in proptest::collection::vec((0u32..9, any_frame(), any::<bool>(), 0u64..3_000), 1..64)
    ) {
        let mut b = topology();
        let mut now = Timestamp::ZERO;
        for (port, bytes, gso, advance) in &inputs {
            now = now + Duration::from_millis(*advance);
            check_verdict(&mut b, now, PortId(*port), bytes, *gso)?;
        }
    }

    /// (b) Random control-plane and data-plane operations over the networks
    /// never produce a verdict crossing networks; (c) the FDB bounds and
    /// bookkeeping hold after every step.
    #[test]
    fn random_operations_keep_networks_isolated_and_bounded(
        ops in proptest::collection::vec(any_op(), 1..96)
    ) {
        let mut b = topology();
        let mut now = Timestamp::ZERO;
        for op in &ops {
            apply(&mut b, &mut now, op)?;
        }
    }

    /// (c) A flood of distinct source addresses never exceeds the bounds.
    #[test]
    fn fdb_never_exceeds_bounds(
        max in 0usize..16,
        per_port in 0usize..8,
        frames in proptest::collection::vec((1u32..=3, any::<[u8; 5]>(), 0u64..500), 1..200)
    ) {
        let mut b = Bridge::new();
        let cfg = NetworkConfig {
            aging: Duration::from_secs(10),
            max_fdb_entries: max,
            max_fdb_entries_per_port: per_port,
            ..NetworkConfig::default()
        };
        b.add_network(NETS[0], cfg).unwrap();
        for port in 1..=3 {
            b.add_port(PortId(port), NETS[0]).unwrap();
        }
        let mut now = Timestamp::ZERO;
        for (port, src, advance) in &frames {
            now = now + Duration::from_millis(*advance);
            let mut f = [0u8; 60];
            f[..6].copy_from_slice(&MacAddr::BROADCAST.0);
            f[6..12].copy_from_slice(&MacAddr::local_from_bytes(*src).0);
            let v = b.process(now, PortId(*port), &f, Offload::NONE);
            prop_assert!(matches!(v, Verdict::Flood(_)));
            check_bounds(&b, now)?;
        }
        let stats = b.network_stats(NETS[0]).unwrap();
        let fdb = b.fdb(NETS[0]).unwrap();
        prop_assert!(stats.learned - stats.aged_out >= fdb.learned_count() as u64);
    }
}
