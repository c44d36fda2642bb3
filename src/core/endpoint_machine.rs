//! The endpoint state machine: everything one endpoint's actor decides.
//!
//! It owns the endpoint's queue window, its circuit breaker, its failure
//! streak, the half-open probe and its lifecycle. Each method takes one
//! event (a delivery arrived, an attempt finished, a write was answered, a
//! timer fired, an operator acted) and `now`, changes the state and returns
//! the [`Effect`]s to carry out. The actor only carries them out, so every
//! rule here is unit-tested with a fake clock.
//!
//! **The window.** The database holds every pending delivery; the machine
//! holds at most a window of them (a count and a byte budget), the earliest
//! due first. Deliveries that do not fit stay on disk and are paged in, in
//! order of due time, as the window drains; `disk_floor` remembers the
//! earliest due time that may be waiting on disk.
//!
//! **Ordered endpoints.** An endpoint with `ordered` set delivers in line
//! order (each delivery's `seq`, which the database gives as the delivery
//! is written, in commit order on that endpoint; see `store::sequence`):
//! one delivery at a time, the oldest unsettled one, the head of the line.
//! The window and the disk are then ordered by line number instead of due
//! time (`disk_floor` is the lowest number that may wait on disk), and
//! nothing is sent while the head is in flight, while its write is
//! unanswered, or while something older may wait on disk: a head waiting
//! for its retry (backoff, breaker, rate limit) holds everything behind it
//! until it succeeds or fails for good.

use super::breaker::{Breaker, CircuitState, Permit};
use super::delivery::{
    after_attempt, verdict_for_status, AttemptVerdict, BacklogMove, DeliveryState,
};
use super::envelope::is_operational;
use super::failure_policy::{AlertKind, DisableReason, Streak};
use super::limits::HealthLimits;
use super::rate_limit::RateLimit;
use super::recent_pages::{HandOver, RecentPages};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// How much of its backlog one endpoint keeps in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimits {
    pub deliveries: usize,
    pub bytes: usize,
}

impl Default for WindowLimits {
    fn default() -> Self {
        WindowLimits {
            deliveries: 1000,
            bytes: 16 * 1024 * 1024,
        }
    }
}

/// What the machine needs of an endpoint's configuration.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    pub limits: HealthLimits,
    pub retry_schedule: Vec<u32>,
    pub retry_client_errors: bool,
    pub max_in_flight: usize,
    /// Attempts a second at most (`None`: no limit).
    pub rate_limit: Option<u32>,
    /// `false` for the operator's alert endpoint (see `EndpointConfig`).
    pub raises_alerts: bool,
    /// Strict event order, one delivery at a time (`max_in_flight` unused).
    pub ordered: bool,
    pub window: WindowLimits,
    /// The shortest time between two `endpoint.failing` alerts of one
    /// threshold (0: no limit).
    pub alert_min_interval_ms: i64,
}

/// A delivery in the window, with the bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedDelivery {
    pub id: String,
    pub event_id: String,
    /// Shared by every delivery of the event held in memory.
    pub body: Arc<str>,
    pub attempt_count: u32,
    /// Milliseconds since the epoch.
    pub due_at: i64,
    /// Its place in the endpoint's line, given by the database as it was
    /// written: the order of an ordered endpoint, and what tells a late
    /// hand-over from a new delivery (no clock does).
    pub seq: i64,
    /// Shared like the body.
    pub event_type: Arc<str>,
}

impl QueuedDelivery {
    /// A `hookrelay.*` event: its failures never raise alerts.
    pub fn is_operational(&self) -> bool {
        is_operational(&self.event_type)
    }
}

/// What an attempt's HTTP exchange came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
    /// The failure in one line, for alerts.
    pub failure: Option<String>,
}

/// An alert raised by the machine; the shell stores and dispatches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub kind: AlertKind,
    /// The threshold an `endpoint.failing` alert crossed.
    pub threshold: Option<u32>,
    pub consecutive_failures: u32,
    pub failing_since: Option<i64>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub disabled_reason: Option<DisableReason>,
    pub at: i64,
}

/// The breaker and streak to save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthState {
    pub streak: Streak,
    pub breaker: Breaker,
}

/// What one finished attempt writes, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptDecision {
    pub delivery_id: String,
    /// The attempt's number, 1 for the first.
    pub attempt: u32,
    pub state: DeliveryState,
    pub next_attempt_at: Option<i64>,
    /// Set when the attempt changed the breaker or the streak.
    pub health: Option<HealthState>,
    pub alerts: Vec<Alert>,
    pub disable: Option<DisableReason>,
}

/// Something the actor must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Start an attempt of this delivery.
    Send(QueuedDelivery),
    /// Read the next page of pending deliveries from disk in `order`: at
    /// most `deliveries` of them and `bytes` of bodies, skipping `exclude`
    /// (already in memory). Answer with [`EndpointMachine::page_loaded`].
    LoadPage {
        deliveries: usize,
        bytes: usize,
        exclude: Vec<String>,
        order: PageOrder,
    },
    /// These deliveries reached a disabled endpoint as pending: hold them.
    Hold(Vec<String>),
    /// Move the next batch of the endpoint's backlog (a writer job of its
    /// own); answer with [`EndpointMachine::batch_moved`].
    MoveBatch(BacklogMove),
    /// Call [`EndpointMachine::wake`] at this time (replaces an earlier one).
    WakeAt(i64),
    /// Call [`EndpointMachine::forget_pages`] at this time (replaces an
    /// earlier one; a timer apart from [`Effect::WakeAt`]'s).
    ForgetPagesAt(i64),
    /// The endpoint disabled itself (committed): tell the router.
    Disabled,
    /// Nothing is outstanding: drop the timers of [`Effect::WakeAt`] and
    /// [`Effect::ForgetPagesAt`] and
    /// load the endpoint's state again (after a backoff, see
    /// [`reload_backoff`], when a failure caused it).
    Reload { failed: bool },
    /// Shutdown: nothing is in flight any more.
    Drained,
}

/// The order pages are read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageOrder {
    /// Earliest due first: `(next_attempt_at, id)`.
    Due,
    /// Line order, for ordered endpoints: `seq`.
    Line,
}

/// A page of pending deliveries as read from disk, in its order.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub deliveries: Vec<QueuedDelivery>,
    /// The first pending delivery left on disk, when the page did not reach
    /// the end: its due time, or in [`PageOrder::Line`] its number.
    pub more_from: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    /// The saved state is not loaded yet: nothing is sent.
    Loading,
    Active,
    /// Deliveries are held on disk, not attempted.
    Disabled,
    /// Finishing what is outstanding, then reloading from disk.
    Reloading {
        failed: bool,
    },
    /// Shutdown: finishing what is in flight, starting nothing.
    Draining,
    /// Deleted: nothing more happens.
    Retired,
}

/// Why an operator's status change cannot be handled now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// Ask again once the state is loaded, or the backlog move under way is
    /// done: the shell keeps it queued, in order.
    Later,
    /// Shutting down, or deleted: it will never be handled.
    Closed,
}

/// What the shell writes to disable the endpoint by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualDisable {
    pub alert: Alert,
}

/// What the shell writes to enable the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enabling {
    /// Set when the endpoint was disabled: the fresh health to save and the
    /// `endpoint.enabled` alert.
    pub reset: Option<(HealthState, Alert)>,
}

/// The machine's state as views show it.
#[derive(Debug, Clone)]
pub struct MachineSnapshot {
    pub breaker: Breaker,
    pub streak: Streak,
    pub queued: usize,
    pub in_flight: usize,
    /// Pending deliveries may be waiting on disk beyond the window.
    pub backlog_on_disk: bool,
    /// The backlog move under way.
    pub moving: Option<BacklogMove>,
}

/// A delivery whose attempt's write is not answered yet.
struct Unsettled {
    delivery: QueuedDelivery,
    decision: AttemptDecision,
}

pub struct EndpointMachine {
    config: MachineConfig,
    lifecycle: Lifecycle,
    breaker: Breaker,
    rate_limit: Option<RateLimit>,
    streak: Streak,
    probe: Option<String>,
    /// Due deliveries in memory, earliest first (ordered: oldest event
    /// first), keyed by [`Self::order_key`] and id.
    window: BTreeMap<(i64, String), QueuedDelivery>,
    /// Each windowed delivery's order key.
    window_due: HashMap<String, i64>,
    window_bytes: usize,
    in_flight: HashMap<String, QueuedDelivery>,
    unsettled: HashMap<String, Unsettled>,
    /// Status writes (holds) not yet answered.
    writes_in_flight: usize,
    /// The earliest due time that may be pending on disk but not in memory;
    /// `None` when everything pending is in memory.
    disk_floor: Option<i64>,
    page_in_flight: bool,
    /// While a page is read: writes answered (the page may predate them)
    /// and the earliest delivery left on disk meanwhile.
    settled_during_page: HashSet<String>,
    floor_during_page: Option<i64>,
    /// Deliveries due again whose write was answered while a page was
    /// read: offered once the page is in, which skips them.
    parked: Vec<QueuedDelivery>,
    /// What the last pages brought in, to tell a late hand-over from the
    /// router from a new delivery.
    recent_pages: RecentPages,
    /// When [`Effect::ForgetPagesAt`] is armed for.
    forget_pages_at: Option<i64>,
    /// Deliveries in flight or unsettled that an operator's attempt
    /// settled meanwhile: not to be readmitted.
    settled_meanwhile: HashSet<String>,
    wake_at: Option<i64>,
    /// Ordered endpoints only: a page that failed is read again no sooner
    /// than this (their floor is an event time, so it cannot say when).
    page_retry_at: Option<i64>,
    /// When each threshold last raised `endpoint.failing` (recalled from
    /// the stored alerts on load), for the bound on repeats.
    last_failing_alert: HashMap<u32, i64>,
    /// The backlog move under way on disk, batch by batch.
    moving: Option<BacklogMove>,
    batch_in_flight: bool,
}

/// An unknown backlog: page before anything else.
const UNKNOWN_FLOOR: i64 = i64::MIN;

/// A failed page read is tried again this long after.
const PAGE_RETRY_DELAY: Duration = Duration::from_secs(1);

impl EndpointMachine {
    /// A machine waiting for its saved state ([`Self::loaded`]).
    pub fn new(config: MachineConfig) -> Self {
        let breaker = Breaker::closed(&config.limits);
        let rate_limit = config.rate_limit.map(RateLimit::per_second);
        let recent_pages = RecentPages::new(2 * config.window.deliveries);
        EndpointMachine {
            config,
            lifecycle: Lifecycle::Loading,
            breaker,
            rate_limit,
            streak: Streak::default(),
            probe: None,
            window: BTreeMap::new(),
            window_due: HashMap::new(),
            window_bytes: 0,
            in_flight: HashMap::new(),
            unsettled: HashMap::new(),
            writes_in_flight: 0,
            disk_floor: Some(UNKNOWN_FLOOR),
            page_in_flight: false,
            settled_during_page: HashSet::new(),
            floor_during_page: None,
            parked: Vec::new(),
            recent_pages,
            forget_pages_at: None,
            settled_meanwhile: HashSet::new(),
            wake_at: None,
            page_retry_at: None,
            last_failing_alert: HashMap::new(),
            moving: None,
            batch_in_flight: false,
        }
    }

    /// The saved state is read: start working (or stay disabled), and
    /// finish the backlog move a crash or a failed write interrupted. Every
    /// delivery committed before the read is numbered up to
    /// `numbered_up_to`: pages read before it are not known, so a late
    /// hand-over of one of those is checked on disk.
    pub fn loaded(
        &mut self,
        active: bool,
        health: Option<HealthState>,
        unfinished: Option<BacklogMove>,
        numbered_up_to: i64,
        now: i64,
    ) -> Vec<Effect> {
        if let Some(health) = health {
            self.streak = health.streak;
            self.breaker = health.breaker;
        }
        self.lifecycle = if active {
            Lifecycle::Active
        } else {
            Lifecycle::Disabled
        };
        self.disk_floor = active.then_some(UNKNOWN_FLOOR);
        self.recent_pages.forget_all();
        self.recent_pages.doubt_up_to(numbered_up_to);
        self.moving = unfinished;
        let mut effects = self.next_batch();
        effects.extend(self.pump(now));
        effects
    }

