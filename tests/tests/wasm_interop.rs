//! The wasm driver against native nodes: three tokio nodes on 127.0.0.1 and one node in
//! Node.js running the core compiled to `wasm32-unknown-unknown` (serf-driver-wasm and its
//! JS host module), over real UDP and TCP, with encryption and a cluster label on.
//!
//! The wasm node joins, sees all three alive, receives a user event from a native node,
//! sends one they all receive, answers a native node's query, and leaves gracefully; the
//! native nodes see it join and leave.
//!
//! The test builds the wasm package itself (`scripts/build-wasm.sh`, a no-op when up to
//! date). It never passes without running: a missing tool fails it with the command that
//! installs it.

use serf_driver_tokio::{Builder, Events, SerfHandle};
use serf_proto::serf::{Config, Event, MemberStatus, QueryParams};
use serf_proto::{Keyring, SecretKey};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::time::{sleep, timeout};

const KEY: [u8; 32] = [7; 32];
const KEY_BASE64: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const LABEL: &str = "interop-cluster";
const WASM_NAME: &str = "wasm-node";
/// Every step's bound: generous for a loaded 2-core machine; a step normally takes
/// well under a second.
const STEP: Duration = Duration::from_secs(30);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// Builds (or finds up to date) the wasm package; fails with the script's message, which
/// names what to install.
fn build_package(root: &Path) {
    let out = Command::new("bash")
        .arg(root.join("scripts/build-wasm.sh"))
        .current_dir(root)
        .output()
        .expect("bash runs scripts/build-wasm.sh");
    assert!(
        out.status.success(),
        "building the wasm package failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_node() {
    let ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`node` (Node.js 18 or later) is needed for the wasm interop test: \
         apt-get install nodejs (Debian), or your platform's Node.js package"
    );
}

/// The LAN profile on both sides: its retransmit multiplier (4) sends a new event straight
/// to every member of a 4-node cluster, where the Local profile's (2) reaches two of the
/// three others directly and may leave the third to the next push-pull, 15 s later.
fn config() -> Config {
    let mut c = Config::lan();
    c.memberlist.keyring = Some(Keyring::new(SecretKey(KEY)));
    c.memberlist.label = LABEL.into();
    c
}

/// The Node.js process; killed when dropped, so a failing test leaves nothing behind.
struct WasmNode {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<serde_json::Value>,
    log: Vec<serde_json::Value>,
}

impl WasmNode {
    fn spawn(root: &Path, seeds: &[String], expect_alive: usize) -> WasmNode {
        let mut child = Command::new("node")
            .arg(root.join("tests/wasm_interop_node.js"))
            .env(
                "SERF_WASM_MODULE",
                root.join("serf-driver-wasm/js/index.js"),
            )
            .env("SERF_SEEDS", seeds.join(","))
            .env("SERF_KEY", KEY_BASE64)
            .env("SERF_LABEL", LABEL)
            .env("SERF_NAME", WASM_NAME)
            .env("SERF_PROFILE", "lan")
            .env("SERF_EXPECT_ALIVE", expect_alive.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("wasm node: {line}"),
                }
            }
        });
        WasmNode {
            stdin: child.stdin.take(),
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Waits (off the async runtime) for a line with `step`, failing on an error line.
    async fn expect(&mut self, step: &str) -> serde_json::Value {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let got = tokio::task::block_in_place(|| self.lines.recv_timeout(left));
            let v = match got {
                Ok(v) => v,
                Err(_) => panic!(
                    "the wasm node did not report {step:?} within {STEP:?}; it said: {:#?}",
                    self.log
                ),
            };
            self.log.push(v.clone());
            if v["step"] == "error" {
                panic!("the wasm node failed: {}", v["error"]);
            }
            if v["step"] == step {
                return v;
            }
        }
    }

    fn send(&mut self, cmd: serde_json::Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{cmd}").expect("the wasm node reads commands");
        stdin.flush().expect("flush");
    }
}

