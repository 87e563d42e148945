//! `weft trace`: the data plane's decisions for each frame entering a port, as text.
//!
//! The data plane records a [`FrameTrace`] per frame of a traced port (the bridge's
//! [`TraceStep`]s from `Bridge::process_traced`, then what became of the frame); this module
//! turns one into a block of lines a person can read, with port and network names. Pure:
//! no I/O, tested with hand-built records.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use weft_switch::{DropReason, EthernetFrame, LearnOutcome, NetworkId, PortId, TraceStep};

use super::{FrameTrace, TraceOutcome};

/// Names to print instead of numbers: endpoints and tunnel ports, networks.
#[derive(Debug, Default, Clone)]
pub struct TraceNames {
    pub ports: BTreeMap<PortId, String>,
    pub networks: BTreeMap<NetworkId, String>,
}

impl TraceNames {
    fn port(&self, port: PortId) -> String {
        self.ports
            .get(&port)
            .cloned()
            .unwrap_or_else(|| format!("port {}", port.0))
    }

    fn network(&self, network: NetworkId) -> String {
        self.networks
            .get(&network)
            .cloned()
            .unwrap_or_else(|| format!("network {}", network.0))
    }
}

/// One line about a frame: MACs, ethertype, IPv4 addresses and protocol or the ARP
/// question, and its length (`len`; `frame` may be only its first octets).
pub fn describe_frame(frame: &[u8], len: usize) -> String {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return format!("runt, {len} bytes");
    };
    let kind = match eth.ethertype() {
        0x0800 => "IPv4".to_string(),
        0x0806 => "ARP".to_string(),
        0x86dd => "IPv6".to_string(),
        t => format!("ethertype 0x{t:04x}"),
    };
    let mut detail = String::new();
    let p = eth.payload();
    if eth.ethertype() == 0x0800 && p.len() >= 20 {
        let proto = match p[9] {
            1 => "ICMP".to_string(),
            6 => "TCP".to_string(),
            17 => "UDP".to_string(),
            n => format!("proto {n}"),
        };
        detail = format!(
            " {}.{}.{}.{} > {}.{}.{}.{} {proto}",
            p[12], p[13], p[14], p[15], p[16], p[17], p[18], p[19]
        );
    } else if eth.ethertype() == 0x0806 && p.len() >= 28 {
        let op = if p[7] == 1 { "who-has" } else { "reply" };
        detail = format!(
            " {op} {}.{}.{}.{} tell {}.{}.{}.{}",
            p[24], p[25], p[26], p[27], p[14], p[15], p[16], p[17]
        );
    }
    format!("{} > {} {kind}{detail}, length {len}", eth.src(), eth.dst())
}

fn drop_reason(reason: DropReason) -> String {
    // The counter names of `weft ports`, so a trace and the counters agree.
    format!("dropped: {}", reason.as_str())
}

fn step(out: &mut String, names: &TraceNames, in_port: PortId, s: &TraceStep) {
    let in_name = names.port(in_port);
    let _ = match *s {
        TraceStep::UnknownPort => {
            writeln!(out, "  ingress   the port is not attached to the bridge")
        }
        TraceStep::Ingress { network } => {
            writeln!(
                out,
                "  ingress   {in_name}, network {}",
                names.network(network)
            )
        }
        TraceStep::Runt { len } => writeln!(
            out,
            "  check     {len} bytes is shorter than an Ethernet header"
        ),
        TraceStep::Oversized { len, max } => writeln!(
            out,
            "  check     {len} bytes is longer than the network's MTU allows ({max})"
        ),
        TraceStep::InvalidSource { mac } => writeln!(
            out,
            "  check     source {mac} is multicast or zero: no station sends from it"
        ),
        TraceStep::Spoofed { mac, reason } => {
            let why = match reason {
                DropReason::SpoofedIp => "an IPv4 source address that is not the endpoint's",
                DropReason::SpoofedArp => "ARP with a sender that is not the endpoint",
                _ => "a source MAC that is not this port's endpoint's",
            };
            writeln!(out, "  security  from {mac}: {why} (port security)")
        }
        TraceStep::Learn { mac, outcome } => {
            let what = match outcome {
                LearnOutcome::Learned => format!("learned on {in_name}"),
                LearnOutcome::Refreshed => format!("refreshed on {in_name}"),
                LearnOutcome::Moved { from } => {
                    format!("moved from {} to {in_name}", names.port(from))
                }
                LearnOutcome::Static => "static entry, left as it is".to_string(),
                LearnOutcome::Refused => "not learned: the FDB is full (bound reached)".to_string(),
                LearnOutcome::Invalid => "not learnable".to_string(),
            };
            writeln!(out, "  learn     {mac} {what}")
        }
        TraceStep::GatewaySource { mac } => writeln!(
            out,
            "  learn     {mac} is the gateway's own address: never learned"
        ),
        TraceStep::ToGateway { to_gateway_mac } => {
            if to_gateway_mac {
                writeln!(
                    out,
                    "  gateway   sent to the gateway's MAC: the gateway takes it"
                )
            } else {
                writeln!(
                    out,
                    "  gateway   an ARP request the switch answers itself (gateway or ARP suppression)"
                )
            }
        }
        TraceStep::IccDenied => writeln!(
            out,
            "  icc       --icc=false: endpoints reach the gateway only"
        ),
        TraceStep::FdbHit { mac, port } => {
            writeln!(out, "  fdb       {mac} is behind {}", names.port(port))
        }
        TraceStep::SameSegment => writeln!(
            out,
            "  fdb       ... the port it came from: filtered (802.1D 7.7.1)"
        ),
        TraceStep::Flood { mac, ports } => {
            let why = if mac.is_broadcast() {
                "broadcast"
            } else if mac.is_multicast() {
                "multicast"
            } else {
                "unknown unicast"
            };
            writeln!(
                out,
                "  fdb       {mac}: {why}, flooded to {ports} other port(s)"
            )
        }
    };
}

