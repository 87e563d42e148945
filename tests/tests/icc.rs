//! `weft network create --icc=false`: endpoints reach the gateway (ARP, ping, DNS) but not
//! each other; ping and TCP both fail and the drops are counted by reason.

use std::time::Duration;
use weft_tests::*;

#[test]
fn without_icc_endpoints_reach_the_gateway_but_not_each_other() {
    let lab = Lab::new();
    lab.create_network("closed", "10.95.0.0/24", &["--icc=false"]);
    lab.create_network("open", "10.96.0.0/24", &[]);
    let a = lab.connect("closed", &lab.ns("a"), &[]);
    let b = lab.connect("closed", &lab.ns("b"), &["--kind", "veth"]);
    let c = lab.connect("open", &lab.ns("c"), &[]);
    let d = lab.connect("open", &lab.ns("d"), &[]);

    let nets = lab.networks();
    let closed = nets
        .iter()
        .find(|n| n["name"] == "closed")
        .expect("closed listed");
    assert_eq!(closed["icc"], false, "{closed}");
    assert_eq!(lab.inspect("open")["icc"], true);

    // The gateway answers both endpoints.
    assert!(lab.ping(&a.ns, "10.95.0.1"));
    assert!(lab.ping(&b.ns, "10.95.0.1"));
    // Endpoints of the closed network cannot reach each other: ping ...
    assert!(
        !lab.ping(&a.ns, &b.ip),
        "ping crossed an --icc=false network"
    );
    // ... nor TCP (a listener on b, a connect from a).
    let mut server = lab.spawn_in(
        &b.ns,
        &["python3", "-c", "import socket; s=socket.socket(); s.bind(('0.0.0.0', 7777)); s.listen(); s.settimeout(8); s.accept()"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let out = lab.exec(
        &a.ns,
        &[
            "python3",
            "-c",
            &format!(
                "import socket; socket.create_connection(('{}', 7777), timeout=2)",
                b.ip
            ),
        ],
    );
    assert!(!out.status.success(), "TCP connected across --icc=false");
    server.kill();
    let port = lab.port(&a.name);
    assert!(drops(&port, "icc_denied") >= 2, "{port}");

    // The open network is unaffected.
    lab.assert_ping(&c, &d);
    // The setting persists across a restart.
    lab.stop_daemon();
    lab.start_daemon();
    assert!(lab.ping(&a.ns, "10.95.0.1"));
    assert!(!lab.ping(&a.ns, &b.ip));
    assert_eq!(lab.inspect("closed")["icc"], false);
}
