//! The zone and the answers, fed real queries built with simple-dns and hostile bytes.
use super::*;
use simple_dns::{OPCODE, RCODE, TYPE};

const SUBNET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 1, 0, 0), 24);

fn zone() -> Zone {
    let mut z = Zone::new();
    z.add("web", Ipv4Addr::new(10, 1, 0, 2));
    z.add("db", Ipv4Addr::new(10, 1, 0, 3));
    z.add("Cache.", Ipv4Addr::new(10, 1, 0, 4));
    for (i, name) in ["api-1", "api-2", "api-3"].iter().enumerate() {
        let ip = Ipv4Addr::new(10, 1, 0, 10 + i as u8);
        z.add(name, ip);
        z.add("api", ip);
    }
    z
}

fn query_bytes(id: u16, name: &str, qtype: TYPE) -> Vec<u8> {
    let mut p = Packet::new_query(id);
    p.set_flags(PacketFlag::RECURSION_DESIRED);
    p.questions.push(Question::new(
        Name::new_unchecked(name),
        qtype.into(),
        CLASS::IN.into(),
        false,
    ));
    p.build_bytes_vec().unwrap()
}

fn ask(name: &str, qtype: TYPE, rotation: usize) -> Outcome {
    answer(&query_bytes(0x1234, name, qtype), &zone(), SUBNET, rotation)
}

fn reply(outcome: Outcome) -> Vec<u8> {
    match outcome {
        Outcome::Reply(bytes) => bytes,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn addrs(p: &Packet<'_>) -> Vec<Ipv4Addr> {
    p.answers
        .iter()
        .map(|rr| match &rr.rdata {
            RData::A(a) => Ipv4Addr::from(a.address),
            other => panic!("not an A record: {other:?}"),
        })
        .collect()
}

/// Common checks of a local reply; returns it parsed.
fn check_local<'a>(bytes: &'a [u8], query: &[u8], rcode: RCODE) -> Packet<'a> {
    let p = Packet::parse(bytes).unwrap();
    assert_eq!(p.id(), u16::from_be_bytes([query[0], query[1]]));
    assert!(p.has_flags(PacketFlag::RESPONSE | PacketFlag::AUTHORITATIVE_ANSWER));
    assert!(p.has_flags(PacketFlag::RECURSION_AVAILABLE | PacketFlag::RECURSION_DESIRED));
    assert!(!p.has_flags(PacketFlag::TRUNCATION));
    assert_eq!(p.rcode(), rcode);
    assert_eq!(p.opcode(), OPCODE::StandardQuery);
    // The question is echoed byte for byte.
    let qlen = query.len() - HEADER_LEN;
    assert_eq!(&bytes[4..6], &[0, 1]);
    assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + qlen], &query[HEADER_LEN..]);
    p
}

#[test]
fn a_single_address() {
    let q = query_bytes(7, "web", TYPE::A);
    let r = reply(answer(&q, &zone(), SUBNET, 0));
    let p = check_local(&r, &q, RCODE::NoError);
    assert_eq!(addrs(&p), [Ipv4Addr::new(10, 1, 0, 2)]);
    assert_eq!(p.answers[0].ttl, 600);
    assert_eq!(p.answers[0].class, CLASS::IN);
    assert_eq!(p.answers[0].name.to_string(), "web");
    assert!(r.len() <= MAX_UDP_REPLY);
}

#[test]
fn a_several_addresses_rotate() {
    let ips: Vec<Ipv4Addr> = (10..13).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect();
    let orders: Vec<Vec<Ipv4Addr>> = (0..4)
        .map(|rot| {
            let q = query_bytes(9, "api", TYPE::A);
            addrs(&check_local(
                &reply(answer(&q, &zone(), SUBNET, rot)),
                &q,
                RCODE::NoError,
            ))
        })
        .collect();
    assert_eq!(orders[0], ips);
    assert_eq!(orders[1], [ips[1], ips[2], ips[0]]);
    assert_eq!(orders[2], [ips[2], ips[0], ips[1]]);
    assert_eq!(orders[3], ips);
    assert_eq!(zone().lookup("API."), ips);
}

