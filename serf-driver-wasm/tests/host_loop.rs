//! The driver half under a host written in Rust: an in-memory network that carries the
//! packed operations exactly as the JavaScript host does over sockets (datagrams, stream
//! opens, frame bytes, closes and aborts), with virtual time in milliseconds.

use serf_driver_wasm::ops::{Op, OpReader};
use serf_driver_wasm::{JsEvent, JsQueryParams, Node, NodeOptions, Seed};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

const KEY: &str = "T9jncgl9mbLus+baTTa7q7nPSUrXwbDi2dhbtqir37s=";

fn options(name: &str, port: u16) -> NodeOptions {
    NodeOptions {
        name: name.into(),
        address: format!("127.0.0.1:{port}"),
        seed: Some(Seed::Bytes(u64::from(port).to_le_bytes().to_vec())),
        profile: Some("local".into()),
        keys: vec![KEY.into()],
        label: "test-cluster".into(),
        ..NodeOptions::default()
    }
}

enum Wire {
    Datagram(SocketAddr, Vec<u8>),
    Open { from: usize, id: u64 },
    Bytes { from: usize, id: u64, data: Vec<u8> },
    Closed { from: usize, id: u64 },
    Aborted { from: usize, id: u64 },
}

/// Nodes on an in-memory network with a fixed 1 ms latency.
struct Net {
    nodes: Vec<Node>,
    addrs: Vec<SocketAddr>,
    now: f64,
    /// (deliver at, destination, what)
    queue: VecDeque<(f64, usize, Wire)>,
    /// (node, its stream id) -> (peer, the peer's id), once accepted.
    links: HashMap<(usize, u64), (usize, u64)>,
    events: Vec<Vec<JsEvent>>,
}

impl Net {
    fn new(names: &[&str]) -> Net {
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let opts = options(name, 7000 + i as u16);
            addrs.push(opts.socket_addr().unwrap());
            nodes.push(Node::new(&opts, 0.0).unwrap());
        }
        let n = nodes.len();
        Net {
            nodes,
            addrs,
            now: 0.0,
            queue: VecDeque::new(),
            links: HashMap::new(),
            events: vec![Vec::new(); n],
        }
    }

    fn at(&self, a: SocketAddr) -> usize {
        self.addrs.iter().position(|x| *x == a).unwrap()
    }

    /// Takes every node's output and events, as the host does after each turn.
    fn collect(&mut self) {
        for i in 0..self.nodes.len() {
            let out = self.nodes[i].take_output();
            let when = self.now + 1.0;
            for op in OpReader::new(&out) {
                let (to, wire) = match op {
                    Op::Transmit { to, data } => {
                        (self.at(to), Wire::Datagram(self.addrs[i], data.to_vec()))
                    }
                    Op::Open { id, to, .. } => (
                        self.at(to),
                        Wire::Open {
                            from: i,
                            id: id as u64,
                        },
                    ),
                    Op::Frame { id, data } => {
                        let Some(&(peer, _)) = self.links.get(&(i, id as u64)) else {
                            // Not connected yet: the peer is the open's destination.
                            let peer = self.pending_peer(i, id as u64);
                            self.queue.push_back((
                                when,
                                peer,
                                Wire::Bytes {
                                    from: i,
                                    id: id as u64,
                                    data: data.to_vec(),
                                },
                            ));
                            continue;
                        };
                        (
                            peer,
                            Wire::Bytes {
                                from: i,
                                id: id as u64,
                                data: data.to_vec(),
                            },
                        )
                    }
                    Op::Close { id } => match self.peer_of(i, id as u64) {
                        Some(p) => (
                            p,
                            Wire::Closed {
                                from: i,
                                id: id as u64,
                            },
                        ),
                        None => continue,
                    },
                    Op::Abort { id } => match self.peer_of(i, id as u64) {
                        Some(p) => (
                            p,
                            Wire::Aborted {
                                from: i,
                                id: id as u64,
                            },
                        ),
                        None => continue,
                    },
                };
                self.queue.push_back((when, to, wire));
            }
            while let Some(e) = self.nodes[i].take_event() {
                self.events[i].push(e);
            }
        }
    }

    fn pending_peer(&self, from: usize, id: u64) -> usize {
        self.queue
            .iter()
            .find_map(|(_, to, w)| match w {
                Wire::Open { from: f, id: i } if *f == from && *i == id => Some(*to),
                _ => None,
            })
            .expect("a frame follows its open")
    }

    fn peer_of(&self, from: usize, id: u64) -> Option<usize> {
        self.links.get(&(from, id)).map(|(p, _)| *p).or_else(|| {
            self.queue.iter().find_map(|(_, to, w)| match w {
                Wire::Open { from: f, id: i } if *f == from && *i == id => Some(*to),
                _ => None,
            })
        })
    }

    /// Delivers everything due, else moves time to the next deadline.
    fn step(&mut self) {
        self.collect();
        if let Some((when, to, wire)) = self.queue.pop_front() {
            self.now = self.now.max(when);
            let now = self.now;
            match wire {
                Wire::Datagram(from, data) => {
                    self.nodes[to].handle_datagram(now, &from.ip().to_string(), from.port(), &data)
                }
                Wire::Open { from, id } => {
                    let a = self.addrs[from];
                    let theirs = self.nodes[to].accept_stream(now, &a.ip().to_string(), a.port());
                    if let Some(theirs) = theirs {
                        self.links.insert((from, id), (to, theirs as u64));
                        self.links.insert((to, theirs as u64), (from, id));
                    }
                }
                Wire::Bytes { from, id, data } => {
                    if let Some(&(_, theirs)) = self.links.get(&(from, id)) {
                        // Bytes in arbitrary pieces, as TCP delivers them.
                        for piece in data.chunks(7) {
                            self.nodes[to].stream_data(now, theirs as f64, piece);
                        }
                    }
                }
                Wire::Closed { from, id } => {
                    if let Some(&(_, theirs)) = self.links.get(&(from, id)) {
                        self.nodes[to].stream_closed(now, theirs as f64);
                    }
                }
                Wire::Aborted { from, id } => {
                    if let Some(&(_, theirs)) = self.links.get(&(from, id)) {
                        self.nodes[to].stream_failed(now, theirs as f64);
                    }
                }
            }
        } else {
            let next = self
                .nodes
                .iter()
                .map(Node::next_deadline)
                .fold(f64::INFINITY, f64::min);
            assert!(next.is_finite(), "a running node always has a timer");
            self.now = self.now.max(next);
            let now = self.now;
            for n in &mut self.nodes {
                if n.next_deadline() <= now {
                    n.handle_timeout(now);
                }
            }
        }
    }

    fn run_until(&mut self, limit_ms: f64, what: &str, mut done: impl FnMut(&Net) -> bool) {
        let end = self.now + limit_ms;
        while !done(self) {
            assert!(self.now < end, "not within {limit_ms} virtual ms: {what}");
            self.step();
        }
    }
}