fn outcome(out: &mut String, names: &TraceNames, o: &TraceOutcome) {
    let _ = match *o {
        TraceOutcome::BadHeader(reason) | TraceOutcome::Dropped(reason) => {
            writeln!(out, "  verdict   {}", drop_reason(reason))
        }
        TraceOutcome::ToRuntime(work) => {
            writeln!(out, "  verdict   to the gateway's runtime: {work}")
        }
        TraceOutcome::GatewayBusy => {
            writeln!(out, "  verdict   dropped: gateway_busy (its queue is full)")
        }
        TraceOutcome::GatewayReply { len } => writeln!(
            out,
            "  verdict   answered by the gateway: a {len}-byte reply back out of the ingress port"
        ),
        TraceOutcome::Sent { port } => writeln!(out, "  output    {}: sent", names.port(port)),
        TraceOutcome::SendFailed { port } => writeln!(
            out,
            "  output    {}: write failed (tx_error)",
            names.port(port)
        ),
        TraceOutcome::Held { port, after } => writeln!(
            out,
            "  output    {}: held by its impairment, leaves in {}",
            names.port(port),
            weft_switch::impair::format_time(after)
        ),
        TraceOutcome::PortDropped { port, reason } => {
            writeln!(out, "  output    {}: dropped: {reason}", names.port(port))
        }
        TraceOutcome::SplitHorizon { port } => writeln!(
            out,
            "  output    {}: skipped, a frame from a tunnel never enters another (split horizon)",
            names.port(port)
        ),
        TraceOutcome::WouldSend { port } => {
            writeln!(out, "  output    {}: would be sent", names.port(port))
        }
        TraceOutcome::WouldTunnel {
            port,
            remote,
            vni,
            len,
        } => writeln!(
            out,
            "  tunnel    {}: VXLAN to {remote} VNI {vni}, a {len}-byte datagram on the underlay",
            names.port(port)
        ),
        TraceOutcome::WouldAnswer { len } => writeln!(
            out,
            "  verdict   answered by the switch: a {len}-byte reply back out of the ingress port"
        ),
        TraceOutcome::WouldHandOver(work) => {
            writeln!(out, "  gateway   to the gateway's runtime: {work}")
        }
    };
}

/// The block of lines for a synthetic frame (`weft trace --inject`): the same steps as a
/// live trace, `notes` (what the gateway's runtime would do, from the daemon), and the
/// verdict. Nothing was learned, counted or sent.
pub fn render_simulated(t: &FrameTrace, names: &TraceNames, notes: &[String]) -> String {
    let mut out = format!(
        "synthetic frame into {}: {}\n",
        names.port(t.in_port),
        describe_frame(&t.head, t.len)
    );
    for s in &t.steps {
        step(&mut out, names, t.in_port, s);
    }
    for o in &t.outcome {
        outcome(&mut out, names, o);
    }
    for n in notes {
        let _ = writeln!(out, "  {n}");
    }
    let sent: Vec<String> = t
        .outcome
        .iter()
        .filter_map(|o| match *o {
            TraceOutcome::WouldSend { port } | TraceOutcome::WouldTunnel { port, .. } => {
                Some(names.port(port))
            }
            _ => None,
        })
        .collect();
    if !sent.is_empty() {
        let _ = writeln!(out, "  verdict   forwarded to {}", sent.join(", "));
    } else if t.outcome.is_empty()
        || t.outcome
            .iter()
            .all(|o| matches!(o, TraceOutcome::SplitHorizon { .. }))
    {
        out.push_str("  verdict   dropped: no port took it\n");
    }
    out.push_str("  (a dry run: nothing was learned, counted or sent)\n");
    out
}

