//! Checksums over the header and the data of an unencrypted packet (an encrypted one is
//! authenticated by its AEAD tag instead).
//!
//! Every algorithm exists as a [`Checksum`] value in every build, so a configuration or a
//! packet can name it; computing it needs its cargo feature. A packet whose checksum was
//! compiled out is refused with [`TransformError::FeatureDisabled`] naming the feature.
//!
//! The digest is written big-endian in front of the data; its width depends on the
//! algorithm ([`Checksum::len`]).

use super::TransformError;
use super::label::CHECKSUM_MASK;

/// A checksum algorithm. The default of a configuration is [`Checksum::preferred`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Checksum {
    /// CRC-32 (IEEE), 4 bytes. Feature `crc32` (`crc32fast`).
    Crc32,
    /// xxHash64 with seed 0, 8 bytes. Feature `xxhash64` (`xxhash-rust`).
    Xxhash64,
    /// xxHash32 with seed 0, 4 bytes. Feature `xxhash32` (`xxhash-rust`).
    Xxhash32,
    /// XXH3 64-bit with seed 0, 8 bytes. Feature `xxhash3` (`xxhash-rust`).
    Xxhash3,
    /// MurmurHash3 x86_32 with seed 0, 4 bytes. Feature `murmur3` (`mur3`).
    Murmur3,
}

impl Checksum {
    /// Every algorithm, compiled in or not.
    pub const ALL: [Checksum; 5] = [
        Checksum::Crc32,
        Checksum::Xxhash64,
        Checksum::Xxhash32,
        Checksum::Xxhash3,
        Checksum::Murmur3,
    ];

    /// The compiled-in algorithms in the order the benchmark ranks them for gossip (see the
    /// README's transform table): the first one compiled in is the default.
    const PREFERENCE: [Checksum; 5] = [
        Checksum::Crc32,
        Checksum::Xxhash3,
        Checksum::Xxhash64,
        Checksum::Xxhash32,
        Checksum::Murmur3,
    ];

    /// The default: the best-measured algorithm compiled into this build, or `None` when no
    /// checksum feature is enabled.
    pub fn preferred() -> Option<Checksum> {
        Checksum::PREFERENCE.into_iter().find(|c| c.is_available())
    }

