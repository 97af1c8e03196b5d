//! # serf-driver-tokio
//!
//! Runs a [`serf_proto::Serf`] node on a real network with tokio: UDP for gossip and
//! probes, TCP for push-pull, fallback pings and messages larger than a packet (on the
//! same port, as HashiCorp's Serf does), and tokio's clock for the core's timers.
//!
//! One task owns the core. It reads the socket and the connections, feeds the core,
//! carries out what the core asks, and sleeps until the core's next deadline. The
//! application holds a cheap, cloneable [`SerfHandle`]: commands go to the task over a
//! channel; the member list is a copy the task republishes when membership changes, read
//! without waiting; events arrive on [`Events`], whose overflow never blocks the protocol
//! (see [`Events`]).
//!
//! ```
//! use serf_driver_tokio::Builder;
//! use serf_proto::serf::{Config, Event, MemberStatus};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Two nodes on loopback; port 0 lets the OS pick free ports.
//! let (a, _a_events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
//! let (b, mut b_events) = Builder::new("b").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
//! b.join(&[a.local_addr()], false).await?;
//!
//! a.user_event("deploy", &b"v2"[..], false).await?;
//! loop {
//!     if let Some(Event::User(e)) = b_events.recv().await {
//!         assert_eq!((e.name.as_str(), &e.payload[..]), ("deploy", &b"v2"[..]));
//!         break;
//!     }
//! }
//! assert!(b.members().members.iter().all(|m| m.status == MemberStatus::Alive));
//! b.leave().await?;
//! b.shutdown().await?;
//! a.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Secure streams: TLS or QUIC
//!
//! Two kinds of traffic leave a node. **Gossip datagrams** (probes, acks, broadcasts) go
//! over UDP and are protected by the keyring
//! ([`serf_proto::memberlist::Config::keyring`]: XChaCha20-Poly1305 with a shared
//! key). **Streams** — push-pull state exchanges (every join and the periodic
//! anti-entropy), fallback pings, and messages too large for a packet — go over plain
//! TCP by default, where the keyring seals each frame too. Streams can instead run over
//! a standard, mutually authenticated transport, one of two cargo features:
//!
//! | | `tls` ([`Builder::tls`]) | `quic` ([`Builder::quic`]) |
//! |---|---|---|
//! | carried by | TLS 1.3 over TCP, on the bind port | QUIC, on the bind port's UDP socket |
//! | ports to open | UDP and TCP, one number (as plain Serf) | UDP only, one number |
//! | set-up per stream | TCP + TLS: 2 round trips | 1 round trip |
//! | pick it when | firewalls and proxies expect TCP, or ops tooling reads TLS | UDP is allowed end to end: one port, fewer round trips |
//!
//! Both take the same [`Certificates`]: the cluster's CA (the only trust anchor), and the
//! node's certificate and key, signed by that CA, whose DNS subject alternative name is
//! the node's name. Every stream is mutual TLS: the accepting node requires a client
//! certificate of the CA, and the connecting node checks the server's; when the core
//! knows which member it expects at the address (a push-pull or fallback ping to a
//! member), the certificate must name that member, so a node holding a valid
//! certificate cannot answer for another. A join by address accepts any certificate of
//! the CA. A certificate that does not fit its node (another name, another CA) stops
//! [`Builder::start`] with a message saying what to fix.
//!
//! ```text
//! # One CA per cluster, then one certificate per node named after it (here with step):
//! step certificate create "serf cluster CA" ca.pem ca-key.pem --profile root-ca --no-password --insecure
//! step certificate create web-1 web-1.pem web-1-key.pem --profile leaf --san web-1 \
//!     --ca ca.pem --ca-key ca-key.pem --no-password --insecure
//! ```
//!
//! ```no_run
//! # #[cfg(feature = "tls")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use serf_driver_tokio::{Builder, Certificates};
//! let certs = Certificates::from_pem_files("ca.pem", "web-1.pem", "web-1-key.pem")?;
//! let (node, events) = Builder::new("web-1").tls(certs).start().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Every node of a cluster must use the same stream transport: a TLS node cannot talk
//! streams with a plain TCP one or a QUIC one. Secure streams do not protect gossip:
//! keep the keyring on as well, or a node without a certificate can still gossip.
//!
//! What is bounded and counted ([`DriverStats`]): handshakes run before the core hears
//! of a connection, at most `max_inbound_streams` at once (more are refused:
//! `handshakes_refused`) and each within `stream_timeout`; a failed one (another CA,
//! another name, a plain-TCP or non-QUIC peer, a timeout) is counted in
//! `handshakes_failed`, and its peer and reason are kept for
//! [`SerfHandle::last_handshake_failure`]. `secure_streams_opened` and
//! `secure_streams_accepted` count the streams that passed. A QUIC peer must first show
//! that it receives at its address (a stateless Retry, one round trip), so packets from
//! spoofed addresses cannot take the handshake slots; TCP's handshake does that for TLS.
//!
//! **How QUIC shares the gossip port.** A second port would have to be configured on
//! every node and learned for every peer (the core knows each member's gossip address
//! only), so QUIC multiplexes on the gossip socket as RFC 9443 describes: a QUIC packet
//! always has the fixed bit (`0x40`) of its first byte set (greasing it, RFC 9287, is
//! turned off), while every packet of ours starts with version byte `1`. The node's task
//! reads the socket and hands QUIC packets to the QUIC endpoint (a full queue drops
//! them, counted in `quic_datagrams_dropped`; QUIC retransmits). Each core stream is a
//! QUIC connection with one bidirectional stream carrying the same frames as TCP.
//!
//! **Status**: UDP with TCP, TLS or QUIC streams, snapshots on disk
//! ([`Builder::snapshot_path`]), the embedding API and its tests work; the `serf` agent
//! is issue 9.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// The docs name the `tls` and `quic` items; a build without them cannot link there.
#![cfg_attr(
    not(all(feature = "tls", feature = "quic")),
    allow(rustdoc::broken_intra_doc_links)
)]

