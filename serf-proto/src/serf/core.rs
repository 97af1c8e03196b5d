//! The Serf state machine proper. It is the memberlist layer's delegate (it answers the
//! synchronous questions: push-pull state, merge checks, ack payload), consumes the
//! memberlist's events after every input, and queues what it wants done in `outbox`,
//! which the [`super::Serf`] wrapper carries out on the memberlist.
//!
//! Member handling follows serf `serf.go` (`handleNodeJoin`, `handleNodeLeave`,
//! `handleNodeJoinIntent`, `handleNodeLeaveIntent`).

use super::clock::{LamportClock, LamportTime};
use super::config::Config;
use super::coordinate::{Coordinate, CoordinateClient};
use super::events::{EventSlot, MemberCoalescer, UserCoalescer};
use super::member::{MemberState, NameSet, Tags};
use super::messages::SerfMessage;
use super::query::{InQuery, OutQuery, QuerySlot};
use super::snapshot::{Record, SnapshotState};
use super::{Event, SerfMetrics, SerfState, ShutdownReason, TIER_INTENT};
use crate::log::{Level, LogMessage, LogQueue};
use crate::memberlist::{self, Candidate};
use crate::name::Name;
use crate::rng::NodeRng;
use crate::time::Instant;
use crate::transform::SecretKey;
use crate::wire::codec::{Decoder, Encoder};
use core::cmp::Reverse;
use core::net::SocketAddr;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

pub(super) type FixedMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::FixedState>;

/// Something the Serf layer wants done on the memberlist.
#[derive(Debug)]
pub(crate) enum Action {
    /// Gossip a Serf message on a tier. It is framed once, as the memberlist user
    /// message that carries it; the Serf message itself starts at `payload_at`.
    Broadcast {
        tier: usize,
        framed: Vec<u8>,
        payload_at: usize,
        notify: Option<u64>,
    },
    /// Send a Serf message to one address (by datagram, or stream if large).
    Send { to: SocketAddr, msg: Vec<u8> },
    /// Join through these addresses.
    Join {
        seeds: Vec<SocketAddr>,
        purpose: JoinPurpose,
    },
    /// Leave at the memberlist level.
    MemberlistLeave,
    /// Probe this member at the next probe tick (see `SerfTimer::LeavingCheck`).
    ProbeSoon(Name),
    /// Resize every broadcast queue.
    SetQueueDepth(usize),
    /// Apply a keyring operation and answer the query.
    KeyOp {
        op: KeyOp,
        key: Option<SecretKey>,
        handle: u64,
    },
    /// Shut down.
    Shutdown(ShutdownReason),
}

impl Action {
    /// Gossips the Serf message `msg` on `tier`.
    pub fn broadcast(tier: usize, msg: &[u8], notify: Option<u64>) -> Action {
        let framed = crate::wire::WireMessage::to_vec(&crate::wire::User { payload: msg });
        let payload_at = framed.len() - msg.len();
        Action::Broadcast {
            tier,
            framed,
            payload_at,
            notify,
        }
    }
}

/// Why a memberlist join was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinPurpose {
    /// The application called `join`.
    User { ignore_old: bool },
    /// Reconnecting to a failed member.
    Reconnect,
    /// Retrying a permanent seed.
    Seed,
    /// Rejoining the members of the snapshot.
    Snapshot,
}

/// A keyring operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyOp {
    Install,
    Use,
    Remove,
    List,
}

impl KeyOp {
    pub fn query_name(self) -> &'static str {
        match self {
            KeyOp::Install => "_serf_install-key",
            KeyOp::Use => "_serf_use-key",
            KeyOp::Remove => "_serf_remove-key",
            KeyOp::List => "_serf_list-keys",
        }
    }

    pub fn from_query_name(name: &str) -> Option<KeyOp> {
        Some(match name {
            "_serf_install-key" => KeyOp::Install,
            "_serf_use-key" => KeyOp::Use,
            "_serf_remove-key" => KeyOp::Remove,
            "_serf_list-keys" => KeyOp::List,
            _ => return None,
        })
    }
}

/// What kind of query we originated: decides how answers are aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryKind {
    User,
    Ping,
    Conflict,
    Key(KeyOp),
}

