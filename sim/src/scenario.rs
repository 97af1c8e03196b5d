//! Scenarios: what a run does, as a TOML file or built in Rust.
//!
//! Every key is documented in `sim/README.md`. A scenario names the cluster size, the
//! protocol profile and overrides, the network, a timeline of actions (faults and
//! workload), the expectations checked at the end and the invariants checked at every
//! step. A run is a pure function of the scenario and the seed.

use crate::duration;
use crate::network::{Burst, LinkOverride, LinkParams, StreamParams};
use core::time::Duration;
use serde::{Deserialize, Serialize};
use serf_proto::memberlist::Config;
use std::collections::BTreeMap;
use std::path::Path;

pub use crate::nodeset::{Bound, NodeSet};

/// A whole scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, shown in reports.
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Number of nodes (hosts). `--nodes` overrides it; node sets written in percent
    /// scale with it.
    pub nodes: usize,
    /// The default seed (`--seed` overrides it).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Simulated time to run.
    #[serde(with = "duration")]
    pub duration: Duration,
    /// Protocol layer the nodes run (`--layer` overrides it).
    #[serde(default)]
    pub layer: Layer,
    /// Protocol preset the overrides start from.
    #[serde(default)]
    pub profile: Profile,
    /// Protocol settings.
    #[serde(default)]
    pub config: ConfigOverrides,
    /// Serf-layer settings (ignored by the memberlist layer).
    #[serde(default)]
    pub serf: SerfOverrides,
    /// How the cluster forms.
    #[serde(default)]
    pub bootstrap: Bootstrap,
    /// The network.
    #[serde(default)]
    pub network: NetworkSpec,
    /// Named node sets, usable wherever a node set is expected.
    #[serde(default)]
    pub groups: BTreeMap<String, NodeSet>,
    /// The timeline.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// Checked at the end of the run; a failed expectation fails the run.
    #[serde(default)]
    pub expect: Vec<Expectation>,
    /// Checked at every step.
    #[serde(default)]
    pub invariants: Invariants,
    /// What is measured and how often.
    #[serde(default)]
    pub measure: MeasureSpec,
}

/// Most nodes in a scenario (addresses `10.0.0.1` on count up to 16 million; memory
/// runs out long before this).
pub const MAX_NODES: usize = 1_000_000;
/// Largest per-view incarnation table accepted (`[invariants] views`): 16 GiB.
const MAX_VIEW_TABLE: u64 = 16 << 30;
/// Largest user event or query payload (`[measure] event_size`).
pub const MAX_EVENT_SIZE: usize = 1 << 20;
/// Most user events or queries one action may send.
pub const MAX_SERIES: usize = 1_000_000;

fn default_seed() -> u64 {
    1
}

/// Which protocol layer the nodes run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// The memberlist layer alone (SWIM + Lifeguard); user events and queries are modelled
    /// as gossiped user messages.
    #[default]
    Memberlist,
    /// The full Serf layer: Lamport-ordered events, queries, reconnection, snapshots.
    Serf,
}

/// The protocol preset (memberlist `DefaultLANConfig` and friends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Local network.
    #[default]
    Lan,
    /// Wide area.
    Wan,
    /// Loopback.
    Local,
}

/// Overrides of the memberlist configuration. Unset fields keep the profile's value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // Each field is the memberlist `Config` field of the same name.
pub struct ConfigOverrides {
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub probe_interval: Option<Duration>,
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub probe_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indirect_checks: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retransmit_mult: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspicion_mult: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspicion_max_timeout_mult: Option<u32>,
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub push_pull_interval: Option<Duration>,
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub stream_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_stream_pings: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awareness_max_multiplier: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gossip_nodes: Option<usize>,
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub gossip_interval: Option<Duration>,
    /// `Config::eager_gossip`; `"0s"` turns it off (Go's behaviour: every broadcast
    /// waits for the next gossip tick).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub eager_gossip: Option<Duration>,
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub gossip_to_the_dead_time: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue_depth: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_broadcast_share: Option<u8>,
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub leave_timeout: Option<Duration>,
    /// `true` for the default compressor (`Compressor::preferred`), `false` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<bool>,
    /// `true` for the default checksum (`Checksum::preferred`), `false` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<bool>,
    /// Encrypt with a fixed test key (XChaCha20-Poly1305).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// serf-proto's `lifeguard` switch (`Config::lifeguard`). `false` turns every
    /// Lifeguard extension off: no local health multiplier (probe windows never
    /// stretch), a fixed suspicion timeout at the formula's minimum (confirmations cannot
    /// shorten it), no nacks from indirect probes, no buddy system — memberlist as it ran
    /// before Lifeguard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifeguard: Option<bool>,
}

impl ConfigOverrides {
    /// The memberlist configuration: the profile's preset with these overrides.
    pub fn build(&self, profile: Profile) -> Config {
        let mut c = match profile {
            Profile::Lan => Config::lan(),
            Profile::Wan => Config::wan(),
            Profile::Local => Config::local(),
        };
        // Thousands of nodes: no log records kept (the report reads the protocol's events
        // and counters instead). Records never change the protocol, so this cannot change
        // a run.
        c.log_level = None;
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { c.$f = v; } )* };
        }
        set!(
            probe_interval,
            probe_timeout,
            indirect_checks,
            retransmit_mult,
            suspicion_mult,
            suspicion_max_timeout_mult,
            push_pull_interval,
            stream_timeout,
            disable_stream_pings,
            awareness_max_multiplier,
            gossip_nodes,
            gossip_interval,
            gossip_to_the_dead_time,
            packet_size,
            max_queue_depth,
            user_broadcast_share,
            leave_timeout,
            label
        );
        if let Some(on) = self.compression {
            c.compression = serf_proto::Compressor::preferred().filter(|_| on);
        }
        if let Some(on) = self.checksum {
            c.checksum = serf_proto::Checksum::preferred().filter(|_| on);
        }
        if self.encryption == Some(true) {
            c.keyring = Some(serf_proto::Keyring::new(crate::node::scenario_key(1)));
        }
        if let Some(on) = self.lifeguard {
            c.lifeguard = on;
        }
        if let Some(gap) = self.eager_gossip {
            c.eager_gossip = Some(gap).filter(|g| !g.is_zero());
        }
        c
    }
}

/// Overrides of Serf-layer settings (`serf_proto::serf::Config` fields of the same name).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // Each field is the Serf `Config` field of the same name.
pub struct SerfOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_event_size_limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_size_limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_response_size_limit: Option<usize>,
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub reconnect_interval: Option<Duration>,
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub reconnect_timeout: Option<Duration>,
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub tombstone_timeout: Option<Duration>,
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub reap_interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_timeout_mult: Option<u32>,
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub broadcast_timeout: Option<Duration>,
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub leave_propagate_delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejoin_after_leave: Option<bool>,
    /// Permanent seeds (`Config::seeds`): these nodes' addresses, which every node
    /// retries each `reconnect_interval` for ever while they are not members. Resolved
    /// once at the start, like a group (so no `@label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<NodeSet>,
}

