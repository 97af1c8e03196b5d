//! Transforms, framing and every memberlist message decoder on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serf_proto::transform::{Keyring, OpenScratch, SecretKey, Transforms};
use serf_proto::wire::{BodyIter, Message};

fuzz_target!(|data: &[u8]| {
    let plain = Transforms {
        checksum: true,
        compression: true,
        ..Transforms::default()
    };
    let keyed = Transforms {
        keyring: Some(Keyring::new(SecretKey([1; 32]))),
        encrypt_outgoing: true,
        require_encrypted_incoming: true,
        label: b"fuzz".to_vec(),
        ..plain.clone()
    };
    let mut os = OpenScratch::default();
    for t in [&plain, &keyed] {
        if let Ok(body) = t.open(data, &mut os, 65536) {
            assert!(body.len() <= 65536);
        }
    }
    // The body decoders, directly.
    for item in BodyIter::new(data) {
        let Ok((ty, fields)) = item else { break };
        if let Ok(Some(Message::PushPull(pp))) = Message::decode(ty, fields, 1 << 16) {
            assert_eq!(pp.nodes().count(), pp.node_count);
        }
    }
});
