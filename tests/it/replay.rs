//! Debugging and replaying deliveries: the filters of the delivery and
//! event lists, an endpoint's attempts, retrying a delivery, recovering the
//! failed deliveries of a time window, and testing an endpoint.

use crate::common::{
    refused_url, spawn_app, wait_until, ApiResponse, Receiver, RestartableApp, TestApp, TestDb,
    DELIVERY_TIMEOUT,
};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

backend_tests!(
    deliveries_and_events_are_filtered_by_type_time_and_status_class,
    an_endpoints_attempts_are_listed_newest_first_and_filtered,
    a_retry_makes_one_more_attempt_whatever_the_state,
    a_pending_delivery_settled_by_a_retry_is_not_sent_again,
    recover_queues_again_the_failed_and_cancelled_deliveries_of_a_window,
    an_endpoint_test_reports_the_outcome_of_its_ping,
    a_ping_cut_off_by_a_stop_is_sent_after_the_restart,
    the_new_routes_hide_other_tenants_and_refuse_bad_input,
);

/// Health limits that never get in the way: the breaker never opens and
/// the endpoint never disables itself, whatever fails.
fn patient(url: &str, retry_schedule: &[u32]) -> Value {
    json!({
        "url": url,
        "retry_schedule": retry_schedule,
        "breaker_failures": 100_000,
        "disable_after_failures": 100_000,
        "alert_thresholds": [],
    })
}

fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_string()
}

fn ids(items: &[Value]) -> HashSet<String> {
    items.iter().map(id_of).collect()
}

fn set(items: &[&String]) -> HashSet<String> {
    items.iter().map(|item| item.to_string()).collect()
}

/// A tenant as its own key sees it: what a scenario does with it, each
/// call asserting the answer it expects unless it returns the answer.
struct Tenant<'a> {
    app: &'a TestApp,
    id: String,
    key: String,
}

