//! One supervised actor per endpoint: its queue, its concurrency limit, its
//! retry timers, its circuit breaker and its consecutive-failure streak.
//!
//! The database is the truth; the actor's queue is a cache of the
//! endpoint's pending deliveries, and its breaker and streak are saved with
//! every attempt that changes them. On start and on every supervised
//! restart it reloads all of it, so a restarted actor or process loses
//! nothing and never hammers an endpoint whose circuit was open.

use super::router::{AlertsRaised, EndpointDisabled, Router};
use crate::core::breaker::{Breaker, CircuitState, Permit};
use crate::core::delivery::{after_attempt, verdict_for_status, AttemptVerdict, DeliveryState};
use crate::core::endpoint::EndpointConfig;
use crate::core::failure_policy::{AlertKind, DisableReason, Streak};
use crate::sender::{self, AttemptReport};
use crate::store::deliveries::{self, AttemptRecord, QueuedDelivery};
use crate::store::models::{AlertRow, AttemptRow, EndpointHealthRow};
use crate::store::writer::Writer;
use crate::store::{alerts, endpoints, Db, StoreError};
use crate::time::now_ms;
use actix::prelude::*;
use rand::Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long to wait before reloading the state after the database failed.
const RELOAD_BACKOFF: Duration = Duration::from_secs(1);

/// New deliveries, already committed, for this endpoint.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub Vec<QueuedDelivery>);

/// The endpoint was changed: finish in-flight attempts, then restart under
/// the supervisor with the new configuration and a state reloaded from disk.
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

/// What becomes of held deliveries when an endpoint is enabled again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Queue them again, in their original order.
    Held,
    /// Cancel them (they stay visible).
    None,
}

#[derive(Message)]
#[rtype(result = "Result<EnableOutcome, StoreError>")]
pub struct Enable(pub Replay);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnableOutcome {
    pub replayed: usize,
    pub cancelled: usize,
}

#[derive(Message)]
#[rtype(result = "EndpointSnapshot")]
pub struct GetSnapshot;

/// The live state of an endpoint, as its actor holds it.
#[derive(Debug, Clone)]
pub struct EndpointSnapshot {
    pub breaker: Breaker,
    pub streak: Streak,
    /// Deliveries due or waiting for a retry time.
    pub queued: usize,
    pub in_flight: usize,
    pub restarts: u32,
}

/// A delivery waiting for its retry time; the heap pops the earliest.
struct Waiting {
    due_at: i64,
    delivery: QueuedDelivery,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.due_at == other.due_at && self.delivery.delivery_id == other.delivery.delivery_id
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due_at, &self.delivery.delivery_id).cmp(&(other.due_at, &other.delivery.delivery_id))
    }
}

/// What an attempt's outcome changes in the endpoint's health.
#[derive(Clone, Default)]
struct HealthChange {
    /// The streak and breaker to save, when they changed.
    health: Option<EndpointHealthRow>,
    alerts: Vec<AlertRow>,
    disable: Option<DisableReason>,
}

/// What one finished attempt writes, in one transaction.
#[derive(Clone)]
struct AttemptWrite {
    record: AttemptRecord,
    change: HealthChange,
}

/// The endpoint's saved state, read when the actor starts.
struct SavedState {
    active: bool,
    health: Option<EndpointHealthRow>,
    pending: Vec<QueuedDelivery>,
}

pub struct EndpointActor {
    config: Arc<EndpointConfig>,
    writer: Writer,
    client: reqwest::Client,
    router: Addr<Router>,
    /// Nothing is sent until the saved state is loaded.
    loaded: bool,
    active: bool,
    breaker: Breaker,
    streak: Streak,
    /// The delivery sent as the half-open probe.
    probe: Option<String>,
    due: VecDeque<QueuedDelivery>,
    waiting: BinaryHeap<Reverse<Waiting>>,
    in_flight: HashSet<String>,
    /// Ids queued or in flight, so a delivery that arrives both from the
    /// router and from a reload is queued once.
    known: HashSet<String>,
    wake: Option<(i64, SpawnHandle)>,
    /// Writes queued but not yet answered: the actor stops (or reports
    /// itself drained) only once they are, so no result or alert is lost.
    writes_in_flight: usize,
    restart_requested: bool,
    retired: bool,
    draining: bool,
    drained: Vec<oneshot::Sender<()>>,
    restarts: u32,
}

