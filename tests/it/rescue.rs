//! Deliveries the database holds but no endpoint actor was told of are
//! found by the rescue sweep: a commit whose reply was lost (rows committed
//! behind the service's back stand in for it here), and a status change
//! the router missed. A publish is stored `pending` or `held` by the status
//! the database holds when it commits, whatever the router believed.

use std::time::Duration;

use crate::common::{spawn_app_with, unix_now, Receiver, TestApp, TestDb};
use serde_json::{json, Value};

backend_tests!(
    a_delivery_committed_without_its_hand_over_is_sent_by_the_rescue_sweep,
    a_publish_to_an_endpoint_disabled_behind_the_routers_back_is_held_then_sent_on_enable,
    a_publish_after_an_enable_the_router_missed_is_sent,
);

/// The sweep runs every second here, so each rescue is due within a few.
const RESCUED_WITHIN: Duration = Duration::from_secs(20);

async fn app_sweeping_every_second(db: TestDb) -> TestApp {
    spawn_app_with(db, |settings| settings.rescue_interval_seconds = 1).await
}

fn database(app: &TestApp) -> &TestDb {
    app.db
        .as_ref()
        .expect("an in-process app keeps its database")
}

/// One event delivered the usual way, so the endpoint's actor runs and is
/// idle: it reads its disk only when told to.
async fn endpoint_with_a_running_actor(
    app: &TestApp,
    receiver: &Receiver,
) -> (String, String, String) {
    let (tenant, key, endpoint) = app
        .create_tenant_with_endpoint(json!({"url": receiver.url()}))
        .await;
    let endpoint = endpoint["id"].as_str().expect("endpoint id").to_owned();
    app.publish_event(&key, &tenant, "a.b", json!({"n": 0}))
        .await;
    receiver.wait_for_count(1, RESCUED_WITHIN).await;
    (tenant, key, endpoint)
}

fn set_status_behind_the_back(db: &TestDb, endpoint: &str, status: &str) {
    db.execute_sql(&format!(
        "UPDATE endpoints SET status = '{status}', disabled_at = NULL, disabled_reason = NULL \
         WHERE id = '{endpoint}'"
    ));
}

async fn delivery_of(app: &TestApp, key: &str, tenant: &str, event: &str) -> Value {
    let delivery = app.single_delivery_id(key, tenant, event).await;
    app.get_delivery(key, tenant, &delivery).await
}

async fn a_delivery_committed_without_its_hand_over_is_sent_by_the_rescue_sweep(db: TestDb) {
    let receiver = Receiver::start();
    let app = app_sweeping_every_second(db).await;
    let (tenant, _key, endpoint) = endpoint_with_a_running_actor(&app, &receiver).await;

    // What a group commit whose reply was lost leaves: the event and its
    // pending delivery on disk, and nothing handed to the actor.
    let now = unix_now() * 1000;
    let body = json!({
        "id": "evt_lost_reply",
        "type": "a.b",
        "timestamp": "2026-12-07T00:00:00.000Z",
        "tenant_id": tenant,
        "data": {"n": 1},
    })
    .to_string();
    database(&app).execute_sql(&format!(
        "INSERT INTO events (tenant_id, id, event_type, body, idempotency_key, created_at) \
             VALUES ('{tenant}', 'evt_lost_reply', 'a.b', '{body}', NULL, {now}); \
         INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, state, attempt_count, \
             next_attempt_at, created_at, updated_at) \
             VALUES ('dlv_lost_reply', '{tenant}', 'evt_lost_reply', '{endpoint}', 'pending', 0, \
             {now}, {now}, {now})"
    ));

    let requests = receiver.wait_for_count(2, RESCUED_WITHIN).await;
    assert_eq!(
        requests[1].header("webhook-id"),
        Some("evt_lost_reply"),
        "the rescued delivery"
    );
}

async fn a_publish_to_an_endpoint_disabled_behind_the_routers_back_is_held_then_sent_on_enable(
    db: TestDb,
) {
    let receiver = Receiver::start();
    let app = app_sweeping_every_second(db).await;
    let (tenant, key, endpoint) = endpoint_with_a_running_actor(&app, &receiver).await;

    // The router still believes the endpoint active, as while a disable's
    // write commits ahead of a publish's.
    set_status_behind_the_back(database(&app), &endpoint, "disabled");
    let event = app
        .publish_event(&key, &tenant, "a.b", json!({"n": 1}))
        .await;
    let delivery = delivery_of(&app, &key, &tenant, &event).await;
    assert_eq!(delivery["state"], json!("held"), "{delivery}");

    // Enabled behind its back as well: the sweep reloads the endpoint, whose
    // load replays the held delivery.
    set_status_behind_the_back(database(&app), &endpoint, "active");
    let requests = receiver.wait_for_count(2, RESCUED_WITHIN).await;
    assert_eq!(requests[1].header("webhook-id"), Some(event.as_str()));
}

async fn a_publish_after_an_enable_the_router_missed_is_sent(db: TestDb) {
    let receiver = Receiver::start();
    let app = app_sweeping_every_second(db).await;
    let (tenant, key, endpoint) = endpoint_with_a_running_actor(&app, &receiver).await;
    let disabled = app.disable_endpoint(&key, &tenant, &endpoint).await;
    assert_eq!(disabled.status.as_u16(), 200, "{}", disabled.body);

    // An enable whose reply was lost: committed, but neither the router nor
    // the actor heard of it.
    set_status_behind_the_back(database(&app), &endpoint, "active");
    let event = app
        .publish_event(&key, &tenant, "a.b", json!({"n": 1}))
        .await;
    let delivery = delivery_of(&app, &key, &tenant, &event).await;
    assert_ne!(delivery["state"], json!("held"), "{delivery}");

    let requests = receiver.wait_for_count(2, RESCUED_WITHIN).await;
    assert_eq!(requests[1].header("webhook-id"), Some(event.as_str()));
}
