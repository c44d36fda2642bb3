//! Retention (issue 8): the sweep deletes old finished deliveries with
//! their attempts, and old events no delivery refers to; it never touches
//! a pending or held delivery, and delivery goes on while it runs. Old rows
//! are written straight into the database with old timestamps, so the
//! real day-based settings are what is tested.

use crate::common::{
    assert_throughout, id_of, refused_url, spawn_app_with, unix_now, wait_until, Receiver, TestApp,
    TestDb, DELIVERY_TIMEOUT,
};
use serde_json::json;
use std::time::Duration;

backend_tests!(
    old_finished_deliveries_go_with_their_attempts_and_everything_else_stays,
    delivery_goes_on_while_a_sweep_deletes_thousands_of_rows,
);

const TENANT: &str = "acme";
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

// ---------------------------------------------------------------------------
// Direct database access
// ---------------------------------------------------------------------------

fn database(app: &TestApp) -> &TestDb {
    app.db
        .as_ref()
        .expect("an in-process app keeps its database")
}

fn now_ms() -> i64 {
    unix_now() * 1000
}

/// An event of the tenant created at `created_at` (ms).
fn event_row(id: &str, created_at: i64) -> String {
    format!("('{TENANT}', '{id}', 'invoice.paid', '{{}}', NULL, {created_at})")
}

/// A delivery to `endpoint` of `event`, last changed at `updated_at`.
fn delivery_row(
    id: &str,
    event: &str,
    endpoint: &str,
    state: &str,
    next_attempt_at: Option<i64>,
    updated_at: i64,
) -> String {
    let next = next_attempt_at.map_or("NULL".to_owned(), |at| at.to_string());
    format!(
        "('{id}', '{TENANT}', '{event}', '{endpoint}', '{state}', 1, {next}, {updated_at}, {updated_at})"
    )
}

fn attempt_row(delivery: &str, endpoint: &str, started_at: i64) -> String {
    format!(
        "('att_{delivery}', '{delivery}', 1, {started_at}, 12, 200, NULL, NULL, NULL, NULL, '{endpoint}')"
    )
}

fn insert(db: &TestDb, events: &[String], deliveries: &[String], attempts: &[String]) {
    let mut sql = String::new();
    if !events.is_empty() {
        sql += &format!(
            "INSERT INTO events (tenant_id, id, event_type, body, idempotency_key, created_at) VALUES {};",
            events.join(", ")
        );
    }
    if !deliveries.is_empty() {
        sql += &format!(
            "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, state, attempt_count, next_attempt_at, created_at, updated_at) VALUES {};",
            deliveries.join(", ")
        );
    }
    if !attempts.is_empty() {
        sql += &format!(
            "INSERT INTO attempts (id, delivery_id, attempt, started_at, duration_ms, status_code, response_headers, response_body, error_kind, error_message, endpoint_id) VALUES {};",
            attempts.join(", ")
        );
    }
    db.execute_sql(&sql);
}

