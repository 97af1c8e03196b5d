//! The Serf layer in a virtual-time cluster: real cores, real encoded bytes.

mod harness;

use harness::SerfCluster;
use serf_proto::serf::{
    Config, Event, MemberEventKind, MemberStatus, QueryParams, Record, ShutdownReason,
    SnapshotState, Tags,
};
use serf_proto::{Keyring, SecretKey, Serf};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn converged(n: usize, seed: u64, config: &Config) -> SerfCluster {
    SerfCluster::converged(n, seed, config)
}

fn user_events(c: &SerfCluster, i: usize) -> Vec<(String, Vec<u8>)> {
    c.hosts[i]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::User(u) => Some((u.name.clone(), u.payload.to_vec())),
            _ => None,
        })
        .collect()
}

fn member_events(c: &SerfCluster, i: usize, kind: MemberEventKind) -> Vec<String> {
    c.hosts[i]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Member { kind: k, members } if *k == kind => Some(
                members
                    .iter()
                    .map(|m| m.name.to_string())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

fn fire_events_and_check_exactly_once(n: usize, loss: f64, seed: u64, run_for: Duration) {
    let mut c = converged(n, seed, &Config::default());
    c.loss = loss;
    let fired = 20;
    for k in 0..fired {
        let from = (k * 7) % n;
        c.with(from, |s, now| {
            s.user_event(now, "deploy", format!("v{k}").as_bytes(), false)
                .unwrap()
        });
        c.run_for(Duration::from_millis(300));
    }
    c.run_for(run_for);
    for i in 0..n {
        let got = user_events(&c, i);
        let distinct: BTreeSet<_> = got.iter().collect();
        assert_eq!(distinct.len(), got.len(), "node {i} got a duplicate");
        assert_eq!(
            got.len(),
            fired,
            "node {i} got {} of {fired} events: {got:?}",
            got.len()
        );
    }
}

#[test]
fn user_event_reaches_every_one_of_50_nodes_exactly_once() {
    // Even without loss, gossip misses a given node with p ≈ e^-retransmits (each of the
    // 50 nodes sends an event about 8 times to random peers: about 3e-4 per node and
    // event, so one miss in a few runs of 20 events × 50 nodes). Push-pull, every 60 s at
    // 50 nodes, carries recent events to whoever gossip missed.
    fire_events_and_check_exactly_once(50, 0.0, 1, secs(70));
}

#[test]
fn user_event_reaches_every_one_of_50_nodes_exactly_once_under_10_percent_loss() {
    // Gossip retransmits, and push-pull (every 60 s at 50 nodes) carries the recent
    // events to anyone the gossip missed.
    fire_events_and_check_exactly_once(50, 0.10, 2, secs(150));
}

/// Every node answers queries with its name.
fn answer_with_name(c: &mut SerfCluster) {
    c.hook = Some(Box::new(|_i, node: &mut Serf, now, e: &Event| {
        if let Event::Query(q) = e {
            let name = node.local_name().to_string();
            node.respond(now, q.handle, name.as_bytes()).unwrap();
        }
    }));
}

fn query_results(c: &SerfCluster, i: usize) -> (Vec<String>, Vec<String>, Option<(bool, usize)>) {
    let mut acks = Vec::new();
    let mut responses = Vec::new();
    let mut done = None;
    for (_, e) in &c.hosts[i].events {
        match e {
            Event::QueryAck { from, .. } => acks.push(from.to_string()),
            Event::QueryResponse { from, .. } => responses.push(from.to_string()),
            Event::QueryDone {
                complete,
                responses,
                ..
            } => done = Some((*complete, *responses)),
            _ => {}
        }
    }
    acks.sort();
    responses.sort();
    (acks, responses, done)
}

#[test]
fn default_query_timeout_follows_the_cluster_size() {
    // gossip_interval 200 ms · query_timeout_mult 16 · ⌈log10(n + 1)⌉ (Go's formula).
    let c = converged(5, 1, &Config::default());
    assert_eq!(
        c.hosts[0].node.default_query_timeout(),
        Duration::from_millis(3_200)
    );
    let c = converged(10, 3, &Config::default());
    assert_eq!(
        c.hosts[0].node.default_query_timeout(),
        Duration::from_millis(6_400)
    );
}

#[test]
fn query_filtered_to_three_named_nodes_gets_exactly_their_responses_and_finishes_early() {
    let mut c = converged(10, 3, &Config::default());
    answer_with_name(&mut c);
    let params = QueryParams {
        filter_nodes: vec!["node-1".into(), "node-4".into(), "node-7".into()],
        request_ack: true,
        timeout: Some(secs(30)),
        ..QueryParams::default()
    };
    let sent = c.now;
    c.with(0, |s, now| s.query(now, "whoami", b"", &params).unwrap());
    c.run_until_cond(secs(30), |c| query_results(c, 0).2.is_some());
    let took = c.now - sent;
    let (acks, responses, done) = query_results(&c, 0);
    assert_eq!(responses, vec!["node-1", "node-4", "node-7"]);
    assert_eq!(acks, vec!["node-1", "node-4", "node-7"]);
    assert_eq!(done, Some((true, 3)));
    assert!(
        took < secs(5),
        "finished after {took:?}, far before the 30 s timeout"
    );
    // Only those nodes saw the query.
    for i in 0..10 {
        let saw = c.hosts[i]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Query(_)));
        assert_eq!(saw, [1, 4, 7].contains(&i), "node {i}");
    }
}

