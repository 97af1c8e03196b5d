//! The node's own seeded random number generator.
//!
//! Every random choice the core makes (probe order, gossip targets, sequence numbers, timer
//! jitter, encryption nonces) comes from this generator, seeded by the driver. Its algorithm
//! (xoshiro256++) is fixed, so a seed gives the same choices on every platform, wasm included.
//! Production drivers seed it from OS entropy, which also makes the random 192-bit
//! XChaCha20 nonces safe.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng as _, RngExt as _, SeedableRng};

/// A deterministic random number generator owned by one node.
#[derive(Debug, Clone)]
pub struct NodeRng {
    inner: Xoshiro256PlusPlus,
}

impl NodeRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        NodeRng {
            inner: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    /// A uniformly random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A uniformly random `u32`.
    pub fn next_u32(&mut self) -> u32 {
        self.inner.next_u32()
    }

    /// Fills `dst` with random bytes.
    pub fn fill(&mut self, dst: &mut [u8]) {
        self.inner.fill_bytes(dst)
    }

    /// A uniformly random index in `0..n`. `n` must be non-zero.
    pub fn index(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        if n <= 1 {
            return 0;
        }
        self.inner.random_range(0..n)
    }

    /// A uniformly random `f64` in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.inner.random::<f64>()
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.unit() < p
        }
    }

    /// A uniformly random duration in `[0, max)`.
    pub fn duration_below(&mut self, max: core::time::Duration) -> core::time::Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return core::time::Duration::ZERO;
        }
        core::time::Duration::from_nanos(self.inner.random_range(0..nanos))
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = NodeRng::new(7);
        let mut b = NodeRng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut c = NodeRng::new(8);
        assert_ne!(NodeRng::new(7).next_u64(), c.next_u64());
    }

    #[test]
    fn index_stays_in_range() {
        let mut r = NodeRng::new(1);
        for n in 1..50 {
            for _ in 0..20 {
                assert!(r.index(n) < n);
            }
        }
    }
}
