//! The failure detector: probe cycle, indirect probes with nacks, the stream fallback,
//! awareness; and the choice of gossip and push-pull partners.
//!
//! Follows memberlist `state.go` (`probe`, `probeNode`, `handleIndirectPing`, `gossip`,
//! `pushPull`), with Go's blocking goroutine turned into timers:
//!
//! - `ProbeTimeout(seq)` at `start + probe_timeout` ends the direct phase;
//! - `ProbeEnd(seq)` at `start + probe_interval * (health + 1)` decides the probe.
//!
//! A probe tick that fires while a probe runs is remembered and starts the next probe as
//! soon as this one ends, as Go's buffered ticker does.

use super::timers::Timer;
use super::{Delegate, Event, Memberlist, NodeState, OutMsg, Pending};
use crate::log::LogMessage;
use crate::name::Name;
use crate::time::Instant;
use crate::wire::{Ack, IndirectPing, Nack, Ping, Suspect, WireMessage};
use bytes::Bytes;
use core::net::SocketAddr;

/// The probe in progress.
#[derive(Debug)]
pub(crate) struct ActiveProbe {
    pub target: Name,
    pub target_addr: SocketAddr,
    /// The target's incarnation when the probe started; a failed probe suspects it.
    pub incarnation: u32,
    pub seq: u32,
    pub started: Instant,
    /// Indirect pings (and the stream ping) went out: later acks carry no RTT sample.
    pub indirect: bool,
    pub expected_nacks: u32,
    pub nacks: u32,
    pub stream: Option<u64>,
    pub stream_acked: bool,
}

/// An indirect probe we run on someone's behalf.
#[derive(Debug)]
pub(crate) struct Relay {
    pub requester_seq: u32,
    pub reply_to: SocketAddr,
    /// A nack is wanted and not sent yet.
    pub nack: bool,
}

impl<D: Delegate> Memberlist<D> {
    pub(crate) fn on_probe_tick(&mut self, now: Instant) {
        if self.probe.is_some() {
            self.probe_tick_pending = true;
        } else {
            self.start_probe(now);
        }
    }

    /// Picks the next member in the round-robin order and pings it.
    fn start_probe(&mut self, now: Instant) {
        // Finish the current pass, then at most one full pass after a reset. (Go counts the
        // wrap-around itself as a check, which wastes the tick whenever the pass ends on
        // ourselves: every other tick in a two-node cluster.)
        let mut wrapped = false;
        let asked = self.probe_next.take().and_then(|name| {
            let i = self.members.find(&name)?;
            (!self.members.at(i).node.state.is_dead_or_left()).then_some(i)
        });
        let i = if let Some(i) = asked {
            i
        } else {
            loop {
                if self.probe_index >= self.members.len() {
                    if wrapped {
                        return;
                    }
                    self.reset_members(now);
                    self.probe_index = 0;
                    wrapped = true;
                    continue;
                }
                let i = self.probe_index;
                self.probe_index += 1;
                let e = self.members.at(i);
                if e.node.name != self.name && !e.node.state.is_dead_or_left() {
                    break i;
                }
            }
        };
        let e = self.members.at(i);
        let (target, target_addr, incarnation) =
            (e.node.name.clone(), e.node.addr(), e.node.incarnation);
        let buddy =
            (self.config.lifeguard && e.node.state == NodeState::Suspect).then_some(incarnation);
        let seq = self.next_seq();
        let window = self.awareness.scale(self.config.probe_interval);
        self.metrics.probes += 1;
        self.pending.push_back(Pending::Packet {
            to: target_addr,
            msg: OutMsg::Ping {
                seq,
                target: target.clone(),
                buddy,
            },
        });
        self.timers
            .schedule(now + self.config.probe_timeout, Timer::ProbeTimeout(seq));
        self.timers.schedule(now + window, Timer::ProbeEnd(seq));
        self.probe = Some(ActiveProbe {
            target,
            target_addr,
            incarnation,
            seq,
            started: now,
            indirect: false,
            expected_nacks: 0,
            nacks: 0,
            stream: None,
            stream_acked: false,
        });
    }

    /// End of a full pass: forget members dead or left for longer than
    /// `gossip_to_the_dead_time`, and reshuffle (Go: `resetNodes`). We never forget
    /// ourselves, so a node that left can rejoin.
    fn reset_members(&mut self, now: Instant) {
        let keep_dead = self.config.gossip_to_the_dead_time;
        let me = self.name.clone();
        let mut removed = Vec::new();
        self.members.retain_and_shuffle(
            |e| {
                e.node.state.is_dead_or_left()
                    && e.node.name != me
                    && now - e.state_change > keep_dead
            },
            &mut self.rng,
            &mut removed,
        );
    }

