//! User events: firing, Lamport-window deduplication, and coalescing of member and user
//! events (serf `serf.go` `UserEvent`/`handleUserEvent`, `coalesce_member.go`,
//! `coalesce_user.go`).

use super::clock::LamportTime;
use super::config::USER_EVENT_SIZE_HARD_LIMIT;
use super::core::{Action, Core, SerfTimer};
use super::member::Member;
use super::messages::UserEventMsg;
use super::snapshot::Record;
use super::{Event, MemberEventKind, SerfError, TIER_EVENT, UserEvent};
use crate::log::{Level, LogMessage};
use crate::name::Name;
use crate::time::Instant;
use bytes::Bytes;
use std::collections::BTreeMap;

/// Distinct events kept per Lamport time: bounds what a flood of events stamped with one
/// time can cost.
pub(crate) const MAX_EVENTS_PER_LTIME: usize = 256;

/// The events seen at one Lamport time (a slot of the dedup ring).
#[derive(Debug, Clone)]
pub(crate) struct EventSlot {
    pub ltime: LamportTime,
    pub events: Vec<(String, Bytes)>,
}

impl Core {
    /// Fires a user event (serf `UserEvent`).
    pub fn user_event(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        coalesce: bool,
    ) -> Result<(), SerfError> {
        let size = name.len() + payload.len();
        let limit = self
            .config
            .user_event_size_limit
            .min(USER_EVENT_SIZE_HARD_LIMIT);
        if size > limit {
            return Err(SerfError::EventTooLarge { size, limit });
        }
        let ltime = self.event_clock.time();
        self.event_clock.increment();
        let mut msg = Vec::new();
        UserEventMsg {
            ltime,
            name,
            payload,
            coalesce,
        }
        .encode(&mut msg);
        self.last_now = now;
        self.handle_user_event(ltime, name, payload, coalesce);
        self.outbox
            .push_back(Action::broadcast(TIER_EVENT, &msg, None));
        Ok(())
    }

    /// A user event arrived (or was fired here). Returns whether it was new, in which case
    /// it is delivered and should be re-gossiped.
    pub fn handle_user_event(
        &mut self,
        ltime: LamportTime,
        name: &str,
        payload: &[u8],
        coalesce: bool,
    ) -> bool {
        // No node sends more (the limit is checked on send), so more is forged or corrupt;
        // kept, it would be stored and spread to every member.
        if name.len() + payload.len() > USER_EVENT_SIZE_HARD_LIMIT {
            self.metrics.messages_oversized += 1;
            return false;
        }
        if !self.event_clock.plausible(ltime) {
            self.metrics.implausible_times += 1;
            return false;
        }
        self.event_clock.witness(ltime);
        if ltime < self.event_min_time {
            self.metrics.events_too_old += 1;
            return false;
        }
        let window = self.event_buffer.len() as LamportTime;
        let cur = self.event_clock.time();
        if cur > window && ltime < cur - window {
            self.metrics.events_too_old += 1;
            return false;
        }
        let idx = (ltime % window) as usize;
        let slot = &mut self.event_buffer[idx];
        match slot {
            Some(s) if s.ltime == ltime => {
                if s.events
                    .iter()
                    .any(|(n, p)| n.as_str() == name && p.as_ref() == payload)
                {
                    self.metrics.events_duplicate += 1;
                    return false;
                }
                if s.events.len() >= MAX_EVENTS_PER_LTIME {
                    self.metrics.events_time_full += 1;
                    return false;
                }
                s.events
                    .push((name.to_string(), Bytes::copy_from_slice(payload)));
            }
            _ => {
                *slot = Some(EventSlot {
                    ltime,
                    events: vec![(name.to_string(), Bytes::copy_from_slice(payload))],
                });
            }
        }
        self.metrics.events_delivered += 1;
        if self.logs_enabled(Level::Debug) {
            self.log(LogMessage::UserEventReceived {
                name: name.to_string(),
            });
        }
        if ltime > self.last_event_persisted {
            self.last_event_persisted = ltime;
            self.persist(Record::EventClock(ltime));
        }
        let event = UserEvent {
            ltime,
            name: name.to_string(),
            payload: Bytes::copy_from_slice(payload),
            coalesce,
        };
        match self.user_coalescer.as_mut() {
            Some(c) if coalesce => {
                let (batch, quiet, first) = c.coalesce(event);
                let now = self.last_now;
                if first {
                    let at = now + self.config.user_coalesce_period;
                    self.schedule(at, SerfTimer::UserFlush(batch, None));
                }
                let at = now + self.config.user_quiescent_period;
                self.schedule(at, SerfTimer::UserFlush(batch, Some(quiet)));
            }
            _ => self.events.push_back(Event::User(event)),
        }
        true
    }

