//! Configuration of the memberlist layer, with the LAN, WAN and Local presets of Go
//! memberlist (`config.go`, `DefaultLANConfig` and friends).

use crate::log::Level;
use crate::transform::{Checksum, Compressor, Keyring};
use core::time::Duration;

/// Settings of the SWIM + Lifeguard layer. Start from [`Config::lan`], [`Config::wan`] or
/// [`Config::local`] and adjust; [`Config::validate`] refuses combinations that cannot work.
#[derive(Debug, Clone)]
pub struct Config {
    /// Time between probes of successive members. LAN 1 s, WAN 5 s, Local 1 s.
    pub probe_interval: Duration,
    /// How long to wait for a direct ack before asking others to probe. Must be shorter than
    /// `probe_interval` (memberlist #149). LAN 500 ms, WAN 3 s, Local 200 ms. Not scaled by
    /// awareness: waiting longer does not help a UDP packet arrive.
    pub probe_timeout: Duration,
    /// How many members are asked to probe indirectly after a missed ack. LAN 3, Local 1.
    pub indirect_checks: usize,
    /// Broadcasts are sent `retransmit_mult * ceil(log10(n + 1))` times. LAN 4, Local 2.
    pub retransmit_mult: u32,
    /// Scales the suspicion timeout: the minimum is
    /// `suspicion_mult * max(1, log10(n)) * probe_interval`. LAN 4, WAN 6, Local 3.
    pub suspicion_mult: u32,
    /// The suspicion timeout starts at this multiple of the minimum and shrinks with each
    /// independent confirmation (Lifeguard). 6 in every preset.
    pub suspicion_max_timeout_mult: u32,
    /// Base period of full state exchange with a random member; scaled up with cluster size
    /// above 32 members. Zero disables periodic push-pull. LAN 30 s, WAN 60 s, Local 15 s.
    pub push_pull_interval: Duration,
    /// Deadline of a stream (push-pull, stream ping, large message). LAN 10 s, WAN 30 s,
    /// Local 1 s.
    pub stream_timeout: Duration,
    /// Do not fall back to a ping over a stream when UDP probes fail.
    pub disable_stream_pings: bool,
    /// Local health (awareness) can stretch probe windows up to this factor. 8.
    pub awareness_max_multiplier: u32,
    /// Members gossiped to per gossip round. LAN 3, WAN 4.
    pub gossip_nodes: usize,
    /// Time between gossip rounds. LAN 200 ms, WAN 500 ms, Local 100 ms.
    pub gossip_interval: Duration,
    /// A broadcast of the layer above (Serf's join and leave intents, user events,
    /// queries) queued here, ours or news heard for the first time, starts a gossip
    /// round at once instead of waiting for the next tick, as long as the last round is
    /// at least this long ago; otherwise the round starts when it is. News then crosses
    /// each hop in a network round trip, not in half a gossip interval on average: in
    /// the simulator's user-event storm (100 nodes, 20 events/s) p50 0.32 s becomes
    /// 0.07 s for 2% more bytes (smaller batches, more headers). Each message is still
    /// sent `retransmit_mult * ceil(log10(n + 1))` times and an idle cluster's traffic
    /// is unchanged; the gap bounds the extra rounds during a storm. Of the membership
    /// messages, deaths, leaves and refutations are eager too; alive messages and
    /// suspicions keep the ticker's pace (sent sooner, an alive message also retires
    /// sooner, and in a join storm of 1,000 nodes newcomers not yet known to its senders
    /// missed it: convergence up to 176 s instead of 5 s). An idle node also stops
    /// waking for empty gossip ticks. A quarter of `gossip_interval` by default; `None`
    /// gives Go's behaviour (every broadcast waits for the ticker).
    pub eager_gossip: Option<Duration>,
    /// Dead members keep receiving gossip this long, so a wrongly declared node learns it
    /// and refutes; afterwards they are forgotten. LAN 30 s, WAN 60 s, Local 15 s.
    pub gossip_to_the_dead_time: Duration,
    /// A dead member's name may be taken by a new address after this long. `None` means
    /// only after the member left (Go's default of 0).
    pub dead_node_reclaim_time: Option<Duration>,
    /// Largest datagram sent, transforms included. 1400 bytes fits common MTUs.
    pub packet_size: usize,
    /// Largest node metadata (Serf tags), in bytes. 512 as in Go by default, but
    /// configurable (memberlist #191).
    pub max_meta_size: usize,
    /// The cluster label: packets and streams with another label are refused.
    pub label: String,
    /// Accept unlabeled traffic as if labeled (to introduce a label without downtime).
    pub skip_inbound_label_check: bool,
    /// The checksum added to unencrypted packets and frames (encrypted ones are
    /// authenticated by the cipher); `None` for none. Each algorithm is a cargo feature.
    /// Receivers read whatever the packet's header names, so this may differ across the
    /// cluster as long as every node has the features. Default: [`Checksum::preferred`],
    /// the best-measured one compiled in (see the README's transform table).
    pub checksum: Option<Checksum>,
    /// The compressor of packets and frames, used only when it makes them smaller; `None`
    /// for none. Each algorithm is a cargo feature; receivers read whatever the header
    /// names. Default: [`Compressor::preferred`], the best-measured one compiled in.
    pub compression: Option<Compressor>,
    /// Encryption keys (feature `encryption`). `None` sends plaintext.
    pub keyring: Option<Keyring>,
    /// Encrypt outgoing traffic when a keyring is set (Go's `GossipVerifyOutgoing`).
    pub encrypt_outgoing: bool,
    /// Refuse plaintext when a keyring is set (Go's `GossipVerifyIncoming`).
    pub require_encrypted_incoming: bool,
    /// Most members kept; alive messages about further new members are dropped and counted.
    pub max_members: usize,
    /// Largest stream frame accepted or sent (push-pull state, large messages).
    pub max_stream_frame: usize,
    /// Most inbound streams open at once (Go allows 128 concurrent push-pulls).
    pub max_inbound_streams: usize,
    /// Most broadcasts queued per queue; beyond it the most-sent are dropped and counted.
    pub max_queue_depth: usize,
    /// Share of each packet's free space (percent) reserved for the layer above's
    /// broadcasts while any are queued (and always room for the next one), so membership
    /// gossip cannot starve user events and queries (memberlist #299). 0 gives Go's
    /// behaviour: membership first, the layer above gets what is left.
    pub user_broadcast_share: u8,
    /// How long a graceful leave waits for its broadcast to go out.
    pub leave_timeout: Duration,
    /// The layer above's protocol versions: `[min, max, current]`.
    pub delegate_versions: [u8; 3],
    /// The Lifeguard extensions: local health (awareness) scaling the probe window, nacks
    /// from indirect probes, suspicion timeouts that start long and shrink with independent
    /// confirmations, and the buddy system. On by default; off gives SWIM as memberlist
    /// ran it before Lifeguard (a fixed suspicion timeout at the formula's minimum), for
    /// comparison in simulations.
    pub lifeguard: bool,
    /// The least important [`LogRecord`](crate::log::LogRecord) kept for `poll_log`;
    /// `None` records nothing. Default [`Level::Info`], HashiCorp's default log level.
    /// Changed at run time with `set_log_level`.
    pub log_level: Option<Level>,
}

