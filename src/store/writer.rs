//! The dedicated writer: one thread, one connection, group commit.
//!
//! Ingestion and attempt results arrive far faster than a database can
//! commit them one by one. The writer takes whatever work is queued, runs it
//! all in one transaction and answers every caller after the single commit,
//! so callers still learn only about durable results.

use super::batch::{self, IngestInput};
use super::deliveries::AttemptWrite;
use super::events::Ingested;
use super::models::{DeliveryRow, EventRow};
use super::{Db, Store, StoreError};
use crate::time::now_ms;
use std::future::Future;
use std::sync::mpsc;
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
}

impl Job {
    fn answer(self, outcome: Result<(), StoreError>) {
        match self {
            Job::Call(call) => call.answer(outcome),
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
/// an attempt disables ends up held either way (by `hold_pending`, or by the
/// disabled actor it reaches).
fn run_jobs(db: &mut Db, jobs: &mut [Job]) -> Result<(), StoreError> {
    let now = now_ms();
    let is_call = |job: &Job| matches!(job, Job::Call(_));
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
                if let Job::Call(call) = job {
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
}

impl Writer {
    /// Starts the writer thread on a connection of its own. The thread ends
    /// when the last handle is dropped.
    pub fn start(store: &Store) -> Result<Writer, StoreError> {
        let mut db = store.get()?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("hookrelay-writer".to_owned())
            .spawn(move || write_loop(&mut db, &queue))
            .map_err(|e| StoreError::Blocking(e.to_string()))?;
        Ok(Writer { jobs })
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
    /// (unless the delivery was cancelled meanwhile), and the health,
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

fn write_loop(db: &mut Db, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let together = db.transaction(|db| run_jobs(db, &mut batch));
        match together {
            Ok(()) => batch.into_iter().for_each(|job| job.answer(Ok(()))),
            Err(error) if batch.len() == 1 => {
                if let Some(job) = batch.pop() {
                    job.answer(Err(error));
                }
            }
            Err(error) => {
                // One job spoiled the shared transaction: replay each alone so
                // only the guilty one fails.
                log::warn!(
                    "batched write failed ({error}); replaying {} jobs one by one",
                    batch.len()
                );
                for mut job in batch {
                    let outcome = db.transaction(|db| run_jobs(db, std::slice::from_mut(&mut job)));
                    job.answer(outcome);
                }
            }
        }
    }
}
