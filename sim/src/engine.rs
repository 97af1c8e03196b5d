//! The engine: one event queue in virtual time, the hosts, and the step loop.
//!
//! Everything that will happen is an entry in one binary heap ordered by
//! `(time, sequence number)`: deliveries, node deadlines, scenario actions, samples.
//! Ties run in insertion order, so a run is a pure function of the scenario and the seed.
//!
//! Node deadlines use lazy invalidation: a node has at most one live timer entry (its
//! `armed` instant); a later deadline leaves the earlier entry in place, which re-arms
//! when it fires early; stale entries from an older life are ignored. Nothing ever scans
//! all nodes per event.

use crate::invariants::{Views, convergence_deadline};
use crate::measure::Recorder;
use crate::network::{Fate, FaultId, Network, NodeBits};
use crate::node::{NodeSpec, SimNode, SimOutput};
use crate::report::{Report, Violation};
use crate::scenario::Scenario;
use crate::trace::TraceHash;
use core::cmp::Ordering;
use core::net::{Ipv4Addr, SocketAddr};
use core::time::Duration;
use serf_proto::{Instant, NodeRng};
use std::collections::{BTreeMap, BinaryHeap};

/// The port every simulated node listens on.
pub const PORT: u16 = 7946;

/// The address of node `i`: `10.0.0.1` for node 0, counting up (16 million nodes fit).
pub fn addr_of(i: u32) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(0x0a00_0001u32 + i), PORT))
}

/// The node at `addr`, if it is a simulated address.
pub fn index_of(addr: SocketAddr, n: usize) -> Option<u32> {
    match addr {
        SocketAddr::V4(a) if a.port() == PORT => {
            let i = u32::from(*a.ip()).checked_sub(0x0a00_0001)?;
            ((i as usize) < n).then_some(i)
        }
        _ => None,
    }
}

/// The name of node `i`.
pub fn name_of(i: u32) -> String {
    format!("node-{i}")
}

/// The node named `name` (`node-<i>`).
pub fn index_of_name(name: &str, n: usize) -> Option<u32> {
    let i: u32 = name.strip_prefix("node-")?.parse().ok()?;
    ((i as usize) < n).then_some(i)
}

/// SplitMix64: derives independent seeds from the run seed.
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const NETWORK_STREAM: u64 = 1;
const SCENARIO_STREAM: u64 = 2;
const NODE_STREAM: u64 = 1 << 32;

/// A host's lifecycle in the ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not started yet.
    NotStarted,
    /// Running and a member.
    Up,
    /// Leaving gracefully: still running, no longer a member in the truth.
    Leaving,
    /// Crashed or stopped.
    Down,
}

/// Traffic a node sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Traffic {
    /// Datagrams sent.
    pub datagrams: u64,
    /// Bytes of datagrams sent.
    pub bytes: u64,
    /// Stream frames sent.
    pub frames: u64,
    /// Bytes of stream frames sent.
    pub frame_bytes: u64,
}

/// One simulated machine.
#[derive(Debug)]
pub(crate) struct Host {
    pub status: Status,
    pub life: u32,
    pub deadline: Instant,
    pub armed: Option<Instant>,
    pub timer_deferred: bool,
    pub slow: Option<(Duration, Duration)>,
    pub paused_until: Option<Instant>,
    /// Per lane (timers, datagrams, streams): when the last deferred input runs.
    pub inbox_tail: [Instant; 3],
    /// Per lane: deferred inputs not yet run.
    pub inbox_len: [u32; 3],
    pub up_since: Instant,
    pub up_time: Duration,
    /// The node's own incarnation after its last step (this life).
    pub last_incarnation: u32,
    /// The highest incarnation any earlier life reached: a failure report about the
    /// node at or below it may be about an earlier life.
    pub prev_incarnation: u32,
    pub last_suspicions: u64,
    /// Was slow or paused at some point of this life: its false positives count as
    /// "slow".
    pub ever_impaired: bool,
    pub traffic: Traffic,
}

