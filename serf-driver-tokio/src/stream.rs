//! Connections for the core's streams: one small task per connection, framed with
//! [`serf_proto::framing`], over TCP, or TLS and QUIC (`tls.rs`, `quic.rs`), which reuse
//! [`run_io`] once their handshake is done.
//!
//! The task owning the core never awaits a connection. It hands each connection a queue
//! of frames to write and gets back what the connection read: whole frames, an orderly
//! close, or a failure. Frames read are paid for from a global byte budget before their
//! body is read, so many peers announcing large frames at once cannot exhaust memory;
//! the budget is returned when the core has consumed the frame.

use crate::metrics::DriverMetrics;
use serf_proto::framing::{HEADER_LEN, decode_header, encode_header};
use serf_proto::{Name, StreamId};

/// The frame in `buf` behind its length prefix, ready for one write.
pub(crate) fn framed(buf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + buf.len());
    out.extend_from_slice(&encode_header(buf.len()));
    out.extend_from_slice(buf);
    out
}
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Frames queued for one connection before the core's further frames fail the stream.
/// The core sends one or two frames per stream, so this only bites a stuck peer.
pub(crate) const WRITE_QUEUE: usize = 16;

/// How long a closed connection waits for the peer's end before it is dropped: dropping
/// a socket with unread input resets it, which can destroy what we sent last.
pub(crate) const LINGER: Duration = Duration::from_secs(5);

/// What the core task asks of a connection.
#[derive(Debug)]
pub(crate) enum Write {
    /// Send this frame, already behind its length prefix (one write, so with Nagle off
    /// the prefix does not go in a segment of its own).
    Frame(Vec<u8>),
    /// Flush what is queued, then close our side.
    Close,
    /// Drop the connection at once, with whatever is still queued.
    Abort,
}

/// What a connection reports to the core task.
#[derive(Debug)]
pub(crate) enum StreamMsg {
    /// A whole frame; the permit returns its bytes to the budget when dropped.
    Frame(Vec<u8>, Option<OwnedSemaphorePermit>),
    /// The peer closed its side in an orderly way.
    Closed,
    /// Connect failure, reset, I/O error, a length above the limit, a deadline, or a
    /// connection dropped before the peer closed its end (a failed write, or a peer
    /// silent for [`LINGER`] after our close).
    Failed,
}

/// What every connection shares.
#[derive(Debug, Clone)]
pub(crate) struct StreamShared {
    pub events: mpsc::Sender<(StreamId, StreamMsg)>,
    pub budget: Arc<Semaphore>,
    pub budget_bytes: usize,
    pub max_frame: usize,
    pub metrics: Arc<DriverMetrics>,
    /// How streams are opened: plain TCP, TLS or QUIC.
    pub connector: Connector,
}

/// The stream transport chosen on the `Builder`, with what it needs to connect.
#[derive(Debug, Clone)]
pub(crate) enum Connector {
    /// Plain TCP on the gossip port.
    Tcp,
    /// TLS over TCP on the gossip port.
    #[cfg(feature = "tls")]
    Tls(crate::tls::TlsConnector),
    /// QUIC, multiplexed on the gossip port's UDP socket.
    #[cfg(feature = "quic")]
    Quic(Arc<crate::quic::QuicConnector>),
}

/// A stream the core asked to open ([`serf_proto::Output::OpenStream`]).
#[derive(Debug)]
pub(crate) struct Open {
    pub id: StreamId,
    pub to: SocketAddr,
    /// The node expected at `to`, when the core knows it: TLS and QUIC check it.
    #[cfg_attr(not(any(feature = "tls", feature = "quic")), allow(dead_code))]
    pub peer: Option<Name>,
    /// The core's deadline for the stream: connecting (and any handshake) past it is
    /// pointless.
    pub deadline: tokio::time::Instant,
    /// What the core queues for the stream, possibly before it is connected.
    pub writes: mpsc::Receiver<Write>,
}

/// Connects over the chosen transport by the core's deadline, checking the peer when
/// the transport is secure, then runs the connection.
pub(crate) async fn run_outbound(open: Open, shared: StreamShared) {
    match shared.connector.clone() {
        Connector::Tcp => {
            match tokio::time::timeout_at(open.deadline, TcpStream::connect(open.to)).await {
                Ok(Ok(stream)) => run(open.id, stream, open.writes, shared).await,
                _ => connect_failed(open.id, &shared).await,
            }
        }
        #[cfg(feature = "tls")]
        Connector::Tls(tls) => tls.run_outbound(open, shared).await,
        #[cfg(feature = "quic")]
        Connector::Quic(quic) => quic.run_outbound(open, shared).await,
    }
}

/// Counts a failed connect and tells the core.
pub(crate) async fn connect_failed(id: StreamId, shared: &StreamShared) {
    shared.metrics.connects_failed.fetch_add(1, Relaxed);
    let _ = shared.events.send((id, StreamMsg::Failed)).await;
}

/// Runs an established TCP connection until both sides are done.
pub(crate) async fn run(
    id: StreamId,
    stream: TcpStream,
    writes: mpsc::Receiver<Write>,
    shared: StreamShared,
) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    run_io(id, read, write, writes, shared).await;
}

