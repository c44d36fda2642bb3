//! Several instances on one PostgreSQL database: each endpoint is run by
//! the one instance that holds its lease. Every accepted event is delivered
//! and no delivery is attempted by two instances; the endpoints are spread
//! evenly; a killed instance's endpoints are taken over within the lease;
//! a stalled one that wakes up sends nothing more for what it lost and its
//! late writes change nothing; a status change made through an instance
//! that does not own the endpoint behaves as if there were one instance,
//! and its health view shows the owner's live state;
//! an instance with another secret key is refused.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{
    try_build_app, wait_until, Receiver, RestartableApp, Service, TenantEndpoint, TestApp, TestDb,
    ADMIN_KEY, DELIVERY_TIMEOUT,
};
use reqwest::StatusCode;
use serde_json::json;

/// The lease the tests run with (the shortest allowed), in seconds.
const LEASE_SECONDS: u64 = 3;
const LEASE: Duration = Duration::from_secs(LEASE_SECONDS);
/// What a busy test machine may add to a take-over.
const SLACK: Duration = Duration::from_secs(5);

fn with_lease(id: &'static str) -> impl FnOnce(&mut hookrelay::config::Settings) {
    move |settings| {
        settings.instance_id = Some(id.to_owned());
        settings.lease_seconds = LEASE_SECONDS;
    }
}

/// Endpoints held by `instance` under a live lease.
fn owned_by(db: &TestDb, instance: &str) -> i64 {
    db.count_sql(&format!(
        "SELECT count(*) AS n FROM endpoint_leases WHERE owner = '{instance}' \
         AND expires_at > (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
    ))
}

/// Deliveries whose attempts were made by more than one instance.
fn attempted_by_two(db: &TestDb) -> i64 {
    db.count_sql(
        "SELECT count(*) AS n FROM (SELECT delivery_id FROM attempts \
         GROUP BY delivery_id HAVING COUNT(DISTINCT instance) > 1) AS shared",
    )
}

/// Creates `count` endpoints of one tenant through `app`, all to `url`.
async fn endpoints(app: &TestApp, url: &str, count: usize) -> TenantEndpoint {
    let first = TenantEndpoint::create(app, json!({"url": url})).await;
    for _ in 1..count {
        app.create_endpoint(&first.key, &first.tenant, json!({"url": url}))
            .await;
    }
    first
}

#[actix_rt::test]
async fn three_instances_share_the_endpoints_and_deliver_every_event_once() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let ids = ["it-a", "it-b", "it-c"];
    let mut instances = Vec::new();
    for id in ids {
        instances.push(RestartableApp::start(db.url(), with_lease(id)).await);
    }
    let receiver = Receiver::start();
    let tenant = endpoints(&instances[0].app, &receiver.url(), 9).await;
    // Settled: each holds its share (3), give or take one.
    wait_until(LEASE * 4 + SLACK, || async {
        ids.iter().all(|id| (2..=4).contains(&owned_by(&db, id)))
            && ids.iter().map(|id| owned_by(&db, id)).sum::<i64>() == 9
    })
    .await;

    let events = 20;
    for n in 0..events {
        let through = &instances[n % 3].app;
        let event = json!({"type": "invoice.paid", "payload": {"n": n}});
        let (_, deliveries) = through
            .publish_accepted(&tenant.key, &tenant.tenant, &event)
            .await;
        assert_eq!(deliveries, 9);
    }
    receiver.wait_for_count(events * 9, DELIVERY_TIMEOUT).await;
    receiver
        .assert_nothing_more_arrives(events * 9, Duration::from_secs(1), "no second send")
        .await;
    assert_eq!(attempted_by_two(&db), 0, "no delivery attempted by two");
    let attempting = db.count_sql("SELECT count(DISTINCT instance) AS n FROM attempts");
    assert_eq!(attempting, 3, "every instance sends for its own endpoints");
    for instance in instances {
        instance.stop().await;
    }
}

