//! Configuration of the Serf layer, with Go serf's defaults (`serf/config.go`).

use super::coordinate::CoordinateConfig;
use super::member::{Member, Tags};
use crate::memberlist;
use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;
use std::sync::Arc;

/// The hard cap on a user event's size (name plus payload), in bytes (Go's
/// `UserEventSizeLimit`).
pub const USER_EVENT_SIZE_HARD_LIMIT: usize = 9 * 1024;

/// The largest query or query response, encoded, that any node sends or accepts (Go has
/// none; 64 KiB keeps what one peer can make the cluster carry bounded).
pub const QUERY_SIZE_HARD_LIMIT: usize = 64 * 1024;

/// Decides whether to accept the members of a cluster we join or that joins us, and every
/// alive message about a new member (Go's `MergeDelegate`). Return an error to refuse.
#[derive(Clone)]
pub struct MergeCheck(pub(crate) Arc<MergeFn>);

type MergeFn = dyn Fn(&[Member]) -> Result<(), String> + Send + Sync;

impl MergeCheck {
    /// A check from a function.
    pub fn new(f: impl Fn(&[Member]) -> Result<(), String> + Send + Sync + 'static) -> Self {
        MergeCheck(Arc::new(f))
    }
}

impl fmt::Debug for MergeCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MergeCheck(..)")
    }
}

/// Overrides the reconnect timeout (how long a failed member is kept and retried) per
/// member (Go's `ReconnectTimeoutOverrider`). `None` keeps the default.
#[derive(Clone)]
pub struct ReconnectTimeoutOverride(pub(crate) Arc<OverrideFn>);

type OverrideFn = dyn Fn(&Member) -> Option<Duration> + Send + Sync;

impl ReconnectTimeoutOverride {
    /// An override from a function.
    pub fn new(f: impl Fn(&Member) -> Option<Duration> + Send + Sync + 'static) -> Self {
        ReconnectTimeoutOverride(Arc::new(f))
    }
}

impl fmt::Debug for ReconnectTimeoutOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReconnectTimeoutOverride(..)")
    }
}

/// Settings of the Serf layer. [`Config::default`] has Go serf's defaults on top of the
/// memberlist LAN preset.
#[derive(Debug, Clone)]
pub struct Config {
    /// The memberlist layer's settings.
    pub memberlist: memberlist::Config,
    /// This node's tags at start.
    pub tags: Tags,
    /// How long a graceful leave waits for its intent to be broadcast. 5 s.
    pub broadcast_timeout: Duration,
    /// After leaving, keep answering probes this long so peers hear the leave before they
    /// would suspect us. 1 s.
    pub leave_propagate_delay: Duration,
    /// Member events are coalesced over this period (0 disables). Off in the library, 3 s
    /// in the agent.
    pub coalesce_period: Duration,
    /// ... or flushed after this long without a new one. Off in the library, 1 s in the
    /// agent.
    pub quiescent_period: Duration,
    /// User events with the coalesce flag are coalesced over this period (0 disables).
    pub user_coalesce_period: Duration,
    /// ... or flushed after this long without a new one.
    pub user_quiescent_period: Duration,
    /// How often failed and left members are reaped. 15 s.
    pub reap_interval: Duration,
    /// How often to try reconnecting to failed members and the permanent seeds. 30 s.
    pub reconnect_interval: Duration,
    /// How long failed members are kept (and retried) before being reaped. 24 h.
    pub reconnect_timeout: Duration,
    /// How long left members are kept as tombstones. 24 h.
    pub tombstone_timeout: Duration,
    /// A failed member coming back within this time counts as a flap. 60 s.
    pub flap_timeout: Duration,
    /// How often queue depths are checked against the limits. 30 s.
    pub queue_check_interval: Duration,
    /// The most broadcasts kept per queue. 4096.
    pub max_queue_depth: usize,
    /// If positive, the queue limit is `max(min_queue_depth, 2 * members)` instead.
    pub min_queue_depth: usize,
    /// Intents about members not yet known are kept this long. 5 min.
    pub recent_intent_timeout: Duration,
    /// Lamport window of user-event deduplication, in slots. 512.
    pub event_buffer: usize,
    /// Lamport window of query deduplication, in slots. 512.
    pub query_buffer: usize,
    /// Default query timeout is `gossip_interval * query_timeout_mult * ceil(log10(n + 1))`.
    /// 16.
    pub query_timeout_mult: u32,
    /// Largest query response, in bytes. 1024 as in Go; larger responses are fine (they
    /// travel over a stream, serf #267) up to the stream frame limit.
    pub query_response_size_limit: usize,
    /// Largest encoded query, in bytes. 1024.
    pub query_size_limit: usize,
    /// Largest user event (name plus payload), in bytes. 512; at most 9216. Events larger
    /// than a packet are disseminated over streams.
    pub user_event_size_limit: usize,
    /// After a leave recorded in the snapshot, rejoin the previous members on restart.
    pub rejoin_after_leave: bool,
    /// Resolve a name claimed by two nodes with a vote (`_serf_conflict`); the loser
    /// shuts down. On.
    pub enable_name_conflict_resolution: bool,
    /// Do not compute network coordinates.
    pub disable_coordinates: bool,
    /// Refuse node names outside `[A-Za-z0-9.-]` or longer than 128 bytes.
    pub validate_node_names: bool,
    /// Permanent seeds: retried every `reconnect_interval` for ever while not members, so
    /// a node or a whole partition cut off for longer than every timeout rejoins by itself
    /// (memberlist #222).
    pub seeds: Vec<SocketAddr>,
    /// Accept or refuse merges and new members.
    pub merge_check: Option<MergeCheck>,
    /// Per-member reconnect timeout.
    pub reconnect_timeout_override: Option<ReconnectTimeoutOverride>,
    /// Vivaldi parameters.
    pub coordinates: CoordinateConfig,
    /// Keep [`super::Record`]s for a snapshot file, drained with
    /// [`super::Serf::poll_persist`] (Go's `SnapshotPath` being set). Off, none are kept.
    pub snapshot: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            memberlist: memberlist::Config::lan(),
            tags: Tags::new(),
            broadcast_timeout: Duration::from_secs(5),
            leave_propagate_delay: Duration::from_secs(1),
            coalesce_period: Duration::ZERO,
            quiescent_period: Duration::ZERO,
            user_coalesce_period: Duration::ZERO,
            user_quiescent_period: Duration::ZERO,
            reap_interval: Duration::from_secs(15),
            reconnect_interval: Duration::from_secs(30),
            reconnect_timeout: Duration::from_secs(24 * 3600),
            tombstone_timeout: Duration::from_secs(24 * 3600),
            flap_timeout: Duration::from_secs(60),
            queue_check_interval: Duration::from_secs(30),
            max_queue_depth: 4096,
            min_queue_depth: 0,
            recent_intent_timeout: Duration::from_secs(300),
            event_buffer: 512,
            query_buffer: 512,
            query_timeout_mult: 16,
            query_response_size_limit: 1024,
            query_size_limit: 1024,
            user_event_size_limit: 512,
            rejoin_after_leave: false,
            enable_name_conflict_resolution: true,
            disable_coordinates: false,
            validate_node_names: false,
            seeds: Vec::new(),
            merge_check: None,
            reconnect_timeout_override: None,
            coordinates: CoordinateConfig::default(),
            snapshot: false,
        }
    }
}

