//! Compression of packets and stream frames, kept only when it makes them smaller.
//!
//! Every algorithm exists as a [`Compressor`] value in every build, so a configuration or a
//! packet can name it; running it needs its cargo feature. A packet compressed with an
//! algorithm compiled out is refused with [`TransformError::FeatureDisabled`] naming the
//! feature.
//!
//! Decompressed sizes are capped before anything is allocated. Snappy carries the size in
//! its own frame; LZ4 blocks, Brotli streams and Zstandard frames are preceded by
//!
//! ```text
//! [decompressed length u32 LE][compressed bytes]
//! ```
//!
//! which is read and checked against the cap first; the output buffer is then exactly that
//! long, and a stream that decodes to more or less is corrupt.

#[cfg(feature = "brotli")]
mod brotli;
#[cfg(feature = "lz4")]
mod lz4;
#[cfg(feature = "snappy")]
mod snappy;
#[cfg(feature = "zstd")]
mod zstd;

use super::TransformError;
use super::label::COMPRESSION_MASK;

/// A compression algorithm. The default of a configuration is [`Compressor::preferred`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compressor {
    /// Snappy, raw format. Feature `snappy` (`snap`).
    Snappy,
    /// LZ4 block format. Feature `lz4` (`lz4_flex`, pure Rust).
    Lz4,
    /// Brotli at quality 5. Feature `brotli` (Dropbox's `brotli`, pure Rust).
    Brotli,
    /// Zstandard at `ruzstd`'s only encoder level (about zstd's level 1). Feature `zstd`
    /// (`ruzstd`, pure Rust).
    Zstd,
}

impl Compressor {
    /// Every algorithm, compiled in or not.
    pub const ALL: [Compressor; 4] = [
        Compressor::Snappy,
        Compressor::Lz4,
        Compressor::Brotli,
        Compressor::Zstd,
    ];

    /// The compiled-in algorithms in the order the benchmark ranks them for gossip (see the
    /// README's transform table): the first one compiled in is the default.
    const PREFERENCE: [Compressor; 4] = [
        Compressor::Snappy,
        Compressor::Lz4,
        Compressor::Zstd,
        Compressor::Brotli,
    ];

    /// The default: the best-measured algorithm compiled into this build, or `None` when no
    /// compression feature is enabled.
    pub fn preferred() -> Option<Compressor> {
        Compressor::PREFERENCE
            .into_iter()
            .find(|c| c.is_available())
    }

    /// The cargo feature of `serf-proto` that provides it (also its name in logs).
    pub const fn feature(self) -> &'static str {
        match self {
            Compressor::Snappy => "snappy",
            Compressor::Lz4 => "lz4",
            Compressor::Brotli => "brotli",
            Compressor::Zstd => "zstd",
        }
    }

    /// Whether this build can run it.
    pub const fn is_available(self) -> bool {
        match self {
            Compressor::Snappy => cfg!(feature = "snappy"),
            Compressor::Lz4 => cfg!(feature = "lz4"),
            Compressor::Brotli => cfg!(feature = "brotli"),
            Compressor::Zstd => cfg!(feature = "zstd"),
        }
    }

    /// Its pattern under [`COMPRESSION_MASK`] in the header flags. Snappy keeps the bit it
    /// had in the first header version; the others set two bits, like the checksums.
    pub const fn flags(self) -> u8 {
        match self {
            Compressor::Snappy => 0x04,
            Compressor::Lz4 => 0x44,
            Compressor::Brotli => 0x84,
            Compressor::Zstd => 0xC0,
        }
    }

    /// The algorithm whose pattern is `bits` (already masked), if any.
    pub fn from_flags(bits: u8) -> Option<Compressor> {
        debug_assert_eq!(bits & !COMPRESSION_MASK, 0);
        Compressor::ALL.into_iter().find(|c| c.flags() == bits)
    }

    /// Appends the compression of `data` to `out`.
    pub fn compress(self, data: &[u8], out: &mut Vec<u8>) -> Result<(), TransformError> {
        match self {
            #[cfg(feature = "snappy")]
            Compressor::Snappy => snappy::compress(data, out),
            #[cfg(feature = "lz4")]
            Compressor::Lz4 => {
                write_len_prefix(data.len(), out)?;
                lz4::compress(data, out)
            }
            #[cfg(feature = "brotli")]
            Compressor::Brotli => {
                write_len_prefix(data.len(), out)?;
                brotli::compress(data, out)
            }
            #[cfg(feature = "zstd")]
            Compressor::Zstd => {
                write_len_prefix(data.len(), out)?;
                zstd::compress(data, out)
            }
            #[allow(unreachable_patterns)]
            other => Err(TransformError::FeatureDisabled(other.feature())),
        }
    }

    /// Decompresses `data` into `out` (cleared first), refusing output larger than `max`
    /// before allocating it.
    pub fn decompress(
        self,
        data: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), TransformError> {
        out.clear();
        let result = match self {
            #[cfg(feature = "snappy")]
            Compressor::Snappy => snappy::decompress(data, out, max),
            #[cfg(feature = "lz4")]
            Compressor::Lz4 => {
                let data = read_len_prefix(data, max, out)?;
                lz4::decompress(data, out)
            }
            #[cfg(feature = "brotli")]
            Compressor::Brotli => {
                let data = read_len_prefix(data, max, out)?;
                brotli::decompress(data, out)
            }
            #[cfg(feature = "zstd")]
            Compressor::Zstd => {
                let data = read_len_prefix(data, max, out)?;
                zstd::decompress(data, out)
            }
            #[allow(unreachable_patterns)]
            other => Err(TransformError::FeatureDisabled(other.feature())),
        };
        if result.is_err() {
            out.clear();
        }
        result
    }
}

