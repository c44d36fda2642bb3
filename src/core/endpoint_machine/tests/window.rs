//! The window, paging and late hand-overs.

use super::*;

#[test]
fn nothing_is_sent_before_the_saved_state_and_the_first_page() {
    let mut machine = EndpointMachine::new(config());
    assert!(sent(&machine.enqueue(vec![delivery(1, NOW)], NOW)).is_empty());
    let effects = machine.loaded(true, None, None, 0, NOW);
    assert!(sent(&effects).is_empty());
    let (count, bytes, exclude) = page_request(&effects).expect("asks for a page");
    assert_eq!((count, bytes, exclude.len()), (4, 1000, 0));
    let page = Page {
        deliveries: vec![delivery(1, NOW), delivery(2, NOW)],
        more_from: None,
    };
    assert_eq!(machine.page_loaded(page, NOW).len(), 2);
}

#[test]
fn a_disabled_endpoint_holds_what_reaches_it() {
    let mut machine = EndpointMachine::new(config());
    assert!(machine.loaded(false, None, None, 0, NOW).is_empty());
    let effects = machine.enqueue(vec![delivery(1, NOW)], NOW);
    assert_eq!(effects, vec![Effect::Hold(vec!["dlv_001".to_owned()])]);
}

#[test]
fn the_window_is_bounded_and_the_rest_is_paged_in_order() {
    let mut machine = active(MachineConfig {
        max_in_flight: 1,
        ..config()
    });
    // Four fill the window, the first of them is sent at once; the
    // fifth and sixth stay on disk.
    let arrivals: Vec<_> = (1..=6).map(|n| delivery(n, NOW + i64::from(n))).collect();
    let effects = machine.enqueue(arrivals, NOW + 10);
    assert_eq!(sent(&effects), vec!["dlv_001"]);
    assert_eq!(machine.snapshot().queued, 3);
    assert!(machine.snapshot().backlog_on_disk);
    // One due before everything on disk still gets in, and goes first.
    machine.enqueue(vec![delivery(7, NOW)], NOW + 10);
    assert_eq!(machine.snapshot().queued, 4);
    let finish = |machine: &mut EndpointMachine, id: &str| {
        let (_, mut effects) = machine.attempt_finished(id, &ok(), NOW + 20, 0.0);
        effects.extend(machine.attempt_recorded(id, Ok(()), NOW + 20));
        effects
    };
    assert_eq!(sent(&finish(&mut machine, "dlv_001")), vec!["dlv_007"]);
    let effects = finish(&mut machine, "dlv_007");
    assert_eq!(sent(&effects), vec!["dlv_002"]);
    let (count, _, exclude) = page_request(&effects).expect("the window ran low");
    assert_eq!(count, 2);
    for id in ["dlv_002", "dlv_003", "dlv_004"] {
        assert!(exclude.contains(&id.to_owned()), "{id} is in memory");
    }
}

#[test]
fn a_body_larger_than_the_budget_still_goes_out_alone() {
    let mut machine = active(config());
    let mut big = delivery(1, NOW);
    big.body = Arc::from("x".repeat(5000).as_str());
    assert_eq!(sent(&machine.enqueue(vec![big], NOW)), vec!["dlv_001"]);
}

#[test]
fn pages_skip_what_memory_holds_and_respect_the_byte_budget() {
    let rows: Vec<(String, i64, usize)> = (1..=5)
        .map(|n| (format!("d{n}"), i64::from(n), 400))
        .collect();
    let exclude: HashSet<String> = ["d1".to_owned()].into();
    assert_eq!(
        select_page(&rows, &exclude, 10, 1000),
        (vec![1, 2], Some(4))
    );
    assert_eq!(select_page(&rows, &exclude, 1, 10_000), (vec![1], Some(3)));
    assert_eq!(select_page(&rows, &exclude, 10, 100), (vec![1], Some(3)));
    assert_eq!(
        select_page(&rows, &HashSet::new(), 10, 10_000),
        (vec![0, 1, 2, 3, 4], None)
    );
}

