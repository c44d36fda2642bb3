//! One supervised actor per endpoint: the shell around its
//! [`EndpointMachine`]. It feeds the machine every event (a delivery
//! arrived, an attempt or a write finished, a timer fired, an operator
//! acted) and carries out the effects it returns: send over HTTP, write
//! through the writer, read a page, arm a timer, notify the router.
//!
//! The database is the truth. The machine holds a bounded window of the
//! endpoint's pending deliveries; the rest is paged in from disk. On start,
//! and on every reload, the actor loads the endpoint's saved state in one
//! unit of work ([`endpoint_state::load`]) with its mailbox paused.
//!
//! A status change (disable, enable) is one small write with the mailbox
//! paused; the backlog it moves follows in batches, each a writer job of
//! its own ([`endpoint_state::move_batch`]), so every other endpoint's
//! writes go on between them. A status change that arrives while the state
//! loads, or while a move is under way, waits in a queue, in order.
//!
//! By concern: `messages` (what the actor takes and tells, and how it
//! handles each), `effects` (timers, pages, holds and backlog moves),
//! `attempts` (sending and recording them) and `status` (an operator's
//! disable and enable).

mod attempts;
mod effects;
mod messages;
mod status;

use crate::actors::lease_clock::LeaseClock;
use crate::core::delivery::attempt_budget::AttemptBudget;
use crate::core::delivery::move_pace::MovePace;
use crate::core::endpoint::EndpointConfig;
use crate::core::endpoint_machine::{
    reload_backoff, Alert, EndpointMachine, MachineConfig, WindowLimits, WriteFailure,
};
use crate::metrics::Metrics;
use crate::sender;
use crate::store::endpoint_state::{self, BodyCache};
use crate::store::leases::Fence;
use crate::store::models::AlertRow;
use crate::store::writer::Writer;
use crate::store::{Db, Store, StoreError};
use crate::time::now_ms;
use actix::prelude::*;
use status::StatusChange;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

pub use messages::{
    Disable, Drain, Enable, EndpointNotice, EndpointSnapshot, Enqueue, GetSnapshot, Reconfigure,
    Retire, SettledElsewhere, WorkOnDisk,
};

/// Settings every endpoint actor shares.
#[derive(Debug, Clone, Copy)]
pub struct ActorSettings {
    pub window: WindowLimits,
    /// The shortest time between two `endpoint.failing` alerts of one
    /// threshold from one endpoint (in different streaks).
    pub alert_min_interval: Duration,
    /// Deliveries moved by one writer job when a status change moves a
    /// backlog (see [`endpoint_state::move_batch`]).
    pub move_batch: usize,
    /// The service's attempt budget, which bounds an endpoint's in-flight.
    pub attempt_budget: AttemptBudget,
}

/// Everything an endpoint actor needs besides its configuration.
#[derive(Clone)]
pub struct ActorDeps {
    pub writer: Writer,
    pub store: Store,
    pub bodies: BodyCache,
    pub transport: sender::Transport,
    pub notices: Recipient<EndpointNotice>,
    pub settings: ActorSettings,
    pub lease_clock: Arc<LeaseClock>,
    pub metrics: Arc<Metrics>,
}

pub struct EndpointActor {
    config: Arc<EndpointConfig>,
    deps: ActorDeps,
    /// The lease under which this instance runs the endpoint; every write
    /// checks it.
    fence: Fence,
    /// A write found the lease taken by another instance.
    fenced: bool,
    machine: EndpointMachine,
    /// Status changes not yet taken by the machine, oldest first.
    status_changes: VecDeque<StatusChange>,
    wake: Option<SpawnHandle>,
    forget_pages: Option<SpawnHandle>,
    move_pace: MovePace,
    drained: Vec<oneshot::Sender<()>>,
    retired: bool,
    restarts: u32,
    /// Failures since the last successful write: the reload backoff.
    failures_in_a_row: u32,
    last_failure: WriteFailure,
    last_error: Option<String>,
    /// Attempts the machine sent that wait for a slot of the budget.
    waiting_for_slot: usize,
}

impl EndpointActor {
    pub fn new(config: Arc<EndpointConfig>, deps: ActorDeps, fence: Fence) -> Self {
        let machine = EndpointMachine::new(machine_config(&config, &deps.settings));
        let move_pace = MovePace::new(deps.settings.move_batch);
        EndpointActor {
            config,
            deps,
            fence,
            fenced: false,
            machine,
            status_changes: VecDeque::new(),
            wake: None,
            forget_pages: None,
            move_pace,
            drained: Vec::new(),
            retired: false,
            restarts: 0,
            failures_in_a_row: 0,
            last_failure: WriteFailure::Refused,
            last_error: None,
            waiting_for_slot: 0,
        }
    }

