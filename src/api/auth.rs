//! API keys: who is calling, and may they touch this tenant. Handlers
//! learn the answer from their extractors: [`Authorized`] for a path under
//! a tenant, [`Admin`] for the admin's routes; a handler that takes neither
//! serves anyone.

use super::locks::{lock, read, write};
use super::problem::ApiError;
use super::AppState;
use crate::core::input::domain::is_id;
use crate::core::tenancy::auth_failures::{AuthFailures, Policy};
use crate::core::tenancy::key_use::KeyUses;
use crate::core::tenancy::negative_cache::NegativeCache;
use crate::ids::key_hash;
use crate::store::api_keys;
use crate::store::tenants::{self, KeyOwner, SYSTEM_TENANT};
use crate::store::writer::Writer;
use crate::store::{Store, StoreError};
use crate::time::now_ms;
use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long a key found in the database is trusted without asking again.
/// A key revoked through this instance stops working at once, and one
/// revoked elsewhere (another instance, `admin-key rotate`) within
/// [`super::cache_checks::CHECK_INTERVAL`]: this is the backstop.
const KNOWN_KEY_TTL_MS: i64 = 60_000;

/// Digests of unknown keys remembered, and for how long: a client that
/// repeats a bad key is answered 401 from memory.
const UNKNOWN_KEYS: usize = 4096;
const UNKNOWN_KEY_TTL_MS: i64 = 10_000;
/// Database lookups of keys not in memory at once: a flood of distinct bad
/// keys waits for these instead of taking every database connection, and
/// known keys never wait for them.
const CONCURRENT_LOOKUPS: usize = 4;
/// Addresses whose failed authentications are remembered (about 100 bytes
/// each).
const FAILING_ADDRESSES: usize = 4096;
/// A key's `last_used_at` is written at most this often: a key in constant
/// use costs one write a minute.
const LAST_USE_WRITE_INTERVAL_MS: i64 = 60_000;

/// Checks keys against the database, remembering what it has verified
/// (tenants are never deleted, so a tenant found stays true).
pub struct Keys {
    store: Store,
    /// Writes the keys' last uses, in the writer's group commit.
    writer: Writer,
    /// The digest of the admin key from the environment, if any.
    configured_admin: Option<String>,
    /// Digests found in the database, with when.
    known: RwLock<HashMap<String, (KeyOwner, i64)>>,
    unknown: Mutex<NegativeCache>,
    lookups: Semaphore,
    /// Counts revocations, so that a lookup that raced one does not
    /// remember the key it read before the revocation committed.
    revocations: AtomicU64,
    tenants: RwLock<HashSet<String>>,
    /// Which keys' uses were written lately.
    uses: Mutex<KeyUses>,
    /// Failed authentications by address, which hold back their 401s.
    failures: Mutex<AuthFailures>,
}

impl Keys {
    /// `configured_admin` is the admin key from the environment, if any.
    pub fn new(store: Store, writer: Writer, configured_admin: Option<&str>) -> Keys {
        Keys {
            store,
            writer,
            configured_admin: configured_admin.map(key_hash),
            known: RwLock::new(HashMap::new()),
            unknown: Mutex::new(NegativeCache::new(UNKNOWN_KEYS, UNKNOWN_KEY_TTL_MS)),
            lookups: Semaphore::new(CONCURRENT_LOOKUPS),
            revocations: AtomicU64::new(0),
            tenants: RwLock::new(HashSet::new()),
            uses: Mutex::new(KeyUses::new(LAST_USE_WRITE_INTERVAL_MS)),
            failures: Mutex::new(AuthFailures::new(Policy::DEFAULT, FAILING_ADDRESSES)),
        }
    }

    /// A request from `address` carried a key that was refused: how long
    /// its 401 waits.
    pub fn failed_from(&self, address: IpAddr) -> Duration {
        lock(&self.failures).failed(address, now_ms())
    }

