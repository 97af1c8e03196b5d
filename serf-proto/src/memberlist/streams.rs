//! Reliable streams: push-pull (join and anti-entropy), the stream fallback ping, and
//! messages too large for a datagram.
//!
//! The core names streams and speaks in whole frames; each frame carries the same
//! transforms as a datagram (label, checksum, compression, encryption). Every stream has a
//! deadline; when it passes the stream is aborted and counted as failed.
//!
//! A stream carries at most one frame each way; the core then ends it.
//!
//! Exchanges:
//! - push-pull: the initiator sends its state; the responder answers with its own, and
//!   both merge. The responder closes after answering.
//! - ping: the initiator sends a ping; the responder answers with an ack and closes.
//! - user message: the initiator sends it and closes. The core keeps the stream until
//!   the driver reports how it ended (or its deadline passes), so a lost message is
//!   counted (`stream_sends_failed`).

use super::delegate::{Candidate, JoinError};
use super::state::NodeState;
use super::timers::Timer;
use super::{Delegate, Event, JoinId, Memberlist, Pending};
use crate::log::LogMessage;
use crate::name::Name;
use crate::output::StreamEvent;
use crate::time::Instant;
use crate::wire::{Ack, BodyIter, ErrorReply, Message, PushNode, PushPull, WireMessage, WireState};
use bytes::Bytes;
use core::net::SocketAddr;

/// What a stream is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// We sent our state and wait for theirs; part of join `join` if any.
    PushPull { join: Option<u64> },
    /// We sent a fallback ping for probe `seq`.
    Ping { seq: u32 },
    /// We only send (a large user message) and close.
    SendOnly,
    /// A peer opened it; we wait for its first frame.
    Inbound,
}

#[derive(Debug)]
pub(crate) struct Stream {
    pub peer: SocketAddr,
    pub kind: StreamKind,
    /// An inbound stream that has not delivered a frame yet.
    pub idle: bool,
    /// A send-only stream we closed: kept to learn whether its message got through.
    pub closing: bool,
}

#[derive(Debug)]
pub(crate) struct JoinState {
    pub remaining: usize,
    pub joined: usize,
    pub failed: Vec<(SocketAddr, JoinError)>,
}

impl<D: Delegate> Memberlist<D> {
    /// Opens a stream to `to` (node `peer` if known) with the default deadline.
    pub(crate) fn open_stream(
        &mut self,
        now: Instant,
        to: SocketAddr,
        peer: Option<Name>,
        kind: StreamKind,
    ) -> u64 {
        let deadline = now + self.config.stream_timeout;
        self.open_stream_until(to, peer, kind, deadline)
    }

    /// Opens a stream to `to` (node `peer` if known) that fails at `deadline`.
    pub(crate) fn open_stream_until(
        &mut self,
        to: SocketAddr,
        peer: Option<Name>,
        kind: StreamKind,
        deadline: Instant,
    ) -> u64 {
        let id = self.next_stream;
        self.next_stream += 1;
        self.streams.insert(
            id,
            Stream {
                peer: to,
                kind,
                idle: false,
                closing: false,
            },
        );
        self.pending.push_back(Pending::Open {
            id,
            to,
            peer,
            deadline,
        });
        self.timers.schedule(deadline, Timer::Stream(id));
        id
    }

    pub(crate) fn register_inbound_stream(&mut self, now: Instant, from: SocketAddr) -> u64 {
        let id = self.next_stream;
        self.next_stream += 1;
        self.inbound_streams += 1;
        self.streams.insert(
            id,
            Stream {
                peer: from,
                kind: StreamKind::Inbound,
                idle: true,
                closing: false,
            },
        );
        self.timers
            .schedule(now + self.config.stream_timeout, Timer::Stream(id));
        id
    }

