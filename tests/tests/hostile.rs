//! A hostile container against the gateway: what one container sends must not stop the
//! gateway's runtime for everyone else.

use std::time::Duration;
use weft_tests::*;

/// Opens `count` TCP connections to `server:53`, sends two octets on each (a DNS-over-TCP
/// length prefix and nothing after it) and resets it at once (SO_LINGER 0).
const RESET_STORM: &str = r#"
import socket, struct, sys, threading
server, count = sys.argv[1], int(sys.argv[2])
def one(i):
    try:
        s = socket.create_connection((server, 53), timeout=3)
        s.send([b"\x00\x00", b"\x00\x05", b"\x00\x00\x00\x00"][i % 3])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    except OSError:
        pass
for round in range(10):
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads: t.start()
    for t in threads: t.join()
print("sent", count)
"#;

#[test]
fn a_reset_storm_on_dns_over_tcp_does_not_stop_the_gateway() {
    root_or_skip!();
    require_tool("dig");
    require_tool("python3");
    let lab = Lab::new();
    lab.create_network("n", "10.91.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &["--name", "attacker"]);
    let b = lab.connect("n", &lab.ns("b"), &["--name", "victim"]);
    let gw = lab.inspect("n")["gateway"].as_str().unwrap().to_string();
    let dig_tcp = |ns: &str| {
        let out = lab.exec(
            ns,
            &[
                "dig",
                "+tcp",
                "+time=3",
                "+tries=1",
                "+short",
                &format!("@{gw}"),
                "attacker",
            ],
        );
        stdout_of(&out).trim().to_string()
    };
    assert_eq!(dig_tcp(&b.ns), a.ip, "DNS over TCP works before the storm");

    let out = lab.exec(&a.ns, &["python3", "-c", RESET_STORM, &gw, "40"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    std::thread::sleep(Duration::from_millis(500));

    // The gateway's runtime still serves the other container, over TCP and for ICMP to
    // the outside... and the attacker too.
    assert_eq!(dig_tcp(&b.ns), a.ip, "DNS over TCP after the storm");
    assert_eq!(dig_tcp(&a.ns), a.ip);
    assert!(lab.daemon_alive());
    let log = lab.daemon_log();
    assert!(!log.contains("panicked"), "the daemon's log:\n{log}");
}