    /// A key was just created: it works at once, whatever was remembered
    /// about its digest.
    pub fn created(&self, hash: &str, owner: KeyOwner) {
        lock(&self.unknown).remove(hash);
        write(&self.known).insert(hash.to_owned(), (owner, now_ms()));
    }

    /// A key was just revoked: it stops working at once.
    pub fn revoked(&self, hash: &str) {
        self.revocations.fetch_add(1, Ordering::SeqCst);
        write(&self.known).remove(hash);
        lock(&self.uses).forget(hash);
    }

    /// Forgets the remembered keys the database no longer holds; answers how
    /// many. A key remembered after the check began is not among `checked`,
    /// and is left alone.
    pub(super) async fn forget_revoked(&self) -> Result<usize, StoreError> {
        let checked: Vec<String> = read(&self.known).keys().cloned().collect();
        if checked.is_empty() {
            return Ok(0);
        }
        let lookup = checked.clone();
        let stored = self
            .store
            .run(move |db| api_keys::still_stored(db, &lookup))
            .await?;
        let revoked: Vec<&String> = checked.iter().filter(|h| !stored.contains(*h)).collect();
        for hash in &revoked {
            self.revoked(hash);
        }
        Ok(revoked.len())
    }

    /// Writes that the stored key `hash` was used at `at`, when its last
    /// written use is a minute old: off the request, through the writer; a
    /// write that fails is only logged (the next use a minute later tries
    /// again).
    fn used(&self, hash: &str, at: i64) {
        if !lock(&self.uses).to_write(hash, at) {
            return;
        }
        let hash = hash.to_owned();
        // Queued at once; the task only waits to log a failure.
        let written = self
            .writer
            .call(move |db| api_keys::record_use(db, &hash, at));
        actix_rt::spawn(async move {
            if let Err(error) = written.await {
                log::warn!("an API key's last use was not recorded ({error})");
            }
        });
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
        self.owner_of(key).await
    }

    /// Whose key `key` is: 401 when it is none (unknown or revoked). The
    /// dashboard asks this of its session's key on every page.
    pub async fn owner_of(&self, key: &str) -> Result<KeyOwner, ApiError> {
        let hash = key_hash(key);
        if self.configured_admin.as_ref() == Some(&hash) {
            return Ok(KeyOwner::Admin);
        }
        let started = now_ms();
        let remembered = read(&self.known)
            .get(&hash)
            .filter(|(_, verified_at)| started - verified_at < KNOWN_KEY_TTL_MS)
            .map(|(owner, _)| owner.clone());
        if let Some(owner) = remembered {
            self.used(&hash, started);
            return Ok(owner);
        }
        if lock(&self.unknown).contains(&hash, started) {
            return Err(ApiError::Unauthorized);
        }
        let _permit = self
            .lookups
            .acquire()
            .await
            .map_err(|_| ApiError::Unavailable)?;
        let revocations = self.revocations.load(Ordering::SeqCst);
        let lookup = hash.clone();
        let found = self
            .store
            .run(move |db| tenants::key_owner(db, &lookup))
            .await?
            // A configured admin key is the only admin key: one stored
            // meanwhile (a rotation) is not taken beside it.
            .filter(|owner| !(*owner == KeyOwner::Admin && self.configured_admin.is_some()));
        match found {
            Some(owner) => {
                self.used(&hash, started);
                if self.revocations.load(Ordering::SeqCst) == revocations {
                    write(&self.known).insert(hash, (owner.clone(), now_ms()));
                }
                Ok(owner)
            }
            None => {
                // Forget what this lookup disproved, but not a key created
                // while it ran.
                let mut known = write(&self.known);
                if known.get(&hash).is_some_and(|(_, at)| *at < started) {
                    known.remove(&hash);
                }
                drop(known);
                lock(&self.unknown).insert(hash, now_ms());
                Err(ApiError::Unauthorized)
            }
        }
    }

