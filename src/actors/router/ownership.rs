//! The leases under which this instance runs endpoints (see
//! [`crate::core::ownership`] for the rules, [`crate::store::leases`] for
//! the statements). Every renewal interval a lease round renews what this
//! instance holds, takes its share of what is free, and hands over what
//! lies above its share; an endpoint whose lease is lost has its actor
//! stopped at once. Only owned endpoints get an actor: work for another
//! instance's endpoint is signalled to it.

use super::fan_out::Unannounced;
use super::Router;
use crate::actors::endpoint::{Drain, Enqueue, Retire, WorkOnDisk};
use crate::core::endpoint_machine::QueuedDelivery;
use crate::core::health::limits::HealthLimits;
use crate::core::ownership::renewal_interval;
use crate::core::secrets::secret_box::SecretBox;
use crate::store::leases::{self, Round};
use crate::store::signals::{self, Heard, Signal};
use crate::store::{endpoint_state, StoreError};
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who this instance is among those sharing the database.
#[derive(Debug, Clone)]
pub struct Ownership {
    pub instance: Arc<str>,
    /// See [`SecretBox::key_check`].
    pub key_check: String,
    pub lease_ttl: Duration,
    /// Set while this instance leads the work that runs once among the
    /// instances (retention, the alert sweep): the live instance with the
    /// smallest id. It moves when that one's heartbeat goes stale.
    pub leading: Arc<AtomicBool>,
}

/// What endpoint configurations are built with, when the registry reads
/// them from the database.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub defaults: HealthLimits,
    pub secrets: SecretBox,
}

/// Shutdown, after the drain: gives every lease back, so that the other
/// instances take the endpoints over at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LeaveLeases;

/// What the listener heard, handed to the router.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Listened(pub(super) Heard);

impl Ownership {
    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.lease_ttl.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A lease round now, besides the periodic ones: an endpoint was created,
/// or work or a command came for an endpoint nobody may own yet.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct RoundNow;

impl Handler<RoundNow> for Router {
    type Result = ();

    fn handle(&mut self, _: RoundNow, ctx: &mut Context<Self>) {
        self.round_asked = false;
        self.lease_round(ctx);
    }
}

impl Router {
    /// Runs a lease round at once, then one every renewal interval.
    pub(super) fn start_lease_rounds(&mut self, ctx: &mut Context<Self>) {
        self.lease_round(ctx);
        let interval = renewal_interval(self.ownership.lease_ttl);
        ctx.run_interval(interval, |act, ctx| act.lease_round(ctx));
    }

    /// Asks for a lease round soon; asks made meanwhile share it.
    pub(super) fn round_soon(&mut self) {
        if self.round_asked {
            return;
        }
        if let Some(router) = &self.me {
            self.round_asked = true;
            router.do_send(RoundNow);
        }
    }

    /// One lease round, unless one is under way.
    fn lease_round(&mut self, ctx: &mut Context<Self>) {
        if self.leaving || self.round_running {
            return;
        }
        self.round_running = true;
        let store = self.store.clone();
        let ownership = self.ownership.clone();
        let began = Instant::now();
        let round = async move {
            store
                .run(move |db| {
                    let round = leases::round(
                        db,
                        &ownership.instance,
                        &ownership.key_check,
                        ownership.ttl_ms(),
                    )?;
                    let taken: Vec<&str> = round.taken.iter().map(|(id, _)| id.as_str()).collect();
                    let with_work = endpoint_state::with_work_among(db, &taken)?;
                    Ok((round, with_work))
                })
                .await
        };
        ctx.spawn(round.into_actor(self).map(move |outcome, act, ctx| {
            act.round_running = false;
            match outcome {
                // Leases taken or renewed while leaving go back by expiry.
                Ok(_) if act.leaving => {}
                Ok((round, with_work)) => {
                    act.lease_clock.renewed(began);
                    act.ownership.leading.store(round.leader, Ordering::Relaxed);
                    act.apply_round(round, with_work, ctx);
                }
                Err(error) => act.round_failed(&error),
            }
        }));
    }

