//! The endpoint's health as attempts end: the breaker, the failure streak,
//! the alerts it raises at each threshold (bounded per threshold within an
//! interval) and the automatic disable.

use super::{Alert, AttemptOutcome, EndpointMachine, HealthState, Lifecycle};
use crate::core::delivery::lifecycle::AttemptVerdict;
use crate::core::health::breaker::CircuitState;
use crate::core::health::failure_policy::{AlertKind, DisableReason};
use crate::core::health::limits::HealthLimits;

impl EndpointMachine {
    /// Feeds an attempt's verdict to the breaker and the streak; returns the
    /// health to save (if it changed), the alerts raised and whether the
    /// endpoint is now disabled.
    pub(super) fn judge(
        &mut self,
        verdict: AttemptVerdict,
        outcome: &AttemptOutcome,
        operational: bool,
        was_probe: bool,
        now: i64,
    ) -> (Option<HealthState>, Vec<Alert>, Option<DisableReason>) {
        let mut alerts = Vec::new();
        let mut disable = None;
        let alerting = self.config.raises_alerts;
        if verdict == AttemptVerdict::Delivered {
            if self.streak.consecutive_failures == 0 && self.breaker.state == CircuitState::Closed {
                return (None, alerts, None);
            }
            let ended = self.streak.clone();
            self.breaker.after_success(&self.config.limits);
            // Only a streak that raised an alert raises its end, so
            // `recovered` is bounded as `failing` is.
            if self.streak.after_success() && alerting {
                alerts.push(Alert {
                    consecutive_failures: ended.consecutive_failures,
                    failing_since: ended.failing_since,
                    ..self.alert(AlertKind::Recovered, Some(outcome), None, now)
                });
            }
        } else {
            let gone = outcome.status == Some(410);
            // Failures of operational events count (breaker, auto-disable)
            // but cross no alert threshold: alerts must not feed alerts.
            let limits = if operational {
                HealthLimits {
                    alert_thresholds: Vec::new(),
                    ..self.config.limits.clone()
                }
            } else {
                self.config.limits.clone()
            };
            let failure = self.streak.after_failure(&limits, now, gone);
            self.breaker.after_failure(
                self.streak.consecutive_failures,
                was_probe,
                &self.config.limits,
                now,
            );
            if alerting {
                for threshold in failure.crossed {
                    if self.failing_bound_allows(threshold, now) {
                        self.streak.alert_raised = true;
                        alerts.push(Alert {
                            threshold: Some(threshold),
                            ..self.alert(AlertKind::Failing, Some(outcome), None, now)
                        });
                    }
                }
                if self.lifecycle == Lifecycle::Active {
                    disable = failure.disable;
                }
                // Once per disable: only an operator's enable starts another.
                if let Some(reason) = disable {
                    alerts.push(self.alert(AlertKind::Disabled, Some(outcome), Some(reason), now));
                }
            }
        }
        (Some(self.health()), alerts, disable)
    }

    /// `endpoint.failing` alerts raised before this machine was built (and
    /// stored), as `(threshold, at)`: the bound on repeats holds across
    /// reloads.
    pub fn recall_failing_alerts(&mut self, raised: &[(u32, i64)]) {
        for &(threshold, at) in raised {
            let last = self.last_failing_alert.entry(threshold).or_insert(at);
            *last = (*last).max(at);
        }
    }

    /// How far back [`recall_failing_alerts`](Self::recall_failing_alerts)
    /// needs to look.
    pub fn alerts_bound_since(&self, now: i64) -> i64 {
        now.saturating_sub(self.config.alert_min_interval_ms)
    }

    /// At most one `endpoint.failing` alert of a threshold per
    /// `alert_min_interval_ms`. A streak crosses each threshold once, so
    /// this bounds only the repeats of new streaks (a flapping endpoint),
    /// never a streak's escalation to a higher threshold.
    pub(super) fn failing_bound_allows(&mut self, threshold: u32, now: i64) -> bool {
        let interval = self.config.alert_min_interval_ms;
        let last = self.last_failing_alert.get(&threshold).copied();
        if interval > 0 && last.is_some_and(|at| now.saturating_sub(at) < interval) {
            return false;
        }
        self.last_failing_alert.insert(threshold, now);
        true
    }

    pub(super) fn alert(
        &self,
        kind: AlertKind,
        outcome: Option<&AttemptOutcome>,
        disabled_reason: Option<DisableReason>,
        now: i64,
    ) -> Alert {
        Alert {
            kind,
            threshold: None,
            consecutive_failures: self.streak.consecutive_failures,
            failing_since: self.streak.failing_since,
            status: outcome.and_then(|o| o.status),
            error: outcome.and_then(|o| o.failure.clone()),
            disabled_reason,
            at: now,
        }
    }

    pub(super) fn health(&self) -> HealthState {
        HealthState {
            streak: self.streak.clone(),
            breaker: self.breaker.clone(),
        }
    }
}
