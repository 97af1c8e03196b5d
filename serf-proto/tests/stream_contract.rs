//! The stream half of the driver contract, seen from a driver: which end of a stream is
//! an orderly close (flush, then close) and which is an abort (drop at once).

use serf_proto::memberlist::{Config, Event, Memberlist};
use serf_proto::{Instant, Output, StreamEvent, StreamId};
use std::net::SocketAddr;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 7, 0, i], 7946))
}

fn node(name: &str, i: u8) -> Memberlist {
    Memberlist::new(
        Config::lan(),
        name,
        addr(i),
        b"",
        u64::from(i),
        Instant::ZERO,
    )
    .unwrap()
}

/// What a driver would do with each stream output, in order; frames with their bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Open(StreamId, SocketAddr),
    Frame(StreamId, Vec<u8>),
    Close(StreamId),
    Abort(StreamId),
}

/// Drains `m` to its deadline; the stream operations it asked for.
fn drain(m: &mut Memberlist) -> Vec<Op> {
    let mut buf = Vec::new();
    let mut ops = Vec::new();
    loop {
        match m.poll_output(&mut buf) {
            Output::OpenStream { id, to, .. } => ops.push(Op::Open(id, to)),
            Output::SendFrame { id } => ops.push(Op::Frame(id, buf.clone())),
            Output::CloseStream { id } => ops.push(Op::Close(id)),
            Output::AbortStream { id } => ops.push(Op::Abort(id)),
            Output::Transmit { .. } | Output::Event(_) => {}
            Output::Timeout(_) => return ops,
        }
    }
}

