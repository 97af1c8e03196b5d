//! The memberlist layer in a virtual-time cluster: real cores, real encoded bytes.

mod harness;

use harness::MlCluster as Cluster;
use serf_proto::memberlist::suspicion::suspicion_timeout;
use serf_proto::memberlist::{Config, Event, NodeState};
use serf_proto::{Instant, Keyring, SecretKey};
use std::time::Duration;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// `n` LAN nodes, all joined through node 0, converged.
fn converged(n: usize, seed: u64, config: &Config) -> Cluster {
    let mut c = Cluster::new(seed);
    for i in 0..n {
        c.add(&format!("node-{i}"), config.clone());
    }
    for i in 1..n {
        c.join(i, 0);
    }
    c.run_until_cond(secs(30), |c| {
        c.live().iter().all(|&i| c.hosts[i].node.num_alive() == n)
    });
    c
}

#[test]
fn five_nodes_join_through_one_seed_and_all_see_five_alive() {
    let c = converged(5, 1, &Config::lan());
    for h in &c.hosts {
        assert_eq!(
            h.node.num_alive(),
            5,
            "{} sees {}",
            h.name,
            h.node.num_alive()
        );
        let joined = h
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::NodeJoined(_)))
            .count();
        assert_eq!(
            joined, 5,
            "{} reported {joined} joins (itself included)",
            h.name
        );
    }
    // The seed's join reported success.
    let joins: Vec<_> = c.hosts[1]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::JoinCompleted { joined, failed, .. } => Some((*joined, failed.len())),
            _ => None,
        })
        .collect();
    assert_eq!(joins, vec![(1, 0)]);
}

#[test]
fn crashed_node_is_suspected_then_declared_dead_by_every_node_within_the_formula_bound() {
    let config = Config::lan();
    let n = 5;
    let mut c = converged(n, 7, &config);
    c.run_for(secs(5));
    let crashed = 4;
    let t0 = c.now;
    c.crash(crashed);

    // Bound from the formulas: someone probes the crashed node within a round of n - 1
    // probe intervals, the probe fails after one more interval, the suspicion lasts at most
    // its maximum, and the dead message then needs a few gossip rounds.
    let min = suspicion_timeout(config.suspicion_mult, n, config.probe_interval);
    let max = min * config.suspicion_max_timeout_mult;
    let detect = config.probe_interval * (n as u32);
    let bound = detect + max + config.gossip_interval * 10;

    let mut first_suspect = None;
    let took = c.run_until_cond(bound, |c| {
        c.live()
            .iter()
            .all(|&i| c.state_of(i, "node-4") == Some(NodeState::Dead))
    });
    // When did each node report the failure?
    for &i in &c.live() {
        let at = c.hosts[i]
            .events
            .iter()
            .find_map(|(t, e)| match e {
                Event::NodeLeft(node) if node.name().as_str() == "node-4" => Some(*t),
                _ => None,
            })
            .expect("failure reported");
        assert!(at - t0 <= bound);
    }
    let suspicions: u64 = c.hosts.iter().map(|h| h.node.metrics().suspicions).sum();
    assert!(suspicions >= 1);
    for h in &c.hosts[..crashed] {
        if h.node.metrics().deaths_declared > 0 {
            first_suspect.get_or_insert(h.name.clone());
        }
    }
    assert!(first_suspect.is_some(), "someone declared the death");
    println!(
        "all {} live nodes saw node-4 dead after {:.1}s (bound {:.1}s: detect {:?} + suspicion max {:?})",
        n - 1,
        took.as_secs_f64(),
        bound.as_secs_f64(),
        detect,
        max
    );
    // With k = 2 confirmations available the timeout shrinks to its minimum, so detection
    // is far below the bound.
    assert!(took < detect + min * 2 + secs(2), "took {took:?}");
}

#[test]
fn suspected_live_node_refutes_with_a_higher_incarnation() {
    let mut c = converged(5, 11, &Config::lan());
    c.run_for(secs(3));
    let x = 2;
    let others: Vec<usize> = (0..5).filter(|&i| i != x).collect();
    // Cut node-2 off until someone suspects it, then heal before the suspicion ends.
    c.partition(&[x], &others);
    c.run_until_cond(secs(10), |c| {
        others
            .iter()
            .any(|&i| c.state_of(i, "node-2") == Some(NodeState::Suspect))
    });
    c.heal();
    c.run_until_cond(secs(10), |c| {
        c.all_see("node-2", NodeState::Alive)
            && others
                .iter()
                .all(|&i| c.hosts[i].node.member("node-2").unwrap().incarnation() > 1)
    });
    assert!(c.hosts[x].node.metrics().refutes >= 1);
    for &i in &others {
        let died = c.hosts[i]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::NodeLeft(n) if n.name().as_str() == "node-2"));
        assert!(!died, "node {i} declared the refuting node dead");
    }
}

