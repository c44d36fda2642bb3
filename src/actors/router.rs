//! The router: the in-memory registry of endpoints, the fan-out of each new
//! event to the endpoints that subscribe to it, and the dispatch of alerts.

use super::alerts;
use super::endpoint::{
    ActorDeps, ActorSettings, Disable, Drain, Enable, EndpointActor, EndpointNotice,
    EndpointSnapshot, Enqueue, GetSnapshot, Reconfigure, Retire, SettledElsewhere, WorkOnDisk,
};
use crate::core::delivery::DeliveryState;
use crate::core::endpoint::EndpointConfig;
use crate::core::endpoint_machine::QueuedDelivery;
use crate::core::rescue::{self, OnDisk, Rescue};
use crate::sender::Transport;
use crate::store::endpoint_state::{self, BodyCache, EnableOutcome, Replay};
use crate::store::endpoints::OPERATOR_ENDPOINT;
use crate::store::events::{self, Ingested, WrittenDelivery};
use crate::store::models::{AlertRow, DeliveryRow, EventRow};
use crate::store::tenants::SYSTEM_TENANT;
use crate::store::writer::Writer;
use crate::store::{self, Store, StoreError};
use crate::time::now_ms;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A new event, its envelope already serialized into `event.body`.
#[derive(Message)]
#[rtype(result = "Result<Ingested, StoreError>")]
pub struct Publish(pub EventRow);

/// An endpoint was created or changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndpointSaved(pub EndpointConfig);

#[derive(Message)]
#[rtype(result = "()")]
pub struct EndpointDeleted(pub String);

/// The live state of one endpoint; `None` when it is unknown.
#[derive(Message)]
#[rtype(result = "Option<EndpointSnapshot>")]
pub struct SnapshotOf(pub String);

/// The live state of every endpoint of a tenant, by endpoint id.
#[derive(Message)]
#[rtype(result = "HashMap<String, EndpointSnapshot>")]
pub struct SnapshotsOfTenant(pub String);

/// An operator disables an endpoint; `None` when it is unknown.
#[derive(Message)]
#[rtype(result = "Option<Result<bool, StoreError>>")]
pub struct DisableEndpoint(pub String);

#[derive(Message)]
#[rtype(result = "Option<Result<EnableOutcome, StoreError>>")]
pub struct EnableEndpoint(pub String, pub Replay);

/// Deliveries of this endpoint were made pending on disk (a recovery):
/// its actor, started if need be, pages them in.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PendingOnDisk(pub String);

/// A pending delivery was settled by an operator's manual attempt: a
/// running actor drops it from memory.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeliverySettled {
    pub endpoint_id: String,
    pub delivery_id: String,
    /// Its place in the endpoint's line.
    pub seq: i64,
}

/// Graceful shutdown: let every endpoint finish its in-flight attempts,
/// waiting at most this long.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DrainAll(pub Duration);

/// Shutdown, after the drain: hands over the endpoint actors' threads, so
/// that the application stops them and waits for them to end before the
/// process exits. From then on no endpoint actor is started: work that
/// arrives stays on disk for the next start.
#[derive(Message)]
#[rtype(result = "Vec<Arbiter>")]
pub struct ReleaseThreads;

/// How often alerts that missed their dispatch are looked for.
const ALERT_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Endpoints read a batch at a time by the rescue sweep.
const RESCUE_BATCH: i64 = 500;

struct Route {
    config: Arc<EndpointConfig>,
    /// Started when the endpoint first has work (or is asked about), so an
    /// idle endpoint costs its configuration only.
    actor: Option<Addr<EndpointActor>>,
}

/// One delivery to create for an event, and the actor to hand it to (none
/// while the endpoint is disabled: the delivery is held).
struct Target {
    row: DeliveryRow,
    actor: Option<Addr<EndpointActor>>,
}

