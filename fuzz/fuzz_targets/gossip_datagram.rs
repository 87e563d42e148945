//! Sealed gossip datagrams (`weft_control::cluster::transport`): what the gossip socket does
//! with one datagram, on hostile input.
//!
//! Input: `[mode, rest...]`. Even mode: `rest` is a datagram off the wire, read by a node;
//! it must be refused (a forger has no key) and nothing may panic. Odd mode: `rest` is
//! `[name length, name, message...]` sealed by a node holding the key (so the opener, the
//! header reader, the replay window and chitchat's decoder all see hostile bytes); it opens,
//! is refused as a replay the second time, and does not open under another key.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use weft_control::cluster::gossip::ClusterKey;
use weft_control::cluster::transport::{Dropped, Inbound, Outbound};

fn key(byte: u8) -> ClusterKey {
    ClusterKey::parse(&format!("{byte:02x}").repeat(32), "fuzz").expect("a valid key")
}

fn keys() -> &'static (ClusterKey, ClusterKey) {
    static KEYS: OnceLock<(ClusterKey, ClusterKey)> = OnceLock::new();
    KEYS.get_or_init(|| (key(0x5a), key(0xa5)))
}

fuzz_target!(|data: &[u8]| {
    let (ours, theirs) = keys();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut node = Inbound::new(ours, "me");
    if mode % 2 == 0 {
        // Without the key, a datagram cannot pass the AEAD (RFC 8439 §2.8).
        assert!(node.message(rest).is_err(), "a forged datagram was accepted");
        return;
    }
    let Some((&len, rest)) = rest.split_first() else {
        return;
    };
    let len = usize::from(len).min(rest.len());
    let (name, message) = rest.split_at(len);
    let name = String::from_utf8_lossy(name);
    let sender = Outbound::new(ours, &name, u64::from(mode));
    let datagram = sender.seal(message).expect("sealing works");
    let first = node.message(&datagram);
    if name == "me" {
        assert!(matches!(first, Err(Dropped::Replayed)), "own datagram: {first:?}");
    } else {
        assert!(
            matches!(first, Ok(_) | Err(Dropped::Malformed)),
            "a datagram sealed with the key: {first:?}"
        );
    }
    assert!(matches!(node.message(&datagram), Err(Dropped::Replayed)));
    let mut stranger = Inbound::new(theirs, "other");
    assert!(matches!(stranger.message(&datagram), Err(Dropped::Auth)));
});
