//! The window: which pending deliveries the machine holds in memory, how
//! they are offered and paged in from disk, and how a late hand-over is
//! told from a new delivery.
//!
//! The database holds every pending delivery; the machine holds at most a
//! window of them (a count and a byte budget), the earliest due first.
//! Deliveries that do not fit stay on disk and are paged in, in order of
//! due time, as the window drains; `disk_floor` remembers the earliest due
//! time that may be waiting on disk.

use super::{
    millis, min_opt, Effect, EndpointMachine, Lifecycle, Page, PageOrder, QueuedDelivery,
    PAGE_RETRY_DELAY, UNKNOWN_FLOOR,
};
use crate::core::delivery::recent_pages::HandOver;
use std::collections::HashSet;

impl EndpointMachine {
    /// Deliveries just committed for this endpoint (created, and due, before
    /// their commit). The router may hand one over after a page read from
    /// disk brought it in, and even after it was sent and settled: one a
    /// recent page brought in is skipped, and one a forgotten page may have
    /// brought in is read from disk again (where a settled delivery is no
    /// longer pending) instead of being offered.
    pub fn enqueue(&mut self, deliveries: Vec<QueuedDelivery>, now: i64) -> Vec<Effect> {
        match self.lifecycle {
            Lifecycle::Retired => Vec::new(),
            Lifecycle::Disabled => {
                let ids: Vec<String> = deliveries
                    .into_iter()
                    .map(|d| d.id)
                    .filter(|id| !self.knows(id))
                    .collect();
                if ids.is_empty() {
                    return Vec::new();
                }
                self.writes_in_flight += 1;
                vec![Effect::Hold(ids)]
            }
            _ => {
                for delivery in deliveries {
                    if self.knows(&delivery.id) {
                        continue;
                    }
                    match self.recent_pages.judge(&delivery.id, delivery.seq) {
                        HandOver::BroughtIn => {}
                        HandOver::InDoubt => {
                            let key = self.order_key(&delivery);
                            self.leave_on_disk(key);
                        }
                        HandOver::New => self.offer(delivery),
                    }
                }
                self.pump(now)
            }
        }
    }

    /// The page asked for by [`Effect::LoadPage`].
    pub fn page_loaded(&mut self, page: Page, now: i64) -> Vec<Effect> {
        self.page_in_flight = false;
        let settled = std::mem::take(&mut self.settled_during_page);
        let mut floor = std::mem::take(&mut self.floor_during_page);
        if !matches!(self.lifecycle, Lifecycle::Active | Lifecycle::Draining) {
            self.offer_parked();
            return self.pump(now);
        }
        floor = min_opt(floor, page.more_from);
        self.recent_pages
            .remember(now, page.deliveries.iter().map(|d| (d.id.clone(), d.seq)));
        // An ordered window holds the front of the line: once a delivery
        // does not fit, every later one stays on disk behind it.
        let mut left_behind = false;
        for delivery in page.deliveries {
            if self.knows(&delivery.id) || settled.contains(&delivery.id) {
                continue;
            }
            if !left_behind && self.fits(&delivery) {
                self.insert(delivery);
            } else {
                left_behind = self.config.ordered;
                floor = min_opt(floor, Some(self.order_key(&delivery)));
            }
        }
        self.disk_floor = floor;
        self.offer_parked();
        self.pump(now)
    }

    pub(super) fn offer_parked(&mut self) {
        for delivery in std::mem::take(&mut self.parked) {
            self.readmit(delivery);
        }
    }

    /// Reading a page failed: try again a little later.
    pub fn page_failed(&mut self, now: i64) -> Vec<Effect> {
        self.page_in_flight = false;
        self.settled_during_page.clear();
        let retry_at = now.saturating_add(millis(PAGE_RETRY_DELAY));
        let floor = min_opt(self.floor_during_page.take(), self.disk_floor);
        if self.config.ordered {
            self.disk_floor = floor;
            self.page_retry_at = Some(retry_at);
        } else {
            self.disk_floor = Some(floor.map_or(retry_at, |f| f.max(retry_at)));
        }
        self.offer_parked();
        self.pump(now)
    }