#[actix_rt::test]
async fn a_status_change_through_an_instance_that_does_not_own_the_endpoint_acts_as_one() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let first = RestartableApp::start(db.url(), with_lease("it-first")).await;
    let second = RestartableApp::start(db.url(), with_lease("it-second")).await;
    let receiver = Receiver::start();
    // One at a time, so that the order of arrival is the order sent.
    let ep = TenantEndpoint::create(
        &first.app,
        json!({"url": receiver.url(), "max_in_flight": 1}),
    )
    .await;
    wait_until(LEASE * 2 + SLACK, || async {
        owned_by(&db, "it-first") + owned_by(&db, "it-second") == 1
    })
    .await;
    // Through the instance that does not own it.
    let other = if owned_by(&db, "it-first") == 1 {
        &second.app
    } else {
        &first.app
    };

    let disabled = ep.disable(other).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    let mut events = ep.publish_numbered(other, "evt_held", 3).await;
    receiver
        .assert_nothing_more_arrives(0, Duration::from_secs(1), "held while disabled")
        .await;
    let enabled = ep.enable(other, json!({"replay": "held"})).await;
    enabled.assert_ok_with(&[("/replayed", json!(3))]);
    events.extend(ep.publish_numbered(other, "evt_after", 2).await);
    receiver
        .wait_for_count(events.len(), DELIVERY_TIMEOUT)
        .await;
    assert_eq!(
        receiver.webhook_ids(),
        events,
        "held ones first, in order, then the new ones"
    );

    // A change of target made through it reaches the owner.
    let moved = Receiver::start();
    let patched = ep.patch(other, json!({"url": moved.url()})).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let after = ep.publish_numbered(other, "evt_moved", 1).await;
    moved.wait_for_count(1, DELIVERY_TIMEOUT).await;
    assert_eq!(moved.webhook_ids(), after);
    assert_eq!(
        receiver.count(),
        events.len(),
        "nothing more to the old URL"
    );
    second.stop().await;
    first.stop().await;
}

#[actix_rt::test]
async fn the_health_view_through_any_instance_shows_the_owners_live_state() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let first = RestartableApp::start(db.url(), with_lease("it-live-a")).await;
    let second = RestartableApp::start(db.url(), with_lease("it-live-b")).await;
    let receiver = Receiver::start();
    receiver.set_delay(Some(Duration::from_secs(5)));
    let ep = TenantEndpoint::create(&first.app, json!({"url": receiver.url()})).await;
    wait_until(LEASE * 2 + SLACK, || async {
        owned_by(&db, "it-live-a") + owned_by(&db, "it-live-b") == 1
    })
    .await;
    let (owner, other) = if owned_by(&db, "it-live-a") == 1 {
        (&first.app, &second.app)
    } else {
        (&second.app, &first.app)
    };
    ep.publish_numbered(other, "evt_live", 1).await;
    receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    // The attempt is in flight: only the owner's actor knows it (the
    // stored state says nothing is).
    for (app, which) in [(owner, "the owner"), (other, "another instance")] {
        let health = ep.health(app).await;
        assert_eq!(
            health["queue"]["in_flight"],
            json!(1),
            "through {which}: {health}"
        );
    }
    receiver.set_delay(None);
    second.stop().await;
    first.stop().await;
}

/// A real `hookrelay serve` on `db` with instance id `id` and the test lease.
async fn service(db: &TestDb, id: &'static str, label: &'static str) -> Service {
    let lease = LEASE_SECONDS.to_string();
    Service::start_with(
        db.url(),
        label,
        &[
            ("HOOKRELAY_INSTANCE_ID", id),
            ("HOOKRELAY_LEASE_SECONDS", &lease),
        ],
    )
    .await
}

fn signal(service: &Service, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &service.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill {signal}");
}

fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[actix_rt::test]
async fn a_killed_instances_endpoints_are_taken_over_within_the_lease() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let survivor = service(&db, "it-survivor", "survivor").await;
    let mut victim = service(&db, "it-victim", "victim").await;
    let api = TestApp::connect(&survivor.address, ADMIN_KEY);
    let receiver = Receiver::start();
    let tenant = endpoints(&api, &receiver.url(), 4).await;
    wait_until(LEASE * 4 + SLACK, || async {
        owned_by(&db, "it-victim") == 2 && owned_by(&db, "it-survivor") == 2
    })
    .await;

    victim.kill();
    let killed_at = unix_ms();
    let killed = Instant::now();
    let events = 5;
    for n in 0..events {
        let event = json!({"type": "invoice.paid", "payload": {"n": n}});
        api.publish_accepted(&tenant.key, &tenant.tenant, &event)
            .await;
    }
    receiver.wait_for_count(events * 4, DELIVERY_TIMEOUT).await;
    let took = killed.elapsed();
    assert!(took <= LEASE + SLACK, "taken over {took:?} after the kill");
    assert_eq!(owned_by(&db, "it-survivor"), 4);
    let late = db.count_sql(&format!(
        "SELECT count(*) AS n FROM attempts WHERE instance = 'it-victim' AND started_at >= {killed_at}"
    ));
    assert_eq!(late, 0, "nothing recorded under the dead instance");
    assert_eq!(attempted_by_two(&db), 0);
}