/// Bytes of the length prefix.
const LEN_PREFIX: usize = 4;

/// Appends the length prefix for `len` bytes of content.
#[allow(dead_code)] // Unused when only Snappy is compiled in.
fn write_len_prefix(len: usize, out: &mut Vec<u8>) -> Result<(), TransformError> {
    let len = u32::try_from(len).map_err(|_| TransformError::TooLarge)?;
    out.extend_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Reads the length prefix off `data`, checks it against `max`, and only then sizes `out`
/// (empty) to it. Returns the compressed bytes after the prefix.
#[allow(dead_code)] // Unused when only Snappy is compiled in.
fn read_len_prefix<'a>(
    data: &'a [u8],
    max: usize,
    out: &mut Vec<u8>,
) -> Result<&'a [u8], TransformError> {
    let (len, rest) = data
        .split_first_chunk::<LEN_PREFIX>()
        .ok_or(TransformError::Truncated)?;
    let len = usize::try_from(u32::from_le_bytes(*len)).map_err(|_| TransformError::TooLarge)?;
    if len > max {
        return Err(TransformError::TooLarge);
    }
    out.resize(len, 0);
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn available() -> Vec<Compressor> {
        Compressor::ALL
            .into_iter()
            .filter(|c| c.is_available())
            .collect()
    }

    /// Gossip-like bytes: repeated names and addresses with counters between them.
    fn compressible(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| {
                if i % 16 < 12 {
                    b"node-"[i % 5]
                } else {
                    (i / 16) as u8
                }
            })
            .collect()
    }

    #[test]
    fn each_compressor_shrinks_gossip_like_data() {
        for c in available() {
            let data = compressible(4000);
            let mut z = Vec::new();
            c.compress(&data, &mut z).unwrap();
            assert!(z.len() < data.len() * 3 / 4, "{c:?}: {} bytes", z.len());
            let mut out = Vec::new();
            c.decompress(&z, &mut out, data.len()).unwrap();
            assert_eq!(out, data, "{c:?}");
        }
    }

    #[test]
    fn a_large_stream_frame_roundtrips() {
        // A push-pull of thousands of members: the decoder must accept the window the
        // encoder declared for it.
        let data = compressible(3 << 20);
        for c in available() {
            let mut z = Vec::new();
            c.compress(&data, &mut z).unwrap();
            let mut out = Vec::new();
            c.decompress(&z, &mut out, data.len()).unwrap();
            assert!(out == data, "{c:?}");
        }
    }

    #[test]
    fn size_cap_is_checked_before_allocating() {
        for c in available() {
            let data = vec![0u8; 10_000];
            let mut z = Vec::new();
            c.compress(&data, &mut z).unwrap();
            let mut out = Vec::new();
            assert_eq!(
                c.decompress(&z, &mut out, 9_999),
                Err(TransformError::TooLarge),
                "{c:?}"
            );
            assert_eq!(out.capacity(), 0, "{c:?} allocated before refusing");
            c.decompress(&z, &mut out, 10_000).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn a_claimed_length_that_lies_is_corrupt() {
        for c in available().into_iter().filter(|c| *c != Compressor::Snappy) {
            let data = compressible(3000);
            let mut z = Vec::new();
            c.compress(&data, &mut z).unwrap();
            for claim in [2999u32, 3001, 0] {
                let mut lie = z.clone();
                lie[..LEN_PREFIX].copy_from_slice(&claim.to_le_bytes());
                let mut out = Vec::new();
                assert_eq!(
                    c.decompress(&lie, &mut out, 1 << 16),
                    Err(TransformError::Compression),
                    "{c:?} claiming {claim}"
                );
            }
        }
    }

    #[test]
    fn compiled_out_algorithms_are_named() {
        for c in Compressor::ALL.into_iter().filter(|c| !c.is_available()) {
            let mut out = Vec::new();
            assert_eq!(
                c.decompress(&[0; 16], &mut out, 1 << 16),
                Err(TransformError::FeatureDisabled(c.feature()))
            );
            assert_eq!(
                c.compress(b"data", &mut out),
                Err(TransformError::FeatureDisabled(c.feature()))
            );
        }
    }

    proptest! {
        #[test]
        fn roundtrip(data in proptest::collection::vec(any::<u8>(), 0..2000), repeat in 1usize..8) {
            // Random bytes do not compress; repeating them does.
            let data = data.repeat(repeat);
            for c in available() {
                let mut z = Vec::new();
                c.compress(&data, &mut z).unwrap();
                let mut out = Vec::new();
                c.decompress(&z, &mut out, data.len()).unwrap();
                prop_assert_eq!(&out, &data, "{:?}", c);
            }
        }

        #[test]
        fn arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            for c in Compressor::ALL {
                let mut out = Vec::new();
                let _ = c.decompress(&data, &mut out, 1 << 16);
                prop_assert!(out.len() <= 1 << 16);
            }
        }

        #[test]
        fn mutated_streams_never_panic(data in proptest::collection::vec(any::<u8>(), 0..500), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
            let data = data.repeat(3);
            for c in available() {
                let mut z = Vec::new();
                c.compress(&data, &mut z).unwrap();
                for (i, x) in &flips { let n = z.len(); z[i % n] ^= x | 1; }
                let mut out = Vec::new();
                let _ = c.decompress(&z, &mut out, 1 << 16);
                prop_assert!(out.len() <= 1 << 16);
            }
        }
    }
}
