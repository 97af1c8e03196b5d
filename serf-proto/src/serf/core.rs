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
use super::member::{Member, MemberState, MemberStatus, NameSet, Tags, decode_tags};
use super::messages::{JoinIntent, LeaveIntent, PushPullState, SerfMessage};
use super::query::{InQuery, OutQuery, QuerySlot};
use super::snapshot::{Record, SnapshotState};
use super::{
    Event, MemberEventKind, SerfError, SerfMetrics, SerfState, ShutdownReason, TIER_INTENT,
};
use crate::memberlist::{self, Candidate, JoinId};
use crate::name::Name;
use crate::rng::NodeRng;
use crate::time::Instant;
use crate::transform::SecretKey;
use crate::wire::codec::{Decoder, Encoder};
use core::cmp::Reverse;
use core::net::SocketAddr;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;

type FixedMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::FixedState>;

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
    members: FixedMap<Name, MemberState>,
    alive: NameSet,
    failed: NameSet,
    left: NameSet,
    recent_intents: FixedMap<Name, RecentIntent>,
    pub event_buffer: Vec<Option<EventSlot>>,
    pub event_min_time: LamportTime,
    pub query_buffer: Vec<Option<QuerySlot>>,
    pub query_min_time: LamportTime,
    coord: Option<CoordinateClient>,
    coord_cache: FixedMap<Name, Coordinate>,
    pub rng: NodeRng,
    timers: BinaryHeap<Reverse<(Instant, u64, SerfTimer)>>,
    timer_seq: u64,
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
    joins: BTreeMap<u64, JoinPurpose>,
    ignore_old_joins: usize,
    pub leave: LeaveStage,
    rejoin: Vec<SocketAddr>,
    pub last_clock_persisted: LamportTime,
    pub last_event_persisted: LamportTime,
    pub last_query_persisted: LamportTime,
    next_notify: u64,
    pub metrics: SerfMetrics,
    /// Bumped whenever a member is added, changes status, address or tags, or is erased:
    /// a driver republishes its read-only view of the members only when it moved.
    pub members_version: u64,
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
            members_version: 0,
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
    fn restore(&mut self, s: &SnapshotState) {
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
    fn set_status(&mut self, name: &str, status: MemberStatus) {
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
    fn evict_oldest_gone(&mut self) {
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

    fn member_from_node(&self, n: &memberlist::Node, status: MemberStatus) -> Member {
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
    fn on_node_join(&mut self, now: Instant, n: &memberlist::Node) {
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
    fn on_node_leave(&mut self, now: Instant, n: &memberlist::Node) {
        let name = n.name().as_str();
        let Some(m) = self.members.get_mut(name) else {
            return;
        };
        let (status, kind) = match m.member.status {
            MemberStatus::Leaving => (MemberStatus::Left, MemberEventKind::Leave),
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
    fn on_node_update(&mut self, n: &memberlist::Node) {
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

    fn on_ping_complete(
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

    fn on_join_completed(
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

    // ---- intents ------------------------------------------------------------------------

    /// Announces our join at the current member clock (serf `broadcastJoin`).
    pub fn broadcast_join(&mut self, now: Instant) {
        let ltime = self.clock.time();
        let mut msg = Vec::new();
        let name = self.name.clone();
        JoinIntent { ltime, node: &name }.encode(&mut msg);
        self.clock.witness(ltime);
        self.handle_join_intent(now, ltime, &name);
        self.outbox
            .push_back(Action::broadcast(TIER_INTENT, &msg, None));
    }

    /// Buffers an intent about a member not known yet; returns whether it was news.
    fn upsert_intent(&mut self, now: Instant, node: &str, leave: bool, ltime: LamportTime) -> bool {
        if let Some(i) = self.recent_intents.get_mut(node) {
            if ltime > i.ltime {
                *i = RecentIntent {
                    leave,
                    ltime,
                    at: now,
                };
                return true;
            }
            return false;
        }
        // Bounded: intents about members that never appear must not grow without limit.
        let cap = 1024.max(2 * self.members.len());
        if self.recent_intents.len() >= cap {
            self.metrics.intents_dropped += 1;
            return false;
        }
        self.metrics.intents_buffered += 1;
        self.recent_intents.insert(
            Name::from_str_unchecked(node),
            RecentIntent {
                leave,
                ltime,
                at: now,
            },
        );
        true
    }

    /// Returns whether to re-broadcast.
    pub fn handle_join_intent(&mut self, now: Instant, ltime: LamportTime, node: &str) -> bool {
        if !self.clock.plausible(ltime) {
            self.metrics.implausible_times += 1;
            return false;
        }
        self.clock.witness(ltime);
        let Some(m) = self.members.get_mut(node) else {
            return self.upsert_intent(now, node, false, ltime);
        };
        if ltime <= m.status_ltime {
            return false;
        }
        m.status_ltime = ltime;
        // The leave it cancels must have been older.
        if m.member.status == MemberStatus::Leaving {
            let key = m.member.name.clone();
            self.set_status(&key, MemberStatus::Alive);
        }
        true
    }

    /// Returns whether to re-broadcast.
    pub fn handle_leave_intent(
        &mut self,
        now: Instant,
        ltime: LamportTime,
        node: &str,
        prune: bool,
    ) -> bool {
        if !self.clock.plausible(ltime) {
            self.metrics.implausible_times += 1;
            return false;
        }
        self.clock.witness(ltime);
        let Some(m) = self.members.get_mut(node) else {
            return self.upsert_intent(now, node, true, ltime);
        };
        if ltime <= m.status_ltime {
            return false;
        }
        // An old leave of ours while we are alive: refute with a join.
        if node == self.name.as_str() && self.state == SerfState::Alive {
            self.broadcast_join(now);
            return false;
        }
        // Always update the time, so two leaves for one member do not bounce for ever
        // (Consul #8179).
        m.status_ltime = ltime;
        let key = m.member.name.clone();
        match m.member.status {
            MemberStatus::Alive => {
                self.set_status(&key, MemberStatus::Leaving);
            }
            MemberStatus::Failed => {
                self.set_status(&key, MemberStatus::Left);
                let member = self.members[&key].member.clone();
                self.emit_member(MemberEventKind::Leave, member);
            }
            MemberStatus::Leaving | MemberStatus::Left => {}
            MemberStatus::None => return false,
        }
        if prune {
            self.prune(now, &key);
        }
        true
    }

    /// Erases a force-left member; a member still leaving is given time to finish first.
    fn prune(&mut self, now: Instant, name: &Name) {
        let Some(m) = self.members.get(name.as_str()) else {
            return;
        };
        if m.member.status == MemberStatus::Leaving {
            let at = now + self.config.broadcast_timeout + self.config.leave_propagate_delay;
            let ltime = m.status_ltime;
            self.schedule(at, SerfTimer::Prune(name.clone(), ltime));
        } else {
            self.erase(name);
        }
    }

    /// The delayed prune: only if nothing happened to the member since (it did not come
    /// back with a newer intent).
    pub fn delayed_prune(&mut self, name: &Name, ltime: LamportTime) {
        let unchanged = self.members.get(name.as_str()).is_some_and(|m| {
            m.status_ltime == ltime
                && matches!(m.member.status, MemberStatus::Leaving | MemberStatus::Left)
        });
        if unchanged {
            self.erase(name);
        }
    }

    pub fn force_leave(&mut self, now: Instant, node: &str, prune: bool) -> Result<(), SerfError> {
        if !self.members.contains_key(node) {
            return Err(SerfError::UnknownMember(node.to_string()));
        }
        let ltime = self.clock.time();
        self.clock.increment();
        let mut msg = Vec::new();
        LeaveIntent { ltime, node, prune }.encode(&mut msg);
        if self.handle_leave_intent(now, ltime, node, prune) {
            self.outbox
                .push_back(Action::broadcast(TIER_INTENT, &msg, None));
        }
        Ok(())
    }

    // ---- leave --------------------------------------------------------------------------

    /// Starts a graceful leave (serf `Leave`).
    pub fn leave(&mut self, now: Instant) -> Result<(), SerfError> {
        match self.state {
            // Whoever asks gets the same answer as the first: a completion.
            SerfState::Left => {
                self.events.push_back(Event::LeaveCompleted);
                return Ok(());
            }
            SerfState::Leaving => return Ok(()),
            SerfState::Shutdown => return Err(SerfError::Shutdown),
            SerfState::Alive => {}
        }
        self.state = SerfState::Leaving;
        self.persist(Record::Leave);
        let ltime = self.clock.time();
        self.clock.increment();
        let name = self.name.clone();
        let mut msg = Vec::new();
        LeaveIntent {
            ltime,
            node: &name,
            prune: false,
        }
        .encode(&mut msg);
        self.handle_leave_intent(now, ltime, &name, false);
        // A join in flight will bring members that must hear the intent; without it
        // they would learn of us from the join and then see us fail, not leave.
        let others = self.alive.iter().any(|n| *n != self.name) || !self.joins.is_empty();
        if others {
            let notify = self.next_notify();
            self.leave = LeaveStage::Intent(notify);
            self.outbox
                .push_back(Action::broadcast(TIER_INTENT, &msg, Some(notify)));
            self.schedule(
                now + self.config.broadcast_timeout,
                SerfTimer::LeaveIntentTimeout(notify),
            );
        } else {
            self.leave_memberlist();
        }
        Ok(())
    }

    pub fn leave_memberlist(&mut self) {
        self.leave = LeaveStage::Memberlist;
        self.outbox.push_back(Action::MemberlistLeave);
    }

    pub fn leave_done(&mut self) {
        self.leave = LeaveStage::None;
        if self.state == SerfState::Leaving {
            self.state = SerfState::Left;
            self.events.push_back(Event::LeaveCompleted);
        }
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

    fn rebroadcast(&mut self, tier: usize, bytes: &[u8]) {
        self.outbox.push_back(Action::broadcast(tier, bytes, None));
    }

    // ---- push-pull ----------------------------------------------------------------------

    /// Merges the Serf state of a push-pull (serf `MergeRemoteState`).
    fn merge_remote_state(&mut self, join: bool, initiated: bool, state: &[u8]) {
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

    fn encode_local_state(&self, out: &mut Vec<u8>) {
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

    fn check_candidates(&self, peers: &[Candidate<'_>]) -> Result<(), String> {
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
