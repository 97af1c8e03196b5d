//! The network model: per-link latency and jitter, random and bursty loss, duplication,
//! reordering, partitions (groups and one-way cuts), and the stream timings.
//!
//! Modelled after str0m-netem's sans-IO link (rust-anchors §6.4), in virtual time. All
//! randomness comes from one seeded [`NodeRng`], drawn in a fixed order per packet, so a
//! run is a pure function of the scenario and the seed.
//!
//! Bursty loss is a Gilbert–Elliott chain kept per *destination* node (a congested access
//! link), not per pair, so memory stays linear in the number of nodes. Each source of
//! bursts (the scenario's `[network.burst]`, a `[[network.links]]` rule, a `network` or
//! `link` action) has chains of its own: a timed burst starts with every receiver in the
//! good state and its chains go when it ends, so it never leaves another one's state
//! behind.

use crate::duration;
use core::time::Duration;
use serde::{Deserialize, Serialize};
use serf_proto::{Instant, NodeRng};

/// Delay, loss and duplication of a link. Every field has a default; overrides in
/// `[[network.links]]` replace only the fields they set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkParams {
    /// One-way base latency.
    #[serde(with = "duration")]
    pub latency: Duration,
    /// Extra delay drawn uniformly in `[0, jitter)` per packet (reorders packets that are
    /// sent closer together than the jitter).
    #[serde(with = "duration")]
    pub jitter: Duration,
    /// Probability that a datagram is lost (independently).
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back by `reorder_delay` (reordering).
    pub reorder: f64,
    /// Delay of a reordered datagram.
    #[serde(with = "duration")]
    pub reorder_delay: Duration,
}

impl Default for LinkParams {
    fn default() -> Self {
        LinkParams {
            latency: Duration::from_millis(2),
            jitter: Duration::from_millis(1),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(20),
        }
    }
}

/// Overrides for the links between two node sets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkOverride {
    /// See [`LinkParams::latency`].
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub latency: Option<Duration>,
    /// See [`LinkParams::jitter`].
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub jitter: Option<Duration>,
    /// See [`LinkParams::loss`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// See [`LinkParams::duplicate`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<f64>,
    /// See [`LinkParams::reorder`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<f64>,
    /// Bursty loss on these links, replacing whatever burst applied to them before
    /// (`p_enter = 0` turns bursts off there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<Burst>,
}

impl LinkOverride {
    /// `base` with the fields set here replaced.
    pub fn apply(&self, base: &LinkParams) -> LinkParams {
        LinkParams {
            latency: self.latency.unwrap_or(base.latency),
            jitter: self.jitter.unwrap_or(base.jitter),
            loss: self.loss.unwrap_or(base.loss),
            duplicate: self.duplicate.unwrap_or(base.duplicate),
            reorder: self.reorder.unwrap_or(base.reorder),
            reorder_delay: base.reorder_delay,
        }
    }
}

/// Gilbert–Elliott bursty loss: a two-state chain (good, bad) advanced on every datagram
/// to a node; each state has its own loss probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Burst {
    /// Probability of moving from good to bad, per datagram.
    pub p_enter: f64,
    /// Probability of moving from bad back to good, per datagram (mean burst length is
    /// `1 / p_exit` datagrams).
    pub p_exit: f64,
    /// Loss probability in the bad state.
    pub loss_bad: f64,
    /// Loss probability in the good state (on top of the link's own `loss`).
    pub loss_good: f64,
}

impl Default for Burst {
    fn default() -> Self {
        Burst {
            p_enter: 0.0,
            p_exit: 0.3,
            loss_bad: 0.5,
            loss_good: 0.0,
        }
    }
}

/// How streams (TCP) behave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamParams {
    /// A connect to an unreachable host (partitioned, crashed) fails after this.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// An established stream cut by a partition or a crash fails after this (the
    /// retransmission timeout of a real TCP stack, shortened).
    #[serde(with = "duration")]
    pub break_timeout: Duration,
    /// Each datagram-loss event on a stream frame delays it by this (a retransmission).
    #[serde(with = "duration")]
    pub retransmit_timeout: Duration,
}

