//! Join and leave intents, Lamport-ordered (serf `serf.go`: `handleNodeJoinIntent`,
//! `handleNodeLeaveIntent`), and this node's own graceful leave.

use super::clock::LamportTime;
use super::core::*;
use super::member::MemberStatus;
use super::messages::{JoinIntent, LeaveIntent};
use super::snapshot::Record;
use super::{Event, MemberEventKind, SerfError, SerfState, TIER_INTENT};
use crate::log::{Level, LogMessage};
use crate::name::Name;
use crate::time::Instant;

impl Core {
    // ---- intents ------------------------------------------------------------------------

    /// Announces our join at the current member clock (serf `broadcastJoin`).
    pub fn broadcast_join(&mut self, now: Instant) {
        let ltime = self.clock.time();
        let mut msg = Vec::new();
        let name = self.name.clone();
        JoinIntent { ltime, node: &name }.encode(&mut msg);
        self.clock.witness(ltime);
        self.handle_join_intent(now, ltime, &name);
        self.outbox
            .push_back(Action::broadcast(TIER_INTENT, &msg, None));
    }

    /// Buffers an intent about a member not known yet; returns whether it was news.
    pub(super) fn upsert_intent(
        &mut self,
        now: Instant,
        node: &str,
        leave: bool,
        ltime: LamportTime,
    ) -> bool {
        if let Some(i) = self.recent_intents.get_mut(node) {
            if ltime > i.ltime {
                *i = RecentIntent {
                    leave,
                    ltime,
                    at: now,
                };
                return true;
            }
            return false;
        }
        // Bounded: intents about members that never appear must not grow without limit.
        let cap = 1024.max(2 * self.members.len());
        if self.recent_intents.len() >= cap {
            self.metrics.intents_dropped += 1;
            return false;
        }
        self.metrics.intents_buffered += 1;
        self.recent_intents.insert(
            Name::from_str_unchecked(node),
            RecentIntent {
                leave,
                ltime,
                at: now,
            },
        );
        true
    }

    /// Returns whether to re-broadcast.
    pub fn handle_join_intent(&mut self, now: Instant, ltime: LamportTime, node: &str) -> bool {
        if !self.clock.plausible(ltime) {
            self.metrics.implausible_times += 1;
            return false;
        }
        if self.logs_enabled(Level::Debug) {
            self.log(LogMessage::IntentReceived {
                intent: "join",
                node: Name::from_str_unchecked(node),
            });
        }
        self.clock.witness(ltime);
        let Some(m) = self.members.get_mut(node) else {
            return self.upsert_intent(now, node, false, ltime);
        };
        if ltime <= m.status_ltime {
            return false;
        }
        // A join intent about us while we leave or have left (from an earlier life, or
        // forged): only our application's join brings us back (see `LeaveStage`). Taken,
        // it would mark us alive, and the memberlist leave would then record us failed.
        if node == self.name.as_str() && self.state != SerfState::Alive {
            return false;
        }
        m.status_ltime = ltime;
        // The leave it cancels must have been older.
        if m.member.status == MemberStatus::Leaving {
            let key = m.member.name.clone();
            self.set_status(&key, MemberStatus::Alive);
        }
        true
    }

    /// Returns whether to re-broadcast.
    pub fn handle_leave_intent(
        &mut self,
        now: Instant,
        ltime: LamportTime,
        node: &str,
        prune: bool,
    ) -> bool {
        if !self.clock.plausible(ltime) {
            self.metrics.implausible_times += 1;
            return false;
        }
        if self.logs_enabled(Level::Debug) {
            self.log(LogMessage::IntentReceived {
                intent: "leave",
                node: Name::from_str_unchecked(node),
            });
        }
        self.clock.witness(ltime);
        let Some(m) = self.members.get_mut(node) else {
            return self.upsert_intent(now, node, true, ltime);
        };
        if ltime <= m.status_ltime {
            return false;
        }
        // An old leave of ours while we are alive: refute with a join.
        if node == self.name.as_str() && self.state == SerfState::Alive {
            self.broadcast_join(now);
            return false;
        }
        // Always update the time, so two leaves for one member do not bounce for ever
        // (Consul #8179).
        m.status_ltime = ltime;
        let key = m.member.name.clone();
        match m.member.status {
            MemberStatus::Alive => {
                self.set_status(&key, MemberStatus::Leaving);
                // Its memberlist leave normally follows within a few gossip rounds. If
                // we miss that broadcast too (the retransmit limit is small in a small
                // cluster), we would find the member gone only when the probe order
                // reaches it: up to one probe interval per member. Probe it out of turn
                // once it has had time to leave (`leave_propagate_delay`, while it still
                // answers, with its leave).
                if !prune && key != self.name {
                    let at = now + self.config.leave_propagate_delay;
                    self.schedule(at, SerfTimer::LeavingCheck(key.clone(), ltime));
                }
            }
            MemberStatus::Failed => {
                self.set_status(&key, MemberStatus::Left);
                let member = self.members[&key].member.clone();
                self.emit_member(MemberEventKind::Leave, member);
            }
            MemberStatus::Leaving | MemberStatus::Left => {}
            MemberStatus::None => return false,
        }
        if prune {
            self.prune(now, &key);
        }
        true
    }