impl Host {
    pub fn running(&self) -> bool {
        matches!(self.status, Status::Up | Status::Leaving)
    }

    pub fn impaired(&self, now: Instant) -> bool {
        self.slow.is_some() || self.paused_until.is_some_and(|t| t > now)
    }
}

#[derive(Debug)]
pub(crate) enum Ev {
    Timer { node: u32, life: u32, at: Instant },
    Datagram { to: u32, from: u32, data: Vec<u8> },
    ConnArrive { conn: u64 },
    Frame { conn: u64, side: u8, data: Vec<u8> },
    StreamClosed { conn: u64, side: u8 },
    StreamFailed { conn: u64, side: u8 },
    Deferred { node: u32, life: u32, ev: Box<Ev> },
    Op(usize),
    Sample,
    ConvergenceCheck { epoch: u64 },
}

/// The lane of a deferred input: 0 timers, 1 datagrams, 2 streams.
pub(crate) fn lane(ev: &Ev) -> usize {
    match ev {
        Ev::Timer { .. } => 0,
        Ev::Datagram { .. } => 1,
        _ => 2,
    }
}

#[derive(Debug)]
pub(crate) struct Item {
    pub at: Instant,
    pub seq: u64,
    pub ev: Ev,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// Progress of a long run, reported once per sample.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Simulated time now.
    pub now: Instant,
    /// Simulated time at the end.
    pub end: Instant,
    /// Queue entries processed so far.
    pub steps: u64,
    /// Nodes up.
    pub up: u32,
    /// Members on which views disagree with the truth.
    pub disagreeing: usize,
}

/// Counters of what the network did.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetCounters {
    /// Datagrams delivered to a running node.
    pub delivered: u64,
    /// Datagrams lost to random or bursty loss.
    pub lost: u64,
    /// Datagrams dropped by a partition.
    pub cut: u64,
    /// Datagrams that arrived at a stopped node.
    pub to_down: u64,
    /// Datagrams duplicated.
    pub duplicated: u64,
    /// Datagrams dropped because a slow node's inbox was full.
    pub inbox_full: u64,
    /// Datagrams dropped because the sender's uplink queue was full.
    pub uplink_full: u64,
    /// Datagrams to addresses that are no node.
    pub unroutable: u64,
    /// Streams opened.
    pub streams_opened: u64,
    /// Streams that failed (refused, unreachable, cut by a partition, or whose peer
    /// stopped), each once.
    pub streams_failed: u64,
}