    async fn require_admin(&self, request: &HttpRequest) -> Result<(), ApiError> {
        match self.owner(request).await? {
            KeyOwner::Admin => Ok(()),
            KeyOwner::Tenant(_) => Err(ApiError::Forbidden),
        }
    }

    /// The admin may use any existing tenant; a tenant key only its own.
    /// Anything else is answered as if the tenant did not exist. The system
    /// tenant may be read, never written: hookrelay keeps it as configured.
    ///
    /// Every tenant-scoped handler has this done (by [`Authorized`]) before
    /// it reads anything, so it is also where the ids of the path (tenant,
    /// endpoint, event, delivery, key) are checked: one that cannot be an id
    /// names nothing (404) and never reaches a query.
    /// Answers whether the key is the admin's.
    async fn require_tenant(
        &self,
        request: &HttpRequest,
        tenant_id: &str,
    ) -> Result<bool, ApiError> {
        let owner = self.owner(request).await?;
        check_path_ids(request)?;
        let by_admin = owner == KeyOwner::Admin;
        self.require_known_tenant(owner, tenant_id).await?;
        if tenant_id == SYSTEM_TENANT && !request.method().is_safe() {
            return Err(ApiError::ReservedTenant);
        }
        Ok(by_admin)
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

/// The ids of a route under `/v1/tenants/{tenant}`, named by the tenant
/// they belong to.
pub trait TenantScoped {
    fn tenant(&self) -> &str;
}

/// A path `P` the request's key may use: extracting it answers 401 without
/// a valid key, 404 for a path id that cannot be an id or a tenant the key
/// may not see, and 403 for a write under the system tenant
/// ([`Keys::require_tenant`]), so a handler that takes one cannot forget to
/// check. Handlers list their query or body extractor before it: actix
/// polls extractors in order, so a malformed query (400) or a body whose
/// announced length is over the limit (413) is still refused before the
/// key is looked at, as when the check ran in the handler.
pub struct Authorized<P> {
    path: P,
    by_admin: bool,
}

impl<P> Authorized<P> {
    pub fn into_inner(self) -> P {
        self.path
    }

    /// The request carries the admin key (the operator), not a tenant's:
    /// it is not held to the caps of [`crate::core::tenancy::tenant_caps`].
    pub fn by_admin(&self) -> bool {
        self.by_admin
    }
}

/// The path's ids, read in place (as through `web::Path`).
impl<P> Deref for Authorized<P> {
    type Target = P;

    fn deref(&self) -> &P {
        &self.path
    }
}

impl<P: DeserializeOwned + TenantScoped + 'static> FromRequest for Authorized<P> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        with_state(request, |request, state| async move {
            // Every route's template names the fields of its path type, so
            // this fails only as `web::Path` would: 404.
            let path: P = request
                .match_info()
                .load()
                .map_err(|_| ApiError::NotFound("resource"))?;
            let by_admin = state.keys.require_tenant(&request, path.tenant()).await?;
            Ok(Authorized { path, by_admin })
        })
    }
}

/// The request carries the admin key: 401 without a valid key, 403 with a
/// tenant's.
pub struct Admin;

impl FromRequest for Admin {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        with_state(request, |request, state| async move {
            state.keys.require_admin(&request).await?;
            Ok(Admin)
        })
    }
}

/// The future of an extractor that checks the request's key: `check`, given
/// the request and the app's state.
fn with_state<T, F, Checked>(
    request: &HttpRequest,
    check: F,
) -> LocalBoxFuture<'static, Result<T, actix_web::Error>>
where
    F: FnOnce(HttpRequest, web::Data<AppState>) -> Checked + 'static,
    Checked: Future<Output = Result<T, ApiError>> + 'static,
{
    let request = request.clone();
    Box::pin(async move {
        let state = web::Data::<AppState>::extract(&request).await?;
        Ok(check(request, state).await?)
    })
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
            "key" => "api key",
            _ => "resource",
        })),
    }
}
