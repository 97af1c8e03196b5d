//! `event`, `query`, `reachability`, `monitor`.

use super::flags::{Flag, Kind};
use super::output::{Json, to_json};
use super::{RPC_HELP, connect, parse_flags, parse_tags, usage_error};
use crate::config::parse_go_duration;
use crate::rpc::client::{QueryRequest, RpcClient};
use crate::rpc::msgpack::{Fields, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

const fn flag(name: &'static str, kind: Kind) -> Flag {
    Flag { name, kind }
}

/// `serf event`
pub async fn event(args: &[String]) -> i32 {
    let help = format!(
        "Usage: serf event [options] name payload

  Dispatches a custom event across the Serf cluster.

Options:

  -coalesce=true/false      Whether this event may be coalesced: of repeated
                            events of one name within a short period only the
                            last is delivered. Default true.
{RPC_HELP}"
    );
    let p = match parse_flags(args, &[flag("coalesce", Kind::Bool)], &help) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if p.args.is_empty() {
        return usage_error("An event name must be specified.", &help);
    }
    if p.args.len() > 2 {
        return usage_error(
            "Too many command line arguments. Only a name and payload must be specified.",
            &help,
        );
    }
    let coalesce = p.bool("coalesce", true);
    let name = &p.args[0];
    let payload = p.args.get(1).map(|s| s.as_bytes());
    let mut client = match connect(&p).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.user_event(name, payload, coalesce).await {
        Ok(()) => {
            println!("Event '{name}' dispatched! Coalescing enabled: {coalesce}");
            0
        }
        Err(e) => {
            eprintln!("Error sending event: {e}");
            1
        }
    }
}

/// `serf query`
pub async fn query(args: &[String]) -> i32 {
    let help = format!(
        "Usage: serf query [options] name payload

  Dispatches a query to the Serf cluster and prints the answers.

Options:

  -format=text              Output format: 'text' (default) or 'json'.
  -node=NAME                Only this node answers; repeatable.
  -tag key=regexp           Only nodes whose tag matches answer; repeatable.
  -timeout=\"15s\"            How long to wait; default from the cluster size.
  -no-ack                   Do not ask nodes to acknowledge the query.
  -relay-factor=0           Relay each response through this many other nodes
                            as well (0-255), against packet loss.
{RPC_HELP}"
    );
    let own = [
        flag("format", Kind::Value),
        flag("node", Kind::Repeated),
        flag("tag", Kind::Repeated),
        flag("timeout", Kind::Value),
        flag("no-ack", Kind::Bool),
        flag("relay-factor", Kind::Value),
    ];
    let p = match parse_flags(args, &own, &help) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let timeout = match p.value("timeout") {
        None => std::time::Duration::ZERO,
        Some(t) => match parse_go_duration(t) {
            Ok(d) => d,
            Err(_) => {
                eprintln!("invalid value {t:?} for flag -timeout: parse error");
                eprintln!("{help}");
                return 1;
            }
        },
    };
    let relay: i64 = match p.value("relay-factor").unwrap_or("0").parse() {
        Ok(r) => r,
        Err(_) => {
            eprintln!(
                "invalid value {:?} for flag -relay-factor: parse error",
                p.value("relay-factor").unwrap_or_default()
            );
            eprintln!("{help}");
            return 1;
        }
    };
    let filter_tags = match parse_tags(&p.values("tag")) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("Error: {e}");
            return 1;
        }
    };
    if p.args.is_empty() {
        return usage_error("A query name must be specified.", &help);
    }
    if p.args.len() > 2 {
        return usage_error(
            "Too many command line arguments. Only a name and payload must be specified.",
            &help,
        );
    }
    if !(0..=255).contains(&relay) {
        eprintln!("Relay factor must be between 0 and 255");
        return 1;
    }
    let no_ack = p.bool("no-ack", false);
    let format = p.value("format").unwrap_or("text").to_owned();
    let name = p.args[0].clone();
    let mut client = match connect(&p).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    if format != "text" && format != "json" {
        eprintln!("Invalid format: {format}");
        return 1;
    }
    let req = QueryRequest {
        filter_nodes: p.values("node"),
        filter_tags,
        request_ack: !no_ack,
        relay_factor: relay as u8,
        timeout,
        name: name.clone(),
        payload: p.args.get(1).map(|s| s.as_bytes().to_vec()),
    };
    let seq = match client.query(&req).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error sending query: {e}");
            return 1;
        }
    };
    let text = format == "text";
    if text {
        println!("Query '{name}' dispatched");
    }
    let (mut acks, mut responses) = (Vec::new(), BTreeMap::new());
    let mut num_resp = 0;
    while let Some((kind, from, body)) = next_query_record(&mut client, seq).await {
        let f = Fields(&body);
        match kind.as_str() {
            "ack" => {
                if text {
                    println!("Ack from '{from}'");
                }
                acks.push(from);
            }
            "response" => {
                let mut payload = f.bytes("Payload").ok().flatten().unwrap_or_default();
                num_resp += 1;
                if text {
                    if payload.last() == Some(&b'\n') {
                        payload.pop();
                    }
                    println!(
                        "Response from '{from}': {}",
                        String::from_utf8_lossy(&payload)
                    );
                } else {
                    responses.insert(from, String::from_utf8_lossy(&payload).into_owned());
                }
            }
            _ => {}
        }
    }
    if text {
        if !no_ack {
            println!("Total Acks: {}", acks.len());
        }
        println!("Total Responses: {num_resp}");
    } else {
        let acks = if acks.is_empty() {
            Json::Null
        } else {
            Json::Arr(acks.into_iter().map(Json::Str).collect())
        };
        let v = Json::Struct(vec![
            ("Acks".into(), acks),
            (
                "Responses".into(),
                Json::Map(
                    responses
                        .into_iter()
                        .map(|(k, v)| (k, Json::Str(v)))
                        .collect(),
                ),
            ),
        ]);
        println!("{}", to_json(&v));
    }
    0
}

