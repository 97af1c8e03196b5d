//! The one seam between the simulator and a protocol core: [`SimNode`].
//!
//! The engine never touches a core's own types. It feeds inputs, drains normalized
//! outputs ([`SimOutput`]) and reads a small view for invariants and measurements. The
//! memberlist layer implements it here ([`MemberlistNode`]); the Serf layer, which has the
//! same input/output shape, will implement it next to it.

use crate::scenario::SerfOverrides;
use core::net::SocketAddr;
use serf_proto::memberlist::{Config, Event, Memberlist, NodeState};
use serf_proto::{Instant, Name, Output, StreamEvent, StreamId};
use std::collections::BTreeSet;

/// A member's state in one node's view, normalized across layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberState {
    /// Alive (for Serf: alive or leaving).
    Alive,
    /// Suspected, not yet declared failed.
    Suspect,
    /// Declared failed.
    Dead,
    /// Left gracefully.
    Left,
}

impl MemberState {
    /// Whether the member counts as part of the cluster (alive or suspect).
    pub fn is_member(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }
}

/// One member as a node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberView {
    /// Its state.
    pub state: MemberState,
    /// Its incarnation.
    pub incarnation: u32,
    /// The address the view holds for it.
    pub addr: SocketAddr,
}

/// How a member event changed a node's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// The member entered the view (joined, or came back after failing or leaving).
    Joined,
    /// The member stayed in the view; its data or incarnation changed.
    Updated,
    /// The member was declared failed.
    Failed,
    /// The member left gracefully.
    Left,
}

/// What a node reports, normalized. Only what the simulator checks or measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimEvent {
    /// The node's view of a member changed. Must be a transition: `Joined` only when the
    /// member was not in the view, `Failed`/`Left`/`Updated` only when it was (the engine
    /// counts views from these).
    Member {
        /// The member.
        name: Name,
        /// Its incarnation in the message that caused the change.
        incarnation: u32,
        /// What changed.
        change: Change,
    },
    /// A user event reached this node for the first time.
    UserEvent {
        /// The event's id.
        id: u64,
    },
    /// A query reached this node for the first time (it answers it).
    QueryReceived {
        /// The query's id.
        id: u64,
    },
    /// This node asked query `id`, and `from` answered.
    QueryResponse {
        /// The query's id.
        id: u64,
        /// Who answered.
        from: Name,
    },
    /// Query `id`, asked by this node, ended (Serf layer only): at its timeout, or
    /// earlier once every node it expected an answer from had answered.
    QueryDone {
        /// The query's id.
        id: u64,
        /// Whether every expected node answered (the query could end early).
        complete: bool,
        /// The timeout the query had.
        timeout: core::time::Duration,
    },
    /// A join finished; `ok` if at least one seed answered.
    JoinDone {
        /// Whether any seed answered.
        ok: bool,
    },
    /// A graceful leave finished.
    LeaveDone,
    /// Another node claims a known member's name from another address.
    NameConflict,
    /// A keyring operation this node started across the cluster ended (Serf layer).
    KeyDone {
        /// Alive members when it ended.
        nodes: usize,
        /// Nodes that answered.
        answered: usize,
        /// Nodes that answered with an error.
        errors: usize,
    },
}

/// A keyring operation across the cluster (`serf keys -install/-use/-remove`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyOp {
    /// Add the key to every keyring.
    Install,
    /// Make it every node's primary key (encrypt with it).
    Use,
    /// Remove it from every keyring.
    Remove,
}

/// The 32-byte key a scenario calls `key = k` (1 to 255): `k` repeated. `[config]
/// encryption = true` starts every node with key 1.
pub fn scenario_key(k: u8) -> serf_proto::SecretKey {
    serf_proto::SecretKey([k; 32])
}

