//! Snappy (raw format, `snap`). The frame starts with the decompressed size, which is
//! checked against the cap before anything is allocated.

use super::super::TransformError;

/// Appends the Snappy compression of `data` to `out`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_size_over_the_cap_is_refused_before_allocating() {
        // A header claiming 4 GiB.
        let bomb = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        let mut out = Vec::new();
        assert_eq!(
            decompress(&bomb, &mut out, 1 << 16),
            Err(TransformError::TooLarge)
        );
        assert_eq!(out.capacity(), 0);
    }
}
