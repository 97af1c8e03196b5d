//! Real nodes on 127.0.0.1 (ports picked by the OS), driven by the tokio driver through
//! its public API: membership, failure detection, events, queries, keys, labels, and a
//! node under a flood of garbage.

use bytes::Bytes;
use serf_driver_tokio::{Builder, Error, Events, SerfHandle};
use serf_proto::serf::{Config, Event, MemberStatus, QueryParams};
use serf_proto::{Keyring, SecretKey};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::{Instant, sleep, timeout};

const LOOPBACK: &str = "127.0.0.1:0";

/// The local-network profile: 1 s probes, 100 ms gossip, so failures are seen in seconds.
fn config() -> Config {
    Config::local()
}

async fn node(name: &str, config: Config) -> (SerfHandle, Events) {
    Builder::new(name)
        .bind(LOOPBACK.parse().unwrap())
        .config(config)
        .start()
        .await
        .unwrap()
}

/// `n` nodes, each joined through the first, once every view holds all alive.
async fn cluster(n: usize, config: Config) -> Vec<(SerfHandle, Events)> {
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(node(&format!("node-{i}"), config.clone()).await);
    }
    let seed = nodes[0].0.local_addr();
    for (h, _) in &nodes[1..] {
        h.join(&[seed], false).await.unwrap();
    }
    wait_until(
        Duration::from_secs(30),
        "every view holds every node alive",
        || {
            nodes
                .iter()
                .all(|(h, _)| h.members().count(MemberStatus::Alive) == n)
        },
    )
    .await;
    nodes
}

/// Polls `cond` every 50 ms; fails the test after `limit`. Returns the time it took.
async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

async fn shutdown_all(nodes: &[(SerfHandle, Events)]) {
    for (h, _) in nodes {
        h.shutdown().await.unwrap();
    }
}

