//! The options object a JavaScript host creates a node from, and how it becomes the
//! core's [`Config`].
//!
//! Everything here is plain data that JavaScript wrote, so every field is checked and a
//! wrong one is refused with a message naming it; nothing panics.

use serde::Deserialize;
use serf_proto::serf::{Config, Tags};
use serf_proto::{Keyring, SecretKey};
use std::net::SocketAddr;
use std::time::Duration;

/// The options of a node, as the JavaScript host passes them (camelCase keys).
///
/// ```
/// use serf_driver_wasm::NodeOptions;
///
/// let opts: NodeOptions = serde_json::from_str(r#"{
///     "name": "web-1",
///     "address": "127.0.0.1:7946",
///     "seed": [1, 2, 3, 4, 5, 6, 7, 8],
///     "keys": ["T9jncgl9mbLus+baTTa7q7nPSUrXwbDi2dhbtqir37s="],
///     "label": "prod",
///     "profile": "local",
///     "tags": { "role": "web" }
/// }"#).unwrap();
/// let config = opts.config().unwrap();
/// assert_eq!(config.memberlist.label, "prod");
/// assert!(config.memberlist.keyring.is_some());
/// assert_eq!(opts.seed_u64().unwrap(), u64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]));
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeOptions {
    /// The node's name, unique in the cluster.
    pub name: String,
    /// The address other nodes reach this one at, `"ip:port"`: the host's bound UDP and
    /// TCP port.
    pub address: String,
    /// 8 random bytes (a `Uint8Array` from `crypto.getRandomValues`, or an array of
    /// numbers), or a non-negative integer below 2^53 for tests. The core's random
    /// choices and its encryption nonces come from it: use fresh OS randomness in
    /// production.
    pub seed: Option<Seed>,
    /// Encryption keys, primary first: each 32 bytes in standard base64 (what `serf
    /// keygen` prints). Empty: no encryption.
    #[serde(default)]
    pub keys: Vec<String>,
    /// The cluster label; nodes with another label are refused.
    #[serde(default)]
    pub label: String,
    /// Timing profile: `"lan"` (default), `"wan"` or `"local"` (loopback, tests).
    #[serde(default)]
    pub profile: Option<String>,
    /// This node's tags.
    #[serde(default)]
    pub tags: Tags,
    /// Events kept for the host before new ones are dropped and counted. 4096.
    #[serde(default)]
    pub event_capacity: Option<usize>,
    /// Bytes of output (datagrams and frames) kept for the host before datagrams are
    /// dropped and streams failed. 16 MiB.
    #[serde(default)]
    pub output_capacity: Option<usize>,
    /// Override of the profile's probe interval, in milliseconds.
    #[serde(default)]
    pub probe_interval_ms: Option<f64>,
    /// Override of the profile's gossip interval, in milliseconds.
    #[serde(default)]
    pub gossip_interval_ms: Option<f64>,
    /// Override of the profile's push-pull interval, in milliseconds.
    #[serde(default)]
    pub push_pull_interval_ms: Option<f64>,
}

/// The random seed: 8 bytes, or an integer that JavaScript can hold exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seed {
    /// From random bytes (little-endian).
    Bytes(Vec<u8>),
    /// From an integer below 2^53.
    Number(u64),
}

