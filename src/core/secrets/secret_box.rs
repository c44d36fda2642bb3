//! Endpoint secrets at rest. With `HOOKRELAY_SECRET_KEY` set, a secret is
//! stored sealed (XChaCha20-Poly1305, bound to its endpoint's id) as
//! `enc:v1:<base64 of nonce ‖ ciphertext>`; without it, as the plain
//! secret. A stored value without the `enc:` prefix is plain, so rows
//! written before the key was set keep working until they are sealed.
//!
//! The caller draws the nonce: nothing here reads randomness.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Marks a sealed value; a secret given through the API may not start with
/// it, or it would be read back as sealed.
pub const SEALED_MARK: &str = "enc:";
const SEALED_V1: &str = "enc:v1:";
pub const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// The operator's key, parsed from the base64 of 32 bytes.
#[derive(Clone)]
pub struct SecretKey(XChaCha20Poly1305);

impl SecretKey {
    pub fn parse(encoded: &str) -> Result<SecretKey, String> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| "must be base64 (e.g. the output of `openssl rand -base64 32`)")?;
        if bytes.len() != KEY_LEN {
            return Err(format!(
                "must be the base64 of {KEY_LEN} bytes, not of {} (e.g. the output of `openssl rand -base64 32`)",
                bytes.len()
            ));
        }
        XChaCha20Poly1305::new_from_slice(&bytes)
            .map(SecretKey)
            .map_err(|_| format!("must be the base64 of {KEY_LEN} bytes"))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// Why a stored secret cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the secret is encrypted but HOOKRELAY_SECRET_KEY is not set; start hookrelay with the key that encrypted it")]
    NoKey,
    #[error("the secret cannot be decrypted with the configured HOOKRELAY_SECRET_KEY (another key encrypted it, or the row was altered)")]
    WrongKey,
    #[error("the stored secret is in an unknown or malformed encrypted form")]
    Malformed,
}

/// Reads and writes the stored form of secrets, with the key if one is set.
#[derive(Debug, Clone, Default)]
pub struct SecretBox {
    key: Option<SecretKey>,
}

impl SecretBox {
    pub fn new(key: Option<SecretKey>) -> SecretBox {
        SecretBox { key }
    }

    /// The stored form of `secret` for endpoint `endpoint_id`: sealed with
    /// `nonce` when a key is set, plain otherwise.
    pub fn seal(&self, endpoint_id: &str, secret: &str, nonce: [u8; NONCE_LEN]) -> String {
        let Some(SecretKey(cipher)) = &self.key else {
            return secret.to_owned();
        };
        let payload = Payload {
            msg: secret.as_bytes(),
            aad: endpoint_id.as_bytes(),
        };
        let ciphertext = cipher.encrypt(XNonce::from_slice(&nonce), payload).expect(
            "XChaCha20-Poly1305 fails only on messages of about 256 GiB; secrets are bounded",
        );
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        format!("{SEALED_V1}{}", STANDARD.encode(sealed))
    }

    /// A value that tells whether two instances hold the same key (or both
    /// none) without showing it: a constant sealed under a constant nonce,
    /// which a key maps to one value and another key to another.
    pub fn key_check(&self) -> String {
        self.seal("instance key check", "hookrelay", [0; NONCE_LEN])
    }

    /// The secret behind a stored value of endpoint `endpoint_id`.
    pub fn open(&self, endpoint_id: &str, stored: &str) -> Result<String, OpenError> {
        if !is_sealed(stored) {
            return Ok(stored.to_owned());
        }
        let encoded = stored.strip_prefix(SEALED_V1).ok_or(OpenError::Malformed)?;
        let Some(SecretKey(cipher)) = &self.key else {
            return Err(OpenError::NoKey);
        };
        let sealed = STANDARD.decode(encoded).map_err(|_| OpenError::Malformed)?;
        if sealed.len() < NONCE_LEN {
            return Err(OpenError::Malformed);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: endpoint_id.as_bytes(),
        };
        let plain = cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| OpenError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| OpenError::Malformed)
    }

    /// Whether a stored value should be sealed when next written: a key is
    /// set and the value is plain.
    pub fn needs_sealing(&self, stored: &str) -> bool {
        self.key.is_some() && !is_sealed(stored)
    }
}