pub struct Router {
    /// Endpoint actors are spread over one arbiter (thread) per core, so
    /// sending never queues behind the router or a single busy thread.
    arbiters: Vec<Arbiter>,
    next_arbiter: usize,
    writer: Writer,
    /// What every endpoint actor is started with (`notices` is this
    /// router, known once it runs).
    deps: Option<ActorDeps>,
    store: Store,
    transport: Transport,
    settings: ActorSettings,
    routes: HashMap<String, Route>,
    by_tenant: HashMap<String, Vec<String>>,
    /// The pause between two rounds of the rescue sweep, and how long a
    /// pending delivery must have been due before the sweep looks at it.
    rescue_interval: Duration,
}

impl Router {
    pub fn new(
        writer: Writer,
        store: Store,
        transport: Transport,
        endpoints: Vec<EndpointConfig>,
        settings: ActorSettings,
        rescue_interval: Duration,
    ) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let mut router = Router {
            arbiters: (0..threads).map(|_| Arbiter::new()).collect(),
            next_arbiter: 0,
            writer,
            deps: None,
            store,
            transport,
            settings,
            routes: HashMap::new(),
            by_tenant: HashMap::new(),
            rescue_interval,
        };
        for config in endpoints {
            router.add(config);
        }
        router
    }

    fn add(&mut self, config: EndpointConfig) {
        let config = Arc::new(config);
        self.by_tenant
            .entry(config.tenant_id.clone())
            .or_default()
            .push(config.id.clone());
        self.routes.insert(
            config.id.clone(),
            Route {
                config,
                actor: None,
            },
        );
    }

    /// The endpoint's actor, started now if it was not running.
    fn actor(&mut self, id: &str) -> Option<Addr<EndpointActor>> {
        let route = self.routes.get_mut(id)?;
        if let Some(actor) = &route.actor {
            return Some(actor.clone());
        }
        let deps = self.deps.clone()?;
        let config = Arc::clone(&route.config);
        // None once the threads were released at shutdown.
        let arbiter = &self.arbiters[self.next_arbiter.checked_rem(self.arbiters.len())?];
        self.next_arbiter += 1;
        let actor = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
            EndpointActor::new(config, deps)
        });
        route.actor = Some(actor.clone());
        Some(actor)
    }

    /// A delivery for every endpoint of `tenant` that subscribes to
    /// `event`, except `skip` (an alert never goes to its own endpoint).
    fn fan_out(&mut self, tenant: &str, event: &EventRow, skip: Option<&str>) -> Vec<Target> {
        let subscribed: Vec<(String, bool)> = self
            .by_tenant
            .get(tenant)
            .into_iter()
            .flatten()
            .filter(|id| Some(id.as_str()) != skip)
            .filter_map(|id| self.routes.get(id))
            .filter(|route| route.config.subscribes(&event.event_type))
            .map(|route| (route.config.id.clone(), route.config.active))
            .collect();
        subscribed
            .into_iter()
            .map(|(id, active)| Target {
                row: new_delivery(event, &id, active),
                actor: if active { self.actor(&id) } else { None },
            })
            .collect()
    }

    /// Tells the endpoint's actor (started if need be) that deliveries wait
    /// on disk that it was not handed.
    fn work_on_disk(&mut self, id: &str) {
        if let Some(actor) = self.actor(id) {
            actor.do_send(WorkOnDisk);
        }
    }

    /// Sets whether fan-out queues (active) or holds deliveries for the
    /// endpoint; returns the previous value.
    fn set_active(&mut self, id: &str, active: bool) -> bool {
        let Some(route) = self.routes.get_mut(id) else {
            return active;
        };
        let before = route.config.active;
        if before != active {
            Arc::make_mut(&mut route.config).active = active;
        }
        before
    }

    /// Queues each alert's operational events (to the tenant's subscribed
    /// endpoints and to the operator's alert URL) and marks it dispatched,
    /// one transaction per alert so one alert's failure holds back no other.
    fn dispatch_alerts(&mut self, raised: Vec<AlertRow>, ctx: &mut Context<Self>) {
        for alert in raised {
            alerts::log(&alert);
            let mut notices = Vec::new();
            let event = alerts::event(&alert, &alert.tenant_id);
            let targets = self.fan_out(&alert.tenant_id, &event, Some(&alert.endpoint_id));
            notices.push((event, targets));
            if alert.tenant_id != SYSTEM_TENANT && self.routes.contains_key(OPERATOR_ENDPOINT) {
                let event = alerts::event(&alert, SYSTEM_TENANT);
                let targets = self.fan_out(SYSTEM_TENANT, &event, None);
                notices.push((event, targets));
            }
            let stored: Vec<(EventRow, Vec<DeliveryRow>)> = notices
                .iter()
                .map(|(event, targets)| {
                    let rows = targets.iter().map(|t| t.row.clone()).collect();
                    (event.clone(), rows)
                })
                .collect();
            let write = self.writer.call(move |db| {
                let ingested = stored
                    .iter()
                    .map(|(event, rows)| events::ingest(db, event, rows))
                    .collect::<Result<Vec<_>, _>>()?;
                store::alerts::mark_dispatched(db, std::slice::from_ref(&alert.id), now_ms())?;
                Ok(ingested)
            });
            ctx.spawn(write.into_actor(self).map(move |written, act, _ctx| {
                match written {
                    Ok(ingested) => {
                        for ((event, targets), outcome) in notices.into_iter().zip(ingested) {
                            for id in hand_over(&Committed::of(&event), targets, &outcome) {
                                act.work_on_disk(&id);
                            }
                        }
                    }
                    // It stays undispatched; the next sweep tries again.
                    Err(error) => log::error!("dispatching an alert failed: {error}"),
                }
            }));
        }
    }

    /// Dispatches alerts left undispatched (a crash, a failed write) that
    /// were raised before `raised_before`. Dispatching twice is harmless:
    /// an alert's events carry its id, so the second is a duplicate.
    fn sweep_alerts(&self, raised_before: i64, ctx: &mut Context<Self>) {
        let found = self
            .writer
            .call(move |db| store::alerts::undispatched(db, raised_before));
        ctx.spawn(found.into_actor(self).map(|found, act, ctx| match found {
            Ok(alerts) => act.dispatch_alerts(alerts, ctx),
            Err(error) => log::error!("loading undispatched alerts failed: {error}"),
        }));
    }
}

