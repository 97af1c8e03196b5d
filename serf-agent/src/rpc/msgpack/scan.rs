//! Finding where a value ends before decoding it, resumably.

use super::{DecodeError, Limits};

/// Finds where one value ends in a growing buffer without decoding it, resuming where
/// it stopped: each byte is looked at once however the value is split across reads, so
/// a peer trickling a large value byte by byte costs linear time, not quadratic.
#[derive(Debug, Default)]
pub struct Scanner {
    pos: usize,
    /// Items still expected by each open array or map, innermost last.
    open: Vec<u64>,
}

impl Scanner {
    /// A scanner at the start of a value.
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// Scans `buf` (the same buffer, grown, as on the last call): `Some(end)` once a
    /// whole value is in `buf[..end]`, `None` when more bytes are needed.
    pub fn scan(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, DecodeError> {
        loop {
            if self.pos > limits.max_value_bytes {
                return Err(DecodeError::TooLong {
                    what: "value",
                    len: self.pos as u64,
                    limit: limits.max_value_bytes as u64,
                });
            }
            let Some(&m) = buf.get(self.pos) else {
                return Ok(None);
            };
            let be = |off: usize, n: usize| -> Option<u64> {
                let s = buf.get(self.pos + off..self.pos + off + n)?;
                Some(s.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)))
            };
            // (header bytes, payload bytes to skip, items that follow)
            let (head, skip, items): (usize, u64, Option<u64>) = match m {
                0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (1, 0, None),
                0x80..=0x8f => (1, 0, Some(2 * u64::from(m & 0x0f))),
                0x90..=0x9f => (1, 0, Some(u64::from(m & 0x0f))),
                0xa0..=0xbf => (1, u64::from(m & 0x1f), None),
                0xc1 => return Err(DecodeError::BadMarker(m)),
                0xc4 | 0xd9 => match be(1, 1) {
                    Some(n) => (2, n, None),
                    None => return Ok(None),
                },
                0xc5 | 0xda => match be(1, 2) {
                    Some(n) => (3, n, None),
                    None => return Ok(None),
                },
                0xc6 | 0xdb => match be(1, 4) {
                    Some(n) => (5, n, None),
                    None => return Ok(None),
                },
                0xc7 => match be(1, 1) {
                    Some(n) => (3, n, None),
                    None => return Ok(None),
                },
                0xc8 => match be(1, 2) {
                    Some(n) => (4, n, None),
                    None => return Ok(None),
                },
                0xc9 => match be(1, 4) {
                    Some(n) => (6, n, None),
                    None => return Ok(None),
                },
                0xca => (5, 0, None),
                0xcb => (9, 0, None),
                0xcc | 0xd0 => (2, 0, None),
                0xcd | 0xd1 => (3, 0, None),
                0xce | 0xd2 => (5, 0, None),
                0xcf | 0xd3 => (9, 0, None),
                0xd4 => (3, 0, None),
                0xd5 => (4, 0, None),
                0xd6 => (6, 0, None),
                0xd7 => (10, 0, None),
                0xd8 => (18, 0, None),
                0xdc => match be(1, 2) {
                    Some(n) => (3, 0, Some(n)),
                    None => return Ok(None),
                },
                0xdd => match be(1, 4) {
                    Some(n) => (5, 0, Some(n)),
                    None => return Ok(None),
                },
                0xde => match be(1, 2) {
                    Some(n) => (3, 0, Some(2 * n)),
                    None => return Ok(None),
                },
                0xdf => match be(1, 4) {
                    Some(n) => (5, 0, Some(2 * n)),
                    None => return Ok(None),
                },
            };
            let limit = limits.max_value_bytes as u64;
            if skip > limit {
                return Err(DecodeError::TooLong {
                    what: "string",
                    len: skip,
                    limit,
                });
            }
            let end = self.pos + head + skip as usize;
            if end > buf.len() {
                if end > limits.max_value_bytes {
                    return Err(DecodeError::TooLong {
                        what: "value",
                        len: end as u64,
                        limit,
                    });
                }
                return Ok(None);
            }
            self.pos = end;
            match items {
                Some(n) if n > 0 => {
                    if self.open.len() + 1 > limits.max_depth {
                        return Err(DecodeError::TooDeep(limits.max_depth));
                    }
                    if n > 2 * limits.max_collection as u64 {
                        return Err(DecodeError::TooLong {
                            what: "collection",
                            len: n,
                            limit: limits.max_collection as u64,
                        });
                    }
                    self.open.push(n);
                }
                _ => {
                    // One item finished: close every container it completes.
                    loop {
                        match self.open.last_mut() {
                            None => return Ok(Some(self.pos)),
                            Some(left) => {
                                *left -= 1;
                                if *left > 0 {
                                    break;
                                }
                                self.open.pop();
                            }
                        }
                    }
                }
            }
        }
    }
}