    /// Deliveries just committed for this endpoint (created, and due, before
    /// their commit). The router may hand one over after a page read from
    /// disk brought it in, and even after it was sent and settled: one a
    /// recent page brought in is skipped, and one a forgotten page may have
    /// brought in is read from disk again (where a settled delivery is no
    /// longer pending) instead of being offered.
    pub fn enqueue(&mut self, deliveries: Vec<QueuedDelivery>, now: i64) -> Vec<Effect> {
        match self.lifecycle {
            Lifecycle::Retired => Vec::new(),
            Lifecycle::Disabled => {
                let ids: Vec<String> = deliveries
                    .into_iter()
                    .map(|d| d.id)
                    .filter(|id| !self.knows(id))
                    .collect();
                if ids.is_empty() {
                    return Vec::new();
                }
                self.writes_in_flight += 1;
                vec![Effect::Hold(ids)]
            }
            _ => {
                for delivery in deliveries {
                    if self.knows(&delivery.id) {
                        continue;
                    }
                    match self.recent_pages.judge(&delivery.id, delivery.seq) {
                        HandOver::BroughtIn => {}
                        HandOver::InDoubt => {
                            let key = self.order_key(&delivery);
                            self.leave_on_disk(key);
                        }
                        HandOver::New => self.offer(delivery),
                    }
                }
                self.pump(now)
            }
        }
    }

    /// The page asked for by [`Effect::LoadPage`].
    pub fn page_loaded(&mut self, page: Page, now: i64) -> Vec<Effect> {
        self.page_in_flight = false;
        let settled = std::mem::take(&mut self.settled_during_page);
        let mut floor = std::mem::take(&mut self.floor_during_page);
        if !matches!(self.lifecycle, Lifecycle::Active | Lifecycle::Draining) {
            self.offer_parked();
            return self.pump(now);
        }
        floor = min_opt(floor, page.more_from);
        self.recent_pages
            .remember(now, page.deliveries.iter().map(|d| (d.id.clone(), d.seq)));
        // An ordered window holds the front of the line: once a delivery
        // does not fit, every later one stays on disk behind it.
        let mut left_behind = false;
        for delivery in page.deliveries {
            if self.knows(&delivery.id) || settled.contains(&delivery.id) {
                continue;
            }
            if !left_behind && self.fits(&delivery) {
                self.insert(delivery);
            } else {
                left_behind = self.config.ordered;
                floor = min_opt(floor, Some(self.order_key(&delivery)));
            }
        }
        self.disk_floor = floor;
        self.offer_parked();
        self.pump(now)
    }

    fn offer_parked(&mut self) {
        for delivery in std::mem::take(&mut self.parked) {
            self.readmit(delivery);
        }
    }

    /// Reading a page failed: try again a little later.
    pub fn page_failed(&mut self, now: i64) -> Vec<Effect> {
        self.page_in_flight = false;
        self.settled_during_page.clear();
        let retry_at = now.saturating_add(millis(PAGE_RETRY_DELAY));
        let floor = min_opt(self.floor_during_page.take(), self.disk_floor);
        if self.config.ordered {
            self.disk_floor = floor;
            self.page_retry_at = Some(retry_at);
        } else {
            self.disk_floor = Some(floor.map_or(retry_at, |f| f.max(retry_at)));
        }
        self.offer_parked();
        self.pump(now)
    }

    /// A timer armed by [`Effect::WakeAt`] fired.
    pub fn wake(&mut self, now: i64) -> Vec<Effect> {
        self.wake_at = None;
        self.pump(now)
    }

    /// The timer armed by [`Effect::ForgetPagesAt`] fired.
    pub fn forget_pages(&mut self, now: i64) -> Vec<Effect> {
        self.forget_pages_at = None;
        self.pump(now)
    }

    /// An attempt ended; `jitter` is a random number in [-1, 1].
    pub fn attempt_finished(
        &mut self,
        delivery_id: &str,
        outcome: &AttemptOutcome,
        now: i64,
        jitter: f64,
    ) -> (Option<AttemptDecision>, Vec<Effect>) {
        let Some(mut delivery) = self.in_flight.remove(delivery_id) else {
            return (None, self.pump(now));
        };
        let was_probe = self.probe.as_deref() == Some(delivery_id);
        if was_probe {
            self.probe = None;
        }
        delivery.attempt_count = delivery.attempt_count.saturating_add(1);
        let verdict = match outcome.status {
            Some(status) => {
                verdict_for_status(status, outcome.retry_after, self.config.retry_client_errors)
            }
            None => AttemptVerdict::Failed { retry_after: None },
        };
        let (health, alerts, disable) =
            self.judge(verdict, outcome, delivery.is_operational(), was_probe, now);
        if disable.is_some() {
            self.become_disabled();
        }
        let active = self.lifecycle != Lifecycle::Disabled;
        let transition = after_attempt(
            verdict,
            delivery.attempt_count,
            &self.config.retry_schedule,
            jitter,
            active,
        );
        let next_attempt_at = transition
            .retry_in
            .map(|delay| now.saturating_add(millis(delay)));
        if let Some(due_at) = next_attempt_at {
            delivery.due_at = due_at;
        }
        let decision = AttemptDecision {
            delivery_id: delivery.id.clone(),
            attempt: delivery.attempt_count,
            state: transition.state,
            next_attempt_at,
            health,
            alerts,
            disable,
        };
        self.unsettled.insert(
            delivery.id.clone(),
            Unsettled {
                delivery,
                decision: decision.clone(),
            },
        );
        (Some(decision), self.pump(now))
    }

    /// The write of an attempt's decision was answered (`Err`: it failed
    /// for good, after the shell's tries).
    pub fn attempt_recorded(
        &mut self,
        delivery_id: &str,
        written: Result<(), ()>,
        now: i64,
    ) -> Vec<Effect> {
        let Some(Unsettled { delivery, decision }) = self.unsettled.remove(delivery_id) else {
            return self.pump(now);
        };
        if self.page_in_flight {
            self.settled_during_page.insert(delivery.id.clone());
        }
        let settled_meanwhile = self.settled_meanwhile.remove(delivery_id);
        let mut effects = Vec::new();
        match written {
            Ok(()) => {
                if decision.disable.is_some() && self.lifecycle == Lifecycle::Disabled {
                    effects.push(Effect::Disabled);
                    // The write recorded the hold of the backlog.
                    self.moving = Some(BacklogMove::Hold);
                    effects.extend(self.next_batch());
                }
                if decision.state == DeliveryState::Pending && !settled_meanwhile {
                    self.readmit(delivery);
                }
            }
            // The shell tried the write again (`attempt_write_retry`) and
            // gave up. What the database holds (the delivery as it was
            // before the attempt, and the streak without it) is the truth:
            // the machine reloads it after its backoff instead of sending
            // again from memory, so a database that keeps refusing writes
            // sees one more attempt a reload, not one a second.
            Err(()) => self.reload_after_failure(),
        }
        effects.extend(self.pump(now));
        effects
    }

    /// A [`Effect::Hold`] write was answered.
    pub fn hold_written(&mut self, written: Result<(), ()>, now: i64) -> Vec<Effect> {
        self.writes_in_flight = self.writes_in_flight.saturating_sub(1);
        if written.is_err() {
            self.reload_after_failure();
        }
        self.pump(now)
    }

    /// An operator disables the endpoint. `Ok(None)`: it already was.
    /// The write records the hold of its backlog ([`BacklogMove::Hold`]).
    pub fn disable(&mut self, now: i64) -> Result<Option<ManualDisable>, NotReady> {
        self.ready_for_status_change()?;
        match self.lifecycle {
            Lifecycle::Disabled => Ok(None),
            // A replay or a cancellation under way finishes first.
            _ if self.moving.is_some() => Err(NotReady::Later),
            _ => {
                self.become_disabled();
                self.moving = Some(BacklogMove::Hold);
                let alert = self.alert(AlertKind::Disabled, None, Some(DisableReason::Manual), now);
                Ok(Some(ManualDisable { alert }))
            }
        }
    }

    /// An operator enables the endpoint; the write records the move of its
    /// held deliveries (`kind`: replay or cancel). On an active endpoint the
    /// streak goes on, so its alerts are not raised twice.
    pub fn enable(&mut self, kind: BacklogMove, now: i64) -> Result<Enabling, NotReady> {
        self.ready_for_status_change()?;
        // The hold under way (or one an attempt's write is about to record)
        // finishes first, so that what it holds is replayed or cancelled.
        let disabling = self
            .unsettled
            .values()
            .any(|u| u.decision.disable.is_some());
        if self.moving.is_some() || disabling {
            return Err(NotReady::Later);
        }
        let reset = match self.lifecycle {
            Lifecycle::Disabled => {
                let alert = self.alert(AlertKind::Enabled, None, None, now);
                self.lifecycle = Lifecycle::Active;
                self.streak = Streak::default();
                self.breaker = Breaker::closed(&self.config.limits);
                Some((self.health(), alert))
            }
            _ => None,
        };
        self.moving = Some(kind);
        Ok(Enabling { reset })
    }

    /// Status changes wait for the saved state and are refused for good
    /// once the endpoint shuts down or is deleted.
    fn ready_for_status_change(&self) -> Result<(), NotReady> {
        match self.lifecycle {
            Lifecycle::Loading | Lifecycle::Reloading { .. } => Err(NotReady::Later),
            Lifecycle::Draining | Lifecycle::Retired => Err(NotReady::Closed),
            Lifecycle::Active | Lifecycle::Disabled => Ok(()),
        }
    }

    /// The status change's write committed; `to_move` is how many rows
    /// its move concerns, when counted (none: it recorded no move). The
    /// move starts, and replayed deliveries are paged in as they become
    /// pending, in order.
    pub fn status_written(&mut self, to_move: Option<usize>, now: i64) -> Vec<Effect> {
        if to_move == Some(0) {
            self.moving = None;
        }
        if self.lifecycle == Lifecycle::Active {
            // A page being read skips what the window held: it must be
            // followed by another.
            self.forget_window();
            self.leave_on_disk(UNKNOWN_FLOOR);
        }
        let mut effects = self.next_batch();
        effects.extend(self.pump(now));
        effects
    }

    /// The status change's write failed: memory no longer matches the
    /// disk, so reload once nothing is outstanding.
    pub fn status_write_failed(&mut self, now: i64) -> Vec<Effect> {
        self.moving = None;
        self.reload_after_failure();
        self.pump(now)
    }

    /// A batch of the backlog move `kind` was written; `Ok(true)`: more
    /// rows are left. A move recorded meanwhile (an attempt's write that
    /// disabled the endpoint during a replay) takes over with its own
    /// batches. A failed batch reloads the state, which finishes the move.
    pub fn batch_moved(
        &mut self,
        kind: BacklogMove,
        written: Result<bool, ()>,
        now: i64,
    ) -> Vec<Effect> {
        self.batch_in_flight = false;
        let mut effects = Vec::new();
        match written {
            Ok(more) => {
                if kind == BacklogMove::Replay
                    && matches!(self.lifecycle, Lifecycle::Active | Lifecycle::Draining)
                {
                    // Deliveries just became pending on disk: page them in.
                    self.leave_on_disk(UNKNOWN_FLOOR);
                }
                if !more && self.moving == Some(kind) {
                    self.moving = None;
                }
                effects.extend(self.next_batch());
            }
            Err(()) => {
                self.moving = None;
                self.reload_after_failure();
            }
        }
        effects.extend(self.pump(now));
        effects
    }

    /// The next batch of the move under way, unless the endpoint reloads
    /// (its load finishes the move), shuts down or is gone.
    fn next_batch(&mut self) -> Vec<Effect> {
        match self.moving {
            Some(kind)
                if !self.batch_in_flight
                    && matches!(self.lifecycle, Lifecycle::Active | Lifecycle::Disabled) =>
            {
                self.batch_in_flight = true;
                vec![Effect::MoveBatch(kind)]
            }
            _ => Vec::new(),
        }
    }

    /// The configuration changed: finish what is outstanding, then reload.
    pub fn reconfigure(&mut self, now: i64) -> Vec<Effect> {
        // While loading, the reload this machine asked for has not read its
        // state yet and will take the new configuration: asking for a second
        // one would replace the machine while the first one's attempts run.
        if !matches!(
            self.lifecycle,
            Lifecycle::Retired | Lifecycle::Draining | Lifecycle::Loading
        ) {
            self.lifecycle = Lifecycle::Reloading { failed: false };
        }
        self.pump(now)
    }

    /// Shutdown: start nothing more; [`Effect::Drained`] once idle.
    pub fn drain(&mut self, now: i64) -> Vec<Effect> {
        if self.lifecycle != Lifecycle::Retired {
            self.lifecycle = Lifecycle::Draining;
        }
        self.pump(now)
    }

    /// The endpoint was deleted.
    pub fn retire(&mut self) {
        self.lifecycle = Lifecycle::Retired;
        self.forget_window();
        self.disk_floor = None;
        self.moving = None;
    }

    pub fn snapshot(&self) -> MachineSnapshot {
        MachineSnapshot {
            breaker: self.breaker.clone(),
            streak: self.streak.clone(),
            queued: self.window.len(),
            in_flight: self.in_flight.len(),
            backlog_on_disk: self.disk_floor.is_some(),
            moving: self.moving,
        }
    }

    pub fn is_active(&self) -> bool {
        self.lifecycle == Lifecycle::Active
    }

