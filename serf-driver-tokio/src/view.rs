//! When the task republishes the read-only member view ([`crate::Members`]).
//!
//! A republish clones every member, so doing it after every batch that changed
//! membership costs O(n) per batch: in a join storm of a large cluster, most of the
//! task's time. The view is instead republished at once after a quiet spell, then at most
//! once per [`REPUBLISH_INTERVAL`] while changes keep coming, and always once more when
//! they stop, so the final state is never left unpublished (the task sleeps until
//! [`Republish::due`]). A change of the node's own state (leaving, left, shut down) is
//! rare and awaited by callers, so it is published at once; so is the view after a
//! handle's command, and before a join's answer, so a caller reads its own writes.

use serf_proto::serf::SerfState;
use std::time::Duration;
use tokio::time::Instant;

/// The least time between two republishes while membership keeps changing.
pub(crate) const REPUBLISH_INTERVAL: Duration = Duration::from_millis(10);

/// The republish schedule.
#[derive(Debug)]
pub(crate) struct Republish {
    /// The membership version and state last published.
    published: (u64, SerfState),
    last: Option<Instant>,
    due: Option<Instant>,
}

impl Republish {
    /// A schedule whose first check publishes, whatever the state.
    pub fn new() -> Republish {
        Republish {
            published: (u64::MAX, SerfState::Alive),
            last: None,
            due: None,
        }
    }

    /// Whether to publish `current` now (at once if `force`d and changed). If not, and
    /// it differs from what was published, [`Republish::due`] says when to check again.
    pub fn check(&mut self, current: (u64, SerfState), now: Instant, force: bool) -> bool {
        if current == self.published {
            self.due = None;
            return false;
        }
        let quiet = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= REPUBLISH_INTERVAL);
        if quiet || force || current.1 != self.published.1 {
            self.published = current;
            self.last = Some(now);
            self.due = None;
            return true;
        }
        if self.due.is_none() {
            self.due = self.last.map(|last| last + REPUBLISH_INTERVAL);
        }
        false
    }

    /// When a held-back change must be published, if one is.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Republish {
        fn check_now(&mut self, current: (u64, SerfState), now: Instant) -> bool {
            self.check(current, now, false)
        }
    }

    #[test]
    fn a_forced_check_publishes_a_change_at_once() {
        let t0 = Instant::now();
        let mut r = Republish::new();
        assert!(r.check(1_u64.pair(), t0, false));
        assert!(!r.check(2_u64.pair(), t0, false));
        assert!(r.check(2_u64.pair(), t0, true));
        assert!(!r.check(2_u64.pair(), t0, true), "nothing new");
    }

    trait Pair {
        fn pair(self) -> (u64, SerfState);
    }

    impl Pair for u64 {
        fn pair(self) -> (u64, SerfState) {
            (self, SerfState::Alive)
        }
    }

    #[test]
    fn a_burst_of_changes_is_published_at_most_once_per_interval_and_the_last_always() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut r = Republish::new();
        assert!(
            r.check_now((1, SerfState::Alive), ms(0)),
            "first state at once"
        );
        assert!(!r.check_now((1, SerfState::Alive), ms(1)), "unchanged");
        // A storm: versions 2..=9 within the interval are held back...
        for (v, t) in (2..=9).zip(1..) {
            assert!(!r.check_now((v, SerfState::Alive), ms(t)));
            assert_eq!(r.due(), Some(ms(10)));
        }
        // ...and the latest is published when the interval is up, even with no new
        // change: the task wakes at `due` and checks again.
        assert!(r.check_now((9, SerfState::Alive), ms(10)));
        assert_eq!(r.due(), None);
        assert!(!r.check_now((9, SerfState::Alive), ms(11)));
        // After a quiet spell a change goes out at once.
        assert!(r.check_now((10, SerfState::Alive), ms(40)));
    }

    #[test]
    fn a_change_of_the_nodes_own_state_is_published_at_once() {
        let t0 = Instant::now();
        let mut r = Republish::new();
        assert!(r.check_now((1, SerfState::Alive), t0));
        assert!(!r.check_now((2, SerfState::Alive), t0));
        assert!(r.check_now((2, SerfState::Leaving), t0 + Duration::from_millis(1)));
        assert_eq!(r.due(), None);
    }
}
