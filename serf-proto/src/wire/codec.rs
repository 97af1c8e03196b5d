//! Primitive encoding: LEB128 varints and tagged fields.
//!
//! A message body is a sequence of fields. Each field starts with a key, the varint
//! `field_number << 3 | wire_type`, followed by its value:
//!
//! | wire type | value |
//! |---|---|
//! | 0 `VARINT` | an unsigned LEB128 varint (booleans, integers, enums) |
//! | 1 `FIXED64` | eight little-endian bytes (floating point) |
//! | 2 `BYTES` | a varint length, then that many bytes (strings, bytes, nested messages) |
//!
//! A decoder skips fields it does not know, so new fields can be added without breaking
//! older nodes. A repeated field is written once per element. Every length is checked
//! against the bytes actually present before anything is sliced or allocated.

use super::WireError;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Wire type of a varint field.
pub const VARINT: u8 = 0;
/// Wire type of an 8-byte fixed field.
pub const FIXED64: u8 = 1;
/// Wire type of a length-delimited field.
pub const BYTES: u8 = 2;

/// Appends `v` as an unsigned LEB128 varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The number of bytes `put_varint(v)` writes.
#[inline]
pub fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits; zero still takes one byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads a varint from the front of `buf`, returning it and the bytes consumed.
#[inline]
pub fn get_varint(buf: &[u8]) -> Result<(u64, usize), WireError> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        let chunk = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return Err(WireError::VarintOverflow);
        }
        v |= chunk << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    if buf.len() >= 10 {
        Err(WireError::VarintOverflow)
    } else {
        Err(WireError::Truncated)
    }
}

/// Writes the fields of one message into a growing buffer.
#[derive(Debug)]
pub struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Encoder<'a> {
    /// An encoder appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Encoder { out }
    }

    #[inline]
    fn key(&mut self, field: u32, wire_type: u8) {
        put_varint(self.out, (u64::from(field) << 3) | u64::from(wire_type));
    }

    /// An unsigned integer; zero is omitted (it is the default).
    #[inline]
    pub fn uint(&mut self, field: u32, v: u64) -> &mut Self {
        if v != 0 {
            self.key(field, VARINT);
            put_varint(self.out, v);
        }
        self
    }

    /// An unsigned integer, written even when zero.
    #[inline]
    pub fn uint_always(&mut self, field: u32, v: u64) -> &mut Self {
        self.key(field, VARINT);
        put_varint(self.out, v);
        self
    }

    /// A boolean; `false` is omitted.
    #[inline]
    pub fn bool(&mut self, field: u32, v: bool) -> &mut Self {
        self.uint(field, u64::from(v))
    }

    /// A 64-bit float, always written.
    #[inline]
    pub fn f64(&mut self, field: u32, v: f64) -> &mut Self {
        self.key(field, FIXED64);
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A byte string; empty is omitted.
    #[inline]
    pub fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        if !v.is_empty() {
            self.bytes_always(field, v);
        }
        self
    }

    /// A byte string, written even when empty (used for repeated elements).
    #[inline]
    pub fn bytes_always(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, BYTES);
        put_varint(self.out, v.len() as u64);
        self.out.extend_from_slice(v);
        self
    }

    /// A UTF-8 string; empty is omitted.
    #[inline]
    pub fn str(&mut self, field: u32, v: &str) -> &mut Self {
        self.bytes(field, v.as_bytes())
    }

    /// A socket address: the IP's 4 or 16 bytes followed by the port, big-endian.
    #[inline]
    pub fn addr(&mut self, field: u32, addr: &SocketAddr) -> &mut Self {
        let mut tmp = [0u8; 18];
        let n = encode_addr(addr, &mut tmp);
        self.bytes_always(field, &tmp[..n])
    }

    /// A nested message, written by `f`. The length prefix is fixed up afterwards, so the
    /// nested fields are encoded in place without a temporary buffer.
    pub fn message(&mut self, field: u32, f: impl FnOnce(&mut Encoder<'_>)) -> &mut Self {
        self.key(field, BYTES);
        let len_at = begin_length_prefix(self.out);
        f(&mut Encoder { out: self.out });
        finish_length_prefix(self.out, len_at);
        self
    }

    /// The buffer written so far.
    pub fn buffer(&self) -> &[u8] {
        self.out
    }
}