#[test]
fn node_that_leaves_is_seen_as_left_by_all() {
    let mut c = converged(5, 3, &Config::lan());
    c.leave(3);
    c.run_until_cond(secs(5), |c| c.all_see("node-3", NodeState::Left));
    c.run_for(secs(2));
    let completed = c.hosts[3]
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::LeaveCompleted { timed_out: false }));
    assert!(completed, "the leave broadcast went out before its timeout");
    // Leaving is not failing: nobody suspected it.
    let suspicions: u64 = c.hosts.iter().map(|h| h.node.metrics().suspicions).sum();
    assert_eq!(suspicions, 0);
}

#[test]
fn node_that_left_can_join_again_without_a_new_instance() {
    let mut c = converged(4, 5, &Config::lan());
    c.leave(2);
    c.run_until_cond(secs(5), |c| c.all_see("node-2", NodeState::Left));
    let left_at = c.hosts[0].node.member("node-2").unwrap().incarnation();
    c.join(2, 0);
    c.run_until_cond(secs(5), |c| c.all_see("node-2", NodeState::Alive));
    assert!(c.hosts[0].node.member("node-2").unwrap().incarnation() > left_at);
    assert!(!c.hosts[2].node.has_left());
    assert_eq!(c.hosts[2].node.num_alive(), 4);
}

#[test]
fn restarted_node_held_dead_is_told_and_refutes() {
    // memberlist #311: a node restarts with a fresh incarnation while peers still hold it
    // dead at a higher one. It joins through a node that never knew it, so push-pull does
    // not tell it; peers must tell it directly when they see its stale alive messages.
    let config = Config::lan();
    let mut c = converged(6, 21, &config);
    let x = 5;
    let now = c.now;
    for _ in 0..3 {
        c.hosts[x].node.set_meta(now, b"v").unwrap();
    }
    c.drain(x);
    c.run_until_cond(secs(5), |c| {
        (0..5).all(|i| c.hosts[i].node.member("node-5").unwrap().incarnation() == 4)
    });
    c.crash(x);
    c.run_until_cond(secs(40), |c| c.all_see("node-5", NodeState::Dead));

    // A new node joins; it learns of node-5 only as dead, which it ignores.
    let s = c.add("newcomer", config.clone());
    c.join(s, 0);
    c.run_until_cond(secs(5), |c| c.hosts[s].node.num_alive() == 6);
    assert!(c.hosts[s].node.member("node-5").is_none());

    // node-5 restarts from scratch (incarnation 1) and joins through the newcomer.
    c.restart(x, config.clone());
    c.join(x, s);
    let took = c.run_until_cond(secs(10), |c| c.all_see("node-5", NodeState::Alive));
    let accusations: u64 = c
        .hosts
        .iter()
        .map(|h| h.node.metrics().accusations_sent)
        .sum();
    assert!(accusations >= 1, "peers told the restarted node");
    assert!(c.hosts[x].node.local_node().incarnation() > 4);
    // Far sooner than the periodic push-pull (30 s) would have fixed it.
    assert!(took < secs(10), "took {took:?}");
    println!(
        "restarted node alive everywhere after {:.2}s",
        took.as_secs_f64()
    );
}

fn with_key(key: u8, label: &str) -> Config {
    Config {
        keyring: Some(Keyring::new(SecretKey([key; 32]))),
        label: label.to_string(),
        ..Config::lan()
    }
}

#[test]
fn packets_from_another_label_or_key_are_dropped_and_counted() {
    let mut c = Cluster::new(9);
    let a = c.add("a", with_key(1, "prod"));
    let b = c.add("b", with_key(1, "prod"));
    let other_label = c.add("intruder-label", with_key(1, "staging"));
    let other_key = c.add("intruder-key", with_key(2, "prod"));
    let plaintext = c.add(
        "intruder-plain",
        Config {
            label: "prod".into(),
            ..Config::lan()
        },
    );
    c.join(b, a);
    c.join(other_label, a);
    c.join(other_key, a);
    c.join(plaintext, a);
    c.run_for(secs(10));

    assert_eq!(c.hosts[a].node.num_alive(), 2);
    assert_eq!(c.hosts[b].node.num_alive(), 2);
    let m = c.hosts[a].node.metrics();
    assert!(m.dropped_label >= 1, "label mismatch counted: {m:?}");
    assert!(
        m.dropped_crypto >= 2,
        "wrong key and plaintext counted: {m:?}"
    );
    for i in [other_label, other_key, plaintext] {
        assert_eq!(c.hosts[i].node.num_alive(), 1, "{} got in", c.hosts[i].name);
        let failed = c.hosts[i]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::JoinCompleted { joined: 0, .. }));
        assert!(failed, "{}'s join failed", c.hosts[i].name);
    }
}

