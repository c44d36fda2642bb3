//! The dedicated writer: group commit on one connection, or on a few.
//!
//! Ingestion and attempt results arrive far faster than a database can
//! commit them one by one. The writer takes whatever work is queued, runs it
//! all in one transaction and answers every caller after the single commit,
//! so callers still learn only about durable results. Background work (a
//! batch of a backlog move) runs alone, after what was queued with it, so
//! a publish waits at most for the batch already under way.
//!
//! On PostgreSQL a commit is mostly waiting: for the network round trip of
//! each statement and for the server to flush its log. So the writer there
//! has several **lanes**, each a thread with a connection of its own that
//! takes the next group as soon as it is free: one group's statements run
//! while another's commit is being flushed (and the server merges flushes
//! that come together). Groups are taken from the queue one lane at a time,
//! in queue order, and [`admission`] decides whether a group may overlap
//! others: plain ingestions and attempt results touch rows no other group
//! in flight touches, so they may; a group with any other work runs alone,
//! after every group taken before it has committed and before any group
//! taken after it starts. SQLite takes one writer at a time: it has one lane.
//!
//! When the database goes away the writer answers
//! [`StoreError::Unavailable`] and reports itself unhealthy until a commit
//! goes through again on a replaced connection (see [`super::reconnect`]).
//!
//! The lanes end when every [`Writer`] handle is gone, or when their
//! [`WriterLanes`] closes them (or is dropped) with the application:
//! handles may outlive it (the HTTP server's worker threads keep theirs),
//! and lanes left running would poll a database that is gone for good.

use super::batch::{self, IngestInput};
use super::deliveries::AttemptWrite;
use super::events::Ingested;
use super::models::{DeliveryRow, EventRow};
use super::reconnect::ReconnectingDb;
use super::{Db, Store, StoreError};
use crate::time::now_ms;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::oneshot;

/// Upper bound of jobs sharing one commit, to keep a commit's latency short.
const MAX_BATCH: usize = 512;

/// The most lanes a writer may have: each holds a connection of the pool
/// for good, and the API's reads need the rest.
pub const MAX_LANES: usize = 8;

/// How often an idle lane looks at the writer's health (another lane may
/// have found the database gone, and someone must check for its return
/// while no work comes) and whether it is closing.
const IDLE_HEALTH_POLL: Duration = Duration::from_millis(250);

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

impl<T, F> Request<T, F> {
    /// The job, and where its answer comes.
    fn new(work: F) -> (Box<Self>, oneshot::Receiver<Result<T, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let job = Request {
            work,
            result: None,
            reply,
        };
        (Box::new(job), answer)
    }
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

/// Whether a group may be in flight beside others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Only ingestions, and attempt results that write nothing but their
    /// own attempt row and delivery state. Ingestions of different groups
    /// meet only on an event id or idempotency key they share, where
    /// PostgreSQL makes the later insert wait for the earlier commit; an
    /// attempt's delivery has one attempt at a time, whose result is
    /// committed before the next is made.
    Overlapping,
    /// Anything else: calls (state changes that must follow everything
    /// queued before them and precede everything after), and attempt
    /// results carrying an endpoint's health, alerts or disabling, which
    /// must land in the order the endpoint decided them.
    Alone,
}

fn admission(jobs: &[Job]) -> Admission {
    let overlaps = |job: &Job| match job {
        Job::Ingest(_) => true,
        Job::Attempt(job) => {
            let write = &job.write;
            write.health.is_none() && write.alerts.is_empty() && write.disable.is_none()
        }
        Job::Call(_) | Job::Background(_) => false,
    };
    if jobs.iter().all(overlaps) {
        Admission::Overlapping
    } else {
        Admission::Alone
    }
}

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

