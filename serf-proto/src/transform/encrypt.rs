//! XChaCha20-Poly1305 encryption and the keyring.
//!
//! An encrypted packet carries `[nonce 24][ciphertext][tag 16]` after its header; the header
//! (version, flags, label) is the associated data, so it is authenticated too. Nonces are
//! 192 bits drawn from the node's RNG: with the extended nonce, random nonces are safe for
//! any realistic number of packets under one key.
//!
//! The keyring is ordered: the first key is the primary and encrypts everything; every key
//! is tried when decrypting. Rotating keys without downtime is therefore: install the new
//! key everywhere, make it primary everywhere, remove the old one.

use core::fmt;

/// Bytes of nonce in front of the ciphertext.
pub const NONCE_LEN: usize = 24;
/// Bytes of authentication tag after the ciphertext.
pub const TAG_LEN: usize = 16;
/// What encryption adds to a packet.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// The key size, in bytes.
pub const KEY_LEN: usize = 32;

/// A 256-bit secret key. Its `Debug` output does not show the key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretKey(pub [u8; KEY_LEN]);

impl SecretKey {
    /// A key from exactly 32 bytes.
    pub fn from_slice(b: &[u8]) -> Result<SecretKey, KeyringError> {
        <[u8; KEY_LEN]>::try_from(b)
            .map(SecretKey)
            .map_err(|_| KeyringError::BadKeyLength(b.len()))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A short fingerprint lets operators tell keys apart without revealing them.
        let fp = self
            .0
            .iter()
            .fold(0u32, |h, b| h.rotate_left(5) ^ u32::from(*b));
        write!(f, "SecretKey(fingerprint {fp:08x})")
    }
}

/// Why a keyring operation was refused. The keyring is unchanged in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// Keys are 32 bytes.
    #[error("key is {0} bytes; keys must be 32 bytes (generate one with `serf keygen`)")]
    BadKeyLength(usize),
    /// The primary key encrypts all traffic and cannot be removed; make another key primary
    /// first.
    #[error("cannot remove the primary key; use another key first")]
    RemovePrimary,
    /// The key is not installed.
    #[error("key is not installed")]
    NotInstalled,
    /// The keyring would exceed its size limit.
    #[error("keyring is full ({0} keys)")]
    Full(usize),
}

/// The most keys a keyring holds: every key is tried on each packet that fails to decrypt
/// with the primary, so the ring is kept small.
pub const MAX_KEYS: usize = 16;

/// An ordered set of keys; the first is the primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<SecretKey>,
}

impl Keyring {
    /// A keyring whose primary (and only) key is `primary`.
    pub fn new(primary: SecretKey) -> Keyring {
        Keyring {
            keys: vec![primary],
        }
    }

    /// A keyring from keys, the first being primary. Duplicates are dropped.
    pub fn from_keys(keys: impl IntoIterator<Item = SecretKey>) -> Result<Keyring, KeyringError> {
        let mut ring = Keyring { keys: Vec::new() };
        for k in keys {
            ring.install(k)?;
        }
        if ring.keys.is_empty() {
            return Err(KeyringError::NotInstalled);
        }
        Ok(ring)
    }

    /// The primary key.
    pub fn primary(&self) -> &SecretKey {
        // A keyring is never empty: constructors require a key and the primary cannot be
        // removed.
        &self.keys[0]
    }

    /// All keys, primary first.
    pub fn keys(&self) -> &[SecretKey] {
        &self.keys
    }

    /// Adds a key for decryption. Installing a key that is present does nothing.
    pub fn install(&mut self, key: SecretKey) -> Result<(), KeyringError> {
        if self.keys.contains(&key) {
            return Ok(());
        }
        if self.keys.len() >= MAX_KEYS {
            return Err(KeyringError::Full(MAX_KEYS));
        }
        self.keys.push(key);
        Ok(())
    }

    /// Makes an installed key the primary.
    pub fn use_key(&mut self, key: &SecretKey) -> Result<(), KeyringError> {
        let i = self
            .keys
            .iter()
            .position(|k| k == key)
            .ok_or(KeyringError::NotInstalled)?;
        let k = self.keys.remove(i);
        self.keys.insert(0, k);
        Ok(())
    }

