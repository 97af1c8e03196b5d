//! What the engine observes after each step: the per-step invariants, the member events
//! nodes report (view tracking, false positives, detection, deliveries), samples, and the
//! convergence deadline.

use crate::engine::{Ev, Simulation, Status, index_of_name};
use serf_proto::Instant;

/// What became of the convergence invariant for the last quiet period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConvergenceCheck {
    /// The invariant is off.
    Off,
    /// Scheduled for this instant (the run stopped before it).
    Due(Instant),
    /// Due at this instant, past the end of the run: never checked.
    PastEnd(Instant),
    /// Skipped at this instant: these faults were still in force.
    FaultsActive(Instant, String),
    /// Checked at this instant: the views had agreed.
    Held(Instant),
    /// Checked at this instant: they had not.
    Violated(Instant),
}
use crate::node::{SimEvent, SimNode};
use crate::report::Violation;

impl<N: SimNode> Simulation<N> {
    /// Invariants and measurements that need the node just stepped.
    pub(crate) fn after_step(&mut self, i: u32) {
        let Some(node) = self.nodes[i as usize].as_ref() else {
            return;
        };
        let inv = &self.scenario.invariants;
        let h = &mut self.hosts[i as usize];
        let inc = node.incarnation();
        if inv.incarnations && inc < h.last_incarnation {
            let msg = format!(
                "node {i}'s own incarnation went backwards: {} -> {inc}",
                h.last_incarnation
            );
            self.violate(Some(i), "incarnations", msg);
            return;
        }
        h.last_incarnation = inc;
        let c = node.counters();
        if inv.queues && (c.queue_depth > c.queue_limit || c.members > c.members_limit) {
            let msg = format!(
                "node {i} exceeds a bound: broadcast queue {} (limit {}), members {} (limit {})",
                c.queue_depth, c.queue_limit, c.members, c.members_limit
            );
            self.violate(Some(i), "queues", msg);
            return;
        }
        let h = &mut self.hosts[i as usize];
        if c.suspicions != h.last_suspicions {
            h.last_suspicions = c.suspicions;
            if !self.rec.unsuspected.is_empty() {
                let suspects: Vec<u32> = self
                    .rec
                    .unsuspected
                    .iter()
                    .copied()
                    .filter(|&s| {
                        node.member(&self.specs[s as usize].name)
                            .is_some_and(|m| m.state == crate::node::MemberState::Suspect)
                    })
                    .collect();
                for s in suspects {
                    self.rec.suspected(s, self.now);
                }
            }
        }
        self.note_agreement();
    }

    /// Records a change of the cluster's agreement.
    pub(crate) fn note_agreement(&mut self) {
        let agreed = self.views.agreed();
        if agreed != self.agreed {
            self.agreed = agreed;
            self.rec.agreement_changed(self.now, agreed);
        }
    }

    pub(crate) fn violate(&mut self, node: Option<u32>, kind: &str, message: String) {
        self.violations.push(Violation {
            at: self.now.as_duration().as_secs_f64(),
            at_nanos: self.now.as_nanos(),
            node,
            kind: kind.to_string(),
            message,
        });
    }