impl Default for StreamParams {
    fn default() -> Self {
        StreamParams {
            connect_timeout: Duration::from_secs(3),
            break_timeout: Duration::from_secs(5),
            retransmit_timeout: Duration::from_millis(200),
        }
    }
}

/// A fixed-size set of node indices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeBits(Vec<u64>);

impl NodeBits {
    /// The set of `nodes` out of `n`.
    pub fn from_nodes(n: usize, nodes: &[u32]) -> Self {
        let mut b = NodeBits(vec![0; n.div_ceil(64)]);
        for &i in nodes {
            b.insert(i);
        }
        b
    }

    /// Adds a node.
    pub fn insert(&mut self, i: u32) {
        let (w, b) = ((i / 64) as usize, i % 64);
        if w < self.0.len() {
            self.0[w] |= 1 << b;
        }
    }

    /// Removes a node.
    pub fn remove(&mut self, i: u32) {
        let (w, b) = ((i / 64) as usize, i % 64);
        if w < self.0.len() {
            self.0[w] &= !(1 << b);
        }
    }

    /// Whether the set has no node.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// Whether `i` is in the set.
    #[inline]
    pub fn contains(&self, i: u32) -> bool {
        self.0
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// The id of a timed fault: the index of the operation that started it. A fault ends by
/// its own id, so ending one never ends another.
pub type FaultId = u64;

/// The network: link parameters, partitions, and the network's RNG.
///
/// Partitions, one-way cuts and changes of the default link are *faults*, each kept with
/// its id while it is in force. What the network does now is recomputed from the faults
/// in force whenever one starts or ends, so overlapping faults compose and ending one
/// leaves the others in place.
#[derive(Debug)]
pub struct Network {
    rng: NodeRng,
    /// The scenario's default link, before any `network` action.
    default_link: LinkParams,
    /// `network` actions in force, in the order they started (later ones win).
    link_faults: Vec<(FaultId, LinkOverride)>,
    /// The default link now: `default_link` with `link_faults` applied in order.
    base: LinkParams,
    /// The scenario's `[network.burst]`, if any.
    default_burst: Option<Burst>,
    /// The burst of the default link now: the latest `network` action that sets one,
    /// else the scenario's.
    base_burst: Option<(Chains, Burst)>,
    /// Whether any burst applies anywhere (else a datagram skips the lookup).
    any_burst: bool,
    /// The receivers in the bad state, per source of bursts in use (a bit per node);
    /// created when the source first applies to a datagram, dropped when its action
    /// ends.
    chains: Vec<(Chains, NodeBits)>,
    rules: Vec<(NodeBits, NodeBits, LinkOverride)>,
    /// `link` actions in force, in the order they started: each overrides the settings
    /// it names on the links from its first set to its second, on top of the rules
    /// (later ones win).
    link_rules: Vec<(FaultId, NodeBits, NodeBits, LinkOverride)>,
    /// Partitions in force: the group of each node in each (0: in no group).
    partitions: Vec<(FaultId, Vec<u32>)>,
    /// Component of each node under all partitions in force: nodes in different
    /// components cannot talk.
    component: Vec<u32>,
    /// One-way cuts in force: nothing from the first set reaches the second.
    cuts: Vec<(FaultId, NodeBits, NodeBits)>,
    /// Whether any partition or cut separates some nodes now (kept up to date, so the
    /// question costs nothing per event).
    split: bool,
    /// Stream timings.
    pub stream: StreamParams,
    /// Each node's uplink: bytes per second and the longest backlog before datagrams are
    /// dropped (a drop-tail queue). `None`: unlimited.
    uplink: Option<(u64, Duration)>,
    /// When each node's uplink is next free.
    uplink_free: Vec<Instant>,
}

/// Which Gilbert–Elliott chains a datagram advances: each source of bursts keeps its own
/// state per receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chains {
    /// The scenario's `[network.burst]`.
    Scenario,
    /// The `[[network.links]]` rule at this index.
    Rule(usize),
    /// The `network` or `link` action with this id.
    Action(FaultId),
}

/// What happens to one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Dropped by a partition.
    Cut,
    /// Lost.
    Lost,
    /// Delivered at the first instant, and a duplicate at the second if any.
    Delivered(Instant, Option<Instant>),
    /// Dropped because the sender's uplink queue was full.
    UplinkFull,
}

