//! The filtering database (FDB) of one network.
//!
//! IEEE 802.1D §7.9 calls the table that maps station addresses to ports
//! the *Filtering Database*. weft keeps one [`Fdb`] per network, holding two
//! kinds of entries:
//!
//! * **learned** (dynamic) entries, created by the learning process from the
//!   source address of received frames (802.1D §7.8) and removed by aging
//!   once they have not been refreshed for the network's aging time
//!   (802.1D §7.9.2, default 300 s);
//! * **static** entries, configured by the control plane (802.1D §7.9.1);
//!   they are never aged, never moved by learning, and disappear only when
//!   removed explicitly or when their port is removed.
//!
//! Learned entries are bounded per network and per port so that a source
//! flooding random addresses cannot grow the table without limit; when a
//! bound is hit the address is simply not learned (frames to it keep being
//! flooded), like the Linux bridge's `fdb_max_learned`.
//!
//! Aging is *lazy*: an entry older than the aging time counts as absent for
//! every lookup even before [`Fdb::expire`] physically removes it, so the
//! outcome never depends on how often the caller runs expiry. The table is
//! pre-sized when created and [`Fdb::learn`] never allocates as long as the
//! configured bounds are at most [`Fdb::PREALLOC_LIMIT`].

use std::collections::HashMap;
use std::time::Duration;

use crate::bridge::{NetworkConfig, NetworkStats, PortId};
use crate::mac::MacAddr;
use crate::time::Timestamp;

/// How an FDB entry came to exist.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FdbOrigin {
    /// Learned from the source address of a received frame (802.1D §7.8);
    /// subject to aging and MAC moves.
    Learned,
    /// Configured by the control plane (802.1D §7.9.1); never aged or moved.
    Static,
    /// An endpoint's own MAC on its port, pinned while it is attached: never aged, moved
    /// or deleted by learning, and not replaced by a static entry.
    Endpoint,
}

/// A snapshot of one FDB entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FdbEntry {
    /// The station address.
    pub mac: MacAddr,
    /// The port behind which the station lives.
    pub port: PortId,
    /// Learned or static.
    pub origin: FdbOrigin,
    /// Time since the entry was last refreshed; [`Duration::ZERO`] for static
    /// entries.
    pub age: Duration,
}

/// What [`Fdb::learn`] did with a source address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LearnOutcome {
    /// A new learned entry was created (possibly replacing one that had
    /// already aged out).
    Learned,
    /// A live learned entry on the same port was refreshed.
    Refreshed,
    /// A live learned entry moved here from another port.
    Moved {
        /// The port the address was previously learned on.
        from: PortId,
    },
    /// A static or endpoint entry exists for the address; it was left untouched.
    Static,
    /// The network or port bound was reached; nothing was learned, and no existing
    /// entry was touched (a live entry elsewhere stays where it is).
    Refused,
    /// The address is multicast, broadcast or all-zero and can never be
    /// learned (802.1D §7.8).
    Invalid,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    port: PortId,
    origin: FdbOrigin,
    last_seen: Timestamp,
}

/// The filtering database of one network: `MacAddr -> (port, origin,
/// last_seen)`, with the number of learned entries per port.
///
/// Bounds apply to learned entries only (static entries are not counted).
/// Entries that have aged out but were not yet removed still occupy the
/// bounds until they are expired; when a bound is hit, `learn` first expires
/// stale entries (at most once per expiry deadline, so the cost stays
/// amortised) before refusing.
#[derive(Clone, Debug)]
pub struct Fdb {
    map: HashMap<MacAddr, Slot>,
    /// Learned entries (live or stale) per port.
    per_port: HashMap<PortId, usize>,
    learned: usize,
    statics: usize,
    /// Aging time rounded up to whole milliseconds.
    aging_ms: u64,
    aging: Duration,
    max_learned: usize,
    max_per_port: usize,
    /// No learned entry becomes stale before this instant.
    next_expiry: Timestamp,
    stats: NetworkStats,
}

impl Fdb {
    /// Largest number of learned entries the table reserves room for up
    /// front. Above this the table grows on demand, which may allocate while
    /// learning.
    pub const PREALLOC_LIMIT: usize = 1 << 16;

