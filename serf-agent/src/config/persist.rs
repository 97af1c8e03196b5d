//! The two files the agent keeps up to date while it runs: the tags file (`tags_file`,
//! rewritten by `serf tags`) and the keyring file (`keyring_file`, rewritten when keys are
//! installed, used or removed). Formats are Go's, so files move between the agents: a JSON
//! object of strings, and a JSON array of base64 keys with the primary first, both
//! indented by two spaces, mode 0600.

use super::ConfigError;
use super::file::read_bounded;
use super::merge::decode_key;
use serf_proto::serf::Tags;
use serf_proto::{Keyring, SecretKey};
use std::io::Write as _;
use std::path::Path;

/// Reads a tags file. A missing file is not an error (`Ok(None)`): Go starts with no tags
/// and creates the file on the first `serf tags`.
pub fn load_tags_file(path: &Path) -> Result<Option<Tags>, ConfigError> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes = read_bounded(path)?;
    let tags: Tags = serde_json::from_slice(&bytes).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        message: format!(
            "Failed to decode tags file: {e} (it must be a JSON object of strings, like \
             {{\"role\": \"web\"}})"
        ),
    })?;
    Ok(Some(tags))
}

/// Writes the tags file (Go's `writeTagsFile`): JSON, indented, mode 0600 because tags may
/// be sensitive. The file is replaced atomically, so a crash never leaves half of it.
pub fn save_tags_file(path: &Path, tags: &Tags) -> Result<(), ConfigError> {
    // Cannot fail: a map of strings always serialises.
    let json = serde_json::to_vec_pretty(tags).unwrap_or_default();
    write_private(path, &json)
}

/// Reads a keyring file: a JSON array of base64 keys, the first being the primary. Unlike
/// the tags file it must exist (Go's `loadKeyringFile`); start one with
/// `echo '["'$(serf keygen)'"]' > FILE`.
pub fn load_keyring_file(path: &Path) -> Result<Keyring, ConfigError> {
    let file_error = |message: String| ConfigError::File {
        path: path.to_owned(),
        message,
    };
    let bytes = read_bounded(path)?;
    let encoded: Vec<String> = serde_json::from_slice(&bytes).map_err(|e| {
        file_error(format!(
            "Failed to decode keyring file: {e} (it must be a JSON array of base64 keys, \
             like [\"KEY\"])"
        ))
    })?;
    if encoded.is_empty() {
        return Err(file_error(
            "Keyring file contains no keys; add one from `serf keygen`".to_owned(),
        ));
    }
    let keys = encoded
        .iter()
        .enumerate()
        .map(|(i, k)| {
            decode_key(k).map_err(|e| file_error(format!("key {} of the keyring: {e}", i + 1)))
        })
        .collect::<Result<Vec<SecretKey>, _>>()?;
    Keyring::from_keys(keys).map_err(|e| file_error(format!("Failed to restore keyring: {e}")))
}

/// Writes the keyring file: the keys in base64, primary first, mode 0600, replaced
/// atomically (Go rewrites it on every keyring change, see serf `writeKeyringFile`).
pub fn save_keyring_file(path: &Path, keys: &[SecretKey]) -> Result<(), ConfigError> {
    use base64::Engine as _;
    let encoded: Vec<String> = keys
        .iter()
        .map(|k| base64::engine::general_purpose::STANDARD.encode(k.as_bytes()))
        .collect();
    // Cannot fail: a list of strings always serialises.
    let json = serde_json::to_vec_pretty(&encoded).unwrap_or_default();
    write_private(path, &json)
}

/// Writes `bytes` to a temporary file next to `path` with mode 0600, then renames it over
/// `path`, so readers see the old file or the new one, never a torn one.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
