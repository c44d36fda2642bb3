//! Retention: which finished deliveries and which events are old enough to
//! delete, and the pace of the sweep that deletes them.
//!
//! A sweep fixes its cutoffs when it starts and goes through its plan one
//! small batch at a time, pausing between batches so that deleting never
//! holds the writer for long; when the plan is done it sleeps until the next
//! sweep. A failed batch is tried again after a backoff that doubles up to a
//! bound. Pending and held deliveries are in no plan, whatever their age.

use crate::core::delivery::lifecycle::DeliveryState;
use crate::core::delivery::retry::doubling_backoff;
use std::collections::VecDeque;
use std::time::Duration;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How long finished deliveries are kept, in days; 0 keeps them forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    pub succeeded_days: u32,
    /// Failed and cancelled deliveries.
    pub failed_days: u32,
}

/// How fast a sweep goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPace {
    /// From the end of one sweep to the start of the next.
    pub interval: Duration,
    /// Between two batches of a sweep.
    pub pause: Duration,
    /// Rows one batch deletes (deliveries) or looks at (events), at most.
    pub batch: usize,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl SweepPace {
    pub fn every(interval: Duration) -> SweepPace {
        SweepPace {
            interval,
            pause: Duration::from_millis(200),
            batch: 1000,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// Where a scan of the events stopped: the last event it looked at, in the
/// order (created_at, tenant_id, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKey {
    pub created_at: i64,
    pub tenant_id: String,
    pub id: String,
}

/// One unit of deleting, small enough for one writer job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Batch {
    /// Up to `limit` deliveries in one of `states` last changed before
    /// `before` (ms), with their attempts.
    Deliveries {
        states: &'static [DeliveryState],
        before: i64,
        limit: usize,
    },
    /// Of up to `limit` events created before `before` that come after
    /// `after`, those that no delivery refers to any more.
    Events {
        before: i64,
        after: Option<EventKey>,
        limit: usize,
    },
}

/// What a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Rows the batch took on: deliveries it deleted, or events it looked at.
    pub rows: usize,
    /// Rows it deleted (deliveries, or events).
    pub deleted: usize,
    /// For events, the last one looked at.
    pub last_event: Option<EventKey>,
}

/// What the shell does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run `batch` once `after` has passed.
    Run { batch: Batch, after: Duration },
    /// The sweep is over: start the next one once this has passed.
    Sleep(Duration),
}

const SUCCEEDED: &[DeliveryState] = &[DeliveryState::Succeeded];
const FAILED_OR_CANCELLED: &[DeliveryState] = &[DeliveryState::Failed, DeliveryState::Cancelled];

/// The batches of a sweep started at `now` (ms), in order: old succeeded
/// deliveries, old failed and cancelled ones, then events older than the
/// longer of the enabled windows that no delivery refers to.
pub fn plan(settings: RetentionSettings, batch: usize, now: i64) -> Vec<Batch> {
    let cutoff = |days: u32| (days > 0).then(|| now - i64::from(days) * DAY_MS);
    let rules = [
        (SUCCEEDED, cutoff(settings.succeeded_days)),
        (FAILED_OR_CANCELLED, cutoff(settings.failed_days)),
    ];
    let mut plan: Vec<Batch> = rules
        .iter()
        .filter_map(|&(states, before)| {
            before.map(|before| Batch::Deliveries {
                states,
                before,
                limit: batch,
            })
        })
        .collect();
    let longest = settings.succeeded_days.max(settings.failed_days);
    if let Some(before) = cutoff(longest) {
        plan.push(Batch::Events {
            before,
            after: None,
            limit: batch,
        });
    }
    plan
}

/// The retention sweep's state: the batches left in the current sweep and
/// the failures in a row.
#[derive(Debug)]
pub struct Sweeper {
    settings: RetentionSettings,
    pace: SweepPace,
    /// The current batch first; empty between sweeps.
    remaining: VecDeque<Batch>,
    failures: u32,
}

