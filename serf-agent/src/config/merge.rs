//! Go's merge rules over partial configurations, and the final checks that turn the merged
//! result into an [`AgentConfig`].
//!
//! Each source (one config file, or the command line) is read into a [`Partial`] where
//! `None` means "not given". Sources are merged in Go's order (`command.go` `readConfig`:
//! the files in the order named, a directory's `*.json` alphabetically, then the flags
//! over them): a later value wins, `event_handlers`, `start_join` and `retry_join` are
//! appended, tags are merged key by key. As in Go, an empty string or a zero number counts
//! as "not given" (Go's `MergeConfig` tests `!= ""` and `!= 0`); unlike Go, an explicit
//! `false` in a later file does override an earlier `true`.

use super::{AgentConfig, ConfigError, LogLevel, MdnsConfig, Profile};
use crate::handlers::parse_spec;
use serf_proto::SecretKey;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Go's `DefaultBindPort`: the port a bind or advertise address without one gets.
pub const DEFAULT_BIND_PORT: u16 = 7946;
/// Go's `minRetryInterval` and `minBroadcastTimeout`.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Go serf's `ProtocolVersionMin` and `ProtocolVersionMax`.
const PROTOCOL_RANGE: std::ops::RangeInclusive<i64> = 2..=5;

/// One source's settings; `None` (or empty) where the source says nothing.
#[derive(Debug, Default, Clone)]
pub(super) struct Partial {
    pub node_name: Option<String>,
    pub role: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub tags_file: Option<String>,
    pub bind: Option<String>,
    pub interface: Option<String>,
    pub advertise: Option<String>,
    pub encrypt_key: Option<String>,
    pub keyring_file: Option<String>,
    pub event_handlers: Vec<String>,
    pub start_join: Vec<String>,
    pub replay_on_join: Option<bool>,
    pub retry_join: Vec<String>,
    pub retry_interval: Option<Duration>,
    pub retry_max_attempts: Option<u32>,
    pub log_level: Option<String>,
    pub rpc_addr: Option<String>,
    pub rpc_auth: Option<String>,
    pub protocol: Option<i64>,
    pub profile: Option<String>,
    pub snapshot_path: Option<String>,
    pub rejoin_after_leave: Option<bool>,
    pub discover: Option<String>,
    pub mdns_interface: Option<String>,
    pub mdns_disable_ipv4: Option<bool>,
    pub mdns_disable_ipv6: Option<bool>,
    pub enable_syslog: Option<bool>,
    pub syslog_facility: Option<String>,
    pub broadcast_timeout: Option<Duration>,
    pub enable_compression: Option<bool>,
    pub leave_on_terminate: Option<bool>,
    pub skip_leave_on_interrupt: Option<bool>,
    pub reconnect_interval: Option<Duration>,
    pub reconnect_timeout: Option<Duration>,
    pub tombstone_timeout: Option<Duration>,
    pub disable_name_resolution: Option<bool>,
    pub query_size_limit: Option<usize>,
    pub query_response_size_limit: Option<usize>,
    pub user_event_size_limit: Option<usize>,
    pub statsite_addr: Option<String>,
    pub statsd_addr: Option<String>,
    pub prometheus_addr: Option<String>,
    pub disable_coordinates: Option<bool>,
    pub validate_node_names: Option<bool>,
}

macro_rules! later_wins {
    ($acc:ident, $later:ident; $($field:ident),+ $(,)?) => {
        $( if $later.$field.is_some() { $acc.$field = $later.$field; } )+
    };
}

impl Partial {
    /// Merges `later` over `self` by Go's rules.
    pub fn merge(&mut self, later: Partial) {
        later_wins!(self, later;
            node_name, role, tags_file, bind, interface, advertise, encrypt_key,
            keyring_file, replay_on_join, retry_interval, retry_max_attempts, log_level,
            rpc_addr, rpc_auth, protocol, profile, snapshot_path, rejoin_after_leave,
            discover, mdns_interface, mdns_disable_ipv4, mdns_disable_ipv6, enable_syslog,
            syslog_facility, broadcast_timeout, enable_compression, leave_on_terminate,
            skip_leave_on_interrupt, reconnect_interval, reconnect_timeout,
            tombstone_timeout, disable_name_resolution, query_size_limit,
            query_response_size_limit, user_event_size_limit, statsite_addr, statsd_addr,
            prometheus_addr, disable_coordinates, validate_node_names,
        );
        self.tags.extend(later.tags);
        self.event_handlers.extend(later.event_handlers);
        self.start_join.extend(later.start_join);
        self.retry_join.extend(later.retry_join);
    }