impl Router {
    /// Starts the actors of endpoints with deliveries waiting on disk; the
    /// API serves meanwhile, and the other actors start when first needed.
    fn start_endpoints_with_work(&self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let found = async move { store.run(endpoint_state::endpoints_with_work).await };
        ctx.spawn(found.into_actor(self).map(|found, act, ctx| match found {
            Ok(ids) => {
                for id in ids {
                    act.actor(&id);
                }
            }
            Err(error) => {
                log::error!("finding endpoints with waiting deliveries failed: {error}; retrying");
                ctx.run_later(Duration::from_secs(5), |act, ctx| {
                    act.start_endpoints_with_work(ctx);
                });
            }
        }));
    }
}

impl Router {
    /// One batch of the rescue sweep (see [`crate::core::rescue`]): the
    /// endpoints after `after`, each probed for due pending deliveries and
    /// held ones. A full batch goes on with the next at once; the last one
    /// schedules the next round after the interval, so rounds never overlap
    /// and a failed read waits as long before it is tried again.
    fn rescue_sweep(&self, after: String, rescued: RescueCount, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let grace = i64::try_from(self.rescue_interval.as_millis()).unwrap_or(i64::MAX);
        let due_before = now_ms().saturating_sub(grace);
        let batch = async move {
            store
                .run(move |db| endpoint_state::rescue_batch(db, &after, RESCUE_BATCH, due_before))
                .await
        };
        ctx.spawn(batch.into_actor(self).map(move |batch, act, ctx| {
            let mut rescued = rescued;
            match batch {
                Ok(batch) => {
                    let full = i64::try_from(batch.len()).is_ok_and(|n| n == RESCUE_BATCH);
                    let last = batch.last().map(|(id, _)| id.clone());
                    for (id, on_disk) in batch {
                        act.rescue(&id, on_disk, &mut rescued);
                    }
                    if let (true, Some(last)) = (full, last) {
                        return act.rescue_sweep(last, rescued, ctx);
                    }
                    rescued.log();
                }
                Err(error) => log::error!("rescue sweep: reading endpoints failed: {error}"),
            }
            ctx.run_later(act.rescue_interval, |act, ctx| {
                act.rescue_sweep(String::new(), RescueCount::default(), ctx);
            });
        }));
    }

