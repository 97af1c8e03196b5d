//! The agent's configuration: HashiCorp's `serf agent` flags and JSON keys
//! (go-serf.md §5.2), merged by Go's rules into one [`AgentConfig`].
//!
//! This struct is the contract between the parts of the agent: the parser fills it from
//! flags and files, the agent reads it. Field names follow the JSON keys. Defaults are
//! Go's; `Option` marks a setting whose absence means something (off, or "use the
//! profile's value").

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which memberlist preset the node starts from (`-profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Local-area network (the default).
    #[default]
    Lan,
    /// Wide-area network: slower probes, more tolerance.
    Wan,
    /// Loopback: fast probes, for one machine.
    Local,
}

/// The agent's log levels, HashiCorp's names (`-log-level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    /// `TRACE`
    Trace,
    /// `DEBUG`
    Debug,
    /// `INFO` (the default)
    #[default]
    Info,
    /// `WARN`
    Warn,
    /// `ERR`
    Err,
}

/// mDNS discovery settings (`mdns` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MdnsConfig {
    /// `interface`: the interface to announce and query on.
    pub interface: Option<String>,
    /// `disable_ipv4`
    pub disable_ipv4: bool,
    /// `disable_ipv6`
    pub disable_ipv6: bool,
}

/// Everything `serf agent` is configured with, after flags and files are merged.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// `node_name` / `-node`; default the host name.
    pub node_name: String,
    /// `role` / `-role`: deprecated, becomes the `role` tag.
    pub role: Option<String>,
    /// `tags` / `-tag k=v`, merged key by key.
    pub tags: BTreeMap<String, String>,
    /// `tags_file` / `-tags-file`: JSON map, persisted on `serf tags`; not with `tags`.
    pub tags_file: Option<PathBuf>,
    /// `bind` / `-bind`: UDP and TCP; default `0.0.0.0:7946`. A bare IP takes port 7946.
    pub bind: SocketAddr,
    /// `interface` / `-iface`: pick or verify the bind IP from this interface.
    pub interface: Option<String>,
    /// `advertise` / `-advertise`: the address others reach us at (NAT).
    pub advertise: Option<SocketAddr>,
    /// `encrypt_key` / `-encrypt`: one 32-byte key (base64 of 16, 24 or 32 bytes in Go;
    /// decoded here). Not with `keyring_file`.
    pub encrypt_key: Option<Vec<u8>>,
    /// `keyring_file` / `-keyring-file`: JSON array of base64 keys, the first primary.
    pub keyring_file: Option<PathBuf>,
    /// `event_handlers` / `-event-handler`: appended across files and flags.
    pub event_handlers: Vec<String>,
    /// `start_join` / `-join`: joined once at start; failure exits the agent.
    pub start_join: Vec<String>,
    /// `replay_on_join` / `-replay`
    pub replay_on_join: bool,
    /// `retry_join` / `-retry-join`: retried in the background.
    pub retry_join: Vec<String>,
    /// `retry_interval` / `-retry-interval`: default 30 s, at least 1 s.
    pub retry_interval: Duration,
    /// `retry_max_attempts` / `-retry-max`: 0 = forever.
    pub retry_max_attempts: u32,
    /// `log_level` / `-log-level`: default INFO.
    pub log_level: LogLevel,
    /// `rpc_addr` / `-rpc-addr`: default `127.0.0.1:7373`.
    pub rpc_addr: SocketAddr,
    /// `rpc_auth`: the token the RPC `auth` command must present.
    pub rpc_auth: Option<String>,
    /// `protocol` / `-protocol`: default 5.
    pub protocol: u8,
    /// `profile` / `-profile`: default `lan`.
    pub profile: Profile,
    /// `snapshot_path` / `-snapshot`: off by default.
    pub snapshot_path: Option<PathBuf>,
    /// `rejoin_after_leave` / `-rejoin`
    pub rejoin_after_leave: bool,
    /// `discover` / `-discover`: mDNS cluster name.
    pub discover: Option<String>,
    /// `mdns` / `-mdns-iface`, `-mdns-disable-ipv4`, `-mdns-disable-ipv6`.
    pub mdns: MdnsConfig,
    /// `enable_syslog` / `-syslog`
    pub enable_syslog: bool,
    /// `syslog_facility`: default `LOCAL0`.
    pub syslog_facility: String,
    /// `broadcast_timeout` / `-broadcast-timeout`: default 5 s, at least 1 s.
    pub broadcast_timeout: Duration,
    /// `enable_compression` (`-disable-compression` clears it): default on.
    pub enable_compression: bool,
    /// `leave_on_terminate`: SIGTERM leaves gracefully; default false.
    pub leave_on_terminate: bool,
    /// `skip_leave_on_interrupt`: SIGINT exits without a leave; default false.
    pub skip_leave_on_interrupt: bool,
    /// `reconnect_interval`: default 30 s.
    pub reconnect_interval: Duration,
    /// `reconnect_timeout`: default 24 h.
    pub reconnect_timeout: Duration,
    /// `tombstone_timeout`: default 24 h.
    pub tombstone_timeout: Duration,
    /// `disable_name_resolution`
    pub disable_name_resolution: bool,
    /// `query_size_limit`: default 1024.
    pub query_size_limit: usize,
    /// `query_response_size_limit`: default 1024.
    pub query_response_size_limit: usize,
    /// `user_event_size_limit`: default 512.
    pub user_event_size_limit: usize,
    /// `statsite_addr`
    pub statsite_addr: Option<String>,
    /// `statsd_addr`
    pub statsd_addr: Option<String>,
    /// `prometheus_addr` (ours): serve every metric in Prometheus text format over HTTP.
    pub prometheus_addr: Option<SocketAddr>,
    /// `disable_coordinates`: parsed; Go never passes it to Serf.
    pub disable_coordinates: bool,
    /// `validate_node_names`: parsed; Go never passes it to Serf.
    pub validate_node_names: bool,
}

impl Default for AgentConfig {
    fn default() -> AgentConfig {
        AgentConfig {
            node_name: String::new(),
            role: None,
            tags: BTreeMap::new(),
            tags_file: None,
            bind: SocketAddr::from(([0, 0, 0, 0], 7946)),
            interface: None,
            advertise: None,
            encrypt_key: None,
            keyring_file: None,
            event_handlers: Vec::new(),
            start_join: Vec::new(),
            replay_on_join: false,
            retry_join: Vec::new(),
            retry_interval: Duration::from_secs(30),
            retry_max_attempts: 0,
            log_level: LogLevel::Info,
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], 7373)),
            rpc_auth: None,
            protocol: 5,
            profile: Profile::Lan,
            snapshot_path: None,
            rejoin_after_leave: false,
            discover: None,
            mdns: MdnsConfig::default(),
            enable_syslog: false,
            syslog_facility: "LOCAL0".to_owned(),
            broadcast_timeout: Duration::from_secs(5),
            enable_compression: true,
            leave_on_terminate: false,
            skip_leave_on_interrupt: false,
            reconnect_interval: Duration::from_secs(30),
            reconnect_timeout: Duration::from_secs(24 * 3600),
            tombstone_timeout: Duration::from_secs(24 * 3600),
            disable_name_resolution: false,
            query_size_limit: 1024,
            query_response_size_limit: 1024,
            user_event_size_limit: 512,
            statsite_addr: None,
            statsd_addr: None,
            prometheus_addr: None,
            disable_coordinates: false,
            validate_node_names: false,
        }
    }
}
