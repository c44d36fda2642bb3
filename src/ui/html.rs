//! The page frame and the pieces every page shares. maud escapes every
//! value it is given: text from receivers and publishers cannot become
//! markup.

use super::SignedIn;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use maud::{html, Markup, DOCTYPE};

pub fn page(title: &str, signed_in: Option<&SignedIn>, body: Markup) -> HttpResponse {
    respond(StatusCode::OK, title, signed_in, body)
}

pub fn error_page(
    status: StatusCode,
    title: &str,
    message: &str,
    signed_in: Option<&SignedIn>,
) -> HttpResponse {
    let body = html! {
        h1 { (title) }
        p.problem { (message) }
        @if let Some(signed_in) = signed_in {
            p { a href=(signed_in.home()) { "Back to the overview" } }
        }
    };
    respond(status, title, signed_in, body)
}

fn respond(
    status: StatusCode,
    title: &str,
    signed_in: Option<&SignedIn>,
    body: Markup,
) -> HttpResponse {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · hookrelay" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                header {
                    a.brand href="/ui" { "hookrelay" }
                    @if let Some(signed_in) = signed_in {
                        nav {
                            a href=(signed_in.home()) {
                                @if signed_in.is_admin() { "Tenants" } @else { "Endpoints" }
                            }
                        }
                        form.logout method="post" action="/ui/logout" {
                            (csrf_field(signed_in))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// The hidden field every form of a session carries.
pub fn csrf_field(signed_in: &SignedIn) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed_in.csrf()); }
}

/// A form of one button that posts to `action`.
pub fn button_form(signed_in: &SignedIn, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(signed_in))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// `active`, `disabled`, `closed`, `open`… as a coloured badge.
pub fn badge(text: &str) -> Markup {
    let class = match text {
        "active" | "closed" | "succeeded" => "ok",
        "disabled" | "open" | "failed" | "cancelled" => "bad",
        _ => "warn",
    };
    html! { span class=(format!("badge {class}")) { (text) } }
}

/// A rate in [0, 1] as a percentage; a dash without attempts.
pub fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_owned(), |rate| format!("{:.1} %", rate * 100.0))
}

/// A JSON string field, or a dash.
pub fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => "–".to_owned(),
        other => other.to_string(),
    }
}