impl Config {
    /// The LAN profile (the default).
    pub fn lan() -> Config {
        Config::default()
    }

    /// The WAN profile: memberlist's WAN timings.
    pub fn wan() -> Config {
        Config {
            memberlist: memberlist::Config::wan(),
            ..Config::default()
        }
    }

    /// The Local profile: memberlist's loopback timings.
    pub fn local() -> Config {
        Config {
            memberlist: memberlist::Config::local(),
            ..Config::default()
        }
    }

    /// Checks the settings; the message says what to change.
    pub fn validate(&self) -> Result<(), memberlist::ConfigError> {
        use memberlist::ConfigError as E;
        self.memberlist.validate()?;
        if self.user_event_size_limit > USER_EVENT_SIZE_HARD_LIMIT {
            return Err(E::Invalid(format!(
                "user_event_size_limit is {}; the hard limit is {USER_EVENT_SIZE_HARD_LIMIT}",
                self.user_event_size_limit
            )));
        }
        for (name, v) in [
            ("event_buffer", self.event_buffer),
            ("query_buffer", self.query_buffer),
            ("max_queue_depth", self.max_queue_depth),
        ] {
            if v == 0 {
                return Err(E::Zero(name));
            }
        }
        for (name, d) in [
            ("reap_interval", self.reap_interval),
            ("reconnect_interval", self.reconnect_interval),
            ("queue_check_interval", self.queue_check_interval),
            ("broadcast_timeout", self.broadcast_timeout),
        ] {
            if d.is_zero() {
                return Err(E::Zero(name));
            }
            if d < memberlist::MIN_PERIOD && name != "broadcast_timeout" {
                return Err(E::TooShort(name, d));
            }
        }
        if self.query_timeout_mult == 0 {
            return Err(E::Zero("query_timeout_mult"));
        }
        let frame = self.memberlist.max_stream_frame;
        for (name, v) in [
            ("query_response_size_limit", self.query_response_size_limit),
            ("query_size_limit", self.query_size_limit),
        ] {
            if v > QUERY_SIZE_HARD_LIMIT {
                return Err(E::Invalid(format!(
                    "{name} is {v}; the hard limit is {QUERY_SIZE_HARD_LIMIT}"
                )));
            }
            if v > frame {
                return Err(E::Invalid(format!(
                    "{name} ({v}) is larger than memberlist.max_stream_frame ({frame})"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_tasks_need_at_least_a_millisecond() {
        assert!(Config::default().validate().is_ok());
        for c in [
            Config {
                reap_interval: Duration::from_nanos(1),
                ..Config::default()
            },
            Config {
                reconnect_interval: Duration::from_micros(10),
                ..Config::default()
            },
        ] {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("at most every millisecond"), "{e}");
        }
    }
}