    /// Applies the defaults and checks everything that can be checked without starting
    /// the agent. `hostname` gives the default node name.
    pub fn finish(
        self,
        hostname: impl FnOnce() -> Result<String, String>,
    ) -> Result<AgentConfig, ConfigError> {
        let d = AgentConfig::default();
        let invalid = |m: String| ConfigError::Invalid(m);
        let mut warnings = Vec::new();

        let node_name = match self.node_name {
            Some(n) => n,
            None => hostname().map_err(|e| {
                invalid(format!(
                    "Error determining hostname: {e}; give the node a name with -node=NAME"
                ))
            })?,
        };

        for spec in &self.event_handlers {
            parse_spec(spec).map_err(|e| invalid(e.to_string()))?;
        }

        let log_level = match &self.log_level {
            None => d.log_level,
            Some(s) => LogLevel::parse(s).ok_or_else(|| {
                invalid(format!(
                    "Invalid log level: {}. Valid log levels are: [TRACE DEBUG INFO WARN ERR]",
                    s.to_uppercase()
                ))
            })?,
        };
        let profile = match &self.profile {
            None => d.profile,
            Some(s) => Profile::parse(s).ok_or_else(|| {
                invalid(format!(
                    "Unknown profile: {s} (use -profile=lan, wan or local)"
                ))
            })?,
        };
        let protocol = match self.protocol {
            None => d.protocol,
            Some(p) if PROTOCOL_RANGE.contains(&p) => p as u8,
            Some(p) => {
                return Err(invalid(format!(
                    "protocol {p} is not supported: use a version between {} and {}",
                    PROTOCOL_RANGE.start(),
                    PROTOCOL_RANGE.end()
                )));
            }
        };

        let mut bind = match &self.bind {
            None => d.bind,
            Some(s) => resolve_addr(s, Some(DEFAULT_BIND_PORT))
                .map_err(|e| invalid(format!("Invalid bind address: {e}")))?,
        };
        let advertise = match &self.advertise {
            None => None,
            Some(s) => Some(
                resolve_addr(s, Some(DEFAULT_BIND_PORT))
                    .map_err(|e| invalid(format!("Invalid advertise address: {e}")))?,
            ),
        };
        let rpc_addr = match &self.rpc_addr {
            None => d.rpc_addr,
            Some(s) => resolve_addr(s, None)
                .map_err(|e| invalid(format!("Invalid RPC address (rpc_addr): {e}")))?,
        };
        let prometheus_addr = match &self.prometheus_addr {
            None => None,
            Some(s) => Some(resolve_addr(s, None).map_err(|e| {
                invalid(format!("Invalid Prometheus address (prometheus_addr): {e}"))
            })?),
        };

        if let Some(iface) = &self.interface {
            bind = bind_on_interface(iface, bind, &mut warnings)?;
        }

        let encrypt_key = match &self.encrypt_key {
            None => None,
            Some(k) => Some(decode_key(k).map_err(|e| {
                invalid(format!(
                    "Invalid encryption key (encrypt_key / -encrypt): {e}"
                ))
            })?),
        };
        if encrypt_key.is_some() && self.keyring_file.is_some() {
            return Err(invalid(
                "Encryption key not allowed while using a keyring: give either encrypt_key \
                 (-encrypt) or keyring_file (-keyring-file), not both; to start from a key, \
                 write it into the keyring file as [\"KEY\"]"
                    .to_owned(),
            ));
        }

        let mdns = MdnsConfig {
            interface: self.mdns_interface,
            disable_ipv4: self.mdns_disable_ipv4.unwrap_or(false),
            disable_ipv6: self.mdns_disable_ipv6.unwrap_or(false),
        };
        if mdns.interface.is_some() && self.discover.is_none() {
            return Err(invalid(
                "mDNS interface specified without enabling mDNS discovery: add -discover=CLUSTER \
                 or remove -mdns-iface"
                    .to_owned(),
            ));
        }
        if let Some(name) = &mdns.interface {
            interface_ips(name)
                .map_err(|e| invalid(format!("Invalid mDNS network interface: {e}")))?;
        }
        if let Some(cluster) = &self.discover {
            crate::discover::validate_cluster_name(cluster).map_err(|e| invalid(e.to_string()))?;
        }
        if self.discover.is_some() && mdns.disable_ipv4 && mdns.disable_ipv6 {
            return Err(invalid(
                "Invalid mDNS configuration: both IPv4 and IPv6 are disabled; keep at least \
                 one of them (drop -mdns-disable-ipv4 or -mdns-disable-ipv6)"
                    .to_owned(),
            ));
        }

        let mut tags = self.tags;
        if let Some(role) = &self.role {
            warnings.push("Deprecation warning: 'Role' has been replaced with 'Tags'".to_owned());
            tags.insert("role".to_owned(), role.clone());
        }
        if self.tags_file.is_some() && !tags.is_empty() {
            return Err(invalid(
                "Tags config not allowed while using tag files: the tags come from tags_file \
                 (-tags-file); remove `tags`, `-tag` and `role` from the configuration, or \
                 drop the tags file"
                    .to_owned(),
            ));
        }

        let mut retry_interval = self.retry_interval.unwrap_or(d.retry_interval);
        if retry_interval < MIN_INTERVAL {
            retry_interval = MIN_INTERVAL;
            warnings.push("Warning: 'RetryInterval' is too low. Setting to 1s".to_owned());
        }
        let mut broadcast_timeout = self.broadcast_timeout.unwrap_or(d.broadcast_timeout);
        if broadcast_timeout < MIN_INTERVAL {
            broadcast_timeout = MIN_INTERVAL;
            warnings.push("Warning: 'BroadcastTimeout' is too low. Setting to 1s".to_owned());
        }
        let rejoin_after_leave = self.rejoin_after_leave.unwrap_or(false);
        if rejoin_after_leave && self.snapshot_path.is_none() {
            warnings.push("Warning: 'RejoinAfterLeave' enabled without snapshot file".to_owned());
        }

        Ok(AgentConfig {
            node_name,
            role: self.role,
            tags,
            tags_file: self.tags_file.map(PathBuf::from),
            bind,
            interface: self.interface,
            advertise,
            encrypt_key,
            keyring_file: self.keyring_file.map(PathBuf::from),
            event_handlers: self.event_handlers,
            start_join: self.start_join,
            replay_on_join: self.replay_on_join.unwrap_or(false),
            retry_join: self.retry_join,
            retry_interval,
            retry_max_attempts: self.retry_max_attempts.unwrap_or(0),
            log_level,
            rpc_addr,
            rpc_auth: self.rpc_auth,
            protocol,
            profile,
            snapshot_path: self.snapshot_path.map(PathBuf::from),
            rejoin_after_leave,
            discover: self.discover,
            mdns,
            enable_syslog: self.enable_syslog.unwrap_or(false),
            syslog_facility: self.syslog_facility.unwrap_or(d.syslog_facility),
            broadcast_timeout,
            enable_compression: self.enable_compression.unwrap_or(true),
            leave_on_terminate: self.leave_on_terminate.unwrap_or(false),
            skip_leave_on_interrupt: self.skip_leave_on_interrupt.unwrap_or(false),
            reconnect_interval: self.reconnect_interval.unwrap_or(d.reconnect_interval),
            reconnect_timeout: self.reconnect_timeout.unwrap_or(d.reconnect_timeout),
            tombstone_timeout: self.tombstone_timeout.unwrap_or(d.tombstone_timeout),
            disable_name_resolution: self.disable_name_resolution.unwrap_or(false),
            query_size_limit: self.query_size_limit.unwrap_or(d.query_size_limit),
            query_response_size_limit: self
                .query_response_size_limit
                .unwrap_or(d.query_response_size_limit),
            user_event_size_limit: self
                .user_event_size_limit
                .unwrap_or(d.user_event_size_limit),
            statsite_addr: self.statsite_addr,
            statsd_addr: self.statsd_addr,
            prometheus_addr,
            disable_coordinates: self.disable_coordinates.unwrap_or(false),
            validate_node_names: self.validate_node_names.unwrap_or(false),
            warnings,
        })
    }
}