fn alive(node: &Node) -> usize {
    node.members()
        .iter()
        .filter(|m| m.status == "alive")
        .count()
}

#[test]
fn three_nodes_join_over_streams_exchange_events_answer_a_query_and_one_leaves() {
    let mut net = Net::new(&["a", "b", "c"]);
    for i in 1..3 {
        let id = net.nodes[i].join(0.0, &["127.0.0.1:7000"], false).unwrap();
        assert!(id >= 0.0);
    }
    net.run_until(10_000.0, "every node sees three alive", |n| {
        n.nodes.iter().all(|x| alive(x) == 3)
    });
    for i in 1..3 {
        assert!(
            net.events[i]
                .iter()
                .any(|e| matches!(e, JsEvent::JoinCompleted { joined: 1, .. })),
            "node {i} reports its join"
        );
    }

    net.nodes[2]
        .user_event(net.now, "deploy", b"v2", false)
        .unwrap();
    net.run_until(5_000.0, "the user event reaches a", |n| {
        n.events[0].iter().any(|e| {
            matches!(e, JsEvent::User { name, payload, .. } if name == "deploy" && &payload[..] == b"v2")
        })
    });

    let params = JsQueryParams {
        request_ack: true,
        ..JsQueryParams::default()
    };
    let qid = net.nodes[0].query(net.now, "whoami", b"", &params).unwrap();
    // Each node answers the query with its name, as an application does on the event.
    let mut answered = [false; 3];
    net.run_until(5_000.0, "b and c get the query", |n| {
        (1..3).all(|i| {
            n.events[i]
                .iter()
                .any(|e| matches!(e, JsEvent::Query { .. }))
        })
    });
    for (i, done) in answered.iter_mut().enumerate() {
        let handle = net.events[i].iter().find_map(|e| match e {
            JsEvent::Query { handle, name, .. } if name == "whoami" => Some(*handle),
            _ => None,
        });
        if let Some(h) = handle {
            let name = ["a", "b", "c"][i];
            net.nodes[i].respond(net.now, h, name.as_bytes()).unwrap();
            *done = true;
        }
    }
    assert!(answered[1] && answered[2]);
    net.run_until(10_000.0, "the query ends", |n| {
        n.events[0]
            .iter()
            .any(|e| matches!(e, JsEvent::QueryDone { id, .. } if *id == qid))
    });
    let mut from: Vec<String> = net.events[0]
        .iter()
        .filter_map(|e| match e {
            JsEvent::QueryResponse { id, from, payload } if *id == qid => {
                assert_eq!(from.as_bytes(), &payload[..]);
                Some(from.clone())
            }
            _ => None,
        })
        .collect();
    from.sort();
    assert!(
        from.contains(&"b".to_string()) && from.contains(&"c".to_string()),
        "{from:?}"
    );

    net.nodes[1].leave(net.now).unwrap();
    net.run_until(
        10_000.0,
        "b's leave completes and a and c see it left",
        |n| {
            n.events[1]
                .iter()
                .any(|e| matches!(e, JsEvent::LeaveCompleted))
                && [0, 2].iter().all(|&i| {
                    n.nodes[i]
                        .members()
                        .iter()
                        .any(|m| m.name == "b" && m.status == "left")
                })
        },
    );
    let stats = net.nodes[0].stats();
    assert!(stats.encrypted);
    assert_eq!(stats.left, 1);
    let m = net.nodes[0].metrics();
    assert!(m["driver.datagramsSent"] > 0.0);
    assert!(m["driver.streamsAccepted"] >= 2.0);
}

