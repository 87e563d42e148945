//! Unit tests of the bridge and its FDB, with time driven by the test.

use super::*;
use crate::fdb::{FdbOrigin, LearnOutcome};

const N1: NetworkId = NetworkId(1);
const N2: NetworkId = NetworkId(2);

fn p(n: u32) -> PortId {
    PortId(n)
}

fn mac(n: u8) -> MacAddr {
    MacAddr::local_from_bytes([0, 0, 0, 0, n])
}

fn secs(s: u64) -> Timestamp {
    Timestamp::from_millis(s * 1000)
}

fn t0() -> Timestamp {
    Timestamp::ZERO
}

/// A 60-byte IPv4 frame from `src` to `dst`.
fn eth(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    eth_len(dst, src, 0x0800, 60)
}

fn eth_len(dst: MacAddr, src: MacAddr, ethertype: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(ETHERNET_HEADER_LEN)];
    f[..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&ethertype.to_be_bytes());
    f.truncate(len);
    f
}

/// Network 1 with ports 1, 2, 3 and network 2 with ports 4, 5, 6.
fn two_networks() -> Bridge {
    let mut b = Bridge::new();
    b.add_network(N1, NetworkConfig::default()).unwrap();
    b.add_network(N2, NetworkConfig::default()).unwrap();
    for i in 1..=3 {
        b.add_port(p(i), N1).unwrap();
        b.add_port(p(i + 3), N2).unwrap();
    }
    b
}

/// Runs `process` and flattens the verdict into something owned.
#[derive(Debug, PartialEq, Eq)]
enum V {
    Fwd(PortId),
    Flood(Vec<PortId>),
    Drop(DropReason),
    Gw,
}

fn run(b: &mut Bridge, now: Timestamp, port: PortId, frame: &[u8]) -> V {
    run_gso(b, now, port, frame, false)
}

fn run_gso(b: &mut Bridge, now: Timestamp, port: PortId, frame: &[u8], gso: bool) -> V {
    match b.process(
        now,
        port,
        frame,
        Offload {
            gso,
            ..Offload::NONE
        },
    ) {
        Verdict::Forward(p) => V::Fwd(p),
        Verdict::Flood(set) => V::Flood(set.collect()),
        Verdict::Drop(r) => V::Drop(r),
        Verdict::ToGateway(_) => V::Gw,
    }
}

#[test]
fn defaults() {
    let c = NetworkConfig::default();
    assert_eq!(c.aging, Duration::from_secs(300));
    assert_eq!(c.mtu, 1500);
    assert_eq!(c.max_fdb_entries, 8192);
    assert_eq!(c.max_fdb_entries_per_port, 1024);
}

#[test]
fn learns_source_and_forwards_replies() {
    let mut b = two_networks();
    assert_eq!(
        run(&mut b, t0(), p(1), &eth(mac(2), mac(1))),
        V::Flood(vec![p(2), p(3)])
    );
    let e = b.lookup(N1, mac(1), secs(5)).unwrap();
    assert_eq!(
        e,
        FdbEntry {
            mac: mac(1),
            port: p(1),
            origin: FdbOrigin::Learned,
            age: Duration::from_secs(5)
        }
    );
    assert_eq!(
        run(&mut b, secs(1), p(2), &eth(mac(1), mac(2))),
        V::Fwd(p(1))
    );
    assert_eq!(
        run(&mut b, secs(2), p(1), &eth(mac(2), mac(1))),
        V::Fwd(p(2))
    );
    let stats = b.network_stats(N1).unwrap();
    assert_eq!(stats.learned, 2);
    assert_eq!(stats.mac_moves, 0);
    assert_eq!(b.network_stats(N2), Some(NetworkStats::default()));
    let entries = b.fdb_entries(N1, secs(2));
    assert_eq!(
        entries.iter().map(|e| (e.mac, e.port)).collect::<Vec<_>>(),
        [(mac(1), p(1)), (mac(2), p(2))]
    );
    // Learning is per network: nothing leaked into network 2.
    assert!(b.fdb_entries(N2, secs(2)).is_empty());
    assert_eq!(b.lookup(N2, mac(1), secs(2)), None);
}

#[test]
fn entries_age_out_after_aging_time() {
    let mut b = two_networks();
    run(&mut b, t0(), p(1), &eth(MacAddr::BROADCAST, mac(1)));
    assert!(b.lookup(N1, mac(1), secs(299)).is_some());
    assert_eq!(b.fdb_entries(N1, secs(299)).len(), 1);
    // 802.1D §7.9.2: an entry not refreshed for the aging time is removed.
    assert_eq!(b.lookup(N1, mac(1), secs(300)), None);
    assert_eq!(b.lookup(N1, mac(1), secs(301)), None);
    assert!(b.fdb_entries(N1, secs(301)).is_empty());
    // Lazily absent: traffic to it floods again even before expire().
    assert_eq!(
        run(&mut b, secs(301), p(2), &eth(mac(1), mac(2))),
        V::Flood(vec![p(1), p(3)])
    );

    assert_eq!(b.expire(secs(299)), 0);
    assert_eq!(b.fdb(N1).unwrap().len(), 2);
    assert_eq!(b.expire(secs(301)), 1);
    assert_eq!(b.expire(secs(301)), 0);
    assert_eq!(b.fdb(N1).unwrap().learned_count(), 1);
    assert_eq!(b.fdb(N1).unwrap().learned_on_port(p(1)), 0);
    assert_eq!(b.network_stats(N1).unwrap().aged_out, 1);
    // mac(2), learned at 301 s, goes at 601 s.
    assert_eq!(b.expire(secs(600)), 0);
    assert_eq!(b.expire(secs(601)), 1);
}

