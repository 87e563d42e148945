//! A flow table with idle expiry and a bound: the UDP proxy NAT's flows (one host socket
//! per (network, container address:port, outside address:port)). Every call takes the time.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::Ipv4Addr;
use std::time::Duration;

use weft_switch::{NetworkId, Timestamp};

/// Who a flow is charged to: its container (network, address), so that one container
/// cannot take the whole table from its neighbours.
pub type Holder = (NetworkId, Ipv4Addr);

/// Why a new flow is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The table holds its bound.
    Table,
    /// The flow's holder holds its share.
    Holder,
    /// The flow's network holds its share.
    Network,
}

/// One flow's bookkeeping.
#[derive(Debug, Clone)]
pub struct Flow<V> {
    pub value: V,
    pub created: Timestamp,
    pub last_active: Timestamp,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

/// Flows by key with idle expiry. A new flow beyond the bound is refused rather than
/// pushing out a live one.
#[derive(Debug)]
pub struct FlowTable<K, V> {
    flows: HashMap<K, Flow<V>>,
    idle: Duration,
    max: usize,
    /// Most flows one holder may have.
    per_holder: usize,
    holder_of: fn(&K) -> Holder,
    held: HashMap<Holder, usize>,
    /// Most flows one network's holders may have together.
    per_network: usize,
    held_by_network: HashMap<NetworkId, usize>,
}

impl<K: Hash + Eq + Clone, V> FlowTable<K, V> {
    /// A table of at most `max` flows, all charged to one holder.
    pub fn new(idle: Duration, max: usize) -> Self {
        FlowTable {
            flows: HashMap::new(),
            idle,
            max,
            per_holder: max,
            holder_of: |_| (NetworkId(0), Ipv4Addr::UNSPECIFIED),
            held: HashMap::new(),
            per_network: max,
            held_by_network: HashMap::new(),
        }
    }

    /// The same table with at most `per_network` flows of one network's holders: the
    /// containers of one network cannot take the table from the others'.
    pub fn with_network_share(self, per_network: usize) -> Self {
        FlowTable {
            per_network,
            ..self
        }
    }

    /// The same table with each flow charged to `holder_of(key)`, at most `per_holder`
    /// flows each.
    pub fn with_shares(self, per_holder: usize, holder_of: fn(&K) -> Holder) -> Self {
        FlowTable {
            per_holder,
            holder_of,
            ..self
        }
    }

    /// Whether a flow of `key` could be added now.
    pub fn room_for(&self, key: &K) -> Result<(), Full> {
        if self.flows.contains_key(key) {
            return Ok(());
        }
        if self.flows.len() >= self.max {
            return Err(Full::Table);
        }
        let holder = (self.holder_of)(key);
        let held = self.held.get(&holder).copied().unwrap_or(0);
        if held >= self.per_holder {
            return Err(Full::Holder);
        }
        let network = self.held_by_network.get(&holder.0).copied().unwrap_or(0);
        if network >= self.per_network {
            return Err(Full::Network);
        }
        Ok(())
    }

    fn release(&mut self, key: &K) {
        fn give_back<S: Hash + Eq>(held: &mut HashMap<S, usize>, share: S) {
            if let Some(n) = held.get_mut(&share) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    held.remove(&share);
                }
            }
        }
        let holder = (self.holder_of)(key);
        give_back(&mut self.held, holder);
        give_back(&mut self.held_by_network, holder.0);
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    pub fn get(&self, key: &K) -> Option<&Flow<V>> {
        self.flows.get(key)
    }

    /// Adds a flow; refused (`Err(value)`) when the table or its holder's share is full.
    pub fn insert(&mut self, key: K, value: V, now: Timestamp) -> Result<(), V> {
        if self.room_for(&key).is_err() {
            return Err(value);
        }
        if !self.flows.contains_key(&key) {
            let holder = (self.holder_of)(&key);
            *self.held.entry(holder).or_default() += 1;
            *self.held_by_network.entry(holder.0).or_default() += 1;
        }
        self.flows.insert(
            key,
            Flow {
                value,
                created: now,
                last_active: now,
                bytes_out: 0,
                bytes_in: 0,
            },
        );
        Ok(())
    }

    /// Counts bytes leaving through the flow (container to outside) and keeps it alive.
    pub fn sent(&mut self, key: &K, bytes: usize, now: Timestamp) {
        if let Some(f) = self.flows.get_mut(key) {
            f.bytes_out += bytes as u64;
            f.last_active = now;
        }
    }

