//! When this instance last renewed its leases, shared by the router (which
//! renews them) and every endpoint actor (which must not start an attempt
//! once too little of the lease may be left: an HTTP request cannot be
//! taken back if another instance takes the endpoint over meanwhile).

use crate::core::ownership::may_keep_sending;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct LeaseClock {
    base: Instant,
    ttl: Duration,
    /// Milliseconds from `base` to the start of the last round that renewed.
    renewed: AtomicU64,
}

impl LeaseClock {
    pub fn new(ttl: Duration) -> LeaseClock {
        LeaseClock {
            base: Instant::now(),
            ttl,
            renewed: AtomicU64::new(0),
        }
    }

    /// A round that began at `began` renewed every lease held.
    pub fn renewed(&self, began: Instant) {
        let at = began.saturating_duration_since(self.base).as_millis();
        self.renewed
            .fetch_max(u64::try_from(at).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// How long ago the last renewal began.
    pub fn since_renewal(&self) -> Duration {
        let renewed = Duration::from_millis(self.renewed.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(renewed)
    }

    /// Whether an attempt may start now (see [`may_keep_sending`]).
    pub fn may_send(&self) -> bool {
        may_keep_sending(self.since_renewal(), self.ttl)
    }
}
