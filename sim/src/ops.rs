//! The scenario's timeline as primitive operations, and node-set resolution.

use crate::engine::{Ev, Host, Simulation, Status};
use crate::network::{FaultId, LinkOverride, NodeBits};
use crate::node::{KeyOp, SimNode};
use crate::scenario::{ActionKind, NodeSet};
use core::time::Duration;
use serf_proto::Instant;

/// One primitive operation at one instant.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    pub kind: OpKind,
    /// Remember the chosen nodes under this name.
    pub label: Option<String>,
    /// The scenario action it comes from (`None`: the bootstrap), for warnings.
    pub action: Option<usize>,
}

#[derive(Debug, Clone)]
pub(crate) enum OpKind {
    Start {
        nodes: NodeSet,
        seeds: Option<NodeSet>,
        keep_state: bool,
        rejoin: bool,
        new_address: bool,
    },
    Crash {
        nodes: NodeSet,
    },
    Restart {
        nodes: NodeSet,
        downtime: Duration,
        keep_state: bool,
        rejoin: bool,
        seeds: Option<NodeSet>,
        new_address: bool,
    },
    Up {
        nodes: Vec<u32>,
        keep_state: bool,
        rejoin: bool,
        seeds: Option<NodeSet>,
        new_address: bool,
    },
    RollingRestart {
        nodes: NodeSet,
        every: Duration,
        downtime: Duration,
        keep_state: bool,
        rejoin: bool,
        seeds: Option<NodeSet>,
    },
    Pause {
        nodes: NodeSet,
        lasts: Duration,
    },
    Slow {
        nodes: NodeSet,
        delay: (Duration, Duration),
        lasts: Option<Duration>,
    },
    /// The end of slow fault `id` (only that one: an earlier slow still in force on the
    /// same node takes over).
    Unslow {
        id: FaultId,
    },
    /// The end of a pause on `nodes` (a node paused again meanwhile stays paused until
    /// its later pause ends).
    Unpause {
        nodes: Vec<u32>,
    },
    Leave {
        nodes: NodeSet,
    },
    Join {
        nodes: NodeSet,
        seeds: Option<NodeSet>,
    },
    Partition {
        groups: Vec<NodeSet>,
        lasts: Option<Duration>,
    },
    OneWay {
        from: NodeSet,
        to: NodeSet,
        lasts: Option<Duration>,
    },
    Heal,
    /// The end of partition or cut `id` (only that one).
    EndSplit {
        id: FaultId,
    },
    Network {
        link: LinkOverride,
        lasts: Option<Duration>,
    },
    Link {
        from: NodeSet,
        to: NodeSet,
        link: LinkOverride,
        lasts: Option<Duration>,
    },
    /// The end of `network` or `link` action `id` (only that one).
    EndLinkChange {
        id: FaultId,
    },
    UserEvent {
        from: NodeSet,
    },
    Query {
        from: NodeSet,
    },
    Key {
        nodes: NodeSet,
        op: KeyOp,
        key: u8,
    },
}

