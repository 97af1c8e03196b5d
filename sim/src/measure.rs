//! Measurements: what happened, recorded as it happens, summarized at the end.

use core::time::Duration;
use serde::Serialize;
use serf_proto::Instant;
use std::collections::{BTreeMap, BTreeSet};

/// Summary statistics of a set of durations, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// How many values.
    pub count: usize,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Stats {
    /// Statistics of `values` (in any order).
    pub fn of(values: &[f64]) -> Stats {
        if values.is_empty() {
            return Stats::default();
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            // Nearest rank.
            let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1]
        };
        Stats {
            count: v.len(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: v[v.len() - 1],
        }
    }
}

/// One crash and how it was detected.
#[derive(Debug, Clone, Serialize)]
pub struct CrashRecord {
    /// The crashed node.
    pub node: u32,
    /// When it crashed (seconds).
    pub at: f64,
    /// Seconds until a first node suspected it.
    pub first_suspect: Option<f64>,
    /// Seconds until a first node declared it failed.
    pub first_failed: Option<f64>,
    /// Seconds until no live view held it as a member.
    pub all_failed: Option<f64>,
    /// It came back before every view had failed it.
    pub restarted_first: bool,
    /// Another crash's detection was running at the same time (a mass crash): the
    /// probes of the two overlap, so SWIM's one-failure analysis does not describe it.
    pub concurrent: bool,
}

/// One keyring operation across the cluster.
#[derive(Debug, Clone, Serialize)]
pub struct KeyOpRecord {
    /// The node that ran it.
    pub node: u32,
    /// What it did.
    pub op: crate::node::KeyOp,
    /// The key (as the scenario numbers it).
    pub key: u8,
    /// When it started (seconds).
    pub at: f64,
    /// Seconds until it ended at the node, if it did.
    pub took: Option<f64>,
    /// Alive members when it ended.
    pub nodes: usize,
    /// Nodes that answered.
    pub answered: usize,
    /// Nodes that answered with an error (e.g. removing the primary key).
    pub errors: usize,
}

impl KeyOpRecord {
    /// Ended with every alive member answering and no error.
    pub fn complete(&self) -> bool {
        self.took.is_some() && self.errors == 0 && self.answered == self.nodes
    }
}

/// One user event or query.
#[derive(Debug, Clone)]
pub struct Broadcast {
    /// Its id.
    pub id: u64,
    /// The sender.
    pub origin: u32,
    /// When it was sent.
    pub sent_at: Instant,
    /// First receipt at each node.
    pub received: Vec<(u32, Instant)>,
    /// Answers (queries only): the first from each node.
    pub responses: Vec<(u32, Instant)>,
    /// The nodes in `responses`, to keep one answer per node in O(log n).
    pub responders: BTreeSet<u32>,
    /// Queries on the Serf layer: when the asker's query ended, whether every expected
    /// node had answered, and the timeout it had.
    pub done: Option<(Instant, bool, core::time::Duration)>,
}

/// One sample of the membership views.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds.
    pub t: f64,
    /// Nodes up in truth.
    pub up: u32,
    /// Smallest member count over live views.
    pub min: u32,
    /// Median member count over live views.
    pub median: u32,
    /// Largest member count over live views.
    pub max: u32,
    /// Member counts of the plotted views (0 while down).
    pub views: Vec<u32>,
}

