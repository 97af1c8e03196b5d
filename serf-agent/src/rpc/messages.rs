//! The RPC's messages with Go's field names (go-serf-agent.md §1.3–1.4): headers,
//! members, key and coordinate replies, and stream records. Keys are written in sorted
//! order with every field present, as go-msgpack writes a struct; reads go through
//! [`Fields`], which tolerates what clients in the wild send.

use super::msgpack::{Fields, TypeError, Value, Writer};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A request header `{Command, Seq}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// The command name.
    pub command: String,
    /// The client's sequence number, echoed in the reply.
    pub seq: u64,
}

impl RequestHeader {
    /// Reads a header; a value that is not a map is a decode failure.
    pub fn decode(v: &Value) -> Result<RequestHeader, TypeError> {
        if !v.is_struct() {
            return Err(TypeError {
                field: "header",
                expected: "a map",
            });
        }
        let f = Fields(v);
        Ok(RequestHeader {
            command: f.string("Command")?,
            seq: f.uint("Seq")?,
        })
    }

    /// Writes the header as Go's client does.
    pub fn encode(&self, w: &mut Writer) {
        w.map(2)
            .str("Command")
            .str(&self.command)
            .str("Seq")
            .uint(self.seq);
    }
}

/// A reply header `{Error, Seq}`; `Error` is always present, `""` on success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHeader {
    /// The request's sequence number.
    pub seq: u64,
    /// Go's error string, or empty.
    pub error: String,
}

impl ResponseHeader {
    /// Writes `{Error, Seq}`.
    pub fn encode(seq: u64, error: &str, w: &mut Writer) {
        w.map(2).str("Error").str(error).str("Seq").uint(seq);
    }

    /// Reads a reply header.
    pub fn decode(v: &Value) -> Result<ResponseHeader, TypeError> {
        let f = Fields(v);
        Ok(ResponseHeader {
            seq: f.uint("Seq")?,
            error: f.string("Error")?,
        })
    }
}

/// One member as the RPC carries it (`client.Member`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcMember {
    /// `Name`
    pub name: String,
    /// `Addr`: written as 16 bytes (IPv4-mapped for IPv4), which every client accepts.
    pub addr: IpAddr,
    /// `Port`
    pub port: u16,
    /// `Tags`, sorted by key.
    pub tags: Vec<(String, String)>,
    /// `Status`: "alive", "leaving", "left", "failed" or "none".
    pub status: String,
    /// memberlist's `[ProtocolMin, ProtocolMax, ProtocolCur]`, then Serf's
    /// `[DelegateMin, DelegateMax, DelegateCur]`.
    pub protocol: [u8; 6],
}

impl RpcMember {
    /// From the core's member.
    pub fn from_member(m: &serf_proto::serf::Member) -> RpcMember {
        RpcMember {
            name: m.name.as_str().to_owned(),
            addr: m.addr.ip(),
            port: m.addr.port(),
            tags: m.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            status: m.status.as_str().to_owned(),
            protocol: m.protocol,
        }
    }

    /// Writes the member with its keys sorted as go-msgpack sorts struct fields.
    pub fn encode(&self, w: &mut Writer) {
        let addr = match self.addr {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let p = self.protocol;
        w.map(11)
            .str("Addr")
            .bin(&addr)
            .str("DelegateCur")
            .uint(p[5].into())
            .str("DelegateMax")
            .uint(p[4].into())
            .str("DelegateMin")
            .uint(p[3].into())
            .str("Name")
            .str(&self.name)
            .str("Port")
            .uint(self.port.into())
            .str("ProtocolCur")
            .uint(p[2].into())
            .str("ProtocolMax")
            .uint(p[1].into())
            .str("ProtocolMin")
            .uint(p[0].into())
            .str("Status")
            .str(&self.status);
        w.str("Tags")
            .string_map(self.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }

    /// Reads a member: `Addr` may be 4 or 16 bytes (Go sends 4 with `-advertise`).
    pub fn decode(v: &Value) -> Result<RpcMember, TypeError> {
        let f = Fields(v);
        let raw = f.bytes("Addr")?.unwrap_or_default();
        let addr = match raw.len() {
            4 => IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
            16 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(&raw);
                let v6 = Ipv6Addr::from(o);
                match v6.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6(v6),
                }
            }
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let u8f = |k: &'static str| f.uint(k).map(|v| v.min(255) as u8);
        let mut tags = f.string_map("Tags")?;
        tags.sort();
        Ok(RpcMember {
            name: f.string("Name")?,
            addr,
            port: f.uint("Port")?.min(u64::from(u16::MAX)) as u16,
            tags,
            status: f.string("Status")?,
            protocol: [
                u8f("ProtocolMin")?,
                u8f("ProtocolMax")?,
                u8f("ProtocolCur")?,
                u8f("DelegateMin")?,
                u8f("DelegateMax")?,
                u8f("DelegateCur")?,
            ],
        })
    }
}

/// Writes `{Members:[...]}`.
pub fn encode_members(members: &[RpcMember], w: &mut Writer) {
    w.map(1).str("Members").array(members.len());
    for m in members {
        m.encode(w);
    }
}

/// Reads `{Members:[...]}`.
pub fn decode_members(v: &Value) -> Result<Vec<RpcMember>, TypeError> {
    match v.get("Members") {
        None | Some(Value::Nil) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(RpcMember::decode).collect(),
        Some(_) => Err(TypeError {
            field: "Members",
            expected: "a list",
        }),
    }
}

/// The reply to the key commands (`keyResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyReply {
    /// `Messages`: node → message.
    pub messages: Vec<(String, String)>,
    /// `Keys`: base64 key → how many nodes hold it; `None` (nil) except for list.
    pub keys: Option<Vec<(String, i64)>>,
    /// `NumNodes`
    pub num_nodes: i64,
    /// `NumErr`
    pub num_err: i64,
    /// `NumResp`
    pub num_resp: i64,
}

