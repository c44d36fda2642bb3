//! Ordered endpoints (`"ordered": true`): one delivery at a time, in the
//! order the events were published; a delivery waiting for its retry holds
//! every later one back until it succeeds or fails for good.

use crate::common::{spawn_app_with, Receiver, TestApp, TestDb, DELIVERY_TIMEOUT};
use diesel::prelude::*;
use futures_util::future::join_all;
use hookrelay::store::schema::deliveries;
use hookrelay::store::Store;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

backend_tests!(
    a_failing_head_holds_later_events_back_until_its_retry_succeeds,
    after_a_head_fails_for_good_the_rest_follow_in_order,
    concurrent_publishes_are_numbered_and_sent_in_commit_order,
);

/// Long enough that two attempts sent together would overlap.
const ANSWER_DELAY: Duration = Duration::from_millis(30);

/// A window smaller than the backlog, so that the line is paged from disk.
async fn app_with_a_small_window(db: TestDb) -> TestApp {
    spawn_app_with(db, |settings| settings.queue_window = 3).await
}

async fn publish(app: &TestApp, key: &str, tenant: &str, n: usize) -> String {
    let body = json!({"type": "order.step", "payload": {"n": n}});
    app.publish_accepted(key, tenant, &body).await.0
}

/// The event of each request, in arrival order.
fn event_ids(receiver: &Receiver) -> Vec<String> {
    receiver
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or_default().to_owned())
        .collect()
}

async fn a_failing_head_holds_later_events_back_until_its_retry_succeeds(db: TestDb) {
    const LATER: usize = 8;
    let receiver = Receiver::start();
    receiver.set_delay(Some(ANSWER_DELAY));
    receiver.script(&[500, 500]);
    let app = app_with_a_small_window(db).await;
    let (tenant, key, endpoint) = app
        .create_tenant_with_endpoint(
            json!({"url": receiver.url(), "ordered": true, "retry_schedule": [1, 1]}),
        )
        .await;
    assert_eq!(endpoint["ordered"], true, "{endpoint}");
    let head = publish(&app, &key, &tenant, 0).await;
    receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    // Published while the first event waits for its retry.
    let mut later = Vec::new();
    for n in 1..=LATER {
        later.push(publish(&app, &key, &tenant, n).await);
    }
    // A change reloads the endpoint's actor, which reads its line again
    // from disk, where the later events fall due before the head's retry.
    let path = format!(
        "/v1/tenants/{tenant}/endpoints/{}",
        endpoint["id"].as_str().unwrap_or_default()
    );
    app.patch_json(&key, &path, &json!({"description": "reloaded"}))
        .await;
    receiver
        .wait_for_count(3 + LATER, DELIVERY_TIMEOUT + Duration::from_secs(5))
        .await;
    let mut expected = vec![head.clone(); 3];
    expected.extend(later.iter().cloned());
    assert_eq!(event_ids(&receiver), expected, "in publish order");
    assert_eq!(receiver.max_concurrent(), 1, "one request at a time");
    let delivery = settled(&app, &key, &tenant, &head, "succeeded").await;
    assert_eq!(delivery["attempt_count"], 3, "{delivery}");
    for id in &later {
        let delivery = settled(&app, &key, &tenant, id, "succeeded").await;
        assert_eq!(delivery["attempt_count"], 1, "{delivery}");
    }
}

/// The event's one delivery once its last attempt is recorded as `state`.
async fn settled(app: &TestApp, key: &str, tenant: &str, event_id: &str, state: &str) -> Value {
    let delivery_id = app.single_delivery_id(key, tenant, event_id).await;
    app.wait_for_delivery_state(key, tenant, &delivery_id, state, DELIVERY_TIMEOUT)
        .await
}