/// Found with the tokio driver's registry example: in a 4-node cluster with the local
/// profile the retransmit limit is 2, so gossip alone missed one of two tagged members
/// in about one query of four. A filter names who should answer; those who have not are
/// sent the query directly a third and two thirds into the timeout.
#[test]
fn a_tag_filtered_query_in_a_small_cluster_reaches_every_tagged_member() {
    let mut missed = 0;
    for seed in 1..=40 {
        let mut c = SerfCluster::new(seed);
        for i in 0..4 {
            let mut tags = Tags::new();
            if i == 1 || i == 2 {
                tags.insert("svc.web".into(), format!("127.0.0.1:808{i}"));
            }
            c.add(
                &format!("node-{i}"),
                Config {
                    tags,
                    ..Config::local()
                },
            );
        }
        for i in 1..4 {
            c.join(i, 0);
        }
        c.run_until_cond(secs(30), |c| {
            c.hosts.iter().all(|h| h.node.num_alive() == 4)
        });
        answer_with_name(&mut c);
        let params = QueryParams {
            filter_tags: vec![("svc.web".into(), ".+".into())],
            timeout: Some(secs(1)),
            ..QueryParams::default()
        };
        c.with(0, |s, now| s.query(now, "lookup", b"web", &params).unwrap());
        c.run_until_cond(secs(5), |c| query_results(c, 0).2.is_some());
        let (_, responses, _) = query_results(&c, 0);
        if responses != ["node-1", "node-2"] {
            missed += 1;
        }
    }
    assert_eq!(missed, 0, "{missed} of 40 queries missed a tagged member");
}

