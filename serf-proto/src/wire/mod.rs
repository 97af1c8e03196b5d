//! Encoding and decoding of every message, and of the compound packet body.
//!
//! The format is our own, compact and forward compatible (it is not the msgpack of the Go
//! originals):
//!
//! - a packet or stream frame starts with a version byte and transform flags
//!   ([`crate::transform`]);
//! - its body is a sequence of messages, each `[type u8][varint length][fields]`, packed up
//!   to the configured packet size, so every packet is a "compound" packet and a single
//!   message costs two or three bytes of framing;
//! - a message's fields are tagged ([`codec`]), so unknown fields and unknown message types
//!   are skipped: a newer node can add both without breaking older ones.
//!
//! Decoding borrows from the input and never allocates more than the input's size.

pub mod codec;
pub mod message;
pub mod packet;

pub use message::*;
pub use packet::{BodyIter, MessageType, encode_message, encoded_message_len};

/// Why bytes could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input ended in the middle of a value.
    #[error("input truncated")]
    Truncated,
    /// A varint is longer than 64 bits.
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    /// A field key names a wire type we do not know (so it cannot be skipped).
    #[error("unknown wire type {0}")]
    UnknownWireType(u8),
    /// A field has a different wire type than its message defines.
    #[error("field has the wrong wire type")]
    WrongType,
    /// An integer does not fit the field's range.
    #[error("integer out of range")]
    OutOfRange,
    /// A string is not UTF-8.
    #[error("string is not valid UTF-8")]
    BadUtf8,
    /// A node name is longer than the limit.
    #[error("node name too long")]
    NameTooLong,
    /// A node name contains a control character.
    #[error("node name contains a control character")]
    NameControl,
    /// An address field is neither 6 (IPv4) nor 18 (IPv6) bytes.
    #[error("address field has {0} bytes; expected 6 or 18")]
    BadAddress(usize),
    /// A required field is missing.
    #[error("required field {0} missing")]
    Missing(&'static str),
    /// A list is longer than the configured limit.
    #[error("list too long")]
    TooMany,
    /// A message type is not valid in this context (e.g. a push-pull in a datagram).
    #[error("unexpected message type {0}")]
    Unexpected(u8),
}
