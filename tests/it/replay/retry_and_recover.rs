//! Retrying one delivery (one more attempt, whatever its state) and
//! recovering the failed and cancelled deliveries of a time window.

use super::{assert_attempt_status, assert_delivery_state, patient, Tenant};
use crate::common::{spawn_app, Receiver, TestDb};
use serde_json::{json, Value};

backend_tests!(
    a_retry_makes_one_more_attempt_whatever_the_state,
    a_pending_delivery_settled_by_a_retry_is_not_sent_again,
    recover_queues_again_the_failed_and_cancelled_deliveries_of_a_window,
);

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
    assert_attempt_status(&answer, json!(200));
    assert_eq!(answer.body["attempt"]["succeeded"], json!(true));
    assert_delivery_state(&answer, "succeeded");
    assert_eq!(receiver.count(), 2);
    receiver.set_status(500);
    let answer = acme.retry(&delivered).await;
    assert_attempt_status(&answer, json!(500));
    assert_eq!(answer.body["attempt"]["succeeded"], json!(false));
    assert_eq!(answer.body["attempt"]["error_kind"], json!("http_status"));
    assert_delivery_state(&answer, "succeeded");
    assert_eq!(receiver.count(), 3);
    let view = acme.delivery(&delivered).await;
    assert_eq!(view["attempts"].as_array().map(Vec::len), Some(3), "{view}");

    // A failed delivery: stays failed while the receiver fails, succeeds after.
    let failed = acme.publish("a.two").await;
    let failed_delivery = acme.delivery_of(&failed).await;
    acme.wait_for_state(&failed_delivery, "failed").await;
    assert_eq!(receiver.count(), 5);
    let answer = acme.retry(&failed_delivery).await;
    assert_attempt_status(&answer, json!(500));
    assert_delivery_state(&answer, "failed");
    receiver.set_status(200);
    let answer = acme.retry(&failed_delivery).await;
    assert_attempt_status(&answer, json!(200));
    assert_delivery_state(&answer, "succeeded");
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
    assert_attempt_status(&answer, json!(500));
    assert_delivery_state(&answer, "pending");
    assert_eq!(
        answer.body["delivery"]["next_attempt_at"],
        before["next_attempt_at"]
    );
    assert_eq!(waiting.count(), 2);
    waiting.set_status(204);
    let answer = acme.retry(&pending).await;
    assert_delivery_state(&answer, "succeeded");
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
    assert_delivery_state(&answer, "succeeded");
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
