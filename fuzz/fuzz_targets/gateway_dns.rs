//! The gateway's DNS: `weft_gateway::dns::{answer, servfail, truncated}` on a hostile query
//! (and a hostile upstream answer), and the DNS-over-TCP framer `weft_gateway::dns_tcp::
//! DnsStream` driven by a hostile client, checked against a model of its byte stream.
//!
//! Input: `[rotation, split, ops...]`. The first `split` bytes of the ops part are first
//! tried as one UDP query, the rest as the upstream answer for `truncated`. Then the whole
//! ops part drives a `DnsStream`: each op byte's low 3 bits pick receive (the next
//! `1 + byte` bytes, up to 255+1, or a burst of 64 KiB of a repeated byte), next_query
//! (answered from the zone), answer (with a length from the input), transmit (with a send
//! room from the input) or a clock step.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use weft_gateway::dns::{self, Outcome, Zone};
use weft_gateway::dns_tcp::{AnswerError, DnsStream, DNS_TCP_BUFFER};
use weft_gateway::Timestamp;

const SUBNET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 0, 0, 0), 24);

fn zone() -> &'static Zone {
    static ZONE: OnceLock<Zone> = OnceLock::new();
    ZONE.get_or_init(|| {
        let mut z = Zone::new();
        z.add("web", Ipv4Addr::new(10, 0, 0, 2));
        z.add("db", Ipv4Addr::new(10, 0, 0, 3));
        z.add("web", Ipv4Addr::new(10, 0, 0, 4));
        z.add("Cache.Local.", Ipv4Addr::new(10, 0, 0, 5));
        z.add("alias", Ipv4Addr::new(10, 0, 0, 3));
        z
    })
}

/// Checks a response against the query it answers: same ID, QR set.
fn check_reply(query: &[u8], reply: &[u8]) {
    assert!(
        reply.len() >= dns::HEADER_LEN,
        "a {}-byte reply",
        reply.len()
    );
    assert_eq!(reply[..2], query[..2], "reply with another ID");
    assert_ne!(reply[2] & 0x80, 0, "reply without QR");
    // A reply holds at most the one question asked.
    assert!(
        u16::from_be_bytes([reply[4], reply[5]]) <= 1,
        "reply with several questions"
    );
}

/// `answer` on one query, with the replies it documents checked.
fn answer_udp(query: &[u8], rotation: usize) -> Option<Vec<u8>> {
    match dns::answer(query, zone(), SUBNET, rotation) {
        Outcome::Reply(reply) => {
            check_reply(query, &reply);
            Some(reply)
        }
        Outcome::Forward => {
            assert!(query.len() >= dns::HEADER_LEN);
            None
        }
        Outcome::Drop(_) => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let [rotation, split, ops @ ..] = data else {
        return;
    };
    let rotation = usize::from(*rotation);

    // UDP: the query alone, and with the rest as the upstream's answer.
    let (query, upstream) = ops.split_at(usize::from(*split).min(ops.len()));
    let reply = answer_udp(query, rotation);
    answer_udp(ops, rotation);
    if let Some(s) = dns::servfail(query) {
        check_reply(query, &s);
        assert_eq!(s[3] & 0x0f, 2, "SERVFAIL without RCODE 2");
    }
    for answer in [upstream, reply.as_deref().unwrap_or(&[])] {
        if let Some(t) = dns::truncated(query, answer) {
            check_reply(query, &t);
            assert_ne!(t[2] & 0x02, 0, "truncated without TC");
            assert!(
                t.len() <= query.len().max(dns::HEADER_LEN),
                "a truncated reply larger than its query"
            );
        }
    }

    stream(ops, rotation);
});

