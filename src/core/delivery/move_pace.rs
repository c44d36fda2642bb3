//! How many deliveries the next batch of an endpoint's backlog move takes.
//!
//! A batch runs alone on the writer, so every publish and attempt result of
//! every other endpoint waits for it. What a row costs depends on the
//! database and on how much of the table it holds in memory (0.06 ms a row
//! on a warm PostgreSQL, 0.4 ms on a stock one moving a million), so a fixed
//! count either stalls the others or crawls. The size starts at the
//! configured count and follows what the batches take: cut in proportion
//! when one takes longer than [`MovePace::TARGET`], doubled back (never
//! past the configured count) when one takes under half of it.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovePace {
    size: usize,
    min: usize,
    max: usize,
}

impl MovePace {
    /// How long a batch may hold the writer.
    pub const TARGET: Duration = Duration::from_millis(50);

    /// Batches never shrink below this share of the configured count: each
    /// has its own fixed cost (the move's record, its cursor, a commit).
    const MIN_SHARE: usize = 20;

    /// A pace whose batches take at most `max` deliveries.
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        MovePace {
            size: max,
            min: (max / Self::MIN_SHARE).max(1),
            max,
        }
    }

    /// How many deliveries the next batch takes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// A batch of [`Self::size`] deliveries took `took` of the writer.
    pub fn batch_took(&mut self, took: Duration) {
        if took > Self::TARGET {
            let fitting = self.size as u128 * Self::TARGET.as_micros() / took.as_micros();
            self.size = usize::try_from(fitting)
                .unwrap_or(self.max)
                .clamp(self.min, self.max);
        } else if took < Self::TARGET / 2 {
            self.size = self.size.saturating_mul(2).min(self.max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn starts_at_the_configured_count() {
        assert_eq!(MovePace::new(1000).size(), 1000);
        assert_eq!(MovePace::new(0).size(), 1);
    }

    #[test]
    fn a_slow_batch_cuts_the_next_in_proportion_down_to_a_floor() {
        let mut pace = MovePace::new(1000);
        pace.batch_took(ms(400));
        assert_eq!(pace.size(), 125);
        pace.batch_took(ms(5000));
        assert_eq!(pace.size(), 50);
    }

    #[test]
    fn fast_batches_grow_back_to_the_configured_count_and_no_further() {
        let mut pace = MovePace::new(1000);
        pace.batch_took(ms(200));
        assert_eq!(pace.size(), 250);
        pace.batch_took(ms(10));
        assert_eq!(pace.size(), 500);
        pace.batch_took(ms(10));
        pace.batch_took(ms(10));
        assert_eq!(pace.size(), 1000);
    }

    #[test]
    fn a_batch_near_the_target_keeps_the_size() {
        let mut pace = MovePace::new(1000);
        pace.batch_took(ms(100));
        assert_eq!(pace.size(), 500);
        pace.batch_took(ms(40));
        assert_eq!(pace.size(), 500);
        pace.batch_took(ms(50));
        assert_eq!(pace.size(), 500);
    }
}