impl KeyReply {
    /// Writes `{Keys, Messages, NumErr, NumNodes, NumResp}`.
    pub fn encode(&self, w: &mut Writer) {
        w.map(5).str("Keys");
        match &self.keys {
            None => {
                w.nil();
            }
            Some(keys) => {
                let mut keys: Vec<_> = keys.iter().collect();
                keys.sort();
                w.map(keys.len());
                for (k, n) in keys {
                    w.str(k).int(*n);
                }
            }
        }
        w.str("Messages")
            .string_map(self.messages.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        w.str("NumErr")
            .int(self.num_err)
            .str("NumNodes")
            .int(self.num_nodes)
            .str("NumResp")
            .int(self.num_resp);
    }

    /// Reads the reply.
    pub fn decode(v: &Value) -> Result<KeyReply, TypeError> {
        let f = Fields(v);
        let keys = match v.get("Keys") {
            None | Some(Value::Nil) => None,
            Some(Value::Map(entries)) => Some(
                entries
                    .iter()
                    .map(|(k, n)| {
                        let k = k.as_raw().ok_or(TypeError {
                            field: "Keys",
                            expected: "a map of keys to counts",
                        })?;
                        let n = match n {
                            Value::Uint(u) => *u as i64,
                            Value::Int(i) => *i,
                            _ => 0,
                        };
                        Ok((String::from_utf8_lossy(k).into_owned(), n))
                    })
                    .collect::<Result<Vec<_>, TypeError>>()?,
            ),
            Some(_) => {
                return Err(TypeError {
                    field: "Keys",
                    expected: "a map",
                });
            }
        };
        Ok(KeyReply {
            messages: f.string_map("Messages")?,
            keys,
            num_nodes: f.int("NumNodes")?,
            num_err: f.int("NumErr")?,
            num_resp: f.int("NumResp")?,
        })
    }
}

/// A network coordinate as the RPC carries it (`coordinate.Coordinate`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RpcCoordinate {
    /// `Vec`; `None` is Go's nil slice (the zero coordinate).
    pub vec: Option<Vec<f64>>,
    /// `Error`
    pub error: f64,
    /// `Adjustment`
    pub adjustment: f64,
    /// `Height`
    pub height: f64,
}

impl RpcCoordinate {
    /// From the core's coordinate.
    pub fn from_core(c: &serf_proto::serf::Coordinate) -> RpcCoordinate {
        RpcCoordinate {
            vec: Some(c.vec.clone()),
            error: c.error,
            adjustment: c.adjustment,
            height: c.height,
        }
    }

    /// The estimated round trip to `other` in seconds (Go's `DistanceTo`: Euclidean
    /// distance plus both heights, plus both adjustments unless that makes it negative).
    pub fn distance_to(&self, other: &RpcCoordinate) -> f64 {
        let a = self.vec.as_deref().unwrap_or(&[]);
        let b = other.vec.as_deref().unwrap_or(&[]);
        let sum: f64 = a
            .iter()
            .zip(b.iter().chain(std::iter::repeat(&0.0)))
            .map(|(x, y)| (x - y) * (x - y))
            .sum();
        let dist = sum.sqrt() + self.height + other.height;
        let adjusted = dist + self.adjustment + other.adjustment;
        if adjusted > 0.0 { adjusted } else { dist }
    }
}