#[test]
fn traffic_refreshes_entries() {
    let mut b = two_networks();
    let f = eth(MacAddr::BROADCAST, mac(1));
    run(&mut b, t0(), p(1), &f);
    run(&mut b, secs(200), p(1), &f);
    assert_eq!(
        b.lookup(N1, mac(1), secs(450)).unwrap().age,
        Duration::from_secs(250)
    );
    assert_eq!(b.expire(secs(450)), 0);
    assert_eq!(b.expire(secs(500)), 1);
}

#[test]
fn stale_entry_is_relearned_in_place() {
    let mut b = two_networks();
    let f = eth(MacAddr::BROADCAST, mac(1));
    run(&mut b, t0(), p(1), &f);
    run(&mut b, secs(400), p(2), &f);
    // Aged out then learned anew: not a move.
    assert_eq!(b.lookup(N1, mac(1), secs(400)).unwrap().port, p(2));
    let s = b.network_stats(N1).unwrap();
    assert_eq!((s.learned, s.mac_moves, s.aged_out), (2, 0, 1));
    run(&mut b, secs(800), p(2), &f);
    let s = b.network_stats(N1).unwrap();
    assert_eq!((s.learned, s.mac_moves, s.aged_out), (3, 0, 2));
    assert_eq!(b.fdb(N1).unwrap().learned_count(), 1);
    assert_eq!(b.fdb(N1).unwrap().learned_on_port(p(1)), 0);
    assert_eq!(b.fdb(N1).unwrap().learned_on_port(p(2)), 1);
}

#[test]
fn aging_is_configurable_per_network() {
    let mut b = two_networks();
    let short = NetworkConfig {
        aging: Duration::from_secs(10),
        ..NetworkConfig::default()
    };
    run(&mut b, t0(), p(1), &eth(MacAddr::BROADCAST, mac(1)));
    run(&mut b, t0(), p(4), &eth(MacAddr::BROADCAST, mac(1)));
    b.set_network_config(N1, short.clone()).unwrap();
    assert_eq!(b.network_config(N1), Some(&short));
    assert!(b.lookup(N1, mac(1), secs(9)).is_some());
    assert_eq!(b.lookup(N1, mac(1), secs(11)), None);
    assert!(b.lookup(N2, mac(1), secs(11)).is_some());
    assert_eq!(b.expire(secs(11)), 1);
    assert!(b.lookup(N2, mac(1), secs(299)).is_some());
    assert_eq!(b.expire(secs(301)), 1);
    assert_eq!(
        b.set_network_config(NetworkId(9), short),
        Err(BridgeError::UnknownNetwork(NetworkId(9)))
    );
}

#[test]
fn sub_millisecond_aging_rounds_correctly() {
    let mut b = Bridge::new();
    let cfg = NetworkConfig {
        aging: Duration::from_micros(1500),
        ..NetworkConfig::default()
    };
    b.add_network(N1, cfg).unwrap();
    b.add_port(p(1), N1).unwrap();
    b.add_port(p(2), N1).unwrap();
    run(&mut b, t0(), p(1), &eth(MacAddr::BROADCAST, mac(1)));
    assert!(b.lookup(N1, mac(1), Timestamp::from_millis(1)).is_some());
    assert!(b.lookup(N1, mac(1), Timestamp::from_millis(2)).is_none());
}

#[test]
fn zero_aging_learns_nothing_durable() {
    let mut b = Bridge::new();
    let cfg = NetworkConfig {
        aging: Duration::ZERO,
        ..NetworkConfig::default()
    };
    b.add_network(N1, cfg).unwrap();
    b.add_port(p(1), N1).unwrap();
    b.add_port(p(2), N1).unwrap();
    run(&mut b, t0(), p(1), &eth(MacAddr::BROADCAST, mac(1)));
    assert_eq!(b.lookup(N1, mac(1), t0()), None);
    assert_eq!(
        run(&mut b, t0(), p(2), &eth(mac(1), mac(2))),
        V::Flood(vec![p(1)])
    );
}

#[test]
fn time_going_backwards_does_not_break_aging() {
    let mut b = two_networks();
    run(&mut b, secs(1000), p(1), &eth(MacAddr::BROADCAST, mac(1)));
    assert_eq!(b.lookup(N1, mac(1), secs(10)).unwrap().age, Duration::ZERO);
    run(&mut b, secs(10), p(1), &eth(MacAddr::BROADCAST, mac(1)));
    assert_eq!(b.expire(secs(309)), 0);
    assert_eq!(b.expire(secs(310)), 1);
}

#[test]
fn mac_moves_follow_the_station() {
    let mut b = two_networks();
    run(&mut b, t0(), p(1), &eth(MacAddr::BROADCAST, mac(1)));
    run(&mut b, secs(1), p(2), &eth(MacAddr::BROADCAST, mac(1)));
    let e = b.lookup(N1, mac(1), secs(1)).unwrap();
    assert_eq!((e.port, e.age), (p(2), Duration::ZERO));
    let s = b.network_stats(N1).unwrap();
    assert_eq!((s.learned, s.mac_moves), (1, 1));
    let fdb = b.fdb(N1).unwrap();
    assert_eq!(
        (fdb.learned_on_port(p(1)), fdb.learned_on_port(p(2))),
        (0, 1)
    );
    assert_eq!(
        run(&mut b, secs(2), p(3), &eth(mac(1), mac(3))),
        V::Fwd(p(2))
    );
}