#[test]
fn key_rotation_keeps_the_cluster_together() {
    let mut c = Cluster::new(4);
    for i in 0..4 {
        c.add(&format!("n{i}"), with_key(1, ""));
    }
    for i in 1..4 {
        c.join(i, 0);
    }
    c.run_until_cond(secs(10), |c| {
        c.hosts.iter().all(|h| h.node.num_alive() == 4)
    });
    // Install the new key everywhere, then use it everywhere, then remove the old one.
    let new = SecretKey([2; 32]);
    for h in &mut c.hosts {
        let mut ring = h.node.keyring().unwrap().clone();
        ring.install(new.clone()).unwrap();
        h.node.set_keyring(Some(ring));
    }
    c.run_for(secs(2));
    for i in 0..4 {
        let mut ring = c.hosts[i].node.keyring().unwrap().clone();
        ring.use_key(&new).unwrap();
        c.hosts[i].node.set_keyring(Some(ring));
        c.run_for(secs(1));
    }
    for h in &mut c.hosts {
        let mut ring = h.node.keyring().unwrap().clone();
        ring.remove(&SecretKey([1; 32])).unwrap();
        h.node.set_keyring(Some(ring));
    }
    c.run_for(secs(30));
    for h in &c.hosts {
        assert_eq!(h.node.num_alive(), 4);
        assert_eq!(h.node.metrics().dropped_crypto, 0, "{}", h.name);
        assert_eq!(h.node.metrics().suspicions, 0);
    }
}

#[test]
fn same_seed_gives_the_same_run() {
    fn run(seed: u64) -> Vec<(Instant, String)> {
        let mut c = converged(6, seed, &Config::lan());
        c.loss = 0.05;
        c.crash(3);
        c.run_for(secs(30));
        c.hosts
            .iter()
            .flat_map(|h| {
                h.events
                    .iter()
                    .map(move |(t, e)| (*t, format!("{}:{e:?}", h.name)))
            })
            .collect()
    }
    let a = run(42);
    assert_eq!(a, run(42));
    assert_ne!(a, run(43));
}

#[test]
fn cluster_survives_ten_percent_loss_without_false_deaths() {
    let mut c = converged(8, 13, &Config::lan());
    c.loss = 0.10;
    c.run_for(secs(120));
    for h in &c.hosts {
        assert_eq!(h.node.num_alive(), 8, "{} lost members under loss", h.name);
        let deaths = h
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::NodeLeft(_)))
            .count();
        assert_eq!(deaths, 0, "{} saw a false death", h.name);
    }
}

#[test]
fn indirect_probes_through_peers_save_a_node_behind_a_broken_link() {
    let mut c = converged(5, 17, &Config::lan());
    // node-0 and node-1 cannot talk at all; everyone else can reach both.
    c.cut_pair(0, 1);
    c.run_for(secs(60));
    assert_eq!(c.state_of(0, "node-1"), Some(NodeState::Alive));
    assert_eq!(c.state_of(1, "node-0"), Some(NodeState::Alive));
    let m0 = c.hosts[0].node.metrics();
    assert!(m0.indirect_probes_sent > 0, "{m0:?}");
    let relayed: u64 = c.hosts[2..]
        .iter()
        .map(|h| h.node.metrics().indirect_probes_relayed)
        .sum();
    assert!(relayed > 0);
    for h in &c.hosts {
        assert_eq!(h.node.num_alive(), 5, "{}", h.name);
    }
}

#[test]
fn stream_ping_saves_a_node_whose_datagrams_are_blocked() {
    // Two nodes only, so there is no one to probe indirectly: only the stream fallback can
    // reach the peer.
    let mut c = converged(2, 19, &Config::lan());
    c.udp_cut.insert((0, 1));
    c.udp_cut.insert((1, 0));
    c.run_for(secs(60));
    assert_eq!(c.state_of(0, "node-1"), Some(NodeState::Alive));
    assert!(c.hosts[0].node.metrics().probes_stream_only > 0);
    assert_eq!(c.hosts[0].node.metrics().suspicions, 0);
}