    fn rescue(&mut self, id: &str, on_disk: OnDisk, rescued: &mut RescueCount) {
        let Some(route) = self.routes.get(id) else {
            return;
        };
        for rescue in rescue::rescues(on_disk, route.config.active) {
            match rescue {
                Rescue::SetActive(active) => {
                    self.set_active(id, active);
                    rescued.flags += 1;
                }
                Rescue::ReadDisk => {
                    self.work_on_disk(id);
                    rescued.read_disk += 1;
                }
                Rescue::Reload => {
                    let config = self.routes.get(id).map(|route| Arc::clone(&route.config));
                    if let (Some(actor), Some(config)) = (self.actor(id), config) {
                        actor.do_send(Reconfigure(config));
                        rescued.reloaded += 1;
                    }
                }
            }
        }
    }

    /// After a status change whose answer was an error (the write may have
    /// committed all the same), the router's flag takes the status the
    /// database holds; if it cannot be read, the rescue sweep corrects it.
    fn reread_status(&self, id: String, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let read = async move {
            let endpoint = id.clone();
            (
                id,
                store
                    .run(move |db| endpoint_state::is_active(db, &endpoint))
                    .await,
            )
        };
        ctx.spawn(
            read.into_actor(self)
                .map(|(id, read), act, _ctx| match read {
                    Ok(Some(active)) => {
                        act.set_active(&id, active);
                    }
                    Ok(None) => {}
                    Err(error) => log::warn!("endpoint {id}: reading its status failed: {error}"),
                }),
        );
    }
}

/// What one round of the rescue sweep did, for its log line.
#[derive(Debug, Default, Clone, Copy)]
struct RescueCount {
    read_disk: usize,
    reloaded: usize,
    flags: usize,
}

impl RescueCount {
    fn log(self) {
        if self.reloaded + self.flags > 0 {
            log::warn!(
                "rescue sweep: {} endpoints reloaded for deliveries in the wrong state, {} status flags corrected, {} asked to read due deliveries from disk",
                self.reloaded, self.flags, self.read_disk
            );
        } else if self.read_disk > 0 {
            log::info!(
                "rescue sweep: {} endpoints asked to read due deliveries from disk",
                self.read_disk
            );
        }
    }
}

/// What an event's committed deliveries are handed to their actors with.
struct Committed {
    event_id: String,
    /// One copy, shared by every delivery of the event.
    body: Arc<str>,
    /// Also its deliveries' due time: they are due at once.
    created_at: i64,
    event_type: Arc<str>,
}

impl Committed {
    fn of(event: &EventRow) -> Committed {
        Committed {
            event_id: event.id.clone(),
            body: Arc::from(event.body.as_str()),
            created_at: event.created_at,
            event_type: Arc::from(event.event_type.as_str()),
        }
    }
}

/// Hands the deliveries that were stored `pending` to their actors; a
/// target skipped by ingestion (its endpoint was deleted meanwhile) has
/// nothing to send, and one stored `held` waits for an enable. Returns the
/// endpoints whose delivery was stored `pending` although the fan-out took
/// them for disabled (an enable committed in between): they have no actor
/// address here, and must be told to read their disk.
fn hand_over(event: &Committed, targets: Vec<Target>, ingested: &Ingested) -> Vec<String> {
    let Ingested::New { deliveries } = ingested else {
        return Vec::new();
    };
    let written: HashMap<&str, &WrittenDelivery> =
        deliveries.iter().map(|d| (d.id.as_str(), d)).collect();
    let mut unannounced = Vec::new();
    for Target { row, actor } in targets {
        let Some(stored) = written.get(row.id.as_str()).filter(|d| !d.held) else {
            continue;
        };
        match actor {
            Some(actor) => actor.do_send(Enqueue(vec![QueuedDelivery {
                seq: stored.seq,
                id: row.id,
                event_id: event.event_id.clone(),
                body: Arc::clone(&event.body),
                attempt_count: 0,
                due_at: event.created_at,
                event_type: Arc::clone(&event.event_type),
            }])),
            None => unannounced.push(row.endpoint_id),
        }
    }
    unannounced
}

