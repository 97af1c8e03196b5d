//! TLS over TCP for the core's streams, on the gossip port's TCP listener: the
//! handshake, then the same framing as plain TCP ([`crate::stream::run_io`]).
//!
//! Inbound handshakes run before the core hears of the connection, each in its own
//! task, at most `max_inbound_streams` at once and each within `stream_timeout`, so
//! unauthenticated peers never take one of the core's inbound stream slots.

use crate::inbound::{Accepted, Handshakes, SecureConn};
use crate::secure::SecureConfigs;
use crate::stream::{Open, StreamShared, Write, connect_failed, run_io};
use serf_proto::StreamId;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// What a node needs to open TLS streams.
#[derive(Debug, Clone)]
pub(crate) struct TlsConnector {
    pub configs: Arc<SecureConfigs>,
}

/// Why an outbound TLS stream could not be set up.
enum Failure {
    /// No TCP connection: counted as a failed connect only.
    Connect,
    /// The handshake failed: also counted and kept as the latest handshake failure.
    Handshake(String),
}

impl TlsConnector {
    /// Connects, shakes hands (checking that the certificate names `peer` when known),
    /// all by `deadline`, then runs the stream.
    pub async fn run_outbound(self, open: Open, shared: StreamShared) {
        let Open {
            id,
            to,
            peer,
            deadline,
            writes,
        } = open;
        let connect = async {
            let (config, server_name) = self
                .configs
                .client_for(peer.as_ref().map(|p| p.as_str()), to)
                .map_err(Failure::Handshake)?;
            let tcp = TcpStream::connect(to).await.map_err(|_| Failure::Connect)?;
            let _ = tcp.set_nodelay(true);
            tokio_rustls::TlsConnector::from(config)
                .connect(server_name, tcp)
                .await
                .map_err(|e| Failure::Handshake(e.to_string()))
        };
        match tokio::time::timeout_at(deadline, connect).await {
            Ok(Ok(stream)) => {
                shared.metrics.secure_streams_opened.fetch_add(1, Relaxed);
                let (read, write) = tokio::io::split(stream);
                run_io(id, read, write, writes, shared).await;
            }
            Ok(Err(Failure::Handshake(reason))) => {
                shared.metrics.handshake_failed(to, &reason);
                connect_failed(id, &shared).await;
            }
            Ok(Err(Failure::Connect)) | Err(_) => connect_failed(id, &shared).await,
        }
    }
}

/// Shakes hands with a connection accepted on the listener, in a task of its own, and
/// hands the authenticated stream to the core's task. Refused at once when too many
/// handshakes are under way.
pub(crate) fn accept(
    stream: TcpStream,
    from: SocketAddr,
    configs: &SecureConfigs,
    hs: &Handshakes,
) {
    let Some(permit) = hs.permit() else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(configs.server.clone());
    let hs = hs.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let _ = stream.set_nodelay(true);
        match tokio::time::timeout(hs.timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                hs.deliver(Accepted {
                    from,
                    conn: SecureConn::Tls(Box::new(tls)),
                })
                .await
            }
            Ok(Err(e)) => hs.metrics.handshake_failed(from, &e),
            Err(_) => hs
                .metrics
                .handshake_failed(from, &"TLS handshake timed out"),
        }
    });
}

/// Runs an accepted TLS stream the core took.
pub(crate) async fn run_inbound(
    id: StreamId,
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    writes: mpsc::Receiver<Write>,
    shared: StreamShared,
) {
    let (read, write) = tokio::io::split(stream);
    run_io(id, read, write, writes, shared).await;
}
