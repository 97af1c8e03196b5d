//! What one datagram from a peer can make a node send. Each test is an attack a security
//! review found: the reply address a request claims, datagrams packed with requests,
//! indirect pings to arbitrary hosts, query relays, oversized events. Go memberlist and
//! serf answer all of them in full.

use serf_proto::memberlist::{Config, Memberlist};
use serf_proto::serf::messages::{QUERY_FLAG_ACK, QueryMsg, UserEventMsg};
use serf_proto::serf::{self, Event, Serf};
use serf_proto::wire::{Alive, IndirectPing, Ping, User, WireMessage};
use serf_proto::{Instant, Output};
use std::net::SocketAddr;
use std::time::Duration;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 7, 0, i], 7946))
}

const VICTIM: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7)),
    53,
);

/// A plain datagram (no checksum, no compression) carrying `msgs`.
fn packet(msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut p = vec![1u8, 0];
    for m in msgs {
        p.extend_from_slice(m);
    }
    p
}

fn plain() -> Config {
    Config {
        checksum: None,
        compression: None,
        ..Config::lan()
    }
}

fn ping(seq: u32, source_addr: Option<SocketAddr>) -> Vec<u8> {
    Ping {
        seq,
        target: "",
        source_addr,
        source_name: "n2",
    }
    .to_vec()
}

/// Destinations of the datagrams a drain produced (events are returned apart).
fn drain<E>(mut poll: impl FnMut(&mut Vec<u8>) -> Output<E>) -> (Vec<SocketAddr>, Vec<E>) {
    let (mut to, mut events, mut buf) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        match poll(&mut buf) {
            Output::Transmit { to: t } => to.push(t),
            Output::OpenStream { to: t, .. } => to.push(t),
            Output::Event(e) => events.push(e),
            Output::Timeout(_) => return (to, events),
            _ => {}
        }
    }
}

/// A datagram announcing members `n{i}` at `addr(i)` for each `i` in `range`.
fn alives(range: std::ops::RangeInclusive<u8>) -> Vec<u8> {
    let msgs: Vec<Vec<u8>> = range
        .map(|i| {
            Alive {
                incarnation: 1,
                node: &format!("n{i}"),
                addr: addr(i),
                meta: b"",
                versions: [1; 6],
            }
            .to_vec()
        })
        .collect();
    packet(&msgs)
}

fn memberlist() -> Memberlist {
    Memberlist::new(plain(), "n1", addr(1), b"", 1, Instant::ZERO).unwrap()
}

#[test]
fn a_ping_is_answered_at_its_source_not_at_the_address_it_claims() {
    let mut m = memberlist();
    m.handle_datagram(Instant::ZERO, addr(2), &packet(&[ping(1, Some(VICTIM))]));
    let (to, _) = drain(|b| m.poll_output(b));
    assert_eq!(to, vec![addr(2)]);
    assert_eq!(m.metrics().reply_address_mismatch, 1);
    // A claimed address equal to the source is fine.
    m.handle_datagram(Instant::ZERO, addr(2), &packet(&[ping(2, Some(addr(2)))]));
    assert_eq!(drain(|b| m.poll_output(b)).0, vec![addr(2)]);
    assert_eq!(m.metrics().reply_address_mismatch, 1);
}

#[test]
fn one_datagram_packed_with_pings_gets_at_most_four_answers() {
    let mut m = memberlist();
    let pings: Vec<Vec<u8>> = (0..50).map(|i| ping(i, None)).collect();
    m.handle_datagram(Instant::ZERO, addr(2), &packet(&pings));
    let (to, _) = drain(|b| m.poll_output(b));
    assert_eq!(to.len(), 4, "one ack per handled ping, four at most");
    assert_eq!(m.metrics().requests_dropped, 46);
}

