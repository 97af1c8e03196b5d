//! Snappy compression (raw format). The decompressed size is read from the frame and
//! checked against a cap before anything is allocated.

use super::TransformError;

/// Appends the Snappy compression of `data` to `out`.
#[cfg(feature = "snappy")]
pub fn compress(data: &[u8], out: &mut Vec<u8>) -> Result<(), TransformError> {
    let start = out.len();
    out.resize(start + snap::raw::max_compress_len(data.len()), 0);
    let n = snap::raw::Encoder::new()
        .compress(data, &mut out[start..])
        .map_err(|_| TransformError::Compression)?;
    out.truncate(start + n);
    Ok(())
}

/// Decompresses `data` into `out` (cleared first), refusing output larger than `max`.
#[cfg(feature = "snappy")]
pub fn decompress(data: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), TransformError> {
    let n = snap::raw::decompress_len(data).map_err(|_| TransformError::Compression)?;
    if n > max {
        return Err(TransformError::TooLarge);
    }
    out.clear();
    out.resize(n, 0);
    let got = snap::raw::Decoder::new()
        .decompress(data, out)
        .map_err(|_| TransformError::Compression)?;
    out.truncate(got);
    Ok(())
}

/// Without the `snappy` feature compressed packets are refused.
#[cfg(not(feature = "snappy"))]
pub fn compress(_data: &[u8], _out: &mut Vec<u8>) -> Result<(), TransformError> {
    Err(TransformError::FeatureDisabled("snappy"))
}

/// Without the `snappy` feature compressed packets are refused.
#[cfg(not(feature = "snappy"))]
pub fn decompress(_data: &[u8], _out: &mut Vec<u8>, _max: usize) -> Result<(), TransformError> {
    Err(TransformError::FeatureDisabled("snappy"))
}

#[cfg(all(test, feature = "snappy"))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn size_cap_is_checked_before_allocating() {
        let data = vec![0u8; 10_000];
        let mut c = Vec::new();
        compress(&data, &mut c).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            decompress(&c, &mut out, 9_999),
            Err(TransformError::TooLarge)
        );
        decompress(&c, &mut out, 10_000).unwrap();
        assert_eq!(out, data);
        // A header claiming 4 GiB is refused without allocation.
        let bomb = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert!(decompress(&bomb, &mut out, 1 << 16).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut c = Vec::new();
            compress(&data, &mut c).unwrap();
            let mut out = Vec::new();
            decompress(&c, &mut out, 1 << 20).unwrap();
            prop_assert_eq!(out, data);
        }

        #[test]
        fn arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut out = Vec::new();
            let _ = decompress(&data, &mut out, 1 << 16);
            prop_assert!(out.len() <= 1 << 16);
        }
    }
}
