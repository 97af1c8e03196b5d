//! Membership state transitions: alive, suspect, dead, refute, and the merge of a
//! push-pull (memberlist `state.go`: `aliveNode`, `suspectNode`, `deadNode`, `refute`,
//! `mergeState`).

use super::delegate::Candidate;
use super::state::{Entry, Meta, NEVER, Node, NodeState};
use super::suspicion::{self, Suspicion};
use super::timers::Timer;
use super::{Delegate, Event, Memberlist, OutMsg, Pending};
use crate::log::LogMessage;
use crate::name::Name;
use crate::time::Instant;
use crate::wire::{Alive, Dead, PushPull, Suspect, WireMessage, WireState};
use bytes::Bytes;
use core::net::SocketAddr;

/// The largest incarnation jump believed from one message. A member's incarnation only
/// grows by its own refutes and updates, so a message claiming more is forged or corrupt;
/// believing it would let one message push an incarnation to the end of its range, where
/// the member could never refute again.
pub(crate) const MAX_INCARNATION_JUMP: u32 = 1 << 20;

fn plausible(known: u32, claimed: u32) -> bool {
    claimed <= known.saturating_add(MAX_INCARNATION_JUMP)
}

/// A member's own leave message: a dead message from itself.
pub(crate) fn leave_message(node: &str, incarnation: u32) -> Vec<u8> {
    Dead {
        incarnation,
        node,
        from: node,
    }
    .to_vec()
}

impl<D: Delegate> Memberlist<D> {
    /// Queues a membership broadcast about `node`, replacing any older one about it.
    /// `urgent` news (a death or leave, a refutation) starts an early gossip round
    /// (`Config::eager_gossip`). An alive message about someone else waits for the
    /// ticker, so that it stays queued long enough to reach members joining at the same
    /// time (a 1,000-node join storm converged after up to 176 s otherwise); so does a
    /// suspicion: under 30% loss, eager suspicions cost 22% more bytes (suspicions churn
    /// there), while deaths and refutations cost none and halved the false failures.
    fn broadcast_about(&mut self, node: &str, framed: Vec<u8>, notify: Option<u64>, urgent: bool) {
        let before = self.broadcasts.dropped();
        self.broadcasts.push(
            Bytes::from(framed),
            Some(Name::from_str_unchecked(node)),
            notify,
        );
        self.metrics.broadcasts_dropped += self.broadcasts.dropped() - before;
        self.fresh_broadcast |= urgent;
    }

