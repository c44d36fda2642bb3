//! The delivery state machine: the one place where a delivery's state is decided.

use crate::core::delivery::retry;
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

    pub const fn as_str(self) -> &'static str {
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

/// An attempt an operator asked for outside the schedule: a retry of an
/// existing delivery, or the one attempt of an endpoint test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManualAttempt {
    /// One more attempt of a delivery in this state.
    Retry(DeliveryState),
    /// The single attempt of a `hookrelay.ping` test delivery.
    Test,
}

/// What a delivery becomes after a manual attempt. A success settles it;
/// a failed retry leaves it as it was (a pending delivery keeps its
/// schedule, a failed or cancelled one stays so), as a resend does in
/// Svix; a failed test ping is not retried.
pub fn after_manual_attempt(kind: ManualAttempt, verdict: AttemptVerdict) -> DeliveryState {
    match (verdict, kind) {
        (AttemptVerdict::Delivered, _) => DeliveryState::Succeeded,
        (AttemptVerdict::Failed { .. } | AttemptVerdict::Refused, ManualAttempt::Retry(former)) => {
            former
        }
        (AttemptVerdict::Failed { .. } | AttemptVerdict::Refused, ManualAttempt::Test) => {
            DeliveryState::Failed
        }
    }
}

/// The class of an attempt's HTTP status, as the lists filter on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    Redirect,
    ClientError,
    ServerError,
    /// No HTTP answer: a transport failure, or no attempt yet.
    NoResponse,
}

impl StatusClass {
    pub const NAMES: [&'static str; 5] = ["2xx", "3xx", "4xx", "5xx", "none"];

    pub fn parse(value: &str) -> Option<StatusClass> {
        Some(match value {
            "2xx" => StatusClass::Success,
            "3xx" => StatusClass::Redirect,
            "4xx" => StatusClass::ClientError,
            "5xx" => StatusClass::ServerError,
            "none" => StatusClass::NoResponse,
            _ => return None,
        })
    }

    /// The inclusive range of status codes, `None` for no response.
    pub fn codes(self) -> Option<(i32, i32)> {
        match self {
            StatusClass::Success => Some((200, 299)),
            StatusClass::Redirect => Some((300, 399)),
            StatusClass::ClientError => Some((400, 499)),
            StatusClass::ServerError => Some((500, 599)),
            StatusClass::NoResponse => None,
        }
    }
}

/// An endpoint's status change moves its whole backlog from one state to
/// another. The status changes in one small write; the rows follow in
/// batches of their own, so other writes go on between them, and the move
/// under way is recorded on the endpoint so that a restart finishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BacklogMove {
    /// Disabled: pending deliveries are held.
    Hold,
    /// Enabled with replay: held deliveries are pending again, in order.
    Replay,
    /// Enabled without replay: held deliveries are cancelled.
    Cancel,
}

impl BacklogMove {
    const ALL: [BacklogMove; 3] = [BacklogMove::Hold, BacklogMove::Replay, BacklogMove::Cancel];

    pub fn as_str(self) -> &'static str {
        match self {
            BacklogMove::Hold => "hold",
            BacklogMove::Replay => "replay",
            BacklogMove::Cancel => "cancel",
        }
    }

    pub fn parse(value: &str) -> Option<BacklogMove> {
        BacklogMove::ALL.into_iter().find(|m| m.as_str() == value)
    }

    /// The state of the rows it moves.
    pub fn from(self) -> DeliveryState {
        match self {
            BacklogMove::Hold => DeliveryState::Pending,
            BacklogMove::Replay | BacklogMove::Cancel => DeliveryState::Held,
        }
    }

    pub fn to(self) -> DeliveryState {
        match self {
            BacklogMove::Hold => DeliveryState::Held,
            BacklogMove::Replay => DeliveryState::Pending,
            BacklogMove::Cancel => DeliveryState::Cancelled,
        }
    }

    /// Whether the move belongs to an endpoint of this status: holding to a
    /// disabled one, replaying and cancelling to an active one.
    fn fits(self, active: bool) -> bool {
        (self == BacklogMove::Hold) != active
    }
}

