//! The machine's vocabulary: its configuration, what it is given, and
//! the effects it returns for the actor to carry out.

use crate::core::delivery::envelope::is_operational;
use crate::core::delivery::lifecycle::{BacklogMove, DeliveryState};
use crate::core::health::breaker::Breaker;
use crate::core::health::failure_policy::{AlertKind, DisableReason, Streak};
use crate::core::health::limits::HealthLimits;
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
