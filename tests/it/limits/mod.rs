//! Limits with clear answers (issue 8): every input out of bounds is refused
//! with a problem naming it and changes nothing ([`inputs`]); a tenant's
//! endpoints, timeouts and in-flight total are capped ([`tenant_caps`]); the
//! operator's tenant is read-only and restored at every start
//! ([`operator_tenant`]). Below, the checks that nothing changed.

mod inputs;
mod operator_tenant;
mod tenant_caps;

use crate::common::{spawn_app, TestApp, TestDb};
use serde_json::{json, Value};

/// hookrelay on `db` with tenant `acme` and one endpoint of it that is
/// never sent anything (no event is published); returns the application,
/// the tenant, its key and the endpoint.
async fn app_with_idle_endpoint(db: TestDb) -> (TestApp, String, String, Value) {
    let app = spawn_app(db).await;
    let (tenant, key, endpoint) = app
        .create_tenant_with_endpoint(json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
    (app, tenant, key, endpoint)
}

/// The database of an application started in-process.
fn database_of(app: &TestApp) -> &TestDb {
    app.db
        .as_ref()
        .expect("an in-process app keeps its database")
}

fn count_rows(db: &TestDb, table: &str) -> i64 {
    db.count_sql(&format!("SELECT COUNT(*) AS n FROM {table}"))
}

/// The rows of every table a refused request might have written.
fn row_counts(app: &TestApp) -> Vec<(&'static str, i64)> {
    let db = database_of(app);
    ["tenants", "endpoints", "events", "deliveries"]
        .into_iter()
        .map(|table| (table, count_rows(db, table)))
        .collect()
}

/// Each body is refused on create and on update, naming `field`; the
/// endpoint and every table stay as they were.
pub(crate) async fn assert_refused_on_create_and_update(
    app: &TestApp,
    key: &str,
    tenant: &str,
    endpoint_id: &str,
    cases: &[(Value, &str)],
) {
    let path = format!("/v1/tenants/{tenant}/endpoints/{endpoint_id}");
    let before_view = app.get_json(key, &path).await;
    let before_rows = row_counts(app);
    for (fields, field) in cases {
        let mut create = json!({"url": "http://127.0.0.1:9/hook"});
        if let (Some(body), Some(extra)) = (create.as_object_mut(), fields.as_object()) {
            body.extend(extra.clone());
        }
        app.post(key, &format!("/v1/tenants/{tenant}/endpoints"), &create)
            .await
            .assert_invalid_field(field, &format!("create with {fields}"));
        app.patch(key, &path, fields)
            .await
            .assert_invalid_field(field, &format!("update with {fields}"));
    }
    assert_eq!(row_counts(app), before_rows, "refused requests wrote rows");
    let mut after_view = app.get_json(key, &path).await;
    // The live statistics move on their own; the configuration must not.
    after_view["stats"] = before_view["stats"].clone();
    assert_eq!(
        after_view, before_view,
        "a refused update changed the endpoint"
    );
}