impl<'a> Tenant<'a> {
    async fn create(app: &'a TestApp, id: &str) -> Tenant<'a> {
        let (id, key) = app.create_tenant(id).await;
        Tenant { app, id, key }
    }

    fn path(&self, under_tenant: &str) -> String {
        format!("/v1/tenants/{}/{under_tenant}", self.id)
    }

    /// Creates an endpoint; returns its id.
    async fn endpoint(&self, body: Value) -> String {
        id_of(&self.app.create_endpoint(&self.key, &self.id, body).await)
    }

    /// Publishes an event of `event_type` (202 expected); returns its id.
    async fn publish(&self, event_type: &str) -> String {
        // Events of one batch and the next never share a millisecond.
        actix_rt::time::sleep(Duration::from_millis(3)).await;
        self.app
            .publish_accepted(
                &self.key,
                &self.id,
                &json!({"type": event_type, "payload": {"n": 1}}),
            )
            .await
            .0
    }

    /// The only delivery of `event`.
    async fn delivery_of(&self, event: &str) -> String {
        self.app
            .single_delivery_id(&self.key, &self.id, event)
            .await
    }

    async fn delivery(&self, delivery: &str) -> Value {
        self.app.get_delivery(&self.key, &self.id, delivery).await
    }

    async fn wait_for_state(&self, delivery: &str, state: &str) -> Value {
        self.app
            .wait_for_delivery_state(&self.key, &self.id, delivery, state, DELIVERY_TIMEOUT)
            .await
    }

    /// Waits until every delivery of `endpoint` satisfies `done`.
    async fn wait_for_deliveries<F>(&self, endpoint: &str, done: F)
    where
        F: Fn(&str, i64) -> bool,
    {
        wait_until(DELIVERY_TIMEOUT, || async {
            let states = self
                .app
                .delivery_states(&self.key, &self.id, endpoint)
                .await;
            if !states.is_empty() && states.iter().all(|(_, state, n)| done(state, *n)) {
                Ok(())
            } else {
                Err(format!("deliveries of {endpoint} to settle: {states:?}"))
            }
        })
        .await;
    }

    /// The `created_at` of an event, from the event list.
    async fn created_at(&self, event: &str) -> String {
        let events = self.first_page("events", "").await;
        let found = events
            .iter()
            .find(|e| e["id"] == json!(event))
            .unwrap_or_else(|| panic!("event {event} is not listed: {events:?}"));
        found["created_at"]
            .as_str()
            .expect("created_at")
            .to_string()
    }

    async fn first_page(&self, resource: &str, query: &str) -> Vec<Value> {
        self.app
            .first_page(&self.key, &self.id, resource, query)
            .await
    }

    /// The deliveries of these events to these endpoints.
    async fn deliveries_of(&self, endpoints: &[&String], events: &[&String]) -> HashSet<String> {
        let mut found = HashSet::new();
        for endpoint in endpoints {
            for delivery in self
                .app
                .list_deliveries(&self.key, &self.id, &format!("endpoint_id={endpoint}"))
                .await
            {
                let event = delivery["event_id"].as_str().unwrap_or_default();
                if events.iter().any(|e| e.as_str() == event) {
                    found.insert(id_of(&delivery));
                }
            }
        }
        found
    }

    /// Every item of a list, following `next` with pages of `limit`;
    /// asserts that no item shows up twice.
    async fn all_pages(&self, path_and_query: &str, limit: u32) -> Vec<Value> {
        let mut items: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path_and_query.contains('?') {
                '&'
            } else {
                '?'
            };
            let mut path = format!("{path_and_query}{sep}limit={limit}");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page = self.app.get_json(&self.key, &path).await;
            let data = page["data"].as_array().expect("data array").clone();
            assert!(
                data.len() <= limit as usize,
                "{path}: page too long: {page}"
            );
            items.extend(data);
            match page["next"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        let unique = ids(&items);
        assert_eq!(
            unique.len(),
            items.len(),
            "{path_and_query}: an item came twice"
        );
        items
    }

    /// The ids `GET …/{resource}?{query}` answers, read in pages of two.
    async fn listed(&self, resource: &str, query: &str) -> HashSet<String> {
        ids(&self
            .all_pages(&self.path(&format!("{resource}?{query}")), 2)
            .await)
    }

    async fn retry(&self, delivery: &str) -> ApiResponse {
        self.post(&format!("deliveries/{delivery}/retry"), &json!({}))
            .await
    }

    async fn recover(&self, endpoint: &str, body: &Value) -> ApiResponse {
        self.post(&format!("endpoints/{endpoint}/recover"), body)
            .await
    }

    async fn test(&self, endpoint: &str, body: &Value) -> ApiResponse {
        self.post(&format!("endpoints/{endpoint}/test"), body).await
    }

    async fn post(&self, under_tenant: &str, body: &Value) -> ApiResponse {
        self.app
            .post(&self.key, &self.path(under_tenant), body)
            .await
    }

    async fn disable(&self, endpoint: &str) -> ApiResponse {
        self.app
            .disable_endpoint(&self.key, &self.id, endpoint)
            .await
    }

    async fn enable(&self, endpoint: &str, body: &Value) -> ApiResponse {
        self.app
            .enable_endpoint(&self.key, &self.id, endpoint, body)
            .await
    }
}

async fn deliveries_and_events_are_filtered_by_type_time_and_status_class(db: TestDb) {
    let ok = Receiver::start();
    let not_found = Receiver::start();
    not_found.set_status(404);
    let app = spawn_app(db).await;
    let acme = Tenant::create(&app, "acme").await;
    // 2xx, 4xx (waiting a day for its retry), no response (likewise).
    let succeeding = acme.endpoint(patient(&ok.url(), &[1])).await;
    let refusing = acme.endpoint(patient(&not_found.url(), &[86_400])).await;
    let unreachable = acme.endpoint(patient(&refused_url(), &[86_400])).await;

    let early_paid = acme.publish("invoice.paid").await;
    let early_failed = acme.publish("invoice.failed").await;
    let late_paid = acme.publish("invoice.paid").await;
    let late_failed = acme.publish("invoice.failed").await;
    let last_paid = acme.publish("invoice.paid").await;
    let since = acme.created_at(&late_paid).await;
    let until = acme.created_at(&last_paid).await;
    acme.wait_for_deliveries(&succeeding, |s, _| s == "succeeded")
        .await;
    acme.wait_for_deliveries(&refusing, |_, n| n == 1).await;
    acme.wait_for_deliveries(&unreachable, |_, n| n == 1).await;

    let endpoints = [&succeeding, &refusing, &unreachable];
    let all = [
        &early_paid,
        &early_failed,
        &late_paid,
        &late_failed,
        &last_paid,
    ];
    let everywhere = acme.deliveries_of(&endpoints, &all).await;
    assert_eq!(everywhere.len(), 15);
    assert_eq!(acme.listed("deliveries", "").await, everywhere);

    // By the status class of the last attempt.
    for (class, endpoint) in [
        ("2xx", &succeeding),
        ("4xx", &refusing),
        ("none", &unreachable),
    ] {
        assert_eq!(
            acme.listed("deliveries", &format!("status_class={class}"))
                .await,
            acme.deliveries_of(&[endpoint], &all).await,
            "status_class={class}"
        );
    }
    assert!(acme
        .listed("deliveries", "status_class=5xx")
        .await
        .is_empty());
    // By event type, exactly.
    let paid = [&early_paid, &late_paid, &last_paid];
    assert_eq!(
        acme.listed("deliveries", "event_type=invoice.paid").await,
        acme.deliveries_of(&endpoints, &paid).await
    );
    assert!(acme
        .listed("deliveries", "event_type=invoice")
        .await
        .is_empty());
    // By the event's time: since is inclusive, until exclusive.
    assert_eq!(
        acme.listed("deliveries", &format!("since={since}&until={until}"))
            .await,
        acme.deliveries_of(&endpoints, &[&late_paid, &late_failed])
            .await
    );
    assert_eq!(
        acme.listed("deliveries", &format!("until={since}")).await,
        acme.deliveries_of(&endpoints, &[&early_paid, &early_failed])
            .await
    );
    // Combined: one endpoint, one type, one class, from a time on.
    assert_eq!(
        acme.listed(
            "deliveries",
            &format!(
                "endpoint_id={refusing}&event_type=invoice.paid&since={since}&status_class=4xx"
            )
        )
        .await,
        acme.deliveries_of(&[&refusing], &[&late_paid, &last_paid])
            .await
    );
    assert!(acme
        .listed(
            "deliveries",
            &format!("endpoint_id={succeeding}&status_class=4xx")
        )
        .await
        .is_empty());

    // Events: by type and time, across pages.
    assert_eq!(acme.listed("events", "").await, set(&all));
    assert_eq!(
        acme.listed("events", "event_type=invoice.paid").await,
        set(&paid)
    );
    assert_eq!(
        acme.listed("events", &format!("since={since}")).await,
        set(&[&late_paid, &late_failed, &last_paid])
    );
    assert_eq!(
        acme.listed(
            "events",
            &format!("event_type=invoice.failed&until={until}")
        )
        .await,
        set(&[&early_failed, &late_failed])
    );
}

async fn an_endpoints_attempts_are_listed_newest_first_and_filtered(db: TestDb) {
    let receiver = Receiver::start();
    receiver.script(&[500]);
    let app = spawn_app(db).await;
    let acme = Tenant::create(&app, "acme").await;
    let endpoint = acme.endpoint(patient(&receiver.url(), &[1])).await;
    acme.publish("invoice.paid").await;
    acme.wait_for_deliveries(&endpoint, |s, _| s == "succeeded")
        .await;
    acme.publish("invoice.paid").await;
    acme.wait_for_deliveries(&endpoint, |s, _| s == "succeeded")
        .await;

    let path = acme.path(&format!("endpoints/{endpoint}/attempts"));
    let attempts = acme.all_pages(&path, 1).await;
    let statuses: Vec<Value> = attempts.iter().map(|a| a["status_code"].clone()).collect();
    assert_eq!(
        statuses,
        vec![json!(200), json!(200), json!(500)],
        "{attempts:?}"
    );
    let started: Vec<&str> = attempts
        .iter()
        .map(|a| a["started_at"].as_str().expect("started_at"))
        .collect();
    assert!(
        started.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {started:?}"
    );
    assert!(attempts.iter().all(|a| a["delivery_id"].is_string()));

    let count = |query: String| {
        let (acme, path) = (&acme, &path);
        async move { acme.all_pages(&format!("{path}?{query}"), 1).await.len() }
    };
    assert_eq!(count("status_class=5xx".into()).await, 1);
    assert_eq!(count("status_class=2xx".into()).await, 2);
    assert_eq!(count("status_class=none".into()).await, 0);
    let (newest, oldest) = (started[0], started[2]);
    assert_eq!(count(format!("since={oldest}")).await, 3);
    assert_eq!(count(format!("until={oldest}")).await, 0);
    assert_eq!(count(format!("since={newest}")).await, 1);
    assert_eq!(
        count(format!("since={oldest}&until={newest}&status_class=2xx")).await,
        1
    );
}

async fn a_retry_makes_one_more_attempt_whatever_the_state(db: TestDb) {
    let receiver = Receiver::start();
    let waiting = Receiver::start();
    waiting.set_status(500);
    let app = spawn_app(db).await;
    let acme = Tenant::create(&app, "acme").await;
    let mut body = patient(&receiver.url(), &[1]);
    body["event_types"] = json!(["a.*"]);
    let endpoint = acme.endpoint(body).await;
    let mut body = patient(&waiting.url(), &[86_400]);
    body["event_types"] = json!(["b.*"]);
    let patient_endpoint = acme.endpoint(body).await;

    // A succeeded delivery: a retry goes out; a failed retry leaves it succeeded.
    let delivered = acme.delivery_of(&acme.publish("a.one").await).await;
    acme.wait_for_state(&delivered, "succeeded").await;
    assert_eq!(receiver.count(), 1);
    let answer = acme.retry(&delivered).await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.body);
    assert_eq!(answer.body["attempt"]["status_code"], json!(200));
    assert_eq!(answer.body["attempt"]["succeeded"], json!(true));
    assert_eq!(answer.body["delivery"]["state"], json!("succeeded"));
    assert_eq!(receiver.count(), 2);
    receiver.set_status(500);
    let answer = acme.retry(&delivered).await;
    assert_eq!(
        answer.body["attempt"]["status_code"],
        json!(500),
        "{}",
        answer.body
    );
    assert_eq!(answer.body["attempt"]["succeeded"], json!(false));
    assert_eq!(answer.body["attempt"]["error_kind"], json!("http_status"));
    assert_eq!(answer.body["delivery"]["state"], json!("succeeded"));
    assert_eq!(receiver.count(), 3);
    let view = acme.delivery(&delivered).await;
    assert_eq!(view["attempts"].as_array().map(Vec::len), Some(3), "{view}");

    // A failed delivery: stays failed while the receiver fails, succeeds after.
    let failed = acme.publish("a.two").await;
    let failed_delivery = acme.delivery_of(&failed).await;
    acme.wait_for_state(&failed_delivery, "failed").await;
    assert_eq!(receiver.count(), 5);
    let answer = acme.retry(&failed_delivery).await;
    assert_eq!(
        answer.body["attempt"]["status_code"],
        json!(500),
        "{}",
        answer.body
    );
    assert_eq!(answer.body["delivery"]["state"], json!("failed"));
    receiver.set_status(200);
    let answer = acme.retry(&failed_delivery).await;
    assert_eq!(
        answer.body["attempt"]["status_code"],
        json!(200),
        "{}",
        answer.body
    );
    assert_eq!(answer.body["delivery"]["state"], json!("succeeded"));
    assert_eq!(receiver.count(), 7);
    let requests = receiver.requests();
    assert_eq!(requests[6].header("webhook-id"), Some(failed.as_str()));
    let view = acme.delivery(&failed_delivery).await;
    assert_eq!(view["attempts"].as_array().map(Vec::len), Some(4), "{view}");

    // A pending delivery keeps its schedule after a failed retry.
    let pending = acme.delivery_of(&acme.publish("b.one").await).await;
    acme.wait_for_deliveries(&patient_endpoint, |_, n| n == 1)
        .await;
    let before = acme.delivery(&pending).await;
    assert_eq!(before["state"], json!("pending"));
    let answer = acme.retry(&pending).await;
    assert_eq!(
        answer.body["attempt"]["status_code"],
        json!(500),
        "{}",
        answer.body
    );
    assert_eq!(answer.body["delivery"]["state"], json!("pending"));
    assert_eq!(
        answer.body["delivery"]["next_attempt_at"],
        before["next_attempt_at"]
    );
    assert_eq!(waiting.count(), 2);
    waiting.set_status(204);
    let answer = acme.retry(&pending).await;
    assert_eq!(
        answer.body["delivery"]["state"],
        json!("succeeded"),
        "{}",
        answer.body
    );
    assert_eq!(answer.body["delivery"]["next_attempt_at"], Value::Null);

    // Not while the endpoint is disabled.
    let response = acme.disable(&endpoint).await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.body);
    acme.retry(&delivered)
        .await
        .assert_problem(409, "retry on a disabled endpoint");
    assert_eq!(receiver.count(), 7);
}