impl SerfOverrides {
    /// Applies these overrides to `c`.
    pub fn apply(&self, c: &mut serf_proto::serf::Config) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { c.$f = v; } )* };
        }
        set!(
            user_event_size_limit,
            query_size_limit,
            query_response_size_limit,
            reconnect_interval,
            reconnect_timeout,
            tombstone_timeout,
            reap_interval,
            query_timeout_mult,
            broadcast_timeout,
            leave_propagate_delay,
            rejoin_after_leave
        );
    }
}

/// How the cluster forms at the start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bootstrap {
    /// The first `seeds` nodes are the seeds; every other node joins through all of them.
    pub seeds: usize,
    /// Nodes start (and join) at instants spread evenly over this period; seeds first.
    #[serde(with = "duration")]
    pub spread: Duration,
    /// Nodes that start at all: `false` leaves them unstarted for a later `start` action.
    pub start_all: bool,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            seeds: 3,
            spread: Duration::from_secs(5),
            start_all: true,
        }
    }
}

/// The network section: the default link, bursty loss, streams and per-link overrides.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSpec {
    /// One-way base latency.
    #[serde(with = "duration")]
    pub latency: Duration,
    /// Uniform extra delay in `[0, jitter)`.
    #[serde(with = "duration")]
    pub jitter: Duration,
    /// Random datagram loss probability.
    pub loss: f64,
    /// Duplication probability.
    pub duplicate: f64,
    /// Reordering probability.
    pub reorder: f64,
    /// Extra delay of a reordered datagram.
    #[serde(with = "duration")]
    pub reorder_delay: Duration,
    /// Gilbert–Elliott bursty loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<Burst>,
    /// Stream timings.
    pub stream: StreamParams,
    /// Per-link overrides, first match wins.
    pub links: Vec<LinkRule>,
    /// Most datagrams queued for a slow or paused node before more are dropped (its
    /// socket buffer).
    pub inbox_limit: usize,
    /// Each node's uplink in bytes per second (datagrams and stream frames queue behind
    /// each other). Unset: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<u64>,
    /// The longest backlog an uplink queues before it drops datagrams.
    #[serde(with = "duration")]
    pub uplink_queue: Duration,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        let l = LinkParams::default();
        NetworkSpec {
            latency: l.latency,
            jitter: l.jitter,
            loss: l.loss,
            duplicate: l.duplicate,
            reorder: l.reorder,
            reorder_delay: l.reorder_delay,
            burst: None,
            stream: StreamParams::default(),
            links: Vec::new(),
            inbox_limit: 4096,
            bandwidth: None,
            uplink_queue: Duration::from_secs(1),
        }
    }
}

impl NetworkSpec {
    /// The default link.
    pub fn link(&self) -> LinkParams {
        LinkParams {
            latency: self.latency,
            jitter: self.jitter,
            loss: self.loss,
            duplicate: self.duplicate,
            reorder: self.reorder,
            reorder_delay: self.reorder_delay,
        }
    }
}

/// Overrides for the links from one node set to another.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRule {
    /// Senders.
    pub from: NodeSet,
    /// Receivers.
    pub to: NodeSet,
    /// See [`LinkParams::latency`].
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub latency: Option<Duration>,
    /// See [`LinkParams::jitter`].
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub jitter: Option<Duration>,
    /// See [`LinkParams::loss`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// See [`LinkParams::duplicate`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<f64>,
    /// See [`LinkParams::reorder`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<f64>,
    /// See [`LinkOverride::burst`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<Burst>,
}

impl LinkRule {
    /// The override it describes.
    pub fn params(&self) -> LinkOverride {
        LinkOverride {
            latency: self.latency,
            jitter: self.jitter,
            loss: self.loss,
            duplicate: self.duplicate,
            reorder: self.reorder,
            burst: self.burst,
        }
    }
}

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Start nodes that are not running — never started (`bootstrap.start_all = false`),
    /// crashed or left — fresh or from their state (`keep_state`), and join them through
    /// `seeds` unless `rejoin = false`.
    Start,
    /// Crash `nodes`: the process stops at once, with no leave.
    Crash,
    /// Crash `nodes`, then start them again after `downtime`, with or without their
    /// state (`keep_state`), joining through the seeds if `rejoin`.
    Restart,
    /// Restart `nodes` one at a time, `every` apart.
    RollingRestart,
    /// Stop processing on `nodes` for `for`: their inputs and timers queue up.
    Pause,
    /// Make `nodes` slow for `for` (or until the end): every input and timer is
    /// processed `delay` late (a starved process, Lifeguard §V).
    Slow,
    /// `nodes` leave gracefully, then stop.
    Leave,
    /// `nodes` join through `seeds`.
    Join,
    /// Split the network into `groups` (nodes in no group form one more) for `for`.
    Partition,
    /// Cut every link from `from` to `to`, one way, for `for`.
    OneWay,
    /// Remove every partition and cut.
    Heal,
    /// Change the default link (`latency`, `jitter`, `loss`, `duplicate`, `reorder`,
    /// `burst`) for `for` (or until the end).
    Network,
    /// Change the links from `from` to `to` (one way: `latency`, `jitter`, `loss`,
    /// `duplicate`, `reorder`, `burst`) for `for` (or until the end).
    Link,
    /// `count` user events, `every` apart, each from a random node of `nodes`.
    UserEvents,
    /// `count` queries, `every` apart, each from a random node of `nodes`.
    Queries,
    /// Each running node of `nodes` installs `key` on every node (Serf's keyring query,
    /// `serf keys -install`).
    InstallKey,
    /// Each running node of `nodes` makes `key` every node's primary key.
    UseKey,
    /// Each running node of `nodes` removes `key` from every node.
    RemoveKey,
}

impl ActionKind {
    /// The optional keys an action of this kind takes (README, `[[actions]]`); any other
    /// key set on it is a mistake.
    pub fn keys(self) -> Vec<&'static str> {
        use ActionKind::*;
        const LINK: &[&str] = &[
            "latency",
            "jitter",
            "loss",
            "duplicate",
            "reorder",
            "burst",
            "for",
        ];
        let own: &[&str] = match self {
            Start => &[
                "nodes",
                "label",
                "seeds",
                "keep_state",
                "rejoin",
                "new_address",
            ],
            Crash | Leave => &["nodes", "label"],
            Restart => &[
                "nodes",
                "label",
                "seeds",
                "downtime",
                "keep_state",
                "rejoin",
                "new_address",
            ],
            RollingRestart => &[
                "nodes",
                "label",
                "seeds",
                "every",
                "downtime",
                "keep_state",
                "rejoin",
            ],
            Pause => &["nodes", "label", "for"],
            Slow => &["nodes", "label", "delay", "for"],
            Join => &["nodes", "label", "seeds"],
            Partition => &["groups", "for"],
            OneWay => &["from", "to", "for"],
            Heal => &[],
            Network => LINK,
            Link => &["from", "to"],
            UserEvents | Queries => &["nodes", "count", "every"],
            InstallKey | UseKey | RemoveKey => &["nodes", "label", "key"],
        };
        let mut keys = own.to_vec();
        if self == Link {
            keys.extend(LINK);
        }
        // `every` and `times` repeat any action whose `every` does not already space a
        // series of its own.
        if !self.is_series() {
            keys.extend(["every", "times"]);
        }
        keys
    }

    /// Whether `every` spaces this kind's own series (so it cannot repeat the action).
    pub fn is_series(self) -> bool {
        matches!(
            self,
            ActionKind::RollingRestart | ActionKind::UserEvents | ActionKind::Queries
        )
    }
}

