//! Ordered endpoints.

use super::*;

#[test]
fn an_ordered_endpoint_sends_one_at_a_time_in_event_order_not_due_order() {
    let mut machine = ordered(config());
    // Due order is 3, 2, 1; event order 1, 2, 3.
    let effects = machine.enqueue(
        vec![
            delivery(3, NOW - 20),
            delivery(2, NOW - 10),
            delivery(1, NOW),
        ],
        NOW,
    );
    assert_eq!(sent(&effects), ["dlv_001"]);
    let (_, effects) = settle(&mut machine, "dlv_001", &ok(), NOW + 1);
    assert_eq!(sent(&effects), ["dlv_002"]);
    let (_, effects) = settle(&mut machine, "dlv_002", &ok(), NOW + 2);
    assert_eq!(sent(&effects), ["dlv_003"]);
}

#[test]
fn a_failing_head_holds_the_line_until_its_retry_succeeds() {
    let mut machine = ordered(config());
    machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW)], NOW);
    let (decision, effects) = settle(&mut machine, "dlv_001", &failed(500), NOW);
    assert_eq!(decision.state, DeliveryState::Pending);
    assert!(sent(&effects).is_empty(), "{effects:?}");
    assert!(effects.contains(&Effect::WakeAt(NOW + 5000)), "{effects:?}");
    // Later deliveries that are due still wait, however often it wakes.
    assert!(sent(&machine.enqueue(vec![delivery(3, NOW + 10)], NOW + 10)).is_empty());
    assert!(sent(&machine.wake(NOW + 4999)).is_empty());
    assert_eq!(sent(&machine.wake(NOW + 5000)), ["dlv_001"]);
    let (_, effects) = settle(&mut machine, "dlv_001", &ok(), NOW + 5001);
    assert_eq!(sent(&effects), ["dlv_002"]);
}

#[test]
fn a_head_that_fails_for_good_lets_the_next_one_go() {
    let mut machine = ordered(MachineConfig {
        retry_schedule: vec![5],
        ..config()
    });
    machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW)], NOW);
    settle(&mut machine, "dlv_001", &failed(500), NOW);
    assert_eq!(sent(&machine.wake(NOW + 5000)), ["dlv_001"]);
    let (decision, effects) = settle(&mut machine, "dlv_001", &failed(500), NOW + 5000);
    assert_eq!(decision.state, DeliveryState::Failed);
    assert_eq!(sent(&effects), ["dlv_002"]);
}

#[test]
fn the_breaker_holds_the_head_back_and_probes_with_it() {
    let mut machine = ordered(MachineConfig {
        retry_schedule: vec![],
        window: WindowLimits {
            deliveries: 16,
            bytes: 10_000,
        },
        ..config()
    });
    let failures = test_limits().breaker_failures;
    let arrivals = (1..=failures + 2).map(|n| delivery(n, NOW)).collect();
    machine.enqueue(arrivals, NOW);
    let mut effects = Vec::new();
    for n in 1..=failures {
        effects = settle(&mut machine, &format!("dlv_{n:03}"), &failed(500), NOW).1;
    }
    assert_eq!(machine.snapshot().breaker.state, CircuitState::Open);
    assert!(sent(&effects).is_empty(), "{effects:?}");
    let probe_at = machine
        .snapshot()
        .breaker
        .next_probe_at
        .expect("probe time");
    assert!(effects.contains(&Effect::WakeAt(probe_at)), "{effects:?}");
    let head = format!("dlv_{:03}", failures + 1);
    assert_eq!(sent(&machine.wake(probe_at)), [head]);
}

#[test]
fn the_rate_limit_spaces_an_ordered_line() {
    let mut machine = ordered(MachineConfig {
        rate_limit: Some(1),
        ..config()
    });
    machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW)], NOW);
    let (_, effects) = settle(&mut machine, "dlv_001", &ok(), NOW + 10);
    assert!(sent(&effects).is_empty(), "{effects:?}");
    assert!(effects.contains(&Effect::WakeAt(NOW + 1000)), "{effects:?}");
    assert_eq!(sent(&machine.wake(NOW + 1000)), ["dlv_002"]);
}

#[test]
fn a_head_coming_back_keeps_its_place_before_later_events() {
    let mut machine = ordered(MachineConfig {
        window: WindowLimits {
            deliveries: 2,
            bytes: 1000,
        },
        ..config()
    });
    // Four events; with the first in flight the window holds the next
    // two, the fourth waits on disk, so the floor is its number.
    let effects = machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW)], NOW);
    assert_eq!(sent(&effects), ["dlv_001"]);
    let page = Page {
        deliveries: vec![delivery(3, NOW)],
        more_from: Some(4),
    };
    machine.page_loaded(page, NOW);
    assert_eq!(machine.snapshot().queued, 2);
    let (_, effects) = settle(&mut machine, "dlv_001", &failed(500), NOW);
    assert!(
        sent(&effects).is_empty(),
        "dlv_002 passed its head: {effects:?}"
    );
    assert_eq!(sent(&machine.wake(NOW + 5000)), ["dlv_001"]);
}