async fn a_pending_delivery_settled_by_a_retry_is_not_sent_again(db: TestDb) {
    let receiver = Receiver::start();
    receiver.script(&[500]);
    let app = spawn_app(db).await;
    let acme = Tenant::create(&app, "acme").await;
    let endpoint = acme.endpoint(patient(&receiver.url(), &[3, 3])).await;
    let delivery = acme.delivery_of(&acme.publish("invoice.paid").await).await;
    acme.wait_for_deliveries(&endpoint, |_, n| n == 1).await;
    // Waiting in the actor's window for its second attempt, a few seconds away.
    let waiting = acme.delivery(&delivery).await;
    assert_eq!(waiting["state"], json!("pending"), "{waiting}");
    let due = crate::common::parse_time(&waiting["next_attempt_at"], "next_attempt_at");

    let answer = acme.retry(&delivery).await;
    assert_eq!(
        answer.body["delivery"]["state"],
        json!("succeeded"),
        "{}",
        answer.body
    );
    assert_eq!(receiver.count(), 2);
    // Past the time its scheduled attempt was due: it was not sent again.
    let until_past_due = (due + chrono::Duration::milliseconds(1_500) - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    receiver
        .assert_nothing_more_arrives(2, until_past_due, "the settled delivery went out again")
        .await;
    let view = acme.delivery(&delivery).await;
    assert_eq!(view["state"], json!("succeeded"), "{view}");
    assert_eq!(view["attempts"].as_array().map(Vec::len), Some(2), "{view}");
}

async fn recover_queues_again_the_failed_and_cancelled_deliveries_of_a_window(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_status(500);
    let app = spawn_app(db).await;
    let acme = Tenant::create(&app, "acme").await;
    let mut body = patient(&receiver.url(), &[1]);
    body["max_in_flight"] = json!(1);
    let endpoint = acme.endpoint(body).await;
    let first = acme.publish("invoice.paid").await;
    let second = acme.publish("invoice.paid").await;
    let third = acme.publish("invoice.paid").await;
    let fourth = acme.publish("invoice.paid").await;
    acme.wait_for_deliveries(&endpoint, |s, _| s == "failed")
        .await;
    // A cancelled one: held while disabled, cancelled on enabling.
    acme.disable(&endpoint).await;
    let cancelled = acme.publish("invoice.paid").await;
    let enabled = acme.enable(&endpoint, &json!({"replay": "none"})).await;
    assert_eq!(enabled.body["cancelled"], json!(1), "{}", enabled.body);
    let last = acme.publish("invoice.paid").await;
    acme.wait_for_deliveries(&endpoint, |s, _| s == "failed" || s == "cancelled")
        .await;
    let since = acme.created_at(&third).await;
    let until = acme.created_at(&last).await;

    receiver.set_healthy();
    let before = receiver.count();
    let window = json!({"since": since, "until": until});
    let answer = acme.recover(&endpoint, &window).await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.body);
    assert_eq!(answer.body, json!({"recovered": 3}));
    let recovered = acme
        .deliveries_of(&[&endpoint], &[&third, &fourth, &cancelled])
        .await;
    for delivery in &recovered {
        acme.wait_for_state(delivery, "succeeded").await;
    }
    // Sent once each, in event order.
    let sent: Vec<String> = receiver.webhook_ids()[before..].to_vec();
    assert_eq!(sent, vec![third.clone(), fourth.clone(), cancelled.clone()]);
    let outside = acme
        .deliveries_of(&[&endpoint], &[&first, &second, &last])
        .await;
    for delivery in &outside {
        let view = acme.delivery(delivery).await;
        assert_eq!(view["state"], json!("failed"), "{view}");
    }

    // Nothing left to recover in the window; `until` is optional.
    let answer = acme.recover(&endpoint, &window).await;
    assert_eq!(answer.body, json!({"recovered": 0}));
    let from_the_start = json!({"since": acme.created_at(&first).await});
    let answer = acme.recover(&endpoint, &from_the_start).await;
    assert_eq!(answer.body, json!({"recovered": 3}), "{}", answer.body);
    acme.wait_for_deliveries(&endpoint, |s, _| s == "succeeded")
        .await;
    assert_eq!(receiver.count(), before + 6);

    // Not while the endpoint is disabled.
    acme.disable(&endpoint).await;
    acme.recover(&endpoint, &from_the_start)
        .await
        .assert_problem(409, "recover on a disabled endpoint");
}

