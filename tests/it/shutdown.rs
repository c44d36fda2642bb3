//! Graceful shutdown of the real binary under load (issue 21): SIGTERM while
//! events are being published and delivered ends the process with exit
//! code 0, every time, and every event answered 2xx is delivered at least
//! once after the restarts.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::common::{
    try_publish, wait_for_webhook_ids, wait_until, Receiver, Service, TestApp, TestDb, ADMIN_KEY,
};
use serde_json::json;

backend_tests!(sigterm_under_load_exits_0_every_time_and_loses_nothing);

/// The issue asks for 20 on PostgreSQL, where a stop once segfaulted (an
/// endpoint thread closing its TLS connections while OpenSSL's exit handler
/// freed its state); SQLite gets fewer, to keep the suite short.
fn rounds(db: &TestDb) -> usize {
    match db.backend() {
        "postgres" => 20,
        _ => 5,
    }
}

/// Events accepted in a round before the SIGTERM; publishing goes on
/// while the service stops.
const ACCEPTED_BEFORE_SIGTERM: usize = 30;
const PUBLISHERS: usize = 4;
/// Per publisher and round, so a round is bounded whatever happens.
const MAX_EVENTS_PER_PUBLISHER: usize = 250;
const GRACE_SECONDS: u64 = 5;

async fn sigterm_under_load_exits_0_every_time_and_loses_nothing(db: TestDb) {
    let backend = db.backend();
    let started = Instant::now();
    // Three endpoints, one of them slow, so that every stop finds attempts
    // in flight and deliveries queued on every endpoint thread.
    let receivers = [Receiver::start(), Receiver::start(), Receiver::start()];
    receivers[0].set_delay(Some(Duration::from_millis(30)));
    let grace = GRACE_SECONDS.to_string();
    let settings = [("HOOKRELAY_SHUTDOWN_GRACE_SECONDS", grace.as_str())];

    let mut service = Service::start_with(db.url(), "under load", &settings).await;
    let app = TestApp::connect(&service.address, ADMIN_KEY);
    let (tenant, key) = app.create_tenant("acme").await;
    for receiver in &receivers {
        app.create_endpoint(
            &key,
            &tenant,
            json!({"url": receiver.url(), "retry_schedule": [1, 1, 2]}),
        )
        .await;
    }

    let accepted: Rc<RefCell<Vec<String>>> = Rc::default();
    for round in 0..rounds(&db) {
        if round > 0 {
            service = Service::start_with(db.url(), "under load", &settings).await;
        }
        let events_url = format!("{}/v1/tenants/{tenant}/events", service.address);
        let before = accepted.borrow().len();
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|worker| {
                let (client, url, key) = (app.client.clone(), events_url.clone(), key.clone());
                let accepted = Rc::clone(&accepted);
                actix_rt::spawn(async move {
                    for n in 0..MAX_EVENTS_PER_PUBLISHER {
                        let id = format!("evt_stop_{round}_{worker}_{n}");
                        let body = json!({"id": id, "type": "stop.test", "payload": {"n": n}});
                        match try_publish(&client, &url, &key, &body).await {
                            Ok(status) if status.is_success() => accepted.borrow_mut().push(id),
                            // Refused while stopping: not accepted.
                            Ok(_) => {}
                            // The service is gone.
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        wait_until(Duration::from_secs(30), || {
            let count = accepted.borrow().len() - before;
            async move {
                if count >= ACCEPTED_BEFORE_SIGTERM {
                    Ok(())
                } else {
                    Err(format!(
                        "{backend} round {round}: {ACCEPTED_BEFORE_SIGTERM} events accepted before the SIGTERM, have {count}"
                    ))
                }
            }
        })
        .await;

        let (exit, took) = service
            .terminate(Duration::from_secs(GRACE_SECONDS + 15))
            .await;
        assert_eq!(
            exit.code(),
            Some(0),
            "{backend} round {round}: exit after SIGTERM under load ({exit:?}, {took:?} after the signal)"
        );
        for publisher in publishers {
            actix_rt::time::timeout(Duration::from_secs(30), publisher)
                .await
                .expect("publishers stop once the service is gone")
                .expect("publisher task");
        }
    }
    let accepted: Vec<String> = accepted.borrow().clone();
    eprintln!(
        "{backend}: {} SIGTERMs under load, each exit code 0; {} events accepted, {:?}",
        rounds(&db),
        accepted.len(),
        started.elapsed()
    );

    // One more start: every accepted event reaches every endpoint.
    let last = Service::start_with(db.url(), "after the stops", &settings).await;
    let accepted: Vec<&str> = accepted.iter().map(String::as_str).collect();
    let what = format!("{backend}: every accepted event delivered to every endpoint");
    let receivers: Vec<&Receiver> = receivers.iter().collect();
    wait_for_webhook_ids(&receivers, &accepted, Duration::from_secs(60), &what).await;
    drop(last);
}