#[test]
fn tag_filtered_query_reaches_only_matching_nodes() {
    let mut c = SerfCluster::new(4);
    for i in 0..8 {
        let mut tags = Tags::new();
        tags.insert("role".into(), if i % 2 == 0 { "web" } else { "db" }.into());
        tags.insert("dc".into(), "eu-1".into());
        c.add(
            &format!("node-{i}"),
            Config {
                tags,
                ..Config::default()
            },
        );
    }
    for i in 1..8 {
        c.join(i, 0);
    }
    c.run_until_cond(secs(30), |c| {
        c.hosts.iter().all(|h| h.node.num_alive() == 8)
    });
    answer_with_name(&mut c);
    let params = QueryParams {
        filter_tags: vec![("role".into(), "^web$".into()), ("dc".into(), "eu".into())],
        ..QueryParams::default()
    };
    c.with(1, |s, now| s.query(now, "restart", b"x", &params).unwrap());
    c.run_until_cond(secs(20), |c| query_results(c, 1).2.is_some());
    let (_, responses, done) = query_results(&c, 1);
    assert_eq!(responses, vec!["node-0", "node-2", "node-4", "node-6"]);
    assert_eq!(done, Some((true, 4)));
    for i in 0..8 {
        let saw = c.hosts[i]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Query(_)));
        assert_eq!(saw, i % 2 == 0, "node {i}");
    }
    // A bad expression is refused before anything is sent.
    let bad = QueryParams {
        filter_tags: vec![("role".into(), "(".into())],
        ..QueryParams::default()
    };
    let err = c
        .with(1, |s, now| s.query(now, "q", b"", &bad))
        .unwrap_err();
    assert!(err.to_string().contains("invalid tag filter"), "{err}");
}

#[test]
fn query_response_larger_than_a_packet_arrives_whole() {
    let config = Config {
        query_response_size_limit: 16 * 1024,
        ..Config::default()
    };
    let mut c = converged(4, 5, &config);
    c.hook = Some(Box::new(|_i, node: &mut Serf, now, e: &Event| {
        if let Event::Query(q) = e {
            let name = node.local_name().to_string();
            let body: Vec<u8> = (0..6000u32)
                .map(|k| (k % 251) as u8)
                .chain(name.bytes())
                .collect();
            node.respond(now, q.handle, &body).unwrap();
        }
    }));
    c.with(0, |s, now| {
        s.query(now, "dump", b"", &QueryParams::default()).unwrap()
    });
    c.run_until_cond(secs(20), |c| query_results(c, 0).2.is_some());
    let payloads: Vec<Vec<u8>> = c.hosts[0]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::QueryResponse { payload, .. } => Some(payload.to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(payloads.len(), 4);
    for p in payloads {
        assert!(p.len() > 6000);
        assert!(
            p[..6000]
                .iter()
                .enumerate()
                .all(|(k, b)| *b == (k % 251) as u8)
        );
    }
    assert_eq!(query_results(&c, 0).2, Some((true, 4)));
    // Over the limit is refused with a clear error.
    c.hook = Some(Box::new(|_i, node: &mut Serf, now, e: &Event| {
        if let Event::Query(q) = e {
            let err = node.respond(now, q.handle, &[0; 20_000]).unwrap_err();
            assert!(err.to_string().contains("query_response_size_limit"));
        }
    }));
    c.with(0, |s, now| {
        s.query(now, "dump2", b"", &QueryParams::default()).unwrap()
    });
    c.run_for(secs(1));
}

fn keyed(key: u8) -> Config {
    let mut config = Config::default();
    config.memberlist.keyring = Some(Keyring::new(SecretKey([key; 32])));
    config
}

fn key_response(c: &SerfCluster, i: usize) -> Option<serf_proto::serf::KeyResponse> {
    c.hosts[i].events.iter().rev().find_map(|(_, e)| match e {
        Event::KeyResponse { response, .. } => Some(response.clone()),
        _ => None,
    })
}

#[test]
fn key_rotation_across_ten_nodes_loses_nothing_and_leaves_no_node_behind() {
    let mut c = converged(10, 6, &keyed(1));
    let new = SecretKey([2; 32]);
    let old = SecretKey([1; 32]);
    type KeyOp = fn(&mut Serf, serf_proto::Instant, &SecretKey) -> serf_proto::serf::QueryId;
    let steps: [(&str, KeyOp); 3] = [
        ("install", |s, now, k| s.install_key(now, k).unwrap()),
        ("use", |s, now, k| s.use_key(now, k).unwrap()),
        ("remove", |s, now, k| s.remove_key(now, k).unwrap()),
    ];
    for (step, op) in steps {
        let before = c.hosts[0].events.len();
        let key = if step == "remove" {
            old.clone()
        } else {
            new.clone()
        };
        c.with(0, |s, now| op(s, now, &key));
        c.run_until_cond(secs(20), |c| {
            c.hosts[0].events[before..]
                .iter()
                .any(|(_, e)| matches!(e, Event::KeyResponse { .. }))
        });
        let r = key_response(&c, 0).unwrap();
        assert!(r.is_complete_success(), "{step}: {r:?}");
        assert_eq!(r.num_resp, 10, "{step}");
    }
    c.with(3, |s, now| s.list_keys(now).unwrap());
    c.run_until_cond(secs(20), |c| key_response(c, 3).is_some());
    let r = key_response(&c, 3).unwrap();
    assert_eq!(r.keys, BTreeMap::from([([2u8; 32], 10)]));
    assert_eq!(r.primary_keys, BTreeMap::from([([2u8; 32], 10)]));
    c.run_for(secs(30));
    for h in &c.hosts {
        assert_eq!(h.node.keys().unwrap(), std::slice::from_ref(&new));
        assert_eq!(
            h.node.metrics().dropped_crypto,
            0,
            "{} dropped packets",
            h.name
        );
        assert_eq!(h.node.num_alive(), 10);
        let changed = h
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::KeyringChanged { .. }))
            .count();
        assert_eq!(
            changed, 3,
            "{}: keyring file rewritten on each change",
            h.name
        );
    }
}