/// The next thing a node wants done; the drain ends at `Timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimOutput {
    /// Send the datagram in the buffer to `to`.
    Transmit {
        /// Destination.
        to: SocketAddr,
    },
    /// Open a stream to `to`.
    OpenStream {
        /// The node's name for it.
        id: StreamId,
        /// Destination.
        to: SocketAddr,
    },
    /// Send the frame in the buffer on stream `id`.
    SendFrame {
        /// The stream.
        id: StreamId,
    },
    /// Close stream `id` after its frames.
    CloseStream {
        /// The stream.
        id: StreamId,
    },
    /// Drop stream `id` at once: what is in flight is lost and the peer's end fails.
    AbortStream {
        /// The stream.
        id: StreamId,
    },
    /// Something the simulator records.
    Event(SimEvent),
    /// Nothing more until this instant (or the next input).
    Timeout(Instant),
}

impl SimOutput {
    /// The simulator's form of a core's output, or the core's event to translate.
    pub fn from_core<E>(out: serf_proto::Output<E>) -> Result<SimOutput, E> {
        Ok(match out {
            Output::Transmit { to } => SimOutput::Transmit { to },
            Output::OpenStream { id, to, .. } => SimOutput::OpenStream { id, to },
            Output::SendFrame { id } => SimOutput::SendFrame { id },
            Output::CloseStream { id } => SimOutput::CloseStream { id },
            Output::AbortStream { id } => SimOutput::AbortStream { id },
            Output::Timeout(at) => SimOutput::Timeout(at),
            Output::Event(e) => return Err(e),
        })
    }
}

/// Counters the simulator reads after each step (cheap to copy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCounters {
    /// Suspicions started or learned.
    pub suspicions: u64,
    /// Probes that ended without an ack.
    pub probes_failed: u64,
    /// Times the node refuted an accusation about itself.
    pub refutes: u64,
    /// Members this node declared dead after their suspicion expired.
    pub deaths_declared: u64,
    /// Broadcasts dropped because a queue overflowed.
    pub broadcasts_dropped: u64,
    /// The deepest broadcast queue now.
    pub queue_depth: usize,
    /// The configured bound on every broadcast queue.
    pub queue_limit: usize,
    /// Entries in the member table, any state.
    pub members: usize,
    /// The configured bound on the member table.
    pub members_limit: usize,
    /// Lifeguard's local health score (0 is healthy).
    pub health: u32,
}

/// Who a node is and how it is configured.
#[derive(Debug, Clone)]
pub struct NodeSpec<C> {
    /// Its name, unique in the run.
    pub name: String,
    /// Its address.
    pub addr: SocketAddr,
    /// Seed of its own RNG (derived from the run seed and the node's life).
    pub seed: u64,
    /// Its configuration.
    pub config: C,
    /// Size in bytes of the user events and queries it sends (padding included).
    pub event_size: usize,
}

/// A protocol core as the simulator drives it.
///
/// The contract is the core's: after every input or command, the engine calls
/// [`SimNode::poll`] until it returns [`SimOutput::Timeout`]. Implementations translate
/// their own events into [`SimEvent`]s and may act as a tiny application (answering
/// queries, re-gossiping events) inside `poll`.
///
/// # For implementers (the Serf layer)
///
/// - Names are `node-<i>` and addresses come from [`NodeSpec`]; the engine maps member
///   names back to hosts, so report members by the name they joined with.
/// - Member events must be transitions (see [`SimEvent::Member`]): Serf's alive and
///   leaving map to members, failed to [`Change::Failed`], left to [`Change::Left`];
///   reaping a failed member needs no event. [`SimNode::member`] reports the same view.
/// - `user_event(now, id)` maps to `Serf::user_event` with the id in the payload (no
///   coalescing); report [`SimEvent::UserEvent`] the first time a node delivers that id.
///   `query(now, id)` maps to `Serf::query`: report [`SimEvent::QueryReceived`] on each
///   node that gets it, answer it inside `poll`, and report [`SimEvent::QueryResponse`]
///   at the asker for each answer, then [`SimEvent::QueryDone`] when it ends.
/// - `join` maps to `join(now, seeds, ignore_old = false)`; `shutdown` returns the
///   snapshot that `start` gets back when a scenario restarts a node with `keep_state`.
pub trait SimNode: Sized {
    /// Short name of the implementation, shown in reports ("memberlist", "serf").
    const KIND: &'static str;
    /// Whether queries end at the asker ([`SimEvent::QueryDone`]); only then can a
    /// scenario expect them to end early.
    const QUERIES_END: bool = false;
    /// Whether the layer runs keyring operations across the cluster ([`SimNode::key_op`]).
    const KEY_OPS: bool = false;
    /// The core's configuration.
    type Config: Clone + core::fmt::Debug;
    /// What survives a restart "with its state" (Serf: its snapshot). Layers that keep
    /// nothing use `()`.
    type Snapshot;

