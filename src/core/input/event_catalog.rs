//! The event-type catalog: which names a tenant may declare, what a
//! declaration holds, and whether a published type gets through.

use crate::core::delivery::envelope::{is_operational, OPERATIONAL_PREFIX};
use crate::core::input::domain::{check_event_type, check_text, FieldError};
use serde_json::Value;
use std::collections::HashSet;

/// Declared types a tenant may have, archived ones included.
pub const MAX_EVENT_TYPES_PER_TENANT: i64 = 1000;

/// Longest description, in characters (as for endpoints).
pub const MAX_DESCRIPTION: usize = 1024;

/// Largest declared schema, serialized.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// A name the catalog can hold: a publishable event type (dot-separated
/// segments) outside hookrelay's reserved prefix, in any case.
pub fn parse_name(value: &str) -> Result<String, FieldError> {
    check_event_type(value).map_err(|reason| FieldError::new("name", reason))?;
    if is_operational(value) {
        return Err(FieldError::new(
            "name",
            format!("types starting with {OPERATIONAL_PREFIX:?} are reserved for hookrelay's own events"),
        ));
    }
    Ok(value.to_owned())
}

pub fn check_description(value: &str) -> Result<(), FieldError> {
    if value.chars().count() > MAX_DESCRIPTION {
        return Err(FieldError::new(
            "description",
            format!("may hold at most {MAX_DESCRIPTION} characters"),
        ));
    }
    check_text("description", value)
}

/// A declared payload schema: any JSON object up to [`MAX_SCHEMA_BYTES`],
/// kept as text for documentation. It is not applied to payloads.
pub fn parse_schema(value: &Value) -> Result<String, FieldError> {
    if !value.is_object() {
        return Err(FieldError::new("schema", "must be a JSON object"));
    }
    let text = value.to_string();
    if text.len() > MAX_SCHEMA_BYTES {
        return Err(FieldError::new(
            "schema",
            format!("may be at most {MAX_SCHEMA_BYTES} bytes of JSON"),
        ));
    }
    Ok(text)
}

/// What publishing needs to know of a tenant: whether it refuses types it
/// has not declared and, only then, which ones it has declared (archived
/// ones excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishRule {
    AnyType,
    DeclaredOnly(HashSet<String>),
}

impl PublishRule {
    /// The tenant's own setting wins; `None` follows the global default.
    pub fn needs_catalog(tenant_setting: Option<bool>, global_default: bool) -> bool {
        tenant_setting.unwrap_or(global_default)
    }

    /// Whether an event of `event_type` may be published; the refusal names
    /// the event's `type` field.
    pub fn admit(&self, event_type: &str) -> Result<(), FieldError> {
        match self {
            PublishRule::AnyType => Ok(()),
            PublishRule::DeclaredOnly(declared) if declared.contains(event_type) => Ok(()),
            PublishRule::DeclaredOnly(_) => Err(FieldError::new(
                "type",
                format!("{event_type:?} is not an active type of this tenant's event-type catalog, and the tenant refuses unknown types"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_event_type_rules_outside_the_reserved_prefix() {
        assert_eq!(parse_name("invoice.paid"), Ok("invoice.paid".to_owned()));
        for refused in [
            "",
            "invoice..paid",
            "invoice.*",
            "a b",
            "HookRelay.endpoint.x",
        ] {
            let error = parse_name(refused).expect_err(refused);
            assert_eq!(error.field, "name", "{refused}");
        }
        assert!(parse_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn a_schema_is_a_bounded_object() {
        assert_eq!(
            parse_schema(&json!({"type": "object"})),
            Ok(r#"{"type":"object"}"#.to_owned())
        );
        for refused in [json!([]), json!("x"), json!(null), json!(1)] {
            assert_eq!(
                parse_schema(&refused).map_err(|e| e.field),
                Err("schema".to_owned())
            );
        }
        let huge = json!({"description": "x".repeat(MAX_SCHEMA_BYTES)});
        assert!(parse_schema(&huge).is_err());
    }

    #[test]
    fn descriptions_are_bounded_free_text() {
        assert!(check_description("line one\nline two\tend").is_ok());
        assert!(check_description("bell \u{7}").is_err());
        assert!(check_description(&"é".repeat(MAX_DESCRIPTION)).is_ok());
        assert!(check_description(&"é".repeat(MAX_DESCRIPTION + 1)).is_err());
    }

    #[test]
    fn the_tenant_setting_overrides_the_global_default() {
        assert!(!PublishRule::needs_catalog(None, false));
        assert!(PublishRule::needs_catalog(None, true));
        assert!(PublishRule::needs_catalog(Some(true), false));
        assert!(!PublishRule::needs_catalog(Some(false), true));
    }

    #[test]
    fn only_declared_types_pass_when_unknown_ones_are_refused() {
        assert!(PublishRule::AnyType.admit("whatever.type").is_ok());
        let rule = PublishRule::DeclaredOnly(HashSet::from(["invoice.paid".to_owned()]));
        assert!(rule.admit("invoice.paid").is_ok());
        let refused = rule.admit("invoice.refunded").expect_err("undeclared");
        assert_eq!(refused.field, "type");
        // Names compare exactly, as endpoint patterns do.
        assert!(rule.admit("Invoice.paid").is_err());
    }
}
