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
        app.publish_event(&key, &tenant, "invoice.paid", json!({"n": n}))
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

    // The endpoint's view once its stats satisfy `ready` (`what` says how).
    let wait_for_stats = |ready: fn(&Value) -> bool, what: &'static str| {
        let (app, key, path) = (&app, &key, &endpoint_path);
        wait_until(DELIVERY_TIMEOUT, move || async move {
            let endpoint = app.get_json(key, path).await;
            if ready(&endpoint["stats"]) {
                Ok(endpoint)
            } else {
                Err(format!("{what}: {endpoint}"))
            }
        })
    };
    let before = wait_for_stats(
        |s| s["queued"] == json!(5) && s["in_flight"] == json!(0),
        "5 queued and none in flight before the update",
    )
    .await["stats"]
        .clone();
    assert_eq!(before["restarts"], json!(0), "no restart yet: {before}");

    let patched = app
        .patch_json(&key, &endpoint_path, &json!({"description": "after"}))
        .await;
    assert_eq!(patched["description"], json!("after"), "{}", patched);

    let after = wait_for_stats(
        |s| s["restarts"] == json!(1) && s["queued"] == json!(5),
        "restarts 1 with the 5 deliveries still queued",
    )
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
    assert_eq!(endpoint["stats"]["queued"], json!(5), "{endpoint}");
    assert_eq!(endpoint["stats"]["restarts"], json!(1), "{endpoint}");
}
