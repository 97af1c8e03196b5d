//! The member view under a join storm: republishing is rate-limited, but every waiter
//! on `members_changed` still sees the final membership.

use serf_driver_tokio::{Builder, Events, SerfHandle};
use serf_proto::serf::{Config, MemberStatus};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::timeout;

async fn node(name: String) -> (SerfHandle, Events) {
    Builder::new(name)
        .bind("127.0.0.1:0".parse().unwrap())
        .config(Config::local())
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_storm_ends_with_the_full_view_published_to_waiters() {
    const N: usize = 12;
    let (seed, _seed_events) = node("seed".into()).await;
    let mut nodes = Vec::new();
    for i in 1..N {
        nodes.push(node(format!("node-{i}")).await);
    }
    // A waiter that reads only what `members_changed` hands it.
    let mut watcher = seed.clone();
    let waiter = tokio::spawn(async move {
        loop {
            let view = watcher.members_changed().await.unwrap();
            if view.count(MemberStatus::Alive) == N {
                return view.version;
            }
        }
    });
    // Every node joins at once: the seed's membership changes many times in a few ms.
    let addr = seed.local_addr();
    let mut joins = JoinSet::new();
    for (h, _) in &nodes {
        let h = h.clone();
        joins.spawn(async move { h.join(&[addr], false).await });
    }
    while let Some(joined) = joins.join_next().await {
        assert_eq!(joined.unwrap(), Ok(1));
    }
    let version = timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the full view was published to the waiter")
        .unwrap();
    assert!(seed.members().version >= version);
    assert_eq!(seed.members().count(MemberStatus::Alive), N);
    for (h, _) in &nodes {
        h.shutdown().await.unwrap();
    }
    seed.shutdown().await.unwrap();
}

/// An idle node sleeps until its next deadline: a select branch that is always ready
/// (once, a closed channel of TLS handshakes in plain TCP mode) would spin the task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_node_sleeps_between_deadlines() {
    let (a, _a_events) = node("a".into()).await;
    let (b, _b_events) = node("b".into()).await;
    b.join(&[a.local_addr()], false).await.unwrap();
    let before = (a.driver_stats().task_wakeups, b.driver_stats().task_wakeups);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = (a.driver_stats().task_wakeups, b.driver_stats().task_wakeups);
    // Gossip every 100 ms and a probe a second give tens of wake-ups; a spin, millions.
    for (from, to) in [(before.0, after.0), (before.1, after.1)] {
        assert!(to - from < 2_000, "{} wake-ups in 500 ms", to - from);
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