#[test]
fn isolated_node_raises_its_health_score_and_stretches_its_probes() {
    let mut c = converged(6, 23, &Config::lan());
    let x = 0;
    let others: Vec<usize> = (1..6).collect();
    c.partition(&[x], &others);
    c.run_for(secs(8));
    // Its probes fail and its indirect probes get no nacks back: it blames itself.
    assert!(
        c.hosts[x].node.health_score() >= 2,
        "score {}",
        c.hosts[x].node.health_score()
    );
    for &i in &others {
        assert_eq!(c.hosts[i].node.health_score(), 0);
    }
    c.heal();
    c.run_for(secs(60));
    assert_eq!(c.hosts[x].node.health_score(), 0, "health recovers");
}

#[test]
fn dead_members_are_gossiped_to_then_forgotten() {
    let config = Config::lan();
    let mut c = converged(5, 29, &config);
    c.crash(4);
    c.run_until_cond(secs(40), |c| c.all_see("node-4", NodeState::Dead));
    assert!(c.hosts[0].node.member("node-4").is_some());
    // Forgotten after gossip_to_the_dead_time, at the end of the next probe pass.
    c.run_for(config.gossip_to_the_dead_time + secs(10));
    for i in 0..4 {
        assert!(
            c.hosts[i].node.member("node-4").is_none(),
            "node {i} still holds it"
        );
        assert_eq!(c.hosts[i].node.num_members(), 4);
    }
}

#[test]
fn metadata_update_reaches_every_member() {
    let mut c = converged(5, 31, &Config::lan());
    let now = c.now;
    c.hosts[2].node.set_meta(now, b"role=db").unwrap();
    c.drain(2);
    c.run_until_cond(secs(5), |c| {
        (0..5).all(|i| c.hosts[i].node.member("node-2").unwrap().meta() == b"role=db")
    });
    for i in [0, 1, 3, 4] {
        let updated = c.hosts[i]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::NodeUpdated(n) if n.name().as_str() == "node-2"));
        assert!(updated, "node {i} reported the update");
    }
    // Too large metadata is refused with a clear error.
    let err = c.hosts[2].node.set_meta(now, &[0; 513]).unwrap_err();
    assert!(err.to_string().contains("max_meta_size"), "{err}");
}

#[test]
fn a_second_node_with_a_taken_name_is_reported_as_a_conflict() {
    let mut c = converged(3, 37, &Config::lan());
    let dup = c.add("node-1", Config::lan());
    c.join(dup, 0);
    c.run_for(secs(5));
    let conflicts = c.hosts[0]
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::NameConflict { .. }));
    assert!(conflicts);
    // The original keeps its address in everyone's view.
    assert_eq!(
        c.hosts[0].node.member("node-1").unwrap().addr(),
        harness::addr_of(1)
    );
}

#[test]
fn ten_node_partition_suspects_and_declares_the_other_side_dead() {
    let mut c = converged(10, 41, &Config::lan());
    let a: Vec<usize> = (0..5).collect();
    let b: Vec<usize> = (5..10).collect();
    c.partition(&a, &b);
    c.run_for(secs(60));
    for &i in &a {
        assert_eq!(c.hosts[i].node.num_alive(), 5, "side a node {i}");
    }
    for &i in &b {
        assert_eq!(c.hosts[i].node.num_alive(), 5, "side b node {i}");
    }
}

#[test]
fn without_lifeguard_health_is_pinned_and_suspicion_is_fixed_at_the_minimum() {
    let config = Config {
        lifeguard: false,
        ..Config::lan()
    };
    let mut c = converged(6, 43, &config);
    let others: Vec<usize> = (1..6).collect();
    c.partition(&[0], &others);
    c.run_for(secs(8));
    assert_eq!(c.hosts[0].node.health_score(), 0);
    // The isolated node's view of a peer: suspected, then dead exactly `min` later.
    c.run_until_cond(secs(30), |c| {
        c.state_of(1, "node-0") == Some(NodeState::Dead)
    });
    let min = suspicion_timeout(config.suspicion_mult, 6, config.probe_interval);
    let nacks: u64 = c
        .hosts
        .iter()
        .map(|h| h.node.metrics().nacks_received)
        .sum();
    assert_eq!(nacks, 0, "no nacks without Lifeguard");
    let degraded: u64 = c
        .hosts
        .iter()
        .map(|h| h.node.metrics().suspicions_degraded)
        .sum();
    assert_eq!(
        degraded, 0,
        "no confirmations are expected, so none is missing"
    );
    assert!(min > Duration::ZERO);
}
