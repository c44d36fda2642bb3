//! What a receiver chooses to answer is stored only within bounds.

use crate::common::{attempts_of, spawn_app_with_acme_endpoint, Receiver, TestDb};
use serde_json::json;

backend_tests!(many_large_response_headers_are_stored_bounded_and_marked_truncated);

/// The bound of the captured headers (names and values), and a margin for
/// the JSON around them and the truncation note.
const HEADER_BYTES: usize = 16 * 1024;
const STORED_MARGIN: usize = 2 * 1024;

async fn many_large_response_headers_are_stored_bounded_and_marked_truncated(db: TestDb) {
    let receiver = Receiver::start();
    // 95 headers of 4,000 bytes: ~380 KB an attempt if all were kept.
    receiver.set_headers(
        (0..95)
            .map(|n| (format!("x-filler-{n:02}"), "f".repeat(4000)))
            .collect(),
    );
    let (app, tenant, key) = spawn_app_with_acme_endpoint(db, receiver.url()).await;
    let event_id = app
        .publish_event(&key, &tenant, "order.paid", json!({}))
        .await;
    let delivery = app
        .wait_for_single_delivery(&key, &tenant, &event_id, "succeeded")
        .await;

    let attempts = attempts_of(&delivery);
    let attempt = &attempts[0];
    assert_eq!(
        attempt["response_headers_truncated"],
        json!(true),
        "{attempt}"
    );
    let headers = attempt["response_headers"]
        .as_object()
        .unwrap_or_else(|| panic!("headers are an object: {attempt}"));
    let shown: usize = headers
        .iter()
        .map(|(name, value)| name.len() + value.as_str().map_or(0, str::len))
        .sum();
    assert!(shown <= HEADER_BYTES, "{shown} bytes of headers shown");
    assert!(
        headers.len() < 95 && headers.keys().any(|name| name.starts_with("x-filler-")),
        "some of the large headers are kept, not all: {:?}",
        headers.keys().collect::<Vec<_>>()
    );

    let stored = app
        .db
        .as_ref()
        .expect("the app holds its database")
        .count_sql("SELECT CAST(MAX(LENGTH(response_headers)) AS BIGINT) AS n FROM attempts");
    assert!(
        stored > 0 && stored <= (HEADER_BYTES + STORED_MARGIN) as i64,
        "the stored headers of an attempt take {stored} bytes"
    );
}
