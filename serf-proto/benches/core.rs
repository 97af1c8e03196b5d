//! Hot-path costs of the core: a probe round trip through two cores, a full compound
//! packet, and each transform on 1400 bytes.
//!
//! Run: `cargo bench -p serf-proto --bench core`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serf_proto::memberlist::{Config, Memberlist};
use serf_proto::transform::{OpenScratch, Transforms};
use serf_proto::wire::{Alive, BodyIter, Message, WireMessage};
use serf_proto::{Checksum, Compressor, Instant, Keyring, NodeRng, Output, SecretKey, StreamEvent};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 7946))
}

/// Two nodes that know each other, with no traffic pending.
fn pair() -> (Memberlist, Memberlist, Instant) {
    let mut now = Instant::ZERO;
    let config = Config {
        push_pull_interval: Duration::ZERO,
        ..Config::lan()
    };
    let mut a = Memberlist::new(config.clone(), "a", addr(1), b"", 1, now).unwrap();
    let mut b = Memberlist::new(config, "b", addr(2), b"", 2, now).unwrap();
    a.join(now, &[addr(2)]).unwrap();
    let mut buf = Vec::new();
    // Run the join's push-pull by hand.
    let (mut a_stream, mut frame) = (None, Vec::new());
    while let Some(o) = step(&mut a, &mut buf) {
        match o {
            Output::OpenStream { id, .. } => a_stream = Some(id),
            Output::SendFrame { .. } => frame = buf.clone(),
            _ => {}
        }
    }
    let b_stream = b.accept_stream(now, addr(1)).unwrap();
    b.handle_stream(now, b_stream, StreamEvent::Frame(&frame));
    while let Some(o) = step(&mut b, &mut buf) {
        if let Output::SendFrame { .. } = o {
            frame = buf.clone();
        }
    }
    a.handle_stream(now, a_stream.unwrap(), StreamEvent::Frame(&frame));
    // Let the alive broadcasts of the join retire.
    for _ in 0..200 {
        now += Duration::from_millis(50);
        exchange(&mut a, &mut b, now, &mut buf);
    }
    assert_eq!(a.num_alive(), 2);
    assert_eq!(b.num_alive(), 2);
    (a, b, now)
}

fn step(n: &mut Memberlist, buf: &mut Vec<u8>) -> Option<Output<serf_proto::memberlist::Event>> {
    match n.poll_output(buf) {
        Output::Timeout(_) => None,
        o => Some(o),
    }
}

/// Fires due timers on both nodes and delivers every datagram until quiet.
fn exchange(a: &mut Memberlist, b: &mut Memberlist, now: Instant, buf: &mut Vec<u8>) -> usize {
    a.handle_timeout(now);
    b.handle_timeout(now);
    let mut delivered = 0;
    loop {
        let mut moved = false;
        while let Some(o) = step(a, buf) {
            if let Output::Transmit { .. } = o {
                b.handle_datagram(now, addr(1), buf);
                delivered += 1;
                moved = true;
            }
        }
        while let Some(o) = step(b, buf) {
            if let Output::Transmit { .. } = o {
                a.handle_datagram(now, addr(2), buf);
                delivered += 1;
                moved = true;
            }
        }
        if !moved {
            return delivered;
        }
    }
}

fn probe_round_trip(c: &mut Criterion) {
    let (mut a, mut b, mut now) = pair();
    let mut buf = Vec::with_capacity(2048);
    // Each period must really carry a probe: a ping and its ack.
    let mut moved = 0;
    for _ in 0..100 {
        now += Duration::from_millis(500);
        moved += exchange(&mut a, &mut b, now, &mut buf);
    }
    assert!(
        moved >= 190,
        "expected ~2 datagrams per period, got {moved} in 100"
    );
    let mut g = c.benchmark_group("probe");
    g.throughput(Throughput::Elements(1));
    // One probe period: a's timer fires, a encodes a ping, b decodes it and encodes an ack,
    // a decodes the ack (and b's own probe of a, every other period).
    g.bench_function("ping_ack_round_trip_two_cores", |bench| {
        bench.iter(|| {
            now += Duration::from_millis(500);
            black_box(exchange(&mut a, &mut b, now, &mut buf))
        })
    });
    g.finish();
    assert_eq!(a.num_alive(), 2);
}

fn full_packet_body() -> Vec<u8> {
    let mut body = Vec::new();
    let mut i = 0u32;
    loop {
        let name = format!("node-{i:05}.dc1.example");
        let mut next = Vec::new();
        Alive {
            incarnation: i,
            node: &name,
            addr: SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 7946)),
            meta: b"\xffrole=web,dc=dc1",
            versions: [1, 1, 1, 2, 5, 5],
        }
        .encode(&mut next);
        if body.len() + next.len() > 1360 {
            return body;
        }
        body.extend_from_slice(&next);
        i += 1;
    }
}

