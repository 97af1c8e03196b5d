//! The core's log records: what Go's memberlist and serf would log, taken with `poll_log`,
//! in Go's wording, bounded, and without any effect on the protocol.

mod harness;

use harness::SerfCluster;
use serf_proto::Serf;
use serf_proto::log::{Level, LogMessage, LogRecord};
use serf_proto::serf::{Config, MemberEventKind, MemberStatus};
use std::time::Duration;

fn config(level: Option<Level>) -> Config {
    let mut c = Config::default();
    c.memberlist.log_level = level;
    c
}

fn drain_logs(node: &mut Serf) -> Vec<LogRecord> {
    std::iter::from_fn(|| node.poll_log()).collect()
}

#[test]
fn a_crash_is_logged_as_go_logs_it_suspect_then_failed() {
    let mut c = SerfCluster::converged(5, 7, &config(Some(Level::Info)));
    for h in &mut c.hosts {
        drain_logs(&mut h.node);
    }
    c.crash(4);
    c.run_until_cond(Duration::from_secs(60), |c| {
        c.all_see("node-4", MemberStatus::Failed)
    });
    let mut suspected = 0;
    for i in 0..4 {
        let logs = drain_logs(&mut c.hosts[i].node);
        assert!(
            logs.windows(2).all(|w| w[0].at <= w[1].at),
            "records come out in time order"
        );
        suspected += logs
            .iter()
            .filter(|r| matches!(&r.message, LogMessage::SuspectNoAck { node } if node.as_str() == "node-4"))
            .count();
        let failed = logs
            .iter()
            .find(|r| {
                matches!(&r.message, LogMessage::Member { event: MemberEventKind::Failed, node, .. } if node.as_str() == "node-4")
            })
            .unwrap_or_else(|| panic!("node-{i} logged no EventMemberFailed: {logs:#?}"));
        assert_eq!(failed.level, Level::Info);
        assert_eq!(failed.target(), "serf");
        assert_eq!(
            failed.to_string(),
            "[INFO] serf: EventMemberFailed: node-4 10.0.0.5"
        );
        // Nothing below the level asked for.
        assert!(logs.iter().all(|r| r.level >= Level::Info));
    }
    assert!(suspected >= 1, "some prober logged its failed probe");
    let marked = (0..4).any(|i| c.hosts[i].node.metrics().deaths_declared > 0);
    assert!(marked);
}

#[test]
fn a_refutation_names_who_accused_us() {
    let mut c = SerfCluster::converged(3, 11, &config(Some(Level::Warn)));
    for h in &mut c.hosts {
        drain_logs(&mut h.node);
    }
    // Cut node 2 off long enough to be suspected, then heal before it is declared dead:
    // it learns of the suspicion and refutes.
    c.partition(&[2], &[0, 1]);
    c.run_until_cond(Duration::from_secs(30), |c| {
        c.hosts[0]
            .node
            .members()
            .any(|m| m.name.as_str() == "node-2")
            && c.hosts[0].node.metrics().suspicions > 0
    });
    c.heal();
    c.run_for(Duration::from_secs(20));
    let logs = drain_logs(&mut c.hosts[2].node);
    let refute = logs
        .iter()
        .find(|r| matches!(r.message, LogMessage::Refuting { .. }))
        .unwrap_or_else(|| panic!("node-2 logged no refutation: {logs:#?}"));
    assert_eq!(refute.level, Level::Warn);
    let line = refute.to_string();
    assert!(
        line.starts_with("[WARN] memberlist: Refuting a suspect message (from: node-")
            || line.starts_with("[WARN] memberlist: Refuting a dead message (from: node-"),
        "{line}"
    );
}

#[test]
fn logging_never_changes_what_the_protocol_does() {
    let run = |level: Option<Level>| {
        let mut c = SerfCluster::converged(6, 42, &config(level));
        c.crash(5);
        c.run_for(Duration::from_secs(40));
        c.with(1, |s, now| {
            s.user_event(now, "deploy", b"v1", false).unwrap()
        });
        c.run_for(Duration::from_secs(5));
        let events: Vec<String> = c
            .hosts
            .iter()
            .flat_map(|h| h.events.iter().map(|(t, e)| format!("{t:?} {e:?}")))
            .collect();
        (events, c.delivered)
    };
    assert_eq!(run(None), run(Some(Level::Debug)));
}

#[test]
fn an_unpolled_queue_stays_bounded_and_counts_what_it_dropped() {
    let mut c = SerfCluster::converged(8, 3, &config(Some(Level::Debug)));
    for _ in 0..1200 {
        c.with(0, |s, now| s.user_event(now, "e", b"x", false).unwrap());
        c.run_for(Duration::from_millis(20));
    }
    let node = &mut c.hosts[3].node;
    let dropped = node.serf_metrics().logs_dropped + node.metrics().logs_dropped;
    assert!(dropped > 0, "1,200 user events at debug overflow the queue");
    let kept = drain_logs(node);
    assert!(kept.len() <= 2 * serf_proto::log::LOG_QUEUE_CAPACITY);
    // The newest records are the ones kept.
    assert!(
        kept.iter()
            .any(|r| matches!(&r.message, LogMessage::UserEventReceived { name } if name == "e"))
    );
    // Turned off, nothing more is recorded.
    node.set_log_level(None);
    c.with(0, |s, now| s.user_event(now, "late", b"x", false).unwrap());
    c.run_for(Duration::from_secs(2));
    assert!(drain_logs(&mut c.hosts[3].node).is_empty());
}
