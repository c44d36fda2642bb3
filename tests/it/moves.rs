//! Backlog moves (issue 7): disabling and enabling an endpoint change its
//! status at once and move its backlog in batches, each a write of its
//! own, so other tenants' publishes go through meanwhile; a move cut short
//! by a kill is finished after the restart.

use std::time::Duration;

use crate::common::{
    assert_throughout, wait_until, Receiver, Service, TestApp, TestDb, ADMIN_KEY, DELIVERY_TIMEOUT,
};
use hookrelay::store::{endpoints, Store};
use reqwest::StatusCode;
use serde_json::{json, Value};

backend_tests!(
    a_disable_and_a_replay_move_a_backlog_of_many_batches_and_deliver_it_in_order,
    another_tenants_publish_is_delivered_while_a_large_move_is_under_way,
    moves_cut_short_by_a_kill_are_finished_after_the_restart,
);

/// How long a backlog of one-row batches may take to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(180);

fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_string()
}

/// Publishes `n` events of type `move.test`, one after the other; returns
/// their ids in publish order.
async fn publish_in_order(
    app: &TestApp,
    key: &str,
    tenant: &str,
    prefix: &str,
    n: usize,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{prefix}_{i:04}");
        let (got, _) = app
            .publish_accepted(
                key,
                tenant,
                &json!({"id": id, "type": "move.test", "payload": {"n": i}}),
            )
            .await;
        assert_eq!(got, id);
        ids.push(id);
    }
    ids
}

