//! Turning a stored alert into its notifications: a log line, an
//! operational event for the tenant's subscribed endpoints, and one for the
//! operator's alert URL.

use crate::core::delivery::envelope::Envelope;
use crate::core::health::failure_policy::AlertKind;
use crate::core::secrets::redact;
use crate::store::models::AlertRow;
use crate::store::models::EventRow;
use crate::time::rfc3339;
use serde_json::json;

/// The log line names the endpoint's origin only: the path or query of a
/// URL may be its credential (Slack-style URLs), and the error quotes it.
pub fn log(alert: &AlertRow) {
    let detail = format!(
        "endpoint {} ({}) of tenant {}: {} after {} consecutive failures; last error: {}",
        alert.endpoint_id,
        redact::endpoint_origin(&alert.endpoint_url),
        alert.tenant_id,
        alert.kind,
        alert.consecutive_failures,
        alert.error.as_deref().map_or_else(
            || "none".to_owned(),
            |error| redact::endpoint_url_in(error, &alert.endpoint_url)
        ),
    );
    match AlertKind::parse(&alert.kind) {
        Some(AlertKind::Disabled) => log::error!("alert: {detail}"),
        Some(AlertKind::Failing) => log::warn!("alert: {detail}"),
        _ => log::info!("alert: {detail}"),
    }
}

/// The operational event carrying `alert`, stored under `owner` (the
/// alert's tenant, or the system tenant for the operator's copy). Its id is
/// the alert's, so dispatching twice stores it once.
pub fn event(alert: &AlertRow, owner: &str) -> EventRow {
    let event_type = AlertKind::parse(&alert.kind)
        .map(AlertKind::event_type)
        .unwrap_or_else(|| format!("hookrelay.{}", alert.kind));
    let data = json!({
        "alert_id": alert.id,
        "endpoint_id": alert.endpoint_id,
        "endpoint_url": alert.endpoint_url,
        "kind": alert.kind,
        "threshold": alert.threshold,
        "consecutive_failures": alert.consecutive_failures,
        "failing_since": alert.failing_since.map(rfc3339),
        "last_status_code": alert.status_code,
        "last_error": alert.error,
        "disabled_reason": alert.disabled_reason,
        "created_at": rfc3339(alert.created_at),
    });
    let timestamp = rfc3339(alert.created_at);
    let body = Envelope {
        id: &alert.id,
        event_type: &event_type,
        timestamp: &timestamp,
        tenant_id: &alert.tenant_id,
        data: &data,
    }
    .to_body();
    EventRow {
        tenant_id: owner.to_owned(),
        id: alert.id.clone(),
        event_type,
        body,
        idempotency_key: None,
        created_at: alert.created_at,
    }
}
