//! The gateway's internal port (ARP and ping for the gateway address) and ARP suppression
//! (the switch answers ARP requests for addresses it knows instead of flooding them).

use serde_json::Value;
use std::time::Duration;
use weft_tests::*;

fn gateway_of(lab: &Lab, net: &str) -> (String, String) {
    let n = lab.inspect(net);
    let ip = n["gateway"].as_str().expect("gateway").to_string();
    let mac = n["gateway_mac"]
        .as_str()
        .unwrap_or_else(|| panic!("gateway_mac missing in {n}"))
        .to_ascii_lowercase();
    (ip, mac)
}

/// The MAC the namespace's kernel resolved for `ip` (from `ip neigh`).
fn neigh_mac(lab: &Lab, ns: &str, ip: &str) -> Option<String> {
    let out = lab.exec_ok(ns, &["ip", "neigh", "show", ip]);
    out.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_ascii_lowercase)
}

#[test]
fn gateway_answers_arp_and_ping_on_tap_and_veth() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.61.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);
    let (gw_ip, gw_mac) = gateway_of(&lab, "n");
    assert_eq!(gw_ip, "10.61.0.1");
    for ep in [&a, &b] {
        assert!(
            lab.ping(&ep.ns, &gw_ip),
            "{} cannot ping the gateway",
            ep.name
        );
        assert_eq!(
            neigh_mac(&lab, &ep.ns, &gw_ip).as_deref(),
            Some(gw_mac.as_str()),
            "{} resolved the gateway to the wrong MAC",
            ep.name
        );
    }
    // A large echo with DF set comes back whole (the gateway echoes the full payload).
    lab.exec_ok(
        &a.ns,
        &[
            "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", &gw_ip,
        ],
    );

    // The neighbour table lists the gateway and both endpoints with their owners.
    let arp = lab.weft_json(&["arp", "n"]);
    let rows = arp.as_array().expect("arp --json is an array");
    let find = |ip: &str| {
        rows.iter()
            .find(|r| r["ip"] == ip)
            .unwrap_or_else(|| panic!("{ip} not in weft arp: {arp}"))
    };
    assert_eq!(find(&gw_ip)["mac"], Value::from(gw_mac.clone()));
    assert_eq!(find(&gw_ip)["owner"], "gateway");
    for ep in [&a, &b] {
        let row = find(&ep.ip);
        assert_eq!(
            row["mac"].as_str().map(str::to_ascii_lowercase),
            Some(ep.mac.clone())
        );
        assert_eq!(row["owner"], Value::from(ep.name.clone()));
        assert_eq!(row["origin"], "ipam");
    }
    let table = lab.weft_ok(&["arp"]);
    assert!(table.contains("OWNER") && table.contains(&gw_ip), "{table}");

    // After a disconnect the address is no longer answered for.
    lab.weft_ok(&["disconnect", "n", &b.name]);
    let arp = lab.weft_json(&["arp", "n"]);
    assert!(
        !arp.as_array()
            .unwrap()
            .iter()
            .any(|r| r["ip"] == b.ip.as_str()),
        "{arp}"
    );
}

#[test]
fn arp_requests_for_known_endpoints_are_answered_locally_not_flooded() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.62.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &[]);
    let c = lab.connect("n", &lab.ns("c"), &["--kind", "veth"]);
    let pcap = lab.dir.join("c.pcap");
    let mut cap = lab.capture(&c.name, &pcap, None);
    cap.wait_active(Duration::from_secs(10));
    lab.exec_ok(&a.ns, &["ip", "neigh", "flush", "dev", "eth0"]);
    lab.assert_ping(&a, &b);
    // An address nobody owns is still asked for by broadcast (and flooded), and nobody
    // answers for it.
    let o = lab.exec(&a.ns, &["ping", "-c", "1", "-W", "1", "10.62.0.77"]);
    assert!(
        !o.status.success(),
        "ping to the unowned 10.62.0.77 got a reply:\n{}",
        stdout_of(&o)
    );
    std::thread::sleep(Duration::from_millis(300));
    let st = cap.stop_with(libc::SIGINT);
    assert!(
        st.code().is_some(),
        "capture was killed by SIGINT instead of handling it ({st}); stderr {:?}",
        cap.stderr()
    );
    let frames = read_pcap(&pcap).expect("valid pcap").frames;
    let arp_requests_for = |target: [u8; 4]| {
        frames
            .iter()
            .filter(|f| {
                f.len() >= 42
                    && f[12..14] == [0x08, 0x06]
                    && f[20..22] == [0, 1]
                    && f[38..42] == target
            })
            .count()
    };
    let b_ip: Vec<u8> = b.ip.split('.').map(|o| o.parse().unwrap()).collect();
    assert_eq!(
        arp_requests_for([b_ip[0], b_ip[1], b_ip[2], b_ip[3]]),
        0,
        "the ARP request for {} reached a third port: it was flooded, not answered by the switch",
        b.ip
    );
    assert!(
        arp_requests_for([10, 62, 0, 77]) > 0,
        "ARP for an unknown address should still be flooded ({} frames captured)",
        frames.len()
    );
    assert_eq!(
        neigh_mac(&lab, &a.ns, &b.ip).as_deref(),
        Some(b.mac.as_str())
    );
}

#[test]
fn traffic_the_gateway_cannot_handle_yet_is_dropped_and_counted() {
    root_or_skip!();
    let lab = Lab::new();
    // Without outbound NAT, so that routed traffic never leaves the host.
    lab.create_network("n", "10.63.0.0/24", &["--nat", "none"]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let (gw_ip, gw_mac) = gateway_of(&lab, "n");
    assert!(lab.ping(&a.ns, &gw_ip));
    // Routed traffic (to an address outside the network, via the default route) with
    // `--nat none`: refused at the gateway.
    assert!(!lab.ping(&a.ns, "192.0.2.1"));
    // An echo request to the gateway with a broken IPv4 header checksum.
    let gw = mac_bytes(&gw_mac);
    let src = a.mac_bytes();
    let mut f = Vec::new();
    f.extend_from_slice(&gw);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[
        0x45, 0, 0, 28, 0, 1, 0, 0, 64, 1, 0xde, 0xad, 10, 63, 0, 2, 10, 63, 0, 1,
    ]);
    f.extend_from_slice(&[8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
    assert_eq!(lab.send_frames(&a.ns, "eth0", &[f.clone(), f]), 2);
    std::thread::sleep(Duration::from_millis(200));
    let port = lab.port(&a.name);
    assert!(drops(&port, "gateway_unsupported") >= 1, "{port}");
    assert!(drops(&port, "malformed") >= 2, "{port}");
    assert!(lab.daemon_alive());
    assert!(lab.ping(&a.ns, &gw_ip));
}