    /// Builds this layer's configuration from the memberlist settings the scenario made.
    /// The Serf layer applies `serf`; the memberlist layer ignores it.
    fn configure(memberlist: Config, serf: &SerfOverrides) -> Result<Self::Config, String>;
    /// Sets the permanent seeds (`[serf] seeds`): addresses the node retries for ever
    /// while they are not members. Only the Serf layer has them; the memberlist layer,
    /// like every `[serf]` setting, ignores them.
    fn set_seeds(_config: &mut Self::Config, _seeds: &[SocketAddr]) {}
    /// Starts a node at `now`, from `snapshot` when restarting with its state.
    fn start(
        spec: &NodeSpec<Self::Config>,
        now: Instant,
        snapshot: Option<Self::Snapshot>,
    ) -> Result<Self, String>;
    /// A datagram arrived.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]);
    /// A peer opened a stream; `None` refuses it.
    fn accept_stream(&mut self, now: Instant, from: SocketAddr) -> Option<StreamId>;
    /// Something happened on a stream.
    fn handle_stream(&mut self, now: Instant, id: StreamId, event: StreamEvent<'_>);
    /// Time passed.
    fn handle_timeout(&mut self, now: Instant);
    /// The next output; datagrams and frames are written into `buf`.
    fn poll(&mut self, now: Instant, buf: &mut Vec<u8>) -> SimOutput;
    /// Joins through `seeds`. False if refused at once.
    fn join(&mut self, now: Instant, seeds: &[SocketAddr]) -> bool;
    /// Leaves gracefully.
    fn leave(&mut self, now: Instant);
    /// Stops the node (a crash or the end of a leave) and returns what would survive on
    /// disk.
    fn shutdown(&mut self) -> Option<Self::Snapshot>;
    /// Sends user event `id` to the cluster. False if refused.
    fn user_event(&mut self, now: Instant, id: u64) -> bool;
    /// Asks query `id` of the cluster. False if refused.
    fn query(&mut self, now: Instant, id: u64) -> bool;
    /// Starts keyring operation `op` with key `key` (see [`scenario_key`]) across the
    /// cluster; reports [`SimEvent::KeyDone`] when it ends. False if refused (layers
    /// without `KEY_OPS` refuse all).
    fn key_op(&mut self, now: Instant, op: KeyOp, key: u8) -> bool {
        let _ = (now, op, key);
        false
    }
    /// This node's own incarnation.
    fn incarnation(&self) -> u32;
    /// A member in this node's view.
    fn member(&self, name: &str) -> Option<MemberView>;
    /// Members alive or suspect in this node's view, itself included.
    fn num_alive(&self) -> usize;
    /// Counters and queue depths.
    fn counters(&self) -> NodeCounters;
    /// How long this node may keep a failed or left member before forgetting it (after
    /// which it may learn it again at a lower incarnation).
    fn forget_after(config: &Self::Config) -> core::time::Duration;
}

/// The memberlist layer as a simulated node.
///
/// User events and queries are modelled at the application level, as Serf does them on
/// top of memberlist: an event is a gossiped user message carrying its id; every node that
/// sees an id for the first time reports it and gossips it once more (Serf re-broadcasts
/// new user events, so they spread as an epidemic instead of only from their origin). A
/// query is the same, plus a direct answer (`send_user_message`) to the asker.
#[derive(Debug)]
pub struct MemberlistNode {
    ml: Memberlist,
    event_size: usize,
    /// Ids of events and queries already seen (dedup, as Serf's recent-event buffer).
    seen: BTreeSet<u64>,
}

/// Pads a payload to `size` bytes with filler derived from `id` (SplitMix64), which
/// compression cannot shrink the way it would zeros, so large payloads cost what they
/// would in production.
pub fn pad_payload(p: &mut Vec<u8>, id: u64, size: usize) {
    let mut i = 0u64;
    while p.len() < size {
        let word = crate::engine::derive_seed(id, i).to_le_bytes();
        let take = (size - p.len()).min(8);
        p.extend_from_slice(&word[..take]);
        i += 1;
    }
}

const TAG_EVENT: u8 = b'E';
const TAG_QUERY: u8 = b'Q';
const TAG_RESPONSE: u8 = b'R';

impl MemberlistNode {
    /// The memberlist core inside.
    pub fn inner(&self) -> &Memberlist {
        &self.ml
    }