    /// Pending deliveries were written to disk without passing through the
    /// machine (an operator's recovery of failed deliveries): page them in.
    /// A page being read may predate them, so it does not clear the floor.
    pub fn work_on_disk(&mut self, now: i64) -> Vec<Effect> {
        if self.lifecycle == Lifecycle::Active {
            self.leave_on_disk(UNKNOWN_FLOOR);
        }
        self.pump(now)
    }

    /// The delivery was settled without the machine (an operator's manual
    /// attempt succeeded): it leaves the window, so it is not sent again.
    /// One in flight finishes and is recorded, but is not retried (the
    /// store keeps the delivery settled); a page being read may predate
    /// the settlement, so it does not bring the delivery in.
    pub fn settled_elsewhere(&mut self, delivery_id: &str, seq: i64, now: i64) -> Vec<Effect> {
        if let Some(due_at) = self.window_due.get(delivery_id).copied() {
            self.take(&(due_at, delivery_id.to_owned()));
        }
        self.parked.retain(|delivery| delivery.id != delivery_id);
        if self.in_flight.contains_key(delivery_id) || self.unsettled.contains_key(delivery_id) {
            self.settled_meanwhile.insert(delivery_id.to_owned());
        }
        if self.page_in_flight {
            self.settled_during_page.insert(delivery_id.to_owned());
        }
        // The router's hand-over of this delivery may still be on its way:
        // remembered like a page's, it is skipped.
        self.recent_pages
            .remember(now, [(delivery_id.to_owned(), seq)]);
        self.pump(now)
    }

    // -- the window -------------------------------------------------------

    fn knows(&self, id: &str) -> bool {
        self.window_due.contains_key(id)
            || self.in_flight.contains_key(id)
            || self.unsettled.contains_key(id)
            || self.parked.iter().any(|d| d.id == id)
    }

    fn fits(&self, delivery: &QueuedDelivery) -> bool {
        self.window.is_empty()
            || (self.window.len() < self.config.window.deliveries
                && self.window_bytes.saturating_add(delivery.body.len())
                    <= self.config.window.bytes)
    }

    /// Where a delivery stands in the window and on disk, before its id:
    /// its due time, or on an ordered endpoint its place in the line.
    fn order_key(&self, delivery: &QueuedDelivery) -> i64 {
        if self.config.ordered {
            delivery.seq
        } else {
            delivery.due_at
        }
    }

    fn insert(&mut self, delivery: QueuedDelivery) {
        let key = self.order_key(&delivery);
        self.window_bytes = self.window_bytes.saturating_add(delivery.body.len());
        self.window_due.insert(delivery.id.clone(), key);
        self.window.insert((key, delivery.id.clone()), delivery);
    }

    fn take(&mut self, key: &(i64, String)) -> Option<QueuedDelivery> {
        let delivery = self.window.remove(key)?;
        self.window_due.remove(&delivery.id);
        self.window_bytes = self.window_bytes.saturating_sub(delivery.body.len());
        Some(delivery)
    }

    /// Leaves `due_at` on disk (the delivery is there already).
    fn leave_on_disk(&mut self, due_at: i64) {
        self.disk_floor = min_opt(self.disk_floor, Some(due_at));
        if self.page_in_flight {
            self.floor_during_page = min_opt(self.floor_during_page, Some(due_at));
        }
    }

    /// A new arrival: into the window if it has room and nothing older
    /// waits on disk; ahead of the latest one if it comes before it.
    fn offer(&mut self, delivery: QueuedDelivery) {
        let key = self.order_key(&delivery);
        if self.disk_floor.is_some_and(|floor| floor <= key) {
            self.leave_on_disk(key);
            return;
        }
        self.insert_before_later(delivery);
    }

    /// Into the window, sending later deliveries back to disk to make room;
    /// to disk itself when the window is full of earlier ones.
    fn insert_before_later(&mut self, delivery: QueuedDelivery) {
        let key = (self.order_key(&delivery), delivery.id.clone());
        while !self.fits(&delivery) {
            let latest = match self.window.keys().next_back() {
                Some(latest) if *latest > key => latest.clone(),
                _ => {
                    self.leave_on_disk(key.0);
                    return;
                }
            };
            if self.take(&latest).is_some() {
                self.leave_on_disk(latest.0);
            }
        }
        self.insert(delivery);
    }

    /// A delivery coming back from an attempt, due again later.
    fn readmit(&mut self, delivery: QueuedDelivery) {
        if self.page_in_flight {
            self.parked.push(delivery);
        } else if matches!(self.lifecycle, Lifecycle::Active | Lifecycle::Draining) {
            if self.config.ordered {
                // It heads the line: it keeps its place even when the
                // floor has reached its event time (a tie on disk).
                self.insert_before_later(delivery);
            } else {
                self.offer(delivery);
            }
        } else if self.lifecycle != Lifecycle::Retired {
            let key = self.order_key(&delivery);
            self.leave_on_disk(key);
        }
    }

    fn forget_window(&mut self) {
        self.window.clear();
        self.window_due.clear();
        self.window_bytes = 0;
    }

    fn become_disabled(&mut self) {
        self.lifecycle = Lifecycle::Disabled;
        self.forget_window();
        self.recent_pages.forget_all();
        self.disk_floor = None;
    }

    fn reload_after_failure(&mut self) {
        if !matches!(self.lifecycle, Lifecycle::Retired | Lifecycle::Draining) {
            self.lifecycle = Lifecycle::Reloading { failed: true };
        }
    }

    fn quiet(&self) -> bool {
        self.in_flight.is_empty()
            && self.unsettled.is_empty()
            && self.writes_in_flight == 0
            && !self.page_in_flight
            && !self.batch_in_flight
    }

    // -- starting attempts ------------------------------------------------

    /// Starts every attempt the limits and the breaker allow, asks for the
    /// next page when the window runs low, and arms the next wake-up.
    fn pump(&mut self, now: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        match self.lifecycle {
            Lifecycle::Active => {}
            Lifecycle::Reloading { failed } => {
                if self.quiet() {
                    self.lifecycle = Lifecycle::Loading;
                    self.forget_window();
                    // The shell drops the timer: the next one must be armed
                    // even if it is due at the time this one was.
                    self.wake_at = None;
                    effects.push(Effect::Reload { failed });
                }
                return effects;
            }
            Lifecycle::Draining => {
                if self.in_flight.is_empty() && self.unsettled.is_empty() {
                    effects.push(Effect::Drained);
                }
                return effects;
            }
            Lifecycle::Loading | Lifecycle::Disabled | Lifecycle::Retired => return effects,
        }
        let mut breaker_wait = None;
        let mut rate_wait = None;
        while self.in_flight.len() < self.config.max_in_flight {
            let Some(key) = self.next_to_send(now) else {
                break;
            };
            let probe = match self.breaker.permit(now) {
                Permit::Send => false,
                Permit::Probe => true,
                Permit::WaitUntil(at) => {
                    breaker_wait = Some(at);
                    break;
                }
                Permit::AwaitProbe => break,
            };
            if let Some(Err(free_at)) = self.rate_limit.as_mut().map(|limit| limit.take(now)) {
                rate_wait = Some(free_at);
                break;
            }
            if let Some(delivery) = self.take(&key) {
                if probe {
                    self.probe = Some(delivery.id.clone());
                }
                self.in_flight.insert(delivery.id.clone(), delivery.clone());
                effects.push(Effect::Send(delivery));
            }
            if probe {
                break;
            }
        }
        // A due delivery held back by the breaker waits for `breaker_wait`,
        // by the rate limit for `rate_wait`; one held back by the in-flight
        // limit, for an attempt to end.
        let next_due = self
            .window
            .values()
            .next()
            .map(|delivery| delivery.due_at)
            .filter(|due_at| *due_at > now);
        self.recent_pages.forget_old(now);
        let mut next = min_opt(min_opt(breaker_wait, rate_wait), next_due);
        if let Some(floor) = self.disk_floor {
            let low = self.window.len() <= self.config.window.deliveries / 2
                && self.window_bytes <= self.config.window.bytes / 2;
            if self.config.ordered {
                next = min_opt(
                    next,
                    self.page_in_event_order(floor, low, now, &mut effects),
                );
            } else if floor <= now && low && !self.page_in_flight {
                effects.push(self.load_page(PageOrder::Due));
            } else if floor > now {
                next = min_opt(next, Some(floor));
            }
        }
        if let Some(at) = next.filter(|at| *at > now) {
            if self.wake_at.is_none_or(|armed| armed > at || armed <= now) {
                self.wake_at = Some(at);
                effects.push(Effect::WakeAt(at));
            }
        }
        if self.quiet() {
            effects.extend(self.wake_to_forget_pages(now));
        }
        effects
    }

    /// Any wake-up forgets old pages; a quiet machine, which no answer will
    /// wake soon (its next wake-up may be a retry hours away), arms a timer
    /// to forget them.
    fn wake_to_forget_pages(&mut self, now: i64) -> Option<Effect> {
        let at = self.recent_pages.forget_at().filter(|at| *at > now)?;
        if self
            .forget_pages_at
            .is_some_and(|armed| armed > now && armed <= at)
        {
            return None;
        }
        self.forget_pages_at = Some(at);
        Some(Effect::ForgetPagesAt(at))
    }

    /// The window's first delivery, if it may be sent now: it is due and,
    /// on an ordered endpoint, it heads the line.
    fn next_to_send(&self, now: i64) -> Option<(i64, String)> {
        let (key, delivery) = self.window.iter().next()?;
        if delivery.due_at > now || (self.config.ordered && !self.heads_the_line(key.0)) {
            return None;
        }
        Some(key.clone())
    }

    /// Whether the window's first delivery (order key `key`) is the oldest
    /// unsettled one: none is in flight or being written or coming back,
    /// nothing older may wait on disk, and no replay is still making held
    /// (older) deliveries pending again.
    fn heads_the_line(&self, key: i64) -> bool {
        self.in_flight.is_empty()
            && self.unsettled.is_empty()
            && self.parked.is_empty()
            && self.disk_floor.is_none_or(|floor| key <= floor)
            && self.moving != Some(BacklogMove::Replay)
    }

    /// Paging of an ordered endpoint: when the window runs low, or when
    /// something older than its first delivery may wait on disk (a
    /// recovery, a replay); then the window is read afresh from the oldest
    /// pending delivery, so that it always holds the front of the line.
    /// Returns when to try again after a failed page.
    fn page_in_event_order(
        &mut self,
        floor: i64,
        low: bool,
        now: i64,
        effects: &mut Vec<Effect>,
    ) -> Option<i64> {
        if self.page_in_flight {
            return None;
        }
        if let Some(at) = self.page_retry_at.filter(|at| *at > now) {
            return Some(at);
        }
        let overtaken = self
            .window
            .keys()
            .next()
            .is_some_and(|(key, _)| *key > floor);
        if overtaken {
            self.forget_window();
        }
        if overtaken || low {
            self.page_retry_at = None;
            effects.push(self.load_page(PageOrder::Line));
        }
        None
    }

    fn load_page(&mut self, order: PageOrder) -> Effect {
        self.page_in_flight = true;
        self.floor_during_page = None;
        let mut exclude: Vec<String> = self.window_due.keys().cloned().collect();
        exclude.extend(self.in_flight.keys().cloned());
        exclude.extend(self.unsettled.keys().cloned());
        exclude.extend(self.parked.iter().map(|d| d.id.clone()));
        Effect::LoadPage {
            deliveries: self.config.window.deliveries - self.window.len(),
            bytes: self.config.window.bytes.saturating_sub(self.window_bytes),
            exclude,
            order,
        }
    }

    // -- health -----------------------------------------------------------

    /// Feeds an attempt's verdict to the breaker and the streak; returns the
    /// health to save (if it changed), the alerts raised and whether the
    /// endpoint is now disabled.
    fn judge(
        &mut self,
        verdict: AttemptVerdict,
        outcome: &AttemptOutcome,
        operational: bool,
        was_probe: bool,
        now: i64,
    ) -> (Option<HealthState>, Vec<Alert>, Option<DisableReason>) {
        let mut alerts = Vec::new();
        let mut disable = None;
        let alerting = self.config.raises_alerts;
        if verdict == AttemptVerdict::Delivered {
            if self.streak.consecutive_failures == 0 && self.breaker.state == CircuitState::Closed {
                return (None, alerts, None);
            }
            let ended = self.streak.clone();
            self.breaker.after_success(&self.config.limits);
            // Only a streak that raised an alert raises its end, so
            // `recovered` is bounded as `failing` is.
            if self.streak.after_success() && alerting {
                alerts.push(Alert {
                    consecutive_failures: ended.consecutive_failures,
                    failing_since: ended.failing_since,
                    ..self.alert(AlertKind::Recovered, Some(outcome), None, now)
                });
            }
        } else {
            let gone = outcome.status == Some(410);
            // Failures of operational events count (breaker, auto-disable)
            // but cross no alert threshold: alerts must not feed alerts.
            let limits = if operational {
                HealthLimits {
                    alert_thresholds: Vec::new(),
                    ..self.config.limits.clone()
                }
            } else {
                self.config.limits.clone()
            };
            let failure = self.streak.after_failure(&limits, now, gone);
            self.breaker.after_failure(
                self.streak.consecutive_failures,
                was_probe,
                &self.config.limits,
                now,
            );
            if alerting {
                for threshold in failure.crossed {
                    if self.failing_bound_allows(threshold, now) {
                        self.streak.alert_raised = true;
                        alerts.push(Alert {
                            threshold: Some(threshold),
                            ..self.alert(AlertKind::Failing, Some(outcome), None, now)
                        });
                    }
                }
                if self.lifecycle == Lifecycle::Active {
                    disable = failure.disable;
                }
                // Once per disable: only an operator's enable starts another.
                if let Some(reason) = disable {
                    alerts.push(self.alert(AlertKind::Disabled, Some(outcome), Some(reason), now));
                }
            }
        }
        (Some(self.health()), alerts, disable)
    }

