//! Streams (TCP) in virtual time.
//!
//! - **Open**: the peer's `accept_stream` runs one round trip after `OpenStream` (the
//!   handshake). Frames the opener sends before that are queued and delivered after the
//!   accept, in order.
//! - **Frames** arrive in order, each after the link delay plus one retransmission timeout
//!   per loss the link inflicts (TCP is late, never lossy).
//! - **Close**: the peer gets `Closed` after the frames sent before it. The closing end
//!   stays until the peer's close reaches it (or it fails), so a failure after a close
//!   is still reported: that is how a node learns a send-only stream lost its message.
//! - **Abort**: a reset. What is in flight either way is lost, and the peer's end fails
//!   when the reset reaches it (one way later).
//! - **Partitions**: a connect across a partition or cut fails after the connect timeout.
//!   When a partition or one-way cut starts, every stream it crosses (either way: TCP
//!   needs both) is cut, idle or not: frames and closes in flight are lost, and each end
//!   still open fails after the break timeout (the connect timeout for a stream still in
//!   its handshake). A heal before then does not save it.
//! - **Stops** (crash, or the end of a leave): the stopped node's ends are gone. Frames
//!   (and a close) it sent before stopping were on the wire and still arrive; then the
//!   other end fails after the break timeout. An open whose handshake has not completed
//!   when the opener stops never reaches the peer; a connect to a stopped host fails
//!   after the connect timeout; a refused accept fails after the reset's one-way delay.
//!
//! Every failed stream counts once in `streams_failed`.

use crate::engine::{Ev, Simulation};
use crate::node::SimNode;
use core::net::SocketAddr;
use serf_proto::{Instant, StreamEvent, StreamId};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct End {
    node: u32,
    life: u32,
    id: StreamId,
}

#[derive(Debug)]
struct Conn {
    /// Side 0 opened, side 1 accepted.
    ends: [Option<End>; 2],
    /// The node side 1 is on.
    peer: u32,
    /// Earliest delivery time per receiving side (keeps frames in order).
    next_delivery: [Instant; 2],
    /// A side that is finished: it closed, was told the stream failed, its node stopped,
    /// or (side 1) the accept will never happen.
    done: [bool; 2],
    /// A side whose failure is scheduled.
    failing: [bool; 2],
    /// A side that closed in an orderly way and waits for the peer's close.
    closing: [bool; 2],
    /// A side the peer's close reached.
    got_close: [bool; 2],
    /// Cut by a partition or an unreachable peer: what is in flight is lost.
    cut: bool,
    /// Counted in `streams_failed`.
    counted: bool,
}

/// Every open stream.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    conns: BTreeMap<u64, Conn>,
    /// (node, life, the node's stream id) -> (connection, side).
    by_end: BTreeMap<(u32, u32, u64), (u64, u8)>,
    next: u64,
}

impl Streams {
    /// Streams currently tracked (for tests and leak checks).
    pub fn len(&self) -> usize {
        self.conns.len()
    }
}

impl<N: SimNode> Simulation<N> {
    pub(crate) fn open_stream(&mut self, i: u32, id: StreamId, to: SocketAddr) {
        let now = self.now;
        self.net_counters.streams_opened += 1;
        let life = self.hosts[i as usize].life;
        let conn_id = self.streams.next;
        self.streams.next += 1;
        let j = self.host_at(to);
        let peer = j.unwrap_or(u32::MAX);
        let mut conn = Conn {
            ends: [Some(End { node: i, life, id }), None],
            peer,
            next_delivery: [now, now],
            done: [false, false],
            failing: [false, false],
            closing: [false, false],
            got_close: [false, false],
            cut: false,
            counted: false,
        };
        self.streams.by_end.insert((i, life, id.0), (conn_id, 0));
        let reachable = j.is_some_and(|j| {
            self.hosts[j as usize].running() && self.net.reachable(i, j) && self.net.reachable(j, i)
        });
        if reachable {
            let rtt = self.net.delay(i, peer) + self.net.delay(peer, i);
            let arrive = now + rtt;
            conn.next_delivery[1] = arrive;
            self.streams.conns.insert(conn_id, conn);
            self.push(arrive, Ev::ConnArrive { conn: conn_id });
        } else {
            // Nobody will accept it.
            conn.cut = true;
            conn.done[1] = true;
            self.streams.conns.insert(conn_id, conn);
            let at = now + self.net.stream.connect_timeout;
            self.fail_sides(conn_id, &[0], at);
        }
    }

