//! The database going away and coming back is survived without a restart:
//! while it is away, writes answer 503 with Retry-After (never 500) and
//! `/healthz` answers 503; once it is back, publishing and `/healthz`
//! recover within seconds and every accepted event is delivered. A publish
//! racing the deletion of its endpoint is accepted, never a 5xx.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{
    id_of, spawn_app, spawn_app_with_acme_endpoint, wait_for_webhook_ids, wait_until, ApiResponse,
    Receiver, TestApp, TestDb, DELIVERY_TIMEOUT,
};
use reqwest::{Method, StatusCode};
use serde_json::json;

backend_tests!(publishes_racing_the_deletion_of_their_endpoint_are_accepted);

/// How long the service may take to commit again once the database is back.
const RECOVERY: Duration = Duration::from_secs(15);

/// Concurrent publishers of the background load.
const PUBLISHERS: usize = 4;

/// Upper bound of events each publisher sends, so a stuck test stays small.
const MAX_EVENTS_PER_PUBLISHER: usize = 400;

/// What the background load was answered.
#[derive(Default)]
struct Answers {
    /// Ids of the events answered 202, with when the answer came.
    accepted: Vec<(String, Instant)>,
    /// Every 503 answer.
    unavailable: Vec<ApiResponse>,
    /// Anything else: must stay empty.
    unexpected: Vec<ApiResponse>,
}

impl Answers {
    fn record(&mut self, id: String, answer: ApiResponse) {
        match answer.status {
            StatusCode::ACCEPTED => self.accepted.push((id, Instant::now())),
            StatusCode::SERVICE_UNAVAILABLE => self.unavailable.push(answer),
            _ => self.unexpected.push(answer),
        }
    }

    fn accepted_since(&self, since: Instant) -> usize {
        self.accepted.iter().filter(|(_, at)| *at > since).count()
    }
}

/// Publishers that publish one event after another until stopped.
struct Load {
    answers: Arc<Mutex<Answers>>,
    stop: Arc<AtomicBool>,
    publishers: Vec<actix_rt::task::JoinHandle<()>>,
}

