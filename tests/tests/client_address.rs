//! A published port's server sees its client's own address: the gateway's stack connects to
//! the container from the client's address and port, and the container's answers come back
//! through its default route (the gateway). Checked for a client in an outside namespace, a
//! client on the host, a hairpin client (a container going out through the NAT to a host
//! address), and the exceptions: a loopback client and a `--published-source gateway`
//! network show the gateway's address.

use std::time::Duration;
use weft_tests::*;

/// A TCP server in `ns` on port 7000 that answers every connection with `peer=IP:PORT`.
const PEER_SERVER: &str = "import socket\n\
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('0.0.0.0', 7000)); s.listen(16); print('ready', flush=True)\n\
while True:\n    c, a = s.accept(); c.sendall(('peer=%s:%d\\n' % a).encode()); c.close()\n";

/// A UDP server in `ns` on port 7001 that answers every datagram with `peer=IP:PORT`.
const UDP_PEER_SERVER: &str = "import socket\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 7001))\n\
print('ready', flush=True)\n\
while True:\n    d, a = s.recvfrom(100); s.sendto(('peer=%s:%d' % a).encode(), a)\n";

/// Sends a datagram to argv[1]:argv[2] from a connected socket (an answer from any other
/// address or port is not taken) and prints the answer.
const UDP_CLIENT: &str = "import socket, sys\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)\n\
s.connect((sys.argv[1], int(sys.argv[2]))); s.send(b'who')\n\
print(s.recv(100).decode())\n";

/// Connects to `addr:port` from `ns` (None: the host) and returns what the server said.
const CLIENT: &str = "import socket, sys\n\
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n\
print(s.recv(100).decode().strip())\n";

fn ask(lab: &Lab, ns: Option<&str>, addr: &str, port: u16) -> String {
    let p = port.to_string();
    let cmd = ["python3", "-c", CLIENT, addr, &p];
    let o = match ns {
        Some(ns) => lab.exec(ns, &cmd),
        None => run_timeout(
            std::process::Command::new(cmd[0]).args(&cmd[1..]),
            Duration::from_secs(10),
        ),
    };
    assert!(
        o.status.success(),
        "client {ns:?} -> {addr}:{port}: {}",
        describe(&o)
    );
    stdout_of(&o).trim().to_string()
}

/// The address part of `peer=IP:PORT`.
fn peer_ip(answer: &str) -> &str {
    answer
        .strip_prefix("peer=")
        .and_then(|a| a.rsplit_once(':'))
        .map_or("", |(ip, _)| ip)
}

/// Publishes port 7000 of `ep` on a free host port; returns the host port.
fn publish(lab: &Lab, ep: &str) -> u16 {
    for _ in 0..20 {
        let hp = std::net::TcpListener::bind(("0.0.0.0", 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if lab
            .weft(&["publish", ep, &format!("{hp}:7000")])
            .status
            .success()
        {
            return hp;
        }
    }
    panic!("could not publish a port of {ep}");
}

fn start_server(lab: &Lab, ns: &str) -> Bg {
    let server = lab.spawn_in(ns, &["python3", "-u", "-c", PEER_SERVER]);
    assert!(
        eventually(Duration::from_secs(10), || server
            .stdout()
            .contains("ready")),
        "peer server did not start: {}",
        server.stderr()
    );
    server
}

#[test]
fn published_ports_show_the_clients_address() {
    root_or_skip!();
    let lab = Lab::new();
    let out = lab.outside(231);
    lab.create_network("n", "10.88.0.0/24", &[]);
    let a = lab.connect("n", &lab.ns("a"), &[]);
    let b = lab.connect("n", &lab.ns("b"), &[]);
    let _server = start_server(&lab, &a.ns);
    let hp = publish(&lab, &a.name);

    let from_outside = ask(&lab, Some(&out), "10.231.0.1", hp);
    assert_eq!(
        peer_ip(&from_outside),
        "10.231.0.2",
        "outside client: {from_outside}"
    );
    let from_host = ask(&lab, None, "10.231.0.1", hp);
    assert_eq!(
        peer_ip(&from_host),
        "10.231.0.1",
        "host client: {from_host}"
    );
    // Hairpin: b goes out through the NAT to a host address; the server sees the host's
    // address its connection came from (b's own address is in the server's subnet, where
    // the server would answer it directly, past the gateway).
    let hairpin = ask(&lab, Some(&b.ns), "10.231.0.1", hp);
    assert_eq!(peer_ip(&hairpin), "10.231.0.1", "hairpin client: {hairpin}");
    // Loopback is the container's own: such a client is shown as the gateway.
    let looped = ask(&lab, None, "127.0.0.1", hp);
    assert_eq!(peer_ip(&looped), "10.88.0.1", "loopback client: {looped}");

    // UDP too: the container answers the client's own address, and the answer reaches the
    // client from the published port.
    let udp = lab.spawn_in(&a.ns, &["python3", "-u", "-c", UDP_PEER_SERVER]);
    assert!(eventually(Duration::from_secs(10), || udp
        .stdout()
        .contains("ready")));
    let uhp = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap();
    lab.weft_ok(&["publish", &a.name, &format!("{uhp}:7001/udp")]);
    let o = lab.exec(
        &out,
        &["python3", "-c", UDP_CLIENT, "10.231.0.1", &uhp.to_string()],
    );
    assert!(o.status.success(), "UDP client: {}", describe(&o));
    let answer = stdout_of(&o).trim().to_string();
    assert_eq!(
        peer_ip(&answer),
        "10.231.0.2",
        "UDP outside client: {answer}"
    );
}

#[test]
fn a_gateway_sourced_network_shows_the_gateway() {
    root_or_skip!();
    let lab = Lab::new();
    let out = lab.outside(233);
    lab.create_network("g", "10.89.0.0/24", &["--published-source", "gateway"]);
    assert_eq!(lab.inspect("g")["published_source"], "gateway");
    let a = lab.connect("g", &lab.ns("a"), &[]);
    let _server = start_server(&lab, &a.ns);
    let hp = publish(&lab, &a.name);
    let from_outside = ask(&lab, Some(&out), "10.233.0.1", hp);
    assert_eq!(
        peer_ip(&from_outside),
        "10.89.0.1",
        "outside client: {from_outside}"
    );
    lab.weft_err(
        &[
            "network",
            "create",
            "x",
            "--subnet",
            "10.90.0.0/24",
            "--published-source",
            "nobody",
        ],
        &["--published-source", "client", "gateway"],
    );
}
