//! Two private network namespaces joined by a veth pair, for tests whose multicast must
//! never reach a real interface. Removed on drop.

use std::process::Command;

/// Runs `ip ARGS`; the error says which command failed and why.
pub fn ip(args: &[&str]) -> Result<(), String> {
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

/// Two namespaces joined by a veth pair; removed on drop (which removes the veths too).
pub struct Namespaces {
    pub names: [String; 2],
    /// The pair's ends, the first in the first namespace; the first is deleted on drop
    /// too, in case setup failed before it moved.
    pub veths: [String; 2],
}

impl Namespaces {
    /// Namespaces `{prefix}{pid}a` and `…b` with `10.{subnet}.0.1/24` and `…2/24`, links
    /// up, multicast routed over the pair. Distinct prefixes and subnets let tests run at
    /// once.
    pub fn create(prefix: &str, subnet: u8) -> Result<Namespaces, String> {
        let tag = std::process::id() % 100_000;
        let (va, vb) = (format!("v{prefix}{tag}a"), format!("v{prefix}{tag}b"));
        let ns = Namespaces {
            names: [format!("serf{prefix}{tag}a"), format!("serf{prefix}{tag}b")],
            veths: [va.clone(), vb.clone()],
        };
        for n in &ns.names {
            ip(&["netns", "add", n])?;
        }
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        let addrs = [format!("10.{subnet}.0.1/24"), format!("10.{subnet}.0.2/24")];
        for (n, (v, addr)) in ns.names.iter().zip([(&va, &addrs[0]), (&vb, &addrs[1])]) {
            ip(&["link", "set", v, "netns", n])?;
            ip(&["-n", n, "addr", "add", addr, "dev", v])?;
            ip(&["-n", n, "link", "set", v, "up"])?;
            ip(&["-n", n, "link", "set", "lo", "up"])?;
            ip(&["-n", n, "route", "add", "224.0.0.0/4", "dev", v])?;
        }
        Ok(ns)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = ip(&["netns", "del", n]);
        }
        // Normally gone with its namespace; still here only if setup stopped half-way.
        let _ = ip(&["link", "del", &self.veths[0]]);
    }
}