mod error;
mod events;
mod handle;
mod inbound;
mod logs;
mod members;
mod metrics;
#[cfg(feature = "quic")]
mod quic;
#[cfg(any(feature = "tls", feature = "quic"))]
mod secure;
pub mod snapshot;
mod socket;
mod stream;
mod task;
#[cfg(feature = "tls")]
mod tls;
mod transport;
mod view;

pub use error::{Error, StartError};
pub use events::{Events, QueryEvent, QueryStream};
pub use handle::SerfHandle;
pub use logs::{LOG_STREAM_CAPACITY, LogStream};
pub use members::Members;
pub use metrics::{DriverMetrics, DriverStats};
#[cfg(any(feature = "tls", feature = "quic"))]
pub use secure::{CertError, Certificates};

use serf_proto::Serf;
use serf_proto::serf::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::sync::{Semaphore, mpsc, watch};

/// Starts a node: a name, where to listen, the protocol configuration.
///
/// ```
/// # use serf_driver_tokio::Builder;
/// # use serf_proto::serf::Config;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (node, _events) = Builder::new("web-1")
///     .bind("127.0.0.1:0".parse()?)
///     .config(Config::lan())
///     .event_capacity(4096)
///     .start()
///     .await?;
/// assert_eq!(node.members().members.len(), 1);
/// node.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    name: String,
    bind: SocketAddr,
    advertise: Option<SocketAddr>,
    config: Config,
    event_capacity: usize,
    seed: Option<u64>,
    frame_budget: usize,
    snapshot: Option<PathBuf>,
    transport: transport::Choice,
}

impl Builder {
    /// A node named `name` (unique in the cluster), listening on 0.0.0.0:7946 with the
    /// LAN defaults until told otherwise.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (node, _events) = Builder::new("web-1").bind("127.0.0.1:0".parse()?).start().await?;
    /// assert_eq!(node.name().as_str(), "web-1");
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(name: impl Into<String>) -> Builder {
        Builder {
            name: name.into(),
            bind: SocketAddr::from(([0, 0, 0, 0], 7946)),
            advertise: None,
            config: Config::default(),
            event_capacity: 1024,
            seed: None,
            frame_budget: 64 << 20,
            snapshot: None,
            transport: transport::Choice::Tcp,
        }
    }