#[test]
fn two_nodes_claiming_one_name_resolve_the_conflict_by_vote() {
    let mut c = converged(5, 7, &Config::default());
    let original_addr = c.hosts[2].addr;
    let dup = c.add("node-2", Config::default());
    c.join(dup, 0);
    c.run_for(secs(20));
    let lost = c.hosts[dup].events.iter().any(|(_, e)| {
        matches!(
            e,
            Event::Shutdown {
                reason: ShutdownReason::NameConflictLost
            }
        )
    });
    assert!(lost, "the newcomer lost the vote and shut down");
    assert!(
        !c.hosts[2]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Shutdown { .. }))
    );
    for i in 0..5 {
        assert_eq!(
            c.hosts[i].node.member("node-2").unwrap().addr,
            original_addr
        );
    }
}

#[test]
fn failed_node_is_reaped_after_reconnect_timeout_and_left_node_after_tombstone_timeout() {
    let config = Config {
        reap_interval: secs(5),
        reconnect_timeout: secs(60),
        tombstone_timeout: secs(120),
        ..Config::default()
    };
    let mut c = converged(6, 8, &config);
    c.crash(4);
    c.with(5, |s, now| s.leave(now).unwrap());
    c.run_until_cond(secs(40), |c| {
        (0..4).all(|i| {
            c.status_of(i, "node-4") == Some(MemberStatus::Failed)
                && c.status_of(i, "node-5") == Some(MemberStatus::Left)
        })
    });
    let t_failed = c.now;
    // Still known a little before the reconnect timeout...
    c.run_for(secs(50));
    assert!(c.hosts[0].node.member("node-4").is_some());
    // ... reaped after it (plus a reap interval).
    c.run_for(secs(20));
    for i in 0..4 {
        assert!(c.hosts[i].node.member("node-4").is_none(), "node {i}");
        assert!(member_events(&c, i, MemberEventKind::Reap).contains(&"node-4".to_string()));
        assert!(c.hosts[i].node.member("node-5").is_some(), "tombstone kept");
    }
    c.run_for(secs(60));
    for i in 0..4 {
        assert!(
            c.hosts[i].node.member("node-5").is_none(),
            "tombstone reaped"
        );
    }
    assert!(c.now - t_failed >= secs(120));
    assert!(
        c.hosts[5]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::LeaveCompleted))
    );
}

