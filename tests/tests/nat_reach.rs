//! What the proxy NAT never reaches (issue 10): a container's connection to a link-local
//! address (where clouds put their metadata service), or to a service of the host itself on
//! one of its addresses (the NAT's socket would arrive over `lo`, past the host's
//! firewall), is refused by the gateway, counted as `nat_refused` and answered with ICMP
//! "administratively prohibited", so the service never sees it; an ordinary outside address
//! still works.

use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

use weft_tests::*;

/// Connects to argv[1]:argv[2] over TCP (timeout 3 s) and sends one UDP datagram there;
/// prints "tcp ok" or "tcp ERROR", then "udp ERROR" if the datagram was refused.
const CLIENT: &str = r#"
import socket, sys, time
dst, port = sys.argv[1], int(sys.argv[2])
try:
    c = socket.create_connection((dst, port), timeout=3)
    c.sendall(b"hi")
    print("tcp ok", flush=True)
except OSError as e:
    print("tcp %s" % type(e).__name__, flush=True)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.connect((dst, port))
u.send(b"x")
u.settimeout(1)
try:
    u.recv(10)
    print("udp answered", flush=True)
except OSError as e:
    print("udp %s" % type(e).__name__, flush=True)
"#;

#[test]
fn link_local_destinations_are_refused_with_icmp() {
    root_or_skip!();
    let lab = Lab::new();
    // A host service on a link-local address (a veth pair of the test's own, in the host).
    let (a, b) = (format!("{}ll", lab.prefix), format!("{}lp", lab.prefix));
    let ip = |args: &[&str]| {
        let o = Command::new("ip").args(args).output().unwrap();
        assert!(o.status.success(), "ip {args:?}: {o:?}");
    };
    ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
    ip(&["addr", "add", "169.254.77.1/32", "dev", &a]);
    ip(&["link", "set", &a, "up"]);
    ip(&["link", "set", &b, "up"]);
    let listener = TcpListener::bind("169.254.77.1:8081").unwrap();
    listener.set_nonblocking(true).unwrap();
    let udp = UdpSocket::bind("169.254.77.1:8081").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    lab.create_network("n", "10.81.0.0/24", &[]);
    let c = lab.connect("n", &lab.ns("c"), &["--name", "c"]);

    let out = lab.exec_ok(&c.ns, &["python3", "-c", CLIENT, "169.254.77.1", "8081"]);
    assert!(
        listener.accept().is_err(),
        "the host's link-local service was reached through the NAT"
    );
    let mut buf = [0u8; 16];
    assert!(
        udp.recv(&mut buf).is_err(),
        "a datagram reached the host's link-local service"
    );
    // Refused at once (ICMP), not left to time out.
    assert!(
        out.contains("tcp OSError") || out.contains("tcp ConnectionRefusedError"),
        "{out}"
    );
    assert!(
        !out.contains("TimeoutError") && !out.contains("timeout"),
        "{out}"
    );
    let refused = lab.port("c")["drops"]["nat_refused"].as_u64().unwrap_or(0);
    assert!(refused >= 2, "{}", lab.port("c"));

    // The control: an outside address is reached.
    let out_ns = lab.outside(238);
    let mut server = lab.spawn_in(
        &out_ns,
        &["python3", "-c", "import socket\ns=socket.create_server(('10.238.0.2',8081))\nprint('ready',flush=True)\nc,_=s.accept()\nprint('got',c.recv(10),flush=True)\n"],
    );
    assert!(eventually(Duration::from_secs(10), || server
        .stdout()
        .contains("ready")));
    let out = lab.exec_ok(&c.ns, &["python3", "-c", CLIENT, "10.238.0.2", "8081"]);
    assert!(out.contains("tcp ok"), "{out}");
    assert!(eventually(Duration::from_secs(5), || server
        .stdout()
        .contains("got")));
    let _ = server.wait(Duration::from_secs(5));

    // A host service on the host's own address (the outside link's host end, 10.238.0.1).
    let host = TcpListener::bind("10.238.0.1:8082").unwrap();
    host.set_nonblocking(true).unwrap();
    let before = lab.port("c")["drops"]["nat_refused"].as_u64().unwrap_or(0);
    let out = lab.exec_ok(&c.ns, &["python3", "-c", CLIENT, "10.238.0.1", "8082"]);
    assert!(
        host.accept().is_err(),
        "a host service on the host's own address was reached through the NAT: {out}\n{}",
        lab.port("c")
    );
    assert!(!out.contains("tcp ok") && !out.contains("Timeout"), "{out}");
    let after = lab.port("c")["drops"]["nat_refused"].as_u64().unwrap_or(0);
    assert!(after >= before + 2, "{}", lab.port("c"));
}