fn new_delivery(event: &EventRow, endpoint_id: &str, active: bool) -> DeliveryRow {
    let row = DeliveryRow {
        id: crate::ids::time_ordered("dlv"),
        tenant_id: event.tenant_id.clone(),
        event_id: event.id.clone(),
        endpoint_id: endpoint_id.to_owned(),
        state: DeliveryState::Pending.as_str().to_owned(),
        attempt_count: 0,
        next_attempt_at: None,
        created_at: event.created_at,
        updated_at: event.created_at,
        seq: 0,
    };
    events::stored_as(row, active)
}

impl Drop for Router {
    /// The endpoint actors' threads end with the router, so that nothing
    /// they hold (the writer, pooled connections) outlives the application
    /// and keeps reconnecting to a database that is gone.
    fn drop(&mut self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.deps = Some(ActorDeps {
            writer: self.writer.clone(),
            store: self.store.clone(),
            bodies: BodyCache::default(),
            transport: self.transport.clone(),
            notices: ctx.address().recipient(),
            settings: self.settings,
        });
        self.start_endpoints_with_work(ctx);
        ctx.run_later(self.rescue_interval, |act, ctx| {
            act.rescue_sweep(String::new(), RescueCount::default(), ctx);
        });
        self.sweep_alerts(i64::MAX, ctx);
        ctx.run_interval(ALERT_SWEEP_INTERVAL, |act, ctx| {
            // Younger alerts are most likely still on their way here.
            let grace = i64::try_from(ALERT_SWEEP_INTERVAL.as_millis()).unwrap_or(i64::MAX);
            act.sweep_alerts(now_ms() - grace, ctx);
        });
    }
}

impl Handler<Publish> for Router {
    type Result = ResponseFuture<Result<Ingested, StoreError>>;

    fn handle(&mut self, Publish(event): Publish, ctx: &mut Context<Self>) -> Self::Result {
        let targets = self.fan_out(&event.tenant_id, &event, None);
        let writer = self.writer.clone();
        let router = ctx.address();
        Box::pin(async move {
            let rows: Vec<DeliveryRow> = targets.iter().map(|t| t.row.clone()).collect();
            let committed = Committed::of(&event);
            let ingested = writer.ingest(event, rows).await?;
            // Only committed deliveries reach an actor.
            for id in hand_over(&committed, targets, &ingested) {
                router.do_send(PendingOnDisk(id));
            }
            Ok(ingested)
        })
    }
}

impl Handler<EndpointSaved> for Router {
    type Result = ();

    fn handle(&mut self, EndpointSaved(mut config): EndpointSaved, _ctx: &mut Context<Self>) {
        match self.routes.get_mut(&config.id) {
            Some(route) => {
                // Only disable and enable change the status, through the router.
                config.active = route.config.active;
                route.config = Arc::new(config);
                if let Some(actor) = &route.actor {
                    actor.do_send(Reconfigure(Arc::clone(&route.config)));
                }
            }
            None => self.add(config),
        }
    }
}

impl Handler<EndpointDeleted> for Router {
    type Result = ();

    fn handle(&mut self, EndpointDeleted(id): EndpointDeleted, _ctx: &mut Context<Self>) {
        if let Some(route) = self.routes.remove(&id) {
            if let Some(ids) = self.by_tenant.get_mut(&route.config.tenant_id) {
                ids.retain(|other| *other != id);
            }
            if let Some(actor) = route.actor {
                actor.do_send(Retire);
            }
        }
    }
}

impl Handler<SnapshotOf> for Router {
    type Result = ResponseFuture<Option<EndpointSnapshot>>;

    fn handle(&mut self, SnapshotOf(id): SnapshotOf, _ctx: &mut Context<Self>) -> Self::Result {
        let actor = self.actor(&id);
        Box::pin(async move { actor?.send(GetSnapshot).await.ok() })
    }
}

impl Handler<SnapshotsOfTenant> for Router {
    type Result = ResponseFuture<HashMap<String, EndpointSnapshot>>;

