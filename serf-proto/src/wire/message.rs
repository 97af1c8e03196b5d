//! The memberlist messages, as borrowed views.
//!
//! Each message type is a struct whose string and byte fields borrow from the decoded
//! input, so decoding a ping or an ack allocates nothing. The same structs are used to
//! encode, borrowing from the node's own state.
//!
//! Field numbers are part of the protocol and append-only; each struct documents them.

use super::WireError;
use super::codec::{Decoder, Encoder, Value};
use super::packet::{MessageType, encode_message};
use core::net::SocketAddr;

/// The state of a node as carried in push-pull (`PushNode::state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WireState {
    /// Answering probes.
    Alive = 0,
    /// Accused of failure; may still refute.
    Suspect = 1,
    /// Declared failed.
    Dead = 2,
    /// Left gracefully.
    Left = 3,
}

impl WireState {
    fn from_u64(v: u64) -> Result<WireState, WireError> {
        Ok(match v {
            0 => WireState::Alive,
            1 => WireState::Suspect,
            2 => WireState::Dead,
            3 => WireState::Left,
            _ => return Err(WireError::OutOfRange),
        })
    }
}

/// Protocol version ranges a node speaks: `[min, max, current]` for the memberlist layer,
/// then the same three for the layer above (the "delegate" versions in Go memberlist).
pub type Versions = [u8; 6];

/// One message type: how to write and read its fields.
pub trait WireMessage<'a>: Sized {
    /// The type byte.
    const TYPE: MessageType;

    /// Writes the fields.
    fn encode_fields(&self, e: &mut Encoder<'_>);

    /// Reads the fields. Unknown fields are skipped.
    fn decode_fields(fields: &'a [u8]) -> Result<Self, WireError>;

    /// Appends the framed message (type, length, fields) to `out`.
    fn encode(&self, out: &mut Vec<u8>) {
        encode_message(out, Self::TYPE as u8, |o| {
            self.encode_fields(&mut Encoder::new(o))
        })
    }

    /// The framed message as a new vector.
    fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}

/// Runs `f` on every field of `fields` (shared by every message decoder).
pub(crate) fn each_field<'a>(
    fields: &'a [u8],
    mut f: impl FnMut(u32, Value<'a>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let mut d = Decoder::new(fields);
    while let Some((n, v)) = d.next_field()? {
        f(n, v)?;
    }
    Ok(())
}

/// A direct probe: "are you `target`?". Fields: 1 seq, 2 target, 3 source address,
/// 4 source name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping<'a> {
    /// Sequence number echoed by the ack.
    pub seq: u32,
    /// The name the sender expects the receiver to have; empty matches any. Guards against
    /// answering for a node that restarted under a new name (memberlist net.go).
    pub target: &'a str,
    /// Where to send the ack, if not to the packet's source.
    pub source_addr: Option<SocketAddr>,
    /// The sender's name.
    pub source_name: &'a str,
}

impl<'a> WireMessage<'a> for Ping<'a> {
    const TYPE: MessageType = MessageType::Ping;

    fn encode_fields(&self, e: &mut Encoder<'_>) {
        e.uint(1, u64::from(self.seq)).str(2, self.target);
        if let Some(a) = &self.source_addr {
            e.addr(3, a);
        }
        e.str(4, self.source_name);
    }

    fn decode_fields(fields: &'a [u8]) -> Result<Self, WireError> {
        let mut m = Ping {
            seq: 0,
            target: "",
            source_addr: None,
            source_name: "",
        };
        each_field(fields, |n, v| {
            match n {
                1 => m.seq = v.as_u32()?,
                2 => m.target = v.as_name()?,
                3 => m.source_addr = Some(v.as_addr()?),
                4 => m.source_name = v.as_name()?,
                _ => {}
            }
            Ok(())
        })?;
        Ok(m)
    }
}

/// A request to probe `target` on the sender's behalf. Fields: 1 seq, 2 target name,
/// 3 target address, 4 nack wanted, 5 source address, 6 source name, 7 nack timeout (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndirectPing<'a> {
    /// The requester's sequence number, echoed in the forwarded ack or the nack.
    pub seq: u32,
    /// The node to probe.
    pub target: &'a str,
    /// Its address.
    pub target_addr: SocketAddr,
    /// Send a nack if the target does not answer in time (Lifeguard).
    pub nack: bool,
    /// Where to send the result, if not to the packet's source.
    pub source_addr: Option<SocketAddr>,
    /// The requester's name.
    pub source_name: &'a str,
    /// How long the intermediary should wait before sending the nack, in milliseconds; zero
    /// means its own probe timeout (as Go). The requester sets it so the nack arrives
    /// before its probe window closes.
    pub nack_timeout_ms: u32,
}