/// The writer's lanes themselves, owned by the application: closing them
/// (or dropping this) lets them write what is queued and end, whatever
/// [`Writer`] handles remain.
pub struct WriterLanes {
    closing: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl WriterLanes {
    /// Closes the lanes; resolves once they have written what was queued
    /// before and ended.
    pub async fn close(mut self) {
        self.closing.store(true, Ordering::Release);
        let threads = std::mem::take(&mut self.threads);
        let joined = wait_off_loop(move || {
            threads
                .into_iter()
                .filter_map(|thread| thread.join().err())
                .count()
        })
        .await;
        match joined {
            Ok(0) => {}
            Ok(panicked) => log::error!("{panicked} writer lanes had panicked"),
            Err(error) => log::error!("waiting for the writer lanes failed: {error}"),
        }
    }
}

/// Runs `wait` (a blocking wait for threads to end) on a thread of its own,
/// not on the caller's event loop, nor on the runtime's blocking pool: a
/// caller that stops waiting at its deadline leaves it behind, where the
/// runtime's drop, and so the process's exit, would wait for a blocking
/// task to end.
pub(crate) async fn wait_off_loop<T: Send + 'static>(
    wait: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (done, outcome) = oneshot::channel();
    std::thread::Builder::new()
        .name("hookrelay-shutdown".to_owned())
        .spawn(move || {
            let _ = done.send(wait());
        })
        .map_err(|e| e.to_string())?;
    outcome.await.map_err(|e| e.to_string())
}

impl Drop for WriterLanes {
    /// Dropped with an application that was not shut down (a test's, or
    /// one whose start failed): the lanes end without anyone waiting.
    fn drop(&mut self) {
        self.closing.store(true, Ordering::Release);
    }
}

/// A handle to the writer's lanes; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    health: Arc<SharedHealth>,
}

impl Writer {
    /// Starts the writer with `lanes` threads (see [`lanes_for`]), each on a
    /// connection of its own. The threads end when the last handle is
    /// dropped, or when the returned [`WriterLanes`] closes them.
    pub fn start(store: &Store, lanes: usize) -> Result<(Writer, WriterLanes), StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let health = Arc::new(SharedHealth {
            healthy: AtomicBool::new(true),
            stopped: AtomicBool::new(false),
        });
        let closing = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Lanes {
            queue: Mutex::new(queue),
            order: RwLock::new(()),
            closing: Arc::clone(&closing),
        });
        let mut threads = Vec::new();
        for lane in 0..lanes_for(store, lanes) {
            let mut write_loop = WriteLoop {
                db: ReconnectingDb::connect(store.clone())?,
                health: Health(Arc::clone(&health)),
            };
            let shared = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name(format!("hookrelay-writer-{lane}"))
                .spawn(move || write_loop.run(&shared))
                .map_err(|e| StoreError::Blocking(e.to_string()))?;
            threads.push(thread);
        }
        Ok((Writer { jobs, health }, WriterLanes { closing, threads }))
    }

    /// Whether the writer can commit: false from a failure that meant the
    /// database is unavailable until a transaction (a job's, or an empty
    /// check while idle) commits again, and for good once a lane ended.
    pub fn is_healthy(&self) -> bool {
        self.health.healthy.load(Ordering::Relaxed) && !self.health.stopped.load(Ordering::Relaxed)
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
        let (job, answer) = Request::new(work);
        self.queue(Job::Call(job), answer)
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
        let (job, answer) = Request::new(work);
        self.queue(Job::Background(job), answer)
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

/// The writer's view of its own health, shared by its lanes and every
/// [`Writer`].
struct SharedHealth {
    healthy: AtomicBool,
    /// A lane ended (every handle is gone, or it panicked).
    stopped: AtomicBool,
}

/// A lane's hold on the writer's health.
struct Health(Arc<SharedHealth>);

impl Health {
    fn set(&self, healthy: bool) {
        self.0.healthy.store(healthy, Ordering::Relaxed);
    }

    fn get(&self) -> bool {
        self.0.healthy.load(Ordering::Relaxed)
    }
}

impl Drop for Health {
    /// The lane ended (or panicked): the writer is unhealthy for good.
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::Relaxed);
    }
}