#[test]
fn a_delivery_settled_while_a_page_was_read_is_not_taken_again() {
    let mut machine = EndpointMachine::new(config());
    machine.loaded(true, None, None, 0, NOW);
    machine.page_loaded(
        Page {
            deliveries: vec![delivery(1, NOW)],
            more_from: Some(NOW),
        },
        NOW,
    );
    let (_, effects) = machine.attempt_finished("dlv_001", &ok(), NOW, 0.0);
    assert!(page_request(&effects).is_some() || machine.page_in_flight);
    machine.page_in_flight = true;
    machine.attempt_recorded("dlv_001", Ok(()), NOW);
    // The page was read before the success committed.
    let effects = machine.page_loaded(
        Page {
            deliveries: vec![delivery(1, NOW)],
            more_from: None,
        },
        NOW,
    );
    assert!(sent(&effects).is_empty());
}

#[test]
fn a_retry_settled_while_a_page_was_read_comes_back_after_it() {
    let mut machine = active(config());
    machine.enqueue(vec![delivery(1, NOW)], NOW);
    machine.attempt_finished("dlv_001", &failed(500), NOW, 0.0);
    machine.page_in_flight = true;
    machine.attempt_recorded("dlv_001", Ok(()), NOW);
    assert_eq!(machine.snapshot().queued, 0);
    let stale = delivery(1, NOW);
    machine.page_loaded(
        Page {
            deliveries: vec![stale],
            more_from: None,
        },
        NOW,
    );
    let snapshot = machine.snapshot();
    assert_eq!(snapshot.queued, 1);
    assert!(!snapshot.backlog_on_disk);
    assert_eq!(sent(&machine.wake(NOW + 5000)), vec!["dlv_001"]);
}

#[test]
fn recovered_work_on_disk_is_paged_in_even_while_a_page_is_read() {
    let mut machine = active(config());
    let effects = machine.work_on_disk(NOW);
    assert!(page_request(&effects).is_some(), "{effects:?}");
    // Told again while that page is read: the page may predate the
    // new rows, so an empty page still leads to another.
    assert!(page_request(&machine.work_on_disk(NOW)).is_none());
    let effects = machine.page_loaded(Page::default(), NOW);
    assert!(page_request(&effects).is_some(), "{effects:?}");
    let effects = machine.page_loaded(
        Page {
            deliveries: vec![delivery(1, NOW - 10)],
            more_from: None,
        },
        NOW,
    );
    assert_eq!(sent(&effects), vec!["dlv_001".to_owned()]);
    assert!(!machine.snapshot().backlog_on_disk);
}

#[test]
fn a_disabled_endpoint_ignores_work_on_disk() {
    let mut machine = active(config());
    machine.disable(NOW).expect("ready");
    machine.status_written(None, NOW);
    assert!(machine.work_on_disk(NOW).is_empty());
}

#[test]
fn a_delivery_settled_elsewhere_leaves_the_window_unsent() {
    let mut machine = active(config());
    machine.enqueue(
        vec![delivery(1, NOW + 5_000), delivery(2, NOW + 6_000)],
        NOW,
    );
    assert_eq!(machine.snapshot().queued, 2);
    machine.settled_elsewhere("dlv_001", 1, NOW);
    assert_eq!(machine.snapshot().queued, 1);
    let effects = machine.wake(NOW + 6_000);
    assert_eq!(sent(&effects), vec!["dlv_002".to_owned()]);
    // Unknown to the machine: nothing happens.
    assert!(sent(&machine.settled_elsewhere("dlv_009", 9, NOW + 6_000)).is_empty());
}

