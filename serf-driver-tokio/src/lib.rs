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
//! **Status**: UDP and TCP streams, snapshots on disk ([`Builder::snapshot_path`]), the
//! embedding API and its tests work; QUIC and TLS stream transports and the `serf` agent
//! are still to come (issues 8 and 9).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod handle;
mod logs;
mod metrics;
pub mod snapshot;
mod stream;
mod task;

pub use error::{Error, StartError};
pub use handle::{Events, Members, QueryEvent, QueryStream, SerfHandle};
pub use logs::{LOG_STREAM_CAPACITY, LogStream};
pub use metrics::{DriverMetrics, DriverStats};

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
}

impl Builder {
    /// A node named `name` (unique in the cluster), listening on 0.0.0.0:7946 with the
    /// LAN defaults until told otherwise.
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
        }
    }

    /// Where UDP and TCP listen (one port for both). Port 0 picks a free port.
    pub fn bind(mut self, addr: SocketAddr) -> Builder {
        self.bind = addr;
        self
    }

    /// The address other nodes reach this one at, when it differs from the bind address
    /// (NAT, or binding 0.0.0.0). Port 0 means the bound port.
    pub fn advertise(mut self, addr: SocketAddr) -> Builder {
        self.advertise = Some(addr);
        self
    }

    /// The protocol configuration (default: [`Config::default`], LAN timings).
    pub fn config(mut self, config: Config) -> Builder {
        self.config = config;
        self
    }

    /// How many events wait for the application before new ones are dropped and counted
    /// (default 1,024).
    pub fn event_capacity(mut self, n: usize) -> Builder {
        self.event_capacity = n.max(1);
        self
    }

    /// The seed of the core's random choices. Default: drawn from the OS. Set it only for
    /// tests: encryption nonces come from it.
    pub fn seed(mut self, seed: u64) -> Builder {
        self.seed = Some(seed);
        self
    }

    /// The most bytes of stream frames read but not yet handled, over all connections
    /// (default 64 MiB). A connection waits for room before reading a frame's body.
    pub fn frame_budget(mut self, bytes: usize) -> Builder {
        self.frame_budget = bytes.max(1);
        self
    }

    /// Keeps a snapshot file at `path` (Go's `snapshot_path`): the node's members and
    /// clocks are appended to it, and at the next start it is replayed, so the node
    /// rejoins the members it last saw alive without a seed and does not replay old
    /// events. A torn last line is ignored; any other bad line stops the start with an
    /// error naming the file and line.
    pub fn snapshot_path(mut self, path: impl Into<PathBuf>) -> Builder {
        self.snapshot = Some(path.into());
        self
    }

    /// Binds the sockets and starts the node's task on the current tokio runtime.
    pub async fn start(self) -> Result<(SerfHandle, Events), StartError> {
        let (udp, tcp, bound) = bind(self.bind).await?;
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
        let snapshot_writer = match snapshot {
            Some((path, state)) => Some(snapshot::Writer::start(
                path,
                state,
                config.rejoin_after_leave,
            )?),
            None => None,
        };
        let name = serf.local_name().clone();
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
        let metrics = Arc::new(DriverMetrics::default());
        let (logs_tx, _) = tokio::sync::broadcast::channel(logs::LOG_STREAM_CAPACITY);
        let shared = stream::StreamShared {
            events: stream_tx,
            budget: Arc::new(Semaphore::new(self.frame_budget)),
            budget_bytes: self.frame_budget,
            max_frame,
            metrics: metrics.clone(),
        };
        let task = task::Task {
            serf,
            clock,
            udp,
            tcp,
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

/// Binds UDP and TCP on one port. With port 0 the OS picks the UDP port, and TCP must
/// get the same one: if it is taken for TCP, try another.
async fn bind(addr: SocketAddr) -> Result<(UdpSocket, TcpListener, SocketAddr), StartError> {
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
        match listen_tcp(bound) {
            Ok(tcp) => return Ok((udp, tcp, bound)),
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
