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
}

/// Only a 2xx is a success: redirects are not followed, so a 3xx fails.
pub fn verdict_for_status(status: u16, retry_after: Option<Duration>) -> AttemptVerdict {
    match status {
        200..=299 => AttemptVerdict::Delivered,
        429 | 503 => AttemptVerdict::Failed { retry_after },
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
            verdict_for_status(302, None),
            AttemptVerdict::Failed { retry_after: None }
        );
        assert_eq!(verdict_for_status(204, None), AttemptVerdict::Delivered);
    }

    #[test]
    fn retry_after_counts_only_for_429_and_503() {
        let asked = Some(Duration::from_secs(9));
        assert_eq!(
            verdict_for_status(429, asked),
            AttemptVerdict::Failed { retry_after: asked }
        );
        assert_eq!(
            verdict_for_status(500, asked),
            AttemptVerdict::Failed { retry_after: None }
        );
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