    /// The timer armed by [`Effect::ForgetPagesAt`] fired.
    pub fn forget_pages(&mut self, now: i64) -> Vec<Effect> {
        self.forget_pages_at = None;
        self.pump(now)
    }

    /// Pending deliveries were written to disk without passing through the
    /// machine (an operator's recovery of failed deliveries): page them in.
    /// A page being read may predate them, so it does not clear the floor.
    pub fn work_on_disk(&mut self, now: i64) -> Vec<Effect> {
        if self.lifecycle == Lifecycle::Active {
            self.leave_on_disk(UNKNOWN_FLOOR);
        }
        self.pump(now)
    }

    /// The delivery was settled without the machine (an operator's manual
    /// attempt succeeded): it leaves the window, so it is not sent again.
    /// One in flight finishes and is recorded, but is not retried (the
    /// store keeps the delivery settled); a page being read may predate
    /// the settlement, so it does not bring the delivery in.
    pub fn settled_elsewhere(&mut self, delivery_id: &str, seq: i64, now: i64) -> Vec<Effect> {
        if let Some(due_at) = self.window_due.get(delivery_id).copied() {
            self.take(&(due_at, delivery_id.to_owned()));
        }
        self.parked.retain(|delivery| delivery.id != delivery_id);
        if self.in_flight.contains_key(delivery_id) || self.unsettled.contains_key(delivery_id) {
            self.settled_meanwhile.insert(delivery_id.to_owned());
        }
        if self.page_in_flight {
            self.settled_during_page.insert(delivery_id.to_owned());
        }
        // The router's hand-over of this delivery may still be on its way:
        // remembered like a page's, it is skipped.
        self.recent_pages
            .remember(now, [(delivery_id.to_owned(), seq)]);
        self.pump(now)
    }

    pub(super) fn knows(&self, id: &str) -> bool {
        self.window_due.contains_key(id)
            || self.in_flight.contains_key(id)
            || self.unsettled.contains_key(id)
            || self.parked.iter().any(|d| d.id == id)
    }

    pub(super) fn fits(&self, delivery: &QueuedDelivery) -> bool {
        self.window.is_empty()
            || (self.window.len() < self.config.window.deliveries
                && self.window_bytes.saturating_add(delivery.body.len())
                    <= self.config.window.bytes)
    }

    /// Where a delivery stands in the window and on disk, before its id:
    /// its due time, or on an ordered endpoint its place in the line.
    pub(super) fn order_key(&self, delivery: &QueuedDelivery) -> i64 {
        if self.config.ordered {
            delivery.seq
        } else {
            delivery.due_at
        }
    }

    pub(super) fn insert(&mut self, delivery: QueuedDelivery) {
        let key = self.order_key(&delivery);
        self.window_bytes = self.window_bytes.saturating_add(delivery.body.len());
        self.window_due.insert(delivery.id.clone(), key);
        self.window.insert((key, delivery.id.clone()), delivery);
    }

    pub(super) fn take(&mut self, key: &(i64, String)) -> Option<QueuedDelivery> {
        let delivery = self.window.remove(key)?;
        self.window_due.remove(&delivery.id);
        self.window_bytes = self.window_bytes.saturating_sub(delivery.body.len());
        Some(delivery)
    }

    /// Leaves `due_at` on disk (the delivery is there already).
    pub(super) fn leave_on_disk(&mut self, due_at: i64) {
        self.disk_floor = min_opt(self.disk_floor, Some(due_at));
        if self.page_in_flight {
            self.floor_during_page = min_opt(self.floor_during_page, Some(due_at));
        }
    }

