//! Hostile input into the whole state machine: arbitrary bytes, arbitrary message bodies
//! behind a valid header, and mutations of real packets and stream frames. Nothing may
//! panic, memory stays bounded, and the node keeps working afterwards.

use proptest::prelude::*;
use serf_proto::memberlist::{Config, Memberlist};
use serf_proto::{Instant, Output, StreamEvent};
use std::net::SocketAddr;
use std::time::Duration;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 7946))
}

fn plain_config() -> Config {
    // No checksum, so mutations reach the decoders instead of failing the CRC.
    Config {
        checksum: None,
        max_members: 64,
        ..Config::lan()
    }
}

fn node(i: u8) -> Memberlist {
    Memberlist::new(
        plain_config(),
        &format!("n{i}"),
        addr(i),
        b"meta",
        u64::from(i),
        Instant::ZERO,
    )
    .unwrap()
}

/// Drains a node, returning the datagrams and frames it produced.
fn drain(n: &mut Memberlist) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut datagrams, mut frames) = (Vec::new(), Vec::new());
    let mut buf = Vec::new();
    for _ in 0..10_000 {
        match n.poll_output(&mut buf) {
            Output::Transmit { .. } => datagrams.push(buf.clone()),
            Output::SendFrame { .. } => frames.push(buf.clone()),
            Output::Timeout(_) => return (datagrams, frames),
            _ => {}
        }
    }
    panic!("drain did not reach Timeout");
}

/// Real traffic of a small exchange: a push-pull join, then probes and gossip.
fn captured() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut a = node(1);
    let mut b = node(2);
    let mut now = Instant::ZERO;
    a.join(now, &[addr(2)]).unwrap();
    let (mut datagrams, mut frames) = drain(&mut a);
    let sb = b.accept_stream(now, addr(1)).unwrap();
    b.handle_stream(now, sb, StreamEvent::Frame(&frames[0]));
    let (d, f) = drain(&mut b);
    datagrams.extend(d);
    frames.extend(f);
    for _ in 0..40 {
        now += Duration::from_millis(250);
        a.handle_timeout(now);
        b.handle_timeout(now);
        let (d1, _) = drain(&mut a);
        let (d2, _) = drain(&mut b);
        for d in &d1 {
            b.handle_datagram(now, addr(1), d);
        }
        for d in &d2 {
            a.handle_datagram(now, addr(2), d);
        }
        datagrams.extend(d1);
        datagrams.extend(d2);
    }
    (datagrams, frames)
}

fn assert_still_works(mut n: Memberlist) {
    // Members invented by the input never answer probes: run time forward, alone, until
    // they are suspected, declared dead and forgotten, which frees the bounded table.
    let mut now = Instant::from_secs(10);
    while now < Instant::from_secs(600) {
        now += Duration::from_millis(100);
        n.handle_timeout(now);
        drain(&mut n);
    }
    assert_eq!(n.num_members(), 1, "only the node itself is left");
    // A real peer can join and is seen alive.
    let mut peer = Memberlist::new(
        plain_config(),
        "healthy-peer",
        addr(99),
        b"",
        5,
        Instant::ZERO,
    )
    .unwrap();
    peer.join(now, &[n.local_addr()]).unwrap();
    let (_, frames) = drain(&mut peer);
    let s = n
        .accept_stream(now, addr(99))
        .expect("streams still accepted");
    n.handle_stream(now, s, StreamEvent::Frame(&frames[0]));
    drain(&mut n);
    assert!(
        n.member("healthy-peer").is_some(),
        "{} members, {:?}",
        n.num_members(),
        n.metrics()
    );
    assert!(n.num_members() <= 64 + 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_datagrams_never_panic(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20)) {
        let mut n = node(1);
        for p in &packets {
            n.handle_datagram(Instant::from_secs(1), addr(7), p);
            drain(&mut n);
        }
        assert_still_works(n);
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20)) {
        let mut n = node(1);
        for b in &bodies {
            // Version 1, no transforms: the body goes straight to the message decoders.
            let mut p = vec![1u8, 0];
            p.extend_from_slice(b);
            n.handle_datagram(Instant::from_secs(1), addr(7), &p);
            drain(&mut n);
        }
        assert_still_works(n);
    }

    #[test]
    fn arbitrary_stream_frames_never_panic(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 1..8), close in any::<bool>()) {
        let mut n = node(1);
        let now = Instant::from_secs(1);
        let s = n.accept_stream(now, addr(7)).unwrap();
        for f in &frames {
            let mut p = vec![1u8, 0];
            p.extend_from_slice(f);
            n.handle_stream(now, s, StreamEvent::Frame(&p));
            n.handle_stream(now, s, StreamEvent::Frame(f));
        }
        if close {
            n.handle_stream(now, s, StreamEvent::Closed);
        }
        drain(&mut n);
        // Unknown stream ids are ignored and counted.
        n.handle_stream(now, serf_proto::StreamId(12345), StreamEvent::Failed);
        prop_assert!(n.metrics().streams_unknown >= 1);
        assert_still_works(n);
    }
}