#[test]
fn a_retry_written_while_a_page_is_read_keeps_the_line_waiting() {
    let mut machine = ordered(config());
    machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW)], NOW);
    machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
    machine.page_in_flight = true;
    let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW);
    assert!(sent(&effects).is_empty(), "{effects:?}");
    let page = Page {
        deliveries: vec![delivery(3, NOW)],
        more_from: None,
    };
    let effects = machine.page_loaded(page, NOW + 1);
    assert!(sent(&effects).is_empty(), "{effects:?}");
    assert_eq!(sent(&machine.wake(NOW + 5000)), ["dlv_001"]);
}

/// The line once followed the publishing handler's clock, and a step
/// back put a new event before a failing head.
#[test]
fn a_clock_step_back_never_puts_a_new_event_before_a_failing_head() {
    let mut machine = ordered(config());
    machine.enqueue(vec![delivery(5, NOW)], NOW);
    settle(&mut machine, "dlv_005", &failed(500), NOW);
    let an_hour_back = NOW - 3_600_000;
    let effects = machine.enqueue(vec![delivery(6, an_hour_back)], NOW + 1);
    assert!(sent(&effects).is_empty(), "{effects:?}");
    assert_eq!(sent(&machine.wake(RETRY_DUE)), ["dlv_005"]);
}

#[test]
fn older_work_on_disk_is_paged_in_ahead_of_the_window() {
    let mut machine = ordered(config());
    machine.enqueue(vec![delivery(5, NOW), delivery(6, NOW)], NOW);
    settle(&mut machine, "dlv_005", &failed(500), NOW);
    // A recovery makes an older delivery pending: the window is read
    // again from the front of the line.
    let effects = machine.work_on_disk(NOW + 10);
    let (_, _, exclude) = page_request(&effects).expect("pages");
    assert_eq!(page_order(&effects), Some(PageOrder::Line));
    assert!(exclude.is_empty(), "{exclude:?}");
    assert_eq!(machine.snapshot().queued, 0);
    let mut retried = delivery(5, NOW + 5000);
    retried.attempt_count = 1;
    let page = Page {
        deliveries: vec![delivery(2, NOW + 10), retried, delivery(6, NOW)],
        more_from: None,
    };
    let effects = machine.page_loaded(page, NOW + 10);
    assert_eq!(sent(&effects), ["dlv_002"]);
    let (_, effects) = settle(&mut machine, "dlv_002", &ok(), NOW + 20);
    assert!(sent(&effects).is_empty(), "{effects:?}");
    assert_eq!(sent(&machine.wake(NOW + 5000)), ["dlv_005"]);
}

#[test]
fn a_failed_page_holds_the_line_and_is_read_again_a_second_later() {
    let mut machine = EndpointMachine::new(MachineConfig {
        ordered: true,
        ..config()
    });
    machine.loaded(true, None, None, 0, NOW);
    let effects = machine.page_failed(NOW);
    assert!(page_request(&effects).is_none(), "{effects:?}");
    assert!(effects.contains(&Effect::WakeAt(NOW + 1000)), "{effects:?}");
    // What is on disk may be older than a new arrival.
    assert!(sent(&machine.enqueue(vec![delivery(9, NOW)], NOW)).is_empty());
    let effects = machine.wake(NOW + 1000);
    assert_eq!(page_order(&effects), Some(PageOrder::Line), "{effects:?}");
    let page = Page {
        deliveries: vec![delivery(1, NOW), delivery(9, NOW)],
        more_from: None,
    };
    assert_eq!(sent(&machine.page_loaded(page, NOW + 1000)), ["dlv_001"]);
}

#[test]
fn an_ordered_line_waits_for_the_whole_replay_of_its_held_backlog() {
    let mut machine = EndpointMachine::new(MachineConfig {
        ordered: true,
        ..config()
    });
    machine.loaded(false, None, None, 0, NOW);
    machine.enable(BacklogMove::Replay, NOW).expect("ready");
    machine.status_written(Some(10), NOW);
    // The first batch is pending; older held deliveries may remain.
    let page = Page {
        deliveries: vec![delivery(2, NOW)],
        more_from: None,
    };
    assert!(sent(&machine.page_loaded(page, NOW)).is_empty());
    let effects = machine.batch_moved(BacklogMove::Replay, Ok(true), NOW);
    assert!(sent(&effects).is_empty(), "{effects:?}");
    let page = Page {
        deliveries: vec![delivery(1, NOW), delivery(2, NOW)],
        more_from: None,
    };
    assert!(sent(&machine.page_loaded(page, NOW)).is_empty());
    let effects = machine.batch_moved(BacklogMove::Replay, Ok(false), NOW);
    assert_eq!(page_order(&effects), Some(PageOrder::Line), "{effects:?}");
    let page = Page {
        deliveries: vec![delivery(1, NOW), delivery(2, NOW)],
        more_from: None,
    };
    assert_eq!(sent(&machine.page_loaded(page, NOW)), ["dlv_001"]);
}
