//! Basic L2 connectivity through the userspace bridge, endpoint plumbing.

use serde_json::Value;
use std::time::Duration;
use weft_tests::*;

/// Three namespaces (tap, veth, tap) on one network: every pair pings, and
/// the port counters grow.
#[test]
fn mixed_tap_veth_endpoints_all_pairs_ping() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("lan", "10.20.0.0/24", &[]);
    let a = lab.connect("lan", &lab.ns("a"), &[]);
    let b = lab.connect("lan", &lab.ns("b"), &["--kind", "veth"]);
    let c = lab.connect("lan", &lab.ns("c"), &["--kind", "tap"]);
    assert_eq!(a.kind, "tap", "default kind must be tap: {:?}", a.json);
    assert_eq!(b.kind, "veth");
    assert_eq!(c.kind, "tap");
    let eps = [&a, &b, &c];

    // Distinct addresses and MACs.
    for (i, x) in eps.iter().enumerate() {
        for y in &eps[i + 1..] {
            assert_ne!(x.ip, y.ip, "two endpoints got the same IP");
            assert_ne!(x.mac, y.mac, "two endpoints got the same MAC");
        }
    }

    let before = lab.ports();
    assert_eq!(before.len(), 3, "ports: {before:?}");
    for ep in &eps {
        let p = lab.port(&ep.name);
        assert_eq!(
            p["kind"],
            Value::from(ep.kind.clone()),
            "ports kind of {}: {p}",
            ep.name
        );
        assert_eq!(
            p["network"],
            Value::from("lan"),
            "ports network of {}: {p}",
            ep.name
        );
        assert_eq!(
            p["endpoint"],
            Value::from(ep.name.clone()),
            "ports endpoint of {}: {p}",
            ep.name
        );
    }

    for x in &eps {
        for y in &eps {
            if x.name != y.name {
                lab.assert_ping(x, y);
            }
        }
    }

    for ep in &eps {
        let old = before
            .iter()
            .find(|p| p["name"] == ep.name.clone())
            .unwrap();
        let new = lab.port(&ep.name);
        for k in ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes"] {
            // every endpoint sent 2 pings to each of 2 peers and answered 4
            assert!(
                counter(&new, k) >= counter(old, k) + 4,
                "port {} ({}): {k} did not grow enough: before {old}, after {new}",
                ep.name,
                ep.kind
            );
        }
        assert!(
            counter(&new, "rx_bytes") >= counter(&new, "rx_packets") * 42,
            "rx_bytes implausible: {new}"
        );
    }

    let nets = lab.networks();
    assert_eq!(nets.len(), 1, "network ls: {nets:?}");
    let n = &nets[0];
    assert_eq!(n["name"], "lan");
    assert_eq!(n["subnet"], "10.20.0.0/24");
    assert_eq!(
        n["gateway"], "10.20.0.1",
        "gateway defaults to the first host address"
    );
    assert_eq!(n["endpoints"], 3, "network ls endpoint count: {n}");
    assert!(
        n.get("mtu").and_then(Value::as_u64).is_some(),
        "mtu missing: {n}"
    );
    assert!(
        n.get("aging_seconds").is_some(),
        "aging_seconds missing: {n}"
    );

    let table = lab.weft_ok(&["ports"]);
    for ep in &eps {
        assert!(
            table.contains(&ep.name),
            "ports table lacks {}: {table}",
            ep.name
        );
    }
    let table = lab.weft_ok(&["network", "ls"]);
    assert!(
        table.contains("lan") && table.contains("10.20.0.0/24"),
        "network ls table: {table}"
    );
}