/// One node's answer to a keyring query (serf `nodeKeyResponse`). Fields: 1 result,
/// 2 message, 3 key (repeated), 4 primary key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyNodeResponse {
    pub result: bool,
    pub message: String,
    pub keys: Vec<[u8; 32]>,
    pub primary: Option<[u8; 32]>,
}

impl KeyNodeResponse {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out);
        e.bool(1, self.result).str(2, &self.message);
        for k in &self.keys {
            e.bytes_always(3, k);
        }
        if let Some(p) = &self.primary {
            e.bytes(4, p);
        }
        out
    }

    pub fn decode(b: &[u8]) -> Option<KeyNodeResponse> {
        let mut r = KeyNodeResponse::default();
        let mut d = Decoder::new(b);
        while let Some((n, v)) = d.next_field().ok()? {
            match n {
                1 => r.result = v.as_bool().ok()?,
                2 => r.message = v.as_str().ok()?.to_string(),
                3 => {
                    if r.keys.len() >= 64 {
                        return None;
                    }
                    r.keys.push(v.as_bytes().ok()?.try_into().ok()?);
                }
                4 => r.primary = Some(v.as_bytes().ok()?.try_into().ok()?),
                _ => {}
            }
        }
        Some(r)
    }
}

/// Serf's one-shot timers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SerfTimer {
    Reap,
    Reconnect,
    QueueCheck,
    SnapshotClock,
    /// Flush the member coalescer's batch; with a quiet sequence, only if no event came
    /// since.
    MemberFlush(u64, Option<u64>),
    /// Same for the user-event coalescer.
    UserFlush(u64, Option<u64>),
    QueryDeadline(u32),
    QueryRetry(u32),
    IncomingSweep,
    LeaveIntentTimeout(u64),
    LeavePropagated,
    /// Erase a force-left member, if its status time is still the prune's.
    Prune(Name, LamportTime),
    /// A member announced its leave a while ago and the memberlist has not reported it
    /// gone: probe it, if its status time is still the intent's.
    LeavingCheck(Name, LamportTime),
}

/// Where a graceful leave stands.
///
/// # What a leaving or left node does on its own
///
/// A leave must always end (`Event::LeaveCompleted`), and once it has, the node must stay
/// left in every view until the application itself calls `join`. So while the node is
/// [`SerfState::Leaving`] or [`SerfState::Left`], nothing but the application's `join`
/// may start a join, announce us, or claim our name back:
///
/// - **reconnect** to failed members and **permanent seeds**: skipped (Go runs them to
///   shutdown, but its memberlist ignores a join after a leave; ours treats a join after
///   a leave as a rejoin, which would cancel the pending leave: the leave never ended);
/// - **snapshot rejoin**: the remaining previous members are dropped, and a rejoin that
///   was already in flight announces no join intent (it would outrank our leave intent);
/// - a **user join** in flight when the leave starts completes without a join intent;
/// - **name-conflict votes** are not started (a leaving node gives its name up anyway);
/// - **refutation**: the memberlist ignores news about us after its leave
///   (`membership.rs`), and a leave intent about us is refuted only while alive;
/// - **push-pull, probes and gossip** go on: they spread our leave, and the memberlist
///   merges nothing about us from them.
///
/// [`Core::may_act_on_its_own`] is the check; `Serf::apply` checks it again for every
/// join the Serf layer asks of the memberlist, so a new periodic task cannot bring the
/// bug back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaveStage {
    None,
    /// Waiting for our leave intent to be broadcast (notification id).
    Intent(u64),
    /// Waiting for the memberlist leave.
    Memberlist,
    /// Answering probes a little longer.
    Propagating,
}

/// A buffered intent about a member the memberlist has not reported yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecentIntent {
    pub leave: bool,
    pub ltime: LamportTime,
    pub at: Instant,
}

