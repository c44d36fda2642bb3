//! What the debugging and replay routes refuse: another tenant's
//! resources (404), no key (401), and bad input (422 naming the field),
//! with nothing sent or stored.

use super::{ids, set, Tenant};
use crate::common::{spawn_app, to_bytes, Receiver, TestDb, DELIVERY_TIMEOUT};
use reqwest::Method;
use serde_json::json;

backend_tests!(the_new_routes_hide_other_tenants_and_refuse_bad_input);

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
        for (route, method, under_tenant, body) in [
            (
                "attempts",
                Method::GET,
                format!("endpoints/{theirs}/attempts"),
                None,
            ),
            (
                "retry",
                Method::POST,
                format!("deliveries/{their_delivery}/retry"),
                Some(json!({})),
            ),
            (
                "recover",
                Method::POST,
                format!("endpoints/{theirs}/recover"),
                Some(recover.clone()),
            ),
            (
                "test",
                Method::POST,
                format!("endpoints/{theirs}/test"),
                Some(json!({})),
            ),
        ] {
            let path = format!("/v1/tenants/{tenant}/{under_tenant}");
            app.send(
                method,
                &path,
                Some(&acme.key),
                &[],
                body.as_ref().map(to_bytes),
            )
            .await
            .assert_problem(
                404,
                &format!("acme's key, {route} of globex under {tenant}"),
            );
        }
    }
    app.get(&acme.key, "/v1/tenants/globex/events")
        .await
        .assert_problem(404, "acme's key on globex's events");
    for path in [
        format!("/v1/tenants/acme/endpoints/{ours}/attempts"),
        "/v1/tenants/acme/events".to_string(),
    ] {
        app.send(Method::GET, &path, None, &[], None)
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
