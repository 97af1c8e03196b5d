//! The Serf layer's messages (serf `messages.go`), in our tagged wire format.
//!
//! A Serf message travels as the payload of a memberlist user message: one type byte, then
//! the fields. Like memberlist messages they are borrowed views, and unknown fields are
//! skipped. Field numbers are append-only; each struct documents them.

use super::clock::LamportTime;
use crate::wire::WireError;
use crate::wire::codec::{Decoder, Encoder, Value};
use crate::wire::message::each_field;
use core::net::SocketAddr;
use core::time::Duration;

/// The Serf message types. Numbers are append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SerfType {
    /// A member is leaving (or is being forced out).
    Leave = 1,
    /// A member joined.
    Join = 2,
    /// The Serf state carried in push-pull.
    PushPull = 3,
    /// A user event.
    UserEvent = 4,
    /// A query.
    Query = 5,
    /// A query response or ack.
    QueryResponse = 6,
    /// A response relayed through another member.
    Relay = 7,
}

impl SerfType {
    fn from_u8(b: u8) -> Option<SerfType> {
        Some(match b {
            1 => SerfType::Leave,
            2 => SerfType::Join,
            3 => SerfType::PushPull,
            4 => SerfType::UserEvent,
            5 => SerfType::Query,
            6 => SerfType::QueryResponse,
            7 => SerfType::Relay,
            _ => return None,
        })
    }
}

/// Appends a Serf message: its type byte, then the fields written by `f`.
fn encode(out: &mut Vec<u8>, ty: SerfType, f: impl FnOnce(&mut Encoder<'_>)) {
    out.push(ty as u8);
    f(&mut Encoder::new(out));
}

/// `node` joined at Lamport time `ltime`. Fields: 1 ltime, 2 node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinIntent<'a> {
    /// The member clock when the intent was made.
    pub ltime: LamportTime,
    /// The member.
    pub node: &'a str,
}

impl JoinIntent<'_> {
    /// Appends the message.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode(out, SerfType::Join, |e| {
            e.uint(1, self.ltime).str(2, self.node);
        });
    }
}

/// `node` is leaving at `ltime`; with `prune`, it is erased at once (force-leave -prune).
/// Fields: 1 ltime, 2 node, 3 prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaveIntent<'a> {
    /// The member clock when the intent was made.
    pub ltime: LamportTime,
    /// The member.
    pub node: &'a str,
    /// Erase the member immediately.
    pub prune: bool,
}

impl LeaveIntent<'_> {
    /// Appends the message.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode(out, SerfType::Leave, |e| {
            e.uint(1, self.ltime).str(2, self.node).bool(3, self.prune);
        });
    }
}

/// A user event. Fields: 1 ltime, 2 name, 3 payload, 4 coalesce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserEventMsg<'a> {
    /// The event clock when it was fired.
    pub ltime: LamportTime,
    /// Its name.
    pub name: &'a str,
    /// Its payload.
    pub payload: &'a [u8],
    /// Whether receivers may coalesce it with others of the same name.
    pub coalesce: bool,
}

impl UserEventMsg<'_> {
    /// Appends the message.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode(out, SerfType::UserEvent, |e| {
            e.uint(1, self.ltime)
                .str(2, self.name)
                .bytes(3, self.payload)
                .bool(4, self.coalesce);
        });
    }
}

/// Query flag: receivers that pass the filters ack at once.
pub const QUERY_FLAG_ACK: u32 = 1;
/// Query flag: receivers do not re-gossip the query.
pub const QUERY_FLAG_NO_BROADCAST: u32 = 2;

/// A query filter, borrowed from a decoded query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterRef<'a> {
    /// Only these nodes process the query (a list of names, as raw repeated fields).
    Nodes(NameList<'a>),
    /// Only nodes whose tag matches the regular expression (unanchored).
    Tag {
        /// The tag.
        tag: &'a str,
        /// The expression.
        expr: &'a str,
    },
    /// A filter kind from a newer node. The query is still valid (and re-gossiped), but
    /// this node cannot tell whether it passes, so it does not process it (as Go).
    Unknown,
}

/// A list of names stored as repeated string fields, decoded on the fly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameList<'a> {
    fields: &'a [u8],
    field: u32,
}

