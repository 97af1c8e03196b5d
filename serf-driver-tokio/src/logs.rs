//! The core's log records (see [`serf_proto::log`]) on their way out: to `tracing`, for
//! the application's logger, and to every [`LogStream`] (an agent's `serf monitor`).

use serf_proto::log::{Level, LogRecord};
use tokio::sync::broadcast;

/// Records buffered per [`LogStream`] before the oldest are skipped (HashiCorp's log
/// stream buffers 512 lines).
pub const LOG_STREAM_CAPACITY: usize = 512;

/// Emits `record` as a `tracing` event (target `serf::memberlist` or `serf::serf`) and
/// hands it to the log streams.
pub(crate) fn route(streams: &broadcast::Sender<LogRecord>, record: LogRecord) {
    let target = record.target();
    let message = &record.message;
    // `tracing` needs each level and target at its call site.
    macro_rules! emit {
        ($level:expr) => {
            if target == "memberlist" {
                tracing::event!(target: "serf::memberlist", $level, "{message}")
            } else {
                tracing::event!(target: "serf::serf", $level, "{message}")
            }
        };
    }
    match record.level {
        Level::Trace => emit!(tracing::Level::TRACE),
        Level::Debug => emit!(tracing::Level::DEBUG),
        Level::Info => emit!(tracing::Level::INFO),
        Level::Warn => emit!(tracing::Level::WARN),
        Level::Error => emit!(tracing::Level::ERROR),
    }
    // No stream listening is the common case; sending then costs nothing.
    if streams.receiver_count() > 0 {
        let _ = streams.send(record);
    }
}

/// The node's log records as they happen, from [`crate::SerfHandle::logs`].
///
/// A reader that falls more than [`LOG_STREAM_CAPACITY`] records behind skips the oldest
/// ones and is told how many in [`LogStream::missed`]; it never slows the node.
#[derive(Debug)]
pub struct LogStream {
    pub(crate) rx: broadcast::Receiver<LogRecord>,
    pub(crate) missed: u64,
}

impl LogStream {
    /// The next record, or `None` once the node has stopped.
    pub async fn recv(&mut self) -> Option<LogRecord> {
        loop {
            match self.rx.recv().await {
                Ok(r) => return Some(r),
                Err(broadcast::error::RecvError::Lagged(n)) => self.missed += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// How many records this stream skipped because its reader fell behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}