async fn after_a_head_fails_for_good_the_rest_follow_in_order(db: TestDb) {
    const LATER: usize = 5;
    let receiver = Receiver::start();
    receiver.set_delay(Some(ANSWER_DELAY));
    let app = app_with_a_small_window(db).await;
    let (tenant, key, endpoint) = app
        .create_tenant_with_endpoint(json!({"url": receiver.url(), "retry_schedule": [1]}))
        .await;
    assert_eq!(endpoint["ordered"], false, "off unless asked: {endpoint}");
    // Switched on once the endpoint's actor runs: it reloads in order.
    let warm_up = publish(&app, &key, &tenant, 0).await;
    receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    let path = format!(
        "/v1/tenants/{tenant}/endpoints/{}",
        endpoint["id"].as_str().unwrap_or_default()
    );
    app.patch_json(&key, &path, &json!({"ordered": true})).await;
    assert_eq!(app.get_json(&key, &path).await["ordered"], true);

    receiver.script(&[500, 500]);
    let head = publish(&app, &key, &tenant, 1).await;
    receiver.wait_for_count(2, DELIVERY_TIMEOUT).await;
    let mut later = Vec::new();
    for n in 2..2 + LATER {
        later.push(publish(&app, &key, &tenant, n).await);
    }
    receiver
        .wait_for_count(3 + LATER, DELIVERY_TIMEOUT + Duration::from_secs(5))
        .await;
    let mut expected = vec![warm_up, head.clone(), head.clone()];
    expected.extend(later.iter().cloned());
    assert_eq!(event_ids(&receiver), expected, "in publish order");
    assert_eq!(receiver.max_concurrent(), 1, "one request at a time");
    let delivery = settled(&app, &key, &tenant, &head, "failed").await;
    assert_eq!(delivery["attempt_count"], 2, "{delivery}");
    for id in &later {
        settled(&app, &key, &tenant, id, "succeeded").await;
    }
}

/// Publishes racing each other to an ordered endpoint are numbered in the
/// order they commit (on PostgreSQL the endpoint's row is locked before a
/// number is drawn; SQLite has one writer) and sent in that order. While
/// they are written, a reader polls which numbers have committed: each
/// time, they must be the lowest of those that finally exist, with no gap
/// a later commit fills.
async fn concurrent_publishes_are_numbered_and_sent_in_commit_order(db: TestDb) {
    const EVENTS: usize = 60;
    let receiver = Receiver::start();
    let url = db.url().to_owned();
    let app = spawn_app_with(db, |_| {}).await;
    let (tenant, key, endpoint) = app
        .create_tenant_with_endpoint(json!({"url": receiver.url(), "ordered": true}))
        .await;
    let endpoint_id = endpoint["id"].as_str().unwrap_or_default().to_owned();

    let store = Store::open(&url).expect("open the store");
    let numbers_of = {
        let endpoint_id = endpoint_id.clone();
        move |store: &Store| -> Vec<i64> {
            let mut db = store.get().expect("a connection");
            let mut numbers: Vec<i64> = hookrelay::dispatch!(&mut db, c => deliveries::table
                .filter(deliveries::endpoint_id.eq(&endpoint_id))
                .select(deliveries::seq)
                .load(c))
            .expect("read the numbers");
            numbers.sort_unstable();
            numbers
        }
    };
    let publishing = Arc::new(AtomicBool::new(true));
    let poller = {
        let (publishing, store, numbers_of) =
            (publishing.clone(), store.clone(), numbers_of.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while publishing.load(Ordering::Relaxed) {
                seen.push(numbers_of(&store));
            }
            seen
        })
    };
    join_all((0..EVENTS).map(|n| publish(&app, &key, &tenant, n))).await;
    publishing.store(false, Ordering::Relaxed);
    let seen = poller.join().expect("the poller");

    let committed = numbers_of(&store);
    assert_eq!(committed.len(), EVENTS);
    for snapshot in &seen {
        assert_eq!(
            snapshot.as_slice(),
            &committed[..snapshot.len()],
            "a number committed before a lower one"
        );
    }
    receiver.wait_for_count(EVENTS, DELIVERY_TIMEOUT).await;
    let mut db = store.get().expect("a connection");
    let in_line_order: Vec<String> = hookrelay::dispatch!(&mut db, c => deliveries::table
        .filter(deliveries::endpoint_id.eq(&endpoint_id))
        .order(deliveries::seq)
        .select(deliveries::event_id)
        .load(c))
    .expect("read the line");
    assert_eq!(event_ids(&receiver), in_line_order, "sent in line order");
    assert_eq!(receiver.max_concurrent(), 1, "one request at a time");
}
