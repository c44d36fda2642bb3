//! The router: the in-memory registry of endpoints and the fan-out of each
//! new event to the endpoint actors that want it.

use super::endpoint::{
    Drain, EndpointActor, EndpointStats, Enqueue, GetStats, Reconfigure, Retire,
};
use crate::core::delivery::DeliveryState;
use crate::core::endpoint::EndpointConfig;
use crate::store::deliveries::QueuedDelivery;
use crate::store::events::{self, Ingested};
use crate::store::models::{DeliveryRow, EventRow};
use crate::store::writer::Writer;
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

#[derive(Message)]
#[rtype(result = "Option<EndpointStats>")]
pub struct StatsOf(pub String);

/// Graceful shutdown: let every endpoint finish its in-flight attempts,
/// waiting at most this long.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DrainAll(pub Duration);

struct Route {
    config: Arc<EndpointConfig>,
    actor: Addr<EndpointActor>,
}

pub struct Router {
    /// Endpoint actors are spread over one arbiter (thread) per core, so
    /// sending never queues behind the router or a single busy thread.
    arbiters: Vec<Arbiter>,
    next_arbiter: usize,
    writer: Writer,
    client: reqwest::Client,
    routes: HashMap<String, Route>,
    by_tenant: HashMap<String, Vec<String>>,
}

impl Router {
    pub fn new(writer: Writer, client: reqwest::Client, endpoints: Vec<EndpointConfig>) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let mut router = Router {
            arbiters: (0..threads).map(|_| Arbiter::new()).collect(),
            next_arbiter: 0,
            writer,
            client,
            routes: HashMap::new(),
            by_tenant: HashMap::new(),
        };
        for config in endpoints {
            router.add(config);
        }
        router
    }

    fn add(&mut self, config: EndpointConfig) {
        let config = Arc::new(config);
        let (writer, client, for_actor) = (
            self.writer.clone(),
            self.client.clone(),
            Arc::clone(&config),
        );
        let arbiter = &self.arbiters[self.next_arbiter % self.arbiters.len()];
        self.next_arbiter += 1;
        let actor = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
            EndpointActor::new(for_actor, writer, client)
        });
        self.by_tenant
            .entry(config.tenant_id.clone())
            .or_default()
            .push(config.id.clone());
        self.routes
            .insert(config.id.clone(), Route { config, actor });
    }
}

impl Actor for Router {
    type Context = Context<Self>;
}

impl Handler<Publish> for Router {
    type Result = ResponseFuture<Result<Ingested, StoreError>>;

    fn handle(&mut self, Publish(event): Publish, _ctx: &mut Context<Self>) -> Self::Result {
        let targets: Vec<(DeliveryRow, Addr<EndpointActor>)> = self
            .by_tenant
            .get(&event.tenant_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.routes.get(id))
            .filter(|route| route.config.wants(&event.event_type))
            .map(|route| (new_delivery(&event, &route.config.id), route.actor.clone()))
            .collect();
        let writer = self.writer.clone();
        Box::pin(async move {
            let rows: Vec<DeliveryRow> = targets.iter().map(|(row, _)| row.clone()).collect();
            let body: Arc<str> = Arc::from(event.body.as_str());
            let event_id = event.id.clone();
            let ingested = writer
                .call(move |db| events::ingest(db, &event, &rows))
                .await?;
            if matches!(ingested, Ingested::New { .. }) {
                // Only committed deliveries reach an actor.
                for (row, actor) in targets {
                    actor.do_send(Enqueue(vec![QueuedDelivery {
                        delivery_id: row.id,
                        event_id: event_id.clone(),
                        body: Arc::clone(&body),
                        attempt_count: 0,
                        next_attempt_at: None,
                    }]));
                }
            }
            Ok(ingested)
        })
    }
}

fn new_delivery(event: &EventRow, endpoint_id: &str) -> DeliveryRow {
    DeliveryRow {
        id: crate::ids::time_ordered("dlv"),
        tenant_id: event.tenant_id.clone(),
        event_id: event.id.clone(),
        endpoint_id: endpoint_id.to_owned(),
        state: DeliveryState::Pending.as_str().to_owned(),
        attempt_count: 0,
        next_attempt_at: None,
        created_at: event.created_at,
        updated_at: event.created_at,
    }
}

impl Handler<EndpointSaved> for Router {
    type Result = ();

    fn handle(&mut self, EndpointSaved(config): EndpointSaved, _ctx: &mut Context<Self>) {
        match self.routes.get_mut(&config.id) {
            Some(route) => {
                route.config = Arc::new(config);
                route.actor.do_send(Reconfigure(Arc::clone(&route.config)));
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
            route.actor.do_send(Retire);
        }
    }
}

impl Handler<StatsOf> for Router {
    type Result = ResponseFuture<Option<EndpointStats>>;

    fn handle(&mut self, StatsOf(id): StatsOf, _ctx: &mut Context<Self>) -> Self::Result {
        let actor = self.routes.get(&id).map(|route| route.actor.clone());
        Box::pin(async move { actor?.send(GetStats).await.ok() })
    }
}

impl Handler<DrainAll> for Router {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, DrainAll(grace): DrainAll, _ctx: &mut Context<Self>) -> Self::Result {
        let drains: Vec<_> = self
            .routes
            .values()
            .map(|route| route.actor.send(Drain))
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