impl Drop for WasmNode {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prints how far into the scenario a step was reached.
fn step(started: &Instant, what: &str) {
    println!("{:>8.0?}  {what}", started.elapsed());
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < STEP, "not within {STEP:?}: {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

/// Member event kinds a native node reported about the wasm node.
fn note(seen: &mut Vec<&'static str>, e: &Event) {
    if let Event::Member { kind, members } = e
        && members.iter().any(|m| m.name.as_str() == WASM_NAME)
    {
        seen.push(kind.as_str());
    }
}

async fn next_user_event(events: &mut Events, seen: &mut Vec<&'static str>, name: &str) -> Vec<u8> {
    loop {
        match events.recv().await {
            Some(Event::User(e)) if e.name == name => return e.payload.to_vec(),
            Some(e) => note(seen, &e),
            None => panic!("the native node stopped"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_node_in_node_js_joins_native_nodes_exchanges_events_answers_a_query_and_leaves() {
    let root = workspace_root();
    check_node();
    let built = Instant::now();
    build_package(&root);
    println!("wasm package ready in {:.1?}", built.elapsed());

    let started = Instant::now();
    let mut natives: Vec<(SerfHandle, Events)> = Vec::new();
    for i in 0..3 {
        let (h, e) = Builder::new(format!("native-{i}"))
            .bind("127.0.0.1:0".parse().unwrap())
            .config(config())
            .start()
            .await
            .unwrap();
        natives.push((h, e));
    }
    let seed = natives[0].0.local_addr();
    for (h, _) in &natives[1..] {
        h.join(&[seed], false).await.unwrap();
    }
    wait_until("the native nodes see each other", || {
        natives
            .iter()
            .all(|(h, _)| h.members().count(MemberStatus::Alive) == 3)
    })
    .await;

    // The wasm node joins through two of them and sees all three alive.
    let seeds = vec![seed.to_string(), natives[1].0.local_addr().to_string()];
    let mut wasm = WasmNode::spawn(&root, &seeds, 4);
    let joined = wasm.expect("joined").await;
    step(&started, "joined");
    assert!(joined["joined"].as_u64().unwrap() >= 1, "{joined}");
    let alive = wasm.expect("all-alive").await;
    step(&started, "wasm node sees all alive");
    assert_eq!(
        alive["members"],
        serde_json::json!(["native-0", "native-1", "native-2", WASM_NAME])
    );
    wait_until("every native node sees the wasm node alive", || {
        natives
            .iter()
            .all(|(h, _)| h.members().status_of(WASM_NAME) == Some(MemberStatus::Alive))
    })
    .await;
    step(&started, "native nodes see it alive");

    // A native node's user event reaches the wasm node.
    natives[2]
        .0
        .user_event("from-native", &b"hello wasm"[..], false)
        .await
        .unwrap();
    let got = wasm.expect("user-event").await;
    assert_eq!(got["name"], "from-native");
    assert_eq!(got["payload"], "hello wasm");
    step(&started, "native event received");

    // The wasm node's user event reaches every native node.
    wasm.send(serde_json::json!({"cmd": "event", "name": "from-wasm", "payload": "hello natives"}));
    let mut seen: Vec<Vec<&'static str>> = vec![Vec::new(); natives.len()];
    for (i, (_, events)) in natives.iter_mut().enumerate() {
        let payload = timeout(STEP, next_user_event(events, &mut seen[i], "from-wasm"))
            .await
            .unwrap_or_else(|_| panic!("native-{i} did not get the wasm node's event"));
        assert_eq!(payload, b"hello natives");
    }
    step(&started, "wasm event received by all");

    // A native node's query is answered by the wasm node.
    let params = QueryParams {
        filter_nodes: vec![WASM_NAME.into()],
        request_ack: true,
        timeout: Some(Duration::from_secs(10)),
        ..QueryParams::default()
    };
    let stream = natives[0]
        .0
        .query("whoami", &b"who?"[..], params)
        .await
        .unwrap();
    let (responses, complete) = timeout(STEP, stream.collect())
        .await
        .expect("the query ends");
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(responses[0].0.as_str(), WASM_NAME);
    assert_eq!(&responses[0].1[..], b"wasm-node answers who?");
    assert!(complete, "the one node asked answered");
    wasm.expect("query-answered").await;
    step(&started, "query answered");

    // A graceful leave: the wasm node finishes it, and every native node sees it left.
    wasm.send(serde_json::json!({"cmd": "leave"}));
    let left = wasm.expect("left").await;
    assert_eq!(left["state"], "left");
    let stopped = wasm.expect("stopped").await;
    println!("wasm node's counters: {}", stopped["metrics"]);
    step(&started, "leave completed");
    assert!(stopped["datagramsSent"].as_f64().unwrap() > 0.0);
    assert!(stopped["datagramsReceived"].as_f64().unwrap() > 0.0);
    wait_until("every native node sees the wasm node left", || {
        natives
            .iter()
            .all(|(h, _)| h.members().status_of(WASM_NAME) == Some(MemberStatus::Left))
    })
    .await;
    step(&started, "native nodes see it left");
    let status = tokio::task::block_in_place(|| wasm.child.wait()).expect("node exits");
    assert!(status.success(), "the wasm node exited with {status}");
    // The native nodes saw the join and the leave as member events.
    for (i, (_, events)) in natives.iter_mut().enumerate() {
        while let Some(e) = events.try_recv() {
            note(&mut seen[i], &e);
        }
        assert!(
            seen[i].contains(&"member-join") && seen[i].contains(&"member-leave"),
            "native-{i} saw {:?} for the wasm node",
            seen[i]
        );
    }
    println!(
        "interop scenario (3 native nodes + 1 wasm node in Node.js) took {:.1?}",
        started.elapsed()
    );
    for (h, _) in &natives {
        h.shutdown().await.unwrap();
    }
}