    /// The direct phase is over without an ack: ask others, and try a stream.
    pub(crate) fn on_probe_timeout(&mut self, now: Instant, seq: u32) {
        let Some(p) = self.probe.as_ref() else { return };
        if p.seq != seq || p.indirect {
            return;
        }
        let (target, target_addr) = (p.target.clone(), p.target_addr);
        let window_end = p.started + self.awareness.scale(self.config.probe_interval);
        self.log(
            now,
            LogMessage::ProbeTimedOut {
                node: target.clone(),
            },
        );
        // Ask for nacks early enough to arrive within our window: Go's intermediaries wait a
        // full probe_timeout, which with LAN defaults (500 ms into a 1 s window) always lands
        // after the window, so every probe of a dead member wrongly raised our health score.
        let nack_timeout = (window_end - now).mul_f64(0.8);
        let k = self.config.indirect_checks;
        let me = self.name.clone();
        let mut picks = core::mem::take(&mut self.scratch.picks);
        self.random_members(k, &mut picks, |e| {
            e.node.state == NodeState::Alive && e.node.name != me && e.node.name != target
        });
        let mut expected = 0;
        for &i in &picks {
            let peer = self.members.at(i as usize).node.addr();
            self.pending.push_back(Pending::Packet {
                to: peer,
                msg: OutMsg::IndirectPing {
                    seq,
                    target: target.clone(),
                    target_addr,
                    nack_timeout,
                    nack: self.config.lifeguard,
                },
            });
            if self.config.lifeguard {
                expected += 1;
            }
        }
        self.metrics.indirect_probes_sent += picks.len() as u64;
        self.scratch.picks = picks;
        let stream = if self.config.disable_stream_pings {
            None
        } else {
            // The stream fallback shares the probe window as its deadline (Go:
            // sendPingAndWaitForAck(deadline)).
            let id = self.open_stream_until(
                target_addr,
                Some(target.clone()),
                super::streams::StreamKind::Ping { seq },
                window_end,
            );
            let ping = Ping {
                seq,
                target: &target,
                source_addr: Some(self.addr),
                source_name: &self.name,
            }
            .to_vec();
            match self.seal_frame(&ping) {
                Some(frame) => {
                    self.pending.push_back(Pending::Frame { id, frame });
                    Some(id)
                }
                None => None,
            }
        };
        if let Some(p) = self.probe.as_mut() {
            p.indirect = true;
            p.expected_nacks = expected;
            p.stream = stream;
        }
    }

    /// The probe window is over: the probe succeeded over the stream, or the target is
    /// suspected.
    pub(crate) fn on_probe_end(&mut self, now: Instant, seq: u32) {
        let Some(p) = self.probe.as_ref() else { return };
        if p.seq != seq {
            return;
        }
        if p.stream_acked {
            // "Was able to connect over TCP but UDP probes failed": the network may be
            // misconfigured, but the member is alive.
            self.metrics.probes_stream_only += 1;
            let node = p.target.clone();
            self.log(now, LogMessage::UdpProbesFailing { node });
            self.finish_probe(now, -1);
            return;
        }
        // Lifeguard: missing nacks mean *we* may be the problem; without nack-capable
        // peers any failure counts against us.
        let delta = if p.expected_nacks > 0 {
            p.expected_nacks.saturating_sub(p.nacks) as i32
        } else {
            1
        };
        let (target, incarnation) = (p.target.clone(), p.incarnation);
        self.metrics.probes_failed += 1;
        self.log(
            now,
            LogMessage::SuspectNoAck {
                node: target.clone(),
            },
        );
        let me = self.name.clone();
        self.handle_suspect(
            now,
            &Suspect {
                incarnation,
                node: &target,
                from: &me,
            },
            None,
        );
        self.finish_probe(now, delta);
    }

    fn finish_probe(&mut self, now: Instant, awareness_delta: i32) {
        self.awareness.apply(awareness_delta);
        if let Some(p) = self.probe.take()
            && let Some(id) = p.stream
            && self.streams.contains_key(&id)
        {
            // The window is over without an answer on the stream: give up on it.
            self.abort_stream(id);
        }
        if core::mem::take(&mut self.probe_tick_pending) {
            self.start_probe(now);
        }
    }

    /// An ack: ends our probe, or is forwarded for an indirect probe we relay.
    pub(crate) fn handle_ack(&mut self, now: Instant, a: &Ack<'_>) {
        if let Some(relay) = self.relays.remove(&a.seq) {
            self.pending.push_back(Pending::Packet {
                to: relay.reply_to,
                msg: OutMsg::Ack {
                    seq: relay.requester_seq,
                    with_payload: false,
                },
            });
            return;
        }
        let Some(p) = self.probe.as_ref() else { return };
        if p.seq != a.seq {
            return;
        }
        if !p.indirect {
            // Only direct acks measure the round trip (Go: NotifyPingComplete).
            self.events.push_back(Event::PingComplete {
                node: p.target.clone(),
                rtt: now - p.started,
                payload: Bytes::copy_from_slice(a.payload),
            });
        }
        self.finish_probe(now, -1);
    }

