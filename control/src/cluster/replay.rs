//! Replay protection for the gossip: every sealed datagram carries, inside its authenticated
//! part, the sender's node name, its incarnation (the boot: chitchat's generation) and a
//! counter the sender increments for every datagram. A receiver keeps, per sender, the newest
//! incarnation and a sliding window over the counters of that incarnation, and accepts a
//! counter only once: the anti-replay window of IPsec (RFC 4303 §3.4.3) with the bitmap
//! layout of RFC 6479 §2 (a ring of 64-bit blocks; advancing the window clears whole blocks
//! and shifts nothing). Pure: no I/O, no clock.
//!
//! What it does not cover: a receiver that restarts forgets every window, so a datagram
//! captured before could be replayed to it once per restart; chitchat itself discards state
//! older than what it holds (per-key versions, heartbeats), so such a replay carries nothing
//! new.

use std::collections::HashMap;

/// Blocks of 64 counters in a window's ring (RFC 6479 §2: one more than the window needs, so
/// that advancing never clears a block still inside the window).
const BLOCKS: usize = 32;
/// Counters a window covers behind the newest: a datagram that many older than the newest
/// accepted is refused as stale. A node sends a few datagrams per gossip round (500 ms) to
/// all its peers together, so reordering on the underlay stays far inside it.
pub const WINDOW: u64 = (BLOCKS as u64 - 1) * 64;
/// Senders remembered; beyond that the one heard from longest ago is forgotten. Only
/// datagrams that opened under the cluster key create an entry.
pub const MAX_SENDERS: usize = 1024;

/// What became of a datagram's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Never seen: accept it.
    Fresh,
    /// Seen before inside the window: a replay.
    Replayed,
    /// Behind the window, of an older incarnation of the sender, or counter 0 (never sent).
    Stale,
}

/// One sender's window over the counters of one incarnation.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// The newest counter accepted (0: none yet).
    top: u64,
    ring: [u64; BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            top: 0,
            ring: [0; BLOCKS],
        }
    }
}

impl ReplayWindow {
    /// Checks `counter` and, if fresh, marks it seen (call only for an authenticated
    /// datagram: a forged one must not move the window).
    pub fn check_and_update(&mut self, counter: u64) -> Freshness {
        if counter == 0 {
            return Freshness::Stale;
        }
        let block = counter / 64;
        if counter > self.top {
            // Clear the blocks the window moves over (at most the whole ring).
            let top_block = self.top / 64;
            let advance = (block - top_block).min(BLOCKS as u64);
            for i in 1..=advance {
                self.ring[((top_block + i) % BLOCKS as u64) as usize] = 0;
            }
            self.top = counter;
        } else if self.top - counter >= WINDOW {
            return Freshness::Stale;
        }
        let slot = &mut self.ring[(block % BLOCKS as u64) as usize];
        let bit = 1u64 << (counter % 64);
        if *slot & bit != 0 {
            return Freshness::Replayed;
        }
        *slot |= bit;
        Freshness::Fresh
    }
}

#[derive(Debug)]
struct Sender {
    incarnation: u64,
    window: ReplayWindow,
    /// When it was last heard from, in datagrams this guard checked.
    last_heard: u64,
}

/// The windows of every sender heard from, at most [`MAX_SENDERS`].
#[derive(Debug, Default)]
pub struct ReplayGuard {
    senders: HashMap<String, Sender>,
    checked: u64,
}

impl ReplayGuard {
    /// Checks a datagram of `sender`'s `incarnation` with `counter` (authenticated already)
    /// and remembers it if fresh. A newer incarnation starts a new window; an older one is
    /// stale.
    pub fn check(&mut self, sender: &str, incarnation: u64, counter: u64) -> Freshness {
        self.checked += 1;
        let now = self.checked;
        if let Some(s) = self.senders.get_mut(sender) {
            if incarnation < s.incarnation {
                return Freshness::Stale;
            }
            if incarnation > s.incarnation {
                s.incarnation = incarnation;
                s.window = ReplayWindow::default();
            }
            let verdict = s.window.check_and_update(counter);
            if verdict == Freshness::Fresh {
                s.last_heard = now;
            }
            return verdict;
        }
        if self.senders.len() >= MAX_SENDERS {
            let oldest = self
                .senders
                .iter()
                .min_by_key(|(_, s)| s.last_heard)
                .map(|(name, _)| name.clone());
            if let Some(name) = oldest {
                self.senders.remove(&name);
            }
        }
        let mut window = ReplayWindow::default();
        let verdict = window.check_and_update(counter);
        if verdict == Freshness::Fresh {
            self.senders.insert(
                sender.to_string(),
                Sender {
                    incarnation,
                    window,
                    last_heard: now,
                },
            );
        }
        verdict
    }

