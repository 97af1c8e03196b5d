//! The body of a packet or stream frame: a sequence of framed messages.
//!
//! Each message is `[type u8][varint length][fields]`. The receiver walks the frames and
//! skips types it does not know. A frame whose length runs past the end of the body is
//! truncated: the walk stops there, like Go memberlist's "truncated compound part".

use super::WireError;
use super::codec::{begin_length_prefix, finish_length_prefix, get_varint, varint_len};

/// The message types of the memberlist layer. Numbers are append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Direct probe.
    Ping = 1,
    /// Request to probe a node on our behalf.
    IndirectPing = 2,
    /// Probe answer.
    Ack = 3,
    /// Negative answer from an indirect-probe intermediary (Lifeguard).
    Nack = 4,
    /// Accusation that a node may have failed.
    Suspect = 5,
    /// A node is alive at an incarnation (join, refute, metadata update).
    Alive = 6,
    /// A node is dead, or has left when `node == from`.
    Dead = 7,
    /// Full state exchange (streams only).
    PushPull = 8,
    /// An opaque message for the layer above (the Serf layer, or the application).
    User = 9,
    /// An error reply on a stream.
    Error = 10,
}

impl MessageType {
    /// The type for a byte, if known.
    pub fn from_u8(b: u8) -> Option<MessageType> {
        Some(match b {
            1 => MessageType::Ping,
            2 => MessageType::IndirectPing,
            3 => MessageType::Ack,
            4 => MessageType::Nack,
            5 => MessageType::Suspect,
            6 => MessageType::Alive,
            7 => MessageType::Dead,
            8 => MessageType::PushPull,
            9 => MessageType::User,
            10 => MessageType::Error,
            _ => return None,
        })
    }
}

/// Appends one framed message whose fields are written by `f`.
///
/// The length prefix is reserved as one byte and widened afterwards if the fields turn out
/// longer than 127 bytes, so small messages (pings, acks) are written in a single pass.
pub fn encode_message(out: &mut Vec<u8>, ty: u8, f: impl FnOnce(&mut Vec<u8>)) {
    out.push(ty);
    let len_at = begin_length_prefix(out);
    f(out);
    finish_length_prefix(out, len_at);
}

/// The framed size of a message with `fields_len` bytes of fields.
pub fn encoded_message_len(fields_len: usize) -> usize {
    1 + varint_len(fields_len as u64) + fields_len
}

/// Iterates over the framed messages of a body, yielding `(type byte, fields)`.
#[derive(Debug, Clone)]
pub struct BodyIter<'a> {
    buf: &'a [u8],
}

impl<'a> BodyIter<'a> {
    /// An iterator over `body`.
    pub fn new(body: &'a [u8]) -> Self {
        BodyIter { buf: body }
    }
}

impl<'a> Iterator for BodyIter<'a> {
    type Item = Result<(u8, &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let ty = self.buf[0];
        let (len, n) = match get_varint(&self.buf[1..]) {
            Ok(v) => v,
            Err(e) => {
                self.buf = &[];
                return Some(Err(e));
            }
        };
        let rest = &self.buf[1 + n..];
        let len = match usize::try_from(len) {
            Ok(l) if l <= rest.len() => l,
            _ => {
                self.buf = &[];
                return Some(Err(WireError::Truncated));
            }
        };
        self.buf = &rest[len..];
        Some(Ok((ty, &rest[..len])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_roundtrip_and_truncation_is_reported() {
        let mut body = Vec::new();
        encode_message(&mut body, 1, |o| o.extend_from_slice(b"abc"));
        encode_message(&mut body, 200, |o| o.extend_from_slice(&[9u8; 300]));
        let got: Vec<_> = BodyIter::new(&body).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (1, &b"abc"[..]));
        assert_eq!(got[1].0, 200);
        assert_eq!(got[1].1.len(), 300);
        assert_eq!(
            body.len(),
            encoded_message_len(3) + encoded_message_len(300)
        );

        let cut = &body[..body.len() - 1];
        let mut it = BodyIter::new(cut);
        assert!(it.next().unwrap().is_ok());
        assert_eq!(it.next().unwrap(), Err(WireError::Truncated));
        assert!(it.next().is_none());
    }

    proptest! {
        #[test]
        fn body_iter_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let n = BodyIter::new(&bytes).count();
            prop_assert!(n <= bytes.len());
        }

        #[test]
        fn frames_roundtrip(msgs in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..8)) {
            let mut body = Vec::new();
            for (t, m) in &msgs {
                encode_message(&mut body, *t, |o| o.extend_from_slice(m));
            }
            let got: Vec<_> = BodyIter::new(&body).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(got.len(), msgs.len());
            for ((t, m), (gt, gm)) in msgs.iter().zip(got) {
                prop_assert_eq!(*t, gt);
                prop_assert_eq!(&m[..], gm);
            }
        }
    }
}
