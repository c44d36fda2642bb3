//! Attempts, their writes, and retries across reloads.

use super::*;

#[test]
fn attempts_respect_the_in_flight_limit_and_due_order() {
    let mut machine = active(config());
    let effects = machine.enqueue(
        vec![delivery(3, NOW + 5), delivery(1, NOW), delivery(2, NOW + 1)],
        NOW + 10,
    );
    assert_eq!(sent(&effects), vec!["dlv_001", "dlv_002"]);
    let (_, effects) = machine.attempt_finished("dlv_001", &ok(), NOW + 11, 0.0);
    assert_eq!(sent(&effects), vec!["dlv_003"]);
}

#[test]
fn a_failure_schedules_the_retry_once_its_write_commits() {
    let mut machine = active(config());
    machine.enqueue(vec![delivery(1, NOW)], NOW);
    let (decision, _) = machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
    let decision = decision.expect("recorded");
    assert_eq!(decision.state, DeliveryState::Pending);
    assert_eq!(decision.attempt, 1);
    assert_eq!(decision.next_attempt_at, Some(NOW + 5000));
    assert_eq!(machine.snapshot().queued, 0, "not before the commit");
    let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW + 1);
    assert!(effects.contains(&Effect::WakeAt(NOW + 5000)), "{effects:?}");
    assert_eq!(sent(&machine.wake(NOW + 5000)), vec!["dlv_001"]);
}

#[test]
fn a_write_that_fails_for_good_reloads_the_truth_instead_of_sending_again() {
    let mut machine = active(config());
    machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW + 10_000)], NOW);
    machine.attempt_finished("dlv_001", &ok(), NOW, 0.0);
    let effects = machine.attempt_recorded("dlv_001", Err(()), NOW);
    assert!(sent(&effects).is_empty(), "{effects:?}");
    assert_eq!(effects, vec![Effect::Reload { failed: true }]);
    // Nothing is sent from memory any more, however long it waits.
    assert!(sent(&machine.wake(NOW + 3_600_000)).is_empty());
}

#[test]
fn an_ordered_head_whose_write_fails_for_good_does_not_loop() {
    let mut machine = ordered(config());
    machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW)], NOW);
    machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
    let effects = machine.attempt_recorded("dlv_001", Err(()), NOW);
    assert_eq!(effects, vec![Effect::Reload { failed: true }]);
    assert!(sent(&machine.wake(NOW + 3_600_000)).is_empty());
}

#[test]
fn a_failed_attempt_write_is_tried_again_with_backoff_and_a_cap() {
    let waits: Vec<Option<Duration>> = (1..=6).map(attempt_write_retry).collect();
    assert_eq!(
        waits,
        vec![
            Some(Duration::from_secs(1)),
            Some(Duration::from_secs(2)),
            Some(Duration::from_secs(4)),
            Some(Duration::from_secs(8)),
            None,
            None,
        ]
    );
}

#[test]
fn the_rate_limit_holds_due_deliveries_back_without_spending_attempts() {
    let mut machine = active(MachineConfig {
        max_in_flight: 10,
        rate_limit: Some(2),
        ..config()
    });
    let due: Vec<QueuedDelivery> = (1..=4).map(|n| delivery(n, NOW)).collect();
    let effects = machine.enqueue(due, NOW);
    assert_eq!(sent(&effects), vec!["dlv_001", "dlv_002"]);
    assert!(effects.contains(&Effect::WakeAt(NOW + 500)), "{effects:?}");
    assert_eq!(sent(&machine.wake(NOW + 500)), vec!["dlv_003"]);
    assert_eq!(sent(&machine.wake(NOW + 1000)), vec!["dlv_004"]);
    assert_eq!(machine.snapshot().queued, 0);
}

/// What follows [`Effect::Reload`] (the shell dropped its timer): the
/// saved state (active, nothing to move), then the first page, read
/// once the retry's write has committed. The retry must be sent at its
/// due time: a timer is armed for it, and its wake-up sends it.
fn reload_then_the_retry_goes_out_when_due(machine: &mut EndpointMachine, now: i64) {
    let effects = machine.loaded(true, None, None, 0, now);
    assert!(page_request(&effects).is_some(), "{effects:?}");
    let effects = page_with_the_retry(machine, now);
    assert!(effects.contains(&Effect::WakeAt(RETRY_DUE)), "{effects:?}");
    assert_eq!(sent(&machine.wake(RETRY_DUE)), ["dlv_001"]);
}

