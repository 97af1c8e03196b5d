//! The memberlist layer: SWIM with HashiCorp's Lifeguard extensions, as a sans-IO state
//! machine.
//!
//! [`Memberlist`] can be used on its own for membership and failure detection (as Go
//! memberlist or foca), or under the Serf layer. Its behaviour follows Go memberlist
//! (`state.go`, `net.go`), with two fixes of known pain:
//!
//! - **Mass restarts** (memberlist #311): a member that keeps gossiping an alive message
//!   older than what we hold it dead or suspect at is told so directly, so it refutes with
//!   a higher incarnation instead of staying dead in our view.
//! - **Rejoin after leave** (memberlist #140, #217): `join` after `leave` brings the node
//!   back with a higher incarnation; no new instance is needed.
//!
//! # The life of a probe
//!
//! Every `probe_interval` the next member of a shuffled round-robin list is pinged (with a
//! suspect message attached if it is suspected: the buddy system). If no ack comes within
//! `probe_timeout`, `indirect_checks` other members are asked to ping it and to send a nack
//! if they get no answer, and a ping is also tried over a stream. If nothing answers by the
//! end of the probe window (`probe_interval` scaled by the local health score), the member
//! is suspected: a suspect message is gossiped, and unless it refutes with a higher
//! incarnation it is declared dead when the suspicion times out. The timeout starts long
//! and shrinks as independent members confirm the suspicion.

mod broadcast;
mod config;
mod delegate;
mod membership;
mod packets;
mod probe;
mod state;
mod streams;
pub mod suspicion;
mod timers;

pub use broadcast::BroadcastQueue;
pub use config::{Config, ConfigError, MAX_PACKET_SIZE, MIN_PACKET_SIZE, MIN_PERIOD};
pub use delegate::{Candidate, Delegate, Event, JoinError, JoinId, NoDelegate};
pub use state::{Node, NodeState};

use crate::log::{Level, LogMessage, LogQueue, LogRecord};
use crate::metrics::Metrics;
use crate::name::Name;
use crate::output::{Output, StreamEvent, StreamId};
use crate::rng::NodeRng;
use crate::time::Instant;
use crate::transform::{Keyring, OpenScratch, Transforms};
use crate::wire::{Alive, Versions};
use bytes::Bytes;
use core::net::SocketAddr;
use core::time::Duration;
use state::Members;
use std::collections::{BTreeMap, VecDeque};
use suspicion::Awareness;
use timers::{Periodic, Timer, Timers};

/// The memberlist protocol version this node speaks: `[min, max, current]`.
pub const PROTOCOL_VERSIONS: [u8; 3] = [1, 1, 1];

/// Number of broadcast tiers for the layer above, highest priority first. Serf uses them
/// for intents, queries and user events, in Go's fill order.
pub const USER_TIERS: usize = 3;

/// Why a command was refused. The state machine is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The node was shut down.
    #[error("the node is shut down")]
    Shutdown,
    /// The node has left; join again first.
    #[error("the node has left the cluster; join again first")]
    Left,
    /// Metadata larger than `max_meta_size`.
    #[error("metadata is {0} bytes; the limit is {1} (max_meta_size)")]
    MetaTooLarge(usize, usize),
    /// A message larger than `max_stream_frame`.
    #[error("message is {0} bytes; the limit is {1} (max_stream_frame)")]
    MessageTooLarge(usize, usize),
}

/// An outbound message waiting for `poll_output`.
#[derive(Debug)]
pub(crate) enum Pending {
    /// A datagram with one message; piggybacked broadcasts fill the rest.
    Packet { to: SocketAddr, msg: OutMsg },
    /// A datagram of broadcasts only (a gossip round).
    Gossip { to: SocketAddr },
    /// Open a stream.
    Open {
        id: u64,
        to: SocketAddr,
        peer: Option<Name>,
        deadline: Instant,
    },
    /// A sealed frame.
    Frame { id: u64, frame: Vec<u8> },
    /// Close a stream after its frames.
    Close { id: u64 },
    /// Drop a stream at once.
    Abort { id: u64 },
}

