//! A node out of file descriptors: accepting fails while connections wait in the
//! kernel's backlog. The node must neither spin on the failing accept nor stop
//! accepting for good. A test binary of its own, since the limit is the process's.

#![cfg(target_os = "linux")]

use serf_driver_tokio::Builder;
use serf_proto::serf::Config;
use std::time::Duration;
use tokio::time::{Instant, sleep};

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Lowers the process's soft limit on open files; returns the limits before.
fn set_soft_fd_limit(limit: u64) -> Rlimit {
    let old = getrlimit(Resource::Nofile);
    let new = Rlimit {
        current: Some(limit),
        maximum: old.maximum,
    };
    setrlimit(Resource::Nofile, new).expect("lowering the soft limit on open files");
    old
}

/// The highest file descriptor open in this process.
fn highest_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_out_of_file_descriptors_neither_spins_nor_stops_accepting() {
    let (a, _events) = Builder::new("a")
        .bind("127.0.0.1:0".parse().unwrap())
        .config(Config::local())
        .start()
        .await
        .unwrap();
    // Sockets made now, connected once no descriptor is left.
    let sockets: Vec<_> = (0..4)
        .map(|_| tokio::net::TcpSocket::new_v4().unwrap())
        .collect();
    let old = set_soft_fd_limit(highest_fd() + 1);
    // Fill any gap below the limit, so the node's accept finds none.
    let mut fillers = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        fillers.push(f);
    }
    let mut conns = Vec::new();
    for s in sockets {
        conns.push(s.connect(a.local_addr()).await.unwrap());
    }
    sleep(Duration::from_millis(100)).await;
    let before = a.driver_stats();
    sleep(Duration::from_millis(500)).await;
    let after = a.driver_stats();
    drop(fillers);
    setrlimit(Resource::Nofile, old).expect("restoring the limit on open files");
    let wakeups = after.task_wakeups - before.task_wakeups;
    // Gossip every 100 ms and a probe a second give tens of wake-ups; a spin, millions.
    assert!(wakeups < 2_000, "{wakeups} wake-ups in 500 ms");
    assert!(
        after.accept_errors > 0,
        "accepting failed for want of descriptors"
    );
    // With descriptors back, the waiting connections are taken.
    let start = Instant::now();
    while a.driver_stats().streams_accepted < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the node accepts again once descriptors are free"
        );
        sleep(Duration::from_millis(50)).await;
    }
    drop(conns);
    a.shutdown().await.unwrap();
}