/// A page from disk holding the retry, due later.
fn page_with_the_retry(machine: &mut EndpointMachine, now: i64) -> Vec<Effect> {
    let mut on_disk = delivery(1, RETRY_DUE);
    on_disk.attempt_count = 1;
    let page = Page {
        deliveries: vec![on_disk],
        more_from: None,
    };
    machine.page_loaded(page, now)
}

#[test]
fn a_reconfigure_before_the_retry_is_recorded_keeps_its_wake_up() {
    let mut machine = active(config());
    machine.enqueue(vec![delivery(1, NOW)], NOW);
    let (decision, _) = machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
    assert_eq!(decision.and_then(|d| d.next_attempt_at), Some(RETRY_DUE));
    assert!(
        machine.reconfigure(NOW + 1).is_empty(),
        "the write is outstanding"
    );
    let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW + 2);
    assert_eq!(effects, vec![Effect::Reload { failed: false }]);
    reload_then_the_retry_goes_out_when_due(&mut machine, NOW + 3);
}

#[test]
fn a_reconfigure_during_the_attempt_keeps_the_retry_s_wake_up() {
    let mut machine = active(config());
    machine.enqueue(vec![delivery(1, NOW)], NOW);
    assert!(
        machine.reconfigure(NOW).is_empty(),
        "the attempt is in flight"
    );
    machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
    let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW + 2);
    assert_eq!(effects, vec![Effect::Reload { failed: false }]);
    reload_then_the_retry_goes_out_when_due(&mut machine, NOW + 3);
}

#[test]
fn a_reconfigure_after_the_retry_is_recorded_keeps_its_wake_up() {
    let mut machine = active(config());
    machine.enqueue(vec![delivery(1, NOW)], NOW);
    machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
    let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW + 2);
    assert!(effects.contains(&Effect::WakeAt(RETRY_DUE)), "{effects:?}");
    // The shell drops its timer with the reload.
    let effects = machine.reconfigure(NOW + 3);
    assert_eq!(effects, vec![Effect::Reload { failed: false }]);
    reload_then_the_retry_goes_out_when_due(&mut machine, NOW + 4);
}

#[test]
fn a_reconfigure_while_a_page_is_read_keeps_the_retry_s_wake_up() {
    let mut machine = active(config());
    machine.enqueue(vec![delivery(1, NOW)], NOW);
    machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
    // Recovered work makes the machine read a page meanwhile.
    assert!(page_request(&machine.work_on_disk(NOW + 1)).is_some());
    assert!(machine.reconfigure(NOW + 2).is_empty());
    // The write is answered before the page (which skipped the delivery).
    assert!(machine
        .attempt_recorded("dlv_001", Ok(()), NOW + 3)
        .is_empty());
    let effects = machine.page_loaded(Page::default(), NOW + 4);
    assert_eq!(effects, vec![Effect::Reload { failed: false }]);
    reload_then_the_retry_goes_out_when_due(&mut machine, NOW + 5);
}

#[test]
fn an_enable_while_a_page_is_read_keeps_the_retry_it_took_from_memory() {
    let mut machine = active(config());
    machine.enqueue(vec![delivery(1, NOW)], NOW);
    machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
    machine.attempt_recorded("dlv_001", Ok(()), NOW + 1);
    // A page is read that skips the retry (it is in memory) …
    let (_, _, exclude) = page_request(&machine.work_on_disk(NOW + 2)).expect("a page");
    assert_eq!(exclude, ["dlv_001"]);
    // … while an operator enables the active endpoint, which drops the
    // window to read it again from disk.
    machine.enable(BacklogMove::Replay, NOW + 3).expect("ready");
    machine.status_written(Some(0), NOW + 3);
    let effects = machine.page_loaded(Page::default(), NOW + 4);
    assert!(page_request(&effects).is_some(), "{effects:?}");
    // The timer armed for the retry is still set.
    page_with_the_retry(&mut machine, NOW + 5);
    assert_eq!(sent(&machine.wake(RETRY_DUE)), ["dlv_001"]);
}