    /// An alive message. `authoritative` marks our own announcements (start, metadata
    /// update, rejoin), which are applied without refuting.
    pub(crate) fn handle_alive(&mut self, now: Instant, a: &Alive<'_>, authoritative: bool) {
        let is_self = a.node == self.name.as_str();
        // After leaving we ignore news about ourselves until we join again (Go: hasLeft).
        if is_self && self.left && !authoritative {
            return;
        }
        let [pmin, pmax, ..] = a.versions;
        if pmin == 0 || pmax == 0 || pmin > pmax || a.meta.len() > self.config.max_meta_size {
            self.metrics.alive_refused += 1;
            return;
        }
        if !is_self {
            let candidate = Candidate {
                name: a.node,
                addr: a.addr,
                meta: a.meta,
                incarnation: a.incarnation,
                state: NodeState::Alive,
                versions: a.versions,
            };
            if !self.delegate.notify_alive(&candidate) {
                self.metrics.alive_refused += 1;
                return;
            }
        }

        let mut fresh = false;
        let mut address_update = false;
        let i = match self.members.find(a.node) {
            Some(i) => {
                let e = self.members.at(i);
                if e.node.addr != a.addr {
                    let reclaimable = e.node.state == NodeState::Dead
                        && self
                            .config
                            .dead_node_reclaim_time
                            .is_some_and(|t| now - e.state_change > t);
                    if e.node.state == NodeState::Left || reclaimable {
                        address_update = true;
                    } else {
                        self.metrics.conflicts += 1;
                        let (node, mine) = (e.node.name.clone(), e.node.addr());
                        self.log(
                            now,
                            LogMessage::ConflictingAddress {
                                node,
                                mine,
                                theirs: a.addr,
                            },
                        );
                        let e = self.members.at(i);
                        let other = Node {
                            name: Name::from_str_unchecked(a.node),
                            addr: a.addr.into(),
                            meta: Meta::new(a.meta),
                            incarnation: a.incarnation,
                            state: NodeState::Alive,
                            versions: a.versions,
                        };
                        self.events.push_back(Event::NameConflict {
                            existing: e.node.clone(),
                            other,
                        });
                        return;
                    }
                }
                i
            }
            None => {
                if self.members.len() >= self.config.max_members {
                    self.metrics.members_refused += 1;
                    return;
                }
                fresh = true;
                // Inserted as dead so the transition below reports the join (Go does the
                // same), at a random position of the probe order.
                let entry = Entry {
                    node: Node {
                        name: Name::from_str_unchecked(a.node),
                        addr: a.addr.into(),
                        meta: Meta::default(),
                        incarnation: a.incarnation,
                        state: NodeState::Dead,
                        versions: a.versions,
                    },
                    state_change: now,
                    suspicion: None,
                    last_accused: NEVER,
                };
                self.members.insert_random(entry, &mut self.rng)
            }
        };

        let e = self.members.at(i);
        if !fresh && !authoritative && !plausible(e.node.incarnation, a.incarnation) {
            self.metrics.implausible += 1;
            return;
        }
        if !is_self && !fresh && !address_update && a.incarnation <= e.node.incarnation {
            self.maybe_accuse(now, i, a);
            return;
        }
        if is_self && a.incarnation < e.node.incarnation {
            return;
        }

        let e = self.members.at_mut(i);
        e.suspicion = None;
        let old_state = e.node.state;
        let meta_changed = e.node.meta.as_slice() != a.meta;

        if is_self && !authoritative {
            // Someone says we are alive at our incarnation, with other metadata: a stale
            // view after a restart with a new configuration. Refute unless identical.
            if a.incarnation == e.node.incarnation && !meta_changed && a.versions == self.versions {
                return;
            }
            self.refute(now, a.incarnation, "alive", None);
            return;
        }

        self.broadcast_about(a.node, a.to_vec(), None, false);
        let e = self.members.at_mut(i);
        e.node.versions = a.versions;
        e.node.incarnation = a.incarnation;
        if meta_changed {
            e.node.meta = Meta::new(a.meta);
        }
        e.node.addr = a.addr.into();
        self.members.set_state(i, NodeState::Alive, now);

        let node = self.members.at(i).node.clone();
        if old_state.is_dead_or_left() {
            self.events.push_back(Event::NodeJoined(node));
        } else if meta_changed {
            self.events.push_back(Event::NodeUpdated(node));
        }
    }

    /// A member keeps announcing an incarnation we already hold it suspect, dead or left
    /// at: it missed the news (e.g. restarted during a mass restart with its old
    /// incarnation forgotten, memberlist #311). Tell it directly, at most once per probe
    /// interval, so it refutes with a higher incarnation.
    fn maybe_accuse(&mut self, now: Instant, i: usize, a: &Alive<'_>) {
        let interval = self.config.probe_interval;
        let e = self.members.at_mut(i);
        if e.node.state == NodeState::Alive
            || e.node.addr != a.addr
            || e.accused_within(now, interval)
        {
            return;
        }
        e.last_accused = now;
        let (state, incarnation, addr) = (e.node.state, e.node.incarnation, e.node.addr());
        let node = e.node.name.clone();
        let framed = match state {
            NodeState::Suspect => Suspect {
                incarnation,
                node: &node,
                from: &self.name,
            }
            .to_vec(),
            NodeState::Dead => Dead {
                incarnation,
                node: &node,
                from: &self.name,
            }
            .to_vec(),
            NodeState::Left => leave_message(&node, incarnation),
            NodeState::Alive => return,
        };
        self.metrics.accusations_sent += 1;
        self.send_framed(addr, framed);
    }

    /// Sends one framed message straight to `to`, not by gossip.
    pub(crate) fn send_framed(&mut self, to: SocketAddr, framed: Vec<u8>) {
        self.pending.push_back(Pending::Packet {
            to,
            msg: OutMsg::Framed(Bytes::from(framed)),
        });
    }

