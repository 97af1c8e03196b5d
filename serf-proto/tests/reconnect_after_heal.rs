//! After a partition heals, Serf's reconnect loop completes every view quickly, whatever
//! the sizes of the sides (issue 11, item 6).
//!
//! The bug this tells the story of: Serf tries a reconnect with probability failed /
//! alive, which assumes every node holds the same members failed. After a heal, gossip
//! brings the other side's alive messages to most views but misses a few (node, member)
//! pairs; a node left with one failed member among 99 alive tried it with p = 1/99 per
//! round, so its view waited for its next push-pull (90 s at 100 nodes; the simulator's
//! `partition-heal-serf-*` scenarios show it). Now a round that follows the recovery of a
//! failed member always tries.

mod harness;

use harness::SerfCluster;
use serf_proto::serf::{Config, MemberStatus};
use std::time::Duration;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn every_view_that_saw_a_failed_member_recover_tries_a_reconnect_in_its_next_round() {
    let config = Config::default();
    for seed in 1..=4 {
        let mut c = SerfCluster::converged(12, seed, &config);
        // node-11 crashes for good: one failed member in every view from now on, tried
        // with p = 1/10 per round by Go's rule.
        c.crash(11);
        // node-10 is cut off until the others failed it and their memberlists forgot it.
        c.partition(&[10], &(0..10).collect::<Vec<_>>());
        c.run_for(secs(300));
        for i in 0..10 {
            assert_eq!(c.status_of(i, "node-10"), Some(MemberStatus::Failed));
            assert_eq!(c.status_of(i, "node-11"), Some(MemberStatus::Failed));
        }
        c.heal();
        // node-10 reconnects (it holds all eleven others failed, so it tries every round;
        // a round that picks node-11 fails) and its news spreads.
        c.run_until_cond(config.reconnect_interval * 4, |c| {
            c.all_see("node-10", MemberStatus::Alive)
        });
        let before: Vec<u64> = (0..10)
            .map(|i| c.hosts[i].node.serf_metrics().reconnects)
            .collect();
        // Within one round, every view that saw node-10 come back tries a reconnect,
        // though it only holds node-11 failed (which cannot answer).
        c.run_for(config.reconnect_interval);
        for (i, b) in before.iter().enumerate() {
            assert!(
                c.hosts[i].node.serf_metrics().reconnects > *b,
                "seed {seed}: node-{i} saw a failed member recover and did not try"
            );
        }
    }
}
