//! JSON configuration files (`-config-file`, `-config-dir`), decoded as Go decodes them:
//! every key known or an error naming it, keys matched without regard to case (Go's
//! mapstructure falls back to a case-insensitive match), durations as Go duration strings.

use super::ConfigError;
use super::duration::parse_go_duration;
use super::merge::Partial;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Configuration files larger than this are refused: a real one is a few KiB, and the
/// limit keeps a wrong path (a log, a device) from being read into memory.
pub(crate) const MAX_FILE_SIZE: u64 = 1 << 20;

/// Reads the paths in order, each a file or a directory whose `*.json` files are read in
/// alphabetical order (not recursively), merging each over the previous ones (Go's
/// `ReadConfigPaths`).
pub(super) fn read_config_paths(paths: &[PathBuf]) -> Result<Partial, ConfigError> {
    let mut result = Partial::default();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        if !meta.is_dir() {
            result.merge(read_config_file(path)?);
            continue;
        }
        let mut files = Vec::new();
        let entries = std::fs::read_dir(path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            let name = entry.file_name();
            let is_json = name.to_str().is_some_and(|n| n.ends_with(".json"));
            // Follow symlinks as Go's Readdir + Open does; skip sub-directories.
            let is_dir = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
            if is_json && !is_dir {
                files.push(entry.path());
            }
        }
        // Go sorts by name (bytes); file_name order from the OS is arbitrary.
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        for f in files {
            result.merge(read_config_file(&f)?);
        }
    }
    Ok(result)
}

/// Reads and decodes one configuration file.
pub(super) fn read_config_file(path: &Path) -> Result<Partial, ConfigError> {
    let bytes = read_bounded(path)?;
    decode_config(&bytes).map_err(|message| ConfigError::File {
        path: path.to_owned(),
        message,
    })
}

/// Reads a whole file of at most [`MAX_FILE_SIZE`] bytes.
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read as _;
    let io = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    f.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > MAX_FILE_SIZE {
        return Err(ConfigError::File {
            path: path.to_owned(),
            message: format!(
                "the file is larger than {MAX_FILE_SIZE} bytes; is it the right file?"
            ),
        });
    }
    Ok(buf)
}

/// Decodes one configuration document. The error names the key at fault.
pub(crate) fn decode_config(bytes: &[u8]) -> Result<Partial, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err(format!(
            "the configuration must be a JSON object ({{\"node_name\": ...}}), not {}",
            kind(&value)
        ));
    };
    let mut p = Partial::default();
    for (key, v) in &map {
        decode_key(&mut p, key, v)?;
    }
    Ok(p)
}

fn decode_key(p: &mut Partial, key: &str, v: &Value) -> Result<(), String> {
    let k = key.to_ascii_lowercase();
    match k.as_str() {
        "node_name" => p.node_name = string(key, v)?,
        "role" => p.role = string(key, v)?,
        "tags" => p.tags = string_map(key, v)?,
        "tags_file" => p.tags_file = string(key, v)?,
        "bind" => p.bind = string(key, v)?,
        "advertise" => p.advertise = string(key, v)?,
        "interface" => p.interface = string(key, v)?,
        "encrypt_key" => p.encrypt_key = string(key, v)?,
        "keyring_file" => p.keyring_file = string(key, v)?,
        "log_level" => p.log_level = string(key, v)?,
        "rpc_addr" => p.rpc_addr = string(key, v)?,
        "rpc_auth" => p.rpc_auth = string(key, v)?,
        "protocol" => p.protocol = int(key, v, 255)?.map(|n| n as i64),
        "replay_on_join" => p.replay_on_join = boolean(key, v)?,
        "query_response_size_limit" => p.query_response_size_limit = size(key, v)?,
        "query_size_limit" => p.query_size_limit = size(key, v)?,
        "user_event_size_limit" => p.user_event_size_limit = size(key, v)?,
        "start_join" => p.start_join = string_list(key, v)?,
        "event_handlers" => p.event_handlers = string_list(key, v)?,
        "retry_join" => p.retry_join = string_list(key, v)?,
        "profile" => p.profile = string(key, v)?,
        "snapshot_path" => p.snapshot_path = string(key, v)?,
        "leave_on_terminate" => p.leave_on_terminate = boolean(key, v)?,
        "skip_leave_on_interrupt" => p.skip_leave_on_interrupt = boolean(key, v)?,
        "discover" => p.discover = string(key, v)?,
        "mdns" => decode_mdns(p, key, v)?,
        "reconnect_interval" => p.reconnect_interval = duration(key, v)?,
        "reconnect_timeout" => p.reconnect_timeout = duration(key, v)?,
        "tombstone_timeout" => p.tombstone_timeout = duration(key, v)?,
        "retry_interval" => p.retry_interval = duration(key, v)?,
        "broadcast_timeout" => p.broadcast_timeout = duration(key, v)?,
        "disable_name_resolution" => p.disable_name_resolution = boolean(key, v)?,
        "enable_syslog" => p.enable_syslog = boolean(key, v)?,
        "syslog_facility" => p.syslog_facility = string(key, v)?,
        "retry_max_attempts" => {
            p.retry_max_attempts = int(key, v, u64::from(u32::MAX))?.map(|n| n as u32)
        }
        "rejoin_after_leave" => p.rejoin_after_leave = boolean(key, v)?,
        "enable_compression" => p.enable_compression = boolean(key, v)?,
        "statsite_addr" => p.statsite_addr = string(key, v)?,
        "statsd_addr" => p.statsd_addr = string(key, v)?,
        "prometheus_addr" => p.prometheus_addr = string(key, v)?,
        "disable_coordinates" => p.disable_coordinates = boolean(key, v)?,
        "validate_node_names" => p.validate_node_names = boolean(key, v)?,
        // A field of Go's Config without a tag, so mapstructure matched its Go name;
        // accepted so such files keep loading, and meaningless for our RPC codec.
        "msgpackusenewtimeformat" => {
            boolean(key, v)?;
        }
        _ => return Err(unknown_key(key)),
    }
    Ok(())
}