impl EndpointActor {
    pub fn new(
        config: Arc<EndpointConfig>,
        writer: Writer,
        client: reqwest::Client,
        router: Addr<Router>,
    ) -> Self {
        let breaker = Breaker::closed(&config.limits);
        EndpointActor {
            active: config.active,
            config,
            writer,
            client,
            router,
            loaded: false,
            breaker,
            streak: Streak::default(),
            probe: None,
            due: VecDeque::new(),
            waiting: BinaryHeap::new(),
            in_flight: HashSet::new(),
            known: HashSet::new(),
            wake: None,
            writes_in_flight: 0,
            restart_requested: false,
            retired: false,
            draining: false,
            drained: Vec::new(),
            restarts: 0,
        }
    }

    /// Reads the saved state with the mailbox paused, so no status change
    /// can be handled against a state that is about to be overwritten.
    fn load_state(&mut self, ctx: &mut Context<Self>) {
        let endpoint_id = self.config.id.clone();
        let load = self
            .writer
            .call(move |db| saved_state(db, &endpoint_id, now_ms()));
        ctx.wait(load.into_actor(self).map(|loaded, act, ctx| match loaded {
            Ok(saved) => {
                act.loaded = true;
                act.active = saved.active;
                if let Some(health) = saved.health {
                    act.streak = health.streak();
                    act.breaker = health.breaker();
                }
                act.admit(saved.pending);
                if !act.active {
                    act.hold_queue(ctx);
                }
                act.pump(ctx);
            }
            Err(error) => {
                log::error!(
                    "endpoint {}: loading its state failed: {error}",
                    act.config.id
                );
                ctx.run_later(RELOAD_BACKOFF, |act, ctx| act.load_state(ctx));
            }
        }));
    }

    fn admit(&mut self, pending: Vec<QueuedDelivery>) {
        let now = now_ms();
        for delivery in pending {
            if !self.known.insert(delivery.delivery_id.clone()) {
                continue;
            }
            match delivery.next_attempt_at {
                Some(due_at) if due_at > now => {
                    self.waiting.push(Reverse(Waiting { due_at, delivery }))
                }
                _ => self.due.push_back(delivery),
            }
        }
    }

    /// Forgets every queued delivery; the caller makes them held on disk.
    fn clear_queue(&mut self) -> Vec<String> {
        let mut ids: Vec<String> = self.due.drain(..).map(|d| d.delivery_id).collect();
        ids.extend(
            self.waiting
                .drain()
                .map(|Reverse(w)| w.delivery.delivery_id),
        );
        self.known = self.in_flight.clone();
        ids
    }

    /// Deliveries that reached a disabled endpoint as pending are held.
    fn hold_queue(&mut self, ctx: &mut Context<Self>) {
        let ids = self.clear_queue();
        if ids.is_empty() {
            return;
        }
        let hold = self
            .writer
            .call(move |db| deliveries::hold(db, &ids, now_ms()));
        self.writes_in_flight += 1;
        ctx.spawn(hold.into_actor(self).map(|held, act, ctx| {
            act.writes_in_flight -= 1;
            match held {
                Ok(()) => act.after_slot_freed(ctx),
                Err(error) => act.restart_after_failed_write("holding deliveries", &error, ctx),
            }
        }));
    }

