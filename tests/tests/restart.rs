//! Daemon restart: state dir restores networks, endpoints (TAP and veth
//! re-attached) and static FDB entries.

use serde_json::Value;
use std::time::Duration;
use weft_tests::*;

#[test]
fn daemon_restart_restores_state_and_forwarding() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.61.0.0/24", &["--mtu", "1450", "--aging", "120"]);
    lab.create_network("empty", "10.62.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);
    let c = lab.connect("n", &lab.ns("c"), &[]);
    let static_mac = "02:00:00:00:61:01";
    lab.weft_ok(&["fdb", "add", "n", static_mac, &c.name]);
    lab.assert_ping(&a, &b);
    lab.assert_ping(&b, &c);
    lab.assert_ping(&c, &a);
    let nets_before = lab.networks();
    let eps_before = lab.endpoints("n");

    let st = lab.stop_daemon();
    assert!(
        st.success(),
        "daemon did not exit cleanly on SIGTERM: {st}\n{}",
        lab.daemon_log()
    );

    // Interfaces persist, but nobody forwards.
    for ep in [&a, &b, &c] {
        assert!(
            lab.link_names(&ep.ns).contains(&ep.ifname),
            "{} lost its {} when the daemon stopped",
            ep.name,
            ep.ifname
        );
    }
    assert!(
        !lab.ping(&a.ns, &b.ip),
        "ping a->b works with the daemon stopped?!"
    );
    assert!(
        !lab.ping(&c.ns, &a.ip),
        "ping c->a works with the daemon stopped?!"
    );
    let o = lab.weft(&["network", "ls"]);
    check_error(
        &o,
        "weft network ls (daemon stopped)",
        &["weft daemon", "daemon", "connect"],
    );

    lab.start_daemon();
    assert!(
        lab.wait_ping(&a.ns, &b.ip, Duration::from_secs(10)),
        "a->b does not work again after restart\n{}",
        lab.daemon_log()
    );
    lab.assert_ping(&b, &c);
    lab.assert_ping(&c, &a);

    let nets_after = lab.networks();
    let key = |v: &[Value]| {
        let mut s: Vec<String> = v.iter().map(|n| n.to_string()).collect();
        s.sort();
        s
    };
    assert_eq!(
        key(&nets_before),
        key(&nets_after),
        "network ls changed across restart"
    );
    let eps_after = lab.endpoints("n");
    assert_eq!(
        key(&eps_before),
        key(&eps_after),
        "endpoints changed across restart"
    );
    let fdb = lab.fdb("n");
    let s = fdb_entry(&fdb, static_mac)
        .unwrap_or_else(|| panic!("static FDB entry lost across restart: {fdb:?}"));
    assert_eq!(s["origin"], "static");
    assert!(
        c.is_port(&s["port"]),
        "static entry restored on the wrong port: {s}"
    );
    let ports = lab.ports();
    assert_eq!(ports.len(), 3, "ports after restart: {ports:?}");
    for ep in [&a, &b, &c] {
        assert_eq!(lab.port(&ep.name)["kind"], Value::from(ep.kind.clone()));
    }

    // The allocator state is restored too: a new endpoint gets a free address.
    let d = lab.connect("n", &lab.ns("d"), &[]);
    for ep in [&a, &b, &c] {
        assert_ne!(
            d.ip, ep.ip,
            "new endpoint after restart got an address in use"
        );
        assert_ne!(d.mac, ep.mac, "new endpoint after restart got a MAC in use");
    }
    lab.assert_ping(&d, &b);

    // Disconnect of re-attached endpoints works.
    lab.weft_ok(&["disconnect", "n", &a.name]);
    lab.weft_ok(&["disconnect", "n", &b.name]);
    assert!(
        !lab.link_names(&a.ns).contains(&a.ifname),
        "TAP not removed after restart+disconnect"
    );
    assert!(
        !lab.link_names(&b.ns).contains(&b.ifname),
        "veth not removed after restart+disconnect"
    );
    lab.assert_ping(&c, &d);

    // A second restart (after changes) still restores the current state.
    let st = lab.stop_daemon();
    assert!(st.success(), "second stop: {st}");
    lab.start_daemon();
    assert!(
        lab.wait_ping(&d.ns, &c.ip, Duration::from_secs(10)),
        "d->c after second restart"
    );
    let names: Vec<String> = lab
        .endpoints("n")
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&c.name) && names.contains(&d.name),
        "{names:?}"
    );
}

/// SIGINT stops the daemon cleanly as well.
#[test]
fn daemon_stops_on_sigint() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.63.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &[]);
    lab.assert_ping(&a, &b);
    let st = lab.stop_daemon_with(libc::SIGINT);
    assert!(st.success(), "daemon did not exit cleanly on SIGINT: {st}");
    lab.start_daemon();
    assert!(
        lab.wait_ping(&a.ns, &b.ip, Duration::from_secs(10)),
        "no forwarding after SIGINT + restart"
    );
}

/// A state file with an endpoint record this weft cannot read (its MAC is broken): the
/// daemon starts with the rest, says which record it skipped and why, keeps the record in
/// the state file through later saves (for a weft that can read it), and keeps its name
/// taken meanwhile.
#[test]
fn unreadable_endpoint_record_is_reported_and_kept() {
    root_or_skip!();
    let lab = Lab::without_daemon();
    let ghost = serde_json::json!({
        "name": "ghost", "network": "n", "netns": "nowhere", "ifname": "eth0",
        "kind": "tap", "ip": "10.64.0.9", "mac": "02:42:0a:40:00:zz"
    });
    let state = serde_json::json!({
        "version": 1,
        "networks": [{
            "name": "n", "subnet": "10.64.0.0/24", "gateway": "10.64.0.1", "mtu": 1500,
            "aging_seconds": 300
        }],
        "endpoints": [ghost],
        "static_fdb": []
    });
    let path = lab.state_dir.join("state.json");
    std::fs::write(&path, state.to_string()).unwrap();
    lab.start_daemon();
    assert_eq!(lab.networks().len(), 1, "{}", lab.daemon_log());
    let log = lab.daemon_log();
    assert!(
        log.contains("endpoint record 1 (\"ghost\")") && log.contains("02:42:0a:40:00:zz"),
        "the log does not say which record was skipped and why:\n{log}"
    );

    // A change saves the state; the record is still there, as it was.
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let endpoints = saved["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2, "{saved}");
    assert!(
        endpoints.contains(&ghost),
        "the unreadable record was lost: {saved}"
    );
    assert!(endpoints.iter().any(|e| e["name"] == a.name.as_str()));
    lab.weft_err(
        &["connect", "n", "--netns", &lab.ns("b"), "--name", "ghost"],
        &["ghost"],
    );

    // And across a restart.
    let st = lab.stop_daemon();
    assert!(st.success(), "stop: {st}");
    lab.start_daemon();
    lab.weft_ok(&["disconnect", "n", &a.name]);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(saved["endpoints"], serde_json::json!([ghost]), "{saved}");
}
