//! Publishing: an event's deliveries, one for each endpoint that subscribes
//! to it, are committed with the event, then handed to their actors; only
//! committed deliveries reach an actor.

use super::messages::Publish;
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

/// A delivery stored `pending` whose actor the fan-out had no address of:
/// another instance owns its endpoint, or the fan-out took the endpoint for
/// disabled (an enable committed in between).
pub(super) struct Unannounced {
    pub(super) endpoint_id: String,
    pub(super) delivery_id: String,
    pub(super) seq: i64,
}

/// Hands over the deliveries that were stored `pending` to their actors; a
/// target skipped by ingestion (its endpoint was deleted meanwhile) has
/// nothing to send, and one stored `held` waits for an enable. Returns the
/// deliveries stored `pending` that have no actor address here (see
/// [`Unannounced`]).
pub(super) fn hand_over(
    event: &Committed,
    targets: Vec<Target>,
    ingested: &Ingested,
) -> Vec<Unannounced> {
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
            None => unannounced.push(Unannounced {
                endpoint_id: row.endpoint_id,
                delivery_id: row.id,
                seq: stored.seq,
            }),
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

/// Committed deliveries the fan-out could not hand to an actor here.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct HandOverElsewhere(pub(super) Vec<Unannounced>);

impl Handler<HandOverElsewhere> for Router {
    type Result = ();

    fn handle(
        &mut self,
        HandOverElsewhere(unannounced): HandOverElsewhere,
        _ctx: &mut Context<Self>,
    ) {
        self.hand_over_elsewhere(unannounced);
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
            let unannounced = hand_over(&committed, targets, &ingested);
            if !unannounced.is_empty() {
                router.do_send(HandOverElsewhere(unannounced));
            }
            Ok(ingested)
        })
    }
}
