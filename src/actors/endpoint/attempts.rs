//! Attempts: waiting for a slot of the attempt budget, sending, and
//! recording the machine's decision about the outcome (retried while the
//! write fails, within a bound).

use super::{EndpointActor, EndpointNotice};
use crate::core::delivery::lifecycle::DeliveryState;
use crate::core::endpoint_machine::{
    attempt_write_retry, AttemptDecision, AttemptOutcome, QueuedDelivery,
};
use crate::core::secrets::redact;
use crate::ids;
use crate::metrics::RecordedAttempt;
use crate::sender::{self, AttemptReport, Slot};
use crate::store::deliveries::{AttemptRecord, AttemptWrite};
use crate::store::models::{AlertRow, EndpointHealthRow};
use crate::store::StoreError;
use crate::time::now_ms;
use actix::prelude::*;
use rand::Rng;
use std::sync::Arc;

impl EndpointActor {
    pub(super) fn send(&mut self, delivery: QueuedDelivery, ctx: &mut Context<Self>) {
        if let Err(reason) = &self.config.signing {
            // The attempt fails without sending anything (it is recorded
            // with error kind `signing`); the endpoint's view says why.
            self.last_error = Some(format!("cannot sign deliveries: {reason}"));
        }
        // An attempt waits for a slot of the attempt budget before it is
        // sent, and its timeout runs only from then: a saturated budget
        // delays attempts, it never fails them.
        let transport = self.deps.transport.clone();
        let tenant = self.config.tenant_id.clone();
        self.waiting_for_slot += 1;
        let slot = async move { transport.slot(&tenant).await };
        ctx.spawn(slot.into_actor(self).map(move |slot, act, ctx| {
            act.waiting_for_slot -= 1;
            act.attempt(delivery, slot, ctx);
        }));
    }

    /// Sends `delivery` holding `slot`, which is given back when it ends.
    fn attempt(&mut self, delivery: QueuedDelivery, slot: Slot, ctx: &mut Context<Self>) {
        if !self.deps.lease_clock.may_send() {
            // The lease may be taken over before this attempt ends: the
            // delivery stays pending on disk for whoever owns it next.
            log::warn!(
                "endpoint {}: leases not renewed for {:?}; stopping before another attempt",
                self.config.id,
                self.deps.lease_clock.since_renewal()
            );
            drop(slot);
            self.fenced = true;
            self.stopped_for_lease(ctx);
            return;
        }
        let transport = self.deps.transport.clone();
        let config = Arc::clone(&self.config);
        let delivery_id = delivery.id.clone();
        let in_flight = self.deps.metrics.attempt_started();
        let attempt = async move {
            let report = sender::attempt(
                &transport,
                &config,
                &delivery.event_id,
                &delivery.event_type,
                &delivery.body,
            )
            .await;
            drop(slot);
            drop(in_flight);
            report
        };
        ctx.spawn(attempt.into_actor(self).map(move |report, act, ctx| {
            act.finish_attempt(&delivery_id, report, ctx);
        }));
    }

    fn finish_attempt(
        &mut self,
        delivery_id: &str,
        report: AttemptReport,
        ctx: &mut Context<Self>,
    ) {
        let outcome = AttemptOutcome {
            status: report.status,
            retry_after: report.retry_after,
            failure: describe_failure(&report),
        };
        if let Some((kind, message)) = &report.error {
            log::debug!(
                "endpoint {}: delivery {delivery_id} attempt failed ({}): {}",
                self.config.id,
                kind.as_str(),
                redact::endpoint_url_in(message, &self.config.url)
            );
        }
        let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
        let (decision, effects) =
            self.machine
                .attempt_finished(delivery_id, &outcome, now_ms(), jitter);
        if let Some(decision) = decision {
            self.record(decision, &report, ctx);
        }
        self.carry_out(effects, ctx);
    }