/// The `queue` of the endpoint's health view: (pending, held).
async fn queue_of(app: &TestApp, key: &str, tenant: &str, endpoint: &str) -> (u64, u64) {
    let health = app.endpoint_health(key, tenant, endpoint).await;
    let count = |name: &str| {
        health["queue"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no queue.{name} in {health}"))
    };
    (count("pending"), count("held"))
}

/// Waits until the endpoint's queue is `(pending, held)`.
async fn wait_for_queue(
    app: &TestApp,
    key: &str,
    tenant: &str,
    endpoint: &str,
    wanted: (u64, u64),
    timeout: Duration,
) {
    wait_until(timeout, || async {
        let queue = queue_of(app, key, tenant, endpoint).await;
        if queue == wanted {
            Ok(())
        } else {
            Err(format!(
                "queue (pending, held) of {endpoint} to be {wanted:?}, is {queue:?}"
            ))
        }
    })
    .await;
}

async fn a_disable_and_a_replay_move_a_backlog_of_many_batches_and_deliver_it_in_order(db: TestDb) {
    const EVENTS: usize = 60;
    let receiver = Receiver::start();
    // One slow delivery at a time: the backlog waits as pending.
    receiver.set_delay(Some(Duration::from_secs(2)));
    // Batches of 7 rows and a window of 5: the 60 rows take several of each.
    let app = crate::common::spawn_app_with(db, |settings| {
        settings.move_batch = 7;
        settings.queue_window = 5;
    })
    .await;
    let (tenant, key, endpoint) = app
        .create_tenant_with_endpoint(
            json!({"url": receiver.url(), "max_in_flight": 1, "timeout_seconds": 10}),
        )
        .await;
    let ep = id_of(&endpoint);
    let events = publish_in_order(&app, &key, &tenant, "evt_move", EVENTS).await;

    let disabled = app.disable_endpoint(&key, &tenant, &ep).await;
    disabled.assert_ok_with(&[("/status", json!("disabled"))]);
    // The attempt in flight when it was disabled ends (it succeeds); every
    // other delivery ends up held, none pending, and nothing more is sent.
    let sent_before = wait_until(DELIVERY_TIMEOUT, || async {
        let (pending, held) = queue_of(&app, &key, &tenant, &ep).await;
        let delivered = receiver.count();
        if pending == 0 && held as usize + delivered == EVENTS {
            Ok(delivered)
        } else {
            Err(format!(
                "all but the {delivered} delivered to be held, queue is ({pending}, {held})"
            ))
        }
    })
    .await;
    assert!(
        EVENTS - sent_before > 7 * 3,
        "the backlog spans several batches: {} held",
        EVENTS - sent_before
    );
    receiver
        .assert_nothing_more_arrives(
            sent_before,
            Duration::from_secs(3),
            "nothing is sent while disabled",
        )
        .await;

    receiver.set_delay(None);
    let enabled = app
        .enable_endpoint(&key, &tenant, &ep, &json!({"replay": "held"}))
        .await;
    enabled.assert_ok_with(&[
        ("/replayed", json!(EVENTS - sent_before)),
        ("/cancelled", json!(0)),
    ]);
    receiver.wait_for_count(EVENTS, DELIVERY_TIMEOUT).await;
    wait_for_queue(&app, &key, &tenant, &ep, (0, 0), DELIVERY_TIMEOUT).await;
    receiver
        .assert_nothing_more_arrives(
            EVENTS,
            Duration::from_millis(500),
            "every event delivered exactly once",
        )
        .await;
    let received = receiver.webhook_ids();
    assert_eq!(
        received, events,
        "every event delivered exactly once, the replayed ones in event order"
    );
    let succeeded = app
        .list_deliveries(&key, &tenant, &format!("endpoint_id={ep}&state=succeeded"))
        .await;
    assert_eq!(succeeded.len(), EVENTS);
}

async fn another_tenants_publish_is_delivered_while_a_large_move_is_under_way(db: TestDb) {
    const BACKLOG: usize = 1000;
    let (busy_receiver, quiet_receiver) = (Receiver::start(), Receiver::start());
    // One row per batch: the replay below is a thousand writes, each a
    // transaction of its own.
    let app = crate::common::spawn_app_with(db, |settings| settings.move_batch = 1).await;
    let (busy, busy_key) = app.create_tenant("busy").await;
    let (quiet, quiet_key) = app.create_tenant("quiet").await;
    let backlog = app
        .create_endpoint(&busy_key, &busy, json!({"url": busy_receiver.url()}))
        .await;
    let backlog = id_of(&backlog);
    app.create_endpoint(&quiet_key, &quiet, json!({"url": quiet_receiver.url()}))
        .await;
    let disabled = app.disable_endpoint(&busy_key, &busy, &backlog).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    publish_in_order(&app, &busy_key, &busy, "evt_backlog", BACKLOG).await;
    wait_for_queue(
        &app,
        &busy_key,
        &busy,
        &backlog,
        (0, BACKLOG as u64),
        DELIVERY_TIMEOUT,
    )
    .await;

    let enabled = app
        .enable_endpoint(&busy_key, &busy, &backlog, &json!({"replay": "held"}))
        .await;
    enabled.assert_ok_with(&[("/replayed", json!(BACKLOG))]);
    // The status changed at once; the rows follow.
    let published = app
        .publish(
            &quiet_key,
            &quiet,
            &json!({"id": "evt_quiet", "type": "quiet.test", "payload": {}}),
        )
        .await;
    assert_eq!(published.status, StatusCode::ACCEPTED, "{}", published.body);
    quiet_receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    let stats = app.get_endpoint(&busy_key, &busy, &backlog).await["stats"].clone();
    assert_eq!(stats["backlog_move"], json!("replay"), "{stats}");
    let (_, still_held) = queue_of(&app, &busy_key, &busy, &backlog).await;
    assert!(
        still_held > 0,
        "the other tenant's event went through before the move was done"
    );

    // A thousand one-row writes, each followed by a page read, take a while
    // on a loaded machine.
    busy_receiver.wait_for_count(BACKLOG, DRAIN_TIMEOUT).await;
    wait_for_queue(&app, &busy_key, &busy, &backlog, (0, 0), DELIVERY_TIMEOUT).await;
    let stats = app.get_endpoint(&busy_key, &busy, &backlog).await["stats"].clone();
    assert_eq!(
        stats["backlog_move"],
        Value::Null,
        "the move is done: {stats}"
    );
    assert_eq!(
        busy_receiver.first_webhook_ids().len(),
        BACKLOG,
        "none is lost"
    );
    assert_eq!(quiet_receiver.webhook_ids(), ["evt_quiet"]);
}

async fn moves_cut_short_by_a_kill_are_finished_after_the_restart(db: TestDb) {
    const EVENTS: usize = 300;
    // One row per batch: each move is hundreds of writes, cut short by the kill.
    let settings = [("HOOKRELAY_MOVE_BATCH", "1")];
    let (to_hold, to_cancel, to_replay) = (Receiver::start(), Receiver::start(), Receiver::start());
    // The first attempt to `to_hold` fails and opens its breaker for long:
    // its backlog stays pending.
    to_hold.set_status(500);

    let mut first = Service::start_with(db.url(), "first", &settings).await;
    let app = TestApp::connect(&first.address, ADMIN_KEY);
    let (tenant, key) = app.create_tenant("acme").await;
    let create = |url: String, extra: Value| {
        let mut body = json!({"url": url, "max_in_flight": 1});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    };
    let hold = app
        .create_endpoint(
            &key,
            &tenant,
            create(
                to_hold.url(),
                json!({"breaker_failures": 1, "breaker_cooldown_seconds": 600, "disable_after_failures": 1000}),
            ),
        )
        .await;
    let cancel = app
        .create_endpoint(&key, &tenant, create(to_cancel.url(), json!({})))
        .await;
    let replay = app
        .create_endpoint(&key, &tenant, create(to_replay.url(), json!({})))
        .await;
    let (hold, cancel, replay) = (id_of(&hold), id_of(&cancel), id_of(&replay));
    for ep in [&cancel, &replay] {
        let disabled = app.disable_endpoint(&key, &tenant, ep).await;
        assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    }
    let events = publish_in_order(&app, &key, &tenant, "evt_kill", EVENTS).await;
    to_hold.wait_for_count(1, DELIVERY_TIMEOUT).await;
    wait_for_queue(
        &app,
        &key,
        &tenant,
        &hold,
        (EVENTS as u64, 0),
        DELIVERY_TIMEOUT,
    )
    .await;
    for ep in [&cancel, &replay] {
        wait_for_queue(
            &app,
            &key,
            &tenant,
            ep,
            (0, EVENTS as u64),
            DELIVERY_TIMEOUT,
        )
        .await;
    }

    // Three moves at once, killed before they can be done.
    let disabled = app.disable_endpoint(&key, &tenant, &hold).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    let held_sends = to_hold.count();
    let cancelled = app
        .enable_endpoint(&key, &tenant, &cancel, &json!({"replay": "none"}))
        .await;
    cancelled.assert_ok_with(&[("/cancelled", json!(EVENTS))]);
    let replayed = app
        .enable_endpoint(&key, &tenant, &replay, &json!({"replay": "held"}))
        .await;
    replayed.assert_ok_with(&[("/replayed", json!(EVENTS))]);
    first.kill();

    let store = Store::open(db.url()).expect("open the store");
    let mut conn = store.get().expect("a connection");
    let interrupted: Vec<&String> = [&hold, &cancel, &replay]
        .into_iter()
        .filter(|ep| {
            endpoints::backlog_move(&mut conn, ep)
                .expect("read the move under way")
                .is_some()
        })
        .collect();
    eprintln!(
        "{}: moves under way at the kill: {interrupted:?}; {} replayed deliveries sent",
        db.backend(),
        to_replay.count()
    );
    assert_eq!(interrupted.len(), 3, "the kill cut every move short");
    drop(conn);
    drop(store);

    let second = Service::start_with(db.url(), "restarted", &settings).await;
    let app = TestApp::connect(&second.address, ADMIN_KEY);
    wait_for_queue(
        &app,
        &key,
        &tenant,
        &hold,
        (0, EVENTS as u64),
        DELIVERY_TIMEOUT,
    )
    .await;
    wait_for_queue(&app, &key, &tenant, &cancel, (0, 0), DELIVERY_TIMEOUT).await;
    let cancelled = app
        .list_deliveries(
            &key,
            &tenant,
            &format!("endpoint_id={cancel}&state=cancelled"),
        )
        .await;
    assert_eq!(
        cancelled.len(),
        EVENTS,
        "the interrupted cancel is finished"
    );
    to_replay.wait_for_count(EVENTS, DELIVERY_TIMEOUT).await;
    wait_for_queue(&app, &key, &tenant, &replay, (0, 0), DELIVERY_TIMEOUT).await;
    // Neither the cancelled nor the held deliveries go out meanwhile.
    assert_throughout(
        Duration::from_secs(1),
        "the moves finished after the restart",
        || async {
            if to_cancel.count() != 0 {
                Err(format!(
                    "a cancelled delivery is never sent, {} were",
                    to_cancel.count()
                ))
            } else if to_hold.count() != held_sends {
                Err(format!(
                    "nothing is sent to the disabled endpoint, it had {held_sends} requests and has {}",
                    to_hold.count()
                ))
            } else {
                Ok(())
            }
        },
    )
    .await;
    assert_eq!(
        to_replay.first_webhook_ids(),
        events,
        "every replayed event arrives, first in event order"
    );
    drop(second);
}