#[test]
fn static_entries_are_not_moved_aged_and_go_with_their_port() {
    let mut b = two_networks();
    // A learned entry is replaced by the static one.
    run(&mut b, t0(), p(2), &eth(MacAddr::BROADCAST, mac(1)));
    b.add_static(N1, mac(1), p(1)).unwrap();
    let fdb = b.fdb(N1).unwrap();
    assert_eq!((fdb.learned_count(), fdb.static_count()), (0, 1));
    assert_eq!(fdb.learned_on_port(p(2)), 0);
    let e = b.lookup(N1, mac(1), t0()).unwrap();
    assert_eq!(
        (e.port, e.origin, e.age),
        (p(1), FdbOrigin::Static, Duration::ZERO)
    );

    // Learning never overrides it (no move).
    run(&mut b, secs(1), p(3), &eth(MacAddr::BROADCAST, mac(1)));
    assert_eq!(b.lookup(N1, mac(1), secs(1)).unwrap().port, p(1));
    assert_eq!(b.network_stats(N1).unwrap().mac_moves, 0);
    assert_eq!(
        run(&mut b, secs(1), p(2), &eth(mac(1), mac(2))),
        V::Fwd(p(1))
    );

    // Never aged.
    let late = Timestamp::from_millis(u64::MAX / 2);
    assert_eq!(b.expire(late), 1); // only mac(2), learned
    assert_eq!(
        b.lookup(N1, mac(1), late).unwrap().origin,
        FdbOrigin::Static
    );
    assert_eq!(b.fdb_entries(N1, late).len(), 1);

    // Re-pointing a static entry.
    b.add_static(N1, mac(1), p(3)).unwrap();
    assert_eq!(b.lookup(N1, mac(1), late).unwrap().port, p(3));
    assert_eq!(b.fdb(N1).unwrap().static_count(), 1);

    // Removed with its port.
    b.remove_port(p(3)).unwrap();
    assert_eq!(b.lookup(N1, mac(1), late), None);
    assert_eq!(b.fdb(N1).unwrap().static_count(), 0);
}

#[test]
fn static_entry_errors() {
    let mut b = two_networks();
    for bad in [
        MacAddr::BROADCAST,
        MacAddr::ZERO,
        MacAddr([0x01, 0, 0x5e, 0, 0, 1]),
    ] {
        assert_eq!(
            b.add_static(N1, bad, p(1)),
            Err(BridgeError::InvalidStaticMac(bad))
        );
    }
    assert_eq!(
        b.add_static(NetworkId(7), mac(1), p(1)),
        Err(BridgeError::UnknownNetwork(NetworkId(7)))
    );
    assert_eq!(
        b.add_static(N1, mac(1), p(99)),
        Err(BridgeError::UnknownPort(p(99)))
    );
    assert_eq!(
        b.add_static(N1, mac(1), p(4)),
        Err(BridgeError::PortNotInNetwork {
            port: p(4),
            network: N1
        })
    );
    // remove_static only removes static entries.
    run(&mut b, t0(), p(1), &eth(MacAddr::BROADCAST, mac(1)));
    assert_eq!(
        b.remove_static(N1, mac(1)),
        Err(BridgeError::NoStaticEntry {
            network: N1,
            mac: mac(1)
        })
    );
    assert!(b.lookup(N1, mac(1), t0()).is_some());
    b.add_static(N1, mac(5), p(2)).unwrap();
    assert_eq!(
        b.remove_static(N2, mac(5)),
        Err(BridgeError::NoStaticEntry {
            network: N2,
            mac: mac(5)
        })
    );
    b.remove_static(N1, mac(5)).unwrap();
    assert_eq!(b.lookup(N1, mac(5), t0()), None);
    assert_eq!(
        b.remove_static(NetworkId(7), mac(5)),
        Err(BridgeError::UnknownNetwork(NetworkId(7)))
    );
}

#[test]
fn floods_group_and_unknown_unicast_within_the_network_only() {
    let mut b = two_networks();
    let mcast = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
    let ipv6_mcast = MacAddr([0x33, 0x33, 0, 0, 0, 1]);
    for dst in [MacAddr::BROADCAST, mcast, ipv6_mcast, mac(9)] {
        assert_eq!(
            run(&mut b, t0(), p(2), &eth(dst, mac(2))),
            V::Flood(vec![p(1), p(3)])
        );
        assert_eq!(
            run(&mut b, t0(), p(5), &eth(dst, mac(5))),
            V::Flood(vec![p(4), p(6)])
        );
    }
    // A group destination floods even if "learned" somewhere: never looked up.
    assert_eq!(
        run(&mut b, t0(), p(1), &eth(mcast, mac(1))),
        V::Flood(vec![p(2), p(3)])
    );
}

