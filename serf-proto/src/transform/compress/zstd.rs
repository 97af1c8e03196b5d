//! Zstandard (pure-Rust `ruzstd`). Its encoder has one level, roughly zstd's level 1
//! (`CompressionLevel::Fastest`); its decoder reads any frame. The frame follows the
//! [length prefix](super::read_len_prefix) like the other codecs without a reliable size.
//!
//! A frame declares its window, which the decoder allocates; it is bounded by the claimed
//! size (or the encoder's own window, whichever is larger) before decoding starts.

use super::super::TransformError;
use ruzstd::decoding::FrameDecoder;
use ruzstd::encoding::CompressionLevel;

/// The window `ruzstd`'s fastest level declares whatever the input size; a frame may
/// declare up to this much or the content size, whichever is larger.
const ENCODER_WINDOW: u64 = 1 << 17;

/// Appends the Zstandard frame of `data` to `out`.
pub fn compress(data: &[u8], out: &mut Vec<u8>) -> Result<(), TransformError> {
    ruzstd::encoding::compress(data, out, CompressionLevel::Fastest);
    Ok(())
}

/// Decompresses `data` into `out`, which has exactly the claimed length; a frame that
/// decodes to another length is corrupt.
pub fn decompress(data: &[u8], out: &mut [u8]) -> Result<(), TransformError> {
    let mut decoder = FrameDecoder::new();
    decoder.set_max_window_size(ENCODER_WINDOW.max(out.len() as u64));
    let n = decoder
        .decode_all(data, out)
        .map_err(|_| TransformError::Compression)?;
    if n != out.len() {
        return Err(TransformError::Compression);
    }
    Ok(())
}
