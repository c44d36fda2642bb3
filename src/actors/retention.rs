//! The retention sweep's shell: it asks `core::delivery::retention::Sweeper` what is
//! due, runs each batch as one writer job (in order with ingestion and
//! attempt results, so a batch never holds the database for long) and
//! waits as told. Failures are logged and retried after a bounded backoff;
//! they never stop the service.

use crate::core::delivery::retention::{Batch, RetentionSettings, Step, SweepPace, Sweeper};
use crate::store::retention;
use crate::store::writer::Writer;
use crate::time::now_ms;
use actix::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct RetentionSweep {
    sweeper: Sweeper,
    /// Whether this instance leads the work that runs once among the
    /// instances sharing the database (see [`crate::actors::router::Ownership`]).
    leading: Arc<AtomicBool>,
    writer: Writer,
    /// What the current sweep deleted so far, for its log line.
    deliveries_deleted: usize,
    events_deleted: usize,
}

impl RetentionSweep {
    pub fn new(
        settings: RetentionSettings,
        pace: SweepPace,
        writer: Writer,
        leading: Arc<AtomicBool>,
    ) -> RetentionSweep {
        RetentionSweep {
            sweeper: Sweeper::new(settings, pace),
            leading,
            writer,
            deliveries_deleted: 0,
            events_deleted: 0,
        }
    }

    fn start_sweep(&mut self, ctx: &mut Context<Self>) {
        self.deliveries_deleted = 0;
        self.events_deleted = 0;
        let step = if self.leading.load(Ordering::Relaxed) {
            self.sweeper.start(now_ms())
        } else {
            self.sweeper.skip()
        };
        self.carry_out(step, ctx);
    }

    fn carry_out(&mut self, step: Step, ctx: &mut Context<Self>) {
        match step {
            Step::Run { batch, after } => {
                ctx.run_later(after, move |act, ctx| act.run(batch, ctx));
            }
            Step::Sleep(interval) => {
                if self.deliveries_deleted + self.events_deleted > 0 {
                    log::info!(
                        "retention: deleted {} finished deliveries (with their attempts) and {} events",
                        self.deliveries_deleted,
                        self.events_deleted
                    );
                }
                ctx.run_later(interval, |act, ctx| act.start_sweep(ctx));
            }
        }
    }

    fn run(&mut self, batch: Batch, ctx: &mut Context<Self>) {
        let job = batch.clone();
        let deleted = self
            .writer
            .call(move |db| retention::delete_batch(db, &job));
        ctx.spawn(deleted.into_actor(self).map(move |outcome, act, ctx| {
            let step = match outcome {
                Ok(outcome) => {
                    match batch {
                        Batch::Deliveries { .. } => act.deliveries_deleted += outcome.deleted,
                        Batch::Events { .. } => act.events_deleted += outcome.deleted,
                    }
                    act.sweeper.batch_done(outcome)
                }
                Err(error) => {
                    log::warn!("retention: a batch failed ({error}); trying it again later");
                    act.sweeper.batch_failed()
                }
            };
            act.carry_out(step, ctx);
        }));
    }
}

impl Actor for RetentionSweep {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.start_sweep(ctx);
    }
}