async fn an_endpoint_test_reports_the_outcome_of_its_ping(db: TestDb) {
    let receiver = Receiver::start();
    let app = spawn_app(db).await;
    let acme = Tenant::create(&app, "acme").await;
    let endpoint = acme.endpoint(json!({"url": receiver.url()})).await;

    let answer = acme.test(&endpoint, &json!({})).await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.body);
    assert_eq!(answer.body["attempt"]["status_code"], json!(200));
    assert_eq!(answer.body["attempt"]["succeeded"], json!(true));
    assert_eq!(answer.body["attempt"]["error_kind"], Value::Null);
    assert!(answer.body["attempt"]["duration_ms"].is_i64());
    assert_eq!(answer.body["delivery"]["state"], json!("succeeded"));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let ping = requests[0].json();
    assert_eq!(ping["type"], json!("hookrelay.ping"));
    assert_eq!(ping["data"], json!({"message": "test"}));
    // Stored like any event and delivery.
    let event = answer.body["delivery"]["event_id"]
        .as_str()
        .expect("event id")
        .to_string();
    assert_eq!(ping["id"], json!(event));
    let pings = acme.first_page("events", "event_type=hookrelay.ping").await;
    assert_eq!(ids(&pings), set(&[&event]));
    let view = acme.delivery(&id_of(&answer.body["delivery"])).await;
    assert_eq!(view["attempts"].as_array().map(Vec::len), Some(1), "{view}");

    let answer = acme
        .test(&endpoint, &json!({"payload": {"hello": "world"}}))
        .await;
    assert_eq!(
        answer.body["attempt"]["status_code"],
        json!(200),
        "{}",
        answer.body
    );
    assert_eq!(
        receiver.requests()[1].json()["data"],
        json!({"hello": "world"})
    );

    // A failing receiver: a failed outcome, and no retry.
    receiver.set_status(500);
    let answer = acme.test(&endpoint, &json!({})).await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.body);
    assert_eq!(answer.body["attempt"]["status_code"], json!(500));
    assert_eq!(answer.body["attempt"]["succeeded"], json!(false));
    assert_eq!(answer.body["attempt"]["error_kind"], json!("http_status"));
    assert_eq!(answer.body["delivery"]["state"], json!("failed"));
    assert_eq!(answer.body["delivery"]["next_attempt_at"], Value::Null);

    // Allowed while disabled: a check before enabling.
    receiver.set_status(204);
    acme.disable(&endpoint).await;
    let answer = acme.test(&endpoint, &json!({})).await;
    assert_eq!(
        answer.body["attempt"]["status_code"],
        json!(204),
        "{}",
        answer.body
    );
    assert_eq!(answer.body["delivery"]["state"], json!("succeeded"));
    assert_eq!(receiver.count(), 4);

    // Nobody listening: no status, the transport's error kind.
    let unreachable = acme.endpoint(json!({"url": refused_url()})).await;
    let answer = acme.test(&unreachable, &json!({})).await;
    assert_eq!(
        answer.body["attempt"]["status_code"],
        Value::Null,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["attempt"]["error_kind"], json!("connect"));
    assert_eq!(answer.body["delivery"]["state"], json!("failed"));
}