    /// The node on the other side of `side`.
    fn other_node(conn: &Conn, side: u8) -> u32 {
        if side == 0 {
            conn.peer
        } else {
            conn.ends[0].map_or(u32::MAX, |e| e.node)
        }
    }

    pub(crate) fn send_frame(&mut self, i: u32, id: StreamId, data: &[u8]) {
        let t = &mut self.hosts[i as usize].traffic;
        t.frames += 1;
        t.frame_bytes += data.len() as u64;
        let life = self.hosts[i as usize].life;
        let Some(&(conn_id, side)) = self.streams.by_end.get(&(i, life, id.0)) else {
            return;
        };
        let Some(conn) = self.streams.conns.get(&conn_id) else {
            return;
        };
        if conn.cut {
            return;
        }
        let other = 1 - side;
        let peer = Self::other_node(conn, side);
        let peer_ok = (peer as usize) < self.hosts.len()
            && self.hosts[peer as usize].running()
            && conn.ends[usize::from(other)]
                .is_none_or(|e| e.life == self.hosts[peer as usize].life);
        if !peer_ok {
            // The peer process is gone: nothing acknowledges this frame. What the peer
            // sent before it stopped still arrives.
            let at = self.now + self.net.stream.break_timeout;
            self.fail_sides(conn_id, &[side], at);
            return;
        }
        if !self.net.reachable(i, peer) || !self.net.reachable(peer, i) {
            self.cut_conn(conn_id);
            return;
        }
        let d = self.net.frame_delay(self.now, i, peer, data.len());
        let conn = self
            .streams
            .conns
            .get_mut(&conn_id)
            .expect("looked up above");
        let at = (self.now + d).max(conn.next_delivery[usize::from(other)]);
        conn.next_delivery[usize::from(other)] = at;
        self.push(
            at,
            Ev::Frame {
                conn: conn_id,
                side: other,
                data: data.to_vec(),
            },
        );
    }

    /// Node `i` ends its side of stream `id`: in an orderly way (the peer gets `Closed`
    /// after the frames sent before it) or, with `abort`, by a reset.
    pub(crate) fn close_stream(&mut self, i: u32, id: StreamId, abort: bool) {
        let key = (i, self.hosts[i as usize].life, id.0);
        let Some(&(conn_id, side)) = self.streams.by_end.get(&key) else {
            return;
        };
        let Some(conn) = self.streams.conns.get_mut(&conn_id) else {
            return;
        };
        let (s, other) = (usize::from(side), 1 - side);
        if conn.closing[s] && !abort {
            return;
        }
        let reachable = !conn.cut && !conn.done[usize::from(other)];
        // A closed end stays to learn how the stream ended: from the peer's close, or a
        // failure (already scheduled, or to come while the peer is reachable).
        if !abort && !conn.got_close[s] && (reachable || conn.failing[s]) {
            conn.closing[s] = true;
        } else {
            conn.done[s] = true;
            self.streams.by_end.remove(&key);
        }
        if !reachable {
            self.maybe_forget(conn_id);
            return;
        }
        let peer = Self::other_node(conn, side);
        let d = self.net.delay(i, peer);
        if abort {
            // The reset overtakes nothing: what is in flight is lost with it (an open
            // still in its handshake never reaches the peer), and the peer's end fails.
            conn.cut = true;
            self.fail_sides(conn_id, &[other], self.now + d);
            self.maybe_forget(conn_id);
            return;
        }
        let at = (self.now + d).max(conn.next_delivery[usize::from(other)]);
        conn.next_delivery[usize::from(other)] = at;
        self.push(
            at,
            Ev::StreamClosed {
                conn: conn_id,
                side: other,
            },
        );
    }

