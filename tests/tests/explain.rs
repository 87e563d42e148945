//! `weft explain FROM TO [PORT/PROTO]`: its verdicts agree with what ping and the NAT do — a
//! reachable pair, an `--icc=false` pair, an `--internal` network to the outside, and an
//! overlay endpoint whose node's daemon died.
//!
//! Addresses: 10.140-10.142.0.0/24 local, underlay 10.143.0.0/24, overlay 10.144.0.0/24.

use serde_json::Value;
use std::time::{Duration, Instant};
use weft_tests::hosts::*;
use weft_tests::*;

fn verdict(v: &Value) -> (&str, &str) {
    (
        v["verdict"].as_str().unwrap(),
        v["reason"].as_str().unwrap(),
    )
}

#[test]
fn explain_agrees_with_ping_icc_and_internal() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("open", "10.140.0.0/24", &[]);
    lab.create_network("closed", "10.141.0.0/24", &["--icc=false"]);
    lab.create_network("inner", "10.142.0.0/24", &["--internal"]);
    let a = lab.connect("open", &lab.ns("a"), &[]);
    let b = lab.connect("open", &lab.ns("b"), &[]);
    let c = lab.connect("closed", &lab.ns("c"), &[]);
    let d = lab.connect("closed", &lab.ns("d"), &[]);
    let e = lab.connect("inner", &lab.ns("e"), &[]);

    // A reachable pair: ping works, explain says so, step by step.
    lab.assert_ping(&a, &b);
    let v = lab.weft_json(&["explain", &a.name, &b.name]);
    assert_eq!(
        verdict(&v),
        (
            "reachable",
            format!("{} reaches {} on network open", a.name, b.name).as_str()
        ),
        "{v:#}"
    );
    let checks: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        ["network", "security", "icc", "arp", "fdb"],
        "{v:#}"
    );
    let text = lab.weft_ok(&["explain", &a.ip, &b.ip]);
    assert!(text.contains("reachable: "), "{text}");
    // Impairment and link state, once set with weft impair and weft link.
    lab.weft_ok(&["impair", &b.name, "--delay", "20ms"]);
    let v = lab.weft_json(&["explain", &a.name, &b.name]);
    let impair = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["check"] == "impair")
        .cloned();
    assert!(
        impair.is_some_and(|s| s["detail"].as_str().unwrap().contains("delay 20ms")),
        "{v:#}"
    );
    lab.weft_ok(&["link", &b.name, "down"]);
    let v = lab.weft_json(&["explain", &a.name, &b.name]);
    assert_eq!(
        verdict(&v),
        (
            "blocked",
            format!("the link of {} is down (weft link)", b.name).as_str()
        ),
        "{v:#}"
    );
    assert_eq!(v["fix"], format!("weft link {} up", b.name));
    assert!(!lab.ping(&a.ns, &b.ip), "ping crossed a link that is down");
    let out = lab.weft_ok(&["trace", &a.name, "--inject", &format!("icmp {}", b.ip)]);
    assert!(out.contains("dropped: link_down"), "{out}");
    lab.weft_ok(&["link", &b.name, "up"]);
    lab.weft_ok(&["impair", &b.name, "--clear"]);
    assert_eq!(
        lab.weft_json(&["explain", &a.name, &b.name])["verdict"],
        "reachable"
    );

    // --icc=false: ping fails, explain says why and how to fix it.
    assert!(
        !lab.ping(&c.ns, &d.ip),
        "ping crossed an --icc=false network"
    );
    let v = lab.weft_json(&["explain", &c.name, &d.name]);
    assert_eq!(
        verdict(&v),
        (
            "blocked",
            "network closed was created with --icc=false; endpoints reach the gateway only"
        ),
        "{v:#}"
    );
    assert!(v["fix"].as_str().unwrap().contains("--icc=false"), "{v:#}");
    let text = lab.weft_ok(&["explain", &c.name, &d.name]);
    assert!(
        text.contains("blocked: network closed was created with --icc=false")
            && text.contains("fix: "),
        "{text}"
    );

    // --internal to the outside: no route out, and the real connection fails too.
    let out = lab.outside(145);
    let _ = out;
    let v = lab.weft_json(&["explain", &e.name, "10.145.0.2", "80/tcp"]);
    assert_eq!(
        verdict(&v),
        (
            "blocked",
            "network inner was created with --internal: no route out"
        ),
        "{v:#}"
    );
    assert!(
        !lab.ping(&e.ns, "10.145.0.2"),
        "an --internal endpoint reached the outside"
    );
    // The same from the open network goes through the NAT.
    let v = lab.weft_json(&["explain", &a.name, "10.145.0.2"]);
    assert_eq!(v["verdict"], "reachable", "{v:#}");
    assert!(
        lab.ping(&a.ns, "10.145.0.2"),
        "the proxy NAT did not reach the outside"
    );

    lab.weft_err(
        &["explain", "nosuch", &a.name],
        &["\"nosuch\"", "weft ports"],
    );
    lab.weft_err(&["explain", &a.name, &b.name, "80/sctp"], &["PORT/tcp"]);
}

