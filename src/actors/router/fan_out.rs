//! Publishing: an event's deliveries, one for each endpoint that subscribes
//! to it, are committed with the event, then handed to their actors; only
//! committed deliveries reach an actor.

use super::messages::{PendingOnDisk, Publish};
use super::Router;
use crate::actors::endpoint::{EndpointActor, Enqueue};
use crate::core::delivery::lifecycle::DeliveryState;
use crate::core::endpoint_machine::QueuedDelivery;
use crate::store::events::{self, Ingested, WrittenDelivery};
use crate::store::models::{DeliveryRow, EventRow};
use crate::store::StoreError;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

/// One delivery to create for an event, and the actor to hand it to (none
/// while the endpoint is disabled: the delivery is held).
pub(super) struct Target {
    pub(super) row: DeliveryRow,
    actor: Option<Addr<EndpointActor>>,
}

impl Router {
    /// A delivery for every endpoint of `tenant` that subscribes to
    /// `event`, except `skip` (an alert never goes to its own endpoint).
    pub(super) fn fan_out(
        &mut self,
        tenant: &str,
        event: &EventRow,
        skip: Option<&str>,
    ) -> Vec<Target> {
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
}

/// What an event's committed deliveries are handed to their actors with.
pub(super) struct Committed {
    event_id: String,
    /// One copy, shared by every delivery of the event.
    body: Arc<str>,
    /// Also its deliveries' due time: they are due at once.
    created_at: i64,
    event_type: Arc<str>,
}

impl Committed {
    pub(super) fn of(event: &EventRow) -> Committed {
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
pub(super) fn hand_over(
    event: &Committed,
    targets: Vec<Target>,
    ingested: &Ingested,
) -> Vec<String> {
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
