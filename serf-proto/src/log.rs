//! What the core would log: the records Go's memberlist and serf print (a member
//! suspected, a refutation, a failed push-pull, a member event, a reconnect attempt, …),
//! as data a driver routes to its logger and to a log stream (`serf monitor`).
//!
//! The core has no logger: it reads no clock and writes nowhere. Each record carries the
//! `now` of the input that caused it, a [`Level`], and a structured [`LogMessage`] whose
//! `Display` is Go's wording, so an agent's log reads like HashiCorp's. Records wait in a
//! bounded queue until the driver takes them with `poll_log` (on [`crate::Serf`] or
//! [`crate::memberlist::Memberlist`]); a driver that never does loses only the oldest
//! records, counted in [`crate::Metrics::logs_dropped`]. Recording never changes what the
//! protocol does, so runs stay deterministic whatever the level.

use crate::memberlist::JoinError;
use crate::name::Name;
use crate::serf::MemberEventKind;
use crate::time::Instant;
use crate::transform::TransformError;
use core::fmt;
use core::net::SocketAddr;
use std::collections::VecDeque;

/// How much a record matters, HashiCorp's levels (`[DEBUG]`, `[INFO]`, `[WARN]`, `[ERR]`).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Every message in and out; nothing of this level is recorded today.
    Trace,
    /// Routine protocol steps: probes failing once, intents and events received.
    Debug,
    /// Membership changes and what the node decided: suspect, failed, joined, reconnect.
    Info,
    /// Something is wrong but handled: refutations, refused merges, dropped input.
    Warn,
    /// An exchange failed: push-pull, fallback ping, a conflicting address.
    Error,
}

impl Level {
    /// HashiCorp's tag for the level, as printed between brackets.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERR",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing the core would log.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The `now` of the input that caused it.
    pub at: Instant,
    /// Its level (also [`LogMessage::level`]).
    pub level: Level,
    /// What happened.
    pub message: LogMessage,
}

impl LogRecord {
    /// The layer that speaks: `"memberlist"` or `"serf"`, the prefix of Go's lines.
    pub fn target(&self) -> &'static str {
        self.message.target()
    }
}

impl fmt::Display for LogRecord {
    /// `[LEVEL] target: message`, HashiCorp's line without its timestamp.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.level, self.target(), self.message)
    }
}

