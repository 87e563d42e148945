//! Bad input: CLI errors (exit 1, "error: ..." on stderr, nothing half
//! created) and malformed frames on the wire (dropped, counted, daemon alive).

use serde_json::Value;
use std::process::Command;
use std::time::Duration;
use weft_tests::*;

fn sorted_strings(v: &[Value]) -> Vec<String> {
    let mut s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    s.sort();
    s
}

#[test]
fn bad_network_create_is_rejected() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("big", "10.1.0.0/16", &[]);
    let before = sorted_strings(&lab.networks());

    let cases: &[(&[&str], &[&str])] = &[
        (
            &["network", "create", "x1", "--subnet", "10.1.0.0/33"],
            &["10.1.0.0/33", "subnet", "prefix", "cidr", "invalid"],
        ),
        (
            &["network", "create", "x2", "--subnet", "10.1.0.0/24"],
            &["overlap", "big", "10.1.0.0/16"],
        ),
        (
            &["network", "create", "x3", "--subnet", "10.1.128.0/17"],
            &["overlap", "big", "10.1.0.0/16"],
        ),
        (
            &["network", "create", "x4", "--subnet", "10.0.0.0/8"],
            &["overlap", "big", "10.1.0.0/16"],
        ),
        (
            &["network", "create", "x5", "--subnet", "not-a-cidr"],
            &["not-a-cidr", "cidr", "subnet", "invalid"],
        ),
        (
            &[
                "network",
                "create",
                "x6",
                "--subnet",
                "10.2.0.0/24",
                "--gateway",
                "10.3.0.1",
            ],
            &["gateway", "10.3.0.1", "outside", "not in"],
        ),
        (
            &[
                "network",
                "create",
                "x7",
                "--subnet",
                "10.2.0.0/24",
                "--gateway",
                "banana",
            ],
            &["gateway", "banana", "invalid"],
        ),
        (
            &["network", "create", "big", "--subnet", "10.9.0.0/24"],
            &["big", "exists", "already", "duplicate"],
        ),
        (
            &[
                "network",
                "create",
                "x8",
                "--subnet",
                "10.2.0.0/24",
                "--mtu",
                "0",
            ],
            &["mtu"],
        ),
        (
            &[
                "network",
                "create",
                "x9",
                "--subnet",
                "10.2.0.0/24",
                "--mtu",
                "999999",
            ],
            &["mtu"],
        ),
    ];
    for (args, words) in cases {
        lab.weft_err(args, words);
        let now = sorted_strings(&lab.networks());
        assert_eq!(
            before,
            now,
            "`weft {}` failed but changed `network ls`",
            args.join(" ")
        );
    }
    lab.weft_err(
        &["network", "rm", "nosuch"],
        &["nosuch", "not found", "unknown", "no such"],
    );
    lab.weft_err(
        &["network", "inspect", "nosuch"],
        &["nosuch", "not found", "unknown", "no such"],
    );
    lab.weft_err(
        &["fdb", "nosuch"],
        &["nosuch", "not found", "unknown", "no such"],
    );

    // the valid neighbours of those still work
    lab.create_network("x2", "10.2.0.0/24", &["--gateway", "10.2.0.254"]);
    assert_eq!(lab.networks().len(), 2);
    // unknown subcommand / missing argument: still an error exit (clap may use 2)
    let o = lab.weft(&["network", "create", "x10"]);
    assert!(
        !o.status.success(),
        "network create without --subnet succeeded"
    );
    assert_eq!(lab.networks().len(), 2);
}