impl<'a> WireMessage<'a> for IndirectPing<'a> {
    const TYPE: MessageType = MessageType::IndirectPing;

    fn encode_fields(&self, e: &mut Encoder<'_>) {
        e.uint(1, u64::from(self.seq))
            .str(2, self.target)
            .addr(3, &self.target_addr)
            .bool(4, self.nack);
        if let Some(a) = &self.source_addr {
            e.addr(5, a);
        }
        e.str(6, self.source_name)
            .uint(7, u64::from(self.nack_timeout_ms));
    }

    fn decode_fields(fields: &'a [u8]) -> Result<Self, WireError> {
        let mut seq = 0;
        let mut target = "";
        let mut target_addr = None;
        let mut nack = false;
        let mut source_addr = None;
        let mut source_name = "";
        let mut nack_timeout_ms = 0;
        each_field(fields, |n, v| {
            match n {
                1 => seq = v.as_u32()?,
                2 => target = v.as_name()?,
                3 => target_addr = Some(v.as_addr()?),
                4 => nack = v.as_bool()?,
                5 => source_addr = Some(v.as_addr()?),
                6 => source_name = v.as_name()?,
                7 => nack_timeout_ms = v.as_u32()?,
                _ => {}
            }
            Ok(())
        })?;
        Ok(IndirectPing {
            seq,
            target,
            target_addr: target_addr.ok_or(WireError::Missing("target address"))?,
            nack,
            source_addr,
            source_name,
            nack_timeout_ms,
        })
    }
}

/// The answer to a ping. Fields: 1 seq, 2 payload (the layer above's data, e.g. a network
/// coordinate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack<'a> {
    /// The probe's sequence number.
    pub seq: u32,
    /// Opaque payload for the layer above.
    pub payload: &'a [u8],
}

impl<'a> WireMessage<'a> for Ack<'a> {
    const TYPE: MessageType = MessageType::Ack;

    fn encode_fields(&self, e: &mut Encoder<'_>) {
        e.uint(1, u64::from(self.seq)).bytes(2, self.payload);
    }

    fn decode_fields(fields: &'a [u8]) -> Result<Self, WireError> {
        let mut m = Ack {
            seq: 0,
            payload: &[],
        };
        each_field(fields, |n, v| {
            match n {
                1 => m.seq = v.as_u32()?,
                2 => m.payload = v.as_bytes()?,
                _ => {}
            }
            Ok(())
        })?;
        Ok(m)
    }
}

/// "I asked, the target did not answer": sent by an indirect-probe intermediary so the
/// requester can tell its own network trouble from the target's (Lifeguard §IV-A).
/// Fields: 1 seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nack {
    /// The requester's sequence number.
    pub seq: u32,
}

impl<'a> WireMessage<'a> for Nack {
    const TYPE: MessageType = MessageType::Nack;

    fn encode_fields(&self, e: &mut Encoder<'_>) {
        e.uint(1, u64::from(self.seq));
    }

    fn decode_fields(fields: &'a [u8]) -> Result<Self, WireError> {
        let mut m = Nack { seq: 0 };
        each_field(fields, |n, v| {
            if n == 1 {
                m.seq = v.as_u32()?;
            }
            Ok(())
        })?;
        Ok(m)
    }
}

/// `from` suspects `node` at `incarnation`. Fields: 1 incarnation, 2 node, 3 from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suspect<'a> {
    /// The incarnation being accused.
    pub incarnation: u32,
    /// The accused node.
    pub node: &'a str,
    /// The accuser.
    pub from: &'a str,
}

/// `from` declares `node` dead at `incarnation`; `node == from` means a graceful leave.
/// Fields: 1 incarnation, 2 node, 3 from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dead<'a> {
    /// The incarnation declared dead.
    pub incarnation: u32,
    /// The node.
    pub node: &'a str,
    /// Who declared it.
    pub from: &'a str,
}

