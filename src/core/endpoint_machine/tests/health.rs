//! The breaker, the streak, alerts and the automatic disable.

use super::*;

#[test]
fn the_breaker_opens_then_lets_exactly_one_probe_through_per_cool_down() {
    let mut machine = active(MachineConfig {
        retry_schedule: vec![],
        retry_client_errors: true,
        ..config()
    });
    let limits = test_limits();
    fail_many(&mut machine, limits.breaker_failures, 500, |i| {
        NOW + i64::from(i)
    });
    assert_eq!(machine.snapshot().breaker.state, CircuitState::Open);
    let opened = machine
        .snapshot()
        .breaker
        .next_probe_at
        .expect("probe time");
    let effects = machine.enqueue(
        vec![delivery(1, opened - 1), delivery(2, opened - 1)],
        opened - 1,
    );
    assert!(sent(&effects).is_empty());
    assert!(effects.contains(&Effect::WakeAt(opened)), "{effects:?}");
    let effects = machine.wake(opened);
    assert_eq!(sent(&effects), vec!["dlv_001"], "one probe");
    let (_, effects) = machine.attempt_finished("dlv_001", &failed(500), opened + 1, 0.0);
    assert!(sent(&effects).is_empty());
    let breaker = machine.snapshot().breaker;
    assert_eq!(breaker.state, CircuitState::Open);
    assert_eq!(
        breaker.cooldown_ms,
        2 * i64::try_from(limits.breaker_cooldown.as_millis()).expect("fits")
    );
}

/// Every failure raises an alert (threshold 1) and none is retried;
/// the breaker stays out of the way.
fn alerting_config() -> MachineConfig {
    MachineConfig {
        retry_schedule: vec![],
        limits: HealthLimits {
            alert_thresholds: vec![1],
            breaker_failures: 1000,
            ..test_limits()
        },
        ..config()
    }
}

#[test]
fn a_flapping_endpoint_is_bounded_and_operational_failures_raise_no_alert() {
    let mut machine = active(alerting_config());
    // Fail, succeed, fail, succeed … within one interval: one failing
    // and one recovered alert in all.
    let mut alerts = Vec::new();
    for i in 0..10u32 {
        let t = NOW + i64::from(i) * 1000;
        let id = 200 + i;
        machine.enqueue(vec![delivery(id, t)], t);
        let outcome = if i % 2 == 0 { failed(500) } else { ok() };
        let (decision, _) = machine.attempt_finished(&format!("dlv_{id:03}"), &outcome, t, 0.0);
        alerts.extend(decision.expect("attempted").alerts);
    }
    let kinds: Vec<AlertKind> = alerts.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, vec![AlertKind::Failing, AlertKind::Recovered]);

    let mut machine = active(MachineConfig {
        retry_schedule: vec![],
        limits: HealthLimits {
            alert_thresholds: vec![1],
            disable_after_failures: 2,
            disable_after: Duration::ZERO,
            ..test_limits()
        },
        ..config()
    });
    let mut operational = delivery(1, NOW);
    operational.event_type = Arc::from("hookrelay.endpoint.failing");
    machine.enqueue(vec![operational], NOW);
    let (decision, _) = machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
    let decision = decision.expect("attempted");
    assert!(decision.alerts.is_empty());
    assert!(decision.health.is_some(), "the failure still counts");
    let mut operational = delivery(2, NOW);
    operational.event_type = Arc::from("hookrelay.endpoint.failing");
    machine.enqueue(vec![operational], NOW);
    let (decision, _) = machine.attempt_finished("dlv_002", &failed(500), NOW, 0.0);
    assert_eq!(
        decision.map(|d| d.disable),
        Some(Some(DisableReason::ConsecutiveFailures)),
        "auto-disable still applies"
    );
}

#[test]
fn alerts_raised_before_a_reload_still_bound_the_next_ones() {
    let first_failure = |machine: &mut EndpointMachine, at: i64| {
        machine.enqueue(vec![delivery(1, at)], at);
        let (decision, _) = machine.attempt_finished("dlv_001", &failed(500), at, 0.0);
        decision.expect("attempted").alerts
    };
    let mut machine = active(alerting_config());
    assert_eq!(machine.alerts_bound_since(NOW), NOW - 300_000);
    machine.recall_failing_alerts(&[(1, NOW - 1_000)]);
    assert!(first_failure(&mut machine, NOW).is_empty());

    let mut machine = active(alerting_config());
    machine.recall_failing_alerts(&[(3, NOW - 1_000)]);
    let alerts = first_failure(&mut machine, NOW);
    assert_eq!(alerts.len(), 1, "another threshold does not bound it");
}

/// The default thresholds (3, 5, 10) and interval (5 min), disabling at
/// the tenth failure whenever it comes; no retries, and the breaker
/// stays out of the way.
fn default_alerts_config() -> MachineConfig {
    MachineConfig {
        retry_schedule: vec![],
        limits: HealthLimits {
            breaker_failures: 1000,
            disable_after: Duration::ZERO,
            ..test_limits()
        },
        ..config()
    }
}

