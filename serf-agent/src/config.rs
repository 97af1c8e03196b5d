//! The agent's configuration: HashiCorp's `serf agent` flags and JSON keys
//! (go-serf.md §5.2), merged by Go's rules into one [`AgentConfig`].
//!
//! This struct is the contract between the parts of the agent: the parser fills it from
//! flags and files, the agent reads it. Field names follow the JSON keys. Defaults are
//! Go's; `Option` marks a setting whose absence means something (off, or "use the
//! profile's value").
//!
//! The entry points:
//! - [`parse_agent_args`]: the arguments after `serf agent` (flags and the config files
//!   they name) into a validated [`AgentConfig`];
//! - [`serf_config`]: the core's [`serf_proto::serf::Config`] for it (profile, keyring,
//!   tags, limits, timeouts);
//! - [`save_tags_file`], [`save_keyring_file`] (and their `load_` twins): the files the
//!   agent rewrites when tags or keys change at run time;
//! - [`agent_help`]: the text of `serf agent -h`.
//!
//! ```
//! use serf_agent::config::parse_agent_args;
//! let args: Vec<String> = ["-node=foo", "-bind", "127.0.0.1:5000", "--tag", "dc=eu"]
//!     .iter().map(|s| s.to_string()).collect();
//! let cfg = parse_agent_args(&args).unwrap();
//! assert_eq!(cfg.node_name, "foo");
//! assert_eq!(cfg.bind.port(), 5000);
//! assert_eq!(cfg.tags["dc"], "eu");
//! let core = serf_agent::config::serf_config(&cfg).unwrap();
//! assert_eq!(core.tags["dc"], "eu");
//! ```

mod core;
mod duration;
mod file;
mod flags;
mod help;
mod merge;
mod persist;

use serf_proto::SecretKey;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use self::core::serf_config;
pub use self::duration::parse_go_duration;
pub use self::flags::parse_agent_args;
pub use self::help::agent_help;
pub use self::persist::{load_keyring_file, load_tags_file, save_keyring_file, save_tags_file};

/// Why `serf agent`'s configuration was refused. Every message names the flag, key or file
/// at fault and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `-h`, `-help` or `--help` was given: print [`agent_help`] and exit.
    #[error("help requested (print serf_agent::config::agent_help())")]
    HelpRequested,
    /// A command-line flag is unknown, lacks its value or has a bad one.
    #[error("{0}\nRun `serf agent -h` for the list of flags.")]
    Flag(String),
    /// A configuration file could not be read or decoded, or has an unknown key.
    #[error("Error decoding '{path}': {message}")]
    File {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong in it.
        message: String,
    },
    /// A file (config, tags, keyring) or directory could not be read or written.
    #[error("Error reading '{path}': {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The merged settings cannot work together; the message says what to change.
    #[error("{0}")]
    Invalid(String),
}

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

impl Profile {
    /// Parses `lan`, `wan` or `local` (any case).
    pub fn parse(s: &str) -> Option<Profile> {
        match s.to_ascii_lowercase().as_str() {
            "lan" => Some(Profile::Lan),
            "wan" => Some(Profile::Wan),
            "local" => Some(Profile::Local),
            _ => None,
        }
    }

    /// The profile's name as written in flags and files.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Lan => "lan",
            Profile::Wan => "wan",
            Profile::Local => "local",
        }
    }
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

impl LogLevel {
    /// Every level, lowest first.
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Err,
    ];

    /// Parses a level name in any case, as Go does (`info`, `INFO`, ...).
    pub fn parse(s: &str) -> Option<LogLevel> {
        LogLevel::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
    }

    /// HashiCorp's spelling: `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERR`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Err => "ERR",
        }
    }
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
    /// `tags_file` / `-tags-file`: JSON map, persisted on `serf tags`; not with `tags`
    /// (nor `role`, which becomes a tag). Read by [`serf_config`] when it exists.
    pub tags_file: Option<PathBuf>,
    /// `bind` / `-bind`: UDP and TCP; default `0.0.0.0:7946`. A bare IP takes port 7946.
    pub bind: SocketAddr,
    /// `interface` / `-iface`: pick or verify the bind IP from this interface.
    pub interface: Option<String>,
    /// `advertise` / `-advertise`: the address others reach us at (NAT).
    pub advertise: Option<SocketAddr>,
    /// `encrypt_key` / `-encrypt`: one base64 key of 32 bytes (decoded here). Go also
    /// takes 16 or 24 bytes (AES-128/192); our cipher is XChaCha20-Poly1305, which needs
    /// 32, so shorter keys are refused with a message pointing at `serf keygen`. Not with
    /// `keyring_file`.
    pub encrypt_key: Option<SecretKey>,
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
    /// `retry_interval` / `-retry-interval`: default 30 s; a shorter value is raised to
    /// 1 s with a warning, as Go does.
    pub retry_interval: Duration,
    /// `retry_max_attempts` / `-retry-max`: 0 = forever.
    pub retry_max_attempts: u32,
    /// `log_level` / `-log-level`: default INFO.
    pub log_level: LogLevel,
    /// `rpc_addr` / `-rpc-addr`: default `127.0.0.1:7373`.
    pub rpc_addr: SocketAddr,
    /// `rpc_auth`: the token the RPC `auth` command must present.
    pub rpc_auth: Option<String>,
    /// `protocol` / `-protocol`: default 5, Go serf's range 2..=5. Accepted so configs and
    /// scripts keep working; our wire format has its own versioning, so the value does
    /// not change what is sent.
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
    /// `broadcast_timeout` / `-broadcast-timeout`: default 5 s; a shorter value is raised
    /// to 1 s with a warning, as Go does.
    pub broadcast_timeout: Duration,
    /// `enable_compression` (`-disable-compression` clears it): default on. Unlike Go,
    /// where the flag's default always overwrote the files, `"enable_compression": false`
    /// in a file takes effect.
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
    /// The notices Go prints while reading the configuration: warnings (a deprecated
    /// `role`, a too short `retry_interval` or `broadcast_timeout` raised to 1 s,
    /// `rejoin_after_leave` without a snapshot) and the address `-iface` chose. The agent
    /// prints them at start, in order.
    pub warnings: Vec<String>,
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
            warnings: Vec::new(),
        }
    }
}
