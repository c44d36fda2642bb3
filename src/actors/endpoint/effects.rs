//! Carrying out the machine's effects that are not attempts or status
//! changes: timers, pages read from disk, holds and backlog moves.

use super::{fenced, EndpointActor, EndpointNotice};
use crate::core::delivery::lifecycle::BacklogMove;
use crate::core::endpoint_machine::{Effect, EndpointMachine, PageOrder};
use crate::store::deliveries;
use crate::store::endpoint_state;
use crate::time::now_ms;
use actix::prelude::*;
use std::collections::HashSet;
use std::time::{Duration, Instant};

impl EndpointActor {
    pub(super) fn carry_out(&mut self, effects: Vec<Effect>, ctx: &mut Context<Self>) {
        if self.stopped_for_lease(ctx) {
            return;
        }
        for effect in effects {
            match effect {
                Effect::Send(delivery) => self.send(delivery, ctx),
                Effect::LoadPage {
                    deliveries,
                    bytes,
                    exclude,
                    order,
                } => self.load_page(order, deliveries, bytes, exclude, ctx),
                Effect::Hold(ids) => self.hold(ids, ctx),
                Effect::MoveBatch(kind) => self.move_batch(kind, ctx),
                Effect::WakeAt(at) => {
                    self.arm_timer(ctx, at, |act| &mut act.wake, EndpointMachine::wake);
                }
                Effect::ForgetPagesAt(at) => self.arm_timer(
                    ctx,
                    at,
                    |act| &mut act.forget_pages,
                    EndpointMachine::forget_pages,
                ),
                Effect::Disabled => self
                    .deps
                    .notices
                    .do_send(EndpointNotice::Disabled(self.config.id.clone())),
                Effect::Reload { failed } => {
                    for handle in [self.wake.take(), self.forget_pages.take()]
                        .into_iter()
                        .flatten()
                    {
                        ctx.cancel_future(handle);
                    }
                    self.restarts = self.restarts.saturating_add(1);
                    let after = if failed {
                        self.reload_backoff()
                    } else {
                        Duration::ZERO
                    };
                    ctx.run_later(after, |act, ctx| act.load_state(ctx));
                }
                Effect::Drained => self.drained.drain(..).for_each(|done| {
                    let _ = done.send(());
                }),
            }
        }
        self.next_status_change(ctx);
    }

    /// Arms the timer kept in `slot` (replacing the one it held) to call
    /// `fire` on the machine at `at`, a time in milliseconds.
    fn arm_timer(
        &mut self,
        ctx: &mut Context<Self>,
        at: i64,
        slot: fn(&mut Self) -> &mut Option<SpawnHandle>,
        fire: fn(&mut EndpointMachine, i64) -> Vec<Effect>,
    ) {
        if let Some(handle) = slot(self).take() {
            ctx.cancel_future(handle);
        }
        let delay = Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0));
        let handle = ctx.run_later(delay, move |act, ctx| {
            *slot(act) = None;
            let effects = fire(&mut act.machine, now_ms());
            act.carry_out(effects, ctx);
        });
        *slot(self) = Some(handle);
    }

    fn load_page(
        &mut self,
        order: PageOrder,
        limit: usize,
        bytes: usize,
        exclude: Vec<String>,
        ctx: &mut Context<Self>,
    ) {
        let endpoint_id = self.config.id.clone();
        let cache = self.deps.bodies.clone();
        let store = self.deps.store.clone();
        let read = async move {
            store
                .run(move |db| {
                    let exclude: HashSet<String> = exclude.into_iter().collect();
                    endpoint_state::next_page(
                        db,
                        &endpoint_id,
                        order,
                        limit,
                        bytes,
                        &exclude,
                        &cache,
                    )
                })
                .await
        };
        ctx.spawn(read.into_actor(self).map(|page, act, ctx| {
            let effects = match page {
                Ok(page) => act.machine.page_loaded(page, now_ms()),
                Err(error) => {
                    act.failed("reading its queue", &error);
                    act.machine.page_failed(now_ms())
                }
            };
            act.carry_out(effects, ctx);
        }));
    }

    fn hold(&mut self, ids: Vec<String>, ctx: &mut Context<Self>) {
        let hold = self.deps.writer.call(fenced(&self.fence, move |db| {
            deliveries::hold(db, &ids, now_ms())
        }));
        ctx.spawn(hold.into_actor(self).map(|held, act, ctx| {
            let written = held.map_err(|error| act.failed("holding deliveries", &error));
            let effects = act.machine.hold_written(written, now_ms());
            act.carry_out(effects, ctx);
        }));
    }

    fn move_batch(&mut self, kind: BacklogMove, ctx: &mut Context<Self>) {
        let endpoint_id = self.config.id.clone();
        let limit = self.move_pace.size();
        let batch = self
            .deps
            .writer
            .call_in_background(fenced(&self.fence, move |db| {
                let started = Instant::now();
                endpoint_state::move_batch(db, &endpoint_id, kind, limit, now_ms())
                    .map(|more| (more, started.elapsed()))
            }));
        ctx.spawn(batch.into_actor(self).map(move |moved, act, ctx| {
            let written = match moved {
                Ok((more, took)) => {
                    act.move_pace.batch_took(took);
                    act.deps.metrics.backlog_batch_moved(kind.as_str());
                    Ok(more)
                }
                Err(error) => {
                    act.failed(&format!("moving its backlog ({})", kind.as_str()), &error);
                    Err(())
                }
            };
            let effects = act.machine.batch_moved(kind, written, now_ms());
            act.carry_out(effects, ctx);
        }));
    }
}