/// The Serf layer's state.
#[derive(Debug)]
pub(crate) struct Core {
    pub config: Config,
    pub name: Name,
    pub addr: SocketAddr,
    pub state: SerfState,
    pub tags: Tags,
    pub clock: LamportClock,
    pub event_clock: LamportClock,
    pub query_clock: LamportClock,
    pub(super) members: FixedMap<Name, MemberState>,
    pub(super) alive: NameSet,
    pub(super) failed: NameSet,
    pub(super) left: NameSet,
    pub(super) recent_intents: FixedMap<Name, RecentIntent>,
    pub event_buffer: Vec<Option<EventSlot>>,
    pub event_min_time: LamportTime,
    pub query_buffer: Vec<Option<QuerySlot>>,
    pub query_min_time: LamportTime,
    pub(super) coord: Option<CoordinateClient>,
    pub(super) coord_cache: FixedMap<Name, Coordinate>,
    pub rng: NodeRng,
    pub(super) timers: BinaryHeap<Reverse<(Instant, u64, SerfTimer)>>,
    pub(super) timer_seq: u64,
    pub outbox: VecDeque<Action>,
    pub events: VecDeque<Event>,
    /// Snapshot records not yet taken by the driver; never dropped.
    pub persist: VecDeque<Record>,
    pub member_coalescer: Option<MemberCoalescer>,
    pub user_coalescer: Option<UserCoalescer>,
    pub queries: BTreeMap<u32, OutQuery>,
    pub incoming: BTreeMap<u64, InQuery>,
    pub incoming_sweep_scheduled: bool,
    pub next_handle: u64,
    pub(super) joins: BTreeMap<u64, JoinPurpose>,
    pub(super) ignore_old_joins: usize,
    pub leave: LeaveStage,
    pub(super) rejoin: Vec<SocketAddr>,
    pub last_clock_persisted: LamportTime,
    pub last_event_persisted: LamportTime,
    pub last_query_persisted: LamportTime,
    pub(super) next_notify: u64,
    pub metrics: SerfMetrics,
    /// What the Serf layer would log, for `Serf::poll_log`.
    pub(super) logs: LogQueue,
    /// Bumped whenever a member is added, changes status, address or tags, or is erased:
    /// a driver republishes its read-only view of the members only when it moved.
    pub members_version: u64,
    /// A failed member came back alive since the last reconnect round: evidence that a
    /// partition healed, so the next round tries a reconnect whatever its probability
    /// (see `maintenance.rs`, `reconnect`).
    pub failed_recovered: bool,
    /// The time of the latest input, for work done while polling.
    pub last_now: Instant,
}

