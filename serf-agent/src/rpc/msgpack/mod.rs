//! msgpack as HashiCorp's agent speaks it on the RPC: written the way hashicorp/go-msgpack
//! writes it with `WriteExt: true`, read tolerantly and within bounds.
//!
//! Writing (go-serf-agent.md §1.1): unsigned integers take the smallest form; signed
//! integers use the *signed* markers above 127 (go-msgpack `EncodeInt` with
//! `PositiveIntUnsigned` false); strings are *str* (str8 allowed), byte slices *bin*,
//! nil slices and maps `nil`. Structs are maps with every field present, keys sorted —
//! the typed messages in [`super::messages`] write their keys in that order.
//!
//! Reading: any integer marker for any integer, *str* and *bin* interchangeable, `nil`
//! for a zero value, unknown keys ignored (see [`Value`]'s accessors). Every length is
//! checked against [`Limits`] before anything is allocated, so a hostile peer can make
//! the decoder refuse its input, never allocate without bound or recurse without end.

mod scan;
mod write;

pub use scan::Scanner;
pub use write::Writer;

use std::fmt;

/// A decoded msgpack value. Strings keep their raw bytes: Go's `string` holds any bytes,
/// and a client may send a key or a value as *bin*.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `nil`
    Nil,
    /// `true` / `false`
    Bool(bool),
    /// A negative integer (any signed marker).
    Int(i64),
    /// A non-negative integer (any marker, signed or not).
    Uint(u64),
    /// A float32 or float64.
    Float(f64),
    /// A *str*.
    Str(Vec<u8>),
    /// A *bin*.
    Bin(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// A map, in wire order.
    Map(Vec<(Value, Value)>),
    /// An extension value (type, data); no RPC message uses one, so it is only skipped.
    Ext(i8, Vec<u8>),
}

