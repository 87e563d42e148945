//! `weft trace PORT`: the switch explains what it does with each frame entering a port.

use std::time::{Duration, Instant};
use weft_tests::*;

/// Starts `weft trace PORT [-c COUNT]` and waits until the daemon has attached it.
fn start_trace(lab: &Lab, port: &str, count: Option<u32>) -> Bg {
    let mut c = lab.weft_cmd();
    c.arg("trace").arg(port);
    if let Some(n) = count {
        c.arg("-c").arg(n.to_string());
    }
    let mut t = Bg::spawn(c);
    let want = format!("tracing frames entering {port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t.stderr().contains(&want) {
        assert!(t.running(), "weft trace exited early: {}", t.stderr());
        assert!(Instant::now() < deadline, "weft trace did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    t
}

/// The block (header line and its indented lines) of the first traced frame whose header
/// line contains `header`.
fn block<'a>(out: &'a str, header: &str) -> &'a str {
    out.split("\n\n")
        .find(|b| b.lines().next().is_some_and(|l| l.contains(header)))
        .unwrap_or_else(|| panic!("no traced frame with {header:?} in:\n{out}"))
}

fn gateway(lab: &Lab, net: &str) -> String {
    lab.inspect(net)["gateway"].as_str().unwrap().to_string()
}

#[test]
fn a_trace_explains_forwarding_arp_suppression_and_the_gateway() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.57.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);
    let gw = gateway(&lab, "n");
    lab.assert_ping(&a, &b);
    let mut t = start_trace(&lab, &a.name, None);
    // Forget the neighbours, so that a asks for b's MAC again.
    lab.exec_ok(&a.ns, &["ip", "neigh", "flush", "all"]);
    lab.assert_ping(&a, &b);
    assert!(lab.ping(&a.ns, &gw), "the gateway answers ping");
    std::thread::sleep(Duration::from_millis(300));
    t.kill();
    let out = t.stdout();

    // The echo request to b: learned source, FDB hit, written to b's port.
    let echo = block(
        &out,
        &format!(
            "{}: {} > {} IPv4 {} > {} ICMP",
            a.name, a.mac, b.mac, a.ip, b.ip
        ),
    );
    assert!(
        echo.contains("  ingress   ") && echo.contains("network n"),
        "{echo}"
    );
    assert!(echo.contains(&format!("  learn     {} ", a.mac)), "{echo}");
    assert!(
        echo.contains(&format!("  fdb       {} is behind {}", b.mac, b.name)),
        "{echo}"
    );
    assert!(
        echo.contains(&format!("  output    {}: sent", b.name)),
        "{echo}"
    );

    // The ARP request for b is answered by the switch itself, never flooded.
    let arp = block(&out, &format!("ARP who-has {} tell {}", b.ip, a.ip));
    assert!(
        arp.contains("an ARP request the switch answers itself"),
        "{arp}"
    );
    assert!(arp.contains("answered by the gateway"), "{arp}");
    assert!(!arp.contains("  output    "), "not sent anywhere: {arp}");

    // The ping to the gateway goes to its MAC and is answered there.
    let to_gw = block(&out, &format!("{} > {} ICMP", a.ip, gw));
    assert!(to_gw.contains("sent to the gateway's MAC"), "{to_gw}");
    assert!(to_gw.contains("answered by the gateway"), "{to_gw}");
}

#[test]
fn a_trace_shows_why_frames_are_dropped_and_stops_after_its_count() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("m", "10.58.0.0/24", &["--icc=false"]);
    let c = lab.connect("m", &lab.ns("c"), &[]);
    let d = lab.connect("m", &lab.ns("d"), &[]);
    // ARP for d is answered by the switch (so the ping is sent), the echo is denied.
    let mut t = start_trace(&lab, &c.name, Some(2));
    assert!(!lab.ping(&c.ns, &d.ip), "--icc=false keeps c from d");
    let st = t.wait(Duration::from_secs(10));
    assert!(
        st.success(),
        "weft trace -c 2 exited with {st}: {}",
        t.stderr()
    );
    let out = t.stdout();
    assert_eq!(
        out.matches("\n\n").count(),
        2,
        "exactly two frames with -c 2:\n{out}"
    );
    let echo = block(&out, &format!("{} > {} ICMP", c.ip, d.ip));
    assert!(echo.contains("  icc       --icc=false"), "{echo}");
    assert!(echo.contains("dropped: icc_denied"), "{echo}");
    assert!(!echo.contains("  output    "), "{echo}");

    lab.weft_err(&["trace", "nosuchport"], &["no port named", "weft ports"]);
    lab.weft_err(&["trace", &c.name, "-c", "0"], &["at least 1"]);
}