impl Default for Config {
    fn default() -> Self {
        Config::lan()
    }
}

impl Config {
    /// Go memberlist's `DefaultLANConfig`: tuned for a local network.
    pub fn lan() -> Config {
        Config {
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            indirect_checks: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            push_pull_interval: Duration::from_secs(30),
            stream_timeout: Duration::from_secs(10),
            disable_stream_pings: false,
            awareness_max_multiplier: 8,
            gossip_nodes: 3,
            gossip_interval: Duration::from_millis(200),
            eager_gossip: Some(Duration::from_millis(50)),
            gossip_to_the_dead_time: Duration::from_secs(30),
            dead_node_reclaim_time: None,
            packet_size: 1400,
            max_meta_size: 512,
            label: String::new(),
            skip_inbound_label_check: false,
            checksum: Checksum::preferred(),
            compression: Compressor::preferred(),
            keyring: None,
            encrypt_outgoing: true,
            require_encrypted_incoming: true,
            max_members: 1 << 20,
            max_stream_frame: 16 << 20,
            max_inbound_streams: 128,
            max_queue_depth: 4096,
            user_broadcast_share: 50,
            leave_timeout: Duration::from_secs(5),
            delegate_versions: [0, 0, 0],
            lifeguard: true,
            log_level: Some(Level::Info),
        }
    }

