//! The event-type catalog of each tenant, and the tenant's choice to refuse
//! events of types outside it.

use super::schema::{event_types, tenants};
use super::{dispatch, tenant_page, Db, StoreError};
use crate::core::input::event_catalog::{PublishRule, MAX_EVENT_TYPES_PER_TENANT};
use diesel::prelude::*;
use std::collections::{HashMap, HashSet};

/// One declared type; `archived_at` is set once it was deleted.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = event_types)]
pub struct EventTypeRow {
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    /// The declared payload schema, JSON text.
    pub json_schema: Option<String>,
    pub archived_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What creating a type did.
#[derive(Debug)]
pub enum Created {
    New(EventTypeRow),
    /// It was archived: it is active again, with the new description and schema.
    Restored(EventTypeRow),
    /// It exists and is active: nothing changed.
    AlreadyActive,
    /// The tenant has [`MAX_EVENT_TYPES_PER_TENANT`] types already.
    LimitReached,
}

/// Creates `row`, or brings it back from the archive. Run it on the writer,
/// which runs one job at a time, so that no other create comes between the
/// count and the insert; the tenant's totals lock does the same across
/// instances.
pub fn create(db: &mut Db, row: &EventTypeRow) -> Result<Created, StoreError> {
    db.lock_tenant_totals(&row.tenant_id)?;
    if let Some(existing) = find(db, &row.tenant_id, &row.name)? {
        if existing.archived_at.is_none() {
            return Ok(Created::AlreadyActive);
        }
        dispatch!(db, c => diesel::update(event_types::table.find((&row.tenant_id, &row.name)))
            .set((
                event_types::description.eq(&row.description),
                event_types::json_schema.eq(&row.json_schema),
                event_types::archived_at.eq(None::<i64>),
                event_types::updated_at.eq(row.updated_at),
            ))
            .execute(c))?;
        raise_publish_rule_version(db, &row.tenant_id)?;
        let restored = EventTypeRow {
            created_at: existing.created_at,
            ..row.clone()
        };
        return Ok(Created::Restored(restored));
    }
    let count: i64 = dispatch!(db, c => event_types::table
        .filter(event_types::tenant_id.eq(&row.tenant_id))
        .count()
        .get_result(c))?;
    if count >= MAX_EVENT_TYPES_PER_TENANT {
        return Ok(Created::LimitReached);
    }
    dispatch!(db, c => diesel::insert_into(event_types::table).values(row).execute(c))?;
    raise_publish_rule_version(db, &row.tenant_id)?;
    Ok(Created::New(row.clone()))
}

pub fn find(db: &mut Db, tenant_id: &str, name: &str) -> Result<Option<EventTypeRow>, StoreError> {
    Ok(dispatch!(db, c => event_types::table
        .find((tenant_id, name))
        .select(EventTypeRow::as_select())
        .first(c)
        .optional())?)
}

/// A page of the tenant's types by name, after `after`.
pub fn list(
    db: &mut Db,
    tenant_id: &str,
    include_archived: bool,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<EventTypeRow>, StoreError> {
    Ok(dispatch!(db, c => {
        let mut query = tenant_page!(event_types.name, tenant_id, after, limit);
        if !include_archived {
            query = query.filter(event_types::archived_at.is_null());
        }
        query.select(EventTypeRow::as_select()).load(c)
    })?)
}

/// Changes to a declared type; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct EventTypeChanges {
    pub description: Option<String>,
    /// `Some(None)` removes the schema.
    pub json_schema: Option<Option<String>>,
}

/// Applies `changes`; the updated type, or `None` when there is none.
pub fn update(
    db: &mut Db,
    tenant_id: &str,
    name: &str,
    changes: &EventTypeChanges,
    now: i64,
) -> Result<Option<EventTypeRow>, StoreError> {
    let Some(mut row) = find(db, tenant_id, name)? else {
        return Ok(None);
    };
    if let Some(description) = &changes.description {
        row.description.clone_from(description);
    }
    if let Some(schema) = &changes.json_schema {
        row.json_schema.clone_from(schema);
    }
    row.updated_at = now;
    dispatch!(db, c => diesel::update(event_types::table.find((tenant_id, name)))
        .set((
            event_types::description.eq(&row.description),
            event_types::json_schema.eq(&row.json_schema),
            event_types::updated_at.eq(now),
        ))
        .execute(c))?;
    Ok(Some(row))
}

/// Archives the type (kept, listed as archived); archiving it again
/// changes nothing. The type, or `None` when there is none.
pub fn archive(
    db: &mut Db,
    tenant_id: &str,
    name: &str,
    now: i64,
) -> Result<Option<EventTypeRow>, StoreError> {
    let Some(mut row) = find(db, tenant_id, name)? else {
        return Ok(None);
    };
    if row.archived_at.is_none() {
        dispatch!(db, c => diesel::update(event_types::table.find((tenant_id, name)))
            .set((
                event_types::archived_at.eq(Some(now)),
                event_types::updated_at.eq(now),
            ))
            .execute(c))?;
        raise_publish_rule_version(db, tenant_id)?;
        row.archived_at = Some(now);
        row.updated_at = now;
    }
    Ok(Some(row))
}

/// The tenant's own choice to refuse unknown types (`None`: the global
/// default decides), or `Err` when there is no such tenant.
pub fn reject_unknown_setting(db: &mut Db, tenant_id: &str) -> Result<Option<bool>, StoreError> {
    Ok(dispatch!(db, c => tenants::table
        .find(tenant_id)
        .select(tenants::reject_unknown_event_types)
        .first(c))?)
}

pub fn set_reject_unknown(
    db: &mut Db,
    tenant_id: &str,
    setting: Option<bool>,
) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::update(tenants::table.find(tenant_id))
        .set(tenants::reject_unknown_event_types.eq(setting))
        .execute(c))?;
    raise_publish_rule_version(db, tenant_id)
}

