//! QUIC for the core's streams, multiplexed on the gossip port's UDP socket.
//!
//! **One port.** Gossip already owns the bind port's UDP socket, and a second port
//! would have to be configured on every node and learned for every peer (the core only
//! knows each member's gossip address). So QUIC shares the socket, as RFC 9443
//! multiplexes protocols on one port: every QUIC packet has the fixed bit (`0x40`) set
//! in its first byte (greasing it is turned off, RFC 9287), while every packet of ours
//! starts with the version byte `1` (`serf_proto::transform::label::VERSION`, which must
//! stay below `0x40`). The task that owns the core reads the socket and passes the QUIC
//! packets to quinn's endpoint through a bounded queue ([`MuxSocket`]); quinn sends on
//! the same socket directly.
//!
//! **One connection per stream.** Each of the core's streams is a QUIC connection with
//! one bidirectional stream, closed when the exchange ends. Streams are rare (a
//! push-pull every 30 s or so, fallback pings, large messages) and short, so caching
//! connections would save a handshake at the price of state to bound and expire.
//!
//! **Ending.** Whoever opened the connection closes it once both directions are done
//! (it has the peer's answer, so the peer has its request); the accepting side waits
//! for that close, up to the linger time, so its answer is never cut off by its own
//! close.

use crate::inbound::{Accepted, Handshakes, SecureConn};
use crate::secure::SecureConfigs;
use crate::socket::GossipSocket;
use crate::stream::{Ending, LINGER, Open, StreamShared, Write, connect_failed, run_io};
use bytes::Bytes;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Endpoint, EndpointConfig, UdpPoller, VarInt};
use serf_proto::StreamId;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// Connection close codes (application level).
const CLOSE_DONE: u32 = 0;
const CLOSE_ABORT: u32 = 1;
pub(crate) const CLOSE_REFUSED: u32 = 2;

/// QUIC packets queued between the core's task and the endpoint. A full queue drops
/// (counted): QUIC retransmits.
const INBOX: usize = 1024;

/// How long shutdown waits for the closed connections to end. A closed connection sends
/// its close at once, then lingers three probe timeouts (RFC 9000 §10.2): about 0.1 s
/// once a round trip was measured, about 3 s for one still shaking hands (quinn then
/// assumes a 333 ms round trip), whose peer loses little by waiting out its idle
/// timeout. quinn tells only when the lingering ends, not when the close was sent.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Whether a datagram on the gossip port is QUIC (RFC 9443 §4: the fixed bit).
pub(crate) fn is_quic(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| b & 0x40 != 0)
}

/// The QUIC endpoint of a node and what its streams need.
#[derive(Debug, Clone)]
pub(crate) struct QuicConnector {
    endpoint: Endpoint,
    named: quinn::ClientConfig,
    any_member: quinn::ClientConfig,
}

/// The task's side of the multiplexed socket: where it puts QUIC packets.
#[derive(Debug)]
pub(crate) struct QuicInbox {
    tx: mpsc::Sender<(SocketAddr, Bytes)>,
    /// The longest datagram quinn reads whole: a longer one would be cut and fail, so it
    /// is dropped before it is copied. This bounds the queue at [`INBOX`] datagrams of
    /// about 1.5 KB, not of 64 KiB.
    max_len: usize,
}

impl QuicInbox {
    /// Passes a QUIC packet to the endpoint; false if it was dropped: its queue was full,
    /// or the packet is longer than any the endpoint reads.
    pub fn push(&self, from: SocketAddr, datagram: &[u8]) -> bool {
        if datagram.len() > self.max_len {
            return false;
        }
        self.tx
            .try_send((from, Bytes::copy_from_slice(datagram)))
            .is_ok()
    }
}

