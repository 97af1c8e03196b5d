//! Which checksum and which compressor to use: each algorithm on real gossip, as the core
//! builds it, with the ratio, the nanoseconds per operation and the packets per second it
//! leaves one core. Prints the Markdown table that the README quotes.
//!
//! Run: `cargo bench -p serf-proto --bench transforms --features all-checksums,all-compressors`
//! (an argument filters the workloads by name, e.g. `-- push_pull`).
//!
//! The workloads come out of a real Serf node: it learns 10, 100, 1,000 or 10,000 members
//! from alive datagrams (with Serf tags as metadata), some of them suspected, fires user
//! events, and its gossip datagrams and push-pull frames are captured with no transforms.
//! The 8 KB user event is encoded with the core's Serf and memberlist encoders. Timing is a
//! plain loop (median of several samples), so the whole run stays within a minute; it
//! measures one thread and is noisy to a few percent on a shared machine.

use serf_proto::serf::messages::UserEventMsg;
use serf_proto::serf::{self, Tags, encode_tags};
use serf_proto::transform::label;
use serf_proto::wire::{Alive, Suspect, User, WireMessage};
use serf_proto::{Checksum, Compressor, Instant, Output, Serf};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 7946))
}

fn name(i: usize) -> String {
    format!("node-{i:05}.dc1.example")
}

fn tags(i: usize) -> Tags {
    let mut t = Tags::new();
    t.insert("role".into(), ["web", "db", "cache"][i % 3].into());
    t.insert("dc".into(), "dc1".into());
    t.insert("rack".into(), format!("r{}", i % 40));
    t.insert("build".into(), "1.14.2".into());
    t
}

/// A datagram as a node without transforms sends it: the two-byte header, then the body.
fn datagram(body: &[u8]) -> Vec<u8> {
    let mut d = vec![label::VERSION, 0];
    d.extend_from_slice(body);
    d
}

/// The body of a packet or frame sent without transforms.
fn body_of(packet: &[u8]) -> Vec<u8> {
    let header = label::read_header(packet).expect("the core writes valid headers");
    assert_eq!(header.len, 2, "no label, no transforms");
    packet[2..].to_vec()
}

/// A Serf node that has learned `n - 1` members (every tenth suspected) and fired a few
/// user events, with no transforms so its output bytes are plain bodies.
fn node(n: usize) -> (Serf, Instant) {
    let now = Instant::ZERO;
    let mut config = serf::Config {
        tags: tags(0),
        user_event_size_limit: serf::USER_EVENT_SIZE_HARD_LIMIT,
        ..serf::Config::default()
    };
    config.memberlist.checksum = None;
    config.memberlist.compression = None;
    config.memberlist.push_pull_interval = Duration::ZERO;
    config.memberlist.max_queue_depth = 1 << 16;
    config.max_queue_depth = 1 << 16;
    let mut serf = Serf::new(config, &name(0), addr(0), 7, now).unwrap();
    let mut buf = Vec::new();
    for i in 1..n {
        let mut meta = Vec::new();
        encode_tags(&tags(i), &mut meta);
        let alive = Alive {
            incarnation: 1 + (i % 3) as u32,
            node: &name(i),
            addr: addr(i),
            meta: &meta,
            versions: [1, 1, 1, 1, 1, 1],
        };
        serf.handle_datagram(now, addr(i), &datagram(&alive.to_vec()));
        if i % 10 == 5 {
            let suspect = Suspect {
                incarnation: alive.incarnation,
                node: &name(i),
                from: &name(i - 1),
            };
            serf.handle_datagram(now, addr(i - 1), &datagram(&suspect.to_vec()));
        }
        drain(&mut serf, &mut buf);
    }
    for e in 0..3 {
        let payload = format!("{{\"service\":\"web\",\"version\":\"1.14.{e}\",\"canary\":false}}");
        serf.user_event(now, &format!("deploy-{e}"), payload.as_bytes(), true)
            .unwrap();
    }
    (serf, now)
}

/// Drops what the node has to say (events, and datagrams nobody receives).
fn drain(serf: &mut Serf, buf: &mut Vec<u8>) {
    while !matches!(serf.poll_output(buf), Output::Timeout(_)) {}
}

/// Gossip datagrams of a node in a cluster of `n`: alive, suspect and user messages, as
/// many as fit in each packet.
fn gossip_packets(n: usize) -> Vec<Vec<u8>> {
    let (mut serf, mut now) = node(n);
    let (mut buf, mut packets) = (Vec::new(), Vec::new());
    while packets.len() < 60 {
        now += Duration::from_millis(200);
        serf.handle_timeout(now);
        loop {
            match serf.poll_output(&mut buf) {
                Output::Timeout(_) => break,
                Output::Transmit { .. } => packets.push(body_of(&buf)),
                _ => {}
            }
        }
        if now > Instant::ZERO + Duration::from_secs(60) {
            break;
        }
    }
    assert!(!packets.is_empty(), "a node with {n} members gossips");
    packets
}