async fn a_ping_cut_off_by_a_stop_is_sent_after_the_restart(db: TestDb) {
    let receiver = Receiver::start();
    // The first ping hangs until the service is gone.
    receiver.set_hanging(Duration::from_secs(5));
    let running = RestartableApp::start(db.url(), |_| {}).await;
    let app = &running.app;
    let (tenant, key) = app.create_tenant("acme").await;
    let endpoint = id_of(
        &app.create_endpoint(
            &key,
            &tenant,
            json!({"url": receiver.url(), "timeout_seconds": 30}),
        )
        .await,
    );
    let path = app.url(&format!("/v1/tenants/{tenant}/endpoints/{endpoint}/test"));
    let ping = app
        .client
        .post(path)
        .bearer_auth(&key)
        .json(&json!({"payload": {"n": 1}}))
        .send();
    let cut_off = actix_rt::spawn(ping);
    receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    running.stop().await;
    assert!(
        cut_off.await.expect("join").is_err(),
        "the ping's caller got no answer"
    );

    receiver.set_healthy();
    let restarted = RestartableApp::start(db.url(), |_| {}).await;
    let requests = receiver.wait_for_count(2, DELIVERY_TIMEOUT).await;
    let (first, again) = (requests[0].json(), requests[1].json());
    assert_eq!(again["type"], json!("hookrelay.ping"));
    assert_eq!(again["id"], first["id"], "the same ping, sent again");
    let app = &restarted.app;
    let deliveries = app.list_deliveries(&key, &tenant, "").await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let delivery = id_of(&deliveries[0]);
    app.wait_for_delivery_state(&key, &tenant, &delivery, "succeeded", DELIVERY_TIMEOUT)
        .await;
    restarted.stop().await;
}

