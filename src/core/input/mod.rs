//! Input from publishers and operators: values parsed once into types that
//! can only be valid, event types and their patterns, target URLs, text.

pub mod domain;
pub mod event_catalog;
pub mod matching;
pub mod target_policy;
pub mod text;