/// The next user event on `events`, skipping others.
async fn next_user_event(events: &mut Events) -> (String, Bytes) {
    loop {
        match events.recv().await {
            Some(Event::User(e)) => return (e.name, e.payload),
            Some(_) => {}
            None => panic!("the node stopped"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_converge_and_a_killed_node_is_failed_everywhere() {
    let nodes = cluster(10, config()).await;
    // A kill: the process stops without leaving.
    nodes[9].0.shutdown().await.unwrap();
    let took = wait_until(
        Duration::from_secs(30),
        "node-9 failed in every view",
        || {
            nodes[..9]
                .iter()
                .all(|(h, _)| h.members().status_of("node-9") == Some(MemberStatus::Failed))
        },
    )
    .await;
    println!("killed node failed in all 9 views after {took:?}");
    // A graceful leave is seen as a leave, not a failure.
    nodes[8].0.leave().await.unwrap();
    wait_until(Duration::from_secs(30), "node-8 left in every view", || {
        nodes[..8]
            .iter()
            .all(|(h, _)| h.members().status_of("node-8") == Some(MemberStatus::Left))
    })
    .await;
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_event_reaches_every_node_and_a_query_is_answered() {
    let mut nodes = cluster(5, config()).await;
    nodes[2]
        .0
        .user_event("deploy", &b"v2"[..], false)
        .await
        .unwrap();
    for (i, (_, events)) in nodes.iter_mut().enumerate() {
        let got = timeout(Duration::from_secs(30), next_user_event(events))
            .await
            .unwrap_or_else(|_| panic!("node-{i} got no event"));
        assert_eq!(got, ("deploy".to_string(), Bytes::from_static(b"v2")));
    }
    // Every node answers "whoami" with its name.
    let (handles, events): (Vec<SerfHandle>, Vec<Events>) = nodes.into_iter().unzip();
    let mut answerers = Vec::new();
    for (h, mut events) in handles.iter().cloned().zip(events).skip(1) {
        answerers.push(tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if let Event::Query(q) = e
                    && q.name == "whoami"
                {
                    let name = h.name().to_string();
                    h.respond(q.handle, name.into_bytes()).await.unwrap();
                }
            }
        }));
    }
    let params = QueryParams {
        filter_nodes: vec!["node-1".into(), "node-3".into()],
        ..QueryParams::default()
    };
    let q = handles[0]
        .query("whoami", Bytes::new(), params)
        .await
        .unwrap();
    let (mut answers, complete) = q.collect().await;
    answers.sort();
    let names: Vec<(String, Bytes)> = answers
        .into_iter()
        .map(|(n, p)| (n.to_string(), p))
        .collect();
    assert_eq!(
        names,
        [
            ("node-1".to_string(), Bytes::from_static(b"node-1")),
            ("node-3".to_string(), Bytes::from_static(b"node-3"))
        ]
    );
    assert!(complete, "both filtered nodes answered before the timeout");
    for h in &handles {
        h.shutdown().await.unwrap();
    }
    for a in answerers {
        let _ = a.await;
    }
}

fn key(b: u8) -> SecretKey {
    SecretKey([b; 32])
}

fn encrypted(k: SecretKey) -> Config {
    let mut c = config();
    c.memberlist.keyring = Some(Keyring::new(k));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_across_the_running_cluster_loses_no_packet() {
    let nodes = cluster(5, encrypted(key(1))).await;
    let h = &nodes[0].0;
    let r = h.install_key(key(2)).await.unwrap();
    assert_eq!((r.num_nodes, r.num_resp, r.num_err), (5, 5, 0), "{r:?}");
    let r = h.use_key(key(2)).await.unwrap();
    assert_eq!(r.num_err, 0, "{r:?}");
    let r = h.remove_key(key(1)).await.unwrap();
    assert_eq!(r.num_err, 0, "{r:?}");
    let r = h.list_keys().await.unwrap();
    assert_eq!(r.keys.len(), 1, "only the new key is left: {r:?}");
    assert_eq!(r.keys.get(&key(2).0), Some(&5));
    // Gossip goes on under the new key, and nothing was dropped for want of a key.
    sleep(Duration::from_secs(2)).await;
    for (h, _) in &nodes {
        let (m, _, _) = h.metrics().await.unwrap();
        assert_eq!(m.dropped_crypto, 0, "{}", h.name());
        assert_eq!(h.members().count(MemberStatus::Alive), 5);
    }
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_the_wrong_key_or_another_label_cannot_join() {
    let nodes = cluster(3, encrypted(key(1))).await;
    let seed = nodes[0].0.local_addr();
    let (wrong, _e) = node("intruder", encrypted(key(9))).await;
    assert!(matches!(
        wrong.join(&[seed], false).await,
        Err(Error::JoinFailed(_))
    ));
    let mut labelled = encrypted(key(1));
    labelled.memberlist.label = "other-cluster".into();
    let (other, _e2) = node("other", labelled).await;
    assert!(matches!(
        other.join(&[seed], false).await,
        Err(Error::JoinFailed(_))
    ));
    sleep(Duration::from_secs(1)).await;
    for (h, _) in &nodes {
        assert_eq!(
            h.members().members.len(),
            3,
            "{} let a stranger in",
            h.name()
        );
    }
    wrong.shutdown().await.unwrap();
    other.shutdown().await.unwrap();
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_garbage_and_idle_connections_leaves_the_node_serving() {
    let nodes = cluster(3, config()).await;
    let target = nodes[0].0.local_addr();
    let udp = tokio::net::UdpSocket::bind(LOOPBACK).await.unwrap();
    let mut idle = Vec::new();
    for _ in 0..300 {
        if let Ok(s) = tokio::net::TcpStream::connect(target).await {
            idle.push(s);
        }
    }
    // 20,000 datagrams of junk and 200 frames announcing 4 GiB.
    let mut x: u32 = 12345;
    for i in 0..20_000u32 {
        let len = 1 + (i as usize * 7919) % 1400;
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let _ = udp.send_to(&junk, target).await;
    }
    let mut liars = Vec::new();
    for _ in 0..200 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(target).await {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(&u32::MAX.to_be_bytes()).await;
            liars.push(s);
        }
    }
    // The node still serves the cluster: a new member joins through it, and an event
    // from it reaches the others.
    let (late, _late_events) = node("late", config()).await;
    late.join(&[target], false).await.unwrap();
    wait_until(Duration::from_secs(40), "all four see each other", || {
        nodes
            .iter()
            .all(|(h, _)| h.members().count(MemberStatus::Alive) == 4)
            && late.members().count(MemberStatus::Alive) == 4
    })
    .await;
    let (m, _, d) = nodes[0].0.metrics().await.unwrap();
    let dropped = m.dropped_malformed + m.dropped_checksum + m.dropped_label + m.messages_malformed;
    println!(
        "garbage datagrams dropped: {dropped} (received {}); frames too long: {}; streams refused/evicted: {}/{}",
        d.datagrams_received, d.frames_too_long, d.streams_refused, m.streams_evicted
    );
    assert!(dropped > 0, "the junk was counted: {m:?}");
    assert!(d.frames_too_long > 0, "announced 4 GiB frames were refused");
    drop(idle);
    drop(liars);
    late.shutdown().await.unwrap();
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_frees_the_port_at_once() {
    let (a, _e) = node("a", config()).await;
    let (b, _eb) = node("b", config()).await;
    b.join(&[a.local_addr()], false).await.unwrap();
    let addr: SocketAddr = a.local_addr();
    a.shutdown().await.unwrap();
    let (again, _e2) = Builder::new("a")
        .bind(addr)
        .config(config())
        .start()
        .await
        .expect("the port is free again at once");
    again.join(&[b.local_addr()], false).await.unwrap();
    again.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_from_its_snapshot_rejoins_without_a_seed() {
    let dir = std::env::temp_dir().join(format!("serf-it-snapshot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("node-3.snapshot");
    let nodes = cluster(3, config()).await;
    let start = |bind: SocketAddr| {
        Builder::new("node-3")
            .bind(bind)
            .config(config())
            .snapshot_path(&path)
            .start()
    };
    let (h, _e) = start(LOOPBACK.parse().unwrap()).await.unwrap();
    h.join(&[nodes[0].0.local_addr()], false).await.unwrap();
    wait_until(Duration::from_secs(30), "node-3 seen by all", || {
        nodes
            .iter()
            .all(|(n, _)| n.members().count(MemberStatus::Alive) == 4)
    })
    .await;
    // Flushed every 500 ms; a kill (no leave) then.
    sleep(Duration::from_secs(1)).await;
    let addr = h.local_addr();
    h.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("alive: node-0 "),
        "the snapshot holds the members:\n{text}"
    );
    // Back on the same address, with no join: the snapshot's members are rejoined.
    let (h, _e) = start(addr).await.unwrap();
    wait_until(Duration::from_secs(40), "node-3 back in every view", || {
        h.members().count(MemberStatus::Alive) == 4
            && nodes
                .iter()
                .all(|(n, _)| n.members().status_of("node-3") == Some(MemberStatus::Alive))
    })
    .await;
    h.shutdown().await.unwrap();
    shutdown_all(&nodes).await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// Whether the node still holds its end of `conn`: data written to a socket whose peer
/// closed it fully is answered with a reset, so a write then fails; a peer that only
/// shut its writing side takes the data in silently.
async fn held_open(conn: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncWriteExt;
    let start = Instant::now();
    while start.elapsed() < limit {
        if conn.write_all(&[0]).await.is_err() {
            return false;
        }
        sleep(Duration::from_millis(50)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_connections_the_node_accepted() {
    let (a, _e) = node("a", config()).await;
    // A peer that connects and says nothing: the core holds the stream, waiting for its
    // first frame, when the node shuts down.
    let mut conn = tokio::net::TcpStream::connect(a.local_addr())
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "the stream was accepted", || {
        a.driver_stats().streams_accepted == 1
    })
    .await;
    a.shutdown().await.unwrap();
    assert_eq!(
        a.driver_stats().connections,
        0,
        "no connection outlives shutdown"
    );
    // A frame announced, its body then trickling in: a reader left behind would wait for
    // the rest rather than fail on the closed core.
    use tokio::io::AsyncWriteExt;
    let _ = conn.write_all(&4096u32.to_be_bytes()).await;
    assert!(
        !held_open(&mut conn, Duration::from_secs(5)).await,
        "the node still reads a connection after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_let_go_once_their_streams_are_done() {
    let (a, _ea) = node("a", config()).await;
    let (b, _eb) = node("b", config()).await;
    // Each join is a push-pull: one connection at each end.
    for _ in 0..20 {
        b.join(&[a.local_addr()], false).await.unwrap();
    }
    assert!(a.driver_stats().streams_accepted >= 20);
    wait_until(
        Duration::from_secs(15),
        "neither node holds a connection any more",
        || a.driver_stats().connections == 0 && b.driver_stats().connections == 0,
    )
    .await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_after_shutdown_says_so_and_waiters_see_it() {
    use serf_proto::serf::SerfState;
    let (a, _e) = node("a", config()).await;
    let mut watcher = a.clone();
    a.shutdown().await.unwrap();
    assert_eq!(a.members().state, SerfState::Shutdown);
    // A waiter is handed the final view, then told the node stopped.
    let mut last = None;
    while let Ok(view) = timeout(Duration::from_secs(5), watcher.members_changed())
        .await
        .expect("a waiter is woken at shutdown")
    {
        last = Some(view.state);
    }
    assert_eq!(last, Some(SerfState::Shutdown));
}

/// The frame budget is the application's input: any value is taken (at most what a
/// semaphore can count), never a panic at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_frame_budget_starts() {
    for budget in [0, usize::MAX] {
        let (a, _e) = Builder::new("a")
            .bind(LOOPBACK.parse().unwrap())
            .config(config())
            .frame_budget(budget)
            .start()
            .await
            .unwrap();
        a.shutdown().await.unwrap();
    }
}
