//! Real TCP throughput through the switch with iperf3.

use serde_json::Value;
use std::process::Command;
use std::time::Duration;
use weft_tests::*;

struct Run {
    bps: f64,
    bytes: u64,
}

fn iperf_server(lab: &Lab, server: &Endpoint) -> Bg {
    let srv = lab.spawn_in(
        &server.ns,
        &["iperf3", "-s", "-B", &server.ip, "-p", "5201"],
    );
    let ok = eventually(Duration::from_secs(5), || {
        lab.exec(&server.ns, &["ss", "-ltn"])
            .stdout
            .windows(5)
            .any(|w| w == b":5201")
    });
    assert!(
        ok,
        "iperf3 server did not start listening; stderr: {}",
        srv.stderr()
    );
    srv
}

fn iperf_client(client: &Endpoint, server: &Endpoint, reverse: bool) -> Run {
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &client.ns,
        "iperf3",
        "-c",
        &server.ip,
        "-p",
        "5201",
        "-t",
        "3",
        "-J",
        "--connect-timeout",
        "3000",
    ]);
    if reverse {
        c.arg("-R");
    }
    let o = run_timeout(&mut c, Duration::from_secs(30));
    let out = stdout_of(&o);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!(
            "iperf3 printed no JSON ({e}); status {}\nstdout: {out}\nstderr: {}",
            o.status,
            stderr_of(&o)
        )
    });
    assert!(
        o.status.success() && v.get("error").is_none(),
        "iperf3 {} -> {} failed: {}\n{}",
        client.name,
        server.name,
        v.get("error").cloned().unwrap_or_default(),
        stderr_of(&o)
    );
    let recv = &v["end"]["sum_received"];
    let bps = recv["bits_per_second"].as_f64().unwrap_or(0.0);
    let bytes = recv["bytes"].as_u64().unwrap_or(0);
    eprintln!(
        "iperf3 {} ({}) {} {} ({}): {:.1} Mbit/s, {} bytes",
        client.name,
        client.kind,
        if reverse { "<-" } else { "->" },
        server.name,
        server.kind,
        bps / 1e6,
        bytes
    );
    Run { bps, bytes }
}

fn port_bytes(lab: &Lab, ep: &Endpoint) -> u64 {
    let p = lab.port(&ep.name);
    counter(&p, "rx_bytes") + counter(&p, "tx_bytes")
}

fn check_pair(kind_a: &str, kind_b: &str, also_reverse: bool) {
    require_tool("iperf3");
    let lab = Lab::new();
    lab.create_network("n", "10.71.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &["--kind", kind_a]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", kind_b]);
    lab.assert_ping(&a, &b);
    let _srv = iperf_server(&lab, &b);

    let before = port_bytes(&lab, &b);
    let r = iperf_client(&a, &b, false);
    assert!(
        r.bps > 0.0,
        "iperf3 {kind_a} -> {kind_b} reported {} bit/s",
        r.bps
    );
    assert!(r.bytes > 0, "iperf3 moved no data");
    let after = port_bytes(&lab, &b);
    assert!(
        after - before >= r.bytes,
        "port counters of {} grew by {} bytes but iperf3 received {} bytes",
        b.name,
        after - before,
        r.bytes
    );

    if also_reverse {
        let r = iperf_client(&a, &b, true);
        assert!(
            r.bps > 0.0,
            "iperf3 {kind_b} -> {kind_a} (reverse) reported {} bit/s",
            r.bps
        );
    }
    // still healthy afterwards
    lab.assert_ping(&b, &a);
}

#[test]
fn iperf3_tcp_tap_to_tap() {
    root_or_skip!();
    check_pair("tap", "tap", false);
}

#[test]
fn iperf3_tcp_tap_and_veth_both_directions() {
    root_or_skip!();
    check_pair("tap", "veth", true);
}
