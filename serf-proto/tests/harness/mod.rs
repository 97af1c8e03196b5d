//! A small multi-node harness in virtual time: real `Memberlist` cores exchanging real
//! encoded bytes over a simulated network with latency, loss, crashes and partitions.
//! (The `sim` crate is the full simulator; this keeps serf-proto's own tests standalone.)

#![allow(dead_code)]

use serf_proto::memberlist::{Config, Event, Memberlist, NodeState};
use serf_proto::serf::{self, Serf};
use serf_proto::{Instant, NodeRng, Output, StreamEvent, StreamId};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Delivery {
    Datagram {
        to: usize,
        from: usize,
        data: Vec<u8>,
    },
    Open {
        to: usize,
        from: usize,
        id: StreamId,
    },
    Frame {
        from: usize,
        id: StreamId,
        data: Vec<u8>,
    },
    Closed {
        from: usize,
        id: StreamId,
        /// An abort: the peer's end fails instead of closing.
        failed: bool,
    },
}

/// What the harness needs from a state machine: the shared input/output contract.
pub trait Machine {
    type Event: std::fmt::Debug + Clone;
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]);
    fn accept_stream(&mut self, now: Instant, from: SocketAddr) -> Option<StreamId>;
    fn handle_stream(&mut self, now: Instant, id: StreamId, e: StreamEvent<'_>);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_output(&mut self, buf: &mut Vec<u8>) -> Output<Self::Event>;
    /// Snapshot records (the Serf layer only).
    fn poll_persist(&mut self) -> Option<serf::Record> {
        None
    }
}

macro_rules! machine {
    ($t:ty, $e:ty) => {
        machine!($t, $e, |_: &mut $t| None);
    };
    ($t:ty, $e:ty, $persist:expr) => {
        impl Machine for $t {
            type Event = $e;
            fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
                <$t>::handle_datagram(self, now, from, data)
            }
            fn accept_stream(&mut self, now: Instant, from: SocketAddr) -> Option<StreamId> {
                <$t>::accept_stream(self, now, from)
            }
            fn handle_stream(&mut self, now: Instant, id: StreamId, e: StreamEvent<'_>) {
                <$t>::handle_stream(self, now, id, e)
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$t>::handle_timeout(self, now)
            }
            fn poll_output(&mut self, buf: &mut Vec<u8>) -> Output<Self::Event> {
                <$t>::poll_output(self, buf)
            }
            fn poll_persist(&mut self) -> Option<serf::Record> {
                ($persist)(self)
            }
        }
    };
}
machine!(Memberlist, Event);
machine!(Serf, serf::Event, |n: &mut Serf| n.poll_persist());

/// One simulated host.
pub struct Host<N: Machine = Memberlist> {
    pub node: N,
    pub addr: SocketAddr,
    pub name: String,
    pub up: bool,
    /// Every event, with the time it was polled.
    pub events: Vec<(Instant, N::Event)>,
    /// Every snapshot record, in order.
    pub records: Vec<serf::Record>,
    deadline: Instant,
}

pub struct Cluster<N: Machine = Memberlist> {
    pub now: Instant,
    pub hosts: Vec<Host<N>>,
    queue: BinaryHeap<Reverse<(Instant, u64, Delivery)>>,
    seq: u64,
    rng: NodeRng,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// One-way latency.
    pub latency: Duration,
    /// Directed links that drop everything (partitions).
    pub cut: HashSet<(usize, usize)>,
    /// Directed links that drop datagrams but carry streams (UDP blocked, TCP open).
    pub udp_cut: HashSet<(usize, usize)>,
    /// (host, its stream id) -> (peer host, the peer's id); filled when an open arrives.
    links: HashMap<(usize, StreamId), (usize, StreamId)>,
    /// Packets delivered, for tests that count traffic.
    pub delivered: u64,
    /// Called for every event a node emits (e.g. to answer queries), before it is
    /// recorded.
    pub hook: Option<Hook<N>>,
}

/// An event hook: `(host index, its node, now, the event)`.
pub type Hook<N> = Box<dyn FnMut(usize, &mut N, Instant, &<N as Machine>::Event)>;

/// A cluster of memberlist nodes.
pub type MlCluster = Cluster<Memberlist>;
/// A cluster of Serf nodes.
pub type SerfCluster = Cluster<Serf>;

pub fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250 + 1) as u8], 7946))
}

impl<N: Machine> Cluster<N> {
    pub fn new(seed: u64) -> Self {
        Cluster {
            now: Instant::ZERO,
            hosts: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: NodeRng::new(seed),
            loss: 0.0,
            latency: Duration::from_millis(2),
            cut: HashSet::new(),
            udp_cut: HashSet::new(),
            links: HashMap::new(),
            delivered: 0,
            hook: None,
        }
    }

    /// Adds a host running `node` at `addr_of(index)`; returns its index.
    pub fn add_node(&mut self, name: &str, node: N) -> usize {
        let i = self.hosts.len();
        self.hosts.push(Host {
            node,
            addr: addr_of(i),
            name: name.to_string(),
            up: true,
            events: Vec::new(),
            records: Vec::new(),
            deadline: Instant::ZERO,
        });
        self.drain(i);
        i
    }

