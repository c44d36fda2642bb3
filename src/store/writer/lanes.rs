//! The lane threads: each takes the next group from the queue when its
//! turn comes and commits it on a connection of its own.

use super::admission::{admission, Admission};
use super::health::{Failure, Health, Outage, SharedHealth};
use super::jobs::{run_jobs, Job};
use super::MAX_LANES;
use crate::metrics::WriterMetrics;
use crate::store::reconnect::ReconnectingDb;
use crate::store::{Store, StoreError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Upper bound of jobs sharing one commit, to keep a commit's latency short.
const MAX_BATCH: usize = 512;

/// How often an idle lane looks at the writer's health (another lane may
/// have found the database gone, and someone must check for its return
/// while no work comes) and whether it is closing.
const IDLE_HEALTH_POLL: Duration = Duration::from_millis(250);

/// How many lanes a writer gets for `requested`: one on SQLite, which
/// takes one writer at a time; at least one and at most [`MAX_LANES`].
fn lanes_for(store: &Store, requested: usize) -> usize {
    if store.is_postgres() {
        requested.clamp(1, MAX_LANES)
    } else {
        1
    }
}

/// What the lanes share: the queue, taken from by one lane at a time, the
/// lock that keeps a group that runs [alone](Admission::Alone) apart, and
/// whether they are closing. The lock guards no data, so a lane that
/// panicked spoils nothing. The last lane to end drops the queue, so work
/// queued after that is answered [`StoreError::WriterGone`].
struct Lanes {
    queue: Mutex<mpsc::Receiver<Job>>,
    order: RwLock<()>,
    closing: Arc<AtomicBool>,
}

/// Starts the lanes for `requested` (see [`lanes_for`]) on `queue`, each on
/// a connection of its own.
pub(super) fn spawn(
    store: &Store,
    requested: usize,
    queue: mpsc::Receiver<Job>,
    health: &Arc<SharedHealth>,
    closing: &Arc<AtomicBool>,
    metrics: WriterMetrics,
) -> Result<Vec<JoinHandle<()>>, StoreError> {
    let shared = Arc::new(Lanes {
        queue: Mutex::new(queue),
        order: RwLock::new(()),
        closing: Arc::clone(closing),
    });
    let mut threads = Vec::new();
    for lane in 0..lanes_for(store, requested) {
        let mut write_loop = WriteLoop {
            db: ReconnectingDb::connect(store.clone())?,
            health: Health(Arc::clone(health)),
            metrics: metrics.clone(),
        };
        let shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("hookrelay-writer-{lane}"))
            .spawn(move || write_loop.run(&shared))
            .map_err(|e| StoreError::Blocking(e.to_string()))?;
        threads.push(thread);
    }
    Ok(threads)
}

struct WriteLoop {
    db: ReconnectingDb,
    health: Health,
    metrics: WriterMetrics,
}

impl WriteLoop {
    /// Takes a group, waits for its turn and writes it, until every handle
    /// is gone or the lanes close. The queue stays locked until the group
    /// has its turn, so groups get their turns in queue order.
    fn run(&mut self, lanes: &Lanes) {
        loop {
            let queue = lanes.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(first) = self.next_job(&queue, &lanes.closing) else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.metrics.queue_depth.sub(batch.len() as i64);
            // Background work (a backlog move's batch) commits on its own,
            // after the group queued with it, and like every call alone.
            let (background, batch): (Vec<Job>, Vec<Job>) = batch
                .into_iter()
                .partition(|job| matches!(job, Job::Background(_)));
            let overlapping = background.is_empty() && admission(&batch) == Admission::Overlapping;
            let (_shared_turn, _sole_turn) = if overlapping {
                let turn = lanes.order.read().unwrap_or_else(PoisonError::into_inner);
                (Some(turn), None)
            } else {
                let turn = lanes.order.write().unwrap_or_else(PoisonError::into_inner);
                (None, Some(turn))
            };
            drop(queue);
            if !batch.is_empty() {
                self.write(batch);
            }
            for job in background {
                self.write(vec![job]);
            }
        }
    }