impl<N: SimNode> Simulation<N> {
    /// Turns the bootstrap and the actions into scheduled operations.
    pub(crate) fn plan(&mut self) -> Result<(), String> {
        let n = self.hosts.len();
        let b = self.scenario.bootstrap.clone();
        if b.start_all {
            for i in 0..n {
                let at = Instant::from_duration(b.spread.mul_f64(i as f64 / n as f64));
                self.add_op(
                    at,
                    OpKind::Start {
                        nodes: NodeSet::List(vec![i as u32]),
                        seeds: None,
                        keep_state: false,
                        rejoin: true,
                        new_address: false,
                    },
                    None,
                );
            }
        }
        for (k, a) in self.scenario.actions.clone().into_iter().enumerate() {
            self.firing_action = Some(k);
            let at = Instant::from_duration(a.at);
            let nodes = a.nodes.clone().unwrap_or(NodeSet::All);
            let rejoin = a.rejoin.unwrap_or(true);
            let downtime = a.downtime.unwrap_or(Duration::from_secs(10));
            let keep_state = a.keep_state.unwrap_or(false);
            let new_address = a.new_address.unwrap_or(false);
            let kind = match a.kind {
                ActionKind::Start => OpKind::Start {
                    nodes,
                    seeds: a.seeds.clone(),
                    keep_state,
                    rejoin,
                    new_address,
                },
                ActionKind::Crash => OpKind::Crash { nodes },
                ActionKind::Restart => OpKind::Restart {
                    nodes,
                    downtime,
                    keep_state,
                    rejoin,
                    seeds: a.seeds.clone(),
                    new_address,
                },
                ActionKind::RollingRestart => OpKind::RollingRestart {
                    nodes,
                    every: a.every.ok_or("rolling_restart needs `every`")?,
                    downtime,
                    keep_state,
                    rejoin,
                    seeds: a.seeds.clone(),
                },
                ActionKind::Pause => OpKind::Pause {
                    nodes,
                    lasts: a.lasts.ok_or("pause needs `for`")?,
                },
                ActionKind::Slow => OpKind::Slow {
                    nodes,
                    delay: a.delay.ok_or("slow needs `delay`")?,
                    lasts: a.lasts,
                },
                ActionKind::Leave => OpKind::Leave { nodes },
                ActionKind::Join => OpKind::Join {
                    nodes,
                    seeds: a.seeds.clone(),
                },
                ActionKind::Partition => OpKind::Partition {
                    groups: a.groups.clone().unwrap_or_default(),
                    lasts: a.lasts,
                },
                ActionKind::OneWay => OpKind::OneWay {
                    from: a.from.clone().ok_or("one_way needs `from`")?,
                    to: a.to.clone().ok_or("one_way needs `to`")?,
                    lasts: a.lasts,
                },
                ActionKind::Heal => OpKind::Heal,
                ActionKind::Network => OpKind::Network {
                    link: a.link(),
                    lasts: a.lasts,
                },
                ActionKind::Link => OpKind::Link {
                    from: a.from.clone().ok_or("link needs `from`")?,
                    to: a.to.clone().ok_or("link needs `to`")?,
                    link: a.link(),
                    lasts: a.lasts,
                },
                ActionKind::InstallKey | ActionKind::UseKey | ActionKind::RemoveKey => {
                    OpKind::Key {
                        nodes,
                        op: match a.kind {
                            ActionKind::InstallKey => KeyOp::Install,
                            ActionKind::UseKey => KeyOp::Use,
                            _ => KeyOp::Remove,
                        },
                        key: a.key.ok_or("a key action needs `key`")?,
                    }
                }
                ActionKind::UserEvents | ActionKind::Queries => {
                    let count = a.count.unwrap_or(1);
                    let every = a.every.unwrap_or(Duration::from_millis(100));
                    for k in 0..count {
                        let from = nodes.clone();
                        let kind = if a.kind == ActionKind::UserEvents {
                            OpKind::UserEvent { from }
                        } else {
                            OpKind::Query { from }
                        };
                        self.add_op(at + every.saturating_mul(k as u32), kind, None);
                    }
                    continue;
                }
            };
            // A repeated action: the same operations again, each a fault of its own
            // (a random set is drawn again each time; a label names the latest draw).
            for r in 0..a.times() {
                let at = Instant::from_duration(a.repeat_at(r));
                self.add_op(at, kind.clone(), a.label.clone());
            }
        }
        self.firing_action = None;
        Ok(())
    }

    /// Schedules an operation; it belongs to the action being planned or fired.
    pub(crate) fn add_op(&mut self, at: Instant, kind: OpKind, label: Option<String>) {
        let i = self.ops.len();
        self.ops.push(Op {
            kind,
            label,
            action: self.firing_action,
        });
        self.push(at, Ev::Op(i));
    }

