//! The event-type catalog (issue 8): a tenant declares its types, archives
//! and restores them, and may refuse events of types it has not declared.

use crate::common::{spawn_app, spawn_app_with, Receiver, TestApp, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};

backend_tests!(
    a_tenant_declares_lists_changes_archives_and_restores_its_types,
    bad_catalog_input_is_refused_naming_the_field_and_changes_nothing,
    another_tenants_catalog_answers_404,
    a_tenant_that_refuses_unknown_types_accepts_only_active_declared_ones,
    the_global_default_refuses_unknown_types_unless_the_tenant_opts_out,
);

const TENANT: &str = "acme";

fn types_path(tenant: &str) -> String {
    format!("/v1/tenants/{tenant}/event-types")
}

fn type_path(tenant: &str, name: &str) -> String {
    format!("/v1/tenants/{tenant}/event-types/{name}")
}

fn names(list: &Value) -> Vec<&str> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("a list has a data array: {list}"))
        .iter()
        .map(|item| item["name"].as_str().unwrap_or_default())
        .collect()
}

async fn create_type(app: &TestApp, key: &str, body: Value) -> Value {
    let response = app.post(key, &types_path(TENANT), &body).await;
    assert_eq!(
        response.status,
        StatusCode::CREATED,
        "create {body}: {}",
        response.body
    );
    response.body
}

async fn a_tenant_declares_lists_changes_archives_and_restores_its_types(db: TestDb) {
    let app = spawn_app(db).await;
    let (_, key) = app.create_tenant(TENANT).await;
    let schema = json!({"type": "object", "required": ["invoice"]});
    let paid = create_type(
        &app,
        &key,
        json!({"name": "invoice.paid", "description": "An invoice was paid", "schema": schema}),
    )
    .await;
    assert_eq!(paid["name"], json!("invoice.paid"));
    assert_eq!(paid["description"], json!("An invoice was paid"));
    assert_eq!(paid["schema"], schema);
    assert_eq!(paid["archived"], json!(false));
    create_type(&app, &key, json!({"name": "invoice.refunded"})).await;
    create_type(&app, &key, json!({"name": "customer.created"})).await;

    let duplicate = app
        .post(&key, &types_path(TENANT), &json!({"name": "invoice.paid"}))
        .await;
    duplicate.assert_problem(409, "creating an active type again");

    let fetched = app.get_json(&key, &type_path(TENANT, "invoice.paid")).await;
    assert_eq!(fetched, paid);

    // Pages follow the names, one at a time here.
    let first = app
        .get_json(&key, &format!("{}?limit=2", types_path(TENANT)))
        .await;
    assert_eq!(names(&first), ["customer.created", "invoice.paid"]);
    let cursor = first["next"].as_str().expect("a cursor to the next page");
    let second = app
        .get_json(
            &key,
            &format!("{}?limit=2&cursor={cursor}", types_path(TENANT)),
        )
        .await;
    assert_eq!(names(&second), ["invoice.refunded"]);
    assert_eq!(second["next"], Value::Null);

    let patched = app
        .patch_json(
            &key,
            &type_path(TENANT, "invoice.paid"),
            &json!({"description": "Paid in full"}),
        )
        .await;
    assert_eq!(patched["description"], json!("Paid in full"));
    assert_eq!(patched["schema"], schema, "an absent schema stays");
    let cleared = app
        .patch(
            &key,
            &type_path(TENANT, "invoice.paid"),
            &json!({"schema": null}),
        )
        .await;
    assert_eq!(cleared.body["schema"], Value::Null, "{}", cleared.body);
    assert_eq!(cleared.body["description"], json!("Paid in full"));

    let archived = app
        .delete(&key, &type_path(TENANT, "invoice.refunded"))
        .await;
    assert_eq!(archived.status, StatusCode::OK, "{}", archived.body);
    assert_eq!(archived.body["archived"], json!(true));
    assert!(archived.body["archived_at"].is_string());
    let active = app.get_json(&key, &types_path(TENANT)).await;
    assert_eq!(names(&active), ["customer.created", "invoice.paid"]);
    let all = app
        .get_json(
            &key,
            &format!("{}?include_archived=true", types_path(TENANT)),
        )
        .await;
    assert_eq!(
        names(&all),
        ["customer.created", "invoice.paid", "invoice.refunded"]
    );
    assert_eq!(all["data"][2]["archived"], json!(true));
    let still_there = app
        .get_json(&key, &type_path(TENANT, "invoice.refunded"))
        .await;
    assert_eq!(still_there["archived"], json!(true));

    let restored = create_type(
        &app,
        &key,
        json!({"name": "invoice.refunded", "description": "Back"}),
    )
    .await;
    assert_eq!(restored["archived"], json!(false));
    assert_eq!(restored["archived_at"], Value::Null);
    assert_eq!(restored["description"], json!("Back"));
    let active = app.get_json(&key, &types_path(TENANT)).await;
    assert_eq!(
        names(&active),
        ["customer.created", "invoice.paid", "invoice.refunded"]
    );

    let missing = app.get(&key, &type_path(TENANT, "invoice.unknown")).await;
    missing.assert_problem(404, "an undeclared type");
    let missing = app
        .delete(&key, &type_path(TENANT, "invoice.unknown"))
        .await;
    missing.assert_problem(404, "archiving an undeclared type");
}

