//! An operator's status changes (disable, enable): queued in order, each
//! written with the mailbox paused once the machine is ready for it.

use super::{fenced, EndpointActor, EndpointNotice};
use crate::core::endpoint_machine::{Enabling, ManualDisable, NotReady};
use crate::store::endpoint_state::{self, EnableOutcome, Replay};
use crate::store::models::EndpointHealthRow;
use crate::store::StoreError;
use crate::time::now_ms;
use actix::prelude::*;
use tokio::sync::oneshot;

/// An operator's status change waiting for its turn, with its caller.
pub(super) enum StatusChange {
    Disable(oneshot::Sender<Result<bool, StoreError>>),
    Enable(Replay, oneshot::Sender<Result<EnableOutcome, StoreError>>),
}

impl EndpointActor {
    /// Hands the oldest waiting status change to the machine, unless it
    /// must wait longer. Called after every event the machine handled; the
    /// change's write pauses the mailbox, and its answer calls this again.
    pub(super) fn next_status_change(&mut self, ctx: &mut Context<Self>) {
        while let Some(change) = self.status_changes.pop_front() {
            let now = now_ms();
            match change {
                StatusChange::Disable(reply) => match self.machine.disable(now) {
                    Err(NotReady::Later) => {
                        self.status_changes.push_front(StatusChange::Disable(reply));
                        return;
                    }
                    Err(NotReady::Closed) => {
                        let _ = reply.send(Err(self.closed()));
                    }
                    Ok(None) => {
                        let _ = reply.send(Ok(false));
                    }
                    Ok(Some(plan)) => return self.write_disable(plan, reply, ctx),
                },
                StatusChange::Enable(replay, reply) => {
                    match self.machine.enable(replay.backlog_move(), now) {
                        Err(NotReady::Later) => {
                            self.status_changes
                                .push_front(StatusChange::Enable(replay, reply));
                            return;
                        }
                        Err(NotReady::Closed) => {
                            let _ = reply.send(Err(self.closed()));
                        }
                        Ok(plan) => return self.write_enable(plan, replay, reply, ctx),
                    }
                }
            }
        }
    }

    fn closed(&self) -> StoreError {
        StoreError::Busy(format!(
            "endpoint {}: it is shutting down or was deleted",
            self.config.id
        ))
    }

    /// Queues a status change behind the ones already waiting.
    pub(super) fn queue_status_change(&mut self, change: StatusChange, ctx: &mut Context<Self>) {
        self.status_changes.push_back(change);
        self.next_status_change(ctx);
    }

    /// Writes a disable with the mailbox paused, so no delivery is queued
    /// or held against a half-applied status; the hold follows in batches.
    fn write_disable(
        &mut self,
        plan: ManualDisable,
        reply: oneshot::Sender<Result<bool, StoreError>>,
        ctx: &mut Context<Self>,
    ) {
        let alert = self.alert_row(&plan.alert);
        let (endpoint_id, stored) = (self.config.id.clone(), alert.clone());
        let write = self.deps.writer.call(fenced(&self.fence, move |db| {
            endpoint_state::disable(db, &endpoint_id, &stored, now_ms())
        }));
        ctx.wait(write.into_actor(self).map(move |written, act, ctx| {
            let effects = match &written {
                Ok(()) => {
                    act.deps
                        .notices
                        .do_send(EndpointNotice::AlertsRaised(vec![alert]));
                    act.machine.status_written(None, now_ms())
                }
                Err(error) => {
                    act.failed("disabling", error);
                    act.machine.status_write_failed(now_ms())
                }
            };
            let _ = reply.send(written.map(|()| true));
            act.carry_out(effects, ctx);
        }));
    }

    /// Writes an enable like [`Self::write_disable`]: a fresh streak and
    /// breaker, and the count of held deliveries, which are then replayed
    /// (paged in from disk in their order) or cancelled in batches.
    fn write_enable(
        &mut self,
        plan: Enabling,
        replay: Replay,
        reply: oneshot::Sender<Result<EnableOutcome, StoreError>>,
        ctx: &mut Context<Self>,
    ) {
        let now = now_ms();
        let reset = plan.reset.map(|(health, alert)| {
            (
                EndpointHealthRow::new(&self.config.id, &health.streak, &health.breaker, now),
                self.alert_row(&alert),
            )
        });
        let alert = reset.as_ref().map(|(_, alert)| alert.clone());
        let endpoint_id = self.config.id.clone();
        let write = self.deps.writer.call(fenced(&self.fence, move |db| {
            let reset = reset.as_ref().map(|(health, alert)| (health, alert));
            endpoint_state::enable(db, &endpoint_id, reset, replay, now_ms())
        }));
        ctx.wait(write.into_actor(self).map(move |written, act, ctx| {
            let effects = match &written {
                Ok(outcome) => {
                    if let Some(alert) = alert {
                        act.deps
                            .notices
                            .do_send(EndpointNotice::AlertsRaised(vec![alert]));
                    }
                    act.machine
                        .status_written(Some(outcome.to_move()), now_ms())
                }
                Err(error) => {
                    act.failed("enabling", error);
                    act.machine.status_write_failed(now_ms())
                }
            };
            let _ = reply.send(written);
            act.carry_out(effects, ctx);
        }));
    }
}