    /// A suspect message: start or confirm a suspicion, or refute it if it is about us.
    /// `source` is the address of the datagram that carried it (none when it comes from
    /// our own probe or a push-pull).
    pub(crate) fn handle_suspect(
        &mut self,
        now: Instant,
        s: &Suspect<'_>,
        source: Option<SocketAddr>,
    ) {
        let Some(i) = self.members.find(s.node) else {
            return;
        };
        if let Some(source) = source {
            let e = self.members.at(i);
            if e.node.state.is_dead_or_left()
                && s.incarnation <= e.node.incarnation
                && s.node != self.name.as_str()
            {
                self.correct_stale_suspicion(now, i, source);
                return;
            }
        }
        let voter = s.from != s.node
            && self
                .members
                .get(s.from)
                .is_some_and(|f| matches!(f.node.state, NodeState::Alive | NodeState::Suspect));
        let e = self.members.at_mut(i);
        if s.incarnation < e.node.incarnation {
            return;
        }
        if !plausible(e.node.incarnation, s.incarnation) {
            self.metrics.implausible += 1;
            return;
        }
        if let Some(susp) = e.suspicion.as_mut() {
            // An independent confirmation shortens the timeout (Lifeguard §IV-B); re-gossip
            // it so others count it too. Only a member we hold alive or suspect, other than
            // the suspect, confirms: made-up names must not cut the timeout to its minimum.
            if voter && susp.confirm(s.from, now) {
                let (deadline, generation) = (susp.deadline, susp.generation);
                let name = e.node.name.clone();
                self.timers
                    .schedule(deadline, Timer::Suspicion(name, generation));
                self.broadcast_about(s.node, s.to_vec(), None, false);
            }
            return;
        }
        if e.node.state != NodeState::Alive {
            return;
        }
        if s.node == self.name.as_str() {
            self.refute(now, s.incarnation, "suspect", Some(s.from));
            return;
        }
        self.broadcast_about(s.node, s.to_vec(), None, false);
        self.metrics.suspicions += 1;

        let n = self.members.len();
        let mult = self.config.suspicion_mult;
        // Wanted confirmations: timing the nominal timeout two probe intervals short of the
        // multiplier. Without enough other members to confirm, expect none.
        let mut k = mult.saturating_sub(2);
        if (n as u64) < u64::from(k) + 2 || !self.config.lifeguard {
            k = 0;
        }
        let min = suspicion::suspicion_timeout(mult, n, self.config.probe_interval);
        let max = min.saturating_mul(self.config.suspicion_max_timeout_mult);
        let mut susp = Suspicion::new(Name::from_str_unchecked(s.from), k, min, max, now);
        self.suspicion_generation += 1;
        susp.generation = self.suspicion_generation;
        let deadline = susp.deadline;
        let e = self.members.at_mut(i);
        e.node.incarnation = s.incarnation;
        e.suspicion = Some(Box::new(susp));
        let name = e.node.name.clone();
        self.members.set_state(i, NodeState::Suspect, now);
        let generation = self
            .members
            .at(i)
            .suspicion
            .as_ref()
            .map_or(0, |s| s.generation);
        self.timers
            .schedule(deadline, Timer::Suspicion(name, generation));
    }

    /// A suspicion ran out: declare the member dead.
    pub(crate) fn on_suspicion_timeout(&mut self, now: Instant, name: &Name, generation: u64) {
        let Some(i) = self.members.find(name) else {
            return;
        };
        let e = self.members.at(i);
        let Some(susp) = e.suspicion.as_ref() else {
            return;
        };
        // A timer left by an earlier suspicion (refuted, then suspected again) must not cut
        // the new one short: confirmations only move the deadline earlier, so a timer firing
        // before the current deadline is stale.
        if susp.generation != generation
            || now < susp.deadline
            || e.node.state != NodeState::Suspect
        {
            return;
        }
        if susp.confirmations < susp.k {
            self.metrics.suspicions_degraded += 1;
        }
        self.metrics.deaths_declared += 1;
        let confirmations = susp.confirmations;
        self.log(
            now,
            LogMessage::MarkedDead {
                node: name.clone(),
                confirmations,
            },
        );
        let e = self.members.at(i);
        let incarnation = e.node.incarnation;
        let me = self.name.clone();
        self.handle_dead(
            now,
            &Dead {
                incarnation,
                node: name,
                from: &me,
            },
        );
    }

    /// A member gossips a suspicion of someone we already hold left or dead: it missed
    /// the news (a lost broadcast; at 8 nodes, one leave in thirty). Nobody else will
    /// confirm its suspicion, since every view that knows ignores it, so without a word
    /// it runs to its longest timeout (24 s on a LAN) and a leave ends as a failure.
    /// Tell the sender directly: for a member that left, its own leave message (only
    /// the member itself sends one, so it is final); for one we failed, our suspicion,
    /// which counts as an independent confirmation (Lifeguard still decides). Go's
    /// memberlist stays silent. Only to a member we hold alive, at most once per gossip
    /// interval per subject: one small datagram in answer to one, never to a stranger.
    fn correct_stale_suspicion(&mut self, now: Instant, i: usize, source: SocketAddr) {
        let interval = self.config.gossip_interval;
        if self.members.at(i).accused_within(now, interval) {
            return;
        }
        // A scan of the table, but at most once per gossip interval per subject.
        let live_source = self.members.iter().any(|m| {
            m.node.addr() == source && matches!(m.node.state, NodeState::Alive | NodeState::Suspect)
        });
        if !live_source {
            return;
        }
        let e = self.members.at_mut(i);
        e.last_accused = now;
        let (state, incarnation) = (e.node.state, e.node.incarnation);
        let node = e.node.name.clone();
        let framed = if state == NodeState::Left {
            leave_message(&node, incarnation)
        } else {
            Suspect {
                incarnation,
                node: &node,
                from: &self.name,
            }
            .to_vec()
        };
        self.metrics.suspicions_corrected += 1;
        self.send_framed(source, framed);
    }

