//! The Prometheus text rendering of the daemon's counters (`GET /v1/metrics`).

use std::fmt::Write;

use std::sync::atomic::Ordering;

use crate::cluster::gossip::GossipCounters;
use crate::daemon::MetricsData;
use crate::types::{NetworkStatsRow, PortRow};

/// One Prometheus series: name, type, help text, and how to read its value from a row.
type MetricSeries<Row> = (&'static str, &'static str, &'static str, fn(&Row) -> u64);

/// Every counter in the Prometheus text exposition format (version 0.0.4).
pub fn render(data: &MetricsData) -> String {
    let mut out = String::new();
    write_ports(&mut out, &data.ports);
    write_networks(&mut out, &data.networks);
    out
}

/// The gossip socket's counters (a cluster node only): datagrams received and sent, and
/// those dropped by reason.
pub fn render_gossip(out: &mut String, c: &GossipCounters) {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    for (name, help, value) in [
        (
            "weft_gossip_rx_datagrams_total",
            "Gossip datagrams received.",
            load(&c.rx),
        ),
        (
            "weft_gossip_tx_datagrams_total",
            "Gossip datagrams sent.",
            load(&c.tx),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP weft_gossip_dropped_total Gossip datagrams dropped, by reason (old_format is part of auth_failed).\n# TYPE weft_gossip_dropped_total counter"
    );
    for (reason, a) in [
        ("auth_failed", &c.auth_failed),
        ("old_format", &c.old_format),
        ("malformed", &c.malformed),
        ("replayed", &c.replayed),
        ("stale", &c.stale),
        ("cut_off", &c.cut_off),
    ] {
        let _ = writeln!(
            out,
            "weft_gossip_dropped_total{{reason=\"{reason}\"}} {}",
            load(a)
        );
    }
}

/// A label value with `\` and `"` escaped.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The per-port counters and drops.
fn write_ports(out: &mut String, ports: &[PortRow]) {
    let port_series: [MetricSeries<PortRow>; 6] = [
        (
            "weft_port_rx_packets_total",
            "counter",
            "Frames received from the port.",
            |p| p.rx_packets,
        ),
        (
            "weft_port_rx_bytes_total",
            "counter",
            "Bytes received from the port.",
            |p| p.rx_bytes,
        ),
        (
            "weft_port_tx_packets_total",
            "counter",
            "Frames sent out of the port.",
            |p| p.tx_packets,
        ),
        (
            "weft_port_tx_bytes_total",
            "counter",
            "Bytes sent out of the port.",
            |p| p.tx_bytes,
        ),
        (
            "weft_port_link_up",
            "gauge",
            "1 while the port's link is up (weft link PORT down: 0).",
            |p| u64::from(!p.link_down),
        ),
        (
            "weft_port_impaired",
            "gauge",
            "1 while weft impair acts on the frames leaving toward the port.",
            |p| u64::from(p.impair.is_some()),
        ),
    ];
    for (name, kind, help, get) in port_series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for p in ports {
            let _ = writeln!(
                out,
                "{name}{{port=\"{}\",network=\"{}\",kind=\"{}\"}} {}",
                esc(&p.name),
                esc(&p.network),
                p.kind.as_str(),
                get(p)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP weft_port_drops_total Frames dropped on the port, by reason.\n# TYPE weft_port_drops_total counter"
    );
    for p in ports {
        for (reason, n) in &p.drops {
            let _ = writeln!(
                out,
                "weft_port_drops_total{{port=\"{}\",network=\"{}\",reason=\"{reason}\"}} {n}",
                esc(&p.name),
                esc(&p.network)
            );
        }
    }
}

/// The per-network learning, aging and gateway counters.
fn write_networks(out: &mut String, stats: &[NetworkStatsRow]) {
    let net_series: [MetricSeries<NetworkStatsRow>; 8] = [
        (
            "weft_fdb_entries",
            "gauge",
            "FDB entries (learned and static).",
            |s| s.fdb_entries as u64,
        ),
        (
            "weft_fdb_learned_total",
            "counter",
            "FDB entries learned.",
            |s| s.learned,
        ),
        (
            "weft_fdb_mac_moves_total",
            "counter",
            "Learned MACs that moved to another port.",
            |s| s.mac_moves,
        ),
        (
            "weft_fdb_learn_refused_total",
            "counter",
            "Source MACs not learned because a bound was reached.",
            |s| s.learn_refused_table_full,
        ),
        (
            "weft_fdb_aged_out_total",
            "counter",
            "Learned entries aged out.",
            |s| s.aged_out,
        ),
        (
            "weft_arp_suppressed_total",
            "counter",
            "ARP requests for endpoints answered by the switch.",
            |s| s.arp_suppressed,
        ),
        (
            "weft_gateway_arp_replies_total",
            "counter",
            "ARP requests for the gateway answered.",
            |s| s.gateway_arp_replies,
        ),
        (
            "weft_gateway_echo_replies_total",
            "counter",
            "Pings to the gateway answered.",
            |s| s.gateway_echo_replies,
        ),
    ];
    for (name, kind, help, get) in net_series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in stats {
            let _ = writeln!(out, "{name}{{network=\"{}\"}} {}", esc(&s.network), get(s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PortKind;

    #[test]
    fn renders_the_prometheus_text_format() {
        let data = MetricsData {
            ports: vec![PortRow {
                name: "we\"b".into(),
                kind: PortKind::Tap,
                network: "front".into(),
                endpoint: "web".into(),
                rx_packets: 1,
                rx_bytes: 2,
                tx_packets: 3,
                tx_bytes: 4,
                drops: [("no_route".to_string(), 5)].into_iter().collect(),
                published: Vec::new(),
                detached: None,
                impair: Some(Default::default()),
                link_down: false,
            }],
            networks: vec![NetworkStatsRow {
                network: "front".into(),
                fdb_entries: 6,
                learned: 7,
                mac_moves: 8,
                learn_refused_table_full: 9,
                aged_out: 10,
                arp_suppressed: 11,
                gateway_arp_replies: 12,
                gateway_echo_replies: 13,
            }],
        };
        let expected = r#"# HELP weft_port_rx_packets_total Frames received from the port.
# TYPE weft_port_rx_packets_total counter
weft_port_rx_packets_total{port="we\"b",network="front",kind="tap"} 1
# HELP weft_port_rx_bytes_total Bytes received from the port.
# TYPE weft_port_rx_bytes_total counter
weft_port_rx_bytes_total{port="we\"b",network="front",kind="tap"} 2
# HELP weft_port_tx_packets_total Frames sent out of the port.
# TYPE weft_port_tx_packets_total counter
weft_port_tx_packets_total{port="we\"b",network="front",kind="tap"} 3
# HELP weft_port_tx_bytes_total Bytes sent out of the port.
# TYPE weft_port_tx_bytes_total counter
weft_port_tx_bytes_total{port="we\"b",network="front",kind="tap"} 4
# HELP weft_port_link_up 1 while the port's link is up (weft link PORT down: 0).
# TYPE weft_port_link_up gauge
weft_port_link_up{port="we\"b",network="front",kind="tap"} 1
# HELP weft_port_impaired 1 while weft impair acts on the frames leaving toward the port.
# TYPE weft_port_impaired gauge
weft_port_impaired{port="we\"b",network="front",kind="tap"} 1
# HELP weft_port_drops_total Frames dropped on the port, by reason.
# TYPE weft_port_drops_total counter
weft_port_drops_total{port="we\"b",network="front",reason="no_route"} 5
# HELP weft_fdb_entries FDB entries (learned and static).
# TYPE weft_fdb_entries gauge
weft_fdb_entries{network="front"} 6
# HELP weft_fdb_learned_total FDB entries learned.
# TYPE weft_fdb_learned_total counter
weft_fdb_learned_total{network="front"} 7
# HELP weft_fdb_mac_moves_total Learned MACs that moved to another port.
# TYPE weft_fdb_mac_moves_total counter
weft_fdb_mac_moves_total{network="front"} 8
# HELP weft_fdb_learn_refused_total Source MACs not learned because a bound was reached.
# TYPE weft_fdb_learn_refused_total counter
weft_fdb_learn_refused_total{network="front"} 9
# HELP weft_fdb_aged_out_total Learned entries aged out.
# TYPE weft_fdb_aged_out_total counter
weft_fdb_aged_out_total{network="front"} 10
# HELP weft_arp_suppressed_total ARP requests for endpoints answered by the switch.
# TYPE weft_arp_suppressed_total counter
weft_arp_suppressed_total{network="front"} 11
# HELP weft_gateway_arp_replies_total ARP requests for the gateway answered.
# TYPE weft_gateway_arp_replies_total counter
weft_gateway_arp_replies_total{network="front"} 12
# HELP weft_gateway_echo_replies_total Pings to the gateway answered.
# TYPE weft_gateway_echo_replies_total counter
weft_gateway_echo_replies_total{network="front"} 13
"#;
        assert_eq!(render(&data), expected);
    }

    #[test]
    fn renders_the_gossip_counters() {
        let c = GossipCounters::default();
        c.rx.store(10, Ordering::Relaxed);
        c.tx.store(11, Ordering::Relaxed);
        c.replayed.store(2, Ordering::Relaxed);
        c.stale.store(3, Ordering::Relaxed);
        let mut out = String::new();
        render_gossip(&mut out, &c);
        for line in [
            "# TYPE weft_gossip_rx_datagrams_total counter",
            "weft_gossip_rx_datagrams_total 10",
            "weft_gossip_tx_datagrams_total 11",
            "# TYPE weft_gossip_dropped_total counter",
            "weft_gossip_dropped_total{reason=\"auth_failed\"} 0",
            "weft_gossip_dropped_total{reason=\"replayed\"} 2",
            "weft_gossip_dropped_total{reason=\"stale\"} 3",
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "{line:?} missing in:\n{out}"
            );
        }
    }
}
