//! API keys: who is calling, and may they touch this tenant.

use super::problem::ApiError;
use crate::core::domain::is_id;
use crate::ids::key_hash;
use crate::store::tenants::{self, KeyOwner, SYSTEM_TENANT};
use crate::store::Store;
use actix_web::http::header::AUTHORIZATION;
use actix_web::HttpRequest;
use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

/// Checks keys against the database, remembering what it has verified:
/// keys are never reused for another owner and tenants are never deleted,
/// so a positive answer stays true.
pub struct Keys {
    store: Store,
    owners: RwLock<HashMap<String, KeyOwner>>,
    tenants: RwLock<HashSet<String>>,
}

impl Keys {
    /// `configured_admin` is the admin key from the environment, if any.
    pub fn new(store: Store, configured_admin: Option<&str>) -> Keys {
        let owners = configured_admin
            .map(|key| (key_hash(key), KeyOwner::Admin))
            .into_iter()
            .collect();
        Keys {
            store,
            owners: RwLock::new(owners),
            tenants: RwLock::new(HashSet::new()),
        }
    }

    async fn owner(&self, request: &HttpRequest) -> Result<KeyOwner, ApiError> {
        let key = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let hash = key_hash(key);
        if let Some(owner) = read(&self.owners).get(&hash) {
            return Ok(owner.clone());
        }
        let lookup = hash.clone();
        let owner = self
            .store
            .run(move |db| tenants::key_owner(db, &lookup))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        write(&self.owners).insert(hash, owner.clone());
        Ok(owner)
    }

    pub async fn require_admin(&self, request: &HttpRequest) -> Result<(), ApiError> {
        match self.owner(request).await? {
            KeyOwner::Admin => Ok(()),
            KeyOwner::Tenant(_) => Err(ApiError::Forbidden),
        }
    }

    /// The admin may use any existing tenant; a tenant key only its own.
    /// Anything else is answered as if the tenant did not exist. The system
    /// tenant may be read, never written: hookrelay keeps it as configured.
    ///
    /// Every tenant-scoped handler calls this before it reads anything, so
    /// it is also where the ids of the path (tenant, endpoint, event,
    /// delivery) are checked: one that cannot be an id names nothing (404)
    /// and never reaches a query.
    pub async fn require_tenant(
        &self,
        request: &HttpRequest,
        tenant_id: &str,
    ) -> Result<(), ApiError> {
        let owner = self.owner(request).await?;
        check_path_ids(request)?;
        self.require_known_tenant(owner, tenant_id).await?;
        if tenant_id == SYSTEM_TENANT && !request.method().is_safe() {
            return Err(ApiError::ReservedTenant);
        }
        Ok(())
    }

    async fn require_known_tenant(&self, owner: KeyOwner, tenant_id: &str) -> Result<(), ApiError> {
        match owner {
            KeyOwner::Tenant(own) if own == tenant_id => Ok(()),
            KeyOwner::Tenant(_) => Err(ApiError::NotFound("tenant")),
            KeyOwner::Admin => {
                if read(&self.tenants).contains(tenant_id) {
                    return Ok(());
                }
                let id = tenant_id.to_owned();
                if self.store.run(move |db| tenants::exists(db, &id)).await? {
                    write(&self.tenants).insert(tenant_id.to_owned());
                    Ok(())
                } else {
                    Err(ApiError::NotFound("tenant"))
                }
            }
        }
    }
}

/// 404 for the first path parameter that cannot be an id, named after the
/// parameter (the routes name them after their resource).
fn check_path_ids(request: &HttpRequest) -> Result<(), ApiError> {
    match request.match_info().iter().find(|(_, value)| !is_id(value)) {
        None => Ok(()),
        Some((name, _)) => Err(ApiError::NotFound(match name {
            "tenant" => "tenant",
            "endpoint" => "endpoint",
            "event" => "event",
            "delivery" => "delivery",
            "event_type" => "event type",
            _ => "resource",
        })),
    }
}

// A panic while holding these locks leaves a cache that is still correct.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
