//! The work queued for the writer, and how a group of it runs in one
//! transaction.

use crate::store::batch::{self, IngestInput};
use crate::store::deliveries::AttemptWrite;
use crate::store::events::Ingested;
use crate::store::models::{DeliveryRow, EventRow};
use crate::store::{Db, StoreError};
use crate::time::now_ms;
use tokio::sync::oneshot;

/// Where a job's answer comes, once its transaction has committed (or not).
pub(super) type Answer<T> = oneshot::Receiver<Result<T, StoreError>>;

/// Work of any shape, through [`super::Writer::call`].
pub(super) trait Call: Send {
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
    fn new(work: F) -> (Box<Self>, Answer<T>) {
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

pub(super) struct IngestJob {
    event: EventRow,
    deliveries: Vec<DeliveryRow>,
    result: Option<Ingested>,
    reply: oneshot::Sender<Result<Ingested, StoreError>>,
}

pub(super) struct AttemptJob {
    pub(super) write: AttemptWrite,
    /// Another instance owns the endpoint now: the write changed nothing.
    fenced: bool,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// One queued job. Ingestions and attempt results have a type of their own
/// so that a batch writes them with set-based statements.
pub(super) enum Job {
    Call(Box<dyn Call>),
    Ingest(Box<IngestJob>),
    Attempt(Box<AttemptJob>),
    /// Long work that others must not wait for: it runs in a transaction
    /// of its own, after the other jobs queued with it have committed.
    Background(Box<dyn Call>),
}

impl Job {
    pub(super) fn call<T, F>(work: F) -> (Job, Answer<T>)
    where
        T: Send + 'static,
        F: FnMut(&mut Db) -> Result<T, StoreError> + Send + 'static,
    {
        let (call, answer) = Request::new(work);
        (Job::Call(call), answer)
    }

    pub(super) fn background<T, F>(work: F) -> (Job, Answer<T>)
    where
        T: Send + 'static,
        F: FnMut(&mut Db) -> Result<T, StoreError> + Send + 'static,
    {
        let (call, answer) = Request::new(work);
        (Job::Background(call), answer)
    }

    pub(super) fn ingest(event: EventRow, deliveries: Vec<DeliveryRow>) -> (Job, Answer<Ingested>) {
        let (reply, answer) = oneshot::channel();
        let job = IngestJob {
            event,
            deliveries,
            result: None,
            reply,
        };
        (Job::Ingest(Box::new(job)), answer)
    }

    pub(super) fn attempt(write: AttemptWrite) -> (Job, Answer<()>) {
        let (reply, answer) = oneshot::channel();
        let job = AttemptJob {
            write,
            fenced: false,
            reply,
        };
        (Job::Attempt(Box::new(job)), answer)
    }

    pub(super) fn answer(self, outcome: Result<(), StoreError>) {
        match self {
            Job::Call(call) | Job::Background(call) => call.answer(outcome),
            Job::Ingest(job) => {
                let IngestJob { result, reply, .. } = *job;
                let _ = reply.send(outcome.and_then(|()| result.ok_or_else(not_run)));
            }
            Job::Attempt(job) => {
                let fenced = job.fenced;
                let endpoint = job.write.fence.map(|fence| fence.endpoint_id);
                let outcome = match (outcome, endpoint) {
                    (Ok(()), Some(endpoint)) if fenced => Err(StoreError::Fenced(endpoint)),
                    (outcome, _) => outcome,
                };
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
pub(super) fn run_jobs(db: &mut Db, jobs: &mut [Job]) -> Result<(), StoreError> {
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
        if writes.is_empty() {
            continue;
        }
        let fenced = batch::record_attempts(db, &writes, now)?;
        let jobs = run.iter_mut().filter_map(|job| match job {
            Job::Attempt(job) => Some(job),
            _ => None,
        });
        for (job, fenced) in jobs.zip(fenced) {
            job.fenced = fenced;
        }
    }
    Ok(())
}