/// The block of lines for one traced frame: a header line (time, port, the frame), one
/// line per decision, one per outcome, and an empty line.
pub fn render(t: &FrameTrace, names: &TraceNames) -> String {
    let since = t.at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut out = format!(
        "{}.{:06} {}: {}",
        since.as_secs(),
        since.subsec_micros(),
        names.port(t.in_port),
        describe_frame(&t.head, t.len)
    );
    if let Some(size) = t.gso_size {
        let _ = write!(out, " (GSO superframe, segments of {size})");
    }
    out.push('\n');
    for s in &t.steps {
        step(&mut out, names, t.in_port, s);
    }
    for o in &t.outcome {
        outcome(&mut out, names, o);
    }
    if t.outcome.is_empty() {
        out.push_str("  verdict   dropped: no port took it\n");
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;
    use weft_switch::MacAddr;

    fn names() -> TraceNames {
        TraceNames {
            ports: [(PortId(1), "red".into()), (PortId(2), "blue".into())].into(),
            networks: [(NetworkId(7), "lab".into())].into(),
        }
    }

    fn icmp_frame() -> Vec<u8> {
        let mut f = vec![0u8; 34];
        f[..6].copy_from_slice(&[2, 0x42, 10, 20, 0, 3]);
        f[6..12].copy_from_slice(&[2, 0x42, 10, 20, 0, 2]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[23] = 1;
        f[26..30].copy_from_slice(&[10, 20, 0, 2]);
        f[30..34].copy_from_slice(&[10, 20, 0, 3]);
        f
    }

    #[test]
    fn a_forwarded_frame_reads_step_by_step_with_names() {
        let src: MacAddr = "02:42:0a:14:00:02".parse().unwrap();
        let dst: MacAddr = "02:42:0a:14:00:03".parse().unwrap();
        let t = FrameTrace {
            at: SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_500_000),
            in_port: PortId(1),
            head: icmp_frame(),
            len: 98,
            gso_size: None,
            steps: vec![
                TraceStep::Ingress {
                    network: NetworkId(7),
                },
                TraceStep::Learn {
                    mac: src,
                    outcome: LearnOutcome::Moved { from: PortId(2) },
                },
                TraceStep::FdbHit {
                    mac: dst,
                    port: PortId(2),
                },
            ],
            outcome: vec![TraceOutcome::Sent { port: PortId(2) }],
        };
        let text = render(&t, &names());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "1.500000 red: 02:42:0a:14:00:02 > 02:42:0a:14:00:03 IPv4 10.20.0.2 > 10.20.0.3 ICMP, length 98"
        );
        assert_eq!(lines[1], "  ingress   red, network lab");
        assert_eq!(
            lines[2],
            "  learn     02:42:0a:14:00:02 moved from blue to red"
        );
        assert_eq!(lines[3], "  fdb       02:42:0a:14:00:03 is behind blue");
        assert_eq!(lines[4], "  output    blue: sent");
        assert!(text.ends_with("\n\n"));
    }

    #[test]
    fn drops_floods_and_unknown_ports_are_spelled_out() {
        let t = FrameTrace {
            at: SystemTime::UNIX_EPOCH,
            in_port: PortId(9),
            head: vec![0; 5],
            len: 5,
            gso_size: None,
            steps: vec![TraceStep::Runt { len: 5 }],
            outcome: vec![TraceOutcome::Dropped(DropReason::Runt)],
        };
        let text = render(&t, &names());
        assert!(
            text.starts_with("0.000000 port 9: runt, 5 bytes\n"),
            "{text}"
        );
        assert!(text.contains("shorter than an Ethernet header"));
        assert!(text.contains("  verdict   dropped: runt\n"), "{text}");
        let flood = FrameTrace {
            steps: vec![TraceStep::Flood {
                mac: MacAddr::BROADCAST,
                ports: 0,
            }],
            outcome: vec![TraceOutcome::Dropped(DropReason::NoDestination)],
            ..t
        };
        let text = render(&flood, &names());
        assert!(
            text.contains("broadcast, flooded to 0 other port(s)"),
            "{text}"
        );
        assert!(text.contains("dropped: no_destination"), "{text}");
    }

    #[test]
    fn impaired_outputs_say_held_or_dropped_and_why() {
        let t = FrameTrace {
            at: SystemTime::UNIX_EPOCH,
            in_port: PortId(1),
            head: vec![0; 5],
            len: 5,
            gso_size: None,
            steps: Vec::new(),
            outcome: vec![
                TraceOutcome::Held {
                    port: PortId(2),
                    after: std::time::Duration::from_millis(20),
                },
                TraceOutcome::PortDropped {
                    port: PortId(2),
                    reason: DropReason::LinkDown,
                },
            ],
        };
        let text = render(&t, &names());
        assert!(
            text.contains("  output    blue: held by its impairment, leaves in 20ms\n"),
            "{text}"
        );
        assert!(
            text.contains("  output    blue: dropped: link_down\n"),
            "{text}"
        );
    }
}