#[test]
fn networks_are_isolated() {
    let mut b = two_networks();
    // The same two MACs exist in both networks.
    run(&mut b, t0(), p(1), &eth(MacAddr::BROADCAST, mac(1)));
    run(&mut b, t0(), p(4), &eth(MacAddr::BROADCAST, mac(1)));
    run(&mut b, t0(), p(2), &eth(MacAddr::BROADCAST, mac(2)));
    run(&mut b, t0(), p(6), &eth(MacAddr::BROADCAST, mac(2)));
    assert_eq!(b.lookup(N1, mac(1), t0()).unwrap().port, p(1));
    assert_eq!(b.lookup(N2, mac(1), t0()).unwrap().port, p(4));
    assert_eq!(run(&mut b, t0(), p(2), &eth(mac(1), mac(2))), V::Fwd(p(1)));
    assert_eq!(run(&mut b, t0(), p(6), &eth(mac(1), mac(2))), V::Fwd(p(4)));
    // No MAC moves: the entries are independent.
    assert_eq!(b.network_stats(N1).unwrap().mac_moves, 0);
    assert_eq!(b.network_stats(N2).unwrap().mac_moves, 0);
    // Removing a port of one network leaves the other network's entry alone.
    b.remove_port(p(4)).unwrap();
    assert_eq!(b.lookup(N2, mac(1), t0()), None);
    assert_eq!(b.lookup(N1, mac(1), t0()).unwrap().port, p(1));
    assert_eq!(
        run(&mut b, t0(), p(6), &eth(mac(1), mac(2))),
        V::Flood(vec![p(5)])
    );
}

fn bounded(max: usize, per_port: usize) -> Bridge {
    let mut b = Bridge::new();
    let cfg = NetworkConfig {
        max_fdb_entries: max,
        max_fdb_entries_per_port: per_port,
        ..NetworkConfig::default()
    };
    b.add_network(N1, cfg).unwrap();
    for i in 1..=3 {
        b.add_port(p(i), N1).unwrap();
    }
    b
}

#[test]
fn network_bound_refuses_learning_but_still_forwards() {
    let mut b = bounded(3, 10);
    for (i, port) in [(1, 1), (2, 1), (3, 2)] {
        run(&mut b, t0(), p(port), &eth(MacAddr::BROADCAST, mac(i)));
    }
    assert_eq!(
        run(&mut b, t0(), p(3), &eth(mac(1), mac(4))),
        V::Fwd(p(1)),
        "frame is still forwarded"
    );
    assert_eq!(b.lookup(N1, mac(4), t0()), None);
    let s = b.network_stats(N1).unwrap();
    assert_eq!((s.learned, s.learn_refused_table_full), (3, 1));
    assert_eq!(b.fdb(N1).unwrap().learned_count(), 3);
    // Known sources keep being refreshed while full.
    run(&mut b, secs(100), p(1), &eth(MacAddr::BROADCAST, mac(1)));
    assert_eq!(b.lookup(N1, mac(1), secs(100)).unwrap().age, Duration::ZERO);
    // Static entries are not bounded.
    b.add_static(N1, mac(8), p(3)).unwrap();
    assert_eq!(b.fdb(N1).unwrap().len(), 4);
    // Once entries age out (even without expire()), there is room again.
    run(&mut b, secs(301), p(3), &eth(MacAddr::BROADCAST, mac(4)));
    assert_eq!(b.lookup(N1, mac(4), secs(301)).unwrap().port, p(3));
    let s = b.network_stats(N1).unwrap();
    assert_eq!((s.learned, s.aged_out), (4, 2));
    assert_eq!(b.fdb(N1).unwrap().learned_count(), 2);
}

#[test]
fn per_port_bound_refuses_learning_on_that_port_only() {
    let mut b = bounded(100, 2);
    for i in 1..=3 {
        run(&mut b, t0(), p(1), &eth(MacAddr::BROADCAST, mac(i)));
    }
    assert_eq!(b.fdb(N1).unwrap().learned_on_port(p(1)), 2);
    assert_eq!(b.lookup(N1, mac(3), t0()), None);
    run(&mut b, t0(), p(2), &eth(MacAddr::BROADCAST, mac(4)));
    assert_eq!(b.lookup(N1, mac(4), t0()).unwrap().port, p(2));
    assert_eq!(b.network_stats(N1).unwrap().learn_refused_table_full, 1);
}

#[test]
fn move_to_a_full_port_leaves_the_old_location() {
    let mut b = bounded(100, 1);
    run(&mut b, t0(), p(1), &eth(MacAddr::BROADCAST, mac(1)));
    run(&mut b, t0(), p(2), &eth(MacAddr::BROADCAST, mac(2)));
    // mac(1) shows up on port 2, which is full: the move is refused and the entry
    // pointing at port 1 stays (deleting it would let a full port make any station's
    // traffic flood); traffic to mac(1) still goes to port 1.
    run(&mut b, t0(), p(2), &eth(MacAddr::BROADCAST, mac(1)));
    assert_eq!(b.lookup(N1, mac(1), t0()).unwrap().port, p(1));
    assert_eq!(run(&mut b, t0(), p(3), &eth(mac(1), mac(3))), V::Fwd(p(1)));
    let fdb = b.fdb(N1).unwrap();
    assert_eq!(
        (fdb.learned_on_port(p(1)), fdb.learned_on_port(p(2))),
        (1, 1)
    );
    let s = b.network_stats(N1).unwrap();
    assert_eq!((s.mac_moves, s.learn_refused_table_full), (0, 1));
}

