//! SIGTERM ends the process within its grace period, even with an attempt
//! hanging and a request half sent, and what was cut short is sent after
//! the next start.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use super::tenant_with_endpoint;
use crate::common::{Receiver, Service, TestApp, TestDb, ADMIN_KEY, DELIVERY_TIMEOUT};
use serde_json::json;

backend_tests!(sigterm_ends_the_process_within_the_grace_period_while_an_endpoint_hangs);

async fn sigterm_ends_the_process_within_the_grace_period_while_an_endpoint_hangs(db: TestDb) {
    const GRACE_SECONDS: u64 = 3;
    let backend = db.backend();
    let receiver = Receiver::start();
    // Answers long after the grace period: the attempt is in flight at
    // SIGTERM.
    receiver.set_hanging(Duration::from_secs(60));
    let grace = GRACE_SECONDS.to_string();
    let mut service = Service::start_with(
        db.url(),
        "sigterm",
        &[("HOOKRELAY_SHUTDOWN_GRACE_SECONDS", grace.as_str())],
    )
    .await;
    let app = TestApp::connect(&service.address, ADMIN_KEY);
    let (tenant, key, endpoint) = tenant_with_endpoint(
        &app,
        &receiver,
        json!({"timeout_seconds": 30, "retry_schedule": [1]}),
    )
    .await;
    let event = app.publish_event(&key, &tenant, "a.b", json!({})).await;
    receiver.wait_for_count(1, DELIVERY_TIMEOUT).await;
    // A change makes the endpoint's actor restart once its hanging attempt
    // ends, which it will not before the grace period is over.
    app.patch_json(
        &key,
        &format!("/v1/tenants/{tenant}/endpoints/{endpoint}"),
        &json!({"description": "restart please"}),
    )
    .await;
    // And a request still arriving: headers sent, half of the body.
    let host = service.address.trim_start_matches("http://").to_string();
    let mut slow = TcpStream::connect(&host).expect("connect");
    slow.write_all(
        format!(
            "POST /v1/tenants/{tenant}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {key}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"type\": "
        )
        .as_bytes(),
    )
    .expect("send half a request");
    // Lets the service read the headers: the signal finds the request under
    // way.
    actix_rt::time::sleep(Duration::from_millis(200)).await;

    let (exit, took) = service.terminate(Duration::from_secs(30)).await;
    eprintln!("{backend}: SIGTERM to exit took {took:?} (grace {GRACE_SECONDS} s)");
    assert!(
        exit.success(),
        "{backend}: clean exit after SIGTERM: {exit:?}"
    );
    assert!(
        took <= Duration::from_secs(GRACE_SECONDS + 2),
        "{backend}: shutdown took {took:?} with a grace period of {GRACE_SECONDS} s"
    );
    drop(slow);

    // The attempt that was cut short is still pending and is sent after
    // the next start.
    receiver.set_healthy();
    let restarted = Service::start_with(db.url(), "sigterm-restarted", &[]).await;
    let app = TestApp::connect(&restarted.address, ADMIN_KEY);
    let delivery = app.single_delivery_id(&key, &tenant, &event).await;
    app.wait_for_delivery_state(&key, &tenant, &delivery, "succeeded", DELIVERY_TIMEOUT)
        .await;
}
