//! Datagram in and out: dispatching received messages, and assembling outgoing packets
//! with piggybacked broadcasts.

use super::{Delegate, Event, Memberlist, OutMsg};
use crate::wire::{Ack, BodyIter, IndirectPing, Message, Nack, Ping, Suspect, WireMessage};
use bytes::Bytes;
use core::net::SocketAddr;

/// Largest body accepted in a datagram, after decompression: a UDP datagram's maximum.
pub(crate) const MAX_DATAGRAM_BODY: usize = 65_536;

/// Most pings and indirect-ping requests handled from one datagram. Our own packets carry
/// one; more would let one datagram make us send a packet per request.
const MAX_REQUESTS_PER_DATAGRAM: usize = 4;

impl<D: Delegate> Memberlist<D> {
    /// Dispatches every message of a body. A malformed message is counted and skipped; a
    /// broken frame ends the body.
    pub(crate) fn handle_body(&mut self, now: crate::time::Instant, from: SocketAddr, body: &[u8]) {
        let mut requests = 0;
        for item in BodyIter::new(body) {
            let (ty, fields) = match item {
                Ok(v) => v,
                Err(_) => {
                    self.metrics.messages_malformed += 1;
                    break;
                }
            };
            // Push-pulls are only valid on streams, which do not come through here.
            match Message::decode(ty, fields, 0) {
                Ok(Some(msg @ (Message::Ping(_) | Message::IndirectPing(_)))) => {
                    requests += 1;
                    if requests > MAX_REQUESTS_PER_DATAGRAM {
                        self.metrics.requests_dropped += 1;
                    } else {
                        self.handle_message(now, from, msg);
                    }
                }
                Ok(Some(msg)) => self.handle_message(now, from, msg),
                Ok(None) => self.metrics.messages_unknown += 1,
                Err(_) => self.metrics.messages_malformed += 1,
            }
        }
    }

    fn handle_message(&mut self, now: crate::time::Instant, from: SocketAddr, msg: Message<'_>) {
        match msg {
            Message::Ping(p) => self.handle_ping(from, &p),
            Message::IndirectPing(p) => self.handle_indirect_ping(now, from, &p),
            Message::Ack(a) => self.handle_ack(now, &a),
            Message::Nack(n) => self.handle_nack(&n),
            Message::Suspect(s) => self.handle_suspect(now, &s, Some(from)),
            Message::Alive(a) => self.handle_alive(now, &a, false),
            Message::Dead(d) => self.handle_dead(now, &d),
            Message::User(u) => self.events.push_back(Event::UserMessage {
                from,
                payload: Bytes::copy_from_slice(u.payload),
            }),
            Message::PushPull(_) | Message::Error(_) => self.metrics.messages_unexpected += 1,
        }
    }

    /// Answers a ping addressed to us (or to anyone).
    fn handle_ping(&mut self, from: SocketAddr, p: &Ping<'_>) {
        if !p.target.is_empty() && p.target != self.name.as_str() {
            // Meant for a node that used our address before (restart under a new name).
            self.metrics.pings_wrong_target += 1;
            return;
        }
        let to = self.reply_address(from, p.source_addr, p.source_name);
        self.pending.push_back(super::Pending::Packet {
            to,
            msg: OutMsg::Ack {
                seq: p.seq,
                with_payload: true,
            },
        });
        if self.left {
            // We left and answer probes only while our leave spreads (Serf's propagate
            // delay). Whoever probes us now has not heard: tell it, rather than leave it
            // to find us gone and suspect us when we stop.
            let framed = super::membership::leave_message(&self.name, self.incarnation);
            self.send_framed(to, framed);
        }
    }

    /// Where to answer a request that came from `from` and asks for answers at `claimed`
    /// on behalf of member `name`: the claimed address only if it is the packet's source
    /// or the address we know for that member, else the packet's source.
    pub(crate) fn reply_address(
        &mut self,
        from: SocketAddr,
        claimed: Option<SocketAddr>,
        name: &str,
    ) -> SocketAddr {
        match claimed {
            None => from,
            Some(a) if a == from => a,
            Some(a) if self.members.holds_at(name, a) => a,
            Some(_) => {
                self.metrics.reply_address_mismatch += 1;
                from
            }
        }
    }