/// `a` starts a join with `b`: the push-pull stream's id and its frame.
fn start_join(a: &mut Memberlist) -> (StreamId, Vec<u8>) {
    a.join(Instant::ZERO, &[addr(2)]).unwrap();
    match drain(a).as_slice() {
        [Op::Open(id, to), Op::Frame(f, frame)] if *to == addr(2) && f == id => {
            (*id, frame.clone())
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stream_past_its_deadline_is_aborted() {
    let mut a = node("a", 1);
    let (id, _) = start_join(&mut a);
    let late = Instant::ZERO + Config::lan().stream_timeout;
    a.handle_timeout(late);
    assert!(drain(&mut a).contains(&Op::Abort(id)));
    assert_eq!(a.metrics().streams_failed, 1);
}

#[test]
fn an_answered_stream_is_closed_after_its_answer() {
    let (mut a, mut b) = (node("a", 1), node("b", 2));
    let (id, frame) = start_join(&mut a);
    let theirs = b.accept_stream(Instant::ZERO, addr(1)).unwrap();
    b.handle_stream(Instant::ZERO, theirs, StreamEvent::Frame(&frame));
    let ops = drain(&mut b);
    let [Op::Frame(f, answer), Op::Close(c)] = ops.as_slice() else {
        panic!("{ops:?}")
    };
    assert_eq!(
        (*f, *c),
        (theirs, theirs),
        "the answer, then an orderly close"
    );
    a.handle_stream(Instant::ZERO, id, StreamEvent::Frame(answer));
    assert_eq!(drain(&mut a), vec![Op::Close(id)]);
    assert_eq!(a.num_alive(), 2);
}

#[test]
fn a_large_user_message_is_flushed_then_closed() {
    let mut a = node("a", 1);
    a.send_user_message(Instant::ZERO, addr(2), &[7u8; 4000])
        .unwrap();
    let ops = drain(&mut a);
    assert!(
        matches!(ops.as_slice(), [Op::Open(o, _), Op::Frame(f, _), Op::Close(c)] if o == f && f == c),
        "{ops:?}"
    );
}

#[test]
fn an_idle_inbound_stream_evicted_for_a_new_one_is_aborted() {
    let config = Config {
        max_inbound_streams: 1,
        ..Config::lan()
    };
    let mut m = Memberlist::new(config, "m", addr(1), b"", 1, Instant::ZERO).unwrap();
    let idle = m.accept_stream(Instant::ZERO, addr(9)).unwrap();
    m.accept_stream(Instant::ZERO, addr(2)).unwrap();
    assert_eq!(drain(&mut m), vec![Op::Abort(idle)]);
}

#[test]
fn shutdown_aborts_every_open_stream() {
    let mut a = node("a", 1);
    let (id, _) = start_join(&mut a);
    a.shutdown();
    assert_eq!(drain(&mut a), vec![Op::Abort(id)]);
}

#[test]
fn a_stream_the_peer_fails_is_aborted_and_its_join_reports_it() {
    let mut a = node("a", 1);
    let (id, _) = start_join(&mut a);
    a.handle_stream(Instant::ZERO, id, StreamEvent::Failed);
    let mut buf = Vec::new();
    let mut saw = (false, false);
    loop {
        match a.poll_output(&mut buf) {
            Output::AbortStream { id: x } if x == id => saw.0 = true,
            Output::Event(Event::JoinCompleted { joined: 0, .. }) => saw.1 = true,
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    assert_eq!(saw, (true, true));
}

#[test]
fn a_join_stream_names_no_peer_and_lasts_the_stream_timeout() {
    let mut a = node("a", 1);
    a.join(Instant::ZERO, &[addr(2)]).unwrap();
    let mut buf = Vec::new();
    let open = loop {
        match a.poll_output(&mut buf) {
            Output::OpenStream { peer, deadline, .. } => break (peer, deadline),
            Output::Timeout(_) => panic!("no stream"),
            _ => {}
        }
    };
    assert_eq!(open, (None, Instant::ZERO + Config::lan().stream_timeout));
}

#[test]
fn a_fallback_ping_stream_names_its_target_and_lasts_the_probe_window() {
    let (mut a, mut b) = (node("a", 1), node("b", 2));
    let (id, frame) = start_join(&mut a);
    let theirs = b.accept_stream(Instant::ZERO, addr(1)).unwrap();
    b.handle_stream(Instant::ZERO, theirs, StreamEvent::Frame(&frame));
    let Some(Op::Frame(_, answer)) = drain(&mut b).into_iter().next() else {
        panic!("no answer")
    };
    a.handle_stream(Instant::ZERO, id, StreamEvent::Frame(&answer));
    drain(&mut a);
    // b goes silent: a probes it, gets no ack, and tries a stream within the window.
    let mut buf = Vec::new();
    let mut now = Instant::ZERO;
    let open = 'outer: loop {
        a.handle_timeout(now);
        loop {
            match a.poll_output(&mut buf) {
                Output::OpenStream { peer, deadline, .. } => break 'outer (now, peer, deadline),
                Output::Timeout(at) => {
                    assert!(at < Instant::from_secs(10), "no fallback ping");
                    now = at;
                    break;
                }
                _ => {}
            }
        }
    };
    let (at, peer, deadline) = open;
    assert_eq!(peer.as_deref(), Some("b"));
    let config = Config::lan();
    assert!(
        deadline > at && deadline - at < config.probe_interval,
        "{at:?} {deadline:?}"
    );
    assert!(deadline - at < config.stream_timeout);
}

/// A large user message on its send-only stream: the stream's id, after its close.
fn send_large_message(a: &mut Memberlist) -> StreamId {
    a.send_user_message(Instant::ZERO, addr(2), &[7u8; 4000])
        .unwrap();
    match drain(a).last() {
        Some(Op::Close(id)) => *id,
        other => panic!("{other:?}"),
    }
}

/// (stream_sends_failed, streams_failed, streams_unknown)
fn lost(m: &Memberlist) -> (u64, u64, u64) {
    let x = m.metrics();
    (x.stream_sends_failed, x.streams_failed, x.streams_unknown)
}

#[test]
fn a_send_only_stream_that_fails_after_its_close_counts_a_lost_message() {
    let mut a = node("a", 1);
    let id = send_large_message(&mut a);
    a.handle_stream(Instant::ZERO, id, StreamEvent::Failed);
    assert_eq!(lost(&a), (1, 1, 0));
    assert!(
        drain(&mut a).is_empty(),
        "closed already: nothing more to do"
    );
}

#[test]
fn a_send_only_stream_the_peer_closes_delivered_its_message() {
    let mut a = node("a", 1);
    let id = send_large_message(&mut a);
    a.handle_stream(Instant::ZERO, id, StreamEvent::Closed);
    a.handle_timeout(Instant::ZERO + Config::lan().stream_timeout);
    assert_eq!(lost(&a), (0, 0, 0));
}

#[test]
fn a_send_only_stream_unconfirmed_by_its_deadline_counts_a_lost_message() {
    let mut a = node("a", 1);
    send_large_message(&mut a);
    a.handle_timeout(Instant::ZERO + Config::lan().stream_timeout);
    assert_eq!(lost(&a), (1, 1, 0));
}

#[test]
fn events_after_a_close_are_ignored_and_only_never_issued_ids_are_unknown() {
    let (mut a, mut b) = (node("a", 1), node("b", 2));
    let (_, frame) = start_join(&mut a);
    let theirs = b.accept_stream(Instant::ZERO, addr(1)).unwrap();
    b.handle_stream(Instant::ZERO, theirs, StreamEvent::Frame(&frame));
    let ops = drain(&mut b);
    // One frame each way: the request came in, one answer goes out, then the close.
    assert_eq!(ops.iter().filter(|o| matches!(o, Op::Frame(..))).count(), 1);
    assert_eq!(ops.last(), Some(&Op::Close(theirs)));
    // The driver reports what it saw after the close: harmless, not counted.
    b.handle_stream(Instant::ZERO, theirs, StreamEvent::Frame(&frame));
    b.handle_stream(Instant::ZERO, theirs, StreamEvent::Closed);
    b.handle_stream(Instant::ZERO, theirs, StreamEvent::Failed);
    assert!(drain(&mut b).is_empty());
    assert_eq!(lost(&b), (0, 0, 0));
    // An id the core never issued is a driver bug: counted.
    b.handle_stream(Instant::ZERO, StreamId(1 << 40), StreamEvent::Closed);
    assert_eq!(lost(&b), (0, 0, 1));
}