    /// A dead message (or a leave, when `node == from`).
    pub(crate) fn handle_dead(&mut self, now: Instant, d: &Dead<'_>) {
        let Some(i) = self.members.find(d.node) else {
            return;
        };
        let e = self.members.at_mut(i);
        if d.incarnation < e.node.incarnation {
            return;
        }
        if !plausible(e.node.incarnation, d.incarnation) {
            self.metrics.implausible += 1;
            return;
        }
        e.suspicion = None;
        let leave = d.node == d.from;
        // A member we failed ourselves may still tell us it left: its leave raced our
        // suspicion, or we missed its broadcast and probed it after it stopped. Only the
        // member itself sends a leave, so take it (and pass it on, for views in the same
        // case): the layer above then reports a leave, not a failure that lasts until
        // the next push-pull.
        let upgrade = leave && e.node.state == NodeState::Dead && d.node != self.name.as_str();
        if e.node.state.is_dead_or_left() && !upgrade {
            return;
        }
        let mut notify = None;
        if d.node == self.name.as_str() {
            if !self.left {
                self.refute(now, d.incarnation, "dead", Some(d.from));
                return;
            }
            // Our own leave: report completion once this broadcast has gone out.
            notify = self.leave.as_ref().map(|l| l.notify);
        }
        self.broadcast_about(d.node, d.to_vec(), notify, true);
        let e = self.members.at_mut(i);
        e.node.incarnation = d.incarnation;
        let state = if leave {
            NodeState::Left
        } else {
            NodeState::Dead
        };
        self.members.set_state(i, state, now);
        let node = self.members.at(i).node.clone();
        self.events.push_back(Event::NodeLeft(node));
    }

    /// Someone accuses us: announce a higher incarnation (Go: `refute`). Having to refute
    /// is also a sign we may be slow, so our health score worsens.
    pub(crate) fn refute(
        &mut self,
        now: Instant,
        accused: u32,
        about: &'static str,
        from: Option<&str>,
    ) {
        // Saturating: accusations were checked for plausibility, so the end of the range is
        // out of reach in practice.
        let inc = self
            .incarnation
            .saturating_add(1)
            .max(accused.saturating_add(1));
        self.incarnation = inc;
        self.awareness.apply(1);
        self.metrics.refutes += 1;
        if self.logs_enabled(LogMessage::REFUTING_LEVEL) {
            let from = from.map(Name::from_str_unchecked);
            self.log(
                now,
                LogMessage::Refuting {
                    about,
                    from,
                    incarnation: inc,
                },
            );
        }
        if let Some(i) = self.members.find(&self.name) {
            self.members.at_mut(i).node.incarnation = inc;
            self.members.set_state(i, NodeState::Alive, now);
        }
        let alive = Alive {
            incarnation: inc,
            node: &self.name,
            addr: self.addr,
            meta: &self.meta,
            versions: self.versions,
        };
        let framed = alive.to_vec();
        let name = self.name.clone();
        self.broadcast_about(&name, framed, None, true);
    }

    /// Merges a remote node table (Go: `mergeState`). A remote "dead" only makes us
    /// suspect the member, so it gets a chance to refute.
    pub(crate) fn merge_push_pull(&mut self, now: Instant, pp: &PushPull<'_>) {
        let me = self.name.clone();
        for n in pp.nodes() {
            match n.state {
                WireState::Alive => self.handle_alive(
                    now,
                    &Alive {
                        incarnation: n.incarnation,
                        node: n.name,
                        addr: n.addr,
                        meta: n.meta,
                        versions: n.versions,
                    },
                    false,
                ),
                WireState::Left => self.handle_dead(
                    now,
                    &Dead {
                        incarnation: n.incarnation,
                        node: n.name,
                        from: n.name,
                    },
                ),
                WireState::Dead | WireState::Suspect => self.handle_suspect(
                    now,
                    &Suspect {
                        incarnation: n.incarnation,
                        node: n.name,
                        from: &me,
                    },
                    None,
                ),
            }
        }
    }
}