/// Checks a node name against Go's optional rules: `[A-Za-z0-9.-]`, at most 128 bytes.
pub(crate) fn validate_name(name: &str) -> Result<(), String> {
    if name.len() > 128 {
        return Err(format!("node name {name:?} is longer than 128 bytes"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(format!(
            "node name {name:?} contains {c:?}; only [A-Za-z0-9.-] are allowed"
        ));
    }
    Ok(())
}

impl Core {
    pub fn new(
        config: Config,
        name: Name,
        addr: SocketAddr,
        seed: u64,
        now: Instant,
        snapshot: Option<&SnapshotState>,
    ) -> Core {
        // Derive our own generator and hash keys from the seed, distinct from memberlist's.
        let mut rng = NodeRng::new(seed ^ 0x5e4f_5e4f_5e4f_5e4f);
        let hash = || foldhash::fast::FixedState::with_seed(seed.rotate_left(17));
        let coord = (!config.disable_coordinates)
            .then(|| CoordinateClient::new(config.coordinates.clone(), rng.next_u64()));
        let member_coalescer = (!config.coalesce_period.is_zero()
            && !config.quiescent_period.is_zero())
        .then(MemberCoalescer::default);
        let user_coalescer = (!config.user_coalesce_period.is_zero()
            && !config.user_quiescent_period.is_zero())
        .then(UserCoalescer::default);
        let mut core = Core {
            name,
            addr,
            state: SerfState::Alive,
            tags: config.tags.clone(),
            clock: LamportClock::default(),
            event_clock: LamportClock::default(),
            query_clock: LamportClock::default(),
            members: FixedMap::with_hasher(hash()),
            alive: NameSet::new(seed.rotate_left(3)),
            failed: NameSet::new(seed.rotate_left(5)),
            left: NameSet::new(seed.rotate_left(7)),
            recent_intents: FixedMap::with_hasher(hash()),
            event_buffer: vec![None; config.event_buffer],
            event_min_time: 0,
            query_buffer: vec![None; config.query_buffer],
            query_min_time: 0,
            coord,
            coord_cache: FixedMap::with_hasher(hash()),
            rng,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            persist: VecDeque::new(),
            member_coalescer,
            user_coalescer,
            queries: BTreeMap::new(),
            incoming: BTreeMap::new(),
            incoming_sweep_scheduled: false,
            next_handle: 0,
            joins: BTreeMap::new(),
            ignore_old_joins: 0,
            leave: LeaveStage::None,
            rejoin: Vec::new(),
            last_clock_persisted: 0,
            last_event_persisted: 0,
            last_query_persisted: 0,
            next_notify: 0,
            metrics: SerfMetrics::default(),
            logs: LogQueue::new(config.memberlist.log_level),
            members_version: 0,
            failed_recovered: false,
            last_now: now,
            config,
        };
        // Every clock starts at 1 (Go increments each at creation).
        core.clock.increment();
        core.event_clock.increment();
        core.query_clock.increment();
        if let Some(s) = snapshot {
            core.restore(s);
        }
        core.schedule(now + core.config.reap_interval, SerfTimer::Reap);
        core.schedule(now + core.config.reconnect_interval, SerfTimer::Reconnect);
        core.schedule(
            now + core.config.queue_check_interval,
            SerfTimer::QueueCheck,
        );
        if core.config.snapshot {
            core.schedule(
                now + super::maintenance::SNAPSHOT_CLOCK_INTERVAL,
                SerfTimer::SnapshotClock,
            );
        }
        core
    }

    /// Resumes from a snapshot: clocks continue, older events are not replayed, and the
    /// previous members are rejoined one at a time (serf `snapshot.go` replay).
    pub(super) fn restore(&mut self, s: &SnapshotState) {
        self.clock.witness(s.clock);
        self.event_clock.witness(s.event_clock);
        self.query_clock.witness(s.query_clock);
        self.event_min_time = s.event_clock + 1;
        self.query_min_time = s.query_clock + 1;
        self.last_event_persisted = s.event_clock;
        self.last_query_persisted = s.query_clock;
        if s.left && !self.config.rejoin_after_leave {
            return;
        }
        let mut candidates: Vec<SocketAddr> = s
            .alive
            .iter()
            .filter(|(n, _)| **n != self.name)
            .map(|(_, a)| *a)
            .filter(|a| *a != self.addr)
            .collect();
        self.rng.shuffle(&mut candidates);
        self.rejoin = candidates;
        self.next_rejoin();
    }

    /// Whether the node may join, reconnect or announce itself without the application
    /// asking: only while alive (see [`LeaveStage`] for the rule and why).
    pub fn may_act_on_its_own(&self) -> bool {
        self.state == SerfState::Alive
    }

    /// Tries the next previous members. Go tries one at a time; after a mass restart many
    /// of them are down too, and each costs a stream timeout, so three go at once.
    pub fn next_rejoin(&mut self) {
        const AT_ONCE: usize = 3;
        if !self.may_act_on_its_own() {
            self.rejoin.clear();
            return;
        }
        let n = self.rejoin.len().min(AT_ONCE);
        if n > 0 {
            let seeds = self.rejoin.split_off(self.rejoin.len() - n);
            self.outbox.push_back(Action::Join {
                seeds,
                purpose: JoinPurpose::Snapshot,
            });
        }
    }

    // ---- timers -------------------------------------------------------------------------

    pub fn schedule(&mut self, at: Instant, t: SerfTimer) {
        self.timer_seq += 1;
        self.timers.push(Reverse((at, self.timer_seq, t)));
    }

    pub fn next_deadline(&self) -> Instant {
        if self.state == SerfState::Shutdown {
            return Instant::MAX;
        }
        self.timers
            .peek()
            .map(|Reverse((at, _, _))| *at)
            .unwrap_or(Instant::MAX)
    }

    pub fn pop_due(&mut self, now: Instant) -> Option<SerfTimer> {
        match self.timers.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                self.timers.pop().map(|Reverse((_, _, t))| t)
            }
            _ => None,
        }
    }

    /// Releases queue memory after a burst (see `Memberlist::trim`).
    pub fn trim(&mut self) {
        if self.events.is_empty() && self.events.capacity() > 64 {
            self.events.shrink_to(64);
        }
        if self.outbox.is_empty() && self.outbox.capacity() > 64 {
            self.outbox.shrink_to(64);
        }
    }

    pub fn next_notify(&mut self) -> u64 {
        self.next_notify += 1;
        self.next_notify
    }

    // ---- messages -----------------------------------------------------------------------

    /// A Serf message arrived (by gossip, datagram or stream).
    pub fn handle_serf_message(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let msg = match SerfMessage::decode(bytes) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(_) => {
                self.metrics.messages_malformed += 1;
                return;
            }
        };
        if bytes.len() > super::config::QUERY_SIZE_HARD_LIMIT {
            // Larger than any node sends (events are smaller still, checked on delivery).
            self.metrics.messages_oversized += 1;
            return;
        }
        match msg {
            SerfMessage::Join(j) => {
                if self.handle_join_intent(now, j.ltime, j.node) {
                    self.rebroadcast(TIER_INTENT, bytes);
                }
            }
            SerfMessage::Leave(l) => {
                if self.handle_leave_intent(now, l.ltime, l.node, l.prune) {
                    self.rebroadcast(TIER_INTENT, bytes);
                }
            }
            SerfMessage::UserEvent(e) => {
                if self.handle_user_event(e.ltime, e.name, e.payload, e.coalesce) {
                    self.rebroadcast(super::TIER_EVENT, bytes);
                }
            }
            SerfMessage::Query(q) => {
                if self.handle_query(now, &q) {
                    self.rebroadcast(super::TIER_QUERY, bytes);
                }
            }
            SerfMessage::QueryResponse(r) => self.handle_query_response(now, &r),
            SerfMessage::Relay(r) => {
                // Forward the inner message to its destination (serf relay, protocol 5),
                // but only to a member we know at that address, and only what fits a
                // packet: a relay must not let anyone send through us to any host.
                let known = self
                    .member_state(r.dest_name)
                    .is_some_and(|m| m.member.addr == r.dest);
                if known && r.inner.len() <= super::config::QUERY_SIZE_HARD_LIMIT {
                    self.outbox.push_back(Action::Send {
                        to: r.dest,
                        msg: r.inner.to_vec(),
                    });
                } else {
                    self.metrics.relays_refused += 1;
                }
            }
            // Serf state travels in push-pull's user state, not as a message.
            SerfMessage::PushPull(_) => self.metrics.messages_malformed += 1,
        }
        let _ = from;
    }

    pub(super) fn rebroadcast(&mut self, tier: usize, bytes: &[u8]) {
        self.outbox.push_back(Action::broadcast(tier, bytes, None));
    }
}

impl memberlist::Delegate for Core {
    fn local_state(&mut self, _join: bool, out: &mut Vec<u8>) {
        self.encode_local_state(out);
    }

    fn notify_merge(&mut self, peers: &[Candidate<'_>]) -> Result<(), String> {
        self.check_candidates(peers)
    }

    fn notify_alive(&mut self, peer: &Candidate<'_>) -> bool {
        // Known members are not re-checked on every refresh.
        if self.members.contains_key(peer.name) {
            return true;
        }
        self.check_candidates(core::slice::from_ref(peer)).is_ok()
    }

    fn ack_payload(&mut self, out: &mut Vec<u8>) {
        if let Some(c) = &self.coord {
            c.coordinate().encode(out);
        }
    }
}

impl Core {
    /// Records `message` at the current input's time.
    pub(super) fn log(&mut self, message: LogMessage) {
        let before = self.logs.dropped;
        self.logs.push(self.last_now, message);
        self.metrics.logs_dropped += self.logs.dropped - before;
    }

    /// Whether a record of `level` would be kept: ask before building a costly message.
    pub(super) fn logs_enabled(&self, level: Level) -> bool {
        self.logs.enabled(level)
    }
}
