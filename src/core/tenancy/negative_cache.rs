//! A bounded memory of values recently found bad (API key digests that
//! matched no key), so that the same bad value is refused without asking
//! the database again until its entry expires. Bounded in entries: when
//! full, the oldest entry goes first, so a flood of distinct values costs
//! at most `capacity` entries.

use std::collections::{HashMap, VecDeque};

pub struct NegativeCache {
    capacity: usize,
    ttl_ms: i64,
    /// Each value's expiry (epoch ms).
    expiries: HashMap<String, i64>,
    /// Insertions, oldest first; an entry whose expiry no longer matches
    /// `expiries` was renewed or removed since and is skipped.
    order: VecDeque<(String, i64)>,
}

impl NegativeCache {
    pub fn new(capacity: usize, ttl_ms: i64) -> NegativeCache {
        NegativeCache {
            capacity: capacity.max(1),
            ttl_ms,
            expiries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `value` was found bad less than the TTL before `now_ms`.
    pub fn contains(&self, value: &str, now_ms: i64) -> bool {
        self.expiries
            .get(value)
            .is_some_and(|&expires| now_ms < expires)
    }

    /// Remembers `value` as bad until `now_ms` + TTL.
    pub fn insert(&mut self, value: String, now_ms: i64) {
        while self
            .order
            .front()
            .is_some_and(|(_, expires)| *expires <= now_ms)
            || self.order.len() >= self.capacity
        {
            self.pop_oldest();
        }
        let expires = now_ms.saturating_add(self.ttl_ms);
        self.expiries.insert(value.clone(), expires);
        self.order.push_back((value, expires));
    }

    /// Forgets `value`: it has just become good (a key was created).
    pub fn remove(&mut self, value: &str) {
        self.expiries.remove(value);
    }

    fn pop_oldest(&mut self) {
        if let Some((value, expires)) = self.order.pop_front() {
            if self.expiries.get(&value) == Some(&expires) {
                self.expiries.remove(&value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_is_remembered_until_its_ttl_passes() {
        let mut cache = NegativeCache::new(10, 1_000);
        cache.insert("bad".to_owned(), 5_000);
        assert!(cache.contains("bad", 5_000));
        assert!(cache.contains("bad", 5_999));
        assert!(!cache.contains("bad", 6_000));
        assert!(!cache.contains("other", 5_000));
    }

    #[test]
    fn a_value_that_became_good_is_forgotten_at_once() {
        let mut cache = NegativeCache::new(10, 1_000);
        cache.insert("fresh".to_owned(), 0);
        cache.remove("fresh");
        assert!(!cache.contains("fresh", 1));
        assert!(cache.expiries.is_empty());
    }

    #[test]
    fn a_flood_of_distinct_values_keeps_at_most_capacity_entries() {
        let mut cache = NegativeCache::new(3, 60_000);
        for i in 0..1_000 {
            cache.insert(format!("bad-{i}"), i);
            assert!(cache.expiries.len() <= 3);
            assert!(cache.order.len() <= 3);
        }
        // The newest stay, the oldest were pushed out.
        assert!(cache.contains("bad-999", 1_000));
        assert!(cache.contains("bad-997", 1_000));
        assert!(!cache.contains("bad-996", 1_000));
    }

    #[test]
    fn expired_entries_are_dropped_when_new_ones_come() {
        let mut cache = NegativeCache::new(100, 1_000);
        cache.insert("old".to_owned(), 0);
        cache.insert("new".to_owned(), 1_000);
        assert_eq!(cache.expiries.len(), 1);
        assert!(cache.contains("new", 1_500));
    }

    #[test]
    fn renewing_a_value_keeps_it_for_a_full_ttl() {
        let mut cache = NegativeCache::new(2, 1_000);
        cache.insert("a".to_owned(), 0);
        cache.insert("a".to_owned(), 500);
        // The first insertion of "a" is pushed out; its renewal stays.
        cache.insert("b".to_owned(), 600);
        assert!(cache.contains("a", 1_400));
        assert!(cache.contains("b", 1_400));
    }
}