/// One entry of the timeline. Which fields apply depends on `kind` (see README).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// When it happens.
    #[serde(with = "duration")]
    pub at: Duration,
    /// What happens.
    pub kind: ActionKind,
    /// The nodes it applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeSet>,
    /// Remember the chosen nodes under this name (`"@name"` in a later action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// For `join` (and restarts): where to join. Default: the bootstrap seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<NodeSet>,
    /// For `partition`: the groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<NodeSet>>,
    /// For `one_way` and `link`: senders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<NodeSet>,
    /// For `one_way` and `link`: receivers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<NodeSet>,
    /// How long the fault lasts; then it is undone automatically.
    #[serde(
        rename = "for",
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub lasts: Option<Duration>,
    /// For restarts: time between the crash and the start.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub downtime: Option<Duration>,
    /// For `start` and restarts: start from the saved state (Serf snapshot) instead of
    /// fresh (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_state: Option<bool>,
    /// For restarts: join through the seeds after starting (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejoin: Option<bool>,
    /// For `start` and `restart`: come back with the same name at another address
    /// (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_address: Option<bool>,
    /// For `rolling_restart`, `user_events`, `queries`: spacing. For any other kind,
    /// with `times`: the period of the repeats.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub every: Option<Duration>,
    /// With `every`: the action happens this many times in all, the first at `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<usize>,
    /// For `user_events`, `queries`: how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// For `slow`: each input is processed this late, uniformly in `[min, max]`.
    #[serde(
        default,
        with = "duration::option_range",
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<(Duration, Duration)>,
    /// For `network` and `link`: see [`LinkParams::latency`].
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub latency: Option<Duration>,
    /// For `network` and `link`: see [`LinkParams::jitter`].
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub jitter: Option<Duration>,
    /// For `network` and `link`: see [`LinkParams::loss`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// For `network` and `link`: see [`LinkParams::duplicate`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<f64>,
    /// For `network` and `link`: see [`LinkParams::reorder`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<f64>,
    /// For `network` and `link`: bursty loss while the action is in force, with chains
    /// of its own (see [`LinkOverride::burst`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<Burst>,
    /// For `install_key`, `use_key`, `remove_key`: which key, 1 to 255 (the 32-byte key
    /// of that byte repeated; `[config] encryption = true` starts every node with key 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<u8>,
}

impl Action {
    /// An action of `kind` at `at` on `nodes`, every other field unset.
    pub fn new(at: Duration, kind: ActionKind, nodes: Option<NodeSet>) -> Action {
        Action {
            at,
            kind,
            nodes,
            label: None,
            seeds: None,
            groups: None,
            from: None,
            to: None,
            lasts: None,
            downtime: None,
            keep_state: None,
            rejoin: None,
            new_address: None,
            every: None,
            times: None,
            count: None,
            delay: None,
            latency: None,
            jitter: None,
            loss: None,
            duplicate: None,
            reorder: None,
            burst: None,
            key: None,
        }
    }

    /// The optional keys this action sets, by their TOML names (`at` and `kind` are
    /// always set).
    pub fn keys_set(&self) -> Vec<&'static str> {
        let set = [
            ("nodes", self.nodes.is_some()),
            ("label", self.label.is_some()),
            ("seeds", self.seeds.is_some()),
            ("groups", self.groups.is_some()),
            ("from", self.from.is_some()),
            ("to", self.to.is_some()),
            ("for", self.lasts.is_some()),
            ("downtime", self.downtime.is_some()),
            ("keep_state", self.keep_state.is_some()),
            ("rejoin", self.rejoin.is_some()),
            ("new_address", self.new_address.is_some()),
            ("every", self.every.is_some()),
            ("times", self.times.is_some()),
            ("count", self.count.is_some()),
            ("delay", self.delay.is_some()),
            ("latency", self.latency.is_some()),
            ("jitter", self.jitter.is_some()),
            ("loss", self.loss.is_some()),
            ("duplicate", self.duplicate.is_some()),
            ("reorder", self.reorder.is_some()),
            ("burst", self.burst.is_some()),
            ("key", self.key.is_some()),
        ];
        set.into_iter().filter(|k| k.1).map(|k| k.0).collect()
    }

    /// How many times the action happens (`times`, or once).
    pub fn times(&self) -> usize {
        self.times.unwrap_or(1)
    }

    /// When repeat `k` happens (0 is `at`): `k` periods of `every` later.
    pub fn repeat_at(&self, k: usize) -> Duration {
        nth(self.at, self.every.unwrap_or_default(), k)
    }

    /// For `network` and `link`: the link settings it sets.
    pub fn link(&self) -> LinkOverride {
        LinkOverride {
            latency: self.latency,
            jitter: self.jitter,
            loss: self.loss,
            duplicate: self.duplicate,
            reorder: self.reorder,
            burst: self.burst,
        }
    }
}

/// What an expectation checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectKind {
    /// Every live node agrees on the membership at some instant in `[after, after +
    /// within]`: live nodes alive in every live view, stopped ones in none.
    Converged,
    /// At most `max` false failure reports (a live member reported dead by a live
    /// node), about `subjects`. Reports around a partition (while it is in force and for
    /// the longest suspicion timeout plus a probe interval after) and reports about a
    /// restarted member's earlier life are not counted.
    FalsePositives,
    /// Every crash was detected: by a first node within `first_within`, by all within
    /// `all_within`.
    Detection,
    /// User events reached at least `completeness` of the nodes live throughout, with
    /// p99 latency at most `p99_max`.
    Delivery,
    /// Queries were answered by at least `completeness` of the nodes live throughout.
    Queries,
}

/// Which members a false-positive count is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subjects {
    /// Every member.
    #[default]
    All,
    /// Members never slow nor paused during their current life.
    Healthy,
    /// Members slow or paused at some point of their current life.
    Slow,
}