    /// `endpoint.failing` alerts raised before this machine was built (and
    /// stored), as `(threshold, at)`: the bound on repeats holds across
    /// reloads.
    pub fn recall_failing_alerts(&mut self, raised: &[(u32, i64)]) {
        for &(threshold, at) in raised {
            let last = self.last_failing_alert.entry(threshold).or_insert(at);
            *last = (*last).max(at);
        }
    }

    /// How far back [`recall_failing_alerts`](Self::recall_failing_alerts)
    /// needs to look.
    pub fn alerts_bound_since(&self, now: i64) -> i64 {
        now.saturating_sub(self.config.alert_min_interval_ms)
    }

    /// At most one `endpoint.failing` alert of a threshold per
    /// `alert_min_interval_ms`. A streak crosses each threshold once, so
    /// this bounds only the repeats of new streaks (a flapping endpoint),
    /// never a streak's escalation to a higher threshold.
    fn failing_bound_allows(&mut self, threshold: u32, now: i64) -> bool {
        let interval = self.config.alert_min_interval_ms;
        let last = self.last_failing_alert.get(&threshold).copied();
        if interval > 0 && last.is_some_and(|at| now.saturating_sub(at) < interval) {
            return false;
        }
        self.last_failing_alert.insert(threshold, now);
        true
    }

    fn alert(
        &self,
        kind: AlertKind,
        outcome: Option<&AttemptOutcome>,
        disabled_reason: Option<DisableReason>,
        now: i64,
    ) -> Alert {
        Alert {
            kind,
            threshold: None,
            consecutive_failures: self.streak.consecutive_failures,
            failing_since: self.streak.failing_since,
            status: outcome.and_then(|o| o.status),
            error: outcome.and_then(|o| o.failure.clone()),
            disabled_reason,
            at: now,
        }
    }

    fn health(&self) -> HealthState {
        HealthState {
            streak: self.streak.clone(),
            breaker: self.breaker.clone(),
        }
    }
}

/// Picks a page from the rows read from disk (earliest due first): rows in
/// `exclude` are skipped, then rows are taken while the page holds fewer
/// than `deliveries` and their bodies fit in `bytes` (the first always
/// fits, so a body larger than the budget still goes out). Returns the
/// indexes taken and the due time of the first row left behind.
pub fn select_page(
    rows: &[(String, i64, usize)],
    exclude: &HashSet<String>,
    deliveries: usize,
    bytes: usize,
) -> (Vec<usize>, Option<i64>) {
    let mut taken = Vec::new();
    let mut used = 0usize;
    for (index, (id, due_at, size)) in rows.iter().enumerate() {
        if exclude.contains(id) {
            continue;
        }
        let fits = taken.is_empty() || used.saturating_add(*size) <= bytes;
        if taken.len() >= deliveries || !fits {
            return (taken, Some(*due_at));
        }
        used = used.saturating_add(*size);
        taken.push(index);
    }
    (taken, None)
}

/// Why the last write or load failed, which decides how long a reload waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFailure {
    /// The database was unreachable or the writer refused work meanwhile.
    DatabaseAway,
    /// The database answered and refused this endpoint's work.
    Refused,
}

/// How long a reload caused by the `failures`-th failure in a row waits:
/// 1 s, doubling, at most 5 minutes. While the database is away the wait
/// stops growing at 5 s: the writer turns work away at once and cheaply
/// then, and the endpoint should resume within seconds of its return.
pub fn reload_backoff(failures: u32, cause: WriteFailure) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let cap = match cause {
        WriteFailure::DatabaseAway => MAX_RELOAD_BACKOFF_WHILE_AWAY,
        WriteFailure::Refused => MAX_RELOAD_BACKOFF,
    };
    Duration::from_secs(1u64 << doublings).min(cap)
}

const MAX_RELOAD_BACKOFF: Duration = Duration::from_secs(300);

/// How long the shell waits before writing a finished attempt again after
/// its `failures`-th failed write (1 s, doubling), or `None` once it has
/// tried [`ATTEMPT_WRITE_TRIES`] times: the machine then reloads
/// ([`EndpointMachine::attempt_recorded`]).
pub fn attempt_write_retry(failures: u32) -> Option<Duration> {
    (failures < ATTEMPT_WRITE_TRIES)
        .then(|| Duration::from_secs(1u64 << failures.saturating_sub(1).min(16)))
}

