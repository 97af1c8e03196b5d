//! Streams over TLS on the TCP port (`Builder::tls`), real nodes on 127.0.0.1.

mod secure;

use serf_driver_tokio::{Builder, Certificates};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

fn tls(b: Builder, certs: Certificates) -> Builder {
    b.tls(certs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_tls_nodes_converge_pass_events_and_refuse_another_ca() {
    secure::five_nodes_converge_pass_events_and_refuse_another_ca(tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_certificate_for_another_node_is_refused_at_start() {
    secure::a_certificate_for_another_node_is_refused_at_start(tls).await;
}

/// A plain-TCP peer (an old node, a scanner) gets no stream: its bytes fail the
/// handshake, which is counted, and the core never hears of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_to_a_tls_node_fails_the_handshake_and_is_counted() {
    let ca = secure::TestCa::new();
    let (node, _events) = secure::node("node-0", tls, ca.certificates("node-0")).await;
    let mut plain = tokio::net::TcpStream::connect(node.local_addr())
        .await
        .unwrap();
    plain.write_all(&[0, 0, 0, 5, 1, 2, 3, 4, 5]).await.unwrap();
    secure::wait_until(
        Duration::from_secs(5),
        "the handshake failure is counted",
        || node.driver_stats().handshakes_failed == 1,
    )
    .await;
    let stats = node.driver_stats();
    assert_eq!((stats.streams_accepted, stats.frames_received), (0, 0));
    node.shutdown().await.unwrap();
}

/// Hostile peers that never finish a handshake, or send junk for one, hold at most
/// `max_inbound_streams` handshake slots, each for at most `stream_timeout`; the rest
/// are refused and counted, and the node then serves a new member again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_junk_connections_are_bounded_counted_and_outlived() {
    let ca = secure::TestCa::new();
    let (node, _events) = secure::node("node-0", tls, ca.certificates("node-0")).await;
    let target = node.local_addr();
    let cap = secure::config().memberlist.max_inbound_streams as u64;
    let mut idle = Vec::new();
    for _ in 0..cap + 50 {
        if let Ok(s) = tokio::net::TcpStream::connect(target).await {
            idle.push(s);
        }
    }
    let mut junk = Vec::new();
    for i in 0..50u8 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(target).await {
            let _ = s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, i, i, i]).await;
            junk.push(s);
        }
    }
    secure::wait_until(
        Duration::from_secs(10),
        "the extra connections are refused",
        || node.driver_stats().handshakes_refused >= 50,
    )
    .await;
    // The slots free up as the handshakes time out (stream_timeout, 1 s here).
    secure::wait_until(Duration::from_secs(20), "every slot timed out", || {
        let s = node.driver_stats();
        s.handshakes_failed + s.handshakes_refused >= cap + 100
    })
    .await;
    let (late, _late_events) = secure::node("late", tls, ca.certificates("late")).await;
    late.join(&[target], false).await.unwrap();
    let stats = node.driver_stats();
    println!("{stats:?}");
    assert_eq!(
        stats.frames_received, 1,
        "only the late node's push-pull reached the core"
    );
    drop((idle, junk));
    late.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}
