//! Streams over QUIC on the gossip port (`Builder::quic`), real nodes on 127.0.0.1.

mod secure;

use serf_driver_tokio::{Builder, Certificates};

fn quic(b: Builder, certs: Certificates) -> Builder {
    b.quic(certs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_quic_nodes_converge_pass_events_and_refuse_another_ca() {
    secure::five_nodes_converge_pass_events_and_refuse_another_ca(quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_certificate_for_another_node_is_refused_at_start() {
    secure::a_certificate_for_another_node_is_refused_at_start(quic).await;
}

/// QUIC needs no TCP listener: nothing answers TCP on the port, so no stream can bypass
/// the certificate check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_node_opens_no_tcp_port() {
    let ca = secure::TestCa::new();
    let (node, _events) = secure::node("node-0", quic, ca.certificates("node-0")).await;
    assert!(
        tokio::net::TcpStream::connect(node.local_addr())
            .await
            .is_err()
    );
    node.shutdown().await.unwrap();
}
