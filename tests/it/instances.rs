//! Instances side by side. SQLite serves one: a second `hookrelay serve`
//! or a `hookrelay migrate` on a file that a running instance serves
//! refuses, naming the file and the instance, instead of sending every
//! delivery a second time; a killed instance leaves the file free for the
//! next. Instances starting together on one PostgreSQL database migrate it
//! once between them, generate one admin key between them, hold a tenant
//! to its caps whichever instance each request reaches, and a key revoked
//! or a catalog changed through one takes effect on the others within a
//! second. Every attempt records the instance that made it, and names it in
//! a header only when asked to.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{
    spawn_app_with, spawn_piped, wait_until, ReceivedRequest, Receiver, RestartableApp, Service,
    TestApp, TestDb, DELIVERY_TIMEOUT,
};
use hookrelay::store::Store;
use reqwest::StatusCode;
use serde_json::json;

backend_tests!(every_attempt_records_its_instance_and_names_it_only_when_asked);

async fn every_attempt_records_its_instance_and_names_it_only_when_asked(db: TestDb) {
    let (app, received) = deliver_one_event(db, |settings| {
        settings.instance_id = Some("it-instance-7".to_owned());
    })
    .await;
    assert_eq!(
        received.header("hookrelay-instance"),
        None,
        "off by default"
    );
    let db = app
        .db
        .as_ref()
        .expect("an in-process app keeps its database");
    let recorded =
        || db.count_sql("SELECT count(*) AS n FROM attempts WHERE instance = 'it-instance-7'");
    wait_until(DELIVERY_TIMEOUT, || async { recorded() == 1 }).await;
}

#[actix_rt::test]
async fn with_the_instance_header_on_a_request_names_its_instance() {
    let (_app, received) = deliver_one_event(TestDb::sqlite(), |settings| {
        settings.instance_id = Some("it-instance-8".to_owned());
        settings.send_instance_header = true;
    })
    .await;
    assert_eq!(received.header("hookrelay-instance"), Some("it-instance-8"));
}

/// Starts an instance on `db` configured by `configure`, and publishes one
/// event to a receiver: the instance and the request the receiver got.
async fn deliver_one_event(
    db: TestDb,
    configure: impl FnOnce(&mut hookrelay::config::Settings),
) -> (TestApp, ReceivedRequest) {
    let app = spawn_app_with(db, configure).await;
    let receiver = Receiver::start();
    let (tenant, key, _) = app
        .create_tenant_with_endpoint(json!({"url": receiver.url()}))
        .await;
    let event = json!({"type": "invoice.paid", "payload": {"invoice": "in_1"}});
    app.publish_accepted(&key, &tenant, &event).await;
    let received = receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    (app, received[0].clone())
}

/// How long a refused start may take before the test calls it a hang.
const REFUSAL_BOUND: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_second_instance_on_a_served_sqlite_file_is_refused_until_the_first_dies() {
    let db = TestDb::sqlite();
    let file = db.url().trim_start_matches("sqlite://").to_owned();
    let mut first = Service::start_with(
        db.url(),
        "first instance",
        &[("HOOKRELAY_INSTANCE_ID", "first-instance")],
    )
    .await;

    let mut second = Service::command(db.url());
    second.env("HOOKRELAY_INSTANCE_ID", "second-instance");
    let refused = run_bounded(second).await;
    assert_refused_naming(&refused, &file, "serve");

    let mut migrate = Command::new(env!("CARGO_BIN_EXE_hookrelay"));
    migrate.arg("migrate").env("DATABASE_URL", db.url());
    let refused = run_bounded(migrate).await;
    assert_refused_naming(&refused, &file, "migrate");

    // A crash frees the file: the kernel drops the dead process's lock.
    first.kill();
    let restarted = Service::start_with(
        db.url(),
        "second instance",
        &[("HOOKRELAY_INSTANCE_ID", "second-instance")],
    )
    .await;
    drop(restarted);
}

#[tokio::test]
async fn instances_starting_together_on_a_fresh_postgresql_database_all_migrate_it() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url().to_owned();
            std::thread::spawn(move || Store::open(&url).map(drop).map_err(|e| e.to_string()))
        })
        .collect();
    for start in starts {
        let opened = start.join().expect("the start does not panic");
        assert_eq!(opened, Ok(()), "every instance starts");
    }
}

#[actix_rt::test]
async fn instances_starting_together_without_an_admin_key_generate_one_between_them() {
    // The race is narrow: a few rounds make a regression show.
    for _ in 0..3 {
        let Some(db) = TestDb::postgres() else {
            return;
        };
        let started = futures_util::future::join_all((0..4).map(|n| {
            RestartableApp::start(db.url(), move |settings| {
                settings.admin_key = None;
                settings.instance_id = Some(format!("it-{n}"));
            })
        }))
        .await;
        let admin_keys = db.count_sql("SELECT count(*) AS n FROM api_keys WHERE tenant_id IS NULL");
        assert_eq!(
            admin_keys, 1,
            "one admin key is generated, whichever instance starts first"
        );
        for instance in started {
            instance.stop().await;
        }
    }
}

/// A tenant key's in-flight cap: two endpoints at 16 fit, a third does not.
const IN_FLIGHT_CAP: u64 = 40;

