//! What the router takes, and the handlers that need no more than the
//! registry: endpoints saved and deleted, their live state, an operator's
//! status changes, the endpoints' notices, and shutdown.

use super::commands::{Command, SNAPSHOT_WITHIN};
use super::Router;
use crate::actors::endpoint::{
    Disable, Drain, Enable, EndpointNotice, EndpointSnapshot, GetSnapshot, Reconfigure,
    SettledElsewhere,
};
use crate::core::endpoint::EndpointConfig;
use crate::core::health::limits::HealthLimits;
use crate::store::endpoint_state::{self, EnableOutcome, Replay};
use crate::store::endpoints;
use crate::store::events::Ingested;
use crate::store::models::EventRow;
use crate::store::StoreError;
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
            None => {
                self.add(config);
                self.round_soon();
            }
        }
    }
}

impl Handler<EndpointDeleted> for Router {
    type Result = ();

    fn handle(&mut self, EndpointDeleted(id): EndpointDeleted, _ctx: &mut Context<Self>) {
        self.remove_route(&id);
    }
}

impl Handler<SnapshotOf> for Router {
    type Result = ResponseActFuture<Self, Option<EndpointSnapshot>>;

    /// The owner's live state: here, or asked of the instance that owns
    /// the endpoint; the stored state when no owner answers in time.
    fn handle(&mut self, SnapshotOf(id): SnapshotOf, _ctx: &mut Context<Self>) -> Self::Result {
        if !self.owned_elsewhere(&id) {
            let actor = self.actor(&id);
            return Box::pin(async move { actor?.send(GetSnapshot).await.ok() }.into_actor(self));
        }
        if !self.routes.contains_key(&id) || !self.store.is_postgres() {
            let stored = self.stored_snapshots(vec![id]);
            return Box::pin(async move { stored.await.into_values().next() }.into_actor(self));
        }
        let asked =
            self.forward_within::<EndpointSnapshot>(id.clone(), Command::Snapshot, SNAPSHOT_WITHIN);
        Box::pin(asked.then(move |live, act, _ctx| {
            let live = live.and_then(Result::ok);
            let stored = live.is_none().then(|| act.stored_snapshots(vec![id]));
            async move {
                match stored {
                    Some(stored) => stored.await.into_values().next(),
                    None => live,
                }
            }
            .into_actor(act)
        }))
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
        let (elsewhere, here): (Vec<String>, Vec<String>) =
            ids.into_iter().partition(|id| self.owned_elsewhere(id));
        let stored = self.stored_snapshots(elsewhere);
        let asks: Vec<_> = here
            .into_iter()
            .filter_map(|id| self.actor(&id).map(|actor| (id, actor)))
            .map(|(id, actor)| {
                let ask = actor.send(GetSnapshot);
                async move { ask.await.ok().map(|snapshot| (id, snapshot)) }
            })
            .collect();
        Box::pin(async move {
            let mut snapshots = stored.await;
            snapshots.extend(
                futures_util::future::join_all(asks)
                    .await
                    .into_iter()
                    .flatten(),
            );
            snapshots
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
        if self.owned_elsewhere(&id) {
            // Nobody may own it yet (it is new).
            self.round_soon();
            return self.forward(id, Command::Disable);
        }
        self.disable_here(id)
    }
}

impl Handler<EnableEndpoint> for Router {
    type Result = ResponseActFuture<Self, Option<Result<EnableOutcome, StoreError>>>;

    fn handle(
        &mut self,
        EnableEndpoint(id, replay): EnableEndpoint,
        _ctx: &mut Context<Self>,
    ) -> Self::Result {
        if self.owned_elsewhere(&id) {
            self.round_soon();
            return self.forward(id, Command::Enable(replay));
        }
        self.enable_here(id, replay)
    }
}

impl Router {
    /// The stored state of endpoints another instance owns: their owner
    /// saves the breaker and streak with every attempt that changes them.
    /// What only the owner's memory holds (the queue, in-flight attempts)
    /// reads as empty.
    fn stored_snapshots(
        &self,
        ids: Vec<String>,
    ) -> impl std::future::Future<Output = HashMap<String, EndpointSnapshot>> + 'static {
        let limits: Vec<(String, HealthLimits)> = ids
            .into_iter()
            .map(|id| {
                let limits = self.routes.get(&id).map_or_else(
                    || self.catalog.defaults.clone(),
                    |route| route.config.limits.clone(),
                );
                (id, limits)
            })
            .collect();
        let store = self.store.clone();
        async move {
            if limits.is_empty() {
                return HashMap::new();
            }
            let read = store
                .run(move |db| {
                    let mut snapshots = HashMap::new();
                    for (id, limits) in limits {
                        let saved = endpoints::load_health(db, &id)?;
                        snapshots.insert(id, EndpointSnapshot::stored(saved.as_ref(), &limits));
                    }
                    Ok(snapshots)
                })
                .await;
            read.unwrap_or_else(|error| {
                log::warn!("reading stored endpoint health failed: {error}");
                HashMap::new()
            })
        }
    }

    /// Whether the endpoint's actor cannot run here: another instance owns
    /// it, or this one is handing it over, or it was created through another
    /// instance a moment ago and is not in the registry yet.
    fn owned_elsewhere(&self, id: &str) -> bool {
        !self.leases.contains_key(id)
            || self.releasing.contains(id)
            || !self.routes.contains_key(id)
    }

    /// Disables an endpoint this instance owns, through its actor.
    pub(super) fn disable_here(
        &mut self,
        id: String,
    ) -> ResponseActFuture<Self, Option<Result<bool, StoreError>>> {
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

    /// Enables an endpoint this instance owns, through its actor.
    pub(super) fn enable_here(
        &mut self,
        id: String,
        replay: Replay,
    ) -> ResponseActFuture<Self, Option<Result<EnableOutcome, StoreError>>> {
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
            EndpointNotice::LeaseLost(id) => self.forget_lease(&id),
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

impl Router {
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
