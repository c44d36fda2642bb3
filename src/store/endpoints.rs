//! Endpoints (subscriptions).

use super::deliveries::CreationCursor;
use super::models::{EndpointHealthRow, EndpointRow};
use super::schema::{backlog_move_cursors, endpoint_health, endpoints};
use super::tenants::SYSTEM_TENANT;
use super::{dispatch, Db, StoreError};
use crate::core::breaker::{Breaker, CircuitState};
use crate::core::delivery::BacklogMove;
use crate::core::domain::is_secret_header;
use crate::core::endpoint::{
    EndpointConfig, HttpMethod, DEFAULT_MAX_IN_FLIGHT, DEFAULT_TIMEOUT_SECONDS,
};
use crate::core::envelope::OPERATIONAL_PREFIX;
use crate::core::failure_policy::{DisableReason, Streak};
use crate::core::limits::{HealthLimits, HealthOverrides};
use crate::core::matching::EventTypePattern;
use crate::core::retry::DEFAULT_SCHEDULE;
use crate::core::secret_box::{OpenError, SecretBox, NONCE_LEN};
use crate::core::signature_scheme::{
    PreviousSigner, SchemeName, SignatureSettings, Signer, Signing, DEFAULT_SIGNATURE_HEADER,
};
use crate::core::signing::Secret;
use diesel::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

pub const ACTIVE: &str = "active";
pub const DISABLED: &str = "disabled";

/// The endpoint of the operator's alert URL, in the system tenant.
pub const OPERATOR_ENDPOINT: &str = "ep_operator_alerts";

pub fn insert(db: &mut Db, row: &EndpointRow) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::insert_into(endpoints::table).values(row).execute(c))?;
    Ok(())
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
    Ok(())
}

/// What a sealed header value is bound to: its endpoint and its name, so
/// that it cannot be moved to another endpoint or header and still open.
fn header_binding(endpoint_id: &str, name: &str) -> String {
    format!("{endpoint_id}/headers/{}", name.to_ascii_lowercase())
}

/// Seals the plain secrets of `rows` (read at start with a key set): only
/// the secret columns and the custom headers are written. Run by the writer, in its transaction.
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

/// Disables (`Some(reason)`) or re-activates (`None`) the endpoint.
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
            endpoints::updated_at.eq(now),
        ))
        .execute(c))?;
    Ok(())
}

/// Records the backlog move under way (`None`: finished), and when the
/// deliveries a replay makes pending fall due.
pub fn set_backlog_move(
    db: &mut Db,
    id: &str,
    under_way: Option<(BacklogMove, i64)>,
) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::update(endpoints::table.find(id))
        .set((
            endpoints::backlog_move.eq(under_way.map(|(kind, _)| kind.as_str())),
            endpoints::backlog_move_due_at.eq(under_way.map(|(_, due_at)| due_at)),
        ))
        .execute(c))?;
    // A new move starts from the beginning; an ended one leaves no cursor.
    dispatch!(db, c => diesel::delete(backlog_move_cursors::table.find(id)).execute(c))?;
    Ok(())
}

/// Where the backlog move under way has got to: the last delivery its
/// batches moved, if any yet.
pub fn backlog_move_after(db: &mut Db, id: &str) -> Result<Option<CreationCursor>, StoreError> {
    Ok(dispatch!(db, c => backlog_move_cursors::table
        .find(id)
        .select((backlog_move_cursors::after_created_at, backlog_move_cursors::after_id))
        .first(c)
        .optional())?)
}

/// Records where the backlog move under way has got to, with its batch.
pub fn set_backlog_move_after(
    db: &mut Db,
    id: &str,
    after: &CreationCursor,
) -> Result<(), StoreError> {
    let (at, delivery_id) = after;
    dispatch!(db, c => diesel::insert_into(backlog_move_cursors::table)
        .values((
            backlog_move_cursors::endpoint_id.eq(id),
            backlog_move_cursors::after_created_at.eq(at),
            backlog_move_cursors::after_id.eq(delivery_id),
        ))
        .on_conflict(backlog_move_cursors::endpoint_id)
        .do_update()
        .set((
            backlog_move_cursors::after_created_at.eq(at),
            backlog_move_cursors::after_id.eq(delivery_id),
        ))
        .execute(c))?;
    Ok(())
}