/// Writes of one attempt's result, the first included.
const ATTEMPT_WRITE_TRIES: u32 = 5;
const MAX_RELOAD_BACKOFF_WHILE_AWAY: Duration = Duration::from_secs(5);

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::limits::test_limits;

    const NOW: i64 = 1_000_000;

    fn config() -> MachineConfig {
        MachineConfig {
            limits: test_limits(),
            retry_schedule: vec![5, 60],
            retry_client_errors: true,
            max_in_flight: 2,
            rate_limit: None,
            raises_alerts: true,
            ordered: false,
            window: WindowLimits {
                deliveries: 4,
                bytes: 1000,
            },
            alert_min_interval_ms: 300_000,
        }
    }

    fn delivery(n: u32, due_at: i64) -> QueuedDelivery {
        QueuedDelivery {
            id: format!("dlv_{n:03}"),
            event_id: format!("evt_{n:03}"),
            body: Arc::from("x".repeat(100).as_str()),
            attempt_count: 0,
            due_at,
            // Line order follows the number; numbered above what the tests'
            // machines were loaded with.
            seq: i64::from(n),
            event_type: Arc::from("invoice.paid"),
        }
    }

    fn sent(effects: &[Effect]) -> Vec<String> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send(d) => Some(d.id.clone()),
                _ => None,
            })
            .collect()
    }

    fn page_request(effects: &[Effect]) -> Option<(usize, usize, Vec<String>)> {
        effects.iter().find_map(|e| match e {
            Effect::LoadPage {
                deliveries,
                bytes,
                exclude,
                ..
            } => Some((*deliveries, *bytes, exclude.clone())),
            _ => None,
        })
    }

    /// When [`active`] machines read their first page: before anything
    /// the tests hand them was created.
    const STARTED: i64 = NOW - 1_000;

    /// A loaded, active machine whose disk holds nothing.
    fn active(config: MachineConfig) -> EndpointMachine {
        let mut machine = EndpointMachine::new(config);
        let effects = machine.loaded(true, None, None, 0, STARTED);
        assert!(page_request(&effects).is_some(), "{effects:?}");
        machine.page_loaded(Page::default(), STARTED);
        machine
    }

    fn failed(status: u16) -> AttemptOutcome {
        AttemptOutcome {
            status: Some(status),
            retry_after: None,
            failure: Some(format!("HTTP {status}")),
        }
    }

    fn ok() -> AttemptOutcome {
        AttemptOutcome {
            status: Some(204),
            retry_after: None,
            failure: None,
        }
    }

    #[test]
    fn nothing_is_sent_before_the_saved_state_and_the_first_page() {
        let mut machine = EndpointMachine::new(config());
        assert!(sent(&machine.enqueue(vec![delivery(1, NOW)], NOW)).is_empty());
        let effects = machine.loaded(true, None, None, 0, NOW);
        assert!(sent(&effects).is_empty());
        let (count, bytes, exclude) = page_request(&effects).expect("asks for a page");
        assert_eq!((count, bytes, exclude.len()), (4, 1000, 0));
        let page = Page {
            deliveries: vec![delivery(1, NOW), delivery(2, NOW)],
            more_from: None,
        };
        assert_eq!(machine.page_loaded(page, NOW).len(), 2);
    }

    #[test]
    fn a_disabled_endpoint_holds_what_reaches_it() {
        let mut machine = EndpointMachine::new(config());
        assert!(machine.loaded(false, None, None, 0, NOW).is_empty());
        let effects = machine.enqueue(vec![delivery(1, NOW)], NOW);
        assert_eq!(effects, vec![Effect::Hold(vec!["dlv_001".to_owned()])]);
    }

    #[test]
    fn the_window_is_bounded_and_the_rest_is_paged_in_order() {
        let mut machine = active(MachineConfig {
            max_in_flight: 1,
            ..config()
        });
        // Four fill the window, the first of them is sent at once; the
        // fifth and sixth stay on disk.
        let arrivals: Vec<_> = (1..=6).map(|n| delivery(n, NOW + i64::from(n))).collect();
        let effects = machine.enqueue(arrivals, NOW + 10);
        assert_eq!(sent(&effects), vec!["dlv_001"]);
        assert_eq!(machine.snapshot().queued, 3);
        assert!(machine.snapshot().backlog_on_disk);
        // One due before everything on disk still gets in, and goes first.
        machine.enqueue(vec![delivery(7, NOW)], NOW + 10);
        assert_eq!(machine.snapshot().queued, 4);
        let finish = |machine: &mut EndpointMachine, id: &str| {
            let (_, mut effects) = machine.attempt_finished(id, &ok(), NOW + 20, 0.0);
            effects.extend(machine.attempt_recorded(id, Ok(()), NOW + 20));
            effects
        };
        assert_eq!(sent(&finish(&mut machine, "dlv_001")), vec!["dlv_007"]);
        let effects = finish(&mut machine, "dlv_007");
        assert_eq!(sent(&effects), vec!["dlv_002"]);
        let (count, _, exclude) = page_request(&effects).expect("the window ran low");
        assert_eq!(count, 2);
        for id in ["dlv_002", "dlv_003", "dlv_004"] {
            assert!(exclude.contains(&id.to_owned()), "{id} is in memory");
        }
    }

    #[test]
    fn a_body_larger_than_the_budget_still_goes_out_alone() {
        let mut machine = active(config());
        let mut big = delivery(1, NOW);
        big.body = Arc::from("x".repeat(5000).as_str());
        assert_eq!(sent(&machine.enqueue(vec![big], NOW)), vec!["dlv_001"]);
    }

    #[test]
    fn pages_skip_what_memory_holds_and_respect_the_byte_budget() {
        let rows: Vec<(String, i64, usize)> = (1..=5)
            .map(|n| (format!("d{n}"), i64::from(n), 400))
            .collect();
        let exclude: HashSet<String> = ["d1".to_owned()].into();
        assert_eq!(
            select_page(&rows, &exclude, 10, 1000),
            (vec![1, 2], Some(4))
        );
        assert_eq!(select_page(&rows, &exclude, 1, 10_000), (vec![1], Some(3)));
        assert_eq!(select_page(&rows, &exclude, 10, 100), (vec![1], Some(3)));
        assert_eq!(
            select_page(&rows, &HashSet::new(), 10, 10_000),
            (vec![0, 1, 2, 3, 4], None)
        );
    }

    #[test]
    fn a_delivery_settled_while_a_page_was_read_is_not_taken_again() {
        let mut machine = EndpointMachine::new(config());
        machine.loaded(true, None, None, 0, NOW);
        machine.page_loaded(
            Page {
                deliveries: vec![delivery(1, NOW)],
                more_from: Some(NOW),
            },
            NOW,
        );
        let (_, effects) = machine.attempt_finished("dlv_001", &ok(), NOW, 0.0);
        assert!(page_request(&effects).is_some() || machine.page_in_flight);
        machine.page_in_flight = true;
        machine.attempt_recorded("dlv_001", Ok(()), NOW);
        // The page was read before the success committed.
        let effects = machine.page_loaded(
            Page {
                deliveries: vec![delivery(1, NOW)],
                more_from: None,
            },
            NOW,
        );
        assert!(sent(&effects).is_empty());
    }

    #[test]
    fn a_retry_settled_while_a_page_was_read_comes_back_after_it() {
        let mut machine = active(config());
        machine.enqueue(vec![delivery(1, NOW)], NOW);
        machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
        machine.page_in_flight = true;
        machine.attempt_recorded("dlv_001", Ok(()), NOW);
        assert_eq!(machine.snapshot().queued, 0);
        let stale = delivery(1, NOW);
        machine.page_loaded(
            Page {
                deliveries: vec![stale],
                more_from: None,
            },
            NOW,
        );
        let snapshot = machine.snapshot();
        assert_eq!(snapshot.queued, 1);
        assert!(!snapshot.backlog_on_disk);
        assert_eq!(sent(&machine.wake(NOW + 5000)), vec!["dlv_001"]);
    }

    #[test]
    fn attempts_respect_the_in_flight_limit_and_due_order() {
        let mut machine = active(config());
        let effects = machine.enqueue(
            vec![delivery(3, NOW + 5), delivery(1, NOW), delivery(2, NOW + 1)],
            NOW + 10,
        );
        assert_eq!(sent(&effects), vec!["dlv_001", "dlv_002"]);
        let (_, effects) = machine.attempt_finished("dlv_001", &ok(), NOW + 11, 0.0);
        assert_eq!(sent(&effects), vec!["dlv_003"]);
    }

    #[test]
    fn a_failure_schedules_the_retry_once_its_write_commits() {
        let mut machine = active(config());
        machine.enqueue(vec![delivery(1, NOW)], NOW);
        let (decision, _) = machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
        let decision = decision.expect("recorded");
        assert_eq!(decision.state, DeliveryState::Pending);
        assert_eq!(decision.attempt, 1);
        assert_eq!(decision.next_attempt_at, Some(NOW + 5000));
        assert_eq!(machine.snapshot().queued, 0, "not before the commit");
        let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW + 1);
        assert!(effects.contains(&Effect::WakeAt(NOW + 5000)), "{effects:?}");
        assert_eq!(sent(&machine.wake(NOW + 5000)), vec!["dlv_001"]);
    }

    #[test]
    fn a_write_that_fails_for_good_reloads_the_truth_instead_of_sending_again() {
        let mut machine = active(config());
        machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW + 10_000)], NOW);
        machine.attempt_finished("dlv_001", &ok(), NOW, 0.0);
        let effects = machine.attempt_recorded("dlv_001", Err(()), NOW);
        assert!(sent(&effects).is_empty(), "{effects:?}");
        assert_eq!(effects, vec![Effect::Reload { failed: true }]);
        // Nothing is sent from memory any more, however long it waits.
        assert!(sent(&machine.wake(NOW + 3_600_000)).is_empty());
    }

    #[test]
    fn an_ordered_head_whose_write_fails_for_good_does_not_loop() {
        let mut machine = ordered(config());
        machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW)], NOW);
        machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
        let effects = machine.attempt_recorded("dlv_001", Err(()), NOW);
        assert_eq!(effects, vec![Effect::Reload { failed: true }]);
        assert!(sent(&machine.wake(NOW + 3_600_000)).is_empty());
    }

    #[test]
    fn a_failed_attempt_write_is_tried_again_with_backoff_and_a_cap() {
        let waits: Vec<Option<Duration>> = (1..=6).map(attempt_write_retry).collect();
        assert_eq!(
            waits,
            vec![
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(4)),
                Some(Duration::from_secs(8)),
                None,
                None,
            ]
        );
    }

    /// Fails `n` attempts in a row, each of a fresh delivery, at `at(i)`.
    fn fail_many(
        machine: &mut EndpointMachine,
        n: u32,
        status: u16,
        at: impl Fn(u32) -> i64,
    ) -> Vec<AttemptDecision> {
        (0..n)
            .map(|i| {
                let id = 100 + i;
                machine.enqueue(vec![delivery(id, at(i))], at(i));
                let (decision, _) =
                    machine.attempt_finished(&format!("dlv_{id:03}"), &failed(status), at(i), 0.0);
                machine.attempt_recorded(&format!("dlv_{id:03}"), Ok(()), at(i));
                decision.expect("attempted")
            })
            .collect()
    }

    #[test]
    fn the_rate_limit_holds_due_deliveries_back_without_spending_attempts() {
        let mut machine = active(MachineConfig {
            max_in_flight: 10,
            rate_limit: Some(2),
            ..config()
        });
        let due: Vec<QueuedDelivery> = (1..=4).map(|n| delivery(n, NOW)).collect();
        let effects = machine.enqueue(due, NOW);
        assert_eq!(sent(&effects), vec!["dlv_001", "dlv_002"]);
        assert!(effects.contains(&Effect::WakeAt(NOW + 500)), "{effects:?}");
        assert_eq!(sent(&machine.wake(NOW + 500)), vec!["dlv_003"]);
        assert_eq!(sent(&machine.wake(NOW + 1000)), vec!["dlv_004"]);
        assert_eq!(machine.snapshot().queued, 0);
    }

    #[test]
    fn the_breaker_opens_then_lets_exactly_one_probe_through_per_cool_down() {
        let mut machine = active(MachineConfig {
            retry_schedule: vec![],
            retry_client_errors: true,
            ..config()
        });
        let limits = test_limits();
        fail_many(&mut machine, limits.breaker_failures, 500, |i| {
            NOW + i64::from(i)
        });
        assert_eq!(machine.snapshot().breaker.state, CircuitState::Open);
        let opened = machine
            .snapshot()
            .breaker
            .next_probe_at
            .expect("probe time");
        let effects = machine.enqueue(
            vec![delivery(1, opened - 1), delivery(2, opened - 1)],
            opened - 1,
        );
        assert!(sent(&effects).is_empty());
        assert!(effects.contains(&Effect::WakeAt(opened)), "{effects:?}");
        let effects = machine.wake(opened);
        assert_eq!(sent(&effects), vec!["dlv_001"], "one probe");
        let (_, effects) = machine.attempt_finished("dlv_001", &failed(500), opened + 1, 0.0);
        assert!(sent(&effects).is_empty());
        let breaker = machine.snapshot().breaker;
        assert_eq!(breaker.state, CircuitState::Open);
        assert_eq!(
            breaker.cooldown_ms,
            2 * i64::try_from(limits.breaker_cooldown.as_millis()).expect("fits")
        );
    }

    /// Every failure raises an alert (threshold 1) and none is retried;
    /// the breaker stays out of the way.
    fn alerting_config() -> MachineConfig {
        MachineConfig {
            retry_schedule: vec![],
            limits: HealthLimits {
                alert_thresholds: vec![1],
                breaker_failures: 1000,
                ..test_limits()
            },
            ..config()
        }
    }

    #[test]
    fn a_flapping_endpoint_is_bounded_and_operational_failures_raise_no_alert() {
        let mut machine = active(alerting_config());
        // Fail, succeed, fail, succeed … within one interval: one failing
        // and one recovered alert in all.
        let mut alerts = Vec::new();
        for i in 0..10u32 {
            let t = NOW + i64::from(i) * 1000;
            let id = 200 + i;
            machine.enqueue(vec![delivery(id, t)], t);
            let outcome = if i % 2 == 0 { failed(500) } else { ok() };
            let (decision, _) = machine.attempt_finished(&format!("dlv_{id:03}"), &outcome, t, 0.0);
            alerts.extend(decision.expect("attempted").alerts);
        }
        let kinds: Vec<AlertKind> = alerts.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, vec![AlertKind::Failing, AlertKind::Recovered]);

        let mut machine = active(MachineConfig {
            retry_schedule: vec![],
            limits: HealthLimits {
                alert_thresholds: vec![1],
                disable_after_failures: 2,
                disable_after: Duration::ZERO,
                ..test_limits()
            },
            ..config()
        });
        let mut operational = delivery(1, NOW);
        operational.event_type = Arc::from("hookrelay.endpoint.failing");
        machine.enqueue(vec![operational], NOW);
        let (decision, _) = machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
        let decision = decision.expect("attempted");
        assert!(decision.alerts.is_empty());
        assert!(decision.health.is_some(), "the failure still counts");
        let mut operational = delivery(2, NOW);
        operational.event_type = Arc::from("hookrelay.endpoint.failing");
        machine.enqueue(vec![operational], NOW);
        let (decision, _) = machine.attempt_finished("dlv_002", &failed(500), NOW, 0.0);
        assert_eq!(
            decision.map(|d| d.disable),
            Some(Some(DisableReason::ConsecutiveFailures)),
            "auto-disable still applies"
        );
    }

    #[test]
    fn alerts_raised_before_a_reload_still_bound_the_next_ones() {
        let first_failure = |machine: &mut EndpointMachine, at: i64| {
            machine.enqueue(vec![delivery(1, at)], at);
            let (decision, _) = machine.attempt_finished("dlv_001", &failed(500), at, 0.0);
            decision.expect("attempted").alerts
        };
        let mut machine = active(alerting_config());
        assert_eq!(machine.alerts_bound_since(NOW), NOW - 300_000);
        machine.recall_failing_alerts(&[(1, NOW - 1_000)]);
        assert!(first_failure(&mut machine, NOW).is_empty());

        let mut machine = active(alerting_config());
        machine.recall_failing_alerts(&[(3, NOW - 1_000)]);
        let alerts = first_failure(&mut machine, NOW);
        assert_eq!(alerts.len(), 1, "another threshold does not bound it");
    }

    /// The default thresholds (3, 5, 10) and interval (5 min), disabling at
    /// the tenth failure whenever it comes; no retries, and the breaker
    /// stays out of the way.
    fn default_alerts_config() -> MachineConfig {
        MachineConfig {
            retry_schedule: vec![],
            limits: HealthLimits {
                breaker_failures: 1000,
                disable_after: Duration::ZERO,
                ..test_limits()
            },
            ..config()
        }
    }

    /// Attempts one new delivery after another (numbered from `first`), the
    /// i-th created and answered `statuses[i]` at `at + i` ms, each write
    /// answered; returns the alerts raised as (kind, threshold, consecutive
    /// failures).
    fn answer_each(
        machine: &mut EndpointMachine,
        first: u32,
        statuses: &[u16],
        at: i64,
    ) -> Vec<(AlertKind, Option<u32>, u32)> {
        let mut alerts = Vec::new();
        for (n, &status) in (first..).zip(statuses) {
            let t = at + i64::from(n - first);
            let id = format!("dlv_{n:03}");
            machine.enqueue(vec![delivery(n, t)], t);
            let outcome = if status < 300 { ok() } else { failed(status) };
            let (decision, _) = machine.attempt_finished(&id, &outcome, t, 0.0);
            let decision = decision.unwrap_or_else(|| panic!("{id} not attempted"));
            machine.attempt_recorded(&id, Ok(()), t);
            alerts.extend(
                decision
                    .alerts
                    .iter()
                    .map(|a| (a.kind, a.threshold, a.consecutive_failures)),
            );
        }
        alerts
    }

    #[test]
    fn each_threshold_of_a_quick_streak_alerts_then_the_disable() {
        let mut machine = active(default_alerts_config());
        let alerts = answer_each(&mut machine, 1, &[500; 10], NOW);
        assert_eq!(
            alerts,
            vec![
                (AlertKind::Failing, Some(3), 3),
                (AlertKind::Failing, Some(5), 5),
                (AlertKind::Failing, Some(10), 10),
                (AlertKind::Disabled, None, 10),
            ],
            "ten failures within 10 ms, well inside the interval"
        );
        assert!(!machine.is_active());
    }

    #[test]
    fn a_flapping_endpoint_repeats_no_threshold_within_the_interval() {
        let flap = [500, 500, 500, 204, 500, 500, 500, 204];
        let mut machine = active(default_alerts_config());
        let alerts = answer_each(&mut machine, 1, &flap, NOW);
        assert_eq!(
            alerts,
            vec![
                (AlertKind::Failing, Some(3), 3),
                (AlertKind::Recovered, None, 3),
            ],
            "the second streak crosses 3 again within the interval"
        );

        // Escalation is not repetition: a higher threshold still alerts,
        // and the streak that raised it ends with a recovery.
        let alerts = answer_each(
            &mut machine,
            20,
            &[500, 500, 500, 500, 500, 204],
            NOW + 1_000,
        );
        assert_eq!(
            alerts,
            vec![
                (AlertKind::Failing, Some(5), 5),
                (AlertKind::Recovered, None, 5),
            ]
        );

        // Once the interval is over, the same pattern alerts again.
        let later = NOW + 300_000;
        let alerts = answer_each(&mut machine, 40, &flap, later);
        assert_eq!(
            alerts,
            vec![
                (AlertKind::Failing, Some(3), 3),
                (AlertKind::Recovered, None, 3),
            ]
        );
    }

    #[test]
    fn a_reloaded_streak_ends_with_a_recovery_only_if_it_raised_an_alert() {
        for (alert_raised, expected) in [
            (true, vec![(AlertKind::Recovered, None, 4)]),
            (false, vec![]),
        ] {
            let mut machine = EndpointMachine::new(default_alerts_config());
            let health = HealthState {
                streak: Streak {
                    consecutive_failures: 4,
                    failing_since: Some(STARTED),
                    alerted: vec![3],
                    alert_raised,
                },
                breaker: Breaker::closed(&test_limits()),
            };
            machine.loaded(true, Some(health), None, 0, STARTED);
            machine.page_loaded(Page::default(), STARTED);
            let alerts = answer_each(&mut machine, 1, &[204], NOW);
            assert_eq!(alerts, expected, "alert raised: {alert_raised}");
        }
    }

    #[test]
    fn each_disable_alerts_even_within_the_interval() {
        let mut machine = active(default_alerts_config());
        answer_each(&mut machine, 1, &[500; 10], NOW);
        machine.status_written(None, NOW);
        machine.batch_moved(BacklogMove::Hold, Ok(false), NOW);
        let enabling = machine.enable(BacklogMove::Replay, NOW).expect("ready");
        assert!(enabling.reset.is_some(), "was disabled");
        let effects = machine.status_written(Some(0), NOW);
        if page_request(&effects).is_some() {
            machine.page_loaded(Page::default(), NOW);
        }
        let alerts = answer_each(&mut machine, 20, &[500; 10], NOW + 1_000);
        assert_eq!(
            alerts,
            vec![(AlertKind::Disabled, None, 10)],
            "the thresholds repeat within the interval, the disable does not"
        );
    }

    #[test]
    fn a_gone_receiver_disables_and_later_arrivals_are_held() {
        let mut machine = active(config());
        let decisions = fail_many(&mut machine, 1, 410, |_| NOW);
        assert_eq!(decisions[0].disable, Some(DisableReason::Gone));
        assert_eq!(decisions[0].state, DeliveryState::Held);
        assert!(!machine.is_active());
        assert!(matches!(
            machine.enqueue(vec![delivery(1, NOW)], NOW).as_slice(),
            [Effect::Hold(_)]
        ));
    }

    #[test]
    fn the_disabled_notice_follows_the_commit() {
        let mut machine = active(config());
        machine.enqueue(vec![delivery(1, NOW)], NOW);
        machine.attempt_finished("dlv_001", &failed(410), NOW, 0.0);
        let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW);
        assert!(effects.contains(&Effect::Disabled), "{effects:?}");
    }

    #[test]
    fn manual_disable_and_enable_reset_health_and_page_the_replay_in() {
        let mut machine = active(config());
        fail_many(&mut machine, 3, 500, |_| NOW);
        let disabled = machine.disable(NOW).expect("ready").expect("was active");
        assert_eq!(disabled.alert.disabled_reason, Some(DisableReason::Manual));
        assert_eq!(machine.disable(NOW), Ok(None));
        machine.status_written(None, NOW);
        machine.batch_moved(BacklogMove::Hold, Ok(false), NOW);
        let enabling = machine.enable(BacklogMove::Replay, NOW).expect("ready");
        let (health, alert) = enabling.reset.expect("was disabled");
        assert_eq!(health.streak, Streak::default());
        assert_eq!(alert.kind, AlertKind::Enabled);
        let effects = machine.status_written(Some(3), NOW);
        assert!(page_request(&effects).is_some(), "{effects:?}");
        assert!(effects.contains(&Effect::MoveBatch(BacklogMove::Replay)));
        machine.batch_moved(BacklogMove::Replay, Ok(false), NOW);
        assert_eq!(
            machine
                .enable(BacklogMove::Replay, NOW)
                .map(|e| e.reset.is_none()),
            Ok(true)
        );
    }

    /// The effects' batches, in order.
    fn batches(effects: &[Effect]) -> Vec<BacklogMove> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::MoveBatch(kind) => Some(*kind),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_disable_holds_the_backlog_one_batch_at_a_time_and_sends_nothing_meanwhile() {
        let mut machine = active(config());
        machine.enqueue(vec![delivery(1, NOW + 10)], NOW);
        machine.disable(NOW).expect("ready").expect("was active");
        let effects = machine.status_written(None, NOW);
        assert_eq!(effects, vec![Effect::MoveBatch(BacklogMove::Hold)]);
        // One batch at a time: nothing more until this one is written.
        assert!(machine.wake(NOW + 20).is_empty());
        let effects = machine.batch_moved(BacklogMove::Hold, Ok(true), NOW + 20);
        assert_eq!(effects, vec![Effect::MoveBatch(BacklogMove::Hold)]);
        assert_eq!(machine.snapshot().moving, Some(BacklogMove::Hold));
        assert!(machine
            .batch_moved(BacklogMove::Hold, Ok(false), NOW + 30)
            .is_empty());
        assert_eq!(machine.snapshot().moving, None);
        let effects = machine.enqueue(vec![delivery(2, NOW)], NOW + 40);
        assert_eq!(effects, vec![Effect::Hold(vec!["dlv_002".to_owned()])]);
    }

    #[test]
    fn replayed_deliveries_are_paged_in_as_each_batch_makes_them_pending() {
        let mut machine = EndpointMachine::new(config());
        machine.loaded(false, None, None, 0, NOW);
        machine.enable(BacklogMove::Replay, NOW).expect("ready");
        let effects = machine.status_written(Some(10), NOW);
        assert_eq!(batches(&effects), vec![BacklogMove::Replay]);
        assert!(page_request(&effects).is_some(), "{effects:?}");
        // The first page is read before the first batch is written.
        let effects = machine.page_loaded(Page::default(), NOW);
        assert!(effects.is_empty(), "{effects:?}");
        let effects = machine.batch_moved(BacklogMove::Replay, Ok(true), NOW);
        assert_eq!(batches(&effects), vec![BacklogMove::Replay]);
        assert!(page_request(&effects).is_some(), "{effects:?}");
        // Another batch is written while that page is read.
        let effects = machine.batch_moved(BacklogMove::Replay, Ok(false), NOW);
        assert!(batches(&effects).is_empty() && page_request(&effects).is_none());
        let page = Page {
            deliveries: vec![delivery(1, NOW), delivery(2, NOW)],
            more_from: None,
        };
        let effects = machine.page_loaded(page, NOW);
        assert_eq!(sent(&effects), ["dlv_001", "dlv_002"]);
        // The page may predate the batch: it is read again.
        assert!(page_request(&effects).is_some(), "{effects:?}");
    }

    #[test]
    fn a_cancel_moves_nothing_when_nothing_is_held() {
        let mut machine = EndpointMachine::new(config());
        machine.loaded(false, None, None, 0, NOW);
        machine.enable(BacklogMove::Cancel, NOW).expect("ready");
        let effects = machine.status_written(Some(0), NOW);
        assert!(batches(&effects).is_empty(), "{effects:?}");
        assert_eq!(machine.snapshot().moving, None);
        assert!(machine.disable(NOW).expect("ready").is_some());
    }

    #[test]
    fn status_changes_wait_for_the_move_under_way() {
        let mut machine = active(config());
        machine.disable(NOW).expect("ready");
        machine.status_written(None, NOW);
        assert_eq!(
            machine.enable(BacklogMove::Cancel, NOW).map(|_| ()),
            Err(NotReady::Later)
        );
        // Disabling a disabled endpoint changes nothing: no need to wait.
        assert_eq!(machine.disable(NOW), Ok(None));
        machine.batch_moved(BacklogMove::Hold, Ok(false), NOW);
        machine.enable(BacklogMove::Replay, NOW).expect("ready");
        machine.status_written(Some(5), NOW);
        assert_eq!(machine.disable(NOW), Err(NotReady::Later));
        machine.batch_moved(BacklogMove::Replay, Ok(false), NOW);
        assert!(machine.disable(NOW).expect("ready").is_some());
    }

    #[test]
    fn a_load_finishes_the_move_a_crash_interrupted() {
        let mut machine = EndpointMachine::new(config());
        let effects = machine.loaded(false, None, Some(BacklogMove::Hold), 0, NOW);
        assert_eq!(effects, vec![Effect::MoveBatch(BacklogMove::Hold)]);
        let mut machine = EndpointMachine::new(config());
        let effects = machine.loaded(true, None, Some(BacklogMove::Cancel), 0, NOW);
        assert_eq!(batches(&effects), vec![BacklogMove::Cancel]);
        assert!(page_request(&effects).is_some(), "{effects:?}");
    }

    #[test]
    fn a_failed_batch_reloads_the_state_which_finishes_the_move() {
        let mut machine = active(config());
        machine.disable(NOW).expect("ready");
        machine.status_written(None, NOW);
        let effects = machine.batch_moved(BacklogMove::Hold, Err(()), NOW);
        assert_eq!(effects, vec![Effect::Reload { failed: true }]);
    }

    #[test]
    fn an_attempt_that_disables_starts_the_hold_once_written_and_enabling_waits_for_it() {
        let mut machine = active(config());
        machine.enqueue(vec![delivery(1, NOW)], NOW);
        machine.attempt_finished("dlv_001", &failed(410), NOW, 0.0);
        assert_eq!(
            machine.enable(BacklogMove::Cancel, NOW).map(|_| ()),
            Err(NotReady::Later)
        );
        let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW);
        assert_eq!(
            effects,
            vec![Effect::Disabled, Effect::MoveBatch(BacklogMove::Hold)]
        );
        machine.batch_moved(BacklogMove::Hold, Ok(false), NOW);
        assert!(machine.enable(BacklogMove::Cancel, NOW).is_ok());
    }

    #[test]
    fn an_endpoint_that_disables_itself_during_a_replay_holds_its_backlog_after_it() {
        let mut machine = EndpointMachine::new(config());
        machine.loaded(false, None, None, 0, NOW);
        machine.enable(BacklogMove::Replay, NOW).expect("ready");
        machine.status_written(Some(10), NOW);
        let page = Page {
            deliveries: vec![delivery(1, NOW)],
            more_from: None,
        };
        machine.page_loaded(page, NOW);
        machine.attempt_finished("dlv_001", &failed(410), NOW, 0.0);
        // The replay's batch is still being written: the hold waits for it.
        let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW);
        assert_eq!(effects, vec![Effect::Disabled]);
        // That batch found its move superseded: the hold goes on.
        let effects = machine.batch_moved(BacklogMove::Replay, Ok(false), NOW);
        assert_eq!(effects, vec![Effect::MoveBatch(BacklogMove::Hold)]);
        assert_eq!(machine.snapshot().moving, Some(BacklogMove::Hold));
    }

    #[test]
    fn operators_wait_while_the_state_loads_and_are_refused_once_it_shuts_down() {
        let mut machine = EndpointMachine::new(config());
        assert_eq!(machine.disable(NOW), Err(NotReady::Later));
        assert_eq!(
            machine.enable(BacklogMove::Replay, NOW).map(|_| ()),
            Err(NotReady::Later)
        );
        let mut machine = active(config());
        machine.drain(NOW);
        assert_eq!(machine.disable(NOW), Err(NotReady::Closed));
    }

    #[test]
    fn a_reconfigured_endpoint_reloads_only_once_its_attempts_are_recorded() {
        let mut machine = active(config());
        machine.enqueue(vec![delivery(1, NOW)], NOW);
        assert!(machine.reconfigure(NOW).is_empty());
        let (_, effects) = machine.attempt_finished("dlv_001", &ok(), NOW, 0.0);
        assert!(effects.is_empty(), "{effects:?}");
        let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW);
        assert_eq!(effects, vec![Effect::Reload { failed: false }]);
    }

    #[test]
    fn a_reconfigure_before_the_asked_reload_has_run_asks_for_no_second_one() {
        let mut machine = active(config());
        assert_eq!(
            machine.reconfigure(NOW),
            vec![Effect::Reload { failed: false }]
        );
        assert!(machine.reconfigure(NOW + 1).is_empty());
        let mut fresh = EndpointMachine::new(config());
        assert!(fresh.reconfigure(NOW).is_empty());
    }

    #[test]
    fn a_failed_status_write_reloads_after_a_backoff() {
        let mut machine = active(config());
        machine.disable(NOW).expect("ready");
        assert_eq!(
            machine.status_write_failed(NOW),
            vec![Effect::Reload { failed: true }]
        );
        let refused = |n| reload_backoff(n, WriteFailure::Refused);
        assert_eq!(refused(1), Duration::from_secs(1));
        assert_eq!(refused(2), Duration::from_secs(2));
        assert_eq!(refused(9), Duration::from_secs(256));
        assert_eq!(refused(10), Duration::from_secs(300));
        assert_eq!(refused(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn while_the_database_is_away_reloads_wait_at_most_five_seconds() {
        let away = |n| reload_backoff(n, WriteFailure::DatabaseAway);
        assert_eq!(away(1), Duration::from_secs(1));
        assert_eq!(away(3), Duration::from_secs(4));
        assert_eq!(away(4), Duration::from_secs(5));
        assert_eq!(away(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn drain_answers_once_nothing_is_in_flight() {
        let mut machine = active(config());
        machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW)], NOW);
        assert!(machine.drain(NOW).is_empty());
        machine.attempt_finished("dlv_001", &ok(), NOW, 0.0);
        machine.attempt_recorded("dlv_001", Ok(()), NOW);
        machine.attempt_finished("dlv_002", &ok(), NOW, 0.0);
        let effects = machine.attempt_recorded("dlv_002", Ok(()), NOW);
        assert_eq!(effects, vec![Effect::Drained]);
    }

    #[test]
    fn recovered_work_on_disk_is_paged_in_even_while_a_page_is_read() {
        let mut machine = active(config());
        let effects = machine.work_on_disk(NOW);
        assert!(page_request(&effects).is_some(), "{effects:?}");
        // Told again while that page is read: the page may predate the
        // new rows, so an empty page still leads to another.
        assert!(page_request(&machine.work_on_disk(NOW)).is_none());
        let effects = machine.page_loaded(Page::default(), NOW);
        assert!(page_request(&effects).is_some(), "{effects:?}");
        let effects = machine.page_loaded(
            Page {
                deliveries: vec![delivery(1, NOW - 10)],
                more_from: None,
            },
            NOW,
        );
        assert_eq!(sent(&effects), vec!["dlv_001".to_owned()]);
        assert!(!machine.snapshot().backlog_on_disk);
    }

    #[test]
    fn a_disabled_endpoint_ignores_work_on_disk() {
        let mut machine = active(config());
        machine.disable(NOW).expect("ready");
        machine.status_written(None, NOW);
        assert!(machine.work_on_disk(NOW).is_empty());
    }

    #[test]
    fn a_delivery_settled_elsewhere_leaves_the_window_unsent() {
        let mut machine = active(config());
        machine.enqueue(
            vec![delivery(1, NOW + 5_000), delivery(2, NOW + 6_000)],
            NOW,
        );
        assert_eq!(machine.snapshot().queued, 2);
        machine.settled_elsewhere("dlv_001", 1, NOW);
        assert_eq!(machine.snapshot().queued, 1);
        let effects = machine.wake(NOW + 6_000);
        assert_eq!(sent(&effects), vec!["dlv_002".to_owned()]);
        // Unknown to the machine: nothing happens.
        assert!(sent(&machine.settled_elsewhere("dlv_009", 9, NOW + 6_000)).is_empty());
    }

    #[test]
    fn a_hand_over_arriving_after_its_delivery_was_settled_elsewhere_sends_nothing() {
        let mut machine = active(config());
        // An operator's retry settles a delivery whose hand-over from the
        // router is still on its way.
        machine.settled_elsewhere("dlv_001", 1, NOW);
        let effects = machine.enqueue(vec![delivery(1, NOW)], NOW + 1);
        assert!(sent(&effects).is_empty(), "{effects:?}");
        assert!(page_request(&effects).is_none(), "{effects:?}");
    }

    // -- a retry across a reload ---------------------------------------------

    const RETRY_DUE: i64 = NOW + 5_000;

    /// What follows [`Effect::Reload`] (the shell dropped its timer): the
    /// saved state (active, nothing to move), then the first page, read
    /// once the retry's write has committed. The retry must be sent at its
    /// due time: a timer is armed for it, and its wake-up sends it.
    fn reload_then_the_retry_goes_out_when_due(machine: &mut EndpointMachine, now: i64) {
        let effects = machine.loaded(true, None, None, 0, now);
        assert!(page_request(&effects).is_some(), "{effects:?}");
        let effects = page_with_the_retry(machine, now);
        assert!(effects.contains(&Effect::WakeAt(RETRY_DUE)), "{effects:?}");
        assert_eq!(sent(&machine.wake(RETRY_DUE)), ["dlv_001"]);
    }

    /// A page from disk holding the retry, due later.
    fn page_with_the_retry(machine: &mut EndpointMachine, now: i64) -> Vec<Effect> {
        let mut on_disk = delivery(1, RETRY_DUE);
        on_disk.attempt_count = 1;
        let page = Page {
            deliveries: vec![on_disk],
            more_from: None,
        };
        machine.page_loaded(page, now)
    }

    #[test]
    fn a_reconfigure_before_the_retry_is_recorded_keeps_its_wake_up() {
        let mut machine = active(config());
        machine.enqueue(vec![delivery(1, NOW)], NOW);
        let (decision, _) = machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
        assert_eq!(decision.and_then(|d| d.next_attempt_at), Some(RETRY_DUE));
        assert!(
            machine.reconfigure(NOW + 1).is_empty(),
            "the write is outstanding"
        );
        let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW + 2);
        assert_eq!(effects, vec![Effect::Reload { failed: false }]);
        reload_then_the_retry_goes_out_when_due(&mut machine, NOW + 3);
    }

    #[test]
    fn a_reconfigure_during_the_attempt_keeps_the_retry_s_wake_up() {
        let mut machine = active(config());
        machine.enqueue(vec![delivery(1, NOW)], NOW);
        assert!(
            machine.reconfigure(NOW).is_empty(),
            "the attempt is in flight"
        );
        machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
        let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW + 2);
        assert_eq!(effects, vec![Effect::Reload { failed: false }]);
        reload_then_the_retry_goes_out_when_due(&mut machine, NOW + 3);
    }

    #[test]
    fn a_reconfigure_after_the_retry_is_recorded_keeps_its_wake_up() {
        let mut machine = active(config());
        machine.enqueue(vec![delivery(1, NOW)], NOW);
        machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
        let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW + 2);
        assert!(effects.contains(&Effect::WakeAt(RETRY_DUE)), "{effects:?}");
        // The shell drops its timer with the reload.
        let effects = machine.reconfigure(NOW + 3);
        assert_eq!(effects, vec![Effect::Reload { failed: false }]);
        reload_then_the_retry_goes_out_when_due(&mut machine, NOW + 4);
    }

    #[test]
    fn a_reconfigure_while_a_page_is_read_keeps_the_retry_s_wake_up() {
        let mut machine = active(config());
        machine.enqueue(vec![delivery(1, NOW)], NOW);
        machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
        // Recovered work makes the machine read a page meanwhile.
        assert!(page_request(&machine.work_on_disk(NOW + 1)).is_some());
        assert!(machine.reconfigure(NOW + 2).is_empty());
        // The write is answered before the page (which skipped the delivery).
        assert!(machine
            .attempt_recorded("dlv_001", Ok(()), NOW + 3)
            .is_empty());
        let effects = machine.page_loaded(Page::default(), NOW + 4);
        assert_eq!(effects, vec![Effect::Reload { failed: false }]);
        reload_then_the_retry_goes_out_when_due(&mut machine, NOW + 5);
    }

    #[test]
    fn an_enable_while_a_page_is_read_keeps_the_retry_it_took_from_memory() {
        let mut machine = active(config());
        machine.enqueue(vec![delivery(1, NOW)], NOW);
        machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
        machine.attempt_recorded("dlv_001", Ok(()), NOW + 1);
        // A page is read that skips the retry (it is in memory) …
        let (_, _, exclude) = page_request(&machine.work_on_disk(NOW + 2)).expect("a page");
        assert_eq!(exclude, ["dlv_001"]);
        // … while an operator enables the active endpoint, which drops the
        // window to read it again from disk.
        machine.enable(BacklogMove::Replay, NOW + 3).expect("ready");
        machine.status_written(Some(0), NOW + 3);
        let effects = machine.page_loaded(Page::default(), NOW + 4);
        assert!(page_request(&effects).is_some(), "{effects:?}");
        // The timer armed for the retry is still set.
        page_with_the_retry(&mut machine, NOW + 5);
        assert_eq!(sent(&machine.wake(RETRY_DUE)), ["dlv_001"]);
    }

    // -- deliveries reaching the machine twice -----------------------------------

    #[test]
    fn a_late_enqueue_of_a_delivery_a_page_already_brought_in_sends_nothing() {
        let mut machine = EndpointMachine::new(config());
        machine.loaded(true, None, None, 0, NOW - 20);
        // The first page is read after the delivery's commit, before the
        // router hands it over.
        let page = Page {
            deliveries: vec![delivery(1, NOW - 10)],
            more_from: None,
        };
        assert_eq!(sent(&machine.page_loaded(page, NOW)), ["dlv_001"]);
        machine.attempt_finished("dlv_001", &ok(), NOW + 1, 0.0);
        machine.attempt_recorded("dlv_001", Ok(()), NOW + 2);
        let effects = machine.enqueue(vec![delivery(1, NOW - 10)], NOW + 3);
        assert!(sent(&effects).is_empty(), "{effects:?}");
        // The page is remembered: no need to ask the disk.
        assert!(page_request(&effects).is_none(), "{effects:?}");
    }

    #[test]
    fn a_late_enqueue_that_no_recent_page_brought_in_is_sent_without_a_page() {
        let mut machine = active(config());
        assert!(page_request(&machine.work_on_disk(NOW)).is_some());
        let page = Page {
            deliveries: vec![delivery(1, NOW - 20)],
            more_from: None,
        };
        assert_eq!(sent(&machine.page_loaded(page, NOW)), ["dlv_001"]);
        // Created before that page was read, committed after it: the page
        // did not bring it, so it goes straight out. (Under steady traffic
        // most hand-overs are like this one; reading the disk for each kept
        // a busy endpoint paging once per commit.)
        let effects = machine.enqueue(vec![delivery(2, NOW - 10)], NOW + 1);
        assert_eq!(sent(&effects), ["dlv_002"]);
        assert!(page_request(&effects).is_none(), "{effects:?}");
    }

    #[test]
    fn a_late_enqueue_a_forgotten_page_may_have_brought_in_is_read_from_disk() {
        let mut machine = EndpointMachine::new(config());
        // Numbered up to 1 when the state was loaded: committed before, so
        // pages of an earlier load may have brought it in.
        machine.loaded(true, None, None, 1, STARTED);
        machine.page_loaded(Page::default(), STARTED);
        let effects = machine.enqueue(vec![delivery(1, STARTED - 10)], NOW);
        assert!(sent(&effects).is_empty(), "{effects:?}");
        assert!(page_request(&effects).is_some(), "{effects:?}");
        let page = Page {
            deliveries: vec![delivery(1, STARTED - 10)],
            more_from: None,
        };
        assert_eq!(sent(&machine.page_loaded(page, NOW + 1)), ["dlv_001"]);
    }

    #[test]
    fn a_machine_waiting_for_a_distant_retry_still_forgets_its_pages() {
        let horizon = RecentPages::HORIZON_MS;
        let mut machine = EndpointMachine::new(MachineConfig {
            retry_schedule: vec![3600],
            ..config()
        });
        machine.loaded(true, None, None, 0, NOW);
        let page = Page {
            deliveries: vec![delivery(1, NOW - 100)],
            more_from: None,
        };
        assert_eq!(sent(&machine.page_loaded(page, NOW)), ["dlv_001"]);
        machine.attempt_finished("dlv_001", &failed(500), NOW + 1, 0.0);
        let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW + 2);
        assert!(
            effects.contains(&Effect::WakeAt(NOW + 1 + 3_600_000)),
            "{effects:?}"
        );
        assert!(
            effects.contains(&Effect::ForgetPagesAt(NOW + horizon)),
            "{effects:?}"
        );
    }

    #[test]
    fn a_quiet_machine_forgets_its_pages_after_the_horizon() {
        let horizon = RecentPages::HORIZON_MS;
        let mut machine = EndpointMachine::new(config());
        machine.loaded(true, None, None, 0, NOW);
        let page = |n| Page {
            deliveries: vec![delivery(n, NOW - 100)],
            more_from: None,
        };
        let effects = machine.page_loaded(page(1), NOW);
        assert_eq!(sent(&effects), ["dlv_001"]);
        machine.attempt_finished("dlv_001", &ok(), NOW + 1, 0.0);
        let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW + 2);
        assert_eq!(effects, [Effect::ForgetPagesAt(NOW + horizon)]);
        assert!(page_request(&machine.work_on_disk(NOW + 10)).is_some());
        machine.page_loaded(page(2), NOW + 10);
        machine.attempt_finished("dlv_002", &ok(), NOW + 11, 0.0);
        assert!(machine
            .attempt_recorded("dlv_002", Ok(()), NOW + 12)
            .is_empty());
        // Each page is forgotten at its time.
        let effects = machine.enqueue(vec![delivery(2, NOW - 100)], NOW + 13);
        assert!(effects.is_empty(), "{effects:?}");
        let effects = machine.forget_pages(NOW + horizon);
        assert_eq!(effects, [Effect::ForgetPagesAt(NOW + 10 + horizon)]);
        assert!(machine.forget_pages(NOW + 10 + horizon).is_empty());
        // What the forgotten pages may have brought is now in doubt, and
        // what is numbered above it is not.
        let effects = machine.enqueue(vec![delivery(2, NOW - 100)], NOW + 11 + horizon);
        assert!(sent(&effects).is_empty(), "{effects:?}");
        assert!(page_request(&effects).is_some(), "{effects:?}");
        machine.page_loaded(Page::default(), NOW + 12 + horizon);
        let effects = machine.enqueue(vec![delivery(3, NOW + 5)], NOW + 13 + horizon);
        assert_eq!(sent(&effects), ["dlv_003"]);
    }

    #[test]
    fn a_delivery_settled_elsewhere_while_a_page_is_read_is_not_taken_from_it() {
        let mut machine = active(config());
        assert!(page_request(&machine.work_on_disk(NOW)).is_some());
        // The page was read before the operator's retry committed.
        machine.settled_elsewhere("dlv_001", 1, NOW + 1);
        let page = Page {
            deliveries: vec![delivery(1, NOW - 10)],
            more_from: None,
        };
        let effects = machine.page_loaded(page, NOW + 2);
        assert!(sent(&effects).is_empty(), "{effects:?}");
    }

    #[test]
    fn a_delivery_settled_elsewhere_during_its_attempt_is_not_retried() {
        let mut machine = active(config());
        machine.enqueue(vec![delivery(1, NOW)], NOW);
        machine.settled_elsewhere("dlv_001", 1, NOW + 1);
        let (decision, _) = machine.attempt_finished("dlv_001", &failed(500), NOW + 2, 0.0);
        assert!(decision.is_some(), "the attempt is still recorded");
        machine.settled_elsewhere("dlv_001", 1, NOW + 3);
        let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW + 4);
        assert!(!effects.contains(&Effect::WakeAt(RETRY_DUE)), "{effects:?}");
        assert!(sent(&machine.wake(RETRY_DUE + 10_000)).is_empty());
        assert_eq!(machine.snapshot().queued, 0);
    }

    // -- ordered endpoints --------------------------------------------------

    /// An active ordered machine whose disk holds nothing; its in-flight
    /// limit would allow many.
    fn ordered(config: MachineConfig) -> EndpointMachine {
        let mut machine = EndpointMachine::new(MachineConfig {
            ordered: true,
            max_in_flight: 16,
            ..config
        });
        let effects = machine.loaded(true, None, None, 0, NOW);
        assert_eq!(page_order(&effects), Some(PageOrder::Line), "{effects:?}");
        machine.page_loaded(Page::default(), NOW);
        machine
    }

    fn page_order(effects: &[Effect]) -> Option<PageOrder> {
        effects.iter().find_map(|e| match e {
            Effect::LoadPage { order, .. } => Some(*order),
            _ => None,
        })
    }

    /// Finishes the attempt of `id` and records it; the effects of both.
    fn settle(
        machine: &mut EndpointMachine,
        id: &str,
        outcome: &AttemptOutcome,
        now: i64,
    ) -> (AttemptDecision, Vec<Effect>) {
        let (decision, mut effects) = machine.attempt_finished(id, outcome, now, 0.0);
        assert!(
            sent(&effects).is_empty(),
            "sent before the write: {effects:?}"
        );
        effects.extend(machine.attempt_recorded(id, Ok(()), now));
        (decision.expect("attempted"), effects)
    }

    #[test]
    fn an_ordered_endpoint_sends_one_at_a_time_in_event_order_not_due_order() {
        let mut machine = ordered(config());
        // Due order is 3, 2, 1; event order 1, 2, 3.
        let effects = machine.enqueue(
            vec![
                delivery(3, NOW - 20),
                delivery(2, NOW - 10),
                delivery(1, NOW),
            ],
            NOW,
        );
        assert_eq!(sent(&effects), ["dlv_001"]);
        let (_, effects) = settle(&mut machine, "dlv_001", &ok(), NOW + 1);
        assert_eq!(sent(&effects), ["dlv_002"]);
        let (_, effects) = settle(&mut machine, "dlv_002", &ok(), NOW + 2);
        assert_eq!(sent(&effects), ["dlv_003"]);
    }

    #[test]
    fn a_failing_head_holds_the_line_until_its_retry_succeeds() {
        let mut machine = ordered(config());
        machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW)], NOW);
        let (decision, effects) = settle(&mut machine, "dlv_001", &failed(500), NOW);
        assert_eq!(decision.state, DeliveryState::Pending);
        assert!(sent(&effects).is_empty(), "{effects:?}");
        assert!(effects.contains(&Effect::WakeAt(NOW + 5000)), "{effects:?}");
        // Later deliveries that are due still wait, however often it wakes.
        assert!(sent(&machine.enqueue(vec![delivery(3, NOW + 10)], NOW + 10)).is_empty());
        assert!(sent(&machine.wake(NOW + 4999)).is_empty());
        assert_eq!(sent(&machine.wake(NOW + 5000)), ["dlv_001"]);
        let (_, effects) = settle(&mut machine, "dlv_001", &ok(), NOW + 5001);
        assert_eq!(sent(&effects), ["dlv_002"]);
    }

    #[test]
    fn a_head_that_fails_for_good_lets_the_next_one_go() {
        let mut machine = ordered(MachineConfig {
            retry_schedule: vec![5],
            ..config()
        });
        machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW)], NOW);
        settle(&mut machine, "dlv_001", &failed(500), NOW);
        assert_eq!(sent(&machine.wake(NOW + 5000)), ["dlv_001"]);
        let (decision, effects) = settle(&mut machine, "dlv_001", &failed(500), NOW + 5000);
        assert_eq!(decision.state, DeliveryState::Failed);
        assert_eq!(sent(&effects), ["dlv_002"]);
    }

    #[test]
    fn the_breaker_holds_the_head_back_and_probes_with_it() {
        let mut machine = ordered(MachineConfig {
            retry_schedule: vec![],
            window: WindowLimits {
                deliveries: 16,
                bytes: 10_000,
            },
            ..config()
        });
        let failures = test_limits().breaker_failures;
        let arrivals = (1..=failures + 2).map(|n| delivery(n, NOW)).collect();
        machine.enqueue(arrivals, NOW);
        let mut effects = Vec::new();
        for n in 1..=failures {
            effects = settle(&mut machine, &format!("dlv_{n:03}"), &failed(500), NOW).1;
        }
        assert_eq!(machine.snapshot().breaker.state, CircuitState::Open);
        assert!(sent(&effects).is_empty(), "{effects:?}");
        let probe_at = machine
            .snapshot()
            .breaker
            .next_probe_at
            .expect("probe time");
        assert!(effects.contains(&Effect::WakeAt(probe_at)), "{effects:?}");
        let head = format!("dlv_{:03}", failures + 1);
        assert_eq!(sent(&machine.wake(probe_at)), [head]);
    }

    #[test]
    fn the_rate_limit_spaces_an_ordered_line() {
        let mut machine = ordered(MachineConfig {
            rate_limit: Some(1),
            ..config()
        });
        machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW)], NOW);
        let (_, effects) = settle(&mut machine, "dlv_001", &ok(), NOW + 10);
        assert!(sent(&effects).is_empty(), "{effects:?}");
        assert!(effects.contains(&Effect::WakeAt(NOW + 1000)), "{effects:?}");
        assert_eq!(sent(&machine.wake(NOW + 1000)), ["dlv_002"]);
    }

    #[test]
    fn a_head_coming_back_keeps_its_place_before_later_events() {
        let mut machine = ordered(MachineConfig {
            window: WindowLimits {
                deliveries: 2,
                bytes: 1000,
            },
            ..config()
        });
        // Four events; with the first in flight the window holds the next
        // two, the fourth waits on disk, so the floor is its number.
        let effects = machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW)], NOW);
        assert_eq!(sent(&effects), ["dlv_001"]);
        let page = Page {
            deliveries: vec![delivery(3, NOW)],
            more_from: Some(4),
        };
        machine.page_loaded(page, NOW);
        assert_eq!(machine.snapshot().queued, 2);
        let (_, effects) = settle(&mut machine, "dlv_001", &failed(500), NOW);
        assert!(
            sent(&effects).is_empty(),
            "dlv_002 passed its head: {effects:?}"
        );
        assert_eq!(sent(&machine.wake(NOW + 5000)), ["dlv_001"]);
    }

    #[test]
    fn a_retry_written_while_a_page_is_read_keeps_the_line_waiting() {
        let mut machine = ordered(config());
        machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW)], NOW);
        machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
        machine.page_in_flight = true;
        let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW);
        assert!(sent(&effects).is_empty(), "{effects:?}");
        let page = Page {
            deliveries: vec![delivery(3, NOW)],
            more_from: None,
        };
        let effects = machine.page_loaded(page, NOW + 1);
        assert!(sent(&effects).is_empty(), "{effects:?}");
        assert_eq!(sent(&machine.wake(NOW + 5000)), ["dlv_001"]);
    }

    /// The line once followed the publishing handler's clock, and a step
    /// back put a new event before a failing head.
    #[test]
    fn a_clock_step_back_never_puts_a_new_event_before_a_failing_head() {
        let mut machine = ordered(config());
        machine.enqueue(vec![delivery(5, NOW)], NOW);
        settle(&mut machine, "dlv_005", &failed(500), NOW);
        let an_hour_back = NOW - 3_600_000;
        let effects = machine.enqueue(vec![delivery(6, an_hour_back)], NOW + 1);
        assert!(sent(&effects).is_empty(), "{effects:?}");
        assert_eq!(sent(&machine.wake(RETRY_DUE)), ["dlv_005"]);
    }

    #[test]
    fn older_work_on_disk_is_paged_in_ahead_of_the_window() {
        let mut machine = ordered(config());
        machine.enqueue(vec![delivery(5, NOW), delivery(6, NOW)], NOW);
        settle(&mut machine, "dlv_005", &failed(500), NOW);
        // A recovery makes an older delivery pending: the window is read
        // again from the front of the line.
        let effects = machine.work_on_disk(NOW + 10);
        let (_, _, exclude) = page_request(&effects).expect("pages");
        assert_eq!(page_order(&effects), Some(PageOrder::Line));
        assert!(exclude.is_empty(), "{exclude:?}");
        assert_eq!(machine.snapshot().queued, 0);
        let mut retried = delivery(5, NOW + 5000);
        retried.attempt_count = 1;
        let page = Page {
            deliveries: vec![delivery(2, NOW + 10), retried, delivery(6, NOW)],
            more_from: None,
        };
        let effects = machine.page_loaded(page, NOW + 10);
        assert_eq!(sent(&effects), ["dlv_002"]);
        let (_, effects) = settle(&mut machine, "dlv_002", &ok(), NOW + 20);
        assert!(sent(&effects).is_empty(), "{effects:?}");
        assert_eq!(sent(&machine.wake(NOW + 5000)), ["dlv_005"]);
    }

    #[test]
    fn a_failed_page_holds_the_line_and_is_read_again_a_second_later() {
        let mut machine = EndpointMachine::new(MachineConfig {
            ordered: true,
            ..config()
        });
        machine.loaded(true, None, None, 0, NOW);
        let effects = machine.page_failed(NOW);
        assert!(page_request(&effects).is_none(), "{effects:?}");
        assert!(effects.contains(&Effect::WakeAt(NOW + 1000)), "{effects:?}");
        // What is on disk may be older than a new arrival.
        assert!(sent(&machine.enqueue(vec![delivery(9, NOW)], NOW)).is_empty());
        let effects = machine.wake(NOW + 1000);
        assert_eq!(page_order(&effects), Some(PageOrder::Line), "{effects:?}");
        let page = Page {
            deliveries: vec![delivery(1, NOW), delivery(9, NOW)],
            more_from: None,
        };
        assert_eq!(sent(&machine.page_loaded(page, NOW + 1000)), ["dlv_001"]);
    }

    #[test]
    fn an_ordered_line_waits_for_the_whole_replay_of_its_held_backlog() {
        let mut machine = EndpointMachine::new(MachineConfig {
            ordered: true,
            ..config()
        });
        machine.loaded(false, None, None, 0, NOW);
        machine.enable(BacklogMove::Replay, NOW).expect("ready");
        machine.status_written(Some(10), NOW);
        // The first batch is pending; older held deliveries may remain.
        let page = Page {
            deliveries: vec![delivery(2, NOW)],
            more_from: None,
        };
        assert!(sent(&machine.page_loaded(page, NOW)).is_empty());
        let effects = machine.batch_moved(BacklogMove::Replay, Ok(true), NOW);
        assert!(sent(&effects).is_empty(), "{effects:?}");
        let page = Page {
            deliveries: vec![delivery(1, NOW), delivery(2, NOW)],
            more_from: None,
        };
        assert!(sent(&machine.page_loaded(page, NOW)).is_empty());
        let effects = machine.batch_moved(BacklogMove::Replay, Ok(false), NOW);
        assert_eq!(page_order(&effects), Some(PageOrder::Line), "{effects:?}");
        let page = Page {
            deliveries: vec![delivery(1, NOW), delivery(2, NOW)],
            more_from: None,
        };
        assert_eq!(sent(&machine.page_loaded(page, NOW)), ["dlv_001"]);
    }

    #[test]
    fn unordered_endpoints_page_by_due_time() {
        let mut machine = EndpointMachine::new(config());
        let effects = machine.loaded(true, None, None, 0, NOW);
        assert_eq!(page_order(&effects), Some(PageOrder::Due));
    }
}
