//! Debugging and replaying deliveries, one module a capability: the
//! filters of the delivery, event and attempt lists ([`lists`]), retrying a
//! delivery and recovering the failed deliveries of a time window
//! ([`retry_and_recover`]), testing an endpoint with a ping ([`pings`]),
//! and what the new routes refuse ([`refusals`]). Below, the tenant they
//! all drive.

mod lists;
mod pings;
mod refusals;
mod retry_and_recover;

use crate::common::{id_of, wait_until, ApiResponse, TestApp, DELIVERY_TIMEOUT};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// Health limits that never get in the way: the breaker never opens and
/// the endpoint never disables itself, whatever fails.
fn patient(url: &str, retry_schedule: &[u32]) -> Value {
    json!({
        "url": url,
        "retry_schedule": retry_schedule,
        "breaker_failures": 100_000,
        "disable_after_failures": 100_000,
        "alert_thresholds": [],
    })
}

/// Asserts the status code of the attempt a retry or a test answered
/// (`Value::Null` for none).
fn assert_attempt_status(answer: &ApiResponse, status: Value) {
    assert_eq!(
        answer.body["attempt"]["status_code"], status,
        "{}",
        answer.body
    );
}

/// Asserts the state of the delivery a retry or a test answered.
fn assert_delivery_state(answer: &ApiResponse, state: &str) {
    assert_eq!(
        answer.body["delivery"]["state"],
        json!(state),
        "{}",
        answer.body
    );
}

fn ids(items: &[Value]) -> HashSet<String> {
    items.iter().map(id_of).collect()
}

fn set(items: &[&String]) -> HashSet<String> {
    items.iter().map(|item| item.to_string()).collect()
}

/// A tenant as its own key sees it: what a scenario does with it, each
/// call asserting the answer it expects unless it returns the answer.
struct Tenant<'a> {
    app: &'a TestApp,
    id: String,
    key: String,
}

impl<'a> Tenant<'a> {
    async fn create(app: &'a TestApp, id: &str) -> Tenant<'a> {
        let (id, key) = app.create_tenant(id).await;
        Tenant { app, id, key }
    }

    fn path(&self, under_tenant: &str) -> String {
        format!("/v1/tenants/{}/{under_tenant}", self.id)
    }

    /// Creates an endpoint; returns its id.
    async fn endpoint(&self, body: Value) -> String {
        id_of(&self.app.create_endpoint(&self.key, &self.id, body).await)
    }

    /// Publishes an event of `event_type` (202 expected); returns its id.
    async fn publish(&self, event_type: &str) -> String {
        // Events of one batch and the next never share a millisecond.
        actix_rt::time::sleep(Duration::from_millis(3)).await;
        self.app
            .publish_accepted(
                &self.key,
                &self.id,
                &json!({"type": event_type, "payload": {"n": 1}}),
            )
            .await
            .0
    }

    /// The only delivery of `event`.
    async fn delivery_of(&self, event: &str) -> String {
        self.app
            .single_delivery_id(&self.key, &self.id, event)
            .await
    }

    async fn delivery(&self, delivery: &str) -> Value {
        self.app.get_delivery(&self.key, &self.id, delivery).await
    }

    async fn wait_for_state(&self, delivery: &str, state: &str) -> Value {
        self.app
            .wait_for_delivery_state(&self.key, &self.id, delivery, state, DELIVERY_TIMEOUT)
            .await
    }

    /// Waits until every delivery of `endpoint` satisfies `done`.
    async fn wait_for_deliveries<F>(&self, endpoint: &str, done: F)
    where
        F: Fn(&str, i64) -> bool,
    {
        wait_until(DELIVERY_TIMEOUT, || async {
            let states = self
                .app
                .delivery_states(&self.key, &self.id, endpoint)
                .await;
            if !states.is_empty() && states.iter().all(|(_, state, n)| done(state, *n)) {
                Ok(())
            } else {
                Err(format!("deliveries of {endpoint} to settle: {states:?}"))
            }
        })
        .await;
    }

    /// The `created_at` of an event, from the event list.
    async fn created_at(&self, event: &str) -> String {
        let events = self.first_page("events", "").await;
        let found = events
            .iter()
            .find(|e| e["id"] == json!(event))
            .unwrap_or_else(|| panic!("event {event} is not listed: {events:?}"));
        found["created_at"]
            .as_str()
            .expect("created_at")
            .to_string()
    }

    async fn first_page(&self, resource: &str, query: &str) -> Vec<Value> {
        self.app
            .first_page(&self.key, &self.id, resource, query)
            .await
    }

    /// The deliveries of these events to these endpoints.
    async fn deliveries_of(&self, endpoints: &[&String], events: &[&String]) -> HashSet<String> {
        let mut found = HashSet::new();
        for endpoint in endpoints {
            for delivery in self
                .app
                .list_deliveries(&self.key, &self.id, &format!("endpoint_id={endpoint}"))
                .await
            {
                let event = delivery["event_id"].as_str().unwrap_or_default();
                if events.iter().any(|e| e.as_str() == event) {
                    found.insert(id_of(&delivery));
                }
            }
        }
        found
    }

    /// Every item of a list, following `next` with pages of `limit`;
    /// asserts that no item shows up twice.
    async fn all_pages(&self, path_and_query: &str, limit: u32) -> Vec<Value> {
        let mut items: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path_and_query.contains('?') {
                '&'
            } else {
                '?'
            };
            let mut path = format!("{path_and_query}{sep}limit={limit}");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page = self.app.get_json(&self.key, &path).await;
            let data = page["data"].as_array().expect("data array").clone();
            assert!(
                data.len() <= limit as usize,
                "{path}: page too long: {page}"
            );
            items.extend(data);
            match page["next"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        let unique = ids(&items);
        assert_eq!(
            unique.len(),
            items.len(),
            "{path_and_query}: an item came twice"
        );
        items
    }

    /// The ids `GET …/{resource}?{query}` answers, read in pages of two.
    async fn listed(&self, resource: &str, query: &str) -> HashSet<String> {
        ids(&self
            .all_pages(&self.path(&format!("{resource}?{query}")), 2)
            .await)
    }

    async fn retry(&self, delivery: &str) -> ApiResponse {
        self.post(&format!("deliveries/{delivery}/retry"), &json!({}))
            .await
    }

    async fn recover(&self, endpoint: &str, body: &Value) -> ApiResponse {
        self.post(&format!("endpoints/{endpoint}/recover"), body)
            .await
    }

    async fn test(&self, endpoint: &str, body: &Value) -> ApiResponse {
        self.post(&format!("endpoints/{endpoint}/test"), body).await
    }

    async fn post(&self, under_tenant: &str, body: &Value) -> ApiResponse {
        self.app
            .post(&self.key, &self.path(under_tenant), body)
            .await
    }

    async fn disable(&self, endpoint: &str) -> ApiResponse {
        self.app
            .disable_endpoint(&self.key, &self.id, endpoint)
            .await
    }

    async fn enable(&self, endpoint: &str, body: &Value) -> ApiResponse {
        self.app
            .enable_endpoint(&self.key, &self.id, endpoint, body)
            .await
    }
}
