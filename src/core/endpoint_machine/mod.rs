//! The endpoint state machine: everything one endpoint's actor decides.
//!
//! It owns the endpoint's queue window, its circuit breaker, its failure
//! streak, the half-open probe and its lifecycle. Each method takes one
//! event (a delivery arrived, an attempt finished, a write was answered, a
//! timer fired, an operator acted) and `now`, changes the state and returns
//! the [`Effect`]s to carry out. The actor only carries them out, so every
//! rule here is unit-tested with a fake clock.
//!
//! The state lives in [`EndpointMachine`] (here, with its lifecycle); each
//! concept it holds has a module of its own, all of them methods of the
//! one machine:
//! - [`types`]: its configuration, inputs and effects;
//! - [`window`]: the deliveries held in memory, paging from disk, and late
//!   hand-overs;
//! - [`sending`]: starting attempts and taking their outcomes;
//! - [`line`]: ordered endpoints, one delivery at a time in line order;
//! - [`health`]: the breaker, the failure streak, alerts and auto-disable;
//! - [`moves`]: disabling, enabling and the backlog moves they start.

mod health;
mod line;
mod moves;
mod sending;
#[cfg(test)]
mod tests;
mod types;
mod window;

pub use sending::{attempt_write_retry, reload_backoff, WriteFailure};
pub use types::{
    Alert, AttemptDecision, AttemptOutcome, Effect, Enabling, HealthState, MachineConfig,
    MachineSnapshot, ManualDisable, NotReady, Page, PageOrder, QueuedDelivery, WindowLimits,
};
pub use window::select_page;

use crate::core::delivery::lifecycle::BacklogMove;
use crate::core::delivery::rate_limit::RateLimit;
use crate::core::delivery::recent_pages::RecentPages;
use crate::core::health::breaker::Breaker;
use crate::core::health::failure_policy::Streak;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

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

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
}

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

    /// A timer armed by [`Effect::WakeAt`] fired.
    pub fn wake(&mut self, now: i64) -> Vec<Effect> {
        self.wake_at = None;
        self.pump(now)
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
}