    /// An empty table with the aging time and bounds of `config`, pre-sized
    /// for `config.max_fdb_entries` learned entries.
    pub fn new(config: &NetworkConfig) -> Fdb {
        let mut fdb = Fdb {
            map: HashMap::new(),
            per_port: HashMap::new(),
            learned: 0,
            statics: 0,
            aging_ms: 0,
            aging: Duration::ZERO,
            max_learned: 0,
            max_per_port: 0,
            next_expiry: Timestamp::MAX,
            stats: NetworkStats::default(),
        };
        fdb.apply_limits(config);
        fdb.reserve();
        fdb
    }

    /// Adopts the aging time and bounds of `config`.
    ///
    /// A shorter aging time takes effect immediately (entries become stale
    /// lazily). If the new bounds are smaller than the current number of
    /// learned entries, the least recently seen entries are evicted until
    /// both bounds hold again; evictions are not counted as aging.
    pub fn reconfigure(&mut self, config: &NetworkConfig) {
        self.apply_limits(config);
        // Aging may have shortened: recompute the expiry deadline lazily.
        self.next_expiry = Timestamp::ZERO;
        self.evict_over_limits();
        self.reserve();
    }

    fn apply_limits(&mut self, config: &NetworkConfig) {
        self.aging = config.aging;
        // Round up so that `age_ms < aging_ms` <=> `age < aging` exactly.
        let ms = config.aging.as_nanos().div_ceil(1_000_000);
        self.aging_ms = u64::try_from(ms).unwrap_or(u64::MAX);
        self.max_learned = config.max_fdb_entries;
        self.max_per_port = config.max_fdb_entries_per_port;
    }

    /// Ensures inserting up to the bounds never reallocates. Twice the
    /// bound is reserved so that tombstones left by removals can always be
    /// cleaned up by an in-place rehash rather than a resize.
    fn reserve(&mut self) {
        let want = self
            .max_learned
            .min(Self::PREALLOC_LIMIT)
            .saturating_add(self.statics)
            .saturating_mul(2);
        if self.map.capacity() < want {
            // Failure only means the table will grow on demand later.
            let _ = self.map.try_reserve(want.saturating_sub(self.map.len()));
        }
    }

    fn evict_over_limits(&mut self) {
        if self.learned <= self.max_learned
            && self.per_port.values().all(|n| *n <= self.max_per_port)
        {
            return;
        }
        let mut learned: Vec<(Timestamp, MacAddr, PortId)> = self
            .map
            .iter()
            .filter(|(_, s)| s.origin == FdbOrigin::Learned)
            .map(|(mac, s)| (s.last_seen, *mac, s.port))
            .collect();
        learned.sort_unstable();
        for (_, mac, port) in learned {
            if self.learned > self.max_learned || self.learned_on_port(port) > self.max_per_port {
                self.remove_learned(mac, port);
            }
        }
    }

    /// The aging time: learned entries not refreshed for this long are
    /// considered absent.
    pub fn aging(&self) -> Duration {
        self.aging
    }

    /// Number of entries physically present, static and learned, including
    /// learned entries that have aged out but were not yet expired.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// `true` when the table holds no entry at all.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of learned entries present (including not-yet-expired stale
    /// ones); never exceeds the network bound.
    pub fn learned_count(&self) -> usize {
        self.learned
    }

    /// Number of static entries.
    pub fn static_count(&self) -> usize {
        self.statics
    }

    /// Number of learned entries pointing at `port` (including
    /// not-yet-expired stale ones); never exceeds the per-port bound.
    pub fn learned_on_port(&self, port: PortId) -> usize {
        self.per_port.get(&port).copied().unwrap_or(0)
    }

    /// Learning, counters and aging statistics of this table. The gateway
    /// and ARP suppression fields are always zero here; see
    /// [`Bridge::network_stats`](crate::Bridge::network_stats).
    pub fn stats(&self) -> NetworkStats {
        self.stats
    }

    fn is_live(&self, slot: &Slot, now: Timestamp) -> bool {
        slot.origin != FdbOrigin::Learned
            || now.as_millis().saturating_sub(slot.last_seen.as_millis()) < self.aging_ms
    }

