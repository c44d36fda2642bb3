//! The dedicated writer: one thread, one connection, group commit.
//!
//! Ingestion and attempt results arrive far faster than a database can
//! commit them one by one. The writer takes whatever work is queued, runs it
//! all in one transaction and answers every caller after the single commit,
//! so callers still learn only about durable results.

use super::{Db, Store, StoreError};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Upper bound of jobs sharing one commit, to keep a commit's latency short.
const MAX_BATCH: usize = 512;

trait Job: Send {
    fn run(&mut self, db: &mut Db) -> Result<(), StoreError>;
    fn answer(self: Box<Self>, outcome: Result<(), StoreError>);
}

struct Request<T, F> {
    work: F,
    result: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Request<T, F>
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
        let answer = outcome.map(|()| result.expect("run succeeded, so it stored a result"));
        // The caller may have given up waiting; the work is committed anyway.
        let _ = reply.send(answer);
    }
}

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on a connection of its own. The thread ends
    /// when the last handle is dropped.
    pub fn start(store: &Store) -> Result<Writer, StoreError> {
        let mut db = store.get()?;
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
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
    pub fn call<T, F>(
        &self,
        work: F,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + 'static
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
        let queued = self.jobs.send(Box::new(job));
        async move {
            queued.map_err(|_| StoreError::WriterGone)?;
            answer.await.map_err(|_| StoreError::WriterGone)?
        }
    }
}

fn write_loop(db: &mut Db, queue: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let together = db.transaction(|db| batch.iter_mut().try_for_each(|job| job.run(db)));
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
                    let outcome = db.transaction(|db| job.run(db));
                    job.answer(outcome);
                }
            }
        }
    }
}