    /// Loads the saved state with the mailbox paused, so no message is
    /// handled against a state about to be replaced.
    fn load_state(&mut self, ctx: &mut Context<Self>) {
        self.machine = EndpointMachine::new(machine_config(&self.config, &self.deps.settings));
        let endpoint_id = self.config.id.clone();
        let alerts_since = self.machine.alerts_bound_since(now_ms());
        let load = self.deps.writer.call(fenced(&self.fence, move |db| {
            endpoint_state::load(db, &endpoint_id, alerts_since, now_ms())
        }));
        ctx.wait(load.into_actor(self).map(|loaded, act, ctx| match loaded {
            Ok(saved) => {
                act.machine.recall_failing_alerts(&saved.failing_alerts);
                let effects = act.machine.loaded(
                    saved.active,
                    saved.health,
                    saved.unfinished,
                    saved.numbered_up_to,
                    now_ms(),
                );
                act.carry_out(effects, ctx);
            }
            Err(error) => {
                act.failed("loading its state", &error);
                if act.stopped_for_lease(ctx) {
                    return;
                }
                let backoff = act.reload_backoff();
                ctx.run_later(backoff, |act, ctx| act.load_state(ctx));
            }
        }));
    }

    fn failed(&mut self, what: &str, error: &StoreError) {
        if let StoreError::Fenced(_) = error {
            log::warn!(
                "endpoint {}: {what} was refused: another instance owns it now; stopping",
                self.config.id
            );
            self.fenced = true;
            return;
        }
        log::error!("endpoint {}: {what} failed: {error}", self.config.id);
        self.last_error = Some(format!("{what}: {error}"));
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        self.last_failure = if error.is_unavailable() {
            WriteFailure::DatabaseAway
        } else {
            WriteFailure::Refused
        };
    }

    /// Once a write was fenced off, stops for good without starting another
    /// attempt, and tells the router, which forgets the lease.
    fn stopped_for_lease(&mut self, ctx: &mut Context<Self>) -> bool {
        if !self.fenced {
            return false;
        }
        if !self.retired {
            self.retired = true;
            self.machine.retire();
            self.deps
                .notices
                .do_send(EndpointNotice::LeaseLost(self.config.id.clone()));
            ctx.stop();
        }
        true
    }

    fn reload_backoff(&self) -> Duration {
        reload_backoff(self.failures_in_a_row.max(1), self.last_failure)
    }

    fn alert_row(&self, alert: &Alert) -> AlertRow {
        AlertRow {
            id: crate::ids::time_ordered("alr"),
            tenant_id: self.config.tenant_id.clone(),
            endpoint_id: self.config.id.clone(),
            endpoint_url: self.config.url.clone(),
            kind: alert.kind.as_str().to_owned(),
            consecutive_failures: i32::try_from(alert.consecutive_failures).unwrap_or(i32::MAX),
            failing_since: alert.failing_since,
            status_code: alert.status.map(i32::from),
            error: alert.error.clone(),
            disabled_reason: alert.disabled_reason.map(|r| r.as_str().to_owned()),
            created_at: alert.at,
            dispatched_at: None,
            threshold: alert
                .threshold
                .map(|t| i32::try_from(t).unwrap_or(i32::MAX)),
        }
    }
}

/// `work` for the writer, run only while the endpoint's lease is still
/// this actor's (see [`Fence`]).
fn fenced<T>(
    fence: &Fence,
    mut work: impl FnMut(&mut Db) -> Result<T, StoreError> + Send + 'static,
) -> impl FnMut(&mut Db) -> Result<T, StoreError> + Send + 'static {
    let fence = fence.clone();
    move |db| {
        fence.check(db)?;
        work(db)
    }
}

fn machine_config(config: &EndpointConfig, settings: &ActorSettings) -> MachineConfig {
    MachineConfig {
        limits: config.limits.clone(),
        retry_schedule: config.retry_schedule.clone(),
        retry_client_errors: config.retry_client_errors,
        rate_limit: config.rate_limit,
        max_in_flight: settings
            .attempt_budget
            .endpoint_in_flight(config.max_in_flight),
        raises_alerts: config.raises_alerts,
        ordered: config.ordered,
        window: settings.window,
        alert_min_interval_ms: i64::try_from(settings.alert_min_interval.as_millis())
            .unwrap_or(i64::MAX),
    }
}

impl Actor for EndpointActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.retired {
            return;
        }
        if self.failures_in_a_row == 0 {
            self.load_state(ctx);
        } else {
            let backoff = self.reload_backoff();
            ctx.run_later(backoff, |act, ctx| act.load_state(ctx));
        }
    }
}

impl Supervised for EndpointActor {
    /// The actor stopped without being retired: start again from disk,
    /// after a backoff that grows while restarts follow each other.
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.restarts = self.restarts.saturating_add(1);
        self.deps.metrics.actor_restarted();
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        self.last_failure = WriteFailure::Refused;
        self.wake = None;
        self.forget_pages = None;
        // A restart drops the context's futures, those waiting for slots too.
        self.waiting_for_slot = 0;
        log::warn!(
            "endpoint {}: restarting (restart #{})",
            self.config.id,
            self.restarts
        );
    }
}