/// Writes `{Coord:{Adjustment, Error, Height, Vec}, Ok}`.
pub fn encode_coordinate(coord: Option<&RpcCoordinate>, w: &mut Writer) {
    let zero = RpcCoordinate::default();
    let c = coord.unwrap_or(&zero);
    w.map(2)
        .str("Coord")
        .map(4)
        .str("Adjustment")
        .f64(c.adjustment)
        .str("Error")
        .f64(c.error)
        .str("Height")
        .f64(c.height)
        .str("Vec");
    match &c.vec {
        None => {
            w.nil();
        }
        Some(v) => {
            w.array(v.len());
            for x in v {
                w.f64(*x);
            }
        }
    }
    w.str("Ok").bool(coord.is_some());
}

/// Reads `{Coord, Ok}`: the coordinate when `Ok`.
pub fn decode_coordinate(v: &Value) -> Result<Option<RpcCoordinate>, TypeError> {
    if !Fields(v).bool("Ok")? {
        return Ok(None);
    }
    let c = v.get("Coord").unwrap_or(&Value::Nil);
    let f = Fields(c);
    let num = |k: &'static str| match c.get(k) {
        Some(Value::Float(x)) => Ok(*x),
        Some(Value::Uint(u)) => Ok(*u as f64),
        Some(Value::Int(i)) => Ok(*i as f64),
        None | Some(Value::Nil) => Ok(0.0),
        _ => Err(TypeError {
            field: k,
            expected: "a number",
        }),
    };
    let vec = match c.get("Vec") {
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|x| match x {
                    Value::Float(x) => *x,
                    Value::Uint(u) => *u as f64,
                    Value::Int(i) => *i as f64,
                    _ => 0.0,
                })
                .collect(),
        ),
        _ => None,
    };
    let _ = f;
    Ok(Some(RpcCoordinate {
        vec,
        error: num("Error")?,
        adjustment: num("Adjustment")?,
        height: num("Height")?,
    }))
}

/// The `stats` reply: sections of (key, value) pairs.
pub type StatsSections = Vec<(String, Vec<(String, String)>)>;

