//! Schemas of the OpenAPI document that several handlers share: the values
//! a parameter or a field accepts, taken from the type that parses it, so
//! the document lists what the code takes. The handlers use them in their
//! `#[param]` and `#[schema]` attributes; `api::openapi` only collects.

use super::query::Choice;
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

/// A filter's value, as [`Choice::parse`] takes it.
fn choice<C: Choice>() -> Object {
    one_of(C::names())
}

/// A delivery's `state`.
pub fn delivery_states() -> Object {
    choice::<DeliveryState>()
}

/// `status_class`.
pub fn status_classes() -> Object {
    choice::<StatusClass>()
}

/// An alert's `kind`.
pub fn alert_kinds() -> Object {
    choice::<AlertKind>()
}
