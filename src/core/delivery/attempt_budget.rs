//! How many HTTP attempts may be open at once: in all, and per tenant.
//!
//! Every attempt holds a socket (a file descriptor) for as long as its
//! receiver takes to answer, up to the endpoint's timeout. Without a bound,
//! receivers that accept and never answer make the process run out of file
//! descriptors, and then the API's accept loop and the database fail too.
//! The budget is sized well under the process's file limit; a tenant may
//! hold only a share of it, so that one tenant's hanging receivers leave
//! slots for everyone else. An attempt that finds no slot waits for one:
//! nothing fails, and the API is never stopped.

/// The share of the file limit attempts may take: the rest is for the
/// API's connections, the database, idle kept-alive connections and logs.
const FILE_LIMIT_SHARE: u64 = 4;

/// The budget when the file limit cannot be read, or is unlimited.
pub const DEFAULT_TOTAL: usize = 256;

/// The default budget never exceeds this, however high the file limit.
pub const MAX_DEFAULT_TOTAL: usize = 1024;

/// The smallest budget that still lets several endpoints work at once.
pub const MIN_TOTAL: usize = 4;

/// A tenant may hold at most this fraction (1 / n) of the total by default.
const TENANT_SHARE: usize = 4;

/// The concurrent attempts allowed: in all, and to any one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptBudget {
    pub total: usize,
    pub per_tenant: usize,
}

/// Why the configured budget cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("HOOKRELAY_MAX_CONCURRENT_ATTEMPTS must be at least {MIN_TOTAL}, got {0}")]
    TotalTooSmall(usize),
    #[error("HOOKRELAY_MAX_CONCURRENT_ATTEMPTS_PER_TENANT must be at least 1")]
    ShareZero,
    #[error(
        "HOOKRELAY_MAX_CONCURRENT_ATTEMPTS ({total}) must stay under half the \
         process's file limit ({file_limit}): raise the limit (ulimit -n) or lower it"
    )]
    OverFileLimit { total: usize, file_limit: u64 },
}

impl AttemptBudget {
    /// The budget from the settings (`None`: not set) and the process's
    /// soft file limit (`None`: unknown or unlimited).
    ///
    /// By default the total is a quarter of the file limit, between
    /// [`MIN_TOTAL`] and [`MAX_DEFAULT_TOTAL`], and a tenant's share a
    /// quarter of the total. A configured total may not exceed half the
    /// file limit: past that, the process would run out of files before its
    /// attempts ran out of slots.
    pub fn plan(
        total: Option<usize>,
        per_tenant: Option<usize>,
        file_limit: Option<u64>,
    ) -> Result<AttemptBudget, BudgetError> {
        let total = match total {
            Some(total) if total < MIN_TOTAL => return Err(BudgetError::TotalTooSmall(total)),
            Some(total) => {
                if let Some(file_limit) = file_limit {
                    if u64::try_from(total).unwrap_or(u64::MAX) > file_limit / 2 {
                        return Err(BudgetError::OverFileLimit { total, file_limit });
                    }
                }
                total
            }
            None => default_total(file_limit),
        };
        let per_tenant = match per_tenant {
            Some(0) => return Err(BudgetError::ShareZero),
            Some(share) => share.min(total),
            None => (total / TENANT_SHARE).max(1),
        };
        Ok(AttemptBudget { total, per_tenant })
    }
}

impl AttemptBudget {
    /// The most attempts one endpoint may have open: its own
    /// `max_in_flight`, but at most half its tenant's share (at least one),
    /// so that one hanging endpoint leaves the other half to the tenant's
    /// other endpoints.
    pub fn endpoint_in_flight(&self, configured: usize) -> usize {
        configured.min((self.per_tenant / 2).max(1))
    }
}

fn default_total(file_limit: Option<u64>) -> usize {
    match file_limit {
        None => DEFAULT_TOTAL,
        Some(limit) => usize::try_from(limit / FILE_LIMIT_SHARE)
            .unwrap_or(usize::MAX)
            .clamp(MIN_TOTAL, MAX_DEFAULT_TOTAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_total_is_a_quarter_of_the_file_limit() {
        let budget = AttemptBudget::plan(None, None, Some(1024)).expect("valid");
        assert_eq!(
            budget,
            AttemptBudget {
                total: 256,
                per_tenant: 64
            }
        );
        let low = AttemptBudget::plan(None, None, Some(256)).expect("valid");
        assert_eq!(
            low,
            AttemptBudget {
                total: 64,
                per_tenant: 16
            }
        );
    }

    #[test]
    fn the_default_total_is_bounded_both_ways() {
        let high = AttemptBudget::plan(None, None, Some(1 << 20)).expect("valid");
        assert_eq!(high.total, MAX_DEFAULT_TOTAL);
        let tiny = AttemptBudget::plan(None, None, Some(8)).expect("valid");
        assert_eq!(
            tiny,
            AttemptBudget {
                total: MIN_TOTAL,
                per_tenant: 1
            }
        );
        let unknown = AttemptBudget::plan(None, None, None).expect("valid");
        assert_eq!(unknown.total, DEFAULT_TOTAL);
    }

    #[test]
    fn a_configured_total_must_stay_under_half_the_file_limit() {
        assert_eq!(
            AttemptBudget::plan(Some(600), None, Some(1024)),
            Err(BudgetError::OverFileLimit {
                total: 600,
                file_limit: 1024
            })
        );
        let fits = AttemptBudget::plan(Some(512), None, Some(1024)).expect("valid");
        assert_eq!(
            fits,
            AttemptBudget {
                total: 512,
                per_tenant: 128
            }
        );
        let unknown_limit = AttemptBudget::plan(Some(5000), None, None).expect("valid");
        assert_eq!(unknown_limit.total, 5000);
        assert_eq!(
            AttemptBudget::plan(Some(2), None, None),
            Err(BudgetError::TotalTooSmall(2))
        );
    }

    #[test]
    fn a_tenant_share_is_never_more_than_the_total() {
        let budget = AttemptBudget::plan(Some(100), Some(500), None).expect("valid");
        assert_eq!(
            budget,
            AttemptBudget {
                total: 100,
                per_tenant: 100
            }
        );
        assert_eq!(
            AttemptBudget::plan(Some(100), Some(0), None),
            Err(BudgetError::ShareZero)
        );
    }

    #[test]
    fn no_tenant_can_take_every_slot_by_default() {
        for file_limit in [8, 64, 256, 1024, 4096, 1 << 20] {
            let budget = AttemptBudget::plan(None, None, Some(file_limit)).expect("valid");
            assert!(budget.per_tenant < budget.total, "{budget:?}");
            assert!(
                (budget.total as u64) < file_limit.max(16) / 2,
                "{budget:?} under {file_limit}"
            );
        }
    }

    #[test]
    fn one_endpoint_holds_at_most_half_its_tenant_share() {
        let budget = AttemptBudget {
            total: 64,
            per_tenant: 16,
        };
        assert_eq!(budget.endpoint_in_flight(256), 8);
        assert_eq!(budget.endpoint_in_flight(4), 4);
        let tiny = AttemptBudget {
            total: 4,
            per_tenant: 1,
        };
        assert_eq!(tiny.endpoint_in_flight(16), 1);
    }
}
