//! One supervised actor per endpoint: its queue, its concurrency limit and
//! its retry timers.
//!
//! The database is the truth; the actor's queue is a cache of the
//! endpoint's pending deliveries. On start and on every supervised restart
//! it reloads that queue, so a restarted actor or process loses nothing.

use crate::core::delivery::{after_attempt, verdict_for_status, AttemptVerdict};
use crate::core::endpoint::EndpointConfig;
use crate::sender::{self, AttemptReport};
use crate::store::deliveries::{self, AttemptRecord, QueuedDelivery};
use crate::store::models::AttemptRow;
use crate::store::writer::Writer;
use actix::prelude::*;
use rand::Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long to wait before reloading the queue after the database failed.
const RELOAD_BACKOFF: Duration = Duration::from_secs(1);

/// New deliveries, already committed, for this endpoint.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub Vec<QueuedDelivery>);

/// The endpoint was changed: finish in-flight attempts, then restart under
/// the supervisor with the new configuration and a queue reloaded from disk.
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

#[derive(Message)]
#[rtype(result = "EndpointStats")]
pub struct GetStats;

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct EndpointStats {
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

pub struct EndpointActor {
    config: Arc<EndpointConfig>,
    writer: Writer,
    client: reqwest::Client,
    due: VecDeque<QueuedDelivery>,
    waiting: BinaryHeap<Reverse<Waiting>>,
    /// Ids in `due`, `waiting` or in flight, so a delivery that arrives both
    /// from the router and from a reload is queued once.
    known: HashSet<String>,
    in_flight: usize,
    wake: Option<(i64, SpawnHandle)>,
    restart_requested: bool,
    retired: bool,
    draining: bool,
    drained: Vec<oneshot::Sender<()>>,
    restarts: u32,
}

impl EndpointActor {
    pub fn new(config: Arc<EndpointConfig>, writer: Writer, client: reqwest::Client) -> Self {
        EndpointActor {
            config,
            writer,
            client,
            due: VecDeque::new(),
            waiting: BinaryHeap::new(),
            known: HashSet::new(),
            in_flight: 0,
            wake: None,
            restart_requested: false,
            retired: false,
            draining: false,
            drained: Vec::new(),
            restarts: 0,
        }
    }

    fn load_queue(&mut self, ctx: &mut Context<Self>) {
        let endpoint_id = self.config.id.clone();
        let writer = self.writer.clone();
        let load = async move {
            writer
                .call(move |db| deliveries::pending_for_endpoint(db, &endpoint_id))
                .await
        };
        ctx.spawn(load.into_actor(self).map(|loaded, act, ctx| match loaded {
            Ok(pending) => {
                act.admit(pending);
                act.pump(ctx);
            }
            Err(error) => {
                log::error!(
                    "endpoint {}: loading its queue failed: {error}",
                    act.config.id
                );
                ctx.run_later(RELOAD_BACKOFF, |act, ctx| act.load_queue(ctx));
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

    /// Starts every attempt the concurrency limit allows and arms the timer
    /// for the next retry.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.retired || self.draining || self.restart_requested {
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
        while self.in_flight < self.config.max_in_flight {
            let Some(delivery) = self.due.pop_front() else {
                break;
            };
            self.start_attempt(delivery, ctx);
        }
        self.arm_wake(now, ctx);
    }

    fn arm_wake(&mut self, now: i64, ctx: &mut Context<Self>) {
        let Some(Reverse(next)) = self.waiting.peek() else {
            return;
        };
        if let Some((at, handle)) = self.wake {
            if at <= next.due_at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let delay = Duration::from_millis(u64::try_from(next.due_at - now).unwrap_or(0));
        let handle = ctx.run_later(delay, |act, ctx| {
            act.wake = None;
            act.pump(ctx);
        });
        self.wake = Some((next.due_at, handle));
    }

    fn start_attempt(&mut self, delivery: QueuedDelivery, ctx: &mut Context<Self>) {
        self.in_flight += 1;
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
        self.in_flight -= 1;
        delivery.attempt_count += 1;
        let verdict = match report.status {
            Some(status) => verdict_for_status(status, report.retry_after),
            None => AttemptVerdict::Failed { retry_after: None },
        };
        let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
        let transition = after_attempt(
            verdict,
            delivery.attempt_count,
            &self.config.retry_schedule,
            jitter,
        );
        let now = now_ms();
        let next_attempt_at = transition
            .retry_in
            .map(|delay| now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2));
        let record = attempt_record(&delivery, &report, transition.state, next_attempt_at);
        if let Some((kind, message)) = &report.error {
            log::debug!(
                "endpoint {}: delivery {} attempt {} failed ({}): {message}",
                self.config.id,
                delivery.delivery_id,
                delivery.attempt_count,
                kind.as_str()
            );
        }
        self.persist(record, ctx);

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

    fn persist(&mut self, record: AttemptRecord, ctx: &mut Context<Self>) {
        let writer = self.writer.clone();
        let write = async move {
            writer
                .call(move |db| deliveries::record_attempt(db, &record, now_ms()))
                .await
        };
        ctx.spawn(write.into_actor(self).map(|written, act, ctx| {
            if let Err(error) = written {
                // The queue no longer matches the database: restart and reload.
                log::error!(
                    "endpoint {}: recording an attempt failed: {error}",
                    act.config.id
                );
                act.restart_requested = true;
                act.after_slot_freed(ctx);
            }
        }));
    }

    fn after_slot_freed(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight > 0 {
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

fn attempt_record(
    delivery: &QueuedDelivery,
    report: &AttemptReport,
    state: crate::core::delivery::DeliveryState,
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
        },
        state,
        next_attempt_at,
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Actor for EndpointActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.retired {
            self.load_queue(ctx);
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
        self.due.clear();
        self.waiting.clear();
        self.known.clear();
        self.in_flight = 0;
        self.wake = None;
        self.restart_requested = false;
    }
}

impl Handler<Enqueue> for EndpointActor {
    type Result = ();

    fn handle(&mut self, Enqueue(deliveries): Enqueue, ctx: &mut Context<Self>) {
        self.admit(deliveries);
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
        self.due.clear();
        self.waiting.clear();
        self.known.clear();
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

impl Handler<GetStats> for EndpointActor {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(EndpointStats {
            queued: self.due.len() + self.waiting.len(),
            in_flight: self.in_flight,
            restarts: self.restarts,
        })
    }
}