impl Sweeper {
    pub fn new(settings: RetentionSettings, pace: SweepPace) -> Sweeper {
        Sweeper {
            settings,
            pace,
            remaining: VecDeque::new(),
            failures: 0,
        }
    }

    /// A sweep starts at `now` (ms): its cutoffs are fixed now.
    pub fn start(&mut self, now: i64) -> Step {
        self.remaining = plan(self.settings, self.pace.batch, now).into();
        self.failures = 0;
        self.next(Duration::ZERO)
    }

    /// Another instance sharing the database leads the sweeps: this one
    /// sleeps an interval, then asks again.
    pub fn skip(&mut self) -> Step {
        self.remaining.clear();
        Step::Sleep(self.pace.interval)
    }

    /// The current batch is done: the same again (it was full, so more may
    /// be due), or the next one, or sleep when the plan is done.
    pub fn batch_done(&mut self, outcome: BatchOutcome) -> Step {
        self.failures = 0;
        let full = self.remaining.front().is_some_and(|batch| {
            let limit = match batch {
                Batch::Deliveries { limit, .. } | Batch::Events { limit, .. } => *limit,
            };
            outcome.rows >= limit
        });
        if full {
            if let Some(Batch::Events { after, .. }) = self.remaining.front_mut() {
                *after = outcome.last_event;
            }
        } else {
            self.remaining.pop_front();
        }
        self.next(self.pace.pause)
    }

    /// The current batch failed: it is tried again after a backoff that
    /// doubles with each failure in a row, up to the pace's bound.
    pub fn batch_failed(&mut self) -> Step {
        self.failures = self.failures.saturating_add(1);
        let backoff = doubling_backoff(
            self.pace.first_backoff,
            self.failures,
            self.pace.max_backoff,
        );
        self.next(backoff)
    }