/// The leading message of a datagram. Encoded at poll time, so nothing is allocated for
/// pings and acks.
#[derive(Debug)]
pub(crate) enum OutMsg {
    Ping {
        seq: u32,
        target: Name,
        /// The buddy system: attach `suspect` at this incarnation.
        buddy: Option<u32>,
    },
    IndirectPing {
        seq: u32,
        target: Name,
        target_addr: SocketAddr,
        nack_timeout: Duration,
        nack: bool,
    },
    Ack {
        seq: u32,
        with_payload: bool,
    },
    Nack {
        seq: u32,
    },
    /// Already framed message(s).
    Framed(Bytes),
}

/// Reusable buffers, so the hot path does not allocate.
#[derive(Debug, Default)]
struct Scratch {
    body: Vec<u8>,
    compressed: Vec<u8>,
    open: OpenScratch,
    payload: Vec<u8>,
    finished: Vec<u64>,
    picks: Vec<u32>,
}

#[derive(Debug)]
struct LeaveState {
    notify: u64,
}

/// The SWIM + Lifeguard state machine of one node.
///
/// Feed it inputs (`handle_datagram`, `accept_stream`, `handle_stream`, `handle_timeout`,
/// commands), then drain [`Memberlist::poll_output`] until it returns
/// [`Output::Timeout`]. See the crate docs for the canonical driver loop.
#[derive(Debug)]
pub struct Memberlist<D: Delegate = NoDelegate> {
    config: Config,
    name: Name,
    addr: SocketAddr,
    meta: Bytes,
    incarnation: u32,
    versions: Versions,
    pub(crate) delegate: D,
    rng: NodeRng,
    transforms: Transforms,
    members: Members,
    probe_index: usize,
    probe: Option<probe::ActiveProbe>,
    probe_tick_pending: bool,
    /// A member to probe next, out of the round-robin order ([`Memberlist::probe_soon`]).
    probe_next: Option<Name>,
    /// A broadcast of the layer above was queued since the last gossip round
    /// (`Config::eager_gossip`).
    fresh_broadcast: bool,
    /// When the last gossip round sent anything.
    last_gossip: Option<Instant>,
    relays: hashbrown::HashMap<u32, probe::Relay, foldhash::fast::FixedState>,
    awareness: Awareness,
    broadcasts: BroadcastQueue,
    user_queues: [BroadcastQueue; USER_TIERS],
    timers: Timers,
    pending: VecDeque<Pending>,
    events: VecDeque<Event>,
    streams: BTreeMap<u64, streams::Stream>,
    next_stream: u64,
    inbound_streams: usize,
    joins: BTreeMap<u64, streams::JoinState>,
    next_join: u64,
    next_notify: u64,
    leave: Option<LeaveState>,
    left: bool,
    /// Source of suspicion generations: each suspicion gets a fresh one, so a timer left by
    /// an earlier suspicion never matches a later one.
    suspicion_generation: u64,
    /// Alternates packets between a large user broadcast and membership gossip when they
    /// cannot share one.
    fill_turn: bool,
    shutdown: bool,
    scratch: Scratch,
    metrics: Metrics,
    logs: LogQueue,
}

impl Memberlist<NoDelegate> {
    /// A node named `name`, reachable at `addr`, with metadata `meta`, its random choices
    /// drawn from `seed`, starting at `now`.
    ///
    /// The node is alone until [`Memberlist::join`] reaches another member.
    pub fn new(
        config: Config,
        name: &str,
        addr: SocketAddr,
        meta: &[u8],
        seed: u64,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let now = now.clamp_to_horizon();
        Memberlist::with_delegate(config, name, addr, meta, seed, now, NoDelegate)
    }
}

