//! Errors of the driver's API. Each says what went wrong and what to do.

use serf_proto::memberlist::{ConfigError, JoinError};
use serf_proto::serf::SerfError;
use std::net::SocketAddr;

/// Why a node could not start. Nothing is left running.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The protocol configuration was refused.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// A socket could not be bound.
    #[error("could not bind {proto} on {addr}: {source} (is another agent using this port?)")]
    Bind {
        /// "UDP" or "TCP".
        proto: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bind address is unspecified (0.0.0.0 or ::) and no advertise address was set:
    /// other nodes would not know where to reach this one.
    #[error(
        "bind address {0} is unspecified: set an advertise address other nodes can reach (Builder::advertise)"
    )]
    NoAdvertiseAddress(SocketAddr),
    /// The snapshot file could not be read or written, or a line of it is corrupt.
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotFileError),
    /// The TLS or QUIC certificates could not be loaded or do not fit this node.
    #[cfg(any(feature = "tls", feature = "quic"))]
    #[error(transparent)]
    Certificates(#[from] crate::CertError),
    /// The QUIC endpoint could not be set up.
    #[cfg(feature = "quic")]
    #[error("could not start QUIC: {0}")]
    Quic(String),
    /// The OS gave no entropy for the node's random seed.
    #[error("no OS entropy for the random seed: {0}; pass one with Builder::seed")]
    Entropy(String),
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The protocol refused the command; its state is unchanged.
    #[error(transparent)]
    Serf(#[from] SerfError),
    /// The node's task has stopped (shut down, or its last handle was dropped).
    #[error("the node has shut down")]
    Shutdown,
    /// No seed could be joined.
    #[error("could not join any of {} seed(s): {}", .0.len(), describe(.0))]
    JoinFailed(Vec<(SocketAddr, JoinError)>),
}

fn describe(failed: &[(SocketAddr, JoinError)]) -> String {
    failed
        .iter()
        .map(|(a, e)| format!("{a}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}