    fn handle(
        &mut self,
        SnapshotsOfTenant(tenant): SnapshotsOfTenant,
        _ctx: &mut Context<Self>,
    ) -> Self::Result {
        let ids = self.by_tenant.get(&tenant).cloned().unwrap_or_default();
        let asks: Vec<_> = ids
            .into_iter()
            .filter_map(|id| self.actor(&id).map(|actor| (id, actor)))
            .map(|(id, actor)| {
                let ask = actor.send(GetSnapshot);
                async move { ask.await.ok().map(|snapshot| (id, snapshot)) }
            })
            .collect();
        Box::pin(async move {
            futures_util::future::join_all(asks)
                .await
                .into_iter()
                .flatten()
                .collect()
        })
    }
}

impl Handler<DisableEndpoint> for Router {
    type Result = ResponseActFuture<Self, Option<Result<bool, StoreError>>>;

    fn handle(
        &mut self,
        DisableEndpoint(id): DisableEndpoint,
        _ctx: &mut Context<Self>,
    ) -> Self::Result {
        // From now on new events are held for it.
        let was_active = self.set_active(&id, false);
        let actor = self.actor(&id);
        let ask = async move { Some(actor?.send(Disable).await) };
        Box::pin(ask.into_actor(self).map(move |answer, act, ctx| {
            let answer = answer?.unwrap_or(Err(StoreError::WriterGone));
            // Whatever arrived meanwhile, the actor's answer is the truth;
            // an error may hide a commit, so the database is asked.
            act.set_active(&id, if answer.is_ok() { false } else { was_active });
            if answer.is_err() {
                act.reread_status(id, ctx);
            }
            Some(answer)
        }))
    }
}

impl Handler<EnableEndpoint> for Router {
    type Result = ResponseActFuture<Self, Option<Result<EnableOutcome, StoreError>>>;

    fn handle(
        &mut self,
        EnableEndpoint(id, replay): EnableEndpoint,
        _ctx: &mut Context<Self>,
    ) -> Self::Result {
        let was_active = self.set_active(&id, true);
        let actor = self.actor(&id);
        let ask = async move { Some(actor?.send(Enable(replay)).await) };
        Box::pin(ask.into_actor(self).map(move |answer, act, ctx| {
            let answer = answer?.unwrap_or(Err(StoreError::WriterGone));
            act.set_active(&id, answer.is_ok() || was_active);
            if answer.is_err() {
                act.reread_status(id, ctx);
            }
            Some(answer)
        }))
    }
}

impl Handler<PendingOnDisk> for Router {
    type Result = ();

    fn handle(&mut self, PendingOnDisk(id): PendingOnDisk, _ctx: &mut Context<Self>) {
        self.work_on_disk(&id);
    }
}

impl Handler<DeliverySettled> for Router {
    type Result = ();

    fn handle(&mut self, settled: DeliverySettled, _ctx: &mut Context<Self>) {
        // An actor that is not running holds nothing to forget.
        let route = self.routes.get(&settled.endpoint_id);
        if let Some(actor) = route.and_then(|route| route.actor.as_ref()) {
            actor.do_send(SettledElsewhere(settled.delivery_id, settled.seq));
        }
    }
}

impl Handler<EndpointNotice> for Router {
    type Result = ();

    fn handle(&mut self, notice: EndpointNotice, ctx: &mut Context<Self>) {
        match notice {
            EndpointNotice::AlertsRaised(raised) => self.dispatch_alerts(raised, ctx),
            EndpointNotice::Disabled(id) => {
                self.set_active(&id, false);
            }
        }
    }
}

impl Handler<DrainAll> for Router {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, DrainAll(grace): DrainAll, _ctx: &mut Context<Self>) -> Self::Result {
        let drains: Vec<_> = self
            .routes
            .values()
            .filter_map(|route| route.actor.as_ref())
            .map(|actor| actor.send(Drain))
            .collect();
        Box::pin(async move {
            if tokio::time::timeout(grace, futures_util::future::join_all(drains))
                .await
                .is_err()
            {
                log::warn!("shutdown: some attempts were still in flight after {grace:?}; they stay pending");
            }
        })
    }
}

impl Handler<ReleaseThreads> for Router {
    type Result = MessageResult<ReleaseThreads>;

    fn handle(&mut self, _: ReleaseThreads, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(std::mem::take(&mut self.arbiters))
    }
}
