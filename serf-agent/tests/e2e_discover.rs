//! `serf agent -discover`: two agents, each in a private network namespace this test
//! creates (joined by a veth pair, so multicast never reaches a real interface), find
//! and join each other by mDNS with no `-join`. Skipped, saying why, without root or
//! network namespaces.

mod cli;

use cli::*;
use std::process::{Child, Command, Stdio};

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two namespaces joined by a veth pair; removed on drop (the veths go with them).
struct Namespaces {
    names: [String; 2],
    veth: String,
}

impl Namespaces {
    fn create() -> Result<Namespaces, String> {
        let tag = std::process::id() % 100_000;
        let (va, vb) = (format!("sag{tag}a"), format!("sag{tag}b"));
        let ns = Namespaces {
            names: [format!("serfag{tag}a"), format!("serfag{tag}b")],
            veth: va.clone(),
        };
        for n in &ns.names {
            ip(&["netns", "add", n])?;
        }
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        for (n, (v, addr)) in ns
            .names
            .iter()
            .zip([(&va, "10.214.0.1/24"), (&vb, "10.214.0.2/24")])
        {
            ip(&["link", "set", v, "netns", n])?;
            ip(&["-n", n, "addr", "add", addr, "dev", v])?;
            ip(&["-n", n, "link", "set", v, "up"])?;
            ip(&["-n", n, "link", "set", "lo", "up"])?;
        }
        Ok(ns)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.veth]);
        for n in &self.names {
            let _ = ip(&["netns", "del", n]);
        }
    }
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn agents_find_each_other_by_mdns() {
    let ns = match Namespaces::create() {
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
