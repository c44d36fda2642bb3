//! Status changes and backlog moves: disabling holds the pending backlog,
//! enabling replays or cancels what was held, one batch at a time; the
//! status is changed only once nothing is in flight or being moved.

use super::{
    types::Effect, Enabling, EndpointMachine, Lifecycle, ManualDisable, NotReady, UNKNOWN_FLOOR,
};
use crate::core::delivery::lifecycle::BacklogMove;
use crate::core::health::breaker::Breaker;
use crate::core::health::failure_policy::{AlertKind, DisableReason, Streak};

impl EndpointMachine {
    /// A [`Effect::Hold`] write was answered.
    pub fn hold_written(&mut self, written: Result<(), ()>, now: i64) -> Vec<Effect> {
        self.writes_in_flight = self.writes_in_flight.saturating_sub(1);
        if written.is_err() {
            self.reload_after_failure();
        }
        self.pump(now)
    }

    /// An operator disables the endpoint. `Ok(None)`: it already was.
    /// The write records the hold of its backlog ([`BacklogMove::Hold`]).
    pub fn disable(&mut self, now: i64) -> Result<Option<ManualDisable>, NotReady> {
        self.ready_for_status_change()?;
        match self.lifecycle {
            Lifecycle::Disabled => Ok(None),
            // A replay or a cancellation under way finishes first.
            _ if self.moving.is_some() => Err(NotReady::Later),
            _ => {
                self.become_disabled();
                self.moving = Some(BacklogMove::Hold);
                let alert = self.alert(AlertKind::Disabled, None, Some(DisableReason::Manual), now);
                Ok(Some(ManualDisable { alert }))
            }
        }
    }

    /// An operator enables the endpoint; the write records the move of its
    /// held deliveries (`kind`: replay or cancel). On an active endpoint the
    /// streak goes on, so its alerts are not raised twice.
    pub fn enable(&mut self, kind: BacklogMove, now: i64) -> Result<Enabling, NotReady> {
        self.ready_for_status_change()?;
        // The hold under way (or one an attempt's write is about to record)
        // finishes first, so that what it holds is replayed or cancelled.
        let disabling = self
            .unsettled
            .values()
            .any(|u| u.decision.disable.is_some());
        if self.moving.is_some() || disabling {
            return Err(NotReady::Later);
        }
        let reset = match self.lifecycle {
            Lifecycle::Disabled => {
                let alert = self.alert(AlertKind::Enabled, None, None, now);
                self.lifecycle = Lifecycle::Active;
                self.streak = Streak::default();
                self.breaker = Breaker::closed(&self.config.limits);
                Some((self.health(), alert))
            }
            _ => None,
        };
        self.moving = Some(kind);
        Ok(Enabling { reset })
    }

    /// Status changes wait for the saved state and are refused for good
    /// once the endpoint shuts down or is deleted.
    pub(super) fn ready_for_status_change(&self) -> Result<(), NotReady> {
        match self.lifecycle {
            Lifecycle::Loading | Lifecycle::Reloading { .. } => Err(NotReady::Later),
            Lifecycle::Draining | Lifecycle::Retired => Err(NotReady::Closed),
            Lifecycle::Active | Lifecycle::Disabled => Ok(()),
        }
    }

    /// The status change's write committed; `to_move` is how many rows
    /// its move concerns, when counted (none: it recorded no move). The
    /// move starts, and replayed deliveries are paged in as they become
    /// pending, in order.
    pub fn status_written(&mut self, to_move: Option<usize>, now: i64) -> Vec<Effect> {
        if to_move == Some(0) {
            self.moving = None;
        }
        if self.lifecycle == Lifecycle::Active {
            // A page being read skips what the window held: it must be
            // followed by another.
            self.forget_window();
            self.leave_on_disk(UNKNOWN_FLOOR);
        }
        let mut effects = self.next_batch();
        effects.extend(self.pump(now));
        effects
    }

    /// The status change's write failed: memory no longer matches the
    /// disk, so reload once nothing is outstanding.
    pub fn status_write_failed(&mut self, now: i64) -> Vec<Effect> {
        self.moving = None;
        self.reload_after_failure();
        self.pump(now)
    }

    /// A batch of the backlog move `kind` was written; `Ok(true)`: more
    /// rows are left. A move recorded meanwhile (an attempt's write that
    /// disabled the endpoint during a replay) takes over with its own
    /// batches. A failed batch reloads the state, which finishes the move.
    pub fn batch_moved(
        &mut self,
        kind: BacklogMove,
        written: Result<bool, ()>,
        now: i64,
    ) -> Vec<Effect> {
        self.batch_in_flight = false;
        let mut effects = Vec::new();
        match written {
            Ok(more) => {
                if kind == BacklogMove::Replay
                    && matches!(self.lifecycle, Lifecycle::Active | Lifecycle::Draining)
                {
                    // Deliveries just became pending on disk: page them in.
                    self.leave_on_disk(UNKNOWN_FLOOR);
                }
                if !more && self.moving == Some(kind) {
                    self.moving = None;
                }
                effects.extend(self.next_batch());
            }
            Err(()) => {
                self.moving = None;
                self.reload_after_failure();
            }
        }
        effects.extend(self.pump(now));
        effects
    }

    /// The next batch of the move under way, unless the endpoint reloads
    /// (its load finishes the move), shuts down or is gone.
    pub(super) fn next_batch(&mut self) -> Vec<Effect> {
        match self.moving {
            Some(kind)
                if !self.batch_in_flight
                    && matches!(self.lifecycle, Lifecycle::Active | Lifecycle::Disabled) =>
            {
                self.batch_in_flight = true;
                vec![Effect::MoveBatch(kind)]
            }
            _ => Vec::new(),
        }
    }
}
