//! Ordered endpoints: one delivery at a time, in line order.
//!
//! An endpoint with `ordered` set delivers in line order (each delivery's
//! `seq`, which the database gives as the delivery is written, in commit
//! order on that endpoint; see `store::sequence`): the oldest unsettled
//! delivery, the head of the line, goes alone. The window and the disk are
//! then ordered by line number instead of due time (`disk_floor` is the
//! lowest number that may wait on disk), and nothing is sent while the
//! head is in flight, while its write is unanswered, or while something
//! older may wait on disk: a head waiting for its retry (backoff, breaker,
//! rate limit) holds everything behind it until it succeeds or fails for
//! good.

use super::{Effect, EndpointMachine, PageOrder};
use crate::core::delivery::lifecycle::BacklogMove;

impl EndpointMachine {
    /// Whether the window's first delivery (order key `key`) is the oldest
    /// unsettled one: none is in flight or being written or coming back,
    /// nothing older may wait on disk, and no replay is still making held
    /// (older) deliveries pending again.
    pub(super) fn heads_the_line(&self, key: i64) -> bool {
        self.in_flight.is_empty()
            && self.unsettled.is_empty()
            && self.parked.is_empty()
            && self.disk_floor.is_none_or(|floor| key <= floor)
            && self.moving != Some(BacklogMove::Replay)
    }

    /// Paging of an ordered endpoint: when the window runs low, or when
    /// something older than its first delivery may wait on disk (a
    /// recovery, a replay); then the window is read afresh from the oldest
    /// pending delivery, so that it always holds the front of the line.
    /// Returns when to try again after a failed page.
    pub(super) fn page_in_line_order(
        &mut self,
        floor: i64,
        low: bool,
        now: i64,
        effects: &mut Vec<Effect>,
    ) -> Option<i64> {
        if self.page_in_flight {
            return None;
        }
        if let Some(at) = self.page_retry_at.filter(|at| *at > now) {
            return Some(at);
        }
        let overtaken = self
            .window
            .keys()
            .next()
            .is_some_and(|(key, _)| *key > floor);
        if overtaken {
            self.forget_window();
        }
        if overtaken || low {
            self.page_retry_at = None;
            effects.push(self.load_page(PageOrder::Line));
        }
        None
    }
}
