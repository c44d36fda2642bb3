//! A database that keeps refusing the writes of attempts' results does not
//! make deliveries go out again and again: the endpoint tries the write a
//! few times with backoff, then reloads what the database holds instead of
//! sending from memory; once writes succeed again every delivery settles.

use std::time::Duration;

use crate::common::{spawn_app, Receiver, TestDb};
use serde_json::json;

backend_tests!(a_database_refusing_attempt_writes_does_not_make_deliveries_repeat);

/// Events published while attempts cannot be recorded.
const EVENTS: usize = 3;

fn refuse_attempt_writes(db: &TestDb) {
    db.execute_sql(match db.backend() {
        "sqlite" => {
            "CREATE TRIGGER refuse_attempts BEFORE INSERT ON attempts \
             BEGIN SELECT RAISE(ABORT, 'attempts are read-only'); END"
        }
        _ => {
            "CREATE FUNCTION refuse_attempts() RETURNS trigger AS $$ \
             BEGIN RAISE EXCEPTION 'attempts are read-only'; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER refuse_attempts BEFORE INSERT ON attempts \
             FOR EACH ROW EXECUTE FUNCTION refuse_attempts()"
        }
    });
}

fn accept_attempt_writes(db: &TestDb) {
    db.execute_sql(match db.backend() {
        "sqlite" => "DROP TRIGGER refuse_attempts",
        _ => "DROP TRIGGER refuse_attempts ON attempts; DROP FUNCTION refuse_attempts()",
    });
}

async fn a_database_refusing_attempt_writes_does_not_make_deliveries_repeat(db: TestDb) {
    let receiver = Receiver::start();
    let app = spawn_app(db).await;
    let database = app
        .db
        .as_ref()
        .expect("an in-process app keeps its database");
    let (tenant, key) = app.create_tenant("acme").await;
    // A spent schedule: before, a failed write sent such a delivery again
    // every second.
    app.create_endpoint(
        &key,
        &tenant,
        json!({"url": receiver.url(), "retry_schedule": []}),
    )
    .await;

    refuse_attempt_writes(database);
    let events = app.publish_events(&key, &tenant, "a.b", EVENTS).await;
    receiver
        .wait_for_count(EVENTS, Duration::from_secs(20))
        .await;
    // The write is tried again for 15 s before the endpoint reloads: no
    // delivery goes out a second time meanwhile.
    receiver
        .assert_nothing_more_arrives(
            EVENTS,
            Duration::from_secs(8),
            "no delivery goes out again while the attempt writes fail",
        )
        .await;

    accept_attempt_writes(database);
    for event in &events {
        let delivery = app.single_delivery_id(&key, &tenant, event).await;
        app.wait_for_delivery_state(
            &key,
            &tenant,
            &delivery,
            "succeeded",
            Duration::from_secs(60),
        )
        .await;
    }
    // Each was sent again at most once: by the reload that followed the
    // failed writes.
    assert!(
        receiver.count() <= 2 * EVENTS,
        "{:?}",
        receiver.webhook_ids()
    );
}