#[test]
fn indirect_pings_go_only_to_members_at_their_known_address() {
    let mut m = memberlist();
    let request = |target: &str, target_addr| {
        IndirectPing {
            seq: 9,
            target,
            target_addr,
            nack: true,
            source_addr: None,
            source_name: "n2",
            nack_timeout_ms: 0,
        }
        .to_vec()
    };
    m.handle_datagram(Instant::ZERO, addr(2), &packet(&[request("ghost", VICTIM)]));
    let (to, _) = drain(|b| m.poll_output(b));
    assert!(to.is_empty(), "{to:?}");
    assert_eq!(m.metrics().indirect_unknown_target, 1);
    // A member we know, at its address, is pinged on the requester's behalf.
    let alive = Alive {
        incarnation: 1,
        node: "n3",
        addr: addr(3),
        meta: b"",
        versions: [1; 6],
    }
    .to_vec();
    m.handle_datagram(Instant::ZERO, addr(2), &packet(&[alive]));
    drain(|b| m.poll_output(b));
    m.handle_datagram(Instant::ZERO, addr(2), &packet(&[request("n3", VICTIM)]));
    assert!(drain(|b| m.poll_output(b)).0.is_empty(), "wrong address");
    m.handle_datagram(Instant::ZERO, addr(2), &packet(&[request("n3", addr(3))]));
    assert_eq!(drain(|b| m.poll_output(b)).0, vec![addr(3)]);
}

/// A Serf node that knows members n2..n12 (alive messages from n2).
fn serf_with_members() -> Serf {
    let config = serf::Config {
        memberlist: plain(),
        ..serf::Config::default()
    };
    let mut s = Serf::new(config, "n1", addr(1), 1, Instant::ZERO).unwrap();
    s.handle_datagram(Instant::ZERO, addr(2), &alives(2..=12));
    drain(|b| s.poll_output(b));
    assert_eq!(s.num_alive(), 12);
    s
}

fn serf_datagram(msg: &[u8]) -> Vec<u8> {
    packet(&[User { payload: msg }.to_vec()])
}

fn query(source: &str, reply_to: SocketAddr, relay_factor: u8, id: u32) -> Vec<u8> {
    let mut q = Vec::new();
    QueryMsg::encode(
        &mut q,
        1,
        id,
        reply_to,
        source,
        &[],
        QUERY_FLAG_ACK,
        relay_factor,
        Duration::from_secs(5),
        "q",
        b"",
    );
    q
}

#[test]
fn query_relays_are_capped_and_only_for_a_source_at_its_known_address() {
    let mut s = serf_with_members();
    // A member asking from its own address: one ack to it, plus at most 5 relayed
    // copies (Go: 200).
    s.handle_datagram(
        Instant::ZERO,
        addr(3),
        &serf_datagram(&query("n3", addr(3), 200, 1)),
    );
    let (to, _) = drain(|b| s.poll_output(b));
    assert_eq!(to.iter().filter(|&&t| t == addr(3)).count(), 1, "{to:?}");
    assert_eq!(to.len(), 1 + 5, "{to:?}");
    // A member's name with another address (a forgery, or a name conflict): answered
    // there, once, with no relays.
    s.handle_datagram(
        Instant::ZERO,
        addr(3),
        &serf_datagram(&query("n3", VICTIM, 200, 2)),
    );
    assert_eq!(drain(|b| s.poll_output(b)).0, vec![VICTIM]);
    assert_eq!(s.serf_metrics().query_origin_mismatch, 1);
    // An unknown source: the same.
    s.handle_datagram(
        Instant::ZERO,
        addr(3),
        &serf_datagram(&query("stranger", VICTIM, 200, 3)),
    );
    assert_eq!(drain(|b| s.poll_output(b)).0, vec![VICTIM]);
}

#[test]
fn a_relay_request_goes_only_to_a_member_at_its_known_address() {
    let mut s = serf_with_members();
    let relay = |dest, dest_name| {
        let mut r = Vec::new();
        serf::messages::RelayMsg {
            dest,
            dest_name,
            inner: b"hello",
        }
        .encode(&mut r);
        r
    };
    s.handle_datagram(Instant::ZERO, addr(2), &serf_datagram(&relay(VICTIM, "n4")));
    assert!(drain(|b| s.poll_output(b)).0.is_empty());
    assert_eq!(s.serf_metrics().relays_refused, 1);
    s.handle_datagram(
        Instant::ZERO,
        addr(2),
        &serf_datagram(&relay(addr(4), "n4")),
    );
    assert_eq!(drain(|b| s.poll_output(b)).0, vec![addr(4)]);
}

