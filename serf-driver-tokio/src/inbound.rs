//! Inbound secure connections between their handshake and the core: the cap on
//! handshakes under way, and the hand-over of authenticated connections to the task
//! that owns the core (which then asks the core for a stream id, or refuses).

use crate::metrics::DriverMetrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// An inbound connection whose handshake succeeded: the peer showed a certificate of the
/// cluster's CA.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub from: SocketAddr,
    pub conn: SecureConn,
}

/// The authenticated connection, per transport. Empty without the `tls` and `quic`
/// features: nothing is then ever accepted this way.
#[derive(Debug)]
pub(crate) enum SecureConn {
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
    #[cfg(feature = "quic")]
    Quic {
        conn: quinn::Connection,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
    },
}

impl SecureConn {
    /// The core refused the stream (too many inbound, or shutting down): end it at once.
    pub fn refuse(self) {
        match self {
            #[cfg(feature = "tls")]
            SecureConn::Tls(_) => {}
            #[cfg(feature = "quic")]
            SecureConn::Quic { conn, .. } => {
                conn.close(quinn::VarInt::from_u32(crate::quic::CLOSE_REFUSED), b"busy")
            }
        }
    }
}

/// What every inbound handshake shares.
#[derive(Debug, Clone)]
#[cfg_attr(not(any(feature = "tls", feature = "quic")), allow(dead_code))]
pub(crate) struct Handshakes {
    /// One permit per handshake under way (the core's `max_inbound_streams`).
    pub limit: Arc<Semaphore>,
    /// How long a handshake may take (the core's `stream_timeout`).
    pub timeout: Duration,
    pub done: mpsc::Sender<Accepted>,
    pub metrics: Arc<DriverMetrics>,
}

#[cfg_attr(not(any(feature = "tls", feature = "quic")), allow(dead_code))]
impl Handshakes {
    /// A permit for one more handshake, or `None` (counted) when the cap is reached.
    pub fn permit(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.limit.clone().try_acquire_owned().ok();
        if permit.is_none() {
            self.metrics.handshakes_refused.fetch_add(1, Relaxed);
        }
        permit
    }

    /// Hands an authenticated connection to the core's task.
    pub async fn deliver(&self, accepted: Accepted) {
        // The channel is as large as the cap on handshakes, so this waits only while the
        // task is busy; if the task is gone, the connection just drops.
        let _ = self.done.send(accepted).await;
    }
}