/// Starts the endpoint on `socket` and its accept loop. Returns the connector for
/// outbound streams and the inbox for QUIC packets the task reads.
pub(crate) fn start(
    socket: &Arc<GossipSocket>,
    configs: &SecureConfigs,
    handshakes: Handshakes,
    idle_timeout: Duration,
) -> Result<(QuicConnector, QuicInbox), String> {
    let mut endpoint_config = EndpointConfig::default();
    // Without this a peer could send QUIC packets with the fixed bit clear, which the
    // demultiplexer would take for gossip.
    endpoint_config.grease_quic_bit(false);
    // What quinn's receive buffers hold per datagram (quinn's endpoint uses the same).
    let max_len = endpoint_config.get_max_udp_payload_size().min(64 * 1024) as usize;
    let transport = Arc::new(transport_config(idle_timeout));
    let server_crypto =
        QuicServerConfig::try_from(configs.server.clone()).map_err(|e| e.to_string())?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server.transport_config(transport.clone());
    let client = |c: &Arc<rustls::ClientConfig>| {
        let crypto = QuicClientConfig::try_from(c.clone()).map_err(|e| e.to_string())?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(transport.clone());
        Ok::<_, String>(config)
    };
    let (named, any_member) = (client(&configs.named)?, client(&configs.any_member)?);
    let (tx, rx) = mpsc::channel(INBOX);
    let mux = Arc::new(MuxSocket {
        socket: Arc::downgrade(socket),
        local: socket.local_addr().map_err(|e| e.to_string())?,
        inbox: Mutex::new(rx),
    });
    let endpoint = Endpoint::new_with_abstract_socket(
        endpoint_config,
        Some(server),
        mux,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|e| e.to_string())?;
    tokio::spawn(accept_loop(endpoint.clone(), handshakes));
    Ok((
        QuicConnector {
            endpoint,
            named,
            any_member,
        },
        QuicInbox { tx, max_len },
    ))
}

fn transport_config(idle_timeout: Duration) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    // One bidirectional stream per connection, opened by the connecting side.
    t.max_concurrent_bidi_streams(VarInt::from_u32(1));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    // A connection outliving the core's stream deadline is of no use.
    if let Ok(idle) = idle_timeout.try_into() {
        t.max_idle_timeout(Some(idle));
    }
    t
}

impl QuicConnector {
    /// Closes the endpoint: every connection is aborted and the accept loop ends. Waits,
    /// up to [`CLOSE_WAIT`], until every connection has ended: their closes then went
    /// out while the socket was still open (so peers learn of them now, not at their
    /// idle timeout), and quinn's tasks have nothing left to send on it.
    pub async fn close(&self) {
        self.endpoint
            .close(VarInt::from_u32(CLOSE_ABORT), b"shutdown");
        let _ = tokio::time::timeout(CLOSE_WAIT, self.endpoint.wait_idle()).await;
    }

    /// Connects and shakes hands (checking the certificate names `peer` when known),
    /// opens the stream, all by `deadline`, then runs it.
    pub async fn run_outbound(self: Arc<Self>, open: Open, shared: StreamShared) {
        let Open {
            id,
            to,
            peer,
            deadline,
            writes,
        } = open;
        // Only the chain is checked for a stream to an address (the any-member verifier),
        // so the server name is then a formality.
        let (config, server_name) = match &peer {
            Some(p) => (self.named.clone(), p.as_str().to_string()),
            None => (self.any_member.clone(), to.ip().to_string()),
        };
        let connect = async {
            let connecting = self
                .endpoint
                .connect_with(config, to, &server_name)
                .map_err(|e| Some(e.to_string()))?;
            let conn = connecting.await.map_err(|e| match e {
                // Nobody answered: a failed connect, not a failed handshake.
                quinn::ConnectionError::TimedOut | quinn::ConnectionError::LocallyClosed => None,
                e => Some(e.to_string()),
            })?;
            let (send, recv) = conn.open_bi().await.map_err(|_| None)?;
            Ok::<_, Option<String>>((conn, send, recv))
        };
        match tokio::time::timeout_at(deadline, connect).await {
            Ok(Ok((conn, send, recv))) => {
                shared.metrics.secure_streams_opened.fetch_add(1, Relaxed);
                let ending = run_io(id, recv, send, writes, shared).await;
                let code = if ending == Ending::Closed {
                    CLOSE_DONE
                } else {
                    CLOSE_ABORT
                };
                conn.close(VarInt::from_u32(code), b"");
            }
            Ok(Err(Some(reason))) => {
                shared.metrics.handshake_failed(to, &reason);
                connect_failed(id, &shared).await;
            }
            Ok(Err(None)) | Err(_) => connect_failed(id, &shared).await,
        }
    }
}

