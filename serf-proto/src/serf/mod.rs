//! The Serf layer: membership with statuses (alive, leaving, left, failed), Lamport-ordered
//! join and leave intents, user events, queries, tags, network coordinates, keyring
//! management across the cluster, reaping, reconnection and snapshots — on top of the
//! memberlist layer, in the same sans-IO shape.
//!
//! [`Serf`] is driven exactly like [`crate::memberlist::Memberlist`]: feed inputs with
//! `now`, drain [`Serf::poll_output`] until [`Output::Timeout`].
//!
//! Differences from Go serf, each fixing a known pain (go-serf.md §6.2):
//!
//! - **Large events and responses arrive** (serf #267, #550): a user event too large for a
//!   packet spreads over streams, and a query response larger than a packet goes to the
//!   origin over a stream, instead of never leaving the queue.
//! - **Queries finish early** (serf #509, #398): when the origin knows which members can
//!   answer (every alive member passing the filters, in its view), the query completes as
//!   soon as all of them have answered.
//! - **Queries reach who must answer**: gossip misses a given member with probability
//!   about e^-retransmits (2% in a small cluster). Members named by a node filter get the
//!   query directly too, and when answers are expected (acks requested, keyring and other
//!   internal queries) the origin re-sends it directly to members that have not answered
//!   a third and two thirds into the timeout.
//! - **Partitions heal by themselves** (memberlist #222, serf #605): failed members are
//!   retried for `reconnect_timeout`, and an optional permanent seed list is retried for
//!   ever.
//! - **Fair packet space** (memberlist #299): user events and queries get a share of every
//!   packet while queued (see the memberlist layer).
//! - Events never block the protocol: they are queued for `poll_output`, and coalescing
//!   happens inside the core.

mod config;
pub mod coordinate;
mod core;
mod events;
mod intents;
mod maintenance;
pub(crate) mod member;
mod members;
pub mod messages;
mod push_pull;
mod query;
pub mod snapshot;
mod types;

pub mod clock;

pub use self::config::{Config, MergeCheck, ReconnectTimeoutOverride, USER_EVENT_SIZE_HARD_LIMIT};
pub use clock::{LamportClock, LamportTime};
pub use coordinate::{Coordinate, CoordinateConfig};
pub use member::{Member, MemberStatus, Tags, decode_tags, encode_tags};
pub use messages::Filter;
pub use snapshot::{Record, SnapshotState};
pub use types::{
    Event, KeyResponse, MemberEventKind, QueryEvent, QueryHandle, QueryId, QueryParams, SerfError,
    SerfMetrics, SerfState, ShutdownReason, Stats, UserEvent,
};

use self::core::{Action, Core};
use crate::log::{Level, LogMessage, LogRecord};
use crate::memberlist::{self, JoinId, Memberlist};
use crate::metrics::Metrics;
use crate::name::Name;
use crate::output::{Output, StreamEvent, StreamId};
use crate::time::Instant;
use crate::transform::{KeyringError, SecretKey};
use ::core::net::SocketAddr;
use ::core::time::Duration;
use bytes::Bytes;

/// The Serf layer's protocol versions `[min, max, current]`, carried in memberlist's
/// alive messages.
pub const PROTOCOL_VERSIONS: [u8; 3] = [1, 1, 1];

/// Prefix of internal query names; applications cannot use it.
pub const INTERNAL_QUERY_PREFIX: &str = "_serf_";

/// Broadcast tiers, in Go's fill order.
pub(crate) const TIER_INTENT: usize = 0;
pub(crate) const TIER_QUERY: usize = 1;
pub(crate) const TIER_EVENT: usize = 2;

