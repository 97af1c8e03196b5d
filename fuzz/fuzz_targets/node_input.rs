//! A whole Serf node fed arbitrary datagrams, stream frames and time steps.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serf_proto::serf::Config;
use serf_proto::{Instant, Output, Serf, StreamEvent};
use std::net::SocketAddr;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let mut config = Config::default();
    config.memberlist.checksum = None;
    config.memberlist.max_members = 32;
    let me: SocketAddr = "10.0.0.1:7946".parse().unwrap();
    let peer: SocketAddr = "10.0.0.2:7946".parse().unwrap();
    let mut node = Serf::new(config, "fuzz", me, 1, Instant::ZERO).unwrap();
    let mut now = Instant::ZERO;
    let mut buf = Vec::new();
    // Split the input into chunks: first byte picks the input kind.
    let mut rest = data;
    while let Some((&kind, tail)) = rest.split_first() {
        let len = (kind as usize & 0x3f).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        rest = tail;
        let mut packet = vec![1u8, 0];
        packet.extend_from_slice(chunk);
        match kind >> 6 {
            0 => node.handle_datagram(now, peer, &packet),
            1 => node.handle_datagram(now, peer, chunk),
            2 => {
                if let Some(s) = node.accept_stream(now, peer) {
                    node.handle_stream(now, s, StreamEvent::Frame(&packet));
                }
            }
            _ => {
                now += Duration::from_millis(u64::from(kind & 0x3f) * 100);
                node.handle_timeout(now);
            }
        }
        for _ in 0..10_000 {
            if let Output::Timeout(_) = node.poll_output(&mut buf) {
                break;
            }
        }
    }
});