#[test]
fn bad_connect_is_rejected_without_leftovers() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.2.0.0/24", &[]);
    let ns1 = lab.ns("n1");
    let ns2 = lab.ns("n2");
    let ns3 = lab.ns("n3");
    let e1 = lab.connect(
        "n",
        &ns1,
        &["--ip", "10.2.0.10", "--mac", "02:00:00:00:02:01"],
    );
    let e2 = lab.connect("n", &ns3, &["--kind", "veth"]);
    lab.assert_ping(&e1, &e2);

    let snapshot = |lab: &Lab| {
        (
            sorted_strings(&lab.endpoints("n")),
            sorted_strings(&lab.ports()),
            lab.link_names(&ns1),
            lab.link_names(&ns2),
            lab.link_names(&ns3),
            sorted_strings(&lab.networks()),
        )
    };
    // ports counters change with traffic, so compare port names only
    type Snapshot = (
        Vec<String>,
        Vec<String>,
        Vec<String>,
        Vec<String>,
        Vec<String>,
        Vec<String>,
    );
    let names_only = |s: &Snapshot| {
        (
            s.0.clone(),
            s.1.len(),
            s.2.clone(),
            s.3.clone(),
            s.4.clone(),
            s.5.clone(),
        )
    };
    let before = names_only(&snapshot(&lab));
    assert_eq!(
        before.3,
        vec!["lo".to_string()],
        "fresh namespace has only lo"
    );

    let ghost = format!("{}-ghost", lab.prefix);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["connect", "nosuch", "--netns", &ns2], vec!["nosuch"]),
        (vec!["connect", "n", "--netns", &ghost], vec![&ghost]),
        (
            vec!["connect", "n", "--netns", "/nonexistent/netns/path"],
            vec!["/nonexistent/netns/path", "path"],
        ),
        (
            vec!["connect", "n", "--pid", "999999999"],
            vec!["999999999", "pid", "process"],
        ),
        (
            vec!["connect", "n", "--netns", &ns2, "--ip", "10.9.9.9"],
            vec!["10.9.9.9", "subnet", "outside"],
        ),
        (
            vec!["connect", "n", "--netns", &ns2, "--ip", "10.2.0.10"],
            vec!["10.2.0.10", "in use", "taken", "already", "allocated"],
        ),
        (
            vec!["connect", "n", "--netns", &ns2, "--ip", "not-an-ip"],
            vec!["not-an-ip", "ip", "address", "invalid"],
        ),
        (
            vec![
                "connect",
                "n",
                "--netns",
                &ns2,
                "--mac",
                "02:00:00:00:02:01",
            ],
            vec!["02:00:00:00:02:01", "mac", "in use", "already"],
        ),
        (
            vec!["connect", "n", "--netns", &ns2, "--mac", &e2.mac],
            vec![&e2.mac, "mac", "in use", "already"],
        ),
        (
            vec!["connect", "n", "--netns", &ns2, "--mac", "zz:zz"],
            vec!["zz:zz", "mac"],
        ),
        (
            vec![
                "connect",
                "n",
                "--netns",
                &ns2,
                "--mac",
                "01:00:5e:00:00:01",
            ],
            vec!["01:00:5e:00:00:01", "multicast", "mac"],
        ),
        (
            vec!["connect", "n", "--netns", &ns1],
            vec!["eth0", "exists", "already"],
        ),
        (
            vec![
                "connect", "n", "--netns", &ns1, "--ifname", "eth0", "--kind", "veth",
            ],
            vec!["eth0", "exists", "already"],
        ),
        (
            vec!["connect", "n", "--netns", &ns2, "--name", &e1.name],
            vec![&e1.name, "exists", "already", "name"],
        ),
        (
            vec![
                "connect",
                "n",
                "--netns",
                &ns2,
                "--ifname",
                "this-name-is-way-too-long",
            ],
            vec![
                "ifname",
                "too long",
                "this-name-is-way-too-long",
                "interface",
            ],
        ),
    ];
    for (args, words) in &cases {
        lab.weft_err(args, words);
        let now = names_only(&snapshot(&lab));
        assert_eq!(
            before,
            now,
            "`weft {}` failed but left something behind",
            args.join(" ")
        );
    }
    // A usage error (clap may exit with 2): must fail and create nothing.
    let o = lab.weft(&["connect", "n", "--netns", &ns2, "--kind", "bogus"]);
    assert!(!o.status.success(), "--kind bogus accepted");
    assert!(stderr_of(&o).contains("bogus"), "{}", stderr_of(&o));
    assert_eq!(
        before,
        names_only(&snapshot(&lab)),
        "--kind bogus left something behind"
    );
    // The failed second connect on ns1 did not break the existing endpoint.
    lab.assert_ping(&e1, &e2);
    // And ns2 can still be connected properly afterwards.
    let e3 = lab.connect("n", &ns2, &[]);
    assert_ne!(e3.ip, "10.2.0.10");
    lab.assert_ping(&e3, &e1);
}

