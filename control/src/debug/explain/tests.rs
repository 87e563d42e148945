use super::*;

fn net(name: &str, subnet: &str) -> NetSnap {
    let subnet: Ipv4Net = subnet.parse().unwrap();
    NetSnap {
        name: name.into(),
        gateway: subnet.hosts().next().unwrap(),
        subnet,
        mtu: 1500,
        icc: true,
        nat: true,
        internal: false,
        vni: None,
    }
}

fn ep(name: &str, network: &str, ip: &str) -> EpSnap {
    EpSnap {
        name: name.into(),
        network: network.into(),
        ip: ip.parse().unwrap(),
        mac: "02:42:0a:00:00:02".into(),
        node: None,
        port_security: true,
        published: Vec::new(),
        detached: None,
        in_fdb: true,
        in_arp: true,
        link_down: false,
        impair: None,
    }
}

fn snap() -> Snapshot {
    let mut web = ep("web", "lab", "10.0.0.2");
    web.published.push(PortMapping::new(
        Ipv4Addr::UNSPECIFIED,
        8080,
        80,
        Protocol::Tcp,
    ));
    Snapshot {
        networks: vec![net("lab", "10.0.0.0/24"), net("other", "10.9.0.0/24")],
        endpoints: vec![
            web,
            ep("db", "lab", "10.0.0.3"),
            ep("x", "other", "10.9.0.2"),
        ],
    }
}

fn ask(s: &Snapshot, from: &str, to: &str, port: Option<&str>) -> Explanation {
    explain(s, from, to, port).unwrap()
}

#[test]
fn a_reachable_pair_walks_every_check() {
    let e = ask(&snap(), "web", "10.0.0.3", None);
    assert_eq!(e.verdict, "reachable");
    let checks: Vec<&str> = e.steps.iter().map(|s| s.check.as_str()).collect();
    assert_eq!(checks, ["network", "security", "icc", "arp", "fdb"]);
    assert_eq!(e.reason, "web reaches db on network lab");
    assert_eq!(e.fix, None);
}

#[test]
fn icc_networks_links_and_dead_nodes_block_with_a_fix() {
    let mut s = snap();
    s.networks[0].icc = false;
    let e = ask(&s, "web", "db", None);
    assert_eq!(e.verdict, "blocked");
    assert_eq!(
        e.reason,
        "network lab was created with --icc=false; endpoints reach the gateway only"
    );
    assert!(e.fix.unwrap().contains("--icc=false"));
    // The gateway is still reachable.
    assert_eq!(ask(&s, "web", "10.0.0.1", None).verdict, "reachable");

    let e = ask(&snap(), "web", "x", None);
    assert!(
        e.reason.contains("does not route between networks"),
        "{e:?}"
    );

    let mut s = snap();
    s.endpoints[1].link_down = true;
    assert_eq!(
        ask(&s, "web", "db", None).fix.as_deref(),
        Some("weft link db up")
    );

    let mut s = snap();
    s.networks[0].vni = Some(42);
    s.endpoints[1].node = Some(("h2".into(), false));
    let e = ask(&s, "web", "db", None);
    assert!(
        e.reason
            .contains("node h2, which the cluster declares dead"),
        "{e:?}"
    );
    s.endpoints[1].node = Some(("h2".into(), true));
    let e = ask(&s, "web", "db", None);
    assert_eq!(e.verdict, "reachable");
    assert!(e.steps.iter().any(|s| s.check == "mtu"), "{e:?}");
}

#[test]
fn the_outside_needs_nat_one_way_and_published_ports_the_other() {
    let e = ask(&snap(), "web", "192.0.2.7", Some("80/tcp"));
    assert_eq!(e.verdict, "reachable");
    assert!(e.steps.iter().any(|s| s.check == "nat"));
    let mut s = snap();
    s.networks[0].internal = true;
    let e = ask(&s, "web", "192.0.2.7", None);
    assert_eq!(
        e.reason,
        "network lab was created with --internal: no route out"
    );
    let e = ask(&snap(), "web", "127.0.0.1", None);
    assert_eq!(e.verdict, "blocked");
    let e = ask(&snap(), "192.0.2.7", "0.0.0.0:8080", None);
    assert_eq!(e.verdict, "reachable", "{e:?}");
    let e = ask(&snap(), "192.0.2.7", "web", Some("80/tcp"));
    assert_eq!(e.verdict, "reachable");
    let e = ask(&snap(), "192.0.2.7", "db", Some("5432/tcp"));
    assert_eq!(
        e.fix.as_deref(),
        Some("weft publish db -p HOSTPORT:5432/tcp")
    );
    assert_eq!(
        explain(&snap(), "nosuch", "db", None).unwrap_err(),
        ExplainError::Unknown("nosuch".into())
    );
    assert!(matches!(
        explain(&snap(), "web", "db", Some("80/sctp")),
        Err(ExplainError::BadPort(_))
    ));
}
