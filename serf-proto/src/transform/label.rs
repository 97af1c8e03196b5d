//! The packet header: version, transform flags and the cluster label.
//!
//! ```text
//! [version u8 = 1][flags u8][label length u8][label bytes]   (label part only with FLAG_LABEL)
//! ```
//!
//! The flags byte says which transforms were applied, and with which algorithm:
//!
//! ```text
//! bit  7 6 5 4 3 2 1 0
//!      z z c c E z c L     L label, E encrypted,
//!                          c (mask 0x32) the checksum, z (mask 0xC4) the compressor
//! ```
//!
//! The first header version had one bit for CRC-32 (0x02) and one for Snappy (0x04); they
//! keep their meaning, so packets from nodes built before the other algorithms existed read
//! the same. The other algorithms use the spare bits, each a fixed pattern under its mask
//! ([`Checksum::flags`](super::Checksum::flags), [`Compressor::flags`](super::Compressor::flags));
//! patterns no algorithm has are refused as unknown flags.
//!
//! The header is authenticated: it is the associated data of the encryption, and the CRC
//! covers it when the packet is not encrypted. So a packet from a cluster with another
//! label, or with its flags tampered with, is refused.

use super::{Checksum, Compressor, TransformError};

/// The only packet version this node writes and reads.
pub const VERSION: u8 = 1;

/// A cluster label follows the flags.
pub const FLAG_LABEL: u8 = 0x01;
/// The rest is encrypted with XChaCha20-Poly1305.
pub const FLAG_ENCRYPTED: u8 = 0x08;
/// The bits that name the checksum preceding the data (all clear: none).
pub const CHECKSUM_MASK: u8 = 0x32;
/// The bits that name the compressor of the data (all clear: uncompressed).
pub const COMPRESSION_MASK: u8 = 0xC4;

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
    /// The checksum preceding the data, if any.
    pub checksum: Option<Checksum>,
    /// The compressor of the data, if any.
    pub compression: Option<Compressor>,
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
    let checksum = match flags & CHECKSUM_MASK {
        0 => None,
        bits => Some(Checksum::from_flags(bits).ok_or(TransformError::UnknownFlags(flags))?),
    };
    let compression = match flags & COMPRESSION_MASK {
        0 => None,
        bits => Some(Compressor::from_flags(bits).ok_or(TransformError::UnknownFlags(flags))?),
    };
    if flags & FLAG_LABEL == 0 {
        return Ok(Header {
            flags,
            checksum,
            compression,
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
        checksum,
        compression,
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
            write_header(&mut out, Checksum::Crc32.flags(), label);
            assert_eq!(out.len(), header_len(label.len()));
            let h = read_header(&out).unwrap();
            assert_eq!(h.label, label);
            assert_eq!(h.len, out.len());
            assert_eq!(h.checksum, Some(Checksum::Crc32));
            assert_eq!(h.compression, None);
        }
    }

    #[test]
    fn every_algorithm_pair_names_itself_in_the_flags() {
        for c in Checksum::ALL.map(Some).into_iter().chain([None]) {
            for z in Compressor::ALL.map(Some).into_iter().chain([None]) {
                let flags =
                    c.map_or(0, Checksum::flags) | z.map_or(0, Compressor::flags) | FLAG_ENCRYPTED;
                let packet = [VERSION, flags];
                let h = read_header(&packet).unwrap();
                assert_eq!((h.checksum, h.compression), (c, z), "flags {flags:#04x}");
                assert_eq!(h.flags & FLAG_ENCRYPTED, FLAG_ENCRYPTED);
            }
        }
    }

    #[test]
    fn first_version_bits_keep_their_meaning() {
        // CRC-32 and Snappy packets of nodes built before the other algorithms.
        let h = read_header(&[VERSION, 0x02 | 0x04]).unwrap();
        assert_eq!(h.checksum, Some(Checksum::Crc32));
        assert_eq!(h.compression, Some(Compressor::Snappy));
    }

    #[test]
    fn bad_headers_are_refused() {
        assert_eq!(read_header(&[]), Err(TransformError::Truncated));
        assert_eq!(
            read_header(&[9, 0]),
            Err(TransformError::UnsupportedVersion(9))
        );
        // Patterns no algorithm has.
        for flags in [0x10, 0x20, 0x40, 0x80, 0xC4] {
            assert_eq!(
                read_header(&[1, flags]),
                Err(TransformError::UnknownFlags(flags))
            );
        }
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
