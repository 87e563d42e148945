//! `weft impair` and `weft link` measured with real tools: ping's round-trip time under a
//! delay, ping's loss rate under a loss, iperf3 under a rate limit, duplicates, a link taken
//! down and up, and bad input refused with nothing applied.

use serde_json::Value;
use weft_tests::iperf::{iperf_client, iperf_server};
use weft_tests::*;

/// Two endpoints `a` and `b` on one network; `b`'s port is the one impaired.
fn pair(lab: &Lab, subnet: &str) -> (Endpoint, Endpoint) {
    lab.create_network("imp", subnet, &[]);
    let a = lab.connect("imp", &lab.ns("a"), &[]);
    let b = lab.connect("imp", &lab.ns("b"), &[]);
    lab.assert_ping(&a, &b);
    (a, b)
}

/// ping's summary: (transmitted, received, min, avg, max, mdev in ms); `extra` before the
/// address.
fn ping_stats(
    lab: &Lab,
    from: &Endpoint,
    to: &Endpoint,
    extra: &[&str],
) -> (u64, u64, [f64; 4], String) {
    let mut cmd = vec!["ping", "-q", "-W", "1"];
    cmd.extend_from_slice(extra);
    cmd.push(&to.ip);
    let out = stdout_of(&lab.exec(&from.ns, &cmd));
    let summary = out
        .lines()
        .find(|l| l.contains("transmitted"))
        .unwrap_or_default();
    let num_before = |word: &str| -> u64 {
        summary
            .split(',')
            .find(|p| p.contains(word))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {word:?} count in ping's output: {out}"))
    };
    let sent = num_before("transmitted");
    let got = num_before("received");
    let mut rtt = [0.0; 4];
    if let Some(line) = out.lines().find(|l| l.starts_with("rtt ")) {
        let nums = line.split('=').nth(1).unwrap_or_default().trim();
        for (i, v) in nums.trim_end_matches(" ms").split('/').enumerate().take(4) {
            rtt[i] = v.parse().unwrap_or(0.0);
        }
    }
    (sent, got, rtt, out)
}

#[test]
fn a_delay_shows_in_pings_round_trip_and_clear_removes_it() {
    root_or_skip!();
    let lab = Lab::new();
    let (a, b) = pair(&lab, "10.150.0.0/24");
    let (_, got, before, _) = ping_stats(&lab, &a, &b, &["-c", "10", "-i", "0.05"]);
    assert_eq!(got, 10);
    assert!(before[0] < 15.0, "unimpaired min rtt {before:?}");

    let out = lab.weft_ok(&["impair", &b.name, "--delay", "20ms", "--seed", "1"]);
    assert!(
        out.contains("delay=20ms") && out.contains("seed=1"),
        "{out}"
    );
    let (_, got, rtt, out) = ping_stats(&lab, &a, &b, &["-c", "20", "-i", "0.05"]);
    assert_eq!(got, 20, "{out}");
    assert!(
        rtt[0] >= 20.0 && rtt[1] < 100.0,
        "rtt with --delay 20ms: {out}"
    );

    // The port shows it: `weft ports`, its JSON, the metrics.
    let p = lab.port(&b.name);
    assert_eq!(p["impair"]["delay"], "20ms", "{p}");
    assert_eq!(p["link_down"], false, "{p}");
    let inspected = lab.endpoints("imp");
    let eb = inspected
        .iter()
        .find(|e| e["name"] == b.name.as_str())
        .unwrap();
    assert_eq!(eb["impair"]["delay"], "20ms", "{eb}");
    let table = lab.weft_ok(&["ports"]);
    assert!(
        table.contains("IMPAIR") && table.contains("delay=20ms seed=1"),
        "{table}"
    );
    let metrics = lab.weft_ok(&["metrics"]);
    let impaired = format!(
        "weft_port_impaired{{port=\"{}\",network=\"imp\",kind=\"tap\"}} 1",
        b.name
    );
    assert!(metrics.contains(&impaired), "{metrics}");

    // Jitter spreads the round trips around the delay, never below zero.
    lab.weft_ok(&["impair", &b.name, "--delay", "20ms", "--jitter", "10ms"]);
    let (_, got, rtt, out) = ping_stats(&lab, &a, &b, &["-c", "30", "-i", "0.05"]);
    assert_eq!(got, 30, "{out}");
    assert!(rtt[0] >= 9.0 && rtt[3] > 1.0, "rtt with jitter: {out}");

    let out = lab.weft_ok(&["impair", &b.name, "--clear"]);
    assert!(out.contains("cleared"), "{out}");
    let (_, _, rtt, out) = ping_stats(&lab, &a, &b, &["-c", "10", "-i", "0.05"]);
    assert!(rtt[0] < 15.0, "rtt after --clear: {out}");
    assert!(lab.port(&b.name).get("impair").is_none());
}

