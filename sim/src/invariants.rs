//! Invariants checked at every step, incrementally.
//!
//! The engine tells [`Views`] about every membership event a node reports and every change
//! of the ground truth (a node starting, crashing, leaving). From that it keeps, per
//! member, the number of live views that hold it alive, and the number of members on
//! which the live nodes disagree with the truth, so "does the cluster agree?" costs O(1)
//! and no step scans the world.
//!
//! With `invariants.views` on, it also keeps each view's last reported state and
//! incarnation of each member (8 bytes per pair), to check that:
//! - **no resurrection**: a node that holds a member dead (or left) at incarnation `i`
//!   never reports it alive again at an incarnation `<= i`, unless it may have forgotten
//!   it (dead for longer than the forget time, memberlist `resetNodes`);
//! - **monotonic incarnations**: the incarnation a node reports for a member never goes
//!   down (same exemption), and a node's own incarnation never goes down within one life.

pub use crate::node::Change;
use core::time::Duration;
use serf_proto::Instant;
use serf_proto::memberlist::Config;
use serf_proto::memberlist::suspicion::{push_pull_scale, suspicion_timeout};

const UNKNOWN: u64 = 0;
const ALIVE: u64 = 1;
const DEAD: u64 = 2;
const LEFT: u64 = 3;
const TICK_NS: u64 = 10_000_000; // the table stores times in 10 ms units

fn pack(state: u64, incarnation: u32, now: Instant) -> u64 {
    let t = (now.as_nanos() / TICK_NS).min((1 << 30) - 1);
    u64::from(incarnation) | (state << 32) | (t << 34)
}

fn unpack(v: u64) -> (u64, u32, Instant) {
    (
        (v >> 32) & 3,
        v as u32,
        Instant::from_nanos((v >> 34) * TICK_NS),
    )
}

/// Ground truth and the views' agreement with it.
#[derive(Debug)]
pub struct Views {
    n: usize,
    table: Option<Vec<u64>>,
    alive_in: Vec<u32>,
    up: Vec<bool>,
    up_count: u32,
    ok: Vec<bool>,
    bad: usize,
    forget_after: Duration,
    /// Check for resurrections (needs the table).
    pub check_resurrection: bool,
    /// Check that incarnations never go backwards (needs the table).
    pub check_incarnations: bool,
}

impl Views {
    /// `n` nodes, none up. `table` keeps per-view state for the incarnation checks.
    /// `forget_after` is how long a node may keep a dead member before forgetting it.
    pub fn new(n: usize, table: bool, forget_after: Duration) -> Self {
        Views {
            n,
            table: table.then(|| vec![UNKNOWN; n * n]),
            alive_in: vec![0; n],
            up: vec![false; n],
            up_count: 0,
            ok: vec![true; n],
            bad: 0,
            forget_after,
            check_resurrection: true,
            check_incarnations: true,
        }
    }

    /// Whether every up node holds every up node as a member and no down one.
    pub fn agreed(&self) -> bool {
        self.bad == 0
    }

    /// Members on which the views disagree with the truth.
    pub fn disagreeing(&self) -> usize {
        self.bad
    }

    /// Up views holding `s` as a member.
    pub fn alive_in(&self, s: u32) -> u32 {
        self.alive_in[s as usize]
    }

    /// Nodes up.
    pub fn up_count(&self) -> u32 {
        self.up_count
    }

    /// Whether `s` is up in the truth.
    pub fn is_up(&self, s: u32) -> bool {
        self.up[s as usize]
    }

    /// The first member the views disagree on, for messages.
    pub fn first_disagreement(&self) -> Option<(u32, u32, bool)> {
        let s = self.ok.iter().position(|&ok| !ok)?;
        Some((s as u32, self.alive_in[s], self.up[s]))
    }

    fn reeval(&mut self, s: usize) {
        let want = if self.up[s] { self.up_count } else { 0 };
        let ok = self.alive_in[s] == want;
        if ok != self.ok[s] {
            self.ok[s] = ok;
            if ok {
                self.bad -= 1;
            } else {
                self.bad += 1;
            }
        }
    }

    /// Node `o` goes up with an empty view (started or restarted).
    pub fn node_up(&mut self, o: u32) {
        if let Some(t) = &mut self.table {
            let row = o as usize * self.n;
            t[row..row + self.n].fill(UNKNOWN);
        }
        if !self.up[o as usize] {
            self.up[o as usize] = true;
            self.up_count += 1;
            for s in 0..self.n {
                self.reeval(s);
            }
        }
    }

    /// Node `o` goes down (crash, leave). `held` are the members its view held; they
    /// lose its vote.
    pub fn node_down(&mut self, o: u32, held: &[u32]) {
        if !self.up[o as usize] {
            return;
        }
        for &s in held {
            let a = &mut self.alive_in[s as usize];
            *a = a.saturating_sub(1);
        }
        self.up[o as usize] = false;
        self.up_count -= 1;
        for s in 0..self.n {
            self.reeval(s);
        }
    }