/// `connect` configures the interface in the namespace: address, MAC, MTU,
/// link up, default route via the gateway; explicit --ip/--mac/--ifname/--name
/// are honoured, for both kinds.
#[test]
fn connect_configures_interface_in_namespace() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network(
        "n",
        "10.21.0.0/24",
        &["--gateway", "10.21.0.254", "--mtu", "1400"],
    );
    let net = &lab.networks()[0];
    assert_eq!(net["gateway"], "10.21.0.254");
    assert_eq!(net["mtu"], 1400);

    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect(
        "n",
        &lab.ns("b"),
        &[
            "--ip",
            "10.21.0.77",
            "--mac",
            "02:AA:bb:cc:dd:01",
            "--ifname",
            "net0",
            "--name",
            "bee",
        ],
    );
    let c = lab.connect(
        "n",
        &lab.ns("c"),
        &[
            "--kind",
            "veth",
            "--ip",
            "10.21.0.78",
            "--mac",
            "02:aa:bb:cc:dd:02",
        ],
    );

    assert_eq!(b.name, "bee");
    assert_eq!(b.ip, "10.21.0.77");
    assert_eq!(b.mac, "02:aa:bb:cc:dd:01");
    assert_eq!(b.ifname, "net0");
    assert_eq!(b.network, "n");
    assert_eq!(a.ifname, "eth0", "default ifname");
    assert_eq!(c.ifname, "eth0");
    assert_eq!(c.kind, "veth");
    assert_eq!(a.name, a.ns, "default name is the namespace name");
    for ep in [&a, &b, &c] {
        assert_eq!(ep.prefix_len, 24, "{:?}", ep.json);
        assert!(
            ep.ip.starts_with("10.21.0."),
            "ip outside subnet: {}",
            ep.ip
        );
        let last: u32 = ep.ip.rsplit('.').next().unwrap().parse().unwrap();
        assert!(
            last != 0 && last != 255 && last != 254,
            "allocated reserved address {}",
            ep.ip
        );

        let link = lab.exec_ok(&ep.ns, &["ip", "-o", "link", "show", "dev", &ep.ifname]);
        assert!(
            link.contains("mtu 1400"),
            "{}: MTU not set: {link}",
            ep.name
        );
        assert!(
            link.contains(&format!("link/ether {}", ep.mac)),
            "{}: MAC not set: {link}",
            ep.name
        );
        assert!(
            link.contains(",UP") || link.contains("<UP"),
            "{}: link not up: {link}",
            ep.name
        );
        let addr = lab.exec_ok(
            &ep.ns,
            &["ip", "-o", "-4", "addr", "show", "dev", &ep.ifname],
        );
        assert!(
            addr.contains(&format!("inet {}/{}", ep.ip, ep.prefix_len)),
            "{}: address not set: {addr}",
            ep.name
        );
        let route = lab.exec_ok(&ep.ns, &["ip", "route", "show", "default"]);
        assert!(
            route.contains("via 10.21.0.254") && route.contains(&format!("dev {}", ep.ifname)),
            "{}: no default route via the gateway: {route:?}",
            ep.name
        );
    }

    // inspect shows the network and the three endpoints with the same data as connect printed
    let ins = lab.inspect("n");
    assert_eq!(ins["name"], "n", "{ins}");
    assert_eq!(ins["subnet"], "10.21.0.0/24", "{ins}");
    assert_eq!(ins["gateway"], "10.21.0.254", "{ins}");
    assert_eq!(ins["mtu"], 1400, "{ins}");
    assert!(ins["aging_seconds"].is_number(), "{ins}");
    let eps = lab.endpoints("n");
    assert_eq!(eps.len(), 3, "inspect: {eps:?}");
    for ep in [&a, &b, &c] {
        let e = eps
            .iter()
            .find(|e| e["name"] == ep.name.clone())
            .unwrap_or_else(|| panic!("{} missing in inspect: {eps:?}", ep.name));
        for k in ["network", "ifname", "kind", "ip", "prefix_len", "port"] {
            assert_eq!(
                e[k], ep.json[k],
                "inspect vs connect mismatch on {k}: {e} vs {}",
                ep.json
            );
        }
        assert!(e["mac"].as_str().unwrap().eq_ignore_ascii_case(&ep.mac));
    }

    lab.assert_ping(&a, &b);
    lab.assert_ping(&b, &c);
    lab.assert_ping(&c, &a);
    // Path MTU 1400: a 1372-byte ICMP payload fits, DF 1373 does not leave the host.
    let o = lab.exec(
        &a.ns,
        &[
            "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1372", &b.ip,
        ],
    );
    assert!(
        o.status.success(),
        "full-MTU ping failed: {}",
        stdout_of(&o) + &stderr_of(&o)
    );
    let o = lab.exec(
        &a.ns,
        &[
            "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1373", &b.ip,
        ],
    );
    assert!(
        !o.status.success(),
        "ping larger than the MTU with DF should fail locally"
    );
}

