//! Starting attempts and taking their outcomes: the in-flight limit, the
//! breaker's permit, the rate limit, wake-ups, and what a failed write of
//! an attempt's result leads to (tried again with a backoff and a cap, then
//! a reload from the database instead of sending again).

use super::{
    millis, min_opt, AttemptDecision, AttemptOutcome, Effect, EndpointMachine, Lifecycle,
    PageOrder, Unsettled,
};
use crate::core::delivery::lifecycle::{
    after_attempt, verdict_for_status, AttemptVerdict, BacklogMove, DeliveryState,
};
use crate::core::delivery::retry::doubling_backoff;
use crate::core::health::breaker::Permit;
use std::time::Duration;

impl EndpointMachine {
    /// An attempt ended; `jitter` is a random number in [-1, 1].
    pub fn attempt_finished(
        &mut self,
        delivery_id: &str,
        outcome: &AttemptOutcome,
        now: i64,
        jitter: f64,
    ) -> (Option<AttemptDecision>, Vec<Effect>) {
        let Some(mut delivery) = self.in_flight.remove(delivery_id) else {
            return (None, self.pump(now));
        };
        let was_probe = self.probe.as_deref() == Some(delivery_id);
        if was_probe {
            self.probe = None;
        }
        delivery.attempt_count = delivery.attempt_count.saturating_add(1);
        let verdict = match outcome.status {
            Some(status) => {
                verdict_for_status(status, outcome.retry_after, self.config.retry_client_errors)
            }
            None => AttemptVerdict::Failed { retry_after: None },
        };
        let (health, alerts, disable) =
            self.judge(verdict, outcome, delivery.is_operational(), was_probe, now);
        if disable.is_some() {
            self.become_disabled();
        }
        let active = self.lifecycle != Lifecycle::Disabled;
        let transition = after_attempt(
            verdict,
            delivery.attempt_count,
            &self.config.retry_schedule,
            jitter,
            active,
        );
        let next_attempt_at = transition
            .retry_in
            .map(|delay| now.saturating_add(millis(delay)));
        if let Some(due_at) = next_attempt_at {
            delivery.due_at = due_at;
        }
        let decision = AttemptDecision {
            delivery_id: delivery.id.clone(),
            attempt: delivery.attempt_count,
            state: transition.state,
            next_attempt_at,
            health,
            alerts,
            disable,
        };
        self.unsettled.insert(
            delivery.id.clone(),
            Unsettled {
                delivery,
                decision: decision.clone(),
            },
        );
        (Some(decision), self.pump(now))
    }

    /// The write of an attempt's decision was answered (`Err`: it failed
    /// for good, after the shell's tries).
    pub fn attempt_recorded(
        &mut self,
        delivery_id: &str,
        written: Result<(), ()>,
        now: i64,
    ) -> Vec<Effect> {
        let Some(Unsettled { delivery, decision }) = self.unsettled.remove(delivery_id) else {
            return self.pump(now);
        };
        if self.page_in_flight {
            self.settled_during_page.insert(delivery.id.clone());
        }
        let settled_meanwhile = self.settled_meanwhile.remove(delivery_id);
        let mut effects = Vec::new();
        match written {
            Ok(()) => {
                if decision.disable.is_some() && self.lifecycle == Lifecycle::Disabled {
                    effects.push(Effect::Disabled);
                    // The write recorded the hold of the backlog.
                    self.moving = Some(BacklogMove::Hold);
                    effects.extend(self.next_batch());
                }
                if decision.state == DeliveryState::Pending && !settled_meanwhile {
                    self.readmit(delivery);
                }
            }
            // The shell tried the write again (`attempt_write_retry`) and
            // gave up. What the database holds (the delivery as it was
            // before the attempt, and the streak without it) is the truth:
            // the machine reloads it after its backoff instead of sending
            // again from memory, so a database that keeps refusing writes
            // sees one more attempt a reload, not one a second.
            Err(()) => self.reload_after_failure(),
        }
        effects.extend(self.pump(now));
        effects
    }

