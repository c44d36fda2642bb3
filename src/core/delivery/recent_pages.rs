//! Which deliveries an endpoint's recent pages brought in from disk.
//!
//! The router hands a delivery to its endpoint after the delivery's commit,
//! so a page read from disk in between may bring it in first, and the
//! endpoint may even have sent and settled it before the hand-over arrives.
//! Remembering the ids of the recent pages tells such a late hand-over
//! (skip it) from a delivery no page saw (take it without reading disk).
//! What a forgotten page may have brought in is read from disk again, where
//! a settled delivery is no longer pending: the safe answer when in doubt.
//!
//! "May have brought in" is judged by each delivery's place in its
//! endpoint's line (`seq`, given by the database as the delivery is
//! written): a page brought nothing numbered above its highest number. No
//! clock takes part in a verdict. The clock only says when a page is
//! forgotten, after [`RecentPages::HORIZON_MS`] (or sooner, the oldest
//! first, when the pages hold more ids than their budget), so a busy
//! endpoint holds at most that many ids and a quiet one none; forgetting
//! early or late changes how often the disk is asked, never a verdict's
//! safety.

use std::collections::{HashSet, VecDeque};

/// What a late hand-over of a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOver {
    /// A remembered page brought it in: the endpoint has it or had it.
    BroughtIn,
    /// Numbered above everything a forgotten page may have brought in, and
    /// no remembered page brought it.
    New,
    /// A forgotten page may have brought it in: ask the disk.
    InDoubt,
}

#[derive(Debug)]
struct Remembered {
    /// When the page was in, to forget it by.
    read_at: i64,
    /// The highest number among `ids`.
    numbered_up_to: i64,
    ids: HashSet<String>,
}

