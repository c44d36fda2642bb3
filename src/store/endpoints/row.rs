//! What an endpoint row means: its defaults, its JSON columns read back,
//! and the configuration the router and the endpoint actor work from.

use super::{ACTIVE, OPERATOR_ENDPOINT};
use crate::core::delivery::retry::DEFAULT_SCHEDULE;
use crate::core::endpoint::{
    EndpointConfig, HttpMethod, DEFAULT_MAX_IN_FLIGHT, DEFAULT_TIMEOUT_SECONDS,
};
use crate::core::health::limits::{HealthLimits, HealthOverrides};
use crate::core::input::domain::is_secret_header;
use crate::core::input::matching::EventTypePattern;
use crate::core::secrets::secret_box::SecretBox;
use crate::core::secrets::signature_scheme::{
    PreviousSigner, SchemeName, SignatureSettings, Signer, Signing, DEFAULT_SIGNATURE_HEADER,
};
use crate::core::secrets::signing::Secret;
use crate::store::models::EndpointRow;
use crate::store::StoreError;
use std::collections::BTreeMap;
use std::time::Duration;

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
            revision: self.updated_at,
        })
    }
}