#[actix_rt::test]
async fn creates_racing_through_two_instances_never_take_a_tenant_past_its_cap() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let with_cap = |settings: &mut hookrelay::config::Settings| {
        settings.tenant_max_in_flight_total = IN_FLIGHT_CAP
    };
    let (first, second) = two_instances(&db, with_cap).await;
    // The race is narrow: a tenant a round makes a regression show.
    for round in 0..3 {
        let (tenant, key) = first.app.create_tenant(&format!("acme-{round}")).await;
        let path = format!("/v1/tenants/{tenant}/endpoints");
        let body = json!({"url": "http://127.0.0.1:9/hook", "max_in_flight": 16});
        let answers = futures_util::future::join_all((0..6).map(|n| {
            let instance = if n % 2 == 0 { &first } else { &second };
            instance.app.post(&key, &path, &body)
        }))
        .await;
        let created = answers
            .iter()
            .filter(|a| a.status == StatusCode::CREATED)
            .count();
        assert_eq!(created, 2, "round {round}: {answers:?}");
        let in_flight = db.count_sql(&format!(
            "SELECT COALESCE(SUM(max_in_flight), 0) AS n FROM endpoints WHERE tenant_id = '{tenant}'"
        ));
        assert_eq!(in_flight, 32, "round {round}");
    }
    second.stop().await;
    first.stop().await;
}

/// How long after a change through one instance (a key revoked, a type
/// declared) the others may still act on what they remember: the check
/// interval (500 ms) and a query.
const CHANGE_BOUND: Duration = Duration::from_secs(1);
/// What a busy test machine may add to the requests and the check.
const LOADED_MACHINE_SLACK: Duration = Duration::from_secs(2);

#[actix_rt::test]
async fn a_key_revoked_through_one_instance_is_refused_by_the_other_within_a_second() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let (first, second) = two_instances(&db, |_| {}).await;
    let (tenant, key) = first.app.create_tenant("acme").await;
    let created = first
        .app
        .post(
            &key,
            &format!("/v1/tenants/{tenant}/api-keys"),
            &json!({"name": "ci"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let (ci_key, ci_id) = (
        created.body["key"].as_str().unwrap_or_default().to_owned(),
        created.body["id"].as_str().unwrap_or_default().to_owned(),
    );
    let endpoints = format!("/v1/tenants/{tenant}/endpoints");
    // The second instance takes the key, and so remembers it.
    let taken = second.app.get(&ci_key, &endpoints).await;
    assert_eq!(taken.status, StatusCode::OK, "{}", taken.body);

    let revoked = first
        .app
        .delete(&key, &format!("/v1/tenants/{tenant}/api-keys/{ci_id}"))
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    // Without the check, the key would be taken until its memory expires
    // (a minute).
    assert_seen_within_change_bound("the revocation", || async {
        second.app.get(&ci_key, &endpoints).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    second.stop().await;
    first.stop().await;
}

#[actix_rt::test]
async fn a_catalog_change_through_one_instance_reaches_the_others_publishing_within_a_second() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let (first, second) = two_instances(&db, |_| {}).await;
    let (tenant, key) = first.app.create_tenant("acme").await;
    let strict = first
        .app
        .patch(
            &first.app.admin_key,
            &format!("/v1/tenants/{tenant}"),
            &json!({"reject_unknown_event_types": true}),
        )
        .await;
    assert_eq!(strict.status, StatusCode::OK, "{}", strict.body);
    let event = json!({"type": "invoice.paid", "payload": {"invoice": "in_1"}});
    // The second instance reads (and remembers) the tenant's rule: an
    // undeclared type is refused.
    let refused = second.app.publish(&key, &tenant, &event).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );

    let declared = first
        .app
        .post(
            &key,
            &format!("/v1/tenants/{tenant}/event-types"),
            &json!({"name": "invoice.paid"}),
        )
        .await;
    assert_eq!(declared.status, StatusCode::CREATED, "{}", declared.body);
    // Without the check the second instance would refuse it until restarted.
    assert_seen_within_change_bound("the declaration", || async {
        second.app.publish(&key, &tenant, &event).await.status == StatusCode::ACCEPTED
    })
    .await;
    second.stop().await;
    first.stop().await;
}

/// Two in-process instances on `db`, both configured by `configure`.
async fn two_instances(
    db: &TestDb,
    configure: impl Fn(&mut hookrelay::config::Settings) + Copy,
) -> (RestartableApp, RestartableApp) {
    let first = RestartableApp::start(db.url(), |settings| {
        configure(settings);
        settings.instance_id = Some("it-first".to_owned());
    })
    .await;
    let second = RestartableApp::start(db.url(), |settings| {
        configure(settings);
        settings.instance_id = Some("it-second".to_owned());
    })
    .await;
    (first, second)
}

/// Waits until `seen` (the other instance acting on `change`, just made)
/// holds, and asserts it did within [`CHANGE_BOUND`] and the slack of a
/// loaded machine.
async fn assert_seen_within_change_bound<F, Fut>(change: &str, seen: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let changed_at = Instant::now();
    wait_until(Duration::from_secs(10), seen).await;
    let took = changed_at.elapsed();
    assert!(
        took <= CHANGE_BOUND + LOADED_MACHINE_SLACK,
        "seen {took:?} after {change}"
    );
}

fn assert_refused_naming(refused: &Output, file: &str, command: &str) {
    let log = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "{command} on a served file fails: {log}"
    );
    assert!(log.contains(file), "{command} names the file: {log}");
    assert!(
        log.contains("first-instance"),
        "{command} names the instance serving it: {log}"
    );
    assert!(
        log.contains("one instance at a time"),
        "{command} says why: {log}"
    );
}

/// Runs `command` to its end, failing the test if it is still running
/// after [`REFUSAL_BOUND`] (a second instance that serves would never end).
async fn run_bounded(mut command: Command) -> Output {
    let mut child = spawn_piped(&mut command);
    let started = Instant::now();
    loop {
        match child.try_wait().expect("poll the child") {
            Some(_) => return child.wait_with_output().expect("collect its output"),
            None if started.elapsed() > REFUSAL_BOUND => {
                let _ = child.kill();
                let output = child.wait_with_output().expect("collect its output");
                panic!(
                    "still running after {REFUSAL_BOUND:?}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
