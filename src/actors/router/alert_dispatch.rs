//! Alerts raised by endpoints become operational events, fanned out like
//! any other: to the tenant's subscribed endpoints and to the operator's
//! alert URL. A sweep dispatches those a crash or a failed write left.

use super::fan_out::{hand_over, Committed};
use super::Router;
use crate::actors::alerts;
use crate::store;
use crate::store::endpoints::OPERATOR_ENDPOINT;
use crate::store::events;
use crate::store::models::{AlertRow, DeliveryRow, EventRow};
use crate::store::tenants::SYSTEM_TENANT;
use crate::time::now_ms;
use actix::prelude::*;
use std::time::Duration;

/// How often alerts that missed their dispatch are looked for.
const ALERT_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

impl Router {
    /// Dispatches now every alert left undispatched, then, every
    /// [`ALERT_SWEEP_INTERVAL`], those raised more than one interval ago.
    pub(super) fn start_alert_sweeps(&self, ctx: &mut Context<Self>) {
        self.sweep_alerts(i64::MAX, ctx);
        ctx.run_interval(ALERT_SWEEP_INTERVAL, |act, ctx| {
            // One instance sweeps; the others' alerts reach it on disk.
            if !act
                .ownership
                .leading
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                return;
            }
            // Younger alerts are most likely still on their way here.
            let grace = i64::try_from(ALERT_SWEEP_INTERVAL.as_millis()).unwrap_or(i64::MAX);
            act.sweep_alerts(now_ms() - grace, ctx);
        });
    }

    /// Queues each alert's operational events (to the tenant's subscribed
    /// endpoints and to the operator's alert URL) and marks it dispatched,
    /// one transaction per alert so one alert's failure holds back no other.
    pub(super) fn dispatch_alerts(&mut self, raised: Vec<AlertRow>, ctx: &mut Context<Self>) {
        for alert in raised {
            alerts::log(&alert);
            let mut notices = Vec::new();
            let event = alerts::event(&alert, &alert.tenant_id);
            let targets = self.fan_out(&alert.tenant_id, &event, Some(&alert.endpoint_id));
            notices.push((event, targets));
            if alert.tenant_id != SYSTEM_TENANT && self.routes.contains_key(OPERATOR_ENDPOINT) {
                let event = alerts::event(&alert, SYSTEM_TENANT);
                let targets = self.fan_out(SYSTEM_TENANT, &event, None);
                notices.push((event, targets));
            }
            let stored: Vec<(EventRow, Vec<DeliveryRow>)> = notices
                .iter()
                .map(|(event, targets)| {
                    let rows = targets.iter().map(|t| t.row.clone()).collect();
                    (event.clone(), rows)
                })
                .collect();
            let write = self.writer.call(move |db| {
                let ingested = stored
                    .iter()
                    .map(|(event, rows)| events::ingest(db, event, rows))
                    .collect::<Result<Vec<_>, _>>()?;
                store::alerts::mark_dispatched(db, std::slice::from_ref(&alert.id), now_ms())?;
                Ok(ingested)
            });
            ctx.spawn(write.into_actor(self).map(move |written, act, _ctx| {
                match written {
                    Ok(ingested) => {
                        for ((event, targets), outcome) in notices.into_iter().zip(ingested) {
                            let unannounced = hand_over(&Committed::of(&event), targets, &outcome);
                            act.hand_over_elsewhere(unannounced);
                        }
                    }
                    // It stays undispatched; the next sweep tries again.
                    Err(error) => log::error!("dispatching an alert failed: {error}"),
                }
            }));
        }
    }

    /// Dispatches alerts left undispatched (a crash, a failed write) that
    /// were raised before `raised_before`. Dispatching twice is harmless:
    /// an alert's events carry its id, so the second is a duplicate.
    fn sweep_alerts(&self, raised_before: i64, ctx: &mut Context<Self>) {
        let found = self
            .writer
            .call(move |db| store::alerts::undispatched(db, raised_before));
        ctx.spawn(found.into_actor(self).map(|found, act, ctx| match found {
            Ok(alerts) => act.dispatch_alerts(alerts, ctx),
            Err(error) => log::error!("loading undispatched alerts failed: {error}"),
        }));
    }
}
