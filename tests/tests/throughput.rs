//! Real TCP throughput through the switch with iperf3.

use weft_tests::iperf::{iperf_client, iperf_server};
use weft_tests::*;

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
