//! Gossip clusters of weft daemons, end to end.
//!
//! A "host" is a network namespace with its own underlay address and its own weft daemon
//! started inside it (`ip netns exec HOST weft daemon --advertise ADDR --cluster-key-file
//! FILE [--join ADDR]`); containers are other namespaces that a host's daemon attaches. The
//! hosts share an underlay: a "switch" namespace with a Linux bridge. The Lab's own daemon
//! (in the root namespace) is not started.
//!
//! - `three_hosts_form_a_cluster`: membership, an overlay network created on one host shows
//!   up everywhere, concurrent connects get distinct addresses, pings between all pairs, a
//!   TCP transfer, names across hosts, FDB/ARP rows from the gossip, tunnels in `weft peers`
//!   and `weft ports`, ARP answered locally, MTU 1450.
//! - `concurrent_ipam_across_hosts`: twelve connects at once on three hosts; an explicit
//!   address taken on another host is refused; a dead node's addresses are not handed out.
//! - `node_failure_and_recovery`: kill -9 of a daemon, restart, an underlay link cut and
//!   healed: liveness, FDB/ARP, flood lists and connectivity, with measured times.
//! - `gossip_is_sealed_and_foreign_keys_are_shut_out`: nothing readable in the gossip on the
//!   wire; a node with another key learns nothing and is not listed.
//! - `bad_cluster_key_files_refuse_the_start`: missing, unreadable and malformed key files,
//!   `--join` without a key, a cluster node without `--advertise`.
//! - `removing_an_overlay_network`: `network rm` on one host spreads, a host with an
//!   endpoint keeps the network until the endpoint leaves; broadcasts reach only hosts with
//!   endpoints in the VNI.
//!
//! Addresses: underlays 10.160-10.165.0.0/24, overlays 10.200-10.205.0.0/24, VNIs 91xx-95xx,
//! one set per test.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};
use weft_tests::hosts::*;
use weft_tests::*;

/// weft's default `--gossip-port`.
const GOSSIP_PORT: u16 = 7946;
/// The overlay MTU: 1500 minus the VXLAN encapsulation (50 octets).
const OVERLAY_MTU: u64 = 1450;

// ---------------------------------------------------------------------------
// cluster set-up
// ---------------------------------------------------------------------------

/// `weft keygen --out lab.dir/name`, checked (one line of 64 hex digits, mode 0600).
fn keygen(lab: &Lab, name: &str) -> PathBuf {
    let path = key_file(lab, name);
    let out = fs::read_to_string(&path).expect("read the cluster key file");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].len() == 64 && lines[0].bytes().all(|b| b.is_ascii_hexdigit()),
        "weft keygen should write one line of 64 hex digits, wrote {out:?}"
    );
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "weft keygen --out wrote mode {mode:o}");
    path
}

/// Daemon arguments of a cluster member.
fn member_args(key: &Path, node_name: Option<&str>, join: Option<&str>) -> Vec<String> {
    let mut v = vec![
        "--cluster-key-file".to_string(),
        key.to_str().unwrap().to_string(),
    ];
    if let Some(n) = node_name {
        v.extend(["--node-name".to_string(), n.to_string()]);
    }
    if let Some(j) = join {
        v.extend(["--join".to_string(), j.to_string()]);
    }
    v
}

/// A cluster of daemons in the host namespaces `hns` (labels h1, h2, ...; the first one is
/// the seed the others `--join`); `names` are `--node-name`s (None: the default).
fn start_cluster(
    lab: &Lab,
    key: &Path,
    hns: &[String],
    addrs: &[&str],
    names: Option<&[&str]>,
) -> Vec<HostDaemon> {
    (0..hns.len())
        .map(|i| {
            let join = (i > 0).then_some(addrs[0]);
            let name = names.map(|n| n[i]);
            HostDaemon::start(
                lab,
                &format!("h{}", i + 1),
                &hns[i],
                addrs[i],
                &member_args(key, name, join),
            )
        })
        .collect()
}