#[test]
fn a_hand_over_arriving_after_its_delivery_was_settled_elsewhere_sends_nothing() {
    let mut machine = active(config());
    // An operator's retry settles a delivery whose hand-over from the
    // router is still on its way.
    machine.settled_elsewhere("dlv_001", 1, NOW);
    let effects = machine.enqueue(vec![delivery(1, NOW)], NOW + 1);
    assert!(sent(&effects).is_empty(), "{effects:?}");
    assert!(page_request(&effects).is_none(), "{effects:?}");
}

#[test]
fn a_late_enqueue_of_a_delivery_a_page_already_brought_in_sends_nothing() {
    let mut machine = EndpointMachine::new(config());
    machine.loaded(true, None, None, 0, NOW - 20);
    // The first page is read after the delivery's commit, before the
    // router hands it over.
    let page = Page {
        deliveries: vec![delivery(1, NOW - 10)],
        more_from: None,
    };
    assert_eq!(sent(&machine.page_loaded(page, NOW)), ["dlv_001"]);
    machine.attempt_finished("dlv_001", &ok(), NOW + 1, 0.0);
    machine.attempt_recorded("dlv_001", Ok(()), NOW + 2);
    let effects = machine.enqueue(vec![delivery(1, NOW - 10)], NOW + 3);
    assert!(sent(&effects).is_empty(), "{effects:?}");
    // The page is remembered: no need to ask the disk.
    assert!(page_request(&effects).is_none(), "{effects:?}");
}

#[test]
fn a_late_enqueue_that_no_recent_page_brought_in_is_sent_without_a_page() {
    let mut machine = active(config());
    assert!(page_request(&machine.work_on_disk(NOW)).is_some());
    let page = Page {
        deliveries: vec![delivery(1, NOW - 20)],
        more_from: None,
    };
    assert_eq!(sent(&machine.page_loaded(page, NOW)), ["dlv_001"]);
    // Created before that page was read, committed after it: the page
    // did not bring it, so it goes straight out. (Under steady traffic
    // most hand-overs are like this one; reading the disk for each kept
    // a busy endpoint paging once per commit.)
    let effects = machine.enqueue(vec![delivery(2, NOW - 10)], NOW + 1);
    assert_eq!(sent(&effects), ["dlv_002"]);
    assert!(page_request(&effects).is_none(), "{effects:?}");
}

#[test]
fn a_late_enqueue_a_forgotten_page_may_have_brought_in_is_read_from_disk() {
    let mut machine = EndpointMachine::new(config());
    // Numbered up to 1 when the state was loaded: committed before, so
    // pages of an earlier load may have brought it in.
    machine.loaded(true, None, None, 1, STARTED);
    machine.page_loaded(Page::default(), STARTED);
    let effects = machine.enqueue(vec![delivery(1, STARTED - 10)], NOW);
    assert!(sent(&effects).is_empty(), "{effects:?}");
    assert!(page_request(&effects).is_some(), "{effects:?}");
    let page = Page {
        deliveries: vec![delivery(1, STARTED - 10)],
        more_from: None,
    };
    assert_eq!(sent(&machine.page_loaded(page, NOW + 1)), ["dlv_001"]);
}

#[test]
fn a_machine_waiting_for_a_distant_retry_still_forgets_its_pages() {
    let horizon = RecentPages::HORIZON_MS;
    let mut machine = EndpointMachine::new(MachineConfig {
        retry_schedule: vec![3600],
        ..config()
    });
    machine.loaded(true, None, None, 0, NOW);
    let page = Page {
        deliveries: vec![delivery(1, NOW - 100)],
        more_from: None,
    };
    assert_eq!(sent(&machine.page_loaded(page, NOW)), ["dlv_001"]);
    machine.attempt_finished("dlv_001", &failed(500), NOW + 1, 0.0);
    let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW + 2);
    assert!(
        effects.contains(&Effect::WakeAt(NOW + 1 + 3_600_000)),
        "{effects:?}"
    );
    assert!(
        effects.contains(&Effect::ForgetPagesAt(NOW + horizon)),
        "{effects:?}"
    );
}