    /// The cargo feature of `serf-proto` that provides it (also its name in logs).
    pub const fn feature(self) -> &'static str {
        match self {
            Checksum::Crc32 => "crc32",
            Checksum::Xxhash64 => "xxhash64",
            Checksum::Xxhash32 => "xxhash32",
            Checksum::Xxhash3 => "xxhash3",
            Checksum::Murmur3 => "murmur3",
        }
    }

    /// Whether this build can compute it.
    pub const fn is_available(self) -> bool {
        match self {
            Checksum::Crc32 => cfg!(feature = "crc32"),
            Checksum::Xxhash64 => cfg!(feature = "xxhash64"),
            Checksum::Xxhash32 => cfg!(feature = "xxhash32"),
            Checksum::Xxhash3 => cfg!(feature = "xxhash3"),
            Checksum::Murmur3 => cfg!(feature = "murmur3"),
        }
    }

    /// Bytes of digest on the wire.
    #[allow(clippy::len_without_is_empty)]
    pub const fn len(self) -> usize {
        match self {
            Checksum::Crc32 | Checksum::Xxhash32 | Checksum::Murmur3 => 4,
            Checksum::Xxhash64 | Checksum::Xxhash3 => 8,
        }
    }

    /// Its pattern under [`CHECKSUM_MASK`] in the header flags. CRC-32 keeps the bit it had
    /// in the first header version; the others set two bits, so no single flipped bit can
    /// switch their checksum off (it cannot protect its own flag).
    pub const fn flags(self) -> u8 {
        match self {
            Checksum::Crc32 => 0x02,
            Checksum::Xxhash64 => 0x12,
            Checksum::Xxhash32 => 0x22,
            Checksum::Xxhash3 => 0x30,
            Checksum::Murmur3 => 0x32,
        }
    }

    /// The algorithm whose pattern is `bits` (already masked), if any.
    pub fn from_flags(bits: u8) -> Option<Checksum> {
        debug_assert_eq!(bits & !CHECKSUM_MASK, 0);
        Checksum::ALL.into_iter().find(|c| c.flags() == bits)
    }

    /// The digest of `header` followed by `data`, in the low [`len`](Self::len) bytes.
    pub fn digest(self, header: &[u8], data: &[u8]) -> Result<u64, TransformError> {
        match self {
            #[cfg(feature = "crc32")]
            Checksum::Crc32 => {
                let mut h = crc32fast::Hasher::new();
                h.update(header);
                h.update(data);
                Ok(u64::from(h.finalize()))
            }
            #[cfg(feature = "xxhash64")]
            Checksum::Xxhash64 => {
                let mut h = xxhash_rust::xxh64::Xxh64::new(0);
                h.update(header);
                h.update(data);
                Ok(h.digest())
            }
            #[cfg(feature = "xxhash32")]
            Checksum::Xxhash32 => {
                let mut h = xxhash_rust::xxh32::Xxh32::new(0);
                h.update(header);
                h.update(data);
                Ok(u64::from(h.digest()))
            }
            #[cfg(feature = "xxhash3")]
            Checksum::Xxhash3 => {
                let mut h = xxhash_rust::xxh3::Xxh3Default::new();
                h.update(header);
                h.update(data);
                Ok(h.digest())
            }
            #[cfg(feature = "murmur3")]
            Checksum::Murmur3 => {
                use core::hash::Hasher as _;
                let mut h = mur3::Hasher32::with_seed(0);
                h.write(header);
                h.write(data);
                Ok(u64::from(h.finish32()))
            }
            #[allow(unreachable_patterns)]
            other => Err(TransformError::FeatureDisabled(other.feature())),
        }
    }

    /// Appends to `packet`, which holds just the header, the digest of the header followed
    /// by `data` (which the caller appends next).
    pub fn append_after_header(
        self,
        packet: &mut Vec<u8>,
        data: &[u8],
    ) -> Result<(), TransformError> {
        let digest = self.digest(packet, data)?.to_be_bytes();
        packet.extend_from_slice(&digest[8 - self.len()..]);
        Ok(())
    }

    /// Splits the digest off the front of `rest` and checks it against `header` and the
    /// data after it, which is returned.
    pub fn verify<'a>(self, header: &[u8], rest: &'a [u8]) -> Result<&'a [u8], TransformError> {
        // Refuse first when the algorithm is compiled out, whatever the length.
        if !self.is_available() {
            return Err(TransformError::FeatureDisabled(self.feature()));
        }
        if rest.len() < self.len() {
            return Err(TransformError::Truncated);
        }
        let (want, data) = rest.split_at(self.len());
        let got = self.digest(header, data)?.to_be_bytes();
        if &got[8 - self.len()..] != want {
            return Err(TransformError::ChecksumMismatch);
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn available() -> Vec<Checksum> {
        Checksum::ALL
            .into_iter()
            .filter(|c| c.is_available())
            .collect()
    }

    #[test]
    fn known_vectors() {
        // Over "123456789" with seed 0: CRC-32's published check value; the others as the
        // reference implementations (xxHash's C library, Appleby's MurmurHash3) compute them.
        let want = [
            (Checksum::Crc32, 0xCBF4_3926),
            (Checksum::Xxhash32, 0x937B_AD67),
            (Checksum::Xxhash64, 0x8CB8_41DB_40E6_AE83),
            (Checksum::Xxhash3, 0x72DC_B18B_67A1_7DFF),
            (Checksum::Murmur3, 0xB4FE_F382),
        ];
        for (c, v) in want {
            if c.is_available() {
                assert_eq!(c.digest(b"1234", b"56789"), Ok(v), "{c:?}");
            }
        }
    }

    #[test]
    fn compiled_out_algorithms_are_named() {
        for c in Checksum::ALL.into_iter().filter(|c| !c.is_available()) {
            assert_eq!(
                c.verify(b"h", b"12345678data"),
                Err(TransformError::FeatureDisabled(c.feature()))
            );
        }
    }

    proptest! {
        #[test]
        fn split_input_hashes_as_one(bytes in proptest::collection::vec(any::<u8>(), 0..300), cut: usize) {
            // The header and the data are fed separately; the digest must not depend on
            // where the header ends, or a different label length could collide.
            let cut = cut % (bytes.len() + 1);
            for c in available() {
                prop_assert_eq!(c.digest(&bytes[..cut], &bytes[cut..]), c.digest(&[], &bytes));
            }
        }

        #[test]
        fn write_then_verify_roundtrip(header in proptest::collection::vec(any::<u8>(), 0..10), data in proptest::collection::vec(any::<u8>(), 0..300)) {
            for c in available() {
                let mut packet = header.clone();
                c.append_after_header(&mut packet, &data).unwrap();
                prop_assert_eq!(packet.len(), header.len() + c.len());
                packet.extend_from_slice(&data);
                prop_assert_eq!(c.verify(&header, &packet[header.len()..]), Ok(&data[..]));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(header in proptest::collection::vec(any::<u8>(), 0..10), rest in proptest::collection::vec(any::<u8>(), 0..40)) {
            for c in Checksum::ALL {
                let _ = c.verify(&header, &rest);
            }
        }
    }
}
