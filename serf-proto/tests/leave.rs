//! A graceful leave always ends: whatever the node's periodic tasks (reconnecting to failed
//! members, retrying permanent seeds, rejoining from a snapshot) or its peers do meanwhile,
//! `leave` reports `LeaveCompleted` and every live view ends with the node left.
//!
//! The bug these tell the story of: the reconnect tick, firing while a leave was under way,
//! reached the memberlist's `join` directly, past the leaving check of the public `join`;
//! a memberlist join after a leave is a rejoin, which dropped the pending leave, so the
//! leave never completed and the node stayed a member everywhere.

mod harness;

use harness::SerfCluster;
use serf_proto::Serf;
use serf_proto::serf::{Config, Event, MemberStatus, SerfState, SnapshotState};
use std::time::Duration;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Reconnect attempts every 100 ms instead of every 30 s: a leave then always overlaps
/// several of them.
fn eager_reconnect() -> Config {
    Config {
        reconnect_interval: Duration::from_millis(100),
        ..Config::default()
    }
}

fn converged(n: usize, seed: u64, config: &Config) -> SerfCluster {
    SerfCluster::converged(n, seed, config)
}

fn leave_completed(c: &SerfCluster, i: usize) -> bool {
    c.hosts[i]
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::LeaveCompleted))
}

/// The longest a leave may take: the intent's broadcast timeout, the memberlist's leave
/// timeout, the propagate delay, and some slack for the simulated network.
fn leave_bound(config: &Config) -> Duration {
    config.broadcast_timeout + config.leave_propagate_delay + secs(5)
}

#[test]
fn leave_completes_while_failed_members_are_being_reconnected() {
    let config = eager_reconnect();
    for seed in 1..=8 {
        let mut c = converged(8, seed, &config);
        for i in [5, 6, 7] {
            c.crash(i);
        }
        c.run_until_cond(secs(60), |c| {
            [5, 6, 7]
                .iter()
                .all(|&i| c.all_see(&format!("node-{i}"), MemberStatus::Failed))
        });
        let before = c.hosts[1].node.serf_metrics().reconnects;
        c.with(1, |s, now| s.leave(now).unwrap());
        c.with(2, |s, now| s.leave(now).unwrap());
        c.run_until_cond(leave_bound(&config), |c| {
            leave_completed(c, 1) && leave_completed(c, 2)
        });
        for i in [1, 2] {
            assert_eq!(c.hosts[i].node.state(), SerfState::Left, "seed {seed}");
        }
        // Every member still in the cluster sees both leavers left (a leaver's own view
        // of the other may stay stale: nobody gossips to a node that left).
        c.run_until_cond(secs(10), |c| {
            [0, 3, 4].iter().all(|&i| {
                c.status_of(i, "node-1") == Some(MemberStatus::Left)
                    && c.status_of(i, "node-2") == Some(MemberStatus::Left)
            })
        });
        // Nothing while leaving or left tries to join: the reconnect tick is idle there.
        c.run_for(secs(5));
        assert_eq!(
            c.hosts[1].node.serf_metrics().reconnects,
            before,
            "seed {seed}: a left node kept reconnecting"
        );
        assert_eq!(c.hosts[1].node.state(), SerfState::Left);
    }
}

#[test]
fn leave_completes_during_a_partition() {
    let config = eager_reconnect();
    for seed in 1..=8 {
        let mut c = converged(8, seed, &config);
        c.partition(&[0, 1, 2, 3], &[4, 5, 6, 7]);
        c.run_until_cond(secs(60), |c| {
            (0..4).all(|i| c.status_of(i, "node-5") == Some(MemberStatus::Failed))
                && (4..8).all(|i| c.status_of(i, "node-1") == Some(MemberStatus::Failed))
        });
        c.with(1, |s, now| s.leave(now).unwrap());
        c.with(6, |s, now| s.leave(now).unwrap());
        c.run_until_cond(leave_bound(&config), |c| {
            leave_completed(c, 1) && leave_completed(c, 6)
        });
        c.heal();
        // After the heal the two sides merge, and the leavers stay left on both. (Not in
        // each other's view: nobody gossips to a node that left, so a leaver may keep
        // the other failed, as it saw it across the partition.)
        c.run_until_cond(secs(60), |c| {
            [0, 2, 3, 4, 5, 7].iter().all(|&i| {
                c.status_of(i, "node-1") == Some(MemberStatus::Left)
                    && c.status_of(i, "node-6") == Some(MemberStatus::Left)
            })
        });
        for i in [1, 6] {
            assert_eq!(c.hosts[i].node.state(), SerfState::Left, "seed {seed}");
        }
    }
}