    /// Records a warning: something the scenario asked for that could not happen at
    /// run time (the report and the JSON list them).
    pub(crate) fn warn(&mut self, what: String) {
        let action = match self.firing_action {
            Some(k) => format!("action {k} ({:?})", self.scenario.actions[k].kind),
            None => "the bootstrap".to_string(),
        };
        self.warnings
            .push(format!("at {}: {action} {what}", self.now));
    }

    /// The nodes of `set` that `eligible` accepts, with a warning about the nodes the
    /// set names but the action skips: any node named explicitly (a list, range, group
    /// or label), and a node still leaving whatever the set (a leave that does not
    /// complete is a bug the run must not hide). "all", "seeds" and random draws
    /// otherwise mean "those it applies to".
    pub(crate) fn choose(&mut self, set: &NodeSet, eligible: impl Fn(&Host) -> bool) -> Vec<u32> {
        let chosen = self.resolve(set, &eligible);
        if matches!(set, NodeSet::Random(_)) {
            return chosen;
        }
        let explicit = !matches!(set, NodeSet::All | NodeSet::Seeds);
        let skipped: Vec<(u32, Status)> = self
            .resolve(set, |h| {
                !eligible(h) && (explicit || h.status == Status::Leaving)
            })
            .into_iter()
            .map(|i| (i, self.hosts[i as usize].status))
            .collect();
        if !skipped.is_empty() {
            let why = |st: Status| match st {
                Status::NotStarted => "never started",
                Status::Up => "running",
                Status::Leaving => "still leaving: its leave has not completed",
                Status::Down => "down",
            };
            let mut list: Vec<String> = skipped
                .iter()
                .take(10)
                .map(|&(i, st)| format!("node {i} ({})", why(st)))
                .collect();
            if skipped.len() > 10 {
                list.push(format!("{} more", skipped.len() - 10));
            }
            self.warn(format!(
                "skips {} it names: {}",
                if skipped.len() == 1 {
                    "a node"
                } else {
                    "nodes"
                },
                list.join(", ")
            ));
        }
        chosen
    }

    /// The nodes of `set` whose host `eligible` accepts. Random picks exclude the seeds.
    pub(crate) fn resolve(&mut self, set: &NodeSet, eligible: impl Fn(&Host) -> bool) -> Vec<u32> {
        let n = self.hosts.len();
        let seeds = self.scenario.bootstrap.seeds.min(n);
        let hosts = &self.hosts;
        let ok = |i: &u32| eligible(&hosts[*i as usize]);
        match set {
            NodeSet::All => (0..n as u32).filter(ok).collect(),
            NodeSet::Seeds => (0..seeds as u32).filter(ok).collect(),
            NodeSet::List(v) => v
                .iter()
                .copied()
                .filter(|&i| (i as usize) < n)
                .filter(ok)
                .collect(),
            NodeSet::Range(a, b) => (a.of(n).min(n) as u32..b.of(n).min(n) as u32)
                .filter(ok)
                .collect(),
            NodeSet::Group(g) => self
                .groups
                .get(g)
                .map_or(Vec::new(), |v| v.iter().copied().filter(ok).collect()),
            NodeSet::Label(l) => self
                .labels
                .get(l)
                .map_or(Vec::new(), |v| v.iter().copied().filter(ok).collect()),
            NodeSet::Random(k) => {
                let mut pool: Vec<u32> = (seeds as u32..n as u32).filter(ok).collect();
                let k = k.of(n).min(pool.len());
                // Partial Fisher–Yates with the scenario's RNG.
                for j in 0..k {
                    let r = j + self.rng.index(pool.len() - j);
                    pool.swap(j, r);
                }
                pool.truncate(k);
                pool.sort_unstable();
                pool
            }
        }
    }

    fn seed_addrs(&mut self, i: u32, seeds: &Option<NodeSet>) -> Vec<core::net::SocketAddr> {
        let set = seeds.clone().unwrap_or(NodeSet::Seeds);
        self.resolve(&set, |_| true)
            .into_iter()
            .filter(|&s| s != i)
            .map(|s| self.specs[s as usize].addr)
            .collect()
    }