    /// Schedules a failure at `at` for each of `sides` that is still open (established,
    /// or side 0 connecting), and counts the stream as failed once.
    fn fail_sides(&mut self, conn_id: u64, sides: &[u8], at: Instant) {
        let Some(conn) = self.streams.conns.get_mut(&conn_id) else {
            return;
        };
        let mut fail = [false; 2];
        for &side in sides {
            let s = usize::from(side);
            if !conn.done[s] && !conn.failing[s] && (s == 0 || conn.ends[1].is_some()) {
                conn.failing[s] = true;
                fail[s] = true;
            }
        }
        if (fail[0] || fail[1]) && !conn.counted {
            conn.counted = true;
            self.net_counters.streams_failed += 1;
        }
        for side in 0..2u8 {
            if fail[usize::from(side)] {
                self.push(
                    at,
                    Ev::StreamFailed {
                        conn: conn_id,
                        side,
                    },
                );
            }
        }
    }

    /// A partition or cut separates the stream's nodes: what is in flight is lost and
    /// the open ends fail after the break timeout (the connect timeout while the
    /// handshake is under way).
    fn cut_conn(&mut self, conn_id: u64) {
        let Some(conn) = self.streams.conns.get_mut(&conn_id) else {
            return;
        };
        if conn.cut {
            return;
        }
        conn.cut = true;
        if !conn.counted {
            // Failed even if no end is left to tell (both closed, or never accepted).
            conn.counted = true;
            self.net_counters.streams_failed += 1;
        }
        let timeout = if conn.ends[1].is_some() {
            self.net.stream.break_timeout
        } else {
            self.net.stream.connect_timeout
        };
        self.fail_sides(conn_id, &[0, 1], self.now + timeout);
    }

    /// A partition or cut just started: every stream it crosses is cut, idle or not.
    /// O(streams).
    pub(crate) fn cut_crossing_streams(&mut self) {
        let n = self.hosts.len() as u32;
        let crossing: Vec<u64> = self
            .streams
            .conns
            .iter()
            .filter(|(_, c)| !c.cut)
            .filter(|(_, c)| {
                let (a, b) = (c.ends[0].map_or(u32::MAX, |e| e.node), c.peer);
                a < n && b < n && !(self.net.reachable(a, b) && self.net.reachable(b, a))
            })
            .map(|(&id, _)| id)
            .collect();
        for conn_id in crossing {
            self.cut_conn(conn_id);
        }
    }

    fn maybe_forget(&mut self, conn_id: u64) {
        if self
            .streams
            .conns
            .get(&conn_id)
            .is_some_and(|c| c.done[0] && c.done[1])
        {
            self.streams.conns.remove(&conn_id);
        }
    }

    /// The node a stream event is for, to defer it when that node is slow.
    pub(crate) fn stream_target(&self, ev: &Ev) -> Option<u32> {
        let (conn_id, side) = match ev {
            Ev::ConnArrive { conn } => (*conn, 1),
            Ev::Frame { conn, side, .. }
            | Ev::StreamClosed { conn, side }
            | Ev::StreamFailed { conn, side } => (*conn, *side),
            _ => return None,
        };
        let conn = self.streams.conns.get(&conn_id)?;
        if side == 1 && conn.ends[1].is_none() {
            return Some(conn.peer);
        }
        conn.ends[usize::from(side)].map(|e| e.node)
    }

    /// The live end of `side`, if its node still runs the same life.
    fn live_end(&self, conn_id: u64, side: u8) -> Option<End> {
        let conn = self.streams.conns.get(&conn_id)?;
        let end = conn.ends[usize::from(side)]?;
        let h = &self.hosts[end.node as usize];
        (h.running() && h.life == end.life && !conn.done[usize::from(side)]).then_some(end)
    }

