//! Endpoints (subscriptions): their rows, read and written here.
//!
//! What a row means lives in [`row`] (defaults, configuration) and
//! [`secrets`] (sealing at rest); what the endpoint's actor keeps across a
//! restart, in [`health`] and [`moves`].

use super::models::EndpointRow;
use super::schema::{endpoints, tenants};
use super::signals::{self, Signal};
use super::tenants::SYSTEM_TENANT;
use super::{dispatch, tenant_page, Db, StoreError};
use crate::core::delivery::envelope::OPERATIONAL_PREFIX;
use crate::core::health::failure_policy::DisableReason;
use crate::core::secrets::secret_box::SecretBox;
use crate::core::secrets::signing::Secret;
use diesel::prelude::*;
use std::collections::{HashMap, HashSet};

mod health;
mod moves;
mod row;
mod secrets;

pub use health::{load_health, save_health};
pub use moves::{backlog_move, backlog_move_after, set_backlog_move, set_backlog_move_after};
pub use secrets::seal_secrets;

pub const ACTIVE: &str = "active";
pub const DISABLED: &str = "disabled";

/// The endpoint of the operator's alert URL, in the system tenant.
pub const OPERATOR_ENDPOINT: &str = "ep_operator_alerts";

pub fn insert(db: &mut Db, row: &EndpointRow) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::insert_into(endpoints::table).values(row).execute(c))?;
    raise_endpoints_version(db, &row.tenant_id)
}

/// Writes the configuration columns only: the status belongs to the
/// endpoint's actor and is changed through [`set_status`].
pub fn update(db: &mut Db, row: &EndpointRow) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::update(endpoints::table.find(&row.id))
        .set((
            endpoints::url.eq(&row.url),
            endpoints::description.eq(&row.description),
            endpoints::event_types.eq(&row.event_types),
            endpoints::headers.eq(&row.headers),
            endpoints::secret.eq(&row.secret),
            endpoints::timeout_seconds.eq(row.timeout_seconds),
            endpoints::max_in_flight.eq(row.max_in_flight),
            endpoints::retry_schedule.eq(&row.retry_schedule),
            endpoints::updated_at.eq(row.updated_at),
            endpoints::breaker_failures.eq(row.breaker_failures),
            endpoints::breaker_cooldown_seconds.eq(row.breaker_cooldown_seconds),
            endpoints::breaker_max_cooldown_seconds.eq(row.breaker_max_cooldown_seconds),
            endpoints::alert_thresholds.eq(&row.alert_thresholds),
            endpoints::disable_after_failures.eq(row.disable_after_failures),
            endpoints::disable_after_seconds.eq(row.disable_after_seconds),
            endpoints::signature_scheme.eq(&row.signature_scheme),
            endpoints::signature_header.eq(&row.signature_header),
            endpoints::signature_sha256_prefix.eq(row.signature_sha256_prefix),
            endpoints::http_method.eq(&row.http_method),
            endpoints::retry_client_errors.eq(row.retry_client_errors),
            endpoints::metadata.eq(&row.metadata),
            endpoints::rate_limit.eq(row.rate_limit),
            endpoints::ordered.eq(row.ordered),
            endpoints::secret_headers.eq(&row.secret_headers),
            endpoints::previous_secret.eq(&row.previous_secret),
            endpoints::previous_secret_expires_at.eq(row.previous_secret_expires_at),
        ))
        .execute(c))?;
    raise_endpoints_version(db, &row.tenant_id)
}

/// Disables (`Some(reason)`) or re-activates (`None`) the endpoint. Its
/// `updated_at` stays: it dates the configuration, by which every instance
/// tells a changed one (a status change has `disabled_at`).
pub fn set_status(
    db: &mut Db,
    id: &str,
    disabled: Option<DisableReason>,
    now: i64,
) -> Result<(), StoreError> {
    let status = if disabled.is_some() { DISABLED } else { ACTIVE };
    let disabled_at = disabled.map(|_| now);
    let reason = disabled.map(|r| r.as_str());
    dispatch!(db, c => diesel::update(endpoints::table.find(id))
        .set((
            endpoints::status.eq(status),
            endpoints::disabled_at.eq(disabled_at),
            endpoints::disabled_reason.eq(reason),
        ))
        .execute(c))?;
    let tenant = endpoints::table.find(id).select(endpoints::tenant_id);
    dispatch!(db, c => diesel::update(tenants::table.filter(tenants::id.eq_any(tenant)))
        .set(tenants::endpoints_version.eq(tenants::endpoints_version + 1))
        .execute(c))?;
    signals::send(db, &[Signal::Registry])
}

pub fn find_by_id(db: &mut Db, id: &str) -> Result<Option<EndpointRow>, StoreError> {
    Ok(dispatch!(db, c => endpoints::table
        .find(id)
        .select(EndpointRow::as_select())
        .first(c)
        .optional())?)
}

pub fn find(db: &mut Db, tenant_id: &str, id: &str) -> Result<Option<EndpointRow>, StoreError> {
    Ok(dispatch!(db, c => endpoints::table
        .filter(endpoints::tenant_id.eq(tenant_id))
        .filter(endpoints::id.eq(id))
        .select(EndpointRow::as_select())
        .first(c)
        .optional())?)
}

