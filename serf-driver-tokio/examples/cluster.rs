//! Five Serf nodes on 127.0.0.1: they join, one is killed and the time until every other
//! node holds it failed is shown, a user event and a query go round, and each node's view
//! is printed with timings.
//!
//! ```sh
//! cargo run --release -p serf-driver-tokio --example cluster
//! ```

use serf_driver_tokio::{Builder, Events, SerfHandle};
use serf_proto::serf::{Config, Event, MemberStatus, QueryParams};
use std::time::Duration;
use tokio::time::{Instant, sleep};

const NODES: usize = 5;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The local-network profile: probes every second, gossip every 100 ms.
    let config = Config::local();
    let t0 = Instant::now();
    let mut nodes: Vec<(SerfHandle, Events)> = Vec::new();
    for i in 0..NODES {
        let node = Builder::new(format!("node-{i}"))
            .bind("127.0.0.1:0".parse()?)
            .config(config.clone())
            .start()
            .await?;
        println!("node-{i} listening on {}", node.0.local_addr());
        nodes.push(node);
    }
    let seed = nodes[0].0.local_addr();
    for (h, _) in &nodes[1..] {
        h.join(&[seed], false).await?;
    }
    let took = wait(|| {
        nodes
            .iter()
            .all(|(h, _)| h.members().count(MemberStatus::Alive) == NODES)
    })
    .await;
    println!("\nall {NODES} views complete {took:.2?} after the first join");
    print_views(&nodes);

    // Every node answers the query "uptime" and logs user events, in the background.
    let (handles, events): (Vec<SerfHandle>, Vec<Events>) = nodes.into_iter().unzip();
    for (h, mut ev) in handles.iter().cloned().zip(events) {
        tokio::spawn(async move {
            while let Some(e) = ev.recv().await {
                match e {
                    Event::User(u) => println!(
                        "  {} got user event {:?} ({} bytes) at {:.2?}",
                        h.name(),
                        u.name,
                        u.payload.len(),
                        t0.elapsed()
                    ),
                    Event::Query(q) if q.name == "uptime" => {
                        let answer = format!("{:.1?}", t0.elapsed());
                        let _ = h.respond(q.handle, answer.into_bytes()).await;
                    }
                    _ => {}
                }
            }
        });
    }

    println!("\nnode-1 fires user event \"deploy\":");
    let sent = Instant::now();
    handles[1].user_event("deploy", &b"v2.1"[..], false).await?;
    sleep(Duration::from_millis(500)).await;
    println!("  (sent at {:.2?})", sent.duration_since(t0));

    println!("\nnode-0 asks everyone \"uptime\":");
    let asked = Instant::now();
    let (answers, complete) = handles[0]
        .query("uptime", Vec::new(), QueryParams::default())
        .await?
        .collect()
        .await;
    for (from, payload) in &answers {
        println!("  {from}: {}", String::from_utf8_lossy(payload));
    }
    println!(
        "  {} answers in {:.2?}{}",
        answers.len(),
        asked.elapsed(),
        if complete {
            ", every member answered"
        } else {
            ""
        }
    );

    println!("\nkilling node-4 (no leave)");
    handles[4].shutdown().await?;
    let others = &handles[..4];
    let took = wait(|| {
        others
            .iter()
            .all(|h| h.members().status_of("node-4") == Some(MemberStatus::Failed))
    })
    .await;
    println!("node-4 failed in every other view {took:.2?} after the kill");

    println!("\nnode-3 leaves gracefully");
    handles[3].leave().await?;
    let took = wait(|| {
        handles[..3]
            .iter()
            .all(|h| h.members().status_of("node-3") == Some(MemberStatus::Left))
    })
    .await;
    println!("node-3 left in every other view {took:.2?} after its leave completed");
    // node-4 is gone; its last view is of no interest.
    let views: Vec<(SerfHandle, ())> = handles[..4].iter().cloned().map(|h| (h, ())).collect();
    print_views(&views);
    for h in &handles {
        h.shutdown().await?;
    }
    Ok(())
}

/// Polls `cond` every 10 ms (for at most a minute); returns how long it took.
async fn wait(mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() && start.elapsed() < Duration::from_secs(60) {
        sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

fn print_views<T>(nodes: &[(SerfHandle, T)]) {
    println!("views:");
    for (h, _) in nodes {
        let view = h.members();
        let mut members: Vec<String> = view
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.status.as_str()))
            .collect();
        members.sort();
        println!("  {:<7} {}", h.name().as_str(), members.join(" "));
    }
}