impl<D: Delegate> Memberlist<D> {
    /// As [`Memberlist::new`], with a delegate answering the layer above's questions.
    pub fn with_delegate(
        config: Config,
        name: &str,
        addr: SocketAddr,
        meta: &[u8],
        seed: u64,
        now: Instant,
        delegate: D,
    ) -> Result<Self, ConfigError> {
        let now = now.clamp_to_horizon();
        config.validate()?;
        let name = Name::new(name)?;
        if meta.len() > config.max_meta_size {
            return Err(ConfigError::MetaSize(meta.len(), config.max_meta_size));
        }
        let mut rng = NodeRng::new(seed);
        let hash_seed = rng.next_u64();
        let transforms = Transforms {
            label: config.label.as_bytes().to_vec(),
            skip_inbound_label_check: config.skip_inbound_label_check,
            checksum: config.checksum,
            compression: config.compression,
            keyring: config.keyring.clone(),
            encrypt_outgoing: config.encrypt_outgoing,
            require_encrypted_incoming: config.require_encrypted_incoming,
        };
        let [dmin, dmax, dcur] = config.delegate_versions;
        let [pmin, pmax, pcur] = PROTOCOL_VERSIONS;
        let depth = config.max_queue_depth;
        let mut m = Memberlist {
            name: name.clone(),
            addr,
            meta: Bytes::copy_from_slice(meta),
            incarnation: 0,
            versions: [pmin, pmax, pcur, dmin, dmax, dcur],
            delegate,
            transforms,
            members: Members::new(hash_seed),
            probe_index: 0,
            probe: None,
            probe_tick_pending: false,
            probe_next: None,
            fresh_broadcast: false,
            last_gossip: None,
            relays: hashbrown::HashMap::with_hasher(foldhash::fast::FixedState::with_seed(
                hash_seed,
            )),
            // Without Lifeguard the health score is pinned at 0.
            awareness: Awareness::new(if config.lifeguard {
                config.awareness_max_multiplier
            } else {
                1
            }),
            broadcasts: BroadcastQueue::new(depth, hash_seed),
            user_queues: core::array::from_fn(|_| BroadcastQueue::new(depth, hash_seed)),
            timers: Timers::default(),
            pending: VecDeque::new(),
            events: VecDeque::new(),
            streams: BTreeMap::new(),
            next_stream: 0,
            inbound_streams: 0,
            joins: BTreeMap::new(),
            next_join: 0,
            next_notify: 0,
            leave: None,
            left: false,
            suspicion_generation: 0,
            fill_turn: false,
            shutdown: false,
            scratch: Scratch::default(),
            metrics: Metrics::default(),
            logs: LogQueue::new(config.log_level),
            rng,
            config,
        };
        // Our own alive message, at incarnation 1 (Go: setAlive). It also puts us in our
        // own member table and reports our own join.
        m.incarnation = 1;
        m.announce_self(now);
        // Periodic timers start at a random offset so nodes started together do not act
        // in lockstep (Go: the stagger in schedule()).
        let probe_at = now + m.rng.duration_below(m.config.probe_interval);
        let gossip_at = now + m.rng.duration_below(m.config.gossip_interval);
        m.timers.set_periodic(Periodic::Probe, Some(probe_at));
        m.timers.set_periodic(Periodic::Gossip, Some(gossip_at));
        if !m.config.push_pull_interval.is_zero() {
            let pp_at = now + m.rng.duration_below(m.config.push_pull_interval);
            m.timers.set_periodic(Periodic::PushPull, Some(pp_at));
        }
        Ok(m)
    }

    /// Broadcasts our alive message at the current incarnation with the current metadata.
    fn announce_self(&mut self, now: Instant) {
        let (name, meta) = (self.name.clone(), self.meta.clone());
        let alive = Alive {
            incarnation: self.incarnation,
            node: &name,
            addr: self.addr,
            meta: &meta,
            versions: self.versions,
        };
        self.handle_alive(now, &alive, true);
    }

    // ---- read access --------------------------------------------------------------------

    /// This node's name.
    pub fn local_name(&self) -> &Name {
        &self.name
    }

    /// This node's advertised address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// This node as it appears in its own member table.
    pub fn local_node(&self) -> &Node {
        // The local node is inserted at construction and never removed.
        &self
            .members
            .get(&self.name)
            .expect("local node is a member")
            .node
    }

