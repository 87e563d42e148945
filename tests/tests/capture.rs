//! `weft capture`: live pcap of a port.

use std::time::Duration;
use weft_tests::*;

fn ping_bg(lab: &Lab, from: &Endpoint, to: &Endpoint, count: u32) -> Bg {
    lab.spawn_in(
        &from.ns,
        &[
            "ping",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-W",
            "1",
            &to.ip,
        ],
    )
}

/// -c 5 -w FILE on a TAP port: exits by itself after 5 frames, file is a valid
/// pcap that tcpdump reads, with echo requests (leaving the switch) and echo
/// replies (entering it).
#[test]
fn capture_count_to_file() {
    root_or_skip!();
    require_tool("tcpdump");
    let lab = Lab::new();
    lab.create_network("n", "10.51.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &["--kind", "veth"]);
    let b = lab.connect("n", &lab.ns("b"), &[]);
    lab.assert_ping(&a, &b); // warm up ARP caches
    lab.assert_ping(&b, &a);

    let file = lab.dir.join("c5.pcap");
    let mut cap = lab.capture(&b.name, &file, Some(5));
    cap.wait_active(Duration::from_secs(10));
    let _ping = ping_bg(&lab, &a, &b, 20);
    let st = cap.wait(Duration::from_secs(15));
    assert!(
        st.success(),
        "capture -c 5 exited with {st}; stderr {:?}",
        cap.stderr()
    );

    let pcap = read_pcap(&file).unwrap_or_else(|e| panic!("invalid pcap: {e}"));
    assert_eq!(pcap.linktype, 1, "LINKTYPE_ETHERNET expected");
    assert_eq!(pcap.frames.len(), 5, "-c 5 must write exactly 5 frames");
    for f in &pcap.frames {
        let (dst, src) = (mac_string(&f[0..6]), mac_string(&f[6..12]));
        assert!(
            (dst == a.mac && src == b.mac)
                || (dst == b.mac && src == a.mac)
                || dst == "ff:ff:ff:ff:ff:ff",
            "unexpected frame on b's port: {}",
            to_hex(f)
        );
    }

    let (ok, out, err) = tcpdump_read(&file, &[]);
    assert!(ok, "tcpdump -r failed: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "tcpdump output:\n{out}");
    assert!(
        out.contains("ICMP echo request"),
        "no echo request (a->b, leaving the switch on b's port):\n{out}"
    );
    assert!(
        out.contains("ICMP echo reply"),
        "no echo reply (b->a, entering the switch on b's port):\n{out}"
    );
    assert!(out.contains(&format!("{} > {}", a.ip, b.ip)), "{out}");
}

/// `-w -` writes the pcap to stdout.
#[test]
fn capture_to_stdout() {
    root_or_skip!();
    require_tool("tcpdump");
    let lab = Lab::new();
    lab.create_network("n", "10.52.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);
    lab.assert_ping(&a, &b);

    let file = lab.dir.join("stdout.pcap");
    let mut cap = lab.capture_stdout(&a.name, &file, Some(4));
    cap.wait_active(Duration::from_secs(10));
    let _ping = ping_bg(&lab, &b, &a, 20);
    let st = cap.wait(Duration::from_secs(15));
    assert!(
        st.success(),
        "capture -w - exited with {st}; stderr {:?}",
        cap.stderr()
    );

    let pcap = read_pcap(&file).unwrap_or_else(|e| panic!("stdout is not a valid pcap: {e}"));
    assert_eq!(pcap.linktype, 1);
    assert_eq!(pcap.frames.len(), 4);
    let (ok, out, err) = tcpdump_read(&file, &[]);
    assert!(ok, "tcpdump -r on the -w - output failed: {err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.contains("ICMP echo"), "{out}");
}

/// Without -c the capture runs until SIGTERM / SIGINT and the file is still
/// a complete pcap (veth port).
#[test]
fn capture_stopped_by_signal_is_valid_pcap() {
    root_or_skip!();
    require_tool("tcpdump");
    let lab = Lab::new();
    lab.create_network("n", "10.53.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);

    for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        let file = lab.dir.join(format!("{name}.pcap"));
        let mut cap = lab.capture(&b.name, &file, None);
        cap.wait_active(Duration::from_secs(10));
        lab.assert_ping(&a, &b);
        lab.assert_ping(&b, &a);
        std::thread::sleep(Duration::from_millis(200));
        let st = cap.stop_with(sig);
        assert!(
            st.code().is_some(),
            "capture was killed by {name} instead of handling it ({st}); stderr {:?}",
            cap.stderr()
        );
        let pcap = read_pcap(&file).unwrap_or_else(|e| panic!("pcap after {name} invalid: {e}"));
        assert!(
            pcap.frames.len() >= 4,
            "after {name}: only {} frames",
            pcap.frames.len()
        );
        let (ok, out, err) = tcpdump_read(&file, &[]);
        assert!(ok, "tcpdump -r after {name} failed: {err}");
        assert!(
            out.contains("ICMP echo request") && out.contains("ICMP echo reply"),
            "after {name}:\n{out}"
        );
    }
    // the port still forwards after captures ended
    lab.assert_ping(&a, &b);
}

#[test]
fn capture_unknown_port_fails() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.54.0.0/24", &[]);
    let file = lab.dir.join("x.pcap");
    let o = lab.weft(&["capture", "nosuch", "-w", file.to_str().unwrap(), "-c", "1"]);
    check_error(
        &o,
        "weft capture nosuch",
        &["nosuch", "port", "not found", "unknown"],
    );
}