/// A check of the run's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// What to check.
    pub kind: ExpectKind,
    /// For `converged`: the window's start (default: the last fault).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub after: Option<Duration>,
    /// For `converged`: the window's length.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub within: Option<Duration>,
    /// For `false_positives`: the bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// For `false_positives`: which members.
    #[serde(default)]
    pub subjects: Subjects,
    /// For `detection`.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub first_within: Option<Duration>,
    /// For `detection`.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub all_within: Option<Duration>,
    /// For `delivery` and `queries`: the least fraction reached, in `[0, 1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completeness: Option<f64>,
    /// For `delivery`: the largest p99 latency.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub p99_max: Option<Duration>,
    /// For `queries` on the Serf layer: the least fraction of queries that ended at the
    /// asker before their timeout because every expected node had answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_early: Option<f64>,
    /// For `false_positives`, `delivery` and `queries`: count only reports made, or
    /// events and queries sent, at or after this time.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub from: Option<Duration>,
    /// For `false_positives`, `delivery` and `queries`: count only reports made, or
    /// events and queries sent, at or before this time.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<Duration>,
}

impl Expectation {
    /// An expectation of `kind` with every bound unset.
    pub fn new(kind: ExpectKind) -> Expectation {
        Expectation {
            kind,
            after: None,
            within: None,
            max: None,
            subjects: Subjects::All,
            first_within: None,
            all_within: None,
            completeness: None,
            p99_max: None,
            ended_early: None,
            from: None,
            until: None,
        }
    }
}

/// Which invariants run at every step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Invariants {
    /// No node reports a member alive again at an incarnation it already held dead.
    pub resurrection: bool,
    /// Incarnations never go backwards: a node's own, and each member in each view.
    pub incarnations: bool,
    /// Broadcast queues and member tables stay within their configured bounds.
    pub queues: bool,
    /// Once faults stop, every live node agrees by the deadline the protocol implies.
    pub convergence: bool,
    /// Replaces the derived convergence deadline.
    #[serde(with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub convergence_deadline: Option<Duration>,
    /// Keep the per-view table the resurrection and incarnation checks need (8 bytes per
    /// pair of nodes; turn off for the largest runs).
    pub views: bool,
}

impl Default for Invariants {
    fn default() -> Self {
        Invariants {
            resurrection: true,
            incarnations: true,
            queues: true,
            convergence: true,
            convergence_deadline: None,
            views: true,
        }
    }
}

/// Measurement settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeasureSpec {
    /// How often membership views are sampled (for the plots).
    #[serde(with = "duration")]
    pub sample_interval: Duration,
    /// Size in bytes of user event and query payloads.
    pub event_size: usize,
    /// How many individual views the membership plot draws (besides min and max).
    pub plot_views: usize,
}

impl Default for MeasureSpec {
    fn default() -> Self {
        MeasureSpec {
            sample_interval: Duration::from_secs(1),
            event_size: 64,
            plot_views: 6,
        }
    }
}

impl Scenario {
    /// A scenario of `nodes` nodes running `duration`, with every default.
    pub fn new(name: &str, nodes: usize, duration: Duration) -> Scenario {
        Scenario {
            name: name.into(),
            description: String::new(),
            nodes,
            seed: 1,
            duration,
            layer: Layer::Memberlist,
            profile: Profile::Lan,
            config: ConfigOverrides::default(),
            serf: SerfOverrides::default(),
            bootstrap: Bootstrap::default(),
            network: NetworkSpec::default(),
            groups: BTreeMap::new(),
            actions: Vec::new(),
            expect: Vec::new(),
            invariants: Invariants::default(),
            measure: MeasureSpec::default(),
        }
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        s.validate()?;
        Ok(s)
    }

    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Scenario::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Adds an action (builder style).
    pub fn with_action(mut self, a: Action) -> Scenario {
        self.actions.push(a);
        self
    }

    /// Adds an expectation (builder style).
    pub fn with_expectation(mut self, e: Expectation) -> Scenario {
        self.expect.push(e);
        self
    }

