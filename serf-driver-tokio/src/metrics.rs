//! What the driver itself drops or sheds, counted. The core's own counters are in
//! [`serf_proto::Metrics`] and [`serf_proto::serf::SerfMetrics`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of the driver, shared between its tasks.
#[derive(Debug, Default)]
pub struct DriverMetrics {
    /// Datagrams received from the UDP socket.
    pub datagrams_received: AtomicU64,
    /// Datagrams sent.
    pub datagrams_sent: AtomicU64,
    /// Datagrams dropped because the socket's send buffer was full, or the send failed.
    pub datagrams_send_dropped: AtomicU64,
    /// Events the application did not take in time: the event queue was full, so the
    /// newest were dropped (the protocol never waits for the application).
    pub events_dropped: AtomicU64,
    /// Inbound TCP connections accepted and handed to the core.
    pub streams_accepted: AtomicU64,
    /// Inbound TCP connections the core refused (too many at once, or shutting down).
    pub streams_refused: AtomicU64,
    /// Outbound connects that failed or timed out.
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
        }
    }
}
