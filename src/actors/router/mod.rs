//! The router: the in-memory registry of endpoints, the fan-out of each new
//! event to the endpoints that subscribe to it, and the dispatch of alerts.
//!
//! By concern: `messages` (what the router takes, and the handlers that
//! need no more than the registry), `fan_out` (publishing: an event's
//! deliveries, committed, then handed to their actors), `alert_dispatch`
//! (alerts as operational events) and `rescue` (work on disk that no actor
//! knows of).

mod alert_dispatch;
mod fan_out;
mod messages;
mod rescue;

use super::endpoint::{ActorDeps, ActorSettings, EndpointActor};
use crate::core::endpoint::EndpointConfig;
use crate::sender::Transport;
use crate::store::endpoint_state::{self, BodyCache};
use crate::store::writer::Writer;
use crate::store::Store;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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
        self.started_route(id)?.actor.clone()
    }

    /// The endpoint's route, its actor started now if it was not running.
    fn started_route(&mut self, id: &str) -> Option<&Route> {
        let route = self.routes.get_mut(id)?;
        if route.actor.is_none() {
            let deps = self.deps.clone()?;
            let config = Arc::clone(&route.config);
            // None once the threads were released at shutdown.
            let arbiter = &self.arbiters[self.next_arbiter.checked_rem(self.arbiters.len())?];
            self.next_arbiter += 1;
            let actor = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
                EndpointActor::new(config, deps)
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
        self.schedule_rescue_sweep(ctx);
        self.start_alert_sweeps(ctx);
    }
}