async fn bad_catalog_input_is_refused_naming_the_field_and_changes_nothing(db: TestDb) {
    let app = spawn_app(db).await;
    let (_, key) = app.create_tenant(TENANT).await;
    create_type(&app, &key, json!({"name": "invoice.paid"})).await;
    let refused = [
        (json!({"name": "hookrelay.endpoint.failing"}), "name"),
        (json!({"name": "HookRelay.mine"}), "name"),
        (json!({"name": "invoice..paid"}), "name"),
        (json!({"name": "invoice.*"}), "name"),
        (json!({"name": "x".repeat(256)}), "name"),
        (json!({}), "name"),
        (json!({"name": "a.b", "schema": [1]}), "schema"),
        (json!({"name": "a.b", "schema": "object"}), "schema"),
        (
            json!({"name": "a.b", "description": "x".repeat(1025)}),
            "description",
        ),
        (
            json!({"name": "a.b", "description": "bell \u{7}"}),
            "description",
        ),
        (json!({"name": "a.b", "colour": "red"}), "colour"),
    ];
    for (body, field) in refused {
        let response = app.post(&key, &types_path(TENANT), &body).await;
        response.assert_invalid_field(field, &format!("create {body}"));
    }
    let patch = app
        .patch(
            &key,
            &type_path(TENANT, "invoice.paid"),
            &json!({"schema": 5}),
        )
        .await;
    patch.assert_invalid_field("schema", "a schema that is not an object");
    let patch = app
        .patch(
            &key,
            &type_path(TENANT, "invoice.paid"),
            &json!({"name": "other"}),
        )
        .await;
    patch.assert_invalid_field("name", "the name cannot change");
    let list = app
        .get(
            &key,
            &format!("{}?include_archived=yes", types_path(TENANT)),
        )
        .await;
    list.assert_invalid_field("include_archived", "a flag that is not a boolean");
    let list = app
        .get(&key, &format!("{}?limit=0", types_path(TENANT)))
        .await;
    list.assert_invalid_field("limit", "a limit of 0");

    let all = app
        .get_json(
            &key,
            &format!("{}?include_archived=true", types_path(TENANT)),
        )
        .await;
    assert_eq!(names(&all), ["invoice.paid"], "nothing else was stored");
    let unchanged = app.get_json(&key, &type_path(TENANT, "invoice.paid")).await;
    assert_eq!(unchanged["schema"], Value::Null);
    assert_eq!(unchanged["description"], json!(""));

    let tenant = app
        .patch(
            &key,
            &format!("/v1/tenants/{TENANT}"),
            &json!({"reject_unknown_event_types": "yes"}),
        )
        .await;
    tenant.assert_invalid_field(
        "reject_unknown_event_types",
        "a setting that is not a boolean",
    );
    let operator = app
        .patch(
            &app.admin_key,
            "/v1/tenants/hookrelay:operator",
            &json!({"reject_unknown_event_types": true}),
        )
        .await;
    operator.assert_problem(403, "the operator tenant is read-only");
    let no_key = app
        .send(reqwest::Method::GET, &types_path(TENANT), None, &[], None)
        .await;
    no_key.assert_problem(401, "no key");
}

