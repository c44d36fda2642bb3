//! How long to hold back the 401 of a failed authentication, by the
//! address it came from: a few failures are free, each one past them waits
//! twice as long as the last (up to a cap), and failures are forgiven one
//! at a time as time passes. Valid keys are never looked up here.
//!
//! One timestamp per address (when all its failures are forgiven), like a
//! leaky bucket; the table holds at most `capacity` addresses, and when
//! full forgets first those closest to being forgiven. IPv6 addresses count
//! by /64, the block one host usually holds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures answered without delay before any is held back.
    pub free: u32,
    /// One failure is forgiven per this many ms.
    pub forgive_every_ms: i64,
    /// The delay of the first failure past the free ones; it doubles.
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Policy {
    /// Ten failures a minute never wait: a client retrying a mistyped key
    /// sees its 401s at once; a guesser waits up to 5 s an answer.
    pub const DEFAULT: Policy = Policy {
        free: 10,
        forgive_every_ms: 6_000,
        first_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(5),
    };

    /// Failures past which more count no more: the delay is at its cap by
    /// then, and an address that stops is forgiven within this many steps.
    fn counted(&self) -> u32 {
        let mut past = 0;
        while past < 31 && self.delay_for(self.free + 1 + past) < self.max_delay {
            past += 1;
        }
        self.free + 1 + past
    }

    fn delay_for(&self, failures: u32) -> Duration {
        match failures.checked_sub(self.free + 1) {
            None => Duration::ZERO,
            Some(past) => self
                .first_delay
                .saturating_mul(1u32.checked_shl(past).unwrap_or(u32::MAX))
                .min(self.max_delay),
        }
    }
}

pub struct AuthFailures {
    policy: Policy,
    capacity: usize,
    /// Per address, when all its failures are forgiven (epoch ms).
    forgiven_at: HashMap<IpAddr, i64>,
}

impl AuthFailures {
    pub fn new(policy: Policy, capacity: usize) -> AuthFailures {
        AuthFailures {
            policy,
            capacity: capacity.max(1),
            forgiven_at: HashMap::new(),
        }
    }

    /// Records a failed authentication from `address` at `now_ms`; answers
    /// how long its 401 waits.
    pub fn failed(&mut self, address: IpAddr, now_ms: i64) -> Duration {
        let source = source_of(address);
        if !self.forgiven_at.contains_key(&source) && self.forgiven_at.len() >= self.capacity {
            self.make_room(now_ms);
        }
        let step = self.policy.forgive_every_ms.max(1);
        let most = now_ms.saturating_add(step.saturating_mul(i64::from(self.policy.counted())));
        let forgiven_at = self.forgiven_at.entry(source).or_insert(now_ms);
        *forgiven_at = (*forgiven_at).max(now_ms).saturating_add(step).min(most);
        let failures = (*forgiven_at - now_ms + step - 1) / step;
        self.policy
            .delay_for(u32::try_from(failures).unwrap_or(u32::MAX))
    }

    /// Addresses remembered.
    pub fn len(&self) -> usize {
        self.forgiven_at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.forgiven_at.is_empty()
    }

    /// Forgets the forgiven; if none was, the one closest to it.
    fn make_room(&mut self, now_ms: i64) {
        self.forgiven_at.retain(|_, at| *at > now_ms);
        if self.forgiven_at.len() >= self.capacity {
            let closest = self
                .forgiven_at
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(source, _)| *source);
            if let Some(source) = closest {
                self.forgiven_at.remove(&source);
            }
        }
    }
}

