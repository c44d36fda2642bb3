//! Schemas of the OpenAPI document that several handlers share: the values
//! a parameter or a field accepts, taken from the type that parses it, so
//! the document lists what the code takes. The handlers use them in their
//! `#[param]` and `#[schema]` attributes; `api::openapi` only collects.

use crate::core::delivery::lifecycle::{DeliveryState, StatusClass};
use crate::core::health::failure_policy::AlertKind;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::Object;

/// A string that is one of `names`.
pub fn one_of(names: impl IntoIterator<Item = &'static str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .build()
}

/// A delivery's `state`, as [`DeliveryState::parse`] takes it.
pub fn delivery_states() -> Object {
    one_of(DeliveryState::ALL.map(DeliveryState::as_str))
}

/// `status_class`, as [`StatusClass::parse`] takes it.
pub fn status_classes() -> Object {
    one_of(StatusClass::NAMES)
}

/// An alert's `kind`, as [`AlertKind::parse`] takes it.
pub fn alert_kinds() -> Object {
    one_of(AlertKind::ALL.map(AlertKind::as_str))
}