/// Polls `f` every 100 ms until it returns true (Some(elapsed)) or `timeout` passes (None).
fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if f() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() >= timeout {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until every daemon lists every other one alive; returns how long it took.
fn wait_formed(daemons: &[&HostDaemon], timeout: Duration) -> Duration {
    let all_alive = || {
        daemons.iter().all(|d| {
            daemons
                .iter()
                .filter(|o| o.node != d.node)
                .all(|o| d.peer_state(&o.node).as_deref() == Some("alive"))
        })
    };
    wait_until(timeout, all_alive).unwrap_or_else(|| {
        panic!(
            "the cluster did not form within {timeout:?}: every node should list the others \
             alive\n{}",
            diag(daemons)
        )
    })
}

/// `weft network create NAME --driver overlay --vni VNI --subnet SUBNET` on `d`.
fn create_overlay(d: &HostDaemon, name: &str, vni: u32, subnet: &str) {
    let vni = vni.to_string();
    let out = d.weft_ok(&[
        "network", "create", name, "--driver", "overlay", "--vni", &vni, "--subnet", subnet,
    ]);
    assert!(
        out.lines().any(|l| l.trim() == name),
        "network create should print the name: {out:?}"
    );
}

/// Why `d` does not (yet) show overlay network `net` as expected, or None.
fn network_mismatch(d: &HostDaemon, net: &str, vni: u32, subnet: &str) -> Option<String> {
    let Some(row) = d.network(net) else {
        return Some(format!("{}: network {net} not listed", d.label));
    };
    let ok = row["driver"] == "overlay"
        && row["vni"] == vni
        && row["subnet"] == subnet
        && row["mtu"] == OVERLAY_MTU;
    (!ok).then(|| {
        format!(
            "{}: network ls row {row} should have driver overlay, vni {vni}, subnet {subnet}, \
             mtu {OVERLAY_MTU}",
            d.label
        )
    })
}

/// Waits until every daemon has overlay network `net` (VNI, subnet, MTU 1450).
fn wait_network_everywhere(
    daemons: &[&HostDaemon],
    net: &str,
    vni: u32,
    subnet: &str,
    timeout: Duration,
) -> Duration {
    let mut last = Vec::new();
    let r = wait_until(timeout, || {
        last = daemons
            .iter()
            .filter_map(|d| network_mismatch(d, net, vni, subnet))
            .collect();
        last.is_empty()
    });
    r.unwrap_or_else(|| {
        panic!(
            "overlay network {net} did not reach every node within {timeout:?}: {last:#?}\n{}",
            diag(daemons)
        )
    })
}

/// Connects several namespaces at the same instant (one thread each, released together by
/// a barrier): (daemon, network, namespace, extra args). Returns each result.
fn connect_concurrently(reqs: &[(&HostDaemon, &str, &str, Vec<String>)]) -> Vec<Output> {
    let barrier = Barrier::new(reqs.len());
    thread::scope(|s| {
        let handles: Vec<_> = reqs
            .iter()
            .map(|(d, net, ns, extra)| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut c = d.cmd();
                    c.args(["--json", "connect", net, "--netns", ns])
                        .args(extra);
                    barrier.wait();
                    run_timeout(&mut c, CLI_TIMEOUT)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Parses the outputs of `connect_concurrently`, panicking with every failure.
fn endpoints_of(
    reqs: &[(&HostDaemon, &str, &str, Vec<String>)],
    outs: &[Output],
    hosts: &[&HostDaemon],
) -> Vec<Endpoint> {
    let failures: Vec<String> = reqs
        .iter()
        .zip(outs)
        .filter(|(_, o)| !o.status.success())
        .map(|((d, net, ns, extra), o)| {
            format!(
                "connect {net} --netns {ns} {extra:?} on {}: {}\n{}{}",
                d.label,
                o.status,
                stdout_of(o),
                stderr_of(o)
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "concurrent connects failed:\n{}\n{}",
        failures.join("\n"),
        diag(hosts)
    );
    reqs.iter()
        .zip(outs)
        .map(|((_, _, ns, _), o)| {
            let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
                panic!(
                    "connect --json printed invalid JSON ({e}): {}",
                    stdout_of(o)
                )
            });
            Endpoint::from_json(&v, ns)
        })
        .collect()
}

fn ip_u32(s: &str) -> u32 {
    let v: Vec<u32> = s
        .split('.')
        .map(|p| p.parse().unwrap_or_else(|_| panic!("bad IPv4 {s:?}")))
        .collect();
    assert_eq!(v.len(), 4, "bad IPv4 {s:?}");
    (v[0] << 24) | (v[1] << 16) | (v[2] << 8) | v[3]
}

/// Asserts that the endpoints have pairwise distinct addresses inside the /24 `subnet`,
/// none of them the gateway (the first host address).
fn assert_distinct_addresses(eps: &[Endpoint], subnet: &str, hosts: &[&HostDaemon]) {
    let base = ip_u32(subnet.split('/').next().unwrap());
    let gateway = base + 1;
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for e in eps {
        let a = ip_u32(&e.ip);
        assert!(
            a > gateway && a < base + 255 && e.prefix_len == 24,
            "{} got {}/{} which is not a host address of {subnet} other than the gateway",
            e.name,
            e.ip,
            e.prefix_len
        );
        if let Some(other) = seen.insert(e.ip.clone(), e.name.clone()) {
            panic!(
                "cluster IPAM gave {} to both {other} and {}; all: {:?}\n{}",
                e.ip,
                e.name,
                eps.iter()
                    .map(|e| format!("{}={}", e.name, e.ip))
                    .collect::<Vec<_>>(),
                diag(hosts)
            );
        }
    }
}

/// Why `d` does not (yet) show remote endpoint `ep` of node `owner` in the FDB and ARP
/// tables of `net` as coming from the gossip, or None.
fn remote_mismatch(
    d: &HostDaemon,
    net: &str,
    ep: &Endpoint,
    owner: &HostDaemon,
    vni: u32,
) -> Option<String> {
    let origin = format!("gossip from {}", owner.node);
    let port = tunnel_name(vni, &owner.addr);
    let fdb = d.fdb(net);
    match fdb_entry(&fdb, &ep.mac) {
        None => {
            return Some(format!(
                "{}: no FDB row for {} ({})",
                d.label, ep.name, ep.mac
            ))
        }
        Some(row) if row["origin"] != origin.as_str() || row["port"] != port.as_str() => {
            return Some(format!(
                "{}: FDB row for {} should have origin {origin:?} and port {port:?}: {row}",
                d.label, ep.name
            ))
        }
        Some(_) => {}
    }
    let arp = d.arp(net);
    match arp.iter().find(|r| r["ip"] == ep.ip.as_str()) {
        None => Some(format!(
            "{}: no ARP row for {} ({})",
            d.label, ep.name, ep.ip
        )),
        Some(row)
            if !row["mac"]
                .as_str()
                .is_some_and(|m| m.eq_ignore_ascii_case(&ep.mac))
                || row["owner"] != ep.name.as_str()
                || row["origin"] != origin.as_str() =>
        {
            Some(format!(
                "{}: ARP row for {} should have mac {}, owner {:?}, origin {origin:?}: {row}",
                d.label, ep.name, ep.mac, ep.name
            ))
        }
        Some(_) => None,
    }
}

/// Waits until every daemon shows every endpoint of the other daemons (`eps[i]` lives on
/// `owners[i]`) in its FDB and ARP tables as coming from the gossip.
fn wait_tables(
    daemons: &[&HostDaemon],
    net: &str,
    vni: u32,
    eps: &[(&Endpoint, &HostDaemon)],
    timeout: Duration,
) -> Duration {
    let mut last = Vec::new();
    let r = wait_until(timeout, || {
        last.clear();
        for d in daemons {
            for (ep, owner) in eps {
                if owner.node != d.node {
                    if let Some(m) = remote_mismatch(d, net, ep, owner, vni) {
                        last.push(m);
                    }
                }
            }
        }
        last.is_empty()
    });
    r.unwrap_or_else(|| {
        panic!(
            "the gossip did not bring every remote endpoint into the FDB/ARP tables within \
             {timeout:?}: {last:#?}\n{}",
            diag(daemons)
        )
    })
}

/// True if `d` has neither an FDB row for `ep`'s MAC nor an ARP row for its address in `net`.
fn forgot(d: &HostDaemon, net: &str, ep: &Endpoint) -> bool {
    fdb_entry(&d.fdb(net), &ep.mac).is_none() && !d.arp(net).iter().any(|r| r["ip"] == ep.ip)
}

// ---------------------------------------------------------------------------
// packets
// ---------------------------------------------------------------------------

/// A UDP datagram: (ip, source port, destination port, payload).
fn udp(frame: &[u8]) -> Option<(Ip4<'_>, u16, u16, &[u8])> {
    let ip = ipv4(frame)?;
    if ip.proto != 17 || ip.fragment || ip.payload.len() < 8 {
        return None;
    }
    let p = ip.payload;
    let (sport, dport) = (be16(p, 0), be16(p, 2));
    let payload = &p[8..];
    Some((ip, sport, dport, payload))
}

/// A VXLAN datagram in a captured underlay frame: (outer IPv4, inner frame).
fn vxlan(frame: &[u8]) -> Option<(Ip4<'_>, &[u8])> {
    let (ip, _, dport, payload) = udp(frame)?;
    if dport != VXLAN_PORT || payload.len() < 8 {
        return None;
    }
    Some((ip, &payload[8..]))
}

/// The target address of an ARP request frame.
fn arp_request_target(frame: &[u8]) -> Option<[u8; 4]> {
    if frame.len() < 42 || be16(frame, 12) != 0x0806 || be16(frame, 20) != 1 {
        return None;
    }
    Some(frame[38..42].try_into().unwrap())
}

// ---------------------------------------------------------------------------
// traffic
// ---------------------------------------------------------------------------

fn assert_ping(lab: &Lab, from: &Endpoint, to: &Endpoint, hosts: &[&HostDaemon]) {
    if !ping_ok(lab, &from.ns, &to.ip, 2, &[]) {
        let d = lab.exec(&from.ns, &["sh", "-c", "ip addr; ip route; ip neigh"]);
        panic!(
            "ping {} ({}) -> {} ({}) failed\n{}\n{}",
            from.name,
            from.ip,
            to.name,
            to.ip,
            stdout_of(&d),
            diag(hosts)
        );
    }
}

/// Lab namespaces `h1..hN` and their underlay addresses `PREFIX.1..N`, on one switch.
fn hosts_on_switch(lab: &Lab, prefix: &str, n: usize) -> (Vec<String>, Vec<String>) {
    let hns: Vec<String> = (1..=n).map(|i| lab.ns(&format!("h{i}"))).collect();
    let addrs: Vec<String> = (1..=n).map(|i| format!("{prefix}.{i}")).collect();
    let pairs: Vec<(&str, &str)> = hns
        .iter()
        .zip(&addrs)
        .map(|(h, a)| (h.as_str(), a.as_str()))
        .collect();
    switch_underlay(lab, &pairs);
    (hns, addrs)
}

/// The names in `weft ports`.
fn port_names(d: &HostDaemon) -> Vec<String> {
    d.ports()
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------
// 1. three hosts form a cluster
// ---------------------------------------------------------------------------

#[test]
fn three_hosts_form_a_cluster() {
    root_or_skip!();
    require_tools(&["dig", "getent"]);
    let lab = Lab::without_daemon();
    let (hns, addrs) = hosts_on_switch(&lab, "10.160.0", 3);
    let (net, vni, subnet, gw) = ("ov", 9100u32, "10.200.0.0/24", "10.200.0.1");
    let key = keygen(&lab, "cluster.key");
    let names = ["h1", "h2", "h3"];
    let daemons = start_cluster(&lab, &key, &hns, &refs(&addrs), Some(&names));
    let hosts: Vec<&HostDaemon> = daemons.iter().collect();

    let formed = wait_formed(&hosts, Duration::from_secs(10));
    eprintln!("cluster of 3 formed in {formed:?}");
    for d in &daemons {
        let c = d.cluster();
        let want = [
            ("node", Value::from(d.node.as_str())),
            ("gossip", Value::from(format!("{}:{GOSSIP_PORT}", d.addr))),
            ("vtep", Value::from(format!("{}:{VXLAN_PORT}", d.addr))),
            ("nodes_alive", Value::from(3)),
            ("gossip_auth_failed", Value::from(0)),
            ("gossip_malformed", Value::from(0)),
            ("gossip_interval_ms", Value::from(500)),
        ];
        for (k, v) in want {
            assert_eq!(c[k], v, "{}: `weft cluster` field {k}: {c:#}", d.label);
        }
        for k in ["gossip_rx", "gossip_tx"] {
            assert!(
                c[k].as_u64().is_some_and(|n| n > 0),
                "{}: `weft cluster` {k} should count the gossip: {c:#}",
                d.label
            );
        }
        for p in d.peers() {
            assert_eq!(p["endpoints"], 0, "{}: no endpoints yet: {p}", d.label);
            assert!(
                p["last_heard_seconds"].as_f64().is_some_and(|s| s < 3.0),
                "{}: an alive peer was heard from recently: {p}",
                d.label
            );
            let other = daemons.iter().find(|o| p["name"] == o.node.as_str());
            let other = other.unwrap_or_else(|| panic!("{}: unknown peer {p}", d.label));
            assert_eq!(
                p["vtep"],
                format!("{}:{VXLAN_PORT}", other.addr).as_str(),
                "{}: {p}",
                d.label
            );
        }
    }

    // A network created on h2 appears everywhere.
    create_overlay(&daemons[1], net, vni, subnet);
    let spread = wait_network_everywhere(&hosts, net, vni, subnet, Duration::from_secs(10));
    eprintln!("overlay network reached all nodes in {spread:?}");
    for d in &daemons {
        let i = d.weft_json(&["network", "inspect", net]);
        assert!(
            i["driver"] == "overlay"
                && i["vni"] == vni
                && i["subnet"] == subnet
                && i["gateway"] == gw
                && i["mtu"] == OVERLAY_MTU,
            "{}: network inspect {net}: {i:#}",
            d.label
        );
    }

    // One container per host, connected at the same instant.
    let cns: Vec<String> = (1..=3).map(|i| lab.ns(&format!("c{i}"))).collect();
    let reqs: Vec<(&HostDaemon, &str, &str, Vec<String>)> = (0..3)
        .map(|i| {
            let mut extra = vec!["--name".to_string(), format!("c{}", i + 1)];
            if i == 1 {
                extra.extend(["--alias".to_string(), "db".to_string()]);
            }
            (&daemons[i], net, cns[i].as_str(), extra)
        })
        .collect();
    let t0 = Instant::now();
    let outs = connect_concurrently(&reqs);
    eprintln!("3 concurrent connects took {:?}", t0.elapsed());
    let eps = endpoints_of(&reqs, &outs, &hosts);
    assert_distinct_addresses(&eps, subnet, &hosts);
    let owners: Vec<(&Endpoint, &HostDaemon)> = eps.iter().zip(daemons.iter()).collect();
    let t = wait_tables(&hosts, net, vni, &owners, Duration::from_secs(10));
    eprintln!("remote endpoints in every FDB/ARP table after {t:?}");
    for d in &daemons {
        for p in d.peers() {
            assert!(
                p["state"] == "alive" && p["endpoints"] == 1,
                "{}: every peer has one endpoint now: {p}",
                d.label
            );
        }
    }
    // Every node has a tunnel to each other node with an endpoint in the VNI: `weft peers`
    // names its network, `weft ports` lists the port. (Missing ports are reported at the
    // end, so that the rest of the test still runs.)
    let mut problems = Vec::new();
    for d in &daemons {
        let ports = port_names(d);
        for o in daemons.iter().filter(|o| o.node != d.node) {
            assert_eq!(
                d.tunnels_to(&o.node).as_deref(),
                Some(net),
                "{}: `weft peers` should show the tunnel to {} in {net}\n{}",
                d.label,
                o.label,
                diag(&hosts)
            );
            let t = tunnel_name(vni, &o.addr);
            if !ports.contains(&t) {
                problems.push(format!(
                    "{}: `weft ports` does not list the tunnel port {t} to {} (ports: {ports:?})",
                    d.label, o.label
                ));
            }
        }
    }

    // The first ping c1 -> c2: c1's ARP request is answered by h1 itself; no encapsulated
    // ARP request for c2's address crosses the underlay.
    let sniff = Sniffer::start(
        &lab,
        &hns[0],
        "ul0",
        &format!("udp port {VXLAN_PORT}"),
        "first-ping.pcap",
    );
    let o = lab.exec(&eps[0].ns, &["ping", "-c", "1", "-W", "3", &eps[1].ip]);
    let frames = sniff.finish();
    assert!(
        o.status.success(),
        "the first ping c1 -> c2 failed: {}\n{}",
        stdout_of(&o),
        diag(&hosts)
    );
    let inner: Vec<&[u8]> = frames
        .iter()
        .filter_map(|f| vxlan(f))
        .map(|v| v.1)
        .collect();
    let arps: Vec<String> = inner
        .iter()
        .filter_map(|f| arp_request_target(f))
        .map(ip_string)
        .collect();
    assert!(
        !arps.contains(&eps[1].ip),
        "an ARP request for c2 ({}) crossed the tunnel although h1 knows c2 from the gossip; \
         encapsulated ARP requests seen: {arps:?}",
        eps[1].ip
    );
    let echoes = inner
        .iter()
        .filter(|f| ipv4(f).is_some_and(|ip| ip.proto == 1 && ip_string(ip.dst) == eps[1].ip))
        .count();
    assert!(
        echoes >= 1,
        "the capture on h1's underlay should show the echo request to c2 in VXLAN ({} VXLAN \
         frames captured)",
        inner.len()
    );
    let neigh = lab.exec_ok(&eps[0].ns, &["ip", "neigh", "show", &eps[1].ip]);
    assert!(
        neigh.to_ascii_lowercase().contains(&eps[1].mac),
        "c1 resolved c2 ({}) to something else than its MAC {}: {neigh}",
        eps[1].ip,
        eps[1].mac
    );

    // All pairs.
    for a in &eps {
        for b in &eps {
            if a.name != b.name {
                assert_ping(&lab, a, b, &hosts);
            }
        }
    }

    // MTU 1450: a 1450-byte packet with DF set crosses the tunnel.
    for e in &eps {
        let mtu = lab.exec_ok(&e.ns, &["cat", "/sys/class/net/eth0/mtu"]);
        assert_eq!(mtu.trim(), "1450", "{}'s eth0 MTU", e.name);
    }
    for (a, b) in [(0, 2), (1, 0)] {
        assert!(
            ping_ok(&lab, &eps[a].ns, &eps[b].ip, 2, &["-M", "do", "-s", "1422"]),
            "ping -M do -s 1422 {} -> {} (a full 1450-byte packet) failed\n{}",
            eps[a].name,
            eps[b].name,
            diag(&hosts)
        );
    }

    // Names across hosts: getent through the resolv.conf weft wrote, and dig at the gateway.
    for (from, name, want) in [
        (0, "c3", &eps[2].ip),
        (0, "db", &eps[1].ip),
        (2, "c2", &eps[1].ip),
    ] {
        let o = lab.exec(&eps[from].ns, &["getent", "hosts", name]);
        let out = stdout_of(&o);
        assert!(
            out.split_whitespace().next() == Some(want.as_str()),
            "getent hosts {name} in {} should give {want}: {out:?} {}\n{}",
            eps[from].name,
            stderr_of(&o),
            diag(&hosts)
        );
    }
    for (from, name, want) in [(2, "c1", &eps[0].ip), (1, "c3", &eps[2].ip)] {
        let at = format!("@{gw}");
        let o = lab.exec(
            &eps[from].ns,
            &["dig", "+short", "+time=2", "+tries=2", &at, name],
        );
        let out = stdout_of(&o);
        assert_eq!(
            out.trim(),
            want.as_str(),
            "dig +short @{gw} {name} in {}: {}",
            eps[from].name,
            stderr_of(&o)
        );
    }

    // Several MiB of TCP from c1 (h1) to c3 (h3).
    let (file, expect) = random_file(&lab, "payload", 6 << 20);
    let what = format!("{} -> {}", eps[0].name, eps[2].name);
    let took = transfer(
        &lab, &what, &eps[2].ns, &eps[2].ip, 5301, &eps[0].ns, &file, &expect, &hosts,
    );
    eprintln!("6 MiB c1 -> c3 in {took:?}");
    let p = daemons[0]
        .peer_row("h3")
        .unwrap_or_else(|| panic!("h1 lists no peer h3\n{}", diag(&hosts)));
    assert!(
        p["tx_packets"].as_u64().unwrap_or(0) >= 100 && p["network"] == net,
        "h1's row for h3 should count the 6 MiB sent through the tunnel: {p}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// 2. concurrent IPAM
// ---------------------------------------------------------------------------

#[test]
fn concurrent_ipam_across_hosts() {
    root_or_skip!();
    require_tools(&["dig", "getent"]);
    let lab = Lab::without_daemon();
    // h1-h3 get containers; h4 is a spare member with none (until the end).
    let (hns, addrs) = hosts_on_switch(&lab, "10.161.0", 4);
    let (net, vni, subnet) = ("ipam", 9200u32, "10.201.0.0/24");
    let key = keygen(&lab, "cluster.key");
    let mut daemons = start_cluster(&lab, &key, &hns, &refs(&addrs), None);
    let hosts: Vec<&HostDaemon> = daemons.iter().collect();
    wait_formed(&hosts, Duration::from_secs(10));
    create_overlay(&daemons[0], net, vni, subnet);
    wait_network_everywhere(&hosts, net, vni, subnet, Duration::from_secs(10));

    // Four containers per host, twelve connects at the same instant.
    let mut cns = Vec::new();
    for h in 1..=3 {
        for k in 1..=4 {
            cns.push((h - 1, lab.ns(&format!("c{h}{k}")), format!("c{h}{k}")));
        }
    }
    let reqs: Vec<(&HostDaemon, &str, &str, Vec<String>)> = cns
        .iter()
        .map(|(h, ns, name)| {
            (
                &daemons[*h],
                net,
                ns.as_str(),
                vec!["--name".to_string(), name.clone()],
            )
        })
        .collect();
    let t0 = Instant::now();
    let outs = connect_concurrently(&reqs);
    eprintln!("12 concurrent connects took {:?}", t0.elapsed());
    let eps = endpoints_of(&reqs, &outs, &hosts);
    assert_distinct_addresses(&eps, subnet, &hosts);
    eprintln!(
        "addresses: {:?}",
        eps.iter()
            .map(|e| format!("{}={}", e.name, e.ip))
            .collect::<Vec<_>>()
    );

    // Each node allocated from blocks it leased alone.
    let mut leased: BTreeMap<String, String> = BTreeMap::new();
    for d in &daemons[..3] {
        let c = d.cluster();
        let leases: Vec<String> = c["leases"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: `weft cluster` has no leases: {c:#}", d.label))
            .iter()
            .filter_map(|l| l.as_str())
            .filter(|l| l.starts_with(&format!("{vni}:")))
            .map(str::to_string)
            .collect();
        assert!(
            !leases.is_empty(),
            "{} allocated addresses in VNI {vni} without a lease: {c:#}",
            d.label
        );
        for l in leases {
            if let Some(other) = leased.insert(l.clone(), d.label.clone()) {
                panic!(
                    "address block {l} is leased by both {other} and {}\n{}",
                    d.label,
                    diag(&hosts)
                );
            }
        }
    }

    // Every table converges; a few cross-host pings work.
    let owners: Vec<(&Endpoint, &HostDaemon)> = eps
        .iter()
        .zip(cns.iter())
        .map(|(e, (h, _, _))| (e, &daemons[*h]))
        .collect();
    wait_tables(&hosts, net, vni, &owners, Duration::from_secs(10));
    for d in &daemons {
        for p in d.peers() {
            let want = if p["name"] == daemons[3].node.as_str() {
                0
            } else {
                4
            };
            assert_eq!(
                p["endpoints"], want,
                "{}: h1-h3 have 4 endpoints each, h4 none: {p}",
                d.label
            );
        }
    }
    for (a, b) in [(0, 11), (5, 2), (9, 6)] {
        assert_ping(&lab, &eps[a], &eps[b], &hosts);
    }

    // An explicit address that an endpoint on h2 has is refused on h1.
    let taken = &eps[4].ip; // c21, on h2
    let xns = lab.ns("x1");
    let o = daemons[0].weft(&["connect", net, "--netns", &xns, "--ip", taken]);
    let err = check_error(
        &o,
        &format!("weft connect {net} --ip {taken} (on h1; h2's c21 has it)"),
        &["taken"],
    );
    eprintln!("refused as expected: {}", err.trim());
    assert!(
        !lab.link_names(&xns).iter().any(|l| l == "eth0"),
        "a refused connect left an interface in {xns}: {:?}",
        lab.link_names(&xns)
    );
    // An explicit free address is fine, and then taken for the others.
    let free = "10.201.0.250";
    let x = daemons[0].connect(net, &xns, &["--name", "x1", "--ip", free]);
    assert_eq!(x.ip, free, "--ip was not honoured");
    let yns = lab.ns("y3");
    let ok = wait_until(Duration::from_secs(10), || {
        daemons[2]
            .arp(net)
            .iter()
            .any(|r| r["ip"] == free && r["owner"] == "x1")
    });
    assert!(
        ok.is_some(),
        "h3 did not learn x1 ({free}) within 10 s\n{}",
        diag(&hosts)
    );
    let o = daemons[2].weft(&["connect", net, "--netns", &yns, "--ip", free]);
    check_error(
        &o,
        &format!("weft connect {net} --ip {free} (on h3; h1's x1 has it)"),
        &["taken"],
    );
    assert_ping(&lab, &eps[8], &x, &hosts);

    // A node whose daemon dies keeps its containers and their addresses: while h3 is down,
    // h4 (which has no address block yet) must not be handed one of h3's addresses.
    daemons[2].kill9();
    let others = [&daemons[0], &daemons[1], &daemons[3]];
    let h3node = daemons[2].node.clone();
    let dead = wait_until(Duration::from_secs(30), || {
        others
            .iter()
            .all(|d| d.peer_state(&h3node).as_deref() == Some("dead"))
    });
    assert!(
        dead.is_some(),
        "h1, h2, h4 did not see h3 dead within 30 s\n{}",
        diag(&others)
    );
    let zns = lab.ns("z4");
    let z = daemons[3].connect(net, &zns, &["--name", "z4"]);
    let h3_eps: Vec<String> = eps[8..]
        .iter()
        .map(|e| format!("{}={} ({})", e.name, e.ip, e.mac))
        .collect();
    assert!(
        !eps[8..].iter().any(|e| e.ip == z.ip || e.mac == z.mac),
        "while h3's daemon was down, h4 gave its new endpoint z4 the address {} ({}) of one of \
         h3's containers, which keep running with it: {h3_eps:?}; when h3 comes back the \
         cluster has two endpoints with that address\n{}",
        z.ip,
        z.mac,
        diag(&others)
    );
}

// ---------------------------------------------------------------------------
// 3. failure and recovery
// ---------------------------------------------------------------------------

/// A named condition polled by `watch`.
type Check<'a> = (String, Box<dyn FnMut() -> bool + 'a>);
/// When each condition first held.
type Times = BTreeMap<String, Duration>;

/// The times of `watch`, for a failure message or the report.
fn fmt_times(times: &Times) -> String {
    times
        .iter()
        .map(|(k, v)| format!("{k}: {:.2}s", v.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Polls `checks` (name -> condition) every 100 ms until all hold or `timeout` passes;
/// returns when each first held. Conditions that held once are not checked again.
/// Times count from `t0`.
fn watch(
    t0: Instant,
    timeout: Duration,
    checks: &mut [Check<'_>],
) -> Result<Times, (Times, Vec<String>)> {
    let mut done: BTreeMap<String, Duration> = BTreeMap::new();
    loop {
        for (name, f) in checks.iter_mut() {
            if !done.contains_key(name.as_str()) && f() {
                done.insert(name.clone(), t0.elapsed());
            }
        }
        if done.len() == checks.len() {
            return Ok(done);
        }
        if t0.elapsed() >= timeout {
            let missing = checks
                .iter()
                .filter(|(n, _)| !done.contains_key(n.as_str()))
                .map(|(n, _)| n.clone())
                .collect();
            return Err((done, missing));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Reports the times of a `watch` (printed and added to `report`), or panics with what did
/// not happen and the state of every daemon.
fn settle(
    what: &str,
    res: Result<Times, (Times, Vec<String>)>,
    limit: Duration,
    daemons: &mut [HostDaemon],
    report: &mut Vec<String>,
) {
    match res {
        Ok(times) => {
            eprintln!("after {what}: {}", fmt_times(&times));
            report.push(format!("{what}: {}", fmt_times(&times)));
        }
        Err((times, missing)) => {
            let mut hosts: Vec<&mut HostDaemon> = daemons.iter_mut().collect();
            panic!(
                "after {what}, within {limit:?} these did not happen: {missing:?} (these did: \
                 {})\n{}",
                fmt_times(&times),
                diag_all(&mut hosts)
            );
        }
    }
}

#[test]
fn node_failure_and_recovery() {
    root_or_skip!();
    require_tools(&["dig", "getent"]);
    let lab = Lab::without_daemon();
    let (hns, addrs) = hosts_on_switch(&lab, "10.162.0", 3);
    let (net, vni, subnet) = ("ovf", 9300u32, "10.202.0.0/24");
    let key = keygen(&lab, "cluster.key");
    let mut daemons = start_cluster(&lab, &key, &hns, &refs(&addrs), None);
    {
        let hosts: Vec<&HostDaemon> = daemons.iter().collect();
        wait_formed(&hosts, Duration::from_secs(10));
        create_overlay(&daemons[0], net, vni, subnet);
        wait_network_everywhere(&hosts, net, vni, subnet, Duration::from_secs(10));
    }
    let eps: Vec<Endpoint> = (0..3)
        .map(|i| {
            let ns = lab.ns(&format!("c{}", i + 1));
            daemons[i].connect(net, &ns, &["--name", &format!("c{}", i + 1)])
        })
        .collect();
    {
        let hosts: Vec<&HostDaemon> = daemons.iter().collect();
        let owners: Vec<(&Endpoint, &HostDaemon)> = eps.iter().zip(daemons.iter()).collect();
        wait_tables(&hosts, net, vni, &owners, Duration::from_secs(10));
        assert_ping(&lab, &eps[0], &eps[2], &hosts);
        assert_ping(&lab, &eps[0], &eps[1], &hosts);
    }
    let limit = Duration::from_secs(30);
    let (h3node, h2node) = (daemons[2].node.clone(), daemons[1].node.clone());
    let tun3 = tunnel_name(vni, &addrs[2]);
    let tun2 = tunnel_name(vni, &addrs[1]);
    let tun1 = tunnel_name(vni, &addrs[0]);
    let mut report = Vec::new();
    // `weft ports` should list the gossip's tunnel ports; if it does not, that is reported
    // at the end and the port checks below are skipped, so the times are still measured.
    let mut problems = Vec::new();
    let mut ports_listed = true;
    for (d, other) in [(&daemons[0], &tun2), (&daemons[1], &tun1)] {
        let ports = port_names(d);
        if !(ports.contains(&tun3) && ports.contains(other)) {
            ports_listed = false;
            problems.push(format!(
                "{}: `weft ports` does not list the gossip's tunnel ports ({tun3}, {other}): \
                 {ports:?}",
                d.label
            ));
        }
        assert_eq!(
            d.tunnels_to(&h3node).as_deref(),
            Some(net),
            "{}: `weft peers` should show the tunnel to h3",
            d.label
        );
    }

    // --- kill -9 h3's daemon ---------------------------------------------------------
    let t0 = Instant::now();
    daemons[2].kill9();
    let res = {
        let (d1, d2) = (&daemons[0], &daemons[1]);
        let mut checks: Vec<Check<'_>> = Vec::new();
        for d in [d1, d2] {
            let n = h3node.clone();
            checks.push((
                format!("{} shows h3 dead", d.label),
                Box::new(move || {
                    d.peer_row(&n)
                        .is_some_and(|p| p["state"] == "dead" && p["endpoints"] == 0)
                }),
            ));
            let c3 = &eps[2];
            checks.push((
                format!("{} forgot c3 (fdb, arp)", d.label),
                Box::new(move || forgot(d, net, c3)),
            ));
            let n = h3node.clone();
            checks.push((
                format!("{} dropped h3 from its flood list (peers)", d.label),
                Box::new(move || d.tunnels_to(&n).as_deref() == Some("")),
            ));
            if ports_listed {
                let t = tun3.clone();
                checks.push((
                    format!("{} removed tunnel port {t}", d.label),
                    Box::new(move || !d.has_port(&t)),
                ));
            }
        }
        watch(t0, limit, &mut checks)
    };
    settle(
        "kill -9 of h3's daemon",
        res,
        limit,
        &mut daemons,
        &mut report,
    );
    {
        let hosts = [&daemons[0], &daemons[1]];
        // The rest of the cluster is unharmed.
        assert!(
            daemons[0].tunnels_to(&h2node).as_deref() == Some(net)
                && daemons[0].peer_state(&h2node).as_deref() == Some("alive"),
            "h1 should keep h2 alive and its tunnel to h2 while h3 is down\n{}",
            diag(&hosts)
        );
        assert_ping(&lab, &eps[0], &eps[1], &hosts);
        assert!(
            !ping_ok(&lab, &eps[0].ns, &eps[2].ip, 1, &[]),
            "c1 still reaches c3 although h3's daemon is dead"
        );
    }

    // --- restart h3's daemon (same state dir) ----------------------------------------
    let t0 = Instant::now();
    daemons[2].launch();
    let res = {
        let (d1, d2) = (&daemons[0], &daemons[1]);
        let mut checks: Vec<Check<'_>> = Vec::new();
        for d in [d1, d2] {
            let n = h3node.clone();
            checks.push((
                format!("{} shows h3 alive", d.label),
                Box::new(move || {
                    d.peer_row(&n)
                        .is_some_and(|p| p["state"] == "alive" && p["endpoints"] == 1)
                }),
            ));
            let (c3, h3) = (&eps[2], &daemons[2]);
            checks.push((
                format!("{} knows c3 again", d.label),
                Box::new(move || remote_mismatch(d, net, c3, h3, vni).is_none()),
            ));
            let n = h3node.clone();
            checks.push((
                format!("{} floods to h3 again (peers)", d.label),
                Box::new(move || d.tunnels_to(&n).as_deref() == Some(net)),
            ));
            if ports_listed {
                let t = tun3.clone();
                checks.push((
                    format!("{} has tunnel port {t} again", d.label),
                    Box::new(move || d.has_port(&t)),
                ));
            }
        }
        let d3 = &daemons[2];
        let (n1, n2) = (daemons[0].node.clone(), h2node.clone());
        checks.push((
            "h3 shows h1 and h2 alive".to_string(),
            Box::new(move || {
                d3.peer_state(&n1).as_deref() == Some("alive")
                    && d3.peer_state(&n2).as_deref() == Some("alive")
            }),
        ));
        let (c1, c3) = (&eps[0], &eps[2]);
        let lab = &lab;
        checks.push((
            "c1 -> c3 ping".to_string(),
            Box::new(move || ping_ok(lab, &c1.ns, &c3.ip, 1, &[])),
        ));
        watch(t0, limit, &mut checks)
    };
    settle(
        "restarting h3's daemon",
        res,
        limit,
        &mut daemons,
        &mut report,
    );
    {
        let hosts: Vec<&HostDaemon> = daemons.iter().collect();
        assert_ping(&lab, &eps[2], &eps[0], &hosts);
        assert_ping(&lab, &eps[2], &eps[1], &hosts);
    }

    // --- cut h2's underlay link --------------------------------------------------------
    let t0 = Instant::now();
    ip(&["-n", &hns[1], "link", "set", "ul0", "down"]);
    let res = {
        let (d1, d2, d3) = (&daemons[0], &daemons[1], &daemons[2]);
        let mut checks: Vec<Check<'_>> = Vec::new();
        for d in [d1, d3] {
            let n = h2node.clone();
            checks.push((
                format!("{} shows h2 dead", d.label),
                Box::new(move || d.peer_state(&n).as_deref() == Some("dead")),
            ));
            let c2 = &eps[1];
            checks.push((
                format!("{} forgot c2", d.label),
                Box::new(move || forgot(d, net, c2)),
            ));
            let n = h2node.clone();
            checks.push((
                format!("{} dropped h2 from its flood list (peers)", d.label),
                Box::new(move || d.tunnels_to(&n).as_deref() == Some("")),
            ));
        }
        let (n1, n3) = (d1.node.clone(), h3node.clone());
        checks.push((
            "h2 shows h1 and h3 dead".to_string(),
            Box::new(move || {
                d2.peer_state(&n1).as_deref() == Some("dead")
                    && d2.peer_state(&n3).as_deref() == Some("dead")
            }),
        ));
        watch(t0, limit, &mut checks)
    };
    settle(
        "cutting h2's underlay link",
        res,
        limit,
        &mut daemons,
        &mut report,
    );

    // --- heal it -----------------------------------------------------------------------
    let t0 = Instant::now();
    ip(&["-n", &hns[1], "link", "set", "ul0", "up"]);
    let res = {
        let (d1, d2, d3) = (&daemons[0], &daemons[1], &daemons[2]);
        let mut checks: Vec<Check<'_>> = Vec::new();
        for d in [d1, d3] {
            let n = h2node.clone();
            checks.push((
                format!("{} shows h2 alive", d.label),
                Box::new(move || d.peer_state(&n).as_deref() == Some("alive")),
            ));
            let c2 = &eps[1];
            checks.push((
                format!("{} knows c2 again", d.label),
                Box::new(move || remote_mismatch(d, net, c2, d2, vni).is_none()),
            ));
            let n = h2node.clone();
            checks.push((
                format!("{} floods to h2 again (peers)", d.label),
                Box::new(move || d.tunnels_to(&n).as_deref() == Some(net)),
            ));
        }
        let (n1, n3) = (d1.node.clone(), h3node.clone());
        let (c1, c3) = (&eps[0], &eps[2]);
        checks.push((
            "h2 shows h1 and h3 alive and knows c1, c3".to_string(),
            Box::new(move || {
                d2.peer_state(&n1).as_deref() == Some("alive")
                    && d2.peer_state(&n3).as_deref() == Some("alive")
                    && remote_mismatch(d2, net, c1, d1, vni).is_none()
                    && remote_mismatch(d2, net, c3, d3, vni).is_none()
            }),
        ));
        let c2 = &eps[1];
        let lab = &lab;
        checks.push((
            "c1 -> c2 ping".to_string(),
            Box::new(move || ping_ok(lab, &c1.ns, &c2.ip, 1, &[])),
        ));
        watch(t0, limit, &mut checks)
    };
    settle(
        "healing h2's underlay link",
        res,
        limit,
        &mut daemons,
        &mut report,
    );
    {
        let hosts: Vec<&HostDaemon> = daemons.iter().collect();
        assert_ping(&lab, &eps[1], &eps[2], &hosts);
    }
    eprintln!("measured times:\n  {}", report.join("\n  "));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// 4. security
// ---------------------------------------------------------------------------

#[test]
fn gossip_is_sealed_and_foreign_keys_are_shut_out() {
    root_or_skip!();
    require_tools(&["dig", "getent"]);
    let lab = Lab::without_daemon();
    let (hns, addrs) = hosts_on_switch(&lab, "10.163.0", 4);
    let (net, vni, subnet) = ("secretnet", 9400u32, "10.203.0.0/24");
    let key = keygen(&lab, "cluster.key");
    let names = ["alphanode", "bravonode", "charlienode"];

    // Capture the gossip on every member's underlay while the cluster forms and learns a
    // network and an endpoint.
    let sniffers: Vec<Sniffer> = (0..3)
        .map(|i| {
            Sniffer::start(
                &lab,
                &hns[i],
                "ul0",
                &format!("udp port {GOSSIP_PORT}"),
                &format!("gossip{i}.pcap"),
            )
        })
        .collect();
    let daemons = start_cluster(&lab, &key, &hns[..3], &refs(&addrs[..3]), Some(&names));
    let hosts: Vec<&HostDaemon> = daemons.iter().collect();
    wait_formed(&hosts, Duration::from_secs(10));
    create_overlay(&daemons[0], net, vni, subnet);
    wait_network_everywhere(&hosts, net, vni, subnet, Duration::from_secs(10));
    let ens = lab.ns("e2");
    let ep = daemons[1].connect(net, &ens, &["--name", "secretep", "--alias", "secretalias"]);
    let owners = [(&ep, &daemons[1])];
    wait_tables(&hosts, net, vni, &owners, Duration::from_secs(10));
    thread::sleep(Duration::from_secs(1));

    let mut forbidden: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    forbidden.extend(
        [
            "secretnet",
            "secretep",
            "secretalias",
            "10.203.0.",
            "10.163.0.",
            "weft",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    forbidden.push(ep.ip.clone());
    forbidden.push(ep.mac.clone());
    forbidden.push(ep.mac.to_ascii_uppercase());
    let mut datagrams = 0;
    let mut leaks = Vec::new();
    let mut unsealed = Vec::new();
    for (i, s) in sniffers.into_iter().enumerate() {
        for f in s.finish() {
            let Some((ip, sport, dport, payload)) = udp(&f) else {
                continue;
            };
            if sport != GOSSIP_PORT && dport != GOSSIP_PORT {
                continue;
            }
            datagrams += 1;
            let what = format!(
                "{}:{sport} -> {}:{dport} ({} bytes, captured at h{})",
                ip_string(ip.src),
                ip_string(ip.dst),
                payload.len(),
                i + 1
            );
            if !payload.starts_with(b"WFG2") || payload.len() < 4 + 12 + 16 {
                unsealed.push(what.clone());
            }
            for w in &forbidden {
                if payload.windows(w.len()).any(|x| x == w.as_bytes()) {
                    leaks.push(format!("{w:?} in {what}"));
                }
            }
        }
    }
    eprintln!("{datagrams} gossip datagrams captured");
    assert!(
        datagrams >= 20,
        "only {datagrams} gossip datagrams captured on UDP {GOSSIP_PORT}: the capture proves \
         nothing"
    );
    assert!(
        unsealed.is_empty(),
        "gossip datagrams that are not sealed (\"WFG2\", nonce, tag): {unsealed:#?}"
    );
    assert!(
        leaks.is_empty(),
        "readable cluster data in the gossip on the wire: {leaks:#?}"
    );

    // A node with another key joining h1 learns nothing and is listed nowhere.
    let auth_before = daemons[0].cluster()["gossip_auth_failed"]
        .as_u64()
        .unwrap_or(0);
    let other_key = keygen(&lab, "other.key");
    let h4 = HostDaemon::start(
        &lab,
        "h4",
        &hns[3],
        &addrs[3],
        &member_args(&other_key, Some("intruder"), Some(&addrs[0])),
    );
    let t0 = Instant::now();
    let auth = wait_until(Duration::from_secs(10), || {
        daemons[0].cluster()["gossip_auth_failed"]
            .as_u64()
            .is_some_and(|n| n > auth_before)
    });
    assert!(
        auth.is_some(),
        "h1's gossip_auth_failed did not increase within 10 s of a node with another key \
         joining it\n{}{}",
        diag(&hosts),
        h4.diag()
    );
    // Give the intruder the full 10 s to (wrongly) get in.
    let rest = Duration::from_secs(10).saturating_sub(t0.elapsed());
    thread::sleep(rest);
    for d in &daemons {
        let peers = d.peers();
        assert!(
            !peers.iter().any(|p| p["name"] == "intruder"),
            "{} lists the node with another key: {peers:#?}",
            d.label
        );
        assert_eq!(
            d.cluster()["nodes_alive"],
            3,
            "{}: the cluster is still the three members",
            d.label
        );
    }
    let h4_peers = h4.peers();
    assert!(
        h4_peers.is_empty(),
        "the node with another key lists peers: {h4_peers:#?}"
    );
    let h4_nets = h4.networks();
    assert!(
        !h4_nets.iter().any(|n| n["name"] == net),
        "the node with another key learned the cluster's network: {h4_nets:#?}"
    );
    let c4 = h4.cluster();
    assert_eq!(c4["nodes_alive"], 1, "h4 knows only itself: {c4:#}");
    let c1 = daemons[0].cluster();
    eprintln!(
        "h1: gossip_auth_failed {} (was {auth_before}), h4: {}",
        c1["gossip_auth_failed"], c4["gossip_auth_failed"]
    );
    assert_eq!(
        c1["gossip_malformed"], 0,
        "datagrams under another key are auth failures, not malformed: {c1:#}"
    );
}

/// Runs `weft daemon` in `ns` with `args` (after --socket/--state-dir/--dns-upstream) and
/// expects a refusal: exit code 1 within 5 s, stderr "error: ..." containing every one of
/// `words`, the socket never served. Returns a description of what went wrong, if anything.
fn expect_refusal(
    lab: &Lab,
    ns: &str,
    case: &str,
    args: &[&str],
    words: &[&str],
) -> Option<String> {
    let dir = lab.dir.join(format!("refused-{case}"));
    fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("weft.sock");
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns])
        .arg(weft_bin())
        .arg("--socket")
        .arg(&socket)
        .arg("daemon")
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--dns-upstream", "127.0.0.1:9"])
        .args(args);
    let mut bg = Bg::spawn(c);
    let t0 = Instant::now();
    while bg.running() && t0.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(20));
    }
    if bg.running() {
        let served = UnixStream::connect(&socket).is_ok();
        bg.kill();
        return Some(format!(
            "{case}: `weft daemon {}` was still running after 5 s (the key was accepted; API \
             socket served: {served}); stderr: {:?}",
            args.join(" "),
            bg.stderr()
        ));
    }
    let st = bg.wait(Duration::from_secs(1));
    let err = bg.stderr();
    let mut problems = Vec::new();
    if st.code() != Some(1) {
        problems.push(format!("exit status {st}, not 1"));
    }
    if !err.trim_start().starts_with("error: ") {
        problems.push("stderr does not start with \"error: \"".to_string());
    }
    for w in words {
        if !err.contains(w) {
            problems.push(format!("stderr does not mention {w:?}"));
        }
    }
    if socket.exists() {
        problems.push(format!("the socket {} was created", socket.display()));
    }
    (!problems.is_empty()).then(|| {
        // A panic's backtrace would drown the message: its first lines say enough.
        let head: String = err.lines().take(3).collect::<Vec<_>>().join("\n");
        format!(
            "{case}: `weft daemon {}`: {}; stderr begins: {head:?}",
            args.join(" "),
            problems.join(", ")
        )
    })
}

#[test]
fn bad_cluster_key_files_refuse_the_start() {
    root_or_skip!();
    let lab = Lab::without_daemon();
    let (hns, addrs) = hosts_on_switch(&lab, "10.165.0", 1);
    let (ns, addr) = (hns[0].as_str(), addrs[0].as_str());
    let good = keygen(&lab, "good.key");
    let line = fs::read_to_string(&good).unwrap().trim().to_string();
    // A second keygen gives another key.
    let other = keygen(&lab, "other.key");
    assert_ne!(
        fs::read_to_string(&other).unwrap().trim(),
        line,
        "two `weft keygen` runs printed the same key"
    );

    let dir_path = lab.dir.join("a-directory.key");
    fs::create_dir(&dir_path).unwrap();
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("empty", Some(String::new())),
        ("short", Some(format!("{}\n", &line[..63]))),
        ("long", Some(format!("{line}0\n"))),
        ("non-hex", Some(format!("{}zz\n", &line[..62]))),
        ("plus-signs", Some(format!("{}\n", "+f".repeat(32)))),
        ("non-ascii", Some(format!("a{}a\n", "\u{e9}".repeat(31)))),
        ("two-lines", Some(format!("{line}\n{line}\n"))),
    ];
    let mut failures = Vec::new();
    for (case, content) in &cases {
        let path = lab.dir.join(format!("{case}.key"));
        if let Some(c) = content {
            fs::write(&path, c).unwrap();
            // Private, as a key file must be: what is refused is the content.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let p = path.to_str().unwrap();
        failures.extend(expect_refusal(
            &lab,
            ns,
            case,
            &["--advertise", addr, "--cluster-key-file", p],
            &[p, "weft keygen"],
        ));
    }
    let p = dir_path.to_str().unwrap();
    failures.extend(expect_refusal(
        &lab,
        ns,
        "unreadable",
        &["--advertise", addr, "--cluster-key-file", p],
        &[p, "weft keygen"],
    ));
    failures.extend(expect_refusal(
        &lab,
        ns,
        "join-without-key",
        &["--advertise", addr, "--join", "10.165.0.9"],
        &["--cluster-key-file", "weft keygen"],
    ));
    let g = good.to_str().unwrap();
    failures.extend(expect_refusal(
        &lab,
        ns,
        "no-advertise",
        &["--cluster-key-file", g],
        &["--advertise"],
    ));

    // The control: the same arguments with the good key start a cluster node.
    let mut d = HostDaemon::start(&lab, "good", ns, addr, &member_args(&good, None, None));
    let c = d.cluster();
    assert_eq!(
        c["node"], addr,
        "the default node name is the advertise address: {c:#}"
    );
    assert_eq!(c["nodes_alive"], 1, "{c:#}");
    let st = d.kill9();
    assert!(!st.success(), "killed");

    assert!(
        failures.is_empty(),
        "bad cluster key set-ups were not refused properly:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// 5. removing an overlay network; flooding only to nodes with endpoints
// ---------------------------------------------------------------------------

#[test]
fn removing_an_overlay_network() {
    root_or_skip!();
    require_tools(&["dig", "getent"]);
    let lab = Lab::without_daemon();
    let (hns, addrs) = hosts_on_switch(&lab, "10.164.0", 3);
    let (net, vni, subnet) = ("ovrm", 9500u32, "10.204.0.0/24");
    let key = keygen(&lab, "cluster.key");
    let daemons = start_cluster(&lab, &key, &hns, &refs(&addrs), None);
    let hosts: Vec<&HostDaemon> = daemons.iter().collect();
    wait_formed(&hosts, Duration::from_secs(10));
    create_overlay(&daemons[0], net, vni, subnet);
    wait_network_everywhere(&hosts, net, vni, subnet, Duration::from_secs(10));

    // Endpoints on h2 and h3, none on h1.
    let e2ns = lab.ns("e2");
    let e3ns = lab.ns("e3");
    let e2 = daemons[1].connect(net, &e2ns, &["--name", "e2"]);
    let e3 = daemons[2].connect(net, &e3ns, &["--name", "e3"]);
    let owners = [(&e2, &daemons[1]), (&e3, &daemons[2])];
    wait_tables(&hosts, net, vni, &owners, Duration::from_secs(10));
    assert_ping(&lab, &e2, &e3, &hosts);

    // Broadcasts from e2 are replicated to h3 (which has an endpoint in the VNI), not to h1.
    let (to_h1, to_h3) = (
        daemons[1].tunnels_to(&daemons[0].node),
        daemons[1].tunnels_to(&daemons[2].node),
    );
    assert!(
        to_h3.as_deref() == Some(net) && to_h1.as_deref() == Some(""),
        "h2 should have a tunnel to h3 (endpoint e3) and none to h1 (no endpoint in VNI {vni})\n{}",
        diag(&hosts)
    );
    for p in daemons[1].peers() {
        let want = if p["name"] == daemons[2].node.as_str() {
            1
        } else {
            0
        };
        assert_eq!(p["endpoints"], want, "h2's peer row: {p}");
    }
    let ul: Vec<Sniffer> = [0, 2]
        .iter()
        .map(|&i| {
            Sniffer::start(
                &lab,
                &hns[i],
                "ul0",
                &format!("udp port {VXLAN_PORT}"),
                &format!("ul{i}.pcap"),
            )
        })
        .collect();
    let e3cap = Sniffer::start(&lab, &e3ns, "eth0", "ether proto 0x88b5", "e3-marker.pcap");
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|n| marker_frame(e2.mac_bytes(), &format!("weft-flood-{n}")))
        .collect();
    assert_eq!(lab.send_frames(&e2ns, "eth0", &frames), 3);
    let want: Vec<String> = (0..3).map(|n| format!("weft-flood-{n}")).collect();
    let mut got: Vec<String> = e3cap
        .finish()
        .iter()
        .filter_map(|f| marker_tag(f))
        .collect();
    got.sort();
    assert_eq!(
        got,
        want,
        "e3 should receive each broadcast from e2 exactly once\n{}",
        diag(&hosts)
    );
    let mut per_dst: BTreeMap<String, usize> = BTreeMap::new();
    // Each capture counts the datagrams addressed to its own host (the underlay bridge may
    // flood a frame to a port it has not learned yet; that is not weft's doing).
    for (cap, (at, own)) in ul.into_iter().zip([("h1", &addrs[0]), ("h3", &addrs[2])]) {
        for f in cap.finish() {
            if let Some((outer, inner)) = vxlan(&f) {
                if marker_tag(inner).is_some() && ip_string(outer.dst) == **own {
                    *per_dst
                        .entry(format!("{} (seen at {at})", ip_string(outer.dst)))
                        .or_default() += 1;
                }
            }
        }
    }
    let expected: BTreeMap<String, usize> = [(format!("{} (seen at h3)", addrs[2]), 3)]
        .into_iter()
        .collect();
    assert_eq!(
        per_dst, expected,
        "marker broadcasts from e2 should be carried to h3 only, once each"
    );

    // Remove the network on h1 (no endpoint there) once h3 has let go of its endpoint.
    daemons[2].weft_ok(&["disconnect", net, "e3"]);
    let o = daemons[0].weft(&["network", "rm", net]);
    assert!(
        o.status.success(),
        "`weft network rm {net}` on h1 failed ({}), although h1 has no endpoint on it (h2 has \
         e2; h1's only ports in {net} are the gossip's tunnels):\n{}{}\n{}",
        o.status,
        stdout_of(&o),
        stderr_of(&o),
        diag(&hosts)
    );
    assert!(
        daemons[0].network(net).is_none(),
        "h1 still lists {net} after `network rm`"
    );
    let t = wait_until(Duration::from_secs(10), || {
        daemons[2].network(net).is_none()
    });
    let t = t.unwrap_or_else(|| {
        panic!(
            "h3 (no endpoint) still has {net} 10 s after h1 removed it\n{}",
            diag(&hosts)
        )
    });
    eprintln!("h3 dropped the network {t:?} after the rm on h1");
    // h2 keeps it while e2 is attached.
    thread::sleep(Duration::from_secs(2));
    assert!(
        daemons[1].network(net).is_some(),
        "h2 dropped {net} although its endpoint e2 is attached\n{}",
        diag(&hosts)
    );
    let eps: Vec<String> = daemons[1].weft_json(&["network", "inspect", net])["endpoints"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(eps, vec!["e2".to_string()], "h2's endpoints of {net}");
    assert!(
        lab.link_names(&e2ns).iter().any(|l| l == "eth0"),
        "e2's interface disappeared"
    );
    assert!(
        daemons[0].network(net).is_none() && daemons[2].network(net).is_none(),
        "h1 or h3 took {net} back from h2"
    );
    // Once e2 leaves, h2 drops it too.
    daemons[1].weft_ok(&["disconnect", net, "e2"]);
    let t = wait_until(Duration::from_secs(10), || {
        daemons[1].network(net).is_none()
    });
    let t = t.unwrap_or_else(|| {
        panic!(
            "h2 still has {net} 10 s after its last endpoint left\n{}",
            diag(&hosts)
        )
    });
    eprintln!("h2 dropped the network {t:?} after its endpoint left");
    thread::sleep(Duration::from_secs(1));
    for d in &daemons {
        assert!(
            d.network(net).is_none(),
            "{} has {net} back after the removal\n{}",
            d.label,
            diag(&hosts)
        );
    }

    // The name can be used again: a new network of that name spreads as before.
    create_overlay(&daemons[0], net, vni, subnet);
    wait_network_everywhere(&hosts, net, vni, subnet, Duration::from_secs(10));
}