#[actix_rt::test]
async fn a_stalled_instance_sends_nothing_for_what_it_lost_and_its_late_writes_change_nothing() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let awake = service(&db, "it-awake", "awake").await;
    let stalled = service(&db, "it-stalled", "stalled").await;
    let api = TestApp::connect(&awake.address, ADMIN_KEY);
    let receiver = Receiver::start();
    let tenant = endpoints(&api, &receiver.url(), 4).await;
    wait_until(LEASE * 4 + SLACK, || async {
        owned_by(&db, "it-stalled") == 2 && owned_by(&db, "it-awake") == 2
    })
    .await;
    // Its attempts are in flight when it stops: the receiver answers late.
    receiver.set_delay(Some(Duration::from_secs(1)));
    let event = json!({"type": "invoice.paid", "payload": {"n": 0}});
    api.publish_accepted(&tenant.key, &tenant.tenant, &event)
        .await;
    wait_until(DELIVERY_TIMEOUT, || async { receiver.count() >= 4 }).await;
    db.execute_sql("CREATE TABLE epochs_before AS SELECT endpoint_id, epoch FROM endpoint_leases");
    signal(&stalled, "-STOP");
    let stopped_at = unix_ms();
    let recorded_before =
        db.count_sql("SELECT count(*) AS n FROM attempts WHERE instance = 'it-stalled'");
    // The other takes its endpoints over and delivers what it left.
    wait_until(LEASE + SLACK, || async { owned_by(&db, "it-awake") == 4 }).await;
    receiver.set_delay(None);
    let more = json!({"type": "invoice.paid", "payload": {"n": 1}});
    api.publish_accepted(&tenant.key, &tenant.tenant, &more)
        .await;
    wait_until(DELIVERY_TIMEOUT, || async {
        db.count_sql("SELECT count(*) AS n FROM deliveries WHERE state = 'succeeded'") == 8
    })
    .await;

    signal(&stalled, "-CONT");
    tokio::time::sleep(LEASE).await;
    let recorded_after =
        db.count_sql("SELECT count(*) AS n FROM attempts WHERE instance = 'it-stalled'");
    assert_eq!(
        recorded_after, recorded_before,
        "the woken instance's late results were refused"
    );
    let sent_late = db.count_sql(&format!(
        "SELECT count(*) AS n FROM attempts WHERE instance = 'it-stalled' AND started_at >= {stopped_at}"
    ));
    assert_eq!(sent_late, 0);
    // Back, it may take endpoints again, only under new epochs.
    let stale = db.count_sql(
        "SELECT count(*) AS n FROM endpoint_leases AS lease JOIN epochs_before AS before \
         USING (endpoint_id) WHERE lease.owner = 'it-stalled' AND lease.epoch <= before.epoch",
    );
    assert_eq!(stale, 0, "it holds nothing under an epoch it lost");
    let pending = db.count_sql("SELECT count(*) AS n FROM deliveries WHERE state <> 'succeeded'");
    assert_eq!(pending, 0, "every delivery succeeded");
    drop(awake);
}

#[actix_rt::test]
async fn an_instance_with_another_secret_key_is_refused() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let first = RestartableApp::start(db.url(), |settings| {
        settings.instance_id = Some("it-keyed".to_owned());
        settings.secret_key = Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned());
    })
    .await;
    let refused = try_build_app(db.url(), |settings| {
        settings.instance_id = Some("it-other-key".to_owned());
        settings.secret_key = Some("HxwdHhscGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=".to_owned());
    })
    .await
    .expect_err("refused");
    assert!(refused.contains("it-keyed"), "{refused}");
    assert!(refused.contains("HOOKRELAY_SECRET_KEY"), "{refused}");
    first.stop().await;
}

