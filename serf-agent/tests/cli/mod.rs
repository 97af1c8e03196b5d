//! Shared by the end-to-end tests: real `serf` processes on 127.0.0.1, each killed when
//! its guard is dropped, and the CLI run as a user would.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Every wait is bounded by this (failure detection on the LAN profile included).
pub const WAIT: Duration = Duration::from_secs(40);

/// Our binary.
pub fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_serf"))
}

/// HashiCorp's binary, if installed (Debian package `serf`).
pub fn hashicorp() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/serf");
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "skipping: HashiCorp's serf is not installed at /usr/bin/serf (apt install serf)"
        );
        None
    }
}

/// A loopback port free for both UDP and TCP right now (the OS picked it).
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// A running agent; killed (SIGKILL) and reaped on drop.
pub struct AgentProc {
    pub child: Child,
    pub name: String,
    pub bind: String,
    pub rpc: String,
    pub log: PathBuf,
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AgentProc {
    /// Sends `sig` (e.g. "INT") to the agent.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts `bin agent -node=NAME -bind=… -rpc-addr=…` plus `extra` flags, logging to a
/// file in `dir`, and waits until its RPC answers.
pub fn start(bin: &Path, dir: &Path, name: &str, extra: &[&str]) -> AgentProc {
    let (bind, rpc) = (addr(free_port()), addr(free_port()));
    start_at(bin, dir, name, &bind, &rpc, extra)
}

pub fn start_at(
    bin: &Path,
    dir: &Path,
    name: &str,
    bind: &str,
    rpc: &str,
    extra: &[&str],
) -> AgentProc {
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(bin)
        .arg("agent")
        .arg(format!("-node={name}"))
        .arg(format!("-bind={bind}"))
        .arg(format!("-rpc-addr={rpc}"))
        .args(extra)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn agent");
    let a = AgentProc {
        child,
        name: name.into(),
        bind: bind.into(),
        rpc: rpc.into(),
        log,
    };
    let rpc_addr: SocketAddr = rpc.parse().unwrap();
    eventually(&format!("{name}'s RPC to listen"), || {
        std::net::TcpStream::connect(rpc_addr).is_ok()
    });
    a
}

/// Runs `bin command -rpc-addr=RPC args…` (flags before arguments, as Go's flag package
/// requires); (exit code, stdout, stderr).
pub fn cli(bin: &Path, rpc: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(bin);
    cmd.arg(args[0])
        .arg(format!("-rpc-addr={rpc}"))
        .args(&args[1..]);
    run(cmd)
}

/// Runs a prepared command with a bounded wait.
pub fn run(mut cmd: Command) -> (i32, String, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn cli");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// `serf members` as (name, status) pairs, parsed from the text output.
pub fn members(bin: &Path, rpc: &str) -> Vec<(String, String)> {
    let (_, out, _) = cli(bin, rpc, &["members"]);
    out.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() >= 3).then(|| (cols[0].to_owned(), cols[2].to_owned()))
        })
        .collect()
}

pub fn status_of(bin: &Path, rpc: &str, name: &str) -> Option<String> {
    members(bin, rpc)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s)
}

/// Polls `f` until it holds or [`WAIT`] passes.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// A fresh temporary directory, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
