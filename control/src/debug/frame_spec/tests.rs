use super::*;
use smoltcp::wire::{EthernetFrame, Ipv4Packet, TcpPacket, UdpPacket};

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn ctx() -> FrameContext {
    FrameContext {
        src_mac: Some(mac("02:42:0a:00:00:02")),
        src_ip: Some("10.0.0.2".parse().unwrap()),
        gateway: Some(("10.0.0.1".parse().unwrap(), mac("02:42:0a:00:00:01"))),
        subnet: Some("10.0.0.0/24".parse().unwrap()),
        neighbors: [("10.0.0.3".parse().unwrap(), mac("02:42:0a:00:00:03"))].into(),
        names: [("db".to_string(), "10.0.0.3".parse().unwrap())].into(),
    }
}

fn frame(spec: &str) -> Vec<u8> {
    build(&parse(spec).unwrap(), &ctx()).unwrap()
}

#[test]
fn arp_who_has_is_a_broadcast_request_from_the_endpoint() {
    let f = frame("arp who-has 10.0.0.3");
    let eth = EthernetFrame::new_checked(&f[..]).unwrap();
    assert_eq!(eth.dst_addr().0, [0xff; 6]);
    assert_eq!(eth.src_addr().0, mac("02:42:0a:00:00:02").0);
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
    let ArpRepr::EthernetIpv4 {
        operation,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = arp
    else {
        panic!("{arp:?}")
    };
    assert_eq!(operation, ArpOperation::Request);
    assert_eq!(
        source_protocol_addr,
        "10.0.0.2".parse::<Ipv4Addr>().unwrap()
    );
    assert_eq!(
        target_protocol_addr,
        "10.0.0.3".parse::<Ipv4Addr>().unwrap()
    );
    // The switch's own parser takes it as an ARP request.
    assert_eq!(
        crate::dataplane::trace_text::describe_frame(&f, f.len()),
        "02:42:0a:00:00:02 > ff:ff:ff:ff:ff:ff ARP who-has 10.0.0.3 tell 10.0.0.2, length 42"
    );
}

#[test]
fn icmp_to_a_neighbour_goes_to_its_mac_with_valid_checksums() {
    let f = frame("icmp 10.0.0.2 > db");
    let eth = EthernetFrame::new_checked(&f[..]).unwrap();
    assert_eq!(eth.dst_addr().0, mac("02:42:0a:00:00:03").0);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.dst_addr().to_string(), "10.0.0.3");
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(icmp.data().len(), 56);
}

#[test]
fn tcp_to_the_outside_goes_to_the_gateway_with_syn_by_default() {
    let f = frame("tcp 192.0.2.7:80");
    let eth = EthernetFrame::new_checked(&f[..]).unwrap();
    assert_eq!(eth.dst_addr().0, mac("02:42:0a:00:00:01").0);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.src_addr().to_string(), "10.0.0.2");
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(tcp.syn() && !tcp.ack());
    assert_eq!((tcp.src_port(), tcp.dst_port()), (49152, 80));
    let s = IpAddress::Ipv4(ip.src_addr());
    let d = IpAddress::Ipv4(ip.dst_addr());
    assert!(tcp.verify_checksum(&s, &d));
    let f = frame("tcp 10.0.0.2:40000 > 192.0.2.7:80 syn,ack");
    let eth = EthernetFrame::new_checked(&f[..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(tcp.syn() && tcp.ack());
    assert_eq!(tcp.src_port(), 40000);
}

#[test]
fn udp_to_gw_and_options_fill_in() {
    let f = frame("udp 10.0.0.2:5353 > GW:53 len 12 src-mac 02:00:00:00:00:99");
    let eth = EthernetFrame::new_checked(&f[..]).unwrap();
    assert_eq!(eth.src_addr().0, mac("02:00:00:00:00:99").0);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.dst_addr().to_string(), "10.0.0.1");
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (udp.src_port(), udp.dst_port(), udp.payload().len()),
        (5353, 53, 12)
    );
    let s = IpAddress::Ipv4(ip.src_addr());
    let d = IpAddress::Ipv4(ip.dst_addr());
    assert!(udp.verify_checksum(&s, &d));
}

#[test]
fn errors_name_the_token_and_show_the_syntax() {
    let e = parse("tcp 10.0.0.2 > 192.0.2.7").unwrap_err();
    assert_eq!(
        e,
        SpecError::Token {
            token: "192.0.2.7".into(),
            problem: "tcp and udp destinations need a port: ADDR:PORT".into()
        }
    );
    assert!(e.to_string().contains("icmp [SRC >] DST"), "{e}");
    assert!(
        matches!(parse("sctp 1.2.3.4"), Err(SpecError::Token { token, .. }) if token == "sctp")
    );
    assert!(
        matches!(parse("udp 1.2.3.4:99999"), Err(SpecError::Token { token, .. }) if token == "1.2.3.4:99999")
    );
    assert!(
        matches!(parse("icmp 10.0.0.3 bogus"), Err(SpecError::Token { token, .. }) if token == "bogus")
    );
    assert!(
        matches!(parse("icmp 10.0.0.3 syn"), Err(SpecError::Token { token, .. }) if token == "syn")
    );
    assert!(
        matches!(parse("icmp 10.0.0.3 len 99999"), Err(SpecError::Token { token, .. }) if token == "99999")
    );
    assert_eq!(parse("  "), Err(SpecError::Empty));
    assert_eq!(
        parse("arp"),
        Err(SpecError::Missing("arp needs who-has IP"))
    );
    assert!(matches!(
        parse("icmp 10.0.0.300"),
        Err(SpecError::Token { .. })
    ));
    // Unknown names and unknown neighbours say what to give instead.
    let e = build(&parse("icmp nosuch").unwrap(), &ctx()).unwrap_err();
    assert!(
        e.to_string().contains("no endpoint named \"nosuch\""),
        "{e}"
    );
    let e = build(&parse("icmp 10.0.0.9").unwrap(), &ctx()).unwrap_err();
    assert!(e.to_string().contains("dst-mac"), "{e}");
}

#[test]
fn hex_frames_parse_with_separators() {
    let f = parse_hex("0x ffffffffffff 02:42:0a:00:00:02 0806 00").unwrap();
    assert_eq!(f.len(), 15);
    assert_eq!(&f[12..14], &[0x08, 0x06]);
    assert!(matches!(parse_hex("fff"), Err(SpecError::Hex(_))));
    assert!(matches!(parse_hex("ffff"), Err(SpecError::Hex(_))));
    assert!(matches!(
        parse_hex(&"zz".repeat(14)),
        Err(SpecError::Hex(_))
    ));
}

#[test]
fn hex_with_a_character_that_is_not_ascii_is_refused_not_a_panic() {
    let e = parse_hex(&format!("€{}", "0".repeat(27)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a hex digit"), "{e}");
}
