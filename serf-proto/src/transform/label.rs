//! The packet header: version, transform flags and the cluster label.
//!
//! ```text
//! [version u8 = 1][flags u8][label length u8][label bytes]   (label part only with FLAG_LABEL)
//! ```
//!
//! The header is authenticated: it is the associated data of the encryption, and the CRC
//! covers it when the packet is not encrypted. So a packet from a cluster with another
//! label, or with its flags tampered with, is refused.

use super::TransformError;

/// The only packet version this node writes and reads.
pub const VERSION: u8 = 1;

/// A cluster label follows the flags.
pub const FLAG_LABEL: u8 = 0x01;
/// A CRC-32 of header and data precedes the data.
pub const FLAG_CRC32: u8 = 0x02;
/// The data is Snappy-compressed.
pub const FLAG_SNAPPY: u8 = 0x04;
/// The rest is encrypted with XChaCha20-Poly1305.
pub const FLAG_ENCRYPTED: u8 = 0x08;

const KNOWN_FLAGS: u8 = FLAG_LABEL | FLAG_CRC32 | FLAG_SNAPPY | FLAG_ENCRYPTED;

/// The longest label, in bytes.
pub const MAX_LABEL_LEN: usize = 255;

/// The size of a header with a label of `label_len` bytes.
pub fn header_len(label_len: usize) -> usize {
    if label_len == 0 { 2 } else { 3 + label_len }
}

/// Appends a header.
pub fn write_header(out: &mut Vec<u8>, flags: u8, label: &[u8]) {
    debug_assert!(label.len() <= MAX_LABEL_LEN);
    out.push(VERSION);
    if label.is_empty() {
        out.push(flags & !FLAG_LABEL);
    } else {
        out.push(flags | FLAG_LABEL);
        // Checked by config validation: a label is at most 255 bytes.
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The transform flags.
    pub flags: u8,
    /// The label, empty when absent.
    pub label: &'a [u8],
    /// The header's length in bytes.
    pub len: usize,
}

/// Parses the header at the front of `packet`.
pub fn read_header(packet: &[u8]) -> Result<Header<'_>, TransformError> {
    if packet.len() < 2 {
        return Err(TransformError::Truncated);
    }
    if packet[0] != VERSION {
        return Err(TransformError::UnsupportedVersion(packet[0]));
    }
    let flags = packet[1];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(TransformError::UnknownFlags(flags));
    }
    if flags & FLAG_LABEL == 0 {
        return Ok(Header {
            flags,
            label: &[],
            len: 2,
        });
    }
    let n = *packet.get(2).ok_or(TransformError::Truncated)? as usize;
    if n == 0 {
        return Err(TransformError::Truncated);
    }
    let label = packet.get(3..3 + n).ok_or(TransformError::Truncated)?;
    Ok(Header {
        flags,
        label,
        len: 3 + n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_with_and_without_label() {
        for label in [&b""[..], b"prod", &[7u8; 255][..]] {
            let mut out = Vec::new();
            write_header(&mut out, FLAG_CRC32, label);
            assert_eq!(out.len(), header_len(label.len()));
            let h = read_header(&out).unwrap();
            assert_eq!(h.label, label);
            assert_eq!(h.len, out.len());
            assert_eq!(h.flags & FLAG_CRC32, FLAG_CRC32);
        }
    }

    #[test]
    fn bad_headers_are_refused() {
        assert_eq!(read_header(&[]), Err(TransformError::Truncated));
        assert_eq!(
            read_header(&[9, 0]),
            Err(TransformError::UnsupportedVersion(9))
        );
        assert_eq!(
            read_header(&[1, 0x80]),
            Err(TransformError::UnknownFlags(0x80))
        );
        assert_eq!(
            read_header(&[1, FLAG_LABEL, 5, b'a']),
            Err(TransformError::Truncated)
        );
        assert_eq!(
            read_header(&[1, FLAG_LABEL, 0]),
            Err(TransformError::Truncated)
        );
    }
}
