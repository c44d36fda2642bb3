//! Status changes and backlog moves.

use super::*;

#[test]
fn manual_disable_and_enable_reset_health_and_page_the_replay_in() {
    let mut machine = active(config());
    fail_many(&mut machine, 3, 500, |_| NOW);
    let disabled = machine.disable(NOW).expect("ready").expect("was active");
    assert_eq!(disabled.alert.disabled_reason, Some(DisableReason::Manual));
    assert_eq!(machine.disable(NOW), Ok(None));
    machine.status_written(None, NOW);
    machine.batch_moved(BacklogMove::Hold, Ok(false), NOW);
    let enabling = machine.enable(BacklogMove::Replay, NOW).expect("ready");
    let (health, alert) = enabling.reset.expect("was disabled");
    assert_eq!(health.streak, Streak::default());
    assert_eq!(alert.kind, AlertKind::Enabled);
    let effects = machine.status_written(Some(3), NOW);
    assert!(page_request(&effects).is_some(), "{effects:?}");
    assert!(effects.contains(&Effect::MoveBatch(BacklogMove::Replay)));
    machine.batch_moved(BacklogMove::Replay, Ok(false), NOW);
    assert_eq!(
        machine
            .enable(BacklogMove::Replay, NOW)
            .map(|e| e.reset.is_none()),
        Ok(true)
    );
}

/// The effects' batches, in order.
fn batches(effects: &[Effect]) -> Vec<BacklogMove> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::MoveBatch(kind) => Some(*kind),
            _ => None,
        })
        .collect()
}

#[test]
fn a_disable_holds_the_backlog_one_batch_at_a_time_and_sends_nothing_meanwhile() {
    let mut machine = active(config());
    machine.enqueue(vec![delivery(1, NOW + 10)], NOW);
    machine.disable(NOW).expect("ready").expect("was active");
    let effects = machine.status_written(None, NOW);
    assert_eq!(effects, vec![Effect::MoveBatch(BacklogMove::Hold)]);
    // One batch at a time: nothing more until this one is written.
    assert!(machine.wake(NOW + 20).is_empty());
    let effects = machine.batch_moved(BacklogMove::Hold, Ok(true), NOW + 20);
    assert_eq!(effects, vec![Effect::MoveBatch(BacklogMove::Hold)]);
    assert_eq!(machine.snapshot().moving, Some(BacklogMove::Hold));
    assert!(machine
        .batch_moved(BacklogMove::Hold, Ok(false), NOW + 30)
        .is_empty());
    assert_eq!(machine.snapshot().moving, None);
    let effects = machine.enqueue(vec![delivery(2, NOW)], NOW + 40);
    assert_eq!(effects, vec![Effect::Hold(vec!["dlv_002".to_owned()])]);
}

#[test]
fn replayed_deliveries_are_paged_in_as_each_batch_makes_them_pending() {
    let mut machine = EndpointMachine::new(config());
    machine.loaded(false, None, None, 0, NOW);
    machine.enable(BacklogMove::Replay, NOW).expect("ready");
    let effects = machine.status_written(Some(10), NOW);
    assert_eq!(batches(&effects), vec![BacklogMove::Replay]);
    assert!(page_request(&effects).is_some(), "{effects:?}");
    // The first page is read before the first batch is written.
    let effects = machine.page_loaded(Page::default(), NOW);
    assert!(effects.is_empty(), "{effects:?}");
    let effects = machine.batch_moved(BacklogMove::Replay, Ok(true), NOW);
    assert_eq!(batches(&effects), vec![BacklogMove::Replay]);
    assert!(page_request(&effects).is_some(), "{effects:?}");
    // Another batch is written while that page is read.
    let effects = machine.batch_moved(BacklogMove::Replay, Ok(false), NOW);
    assert!(batches(&effects).is_empty() && page_request(&effects).is_none());
    let page = Page {
        deliveries: vec![delivery(1, NOW), delivery(2, NOW)],
        more_from: None,
    };
    let effects = machine.page_loaded(page, NOW);
    assert_eq!(sent(&effects), ["dlv_001", "dlv_002"]);
    // The page may predate the batch: it is read again.
    assert!(page_request(&effects).is_some(), "{effects:?}");
}

#[test]
fn a_cancel_moves_nothing_when_nothing_is_held() {
    let mut machine = EndpointMachine::new(config());
    machine.loaded(false, None, None, 0, NOW);
    machine.enable(BacklogMove::Cancel, NOW).expect("ready");
    let effects = machine.status_written(Some(0), NOW);
    assert!(batches(&effects).is_empty(), "{effects:?}");
    assert_eq!(machine.snapshot().moving, None);
    assert!(machine.disable(NOW).expect("ready").is_some());
}

#[test]
fn status_changes_wait_for_the_move_under_way() {
    let mut machine = active(config());
    machine.disable(NOW).expect("ready");
    machine.status_written(None, NOW);
    assert_eq!(
        machine.enable(BacklogMove::Cancel, NOW).map(|_| ()),
        Err(NotReady::Later)
    );
    // Disabling a disabled endpoint changes nothing: no need to wait.
    assert_eq!(machine.disable(NOW), Ok(None));
    machine.batch_moved(BacklogMove::Hold, Ok(false), NOW);
    machine.enable(BacklogMove::Replay, NOW).expect("ready");
    machine.status_written(Some(5), NOW);
    assert_eq!(machine.disable(NOW), Err(NotReady::Later));
    machine.batch_moved(BacklogMove::Replay, Ok(false), NOW);
    assert!(machine.disable(NOW).expect("ready").is_some());
}