/// What failures are counted under: an IPv4 address (also when mapped in
/// IPv6), or an IPv6 address's /64.
fn source_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn address(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn delays(table: &mut AuthFailures, from: &str, count: usize, at: i64) -> Vec<u128> {
        (0..count)
            .map(|_| table.failed(address(from), at).as_millis())
            .collect()
    }

    #[test]
    fn the_free_failures_answer_at_once_then_each_waits_twice_as_long_up_to_the_cap() {
        let mut table = AuthFailures::new(Policy::DEFAULT, 16);
        let waits = delays(&mut table, "203.0.113.7", 18, NOW);
        assert_eq!(waits[..10], [0; 10]);
        assert_eq!(
            waits[10..],
            [200, 400, 800, 1600, 3200, 5000, 5000, 5000],
            "{waits:?}"
        );
    }

    #[test]
    fn failures_are_forgiven_one_per_interval() {
        let mut table = AuthFailures::new(Policy::DEFAULT, 16);
        delays(&mut table, "203.0.113.7", 11, NOW);
        // Two intervals later two failures are forgiven: the next is the
        // tenth counted, free again; the one after is the eleventh.
        let later = NOW + 2 * Policy::DEFAULT.forgive_every_ms;
        assert_eq!(delays(&mut table, "203.0.113.7", 2, later), [0, 200]);
        // A steady ten failures a minute never wait.
        let mut steady = AuthFailures::new(Policy::DEFAULT, 16);
        for minute in 0..10 {
            for failure in 0..10 {
                let at = NOW + minute * 60_000 + failure * 6_000;
                assert_eq!(steady.failed(address("198.51.100.1"), at), Duration::ZERO);
            }
        }
    }

    #[test]
    fn an_address_that_stops_is_forgiven_soon_however_many_it_sent() {
        let mut table = AuthFailures::new(Policy::DEFAULT, 16);
        delays(&mut table, "203.0.113.7", 10_000, NOW);
        let later = NOW + i64::from(Policy::DEFAULT.counted()) * Policy::DEFAULT.forgive_every_ms;
        assert_eq!(table.failed(address("203.0.113.7"), later), Duration::ZERO);
    }

    #[test]
    fn other_addresses_are_not_held_back_by_one_that_fails() {
        let mut table = AuthFailures::new(Policy::DEFAULT, 16);
        delays(&mut table, "203.0.113.7", 50, NOW);
        assert_eq!(table.failed(address("203.0.113.8"), NOW), Duration::ZERO);
    }

    #[test]
    fn an_ipv6_host_counts_by_its_slash_64_and_a_mapped_ipv4_as_itself() {
        let mut table = AuthFailures::new(Policy::DEFAULT, 16);
        for host in 0..11 {
            table.failed(address(&format!("2001:db8:1:2::{host:x}")), NOW);
        }
        assert_eq!(table.len(), 1);
        assert!(table.failed(address("2001:db8:1:2:ffff::1"), NOW) > Duration::ZERO);
        assert_eq!(
            table.failed(address("2001:db8:1:3::1"), NOW),
            Duration::ZERO
        );
        delays(&mut table, "192.0.2.1", 11, NOW);
        assert!(table.failed(address("::ffff:192.0.2.1"), NOW) > Duration::ZERO);
    }

    #[test]
    fn the_table_stays_bounded_forgetting_the_forgiven_first_then_the_closest_to_it() {
        let mut table = AuthFailures::new(Policy::DEFAULT, 4);
        delays(&mut table, "10.0.0.1", 30, NOW);
        for host in 2..=4 {
            table.failed(address(&format!("10.0.0.{host}")), NOW);
        }
        assert_eq!(table.len(), 4);
        // A flood of new addresses keeps the table at its capacity and
        // evicts the lightly failing ones before the heavy one.
        for host in 0..1000 {
            table.failed(address(&format!("10.1.{}.{}", host / 256, host % 256)), NOW);
            assert!(table.len() <= 4);
        }
        assert!(table.failed(address("10.0.0.1"), NOW) > Duration::ZERO);
        // Once everything is forgiven, room is made without evicting.
        let later = NOW + 3_600_000;
        table.failed(address("10.2.0.1"), later);
        assert_eq!(table.len(), 1);
    }
}
