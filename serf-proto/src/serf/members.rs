//! The member table of the Serf layer: members by name with their status, and what
//! memberlist events do to it (serf `serf.go`: `handleNodeJoin`, `handleNodeLeave`,
//! `handleNodeUpdate`).

use super::coordinate::Coordinate;
use super::core::*;
use super::member::{Member, MemberState, MemberStatus, NameSet, decode_tags};
use super::snapshot::Record;
use super::{Event, MemberEventKind};
use crate::memberlist::{self, JoinId};
use crate::name::Name;
use crate::rng::NodeRng;
use crate::time::Instant;
use core::net::SocketAddr;
use std::sync::Arc;

impl Core {
    // ---- member table -------------------------------------------------------------------

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.get(name).map(|m| &m.member)
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values().map(|m| &m.member)
    }

    pub fn member_state(&self, name: &str) -> Option<&MemberState> {
        self.members.get(name)
    }

    pub fn num_members(&self) -> usize {
        self.members.len()
    }

    pub fn num_alive(&self) -> usize {
        self.alive.len()
    }

    pub fn num_failed(&self) -> usize {
        self.failed.len()
    }

    pub fn num_left(&self) -> usize {
        self.left.len()
    }

    pub fn failed_names(&self) -> &NameSet {
        &self.failed
    }

    pub fn coordinate(&self) -> Option<&Coordinate> {
        self.coord.as_ref().map(|c| c.coordinate())
    }

    pub fn cached_coordinate(&self, name: &str) -> Option<&Coordinate> {
        if name == self.name.as_str() {
            return self.coordinate();
        }
        self.coord_cache.get(name)
    }

    pub fn coordinate_resets(&self) -> u64 {
        self.coord.as_ref().map_or(0, |c| c.resets)
    }

    /// Changes a member's status, keeping the alive, failed and left lists.
    pub(super) fn set_status(&mut self, name: &str, status: MemberStatus) {
        let Some(m) = self.members.get_mut(name) else {
            return;
        };
        let old = m.member.status;
        if old == status {
            return;
        }
        m.member.status = status;
        self.members_version += 1;
        let key = m.member.name.clone();
        match old {
            MemberStatus::Alive => self.alive.remove(&key),
            MemberStatus::Failed => self.failed.remove(&key),
            MemberStatus::Left => self.left.remove(&key),
            _ => false,
        };
        match status {
            MemberStatus::Alive => self.alive.insert(key),
            MemberStatus::Failed => self.failed.insert(key),
            MemberStatus::Left => self.left.insert(key),
            _ => false,
        };
    }

    /// Removes a member and reports it reaped (serf `eraseNode`). Never ourselves: a node
    /// that left keeps its own record, so it can report itself and join again.
    pub fn erase(&mut self, name: &str) {
        if name == self.name.as_str() {
            return;
        }
        self.set_status(name, MemberStatus::None);
        if let Some(m) = self.members.remove(name) {
            self.members_version += 1;
            self.coord_cache.remove(name);
            if let Some(c) = self.coord.as_mut() {
                c.forget(name);
            }
            self.metrics.members_reaped += 1;
            self.emit_member(MemberEventKind::Reap, m.member);
        }
    }

    /// Keeps the table bounded: the memberlist forgets dead members, but Serf keeps failed
    /// and left ones for a day, so names that keep appearing and dying (churn, or forged
    /// alive messages) would grow it without limit. Over the limit, the member gone the
    /// longest is reaped early.
    pub(super) fn evict_oldest_gone(&mut self) {
        let oldest = self
            .failed
            .iter()
            .chain(self.left.iter())
            .filter_map(|n| self.members.get(n.as_str()))
            .min_by_key(|m| (m.leave_time, m.member.name.clone()))
            .map(|m| m.member.name.clone());
        if let Some(name) = oldest {
            self.metrics.members_evicted += 1;
            self.erase(&name);
        }
    }

    /// Alive members other than us, `k` at random (by sampling: O(k) expected).
    pub fn random_alive_peers(&mut self, k: usize, seed: u64) -> Vec<SocketAddr> {
        let mut rng = NodeRng::new(seed);
        let n = self.alive.len();
        let mut picked: Vec<usize> = Vec::with_capacity(k);
        for _ in 0..3 * n {
            if picked.len() >= k || picked.len() + 1 >= n {
                break;
            }
            let i = rng.index(n);
            if picked.contains(&i) || *self.alive.get(i) == self.name {
                continue;
            }
            picked.push(i);
        }
        picked
            .into_iter()
            .filter_map(|i| self.members.get(self.alive.get(i).as_str()))
            .map(|m| m.member.addr)
            .collect()
    }

    pub fn retain_intents(&mut self, keep: impl Fn(&RecentIntent) -> bool) {
        self.recent_intents.retain(|_, i| keep(i));
    }

    pub fn persist(&mut self, r: Record) {
        if self.config.snapshot {
            self.persist.push_back(r);
        }
    }

    // ---- memberlist events --------------------------------------------------------------

    pub fn on_memberlist_event(&mut self, now: Instant, e: memberlist::Event, seed: u64) {
        use memberlist::Event as E;
        match e {
            E::NodeJoined(n) => self.on_node_join(now, &n),
            E::NodeLeft(n) => self.on_node_leave(now, &n),
            E::NodeUpdated(n) => self.on_node_update(&n),
            E::NameConflict { existing, other } => self.on_conflict(now, &existing, &other),
            E::UserMessage { from, payload } => self.handle_serf_message(now, from, &payload),
            E::PingComplete { node, rtt, payload } => {
                let mut rng = NodeRng::new(seed);
                self.on_ping_complete(&node, rtt, &payload, &mut rng)
            }
            E::RemoteState {
                join,
                initiated,
                state,
            } => self.merge_remote_state(join, initiated, &state),
            E::JoinCompleted { id, joined, failed } => {
                self.on_join_completed(now, id, joined, failed)
            }
            E::BroadcastDone { id } => {
                if self.leave == LeaveStage::Intent(id) {
                    self.leave_memberlist();
                }
            }
            E::LeaveCompleted { .. } => {
                if self.leave == LeaveStage::Memberlist {
                    self.leave = LeaveStage::Propagating;
                    let at = now + self.config.leave_propagate_delay;
                    self.schedule(at, SerfTimer::LeavePropagated);
                }
            }
        }
    }

    pub(super) fn member_from_node(&self, n: &memberlist::Node, status: MemberStatus) -> Member {
        let v = n.versions();
        Member {
            name: n.name().clone(),
            addr: n.addr(),
            tags: Arc::new(decode_tags(n.meta()).unwrap_or_default()),
            status,
            protocol: v,
        }
    }

    /// The memberlist reports a member alive (serf `handleNodeJoin`).
    pub(super) fn on_node_join(&mut self, now: Instant, n: &memberlist::Node) {
        let intent = self.recent_intents.get(n.name().as_str()).copied();
        let name = n.name().clone();
        let old = self.members.get(&name).map(|m| m.member.status);
        match old {
            None => {
                let mut ms = MemberState {
                    member: self.member_from_node(n, MemberStatus::None),
                    status_ltime: 0,
                    leave_time: None,
                };
                let mut status = MemberStatus::Alive;
                // An intent may have arrived before the memberlist's news.
                if let Some(i) = intent {
                    ms.status_ltime = i.ltime;
                    if i.leave {
                        status = MemberStatus::Leaving;
                    }
                }
                self.members.insert(name.clone(), ms);
                self.set_status(&name, status);
                if self.members.len() > self.config.memberlist.max_members {
                    self.evict_oldest_gone();
                }
            }
            Some(old) => {
                let flap = self.config.flap_timeout;
                let m = self.members.get_mut(&name).expect("present");
                if old == MemberStatus::Failed && m.leave_time.is_some_and(|t| now - t < flap) {
                    self.metrics.member_flaps += 1;
                }
                self.failed_recovered |= old == MemberStatus::Failed;
                let fresh = self.member_from_node(n, MemberStatus::None);
                self.members_version += 1;
                let m = self.members.get_mut(&name).expect("present");
                m.leave_time = None;
                m.member.addr = fresh.addr;
                m.member.tags = fresh.tags;
                m.member.protocol = fresh.protocol;
                self.set_status(&name, MemberStatus::Alive);
            }
        }
        let member = self.members[&name].member.clone();
        self.persist(Record::Alive {
            name: name.clone(),
            addr: member.addr,
        });
        self.emit_member(MemberEventKind::Join, member);
    }

    /// The memberlist reports a member dead or left (serf `handleNodeLeave`).
    ///
    /// Go tells a leave from a failure by the leave intent alone: a member whose intent
    /// has not reached us yet is failed, and stays failed until a push-pull brings the
    /// intent (up to 30 s; at 8 nodes one view in seven missed the intent that way,
    /// because the memberlist's leave overtakes it). The memberlist's own leave
    /// (`NodeState::Left`) comes only from the member itself, so it is a leave too.
    pub(super) fn on_node_leave(&mut self, now: Instant, n: &memberlist::Node) {
        let name = n.name().as_str();
        let Some(m) = self.members.get_mut(name) else {
            return;
        };
        let left = n.state() == memberlist::NodeState::Left;
        let (status, kind) = match m.member.status {
            MemberStatus::Leaving => (MemberStatus::Left, MemberEventKind::Leave),
            MemberStatus::Alive | MemberStatus::Failed if left => {
                (MemberStatus::Left, MemberEventKind::Leave)
            }
            MemberStatus::Alive => (MemberStatus::Failed, MemberEventKind::Failed),
            _ => return,
        };
        m.leave_time = Some(now);
        let key = m.member.name.clone();
        self.set_status(&key, status);
        let member = self.members[&key].member.clone();
        self.persist(Record::NotAlive { name: key });
        self.emit_member(kind, member);
        // Queries waiting on this member may be complete now.
        self.recheck_queries(now);
    }

    /// The memberlist reports new metadata (serf `handleNodeUpdate`).
    pub(super) fn on_node_update(&mut self, n: &memberlist::Node) {
        let fresh = self.member_from_node(n, MemberStatus::None);
        let Some(m) = self.members.get_mut(n.name().as_str()) else {
            return;
        };
        m.member.addr = fresh.addr;
        m.member.tags = fresh.tags;
        m.member.protocol = fresh.protocol;
        let member = m.member.clone();
        self.members_version += 1;
        self.emit_member(MemberEventKind::Update, member);
    }

    pub(super) fn on_ping_complete(
        &mut self,
        node: &Name,
        rtt: core::time::Duration,
        payload: &[u8],
        rng: &mut NodeRng,
    ) {
        let Some(client) = self.coord.as_mut() else {
            return;
        };
        let Ok(other) = Coordinate::decode(payload) else {
            self.metrics.coordinate_rejected += 1;
            return;
        };
        match client.update(node, &other, rtt, rng) {
            Ok(_) => {
                self.coord_cache.insert(node.clone(), other);
            }
            Err(_) => self.metrics.coordinate_rejected += 1,
        }
    }

    pub(super) fn on_join_completed(
        &mut self,
        now: Instant,
        id: JoinId,
        joined: usize,
        failed: Vec<(SocketAddr, memberlist::JoinError)>,
    ) {
        let Some(purpose) = self.joins.remove(&id.0) else {
            return;
        };
        match purpose {
            JoinPurpose::User { ignore_old } => {
                if ignore_old {
                    self.ignore_old_joins = self.ignore_old_joins.saturating_sub(1);
                }
                // A leave started since: our join intent would outrank the leave intent.
                if joined > 0 && self.may_act_on_its_own() {
                    self.broadcast_join(now);
                }
                self.events
                    .push_back(Event::JoinCompleted { id, joined, failed });
            }
            JoinPurpose::Snapshot => {
                if joined > 0 {
                    self.rejoin.clear();
                    if self.may_act_on_its_own() {
                        self.broadcast_join(now);
                    }
                } else {
                    self.next_rejoin();
                }
            }
            JoinPurpose::Reconnect | JoinPurpose::Seed => {}
        }
    }

    pub fn join_started(&mut self, _now: Instant, id: JoinId, purpose: JoinPurpose) {
        if let JoinPurpose::User { ignore_old: true } = purpose {
            self.ignore_old_joins += 1;
        }
        self.joins.insert(id.0, purpose);
    }
}
