//! The delivery state machine: the one place where a delivery's state is decided.

use super::retry;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt (due now or at `next_attempt_at`).
    Pending,
    Succeeded,
    /// Every scheduled attempt failed; kept and visible.
    Failed,
    /// Its endpoint is disabled: kept, not attempted, until it is enabled.
    Held,
    /// Its endpoint was enabled without replay; kept and visible.
    Cancelled,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 5] = [
        DeliveryState::Pending,
        DeliveryState::Succeeded,
        DeliveryState::Failed,
        DeliveryState::Held,
        DeliveryState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
            DeliveryState::Held => "held",
            DeliveryState::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Option<DeliveryState> {
        DeliveryState::ALL
            .into_iter()
            .find(|state| state.as_str() == value)
    }
}

/// How one HTTP attempt ended, as far as the state machine cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptVerdict {
    Delivered,
    /// Failed; `retry_after` is the receiver's own request, when it made one
    /// with a status that allows it (429 or 503).
    Failed {
        retry_after: Option<Duration>,
    },
    /// Failed, and the receiver's answer says that trying again is useless:
    /// the delivery fails without waiting for its schedule.
    Refused,
}

/// Only a 2xx is a success: redirects are not followed, so a 3xx fails.
/// Without `retry_client_errors`, a 4xx refuses the delivery for good,
/// except 408 and 429, which ask for another try.
pub fn verdict_for_status(
    status: u16,
    retry_after: Option<Duration>,
    retry_client_errors: bool,
) -> AttemptVerdict {
    match status {
        200..=299 => AttemptVerdict::Delivered,
        429 | 503 => AttemptVerdict::Failed { retry_after },
        408 => AttemptVerdict::Failed { retry_after: None },
        400..=499 if !retry_client_errors => AttemptVerdict::Refused,
        _ => AttemptVerdict::Failed { retry_after: None },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub state: DeliveryState,
    /// Set when `state` is `Pending`: how long until the next attempt.
    pub retry_in: Option<Duration>,
}

/// What a delivery becomes after its `attempts_made`-th attempt. A delivery
/// that would wait for a retry is held instead when its endpoint has been
/// disabled meanwhile; one that failed for good stays failed.
pub fn after_attempt(
    verdict: AttemptVerdict,
    attempts_made: u32,
    schedule: &[u32],
    jitter_unit: f64,
    endpoint_active: bool,
) -> Transition {
    let transition = next_state(verdict, attempts_made, schedule, jitter_unit);
    if transition.state == DeliveryState::Pending && !endpoint_active {
        return Transition {
            state: DeliveryState::Held,
            retry_in: None,
        };
    }
    transition
}

fn next_state(
    verdict: AttemptVerdict,
    attempts_made: u32,
    schedule: &[u32],
    jitter_unit: f64,
) -> Transition {
    match verdict {
        AttemptVerdict::Delivered => Transition {
            state: DeliveryState::Succeeded,
            retry_in: None,
        },
        AttemptVerdict::Refused => Transition {
            state: DeliveryState::Failed,
            retry_in: None,
        },
        AttemptVerdict::Failed { retry_after } => {
            match retry::next_delay(schedule, attempts_made, jitter_unit, retry_after) {
                Some(delay) => Transition {
                    state: DeliveryState::Pending,
                    retry_in: Some(delay),
                },
                None => Transition {
                    state: DeliveryState::Failed,
                    retry_in: None,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_ends_the_delivery() {
        let t = after_attempt(AttemptVerdict::Delivered, 3, &[1, 2], 0.0, true);
        assert_eq!(t.state, DeliveryState::Succeeded);
        assert_eq!(t.retry_in, None);
    }

    #[test]
    fn failure_retries_until_the_schedule_is_spent() {
        let failed = AttemptVerdict::Failed { retry_after: None };
        let first = after_attempt(failed, 1, &[5], 0.0, true);
        assert_eq!(first.state, DeliveryState::Pending);
        assert_eq!(first.retry_in, Some(Duration::from_secs(5)));
        assert_eq!(
            after_attempt(failed, 2, &[5], 0.0, true).state,
            DeliveryState::Failed
        );
    }

    #[test]
    fn a_retry_for_a_disabled_endpoint_is_held() {
        let failed = AttemptVerdict::Failed { retry_after: None };
        let held = after_attempt(failed, 1, &[5], 0.0, false);
        assert_eq!(held.state, DeliveryState::Held);
        assert_eq!(held.retry_in, None);
        assert_eq!(
            after_attempt(failed, 2, &[5], 0.0, false).state,
            DeliveryState::Failed
        );
        assert_eq!(
            after_attempt(AttemptVerdict::Delivered, 1, &[5], 0.0, false).state,
            DeliveryState::Succeeded
        );
    }

    #[test]
    fn redirects_and_server_errors_fail() {
        assert_eq!(
            verdict_for_status(302, None, true),
            AttemptVerdict::Failed { retry_after: None }
        );
        assert_eq!(
            verdict_for_status(204, None, true),
            AttemptVerdict::Delivered
        );
    }

    #[test]
    fn retry_after_counts_only_for_429_and_503() {
        let asked = Some(Duration::from_secs(9));
        assert_eq!(
            verdict_for_status(429, asked, true),
            AttemptVerdict::Failed { retry_after: asked }
        );
        assert_eq!(
            verdict_for_status(500, asked, true),
            AttemptVerdict::Failed { retry_after: None }
        );
    }

    #[test]
    fn client_errors_refuse_the_delivery_only_when_the_endpoint_says_so() {
        assert_eq!(
            verdict_for_status(404, None, true),
            AttemptVerdict::Failed { retry_after: None }
        );
        assert_eq!(
            verdict_for_status(404, None, false),
            AttemptVerdict::Refused
        );
        assert_eq!(
            verdict_for_status(400, None, false),
            AttemptVerdict::Refused
        );
        let asked = Some(Duration::from_secs(9));
        assert_eq!(
            verdict_for_status(429, asked, false),
            AttemptVerdict::Failed { retry_after: asked }
        );
        assert_eq!(
            verdict_for_status(408, None, false),
            AttemptVerdict::Failed { retry_after: None }
        );
        assert_eq!(
            verdict_for_status(500, None, false),
            AttemptVerdict::Failed { retry_after: None }
        );
    }

    #[test]
    fn a_refused_delivery_fails_with_retries_left() {
        let refused = after_attempt(AttemptVerdict::Refused, 1, &[5, 60], 0.0, true);
        assert_eq!(refused.state, DeliveryState::Failed);
        assert_eq!(refused.retry_in, None);
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(state.as_str()), Some(state));
        }
        assert_eq!(DeliveryState::parse("lost"), None);
    }
}