    /// The next job; `None` once every handle is gone, or once the lanes
    /// close and nothing queued is left. While unhealthy and idle, it
    /// checks the database each time the backoff has run, so the health
    /// recovers without waiting for work.
    fn next_job(&mut self, queue: &mpsc::Receiver<Job>, closing: &AtomicBool) -> Option<Job> {
        loop {
            if closing.load(Ordering::Acquire) {
                return queue.try_recv().ok();
            }
            let wait = if self.health.get() {
                IDLE_HEALTH_POLL
            } else {
                self.db.until_next_try().min(IDLE_HEALTH_POLL)
            };
            match queue.recv_timeout(wait) {
                Ok(job) => return Some(job),
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) if !self.health.get() => self.check(),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// An empty transaction: whether the writer could commit again.
    fn check(&mut self) {
        let checked = match self.db.get() {
            Ok(db) => db.transaction(|db| db.ping()),
            // Refused while backing off, or a failed reconnection, which
            // has set the next wait itself.
            Err(_) => return,
        };
        match checked {
            // The backoff stays: only work that commits proves the database
            // takes writes again (a full disk still commits an empty check).
            Ok(()) => {
                log::info!("the writer reaches the database again");
                self.health.set(true);
            }
            Err(error) => {
                // Whatever failed, the next check waits for the backoff.
                self.db.outage_behind(&error);
                self.db.back_off();
            }
        }
    }

    fn write(&mut self, mut batch: Vec<Job>) {
        match self.transact(&mut batch) {
            Ok(()) => batch.into_iter().for_each(|job| job.answer(Ok(()))),
            // Replaying would only fail again: every job hears at once.
            Err(Failure::Outage(outage)) => batch
                .into_iter()
                .for_each(|job| job.answer(Err(outage.again()))),
            Err(Failure::Refused(error)) if batch.len() == 1 => {
                if let Some(job) = batch.pop() {
                    job.answer(Err(error));
                }
            }
            Err(Failure::Refused(error)) => {
                // One job spoiled the shared transaction: replay each alone
                // so only the guilty one fails.
                log::warn!(
                    "batched write failed ({error}); replaying {} jobs one by one",
                    batch.len()
                );
                self.replay(batch);
            }
        }
    }

    fn replay(&mut self, batch: Vec<Job>) {
        let mut outage: Option<Outage> = None;
        for mut job in batch {
            let outcome = match &outage {
                Some(outage) => Err(outage.again()),
                None => match self.transact(std::slice::from_mut(&mut job)) {
                    Ok(()) => Ok(()),
                    Err(Failure::Outage(cause)) => Err(outage.insert(cause).again()),
                    Err(Failure::Refused(error)) => Err(error),
                },
            };
            job.answer(outcome);
        }
    }

    /// Runs `jobs` in one transaction. A failure that means the database is
    /// unavailable makes the writer unhealthy, and back off when it came
    /// from the transaction (refusals of [`ReconnectingDb::get`] come after
    /// their own backoff).
    fn transact(&mut self, jobs: &mut [Job]) -> Result<(), Failure> {
        let db = match self.db.get() {
            Ok(db) => db,
            Err(refused) => {
                self.metrics.failed_commits.inc();
                return Err(Failure::Outage(self.unavailable(&refused)));
            }
        };
        let started = Instant::now();
        let written = db.transaction(|db| run_jobs(db, jobs));
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        if written.is_err() {
            self.metrics.failed_commits.inc();
        }
        match written {
            Ok(()) => {
                self.metrics.commits.inc();
                self.metrics.group_size.observe(jobs.len() as f64);
                self.committed();
                Ok(())
            }
            Err(error) if self.db.outage_behind(&error) => {
                self.db.back_off();
                Err(Failure::Outage(self.unavailable(&error)))
            }
            Err(error) => Err(Failure::Refused(error)),
        }
    }

    fn unavailable(&mut self, error: &StoreError) -> Outage {
        if self.health.get() {
            log::error!("the database is unavailable to the writer: {error}");
            self.health.set(false);
        }
        Outage::of(error)
    }

    fn committed(&mut self) {
        if !self.health.get() {
            log::info!("the writer commits again");
            self.health.set(true);
        }
        self.db.succeeded();
    }
}
