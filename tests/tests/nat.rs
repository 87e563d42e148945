//! Outbound NAT in proxy mode, UDP: a container's datagrams to an address outside its network
//! leave through a host socket of the daemon, answers come back, `weft nat` lists the flow,
//! idle flows expire, and `--nat none` turns it off. The "outside" is a namespace this test
//! creates and joins to the host namespace with a veth pair.

use std::time::Duration;
use weft_tests::*;

const UDP_ECHO: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7000))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(b"echo:" + data, peer)
"#;

const UDP_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(sys.argv[2].encode(), (sys.argv[1], 7000))
try:
    print(s.recv(2048).decode())
except socket.timeout:
    print("timeout")
"#;

#[test]
fn udp_leaves_through_host_sockets_and_answers_come_back() {
    root_or_skip!();
    require_tool("dig");
    require_tool("dnsmasq");
    let lab = Lab::with_daemon_args(&["--udp-idle-timeout", "2", "--dns-upstream", "127.0.0.1:9"]);
    let out_ns = lab.outside(251);
    let mut server = lab.spawn_in(&out_ns, &["python3", "-c", UDP_ECHO, "10.251.0.2"]);
    lab.create_network("n", "10.98.0.0/24", &[]);
    lab.create_network("closed", "10.99.0.0/24", &["--nat", "none"]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let c = lab.connect("closed", &lab.ns("c"), &[]);
    std::thread::sleep(Duration::from_millis(300));

    let reply = lab.exec_ok(&a.ns, &["python3", "-c", UDP_CLIENT, "10.251.0.2", "hello"]);
    assert_eq!(reply.trim(), "echo:hello");
    // The flow is listed with both directions counted.
    let flows = lab.weft_json(&["nat", "n"]);
    let flow = flows
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["outside"] == "10.251.0.2:7000")
        .unwrap_or_else(|| panic!("flow not listed: {flows}"));
    assert_eq!(flow["protocol"], "udp");
    assert!(flow["container"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}:", a.ip)));
    assert!(flow["bytes_out"].as_u64().unwrap() >= 5, "{flow}");
    assert!(flow["bytes_in"].as_u64().unwrap() >= 10, "{flow}");
    assert!(lab.weft_ok(&["nat"]).contains("HOST_SOCKET"));

    // A DNS query with dig to a real resolver outside (dnsmasq in the outside namespace).
    {
        let mut dnsmasq = lab.spawn_in(
            &out_ns,
            &[
                "dnsmasq",
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=10.251.0.2",
                "--address=/outside.test/192.0.2.77",
                "--pid-file=",
            ],
        );
        // Ready when it answers in its own namespace (a fixed wait flakes on a loaded machine).
        let ready = weft_tests::eventually(Duration::from_secs(10), || {
            let out = lab.exec(
                &out_ns,
                &[
                    "dig",
                    "+short",
                    "+time=1",
                    "+tries=1",
                    "@10.251.0.2",
                    "outside.test",
                ],
            );
            String::from_utf8_lossy(&out.stdout).trim() == "192.0.2.77"
        });
        assert!(ready, "dnsmasq did not start answering within 10 s");
        let answer = lab.exec_ok(
            &a.ns,
            &[
                "dig",
                "+short",
                "+time=2",
                "+tries=1",
                "@10.251.0.2",
                "www.outside.test",
            ],
        );
        dnsmasq.kill();
        assert_eq!(answer.trim(), "192.0.2.77");
    }

    // A closed port outside: the container's connected socket sees "connection refused",
    // carried back as ICMP port unreachable, not a timeout.
    const REFUSED: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((sys.argv[1], 7001))
s.send(b"anyone?")
try:
    s.recv(100)
    print("answered")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
"#;
    let refused = lab.exec_ok(&a.ns, &["python3", "-c", REFUSED, "10.251.0.2"]);
    assert_eq!(refused.trim(), "refused");

    // Idle flows expire (the daemon runs with a 2 s idle timeout).
    std::thread::sleep(Duration::from_secs(4));
    let flows = lab.weft_json(&["nat", "n"]);
    assert!(
        flows.as_array().unwrap().is_empty(),
        "idle flow still listed: {flows}"
    );

    // --nat none: nothing leaves, and the drop is counted.
    let reply = lab.exec_ok(&c.ns, &["python3", "-c", UDP_CLIENT, "10.251.0.2", "hello"]);
    assert_eq!(reply.trim(), "timeout");
    assert!(drops(&lab.port(&c.name), "gateway_unsupported") >= 1);
    assert_eq!(lab.inspect("closed")["nat"], "none");
    lab.weft_err(
        &[
            "network",
            "create",
            "x",
            "--subnet",
            "10.100.0.0/24",
            "--nat",
            "masquerade",
        ],
        &["--nat"],
    );
    server.kill();
}
