//! LZ4 block format (`lz4_flex`, its safe encoder and decoder). The block carries no size,
//! so it follows the [length prefix](super::read_len_prefix).

use super::super::TransformError;

/// Appends the LZ4 block of `data` to `out`.
pub fn compress(data: &[u8], out: &mut Vec<u8>) -> Result<(), TransformError> {
    let start = out.len();
    out.resize(
        start + lz4_flex::block::get_maximum_output_size(data.len()),
        0,
    );
    let n = lz4_flex::block::compress_into(data, &mut out[start..])
        .map_err(|_| TransformError::Compression)?;
    out.truncate(start + n);
    Ok(())
}

/// Decompresses `data` into `out`, which has exactly the claimed length; a block that
/// decodes to another length is corrupt.
pub fn decompress(data: &[u8], out: &mut [u8]) -> Result<(), TransformError> {
    let n = lz4_flex::block::decompress_into(data, out).map_err(|_| TransformError::Compression)?;
    if n != out.len() {
        return Err(TransformError::Compression);
    }
    Ok(())
}