    /// Assembles one datagram into `buf`: the leading message, then as many broadcasts as
    /// fit. Returns false if there is nothing to send (a gossip round with empty queues).
    pub(crate) fn build_packet(&mut self, msg: Option<&OutMsg>, buf: &mut Vec<u8>) -> bool {
        let mut body = core::mem::take(&mut self.scratch.body);
        body.clear();
        if let Some(msg) = msg {
            self.encode_out_msg(msg, &mut body);
        }
        let budget = self.max_piggyback();
        if body.len() < budget {
            self.fill_broadcasts(&mut body, budget);
        }
        let send = !body.is_empty();
        if send {
            let mut compressed = core::mem::take(&mut self.scratch.compressed);
            match self
                .transforms
                .seal(&body, &mut self.rng, &mut compressed, buf)
            {
                Ok(()) => {
                    self.metrics.packets_sent += 1;
                    self.metrics.bytes_sent += buf.len() as u64;
                }
                Err(e) => {
                    // Cannot happen with a validated config; count rather than panic.
                    self.metrics.count_transform_error(e);
                    self.scratch.compressed = compressed;
                    self.scratch.body = body;
                    return false;
                }
            }
            self.scratch.compressed = compressed;
        }
        self.scratch.body = body;
        self.check_finished_broadcasts();
        send
    }

    fn encode_out_msg(&mut self, msg: &OutMsg, body: &mut Vec<u8>) {
        match msg {
            OutMsg::Ping { seq, target, buddy } => {
                Ping {
                    seq: *seq,
                    target,
                    source_addr: Some(self.addr),
                    source_name: &self.name,
                }
                .encode(body);
                if let Some(incarnation) = buddy {
                    // Lifeguard's buddy system: tell a suspected member directly so it can
                    // refute at once (memberlist state.go probeNode).
                    Suspect {
                        incarnation: *incarnation,
                        node: target,
                        from: &self.name,
                    }
                    .encode(body);
                }
            }
            OutMsg::IndirectPing {
                seq,
                target,
                target_addr,
                nack_timeout,
                nack,
            } => IndirectPing {
                seq: *seq,
                target,
                target_addr: *target_addr,
                nack: *nack,
                source_addr: Some(self.addr),
                source_name: &self.name,
                nack_timeout_ms: u32::try_from(nack_timeout.as_millis()).unwrap_or(u32::MAX),
            }
            .encode(body),
            OutMsg::Ack { seq, with_payload } => {
                let mut payload = core::mem::take(&mut self.scratch.payload);
                payload.clear();
                if *with_payload {
                    self.delegate.ack_payload(&mut payload);
                }
                Ack {
                    seq: *seq,
                    payload: &payload,
                }
                .encode(body);
                self.scratch.payload = payload;
            }
            OutMsg::Nack { seq } => Nack { seq: *seq }.encode(body),
            OutMsg::Framed(b) => body.extend_from_slice(b),
        }
    }

    /// Fills `body` up to `budget` bytes with broadcasts: membership first, but while the
    /// layer above has broadcasts queued and there is not room for everything, a share of
    /// the space is kept for them, and always enough for the next one (memberlist #299:
    /// otherwise membership churn starves user events). When the next user message and the
    /// next membership message cannot share a packet (a user message near packet size),
    /// packets alternate between them, so neither side can starve the other.
    fn fill_broadcasts(&mut self, body: &mut Vec<u8>, budget: usize) {
        let limit = self.retransmit_limit();
        let space = budget - body.len();
        let user_bytes: usize = self.user_queues.iter().map(|q| q.bytes()).sum();
        let share_on = self.config.user_broadcast_share > 0;
        let contended = share_on && user_bytes > 0 && user_bytes + self.broadcasts.bytes() > space;
        let reserve = if contended {
            let share = space * usize::from(self.config.user_broadcast_share) / 100;
            let user_head = self
                .user_queues
                .iter()
                .find_map(|q| q.head_len())
                .unwrap_or(0);
            let want = share.max(user_head).min(user_bytes).min(space);
            let member_head = self.broadcasts.head_len().unwrap_or(0);
            if member_head > 0 && want + member_head > space {
                self.fill_turn = !self.fill_turn;
                if self.fill_turn {
                    want
                } else {
                    share.min(space - member_head.min(space))
                }
            } else {
                want
            }
        } else {
            0
        };
        let mut used = self.broadcasts.fill(limit, space - reserve, body);
        for q in &mut self.user_queues {
            if used >= space {
                break;
            }
            used += q.fill(limit, space - used, body);
        }
    }

    /// Sends a framed message on a new stream, then closes it.
    pub(crate) fn send_on_new_stream(
        &mut self,
        now: crate::time::Instant,
        to: SocketAddr,
        framed: &[u8],
    ) -> Result<(), super::CommandError> {
        let Some(frame) = self.seal_frame(framed) else {
            return Err(super::CommandError::MessageTooLarge(
                framed.len(),
                self.config.max_stream_frame,
            ));
        };
        // Sent by address (a query's reply address, a random member's): the name is not
        // looked up.
        let id = self.open_stream(now, to, None, super::streams::StreamKind::SendOnly);
        self.pending.push_back(super::Pending::Frame { id, frame });
        self.close_stream(id);
        Ok(())
    }
}