#[test]
fn partition_of_ten_and_ten_for_ten_minutes_heals_within_two_reconnect_intervals() {
    let config = Config::default();
    let mut c = converged(20, 9, &config);
    let a: Vec<usize> = (0..10).collect();
    let b: Vec<usize> = (10..20).collect();
    c.partition(&a, &b);
    c.run_for(secs(600));
    for &i in &a {
        assert_eq!(c.hosts[i].node.num_alive(), 10);
        assert_eq!(c.status_of(i, "node-15"), Some(MemberStatus::Failed));
        assert!(
            c.hosts[i].node.memberlist().member("node-15").is_none(),
            "memberlist forgot the other side: only Serf's reconnect can heal"
        );
    }
    c.heal();
    let took = c.run_until_cond(config.reconnect_interval * 2, |c| {
        c.hosts.iter().all(|h| {
            h.node.num_alive() == 20 && h.node.members().all(|m| m.status == MemberStatus::Alive)
        })
    });
    println!("healed {:.1}s after the network healed", took.as_secs_f64());
    let reconnects: u64 = c
        .hosts
        .iter()
        .map(|h| h.node.serf_metrics().reconnects)
        .sum();
    assert!(reconnects > 0);
}

#[test]
fn permanent_seeds_bring_back_a_node_cut_off_longer_than_every_timeout() {
    let seed_addr = harness::addr_of(0);
    let config = Config {
        seeds: vec![seed_addr],
        reconnect_timeout: secs(60),
        reap_interval: secs(5),
        ..Config::default()
    };
    let mut c = converged(4, 10, &config);
    c.partition(&[3], &[0, 1, 2]);
    // Long enough that both sides reaped each other entirely.
    c.run_for(secs(200));
    assert_eq!(c.hosts[3].node.num_members(), 1);
    assert!(c.hosts[0].node.member("node-3").is_none());
    c.heal();
    c.run_until_cond(config.reconnect_interval * 2, |c| {
        c.hosts.iter().all(|h| h.node.num_alive() == 4)
    });
    assert!(c.hosts[3].node.serf_metrics().seed_joins > 0);
}

#[test]
fn graceful_leave_and_force_leave() {
    let mut c = converged(5, 11, &Config::default());
    c.with(1, |s, now| s.leave(now).unwrap());
    c.run_until_cond(secs(10), |c| c.all_see("node-1", MemberStatus::Left));
    // The leaver keeps answering for leave_propagate_delay, then reports completion.
    c.run_for(secs(2));
    assert!(
        c.hosts[1]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::LeaveCompleted))
    );
    for i in [0, 2, 3, 4] {
        assert!(member_events(&c, i, MemberEventKind::Leave).contains(&"node-1".into()));
        assert!(!member_events(&c, i, MemberEventKind::Failed).contains(&"node-1".into()));
    }
    // A crashed node is failed; force-leave turns it left everywhere, and prune erases it.
    c.crash(2);
    c.run_until_cond(secs(40), |c| {
        [0, 3, 4]
            .iter()
            .all(|&i| c.status_of(i, "node-2") == Some(MemberStatus::Failed))
    });
    c.with(0, |s, now| s.force_leave(now, "node-2", false).unwrap());
    c.run_until_cond(secs(5), |c| {
        [0, 3, 4]
            .iter()
            .all(|&i| c.status_of(i, "node-2") == Some(MemberStatus::Left))
    });
    c.with(3, |s, now| s.force_leave(now, "node-2", true).unwrap());
    c.run_until_cond(secs(5), |c| {
        [0, 3, 4]
            .iter()
            .all(|&i| c.hosts[i].node.member("node-2").is_none())
    });
    let err = c
        .with(0, |s, now| s.force_leave(now, "nobody", false))
        .unwrap_err();
    assert!(err.to_string().contains("no member named"));
}

#[test]
fn tag_changes_propagate_as_member_updates() {
    let mut c = converged(5, 12, &Config::default());
    let mut tags = Tags::new();
    tags.insert("role".into(), "leader".into());
    c.with(3, |s, now| s.set_tags(now, tags.clone()).unwrap());
    c.run_until_cond(secs(5), |c| {
        (0..5).all(|i| {
            c.hosts[i]
                .node
                .member("node-3")
                .unwrap()
                .tags
                .get("role")
                .map(String::as_str)
                == Some("leader")
        })
    });
    for i in [0, 1, 2, 4] {
        assert!(member_events(&c, i, MemberEventKind::Update).contains(&"node-3".into()));
    }
    let mut big = Tags::new();
    big.insert("blob".into(), "x".repeat(600));
    let err = c.with(3, |s, now| s.set_tags(now, big)).unwrap_err();
    assert!(err.to_string().contains("max_meta_size"), "{err}");
}