impl<'a> NameList<'a> {
    /// The names.
    pub fn iter(self) -> impl Iterator<Item = &'a str> + 'a {
        let mut d = Decoder::new(self.fields);
        let field = self.field;
        core::iter::from_fn(move || {
            loop {
                match d.next_field() {
                    Ok(Some((n, v))) if n == field => {
                        if let Ok(s) = v.as_name() {
                            return Some(s);
                        }
                    }
                    Ok(Some(_)) => continue,
                    _ => return None,
                }
            }
        })
    }
}

/// A query filter to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Only these nodes.
    Nodes(Vec<String>),
    /// Only nodes whose tag `tag` matches `expr` (a regular expression, unanchored).
    Tag {
        /// The tag.
        tag: String,
        /// The expression.
        expr: String,
    },
}

impl Filter {
    fn encode_fields(&self, e: &mut Encoder<'_>) {
        match self {
            Filter::Nodes(names) => {
                e.uint_always(1, 0);
                for n in names {
                    e.bytes_always(2, n.as_bytes());
                }
            }
            Filter::Tag { tag, expr } => {
                e.uint_always(1, 1).str(3, tag).str(4, expr);
            }
        }
    }
}

fn decode_filter(fields: &[u8]) -> Result<FilterRef<'_>, WireError> {
    let mut kind = None;
    let (mut tag, mut expr) = ("", "");
    each_field(fields, |n, v| {
        match n {
            1 => kind = Some(v.as_u64()?),
            2 => {
                v.as_name()?;
            }
            3 => tag = v.as_str()?,
            4 => expr = v.as_str()?,
            _ => {}
        }
        Ok(())
    })?;
    match kind {
        Some(0) => Ok(FilterRef::Nodes(NameList { fields, field: 2 })),
        Some(1) => Ok(FilterRef::Tag { tag, expr }),
        _ => Ok(FilterRef::Unknown),
    }
}

/// A query. Fields: 1 ltime, 2 id, 3 origin address, 4 origin name, 5 filter (repeated),
/// 6 flags, 7 relay factor, 8 timeout (ms), 9 name, 10 payload.
#[derive(Debug, Clone, Copy)]
pub struct QueryMsg<'a> {
    /// The query clock when it was sent.
    pub ltime: LamportTime,
    /// Random id chosen by the origin.
    pub id: u32,
    /// Where responses go.
    pub addr: SocketAddr,
    /// The origin's name.
    pub source_node: &'a str,
    /// `QUERY_FLAG_*` bits.
    pub flags: u32,
    /// Extra copies of each response, relayed through random members.
    pub relay_factor: u8,
    /// How long the origin waits.
    pub timeout: Duration,
    /// The query's name.
    pub name: &'a str,
    /// Its payload.
    pub payload: &'a [u8],
    filters: &'a [u8],
}

impl<'a> QueryMsg<'a> {
    /// The filters, decoded on the fly. Each was validated when the query was decoded.
    pub fn filters(&self) -> impl Iterator<Item = FilterRef<'a>> + 'a {
        let mut d = Decoder::new(self.filters);
        core::iter::from_fn(move || {
            loop {
                match d.next_field() {
                    Ok(Some((5, Value::Bytes(b)))) => {
                        if let Ok(f) = decode_filter(b) {
                            return Some(f);
                        }
                    }
                    Ok(Some(_)) => continue,
                    _ => return None,
                }
            }
        })
    }