/// A simulation of `N` nodes running one scenario with one seed.
pub struct Simulation<N: SimNode> {
    pub(crate) nodes: Vec<Option<N>>,
    pub(crate) hosts: Vec<Host>,
    pub(crate) specs: Vec<NodeSpec<N::Config>>,
    /// Each node's current address to the node (a node restarted with `new_address`
    /// leaves its old one unroutable).
    addresses: BTreeMap<SocketAddr, u32>,
    /// Addresses handed out past the initial `10.0.0.1 + i`.
    moved: u32,
    pub(crate) snapshots: Vec<Option<N::Snapshot>>,
    pub(crate) scenario: Scenario,
    pub(crate) seed: u64,
    pub(crate) ml_config: serf_proto::memberlist::Config,
    pub(crate) now: Instant,
    pub(crate) end: Instant,
    pub(crate) queue: BinaryHeap<Item>,
    seq: u64,
    pub(crate) steps: u64,
    pub(crate) net: Network,
    pub(crate) rng: NodeRng,
    pub(crate) trace: TraceHash,
    pub(crate) views: Views,
    pub(crate) rec: Recorder,
    pub(crate) violations: Vec<Violation>,
    pub(crate) net_counters: NetCounters,
    pub(crate) groups: BTreeMap<String, Vec<u32>>,
    pub(crate) labels: BTreeMap<String, Vec<u32>>,
    pub(crate) ops: Vec<crate::ops::Op>,
    /// The action whose operations are being planned or fired (`None`: the bootstrap).
    pub(crate) firing_action: Option<usize>,
    /// What the scenario asked for that could not happen at run time.
    pub(crate) warnings: Vec<String>,
    /// Per node, its state changes in order (started, crashed, paused, leaving, left,
    /// key operations...), for the JSON report: a failure can be read, not inferred.
    pub(crate) timeline: Vec<Vec<(Instant, String)>>,
    pub(crate) streams: crate::streams::Streams,
    /// Slow faults in force: their id, the nodes still slow by them, the delay range.
    pub(crate) slow_faults: Vec<(FaultId, Vec<u32>, (Duration, Duration))>,
    /// Timed `network` and `link` actions in force (with `for`): faults until they end, unlike an
    /// untimed change, which is the network from then on.
    pub(crate) timed_link_faults: Vec<FaultId>,
    /// When the network was last split, once it no longer is (`None` while split or if
    /// it never was).
    pub(crate) split_ended: Option<Instant>,
    /// How long after a split ends failure reports are still put down to it: the
    /// longest suspicion timeout plus a probe interval.
    pub(crate) split_aftermath: Duration,
    /// When failure reports were put down to partitions: (start, end or `None` while a
    /// split is in force, splits merged into it). A split that starts before the
    /// previous one's aftermath ended joins its span.
    pub(crate) uncounted: Vec<(Instant, Option<Instant>, u32)>,
    pub(crate) epoch: u64,
    pub(crate) last_disturbance: Instant,
    /// The convergence invariant's fate for the last quiet period.
    pub(crate) convergence_check: crate::observe::ConvergenceCheck,
    pub(crate) deadline: Duration,
    pub(crate) next_broadcast_id: u64,
    pub(crate) plotted: Vec<u32>,
    pub(crate) pending_shutdown: Vec<u32>,
    buf: Vec<u8>,
    pub(crate) agreed: bool,
}

