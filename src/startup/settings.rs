//! Each setting checked at start, and turned into what a part of the
//! service takes; a refusal names the variable and the option.

use super::StartupError;
use crate::actors::endpoint::ActorSettings;
use crate::config::Settings;
use crate::core::delivery::attempt_budget::AttemptBudget;
use crate::core::delivery::retention::{RetentionSettings, SweepPace};
use crate::core::endpoint_machine::WindowLimits;
use crate::core::health::limits::HealthLimits;
use crate::core::input::domain::{is_id, parse_endpoint_url};
use crate::core::secrets::secret_box::{SecretBox, SecretKey};
use crate::core::secrets::signing::Secret;
use crate::ids;
use std::time::Duration;

/// The global health limits, refused at start-up when contradictory or
/// past the bounds the API holds an endpoint's overrides to.
pub(super) fn health_limits(settings: &Settings) -> Result<HealthLimits, StartupError> {
    let limits = HealthLimits {
        breaker_failures: settings.breaker_failures,
        breaker_cooldown: Duration::from_secs(settings.breaker_cooldown_seconds),
        breaker_max_cooldown: Duration::from_secs(settings.breaker_max_cooldown_seconds),
        alert_thresholds: settings.alert_thresholds.clone(),
        disable_after_failures: settings.disable_after_failures,
        disable_after: Duration::from_secs(settings.disable_after_seconds),
    };
    limits
        .check_bounds()
        .and_then(|()| limits.check())
        .map_err(|refused| {
            StartupError::Settings(format!(
                "HOOKRELAY_{} (--{}) {}",
                refused.field.to_ascii_uppercase(),
                refused.field.replace('_', "-"),
                refused.reason
            ))
        })?;
    Ok(limits)
}

/// How long finished deliveries are kept, and how often that is applied.
pub(super) fn retention_settings(
    settings: &Settings,
) -> Result<(RetentionSettings, SweepPace), StartupError> {
    if settings.retention_interval_seconds == 0 {
        return Err(StartupError::Settings(
            "HOOKRELAY_RETENTION_INTERVAL_SECONDS (--retention-interval-seconds) must be at least 1"
                .to_owned(),
        ));
    }
    Ok((
        RetentionSettings {
            succeeded_days: settings.retain_succeeded_days,
            failed_days: settings.retain_failed_days,
        },
        SweepPace::every(Duration::from_secs(settings.retention_interval_seconds)),
    ))
}

/// What every endpoint actor shares: its queue window, alert bound and
/// backlog batch.
pub(super) fn actor_settings(
    settings: &Settings,
    attempt_budget: AttemptBudget,
) -> Result<ActorSettings, StartupError> {
    if settings.queue_window == 0 {
        return Err(StartupError::Settings(
            "HOOKRELAY_QUEUE_WINDOW (--queue-window) must be at least 1".to_owned(),
        ));
    }
    if settings.queue_window_bytes == 0 {
        return Err(StartupError::Settings(
            "HOOKRELAY_QUEUE_WINDOW_BYTES (--queue-window-bytes) must be at least 1".to_owned(),
        ));
    }
    if settings.move_batch == 0 {
        return Err(StartupError::Settings(
            "HOOKRELAY_MOVE_BATCH (--move-batch) must be at least 1".to_owned(),
        ));
    }
    Ok(ActorSettings {
        window: WindowLimits {
            deliveries: settings.queue_window,
            bytes: settings.queue_window_bytes,
        },
        alert_min_interval: Duration::from_secs(settings.alert_min_interval_seconds),
        move_batch: settings.move_batch,
        attempt_budget,
    })
}

/// The attempt budget, sized under the process's file limit; both are
/// logged, so that an operator sees what bounds outbound work.
pub(super) fn attempt_budget(settings: &Settings) -> Result<AttemptBudget, StartupError> {
    let file_limit = soft_file_limit();
    let budget = AttemptBudget::plan(
        settings.max_concurrent_attempts,
        settings.max_concurrent_attempts_per_tenant,
        file_limit,
    )
    .map_err(|error| StartupError::Settings(error.to_string()))?;
    let limit = file_limit.map_or_else(|| "unlimited".to_owned(), |limit| limit.to_string());
    log::info!(
        "file limit (RLIMIT_NOFILE) {limit}: at most {} HTTP attempts at once, {} per tenant",
        budget.total,
        budget.per_tenant
    );
    Ok(budget)
}

/// The soft limit of open files, or `None` when unlimited or unreadable.
fn soft_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given a pointer to.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (read == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// What reads and writes stored endpoint secrets: sealing with
/// `HOOKRELAY_SECRET_KEY` when it is set.
pub(super) fn secret_box(settings: &Settings) -> Result<SecretBox, StartupError> {
    let key = settings
        .secret_key
        .as_deref()
        .map(SecretKey::parse)
        .transpose()
        .map_err(|reason| {
            StartupError::Settings(format!("HOOKRELAY_SECRET_KEY (--secret-key) {reason}"))
        })?;
    Ok(SecretBox::new(key))
}

/// This instance's name: the configured one, checked, or a drawn one.
pub(super) fn instance_id(settings: &Settings) -> Result<String, StartupError> {
    match &settings.instance_id {
        Some(id) if is_id(id) && id.len() <= 64 => Ok(id.clone()),
        Some(_) => Err(StartupError::Settings(
            "HOOKRELAY_INSTANCE_ID (--instance-id) must be 1 to 64 letters, digits, '.', '_', ':' or '-'"
                .to_owned(),
        )),
        None => Ok(ids::instance_id()),
    }
}

/// The operator's alert URL and the secret that signs what it receives.
pub(super) fn alert_target(settings: &Settings) -> Result<Option<(String, Secret)>, StartupError> {
    let Some(url) = &settings.alert_url else {
        return Ok(None);
    };
    let url = parse_endpoint_url(url).map_err(|refused| {
        StartupError::Settings(format!("HOOKRELAY_ALERT_URL {}", refused.reason))
    })?;
    let secret = match &settings.alert_secret {
        Some(secret) => Secret::parse(secret)
            .map_err(|e| StartupError::Settings(format!("HOOKRELAY_ALERT_SECRET {e}")))?,
        None => {
            return Err(StartupError::Settings(
                "HOOKRELAY_ALERT_SECRET is required with HOOKRELAY_ALERT_URL (whsec_<base64>)"
                    .to_owned(),
            ))
        }
    };
    Ok(Some((url.to_string(), secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_health_setting_the_api_would_refuse_stops_start_up_naming_the_variable() {
        let defaults = Settings::new("sqlite://unused.db");
        assert!(health_limits(&defaults).is_ok());
        let cases = [
            (
                Settings {
                    breaker_failures: u32::MAX,
                    ..defaults.clone()
                },
                "HOOKRELAY_BREAKER_FAILURES",
            ),
            (
                Settings {
                    disable_after_failures: 1 << 31,
                    ..defaults.clone()
                },
                "HOOKRELAY_DISABLE_AFTER_FAILURES",
            ),
            (
                Settings {
                    alert_thresholds: vec![3, u32::MAX],
                    ..defaults.clone()
                },
                "HOOKRELAY_ALERT_THRESHOLDS",
            ),
            (
                Settings {
                    disable_after_seconds: u64::MAX,
                    ..defaults.clone()
                },
                "HOOKRELAY_DISABLE_AFTER_SECONDS",
            ),
        ];
        for (settings, variable) in cases {
            let refused = health_limits(&settings)
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default();
            assert!(refused.contains(variable), "{variable}: {refused:?}");
        }
    }
}