/// A `DnsStream` driven by `ops`, checked against the bytes it was given.
fn stream(mut ops: &[u8], mut rotation: usize) {
    let mut now = Timestamp::from_millis(0);
    let mut s = DnsStream::new(now);
    // Everything the stream took, and where the next message starts in it.
    let mut taken: Vec<u8> = Vec::new();
    let mut at = 0;
    // The answer given and not yet transmitted, with its length prefix.
    let mut pending: Option<Vec<u8>> = None;
    let mut last_query: Option<Vec<u8>> = None;
    let mut steps = 0;
    while let [op, rest @ ..] = ops {
        ops = rest;
        steps += 1;
        if steps > 256 {
            break;
        }
        match op & 7 {
            0 | 1 => {
                let n = (usize::from(op >> 3) + 1).min(ops.len());
                let (bytes, rest) = ops.split_at(n);
                ops = rest;
                let room = s.room();
                let took = s.receive(bytes, now);
                assert_eq!(took, bytes.len().min(room));
                taken.extend_from_slice(&bytes[..took]);
            }
            2 => {
                // A client that floods: 64 KiB of one byte.
                let Some((&b, rest)) = ops.split_first() else {
                    break;
                };
                ops = rest;
                let bytes = vec![b; 64 * 1024];
                let room = s.room();
                let took = s.receive(&bytes, now);
                assert_eq!(took, bytes.len().min(room));
                taken.extend_from_slice(&bytes[..took]);
            }
            3 => {
                let was_waiting = s.is_waiting();
                let q = s.next_query();
                // What the model says the next message is.
                let expected = taken.get(at..at + 2).and_then(|l| {
                    let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
                    taken.get(at + 2..at + 2 + len)
                });
                if was_waiting {
                    assert!(q.is_none(), "a query came out while one was being answered");
                } else {
                    assert_eq!(q.as_deref(), expected, "the framer and the model disagree");
                }
                if let Some(q) = q {
                    at += 2 + q.len();
                    assert!(s.is_waiting());
                    last_query = Some(q);
                }
            }
            4 => {
                // The answer: the zone's, or one of a length the input picks (0 and over
                // 65535 included).
                let Some((&b, rest)) = ops.split_first() else {
                    break;
                };
                ops = rest;
                rotation = rotation.wrapping_add(1);
                let zone_answer = last_query.as_deref().and_then(|q| answer_udp(q, rotation));
                let answer = match (b & 3, zone_answer) {
                    (0, Some(a)) => a,
                    (1, _) => Vec::new(),
                    (2, _) => vec![b; 65536],
                    _ => vec![b; usize::from(b) * 257],
                };
                let was = (s.is_waiting(), pending.is_some());
                let r = s.answer(&answer, now);
                match was {
                    (true, false) => {
                        if answer.is_empty() || answer.len() > 65535 {
                            assert_eq!(r, Err(AnswerError::BadLength));
                            assert!(!s.is_waiting());
                        } else {
                            assert_eq!(r, Ok(()));
                            let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
                            framed.extend_from_slice(&answer);
                            pending = Some(framed);
                        }
                    }
                    _ => assert_eq!(r, Err(AnswerError::NotWaiting)),
                }
            }
            5 => {
                let Some((&b, rest)) = ops.split_first() else {
                    break;
                };
                ops = rest;
                let room = usize::from(b) * 300;
                let sent = s.transmit(room, now);
                match (&pending, sent) {
                    (Some(p), Some(sent)) => {
                        assert!(sent.len() <= room);
                        assert_eq!(&sent, p, "transmitted another answer");
                        pending = None;
                        assert!(!s.is_waiting());
                    }
                    (Some(p), None) => assert!(p.len() > room, "an answer that fits was held"),
                    (None, Some(_)) => panic!("transmitted an answer never given"),
                    (None, None) => {}
                }
            }
            _ => {
                now = Timestamp::from_millis(now.as_millis() + u64::from(op >> 3) * 1000);
                let _ = s.timed_out(now);
            }
        }
        assert_eq!(
            s.room() + (taken.len() - at),
            DNS_TCP_BUFFER,
            "room and buffered bytes disagree"
        );
    }
}