macro_rules! accusation {
    ($ty:ident, $mt:expr) => {
        impl<'a> WireMessage<'a> for $ty<'a> {
            const TYPE: MessageType = $mt;

            fn encode_fields(&self, e: &mut Encoder<'_>) {
                e.uint(1, u64::from(self.incarnation))
                    .str(2, self.node)
                    .str(3, self.from);
            }

            fn decode_fields(fields: &'a [u8]) -> Result<Self, WireError> {
                let mut m = $ty {
                    incarnation: 0,
                    node: "",
                    from: "",
                };
                each_field(fields, |n, v| {
                    match n {
                        1 => m.incarnation = v.as_u32()?,
                        2 => m.node = v.as_name()?,
                        3 => m.from = v.as_name()?,
                        _ => {}
                    }
                    Ok(())
                })?;
                if m.node.is_empty() {
                    return Err(WireError::Missing("node"));
                }
                Ok(m)
            }
        }
    };
}
accusation!(Suspect, MessageType::Suspect);
accusation!(Dead, MessageType::Dead);

/// `node` is alive at `incarnation`, reachable at `addr`, with metadata `meta`.
/// Fields: 1 incarnation, 2 node, 3 address, 4 meta, 5 versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alive<'a> {
    /// The node's incarnation; a higher one overrides any older news.
    pub incarnation: u32,
    /// The node.
    pub node: &'a str,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its metadata (Serf: encoded tags).
    pub meta: &'a [u8],
    /// The protocol versions it speaks.
    pub versions: Versions,
}

impl<'a> WireMessage<'a> for Alive<'a> {
    const TYPE: MessageType = MessageType::Alive;

    fn encode_fields(&self, e: &mut Encoder<'_>) {
        e.uint(1, u64::from(self.incarnation))
            .str(2, self.node)
            .addr(3, &self.addr)
            .bytes(4, self.meta)
            .bytes(5, &self.versions);
    }

    fn decode_fields(fields: &'a [u8]) -> Result<Self, WireError> {
        let mut incarnation = 0;
        let mut node = "";
        let mut addr = None;
        let mut meta: &[u8] = &[];
        let mut versions = [0u8; 6];
        each_field(fields, |n, v| {
            match n {
                1 => incarnation = v.as_u32()?,
                2 => node = v.as_name()?,
                3 => addr = Some(v.as_addr()?),
                4 => meta = v.as_bytes()?,
                5 => versions = decode_versions(v)?,
                _ => {}
            }
            Ok(())
        })?;
        if node.is_empty() {
            return Err(WireError::Missing("node"));
        }
        Ok(Alive {
            incarnation,
            node,
            addr: addr.ok_or(WireError::Missing("address"))?,
            meta,
            versions,
        })
    }
}

fn decode_versions(v: Value<'_>) -> Result<Versions, WireError> {
    let b = v.as_bytes()?;
    // Newer nodes may append more version bytes; the first six keep their meaning.
    if b.len() < 6 {
        return Err(WireError::Truncated);
    }
    let mut out = [0u8; 6];
    out.copy_from_slice(&b[..6]);
    Ok(out)
}

/// One node's state inside a push-pull. Fields: 1 name, 2 address, 3 meta,
/// 4 incarnation, 5 state, 6 versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushNode<'a> {
    /// The node.
    pub name: &'a str,
    /// Its address.
    pub addr: SocketAddr,
    /// Its metadata.
    pub meta: &'a [u8],
    /// Its incarnation.
    pub incarnation: u32,
    /// Its state in the sender's view.
    pub state: WireState,
    /// Its protocol versions.
    pub versions: Versions,
}

impl<'a> PushNode<'a> {
    /// Writes this node's fields.
    pub fn encode_fields(&self, e: &mut Encoder<'_>) {
        e.str(1, self.name)
            .addr(2, &self.addr)
            .bytes(3, self.meta)
            .uint(4, u64::from(self.incarnation))
            .uint(5, self.state as u64)
            .bytes(6, &self.versions);
    }

    /// Reads a node's fields.
    pub fn decode_fields(fields: &'a [u8]) -> Result<Self, WireError> {
        let mut name = "";
        let mut addr = None;
        let mut meta: &[u8] = &[];
        let mut incarnation = 0;
        let mut state = WireState::Alive;
        let mut versions = [0u8; 6];
        each_field(fields, |n, v| {
            match n {
                1 => name = v.as_name()?,
                2 => addr = Some(v.as_addr()?),
                3 => meta = v.as_bytes()?,
                4 => incarnation = v.as_u32()?,
                5 => state = WireState::from_u64(v.as_u64()?)?,
                6 => versions = decode_versions(v)?,
                _ => {}
            }
            Ok(())
        })?;
        if name.is_empty() {
            return Err(WireError::Missing("name"));
        }
        Ok(PushNode {
            name,
            addr: addr.ok_or(WireError::Missing("address"))?,
            meta,
            incarnation,
            state,
            versions,
        })
    }
}

