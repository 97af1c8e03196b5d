//! Real-network figures for the tokio driver on 127.0.0.1, LAN profile (Go's defaults):
//!
//! - a cluster of N nodes (default 32) joining at once through one seed: time from the
//!   first join until every view holds every node alive;
//! - a kill (no leave): time until every other view holds the node failed;
//! - user events: latency from the send to each node's receipt, p50 and max;
//! - how many datagrams per second one node handles (pings, each answered with an ack),
//!   against how many a bare echo socket handles from the same sender in the same run.
//!
//! ```sh
//! cargo run --release -p serf-driver-tokio --example bench -- [NODES] [EVENTS]
//! ```
//!
//! `scripts/fidelity-32.toml` is the same cluster in the simulator, for comparison.

use serf_driver_tokio::{Builder, Events, SerfHandle};
use serf_proto::serf::{Config, Event, MemberStatus};
use serf_proto::wire::{Ping, WireMessage};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::{Instant, sleep};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(32), |a| a.parse())?;
    let events: usize = args.next().map_or(Ok(20), |a| a.parse())?;
    println!("{n} nodes on 127.0.0.1, LAN profile\n");

    let mut nodes: Vec<(SerfHandle, Events)> = Vec::new();
    for i in 0..n {
        nodes.push(
            Builder::new(format!("node-{i}"))
                .bind("127.0.0.1:0".parse()?)
                .config(Config::default())
                .start()
                .await?,
        );
    }
    let seed = nodes[0].0.local_addr();
    let t = Instant::now();
    let joins: Vec<_> = nodes[1..]
        .iter()
        .map(|(h, _)| {
            let h = h.clone();
            tokio::spawn(async move { h.join(&[seed], false).await })
        })
        .collect();
    for j in joins {
        j.await??;
    }
    wait(|| {
        nodes
            .iter()
            .all(|(h, _)| h.members().count(MemberStatus::Alive) == n)
    })
    .await;
    let join = t.elapsed();
    println!(
        "join: every view complete {:.2} s after the joins started",
        secs(join)
    );

    // User events from node 1, one every 200 ms; each node notes when it got each.
    let (handles, event_streams): (Vec<SerfHandle>, Vec<Events>) = nodes.into_iter().unzip();
    let sent_at: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let mut receivers = Vec::new();
    for (i, mut ev) in event_streams.into_iter().enumerate() {
        receivers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(e) = ev.recv().await {
                if let Event::User(u) = e
                    && let Ok(k) = std::str::from_utf8(&u.payload)
                        .unwrap_or("")
                        .parse::<usize>()
                {
                    got.push((k, Instant::now()));
                }
            }
            (i, got)
        }));
    }
    for k in 0..events {
        sent_at.lock().unwrap().push(Instant::now());
        handles[1]
            .user_event("bench", k.to_string().into_bytes(), false)
            .await?;
        sleep(Duration::from_millis(200)).await;
    }
    sleep(Duration::from_secs(3)).await;

    // A kill, timed until every other view holds it failed.
    let victim = n - 1;
    let t = Instant::now();
    handles[victim].shutdown().await?;
    let name = format!("node-{victim}");
    wait(|| {
        handles[..victim]
            .iter()
            .all(|h| h.members().status_of(&name) == Some(MemberStatus::Failed))
    })
    .await;
    let kill = t.elapsed();
    println!(
        "kill: failed in all {} other views {:.2} s after the kill",
        n - 1,
        secs(kill)
    );

    for h in &handles {
        h.shutdown().await?;
    }
    let sent = sent_at.lock().unwrap().clone();
    let mut latencies = Vec::new();
    let mut missing = 0;
    for r in receivers {
        let (i, got) = r.await?;
        if i == 1 {
            continue; // the sender
        }
        for (k, at) in sent.iter().enumerate() {
            match got.iter().find(|(g, _)| *g == k) {
                Some((_, t)) => latencies.push(secs(t.duration_since(*at))),
                None if i == victim => {}
                None => missing += 1,
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "user events: {} receipts ({missing} missing), latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        latencies.len(),
        pct(0.5) * 1e3,
        pct(0.99) * 1e3,
        pct(1.0) * 1e3
    );

    flood().await?;
    Ok(())
}

/// Pings at one node as fast as one sender thread can send, for 3 s; then the same
/// sender at a bare socket that echoes each datagram (receive and answer, as the node
/// does), the most any driver could do on this socket.
async fn flood() -> Result<(), Box<dyn std::error::Error>> {
    const SECS: u64 = 3;
    let (node, _events) = Builder::new("target")
        .bind("127.0.0.1:0".parse()?)
        .config(Config::default())
        .start()
        .await?;
    let sink = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let sink_addr = sink.local_addr()?;
    let ping = |seq: u32| {
        let mut p = vec![1u8, 0];
        p.extend_from_slice(
            &Ping {
                seq,
                target: "",
                source_addr: None,
                source_name: "blaster",
            }
            .to_vec(),
        );
        p
    };
    let blast = |to: SocketAddr| {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let packet = ping(1);
        let thread = std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut sent = 0u64;
            while !s.load(Ordering::Relaxed) {
                if socket.send_to(&packet, to).is_ok() {
                    sent += 1;
                }
            }
            sent
        });
        (stop, thread)
    };

    let before = node.driver_stats();
    let (stop, thread) = blast(node.local_addr());
    sleep(Duration::from_secs(SECS)).await;
    stop.store(true, Ordering::Relaxed);
    let sent = thread.join().expect("sender");
    let after = node.driver_stats();
    let (metrics, _, _) = node.metrics().await?;
    let handled = after.datagrams_received - before.datagrams_received;
    node.shutdown().await?;

    let counter = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        let mut n = 0u64;
        let deadline = Instant::now() + Duration::from_secs(SECS);
        // An echo: receive, then answer, as the node answers each ping with an ack.
        while let Ok(Ok((len, from))) =
            tokio::time::timeout_at(deadline, sink.recv_from(&mut buf)).await
        {
            let _ = sink.try_send_to(&buf[..len], from);
            n += 1;
        }
        n
    });
    let (stop, thread) = blast(sink_addr);
    sleep(Duration::from_secs(SECS)).await;
    stop.store(true, Ordering::Relaxed);
    let sent_bare = thread.join().expect("sender");
    let bare = counter.await?;
    println!(
        "datagrams: the node handled {:.0}/s (each ping decoded and answered; {} acks sent) of {:.0}/s sent; \
         a bare echo socket handled {:.0}/s of {:.0}/s sent: {:.0}% of the socket's rate",
        handled as f64 / SECS as f64,
        metrics.packets_sent,
        sent as f64 / SECS as f64,
        bare as f64 / SECS as f64,
        sent_bare as f64 / SECS as f64,
        100.0 * handled as f64 / bare.max(1) as f64
    );
    Ok(())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Polls `cond` every 5 ms for at most two minutes.
async fn wait(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() && start.elapsed() < Duration::from_secs(120) {
        sleep(Duration::from_millis(5)).await;
    }
}