#[test]
fn a_ten_percent_loss_over_a_thousand_pings_is_within_bounds() {
    root_or_skip!();
    let lab = Lab::new();
    let (a, b) = pair(&lab, "10.151.0.0/24");
    lab.weft_ok(&["impair", &b.name, "--loss", "10%", "--seed", "42"]);
    let (sent, got, _, out) = ping_stats(&lab, &a, &b, &["-c", "1000", "-i", "0.002"]);
    assert_eq!(sent, 1000, "{out}");
    let lost = sent - got;
    // Binomial(1000, 0.1): mean 100, sigma 9.5; five sigma either way.
    assert!(
        (52..=148).contains(&lost),
        "lost {lost} of 1000 with --loss 10%: {out}"
    );
    // Every lost request is a drop counted on b's port (so are lost ARP answers to b).
    let dropped = drops(&lab.port(&b.name), "impair_loss");
    eprintln!("--loss 10%: ping lost {lost} of {sent}; impair_loss {dropped}");
    assert!(
        dropped + 5 >= lost && dropped <= lost + 10,
        "impair_loss {dropped}, ping lost {lost}"
    );
}

#[test]
fn a_rate_limit_holds_iperf3_to_it() {
    root_or_skip!();
    require_tool("iperf3");
    let lab = Lab::new();
    let (a, b) = pair(&lab, "10.152.0.0/24");
    let _srv = iperf_server(&lab, &b);
    let free = iperf_client(&a, &b, false);
    assert!(free.bps > 50e6, "unimpaired: {:.1} Mbit/s", free.bps / 1e6);
    lab.weft_ok(&["impair", &b.name, "--rate", "10mbit"]);
    let limited = iperf_client(&a, &b, false);
    let mbit = limited.bps / 1e6;
    assert!(
        (5.0..=10.5).contains(&mbit),
        "with --rate 10mbit: {mbit:.2} Mbit/s"
    );
    eprintln!(
        "iperf3 a -> b: {:.0} Mbit/s free, {mbit:.2} Mbit/s with --rate 10mbit",
        free.bps / 1e6
    );
}

#[test]
fn duplicates_reach_ping_as_dups() {
    root_or_skip!();
    let lab = Lab::new();
    let (a, b) = pair(&lab, "10.153.0.0/24");
    // Toward a: every echo reply arrives twice.
    lab.weft_ok(&["impair", &a.name, "--duplicate", "100%"]);
    let (_, got, _, out) = ping_stats(&lab, &a, &b, &["-c", "5", "-i", "0.1"]);
    assert_eq!(got, 5, "{out}");
    // The fifth reply's copy may come after ping has exited.
    assert!(
        out.contains("+4 duplicates") || out.contains("+5 duplicates"),
        "{out}\n{}",
        lab.port(&a.name)
    );
}