async fn the_new_routes_hide_other_tenants_and_refuse_bad_input(db: TestDb) {
    let receiver = Receiver::start();
    let app = spawn_app(db).await;
    let acme = Tenant::create(&app, "acme").await;
    let globex = Tenant::create(&app, "globex").await;
    let theirs = globex.endpoint(json!({"url": receiver.url()})).await;
    let their_delivery = globex
        .delivery_of(&globex.publish("invoice.paid").await)
        .await;
    let ours = acme.endpoint(json!({"url": receiver.url()})).await;
    let our_event = acme.publish("invoice.paid").await;
    receiver.wait_for_count(2, DELIVERY_TIMEOUT).await;
    let since = acme.created_at(&our_event).await;

    let recover = json!({"since": since});
    for tenant in [&globex.id, &acme.id] {
        let context = |route: &str| format!("acme's key, {route} of globex under {tenant}");
        app.get(
            &acme.key,
            &format!("/v1/tenants/{tenant}/endpoints/{theirs}/attempts"),
        )
        .await
        .assert_problem(404, &context("attempts"));
        app.post(
            &acme.key,
            &format!("/v1/tenants/{tenant}/deliveries/{their_delivery}/retry"),
            &json!({}),
        )
        .await
        .assert_problem(404, &context("retry"));
        app.post(
            &acme.key,
            &format!("/v1/tenants/{tenant}/endpoints/{theirs}/recover"),
            &recover,
        )
        .await
        .assert_problem(404, &context("recover"));
        app.post(
            &acme.key,
            &format!("/v1/tenants/{tenant}/endpoints/{theirs}/test"),
            &json!({}),
        )
        .await
        .assert_problem(404, &context("test"));
    }
    app.get(&acme.key, "/v1/tenants/globex/events")
        .await
        .assert_problem(404, "acme's key on globex's events");
    for path in [
        format!("/v1/tenants/acme/endpoints/{ours}/attempts"),
        "/v1/tenants/acme/events".to_string(),
    ] {
        app.send(reqwest::Method::GET, &path, None, &[], None)
            .await
            .assert_problem(401, &format!("{path} without a key"));
    }

    let invalid = [
        ("deliveries?status_class=6xx", "status_class"),
        ("deliveries?status_class=2XX", "status_class"),
        ("deliveries?since=yesterday", "since"),
        ("deliveries?until=2026-13-01T00:00:00Z", "until"),
        (
            "deliveries?since=2026-11-30T10:00:00Z&until=2026-11-30T09:00:00Z",
            "until",
        ),
        ("deliveries?event_type=not%20a%20type", "event_type"),
        ("deliveries?limit=abc", "limit"),
        ("deliveries?colour=red", "colour"),
        ("events?since=soon", "since"),
        ("events?event_type=a..b", "event_type"),
        ("events?limit=0", "limit"),
        ("events?cursor=a%20b", "cursor"),
        ("endpoints?bogus=1", "bogus"),
        ("endpoints?limit=abc", "limit"),
        ("event-types?bogus=1", "bogus"),
        ("event-types?limit=abc", "limit"),
        ("alerts?bogus=1", "bogus"),
        ("alerts?limit=abc", "limit"),
    ];
    for (query, field) in invalid {
        app.get(&acme.key, &acme.path(query))
            .await
            .assert_invalid_field(field, query);
    }
    let attempts = acme.path(&format!("endpoints/{ours}/attempts"));
    for (query, field) in [
        ("status_class=1xx", "status_class"),
        ("until=never", "until"),
        ("cursor=atm_nothing", "cursor"),
        ("limit=1001", "limit"),
        ("state=failed", "state"),
    ] {
        app.get(&acme.key, &format!("{attempts}?{query}"))
            .await
            .assert_invalid_field(field, query);
    }
    for (body, field) in [
        (json!({}), "since"),
        (json!({"since": "last week"}), "since"),
        (
            json!({"since": since, "until": "2000-01-01T00:00:00Z"}),
            "until",
        ),
        (json!({"since": since, "state": "failed"}), "state"),
    ] {
        acme.recover(&ours, &body)
            .await
            .assert_invalid_field(field, &format!("recover {body}"));
    }
    for (body, field) in [
        (json!({"payload": 5}), "payload"),
        (json!({"payload": {}, "type": "x"}), "type"),
    ] {
        acme.test(&ours, &body)
            .await
            .assert_invalid_field(field, &format!("test {body}"));
    }

    // Nothing was sent or stored by any of these.
    assert_eq!(receiver.count(), 2);
    let events = acme.first_page("events", "").await;
    assert_eq!(ids(&events), set(&[&our_event]));
    let view = globex.delivery(&their_delivery).await;
    assert_eq!(view["attempts"].as_array().map(Vec::len), Some(1), "{view}");
}
