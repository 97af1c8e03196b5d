//! The public types of the Serf layer: the node's state, the events it reports, the
//! errors of its commands, its counters and statistics, and query parameters.

use super::*;
use crate::memberlist::{self, JoinError, JoinId};
use crate::name::Name;
use crate::time::Instant;
use crate::transform::{KeyringError, SecretKey};
use ::core::net::SocketAddr;
use ::core::time::Duration;
use bytes::Bytes;
use std::collections::BTreeMap;

/// The state of the local node (serf `SerfState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerfState {
    /// Running.
    Alive,
    /// A graceful leave is in progress.
    Leaving,
    /// Left the cluster.
    Left,
    /// Shut down.
    Shutdown,
}

/// Kinds of member events.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberEventKind {
    /// Members joined.
    Join,
    /// Members left gracefully.
    Leave,
    /// Members failed.
    Failed,
    /// Members' tags changed.
    Update,
    /// Failed or left members were forgotten.
    Reap,
}

impl MemberEventKind {
    /// The name the agent uses: "member-join", "member-leave", ...
    pub fn as_str(self) -> &'static str {
        match self {
            MemberEventKind::Join => "member-join",
            MemberEventKind::Leave => "member-leave",
            MemberEventKind::Failed => "member-failed",
            MemberEventKind::Update => "member-update",
            MemberEventKind::Reap => "member-reap",
        }
    }
}

/// A user event received.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEvent {
    /// Its Lamport time.
    pub ltime: LamportTime,
    /// Its name.
    pub name: String,
    /// Its payload.
    pub payload: Bytes,
    /// Whether the sender allowed coalescing.
    pub coalesce: bool,
}

/// Names a received query, to answer it with [`Serf::respond`].
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryHandle(pub u64);

/// Names a query we sent; its acks, responses and end carry it.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u32);

/// A query received, to answer with [`Serf::respond`] before its deadline.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryEvent {
    /// Pass to [`Serf::respond`].
    pub handle: QueryHandle,
    /// Its Lamport time.
    pub ltime: LamportTime,
    /// Its name.
    pub name: String,
    /// Its payload.
    pub payload: Bytes,
    /// The origin's name.
    pub source: Name,
    /// After this, responses are refused.
    pub deadline: Instant,
}

/// How a query is sent.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams {
    /// Only these nodes process it (empty: no node filter).
    pub filter_nodes: Vec<String>,
    /// Only nodes whose tag matches the regular expression (unanchored) process it.
    pub filter_tags: Vec<(String, String)>,
    /// Ask every node that processes it to ack at once.
    pub request_ack: bool,
    /// Each response is also relayed through this many random members (receivers use at
    /// most 5: Go's 255 let one query make every member send 256 packets to the asker).
    pub relay_factor: u8,
    /// How long to wait; `None` uses the default from the cluster size.
    pub timeout: Option<Duration>,
}

/// The aggregated answer to a keyring operation (serf `KeyResponse`).
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyResponse {
    /// Messages from nodes (errors, and warnings such as truncation).
    pub messages: BTreeMap<Name, String>,
    /// Alive members when the operation finished.
    pub num_nodes: usize,
    /// Nodes that answered.
    pub num_resp: usize,
    /// Nodes that answered with an error.
    pub num_err: usize,
    /// For list: how many nodes hold each key.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_impls::key_map")
    )]
    pub keys: BTreeMap<[u8; 32], usize>,
    /// For list: how many nodes use each key as primary.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_impls::key_map")
    )]
    pub primary_keys: BTreeMap<[u8; 32], usize>,
}

impl KeyResponse {
    /// Whether every alive node answered without error.
    pub fn is_complete_success(&self) -> bool {
        self.num_err == 0 && self.num_resp == self.num_nodes
    }
}

/// Why the node shut itself down.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    /// Another node holds our name and the cluster sided with it.
    NameConflictLost,
}

/// What the Serf layer reports to the application.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "kebab-case"))]
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Members joined, left, failed, were updated or reaped (several at once when
    /// coalescing).
    Member {
        /// What happened.
        kind: MemberEventKind,
        /// To whom.
        members: Vec<Member>,
    },
    /// A user event.
    User(UserEvent),
    /// A query to answer.
    Query(QueryEvent),
    /// A node acked our query.
    QueryAck {
        /// The query.
        id: QueryId,
        /// The node.
        from: Name,
    },
    /// A node answered our query.
    QueryResponse {
        /// The query.
        id: QueryId,
        /// The node.
        from: Name,
        /// Its answer.
        payload: Bytes,
    },
    /// Our query ended: every expected node answered, or the timeout passed.
    QueryDone {
        /// The query.
        id: QueryId,
        /// Acks received.
        acks: usize,
        /// Responses received.
        responses: usize,
        /// True if every node expected to answer did, before the timeout.
        complete: bool,
    },
    /// A keyring operation across the cluster ended.
    KeyResponse {
        /// The query that carried it.
        id: QueryId,
        /// The aggregated answers.
        response: KeyResponse,
    },
    /// The local keyring changed (write it to the keyring file); primary first.
    KeyringChanged {
        /// The keys.
        keys: Vec<SecretKey>,
    },
    /// A call to [`Serf::join`] finished.
    JoinCompleted {
        /// The call.
        id: JoinId,
        /// Addresses joined.
        joined: usize,
        /// Addresses that failed, and why.
        failed: Vec<(SocketAddr, JoinError)>,
    },
    /// A graceful leave finished: the node can be shut down.
    LeaveCompleted,
    /// The node shut itself down.
    Shutdown {
        /// Why.
        reason: ShutdownReason,
    },
}

