//! What the commands need besides the connection: stream records, key replies, joins
//! and Go's `Stats()` sections.

use super::{PendingQueries, RpcContext};
use crate::rpc::messages::{self, KeyReply, RpcMember};
use crate::rpc::msgpack::Writer;
use serf_driver_tokio::SerfHandle;
use serf_proto::serf::Event;
use std::net::SocketAddr;
use std::sync::Mutex;

/// The record a stream sends for `event` (without its header); query events are
/// registered so the client can `respond` by ID.
pub(super) fn event_record(event: &Event, queries: &Mutex<PendingQueries>) -> Option<Vec<u8>> {
    let mut w = Writer::new();
    match event {
        Event::Member { kind, members } => {
            let ms: Vec<RpcMember> = members.iter().map(RpcMember::from_member).collect();
            messages::encode_member_event(kind.as_str(), &ms, &mut w);
        }
        Event::User(u) => {
            messages::encode_user_event(u.ltime, &u.name, &u.payload, u.coalesce, &mut w)
        }
        Event::Query(q) => {
            let id = queries.lock().ok()?.insert(q.handle);
            messages::encode_query_event(id, q.ltime, &q.name, &q.payload, &mut w);
        }
        _ => return None,
    }
    Some(w.buf)
}

/// Go's `keyResponse` from the core's answer; counts and messages are kept even on
/// error, as Go sends them.
pub(super) fn key_reply(
    result: Result<serf_proto::serf::KeyResponse, String>,
    list: bool,
) -> (KeyReply, String) {
    match result {
        Err(e) => (
            KeyReply {
                keys: list.then(Vec::new),
                ..KeyReply::default()
            },
            e,
        ),
        Ok(r) => {
            let err = if r.num_err > 0 {
                format!("{}/{} nodes reported failure", r.num_err, r.num_nodes)
            } else if r.num_resp != r.num_nodes {
                format!(
                    "{}/{} nodes reported success",
                    r.num_resp - r.num_err,
                    r.num_nodes
                )
            } else {
                String::new()
            };
            let reply = KeyReply {
                messages: r
                    .messages
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                    .collect(),
                keys: list.then(|| {
                    r.keys
                        .iter()
                        .map(|(k, n)| {
                            use base64::Engine as _;
                            (
                                base64::engine::general_purpose::STANDARD.encode(k),
                                *n as i64,
                            )
                        })
                        .collect()
                }),
                num_nodes: r.num_nodes as i64,
                num_err: r.num_err as i64,
                num_resp: r.num_resp as i64,
            };
            (reply, err)
        }
    }
}

/// Joins `addrs` ("host:port", or "host" for port 7946): how many were reached, and
/// Go's error string ("" when at least one was).
pub async fn join_addresses(
    handle: &SerfHandle,
    addrs: &[String],
    replay: bool,
) -> (usize, String) {
    let mut seeds = Vec::new();
    let mut errs = Vec::new();
    for a in addrs {
        match resolve(a).await {
            Ok(mut v) => seeds.append(&mut v),
            Err(e) => errs.push(format!("{a}: {e}")),
        }
    }
    if seeds.is_empty() {
        return (
            0,
            format!("failed to resolve any address: {}", errs.join("; ")),
        );
    }
    match handle.join(&seeds, !replay).await {
        Ok(n) => (n, String::new()),
        Err(e) => (0, e.to_string()),
    }
}

/// Resolves a join address; a bare host takes Serf's port 7946.
pub async fn resolve(addr: &str) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Ok(vec![sa]);
    }
    if let Ok(ip) = addr.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, 7946)]);
    }
    let with_port = if addr
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        addr.to_owned()
    } else {
        format!("{addr}:7946")
    };
    Ok(tokio::net::lookup_host(with_port).await?.collect())
}

/// The five sections of Go's `Stats()` (go-serf-agent.md §1.3).
pub async fn agent_stats(ctx: &RpcContext) -> messages::StatsSections {
    let h = &ctx.handle;
    let local = h.local_member();
    let mut out = vec![(
        "agent".to_owned(),
        vec![("name".to_owned(), local.name.as_str().to_owned())],
    )];
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    out.push((
        "runtime".to_owned(),
        vec![
            ("arch".into(), arch.into()),
            ("cpu_count".into(), cpus.to_string()),
            ("goroutines".into(), tasks.to_string()),
            ("max_procs".into(), cpus.to_string()),
            ("os".into(), std::env::consts::OS.into()),
            (
                "version".into(),
                format!("serf-rs {}", env!("CARGO_PKG_VERSION")),
            ),
        ],
    ));
    if let Ok(s) = h.stats().await {
        out.push((
            "serf".to_owned(),
            vec![
                ("coordinate_resets".into(), s.coordinate_resets.to_string()),
                ("encrypted".into(), s.encrypted.to_string()),
                ("event_queue".into(), s.event_queue.to_string()),
                ("event_time".into(), s.event_time.to_string()),
                ("failed".into(), s.failed.to_string()),
                ("health_score".into(), s.health_score.to_string()),
                ("intent_queue".into(), s.intent_queue.to_string()),
                ("left".into(), s.left.to_string()),
                ("member_time".into(), s.member_time.to_string()),
                ("members".into(), s.members.to_string()),
                ("query_queue".into(), s.query_queue.to_string()),
                ("query_time".into(), s.query_time.to_string()),
            ],
        ));
    }
    out.push((
        "tags".to_owned(),
        local
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    ));
    let handlers = ctx
        .event_handlers
        .lock()
        .map(|h| h.clone())
        .unwrap_or_default();
    out.push(("event_handlers".to_owned(), handlers));
    out
}
