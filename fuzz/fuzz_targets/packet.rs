//! Transforms, framing and every memberlist message decoder on arbitrary bytes, with every
//! checksum and compressor compiled in (the header names the algorithm, so one receiver
//! reads them all).
#![no_main]
use libfuzzer_sys::fuzz_target;
use serf_proto::transform::{Keyring, OpenScratch, SecretKey, Transforms};
use serf_proto::wire::{BodyIter, Message};
use serf_proto::{Checksum, Compressor};

fuzz_target!(|data: &[u8]| {
    let plain = Transforms::default();
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
    // Each compressor's decoder directly, with the input as its stream, and each checksum.
    let mut out = Vec::new();
    for c in Compressor::ALL {
        if c.decompress(data, &mut out, 65536).is_ok() {
            assert!(out.len() <= 65536);
        }
    }
    for c in Checksum::ALL {
        let _ = c.verify(b"\x01\x00", data);
    }
    // Sealing the input as a body and opening it gives it back, with every algorithm.
    let mut rng = serf_proto::NodeRng::new(data.len() as u64);
    let (mut scratch, mut packet) = (Vec::new(), Vec::new());
    for (checksum, compression) in Checksum::ALL
        .into_iter()
        .zip(Compressor::ALL.into_iter().cycle())
    {
        let t = Transforms {
            checksum: Some(checksum),
            compression: Some(compression),
            ..Transforms::default()
        };
        t.seal(data, &mut rng, &mut scratch, &mut packet).unwrap();
        assert_eq!(t.open(&packet, &mut os, data.len()).unwrap(), data);
    }
    // The body decoders, directly.
    for item in BodyIter::new(data) {
        let Ok((ty, fields)) = item else { break };
        if let Ok(Some(Message::PushPull(pp))) = Message::decode(ty, fields, 1 << 16) {
            assert_eq!(pp.nodes().count(), pp.node_count);
        }
    }
});