/// Why a command was refused. The state machine is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerfError {
    /// The node is shut down.
    #[error("the node is shut down")]
    Shutdown,
    /// A leave is in progress.
    #[error("the node is leaving")]
    Leaving,
    /// The node has left; join again first.
    #[error("the node has left the cluster; join again first")]
    Left,
    /// A user event over the size limit.
    #[error(
        "user event is {size} bytes (name + payload); the limit is {limit} (user_event_size_limit)"
    )]
    EventTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A query over the size limit.
    #[error("query is {size} bytes encoded; the limit is {limit} (query_size_limit)")]
    QueryTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A response over the size limit.
    #[error("response is {size} bytes encoded; the limit is {limit} (query_response_size_limit)")]
    ResponseTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Query names starting with `_serf_` are reserved.
    #[error("query names starting with \"_serf_\" are reserved")]
    ReservedName,
    /// `respond` was called again for a query already answered (before its deadline;
    /// after it, the query is [`SerfError::QueryExpired`]). Nothing was sent.
    #[error("response already sent")]
    AlreadyResponded,
    /// The query is unknown or past its deadline.
    #[error("no pending query with this handle (unknown or past its deadline)")]
    QueryExpired,
    /// A tag filter is not a valid regular expression.
    #[error("invalid tag filter for {tag:?}: {reason}")]
    BadFilter {
        /// The tag.
        tag: String,
        /// Why.
        reason: String,
    },
    /// The tags do not fit in the metadata limit.
    #[error("encoded tags are {size} bytes; the limit is {limit} (memberlist.max_meta_size)")]
    TagsTooLarge {
        /// Their size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The member is unknown.
    #[error("no member named {0:?}")]
    UnknownMember(String),
    /// Encryption is not configured.
    #[error("encryption is not enabled: start every node with a keyring first")]
    NoKeyring,
    /// A keyring operation was refused locally.
    #[error("keyring: {0}")]
    Keyring(#[from] KeyringError),
    /// The memberlist layer refused.
    #[error(transparent)]
    Memberlist(#[from] memberlist::CommandError),
}

crate::metrics::counters! {
/// Counters of the Serf layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SerfMetrics {
    /// User events delivered.
    pub events_delivered: u64,
    /// User events dropped as duplicates.
    pub events_duplicate: u64,
    /// User events dropped as older than the Lamport window or the minimum time.
    pub events_too_old: u64,
    /// User events dropped because as many distinct events as a Lamport time may hold
    /// (256) already arrived with theirs (a flood or a forged burst).
    pub events_time_full: u64,
    /// Queries delivered.
    pub queries_delivered: u64,
    /// Queries dropped as duplicates.
    pub queries_duplicate: u64,
    /// Queries dropped as older than the Lamport window or the minimum time.
    pub queries_too_old: u64,
    /// Queries dropped because as many distinct queries as a Lamport time may hold (256)
    /// already arrived with theirs.
    pub queries_time_full: u64,
    /// Query acks received for our queries (duplicates excluded).
    pub query_acks: u64,
    /// Query responses received (duplicates excluded).
    pub query_responses: u64,
    /// Duplicate acks and responses dropped.
    pub query_duplicates: u64,
    /// Queries re-sent directly to members that had not answered.
    pub query_retries: u64,
    /// Acks and responses for unknown or finished queries.
    pub query_late: u64,
    /// Messages that failed to decode.
    pub messages_malformed: u64,
    /// Messages with a Lamport time implausibly far ahead (forged or corrupt), dropped.
    pub implausible_times: u64,
    /// Intents buffered for members not yet known.
    pub intents_buffered: u64,
    /// Intents dropped because the buffer was full.
    pub intents_dropped: u64,
    /// Failed members that came back within `flap_timeout`.
    pub member_flaps: u64,
    /// Members reaped.
    pub members_reaped: u64,
    /// Failed or left members reaped early because the table reached `max_members`.
    pub members_evicted: u64,
    /// Reconnect attempts to failed members.
    pub reconnects: u64,
    /// Join attempts to permanent seeds.
    pub seed_joins: u64,
    /// Joins the Serf layer asked for on its own (reconnect, seeds, snapshot rejoin)
    /// while leaving or left, not made: they would have cancelled the leave.
    pub joins_refused_leaving: u64,
    /// Large broadcasts sent over streams.
    pub stream_gossip: u64,
    /// Coordinate updates rejected (bad RTT or coordinate).
    pub coordinate_rejected: u64,
    /// Queries whose reply address is not the address we know for their source member
    /// (a name conflict, or a forged address): answered there, but without relays.
    pub query_origin_mismatch: u64,
    /// Relay requests dropped because their destination is not a known member at that
    /// address.
    pub relays_refused: u64,
    /// User events, queries and responses received larger than the hard limits, dropped.
    pub messages_oversized: u64,
    /// Log records dropped, oldest first, because the driver did not take them with
    /// `poll_log` before 1,024 were waiting.
    pub logs_dropped: u64,
}
}

/// The statistics Go's `Stats()` reports.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Members known, any status.
    pub members: usize,
    /// Members failed.
    pub failed: usize,
    /// Members left.
    pub left: usize,
    /// Local health score.
    pub health_score: u32,
    /// Member clock.
    pub member_time: LamportTime,
    /// Event clock.
    pub event_time: LamportTime,
    /// Query clock.
    pub query_time: LamportTime,
    /// Broadcasts queued per tier: intents, queries, events.
    pub intent_queue: usize,
    /// See `intent_queue`.
    pub query_queue: usize,
    /// See `intent_queue`.
    pub event_queue: usize,
    /// Whether a keyring is set.
    pub encrypted: bool,
    /// Coordinate resets.
    pub coordinate_resets: u64,
}
