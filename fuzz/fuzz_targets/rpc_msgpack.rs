//! The agent's RPC msgpack reader: the resumable scanner that finds where a value ends on
//! a TCP stream, and the decoder that reads it, on arbitrary bytes split at arbitrary
//! points. Neither may panic, allocate past the limits or disagree with the other: the
//! server frames with the scanner and decodes what it framed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serf_agent::rpc::msgpack::{DecodeError, Limits, Scanner, decode};

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (splits, data) = input;
    let limits = Limits {
        max_value_bytes: 64 << 10,
        max_depth: 16,
        max_collection: 1024,
    };
    // Feed the scanner the way a socket would: the buffer grows by chunks of the sizes
    // `splits` gives, then whatever remains.
    let mut scanner = Scanner::new();
    let mut len = 0;
    let mut sizes = splits.iter().map(|&s| usize::from(s) + 1);
    let scanned = loop {
        len = (len + sizes.next().unwrap_or(data.len())).min(data.len());
        match scanner.scan(&data[..len], &limits) {
            Ok(Some(end)) => break Ok(Some(end)),
            Ok(None) if len == data.len() => break Ok(None),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
    };
    match (decode(&data, &limits), scanned) {
        (Ok((_, used)), Ok(Some(end))) => assert_eq!(used, end, "scanner and decoder disagree"),
        (Ok((_, used)), other) => panic!("decoded {used} bytes but the scanner said {other:?}"),
        (Err(DecodeError::Incomplete), Ok(Some(end))) => {
            panic!("the scanner framed {end} bytes the decoder calls truncated")
        }
        _ => {}
    }
});
