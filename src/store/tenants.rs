//! Tenants and API keys.

use super::models::{ApiKeyRow, TenantRow};
use super::schema::{api_keys, tenants};
use super::{dispatch, Db, StoreError};
use diesel::prelude::*;

/// hookrelay's own tenant: it holds the operator's alert endpoint. Its id
/// is not a valid tenant id, so no publisher can take it.
pub const SYSTEM_TENANT: &str = "hookrelay:operator";

/// Who an API key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOwner {
    Admin,
    Tenant(String),
}

/// Creates the tenant and its first key; `false` when the id is taken.
pub fn create(db: &mut Db, tenant: &TenantRow, key: &ApiKeyRow) -> Result<bool, StoreError> {
    db.transaction(|db| {
        let inserted = dispatch!(db, c => diesel::insert_into(tenants::table)
            .values(tenant)
            .on_conflict_do_nothing()
            .execute(c))?;
        if inserted == 0 {
            return Ok(false);
        }
        dispatch!(db, c => diesel::insert_into(api_keys::table).values(key).execute(c))?;
        Ok(true)
    })
}

pub fn list(db: &mut Db, after: Option<&str>, limit: i64) -> Result<Vec<TenantRow>, StoreError> {
    let after = after.unwrap_or_default();
    Ok(dispatch!(db, c => tenants::table
        .filter(tenants::id.gt(after))
        .filter(tenants::id.ne(SYSTEM_TENANT))
        .order(tenants::id)
        .limit(limit)
        .select(TenantRow::as_select())
        .load(c))?)
}

pub fn find(db: &mut Db, id: &str) -> Result<Option<TenantRow>, StoreError> {
    Ok(dispatch!(db, c => tenants::table
        .find(id)
        .select(TenantRow::as_select())
        .first(c)
        .optional())?)
}

pub fn rename(db: &mut Db, id: &str, name: &str) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::update(tenants::table.find(id))
        .set(tenants::name.eq(name))
        .execute(c))?;
    Ok(())
}

pub fn exists(db: &mut Db, id: &str) -> Result<bool, StoreError> {
    let found: Option<String> = dispatch!(db, c => tenants::table
        .find(id)
        .select(tenants::id)
        .first(c)
        .optional())?;
    Ok(found.is_some())
}

pub fn key_owner(db: &mut Db, key_hash: &str) -> Result<Option<KeyOwner>, StoreError> {
    let row: Option<ApiKeyRow> = dispatch!(db, c => api_keys::table
        .find(key_hash)
        .select(ApiKeyRow::as_select())
        .first(c)
        .optional())?;
    Ok(row.map(|row| row.tenant_id.map_or(KeyOwner::Admin, KeyOwner::Tenant)))
}

pub fn has_admin_key(db: &mut Db) -> Result<bool, StoreError> {
    let found: Option<String> = dispatch!(db, c => api_keys::table
        .filter(api_keys::tenant_id.is_null())
        .select(api_keys::key_hash)
        .first(c)
        .optional())?;
    Ok(found.is_some())
}

pub fn add_admin_key(db: &mut Db, key: &ApiKeyRow) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::insert_into(api_keys::table).values(key).execute(c))?;
    Ok(())
}

/// Deletes every stored admin key and stores `new`, if any, in one
/// transaction; returns how many were deleted.
pub fn replace_admin_keys(db: &mut Db, new: Option<&ApiKeyRow>) -> Result<usize, StoreError> {
    db.transaction(|db| {
        let revoked = dispatch!(db, c => diesel::delete(api_keys::table
            .filter(api_keys::tenant_id.is_null()))
            .execute(c))?;
        if let Some(new) = new {
            add_admin_key(db, new)?;
        }
        Ok(revoked)
    })
}

/// Makes the system tenant exist; it has no key of its own.
pub fn ensure_system_tenant(db: &mut Db, now: i64) -> Result<(), StoreError> {
    let tenant = TenantRow {
        id: SYSTEM_TENANT.to_owned(),
        name: "hookrelay operator alerts".to_owned(),
        created_at: now,
    };
    dispatch!(db, c => diesel::insert_into(tenants::table)
        .values(&tenant)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(())
}