    fn next(&self, after: Duration) -> Step {
        match self.remaining.front() {
            Some(batch) => Step::Run {
                batch: batch.clone(),
                after,
            },
            None => Step::Sleep(self.pace.interval),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake clock: 2026-12-01T00:00:00Z.
    const NOW: i64 = 1_796_083_200_000;

    fn pace() -> SweepPace {
        SweepPace {
            interval: Duration::from_secs(300),
            pause: Duration::from_millis(200),
            batch: 2,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
        }
    }

    const DEFAULTS: RetentionSettings = RetentionSettings {
        succeeded_days: 30,
        failed_days: 90,
    };

    fn run(step: Step) -> (Batch, Duration) {
        match step {
            Step::Run { batch, after } => (batch, after),
            Step::Sleep(_) => panic!("expected a batch, got {step:?}"),
        }
    }

    fn done(rows: usize) -> BatchOutcome {
        BatchOutcome {
            rows,
            deleted: rows,
            last_event: None,
        }
    }

    #[test]
    fn cutoffs_are_counted_back_from_the_start_of_the_sweep() {
        assert_eq!(
            plan(DEFAULTS, 1000, NOW),
            vec![
                Batch::Deliveries {
                    states: &[DeliveryState::Succeeded],
                    before: NOW - 30 * DAY_MS,
                    limit: 1000,
                },
                Batch::Deliveries {
                    states: &[DeliveryState::Failed, DeliveryState::Cancelled],
                    before: NOW - 90 * DAY_MS,
                    limit: 1000,
                },
                Batch::Events {
                    before: NOW - 90 * DAY_MS,
                    after: None,
                    limit: 1000,
                },
            ]
        );
    }

    #[test]
    fn pending_and_held_deliveries_are_in_no_plan() {
        for batch in plan(DEFAULTS, 1000, NOW) {
            if let Batch::Deliveries { states, .. } = batch {
                assert!(!states.contains(&DeliveryState::Pending));
                assert!(!states.contains(&DeliveryState::Held));
            }
        }
    }

    #[test]
    fn zero_days_disables_a_rule_and_events_follow_the_longer_enabled_one() {
        let keep_succeeded = RetentionSettings {
            succeeded_days: 0,
            failed_days: 7,
        };
        assert_eq!(
            plan(keep_succeeded, 10, NOW),
            vec![
                Batch::Deliveries {
                    states: &[DeliveryState::Failed, DeliveryState::Cancelled],
                    before: NOW - 7 * DAY_MS,
                    limit: 10,
                },
                Batch::Events {
                    before: NOW - 7 * DAY_MS,
                    after: None,
                    limit: 10,
                },
            ]
        );
        let keep_all = RetentionSettings {
            succeeded_days: 0,
            failed_days: 0,
        };
        assert!(plan(keep_all, 10, NOW).is_empty());
        let mut sweeper = Sweeper::new(keep_all, pace());
        assert_eq!(sweeper.start(NOW), Step::Sleep(Duration::from_secs(300)));
    }

    #[test]
    fn a_full_batch_runs_again_after_a_pause_and_a_short_one_moves_on() {
        let mut sweeper = Sweeper::new(DEFAULTS, pace());
        let (first, after) = run(sweeper.start(NOW));
        assert_eq!(after, Duration::ZERO);
        assert!(matches!(first, Batch::Deliveries { states, .. } if states == SUCCEEDED));
        let (again, pause) = run(sweeper.batch_done(done(2)));
        assert_eq!(again, first);
        assert_eq!(pause, Duration::from_millis(200));
        let (second, _) = run(sweeper.batch_done(done(1)));
        assert!(
            matches!(second, Batch::Deliveries { states, .. } if states == FAILED_OR_CANCELLED)
        );
        let (events, _) = run(sweeper.batch_done(done(0)));
        assert!(matches!(events, Batch::Events { after: None, .. }));
    }

    #[test]
    fn an_event_scan_continues_after_the_last_event_it_looked_at() {
        let mut sweeper = Sweeper::new(DEFAULTS, pace());
        sweeper.start(NOW);
        sweeper.batch_done(done(0));
        sweeper.batch_done(done(0));
        let last = EventKey {
            created_at: 5,
            tenant_id: "acme".to_owned(),
            id: "evt_2".to_owned(),
        };
        let (next, _) = run(sweeper.batch_done(BatchOutcome {
            rows: 2,
            deleted: 1,
            last_event: Some(last.clone()),
        }));
        assert!(matches!(next, Batch::Events { after: Some(key), .. } if key == last));
        assert_eq!(
            sweeper.batch_done(done(1)),
            Step::Sleep(Duration::from_secs(300))
        );
    }

    #[test]
    fn failures_retry_the_same_batch_with_a_bounded_doubling_backoff() {
        let mut sweeper = Sweeper::new(DEFAULTS, pace());
        let (first, _) = run(sweeper.start(NOW));
        let waits: Vec<Duration> = (0..6)
            .map(|_| {
                let (batch, after) = run(sweeper.batch_failed());
                assert_eq!(batch, first);
                after
            })
            .collect();
        let secs = |s| Duration::from_secs(s);
        assert_eq!(
            waits,
            vec![secs(1), secs(2), secs(4), secs(8), secs(10), secs(10)]
        );
        // A success ends the streak.
        sweeper.batch_done(done(2));
        assert_eq!(run(sweeper.batch_failed()).1, secs(1));
        for _ in 0..100 {
            sweeper.batch_failed();
        }
        assert_eq!(run(sweeper.batch_failed()).1, secs(10));
    }

    #[test]
    fn a_new_sweep_recomputes_its_cutoffs() {
        let mut sweeper = Sweeper::new(DEFAULTS, pace());
        let (first, _) = run(sweeper.start(NOW));
        let (later, _) = run(sweeper.start(NOW + DAY_MS));
        assert_ne!(first, later);
        assert!(
            matches!(later, Batch::Deliveries { before, .. } if before == NOW + DAY_MS - 30 * DAY_MS)
        );
    }
}