#[test]
fn member_events_are_coalesced() {
    let config = Config {
        coalesce_period: secs(3),
        quiescent_period: secs(1),
        ..Config::default()
    };
    let mut c = SerfCluster::new(13);
    for i in 0..6 {
        c.add(&format!("node-{i}"), config.clone());
    }
    for i in 1..6 {
        c.join(i, 0);
    }
    c.run_for(secs(10));
    // node-0 saw five joins (plus its own), delivered in few batched events.
    let batches: Vec<usize> = c.hosts[0]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Member {
                kind: MemberEventKind::Join,
                members,
            } => Some(members.len()),
            _ => None,
        })
        .collect();
    assert_eq!(batches.iter().sum::<usize>(), 6);
    assert!(batches.len() <= 3, "batches {batches:?}");
}

#[test]
fn user_events_are_coalesced_by_name_keeping_the_newest() {
    let config = Config {
        user_coalesce_period: secs(3),
        user_quiescent_period: secs(1),
        ..Config::default()
    };
    let mut c = converged(3, 14, &config);
    for v in 0..5 {
        c.with(0, |s, now| {
            s.user_event(now, "deploy", format!("v{v}").as_bytes(), true)
                .unwrap()
        });
    }
    c.with(0, |s, now| s.user_event(now, "other", b"o", true).unwrap());
    c.with(0, |s, now| s.user_event(now, "plain", b"p", false).unwrap());
    c.run_for(secs(5));
    for i in 0..3 {
        let mut got = user_events(&c, i);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("deploy".to_string(), b"v4".to_vec()),
                ("other".to_string(), b"o".to_vec()),
                ("plain".to_string(), b"p".to_vec()),
            ],
            "node {i}"
        );
    }
}

#[test]
fn large_user_event_is_spread_over_streams() {
    let config = Config {
        user_event_size_limit: 9 * 1024,
        ..Config::default()
    };
    let mut c = converged(20, 15, &config);
    let payload: Vec<u8> = (0..8000u32).map(|k| (k % 253) as u8).collect();
    c.with(5, |s, now| {
        s.user_event(now, "blob", &payload, false).unwrap()
    });
    c.run_for(secs(10));
    for i in 0..20 {
        assert_eq!(
            user_events(&c, i),
            vec![("blob".to_string(), payload.clone())],
            "node {i}"
        );
    }
    let err = c
        .with(5, |s, now| s.user_event(now, "huge", &[0; 10_000], false))
        .unwrap_err();
    assert!(err.to_string().contains("user_event_size_limit"));
}

#[test]
fn late_joiner_gets_recent_events_unless_it_ignores_old_ones() {
    let mut c = converged(3, 16, &Config::default());
    c.with(0, |s, now| {
        s.user_event(now, "before", b"1", false).unwrap()
    });
    c.run_for(secs(5));
    let replay = c.add("replayer", Config::default());
    let ignorer = c.add("ignorer", Config::default());
    c.join(replay, 0);
    c.with(ignorer, |s, now| {
        s.join(now, &[harness::addr_of(0)], true).unwrap()
    });
    c.run_for(secs(5));
    assert_eq!(
        user_events(&c, replay),
        vec![("before".to_string(), b"1".to_vec())]
    );
    assert!(user_events(&c, ignorer).is_empty());
    // New events reach both.
    c.with(1, |s, now| s.user_event(now, "after", b"2", false).unwrap());
    c.run_for(secs(5));
    assert!(user_events(&c, ignorer).contains(&("after".to_string(), b"2".to_vec())));
}