    /// Go memberlist's `DefaultWANConfig`: slower timings for wide-area links.
    pub fn wan() -> Config {
        Config {
            stream_timeout: Duration::from_secs(30),
            suspicion_mult: 6,
            push_pull_interval: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(3),
            probe_interval: Duration::from_secs(5),
            gossip_nodes: 4,
            gossip_interval: Duration::from_millis(500),
            eager_gossip: Some(Duration::from_millis(125)),
            gossip_to_the_dead_time: Duration::from_secs(60),
            ..Config::lan()
        }
    }

    /// Go memberlist's `DefaultLocalConfig`: fast timings for a single host or loopback.
    pub fn local() -> Config {
        Config {
            stream_timeout: Duration::from_secs(1),
            indirect_checks: 1,
            retransmit_mult: 2,
            suspicion_mult: 3,
            push_pull_interval: Duration::from_secs(15),
            probe_timeout: Duration::from_millis(200),
            probe_interval: Duration::from_secs(1),
            gossip_interval: Duration::from_millis(100),
            eager_gossip: Some(Duration::from_millis(25)),
            gossip_to_the_dead_time: Duration::from_secs(15),
            ..Config::lan()
        }
    }

    /// Checks that the settings can work together. The message says what to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("probe_interval", self.probe_interval),
            ("probe_timeout", self.probe_timeout),
            ("gossip_interval", self.gossip_interval),
            ("stream_timeout", self.stream_timeout),
        ];
        for (name, d) in positive {
            if d.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        // Periodic tasks shorter than this would keep a driver's CPU busy for nothing.
        for (name, d) in [
            ("probe_interval", self.probe_interval),
            ("gossip_interval", self.gossip_interval),
            ("eager_gossip", self.eager_gossip.unwrap_or(MIN_PERIOD)),
        ] {
            if d < MIN_PERIOD {
                return Err(ConfigError::TooShort(name, d));
            }
        }
        if self.probe_timeout >= self.probe_interval {
            return Err(ConfigError::ProbeTimeoutNotBelowInterval {
                timeout: self.probe_timeout,
                interval: self.probe_interval,
            });
        }
        let nonzero = [
            ("retransmit_mult", self.retransmit_mult),
            ("suspicion_mult", self.suspicion_mult),
            (
                "suspicion_max_timeout_mult",
                self.suspicion_max_timeout_mult,
            ),
            ("awareness_max_multiplier", self.awareness_max_multiplier),
        ];
        for (name, v) in nonzero {
            if v == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.gossip_nodes == 0 {
            return Err(ConfigError::Zero("gossip_nodes"));
        }
        if self.max_members < 2 {
            return Err(ConfigError::Zero("max_members"));
        }
        if !(MIN_PACKET_SIZE..=MAX_PACKET_SIZE).contains(&self.packet_size) {
            return Err(ConfigError::PacketSize(self.packet_size));
        }
        if self.label.len() > crate::transform::label::MAX_LABEL_LEN {
            return Err(ConfigError::LabelTooLong(self.label.len()));
        }
        // A full alive message must fit in one packet next to the framing and transforms.
        let alive_budget = self.packet_size.saturating_sub(
            crate::transform::label::header_len(self.label.len()) + ALIVE_FIXED_OVERHEAD,
        );
        if self.max_meta_size > alive_budget {
            return Err(ConfigError::MetaTooLarge {
                max_meta_size: self.max_meta_size,
                fits: alive_budget,
            });
        }
        if self.max_stream_frame < self.packet_size {
            return Err(ConfigError::StreamFrameTooSmall(self.max_stream_frame));
        }
        if self.user_broadcast_share > 100 {
            return Err(ConfigError::Share(self.user_broadcast_share));
        }
        if let Some(c) = self.checksum.filter(|c| !c.is_available()) {
            return Err(ConfigError::FeatureDisabled(c.feature(), "checksum"));
        }
        if let Some(c) = self.compression.filter(|c| !c.is_available()) {
            return Err(ConfigError::FeatureDisabled(c.feature(), "compression"));
        }
        if self.keyring.is_some() && !cfg!(feature = "encryption") {
            return Err(ConfigError::FeatureDisabled("encryption", "keyring"));
        }
        Ok(())
    }
}

/// Smallest `packet_size` accepted: room for an alive message with some metadata.
pub const MIN_PACKET_SIZE: usize = 576;
/// Largest `packet_size` accepted: the largest UDP payload over IPv4.
pub const MAX_PACKET_SIZE: usize = 65_507;
/// Bytes of an alive message besides its metadata, with a maximal name and an IPv6 address,
/// plus encryption overhead.
/// The shortest interval a periodic task (probe, gossip, reap, reconnect, ...) may have.
pub const MIN_PERIOD: Duration = Duration::from_millis(1);