    /// Node `o` reported `change` about `s` at `incarnation`. Returns a violation message
    /// if an invariant broke. Views of nodes that are not up are checked but not counted.
    pub fn member_event(
        &mut self,
        o: u32,
        s: u32,
        change: Change,
        incarnation: u32,
        now: Instant,
    ) -> Option<String> {
        let (check_resurrection, check_incarnations) =
            (self.check_resurrection, self.check_incarnations);
        let mut violation = None;
        if let Some(t) = &mut self.table {
            let cell = &mut t[o as usize * self.n + s as usize];
            let (state, prev_inc, since) = unpack(*cell);
            // Only members held dead or left may be forgotten (and relearned lower).
            let may_have_forgotten = (state == DEAD || state == LEFT)
                && now.saturating_duration_since(since) > self.forget_after;
            if state != UNKNOWN && !may_have_forgotten {
                let came_back = matches!(change, Change::Joined | Change::Updated);
                if check_resurrection && came_back && (state == DEAD || state == LEFT) {
                    if incarnation <= prev_inc {
                        violation = Some(format!(
                            "resurrection: node {o} held member {s} {} at incarnation {prev_inc} \
                             since {since}, and reported it alive again at incarnation {incarnation}",
                            if state == DEAD { "dead" } else { "left" }
                        ));
                    }
                } else if check_incarnations && incarnation < prev_inc {
                    violation = Some(format!(
                        "incarnation went backwards: node {o} reported member {s} at \
                         incarnation {incarnation} after {prev_inc}"
                    ));
                }
            }
            let new_state = match change {
                Change::Joined | Change::Updated => ALIVE,
                Change::Failed => DEAD,
                Change::Left => LEFT,
            };
            *cell = pack(new_state, incarnation, now);
        }
        if self.up[o as usize] {
            match change {
                Change::Joined => self.alive_in[s as usize] += 1,
                Change::Failed | Change::Left => {
                    let a = &mut self.alive_in[s as usize];
                    *a = a.saturating_sub(1);
                }
                Change::Updated => {}
            }
            self.reeval(s as usize);
        }
        violation
    }
}

/// The longest a suspicion can run in a cluster of `n`: the suspicion timeout times
/// `suspicion_max_timeout_mult` with Lifeguard (a suspicion starts there and only
/// confirmations shorten it), the timeout itself without.
pub fn longest_suspicion(c: &Config, n: usize) -> Duration {
    let min = suspicion_timeout(c.suspicion_mult, n.max(2), c.probe_interval);
    if c.lifeguard {
        min.saturating_mul(c.suspicion_max_timeout_mult)
    } else {
        min
    }
}

/// The convergence deadline the protocol implies once faults stop, for `n` nodes:
///
/// ```text
/// detect   = (ceil(3 + ln n) + 1) · probe_interval       some node probes a dead member
///                                                         (P(miss) ≈ e^-k after k rounds)
///                                                         and its probe window ends
/// suspect  = suspicion_timeout(mult, n, probe_interval)
///            · suspicion_max_timeout_mult                 the longest suspicion
/// spread   = 2 · (ceil(log2 n) + 4) · gossip_interval     epidemic dissemination, doubled
///                                                         for retransmit limits
/// merge    = push_pull_scale(push_pull_interval, n)       one anti-entropy period
///            + stream_timeout                             (healed partitions, restarts)
/// deadline = detect + suspect + 2 · spread + merge
/// ```
///
/// For 100 LAN nodes: 9 s + 48 s + 8.8 s + 90 s + 10 s ≈ 166 s.
pub fn convergence_deadline(c: &Config, n: usize) -> Duration {
    let n = n.max(2);
    let rounds = (3.0 + (n as f64).ln()).ceil() + 1.0;
    let detect = c.probe_interval.mul_f64(rounds);
    let suspect = suspicion_timeout(c.suspicion_mult, n, c.probe_interval)
        .saturating_mul(c.suspicion_max_timeout_mult);
    let spread = c
        .gossip_interval
        .mul_f64(2.0 * ((n as f64).log2().ceil() + 4.0));
    let merge = push_pull_scale(c.push_pull_interval, n) + c.stream_timeout;
    detect + suspect + spread * 2 + merge
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_follows_events_and_truth() {
        let mut v = Views::new(3, true, Duration::from_secs(30));
        for o in 0..3 {
            v.node_up(o);
        }
        assert!(!v.agreed());
        let t = Instant::from_secs(1);
        for o in 0..3 {
            for s in 0..3 {
                assert!(v.member_event(o, s, Change::Joined, 1, t).is_none());
            }
        }
        assert!(v.agreed());
        // Node 2 crashes: the others still hold it, so they disagree until they fail it.
        v.node_down(2, &[0, 1, 2]);
        assert_eq!(v.disagreeing(), 1);
        v.member_event(0, 2, Change::Failed, 1, t);
        v.member_event(1, 2, Change::Failed, 1, t);
        assert!(v.agreed());
    }

    #[test]
    fn resurrection_and_backwards_incarnations_are_caught() {
        let mut v = Views::new(2, true, Duration::from_secs(30));
        v.node_up(0);
        let t = Instant::from_secs(1);
        v.member_event(0, 1, Change::Joined, 3, t);
        v.member_event(0, 1, Change::Failed, 3, t);
        let e = v.member_event(0, 1, Change::Joined, 3, t + Duration::from_secs(2));
        assert!(e.unwrap().contains("resurrection"));
        let e = v.member_event(0, 1, Change::Updated, 2, t + Duration::from_secs(3));
        assert!(e.unwrap().contains("backwards"));
        // After the forget time a lower incarnation is a new acquaintance.
        v.member_event(0, 1, Change::Failed, 3, t);
        let later = t + Duration::from_secs(31);
        assert!(v.member_event(0, 1, Change::Joined, 1, later).is_none());
    }

    #[test]
    fn deadline_for_a_hundred_lan_nodes() {
        let d = convergence_deadline(&Config::lan(), 100);
        assert!(
            d > Duration::from_secs(150) && d < Duration::from_secs(180),
            "{d:?}"
        );
    }
}