/// The push-pull frame a node in a cluster of `n` sends when it joins a peer.
fn push_pull_frame(n: usize) -> Vec<Vec<u8>> {
    let (mut serf, now) = node(n);
    let mut buf = Vec::new();
    serf.join(now, &[addr(1)], false).unwrap();
    loop {
        match serf.poll_output(&mut buf) {
            Output::SendFrame { .. } => return vec![body_of(&buf)],
            Output::Timeout(_) => panic!("a join sends its push-pull"),
            _ => {}
        }
    }
}

/// An 8 KB user event (a JSON document, the usual payload) framed as the core frames it.
fn user_event_8k() -> Vec<Vec<u8>> {
    let mut payload = String::from("{\"services\":[");
    let mut i = 0;
    while payload.len() < 8 * 1024 - 120 {
        payload.push_str(&format!(
            "{{\"name\":\"svc-{i}\",\"port\":{},\"checks\":[\"http\",\"tcp\"],\"weight\":{}}},",
            8000 + i,
            i % 7
        ));
        i += 1;
    }
    payload.push_str("]}");
    let mut event = Vec::new();
    UserEventMsg {
        ltime: 41,
        name: "config-update",
        payload: payload.as_bytes(),
        coalesce: false,
    }
    .encode(&mut event);
    vec![User { payload: &event }.to_vec()]
}

/// Nanoseconds per call of `f`: the median of samples of about 20 ms each.
fn time_ns(mut f: impl FnMut()) -> f64 {
    let start = std::time::Instant::now();
    let mut iters = 0u64;
    while start.elapsed() < Duration::from_millis(20) {
        f();
        iters += 1;
    }
    let per_sample = iters.max(1);
    let mut samples: Vec<f64> = (0..9)
        .map(|_| {
            let t = std::time::Instant::now();
            for _ in 0..per_sample {
                f();
            }
            t.elapsed().as_nanos() as f64 / per_sample as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

struct Workload {
    name: String,
    bodies: Vec<Vec<u8>>,
}

impl Workload {
    fn mean_len(&self) -> f64 {
        self.bodies.iter().map(Vec::len).sum::<usize>() as f64 / self.bodies.len() as f64
    }

    /// Nanoseconds per body of `f` over all bodies.
    fn time_per_body(&self, mut f: impl FnMut(&[u8])) -> f64 {
        time_ns(|| {
            for b in &self.bodies {
                f(black_box(b));
            }
        }) / self.bodies.len() as f64
    }
}

fn per_second(ns: f64) -> String {
    let per_s = 1e9 / ns;
    if per_s >= 1e6 {
        format!("{:.1} M", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.0} k", per_s / 1e3)
    } else {
        format!("{per_s:.0}")
    }
}

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_default();
    let mut workloads = Vec::new();
    for n in [10, 100, 1000] {
        workloads.push((
            "gossip",
            n,
            Workload {
                name: format!("gossip, {n} members"),
                bodies: gossip_packets(n),
            },
        ));
    }
    for n in [100, 10_000] {
        workloads.push((
            "push_pull",
            n,
            Workload {
                name: format!("push-pull, {n} members"),
                bodies: push_pull_frame(n),
            },
        ));
    }
    workloads.push((
        "user_event",
        8,
        Workload {
            name: "user event, 8 KB".into(),
            bodies: user_event_8k(),
        },
    ));

    println!(
        "| workload | mean size | algorithm | ratio | ns/op compress or checksum | ns/op decompress or verify | packets/s/core (seal + open) |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|");
    for (kind, _, w) in &workloads {
        if !w.name.contains(&filter) && !kind.contains(&filter) {
            continue;
        }
        let size = format!("{:.0} B × {}", w.mean_len(), w.bodies.len());
        for c in Compressor::ALL {
            let mut compressed: Vec<Vec<u8>> = Vec::new();
            for b in &w.bodies {
                let mut z = Vec::new();
                c.compress(b, &mut z).unwrap();
                let mut back = Vec::new();
                c.decompress(&z, &mut back, b.len()).unwrap();
                assert!(back == *b, "{c:?} round trip");
                compressed.push(z);
            }
            let ratio = w.bodies.iter().map(Vec::len).sum::<usize>() as f64
                / compressed.iter().map(Vec::len).sum::<usize>() as f64;
            let mut z = Vec::new();
            let compress = w.time_per_body(|b| {
                z.clear();
                c.compress(b, &mut z).unwrap();
            });
            let mut out = Vec::new();
            let decompress = time_ns(|| {
                for (z, b) in compressed.iter().zip(&w.bodies) {
                    c.decompress(black_box(z), &mut out, b.len()).unwrap();
                }
            }) / compressed.len() as f64;
            println!(
                "| {} | {size} | {} | {ratio:.2} | {compress:.0} | {decompress:.0} | {} |",
                w.name,
                c.feature(),
                per_second(compress + decompress)
            );
        }
        for c in Checksum::ALL {
            let header = [label::VERSION, c.flags()];
            let digest = w.time_per_body(|b| {
                black_box(c.digest(&header, b).unwrap());
            });
            // Verifying is the same digest plus a comparison.
            println!(
                "| {} | {size} | {} | – | {digest:.0} | {digest:.0} | {} |",
                w.name,
                c.feature(),
                per_second(2.0 * digest)
            );
        }
    }
}