/// A Serf node: the memberlist state machine with the Serf layer on top.
///
/// Inputs and the output loop are the same as the memberlist layer's; see the crate docs
/// for a complete loop over a network.
///
/// ```
/// use serf_proto::serf::{Config, Event, MemberStatus, Tags};
/// use serf_proto::{Instant, Output, Serf};
///
/// let mut tags = Tags::new();
/// tags.insert("role".into(), "web".into());
/// let config = Config { tags, ..Config::default() };
/// let now = Instant::ZERO;
/// let mut node = Serf::new(config, "web-1", "10.0.0.1:7946".parse().unwrap(), 42, now).unwrap();
///
/// // Commands take effect at once; what they cause comes out of the drain.
/// node.user_event(now, "deploy", b"v2", false).unwrap();
/// let mut buf = Vec::new();
/// let mut seen = Vec::new();
/// let next = loop {
///     match node.poll_output(&mut buf) {
///         Output::Event(Event::Member { kind, members }) => seen.push(format!("{} {}", kind.as_str(), members[0].name)),
///         Output::Event(Event::User(e)) => seen.push(format!("user {} {:?}", e.name, e.payload)),
///         Output::Event(_) | Output::Transmit { .. } | Output::OpenStream { .. }
///         | Output::SendFrame { .. } | Output::CloseStream { .. }
///         | Output::AbortStream { .. } => {}
///         Output::Timeout(at) => break at,
///     }
/// };
/// assert_eq!(seen, ["member-join web-1", "user deploy b\"v2\""]);
/// assert_eq!(node.local_member().status, MemberStatus::Alive);
/// assert_eq!(node.local_member().tags["role"], "web");
/// assert!(next > now, "call handle_timeout at `next`, or on the next input");
/// ```
#[derive(Debug)]
pub struct Serf {
    ml: Memberlist<Core>,
}

impl Serf {
    /// A node named `name` at `addr`, with its random choices drawn from `seed`.
    pub fn new(
        config: Config,
        name: &str,
        addr: SocketAddr,
        seed: u64,
        now: Instant,
    ) -> Result<Serf, memberlist::ConfigError> {
        let now = now.clamp_to_horizon();
        Serf::with_snapshot(config, name, addr, seed, now, None)
    }

    /// As [`Serf::new`], resuming from a snapshot: the clocks continue where they were,
    /// old events are not replayed, and the node rejoins the members it last saw alive
    /// (unless its last act was a leave and `rejoin_after_leave` is off).
    pub fn with_snapshot(
        config: Config,
        name: &str,
        addr: SocketAddr,
        seed: u64,
        now: Instant,
        snapshot: Option<&SnapshotState>,
    ) -> Result<Serf, memberlist::ConfigError> {
        let now = now.clamp_to_horizon();
        config.validate()?;
        if config.validate_node_names {
            core::validate_name(name).map_err(memberlist::ConfigError::Invalid)?;
        }
        let mut meta = Vec::new();
        encode_tags(&config.tags, &mut meta);
        let mut ml_config = config.memberlist.clone();
        ml_config.delegate_versions = PROTOCOL_VERSIONS;
        ml_config.max_queue_depth = config.max_queue_depth;
        let node_name = Name::new(name)?;
        let core = Core::new(config, node_name, addr, seed, now, snapshot);
        let ml = Memberlist::with_delegate(ml_config, name, addr, &meta, seed, now, core)?;
        let mut serf = Serf { ml };
        serf.after_input(now);
        Ok(serf)
    }

    // ---- read access --------------------------------------------------------------------

    fn core(&self) -> &Core {
        self.ml.delegate()
    }

    /// This node's name.
    pub fn local_name(&self) -> &Name {
        self.ml.local_name()
    }

    /// This node as a member.
    pub fn local_member(&self) -> &Member {
        // The local member is added at construction and never erased.
        self.core()
            .member(self.ml.local_name())
            .expect("local member")
    }