impl<N: SimNode> core::fmt::Debug for Simulation<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Simulation")
            .field("kind", &N::KIND)
            .field("scenario", &self.scenario.name)
            .field("seed", &self.seed)
            .field("now", &self.now)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl<N: SimNode> Simulation<N> {
    /// Prepares a run of `scenario` with `seed`. Nothing runs until [`Simulation::run`].
    pub fn new(scenario: &Scenario, seed: u64) -> Result<Self, String> {
        scenario.validate()?;
        if !N::QUERIES_END
            && let Some(i) = scenario.expect.iter().position(|e| e.ended_early.is_some())
        {
            return Err(format!(
                "expectation {i}: `ended_early` needs the Serf layer (`layer = \"serf\"` or \
                 --layer serf), where a query can end before its timeout; the {} layer's \
                 queries have no end",
                N::KIND
            ));
        }
        if !N::KEY_OPS
            && let Some(i) = scenario.actions.iter().position(|a| a.key.is_some())
        {
            return Err(format!(
                "action {i} ({:?}): keyring operations need the Serf layer (`layer = \"serf\"` \
                 or --layer serf), which runs them across the cluster as queries",
                scenario.actions[i].kind
            ));
        }
        let n = scenario.nodes;
        let ml_config = scenario.config.build(scenario.profile);
        let config = N::configure(ml_config.clone(), &scenario.serf)?;
        let specs = (0..n as u32)
            .map(|i| NodeSpec {
                name: name_of(i),
                addr: addr_of(i),
                seed: 0,
                config: config.clone(),
                event_size: scenario.measure.event_size,
            })
            .collect();
        let net_spec = &scenario.network;
        let mut net = Network::new(
            n,
            derive_seed(seed, NETWORK_STREAM),
            net_spec.link(),
            net_spec.burst,
            net_spec.stream.clone(),
        );
        if let Some(rate) = net_spec.bandwidth {
            net.set_uplink(rate, net_spec.uplink_queue);
        }
        let hosts = (0..n)
            .map(|_| Host {
                status: Status::NotStarted,
                life: 0,
                deadline: Instant::MAX,
                armed: None,
                timer_deferred: false,
                slow: None,
                paused_until: None,
                inbox_tail: [Instant::ZERO; 3],
                inbox_len: [0; 3],
                up_since: Instant::ZERO,
                up_time: Duration::ZERO,
                last_incarnation: 0,
                prev_incarnation: 0,
                last_suspicions: 0,
                ever_impaired: false,
                traffic: Traffic::default(),
            })
            .collect();
        let deadline = scenario
            .invariants
            .convergence_deadline
            .unwrap_or_else(|| convergence_deadline(&ml_config, n));
        let inv = &scenario.invariants;
        let mut views = Views::new(n, inv.views, N::forget_after(&config));
        views.check_resurrection = inv.resurrection;
        views.check_incarnations = inv.incarnations;
        let plotted = (0..n as u32)
            .step_by((n / scenario.measure.plot_views.max(1)).max(1))
            .take(scenario.measure.plot_views)
            .collect();
        let mut sim = Simulation {
            nodes: (0..n).map(|_| None).collect(),
            hosts,
            specs,
            addresses: (0..n as u32).map(|i| (addr_of(i), i)).collect(),
            moved: 0,
            snapshots: (0..n).map(|_| None).collect(),
            scenario: scenario.clone(),
            seed,
            now: Instant::ZERO,
            end: Instant::from_duration(scenario.duration),
            queue: BinaryHeap::new(),
            seq: 0,
            steps: 0,
            net,
            rng: NodeRng::new(derive_seed(seed, SCENARIO_STREAM)),
            trace: TraceHash::new(),
            views,
            rec: Recorder::default(),
            violations: Vec::new(),
            net_counters: NetCounters::default(),
            groups: BTreeMap::new(),
            labels: BTreeMap::new(),
            ops: Vec::new(),
            firing_action: None,
            warnings: Vec::new(),
            timeline: vec![Vec::new(); n],
            streams: Default::default(),
            slow_faults: Vec::new(),
            timed_link_faults: Vec::new(),
            split_ended: None,
            split_aftermath: crate::invariants::longest_suspicion(&ml_config, n)
                + ml_config.probe_interval,
            uncounted: Vec::new(),
            ml_config,
            epoch: 0,
            last_disturbance: Instant::ZERO,
            convergence_check: crate::observe::ConvergenceCheck::Off,
            deadline,
            next_broadcast_id: 1,
            plotted,
            pending_shutdown: Vec::new(),
            buf: Vec::with_capacity(2048),
            agreed: true,
        };
        sim.resolve_groups();
        if let Some(set) = scenario.serf.seeds.clone() {
            let seeds: Vec<SocketAddr> = sim
                .resolve(&set, |_| true)
                .into_iter()
                .map(addr_of)
                .collect();
            // The seeds' first addresses: a seed that moves is not followed (as a
            // configured address list would not be).
            for spec in &mut sim.specs {
                N::set_seeds(&mut spec.config, &seeds);
            }
        }
        for rule in scenario.network.links.clone() {
            let from = sim.resolve(&rule.from, |_| true);
            let to = sim.resolve(&rule.to, |_| true);
            sim.net.add_rule(
                NodeBits::from_nodes(n, &from),
                NodeBits::from_nodes(n, &to),
                rule.params(),
            );
        }
        sim.plan()?;
        // No node is up yet: the (empty) views agree with the truth.
        sim.rec.agreement_changed(Instant::ZERO, true);
        sim.push(Instant::ZERO, Ev::Sample);
        Ok(sim)
    }

    /// Resolves the groups once (`Scenario::validate` checked they name no group or
    /// label).
    fn resolve_groups(&mut self) {
        let groups = self.scenario.groups.clone();
        for (name, set) in &groups {
            let nodes = self.resolve(set, |_| true);
            self.groups.insert(name.clone(), nodes);
        }
    }

    /// The node whose current address is `addr`.
    pub(crate) fn host_at(&self, addr: SocketAddr) -> Option<u32> {
        self.addresses.get(&addr).copied()
    }

    /// Node `i`'s current address (it changes with a restart with `new_address`).
    pub fn address(&self, i: u32) -> SocketAddr {
        self.specs[i as usize].addr
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether the simulation has no nodes.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Simulated time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The node `i`, if running.
    pub fn node(&self, i: u32) -> Option<&N> {
        self.nodes.get(i as usize)?.as_ref()
    }

    /// Host `i`'s status in the ground truth.
    pub fn status(&self, i: u32) -> Status {
        self.hosts[i as usize].status
    }

    /// Queue entries processed so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The trace hash so far.
    pub fn trace_hash(&self) -> u64 {
        self.trace.value()
    }

    /// Whether every live view agrees with the truth now.
    pub fn agreed(&self) -> bool {
        self.views.agreed()
    }

    /// The convergence deadline in force.
    pub fn convergence_deadline(&self) -> Duration {
        self.deadline
    }

    /// What the network did so far (the report's `network` counters, at any instant:
    /// read between `run_until` calls, they show when losses happened).
    pub fn net_counters(&self) -> NetCounters {
        self.net_counters
    }

    /// Streams the network tracks now (open, closing or failing).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// The invariant violations so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Call after a partition, cut or heal: notes when the network stopped being split.
    pub(crate) fn split_changed(&mut self, was_split: bool) {
        let split = self.net.is_split();
        let now = self.now;
        if was_split && !split {
            self.split_ended = Some(now);
            if let Some(last) = self.uncounted.last_mut() {
                last.1 = Some(now + self.split_aftermath);
            }
        } else if split {
            self.split_ended = None;
            if !was_split {
                match self.uncounted.last_mut() {
                    // Healed for less than the aftermath: one span.
                    Some(last) if last.1.is_some_and(|end| end >= now) => {
                        last.1 = None;
                        last.2 += 1;
                    }
                    _ => self.uncounted.push((now, None, 1)),
                }
            }
        }
    }

    pub(crate) fn push(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.push(Item {
            at,
            seq: self.seq,
            ev,
        });
    }

    /// Runs to the end (or the first invariant violation) and reports.
    pub fn run(mut self, progress: &mut dyn FnMut(&Progress)) -> Report {
        self.run_until(self.end, progress);
        self.finish()
    }

    /// Runs every event at or before simulated time `until`, stopping early right after
    /// a step that broke an invariant. Returns false once a violation stopped the run.
    /// To inspect the nodes just before a violation, replay with the same seed up to
    /// [`Violation::instant`](crate::report::Violation::instant) minus one nanosecond.
    pub fn run_until(&mut self, until: Instant, progress: &mut dyn FnMut(&Progress)) -> bool {
        let until = until.min(self.end);
        while self.violations.is_empty() {
            match self.queue.peek() {
                Some(item) if item.at <= until => {}
                _ => break,
            }
            // Just peeked.
            let item = self.queue.pop().expect("queue entry");
            self.now = item.at;
            self.steps += 1;
            self.dispatch(item.ev, progress);
        }
        if self.violations.is_empty() {
            self.now = self.now.max(until);
        }
        self.violations.is_empty()
    }

    fn dispatch(&mut self, ev: Ev, progress: &mut dyn FnMut(&Progress)) {
        match ev {
            Ev::Timer { node, life, at } => self.on_timer(node, life, at),
            Ev::Datagram { to, .. } if self.should_defer(to, 1) => self.defer(to, ev),
            Ev::Datagram { to, from, data } => self.deliver_datagram(to, from, &data),
            Ev::Deferred { node, life, ev } => {
                let h = &mut self.hosts[node as usize];
                let lane = lane(&ev);
                // Only inputs of the current life are counted in its lanes.
                if h.life == life {
                    h.inbox_len[lane] = h.inbox_len[lane].saturating_sub(1);
                }
                if h.life == life && h.running() {
                    self.process_now(*ev);
                }
            }
            Ev::Op(i) => self.fire_op(i),
            Ev::Sample => {
                self.sample();
                let next = self.now + self.scenario.measure.sample_interval;
                if next <= self.end {
                    self.push(next, Ev::Sample);
                }
                progress(&Progress {
                    now: self.now,
                    end: self.end,
                    steps: self.steps,
                    up: self.views.up_count(),
                    disagreeing: self.views.disagreeing(),
                });
            }
            Ev::ConvergenceCheck { epoch } => self.check_convergence(epoch),
            other => {
                if let Some(node) = self.stream_target(&other)
                    && self.should_defer(node, 2)
                {
                    self.defer(node, other);
                } else {
                    self.on_stream_event(other);
                }
            }
        }
    }

    /// Runs an input that was deferred by a slow or paused node.
    fn process_now(&mut self, ev: Ev) {
        match ev {
            Ev::Timer { node, .. } => {
                self.hosts[node as usize].timer_deferred = false;
                let now = self.now;
                if let Some(n) = self.nodes[node as usize].as_mut() {
                    n.handle_timeout(now);
                }
                self.drain(node);
            }
            Ev::Datagram { to, from, data } => self.deliver_datagram(to, from, &data),
            other => self.on_stream_event(other),
        }
    }

    /// Whether an input on `lane` for `node` must wait: the node is slow or paused, or
    /// earlier inputs of the lane still wait (each lane stays in order).
    pub(crate) fn should_defer(&self, node: u32, lane: usize) -> bool {
        let h = &self.hosts[node as usize];
        h.inbox_len[lane] > 0 || h.impaired(self.now)
    }

    /// Queues an input for a slow or paused node: it runs at `now + delay`, with `delay`
    /// drawn for each input, after the earlier inputs of its lane, and not before a pause
    /// ends.
    ///
    /// A starved process runs its timers, its datagram reader and its stream handlers
    /// as separate activities (goroutines in Go memberlist), each late by its own
    /// amount: so inputs keep their order within a lane, but a timer can run before an
    /// ack that arrived earlier. That is how a slow node comes to suspect healthy
    /// members (Lifeguard §II).
    pub(crate) fn defer(&mut self, node: u32, ev: Ev) {
        let now = self.now;
        let lane = lane(&ev);
        let limit = self.scenario.network.inbox_limit as u32;
        let h = &self.hosts[node as usize];
        if matches!(ev, Ev::Datagram { .. }) && h.inbox_len[lane] >= limit {
            self.net_counters.inbox_full += 1;
            return;
        }
        let delay = match h.slow {
            Some((lo, hi)) => self.net.uniform(lo, hi),
            None => Duration::ZERO,
        };
        let h = &mut self.hosts[node as usize];
        let mut ready = (now + delay).max(h.inbox_tail[lane]);
        if let Some(p) = h.paused_until {
            ready = ready.max(p);
        }
        h.inbox_tail[lane] = ready;
        h.inbox_len[lane] += 1;
        let life = h.life;
        self.push(
            ready,
            Ev::Deferred {
                node,
                life,
                ev: Box::new(ev),
            },
        );
    }

    fn on_timer(&mut self, node: u32, life: u32, at: Instant) {
        let now = self.now;
        let h = &mut self.hosts[node as usize];
        if h.life != life || !h.running() || h.armed != Some(at) {
            return; // stale
        }
        h.armed = None;
        if h.deadline > now {
            let d = h.deadline;
            self.arm(node, d);
            return;
        }
        if self.should_defer(node, 0) {
            self.hosts[node as usize].timer_deferred = true;
            self.defer(node, Ev::Timer { node, life, at });
            return;
        }
        if let Some(n) = self.nodes[node as usize].as_mut() {
            n.handle_timeout(now);
        }
        self.drain(node);
    }

    pub(crate) fn arm(&mut self, node: u32, deadline: Instant) {
        let h = &mut self.hosts[node as usize];
        h.deadline = deadline;
        if deadline == Instant::MAX || h.timer_deferred || !h.running() {
            return;
        }
        if h.armed.is_none_or(|a| deadline < a) {
            let life = h.life;
            // A deadline in the past runs now (the core asked to be woken at once).
            let at = deadline.max(self.now);
            h.armed = Some(at);
            self.push(at, Ev::Timer { node, life, at });
        }
    }

    fn deliver_datagram(&mut self, to: u32, from: u32, data: &[u8]) {
        if !self.hosts[to as usize].running() {
            self.net_counters.to_down += 1;
            return;
        }
        self.net_counters.delivered += 1;
        self.trace.word(self.now.as_nanos());
        self.trace
            .word(1 | u64::from(from) << 8 | u64::from(to) << 36);
        self.trace.bytes(data);
        let now = self.now;
        if let Some(n) = self.nodes[to as usize].as_mut() {
            n.handle_datagram(now, self.specs[from as usize].addr, data);
        }
        self.drain(to);
    }

    fn send_datagram(&mut self, from: u32, to: SocketAddr, data: &[u8]) {
        let t = &mut self.hosts[from as usize].traffic;
        t.datagrams += 1;
        t.bytes += data.len() as u64;
        let Some(j) = self.host_at(to) else {
            self.net_counters.unroutable += 1;
            return;
        };
        match self.net.datagram(self.now, from, j, data.len()) {
            Fate::Cut => self.net_counters.cut += 1,
            Fate::UplinkFull => self.net_counters.uplink_full += 1,
            Fate::Lost => self.net_counters.lost += 1,
            Fate::Delivered(at, dup) => {
                if let Some(at2) = dup {
                    self.net_counters.duplicated += 1;
                    let ev = Ev::Datagram {
                        to: j,
                        from,
                        data: data.to_vec(),
                    };
                    self.push(at2, ev);
                }
                let ev = Ev::Datagram {
                    to: j,
                    from,
                    data: data.to_vec(),
                };
                self.push(at, ev);
            }
        }
    }

    /// Drains node `i` until it returns its deadline, turning outputs into deliveries,
    /// then runs the per-step invariants.
    pub(crate) fn drain(&mut self, i: u32) {
        let now = self.now;
        let mut buf = core::mem::take(&mut self.buf);
        while let Some(node) = self.nodes[i as usize].as_mut() {
            match node.poll(now, &mut buf) {
                SimOutput::Transmit { to } => self.send_datagram(i, to, &buf),
                SimOutput::OpenStream { id, to } => self.open_stream(i, id, to),
                SimOutput::SendFrame { id } => self.send_frame(i, id, &buf),
                SimOutput::CloseStream { id } => self.close_stream(i, id, false),
                SimOutput::AbortStream { id } => self.close_stream(i, id, true),
                SimOutput::Event(e) => self.on_event(i, e),
                SimOutput::Timeout(at) => {
                    self.arm(i, at);
                    break;
                }
            }
        }
        self.buf = buf;
        self.after_step(i);
        while let Some(j) = self.pending_shutdown.pop() {
            self.stop(j, false);
        }
    }

    /// Starts node `i` (a new life), fresh or from its snapshot.
    pub(crate) fn start(
        &mut self,
        i: u32,
        keep_state: bool,
        new_address: bool,
    ) -> Result<(), String> {
        let now = self.now;
        if self.hosts[i as usize].running() {
            return Ok(());
        }
        if new_address {
            // The next address past every node's first one; the old one goes nowhere.
            let addr = addr_of(self.hosts.len() as u32 + self.moved);
            self.moved += 1;
            self.addresses.remove(&self.specs[i as usize].addr);
            self.addresses.insert(addr, i);
            self.specs[i as usize].addr = addr;
            self.note(i, format!("moved to {addr}"));
        }
        let h = &mut self.hosts[i as usize];
        h.life += 1;
        let life = h.life;
        h.status = Status::Up;
        h.up_since = now;
        h.deadline = Instant::MAX;
        h.armed = None;
        h.timer_deferred = false;
        h.prev_incarnation = h.prev_incarnation.max(h.last_incarnation);
        h.last_incarnation = 0;
        h.last_suspicions = 0;
        // A new process: whatever starved the previous one is gone.
        h.ever_impaired = false;
        h.inbox_len = [0; 3];
        h.inbox_tail = [now; 3];
        self.specs[i as usize].seed = derive_seed(
            self.seed,
            NODE_STREAM + (u64::from(i) << 16) + u64::from(life),
        );
        let snapshot = if keep_state {
            self.snapshots[i as usize].take()
        } else {
            None
        };
        self.views.node_up(i);
        self.rec.restarted(i);
        let what = match (life, keep_state) {
            (1, _) => "started",
            (_, true) => "restarted from its saved state",
            (_, false) => "restarted fresh",
        };
        self.note(i, what);
        let node = N::start(&self.specs[i as usize], now, snapshot)?;
        self.nodes[i as usize] = Some(node);
        self.trace.word(now.as_nanos());
        self.trace
            .word(9 | u64::from(i) << 8 | u64::from(life) << 36);
        self.drain(i);
        self.note_agreement();
        Ok(())
    }

    /// Adds a state change of node `i` to its timeline.
    pub(crate) fn note(&mut self, i: u32, what: impl Into<String>) {
        let now = self.now;
        self.timeline[i as usize].push((now, what.into()));
    }

    /// The members node `i` holds, for when its view stops counting.
    fn held_by(&self, i: u32) -> Vec<u32> {
        let Some(node) = self.nodes[i as usize].as_ref() else {
            return Vec::new();
        };
        (0..self.hosts.len() as u32)
            .filter(|&s| {
                node.member(&self.specs[s as usize].name)
                    .is_some_and(|m| m.state.is_member())
            })
            .collect()
    }

    /// Node `i` stops being a member in the truth (it crashes or starts leaving).
    pub(crate) fn leave_truth(&mut self, i: u32) {
        let held = self.held_by(i);
        self.views.node_down(i, &held);
        for s in held {
            if self.hosts[s as usize].status != Status::Up {
                let remaining = self.views.alive_in(s);
                self.rec.views_dropped(s, self.now, remaining);
            }
        }
    }

    /// Stops node `i`: a crash (no leave) or the end of a graceful leave.
    pub(crate) fn stop(&mut self, i: u32, crash: bool) {
        let now = self.now;
        if !self.hosts[i as usize].running() {
            return;
        }
        if self.hosts[i as usize].status == Status::Up {
            self.leave_truth(i);
        }
        if crash {
            let held_by = self.views.alive_in(i);
            self.rec.crashed(i, now, held_by);
        }
        self.note(i, if crash { "crashed" } else { "stopped" });
        let snapshot = self.nodes[i as usize].as_mut().and_then(|n| n.shutdown());
        self.snapshots[i as usize] = snapshot;
        self.nodes[i as usize] = None;
        let h = &mut self.hosts[i as usize];
        h.up_time += now - h.up_since;
        h.status = Status::Down;
        h.armed = None;
        h.deadline = Instant::MAX;
        h.slow = None;
        h.paused_until = None;
        // Slowness dies with the process: a later start is a healthy process.
        for f in &mut self.slow_faults {
            f.1.retain(|&n| n != i);
        }
        self.trace.word(now.as_nanos());
        self.trace
            .word(10 | u64::from(i) << 8 | u64::from(crash) << 40);
        self.break_streams_of(i);
        self.note_agreement();
    }
}