fn decode_mdns(p: &mut Partial, key: &str, v: &Value) -> Result<(), String> {
    let map = match v {
        Value::Null => return Ok(()),
        Value::Object(m) => m,
        other => return Err(wrong_type(key, "an object", other)),
    };
    for (k, v) in map {
        let path = format!("{key}.{k}");
        match k.to_ascii_lowercase().as_str() {
            "interface" => p.mdns_interface = string(&path, v)?,
            "disable_ipv4" => p.mdns_disable_ipv4 = boolean(&path, v)?,
            "disable_ipv6" => p.mdns_disable_ipv6 = boolean(&path, v)?,
            _ => {
                return Err(format!(
                    "unknown configuration key \"{path}\" (mdns takes interface, \
                     disable_ipv4 and disable_ipv6)"
                ));
            }
        }
    }
    Ok(())
}

fn unknown_key(key: &str) -> String {
    // Point at the likely intended key when the difference is small (a typo).
    let near = KNOWN_KEYS
        .iter()
        .filter(|k| edit_distance(&key.to_ascii_lowercase(), k) <= 2)
        .min_by_key(|k| edit_distance(&key.to_ascii_lowercase(), k));
    match near {
        Some(k) => format!("unknown configuration key \"{key}\" (did you mean \"{k}\"?)"),
        None => format!(
            "unknown configuration key \"{key}\"; see `serf agent -h` for the keys the \
             agent reads"
        ),
    }
}

/// The keys [`decode_key`] accepts, for suggestions.
const KNOWN_KEYS: &[&str] = &[
    "node_name",
    "role",
    "tags",
    "tags_file",
    "bind",
    "advertise",
    "interface",
    "encrypt_key",
    "keyring_file",
    "log_level",
    "rpc_addr",
    "rpc_auth",
    "protocol",
    "replay_on_join",
    "query_response_size_limit",
    "query_size_limit",
    "user_event_size_limit",
    "start_join",
    "event_handlers",
    "retry_join",
    "profile",
    "snapshot_path",
    "leave_on_terminate",
    "skip_leave_on_interrupt",
    "discover",
    "mdns",
    "reconnect_interval",
    "reconnect_timeout",
    "tombstone_timeout",
    "retry_interval",
    "broadcast_timeout",
    "disable_name_resolution",
    "enable_syslog",
    "syslog_facility",
    "retry_max_attempts",
    "rejoin_after_leave",
    "enable_compression",
    "statsite_addr",
    "statsd_addr",
    "prometheus_addr",
    "disable_coordinates",
    "validate_node_names",
];

/// Levenshtein distance, for keys of a few dozen bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(key: &str, want: &str, got: &Value) -> String {
    format!("\"{key}\" must be {want}, not {}", kind(got))
}

/// A string; empty counts as not given (Go's merge skips `""`).
fn string(key: &str, v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(wrong_type(key, "a string", other)),
    }
}

fn boolean(key: &str, v: &Value) -> Result<Option<bool>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        other => Err(wrong_type(key, "true or false", other)),
    }
}

/// A non-negative integer up to `max`; zero counts as not given (Go's merge skips 0).
/// An integral float (`4.0`) is accepted, as JSON numbers are floats to Go.
fn int(key: &str, v: &Value, max: u64) -> Result<Option<u64>, String> {
    let n = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| format!("\"{key}\" must be a whole number of at least 0, not {n}"))?,
        other => return Err(wrong_type(key, "a number", other)),
    };
    if n > max {
        return Err(format!("\"{key}\" is {n}; the most it can be is {max}"));
    }
    Ok((n != 0).then_some(n))
}

fn size(key: &str, v: &Value) -> Result<Option<usize>, String> {
    Ok(int(key, v, u32::MAX.into())?.map(|n| n as usize))
}

