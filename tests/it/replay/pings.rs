//! Testing an endpoint: a `hookrelay.ping` sent at once, its outcome
//! answered and stored, and sent again after a restart that cut it off.

use std::time::Duration;

use super::{assert_attempt_status, assert_delivery_state, ids, set, Tenant};
use crate::common::{
    id_of, refused_url, spawn_app, Receiver, RestartableApp, TestDb, DELIVERY_TIMEOUT,
};
use serde_json::{json, Value};

backend_tests!(
    an_endpoint_test_reports_the_outcome_of_its_ping,
    a_ping_cut_off_by_a_stop_is_sent_after_the_restart,
);

async fn an_endpoint_test_reports_the_outcome_of_its_ping(db: TestDb) {
    let receiver = Receiver::start();
    let app = spawn_app(db).await;
    let acme = Tenant::create(&app, "acme").await;
    let endpoint = acme.endpoint(json!({"url": receiver.url()})).await;

    let answer = acme.test(&endpoint, &json!({})).await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.body);
    assert_attempt_status(&answer, json!(200));
    assert_eq!(answer.body["attempt"]["succeeded"], json!(true));
    assert_eq!(answer.body["attempt"]["error_kind"], Value::Null);
    assert!(answer.body["attempt"]["duration_ms"].is_i64());
    assert_delivery_state(&answer, "succeeded");
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
    assert_attempt_status(&answer, json!(200));
    assert_eq!(
        receiver.requests()[1].json()["data"],
        json!({"hello": "world"})
    );

    // A failing receiver: a failed outcome, and no retry.
    receiver.set_status(500);
    let answer = acme.test(&endpoint, &json!({})).await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.body);
    assert_attempt_status(&answer, json!(500));
    assert_eq!(answer.body["attempt"]["succeeded"], json!(false));
    assert_eq!(answer.body["attempt"]["error_kind"], json!("http_status"));
    assert_delivery_state(&answer, "failed");
    assert_eq!(answer.body["delivery"]["next_attempt_at"], Value::Null);

    // Allowed while disabled: a check before enabling.
    receiver.set_status(204);
    acme.disable(&endpoint).await;
    let answer = acme.test(&endpoint, &json!({})).await;
    assert_attempt_status(&answer, json!(204));
    assert_delivery_state(&answer, "succeeded");
    assert_eq!(receiver.count(), 4);

    // Nobody listening: no status, the transport's error kind.
    let unreachable = acme.endpoint(json!({"url": refused_url()})).await;
    let answer = acme.test(&unreachable, &json!({})).await;
    assert_attempt_status(&answer, Value::Null);
    assert_eq!(answer.body["attempt"]["error_kind"], json!("connect"));
    assert_delivery_state(&answer, "failed");
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
