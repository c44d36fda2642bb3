//! The router: the in-memory registry of endpoints, the fan-out of each new
//! event to the endpoints that subscribe to it, and the dispatch of alerts.
//!
//! By concern: `messages` (what the router takes, and the handlers that
//! need no more than the registry), `fan_out` (publishing: an event's
//! deliveries, committed, then handed to their actors), `alert_dispatch`
//! (alerts as operational events), `rescue` (work on disk that no actor
//! knows of), `ownership` (the leases under which this instance runs
//! endpoints, when several share a database), `registry` (keeping the
//! endpoints current with changes made through other instances) and
//! `commands` (status changes asked through an instance that does not own
//! the endpoint).

mod alert_dispatch;
mod commands;
mod fan_out;
mod messages;
mod ownership;
mod registry;
mod rescue;

use super::endpoint::{ActorDeps, ActorSettings, EndpointActor};
use crate::actors::lease_clock::LeaseClock;
use crate::core::endpoint::EndpointConfig;
use crate::metrics::Metrics;
use crate::sender::Transport;
use crate::store::endpoint_state::BodyCache;
use crate::store::leases::Fence;
use crate::store::writer::Writer;
use crate::store::Store;
use actix::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

pub use ownership::{Catalog, LeaveLeases, Ownership};

pub use messages::{
    DeliverySettled, DisableEndpoint, DrainAll, EnableEndpoint, EndpointDeleted, EndpointSaved,
    PendingOnDisk, Publish, ReleaseThreads, SnapshotOf, SnapshotsOfTenant,
};

struct Route {
    config: Arc<EndpointConfig>,
    /// Started when the endpoint first has work (or is asked about), so an
    /// idle endpoint costs its configuration only.
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
    ownership: Ownership,
    catalog: Catalog,
    /// The endpoints this instance owns, with the epoch of each lease: only
    /// they get an actor here.
    leases: HashMap<String, i64>,
    /// Owned endpoints being handed over: their actors finish what is in
    /// flight, then the lease is given back.
    releasing: HashSet<String>,
    /// When the last lease round that renewed the leases began.
    lease_clock: Arc<LeaseClock>,
    /// Each tenant's endpoints version, as last read (see [`registry`]).
    registry_versions: HashMap<String, i64>,
    registry_reading: bool,
    /// Endpoints the last registry read lacked (see [`registry`]).
    missing_once: HashSet<String>,
    /// A registry read was asked for while one was under way.
    registry_again: bool,
    /// Work signalled together with a registry change: handed to actors
    /// once the change is read.
    work_after_registry: HashSet<String>,
    /// Commands of other instances being carried out here, by id.
    commands_running: HashSet<String>,
    /// Set at shutdown, once the leases are given back: no round takes more.
    leaving: bool,
    round_running: bool,
    /// A [`ownership::RoundNow`] is on its way.
    round_asked: bool,
    /// A batch of signals is being sent.
    signals_in_flight: bool,
    metrics: Arc<Metrics>,
    /// This router, once it runs.
    me: Option<Addr<Router>>,
    /// Signals for other instances, sent together by the next flush.
    outgoing: Vec<crate::store::signals::Signal>,
}

/// What the router is started with besides its connections.
pub struct RouterSettings {
    pub actors: ActorSettings,
    /// See [`Router::rescue_interval`].
    pub rescue_interval: Duration,
    pub ownership: Ownership,
    pub catalog: Catalog,
    pub metrics: Arc<Metrics>,
}

impl Router {
    pub fn new(
        writer: Writer,
        store: Store,
        transport: Transport,
        endpoints: Vec<EndpointConfig>,
        settings: RouterSettings,
    ) -> Self {
        let RouterSettings {
            actors: settings,
            rescue_interval,
            ownership,
            catalog,
            metrics,
        } = settings;
        let lease_clock = Arc::new(LeaseClock::new(ownership.lease_ttl));
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
            ownership,
            catalog,
            leases: HashMap::new(),
            releasing: HashSet::new(),
            lease_clock,
            registry_versions: HashMap::new(),
            registry_reading: false,
            registry_again: false,
            missing_once: HashSet::new(),
            work_after_registry: HashSet::new(),
            commands_running: HashSet::new(),
            outgoing: Vec::new(),
            me: None,
            signals_in_flight: false,
            leaving: false,
            round_running: false,
            round_asked: false,
            metrics,
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
        self.started_route(id)?.actor.clone()
    }

    /// The endpoint's route, its actor started now if it was not running;
    /// `None` unless this instance owns the endpoint (and is not handing
    /// it over).
    fn started_route(&mut self, id: &str) -> Option<&Route> {
        let epoch = *self.leases.get(id)?;
        if self.releasing.contains(id) {
            return None;
        }
        let route = self.routes.get_mut(id)?;
        if route.actor.is_none() {
            let deps = self.deps.clone()?;
            let config = Arc::clone(&route.config);
            let fence = Fence {
                endpoint_id: id.to_owned(),
                owner: Arc::clone(&self.ownership.instance),
                epoch,
            };
            // None once the threads were released at shutdown.
            let arbiter = &self.arbiters[self.next_arbiter.checked_rem(self.arbiters.len())?];
            self.next_arbiter += 1;
            let actor = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
                EndpointActor::new(config, deps, fence)
            });
            route.actor = Some(actor);
        }
        Some(route)
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
}

/// How many endpoint actors run here (for the metrics).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountActors;

impl Handler<CountActors> for Router {
    type Result = usize;

    fn handle(&mut self, _: CountActors, _: &mut Context<Self>) -> usize {
        self.routes
            .values()
            .filter(|route| route.actor.as_ref().is_some_and(Addr::connected))
            .count()
    }
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
        self.me = Some(ctx.address());
        self.deps = Some(ActorDeps {
            writer: self.writer.clone(),
            store: self.store.clone(),
            bodies: BodyCache::default(),
            transport: self.transport.clone(),
            notices: ctx.address().recipient(),
            settings: self.settings,
            lease_clock: Arc::clone(&self.lease_clock),
            metrics: Arc::clone(&self.metrics),
        });
        // The first lease round starts the actors of the endpoints taken
        // that have deliveries waiting; the others start when first needed.
        self.start_lease_rounds(ctx);
        self.poll_registry(ctx);
        self.start_listening(ctx);
        self.poll_commands(ctx);
        self.schedule_rescue_sweep(ctx);
        self.start_alert_sweeps(ctx);
    }
}