    pub(crate) fn on_event(&mut self, i: u32, e: SimEvent) {
        let now = self.now;
        self.trace.word(now.as_nanos());
        match e {
            SimEvent::Member {
                name,
                incarnation,
                change,
            } => {
                let Some(s) = index_of_name(name.as_str(), self.hosts.len()) else {
                    return;
                };
                self.trace
                    .word(2 | u64::from(i) << 8 | u64::from(s) << 36 | (change as u64) << 60);
                self.trace.word(u64::from(incarnation));
                if let Some(msg) = self.views.member_event(i, s, change, incarnation, now) {
                    let kind = if msg.starts_with("resurrection") {
                        "resurrection"
                    } else {
                        "incarnations"
                    };
                    self.violate(Some(i), kind, msg);
                }
                use crate::node::Change;
                if change == Change::Failed && self.hosts[i as usize].running() {
                    let subject = &self.hosts[s as usize];
                    if subject.status == Status::Up {
                        if incarnation <= subject.prev_incarnation {
                            // The old suspicion of a crashed life, expiring after a
                            // fresh restart: part of detecting the crash.
                            self.rec.fp_previous_life += 1;
                        } else if self.split_lately() {
                            self.rec.fp_partitioned += 1;
                        } else if subject.ever_impaired {
                            self.rec.fp_slow += 1;
                            self.rec.fp_times.push((now, true));
                            self.rec.fp_slow_distinct.insert((s, incarnation));
                        } else {
                            self.rec.fp_healthy += 1;
                            self.rec.fp_times.push((now, false));
                            self.rec.fp_healthy_distinct.insert((s, incarnation));
                        }
                    } else {
                        let remaining = self.views.alive_in(s);
                        self.rec.failed(s, now, remaining);
                    }
                } else if change == Change::Left && self.hosts[s as usize].status != Status::Up {
                    let remaining = self.views.alive_in(s);
                    self.rec.views_dropped(s, now, remaining);
                }
            }
            SimEvent::UserEvent { id } => {
                self.trace.word(3 | u64::from(i) << 8);
                self.trace.word(id);
                self.rec.received(false, id, i, now);
            }
            SimEvent::QueryReceived { id } => {
                self.trace.word(4 | u64::from(i) << 8);
                self.trace.word(id);
                self.rec.received(true, id, i, now);
            }
            SimEvent::QueryResponse { id, from } => {
                self.trace.word(5 | u64::from(i) << 8);
                self.trace.word(id);
                if let Some(f) = index_of_name(from.as_str(), self.hosts.len()) {
                    self.rec.responded(id, f, now);
                }
            }
            SimEvent::QueryDone {
                id,
                complete,
                timeout,
            } => {
                self.trace
                    .word(15 | u64::from(i) << 8 | u64::from(complete) << 40);
                self.trace.word(id);
                self.rec.query_done(id, now, complete, timeout);
            }
            SimEvent::JoinDone { ok } => {
                self.trace.word(6 | u64::from(i) << 8 | u64::from(ok) << 40);
                if ok {
                    self.rec.joins_ok += 1;
                } else {
                    self.rec.joins_failed += 1;
                }
            }
            SimEvent::LeaveDone => {
                self.trace.word(7 | u64::from(i) << 8);
                self.note(i, "leave completed");
                if self.hosts[i as usize].status == Status::Leaving {
                    self.pending_shutdown.push(i);
                }
            }
            SimEvent::KeyDone {
                nodes,
                answered,
                errors,
            } => {
                self.trace.word(12 | u64::from(i) << 8);
                self.trace
                    .word(nodes as u64 | (answered as u64) << 21 | (errors as u64) << 42);
                self.rec.key_done(i, now, nodes, answered, errors);
            }
            SimEvent::NameConflict => {
                self.trace.word(8 | u64::from(i) << 8);
                self.rec.name_conflicts += 1;
            }
        }
    }

    pub(crate) fn sample(&mut self) {
        let mut counts: Vec<u32> = Vec::with_capacity(self.hosts.len());
        for (i, h) in self.hosts.iter().enumerate() {
            if h.status == Status::Up
                && let Some(n) = &self.nodes[i]
            {
                counts.push(n.num_alive() as u32);
            }
        }
        let views = self
            .plotted
            .iter()
            .map(|&i| {
                self.nodes[i as usize]
                    .as_ref()
                    .filter(|_| self.hosts[i as usize].status == Status::Up)
                    .map_or(0, |n| n.num_alive() as u32)
            })
            .collect();
        counts.sort_unstable();
        let (min, median, max) = match counts.len() {
            0 => (0, 0, 0),
            k => (counts[0], counts[k / 2], counts[k - 1]),
        };
        self.rec.samples.push(crate::measure::Sample {
            t: self.now.as_duration().as_secs_f64(),
            up: self.views.up_count(),
            min,
            median,
            max,
            views,
        });
    }