pub fn list(
    db: &mut Db,
    tenant_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<EndpointRow>, StoreError> {
    Ok(
        dispatch!(db, c => tenant_page!(endpoints.id, tenant_id, after, limit)
        .select(EndpointRow::as_select())
        .load(c))?,
    )
}

pub fn all_of_tenant(db: &mut Db, tenant_id: &str) -> Result<Vec<EndpointRow>, StoreError> {
    Ok(dispatch!(db, c => endpoints::table
        .filter(endpoints::tenant_id.eq(tenant_id))
        .order(endpoints::id)
        .select(EndpointRow::as_select())
        .load(c))?)
}

/// Up to `limit` endpoints after `after` in id order: the router's registry
/// is read a page at a time at start-up.
pub fn page_after(
    db: &mut Db,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<EndpointRow>, StoreError> {
    let after = after.unwrap_or_default();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(dispatch!(db, c => endpoints::table
        .filter(endpoints::id.gt(after))
        .order(endpoints::id)
        .limit(limit)
        .select(EndpointRow::as_select())
        .load(c))?)
}

pub fn count_in_tenant(db: &mut Db, tenant_id: &str) -> Result<i64, StoreError> {
    Ok(dispatch!(db, c => endpoints::table
        .filter(endpoints::tenant_id.eq(tenant_id))
        .count()
        .get_result(c))?)
}

/// The sum of `max_in_flight` over the tenant's endpoints, but `except`.
pub fn in_flight_total(db: &mut Db, tenant_id: &str, except: &str) -> Result<u64, StoreError> {
    let total: Option<i64> = dispatch!(db, c => endpoints::table
        .filter(endpoints::tenant_id.eq(tenant_id))
        .filter(endpoints::id.ne(except))
        .select(diesel::dsl::sum(endpoints::max_in_flight))
        .get_result(c))?;
    Ok(total.map_or(0, i64::unsigned_abs))
}

/// Which of `ids` name an endpoint that exists.
pub fn existing(db: &mut Db, ids: &[&str]) -> Result<HashSet<String>, StoreError> {
    let mut distinct: Vec<&str> = ids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let found: Vec<String> = dispatch!(db, c => endpoints::table
        .filter(endpoints::id.eq_any(&distinct))
        .select(endpoints::id)
        .load(c))?;
    Ok(found.into_iter().collect())
}

/// Deletes the endpoint and, by cascade, its deliveries and attempts.
pub fn delete(db: &mut Db, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
    let deleted = dispatch!(db, c => diesel::delete(endpoints::table
        .filter(endpoints::tenant_id.eq(tenant_id))
        .filter(endpoints::id.eq(id)))
        .execute(c))?;
    raise_endpoints_version(db, tenant_id)?;
    Ok(deleted > 0)
}

/// Marks, in the transaction of a change to one of the tenant's endpoints
/// (created, changed, disabled or enabled, deleted), that what every
/// instance remembers of the tenant's endpoints is out of date.
/// The signal goes in the same transaction, so it reaches the others at
/// its commit and before anything committed after it.
fn raise_endpoints_version(db: &mut Db, tenant_id: &str) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::update(tenants::table.find(tenant_id))
        .set(tenants::endpoints_version.eq(tenants::endpoints_version + 1))
        .execute(c))?;
    signals::send(db, &[Signal::Registry])
}

/// Every tenant's endpoints version (see [`raise_endpoints_version`]).
pub fn versions(db: &mut Db) -> Result<HashMap<String, i64>, StoreError> {
    let rows: Vec<(String, i64)> = dispatch!(db, c => tenants::table
        .select((tenants::id, tenants::endpoints_version))
        .load(c))?;
    Ok(rows.into_iter().collect())
}

/// Creates, updates or (with `None`) removes the endpoint that carries
/// every alert to the operator's alert URL. Run at every start: whatever
/// happened to the endpoint, it leaves it exactly as configured and active.
pub fn sync_operator_endpoint(
    db: &mut Db,
    target: Option<(&str, &Secret)>,
    secrets: &SecretBox,
    now: i64,
) -> Result<(), StoreError> {
    super::tenants::ensure_system_tenant(db, now)?;
    let Some((url, secret)) = target else {
        delete(db, SYSTEM_TENANT, OPERATOR_ENDPOINT)?;
        return Ok(());
    };
    let mut row = EndpointRow::with_defaults(OPERATOR_ENDPOINT, SYSTEM_TENANT, now);
    row.url = url.to_owned();
    row.secret = secret.as_str().to_owned();
    row.description = "hookrelay operator alerts (HOOKRELAY_ALERT_URL)".to_owned();
    row.event_types =
        serde_json::to_string(&[format!("{OPERATIONAL_PREFIX}*")]).unwrap_or_default();
    let mut row = row.sealed(secrets);
    match find(db, SYSTEM_TENANT, OPERATOR_ENDPOINT)? {
        Some(existing) => {
            row.created_at = existing.created_at;
            update(db, &row)?;
            // Disabling it would silence every alert; the API refuses it
            // now, but a database from before (or a hand edit) may hold one.
            if !existing.is_active() {
                set_status(db, OPERATOR_ENDPOINT, None, now)?;
            }
            Ok(())
        }
        None => insert(db, &row),
    }
}