    /// Checks what can be checked without running.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes == 0 {
            return Err("nodes must be at least 1".into());
        }
        if self.nodes > MAX_NODES {
            return Err(format!(
                "nodes is {}; the simulator takes at most {MAX_NODES} (every node keeps a \
                 table of every member: 10,000 nodes already need about 13 GiB)",
                self.nodes
            ));
        }
        let table = (self.nodes as u64).pow(2) * 8;
        if self.invariants.views && table > MAX_VIEW_TABLE {
            return Err(format!(
                "the per-view incarnation table for {} nodes would take {:.1} GiB (8 bytes \
                 per pair of nodes); set `[invariants] views = false` to run without the \
                 resurrection and incarnation checks, or use fewer nodes",
                self.nodes,
                table as f64 / f64::from(1u32 << 30)
            ));
        }
        self.validate_probabilities()?;
        if self.measure.sample_interval < Duration::from_millis(1) {
            return Err(format!(
                "measure.sample_interval is {}; it must be at least 1ms",
                secs(self.measure.sample_interval)
            ));
        }
        if self.measure.event_size > MAX_EVENT_SIZE {
            return Err(format!(
                "measure.event_size is {} bytes; at most {MAX_EVENT_SIZE}",
                self.measure.event_size
            ));
        }
        if self.bootstrap.seeds == 0 {
            return Err("bootstrap.seeds must be at least 1".into());
        }
        self.config
            .build(self.profile)
            .validate()
            .map_err(|e| format!("config: {e}"))?;
        self.validate_node_sets()?;
        self.validate_times()?;
        for (i, a) in self.actions.iter().enumerate() {
            let need = |what: bool, field: &str| {
                if what {
                    Ok(())
                } else {
                    Err(format!("action {i} ({:?}) needs `{field}`", a.kind))
                }
            };
            if let Some(key) = a
                .keys_set()
                .into_iter()
                .find(|k| !a.kind.keys().contains(k))
            {
                let takes = a.kind.keys();
                return Err(format!(
                    "action {i} ({:?} at {}): `{key}` does not apply to this kind, which \
                     would ignore it; remove it (this kind takes {})",
                    a.kind,
                    secs(a.at),
                    if takes.is_empty() {
                        "no other key".to_string()
                    } else {
                        format!("`{}`", takes.join("`, `"))
                    }
                ));
            }
            use ActionKind::*;
            match a.kind {
                Start | Crash | Restart | RollingRestart | Pause | Slow | Leave | Join => {
                    need(a.nodes.is_some(), "nodes")?
                }
                InstallKey | UseKey | RemoveKey => {
                    need(a.nodes.is_some(), "nodes")?;
                    need(a.key.is_some_and(|k| k > 0), "key (1 to 255)")?;
                    if self.config.encryption != Some(true) {
                        return Err(format!(
                            "action {i} ({:?}): keys rotate only in an encrypted cluster; set \
                             `[config] encryption = true` (every node starts with key 1)",
                            a.kind
                        ));
                    }
                }
                Partition => need(a.groups.is_some(), "groups")?,
                OneWay => need(a.from.is_some() && a.to.is_some(), "from and to")?,
                Link => {
                    need(a.from.is_some() && a.to.is_some(), "from and to")?;
                    need(
                        a.link() != LinkOverride::default(),
                        "one of `latency`, `jitter`, `loss`, `duplicate`, `reorder`, `burst`",
                    )?;
                }
                Heal | Network => {}
                UserEvents | Queries => {
                    need(a.count.is_some(), "count")?;
                    if a.count.unwrap_or(0) > MAX_SERIES {
                        return Err(format!(
                            "action {i} ({:?}): count is {}; at most {MAX_SERIES} per action",
                            a.kind,
                            a.count.unwrap_or(0)
                        ));
                    }
                }
            }
            if !a.kind.is_series() {
                need(
                    a.every.is_none() || a.times.is_some(),
                    "times (`every` repeats it; how many times in all?)",
                )?;
                need(
                    a.times.is_none() || a.every.is_some_and(|e| !e.is_zero()),
                    "every (a period longer than 0 between its `times` repeats)",
                )?;
                let times = a.times();
                if !(1..=MAX_SERIES).contains(&times) {
                    return Err(format!(
                        "action {i} ({:?}): `times` is {times}; from 1 to {MAX_SERIES}",
                        a.kind
                    ));
                }
            }
            match a.kind {
                Pause => need(a.lasts.is_some(), "for")?,
                Slow => need(a.delay.is_some(), "delay")?,
                RollingRestart => need(a.every.is_some(), "every")?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// `k` periods of `every` after `at`, saturating at the longest duration rather than
/// wrap (a hostile `count` or `times` must give an error, not a wrapped time).
fn nth(at: Duration, every: Duration, k: usize) -> Duration {
    let span = every.as_nanos().saturating_mul(k as u128);
    at.saturating_add(Duration::from_nanos(span.min(u128::from(u64::MAX)) as u64))
}

/// A duration in seconds, for messages (`90s`, `1.5s`).
fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

impl Scenario {
    /// The actions in the order they fire: by time, then as written.
    fn firing_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.actions.len()).collect();
        order.sort_by_key(|&i| (self.actions[i].at, i));
        order
    }

    /// Every group a node set names is defined, and every `@label` is defined by an
    /// action that fires earlier; groups, link rules and the permanent seeds (resolved
    /// before any action) name no label, and groups no other group.
    fn validate_node_sets(&self) -> Result<(), String> {
        let defined = || {
            if self.groups.is_empty() {
                "no group is defined (under [groups])".to_string()
            } else {
                let names: Vec<&str> = self.groups.keys().map(String::as_str).collect();
                format!("defined groups: {}", names.join(", "))
            }
        };
        let group_ok = |set: &NodeSet, place: &str| match set {
            NodeSet::Group(g) if !self.groups.contains_key(g) => {
                Err(format!("{place}: unknown group `{g}`; {}", defined()))
            }
            _ => Ok(()),
        };
        for (name, set) in &self.groups {
            if matches!(set, NodeSet::Group(_) | NodeSet::Label(_)) {
                return Err(format!(
                    "group `{name}` must not refer to another group or a label"
                ));
            }
            set.check_bounds(self.nodes)
                .map_err(|e| format!("groups.{name}: {e}"))?;
        }
        let mut start_sets: Vec<(String, &NodeSet)> = Vec::new();
        for (k, rule) in self.network.links.iter().enumerate() {
            for (field, set) in [("from", &rule.from), ("to", &rule.to)] {
                start_sets.push((format!("network.links[{k}].{field}"), set));
            }
        }
        if let Some(set) = &self.serf.seeds {
            start_sets.push(("serf.seeds".into(), set));
        }
        for (place, set) in start_sets {
            group_ok(set, &place)?;
            set.check_bounds(self.nodes)
                .map_err(|e| format!("{place}: {e}"))?;
            if let NodeSet::Label(l) = set {
                return Err(format!(
                    "{place}: `@{l}`: this set is resolved at the start, before any action \
                     chooses nodes"
                ));
            }
        }
        let mut labels: Vec<&str> = Vec::new();
        for i in self.firing_order() {
            let a = &self.actions[i];
            let place =
                |field: &str| format!("action {i} ({:?} at {}), `{field}`", a.kind, secs(a.at));
            let mut sets: Vec<(&str, &NodeSet)> = Vec::new();
            for (field, set) in [
                ("nodes", &a.nodes),
                ("seeds", &a.seeds),
                ("from", &a.from),
                ("to", &a.to),
            ] {
                if let Some(set) = set {
                    sets.push((field, set));
                }
            }
            for g in a.groups.iter().flatten() {
                sets.push(("groups", g));
            }
            for (field, set) in sets {
                group_ok(set, &place(field))?;
                set.check_bounds(self.nodes)
                    .map_err(|e| format!("{}: {e}", place(field)))?;
                if let NodeSet::Label(l) = set
                    && !labels.contains(&l.as_str())
                {
                    let known = if labels.is_empty() {
                        "no label is defined before it".to_string()
                    } else {
                        format!("labels defined before it: {}", labels.join(", "))
                    };
                    return Err(format!(
                        "{}: `@{l}` is not defined by an action that fires earlier; {known}",
                        place(field)
                    ));
                }
            }
            if let Some(l) = &a.label {
                use ActionKind::*;
                if matches!(
                    a.kind,
                    Partition | OneWay | Heal | Network | Link | UserEvents | Queries
                ) {
                    return Err(format!(
                        "action {i} ({:?}): `label` names the nodes an action chooses; this \
                         kind chooses none",
                        a.kind
                    ));
                }
                labels.push(l);
            }
        }
        Ok(())
    }

    /// Every probability (loss, duplication, reordering, the burst chain's) is in [0, 1].
    fn validate_probabilities(&self) -> Result<(), String> {
        let check = |what: String, p: Option<f64>| match p {
            Some(p) if !(0.0..=1.0).contains(&p) => {
                Err(format!("{what} is {p}; a probability is between 0 and 1"))
            }
            _ => Ok(()),
        };
        let n = &self.network;
        check("network.loss".into(), Some(n.loss))?;
        check("network.duplicate".into(), Some(n.duplicate))?;
        check("network.reorder".into(), Some(n.reorder))?;
        // Each of the chain's four, named as the file spells them.
        let check_burst = |at: String, b: &Option<Burst>| {
            let Some(b) = b else { return Ok(()) };
            check(format!("{at}.p_enter"), Some(b.p_enter))?;
            check(format!("{at}.p_exit"), Some(b.p_exit))?;
            check(format!("{at}.loss_bad"), Some(b.loss_bad))?;
            check(format!("{at}.loss_good"), Some(b.loss_good))
        };
        check_burst("network.burst".into(), &n.burst)?;
        for (i, l) in n.links.iter().enumerate() {
            check(format!("network.links[{i}].loss"), l.loss)?;
            check(format!("network.links[{i}].duplicate"), l.duplicate)?;
            check(format!("network.links[{i}].reorder"), l.reorder)?;
            check_burst(format!("network.links[{i}].burst"), &l.burst)?;
        }
        for (i, a) in self.actions.iter().enumerate() {
            check(format!("action {i}: loss"), a.loss)?;
            check(format!("action {i}: duplicate"), a.duplicate)?;
            check(format!("action {i}: reorder"), a.reorder)?;
            check_burst(format!("action {i}: burst"), &a.burst)?;
        }
        Ok(())
    }

    /// Nothing is scheduled past the end of the run: an action, a user event or query
    /// of a series, or the start of a `converged` window (each would be silently lost or
    /// pass vacuously).
    fn validate_times(&self) -> Result<(), String> {
        let end = self.duration;
        for (i, a) in self.actions.iter().enumerate() {
            let last = match a.kind {
                ActionKind::UserEvents | ActionKind::Queries => nth(
                    a.at,
                    a.every.unwrap_or(Duration::from_millis(100)),
                    a.count.unwrap_or(1).saturating_sub(1),
                ),
                _ => a.repeat_at(a.times().saturating_sub(1)),
            };
            if last > end {
                return Err(format!(
                    "action {i} ({:?}) {} {}, after the end of the run ({}); shorten it or \
                     lengthen `duration`",
                    a.kind,
                    if last == a.at {
                        "is at"
                    } else if a.times.is_some() {
                        "repeats until"
                    } else {
                        "ends at"
                    },
                    secs(last),
                    secs(end)
                ));
            }
        }
        for (i, e) in self.expect.iter().enumerate() {
            if e.ended_early.is_some() && e.kind != ExpectKind::Queries {
                return Err(format!(
                    "expectation {i}: `ended_early` applies to `queries` expectations only"
                ));
            }
            let windowed = matches!(
                e.kind,
                ExpectKind::FalsePositives | ExpectKind::Delivery | ExpectKind::Queries
            );
            for (key, t) in [("from", e.from), ("until", e.until)] {
                let Some(t) = t else { continue };
                if !windowed {
                    return Err(format!(
                        "expectation {i} ({:?}): `{key}` does not apply to this kind (only \
                         `false_positives`, `delivery` and `queries` take a time window); \
                         remove it",
                        e.kind
                    ));
                }
                if t > end {
                    return Err(format!(
                        "expectation {i} ({:?}): `{key}` is {}, after the end of the run ({})",
                        e.kind,
                        secs(t),
                        secs(end)
                    ));
                }
            }
            if let (Some(f), Some(u)) = (e.from, e.until)
                && u < f
            {
                return Err(format!(
                    "expectation {i} ({:?}): `until` ({}) is before `from` ({})",
                    e.kind,
                    secs(u),
                    secs(f)
                ));
            }
            for (key, v) in [
                ("completeness", e.completeness),
                ("ended_early", e.ended_early),
            ] {
                if let Some(v) = v
                    && !(0.0..=1.0).contains(&v)
                {
                    return Err(format!(
                        "expectation {i}: `{key}` is a fraction between 0 and 1, not {v}"
                    ));
                }
            }
            let sends = match e.kind {
                ExpectKind::Delivery => Some((ActionKind::UserEvents, "user_events")),
                ExpectKind::Queries => Some((ActionKind::Queries, "queries")),
                _ => None,
            };
            if let Some((kind, name)) = sends
                && !self.actions.iter().any(|a| a.kind == kind)
            {
                return Err(format!(
                    "expectation {i} ({:?}): the scenario sends nothing for it to check; add \
                     a `{name}` action, or remove the expectation (it would pass as 100% of \
                     nothing)",
                    e.kind
                ));
            }
            if e.kind == ExpectKind::Converged
                && let Some(after) = e.after
                && after > end
            {
                return Err(format!(
                    "expectation {i} (converged) starts at {}, after the end of the run ({}): \
                     it could only pass vacuously",
                    secs(after),
                    secs(end)
                ));
            }
        }
        Ok(())
    }

    /// Cuts the run at `duration` (the command line's `--duration`): actions and user
    /// events or queries past the new end are dropped, and `converged` expectations that
    /// would start after it. Returns a warning for each thing dropped.
    pub fn truncate(&mut self, duration: Duration) -> Vec<String> {
        let mut warnings = Vec::new();
        self.duration = duration;
        let mut kept = Vec::new();
        for (i, mut a) in core::mem::take(&mut self.actions).into_iter().enumerate() {
            if a.at > duration {
                warnings.push(format!(
                    "action {i} ({:?} at {}) is after the end: dropped",
                    a.kind,
                    secs(a.at)
                ));
                continue;
            }
            if a.times() > 1 {
                let fit = (0..a.times())
                    .take_while(|&k| a.repeat_at(k) <= duration)
                    .count();
                if fit < a.times() {
                    warnings.push(format!(
                        "action {i} ({:?}): {} of its {} repeats fall after the end: dropped",
                        a.kind,
                        a.times() - fit,
                        a.times()
                    ));
                    a.times = Some(fit);
                }
            }
            if matches!(a.kind, ActionKind::UserEvents | ActionKind::Queries) {
                let every = a.every.unwrap_or(Duration::from_millis(100));
                let count = a.count.unwrap_or(1);
                let fit = if every.is_zero() {
                    count
                } else {
                    (((duration - a.at).as_nanos() / every.as_nanos()) as usize + 1).min(count)
                };
                if fit < count {
                    warnings.push(format!(
                        "action {i} ({:?}): {} of its {count} fall after the end: dropped",
                        a.kind,
                        count - fit
                    ));
                    a.count = Some(fit);
                }
            }
            kept.push(a);
        }
        self.actions = kept;
        let mut expect = Vec::new();
        for (i, mut e) in core::mem::take(&mut self.expect).into_iter().enumerate() {
            if let Some(from) = e.from.filter(|&f| f > duration) {
                warnings.push(format!(
                    "expectation {i} ({:?} from {}) starts after the end: dropped",
                    e.kind,
                    secs(from)
                ));
                continue;
            }
            if e.until.is_some_and(|u| u > duration) {
                e.until = Some(duration);
            }
            if e.kind == ExpectKind::Converged && e.after.is_some_and(|a| a > duration) {
                warnings.push(format!(
                    "expectation {i} (converged after {}) starts after the end: dropped",
                    secs(e.after.unwrap_or_default())
                ));
                continue;
            }
            expect.push(e);
        }
        self.expect = expect;
        warnings
    }
}