    /// Forgets a stream whose exchange is over and tells the driver to close it once
    /// what is queued is written.
    pub(crate) fn close_stream(&mut self, id: u64) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.closing {
            return;
        }
        if s.kind == StreamKind::SendOnly {
            // Its message is delivered only if the connection ends well: wait for the
            // driver's word (or the deadline) so a loss is counted.
            s.closing = true;
        } else {
            self.forget_stream(id);
        }
        self.pending.push_back(Pending::Close { id });
    }

    /// Forgets a stream and tells the driver to drop it at once, queued frames included.
    pub(crate) fn abort_stream(&mut self, id: u64) {
        if self.forget_stream(id) {
            self.pending.push_back(Pending::Abort { id });
        }
    }

    /// Removes a stream from the table; whether it was there.
    fn forget_stream(&mut self, id: u64) -> bool {
        match self.streams.remove(&id) {
            Some(s) => {
                if s.kind == StreamKind::Inbound {
                    self.inbound_streams -= 1;
                }
                true
            }
            None => false,
        }
    }

    /// Applies the transforms to a framed body. `None` if it exceeds `max_stream_frame`.
    pub(crate) fn seal_frame(&mut self, body: &[u8]) -> Option<Vec<u8>> {
        if body.len() > self.config.max_stream_frame {
            self.metrics.messages_too_large += 1;
            return None;
        }
        let mut frame = Vec::with_capacity(body.len() + self.transforms.overhead());
        let mut compressed = core::mem::take(&mut self.scratch.compressed);
        let r = self
            .transforms
            .seal(body, &mut self.rng, &mut compressed, &mut frame);
        self.scratch.compressed = compressed;
        match r {
            Ok(()) => Some(frame),
            Err(e) => {
                self.metrics.count_transform_error(e);
                None
            }
        }
    }

    /// Our whole state as a framed push-pull.
    fn encode_push_pull(&mut self, join: bool) -> Vec<u8> {
        let mut user = Vec::new();
        self.delegate.local_state(join, &mut user);
        let mut out = Vec::with_capacity(64 * self.members.len() + user.len() + 16);
        let nodes = self.members.iter().map(|e| PushNode {
            name: &e.node.name,
            addr: e.node.addr(),
            meta: e.node.meta(),
            incarnation: e.node.incarnation,
            state: e.node.state.to_wire(),
            versions: e.node.versions,
        });
        PushPull::encode(&mut out, join, nodes, &user);
        out
    }

    /// Starts a push-pull with `to` (member `peer` if known), as part of join `join` if
    /// any.
    pub(crate) fn start_push_pull(
        &mut self,
        now: Instant,
        to: SocketAddr,
        peer: Option<Name>,
        join: Option<u64>,
    ) {
        let body = self.encode_push_pull(join.is_some());
        let id = self.open_stream(now, to, peer, StreamKind::PushPull { join });
        match self.seal_frame(&body) {
            Some(frame) => self.pending.push_back(Pending::Frame { id, frame }),
            None => self.fail_stream(
                now,
                id,
                JoinError::BadAnswer("local state too large".into()),
                false,
            ),
        }
    }

    pub(crate) fn on_stream_event(&mut self, now: Instant, id: u64, event: StreamEvent<'_>) {
        let Some(stream) = self.streams.get(&id) else {
            // Ids are never reused: one we issued was closed or aborted, and the driver
            // reports what it saw since (harmless, not counted). A higher one was never
            // ours.
            if id >= self.next_stream {
                self.metrics.streams_unknown += 1;
            }
            return;
        };
        let (peer, kind) = (stream.peer, stream.kind);
        if stream.closing {
            self.on_send_ended(id, event);
            return;
        }
        match event {
            StreamEvent::Frame(frame) => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.idle = false;
                }
                self.metrics.frames_received += 1;
                let mut open = core::mem::take(&mut self.scratch.open);
                let max = self.config.max_stream_frame;
                match self.transforms.open(frame, &mut open, max) {
                    Ok(body) => self.handle_frame(now, id, peer, kind, body),
                    Err(e) => {
                        self.metrics.count_transform_error(e);
                        self.fail_stream(now, id, JoinError::BadAnswer(e.to_string()), false);
                    }
                }
                self.scratch.open = open;
            }
            StreamEvent::Closed | StreamEvent::Failed => {
                // A stream that only sends, or an inbound one, ends quietly; one that
                // waited for an answer failed.
                match (kind, event) {
                    (StreamKind::Inbound, StreamEvent::Closed) => self.close_stream(id),
                    (StreamKind::Inbound, _) => self.abort_stream(id),
                    _ => self.fail_stream(now, id, JoinError::Unreachable, false),
                }
            }
        }
    }

    pub(crate) fn on_stream_timeout(&mut self, now: Instant, id: u64) {
        match self.streams.get(&id) {
            // Not confirmed by its deadline: the message is as good as lost. The driver
            // closed it already; nothing more to ask.
            Some(s) if s.closing => self.send_failed(id),
            Some(_) => self.fail_stream(now, id, JoinError::Timeout, false),
            None => {}
        }
    }

    /// What the driver reports on a send-only stream after our close: an orderly close
    /// by the peer means it got the message; a failure means it probably did not.
    fn on_send_ended(&mut self, id: u64, event: StreamEvent<'_>) {
        match event {
            // One frame each way: a send-only stream expects no answer.
            StreamEvent::Frame(_) => self.metrics.messages_unexpected += 1,
            StreamEvent::Closed => {
                self.forget_stream(id);
            }
            StreamEvent::Failed => self.send_failed(id),
        }
    }

    fn send_failed(&mut self, id: u64) {
        self.metrics.streams_failed += 1;
        self.metrics.stream_sends_failed += 1;
        self.forget_stream(id);
    }

    /// Ends a stream that did not complete, and reports it to its join if any. With
    /// `flush`, what is queued (an error reply to the peer) is written before the close;
    /// otherwise the stream is aborted.
    fn fail_stream(&mut self, now: Instant, id: u64, why: JoinError, flush: bool) {
        let Some(s) = self.streams.get(&id) else {
            return;
        };
        let (peer, kind) = (s.peer, s.kind);
        self.metrics.streams_failed += 1;
        match kind {
            StreamKind::PushPull { join: Some(_) } => self.log(
                now,
                LogMessage::JoinFailed {
                    addr: peer,
                    reason: why.clone(),
                },
            ),
            StreamKind::PushPull { join: None } => self.log(
                now,
                LogMessage::PushPullFailed {
                    addr: peer,
                    reason: why.clone(),
                },
            ),
            _ => {}
        }
        if flush {
            self.close_stream(id);
        } else {
            self.abort_stream(id);
        }
        if let StreamKind::PushPull { join: Some(j) } = kind {
            if let Some(js) = self.joins.get_mut(&j) {
                js.remaining -= 1;
                js.failed.push((peer, why));
            }
            self.finish_join_if_done(j);
        }
    }

    /// Reports a join once every address has answered or failed.
    pub(crate) fn finish_join_if_done(&mut self, id: u64) {
        if self.joins.get(&id).is_some_and(|j| j.remaining == 0) {
            // Present: just checked.
            let j = self.joins.remove(&id).expect("join present");
            self.events.push_back(Event::JoinCompleted {
                id: JoinId(id),
                joined: j.joined,
                failed: j.failed,
            });
        }
    }

    fn handle_frame(
        &mut self,
        now: Instant,
        id: u64,
        peer: SocketAddr,
        kind: StreamKind,
        body: &[u8],
    ) {
        // A stream carries one message per frame.
        let decoded = BodyIter::new(body).next().map(|r| {
            r.and_then(|(ty, fields)| Message::decode(ty, fields, self.config.max_members))
        });
        let msg = match decoded {
            Some(Ok(Some(m))) => m,
            Some(Ok(None)) => {
                self.metrics.messages_unknown += 1;
                self.reply_error(id, "unknown message type");
                self.fail_stream(
                    now,
                    id,
                    JoinError::BadAnswer("unknown message type".into()),
                    true,
                );
                return;
            }
            Some(Err(e)) => {
                self.metrics.messages_malformed += 1;
                self.reply_error(id, "malformed message");
                self.fail_stream(now, id, JoinError::BadAnswer(e.to_string()), true);
                return;
            }
            None => {
                self.metrics.messages_malformed += 1;
                self.fail_stream(now, id, JoinError::BadAnswer("empty frame".into()), false);
                return;
            }
        };
        match (kind, msg) {
            (StreamKind::PushPull { join }, Message::PushPull(pp)) => {
                let ok = self.complete_push_pull(now, peer, &pp, join.is_some(), true);
                match (ok, join) {
                    (Ok(()), Some(j)) => {
                        if let Some(js) = self.joins.get_mut(&j) {
                            js.remaining -= 1;
                            js.joined += 1;
                        }
                        self.close_stream(id);
                        self.finish_join_if_done(j);
                    }
                    (Ok(()), None) => self.close_stream(id),
                    (Err(why), _) => self.fail_stream(now, id, JoinError::MergeRefused(why), false),
                }
            }
            (StreamKind::PushPull { .. }, Message::Error(e)) => {
                // The peer answered and closes: an orderly end of a failed exchange.
                let why = JoinError::Remote(e.message.to_string());
                self.fail_stream(now, id, why, true);
            }
            (StreamKind::Ping { seq }, Message::Ack(a)) => {
                if a.seq == seq {
                    self.on_stream_ping_ack(seq);
                }
                self.close_stream(id);
            }
            (StreamKind::Inbound, Message::PushPull(pp)) => {
                // Answer with our state first, as Go's responder does, then merge.
                let body = self.encode_push_pull(pp.join);
                if let Some(frame) = self.seal_frame(&body) {
                    self.pending.push_back(Pending::Frame { id, frame });
                }
                // A refusal is counted where the merge hook refused.
                let _ = self.complete_push_pull(now, peer, &pp, pp.join, false);
                self.close_stream(id);
            }
            (StreamKind::Inbound, Message::Ping(p)) => {
                if p.target.is_empty() || p.target == self.name.as_str() {
                    let mut payload = Vec::new();
                    self.delegate.ack_payload(&mut payload);
                    let ack = Ack {
                        seq: p.seq,
                        payload: &payload,
                    }
                    .to_vec();
                    if let Some(frame) = self.seal_frame(&ack) {
                        self.pending.push_back(Pending::Frame { id, frame });
                    }
                } else {
                    self.metrics.pings_wrong_target += 1;
                }
                self.close_stream(id);
            }
            (StreamKind::Inbound, Message::User(u)) => {
                self.events.push_back(Event::UserMessage {
                    from: peer,
                    payload: Bytes::copy_from_slice(u.payload),
                });
                self.close_stream(id);
            }
            (_, _) => {
                self.metrics.messages_unexpected += 1;
                self.reply_error(id, "unexpected message");
                self.fail_stream(
                    now,
                    id,
                    JoinError::BadAnswer("unexpected message".into()),
                    true,
                );
            }
        }
    }

    fn reply_error(&mut self, id: u64, message: &str) {
        if self
            .streams
            .get(&id)
            .is_some_and(|s| s.kind == StreamKind::Inbound)
        {
            let body = ErrorReply { message }.to_vec();
            if let Some(frame) = self.seal_frame(&body) {
                self.pending.push_back(Pending::Frame { id, frame });
            }
        }
    }

    /// Merges a remote push-pull: the merge hook for joins, the member states, then the
    /// layer above's state (Go: `mergeRemoteState`).
    fn complete_push_pull(
        &mut self,
        now: Instant,
        from: SocketAddr,
        pp: &PushPull<'_>,
        join: bool,
        initiated: bool,
    ) -> Result<(), String> {
        if join {
            let peers: Vec<Candidate<'_>> = pp
                .nodes()
                .map(|n| Candidate {
                    name: n.name,
                    addr: n.addr,
                    meta: n.meta,
                    incarnation: n.incarnation,
                    state: match n.state {
                        WireState::Alive => NodeState::Alive,
                        WireState::Suspect => NodeState::Suspect,
                        WireState::Dead => NodeState::Dead,
                        WireState::Left => NodeState::Left,
                    },
                    versions: n.versions,
                })
                .collect();
            if let Err(why) = self.delegate.notify_merge(&peers) {
                self.metrics.merges_refused += 1;
                self.log(
                    now,
                    LogMessage::MergeRefused {
                        addr: from,
                        reason: why.clone(),
                    },
                );
                return Err(why);
            }
        }
        self.metrics.push_pulls += 1;
        self.merge_push_pull(now, pp);
        if !pp.user_state.is_empty() {
            self.events.push_back(Event::RemoteState {
                join,
                initiated,
                state: Bytes::copy_from_slice(pp.user_state),
            });
        }
        Ok(())
    }
}
