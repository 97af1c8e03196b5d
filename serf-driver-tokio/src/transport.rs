//! The stream transport chosen on the [`crate::Builder`] (plain TCP, TLS over TCP, or
//! QUIC), as the task that owns the core sees it: where inbound connections and QUIC
//! packets go, and how the secure ones reach the core once authenticated.

use crate::inbound::{Accepted, Handshakes, SecureConn};
use crate::metrics::DriverMetrics;
use crate::socket::GossipSocket;
use crate::stream::{Connector, StreamShared, Write};
use serf_proto::StreamId;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// The stream transport a node was built with.
#[derive(Debug, Clone, Default)]
pub(crate) enum Choice {
    #[default]
    Tcp,
    #[cfg(feature = "tls")]
    Tls(crate::secure::Certificates),
    #[cfg(feature = "quic")]
    Quic(crate::secure::Certificates),
}

impl Choice {
    /// Whether the transport listens on TCP (QUIC needs no listener).
    pub fn uses_tcp(&self) -> bool {
        match self {
            Choice::Tcp => true,
            #[cfg(feature = "tls")]
            Choice::Tls(_) => true,
            #[cfg(feature = "quic")]
            Choice::Quic(_) => false,
        }
    }
}

/// The inbound side of the transport, owned by the core's task.
#[derive(Debug)]
pub(crate) enum Inbound {
    Tcp,
    #[cfg(feature = "tls")]
    Tls {
        configs: Arc<crate::secure::SecureConfigs>,
        handshakes: Handshakes,
    },
    #[cfg(feature = "quic")]
    Quic {
        inbox: crate::quic::QuicInbox,
        connector: Arc<crate::quic::QuicConnector>,
    },
}

/// Everything the transport needs once the sockets are bound.
pub(crate) struct Started {
    pub inbound: Inbound,
    pub connector: Connector,
    /// Authenticated inbound connections, for the core's task.
    pub accepted: mpsc::Receiver<Accepted>,
}

/// Sets the transport up on the bound UDP socket. Fails if the certificates do not fit
/// this node (checked here, at start, rather than at every peer).
#[cfg_attr(not(feature = "quic"), allow(unused_variables))]
pub(crate) fn start(
    choice: Choice,
    node: &str,
    config: &serf_proto::serf::Config,
    udp: &Arc<GossipSocket>,
    metrics: &Arc<DriverMetrics>,
) -> Result<Started, crate::StartError> {
    let inbound_cap = config.memberlist.max_inbound_streams.max(1);
    let (done, accepted) = mpsc::channel(inbound_cap);
    let handshakes = Handshakes {
        limit: Arc::new(tokio::sync::Semaphore::new(inbound_cap)),
        timeout: config.memberlist.stream_timeout,
        done,
        metrics: metrics.clone(),
    };
    let (inbound, connector) = match choice {
        Choice::Tcp => {
            drop(handshakes);
            (Inbound::Tcp, Connector::Tcp)
        }
        #[cfg(feature = "tls")]
        Choice::Tls(certs) => {
            let configs = Arc::new(crate::secure::SecureConfigs::new(&certs, node)?);
            let connector = Connector::Tls(crate::tls::TlsConnector {
                configs: configs.clone(),
            });
            (
                Inbound::Tls {
                    configs,
                    handshakes,
                },
                connector,
            )
        }
        #[cfg(feature = "quic")]
        Choice::Quic(certs) => {
            let configs = crate::secure::SecureConfigs::new(&certs, node)?;
            let (connector, inbox) =
                crate::quic::start(udp, &configs, handshakes, config.memberlist.stream_timeout)
                    .map_err(crate::StartError::Quic)?;
            let connector = Arc::new(connector);
            (
                Inbound::Quic {
                    inbox,
                    connector: connector.clone(),
                },
                Connector::Quic(connector),
            )
        }
    };
    Ok(Started {
        inbound,
        connector,
        accepted,
    })
}

impl Inbound {
    /// A connection accepted on the TCP listener: returned for the core to take at once
    /// when plain; with TLS its handshake starts in a task of its own, and the core
    /// hears of it only once the peer is authenticated.
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    pub fn tcp_accepted(&self, stream: TcpStream, from: SocketAddr) -> Option<TcpStream> {
        match self {
            Inbound::Tcp => Some(stream),
            #[cfg(feature = "tls")]
            Inbound::Tls {
                configs,
                handshakes,
            } => {
                crate::tls::accept(stream, from, configs, handshakes);
                None
            }
            #[cfg(feature = "quic")]
            Inbound::Quic { .. } => None,
        }
    }

    /// Takes a datagram of the gossip port if it is the transport's (QUIC); a QUIC
    /// packet the endpoint has no room for is dropped and counted.
    #[cfg_attr(not(feature = "quic"), allow(unused_variables))]
    pub fn datagram(&self, data: &[u8], from: SocketAddr, metrics: &DriverMetrics) -> bool {
        #[cfg(feature = "quic")]
        if let Inbound::Quic { inbox, .. } = self
            && crate::quic::is_quic(data)
        {
            if !inbox.push(from, data) {
                metrics
                    .quic_datagrams_dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            return true;
        }
        false
    }

    /// Runs an authenticated connection the core took as stream `id`.
    #[cfg_attr(
        not(any(feature = "tls", feature = "quic")),
        allow(unused_variables, clippy::needless_pass_by_value)
    )]
    pub fn run(
        conn: SecureConn,
        id: StreamId,
        writes: mpsc::Receiver<Write>,
        shared: StreamShared,
        tasks: &mut JoinSet<()>,
    ) {
        shared
            .metrics
            .secure_streams_accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match conn {
            #[cfg(feature = "tls")]
            SecureConn::Tls(tls) => {
                tasks.spawn(crate::tls::run_inbound(id, *tls, writes, shared));
            }
            #[cfg(feature = "quic")]
            SecureConn::Quic { conn, send, recv } => {
                tasks.spawn(crate::quic::run_inbound(
                    id, conn, send, recv, writes, shared,
                ));
            }
        }
    }

    /// Ends the transport's own machinery at shutdown.
    pub async fn close(&self) {
        #[cfg(feature = "quic")]
        if let Inbound::Quic { connector, .. } = self {
            connector.close().await;
        }
    }
}