    fn join(&mut self, i: u32, seeds: &Option<NodeSet>) {
        let mut addrs = self.seed_addrs(i, seeds);
        if seeds.is_none()
            && (i as usize) < self.scenario.bootstrap.seeds
            && self.hosts[i as usize].life == 1
        {
            // A seed joins the seeds started before it; the first seed is alone.
            addrs.retain(|a| self.host_at(*a).is_some_and(|s| s < i));
        }
        if addrs.is_empty() {
            return;
        }
        let now = self.now;
        if let Some(node) = self.nodes[i as usize].as_mut() {
            node.join(now, &addrs);
            self.drain(i);
        }
    }

    fn up_or_fail(&mut self, i: u32, keep_state: bool, new_address: bool) -> bool {
        match self.start(i, keep_state, new_address) {
            Ok(()) => true,
            Err(e) => {
                self.violate(Some(i), "start", format!("node {i} failed to start: {e}"));
                false
            }
        }
    }

    /// A `network` or `link` change with `for` is a fault until it ends; one without
    /// is the network from then on.
    fn end_link_change_after(&mut self, id: FaultId, lasts: Option<Duration>) {
        if let Some(l) = lasts {
            self.timed_link_faults.push(id);
            self.add_op(self.now + l, OpKind::EndLinkChange { id }, None);
        }
    }

