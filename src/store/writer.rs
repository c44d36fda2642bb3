//! The dedicated writer: one thread, one connection, group commit.
//!
//! Ingestion and attempt results arrive far faster than a database can
//! commit them one by one. The writer takes whatever work is queued, runs it
//! all in one transaction and answers every caller after the single commit,
//! so callers still learn only about durable results. Background work (a
//! batch of a backlog move) runs alone, after what was queued with it, so
//! a publish waits at most for the batch already under way.
//!
//! When the database goes away the writer answers
//! [`StoreError::Unavailable`] and reports itself unhealthy until a commit
//! goes through again on a replaced connection (see [`super::reconnect`]).

use super::batch::{self, IngestInput};
use super::deliveries::AttemptWrite;
use super::events::Ingested;
use super::models::{DeliveryRow, EventRow};
use super::reconnect::ReconnectingDb;
use super::{Db, Store, StoreError};
use crate::time::now_ms;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// Upper bound of jobs sharing one commit, to keep a commit's latency short.
const MAX_BATCH: usize = 512;

/// Work of any shape, through [`Writer::call`].
trait Call: Send {
    fn run(&mut self, db: &mut Db) -> Result<(), StoreError>;
    fn answer(self: Box<Self>, outcome: Result<(), StoreError>);
}

struct Request<T, F> {
    work: F,
    result: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Call for Request<T, F>
where
    T: Send,
    F: FnMut(&mut Db) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, db: &mut Db) -> Result<(), StoreError> {
        self.result = Some((self.work)(db)?);
        Ok(())
    }

    fn answer(self: Box<Self>, outcome: Result<(), StoreError>) {
        let Request { result, reply, .. } = *self;
        let answer = outcome.and_then(|()| result.ok_or_else(not_run));
        // The caller may have given up waiting; the work is committed anyway.
        let _ = reply.send(answer);
    }
}

struct IngestJob {
    event: EventRow,
    deliveries: Vec<DeliveryRow>,
    result: Option<Ingested>,
    reply: oneshot::Sender<Result<Ingested, StoreError>>,
}

struct AttemptJob {
    write: AttemptWrite,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// One queued job. Ingestions and attempt results have a type of their own
/// so that a batch writes them with set-based statements.
enum Job {
    Call(Box<dyn Call>),
    Ingest(Box<IngestJob>),
    Attempt(Box<AttemptJob>),
    /// Long work that others must not wait for: it runs in a transaction
    /// of its own, after the other jobs queued with it have committed.
    Background(Box<dyn Call>),
}

impl Job {
    fn answer(self, outcome: Result<(), StoreError>) {
        match self {
            Job::Call(call) | Job::Background(call) => call.answer(outcome),
            Job::Ingest(job) => {
                let IngestJob { result, reply, .. } = *job;
                let _ = reply.send(outcome.and_then(|()| result.ok_or_else(not_run)));
            }
            Job::Attempt(job) => {
                let _ = job.reply.send(outcome);
            }
        }
    }
}

/// A job answered as committed without its result: a bug, never expected.
fn not_run() -> StoreError {
    StoreError::Blocking("the writer committed a job it did not run".to_owned())
}

/// Runs `jobs` on `db` (inside the caller's transaction), calls in order.
/// Between two calls, all ingestions are written together, then all attempt
/// results: the two kinds commute, because an attempt is only made on a
/// delivery committed before, and a delivery ingested for an endpoint that
/// an attempt disables ends up held either way (by the hold that the disable
/// records, or by the disabled actor it reaches).
fn run_jobs(db: &mut Db, jobs: &mut [Job]) -> Result<(), StoreError> {
    let now = now_ms();
    let is_call = |job: &Job| matches!(job, Job::Call(_) | Job::Background(_));
    let mut rest = jobs;
    while let Some(first) = rest.first() {
        let calls = is_call(first);
        let len = rest
            .iter()
            .position(|job| is_call(job) != calls)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at_mut(len);
        rest = tail;
        if calls {
            for job in run.iter_mut() {
                if let Job::Call(call) | Job::Background(call) = job {
                    call.run(db)?;
                }
            }
            continue;
        }
        let outcomes = {
            let inputs: Vec<IngestInput<'_>> = run
                .iter()
                .filter_map(|job| match job {
                    Job::Ingest(job) => Some(IngestInput {
                        event: &job.event,
                        deliveries: &job.deliveries,
                    }),
                    _ => None,
                })
                .collect();
            if inputs.is_empty() {
                Vec::new()
            } else {
                batch::ingest(db, &inputs)?
            }
        };
        let jobs = run.iter_mut().filter_map(|job| match job {
            Job::Ingest(job) => Some(job),
            _ => None,
        });
        for (job, outcome) in jobs.zip(outcomes) {
            job.result = Some(outcome);
        }
        let writes: Vec<&AttemptWrite> = run
            .iter()
            .filter_map(|job| match job {
                Job::Attempt(job) => Some(&job.write),
                _ => None,
            })
            .collect();
        if !writes.is_empty() {
            batch::record_attempts(db, &writes, now)?;
        }
    }
    Ok(())
}

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    healthy: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer thread on a connection of its own. The thread ends
    /// when the last handle is dropped.
    pub fn start(store: &Store) -> Result<Writer, StoreError> {
        let db = ReconnectingDb::connect(store.clone())?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let healthy = Arc::new(AtomicBool::new(true));
        let mut write_loop = WriteLoop {
            db,
            health: Health(Arc::clone(&healthy)),
        };
        std::thread::Builder::new()
            .name("hookrelay-writer".to_owned())
            .spawn(move || write_loop.run(&queue))
            .map_err(|e| StoreError::Blocking(e.to_string()))?;
        Ok(Writer { jobs, healthy })
    }