/// Reserves a one-byte length prefix and returns its position. Most bodies are shorter than
/// 128 bytes, so they are written in one pass; [`finish_length_prefix`] widens the prefix
/// when needed.
#[inline]
pub fn begin_length_prefix(out: &mut Vec<u8>) -> usize {
    out.push(0);
    out.len() - 1
}

/// Writes the length of everything after the prefix reserved at `len_at`.
#[inline]
pub fn finish_length_prefix(out: &mut Vec<u8>, len_at: usize) {
    let len = out.len() - len_at - 1;
    if len < 0x80 {
        out[len_at] = len as u8;
    } else {
        let mut prefix = Vec::with_capacity(10);
        put_varint(&mut prefix, len as u64);
        out.splice(len_at..len_at + 1, prefix);
    }
}

/// Encodes `addr` into `out`, returning the bytes written (6 or 18).
pub fn encode_addr(addr: &SocketAddr, out: &mut [u8; 18]) -> usize {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out[..4].copy_from_slice(&ip.octets());
            out[4..6].copy_from_slice(&addr.port().to_be_bytes());
            6
        }
        IpAddr::V6(ip) => {
            out[..16].copy_from_slice(&ip.octets());
            out[16..18].copy_from_slice(&addr.port().to_be_bytes());
            18
        }
    }
}

/// Decodes an address written by [`encode_addr`].
pub fn decode_addr(b: &[u8]) -> Result<SocketAddr, WireError> {
    match b.len() {
        6 => {
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Ok(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([b[4], b[5]]),
            ))
        }
        18 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[..16]);
            Ok(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(o)),
                u16::from_be_bytes([b[16], b[17]]),
            ))
        }
        n => Err(WireError::BadAddress(n)),
    }
}

/// The value of one decoded field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A varint.
    Varint(u64),
    /// Eight bytes, little-endian.
    Fixed64(u64),
    /// A length-delimited byte string, borrowed from the input.
    Bytes(&'a [u8]),
}

impl<'a> Value<'a> {
    /// The value as an integer.
    pub fn as_u64(self) -> Result<u64, WireError> {
        match self {
            Value::Varint(v) | Value::Fixed64(v) => Ok(v),
            Value::Bytes(_) => Err(WireError::WrongType),
        }
    }

    /// The value as a `u32`, rejecting larger numbers.
    pub fn as_u32(self) -> Result<u32, WireError> {
        u32::try_from(self.as_u64()?).map_err(|_| WireError::OutOfRange)
    }

    /// The value as a `u16`, rejecting larger numbers.
    pub fn as_u16(self) -> Result<u16, WireError> {
        u16::try_from(self.as_u64()?).map_err(|_| WireError::OutOfRange)
    }

    /// The value as a `u8`, rejecting larger numbers.
    pub fn as_u8(self) -> Result<u8, WireError> {
        u8::try_from(self.as_u64()?).map_err(|_| WireError::OutOfRange)
    }

    /// The value as a boolean (any non-zero varint is true).
    pub fn as_bool(self) -> Result<bool, WireError> {
        Ok(self.as_u64()? != 0)
    }

    /// The value as a float.
    pub fn as_f64(self) -> Result<f64, WireError> {
        match self {
            Value::Fixed64(v) => Ok(f64::from_bits(v)),
            _ => Err(WireError::WrongType),
        }
    }

    /// The value as borrowed bytes.
    pub fn as_bytes(self) -> Result<&'a [u8], WireError> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(WireError::WrongType),
        }
    }

    /// The value as a borrowed UTF-8 string.
    pub fn as_str(self) -> Result<&'a str, WireError> {
        core::str::from_utf8(self.as_bytes()?).map_err(|_| WireError::BadUtf8)
    }

    /// The value as a node name: UTF-8, at most [`crate::name::MAX_NAME_LEN`] bytes, and
    /// no control characters.
    pub fn as_name(self) -> Result<&'a str, WireError> {
        let s = self.as_str()?;
        if s.len() > crate::name::MAX_NAME_LEN {
            return Err(WireError::NameTooLong);
        }
        if crate::name::has_control(s) {
            return Err(WireError::NameControl);
        }
        Ok(s)
    }

    /// The value as a socket address.
    pub fn as_addr(self) -> Result<SocketAddr, WireError> {
        decode_addr(self.as_bytes()?)
    }
}