const TOO_MANY_ACKS: &str =
    "This could mean Serf is detecting false-failures due to a misconfiguration or network issue.";
const TOO_FEW_ACKS: &str = "This could mean Serf gossip packets are being lost due to a misconfiguration or network issue.";
const DUPLICATE_RESPONSES: &str =
    "Duplicate responses means there is a misconfiguration. Verify that node names are unique.";
const TROUBLESHOOTING: &str = "
Troubleshooting tips:
* Ensure that the bind addr:port is accessible by all other nodes
* If an advertise address is set, ensure it routes to the bind address
* Check that no nodes are behind a NAT
* If nodes are behind firewalls or iptables, check that Serf traffic is permitted (UDP and TCP)
* Verify networking equipment is functional";

/// `serf reachability`
pub async fn reachability(args: &[String]) -> i32 {
    let help = format!(
        "Usage: serf reachability [options]

  Tests the network reachability of this node: every live member is asked to
  acknowledge a ping query.

Options:

  -verbose                  Print each ack and the timings.
{RPC_HELP}"
    );
    let p = match parse_flags(args, &[flag("verbose", Kind::Bool)], &help) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let verbose = p.bool("verbose", false);
    let mut client = match connect(&p).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let members = match client.members().await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("Error getting members: {e}");
            return 1;
        }
    };
    let live: BTreeSet<String> = members
        .iter()
        .filter(|m| m.status == "alive")
        .map(|m| m.name.clone())
        .collect();
    println!(
        "Total members: {}, live members: {}",
        members.len(),
        live.len()
    );
    let req = QueryRequest {
        request_ack: true,
        name: format!("{}ping", serf_proto::serf::INTERNAL_QUERY_PREFIX),
        ..QueryRequest::default()
    };
    let seq = match client.query(&req).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error sending query: {e}");
            return 1;
        }
    };
    println!("Starting reachability test...");
    let start = Instant::now();
    let mut last = start;
    let (mut num_acks, mut dups) = (0usize, false);
    let mut acks_from = BTreeSet::new();
    while let Some((kind, from, _)) = next_query_record(&mut client, seq).await {
        if kind != "ack" {
            continue;
        }
        if verbose {
            println!("\tAck from '{from}'");
        }
        num_acks += 1;
        if !acks_from.insert(from.clone()) {
            dups = true;
            println!("Duplicate response from '{from}'");
        }
        last = Instant::now();
    }
    if verbose {
        println!(
            "Query time: {:.2} sec, time to last response: {:.2} sec",
            start.elapsed().as_secs_f64(),
            (last - start).as_secs_f64()
        );
    }
    let mut code = 0;
    if dups {
        println!("{DUPLICATE_RESPONSES}");
        code = 1;
    }
    let n = live.len();
    if num_acks == n {
        println!("Successfully contacted all live nodes");
    } else if num_acks > n {
        println!("Received more acks than live nodes! Acks from non-live nodes:");
        for m in acks_from.difference(&live) {
            println!("\t{m}");
        }
        println!("{TOO_MANY_ACKS}");
        println!("{TROUBLESHOOTING}");
        return 1;
    } else {
        println!("Received less acks than live nodes! Missing acks from:");
        for m in live.difference(&acks_from) {
            println!("\t{m}");
        }
        println!("{TOO_FEW_ACKS}");
        println!("{TROUBLESHOOTING}");
        return 1;
    }
    code
}

