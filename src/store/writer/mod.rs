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

mod admission;
mod health;
mod jobs;
mod lanes;

use super::deliveries::AttemptWrite;
use super::events::Ingested;
use super::models::{DeliveryRow, EventRow};
use super::{Db, Store, StoreError};
use crate::metrics::WriterMetrics;
use health::SharedHealth;
use jobs::{Answer, Job};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// The most lanes a writer may have: each holds a connection of the pool
/// for good, and the API's reads need the rest.
pub const MAX_LANES: usize = 8;

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
        join_threads("writer lanes", threads, std::thread::JoinHandle::join).await;
    }
}

/// Waits for `threads` to end (through `join`, off the event loop) and logs
/// how many had panicked.
pub(crate) async fn join_threads<T: Send + 'static>(
    what: &'static str,
    threads: Vec<T>,
    join: fn(T) -> std::thread::Result<()>,
) {
    let joined = wait_off_loop(move || {
        threads
            .into_iter()
            .filter_map(|thread| join(thread).err())
            .count()
    })
    .await;
    match joined {
        Ok(0) => {}
        Ok(panicked) => log::error!("{panicked} {what} had panicked"),
        Err(error) => log::error!("waiting for the {what} failed: {error}"),
    }
}

/// Runs `wait` (a blocking wait for threads to end) on a thread of its own,
/// not on the caller's event loop, nor on the runtime's blocking pool: a
/// caller that stops waiting at its deadline leaves it behind, where the
/// runtime's drop, and so the process's exit, would wait for a blocking
/// task to end.
async fn wait_off_loop<T: Send + 'static>(
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
    queue_depth: prometheus::IntGauge,
}

impl Writer {
    /// Starts the writer with `lanes` threads (see [`lanes::spawn`]), each
    /// on a connection of its own. The threads end when the last handle is
    /// dropped, or when the returned [`WriterLanes`] closes them.
    pub fn start(
        store: &Store,
        lanes: usize,
        metrics: WriterMetrics,
    ) -> Result<(Writer, WriterLanes), StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let health = Arc::new(SharedHealth::new());
        let closing = Arc::new(AtomicBool::new(false));
        let queue_depth = metrics.queue_depth.clone();
        let threads = lanes::spawn(store, lanes, queue, &health, &closing, metrics)?;
        let writer = Writer {
            jobs,
            health,
            queue_depth,
        };
        Ok((writer, WriterLanes { closing, threads }))
    }

    /// Whether the writer can commit: false from a failure that meant the
    /// database is unavailable until a transaction (a job's, or an empty
    /// check while idle) commits again, and for good once a lane ended.
    pub fn is_healthy(&self) -> bool {
        self.health.is_healthy()
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
        let (job, answer) = Job::call(work);
        self.queue(job, answer)
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
        let (job, answer) = Job::background(work);
        self.queue(job, answer)
    }

    /// Writes an event and its deliveries, as [`super::events::ingest`]
    /// does, together with every other ingestion of the same commit. A
    /// delivery whose endpoint no longer exists is skipped and not counted.
    pub fn ingest(
        &self,
        event: EventRow,
        deliveries: Vec<DeliveryRow>,
    ) -> impl Future<Output = Result<Ingested, StoreError>> + 'static {
        let (job, answer) = Job::ingest(event, deliveries);
        self.queue(job, answer)
    }

    /// Writes one finished attempt: its row, its delivery's new state
    /// (unless the delivery was settled meanwhile), and the health,
    /// alerts and disabling it carries.
    pub fn record_attempt(
        &self,
        write: AttemptWrite,
    ) -> impl Future<Output = Result<(), StoreError>> + 'static {
        let (job, answer) = Job::attempt(write);
        self.queue(job, answer)
    }

    fn queue<T: Send + 'static>(
        &self,
        job: Job,
        answer: Answer<T>,
    ) -> impl Future<Output = Result<T, StoreError>> + 'static {
        // Counted before it is sent, so a lane that takes it at once never
        // makes the depth negative.
        self.queue_depth.inc();
        let queued = self.jobs.send(job);
        if queued.is_err() {
            self.queue_depth.dec();
        }
        async move {
            queued.map_err(|_| StoreError::WriterGone)?;
            answer.await.map_err(|_| StoreError::WriterGone)?
        }
    }
}
