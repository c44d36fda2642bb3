//! Whether the writer can commit, as its lanes find out, and what a job
//! hears when it cannot.

use crate::store::StoreError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The writer's view of its own health, shared by its lanes and every
/// [`super::Writer`].
pub(super) struct SharedHealth {
    healthy: AtomicBool,
    /// A lane ended (every handle is gone, or it panicked).
    stopped: AtomicBool,
}

impl SharedHealth {
    pub(super) fn new() -> SharedHealth {
        SharedHealth {
            healthy: AtomicBool::new(true),
            stopped: AtomicBool::new(false),
        }
    }

    pub(super) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.stopped.load(Ordering::Relaxed)
    }
}

/// A lane's hold on the writer's health.
pub(super) struct Health(pub(super) Arc<SharedHealth>);

impl Health {
    pub(super) fn set(&self, healthy: bool) {
        self.0.healthy.store(healthy, Ordering::Relaxed);
    }

    pub(super) fn get(&self) -> bool {
        self.0.healthy.load(Ordering::Relaxed)
    }
}

impl Drop for Health {
    /// The lane ended (or panicked): the writer is unhealthy for good.
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::Relaxed);
    }
}

/// Why a transaction failed.
pub(super) enum Failure {
    /// The database is unavailable: every job of it hears so.
    Outage(Outage),
    /// The database refused the work itself.
    Refused(StoreError),
}

/// Why the writer could not commit, to answer each waiting job with.
pub(super) struct Outage(String);

impl Outage {
    pub(super) fn of(error: &StoreError) -> Outage {
        match error {
            StoreError::Unavailable(reason) => Outage(reason.clone()),
            other => Outage(other.to_string()),
        }
    }

    pub(super) fn again(&self) -> StoreError {
        StoreError::Unavailable(self.0.clone())
    }
}
