//! mDNS discovery between two agents, each in a private network namespace this test
//! creates and removes, joined by a veth pair: multicast never reaches a real interface.
//!
//! The test re-runs this test binary inside each namespace (`ip netns exec`), selecting
//! the ignored `mdns_child` test with an environment variable that tells it who it is.
//! Without root or network namespaces it is skipped, saying why.

mod netns;

use netns::Namespaces;
use serf_agent::discover::{DiscoverConfig, start_discovery};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "SERF_MDNS_TEST_CHILD";
const CLUSTER: &str = "nstest";

/// Why the test cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    if uid != "0" {
        return Some(format!(
            "needs root to create network namespaces (uid {uid})"
        ));
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("the `ip` command (iproute2) is not installed".to_owned());
    }
    None
}

struct Kill(Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn two_agents_find_each_other_in_private_network_namespaces() {
    if let Some(why) = unavailable() {
        println!("skipped: {why}");
        return;
    }
    let ns = match Namespaces::create("md", 213) {
        Ok(ns) => ns,
        Err(why) => {
            println!("skipped: network namespaces are unavailable here: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    let exe = std::env::current_exe().unwrap();
    let roles = [
        (
            "a",
            "10.213.0.1:7946",
            "10.213.0.2:7946",
            ns.veths[0].clone(),
        ),
        (
            "b",
            "10.213.0.2:7946",
            "10.213.0.1:7946",
            ns.veths[1].clone(),
        ),
    ];
    let mut children = Kill(Vec::new());
    let mut outputs = Vec::new();
    for (ns_name, (name, me, peer, iface)) in ns.names.iter().zip(&roles) {
        let out = dir.path().join(format!("found-{name}"));
        let spec = format!(
            "{name}|{me}|{peer}|{iface}|{}|{}",
            out.display(),
            done.display()
        );
        let child = Command::new("ip")
            .args(["netns", "exec", ns_name])
            .arg(&exe)
            .args(["--exact", "mdns_child", "--ignored", "--nocapture"])
            .env(CHILD_ENV, spec)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        children.0.push(child);
        outputs.push((out, *peer));
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    while !outputs.iter().all(|(o, _)| o.exists()) {
        assert!(
            Instant::now() < deadline,
            "discovery did not complete in time"
        );
        for c in &mut children.0 {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(
                    status.success() || outputs.iter().all(|(o, _)| o.exists()),
                    "a child failed: {status}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(&done, "").unwrap();
    for c in &mut children.0 {
        let status = c.wait().unwrap();
        assert!(status.success(), "child: {status}");
    }
    for (out, peer) in outputs {
        let text = std::fs::read_to_string(&out).unwrap();
        let batches: Vec<Vec<SocketAddr>> = text
            .lines()
            .map(|l| {
                l.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().unwrap())
                    .collect()
            })
            .collect();
        let all: Vec<SocketAddr> = batches.iter().flatten().copied().collect();
        assert_eq!(
            all,
            vec![peer.parse::<SocketAddr>().unwrap()],
            "{}: {text}",
            out.display()
        );
    }
    drop(ns);
}

/// One side of the test above, run inside its namespace: announce, browse until the peer
/// is found, write the batches received, then keep announcing until the parent says done.
#[test]
#[ignore = "run inside a network namespace by two_agents_find_each_other_in_private_network_namespaces"]
fn mdns_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [name, me, peer, iface, out, done] = parts[..] else {
        panic!("bad {CHILD_ENV}: {spec}");
    };
    let (me, peer): (SocketAddr, SocketAddr) = (me.parse().unwrap(), peer.parse().unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_discovery, mut batches) = start_discovery(
            DiscoverConfig {
                cluster: CLUSTER.to_owned(),
                node_name: name.to_owned(),
                advertise: me,
                interface: Some(iface.to_owned()),
                disable_ipv4: false,
                disable_ipv6: true,
                // Restart the browse often, so the test also covers re-polling.
                poll_interval: Duration::from_secs(1),
            },
            Arc::new(|level, line| eprintln!("[{}] {line}", level.as_str())),
        )
        .unwrap();
        let mut lines = Vec::new();
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(batch) = batches.recv().await {
                let line: Vec<String> = batch.iter().map(ToString::to_string).collect();
                lines.push(line.join(" "));
                if batch.contains(&peer) {
                    return;
                }
            }
        })
        .await;
        assert!(found.is_ok(), "{name} did not find {peer}");
        // Batches after the peer, across restarted browses, must not repeat it: wait
        // through a few polls for any.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        while let Ok(batch) = batches.try_recv() {
            let line: Vec<String> = batch.iter().map(ToString::to_string).collect();
            lines.push(line.join(" "));
        }
        write_atomically(Path::new(out), &(lines.join("\n") + "\n"));
        // Keep announcing until the other side has found us too.
        let done = PathBuf::from(done);
        for _ in 0..600 {
            if done.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}