/// The measurements kept during a run.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Crashes, in order.
    pub crashes: Vec<CrashRecord>,
    /// Crashed nodes whose detection is still running: node -> index in `crashes`.
    pub pending: BTreeMap<u32, usize>,
    /// Of those, the ones no node suspects yet.
    pub unsuspected: BTreeSet<u32>,
    /// False failure reports about healthy members (one per reporting view).
    pub fp_healthy: u64,
    /// False failure reports about slow or paused members.
    pub fp_slow: u64,
    /// Failure reports about live members made while a partition or cut was in force,
    /// or within the longest suspicion timeout plus a probe interval after it ended
    /// (expected, not false positives of the detector).
    pub fp_partitioned: u64,
    /// Failure reports about a restarted member at an incarnation an earlier life
    /// reached: the end of the crashed life's detection, not false positives.
    pub fp_previous_life: u64,
    /// Distinct (member, incarnation) wrongly declared failed: healthy ones.
    pub fp_healthy_distinct: BTreeSet<(u32, u32)>,
    /// Distinct (member, incarnation) wrongly declared failed: slow ones.
    pub fp_slow_distinct: BTreeSet<(u32, u32)>,
    /// When each counted false failure report was made, and whether its subject was
    /// slow (for expectations over a time window).
    pub fp_times: Vec<(Instant, bool)>,
    /// User events.
    pub events: Vec<Broadcast>,
    /// Queries.
    pub queries: Vec<Broadcast>,
    /// Id -> index in `events` or `queries`.
    pub by_id: BTreeMap<u64, usize>,
    /// View samples.
    pub samples: Vec<Sample>,
    /// Times the cluster went from disagreeing to agreeing (true) and back (false).
    pub agreement: Vec<(Instant, bool)>,
    /// Start of each quiet period (a fault or membership action).
    pub epochs: Vec<Instant>,
    /// Joins that reached a seed / that reached none.
    pub joins_ok: u64,
    /// Joins that reached no seed.
    pub joins_failed: u64,
    /// Name conflicts reported.
    pub name_conflicts: u64,
    /// User events the sending node refused (e.g. larger than its size limit).
    pub refused_events: u64,
    /// Queries the asking node refused.
    pub refused_queries: u64,
    /// Keyring operations, in the order they started.
    pub key_ops: Vec<KeyOpRecord>,
}

impl Recorder {
    /// Records a crash of `node` at `now`.
    pub fn crashed(&mut self, node: u32, now: Instant, held_by: u32) {
        let i = self.crashes.len();
        let concurrent = !self.pending.is_empty();
        for &k in self.pending.values() {
            self.crashes[k].concurrent = true;
        }
        self.crashes.push(CrashRecord {
            node,
            at: now.as_duration().as_secs_f64(),
            first_suspect: None,
            first_failed: None,
            all_failed: (held_by == 0).then_some(0.0),
            restarted_first: false,
            concurrent,
        });
        if held_by > 0 {
            self.pending.insert(node, i);
            self.unsuspected.insert(node);
        }
    }

    /// `node` came back up: an unfinished detection is abandoned.
    pub fn restarted(&mut self, node: u32) {
        if let Some(i) = self.pending.remove(&node) {
            self.crashes[i].restarted_first = true;
        }
        self.unsuspected.remove(&node);
    }

    fn since(&self, i: usize, now: Instant) -> f64 {
        now.as_duration().as_secs_f64() - self.crashes[i].at
    }

    /// A view suspected crashed node `node`.
    pub fn suspected(&mut self, node: u32, now: Instant) {
        if self.unsuspected.remove(&node)
            && let Some(&i) = self.pending.get(&node)
        {
            self.crashes[i].first_suspect = Some(self.since(i, now));
        }
    }

    /// A view declared `node` failed; `remaining` views still hold it.
    pub fn failed(&mut self, node: u32, now: Instant, remaining: u32) {
        let Some(&i) = self.pending.get(&node) else {
            return;
        };
        let t = self.since(i, now);
        let c = &mut self.crashes[i];
        c.first_failed.get_or_insert(t);
        c.first_suspect.get_or_insert(t);
        self.unsuspected.remove(&node);
        if remaining == 0 {
            self.crashes[i].all_failed = Some(t);
            self.pending.remove(&node);
        }
    }

    /// The views holding crashed `node` dropped to `remaining` for another reason (a
    /// view went down).
    pub fn views_dropped(&mut self, node: u32, now: Instant, remaining: u32) {
        if remaining == 0
            && let Some(i) = self.pending.remove(&node)
        {
            let t = self.since(i, now);
            self.crashes[i].all_failed = Some(t);
            self.unsuspected.remove(&node);
        }
    }

    /// `node` started a keyring operation.
    pub fn key_started(&mut self, node: u32, op: crate::node::KeyOp, key: u8, now: Instant) {
        self.key_ops.push(KeyOpRecord {
            node,
            op,
            key,
            at: now.as_duration().as_secs_f64(),
            took: None,
            nodes: 0,
            answered: 0,
            errors: 0,
        });
    }