    fn expiry_of(&self, last_seen: Timestamp) -> Timestamp {
        Timestamp::from_millis(last_seen.as_millis().saturating_add(self.aging_ms))
    }

    fn entry(&self, mac: MacAddr, slot: &Slot, now: Timestamp) -> FdbEntry {
        FdbEntry {
            mac,
            port: slot.port,
            origin: slot.origin,
            age: match slot.origin {
                FdbOrigin::Learned => now.saturating_duration_since(slot.last_seen),
                FdbOrigin::Static | FdbOrigin::Endpoint => Duration::ZERO,
            },
        }
    }

    /// Prepares per-port accounting for `port`, so that learning on it never
    /// allocates. Idempotent.
    pub fn add_port(&mut self, port: PortId) {
        self.per_port.entry(port).or_insert(0);
    }

    /// Removes every entry (learned and static) pointing at `port` and
    /// forgets the port. Returns how many entries were removed.
    pub fn remove_port(&mut self, port: PortId) -> usize {
        let before = self.map.len();
        let mut statics = 0;
        self.map.retain(|_, s| {
            let keep = s.port != port;
            if !keep && s.origin != FdbOrigin::Learned {
                statics += 1;
            }
            keep
        });
        let removed = before - self.map.len();
        self.statics -= statics;
        self.learned -= removed - statics;
        self.per_port.remove(&port);
        removed
    }

    fn remove_learned(&mut self, mac: MacAddr, port: PortId) {
        if self.map.remove(&mac).is_some() {
            self.learned -= 1;
            if let Some(n) = self.per_port.get_mut(&port) {
                *n = n.saturating_sub(1);
            }
        }
    }

    fn has_room(&self, port: PortId) -> bool {
        self.learned < self.max_learned && self.learned_on_port(port) < self.max_per_port
    }

    /// Like [`Fdb::has_room`], but first expires stale entries if the table
    /// is full and some entry may have gone stale since the last sweep.
    fn make_room(&mut self, port: PortId, now: Timestamp) -> bool {
        if self.has_room(port) {
            return true;
        }
        if now >= self.next_expiry {
            self.expire(now);
            return self.has_room(port);
        }
        false
    }

    /// The learning process (802.1D §7.8) for a frame with source `mac`
    /// received on `port` at `now`.
    ///
    /// * unknown (or aged-out) address: learned if both bounds allow,
    ///   otherwise refused and counted in `learn_refused_table_full`;
    /// * live learned entry on `port`: refreshed;
    /// * live learned entry on another port: a MAC move — the entry follows
    ///   the station (`mac_moves` is counted), provided the new port's
    ///   bound allows; otherwise the stale location is dropped and the
    ///   address is not learned;
    /// * static entry: left untouched (static entries are never overridden
    ///   by learning);
    /// * group or all-zero address: ignored.
    ///
    /// Never allocates for a port registered with [`Fdb::add_port`] while the
    /// bounds are within [`Fdb::PREALLOC_LIMIT`].
    pub fn learn(&mut self, mac: MacAddr, port: PortId, now: Timestamp) -> LearnOutcome {
        if mac.is_multicast() || mac.is_zero() {
            return LearnOutcome::Invalid;
        }
        if let Some(slot) = self.map.get(&mac).copied() {
            if slot.origin != FdbOrigin::Learned {
                return LearnOutcome::Static;
            }
            let live = self.is_live(&slot, now);
            if slot.port == port {
                let expiry = self.expiry_of(now);
                self.next_expiry = self.next_expiry.min(expiry);
                if let Some(s) = self.map.get_mut(&mac) {
                    s.last_seen = now;
                }
                if live {
                    return LearnOutcome::Refreshed;
                }
                // Aged out and re-learned in place on the same port.
                self.stats.aged_out += 1;
                self.stats.learned += 1;
                return LearnOutcome::Learned;
            }
            if !live {
                // Aged out on another port: it counts as absent.
                self.remove_learned(mac, slot.port);
                self.stats.aged_out += 1;
            } else if self.make_room(port, now) {
                // The entry is live, so `make_room` did not expire it.
                if let Some(n) = self.per_port.get_mut(&slot.port) {
                    *n = n.saturating_sub(1);
                }
                *self.per_port.entry(port).or_insert(0) += 1;
                let expiry = self.expiry_of(now);
                self.next_expiry = self.next_expiry.min(expiry);
                if let Some(s) = self.map.get_mut(&mac) {
                    s.port = port;
                    s.last_seen = now;
                }
                self.stats.mac_moves += 1;
                return LearnOutcome::Moved { from: slot.port };
            } else {
                // A full table refuses the newcomer and leaves the station where it is:
                // deleting its entry would let anyone make a victim's traffic flood.
                self.stats.learn_refused_table_full += 1;
                return LearnOutcome::Refused;
            }
        }
        if !self.make_room(port, now) {
            self.stats.learn_refused_table_full += 1;
            return LearnOutcome::Refused;
        }
        self.map.insert(
            mac,
            Slot {
                port,
                origin: FdbOrigin::Learned,
                last_seen: now,
            },
        );
        self.learned += 1;
        *self.per_port.entry(port).or_insert(0) += 1;
        let expiry = self.expiry_of(now);
        self.next_expiry = self.next_expiry.min(expiry);
        self.stats.learned += 1;
        LearnOutcome::Learned
    }