#[test]
fn snapshot_restart_rejoins_and_does_not_replay_old_events() {
    let config = Config {
        snapshot: true,
        ..Config::default()
    };
    let mut c = converged(4, 17, &config);
    c.with(0, |s, now| s.user_event(now, "old", b"x", false).unwrap());
    c.run_for(secs(5));
    // Replay node-3's persisted records as a driver would.
    let records: Vec<Record> = c.hosts[3].records.clone();
    let text: String = records.iter().map(|r| r.to_line() + "\n").collect();
    let snapshot = SnapshotState::parse(&text, false).unwrap();
    assert_eq!(snapshot.alive.len(), 4);
    assert!(snapshot.event_clock >= 1);
    c.crash(3);
    c.run_until_cond(secs(40), |c| c.all_see("node-3", MemberStatus::Failed));
    // Restart with the snapshot: no explicit join.
    let seed = c.next_seed();
    let addr = c.hosts[3].addr;
    let now = c.now;
    let node = Serf::with_snapshot(config, "node-3", addr, seed, now, Some(&snapshot)).unwrap();
    c.replace_node(3, node);
    c.run_until_cond(secs(10), |c| c.all_see("node-3", MemberStatus::Alive));
    assert_eq!(c.hosts[3].node.num_alive(), 4);
    assert!(user_events(&c, 3).is_empty(), "old events are not replayed");
}

#[test]
fn coordinates_estimate_round_trip_times() {
    let mut c = converged(6, 18, &Config::default());
    c.run_for(secs(120));
    // The harness's one-way latency is 2 ms plus up to 0.5 ms jitter.
    let rtt = c.hosts[0]
        .node
        .rtt("node-1", "node-4")
        .expect("coordinates cached");
    let ms = rtt.as_secs_f64() * 1000.0;
    assert!((2.0..8.0).contains(&ms), "estimated {ms:.2} ms");
    assert!(c.hosts[0].node.coordinate().is_some());
}

#[test]
fn reachability_ends_as_soon_as_every_member_acked() {
    let mut c = converged(8, 19, &Config::default());
    let sent = c.now;
    c.with(2, |s, now| s.reachability(now, Some(secs(30))).unwrap());
    c.run_until_cond(secs(30), |c| query_results(c, 2).2.is_some());
    let (acks, _, done) = query_results(&c, 2);
    assert_eq!(acks.len(), 8);
    assert_eq!(done.map(|d| d.0), Some(true));
    // It ends the moment the last ack arrives, not at its 30 s timeout. (A member that
    // gossip missed gets the query directly at a third of the timeout.)
    let at = |want: fn(&Event) -> bool| {
        c.hosts[2]
            .events
            .iter()
            .filter(|(_, e)| want(e))
            .map(|&(t, _)| t)
            .max()
            .unwrap()
    };
    let last_ack = at(|e| matches!(e, Event::QueryAck { .. }));
    let ended = at(|e| matches!(e, Event::QueryDone { .. }));
    assert_eq!(ended, last_ack);
    assert!(ended - sent < secs(11), "ended after {:?}", ended - sent);
    let err = c
        .with(2, |s, now| {
            s.query(now, "_serf_ping", b"", &QueryParams::default())
        })
        .unwrap_err();
    assert!(err.to_string().contains("reserved"));
}

#[test]
fn relayed_responses_get_around_a_broken_link_and_duplicates_are_dropped() {
    let mut c = converged(8, 20, &Config::default());
    answer_with_name(&mut c);
    // node-0 and node-5 cannot exchange datagrams: node-5's direct answer is lost.
    c.udp_cut.insert((5, 0));
    c.udp_cut.insert((0, 5));
    let params = QueryParams {
        relay_factor: 2,
        request_ack: true,
        timeout: Some(secs(10)),
        ..QueryParams::default()
    };
    c.with(0, |s, now| s.query(now, "who", b"", &params).unwrap());
    c.run_until_cond(secs(10), |c| query_results(c, 0).2.is_some());
    let (_, responses, done) = query_results(&c, 0);
    assert!(responses.contains(&"node-5".to_string()), "{responses:?}");
    assert_eq!(responses.len(), 8, "each node counted once: {responses:?}");
    assert_eq!(done, Some((true, 8)));
    assert!(c.hosts[0].node.serf_metrics().query_duplicates > 0);
}

