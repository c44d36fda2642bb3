//! The consecutive-failure counter of one endpoint: which alerts a failure
//! raises and when it disables the endpoint.

use crate::core::health::limits::HealthLimits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableReason {
    ConsecutiveFailures,
    /// The receiver answered 410 Gone (Standard Webhooks: stop sending).
    Gone,
    Manual,
}

impl DisableReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisableReason::ConsecutiveFailures => "consecutive_failures",
            DisableReason::Gone => "gone",
            DisableReason::Manual => "manual",
        }
    }

    pub fn parse(value: &str) -> Option<DisableReason> {
        match value {
            "consecutive_failures" => Some(DisableReason::ConsecutiveFailures),
            "gone" => Some(DisableReason::Gone),
            "manual" => Some(DisableReason::Manual),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    Failing,
    Disabled,
    /// The first success after a streak that raised an alert.
    Recovered,
    Enabled,
}

impl AlertKind {
    pub const ALL: [AlertKind; 4] = [
        AlertKind::Failing,
        AlertKind::Disabled,
        AlertKind::Recovered,
        AlertKind::Enabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Failing => "endpoint.failing",
            AlertKind::Disabled => "endpoint.disabled",
            AlertKind::Recovered => "endpoint.recovered",
            AlertKind::Enabled => "endpoint.enabled",
        }
    }

    pub fn parse(value: &str) -> Option<AlertKind> {
        AlertKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == value)
    }

    /// The type of the operational event that carries this alert.
    pub fn event_type(self) -> String {
        format!(
            "{}{}",
            crate::core::delivery::envelope::OPERATIONAL_PREFIX,
            self.as_str()
        )
    }
}

/// The current failure streak; everything here is persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Streak {
    pub consecutive_failures: u32,
    /// When the first failure of the streak happened.
    pub failing_since: Option<i64>,
    /// Thresholds already crossed in this streak, so none alerts twice.
    pub alerted: Vec<u32>,
    /// An `endpoint.failing` alert of this streak got past the bound on
    /// repeats, so the streak's end raises `endpoint.recovered`.
    pub alert_raised: bool,
}

/// What one failed attempt calls for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureOutcome {
    /// Thresholds crossed by this failure, one `endpoint.failing` alert each.
    pub crossed: Vec<u32>,
    pub disable: Option<DisableReason>,
}

impl Streak {
    /// Counts a failure at `now`; `gone` when the receiver answered 410.
    pub fn after_failure(&mut self, limits: &HealthLimits, now: i64, gone: bool) -> FailureOutcome {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let since = *self.failing_since.get_or_insert(now);
        let crossed: Vec<u32> = limits
            .alert_thresholds
            .iter()
            .copied()
            .filter(|t| *t <= self.consecutive_failures && !self.alerted.contains(t))
            .collect();
        self.alerted.extend(&crossed);
        let failing_for = u128::try_from(now.saturating_sub(since)).unwrap_or(0);
        let disable = if gone {
            Some(DisableReason::Gone)
        } else if self.consecutive_failures >= limits.disable_after_failures
            && failing_for >= limits.disable_after.as_millis()
        {
            Some(DisableReason::ConsecutiveFailures)
        } else {
            None
        };
        FailureOutcome { crossed, disable }
    }

    /// Ends the streak; `true` when it had raised an alert, which calls for
    /// an `endpoint.recovered` alert.
    pub fn after_success(&mut self) -> bool {
        let had_alerted = self.alert_raised;
        *self = Streak::default();
        had_alerted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::health::limits::test_limits;
    use std::time::Duration;

    #[test]
    fn each_threshold_alerts_once_per_streak() {
        let limits = test_limits();
        let mut streak = Streak::default();
        let crossed: Vec<Vec<u32>> = (0..12)
            .map(|i| streak.after_failure(&limits, i, false).crossed)
            .collect();
        let alerted_at: Vec<usize> = crossed
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.is_empty())
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(alerted_at, vec![3, 5, 10]);
        streak.alert_raised = true;
        assert!(streak.after_success());
        assert_eq!(
            streak.after_failure(&limits, 20, false).crossed,
            Vec::<u32>::new()
        );
        assert_eq!(streak.consecutive_failures, 1);
    }

    #[test]
    fn a_success_before_any_alert_is_no_recovery() {
        let mut streak = Streak::default();
        streak.after_failure(&test_limits(), 0, false);
        assert!(!streak.after_success());
        assert_eq!(streak, Streak::default());
        // Crossing a threshold whose alert the bound held back is no alert.
        for i in 0..3 {
            streak.after_failure(&test_limits(), i, false);
        }
        assert_eq!(streak.alerted, vec![3]);
        assert!(!streak.after_success());
    }

    #[test]
    fn disabling_needs_both_the_count_and_the_duration() {
        let limits = test_limits();
        let mut streak = Streak::default();
        for i in 0..9 {
            assert_eq!(streak.after_failure(&limits, i, false).disable, None);
        }
        // The tenth failure comes only a minute into the streak.
        assert_eq!(streak.after_failure(&limits, 60_000, false).disable, None);
        assert_eq!(
            streak.after_failure(&limits, 3_600_000, false).disable,
            Some(DisableReason::ConsecutiveFailures)
        );
    }

    #[test]
    fn zero_duration_gives_the_plain_count_rule() {
        let limits = HealthLimits {
            disable_after: Duration::ZERO,
            ..test_limits()
        };
        let mut streak = Streak::default();
        let disabled_at = (1..=10)
            .find(|_| streak.after_failure(&limits, 5, false).disable.is_some())
            .unwrap();
        assert_eq!(disabled_at, 10);
    }

    #[test]
    fn gone_disables_at_once() {
        let mut streak = Streak::default();
        assert_eq!(
            streak.after_failure(&test_limits(), 0, true).disable,
            Some(DisableReason::Gone)
        );
    }

    #[test]
    fn thresholds_lowered_mid_streak_alert_once() {
        let mut limits = test_limits();
        let mut streak = Streak::default();
        for i in 0..4 {
            streak.after_failure(&limits, i, false);
        }
        limits.alert_thresholds = vec![1, 2, 5];
        assert_eq!(
            streak.after_failure(&limits, 5, false).crossed,
            vec![1, 2, 5]
        );
        assert_eq!(
            streak.after_failure(&limits, 6, false).crossed,
            Vec::<u32>::new()
        );
    }

    #[test]
    fn names_round_trip() {
        for kind in AlertKind::ALL {
            assert_eq!(AlertKind::parse(kind.as_str()), Some(kind));
        }
        for reason in [
            DisableReason::ConsecutiveFailures,
            DisableReason::Gone,
            DisableReason::Manual,
        ] {
            assert_eq!(DisableReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(
            AlertKind::Failing.event_type(),
            "hookrelay.endpoint.failing"
        );
    }
}
