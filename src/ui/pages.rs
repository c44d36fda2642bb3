//! The dashboard's pages: each reads what it shows through the API with
//! the operator's key, and renders it.

use super::charts::{self, Point};
use super::html::{self, badge, button_form, percent, text};
use super::{failed, login_token, see_other, signed_in, Dashboard};
use crate::core::input::domain::is_id;
use crate::store::health;
use crate::time::now_ms;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

const HOUR_MS: i64 = 60 * 60 * 1000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Endpoints of a tenant page that get a 24 h sparkline (each costs a read).
const SPARKLINES: usize = 25;
/// Attempts read for an endpoint's charts, newest first.
const CHART_ATTEMPTS: i64 = 500;
/// Attempts read for each sparkline of a tenant page.
const SPARKLINE_ATTEMPTS: i64 = 200;

pub async fn home(request: HttpRequest, ui: web::Data<Dashboard>) -> HttpResponse {
    match signed_in(&request, &ui).await {
        Ok(signed_in) => see_other(&signed_in.home()),
        Err(answer) => answer,
    }
}

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(include_str!("style.css"))
}

pub async fn not_found(request: HttpRequest, ui: web::Data<Dashboard>) -> HttpResponse {
    let signed_in = signed_in(&request, &ui).await.ok();
    html::error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page.",
        signed_in.as_ref(),
    )
}

pub async fn login_form(request: HttpRequest, ui: web::Data<Dashboard>) -> HttpResponse {
    if let Ok(signed_in) = signed_in(&request, &ui).await {
        return see_other(&signed_in.home());
    }
    login_page(StatusCode::OK, None)
}

