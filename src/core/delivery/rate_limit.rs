//! An endpoint's delivery rate limit: at most `per_second` attempts in any
//! second, with up to one second's worth at once after a quiet spell (the
//! generic cell rate algorithm, which keeps one timestamp instead of a log
//! of sends). A delivery held back waits in the endpoint's window: waiting
//! for the limit costs no retry.

/// Highest limit an endpoint may set; beyond it the limit means nothing
/// next to the endpoint's in-flight bound.
pub const MAX_RATE_LIMIT: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Microseconds between two attempts at the steady rate.
    interval_us: i64,
    /// How far ahead of `now` the schedule may run: the burst.
    tolerance_us: i64,
    /// When the next attempt would be due at the steady rate.
    theoretical_arrival_us: i64,
}

impl RateLimit {
    /// `per_second` of at least 1 (callers validate the setting).
    pub fn per_second(per_second: u32) -> RateLimit {
        let per_second = i64::from(per_second.max(1));
        let interval_us = 1_000_000 / per_second;
        RateLimit {
            interval_us,
            tolerance_us: interval_us * (per_second - 1),
            theoretical_arrival_us: i64::MIN,
        }
    }

    /// Takes a slot for an attempt at `now_ms`, or answers the time (ms)
    /// from which one is free.
    pub fn take(&mut self, now_ms: i64) -> Result<(), i64> {
        let now_us = now_ms.saturating_mul(1000);
        let arrival = self.theoretical_arrival_us.max(now_us);
        let free_from_us = arrival - self.tolerance_us;
        if free_from_us > now_us {
            // Rounded up: waking a millisecond early would find no slot.
            return Err((free_from_us + 999) / 1000);
        }
        self.theoretical_arrival_us = arrival + self.interval_us;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    #[test]
    fn a_second_worth_goes_at_once_then_the_steady_rate_applies() {
        let mut limit = RateLimit::per_second(3);
        for _ in 0..3 {
            assert_eq!(limit.take(NOW), Ok(()));
        }
        let free_at = limit.take(NOW).expect_err("the fourth waits");
        assert_eq!(free_at, NOW + 334);
        assert!(limit.take(free_at - 1).is_err());
        assert_eq!(limit.take(free_at), Ok(()));
        assert!(limit.take(free_at).is_err());
    }

    #[test]
    fn a_refused_take_does_not_use_a_slot() {
        let mut limit = RateLimit::per_second(1);
        assert_eq!(limit.take(NOW), Ok(()));
        assert_eq!(limit.take(NOW + 10), Err(NOW + 1000));
        assert_eq!(limit.take(NOW + 20), Err(NOW + 1000));
        assert_eq!(limit.take(NOW + 1000), Ok(()));
    }

    #[test]
    fn a_quiet_spell_earns_back_the_burst_and_no_more() {
        let mut limit = RateLimit::per_second(2);
        assert_eq!(limit.take(NOW), Ok(()));
        assert_eq!(limit.take(NOW), Ok(()));
        let later = NOW + 60_000;
        assert_eq!(limit.take(later), Ok(()));
        assert_eq!(limit.take(later), Ok(()));
        assert!(limit.take(later).is_err());
    }

    #[test]
    fn over_a_long_run_the_rate_holds() {
        let mut limit = RateLimit::per_second(50);
        let mut sent = 0;
        for ms in 0..10_000 {
            while limit.take(NOW + ms).is_ok() {
                sent += 1;
            }
        }
        // 10 s at 50/s, plus the first second's burst.
        assert!((500..=550).contains(&sent), "{sent}");
    }
}