/// What happened, with the names and addresses involved. `Display` gives Go's wording.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "kebab-case"))]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogMessage {
    // ---- memberlist ----
    /// Our probe of `node` got no ack, direct, indirect or over a stream: we suspect it.
    SuspectNoAck {
        /// The member probed.
        node: Name,
    },
    /// A suspicion ran out: `node` is declared dead.
    MarkedDead {
        /// The member.
        node: Name,
        /// Independent confirmations received (Lifeguard).
        confirmations: u32,
    },
    /// Someone gossiped that we are suspect, dead or alive with other data: we refute
    /// with a higher incarnation.
    Refuting {
        /// `"suspect"`, `"dead"` or `"alive"`.
        about: &'static str,
        /// Who said so, when known.
        from: Option<Name>,
        /// The incarnation we now announce.
        incarnation: u32,
    },
    /// Only the fallback ping over a stream reached `node`: UDP is probably blocked.
    UdpProbesFailing {
        /// The member.
        node: Name,
    },
    /// A direct probe of `node` timed out (indirect probes follow).
    ProbeTimedOut {
        /// The member.
        node: Name,
    },
    /// Another node claims `node`'s name from a different address.
    ConflictingAddress {
        /// The contested name.
        node: Name,
        /// The address we hold for it.
        mine: SocketAddr,
        /// The address now claiming it.
        theirs: SocketAddr,
    },
    /// A datagram could not be opened (label, checksum, decryption, decompression).
    PacketRefused {
        /// Where it came from.
        from: SocketAddr,
        /// Why.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_impls::display")
        )]
        reason: TransformError,
    },
    /// A push-pull exchange with `addr` failed.
    PushPullFailed {
        /// The peer.
        addr: SocketAddr,
        /// Why.
        reason: JoinError,
    },
    /// Joining through `addr` failed.
    JoinFailed {
        /// The address tried.
        addr: SocketAddr,
        /// Why.
        reason: JoinError,
    },
    /// The layer above refused to merge with the members a push-pull offered.
    MergeRefused {
        /// The peer.
        addr: SocketAddr,
        /// The layer above's reason.
        reason: String,
    },
    // ---- serf ----
    /// A member event the Serf layer delivers (`EventMemberJoin: name ip`).
    Member {
        /// Which event.
        event: MemberEventKind,
        /// The member.
        node: Name,
        /// Its address.
        addr: SocketAddr,
    },
    /// Serf's reconnect tick tries a failed member again.
    Reconnecting {
        /// The member.
        node: Name,
        /// Its last address.
        addr: SocketAddr,
    },
    /// A user event was received for the first time.
    UserEventReceived {
        /// The event's name.
        name: String,
    },
    /// A query was received for the first time.
    QueryReceived {
        /// The query's name.
        name: String,
    },
    /// A join or leave intent about `node` was received.
    IntentReceived {
        /// `"join"` or `"leave"`.
        intent: &'static str,
        /// The member it is about.
        node: Name,
    },
    /// A key-management query (`_serf_install-key` and friends) was received.
    KeyQuery {
        /// `"install"`, `"use"`, `"remove"` or `"list"`.
        op: &'static str,
    },
    /// A join the node wanted to make itself (reconnect, permanent seed, snapshot rejoin)
    /// was refused because it is leaving.
    JoinRefusedLeaving,
    /// Another node claims our own name: a vote decides who keeps it.
    NameConflict {
        /// The other address.
        theirs: SocketAddr,
    },
    /// The name-conflict vote ended.
    NameConflictResolved {
        /// Whether we keep the name.
        won: bool,
        /// Votes for us.
        votes: usize,
        /// Answers received.
        responses: usize,
    },
}

impl LogMessage {
    /// The level of [`LogMessage::Refuting`], to skip building it when not recorded.
    pub(crate) const REFUTING_LEVEL: Level = Level::Warn;

    /// The level Go logs this at.
    pub fn level(&self) -> Level {
        use LogMessage::*;
        match self {
            ProbeTimedOut { .. }
            | UserEventReceived { .. }
            | QueryReceived { .. }
            | IntentReceived { .. }
            | JoinRefusedLeaving => Level::Debug,
            SuspectNoAck { .. }
            | MarkedDead { .. }
            | Member { .. }
            | Reconnecting { .. }
            | KeyQuery { .. } => Level::Info,
            NameConflictResolved { won: true, .. } => Level::Info,
            Refuting { .. }
            | UdpProbesFailing { .. }
            | PacketRefused { .. }
            | JoinFailed { .. }
            | MergeRefused { .. }
            | NameConflict { .. }
            | NameConflictResolved { won: false, .. } => Level::Warn,
            ConflictingAddress { .. } | PushPullFailed { .. } => Level::Error,
        }
    }

    /// The layer that speaks, as Go prefixes its lines.
    pub fn target(&self) -> &'static str {
        use LogMessage::*;
        match self {
            SuspectNoAck { .. }
            | MarkedDead { .. }
            | Refuting { .. }
            | UdpProbesFailing { .. }
            | ProbeTimedOut { .. }
            | ConflictingAddress { .. }
            | PacketRefused { .. }
            | PushPullFailed { .. }
            | JoinFailed { .. }
            | MergeRefused { .. } => "memberlist",
            _ => "serf",
        }
    }
}

