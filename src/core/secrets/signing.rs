//! Standard Webhooks 1.0 secrets and signatures, and the HMAC every
//! signature scheme ([`crate::core::secrets::signature_scheme`]) is built on.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET_PREFIX: &str = "whsec_";

/// A signing secret: the key bytes behind a `whsec_<base64>` string.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    encoded: String,
    key: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must start with \"whsec_\"")]
    MissingPrefix,
    #[error("the part after \"whsec_\" must be base64")]
    NotBase64,
    #[error("the key must be between 24 and 64 bytes")]
    BadLength,
}

impl Secret {
    pub fn parse(encoded: &str) -> Result<Secret, SecretError> {
        let b64 = encoded
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD.decode(b64).map_err(|_| SecretError::NotBase64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::BadLength);
        }
        Ok(Secret {
            encoded: encoded.to_owned(),
            key,
        })
    }

    /// Builds a secret from fresh random bytes (the caller draws them).
    pub fn from_key_bytes(key: &[u8]) -> Secret {
        Secret {
            encoded: format!("{SECRET_PREFIX}{}", STANDARD.encode(key)),
            key: key.to_vec(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.encoded
    }

    /// The `webhook-signature` header value for one attempt.
    pub fn sign(&self, message_id: &str, timestamp: i64, body: &[u8]) -> String {
        let timestamp = timestamp.to_string();
        let mac = hmac_sha256(
            &self.key,
            &[
                message_id.as_bytes(),
                b".",
                timestamp.as_bytes(),
                b".",
                body,
            ],
        );
        format!("v1,{}", STANDARD.encode(mac))
    }
}

/// HMAC-SHA256 under `key` of the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published test vector of the Standard Webhooks specification.
    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_different_timestamp_changes_the_signature() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_ne!(
            secret.sign("msg_1", 1, b"{}"),
            secret.sign("msg_1", 2, b"{}")
        );
    }

    #[test]
    fn rejects_malformed_secrets() {
        assert_eq!(Secret::parse("abc"), Err(SecretError::MissingPrefix));
        assert_eq!(Secret::parse("whsec_!!!"), Err(SecretError::NotBase64));
        assert_eq!(Secret::parse("whsec_YWJj"), Err(SecretError::BadLength));
    }

    #[test]
    fn generated_secrets_round_trip() {
        let secret = Secret::from_key_bytes(&[7u8; 24]);
        assert!(secret.as_str().starts_with("whsec_"));
        assert_eq!(Secret::parse(secret.as_str()).unwrap(), secret);
    }
}