/// Why a value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// More bytes are needed (not an error on a stream: wait for them).
    Incomplete,
    /// The marker 0xc1, which msgpack never uses.
    BadMarker(u8),
    /// A length past the limits.
    TooLong {
        /// What was too long.
        what: &'static str,
        /// The length declared.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// Arrays and maps nested deeper than the limit.
    TooDeep(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Incomplete => f.write_str("truncated msgpack value"),
            DecodeError::BadMarker(m) => write!(f, "invalid msgpack marker 0x{m:02x}"),
            DecodeError::TooLong { what, len, limit } => {
                write!(
                    f,
                    "msgpack {what} of length {len} exceeds the limit of {limit}"
                )
            }
            DecodeError::TooDeep(d) => write!(f, "msgpack nesting deeper than {d}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Bounds on what one decoded value may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most bytes one value may take on the wire.
    pub max_value_bytes: usize,
    /// The deepest nesting of arrays and maps.
    pub max_depth: usize,
    /// The most elements of one array or entries of one map.
    pub max_collection: usize,
}

impl Default for Limits {
    /// 1 MiB per value (the largest legal user event or query is far smaller), 32 levels,
    /// 65,536 entries: room for a member list of a large cluster.
    fn default() -> Limits {
        Limits {
            max_value_bytes: 1 << 20,
            max_depth: 32,
            max_collection: 1 << 16,
        }
    }
}

/// Decodes one value from the front of `buf`: the value and how many bytes it took, or
/// [`DecodeError::Incomplete`] when `buf` ends inside it. A value whose declared lengths
/// exceed `limits` is refused as soon as its header is read.
pub fn decode(buf: &[u8], limits: &Limits) -> Result<(Value, usize), DecodeError> {
    let mut r = Reader {
        buf,
        pos: 0,
        limits,
    };
    let v = r.value(0)?;
    Ok((v, r.pos))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: &'a Limits,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Incomplete)?;
        if end > self.limits.max_value_bytes {
            return Err(DecodeError::TooLong {
                what: "value",
                len: end as u64,
                limit: self.limits.max_value_bytes as u64,
            });
        }
        if end > self.buf.len() {
            return Err(DecodeError::Incomplete);
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn bytes(&mut self, len: u64) -> Result<Vec<u8>, DecodeError> {
        // Checked against the value limit before the copy: a declared 4 GiB string is
        // refused at once instead of waiting for (or allocating) 4 GiB.
        let limit = self.limits.max_value_bytes as u64;
        if len > limit {
            return Err(DecodeError::TooLong {
                what: "string",
                len,
                limit,
            });
        }
        Ok(self.take(len as usize)?.to_vec())
    }

    fn collection(&mut self, len: u64, depth: usize) -> Result<usize, DecodeError> {
        if depth + 1 > self.limits.max_depth {
            return Err(DecodeError::TooDeep(self.limits.max_depth));
        }
        let limit = self.limits.max_collection as u64;
        if len > limit {
            return Err(DecodeError::TooLong {
                what: "collection",
                len,
                limit,
            });
        }
        Ok(len as usize)
    }

    fn array(&mut self, len: u64, depth: usize) -> Result<Value, DecodeError> {
        let n = self.collection(len, depth)?;
        // Every element takes at least one byte: never reserve more than remain.
        let mut out = Vec::with_capacity(n.min(self.buf.len() - self.pos));
        for _ in 0..n {
            out.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(out))
    }

    fn map(&mut self, len: u64, depth: usize) -> Result<Value, DecodeError> {
        let n = self.collection(len, depth)?;
        let mut out = Vec::with_capacity(n.min((self.buf.len() - self.pos) / 2));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            out.push((k, v));
        }
        Ok(Value::Map(out))
    }

    fn ext(&mut self, len: u64) -> Result<Value, DecodeError> {
        let ty = self.u8()? as i8;
        Ok(Value::Ext(ty, self.bytes(len)?))
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let m = self.u8()?;
        Ok(match m {
            0x00..=0x7f => Value::Uint(u64::from(m)),
            0x80..=0x8f => return self.map(u64::from(m & 0x0f), depth),
            0x90..=0x9f => return self.array(u64::from(m & 0x0f), depth),
            0xa0..=0xbf => Value::Str(self.bytes(u64::from(m & 0x1f))?),
            0xc0 => Value::Nil,
            0xc1 => return Err(DecodeError::BadMarker(m)),
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 => {
                let n = self.be(1)?;
                Value::Bin(self.bytes(n)?)
            }
            0xc5 => {
                let n = self.be(2)?;
                Value::Bin(self.bytes(n)?)
            }
            0xc6 => {
                let n = self.be(4)?;
                Value::Bin(self.bytes(n)?)
            }
            0xc7 => {
                let n = self.be(1)?;
                return self.ext(n);
            }
            0xc8 => {
                let n = self.be(2)?;
                return self.ext(n);
            }
            0xc9 => {
                let n = self.be(4)?;
                return self.ext(n);
            }
            0xca => Value::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            0xcb => Value::Float(f64::from_bits(self.be(8)?)),
            0xcc => Value::Uint(self.be(1)?),
            0xcd => Value::Uint(self.be(2)?),
            0xce => Value::Uint(self.be(4)?),
            0xcf => Value::Uint(self.be(8)?),
            0xd0 => int(i64::from(self.be(1)? as u8 as i8)),
            0xd1 => int(i64::from(self.be(2)? as u16 as i16)),
            0xd2 => int(i64::from(self.be(4)? as u32 as i32)),
            0xd3 => int(self.be(8)? as i64),
            0xd4 => return self.ext(1),
            0xd5 => return self.ext(2),
            0xd6 => return self.ext(4),
            0xd7 => return self.ext(8),
            0xd8 => return self.ext(16),
            0xd9 => {
                let n = self.be(1)?;
                Value::Str(self.bytes(n)?)
            }
            0xda => {
                let n = self.be(2)?;
                Value::Str(self.bytes(n)?)
            }
            0xdb => {
                let n = self.be(4)?;
                Value::Str(self.bytes(n)?)
            }
            0xdc => {
                let n = self.be(2)?;
                return self.array(n, depth);
            }
            0xdd => {
                let n = self.be(4)?;
                return self.array(n, depth);
            }
            0xde => {
                let n = self.be(2)?;
                return self.map(n, depth);
            }
            0xdf => {
                let n = self.be(4)?;
                return self.map(n, depth);
            }
            0xe0..=0xff => Value::Int(i64::from(m as i8)),
        })
    }
}

/// Non-negative integers are [`Value::Uint`] whatever their marker, so accessors need
/// one case for them.
fn int(v: i64) -> Value {
    if v >= 0 {
        Value::Uint(v as u64)
    } else {
        Value::Int(v)
    }
}

/// Why a decoded value does not fit the message it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeError {
    /// The field.
    pub field: &'static str,
    /// What it should have been.
    pub expected: &'static str,
}

impl fmt::Display for TypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field {} is not {}", self.field, self.expected)
    }
}