/// Runs the two directions of an established connection until both are done: frames
/// queued by the core are written, frames read are reported. Returns how the writing
/// side ended; the caller then drops the connection (QUIC closes it explicitly).
pub(crate) async fn run_io<R, W>(
    id: StreamId,
    read: R,
    write: W,
    writes: mpsc::Receiver<Write>,
    shared: StreamShared,
) -> Ending
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send,
{
    let mut reader = Reader(tokio::spawn(read_frames(id, read, shared.clone())));
    let ending = write_frames(write, writes, &shared).await;
    if ending == Ending::Closed {
        // Our side is closed: give the peer a moment to finish, reading what it still
        // sends, then drop the socket.
        if tokio::time::timeout(LINGER, &mut reader.0).await.is_ok() {
            return ending;
        }
    }
    // Aborted, or the peer lingered too long: drop the socket now (unread input makes
    // the kernel reset it, so the peer's end fails). A reader stopped before it said how
    // the connection ended leaves the core waiting until the stream's deadline, so the
    // failure is reported here; the core ignores it on a stream it aborted itself.
    reader.0.abort();
    if (&mut reader.0).await.is_err() {
        let _ = shared.events.send((id, StreamMsg::Failed)).await;
    }
    Ending::Aborted
}

/// The task reading a connection, aborted when the connection's task ends however it
/// ends. A connection's task is itself aborted at shutdown: a reading task left behind
/// would keep the socket open for as long as the peer sends nothing or trickles a frame.
struct Reader(tokio::task::JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How the writing side of a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Everything queued was written and our side was shut down.
    Closed,
    /// The core gave up on the stream, or a write failed.
    Aborted,
}

async fn write_frames<W: AsyncWrite + Unpin>(
    mut write: W,
    mut writes: mpsc::Receiver<Write>,
    shared: &StreamShared,
) -> Ending {
    while let Some(w) = writes.recv().await {
        match w {
            Write::Frame(framed) => {
                if write.write_all(&framed).await.is_err() {
                    shared.metrics.stream_write_errors.fetch_add(1, Relaxed);
                    return Ending::Aborted;
                }
            }
            Write::Close => {
                let _ = write.flush().await;
                let _ = write.shutdown().await;
                return Ending::Closed;
            }
            Write::Abort => return Ending::Aborted,
        }
    }
    // The core task dropped the queue without a close (it stopped): an abort.
    Ending::Aborted
}

async fn read_frames<R: AsyncRead + Unpin>(id: StreamId, mut read: R, shared: StreamShared) {
    let msg = loop {
        let mut header = [0u8; HEADER_LEN];
        match read.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break StreamMsg::Closed,
            Err(_) => break StreamMsg::Failed,
        }
        let len = match decode_header(header, shared.max_frame) {
            Ok(len) => len,
            Err(_) => {
                shared.metrics.frames_too_long.fetch_add(1, Relaxed);
                break StreamMsg::Failed;
            }
        };
        // Pay for the body before reading it. A frame larger than the whole budget (a
        // budget set below max_frame) takes all of it.
        let want = len.min(shared.budget_bytes).min(u32::MAX as usize) as u32;
        let permit = if want > 0 {
            if shared.budget.available_permits() < want as usize {
                shared
                    .metrics
                    .frames_waited_for_budget
                    .fetch_add(1, Relaxed);
            }
            match shared.budget.clone().acquire_many_owned(want).await {
                Ok(p) => Some(p),
                Err(_) => break StreamMsg::Failed,
            }
        } else {
            None
        };
        let mut body = vec![0u8; len];
        if read.read_exact(&mut body).await.is_err() {
            break StreamMsg::Failed;
        }
        shared.metrics.frames_received.fetch_add(1, Relaxed);
        if shared
            .events
            .send((id, StreamMsg::Frame(body, permit)))
            .await
            .is_err()
        {
            return;
        }
    };
    let _ = shared.events.send((id, msg)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> (StreamShared, mpsc::Receiver<(StreamId, StreamMsg)>) {
        let (events, rx) = mpsc::channel(8);
        let shared = StreamShared {
            events,
            budget: Arc::new(Semaphore::new(1 << 16)),
            budget_bytes: 1 << 16,
            max_frame: 1 << 16,
            metrics: Arc::new(DriverMetrics::default()),
            connector: Connector::Tcp,
        };
        (shared, rx)
    }

    /// The contract: after `CloseStream`, the core hears `Closed` or `Failed`. A peer
    /// that neither closes nor sends is dropped after the linger time; that is a failure.
    #[tokio::test(start_paused = true)]
    async fn a_connection_dropped_before_the_peer_closed_is_reported_failed() {
        let (shared, mut events) = shared();
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let (read, write) = tokio::io::split(ours);
        let (tx, writes) = mpsc::channel(WRITE_QUEUE);
        tx.send(Write::Frame(framed(b"ping"))).await.unwrap();
        tx.send(Write::Close).await.unwrap();
        let ending = run_io(StreamId(7), read, write, writes, shared).await;
        assert_eq!(ending, Ending::Aborted);
        // The peer got the frame and our close.
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, framed(b"ping"));
        match events.try_recv() {
            Ok((StreamId(7), StreamMsg::Failed)) => {}
            other => panic!("expected the stream reported failed, got {other:?}"),
        }
    }

    /// A peer that closes after our close is reported `Closed`, once.
    #[tokio::test(start_paused = true)]
    async fn a_peer_that_closes_in_time_is_reported_closed_once() {
        let (shared, mut events) = shared();
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let (read, write) = tokio::io::split(ours);
        let (tx, writes) = mpsc::channel(WRITE_QUEUE);
        tx.send(Write::Close).await.unwrap();
        let peer = tokio::spawn(async move {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).await.unwrap();
            drop(theirs);
        });
        let ending = run_io(StreamId(8), read, write, writes, shared).await;
        peer.await.unwrap();
        assert_eq!(ending, Ending::Closed);
        assert!(matches!(
            events.try_recv(),
            Ok((StreamId(8), StreamMsg::Closed))
        ));
        assert!(events.try_recv().is_err(), "nothing more");
    }
}