    /// What [`Fdb::learn`] would do with `mac` from `port` at `now`, changing nothing: the
    /// dry run of a synthetic trace (`weft trace --inject`). Agrees with `learn` (tested
    /// against it on random tables).
    pub fn learn_outcome(&self, mac: MacAddr, port: PortId, now: Timestamp) -> LearnOutcome {
        if mac.is_multicast() || mac.is_zero() {
            return LearnOutcome::Invalid;
        }
        let mut removed = None;
        if let Some(slot) = self.map.get(&mac) {
            if slot.origin != FdbOrigin::Learned {
                return LearnOutcome::Static;
            }
            let live = self.is_live(slot, now);
            if slot.port == port {
                return if live {
                    LearnOutcome::Refreshed
                } else {
                    LearnOutcome::Learned
                };
            }
            if live {
                return if self.would_have_room(port, now, None) {
                    LearnOutcome::Moved { from: slot.port }
                } else {
                    LearnOutcome::Refused
                };
            }
            // Aged out on another port: `learn` removes it first.
            removed = Some(slot.port);
        }
        if self.would_have_room(port, now, removed) {
            LearnOutcome::Learned
        } else {
            LearnOutcome::Refused
        }
    }

    /// Whether [`Fdb::make_room`] would find room on `port` at `now`, after a learned entry
    /// of port `removed` is taken out, changing nothing.
    fn would_have_room(&self, port: PortId, now: Timestamp, removed: Option<PortId>) -> bool {
        let mut total = self.learned;
        let mut on_port = self.learned_on_port(port);
        if let Some(p) = removed {
            total -= 1;
            if p == port {
                on_port -= 1;
            }
        }
        if total < self.max_learned && on_port < self.max_per_port {
            return true;
        }
        if now < self.next_expiry {
            return false;
        }
        // `make_room` would expire the stale entries first: count the live ones.
        let live = self
            .map
            .values()
            .filter(|s| s.origin == FdbOrigin::Learned && self.is_live(s, now));
        let (mut total, mut on_port) = (0, 0);
        for s in live {
            total += 1;
            on_port += usize::from(s.port == port);
        }
        total < self.max_learned && on_port < self.max_per_port
    }

    /// Installs (or re-points) a static entry for `mac` on `port`, replacing
    /// any learned entry for it; an endpoint's pinned entry is left alone (returns
    /// `false`). The caller is responsible for rejecting group and all-zero addresses and
    /// for checking `port`.
    pub fn insert_static(&mut self, mac: MacAddr, port: PortId) -> bool {
        self.insert_fixed(mac, port, FdbOrigin::Static)
    }

    /// Pins an endpoint's `mac` to its `port` ([`FdbOrigin::Endpoint`]), replacing a
    /// learned or static entry; `false` (and nothing changed) if it is pinned to another
    /// port already.
    pub fn pin(&mut self, mac: MacAddr, port: PortId) -> bool {
        if self.pinned_port(mac).is_some_and(|p| p != port) {
            return false;
        }
        if self
            .map
            .get(&mac)
            .is_some_and(|s| s.origin == FdbOrigin::Static)
        {
            self.map.remove(&mac);
            self.statics -= 1;
        }
        self.insert_fixed(mac, port, FdbOrigin::Endpoint)
    }