    fn apply_round(&mut self, round: Round, with_work: Vec<String>, ctx: &mut Context<Self>) {
        let lost: Vec<String> = self
            .leases
            .iter()
            .filter(|(id, epoch)| round.held.get(*id) != Some(epoch))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &lost {
            log::warn!("endpoint {id}: its lease was lost; its actor stops");
            self.forget_lease(id);
        }
        if !round.taken.is_empty() {
            log::info!(
                "took {} endpoints ({} owned now)",
                round.taken.len(),
                round.held.len()
            );
        }
        // Held but unknown here: an actor stopped before a renewal that
        // then went through. Its work, if any, is looked for again.
        let adopted: Vec<String> = round
            .held
            .keys()
            .filter(|id| !self.leases.contains_key(*id))
            .filter(|id| !round.taken.iter().any(|(taken, _)| taken == *id))
            .cloned()
            .collect();
        self.leases = round.held;
        for id in with_work.iter().chain(&adopted) {
            self.work_on_disk(id);
        }
        if !round.taken.is_empty() {
            // Commands may wait for the endpoints just taken.
            self.read_commands(ctx);
        }
        if round
            .taken
            .iter()
            .any(|(id, _)| !self.routes.contains_key(id))
        {
            // Endpoints created through another instance, not read here yet.
            self.read_registry(ctx);
        }
        let release = usize::try_from(round.plan.release).unwrap_or(usize::MAX);
        if release > 0 {
            self.hand_over_some(release, ctx);
        }
    }

    /// Renewals fail (the database is away): once too little of the lease
    /// is left, every actor stops, before another instance may take over.
    fn round_failed(&mut self, error: &StoreError) {
        log::error!("lease round failed: {error}");
        let since = self.lease_clock.since_renewal();
        if !self.leases.is_empty() && !self.lease_clock.may_send() {
            log::warn!(
                "leases not renewed for {since:?}: stopping the actors of {} endpoints",
                self.leases.len()
            );
            let held: Vec<String> = self.leases.keys().cloned().collect();
            for id in &held {
                self.forget_lease(id);
            }
        }
    }

    /// Stops the endpoint's actor, if it runs, and forgets its lease.
    pub(super) fn forget_lease(&mut self, id: &str) {
        self.leases.remove(id);
        self.releasing.remove(id);
        if let Some(actor) = self.routes.get_mut(id).and_then(|route| route.actor.take()) {
            actor.do_send(Retire);
        }
    }

    /// Hands `count` owned endpoints over, those without a running actor
    /// first: each actor finishes what it has in flight, then the lease is
    /// given back for another instance to take.
    fn hand_over_some(&mut self, count: usize, ctx: &mut Context<Self>) {
        let mut candidates: Vec<(bool, String)> = self
            .leases
            .keys()
            .filter(|id| !self.releasing.contains(*id))
            .map(|id| {
                let running = self.routes.get(id).is_some_and(|r| r.actor.is_some());
                (running, id.clone())
            })
            .collect();
        candidates.sort();
        for (_, id) in candidates.into_iter().take(count) {
            self.hand_over_one(id, ctx);
        }
    }

    fn hand_over_one(&mut self, id: String, ctx: &mut Context<Self>) {
        let Some(&epoch) = self.leases.get(&id) else {
            return;
        };
        self.releasing.insert(id.clone());
        let actor = self
            .routes
            .get_mut(&id)
            .and_then(|route| route.actor.take());
        let store = self.store.clone();
        let me = Arc::clone(&self.ownership.instance);
        let lease = (id.clone(), epoch);
        let handed = async move {
            if let Some(actor) = actor {
                // Bounded: each in-flight attempt has its timeout.
                let _ = actor.send(Drain).await;
                actor.do_send(Retire);
            }
            store
                .run(move |db| leases::release(db, &me, std::slice::from_ref(&lease)))
                .await
        };
        ctx.spawn(handed.into_actor(self).map(move |released, act, _ctx| {
            if let Err(error) = released {
                // It expires instead, as it is no longer renewed... unless
                // the next round renews it: then it is simply kept.
                log::warn!("endpoint {id}: giving its lease back failed: {error}");
            }
            act.leases.remove(&id);
            act.releasing.remove(&id);
            // A delivery published here while the lease was being given
            // back was left on disk, unannounced: its new owner, which may
            // have read its disk before that delivery's commit, is told.
            act.outgoing.push(Signal::Work(id));
            act.flush_signals_soon();
        }));
    }