impl Network {
    /// A fully connected network of `n` nodes.
    pub fn new(
        n: usize,
        seed: u64,
        base: LinkParams,
        burst: Option<Burst>,
        stream: StreamParams,
    ) -> Self {
        Network {
            rng: NodeRng::new(seed),
            default_link: base.clone(),
            link_faults: Vec::new(),
            base,
            default_burst: burst,
            base_burst: burst.map(|b| (Chains::Scenario, b)),
            any_burst: burst.is_some(),
            chains: Vec::new(),
            rules: Vec::new(),
            link_rules: Vec::new(),
            partitions: Vec::new(),
            component: vec![0; n],
            cuts: Vec::new(),
            split: false,
            stream,
            uplink: None,
            uplink_free: vec![Instant::ZERO; n],
        }
    }

    /// Limits every node's uplink to `bytes_per_sec`, queueing up to `max_backlog` of
    /// traffic (rate limiting, as str0m-netem does per link; here per sender).
    pub fn set_uplink(&mut self, bytes_per_sec: u64, max_backlog: Duration) {
        self.uplink = (bytes_per_sec > 0).then_some((bytes_per_sec, max_backlog));
    }

    /// When the last byte of `len` bytes sent by `a` at `now` leaves its uplink, or `None`
    /// if the backlog is full (`queue_always`: streams are never dropped, only late).
    fn serialize(
        &mut self,
        now: Instant,
        a: u32,
        len: usize,
        queue_always: bool,
    ) -> Option<Instant> {
        let Some((rate, max_backlog)) = self.uplink else {
            return Some(now);
        };
        let free = &mut self.uplink_free[a as usize];
        let start = (*free).max(now);
        if !queue_always && start - now > max_backlog {
            return None;
        }
        let nanos = (len as u128 * 1_000_000_000 / u128::from(rate)) as u64;
        *free = start + Duration::from_nanos(nanos);
        Some(*free)
    }

    /// Adds a per-link override for links from `from` to `to` (first match wins).
    pub fn add_rule(&mut self, from: NodeBits, to: NodeBits, o: LinkOverride) {
        self.rules.push((from, to, o));
        self.recompute_link();
    }

    /// Starts partition `id`: each group becomes its own component; nodes in no group form
    /// one more component. With several partitions in force, two nodes can talk only if
    /// every one of them puts the two in the same component.
    pub fn partition(&mut self, id: FaultId, groups: &[Vec<u32>]) {
        let mut of = vec![0u32; self.component.len()];
        for (g, nodes) in groups.iter().enumerate() {
            for &i in nodes {
                if let Some(c) = of.get_mut(i as usize) {
                    *c = g as u32 + 1;
                }
            }
        }
        self.partitions.push((id, of));
        self.recompute_split();
    }

    /// Starts cut `id`: nothing from `from` reaches `to`; the other way still works.
    pub fn cut(&mut self, id: FaultId, from: NodeBits, to: NodeBits) {
        self.cuts.push((id, from, to));
        self.recompute_split();
    }

    /// Ends partition or cut `id`, leaving the others in force. False if it was not in
    /// force (it ended already, or a heal removed it).
    pub fn end_split(&mut self, id: FaultId) -> bool {
        let before = self.partitions.len() + self.cuts.len();
        self.partitions.retain(|(f, _)| *f != id);
        self.cuts.retain(|(f, _, _)| *f != id);
        let ended = self.partitions.len() + self.cuts.len() != before;
        if ended {
            self.recompute_split();
        }
        ended
    }