/// The move an endpoint's state load finishes: the one recorded, unless a
/// later status change made it stale; else, when rows sit in the state the
/// status forbids (a fan-out that raced a status change), the move that
/// settles them (`stranded` tells whether there are: held rows of an active
/// endpoint, pending rows of a disabled one; it is asked only if needed).
pub fn move_to_finish<E>(
    active: bool,
    recorded: Option<BacklogMove>,
    stranded: impl FnOnce(DeliveryState) -> Result<bool, E>,
) -> Result<Option<BacklogMove>, E> {
    if let Some(recorded) = recorded.filter(|m| m.fits(active)) {
        return Ok(Some(recorded));
    }
    let settle = if active {
        BacklogMove::Replay
    } else {
        BacklogMove::Hold
    };
    Ok(stranded(settle.from())?.then_some(settle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_retry_settles_on_success_and_changes_nothing_on_failure() {
        let failed = AttemptVerdict::Failed { retry_after: None };
        for former in DeliveryState::ALL {
            assert_eq!(
                after_manual_attempt(ManualAttempt::Retry(former), AttemptVerdict::Delivered),
                DeliveryState::Succeeded
            );
            for failure in [failed, AttemptVerdict::Refused] {
                assert_eq!(
                    after_manual_attempt(ManualAttempt::Retry(former), failure),
                    former
                );
            }
        }
    }

    #[test]
    fn a_test_ping_is_attempted_once() {
        let failed = AttemptVerdict::Failed { retry_after: None };
        assert_eq!(
            after_manual_attempt(ManualAttempt::Test, failed),
            DeliveryState::Failed
        );
        assert_eq!(
            after_manual_attempt(ManualAttempt::Test, AttemptVerdict::Delivered),
            DeliveryState::Succeeded
        );
    }

    #[test]
    fn status_classes_cover_their_hundred() {
        assert_eq!(
            StatusClass::parse("4xx").and_then(StatusClass::codes),
            Some((400, 499))
        );
        assert_eq!(
            StatusClass::parse("none").map(StatusClass::codes),
            Some(None)
        );
        for name in StatusClass::NAMES {
            assert!(StatusClass::parse(name).is_some(), "{name}");
        }
        assert_eq!(StatusClass::parse("2XX"), None);
        assert_eq!(StatusClass::parse("6xx"), None);
    }

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

    fn finish(
        active: bool,
        recorded: Option<BacklogMove>,
        stranded_in: Option<DeliveryState>,
    ) -> Option<BacklogMove> {
        let found = move_to_finish(active, recorded, |state| {
            Ok::<_, ()>(stranded_in == Some(state))
        });
        found.expect("the lookup does not fail")
    }

    #[test]
    fn a_recorded_move_is_finished_unless_the_status_no_longer_fits_it() {
        let never = |_| Err("no need to look for stranded rows");
        let hold = move_to_finish(false, Some(BacklogMove::Hold), never);
        assert_eq!(hold, Ok(Some(BacklogMove::Hold)));
        let cancel = move_to_finish(true, Some(BacklogMove::Cancel), never);
        assert_eq!(cancel, Ok(Some(BacklogMove::Cancel)));
        let replay = move_to_finish(true, Some(BacklogMove::Replay), never);
        assert_eq!(replay, Ok(Some(BacklogMove::Replay)));
        // A cancel interrupted by a crash is never turned into a replay, and
        // a disabled endpoint's move is only ever a hold.
        assert_eq!(
            finish(
                false,
                Some(BacklogMove::Cancel),
                Some(DeliveryState::Pending)
            ),
            Some(BacklogMove::Hold)
        );
        assert_eq!(finish(false, Some(BacklogMove::Replay), None), None);
    }

    #[test]
    fn stranded_rows_are_settled_by_the_status() {
        assert_eq!(
            finish(true, None, Some(DeliveryState::Held)),
            Some(BacklogMove::Replay)
        );
        assert_eq!(
            finish(false, None, Some(DeliveryState::Pending)),
            Some(BacklogMove::Hold)
        );
        assert_eq!(finish(true, None, Some(DeliveryState::Pending)), None);
        assert_eq!(finish(false, None, Some(DeliveryState::Held)), None);
    }

    #[test]
    fn moves_round_trip_through_their_names() {
        for kind in BacklogMove::ALL {
            assert_eq!(BacklogMove::parse(kind.as_str()), Some(kind));
            assert_ne!(kind.from(), kind.to());
        }
        assert_eq!(BacklogMove::parse("held"), None);
    }
}
