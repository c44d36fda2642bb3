//! Identifiers and secrets drawn from the clock and the system's randomness.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// `<prefix>_<uuid v7>`: unique and ordered by creation time, so ids double
/// as stable pagination cursors.
pub fn time_ordered(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// When a [`time_ordered`] id was made, in milliseconds since the epoch
/// (by the clock of the instance that made it).
pub fn created_at_ms(id: &str) -> Option<i64> {
    let (_, uuid) = id.split_once('_')?;
    let (seconds, nanos) = uuid::Uuid::try_parse(uuid).ok()?.get_timestamp()?.to_unix();
    i64::try_from(seconds)
        .ok()?
        .checked_mul(1000)?
        .checked_add(i64::from(nanos / 1_000_000))
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// A new API key: 32 random bytes, URL-safe base64, with a readable prefix.
pub fn api_key(prefix: &str) -> String {
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// Characters of a key kept in the clear, to recognise it in a list: the
/// `hrk_` mark and 8 random characters (48 of its 256 random bits).
pub const KEY_PREFIX_CHARS: usize = 12;

pub fn key_prefix(key: &str) -> String {
    key.chars().take(KEY_PREFIX_CHARS).collect()
}

/// Keys are stored only as this digest; they carry 256 random bits, so a
/// plain SHA-256 is enough (no password-stretching needed).
pub fn key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A name for this process when none is configured: the host's name and a
/// random suffix, so two instances on one host differ.
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| {
            name.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                .take(48)
                .collect::<String>()
        })
        .unwrap_or_default();
    let suffix: String = random_bytes::<3>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if host.is_empty() {
        format!("hookrelay-{suffix}")
    } else {
        format!("{host}-{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_ordered_id_tells_when_it_was_made() {
        let before = chrono::Utc::now().timestamp_millis();
        let made = created_at_ms(&time_ordered("dlv")).expect("a v7 id");
        let after = chrono::Utc::now().timestamp_millis();
        assert!((before..=after).contains(&made), "{before} {made} {after}");
        assert_eq!(created_at_ms("dlv_not-a-uuid"), None);
        assert_eq!(
            created_at_ms(&format!("dlv_{}", uuid::Uuid::new_v4().simple())),
            None
        );
    }

    #[test]
    fn ids_sort_by_creation() {
        let first = time_ordered("evt");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = time_ordered("evt");
        assert!(first.starts_with("evt_"));
        assert!(first < second);
    }

    #[test]
    fn key_hash_is_stable_hex() {
        assert_eq!(key_hash("abc").len(), 64);
        assert_eq!(key_hash("abc"), key_hash("abc"));
        assert_ne!(api_key("hr"), api_key("hr"));
    }
}