/// A full state exchange, sent on streams only. Fields: 1 join, 2 node (repeated),
/// 3 user state (the layer above's state, opaque here).
///
/// The node list is not collected: [`PushPull::nodes`] decodes it lazily from the borrowed
/// input, so a push-pull of any size is decoded without allocating. Decoding validates
/// every node once and counts them.
#[derive(Debug, Clone, Copy)]
pub struct PushPull<'a> {
    /// Whether this exchange is part of a join (the merge hook only runs for joins).
    pub join: bool,
    /// The number of nodes in the list.
    pub node_count: usize,
    /// The layer above's state.
    pub user_state: &'a [u8],
    fields: &'a [u8],
}

impl<'a> PushPull<'a> {
    /// Decodes a push-pull, refusing more than `max_nodes` nodes.
    pub fn decode_limited(fields: &'a [u8], max_nodes: usize) -> Result<Self, WireError> {
        let mut join = false;
        let mut node_count = 0usize;
        let mut user_state: &[u8] = &[];
        each_field(fields, |n, v| {
            match n {
                1 => join = v.as_bool()?,
                2 => {
                    PushNode::decode_fields(v.as_bytes()?)?;
                    node_count += 1;
                    if node_count > max_nodes {
                        return Err(WireError::TooMany);
                    }
                }
                3 => user_state = v.as_bytes()?,
                _ => {}
            }
            Ok(())
        })?;
        Ok(PushPull {
            join,
            node_count,
            user_state,
            fields,
        })
    }

    /// The nodes, decoded on the fly. They were validated by `decode_limited`.
    pub fn nodes(&self) -> impl Iterator<Item = PushNode<'a>> + 'a {
        let mut d = Decoder::new(self.fields);
        core::iter::from_fn(move || {
            loop {
                match d.next_field() {
                    Ok(Some((2, Value::Bytes(b)))) => {
                        if let Ok(n) = PushNode::decode_fields(b) {
                            return Some(n);
                        }
                    }
                    Ok(Some(_)) => continue,
                    _ => return None,
                }
            }
        })
    }

    /// Appends a framed push-pull with `nodes` and `user_state` to `out`.
    pub fn encode<'n>(
        out: &mut Vec<u8>,
        join: bool,
        nodes: impl IntoIterator<Item = PushNode<'n>>,
        user_state: &[u8],
    ) {
        encode_message(out, MessageType::PushPull as u8, |o| {
            let mut e = Encoder::new(o);
            e.bool(1, join);
            for n in nodes {
                e.message(2, |e| n.encode_fields(e));
            }
            e.bytes(3, user_state);
        })
    }
}

/// An opaque message for the layer above. Fields: 1 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User<'a> {
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> WireMessage<'a> for User<'a> {
    const TYPE: MessageType = MessageType::User;

    fn encode_fields(&self, e: &mut Encoder<'_>) {
        e.bytes(1, self.payload);
    }

    fn decode_fields(fields: &'a [u8]) -> Result<Self, WireError> {
        let mut m = User { payload: &[] };
        each_field(fields, |n, v| {
            if n == 1 {
                m.payload = v.as_bytes()?;
            }
            Ok(())
        })?;
        Ok(m)
    }
}

/// An error reply on a stream. Fields: 1 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorReply<'a> {
    /// What went wrong.
    pub message: &'a str,
}

impl<'a> WireMessage<'a> for ErrorReply<'a> {
    const TYPE: MessageType = MessageType::Error;

    fn encode_fields(&self, e: &mut Encoder<'_>) {
        e.str(1, self.message);
    }

    fn decode_fields(fields: &'a [u8]) -> Result<Self, WireError> {
        let mut m = ErrorReply { message: "" };
        each_field(fields, |n, v| {
            if n == 1 {
                m.message = v.as_str()?;
            }
            Ok(())
        })?;
        Ok(m)
    }
}

