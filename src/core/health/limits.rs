//! The health limits of an endpoint: global settings, overridden per endpoint.

use crate::core::input::domain::FieldError;
use std::time::Duration;

/// Upper bound of every seconds-valued health limit (30 days).
pub const MAX_LIMIT_SECONDS: u64 = 30 * 24 * 3600;
/// Failure counts are stored in 32-bit signed columns.
pub const MAX_FAILURE_COUNT: u32 = i32::MAX as u32;
pub const MAX_ALERT_THRESHOLDS: usize = 20;

/// The limits an endpoint actor works with, already merged and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthLimits {
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub breaker_max_cooldown: Duration,
    /// Strictly increasing, every value ≥ 1.
    pub alert_thresholds: Vec<u32>,
    pub disable_after_failures: u32,
    pub disable_after: Duration,
}

/// Per-endpoint overrides; `None` keeps the global setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthOverrides {
    pub breaker_failures: Option<u32>,
    pub breaker_cooldown_seconds: Option<u64>,
    pub breaker_max_cooldown_seconds: Option<u64>,
    pub alert_thresholds: Option<Vec<u32>>,
    pub disable_after_failures: Option<u32>,
    pub disable_after_seconds: Option<u64>,
}

impl HealthOverrides {
    /// Drops the override named `field`; `false` when there was none.
    pub fn forget(&mut self, field: &str) -> bool {
        match field {
            "breaker_failures" => self.breaker_failures.take().is_some(),
            "breaker_cooldown_seconds" => self.breaker_cooldown_seconds.take().is_some(),
            "breaker_max_cooldown_seconds" => self.breaker_max_cooldown_seconds.take().is_some(),
            "alert_thresholds" => self.alert_thresholds.take().is_some(),
            "disable_after_failures" => self.disable_after_failures.take().is_some(),
            "disable_after_seconds" => self.disable_after_seconds.take().is_some(),
            _ => false,
        }
    }
}

impl HealthLimits {
    /// The effective limits of an endpoint; refused when the merged values
    /// contradict each other, naming the field (or setting) at fault.
    pub fn resolve(
        defaults: &HealthLimits,
        overrides: &HealthOverrides,
    ) -> Result<HealthLimits, FieldError> {
        let limits = HealthLimits {
            breaker_failures: overrides
                .breaker_failures
                .unwrap_or(defaults.breaker_failures),
            breaker_cooldown: overrides
                .breaker_cooldown_seconds
                .map_or(defaults.breaker_cooldown, Duration::from_secs),
            breaker_max_cooldown: overrides
                .breaker_max_cooldown_seconds
                .map_or(defaults.breaker_max_cooldown, Duration::from_secs),
            alert_thresholds: overrides
                .alert_thresholds
                .clone()
                .unwrap_or_else(|| defaults.alert_thresholds.clone()),
            disable_after_failures: overrides
                .disable_after_failures
                .unwrap_or(defaults.disable_after_failures),
            disable_after: overrides
                .disable_after_seconds
                .map_or(defaults.disable_after, Duration::from_secs),
        };
        limits.check()?;
        Ok(limits)
    }

    /// The bounds the API puts on each value (an endpoint's overrides are
    /// held to them as they are parsed), for the global settings: a value
    /// the API would refuse stops start-up instead.
    pub fn check_bounds(&self) -> Result<(), FieldError> {
        let counts = [
            ("breaker_failures", self.breaker_failures),
            ("disable_after_failures", self.disable_after_failures),
        ]
        .into_iter()
        .chain(
            self.alert_thresholds
                .iter()
                .map(|&count| ("alert_thresholds", count)),
        );
        for (field, count) in counts {
            if count > MAX_FAILURE_COUNT {
                return Err(FieldError::new(
                    field,
                    format!("must be at most {MAX_FAILURE_COUNT}"),
                ));
            }
        }
        if self.alert_thresholds.len() > MAX_ALERT_THRESHOLDS {
            return Err(FieldError::new(
                "alert_thresholds",
                format!("may hold at most {MAX_ALERT_THRESHOLDS} counts"),
            ));
        }
        let durations = [
            ("breaker_cooldown_seconds", self.breaker_cooldown),
            ("breaker_max_cooldown_seconds", self.breaker_max_cooldown),
            ("disable_after_seconds", self.disable_after),
        ];
        for (field, duration) in durations {
            if duration.as_secs() > MAX_LIMIT_SECONDS {
                return Err(FieldError::new(
                    field,
                    format!("must be at most {MAX_LIMIT_SECONDS} seconds"),
                ));
            }
        }
        Ok(())
    }

