//! Which deliveries an endpoint's recent pages brought in from disk.
//!
//! The router hands a delivery to its endpoint after the delivery's commit,
//! so a page read from disk in between may bring it in first, and the
//! endpoint may even have sent and settled it before the hand-over arrives.
//! Remembering the ids of the recent pages tells such a late hand-over
//! (skip it) from a delivery no page saw (take it without reading disk).
//! What a forgotten page may have brought in is read from disk again, where
//! a settled delivery is no longer pending: the safe answer when in doubt.
//! Pages are forgotten after [`RecentPages::HORIZON_MS`], and the oldest
//! sooner when the pages hold more ids than their budget, so a busy
//! endpoint holds at most that many and a quiet one none.

use std::collections::{HashSet, VecDeque};

/// What a late hand-over of a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOver {
    /// A remembered page brought it in: the endpoint has it or had it.
    BroughtIn,
    /// No page read since its creation is forgotten, and none brought it.
    New,
    /// A forgotten page may have brought it in: ask the disk.
    InDoubt,
}

#[derive(Debug)]
pub struct RecentPages {
    /// Newest last: when each page was in, and the ids it brought.
    pages: VecDeque<(i64, HashSet<String>)>,
    ids_held: usize,
    max_ids: usize,
    /// When the newest forgotten page was in: a delivery created by then
    /// may have come with it.
    forgotten_by: Option<i64>,
}

impl RecentPages {
    /// How many pages are remembered at most, however small.
    const MAX_PAGES: usize = 64;

    /// How long a page is remembered, in milliseconds: far longer than a
    /// hand-over takes from commit to endpoint.
    pub const HORIZON_MS: i64 = 5_000;

    /// Nothing remembered; the pages remembered hold at most `max_ids` ids
    /// (the last page is kept whatever its size).
    pub fn new(max_ids: usize) -> Self {
        RecentPages {
            pages: VecDeque::new(),
            ids_held: 0,
            max_ids,
            forgotten_by: None,
        }
    }

    /// Everything created by `at` is in doubt (pages read before a
    /// reload, or by an earlier actor, are not known).
    pub fn doubt_created_by(&mut self, at: i64) {
        self.forgotten_by = Some(self.forgotten_by.map_or(at, |by| by.max(at)));
    }

    /// A page was in at `read_by`, bringing `ids`. One that brought nothing
    /// leaves nothing in doubt, so it is not kept.
    pub fn remember(&mut self, read_by: i64, ids: HashSet<String>) {
        if ids.is_empty() {
            return;
        }
        self.ids_held += ids.len();
        self.pages.push_back((read_by, ids));
        while self.pages.len() > Self::MAX_PAGES
            || (self.ids_held > self.max_ids && self.pages.len() > 1)
        {
            self.forget_oldest();
        }
    }

    pub fn judge(&self, id: &str, created_at: i64) -> HandOver {
        if self.pages.iter().any(|(_, ids)| ids.contains(id)) {
            HandOver::BroughtIn
        } else if self.forgotten_by.is_some_and(|by| created_at <= by) {
            HandOver::InDoubt
        } else {
            HandOver::New
        }
    }

    /// Forgets the pages in longer than [`Self::HORIZON_MS`] before `now`.
    pub fn forget_old(&mut self, now: i64) {
        while self
            .pages
            .front()
            .is_some_and(|(read_by, _)| *read_by <= now.saturating_sub(Self::HORIZON_MS))
        {
            self.forget_oldest();
        }
    }

    /// When the oldest remembered page is to be forgotten.
    pub fn forget_at(&self) -> Option<i64> {
        self.pages
            .front()
            .map(|(read_by, _)| read_by.saturating_add(Self::HORIZON_MS))
    }

    pub fn forget_all(&mut self) {
        while !self.pages.is_empty() {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((read_by, ids)) = self.pages.pop_front() {
            self.ids_held -= ids.len();
            self.doubt_created_by(read_by);
        }
        if self.pages.is_empty() {
            // A quiet endpoint keeps no buffer either.
            self.pages = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> HashSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn a_hand_over_is_judged_by_the_remembered_pages_then_by_creation_time() {
        let mut pages = RecentPages::new(10);
        pages.doubt_created_by(100);
        assert_eq!(pages.judge("a", 100), HandOver::InDoubt);
        assert_eq!(pages.judge("a", 101), HandOver::New);
        pages.remember(200, ids(&["a"]));
        assert_eq!(pages.judge("a", 150), HandOver::BroughtIn);
        assert_eq!(pages.judge("b", 150), HandOver::New);
    }

    #[test]
    fn the_oldest_pages_are_forgotten_beyond_the_budget_of_ids() {
        let mut pages = RecentPages::new(3);
        pages.remember(200, ids(&["a"]));
        pages.remember(300, ids(&["b", "c"]));
        assert_eq!(pages.judge("a", 150), HandOver::BroughtIn);
        pages.remember(400, ids(&["d"]));
        assert_eq!(pages.judge("a", 150), HandOver::InDoubt);
        assert_eq!(pages.judge("x", 201), HandOver::New);
        assert_eq!(pages.judge("b", 250), HandOver::BroughtIn);
        // The last page is kept whatever its size.
        pages.remember(500, ids(&["e", "f", "g", "h"]));
        assert_eq!(pages.judge("d", 350), HandOver::InDoubt);
        assert_eq!(pages.judge("h", 450), HandOver::BroughtIn);
    }

    #[test]
    fn at_most_max_pages_are_remembered() {
        let mut pages = RecentPages::new(1000);
        for n in 0..=RecentPages::MAX_PAGES {
            let read_by = i64::try_from(n).unwrap_or(0) * 10;
            pages.remember(read_by, ids(&[&format!("d{n}")]));
        }
        assert_eq!(pages.judge("a", 0), HandOver::InDoubt);
        assert_eq!(pages.judge("d0", 0), HandOver::InDoubt);
        assert_eq!(pages.judge("a", 1), HandOver::New);
        assert_eq!(pages.judge("d1", 5), HandOver::BroughtIn);
    }

    #[test]
    fn a_page_that_brought_nothing_is_not_kept() {
        let mut pages = RecentPages::new(10);
        pages.remember(100, HashSet::new());
        assert_eq!(pages.forget_at(), None);
        assert_eq!(pages.judge("a", 50), HandOver::New);
    }

    #[test]
    fn pages_are_forgotten_after_the_horizon() {
        let mut pages = RecentPages::new(10);
        pages.remember(1_000, ids(&["a"]));
        pages.remember(2_000, ids(&["b"]));
        assert_eq!(pages.forget_at(), Some(1_000 + RecentPages::HORIZON_MS));
        pages.forget_old(1_999 + RecentPages::HORIZON_MS);
        assert_eq!(pages.judge("a", 500), HandOver::InDoubt);
        assert_eq!(pages.judge("b", 1_500), HandOver::BroughtIn);
        pages.forget_old(2_000 + RecentPages::HORIZON_MS);
        assert_eq!(pages.forget_at(), None);
        assert_eq!(pages.judge("b", 1_500), HandOver::InDoubt);
        assert_eq!(pages.judge("c", 2_001), HandOver::New);
    }
}
