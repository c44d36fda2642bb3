//! The admin key: checked when configured, generated at first start when
//! not, and rotated from the command line.

use super::StartupError;
use crate::config::{Settings, MIN_ADMIN_KEY_CHARS};
use crate::ids;
use crate::store::models::ApiKeyRow;
use crate::store::{tenants, Store, StoreError, ADMIN_KEY_LOCK};
use crate::time::now_ms;

/// A configured admin key must be long enough not to be guessed.
pub(super) fn check_admin_key(settings: &Settings) -> Result<(), StartupError> {
    match &settings.admin_key {
        Some(key) if key.trim().chars().count() < MIN_ADMIN_KEY_CHARS => {
            Err(StartupError::Settings(format!(
                "HOOKRELAY_ADMIN_KEY (--admin-key) must be at least {MIN_ADMIN_KEY_CHARS} characters long (e.g. `openssl rand -hex 24`); unset it to have one generated"
            )))
        }
        _ => Ok(()),
    }
}

/// A configured admin key replaces every stored one; without one, the key
/// generated at first start is returned, so that it can be shown once.
pub(super) async fn admin_key_at_start(
    store: &Store,
    settings: &Settings,
) -> Result<Option<String>, StoreError> {
    match settings.admin_key {
        Some(_) => {
            let revoked = store
                .run(|db| tenants::replace_admin_keys(db, None))
                .await?;
            if revoked > 0 {
                log::info!(
                    "HOOKRELAY_ADMIN_KEY is the admin key: revoked {revoked} stored admin key(s)"
                );
            }
            Ok(None)
        }
        None => store.run(ensure_admin_key).await,
    }
}

/// Opens (and migrates) the database at `database_url`, revokes every
/// stored admin key and stores a new one, returned with the number revoked.
pub fn rotate_admin_key(database_url: &str) -> Result<(String, usize), StoreError> {
    let store = Store::open(database_url)?;
    let key = ids::api_key("hra");
    let row = ApiKeyRow::new(&key, None, Some("rotated".to_owned()), now_ms());
    let revoked = tenants::replace_admin_keys(&mut store.get()?, Some(&row))?;
    Ok((key, revoked))
}

/// Creates an admin key when the database has none; returns it so it can be
/// shown once. Only its hash is stored. Instances starting together on one
/// database take this step one at a time, so only the first generates one.
fn ensure_admin_key(db: &mut crate::store::Db) -> Result<Option<String>, StoreError> {
    db.exclusively(ADMIN_KEY_LOCK, |db| {
        if tenants::has_admin_key(db)? {
            return Ok(None);
        }
        let key = ids::api_key("hra");
        let row = ApiKeyRow::new(
            &key,
            None,
            Some("generated at first start".to_owned()),
            now_ms(),
        );
        tenants::add_admin_key(db, &row)?;
        Ok(Some(key))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_admin_key_shorter_than_24_characters_stops_start_up() {
        let with_key = |key: &str| Settings {
            admin_key: Some(key.to_owned()),
            ..Settings::new("sqlite://unused.db")
        };
        let refused = check_admin_key(&with_key("admin-secret"))
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(
            refused.contains("HOOKRELAY_ADMIN_KEY") && refused.contains("24 characters"),
            "{refused:?}"
        );
        assert!(check_admin_key(&with_key(&" ".repeat(30))).is_err());
        assert!(check_admin_key(&with_key(&"k".repeat(23))).is_err());
        assert!(check_admin_key(&with_key(&"k".repeat(24))).is_ok());
        assert!(check_admin_key(&Settings::new("sqlite://unused.db")).is_ok());
    }
}
