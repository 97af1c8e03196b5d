//! The gossip port's UDP socket, and the news of its closing.
//!
//! The node's task owns the socket. With QUIC, quinn's tasks share it (`quic.rs`): they
//! hold it weakly, but upgrade that for each send, on whatever thread they run. So when
//! the task ends, a send under way there can keep the socket open a moment longer, and
//! the port bound. [`crate::SerfHandle::shutdown`] promises that the port can be bound
//! again once it returns, so it waits for the socket's real close, which [`Closed`]
//! reports.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

/// How long shutdown waits for the socket to close once the task has let go of it. A
/// send takes microseconds (or, on a full send buffer, until it drains); the bound only
/// keeps a holder that never lets go (a bug) from hanging shutdown.
pub(crate) const CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// The gossip port's UDP socket, as the task and the QUIC endpoint share it.
#[derive(Debug)]
pub(crate) struct GossipSocket {
    // Fields drop in the order they are declared: the socket is closed before `_closed`
    // drops and tells the waiter, so the port is free by the time it hears.
    socket: UdpSocket,
    _closed: oneshot::Sender<()>,
}

/// Resolves once the [`GossipSocket`] is closed, whoever held it last.
#[derive(Debug)]
pub(crate) struct Closed(oneshot::Receiver<()>);

impl GossipSocket {
    pub fn new(socket: UdpSocket) -> (Arc<GossipSocket>, Closed) {
        let (tx, rx) = oneshot::channel();
        let socket = GossipSocket {
            socket,
            _closed: tx,
        };
        (Arc::new(socket), Closed(rx))
    }
}

impl Deref for GossipSocket {
    type Target = UdpSocket;

    fn deref(&self) -> &UdpSocket {
        &self.socket
    }
}

impl Closed {
    /// Waits until the socket is closed, for at most `limit`; false if it is still open.
    pub async fn wait(&mut self, limit: Duration) -> bool {
        // Nothing is ever sent: the sender dropping is the news.
        tokio::time::timeout(limit, &mut self.0).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A send under way elsewhere (a clone of the `Arc`, as quinn's upgrade makes) keeps
    /// the port bound after the owner lets go; the wait ends when that holder lets go
    /// too, and the port can be bound then.
    #[tokio::test(start_paused = true)]
    async fn closed_is_reported_when_the_last_holder_lets_go() {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let (owner, mut closed) = GossipSocket::new(udp);
        let (tx, rx) = oneshot::channel::<()>();
        let sender = owner.clone();
        let other = tokio::spawn(async move {
            let _ = rx.await;
            drop(sender);
        });
        drop(owner);
        // Paused time: waiting a whole minute costs nothing real.
        assert!(
            !closed.wait(Duration::from_secs(60)).await,
            "reported closed while still held"
        );
        assert!(
            UdpSocket::bind(addr).await.is_err(),
            "the port is still bound"
        );
        tx.send(()).unwrap();
        assert!(closed.wait(Duration::from_secs(60)).await);
        other.await.unwrap();
        UdpSocket::bind(addr)
            .await
            .expect("the port is free once closed");
    }
}