    /// Every member known, in any status (until reaped).
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.core().members()
    }

    /// A member by name.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.core().member(name)
    }

    /// A counter that moves whenever a member is added, changes status, address or tags,
    /// or is forgotten. A driver that publishes a copy of [`Serf::members`] rebuilds it
    /// only when this changed since the last copy.
    pub fn members_version(&self) -> u64 {
        self.core().members_version
    }

    /// The longest stream frame this node accepts (see [`crate::framing`]).
    pub fn max_frame_len(&self) -> usize {
        self.ml.max_frame_len()
    }

    /// Members known, in any status (Go's `NumNodes`).
    pub fn num_members(&self) -> usize {
        self.core().num_members()
    }

    /// Members alive (status `Alive`), this node included.
    pub fn num_alive(&self) -> usize {
        self.core().num_alive()
    }

    /// The local state.
    pub fn state(&self) -> SerfState {
        self.core().state
    }

    /// This node's tags.
    pub fn tags(&self) -> &Tags {
        &self.core().tags
    }

    /// Our network coordinate, unless coordinates are disabled.
    pub fn coordinate(&self) -> Option<&Coordinate> {
        self.core().coordinate()
    }

    /// The last coordinate heard from `name`.
    pub fn cached_coordinate(&self, name: &str) -> Option<&Coordinate> {
        self.core().cached_coordinate(name)
    }

    /// Estimated round-trip time between two members, from their coordinates (`serf rtt`).
    pub fn rtt(&self, a: &str, b: &str) -> Option<Duration> {
        let ca = self.cached_coordinate(a)?;
        let cb = self.cached_coordinate(b)?;
        Some(ca.distance_to(cb))
    }

    /// The memberlist layer underneath.
    pub fn memberlist(&self) -> &Memberlist<impl memberlist::Delegate> {
        &self.ml
    }

    /// The memberlist layer's counters.
    pub fn metrics(&self) -> &Metrics {
        self.ml.metrics()
    }

    /// The Serf layer's counters.
    pub fn serf_metrics(&self) -> &SerfMetrics {
        &self.core().metrics
    }

    /// Go's `Stats()`.
    pub fn stats(&self) -> Stats {
        let c = self.core();
        let depths = self.ml.queue_depths();
        Stats {
            members: c.num_members(),
            failed: c.num_failed(),
            left: c.num_left(),
            health_score: self.ml.health_score(),
            member_time: c.clock.time(),
            event_time: c.event_clock.time(),
            query_time: c.query_clock.time(),
            intent_queue: depths[1 + TIER_INTENT],
            query_queue: depths[1 + TIER_QUERY],
            event_queue: depths[1 + TIER_EVENT],
            encrypted: self.ml.keyring().is_some(),
            coordinate_resets: c.coordinate_resets(),
        }
    }

    /// The keys installed here, primary first.
    pub fn keys(&self) -> Option<&[SecretKey]> {
        self.ml.keyring().map(|k| k.keys())
    }

    // ---- commands -----------------------------------------------------------------------

    fn check_running(&self) -> Result<(), SerfError> {
        match self.core().state {
            SerfState::Shutdown => Err(SerfError::Shutdown),
            _ => Ok(()),
        }
    }

    /// Joins the cluster through `seeds`; reported by [`Event::JoinCompleted`]. With
    /// `ignore_old`, user events that happened before the join are not delivered.
    pub fn join(
        &mut self,
        now: Instant,
        seeds: &[SocketAddr],
        ignore_old: bool,
    ) -> Result<JoinId, SerfError> {
        let now = now.clamp_to_horizon();
        self.check_running()?;
        if self.core().state == SerfState::Leaving {
            return Err(SerfError::Leaving);
        }
        let id = self.ml.join(now, seeds)?;
        let core = self.ml.delegate_mut();
        if core.state == SerfState::Left {
            // Rejoin on the same instance (Go refuses; memberlist #140): the memberlist
            // announces us with a higher incarnation, and our join intent will be newer
            // than our leave.
            core.state = SerfState::Alive;
        }
        core.join_started(now, id, core::JoinPurpose::User { ignore_old });
        self.after_input(now);
        Ok(id)
    }

    /// Leaves gracefully: broadcasts a leave intent, leaves the memberlist, keeps answering
    /// for `leave_propagate_delay`, then reports [`Event::LeaveCompleted`]. Every `leave`
    /// that returns `Ok` is answered by a `LeaveCompleted`: a second call while a leave
    /// is under way waits for the same one (only one is reported), and a call once the
    /// node has left reports another at once. A driver can therefore answer each caller
    /// on the next `LeaveCompleted`.
    pub fn leave(&mut self, now: Instant) -> Result<(), SerfError> {
        let now = now.clamp_to_horizon();
        self.ml.delegate_mut().leave(now)?;
        self.after_input(now);
        Ok(())
    }

    /// Fires a user event to the whole cluster.
    pub fn user_event(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        coalesce: bool,
    ) -> Result<(), SerfError> {
        let now = now.clamp_to_horizon();
        self.check_running()?;
        self.ml
            .delegate_mut()
            .user_event(now, name, payload, coalesce)?;
        self.after_input(now);
        Ok(())
    }

    /// The timeout a query gets when its [`QueryParams`] name none, for the current
    /// cluster size: `gossip_interval · query_timeout_mult · ⌈log10(n + 1)⌉` (Go's
    /// `DefaultQueryTimeout`). A query can still end earlier: as soon as every node it
    /// expects an answer from has answered.
    pub fn default_query_timeout(&self) -> Duration {
        self.ml
            .delegate()
            .default_query_timeout(self.ml.num_alive())
    }

    /// Sends a query; acks, responses and the end arrive as events carrying the returned
    /// id.
    pub fn query(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        params: &QueryParams,
    ) -> Result<QueryId, SerfError> {
        let now = now.clamp_to_horizon();
        self.check_running()?;
        if name.starts_with(INTERNAL_QUERY_PREFIX) {
            return Err(SerfError::ReservedName);
        }
        let n = self.ml.num_alive();
        let id =
            self.ml
                .delegate_mut()
                .query(now, name, payload, params, n, core::QueryKind::User)?;
        self.after_input(now);
        Ok(id)
    }

    /// Asks every member to ack a ping query (`serf reachability`). Acks arrive as
    /// [`Event::QueryAck`]; the query ends as soon as every alive member has acked.
    pub fn reachability(
        &mut self,
        now: Instant,
        timeout: Option<Duration>,
    ) -> Result<QueryId, SerfError> {
        let now = now.clamp_to_horizon();
        self.check_running()?;
        let params = QueryParams {
            request_ack: true,
            timeout,
            ..QueryParams::default()
        };
        let n = self.ml.num_alive();
        let name = format!("{INTERNAL_QUERY_PREFIX}ping");
        let id =
            self.ml
                .delegate_mut()
                .query(now, &name, &[], &params, n, core::QueryKind::Ping)?;
        self.after_input(now);
        Ok(id)
    }

    /// Answers a received query (once, before its deadline). Answers larger than a packet
    /// go to the origin over a stream.
    pub fn respond(
        &mut self,
        now: Instant,
        query: QueryHandle,
        payload: &[u8],
    ) -> Result<(), SerfError> {
        let now = now.clamp_to_horizon();
        self.check_running()?;
        self.ml.delegate_mut().respond(now, query, payload)?;
        self.after_input(now);
        Ok(())
    }

    /// Replaces this node's tags; other members report a member update.
    pub fn set_tags(&mut self, now: Instant, tags: Tags) -> Result<(), SerfError> {
        let now = now.clamp_to_horizon();
        self.check_running()?;
        match self.core().state {
            SerfState::Leaving => return Err(SerfError::Leaving),
            SerfState::Left => return Err(SerfError::Left),
            _ => {}
        }
        let mut meta = Vec::new();
        encode_tags(&tags, &mut meta);
        let limit = self.ml.config().max_meta_size;
        if meta.len() > limit {
            return Err(SerfError::TagsTooLarge {
                size: meta.len(),
                limit,
            });
        }
        self.ml.set_meta(now, &meta)?;
        self.ml.delegate_mut().tags = tags;
        self.after_input(now);
        Ok(())
    }

    /// Forces a member out: a failed member becomes left (and stops being retried); with
    /// `prune`, it is erased at once (`serf force-leave [-prune]`).
    pub fn force_leave(&mut self, now: Instant, name: &str, prune: bool) -> Result<(), SerfError> {
        let now = now.clamp_to_horizon();
        self.check_running()?;
        self.ml.delegate_mut().force_leave(now, name, prune)?;
        self.after_input(now);
        Ok(())
    }

    /// Installs `key` on every node (`serf keys -install`); reported by
    /// [`Event::KeyResponse`].
    pub fn install_key(&mut self, now: Instant, key: &SecretKey) -> Result<QueryId, SerfError> {
        let now = now.clamp_to_horizon();
        self.key_op(now, core::KeyOp::Install, Some(key))
    }

    /// Makes `key` the primary on every node (`serf keys -use`).
    pub fn use_key(&mut self, now: Instant, key: &SecretKey) -> Result<QueryId, SerfError> {
        let now = now.clamp_to_horizon();
        self.key_op(now, core::KeyOp::Use, Some(key))
    }

    /// Removes `key` from every node (`serf keys -remove`).
    pub fn remove_key(&mut self, now: Instant, key: &SecretKey) -> Result<QueryId, SerfError> {
        let now = now.clamp_to_horizon();
        self.key_op(now, core::KeyOp::Remove, Some(key))
    }

    /// Lists the keys of every node (`serf keys -list`).
    pub fn list_keys(&mut self, now: Instant) -> Result<QueryId, SerfError> {
        let now = now.clamp_to_horizon();
        self.key_op(now, core::KeyOp::List, None)
    }

    fn key_op(
        &mut self,
        now: Instant,
        op: core::KeyOp,
        key: Option<&SecretKey>,
    ) -> Result<QueryId, SerfError> {
        self.check_running()?;
        if self.ml.keyring().is_none() {
            return Err(SerfError::NoKeyring);
        }
        let n = self.ml.num_alive();
        let id = self.ml.delegate_mut().key_query(now, op, key, n)?;
        self.after_input(now);
        Ok(id)
    }

    /// Stops the node at once (not graceful; call [`Serf::leave`] first).
    pub fn shutdown(&mut self) {
        self.ml.shutdown();
        self.ml.delegate_mut().state = SerfState::Shutdown;
    }

    // ---- inputs -------------------------------------------------------------------------

    /// A datagram arrived.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let now = now.clamp_to_horizon();
        self.ml.handle_datagram(now, from, data);
        self.after_input(now);
    }

    /// A peer opened a stream; `None` means refuse it.
    pub fn accept_stream(&mut self, now: Instant, from: SocketAddr) -> Option<StreamId> {
        let now = now.clamp_to_horizon();
        self.ml.accept_stream(now, from)
    }

    /// Something happened on a stream.
    pub fn handle_stream(&mut self, now: Instant, id: StreamId, event: StreamEvent<'_>) {
        let now = now.clamp_to_horizon();
        self.ml.handle_stream(now, id, event);
        self.after_input(now);
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = now.clamp_to_horizon();
        self.ml.handle_timeout(now);
        self.after_input(now);
        let n = self.ml.num_alive();
        self.ml.delegate_mut().handle_timeout(now, n);
        self.after_input(now);
    }

    // ---- outputs ------------------------------------------------------------------------

    /// The next output; drain until [`Output::Timeout`].
    pub fn poll_output(&mut self, buf: &mut Vec<u8>) -> Output<Event> {
        loop {
            if let Some(out) = self.ml.poll_transmit(buf) {
                return match out {
                    Output::Transmit { to } => Output::Transmit { to },
                    Output::OpenStream {
                        id,
                        to,
                        peer,
                        deadline,
                    } => Output::OpenStream {
                        id,
                        to,
                        peer,
                        deadline,
                    },
                    Output::SendFrame { id } => Output::SendFrame { id },
                    Output::CloseStream { id } => Output::CloseStream { id },
                    Output::AbortStream { id } => Output::AbortStream { id },
                    // poll_transmit yields no events or deadlines.
                    Output::Event(_) | Output::Timeout(_) => continue,
                };
            }
            // Building packets may have finished broadcasts (leave progress): handle them,
            // which may queue more to send.
            if self.process_memberlist_events(self.core().last_now) {
                continue;
            }
            if let Some(e) = self.ml.delegate_mut().events.pop_front() {
                return Output::Event(e);
            }
            self.ml.trim();
            self.ml.delegate_mut().trim();
            let serf_deadline = self.core().next_deadline();
            return Output::Timeout(self.ml.next_deadline().min(serf_deadline));
        }
    }

    /// When `handle_timeout` must next be called.
    pub fn next_deadline(&self) -> Instant {
        self.ml.next_deadline().min(self.core().next_deadline())
    }

    /// The next record for the snapshot file, oldest first; `None` when there is none
    /// (always, unless [`Config::snapshot`] is on).
    ///
    /// Records are not events: they never come out of [`Serf::poll_output`], so a driver
    /// that drops application events under load cannot lose them, and the core never
    /// drops them either. Take them all whenever a drain ends (at `Output::Timeout`) and
    /// append them to the file in this order. The file policy is the driver's; Go's,
    /// which `serf-driver-tokio` follows: append through a buffer flushed every 500 ms;
    /// when the file passes `max(2 × 128 B × alive members, 128 KiB)`, compact it (write
    /// the alive members and the three clocks to a new file, sync, rename over the old);
    /// flush and sync on shutdown. [`SnapshotState`] replays a file's
    /// records for [`Serf::with_snapshot`].
    pub fn poll_persist(&mut self) -> Option<Record> {
        self.ml.delegate_mut().persist.pop_front()
    }

    /// Takes the oldest waiting log record of either layer (see [`crate::log`]): what Go's
    /// memberlist and serf would have logged. Call it until `None` after each drain and
    /// route the records to a logger or a log stream; a driver that never does loses only
    /// the oldest (counted as `logs_dropped`). Never affects the protocol.
    pub fn poll_log(&mut self) -> Option<LogRecord> {
        let ml_at = self.ml.next_log_at();
        let serf_at = self.ml.delegate().logs.peek_at();
        match (ml_at, serf_at) {
            (Some(a), Some(b)) if b < a => self.ml.delegate_mut().logs.pop(),
            (Some(_), _) => self.ml.poll_log(),
            (None, _) => self.ml.delegate_mut().logs.pop(),
        }
    }

    /// Changes the least important level recorded by both layers (`None`: nothing).
    pub fn set_log_level(&mut self, level: Option<Level>) {
        self.ml.set_log_level(level);
        self.ml.delegate_mut().logs.set_level(level);
    }

    // ---- glue ---------------------------------------------------------------------------

    /// Handles everything an input caused: memberlist events, then the Serf layer's
    /// actions, until both are quiet.
    fn after_input(&mut self, now: Instant) {
        self.ml.delegate_mut().last_now = now;
        while self.process_memberlist_events(now) {}
    }

    /// Processes pending memberlist events and the actions they cause. Returns whether
    /// anything happened.
    fn process_memberlist_events(&mut self, now: Instant) -> bool {
        let mut progressed = false;
        loop {
            let mut any = false;
            while let Some(e) = self.ml.poll_event() {
                any = true;
                let rng_seed = self.ml.rng().next_u64();
                self.ml.delegate_mut().on_memberlist_event(now, e, rng_seed);
            }
            while let Some(a) = self.ml.delegate_mut().outbox.pop_front() {
                any = true;
                self.apply(now, a);
            }
            if !any {
                return progressed;
            }
            progressed = true;
        }
    }

    /// Carries out one action of the Serf layer on the memberlist.
    fn apply(&mut self, now: Instant, action: Action) {
        match action {
            Action::Broadcast {
                tier,
                framed,
                payload_at,
                notify,
            } => {
                if framed.len() <= self.ml.max_piggyback() {
                    self.ml
                        .queue_user_broadcast(tier, Bytes::from(framed), notify);
                } else {
                    // Too large for a packet: spread it over streams to as many random
                    // members as a broadcast would reach, each of which does the same on
                    // first receipt; push-pull covers anyone missed.
                    let msg = &framed[payload_at..];
                    let fanout = self.ml.retransmit_limit().max(1) as usize;
                    let seed = self.ml.rng().next_u64();
                    let targets = self.ml.delegate_mut().random_alive_peers(fanout, seed);
                    self.ml.delegate_mut().metrics.stream_gossip += 1;
                    for to in targets {
                        let _ = self.ml.send_user_message(now, to, msg);
                    }
                    if let Some(id) = notify {
                        self.ml.delegate_mut().on_memberlist_event(
                            now,
                            memberlist::Event::BroadcastDone { id },
                            0,
                        );
                    }
                }
            }
            Action::Send { to, msg } => {
                if to == self.ml.local_addr() {
                    // Our own query's answer: no need to go through the network.
                    let from = self.ml.local_addr();
                    self.ml.delegate_mut().handle_serf_message(now, from, &msg);
                } else {
                    // Sizes were checked when the message was made; a failure here is a
                    // message over max_stream_frame, which the memberlist counts.
                    let _ = self.ml.send_user_message(now, to, &msg);
                }
            }
            Action::Join { seeds, purpose } => {
                // A memberlist join after its leave is a rejoin that cancels the leave:
                // only the application's own `join` may do that (see `LeaveStage`).
                if !self.core().may_act_on_its_own() || self.ml.has_left() {
                    let core = self.ml.delegate_mut();
                    core.metrics.joins_refused_leaving += 1;
                    core.log(LogMessage::JoinRefusedLeaving);
                    return;
                }
                if let Ok(id) = self.ml.join(now, &seeds) {
                    self.ml.delegate_mut().join_started(now, id, purpose);
                }
            }
            Action::MemberlistLeave => {
                let _ = self.ml.leave(now);
            }
            Action::ProbeSoon(name) => self.ml.probe_soon(&name),
            Action::SetQueueDepth(depth) => self.ml.set_max_queue_depth(depth),
            Action::KeyOp { op, key, handle } => {
                let op_name = match op {
                    core::KeyOp::Install => "install",
                    core::KeyOp::Use => "use",
                    core::KeyOp::Remove => "remove",
                    core::KeyOp::List => "list",
                };
                self.ml
                    .delegate_mut()
                    .log(LogMessage::KeyQuery { op: op_name });
                let response = self.apply_key_op(op, key.as_ref());
                // The query may have expired meanwhile; then there is no one to answer.
                let _ =
                    self.ml
                        .delegate_mut()
                        .respond_internal(now, QueryHandle(handle), &response);
            }
            Action::Shutdown(reason) => {
                self.shutdown();
                self.ml
                    .delegate_mut()
                    .events
                    .push_back(Event::Shutdown { reason });
            }
        }
    }

    /// Applies a keyring operation to our memberlist keyring and encodes the node's
    /// answer (serf `internal_query.go`).
    fn apply_key_op(&mut self, op: core::KeyOp, key: Option<&SecretKey>) -> Vec<u8> {
        let mut resp = core::KeyNodeResponse::default();
        match self.ml.keyring().cloned() {
            None => resp.message = "No keyring to modify (encryption not enabled)".into(),
            Some(mut ring) => {
                let result = match (op, key) {
                    (core::KeyOp::Install, Some(k)) => ring.install(k.clone()).map(|_| true),
                    (core::KeyOp::Use, Some(k)) => ring.use_key(k).map(|_| true),
                    (core::KeyOp::Remove, Some(k)) => ring.remove(k).map(|_| true),
                    (core::KeyOp::List, _) => Ok(false),
                    (_, None) => Err(KeyringError::NotInstalled),
                };
                match result {
                    Ok(changed) => {
                        resp.result = true;
                        resp.keys = ring.keys().iter().map(|k| k.0).collect();
                        resp.primary = Some(ring.primary().0);
                        if changed {
                            let keys = ring.keys().to_vec();
                            self.ml.set_keyring(Some(ring));
                            self.ml
                                .delegate_mut()
                                .events
                                .push_back(Event::KeyringChanged { keys });
                        }
                    }
                    Err(e) => resp.message = e.to_string(),
                }
            }
        }
        resp.encode()
    }
}
