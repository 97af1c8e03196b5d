//! Shared by the RPC tests: an in-process agent on loopback, and a reference client
//! written from go-serf-agent.md §1 that speaks raw msgpack, so the server is checked
//! against the document rather than against our own client.
#![allow(dead_code)]

use serf_agent::agent::Agent;
use serf_agent::config::AgentConfig;
use serf_agent::log::Logger;
use serf_agent::rpc::msgpack::{Limits, Scanner, Value, Writer, decode};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestAgent {
    pub rpc: SocketAddr,
    pub gossip: SocketAddr,
    pub handle: serf_driver_tokio::SerfHandle,
    pub logger: Logger,
    /// The Prometheus endpoint, when the config asks for one.
    pub prometheus: Option<SocketAddr>,
    pub run: JoinHandle<i32>,
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.run.abort();
    }
}

/// An agent named `name` on 127.0.0.1 with OS-picked ports.
pub async fn start_agent(name: &str, auth: Option<&str>) -> TestAgent {
    start_agent_with(AgentConfig {
        node_name: name.into(),
        bind: "127.0.0.1:0".parse().unwrap(),
        rpc_addr: "127.0.0.1:0".parse().unwrap(),
        rpc_auth: auth.map(String::from),
        ..AgentConfig::default()
    })
    .await
}

pub async fn start_agent_with(cfg: AgentConfig) -> TestAgent {
    let logger = Logger::new(cfg.log_level, false);
    let agent = Agent::start(cfg, serf_proto::serf::Config::local(), logger.clone())
        .await
        .expect("agent starts");
    let rpc = agent.rpc_addr();
    let handle = agent.handle().clone();
    let gossip = handle.local_addr();
    let prometheus = agent.prometheus_addr();
    let run = tokio::spawn(agent.run(false, None));
    TestAgent {
        rpc,
        gossip,
        handle,
        logger,
        prometheus,
        run,
    }
}

/// A raw connection: requests are written field by field, replies read as values.
pub struct Raw {
    pub sock: TcpStream,
    buf: Vec<u8>,
}

pub fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| (Value::Str(k.as_bytes().to_vec()), v.clone()))
            .collect(),
    )
}

pub fn s(v: &str) -> Value {
    Value::Str(v.as_bytes().to_vec())
}

pub fn header(cmd: &str, seq: u64) -> Value {
    map(&[("Command", s(cmd)), ("Seq", Value::Uint(seq))])
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            sock: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).await.expect("write");
    }

    pub async fn send(&mut self, values: &[Value]) {
        let mut w = Writer::new();
        for v in values {
            w.value(v);
        }
        self.write(&w.buf).await;
    }

    /// The next value, or `None` if the server closed the connection.
    pub async fn read(&mut self) -> Option<Value> {
        tokio::time::timeout(WAIT, async {
            let mut sc = Scanner::new();
            loop {
                if let Some(end) = sc.scan(&self.buf, &Limits::default()).unwrap() {
                    let (v, _) = decode(&self.buf[..end], &Limits::default()).unwrap();
                    self.buf.drain(..end);
                    return Some(v);
                }
                let mut chunk = [0u8; 4096];
                match self.sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .expect("reply within the wait")
    }

    /// Reads a header and checks its seq; returns its error string.
    pub async fn header(&mut self, seq: u64) -> String {
        let h = self.read().await.expect("a reply header");
        assert_eq!(h.get("Seq"), Some(&Value::Uint(seq)), "header {h:?}");
        match h.get("Error") {
            Some(Value::Str(e)) => String::from_utf8(e.clone()).unwrap(),
            other => panic!("Error must always be a str, got {other:?}"),
        }
    }

    pub async fn handshake(&mut self, seq: u64) {
        self.send(&[
            header("handshake", seq),
            map(&[("Version", Value::Uint(1))]),
        ])
        .await;
        assert_eq!(self.header(seq).await, "");
    }

    /// Whether the server closed the connection (reads EOF within the wait).
    pub async fn closed(&mut self) -> bool {
        self.read().await.is_none()
    }
}

/// Waits until `f` holds, polling.
pub async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