    /// Tells the endpoint's actor (started if need be) that deliveries wait
    /// on disk that it was not handed; an endpoint another instance owns is
    /// signalled to it.
    pub(super) fn work_on_disk(&mut self, id: &str) {
        if let Some(actor) = self.actor(id) {
            actor.do_send(WorkOnDisk);
        } else if !self.leases.contains_key(id) && self.routes.contains_key(id) {
            self.outgoing.push(Signal::Work(id.to_owned()));
            // No round is asked for: a new endpoint is taken at once by the
            // rounds its creation asks for, and a dead owner's once its
            // lease expires, which the periodic rounds see.
            self.flush_signals_soon();
        }
    }

    /// Committed deliveries with no actor here: an owned endpoint's actor
    /// reads its disk; another instance's endpoint is signalled each
    /// delivery, which its owner reads by id.
    pub(super) fn hand_over_elsewhere(&mut self, unannounced: Vec<Unannounced>) {
        for delivery in unannounced {
            if self.leases.contains_key(&delivery.endpoint_id) {
                self.work_on_disk(&delivery.endpoint_id);
                continue;
            }
            if !self.routes.contains_key(&delivery.endpoint_id) {
                continue;
            }
            self.outgoing.push(Signal::Delivery {
                endpoint_id: delivery.endpoint_id,
                delivery_id: delivery.delivery_id,
                seq: delivery.seq,
            });
            // No round is asked for: a new endpoint is taken at once by the
            // rounds its creation asks for, and a dead owner's once its
            // lease expires, which the periodic rounds see.
            self.flush_signals_soon();
        }
    }

    /// Hands deliveries another instance published for owned endpoints to
    /// their actors, read by id; if the read fails, the actors read their
    /// disk instead.
    fn take_handed_over(&mut self, handed: Vec<(String, String)>, ctx: &mut Context<Self>) {
        let Some(bodies) = self.deps.as_ref().map(|deps| deps.bodies.clone()) else {
            return;
        };
        let endpoints: Vec<String> = handed
            .iter()
            .map(|(endpoint, _)| endpoint.clone())
            .collect();
        let ids: Vec<String> = handed.into_iter().map(|(_, id)| id).collect();
        let store = self.store.clone();
        let read = async move {
            store
                .run(move |db| endpoint_state::pending_by_ids(db, &ids, &bodies))
                .await
        };
        ctx.spawn(
            read.into_actor(self)
                .map(move |read, act, _ctx| match read {
                    Ok(found) => {
                        let mut by_endpoint: HashMap<String, Vec<QueuedDelivery>> = HashMap::new();
                        for (endpoint, delivery) in found {
                            by_endpoint.entry(endpoint).or_default().push(delivery);
                        }
                        for (endpoint, mut deliveries) in by_endpoint {
                            deliveries.sort_by_key(|d| d.seq);
                            if let Some(actor) = act.actor(&endpoint) {
                                actor.do_send(Enqueue(deliveries));
                            }
                        }
                    }
                    Err(error) => {
                        log::warn!(
                            "reading deliveries handed over by other instances failed: {error}"
                        );
                        for endpoint in endpoints {
                            act.work_on_disk(&endpoint);
                        }
                    }
                }),
        );
    }

    /// Sends what is in `outgoing` in one statement, right after the
    /// current message: signals of one burst of publishes go together.
    pub(super) fn flush_signals_soon(&mut self) {
        if !self.store.is_postgres() {
            self.outgoing.clear();
            return;
        }
        // The first signal queued asks for the flush; later ones join it.
        if let (1, Some(router)) = (self.outgoing.len(), &self.me) {
            router.do_send(FlushSignals);
        }
    }

    /// Starts the listener for other instances' signals (PostgreSQL only).
    pub(super) fn start_listening(&self, ctx: &mut Context<Self>) {
        if !self.store.is_postgres() {
            return;
        }
        let router = ctx.address().recipient::<Listened>();
        signals::listen(self.store.url().to_owned(), move |heard| {
            if !router.connected() {
                return false;
            }
            if !matches!(&heard, Heard::Signals(signals) if signals.is_empty()) {
                router.do_send(Listened(heard));
            }
            true
        });
    }
}

/// Sends the signals queued in the router.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct FlushSignals;

impl Handler<FlushSignals> for Router {
    type Result = ();

