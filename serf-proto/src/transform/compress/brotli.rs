//! Brotli (Dropbox's pure-Rust `brotli`). The stream carries no size, so it follows the
//! [length prefix](super::read_len_prefix).
//!
//! A Brotli decoder allocates a ring buffer as large as the window the stream declares
//! (up to 16 MiB), whatever the output. So the encoder declares the smallest window that
//! holds the content, and the decoder refuses a stream declaring a larger window than the
//! claimed size needs (RFC 7932 §9.1) before it allocates.

use super::super::TransformError;
use std::io::Read;

/// Quality 0 (fastest) to 11 (smallest). 5 is the usual choice for data compressed on the
/// fly: levels above it cost several times the CPU for a few percent on gossip.
const QUALITY: i32 = 5;
/// Below 2^18 the encoder raises the window anyway at some qualities; at 2^24 Brotli's
/// standard window ends.
const MIN_WINDOW_BITS: u32 = 18;
const MAX_WINDOW_BITS: u32 = 24;

/// The window, in bits, the encoder declares for `len` bytes of content and the largest the
/// decoder accepts for that claimed size.
fn window_bits(len: usize) -> u32 {
    let bits = usize::BITS - len.saturating_sub(1).leading_zeros();
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// The window size in bits a Brotli stream declares in its first bits (RFC 7932 §9.1),
/// or `None` for the reserved large-window code or an empty stream.
fn declared_window_bits(stream: &[u8]) -> Option<u32> {
    let first = *stream.first()?;
    if first & 1 == 0 {
        return Some(16);
    }
    let n = u32::from((first >> 1) & 0b111);
    if n != 0 {
        return Some(17 + n);
    }
    match u32::from((first >> 4) & 0b111) {
        0 => Some(17),
        1 => None,
        m => Some(8 + m),
    }
}

/// Appends the Brotli stream of `data` to `out`.
pub fn compress(data: &[u8], out: &mut Vec<u8>) -> Result<(), TransformError> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: QUALITY,
        // Proven in range by `window_bits`.
        lgwin: window_bits(data.len()) as i32,
        size_hint: data.len(),
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &data[..], out, &params)
        .map_err(|_| TransformError::Compression)?;
    Ok(())
}

/// Decompresses `data` into `out`, which has exactly the claimed length; a stream that
/// decodes to another length is corrupt.
pub fn decompress(data: &[u8], out: &mut [u8]) -> Result<(), TransformError> {
    match declared_window_bits(data) {
        Some(bits) if bits <= window_bits(out.len()) => {}
        _ => return Err(TransformError::Compression),
    }
    let mut reader = brotli::Decompressor::new(data, 4096);
    reader
        .read_exact(out)
        .map_err(|_| TransformError::Compression)?;
    // The stream must end here: more output means the claimed size lied.
    match reader.read(&mut [0u8; 1]) {
        Ok(0) => Ok(()),
        _ => Err(TransformError::Compression),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_window_is_the_one_the_encoder_chose() {
        for len in [0usize, 1, 1400, 300_000, 5 << 20, 64 << 20] {
            let data: Vec<u8> = (0..len.min(1 << 16)).map(|i| (i % 251) as u8).collect();
            let params = brotli::enc::BrotliEncoderParams {
                quality: QUALITY,
                lgwin: window_bits(len) as i32,
                size_hint: len,
                ..Default::default()
            };
            let mut out = Vec::new();
            brotli::BrotliCompress(&mut &data[..], &mut out, &params).unwrap();
            assert_eq!(declared_window_bits(&out), Some(window_bits(len)), "{len}");
        }
    }

    #[test]
    fn a_window_larger_than_the_claim_needs_is_refused() {
        let data = vec![7u8; 1 << 20];
        let mut c = Vec::new();
        compress(&data, &mut c).unwrap();
        let mut out = vec![0u8; 1000];
        assert_eq!(decompress(&c, &mut out), Err(TransformError::Compression));
    }
}