    fn payload(&self, tag: u8, id: u64) -> Vec<u8> {
        let mut p = Vec::with_capacity(self.event_size.max(16));
        p.push(tag);
        p.extend_from_slice(&id.to_le_bytes());
        let addr = self.ml.local_addr().to_string();
        p.push(addr.len() as u8);
        p.extend_from_slice(addr.as_bytes());
        pad_payload(&mut p, id, self.event_size);
        p
    }

    /// Handles a user message; returns an event to report, if any.
    fn on_user_message(&mut self, now: Instant, payload: &[u8]) -> Option<SimEvent> {
        if payload.len() < 10 {
            return None;
        }
        let tag = payload[0];
        // Checked above: at least 9 bytes after the tag.
        let id = u64::from_le_bytes(payload[1..9].try_into().expect("8 bytes"));
        let alen = usize::from(payload[9]);
        let origin = payload
            .get(10..10 + alen)
            .and_then(|a| core::str::from_utf8(a).ok());
        match tag {
            TAG_EVENT | TAG_QUERY => {
                if !self.seen.insert(id) {
                    return None;
                }
                // Re-gossip once, as Serf does with a new user event or query.
                let _ = self.ml.broadcast(payload);
                if tag == TAG_EVENT {
                    return Some(SimEvent::UserEvent { id });
                }
                if let Some(to) = origin.and_then(|o| o.parse::<SocketAddr>().ok()) {
                    let mut answer = Vec::with_capacity(32);
                    answer.push(TAG_RESPONSE);
                    answer.extend_from_slice(&id.to_le_bytes());
                    let name = self.ml.local_name().as_str();
                    answer.push(name.len() as u8);
                    answer.extend_from_slice(name.as_bytes());
                    let _ = self.ml.send_user_message(now, to, &answer);
                }
                Some(SimEvent::QueryReceived { id })
            }
            TAG_RESPONSE => {
                let from = origin.and_then(|n| Name::new(n).ok())?;
                Some(SimEvent::QueryResponse { id, from })
            }
            _ => None,
        }
    }
}

fn member(n: &serf_proto::memberlist::Node, change: Change) -> SimEvent {
    SimEvent::Member {
        name: n.name().clone(),
        incarnation: n.incarnation(),
        change,
    }
}

fn normalize(state: NodeState) -> MemberState {
    match state {
        NodeState::Alive => MemberState::Alive,
        NodeState::Suspect => MemberState::Suspect,
        NodeState::Dead => MemberState::Dead,
        NodeState::Left => MemberState::Left,
    }
}

impl SimNode for MemberlistNode {
    const KIND: &'static str = "memberlist";
    type Config = Config;
    type Snapshot = ();

    fn configure(memberlist: Config, _serf: &SerfOverrides) -> Result<Config, String> {
        memberlist.validate().map_err(|e| e.to_string())?;
        Ok(memberlist)
    }

