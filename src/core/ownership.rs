//! How instances sharing one database share its endpoints: each endpoint is
//! owned by one instance at a time, under a lease that the owner renews and
//! that another instance may take once it has expired. These rules decide,
//! from one round's census, how many endpoints an instance takes or gives
//! back, and whether an owner may go on sending while its renewals fail.

use std::time::Duration;

/// What one lease round read, as this instance sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    pub endpoints: u64,
    /// Instances whose heartbeat is fresh, this one included.
    pub live_instances: u64,
    /// Leases this instance holds after renewing them.
    pub owned: u64,
    /// The fewest endpoints another live instance owns (none: it is alone).
    pub fewest_owned_by_another: Option<u64>,
}

/// What this instance does with its leases in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeasePlan {
    /// Expired or unowned endpoints to take, at most.
    pub take: u64,
    /// Endpoints to give back, once their in-flight attempts finish.
    pub release: u64,
}

/// An instance takes up to its fair share (endpoints divided by live
/// instances, rounded up), never more while others are alive. It gives back
/// what lies above that share, and one more while another live instance
/// holds less than the share rounded down: so a joining instance gets its
/// share from owners that hand endpoints over, not by waiting for leases to
/// expire, and the counts settle within one of each other.
pub fn plan(census: &Census) -> LeasePlan {
    let live = census.live_instances.max(1);
    let high = census.endpoints.div_ceil(live);
    let low = census.endpoints / live;
    let take = high.saturating_sub(census.owned);
    let release = if census.owned > high {
        census.owned - high
    } else if census.owned > low && census.fewest_owned_by_another.is_some_and(|n| n < low) {
        1
    } else {
        0
    };
    LeasePlan { take, release }
}

/// How often leases are renewed: three times in a lease's life, so that one
/// failed renewal still leaves time for another.
pub fn renewal_interval(ttl: Duration) -> Duration {
    ttl / 3
}

/// Whether an owner whose last successful renewal was `since_renewal` ago
/// may still start attempts: it stops with a third of the lease left, so
/// that what it has in flight can finish before another instance may take
/// the endpoint over. An HTTP request cannot be fenced once sent.
pub fn may_keep_sending(since_renewal: Duration, ttl: Duration) -> bool {
    since_renewal < ttl - ttl / 3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn census(endpoints: u64, live: u64, owned: u64, fewest: Option<u64>) -> Census {
        Census {
            endpoints,
            live_instances: live,
            owned,
            fewest_owned_by_another: fewest,
        }
    }

    #[test]
    fn an_instance_alone_takes_every_endpoint() {
        assert_eq!(
            plan(&census(10, 1, 0, None)),
            LeasePlan {
                take: 10,
                release: 0
            }
        );
    }

    #[test]
    fn an_instance_takes_no_more_than_its_share_while_others_live() {
        assert_eq!(plan(&census(10, 2, 0, Some(10))).take, 5);
        assert_eq!(plan(&census(10, 3, 3, Some(3))).take, 1);
        assert_eq!(plan(&census(10, 3, 4, Some(3))).take, 0);
    }

    #[test]
    fn an_owner_gives_back_what_lies_above_its_share_when_another_joins() {
        // Alone with 10, then a second instance's heartbeat appears.
        assert_eq!(
            plan(&census(10, 2, 10, Some(0))),
            LeasePlan {
                take: 0,
                release: 5
            }
        );
    }

    #[test]
    fn counts_settle_within_one_of_each_other() {
        // 10 over 3: shares of 3 and 4. An instance stuck at 2 (nothing
        // free) gets one from an owner above the lower share.
        assert_eq!(plan(&census(10, 3, 4, Some(2))).release, 1);
        // Settled: 4, 3, 3. The threes look for a fourth (finding none
        // free) and nobody gives any back.
        assert_eq!(plan(&census(10, 3, 4, Some(3))), LeasePlan::default());
        assert_eq!(
            plan(&census(10, 3, 3, Some(3))),
            LeasePlan {
                take: 1,
                release: 0
            }
        );
    }

    #[test]
    fn survivors_take_over_a_dead_instances_share() {
        // Three became two: 5 each, and these 3 take 2 more.
        assert_eq!(plan(&census(10, 2, 3, Some(3))).take, 2);
    }

    #[test]
    fn no_endpoints_means_nothing_to_do() {
        assert_eq!(plan(&census(0, 3, 0, Some(0))), LeasePlan::default());
    }

    #[test]
    fn an_owner_stops_sending_with_a_third_of_its_lease_left() {
        let ttl = Duration::from_secs(9);
        assert_eq!(renewal_interval(ttl), Duration::from_secs(3));
        // One missed renewal (two intervals since the last one) is fine.
        assert!(may_keep_sending(Duration::from_millis(5_999), ttl));
        assert!(!may_keep_sending(Duration::from_secs(6), ttl));
    }
}
