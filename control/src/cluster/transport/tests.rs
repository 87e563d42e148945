use super::*;
use crate::cluster::replay::WINDOW;
use std::time::Duration;

fn key(byte: u8) -> ClusterKey {
    ClusterKey::parse(&format!("{byte:02x}").repeat(32), "k").unwrap()
}

fn outbound(key: &ClusterKey, name: &str, incarnation: u64) -> Outbound {
    Outbound::new(key, name, incarnation)
}

fn inbound(key: &ClusterKey) -> Inbound {
    Inbound::new(key, "me")
}

#[test]
fn sealed_datagrams_open_only_under_the_same_key_and_hide_the_content() {
    let k1 = ClusterKey::parse(&ClusterKey::generate_line().unwrap(), "k").unwrap();
    let k2 = ClusterKey::parse(&ClusterKey::generate_line().unwrap(), "k").unwrap();
    let plain = b"node-a 10.0.0.1:4789 endpoints web db";
    let sealed = outbound(&k1, "node-a", 1).seal(plain).unwrap();
    assert!(
        !sealed.windows(6).any(|w| w == b"node-a"),
        "the name is readable on the wire"
    );
    assert!(sealed.starts_with(b"WFG2"));
    assert_eq!(inbound(&k1).accept(&sealed).as_deref(), Ok(&plain[..]));
    assert_eq!(inbound(&k2).accept(&sealed), Err(Dropped::Auth));
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(inbound(&k1).accept(&tampered), Err(Dropped::Auth));
    assert_eq!(inbound(&k1).accept(&sealed[..20]), Err(Dropped::Auth));
    assert_eq!(inbound(&k1).accept(b"garbage"), Err(Dropped::Auth));
    assert_eq!(inbound(&k1).accept(b""), Err(Dropped::Auth));
    // Two seals of one message differ (fresh nonces, and the counter).
    let o = outbound(&k1, "node-a", 1);
    assert_ne!(o.seal(plain).unwrap(), o.seal(plain).unwrap());
}

#[test]
fn a_datagram_is_accepted_once_and_a_restart_starts_a_new_window() {
    let k = key(9);
    let mut rx = inbound(&k);
    let boot1 = outbound(&k, "a", 100);
    let d1 = boot1.seal(b"one").unwrap();
    let d2 = boot1.seal(b"two").unwrap();
    assert_eq!(rx.accept(&d2).as_deref(), Ok(&b"two"[..]));
    assert_eq!(rx.accept(&d1).as_deref(), Ok(&b"one"[..]), "reordered");
    assert_eq!(rx.accept(&d1), Err(Dropped::Replayed));
    assert_eq!(rx.accept(&d2), Err(Dropped::Replayed));
    // Another node with the same counters has its own window.
    let b = outbound(&k, "b", 100);
    assert_eq!(
        rx.accept(&b.seal(b"b1").unwrap()).as_deref(),
        Ok(&b"b1"[..])
    );
    // "a" restarts (a newer incarnation, its counter from 1 again)...
    let boot2 = outbound(&k, "a", 200);
    assert_eq!(
        rx.accept(&boot2.seal(b"again").unwrap()).as_deref(),
        Ok(&b"again"[..])
    );
    // ...and what it sent in its boot before is refused now, even never seen.
    let d3 = boot1.seal(b"three").unwrap();
    assert_eq!(rx.accept(&d3), Err(Dropped::Stale));
    // A datagram of this node itself, reflected back.
    let own = outbound(&k, "me", 100).seal(b"mine").unwrap();
    assert_eq!(rx.accept(&own), Err(Dropped::Replayed));
}

#[test]
fn an_old_datagram_after_the_window_moved_on_is_refused() {
    let k = key(9);
    let mut rx = inbound(&k);
    let tx = outbound(&k, "a", 1);
    let old = tx.seal(b"old").unwrap();
    for _ in 0..WINDOW {
        tx.seal(b"never delivered").unwrap();
    }
    assert_eq!(
        rx.accept(&tx.seal(b"new").unwrap()).as_deref(),
        Ok(&b"new"[..])
    );
    assert_eq!(rx.accept(&old), Err(Dropped::Stale));
}

#[test]
fn old_format_and_bad_headers_are_told_apart() {
    let k = key(9);
    let mut rx = inbound(&k);
    let mut old = b"WFG1".to_vec();
    old.extend([0u8; 40]);
    assert_eq!(rx.accept(&old), Err(Dropped::OldFormat));
    // Sealed under the key, but the header is cut short or its name is not UTF-8.
    let sealer = Sealer::new(&k);
    for plain in [
        &b""[..],
        &[0, 5, b'a'][..],
        &[0, 1, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1][..],
        &[0, 1, b'a', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0][..],
    ] {
        let d = sealer.seal(plain).unwrap();
        assert_eq!(rx.accept(&d), Err(Dropped::Malformed), "{plain:?}");
    }
    // Counter 0 is never sent.
    let mut plain = Vec::new();
    Header {
        sender: "a",
        incarnation: 1,
        counter: 0,
    }
    .write(&mut plain);
    assert_eq!(
        rx.accept(&sealer.seal(&plain).unwrap()),
        Err(Dropped::Stale)
    );
}