/// Resolves `host:port`, `[v6]:port`, a bare IP or a host name (Go's `AddrParts`:
/// `net.ResolveTCPAddr` after adding `default_port` when the port is missing). With no
/// default port the port is required. `:7373` means every address, as in Go.
pub(crate) fn resolve_addr(s: &str, default_port: Option<u16>) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return match default_port {
            Some(p) => Ok(SocketAddr::new(ip, p)),
            None => Err(format!(
                "missing port in address \"{s}\" (write it as {s}:PORT)"
            )),
        };
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
            let port: u16 = p
                .parse()
                .map_err(|_| format!("invalid port \"{p}\" in address \"{s}\""))?;
            (h.trim_start_matches('[').trim_end_matches(']'), port)
        }
        Some(_) => {
            return Err(format!(
                "address \"{s}\": write an IPv6 address as [::1]:7946"
            ));
        }
        None => match default_port {
            Some(p) => (s, p),
            None => {
                return Err(format!(
                    "missing port in address \"{s}\" (write it as {s}:PORT)"
                ));
            }
        },
    };
    if host.is_empty() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve \"{s}\": {e}"))?
        .next()
        .ok_or_else(|| format!("\"{s}\" resolves to no address"))
}

/// Decodes a base64 key (standard alphabet, padded, as `serf keygen` prints).
pub(crate) fn decode_key(s: &str) -> Result<SecretKey, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| format!("not valid base64 ({e}); generate a key with `serf keygen`"))?;
    match bytes.len() {
        32 => SecretKey::from_slice(&bytes).map_err(|e| e.to_string()),
        16 | 24 => Err(format!(
            "the key is {} bytes (an AES-{} key for HashiCorp's agent); this agent encrypts \
             with XChaCha20-Poly1305, which needs 32 bytes: generate one with `serf keygen`",
            bytes.len(),
            bytes.len() * 8
        )),
        n => Err(format!(
            "the key is {n} bytes; keys are 32 bytes, base64-encoded: generate one with \
             `serf keygen`"
        )),
    }
}

