//! The core's deadlines.
//!
//! Periodic protocol timers (probe, gossip, push-pull) sit in a fixed table indexed by kind,
//! as quinn-proto's `TimerTable`. Per-item deadlines (a probe's phases, indirect-probe
//! relays, suspicions, streams) go into a binary heap ordered by `(deadline, sequence)`, so
//! ties fire in insertion order and runs are deterministic. Heap entries are never removed
//! early: each carries what is needed to check, when it fires, that it still applies
//! (a sequence number or generation), so a stale entry is a harmless no-op.

use crate::name::Name;
use crate::time::Instant;
use core::cmp::Reverse;
use std::collections::BinaryHeap;

/// The periodic timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Periodic {
    /// Start the next probe.
    Probe = 0,
    /// Gossip broadcasts to random members.
    Gossip = 1,
    /// Exchange full state with a random member.
    PushPull = 2,
}

const PERIODIC: usize = 3;

/// A one-shot deadline.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// The direct phase of probe `seq` is over: go indirect.
    ProbeTimeout(u32),
    /// Probe `seq`'s window is over: success or suspicion.
    ProbeEnd(u32),
    /// An indirect-probe relay for our `seq` sends its nack if no ack came yet.
    RelayNack(u32),
    /// An indirect-probe relay for our `seq` is forgotten.
    RelayExpiry(u32),
    /// A suspicion of a member reaches its deadline, if its generation still matches.
    Suspicion(Name, u64),
    /// A stream reaches its deadline.
    Stream(u64),
    /// A graceful leave stops waiting for its broadcast.
    Leave(u64),
}

/// The table of periodic timers plus the heap of one-shot deadlines.
#[derive(Debug, Default)]
pub struct Timers {
    periodic: [Option<Instant>; PERIODIC],
    heap: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    seq: u64,
}

impl Timers {
    /// Sets (or clears) a periodic timer.
    pub fn set_periodic(&mut self, which: Periodic, at: Option<Instant>) {
        self.periodic[which as usize] = at;
    }

    /// When a periodic timer is due.
    pub fn periodic(&self, which: Periodic) -> Option<Instant> {
        self.periodic[which as usize]
    }

    /// Schedules a one-shot timer.
    pub fn schedule(&mut self, at: Instant, timer: Timer) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, timer)));
    }

    /// The earliest deadline of either kind, leaving periodic timer `skip` out.
    pub fn next_deadline(&self, skip: Option<Periodic>) -> Option<Instant> {
        let heap = self.heap.peek().map(|Reverse((at, _, _))| *at);
        let periodic = self.periodic.iter().enumerate();
        let periodic = periodic
            .filter(|(i, _)| skip.is_none_or(|s| *i != s as usize))
            .flat_map(|(_, at)| *at);
        periodic.chain(heap).min()
    }

    /// Takes the next one-shot timer due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse((_, _, t))| t),
            _ => None,
        }
    }

    /// Drops every timer.
    pub fn clear(&mut self) {
        self.periodic = [None; PERIODIC];
        self.heap.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_ties_in_order() {
        let mut t = Timers::default();
        t.schedule(Instant::from_secs(2), Timer::Stream(1));
        t.schedule(Instant::from_secs(1), Timer::Stream(2));
        t.schedule(Instant::from_secs(1), Timer::Stream(3));
        t.set_periodic(Periodic::Gossip, Some(Instant::from_millis(500)));
        assert_eq!(t.next_deadline(None), Some(Instant::from_millis(500)));
        assert_eq!(t.pop_due(Instant::from_millis(999)), None);
        assert_eq!(t.pop_due(Instant::from_secs(5)), Some(Timer::Stream(2)));
        assert_eq!(t.pop_due(Instant::from_secs(5)), Some(Timer::Stream(3)));
        assert_eq!(t.pop_due(Instant::from_secs(5)), Some(Timer::Stream(1)));
        assert_eq!(t.pop_due(Instant::from_secs(5)), None);
    }
}
