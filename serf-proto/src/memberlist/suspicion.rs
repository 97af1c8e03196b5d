//! The formulas of memberlist (`util.go`, `suspicion.go`, `awareness.go`) and the Lifeguard
//! suspicion state.
//!
//! Trust the code over Go's comments (go-serf.md §7): suspicion uses `log10(n)` floored at 1,
//! retransmits use `ceil(log10(n + 1))`.

use crate::name::Name;
use crate::time::Instant;
use core::time::Duration;
use smallvec::SmallVec;

/// The minimum suspicion timeout: `mult * max(1, log10(max(1, n))) * interval`, with the
/// scale computed in thousandths as Go does (`suspicionTimeout`).
pub fn suspicion_timeout(mult: u32, n: usize, interval: Duration) -> Duration {
    let scale = (n.max(1) as f64).log10().max(1.0);
    let milli_scale = (scale * 1000.0) as u128;
    let nanos = u128::from(mult) * milli_scale * interval.as_nanos() / 1000;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// How many times a broadcast is sent: `mult * ceil(log10(n + 1))` (`retransmitLimit`).
pub fn retransmit_limit(mult: u32, n: usize) -> u32 {
    let scale = ((n as f64) + 1.0).log10().ceil() as u32;
    mult.saturating_mul(scale)
}

/// The push-pull period for a cluster of `n`: the base up to 32 members, then one more
/// multiple per doubling (`pushPullScale`).
pub fn push_pull_scale(interval: Duration, n: usize) -> Duration {
    const THRESHOLD: usize = 32;
    if n <= THRESHOLD {
        return interval;
    }
    let mult = ((n as f64).log2() - (THRESHOLD as f64).log2()).ceil() as u32 + 1;
    interval.saturating_mul(mult)
}

/// The remaining suspicion time after `confirmations` of `k` wanted, `elapsed` after the
/// suspicion started (`remainingSuspicionTime`). Negative results are returned as zero:
/// the node is declared dead at once.
pub fn remaining_suspicion_time(
    confirmations: u32,
    k: u32,
    elapsed: Duration,
    min: Duration,
    max: Duration,
) -> Duration {
    let frac = (f64::from(confirmations) + 1.0).ln() / (f64::from(k) + 1.0).ln();
    let raw = max.as_secs_f64() - frac * (max.as_secs_f64() - min.as_secs_f64());
    let timeout = Duration::from_millis((1000.0 * raw).floor().max(0.0) as u64).max(min);
    timeout.saturating_sub(elapsed)
}

/// Lifeguard's local health multiplier: a score in `0..max`, raised by signs that this node
/// is the slow one (failed probes without nacks, having to refute) and lowered by successful
/// probes. Timeouts are scaled by `score + 1`.
#[derive(Debug, Clone)]
pub struct Awareness {
    max: u32,
    score: u32,
}

impl Awareness {
    /// A healthy node with scores up to `max - 1`.
    pub fn new(max: u32) -> Self {
        Awareness { max, score: 0 }
    }

    /// Applies a change, clamped to `0..max`.
    pub fn apply(&mut self, delta: i32) {
        let s = i64::from(self.score) + i64::from(delta);
        self.score = s.clamp(0, i64::from(self.max.saturating_sub(1))) as u32;
    }

    /// The score: 0 is healthy.
    pub fn score(&self) -> u32 {
        self.score
    }

    /// `t * (score + 1)`.
    pub fn scale(&self, t: Duration) -> Duration {
        t.saturating_mul(self.score + 1)
    }
}

/// An ongoing suspicion of one member (Lifeguard §IV-B).
#[derive(Debug, Clone)]
pub struct Suspicion {
    /// When the suspicion started.
    pub start: Instant,
    /// Confirmations wanted before the timeout reaches its minimum.
    pub k: u32,
    /// Independent confirmations seen.
    pub confirmations: u32,
    /// The minimum timeout.
    pub min: Duration,
    /// The starting timeout.
    pub max: Duration,
    /// When the member will be declared dead.
    pub deadline: Instant,
    /// Changes whenever the deadline moves, to invalidate older timer entries.
    pub generation: u64,
    /// Who accused or confirmed; the accuser never counts as a confirmation.
    seen: SmallVec<[Name; 4]>,
}

impl Suspicion {
    /// Starts a suspicion raised by `from`.
    pub fn new(from: Name, k: u32, min: Duration, max: Duration, now: Instant) -> Self {
        let timeout = if k < 1 { min } else { max };
        let mut seen = SmallVec::new();
        seen.push(from);
        Suspicion {
            start: now,
            k,
            confirmations: 0,
            min,
            max,
            deadline: now + timeout,
            generation: 0,
            seen,
        }
    }

    /// Records an independent confirmation. Returns `true` if it was new (then the caller
    /// re-gossips it and reschedules at the new `deadline`).
    pub fn confirm(&mut self, from: &str, now: Instant) -> bool {
        if self.confirmations >= self.k || self.seen.iter().any(|n| n.as_str() == from) {
            return false;
        }
        self.seen.push(Name::from_str_unchecked(from));
        self.confirmations += 1;
        let elapsed = now - self.start;
        let remaining =
            remaining_suspicion_time(self.confirmations, self.k, elapsed, self.min, self.max);
        self.deadline = now + remaining;
        // Distinct from any generation the owner hands out to new suspicions, which count
        // up from 1 in the low bits.
        self.generation = self.generation.wrapping_add(1 << 32);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn suspicion_matches_reference_tables() {
        let i = Duration::from_secs(1);
        // go-serf.md §2.3: LAN suspicion min at n = 5, 50, 500, 5000.
        assert_eq!(suspicion_timeout(4, 5, i), secs(4.0));
        assert_eq!(suspicion_timeout(4, 50, i), Duration::from_millis(6792));
        assert_eq!(suspicion_timeout(4, 500, i), Duration::from_millis(10792));
        assert_eq!(suspicion_timeout(4, 5000, i), Duration::from_millis(14792));
        // LAN at n = 100: min 8 s, max 48 s; 0, 1, 2 confirmations give 48, 22.8, 8 s.
        let min = suspicion_timeout(4, 100, i);
        let max = min * 6;
        assert_eq!(min, secs(8.0));
        assert_eq!(max, secs(48.0));
        let k = 4 - 2;
        let zero = Duration::ZERO;
        assert_eq!(remaining_suspicion_time(0, k, zero, min, max), secs(48.0));
        assert_eq!(
            remaining_suspicion_time(1, k, zero, min, max),
            Duration::from_millis(22_762)
        );
        assert_eq!(remaining_suspicion_time(2, k, zero, min, max), secs(8.0));
        // Elapsed time is subtracted; it never goes below zero.
        assert_eq!(remaining_suspicion_time(2, k, secs(10.0), min, max), zero);
        // The example of go-serf.md §3.4: n <= 10 gives 24 s, 11.38 s, 4 s.
        let (min, max) = (suspicion_timeout(4, 10, i), suspicion_timeout(4, 10, i) * 6);
        assert_eq!(remaining_suspicion_time(0, 2, zero, min, max), secs(24.0));
        assert_eq!(
            remaining_suspicion_time(1, 2, zero, min, max),
            Duration::from_millis(11_381)
        );
    }

    #[test]
    fn retransmits_match_reference_table() {
        let got: Vec<u32> = [5, 50, 500, 5000]
            .iter()
            .map(|&n| retransmit_limit(4, n))
            .collect();
        assert_eq!(got, vec![4, 8, 12, 16]);
        assert_eq!(retransmit_limit(4, 0), 0);
    }

    #[test]
    fn push_pull_period_matches_reference_table() {
        let base = Duration::from_secs(30);
        let got: Vec<u64> = [5, 50, 500, 5000]
            .iter()
            .map(|&n| push_pull_scale(base, n).as_secs())
            .collect();
        assert_eq!(got, vec![30, 60, 150, 270]);
        assert_eq!(push_pull_scale(base, 32).as_secs(), 30);
        assert_eq!(push_pull_scale(base, 33).as_secs(), 60);
        assert_eq!(push_pull_scale(base, 10_000).as_secs(), 300);
    }

    #[test]
    fn awareness_is_clamped_and_scales() {
        let mut a = Awareness::new(8);
        a.apply(-1);
        assert_eq!(a.score(), 0);
        a.apply(100);
        assert_eq!(a.score(), 7);
        assert_eq!(a.scale(Duration::from_secs(1)), Duration::from_secs(8));
    }

    #[test]
    fn confirmations_shrink_the_deadline_once_per_peer() {
        let t0 = Instant::ZERO;
        let mut s = Suspicion::new(Name::new("a").unwrap(), 2, secs(8.0), secs(48.0), t0);
        assert_eq!(s.deadline, t0 + secs(48.0));
        assert!(!s.confirm("a", t0), "the accuser is not a confirmation");
        assert!(s.confirm("b", t0));
        assert!(!s.confirm("b", t0));
        assert_eq!(s.deadline, t0 + Duration::from_millis(22_762));
        assert!(s.confirm("c", t0 + secs(1.0)));
        assert_eq!(s.deadline, t0 + secs(8.0));
        assert!(!s.confirm("d", t0), "no more than k confirmations");
    }
}
