//! Sealing an endpoint's secrets and credential headers at rest, and
//! opening them again, when a secret key is set.

use crate::core::secrets::secret_box::{OpenError, SecretBox, NONCE_LEN};
use crate::store::models::EndpointRow;
use crate::store::schema::endpoints;
use crate::store::{dispatch, Db, StoreError};
use diesel::prelude::*;
use std::collections::BTreeMap;

/// What a sealed header value is bound to: its endpoint and its name, so
/// that it cannot be moved to another endpoint or header and still open.
fn header_binding(endpoint_id: &str, name: &str) -> String {
    format!("{endpoint_id}/headers/{}", name.to_ascii_lowercase())
}

/// Seals the plain secrets of `rows` (read at start with a key set): only
/// the secret columns and the custom headers are written. Run by the
/// writer, in its transaction.
pub fn seal_secrets(
    db: &mut Db,
    rows: &[EndpointRow],
    secrets: &SecretBox,
) -> Result<(), StoreError> {
    for row in rows {
        let sealed = row.sealed(secrets);
        dispatch!(db, c => diesel::update(endpoints::table.find(&row.id))
            .set((
                endpoints::secret.eq(&sealed.secret),
                endpoints::previous_secret.eq(&sealed.previous_secret),
                endpoints::headers.eq(&sealed.headers),
            ))
            .execute(c))?;
    }
    Ok(())
}

impl EndpointRow {
    /// The row with its secrets readable, or why one is not.
    pub fn opened(mut self, secrets: &SecretBox) -> Result<EndpointRow, OpenError> {
        self.secret = secrets.open(&self.id, &self.secret)?;
        self.previous_secret = self
            .previous_secret
            .map(|previous| secrets.open(&self.id, &previous))
            .transpose()?;
        self.headers = serde_json::to_string(&self.opened_headers(secrets)?).unwrap_or_default();
        Ok(self)
    }

    /// The custom headers with their sensitive values readable.
    pub(super) fn opened_headers(
        &self,
        secrets: &SecretBox,
    ) -> Result<BTreeMap<String, String>, OpenError> {
        self.header_map()
            .into_iter()
            .map(|(name, value)| {
                if self.is_secret_header(&name) {
                    let opened = secrets.open(&header_binding(&self.id, &name), &value)?;
                    Ok((name, opened))
                } else {
                    Ok((name, value))
                }
            })
            .collect()
    }

    /// The row as it is stored: plain secrets sealed, each with a fresh
    /// nonce, when a key is set.
    pub fn sealed(&self, secrets: &SecretBox) -> EndpointRow {
        let seal = |value: &str| {
            if secrets.needs_sealing(value) {
                secrets.seal(&self.id, value, crate::ids::random_bytes::<NONCE_LEN>())
            } else {
                value.to_owned()
            }
        };
        let headers: BTreeMap<String, String> = self
            .header_map()
            .into_iter()
            .map(|(name, value)| {
                if self.is_secret_header(&name) && secrets.needs_sealing(&value) {
                    let nonce = crate::ids::random_bytes::<NONCE_LEN>();
                    let sealed = secrets.seal(&header_binding(&self.id, &name), &value, nonce);
                    (name, sealed)
                } else {
                    (name, value)
                }
            })
            .collect();
        EndpointRow {
            secret: seal(&self.secret),
            previous_secret: self.previous_secret.as_deref().map(seal),
            headers: serde_json::to_string(&headers).unwrap_or_default(),
            ..self.clone()
        }
    }

    /// Whether a secret column, or a sensitive header's value, holds a
    /// plain value that should be sealed.
    pub fn needs_sealing(&self, secrets: &SecretBox) -> bool {
        secrets.needs_sealing(&self.secret)
            || self
                .previous_secret
                .as_deref()
                .is_some_and(|previous| secrets.needs_sealing(previous))
            || self
                .header_map()
                .iter()
                .any(|(name, value)| self.is_secret_header(name) && secrets.needs_sealing(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::secrets::secret_box::SecretKey;

    fn keyed() -> SecretBox {
        let key = SecretKey::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("key");
        SecretBox::new(Some(key))
    }

    fn row_with_headers(headers: &str) -> EndpointRow {
        EndpointRow {
            headers: headers.to_owned(),
            ..EndpointRow::with_defaults("ep_1", "acme", 0)
        }
    }

    #[test]
    fn credential_header_values_are_sealed_and_open_again() {
        let secrets = keyed();
        let row = row_with_headers(r#"{"Authorization":"Bearer t0k","X-Tag":"blue"}"#);
        assert!(row.needs_sealing(&secrets));
        let sealed = row.sealed(&secrets);
        assert!(!sealed.headers.contains("t0k"), "{}", sealed.headers);
        assert!(sealed.headers.contains("blue"));
        assert!(!sealed.needs_sealing(&secrets));
        let opened = sealed.opened(&secrets).expect("opens");
        assert_eq!(opened.header_map(), row.header_map());
    }

    #[test]
    fn a_sealed_header_value_opens_only_under_its_own_name() {
        let secrets = keyed();
        let sealed = row_with_headers(r#"{"Authorization":"Bearer t0k"}"#).sealed(&secrets);
        let value = &sealed.header_map()["Authorization"];
        let moved = EndpointRow {
            headers: serde_json::to_string(&BTreeMap::from([("X-Api-Key", value)]))
                .expect("serializes"),
            ..sealed.clone()
        };
        assert!(moved.opened(&secrets).is_err());
    }

    #[test]
    fn without_a_key_header_values_stay_plain() {
        let row = row_with_headers(r#"{"Authorization":"Bearer t0k"}"#);
        let plain = SecretBox::default();
        assert!(!row.needs_sealing(&plain));
        assert_eq!(row.sealed(&plain).headers, row.headers);
    }
}