#[test]
fn a_load_finishes_the_move_a_crash_interrupted() {
    let mut machine = EndpointMachine::new(config());
    let effects = machine.loaded(false, None, Some(BacklogMove::Hold), 0, NOW);
    assert_eq!(effects, vec![Effect::MoveBatch(BacklogMove::Hold)]);
    let mut machine = EndpointMachine::new(config());
    let effects = machine.loaded(true, None, Some(BacklogMove::Cancel), 0, NOW);
    assert_eq!(batches(&effects), vec![BacklogMove::Cancel]);
    assert!(page_request(&effects).is_some(), "{effects:?}");
}

#[test]
fn a_failed_batch_reloads_the_state_which_finishes_the_move() {
    let mut machine = active(config());
    machine.disable(NOW).expect("ready");
    machine.status_written(None, NOW);
    let effects = machine.batch_moved(BacklogMove::Hold, Err(()), NOW);
    assert_eq!(effects, vec![Effect::Reload { failed: true }]);
}

#[test]
fn an_attempt_that_disables_starts_the_hold_once_written_and_enabling_waits_for_it() {
    let mut machine = active(config());
    machine.enqueue(vec![delivery(1, NOW)], NOW);
    machine.attempt_finished("dlv_001", &failed(410), NOW, 0.0);
    assert_eq!(
        machine.enable(BacklogMove::Cancel, NOW).map(|_| ()),
        Err(NotReady::Later)
    );
    let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW);
    assert_eq!(
        effects,
        vec![Effect::Disabled, Effect::MoveBatch(BacklogMove::Hold)]
    );
    machine.batch_moved(BacklogMove::Hold, Ok(false), NOW);
    assert!(machine.enable(BacklogMove::Cancel, NOW).is_ok());
}

#[test]
fn an_endpoint_that_disables_itself_during_a_replay_holds_its_backlog_after_it() {
    let mut machine = EndpointMachine::new(config());
    machine.loaded(false, None, None, 0, NOW);
    machine.enable(BacklogMove::Replay, NOW).expect("ready");
    machine.status_written(Some(10), NOW);
    let page = Page {
        deliveries: vec![delivery(1, NOW)],
        more_from: None,
    };
    machine.page_loaded(page, NOW);
    machine.attempt_finished("dlv_001", &failed(410), NOW, 0.0);
    // The replay's batch is still being written: the hold waits for it.
    let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW);
    assert_eq!(effects, vec![Effect::Disabled]);
    // That batch found its move superseded: the hold goes on.
    let effects = machine.batch_moved(BacklogMove::Replay, Ok(false), NOW);
    assert_eq!(effects, vec![Effect::MoveBatch(BacklogMove::Hold)]);
    assert_eq!(machine.snapshot().moving, Some(BacklogMove::Hold));
}

#[test]
fn operators_wait_while_the_state_loads_and_are_refused_once_it_shuts_down() {
    let mut machine = EndpointMachine::new(config());
    assert_eq!(machine.disable(NOW), Err(NotReady::Later));
    assert_eq!(
        machine.enable(BacklogMove::Replay, NOW).map(|_| ()),
        Err(NotReady::Later)
    );
    let mut machine = active(config());
    machine.drain(NOW);
    assert_eq!(machine.disable(NOW), Err(NotReady::Closed));
}

#[test]
fn a_reconfigured_endpoint_reloads_only_once_its_attempts_are_recorded() {
    let mut machine = active(config());
    machine.enqueue(vec![delivery(1, NOW)], NOW);
    assert!(machine.reconfigure(NOW).is_empty());
    let (_, effects) = machine.attempt_finished("dlv_001", &ok(), NOW, 0.0);
    assert!(effects.is_empty(), "{effects:?}");
    let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW);
    assert_eq!(effects, vec![Effect::Reload { failed: false }]);
}

#[test]
fn a_reconfigure_before_the_asked_reload_has_run_asks_for_no_second_one() {
    let mut machine = active(config());
    assert_eq!(
        machine.reconfigure(NOW),
        vec![Effect::Reload { failed: false }]
    );
    assert!(machine.reconfigure(NOW + 1).is_empty());
    let mut fresh = EndpointMachine::new(config());
    assert!(fresh.reconfigure(NOW).is_empty());
}

#[test]
fn a_failed_status_write_reloads_after_a_backoff() {
    let mut machine = active(config());
    machine.disable(NOW).expect("ready");
    assert_eq!(
        machine.status_write_failed(NOW),
        vec![Effect::Reload { failed: true }]
    );
    let refused = |n| reload_backoff(n, WriteFailure::Refused);
    assert_eq!(refused(1), Duration::from_secs(1));
    assert_eq!(refused(2), Duration::from_secs(2));
    assert_eq!(refused(9), Duration::from_secs(256));
    assert_eq!(refused(10), Duration::from_secs(300));
    assert_eq!(refused(u32::MAX), Duration::from_secs(300));
}

#[test]
fn while_the_database_is_away_reloads_wait_at_most_five_seconds() {
    let away = |n| reload_backoff(n, WriteFailure::DatabaseAway);
    assert_eq!(away(1), Duration::from_secs(1));
    assert_eq!(away(3), Duration::from_secs(4));
    assert_eq!(away(4), Duration::from_secs(5));
    assert_eq!(away(u32::MAX), Duration::from_secs(5));
}

#[test]
fn drain_answers_once_nothing_is_in_flight() {
    let mut machine = active(config());
    machine.enqueue(vec![delivery(1, NOW), delivery(2, NOW)], NOW);
    assert!(machine.drain(NOW).is_empty());
    machine.attempt_finished("dlv_001", &ok(), NOW, 0.0);
    machine.attempt_recorded("dlv_001", Ok(()), NOW);
    machine.attempt_finished("dlv_002", &ok(), NOW, 0.0);
    let effects = machine.attempt_recorded("dlv_002", Ok(()), NOW);
    assert_eq!(effects, vec![Effect::Drained]);
}