struct WriteLoop {
    db: ReconnectingDb,
    health: Health,
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

#[cfg(test)]
mod tests {
    use super::{admission, Admission, AttemptJob, IngestJob, Job, Request};
    use crate::core::delivery::DeliveryState;
    use crate::core::failure_policy::DisableReason;
    use crate::store::deliveries::{AttemptRecord, AttemptWrite};
    use crate::store::models::{AlertRow, AttemptRow, EndpointHealthRow, EventRow};
    use tokio::sync::oneshot;

    fn ingest() -> Job {
        let event = EventRow {
            tenant_id: "acme".to_owned(),
            id: "evt_1".to_owned(),
            event_type: "order.created".to_owned(),
            body: "{}".to_owned(),
            idempotency_key: None,
            created_at: 0,
        };
        Job::Ingest(Box::new(IngestJob {
            event,
            deliveries: Vec::new(),
            result: None,
            reply: oneshot::channel().0,
        }))
    }

    fn plain_attempt() -> AttemptWrite {
        AttemptWrite {
            record: AttemptRecord {
                attempt: AttemptRow {
                    id: "atm_1".to_owned(),
                    delivery_id: "dlv_1".to_owned(),
                    attempt: 1,
                    started_at: 0,
                    duration_ms: 1,
                    status_code: Some(500),
                    response_headers: None,
                    response_body: None,
                    error_kind: None,
                    error_message: None,
                    endpoint_id: Some("ep_1".to_owned()),
                },
                state: DeliveryState::Pending,
                next_attempt_at: Some(1_000),
            },
            health: None,
            alerts: Vec::new(),
            disable: None,
        }
    }

    fn attempt(write: AttemptWrite) -> Job {
        Job::Attempt(Box::new(AttemptJob {
            write,
            reply: oneshot::channel().0,
        }))
    }

    fn call() -> Job {
        Job::Call(Request::new(|_: &mut crate::store::Db| Ok(())).0)
    }

    fn health() -> EndpointHealthRow {
        EndpointHealthRow {
            endpoint_id: "ep_1".to_owned(),
            consecutive_failures: 1,
            failing_since: Some(0),
            alerted_thresholds: "[]".to_owned(),
            circuit_state: "closed".to_owned(),
            circuit_opened_at: None,
            circuit_next_probe_at: None,
            circuit_cooldown_ms: 0,
            updated_at: 0,
            alert_raised: false,
        }
    }

    fn alert() -> AlertRow {
        AlertRow {
            id: "alr_1".to_owned(),
            tenant_id: "acme".to_owned(),
            endpoint_id: "ep_1".to_owned(),
            endpoint_url: "https://example.com/hook".to_owned(),
            kind: "failing".to_owned(),
            consecutive_failures: 3,
            failing_since: Some(0),
            status_code: Some(500),
            error: None,
            disabled_reason: None,
            created_at: 0,
            dispatched_at: None,
            threshold: Some(3),
        }
    }

    #[test]
    fn ingestions_and_plain_attempt_results_overlap() {
        let jobs = [ingest(), attempt(plain_attempt()), ingest()];
        assert_eq!(admission(&jobs), Admission::Overlapping);
    }

    #[test]
    fn a_call_runs_alone() {
        assert_eq!(admission(&[call()]), Admission::Alone);
        let jobs = [ingest(), call(), attempt(plain_attempt())];
        assert_eq!(admission(&jobs), Admission::Alone);
    }

    #[test]
    fn an_attempt_result_that_writes_endpoint_state_runs_alone() {
        let with_health = AttemptWrite {
            health: Some(health()),
            ..plain_attempt()
        };
        let with_alert = AttemptWrite {
            alerts: vec![alert()],
            ..plain_attempt()
        };
        let disabling = AttemptWrite {
            disable: Some(DisableReason::Gone),
            ..plain_attempt()
        };
        for write in [with_health, with_alert, disabling] {
            let jobs = [ingest(), attempt(write)];
            assert_eq!(admission(&jobs), Admission::Alone);
        }
    }
}