/// Iterates over the fields of one message body, borrowing from it.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf }
    }

    /// The next `(field number, value)`, or `None` at the end.
    #[inline]
    pub fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let (key, n) = get_varint(self.buf)?;
        self.buf = &self.buf[n..];
        let field = u32::try_from(key >> 3).map_err(|_| WireError::OutOfRange)?;
        let value = match (key & 7) as u8 {
            VARINT => {
                let (v, n) = get_varint(self.buf)?;
                self.buf = &self.buf[n..];
                Value::Varint(v)
            }
            FIXED64 => {
                if self.buf.len() < 8 {
                    return Err(WireError::Truncated);
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.buf[..8]);
                self.buf = &self.buf[8..];
                Value::Fixed64(u64::from_le_bytes(b))
            }
            BYTES => {
                let (len, n) = get_varint(self.buf)?;
                let rest = &self.buf[n..];
                let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
                if len > rest.len() {
                    return Err(WireError::Truncated);
                }
                self.buf = &rest[len..];
                Value::Bytes(&rest[..len])
            }
            other => return Err(WireError::UnknownWireType(other)),
        };
        Ok(Some((field, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varint_known_values() {
        for (v, bytes) in [
            (0u64, vec![0u8]),
            (1, vec![1]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out, bytes);
            assert_eq!(varint_len(v), bytes.len());
            assert_eq!(get_varint(&out).unwrap(), (v, bytes.len()));
        }
    }

    #[test]
    fn varint_rejects_overflow_and_truncation() {
        assert_eq!(get_varint(&[0x80]), Err(WireError::Truncated));
        assert_eq!(get_varint(&[0xff; 10]), Err(WireError::VarintOverflow));
        assert_eq!(get_varint(&[0xff; 11]), Err(WireError::VarintOverflow));
        // u64::MAX is exactly ten bytes ending in 0x01.
        let mut out = Vec::new();
        put_varint(&mut out, u64::MAX);
        assert_eq!(out.len(), 10);
        assert_eq!(get_varint(&out).unwrap().0, u64::MAX);
    }

    #[test]
    fn nested_message_longer_than_127_bytes_gets_a_wider_prefix() {
        let mut out = Vec::new();
        let body = vec![7u8; 300];
        Encoder::new(&mut out)
            .message(1, |e| {
                e.bytes(2, &body);
            })
            .uint(3, 9);
        let mut d = Decoder::new(&out);
        let (f, v) = d.next_field().unwrap().unwrap();
        assert_eq!(f, 1);
        let inner = v.as_bytes().unwrap();
        let mut di = Decoder::new(inner);
        assert_eq!(
            di.next_field().unwrap().unwrap().1.as_bytes().unwrap(),
            &body[..]
        );
        assert_eq!(d.next_field().unwrap().unwrap(), (3, Value::Varint(9)));
        assert_eq!(d.next_field().unwrap(), None);
    }

    proptest! {
        #[test]
        fn varint_roundtrip(v: u64) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_len(v));
            prop_assert_eq!(get_varint(&out).unwrap(), (v, out.len()));
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut d = Decoder::new(&bytes);
            for _ in 0..bytes.len() + 1 {
                match d.next_field() {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
        }

        #[test]
        fn addr_roundtrip(ip in any::<[u8; 16]>(), v4 in any::<[u8; 4]>(), port: u16, six: bool) {
            let addr = if six {
                SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)
            } else {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::from(v4)), port)
            };
            let mut tmp = [0u8; 18];
            let n = encode_addr(&addr, &mut tmp);
            prop_assert_eq!(decode_addr(&tmp[..n]).unwrap(), addr);
        }
    }
}
