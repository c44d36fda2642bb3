//! What the API remembers from the database (known keys, publish rules)
//! is checked against it every [`CHECK_INTERVAL`], so that a change made
//! through another instance sharing the database (a key revoked, a catalog
//! or setting changed), or by `admin-key rotate`, takes effect here within
//! that time. A poll rather than a notification: a check missed while the
//! database was away is simply made at the next one.

use super::AppState;
use crate::core::delivery::retry::doubling_backoff;
use crate::store::StoreError;
use actix_web::web;
use std::time::Duration;

/// How often the remembered keys and rules are checked.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// The longest wait between checks while the database fails them.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Checks, for as long as the application runs; a failed check waits
/// longer before the next, doubling up to [`MAX_BACKOFF`].
pub async fn keep_current(state: web::Data<AppState>) {
    let mut failures = 0;
    loop {
        let wait = match failures {
            0 => CHECK_INTERVAL,
            _ => doubling_backoff(CHECK_INTERVAL, failures, MAX_BACKOFF),
        };
        actix_rt::time::sleep(wait).await;
        match check(&state).await {
            Ok(()) => {
                if failures > 0 {
                    log::info!("remembered API keys and publish rules are checked again");
                }
                failures = 0;
            }
            Err(error) => {
                if failures == 0 {
                    log::warn!("checking remembered API keys and publish rules failed ({error}); trying again with a backoff");
                }
                failures = failures.saturating_add(1);
            }
        }
    }
}

async fn check(state: &AppState) -> Result<(), StoreError> {
    let revoked = state.keys.forget_revoked().await?;
    if revoked > 0 {
        log::info!("{revoked} API key(s) revoked elsewhere are refused from now on");
    }
    let outdated = state.publish_rules.forget_outdated().await?;
    if outdated > 0 {
        log::info!("{outdated} tenant(s) changed what they publish elsewhere: read again");
    }
    Ok(())
}