    /// Where UDP and TCP listen (one port for both). Port 0 picks a free port.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).start().await?;
    /// assert!(node.local_addr().ip().is_loopback());
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn bind(mut self, addr: SocketAddr) -> Builder {
        self.bind = addr;
        self
    }

    /// The address other nodes reach this one at, when it differs from the bind address
    /// (NAT, or binding 0.0.0.0). Port 0 means the bound port.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Listen on every interface, tell the others to use loopback (port 0: the bound port).
    /// let (node, _events) = Builder::new("a")
    ///     .bind("0.0.0.0:0".parse()?)
    ///     .advertise("127.0.0.1:0".parse()?)
    ///     .start()
    ///     .await?;
    /// assert!(node.local_addr().ip().is_loopback());
    /// assert_ne!(node.local_addr().port(), 0);
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn advertise(mut self, addr: SocketAddr) -> Builder {
        self.advertise = Some(addr);
        self
    }

    /// The protocol configuration (default: [`Config::default`], LAN timings).
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut config = Config::local();
    /// config.memberlist.label = "staging".into();
    /// let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(config).start().await?;
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn config(mut self, config: Config) -> Builder {
        self.config = config;
        self
    }

    /// How many events wait for the application before new ones are dropped and counted
    /// (default 1,024).
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (node, _events) = Builder::new("a")
    ///     .bind("127.0.0.1:0".parse()?)
    ///     .event_capacity(64 * 1024)
    ///     .start()
    ///     .await?;
    /// // What overflowed is counted.
    /// assert_eq!(node.driver_stats().events_dropped, 0);
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn event_capacity(mut self, n: usize) -> Builder {
        self.event_capacity = n.max(1);
        self
    }

    /// The seed of the core's random choices. Default: drawn from the OS. Set it only for
    /// tests: encryption nonces come from it.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).seed(42).start().await?;
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn seed(mut self, seed: u64) -> Builder {
        self.seed = Some(seed);
        self
    }

    /// The most bytes of stream frames read but not yet handled, over all connections
    /// (default 64 MiB). A connection waits for room before reading a frame's body.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (node, _events) = Builder::new("a")
    ///     .bind("127.0.0.1:0".parse()?)
    ///     .frame_budget(8 << 20)
    ///     .start()
    ///     .await?;
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn frame_budget(mut self, bytes: usize) -> Builder {
        // A semaphore counts the budget, and counts at most MAX_PERMITS.
        self.frame_budget = bytes.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// Keeps a snapshot file at `path` (Go's `snapshot_path`): the node's members and
    /// clocks are appended to it, and at the next start it is replayed, so the node
    /// rejoins the members it last saw alive without a seed and does not replay old
    /// events. A torn last line is ignored; any other bad line stops the start with an
    /// error naming the file and line.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join(format!("serf-doc-snapshot-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).snapshot_path(&path).start().await?;
    /// node.shutdown().await?;
    /// assert!(path.exists(), "the snapshot outlives the node");
    /// // A restart replays it.
    /// let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).snapshot_path(&path).start().await?;
    /// # node.shutdown().await?;
    /// # std::fs::remove_file(&path)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn snapshot_path(mut self, path: impl Into<PathBuf>) -> Builder {
        self.snapshot = Some(path.into());
        self
    }