#[test]
fn shrinking_bounds_evicts_least_recently_seen() {
    let mut b = bounded(10, 10);
    for i in 1..=6u8 {
        let port = p(u32::from(i % 2) + 1);
        run(
            &mut b,
            secs(u64::from(i)),
            port,
            &eth(MacAddr::BROADCAST, mac(i)),
        );
    }
    b.add_static(N1, mac(20), p(1)).unwrap();
    let cfg = NetworkConfig {
        max_fdb_entries: 3,
        max_fdb_entries_per_port: 1,
        ..NetworkConfig::default()
    };
    b.set_network_config(N1, cfg).unwrap();
    let fdb = b.fdb(N1).unwrap();
    assert_eq!(fdb.learned_count(), 2);
    assert_eq!(fdb.static_count(), 1);
    let left: Vec<_> = b.fdb_entries(N1, secs(6)).iter().map(|e| e.mac).collect();
    assert_eq!(left, [mac(5), mac(6), mac(20)]);
}

#[test]
fn same_segment_frames_are_filtered() {
    let mut b = two_networks();
    run(&mut b, t0(), p(1), &eth(MacAddr::BROADCAST, mac(1)));
    assert_eq!(
        run(&mut b, t0(), p(1), &eth(mac(1), mac(2))),
        V::Drop(DropReason::SameSegment)
    );
    // Even a frame addressed to its own sender.
    assert_eq!(
        run(&mut b, t0(), p(3), &eth(mac(3), mac(3))),
        V::Drop(DropReason::SameSegment)
    );
    // The sender was still learned.
    assert_eq!(b.lookup(N1, mac(2), t0()).unwrap().port, p(1));
}

#[test]
fn every_core_drop_reason() {
    let mut b = two_networks();
    b.add_network(NetworkId(3), NetworkConfig::default())
        .unwrap();
    b.add_port(p(7), NetworkId(3)).unwrap();

    // Runt: anything below 14 bytes, including empty.
    for len in [0, 1, 13] {
        assert_eq!(
            run(&mut b, t0(), p(1), &vec![0xff; len]),
            V::Drop(DropReason::Runt)
        );
    }

    // Oversized: MTU 1500 + 14, or + 18 with an 802.1Q tag; GSO exempt.
    let ok = eth_len(MacAddr::BROADCAST, mac(2), 0x0800, 1514);
    let big = eth_len(MacAddr::BROADCAST, mac(2), 0x0800, 1515);
    let vlan_ok = eth_len(MacAddr::BROADCAST, mac(2), 0x8100, 1518);
    let vlan_big = eth_len(MacAddr::BROADCAST, mac(2), 0x8100, 1519);
    let super_frame = eth_len(MacAddr::BROADCAST, mac(2), 0x0800, 65_000);
    assert!(matches!(run(&mut b, t0(), p(2), &ok), V::Flood(_)));
    assert_eq!(
        run(&mut b, t0(), p(2), &big),
        V::Drop(DropReason::Oversized)
    );
    assert!(matches!(run(&mut b, t0(), p(2), &vlan_ok), V::Flood(_)));
    assert_eq!(
        run(&mut b, t0(), p(2), &vlan_big),
        V::Drop(DropReason::Oversized)
    );
    assert_eq!(
        run(&mut b, t0(), p(2), &super_frame),
        V::Drop(DropReason::Oversized)
    );
    assert!(matches!(
        run_gso(&mut b, t0(), p(2), &super_frame, true),
        V::Flood(_)
    ));

    // Oversized follows the network MTU.
    let jumbo = NetworkConfig {
        mtu: 9000,
        ..NetworkConfig::default()
    };
    b.set_network_config(N1, jumbo).unwrap();
    assert!(matches!(run(&mut b, t0(), p(2), &big), V::Flood(_)));

    // InvalidSourceMac: group or zero source, never learned.
    let mcast = MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]);
    for src in [MacAddr::BROADCAST, mcast, MacAddr::ZERO] {
        assert_eq!(
            run(&mut b, t0(), p(3), &eth(MacAddr::BROADCAST, src)),
            V::Drop(DropReason::InvalidSourceMac)
        );
        assert_eq!(b.lookup(N1, src, t0()), None);
    }

    // SameSegment: see `same_segment_frames_are_filtered`.
    run(&mut b, t0(), p(3), &eth(MacAddr::BROADCAST, mac(3)));
    assert_eq!(
        run(&mut b, t0(), p(3), &eth(mac(3), mac(4))),
        V::Drop(DropReason::SameSegment)
    );

    // NoDestination: the only port of its network.
    assert_eq!(
        run(&mut b, t0(), p(7), &eth(MacAddr::BROADCAST, mac(7))),
        V::Drop(DropReason::NoDestination)
    );
    assert_eq!(
        run(&mut b, t0(), p(7), &eth(mac(8), mac(7))),
        V::Drop(DropReason::NoDestination)
    );
    // The source is still learned.
    assert!(b.lookup(NetworkId(3), mac(7), t0()).is_some());

    // UnknownPort: nothing learned anywhere.
    assert_eq!(
        run(&mut b, t0(), p(42), &eth(MacAddr::BROADCAST, mac(1))),
        V::Drop(DropReason::UnknownPort)
    );
    assert_eq!(b.port_network(p(42)), None);
    assert_eq!(b.lookup(N1, mac(1), t0()), None);
}