    fn start(spec: &NodeSpec<Config>, now: Instant, _snapshot: Option<()>) -> Result<Self, String> {
        // Memberlist keeps nothing on disk: a restart "with its state" is a fresh node too.
        let ml = Memberlist::new(
            spec.config.clone(),
            &spec.name,
            spec.addr,
            b"",
            spec.seed,
            now,
        )
        .map_err(|e| e.to_string())?;
        Ok(MemberlistNode {
            ml,
            event_size: spec.event_size,
            seen: BTreeSet::new(),
        })
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.ml.handle_datagram(now, from, data);
    }

    fn accept_stream(&mut self, now: Instant, from: SocketAddr) -> Option<StreamId> {
        self.ml.accept_stream(now, from)
    }

    fn handle_stream(&mut self, now: Instant, id: StreamId, event: StreamEvent<'_>) {
        self.ml.handle_stream(now, id, event);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.ml.handle_timeout(now);
    }

    fn poll(&mut self, now: Instant, buf: &mut Vec<u8>) -> SimOutput {
        loop {
            let ev = match SimOutput::from_core(self.ml.poll_output(buf)) {
                Ok(out) => return out,
                Err(e) => e,
            };
            let out = match ev {
                Event::NodeJoined(n) => Some(member(&n, Change::Joined)),
                Event::NodeUpdated(n) => Some(member(&n, Change::Updated)),
                Event::NodeLeft(n) => {
                    let change = if n.state() == NodeState::Left {
                        Change::Left
                    } else {
                        Change::Failed
                    };
                    Some(member(&n, change))
                }
                Event::UserMessage { payload, .. } => self.on_user_message(now, &payload),
                Event::JoinCompleted { joined, .. } => Some(SimEvent::JoinDone { ok: joined > 0 }),
                Event::LeaveCompleted { .. } => Some(SimEvent::LeaveDone),
                Event::NameConflict { .. } => Some(SimEvent::NameConflict),
                Event::PingComplete { .. }
                | Event::RemoteState { .. }
                | Event::BroadcastDone { .. } => None,
            };
            if let Some(e) = out {
                return SimOutput::Event(e);
            }
        }
    }

    fn join(&mut self, now: Instant, seeds: &[SocketAddr]) -> bool {
        self.ml.join(now, seeds).is_ok()
    }

    fn leave(&mut self, now: Instant) {
        let _ = self.ml.leave(now);
    }

    fn shutdown(&mut self) -> Option<()> {
        self.ml.shutdown();
        None
    }

    fn user_event(&mut self, _now: Instant, id: u64) -> bool {
        self.seen.insert(id);
        let p = self.payload(TAG_EVENT, id);
        self.ml.broadcast(&p).is_ok()
    }

    fn query(&mut self, _now: Instant, id: u64) -> bool {
        self.seen.insert(id);
        let p = self.payload(TAG_QUERY, id);
        self.ml.broadcast(&p).is_ok()
    }

    fn incarnation(&self) -> u32 {
        self.ml.local_node().incarnation()
    }

    fn member(&self, name: &str) -> Option<MemberView> {
        self.ml.member(name).map(|n| MemberView {
            state: normalize(n.state()),
            incarnation: n.incarnation(),
            addr: n.addr(),
        })
    }

    fn num_alive(&self) -> usize {
        self.ml.num_alive()
    }

    fn counters(&self) -> NodeCounters {
        let m = self.ml.metrics();
        let c = self.ml.config();
        NodeCounters {
            suspicions: m.suspicions,
            probes_failed: m.probes_failed,
            refutes: m.refutes,
            deaths_declared: m.deaths_declared,
            broadcasts_dropped: m.broadcasts_dropped,
            queue_depth: self.ml.queue_depths().into_iter().max().unwrap_or(0),
            queue_limit: c.max_queue_depth,
            members: self.ml.num_members(),
            members_limit: c.max_members,
            health: self.ml.health_score(),
        }
    }

    fn forget_after(config: &Config) -> core::time::Duration {
        config.gossip_to_the_dead_time
    }
}