const ALIVE_FIXED_OVERHEAD: usize = 2 + 3 + 6 + 3 + crate::name::MAX_NAME_LEN + 20 + 3 + 9 + 40;

/// A configuration that cannot work. Nothing was constructed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A duration or count that must be positive is zero.
    #[error("`{0}` must be greater than zero")]
    Zero(&'static str),
    /// A periodic task's interval is below [`MIN_PERIOD`].
    #[error("`{0}` is {1:?}; a periodic task runs at most every millisecond")]
    TooShort(&'static str, Duration),
    /// The probe timeout must leave time for indirect probes within the probe interval
    /// (memberlist #149).
    #[error(
        "probe_timeout ({timeout:?}) must be shorter than probe_interval ({interval:?}); \
         otherwise indirect and stream probes never get time to run"
    )]
    ProbeTimeoutNotBelowInterval {
        /// The configured probe timeout.
        timeout: Duration,
        /// The configured probe interval.
        interval: Duration,
    },
    /// The packet size is outside the usable range.
    #[error("packet_size {0} is outside {MIN_PACKET_SIZE}..={MAX_PACKET_SIZE} bytes")]
    PacketSize(usize),
    /// Labels are at most 255 bytes.
    #[error("label is {0} bytes; the limit is 255")]
    LabelTooLong(usize),
    /// The metadata limit would not fit in a packet.
    #[error(
        "max_meta_size {max_meta_size} does not fit in one packet (at most {fits} bytes); \
         raise packet_size or lower max_meta_size"
    )]
    MetaTooLarge {
        /// The configured limit.
        max_meta_size: usize,
        /// The most that fits.
        fits: usize,
    },
    /// Stream frames must be able to carry at least a packet.
    #[error("max_stream_frame {0} is smaller than packet_size")]
    StreamFrameTooSmall(usize),
    /// A percentage above 100.
    #[error("user_broadcast_share is {0}%; it must be between 0 and 100")]
    Share(u8),
    /// A setting needs a cargo feature that is not compiled in.
    #[error("`{1}` needs the `{0}` cargo feature of serf-proto")]
    FeatureDisabled(&'static str, &'static str),
    /// The node name is not valid.
    #[error("invalid node name: {0}")]
    Name(#[from] crate::name::NameError),
    /// The metadata is larger than `max_meta_size`.
    #[error("metadata is {0} bytes; the limit is max_meta_size = {1}")]
    MetaSize(usize, usize),
    /// Another invalid setting; the message says which and why.
    #[error("{0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_go_defaults_and_validate() {
        for c in [Config::lan(), Config::wan(), Config::local()] {
            c.validate().unwrap();
        }
        let wan = Config::wan();
        assert_eq!(wan.probe_interval, Duration::from_secs(5));
        assert_eq!(wan.suspicion_mult, 6);
        let local = Config::local();
        assert_eq!(local.indirect_checks, 1);
        assert_eq!(local.retransmit_mult, 2);
    }

    #[test]
    fn probe_timeout_must_be_below_interval() {
        let c = Config {
            probe_timeout: Duration::from_secs(2),
            ..Config::lan()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::ProbeTimeoutNotBelowInterval { .. })
        ));
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.contains("shorter than probe_interval"), "{msg}");
    }

    #[test]
    fn nonsense_is_refused() {
        let bad = [
            Config {
                gossip_nodes: 0,
                ..Config::lan()
            },
            Config {
                packet_size: 100,
                ..Config::lan()
            },
            Config {
                max_meta_size: 2000,
                ..Config::lan()
            },
            Config {
                label: "x".repeat(300),
                ..Config::lan()
            },
            Config {
                user_broadcast_share: 101,
                ..Config::lan()
            },
            Config {
                gossip_interval: Duration::from_nanos(1),
                ..Config::lan()
            },
            Config {
                probe_interval: Duration::from_micros(999),
                probe_timeout: Duration::from_micros(500),
                ..Config::lan()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
        // A larger metadata limit is fine when the packet has room (memberlist #191).
        Config {
            max_meta_size: 4096,
            packet_size: 9000,
            ..Config::lan()
        }
        .validate()
        .unwrap();
    }
}