    /// Removes every partition and cut.
    pub fn heal(&mut self) {
        self.partitions.clear();
        self.cuts.clear();
        self.recompute_split();
    }

    /// Components from the partitions in force (the combination of their groups), and
    /// the `split` flag.
    fn recompute_split(&mut self) {
        self.component.fill(0);
        for (_, of) in &self.partitions {
            // Refine: a new component for each (component so far, group here) pair.
            let mut ids: std::collections::BTreeMap<(u32, u32), u32> = Default::default();
            for (c, &g) in self.component.iter_mut().zip(of) {
                let next = ids.len() as u32;
                *c = *ids.entry((*c, g)).or_insert(next);
            }
        }
        let first = self.component.first().copied().unwrap_or(0);
        self.split = self.component.iter().any(|&c| c != first)
            || self
                .cuts
                .iter()
                .any(|(_, f, t)| !f.is_empty() && !t.is_empty());
    }

    /// Whether any partition or cut separates some nodes now. O(1).
    pub fn is_split(&self) -> bool {
        self.split
    }

    /// The default link now.
    pub fn base(&self) -> &LinkParams {
        &self.base
    }

    /// Starts `network` action `id`: its settings override the default link (and any
    /// earlier action's) until it ends.
    pub fn change_link(&mut self, id: FaultId, o: LinkOverride) {
        self.link_faults.push((id, o));
        self.recompute_link();
    }

    /// Starts `link` action `id`: the settings it names apply to the links from `from`
    /// to `to` (one way) until it ends, over the scenario's rules and earlier actions.
    pub fn change_links(&mut self, id: FaultId, from: NodeBits, to: NodeBits, o: LinkOverride) {
        self.link_rules.push((id, from, to, o));
        self.recompute_link();
    }

    /// Ends `network` or `link` action `id`: the links are recomputed from the
    /// scenario's and the actions still in force. False if it was not in force.
    pub fn end_link_change(&mut self, id: FaultId) -> bool {
        let before = self.link_faults.len() + self.link_rules.len();
        self.link_faults.retain(|(f, _)| *f != id);
        self.link_rules.retain(|(f, ..)| *f != id);
        let ended = self.link_faults.len() + self.link_rules.len() != before;
        if ended {
            self.chains.retain(|(c, _)| *c != Chains::Action(id));
            self.recompute_link();
        }
        ended
    }

    fn recompute_link(&mut self) {
        self.base = self
            .link_faults
            .iter()
            .fold(self.default_link.clone(), |l, (_, o)| o.apply(&l));
        self.base_burst = self
            .link_faults
            .iter()
            .rev()
            .find_map(|(id, o)| o.burst.map(|b| (Chains::Action(*id), b)))
            .or(self.default_burst.map(|b| (Chains::Scenario, b)));
        self.any_burst = self.base_burst.is_some()
            || self.rules.iter().any(|(_, _, o)| o.burst.is_some())
            || self.link_rules.iter().any(|(.., o)| o.burst.is_some());
    }

    /// The burst on the link from `a` to `b`, with the chains it advances, by the same
    /// precedence as the other settings: the latest `link` action that sets one, else
    /// the first rule that matches if it sets one, else the default link's.
    fn burst(&self, a: u32, b: u32) -> Option<(Chains, Burst)> {
        let matches = |f: &NodeBits, t: &NodeBits| f.contains(a) && t.contains(b);
        if let Some(found) = self
            .link_rules
            .iter()
            .rev()
            .filter(|(_, f, t, _)| matches(f, t))
            .find_map(|(id, .., o)| o.burst.map(|b| (Chains::Action(*id), b)))
        {
            return Some(found);
        }
        match self.rules.iter().position(|(f, t, _)| matches(f, t)) {
            Some(k) => match self.rules[k].2.burst {
                Some(b) => Some((Chains::Rule(k), b)),
                None => self.base_burst,
            },
            None => self.base_burst,
        }
    }