#[test]
fn remove_port_flushes_its_entries() {
    let mut b = two_networks();
    run(&mut b, t0(), p(1), &eth(MacAddr::BROADCAST, mac(1)));
    run(&mut b, t0(), p(1), &eth(MacAddr::BROADCAST, mac(11)));
    run(&mut b, t0(), p(2), &eth(MacAddr::BROADCAST, mac(2)));
    b.add_static(N1, mac(12), p(1)).unwrap();
    b.remove_port(p(1)).unwrap();
    assert_eq!(b.port_network(p(1)), None);
    assert_eq!(b.network_ports(N1), [p(2), p(3)]);
    let left: Vec<_> = b.fdb_entries(N1, t0()).iter().map(|e| e.mac).collect();
    assert_eq!(left, [mac(2)]);
    let fdb = b.fdb(N1).unwrap();
    assert_eq!(
        (fdb.learned_count(), fdb.static_count(), fdb.len()),
        (1, 0, 1)
    );
    assert_eq!(
        run(&mut b, t0(), p(2), &eth(mac(1), mac(2))),
        V::Flood(vec![p(3)])
    );
    assert_eq!(b.remove_port(p(1)), Err(BridgeError::UnknownPort(p(1))));
    // The id can be reused, with no entries.
    b.add_port(p(1), N2).unwrap();
    assert_eq!(b.port_network(p(1)), Some(N2));
    assert_eq!(b.network_ports(N2), [p(1), p(4), p(5), p(6)]);
}

#[test]
fn topology_errors() {
    let mut b = two_networks();
    assert_eq!(
        b.add_network(N1, NetworkConfig::default()),
        Err(BridgeError::NetworkExists(N1))
    );
    assert_eq!(b.add_port(p(1), N2), Err(BridgeError::PortExists(p(1))));
    assert_eq!(
        b.add_port(p(9), NetworkId(9)),
        Err(BridgeError::UnknownNetwork(NetworkId(9)))
    );
    assert_eq!(b.port_network(p(9)), None);
    assert_eq!(b.port_network(p(5)), Some(N2));
    assert!(b.network_ports(NetworkId(9)).is_empty());
    assert!(b.fdb_entries(NetworkId(9), t0()).is_empty());
    assert_eq!(b.lookup(NetworkId(9), mac(1), t0()), None);
    assert_eq!(b.network_stats(NetworkId(9)), None);
    assert!(b.fdb(NetworkId(9)).is_none());
    assert_eq!(b.network_config(NetworkId(9)), None);
}

#[test]
fn remove_network_is_refused_while_ports_remain() {
    let mut b = two_networks();
    assert_eq!(
        b.remove_network(N1),
        Err(BridgeError::NetworkHasPorts(N1, 3))
    );
    b.remove_port(p(1)).unwrap();
    b.remove_port(p(2)).unwrap();
    assert_eq!(
        b.remove_network(N1),
        Err(BridgeError::NetworkHasPorts(N1, 1))
    );
    b.remove_port(p(3)).unwrap();
    b.remove_network(N1).unwrap();
    assert_eq!(b.remove_network(N1), Err(BridgeError::UnknownNetwork(N1)));
    assert_eq!(b.add_port(p(1), N1), Err(BridgeError::UnknownNetwork(N1)));
    // N2 still works.
    assert_eq!(
        run(&mut b, t0(), p(4), &eth(MacAddr::BROADCAST, mac(4))),
        V::Flood(vec![p(5), p(6)])
    );
    // The id can be reused, starting empty.
    b.add_network(N1, NetworkConfig::default()).unwrap();
    assert_eq!(b.network_stats(N1), Some(NetworkStats::default()));
}

#[test]
fn error_messages_are_readable() {
    let m: MacAddr = "02:42:ac:11:00:02".parse().unwrap();
    let cases = [
        (BridgeError::NetworkExists(N1), "network 1 already exists"),
        (BridgeError::UnknownNetwork(N2), "unknown network 2"),
        (
            BridgeError::NetworkHasPorts(N1, 3),
            "network 1 still has 3 port(s); remove them first",
        ),
        (BridgeError::PortExists(p(4)), "port 4 already exists"),
        (BridgeError::UnknownPort(p(4)), "unknown port 4"),
        (
            BridgeError::PortNotInNetwork {
                port: p(4),
                network: N1,
            },
            "port 4 is not attached to network 1",
        ),
        (
            BridgeError::NoStaticEntry {
                network: N1,
                mac: m,
            },
            "network 1 has no static FDB entry for 02:42:ac:11:00:02",
        ),
        (
            BridgeError::InvalidStaticMac(MacAddr::BROADCAST),
            "ff:ff:ff:ff:ff:ff cannot be a static FDB entry: only unicast, non-zero addresses can",
        ),
    ];
    for (err, msg) in cases {
        assert_eq!(err.to_string(), msg);
    }
}

#[test]
fn flood_set_is_an_exact_size_double_ended_iterator() {
    let ports = [p(1), p(2), p(3), p(4)];
    let set = FloodSet::new(&ports, p(2));
    assert_eq!(set.len(), 3);
    assert!(!set.is_empty());
    assert_eq!(set.as_slices(), (&ports[..1], &ports[2..]));
    assert_eq!(set.clone().rev().collect::<Vec<_>>(), [p(4), p(3), p(1)]);
    let mut it = set.clone();
    assert_eq!(it.next(), Some(p(1)));
    assert_eq!(it.len(), 2);
    assert_eq!(it.next_back(), Some(p(4)));
    assert_eq!(it.next(), Some(p(3)));
    assert_eq!((it.next(), it.next()), (None, None));
    assert!(it.is_empty());
    // Equality is by remaining content.
    let other = [p(1), p(3), p(4)];
    assert_eq!(set, FloodSet::new(&other, p(9)));
    assert_ne!(set, FloodSet::new(&other, p(3)));
    assert!(FloodSet::new(&ports[..1], p(1)).is_empty());
}