    /// Every member known, in any state, this node included.
    pub fn members(&self) -> impl ExactSizeIterator<Item = &Node> {
        self.members.iter().map(|e| &e.node)
    }

    /// A member by name.
    pub fn member(&self, name: &str) -> Option<&Node> {
        self.members.get(name).map(|e| &e.node)
    }

    /// Members alive or suspect (Go's `NumMembers`).
    pub fn num_alive(&self) -> usize {
        self.members.count(NodeState::Alive) + self.members.count(NodeState::Suspect)
    }

    /// Entries in the member table, in any state (Go's node-count estimate).
    pub fn num_members(&self) -> usize {
        self.members.len()
    }

    /// The local health score (0 is healthy; Lifeguard's multiplier minus one).
    pub fn health_score(&self) -> u32 {
        self.awareness.score()
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Takes the oldest waiting log record (see [`crate::log`]). Call it until `None`
    /// after each drain; it never affects the protocol.
    pub fn poll_log(&mut self) -> Option<LogRecord> {
        self.logs.pop()
    }

    /// Changes the least important level recorded (`None`: record nothing).
    pub fn set_log_level(&mut self, level: Option<Level>) {
        self.logs.set_level(level);
    }

    /// Whether a record of `level` would be kept: ask before building a costly message.
    pub(crate) fn logs_enabled(&self, level: Level) -> bool {
        self.logs.enabled(level)
    }

    /// Records `message` at `now`, dropping the oldest record if the queue is full.
    pub(crate) fn log(&mut self, now: Instant, message: LogMessage) {
        let before = self.logs.dropped;
        self.logs.push(now, message);
        self.metrics.logs_dropped += self.logs.dropped - before;
    }

    /// When the oldest waiting record was made, so the Serf layer can interleave its own.
    pub(crate) fn next_log_at(&self) -> Option<Instant> {
        self.logs.peek_at()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The delegate.
    pub fn delegate(&self) -> &D {
        &self.delegate
    }

    /// The delegate, mutably.
    pub fn delegate_mut(&mut self) -> &mut D {
        &mut self.delegate
    }

    /// The keyring, if encryption is configured.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.transforms.keyring.as_ref()
    }

    /// Replaces the keyring (key rotation). `None` turns encryption off.
    pub fn set_keyring(&mut self, keyring: Option<Keyring>) {
        self.transforms.keyring = keyring;
    }

    /// Whether [`Memberlist::leave`] was called and no join since.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Broadcasts queued, by queue: membership first, then each user tier.
    pub fn queue_depths(&self) -> [usize; USER_TIERS + 1] {
        let mut d = [self.broadcasts.len(); USER_TIERS + 1];
        for (i, q) in self.user_queues.iter().enumerate() {
            d[i + 1] = q.len();
        }
        d
    }

    /// The longest stream frame this node accepts on the wire: `max_stream_frame` plus
    /// what the transforms add. A driver refuses a longer length prefix before reading
    /// the body (see [`crate::framing`]).
    pub fn max_frame_len(&self) -> usize {
        self.config.max_stream_frame + self.transforms.overhead()
    }

    /// The largest datagram this node sends (`packet_size`). It accepts datagrams of up to
    /// 64 KiB, so a driver's receive buffer must hold 65,536 bytes.
    pub fn packet_size(&self) -> usize {
        self.config.packet_size
    }

    /// The retransmit limit for the current cluster size.
    pub fn retransmit_limit(&self) -> u32 {
        suspicion::retransmit_limit(self.config.retransmit_mult, self.members.len())
    }

    // ---- commands -----------------------------------------------------------------------

    /// Joins the cluster through `seeds`: a push-pull with each, reported by one
    /// [`Event::JoinCompleted`]. Joining after [`Memberlist::leave`] brings this node back
    /// with a higher incarnation.
    pub fn join(&mut self, now: Instant, seeds: &[SocketAddr]) -> Result<JoinId, CommandError> {
        let now = now.clamp_to_horizon();
        if self.shutdown {
            return Err(CommandError::Shutdown);
        }
        if self.left {
            // Rejoin (memberlist #140/#217): a higher incarnation supersedes our leave.
            self.left = false;
            self.leave = None;
            self.incarnation = self.incarnation.saturating_add(1);
            self.announce_self(now);
        }
        let id = self.next_join;
        self.next_join += 1;
        self.joins.insert(
            id,
            streams::JoinState {
                remaining: seeds.len(),
                joined: 0,
                failed: Vec::new(),
            },
        );
        for &seed in seeds {
            self.start_push_pull(now, seed, None, Some(id));
        }
        self.finish_join_if_done(id);
        Ok(JoinId(id))
    }

    /// Probes `name` at the next probe tick instead of the member the round-robin order
    /// would take (which comes the tick after). For news that a member should soon be
    /// gone: its leave announced by the layer above, say. If it has left, it answers
    /// with its leave, or the probe fails and the views that know correct our suspicion.
    /// Costs no extra packet: the order is only shifted. Unknown, dead or left members
    /// and ourselves are ignored.
    pub fn probe_soon(&mut self, name: &str) {
        if name != self.name.as_str()
            && let Some(e) = self.members.get(name)
            && !e.node.state.is_dead_or_left()
        {
            self.probe_next = Some(e.node.name.clone());
        }
    }

    /// Leaves gracefully: broadcasts that this node left, then reports
    /// [`Event::LeaveCompleted`] once the broadcast went out or `leave_timeout` passed.
    /// The node keeps answering probes until shut down. Leaving twice is a no-op.
    pub fn leave(&mut self, now: Instant) -> Result<(), CommandError> {
        let now = now.clamp_to_horizon();
        if self.shutdown {
            return Err(CommandError::Shutdown);
        }
        if self.left {
            return Ok(());
        }
        self.left = true;
        let notify = self.next_notify;
        self.next_notify += 1;
        self.leave = Some(LeaveState { notify });
        let name = self.name.clone();
        let dead = crate::wire::Dead {
            incarnation: self.incarnation,
            node: &name,
            from: &name,
        };
        self.handle_dead(now, &dead);
        let others_alive = self
            .members
            .iter()
            .any(|e| e.node.name != self.name && !e.node.state.is_dead_or_left());
        if others_alive {
            self.timers
                .schedule(now + self.config.leave_timeout, Timer::Leave(notify));
        } else {
            self.complete_leave(false);
        }
        Ok(())
    }

    fn complete_leave(&mut self, timed_out: bool) {
        if self.leave.take().is_some() {
            self.events.push_back(Event::LeaveCompleted { timed_out });
        }
    }

    /// Replaces this node's metadata and broadcasts it with a higher incarnation (Go's
    /// `UpdateNode`). Other members report [`Event::NodeUpdated`].
    pub fn set_meta(&mut self, now: Instant, meta: &[u8]) -> Result<(), CommandError> {
        let now = now.clamp_to_horizon();
        if self.shutdown {
            return Err(CommandError::Shutdown);
        }
        if self.left {
            // Announcing would bring us back (Go's UpdateNode after Leave does nothing).
            return Err(CommandError::Left);
        }
        if meta.len() > self.config.max_meta_size {
            return Err(CommandError::MetaTooLarge(
                meta.len(),
                self.config.max_meta_size,
            ));
        }
        self.meta = Bytes::copy_from_slice(meta);
        self.incarnation = self.incarnation.saturating_add(1);
        self.announce_self(now);
        Ok(())
    }

    /// Gossips `payload` to the cluster as a user message: every member receives it as
    /// [`Event::UserMessage`], piggybacked on protocol traffic. The payload must fit in
    /// one packet.
    pub fn broadcast(&mut self, payload: &[u8]) -> Result<(), CommandError> {
        let framed = crate::wire::WireMessage::to_vec(&crate::wire::User { payload });
        let max = self.max_piggyback();
        if framed.len() > max {
            return Err(CommandError::MessageTooLarge(framed.len(), max));
        }
        self.queue_user_broadcast(0, Bytes::from(framed), None);
        Ok(())
    }

    /// Queues an already framed message on a user tier (used by the Serf layer). With
    /// `notify`, [`Event::BroadcastDone`] reports when it is retired.
    pub(crate) fn queue_user_broadcast(&mut self, tier: usize, framed: Bytes, notify: Option<u64>) {
        let q = &mut self.user_queues[tier.min(USER_TIERS - 1)];
        let before = q.dropped();
        q.push(framed, None, notify);
        self.fresh_broadcast = true;
        self.metrics.broadcasts_dropped += q.dropped() - before;
        self.check_finished_broadcasts();
    }

    /// Sets the depth limit of every queue (Serf's dynamic queue sizing).
    pub(crate) fn set_max_queue_depth(&mut self, depth: usize) {
        self.broadcasts.set_max_depth(depth);
        for q in &mut self.user_queues {
            q.set_max_depth(depth);
        }
        self.check_finished_broadcasts();
    }

    /// The node's RNG, shared with the layer above.
    pub(crate) fn rng(&mut self) -> &mut NodeRng {
        &mut self.rng
    }

    /// The next event, without datagrams or the deadline (the Serf layer polls the two
    /// separately).
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Sends `payload` to `to` as a user message: in one datagram when it fits, otherwise
    /// over a stream (so large messages are never silently lost).
    pub fn send_user_message(
        &mut self,
        now: Instant,
        to: SocketAddr,
        payload: &[u8],
    ) -> Result<(), CommandError> {
        let now = now.clamp_to_horizon();
        if self.shutdown {
            return Err(CommandError::Shutdown);
        }
        let framed = crate::wire::WireMessage::to_vec(&crate::wire::User { payload });
        if framed.len() <= self.max_piggyback() {
            self.pending.push_back(Pending::Packet {
                to,
                msg: OutMsg::Framed(Bytes::from(framed)),
            });
            Ok(())
        } else {
            self.send_on_new_stream(now, to, &framed)
        }
    }

    /// Stops the node: open streams are closed and no timer fires again. Events already
    /// queued can still be polled. Not graceful; call [`Memberlist::leave`] first.
    pub fn shutdown(&mut self) {
        if self.shutdown {
            return;
        }
        self.shutdown = true;
        self.timers.clear();
        self.pending.clear();
        let ids: Vec<u64> = self.streams.keys().copied().collect();
        for id in ids {
            self.pending.push_back(Pending::Abort { id });
        }
        self.streams.clear();
        self.probe = None;
    }

    /// Whether [`Memberlist::shutdown`] was called.
    pub fn is_shutdown(&self) -> bool {
        self.shutdown
    }

    // ---- inputs -------------------------------------------------------------------------

    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let now = now.clamp_to_horizon();
        if self.shutdown {
            return;
        }
        self.metrics.packets_received += 1;
        self.metrics.bytes_received += data.len() as u64;
        let mut open = core::mem::take(&mut self.scratch.open);
        match self
            .transforms
            .open(data, &mut open, packets::MAX_DATAGRAM_BODY)
        {
            Ok(body) => self.handle_body(now, from, body),
            Err(e) => {
                self.metrics.count_transform_error(e);
                self.log(now, LogMessage::PacketRefused { from, reason: e });
            }
        }
        self.scratch.open = open;
    }

