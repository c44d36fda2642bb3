//! Crash safety of the real binary: an event that was answered with 2xx is
//! delivered even when the process is killed with SIGKILL right after.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use crate::common::{
    try_publish, wait_for_webhook_ids, wait_until, Receiver, Service, TestApp, TestDb, ADMIN_KEY,
};
use serde_json::json;

backend_tests!(accepted_events_survive_a_kill_and_are_delivered_after_restart);

const WORKERS: usize = 4;
const EVENTS_PER_WORKER: usize = 75;

async fn accepted_events_survive_a_kill_and_are_delivered_after_restart(db: TestDb) {
    let receiver = Receiver::start();
    receiver.set_delay(Some(Duration::from_millis(30)));

    let mut first = Service::start(db.url(), "first").await;
    let app = TestApp::connect(&first.address, ADMIN_KEY);
    let (tenant, key, _) = app
        .create_tenant_with_endpoint(json!({
            "url": receiver.url(),
            "timeout_seconds": 10,
            // Slow consumer and few connections: deliveries pile up, so
            // plenty are still pending when the process dies.
            "max_in_flight": 2,
            "retry_schedule": [1, 1, 2, 2, 5, 5, 5, 5],
        }))
        .await;

    // A burst from a few concurrent publishers; the server is killed once
    // about half of it has been accepted.
    let accepted: Rc<RefCell<Vec<(String, serde_json::Value)>>> = Rc::default();
    let refused: Rc<RefCell<Vec<String>>> = Rc::default();
    let finished = Rc::new(Cell::new(0usize));
    let events_url = app.url(&format!("/v1/tenants/{tenant}/events"));
    let mut publishers = Vec::new();
    for worker in 0..WORKERS {
        let (client, url, key) = (app.client.clone(), events_url.clone(), key.clone());
        let (accepted, refused, finished) = (accepted.clone(), refused.clone(), finished.clone());
        publishers.push(actix_rt::spawn(async move {
            for n in 0..EVENTS_PER_WORKER {
                let id = format!("evt_crash_{worker}_{n}");
                let body =
                    json!({"id": id, "type": "crash.test", "payload": {"worker": worker, "n": n}});
                match try_publish(&client, &url, &key, &body).await {
                    Ok(status) if status.is_success() => accepted.borrow_mut().push((id, body)),
                    Ok(status) => refused.borrow_mut().push(format!("{id}: {status}")),
                    // The server is gone.
                    Err(_) => break,
                }
            }
            finished.set(finished.get() + 1);
        }));
    }

    let half = WORKERS * EVENTS_PER_WORKER / 2;
    wait_until(Duration::from_secs(180), || async {
        let count = accepted.borrow().len();
        if count >= half || finished.get() == WORKERS {
            Ok(())
        } else {
            Err(format!("{half} accepted events, have {count}"))
        }
    })
    .await;
    first.kill();
    let accepted_at_kill = accepted.borrow().len();
    for publisher in publishers {
        actix_rt::time::timeout(Duration::from_secs(60), publisher)
            .await
            .expect("publishers stop once the server is gone")
            .expect("publisher task");
    }
    let accepted: Vec<(String, serde_json::Value)> = accepted.borrow().clone();
    assert!(
        !accepted.is_empty(),
        "nothing was accepted before the kill; refused: {:?}",
        refused.borrow()
    );
    eprintln!(
        "{}: {} events accepted ({accepted_at_kill} when killed), {} refused, {} received before restart",
        db.backend(),
        accepted.len(),
        refused.borrow().len(),
        receiver.count()
    );

    // Same database, new process and port; the receiver keeps its URL.
    let second = Service::start(db.url(), "restarted").await;
    let app = TestApp::connect(&second.address, ADMIN_KEY);
    let accepted_ids: Vec<&str> = accepted.iter().map(|(id, _)| id.as_str()).collect();
    let what = "every accepted event delivered after the restart";
    wait_for_webhook_ids(&[&receiver], &accepted_ids, Duration::from_secs(60), what).await;

    // Every accepted event is stored for good: publishing it again is a
    // repeat (200), not a new event.
    for (id, body) in &accepted {
        let again = app.publish(&key, &tenant, body).await;
        assert_eq!(
            again.status,
            reqwest::StatusCode::OK,
            "republishing accepted {id} after the crash: {}",
            again.body
        );
    }
    drop(second);
}
