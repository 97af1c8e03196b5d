//! Stream framing on the wire: how a driver carries the core's frames over a byte stream
//! (TCP, TLS, a QUIC stream, a JavaScript host's socket).
//!
//! Each frame is a 4-byte **big-endian** length, then that many bytes: the sealed frame
//! exactly as [`crate::Output::SendFrame`] lent it (label, checksum, compression and
//! encryption already applied). A length of zero is a valid, empty frame. A receiver
//! refuses a length above its limit — [`crate::Serf::max_frame_len`], which is the
//! configured `max_stream_frame` plus what the transforms add — *before* reading or
//! allocating the body, and then drops the connection (report
//! [`crate::StreamEvent::Failed`]): nothing after a bad length can be trusted.
//!
//! Every driver shares this one definition: [`encode_header`] for the sender and
//! [`FrameDecoder`], an incremental decoder that takes bytes as they come and hands back
//! whole frames, for the receiver.
//!
//! ```
//! use serf_proto::framing::{FrameDecoder, encode_header};
//!
//! let mut wire = Vec::new();
//! for frame in [&b"push-pull state"[..], b"", b"ack"] {
//!     wire.extend_from_slice(&encode_header(frame.len()));
//!     wire.extend_from_slice(frame);
//! }
//! let mut decoder = FrameDecoder::new(1 << 20);
//! let mut frames = Vec::new();
//! // Bytes arrive in arbitrary pieces.
//! for piece in wire.chunks(5) {
//!     decoder.push(piece);
//!     while let Some(frame) = decoder.next_frame().unwrap() {
//!         frames.push(frame.to_vec());
//!     }
//! }
//! assert_eq!(frames, [b"push-pull state".to_vec(), vec![], b"ack".to_vec()]);
//! ```

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// The length prefix for a frame of `len` bytes.
///
/// # Panics
/// If `len` does not fit in 32 bits; the core never makes such a frame (its frames are
/// bounded by `max_stream_frame`, which the config keeps far below).
pub fn encode_header(len: usize) -> [u8; HEADER_LEN] {
    let len = u32::try_from(len).expect("frames are bounded by max_stream_frame");
    len.to_be_bytes()
}

/// The frame length a header announces, if within `max`.
pub fn decode_header(header: [u8; HEADER_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLong { len, max });
    }
    Ok(len)
}

/// A frame the peer announced is longer than the receiver accepts. The connection must be
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is above the limit.
    #[error("frame of {len} bytes announced; at most {max} accepted")]
    TooLong {
        /// The announced length.
        len: usize,
        /// The receiver's limit.
        max: usize,
    },
}

/// An incremental decoder for one stream: [`FrameDecoder::push`] bytes as they arrive,
/// then take whole frames with [`FrameDecoder::next_frame`] until it returns `None`.
///
/// It holds at most one partial frame, so its memory is bounded by the limit it was made
/// with plus whatever one `push` brings.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max: usize,
    buf: Vec<u8>,
    /// Where the unread bytes start in `buf`.
    start: usize,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder that accepts frames of at most `max` bytes.
    pub fn new(max: usize) -> FrameDecoder {
        FrameDecoder {
            max,
            buf: Vec::new(),
            start: 0,
            failed: None,
        }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame, `None` if more bytes are needed, or an error once a length
    /// above the limit was announced (every later call returns it too).
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let unread = &self.buf[self.start..];
        if unread.len() < HEADER_LEN {
            self.compact();
            return Ok(None);
        }
        let header = [unread[0], unread[1], unread[2], unread[3]];
        let len = match decode_header(header, self.max) {
            Ok(len) => len,
            Err(e) => {
                self.failed = Some(e);
                self.buf = Vec::new();
                self.start = 0;
                return Err(e);
            }
        };
        if unread.len() < HEADER_LEN + len {
            self.compact();
            return Ok(None);
        }
        let at = self.start + HEADER_LEN;
        self.start = at + len;
        Ok(Some(&self.buf[at..at + len]))
    }

    /// How many bytes the next frame still needs (header included), so a reader can size
    /// its next read; 0 if a whole frame is ready.
    pub fn wanted(&self) -> usize {
        let unread = &self.buf[self.start..];
        if unread.len() < HEADER_LEN {
            return HEADER_LEN - unread.len();
        }
        let len = u32::from_be_bytes([unread[0], unread[1], unread[2], unread[3]]) as usize;
        (HEADER_LEN + len.min(self.max)).saturating_sub(unread.len())
    }

    /// Whether a length above the limit was seen.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Moves the unread bytes to the front, so the buffer never grows past one frame plus
    /// one push.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn wire(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut w = Vec::new();
        for f in frames {
            w.extend_from_slice(&encode_header(f.len()));
            w.extend_from_slice(f);
        }
        w
    }

    #[test]
    fn the_header_is_four_big_endian_bytes() {
        assert_eq!(encode_header(0x0102_0304), [1, 2, 3, 4]);
        assert_eq!(decode_header([0, 0, 1, 0], 256), Ok(256));
    }

    #[test]
    fn a_length_above_the_limit_is_refused_before_the_body_arrives() {
        let mut d = FrameDecoder::new(1000);
        d.push(&encode_header(1001));
        assert_eq!(
            d.next_frame(),
            Err(FrameError::TooLong {
                len: 1001,
                max: 1000
            })
        );
        assert!(d.is_failed());
        d.push(&[0; 10_000]);
        assert_eq!(d.buffered(), 0, "a failed decoder keeps nothing");
        assert!(d.next_frame().is_err(), "and keeps failing");
        let mut d = FrameDecoder::new(1000);
        d.push(&u32::MAX.to_be_bytes());
        assert!(d.next_frame().is_err());
    }

    #[test]
    fn wanted_says_how_much_the_next_frame_needs() {
        let mut d = FrameDecoder::new(100);
        assert_eq!(d.wanted(), 4);
        d.push(&encode_header(10)[..2]);
        assert_eq!(d.wanted(), 2);
        d.push(&encode_header(10)[2..]);
        assert_eq!(d.wanted(), 10);
        d.push(&[7; 10]);
        assert_eq!(d.wanted(), 0);
        assert_eq!(d.next_frame().unwrap(), Some(&[7u8; 10][..]));
    }

    proptest! {
        #[test]
        fn frames_survive_any_split(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..12),
            cuts in proptest::collection::vec(1usize..64, 1..40),
        ) {
            let w = wire(&frames);
            let mut d = FrameDecoder::new(300);
            let mut got = Vec::new();
            let (mut at, mut i) = (0, 0);
            while at < w.len() {
                let n = cuts[i % cuts.len()].min(w.len() - at);
                d.push(&w[at..at + n]);
                at += n;
                i += 1;
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f.to_vec());
                }
                prop_assert!(d.buffered() <= 300 + 4 + 64);
            }
            prop_assert_eq!(got, frames);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000), max in 0usize..512) {
            let mut d = FrameDecoder::new(max);
            for piece in data.chunks(7) {
                d.push(piece);
                while let Ok(Some(f)) = d.next_frame() {
                    prop_assert!(f.len() <= max);
                }
            }
        }
    }
}