    /// One statement at a time: what is queued while it runs goes with
    /// the next, so signals are sent in batches as large as the load.
    fn handle(&mut self, _: FlushSignals, ctx: &mut Context<Self>) {
        if self.signals_in_flight || self.outgoing.is_empty() {
            return;
        }
        let mut seen = std::collections::HashSet::new();
        let outgoing: Vec<Signal> = std::mem::take(&mut self.outgoing)
            .into_iter()
            .filter(|signal| seen.insert(signal.clone()))
            .collect();
        self.signals_in_flight = true;
        let store = self.store.clone();
        let sent = async move { store.run(move |db| signals::send(db, &outgoing)).await };
        ctx.spawn(sent.into_actor(self).map(|sent, act, ctx| {
            act.signals_in_flight = false;
            if let Err(error) = sent {
                // The polls and the rescue sweep find the work all the same.
                log::warn!("signalling other instances failed: {error}");
            }
            if !act.outgoing.is_empty() {
                ctx.notify(FlushSignals);
            }
        }));
    }
}

impl Handler<Listened> for Router {
    type Result = ();

    fn handle(&mut self, Listened(heard): Listened, ctx: &mut Context<Self>) {
        match heard {
            Heard::Connected => self.rescan_owned(ctx),
            Heard::Signals(signals) => {
                let mut registry = false;
                let mut commands = false;
                let mut handed = Vec::new();
                for signal in signals {
                    match signal {
                        Signal::Delivery { endpoint_id, .. }
                            if registry || self.registry_reading =>
                        {
                            self.work_after_registry.insert(endpoint_id);
                        }
                        Signal::Delivery {
                            endpoint_id,
                            delivery_id,
                            ..
                        } if self.leases.contains_key(&endpoint_id) => {
                            handed.push((endpoint_id, delivery_id));
                        }
                        Signal::Delivery { .. } => {}
                        // After a registry change signalled before it, the
                        // work waits for the change to be read.
                        Signal::Work(id) if registry || self.registry_reading => {
                            self.work_after_registry.insert(id);
                        }
                        Signal::Work(id) if self.leases.contains_key(&id) => {
                            self.work_on_disk(&id);
                        }
                        Signal::Command(id) if self.leases.contains_key(&id) => commands = true,
                        Signal::Registry => registry = true,
                        Signal::Work(_) | Signal::Command(_) => {}
                    }
                }
                if registry {
                    self.read_registry(ctx);
                }
                if !handed.is_empty() {
                    self.take_handed_over(handed, ctx);
                }
                if commands {
                    self.read_commands(ctx);
                }
            }
        }
    }
}

impl Router {
    /// After the listener (re)connected: signals sent meanwhile are lost,
    /// so every owned endpoint with deliveries waiting reads its disk.
    fn rescan_owned(&self, ctx: &mut Context<Self>) {
        let owned: Vec<String> = self.leases.keys().cloned().collect();
        if owned.is_empty() {
            return;
        }
        let store = self.store.clone();
        let found = async move {
            store
                .run(move |db| {
                    let ids: Vec<&str> = owned.iter().map(String::as_str).collect();
                    endpoint_state::with_work_among(db, &ids)
                })
                .await
        };
        ctx.spawn(found.into_actor(self).map(|found, act, _ctx| match found {
            Ok(ids) => {
                for id in ids {
                    act.work_on_disk(&id);
                }
            }
            Err(error) => log::warn!("looking for owned endpoints' work failed: {error}"),
        }));
    }
}

impl Handler<LeaveLeases> for Router {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: LeaveLeases, _ctx: &mut Context<Self>) -> Self::Result {
        self.leaving = true;
        let held: Vec<String> = self.leases.keys().cloned().collect();
        for id in &held {
            self.forget_lease(id);
        }
        let store = self.store.clone();
        let me = Arc::clone(&self.ownership.instance);
        Box::pin(async move {
            if let Err(error) = store.run(move |db| leases::leave(db, &me)).await {
                log::warn!(
                    "giving the leases back at shutdown failed ({error}); they expire instead"
                );
            }
        })
    }
}