/// A Go duration string; `"0"` or `""` count as not given.
fn duration(key: &str, v: &Value) -> Result<Option<std::time::Duration>, String> {
    match string(key, v)? {
        None => Ok(None),
        Some(s) => {
            let d = parse_go_duration(&s).map_err(|e| format!("\"{key}\": {e}"))?;
            Ok((!d.is_zero()).then_some(d))
        }
    }
}

fn string_list(key: &str, v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                other => Err(wrong_type(&format!("{key}[]"), "a string", other)),
            })
            .collect(),
        other => Err(wrong_type(key, "an array of strings", other)),
    }
}

fn string_map(key: &str, v: &Value) -> Result<std::collections::BTreeMap<String, String>, String> {
    let empty = Map::new();
    let map = match v {
        Value::Null => &empty,
        Value::Object(m) => m,
        other => return Err(wrong_type(key, "an object of strings", other)),
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            other => Err(wrong_type(&format!("{key}.{k}"), "a string", other)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_key_decodes() {
        let doc = br#"{
            "node_name": "n", "role": "web", "tags": {"a": "1"}, "tags_file": "t",
            "bind": "127.0.0.1", "advertise": "10.0.0.1:1", "interface": "lo",
            "encrypt_key": "k", "keyring_file": "kf", "log_level": "debug",
            "rpc_addr": "127.0.0.1:1", "rpc_auth": "s", "protocol": 4, "replay_on_join": true,
            "query_response_size_limit": 2048, "query_size_limit": 2048,
            "user_event_size_limit": 1024, "start_join": ["a"], "event_handlers": ["h"],
            "retry_join": ["b"], "profile": "wan", "snapshot_path": "s",
            "leave_on_terminate": true, "skip_leave_on_interrupt": true, "discover": "c",
            "mdns": {"interface": "lo", "disable_ipv4": false, "disable_ipv6": true},
            "reconnect_interval": "10s", "reconnect_timeout": "1h", "tombstone_timeout": "2h",
            "retry_interval": "5s", "broadcast_timeout": "3s",
            "disable_name_resolution": true, "enable_syslog": true, "syslog_facility": "LOCAL1",
            "retry_max_attempts": 3, "rejoin_after_leave": true, "enable_compression": false,
            "statsite_addr": "a:1", "statsd_addr": "b:2", "prometheus_addr": "127.0.0.1:9",
            "disable_coordinates": true, "validate_node_names": true,
            "MsgpackUseNewTimeFormat": true
        }"#;
        let p = decode_config(doc).unwrap();
        assert_eq!(p.node_name.as_deref(), Some("n"));
        assert_eq!(p.protocol, Some(4));
        assert_eq!(p.mdns_disable_ipv6, Some(true));
        assert_eq!(p.enable_compression, Some(false));
        assert_eq!(p.retry_max_attempts, Some(3));
        assert_eq!(
            p.tombstone_timeout,
            Some(std::time::Duration::from_secs(7200))
        );
        assert_eq!(KNOWN_KEYS.len(), 42);
    }

    #[test]
    fn keys_match_without_case_as_mapstructure_does() {
        let p = decode_config(br#"{"Node_Name": "x", "BIND": "1.2.3.4"}"#).unwrap();
        assert_eq!(p.node_name.as_deref(), Some("x"));
        assert_eq!(p.bind.as_deref(), Some("1.2.3.4"));
    }

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let e = decode_config(br#"{"node_nmae": "x"}"#).unwrap_err();
        assert!(
            e.contains("\"node_nmae\"") && e.contains("did you mean \"node_name\""),
            "{e}"
        );
        let e = decode_config(br#"{"frobnicate": 1}"#).unwrap_err();
        assert!(e.contains("\"frobnicate\""), "{e}");
        let e = decode_config(br#"{"mdns": {"iface": "x"}}"#).unwrap_err();
        assert!(e.contains("mdns.iface"), "{e}");
        let e = decode_config(br#"{"tags": {"a": 1}}"#).unwrap_err();
        assert!(e.contains("tags.a") && e.contains("a string"), "{e}");
        let e = decode_config(br#"{"retry_interval": 30}"#).unwrap_err();
        assert!(e.contains("retry_interval"), "{e}");
        let e = decode_config(br#"{"retry_interval": "30"}"#).unwrap_err();
        assert!(e.contains("missing unit"), "{e}");
        let e = decode_config(br#"{"protocol": -1}"#).unwrap_err();
        assert!(e.contains("protocol"), "{e}");
        let e = decode_config(br#"[1]"#).unwrap_err();
        assert!(e.contains("JSON object"), "{e}");
        let e = decode_config(br#"{"bind": "#).unwrap_err();
        assert!(e.contains("invalid JSON"), "{e}");
    }

    #[test]
    fn zero_and_empty_mean_not_given_as_in_go() {
        let p =
            decode_config(br#"{"node_name": "", "protocol": 0, "retry_interval": "0s"}"#).unwrap();
        assert!(p.node_name.is_none() && p.protocol.is_none() && p.retry_interval.is_none());
    }
}
