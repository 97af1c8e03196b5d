//! How long until every view holds a graceful leave as left, in a small cluster that
//! also holds a crashed member (the agent benchmark's order: kill one, then leave one).
//!
//! Found measuring the agent (issue 9): one leave in three runs took 23.5 s to show at
//! 8 nodes. Here, before the fixes (`serf-proto/tests/leave_seen.rs` tells them), 57 of
//! 400 seeds had a view report the leaver failed, and the slowest took 37.8 s (173
//! within 0.5 s); after, none does, 388 are within 0.5 s (eager gossip) and the slowest
//! takes 3.0 s.
//!
//! `cargo test --release -p sim --test leave_tail -- --ignored --nocapture` (2 s).

use serf_proto::Instant;
use sim::node::MemberState;
use sim::{Scenario, SerfNode, SimNode, Simulation};
use std::collections::BTreeMap;

const SCENARIO: &str = r#"
    name = "leave-after-crash"
    layer = "serf"
    nodes = 8
    duration = "120s"
    [[actions]]
    at = "20s"
    kind = "crash"
    nodes = [7]
    [[actions]]
    at = "40s"
    kind = "leave"
    nodes = [6]
"#;

/// Steps seed `seed` 10 ms at a time from the leave; returns how long until every live
/// view (nodes 0 to 5) held node 6 left, and whether any view held it failed meanwhile.
fn leave_seen(seed: u64) -> (u64, bool) {
    let s = Scenario::from_toml(SCENARIO).unwrap();
    let mut sim = Simulation::<SerfNode>::new(&s, seed).unwrap();
    sim.run_until(Instant::from_secs(40), &mut |_| {});
    let mut t = 40_000u64;
    let mut failed = false;
    loop {
        t += 10;
        sim.run_until(Instant::from_millis(t), &mut |_| {});
        let states: Vec<_> = (0..6)
            .map(|i| sim.node(i).unwrap().member("node-6").map(|m| m.state))
            .collect();
        failed |= states.contains(&Some(MemberState::Dead));
        if states.iter().all(|s| *s == Some(MemberState::Left)) || t >= 110_000 {
            return (t - 40_000, failed);
        }
    }
}

#[test]
#[ignore = "a sweep of 400 seeds; run in release"]
fn a_leave_after_a_crash_is_seen_by_every_view_within_a_few_seconds() {
    let mut hist = BTreeMap::<u64, u32>::new();
    let mut worst = (0, 0);
    let mut failed = Vec::new();
    for seed in 0..400 {
        let (ms, f) = leave_seen(seed);
        *hist.entry(ms / 500 * 500).or_default() += 1;
        worst = worst.max((ms, seed));
        if f {
            failed.push(seed);
        }
    }
    println!("every view holds the leaver left after (ms, lower bound of 500 ms bins): {hist:?}");
    println!("slowest: {} ms (seed {})", worst.0, worst.1);
    assert!(
        failed.is_empty(),
        "a view held the leaver failed: seeds {failed:?}"
    );
    assert!(worst.0 <= 4_000, "seed {} took {} ms", worst.1, worst.0);
}