proptest::proptest! {
    /// Whatever arrives, opening and reading a header never panics.
    #[test]
    fn arbitrary_datagrams_and_headers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let k = key(3);
        let mut rx = inbound(&k);
        let _ = rx.accept(&bytes);
        let _ = Header::read(&bytes);
        let mut wfg2 = b"WFG2".to_vec();
        wfg2.extend(&bytes);
        let _ = rx.accept(&wfg2);
        let sealed = Sealer::new(&k).seal(&bytes).unwrap();
        let _ = rx.accept(&sealed);
    }
}

// ---------------------------------------------------------------------------
// the sockets, on the loopback
// ---------------------------------------------------------------------------

/// A chitchat SYN whose cluster id is `tag`: a message the test can recognise.
fn syn(tag: &str) -> ChitchatMessage {
    let mut b = ChitchatMessage::BadCluster.serialize_to_vec();
    b.truncate(3); // chitchat's magic number and protocol version
    b.push(0); // SYN
    b.extend(0u16.to_le_bytes()); // an empty digest
    b.extend((tag.len() as u16).to_le_bytes());
    b.extend(tag.as_bytes());
    ChitchatMessage::deserialize(&mut b.as_slice()).unwrap()
}

fn tag_of(msg: &ChitchatMessage) -> String {
    match msg {
        ChitchatMessage::Syn { cluster_id, .. } => cluster_id.clone(),
        other => format!("{other:?}"),
    }
}

/// A free UDP address on the loopback.
fn free_addr() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// What `sender` puts on the wire for a SYN tagged `tag`, captured by `wire`.
async fn capture(sender: &mut Box<dyn Socket>, wire: &tokio::net::UdpSocket, tag: &str) -> Vec<u8> {
    sender
        .send(wire.local_addr().unwrap(), syn(tag))
        .await
        .unwrap();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let (n, _) = wire.recv_from(&mut buf).await.unwrap();
    buf.truncate(n);
    buf
}

/// The tag of the next message `receiver` accepts (at most 5 s).
async fn next_tag(receiver: &mut Box<dyn Socket>) -> String {
    let (_, msg) = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
        .await
        .expect("nothing accepted within 5 s")
        .unwrap();
    tag_of(&msg)
}

/// A sender and a receiver of the sealed transport on the loopback, the receiver's
/// counters and address, and a "wire" socket that captures and replays datagrams.
async fn sender_receiver() -> (
    Box<dyn Socket>,
    Box<dyn Socket>,
    Arc<GossipCounters>,
    SocketAddr,
    tokio::net::UdpSocket,
) {
    let k = key(9);
    let rx_counters = Arc::new(GossipCounters::default());
    let sender_side = SealedTransport::new(k.clone(), "sender", 1, Default::default());
    let receiver_side = SealedTransport::new(k, "receiver", 1, Arc::clone(&rx_counters));
    let sender = sender_side.open(free_addr()).await.unwrap();
    let to = free_addr();
    let receiver = receiver_side.open(to).await.unwrap();
    let wire = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    (sender, receiver, rx_counters, to, wire)
}

#[tokio::test]
async fn a_captured_datagram_delivered_twice_is_accepted_once() {
    let (mut sender, mut receiver, counters, to, wire) = sender_receiver().await;
    let first = capture(&mut sender, &wire, "first").await;
    let second = capture(&mut sender, &wire, "second").await;
    for d in [&first, &first, &second] {
        wire.send_to(d, to).await.unwrap();
    }
    assert_eq!(next_tag(&mut receiver).await, "first");
    assert_eq!(
        next_tag(&mut receiver).await,
        "second",
        "the replayed datagram was accepted again"
    );
    assert_eq!(counters.replayed.load(Ordering::Relaxed), 1);
    assert_eq!(counters.rx.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn a_datagram_older_than_the_window_is_refused() {
    let (mut sender, mut receiver, counters, to, wire) = sender_receiver().await;
    let old = capture(&mut sender, &wire, "old").await;
    for i in 0..5000 {
        capture(&mut sender, &wire, &format!("filler{i}")).await;
    }
    let newest = capture(&mut sender, &wire, "newest").await;
    let fresh = capture(&mut sender, &wire, "fresh").await;
    for d in [&newest, &old, &fresh] {
        wire.send_to(d, to).await.unwrap();
    }
    assert_eq!(next_tag(&mut receiver).await, "newest");
    assert_eq!(
        next_tag(&mut receiver).await,
        "fresh",
        "a datagram older than the window was accepted"
    );
    assert_eq!(counters.stale.load(Ordering::Relaxed), 1);
}

#[test]
fn a_cut_off_node_is_dropped_unread_and_others_are_not() {
    let k = key(5);
    let cut = Arc::new(CutOff::default());
    let mut rx = Inbound::new(&k, "me").cutting_off(Arc::clone(&cut));
    let (a, b) = (outbound(&k, "a", 1), outbound(&k, "b", 1));
    assert!(rx.accept(&a.seal(b"1").unwrap()).is_ok());
    assert!(cut.insert("a") && !cut.insert("a"));
    assert_eq!(rx.accept(&a.seal(b"2").unwrap()), Err(Dropped::CutOff));
    assert!(rx.accept(&b.seal(b"1").unwrap()).is_ok());
    // Forgotten by the cluster: it may join anew.
    cut.retain(|n| n != "a");
    assert!(rx.accept(&a.seal(b"3").unwrap()).is_ok());
}