impl std::error::Error for TypeError {}

impl Value {
    /// The bytes of a *str* or *bin*.
    pub fn as_raw(&self) -> Option<&[u8]> {
        match self {
            Value::Str(b) | Value::Bin(b) => Some(b),
            _ => None,
        }
    }

    /// The value of `key` in a map (the key as *str* or *bin*); `None` when absent or when
    /// `self` is not a map. The first match wins, as Go's decoder overwrites in order but
    /// no real client repeats a key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_raw() == Some(key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Whether this is a map (or nil, which decodes as an empty struct in Go).
    pub fn is_struct(&self) -> bool {
        matches!(self, Value::Map(_) | Value::Nil)
    }
}

/// Typed reads of a struct's fields with Go's tolerance: absent or nil is the zero value.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a>(pub &'a Value);

impl<'a> Fields<'a> {
    fn field(&self, key: &'static str) -> Option<&'a Value> {
        match self.0.get(key) {
            None | Some(Value::Nil) => None,
            Some(v) => Some(v),
        }
    }

    /// An unsigned integer field (any integer marker; a negative value is refused).
    pub fn uint(&self, key: &'static str) -> Result<u64, TypeError> {
        match self.field(key) {
            None => Ok(0),
            Some(Value::Uint(v)) => Ok(*v),
            // Go's decoder accepts a float for an integer field, truncating it.
            Some(Value::Float(f)) if *f >= 0.0 => Ok(*f as u64),
            _ => Err(TypeError {
                field: key,
                expected: "an unsigned integer",
            }),
        }
    }

    /// A signed integer field (any integer marker).
    pub fn int(&self, key: &'static str) -> Result<i64, TypeError> {
        match self.field(key) {
            None => Ok(0),
            Some(Value::Int(v)) => Ok(*v),
            Some(Value::Uint(v)) => i64::try_from(*v).map_err(|_| TypeError {
                field: key,
                expected: "a signed 64-bit integer",
            }),
            Some(Value::Float(f)) => Ok(*f as i64),
            _ => Err(TypeError {
                field: key,
                expected: "an integer",
            }),
        }
    }

    /// A boolean field.
    pub fn bool(&self, key: &'static str) -> Result<bool, TypeError> {
        match self.field(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            _ => Err(TypeError {
                field: key,
                expected: "a boolean",
            }),
        }
    }

    /// A string field, from *str* or *bin* (invalid UTF-8 is replaced, as no name or
    /// filter can use it).
    pub fn string(&self, key: &'static str) -> Result<String, TypeError> {
        match self.field(key) {
            None => Ok(String::new()),
            Some(v) => v
                .as_raw()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .ok_or(TypeError {
                    field: key,
                    expected: "a string",
                }),
        }
    }

    /// A byte-slice field, from *bin* or *str*; `None` when absent or nil (Go's nil
    /// slice, which matters for `_serf_ping`).
    pub fn bytes(&self, key: &'static str) -> Result<Option<Vec<u8>>, TypeError> {
        match self.field(key) {
            None => Ok(None),
            Some(v) => v.as_raw().map(|b| Some(b.to_vec())).ok_or(TypeError {
                field: key,
                expected: "bytes",
            }),
        }
    }

    /// A list of strings.
    pub fn strings(&self, key: &'static str) -> Result<Vec<String>, TypeError> {
        match self.field(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Nil => Some(String::new()),
                    v => v.as_raw().map(|b| String::from_utf8_lossy(b).into_owned()),
                })
                .collect::<Option<Vec<_>>>()
                .ok_or(TypeError {
                    field: key,
                    expected: "a list of strings",
                }),
            _ => Err(TypeError {
                field: key,
                expected: "a list of strings",
            }),
        }
    }

    /// A map of strings to strings, in wire order (a repeated key keeps the last value,
    /// as Go's map would).
    pub fn string_map(&self, key: &'static str) -> Result<Vec<(String, String)>, TypeError> {
        let err = TypeError {
            field: key,
            expected: "a map of strings",
        };
        match self.field(key) {
            None => Ok(Vec::new()),
            Some(Value::Map(entries)) => {
                let mut out: Vec<(String, String)> = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let k = k.as_raw().ok_or(err.clone())?;
                    let v = match v {
                        Value::Nil => &[][..],
                        v => v.as_raw().ok_or(err.clone())?,
                    };
                    let (k, v) = (
                        String::from_utf8_lossy(k).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    );
                    match out.iter_mut().find(|(ek, _)| *ek == k) {
                        Some(e) => e.1 = v,
                        None => out.push((k, v)),
                    }
                }
                Ok(out)
            }
            _ => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: Value) {
        let mut w = Writer::new();
        w.value(&v);
        let (back, n) = decode(&w.buf, &Limits::default()).unwrap();
        assert_eq!(n, w.buf.len());
        assert_eq!(back, v);
    }

    #[test]
    fn unsigned_integers_take_the_smallest_form() {
        let enc = |v| Writer::new().uint(v).buf.clone();
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0xcc, 0x80]);
        assert_eq!(enc(256), [0xcd, 0x01, 0x00]);
        assert_eq!(enc(65_536), [0xce, 0, 1, 0, 0]);
        assert_eq!(enc(1 << 32), [0xcf, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn signed_integers_above_127_use_signed_markers_as_go_does() {
        let enc = |v| Writer::new().int(v).buf.clone();
        assert_eq!(enc(5), [0x05]);
        assert_eq!(enc(200), [0xd1, 0x00, 0xc8]);
        assert_eq!(enc(-1), [0xff]);
        assert_eq!(enc(-33), [0xd0, 0xdf]);
        assert_eq!(enc(1_000_000_000), [0xd2, 0x3b, 0x9a, 0xca, 0x00]);
        assert_eq!(enc(15_000_000_000)[0], 0xd3);
    }

    #[test]
    fn strings_use_str8_and_bytes_use_bin() {
        assert_eq!(Writer::new().str("ab").buf, [0xa2, b'a', b'b']);
        let s = "x".repeat(40);
        assert_eq!(&Writer::new().str(&s).buf[..2], &[0xd9, 40]);
        assert_eq!(Writer::new().bin(b"ab").buf, [0xc4, 2, b'a', b'b']);
        assert_eq!(Writer::new().opt_bin(None).buf, [0xc0]);
    }

    #[test]
    fn values_roundtrip() {
        roundtrip(Value::Map(vec![
            (Value::Str(b"Seq".to_vec()), Value::Uint(70_000)),
            (Value::Str(b"Neg".to_vec()), Value::Int(-70_000)),
            (
                Value::Str(b"L".to_vec()),
                Value::Array((0..20).map(Value::Uint).collect()),
            ),
            (Value::Bin(b"k".to_vec()), Value::Float(1.5)),
            (Value::Nil, Value::Bool(true)),
        ]));
    }

    #[test]
    fn any_integer_marker_reads_as_the_same_number() {
        for bytes in [
            &[0x2a][..],
            &[0xcc, 42],
            &[0xcd, 0, 42],
            &[0xce, 0, 0, 0, 42],
            &[0xd0, 42],
            &[0xd1, 0, 42],
            &[0xd2, 0, 0, 0, 42],
            &[0xd3, 0, 0, 0, 0, 0, 0, 0, 42],
        ] {
            assert_eq!(
                decode(bytes, &Limits::default()).unwrap().0,
                Value::Uint(42)
            );
        }
    }

    #[test]
    fn every_prefix_of_a_value_is_incomplete() {
        let mut w = Writer::new();
        w.map(2)
            .str("Name")
            .str("x".repeat(300))
            .str("B")
            .bin(&[1; 70]);
        for n in 0..w.buf.len() {
            assert_eq!(
                decode(&w.buf[..n], &Limits::default()),
                Err(DecodeError::Incomplete)
            );
        }
    }

    #[test]
    fn huge_declared_lengths_are_refused_before_any_allocation() {
        let limits = Limits::default();
        assert!(matches!(
            decode(&[0xdb, 0xff, 0xff, 0xff, 0xff], &limits),
            Err(DecodeError::TooLong { .. })
        ));
        assert!(matches!(
            decode(&[0xdd, 0xff, 0xff, 0xff, 0xff], &limits),
            Err(DecodeError::TooLong { .. })
        ));
        assert!(matches!(
            decode(&[0xc6, 0x7f, 0xff, 0xff, 0xff], &limits),
            Err(DecodeError::TooLong { .. })
        ));
    }

    #[test]
    fn the_scanner_finds_value_ends_across_any_split() {
        let mut w = Writer::new();
        w.map(3)
            .str("Members")
            .array(2)
            .map(0)
            .array(0)
            .str("B")
            .bin(&[7; 300])
            .str("X")
            .f64(1.0);
        let first = w.buf.len();
        w.str("next");
        for step in 1..8 {
            let mut sc = Scanner::new();
            let mut got = None;
            let mut len = 0;
            while got.is_none() {
                len = (len + step).min(w.buf.len());
                got = sc.scan(&w.buf[..len], &Limits::default()).unwrap();
            }
            assert_eq!(got, Some(first));
        }
        assert!(matches!(
            Scanner::new().scan(&[0xdd, 0xff, 0xff, 0xff, 0xff], &Limits::default()),
            Err(DecodeError::TooLong { .. })
        ));
        assert_eq!(
            Scanner::new().scan(&[0x91; 100], &Limits::default()),
            Err(DecodeError::TooDeep(32))
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let bytes = vec![0x91; 100];
        assert_eq!(
            decode(&bytes, &Limits::default()),
            Err(DecodeError::TooDeep(32))
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic generator: every byte pattern class appears.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let len = (x % 40) as usize;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(x as u8);
            }
            let _ = decode(&buf, &Limits::default());
        }
    }

    #[test]
    fn fields_are_read_tolerantly() {
        let mut w = Writer::new();
        w.map(4)
            .bin(b"Name")
            .bin(b"web")
            .str("Payload")
            .str("p")
            .str("Timeout")
            .int(15_000_000_000)
            .str("Unknown")
            .array(0);
        let (v, _) = decode(&w.buf, &Limits::default()).unwrap();
        let f = Fields(&v);
        assert_eq!(f.string("Name").unwrap(), "web");
        assert_eq!(f.bytes("Payload").unwrap().as_deref(), Some(&b"p"[..]));
        assert_eq!(f.int("Timeout").unwrap(), 15_000_000_000);
        assert_eq!(f.uint("Missing").unwrap(), 0);
        assert_eq!(f.bytes("Missing").unwrap(), None);
        assert!(f.bool("Name").is_err());
    }
}
