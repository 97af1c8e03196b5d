//! The story both secure stream transports (TLS over TCP, QUIC) must tell on 127.0.0.1,
//! shared by `tokio_tls.rs` and `tokio_quic.rs`: five nodes with certificates of one CA
//! converge and pass a small and a large user event over authenticated streams, and a
//! node with a certificate of another CA cannot join.

use bytes::Bytes;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serf_driver_tokio::{Builder, Certificates, Error, Events, SerfHandle};
use serf_proto::serf::{Config, Event, MemberStatus};
use std::time::Duration;
use tokio::time::{Instant, sleep, timeout};

/// A cluster CA made for the test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    /// The CA, and a certificate naming `node` signed by it, as an operator's PEM files
    /// would hold them.
    pub fn certificates(&self, node: &str) -> Certificates {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![node.to_string()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        Certificates::from_pem(
            self.issuer.pem().as_bytes(),
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
        )
        .unwrap()
    }
}

/// Chooses the transport under test on a builder.
pub type Secure = fn(Builder, Certificates) -> Builder;

/// Local timings, and user events up to 4 KiB, so a large one must go over streams.
/// Push-pull every second: gossip alone may miss a node in a cluster this small (each
/// broadcast goes out a few times only), and anti-entropy then catches it up within a
/// second instead of the profile's 15.
pub fn config() -> Config {
    let mut c = Config::local();
    c.user_event_size_limit = 4096;
    c.memberlist.push_pull_interval = Duration::from_secs(1);
    c
}

pub async fn node(name: &str, secure: Secure, certs: Certificates) -> (SerfHandle, Events) {
    secure(Builder::new(name), certs)
        .bind("127.0.0.1:0".parse().unwrap())
        .config(config())
        .start()
        .await
        .unwrap()
}

/// Polls `cond` every 50 ms; fails the test after `limit`.
pub async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        sleep(Duration::from_millis(50)).await;
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

async fn every_node_gets(nodes: &mut [(SerfHandle, Events)], name: &str, payload: &[u8]) {
    for (i, (_, events)) in nodes.iter_mut().enumerate() {
        let got = timeout(Duration::from_secs(20), next_user_event(events))
            .await
            .unwrap_or_else(|_| panic!("node-{i} did not get {name}"));
        assert_eq!((got.0.as_str(), &got.1[..]), (name, payload));
    }
}

/// The whole story for one transport.
pub async fn five_nodes_converge_pass_events_and_refuse_another_ca(secure: Secure) {
    let ca = TestCa::new();
    let mut nodes = Vec::new();
    for i in 0..5 {
        let name = format!("node-{i}");
        nodes.push(node(&name, secure, ca.certificates(&name)).await);
    }
    // Each join is a push-pull over a stream: only an authenticated one exists.
    let seed = nodes[0].0.local_addr();
    for (h, _) in &nodes[1..] {
        h.join(&[seed], false).await.unwrap();
    }
    wait_until(
        Duration::from_secs(20),
        "every view holds every node alive",
        || {
            nodes
                .iter()
                .all(|(h, _)| h.members().count(MemberStatus::Alive) == 5)
        },
    )
    .await;
    let seed_stats = nodes[0].0.driver_stats();
    assert!(
        seed_stats.secure_streams_accepted >= 4,
        "the seed took the four joins' push-pulls over secure streams: {seed_stats:?}"
    );
    assert_eq!(
        seed_stats.secure_streams_accepted,
        seed_stats.streams_accepted
    );
    assert_eq!(seed_stats.handshakes_failed, 0);
    for (h, _) in &nodes[1..] {
        assert!(h.driver_stats().secure_streams_opened >= 1);
    }

    // A small event goes by gossip; a 3 KiB one is too large for a packet and can only
    // travel over (secure) streams.
    nodes[2]
        .0
        .user_event("deploy", &b"v2"[..], false)
        .await
        .unwrap();
    every_node_gets(&mut nodes, "deploy", b"v2").await;
    let large = vec![0x5a; 3000];
    let before: u64 = nodes
        .iter()
        .map(|(h, _)| h.driver_stats().secure_streams_accepted)
        .sum();
    nodes[3]
        .0
        .user_event("config", large.clone(), false)
        .await
        .unwrap();
    every_node_gets(&mut nodes, "config", &large).await;
    let after: u64 = nodes
        .iter()
        .map(|(h, _)| h.driver_stats().secure_streams_accepted)
        .sum();
    assert!(after > before, "the large event came over secure streams");

    // A node whose certificate comes from another CA cannot join, and both sides count
    // the failed handshake.
    let other = TestCa::new();
    let (intruder, _events) = node("intruder", secure, other.certificates("intruder")).await;
    match intruder.join(&[seed], false).await {
        Err(Error::JoinFailed(_)) => {}
        other => panic!("a node of another CA joined: {other:?}"),
    }
    assert!(intruder.driver_stats().handshakes_failed >= 1);
    let reason = intruder.last_handshake_failure().expect("a reason is kept");
    assert!(reason.contains(&seed.to_string()), "{reason}");
    wait_until(
        Duration::from_secs(5),
        "the seed counts the refusal",
        || nodes[0].0.driver_stats().handshakes_failed >= 1,
    )
    .await;
    sleep(Duration::from_millis(300)).await;
    for (h, _) in &nodes {
        assert_eq!(h.members().get("intruder"), None);
    }
    intruder.shutdown().await.unwrap();
    for (h, _) in &nodes {
        h.shutdown().await.unwrap();
    }
}

/// A certificate that names another node is refused at start, with a message that says
/// what to fix.
pub async fn a_certificate_for_another_node_is_refused_at_start(secure: Secure) {
    let ca = TestCa::new();
    let err = secure(Builder::new("node-a"), ca.certificates("node-b"))
        .bind("127.0.0.1:0".parse().unwrap())
        .config(config())
        .start()
        .await
        .expect_err("started with another node's certificate");
    let msg = err.to_string();
    assert!(
        msg.contains("node-a") && msg.contains("subject alternative name"),
        "{msg}"
    );
}