/// The sign-in form, with why the last try failed.
pub fn login_page(status: StatusCode, problem: Option<&str>) -> HttpResponse {
    let (token, cookie) = login_token();
    let body = html! {
        h1 { "Sign in" }
        p { "With the admin key, or a tenant's API key." }
        @if let Some(problem) = problem {
            p.problem role="alert" { (problem) }
        }
        form.login method="post" action="/ui/login" {
            input type="hidden" name="csrf" value=(token);
            label for="key" { "API key" }
            input #key type="password" name="key" autocomplete="off" required;
            button type="submit" { "Sign in" }
        }
    };
    let mut response = html::page("Sign in", None, body);
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub async fn tenants(request: HttpRequest, ui: web::Data<Dashboard>) -> HttpResponse {
    let signed_in = match signed_in(&request, &ui).await {
        Ok(signed_in) => signed_in,
        Err(answer) => return answer,
    };
    if !signed_in.is_admin() {
        return see_other(&signed_in.home());
    }
    let listed = match ui.api.get(signed_in.key(), "/v1/tenants?limit=100").await {
        Ok(listed) => listed,
        Err(error) => return failed(error, Some(&signed_in)),
    };
    let mut rows = Vec::new();
    for tenant in listed["data"].as_array().into_iter().flatten() {
        let id = text(&tenant["id"]);
        let health = ui
            .api
            .get(signed_in.key(), &format!("/v1/tenants/{id}/health"))
            .await
            .unwrap_or(Value::Null);
        let endpoints: Vec<&Value> = health["data"].as_array().into_iter().flatten().collect();
        let disabled = endpoints
            .iter()
            .filter(|e| e["status"] == "disabled")
            .count();
        let open = endpoints
            .iter()
            .filter(|e| e["circuit"] != "closed")
            .count();
        rows.push((id, text(&tenant["name"]), endpoints.len(), disabled, open));
    }
    let body = html! {
        h1 { "Tenants" }
        table {
            thead { tr { th { "Tenant" } th { "Name" } th { "Endpoints" } th { "Disabled" } th { "Breaker not closed" } } }
            tbody {
                @for (id, name, endpoints, disabled, open) in &rows {
                    tr {
                        td { a href=(format!("/ui/tenants/{id}")) { (id) } }
                        td { (name) }
                        td.number { (endpoints) }
                        td.number class=(if *disabled > 0 { "bad" } else { "" }) { (disabled) }
                        td.number class=(if *open > 0 { "warn" } else { "" }) { (open) }
                    }
                }
            }
        }
        @if listed["next"].is_string() { p { "The first 100 tenants are shown." } }
    };
    html::page("Tenants", Some(&signed_in), body)
}

#[derive(Deserialize)]
pub struct TenantPath {
    tenant: String,
}

pub async fn tenant(
    request: HttpRequest,
    ui: web::Data<Dashboard>,
    path: web::Path<TenantPath>,
) -> HttpResponse {
    let signed_in = match signed_in(&request, &ui).await {
        Ok(signed_in) => signed_in,
        Err(answer) => return answer,
    };
    let tenant = &path.tenant;
    if !is_id(tenant) {
        return failed(super::UiError::NotFound, Some(&signed_in));
    }
    let health = match ui
        .api
        .get(signed_in.key(), &format!("/v1/tenants/{tenant}/health"))
        .await
    {
        Ok(health) => health,
        Err(error) => return failed(error, Some(&signed_in)),
    };
    let endpoints: Vec<Value> = health["data"].as_array().cloned().unwrap_or_default();
    let now = now_ms();
    let charted: Vec<String> = endpoints
        .iter()
        .take(SPARKLINES)
        .map(|endpoint| text(&endpoint["endpoint_id"]))
        .collect();
    let sparklines: Vec<Markup> = attempt_points(&ui, charted, now - DAY_MS, SPARKLINE_ATTEMPTS)
        .await
        .iter()
        .map(|points| {
            let day = charts::buckets(points, now, DAY_MS, 24);
            charts::success_chart(&day, "success rate, last 24 hours, by hour")
        })
        .collect();
    let body = html! {
        h1 { "Tenant " (tenant) }
        p.links {
            a href=(format!("/ui/tenants/{tenant}/alerts")) { "Alerts" }
        }
        form.lookup method="get" action=(format!("/ui/tenants/{tenant}/events")) {
            label for="event" { "Event id" }
            input #event type="text" name="id" required;
            button type="submit" { "Look up" }
        }
        h2 { "Endpoints, worst first" }
        table.endpoints {
            thead { tr {
                th { "Endpoint" } th { "Status" } th { "Breaker" } th { "Failure streak" }
                th { "Success, last hour" } th { "Pending" } th { "Held" } th { "Last 24 h" }
            } }
            tbody {
                @for (n, endpoint) in endpoints.iter().enumerate() {
                    @let id = text(&endpoint["endpoint_id"]);
                    @let sick = endpoint["status"] != "active"
                        || endpoint["consecutive_failures"].as_u64().unwrap_or(0) > 0;
                    tr data-endpoint=(id) class=(if sick { "bad" } else { "ok" }) {
                        td {
                            a href=(format!("/ui/tenants/{tenant}/endpoints/{id}")) { (id) }
                            br; span.url { (text(&endpoint["url"])) }
                        }
                        td.status { (badge(&text(&endpoint["status"]))) }
                        td.breaker { (badge(&text(&endpoint["circuit"]))) }
                        td.number class=(if sick { "bad" } else { "" }) { (text(&endpoint["consecutive_failures"])) }
                        td.number { (percent(endpoint["last_hour_success_rate"].as_f64())) }
                        td.number { (text(&endpoint["pending"])) }
                        td.number { (text(&endpoint["held"])) }
                        td { @if let Some(sparkline) = sparklines.get(n) { (sparkline) } }
                    }
                }
            }
        }
        @if endpoints.is_empty() { p { "This tenant has no endpoint yet." } }
    };
    html::page(&format!("Tenant {tenant}"), Some(&signed_in), body)
}

/// The timings of each endpoint's attempts since `since` (at most `limit`
/// each), for charts: read from the store in one blocking task, three
/// columns a row, because the API's attempt lists carry every receiver's
/// answer. Only ids the API just answered for this key are asked for.
async fn attempt_points(
    ui: &Dashboard,
    endpoints: Vec<String>,
    since: i64,
    limit: i64,
) -> Vec<Vec<Point>> {
    let read = ui.app.store.run(move |db| {
        endpoints
            .iter()
            .map(|endpoint| health::timings(db, endpoint, since, limit))
            .collect::<Result<Vec<_>, _>>()
    });
    match read.await {
        Ok(timings) => timings
            .into_iter()
            .map(|rows| {
                rows.into_iter()
                    .map(|(started_at_ms, duration_ms, status)| Point {
                        started_at_ms,
                        duration_ms,
                        succeeded: status.is_some_and(|status| (200..300).contains(&status)),
                    })
                    .collect()
            })
            .collect(),
        Err(error) => {
            log::warn!("reading attempts for the dashboard's charts failed: {error}");
            Vec::new()
        }
    }
}

#[derive(Deserialize)]
pub struct EndpointPath {
    tenant: String,
    endpoint: String,
}

pub async fn endpoint(
    request: HttpRequest,
    ui: web::Data<Dashboard>,
    path: web::Path<EndpointPath>,
) -> HttpResponse {
    let signed_in = match signed_in(&request, &ui).await {
        Ok(signed_in) => signed_in,
        Err(answer) => return answer,
    };
    let EndpointPath { tenant, endpoint } = path.into_inner();
    if !is_id(&tenant) || !is_id(&endpoint) {
        return failed(super::UiError::NotFound, Some(&signed_in));
    }
    let base = format!("/v1/tenants/{tenant}/endpoints/{endpoint}");
    let health = match ui.api.get(signed_in.key(), &format!("{base}/health")).await {
        Ok(health) => health,
        Err(error) => return failed(error, Some(&signed_in)),
    };
    let last = ui
        .api
        .get(signed_in.key(), &format!("{base}/attempts?limit=20"))
        .await
        .unwrap_or(Value::Null);
    let now = now_ms();
    let points = attempt_points(&ui, vec![endpoint.clone()], now - DAY_MS, CHART_ATTEMPTS)
        .await
        .pop()
        .unwrap_or_default();
    let hour = charts::buckets(&points, now, HOUR_MS, 12);
    let day = charts::buckets(&points, now, DAY_MS, 24);
    let status = text(&health["status"]["state"]);
    let actions = format!("/ui/tenants/{tenant}/endpoints/{endpoint}");
    let body = html! {
        p.crumbs { a href=(format!("/ui/tenants/{tenant}")) { "Tenant " (tenant) } }
        h1 { "Endpoint " (endpoint) }
        p.url { (text(&health["url"])) }
        dl.facts {
            dt { "Status" } dd #status { (badge(&status))
                @if let Some(reason) = health["status"]["reason"].as_str() { " (" (reason) ")" } }
            dt { "Breaker" } dd #breaker { (badge(&text(&health["circuit"]["state"]))) }
            dt { "Next probe" } dd { (text(&health["circuit"]["next_probe_at"])) }
            dt { "Failure streak" } dd #streak { (text(&health["consecutive_failures"])) }
            dt { "Failing since" } dd { (text(&health["failing_since"])) }
            dt { "Pending" } dd { (text(&health["queue"]["pending"])) }
            dt { "Held" } dd #held { (text(&health["queue"]["held"])) }
            dt { "In flight" } dd { (text(&health["queue"]["in_flight"])) }
            dt { "Success, last hour" } dd { (percent(health["last_hour"]["success_rate"].as_f64())) }
            dt { "Success, last day" } dd { (percent(health["last_day"]["success_rate"].as_f64())) }
            dt { "Latency p50 / p95, last hour" } dd {
                (text(&health["last_hour"]["latency_p50_ms"])) " / " (text(&health["last_hour"]["latency_p95_ms"])) " ms" }
        }
        section.actions {
            @if status == "disabled" {
                (button_form(&signed_in, &format!("{actions}/enable-replay"), "Enable and replay held deliveries", "primary"))
                (button_form(&signed_in, &format!("{actions}/enable-cancel"), "Enable and cancel held deliveries", ""))
            } @else {
                (button_form(&signed_in, &format!("{actions}/disable"), "Disable", "danger"))
            }
            (button_form(&signed_in, &format!("{actions}/rotate-secret"), "Rotate secret", ""))
            (button_form(&signed_in, &format!("{actions}/test"), "Send test", ""))
        }
        h2 { "Last hour (5-minute slices)" }
        div.charts {
            figure { (charts::success_chart(&hour, "success rate, last hour")) figcaption { "Success rate" } }
            figure { (charts::latency_chart(&hour, "median latency, last hour")) figcaption { "Median latency" } }
        }
        h2 { "Last 24 hours (hourly)" }
        div.charts {
            figure { (charts::success_chart(&day, "success rate, last 24 hours")) figcaption { "Success rate" } }
            figure { (charts::latency_chart(&day, "median latency, last 24 hours")) figcaption { "Median latency" } }
        }
        h2 { "Last attempts" }
        (attempts_table(&tenant, last["data"].as_array().map(Vec::as_slice).unwrap_or_default(), true))
    };
    html::page(&format!("Endpoint {endpoint}"), Some(&signed_in), body)
}

