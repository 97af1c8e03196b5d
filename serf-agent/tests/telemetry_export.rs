//! The metrics exporters over real sockets on 127.0.0.1: a Prometheus scrape of a running
//! node parsed line by line, hostile HTTP requests answered and closed, and the statsd
//! (UDP) and statsite (TCP) sinks read by local listeners.

mod common;

use serf_agent::handlers::HandlerStats;
use serf_agent::telemetry::{Collect, Snapshot, serve_prometheus, spawn_statsd, spawn_statsite};
use serf_driver_tokio::Builder;
use serf_proto::serf::Config;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(20);

fn fixed(snapshot: Snapshot) -> Collect {
    Arc::new(move || {
        let s = snapshot.clone();
        Box::pin(async move { s })
    })
}

async fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("the server answers and closes")
        .unwrap();
    String::from_utf8(out).unwrap()
}

/// Parses the exposition format: every sample line is `name{labels} value` with a
/// `# TYPE` seen before it for that name.
fn parse_exposition(body: &str) -> HashMap<String, f64> {
    let mut typed = std::collections::HashSet::new();
    let mut values = HashMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(kind == "counter" || kind == "gauge", "{line}");
            assert!(typed.insert(name.to_owned()), "one TYPE per metric: {line}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        assert!(typed.contains(name), "sample before its TYPE: {line}");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name}"
        );
        values.insert(series.to_owned(), value.parse::<f64>().unwrap());
    }
    values
}

#[tokio::test]
async fn a_running_node_is_scraped_over_http() {
    let (node, _events) = Builder::new("scraped")
        .bind("127.0.0.1:0".parse().unwrap())
        .config(Config::local())
        .start()
        .await
        .unwrap();
    let collect_node = node.clone();
    let collect: Collect = Arc::new(move || {
        let node = collect_node.clone();
        Box::pin(async move {
            let mut s = Snapshot::from_node(&node).await.unwrap();
            s.handlers = HandlerStats {
                runs: 7,
                failures: 1,
                ..HandlerStats::default()
            };
            s.rpc_clients = 2;
            s
        })
    });
    let server = serve_prometheus("127.0.0.1:0".parse().unwrap(), collect)
        .await
        .unwrap();
    let response = http(
        server.local_addr(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n",
    )
    .await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, body.len());
    let values = parse_exposition(body);
    assert_eq!(values["serf_members{status=\"alive\"}"], 1.0);
    assert_eq!(values["serf_members{status=\"failed\"}"], 0.0);
    assert_eq!(values["serf_health_score"], 0.0);
    assert_eq!(values["serf_agent_handler_runs_total"], 7.0);
    assert_eq!(values["serf_agent_handler_failures_total"], 1.0);
    assert_eq!(values["serf_agent_rpc_clients"], 2.0);
    assert!(values.contains_key("serf_queue_depth{queue=\"intent\"}"));
    assert!(values.contains_key("serf_driver_datagrams_sent_total"));
    for (name, _, _) in serf_proto::Metrics::default().iter() {
        assert!(
            values.contains_key(&format!("serf_memberlist_{name}_total")),
            "{name}"
        );
    }
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn hostile_requests_get_an_error_and_the_server_keeps_serving() {
    let server = serve_prometheus("127.0.0.1:0".parse().unwrap(), fixed(Snapshot::default()))
        .await
        .unwrap();
    let addr = server.local_addr();
    let cases: [(&[u8], &str); 5] = [
        (b"GET /other HTTP/1.1\r\n\r\n", "404"),
        (b"POST /metrics HTTP/1.1\r\n\r\n", "405"),
        (b"garbage\r\n\r\n", "400"),
        (b"GET /metrics SPDY/9\r\n\r\n", "400"),
        (&[b'A'; 20_000], "431"),
    ];
    for (req, code) in cases {
        let r = http(addr, req).await;
        assert!(r.starts_with(&format!("HTTP/1.1 {code}")), "{code}: {r}");
    }
    // A client that connects and says nothing does not stop others from being served.
    let _silent: Vec<TcpStream> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(TcpStream::connect(addr).await.unwrap());
        }
        v
    };
    let r = http(addr, b"HEAD /metrics HTTP/1.0\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.ends_with("\r\n\r\n"), "HEAD has no body: {r}");
}

fn parse_statsd(text: &str) -> HashMap<String, (f64, String)> {
    text.lines()
        .map(|l| {
            let (key, rest) = l.split_once(':').unwrap();
            let (v, t) = rest.split_once('|').unwrap();
            assert!(t == "c" || t == "g", "{l}");
            (key.to_owned(), (v.parse().unwrap(), t.to_owned()))
        })
        .collect()
}

fn agent_snapshot(runs: u64) -> Snapshot {
    Snapshot {
        handlers: HandlerStats {
            runs,
            ..HandlerStats::default()
        },
        rpc_clients: 3,
        ..Snapshot::default()
    }
}

