//! One supervised actor per endpoint: the shell around its
//! [`EndpointMachine`]. It feeds the machine every event (a delivery
//! arrived, an attempt or a write finished, a timer fired, an operator
//! acted) and carries out the effects it returns: send over HTTP, write
//! through the writer, read a page, arm a timer, notify the router.
//!
//! The database is the truth. The machine holds a bounded window of the
//! endpoint's pending deliveries; the rest is paged in from disk. On start,
//! and on every reload, the actor loads the endpoint's saved state in one
//! unit of work ([`endpoint_state::load`]) with its mailbox paused.
//!
//! A status change (disable, enable) is one small write with the mailbox
//! paused; the backlog it moves follows in batches, each a writer job of
//! its own ([`endpoint_state::move_batch`]), so every other endpoint's
//! writes go on between them. A status change that arrives while the state
//! loads, or while a move is under way, waits in a queue, in order.

use crate::core::attempt_budget::AttemptBudget;
use crate::core::delivery::BacklogMove;
use crate::core::endpoint::EndpointConfig;
use crate::core::endpoint_machine::{
    attempt_write_retry, reload_backoff, AttemptDecision, AttemptOutcome, Effect, Enabling,
    EndpointMachine, MachineConfig, MachineSnapshot, ManualDisable, NotReady, PageOrder,
    QueuedDelivery, WindowLimits, WriteFailure,
};
use crate::core::move_pace::MovePace;
use crate::core::redact;
use crate::sender::{self, AttemptReport, Slot};
use crate::store::deliveries::{self, AttemptRecord, AttemptWrite};
use crate::store::endpoint_state::{self, BodyCache, EnableOutcome, Replay};
use crate::store::models::{AlertRow, EndpointHealthRow};
use crate::store::writer::Writer;
use crate::store::{Store, StoreError};
use crate::time::now_ms;
use actix::prelude::*;
use rand::Rng;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Settings every endpoint actor shares.
#[derive(Debug, Clone, Copy)]
pub struct ActorSettings {
    pub window: WindowLimits,
    /// The shortest time between two `endpoint.failing` alerts of one
    /// threshold from one endpoint (in different streaks).
    pub alert_min_interval: Duration,
    /// Deliveries moved by one writer job when a status change moves a
    /// backlog (see [`endpoint_state::move_batch`]).
    pub move_batch: usize,
    /// The service's attempt budget, which bounds an endpoint's in-flight.
    pub attempt_budget: AttemptBudget,
}

/// Everything an endpoint actor needs besides its configuration.
#[derive(Clone)]
pub struct ActorDeps {
    pub writer: Writer,
    pub store: Store,
    pub bodies: BodyCache,
    pub transport: sender::Transport,
    pub notices: Recipient<EndpointNotice>,
    pub settings: ActorSettings,
}

/// What an endpoint actor tells the router.
#[derive(Message)]
#[rtype(result = "()")]
pub enum EndpointNotice {
    /// Alerts just stored, to be dispatched.
    AlertsRaised(Vec<AlertRow>),
    /// The endpoint disabled itself (failures or 410 Gone); committed.
    Disabled(String),
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

/// An operator's status change waiting for its turn, with its caller.
enum StatusChange {
    Disable(oneshot::Sender<Result<bool, StoreError>>),
    Enable(Replay, oneshot::Sender<Result<EnableOutcome, StoreError>>),
}

pub struct EndpointActor {
    config: Arc<EndpointConfig>,
    deps: ActorDeps,
    machine: EndpointMachine,
    /// Status changes not yet taken by the machine, oldest first.
    status_changes: VecDeque<StatusChange>,
    wake: Option<SpawnHandle>,
    forget_pages: Option<SpawnHandle>,
    move_pace: MovePace,
    drained: Vec<oneshot::Sender<()>>,
    retired: bool,
    restarts: u32,
    /// Failures since the last successful write: the reload backoff.
    failures_in_a_row: u32,
    last_failure: WriteFailure,
    last_error: Option<String>,
    /// Attempts the machine sent that wait for a slot of the budget.
    waiting_for_slot: usize,
}

impl EndpointActor {
    pub fn new(config: Arc<EndpointConfig>, deps: ActorDeps) -> Self {
        let machine = EndpointMachine::new(machine_config(&config, &deps.settings));
        let move_pace = MovePace::new(deps.settings.move_batch);
        EndpointActor {
            config,
            deps,
            machine,
            status_changes: VecDeque::new(),
            wake: None,
            forget_pages: None,
            move_pace,
            drained: Vec::new(),
            retired: false,
            restarts: 0,
            failures_in_a_row: 0,
            last_failure: WriteFailure::Refused,
            last_error: None,
            waiting_for_slot: 0,
        }
    }