/// Attempts with their status, duration and captured answer.
fn attempts_table(tenant: &str, attempts: &[Value], link_deliveries: bool) -> Markup {
    html! {
        table.attempts {
            thead { tr {
                th { "Started" } th { "Attempt" } th { "Status" } th { "Duration" } th { "Answer" }
                @if link_deliveries { th { "Delivery" } }
            } }
            tbody {
                @for attempt in attempts {
                    @let ok = attempt["status_code"].as_i64().is_some_and(|s| (200..300).contains(&s));
                    tr class=(if ok { "ok" } else { "bad" }) {
                        td { (text(&attempt["started_at"])) }
                        td.number { (text(&attempt["attempt"])) }
                        td { (text(&attempt["status_code"]))
                            @if let Some(kind) = attempt["error_kind"].as_str() { " " (kind) } }
                        td.number { (text(&attempt["duration_ms"])) " ms" }
                        td { pre.answer { (answer_of(attempt)) } }
                        @if link_deliveries {
                            td { @if let Some(delivery) = attempt["delivery_id"].as_str() {
                                a href=(format!("/ui/tenants/{tenant}/deliveries/{delivery}")) { (delivery) }
                            } }
                        }
                    }
                }
            }
        }
        @if attempts.is_empty() { p { "No attempt yet." } }
    }
}

