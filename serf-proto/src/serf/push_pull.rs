//! The Serf layer's state in a push-pull: what we send, how we merge what we get, and
//! the merge checks a join passes through.

use super::clock::LamportTime;
use super::core::*;
use super::events::EventSlot;
use super::member::{Member, MemberStatus, decode_tags};
use super::messages::{PushPullState, SerfMessage};
use crate::memberlist::Candidate;
use crate::name::Name;
use std::collections::BTreeMap;
use std::sync::Arc;

impl Core {
    // ---- push-pull ----------------------------------------------------------------------

    /// Merges the Serf state of a push-pull (serf `MergeRemoteState`).
    pub(super) fn merge_remote_state(&mut self, join: bool, initiated: bool, state: &[u8]) {
        let Ok(Some(SerfMessage::PushPull(pp))) = SerfMessage::decode(state) else {
            self.metrics.messages_malformed += 1;
            return;
        };
        let now = self.last_now;
        if !self.clock.plausible(pp.ltime)
            || !self.event_clock.plausible(pp.event_ltime)
            || !self.query_clock.plausible(pp.query_ltime)
        {
            self.metrics.implausible_times += 1;
            return;
        }
        // Witness the remote clocks (one behind, as Go: they were incremented after use).
        if pp.ltime > 0 {
            self.clock.witness(pp.ltime - 1);
        }
        if pp.event_ltime > 0 {
            self.event_clock.witness(pp.event_ltime - 1);
        }
        if pp.query_ltime > 0 {
            self.query_clock.witness(pp.query_ltime - 1);
        }
        let status: BTreeMap<&str, LamportTime> = pp.status_ltimes().collect();
        let mut left = std::collections::BTreeSet::new();
        // Left members first, one past their status time: the leave must have come after
        // the join that put them on the status list.
        for name in pp.left_members() {
            left.insert(name);
            let lt = status.get(name).copied().unwrap_or(0).saturating_add(1);
            self.handle_leave_intent(now, lt, name, false);
        }
        for (name, lt) in &status {
            if !left.contains(name) {
                self.handle_join_intent(now, *lt, name);
            }
        }
        // Joining with "ignore old": do not deliver events from before the join.
        if join && initiated && self.ignore_old_joins > 0 && pp.event_ltime > self.event_min_time {
            self.event_min_time = pp.event_ltime;
        }
        for (lt, events) in pp.events() {
            for (name, payload) in events {
                self.handle_user_event(lt, name, payload, false);
            }
        }
    }

    pub(super) fn encode_local_state(&self, out: &mut Vec<u8>) {
        let mut status: Vec<(&str, LamportTime)> = self
            .members
            .values()
            .map(|m| (m.member.name.as_str(), m.status_ltime))
            .collect();
        status.sort_unstable();
        let mut left: Vec<&str> = self.left.iter().map(Name::as_str).collect();
        left.sort_unstable();
        // Recent events, newest first, within a quarter of the frame limit: the event
        // buffer can hold far more than a frame (512 times up to 256 events of 9 KiB), and a
        // push-pull that does not fit would break every join.
        let mut slots: Vec<&EventSlot> = self.event_buffer.iter().flatten().collect();
        slots.sort_unstable_by_key(|slot| core::cmp::Reverse(slot.ltime));
        let mut budget = self.config.memberlist.max_stream_frame / 4;
        let mut events = Vec::with_capacity(slots.len());
        for slot in slots {
            let size: usize = slot.events.iter().map(|(n, p)| n.len() + p.len() + 8).sum();
            if size > budget {
                break;
            }
            budget -= size;
            events.push((slot.ltime, &slot.events[..]));
        }
        PushPullState::encode(
            out,
            self.clock.time(),
            status.into_iter(),
            left.into_iter(),
            self.event_clock.time(),
            events.into_iter(),
            self.query_clock.time(),
        );
    }

    // ---- merge checks -------------------------------------------------------------------

    pub(super) fn check_candidates(&self, peers: &[Candidate<'_>]) -> Result<(), String> {
        for p in peers {
            if self.config.validate_node_names {
                validate_name(p.name)?;
            }
        }
        let Some(check) = &self.config.merge_check else {
            return Ok(());
        };
        let members: Vec<Member> = peers
            .iter()
            .map(|p| Member {
                name: Name::from_str_unchecked(p.name),
                addr: p.addr,
                tags: Arc::new(decode_tags(p.meta).unwrap_or_default()),
                status: MemberStatus::Alive,
                protocol: p.versions,
            })
            .collect();
        (check.0)(&members)
    }
}