    /// Advances receiver `b`'s chain of `chains` by one datagram; true if it is now in
    /// the bad state.
    fn advance(&mut self, chains: Chains, burst: &Burst, b: u32) -> bool {
        let k = match self.chains.iter().position(|(c, _)| *c == chains) {
            Some(k) => k,
            None => {
                let n = self.component.len();
                self.chains.push((chains, NodeBits::from_nodes(n, &[])));
                self.chains.len() - 1
            }
        };
        let states = &mut self.chains[k].1;
        let bad = if states.contains(b) {
            !self.rng.chance(burst.p_exit)
        } else {
            self.rng.chance(burst.p_enter)
        };
        if bad {
            states.insert(b);
        } else {
            states.remove(b);
        }
        bad
    }

    /// Whether `a` can reach `b` now.
    #[inline]
    pub fn reachable(&self, a: u32, b: u32) -> bool {
        self.component[a as usize] == self.component[b as usize]
            && !self
                .cuts
                .iter()
                .any(|(_, f, t)| f.contains(a) && t.contains(b))
    }

    /// Whether some link differs from the default link (then each packet looks up its
    /// own).
    fn per_link(&self) -> bool {
        !self.rules.is_empty() || !self.link_rules.is_empty()
    }

    fn params(&self, a: u32, b: u32) -> LinkParams {
        let base = match self
            .rules
            .iter()
            .find(|(f, t, _)| f.contains(a) && t.contains(b))
        {
            Some((_, _, o)) => o.apply(&self.base),
            None => self.base.clone(),
        };
        self.link_rules
            .iter()
            .filter(|(_, f, t, _)| f.contains(a) && t.contains(b))
            .fold(base, |l, (_, _, _, o)| o.apply(&l))
    }

    /// One-way delay of a packet from `a` to `b` (latency plus jitter).
    pub fn delay(&mut self, a: u32, b: u32) -> Duration {
        let p = self.params(a, b);
        p.latency + self.rng.duration_below(p.jitter)
    }

    /// What happens to a datagram of `len` bytes from `a` to `b` sent at `now`.
    pub fn datagram(&mut self, now: Instant, a: u32, b: u32, len: usize) -> Fate {
        // The datagram leaves the sender's uplink first, whatever happens to it after.
        let Some(sent) = self.serialize(now, a, len, false) else {
            return Fate::UplinkFull;
        };
        if !self.reachable(a, b) {
            return Fate::Cut;
        }
        let p = self.per_link().then(|| self.params(a, b));
        let p = p.as_ref().unwrap_or(&self.base);
        let (latency, jitter, loss, duplicate, reorder, reorder_delay) = (
            p.latency,
            p.jitter,
            p.loss,
            p.duplicate,
            p.reorder,
            p.reorder_delay,
        );
        let mut lost = self.rng.chance(loss);
        let burst = if !self.any_burst {
            None
        } else if self.per_link() {
            self.burst(a, b)
        } else {
            self.base_burst
        };
        if let Some((chains, burst)) = burst {
            let p = if self.advance(chains, &burst, b) {
                burst.loss_bad
            } else {
                burst.loss_good
            };
            lost |= self.rng.chance(p);
        }
        if lost {
            return Fate::Lost;
        }
        let mut at = sent + latency + self.rng.duration_below(jitter);
        if self.rng.chance(reorder) {
            at += reorder_delay;
        }
        let dup = self.rng.chance(duplicate).then(|| {
            at + self
                .rng
                .duration_below(jitter.max(Duration::from_micros(10)))
        });
        Fate::Delivered(at, dup)
    }

