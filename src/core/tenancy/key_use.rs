//! When the last use of an API key is written: at most once per key per
//! interval, so that a key in constant use costs one write an interval, not
//! one a request. Memory holds about the keys written within the last
//! interval: an older entry decides nothing and is dropped at the next
//! pruning.

use std::collections::HashMap;

/// Entries held before the first pruning.
const FIRST_PRUNING_AT: usize = 1024;

pub struct KeyUses {
    interval_ms: i64,
    /// When each key's use was last written (epoch ms).
    written: HashMap<String, i64>,
    /// The size at which stale entries are dropped: twice what the last
    /// pruning kept, so a pruning costs amortised constant time a use.
    prune_at: usize,
}

impl KeyUses {
    pub fn new(interval_ms: i64) -> KeyUses {
        KeyUses {
            interval_ms,
            written: HashMap::new(),
            prune_at: FIRST_PRUNING_AT,
        }
    }

    /// Whether the use of `key` at `now_ms` is to be written: its first
    /// use, or the first one an interval after the last written. A `true`
    /// counts as written.
    pub fn to_write(&mut self, key: &str, now_ms: i64) -> bool {
        let interval_ms = self.interval_ms;
        if self
            .written
            .get(key)
            .is_some_and(|&at| within(interval_ms, at, now_ms))
        {
            return false;
        }
        if self.written.len() >= self.prune_at {
            self.written
                .retain(|_, at| within(interval_ms, *at, now_ms));
            self.prune_at = (self.written.len() * 2).max(FIRST_PRUNING_AT);
        }
        self.written.insert(key.to_owned(), now_ms);
        true
    }

    /// The key was revoked: nothing more to remember about it.
    pub fn forget(&mut self, key: &str) {
        self.written.remove(key);
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.written.len()
    }
}

/// Whether a use written at `written_at` still stands for one at `now_ms`.
fn within(interval_ms: i64, written_at: i64, now_ms: i64) -> bool {
    now_ms.saturating_sub(written_at) < interval_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_written_at_its_first_use_then_once_an_interval() {
        let mut uses = KeyUses::new(60_000);
        assert!(uses.to_write("a", 1_000));
        assert!(!uses.to_write("a", 1_001));
        assert!(!uses.to_write("a", 60_999));
        assert!(uses.to_write("a", 61_000));
        assert!(!uses.to_write("a", 61_000));
        // The interval runs from the last written use, not the last use.
        assert!(!uses.to_write("a", 120_999));
        assert!(uses.to_write("a", 121_000));
    }

    #[test]
    fn keys_are_throttled_each_on_its_own() {
        let mut uses = KeyUses::new(60_000);
        assert!(uses.to_write("a", 1_000));
        assert!(uses.to_write("b", 1_500));
        assert!(!uses.to_write("a", 2_000));
        assert!(!uses.to_write("b", 2_000));
    }

    #[test]
    fn a_clock_that_steps_back_writes_nothing_until_it_catches_up() {
        let mut uses = KeyUses::new(60_000);
        assert!(uses.to_write("a", 100_000));
        assert!(!uses.to_write("a", 50_000));
        assert!(uses.to_write("a", 160_000));
    }

    #[test]
    fn a_forgotten_key_is_written_at_its_next_use() {
        let mut uses = KeyUses::new(60_000);
        assert!(uses.to_write("a", 1_000));
        uses.forget("a");
        assert!(uses.to_write("a", 1_001));
    }

    #[test]
    fn memory_keeps_only_about_the_keys_written_within_the_interval() {
        let mut uses = KeyUses::new(60_000);
        for n in 0..FIRST_PRUNING_AT {
            assert!(uses.to_write(&format!("old{n}"), 0));
        }
        assert_eq!(uses.remembered(), FIRST_PRUNING_AT);
        // An interval later the old entries decide nothing: they go.
        assert!(uses.to_write("new", 60_000));
        assert_eq!(uses.remembered(), 1);
        assert!(!uses.to_write("new", 60_001));
        assert!(uses.to_write("old0", 60_001), "a dropped entry was stale");
        // Entries still within the interval are kept whatever the size.
        let mut busy = KeyUses::new(60_000);
        for n in 0..3 * FIRST_PRUNING_AT {
            assert!(busy.to_write(&format!("k{n}"), 1_000));
        }
        assert_eq!(busy.remembered(), 3 * FIRST_PRUNING_AT);
        for n in 0..3 * FIRST_PRUNING_AT {
            assert!(!busy.to_write(&format!("k{n}"), 2_000), "k{n}");
        }
    }
}