    /// Loads the saved state with the mailbox paused, so no message is
    /// handled against a state about to be replaced.
    fn load_state(&mut self, ctx: &mut Context<Self>) {
        self.machine = EndpointMachine::new(machine_config(&self.config, &self.deps.settings));
        let endpoint_id = self.config.id.clone();
        let alerts_since = self.machine.alerts_bound_since(now_ms());
        let load = self
            .deps
            .writer
            .call(move |db| endpoint_state::load(db, &endpoint_id, alerts_since, now_ms()));
        ctx.wait(load.into_actor(self).map(|loaded, act, ctx| match loaded {
            Ok(saved) => {
                act.machine.recall_failing_alerts(&saved.failing_alerts);
                let effects = act.machine.loaded(
                    saved.active,
                    saved.health,
                    saved.unfinished,
                    saved.numbered_up_to,
                    now_ms(),
                );
                act.carry_out(effects, ctx);
            }
            Err(error) => {
                act.failed("loading its state", &error);
                let backoff = act.reload_backoff();
                ctx.run_later(backoff, |act, ctx| act.load_state(ctx));
            }
        }));
    }

    fn failed(&mut self, what: &str, error: &StoreError) {
        log::error!("endpoint {}: {what} failed: {error}", self.config.id);
        self.last_error = Some(format!("{what}: {error}"));
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        self.last_failure = if error.is_unavailable() {
            WriteFailure::DatabaseAway
        } else {
            WriteFailure::Refused
        };
    }

    fn reload_backoff(&self) -> Duration {
        reload_backoff(self.failures_in_a_row.max(1), self.last_failure)
    }

    fn carry_out(&mut self, effects: Vec<Effect>, ctx: &mut Context<Self>) {
        for effect in effects {
            match effect {
                Effect::Send(delivery) => self.send(delivery, ctx),
                Effect::LoadPage {
                    deliveries,
                    bytes,
                    exclude,
                    order,
                } => self.load_page(order, deliveries, bytes, exclude, ctx),
                Effect::Hold(ids) => self.hold(ids, ctx),
                Effect::MoveBatch(kind) => self.move_batch(kind, ctx),
                Effect::WakeAt(at) => {
                    self.arm_timer(ctx, at, |act| &mut act.wake, EndpointMachine::wake);
                }
                Effect::ForgetPagesAt(at) => self.arm_timer(
                    ctx,
                    at,
                    |act| &mut act.forget_pages,
                    EndpointMachine::forget_pages,
                ),
                Effect::Disabled => self
                    .deps
                    .notices
                    .do_send(EndpointNotice::Disabled(self.config.id.clone())),
                Effect::Reload { failed } => {
                    for handle in [self.wake.take(), self.forget_pages.take()]
                        .into_iter()
                        .flatten()
                    {
                        ctx.cancel_future(handle);
                    }
                    self.restarts = self.restarts.saturating_add(1);
                    let after = if failed {
                        self.reload_backoff()
                    } else {
                        Duration::ZERO
                    };
                    ctx.run_later(after, |act, ctx| act.load_state(ctx));
                }
                Effect::Drained => self.drained.drain(..).for_each(|done| {
                    let _ = done.send(());
                }),
            }
        }
        self.next_status_change(ctx);
    }

