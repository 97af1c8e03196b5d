//! Fair packet space (memberlist #299): while user broadcasts are queued, membership
//! gossip cannot take every byte of every packet.

use serf_proto::memberlist::{Config, Memberlist};
use serf_proto::transform::{OpenScratch, Transforms};
use serf_proto::wire::{Alive, BodyIter, MessageType, WireMessage};
use serf_proto::{Instant, Output, StreamEvent};
use std::net::SocketAddr;
use std::time::Duration;

fn addr(i: u32) -> SocketAddr {
    SocketAddr::from(([10, 9, (i >> 8) as u8, i as u8], 7946))
}

/// What the first gossip packets carry, after the membership queue was flooded and one
/// 400-byte user broadcast queued: (user messages, membership messages) per packet.
fn first_gossip_packets(share: u8) -> Vec<(usize, usize)> {
    let config = Config {
        checksum: None,
        compression: None,
        user_broadcast_share: share,
        push_pull_interval: Duration::ZERO,
        ..Config::lan()
    };
    let mut now = Instant::ZERO;
    let mut a = Memberlist::new(config.clone(), "a", addr(1), b"", 1, now).unwrap();
    let mut b = Memberlist::new(config, "b", addr(2), b"", 2, now).unwrap();
    // a and b know each other, so a has someone to gossip to.
    a.join(now, &[addr(2)]).unwrap();
    let mut buf = Vec::new();
    let (mut frame, mut sid) = (Vec::new(), None);
    loop {
        match a.poll_output(&mut buf) {
            Output::OpenStream { id, .. } => sid = Some(id),
            Output::SendFrame { .. } => frame = buf.clone(),
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    let s = b.accept_stream(now, addr(1)).unwrap();
    b.handle_stream(now, s, StreamEvent::Frame(&frame));
    loop {
        match b.poll_output(&mut buf) {
            Output::SendFrame { .. } => frame = buf.clone(),
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    a.handle_stream(now, sid.unwrap(), StreamEvent::Frame(&frame));
    // Flood: 300 alive messages about new members arrive, each to be re-gossiped.
    for i in 0..300u32 {
        let name = format!("member-{i:04}");
        let mut body = Vec::new();
        Alive {
            incarnation: 1,
            node: &name,
            addr: addr(100 + i),
            meta: &[0u8; 40],
            versions: [1, 1, 1, 0, 0, 0],
        }
        .encode(&mut body);
        let mut packet = vec![1u8, 0];
        packet.extend_from_slice(&body);
        a.handle_datagram(now, addr(3), &packet);
    }
    while !matches!(a.poll_output(&mut buf), Output::Timeout(_)) {}
    a.broadcast(&[7u8; 400]).unwrap();
    // Let a few gossip rounds go, and look inside every packet.
    let mut seen = Vec::new();
    let t = Transforms::default();
    let mut os = OpenScratch::default();
    for _ in 0..5 {
        now += Duration::from_millis(200);
        a.handle_timeout(now);
        loop {
            match a.poll_output(&mut buf) {
                Output::Transmit { .. } => {
                    let body = t.open(&buf, &mut os, 65536).unwrap();
                    let (mut user, mut membership) = (0, 0);
                    for m in BodyIter::new(body) {
                        let (ty, _) = m.unwrap();
                        if ty == MessageType::User as u8 {
                            user += 1;
                        } else if ty == MessageType::Alive as u8 {
                            membership += 1;
                        }
                    }
                    if membership + user > 0 {
                        seen.push((user, membership));
                    }
                }
                Output::Timeout(_) => break,
                _ => {}
            }
        }
    }
    seen
}

#[test]
fn user_broadcasts_get_their_share_of_every_packet_while_membership_floods() {
    let fair = first_gossip_packets(50);
    assert!(fair.len() >= 3, "{fair:?}");
    assert_eq!(
        fair[0].0, 1,
        "the user message goes out in the first packet: {fair:?}"
    );
    assert!(fair[0].1 > 0, "membership still gets the rest: {fair:?}");

    // Go's behaviour (no reserved share): membership fills every packet and the user
    // message waits until the flood is over.
    let go = first_gossip_packets(0);
    assert!(go.len() >= 3);
    assert!(go.iter().all(|(user, _)| *user == 0), "starved: {go:?}");
}