    /// A fault or membership action happened: a new quiet period starts, and with it the
    /// convergence deadline.
    pub(crate) fn disturbed(&mut self) {
        self.epoch += 1;
        self.last_disturbance = self.now;
        self.rec.epochs.push(self.now);
        if self.scenario.invariants.convergence {
            let at = self.now + self.deadline;
            if at <= self.end {
                self.push(at, Ev::ConvergenceCheck { epoch: self.epoch });
                self.convergence_check = ConvergenceCheck::Due(at);
            } else {
                self.convergence_check = ConvergenceCheck::PastEnd(at);
            }
        }
    }

    /// Whether a partition or cut is in force, or ended so recently that suspicions it
    /// started may still be running (reports then are put down to it).
    pub(crate) fn split_lately(&self) -> bool {
        self.net.is_split()
            || self
                .split_ended
                .is_some_and(|t| self.now - t <= self.split_aftermath)
    }

    /// The faults in force, in words, if any (then convergence is not expected): a
    /// partition or cut, slow or paused nodes, and timed `network` changes (a loss
    /// window is a fault until its `for` ends).
    pub(crate) fn faults_active(&self) -> Option<String> {
        let now = self.now;
        let impaired = self
            .hosts
            .iter()
            .filter(|h| h.running() && h.impaired(now))
            .count();
        let mut faults = Vec::new();
        if self.net.is_split() {
            faults.push("a partition or cut".to_string());
        }
        if impaired > 0 {
            faults.push(format!("{impaired} slow or paused nodes"));
        }
        match self.timed_link_faults.len() {
            0 => {}
            1 => faults.push("a timed network change".into()),
            k => faults.push(format!("{k} timed network changes")),
        }
        (!faults.is_empty()).then(|| faults.join(" and "))
    }

    pub(crate) fn check_convergence(&mut self, epoch: u64) {
        if epoch != self.epoch {
            return;
        }
        if let Some(faults) = self.faults_active() {
            self.convergence_check = ConvergenceCheck::FaultsActive(self.now, faults);
            return;
        }
        let since = self.last_disturbance;
        if self.rec.agreed_within(since, self.now).is_some() {
            self.convergence_check = ConvergenceCheck::Held(self.now);
            return;
        }
        self.convergence_check = ConvergenceCheck::Violated(self.now);
        let detail = match self.views.first_disagreement() {
            Some((s, alive_in, _)) => format!(
                "e.g. node {s} ({}) is a member in {alive_in} of {} live views",
                match self.hosts[s as usize].status {
                    Status::Up => "up",
                    // Not a member in the truth, but its process still runs.
                    Status::Leaving => "leaving, still running: its leave has not completed",
                    Status::NotStarted => "never started",
                    Status::Down => "down",
                },
                self.views.up_count()
            ),
            None => String::new(),
        };
        let msg = format!(
            "no agreement by the convergence deadline: {} members disagree {:.0}s after the last \
             fault at {since} (deadline {:.0}s); {detail}",
            self.views.disagreeing(),
            (self.now - since).as_secs_f64(),
            self.deadline.as_secs_f64()
        );
        self.violate(None, "convergence", msg);
    }

    /// Folds an action into the trace.
    pub(crate) fn trace_op(&mut self, code: u64, nodes: &[u32]) {
        self.trace.word(self.now.as_nanos());
        self.trace.word(11 | code << 8);
        for &n in nodes {
            self.trace.word(u64::from(n));
        }
    }

    /// Recounts every live view from the nodes' own member tables and compares with the
    /// incremental counts the invariants use. O(n²): for tests.
    pub fn verify_views(&self) -> Result<(), String> {
        let n = self.hosts.len() as u32;
        for s in 0..n {
            let name = &self.specs[s as usize].name;
            let counted = (0..n)
                .filter(|&o| self.hosts[o as usize].status == Status::Up)
                .filter_map(|o| self.nodes[o as usize].as_ref())
                .filter(|node| node.member(name).is_some_and(|m| m.state.is_member()))
                .count() as u32;
            if counted != self.views.alive_in(s) {
                return Err(format!(
                    "node {s}: member in {counted} live views, tracked {}",
                    self.views.alive_in(s)
                ));
            }
        }
        Ok(())
    }
}