    /// Starts every attempt the concurrency limit and the breaker allow,
    /// and arms the timer for the next one.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if !self.loaded || !self.active || self.retired || self.draining || self.restart_requested {
            return;
        }
        let now = now_ms();
        while self
            .waiting
            .peek()
            .is_some_and(|Reverse(w)| w.due_at <= now)
        {
            if let Some(Reverse(waiting)) = self.waiting.pop() {
                self.due.push_back(waiting.delivery);
            }
        }
        let mut breaker_wait = None;
        while self.in_flight.len() < self.config.max_in_flight && !self.due.is_empty() {
            match self.breaker.permit(now) {
                Permit::Send => {}
                Permit::Probe => {
                    if let Some(delivery) = self.due.pop_front() {
                        self.probe = Some(delivery.delivery_id.clone());
                        self.start_attempt(delivery, ctx);
                    }
                    break;
                }
                Permit::WaitUntil(at) => {
                    breaker_wait = Some(at);
                    break;
                }
                Permit::AwaitProbe => break,
            }
            if let Some(delivery) = self.due.pop_front() {
                self.start_attempt(delivery, ctx);
            }
        }
        let next_retry = self.waiting.peek().map(|Reverse(w)| w.due_at);
        let next = match (breaker_wait, next_retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = next {
            self.wake_at(at, now, ctx);
        }
    }

    fn wake_at(&mut self, at: i64, now: i64, ctx: &mut Context<Self>) {
        if let Some((armed, handle)) = self.wake {
            if armed <= at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let delay = Duration::from_millis(u64::try_from(at - now).unwrap_or(0));
        let handle = ctx.run_later(delay, |act, ctx| {
            act.wake = None;
            act.pump(ctx);
        });
        self.wake = Some((at, handle));
    }

    fn start_attempt(&mut self, delivery: QueuedDelivery, ctx: &mut Context<Self>) {
        self.in_flight.insert(delivery.delivery_id.clone());
        let client = self.client.clone();
        let config = Arc::clone(&self.config);
        let event_id = delivery.event_id.clone();
        let body = Arc::clone(&delivery.body);
        let send = async move { sender::attempt(&client, &config, &event_id, &body).await };
        ctx.spawn(
            send.into_actor(self)
                .map(move |report, act, ctx| act.finish_attempt(delivery, report, ctx)),
        );
    }

    fn finish_attempt(
        &mut self,
        mut delivery: QueuedDelivery,
        report: AttemptReport,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight.remove(&delivery.delivery_id);
        let was_probe = self.probe.as_deref() == Some(delivery.delivery_id.as_str());
        if was_probe {
            self.probe = None;
        }
        delivery.attempt_count += 1;
        let verdict = match report.status {
            Some(status) => verdict_for_status(status, report.retry_after),
            None => AttemptVerdict::Failed { retry_after: None },
        };
        let now = now_ms();
        let change = self.judge(verdict, &report, was_probe, now);
        if change.disable.is_some() {
            self.active = false;
            self.clear_queue();
        }
        let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
        let transition = after_attempt(
            verdict,
            delivery.attempt_count,
            &self.config.retry_schedule,
            jitter,
            self.active,
        );
        let next_attempt_at = transition
            .retry_in
            .map(|delay| now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2));
        if let Some((kind, message)) = &report.error {
            log::debug!(
                "endpoint {}: delivery {} attempt {} failed ({}): {message}",
                self.config.id,
                delivery.delivery_id,
                delivery.attempt_count,
                kind.as_str()
            );
        }
        let write = AttemptWrite {
            record: self.attempt_record(&delivery, &report, transition.state, next_attempt_at),
            change,
        };
        self.persist(write, ctx);

        match next_attempt_at {
            Some(due_at) => {
                delivery.next_attempt_at = Some(due_at);
                self.waiting.push(Reverse(Waiting { due_at, delivery }));
            }
            None => {
                self.known.remove(&delivery.delivery_id);
            }
        }
        self.after_slot_freed(ctx);
    }

    /// Feeds an attempt's outcome to the breaker and the failure streak;
    /// returns the health to save (if it changed), the alerts it raises
    /// and whether it disables the endpoint.
    fn judge(
        &mut self,
        verdict: AttemptVerdict,
        report: &AttemptReport,
        was_probe: bool,
        now: i64,
    ) -> HealthChange {
        let limits = &self.config.limits;
        let mut alerts = Vec::new();
        let mut disable = None;
        if verdict == AttemptVerdict::Delivered {
            let healthy =
                self.streak.consecutive_failures == 0 && self.breaker.state == CircuitState::Closed;
            if healthy {
                return HealthChange::default();
            }
            let ended = self.streak.clone();
            self.breaker.after_success(limits);
            if self.streak.after_success() && self.config.raises_alerts {
                alerts.push(self.alert(AlertKind::Recovered, &ended, Some(report), None, now));
            }
        } else {
            let gone = report.status == Some(410);
            let outcome = self.streak.after_failure(limits, now, gone);
            self.breaker
                .after_failure(self.streak.consecutive_failures, was_probe, limits, now);
            if self.config.raises_alerts {
                for _ in &outcome.crossed {
                    alerts.push(self.alert(
                        AlertKind::Failing,
                        &self.streak,
                        Some(report),
                        None,
                        now,
                    ));
                }
                if self.active {
                    disable = outcome.disable;
                }
                if let Some(reason) = disable {
                    alerts.push(self.alert(
                        AlertKind::Disabled,
                        &self.streak,
                        Some(report),
                        Some(reason),
                        now,
                    ));
                }
            }
        }
        HealthChange {
            health: Some(EndpointHealthRow::new(
                &self.config.id,
                &self.streak,
                &self.breaker,
                now,
            )),
            alerts,
            disable,
        }
    }

    fn alert(
        &self,
        kind: AlertKind,
        streak: &Streak,
        report: Option<&AttemptReport>,
        disabled: Option<DisableReason>,
        now: i64,
    ) -> AlertRow {
        AlertRow {
            id: crate::ids::time_ordered("alr"),
            tenant_id: self.config.tenant_id.clone(),
            endpoint_id: self.config.id.clone(),
            endpoint_url: self.config.url.clone(),
            kind: kind.as_str().to_owned(),
            consecutive_failures: i32::try_from(streak.consecutive_failures).unwrap_or(i32::MAX),
            failing_since: streak.failing_since,
            status_code: report.and_then(|r| r.status).map(i32::from),
            error: report.and_then(describe_failure),
            disabled_reason: disabled.map(|r| r.as_str().to_owned()),
            created_at: now,
            dispatched_at: None,
        }
    }

    fn attempt_record(
        &self,
        delivery: &QueuedDelivery,
        report: &AttemptReport,
        state: DeliveryState,
        next_attempt_at: Option<i64>,
    ) -> AttemptRecord {
        AttemptRecord {
            attempt: AttemptRow {
                id: crate::ids::time_ordered("atm"),
                delivery_id: delivery.delivery_id.clone(),
                attempt: i32::try_from(delivery.attempt_count).unwrap_or(i32::MAX),
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
            state,
            next_attempt_at,
        }
    }

    fn persist(&mut self, write: AttemptWrite, ctx: &mut Context<Self>) {
        let endpoint_id = self.config.id.clone();
        let job = write.clone();
        let stored = self
            .writer
            .call(move |db| store_attempt(db, &endpoint_id, &job));
        self.writes_in_flight += 1;
        ctx.spawn(stored.into_actor(self).map(move |written, act, ctx| {
            act.writes_in_flight -= 1;
            if let Err(error) = written {
                act.restart_after_failed_write("recording an attempt", &error, ctx);
                return;
            }
            let change = write.change;
            if !change.alerts.is_empty() {
                act.router.do_send(AlertsRaised(change.alerts));
            }
            // An enable handled meanwhile has already told the router.
            if change.disable.is_some() && !act.active {
                act.router.do_send(EndpointDisabled(act.config.id.clone()));
            }
            act.after_slot_freed(ctx);
        }));
    }

    /// The queue may no longer match the database: finish what is in
    /// flight, then restart and reload everything from disk.
    fn restart_after_failed_write(
        &mut self,
        what: &str,
        error: &StoreError,
        ctx: &mut Context<Self>,
    ) {
        log::error!("endpoint {}: {what} failed: {error}", self.config.id);
        self.restart_requested = true;
        self.after_slot_freed(ctx);
    }

    fn after_slot_freed(&mut self, ctx: &mut Context<Self>) {
        if !self.in_flight.is_empty() || self.writes_in_flight > 0 {
            if !self.draining && !self.restart_requested {
                self.pump(ctx);
            }
            return;
        }
        if self.restart_requested {
            ctx.stop();
        } else if self.draining {
            self.drained.drain(..).for_each(|done| {
                let _ = done.send(());
            });
        } else {
            self.pump(ctx);
        }
    }
}