    /// The handshake completes at the peer: it accepts, refuses, or the open is lost.
    fn on_conn_arrive(&mut self, conn_id: u64) {
        let now = self.now;
        let Some(conn) = self.streams.conns.get(&conn_id) else {
            return;
        };
        let (opener, j, cut) = (conn.ends[0], conn.peer, conn.cut);
        let opener = opener.filter(|o| {
            let h = &self.hosts[o.node as usize];
            h.running() && h.life == o.life
        });
        let lost = |sim: &mut Self| {
            if let Some(c) = sim.streams.conns.get_mut(&conn_id) {
                c.done[1] = true;
            }
        };
        let Some(opener) = opener.filter(|_| !cut) else {
            // Cut meanwhile (the opener's failure is scheduled), or the opener stopped
            // before the handshake completed: the peer never sees it.
            lost(self);
            self.maybe_forget(conn_id);
            return;
        };
        let up = self.hosts[j as usize].running();
        if !up {
            // Nobody listens: the opener's connect times out.
            lost(self);
            let at = now + self.net.stream.connect_timeout;
            self.fail_sides(conn_id, &[0], at);
            return;
        }
        let from = self.specs[opener.node as usize].addr;
        let accepted = self.nodes[j as usize]
            .as_mut()
            .and_then(|n| n.accept_stream(now, from));
        self.trace.word(now.as_nanos());
        self.trace
            .word(12 | u64::from(opener.node) << 8 | u64::from(j) << 36);
        match accepted {
            Some(id) => {
                let life = self.hosts[j as usize].life;
                if let Some(c) = self.streams.conns.get_mut(&conn_id) {
                    c.ends[1] = Some(End { node: j, life, id });
                }
                self.streams.by_end.insert((j, life, id.0), (conn_id, 1));
            }
            None => {
                // Refused: a reset reaches the opener after one way.
                lost(self);
                let at = now + self.net.delay(j, opener.node);
                self.fail_sides(conn_id, &[0], at);
            }
        }
        self.drain(j);
    }

    pub(crate) fn on_stream_event(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::ConnArrive { conn } => self.on_conn_arrive(conn),
            Ev::Frame {
                conn: conn_id,
                side,
                data,
            } => {
                let Some(end) = self.live_end(conn_id, side) else {
                    return;
                };
                if self.streams.conns.get(&conn_id).is_some_and(|c| c.cut) {
                    return;
                }
                self.trace.word(now.as_nanos());
                self.trace
                    .word(13 | u64::from(end.node) << 8 | end.id.0 << 36);
                self.trace.bytes(&data);
                if let Some(n) = self.nodes[end.node as usize].as_mut() {
                    n.handle_stream(now, end.id, StreamEvent::Frame(&data));
                }
                self.drain(end.node);
            }
            Ev::StreamClosed {
                conn: conn_id,
                side,
            }
            | Ev::StreamFailed {
                conn: conn_id,
                side,
            } => {
                let failed = matches!(ev, Ev::StreamFailed { .. });
                let Some(end) = self.live_end(conn_id, side) else {
                    if failed && let Some(c) = self.streams.conns.get_mut(&conn_id) {
                        c.done[usize::from(side)] = true;
                    }
                    self.maybe_forget(conn_id);
                    return;
                };
                if !failed && self.streams.conns.get(&conn_id).is_some_and(|c| c.cut) {
                    // The close was lost with the cut; this end's failure is scheduled.
                    return;
                }
                if let Some(c) = self.streams.conns.get_mut(&conn_id) {
                    let s = usize::from(side);
                    c.got_close[s] |= !failed;
                    // A failed end is finished, and so is a closed one the peer's close
                    // reached.
                    if failed || c.closing[s] {
                        c.done[s] = true;
                        self.streams.by_end.remove(&(end.node, end.life, end.id.0));
                    }
                }
                self.trace.word(now.as_nanos());
                self.trace
                    .word(14 | u64::from(failed) << 4 | u64::from(end.node) << 8 | end.id.0 << 36);
                let event = if failed {
                    StreamEvent::Failed
                } else {
                    StreamEvent::Closed
                };
                if let Some(n) = self.nodes[end.node as usize].as_mut() {
                    n.handle_stream(now, end.id, event);
                }
                self.drain(end.node);
                self.maybe_forget(conn_id);
            }
            _ => {}
        }
    }

    /// Node `i` stopped: its ends are gone. What it sent before still arrives; then each
    /// other end still open fails after the break timeout.
    pub(crate) fn break_streams_of(&mut self, i: u32) {
        let keys: Vec<(u32, u32, u64)> = self
            .streams
            .by_end
            .range((i, 0, 0)..(i + 1, 0, 0))
            .map(|(k, _)| *k)
            .collect();
        let break_at = self.now + self.net.stream.break_timeout;
        for k in keys {
            let Some((conn_id, side)) = self.streams.by_end.remove(&k) else {
                continue;
            };
            let other = 1 - side;
            let Some(c) = self.streams.conns.get_mut(&conn_id) else {
                continue;
            };
            c.done[usize::from(side)] = true;
            let at = break_at.max(c.next_delivery[usize::from(other)]);
            self.fail_sides(conn_id, &[other], at);
            self.maybe_forget(conn_id);
        }
    }
}