#[test]
fn explain_says_an_overlay_peer_is_dead() {
    root_or_skip!();
    require_tools(&[]);
    let lab = Lab::without_daemon();
    let key = key_file(&lab, "cluster.key");
    let (h1_ip, h2_ip) = ("10.143.0.1", "10.143.0.2");
    let (h1, h2) = (lab.ns("h1"), lab.ns("h2"));
    veth_underlay(&h1, h1_ip, &h2, h2_ip);
    let args = |join: Option<&str>| {
        let mut v = vec![
            "--cluster-key-file".to_string(),
            key.to_str().unwrap().to_string(),
        ];
        if let Some(j) = join {
            v.extend(["--join".to_string(), j.to_string()]);
        }
        v
    };
    let d1 = HostDaemon::start(&lab, "h1", &h1, h1_ip, &args(None));
    let mut d2 = HostDaemon::start(&lab, "h2", &h2, h2_ip, &args(Some(h1_ip)));
    d1.create_overlay("ov", "7144", "10.144.0.0/24");
    let until = |secs: u64, f: &mut dyn FnMut() -> bool| {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    assert!(
        until(20, &mut || d2.network("ov").is_some()),
        "h2 did not adopt ov\n{}",
        diag(&[&d1, &d2])
    );
    let c1 = d1.connect("ov", &lab.ns("c1"), &["--name", "c1"]);
    let c2 = d2.connect("ov", &lab.ns("c2"), &["--name", "c2"]);
    assert!(
        until(20, &mut || ping_ok(&lab, &c1.ns, &c2.ip, 1, &[])),
        "c1 cannot ping c2\n{}",
        diag(&[&d1, &d2])
    );
    let v = d1.weft_json(&["explain", "c1", "c2"]);
    assert_eq!(v["verdict"], "reachable", "{v:#}");
    let overlay = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["check"] == "overlay")
        .cloned();
    assert!(
        overlay.is_some_and(|s| s["detail"].as_str().unwrap().contains("(alive)")),
        "{v:#}"
    );

    d2.kill9();
    let node = d2.node.clone();
    assert!(
        until(30, &mut || d1.peer_state(&node).as_deref() == Some("dead")),
        "h1 did not see h2 dead\n{}",
        d1.diag()
    );
    let v = d1.weft_json(&["explain", "c1", &c2.ip]);
    assert_eq!(v["verdict"], "blocked", "{v:#}");
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("node {node}, which the cluster declares dead")),
        "{v:#}"
    );
    assert!(
        !ping_ok(&lab, &c1.ns, &c2.ip, 1, &[]),
        "c1 still pings c2 on a dead node"
    );
}