/// The backlog move under way, if any, and its due time.
pub fn backlog_move(db: &mut Db, id: &str) -> Result<Option<(BacklogMove, i64)>, StoreError> {
    let recorded: Option<(Option<String>, Option<i64>)> = dispatch!(db, c => endpoints::table
        .find(id)
        .select((endpoints::backlog_move, endpoints::backlog_move_due_at))
        .first(c)
        .optional())?;
    let Some((Some(name), due_at)) = recorded else {
        return Ok(None);
    };
    let kind = BacklogMove::parse(&name)
        .ok_or_else(|| StoreError::Corrupt(format!("endpoint {id}: backlog move {name:?}")))?;
    Ok(Some((kind, due_at.unwrap_or_default())))
}

pub fn find_by_id(db: &mut Db, id: &str) -> Result<Option<EndpointRow>, StoreError> {
    Ok(dispatch!(db, c => endpoints::table
        .find(id)
        .select(EndpointRow::as_select())
        .first(c)
        .optional())?)
}

/// The streak and breaker saved by the endpoint's actor, if any.
pub fn load_health(db: &mut Db, id: &str) -> Result<Option<EndpointHealthRow>, StoreError> {
    Ok(dispatch!(db, c => endpoint_health::table
        .find(id)
        .select(EndpointHealthRow::as_select())
        .first(c)
        .optional())?)
}

pub fn save_health(db: &mut Db, row: &EndpointHealthRow) -> Result<(), StoreError> {
    dispatch!(db, c => diesel::insert_into(endpoint_health::table)
        .values(row)
        .on_conflict(endpoint_health::endpoint_id)
        .do_update()
        .set(row)
        .execute(c))?;
    Ok(())
}

impl EndpointHealthRow {
    pub fn new(endpoint_id: &str, streak: &Streak, breaker: &Breaker, now: i64) -> Self {
        EndpointHealthRow {
            endpoint_id: endpoint_id.to_owned(),
            consecutive_failures: i32::try_from(streak.consecutive_failures).unwrap_or(i32::MAX),
            failing_since: streak.failing_since,
            alerted_thresholds: serde_json::to_string(&streak.alerted).unwrap_or_default(),
            circuit_state: breaker.state.as_str().to_owned(),
            circuit_opened_at: breaker.opened_at,
            circuit_next_probe_at: breaker.next_probe_at,
            circuit_cooldown_ms: breaker.cooldown_ms,
            updated_at: now,
            alert_raised: streak.alert_raised,
        }
    }

    pub fn streak(&self) -> Streak {
        Streak {
            consecutive_failures: u32::try_from(self.consecutive_failures).unwrap_or_default(),
            failing_since: self.failing_since,
            alerted: serde_json::from_str(&self.alerted_thresholds).unwrap_or_default(),
            alert_raised: self.alert_raised,
        }
    }