    /// A peer opened a stream from `from`. Returns the id the core gives it, or `None` if
    /// the core refuses it: the driver then closes it. At `max_inbound_streams`, the
    /// oldest inbound stream that has not sent a frame yet is closed to make room (its
    /// close comes out of `poll_output`), so idle connections cannot lock out joins and
    /// push-pulls; only when every inbound stream is busy is the new one refused.
    pub fn accept_stream(&mut self, now: Instant, from: SocketAddr) -> Option<StreamId> {
        let now = now.clamp_to_horizon();
        if self.shutdown {
            self.metrics.streams_refused += 1;
            return None;
        }
        if self.inbound_streams >= self.config.max_inbound_streams {
            let idle = self
                .streams
                .iter()
                .find(|(_, s)| s.kind == streams::StreamKind::Inbound && s.idle)
                .map(|(&id, _)| id);
            match idle {
                Some(id) => {
                    self.metrics.streams_evicted += 1;
                    self.abort_stream(id);
                }
                None => {
                    self.metrics.streams_refused += 1;
                    return None;
                }
            }
        }
        Some(StreamId(self.register_inbound_stream(now, from)))
    }

    /// Something happened on a stream.
    pub fn handle_stream(&mut self, now: Instant, id: StreamId, event: StreamEvent<'_>) {
        let now = now.clamp_to_horizon();
        if self.shutdown {
            return;
        }
        self.on_stream_event(now, id.0, event);
    }