#[test]
fn leave_completes_while_permanent_seeds_are_down() {
    let mut c = SerfCluster::new(3);
    let seed_addr = harness::addr_of(0);
    let config = Config {
        seeds: vec![seed_addr],
        ..eager_reconnect()
    };
    for i in 0..5 {
        c.add(&format!("node-{i}"), config.clone());
    }
    for i in 1..5 {
        c.join(i, 0);
    }
    c.run_until_cond(secs(60), |c| {
        c.live().iter().all(|&i| c.hosts[i].node.num_alive() == 5)
    });
    c.crash(0);
    c.run_until_cond(secs(60), |c| c.all_see("node-0", MemberStatus::Failed));
    let before = c.hosts[3].node.serf_metrics().seed_joins;
    c.with(3, |s, now| s.leave(now).unwrap());
    c.run_until_cond(leave_bound(&config), |c| leave_completed(c, 3));
    c.run_until_cond(secs(10), |c| c.all_see("node-3", MemberStatus::Left));
    let during = c.hosts[3].node.serf_metrics().seed_joins;
    c.run_for(secs(5));
    assert_eq!(
        c.hosts[3].node.serf_metrics().seed_joins,
        during,
        "a left node retries no seeds"
    );
    assert!(during >= before);
    assert_eq!(c.hosts[3].node.state(), SerfState::Left);
}

#[test]
fn a_snapshot_rejoin_in_flight_neither_blocks_nor_undoes_a_leave() {
    // A node restarts from a snapshot that names members at addresses nobody answers on:
    // its rejoin attempts fail one batch after another while it leaves.
    let mut c = converged(4, 5, &Config::default());
    let mut snapshot = String::new();
    for i in 0..12 {
        snapshot.push_str(&format!("alive: ghost-{i} 10.77.0.{}:7946\n", i + 1));
    }
    let state = SnapshotState::parse(&snapshot, false).unwrap();
    let addr = harness::addr_of(c.hosts.len());
    let node = Serf::with_snapshot(
        Config::default(),
        "restarted",
        addr,
        99,
        c.now,
        Some(&state),
    )
    .unwrap();
    let i = c.add_node("restarted", node);
    c.drain(i);
    c.join(i, 0);
    c.run_until_cond(secs(30), |c| c.all_see("restarted", MemberStatus::Alive));
    c.with(i, |s, now| s.leave(now).unwrap());
    c.run_until_cond(leave_bound(&Config::default()), |c| leave_completed(c, i));
    // The snapshot rejoins that were still failing must not announce a join that
    // outranks the leave.
    c.run_for(secs(60));
    assert!(c.all_see("restarted", MemberStatus::Left));
    assert_eq!(c.hosts[i].node.state(), SerfState::Left);
}

#[test]
fn a_join_in_flight_when_the_leave_starts_does_not_undo_it() {
    let mut c = converged(4, 6, &Config::default());
    let addr = harness::addr_of(c.hosts.len());
    let node = Serf::new(Config::default(), "late", addr, 7, c.now).unwrap();
    let i = c.add_node("late", node);
    // Join and leave at the same instant: the join's push-pull is still in flight.
    let seed = c.hosts[0].addr;
    c.with(i, |s, now| {
        s.join(now, &[seed], false).unwrap();
        s.leave(now).unwrap();
    });
    c.run_until_cond(leave_bound(&Config::default()), |c| leave_completed(c, i));
    c.run_for(secs(30));
    assert_eq!(c.hosts[i].node.state(), SerfState::Left);
    for j in 0..4 {
        assert!(
            matches!(
                c.status_of(j, "late"),
                None | Some(MemberStatus::Left) | Some(MemberStatus::Leaving)
            ),
            "node-{j} sees the leaver as {:?}",
            c.status_of(j, "late")
        );
    }
}
