//! Keeping the registry current with changes made through other instances:
//! every change to a tenant's endpoints raises the tenant's endpoints
//! version and signals it in its transaction ([`endpoints::versions`]).
//! Every second, and at once on the signal, the router reads the versions
//! and reloads the endpoints of the tenants whose version moved: new
//! endpoints are added, changed ones reconfigured, deleted ones retired.
//! Signals come in commit order, so work signalled with a registry change
//! waits for that reload: a delivery published after a change made through
//! another instance is sent as changed.

use super::{Route, Router};
use crate::actors::endpoint::Reconfigure;
use crate::core::endpoint::EndpointConfig;
use crate::store::endpoints;
use actix::prelude::*;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// How often the versions are read: the longest a change made through
/// another instance takes to reach this one when its signal is lost.
const REGISTRY_POLL: Duration = Duration::from_secs(1);

/// A tenant's endpoints as stored.
type TenantEndpoints = (String, Vec<EndpointConfig>);

impl Router {
    pub(super) fn poll_registry(&self, ctx: &mut Context<Self>) {
        ctx.run_interval(REGISTRY_POLL, |act, ctx| act.read_registry(ctx));
    }

    /// Reads the versions, then the endpoints of every tenant whose version
    /// moved; one read at a time.
    pub(super) fn read_registry(&mut self, ctx: &mut Context<Self>) {
        if self.registry_reading {
            // What that read found may predate the change asked about.
            self.registry_again = true;
            return;
        }
        self.registry_reading = true;
        let seen = self.registry_versions.clone();
        let store = self.store.clone();
        let catalog = self.catalog.clone();
        let read = async move {
            store
                .run(move |db| {
                    let versions = endpoints::versions(db)?;
                    let mut changed: Vec<TenantEndpoints> = Vec::new();
                    for (tenant, version) in &versions {
                        if seen.get(tenant) == Some(version) {
                            continue;
                        }
                        let mut configs = Vec::new();
                        for row in endpoints::all_of_tenant(db, tenant)? {
                            configs.push(row.config(&catalog.defaults, &catalog.secrets)?);
                        }
                        changed.push((tenant.clone(), configs));
                    }
                    Ok((versions, changed))
                })
                .await
        };
        ctx.spawn(read.into_actor(self).map(|read, act, ctx| {
            act.registry_reading = false;
            match read {
                Ok((versions, changed)) => {
                    for (tenant, configs) in changed {
                        act.refresh_tenant(&tenant, configs);
                    }
                    act.registry_versions = versions;
                }
                Err(error) => log::warn!("reading endpoint changes failed: {error}"),
            }
            if std::mem::take(&mut act.registry_again) {
                return act.read_registry(ctx);
            }
            for id in std::mem::take(&mut act.work_after_registry) {
                act.work_on_disk(&id);
            }
        }));
    }

    fn refresh_tenant(&mut self, tenant: &str, configs: Vec<EndpointConfig>) {
        let stored: HashSet<String> = configs.iter().map(|c| c.id.clone()).collect();
        let known = self.by_tenant.get(tenant).cloned().unwrap_or_default();
        // A read that began before a create made through this instance
        // committed lacks it: an endpoint is removed once two reads in a
        // row lack it (the second began after the first was applied).
        for id in known.iter().filter(|id| !stored.contains(*id)) {
            if !self.missing_once.insert(id.clone()) {
                self.missing_once.remove(id);
                self.remove_route(id);
            }
        }
        self.missing_once.retain(|id| !stored.contains(id));
        for config in configs {
            self.refresh_route(config);
        }
    }

    /// Takes the stored configuration unless the route already holds it.
    /// The status of an endpoint whose actor runs here stays the actor's:
    /// every status change of an owned endpoint goes through it.
    fn refresh_route(&mut self, mut config: EndpointConfig) {
        let Some(route) = self.routes.get_mut(&config.id) else {
            let id = config.id.clone();
            self.add(config);
            if self.leases.contains_key(&id) {
                // Taken before its configuration was read here.
                self.work_on_disk(&id);
            } else {
                // A new endpoint: whoever has room in its share takes it.
                self.round_soon();
            }
            return;
        };
        if route.actor.is_some() {
            config.active = route.config.active;
        }
        if config.revision <= route.config.revision {
            // The same configuration, or an older one read before a change
            // made through this instance: only the status may be news, and
            // a running actor keeps its own.
            if config.revision == route.config.revision {
                Arc::make_mut(&mut route.config).active = config.active;
            }
            return;
        }
        route.config = Arc::new(config);
        if let Some(actor) = &route.actor {
            actor.do_send(Reconfigure(Arc::clone(&route.config)));
        }
    }

    /// Forgets a deleted endpoint: its actor retires, its lease went with
    /// its row.
    pub(super) fn remove_route(&mut self, id: &str) {
        self.forget_lease(id);
        if let Some(Route { config, .. }) = self.routes.remove(id) {
            if let Some(ids) = self.by_tenant.get_mut(&config.tenant_id) {
                ids.retain(|other| other != id);
            }
        }
    }
}