    /// A stream ping was answered.
    pub(crate) fn on_stream_ping_ack(&mut self, seq: u32) {
        if let Some(p) = self.probe.as_mut()
            && p.seq == seq
        {
            p.stream_acked = true;
        }
    }

    pub(crate) fn handle_nack(&mut self, n: &Nack) {
        if let Some(p) = self.probe.as_mut()
            && p.seq == n.seq
        {
            p.nacks += 1;
            self.metrics.nacks_received += 1;
        }
    }

    /// Probe a member for someone else and report back: forward the ack, or send a nack if
    /// asked and none came in time.
    pub(crate) fn handle_indirect_ping(
        &mut self,
        now: Instant,
        from: SocketAddr,
        p: &IndirectPing<'_>,
    ) {
        const MAX_RELAYS: usize = 1024;
        if self.relays.len() >= MAX_RELAYS {
            return;
        }
        // Only ping members we know at that address: a request must not make us ping
        // any host it names.
        if !self.members.holds_at(p.target, p.target_addr) {
            self.metrics.indirect_unknown_target += 1;
            return;
        }
        let reply_to = self.reply_address(from, p.source_addr, p.source_name);
        let seq = self.next_seq();
        self.relays.insert(
            seq,
            Relay {
                requester_seq: p.seq,
                reply_to,
                nack: p.nack,
            },
        );
        self.metrics.indirect_probes_relayed += 1;
        self.pending.push_back(Pending::Packet {
            to: p.target_addr,
            msg: OutMsg::Ping {
                seq,
                target: Name::from_str_unchecked(p.target),
                buddy: None,
            },
        });
        let timeout = self.config.probe_timeout;
        let nack_after = match p.nack_timeout_ms {
            0 => timeout,
            ms => timeout.min(core::time::Duration::from_millis(u64::from(ms))),
        };
        if p.nack {
            self.timers
                .schedule(now + nack_after, Timer::RelayNack(seq));
        }
        self.timers.schedule(now + timeout, Timer::RelayExpiry(seq));
    }

    pub(crate) fn on_relay_nack(&mut self, seq: u32) {
        if let Some(relay) = self.relays.get_mut(&seq)
            && core::mem::take(&mut relay.nack)
        {
            let (to, seq) = (relay.reply_to, relay.requester_seq);
            self.pending.push_back(Pending::Packet {
                to,
                msg: OutMsg::Nack { seq },
            });
        }
    }

    /// Gossip round: queue a broadcast-only datagram to `gossip_nodes` random members
    /// (alive, suspect, or dead recently enough to hear the news and refute).
    pub(crate) fn on_gossip_tick(&mut self, now: Instant) {
        self.fresh_broadcast = false;
        if !self.has_broadcasts() {
            return;
        }
        let me = self.name.clone();
        let dead_window = self.config.gossip_to_the_dead_time;
        let mut picks = core::mem::take(&mut self.scratch.picks);
        self.random_members(self.config.gossip_nodes, &mut picks, |e| {
            e.node.name != me
                && match e.node.state {
                    NodeState::Alive | NodeState::Suspect => true,
                    NodeState::Dead => now - e.state_change <= dead_window,
                    NodeState::Left => false,
                }
        });
        for &i in &picks {
            let to = self.members.at(i as usize).node.addr();
            self.pending.push_back(Pending::Gossip { to });
        }
        if !picks.is_empty() {
            self.last_gossip = Some(now);
        }
        self.scratch.picks = picks;
    }

    /// Periodic anti-entropy with one random alive member.
    pub(crate) fn on_push_pull_tick(&mut self, now: Instant) {
        let me = self.name.clone();
        let mut picks = core::mem::take(&mut self.scratch.picks);
        self.random_members(1, &mut picks, |e| {
            e.node.state == NodeState::Alive && e.node.name != me
        });
        let to = picks.first().map(|&i| {
            let node = &self.members.at(i as usize).node;
            (node.addr(), node.name.clone())
        });
        self.scratch.picks = picks;
        if let Some((to, name)) = to {
            self.start_push_pull(now, to, Some(name), None);
        }
    }

    /// Up to `k` distinct random members satisfying `accept`, by sampling (Go:
    /// `kRandomNodes`): expected O(k) when most members qualify, at most 3n tries.
    pub(crate) fn random_members(
        &mut self,
        k: usize,
        out: &mut Vec<u32>,
        accept: impl Fn(&super::state::Entry) -> bool,
    ) {
        out.clear();
        let n = self.members.len();
        if n == 0 || k == 0 {
            return;
        }
        for _ in 0..3 * n {
            if out.len() >= k {
                break;
            }
            let i = self.rng.index(n) as u32;
            if out.contains(&i) || !accept(self.members.at(i as usize)) {
                continue;
            }
            out.push(i);
        }
    }
}
