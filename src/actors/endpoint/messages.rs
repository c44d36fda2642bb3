//! The messages an endpoint actor takes and sends, and how it handles
//! each: by handing the event to its machine and carrying out the effects.

use super::status::StatusChange;
use super::EndpointActor;
use crate::core::endpoint::EndpointConfig;
use crate::core::endpoint_machine::{MachineSnapshot, QueuedDelivery};
use crate::core::health::breaker::Breaker;
use crate::core::health::limits::HealthLimits;
use crate::store::endpoint_state::{EnableOutcome, Replay};
use crate::store::models::{AlertRow, EndpointHealthRow};
use crate::store::StoreError;
use crate::time::now_ms;
use actix::prelude::*;
use std::sync::Arc;
use tokio::sync::oneshot;

/// What an endpoint actor tells the router.
#[derive(Message)]
#[rtype(result = "()")]
pub enum EndpointNotice {
    /// Alerts just stored, to be dispatched.
    AlertsRaised(Vec<AlertRow>),
    /// The endpoint disabled itself (failures or 410 Gone); committed.
    Disabled(String),
    /// A write found that another instance owns the endpoint now: the
    /// actor has stopped.
    LeaseLost(String),
}

/// New deliveries, already committed, for this endpoint.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub Vec<QueuedDelivery>);

/// The endpoint was changed: finish what is outstanding, then reload with
/// the new configuration.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure(pub Arc<EndpointConfig>);

/// The endpoint was deleted: drop the queue and stop for good.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

/// Stop starting attempts; answers once none is in flight.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// An operator disables the endpoint; answers `false` if it already was.
#[derive(Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct Disable;

#[derive(Message)]
#[rtype(result = "Result<EnableOutcome, StoreError>")]
pub struct Enable(pub Replay);

#[derive(Message)]
#[rtype(result = "EndpointSnapshot")]
pub struct GetSnapshot;

/// The delivery (id, place in the line) was settled by an operator's
/// manual attempt: drop it from the window so it is not sent again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SettledElsewhere(pub String, pub i64);

/// Pending deliveries were written to disk behind the actor's back (a
/// recovery): page them in.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkOnDisk;

/// The live state of an endpoint, as its actor holds it.
#[derive(Debug, Clone)]
pub struct EndpointSnapshot {
    pub machine: MachineSnapshot,
    /// Reloads of the saved state: after a change of configuration, a
    /// failed write or a stop.
    pub restarts: u32,
    pub last_error: Option<String>,
    /// Attempts waiting for a slot of the attempt budget (not yet sent).
    pub waiting_for_slot: usize,
}

impl EndpointSnapshot {
    /// An endpoint's state as stored (`saved`: its breaker and streak, if
    /// any were saved), for an endpoint whose actor runs elsewhere.
    pub fn stored(saved: Option<&EndpointHealthRow>, limits: &HealthLimits) -> EndpointSnapshot {
        EndpointSnapshot {
            machine: MachineSnapshot {
                breaker: saved.map_or_else(|| Breaker::closed(limits), EndpointHealthRow::breaker),
                streak: saved.map(EndpointHealthRow::streak).unwrap_or_default(),
                queued: 0,
                in_flight: 0,
                backlog_on_disk: true,
                moving: None,
            },
            restarts: 0,
            last_error: None,
            waiting_for_slot: 0,
        }
    }
}

impl Handler<Enqueue> for EndpointActor {
    type Result = ();

    fn handle(&mut self, Enqueue(deliveries): Enqueue, ctx: &mut Context<Self>) {
        let effects = self.machine.enqueue(deliveries, now_ms());
        self.carry_out(effects, ctx);
    }
}

impl Handler<Reconfigure> for EndpointActor {
    type Result = ();

    fn handle(&mut self, Reconfigure(config): Reconfigure, ctx: &mut Context<Self>) {
        self.config = config;
        let effects = self.machine.reconfigure(now_ms());
        self.carry_out(effects, ctx);
    }
}

impl Handler<Retire> for EndpointActor {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        self.retired = true;
        self.machine.retire();
        ctx.stop();
    }
}

impl Handler<Drain> for EndpointActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let (done, finished) = oneshot::channel();
        self.drained.push(done);
        let effects = self.machine.drain(now_ms());
        self.carry_out(effects, ctx);
        Box::pin(async move {
            let _ = finished.await;
        })
    }
}

/// The answer to a queued status change; an actor that stopped for good
/// (its endpoint deleted) drops the question unanswered.
async fn answer_of<T>(answer: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
    answer.await.unwrap_or_else(|_| {
        Err(StoreError::Busy(
            "the endpoint's actor stopped before answering".to_owned(),
        ))
    })
}

impl Handler<Disable> for EndpointActor {
    type Result = ResponseFuture<Result<bool, StoreError>>;

    fn handle(&mut self, _: Disable, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        self.queue_status_change(StatusChange::Disable(reply), ctx);
        Box::pin(answer_of(answer))
    }
}

impl Handler<Enable> for EndpointActor {
    type Result = ResponseFuture<Result<EnableOutcome, StoreError>>;

    /// Re-activates a disabled endpoint with a fresh streak and breaker.
    fn handle(&mut self, Enable(replay): Enable, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        self.queue_status_change(StatusChange::Enable(replay, reply), ctx);
        Box::pin(answer_of(answer))
    }
}

impl Handler<GetSnapshot> for EndpointActor {
    type Result = MessageResult<GetSnapshot>;

    fn handle(&mut self, _: GetSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(EndpointSnapshot {
            machine: self.machine.snapshot(),
            restarts: self.restarts,
            last_error: self.last_error.clone(),
            waiting_for_slot: self.waiting_for_slot,
        })
    }
}

impl Handler<WorkOnDisk> for EndpointActor {
    type Result = ();

    fn handle(&mut self, _: WorkOnDisk, ctx: &mut Context<Self>) {
        let effects = self.machine.work_on_disk(now_ms());
        self.carry_out(effects, ctx);
    }
}

impl Handler<SettledElsewhere> for EndpointActor {
    type Result = ();

    fn handle(
        &mut self,
        SettledElsewhere(delivery_id, seq): SettledElsewhere,
        ctx: &mut Context<Self>,
    ) {
        let effects = self.machine.settled_elsewhere(&delivery_id, seq, now_ms());
        self.carry_out(effects, ctx);
    }
}