    /// Replaces host `i`'s node (a restart).
    pub fn replace_node(&mut self, i: usize, node: N) {
        let h = &mut self.hosts[i];
        h.node = node;
        h.up = true;
        h.events.clear();
        self.links
            .retain(|(host, _), (peer, _)| *host != i && *peer != i);
        self.drain(i);
    }

    /// A seed for a new node, from the cluster's RNG.
    pub fn next_seed(&mut self) -> u64 {
        self.rng.next_u64()
    }

    pub fn crash(&mut self, i: usize) {
        self.hosts[i].up = false;
    }

    /// Cuts both directions between the two groups.
    pub fn partition(&mut self, a: &[usize], b: &[usize]) {
        for &x in a {
            for &y in b {
                self.cut.insert((x, y));
                self.cut.insert((y, x));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
        self.udp_cut.clear();
    }

    /// Cuts both directions between two hosts.
    pub fn cut_pair(&mut self, a: usize, b: usize) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    fn host_at(&self, addr: SocketAddr) -> Option<usize> {
        self.hosts.iter().position(|h| h.addr == addr)
    }

    fn send(&mut self, at: Instant, d: Delivery) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, d)));
    }

    /// Drains host `i` until its deadline, turning outputs into deliveries.
    pub fn drain(&mut self, i: usize) {
        let mut buf = Vec::new();
        loop {
            let out = self.hosts[i].node.poll_output(&mut buf);
            let now = self.now;
            match out {
                Output::Transmit { to } => {
                    let Some(j) = self.host_at(to) else { continue };
                    if self.cut.contains(&(i, j))
                        || self.udp_cut.contains(&(i, j))
                        || self.rng.chance(self.loss)
                    {
                        continue;
                    }
                    let jitter = self.rng.duration_below(Duration::from_micros(500));
                    let at = now + self.latency + jitter;
                    self.send(
                        at,
                        Delivery::Datagram {
                            to: j,
                            from: i,
                            data: buf.clone(),
                        },
                    );
                }
                Output::OpenStream { id, to, .. } => {
                    let Some(j) = self.host_at(to) else { continue };
                    if self.cut.contains(&(i, j)) {
                        continue; // the connect times out; the core's deadline handles it
                    }
                    self.send(now + self.latency, Delivery::Open { to: j, from: i, id });
                }
                Output::SendFrame { id } => {
                    // Streams are ordered: fixed latency, FIFO by sequence number.
                    let d = Delivery::Frame {
                        from: i,
                        id,
                        data: buf.clone(),
                    };
                    self.send(now + self.latency, d);
                }
                Output::CloseStream { id } => {
                    let d = Delivery::Closed {
                        from: i,
                        id,
                        failed: false,
                    };
                    self.send(now + self.latency, d);
                }
                Output::AbortStream { id } => {
                    let d = Delivery::Closed {
                        from: i,
                        id,
                        failed: true,
                    };
                    self.send(now + self.latency, d);
                }
                Output::Event(e) => {
                    if let Some(mut hook) = self.hook.take() {
                        hook(i, &mut self.hosts[i].node, now, &e);
                        self.hook = Some(hook);
                    }
                    self.hosts[i].events.push((now, e));
                }
                Output::Timeout(at) => {
                    self.hosts[i].deadline = at;
                    while let Some(r) = self.hosts[i].node.poll_persist() {
                        self.hosts[i].records.push(r);
                    }
                    break;
                }
            }
        }
    }

    fn deliver(&mut self, d: Delivery) {
        let now = self.now;
        match d {
            Delivery::Datagram { to, from, data } => {
                if !self.hosts[to].up {
                    return;
                }
                self.delivered += 1;
                let from_addr = self.hosts[from].addr;
                self.hosts[to].node.handle_datagram(now, from_addr, &data);
                self.drain(to);
            }
            Delivery::Open { to, from, id } => {
                if !self.hosts[to].up || self.cut.contains(&(from, to)) {
                    return;
                }
                let from_addr = self.hosts[from].addr;
                if let Some(theirs) = self.hosts[to].node.accept_stream(now, from_addr) {
                    self.links.insert((from, id), (to, theirs));
                    self.links.insert((to, theirs), (from, id));
                }
                self.drain(to);
            }
            Delivery::Frame { from, id, data } => {
                let Some(&(to, theirs)) = self.links.get(&(from, id)) else {
                    return;
                };
                if !self.hosts[to].up || self.cut.contains(&(from, to)) {
                    return;
                }
                self.hosts[to]
                    .node
                    .handle_stream(now, theirs, StreamEvent::Frame(&data));
                self.drain(to);
            }
            Delivery::Closed { from, id, failed } => {
                let Some((to, theirs)) = self.links.remove(&(from, id)) else {
                    return;
                };
                if !self.hosts[to].up {
                    return;
                }
                self.hosts[to].node.handle_stream(
                    now,
                    theirs,
                    if failed {
                        StreamEvent::Failed
                    } else {
                        StreamEvent::Closed
                    },
                );
                self.drain(to);
            }
        }
    }

    /// Runs until virtual time `until`.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let next_delivery = self.queue.peek().map(|Reverse((at, _, _))| *at);
            let next_timer = self.hosts.iter().filter(|h| h.up).map(|h| h.deadline).min();
            let next = match (next_delivery, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or(Instant::MAX),
            };
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            if next_delivery == Some(next) {
                let Reverse((_, _, d)) = self.queue.pop().unwrap();
                self.deliver(d);
            } else {
                for i in 0..self.hosts.len() {
                    if self.hosts[i].up && self.hosts[i].deadline <= self.now {
                        let now = self.now;
                        self.hosts[i].node.handle_timeout(now);
                        self.drain(i);
                    }
                }
            }
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs until `cond` holds, checking every 100 ms, or panics after `limit`.
    pub fn run_until_cond(
        &mut self,
        limit: Duration,
        mut cond: impl FnMut(&Self) -> bool,
    ) -> Duration {
        let start = self.now;
        while !cond(self) {
            assert!(
                self.now - start <= limit,
                "condition not met within {limit:?}"
            );
            self.run_for(Duration::from_millis(100));
        }
        self.now - start
    }

    /// Live hosts' indices.
    pub fn live(&self) -> Vec<usize> {
        (0..self.hosts.len())
            .filter(|&i| self.hosts[i].up)
            .collect()
    }
}