    /// Appends a query with owned filters.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        out: &mut Vec<u8>,
        ltime: LamportTime,
        id: u32,
        addr: SocketAddr,
        source_node: &str,
        filters: &[Filter],
        flags: u32,
        relay_factor: u8,
        timeout: Duration,
        name: &str,
        payload: &[u8],
    ) {
        encode(out, SerfType::Query, |e| {
            e.uint(1, ltime)
                .uint(2, u64::from(id))
                .addr(3, &addr)
                .str(4, source_node);
            for f in filters {
                e.message(5, |e| f.encode_fields(e));
            }
            e.uint(6, u64::from(flags))
                .uint(7, u64::from(relay_factor))
                .uint(8, u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
                .str(9, name)
                .bytes(10, payload);
        });
    }

    fn decode(fields: &'a [u8]) -> Result<Self, WireError> {
        let mut m = QueryMsg {
            ltime: 0,
            id: 0,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source_node: "",
            flags: 0,
            relay_factor: 0,
            timeout: Duration::ZERO,
            name: "",
            payload: &[],
            filters: fields,
        };
        let mut have_addr = false;
        each_field(fields, |n, v| {
            match n {
                1 => m.ltime = v.as_u64()?,
                2 => m.id = v.as_u32()?,
                3 => {
                    m.addr = v.as_addr()?;
                    have_addr = true;
                }
                4 => m.source_node = v.as_name()?,
                5 => {
                    decode_filter(v.as_bytes()?)?;
                }
                6 => m.flags = v.as_u32()?,
                7 => m.relay_factor = v.as_u8()?,
                8 => m.timeout = Duration::from_millis(v.as_u64()?),
                9 => m.name = v.as_str()?,
                10 => m.payload = v.as_bytes()?,
                _ => {}
            }
            Ok(())
        })?;
        if !have_addr {
            return Err(WireError::Missing("address"));
        }
        Ok(m)
    }
}

/// A response or ack to a query. Fields: 1 ltime, 2 id, 3 from, 4 flags, 5 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryResponseMsg<'a> {
    /// The query's ltime.
    pub ltime: LamportTime,
    /// The query's id.
    pub id: u32,
    /// The responder.
    pub from: &'a str,
    /// `QUERY_FLAG_ACK` for an ack.
    pub flags: u32,
    /// The response.
    pub payload: &'a [u8],
}

impl QueryResponseMsg<'_> {
    /// Appends the message.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode(out, SerfType::QueryResponse, |e| {
            e.uint(1, self.ltime)
                .uint(2, u64::from(self.id))
                .str(3, self.from)
                .uint(4, u64::from(self.flags))
                .bytes(5, self.payload);
        });
    }

    /// Whether this is an ack rather than a response.
    pub fn is_ack(&self) -> bool {
        self.flags & QUERY_FLAG_ACK != 0
    }
}

/// A message to forward to `dest` (relayed query responses). Fields: 1 destination
/// address, 2 destination name, 3 the inner Serf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayMsg<'a> {
    /// Where to forward.
    pub dest: SocketAddr,
    /// The destination's name.
    pub dest_name: &'a str,
    /// The whole inner message (type byte included).
    pub inner: &'a [u8],
}

impl RelayMsg<'_> {
    /// Appends the message.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode(out, SerfType::Relay, |e| {
            e.addr(1, &self.dest)
                .str(2, self.dest_name)
                .bytes(3, self.inner);
        });
    }
}

/// The Serf state exchanged in push-pull (serf `messagePushPull`). Fields: 1 ltime,
/// 2 status time (repeated {1 name, 2 ltime}), 3 left member (repeated name), 4 event
/// ltime, 5 recent events (repeated {1 ltime, 2 event (repeated {1 name, 2 payload})}),
/// 6 query ltime. Lists are decoded on the fly.
#[derive(Debug, Clone, Copy)]
pub struct PushPullState<'a> {
    /// The member clock.
    pub ltime: LamportTime,
    /// The event clock.
    pub event_ltime: LamportTime,
    /// The query clock.
    pub query_ltime: LamportTime,
    fields: &'a [u8],
}

impl<'a> PushPullState<'a> {
    /// Each member's status time.
    pub fn status_ltimes(&self) -> impl Iterator<Item = (&'a str, LamportTime)> + 'a {
        nested(self.fields, 2).filter_map(|b| {
            let (mut name, mut lt) = ("", 0);
            each_field(b, |n, v| {
                match n {
                    1 => name = v.as_name()?,
                    2 => lt = v.as_u64()?,
                    _ => {}
                }
                Ok(())
            })
            .ok()?;
            (!name.is_empty()).then_some((name, lt))
        })
    }

    /// Members that left.
    pub fn left_members(&self) -> impl Iterator<Item = &'a str> + 'a {
        NameList {
            fields: self.fields,
            field: 3,
        }
        .iter()
    }

    /// Recent user events: `(ltime, [(name, payload)])`.
    pub fn events(&self) -> impl Iterator<Item = (LamportTime, Vec<(&'a str, &'a [u8])>)> + 'a {
        nested(self.fields, 5).filter_map(|b| {
            let mut lt = 0;
            let mut evs = Vec::new();
            each_field(b, |n, v| {
                match n {
                    1 => lt = v.as_u64()?,
                    2 => {
                        let (mut name, mut payload): (&str, &[u8]) = ("", &[]);
                        each_field(v.as_bytes()?, |n, v| {
                            match n {
                                1 => name = v.as_str()?,
                                2 => payload = v.as_bytes()?,
                                _ => {}
                            }
                            Ok(())
                        })?;
                        evs.push((name, payload));
                    }
                    _ => {}
                }
                Ok(())
            })
            .ok()?;
            Some((lt, evs))
        })
    }

