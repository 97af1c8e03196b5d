//! What the driver itself drops or sheds, counted. The core's own counters are in
//! [`serf_proto::Metrics`] and [`serf_proto::serf::SerfMetrics`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of the driver, shared between its tasks.
#[derive(Debug, Default)]
pub struct DriverMetrics {
    /// Datagrams received from the UDP socket (with QUIC streams, QUIC's packets too).
    pub datagrams_received: AtomicU64,
    /// Datagrams sent.
    pub datagrams_sent: AtomicU64,
    /// Datagrams dropped because the socket's send buffer was full, or the send failed.
    pub datagrams_send_dropped: AtomicU64,
    /// Events the application did not take in time: the event queue was full, so the
    /// newest were dropped (the protocol never waits for the application).
    pub events_dropped: AtomicU64,
    /// Inbound streams handed to the core: TCP connections, or TLS and QUIC ones once
    /// their handshake succeeded.
    pub streams_accepted: AtomicU64,
    /// Inbound streams the core refused (too many at once, or shutting down).
    pub streams_refused: AtomicU64,
    /// Outbound streams that could not be set up: the connect (or the TLS or QUIC
    /// handshake) failed or passed the core's deadline.
    pub connects_failed: AtomicU64,
    /// Connections dropped because the peer announced a frame above the limit.
    pub frames_too_long: AtomicU64,
    /// Frames read from streams.
    pub frames_received: AtomicU64,
    /// Frames that had to wait for the global budget of bytes in flight.
    pub frames_waited_for_budget: AtomicU64,
    /// Streams failed because their write queue was full (a peer not reading).
    pub stream_write_queue_full: AtomicU64,
    /// Streams whose writes failed (reset, broken pipe).
    pub stream_write_errors: AtomicU64,
    /// Streams opened over TLS or QUIC whose handshake succeeded (the peer's certificate
    /// checked).
    pub secure_streams_opened: AtomicU64,
    /// Inbound TLS or QUIC streams whose handshake succeeded and that the core took.
    pub secure_streams_accepted: AtomicU64,
    /// TLS or QUIC handshakes that failed, either way: a certificate of another CA, one that
    /// does not name the expected node, a non-TLS peer, a timeout. The latest reason is in
    /// [`DriverMetrics::last_handshake_failure`].
    pub handshakes_failed: AtomicU64,
    /// Inbound TLS or QUIC handshakes refused because as many as the core's
    /// `max_inbound_streams` were already under way.
    pub handshakes_refused: AtomicU64,
    /// QUIC datagrams dropped because the QUIC endpoint had not taken the earlier ones
    /// (its queue was full; QUIC retransmits), or because they were longer than any the
    /// endpoint reads (about 1.5 KB: junk).
    pub quic_datagrams_dropped: AtomicU64,
    /// Times the node's task woke (an input, a command or a deadline): an idle node wakes
    /// a few times per gossip interval; far more means a flood, or a bug.
    pub task_wakeups: AtomicU64,
    /// Connections the node holds for its streams now (a gauge, not a counter): each
    /// push-pull, fallback ping or large message holds one until both sides are done,
    /// seconds at most; it falls back to zero when streams stop.
    pub connections: AtomicU64,
    /// Times accepting a TCP connection failed, most often for want of file descriptors
    /// (raise the process's limit, `ulimit -n`). Accepting then rests a while (10 ms,
    /// doubling up to a second) rather than retry at once; connections wait in the
    /// kernel's backlog meanwhile.
    pub accept_errors: AtomicU64,
    /// Where and why the latest handshake failed.
    last_handshake_failure: Mutex<Option<String>>,
}

