//! Which groups of jobs may be in flight on several lanes at once.

use super::jobs::Job;

/// Whether a group may be in flight beside others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
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

pub(super) fn admission(jobs: &[Job]) -> Admission {
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

#[cfg(test)]
mod tests {
    use super::{admission, Admission};
    use crate::core::delivery::lifecycle::DeliveryState;
    use crate::core::health::failure_policy::DisableReason;
    use crate::store::deliveries::{AttemptRecord, AttemptWrite};
    use crate::store::models::{AlertRow, AttemptRow, EndpointHealthRow, EventRow};
    use crate::store::writer::jobs::Job;

    fn ingest() -> Job {
        let event = EventRow {
            tenant_id: "acme".to_owned(),
            id: "evt_1".to_owned(),
            event_type: "order.created".to_owned(),
            body: "{}".to_owned(),
            idempotency_key: None,
            created_at: 0,
        };
        Job::ingest(event, Vec::new()).0
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
                    instance: None,
                },
                state: DeliveryState::Pending,
                next_attempt_at: Some(1_000),
            },
            health: None,
            alerts: Vec::new(),
            disable: None,
            fence: None,
        }
    }

    fn attempt(write: AttemptWrite) -> Job {
        Job::attempt(write).0
    }

    fn call() -> Job {
        Job::call(|_: &mut crate::store::Db| Ok(())).0
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