#[test]
fn fdb_learn_outcomes() {
    let cfg = NetworkConfig {
        max_fdb_entries: 2,
        max_fdb_entries_per_port: 2,
        ..NetworkConfig::default()
    };
    let mut fdb = Fdb::new(&cfg);
    fdb.add_port(p(1));
    fdb.add_port(p(2));
    assert_eq!(fdb.learn(mac(1), p(1), t0()), LearnOutcome::Learned);
    assert_eq!(fdb.learn(mac(1), p(1), t0()), LearnOutcome::Refreshed);
    assert_eq!(
        fdb.learn(mac(1), p(2), t0()),
        LearnOutcome::Moved { from: p(1) }
    );
    assert_eq!(
        fdb.learn(MacAddr::BROADCAST, p(1), t0()),
        LearnOutcome::Invalid
    );
    assert_eq!(fdb.learn(MacAddr::ZERO, p(1), t0()), LearnOutcome::Invalid);
    fdb.insert_static(mac(9), p(1));
    assert_eq!(fdb.learn(mac(9), p(2), t0()), LearnOutcome::Static);
    assert_eq!(fdb.learn(mac(2), p(1), t0()), LearnOutcome::Learned);
    assert_eq!(fdb.learn(mac(3), p(1), t0()), LearnOutcome::Refused);
    assert_eq!(fdb.learn(mac(3), p(1), secs(300)), LearnOutcome::Learned);
    assert_eq!(fdb.port_of(mac(3), secs(300)), Some(p(3 - 2)));
    assert_eq!(fdb.aging(), Duration::from_secs(300));
    assert!(!fdb.is_empty());
    assert_eq!(fdb.remove_port(p(1)), 2);
    assert!(fdb.is_empty());
}

#[test]
fn learn_at_seeds_the_fdb_like_traffic_would() {
    let mut b = Bridge::new();
    b.add_network(NetworkId(1), NetworkConfig::default())
        .unwrap();
    b.add_port(PortId(1), NetworkId(1)).unwrap();
    let mac: MacAddr = "02:42:0a:00:00:02".parse().unwrap();
    let t0 = Timestamp::from_millis(1_000);
    assert!(b.lookup(NetworkId(1), mac, t0).is_none());
    b.learn_at(t0, PortId(1), mac).unwrap();
    let e = b.lookup(NetworkId(1), mac, t0).expect("seeded");
    assert_eq!((e.port, e.origin), (PortId(1), FdbOrigin::Learned));
    // Seeded entries age like learned ones.
    assert!(b
        .lookup(NetworkId(1), mac, t0 + Duration::from_secs(301))
        .is_none());
    assert_eq!(
        b.learn_at(t0, PortId(9), mac),
        Err(BridgeError::UnknownPort(PortId(9)))
    );
}

/// Network 1 with a gateway (10.0.0.1), `--icc=false` and ports 1 and 2.
fn without_icc() -> (Bridge, crate::gateway::GatewayConfig) {
    let gw = crate::gateway::GatewayConfig {
        ip: std::net::Ipv4Addr::new(10, 0, 0, 1),
        mac: "02:42:0a:00:00:01".parse().unwrap(),
    };
    let mut b = Bridge::new();
    let cfg = NetworkConfig {
        gateway: Some(gw),
        icc: false,
        ..NetworkConfig::default()
    };
    b.add_network(NetworkId(1), cfg).unwrap();
    b.add_port(PortId(1), NetworkId(1)).unwrap();
    b.add_port(PortId(2), NetworkId(1)).unwrap();
    (b, gw)
}

#[test]
fn without_icc_endpoints_reach_the_gateway_only() {
    let (mut b, gw) = without_icc();
    let a: MacAddr = "02:42:0a:00:00:02".parse().unwrap();
    let c: MacAddr = "02:42:0a:00:00:03".parse().unwrap();
    let t = Timestamp::from_millis(1);
    let frame = |dst: MacAddr, src: MacAddr| {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&dst.0);
        f[6..12].copy_from_slice(&src.0);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f
    };
    // Known unicast, unknown unicast and broadcast between endpoints: all denied.
    b.learn_at(t, PortId(2), c).unwrap();
    assert!(matches!(
        b.process(t, PortId(1), &frame(c, a), Offload::NONE),
        Verdict::Drop(DropReason::IccDenied)
    ));
    assert!(matches!(
        b.process(
            t,
            PortId(1),
            &frame("02:00:00:00:00:99".parse().unwrap(), a),
            Offload::NONE
        ),
        Verdict::Drop(DropReason::IccDenied)
    ));
    assert!(matches!(
        b.process(t, PortId(1), &frame(MacAddr::BROADCAST, a), Offload::NONE),
        Verdict::Drop(DropReason::IccDenied)
    ));
    // The gateway is still reachable: an ARP request for it, sent to its MAC.
    let mut arp = frame(gw.mac, a);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    arp[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    arp[22..28].copy_from_slice(&a.0);
    arp[28..32].copy_from_slice(&[10, 0, 0, 2]);
    arp[38..42].copy_from_slice(&gw.ip.octets());
    assert!(matches!(
        b.process(t, PortId(1), &arp, Offload::NONE),
        Verdict::ToGateway(crate::GatewayTask::ArpReply(r)) if r.answer == gw.mac
    ));
    // Turning icc back on restores forwarding.
    let on = NetworkConfig {
        gateway: Some(gw),
        ..NetworkConfig::default()
    };
    b.set_network_config(NetworkId(1), on).unwrap();
    assert!(matches!(
        b.process(t, PortId(1), &frame(c, a), Offload::NONE),
        Verdict::Forward(PortId(2))
    ));
}