    /// Erases a force-left member; a member still leaving is given time to finish first.
    pub(super) fn prune(&mut self, now: Instant, name: &Name) {
        let Some(m) = self.members.get(name.as_str()) else {
            return;
        };
        if m.member.status == MemberStatus::Leaving {
            let at = now + self.config.broadcast_timeout + self.config.leave_propagate_delay;
            let ltime = m.status_ltime;
            self.schedule(at, SerfTimer::Prune(name.clone(), ltime));
        } else {
            self.erase(name);
        }
    }

    /// The delayed prune: only if nothing happened to the member since (it did not come
    /// back with a newer intent).
    pub fn delayed_prune(&mut self, name: &Name, ltime: LamportTime) {
        let unchanged = self.members.get(name.as_str()).is_some_and(|m| {
            m.status_ltime == ltime
                && matches!(m.member.status, MemberStatus::Leaving | MemberStatus::Left)
        });
        if unchanged {
            self.erase(name);
        }
    }

    pub fn force_leave(&mut self, now: Instant, node: &str, prune: bool) -> Result<(), SerfError> {
        if !self.members.contains_key(node) {
            return Err(SerfError::UnknownMember(node.to_string()));
        }
        let ltime = self.clock.time();
        self.clock.increment();
        let mut msg = Vec::new();
        LeaveIntent { ltime, node, prune }.encode(&mut msg);
        if self.handle_leave_intent(now, ltime, node, prune) {
            self.outbox
                .push_back(Action::broadcast(TIER_INTENT, &msg, None));
        }
        Ok(())
    }

    // ---- leave --------------------------------------------------------------------------

    /// Starts a graceful leave (serf `Leave`).
    pub fn leave(&mut self, now: Instant) -> Result<(), SerfError> {
        match self.state {
            // Whoever asks gets the same answer as the first: a completion.
            SerfState::Left => {
                self.events.push_back(Event::LeaveCompleted);
                return Ok(());
            }
            SerfState::Leaving => return Ok(()),
            SerfState::Shutdown => return Err(SerfError::Shutdown),
            SerfState::Alive => {}
        }
        self.state = SerfState::Leaving;
        self.persist(Record::Leave);
        let ltime = self.clock.time();
        self.clock.increment();
        let name = self.name.clone();
        let mut msg = Vec::new();
        LeaveIntent {
            ltime,
            node: &name,
            prune: false,
        }
        .encode(&mut msg);
        self.handle_leave_intent(now, ltime, &name, false);
        // A join in flight will bring members that must hear the intent; without it
        // they would learn of us from the join and then see us fail, not leave.
        let others = self.alive.iter().any(|n| *n != self.name) || !self.joins.is_empty();
        if others {
            let notify = self.next_notify();
            self.leave = LeaveStage::Intent(notify);
            self.outbox
                .push_back(Action::broadcast(TIER_INTENT, &msg, Some(notify)));
            // Go waits until the intent has been sent its full count (or the broadcast
            // timeout), so views mark us leaving before the memberlist reports us gone.
            // Gossiped eagerly, the intent crosses the cluster in its first rounds and
            // its receivers' (milliseconds on a LAN): two eager gaps are plenty, and the
            // rest of its count goes out meanwhile. (Sending both at once was faster
            // still, but a view that missed one then mostly missed both, being in the same
            // packets, and had no leaving member to check on: at 8 nodes the slowest view
            // took 12 s.)
            let wait = match self.config.memberlist.eager_gossip {
                Some(gap) => gap * 2,
                None => self.config.broadcast_timeout,
            };
            self.schedule(now + wait, SerfTimer::LeaveIntentTimeout(notify));
        } else {
            self.leave_memberlist();
        }
        Ok(())
    }

    pub fn leave_memberlist(&mut self) {
        self.leave = LeaveStage::Memberlist;
        self.outbox.push_back(Action::MemberlistLeave);
    }

    pub fn leave_done(&mut self) {
        self.leave = LeaveStage::None;
        if self.state == SerfState::Leaving {
            self.state = SerfState::Left;
            self.events.push_back(Event::LeaveCompleted);
        }
    }
}