impl fmt::Display for LogMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LogMessage::*;
        match self {
            SuspectNoAck { node } => write!(f, "Suspect {node} has failed, no acks received"),
            MarkedDead {
                node,
                confirmations,
            } => write!(
                f,
                "Marking {node} as failed, suspect timeout reached ({confirmations} peer confirmations)"
            ),
            Refuting {
                about,
                from,
                incarnation,
            } => {
                write!(f, "Refuting {} {about} message", article(about))?;
                if let Some(from) = from {
                    write!(f, " (from: {from})")?;
                }
                write!(f, " with incarnation {incarnation}")
            }
            UdpProbesFailing { node } => write!(
                f,
                "Was able to connect to {node} over TCP but UDP probes failed, network may be misconfigured"
            ),
            ProbeTimedOut { node } => write!(f, "Failed UDP ping: {node} (timeout reached)"),
            ConflictingAddress { node, mine, theirs } => write!(
                f,
                "Conflicting address for {node}. Mine: {mine} Theirs: {theirs}"
            ),
            PacketRefused { from, reason } => {
                write!(f, "Failed to receive packet: {reason} from={from}")
            }
            PushPullFailed { addr, reason } => write!(f, "Push/Pull with {addr} failed: {reason}"),
            JoinFailed { addr, reason } => write!(f, "Failed to join {addr}: {reason}"),
            MergeRefused { addr, reason } => {
                write!(f, "Cluster merge with {addr} refused: {reason}")
            }
            Member { event, node, addr } => {
                let go_name = match event {
                    MemberEventKind::Join => "EventMemberJoin",
                    MemberEventKind::Leave => "EventMemberLeave",
                    MemberEventKind::Failed => "EventMemberFailed",
                    MemberEventKind::Update => "EventMemberUpdate",
                    MemberEventKind::Reap => "EventMemberReap",
                };
                write!(f, "{go_name}: {node} {}", addr.ip())
            }
            Reconnecting { node, addr } => write!(f, "attempting reconnect to {node} {addr}"),
            UserEventReceived { name } => write!(f, "messageUserEventType: {name}"),
            QueryReceived { name } => write!(f, "messageQueryType: {name}"),
            IntentReceived { intent, node } => {
                let kind = if *intent == "join" { "Join" } else { "Leave" };
                write!(f, "message{kind}Type: {node}")
            }
            KeyQuery { op } => write!(f, "Received {op}-key query"),
            JoinRefusedLeaving => f.write_str("not joining while leaving the cluster"),
            NameConflict { theirs } => write!(
                f,
                "Name conflict: {theirs} claims our name; asking the cluster to vote"
            ),
            NameConflictResolved {
                won,
                votes,
                responses,
            } => {
                if *won {
                    write!(
                        f,
                        "majority in name conflict resolution [{votes} / {responses}]"
                    )
                } else {
                    write!(
                        f,
                        "minority in name conflict resolution, quitting [{votes} / {responses}]"
                    )
                }
            }
        }
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// How many records wait for `poll_log` before the oldest are dropped.
pub const LOG_QUEUE_CAPACITY: usize = 1024;

/// The bounded queue of records, filtered by level as they are made.
#[derive(Debug)]
pub(crate) struct LogQueue {
    min: Option<Level>,
    records: VecDeque<LogRecord>,
    pub(crate) dropped: u64,
}

impl LogQueue {
    pub(crate) fn new(min: Option<Level>) -> LogQueue {
        LogQueue {
            min,
            records: VecDeque::new(),
            dropped: 0,
        }
    }

    pub(crate) fn set_level(&mut self, min: Option<Level>) {
        self.min = min;
    }

    /// Whether a record of `level` would be kept; callers building a costly message ask
    /// first.
    pub(crate) fn enabled(&self, level: Level) -> bool {
        self.min.is_some_and(|min| level >= min)
    }

    pub(crate) fn push(&mut self, at: Instant, message: LogMessage) {
        let level = message.level();
        if !self.enabled(level) {
            return;
        }
        if self.records.len() == LOG_QUEUE_CAPACITY {
            self.records.pop_front();
            self.dropped += 1;
        }
        self.records.push_back(LogRecord { at, level, message });
    }

    pub(crate) fn peek_at(&self) -> Option<Instant> {
        self.records.front().map(|r| r.at)
    }

    pub(crate) fn pop(&mut self) -> Option<LogRecord> {
        self.records.pop_front()
    }
}
