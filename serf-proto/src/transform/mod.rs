//! Byte-to-byte transforms applied to every packet and stream frame: cluster label,
//! checksum, compression and encryption.
//!
//! Each transform is a pure function over bytes and each algorithm a cargo feature:
//! checksums `crc32`, `xxhash64`, `xxhash32`, `xxhash3`, `murmur3` ([`Checksum`]);
//! compressors `snappy`, `lz4`, `brotli`, `zstd` ([`Compressor`]); `encryption`. A packet is:
//!
//! ```text
//! header: [version][flags][label len][label]          see label.rs
//! then, if encrypted:  [nonce 24][ciphertext][tag 16] (associated data = header)
//!       the plaintext (or the rest, if not encrypted):
//!         [digest BE 4 or 8]  if the flags name a checksum: over header + data
//!         data                compressed if the flags name a compressor, else the body
//! ```
//!
//! The flags name the algorithms, so a receiver needs no configuration to read a packet:
//! with the algorithm's feature it decodes it, without it refuses it with
//! [`TransformError::FeatureDisabled`] (counted in `Metrics::dropped_unsupported`).
//!
//! On the way out the body is compressed (kept only if smaller), checksummed when not
//! encrypted (the AEAD tag already authenticates), then encrypted with the primary key.

pub mod checksum;
pub mod compress;
pub mod encrypt;
pub mod label;

pub use checksum::Checksum;
pub use compress::Compressor;
pub use encrypt::{Keyring, KeyringError, SecretKey};

use crate::rng::NodeRng;
use label::FLAG_ENCRYPTED;

/// Why a packet or frame was refused. Every variant is counted in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The input ended early.
    #[error("packet truncated")]
    Truncated,
    /// The version byte is not one we speak.
    #[error("unsupported packet version {0}")]
    UnsupportedVersion(u8),
    /// The flags name a transform we do not know.
    #[error("unknown transform flags {0:#04x}")]
    UnknownFlags(u8),
    /// The packet belongs to a cluster with another label.
    #[error("cluster label mismatch")]
    LabelMismatch,
    /// The CRC does not match.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// No installed key decrypts the packet.
    #[error("no installed key decrypts the packet")]
    Decryption,
    /// Encryption failed (cannot happen for valid keys; reported rather than panicking).
    #[error("encryption failed")]
    Encryption,
    /// The packet is encrypted but this node has no keyring.
    #[error("packet is encrypted but no keyring is configured")]
    NoKeyring,
    /// This node requires encryption and the packet is plaintext.
    #[error("plaintext packet refused: encryption is required")]
    NotEncrypted,
    /// Corrupt compressed data.
    #[error("corrupt compressed data")]
    Compression,
    /// The content is larger than allowed.
    #[error("content larger than the limit")]
    TooLarge,
    /// The packet uses a transform compiled out of this build; the cargo feature of
    /// `serf-proto` that reads it is named.
    #[error("the packet needs the `{0}` feature of serf-proto, which this build lacks")]
    FeatureDisabled(&'static str),
}

/// The transform settings and keyring of one node.
#[derive(Debug, Clone, Default)]
pub struct Transforms {
    /// The cluster label; empty for none.
    pub label: Vec<u8>,
    /// Accept unlabeled packets as if they carried our label (for migrating a cluster to a
    /// label, as Go's `SkipInboundLabelCheck`).
    pub skip_inbound_label_check: bool,
    /// The checksum added to unencrypted packets; `None` for none.
    pub checksum: Option<Checksum>,
    /// The compressor, used when it makes the packet smaller; `None` for none.
    pub compression: Option<Compressor>,
    /// The keyring; `None` disables encryption.
    pub keyring: Option<Keyring>,
    /// Encrypt outgoing traffic when a keyring is set (Go's `GossipVerifyOutgoing`).
    pub encrypt_outgoing: bool,
    /// Refuse plaintext when a keyring is set (Go's `GossipVerifyIncoming`).
    pub require_encrypted_incoming: bool,
}

/// Reusable buffers for [`Transforms::open`].
#[derive(Debug, Default)]
pub struct OpenScratch {
    decrypted: Vec<u8>,
    decompressed: Vec<u8>,
}