    pub fn breaker(&self) -> Breaker {
        Breaker::restore(
            CircuitState::parse(&self.circuit_state).unwrap_or(CircuitState::Closed),
            self.circuit_opened_at,
            self.circuit_next_probe_at,
            self.circuit_cooldown_ms,
        )
    }
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
    let after = after.unwrap_or_default();
    Ok(dispatch!(db, c => endpoints::table
        .filter(endpoints::tenant_id.eq(tenant_id))
        .filter(endpoints::id.gt(after))
        .order(endpoints::id)
        .limit(limit)
        .select(EndpointRow::as_select())
        .load(c))?)
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
    Ok(deleted > 0)
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

impl EndpointRow {
    /// A new active endpoint with the default delivery settings, no
    /// subscriptions (every event) and a fresh secret; `url` is left empty.
    pub fn with_defaults(id: &str, tenant_id: &str, now: i64) -> EndpointRow {
        EndpointRow {
            id: id.to_owned(),
            tenant_id: tenant_id.to_owned(),
            url: String::new(),
            description: String::new(),
            event_types: "[]".to_owned(),
            headers: "{}".to_owned(),
            secret: Secret::from_key_bytes(&crate::ids::random_bytes::<24>())
                .as_str()
                .to_owned(),
            timeout_seconds: i32::try_from(DEFAULT_TIMEOUT_SECONDS).unwrap_or(30),
            max_in_flight: i32::try_from(DEFAULT_MAX_IN_FLIGHT).unwrap_or(16),
            retry_schedule: serde_json::to_string(&DEFAULT_SCHEDULE).unwrap_or_default(),
            status: ACTIVE.to_owned(),
            created_at: now,
            updated_at: now,
            breaker_failures: None,
            breaker_cooldown_seconds: None,
            breaker_max_cooldown_seconds: None,
            alert_thresholds: None,
            disable_after_failures: None,
            disable_after_seconds: None,
            disabled_at: None,
            disabled_reason: None,
            signature_scheme: SchemeName::Standard.as_str().to_owned(),
            signature_header: DEFAULT_SIGNATURE_HEADER.to_owned(),
            signature_sha256_prefix: false,
            http_method: HttpMethod::Post.as_str().to_owned(),
            retry_client_errors: true,
            metadata: "{}".to_owned(),
            rate_limit: None,
            ordered: false,
            secret_headers: "[]".to_owned(),
            previous_secret: None,
            previous_secret_expires_at: None,
        }
    }

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
    fn opened_headers(&self, secrets: &SecretBox) -> Result<BTreeMap<String, String>, OpenError> {
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

    pub fn secret_header_list(&self) -> Vec<String> {
        serde_json::from_str(&self.secret_headers).unwrap_or_default()
    }

    /// A credential-like name, or one the endpoint marks secret.
    pub fn is_secret_header(&self, name: &str) -> bool {
        is_secret_header(name, &self.secret_header_list())
    }

    pub fn event_type_list(&self) -> Vec<String> {
        serde_json::from_str(&self.event_types).unwrap_or_default()
    }

    pub fn header_map(&self) -> BTreeMap<String, String> {
        serde_json::from_str(&self.headers).unwrap_or_default()
    }

    pub fn metadata_map(&self) -> BTreeMap<String, String> {
        serde_json::from_str(&self.metadata).unwrap_or_default()
    }

    pub fn retry_schedule_list(&self) -> Vec<u32> {
        serde_json::from_str(&self.retry_schedule).unwrap_or_default()
    }

    pub fn signature_settings(&self) -> Result<SignatureSettings, String> {
        Ok(SignatureSettings {
            scheme: SchemeName::parse(&self.signature_scheme)?,
            header: self.signature_header.clone(),
            sha256_prefix: self.signature_sha256_prefix,
        })
    }

    /// The signer of this endpoint's deliveries, or why its secret cannot
    /// key its scheme; on a row whose secrets are [`EndpointRow::opened`].
    pub fn signer(&self) -> Result<Signer, String> {
        Signer::new(&self.signature_settings()?, &self.secret)
    }

    /// The secret and, until its grace period ends, the one a rotation
    /// replaced, read through `secrets`. A previous secret that cannot be
    /// read no longer signs; the current one must.
    pub fn signing(&self, secrets: &SecretBox) -> Result<Signing, String> {
        let settings = self.signature_settings()?;
        let open = |stored: &str| {
            let secret = secrets.open(&self.id, stored).map_err(|e| e.to_string())?;
            Signer::new(&settings, &secret)
        };
        let current = open(&self.secret)?;
        let previous = match (&self.previous_secret, self.previous_secret_expires_at) {
            (Some(stored), Some(expires_at_ms)) => match open(stored) {
                Ok(signer) => Some(PreviousSigner {
                    signer,
                    expires_at_ms,
                }),
                Err(reason) => {
                    log::warn!(
                        "endpoint {}: the secret replaced by its last rotation cannot sign: {reason}",
                        self.id
                    );
                    None
                }
            },
            _ => None,
        };
        Ok(Signing { current, previous })
    }

    pub fn is_active(&self) -> bool {
        self.status == ACTIVE
    }

    pub fn overrides(&self) -> HealthOverrides {
        HealthOverrides {
            breaker_failures: self.breaker_failures.and_then(|v| u32::try_from(v).ok()),
            breaker_cooldown_seconds: self
                .breaker_cooldown_seconds
                .and_then(|v| u64::try_from(v).ok()),
            breaker_max_cooldown_seconds: self
                .breaker_max_cooldown_seconds
                .and_then(|v| u64::try_from(v).ok()),
            alert_thresholds: self
                .alert_thresholds
                .as_deref()
                .and_then(|v| serde_json::from_str(v).ok()),
            disable_after_failures: self
                .disable_after_failures
                .and_then(|v| u32::try_from(v).ok()),
            disable_after_seconds: self
                .disable_after_seconds
                .and_then(|v| u64::try_from(v).ok()),
        }
    }

    /// The effective limits. An override that the global settings have
    /// since made contradictory (a cool-down above a lowered maximum) gives
    /// way to the global setting rather than stopping the service.
    pub fn limits(&self, defaults: &HealthLimits) -> HealthLimits {
        let mut overrides = self.overrides();
        loop {
            match HealthLimits::resolve(defaults, &overrides) {
                Ok(limits) => return limits,
                Err(refused) => {
                    log::warn!(
                        "endpoint {}: {} {}; using the global setting for it",
                        self.id,
                        refused.field,
                        refused.reason
                    );
                    if !overrides.forget(&refused.field) {
                        return defaults.clone();
                    }
                }
            }
        }
    }

    /// The configuration the router and the endpoint actor work from.
    pub fn config(
        &self,
        defaults: &HealthLimits,
        secrets: &SecretBox,
    ) -> Result<EndpointConfig, StoreError> {
        let corrupt = |column: &str, reason: String| {
            StoreError::Corrupt(format!("endpoint {} column {column}: {reason}", self.id))
        };
        let patterns = self
            .event_type_list()
            .iter()
            .map(|p| EventTypePattern::parse(p).map_err(|e| corrupt("event_types", e.to_owned())))
            .collect::<Result<Vec<_>, _>>()?;
        let method = HttpMethod::parse(&self.http_method).map_err(|e| corrupt("http_method", e))?;
        // Nothing is sent without the credential headers it was given
        // either: an unreadable one makes every attempt fail as unsigned.
        let (headers, signing) = match self.opened_headers(secrets) {
            Ok(headers) => (headers, self.signing(secrets)),
            Err(unreadable) => (
                BTreeMap::new(),
                Err(format!("a custom header: {unreadable}")),
            ),
        };
        if let Err(reason) = &signing {
            log::error!("endpoint {}: cannot sign its deliveries: {reason}", self.id);
        }
        Ok(EndpointConfig {
            id: self.id.clone(),
            tenant_id: self.tenant_id.clone(),
            url: self.url.clone(),
            method,
            patterns,
            headers: headers.into_iter().collect(),
            signing,
            timeout: Duration::from_secs(u64::try_from(self.timeout_seconds).unwrap_or(30)),
            max_in_flight: usize::try_from(self.max_in_flight).unwrap_or(1).max(1),
            retry_schedule: self.retry_schedule_list(),
            retry_client_errors: self.retry_client_errors,
            rate_limit: self.rate_limit.and_then(|limit| u32::try_from(limit).ok()),
            ordered: self.ordered,
            active: self.is_active(),
            limits: self.limits(defaults),
            raises_alerts: self.id != OPERATOR_ENDPOINT,
            trusted_target: self.id == OPERATOR_ENDPOINT,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::secret_box::SecretKey;

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
