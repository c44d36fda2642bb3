//! Changing an endpoint restarts its actor under the supervisor without
//! losing the deliveries waiting in its queue.

use std::time::Duration;

use crate::common::{spawn_app, wait_until, Receiver, TestDb, DELIVERY_TIMEOUT};
use serde_json::{json, Value};

backend_tests!(updating_an_endpoint_restarts_its_worker_and_keeps_its_queue);

async fn updating_an_endpoint_restarts_its_worker_and_keeps_its_queue(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_status(500);
    let app = spawn_app(db).await;
    let (tenant, key) = app.create_tenant("acme").await;
    // After the first failure every delivery waits an hour in the queue.
    let endpoint = app
        .create_endpoint(
            &key,
            &tenant,
            json!({"url": receiver.url(), "description": "before", "retry_schedule": [3600]}),
        )
        .await;
    let endpoint_id = endpoint["id"].as_str().unwrap().to_string();
    let endpoint_path = format!("/v1/tenants/{tenant}/endpoints/{endpoint_id}");

    for n in 0..5 {
        app.publish_accepted(
            &key,
            &tenant,
            &json!({"type": "invoice.paid", "payload": {"n": n}}),
        )
        .await;
    }

    let filter = format!("endpoint_id={endpoint_id}");
    wait_until(DELIVERY_TIMEOUT, || async {
        let deliveries = app.list_deliveries(&key, &tenant, &filter).await;
        let tried_once = deliveries
            .iter()
            .filter(|d| d["attempt_count"] == json!(1) && d["state"] == "pending")
            .count();
        if deliveries.len() == 5 && tried_once == 5 {
            Ok(())
        } else {
            Err(format!(
                "5 pending deliveries with one attempt each, have {} ({tried_once} so): {deliveries:?}",
                deliveries.len()
            ))
        }
    })
    .await;
    assert_eq!(receiver.count(), 5, "one attempt per delivery so far");

    let stats = |endpoint: &Value| endpoint["stats"].clone();
    let before = wait_until(DELIVERY_TIMEOUT, || async {
        let endpoint = app.get_json(&key, &endpoint_path).await;
        let s = stats(&endpoint);
        if s["queued"] == json!(5) && s["in_flight"] == json!(0) {
            Ok(s)
        } else {
            Err(format!(
                "5 queued and none in flight before the update: {endpoint}"
            ))
        }
    })
    .await;
    assert_eq!(before["restarts"], json!(0), "no restart yet: {before}");

    let patched = app
        .patch(&key, &endpoint_path, &json!({"description": "after"}))
        .await;
    assert_eq!(patched.status, reqwest::StatusCode::OK, "{}", patched.body);
    assert_eq!(
        patched.body["description"],
        json!("after"),
        "{}",
        patched.body
    );

    let after = wait_until(DELIVERY_TIMEOUT, || async {
        let endpoint = app.get_json(&key, &endpoint_path).await;
        let s = stats(&endpoint);
        if s["restarts"] == json!(1) && s["queued"] == json!(5) {
            Ok(endpoint)
        } else {
            Err(format!(
                "restarts 1 with the 5 deliveries still queued: {endpoint}"
            ))
        }
    })
    .await;
    assert_eq!(after["description"], json!("after"), "{after}");
    assert_eq!(after["retry_schedule"], json!([3600]), "{after}");

    // The reloaded queue keeps the schedule: nothing is due for an hour, so
    // the restart must not send anything again.
    receiver
        .assert_nothing_more_arrives(
            5,
            Duration::from_millis(500),
            "the restart must not resend deliveries that are not due",
        )
        .await;
    let endpoint = app.get_json(&key, &endpoint_path).await;
    assert_eq!(stats(&endpoint)["queued"], json!(5), "{endpoint}");
    assert_eq!(stats(&endpoint)["restarts"], json!(1), "{endpoint}");
}
