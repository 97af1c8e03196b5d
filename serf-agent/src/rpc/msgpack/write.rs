//! Writing msgpack byte for byte as hashicorp/go-msgpack does.

use super::Value;

/// Writes msgpack the way go-msgpack does with `WriteExt: true`.
#[derive(Debug, Default)]
pub struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// `nil` (a nil slice, map or pointer in Go).
    pub fn nil(&mut self) -> &mut Self {
        self.buf.push(0xc0);
        self
    }

    /// A boolean.
    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.buf.push(if b { 0xc3 } else { 0xc2 });
        self
    }

    /// An unsigned integer in its smallest form (go-msgpack `EncodeUint`).
    pub fn uint(&mut self, v: u64) -> &mut Self {
        if v <= 0x7f {
            self.buf.push(v as u8);
        } else if v <= u64::from(u8::MAX) {
            self.buf.extend_from_slice(&[0xcc, v as u8]);
        } else if v <= u64::from(u16::MAX) {
            self.buf.push(0xcd);
            self.buf.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v <= u64::from(u32::MAX) {
            self.buf.push(0xce);
            self.buf.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            self.buf.push(0xcf);
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
        self
    }

    /// A signed integer as go-msgpack's `EncodeInt` writes it: fixint from -32 to 127,
    /// otherwise the smallest *signed* marker (so 200 is `d1 00 c8`, not `cc c8`).
    pub fn int(&mut self, v: i64) -> &mut Self {
        if v > i64::from(i8::MAX) {
            if v <= i64::from(i16::MAX) {
                self.buf.push(0xd1);
                self.buf.extend_from_slice(&(v as i16).to_be_bytes());
            } else if v <= i64::from(i32::MAX) {
                self.buf.push(0xd2);
                self.buf.extend_from_slice(&(v as i32).to_be_bytes());
            } else {
                self.buf.push(0xd3);
                self.buf.extend_from_slice(&v.to_be_bytes());
            }
        } else if v >= -32 {
            self.buf.push(v as i8 as u8);
        } else if v >= i64::from(i8::MIN) {
            self.buf.extend_from_slice(&[0xd0, v as i8 as u8]);
        } else if v >= i64::from(i16::MIN) {
            self.buf.push(0xd1);
            self.buf.extend_from_slice(&(v as i16).to_be_bytes());
        } else if v >= i64::from(i32::MIN) {
            self.buf.push(0xd2);
            self.buf.extend_from_slice(&(v as i32).to_be_bytes());
        } else {
            self.buf.push(0xd3);
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
        self
    }

    /// A float64.
    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.buf.push(0xcb);
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
        self
    }

    /// A *str*: fixstr below 32 bytes, then str8, str16, str32.
    pub fn str(&mut self, s: impl AsRef<[u8]>) -> &mut Self {
        let s = s.as_ref();
        let n = s.len();
        if n < 32 {
            self.buf.push(0xa0 | n as u8);
        } else if n <= 0xff {
            self.buf.extend_from_slice(&[0xd9, n as u8]);
        } else if n <= 0xffff {
            self.buf.push(0xda);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(0xdb);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self.buf.extend_from_slice(s);
        self
    }

    /// A *bin* (a non-nil `[]byte`).
    pub fn bin(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len();
        if n <= 0xff {
            self.buf.extend_from_slice(&[0xc4, n as u8]);
        } else if n <= 0xffff {
            self.buf.push(0xc5);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(0xc6);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self.buf.extend_from_slice(b);
        self
    }

    /// A `[]byte` that may be nil: `nil` when `None`.
    pub fn opt_bin(&mut self, b: Option<&[u8]>) -> &mut Self {
        match b {
            Some(b) => self.bin(b),
            None => self.nil(),
        }
    }

    /// An array header.
    pub fn array(&mut self, n: usize) -> &mut Self {
        self.container(n, 0x90, 0xdc)
    }

    /// A map header.
    pub fn map(&mut self, n: usize) -> &mut Self {
        self.container(n, 0x80, 0xde)
    }

    fn container(&mut self, n: usize, fix: u8, marker16: u8) -> &mut Self {
        if n < 16 {
            self.buf.push(fix | n as u8);
        } else if n <= 0xffff {
            self.buf.push(marker16);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(marker16 + 1);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self
    }

    /// A map of strings to strings, keys sorted (Go's map order is random; sorted is one
    /// of the orders it may produce, and it makes the output reproducible).
    pub fn string_map<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> &mut Self {
        let mut entries: Vec<_> = entries.into_iter().collect();
        entries.sort();
        self.map(entries.len());
        for (k, v) in entries {
            self.str(k).str(v);
        }
        self
    }

    /// Any [`Value`], for tests and generic records.
    pub fn value(&mut self, v: &Value) -> &mut Self {
        match v {
            Value::Nil => self.nil(),
            Value::Bool(b) => self.bool(*b),
            Value::Int(i) => self.int(*i),
            Value::Uint(u) => self.uint(*u),
            Value::Float(f) => self.f64(*f),
            Value::Str(s) => self.str(s),
            Value::Bin(b) => self.bin(b),
            Value::Array(items) => {
                self.array(items.len());
                for i in items {
                    self.value(i);
                }
                self
            }
            Value::Map(entries) => {
                self.map(entries.len());
                for (k, v) in entries {
                    self.value(k).value(v);
                }
                self
            }
            Value::Ext(ty, data) => {
                self.buf.push(0xc7);
                self.buf.push(data.len().min(255) as u8);
                self.buf.push(*ty as u8);
                self.buf.extend_from_slice(&data[..data.len().min(255)]);
                self
            }
        }
    }
}
