//! Streams (TCP) in virtual time.
//!
//! - **Open**: the peer's `accept_stream` runs one round trip after `OpenStream`. Frames
//!   the opener sends before that are queued and delivered after the accept, in order.
//! - **Frames** arrive in order, each after the link delay plus one retransmission timeout
//!   per loss the link inflicts (TCP is late, never lossy).
//! - **Close**: the peer gets `Closed` after the frames sent before it.
//! - **Failure**: connecting across a partition or to a stopped host fails after the
//!   connect timeout; a refused accept fails after the reset's one-way delay; an
//!   established stream whose frame meets a partition or a stopped peer, or whose peer
//!   crashes, fails on both ends after the break timeout.

use crate::engine::{Ev, Simulation, addr_of, index_of};
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
    /// A side that closed or failed.
    done: [bool; 2],
    broken: bool,
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
        let j = index_of(to, self.hosts.len());
        let peer = j.unwrap_or(u32::MAX);
        let mut conn = Conn {
            ends: [Some(End { node: i, life, id }), None],
            peer,
            next_delivery: [now, now],
            done: [false, false],
            broken: false,
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
            conn.broken = true;
            self.streams.conns.insert(conn_id, conn);
            let at = now + self.net.stream.connect_timeout;
            self.push(
                at,
                Ev::StreamFailed {
                    conn: conn_id,
                    side: 0,
                },
            );
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
        if conn.broken {
            return;
        }
        let other = 1 - side;
        let peer = if side == 0 {
            conn.peer
        } else {
            conn.ends[0].map_or(u32::MAX, |e| e.node)
        };
        let peer_ok = self.hosts[peer as usize].running()
            && conn.ends[usize::from(other)]
                .is_none_or(|e| e.life == self.hosts[peer as usize].life);
        if !peer_ok || !self.net.reachable(i, peer) {
            self.break_conn(conn_id);
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

    pub(crate) fn close_stream(&mut self, i: u32, id: StreamId) {
        let life = self.hosts[i as usize].life;
        let Some((conn_id, side)) = self.streams.by_end.remove(&(i, life, id.0)) else {
            return;
        };
        let Some(conn) = self.streams.conns.get_mut(&conn_id) else {
            return;
        };
        conn.done[usize::from(side)] = true;
        let other = 1 - side;
        if conn.broken || conn.done[usize::from(other)] {
            self.maybe_forget(conn_id);
            return;
        }
        let peer = if side == 0 {
            conn.peer
        } else {
            conn.ends[0].map_or(u32::MAX, |e| e.node)
        };
        let d = self.net.delay(i, peer);
        let conn = self
            .streams
            .conns
            .get_mut(&conn_id)
            .expect("looked up above");
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

    /// The stream's live ends learn it broke, after the break timeout.
    fn break_conn(&mut self, conn_id: u64) {
        let at = self.now + self.net.stream.break_timeout;
        let Some(conn) = self.streams.conns.get_mut(&conn_id) else {
            return;
        };
        if conn.broken {
            return;
        }
        conn.broken = true;
        self.net_counters.streams_failed += 1;
        let sides: Vec<u8> = (0..2u8)
            .filter(|&s| !conn.done[usize::from(s)] && conn.ends[usize::from(s)].is_some())
            .collect();
        for side in sides {
            self.push(
                at,
                Ev::StreamFailed {
                    conn: conn_id,
                    side,
                },
            );
        }
    }

    fn maybe_forget(&mut self, conn_id: u64) {
        if let Some(conn) = self.streams.conns.get(&conn_id) {
            let gone = |s: usize| conn.done[s] || conn.ends[s].is_none() && conn.broken;
            if gone(0) && gone(1) {
                self.streams.conns.remove(&conn_id);
            }
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

    pub(crate) fn on_stream_event(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::ConnArrive { conn: conn_id } => {
                let Some(conn) = self.streams.conns.get(&conn_id) else {
                    return;
                };
                let (opener, j) = (conn.ends[0], conn.peer);
                let Some(opener) = opener else { return };
                let up = self.hosts[j as usize].running();
                if !up || !self.net.reachable(opener.node, j) {
                    // Lost on the way: the opener's connect times out.
                    let at = now + self.net.stream.connect_timeout;
                    if let Some(c) = self.streams.conns.get_mut(&conn_id) {
                        c.broken = true;
                    }
                    self.net_counters.streams_failed += 1;
                    self.push(
                        at,
                        Ev::StreamFailed {
                            conn: conn_id,
                            side: 0,
                        },
                    );
                    return;
                }
                let accepted = self.nodes[j as usize]
                    .as_mut()
                    .and_then(|n| n.accept_stream(now, addr_of(opener.node)));
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
                        let at = now + self.net.delay(j, opener.node);
                        if let Some(c) = self.streams.conns.get_mut(&conn_id) {
                            c.broken = true;
                            c.done[1] = true;
                        }
                        self.net_counters.streams_failed += 1;
                        self.push(
                            at,
                            Ev::StreamFailed {
                                conn: conn_id,
                                side: 0,
                            },
                        );
                    }
                }
                self.drain(j);
            }
            Ev::Frame {
                conn: conn_id,
                side,
                data,
            } => {
                let Some(end) = self.live_end(conn_id, side) else {
                    return;
                };
                if self.streams.conns.get(&conn_id).is_some_and(|c| c.broken) {
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
                    self.maybe_forget(conn_id);
                    return;
                };
                if failed {
                    // A failed end is finished; the core forgets it.
                    if let Some(c) = self.streams.conns.get_mut(&conn_id) {
                        c.done[usize::from(side)] = true;
                    }
                    self.streams.by_end.remove(&(end.node, end.life, end.id.0));
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

    /// Node `i` stopped: its streams break; the other ends fail after the break timeout.
    pub(crate) fn break_streams_of(&mut self, i: u32) {
        let keys: Vec<(u32, u32, u64)> = self
            .streams
            .by_end
            .range((i, 0, 0)..(i + 1, 0, 0))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some((conn_id, side)) = self.streams.by_end.remove(&k) {
                if let Some(c) = self.streams.conns.get_mut(&conn_id) {
                    c.done[usize::from(side)] = true;
                }
                self.break_conn(conn_id);
                self.maybe_forget(conn_id);
            }
        }
    }
}