#[test]
fn a_quiet_machine_forgets_its_pages_after_the_horizon() {
    let horizon = RecentPages::HORIZON_MS;
    let mut machine = EndpointMachine::new(config());
    machine.loaded(true, None, None, 0, NOW);
    let page = |n| Page {
        deliveries: vec![delivery(n, NOW - 100)],
        more_from: None,
    };
    let effects = machine.page_loaded(page(1), NOW);
    assert_eq!(sent(&effects), ["dlv_001"]);
    machine.attempt_finished("dlv_001", &ok(), NOW + 1, 0.0);
    let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW + 2);
    assert_eq!(effects, [Effect::ForgetPagesAt(NOW + horizon)]);
    assert!(page_request(&machine.work_on_disk(NOW + 10)).is_some());
    machine.page_loaded(page(2), NOW + 10);
    machine.attempt_finished("dlv_002", &ok(), NOW + 11, 0.0);
    assert!(machine
        .attempt_recorded("dlv_002", Ok(()), NOW + 12)
        .is_empty());
    // Each page is forgotten at its time.
    let effects = machine.enqueue(vec![delivery(2, NOW - 100)], NOW + 13);
    assert!(effects.is_empty(), "{effects:?}");
    let effects = machine.forget_pages(NOW + horizon);
    assert_eq!(effects, [Effect::ForgetPagesAt(NOW + 10 + horizon)]);
    assert!(machine.forget_pages(NOW + 10 + horizon).is_empty());
    // What the forgotten pages may have brought is now in doubt, and
    // what is numbered above it is not.
    let effects = machine.enqueue(vec![delivery(2, NOW - 100)], NOW + 11 + horizon);
    assert!(sent(&effects).is_empty(), "{effects:?}");
    assert!(page_request(&effects).is_some(), "{effects:?}");
    machine.page_loaded(Page::default(), NOW + 12 + horizon);
    let effects = machine.enqueue(vec![delivery(3, NOW + 5)], NOW + 13 + horizon);
    assert_eq!(sent(&effects), ["dlv_003"]);
}

#[test]
fn a_delivery_settled_elsewhere_while_a_page_is_read_is_not_taken_from_it() {
    let mut machine = active(config());
    assert!(page_request(&machine.work_on_disk(NOW)).is_some());
    // The page was read before the operator's retry committed.
    machine.settled_elsewhere("dlv_001", 1, NOW + 1);
    let page = Page {
        deliveries: vec![delivery(1, NOW - 10)],
        more_from: None,
    };
    let effects = machine.page_loaded(page, NOW + 2);
    assert!(sent(&effects).is_empty(), "{effects:?}");
}

#[test]
fn a_delivery_settled_elsewhere_during_its_attempt_is_not_retried() {
    let mut machine = active(config());
    machine.enqueue(vec![delivery(1, NOW)], NOW);
    machine.settled_elsewhere("dlv_001", 1, NOW + 1);
    let (decision, _) = machine.attempt_finished("dlv_001", &failed(500), NOW + 2, 0.0);
    assert!(decision.is_some(), "the attempt is still recorded");
    machine.settled_elsewhere("dlv_001", 1, NOW + 3);
    let effects = machine.attempt_recorded("dlv_001", Ok(()), NOW + 4);
    assert!(!effects.contains(&Effect::WakeAt(RETRY_DUE)), "{effects:?}");
    assert!(sent(&machine.wake(RETRY_DUE + 10_000)).is_empty());
    assert_eq!(machine.snapshot().queued, 0);
}

#[test]
fn unordered_endpoints_page_by_due_time() {
    let mut machine = EndpointMachine::new(config());
    let effects = machine.loaded(true, None, None, 0, NOW);
    assert_eq!(page_order(&effects), Some(PageOrder::Due));
}