#[test]
fn a_user_event_larger_than_any_node_sends_is_dropped_not_spread() {
    let mut s = serf_with_members();
    let event = |ltime, size| {
        let mut e = Vec::new();
        UserEventMsg {
            ltime,
            name: "big",
            payload: &vec![7u8; size],
            coalesce: false,
        }
        .encode(&mut e);
        e
    };
    s.handle_datagram(Instant::ZERO, addr(2), &serf_datagram(&event(1, 10 * 1024)));
    let (to, events) = drain(|b| s.poll_output(b));
    assert!(to.is_empty(), "{to:?}");
    assert!(!events.iter().any(|e| matches!(e, Event::User(_))));
    assert_eq!(s.serf_metrics().messages_oversized, 1);
    // At the hard limit it is delivered.
    let (_, events) = {
        s.handle_datagram(
            Instant::ZERO,
            addr(2),
            &serf_datagram(&event(2, 9 * 1024 - 3)),
        );
        drain(|b| s.poll_output(b))
    };
    assert!(events.iter().any(|e| matches!(e, Event::User(_))));
}

#[test]
fn idle_connections_cannot_lock_out_a_real_push_pull() {
    let mut m = Memberlist::new(
        Config {
            max_inbound_streams: 4,
            ..plain()
        },
        "n1",
        addr(1),
        b"",
        1,
        Instant::ZERO,
    )
    .unwrap();
    // An attacker opens connections and sends nothing (no key needed for that).
    let idle: Vec<_> = (0..4)
        .map(|_| m.accept_stream(Instant::ZERO, VICTIM).unwrap())
        .collect();
    // A real peer still gets in: the oldest idle connection is closed for it.
    let mut peer = Memberlist::new(plain(), "n2", addr(2), b"", 2, Instant::ZERO).unwrap();
    peer.join(Instant::ZERO, &[addr(1)]).unwrap();
    let mut frame = None;
    let mut buf = Vec::new();
    loop {
        match peer.poll_output(&mut buf) {
            Output::SendFrame { .. } => frame = Some(buf.clone()),
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    let id = m.accept_stream(Instant::ZERO, addr(2)).expect("room made");
    assert_eq!(m.metrics().streams_evicted, 1);
    let mut closed = Vec::new();
    loop {
        match m.poll_output(&mut buf) {
            Output::AbortStream { id } => closed.push(id),
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    assert_eq!(closed, vec![idle[0]], "the oldest idle one");
    m.handle_stream(
        Instant::ZERO,
        id,
        serf_proto::StreamEvent::Frame(&frame.expect("push-pull frame")),
    );
    assert_eq!(m.num_alive(), 2, "the push-pull went through");
}

#[test]
fn only_members_confirm_a_suspicion() {
    use serf_proto::memberlist::NodeState;
    use serf_proto::wire::Suspect;
    let run = |confirmers: [&str; 2]| {
        let mut m = memberlist();
        m.handle_datagram(Instant::ZERO, addr(2), &alives(2..=5));
        let suspect = |from| {
            Suspect {
                incarnation: 1,
                node: "n3",
                from,
            }
            .to_vec()
        };
        let msgs: Vec<Vec<u8>> = ["n2", confirmers[0], confirmers[1]]
            .into_iter()
            .map(suspect)
            .collect();
        m.handle_datagram(Instant::ZERO, addr(2), &packet(&msgs));
        // 4 s is the suspicion timeout with two confirmations (5 members); without
        // them it is 24 s.
        let at = Instant::ZERO + Duration::from_millis(4_500);
        m.handle_timeout(at);
        drain(|b| m.poll_output(b));
        m.member("n3").unwrap().state()
    };
    assert_eq!(run(["n4", "n5"]), NodeState::Dead, "members confirm");
    assert_eq!(
        run(["fake-1", "fake-2"]),
        NodeState::Suspect,
        "made-up names do not"
    );
}