    /// Arms the timer kept in `slot` (replacing the one it held) to call
    /// `fire` on the machine at `at`, a time in milliseconds.
    fn arm_timer(
        &mut self,
        ctx: &mut Context<Self>,
        at: i64,
        slot: fn(&mut Self) -> &mut Option<SpawnHandle>,
        fire: fn(&mut EndpointMachine, i64) -> Vec<Effect>,
    ) {
        if let Some(handle) = slot(self).take() {
            ctx.cancel_future(handle);
        }
        let delay = Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0));
        let handle = ctx.run_later(delay, move |act, ctx| {
            *slot(act) = None;
            let effects = fire(&mut act.machine, now_ms());
            act.carry_out(effects, ctx);
        });
        *slot(self) = Some(handle);
    }

    fn send(&mut self, delivery: QueuedDelivery, ctx: &mut Context<Self>) {
        if let Err(reason) = &self.config.signing {
            // The attempt fails without sending anything (it is recorded
            // with error kind `signing`); the endpoint's view says why.
            self.last_error = Some(format!("cannot sign deliveries: {reason}"));
        }
        // An attempt waits for a slot of the attempt budget before it is
        // sent, and its timeout runs only from then: a saturated budget
        // delays attempts, it never fails them.
        let transport = self.deps.transport.clone();
        let tenant = self.config.tenant_id.clone();
        self.waiting_for_slot += 1;
        let slot = async move { transport.slot(&tenant).await };
        ctx.spawn(slot.into_actor(self).map(move |slot, act, ctx| {
            act.waiting_for_slot -= 1;
            act.attempt(delivery, slot, ctx);
        }));
    }

    /// Sends `delivery` holding `slot`, which is given back when it ends.
    fn attempt(&mut self, delivery: QueuedDelivery, slot: Slot, ctx: &mut Context<Self>) {
        let transport = self.deps.transport.clone();
        let config = Arc::clone(&self.config);
        let delivery_id = delivery.id.clone();
        let attempt = async move {
            let report = sender::attempt(
                &transport,
                &config,
                &delivery.event_id,
                &delivery.event_type,
                &delivery.body,
            )
            .await;
            drop(slot);
            report
        };
        ctx.spawn(attempt.into_actor(self).map(move |report, act, ctx| {
            act.finish_attempt(&delivery_id, report, ctx);
        }));
    }

    fn finish_attempt(
        &mut self,
        delivery_id: &str,
        report: AttemptReport,
        ctx: &mut Context<Self>,
    ) {
        let outcome = AttemptOutcome {
            status: report.status,
            retry_after: report.retry_after,
            failure: describe_failure(&report),
        };
        if let Some((kind, message)) = &report.error {
            log::debug!(
                "endpoint {}: delivery {delivery_id} attempt failed ({}): {}",
                self.config.id,
                kind.as_str(),
                redact::endpoint_url_in(message, &self.config.url)
            );
        }
        let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
        let (decision, effects) =
            self.machine
                .attempt_finished(delivery_id, &outcome, now_ms(), jitter);
        if let Some(decision) = decision {
            self.record(decision, &report, ctx);
        }
        self.carry_out(effects, ctx);
    }

    fn record(
        &mut self,
        decision: AttemptDecision,
        report: &AttemptReport,
        ctx: &mut Context<Self>,
    ) {
        let write = self.attempt_write(&decision, report);
        let alerts = write.alerts.clone();
        let writer = self.deps.writer.clone();
        let endpoint = self.config.id.clone();
        let stored = async move {
            let mut failures = 0;
            loop {
                let error = match writer.record_attempt(write.clone()).await {
                    Ok(()) => return Ok(()),
                    Err(error) => error,
                };
                failures += 1;
                let Some(wait) = attempt_write_retry(failures) else {
                    return Err(error);
                };
                log::warn!("endpoint {endpoint}: recording an attempt failed ({error}); trying again in {wait:?}");
                actix_rt::time::sleep(wait).await;
            }
        };
        let delivery_id = decision.delivery_id;
        ctx.spawn(stored.into_actor(self).map(move |written, act, ctx| {
            let written = match written {
                Ok(()) => {
                    act.failures_in_a_row = 0;
                    if !alerts.is_empty() {
                        act.deps
                            .notices
                            .do_send(EndpointNotice::AlertsRaised(alerts));
                    }
                    Ok(())
                }
                Err(error) => {
                    act.failed("recording an attempt", &error);
                    Err(())
                }
            };
            let effects = act
                .machine
                .attempt_recorded(&delivery_id, written, now_ms());
            act.carry_out(effects, ctx);
        }));
    }

    fn attempt_write(&self, decision: &AttemptDecision, report: &AttemptReport) -> AttemptWrite {
        let now = now_ms();
        AttemptWrite {
            record: AttemptRecord {
                attempt: report.to_row(&decision.delivery_id, decision.attempt, &self.config.id),
                state: decision.state,
                next_attempt_at: decision.next_attempt_at,
            },
            health: decision
                .health
                .as_ref()
                .map(|h| EndpointHealthRow::new(&self.config.id, &h.streak, &h.breaker, now)),
            alerts: decision
                .alerts
                .iter()
                .map(|alert| self.alert_row(alert))
                .collect(),
            disable: decision.disable,
        }
    }

    fn alert_row(&self, alert: &crate::core::endpoint_machine::Alert) -> AlertRow {
        AlertRow {
            id: crate::ids::time_ordered("alr"),
            tenant_id: self.config.tenant_id.clone(),
            endpoint_id: self.config.id.clone(),
            endpoint_url: self.config.url.clone(),
            kind: alert.kind.as_str().to_owned(),
            consecutive_failures: i32::try_from(alert.consecutive_failures).unwrap_or(i32::MAX),
            failing_since: alert.failing_since,
            status_code: alert.status.map(i32::from),
            error: alert.error.clone(),
            disabled_reason: alert.disabled_reason.map(|r| r.as_str().to_owned()),
            created_at: alert.at,
            dispatched_at: None,
            threshold: alert
                .threshold
                .map(|t| i32::try_from(t).unwrap_or(i32::MAX)),
        }
    }

    fn load_page(
        &mut self,
        order: PageOrder,
        limit: usize,
        bytes: usize,
        exclude: Vec<String>,
        ctx: &mut Context<Self>,
    ) {
        let endpoint_id = self.config.id.clone();
        let cache = self.deps.bodies.clone();
        let store = self.deps.store.clone();
        let read = async move {
            store
                .run(move |db| {
                    let exclude: HashSet<String> = exclude.into_iter().collect();
                    endpoint_state::next_page(
                        db,
                        &endpoint_id,
                        order,
                        limit,
                        bytes,
                        &exclude,
                        &cache,
                    )
                })
                .await
        };
        ctx.spawn(read.into_actor(self).map(|page, act, ctx| {
            let effects = match page {
                Ok(page) => act.machine.page_loaded(page, now_ms()),
                Err(error) => {
                    act.failed("reading its queue", &error);
                    act.machine.page_failed(now_ms())
                }
            };
            act.carry_out(effects, ctx);
        }));
    }

    fn hold(&mut self, ids: Vec<String>, ctx: &mut Context<Self>) {
        let hold = self
            .deps
            .writer
            .call(move |db| deliveries::hold(db, &ids, now_ms()));
        ctx.spawn(hold.into_actor(self).map(|held, act, ctx| {
            let written = held.map_err(|error| act.failed("holding deliveries", &error));
            let effects = act.machine.hold_written(written, now_ms());
            act.carry_out(effects, ctx);
        }));
    }

    fn move_batch(&mut self, kind: BacklogMove, ctx: &mut Context<Self>) {
        let endpoint_id = self.config.id.clone();
        let limit = self.move_pace.size();
        let batch = self.deps.writer.call_in_background(move |db| {
            let started = Instant::now();
            endpoint_state::move_batch(db, &endpoint_id, kind, limit, now_ms())
                .map(|more| (more, started.elapsed()))
        });
        ctx.spawn(batch.into_actor(self).map(move |moved, act, ctx| {
            let written = match moved {
                Ok((more, took)) => {
                    act.move_pace.batch_took(took);
                    Ok(more)
                }
                Err(error) => {
                    act.failed(&format!("moving its backlog ({})", kind.as_str()), &error);
                    Err(())
                }
            };
            let effects = act.machine.batch_moved(kind, written, now_ms());
            act.carry_out(effects, ctx);
        }));
    }

    /// Hands the oldest waiting status change to the machine, unless it
    /// must wait longer. Called after every event the machine handled; the
    /// change's write pauses the mailbox, and its answer calls this again.
    fn next_status_change(&mut self, ctx: &mut Context<Self>) {
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
    fn queue_status_change(&mut self, change: StatusChange, ctx: &mut Context<Self>) {
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
        let write = self
            .deps
            .writer
            .call(move |db| endpoint_state::disable(db, &endpoint_id, &stored, now_ms()));
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
        let write = self.deps.writer.call(move |db| {
            let reset = reset.as_ref().map(|(health, alert)| (health, alert));
            endpoint_state::enable(db, &endpoint_id, reset, replay, now_ms())
        });
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

fn machine_config(config: &EndpointConfig, settings: &ActorSettings) -> MachineConfig {
    MachineConfig {
        limits: config.limits.clone(),
        retry_schedule: config.retry_schedule.clone(),
        retry_client_errors: config.retry_client_errors,
        rate_limit: config.rate_limit,
        max_in_flight: settings
            .attempt_budget
            .endpoint_in_flight(config.max_in_flight),
        raises_alerts: config.raises_alerts,
        ordered: config.ordered,
        window: settings.window,
        alert_min_interval_ms: i64::try_from(settings.alert_min_interval.as_millis())
            .unwrap_or(i64::MAX),
    }
}

/// The failure as one line for an alert: the transport error, or the status.
fn describe_failure(report: &AttemptReport) -> Option<String> {
    match (&report.error, report.status) {
        (Some((kind, message)), _) => Some(format!("{}: {message}", kind.as_str())),
        (None, Some(status)) if !(200..300).contains(&status) => Some(format!("HTTP {status}")),
        _ => None,
    }
}

impl Actor for EndpointActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.retired {
            return;
        }
        if self.failures_in_a_row == 0 {
            self.load_state(ctx);
        } else {
            let backoff = self.reload_backoff();
            ctx.run_later(backoff, |act, ctx| act.load_state(ctx));
        }
    }
}

impl Supervised for EndpointActor {
    /// The actor stopped without being retired: start again from disk,
    /// after a backoff that grows while restarts follow each other.
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.restarts = self.restarts.saturating_add(1);
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        self.last_failure = WriteFailure::Refused;
        self.wake = None;
        self.forget_pages = None;
        // A restart drops the context's futures, those waiting for slots too.
        self.waiting_for_slot = 0;
        log::warn!(
            "endpoint {}: restarting (restart #{})",
            self.config.id,
            self.restarts
        );
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