/// Writes the stats reply: sections and keys sorted.
pub fn encode_stats(stats: &[(String, Vec<(String, String)>)], w: &mut Writer) {
    let mut sections: Vec<_> = stats.iter().collect();
    sections.sort_by(|a, b| a.0.cmp(&b.0));
    w.map(sections.len());
    for (name, entries) in sections {
        w.str(name)
            .string_map(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
}

/// Reads the stats reply.
pub fn decode_stats(v: &Value) -> Result<StatsSections, TypeError> {
    let err = TypeError {
        field: "stats",
        expected: "a map of maps of strings",
    };
    let Value::Map(sections) = v else {
        return Err(err);
    };
    let mut out = Vec::new();
    for (k, _) in sections {
        let name = String::from_utf8_lossy(k.as_raw().ok_or(err.clone())?).into_owned();
        // Fields wants a static key; look the section up by hand.
        let section = Value::Map(vec![(
            Value::Str(b"s".to_vec()),
            v.get(&name).cloned().unwrap_or(Value::Nil),
        )]);
        let mut entries = Fields(&section).string_map("s")?;
        entries.sort();
        out.push((name, entries));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A member-event record `{Event, Members}`.
pub fn encode_member_event(kind: &str, members: &[RpcMember], w: &mut Writer) {
    w.map(2).str("Event").str(kind).str("Members");
    w.array(members.len());
    for m in members {
        m.encode(w);
    }
}

/// A user-event record `{Coalesce, Event:"user", LTime, Name, Payload}`.
pub fn encode_user_event(ltime: u64, name: &str, payload: &[u8], coalesce: bool, w: &mut Writer) {
    w.map(5)
        .str("Coalesce")
        .bool(coalesce)
        .str("Event")
        .str("user")
        .str("LTime")
        .uint(ltime)
        .str("Name")
        .str(name)
        .str("Payload")
        .bin(payload);
}

/// A query record `{Event:"query", ID, LTime, Name, Payload}`.
pub fn encode_query_event(id: u64, ltime: u64, name: &str, payload: &[u8], w: &mut Writer) {
    w.map(5)
        .str("Event")
        .str("query")
        .str("ID")
        .uint(id)
        .str("LTime")
        .uint(ltime)
        .str("Name")
        .str(name)
        .str("Payload")
        .bin(payload);
}

/// A query-response record `{From, Payload, Type}`: `Type` is "ack", "response" or
/// "done"; `ack` and `done` carry a nil payload.
pub fn encode_query_record(kind: &str, from: &str, payload: Option<&[u8]>, w: &mut Writer) {
    w.map(3)
        .str("From")
        .str(from)
        .str("Payload")
        .opt_bin(payload)
        .str("Type")
        .str(kind);
}

/// A monitor record `{Log}`.
pub fn encode_log(line: &str, w: &mut Writer) {
    w.map(1).str("Log").str(line);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::msgpack::{Limits, decode};

    #[test]
    fn response_header_bytes_match_go() {
        let mut w = Writer::new();
        ResponseHeader::encode(1, "", &mut w);
        // {"Error":"", "Seq":1}: fixmap 2, fixstr keys sorted, smallest uint.
        assert_eq!(
            w.buf,
            [
                0x82, 0xa5, b'E', b'r', b'r', b'o', b'r', 0xa0, 0xa3, b'S', b'e', b'q', 0x01
            ]
        );
    }

    #[test]
    fn member_bytes_match_go() {
        let m = RpcMember {
            name: "foo".into(),
            addr: "127.0.0.1".parse().unwrap(),
            port: 7946,
            tags: vec![("role".into(), "web".into())],
            status: "alive".into(),
            protocol: [2, 5, 4, 2, 5, 4],
        };
        let mut w = Writer::new();
        m.encode(&mut w);
        let mut expect = vec![0x8b];
        expect.extend_from_slice(b"\xa4Addr\xc4\x10");
        expect.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);
        expect.extend_from_slice(b"\xabDelegateCur\x04\xabDelegateMax\x05\xabDelegateMin\x02");
        expect.extend_from_slice(b"\xa4Name\xa3foo\xa4Port\xcd\x1f\x0a");
        expect.extend_from_slice(b"\xabProtocolCur\x04\xabProtocolMax\x05\xabProtocolMin\x02");
        expect.extend_from_slice(b"\xa6Status\xa5alive\xa4Tags\x81\xa4role\xa3web");
        assert_eq!(w.buf, expect);
        let (v, _) = decode(&w.buf, &Limits::default()).unwrap();
        assert_eq!(RpcMember::decode(&v).unwrap(), m);
    }

    #[test]
    fn install_key_reply_has_nil_keys_and_signed_counts() {
        let r = KeyReply {
            messages: vec![],
            keys: None,
            num_nodes: 200,
            num_err: 0,
            num_resp: 3,
        };
        let mut w = Writer::new();
        r.encode(&mut w);
        let mut expect = vec![0x85];
        expect.extend_from_slice(b"\xa4Keys\xc0\xa8Messages\x80\xa6NumErr\x00");
        expect.extend_from_slice(b"\xa8NumNodes\xd1\x00\xc8\xa7NumResp\x03");
        assert_eq!(w.buf, expect);
        let (v, _) = decode(&w.buf, &Limits::default()).unwrap();
        assert_eq!(KeyReply::decode(&v).unwrap(), r);
    }

    #[test]
    fn unknown_coordinate_is_zero_with_nil_vec() {
        let mut w = Writer::new();
        encode_coordinate(None, &mut w);
        let mut expect = vec![0x82];
        expect.extend_from_slice(b"\xa5Coord\x84\xaaAdjustment\xcb");
        expect.extend_from_slice(&[0; 8]);
        expect.extend_from_slice(b"\xa5Error\xcb");
        expect.extend_from_slice(&[0; 8]);
        expect.extend_from_slice(b"\xa6Height\xcb");
        expect.extend_from_slice(&[0; 8]);
        expect.extend_from_slice(b"\xa3Vec\xc0\xa2Ok\xc2");
        assert_eq!(w.buf, expect);
    }

    #[test]
    fn query_done_record_has_nil_payload() {
        let mut w = Writer::new();
        encode_query_record("done", "", None, &mut w);
        assert_eq!(w.buf, b"\x83\xa4From\xa0\xa7Payload\xc0\xa4Type\xa4done");
    }

    #[test]
    fn distance_matches_go_formula() {
        let a = RpcCoordinate {
            vec: Some(vec![0.003, 0.0]),
            error: 0.0,
            adjustment: 0.0,
            height: 0.001,
        };
        let b = RpcCoordinate {
            vec: Some(vec![0.0, 0.004]),
            error: 0.0,
            adjustment: 0.0,
            height: 0.001,
        };
        assert!((a.distance_to(&b) - 0.007).abs() < 1e-12);
    }
}
