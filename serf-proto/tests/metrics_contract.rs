//! What a driver reads from the core beside outputs: every counter by name with its help
//! text, counted once and in the right place; and the answers to commands repeated.

use serf_proto::memberlist::{Candidate, Config as MlConfig, Delegate, Memberlist};
use serf_proto::serf::{Config, Event, QueryParams, SerfError, SerfMetrics};
use serf_proto::{Instant, Metrics, Output, Serf, StreamEvent};
use std::collections::BTreeSet;
use std::net::SocketAddr;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 8, 0, i], 7946))
}

/// The fields `Debug` prints: every field of the struct.
fn debug_fields(debug: &str) -> usize {
    debug.matches(": ").count()
}

fn check_listing(listed: Vec<(&'static str, &'static str, u64)>, debug: &str) {
    assert_eq!(listed.len(), debug_fields(debug), "every field is listed");
    let names: BTreeSet<&str> = listed.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(names.len(), listed.len(), "names are unique");
    for (name, help, _) in &listed {
        assert!(debug.contains(&format!("{name}: ")), "{name} is a field");
        assert!(
            !help.is_empty() && !help.starts_with(' ') && help.ends_with('.'),
            "{name}: {help:?}"
        );
    }
}

#[test]
fn every_counter_is_listed_by_name_with_its_help_text() {
    let m = Metrics {
        probes: 3,
        ..Metrics::default()
    };
    check_listing(m.iter().collect(), &format!("{m:?}"));
    let (_, help, value) = m.iter().find(|(n, _, _)| *n == "probes").unwrap();
    assert_eq!((help, value), ("Probes started.", 3));

    let s = SerfMetrics {
        events_time_full: 2,
        ..SerfMetrics::default()
    };
    check_listing(s.iter().collect(), &format!("{s:?}"));
    assert!(s.iter().any(|(n, _, v)| n == "events_time_full" && v == 2));
}

#[derive(Debug)]
struct RefuseMerges;

impl Delegate for RefuseMerges {
    fn notify_merge(&mut self, _: &[Candidate<'_>]) -> Result<(), String> {
        Err("not this cluster".into())
    }
}

#[test]
fn a_join_refused_by_the_merge_hook_is_counted_once() {
    let now = Instant::ZERO;
    let mut a = Memberlist::new(MlConfig::lan(), "a", addr(1), b"", 1, now).unwrap();
    let mut b = Memberlist::with_delegate(MlConfig::lan(), "b", addr(2), b"", 2, now, RefuseMerges)
        .unwrap();
    a.join(now, &[addr(2)]).unwrap();
    let mut buf = Vec::new();
    let mut frame = None;
    while !matches!(a.poll_output(&mut buf), Output::Timeout(_)) {
        if !buf.is_empty() {
            frame = Some(buf.clone());
        }
    }
    let id = b.accept_stream(now, addr(1)).unwrap();
    b.handle_stream(now, id, StreamEvent::Frame(&frame.unwrap()));
    assert_eq!(b.metrics().merges_refused, 1);
}

/// Drains `node`; the events it reports.
fn events(node: &mut Serf) -> Vec<Event> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        match node.poll_output(&mut buf) {
            Output::Event(e) => out.push(e),
            Output::Timeout(_) => return out,
            _ => {}
        }
    }
}

#[test]
fn answering_a_query_twice_is_refused_as_already_answered() {
    let now = Instant::ZERO;
    let mut node = Serf::new(Config::default(), "a", addr(1), 1, now).unwrap();
    node.query(now, "ping", b"", &QueryParams::default())
        .unwrap();
    let handle = events(&mut node)
        .into_iter()
        .find_map(|e| match e {
            Event::Query(q) => Some(q.handle),
            _ => None,
        })
        .expect("a node receives its own query");
    node.respond(now, handle, b"pong").unwrap();
    assert_eq!(
        node.respond(now, handle, b"again"),
        Err(SerfError::AlreadyResponded)
    );
}

fn leaves_completed(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::LeaveCompleted))
        .count()
}

#[test]
fn every_leave_is_answered_by_a_leave_completed() {
    let mut now = Instant::ZERO;
    let mut node = Serf::new(Config::default(), "a", addr(1), 1, now).unwrap();
    // A join in flight makes the leave wait for its intent to spread.
    node.join(now, &[addr(2)], false).unwrap();
    node.leave(now).unwrap();
    let mut seen = events(&mut node);
    node.leave(now)
        .expect("a second leave while leaving waits for the same end");
    while leaves_completed(&seen) == 0 {
        assert!(now < Instant::from_secs(120), "the leave never completed");
        now = node.next_deadline();
        node.handle_timeout(now);
        seen.extend(events(&mut node));
    }
    assert_eq!(leaves_completed(&seen), 1, "one leave, one completion");
    node.leave(now).expect("leaving when left is not an error");
    assert_eq!(leaves_completed(&events(&mut node)), 1, "reported again");
}