#[test]
fn case_insensitive_and_trailing_dot() {
    for name in ["WEB", "Web.", "web."] {
        let q = query_bytes(1, name, TYPE::A);
        let r = reply(answer(&q, &zone(), SUBNET, 0));
        let p = check_local(&r, &q, RCODE::NoError);
        assert_eq!(addrs(&p), [Ipv4Addr::new(10, 1, 0, 2)]);
        // Owner name keeps the case of the question.
        assert_eq!(p.answers[0].name.to_string(), name.trim_end_matches('.'));
    }
    // Added as "Cache." -> stored as "cache".
    assert_eq!(zone().lookup("CACHE"), [Ipv4Addr::new(10, 1, 0, 4)]);
    assert_eq!(
        zone().reverse(Ipv4Addr::new(10, 1, 0, 4)).as_deref(),
        Some("cache")
    );
    let q = query_bytes(1, "cache", TYPE::A);
    assert_eq!(
        addrs(&check_local(
            &reply(answer(&q, &zone(), SUBNET, 0)),
            &q,
            RCODE::NoError
        ))
        .len(),
        1
    );
}

#[test]
fn nodata_for_other_types_of_known_name() {
    for ty in [TYPE::AAAA, TYPE::MX, TYPE::TXT, TYPE::PTR] {
        let q = query_bytes(3, "web", ty);
        let r = reply(answer(&q, &zone(), SUBNET, 0));
        let p = check_local(&r, &q, RCODE::NoError);
        assert!(p.answers.is_empty(), "{ty:?}");
    }
    // A QTYPE simple-dns does not model (TLSA = 52) is still understood (simple-dns cannot
    // parse this reply either, so check the bytes).
    let mut q = query_bytes(3, "web", TYPE::A);
    let n = q.len();
    q[n - 3] = 52;
    let r = reply(answer(&q, &zone(), SUBNET, 0));
    assert_eq!(&r[..2], &[0, 3]);
    assert_eq!(&r[2..4], &[0x85, 0x80]); // QR AA RD, RA NOERROR
    assert_eq!(&r[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&r[HEADER_LEN..], &q[HEADER_LEN..]);
    // ... and forwarded for a name that is not ours.
    let mut q = query_bytes(3, "example.com", TYPE::A);
    let n = q.len();
    q[n - 3] = 52;
    assert_eq!(answer(&q, &zone(), SUBNET, 0), Outcome::Forward);
}

#[test]
fn qtype_any_returns_addresses() {
    let mut q = query_bytes(4, "web", TYPE::A);
    let n = q.len();
    q[n - 3] = 255;
    let r = reply(answer(&q, &zone(), SUBNET, 0));
    let p = check_local(&r, &q, RCODE::NoError);
    assert_eq!(addrs(&p), [Ipv4Addr::new(10, 1, 0, 2)]);
}

#[test]
fn ptr_known() {
    let q = query_bytes(5, "2.0.1.10.in-addr.arpa", TYPE::PTR);
    let r = reply(answer(&q, &zone(), SUBNET, 0));
    let p = check_local(&r, &q, RCODE::NoError);
    assert_eq!(p.answers.len(), 1);
    assert_eq!(p.answers[0].ttl, 600);
    match &p.answers[0].rdata {
        RData::PTR(ptr) => assert_eq!(ptr.0.to_string(), "web"),
        other => panic!("{other:?}"),
    }
    // Primary name, not the shared alias.
    let q = query_bytes(5, "11.0.1.10.IN-ADDR.ARPA.", TYPE::PTR);
    let r = reply(answer(&q, &zone(), SUBNET, 0));
    let p = check_local(&r, &q, RCODE::NoError);
    match &p.answers[0].rdata {
        RData::PTR(ptr) => assert_eq!(ptr.0.to_string(), "api-2"),
        other => panic!("{other:?}"),
    }
    // Other types for an existing reverse name: NODATA.
    let q = query_bytes(5, "2.0.1.10.in-addr.arpa", TYPE::A);
    assert!(
        check_local(&reply(answer(&q, &zone(), SUBNET, 0)), &q, RCODE::NoError)
            .answers
            .is_empty()
    );
}

#[test]
fn ptr_unknown_in_subnet_is_nxdomain() {
    let q = query_bytes(6, "99.0.1.10.in-addr.arpa", TYPE::PTR);
    let r = reply(answer(&q, &zone(), SUBNET, 0));
    let p = check_local(&r, &q, RCODE::NameError);
    assert!(p.answers.is_empty());
    let r = reply(answer(&q, &zone(), SUBNET, 0));
    assert_eq!(&r[6..12], &[0; 6]); // no answer, authority or additional records
}

#[test]
fn ptr_outside_subnet_forwards() {
    for name in [
        "8.8.8.8.in-addr.arpa",
        "1.1.1.10.in-addr.arpa",
        "1.10.in-addr.arpa",
        "01.0.1.10.in-addr.arpa",
    ] {
        assert_eq!(ask(name, TYPE::PTR, 0), Outcome::Forward, "{name}");
    }
}

#[test]
fn unknown_name_forwards() {
    assert_eq!(ask("example.com", TYPE::A, 0), Outcome::Forward);
    assert_eq!(ask("web.example.com", TYPE::A, 0), Outcome::Forward);
    assert_eq!(ask("webx", TYPE::A, 0), Outcome::Forward);
    assert_eq!(ask(".", TYPE::NS, 0), Outcome::Forward);
    // Non-IN class: not ours.
    let mut q = query_bytes(1, "web", TYPE::A);
    let n = q.len();
    q[n - 1] = 3; // CH
    assert_eq!(answer(&q, &zone(), SUBNET, 0), Outcome::Forward);
}

#[test]
fn garbage_and_responses_are_dropped() {
    assert_eq!(
        answer(&[1, 2, 3, 4, 5], &zone(), SUBNET, 0),
        Outcome::Drop(DropKind::Truncated)
    );
    assert_eq!(
        answer(&[], &zone(), SUBNET, 0),
        Outcome::Drop(DropKind::Truncated)
    );
    let q = query_bytes(1, "web", TYPE::A);
    let r = reply(answer(&q, &zone(), SUBNET, 0));
    assert_eq!(
        answer(&r, &zone(), SUBNET, 0),
        Outcome::Drop(DropKind::NotAQuery)
    );
    assert_eq!(servfail(&r), None);
    assert_eq!(servfail(&[0; 5]), None);
}

fn header_only(bytes: &[u8], id: u16, rcode: u8, opcode: u8) {
    assert_eq!(bytes.len(), HEADER_LEN, "{bytes:?}");
    assert_eq!(&bytes[..2], &id.to_be_bytes());
    assert_eq!(bytes[2], 0x80 | (opcode << 3) | 0x01); // QR, OPCODE, RD
    assert_eq!(bytes[3], 0x80 | rcode); // RA, RCODE
    assert_eq!(&bytes[4..], &[0; 8]);
}

#[test]
fn formerr_for_garbage_question() {
    // id 0xBEEF, RD, QDCOUNT 1, then a label that runs past the end.
    let mut q = vec![0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    header_only(&reply(answer(&q, &zone(), SUBNET, 0)), 0xBEEF, 1, 0);
    q.extend_from_slice(&[0x3F, b'a', b'b']);
    header_only(&reply(answer(&q, &zone(), SUBNET, 0)), 0xBEEF, 1, 0);
    // Reserved label type 0b10.
    let mut bad = q[..HEADER_LEN].to_vec();
    bad.extend_from_slice(&[0x80, 0, 0, 1, 0, 1]);
    header_only(&reply(answer(&bad, &zone(), SUBNET, 0)), 0xBEEF, 1, 0);
    // Compression pointer to itself (a loop) and into the header.
    for target in [12u8, 2] {
        let mut bad = q[..HEADER_LEN].to_vec();
        bad.extend_from_slice(&[0xC0, target, 0, 1, 0, 1]);
        header_only(&reply(answer(&bad, &zone(), SUBNET, 0)), 0xBEEF, 1, 0);
    }
    // Name without QTYPE/QCLASS.
    let mut bad = q[..HEADER_LEN].to_vec();
    bad.extend_from_slice(&[3, b'w', b'e', b'b', 0, 0, 1]);
    header_only(&reply(answer(&bad, &zone(), SUBNET, 0)), 0xBEEF, 1, 0);
    assert_eq!(servfail(&bad), None);
    // Name longer than 255 octets.
    let mut bad = q[..HEADER_LEN].to_vec();
    for _ in 0..5 {
        bad.push(63);
        bad.extend_from_slice(&[b'a'; 63]);
    }
    bad.extend_from_slice(&[0, 0, 1, 0, 1]);
    header_only(&reply(answer(&bad, &zone(), SUBNET, 0)), 0xBEEF, 1, 0);
}

#[test]
fn formerr_for_two_questions() {
    let mut p = Packet::new_query(0x4242);
    p.set_flags(PacketFlag::RECURSION_DESIRED);
    for name in ["web", "db"] {
        p.questions.push(Question::new(
            Name::new_unchecked(name),
            TYPE::A.into(),
            CLASS::IN.into(),
            false,
        ));
    }
    let q = p.build_bytes_vec().unwrap();
    header_only(&reply(answer(&q, &zone(), SUBNET, 0)), 0x4242, 1, 0);
    // QDCOUNT 0 as well.
    let q = [0x42, 0x42, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
    header_only(&reply(answer(&q, &zone(), SUBNET, 0)), 0x4242, 1, 0);
}

#[test]
fn notimp_for_other_opcodes() {
    let mut q = query_bytes(0x0102, "web", TYPE::A);
    q[2] |= 2 << 3; // OPCODE 2 (STATUS)
    let r = reply(answer(&q, &zone(), SUBNET, 0));
    assert_eq!(&r[..2], &[0x01, 0x02]);
    assert_eq!(r[2], 0x80 | (2 << 3) | 0x01);
    assert_eq!(r[3], 0x80 | 4);
    assert_eq!(&r[4..6], &[0, 1]);
    assert_eq!(&r[HEADER_LEN..], &q[HEADER_LEN..]);
    // Unassigned opcode 3, no question: header only, opcode echoed as is.
    let q = [0x01, 0x02, 0x19, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
    header_only(&reply(answer(&q, &zone(), SUBNET, 0)), 0x0102, 4, 3);
}

#[test]
fn z_bit_and_extra_sections_are_tolerated() {
    let mut q = query_bytes(11, "web", TYPE::A);
    q[3] |= 0x40; // Z
    let r = reply(answer(&q, &zone(), SUBNET, 0));
    assert_eq!(r[3] & 0x70, 0);
    assert_eq!(
        addrs(&Packet::parse(&r).unwrap()),
        [Ipv4Addr::new(10, 1, 0, 2)]
    );
    // EDNS OPT record in the additional section (RFC 6891): ignored, no OPT in the reply.
    let mut p = Packet::new_query(12);
    p.questions.push(Question::new(
        Name::new_unchecked("web"),
        TYPE::A.into(),
        CLASS::IN.into(),
        false,
    ));
    *p.opt_mut() = Some(simple_dns::rdata::OPT {
        opt_codes: vec![],
        udp_packet_size: 1232,
        version: 0,
    });
    let q = p.build_bytes_vec().unwrap();
    let r = reply(answer(&q, &zone(), SUBNET, 0));
    assert_eq!(&r[10..12], &[0, 0]);
    assert_eq!(addrs(&Packet::parse(&r).unwrap()).len(), 1);
}

#[test]
fn raw_question_and_compression_pointers() {
    // A hand-written query for "web" (RD set) is answered.
    let q = [
        0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e', b'b', 0, 0, 1, 0, 1,
    ];
    let r = reply(answer(&q, &zone(), SUBNET, 0));
    assert_eq!(addrs(&check_local(&r, &q, RCODE::NoError)).len(), 1);
    // The answer's owner name is compressed to a pointer to the question (RFC 1035 §4.1.4).
    assert_eq!(&r[q.len()..q.len() + 2], &[0xC0, 12]);
    // The only question has no earlier name to point to: "web" + pointer back to itself
    // would be an endless name, stopped by the 255-octet limit -> FORMERR.
    let q = [
        0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e', b'b', 0xC0, 12, 0, 1, 0, 1,
    ];
    header_only(&reply(answer(&q, &zone(), SUBNET, 0)), 9, 1, 0);
}

#[test]
fn too_many_addresses_truncate() {
    let mut z = Zone::new();
    for i in 0..100u8 {
        z.add("big", Ipv4Addr::new(10, 1, 1, i));
    }
    let q = query_bytes(13, "big", TYPE::A);
    let r = reply(answer(&q, &z, (Ipv4Addr::new(10, 1, 0, 0), 16), 5));
    assert!(r.len() <= MAX_UDP_REPLY);
    let p = Packet::parse(&r).unwrap();
    assert!(p.has_flags(PacketFlag::TRUNCATION));
    let got = addrs(&p);
    assert!(got.len() > 20);
    assert_eq!(got[0], Ipv4Addr::new(10, 1, 1, 5));
}

#[test]
fn zone_basics() {
    let mut z = Zone::new();
    z.add("a", Ipv4Addr::new(10, 0, 0, 1));
    z.add("A.", Ipv4Addr::new(10, 0, 0, 1)); // duplicate
    z.add("alias", Ipv4Addr::new(10, 0, 0, 1));
    z.add("", Ipv4Addr::new(10, 0, 0, 9));
    z.add(".", Ipv4Addr::new(10, 0, 0, 9));
    z.add("a..b", Ipv4Addr::new(10, 0, 0, 9));
    z.add(&"x".repeat(64), Ipv4Addr::new(10, 0, 0, 9));
    assert_eq!(z.lookup("a"), [Ipv4Addr::new(10, 0, 0, 1)]);
    assert_eq!(z.reverse(Ipv4Addr::new(10, 0, 0, 1)).as_deref(), Some("a"));
    assert_eq!(z.reverse(Ipv4Addr::new(10, 0, 0, 9)), None);
    assert!(z.lookup("nope").is_empty());
    assert!(z.lookup("").is_empty());
}

#[test]
fn servfail_keeps_id_and_question() {
    let q = query_bytes(0xABCD, "example.com", TYPE::AAAA);
    let r = servfail(&q).unwrap();
    assert_eq!(&r[..2], &[0xAB, 0xCD]);
    assert_eq!(&r[HEADER_LEN..], &q[HEADER_LEN..]);
    let p = Packet::parse(&r).unwrap();
    assert_eq!(p.rcode(), RCODE::ServerFailure);
    assert!(p.has_flags(PacketFlag::RESPONSE | PacketFlag::RECURSION_DESIRED));
    assert!(!p.has_flags(PacketFlag::AUTHORITATIVE_ANSWER));
    assert_eq!(p.questions.len(), 1);
    assert_eq!(p.questions[0].qname.to_string(), "example.com");
    assert_eq!(p.questions[0].qtype, TYPE::AAAA.into());
    assert!(p.answers.is_empty());
}

#[test]
fn truncated_keeps_question_and_rcode_and_sets_tc() {
    let q = query_bytes(0x1234, "big.example", TYPE::TXT);
    let mut upstream = vec![0x12, 0x34, 0x81, 0x83];
    upstream.extend_from_slice(&[0; 2000]);
    let r = truncated(&q, &upstream).unwrap();
    let p = Packet::parse(&r).unwrap();
    assert!(p.has_flags(PacketFlag::TRUNCATION | PacketFlag::RESPONSE));
    assert_eq!(p.rcode(), RCODE::NameError);
    assert_eq!(p.questions.len(), 1);
    assert!(p.answers.is_empty());
    assert!(truncated(&[1, 2, 3], &upstream).is_none());
}

#[test]
fn resolv_conf() {
    let text = "\
# generated by NetworkManager
; another comment
search example.com lan
options edns0 trust-ad ndots:2
nameserver 127.0.0.53
nameserver   1.1.1.1   # trailing words are ignored
nameserver 2606:4700:4700::1111
nameserver fe80::1%2
nameserver fe80::1%eth0
nameserver not-an-address
nameserver 1.2.3.4:53
nameserver
nameservers 9.9.9.9
#nameserver 8.8.8.8
nameserver 1.1.1.1
  nameserver 8.8.4.4
";
    let got = upstreams_from_resolv_conf(text);
    let want: Vec<SocketAddr> = vec![
        "127.0.0.53:53".parse().unwrap(),
        "1.1.1.1:53".parse().unwrap(),
        "[2606:4700:4700::1111]:53".parse().unwrap(),
        SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, 2)),
        "8.8.4.4:53".parse().unwrap(),
    ];
    assert_eq!(got, want);
    assert!(upstreams_from_resolv_conf("").is_empty());
}

proptest::proptest! {
    /// A query of arbitrary bytes (or a real one with bytes overwritten) gets an answer,
    /// a forward or a drop, never a panic; every answer is a response to that query's ID,
    /// and so are the SERVFAIL and truncation builders' (RFC 1035 §4.1.1).
    #[test]
    fn hostile_queries_get_answers_that_match_them(
        garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
        pokes in proptest::collection::vec((0usize..40, proptest::prelude::any::<u8>()), 0..6),
        rotation in proptest::prelude::any::<usize>(),
    ) {
        let zone = zone();
        let subnet = (Ipv4Addr::new(10, 1, 0, 0), 24);
        let mut q = query_bytes(0x1234, "api", TYPE::A);
        for (at, byte) in pokes {
            if at < q.len() {
                q[at] = byte;
            }
        }
        for query in [&garbage, &q] {
            match answer(query, &zone, subnet, rotation) {
                Outcome::Reply(r) => {
                    proptest::prop_assert!(r.len() >= HEADER_LEN);
                    proptest::prop_assert_eq!(&r[..2], &query[..2], "the query's ID");
                    proptest::prop_assert!(r[2] & 0x80 != 0, "QR set: a response");
                }
                Outcome::Forward => {
                    // Only a query with exactly one question is forwarded.
                    proptest::prop_assert!(query.len() >= HEADER_LEN && query[2] & 0x80 == 0);
                    proptest::prop_assert_eq!(&query[4..6], &[0u8, 1][..]);
                }
                Outcome::Drop(DropKind::Truncated) => {
                    proptest::prop_assert!(query.len() < HEADER_LEN)
                }
                Outcome::Drop(DropKind::NotAQuery) => {
                    proptest::prop_assert!(query[2] & 0x80 != 0)
                }
            }
        }
        for query in [&garbage, &q] {
            if let Some(r) = servfail(query) {
                proptest::prop_assert_eq!(&r[..2], &query[..2]);
                proptest::prop_assert_eq!(r[3] & 0x0f, 2, "RCODE SERVFAIL");
            }
            if let Some(r) = truncated(query, &garbage) {
                proptest::prop_assert_eq!(&r[..2], &query[..2]);
                proptest::prop_assert!(r[2] & 0x02 != 0, "TC set");
            }
        }
    }
}