    pub(crate) fn fire_op(&mut self, idx: usize) {
        let op = self.ops[idx].clone();
        self.firing_action = op.action;
        let now = self.now;
        let running = |h: &Host| h.status == Status::Up;
        let mut chosen: Vec<u32> = Vec::new();
        let mut disturb = true;
        match op.kind {
            OpKind::Start {
                nodes,
                seeds,
                keep_state,
                rejoin,
                new_address,
            } => {
                // Nodes never started, or stopped (crashed or left).
                chosen = self.choose(&nodes, |h| {
                    matches!(h.status, Status::NotStarted | Status::Down)
                });
                self.trace_op(1, &chosen);
                for &i in &chosen {
                    if self.up_or_fail(i, keep_state, new_address) && rejoin {
                        self.join(i, &seeds);
                    }
                }
            }
            OpKind::Crash { nodes } => {
                chosen = self.choose(&nodes, running);
                self.trace_op(2, &chosen);
                for &i in &chosen {
                    self.stop(i, true);
                }
            }
            OpKind::Restart {
                nodes,
                downtime,
                keep_state,
                rejoin,
                seeds,
                new_address,
            } => {
                chosen = self.choose(&nodes, running);
                self.trace_op(3, &chosen);
                for &i in &chosen {
                    self.stop(i, true);
                }
                let kind = OpKind::Up {
                    nodes: chosen.clone(),
                    keep_state,
                    rejoin,
                    seeds,
                    new_address,
                };
                self.add_op(now + downtime, kind, None);
            }
            OpKind::Up {
                nodes,
                keep_state,
                rejoin,
                seeds,
                new_address,
            } => {
                self.trace_op(4, &nodes);
                // Nodes started again meanwhile (by a `start`) are named by the restart:
                // `choose` warns about them.
                chosen = self.choose(&NodeSet::List(nodes), |h| h.status == Status::Down);
                for &i in &chosen {
                    if self.up_or_fail(i, keep_state, new_address) && rejoin {
                        self.join(i, &seeds);
                    }
                }
            }
            OpKind::RollingRestart {
                nodes,
                every,
                downtime,
                keep_state,
                rejoin,
                seeds,
            } => {
                chosen = self.choose(&nodes, running);
                self.trace_op(5, &chosen);
                for (k, &i) in chosen.clone().iter().enumerate() {
                    let kind = OpKind::Restart {
                        nodes: NodeSet::List(vec![i]),
                        downtime,
                        keep_state,
                        rejoin,
                        seeds: seeds.clone(),
                        new_address: false,
                    };
                    self.add_op(now + every.saturating_mul(k as u32), kind, None);
                }
                disturb = false;
            }
            OpKind::Pause { nodes, lasts } => {
                chosen = self.choose(&nodes, running);
                self.trace_op(6, &chosen);
                for &i in &chosen {
                    let h = &mut self.hosts[i as usize];
                    // Overlapping pauses: the node runs again when the last one ends.
                    h.paused_until =
                        Some(h.paused_until.map_or(now + lasts, |p| p.max(now + lasts)));
                    h.ever_impaired = true;
                    self.note(i, format!("paused for {lasts:?}"));
                }
                self.add_op(
                    now + lasts,
                    OpKind::Unpause {
                        nodes: chosen.clone(),
                    },
                    None,
                );
            }
            OpKind::Unpause { nodes } => {
                self.trace_op(8, &nodes);
                let mut ended = false;
                for &i in &nodes {
                    let h = &mut self.hosts[i as usize];
                    if h.paused_until.is_some_and(|p| p <= now) {
                        h.paused_until = None;
                        ended = true;
                        self.note(i, "running again after its pause");
                    }
                }
                disturb = ended;
                chosen = nodes;
            }
            OpKind::Slow {
                nodes,
                delay,
                lasts,
            } => {
                chosen = self.choose(&nodes, running);
                self.trace_op(7, &chosen);
                let id = idx as FaultId;
                for &i in &chosen {
                    let h = &mut self.hosts[i as usize];
                    h.slow = Some(delay);
                    h.ever_impaired = true;
                    self.note(
                        i,
                        format!("slow: each input {:?} to {:?} late", delay.0, delay.1),
                    );
                }
                self.slow_faults.push((id, chosen.clone(), delay));
                if let Some(l) = lasts {
                    self.add_op(now + l, OpKind::Unslow { id }, None);
                }
            }
            OpKind::Unslow { id } => {
                // Nodes that stopped meanwhile were taken out of the fault (a stop ends
                // slowness), so only nodes still slow by this fault are in it.
                let nodes = match self.slow_faults.iter().position(|f| f.0 == id) {
                    Some(k) => self.slow_faults.remove(k).1,
                    None => Vec::new(),
                };
                self.trace_op(8, &nodes);
                for &i in &nodes {
                    // The latest slow still in force on the node, if any, takes over.
                    let delay = self
                        .slow_faults
                        .iter()
                        .rev()
                        .find(|f| f.1.contains(&i))
                        .map(|f| f.2);
                    self.hosts[i as usize].slow = delay;
                    self.note(
                        i,
                        match delay {
                            Some(d) => format!("slow by an earlier fault: {:?} to {:?}", d.0, d.1),
                            None => "no longer slow".to_string(),
                        },
                    );
                }
                disturb = !nodes.is_empty();
                chosen = nodes;
            }
            OpKind::Leave { nodes } => {
                chosen = self.choose(&nodes, running);
                self.trace_op(9, &chosen);
                for &i in &chosen {
                    self.note(i, "leaving");
                    self.leave_truth(i);
                    self.hosts[i as usize].status = Status::Leaving;
                    if let Some(node) = self.nodes[i as usize].as_mut() {
                        node.leave(now);
                    }
                    self.drain(i);
                }
            }
            OpKind::Join { nodes, seeds } => {
                chosen = self.choose(&nodes, running);
                self.trace_op(10, &chosen);
                for &i in &chosen {
                    self.note(i, "joining");
                    self.join(i, &seeds);
                }
            }
            OpKind::Partition { groups, lasts } => {
                let resolved: Vec<Vec<u32>> =
                    groups.iter().map(|g| self.resolve(g, |_| true)).collect();
                for g in &resolved {
                    self.trace_op(11, g);
                }
                let was = self.net.is_split();
                let id = idx as FaultId;
                self.net.partition(id, &resolved);
                self.split_changed(was);
                self.cut_crossing_streams();
                if let Some(l) = lasts {
                    self.add_op(now + l, OpKind::EndSplit { id }, None);
                }
            }
            OpKind::OneWay { from, to, lasts } => {
                let n = self.hosts.len();
                let f = self.resolve(&from, |_| true);
                let t = self.resolve(&to, |_| true);
                self.trace_op(12, &f);
                self.trace_op(12, &t);
                let was = self.net.is_split();
                let id = idx as FaultId;
                self.net
                    .cut(id, NodeBits::from_nodes(n, &f), NodeBits::from_nodes(n, &t));
                self.split_changed(was);
                self.cut_crossing_streams();
                if let Some(l) = lasts {
                    self.add_op(now + l, OpKind::EndSplit { id }, None);
                }
            }
            OpKind::Heal => {
                self.trace_op(13, &[]);
                let was = self.net.is_split();
                self.net.heal();
                self.split_changed(was);
            }
            OpKind::EndSplit { id } => {
                self.trace_op(13, &[id as u32]);
                let was = self.net.is_split();
                // A heal may have ended it already: then nothing changes.
                disturb = self.net.end_split(id);
                self.split_changed(was);
            }
            OpKind::Network { link, lasts } => {
                self.trace_op(14, &[]);
                let id = idx as FaultId;
                self.net.change_link(id, link);
                self.end_link_change_after(id, lasts);
            }
            OpKind::Link {
                from,
                to,
                link,
                lasts,
            } => {
                let n = self.hosts.len();
                let f = self.resolve(&from, |_| true);
                let t = self.resolve(&to, |_| true);
                self.trace_op(19, &f);
                self.trace_op(19, &t);
                let id = idx as FaultId;
                let (f, t) = (NodeBits::from_nodes(n, &f), NodeBits::from_nodes(n, &t));
                self.net.change_links(id, f, t, link);
                self.end_link_change_after(id, lasts);
            }
            OpKind::EndLinkChange { id } => {
                self.trace_op(15, &[id as u32]);
                self.timed_link_faults.retain(|&f| f != id);
                disturb = self.net.end_link_change(id);
            }
            OpKind::Key { nodes, op, key } => {
                chosen = self.choose(&nodes, running);
                self.trace_op(18, &chosen);
                for &i in &chosen {
                    let started = self.nodes[i as usize]
                        .as_mut()
                        .is_some_and(|node| node.key_op(now, op, key));
                    self.note(
                        i,
                        format!("{op:?} key {key}{}", if started { "" } else { ": refused" }),
                    );
                    if started {
                        self.rec.key_started(i, op, key, now);
                    } else {
                        self.warn(format!("node {i} refused to {op:?} key {key}"));
                    }
                    self.drain(i);
                }
            }
            OpKind::UserEvent { from } | OpKind::Query { from } => {
                let query = matches!(self.ops[idx].kind, OpKind::Query { .. });
                disturb = false;
                let pool = self.resolve(&from, running);
                if pool.is_empty() {
                    self.warn(format!(
                        "sends no {}: none of its senders ({}) is running",
                        if query { "query" } else { "user event" },
                        from.show()
                    ));
                    return;
                }
                let origin = pool[self.rng.index(pool.len())];
                let id = self.next_broadcast_id;
                self.next_broadcast_id += 1;
                self.trace_op(16 + u64::from(query), &[origin]);
                self.rec.sent(query, id, origin, now);
                if let Some(node) = self.nodes[origin as usize].as_mut() {
                    let accepted = if query {
                        node.query(now, id)
                    } else {
                        node.user_event(now, id)
                    };
                    if !accepted {
                        let refused = if query {
                            &mut self.rec.refused_queries
                        } else {
                            &mut self.rec.refused_events
                        };
                        *refused += 1;
                    }
                }
                self.drain(origin);
                chosen = vec![origin];
            }
        }
        if let Some(label) = op.label {
            self.labels.insert(label, chosen);
        }
        if disturb {
            self.disturbed();
        }
        self.note_agreement();
    }
}