impl Cluster<Memberlist> {
    /// Adds a host running a fresh memberlist node; returns its index.
    pub fn add(&mut self, name: &str, config: Config) -> usize {
        let addr = addr_of(self.hosts.len());
        let seed = self.next_seed();
        let node = Memberlist::new(config, name, addr, b"", seed, self.now).unwrap();
        self.add_node(name, node)
    }

    /// Replaces host `i`'s node with a fresh one (a restart that lost its state).
    pub fn restart(&mut self, i: usize, config: Config) {
        let seed = self.next_seed();
        let h = &self.hosts[i];
        let node = Memberlist::new(config, &h.name, h.addr, b"", seed, self.now).unwrap();
        self.replace_node(i, node);
    }

    pub fn join(&mut self, i: usize, seed: usize) {
        let now = self.now;
        let to = self.hosts[seed].addr;
        self.hosts[i].node.join(now, &[to]).unwrap();
        self.drain(i);
    }

    pub fn leave(&mut self, i: usize) {
        let now = self.now;
        self.hosts[i].node.leave(now).unwrap();
        self.drain(i);
    }

    /// The state of `name` in host `i`'s view.
    pub fn state_of(&self, i: usize, name: &str) -> Option<NodeState> {
        self.hosts[i].node.member(name).map(|n| n.state())
    }

    /// Whether every live host sees `name` in `state`.
    pub fn all_see(&self, name: &str, state: NodeState) -> bool {
        self.live()
            .into_iter()
            .filter(|&i| self.hosts[i].name != name)
            .all(|i| self.state_of(i, name) == Some(state))
    }
}

impl Cluster<Serf> {
    /// `n` Serf nodes named `node-0..` that joined through node 0, once every view holds
    /// all of them alive.
    pub fn converged(n: usize, seed: u64, config: &serf::Config) -> Self {
        let mut c = Self::new(seed);
        for i in 0..n {
            c.add(&format!("node-{i}"), config.clone());
        }
        for i in 1..n {
            c.join(i, 0);
        }
        c.run_until_cond(Duration::from_secs(60), |c| {
            c.live().iter().all(|&i| c.hosts[i].node.num_alive() == n)
        });
        c
    }

    /// Adds a host running a fresh Serf node; returns its index.
    pub fn add(&mut self, name: &str, config: serf::Config) -> usize {
        let addr = addr_of(self.hosts.len());
        let seed = self.next_seed();
        let node = Serf::new(config, name, addr, seed, self.now).unwrap();
        self.add_node(name, node)
    }

    pub fn join(&mut self, i: usize, seed: usize) {
        let now = self.now;
        let to = self.hosts[seed].addr;
        self.hosts[i].node.join(now, &[to], false).unwrap();
        self.drain(i);
    }

    /// Runs a command on host `i` at the current time, then drains it.
    pub fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut Serf, Instant) -> R) -> R {
        let now = self.now;
        let r = f(&mut self.hosts[i].node, now);
        self.drain(i);
        r
    }

    /// The status of `name` in host `i`'s view.
    pub fn status_of(&self, i: usize, name: &str) -> Option<serf::MemberStatus> {
        self.hosts[i].node.member(name).map(|m| m.status)
    }

    /// Whether every live host other than `name` sees it with `status`.
    pub fn all_see(&self, name: &str, status: serf::MemberStatus) -> bool {
        self.live()
            .into_iter()
            .filter(|&i| self.hosts[i].name != name)
            .all(|i| self.status_of(i, name) == Some(status))
    }
}