fn saved_state(db: &mut Db, endpoint_id: &str, now: i64) -> Result<SavedState, StoreError> {
    let active = endpoints::find_by_id(db, endpoint_id)?.is_some_and(|row| row.is_active());
    let health = endpoints::load_health(db, endpoint_id)?;
    let pending = if active {
        // Held rows of an active endpoint were created by a fan-out that
        // raced its re-enabling; nothing else would ever release them.
        let stranded = deliveries::release_held(db, endpoint_id, now)?;
        if stranded > 0 {
            log::warn!("endpoint {endpoint_id}: released {stranded} stranded held deliveries");
        }
        deliveries::pending_for_endpoint(db, endpoint_id)?
    } else {
        // Pending rows of a disabled endpoint were committed by a fan-out
        // that raced the disabling.
        deliveries::hold_pending(db, endpoint_id, now)?;
        Vec::new()
    };
    Ok(SavedState {
        active,
        health,
        pending,
    })
}

fn store_attempt(db: &mut Db, endpoint_id: &str, write: &AttemptWrite) -> Result<(), StoreError> {
    let now = now_ms();
    deliveries::record_attempt(db, &write.record, now)?;
    let change = &write.change;
    if let Some(health) = &change.health {
        endpoints::save_health(db, health)?;
    }
    alerts::insert(db, &change.alerts)?;
    if let Some(reason) = change.disable {
        endpoints::set_status(db, endpoint_id, Some(reason), now)?;
        deliveries::hold_pending(db, endpoint_id, now)?;
    }
    Ok(())
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
        if !self.retired {
            self.load_state(ctx);
        }
    }
}

