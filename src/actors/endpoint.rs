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

use crate::core::endpoint::EndpointConfig;
use crate::core::endpoint_machine::{
    reload_backoff, AttemptDecision, AttemptOutcome, Effect, EndpointMachine, MachineConfig,
    MachineSnapshot, NotReady, QueuedDelivery, WindowLimits, WriteFailure,
};
use crate::sender::{self, AttemptReport};
use crate::store::deliveries::{self, AttemptRecord, AttemptWrite};
use crate::store::endpoint_state::{self, BodyCache, EnableOutcome, Replay};
use crate::store::models::{AlertRow, AttemptRow, EndpointHealthRow};
use crate::store::writer::Writer;
use crate::store::{Store, StoreError};
use crate::time::now_ms;
use actix::prelude::*;
use rand::Rng;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Settings every endpoint actor shares.
#[derive(Debug, Clone, Copy)]
pub struct ActorSettings {
    pub window: WindowLimits,
    /// The shortest time between two alerts of one kind from one endpoint.
    pub alert_min_interval: Duration,
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

/// The live state of an endpoint, as its actor holds it.
#[derive(Debug, Clone)]
pub struct EndpointSnapshot {
    pub machine: MachineSnapshot,
    /// Reloads of the saved state: after a change of configuration, a
    /// failed write or a stop.
    pub restarts: u32,
    pub last_error: Option<String>,
}

pub struct EndpointActor {
    config: Arc<EndpointConfig>,
    deps: ActorDeps,
    machine: EndpointMachine,
    wake: Option<SpawnHandle>,
    drained: Vec<oneshot::Sender<()>>,
    retired: bool,
    restarts: u32,
    /// Failures since the last successful write: the reload backoff.
    failures_in_a_row: u32,
    last_failure: WriteFailure,
    last_error: Option<String>,
}

impl EndpointActor {
    pub fn new(config: Arc<EndpointConfig>, deps: ActorDeps) -> Self {
        let machine = EndpointMachine::new(machine_config(&config, &deps.settings));
        EndpointActor {
            config,
            deps,
            machine,
            wake: None,
            drained: Vec::new(),
            retired: false,
            restarts: 0,
            failures_in_a_row: 0,
            last_failure: WriteFailure::Refused,
            last_error: None,
        }
    }