#[test]
fn mutated_real_traffic_never_panics() {
    let (datagrams, frames) = captured();
    assert!(
        datagrams.len() > 20,
        "captured {} datagrams",
        datagrams.len()
    );
    assert!(frames.len() >= 2);
    let mut rng = serf_proto::NodeRng::new(77);
    let mut n = node(3);
    let now = Instant::from_secs(5);
    for round in 0..20_000 {
        let src = if round % 4 == 0 {
            &frames[rng.index(frames.len())]
        } else {
            &datagrams[rng.index(datagrams.len())]
        };
        let mut p = src.clone();
        match rng.index(4) {
            0 => {
                for _ in 0..1 + rng.index(4) {
                    let i = rng.index(p.len());
                    p[i] ^= 1 << rng.index(8);
                }
            }
            1 => p.truncate(rng.index(p.len() + 1)),
            2 => {
                let i = rng.index(p.len() + 1);
                p.insert(i, (rng.next_u32() & 0xff) as u8);
            }
            _ => {
                let i = rng.index(p.len());
                p[i] = (rng.next_u32() & 0xff) as u8;
            }
        }
        if round % 4 == 0 {
            if let Some(s) = n.accept_stream(now, addr(7)) {
                n.handle_stream(now, s, StreamEvent::Frame(&p));
            }
        } else {
            n.handle_datagram(now, addr(7), &p);
        }
        drain(&mut n);
    }
    let m = n.metrics().clone();
    assert!(
        m.messages_malformed + m.dropped_malformed > 0,
        "mutations were detected: {m:?}"
    );
    assert_still_works(n);
}

mod serf_layer {
    use super::*;
    use serf_proto::Serf;
    use serf_proto::serf::Config as SerfConfig;
    use serf_proto::wire::{User, WireMessage};

    fn serf_node(i: u8) -> Serf {
        let config = SerfConfig {
            memberlist: plain_config(),
            ..SerfConfig::default()
        };
        Serf::new(
            config,
            &format!("s{i}"),
            addr(i),
            u64::from(i),
            Instant::ZERO,
        )
        .unwrap()
    }

    fn drain_serf(n: &mut Serf) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for _ in 0..10_000 {
            match n.poll_output(&mut buf) {
                Output::Transmit { .. } => out.push(buf.clone()),
                Output::Timeout(_) => return out,
                _ => {}
            }
        }
        panic!("drain did not reach Timeout");
    }

    fn as_packet(serf_msg: &[u8]) -> Vec<u8> {
        let mut p = vec![1u8, 0];
        User { payload: serf_msg }.encode(&mut p);
        p
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_serf_messages_never_panic(msgs in proptest::collection::vec((1u8..9, proptest::collection::vec(any::<u8>(), 0..200)), 1..20)) {
            let mut n = serf_node(1);
            let mut now = Instant::from_secs(1);
            for (ty, body) in &msgs {
                let mut m = vec![*ty];
                m.extend_from_slice(body);
                n.handle_datagram(now, addr(7), &as_packet(&m));
                drain_serf(&mut n);
                now += Duration::from_millis(10);
                n.handle_timeout(now);
                drain_serf(&mut n);
            }
            prop_assert!(n.local_member().name.as_str() == "s1");
        }
    }

    #[test]
    fn mutated_serf_traffic_never_panics() {
        // Real traffic: two nodes join, fire events, queries, tag changes.
        let mut a = serf_node(1);
        let mut b = serf_node(2);
        let mut now = Instant::ZERO;
        let mut captured = Vec::new();
        a.join(now, &[addr(2)], false).unwrap();
        let mut buf = Vec::new();
        let (mut sid, mut frame) = (None, Vec::new());
        loop {
            match a.poll_output(&mut buf) {
                Output::OpenStream { id, .. } => sid = Some(id),
                Output::SendFrame { .. } => frame = buf.clone(),
                Output::Transmit { .. } => captured.push(buf.clone()),
                Output::Timeout(_) => break,
                _ => {}
            }
        }
        let s = b.accept_stream(now, addr(1)).unwrap();
        b.handle_stream(now, s, StreamEvent::Frame(&frame));
        loop {
            match b.poll_output(&mut buf) {
                Output::SendFrame { .. } => frame = buf.clone(),
                Output::Transmit { .. } => captured.push(buf.clone()),
                Output::Timeout(_) => break,
                _ => {}
            }
        }
        a.handle_stream(now, sid.unwrap(), StreamEvent::Frame(&frame));
        for k in 0..30u32 {
            now += Duration::from_millis(200);
            if k % 3 == 0 {
                a.user_event(now, "ev", &k.to_be_bytes(), k % 2 == 0)
                    .unwrap();
            }
            if k % 5 == 0 {
                let params = serf_proto::serf::QueryParams {
                    request_ack: true,
                    filter_tags: vec![("role".into(), "w.*".into())],
                    ..Default::default()
                };
                b.query(now, "q", b"payload", &params).unwrap();
            }
            a.handle_timeout(now);
            b.handle_timeout(now);
            let da = drain_serf(&mut a);
            let db = drain_serf(&mut b);
            for d in &da {
                b.handle_datagram(now, addr(1), d);
            }
            for d in &db {
                a.handle_datagram(now, addr(2), d);
            }
            captured.extend(da);
            captured.extend(db);
        }
        assert!(captured.len() > 20);
        let mut rng = serf_proto::NodeRng::new(5);
        let mut n = serf_node(3);
        let now = Instant::from_secs(10);
        for _ in 0..20_000 {
            let mut p = captured[rng.index(captured.len())].clone();
            for _ in 0..1 + rng.index(3) {
                let i = 2 + rng.index(p.len() - 2);
                p[i] ^= 1 << rng.index(8);
            }
            n.handle_datagram(now, addr(7), &p);
            drain_serf(&mut n);
        }
        assert!(n.serf_metrics().messages_malformed + n.metrics().messages_malformed > 0);
        assert_eq!(n.local_member().name.as_str(), "s3");
    }
}