    /// Carries streams (push-pull, fallback pings, messages larger than a packet) over
    /// TLS on the TCP port instead of plain TCP, with `certs` (feature `tls`). Every
    /// node of the cluster must use it: a plain-TCP node cannot talk to a TLS one.
    /// Gossip datagrams stay UDP, protected by the keyring. See the crate docs'
    /// "Secure streams".
    #[cfg(feature = "tls")]
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # fn certs(ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, node: &str) -> Result<serf_driver_tokio::Certificates, Box<dyn std::error::Error>> {
    /// #     let key = rcgen::KeyPair::generate()?;
    /// #     let cert = rcgen::CertificateParams::new(vec![node.to_string()])?.signed_by(&key, ca)?;
    /// #     Ok(serf_driver_tokio::Certificates::from_pem(ca.pem().as_bytes(), cert.pem().as_bytes(), key.serialize_pem().as_bytes())?)
    /// # }
    /// # let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    /// # ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    /// # let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;
    /// // Each node's certificate names it and is signed by the cluster's CA (made here
    /// // with rcgen; in production, `Certificates::from_pem_files`).
    /// let (a, _a_events) = Builder::new("a")
    ///     .bind("127.0.0.1:0".parse()?)
    ///     .config(Config::local())
    ///     .tls(certs(&ca, "a")?)
    ///     .start()
    ///     .await?;
    /// let (b, _b_events) = Builder::new("b")
    ///     .bind("127.0.0.1:0".parse()?)
    ///     .config(Config::local())
    ///     .tls(certs(&ca, "b")?)
    ///     .start()
    ///     .await?;
    /// b.join(&[a.local_addr()], false).await?;
    /// assert_eq!(b.driver_stats().secure_streams_opened, 1);
    /// # a.shutdown().await?;
    /// # b.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn tls(mut self, certs: Certificates) -> Builder {
        self.transport = transport::Choice::Tls(certs);
        self
    }

    /// Carries streams over QUIC instead of TCP, on the gossip port's UDP socket (no TCP
    /// listener is opened), with `certs` (feature `quic`). Every node of the cluster
    /// must use it. See the crate docs' "Secure streams".
    #[cfg(feature = "quic")]
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # fn certs(ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, node: &str) -> Result<serf_driver_tokio::Certificates, Box<dyn std::error::Error>> {
    /// #     let key = rcgen::KeyPair::generate()?;
    /// #     let cert = rcgen::CertificateParams::new(vec![node.to_string()])?.signed_by(&key, ca)?;
    /// #     Ok(serf_driver_tokio::Certificates::from_pem(ca.pem().as_bytes(), cert.pem().as_bytes(), key.serialize_pem().as_bytes())?)
    /// # }
    /// # let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    /// # ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    /// # let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;
    /// // Each node's certificate names it and is signed by the cluster's CA (made here
    /// // with rcgen; in production, `Certificates::from_pem_files`).
    /// let (a, _a_events) = Builder::new("a")
    ///     .bind("127.0.0.1:0".parse()?)
    ///     .config(Config::local())
    ///     .quic(certs(&ca, "a")?)
    ///     .start()
    ///     .await?;
    /// let (b, _b_events) = Builder::new("b")
    ///     .bind("127.0.0.1:0".parse()?)
    ///     .config(Config::local())
    ///     .quic(certs(&ca, "b")?)
    ///     .start()
    ///     .await?;
    /// b.join(&[a.local_addr()], false).await?;
    /// assert_eq!(b.driver_stats().secure_streams_opened, 1);
    /// # a.shutdown().await?;
    /// # b.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn quic(mut self, certs: Certificates) -> Builder {
        self.transport = transport::Choice::Quic(certs);
        self
    }

    /// Binds the sockets and starts the node's task on the current tokio runtime.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).start().await?;
    /// // A port in use is a clear error, not a panic.
    /// let err = Builder::new("b").bind(a.local_addr()).start().await.unwrap_err();
    /// assert!(err.to_string().contains("could not bind"), "{err}");
    /// # a.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start(self) -> Result<(SerfHandle, Events), StartError> {
        let (udp, tcp, bound) = bind(self.bind, self.transport.uses_tcp()).await?;
        let (udp, mut udp_closed) = socket::GossipSocket::new(udp);
        let advertise = match self.advertise {
            Some(a) if a.port() == 0 => SocketAddr::new(a.ip(), bound.port()),
            Some(a) => a,
            None if bound.ip().is_unspecified() => {
                return Err(StartError::NoAdvertiseAddress(bound));
            }
            None => bound,
        };
        let seed = match self.seed {
            Some(s) => s,
            None => getrandom::u64().map_err(|e| StartError::Entropy(e.to_string()))?,
        };
        let mut config = self.config.clone();
        let mut snapshot = None;
        if let Some(path) = &self.snapshot {
            config.snapshot = true;
            let state = snapshot::replay(path, config.rejoin_after_leave)?;
            snapshot = Some((path.clone(), state));
        }
        let clock = task::Clock::new();
        let serf = Serf::with_snapshot(
            config.clone(),
            &self.name,
            advertise,
            seed,
            clock.now(),
            snapshot.as_ref().map(|(_, s)| s),
        )?;
        let name = serf.local_name().clone();
        let metrics = Arc::new(DriverMetrics::default());
        // Certificates are checked here, before anything is left running.
        let transport = transport::start(
            self.transport.clone(),
            name.as_str(),
            &config,
            &udp,
            &metrics,
        )?;
        let snapshot_writer = match snapshot {
            Some((path, state)) => {
                match snapshot::Writer::start(path, state, config.rejoin_after_leave) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        transport.inbound.close().await;
                        return Err(e.into());
                    }
                }
            }
            None => None,
        };
        let max_frame = serf.max_frame_len();
        let initial = Arc::new(Members {
            local: serf.local_member().clone(),
            members: serf.members().cloned().collect(),
            state: serf.state(),
            version: serf.members_version(),
        });
        let (view_tx, view_rx) = watch::channel(initial);
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (event_tx, event_rx) = mpsc::channel(self.event_capacity);
        let (stream_tx, stream_rx) = mpsc::channel(1024);
        let (done_tx, done_rx) = watch::channel(false);
        let (logs_tx, _) = tokio::sync::broadcast::channel(logs::LOG_STREAM_CAPACITY);
        let shared = stream::StreamShared {
            events: stream_tx,
            budget: Arc::new(Semaphore::new(self.frame_budget)),
            budget_bytes: self.frame_budget,
            max_frame,
            metrics: metrics.clone(),
            connector: transport.connector,
        };
        let task = task::Task {
            serf,
            clock,
            udp,
            tcp,
            inbound: transport.inbound,
            accepted: transport.accepted,
            commands: cmd_rx,
            events: event_tx,
            view: view_tx,
            metrics: metrics.clone(),
            stream_shared: shared,
            stream_events: stream_rx,
            snapshot: snapshot_writer,
            logs: logs_tx.clone(),
        };
        tokio::spawn(async move {
            task.run().await;
            // The task has let go of the socket, but a send of quinn's under way on
            // another thread may still hold it (`socket.rs`): the port is free, as
            // `shutdown` promises, only once that ends too.
            if !udp_closed.wait(socket::CLOSE_LIMIT).await {
                tracing::warn!(
                    "the UDP socket was still open {:?} after the node stopped",
                    socket::CLOSE_LIMIT
                );
            }
            let _ = done_tx.send(true);
        });
        let handle = SerfHandle {
            commands: cmd_tx,
            view: view_rx,
            metrics,
            addr: advertise,
            name,
            done: done_rx,
            logs: logs_tx,
        };
        Ok((handle, Events { rx: event_rx }))
    }
}

/// Binds UDP and (unless the stream transport is QUIC) TCP on one port. With port 0 the
/// OS picks the UDP port, and TCP must get the same one: if it is taken for TCP, try
/// another.
async fn bind(
    addr: SocketAddr,
    tcp: bool,
) -> Result<(UdpSocket, Option<TcpListener>, SocketAddr), StartError> {
    let attempts = if addr.port() == 0 { 16 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|source| StartError::Bind {
                proto: "UDP",
                addr,
                source,
            })?;
        let bound = udp.local_addr().map_err(|source| StartError::Bind {
            proto: "UDP",
            addr,
            source,
        })?;
        if !tcp {
            return Ok((udp, None, bound));
        }
        match listen_tcp(bound) {
            Ok(tcp) => return Ok((udp, Some(tcp), bound)),
            Err(e) => last = Some((bound, e)),
        }
    }
    let (addr, source) = last.expect("at least one attempt");
    Err(StartError::Bind {
        proto: "TCP",
        addr,
        source,
    })
}

fn listen_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A restarted node binds again at once, despite connections of its previous life
    // lingering in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