/// Publishes `count` events numbered from `from` through `api`, one at a
/// time; returns the ids accepted.
async fn publish_some(
    api: &TestApp,
    tenant: &TenantEndpoint,
    from: usize,
    count: usize,
) -> Vec<String> {
    let mut accepted = Vec::new();
    for n in from..from + count {
        let id = format!("evt_{n}");
        let event = json!({"id": id, "type": "invoice.paid", "payload": {"n": n}});
        if api
            .publish(&tenant.key, &tenant.tenant, &event)
            .await
            .status
            == StatusCode::ACCEPTED
        {
            accepted.push(id);
        }
    }
    accepted
}

/// Every id of `events` arrived `fanout` times, and nothing else arrived.
async fn assert_each_delivered_once(receiver: &Receiver, events: &[String], fanout: usize) {
    receiver
        .wait_for_count(events.len() * fanout, DELIVERY_TIMEOUT)
        .await;
    receiver
        .assert_nothing_more_arrives(
            events.len() * fanout,
            Duration::from_secs(1),
            "a second send",
        )
        .await;
    let mut arrived = receiver.webhook_ids();
    arrived.sort();
    let mut expected: Vec<String> = events
        .iter()
        .flat_map(|id| std::iter::repeat_n(id.clone(), fanout))
        .collect();
    expected.sort();
    assert_eq!(arrived, expected, "every accepted event, once per endpoint");
}

#[actix_rt::test]
async fn a_rolling_restart_loses_nothing_and_sends_nothing_twice() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let mut first = service(&db, "it-roll-1", "first").await;
    let mut second = service(&db, "it-roll-2", "second").await;
    let receiver = Receiver::start();
    let tenant = endpoints(
        &TestApp::connect(&first.address, ADMIN_KEY),
        &receiver.url(),
        4,
    )
    .await;
    wait_until(LEASE * 4 + SLACK, || async {
        owned_by(&db, "it-roll-1") == 2 && owned_by(&db, "it-roll-2") == 2
    })
    .await;
    let mut events = Vec::new();
    for round in 0..2 {
        // Stop one gracefully while publishing through the other, start
        // it again, then the same with the other.
        let (stopping, serving) = if round == 0 {
            (&mut first, &second)
        } else {
            (&mut second, &first)
        };
        let api = TestApp::connect(&serving.address, ADMIN_KEY);
        events.extend(publish_some(&api, &tenant, events.len(), 5).await);
        let (status, _) = stopping.terminate(Duration::from_secs(30)).await;
        assert!(status.success(), "a graceful stop: {status}");
        events.extend(publish_some(&api, &tenant, events.len(), 5).await);
        let id = if round == 0 { "it-roll-1" } else { "it-roll-2" };
        *stopping = service(&db, id, "restarted").await;
        events.extend(publish_some(&api, &tenant, events.len(), 5).await);
    }
    assert_eq!(events.len(), 30, "every publish accepted");
    assert_each_delivered_once(&receiver, &events, 4).await;
    assert_eq!(attempted_by_two(&db), 0);
}

#[actix_rt::test]
async fn instances_come_back_by_themselves_after_the_database_was_away() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let first = RestartableApp::start(db.url(), with_lease("it-away-1")).await;
    let second = RestartableApp::start(db.url(), with_lease("it-away-2")).await;
    let receiver = Receiver::start();
    let tenant = endpoints(&first.app, &receiver.url(), 4).await;
    wait_until(LEASE * 4 + SLACK, || async {
        owned_by(&db, "it-away-1") == 2 && owned_by(&db, "it-away-2") == 2
    })
    .await;
    let mut events = publish_some(&first.app, &tenant, 0, 5).await;
    receiver
        .wait_for_count(events.len() * 4, DELIVERY_TIMEOUT)
        .await;

    // Longer than a lease: both stop their actors and their leases expire.
    db.allow_connections(false);
    db.terminate_connections();
    tokio::time::sleep(LEASE * 2).await;
    db.allow_connections(true);

    wait_until(DELIVERY_TIMEOUT, || async {
        owned_by(&db, "it-away-1") + owned_by(&db, "it-away-2") == 4
    })
    .await;
    events.extend(publish_some(&second.app, &tenant, events.len(), 5).await);
    events.extend(publish_some(&first.app, &tenant, events.len(), 5).await);
    assert_each_delivered_once(&receiver, &events, 4).await;
    assert_eq!(attempted_by_two(&db), 0);
    second.stop().await;
    first.stop().await;
}
