//! `serf agent -discover`: two agents, each in a private network namespace this test
//! creates (joined by a veth pair, so multicast never reaches a real interface), find
//! and join each other by mDNS with no `-join`. Skipped, saying why, without root or
//! network namespaces.

mod cli;

mod netns;

use cli::*;
use netns::Namespaces;
use std::process::{Child, Command, Stdio};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn agents_find_each_other_by_mdns() {
    let ns = match Namespaces::create("ag", 214) {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("skipping: network namespaces unavailable ({e}); needs root and `ip netns`");
            return;
        }
    };
    let dir = tempdir();
    let bin = ours();
    let mut agents = Vec::new();
    for (i, (n, addr)) in ns
        .names
        .iter()
        .zip(["10.214.0.1", "10.214.0.2"])
        .enumerate()
    {
        let log = std::fs::File::create(dir.path().join(format!("m{i}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", n])
            .arg(&bin)
            .args([
                "agent",
                &format!("-node=m{i}"),
                &format!("-bind={addr}:7946"),
                "-rpc-addr=127.0.0.1:7373",
                "-discover=e2e",
                "-profile=local",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        agents.push(Kill(child));
    }
    let members_in = |n: &str| {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", n]).arg(&bin).arg("members");
        run(cmd).1
    };
    let found = (|| {
        let deadline = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < deadline {
            let (a, b) = (members_in(&ns.names[0]), members_in(&ns.names[1]));
            if a.lines().filter(|l| l.contains("alive")).count() == 2
                && b.lines().filter(|l| l.contains("alive")).count() == 2
            {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        false
    })();
    let logs: Vec<String> = (0..2)
        .map(|i| std::fs::read_to_string(dir.path().join(format!("m{i}.log"))).unwrap_or_default())
        .collect();
    drop(agents);
    assert!(
        found,
        "agents did not discover each other:\n{}\n---\n{}",
        logs[0], logs[1]
    );
    assert!(
        logs.iter().any(|l| l.contains("agent.mdns: Joined")),
        "{logs:?}"
    );
}