/// Attempts one new delivery after another (numbered from `first`), the
/// i-th created and answered `statuses[i]` at `at + i` ms, each write
/// answered; returns the alerts raised as (kind, threshold, consecutive
/// failures).
fn answer_each(
    machine: &mut EndpointMachine,
    first: u32,
    statuses: &[u16],
    at: i64,
) -> Vec<(AlertKind, Option<u32>, u32)> {
    let mut alerts = Vec::new();
    for (n, &status) in (first..).zip(statuses) {
        let t = at + i64::from(n - first);
        let id = format!("dlv_{n:03}");
        machine.enqueue(vec![delivery(n, t)], t);
        let outcome = if status < 300 { ok() } else { failed(status) };
        let (decision, _) = machine.attempt_finished(&id, &outcome, t, 0.0);
        let decision = decision.unwrap_or_else(|| panic!("{id} not attempted"));
        machine.attempt_recorded(&id, Ok(()), t);
        alerts.extend(
            decision
                .alerts
                .iter()
                .map(|a| (a.kind, a.threshold, a.consecutive_failures)),
        );
    }
    alerts
}

#[test]
fn each_threshold_of_a_quick_streak_alerts_then_the_disable() {
    let mut machine = active(default_alerts_config());
    let alerts = answer_each(&mut machine, 1, &[500; 10], NOW);
    assert_eq!(
        alerts,
        vec![
            (AlertKind::Failing, Some(3), 3),
            (AlertKind::Failing, Some(5), 5),
            (AlertKind::Failing, Some(10), 10),
            (AlertKind::Disabled, None, 10),
        ],
        "ten failures within 10 ms, well inside the interval"
    );
    assert!(!machine.is_active());
}

#[test]
fn a_flapping_endpoint_repeats_no_threshold_within_the_interval() {
    let flap = [500, 500, 500, 204, 500, 500, 500, 204];
    let mut machine = active(default_alerts_config());
    let alerts = answer_each(&mut machine, 1, &flap, NOW);
    assert_eq!(
        alerts,
        vec![
            (AlertKind::Failing, Some(3), 3),
            (AlertKind::Recovered, None, 3),
        ],
        "the second streak crosses 3 again within the interval"
    );

    // Escalation is not repetition: a higher threshold still alerts,
    // and the streak that raised it ends with a recovery.
    let alerts = answer_each(
        &mut machine,
        20,
        &[500, 500, 500, 500, 500, 204],
        NOW + 1_000,
    );
    assert_eq!(
        alerts,
        vec![
            (AlertKind::Failing, Some(5), 5),
            (AlertKind::Recovered, None, 5),
        ]
    );

    // Once the interval is over, the same pattern alerts again.
    let later = NOW + 300_000;
    let alerts = answer_each(&mut machine, 40, &flap, later);
    assert_eq!(
        alerts,
        vec![
            (AlertKind::Failing, Some(3), 3),
            (AlertKind::Recovered, None, 3),
        ]
    );
}

#[test]
fn a_reloaded_streak_ends_with_a_recovery_only_if_it_raised_an_alert() {
    for (alert_raised, expected) in [
        (true, vec![(AlertKind::Recovered, None, 4)]),
        (false, vec![]),
    ] {
        let mut machine = EndpointMachine::new(default_alerts_config());
        let health = HealthState {
            streak: Streak {
                consecutive_failures: 4,
                failing_since: Some(STARTED),
                alerted: vec![3],
                alert_raised,
            },
            breaker: Breaker::closed(&test_limits()),
        };
        machine.loaded(true, Some(health), None, 0, STARTED);
        machine.page_loaded(Page::default(), STARTED);
        let alerts = answer_each(&mut machine, 1, &[204], NOW);
        assert_eq!(alerts, expected, "alert raised: {alert_raised}");
    }
}

#[test]
fn each_disable_alerts_even_within_the_interval() {
    let mut machine = active(default_alerts_config());
    answer_each(&mut machine, 1, &[500; 10], NOW);
    machine.status_written(None, NOW);
    machine.batch_moved(BacklogMove::Hold, Ok(false), NOW);
    let enabling = machine.enable(BacklogMove::Replay, NOW).expect("ready");
    assert!(enabling.reset.is_some(), "was disabled");
    let effects = machine.status_written(Some(0), NOW);
    if page_request(&effects).is_some() {
        machine.page_loaded(Page::default(), NOW);
    }
    let alerts = answer_each(&mut machine, 20, &[500; 10], NOW + 1_000);
    assert_eq!(
        alerts,
        vec![(AlertKind::Disabled, None, 10)],
        "the thresholds repeat within the interval, the disable does not"
    );
}

#[test]
fn a_gone_receiver_disables_and_later_arrivals_are_held() {
    let mut machine = active(config());
    let decisions = fail_many(&mut machine, 1, 410, |_| NOW);
    assert_eq!(decisions[0].disable, Some(DisableReason::Gone));
    assert_eq!(decisions[0].state, DeliveryState::Held);
    assert!(!machine.is_active());
    assert!(matches!(
        machine.enqueue(vec![delivery(1, NOW)], NOW).as_slice(),
        [Effect::Hold(_)]
    ));
}

#[test]
fn the_disabled_notice_follows_the_commit() {
    let mut machine = active(config());
    machine.enqueue(vec![delivery(1, NOW)], NOW);
    machine.attempt_finished("dlv_001", &failed(410), NOW, 0.0);
    let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW);
    assert!(effects.contains(&Effect::Disabled), "{effects:?}");
}