impl Supervised for EndpointActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.restarts += 1;
        log::info!(
            "endpoint {}: restarting (restart #{})",
            self.config.id,
            self.restarts
        );
        // Everything below is reloaded from disk; a healthy endpoint has no
        // saved health, so it starts from a clean streak and breaker.
        self.loaded = false;
        self.active = self.config.active;
        self.streak = Streak::default();
        self.breaker = Breaker::closed(&self.config.limits);
        self.writes_in_flight = 0;
        self.due.clear();
        self.waiting.clear();
        self.known.clear();
        self.in_flight.clear();
        self.probe = None;
        self.wake = None;
        self.restart_requested = false;
    }
}

impl Handler<Enqueue> for EndpointActor {
    type Result = ();

    fn handle(&mut self, Enqueue(deliveries): Enqueue, ctx: &mut Context<Self>) {
        self.admit(deliveries);
        if self.loaded && !self.active {
            self.hold_queue(ctx);
        }
        self.pump(ctx);
    }
}

impl Handler<Reconfigure> for EndpointActor {
    type Result = ();

    fn handle(&mut self, Reconfigure(config): Reconfigure, ctx: &mut Context<Self>) {
        self.config = config;
        self.restart_requested = true;
        self.after_slot_freed(ctx);
    }
}

impl Handler<Retire> for EndpointActor {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        self.retired = true;
        self.clear_queue();
        ctx.stop();
    }
}

