//! Retry schedules: how long a delivery waits after a failed attempt, and
//! the doubling backoff of the service's own retries.

use crate::core::input::domain::FieldError;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Delays after each failed attempt, in seconds: Standard Webhooks'
/// recommendation (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h)
/// with the immediate first attempt implied.
pub const DEFAULT_SCHEDULE: [u32; 9] = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400];

pub const MAX_SCHEDULE_LEN: usize = 50;
/// The shortest scheduled delay, in seconds: with no floor, a schedule of
/// zeros turns every failing event into a burst of back-to-back requests.
pub const MIN_DELAY_SECONDS: u32 = 1;
pub const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);
const JITTER_FRACTION: f64 = 0.2;

/// The wait after the `failures`-th failure in a row of something the
/// service retries itself: `first` after the first, doubling with each
/// next, never over `cap`.
pub fn doubling_backoff(first: Duration, failures: u32, cap: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    first.saturating_mul(1 << doublings).min(cap)
}

/// The delay before the next attempt, or `None` when the schedule is spent.
///
/// `attempts_made` counts attempts including the one that just failed;
/// `jitter_unit` is drawn uniformly from [-1, 1] by the caller; a server's
/// `Retry-After` may lengthen the delay, never shorten it.
pub fn next_delay(
    schedule: &[u32],
    attempts_made: u32,
    jitter_unit: f64,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let index = usize::try_from(attempts_made.checked_sub(1)?).ok()?;
    let scheduled = Duration::from_secs(u64::from(*schedule.get(index)?));
    let jittered = scheduled.mul_f64(1.0 + JITTER_FRACTION * jitter_unit.clamp(-1.0, 1.0));
    Some(match retry_after {
        Some(asked) => jittered.max(asked.min(MAX_DELAY)),
        None => jittered,
    })
}

/// Parses `Retry-After` as delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

/// Refuses a schedule that is too long (naming `retry_schedule`) or a delay
/// out of range (naming `retry_schedule[i]`).
pub fn check_schedule(schedule: &[u32]) -> Result<(), FieldError> {
    if schedule.len() > MAX_SCHEDULE_LEN {
        return Err(FieldError::new(
            "retry_schedule",
            format!("may hold at most {MAX_SCHEDULE_LEN} delays"),
        ));
    }
    let max = MAX_DELAY.as_secs();
    match schedule
        .iter()
        .position(|&delay| delay < MIN_DELAY_SECONDS || u64::from(delay) > max)
    {
        Some(i) => Err(FieldError::new(
            format!("retry_schedule[{i}]"),
            format!("must be between {MIN_DELAY_SECONDS} and {max} seconds"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_service_s_own_backoff_doubles_from_the_first_wait_up_to_its_cap() {
        let (first, cap) = (Duration::from_millis(500), Duration::from_secs(30));
        let waits: Vec<Duration> = (1..=9)
            .map(|failures| doubling_backoff(first, failures, cap))
            .collect();
        let millis: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(
            millis,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
        assert_eq!(doubling_backoff(first, u32::MAX, cap), cap);
    }

    #[test]
    fn follows_the_schedule_then_gives_up() {
        let schedule = [5, 300];
        assert_eq!(
            next_delay(&schedule, 1, 0.0, None),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            next_delay(&schedule, 2, 0.0, None),
            Some(Duration::from_secs(300))
        );
        assert_eq!(next_delay(&schedule, 3, 0.0, None), None);
        assert_eq!(next_delay(&[], 1, 0.0, None), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        assert_eq!(
            next_delay(&[100], 1, 1.0, None),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            next_delay(&[100], 1, -1.0, None),
            Some(Duration::from_secs(80))
        );
        assert_eq!(
            next_delay(&[100], 1, 7.0, None),
            Some(Duration::from_secs(120))
        );
    }

    #[test]
    fn retry_after_lengthens_but_never_shortens() {
        let long = Some(Duration::from_secs(60));
        let short = Some(Duration::from_secs(1));
        assert_eq!(
            next_delay(&[5], 1, 0.0, long),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            next_delay(&[5], 1, 0.0, short),
            Some(Duration::from_secs(5))
        );
        let huge = Some(Duration::from_secs(7 * 24 * 3600));
        assert_eq!(next_delay(&[5], 1, 0.0, huge), Some(MAX_DELAY));
    }

    #[test]
    fn parses_both_retry_after_forms() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 27, 0).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn default_schedule_makes_ten_attempts_over_about_three_days() {
        assert!(check_schedule(&DEFAULT_SCHEDULE).is_ok());
        assert_eq!(DEFAULT_SCHEDULE.len() + 1, 10);
        assert!(check_schedule(&[]).is_ok());
        assert_eq!(
            check_schedule(&[1; 51]).unwrap_err().field,
            "retry_schedule"
        );
    }

    #[test]
    fn every_delay_is_between_one_second_and_a_day() {
        assert!(check_schedule(&[1, 86400]).is_ok());
        assert_eq!(check_schedule(&[0]).unwrap_err().field, "retry_schedule[0]");
        assert_eq!(
            check_schedule(&[5, 5, 0]).unwrap_err().field,
            "retry_schedule[2]"
        );
        assert_eq!(
            check_schedule(&[5, 90000]).unwrap_err().field,
            "retry_schedule[1]"
        );
    }
}
