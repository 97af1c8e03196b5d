//! Snapshot records are kept apart from application events: they come out of
//! `Serf::poll_persist`, never `poll_output`, so a driver that sheds events under load
//! cannot lose them.

use serf_proto::serf::{Config, Event, Record};
use serf_proto::{Instant, Output, Serf};
use std::net::SocketAddr;

fn node(snapshot: bool) -> Serf {
    let addr = SocketAddr::from(([10, 6, 0, 1], 7946));
    let config = Config {
        snapshot,
        ..Config::default()
    };
    Serf::new(config, "a", addr, 1, Instant::ZERO).unwrap()
}

/// Drains the outputs; the user events among them.
fn drain(node: &mut Serf) -> usize {
    let mut buf = Vec::new();
    let mut users = 0;
    loop {
        match node.poll_output(&mut buf) {
            Output::Event(Event::User(_)) => users += 1,
            Output::Timeout(_) => return users,
            _ => {}
        }
    }
}

fn records(node: &mut Serf) -> Vec<Record> {
    std::iter::from_fn(|| node.poll_persist()).collect()
}

#[test]
fn snapshot_records_come_from_their_own_drain_in_order() {
    let mut a = node(true);
    drain(&mut a);
    let first = records(&mut a);
    assert!(
        first
            .iter()
            .any(|r| matches!(r, Record::Alive { name, .. } if name.as_str() == "a")),
        "{first:?}"
    );
    a.user_event(Instant::ZERO, "deploy", b"v1", false).unwrap();
    a.user_event(Instant::ZERO, "deploy", b"v2", false).unwrap();
    assert_eq!(drain(&mut a), 2, "the events still reach the application");
    let clocks: Vec<Record> = records(&mut a)
        .into_iter()
        .filter(|r| matches!(r, Record::EventClock(_)))
        .collect();
    assert_eq!(clocks.len(), 2);
    assert!(matches!(clocks[..], [Record::EventClock(x), Record::EventClock(y)] if x < y));
    assert!(a.poll_persist().is_none(), "drained");
}

#[test]
fn without_a_snapshot_no_records_are_kept() {
    let mut a = node(false);
    a.user_event(Instant::ZERO, "deploy", b"v1", false).unwrap();
    drain(&mut a);
    assert!(records(&mut a).is_empty());
}
