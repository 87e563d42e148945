//! Packet and byte rates per port from successive counter snapshots, the time between
//! them passed in; and the server-sent event that carries them to the page.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use crate::types::PortRow;

/// A port's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl From<&PortRow> for Counters {
    fn from(r: &PortRow) -> Counters {
        Counters {
            rx_packets: r.rx_packets,
            rx_bytes: r.rx_bytes,
            tx_packets: r.tx_packets,
            tx_bytes: r.tx_bytes,
        }
    }
}

/// Per second, since the previous snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rates {
    pub rx_pps: f64,
    pub rx_bps: f64,
    pub tx_pps: f64,
    pub tx_bps: f64,
}

/// The rates between two snapshots `seconds` apart. A counter that went down (the port
/// was removed and made again under the same name) counts from zero.
pub fn rates(prev: Counters, now: Counters, seconds: f64) -> Rates {
    if seconds <= 0.0 || !seconds.is_finite() {
        return Rates::default();
    }
    let per_second = |a: u64, b: u64| {
        let delta = if b >= a { b - a } else { b };
        delta as f64 / seconds
    };
    Rates {
        rx_pps: per_second(prev.rx_packets, now.rx_packets),
        rx_bps: per_second(prev.rx_bytes, now.rx_bytes),
        tx_pps: per_second(prev.tx_packets, now.tx_packets),
        tx_bps: per_second(prev.tx_bytes, now.tx_bytes),
    }
}

/// The previous snapshot of every port (one per page watching), to turn the next
/// snapshot into rates.
#[derive(Default)]
pub struct RateTracker {
    prev: HashMap<String, Counters>,
    at: Option<Instant>,
}

impl RateTracker {
    /// The rates of `rows` (in their order) since the last call; zero the first time and
    /// for ports not seen before. Ports gone from `rows` are forgotten.
    pub fn update(&mut self, rows: &[PortRow], now: Instant) -> Vec<Rates> {
        let seconds = self
            .at
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        let mut next = HashMap::with_capacity(rows.len());
        let out = rows
            .iter()
            .map(|row| {
                let c = Counters::from(row);
                let r = self
                    .prev
                    .get(&row.name)
                    .map_or_else(Rates::default, |&p| rates(p, c, seconds));
                next.insert(row.name.clone(), c);
                r
            })
            .collect();
        self.prev = next;
        self.at = Some(now);
        out
    }
}

/// One port in a `ports` event: the row as `GET /v1/ports` has it, and its rates.
#[derive(Serialize)]
struct PortEvent<'a> {
    #[serde(flatten)]
    row: &'a PortRow,
    rates: Rates,
}

#[derive(Serialize)]
struct PortsEvent<'a> {
    /// Milliseconds since the Unix epoch, when the snapshot was taken.
    at_ms: u64,
    ports: Vec<PortEvent<'a>>,
}

/// The server-sent event `ports` with every row and its rates (`rows` and `rates` are
/// in the same order).
pub fn ports_event(rows: &[PortRow], rates: &[Rates], at_ms: u64) -> String {
    let event = PortsEvent {
        at_ms,
        ports: rows
            .iter()
            .zip(rates)
            .map(|(row, &rates)| PortEvent { row, rates })
            .collect(),
    };
    // serde_json writes no raw newline, which would end the event's data line.
    let json = serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
    format!("event: ports\ndata: {json}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A row as the API sends it (through JSON, so that fields added to `PortRow` later
    /// take their defaults here).
    fn row(name: &str, rx_packets: u64, rx_bytes: u64, tx_packets: u64, tx_bytes: u64) -> PortRow {
        serde_json::from_value(serde_json::json!({
            "name": name, "kind": "tap", "network": "n", "endpoint": name,
            "rx_packets": rx_packets, "rx_bytes": rx_bytes,
            "tx_packets": tx_packets, "tx_bytes": tx_bytes, "drops": {},
        }))
        .unwrap()
    }

    #[test]
    fn rates_are_the_difference_per_second() {
        let a = Counters {
            rx_packets: 10,
            rx_bytes: 1000,
            tx_packets: 5,
            tx_bytes: 500,
        };
        let b = Counters {
            rx_packets: 30,
            rx_bytes: 3000,
            tx_packets: 5,
            tx_bytes: 800,
        };
        let r = rates(a, b, 0.5);
        assert_eq!(r.rx_pps, 40.0);
        assert_eq!(r.rx_bps, 4000.0);
        assert_eq!(r.tx_pps, 0.0);
        assert_eq!(r.tx_bps, 600.0);
    }

    #[test]
    fn no_time_passed_and_counter_resets_give_no_nonsense() {
        let a = Counters {
            rx_packets: 100,
            ..Default::default()
        };
        let b = Counters {
            rx_packets: 7,
            ..Default::default()
        };
        assert_eq!(rates(a, b, 0.0), Rates::default());
        assert_eq!(rates(a, b, f64::NAN), Rates::default());
        assert_eq!(rates(a, b, 1.0).rx_pps, 7.0, "a reset counts from zero");
    }

    #[test]
    fn the_tracker_remembers_each_port_by_name() {
        let t0 = Instant::now();
        let mut t = RateTracker::default();
        let first = t.update(&[row("a", 10, 1000, 0, 0)], t0);
        assert_eq!(first, vec![Rates::default()], "nothing to compare yet");
        let second = t.update(
            &[row("b", 50, 50, 0, 0), row("a", 20, 3000, 4, 400)],
            t0 + Duration::from_secs(2),
        );
        assert_eq!(second[0], Rates::default(), "b is new");
        assert_eq!(
            second[1],
            Rates {
                rx_pps: 5.0,
                rx_bps: 1000.0,
                tx_pps: 2.0,
                tx_bps: 200.0
            }
        );
        // a disappears and comes back: it starts over.
        t.update(&[row("b", 60, 60, 0, 0)], t0 + Duration::from_secs(3));
        let back = t.update(&[row("a", 1, 1, 1, 1)], t0 + Duration::from_secs(4));
        assert_eq!(back[0], Rates::default());
    }

    #[test]
    fn the_event_is_one_data_line_with_rows_and_rates() {
        let mut r = row("a\nb", 1, 2, 3, 4);
        r.drops.insert("port_security".into(), 9);
        let ev = ports_event(
            &[r],
            &[Rates {
                rx_pps: 1.5,
                ..Default::default()
            }],
            1234,
        );
        assert!(ev.starts_with("event: ports\ndata: {"), "{ev}");
        assert!(ev.ends_with("}\n\n"), "{ev}");
        assert_eq!(ev.matches('\n').count(), 3, "{ev}");
        let json: serde_json::Value =
            serde_json::from_str(ev.lines().nth(1).unwrap().strip_prefix("data: ").unwrap())
                .unwrap();
        assert_eq!(json["at_ms"], 1234);
        let p = &json["ports"][0];
        assert_eq!(p["name"], "a\nb");
        assert_eq!(p["tx_bytes"], 4);
        assert_eq!(p["drops"]["port_security"], 9);
        assert_eq!(p["rates"]["rx_pps"], 1.5);
    }
}