impl OpenScratch {
    /// Gives back memory beyond `keep` bytes per buffer (after a large stream frame).
    pub fn trim(&mut self, keep: usize) {
        for b in [&mut self.decrypted, &mut self.decompressed] {
            if b.capacity() > keep {
                b.clear();
                b.shrink_to(keep);
            }
        }
    }
}

impl Transforms {
    fn encrypting(&self) -> bool {
        cfg!(feature = "encryption") && self.encrypt_outgoing && self.keyring.is_some()
    }

    fn checksumming(&self) -> Option<Checksum> {
        self.checksum
            .filter(|c| c.is_available() && !self.encrypting())
    }

    /// The most bytes the transforms add to a body (compression only shrinks).
    pub fn overhead(&self) -> usize {
        let mut n = label::header_len(self.label.len());
        if self.encrypting() {
            n += encrypt::OVERHEAD;
        }
        if let Some(c) = self.checksumming() {
            n += c.len();
        }
        n
    }

    /// Writes the packet carrying `body` into `out` (cleared first). `scratch` holds the
    /// compressed body.
    pub fn seal(
        &self,
        body: &[u8],
        rng: &mut NodeRng,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), TransformError> {
        out.clear();
        let mut flags = 0u8;
        let mut data = body;
        // Below 32 bytes no compressor saves anything on gossip.
        let compressor = self
            .compression
            .filter(|c| c.is_available() && body.len() > 32);
        if let Some(c) = compressor {
            scratch.clear();
            c.compress(body, scratch)?;
            if scratch.len() < body.len() {
                data = scratch;
                flags |= c.flags();
            }
        }
        let encrypting = self.encrypting();
        let checksum = self.checksumming();
        if encrypting {
            flags |= FLAG_ENCRYPTED;
        } else if let Some(c) = checksum {
            flags |= c.flags();
        }
        label::write_header(out, flags, &self.label);
        let header_len = out.len();
        if let (false, Some(c)) = (encrypting, checksum) {
            c.append_after_header(out, data)?;
        }
        out.extend_from_slice(data);
        if encrypting {
            self.encrypt_in_place(rng, out, header_len)?;
        }
        Ok(())
    }

    #[cfg(feature = "encryption")]
    fn encrypt_in_place(
        &self,
        rng: &mut NodeRng,
        out: &mut Vec<u8>,
        header_len: usize,
    ) -> Result<(), TransformError> {
        let mut nonce = [0u8; encrypt::NONCE_LEN];
        rng.fill(&mut nonce);
        let mut aad = [0u8; 258];
        aad[..header_len].copy_from_slice(&out[..header_len]);
        let keyring = self.keyring.as_ref().ok_or(TransformError::NoKeyring)?;
        encrypt::seal(keyring, nonce, &aad[..header_len], out, header_len)
    }

    #[cfg(not(feature = "encryption"))]
    fn encrypt_in_place(
        &self,
        _rng: &mut NodeRng,
        _out: &mut Vec<u8>,
        _header_len: usize,
    ) -> Result<(), TransformError> {
        Err(TransformError::FeatureDisabled("encryption"))
    }

    /// Checks and strips the transforms of `packet`, returning the body. The body borrows
    /// from `packet` when no decryption or decompression was needed, otherwise from
    /// `scratch`. Bodies larger than `max_body` are refused before they are allocated.
    pub fn open<'a>(
        &self,
        packet: &'a [u8],
        scratch: &'a mut OpenScratch,
        max_body: usize,
    ) -> Result<&'a [u8], TransformError> {
        let header = label::read_header(packet)?;
        let label_ok = header.label == &self.label[..]
            || (self.skip_inbound_label_check && header.label.is_empty());
        if !label_ok {
            return Err(TransformError::LabelMismatch);
        }
        let header_bytes = &packet[..header.len];
        let rest = &packet[header.len..];
        let OpenScratch {
            decrypted,
            decompressed,
        } = scratch;

        let mut data: &[u8] = if header.flags & FLAG_ENCRYPTED != 0 {
            if !cfg!(feature = "encryption") {
                return Err(TransformError::FeatureDisabled("encryption"));
            }
            let keyring = self.keyring.as_ref().ok_or(TransformError::NoKeyring)?;
            if rest.len() > max_body.saturating_add(encrypt::OVERHEAD + 4) {
                return Err(TransformError::TooLarge);
            }
            decrypt(keyring, header_bytes, rest, decrypted)?;
            decrypted
        } else {
            if self.keyring.is_some() && self.require_encrypted_incoming {
                return Err(TransformError::NotEncrypted);
            }
            rest
        };

        if let Some(c) = header.checksum {
            data = c.verify(header_bytes, data)?;
        }

        if let Some(c) = header.compression {
            c.decompress(data, decompressed, max_body)?;
            Ok(decompressed)
        } else if data.len() > max_body {
            Err(TransformError::TooLarge)
        } else {
            Ok(data)
        }
    }
}