    /// Counts bytes coming back (outside to container) and keeps the flow alive.
    pub fn received(&mut self, key: &K, bytes: usize, now: Timestamp) {
        if let Some(f) = self.flows.get_mut(key) {
            f.bytes_in += bytes as u64;
            f.last_active = now;
        }
    }

    /// Removes and returns the flows idle for at least the idle time.
    pub fn expire(&mut self, now: Timestamp) -> Vec<(K, V)> {
        let idle = self.idle;
        let dead: Vec<K> = self
            .flows
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.last_active) >= idle)
            .map(|(k, _)| k.clone())
            .collect();
        dead.into_iter()
            .filter_map(|k| {
                let flow = self.flows.remove(&k)?;
                self.release(&k);
                Some((k, flow.value))
            })
            .collect()
    }

    /// Removes every flow whose key matches (a disconnected endpoint's, a removed network's).
    pub fn remove_where(&mut self, mut pred: impl FnMut(&K) -> bool) -> Vec<V> {
        let keys: Vec<K> = self.flows.keys().filter(|k| pred(k)).cloned().collect();
        keys.into_iter()
            .filter_map(|k| {
                let flow = self.flows.remove(&k)?;
                self.release(&k);
                Some(flow.value)
            })
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &Flow<V>)> {
        self.flows.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    #[test]
    fn udp_flows_expire_after_the_idle_time_driven_by_the_test() {
        let mut t: FlowTable<u32, &str> = FlowTable::new(Duration::from_secs(60), 2);
        t.insert(1, "a", at(0)).unwrap();
        t.insert(2, "b", at(0)).unwrap();
        assert_eq!(
            t.insert(3, "c", at(0)),
            Err("c"),
            "a full table refuses new flows"
        );
        t.sent(&1, 100, at(50));
        t.received(&1, 40, at(55));
        assert!(t.expire(at(59)).is_empty());
        assert!(t.expire(Timestamp::from_millis(59_999)).is_empty());
        let gone = t.expire(at(60));
        assert_eq!(gone, vec![(2, "b")]);
        let f = t.get(&1).unwrap();
        assert_eq!((f.bytes_out, f.bytes_in), (100, 40));
        assert_eq!(t.expire(at(114)), vec![]);
        assert_eq!(t.expire(at(115)), vec![(1, "a")]);
        assert!(t.is_empty());
        t.insert(3, "c", at(0)).unwrap();
        assert_eq!(t.remove_where(|k| *k == 3), vec!["c"]);
    }

    #[test]
    fn one_holder_cannot_take_the_table_from_the_others() {
        let holder_of: fn(&u32) -> Holder = |k| (NetworkId(1), Ipv4Addr::from(*k / 100));
        let mut t: FlowTable<u32, ()> =
            FlowTable::new(Duration::from_secs(60), 10).with_shares(3, holder_of);
        for k in 0..3 {
            t.insert(k, (), at(0)).unwrap();
        }
        assert_eq!(t.room_for(&3), Err(Full::Holder));
        assert_eq!(t.insert(3, (), at(0)), Err(()));
        assert_eq!(t.room_for(&1), Ok(()), "an existing flow always has room");
        t.insert(100, (), at(0)).unwrap();
        // The holder's flows go (expired, or its endpoint gone): its share is free again.
        t.sent(&0, 1, at(30));
        assert_eq!(t.expire(at(60)).len(), 3, "flows 1, 2 and 100");
        t.insert(3, (), at(60)).unwrap();
        assert_eq!(t.remove_where(|k| *k < 100).len(), 2);
        assert_eq!(t.room_for(&4), Ok(()));
        assert!(t.held.values().all(|&n| n > 0));
    }

    #[test]
    fn one_network_cannot_take_the_table_from_the_others() {
        let holder_of: fn(&u32) -> Holder = |k| (NetworkId(k / 100), Ipv4Addr::from(*k % 100));
        let mut t: FlowTable<u32, ()> = FlowTable::new(Duration::from_secs(60), 10)
            .with_shares(2, holder_of)
            .with_network_share(4);
        for k in [100, 101, 102, 103] {
            t.insert(k, (), at(0)).unwrap();
        }
        assert_eq!(
            t.room_for(&104),
            Err(Full::Network),
            "network 1's fifth container"
        );
        assert_eq!(t.room_for(&200), Ok(()), "another network");
        t.insert(200, (), at(0)).unwrap();
        assert_eq!(t.remove_where(|k| *k == 100).len(), 1);
        assert_eq!(t.room_for(&104), Ok(()), "a place given back");
        assert_eq!(t.expire(at(60)).len(), 4);
        assert!(t.held_by_network.is_empty() && t.held.is_empty());
    }
}
