//! What the driver gives the core and what it gets back.

use crate::name::Name;
use crate::time::Instant;
use core::net::SocketAddr;

/// A reliable stream, named by the core. The driver maps it onto a TCP connection (or a
/// QUIC stream) with length-prefixed framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

/// Something that happened to a stream, reported by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    /// One whole frame arrived (the driver strips its length prefix).
    Frame(&'a [u8]),
    /// The peer closed the stream in an orderly way.
    Closed,
    /// The stream broke: connect failure, reset, or I/O error.
    Failed,
}

/// The next thing the driver must do. Returned by `poll_output` until it returns
/// [`Output::Timeout`], which ends the drain.
#[derive(Debug, Clone, PartialEq)]
pub enum Output<E> {
    /// Send the datagram now in the lent buffer to `to`.
    Transmit {
        /// Destination.
        to: SocketAddr,
    },
    /// Open a stream to `to`. Frames for it may follow before the connection is up; the
    /// driver queues them. If the connection fails, report [`StreamEvent::Failed`].
    OpenStream {
        /// The core's name for the stream.
        id: StreamId,
        /// Destination.
        to: SocketAddr,
        /// The node expected at `to`, when the core knows it (a member's push-pull or
        /// fallback ping; not a join by address): a TLS or QUIC driver checks the peer's
        /// identity against it.
        peer: Option<Name>,
        /// When the core gives up on the stream (it then asks for an abort). Connecting
        /// longer is pointless: use it as the connect timeout. It is not always
        /// `stream_timeout` from now: the fallback ping's stream lives only as long as
        /// its probe window (about a second).
        deadline: Instant,
    },
    /// Send the frame now in the lent buffer on stream `id`, with a length prefix.
    SendFrame {
        /// The stream.
        id: StreamId,
    },
    /// Close stream `id` in an orderly way: write every frame queued for it, then close
    /// our side (a TCP `shutdown(Write)`, a QUIC `finish`). The exchange on it is over.
    CloseStream {
        /// The stream.
        id: StreamId,
    },
    /// Give up on stream `id` at once: drop what is still queued for it and tear the
    /// connection down (a TCP reset or plain drop, a QUIC `reset`), so the peer's end
    /// fails. Used for deadlines, evictions, broken exchanges and shutdown.
    AbortStream {
        /// The stream.
        id: StreamId,
    },
    /// Something for the application.
    Event(E),
    /// Nothing more to do until this instant (or the next input): call `handle_timeout`
    /// then. Ends the drain.
    Timeout(Instant),
}