    /// Delay of a stream frame of `len` bytes from `a` to `b` sent at `now`: the uplink
    /// queue, the link delay, and one retransmission timeout for every loss the frame's
    /// segments suffer (TCP never loses, it is late).
    pub fn frame_delay(&mut self, now: Instant, a: u32, b: u32, len: usize) -> Duration {
        let sent = self.serialize(now, a, len, true).unwrap_or(now);
        let p = if self.per_link() {
            self.params(a, b)
        } else {
            self.base.clone()
        };
        let mut d = (sent - now) + p.latency + self.rng.duration_below(p.jitter);
        let mut tries = 0;
        while tries < 6 && self.rng.chance(p.loss) {
            d += self.stream.retransmit_timeout * (1 << tries);
            tries += 1;
        }
        d
    }

    /// A uniformly random duration in `[lo, hi]`, from the network's RNG.
    pub fn uniform(&mut self, lo: Duration, hi: Duration) -> Duration {
        if hi <= lo {
            return lo;
        }
        lo + self.rng.duration_below(hi - lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_uplink_queues_then_drops() {
        let base = LinkParams {
            jitter: Duration::ZERO,
            ..LinkParams::default()
        };
        let mut net = Network::new(2, 1, base, None, StreamParams::default());
        // 1,000 bytes per second, at most 2 s of backlog.
        net.set_uplink(1000, Duration::from_secs(2));
        let t0 = Instant::ZERO;
        let mut fates = Vec::new();
        for _ in 0..4 {
            fates.push(net.datagram(t0, 0, 1, 1000));
        }
        let ms = |v| t0 + Duration::from_millis(v);
        assert_eq!(fates[0], Fate::Delivered(ms(1002), None));
        assert_eq!(fates[1], Fate::Delivered(ms(2002), None));
        assert_eq!(fates[2], Fate::Delivered(ms(3002), None));
        assert_eq!(
            fates[3],
            Fate::UplinkFull,
            "3 s of backlog is over the limit"
        );
        // Streams queue behind, never dropped.
        assert_eq!(net.frame_delay(t0, 0, 1, 500), Duration::from_millis(3502));
    }

    #[test]
    fn partitions_and_one_way_cuts() {
        let mut net = Network::new(4, 1, LinkParams::default(), None, StreamParams::default());
        assert!(net.reachable(0, 3));
        net.partition(1, &[vec![0, 1], vec![2, 3]]);
        assert!(net.reachable(0, 1));
        assert!(!net.reachable(0, 2));
        assert!(!net.reachable(3, 1));
        net.heal();
        net.cut(
            2,
            NodeBits::from_nodes(4, &[0]),
            NodeBits::from_nodes(4, &[1]),
        );
        assert!(!net.reachable(0, 1));
        assert!(net.reachable(1, 0));
        net.heal();
        assert!(!net.is_split());
    }

    #[test]
    fn ending_one_fault_leaves_the_others_in_force() {
        let mut net = Network::new(4, 1, LinkParams::default(), None, StreamParams::default());
        // Two overlapping partitions: only nodes in one component of both can talk.
        net.partition(1, &[vec![0, 1], vec![2, 3]]);
        net.partition(2, &[vec![0, 2]]);
        assert!(!net.reachable(0, 1) && !net.reachable(0, 2) && !net.reachable(0, 3));
        assert!(!net.reachable(1, 3) && net.reachable(2, 2));
        net.cut(
            3,
            NodeBits::from_nodes(4, &[2]),
            NodeBits::from_nodes(4, &[3]),
        );
        // The short cut ends: the partitions stay.
        assert!(net.end_split(3));
        assert!(!net.reachable(0, 2) && net.is_split());
        // The second partition ends: the first is whole again.
        assert!(net.end_split(2));
        assert!(net.reachable(0, 1) && net.reachable(2, 3) && !net.reachable(1, 2));
        assert!(!net.end_split(2), "ended twice");
        assert!(net.end_split(1));
        assert!(!net.is_split() && net.reachable(0, 3));
        // A partition that separates nobody is no split.
        net.partition(4, &[vec![0, 1, 2, 3]]);
        assert!(!net.is_split());
    }

    #[test]
    fn link_changes_stack_and_end_independently() {
        let mut net = Network::new(2, 1, LinkParams::default(), None, StreamParams::default());
        let loss = |l| LinkOverride {
            loss: Some(l),
            ..LinkOverride::default()
        };
        let latency = LinkOverride {
            latency: Some(Duration::from_millis(50)),
            ..LinkOverride::default()
        };
        net.change_link(1, loss(0.3));
        net.change_link(2, latency.clone());
        assert_eq!(net.base().loss, 0.3);
        assert_eq!(net.base().latency, Duration::from_millis(50));
        // The first ends: its loss goes, the second's latency stays.
        assert!(net.end_link_change(1));
        assert_eq!(net.base().loss, 0.0);
        assert_eq!(net.base().latency, Duration::from_millis(50));
        assert!(net.end_link_change(2));
        assert_eq!(*net.base(), LinkParams::default());
        // A later change wins while both are in force, and the earlier comes back after.
        net.change_link(3, loss(0.1));
        net.change_link(4, loss(0.5));
        assert_eq!(net.base().loss, 0.5);
        net.end_link_change(4);
        assert_eq!(net.base().loss, 0.1);
    }

    #[test]
    fn a_link_change_applies_one_way_over_the_rules_and_ends_by_itself() {
        let mut net = Network::new(3, 1, LinkParams::default(), None, StreamParams::default());
        let bits = |v: &[u32]| NodeBits::from_nodes(3, v);
        let set = |latency: Option<u64>, loss: Option<f64>| LinkOverride {
            latency: latency.map(Duration::from_millis),
            loss,
            ..LinkOverride::default()
        };
        net.add_rule(bits(&[0]), bits(&[1]), set(Some(40), None));
        net.change_links(7, bits(&[0]), bits(&[1, 2]), set(None, Some(1.0)));
        // One way: 0 -> 1 loses everything and keeps the rule's latency; 1 -> 0 is whole.
        assert_eq!(net.params(0, 1).loss, 1.0);
        assert_eq!(net.params(0, 1).latency, Duration::from_millis(40));
        assert_eq!(net.params(1, 0), LinkParams::default());
        assert_eq!(net.datagram(Instant::ZERO, 0, 2, 100), Fate::Lost);
        // A later action wins where both apply; ending it leaves the first in force.
        net.change_links(8, bits(&[0]), bits(&[2]), set(None, Some(0.0)));
        assert_eq!(net.params(0, 2).loss, 0.0);
        assert!(net.end_link_change(8));
        assert_eq!(net.params(0, 2).loss, 1.0);
        assert!(net.end_link_change(7));
        assert!(!net.end_link_change(7), "ended twice");
        assert_eq!(net.params(0, 2), LinkParams::default());
    }

    /// A burst that is always bad and loses everything there.
    fn blackout() -> Burst {
        Burst {
            p_enter: 1.0,
            p_exit: 0.0,
            loss_bad: 1.0,
            loss_good: 0.0,
        }
    }

    #[test]
    fn a_timed_burst_applies_one_way_while_in_force_and_ends_by_itself() {
        let mut net = Network::new(3, 1, LinkParams::default(), None, StreamParams::default());
        let bits = |v: &[u32]| NodeBits::from_nodes(3, v);
        let burst = |b: Burst| LinkOverride {
            burst: Some(b),
            ..LinkOverride::default()
        };
        let lost = |net: &mut Network, a, b| net.datagram(Instant::ZERO, a, b, 100) == Fate::Lost;
        net.change_links(4, bits(&[0]), bits(&[1]), burst(blackout()));
        assert!(lost(&mut net, 0, 1));
        assert!(
            !lost(&mut net, 1, 0) && !lost(&mut net, 0, 2),
            "one way, those links only"
        );
        assert!(net.end_link_change(4));
        assert!(!lost(&mut net, 0, 1));
        assert!(net.chains.is_empty(), "its chains go with it");
        // On the default link: every link, until a later `link` turns it off on one.
        net.change_link(5, burst(blackout()));
        assert!(lost(&mut net, 2, 0) && lost(&mut net, 0, 1));
        let off = Burst {
            p_enter: 0.0,
            ..blackout()
        };
        net.change_links(6, bits(&[0]), bits(&[1]), burst(off));
        assert!(!lost(&mut net, 0, 1) && lost(&mut net, 1, 0));
        assert!(net.end_link_change(6));
        assert!(lost(&mut net, 0, 1));
        assert!(net.end_link_change(5));
        assert!(!lost(&mut net, 0, 1) && !lost(&mut net, 2, 0));
    }

    #[test]
    fn a_timed_burst_replaces_the_scenarios_with_chains_of_its_own() {
        // The scenario's burst: every receiver ends up bad at once and stays there.
        let mut net = Network::new(
            2,
            1,
            LinkParams::default(),
            Some(blackout()),
            StreamParams::default(),
        );
        assert_eq!(net.datagram(Instant::ZERO, 0, 1, 100), Fate::Lost);
        // A `network` burst that never enters the bad state starts from the good state
        // (its own chain), so nothing is lost while it is in force...
        let calm = LinkOverride {
            burst: Some(Burst {
                p_enter: 0.0,
                ..blackout()
            }),
            ..LinkOverride::default()
        };
        net.change_link(1, calm);
        assert!((0..100).all(|_| net.datagram(Instant::ZERO, 0, 1, 100) != Fate::Lost));
        // ...and the scenario's comes back as it was when it ends.
        assert!(net.end_link_change(1));
        assert_eq!(net.datagram(Instant::ZERO, 0, 1, 100), Fate::Lost);
    }

    #[test]
    fn a_rule_can_set_a_burst_of_its_own() {
        let mut net = Network::new(3, 1, LinkParams::default(), None, StreamParams::default());
        net.add_rule(
            NodeBits::from_nodes(3, &[0, 1, 2]),
            NodeBits::from_nodes(3, &[2]),
            LinkOverride {
                burst: Some(blackout()),
                ..LinkOverride::default()
            },
        );
        assert_eq!(net.datagram(Instant::ZERO, 0, 2, 100), Fate::Lost);
        assert_ne!(net.datagram(Instant::ZERO, 2, 0, 100), Fate::Lost);
    }

    #[test]
    fn loss_rate_is_close_to_configured() {
        let base = LinkParams {
            loss: 0.3,
            ..LinkParams::default()
        };
        let mut net = Network::new(2, 9, base, None, StreamParams::default());
        let lost = (0..20_000)
            .filter(|_| net.datagram(Instant::ZERO, 0, 1, 100) == Fate::Lost)
            .count();
        let rate = lost as f64 / 20_000.0;
        assert!((rate - 0.3).abs() < 0.02, "{rate}");
    }

    #[test]
    fn bursts_cluster_losses() {
        let burst = Burst {
            p_enter: 0.02,
            p_exit: 0.2,
            loss_bad: 1.0,
            loss_good: 0.0,
        };
        let mut net = Network::new(
            2,
            3,
            LinkParams::default(),
            Some(burst),
            StreamParams::default(),
        );
        let fates: Vec<bool> = (0..50_000)
            .map(|_| net.datagram(Instant::ZERO, 0, 1, 100) == Fate::Lost)
            .collect();
        let losses = fates.iter().filter(|&&l| l).count() as f64;
        // Stationary share of the bad state: p_enter / (p_enter + p_exit) = 1/11.
        assert!((losses / 50_000.0 - 1.0 / 11.0).abs() < 0.02);
        // Losses come in runs: P(loss | previous lost) is far above the average rate.
        let after_loss = fates.windows(2).filter(|w| w[0] && w[1]).count() as f64;
        assert!(after_loss / losses > 0.7);
    }
}