    /// Loads the saved state with the mailbox paused, so no message is
    /// handled against a state about to be replaced.
    fn load_state(&mut self, ctx: &mut Context<Self>) {
        self.machine = EndpointMachine::new(machine_config(&self.config, &self.deps.settings));
        let endpoint_id = self.config.id.clone();
        let load = self
            .deps
            .writer
            .call(move |db| endpoint_state::load(db, &endpoint_id, now_ms()));
        ctx.wait(load.into_actor(self).map(|loaded, act, ctx| match loaded {
            Ok(saved) => {
                let effects = act.machine.loaded(saved.active, saved.health, now_ms());
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
                } => self.load_page(deliveries, bytes, exclude, ctx),
                Effect::Hold(ids) => self.hold(ids, ctx),
                Effect::WakeAt(at) => self.wake_at(at, ctx),
                Effect::Disabled => self
                    .deps
                    .notices
                    .do_send(EndpointNotice::Disabled(self.config.id.clone())),
                Effect::Reload { failed } => {
                    if let Some(handle) = self.wake.take() {
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
    }

    fn wake_at(&mut self, at: i64, ctx: &mut Context<Self>) {
        if let Some(handle) = self.wake.take() {
            ctx.cancel_future(handle);
        }
        let delay = Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0));
        self.wake = Some(ctx.run_later(delay, |act, ctx| {
            act.wake = None;
            let effects = act.machine.wake(now_ms());
            act.carry_out(effects, ctx);
        }));
    }

    fn send(&mut self, delivery: QueuedDelivery, ctx: &mut Context<Self>) {
        if let Err(reason) = &self.config.signing {
            // The attempt fails without sending anything (it is recorded
            // with error kind `signing`); the endpoint's view says why.
            self.last_error = Some(format!("cannot sign deliveries: {reason}"));
        }
        let transport = self.deps.transport.clone();
        let config = Arc::clone(&self.config);
        let delivery_id = delivery.id.clone();
        let attempt = async move {
            sender::attempt(
                &transport,
                &config,
                &delivery.event_id,
                &delivery.event_type,
                &delivery.body,
            )
            .await
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
                "endpoint {}: delivery {delivery_id} attempt failed ({}): {message}",
                self.config.id,
                kind.as_str()
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
        let stored = self.deps.writer.record_attempt(write);
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
            let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
            let effects = act
                .machine
                .attempt_recorded(&delivery_id, written, now_ms(), jitter);
            act.carry_out(effects, ctx);
        }));
    }

    fn attempt_write(&self, decision: &AttemptDecision, report: &AttemptReport) -> AttemptWrite {
        let now = now_ms();
        AttemptWrite {
            record: AttemptRecord {
                attempt: AttemptRow {
                    id: crate::ids::time_ordered("atm"),
                    delivery_id: decision.delivery_id.clone(),
                    attempt: i32::try_from(decision.attempt).unwrap_or(i32::MAX),
                    started_at: report.started_at_ms,
                    duration_ms: report.duration_ms,
                    status_code: report.status.map(i32::from),
                    response_headers: report
                        .response_headers
                        .as_ref()
                        .and_then(|h| serde_json::to_string(h).ok()),
                    response_body: report.response_body.clone(),
                    error_kind: report
                        .error
                        .as_ref()
                        .map(|(kind, _)| kind.as_str().to_owned()),
                    error_message: report.error.as_ref().map(|(_, message)| message.clone()),
                    endpoint_id: Some(self.config.id.clone()),
                },
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
        }
    }

    fn load_page(
        &mut self,
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
                    endpoint_state::next_page(db, &endpoint_id, limit, bytes, &exclude, &cache)
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

    fn not_ready(&self, why: NotReady) -> StoreError {
        StoreError::Busy(match why {
            NotReady::Loading => format!(
                "endpoint {}: its saved state is not loaded yet; retry shortly",
                self.config.id
            ),
            NotReady::Busy => format!(
                "endpoint {}: it is reloading or shutting down; retry shortly",
                self.config.id
            ),
        })
    }
}

fn machine_config(config: &EndpointConfig, settings: &ActorSettings) -> MachineConfig {
    MachineConfig {
        limits: config.limits.clone(),
        retry_schedule: config.retry_schedule.clone(),
        retry_client_errors: config.retry_client_errors,
        max_in_flight: config.max_in_flight,
        raises_alerts: config.raises_alerts,
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

/// Status changes run with the mailbox paused until their write commits,
/// so no delivery is queued or held against a half-applied status.
impl Handler<Disable> for EndpointActor {
    type Result = AtomicResponse<Self, Result<bool, StoreError>>;

    fn handle(&mut self, _: Disable, _ctx: &mut Context<Self>) -> Self::Result {
        let plan = match self.machine.disable(now_ms()) {
            Err(why) => return AtomicResponse::new(Box::pin(fut::ready(Err(self.not_ready(why))))),
            Ok(None) => return AtomicResponse::new(Box::pin(fut::ready(Ok(false)))),
            Ok(Some(plan)) => plan,
        };
        let alert = self.alert_row(&plan.alert);
        let (endpoint_id, stored) = (self.config.id.clone(), alert.clone());
        let write = self
            .deps
            .writer
            .call(move |db| endpoint_state::disable(db, &endpoint_id, &stored, now_ms()));
        AtomicResponse::new(Box::pin(write.into_actor(self).map(
            move |written, act, ctx| {
                let effects = match &written {
                    Ok(()) => {
                        act.deps
                            .notices
                            .do_send(EndpointNotice::AlertsRaised(vec![alert]));
                        act.machine.status_written(now_ms())
                    }
                    Err(error) => {
                        act.failed("disabling", error);
                        act.machine.status_write_failed(now_ms())
                    }
                };
                act.carry_out(effects, ctx);
                written.map(|()| true)
            },
        )))
    }
}

impl Handler<Enable> for EndpointActor {
    type Result = AtomicResponse<Self, Result<EnableOutcome, StoreError>>;

    /// Re-activates a disabled endpoint with a fresh streak and breaker;
    /// replayed deliveries are paged in from disk in their order.
    fn handle(&mut self, Enable(replay): Enable, _ctx: &mut Context<Self>) -> Self::Result {
        let now = now_ms();
        let plan = match self.machine.enable(now) {
            Err(why) => return AtomicResponse::new(Box::pin(fut::ready(Err(self.not_ready(why))))),
            Ok(plan) => plan,
        };
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
        AtomicResponse::new(Box::pin(write.into_actor(self).map(
            move |written, act, ctx| {
                let effects = match &written {
                    Ok(_) => {
                        if let Some(alert) = alert {
                            act.deps
                                .notices
                                .do_send(EndpointNotice::AlertsRaised(vec![alert]));
                        }
                        act.machine.status_written(now_ms())
                    }
                    Err(error) => {
                        act.failed("enabling", error);
                        act.machine.status_write_failed(now_ms())
                    }
                };
                act.carry_out(effects, ctx);
                written
            },
        )))
    }
}

impl Handler<GetSnapshot> for EndpointActor {
    type Result = MessageResult<GetSnapshot>;

    fn handle(&mut self, _: GetSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(EndpointSnapshot {
            machine: self.machine.snapshot(),
            restarts: self.restarts,
            last_error: self.last_error.clone(),
        })
    }
}
