use super::*;
use weft_switch::{EchoViaGateway, TcpToGateway, UdpToGateway};

const EP: &str = "02:42:0a:00:00:02";

fn facts() -> RuntimeFacts {
    RuntimeFacts {
        network: "lab".into(),
        subnet: "10.0.0.0/24".parse().unwrap(),
        gateway: "10.0.0.1".parse().unwrap(),
        nat: true,
        internal: false,
        endpoint: Some(("10.0.0.2".parse().unwrap(), EP.parse().unwrap())),
        published: vec![PortMapping::new(
            Ipv4Addr::UNSPECIFIED,
            8080,
            80,
            Protocol::Tcp,
        )],
    }
}

fn tcp(dst: &str, src_port: u16, dst_port: u16, syn: bool) -> GatewayTask {
    GatewayTask::Tcp(TcpToGateway {
        src_mac: EP.parse().unwrap(),
        src: ("10.0.0.2".parse().unwrap(), src_port),
        dst: (dst.parse().unwrap(), dst_port),
        syn,
        ip: 14..54,
    })
}

fn verdict(lines: &[String]) -> &str {
    lines.last().map(String::as_str).unwrap_or_default()
}

#[test]
fn outbound_tcp_leaves_through_the_nat_unless_the_network_forbids_it() {
    let t = tcp("192.0.2.7", 40000, 80, true);
    let lines = runtime_lines(&t, &facts());
    assert_eq!(
        verdict(&lines),
        "verdict   to the outside through network lab's proxy NAT"
    );
    let internal = RuntimeFacts {
        internal: true,
        ..facts()
    };
    let lines = runtime_lines(&t, &internal);
    assert!(verdict(&lines).contains("--internal"), "{lines:?}");
    let none = RuntimeFacts {
        nat: false,
        ..facts()
    };
    assert!(verdict(&runtime_lines(&t, &none)).contains("--nat none"));
    let lo = runtime_lines(&tcp("127.0.0.1", 40000, 80, true), &facts());
    assert!(verdict(&lo).contains("nat_refused"), "{lo:?}");
}

#[test]
fn published_ports_and_the_gateways_own_services() {
    // A reply from the published container port (not a new connection).
    let lines = runtime_lines(&tcp("198.51.100.4", 80, 51000, false), &facts());
    assert!(
        lines[0].starts_with("published 0.0.0.0:8080->80/tcp"),
        "{lines:?}"
    );
    let lines = runtime_lines(&tcp("10.0.0.1", 80, 51000, false), &facts());
    assert!(
        lines[0].starts_with("published 0.0.0.0:8080->80/tcp"),
        "{lines:?}"
    );
    let lines = runtime_lines(&tcp("10.0.0.1", 40000, 53, true), &facts());
    assert_eq!(verdict(&lines), "verdict   answered by the gateway's DNS");
    let lines = runtime_lines(&tcp("10.0.0.1", 40000, 22, true), &facts());
    assert_eq!(verdict(&lines), "verdict   answered with a reset");
    let udp = |src_port| {
        GatewayTask::PublishedUdp(UdpToGateway {
            src_mac: EP.parse().unwrap(),
            src_ip: "10.0.0.2".parse().unwrap(),
            src_port,
            dst_ip: "10.0.0.1".parse().unwrap(),
            dst_port: 40001,
            payload: 42..42,
        })
    };
    let lines = runtime_lines(&udp(5353), &facts());
    assert!(verdict(&lines).contains("dropped"), "{lines:?}");
    let mut with_udp = facts();
    with_udp.published.push(PortMapping::new(
        Ipv4Addr::UNSPECIFIED,
        5353,
        5353,
        Protocol::Udp,
    ));
    let lines = runtime_lines(&udp(5353), &with_udp);
    assert!(
        verdict(&lines).contains("published port's client"),
        "{lines:?}"
    );
}

#[test]
fn only_the_ports_endpoint_is_served() {
    let echo = GatewayTask::EchoOut(EchoViaGateway {
        src_mac: EP.parse().unwrap(),
        src_ip: "10.0.0.9".parse().unwrap(),
        dst_ip: "192.0.2.7".parse().unwrap(),
        ident: 1,
        icmp: 34..98,
    });
    let lines = runtime_lines(&echo, &facts());
    assert_eq!(verdict(&lines), "verdict   dropped: gateway_unsupported");
}