impl<'de> Deserialize<'de> for Seed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Seed, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Seed;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("8 random bytes (a Uint8Array) or a non-negative integer")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Seed, E> {
                Ok(Seed::Number(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Seed, E> {
                u64::try_from(v)
                    .map(Seed::Number)
                    .map_err(|_| E::custom("seed must not be negative"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Seed, E> {
                // JavaScript numbers arrive as f64: only exact integers are seeds.
                if v.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&v) {
                    Ok(Seed::Number(v as u64))
                } else {
                    Err(E::custom(
                        "seed must be an integer in 0..2^53, or 8 random bytes",
                    ))
                }
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Seed, E> {
                Ok(Seed::Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Seed, E> {
                Ok(Seed::Bytes(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Seed, A::Error> {
                let mut bytes = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    if bytes.len() == 8 {
                        return Err(serde::de::Error::custom("seed has more than 8 bytes"));
                    }
                    bytes.push(b);
                }
                Ok(Seed::Bytes(bytes))
            }
        }
        d.deserialize_any(V)
    }
}

/// The largest integer a JavaScript number holds exactly (2^53 − 1).
pub(crate) const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A wrong option; the message names the field and what to give instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionsError(pub String);

impl std::fmt::Display for OptionsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OptionsError {}

fn err(msg: impl Into<String>) -> OptionsError {
    OptionsError(msg.into())
}

impl NodeOptions {
    /// The address, parsed.
    pub fn socket_addr(&self) -> Result<SocketAddr, OptionsError> {
        parse_addr(&self.address).map_err(|e| err(format!("options.address: {e}")))
    }

    /// The seed as the core takes it.
    pub fn seed_u64(&self) -> Result<u64, OptionsError> {
        match &self.seed {
            None => Err(err(
                "options.seed is missing: give 8 random bytes, e.g. crypto.getRandomValues(new Uint8Array(8))",
            )),
            Some(Seed::Number(n)) => Ok(*n),
            Some(Seed::Bytes(b)) => {
                let bytes = <[u8; 8]>::try_from(b.as_slice()).map_err(|_| {
                    err(format!(
                        "options.seed has {} bytes; give exactly 8 random bytes",
                        b.len()
                    ))
                })?;
                Ok(u64::from_le_bytes(bytes))
            }
        }
    }

    /// The core's configuration: the profile, then the keys, label, tags and overrides.
    pub fn config(&self) -> Result<Config, OptionsError> {
        let mut config = match self.profile.as_deref().unwrap_or("lan") {
            "lan" => Config::lan(),
            "wan" => Config::wan(),
            "local" => Config::local(),
            other => {
                return Err(err(format!(
                    "options.profile is {other:?}; use \"lan\", \"wan\" or \"local\""
                )));
            }
        };
        if !self.keys.is_empty() {
            let mut keys = Vec::with_capacity(self.keys.len());
            for (i, k) in self.keys.iter().enumerate() {
                let bytes = decode_base64(k)
                    .ok_or_else(|| err(format!("options.keys[{i}] is not valid base64")))?;
                let key = SecretKey::from_slice(&bytes)
                    .map_err(|e| err(format!("options.keys[{i}]: {e}")))?;
                keys.push(key);
            }
            let keyring =
                Keyring::from_keys(keys).map_err(|e| err(format!("options.keys: {e}")))?;
            config.memberlist.keyring = Some(keyring);
        }
        config.memberlist.label = self.label.clone();
        config.tags = self.tags.clone();
        let ml = &mut config.memberlist;
        for (field, value, target) in [
            (
                "probeIntervalMs",
                self.probe_interval_ms,
                &mut ml.probe_interval,
            ),
            (
                "gossipIntervalMs",
                self.gossip_interval_ms,
                &mut ml.gossip_interval,
            ),
            (
                "pushPullIntervalMs",
                self.push_pull_interval_ms,
                &mut ml.push_pull_interval,
            ),
        ] {
            if let Some(ms) = value {
                *target = duration_ms(ms).ok_or_else(|| {
                    err(format!(
                        "options.{field} is {ms}; give a non-negative number of milliseconds"
                    ))
                })?;
            }
        }
        config
            .validate()
            .map_err(|e| err(format!("invalid configuration: {e}")))?;
        Ok(config)
    }
}

/// A duration from JavaScript milliseconds; `None` for NaN, negative or infinite.
pub(crate) fn duration_ms(ms: f64) -> Option<Duration> {
    if ms.is_finite() && ms >= 0.0 {
        Duration::try_from_secs_f64(ms / 1000.0).ok()
    } else {
        None
    }
}

/// `"ip:port"` (IPv6 as `"[::1]:7946"`).
pub(crate) fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an \"ip:port\" address (e.g. \"127.0.0.1:7946\")"))
}

/// Standard base64 with optional padding, as `serf keygen` prints keys; `None` if not.
pub(crate) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(s.trim()).ok()
}

/// Standard base64 with padding (keys in events).
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(json: &str) -> NodeOptions {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn base64_round_trips_keys() {
        for n in 0..40 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode_base64(&encode_base64(&bytes)).unwrap(), bytes);
        }
        assert_eq!(decode_base64("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(decode_base64("Zm9vYg==").unwrap(), b"foob");
        assert!(decode_base64("Zm9v!").is_none());
        assert!(decode_base64("Z").is_none());
    }

    #[test]
    fn a_wrong_option_is_refused_with_its_name() {
        let base = r#""name":"a","address":"127.0.0.1:1","seed":1"#;
        let e = opts(&format!(r#"{{{base},"profile":"fast"}}"#))
            .config()
            .unwrap_err();
        assert!(e.0.contains("options.profile"), "{e}");
        let e = opts(&format!(r#"{{{base},"keys":["AAAA"]}}"#))
            .config()
            .unwrap_err();
        assert!(
            e.0.contains("options.keys[0]") && e.0.contains("32 bytes"),
            "{e}"
        );
        let e = opts(&format!(r#"{{{base},"keys":["@@@@"]}}"#))
            .config()
            .unwrap_err();
        assert!(e.0.contains("base64"), "{e}");
        let e = opts(&format!(r#"{{{base},"label":"{}"}}"#, "x".repeat(300)))
            .config()
            .unwrap_err();
        assert!(e.0.contains("label"), "{e}");
        let e = opts(&format!(r#"{{{base},"probeIntervalMs":-1}}"#))
            .config()
            .unwrap_err();
        assert!(e.0.contains("probeIntervalMs"), "{e}");
        let e = opts(r#"{"name":"a","address":"nowhere","seed":1}"#)
            .socket_addr()
            .unwrap_err();
        assert!(e.0.contains("ip:port"), "{e}");
        assert!(
            serde_json::from_str::<NodeOptions>(r#"{"name":"a","address":"x","sed":1}"#).is_err()
        );
    }

    #[test]
    fn seeds_are_eight_bytes_or_an_exact_integer() {
        let base = r#""name":"a","address":"127.0.0.1:1""#;
        assert_eq!(opts(&format!(r#"{{{base},"seed":42}}"#)).seed_u64(), Ok(42));
        assert_eq!(
            opts(&format!(r#"{{{base},"seed":[255,0,0,0,0,0,0,1]}}"#)).seed_u64(),
            Ok(u64::from_le_bytes([255, 0, 0, 0, 0, 0, 0, 1]))
        );
        let e = opts(&format!(r#"{{{base},"seed":[1,2,3]}}"#))
            .seed_u64()
            .unwrap_err();
        assert!(e.0.contains("3 bytes"), "{e}");
        assert!(opts(base_obj(base).as_str()).seed_u64().is_err());
        assert!(serde_json::from_str::<NodeOptions>(&format!(r#"{{{base},"seed":1.5}}"#)).is_err());
        assert!(serde_json::from_str::<NodeOptions>(&format!(r#"{{{base},"seed":-1}}"#)).is_err());
        assert!(
            serde_json::from_str::<NodeOptions>(&format!(
                r#"{{{base},"seed":[1,2,3,4,5,6,7,8,9]}}"#
            ))
            .is_err()
        );
    }

    fn base_obj(base: &str) -> String {
        format!("{{{base}}}")
    }
}
