//! Counters for watching the switch: `weft stats` per network and `weft metrics` in the
//! Prometheus text format.

use weft_tests::*;

#[test]
fn stats_and_metrics_count_what_happened() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.97.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);
    lab.exec_ok(&a.ns, &["ip", "neigh", "flush", "dev", "eth0"]);
    lab.assert_ping(&a, &b);
    assert!(lab.ping(&a.ns, "10.97.0.1"));

    let stats = lab.weft_json(&["stats", "n"]);
    let row = &stats.as_array().expect("array")[0];
    assert_eq!(row["network"], "n");
    assert!(row["fdb_entries"].as_u64().unwrap() >= 2, "{row}");
    assert!(row["arp_suppressed"].as_u64().unwrap() >= 1, "{row}");
    assert!(row["gateway_arp_replies"].as_u64().unwrap() >= 1, "{row}");
    assert!(row["gateway_echo_replies"].as_u64().unwrap() >= 2, "{row}");
    let table = lab.weft_ok(&["stats"]);
    assert!(table.contains("ARP_SUPPRESSED"), "{table}");

    let metrics = lab.weft_ok(&["metrics"]);
    let value = |series: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing in:\n{metrics}"))
    };
    let rx = value(&format!(
        "weft_port_rx_packets_total{{port=\"{}\",network=\"n\",kind=\"tap\"}}",
        a.name
    ));
    assert!(rx >= 4, "{rx}");
    assert!(value("weft_gateway_echo_replies_total{network=\"n\"}") >= 2);
    assert!(metrics.contains("# TYPE weft_port_drops_total counter"));
    // Every sample line is "name{labels} value".
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let (series, v) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line}"));
        assert!(
            series.starts_with("weft_") && series.ends_with('}'),
            "{line}"
        );
        v.parse::<u64>()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
    }
}