async fn another_tenants_catalog_answers_404(db: TestDb) {
    let app = spawn_app(db).await;
    let (_, key) = app.create_tenant(TENANT).await;
    let (_, other_key) = app.create_tenant("globex").await;
    create_type(&app, &key, json!({"name": "invoice.paid"})).await;
    let path = type_path(TENANT, "invoice.paid");
    for response in [
        app.get(&other_key, &types_path(TENANT)).await,
        app.post(&other_key, &types_path(TENANT), &json!({"name": "x.y"}))
            .await,
        app.get(&other_key, &path).await,
        app.patch(&other_key, &path, &json!({"description": "mine"}))
            .await,
        app.delete(&other_key, &path).await,
        app.get(&other_key, &format!("/v1/tenants/{TENANT}")).await,
        app.patch(
            &other_key,
            &format!("/v1/tenants/{TENANT}"),
            &json!({"reject_unknown_event_types": true}),
        )
        .await,
    ] {
        response.assert_problem(404, "another tenant's catalog");
    }
    let own = app.get_json(&other_key, &types_path("globex")).await;
    assert_eq!(names(&own), Vec::<&str>::new(), "globex sees only its own");
    let untouched = app.get_json(&key, &path).await;
    assert_eq!(untouched["description"], json!(""));
    assert_eq!(untouched["archived"], json!(false));
    let tenant = app.get_json(&key, &format!("/v1/tenants/{TENANT}")).await;
    assert_eq!(tenant["reject_unknown_event_types"], Value::Null);
}

async fn publish_status(app: &TestApp, key: &str, event_type: &str) -> (StatusCode, Value) {
    let response = app
        .publish(key, TENANT, &json!({"type": event_type, "payload": {}}))
        .await;
    (response.status, response.body)
}

async fn set_reject(app: &TestApp, key: &str, setting: Value) -> Value {
    app.patch_json(
        key,
        &format!("/v1/tenants/{TENANT}"),
        &json!({"reject_unknown_event_types": setting}),
    )
    .await
}

async fn a_tenant_that_refuses_unknown_types_accepts_only_active_declared_ones(db: TestDb) {
    let app = spawn_app(db).await;
    let receiver = Receiver::start();
    let (_, key) = app.create_tenant(TENANT).await;
    app.create_endpoint(&key, TENANT, json!({"url": receiver.url()}))
        .await;
    // By default any type goes.
    assert_eq!(
        publish_status(&app, &key, "invoice.paid").await.0,
        StatusCode::ACCEPTED
    );
    let tenant = set_reject(&app, &key, json!(true)).await;
    assert_eq!(tenant["reject_unknown_event_types"], json!(true));
    assert_eq!(tenant["id"], json!(TENANT));

    let refused = app
        .publish(
            &key,
            TENANT,
            &json!({"id": "evt_refused", "type": "invoice.paid", "payload": {}}),
        )
        .await;
    refused.assert_invalid_field("type", "an undeclared type");
    let stored = app
        .get(&key, &format!("/v1/tenants/{TENANT}/events/evt_refused"))
        .await;
    stored.assert_problem(404, "a refused event is not stored");

    create_type(&app, &key, json!({"name": "invoice.paid"})).await;
    assert_eq!(
        publish_status(&app, &key, "invoice.paid").await.0,
        StatusCode::ACCEPTED,
        "a declared type goes at once"
    );
    let (status, body) = publish_status(&app, &key, "invoice.paid.late").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    app.delete(&key, &type_path(TENANT, "invoice.paid")).await;
    let (status, body) = publish_status(&app, &key, "invoice.paid").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "archived: {body}");
    assert_eq!(body["field"], json!("type"));

    create_type(&app, &key, json!({"name": "invoice.paid"})).await;
    assert_eq!(
        publish_status(&app, &key, "invoice.paid").await.0,
        StatusCode::ACCEPTED,
        "restored"
    );

    let tenant = set_reject(&app, &key, Value::Null).await;
    assert_eq!(tenant["reject_unknown_event_types"], Value::Null);
    assert_eq!(
        publish_status(&app, &key, "anything.else").await.0,
        StatusCode::ACCEPTED,
        "back to the global default, which accepts"
    );
    // Every accepted event reached the receiver.
    receiver
        .wait_for_count(4, crate::common::DELIVERY_TIMEOUT)
        .await;
}

async fn the_global_default_refuses_unknown_types_unless_the_tenant_opts_out(db: TestDb) {
    let app = spawn_app_with(db, |settings| settings.reject_unknown_event_types = true).await;
    let (_, key) = app.create_tenant(TENANT).await;
    let (status, body) = publish_status(&app, &key, "invoice.paid").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], json!("type"));
    create_type(&app, &key, json!({"name": "invoice.paid"})).await;
    assert_eq!(
        publish_status(&app, &key, "invoice.paid").await.0,
        StatusCode::ACCEPTED
    );
    set_reject(&app, &key, json!(false)).await;
    assert_eq!(
        publish_status(&app, &key, "customer.created").await.0,
        StatusCode::ACCEPTED,
        "the tenant's own choice wins"
    );
}
