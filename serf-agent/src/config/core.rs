//! From the agent's configuration to the core's (`command.go` `setupAgent` and
//! `agent.go` `Create` in Go).

use super::persist::{load_keyring_file, load_tags_file};
use super::{AgentConfig, ConfigError, Profile};
use serf_proto::Keyring;
use serf_proto::serf::{Config, encode_tags};
use std::time::Duration;

/// The agent's fixed coalescing of member and user events (Go sets 3 s and 1 s in
/// `setupAgent`; the library default is off).
const COALESCE_PERIOD: Duration = Duration::from_secs(3);
const QUIESCENT_PERIOD: Duration = Duration::from_secs(1);

/// Builds the core's configuration for `cfg`, as Go's agent does:
///
/// - the memberlist preset of the profile (`lan`, `wan`, `local`);
/// - the keyring: from `encrypt_key`, or read from `keyring_file` (which must exist);
/// - the tags: `cfg.tags` (with `role`), or the contents of `tags_file` when it exists;
///   refused when they do not fit the 512-byte metadata limit;
/// - member and user event coalescing of 3 s / 1 s (fixed in Go's agent);
/// - the size limits, broadcast, reconnect and tombstone timeouts, name-conflict
///   resolution, `rejoin_after_leave`, and snapshots when `snapshot_path` is set;
/// - compression off when `enable_compression` is false.
///
/// `disable_coordinates` and `validate_node_names` are not passed on, as in Go (go-serf.md
/// §7). The result is validated; an error says which setting to change.
pub fn serf_config(cfg: &AgentConfig) -> Result<Config, ConfigError> {
    let mut c = match cfg.profile {
        Profile::Lan => Config::lan(),
        Profile::Wan => Config::wan(),
        Profile::Local => Config::local(),
    };

    c.memberlist.keyring = match (&cfg.encrypt_key, &cfg.keyring_file) {
        (Some(key), _) => Some(Keyring::new(key.clone())),
        (None, Some(path)) => Some(load_keyring_file(path)?),
        (None, None) => None,
    };
    if !cfg.enable_compression {
        c.memberlist.compression = None;
    }

    c.tags = cfg.tags.clone();
    if let Some(path) = &cfg.tags_file
        && let Some(tags) = load_tags_file(path)?
    {
        c.tags = tags;
    }
    let mut meta = Vec::new();
    encode_tags(&c.tags, &mut meta);
    if meta.len() > c.memberlist.max_meta_size {
        return Err(ConfigError::Invalid(format!(
            "the tags take {} bytes encoded; the limit is {}: use fewer or shorter tags",
            meta.len(),
            c.memberlist.max_meta_size
        )));
    }

    c.coalesce_period = COALESCE_PERIOD;
    c.quiescent_period = QUIESCENT_PERIOD;
    c.user_coalesce_period = COALESCE_PERIOD;
    c.user_quiescent_period = QUIESCENT_PERIOD;
    c.query_size_limit = cfg.query_size_limit;
    c.query_response_size_limit = cfg.query_response_size_limit;
    c.user_event_size_limit = cfg.user_event_size_limit;
    c.broadcast_timeout = cfg.broadcast_timeout;
    c.reconnect_interval = cfg.reconnect_interval;
    c.reconnect_timeout = cfg.reconnect_timeout;
    c.tombstone_timeout = cfg.tombstone_timeout;
    c.enable_name_conflict_resolution = !cfg.disable_name_resolution;
    c.rejoin_after_leave = cfg.rejoin_after_leave;
    c.snapshot = cfg.snapshot_path.is_some();

    c.validate()
        .map_err(|e| ConfigError::Invalid(format!("invalid configuration: {e}")))?;
    Ok(c)
}