    /// Starts every attempt the limits and the breaker allow, asks for the
    /// next page when the window runs low, and arms the next wake-up.
    pub(super) fn pump(&mut self, now: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        match self.lifecycle {
            Lifecycle::Active => {}
            Lifecycle::Reloading { failed } => {
                if self.quiet() {
                    self.lifecycle = Lifecycle::Loading;
                    self.forget_window();
                    // The shell drops the timer: the next one must be armed
                    // even if it is due at the time this one was.
                    self.wake_at = None;
                    effects.push(Effect::Reload { failed });
                }
                return effects;
            }
            Lifecycle::Draining => {
                if self.in_flight.is_empty() && self.unsettled.is_empty() {
                    effects.push(Effect::Drained);
                }
                return effects;
            }
            Lifecycle::Loading | Lifecycle::Disabled | Lifecycle::Retired => return effects,
        }
        let mut breaker_wait = None;
        let mut rate_wait = None;
        while self.in_flight.len() < self.config.max_in_flight {
            let Some(key) = self.next_to_send(now) else {
                break;
            };
            let probe = match self.breaker.permit(now) {
                Permit::Send => false,
                Permit::Probe => true,
                Permit::WaitUntil(at) => {
                    breaker_wait = Some(at);
                    break;
                }
                Permit::AwaitProbe => break,
            };
            if let Some(Err(free_at)) = self.rate_limit.as_mut().map(|limit| limit.take(now)) {
                rate_wait = Some(free_at);
                break;
            }
            if let Some(delivery) = self.take(&key) {
                if probe {
                    self.probe = Some(delivery.id.clone());
                }
                self.in_flight.insert(delivery.id.clone(), delivery.clone());
                effects.push(Effect::Send(delivery));
            }
            if probe {
                break;
            }
        }
        // A due delivery held back by the breaker waits for `breaker_wait`,
        // by the rate limit for `rate_wait`; one held back by the in-flight
        // limit, for an attempt to end.
        let next_due = self
            .window
            .values()
            .next()
            .map(|delivery| delivery.due_at)
            .filter(|due_at| *due_at > now);
        self.recent_pages.forget_old(now);
        let mut next = min_opt(min_opt(breaker_wait, rate_wait), next_due);
        if let Some(floor) = self.disk_floor {
            let low = self.window.len() <= self.config.window.deliveries / 2
                && self.window_bytes <= self.config.window.bytes / 2;
            if self.config.ordered {
                next = min_opt(next, self.page_in_line_order(floor, low, now, &mut effects));
            } else if floor <= now && low && !self.page_in_flight {
                effects.push(self.load_page(PageOrder::Due));
            } else if floor > now {
                next = min_opt(next, Some(floor));
            }
        }
        if let Some(at) = next.filter(|at| *at > now) {
            if self.wake_at.is_none_or(|armed| armed > at || armed <= now) {
                self.wake_at = Some(at);
                effects.push(Effect::WakeAt(at));
            }
        }
        if self.quiet() {
            effects.extend(self.wake_to_forget_pages(now));
        }
        effects
    }

    /// The window's first delivery, if it may be sent now: it is due and,
    /// on an ordered endpoint, it heads the line.
    pub(super) fn next_to_send(&self, now: i64) -> Option<(i64, String)> {
        let (key, delivery) = self.window.iter().next()?;
        if delivery.due_at > now || (self.config.ordered && !self.heads_the_line(key.0)) {
            return None;
        }
        Some(key.clone())
    }
}

/// Why the last write or load failed, which decides how long a reload waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFailure {
    /// The database was unreachable or the writer refused work meanwhile.
    DatabaseAway,
    /// The database answered and refused this endpoint's work.
    Refused,
}

/// How long a reload caused by the `failures`-th failure in a row waits:
/// 1 s, doubling, at most 5 minutes. While the database is away the wait
/// stops growing at 5 s: the writer turns work away at once and cheaply
/// then, and the endpoint should resume within seconds of its return.
pub fn reload_backoff(failures: u32, cause: WriteFailure) -> Duration {
    let cap = match cause {
        WriteFailure::DatabaseAway => MAX_RELOAD_BACKOFF_WHILE_AWAY,
        WriteFailure::Refused => MAX_RELOAD_BACKOFF,
    };
    doubling_backoff(Duration::from_secs(1), failures, cap)
}

pub(super) const MAX_RELOAD_BACKOFF: Duration = Duration::from_secs(300);

/// How long the shell waits before writing a finished attempt again after
/// its `failures`-th failed write (1 s, doubling), or `None` once it has
/// tried [`ATTEMPT_WRITE_TRIES`] times: the machine then reloads
/// ([`EndpointMachine::attempt_recorded`]).
pub fn attempt_write_retry(failures: u32) -> Option<Duration> {
    (failures < ATTEMPT_WRITE_TRIES)
        .then(|| Duration::from_secs(1u64 << failures.saturating_sub(1).min(16)))
}

/// Writes of one attempt's result, the first included.
pub(super) const ATTEMPT_WRITE_TRIES: u32 = 5;

pub(super) const MAX_RELOAD_BACKOFF_WHILE_AWAY: Duration = Duration::from_secs(5);
