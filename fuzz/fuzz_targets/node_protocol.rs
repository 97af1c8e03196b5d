//! A whole Serf node driven by a script of *valid* protocol traffic, with the core's
//! invariants checked after every step.
//!
//! `node_input` feeds random bytes, which almost never decode to a message. Here the input
//! is decoded by `arbitrary` into a script: datagrams carrying real memberlist messages
//! (ping, indirect ping, ack, nack, alive, suspect, dead, user) and Serf messages inside
//! them (join and leave intents, user events, queries with filters, key and conflict
//! queries, responses, relays, push-pull state), inbound streams with push-pull frames,
//! answers on the streams the node opened, time passing (through every deadline, as a
//! driver does), and the application's commands (join, leave, tags, events, queries,
//! responses, force-leave, key operations, shutdown). Every message is written by the
//! core's own encoders and sealed with the core's own transforms.
//!
//! The cluster is a small fixed universe (the node `n0`, peers `p1`..`p4`, a stranger and
//! a long name; six addresses), so names, addresses, incarnations, Lamport times, probe
//! sequence numbers and query ids collide the way they do in a real cluster: incarnations
//! and times are mostly chosen relative to what the node currently knows, and acks and
//! responses can name the probes and queries the node actually sent.
//!
//! After every input and every timer step:
//! - no panic, and the drain loop reaches `Output::Timeout`; deadlines move forward;
//! - members (Serf and memberlist) within `max_members`; every broadcast queue within
//!   `max_queue_depth`;
//! - our incarnation, each peer's incarnation at an unchanged address, and the three
//!   Lamport clocks never go backwards;
//! - a leave that `leave()` accepted ends (`LeaveCompleted`, or state `Left`) within
//!   `broadcast_timeout + leave_timeout + leave_propagate_delay` of driven time, unless the
//!   node was shut down; once left, it stays left (in its own member table too) until the
//!   application joins again.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serf_proto::serf::coordinate::Coordinate;
use serf_proto::serf::messages::{
    JoinIntent, LeaveIntent, PushPullState, QueryMsg, QueryResponseMsg, RelayMsg, SerfMessage,
    UserEventMsg,
};
use serf_proto::serf::{Config, Event, MemberStatus, QueryHandle, QueryParams, SerfState, Tags};
use serf_proto::transform::{OpenScratch, Transforms};
use serf_proto::wire::codec::Encoder;
use serf_proto::wire::{
    Ack, Alive, BodyIter, Dead, ErrorReply, IndirectPing, Message, Nack, Ping, PushNode, PushPull,
    Suspect, User, WireMessage, WireState, encode_message,
};
use serf_proto::{
    Checksum, Compressor, Instant, Keyring, NodeRng, Output, SecretKey, Serf, StreamEvent, StreamId,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

// ---- the universe -----------------------------------------------------------------------

const ME: &str = "n0";
const NAMES: [&str; 7] = [
    ME,
    "p1",
    "p2",
    "p3",
    "p4",
    "stranger",
    "a-name-much-longer-than-the-others-so-that-packets-fill-up-faster-0123456789",
];

fn addr(i: usize) -> SocketAddr {
    // 0 is the node under test, 1..=4 the peers, 5 an address nobody owns.
    let last = [1, 2, 3, 4, 5, 99][i % 6];
    SocketAddr::from(([10, 0, 0, last], 7946))
}

const KEYS: [[u8; 32]; 3] = [[1; 32], [2; 32], [3; 32]];
const TAG_KEYS: [&str; 3] = ["role", "dc", "rack"];
const TAG_VALUES: [&str; 4] = ["web", "db", "", "eu-west"];
const TAG_EXPRS: [&str; 5] = ["^web$", "web|db", ".*", "[", "eu"];
const EVENT_NAMES: [&str; 3] = ["deploy", "restart", ""];
const QUERY_NAMES: [&str; 3] = ["uptime", "load", "q"];

#[derive(Arbitrary, Debug, Clone, Copy)]
struct NameRef(u8);
impl NameRef {
    fn get(self) -> &'static str {
        NAMES[usize::from(self.0) % NAMES.len()]
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct AddrRef(u8);
impl AddrRef {
    fn get(self) -> SocketAddr {
        addr(usize::from(self.0))
    }
}

/// A peer that sends: its name and address agree.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct PeerRef(u8);
impl PeerRef {
    fn index(self) -> usize {
        1 + usize::from(self.0) % 4
    }
}

// ---- the script -------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
struct Script {
    setup: Setup,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
struct Setup {
    keyring: bool,
    small_table: bool,
    shallow_queues: bool,
    coalesce: bool,
    snapshot: bool,
    name_conflict_resolution: bool,
    seed: u8,
}

#[derive(Arbitrary, Debug)]
enum Step {
    Datagram {
        from: PeerRef,
        msgs: Vec<Msg>,
        seal: Seal,
    },
    InboundStream {
        from: PeerRef,
        frame: StreamMsg,
        seal: Seal,
        end: StreamEnd,
    },
    /// Answers one of the streams the node opened (push-pull, fallback ping, large user
    /// message).
    AnswerStream {
        pick: u8,
        answer: StreamAnswer,
    },
    /// Time passes, in milliseconds.
    Wait(u16),
    /// A longer wait, in seconds: reaps, reconnects, push-pull rounds, tombstones.
    WaitLong(u8),
    Command(Command),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Seal {
    Plain,
    Checksum(u8),
    Compressed(u8),
    Encrypted(u8),
}

#[derive(Arbitrary, Debug)]
enum StreamEnd {
    Open,
    Closed,
    Failed,
}

#[derive(Arbitrary, Debug)]
enum StreamAnswer {
    Frame(StreamMsg, Seal),
    Garbage(Vec<u8>),
    Closed,
    Failed,
}

#[derive(Arbitrary, Debug)]
enum StreamMsg {
    PushPull {
        join: bool,
        nodes: Vec<PushNodeArb>,
        state: Option<SerfPushState>,
    },
    Message(Msg),
}

#[derive(Arbitrary, Debug)]
struct PushNodeArb {
    name: NameRef,
    addr: AddrRef,
    meta: Meta,
    incarnation: Inc,
    state: u8,
    versions: Versions,
}

#[derive(Arbitrary, Debug)]
enum Msg {
    Ping {
        seq: Seq,
        target: Option<NameRef>,
        source_addr: Option<AddrRef>,
        source: NameRef,
    },
    IndirectPing {
        seq: Seq,
        target: NameRef,
        target_addr: AddrRef,
        nack: bool,
        source_addr: Option<AddrRef>,
        source: NameRef,
        nack_timeout_ms: u16,
    },
    Ack {
        seq: Seq,
        payload: AckPayload,
    },
    Nack {
        seq: Seq,
    },
    Suspect {
        incarnation: Inc,
        node: NameRef,
        from: NameRef,
    },
    Alive {
        incarnation: Inc,
        node: NameRef,
        addr: AddrRef,
        meta: Meta,
        versions: Versions,
    },
    Dead {
        incarnation: Inc,
        node: NameRef,
        from: NameRef,
    },
    User(SerfMsg),
    Error,
    Unknown {
        ty: u8,
        fields: Vec<u8>,
    },
}

/// A probe sequence number: one the node sent recently, or any.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Seq {
    Recent(u8),
    Raw(u32),
}

/// An incarnation: relative to what the node knows of that name, or any.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Inc {
    Known(i8),
    Raw(u32),
}

/// A Lamport time: relative to one of the node's clocks, or any.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Lt {
    Member(i8),
    Event(i8),
    Query(i8),
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
enum AckPayload {
    Empty,
    Coordinate {
        vec: Vec<f64>,
        error: f64,
        adjustment: f64,
        height: f64,
    },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Meta {
    Empty,
    Tags(Vec<(u8, u8)>),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Versions {
    Current,
    Raw([u8; 6]),
}

#[derive(Arbitrary, Debug)]
enum SerfMsg {
    Join {
        ltime: Lt,
        node: NameRef,
    },
    Leave {
        ltime: Lt,
        node: NameRef,
        prune: bool,
    },
    UserEvent {
        ltime: Lt,
        name: u8,
        payload: Vec<u8>,
        coalesce: bool,
    },
    Query(QueryArb),
    Response(ResponseArb),
    Relay {
        dest: AddrRef,
        dest_name: NameRef,
        inner: ResponseArb,
    },
    PushPull(SerfPushState),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct QueryArb {
    ltime: Lt,
    id: u32,
    origin: NameRef,
    origin_addr: AddrRef,
    filter_nodes: Option<Vec<NameRef>>,
    filter_tag: Option<(u8, u8)>,
    flags: u8,
    relay_factor: u8,
    timeout_ms: u16,
    name: QueryName,
}

#[derive(Arbitrary, Debug)]
enum QueryName {
    User { name: u8, payload: Vec<u8> },
    Ping,
    Conflict(NameRef),
    Key { op: u8, key: Option<u8> },
    Internal(String),
}

#[derive(Arbitrary, Debug)]
struct ResponseArb {
    query: QueryRef,
    from: NameRef,
    ack: bool,
    payload: ResponsePayload,
}

/// One of the node's own queries (so the response is for something pending), or any.
#[derive(Arbitrary, Debug)]
enum QueryRef {
    Recent(u8),
    Raw { ltime: Lt, id: u32 },
}

#[derive(Arbitrary, Debug)]
enum ResponsePayload {
    Bytes(Vec<u8>),
    /// A keyring answer: result, message, keys, primary.
    Key {
        result: bool,
        message: String,
        keys: Vec<u8>,
        primary: Option<u8>,
    },
    /// A name-conflict answer: the member as the responder sees it.
    Conflict {
        name: NameRef,
        addr: AddrRef,
        status: u8,
    },
}

/// The Serf layer's push-pull state.
#[derive(Arbitrary, Debug)]
struct SerfPushState {
    ltime: Lt,
    status: Vec<(NameRef, Lt)>,
    left: Vec<NameRef>,
    event_ltime: Lt,
    events: Vec<(Lt, Vec<(u8, Vec<u8>)>)>,
    query_ltime: Lt,
}

#[derive(Arbitrary, Debug)]
enum Command {
    Join {
        seeds: Vec<AddrRef>,
        ignore_old: bool,
    },
    Leave,
    SetTags(Vec<(u8, u8)>),
    UserEvent {
        name: u8,
        payload: Vec<u8>,
        coalesce: bool,
    },
    Query {
        name: u8,
        payload: Vec<u8>,
        filter_nodes: Vec<NameRef>,
        filter_tag: Option<(u8, u8)>,
        request_ack: bool,
        relay_factor: u8,
        timeout_ms: Option<u16>,
    },
    Respond {
        pick: u8,
        payload: Vec<u8>,
    },
    ForceLeave {
        node: NameRef,
        prune: bool,
    },
    InstallKey(u8),
    UseKey(u8),
    RemoveKey(u8),
    ListKeys,
    Reachability,
    Shutdown,
}

// ---- the harness ------------------------------------------------------------------------

/// At most this many outputs per drain: more means `poll_output` never ends.
const MAX_OUTPUTS: usize = 100_000;
/// At most this many timer steps at one instant: more means a deadline never moves on.
const MAX_STEPS_AT_ONE_INSTANT: usize = 1_000;
/// How many recent probe sequence numbers, queries and query handles are remembered.
const RECENT: usize = 16;

struct Harness {
    node: Serf,
    now: Instant,
    deadline: Instant,
    buf: Vec<u8>,
    rng: NodeRng,
    open_scratch: OpenScratch,
    // What the node did, to answer it.
    probe_seqs: Vec<u32>,
    own_queries: Vec<(u64, u32)>,
    received_queries: Vec<QueryHandle>,
    outbound_streams: Vec<StreamId>,
    // Limits.
    max_members: usize,
    max_queue_depth: usize,
    leave_bound: Duration,
    // What must not go backwards.
    incarnation: u32,
    clocks: [u64; 3],
    peers: BTreeMap<String, (SocketAddr, u32)>,
    // The leave.
    leave_started: Option<Instant>,
    left: bool,
    shut_down: bool,
}

fn tags_of(pairs: &[(u8, u8)]) -> Tags {
    pairs
        .iter()
        .take(4)
        .map(|&(k, v)| {
            (
                TAG_KEYS[usize::from(k) % TAG_KEYS.len()].to_string(),
                TAG_VALUES[usize::from(v) % TAG_VALUES.len()].to_string(),
            )
        })
        .collect()
}

fn key(i: u8) -> SecretKey {
    SecretKey(KEYS[usize::from(i) % KEYS.len()])
}

fn small(b: &[u8]) -> &[u8] {
    &b[..b.len().min(64)]
}

impl Harness {
    fn new(setup: &Setup) -> Harness {
        let mut config = Config::default();
        let ml = &mut config.memberlist;
        ml.checksum = None;
        ml.compression = None;
        ml.max_members = if setup.small_table { 4 } else { 32 };
        if setup.keyring {
            // Plaintext out (so the harness reads what the node sends) and accepted in;
            // encrypted input is decrypted with whatever keys the node holds by then.
            ml.keyring = Some(Keyring::new(key(0)));
            ml.encrypt_outgoing = false;
            ml.require_encrypted_incoming = false;
        }
        config.max_queue_depth = if setup.shallow_queues { 8 } else { 4096 };
        if setup.coalesce {
            config.coalesce_period = Duration::from_secs(3);
            config.quiescent_period = Duration::from_secs(1);
            config.user_coalesce_period = Duration::from_secs(3);
            config.user_quiescent_period = Duration::from_secs(1);
        }
        config.snapshot = setup.snapshot;
        config.enable_name_conflict_resolution = setup.name_conflict_resolution;
        // Short enough that a script reaches reaping and reconnecting.
        config.reconnect_timeout = Duration::from_secs(90);
        config.tombstone_timeout = Duration::from_secs(90);
        config.recent_intent_timeout = Duration::from_secs(60);
        config.tags = tags_of(&[(0, 0)]);
        let max_members = config.memberlist.max_members;
        let max_queue_depth = config.max_queue_depth;
        // Every stage of a leave is bounded: the intent's broadcast, the memberlist leave,
        // the propagation delay (core.rs `LeaveStage`).
        let leave_bound = config.broadcast_timeout
            + config.memberlist.leave_timeout
            + config.leave_propagate_delay
            + Duration::from_millis(1);
        let node = Serf::new(config, ME, addr(0), u64::from(setup.seed), Instant::ZERO)
            .expect("the fuzz config is valid");
        let mut h = Harness {
            node,
            now: Instant::ZERO,
            deadline: Instant::ZERO,
            buf: Vec::new(),
            rng: NodeRng::new(u64::from(setup.seed) ^ 0x5eed),
            open_scratch: OpenScratch::default(),
            probe_seqs: Vec::new(),
            own_queries: Vec::new(),
            received_queries: Vec::new(),
            outbound_streams: Vec::new(),
            max_members,
            max_queue_depth,
            leave_bound,
            incarnation: 0,
            clocks: [0; 3],
            peers: BTreeMap::new(),
            leave_started: None,
            left: false,
            shut_down: false,
        };
        h.drain();
        h.check();
        h
    }

    fn remember<T>(list: &mut Vec<T>, v: T) {
        if list.len() >= RECENT {
            list.remove(0);
        }
        list.push(v);
    }

    /// Reads what the node sent, to answer its probes and queries.
    fn observe_sent(&mut self, packet: &[u8]) {
        let Ok(body) = Transforms::default().open(packet, &mut self.open_scratch, 1 << 20) else {
            return;
        };
        let body = body.to_vec();
        for (ty, fields) in BodyIter::new(&body).flatten() {
            match Message::decode(ty, fields, 1 << 10) {
                Ok(Some(Message::Ping(p))) => Self::remember(&mut self.probe_seqs, p.seq),
                Ok(Some(Message::IndirectPing(p))) => Self::remember(&mut self.probe_seqs, p.seq),
                Ok(Some(Message::User(u))) => {
                    if let Ok(Some(SerfMessage::Query(q))) = SerfMessage::decode(u.payload) {
                        if q.source_node == ME {
                            Self::remember(&mut self.own_queries, (q.ltime, q.id));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Drains the node until it names its next deadline (the driver contract).
    fn drain(&mut self) {
        for _ in 0..MAX_OUTPUTS {
            match self.node.poll_output(&mut self.buf) {
                Output::Transmit { .. } | Output::SendFrame { .. } => {
                    let sent = std::mem::take(&mut self.buf);
                    self.observe_sent(&sent);
                    self.buf = sent;
                }
                Output::OpenStream { id, .. } => {
                    Self::remember(&mut self.outbound_streams, id);
                }
                Output::CloseStream { id } | Output::AbortStream { id } => {
                    self.outbound_streams.retain(|s| *s != id)
                }
                Output::Event(e) => match e {
                    Event::LeaveCompleted => {
                        assert!(
                            self.leave_started.is_some() || self.shut_down,
                            "LeaveCompleted without a leave"
                        );
                        self.leave_started = None;
                    }
                    Event::Shutdown { .. } => self.shut_down = true,
                    Event::Query(q) => Self::remember(&mut self.received_queries, q.handle),
                    _ => {}
                },
                Output::Timeout(at) => {
                    // Snapshot records come from their own drain; it must be drainable.
                    while self.node.poll_persist().is_some() {}
                    self.deadline = at;
                    return;
                }
            }
        }
        panic!("poll_output yielded {MAX_OUTPUTS} outputs without reaching Timeout");
    }

    /// Lets time pass to `until`, stopping at every deadline as a driver does.
    fn advance(&mut self, until: Instant) {
        let mut at_one_instant = 0;
        while self.deadline <= until {
            let before = self.now;
            self.now = self.now.max(self.deadline);
            at_one_instant = if self.now == before {
                at_one_instant + 1
            } else {
                0
            };
            assert!(
                at_one_instant < MAX_STEPS_AT_ONE_INSTANT,
                "the deadline stays at {:?} however often it is handled",
                self.now
            );
            self.node.handle_timeout(self.now);
            self.drain();
            self.check();
        }
        self.now = until;
    }

    /// The invariants, after every input and every timer step.
    fn check(&mut self) {
        let node = &self.node;
        let ml = node.memberlist();
        assert!(
            node.num_members() <= self.max_members,
            "{} Serf members, limit {}",
            node.num_members(),
            self.max_members
        );
        assert!(ml.num_members() <= self.max_members);
        let s = node.stats();
        assert_eq!(s.members, node.num_members());
        assert!(s.failed + s.left <= s.members);
        for (i, d) in ml.queue_depths().into_iter().enumerate() {
            assert!(
                d <= self.max_queue_depth,
                "queue {i} holds {d}, limit {}",
                self.max_queue_depth
            );
        }

        let inc = ml.local_node().incarnation();
        assert!(
            inc >= self.incarnation,
            "our incarnation went back from {} to {inc}",
            self.incarnation
        );
        self.incarnation = inc;

        let clocks = [s.member_time, s.event_time, s.query_time];
        for (i, (was, is)) in self.clocks.iter().zip(clocks).enumerate() {
            assert!(is >= *was, "Lamport clock {i} went back from {was} to {is}");
        }
        self.clocks = clocks;

        let mut seen = BTreeMap::new();
        for m in ml.members().filter(|m| m.name().as_str() != ME) {
            let (name, a, inc) = (m.name().as_str(), m.addr(), m.incarnation());
            if let Some(&(was_at, was)) = self.peers.get(name) {
                // A node that restarts at another address may start over (membership.rs:
                // address update after a leave).
                assert!(
                    was_at != a || inc >= was,
                    "{name}'s incarnation went back from {was} to {inc}"
                );
            }
            seen.insert(name.to_string(), (a, inc));
        }
        self.peers = seen;

        if self.shut_down || node.state() == SerfState::Shutdown {
            self.shut_down = true;
            self.leave_started = None;
            return;
        }
        if node.state() == SerfState::Left {
            self.left = true;
            self.leave_started = None;
            assert!(ml.has_left(), "Serf left but its memberlist did not");
            // Left in every view, its own included, until the application joins.
            assert_eq!(node.local_member().status, MemberStatus::Left);
        } else {
            assert!(
                !self.left,
                "the node left, then became {:?} without the application joining",
                node.state()
            );
        }
        if let Some(t0) = self.leave_started {
            assert!(
                self.now.saturating_duration_since(t0) <= self.leave_bound,
                "a leave started at {t0:?} has not ended at {:?} (state {:?})",
                self.now,
                node.state()
            );
        }
    }

    // ---- building messages --------------------------------------------------------------

    fn incarnation(&self, inc: Inc, node: NameRef) -> u32 {
        match inc {
            Inc::Raw(v) => v,
            Inc::Known(d) => {
                let ml = self.node.memberlist();
                let base = if node.get() == ME {
                    ml.local_node().incarnation()
                } else {
                    ml.member(node.get()).map_or(0, |m| m.incarnation())
                };
                (i64::from(base) + i64::from(d)).clamp(0, i64::from(u32::MAX)) as u32
            }
        }
    }

    fn ltime(&self, lt: Lt) -> u64 {
        let s = self.node.stats();
        let (base, d) = match lt {
            Lt::Raw(v) => return v,
            Lt::Member(d) => (s.member_time, d),
            Lt::Event(d) => (s.event_time, d),
            Lt::Query(d) => (s.query_time, d),
        };
        base.saturating_add_signed(i64::from(d))
    }

    fn seq(&self, seq: Seq) -> u32 {
        match seq {
            Seq::Raw(v) => v,
            Seq::Recent(i) if !self.probe_seqs.is_empty() => {
                self.probe_seqs[usize::from(i) % self.probe_seqs.len()]
            }
            Seq::Recent(i) => u32::from(i),
        }
    }

    fn meta(meta: &Meta, out: &mut Vec<u8>) {
        match meta {
            Meta::Empty => {}
            Meta::Tags(pairs) => serf_proto::serf::encode_tags(&tags_of(pairs), out),
            Meta::Raw(b) => out.extend_from_slice(small(b)),
        }
    }

    fn versions(v: Versions) -> [u8; 6] {
        match v {
            Versions::Current => [1; 6],
            Versions::Raw(v) => v,
        }
    }

    fn encode_msg(&self, msg: &Msg, out: &mut Vec<u8>) {
        match msg {
            Msg::Ping {
                seq,
                target,
                source_addr,
                source,
            } => Ping {
                seq: self.seq(*seq),
                target: target.map_or("", NameRef::get),
                source_addr: source_addr.map(AddrRef::get),
                source_name: source.get(),
            }
            .encode(out),
            Msg::IndirectPing {
                seq,
                target,
                target_addr,
                nack,
                source_addr,
                source,
                nack_timeout_ms,
            } => IndirectPing {
                seq: self.seq(*seq),
                target: target.get(),
                target_addr: target_addr.get(),
                nack: *nack,
                source_addr: source_addr.map(AddrRef::get),
                source_name: source.get(),
                nack_timeout_ms: u32::from(*nack_timeout_ms),
            }
            .encode(out),
            Msg::Ack { seq, payload } => {
                let mut p = Vec::new();
                match payload {
                    AckPayload::Empty => {}
                    AckPayload::Coordinate {
                        vec,
                        error,
                        adjustment,
                        height,
                    } => Coordinate {
                        vec: vec.iter().copied().take(10).collect(),
                        error: *error,
                        adjustment: *adjustment,
                        height: *height,
                    }
                    .encode(&mut p),
                    AckPayload::Raw(b) => p.extend_from_slice(small(b)),
                }
                Ack {
                    seq: self.seq(*seq),
                    payload: &p,
                }
                .encode(out)
            }
            Msg::Nack { seq } => Nack {
                seq: self.seq(*seq),
            }
            .encode(out),
            Msg::Suspect {
                incarnation,
                node,
                from,
            } => Suspect {
                incarnation: self.incarnation(*incarnation, *node),
                node: node.get(),
                from: from.get(),
            }
            .encode(out),
            Msg::Alive {
                incarnation,
                node,
                addr,
                meta,
                versions,
            } => {
                let mut m = Vec::new();
                Self::meta(meta, &mut m);
                Alive {
                    incarnation: self.incarnation(*incarnation, *node),
                    node: node.get(),
                    addr: addr.get(),
                    meta: &m,
                    versions: Self::versions(*versions),
                }
                .encode(out)
            }
            Msg::Dead {
                incarnation,
                node,
                from,
            } => Dead {
                incarnation: self.incarnation(*incarnation, *node),
                node: node.get(),
                from: from.get(),
            }
            .encode(out),
            Msg::User(m) => {
                let mut payload = Vec::new();
                self.encode_serf(m, &mut payload);
                User { payload: &payload }.encode(out)
            }
            Msg::Error => ErrorReply { message: "no" }.encode(out),
            Msg::Unknown { ty, fields } => encode_message(out, *ty, |o| {
                o.extend_from_slice(small(fields));
            }),
        }
    }

    fn encode_response(&self, r: &ResponseArb, out: &mut Vec<u8>) {
        let (ltime, id) = match &r.query {
            QueryRef::Recent(i) if !self.own_queries.is_empty() => {
                self.own_queries[usize::from(*i) % self.own_queries.len()]
            }
            QueryRef::Recent(i) => (0, u32::from(*i)),
            QueryRef::Raw { ltime, id } => (self.ltime(*ltime), *id),
        };
        let mut payload = Vec::new();
        match &r.payload {
            ResponsePayload::Bytes(b) => payload.extend_from_slice(small(b)),
            ResponsePayload::Key {
                result,
                message,
                keys,
                primary,
            } => {
                let mut e = Encoder::new(&mut payload);
                e.bool(1, *result).str(2, &message[..message.len().min(32)]);
                for &k in keys.iter().take(4) {
                    e.bytes_always(3, &key(k).0);
                }
                if let Some(p) = primary {
                    e.bytes(4, &key(*p).0);
                }
            }
            ResponsePayload::Conflict { name, addr, status } => {
                Encoder::new(&mut payload)
                    .str(1, name.get())
                    .addr(2, &addr.get())
                    .bytes(3, b"")
                    .uint(4, u64::from(*status % 6));
            }
        }
        QueryResponseMsg {
            ltime,
            id,
            from: r.from.get(),
            flags: u32::from(r.ack),
            payload: &payload,
        }
        .encode(out);
    }

    fn encode_serf_state(&self, s: &SerfPushState, out: &mut Vec<u8>) {
        let status: Vec<(&str, u64)> = s
            .status
            .iter()
            .take(8)
            .map(|(n, lt)| (n.get(), self.ltime(*lt)))
            .collect();
        let events: Vec<(u64, Vec<(String, bytes::Bytes)>)> = s
            .events
            .iter()
            .take(8)
            .map(|(lt, evs)| {
                (
                    self.ltime(*lt),
                    evs.iter()
                        .take(4)
                        .map(|(n, p)| {
                            (
                                EVENT_NAMES[usize::from(*n) % EVENT_NAMES.len()].to_string(),
                                bytes::Bytes::copy_from_slice(small(p)),
                            )
                        })
                        .collect(),
                )
            })
            .collect();
        PushPullState::encode(
            out,
            self.ltime(s.ltime),
            status.iter().copied(),
            s.left.iter().take(8).map(|n| n.get()),
            self.ltime(s.event_ltime),
            events.iter().map(|(lt, e)| (*lt, &e[..])),
            self.ltime(s.query_ltime),
        );
    }

    fn encode_serf(&self, m: &SerfMsg, out: &mut Vec<u8>) {
        match m {
            SerfMsg::Join { ltime, node } => JoinIntent {
                ltime: self.ltime(*ltime),
                node: node.get(),
            }
            .encode(out),
            SerfMsg::Leave { ltime, node, prune } => LeaveIntent {
                ltime: self.ltime(*ltime),
                node: node.get(),
                prune: *prune,
            }
            .encode(out),
            SerfMsg::UserEvent {
                ltime,
                name,
                payload,
                coalesce,
            } => UserEventMsg {
                ltime: self.ltime(*ltime),
                name: EVENT_NAMES[usize::from(*name) % EVENT_NAMES.len()],
                payload: small(payload),
                coalesce: *coalesce,
            }
            .encode(out),
            SerfMsg::Query(q) => {
                let mut filters = Vec::new();
                if let Some(nodes) = &q.filter_nodes {
                    filters.push(serf_proto::serf::Filter::Nodes(
                        nodes.iter().take(6).map(|n| n.get().to_string()).collect(),
                    ));
                }
                if let Some((t, e)) = q.filter_tag {
                    filters.push(serf_proto::serf::Filter::Tag {
                        tag: TAG_KEYS[usize::from(t) % TAG_KEYS.len()].to_string(),
                        expr: TAG_EXPRS[usize::from(e) % TAG_EXPRS.len()].to_string(),
                    });
                }
                let mut payload = Vec::new();
                let name = match &q.name {
                    QueryName::User { name, payload: p } => {
                        payload.extend_from_slice(small(p));
                        QUERY_NAMES[usize::from(*name) % QUERY_NAMES.len()].to_string()
                    }
                    QueryName::Ping => "_serf_ping".to_string(),
                    QueryName::Conflict(n) => {
                        payload.extend_from_slice(n.get().as_bytes());
                        "_serf_conflict".to_string()
                    }
                    QueryName::Key { op, key: k } => {
                        if let Some(k) = k {
                            Encoder::new(&mut payload).bytes(1, &key(*k).0);
                        }
                        [
                            "_serf_install-key",
                            "_serf_use-key",
                            "_serf_remove-key",
                            "_serf_list-keys",
                        ][usize::from(*op) % 4]
                            .to_string()
                    }
                    QueryName::Internal(s) => format!("_serf_{}", &s[..s.len().min(16)]),
                };
                QueryMsg::encode(
                    out,
                    self.ltime(q.ltime),
                    q.id,
                    q.origin_addr.get(),
                    q.origin.get(),
                    &filters,
                    u32::from(q.flags & 3),
                    q.relay_factor,
                    Duration::from_millis(u64::from(q.timeout_ms)),
                    &name,
                    &payload,
                );
            }
            SerfMsg::Response(r) => self.encode_response(r, out),
            SerfMsg::Relay {
                dest,
                dest_name,
                inner,
            } => {
                let mut msg = Vec::new();
                self.encode_response(inner, &mut msg);
                RelayMsg {
                    dest: dest.get(),
                    dest_name: dest_name.get(),
                    inner: &msg,
                }
                .encode(out)
            }
            SerfMsg::PushPull(s) => self.encode_serf_state(s, out),
            SerfMsg::Raw(b) => out.extend_from_slice(small(b)),
        }
    }

    fn encode_stream_msg(&self, m: &StreamMsg, out: &mut Vec<u8>) {
        match m {
            StreamMsg::PushPull { join, nodes, state } => {
                let metas: Vec<Vec<u8>> = nodes
                    .iter()
                    .take(8)
                    .map(|n| {
                        let mut m = Vec::new();
                        Self::meta(&n.meta, &mut m);
                        m
                    })
                    .collect();
                let states = [
                    WireState::Alive,
                    WireState::Suspect,
                    WireState::Dead,
                    WireState::Left,
                ];
                let push: Vec<PushNode<'_>> = nodes
                    .iter()
                    .zip(&metas)
                    .map(|(n, meta)| PushNode {
                        name: n.name.get(),
                        addr: n.addr.get(),
                        meta,
                        incarnation: self.incarnation(n.incarnation, n.name),
                        state: states[usize::from(n.state) % 4],
                        versions: Self::versions(n.versions),
                    })
                    .collect();
                let mut user = Vec::new();
                if let Some(s) = state {
                    self.encode_serf_state(s, &mut user);
                }
                PushPull::encode(out, *join, push, &user);
            }
            StreamMsg::Message(m) => self.encode_msg(m, out),
        }
    }

    /// Seals a body as a packet or frame, the way a peer with these settings would.
    fn seal(&mut self, body: &[u8], seal: Seal) -> Vec<u8> {
        let mut t = Transforms::default();
        match seal {
            Seal::Plain => {}
            Seal::Checksum(i) => {
                t.checksum = Some(Checksum::ALL[usize::from(i) % Checksum::ALL.len()])
            }
            Seal::Compressed(i) => {
                t.compression = Some(Compressor::ALL[usize::from(i) % Compressor::ALL.len()])
            }
            Seal::Encrypted(k) => {
                t.keyring = Some(Keyring::new(key(k)));
                t.encrypt_outgoing = true;
            }
        }
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        t.seal(body, &mut self.rng, &mut scratch, &mut out)
            .expect("sealing with a valid key cannot fail");
        out
    }

    // ---- steps --------------------------------------------------------------------------

    fn step(&mut self, step: &Step) {
        match step {
            Step::Datagram { from, msgs, seal } => {
                let mut body = Vec::new();
                for m in msgs.iter().take(8) {
                    self.encode_msg(m, &mut body);
                }
                let packet = self.seal(&body, *seal);
                self.node
                    .handle_datagram(self.now, addr(from.index()), &packet);
            }
            Step::InboundStream {
                from,
                frame,
                seal,
                end,
            } => {
                if let Some(id) = self.node.accept_stream(self.now, addr(from.index())) {
                    let mut body = Vec::new();
                    self.encode_stream_msg(frame, &mut body);
                    let frame = self.seal(&body, *seal);
                    self.node
                        .handle_stream(self.now, id, StreamEvent::Frame(&frame));
                    self.drain();
                    self.check();
                    match end {
                        StreamEnd::Open => {}
                        StreamEnd::Closed => {
                            self.node.handle_stream(self.now, id, StreamEvent::Closed)
                        }
                        StreamEnd::Failed => {
                            self.node.handle_stream(self.now, id, StreamEvent::Failed)
                        }
                    }
                }
            }
            Step::AnswerStream { pick, answer } => {
                if self.outbound_streams.is_empty() {
                    return;
                }
                let id = self.outbound_streams[usize::from(*pick) % self.outbound_streams.len()];
                match answer {
                    StreamAnswer::Frame(m, seal) => {
                        let mut body = Vec::new();
                        self.encode_stream_msg(m, &mut body);
                        let frame = self.seal(&body, *seal);
                        self.node
                            .handle_stream(self.now, id, StreamEvent::Frame(&frame));
                    }
                    StreamAnswer::Garbage(b) => {
                        self.node
                            .handle_stream(self.now, id, StreamEvent::Frame(small(b)))
                    }
                    StreamAnswer::Closed => {
                        self.node.handle_stream(self.now, id, StreamEvent::Closed)
                    }
                    StreamAnswer::Failed => {
                        self.node.handle_stream(self.now, id, StreamEvent::Failed)
                    }
                }
            }
            Step::Wait(ms) => {
                let until = self.now + Duration::from_millis(u64::from(*ms));
                self.advance(until);
                return;
            }
            Step::WaitLong(s) => {
                let until = self.now + Duration::from_secs(u64::from(*s));
                self.advance(until);
                return;
            }
            Step::Command(c) => self.command(c),
        }
        self.drain();
        self.check();
    }

    fn command(&mut self, c: &Command) {
        let now = self.now;
        let node = &mut self.node;
        match c {
            Command::Join { seeds, ignore_old } => {
                let seeds: Vec<SocketAddr> = seeds.iter().take(3).map(|a| a.get()).collect();
                if node.join(now, &seeds, *ignore_old).is_ok() {
                    // The application joined: a leave may be cancelled, and the node may
                    // be alive again.
                    self.left = false;
                    self.leave_started = None;
                }
            }
            Command::Leave => {
                // Every accepted leave is answered by a LeaveCompleted: a second one while
                // leaving shares the first's, one once left reports it again.
                if node.leave(now).is_ok() && self.leave_started.is_none() {
                    self.leave_started = Some(now);
                }
            }
            Command::SetTags(pairs) => {
                let _ = node.set_tags(now, tags_of(pairs));
            }
            Command::UserEvent {
                name,
                payload,
                coalesce,
            } => {
                let name = EVENT_NAMES[usize::from(*name) % EVENT_NAMES.len()];
                let _ = node.user_event(now, name, small(payload), *coalesce);
            }
            Command::Query {
                name,
                payload,
                filter_nodes,
                filter_tag,
                request_ack,
                relay_factor,
                timeout_ms,
            } => {
                let params = QueryParams {
                    filter_nodes: filter_nodes
                        .iter()
                        .take(4)
                        .map(|n| n.get().to_string())
                        .collect(),
                    filter_tags: filter_tag
                        .iter()
                        .map(|&(t, e)| {
                            (
                                TAG_KEYS[usize::from(t) % TAG_KEYS.len()].to_string(),
                                TAG_EXPRS[usize::from(e) % TAG_EXPRS.len()].to_string(),
                            )
                        })
                        .collect(),
                    request_ack: *request_ack,
                    relay_factor: *relay_factor,
                    timeout: timeout_ms.map(|ms| Duration::from_millis(u64::from(ms))),
                };
                let name = QUERY_NAMES[usize::from(*name) % QUERY_NAMES.len()];
                let _ = node.query(now, name, small(payload), &params);
            }
            Command::Respond { pick, payload } => {
                if !self.received_queries.is_empty() {
                    let h = self.received_queries[usize::from(*pick) % self.received_queries.len()];
                    let _ = node.respond(now, h, small(payload));
                }
            }
            Command::ForceLeave { node: n, prune } => {
                let _ = node.force_leave(now, n.get(), *prune);
            }
            Command::InstallKey(k) => {
                let _ = node.install_key(now, &key(*k));
            }
            Command::UseKey(k) => {
                let _ = node.use_key(now, &key(*k));
            }
            Command::RemoveKey(k) => {
                let _ = node.remove_key(now, &key(*k));
            }
            Command::ListKeys => {
                let _ = node.list_keys(now);
            }
            Command::Reachability => {
                let _ = node.reachability(now, None);
            }
            Command::Shutdown => {
                node.shutdown();
                self.shut_down = true;
            }
        }
    }
}

fuzz_target!(|script: Script| {
    let mut h = Harness::new(&script.setup);
    for step in script.steps.iter().take(64) {
        h.step(step);
    }
    // Finish any leave: drive the node for as long as a leave may take.
    if h.leave_started.is_some() {
        let until = h.now + h.leave_bound;
        h.advance(until);
        assert!(
            h.leave_started.is_none() || h.node.state() == SerfState::Left || h.shut_down,
            "a leave did not end within {:?}",
            h.leave_bound
        );
    }
});