/// `ids` as an SQL list of string literals: `'a', 'b'`.
fn sql_list(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn deliveries_named(db: &TestDb, ids: &[&str]) -> i64 {
    let list = sql_list(ids);
    db.count_sql(&format!(
        "SELECT COUNT(*) AS n FROM deliveries WHERE id IN ({list})"
    ))
}

fn attempts_of(db: &TestDb, ids: &[&str]) -> i64 {
    let list = sql_list(ids);
    db.count_sql(&format!(
        "SELECT COUNT(*) AS n FROM attempts WHERE delivery_id IN ({list})"
    ))
}

fn event_exists(db: &TestDb, id: &str) -> bool {
    db.count_sql(&format!(
        "SELECT COUNT(*) AS n FROM events WHERE tenant_id = '{TENANT}' AND id = '{id}'"
    )) == 1
}

fn state_of(db: &TestDb, id: &str, state: &str) -> bool {
    db.count_sql(&format!(
        "SELECT COUNT(*) AS n FROM deliveries WHERE id = '{id}' AND state = '{state}'"
    )) == 1
}

/// A sweep every second, on the default windows (30 days for succeeded
/// deliveries, 90 for failed and cancelled ones).
async fn app_sweeping_every_second(db: TestDb) -> TestApp {
    spawn_app_with(db, |settings| settings.retention_interval_seconds = 1).await
}

/// An application sweeping every second, with [`TENANT`] and one endpoint
/// of it on a receiver; returns the application, the receiver, the
/// tenant's key and the endpoint's id.
async fn app_with_an_endpoint(db: TestDb) -> (TestApp, Receiver, String, String) {
    let app = app_sweeping_every_second(db).await;
    let receiver = Receiver::start();
    let (_, key) = app.create_tenant(TENANT).await;
    let body = json!({"url": receiver.url()});
    let endpoint = id_of(&app.create_endpoint(&key, TENANT, body).await);
    (app, receiver, key, endpoint)
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

async fn old_finished_deliveries_go_with_their_attempts_and_everything_else_stays(db: TestDb) {
    let (app, receiver, key, live) = app_with_an_endpoint(db).await;
    // Its deliveries stay pending, due far in the future: never attempted.
    let waiting = id_of(
        &app.create_endpoint(
            &key,
            TENANT,
            json!({"url": refused_url(), "event_types": ["never.published"]}),
        )
        .await,
    );
    let disabled = id_of(
        &app.create_endpoint(
            &key,
            TENANT,
            json!({"url": receiver.url(), "event_types": ["never.published"]}),
        )
        .await,
    );
    let answer = app.disable_endpoint(&key, TENANT, &disabled).await;
    assert!(answer.status.is_success(), "disable: {}", answer.body);

    // A young event delivered through the API.
    let young_event = app
        .publish_event(&key, TENANT, "invoice.paid", json!({}))
        .await;
    receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    let young_delivery = app.single_delivery_id(&key, TENANT, &young_event).await;
    app.wait_for_delivery_state(&key, TENANT, &young_delivery, "succeeded", DELIVERY_TIMEOUT)
        .await;

    let now = now_ms();
    let ago = |days: i64| now - days * DAY_MS;
    let db = database(&app);
    insert(
        db,
        &[
            event_row("evt_old_finished", ago(200)),
            event_row("evt_old_kept", ago(200)),
            event_row("evt_old_alone", ago(91)),
            event_row("evt_young_alone", ago(89)),
        ],
        &[
            // Due for deletion.
            delivery_row(
                "dlv_succeeded_31d",
                "evt_old_finished",
                &live,
                "succeeded",
                None,
                ago(31),
            ),
            delivery_row(
                "dlv_failed_91d",
                "evt_old_finished",
                &live,
                "failed",
                None,
                ago(91),
            ),
            delivery_row(
                "dlv_cancelled_91d",
                "evt_old_finished",
                &live,
                "cancelled",
                None,
                ago(91),
            ),
            // Too young for their rule.
            delivery_row(
                "dlv_succeeded_29d",
                "evt_old_kept",
                &live,
                "succeeded",
                None,
                ago(29),
            ),
            delivery_row(
                "dlv_failed_89d",
                "evt_old_kept",
                &live,
                "failed",
                None,
                ago(89),
            ),
            delivery_row(
                "dlv_cancelled_60d",
                "evt_old_kept",
                &live,
                "cancelled",
                None,
                ago(60),
            ),
            // Unfinished: kept whatever their age.
            delivery_row(
                "dlv_pending_400d",
                "evt_old_kept",
                &waiting,
                "pending",
                Some(now + 30 * DAY_MS),
                ago(400),
            ),
            delivery_row(
                "dlv_held_400d",
                "evt_old_kept",
                &disabled,
                "held",
                None,
                ago(400),
            ),
        ],
        &[
            attempt_row("dlv_succeeded_31d", &live, ago(31)),
            attempt_row("dlv_failed_91d", &live, ago(91)),
            attempt_row("dlv_cancelled_91d", &live, ago(91)),
            attempt_row("dlv_succeeded_29d", &live, ago(29)),
            attempt_row("dlv_failed_89d", &live, ago(89)),
            attempt_row("dlv_pending_400d", &waiting, ago(400)),
        ],
    );

    let due = ["dlv_succeeded_31d", "dlv_failed_91d", "dlv_cancelled_91d"];
    wait_until(DELIVERY_TIMEOUT, || async {
        let left = deliveries_named(db, &due);
        if left == 0 && !event_exists(db, "evt_old_finished") && !event_exists(db, "evt_old_alone")
        {
            Ok(())
        } else {
            Err(format!(
                "{left} old finished deliveries or their old events still stored"
            ))
        }
    })
    .await;
    assert_eq!(attempts_of(db, &due), 0, "their attempts went with them");

    let kept = [
        ("dlv_succeeded_29d", "succeeded"),
        ("dlv_failed_89d", "failed"),
        ("dlv_cancelled_60d", "cancelled"),
        ("dlv_pending_400d", "pending"),
        ("dlv_held_400d", "held"),
        (young_delivery.as_str(), "succeeded"),
    ];
    for (id, state) in kept {
        assert!(state_of(db, id, state), "{id} is kept, still {state}");
    }
    assert_eq!(
        attempts_of(
            db,
            &[
                "dlv_succeeded_29d",
                "dlv_failed_89d",
                "dlv_pending_400d",
                &young_delivery
            ]
        ),
        4,
        "the attempts of kept deliveries stay"
    );
    assert!(
        event_exists(db, "evt_old_kept"),
        "an old event with deliveries left stays"
    );
    assert!(
        event_exists(db, "evt_young_alone"),
        "an event without deliveries stays until the longer window has passed"
    );
    assert!(event_exists(db, &young_event));
    // What is kept stays kept: a few more sweeps change nothing.
    assert_throughout(
        Duration::from_millis(2500),
        "what is kept stays kept",
        || async {
            match kept.iter().find(|(id, state)| !state_of(db, id, state)) {
                None => Ok(()),
                Some((id, state)) => Err(format!("{id} is no longer kept, or no longer {state}")),
            }
        },
    )
    .await;
    // The API no longer shows what is gone.
    let gone = app
        .get(
            &key,
            &format!("/v1/tenants/{TENANT}/deliveries/dlv_failed_91d"),
        )
        .await;
    gone.assert_problem(404, "a deleted delivery");
}

async fn delivery_goes_on_while_a_sweep_deletes_thousands_of_rows(db: TestDb) {
    let (app, receiver, key, endpoint) = app_with_an_endpoint(db).await;

    // 2,500 old succeeded deliveries of 50 old events: three batches.
    let old = now_ms() - 40 * DAY_MS;
    let older_than_every_window = now_ms() - 100 * DAY_MS;
    let events: Vec<String> = (0..50)
        .map(|e| event_row(&format!("evt_bulk_{e}"), older_than_every_window))
        .collect();
    let deliveries: Vec<String> = (0..2500)
        .map(|d| {
            let event = format!("evt_bulk_{}", d % 50);
            delivery_row(
                &format!("dlv_bulk_{d}"),
                &event,
                &endpoint,
                "succeeded",
                None,
                old,
            )
        })
        .collect();
    let attempts: Vec<String> = (0..2500)
        .map(|d| attempt_row(&format!("dlv_bulk_{d}"), &endpoint, old))
        .collect();
    let db = database(&app);
    insert(db, &events, &deliveries, &attempts);

    // Publish until the sweep has deleted them all.
    let bulk_left =
        || db.count_sql("SELECT COUNT(*) AS n FROM deliveries WHERE id LIKE 'dlv_bulk_%'");
    let mut published = 0;
    let deadline = std::time::Instant::now() + DELIVERY_TIMEOUT;
    loop {
        app.publish_event(&key, TENANT, "invoice.paid", json!({"n": published}))
            .await;
        published += 1;
        if bulk_left() == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep did not delete the old deliveries in time ({} left)",
            bulk_left()
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.wait_for_count(published, DELIVERY_TIMEOUT).await;
    assert_eq!(
        db.count_sql("SELECT COUNT(*) AS n FROM attempts WHERE delivery_id LIKE 'dlv_bulk_%'"),
        0
    );
    wait_until(DELIVERY_TIMEOUT, || async {
        db.count_sql("SELECT COUNT(*) AS n FROM events WHERE id LIKE 'evt_bulk_%'") == 0
    })
    .await;
    // Every new delivery is stored and succeeded.
    wait_until(DELIVERY_TIMEOUT, || async {
        let succeeded = app.list_deliveries(&key, TENANT, "state=succeeded").await;
        if succeeded.len() == published {
            Ok(())
        } else {
            Err(format!("{} of {published} succeeded", succeeded.len()))
        }
    })
    .await;
}
