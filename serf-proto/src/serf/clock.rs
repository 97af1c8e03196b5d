//! Lamport clocks (serf `lamport.go`).

/// A Lamport timestamp.
pub type LamportTime = u64;

/// The largest jump a clock takes from one message. Real clocks advance by one per intent,
/// event or query, so a time further ahead is forged or corrupt; believing it would let one
/// message push the clock to the end of its range, after which everything new from this
/// node would look old.
pub const MAX_LAMPORT_JUMP: LamportTime = 1 << 40;

/// A Lamport clock: ordered events across the cluster without synchronised wall clocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LamportClock(LamportTime);

impl LamportClock {
    /// The current time.
    pub fn time(&self) -> LamportTime {
        self.0
    }

    /// Advances the clock and returns the new time.
    pub fn increment(&mut self) -> LamportTime {
        self.0 = self.0.saturating_add(1);
        self.0
    }

    /// Observes a time from elsewhere: the clock moves past it if it is not behind.
    /// Witnessing the current value moves the clock forward by one, as Go's does.
    pub fn witness(&mut self, v: LamportTime) {
        if v >= self.0 {
            self.0 = v.saturating_add(1);
        }
    }

    /// Whether a time from elsewhere is believable: at most [`MAX_LAMPORT_JUMP`] ahead.
    pub fn plausible(&self, v: LamportTime) -> bool {
        v <= self.0.saturating_add(MAX_LAMPORT_JUMP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_moves_past_newer_times_only() {
        let mut c = LamportClock::default();
        assert_eq!(c.increment(), 1);
        c.witness(0);
        assert_eq!(c.time(), 1);
        c.witness(1);
        assert_eq!(c.time(), 2);
        c.witness(41);
        assert_eq!(c.time(), 42);
        assert!(!c.plausible(u64::MAX));
        assert!(c.plausible(42 + MAX_LAMPORT_JUMP));
    }
}