    /// `node`'s oldest unfinished keyring operation ended (a node's operations are
    /// queries, which end in the order they started: each has the same timeout).
    pub fn key_done(
        &mut self,
        node: u32,
        now: Instant,
        nodes: usize,
        answered: usize,
        errors: usize,
    ) {
        let now = now.as_duration().as_secs_f64();
        if let Some(k) = self
            .key_ops
            .iter_mut()
            .find(|k| k.node == node && k.took.is_none())
        {
            k.took = Some(now - k.at);
            (k.nodes, k.answered, k.errors) = (nodes, answered, errors);
        }
    }

    /// Records a new user event or query.
    pub fn sent(&mut self, query: bool, id: u64, origin: u32, now: Instant) {
        let list = if query {
            &mut self.queries
        } else {
            &mut self.events
        };
        self.by_id.insert(id, list.len());
        list.push(Broadcast {
            id,
            origin,
            sent_at: now,
            received: Vec::new(),
            responses: Vec::new(),
            responders: BTreeSet::new(),
            done: None,
        });
    }

    /// The asker's query `id` ended.
    pub fn query_done(
        &mut self,
        id: u64,
        now: Instant,
        complete: bool,
        timeout: core::time::Duration,
    ) {
        if let Some(&i) = self.by_id.get(&id)
            && let Some(b) = self.queries.get_mut(i)
            && b.id == id
            && b.done.is_none()
        {
            b.done = Some((now, complete, timeout));
        }
    }

    /// `node` received event or query `id`.
    pub fn received(&mut self, query: bool, id: u64, node: u32, now: Instant) {
        let Some(&i) = self.by_id.get(&id) else {
            return;
        };
        let list = if query {
            &mut self.queries
        } else {
            &mut self.events
        };
        if let Some(b) = list.get_mut(i)
            && b.id == id
        {
            b.received.push((node, now));
        }
    }

    /// `from` answered query `id`.
    pub fn responded(&mut self, id: u64, from: u32, now: Instant) {
        if let Some(&i) = self.by_id.get(&id)
            && let Some(b) = self.queries.get_mut(i)
            && b.id == id
            && b.responders.insert(from)
        {
            b.responses.push((from, now));
        }
    }

    /// The cluster's agreement changed (or is recorded at the start).
    pub fn agreement_changed(&mut self, now: Instant, agreed: bool) {
        if self.agreement.last().map(|&(_, a)| a) != Some(agreed) {
            self.agreement.push((now, agreed));
        }
    }

    /// The first instant in `[from, to]` at which the cluster agreed, if any. O(log n):
    /// `agreement` is in time order and alternates.
    ///
    /// Agreement at `from` itself only counts if nothing broke it up to `to`: a
    /// disturbance that changes no view at once (partition, heal, network, pause end)
    /// would otherwise count as converged before it had any effect.
    pub fn agreed_within(&self, from: Instant, to: Instant) -> Option<Instant> {
        let a = &self.agreement;
        // The first change after `from`.
        let i = a.partition_point(|&(t, _)| t <= from);
        let at_from = i > 0 && a[i - 1].1;
        let within = |k: usize| a.get(k).filter(|&&(t, _)| t <= to);
        if at_from && within(i).is_none() {
            return Some(from);
        }
        // Changes alternate: the first agreement after `from` is the next change or the
        // one after it.
        (i..i + 2)
            .filter_map(within)
            .find(|&&(_, agreed)| agreed)
            .map(|&(t, _)| t)
    }

    /// How long the cluster took to agree after each quiet period started (`None`: it
    /// did not before the next one, or by `end` for the last).
    pub fn epoch_convergence(&self, end: Instant) -> Vec<(Instant, Option<Duration>)> {
        self.epochs
            .iter()
            .enumerate()
            .map(|(k, &start)| {
                let until = self.epochs.get(k + 1).copied().unwrap_or(end).max(start);
                (start, self.agreed_within(start, until).map(|t| t - start))
            })
            .collect()
    }
}
