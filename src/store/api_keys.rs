//! API keys: several per tenant, each stored as its SHA-256 digest with an
//! id, an optional name and its first characters (never the key itself).

use super::models::ApiKeyRow;
use super::schema::api_keys;
use super::{dispatch, tenant_page, Db, StoreError};
use crate::ids;
use diesel::prelude::*;
use std::collections::HashSet;

/// A tenant's keys are all checked at every miss of the key cache and
/// listed in one page.
pub const MAX_KEYS_PER_TENANT: i64 = 100;

impl ApiKeyRow {
    /// The row of a new key; `tenant_id` `None` makes an admin key.
    pub fn new(key: &str, tenant_id: Option<&str>, name: Option<String>, now: i64) -> ApiKeyRow {
        ApiKeyRow {
            key_hash: ids::key_hash(key),
            tenant_id: tenant_id.map(str::to_owned),
            created_at: now,
            id: ids::time_ordered("key"),
            name,
            prefix: Some(ids::key_prefix(key)),
            last_used_at: None,
        }
    }
}

/// Which of `hashes` are still stored: a key revoked anywhere (through
/// any instance, or by `admin-key rotate`) is deleted, so it is not.
pub fn still_stored(db: &mut Db, hashes: &[String]) -> Result<HashSet<String>, StoreError> {
    let mut stored = HashSet::with_capacity(hashes.len());
    // Bounded statements, whatever the number of keys remembered.
    for chunk in hashes.chunks(500) {
        let found: Vec<String> = dispatch!(db, c => api_keys::table
            .filter(api_keys::key_hash.eq_any(chunk))
            .select(api_keys::key_hash)
            .load(c))?;
        stored.extend(found);
    }
    Ok(stored)
}

/// Adds a tenant's key; `false` when the tenant has the most it may have.
/// Run through the writer, so that no other create comes between the
/// count and the insert.
pub fn create(db: &mut Db, row: &ApiKeyRow) -> Result<bool, StoreError> {
    if let Some(tenant_id) = &row.tenant_id {
        db.lock_tenant_totals(tenant_id)?;
    }
    let count: i64 = dispatch!(db, c => api_keys::table
        .filter(api_keys::tenant_id.eq(&row.tenant_id))
        .count()
        .get_result(c))?;
    if count >= MAX_KEYS_PER_TENANT {
        return Ok(false);
    }
    dispatch!(db, c => diesel::insert_into(api_keys::table).values(row).execute(c))?;
    Ok(true)
}

/// A page of the tenant's keys after `after`, by id: ids are time-ordered,
/// so oldest first.
pub fn list(
    db: &mut Db,
    tenant_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ApiKeyRow>, StoreError> {
    Ok(
        dispatch!(db, c => tenant_page!(api_keys.id, tenant_id, after, limit)
        .select(ApiKeyRow::as_select())
        .load(c))?,
    )
}

/// Records a use of the key at `at`, unless a later one is recorded (by
/// another instance sharing the database). A key revoked meanwhile has no
/// row left to update, which is no error.
pub fn record_use(db: &mut Db, key_hash: &str, at: i64) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::update(api_keys::table
        .find(key_hash)
        .filter(api_keys::last_used_at.is_null().or(api_keys::last_used_at.lt(at))))
        .set(api_keys::last_used_at.eq(at))
        .execute(c))?;
    Ok(())
}

/// Deletes the tenant's key `id`; returns its digest, `None` when the
/// tenant has no such key.
pub fn revoke(db: &mut Db, tenant_id: &str, id: &str) -> Result<Option<String>, StoreError> {
    Ok(dispatch!(db, c => diesel::delete(api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::id.eq(id)))
        .returning(api_keys::key_hash)
        .get_result(c)
        .optional())?)
}
