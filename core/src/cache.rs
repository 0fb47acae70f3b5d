//! A bounded least-recently-used map, for every cache a long-lived client keeps.
//!
//! A server or a warm Lambda keeps one client for hours and touches any number of topics and
//! partitions; a cache without bounds grows with everything it ever saw. Each cache here has a
//! limit on entries and on bytes (each entry states its weight), and evicts the least recently
//! used entries first. Caches are hints: an evicted entry costs a request, never correctness.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

#[derive(Debug)]
pub struct Lru<K, V> {
    map: HashMap<K, Slot<V>>,
    /// Use tick -> key, oldest first.
    order: BTreeMap<u64, K>,
    tick: u64,
    weight: usize,
    entries_max: usize,
    weight_max: usize,
}

#[derive(Debug)]
struct Slot<V> {
    value: V,
    tick: u64,
    weight: usize,
}

impl<K: Clone + Eq + Hash, V> Lru<K, V> {
    /// A cache of at most `entries_max` entries weighing at most `weight_max` in all.
    pub fn new(entries_max: usize, weight_max: usize) -> Self {
        Lru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            weight: 0,
            entries_max: entries_max.max(1),
            weight_max,
        }
    }

    /// The value for `key`, marking it used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        self.tick += 1;
        let tick = self.tick;
        let slot = self.map.get_mut(key)?;
        self.order.remove(&slot.tick);
        slot.tick = tick;
        self.order.insert(tick, key.clone());
        Some(&slot.value)
    }

    /// The value for `key` without marking it used.
    pub fn peek(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|s| &s.value)
    }

    /// Inserts or replaces `key`, then evicts the least recently used entries over the bounds.
    /// An entry heavier than the whole budget is not kept.
    pub fn insert(&mut self, key: K, value: V, weight: usize) {
        self.remove(&key);
        if weight > self.weight_max {
            return;
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.map.insert(
            key,
            Slot {
                value,
                tick: self.tick,
                weight,
            },
        );
        self.weight += weight;
        while self.map.len() > self.entries_max || self.weight > self.weight_max {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.map.remove(&oldest) {
                self.weight -= slot.weight;
            }
        }
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let slot = self.map.remove(key)?;
        self.order.remove(&slot.tick);
        self.weight -= slot.weight;
        Some(slot.value)
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values().map(|s| &s.value)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Total weight of the entries kept.
    pub fn weight(&self) -> usize {
        self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_by_count_and_weight() {
        let mut c = Lru::new(3, 100);
        c.insert("a", 1, 10);
        c.insert("b", 2, 10);
        c.insert("c", 3, 10);
        assert_eq!(c.get(&"a"), Some(&1), "a is now the most recent");
        c.insert("d", 4, 10);
        assert_eq!(c.peek(&"b"), None, "b was least recently used");
        assert_eq!(c.len(), 3);
        c.insert("e", 5, 85);
        assert!(c.weight() <= 100);
        assert_eq!(c.peek(&"e"), Some(&5));
        c.insert("huge", 6, 101);
        assert_eq!(c.peek(&"huge"), None, "heavier than the budget: not kept");
        assert_eq!(c.remove(&"e"), Some(5));
        assert_eq!(c.weight(), c.map.values().map(|s| s.weight).sum::<usize>());
    }
}
