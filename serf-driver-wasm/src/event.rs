//! What JavaScript sees of the core's events, members and statistics: plain objects with
//! camelCase keys, addresses as `"ip:port"`, times in the host's milliseconds, ids as
//! numbers, payloads as bytes (a `Uint8Array` in JavaScript).
//!
//! Ids and Lamport times are `u64` in the core; they cross as numbers, which hold them
//! exactly below 2^53 (a counter bumped a million times a second needs 285 years to get
//! there).

use crate::options::encode_base64;
use bytes::Bytes;
use serde::Serialize;
use serf_proto::serf::{Event, KeyResponse, Member, Stats};
use serf_proto::{Instant, Serf};
use std::collections::BTreeMap;

/// Milliseconds of the host's clock for a core instant (`Infinity` for "never").
pub fn instant_ms(at: Instant) -> f64 {
    if at == Instant::MAX {
        f64::INFINITY
    } else {
        at.as_nanos() as f64 / 1e6
    }
}

/// A member as JavaScript sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsMember {
    /// Its name.
    pub name: String,
    /// `"ip:port"`.
    pub addr: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// `"alive"`, `"leaving"`, `"left"`, `"failed"` or `"none"`.
    pub status: &'static str,
    /// Protocol versions: memberlist `[min, max, cur]`, then Serf's.
    pub protocol: [u8; 6],
}

impl From<&Member> for JsMember {
    fn from(m: &Member) -> JsMember {
        JsMember {
            name: m.name.to_string(),
            addr: m.addr.to_string(),
            tags: (*m.tags).clone(),
            status: m.status.as_str(),
            protocol: m.protocol,
        }
    }
}

/// A join attempt that failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsJoinFailure {
    /// `"ip:port"`.
    pub addr: String,
    /// Why.
    pub error: String,
}

/// The aggregated answer of a keyring operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsKeyResponse {
    /// Messages from nodes, by node name.
    pub messages: BTreeMap<String, String>,
    /// Alive members when the operation finished.
    pub num_nodes: usize,
    /// Nodes that answered.
    pub num_resp: usize,
    /// Nodes that answered with an error.
    pub num_err: usize,
    /// For a list: how many nodes hold each key (base64).
    pub keys: BTreeMap<String, usize>,
    /// For a list: how many nodes use each key as primary.
    pub primary_keys: BTreeMap<String, usize>,
}

impl From<KeyResponse> for JsKeyResponse {
    fn from(r: KeyResponse) -> JsKeyResponse {
        let b64 = |m: BTreeMap<[u8; 32], usize>| {
            m.into_iter().map(|(k, v)| (encode_base64(&k), v)).collect()
        };
        JsKeyResponse {
            messages: r
                .messages
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            num_nodes: r.num_nodes,
            num_resp: r.num_resp,
            num_err: r.num_err,
            keys: b64(r.keys),
            primary_keys: b64(r.primary_keys),
        }
    }
}

/// An event for the application. `type` names it: `"member-join"`, `"member-leave"`,
/// `"member-failed"`, `"member-update"`, `"member-reap"`, `"user"`, `"query"`,
/// `"query-ack"`, `"query-response"`, `"query-done"`, `"key-response"`,
/// `"keyring-changed"`, `"join-completed"`, `"leave-completed"`, `"shutdown"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum JsEvent {
    /// Members joined.
    MemberJoin {
        /// Who.
        members: Vec<JsMember>,
    },
    /// Members left gracefully.
    MemberLeave {
        /// Who.
        members: Vec<JsMember>,
    },
    /// Members failed.
    MemberFailed {
        /// Who.
        members: Vec<JsMember>,
    },
    /// Members' tags changed.
    MemberUpdate {
        /// Who.
        members: Vec<JsMember>,
    },
    /// Failed or left members were forgotten.
    MemberReap {
        /// Who.
        members: Vec<JsMember>,
    },
    /// A user event.
    #[serde(rename_all = "camelCase")]
    User {
        /// Its name.
        name: String,
        /// Its payload.
        payload: Bytes,
        /// Its Lamport time.
        ltime: f64,
        /// Whether the sender allowed coalescing.
        coalesce: bool,
    },
    /// A query to answer with `respond(handle, payload)` before `deadline`.
    #[serde(rename_all = "camelCase")]
    Query {
        /// Pass to `respond`.
        handle: f64,
        /// Its name.
        name: String,
        /// Its payload.
        payload: Bytes,
        /// The origin's name.
        source: String,
        /// Its Lamport time.
        ltime: f64,
        /// Host milliseconds after which an answer is refused.
        deadline: f64,
    },
    /// A node acked our query.
    QueryAck {
        /// The query's id, as `query` returned it.
        id: u32,
        /// The node.
        from: String,
    },
    /// A node answered our query.
    QueryResponse {
        /// The query.
        id: u32,
        /// The node.
        from: String,
        /// Its answer.
        payload: Bytes,
    },
    /// Our query ended.
    QueryDone {
        /// The query.
        id: u32,
        /// Acks received.
        acks: usize,
        /// Responses received.
        responses: usize,
        /// Whether every node expected to answer did, in time.
        complete: bool,
    },
    /// A keyring operation across the cluster ended.
    KeyResponse {
        /// The query that carried it.
        id: u32,
        /// The aggregated answers.
        response: JsKeyResponse,
    },
    /// The local keyring changed; primary first, base64.
    KeyringChanged {
        /// The keys.
        keys: Vec<String>,
    },
    /// A `join` finished.
    JoinCompleted {
        /// The id `join` returned.
        id: f64,
        /// Addresses joined.
        joined: usize,
        /// Addresses that failed, and why.
        failed: Vec<JsJoinFailure>,
    },
    /// A graceful leave finished: the node can be shut down.
    LeaveCompleted,
    /// The node shut itself down.
    Shutdown {
        /// Why: `"name-conflict-lost"`.
        reason: &'static str,
    },
}