    /// Whether the writer can commit: false from a failure that meant the
    /// database is unavailable until a transaction (a job's, or an empty
    /// check while idle) commits again, and for good once its thread ended.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Queues `work` for the writer's next transaction at once (not when
    /// the returned future is first polled, so the job is on its way even
    /// if the caller stops waiting), and resolves with its result once that
    /// transaction has committed. `work` may run twice if a batch it shared
    /// fails and is replayed job by job, so it must only touch `db`.
    pub fn call<T, F>(&self, work: F) -> impl Future<Output = Result<T, StoreError>> + 'static
    where
        T: Send + 'static,
        F: FnMut(&mut Db) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Request {
            work,
            result: None,
            reply,
        };
        self.queue(Job::Call(Box::new(job)), answer)
    }

    /// Like [`Self::call`], for work long enough that other jobs must not
    /// wait for it (a batch of a backlog move): it runs in a transaction of
    /// its own, after the jobs queued with it have committed.
    pub fn call_in_background<T, F>(
        &self,
        work: F,
    ) -> impl Future<Output = Result<T, StoreError>> + 'static
    where
        T: Send + 'static,
        F: FnMut(&mut Db) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Request {
            work,
            result: None,
            reply,
        };
        self.queue(Job::Background(Box::new(job)), answer)
    }

    /// Writes an event and its deliveries, as [`super::events::ingest`]
    /// does, together with every other ingestion of the same commit. A
    /// delivery whose endpoint no longer exists is skipped and not counted.
    pub fn ingest(
        &self,
        event: EventRow,
        deliveries: Vec<DeliveryRow>,
    ) -> impl Future<Output = Result<Ingested, StoreError>> + 'static {
        let (reply, answer) = oneshot::channel();
        let job = IngestJob {
            event,
            deliveries,
            result: None,
            reply,
        };
        self.queue(Job::Ingest(Box::new(job)), answer)
    }

    /// Writes one finished attempt: its row, its delivery's new state
    /// (unless the delivery was settled meanwhile), and the health,
    /// alerts and disabling it carries.
    pub fn record_attempt(
        &self,
        write: AttemptWrite,
    ) -> impl Future<Output = Result<(), StoreError>> + 'static {
        let (reply, answer) = oneshot::channel();
        self.queue(Job::Attempt(Box::new(AttemptJob { write, reply })), answer)
    }

    fn queue<T: Send + 'static>(
        &self,
        job: Job,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> impl Future<Output = Result<T, StoreError>> + 'static {
        let queued = self.jobs.send(job);
        async move {
            queued.map_err(|_| StoreError::WriterGone)?;
            answer.await.map_err(|_| StoreError::WriterGone)?
        }
    }
}

/// The writer's view of its own health, shared with every [`Writer`].
struct Health(Arc<AtomicBool>);

impl Health {
    fn set(&self, healthy: bool) {
        self.0.store(healthy, Ordering::Relaxed);
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Drop for Health {
    /// The thread ended (or panicked): nothing commits any more.
    fn drop(&mut self) {
        self.set(false);
    }
}

struct WriteLoop {
    db: ReconnectingDb,
    health: Health,
}

impl WriteLoop {
    fn run(&mut self, queue: &mpsc::Receiver<Job>) {
        while let Some(first) = self.next_job(queue) {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let (background, batch): (Vec<Job>, Vec<Job>) = batch
                .into_iter()
                .partition(|job| matches!(job, Job::Background(_)));
            if !batch.is_empty() {
                self.write(batch);
            }
            for job in background {
                self.write(vec![job]);
            }
        }
    }

    /// The next job; `None` once every handle is gone. While unhealthy and
    /// idle, it checks the database each time the backoff has run, so the
    /// health recovers without waiting for work.
    fn next_job(&mut self, queue: &mpsc::Receiver<Job>) -> Option<Job> {
        loop {
            if self.health.get() {
                return queue.recv().ok();
            }
            match queue.recv_timeout(self.db.until_next_try()) {
                Ok(job) => return Some(job),
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => self.check(),
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
            Err(refused) => return Err(Failure::Outage(self.unavailable(&refused))),
        };
        match db.transaction(|db| run_jobs(db, jobs)) {
            Ok(()) => {
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

/// Why a transaction failed.
enum Failure {
    /// The database is unavailable: every job of it hears so.
    Outage(Outage),
    /// The database refused the work itself.
    Refused(StoreError),
}

/// Why the writer could not commit, to answer each waiting job with.
struct Outage(String);

impl Outage {
    fn of(error: &StoreError) -> Outage {
        match error {
            StoreError::Unavailable(reason) => Outage(reason.clone()),
            other => Outage(other.to_string()),
        }
    }

    fn again(&self) -> StoreError {
        StoreError::Unavailable(self.0.clone())
    }
}