    /// Queues a member event, through the coalescer when enabled.
    pub fn emit_member(&mut self, kind: MemberEventKind, member: Member) {
        let now = self.last_now;
        self.log(LogMessage::Member {
            event: kind,
            node: member.name.clone(),
            addr: member.addr,
        });
        match self.member_coalescer.as_mut() {
            Some(c) => {
                let (batch, quiet, first) = c.coalesce(kind, member);
                if first {
                    let at = now + self.config.coalesce_period;
                    self.schedule(at, SerfTimer::MemberFlush(batch, None));
                }
                let at = now + self.config.quiescent_period;
                self.schedule(at, SerfTimer::MemberFlush(batch, Some(quiet)));
            }
            None => self.events.push_back(Event::Member {
                kind,
                members: vec![member],
            }),
        }
    }

    pub fn on_member_flush(&mut self, batch: u64, quiet: Option<u64>) {
        if let Some(c) = self.member_coalescer.as_mut()
            && c.due(batch, quiet)
        {
            let out = c.flush();
            self.events.extend(out);
        }
    }

    pub fn on_user_flush(&mut self, batch: u64, quiet: Option<u64>) {
        if let Some(c) = self.user_coalescer.as_mut()
            && c.due(batch, quiet)
        {
            let out = c.flush();
            self.events.extend(out.into_iter().map(Event::User));
        }
    }
}

/// Batch bookkeeping shared by both coalescers: a batch ends at the first of its quantum
/// (started by its first event) or a quiet period (restarted by every event).
#[derive(Debug, Default)]
struct Batch {
    id: u64,
    quiet: u64,
    open: bool,
}

impl Batch {
    /// Records an event; returns `(batch, quiet seq, first of batch)`.
    fn touch(&mut self) -> (u64, u64, bool) {
        let first = !self.open;
        self.open = true;
        self.quiet += 1;
        (self.id, self.quiet, first)
    }

    fn due(&self, batch: u64, quiet: Option<u64>) -> bool {
        self.open && self.id == batch && quiet.is_none_or(|q| q == self.quiet)
    }

    fn close(&mut self) {
        self.open = false;
        self.id += 1;
    }
}

/// Keeps the latest event per member until a flush; drops repeats of what was last
/// delivered for a member, except updates (serf `memberEventCoalescer`).
#[derive(Debug, Default)]
pub(crate) struct MemberCoalescer {
    batch: Batch,
    latest: BTreeMap<Name, (MemberEventKind, Member)>,
    last: BTreeMap<Name, MemberEventKind>,
}

impl MemberCoalescer {
    fn coalesce(&mut self, kind: MemberEventKind, member: Member) -> (u64, u64, bool) {
        self.latest.insert(member.name.clone(), (kind, member));
        self.batch.touch()
    }

    fn due(&self, batch: u64, quiet: Option<u64>) -> bool {
        self.batch.due(batch, quiet)
    }

    fn flush(&mut self) -> Vec<Event> {
        self.batch.close();
        let mut by_kind: BTreeMap<MemberEventKind, Vec<Member>> = BTreeMap::new();
        for (name, (kind, member)) in core::mem::take(&mut self.latest) {
            if self.last.get(&name) == Some(&kind) && kind != MemberEventKind::Update {
                continue;
            }
            if kind == MemberEventKind::Reap {
                // Forgotten members need no memory of what we last said.
                self.last.remove(&name);
            } else {
                self.last.insert(name, kind);
            }
            by_kind.entry(kind).or_default().push(member);
        }
        by_kind
            .into_iter()
            .map(|(kind, members)| Event::Member { kind, members })
            .collect()
    }
}

/// Keeps, per event name, only the events with the newest Lamport time until a flush
/// (serf `userEventCoalescer`).
#[derive(Debug, Default)]
pub(crate) struct UserCoalescer {
    batch: Batch,
    latest: BTreeMap<String, (LamportTime, Vec<UserEvent>)>,
}

impl UserCoalescer {
    fn coalesce(&mut self, e: UserEvent) -> (u64, u64, bool) {
        match self.latest.get_mut(&e.name) {
            Some((lt, evs)) if *lt == e.ltime => evs.push(e),
            Some((lt, _)) if *lt > e.ltime => {}
            _ => {
                self.latest.insert(e.name.clone(), (e.ltime, vec![e]));
            }
        }
        self.batch.touch()
    }

    fn due(&self, batch: u64, quiet: Option<u64>) -> bool {
        self.batch.due(batch, quiet)
    }

    fn flush(&mut self) -> Vec<UserEvent> {
        self.batch.close();
        core::mem::take(&mut self.latest)
            .into_values()
            .flat_map(|(_, evs)| evs)
            .collect()
    }
}