    /// Time passed: runs every timer due at or before `now`. Early, late or repeated calls
    /// are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = now.clamp_to_horizon();
        if self.shutdown {
            return;
        }
        if self.due(Periodic::Probe, now, self.config.probe_interval) {
            self.on_probe_tick(now);
        }
        // The ticker's round, or an early one for a fresh broadcast.
        let tick = self.due(Periodic::Gossip, now, self.config.gossip_interval);
        if tick || self.eager_gossip_at().is_some_and(|at| at <= now) {
            self.on_gossip_tick(now);
        }
        let pp = suspicion::push_pull_scale(self.config.push_pull_interval, self.members.len());
        if self.due(Periodic::PushPull, now, pp) {
            self.on_push_pull_tick(now);
        }
        while let Some(t) = self.timers.pop_due(now) {
            match t {
                Timer::ProbeTimeout(seq) => self.on_probe_timeout(now, seq),
                Timer::ProbeEnd(seq) => self.on_probe_end(now, seq),
                Timer::RelayNack(seq) => self.on_relay_nack(seq),
                Timer::RelayExpiry(seq) => {
                    self.relays.remove(&seq);
                }
                Timer::Suspicion(name, generation) => {
                    self.on_suspicion_timeout(now, &name, generation)
                }
                Timer::Stream(id) => self.on_stream_timeout(now, id),
                Timer::Leave(notify) => {
                    if self.leave.as_ref().is_some_and(|l| l.notify == notify) {
                        self.complete_leave(true);
                    }
                }
            }
        }
    }

    /// Whether periodic timer `which` is due; if so, re-arms it `period` later on the same
    /// grid, skipping missed ticks as Go's tickers do.
    fn due(&mut self, which: Periodic, now: Instant, period: Duration) -> bool {
        match self.timers.periodic(which) {
            Some(at) if at <= now => {
                let behind = now - at;
                let period_ns = period.as_nanos().max(1);
                let skipped = u32::try_from(behind.as_nanos() / period_ns)
                    .unwrap_or(u32::MAX)
                    .saturating_add(1);
                self.timers
                    .set_periodic(which, Some(at + period.saturating_mul(skipped)));
                true
            }
            _ => false,
        }
    }

    // ---- outputs ------------------------------------------------------------------------

    /// The next output. Drain until [`Output::Timeout`] after every input. Datagrams and
    /// frames are written into `buf` (cleared first), so the caller's buffer is reused.
    pub fn poll_output(&mut self, buf: &mut Vec<u8>) -> Output<Event> {
        if let Some(out) = self.poll_transmit(buf) {
            return out;
        }
        if let Some(e) = self.events.pop_front() {
            return Output::Event(e);
        }
        self.trim();
        Output::Timeout(self.next_deadline())
    }

    /// Releases memory held after a burst: a push-pull merge queues one event per member
    /// and leaves frame-sized scratch buffers behind. With thousands of simulated nodes
    /// each keeping its largest burst, that is most of the memory (it is returned at the
    /// end of a drain, so the hot path keeps its buffers).
    pub(crate) fn trim(&mut self) {
        const KEEP_ITEMS: usize = 64;
        const KEEP_BYTES: usize = 16 * 1024;
        if self.events.is_empty() && self.events.capacity() > KEEP_ITEMS {
            self.events.shrink_to(KEEP_ITEMS);
        }
        if self.pending.is_empty() && self.pending.capacity() > KEEP_ITEMS {
            self.pending.shrink_to(KEEP_ITEMS);
        }
        for b in [
            &mut self.scratch.body,
            &mut self.scratch.compressed,
            &mut self.scratch.payload,
        ] {
            if b.capacity() > KEEP_BYTES {
                b.clear();
                b.shrink_to(KEEP_BYTES);
            }
        }
        self.scratch.open.trim(KEEP_BYTES);
    }

    /// The next datagram or stream operation, if any (events and the deadline excluded).
    pub(crate) fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Output<Event>> {
        while let Some(p) = self.pending.pop_front() {
            let out = match p {
                Pending::Packet { to, msg } => {
                    if !self.build_packet(Some(&msg), buf) {
                        continue;
                    }
                    Output::Transmit { to }
                }
                Pending::Gossip { to } => {
                    if !self.build_packet(None, buf) {
                        continue;
                    }
                    Output::Transmit { to }
                }
                Pending::Open {
                    id,
                    to,
                    peer,
                    deadline,
                } => Output::OpenStream {
                    id: StreamId(id),
                    to,
                    peer,
                    deadline,
                },
                Pending::Frame { id, frame } => {
                    buf.clear();
                    buf.extend_from_slice(&frame);
                    self.metrics.frames_sent += 1;
                    Output::SendFrame { id: StreamId(id) }
                }
                Pending::Close { id } => Output::CloseStream { id: StreamId(id) },
                Pending::Abort { id } => Output::AbortStream { id: StreamId(id) },
            };
            return Some(out);
        }
        None
    }

    /// When `handle_timeout` must next be called.
    pub fn next_deadline(&self) -> Instant {
        if self.shutdown {
            return Instant::MAX;
        }
        // With eager gossip an idle node does not wake for empty gossip ticks: a fresh
        // broadcast brings the round forward anyway (and a tick that passed meanwhile
        // fires at once, then the ticker carries on on its grid).
        let idle = self.config.eager_gossip.is_some() && !self.has_broadcasts();
        let skip = idle.then_some(Periodic::Gossip);
        let at = self.timers.next_deadline(skip).unwrap_or(Instant::MAX);
        self.eager_gossip_at().map_or(at, |e| e.min(at))
    }

    /// When an early gossip round for a fresh broadcast is due, if one is wanted.
    fn eager_gossip_at(&self) -> Option<Instant> {
        let gap = self.config.eager_gossip?;
        // Alone, there is nobody to gossip to: no reason to wake.
        if !self.fresh_broadcast || self.members.len() < 2 {
            return None;
        }
        Some(self.last_gossip.map_or(Instant::ZERO, |t| t + gap))
    }

    /// Whether any broadcast is queued.
    pub(crate) fn has_broadcasts(&self) -> bool {
        !self.broadcasts.is_empty() || self.user_queues.iter().any(|q| !q.is_empty())
    }

    /// Broadcast notifications retired since the last check: completes a pending leave and
    /// reports the layer above's.
    fn check_finished_broadcasts(&mut self) {
        let mut finished = core::mem::take(&mut self.scratch.finished);
        self.broadcasts.take_finished(&mut finished);
        for id in finished.drain(..) {
            if self.leave.as_ref().is_some_and(|l| l.notify == id) {
                self.complete_leave(false);
            }
        }
        for q in &mut self.user_queues {
            q.take_finished(&mut finished);
        }
        for id in finished.drain(..) {
            self.events.push_back(Event::BroadcastDone { id });
        }
        self.scratch.finished = finished;
    }

    /// A fresh probe sequence number: random, so that a peer who sees one (a relayed
    /// ping reaches the target) cannot predict the next and forge its ack, and never one
    /// in use.
    fn next_seq(&mut self) -> u32 {
        loop {
            let seq = self.rng.next_u32();
            let in_use =
                self.relays.contains_key(&seq) || self.probe.as_ref().is_some_and(|p| p.seq == seq);
            if !in_use {
                return seq;
            }
        }
    }

    /// The most bytes of messages a datagram can carry after the transforms.
    pub(crate) fn max_piggyback(&self) -> usize {
        self.config.packet_size - self.transforms.overhead()
    }
}