#[derive(Debug)]
pub struct RecentPages {
    /// Newest last.
    pages: VecDeque<Remembered>,
    ids_held: usize,
    max_ids: usize,
    /// A delivery numbered up to this may have come with a forgotten page.
    doubted_up_to: Option<i64>,
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
            doubted_up_to: None,
        }
    }

    /// Every delivery numbered up to `seq` is in doubt (pages read before a
    /// reload, or by an earlier actor, are not known).
    pub fn doubt_up_to(&mut self, seq: i64) {
        self.doubted_up_to = Some(self.doubted_up_to.map_or(seq, |up_to| up_to.max(seq)));
    }

    /// A page was in at `read_at`, bringing these deliveries (id and
    /// number). One that brought nothing leaves nothing in doubt, so it is
    /// not kept.
    pub fn remember(&mut self, read_at: i64, brought: impl IntoIterator<Item = (String, i64)>) {
        let mut ids = HashSet::new();
        let mut numbered_up_to = i64::MIN;
        for (id, seq) in brought {
            numbered_up_to = numbered_up_to.max(seq);
            ids.insert(id);
        }
        if ids.is_empty() {
            return;
        }
        self.ids_held += ids.len();
        self.pages.push_back(Remembered {
            read_at,
            numbered_up_to,
            ids,
        });
        while self.pages.len() > Self::MAX_PAGES
            || (self.ids_held > self.max_ids && self.pages.len() > 1)
        {
            self.forget_oldest();
        }
    }

    pub fn judge(&self, id: &str, seq: i64) -> HandOver {
        if self.pages.iter().any(|page| page.ids.contains(id)) {
            HandOver::BroughtIn
        } else if self.doubted_up_to.is_some_and(|up_to| seq <= up_to) {
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
            .is_some_and(|page| page.read_at <= now.saturating_sub(Self::HORIZON_MS))
        {
            self.forget_oldest();
        }
    }

    /// When the oldest remembered page is to be forgotten.
    pub fn forget_at(&self) -> Option<i64> {
        self.pages
            .front()
            .map(|page| page.read_at.saturating_add(Self::HORIZON_MS))
    }

    pub fn forget_all(&mut self) {
        while !self.pages.is_empty() {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some(page) = self.pages.pop_front() {
            self.ids_held -= page.ids.len();
            self.doubt_up_to(page.numbered_up_to);
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

    /// Deliveries named by their number: "d7" is numbered 7.
    fn brought(numbers: &[i64]) -> Vec<(String, i64)> {
        numbers.iter().map(|n| (format!("d{n}"), *n)).collect()
    }

    fn judge(pages: &RecentPages, n: i64) -> HandOver {
        pages.judge(&format!("d{n}"), n)
    }

    #[test]
    fn a_hand_over_is_judged_by_the_remembered_pages_then_by_its_number() {
        let mut pages = RecentPages::new(10);
        pages.doubt_up_to(100);
        assert_eq!(judge(&pages, 100), HandOver::InDoubt);
        assert_eq!(judge(&pages, 101), HandOver::New);
        pages.remember(200, brought(&[150]));
        assert_eq!(judge(&pages, 150), HandOver::BroughtIn);
        assert_eq!(judge(&pages, 151), HandOver::New);
    }

    #[test]
    fn the_oldest_pages_are_forgotten_beyond_the_budget_of_ids() {
        let mut pages = RecentPages::new(3);
        pages.remember(200, brought(&[1]));
        pages.remember(300, brought(&[2, 3]));
        assert_eq!(judge(&pages, 1), HandOver::BroughtIn);
        pages.remember(400, brought(&[4]));
        assert_eq!(judge(&pages, 1), HandOver::InDoubt);
        assert_eq!(judge(&pages, 2), HandOver::BroughtIn);
        // Above the forgotten page's highest number: it cannot have come.
        assert_eq!(pages.judge("other", 2), HandOver::New);
        // The last page is kept whatever its size.
        pages.remember(500, brought(&[5, 6, 7, 8]));
        assert_eq!(judge(&pages, 4), HandOver::InDoubt);
        assert_eq!(judge(&pages, 8), HandOver::BroughtIn);
    }

    #[test]
    fn at_most_max_pages_are_remembered() {
        let mut pages = RecentPages::new(1000);
        for n in 0..=RecentPages::MAX_PAGES {
            let n = i64::try_from(n).unwrap_or(0);
            pages.remember(n * 10, brought(&[n * 2]));
        }
        assert_eq!(judge(&pages, 0), HandOver::InDoubt);
        assert_eq!(pages.judge("other", 1), HandOver::New);
        assert_eq!(judge(&pages, 2), HandOver::BroughtIn);
    }

    #[test]
    fn a_page_that_brought_nothing_is_not_kept() {
        let mut pages = RecentPages::new(10);
        pages.remember(100, brought(&[]));
        assert_eq!(pages.forget_at(), None);
        assert_eq!(judge(&pages, 50), HandOver::New);
    }

    #[test]
    fn pages_are_forgotten_after_the_horizon() {
        let mut pages = RecentPages::new(10);
        pages.remember(1_000, brought(&[1]));
        pages.remember(2_000, brought(&[2]));
        assert_eq!(pages.forget_at(), Some(1_000 + RecentPages::HORIZON_MS));
        pages.forget_old(1_999 + RecentPages::HORIZON_MS);
        assert_eq!(judge(&pages, 1), HandOver::InDoubt);
        assert_eq!(judge(&pages, 2), HandOver::BroughtIn);
        pages.forget_old(2_000 + RecentPages::HORIZON_MS);
        assert_eq!(pages.forget_at(), None);
        assert_eq!(judge(&pages, 2), HandOver::InDoubt);
        assert_eq!(judge(&pages, 3), HandOver::New);
    }

    /// The wall clock once decided this verdict (a delivery's creation time
    /// against a page's reading time), and a step back made a settled
    /// delivery's late hand-over look new.
    #[test]
    fn a_clock_step_back_never_makes_a_forgotten_page_s_delivery_new() {
        let mut pages = RecentPages::new(10);
        pages.remember(10_000, brought(&[7]));
        // The clock steps back an hour; the page is forgotten all the same
        // once its horizon passes on the new clock.
        pages.forget_all();
        assert_eq!(judge(&pages, 7), HandOver::InDoubt);
        pages.remember(10_000 - 3_600_000, brought(&[9]));
        pages.forget_old(10_000 - 3_600_000 + RecentPages::HORIZON_MS);
        assert_eq!(judge(&pages, 7), HandOver::InDoubt);
        assert_eq!(judge(&pages, 9), HandOver::InDoubt);
        assert_eq!(judge(&pages, 10), HandOver::New);
    }
}