fn compound_packet(c: &mut Criterion) {
    let body = full_packet_body();
    let n_msgs = BodyIter::new(&body).count();
    let mut g = c.benchmark_group("compound_packet");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function(format!("encode_{n_msgs}_alive_{}B", body.len()), |bench| {
        let mut out = Vec::with_capacity(1500);
        bench.iter(|| {
            out.clear();
            for (_, fields) in BodyIter::new(&body).map(Result::unwrap) {
                if let Ok(Some(Message::Alive(a))) = Message::decode(6, fields, 0) {
                    a.encode(&mut out);
                }
            }
            black_box(out.len())
        })
    });
    g.bench_function(format!("decode_{n_msgs}_alive_{}B", body.len()), |bench| {
        bench.iter(|| {
            let mut n = 0;
            for item in BodyIter::new(black_box(&body)) {
                let (ty, fields) = item.unwrap();
                if let Ok(Some(Message::Alive(a))) = Message::decode(ty, fields, 0) {
                    n += a.node.len();
                }
            }
            n
        })
    });
    g.finish();
}

fn transforms(c: &mut Criterion) {
    let body = full_packet_body();
    let key = Keyring::new(SecretKey([7; 32]));
    let variants: Vec<(&str, Transforms)> = vec![
        ("none", Transforms::default()),
        (
            "label",
            Transforms {
                label: b"prod".to_vec(),
                ..Transforms::default()
            },
        ),
        (
            "crc32",
            Transforms {
                checksum: Some(Checksum::Crc32),
                ..Transforms::default()
            },
        ),
        (
            "snappy",
            Transforms {
                compression: Some(Compressor::Snappy),
                ..Transforms::default()
            },
        ),
        (
            "xchacha20poly1305",
            Transforms {
                keyring: Some(key.clone()),
                encrypt_outgoing: true,
                require_encrypted_incoming: true,
                ..Transforms::default()
            },
        ),
        (
            "all",
            Transforms {
                label: b"prod".to_vec(),
                checksum: Some(Checksum::Crc32),
                compression: Some(Compressor::Snappy),
                keyring: Some(key),
                encrypt_outgoing: true,
                require_encrypted_incoming: true,
                ..Transforms::default()
            },
        ),
    ];
    let mut g = c.benchmark_group("transform_1400B");
    g.throughput(Throughput::Bytes(body.len() as u64));
    for (name, t) in &variants {
        let mut rng = NodeRng::new(1);
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        g.bench_function(format!("seal_{name}"), |bench| {
            bench.iter(|| {
                t.seal(black_box(&body), &mut rng, &mut scratch, &mut out)
                    .unwrap();
                out.len()
            })
        });
        t.seal(&body, &mut rng, &mut scratch, &mut out).unwrap();
        let sealed = out.clone();
        g.bench_function(format!("open_{name}"), |bench| {
            bench.iter_batched_ref(
                OpenScratch::default,
                |os| t.open(black_box(&sealed), os, 65536).unwrap().len(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// A Serf push-pull frame whose state lists `names` status times and as many left members.
fn serf_push_pull_frame(names: usize) -> Vec<u8> {
    use serf_proto::serf::messages::PushPullState;
    use serf_proto::wire::PushPull;
    let status: Vec<(String, u64)> = (0..names).map(|i| (format!("s{i}"), 3)).collect();
    let left: Vec<String> = (0..names).map(|i| format!("l{i}")).collect();
    let mut user = Vec::new();
    PushPullState::encode(
        &mut user,
        5,
        status.iter().map(|(n, t)| (n.as_str(), *t)),
        left.iter().map(String::as_str),
        1,
        std::iter::empty::<(u64, &[(String, bytes::Bytes)])>(),
        1,
    );
    let mut frame = vec![1u8, 0];
    PushPull::encode(&mut frame, false, std::iter::empty(), &user);
    frame
}

fn serf_push_pull_merge(c: &mut Criterion) {
    use serf_proto::Serf;
    let mut g = c.benchmark_group("serf_push_pull_merge");
    g.sample_size(10);
    for names in [10_000usize, 40_000] {
        let frame = serf_push_pull_frame(names);
        g.throughput(Throughput::Elements(2 * names as u64));
        g.bench_function(format!("{names}_status_and_{names}_left"), |bench| {
            bench.iter_batched(
                || {
                    Serf::new(
                        serf_proto::serf::Config::default(),
                        "solo",
                        addr(1),
                        3,
                        Instant::ZERO,
                    )
                    .unwrap()
                },
                |mut s| {
                    let id = s.accept_stream(Instant::ZERO, addr(2)).unwrap();
                    s.handle_stream(Instant::ZERO, id, StreamEvent::Frame(&frame));
                    s
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = probe_round_trip, compound_packet, transforms, serf_push_pull_merge
}
criterion_main!(benches);