/// The IP addresses of a network interface, or why it cannot be used.
pub(crate) fn interface_ips(name: &str) -> Result<Vec<IpAddr>, String> {
    let all = if_addrs::get_if_addrs().map_err(|e| format!("cannot list interfaces: {e}"))?;
    let ips: Vec<IpAddr> = all
        .iter()
        .filter(|i| i.name == name)
        .map(|i| i.ip())
        .collect();
    if ips.is_empty() {
        let mut names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        return Err(format!(
            "no interface named '{name}' with an address (interfaces with addresses: {})",
            names.join(", ")
        ));
    }
    Ok(ips)
}

/// Go's `-iface` rule (`command.go` `setupAgent`): with a wildcard bind IP, bind the
/// interface's first address that is not link-local; with a specific one, check the
/// interface has it.
fn bind_on_interface(
    iface: &str,
    bind: SocketAddr,
    warnings: &mut Vec<String>,
) -> Result<SocketAddr, ConfigError> {
    let ips = interface_ips(iface)
        .map_err(|e| ConfigError::Invalid(format!("Invalid network interface: {e}")))?;
    if bind.ip().is_unspecified() {
        let ip = ips
            .into_iter()
            .find(|ip| !is_link_local(ip))
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "Failed to find usable address for interface '{iface}' (it has only \
                     link-local addresses); give -bind=IP instead"
                ))
            })?;
        warnings.push(format!("Using interface '{iface}' address '{ip}'"));
        Ok(SocketAddr::new(ip, bind.port()))
    } else if ips.contains(&bind.ip()) {
        Ok(bind)
    } else {
        Err(ConfigError::Invalid(format!(
            "Interface '{iface}' has no '{}' address; bind to one of its addresses or drop \
             -iface",
            bind.ip()
        )))
    }
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_the_default_port_as_go_does() {
        let p = Some(DEFAULT_BIND_PORT);
        assert_eq!(
            resolve_addr("0.0.0.0", p).unwrap(),
            "0.0.0.0:7946".parse().unwrap()
        );
        assert_eq!(
            resolve_addr("[::1]", p).unwrap(),
            "[::1]:7946".parse().unwrap()
        );
        assert_eq!(
            resolve_addr("::1", p).unwrap(),
            "[::1]:7946".parse().unwrap()
        );
        assert_eq!(
            resolve_addr("[::1]:5000", p).unwrap(),
            "[::1]:5000".parse().unwrap()
        );
        assert_eq!(
            resolve_addr(":7373", None).unwrap(),
            "0.0.0.0:7373".parse().unwrap()
        );
        assert!(
            resolve_addr("127.0.0.1", None)
                .unwrap_err()
                .contains("missing port")
        );
        assert!(
            resolve_addr("127.0.0.1:99999", p)
                .unwrap_err()
                .contains("invalid port")
        );
        let local = resolve_addr("localhost:5000", None).unwrap();
        assert!(local.ip().is_loopback() && local.port() == 5000);
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        let k32 = "QHOYjmYlxSCBhdfiolhtDQ+Jg9pcn4WEjqHR+PbSaMs=";
        assert!(decode_key(k32).is_ok());
        assert!(
            decode_key("not base64!")
                .unwrap_err()
                .contains("serf keygen")
        );
        let k16 = "5K9OtfP7efFrNKe5WCQvXw==";
        assert!(decode_key(k16).unwrap_err().contains("XChaCha20"));
        assert!(decode_key("AAAA").unwrap_err().contains("3 bytes"));
    }

    #[test]
    fn link_local_addresses_are_recognised() {
        assert!(is_link_local(&"169.254.1.1".parse().unwrap()));
        assert!(is_link_local(&"fe80::1".parse().unwrap()));
        assert!(!is_link_local(&"10.0.0.1".parse().unwrap()));
        assert!(!is_link_local(&"::1".parse().unwrap()));
    }
}