#[cfg(feature = "encryption")]
fn decrypt(
    keyring: &Keyring,
    aad: &[u8],
    sealed: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), TransformError> {
    encrypt::open(keyring, aad, sealed, out)
}

#[cfg(not(feature = "encryption"))]
fn decrypt(
    _keyring: &Keyring,
    _aad: &[u8],
    _sealed: &[u8],
    _out: &mut Vec<u8>,
) -> Result<(), TransformError> {
    Err(TransformError::FeatureDisabled("encryption"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_on(label: &str) -> Transforms {
        Transforms {
            label: label.as_bytes().to_vec(),
            checksum: Checksum::preferred(),
            compression: Compressor::preferred(),
            keyring: Some(Keyring::new(SecretKey([3; 32]))),
            encrypt_outgoing: true,
            require_encrypted_incoming: true,
            ..Transforms::default()
        }
    }

    /// No transforms, all of them, and every compiled-in checksum with every compiled-in
    /// compressor (unencrypted, so the checksum is used) or alone.
    fn variants() -> Vec<Transforms> {
        let mut v = vec![Transforms::default(), all_on(""), all_on("prod")];
        let checksums = Checksum::ALL.into_iter().filter(|c| c.is_available());
        for checksum in checksums.map(Some).chain([None]) {
            let compressors = Compressor::ALL.into_iter().filter(|c| c.is_available());
            for compression in compressors.map(Some).chain([None]) {
                v.push(Transforms {
                    checksum,
                    compression,
                    label: b"x".to_vec(),
                    ..Transforms::default()
                });
            }
        }
        for compression in Compressor::ALL.into_iter().filter(|c| c.is_available()) {
            v.push(Transforms {
                compression: Some(compression),
                ..all_on("enc")
            });
        }
        v
    }

    #[test]
    fn the_receiver_reads_whatever_algorithms_the_flags_name() {
        let mut rng = NodeRng::new(1);
        let (mut s, mut out, mut os) = (Vec::new(), Vec::new(), OpenScratch::default());
        let body: Vec<u8> = b"alive node-17 10.0.0.17:7946 ".repeat(20);
        let receiver = Transforms {
            label: b"x".to_vec(),
            ..Transforms::default()
        };
        for sender in variants().into_iter().filter(|t| t.label == b"x") {
            sender.seal(&body, &mut rng, &mut s, &mut out).unwrap();
            let header = label::read_header(&out).unwrap();
            assert_eq!(header.compression, sender.compression);
            assert_eq!(header.checksum, sender.checksum);
            assert_eq!(receiver.open(&out, &mut os, 4096).unwrap(), &body[..]);
        }
    }

    #[test]
    fn algorithms_compiled_out_are_refused_by_name() {
        let mut os = OpenScratch::default();
        let t = Transforms::default();
        for c in Checksum::ALL.into_iter().filter(|c| !c.is_available()) {
            let packet = [label::VERSION, c.flags(), 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3];
            assert_eq!(
                t.open(&packet, &mut os, 1400),
                Err(TransformError::FeatureDisabled(c.feature()))
            );
        }
        for c in Compressor::ALL.into_iter().filter(|c| !c.is_available()) {
            let packet = [label::VERSION, c.flags(), 9, 0, 0, 0, 1, 2, 3];
            assert_eq!(
                t.open(&packet, &mut os, 1400),
                Err(TransformError::FeatureDisabled(c.feature()))
            );
        }
    }

    #[test]
    fn label_mismatch_and_plaintext_are_refused() {
        let mut rng = NodeRng::new(1);
        let (mut s, mut out, mut os) = (Vec::new(), Vec::new(), OpenScratch::default());
        let a = all_on("a");
        a.seal(b"hello", &mut rng, &mut s, &mut out).unwrap();
        assert_eq!(
            all_on("b").open(&out, &mut os, 1400).unwrap_err(),
            TransformError::LabelMismatch
        );
        let plain = Transforms {
            label: b"a".to_vec(),
            ..Transforms::default()
        };
        plain.seal(b"hello", &mut rng, &mut s, &mut out).unwrap();
        assert_eq!(
            a.open(&out, &mut os, 1400).unwrap_err(),
            TransformError::NotEncrypted
        );
        // With a different key, decryption fails.
        let mut other = all_on("a");
        other.keyring = Some(Keyring::new(SecretKey([4; 32])));
        a.seal(b"hello", &mut rng, &mut s, &mut out).unwrap();
        assert_eq!(
            other.open(&out, &mut os, 1400).unwrap_err(),
            TransformError::Decryption
        );
    }

    #[test]
    fn checksum_detects_corruption_and_covers_the_label() {
        let mut rng = NodeRng::new(1);
        let (mut s, mut out, mut os) = (Vec::new(), Vec::new(), OpenScratch::default());
        for c in Checksum::ALL.into_iter().filter(|c| c.is_available()) {
            let t = Transforms {
                checksum: Some(c),
                label: b"lbl".to_vec(),
                ..Transforms::default()
            };
            t.seal(b"some body bytes", &mut rng, &mut s, &mut out)
                .unwrap();
            for i in 0..out.len() {
                let mut bad = out.clone();
                bad[i] ^= 0x10;
                assert!(
                    t.open(&bad, &mut os, 1400).is_err(),
                    "{c:?}: flip at {i} accepted"
                );
            }
        }
    }

    #[test]
    fn overhead_bounds_the_growth() {
        let mut rng = NodeRng::new(1);
        let (mut s, mut out) = (Vec::new(), Vec::new());
        for t in variants() {
            for len in [0usize, 1, 100, 1400] {
                let body: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
                t.seal(&body, &mut rng, &mut s, &mut out).unwrap();
                assert!(out.len() <= body.len() + t.overhead());
            }
        }
    }

    proptest! {
        #[test]
        fn seal_open_roundtrip(body in proptest::collection::vec(any::<u8>(), 0..1300), repeat in 1usize..4, which: usize, seed: u64) {
            // Repeated, so the compressors have something to shrink.
            let body = body.repeat(repeat);
            let v = variants();
            let t = &v[which % v.len()];
            let mut rng = NodeRng::new(seed);
            let (mut s, mut out, mut os) = (Vec::new(), Vec::new(), OpenScratch::default());
            t.seal(&body, &mut rng, &mut s, &mut out).unwrap();
            let got = t.open(&out, &mut os, 4096).unwrap();
            prop_assert_eq!(got, &body[..]);
        }

        #[test]
        fn open_never_panics(packet in proptest::collection::vec(any::<u8>(), 0..600), which: usize) {
            let v = variants();
            let t = &v[which % v.len()];
            let mut os = OpenScratch::default();
            if let Ok(b) = t.open(&packet, &mut os, 1024) {
                prop_assert!(b.len() <= 1024);
            }
        }

        #[test]
        fn mutated_packets_never_panic(body in proptest::collection::vec(any::<u8>(), 0..500), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4), which: usize) {
            let v = variants();
            let t = &v[which % v.len()];
            let mut rng = NodeRng::new(9);
            let (mut s, mut out, mut os) = (Vec::new(), Vec::new(), OpenScratch::default());
            t.seal(&body, &mut rng, &mut s, &mut out).unwrap();
            for (i, x) in flips { let n = out.len(); out[i % n] ^= x | 1; }
            let _ = t.open(&out, &mut os, 1024);
        }
    }
}