#[test]
fn merge_check_keeps_another_cluster_out() {
    use serf_proto::serf::MergeCheck;
    let only_dc = |dc: &'static str| {
        let mut tags = Tags::new();
        tags.insert("dc".into(), dc.into());
        Config {
            tags,
            merge_check: Some(MergeCheck::new(move |members| {
                match members
                    .iter()
                    .find(|m| m.tags.get("dc").map(String::as_str) != Some(dc))
                {
                    Some(m) => Err(format!("{} is not in dc {dc}", m.name)),
                    None => Ok(()),
                }
            })),
            ..Config::default()
        }
    };
    let mut c = SerfCluster::new(21);
    for i in 0..3 {
        c.add(&format!("a-{i}"), only_dc("a"));
    }
    c.join(1, 0);
    c.join(2, 0);
    let b = c.add("b-0", only_dc("b"));
    c.join(b, 0);
    c.run_for(secs(20));
    for i in 0..3 {
        assert_eq!(c.hosts[i].node.num_members(), 3, "a-{i}");
        assert!(c.hosts[i].node.member("b-0").is_none());
    }
    assert_eq!(c.hosts[b].node.num_members(), 1);
    let refused = c.hosts[b].events.iter().any(
        |(_, e)| matches!(e, Event::JoinCompleted { joined: 0, failed, .. } if !failed.is_empty()),
    );
    assert!(refused);
}

#[test]
fn reconnect_timeout_can_be_overridden_per_member() {
    use serf_proto::serf::ReconnectTimeoutOverride;
    let config = Config {
        reap_interval: secs(5),
        reconnect_timeout_override: Some(ReconnectTimeoutOverride::new(|m| {
            (m.tags.get("ephemeral").map(String::as_str) == Some("true")).then_some(secs(20))
        })),
        ..Config::default()
    };
    let mut c = SerfCluster::new(22);
    for i in 0..5 {
        let mut cfg = config.clone();
        if i == 4 {
            cfg.tags.insert("ephemeral".into(), "true".into());
        }
        c.add(&format!("node-{i}"), cfg);
    }
    for i in 1..5 {
        c.join(i, 0);
    }
    c.run_until_cond(secs(20), |c| {
        c.hosts.iter().all(|h| h.node.num_alive() == 5)
    });
    c.crash(3);
    c.crash(4);
    c.run_for(secs(90));
    for i in 0..3 {
        assert!(
            c.hosts[i].node.member("node-4").is_none(),
            "ephemeral reaped"
        );
        assert_eq!(
            c.status_of(i, "node-3"),
            Some(MemberStatus::Failed),
            "default kept"
        );
    }
}

#[test]
fn node_that_left_can_join_again() {
    let mut c = converged(4, 23, &Config::default());
    c.with(2, |s, now| s.leave(now).unwrap());
    c.run_until_cond(secs(10), |c| c.all_see("node-2", MemberStatus::Left));
    c.run_for(secs(2));
    assert_eq!(c.hosts[2].node.state(), serf_proto::serf::SerfState::Left);
    c.join(2, 0);
    c.run_until_cond(secs(10), |c| c.all_see("node-2", MemberStatus::Alive));
    assert_eq!(c.hosts[2].node.state(), serf_proto::serf::SerfState::Alive);
    assert_eq!(c.hosts[2].node.num_alive(), 4);
    // And it still works: events reach it.
    c.with(0, |s, now| {
        s.user_event(now, "hello", b"again", false).unwrap()
    });
    c.run_for(secs(3));
    assert!(user_events(&c, 2).contains(&("hello".to_string(), b"again".to_vec())));
}
