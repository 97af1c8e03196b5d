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
