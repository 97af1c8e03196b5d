//! Time from a driver is not to be trusted either: an instant at the far end of the
//! range (a host clock gone wrong, a bad conversion) neither panics nor hangs the core.

use serf_proto::serf::Config;
use serf_proto::{Instant, Output, Serf};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

fn drain(s: &mut Serf) -> Instant {
    let mut buf = Vec::new();
    for _ in 0..100_000 {
        if let Output::Timeout(t) = s.poll_output(&mut buf) {
            return t;
        }
    }
    panic!("poll_output never reached its deadline");
}

/// Runs `f` on another thread and fails if it does not finish within 20 s.
fn finishes(what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{what}: the core did not return"));
}

fn node(peer: bool) -> Serf {
    let addr = SocketAddr::from(([127, 0, 0, 1], 7946));
    let mut s = Serf::new(Config::default(), "a", addr, 1, Instant::ZERO).unwrap();
    if peer {
        let seed = SocketAddr::from(([127, 0, 0, 1], 7947));
        s.join(Instant::ZERO, &[seed], false).unwrap();
    }
    drain(&mut s);
    s
}

#[test]
fn instants_at_the_end_of_time_neither_panic_nor_hang() {
    for at in [
        Instant::from_nanos(1 << 62),
        Instant::from_nanos(u64::MAX - 1),
        Instant::MAX,
    ] {
        for peer in [false, true] {
            finishes(&format!("handle_timeout({at:?})"), move || {
                let mut s = node(peer);
                s.handle_timeout(at);
                let next = drain(&mut s);
                // And again, with whatever deadline it asked for.
                s.handle_timeout(next);
                drain(&mut s);
                s.user_event(at, "e", b"x", false).unwrap();
                drain(&mut s);
                s.handle_timeout(Instant::MAX);
                drain(&mut s);
            });
        }
    }
}