    fn record(
        &mut self,
        decision: AttemptDecision,
        report: &AttemptReport,
        ctx: &mut Context<Self>,
    ) {
        let write = self.attempt_write(&decision, report);
        let alerts = write.alerts.clone();
        let disabled = write.disable.is_some();
        let counted = CountedAttempt {
            status: report.status,
            error_kind: report.error.as_ref().map(|(kind, _)| kind.as_str()),
            duration_ms: report.duration_ms,
            finished: match decision.state {
                DeliveryState::Succeeded => Some("succeeded"),
                DeliveryState::Failed => Some("failed"),
                _ => None,
            },
            published_at_ms: ids::created_at_ms(&decision.delivery_id),
            ended_at_ms: report.started_at_ms + report.duration_ms,
        };
        let writer = self.deps.writer.clone();
        let endpoint = self.config.id.clone();
        let stored = async move {
            let mut failures = 0;
            loop {
                let error = match writer.record_attempt(write.clone()).await {
                    Ok(()) => return Ok(()),
                    Err(error) => error,
                };
                failures += 1;
                // A fenced write would be fenced again: another instance owns the endpoint.
                let retry = attempt_write_retry(failures)
                    .filter(|_| !matches!(error, StoreError::Fenced(_)));
                let Some(wait) = retry else {
                    return Err(error);
                };
                log::warn!("endpoint {endpoint}: recording an attempt failed ({error}); trying again in {wait:?}");
                actix_rt::time::sleep(wait).await;
            }
        };
        let delivery_id = decision.delivery_id;
        ctx.spawn(stored.into_actor(self).map(move |written, act, ctx| {
            let written = match written {
                Ok(()) => {
                    act.failures_in_a_row = 0;
                    act.count(&counted, &alerts, disabled);
                    if !alerts.is_empty() {
                        act.deps
                            .notices
                            .do_send(EndpointNotice::AlertsRaised(alerts));
                    }
                    Ok(())
                }
                Err(error) => {
                    act.failed("recording an attempt", &error);
                    Err(())
                }
            };
            let effects = act
                .machine
                .attempt_recorded(&delivery_id, written, now_ms());
            act.carry_out(effects, ctx);
        }));
    }

    fn count(&self, attempt: &CountedAttempt, alerts: &[AlertRow], disabled: bool) {
        let metrics = &self.deps.metrics;
        metrics.attempt_recorded(&RecordedAttempt {
            tenant: &self.config.tenant_id,
            endpoint: &self.config.id,
            status: attempt.status,
            error_kind: attempt.error_kind,
            duration_ms: attempt.duration_ms,
            finished: attempt.finished,
            published_at_ms: attempt.published_at_ms,
            ended_at_ms: attempt.ended_at_ms,
        });
        for alert in alerts {
            metrics.alert_raised(&alert.kind);
        }
        if disabled {
            metrics.status_changed("disabled", "failures");
        }
    }

    fn attempt_write(&self, decision: &AttemptDecision, report: &AttemptReport) -> AttemptWrite {
        let now = now_ms();
        AttemptWrite {
            record: AttemptRecord {
                attempt: report.to_row(&decision.delivery_id, decision.attempt, &self.config.id),
                state: decision.state,
                next_attempt_at: decision.next_attempt_at,
            },
            health: decision
                .health
                .as_ref()
                .map(|h| EndpointHealthRow::new(&self.config.id, &h.streak, &h.breaker, now)),
            alerts: decision
                .alerts
                .iter()
                .map(|alert| self.alert_row(alert))
                .collect(),
            disable: decision.disable,
            fence: Some(self.fence.clone()),
        }
    }
}

/// What the metrics count of an attempt, kept until its write commits.
struct CountedAttempt {
    status: Option<u16>,
    error_kind: Option<&'static str>,
    duration_ms: i64,
    finished: Option<&'static str>,
    published_at_ms: Option<i64>,
    ended_at_ms: i64,
}

/// The failure as one line for an alert: the transport error, or the status.
fn describe_failure(report: &AttemptReport) -> Option<String> {
    match (&report.error, report.status) {
        (Some((kind, message)), _) => Some(format!("{}: {message}", kind.as_str())),
        (None, Some(status)) if !(200..300).contains(&status) => Some(format!("HTTP {status}")),
        _ => None,
    }
}