    fn decode(fields: &'a [u8]) -> Result<Self, WireError> {
        let mut m = PushPullState {
            ltime: 0,
            event_ltime: 0,
            query_ltime: 0,
            fields,
        };
        each_field(fields, |n, v| {
            match n {
                1 => m.ltime = v.as_u64()?,
                2 | 5 => {
                    v.as_bytes()?;
                }
                3 => {
                    v.as_name()?;
                }
                4 => m.event_ltime = v.as_u64()?,
                6 => m.query_ltime = v.as_u64()?,
                _ => {}
            }
            Ok(())
        })?;
        Ok(m)
    }

    /// Appends the state.
    #[allow(clippy::too_many_arguments)]
    pub fn encode<'s>(
        out: &mut Vec<u8>,
        ltime: LamportTime,
        status_ltimes: impl Iterator<Item = (&'s str, LamportTime)>,
        left: impl Iterator<Item = &'s str>,
        event_ltime: LamportTime,
        events: impl Iterator<Item = (LamportTime, &'s [(String, bytes::Bytes)])>,
        query_ltime: LamportTime,
    ) {
        encode(out, SerfType::PushPull, |e| {
            e.uint(1, ltime);
            for (name, lt) in status_ltimes {
                e.message(2, |e| {
                    e.str(1, name).uint(2, lt);
                });
            }
            for name in left {
                e.bytes_always(3, name.as_bytes());
            }
            e.uint(4, event_ltime);
            for (lt, evs) in events {
                e.message(5, |e| {
                    e.uint(1, lt);
                    for (name, payload) in evs {
                        e.message(2, |e| {
                            e.str(1, name).bytes(2, payload);
                        });
                    }
                });
            }
            e.uint(6, query_ltime);
        });
    }
}

fn nested(fields: &[u8], field: u32) -> impl Iterator<Item = &[u8]> {
    let mut d = Decoder::new(fields);
    core::iter::from_fn(move || {
        loop {
            match d.next_field() {
                Ok(Some((n, Value::Bytes(b)))) if n == field => return Some(b),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    })
}

/// Any decoded Serf message.
#[derive(Debug, Clone, Copy)]
pub enum SerfMessage<'a> {
    /// See [`LeaveIntent`].
    Leave(LeaveIntent<'a>),
    /// See [`JoinIntent`].
    Join(JoinIntent<'a>),
    /// See [`PushPullState`].
    PushPull(PushPullState<'a>),
    /// See [`UserEventMsg`].
    UserEvent(UserEventMsg<'a>),
    /// See [`QueryMsg`].
    Query(QueryMsg<'a>),
    /// See [`QueryResponseMsg`].
    QueryResponse(QueryResponseMsg<'a>),
    /// See [`RelayMsg`].
    Relay(RelayMsg<'a>),
}

impl<'a> SerfMessage<'a> {
    /// Decodes a Serf message (type byte and fields). `Ok(None)` for an unknown type.
    pub fn decode(bytes: &'a [u8]) -> Result<Option<Self>, WireError> {
        let Some((&ty, fields)) = bytes.split_first() else {
            return Err(WireError::Truncated);
        };
        let Some(ty) = SerfType::from_u8(ty) else {
            return Ok(None);
        };
        Ok(Some(match ty {
            SerfType::Leave => {
                let mut m = LeaveIntent {
                    ltime: 0,
                    node: "",
                    prune: false,
                };
                each_field(fields, |n, v| {
                    match n {
                        1 => m.ltime = v.as_u64()?,
                        2 => m.node = v.as_name()?,
                        3 => m.prune = v.as_bool()?,
                        _ => {}
                    }
                    Ok(())
                })?;
                if m.node.is_empty() {
                    return Err(WireError::Missing("node"));
                }
                SerfMessage::Leave(m)
            }
            SerfType::Join => {
                let mut m = JoinIntent { ltime: 0, node: "" };
                each_field(fields, |n, v| {
                    match n {
                        1 => m.ltime = v.as_u64()?,
                        2 => m.node = v.as_name()?,
                        _ => {}
                    }
                    Ok(())
                })?;
                if m.node.is_empty() {
                    return Err(WireError::Missing("node"));
                }
                SerfMessage::Join(m)
            }
            SerfType::PushPull => SerfMessage::PushPull(PushPullState::decode(fields)?),
            SerfType::UserEvent => {
                let mut m = UserEventMsg {
                    ltime: 0,
                    name: "",
                    payload: &[],
                    coalesce: false,
                };
                each_field(fields, |n, v| {
                    match n {
                        1 => m.ltime = v.as_u64()?,
                        2 => m.name = v.as_str()?,
                        3 => m.payload = v.as_bytes()?,
                        4 => m.coalesce = v.as_bool()?,
                        _ => {}
                    }
                    Ok(())
                })?;
                SerfMessage::UserEvent(m)
            }
            SerfType::Query => SerfMessage::Query(QueryMsg::decode(fields)?),
            SerfType::QueryResponse => {
                let mut m = QueryResponseMsg {
                    ltime: 0,
                    id: 0,
                    from: "",
                    flags: 0,
                    payload: &[],
                };
                each_field(fields, |n, v| {
                    match n {
                        1 => m.ltime = v.as_u64()?,
                        2 => m.id = v.as_u32()?,
                        3 => m.from = v.as_name()?,
                        4 => m.flags = v.as_u32()?,
                        5 => m.payload = v.as_bytes()?,
                        _ => {}
                    }
                    Ok(())
                })?;
                SerfMessage::QueryResponse(m)
            }
            SerfType::Relay => {
                let mut dest = None;
                let mut m = RelayMsg {
                    dest: SocketAddr::from(([0, 0, 0, 0], 0)),
                    dest_name: "",
                    inner: &[],
                };
                each_field(fields, |n, v| {
                    match n {
                        1 => dest = Some(v.as_addr()?),
                        2 => m.dest_name = v.as_name()?,
                        3 => m.inner = v.as_bytes()?,
                        _ => {}
                    }
                    Ok(())
                })?;
                m.dest = dest.ok_or(WireError::Missing("destination"))?;
                SerfMessage::Relay(m)
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr() -> SocketAddr {
        SocketAddr::from(([10, 1, 2, 3], 7946))
    }

    proptest! {
        #[test]
        fn intents_and_events_roundtrip(lt: u64, node in "[a-z0-9-]{1,30}", prune: bool, payload in proptest::collection::vec(any::<u8>(), 0..200), cc: bool) {
            let mut out = Vec::new();
            JoinIntent { ltime: lt, node: &node }.encode(&mut out);
            match SerfMessage::decode(&out).unwrap().unwrap() {
                SerfMessage::Join(j) => prop_assert_eq!(j, JoinIntent { ltime: lt, node: &node }),
                other => panic!("{other:?}"),
            }
            out.clear();
            let l = LeaveIntent { ltime: lt, node: &node, prune };
            l.encode(&mut out);
            match SerfMessage::decode(&out).unwrap().unwrap() {
                SerfMessage::Leave(got) => prop_assert_eq!(got, l),
                other => panic!("{other:?}"),
            }
            out.clear();
            let u = UserEventMsg { ltime: lt, name: &node, payload: &payload, coalesce: cc };
            u.encode(&mut out);
            match SerfMessage::decode(&out).unwrap().unwrap() {
                SerfMessage::UserEvent(got) => prop_assert_eq!(got, u),
                other => panic!("{other:?}"),
            }
        }

        #[test]
        fn query_roundtrip(lt: u64, id: u32, flags in 0u32..4, relay: u8, ms in 0u64..1_000_000, names in proptest::collection::vec("[a-z]{1,10}", 0..5), tag in "[a-z]{1,8}", expr in "[a-z.*^$]{0,12}", payload in proptest::collection::vec(any::<u8>(), 0..100)) {
            let filters = vec![Filter::Nodes(names.clone()), Filter::Tag { tag: tag.clone(), expr: expr.clone() }];
            let mut out = Vec::new();
            QueryMsg::encode(&mut out, lt, id, addr(), "origin", &filters, flags, relay, Duration::from_millis(ms), "q", &payload);
            match SerfMessage::decode(&out).unwrap().unwrap() {
                SerfMessage::Query(q) => {
                    prop_assert_eq!((q.ltime, q.id, q.addr, q.source_node, q.flags, q.relay_factor), (lt, id, addr(), "origin", flags, relay));
                    prop_assert_eq!(q.timeout, Duration::from_millis(ms));
                    prop_assert_eq!((q.name, q.payload), ("q", &payload[..]));
                    let got: Vec<_> = q.filters().collect();
                    prop_assert_eq!(got.len(), 2);
                    match got[0] { FilterRef::Nodes(l) => prop_assert_eq!(l.iter().collect::<Vec<_>>(), names.iter().map(String::as_str).collect::<Vec<_>>()), _ => panic!() }
                    prop_assert_eq!(got[1], FilterRef::Tag { tag: &tag, expr: &expr });
                }
                other => panic!("{other:?}"),
            }
        }

        #[test]
        fn response_and_relay_roundtrip(lt: u64, id: u32, ack: bool, payload in proptest::collection::vec(any::<u8>(), 0..100)) {
            let r = QueryResponseMsg { ltime: lt, id, from: "n1", flags: u32::from(ack), payload: &payload };
            let mut inner = Vec::new();
            r.encode(&mut inner);
            let mut out = Vec::new();
            RelayMsg { dest: addr(), dest_name: "origin", inner: &inner }.encode(&mut out);
            match SerfMessage::decode(&out).unwrap().unwrap() {
                SerfMessage::Relay(rm) => {
                    prop_assert_eq!(rm.dest, addr());
                    match SerfMessage::decode(rm.inner).unwrap().unwrap() {
                        SerfMessage::QueryResponse(got) => prop_assert_eq!(got, r),
                        other => panic!("{other:?}"),
                    }
                }
                other => panic!("{other:?}"),
            }
        }

        #[test]
        fn push_pull_state_roundtrip(lt: u64, elt: u64, qlt: u64, status in proptest::collection::vec(("[a-z]{1,8}", any::<u64>()), 0..20), left in proptest::collection::vec("[a-z]{1,8}", 0..5), events in proptest::collection::vec((any::<u64>(), proptest::collection::vec(("[a-z]{0,8}", proptest::collection::vec(any::<u8>(), 0..20)), 0..3)), 0..5)) {
            let evs: Vec<(u64, Vec<(String, bytes::Bytes)>)> = events.iter().map(|(l, e)| (*l, e.iter().map(|(n, p)| (n.clone(), bytes::Bytes::from(p.clone()))).collect())).collect();
            let mut out = Vec::new();
            PushPullState::encode(&mut out, lt, status.iter().map(|(n, l)| (n.as_str(), *l)), left.iter().map(String::as_str), elt, evs.iter().map(|(l, e)| (*l, &e[..])), qlt);
            match SerfMessage::decode(&out).unwrap().unwrap() {
                SerfMessage::PushPull(pp) => {
                    prop_assert_eq!((pp.ltime, pp.event_ltime, pp.query_ltime), (lt, elt, qlt));
                    let got: Vec<_> = pp.status_ltimes().map(|(n, l)| (n.to_string(), l)).collect();
                    prop_assert_eq!(got, status);
                    prop_assert_eq!(pp.left_members().map(String::from).collect::<Vec<_>>(), left);
                    let got: Vec<_> = pp.events().map(|(l, e)| (l, e.into_iter().map(|(n, p)| (n.to_string(), p.to_vec())).collect::<Vec<_>>())).collect();
                    prop_assert_eq!(got, events);
                }
                other => panic!("{other:?}"),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some(m)) = SerfMessage::decode(&bytes) {
                match m {
                    SerfMessage::Query(q) => { let _ = q.filters().count(); }
                    SerfMessage::PushPull(p) => {
                        let _ = p.status_ltimes().count();
                        let _ = p.left_members().count();
                        let _ = p.events().count();
                    }
                    _ => {}
                }
            }
        }
    }
}