    /// Removes a key that is not the primary.
    pub fn remove(&mut self, key: &SecretKey) -> Result<(), KeyringError> {
        if self.primary() == key {
            return Err(KeyringError::RemovePrimary);
        }
        let i = self
            .keys
            .iter()
            .position(|k| k == key)
            .ok_or(KeyringError::NotInstalled)?;
        self.keys.remove(i);
        Ok(())
    }
}

#[cfg(feature = "encryption")]
mod cipher {
    use super::*;
    use chacha20poly1305::aead::{AeadInOut, KeyInit};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};

    /// Encrypts `buf[start..]` in place with the primary key, inserting the nonce before it
    /// and appending the tag. `aad` is authenticated but not encrypted.
    pub fn seal(
        keyring: &Keyring,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), super::super::TransformError> {
        let cipher = XChaCha20Poly1305::new(keyring.primary().as_bytes().into());
        buf.splice(start..start, nonce);
        let body = start + NONCE_LEN;
        let tag = cipher
            .encrypt_inout_detached(&XNonce::from(nonce), aad, (&mut buf[body..]).into())
            .map_err(|_| super::super::TransformError::Encryption)?;
        buf.extend_from_slice(tag.as_slice());
        Ok(())
    }

    /// Decrypts `[nonce][ciphertext][tag]` into `out`, trying every key, primary first.
    pub fn open(
        keyring: &Keyring,
        aad: &[u8],
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), super::super::TransformError> {
        if sealed.len() < OVERHEAD {
            return Err(super::super::TransformError::Truncated);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| super::super::TransformError::Truncated)?;
        let tag = chacha20poly1305::Tag::try_from(tag)
            .map_err(|_| super::super::TransformError::Truncated)?;
        for key in keyring.keys() {
            out.clear();
            out.extend_from_slice(ct);
            let cipher = XChaCha20Poly1305::new(key.as_bytes().into());
            if cipher
                .decrypt_inout_detached(&nonce, aad, out.as_mut_slice().into(), &tag)
                .is_ok()
            {
                return Ok(());
            }
        }
        out.clear();
        Err(super::super::TransformError::Decryption)
    }
}

#[cfg(feature = "encryption")]
pub use cipher::{open, seal};

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SecretKey {
        SecretKey([b; 32])
    }

    #[test]
    fn rotation_rules() {
        let mut ring = Keyring::new(key(1));
        ring.install(key(2)).unwrap();
        ring.install(key(2)).unwrap();
        assert_eq!(ring.keys().len(), 2);
        assert_eq!(ring.remove(&key(1)), Err(KeyringError::RemovePrimary));
        assert_eq!(ring.use_key(&key(3)), Err(KeyringError::NotInstalled));
        ring.use_key(&key(2)).unwrap();
        assert_eq!(ring.primary(), &key(2));
        ring.remove(&key(1)).unwrap();
        assert_eq!(ring.keys(), &[key(2)]);
        assert_eq!(
            SecretKey::from_slice(&[0; 16]),
            Err(KeyringError::BadKeyLength(16))
        );
        assert!(!format!("{:?}", key(9)).contains("9, 9"));
    }

    #[cfg(feature = "encryption")]
    #[test]
    fn any_installed_key_decrypts_and_others_fail() {
        let mut sender = Keyring::new(key(1));
        let mut buf = b"hdr".to_vec();
        buf.extend_from_slice(b"hello world");
        seal(&sender, [7; 24], b"aad", &mut buf, 3).unwrap();
        assert_eq!(buf.len(), 3 + 11 + OVERHEAD);
        let mut out = Vec::new();

        let mut receiver = Keyring::new(key(5));
        assert!(open(&receiver, b"aad", &buf[3..], &mut out).is_err());
        receiver.install(key(1)).unwrap();
        open(&receiver, b"aad", &buf[3..], &mut out).unwrap();
        assert_eq!(out, b"hello world");
        // The associated data is authenticated.
        assert!(open(&receiver, b"aaX", &buf[3..], &mut out).is_err());
        // So is every ciphertext bit.
        let mut bad = buf.clone();
        bad[10] ^= 1;
        assert!(open(&receiver, b"aad", &bad[3..], &mut out).is_err());
        sender.install(key(5)).unwrap();
    }
}