/// The receiver's body, or the error message; both as plain text.
fn answer_of(attempt: &Value) -> String {
    attempt["response_body"]
        .as_str()
        .or_else(|| attempt["error_message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

pub async fn alerts(
    request: HttpRequest,
    ui: web::Data<Dashboard>,
    path: web::Path<TenantPath>,
) -> HttpResponse {
    let signed_in = match signed_in(&request, &ui).await {
        Ok(signed_in) => signed_in,
        Err(answer) => return answer,
    };
    let tenant = &path.tenant;
    if !is_id(tenant) {
        return failed(super::UiError::NotFound, Some(&signed_in));
    }
    let listed = match ui
        .api
        .get(
            signed_in.key(),
            &format!("/v1/tenants/{tenant}/alerts?limit=1000"),
        )
        .await
    {
        Ok(listed) => listed,
        Err(error) => return failed(error, Some(&signed_in)),
    };
    let alerts: Vec<&Value> = listed["data"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .take(100)
        .collect();
    let body = html! {
        p.crumbs { a href=(format!("/ui/tenants/{tenant}")) { "Tenant " (tenant) } }
        h1 { "Alerts, newest first" }
        table.alerts {
            thead { tr { th { "At" } th { "Kind" } th { "Endpoint" } th { "Failures" } th { "Last error" } } }
            tbody {
                @for alert in &alerts {
                    @let endpoint = text(&alert["endpoint_id"]);
                    tr {
                        td { (text(&alert["created_at"])) }
                        td { (text(&alert["kind"])) }
                        td { a href=(format!("/ui/tenants/{tenant}/endpoints/{endpoint}")) { (endpoint) } }
                        td.number { (text(&alert["consecutive_failures"])) }
                        td { (text(&alert["error"])) }
                    }
                }
            }
        }
        @if alerts.is_empty() { p { "No alert." } }
    };
    html::page("Alerts", Some(&signed_in), body)
}

#[derive(Deserialize)]
pub struct EventQuery {
    id: Option<String>,
}

pub async fn event(
    request: HttpRequest,
    ui: web::Data<Dashboard>,
    path: web::Path<TenantPath>,
    query: web::Query<EventQuery>,
) -> HttpResponse {
    let signed_in = match signed_in(&request, &ui).await {
        Ok(signed_in) => signed_in,
        Err(answer) => return answer,
    };
    let tenant = &path.tenant;
    let id = query.id.as_deref().unwrap_or_default().trim();
    if !is_id(tenant) || !is_id(id) {
        return failed(super::UiError::NotFound, Some(&signed_in));
    }
    let event = match ui
        .api
        .get(
            signed_in.key(),
            &format!("/v1/tenants/{tenant}/events/{id}"),
        )
        .await
    {
        Ok(event) => event,
        Err(error) => return failed(error, Some(&signed_in)),
    };
    let payload = serde_json::to_string_pretty(&event["payload"]).unwrap_or_default();
    let body = html! {
        p.crumbs { a href=(format!("/ui/tenants/{tenant}")) { "Tenant " (tenant) } }
        h1 { "Event " (id) }
        dl.facts {
            dt { "Type" } dd { (text(&event["type"])) }
            dt { "Published" } dd { (text(&event["timestamp"])) }
        }
        h2 { "Payload" }
        pre.payload { (payload) }
        h2 { "Deliveries" }
        table {
            thead { tr { th { "Delivery" } th { "Endpoint" } th { "State" } th { "Attempts" } th { "Next attempt" } } }
            tbody {
                @for delivery in event["deliveries"].as_array().into_iter().flatten() {
                    @let delivery_id = text(&delivery["id"]);
                    @let endpoint = text(&delivery["endpoint_id"]);
                    tr {
                        td { a href=(format!("/ui/tenants/{tenant}/deliveries/{delivery_id}")) { (delivery_id) } }
                        td { a href=(format!("/ui/tenants/{tenant}/endpoints/{endpoint}")) { (endpoint) } }
                        td { (badge(&text(&delivery["state"]))) }
                        td.number { (text(&delivery["attempt_count"])) }
                        td { (text(&delivery["next_attempt_at"])) }
                    }
                }
            }
        }
    };
    html::page(&format!("Event {id}"), Some(&signed_in), body)
}

#[derive(Deserialize)]
pub struct DeliveryPath {
    tenant: String,
    delivery: String,
}

pub async fn delivery(
    request: HttpRequest,
    ui: web::Data<Dashboard>,
    path: web::Path<DeliveryPath>,
) -> HttpResponse {
    let signed_in = match signed_in(&request, &ui).await {
        Ok(signed_in) => signed_in,
        Err(answer) => return answer,
    };
    let DeliveryPath { tenant, delivery } = path.into_inner();
    if !is_id(&tenant) || !is_id(&delivery) {
        return failed(super::UiError::NotFound, Some(&signed_in));
    }
    let found = match ui
        .api
        .get(
            signed_in.key(),
            &format!("/v1/tenants/{tenant}/deliveries/{delivery}"),
        )
        .await
    {
        Ok(found) => found,
        Err(error) => return failed(error, Some(&signed_in)),
    };
    let endpoint = text(&found["endpoint_id"]);
    let event = text(&found["event_id"]);
    let body = html! {
        p.crumbs {
            a href=(format!("/ui/tenants/{tenant}")) { "Tenant " (tenant) } " · "
            a href=(format!("/ui/tenants/{tenant}/endpoints/{endpoint}")) { "Endpoint " (endpoint) } " · "
            a href=(format!("/ui/tenants/{tenant}/events?id={event}")) { "Event " (event) }
        }
        h1 { "Delivery " (delivery) }
        dl.facts {
            dt { "State" } dd #state { (badge(&text(&found["state"]))) }
            dt { "Attempts" } dd { (text(&found["attempt_count"])) }
            dt { "Next attempt" } dd { (text(&found["next_attempt_at"])) }
            dt { "Created" } dd { (text(&found["created_at"])) }
        }
        section.actions {
            (button_form(&signed_in, &format!("/ui/tenants/{tenant}/deliveries/{delivery}/retry"), "Retry now", "primary"))
        }
        h2 { "Attempts, oldest first" }
        (attempts_table(&tenant, found["attempts"].as_array().map(Vec::as_slice).unwrap_or_default(), false))
    };
    html::page(&format!("Delivery {delivery}"), Some(&signed_in), body)
}
