//! Signing and secrets: webhook signatures and their schemes, secrets
//! sealed at rest, and what of a secret-bearing string may be logged.

pub mod redact;
pub mod secret_box;
pub mod signature_scheme;
pub mod signing;
