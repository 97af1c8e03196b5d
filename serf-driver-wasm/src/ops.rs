//! The output buffer: what the host must send and do with streams, packed into one byte
//! array so a drain crosses into JavaScript once, however many datagrams it holds (no
//! object per datagram on the hot path).
//!
//! The buffer is a sequence of operations, all integers little-endian:
//!
//! | op | byte | then |
//! |---|---|---|
//! | transmit | `1` | address, `u32` length, the datagram |
//! | open stream | `2` | id, address, `f64` deadline (host ms), `u8` peer-name length (0: unknown), the name (UTF-8) |
//! | send frame | `3` | id, `u32` length, the bytes to write (the 4-byte frame header included) |
//! | close stream | `4` | id |
//! | abort stream | `5` | id |
//!
//! An id is an `f64` holding an integer (exact below 2^53). An address is a family byte
//! (`4` or `6`), the 4 or 16 address bytes, and a `u16` port.
//!
//! The meaning of each is the core's ([`serf_proto::Output`]): open with the deadline as
//! the connect timeout; write frames in order (queue them until connected); close = write
//! what is queued, then end our side and keep reading until the peer ends; abort = destroy
//! at once and report nothing more.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Op byte: send a datagram.
pub const OP_TRANSMIT: u8 = 1;
/// Op byte: open a stream.
pub const OP_OPEN: u8 = 2;
/// Op byte: write a frame on a stream.
pub const OP_FRAME: u8 = 3;
/// Op byte: close a stream in an orderly way.
pub const OP_CLOSE: u8 = 4;
/// Op byte: abort a stream.
pub const OP_ABORT: u8 = 5;

/// Appends an address.
pub(crate) fn put_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_le_bytes());
}

/// Appends an id.
pub(crate) fn put_id(out: &mut Vec<u8>, id: u64) {
    out.extend_from_slice(&(id as f64).to_le_bytes());
}

/// One operation, as read back from a buffer (the host's job in JavaScript; here for
/// tests and for Rust hosts).
#[derive(Debug, Clone, PartialEq)]
pub enum Op<'a> {
    /// Send `data` to `to`.
    Transmit {
        /// Destination.
        to: SocketAddr,
        /// The datagram.
        data: &'a [u8],
    },
    /// Open stream `id` to `to`.
    Open {
        /// The stream.
        id: f64,
        /// Destination.
        to: SocketAddr,
        /// Give up connecting at this host time (ms).
        deadline: f64,
        /// The node expected there, if known.
        peer: Option<&'a str>,
    },
    /// Write `data` (header included) on stream `id`.
    Frame {
        /// The stream.
        id: f64,
        /// The bytes.
        data: &'a [u8],
    },
    /// Close stream `id`.
    Close {
        /// The stream.
        id: f64,
    },
    /// Abort stream `id`.
    Abort {
        /// The stream.
        id: f64,
    },
}

/// Reads the operations of an output buffer in order; `None` at a malformed byte (which
/// the driver never writes).
#[derive(Debug, Clone)]
pub struct OpReader<'a> {
    buf: &'a [u8],
}

impl<'a> OpReader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> OpReader<'a> {
        OpReader { buf }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Some(a)
    }

    fn id(&mut self) -> Option<f64> {
        Some(f64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn len(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    fn addr(&mut self) -> Option<SocketAddr> {
        let ip = match self.take(1)?[0] {
            4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(self.take(4)?).ok()?)),
            6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(self.take(16)?).ok()?)),
            _ => return None,
        };
        let port = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
        Some(SocketAddr::new(ip, port))
    }
}

impl<'a> Iterator for OpReader<'a> {
    type Item = Op<'a>;

    fn next(&mut self) -> Option<Op<'a>> {
        let op = self.take(1)?[0];
        Some(match op {
            OP_TRANSMIT => {
                let to = self.addr()?;
                let n = self.len()?;
                Op::Transmit {
                    to,
                    data: self.take(n)?,
                }
            }
            OP_OPEN => {
                let id = self.id()?;
                let to = self.addr()?;
                let deadline = f64::from_le_bytes(self.take(8)?.try_into().ok()?);
                let n = self.take(1)?[0] as usize;
                let peer = match n {
                    0 => None,
                    n => Some(std::str::from_utf8(self.take(n)?).ok()?),
                };
                Op::Open {
                    id,
                    to,
                    deadline,
                    peer,
                }
            }
            OP_FRAME => {
                let id = self.id()?;
                let n = self.len()?;
                Op::Frame {
                    id,
                    data: self.take(n)?,
                }
            }
            OP_CLOSE => Op::Close { id: self.id()? },
            OP_ABORT => Op::Abort { id: self.id()? },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_ids_read_back() {
        let mut buf = Vec::new();
        for addr in ["127.0.0.1:7946", "[::1]:65535", "10.1.2.3:0"] {
            let addr: SocketAddr = addr.parse().unwrap();
            buf.push(OP_TRANSMIT);
            put_addr(&mut buf, addr);
            buf.extend_from_slice(&3u32.to_le_bytes());
            buf.extend_from_slice(b"abc");
            buf.push(OP_CLOSE);
            put_id(&mut buf, 9_007_199_254_740_991);
        }
        let ops: Vec<Op<'_>> = OpReader::new(&buf).collect();
        assert_eq!(ops.len(), 6);
        assert_eq!(
            ops[2],
            Op::Transmit {
                to: "[::1]:65535".parse().unwrap(),
                data: b"abc"
            }
        );
        assert_eq!(
            ops[5],
            Op::Close {
                id: 9_007_199_254_740_991.0
            }
        );
    }
}