/// Any decoded memberlist message.
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    /// See [`Ping`].
    Ping(Ping<'a>),
    /// See [`IndirectPing`].
    IndirectPing(IndirectPing<'a>),
    /// See [`Ack`].
    Ack(Ack<'a>),
    /// See [`Nack`].
    Nack(Nack),
    /// See [`Suspect`].
    Suspect(Suspect<'a>),
    /// See [`Alive`].
    Alive(Alive<'a>),
    /// See [`Dead`].
    Dead(Dead<'a>),
    /// See [`PushPull`].
    PushPull(PushPull<'a>),
    /// See [`User`].
    User(User<'a>),
    /// See [`ErrorReply`].
    Error(ErrorReply<'a>),
}

impl<'a> Message<'a> {
    /// Decodes one framed message's fields. Returns `Ok(None)` for a type this node does not
    /// know, which the caller skips (forward compatibility).
    pub fn decode(
        ty: u8,
        fields: &'a [u8],
        max_push_nodes: usize,
    ) -> Result<Option<Self>, WireError> {
        let Some(t) = MessageType::from_u8(ty) else {
            return Ok(None);
        };
        Ok(Some(match t {
            MessageType::Ping => Message::Ping(Ping::decode_fields(fields)?),
            MessageType::IndirectPing => {
                Message::IndirectPing(IndirectPing::decode_fields(fields)?)
            }
            MessageType::Ack => Message::Ack(Ack::decode_fields(fields)?),
            MessageType::Nack => Message::Nack(<Nack as WireMessage<'a>>::decode_fields(fields)?),
            MessageType::Suspect => Message::Suspect(Suspect::decode_fields(fields)?),
            MessageType::Alive => Message::Alive(Alive::decode_fields(fields)?),
            MessageType::Dead => Message::Dead(Dead::decode_fields(fields)?),
            MessageType::PushPull => {
                Message::PushPull(PushPull::decode_limited(fields, max_push_nodes)?)
            }
            MessageType::User => Message::User(User::decode_fields(fields)?),
            MessageType::Error => Message::Error(ErrorReply::decode_fields(fields)?),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::packet::BodyIter;
    use proptest::prelude::*;

    fn roundtrip_one(bytes: &[u8]) -> Message<'_> {
        let mut it = BodyIter::new(bytes);
        let (ty, fields) = it.next().unwrap().unwrap();
        assert!(it.next().is_none());
        Message::decode(ty, fields, 1 << 20).unwrap().unwrap()
    }

    fn arb_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        ]
    }

    fn arb_name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._-]{1,40}"
    }

    proptest! {
        #[test]
        fn ping_roundtrip(seq: u32, target in "[a-z0-9]{0,20}", src in proptest::option::of(arb_addr()), name in arb_name()) {
            let m = Ping { seq, target: &target, source_addr: src, source_name: &name };
            let bytes = m.to_vec();
            match roundtrip_one(&bytes) { Message::Ping(p) => prop_assert_eq!(p, m), other => panic!("{other:?}") }
        }

        #[test]
        fn indirect_ping_roundtrip(seq: u32, target in arb_name(), addr in arb_addr(), nack: bool, src in proptest::option::of(arb_addr()), name in arb_name(), nack_timeout_ms: u32) {
            let m = IndirectPing { seq, target: &target, target_addr: addr, nack, source_addr: src, source_name: &name, nack_timeout_ms };
            let bytes = m.to_vec();
            match roundtrip_one(&bytes) { Message::IndirectPing(p) => prop_assert_eq!(p, m), other => panic!("{other:?}") }
        }

        #[test]
        fn ack_nack_roundtrip(seq: u32, payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let m = Ack { seq, payload: &payload };
            match roundtrip_one(&m.to_vec()) { Message::Ack(p) => prop_assert_eq!(p, m), other => panic!("{other:?}") }
            let n = Nack { seq };
            match roundtrip_one(&n.to_vec()) { Message::Nack(p) => prop_assert_eq!(p, n), other => panic!("{other:?}") }
        }

        #[test]
        fn accusations_roundtrip(inc: u32, node in arb_name(), from in arb_name()) {
            let s = Suspect { incarnation: inc, node: &node, from: &from };
            match roundtrip_one(&s.to_vec()) { Message::Suspect(p) => prop_assert_eq!(p, s), other => panic!("{other:?}") }
            let d = Dead { incarnation: inc, node: &node, from: &from };
            match roundtrip_one(&d.to_vec()) { Message::Dead(p) => prop_assert_eq!(p, d), other => panic!("{other:?}") }
        }

        #[test]
        fn alive_roundtrip(inc: u32, node in arb_name(), addr in arb_addr(), meta in proptest::collection::vec(any::<u8>(), 0..600), versions: [u8; 6]) {
            let m = Alive { incarnation: inc, node: &node, addr, meta: &meta, versions };
            match roundtrip_one(&m.to_vec()) { Message::Alive(p) => prop_assert_eq!(p, m), other => panic!("{other:?}") }
        }

        #[test]
        fn push_pull_roundtrip(join: bool, nodes in proptest::collection::vec((arb_name(), arb_addr(), proptest::collection::vec(any::<u8>(), 0..40), any::<u32>(), 0u8..4, any::<[u8; 6]>()), 0..40), user in proptest::collection::vec(any::<u8>(), 0..300)) {
            let states = [WireState::Alive, WireState::Suspect, WireState::Dead, WireState::Left];
            let pn: Vec<PushNode<'_>> = nodes.iter().map(|(n, a, m, i, s, v)| PushNode { name: n, addr: *a, meta: m, incarnation: *i, state: states[*s as usize], versions: *v }).collect();
            let mut out = Vec::new();
            PushPull::encode(&mut out, join, pn.iter().copied(), &user);
            match roundtrip_one(&out) {
                Message::PushPull(p) => {
                    prop_assert_eq!(p.join, join);
                    prop_assert_eq!(p.node_count, pn.len());
                    prop_assert_eq!(p.user_state, &user[..]);
                    let got: Vec<_> = p.nodes().collect();
                    prop_assert_eq!(got, pn);
                }
                other => panic!("{other:?}"),
            }
        }

        #[test]
        fn user_and_error_roundtrip(payload in proptest::collection::vec(any::<u8>(), 0..300), msg in ".{0,50}") {
            let u = User { payload: &payload };
            match roundtrip_one(&u.to_vec()) { Message::User(p) => prop_assert_eq!(p, u), other => panic!("{other:?}") }
            let e = ErrorReply { message: &msg };
            match roundtrip_one(&e.to_vec()) { Message::Error(p) => prop_assert_eq!(p, e), other => panic!("{other:?}") }
        }

        /// Arbitrary bytes as any message type: never a panic, only Ok or an error.
        #[test]
        fn arbitrary_fields_never_panic(ty in 0u8..16, fields in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(Some(Message::PushPull(p))) = Message::decode(ty, &fields, 64) {
                prop_assert!(p.node_count <= 64);
                prop_assert_eq!(p.nodes().count(), p.node_count);
            }
        }
    }

    #[test]
    fn unknown_fields_and_types_are_skipped() {
        // A newer node adds field 15 to a ping and sends a message type 200.
        let mut out = Vec::new();
        encode_message(&mut out, MessageType::Ping as u8, |o| {
            let mut e = Encoder::new(o);
            e.uint(1, 42)
                .str(2, "b")
                .bytes(15, b"future")
                .f64(16, 1.5)
                .str(4, "a");
        });
        encode_message(&mut out, 200, |o| o.extend_from_slice(b"whatever"));
        let mut it = BodyIter::new(&out);
        let (ty, f) = it.next().unwrap().unwrap();
        match Message::decode(ty, f, 10).unwrap().unwrap() {
            Message::Ping(p) => {
                assert_eq!((p.seq, p.target, p.source_name), (42, "b", "a"));
            }
            other => panic!("{other:?}"),
        }
        let (ty, f) = it.next().unwrap().unwrap();
        assert!(Message::decode(ty, f, 10).unwrap().is_none());
    }

    #[test]
    fn a_name_with_a_control_character_is_refused() {
        let nodes = ["ok", "forged\nleave"].map(|name| PushNode {
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            meta: &[],
            incarnation: 1,
            state: WireState::Alive,
            versions: [1; 6],
        });
        let mut out = Vec::new();
        PushPull::encode(&mut out, false, nodes, &[]);
        let (ty, f) = BodyIter::new(&out).next().unwrap().unwrap();
        assert_eq!(
            Message::decode(ty, f, 10).unwrap_err(),
            WireError::NameControl
        );
    }

    #[test]
    fn push_pull_over_limit_is_refused() {
        let nodes: Vec<_> = (0..5)
            .map(|i| PushNode {
                name: ["a", "b", "c", "d", "e"][i],
                addr: SocketAddr::from(([127, 0, 0, 1], 1)),
                meta: &[],
                incarnation: 1,
                state: WireState::Alive,
                versions: [1; 6],
            })
            .collect();
        let mut out = Vec::new();
        PushPull::encode(&mut out, false, nodes, &[]);
        let (ty, f) = BodyIter::new(&out).next().unwrap().unwrap();
        assert_eq!(Message::decode(ty, f, 4).unwrap_err(), WireError::TooMany);
        assert!(Message::decode(ty, f, 5).is_ok());
    }
}