/// Marks, in the transaction of a change to what the tenant may publish,
/// that every rule remembered for it is out of date.
fn raise_publish_rule_version(db: &mut Db, tenant_id: &str) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::update(tenants::table.find(tenant_id))
        .set(tenants::publish_rule_version.eq(tenants::publish_rule_version + 1))
        .execute(c))?;
    Ok(())
}

/// The current version of each of `tenant_ids`' publish rules (a tenant
/// that does not exist is left out).
pub fn publish_rule_versions(
    db: &mut Db,
    tenant_ids: &[String],
) -> Result<HashMap<String, i64>, StoreError> {
    let mut versions = HashMap::with_capacity(tenant_ids.len());
    // Bounded statements, whatever the number of tenants remembered.
    for chunk in tenant_ids.chunks(500) {
        let found: Vec<(String, i64)> = dispatch!(db, c => tenants::table
            .filter(tenants::id.eq_any(chunk))
            .select((tenants::id, tenants::publish_rule_version))
            .load(c))?;
        versions.extend(found);
    }
    Ok(versions)
}

/// What publishing to the tenant must check: nothing, or the names of its
/// active types (read only when it refuses unknown ones); with the rule's
/// version, read first, so that a change committed meanwhile leaves the
/// version behind the rule and the rule is read again.
pub fn publish_rule(
    db: &mut Db,
    tenant_id: &str,
    global_default: bool,
) -> Result<(PublishRule, i64), StoreError> {
    let found: Option<(i64, Option<bool>)> = dispatch!(db, c => tenants::table
        .find(tenant_id)
        .select((tenants::publish_rule_version, tenants::reject_unknown_event_types))
        .first(c)
        .optional())?;
    // A tenant that does not exist publishes nothing anyway.
    let (version, setting) = found.unwrap_or((0, None));
    if !PublishRule::needs_catalog(setting, global_default) {
        return Ok((PublishRule::AnyType, version));
    }
    let names: Vec<String> = dispatch!(db, c => event_types::table
        .filter(event_types::tenant_id.eq(tenant_id))
        .filter(event_types::archived_at.is_null())
        .select(event_types::name)
        .load(c))?;
    Ok((
        PublishRule::DeclaredOnly(names.into_iter().collect::<HashSet<_>>()),
        version,
    ))
}