    /// Removes the endpoint entry for `mac` (its endpoint left).
    pub fn unpin(&mut self, mac: MacAddr) -> bool {
        self.remove_fixed(mac, FdbOrigin::Endpoint)
    }

    /// The port an endpoint's `mac` is pinned to, if any.
    pub fn pinned_port(&self, mac: MacAddr) -> Option<PortId> {
        self.map
            .get(&mac)
            .filter(|s| s.origin == FdbOrigin::Endpoint)
            .map(|s| s.port)
    }

    fn insert_fixed(&mut self, mac: MacAddr, port: PortId, origin: FdbOrigin) -> bool {
        let slot = Slot {
            port,
            origin,
            last_seen: Timestamp::ZERO,
        };
        match self.map.get(&mac).copied() {
            Some(old) if old.origin == FdbOrigin::Endpoint && origin != old.origin => false,
            Some(old) if old.origin != FdbOrigin::Learned => {
                self.map.insert(mac, slot);
                true
            }
            Some(old) => {
                self.remove_learned(mac, old.port);
                self.statics += 1;
                self.map.insert(mac, slot);
                true
            }
            None => {
                self.statics += 1;
                self.reserve();
                self.map.insert(mac, slot);
                true
            }
        }
    }

    /// Removes the static entry for `mac`. Returns `false` (and changes
    /// nothing) if there is no static entry for it.
    pub fn remove_static(&mut self, mac: MacAddr) -> bool {
        self.remove_fixed(mac, FdbOrigin::Static)
    }

    fn remove_fixed(&mut self, mac: MacAddr, origin: FdbOrigin) -> bool {
        match self.map.get(&mac) {
            Some(s) if s.origin == origin => {
                self.map.remove(&mac);
                self.statics -= 1;
                true
            }
            _ => false,
        }
    }

    /// The port `mac` was learned or configured on, if the entry is live at
    /// `now`. This is the forwarding lookup of 802.1D §7.7.
    pub fn port_of(&self, mac: MacAddr, now: Timestamp) -> Option<PortId> {
        self.map
            .get(&mac)
            .filter(|s| self.is_live(s, now))
            .map(|s| s.port)
    }

    /// The live entry for `mac` at `now`, if any.
    pub fn lookup(&self, mac: MacAddr, now: Timestamp) -> Option<FdbEntry> {
        self.map
            .get(&mac)
            .filter(|s| self.is_live(s, now))
            .map(|s| self.entry(mac, s, now))
    }

    /// Removes learned entries that have aged out at `now` (802.1D §7.9.2)
    /// and returns how many; they are added to `aged_out`.
    pub fn expire(&mut self, now: Timestamp) -> usize {
        if now < self.next_expiry {
            return 0;
        }
        let aging_ms = self.aging_ms;
        let mut removed = 0;
        let mut next_expiry = Timestamp::MAX;
        let per_port = &mut self.per_port;
        self.map.retain(|_, s| {
            if s.origin != FdbOrigin::Learned {
                return true;
            }
            let age = now.as_millis().saturating_sub(s.last_seen.as_millis());
            if age < aging_ms {
                let expiry = s.last_seen.as_millis().saturating_add(aging_ms);
                next_expiry = next_expiry.min(Timestamp::from_millis(expiry));
                return true;
            }
            if let Some(n) = per_port.get_mut(&s.port) {
                *n = n.saturating_sub(1);
            }
            removed += 1;
            false
        });
        self.learned -= removed;
        self.next_expiry = next_expiry;
        self.stats.aged_out += removed as u64;
        removed
    }

    /// Every entry live at `now`, sorted by MAC address.
    pub fn entries(&self, now: Timestamp) -> Vec<FdbEntry> {
        let mut out: Vec<FdbEntry> = self
            .map
            .iter()
            .filter(|(_, s)| self.is_live(s, now))
            .map(|(mac, s)| self.entry(*mac, s, now))
            .collect();
        out.sort_unstable_by_key(|e| e.mac);
        out
    }
}