impl Load {
    fn start(app: &TestApp, key: &str, tenant: &str) -> Load {
        let answers = Arc::new(Mutex::new(Answers::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let publishers = (0..PUBLISHERS)
            .map(|publisher| {
                let app = TestApp::connect(&app.address, &app.admin_key);
                let (key, tenant) = (key.to_string(), tenant.to_string());
                let (answers, stop) = (Arc::clone(&answers), Arc::clone(&stop));
                actix_rt::spawn(async move {
                    for n in 0..MAX_EVENTS_PER_PUBLISHER {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let id = format!("evt_load_{publisher}_{n}");
                        let body = json!({"type": "load.tick", "id": id, "payload": {"n": n}});
                        let answer = app.publish(&key, &tenant, &body).await;
                        answers.lock().expect("answers lock").record(id, answer);
                        actix_rt::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            })
            .collect();
        Load {
            answers,
            stop,
            publishers,
        }
    }

    fn accepted_since(&self, since: Instant) -> usize {
        self.answers
            .lock()
            .expect("answers lock")
            .accepted_since(since)
    }

    /// Waits until `n` more events than before `since` were accepted.
    async fn wait_for_accepted_since(&self, since: Instant, n: usize, timeout: Duration) {
        wait_until(timeout, || async {
            let accepted = self.accepted_since(since);
            if accepted >= n {
                Ok(())
            } else {
                Err(format!("{n} publishes accepted, {accepted} so far"))
            }
        })
        .await;
    }

    /// Stops the publishers and returns what they were answered.
    async fn stop(self) -> Answers {
        self.stop.store(true, Ordering::Relaxed);
        for publisher in self.publishers {
            publisher.await.expect("a publisher panicked");
        }
        std::mem::take(&mut *self.answers.lock().expect("answers lock"))
    }
}

async fn healthz(app: &TestApp) -> ApiResponse {
    app.send(Method::GET, "/healthz", None, &[], None).await
}

/// A 503 tells the client to come back: problem+json and Retry-After.
fn assert_retry_later(answer: &ApiResponse, context: &str) {
    answer.assert_problem(503, context);
    let seconds: u64 = answer
        .retry_after
        .as_deref()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("{context}: 503 without Retry-After seconds: {answer:?}"));
    assert!(
        (1..=60).contains(&seconds),
        "{context}: Retry-After of {seconds} s"
    );
}

/// Checks the load's answers and that every accepted event reached the
/// receiver at least once.
async fn assert_nothing_lost(answers: &Answers, receiver: &Receiver) {
    assert!(
        answers.unexpected.is_empty(),
        "publishes must answer 202 or 503, got {:?}",
        answers.unexpected
    );
    for answer in &answers.unavailable {
        assert_retry_later(answer, "publish while the database is away");
    }
    let accepted: Vec<&str> = answers.accepted.iter().map(|(id, _)| id.as_str()).collect();
    // Attempts whose result could not be recorded are retried after at
    // least a second: allow for a few rounds of that.
    let what = "every accepted event delivered";
    wait_for_webhook_ids(&[receiver], &accepted, DELIVERY_TIMEOUT + RECOVERY, what).await;
}

/// hookrelay on `db` with tenant `acme`, an endpoint of it on a receiver,
/// and publishers running, once `accepted` of their events were accepted:
/// where the outage scenarios start. Returns the application, the receiver,
/// the key, the tenant and the load.
async fn app_under_load(db: TestDb, accepted: usize) -> (TestApp, Receiver, String, String, Load) {
    let receiver = Receiver::start();
    let (app, tenant, key) = spawn_app_with_acme_endpoint(db, receiver.url()).await;
    let load = Load::start(&app, &key, &tenant);
    load.wait_for_accepted_since(Instant::now(), accepted, DELIVERY_TIMEOUT)
        .await;
    (app, receiver, key, tenant, load)
}

#[actix_rt::test]
async fn terminated_connections_are_replaced_under_publishing_load() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let (app, receiver, _, _, load) = app_under_load(db, 20).await;

    let db = app.db.as_ref().expect("the app holds its database");
    for round in 1..=2 {
        let terminated = db.terminate_connections();
        assert!(
            terminated > 0,
            "round {round}: the service had no connection"
        );
        let after = Instant::now();
        load.wait_for_accepted_since(after, 20, RECOVERY).await;
    }

    let answers = load.stop().await;
    wait_until(RECOVERY, || async {
        healthz(&app).await.status == StatusCode::OK
    })
    .await;
    assert_nothing_lost(&answers, &receiver).await;
}

#[actix_rt::test]
async fn a_database_refusing_connections_gets_503s_until_it_is_back() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let (app, receiver, key, tenant, load) = app_under_load(db, 10).await;

    let db = app.db.as_ref().expect("the app holds its database");
    db.allow_connections(false);
    db.terminate_connections();
    wait_until(RECOVERY, || async {
        let answers = load.answers.lock().expect("answers lock");
        !answers.unavailable.is_empty()
    })
    .await;
    let health = wait_until(RECOVERY, || async {
        let health = healthz(&app).await;
        (health.status == StatusCode::SERVICE_UNAVAILABLE).then_some(health)
    })
    .await;
    assert_retry_later(&health, "/healthz while the database refuses connections");
    let direct = app
        .publish(
            &key,
            &tenant,
            &json!({"type": "load.tick", "payload": {"direct": true}}),
        )
        .await;
    assert_retry_later(&direct, "publish while the database refuses connections");

    db.allow_connections(true);
    let back = Instant::now();
    load.wait_for_accepted_since(back, 20, RECOVERY).await;
    wait_until(RECOVERY, || async {
        healthz(&app).await.status == StatusCode::OK
    })
    .await;

    let answers = load.stop().await;
    assert_nothing_lost(&answers, &receiver).await;
}

/// Many publishes in flight while their only endpoint is deleted: each is
/// accepted (with or without a delivery), none fails.
async fn publishes_racing_the_deletion_of_their_endpoint_are_accepted(db: TestDb) {
    let app = spawn_app(db).await;
    let receiver = Receiver::start();
    let (tenant, key) = app.create_tenant("acme").await;
    for round in 0..3 {
        let endpoint = id_of(
            &app.create_endpoint(&key, &tenant, json!({"url": receiver.url()}))
                .await,
        );
        let publishes = (0..30).map(|n| {
            let body = json!({"type": "race.tick", "payload": {"round": round, "n": n}});
            let (app, key, tenant) = (&app, &key, &tenant);
            async move { app.publish(key, tenant, &body).await }
        });
        let deletion = async {
            actix_rt::time::sleep(Duration::from_millis(5)).await;
            app.delete(&key, &format!("/v1/tenants/{tenant}/endpoints/{endpoint}"))
                .await
        };
        let (answers, deleted) =
            futures_util::future::join(futures_util::future::join_all(publishes), deletion).await;
        assert_eq!(
            deleted.status,
            StatusCode::NO_CONTENT,
            "round {round}: delete: {}",
            deleted.body
        );
        for answer in answers {
            assert_eq!(
                answer.status,
                StatusCode::ACCEPTED,
                "round {round}: a publish racing the deletion: {}",
                answer.body
            );
            let deliveries = answer.body["deliveries"].as_u64();
            assert!(
                matches!(deliveries, Some(0 | 1)),
                "round {round}: at most the deleted endpoint's delivery: {}",
                answer.body
            );
        }
    }
}
