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

/// Junk on the shared port, much of it looking like QUIC (fixed bit set, so it goes to
/// the QUIC endpoint): dropped, never a panic, and the node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_on_the_shared_port_leaves_a_quic_node_serving() {
    let ca = secure::TestCa::new();
    let (node, _events) = secure::node("node-0", quic, ca.certificates("node-0")).await;
    let target = node.local_addr();
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut x: u32 = 987_654_321;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    };
    for i in 0..10_000u32 {
        let len = 1 + (i as usize * 7919) % 1400;
        let mut junk: Vec<u8> = (0..len).map(|_| next()).collect();
        match i % 3 {
            // A QUIC v1 long header (Initial), then junk.
            0 if len > 5 => junk[..5].copy_from_slice(&[0xc0, 0, 0, 0, 1]),
            // A short header.
            1 => junk[0] = 0x40 | (junk[0] & 0x3f),
            _ => {}
        }
        let _ = udp.send_to(&junk, target).await;
    }
    let (late, _late_events) = secure::node("late", quic, ca.certificates("late")).await;
    late.join(&[target], false).await.unwrap();
    let (m, _, d) = node.metrics().await.unwrap();
    println!(
        "received {} datagrams; malformed gossip dropped {}; QUIC queue drops {}",
        d.datagrams_received, m.dropped_malformed, d.quic_datagrams_dropped
    );
    assert!(d.datagrams_received >= 1000);
    assert_eq!(d.secure_streams_accepted, 1);
    late.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

/// The QUIC endpoint shares the socket but never keeps it: the port is free the moment
/// `shutdown` returns, even though quinn's tasks were still sending the connections'
/// closes while the node stopped (`shutdown` waits until nothing holds the socket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_node_frees_its_port_at_shutdown() {
    let ca = secure::TestCa::new();
    let (a, _e) = secure::node("a", quic, ca.certificates("a")).await;
    let (b, _eb) = secure::node("b", quic, ca.certificates("b")).await;
    b.join(&[a.local_addr()], false).await.unwrap();
    let addr = a.local_addr();
    a.shutdown().await.unwrap();
    let (again, _e2) = Builder::new("a")
        .quic(ca.certificates("a"))
        .bind(addr)
        .config(secure::config())
        .start()
        .await
        .expect("the port is free at once");
    b.join(&[addr], false).await.unwrap();
    again.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// QUIC handshakes from addresses that never answer (spoofed, in an attack: here, relays
/// that pass a node's packets on to the victim and drop the victim's replies) must not
/// take the victim's handshake slots: members then could not open streams to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_from_addresses_that_never_answer_take_no_slot() {
    const SLOTS: usize = 8;
    let ca = secure::TestCa::new();
    let mut config = secure::config();
    config.memberlist.max_inbound_streams = SLOTS;
    let (victim, _ev) = Builder::new("victim")
        .quic(ca.certificates("victim"))
        .bind("127.0.0.1:0".parse().unwrap())
        .config(config)
        .start()
        .await
        .unwrap();
    let target = victim.local_addr();
    // One relay per slot, and a few more: each a source address of its own.
    let mut relays = tokio::task::JoinSet::new();
    let mut relay_addrs = Vec::new();
    for _ in 0..SLOTS + 4 {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        relay_addrs.push(socket.local_addr().unwrap());
        relays.spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                if from != target {
                    let _ = socket.send_to(&buf[..n], target).await;
                }
            }
        });
    }
    // The attacker: a node joining through every relay at once.
    let (attacker, _ea) = secure::node("attacker", quic, ca.certificates("attacker")).await;
    let attack = tokio::spawn(async move {
        let _ = attacker.join(&relay_addrs, false).await;
        attacker
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // A member can still open a stream to the victim.
    let (member, _em) = secure::node("member", quic, ca.certificates("member")).await;
    let joined = member.join(&[target], false).await;
    let stats = victim.driver_stats();
    println!(
        "handshakes refused {}, failed {}",
        stats.handshakes_refused, stats.handshakes_failed
    );
    assert_eq!(joined, Ok(1), "the member joined through the victim");
    relays.abort_all();
    attack.await.unwrap().shutdown().await.unwrap();
    member.shutdown().await.unwrap();
    victim.shutdown().await.unwrap();
}

/// QUIC-looking datagrams longer than QUIC's endpoint reads are junk: dropped and counted
/// before they are copied, so the queue to the endpoint holds small packets only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_quic_looking_datagrams_are_dropped_before_queueing() {
    let ca = secure::TestCa::new();
    let (node, _events) = secure::node("node-0", quic, ca.certificates("node-0")).await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut big = vec![0u8; 30_000];
    big[..5].copy_from_slice(&[0xc0, 0, 0, 0, 1]);
    for _ in 0..20 {
        udp.send_to(&big, node.local_addr()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    secure::wait_until(
        std::time::Duration::from_secs(5),
        "every oversized datagram dropped",
        || node.driver_stats().quic_datagrams_dropped == 20,
    )
    .await;
    node.shutdown().await.unwrap();
}