/// Default endpoint names: namespace name, path basename, "pid<PID>", and
/// NAME-IFNAME when the default name is taken.
#[test]
fn endpoint_default_names_and_pid_or_path_attach() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.23.0.0/24", &[]);
    let x = lab.ns("x");
    let e1 = lab.connect("n", &x, &[]);
    assert_eq!(e1.name, x);
    let e2 = lab.connect("n", &x, &["--ifname", "eth1"]);
    assert_eq!(
        e2.name,
        format!("{x}-eth1"),
        "name fallback when the namespace name is taken"
    );
    assert!(lab.link_names(&x).contains(&"eth1".to_string()));

    let y = lab.ns("y");
    let path = format!("/run/netns/{y}");
    let v = lab.weft_json(&["connect", "n", "--netns", &path]);
    let e3 = Endpoint::from_json(&v, &y);
    assert_eq!(e3.name, y, "--netns PATH: default name is the basename");

    let z = lab.ns("z");
    let mut sleeper = lab.spawn_in(&z, &["sleep", "120"]);
    let pid = sleeper.pid();
    // wait until `ip netns exec` has switched namespaces and exec'ed sleep
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert!(
        eventually(Duration::from_secs(5), || {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .map(|l| l != ours)
                .unwrap_or(false)
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim() == "sleep")
                    .unwrap_or(false)
        }),
        "sleeper did not enter namespace"
    );
    let v = lab.weft_json(&["connect", "n", "--pid", &pid.to_string(), "--kind", "veth"]);
    let e4 = Endpoint::from_json(&v, &z);
    assert_eq!(e4.name, format!("pid{pid}"));
    assert!(
        lab.link_names(&z).contains(&"eth0".to_string()),
        "--pid: eth0 not created in the process' namespace"
    );

    lab.assert_ping(&e3, &e4);
    lab.assert_ping(&e4, &e1);
    sleeper.kill();
    assert_eq!(lab.endpoints("n").len(), 4);
}

/// `disconnect` removes the interface and the endpoint; traffic stops; a new
/// connect works again.
#[test]
fn disconnect_removes_interface_and_endpoint() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.24.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let bns = lab.ns("b");
    let b = lab.connect("n", &bns, &["--kind", "veth"]);
    let c = lab.connect("n", &lab.ns("c"), &[]);
    lab.assert_ping(&a, &b);
    lab.assert_ping(&a, &c);

    lab.weft_ok(&["disconnect", "n", &b.name]);
    assert!(
        !lab.link_names(&bns).contains(&"eth0".to_string()),
        "veth end still in namespace: {:?}",
        lab.link_names(&bns)
    );
    let eps = lab.endpoints("n");
    assert_eq!(eps.len(), 2, "{eps:?}");
    assert!(
        lab.ports().iter().all(|p| p["name"] != b.name.clone()),
        "port of {} still listed",
        b.name
    );
    assert!(
        !lab.ping(&a.ns, &b.ip),
        "ping to a disconnected endpoint succeeded"
    );

    lab.weft_ok(&["disconnect", "n", &c.name]);
    assert!(
        !lab.link_names(&c.ns).contains(&"eth0".to_string()),
        "TAP still in namespace"
    );
    assert_eq!(lab.networks()[0]["endpoints"], 1);

    lab.weft_err(
        &["disconnect", "n", "nosuch"],
        &["nosuch", "not found", "unknown", "no such"],
    );

    // reconnect both (kinds swapped) and traffic flows again
    let b2 = lab.connect("n", &bns, &[]);
    let c2 = lab.connect("n", &c.ns, &["--kind", "veth"]);
    lab.assert_ping(&a, &b2);
    lab.assert_ping(&b2, &c2);
}
