//! Work on disk that no actor knows of: deliveries made pending behind the
//! actors' backs (a recovery), and what the rescue sweep finds (see
//! [`crate::core::delivery::rescue`]).

use super::messages::PendingOnDisk;
use super::{Route, Router};
use crate::actors::endpoint::Reconfigure;
use crate::core::delivery::rescue::{self, OnDisk, Rescue};
use crate::store::endpoint_state;
use crate::time::now_ms;
use actix::prelude::*;
use std::sync::Arc;

/// Endpoints read a batch at a time by the rescue sweep.
const RESCUE_BATCH: i64 = 500;

impl Router {
    /// Starts a round of the rescue sweep one interval from now.
    pub(super) fn schedule_rescue_sweep(&self, ctx: &mut Context<Self>) {
        ctx.run_later(self.rescue_interval, |act, ctx| {
            act.rescue_sweep(String::new(), RescueCount::default(), ctx);
        });
    }

    /// One batch of the rescue sweep (see [`crate::core::delivery::rescue`]): the
    /// endpoints after `after`, each probed for due pending deliveries and
    /// held ones. A full batch goes on with the next at once; the last one
    /// schedules the next round after the interval, so rounds never overlap
    /// and a failed read waits as long before it is tried again.
    fn rescue_sweep(&self, after: String, rescued: RescueCount, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let grace = i64::try_from(self.rescue_interval.as_millis()).unwrap_or(i64::MAX);
        let due_before = now_ms().saturating_sub(grace);
        let batch = async move {
            store
                .run(move |db| endpoint_state::rescue_batch(db, &after, RESCUE_BATCH, due_before))
                .await
        };
        ctx.spawn(batch.into_actor(self).map(move |batch, act, ctx| {
            let mut rescued = rescued;
            match batch {
                Ok(batch) => {
                    let full = i64::try_from(batch.len()).is_ok_and(|n| n == RESCUE_BATCH);
                    let last = batch.last().map(|(id, _)| id.clone());
                    for (id, on_disk) in batch {
                        act.rescue(&id, on_disk, &mut rescued);
                    }
                    if let (true, Some(last)) = (full, last) {
                        return act.rescue_sweep(last, rescued, ctx);
                    }
                    rescued.log();
                }
                Err(error) => log::error!("rescue sweep: reading endpoints failed: {error}"),
            }
            act.schedule_rescue_sweep(ctx);
        }));
    }

    fn rescue(&mut self, id: &str, on_disk: OnDisk, rescued: &mut RescueCount) {
        // Another instance's endpoints are its own sweep's to rescue.
        if !self.leases.contains_key(id) {
            return;
        }
        let Some(route) = self.routes.get(id) else {
            return;
        };
        for rescue in rescue::rescues(on_disk, route.config.active) {
            match rescue {
                Rescue::SetActive(active) => {
                    self.set_active(id, active);
                    rescued.flags += 1;
                }
                Rescue::ReadDisk => {
                    self.work_on_disk(id);
                    rescued.read_disk += 1;
                }
                Rescue::Reload => {
                    // The route is read again: a `SetActive` before this
                    // changed its configuration.
                    if let Some(Route {
                        config,
                        actor: Some(actor),
                        ..
                    }) = self.started_route(id)
                    {
                        actor.do_send(Reconfigure(Arc::clone(config)));
                        rescued.reloaded += 1;
                    }
                }
            }
        }
    }
}

/// What one round of the rescue sweep did, for its log line.
#[derive(Debug, Default, Clone, Copy)]
struct RescueCount {
    read_disk: usize,
    reloaded: usize,
    flags: usize,
}

impl RescueCount {
    fn log(self) {
        if self.reloaded + self.flags > 0 {
            log::warn!(
                "rescue sweep: {} endpoints reloaded for deliveries in the wrong state, {} status flags corrected, {} asked to read due deliveries from disk",
                self.reloaded, self.flags, self.read_disk
            );
        } else if self.read_disk > 0 {
            log::info!(
                "rescue sweep: {} endpoints asked to read due deliveries from disk",
                self.read_disk
            );
        }
    }
}

impl Handler<PendingOnDisk> for Router {
    type Result = ();

    fn handle(&mut self, PendingOnDisk(id): PendingOnDisk, _ctx: &mut Context<Self>) {
        self.work_on_disk(&id);
    }
}