#[test]
fn hostile_host_inputs_are_dropped_and_counted() {
    let mut net = Net::new(&["a"]);
    let a = &mut net.nodes[0];
    a.handle_datagram(1.0, "not an ip", 1, b"x");
    assert!(a.accept_stream(1.0, "999.1.1.1", 1).is_none());
    assert_eq!(a.counters().bad_addresses, 2);
    // Ids that are no stream, or not even integers.
    for id in [-1.0, 0.5, f64::NAN, f64::INFINITY, 1e300, 12345.0] {
        a.stream_data(1.0, id, b"abc");
        a.stream_closed(1.0, id);
        a.stream_failed(1.0, id);
        a.stream_frame(1.0, id, b"abc");
    }
    assert_eq!(a.counters().unknown_streams, 24);
    // Garbage datagrams are the core's to count.
    a.handle_datagram(1.0, "127.0.0.1", 9, &[0xff; 100]);
    assert!(a.serf().metrics().iter().any(|(_, _, v)| v > 0));
    // Times that are NaN, negative or absurd are no times: the last good one holds.
    let before = a.next_deadline();
    for t in [f64::NAN, -5.0, f64::INFINITY, 1e300] {
        a.handle_timeout(t);
    }
    assert_eq!(a.counters().bad_times, 4);
    assert_eq!(a.next_deadline(), before);
    // A clock that steps back is held where it was.
    a.handle_timeout(0.5);
    assert!(a.respond(1.0, f64::NAN, b"").is_err());
    assert!(
        a.join(1.0, &["localhost"], false)
            .unwrap_err()
            .0
            .contains("ip:port")
    );
    assert!(a.join(1.0, &[], false).is_err());
    assert!(a.key_op(1.0, "rotate", None).is_err());
    assert!(a.key_op(1.0, "install", Some("AAAA")).is_err());
}

#[test]
fn a_frame_longer_than_the_limit_fails_and_aborts_the_stream() {
    let mut net = Net::new(&["a"]);
    let a = &mut net.nodes[0];
    let id = a.accept_stream(0.0, "127.0.0.1", 5555).unwrap();
    let max = a.max_frame_len() as u32;
    a.stream_data(0.0, id, &(max + 1).to_be_bytes());
    assert_eq!(a.counters().frames_too_long, 1);
    let out = a.take_output();
    assert!(
        OpReader::new(&out).any(|op| op == Op::Abort { id }),
        "the host is told to tear the connection down"
    );
    // Anything more on it is unknown now.
    a.stream_data(0.0, id, &[0; 16]);
    assert_eq!(a.counters().unknown_streams, 1);
}

#[test]
fn a_host_that_never_takes_output_loses_datagrams_not_memory() {
    let mut opts = options("a", 7000);
    opts.output_capacity = Some(1500);
    opts.event_capacity = Some(2);
    let mut a = Node::new(&opts, 0.0).unwrap();
    let mut b = Node::new(&options("b", 7001), 0.0).unwrap();
    // Make a know b, then let gossip and probes pile up without the host taking them.
    b.join(0.0, &["127.0.0.1:7000"], false).unwrap();
    let out = b.take_output();
    let ops: Vec<Op<'_>> = OpReader::new(&out).collect();
    let Op::Frame { data, .. } = &ops[1] else {
        panic!("{ops:?}")
    };
    let id = a.accept_stream(1.0, "127.0.0.1", 7001).unwrap();
    a.stream_data(1.0, id, data);
    for i in 0..20 {
        a.user_event(2.0 + f64::from(i), "e", &[0; 200], false)
            .unwrap();
    }
    for t in 0..2000 {
        a.handle_timeout(f64::from(t) * 50.0);
    }
    assert_eq!(a.serf().num_members(), 2, "a learned b from its push-pull");
    // Datagrams and frames stop at the capacity; stream opens, closes and aborts (a few
    // dozen bytes each, as many as the core has streams) are never dropped.
    assert!(a.output().len() <= 1500 + 1024, "{}", a.output().len());
    assert!(a.counters().datagrams_dropped > 0, "{:?}", a.counters());
    assert!(a.counters().events_dropped > 0);
}
