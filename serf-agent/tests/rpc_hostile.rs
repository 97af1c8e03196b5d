//! Hostile RPC input closes that connection only: garbage, truncated msgpack, huge
//! declared lengths, deep nesting, and a flood of connections leave the agent serving
//! everyone else.

mod common;

use common::*;
use serf_agent::rpc::msgpack::Value;

/// A well-behaved client still gets served.
async fn still_serves(a: &TestAgent) {
    let mut c = Raw::connect(a.rpc).await;
    c.handshake(1).await;
    c.send(&[header("members", 2)]).await;
    assert_eq!(c.header(2).await, "");
    assert!(c.read().await.unwrap().get("Members").is_some());
}

#[tokio::test]
async fn garbage_closes_the_connection() {
    let a = start_agent("a", None).await;
    let mut c = Raw::connect(a.rpc).await;
    c.write(&[0xc1, 0xff, 0x00, 0x13, 0x37]).await;
    assert!(c.closed().await);
    // A header that is not a map.
    let mut c = Raw::connect(a.rpc).await;
    c.send(&[Value::Array(vec![Value::Uint(1)])]).await;
    assert!(c.closed().await);
    // A header whose Seq is a string.
    let mut c = Raw::connect(a.rpc).await;
    c.send(&[map(&[("Command", s("handshake")), ("Seq", s("one"))])])
        .await;
    assert!(c.closed().await);
    still_serves(&a).await;
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_closes_without_a_reply() {
    let a = start_agent("a", None).await;
    let mut c = Raw::connect(a.rpc).await;
    c.handshake(1).await;
    c.send(&[header("event", 2), Value::Array(vec![])]).await;
    assert!(c.closed().await);
    let mut c = Raw::connect(a.rpc).await;
    c.handshake(1).await;
    c.send(&[header("event", 2), map(&[("Name", Value::Uint(5))])])
        .await;
    assert!(c.closed().await);
    still_serves(&a).await;
}

#[tokio::test]
async fn truncated_msgpack_then_close_is_harmless() {
    let a = start_agent("a", None).await;
    let mut c = Raw::connect(a.rpc).await;
    // A map header promising two entries, then the end of the stream.
    c.write(&[0x82, 0xa7]).await;
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut c.sock).await;
    assert!(c.closed().await);
    still_serves(&a).await;
}

#[tokio::test]
async fn huge_declared_lengths_close_at_once_without_allocating() {
    let a = start_agent("a", None).await;
    for bytes in [
        &[0xdb, 0xff, 0xff, 0xff, 0xff][..], // str32 of 4 GiB
        &[0xc6, 0x7f, 0xff, 0xff, 0xff],     // bin32 of 2 GiB
        &[0xdd, 0xff, 0xff, 0xff, 0xff],     // array32 of 4 G entries
        &[0xdf, 0x10, 0x00, 0x00, 0x00],     // map32 of 256 M entries
    ] {
        let mut c = Raw::connect(a.rpc).await;
        c.write(bytes).await;
        assert!(c.closed().await, "{bytes:02x?} must close the connection");
    }
    // Nesting deeper than the limit.
    let mut c = Raw::connect(a.rpc).await;
    c.write(&[0x91; 200]).await;
    assert!(c.closed().await);
    still_serves(&a).await;
}

#[tokio::test]
async fn a_flood_of_connections_is_capped_and_the_agent_recovers() {
    let a = start_agent("a", None).await;
    let cap = serf_agent::agent::MAX_RPC_CONNECTIONS;
    let mut held = Vec::new();
    for _ in 0..cap + 20 {
        held.push(Raw::connect(a.rpc).await);
    }
    // Past the cap, connections are closed at once; the first `cap` stay open.
    let mut closed = 0;
    for c in held.iter_mut().skip(cap) {
        if c.closed().await {
            closed += 1;
        }
    }
    assert_eq!(closed, 20);
    let mut first = held.swap_remove(0);
    first.handshake(1).await;
    drop(held);
    // Once the flood is gone, new clients are served.
    eventually("the agent to serve again", async || {
        let mut c = Raw::connect(a.rpc).await;
        c.send(&[header("handshake", 1), map(&[("Version", Value::Uint(1))])])
            .await;
        c.read().await.is_some()
    })
    .await;
    still_serves(&a).await;
}

#[tokio::test]
async fn a_slowly_trickled_request_is_still_served() {
    let a = start_agent("a", None).await;
    let mut c = Raw::connect(a.rpc).await;
    let mut w = serf_agent::rpc::msgpack::Writer::new();
    w.value(&header("handshake", 1))
        .value(&map(&[("Version", Value::Uint(1))]));
    for b in w.buf.clone() {
        c.write(&[b]).await;
    }
    assert_eq!(c.header(1).await, "");
}