#[test]
fn a_link_taken_down_stops_traffic_and_up_restores_it() {
    root_or_skip!();
    let lab = Lab::new();
    let (a, b) = pair(&lab, "10.154.0.0/24");
    let out = lab.weft_ok(&["link", &b.name, "down"]);
    assert!(out.contains("link down"), "{out}");
    assert!(!lab.ping(&a.ns, &b.ip), "ping crossed a link that is down");
    assert!(
        !lab.ping(&b.ns, &a.ip),
        "b sent through a link that is down"
    );
    let p = lab.port(&b.name);
    assert_eq!(p["link_down"], true, "{p}");
    // a's two pings; b sends nothing without a carrier.
    assert!(drops(&p, "link_down") >= 2, "{p}");
    assert!(lab.weft_ok(&["ports"]).contains(" down "));
    // Inside b the TAP has lost its carrier, as with an unplugged cable.
    let link = lab.exec_ok(&b.ns, &["ip", "link", "show", "eth0"]);
    assert!(link.contains("NO-CARRIER"), "{link}");
    lab.weft_ok(&["link", &b.name, "up"]);
    let link = lab.exec_ok(&b.ns, &["ip", "link", "show", "eth0"]);
    assert!(!link.contains("NO-CARRIER"), "{link}");
    assert!(lab.wait_ping(&a.ns, &b.ip, std::time::Duration::from_secs(5)));
    assert_eq!(lab.port(&b.name)["link_down"], false);
}

#[test]
fn bad_impairments_are_refused_with_nothing_applied() {
    root_or_skip!();
    let lab = Lab::new();
    let (_a, b) = pair(&lab, "10.155.0.0/24");
    lab.weft_err(&["impair", &b.name, "--delay", "20"], &["--delay", "20ms"]);
    lab.weft_err(&["impair", &b.name, "--loss", "150%"], &["--loss", "10%"]);
    lab.weft_err(
        &["impair", &b.name, "--rate", "fast"],
        &["--rate", "10mbit"],
    );
    lab.weft_err(
        &["impair", &b.name, "--reorder", "10%"],
        &["--reorder needs --delay"],
    );
    lab.weft_err(&["impair", &b.name], &["nothing to impair", "--clear"]);
    lab.weft_err(
        &["impair", "nosuch", "--delay", "1ms"],
        &["no port named", "weft ports"],
    );
    lab.weft_err(&["link", "nosuch", "down"], &["no port named"]);
    let o = lab.weft(&["link", &b.name, "sideways"]);
    assert!(
        !o.status.success() && stderr_of(&o).contains("possible values: up, down"),
        "{}",
        describe(&o)
    );
    // A valid option beside an invalid one changes nothing.
    lab.weft_err(
        &["impair", &b.name, "--delay", "5ms", "--loss", "x"],
        &["--loss"],
    );
    let p: Value = lab.port(&b.name);
    assert!(p.get("impair").is_none(), "{p}");
    assert_eq!(p["link_down"], false);
}

#[test]
fn an_endpoints_impairment_and_link_state_survive_a_restart() {
    root_or_skip!();
    let lab = Lab::new();
    let (a, b) = pair(&lab, "10.156.0.0/24");
    lab.weft_ok(&["impair", &b.name, "--delay", "20ms", "--seed", "5"]);
    let c = lab.connect("imp", &lab.ns("c"), &[]);
    lab.weft_ok(&["link", &c.name, "down"]);
    lab.stop_daemon();
    lab.start_daemon();
    let p = lab.port(&b.name);
    assert_eq!(
        (&p["impair"]["delay"], &p["impair"]["seed"]),
        (&Value::from("20ms"), &Value::from(5)),
        "{p}"
    );
    assert_eq!(lab.port(&c.name)["link_down"], true);
    let (_, got, rtt, out) = ping_stats(&lab, &a, &b, &["-c", "5", "-i", "0.05"]);
    assert!(got == 5 && rtt[0] >= 20.0, "after a restart: {out}");
    assert!(!lab.ping(&a.ns, &c.ip), "c's link came back up on restart");
}