#[tokio::test]
async fn statsd_receives_counters_and_gauges_over_udp() {
    let listener = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let _sink = spawn_statsd(
        addr,
        Duration::from_millis(50),
        fixed(agent_snapshot(5)),
        Arc::new(|_, _| {}),
    );
    let mut seen = HashMap::new();
    let mut buf = vec![0u8; 2048];
    // The first push carries every counter's value since start; collect datagrams until
    // the figures of interest are in.
    tokio::time::timeout(WAIT, async {
        while !(seen.contains_key("serf.agent.handler_runs")
            && seen.contains_key("serf.agent.rpc_clients"))
        {
            let n = listener.recv(&mut buf).await.unwrap();
            assert!(n <= 1432, "datagram of {n} bytes");
            let text = std::str::from_utf8(&buf[..n]).unwrap();
            for (k, v) in parse_statsd(text) {
                seen.entry(k).or_insert(v);
            }
        }
    })
    .await
    .expect("statsd lines arrive");
    assert_eq!(seen["serf.agent.handler_runs"], (5.0, "c".to_owned()));
    assert_eq!(seen["serf.agent.rpc_clients"], (3.0, "g".to_owned()));
    assert!(seen.contains_key("serf.memberlist.packets_received"));
}

#[tokio::test]
async fn statsite_receives_lines_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let _sink = spawn_statsite(
        addr,
        Duration::from_millis(50),
        fixed(agent_snapshot(9)),
        Arc::new(|_, _| {}),
    );
    let (mut conn, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut text = String::new();
    let mut buf = vec![0u8; 4096];
    tokio::time::timeout(WAIT, async {
        // Two pushes: the second sends the counter's increase, 0.
        while text.matches("serf.agent.handler_runs:").count() < 2 {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "statsite connection closed");
            text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
    })
    .await
    .expect("two pushes arrive");
    let runs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("serf.agent.handler_runs:"))
        .collect();
    assert_eq!(
        &runs[..2],
        ["serf.agent.handler_runs:9|c", "serf.agent.handler_runs:0|c"]
    );
}

#[tokio::test]
async fn an_unreachable_statsite_is_logged_once_and_retried() {
    // A port with nothing listening: take one, then close it.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let logs: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let l = Arc::clone(&logs);
    let _sink = spawn_statsite(
        format!("127.0.0.1:{port}"),
        Duration::from_millis(20),
        fixed(agent_snapshot(1)),
        Arc::new(move |_, line| l.lock().unwrap().push(line)),
    );
    let count = |what: &str| {
        logs.lock()
            .unwrap()
            .iter()
            .filter(|m| m.contains(what))
            .count()
    };
    tokio::time::timeout(WAIT, async {
        while count("cannot send metrics to statsite") == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the failure is logged");
    // Several failed pushes later, still one line.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count("cannot send metrics"), 1);
    // Once something listens there, the sink connects and says so.
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (mut conn, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(conn.read(&mut buf).await.unwrap() > 0);
    tokio::time::timeout(WAIT, async {
        while count("again") == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the recovery is logged");
}

/// A client that subscribes to every user event and to the debug log and then never
/// reads: once its socket and its queues are full, what it is not reading is lost (the
/// agent never waits for it), and the Prometheus endpoint counts the loss.
#[tokio::test]
async fn events_and_log_lines_a_client_does_not_read_are_counted_as_dropped() {
    use common::{Raw, header, map, s, start_agent_with};
    use serf_agent::rpc::msgpack::Value;
    let a = start_agent_with(serf_agent::config::AgentConfig {
        node_name: "slow-reader".into(),
        bind: "127.0.0.1:0".parse().unwrap(),
        rpc_addr: "127.0.0.1:0".parse().unwrap(),
        prometheus_addr: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    })
    .await;
    let metrics = a.prometheus.expect("the Prometheus endpoint runs");
    let dropped = async || {
        let response = http(metrics, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let values = parse_exposition(response.split_once("\r\n\r\n").unwrap().1);
        (
            values["serf_agent_rpc_stream_dropped_total"],
            values["serf_agent_rpc_monitor_dropped_total"],
        )
    };
    assert_eq!(dropped().await, (0.0, 0.0));

    let mut slow = Raw::connect(a.rpc).await;
    slow.handshake(1).await;
    slow.send(&[header("stream", 2), map(&[("Type", s("user"))])])
        .await;
    assert_eq!(slow.header(2).await, "");
    slow.send(&[header("monitor", 3), map(&[("LogLevel", s("debug"))])])
        .await;
    assert_eq!(slow.header(3).await, "");
    // From here on `slow` reads nothing. Every event sent below is logged at DEBUG too.
    let mut sender = Raw::connect(a.rpc).await;
    sender.handshake(1).await;
    let payload = Value::Bin(vec![b'x'; 256]);
    let mut sent = 0u64;
    loop {
        let seq = 2 + sent;
        sender
            .send(&[
                header("event", seq),
                map(&[
                    ("Name", s("flood")),
                    ("Payload", payload.clone()),
                    ("Coalesce", Value::Bool(false)),
                ]),
            ])
            .await;
        assert_eq!(sender.header(seq).await, "");
        sent += 1;
        if sent.is_multiple_of(500) {
            let (stream, monitor) = dropped().await;
            if stream > 0.0 && monitor > 0.0 {
                println!("after {sent} events: {stream} events and {monitor} log lines dropped");
                break;
            }
        }
        assert!(
            sent < 200_000,
            "(stream, monitor) dropped after {sent} events: {:?}",
            dropped().await
        );
    }
}
