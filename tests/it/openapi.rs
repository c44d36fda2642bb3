//! The OpenAPI document at `/openapi.json`: served without a key, it covers
//! every route the service registers and no other, documents the key on
//! every route that needs one, and shows request bodies as closed objects
//! (unknown fields are refused).

use std::collections::BTreeSet;

use crate::common::{spawn_app, TestApp, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(response.status(), StatusCode::OK, "served without a key");
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    response.json().await.expect("the document is JSON")
}

/// Every (method, path, operation) of the document.
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let paths = document["paths"].as_object().expect("paths is an object");
    let mut found = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                found.push((method.to_owned(), path.clone(), operation.clone()));
            }
        }
    }
    found
}

/// Follows a `$ref` into `components`.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            document
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling reference {reference}"))
        }
        None => schema,
    }
}

#[actix_rt::test]
async fn the_document_covers_every_registered_route_and_nothing_else() {
    let app = spawn_app(TestDb::sqlite()).await;
    let document = document(&app).await;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "an OpenAPI 3 document: {}",
        document["openapi"]
    );
    let documented: BTreeSet<(String, String)> = operations(&document)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let registered: BTreeSet<(String, String)> = hookrelay::api::ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    let ids: Vec<String> = operations(&document)
        .iter()
        .map(|(method, path, operation)| {
            operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has an operationId"))
                .to_owned()
        })
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "operationIds are unique: {ids:?}");

    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty(),
        "routes without documentation: {undocumented:?}"
    );
    assert!(
        not_served.is_empty(),
        "documented, not served: {not_served:?}"
    );
}

#[actix_rt::test]
async fn every_route_under_v1_and_metrics_documents_the_key_and_refuses_a_request_without_one() {
    let app = spawn_app(TestDb::sqlite()).await;
    let document = document(&app).await;
    let schemes = &document["components"]["securitySchemes"];
    let (scheme_name, scheme) = schemes
        .as_object()
        .and_then(|schemes| schemes.iter().next())
        .expect("a security scheme");
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    for (method, path, operation) in operations(&document) {
        let route = format!("{method} {path}");
        let security = operation["security"].as_array();
        // Any path id will do: the key is checked before the ids.
        let concrete = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "x"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
        let response = app.send(method, &concrete, None, &[], None).await;
        if path.starts_with("/v1/") || path == "/metrics" {
            let needs = security
                .into_iter()
                .flatten()
                .any(|requirement| requirement.get(scheme_name).is_some());
            assert!(needs, "{route} documents the key: {operation}");
            response.assert_problem(401, &format!("{route} without a key"));
            assert!(
                operation["responses"]["401"].is_object(),
                "{route} documents its 401"
            );
        } else {
            assert!(security.is_none(), "{route} needs no key: {operation}");
            assert_eq!(response.status, StatusCode::OK, "{route} without a key");
        }
    }
}

#[actix_rt::test]
async fn request_bodies_are_closed_objects_and_errors_are_problems() {
    let app = spawn_app(TestDb::sqlite()).await;
    let document = document(&app).await;
    let problem = &document["components"]["schemas"]["Problem"];
    let required: BTreeSet<&str> = problem["required"]
        .as_array()
        .expect("Problem lists its required fields")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for field in ["type", "title", "status", "detail"] {
        assert!(required.contains(field), "Problem requires {field}");
    }
    assert!(
        problem["properties"]["field"].is_object(),
        "Problem has field"
    );

    let mut bodies = 0;
    for (method, path, operation) in operations(&document) {
        let route = format!("{method} {path}");
        let responses = operation["responses"].as_object().expect("responses");
        for (status, response) in responses {
            let response = resolve(&document, response);
            if status.starts_with('4') || status.starts_with('5') || status == "default" {
                let schema = &response["content"]["application/problem+json"]["schema"];
                assert_eq!(
                    resolve(&document, schema),
                    problem,
                    "{route} {status} is a problem"
                );
            }
        }
        let Some(body) = operation.get("requestBody") else {
            continue;
        };
        bodies += 1;
        let schema = resolve(&document, &body["content"]["application/json"]["schema"]);
        assert_eq!(
            schema["additionalProperties"],
            Value::Bool(false),
            "{route}: unknown fields are refused, so the body is closed: {schema}"
        );
        for status in ["400", "413", "422"] {
            assert!(responses.contains_key(status), "{route} documents {status}");
        }
    }
    assert!(bodies >= 10, "request bodies found: {bodies}");
}
