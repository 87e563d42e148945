//! `weft trace PORT --inject SPEC`: a synthetic frame put through the whole decision on the
//! live tables — ARP suppression, forwarding, the NAT, published ports, `--icc=false`, port
//! security — with nothing learned, counted or sent.

use serde_json::Value;
use weft_tests::*;

/// Everything a frame could change: FDB (without ages), ARP, port counters, NAT flows and
/// network statistics.
fn tables(lab: &Lab) -> Value {
    let mut fdb = lab.weft_json(&["fdb"]);
    if let Some(rows) = fdb.as_array_mut() {
        for r in rows {
            if let Some(o) = r.as_object_mut() {
                o.retain(|k, _| !k.contains("age"));
            }
        }
    }
    serde_json::json!({
        "fdb": fdb,
        "arp": lab.weft_json(&["arp"]),
        "ports": lab.weft_json(&["ports"]),
        "nat": lab.weft_json(&["nat"]),
        "stats": lab.weft_json(&["stats"]),
    })
}

/// Frames the kernel received on `ifname` inside `ns`.
fn rx_packets(lab: &Lab, ns: &str, ifname: &str) -> u64 {
    let path = format!("/sys/class/net/{ifname}/statistics/rx_packets");
    lab.exec_ok(ns, &["cat", &path]).trim().parse().unwrap()
}

/// `weft trace PORT --inject SPEC`, asserting the tables did not change; its output.
fn inject(lab: &Lab, port: &str, spec: &str) -> String {
    let before = tables(lab);
    let out = lab.weft_ok(&["trace", port, "--inject", spec]);
    let after = tables(lab);
    assert_eq!(
        before, after,
        "`weft trace {port} --inject {spec:?}` changed the tables:\n{out}"
    );
    assert!(
        out.contains("nothing was learned, counted or sent"),
        "{out}"
    );
    out
}

#[test]
fn synthetic_frames_walk_the_decision_and_change_nothing() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.135.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth", "-P", "80"]);
    lab.assert_ping(&a, &b);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let b_rx = rx_packets(&lab, &b.ns, &b.ifname);

    // ARP: answered by the switch (suppression), nothing flooded.
    let out = inject(&lab, &a.name, &format!("arp who-has {}", b.ip));
    assert!(
        out.contains(&format!("ARP who-has {} tell {}", b.ip, a.ip)),
        "{out}"
    );
    assert!(
        out.contains("an ARP request the switch answers itself"),
        "{out}"
    );
    assert!(
        out.contains("verdict   answered by the switch: a 42-byte reply"),
        "{out}"
    );

    // ICMP between the two endpoints: to b's port, by name and by address.
    for dst in [b.name.as_str(), b.ip.as_str()] {
        let out = inject(&lab, &a.name, &format!("icmp {} > {dst}", a.ip));
        assert!(
            out.contains(&format!(
                "{} > {} IPv4 {} > {} ICMP",
                a.mac, b.mac, a.ip, b.ip
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!("  fdb       {} is behind {}", b.mac, b.name)),
            "{out}"
        );
        assert!(
            out.contains(&format!("  verdict   forwarded to {}", b.name)),
            "{out}"
        );
        // The dry run says what learning would do, and does not do it.
        assert!(out.contains(&format!("  learn     {} ", a.mac)), "{out}");
    }

    // TCP to an outside address: the gateway's runtime, the proxy NAT.
    let out = inject(
        &lab,
        &a.name,
        &format!("tcp {}:40000 > 192.0.2.7:80 syn", a.ip),
    );
    assert!(out.contains("sent to the gateway's MAC"), "{out}");
    assert!(
        out.contains("nat       proxy NAT: TCP to 192.0.2.7:80"),
        "{out}"
    );
    assert!(
        out.contains("verdict   to the outside through network n's proxy NAT"),
        "{out}"
    );

    // The reply path of b's published port 80.
    let published = lab.port(&b.name)["published"][0]
        .as_str()
        .unwrap()
        .to_string();
    let out = inject(
        &lab,
        &b.name,
        &format!("tcp {}:80 > 198.51.100.4:51000 ack", b.ip),
    );
    assert!(
        out.contains(&format!("published {published}: the reply")),
        "{out}"
    );

    // UDP to GW:53 is the gateway's DNS.
    let out = inject(&lab, &a.name, "udp GW:53");
    assert!(
        out.contains("verdict   answered by the gateway's DNS"),
        "{out}"
    );

    // Port security: a spoofed source address from a.
    let out = inject(&lab, &a.name, &format!("icmp 10.135.0.99 > {}", b.ip));
    assert!(
        out.contains("an IPv4 source address that is not the endpoint's (port security)"),
        "{out}"
    );
    assert!(out.contains("  verdict   dropped: spoofed_ip"), "{out}");

    // Nothing reached b's interface.
    assert_eq!(
        rx_packets(&lab, &b.ns, &b.ifname),
        b_rx,
        "a synthetic frame reached b"
    );

    // Bad descriptions name the token and show the syntax; nothing is traced.
    let err = lab.weft_err(
        &[
            "trace",
            &a.name,
            "--inject",
            &format!("tcp {} > 192.0.2.7", a.ip),
        ],
        &["\"192.0.2.7\"", "ADDR:PORT", "icmp [SRC >] DST"],
    );
    assert!(!err.contains("verdict"), "{err}");
    lab.weft_err(&["trace", &a.name, "--hex", "zz"], &["--hex"]);
}

#[test]
fn an_icc_false_network_drops_a_synthetic_frame_between_endpoints() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("closed", "10.136.0.0/24", &["--icc=false"]);
    let a = lab.connect("closed", &lab.ns("a"), &[]);
    let b = lab.connect("closed", &lab.ns("b"), &[]);
    let b_rx = rx_packets(&lab, &b.ns, &b.ifname);
    let out = inject(&lab, &a.name, &format!("icmp {}", b.ip));
    assert!(
        out.contains("  icc       --icc=false: endpoints reach the gateway only"),
        "{out}"
    );
    assert!(out.contains("  verdict   dropped: icc_denied"), "{out}");
    // The gateway is still reachable.
    let out = inject(&lab, &a.name, "icmp GW");
    assert!(out.contains("verdict   answered by the switch"), "{out}");
    // A raw frame as hex: the same decision.
    let hex: String = eth_frame(b.mac_bytes(), a.mac_bytes(), 0x88b5, &[0u8; 46])
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    let out = lab.weft_ok(&["trace", &a.name, "--hex", &hex]);
    assert!(out.contains("  verdict   dropped: icc_denied"), "{out}");
    assert_eq!(rx_packets(&lab, &b.ns, &b.ifname), b_rx);
}