/// Runs an accepted QUIC stream the core took.
pub(crate) async fn run_inbound(
    id: StreamId,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    writes: mpsc::Receiver<Write>,
    shared: StreamShared,
) {
    if run_io(id, recv, send, writes, shared).await == Ending::Closed {
        // The peer closes once it has our answer; closing first could cut it off.
        let _ = tokio::time::timeout(LINGER, conn.closed()).await;
    }
    conn.close(VarInt::from_u32(CLOSE_ABORT), b"");
}

/// Takes incoming connections until the endpoint closes; each handshake runs in a task
/// of its own, capped and timed like TLS ones (`inbound.rs`).
async fn accept_loop(endpoint: Endpoint, hs: Handshakes) {
    while let Some(incoming) = endpoint.accept().await {
        let from = incoming.remote_address();
        // A UDP source address proves nothing: a handshake from one that never answers
        // (spoofed) would hold a slot until it times out, and a few such packets would
        // take every slot. A Retry, which costs us no state, makes the peer prove it
        // reads at that address first (one round trip more per stream; TCP's own
        // handshake does the same for TLS).
        if !incoming.remote_address_validated() && incoming.may_retry() {
            let _ = incoming.retry();
            continue;
        }
        let Some(permit) = hs.permit() else {
            incoming.refuse();
            continue;
        };
        let hs = hs.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let handshake = async {
                let conn = incoming.await.map_err(|e| e.to_string())?;
                let (send, recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
                Ok::<_, String>(SecureConn::Quic { conn, send, recv })
            };
            match tokio::time::timeout(hs.timeout, handshake).await {
                Ok(Ok(conn)) => hs.deliver(Accepted { from, conn }).await,
                Ok(Err(reason)) => hs.metrics.handshake_failed(from, &reason),
                Err(_) => hs
                    .metrics
                    .handshake_failed(from, &"QUIC handshake timed out"),
            }
        });
    }
}

/// The gossip port's socket as quinn sees it: packets the core's task passed on, and
/// direct sends. It holds the socket weakly, so quinn's tasks, which outlive the node's
/// task while their connections drain, never keep the port bound; a send under way holds
/// it for a moment, and shutdown waits for that (`socket.rs`).
#[derive(Debug)]
struct MuxSocket {
    socket: Weak<GossipSocket>,
    local: SocketAddr,
    inbox: Mutex<mpsc::Receiver<(SocketAddr, Bytes)>>,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the node has shut down")
}

impl AsyncUdpSocket for MuxSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Writable {
            socket: self.socket.clone(),
            waiting: None,
        })
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let socket = self.socket.upgrade().ok_or_else(gone)?;
        socket
            .try_send_to(transmit.contents, transmit.destination)
            .map(|_| ())
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let Ok(mut inbox) = self.inbox.lock() else {
            return Poll::Ready(Err(gone()));
        };
        let mut n = 0;
        while n < bufs.len().min(meta.len()) {
            let next = if n == 0 {
                match inbox.poll_recv(cx) {
                    Poll::Ready(Some(d)) => Some(d),
                    Poll::Ready(None) => return Poll::Ready(Err(gone())),
                    Poll::Pending => return Poll::Pending,
                }
            } else {
                inbox.try_recv().ok()
            };
            let Some((from, datagram)) = next else { break };
            // quinn's buffers hold a whole UDP payload; a longer one is cut and then
            // fails QUIC's authentication, as any corrupt packet does.
            let len = datagram.len().min(bufs[n].len());
            bufs[n][..len].copy_from_slice(&datagram[..len]);
            meta[n] = RecvMeta {
                addr: from,
                len,
                stride: len,
                ecn: None,
                dst_ip: None,
            };
            n += 1;
        }
        Poll::Ready(Ok(n))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Waits until the shared socket can send, for quinn.
struct Writable {
    socket: Weak<GossipSocket>,
    waiting: Option<Pin<Box<dyn Future<Output = io::Result<()>> + Send + Sync>>>,
}

impl std::fmt::Debug for Writable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writable").finish_non_exhaustive()
    }
}

impl UdpPoller for Writable {
    fn poll_writable(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.waiting.is_none() {
            let Some(socket) = self.socket.upgrade() else {
                return Poll::Ready(Err(gone()));
            };
            self.waiting = Some(Box::pin(async move { socket.writable().await }));
        }
        let result = self
            .waiting
            .as_mut()
            .map_or(Poll::Ready(Ok(())), |w| w.as_mut().poll(cx));
        if result.is_ready() {
            self.waiting = None;
        }
        result
    }
}