/// Refuses a secret that would be read back as sealed once stored plain.
pub fn check_storable(secret: &str) -> Result<(), String> {
    if is_sealed(secret) {
        Err(format!(
            "may not start with \"{SEALED_MARK}\", which marks an encrypted secret"
        ))
    } else {
        Ok(())
    }
}

pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_MARK)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const OTHER_KEY: &str = "HxwdHhscGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn sealed_box(key: &str) -> SecretBox {
        SecretBox::new(Some(SecretKey::parse(key).unwrap()))
    }

    #[test]
    fn the_key_check_tells_keys_apart_and_shows_none() {
        let check = sealed_box(KEY).key_check();
        assert_eq!(check, sealed_box(KEY).key_check());
        assert_ne!(check, sealed_box(OTHER_KEY).key_check());
        assert_ne!(check, SecretBox::new(None).key_check());
        assert!(!check.contains(KEY));
    }

    #[test]
    fn sealed_secrets_open_under_the_same_key_and_endpoint_only() {
        let secrets = sealed_box(KEY);
        let stored = secrets.seal("ep_1", SECRET, [7; NONCE_LEN]);
        assert!(stored.starts_with("enc:v1:"));
        assert!(!stored.contains(SECRET));
        assert_eq!(secrets.open("ep_1", &stored), Ok(SECRET.to_owned()));
        assert_eq!(secrets.open("ep_2", &stored), Err(OpenError::WrongKey));
        assert_eq!(
            sealed_box(OTHER_KEY).open("ep_1", &stored),
            Err(OpenError::WrongKey)
        );
        assert_eq!(
            SecretBox::default().open("ep_1", &stored),
            Err(OpenError::NoKey)
        );
    }

    #[test]
    fn different_nonces_give_different_stored_forms() {
        let secrets = sealed_box(KEY);
        assert_ne!(
            secrets.seal("ep_1", SECRET, [1; NONCE_LEN]),
            secrets.seal("ep_1", SECRET, [2; NONCE_LEN])
        );
    }

    #[test]
    fn plain_values_are_read_as_they_are_and_sealed_only_with_a_key() {
        let secrets = sealed_box(KEY);
        assert_eq!(secrets.open("ep_1", SECRET), Ok(SECRET.to_owned()));
        assert!(secrets.needs_sealing(SECRET));
        assert!(!secrets.needs_sealing(&secrets.seal("ep_1", SECRET, [0; NONCE_LEN])));
        let without_key = SecretBox::default();
        assert_eq!(without_key.seal("ep_1", SECRET, [0; NONCE_LEN]), SECRET);
        assert!(!without_key.needs_sealing(SECRET));
        assert!(check_storable(SECRET).is_ok());
        assert!(check_storable("enc:v1:looks-sealed").is_err());
    }

    #[test]
    fn altered_or_unknown_forms_are_refused() {
        let secrets = sealed_box(KEY);
        let stored = secrets.seal("ep_1", SECRET, [3; NONCE_LEN]);
        let mut altered = stored.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(secrets.open("ep_1", &altered), Err(OpenError::WrongKey));
        assert_eq!(
            secrets.open("ep_1", "enc:v2:abc"),
            Err(OpenError::Malformed)
        );
        assert_eq!(secrets.open("ep_1", "enc:v1:!!"), Err(OpenError::Malformed));
        assert_eq!(
            secrets.open("ep_1", "enc:v1:AAAA"),
            Err(OpenError::Malformed)
        );
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(SecretKey::parse(KEY).is_ok());
        assert!(SecretKey::parse("not base64!").is_err());
        assert!(SecretKey::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxw=").is_err());
    }
}