/// The scale benchmark's scenario: `nodes` LAN nodes join through 3 seeds over
/// `nodes / 100` seconds (at least 10); the run is long enough to form (up to
/// `form_limit`) and then run `secs` seconds steadily.
pub fn bench(nodes: usize, secs: u64, views: bool, form_limit: Duration) -> Scenario {
    let spread = Duration::from_secs((nodes as u64 / 100).max(10));
    let mut s = Scenario::new("bench", nodes, form_limit + Duration::from_secs(secs));
    s.bootstrap.spread = spread;
    s.invariants.views = views;
    s.measure.sample_interval = Duration::from_secs(5);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_scenario_parses_and_switches_lifeguard_off() {
        let s = Scenario::from_toml(
            r#"
            name = "t"
            nodes = 10
            duration = "2m"
            [config]
            lifeguard = false
            probe_interval = "1s"
            [network]
            latency = "5ms"
            loss = 0.1
            [network.burst]
            p_enter = 0.01
            [[network.links]]
            from = "0..5"
            to = "5..10"
            latency = "40ms"
            [groups]
            left = "0%..50%"
            [[actions]]
            at = "30s"
            kind = "slow"
            nodes = [1, 2]
            delay = ["2s", "5s"]
            [[actions]]
            at = "60s"
            kind = "partition"
            groups = ["left", "50%..100%"]
            for = "10s"
            [[expect]]
            kind = "converged"
            after = "70s"
            within = "30s"
        "#,
        )
        .unwrap();
        let c = s.config.build(s.profile);
        assert!(!c.lifeguard);
        assert_eq!(s.actions[0].delay.unwrap().1, Duration::from_secs(5));
        assert_eq!(
            s.network.links[0].params().latency,
            Some(Duration::from_millis(40))
        );
        assert!(Scenario::from_toml("name='x'\nnodes=3\nduration='1m'\nbogus=1").is_err());
    }

    fn parse(body: &str) -> Result<Scenario, String> {
        Scenario::from_toml(&format!("name = 't'\nnodes = 10\nduration = '60s'\n{body}"))
    }

    #[test]
    fn ended_early_applies_to_queries_and_fractions_are_between_0_and_1() {
        let queries = "[[actions]]\nat = '1s'\nkind = 'queries'\nnodes = 'all'\ncount = 1\n";
        assert!(
            parse(&format!(
                "{queries}[[expect]]\nkind = 'queries'\nended_early = 0.9\n"
            ))
            .is_ok()
        );
        let e = parse("[[expect]]\nkind = 'delivery'\nended_early = 1.0\n").unwrap_err();
        assert!(
            e.contains("expectation 0: `ended_early` applies to `queries`"),
            "{e}"
        );
        for (key, v) in [
            ("ended_early", "1.5"),
            ("completeness", "-1.0"),
            ("completeness", "nan"),
        ] {
            let e = parse(&format!("[[expect]]\nkind = 'queries'\n{key} = {v}\n")).unwrap_err();
            assert!(
                e.contains(&format!("`{key}` is a fraction between 0 and 1")),
                "{e}"
            );
        }
    }

    #[test]
    fn hostile_sizes_are_errors_not_allocations() {
        let top =
            |body: &str| Scenario::from_toml(&format!("name = 't'\nduration = '10s'\n{body}"));
        let e = top("nodes = 1000000000000").unwrap_err();
        assert!(e.contains("at most 1000000"), "{e}");
        let e = top("nodes = 50000").unwrap_err();
        assert!(e.contains("views = false"), "{e}");
        assert!(top("nodes = 50000\n[invariants]\nviews = false").is_ok());
        let e = top("nodes = 10\n[measure]\nevent_size = 100000000000").unwrap_err();
        assert!(e.contains("event_size"), "{e}");
        // 10^11 events 1 ns apart end long after the run (u32 truncation hid that).
        let e = parse(
            "[[actions]]\nat = '1s'\nkind = 'user_events'\nnodes = 'all'\ncount = 100000000000\nevery = '1ns'\n",
        )
        .unwrap_err();
        assert!(e.contains("after the end of the run"), "{e}");
        let e = parse(
            "[[actions]]\nat = '1s'\nkind = 'queries'\nnodes = 'all'\ncount = 5000000\nevery = '1ns'\n",
        )
        .unwrap_err();
        assert!(e.contains("at most 1000000 per action"), "{e}");
        let e = parse("[measure]\nsample_interval = '0s'\n").unwrap_err();
        assert!(e.contains("at least 1ms"), "{e}");
        for body in [
            "[network]\nloss = 2.0",
            "[network.burst]\np_enter = 5.0",
            "[network]\nduplicate = -0.1",
            "[[network.links]]\nfrom = 'all'\nto = 'all'\nreorder = nan",
            "[[actions]]\nat = '1s'\nkind = 'network'\nloss = 1.5",
        ] {
            let e = parse(body).unwrap_err();
            assert!(
                e.contains("a probability is between 0 and 1"),
                "{body}: {e}"
            );
        }
    }

    /// Issue 11, item 3: node sets that name nodes the run does not have.
    #[test]
    fn a_node_out_of_range_is_an_error_that_names_the_key() {
        let e = parse("[[actions]]\nat = '10s'\nkind = 'crash'\nnodes = [3, 42]\n").unwrap_err();
        assert!(
            e.contains("action 0 (Crash at 10s), `nodes`: node 42 does not exist")
                && e.contains("numbered 0 to 9"),
            "{e}"
        );
        let e = parse("[[actions]]\nat = '10s'\nkind = 'leave'\nnodes = '5..20'\n").unwrap_err();
        assert!(
            e.contains("`nodes`: `5..20` runs past the last node: the run has 10 nodes"),
            "{e}"
        );
        for (body, key) in [
            ("[groups]\nfar = [10]\n", "groups.far"),
            (
                "[[network.links]]\nfrom = '0..5'\nto = '5..11'\nlatency = '9ms'\n",
                "network.links[0].to",
            ),
            (
                "[[actions]]\nat = '1s'\nkind = 'partition'\ngroups = ['0..5', '5%..150%']\n",
                "`groups`",
            ),
            (
                "[[actions]]\nat = '1s'\nkind = 'pause'\nnodes = 'random 11'\nfor = '1s'\n",
                "`nodes`",
            ),
            (
                "[[actions]]\nat = '1s'\nkind = 'join'\nnodes = 'all'\nseeds = [10]\n",
                "`seeds`",
            ),
            (
                "[[actions]]\nat = '1s'\nkind = 'crash'\nnodes = '6..4'\n",
                "runs backwards",
            ),
        ] {
            let e = parse(body).unwrap_err();
            assert!(e.contains(key), "{body}: {e}");
        }
        // The last node and whole ranges are fine.
        assert!(parse("[[actions]]\nat = '10s'\nkind = 'crash'\nnodes = [9]\n").is_ok());
        assert!(parse("[[actions]]\nat = '10s'\nkind = 'crash'\nnodes = '5..10'\n").is_ok());
    }

    /// Issue 11, item 3: a key the action's kind would ignore.
    #[test]
    fn a_key_an_action_kind_ignores_is_an_error() {
        for (body, key) in [
            ("kind = 'heal'\nfor = '10s'", "`for`"),
            (
                "kind = 'crash'\nnodes = [1]\nkeep_state = true",
                "`keep_state`",
            ),
            (
                "kind = 'crash'\nnodes = [1]\nkeep_state = false",
                "`keep_state`",
            ),
            ("kind = 'crash'\nnodes = [1]\ndowntime = '5s'", "`downtime`"),
            ("kind = 'leave'\nnodes = [1]\nfor = '5s'", "`for`"),
            ("kind = 'network'\nloss = 0.1\nnodes = [1]", "`nodes`"),
            (
                "kind = 'user_events'\nnodes = 'all'\ncount = 1\nfor = '1s'",
                "`for`",
            ),
        ] {
            let e = parse(&format!("[[actions]]\nat = '10s'\n{body}\n")).unwrap_err();
            assert!(
                e.contains(&format!("{key} does not apply to this kind"))
                    && e.contains("remove it"),
                "{body}: {e}"
            );
        }
        let e = parse("[[actions]]\nat = '10s'\nkind = 'heal'\nfor = '10s'\n").unwrap_err();
        assert!(e.contains("this kind takes `every`, `times`"), "{e}");
        assert!(
            parse("[[actions]]\nat = '10s'\nkind = 'start'\nnodes = [1]\nkeep_state = true\n")
                .is_ok()
        );
    }

    /// Issue 11, item 3: a `delivery` or `queries` expectation with nothing sent would
    /// pass as 100%.
    #[test]
    fn an_expectation_about_events_needs_events() {
        for (kind, action) in [("delivery", "user_events"), ("queries", "queries")] {
            let e = parse(&format!("[[expect]]\nkind = '{kind}'\n")).unwrap_err();
            assert!(
                e.contains("sends nothing for it to check") && e.contains(&format!("`{action}`")),
                "{e}"
            );
            let ok = format!(
                "[[actions]]\nat = '1s'\nkind = '{action}'\nnodes = 'all'\ncount = 1\n\
                 [[expect]]\nkind = '{kind}'\n"
            );
            assert!(parse(&ok).is_ok());
        }
    }

    #[test]
    fn an_unknown_group_is_an_error_that_names_it_and_lists_the_groups() {
        let e = parse(
            r#"
            [groups]
            slow = "random 2"
            left = "0..5"
            [[actions]]
            at = "10s"
            kind = "slow"
            nodes = "slwo"
            delay = ["2s", "5s"]
        "#,
        )
        .unwrap_err();
        assert!(e.contains("unknown group `slwo`"), "{e}");
        assert!(e.contains("defined groups: left, slow"), "{e}");
        let e = parse("[[actions]]\nat = '10s'\nkind = 'partition'\ngroups = ['a', '5..10']\n")
            .unwrap_err();
        assert!(
            e.contains("unknown group `a`") && e.contains("no group is defined"),
            "{e}"
        );
        let e =
            parse("[[network.links]]\nfrom = 'far'\nto = 'all'\nlatency = '9ms'\n").unwrap_err();
        assert!(
            e.contains("network.links[0].from: unknown group `far`"),
            "{e}"
        );
    }

    #[test]
    fn a_label_must_be_defined_by_an_action_that_fires_earlier() {
        let crash_then_start = |crash_at: &str, start_at: &str| {
            parse(&format!(
                "[[actions]]\nat = '{start_at}'\nkind = 'start'\nnodes = '@gone'\n\
                 [[actions]]\nat = '{crash_at}'\nkind = 'crash'\nnodes = '10%'\nlabel = 'gone'\n"
            ))
        };
        // Written later, fires earlier: fine.
        assert!(crash_then_start("10s", "20s").is_ok());
        // Fires later (or at the same instant, after it in the file): an error.
        for (c, s) in [("30s", "20s"), ("20s", "20s")] {
            let e = crash_then_start(c, s).unwrap_err();
            assert!(
                e.contains("`@gone` is not defined by an action that fires earlier"),
                "{e}"
            );
        }
        let e = parse("[[actions]]\nat = '10s'\nkind = 'crash'\nnodes = '@typo'\n").unwrap_err();
        assert!(e.contains("no label is defined before it"), "{e}");
        // Labels name chosen nodes: a partition chooses none; a link rule is resolved
        // before any action; a group cannot name a label.
        let e =
            parse("[[actions]]\nat = '10s'\nkind = 'partition'\ngroups = ['0..5']\nlabel = 'x'\n")
                .unwrap_err();
        assert!(e.contains("this kind chooses none"), "{e}");
        let e = parse("[[network.links]]\nfrom = '@x'\nto = 'all'\n").unwrap_err();
        assert!(e.contains("before any action"), "{e}");
        let e = parse("[groups]\na = '@x'\n").unwrap_err();
        assert!(e.contains("group `a` must not refer"), "{e}");
    }

    #[test]
    fn nothing_may_be_scheduled_past_the_end() {
        let e = parse("[[actions]]\nat = '90s'\nkind = 'heal'\n").unwrap_err();
        assert!(
            e.contains("action 0 (Heal) is at 90s, after the end of the run (60s)"),
            "{e}"
        );
        // The last of 10 events, 10 s apart from 20 s, would be at 110 s.
        let e = parse(
            "[[actions]]\nat = '20s'\nkind = 'user_events'\nnodes = 'all'\ncount = 10\nevery = '10s'\n",
        )
        .unwrap_err();
        assert!(e.contains("ends at 110s"), "{e}");
        let e = parse("[[expect]]\nkind = 'converged'\nafter = '2m'\n").unwrap_err();
        assert!(
            e.contains("expectation 0 (converged) starts at 120s"),
            "{e}"
        );
        assert!(parse("[[expect]]\nkind = 'converged'\nafter = '60s'\n").is_ok());
    }

    #[test]
    fn truncating_drops_what_falls_after_the_new_end_and_says_so() {
        let mut s = parse(
            r#"
            [[actions]]
            at = "10s"
            kind = "crash"
            nodes = [4]
            [[actions]]
            at = "20s"
            kind = "user_events"
            nodes = "all"
            count = 5
            every = "5s"
            [[actions]]
            at = "40s"
            kind = "heal"
            [[expect]]
            kind = "converged"
            after = "35s"
            [[expect]]
            kind = "detection"
        "#,
        )
        .unwrap();
        let w = s.truncate(Duration::from_secs(30));
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("2 of its 5 fall after the end"), "{w:?}");
        assert!(w[1].contains("action 2 (Heal at 40s)"), "{w:?}");
        assert!(
            w[2].contains("expectation 0 (converged after 35s)"),
            "{w:?}"
        );
        assert_eq!(s.actions.len(), 2);
        assert_eq!(s.actions[1].count, Some(3));
        assert_eq!(s.expect.len(), 1);
        let mut s = parse(
            "[[expect]]\nkind = 'false_positives'\nfrom = '40s'\n[[expect]]\nkind = \
             'false_positives'\nuntil = '50s'\n",
        )
        .unwrap();
        let w = s.truncate(Duration::from_secs(30));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("expectation 0 (FalsePositives from 40s)"),
            "{w:?}"
        );
        assert_eq!(s.expect.len(), 1);
        assert_eq!(s.expect[0].until, Some(Duration::from_secs(30)));
        s.validate().unwrap();
    }
}
