//! CRC-32 (IEEE) over the header and the data of an unencrypted packet.

/// The CRC of `header` followed by `data`.
#[cfg(feature = "crc32")]
pub fn crc32(header: &[u8], data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header);
    h.update(data);
    h.finalize()
}

/// Without the `crc32` feature a checksummed packet cannot be verified.
#[cfg(not(feature = "crc32"))]
pub fn crc32(_header: &[u8], _data: &[u8]) -> u32 {
    unreachable!("callers check the feature before computing a CRC")
}

#[cfg(all(test, feature = "crc32"))]
mod tests {
    #[test]
    fn known_vector() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(super::crc32(b"1234", b"56789"), 0xCBF4_3926);
    }
}