    pub fn check(&self) -> Result<(), FieldError> {
        if self.breaker_failures == 0 {
            return Err(FieldError::new("breaker_failures", "must be at least 1"));
        }
        if self.breaker_cooldown.is_zero() {
            return Err(FieldError::new(
                "breaker_cooldown_seconds",
                "must be at least 1",
            ));
        }
        if self.breaker_cooldown > self.breaker_max_cooldown {
            return Err(FieldError::new(
                "breaker_cooldown_seconds",
                format!(
                    "must not exceed breaker_max_cooldown_seconds ({})",
                    self.breaker_max_cooldown.as_secs()
                ),
            ));
        }
        if self.alert_thresholds.contains(&0) {
            return Err(FieldError::new(
                "alert_thresholds",
                "must all be at least 1",
            ));
        }
        if self
            .alert_thresholds
            .windows(2)
            .any(|pair| pair[0] >= pair[1])
        {
            return Err(FieldError::new(
                "alert_thresholds",
                "must be strictly increasing",
            ));
        }
        if self.disable_after_failures == 0 {
            return Err(FieldError::new(
                "disable_after_failures",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) fn test_limits() -> HealthLimits {
    HealthLimits {
        breaker_failures: 5,
        breaker_cooldown: Duration::from_secs(30),
        breaker_max_cooldown: Duration::from_secs(600),
        alert_thresholds: vec![3, 5, 10],
        disable_after_failures: 10,
        disable_after: Duration::from_secs(3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_what_they_set() {
        let overrides = HealthOverrides {
            breaker_failures: Some(2),
            alert_thresholds: Some(vec![1]),
            ..HealthOverrides::default()
        };
        let limits = HealthLimits::resolve(&test_limits(), &overrides).unwrap();
        assert_eq!(limits.breaker_failures, 2);
        assert_eq!(limits.alert_thresholds, vec![1]);
        assert_eq!(limits.disable_after_failures, 10);
    }

    #[test]
    fn contradictions_name_the_field() {
        let refused = |overrides: HealthOverrides| {
            HealthLimits::resolve(&test_limits(), &overrides)
                .unwrap_err()
                .field
        };
        assert_eq!(
            refused(HealthOverrides {
                alert_thresholds: Some(vec![5, 3]),
                ..HealthOverrides::default()
            }),
            "alert_thresholds"
        );
        assert_eq!(
            refused(HealthOverrides {
                alert_thresholds: Some(vec![0, 3]),
                ..HealthOverrides::default()
            }),
            "alert_thresholds"
        );
        assert_eq!(
            refused(HealthOverrides {
                breaker_cooldown_seconds: Some(900),
                ..HealthOverrides::default()
            }),
            "breaker_cooldown_seconds"
        );
        assert_eq!(
            refused(HealthOverrides {
                breaker_failures: Some(0),
                ..HealthOverrides::default()
            }),
            "breaker_failures"
        );
        assert_eq!(
            refused(HealthOverrides {
                disable_after_failures: Some(0),
                ..HealthOverrides::default()
            }),
            "disable_after_failures"
        );
    }

    #[test]
    fn values_past_the_api_bounds_name_the_field() {
        let refused = |limits: HealthLimits| limits.check_bounds().map_err(|e| e.field);
        assert_eq!(refused(test_limits()), Ok(()));
        let at_most = HealthLimits {
            breaker_failures: MAX_FAILURE_COUNT,
            disable_after_failures: MAX_FAILURE_COUNT,
            alert_thresholds: (1..=20).collect(),
            breaker_cooldown: Duration::from_secs(MAX_LIMIT_SECONDS),
            breaker_max_cooldown: Duration::from_secs(MAX_LIMIT_SECONDS),
            disable_after: Duration::from_secs(MAX_LIMIT_SECONDS),
        };
        assert_eq!(refused(at_most), Ok(()));
        let past = MAX_FAILURE_COUNT + 1;
        let too_long = Duration::from_secs(MAX_LIMIT_SECONDS + 1);
        for (limits, field) in [
            (
                HealthLimits {
                    breaker_failures: u32::MAX,
                    ..test_limits()
                },
                "breaker_failures",
            ),
            (
                HealthLimits {
                    disable_after_failures: past,
                    ..test_limits()
                },
                "disable_after_failures",
            ),
            (
                HealthLimits {
                    alert_thresholds: vec![3, past],
                    ..test_limits()
                },
                "alert_thresholds",
            ),
            (
                HealthLimits {
                    alert_thresholds: (1..=21).collect(),
                    ..test_limits()
                },
                "alert_thresholds",
            ),
            (
                HealthLimits {
                    breaker_cooldown: too_long,
                    breaker_max_cooldown: too_long,
                    ..test_limits()
                },
                "breaker_cooldown_seconds",
            ),
            (
                HealthLimits {
                    breaker_max_cooldown: too_long,
                    ..test_limits()
                },
                "breaker_max_cooldown_seconds",
            ),
            (
                HealthLimits {
                    disable_after: too_long,
                    ..test_limits()
                },
                "disable_after_seconds",
            ),
        ] {
            assert_eq!(refused(limits), Err(field.to_owned()), "{field}");
        }
    }

    #[test]
    fn forgetting_an_override_keeps_the_others() {
        let mut overrides = HealthOverrides {
            breaker_failures: Some(2),
            breaker_cooldown_seconds: Some(900),
            ..HealthOverrides::default()
        };
        assert!(overrides.forget("breaker_cooldown_seconds"));
        assert!(!overrides.forget("breaker_cooldown_seconds"));
        assert_eq!(overrides.breaker_failures, Some(2));
        assert!(!overrides.forget("no_such_field"));
    }

    #[test]
    fn no_thresholds_means_no_failing_alerts() {
        let overrides = HealthOverrides {
            alert_thresholds: Some(vec![]),
            ..HealthOverrides::default()
        };
        assert!(HealthLimits::resolve(&test_limits(), &overrides).is_ok());
    }
}
