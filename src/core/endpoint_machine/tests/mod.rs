//! The machine's unit tests, by concept, with a fake clock (`NOW`).

mod health;
mod line;
mod moves;
mod sending;
mod window;

pub(super) use super::*;
pub(super) use crate::core::delivery::lifecycle::{BacklogMove, DeliveryState};
pub(super) use crate::core::delivery::recent_pages::RecentPages;
pub(super) use crate::core::health::breaker::{Breaker, CircuitState};
pub(super) use crate::core::health::failure_policy::{AlertKind, DisableReason, Streak};
pub(super) use crate::core::health::limits::test_limits;
pub(super) use crate::core::health::limits::HealthLimits;
pub(super) use std::collections::HashSet;
pub(super) use std::sync::Arc;
pub(super) use std::time::Duration;

const NOW: i64 = 1_000_000;

fn config() -> MachineConfig {
    MachineConfig {
        limits: test_limits(),
        retry_schedule: vec![5, 60],
        retry_client_errors: true,
        max_in_flight: 2,
        rate_limit: None,
        raises_alerts: true,
        ordered: false,
        window: WindowLimits {
            deliveries: 4,
            bytes: 1000,
        },
        alert_min_interval_ms: 300_000,
    }
}

fn delivery(n: u32, due_at: i64) -> QueuedDelivery {
    QueuedDelivery {
        id: format!("dlv_{n:03}"),
        event_id: format!("evt_{n:03}"),
        body: Arc::from("x".repeat(100).as_str()),
        attempt_count: 0,
        due_at,
        // Line order follows the number; numbered above what the tests'
        // machines were loaded with.
        seq: i64::from(n),
        event_type: Arc::from("invoice.paid"),
    }
}

fn sent(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(d) => Some(d.id.clone()),
            _ => None,
        })
        .collect()
}

fn page_request(effects: &[Effect]) -> Option<(usize, usize, Vec<String>)> {
    effects.iter().find_map(|e| match e {
        Effect::LoadPage {
            deliveries,
            bytes,
            exclude,
            ..
        } => Some((*deliveries, *bytes, exclude.clone())),
        _ => None,
    })
}

/// When [`active`] machines read their first page: before anything
/// the tests hand them was created.
const STARTED: i64 = NOW - 1_000;

/// A loaded, active machine whose disk holds nothing.
fn active(config: MachineConfig) -> EndpointMachine {
    let mut machine = EndpointMachine::new(config);
    let effects = machine.loaded(true, None, None, 0, STARTED);
    assert!(page_request(&effects).is_some(), "{effects:?}");
    machine.page_loaded(Page::default(), STARTED);
    machine
}

fn failed(status: u16) -> AttemptOutcome {
    AttemptOutcome {
        status: Some(status),
        retry_after: None,
        failure: Some(format!("HTTP {status}")),
    }
}

fn ok() -> AttemptOutcome {
    AttemptOutcome {
        status: Some(204),
        retry_after: None,
        failure: None,
    }
}

const RETRY_DUE: i64 = NOW + 5_000;

/// An active ordered machine whose disk holds nothing; its in-flight
/// limit would allow many.
fn ordered(config: MachineConfig) -> EndpointMachine {
    let mut machine = EndpointMachine::new(MachineConfig {
        ordered: true,
        max_in_flight: 16,
        ..config
    });
    let effects = machine.loaded(true, None, None, 0, NOW);
    assert_eq!(page_order(&effects), Some(PageOrder::Line), "{effects:?}");
    machine.page_loaded(Page::default(), NOW);
    machine
}

fn page_order(effects: &[Effect]) -> Option<PageOrder> {
    effects.iter().find_map(|e| match e {
        Effect::LoadPage { order, .. } => Some(*order),
        _ => None,
    })
}

/// Finishes the attempt of `id` and records it; the effects of both.
fn settle(
    machine: &mut EndpointMachine,
    id: &str,
    outcome: &AttemptOutcome,
    now: i64,
) -> (AttemptDecision, Vec<Effect>) {
    let (decision, mut effects) = machine.attempt_finished(id, outcome, now, 0.0);
    assert!(
        sent(&effects).is_empty(),
        "sent before the write: {effects:?}"
    );
    effects.extend(machine.attempt_recorded(id, Ok(()), now));
    (decision.expect("attempted"), effects)
}

/// Fails `n` attempts in a row, each of a fresh delivery, at `at(i)`.
fn fail_many(
    machine: &mut EndpointMachine,
    n: u32,
    status: u16,
    at: impl Fn(u32) -> i64,
) -> Vec<AttemptDecision> {
    (0..n)
        .map(|i| {
            let id = 100 + i;
            machine.enqueue(vec![delivery(id, at(i))], at(i));
            let (decision, _) =
                machine.attempt_finished(&format!("dlv_{id:03}"), &failed(status), at(i), 0.0);
            machine.attempt_recorded(&format!("dlv_{id:03}"), Ok(()), at(i));
            decision.expect("attempted")
        })
        .collect()
}