    /// A new arrival: into the window if it has room and nothing older
    /// waits on disk; ahead of the latest one if it comes before it.
    pub(super) fn offer(&mut self, delivery: QueuedDelivery) {
        let key = self.order_key(&delivery);
        if self.disk_floor.is_some_and(|floor| floor <= key) {
            self.leave_on_disk(key);
            return;
        }
        self.insert_before_later(delivery);
    }

    /// Into the window, sending later deliveries back to disk to make room;
    /// to disk itself when the window is full of earlier ones.
    pub(super) fn insert_before_later(&mut self, delivery: QueuedDelivery) {
        let key = (self.order_key(&delivery), delivery.id.clone());
        while !self.fits(&delivery) {
            let latest = match self.window.keys().next_back() {
                Some(latest) if *latest > key => latest.clone(),
                _ => {
                    self.leave_on_disk(key.0);
                    return;
                }
            };
            if self.take(&latest).is_some() {
                self.leave_on_disk(latest.0);
            }
        }
        self.insert(delivery);
    }

    /// A delivery coming back from an attempt, due again later.
    pub(super) fn readmit(&mut self, delivery: QueuedDelivery) {
        if self.page_in_flight {
            self.parked.push(delivery);
        } else if matches!(self.lifecycle, Lifecycle::Active | Lifecycle::Draining) {
            if self.config.ordered {
                // It heads the line: it keeps its place even when the
                // floor has reached its event time (a tie on disk).
                self.insert_before_later(delivery);
            } else {
                self.offer(delivery);
            }
        } else if self.lifecycle != Lifecycle::Retired {
            let key = self.order_key(&delivery);
            self.leave_on_disk(key);
        }
    }

    pub(super) fn forget_window(&mut self) {
        self.window.clear();
        self.window_due.clear();
        self.window_bytes = 0;
    }

    pub(super) fn load_page(&mut self, order: PageOrder) -> Effect {
        self.page_in_flight = true;
        self.floor_during_page = None;
        let mut exclude: Vec<String> = self.window_due.keys().cloned().collect();
        exclude.extend(self.in_flight.keys().cloned());
        exclude.extend(self.unsettled.keys().cloned());
        exclude.extend(self.parked.iter().map(|d| d.id.clone()));
        Effect::LoadPage {
            deliveries: self.config.window.deliveries - self.window.len(),
            bytes: self.config.window.bytes.saturating_sub(self.window_bytes),
            exclude,
            order,
        }
    }

    /// Any wake-up forgets old pages; a quiet machine, which no answer will
    /// wake soon (its next wake-up may be a retry hours away), arms a timer
    /// to forget them.
    pub(super) fn wake_to_forget_pages(&mut self, now: i64) -> Option<Effect> {
        let at = self.recent_pages.forget_at().filter(|at| *at > now)?;
        if self
            .forget_pages_at
            .is_some_and(|armed| armed > now && armed <= at)
        {
            return None;
        }
        self.forget_pages_at = Some(at);
        Some(Effect::ForgetPagesAt(at))
    }
}

/// Picks a page from the rows read from disk (earliest due first): rows in
/// `exclude` are skipped, then rows are taken while the page holds fewer
/// than `deliveries` and their bodies fit in `bytes` (the first always
/// fits, so a body larger than the budget still goes out). Returns the
/// indexes taken and the due time of the first row left behind.
pub fn select_page(
    rows: &[(String, i64, usize)],
    exclude: &HashSet<String>,
    deliveries: usize,
    bytes: usize,
) -> (Vec<usize>, Option<i64>) {
    let mut taken = Vec::new();
    let mut used = 0usize;
    for (index, (id, due_at, size)) in rows.iter().enumerate() {
        if exclude.contains(id) {
            continue;
        }
        let fits = taken.is_empty() || used.saturating_add(*size) <= bytes;
        if taken.len() >= deliveries || !fits {
            return (taken, Some(*due_at));
        }
        used = used.saturating_add(*size);
        taken.push(index);
    }
    (taken, None)
}