impl From<Event> for JsEvent {
    fn from(e: Event) -> JsEvent {
        use serf_proto::serf::MemberEventKind as K;
        match e {
            Event::Member { kind, members } => {
                let members = members.iter().map(JsMember::from).collect();
                match kind {
                    K::Join => JsEvent::MemberJoin { members },
                    K::Leave => JsEvent::MemberLeave { members },
                    K::Failed => JsEvent::MemberFailed { members },
                    K::Update => JsEvent::MemberUpdate { members },
                    K::Reap => JsEvent::MemberReap { members },
                }
            }
            Event::User(u) => JsEvent::User {
                name: u.name,
                payload: u.payload,
                ltime: u.ltime as f64,
                coalesce: u.coalesce,
            },
            Event::Query(q) => JsEvent::Query {
                handle: q.handle.0 as f64,
                name: q.name,
                payload: q.payload,
                source: q.source.to_string(),
                ltime: q.ltime as f64,
                deadline: instant_ms(q.deadline),
            },
            Event::QueryAck { id, from } => JsEvent::QueryAck {
                id: id.0,
                from: from.to_string(),
            },
            Event::QueryResponse { id, from, payload } => JsEvent::QueryResponse {
                id: id.0,
                from: from.to_string(),
                payload,
            },
            Event::QueryDone {
                id,
                acks,
                responses,
                complete,
            } => JsEvent::QueryDone {
                id: id.0,
                acks,
                responses,
                complete,
            },
            Event::KeyResponse { id, response } => JsEvent::KeyResponse {
                id: id.0,
                response: response.into(),
            },
            Event::KeyringChanged { keys } => JsEvent::KeyringChanged {
                keys: keys.iter().map(|k| encode_base64(k.as_bytes())).collect(),
            },
            Event::JoinCompleted { id, joined, failed } => JsEvent::JoinCompleted {
                id: id.0 as f64,
                joined,
                failed: failed
                    .into_iter()
                    .map(|(addr, e)| JsJoinFailure {
                        addr: addr.to_string(),
                        error: e.to_string(),
                    })
                    .collect(),
            },
            Event::LeaveCompleted => JsEvent::LeaveCompleted,
            Event::Shutdown { .. } => JsEvent::Shutdown {
                reason: "name-conflict-lost",
            },
        }
    }
}

/// Go's `Stats()`, plus the local state, for JavaScript.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsStats {
    /// `"alive"`, `"leaving"`, `"left"` or `"shutdown"`.
    pub state: &'static str,
    /// Members known, any status.
    pub members: usize,
    /// Members alive, this node included.
    pub alive: usize,
    /// Members failed.
    pub failed: usize,
    /// Members left.
    pub left: usize,
    /// Local health score (0 is healthy).
    pub health_score: u32,
    /// Member clock.
    pub member_time: f64,
    /// Event clock.
    pub event_time: f64,
    /// Query clock.
    pub query_time: f64,
    /// Intents queued for gossip.
    pub intent_queue: usize,
    /// Queries queued for gossip.
    pub query_queue: usize,
    /// User events queued for gossip.
    pub event_queue: usize,
    /// Whether traffic is encrypted.
    pub encrypted: bool,
    /// Coordinate resets.
    pub coordinate_resets: f64,
}

impl JsStats {
    /// The statistics of `serf`.
    pub fn of(serf: &Serf) -> JsStats {
        use serf_proto::serf::SerfState;
        let Stats {
            members,
            failed,
            left,
            health_score,
            member_time,
            event_time,
            query_time,
            intent_queue,
            query_queue,
            event_queue,
            encrypted,
            coordinate_resets,
        } = serf.stats();
        JsStats {
            state: match serf.state() {
                SerfState::Alive => "alive",
                SerfState::Leaving => "leaving",
                SerfState::Left => "left",
                SerfState::Shutdown => "shutdown",
            },
            members,
            alive: serf.num_alive(),
            failed,
            left,
            health_score,
            member_time: member_time as f64,
            event_time: event_time as f64,
            query_time: query_time as f64,
            intent_queue,
            query_queue,
            event_queue,
            encrypted,
            coordinate_resets: coordinate_resets as f64,
        }
    }
}
