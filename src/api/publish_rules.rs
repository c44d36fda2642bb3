//! Whether a tenant accepts events of types outside its catalog, remembered
//! per tenant so that publishing reads the database only for a tenant's
//! first event after a start or a change of its setting or catalog. A
//! change through this instance is forgotten at once; one through another
//! instance sharing the database, at the next check of the versions
//! ([`PublishRules::forget_outdated`]).

use super::locks::{read, write};
use super::problem::ApiError;
use crate::core::input::event_catalog::PublishRule;
use crate::store::{event_types, Store, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub struct PublishRules {
    store: Store,
    /// `HOOKRELAY_REJECT_UNKNOWN_EVENT_TYPES`, for tenants without a setting.
    global_default: bool,
    /// Each remembered rule with the version it was read at.
    rules: RwLock<HashMap<String, (Arc<PublishRule>, i64)>>,
    /// Bumped by every change, so that a rule read from the database before
    /// a change is not remembered after it.
    changes: AtomicU64,
}

impl PublishRules {
    pub fn new(store: Store, global_default: bool) -> PublishRules {
        PublishRules {
            store,
            global_default,
            rules: RwLock::new(HashMap::new()),
            changes: AtomicU64::new(0),
        }
    }

    /// 422 naming `type` when the tenant refuses `event_type`.
    pub async fn admit(&self, tenant_id: &str, event_type: &str) -> Result<(), ApiError> {
        Ok(self.rule(tenant_id).await?.admit(event_type)?)
    }

    async fn rule(&self, tenant_id: &str) -> Result<Arc<PublishRule>, StoreError> {
        if let Some((rule, _)) = read(&self.rules).get(tenant_id) {
            return Ok(Arc::clone(rule));
        }
        let seen = self.changes.load(Ordering::SeqCst);
        let tenant = tenant_id.to_owned();
        let global_default = self.global_default;
        let (rule, version) = self
            .store
            .run(move |db| event_types::publish_rule(db, &tenant, global_default))
            .await?;
        let rule = Arc::new(rule);
        let mut rules = write(&self.rules);
        if self.changes.load(Ordering::SeqCst) == seen {
            rules.insert(tenant_id.to_owned(), (Arc::clone(&rule), version));
        }
        Ok(rule)
    }

    /// The tenant's setting or catalog changed (and the change committed):
    /// its next event reads them again.
    pub fn forget(&self, tenant_id: &str) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        write(&self.rules).remove(tenant_id);
    }

    /// Forgets the rules whose version the database has moved past (a
    /// change through another instance); answers how many.
    pub async fn forget_outdated(&self) -> Result<usize, StoreError> {
        let remembered: Vec<(String, i64)> = read(&self.rules)
            .iter()
            .map(|(tenant, (_, version))| (tenant.clone(), *version))
            .collect();
        if remembered.is_empty() {
            return Ok(0);
        }
        let tenants: Vec<String> = remembered.iter().map(|(t, _)| t.clone()).collect();
        let current = self
            .store
            .run(move |db| event_types::publish_rule_versions(db, &tenants))
            .await?;
        let outdated: Vec<&String> = remembered
            .iter()
            .filter(|(tenant, version)| current.get(tenant) != Some(version))
            .map(|(tenant, _)| tenant)
            .collect();
        for tenant in &outdated {
            self.forget(tenant);
        }
        Ok(outdated.len())
    }
}
