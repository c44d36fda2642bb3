//! Access and tenants: API key use, failed authentications, bad-key
//! memory, and what a tenant key may configure.

pub mod auth_failures;
pub mod key_use;
pub mod negative_cache;
pub mod tenant_caps;
