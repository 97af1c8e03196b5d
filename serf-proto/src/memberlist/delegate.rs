//! Hooks for the layer above, and the events the memberlist layer reports.

use super::state::{Node, NodeState};
use crate::name::Name;
use bytes::Bytes;
use core::net::SocketAddr;
use core::time::Duration;

/// A member as described by a remote node, before it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its address.
    pub addr: SocketAddr,
    /// Its metadata.
    pub meta: &'a [u8],
    /// Its incarnation.
    pub incarnation: u32,
    /// Its state in the sender's view.
    pub state: NodeState,
    /// Its protocol versions.
    pub versions: crate::wire::Versions,
}

/// Synchronous questions the memberlist layer asks the layer above. Every method has a
/// default, so `()` (or [`NoDelegate`]) is a complete delegate for membership-only use.
///
/// These run inside protocol steps and must be quick; they cannot call back into the
/// memberlist. Everything that is not a question (joins, leaves, updates, user messages)
/// arrives as an [`Event`] instead.
pub trait Delegate {
    /// The layer above's state, sent in every push-pull (Go: `LocalState`).
    fn local_state(&mut self, join: bool, out: &mut Vec<u8>) {
        let _ = (join, out);
    }

    /// Accept or refuse the members of a cluster we are joining, or that is joining us
    /// (Go: `MergeDelegate`). Returning an error cancels the exchange.
    fn notify_merge(&mut self, peers: &[Candidate<'_>]) -> Result<(), String> {
        let _ = peers;
        Ok(())
    }

    /// Accept or refuse an alive message about another member (Go: `AliveDelegate`).
    fn notify_alive(&mut self, peer: &Candidate<'_>) -> bool {
        let _ = peer;
        true
    }

    /// The payload of our acks (Go: `PingDelegate.AckPayload`; Serf sends its network
    /// coordinate).
    fn ack_payload(&mut self, out: &mut Vec<u8>) {
        let _ = out;
    }
}

/// A delegate that answers every question with the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDelegate;

impl Delegate for NoDelegate {}
impl Delegate for () {}

/// Names one call to `join`, echoed by its [`Event::JoinCompleted`].
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JoinId(pub u64);

/// Why joining through one address failed.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The stream could not be opened or broke.
    #[error("could not reach the node (stream failed)")]
    Unreachable,
    /// No answer within the stream timeout.
    #[error("no answer within the stream timeout")]
    Timeout,
    /// The remote node answered with an error.
    #[error("remote refused: {0}")]
    Remote(String),
    /// Our merge hook refused the remote cluster.
    #[error("merge refused: {0}")]
    MergeRefused(String),
    /// The answer could not be decoded (another cluster label, key or version?).
    #[error("answer could not be read: {0}")]
    BadAnswer(String),
}

/// What the memberlist layer reports to the application.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A member joined, or came back after being dead or leaving.
    NodeJoined(Node),
    /// A member was declared dead, or left (see its state).
    NodeLeft(Node),
    /// A member's metadata changed.
    NodeUpdated(Node),
    /// Another node claims a known member's name from a different address. The message was
    /// dropped (Go: `ConflictDelegate`).
    NameConflict {
        /// The member we know.
        existing: Node,
        /// The claimant.
        other: Node,
    },
    /// A user message arrived, by datagram, gossip or stream.
    UserMessage {
        /// Where the datagram or stream came from.
        from: SocketAddr,
        /// The payload.
        payload: Bytes,
    },
    /// A direct probe was answered.
    PingComplete {
        /// The member probed.
        node: Name,
        /// Round-trip time.
        rtt: Duration,
        /// Its ack payload.
        payload: Bytes,
    },
    /// The layer above's state from a push-pull, after the member states were merged.
    RemoteState {
        /// Whether the exchange was part of a join.
        join: bool,
        /// Whether we initiated the exchange (only initiators of a join honour
        /// "ignore old events").
        initiated: bool,
        /// The state.
        state: Bytes,
    },
    /// A call to `join` finished with every address tried.
    JoinCompleted {
        /// The call.
        id: JoinId,
        /// Addresses that answered with their state.
        joined: usize,
        /// Addresses that failed, and why.
        failed: Vec<(SocketAddr, JoinError)>,
    },
    /// A broadcast queued with a notification id reached its retransmit limit, or was
    /// replaced or dropped (used by the Serf layer to wait for its leave intent).
    BroadcastDone {
        /// The id given when queueing.
        id: u64,
    },
    /// A graceful leave's broadcast went out (or timed out).
    LeaveCompleted {
        /// True if the broadcast had not finished within the leave timeout.
        timed_out: bool,
    },
}