    /// How many senders it remembers.
    #[cfg(test)]
    pub fn senders(&self) -> usize {
        self.senders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Freshness::*;

    #[test]
    fn each_counter_is_accepted_once_in_any_order_inside_the_window() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.check_and_update(0), Stale, "0 is never sent");
        for c in [5, 3, 4, 1, 2, 9, 6] {
            assert_eq!(w.check_and_update(c), Fresh, "{c}");
        }
        for c in [5, 3, 4, 1, 2, 9, 6] {
            assert_eq!(w.check_and_update(c), Replayed, "{c} again");
        }
        assert_eq!(w.check_and_update(7), Fresh, "a gap is filled later");
        assert_eq!(w.check_and_update(8), Fresh);
    }

    #[test]
    fn the_window_slides_and_what_falls_behind_is_stale() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.check_and_update(1), Fresh);
        assert_eq!(w.check_and_update(10), Fresh);
        // Jump far ahead: 10 and everything before the new window is behind it.
        let top = 10 + 5 * WINDOW;
        assert_eq!(w.check_and_update(top), Fresh);
        assert_eq!(w.check_and_update(10), Stale);
        assert_eq!(w.check_and_update(top - WINDOW), Stale, "just behind");
        assert_eq!(w.check_and_update(top - WINDOW + 1), Fresh, "just inside");
        assert_eq!(w.check_and_update(top - WINDOW + 1), Replayed);
        assert_eq!(w.check_and_update(top), Replayed);
        // Step by step across several block boundaries: the blocks the window moves into
        // are cleared, the ones still inside are kept.
        for c in top + 1..top + 3 * 64 {
            assert_eq!(w.check_and_update(c), Fresh, "{c}");
        }
        let newest = top + 3 * 64 - 1;
        for c in newest - WINDOW + 1..=newest {
            let v = w.check_and_update(c);
            assert!(v == Replayed || v == Fresh, "{c}: {v:?}");
            assert_eq!(w.check_and_update(c), Replayed, "{c} twice");
        }
        assert_eq!(
            w.check_and_update(u64::MAX),
            Fresh,
            "no overflow at the end"
        );
        assert_eq!(w.check_and_update(u64::MAX), Replayed);
    }

    #[test]
    fn a_new_incarnation_starts_over_and_an_old_one_is_stale() {
        let mut g = ReplayGuard::default();
        assert_eq!(g.check("a", 100, 1), Fresh);
        assert_eq!(g.check("a", 100, 1), Replayed);
        assert_eq!(
            g.check("b", 100, 1),
            Fresh,
            "another sender has its own window"
        );
        // "a" restarts: its counter starts over under a newer incarnation.
        assert_eq!(g.check("a", 200, 1), Fresh);
        assert_eq!(g.check("a", 200, 1), Replayed);
        // A datagram of the boot before, captured and replayed now.
        assert_eq!(g.check("a", 100, 2), Stale);
        assert_eq!(g.check("a", 200, 2), Fresh);
    }

    #[test]
    fn senders_are_bounded_and_the_longest_silent_is_forgotten() {
        let mut g = ReplayGuard::default();
        for i in 0..MAX_SENDERS {
            assert_eq!(g.check(&format!("n{i}"), 1, 1), Fresh);
        }
        assert_eq!(
            g.check("n0", 1, 2),
            Fresh,
            "n0 heard again: n1 is the oldest now"
        );
        assert_eq!(g.check("new", 1, 1), Fresh);
        assert_eq!(g.senders(), MAX_SENDERS);
        assert_eq!(g.check("n0", 1, 2), Replayed, "n0 is remembered");
        assert_eq!(g.check("n1", 1, 1), Fresh, "n1 was forgotten");
        // A replay does not make a sender count as heard from.
        assert_eq!(g.check("new", 1, 1), Replayed);
    }
}