/// `process_traced`, its steps collected.
fn traced(b: &mut Bridge, now: Timestamp, port: PortId, frame: &[u8]) -> (V, Vec<TraceStep>) {
    let mut steps = Vec::new();
    let v = match b.process_traced(now, port, frame, Offload::NONE, &mut |s| steps.push(s)) {
        Verdict::Forward(p) => V::Fwd(p),
        Verdict::Flood(set) => V::Flood(set.collect()),
        Verdict::Drop(r) => V::Drop(r),
        Verdict::ToGateway(_) => V::Gw,
    };
    (v, steps)
}

#[test]
fn a_trace_tells_each_step_of_learning_flooding_and_forwarding() {
    let mut b = two_networks();
    // Unknown destination: learned, then flooded to the two other ports of network 1.
    let (v, steps) = traced(&mut b, t0(), p(1), &eth(mac(2), mac(1)));
    assert_eq!(v, V::Flood(vec![p(2), p(3)]));
    assert_eq!(
        steps,
        vec![
            TraceStep::Ingress { network: N1 },
            TraceStep::Learn {
                mac: mac(1),
                outcome: LearnOutcome::Learned
            },
            TraceStep::Flood {
                mac: mac(2),
                ports: 2
            },
        ]
    );
    // The answer is forwarded through the FDB entry just learned.
    let (v, steps) = traced(&mut b, secs(1), p(2), &eth(mac(1), mac(2)));
    assert_eq!(v, V::Fwd(p(1)));
    assert_eq!(
        steps[2],
        TraceStep::FdbHit {
            mac: mac(1),
            port: p(1)
        }
    );
    // Again from port 1: the entry is refreshed; the same MAC on port 3 moves.
    let (_, steps) = traced(&mut b, secs(2), p(1), &eth(mac(2), mac(1)));
    assert_eq!(
        steps[1],
        TraceStep::Learn {
            mac: mac(1),
            outcome: LearnOutcome::Refreshed
        }
    );
    let (_, steps) = traced(&mut b, secs(3), p(3), &eth(mac(2), mac(1)));
    assert_eq!(
        steps[1],
        TraceStep::Learn {
            mac: mac(1),
            outcome: LearnOutcome::Moved { from: p(1) }
        }
    );
    // A frame to a MAC behind its own port is filtered, and says so.
    let (v, steps) = traced(&mut b, secs(4), p(2), &eth(mac(2), mac(2)));
    assert_eq!(v, V::Drop(DropReason::SameSegment));
    assert_eq!(steps.last(), Some(&TraceStep::SameSegment));
}

#[test]
fn a_trace_names_why_a_frame_was_dropped() {
    let mut b = two_networks();
    let (v, steps) = traced(&mut b, t0(), p(1), &[0u8; 10]);
    assert_eq!(v, V::Drop(DropReason::Runt));
    assert_eq!(steps.last(), Some(&TraceStep::Runt { len: 10 }));
    let (v, steps) = traced(&mut b, t0(), p(1), &eth_len(mac(2), mac(1), 0x0800, 1600));
    assert_eq!(v, V::Drop(DropReason::Oversized));
    assert_eq!(
        steps.last(),
        Some(&TraceStep::Oversized {
            len: 1600,
            max: 1514
        })
    );
    let (v, steps) = traced(&mut b, t0(), p(1), &eth(mac(2), MacAddr::BROADCAST));
    assert_eq!(v, V::Drop(DropReason::InvalidSourceMac));
    assert_eq!(
        steps.last(),
        Some(&TraceStep::InvalidSource {
            mac: MacAddr::BROADCAST
        })
    );
    let (v, steps) = traced(&mut b, t0(), p(99), &eth(mac(2), mac(1)));
    assert_eq!(v, V::Drop(DropReason::UnknownPort));
    assert_eq!(steps, vec![TraceStep::UnknownPort]);
}

#[test]
fn a_trace_shows_the_gateway_and_icc() {
    let (mut b, gw) = without_icc();
    // The gateway takes what is sent to its MAC, and drops what it cannot read.
    let (v, steps) = traced(&mut b, t0(), p(1), &eth(gw.mac, mac(1)));
    assert_eq!(v, V::Drop(DropReason::Malformed));
    assert_eq!(
        steps.last(),
        Some(&TraceStep::ToGateway {
            to_gateway_mac: true
        })
    );
    let (v, steps) = traced(&mut b, t0(), p(1), &eth(mac(2), mac(1)));
    assert_eq!(v, V::Drop(DropReason::IccDenied));
    assert_eq!(steps.last(), Some(&TraceStep::IccDenied));
    // A frame from the gateway's own MAC is not learned.
    let (_, steps) = traced(&mut b, t0(), p(1), &eth(mac(2), gw.mac));
    assert_eq!(steps[1], TraceStep::GatewaySource { mac: gw.mac });
    assert!(b.fdb_entries(N1, t0()).iter().all(|e| e.mac != gw.mac));
}