#[test]
fn network_rm_requires_force_with_endpoints() {
    root_or_skip!();
    let lab = Lab::new();
    lab.create_network("n", "10.3.0.0/24", &[]);
    lab.create_network("empty", "10.4.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);
    let err = lab.weft_err(&["network", "rm", "n"], &["--force"]);
    assert!(
        err.contains('2'),
        "message should mention the endpoint count (2): {err:?}"
    );
    assert_eq!(lab.networks().len(), 2);
    assert_eq!(lab.endpoints("n").len(), 2);
    lab.assert_ping(&a, &b);

    lab.weft_ok(&["network", "rm", "empty"]);
    lab.weft_ok(&["network", "rm", "n", "--force"]);
    let nets = lab.networks();
    assert!(nets.is_empty(), "{nets:?}");
    assert!(
        lab.ports().is_empty(),
        "ports left after rm --force: {:?}",
        lab.ports()
    );
    for ep in [&a, &b] {
        assert!(
            !lab.link_names(&ep.ns).contains(&ep.ifname),
            "rm --force left {} in {}",
            ep.ifname,
            ep.ns
        );
    }
    // the subnet is free again
    lab.create_network("n2", "10.3.0.0/24", &[]);
    let a2 = lab.connect("n2", &a.ns, &[]);
    let b2 = lab.connect("n2", &b.ns, &[]);
    lab.assert_ping(&a2, &b2);
}

#[test]
fn missing_daemon_socket_is_explained() {
    let dir = std::env::temp_dir().join(format!("weft-test-nosock-{}", std::process::id()));
    let sock = dir.join("nope.sock");
    let o = run_timeout(
        Command::new(weft_bin())
            .arg("--socket")
            .arg(&sock)
            .args(["network", "ls"]),
        CLI_TIMEOUT,
    );
    check_error(&o, "weft --socket <missing> network ls", &["weft daemon"]);
    // WEFT_SOCKET works the same way
    let o = run_timeout(
        Command::new(weft_bin())
            .env("WEFT_SOCKET", &sock)
            .args(["--json", "ports"]),
        CLI_TIMEOUT,
    );
    check_error(&o, "WEFT_SOCKET=<missing> weft ports", &["weft daemon"]);
    assert!(
        o.stdout.is_empty(),
        "nothing on stdout on error: {:?}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// Malformed frames sent with a raw socket from inside a namespace are
/// dropped and counted; the daemon survives and keeps forwarding.
#[test]
fn malformed_frames_are_dropped_and_counted() {
    root_or_skip!();
    require_tool("python3");
    let lab = Lab::new();
    lab.create_network("n", "10.5.0.0/24", &["--mtu", "1500"]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &["--kind", "veth"]);
    lab.assert_ping(&a, &b);
    let bcast = [0xffu8; 6];

    // 1. multicast / broadcast source MAC
    let frames: Vec<Vec<u8>> = (0..5u8)
        .map(|i| eth_frame(bcast, [0x01, 0x00, 0x5e, 0x00, 0x00, i], 0x88b5, &[0u8; 46]))
        .collect();
    assert_eq!(
        lab.send_frames(&a.ns, &a.ifname, &frames),
        5,
        "could not send frames with multicast source"
    );

    // 2. oversized: raise eth0's MTU so the kernel lets a 4000-byte frame out
    lab.exec_ok(
        &a.ns,
        &["ip", "link", "set", "dev", &a.ifname, "mtu", "9000"],
    );
    let big: Vec<Vec<u8>> = (0..3)
        .map(|_| eth_frame(b.mac_bytes(), a.mac_bytes(), 0x88b5, &vec![0xab; 3986]))
        .collect();
    assert_eq!(big[0].len(), 4000);
    assert_eq!(
        lab.send_frames(&a.ns, &a.ifname, &big),
        3,
        "could not send 4000-byte frames"
    );
    lab.exec_ok(
        &a.ns,
        &["ip", "link", "set", "dev", &a.ifname, "mtu", "1500"],
    );

    // 3. destination = the sender's own (learned) MAC: same segment
    let same: Vec<Vec<u8>> = (0..3)
        .map(|_| eth_frame(a.mac_bytes(), a.mac_bytes(), 0x88b5, &[0u8; 46]))
        .collect();
    assert_eq!(lab.send_frames(&a.ns, &a.ifname, &same), 3);

    // 4. random garbage >= 14 bytes, from both a TAP and a veth endpoint
    let mut rng = Rng::new(0x5eed_1234_abcd);
    let garbage: Vec<Vec<u8>> = (0..60)
        .map(|_| {
            let n = rng.range(14, 400);
            rng.bytes(n)
        })
        .collect();
    assert_eq!(lab.send_frames(&a.ns, &a.ifname, &garbage), garbage.len());
    assert_eq!(lab.send_frames(&b.ns, &b.ifname, &garbage), garbage.len());

    std::thread::sleep(Duration::from_millis(300));
    assert!(
        lab.daemon_alive(),
        "daemon died from malformed frames\n{}",
        lab.daemon_log()
    );
    assert!(
        lab.wait_ping(&a.ns, &b.ip, Duration::from_secs(5)),
        "forwarding broken after malformed frames"
    );
    lab.assert_ping(&b, &a);

    let pa = lab.port(&a.name);
    let d = all_drops(&pa);
    assert!(
        drops(&pa, "invalid_source_mac") >= 5,
        "invalid_source_mac not counted on {}: drops {d:?}",
        a.name
    );
    assert!(
        drops(&pa, "oversized") >= 1,
        "oversized not counted on {}: drops {d:?}",
        a.name
    );
    assert!(
        drops(&pa, "same_segment") >= 3,
        "same_segment not counted on {}: drops {d:?}",
        a.name
    );
    for (reason, n) in &d {
        assert!(*n > 0, "drops lists a zero counter {reason}: {d:?}");
        assert!(
            [
                "runt",
                "bad_vnet_header",
                "truncated",
                "oversized",
                "invalid_source_mac",
                "same_segment",
                "no_destination",
                "unknown_port",
                "tx_error",
                "spoofed_mac",
                "spoofed_ip",
                "spoofed_arp"
            ]
            .contains(&reason.as_str()),
            "unknown drop reason {reason}"
        );
    }
    let fdb = lab.fdb("n");
    assert!(
        fdb.iter().all(|e| {
            let m = mac_bytes(e["mac"].as_str().unwrap());
            m[0] & 1 == 0
        }),
        "a multicast MAC was learned: {fdb:?}"
    );
}
