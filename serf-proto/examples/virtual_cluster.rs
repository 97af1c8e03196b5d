//! A 20-node cluster in virtual time: everyone joins through one seed, one node crashes,
//! and each survivor reports when it declared the failure.
//!
//! Run: `cargo run --release -p serf-proto --example virtual_cluster -- [nodes] [seed]`

#[path = "../tests/harness/mod.rs"]
mod harness;

use serf_proto::memberlist::{Config, Event, NodeState};
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    assert!(n >= 3, "use at least 3 nodes");

    let mut c = harness::MlCluster::new(seed);
    for i in 0..n {
        c.add(&format!("node-{i}"), Config::lan());
    }
    for i in 1..n {
        c.join(i, 0);
    }
    let took = c.run_until_cond(Duration::from_secs(60), |c| {
        c.hosts.iter().all(|h| h.node.num_alive() == n)
    });
    println!(
        "{n} nodes converged {:.2}s after joining (virtual time)",
        took.as_secs_f64()
    );

    let victim = n - 1;
    let name = format!("node-{victim}");
    let crashed_at = c.now;
    c.crash(victim);
    println!("{name} crashes at {}", crashed_at);
    c.run_until_cond(Duration::from_secs(120), |c| {
        c.all_see(&name, NodeState::Dead)
    });

    let mut latencies: Vec<f64> = (0..victim)
        .map(|i| {
            c.hosts[i]
                .events
                .iter()
                .find_map(|(t, e)| match e {
                    Event::NodeLeft(node) if node.name().as_str() == name => {
                        Some((*t - crashed_at).as_secs_f64())
                    }
                    _ => None,
                })
                .expect("every survivor reports the failure")
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    println!(
        "failure detected: first node after {:.2}s, median {:.2}s, all {} survivors after {:.2}s",
        latencies[0],
        latencies[latencies.len() / 2],
        latencies.len(),
        latencies[latencies.len() - 1]
    );
    let sent: u64 = c.hosts.iter().map(|h| h.node.metrics().packets_sent).sum();
    let bytes: u64 = c.hosts.iter().map(|h| h.node.metrics().bytes_sent).sum();
    let secs = c.now.as_duration().as_secs_f64();
    println!(
        "traffic: {:.1} packets and {:.0} bytes per node per second over {:.0}s",
        sent as f64 / n as f64 / secs,
        bytes as f64 / n as f64 / secs,
        secs
    );
}