/// A copy of [`DriverMetrics`] at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// See [`DriverMetrics::datagrams_received`].
    pub datagrams_received: u64,
    /// See [`DriverMetrics::datagrams_sent`].
    pub datagrams_sent: u64,
    /// See [`DriverMetrics::datagrams_send_dropped`].
    pub datagrams_send_dropped: u64,
    /// See [`DriverMetrics::events_dropped`].
    pub events_dropped: u64,
    /// See [`DriverMetrics::streams_accepted`].
    pub streams_accepted: u64,
    /// See [`DriverMetrics::streams_refused`].
    pub streams_refused: u64,
    /// See [`DriverMetrics::connects_failed`].
    pub connects_failed: u64,
    /// See [`DriverMetrics::frames_too_long`].
    pub frames_too_long: u64,
    /// See [`DriverMetrics::frames_received`].
    pub frames_received: u64,
    /// See [`DriverMetrics::frames_waited_for_budget`].
    pub frames_waited_for_budget: u64,
    /// See [`DriverMetrics::stream_write_queue_full`].
    pub stream_write_queue_full: u64,
    /// See [`DriverMetrics::stream_write_errors`].
    pub stream_write_errors: u64,
    /// See [`DriverMetrics::secure_streams_opened`].
    pub secure_streams_opened: u64,
    /// See [`DriverMetrics::secure_streams_accepted`].
    pub secure_streams_accepted: u64,
    /// See [`DriverMetrics::handshakes_failed`].
    pub handshakes_failed: u64,
    /// See [`DriverMetrics::handshakes_refused`].
    pub handshakes_refused: u64,
    /// See [`DriverMetrics::quic_datagrams_dropped`].
    pub quic_datagrams_dropped: u64,
    /// See [`DriverMetrics::task_wakeups`].
    pub task_wakeups: u64,
    /// See [`DriverMetrics::connections`].
    pub connections: u64,
    /// See [`DriverMetrics::accept_errors`].
    pub accept_errors: u64,
}

impl DriverMetrics {
    /// Reads every counter.
    pub fn snapshot(&self) -> DriverStats {
        DriverStats {
            datagrams_received: self.datagrams_received.load(Relaxed),
            datagrams_sent: self.datagrams_sent.load(Relaxed),
            datagrams_send_dropped: self.datagrams_send_dropped.load(Relaxed),
            events_dropped: self.events_dropped.load(Relaxed),
            streams_accepted: self.streams_accepted.load(Relaxed),
            streams_refused: self.streams_refused.load(Relaxed),
            connects_failed: self.connects_failed.load(Relaxed),
            frames_too_long: self.frames_too_long.load(Relaxed),
            frames_received: self.frames_received.load(Relaxed),
            frames_waited_for_budget: self.frames_waited_for_budget.load(Relaxed),
            stream_write_queue_full: self.stream_write_queue_full.load(Relaxed),
            stream_write_errors: self.stream_write_errors.load(Relaxed),
            secure_streams_opened: self.secure_streams_opened.load(Relaxed),
            secure_streams_accepted: self.secure_streams_accepted.load(Relaxed),
            handshakes_failed: self.handshakes_failed.load(Relaxed),
            handshakes_refused: self.handshakes_refused.load(Relaxed),
            quic_datagrams_dropped: self.quic_datagrams_dropped.load(Relaxed),
            task_wakeups: self.task_wakeups.load(Relaxed),
            connections: self.connections.load(Relaxed),
            accept_errors: self.accept_errors.load(Relaxed),
        }
    }

    /// Where and why the latest TLS or QUIC handshake failed (`"127.0.0.1:7946: invalid
    /// peer certificate: UnknownIssuer"`), for an operator asking why a node cannot
    /// join; `None` if none failed.
    pub fn last_handshake_failure(&self) -> Option<String> {
        self.last_handshake_failure
            .lock()
            .map_or(None, |last| last.clone())
    }

    /// Counts a failed handshake with `peer` and keeps its reason.
    #[cfg_attr(not(any(feature = "tls", feature = "quic")), allow(dead_code))]
    pub(crate) fn handshake_failed(
        &self,
        peer: std::net::SocketAddr,
        reason: &dyn std::fmt::Display,
    ) {
        self.handshakes_failed.fetch_add(1, Relaxed);
        if let Ok(mut last) = self.last_handshake_failure.lock() {
            *last = Some(format!("{peer}: {reason}"));
        }
    }
}