/// Go's `%#v` of a value decoded into `interface{}`, closely enough for a person
/// reading `serf monitor`'s event dumps.
fn go_repr(v: &Value) -> String {
    match v {
        Value::Nil => "interface {}(nil)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => format!("{i}"),
        // go-msgpack decodes integers into `interface{}` as int64, printed in decimal.
        Value::Uint(u) => format!("{u}"),
        Value::Float(f) => format!("{f}"),
        Value::Str(s) => format!("{:?}", String::from_utf8_lossy(s)),
        Value::Bin(b) => {
            let bytes: Vec<String> = b.iter().map(|x| format!("0x{x:x}")).collect();
            format!("[]byte{{{}}}", bytes.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_repr).collect();
            format!("[]interface {{}}{{{}}}", items.join(", "))
        }
        Value::Map(entries) => {
            let mut items: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", go_repr(k), go_repr(v)))
                .collect();
            items.sort();
            format!("map[interface {{}}]interface {{}}{{{}}}", items.join(", "))
        }
        Value::Ext(t, _) => format!("ext({t})"),
    }
}

/// `serf monitor`: log lines, and events as Go prints them, until interrupted.
pub async fn monitor(args: &[String]) -> i32 {
    let help = format!(
        "Usage: serf monitor [options]

  Shows recent log messages of a Serf agent (up to 512 lines), then follows its
  log and events as they occur. The monitor's level is independent of the
  agent's: an agent logging at INFO can be monitored at DEBUG.

Options:

  -log-level=info           Lowest level shown: trace, debug, info, warn, err.
{RPC_HELP}"
    );
    let p = match parse_flags(args, &[flag("log-level", Kind::Value)], &help) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let level = p.value("log-level").unwrap_or("INFO").to_owned();
    let mut client = match connect(&p).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stream_seq = match client.stream("*").await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error starting stream: {e}");
            return 1;
        }
    };
    let monitor_seq = match client.monitor(&level).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error starting monitor: {e}");
            return 1;
        }
    };
    let interrupted = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => return 0,
            r = client.next_record() => match r {
                Ok(r) if r.seq == monitor_seq => {
                    println!("{}", Fields(&r.body).string("Log").unwrap_or_default());
                }
                Ok(r) if r.seq == stream_seq => {
                    println!("Event Info:");
                    if let Value::Map(entries) = &r.body {
                        let mut lines: Vec<String> = entries
                            .iter()
                            .map(|(k, v)| {
                                format!(
                                    "\t{}: {}",
                                    String::from_utf8_lossy(k.as_raw().unwrap_or_default()),
                                    go_repr(v)
                                )
                            })
                            .collect();
                        lines.sort();
                        for l in lines {
                            println!("{l}");
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    println!();
                    println!("Remote side ended the monitor! This usually means that the\nremote side has exited or crashed.");
                    return 1;
                }
            }
        }
    }
}

/// The next record of query stream `seq`: its type, sender and body; `None` at `done` (or
/// a record with no sender, as Go's client treats it), or when the agent goes away.
async fn next_query_record(client: &mut RpcClient, seq: u64) -> Option<(String, String, Value)> {
    loop {
        let r = client.next_record().await.ok()?;
        if r.seq != seq {
            continue;
        }
        let f = Fields(&r.body);
        let (kind, from) = (
            f.string("Type").unwrap_or_default(),
            f.string("From").unwrap_or_default(),
        );
        if kind == "done" || from.is_empty() {
            return None;
        }
        return Some((kind, from, r.body));
    }
}