impl Handler<Drain> for EndpointActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        let (done, finished) = oneshot::channel();
        self.drained.push(done);
        self.after_slot_freed(ctx);
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
        if !self.loaded {
            return AtomicResponse::new(Box::pin(fut::ready(Err(not_loaded()))));
        }
        if !self.active {
            return AtomicResponse::new(Box::pin(fut::ready(Ok(false))));
        }
        self.active = false;
        self.clear_queue();
        let alert = self.alert(
            AlertKind::Disabled,
            &self.streak,
            None,
            Some(DisableReason::Manual),
            now_ms(),
        );
        let endpoint_id = self.config.id.clone();
        let stored = alert.clone();
        let write = self.writer.call(move |db| {
            let now = now_ms();
            endpoints::set_status(db, &endpoint_id, Some(DisableReason::Manual), now)?;
            deliveries::hold_pending(db, &endpoint_id, now)?;
            alerts::insert(db, std::slice::from_ref(&stored))
        });
        AtomicResponse::new(Box::pin(write.into_actor(self).map(
            move |written, act, ctx| match written {
                Ok(()) => {
                    act.router.do_send(AlertsRaised(vec![alert]));
                    Ok(true)
                }
                Err(error) => {
                    act.restart_after_failed_write("disabling", &error, ctx);
                    Err(error)
                }
            },
        )))
    }
}

impl Handler<Enable> for EndpointActor {
    type Result = AtomicResponse<Self, Result<EnableOutcome, StoreError>>;

    /// Re-activates a disabled endpoint with a fresh streak and breaker.
    /// On an active endpoint only the replay applies: its streak goes on,
    /// so its alerts are not raised twice.
    fn handle(&mut self, Enable(replay): Enable, _ctx: &mut Context<Self>) -> Self::Result {
        if !self.loaded {
            return AtomicResponse::new(Box::pin(fut::ready(Err(not_loaded()))));
        }
        let was_active = self.active;
        let now = now_ms();
        let mut alert = None;
        let mut health = None;
        if !was_active {
            alert = Some(self.alert(AlertKind::Enabled, &self.streak, None, None, now));
            self.active = true;
            self.streak = Streak::default();
            self.breaker = Breaker::closed(&self.config.limits);
            health = Some(EndpointHealthRow::new(
                &self.config.id,
                &self.streak,
                &self.breaker,
                now,
            ));
        }
        let endpoint_id = self.config.id.clone();
        let stored = alert.clone();
        let write = self.writer.call(move |db| {
            let now = now_ms();
            if let Some(health) = &health {
                endpoints::set_status(db, &endpoint_id, None, now)?;
                endpoints::save_health(db, health)?;
            }
            alerts::insert(db, stored.as_slice())?;
            let outcome = match replay {
                Replay::Held => EnableOutcome {
                    replayed: deliveries::release_held(db, &endpoint_id, now)?,
                    cancelled: 0,
                },
                Replay::None => EnableOutcome {
                    replayed: 0,
                    cancelled: deliveries::cancel_held(db, &endpoint_id, now)?,
                },
            };
            // Read in the same transaction: the queue holds the replayed
            // deliveries in event order before anything newer arrives.
            let pending = deliveries::pending_for_endpoint(db, &endpoint_id)?;
            Ok((outcome, pending))
        });
        AtomicResponse::new(Box::pin(write.into_actor(self).map(
            move |written, act, ctx| match written {
                Ok((outcome, pending)) => {
                    if let Some(alert) = alert {
                        act.router.do_send(AlertsRaised(vec![alert]));
                    }
                    act.clear_queue();
                    act.admit(pending);
                    act.pump(ctx);
                    Ok(outcome)
                }
                Err(error) => {
                    act.restart_after_failed_write("enabling", &error, ctx);
                    Err(error)
                }
            },
        )))
    }
}

fn not_loaded() -> StoreError {
    StoreError::Blocking("the endpoint's saved state is not loaded yet; retry shortly".to_owned())
}

impl Handler<GetSnapshot> for EndpointActor {
    type Result = MessageResult<GetSnapshot>;

    fn handle(&mut self, _: GetSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(EndpointSnapshot {
            breaker: self.breaker.clone(),
            streak: self.streak.clone(),
            queued: self.due.len() + self.waiting.len(),
            in_flight: self.in_flight.len(),
            restarts: self.restarts,
        })
    }
}
