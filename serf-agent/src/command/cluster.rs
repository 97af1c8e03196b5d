//! `members`, `join`, `leave`, `force-leave`, `tags`, `info`, `rtt`.

use super::flags::{Flag, Kind};
use super::output::{Json, columnize, string_map, to_json};
use super::{RPC_HELP, connect, parse_flags, parse_tags, usage_error};
use crate::rpc::messages::RpcMember;
use std::net::SocketAddr;

const fn flag(name: &'static str, kind: Kind) -> Flag {
    Flag { name, kind }
}

/// Go's `net.TCPAddr.String()`: `1.2.3.4:7946`, `[::1]:7946`.
fn addr_string(m: &RpcMember) -> String {
    SocketAddr::new(m.addr, m.port).to_string()
}

fn member_line(m: &RpcMember, detailed: bool) -> String {
    let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut line = format!(
        "{}|{}|{}|{}",
        m.name,
        addr_string(m),
        m.status,
        tags.join(",")
    );
    if detailed {
        let p = m.protocol;
        line.push_str(&format!(
            "|Protocol Version: {}|Available Protocol Range: [{}, {}]",
            p[5], p[3], p[4]
        ));
    }
    line
}

fn member_json(m: &RpcMember) -> Json {
    let p = m.protocol;
    Json::Struct(vec![
        ("name".into(), Json::Str(m.name.clone())),
        ("addr".into(), Json::Str(addr_string(m))),
        ("port".into(), Json::Num(m.port.to_string())),
        ("tags".into(), string_map(&m.tags)),
        ("status".into(), Json::Str(m.status.clone())),
        (
            "protocol".into(),
            Json::Map(vec![
                ("max".into(), Json::Num(p[4].to_string())),
                ("min".into(), Json::Num(p[3].to_string())),
                ("version".into(), Json::Num(p[5].to_string())),
            ]),
        ),
    ])
}

const MEMBERS_HELP: &str = "Usage: serf members [options]

  Outputs the members of a running Serf agent.

Options:

  -detailed                 Also show each member's protocol versions (text output).
  -format=text              Output format: 'text' (default) or 'json'.
  -name=<regexp>            Only members whose name matches (anchored at both ends).
  -role=<regexp>            Deprecated: same as -tag role=<regexp>.
  -status=<regexp>          Only members whose status matches (alive, leaving,
                            left, failed).
  -tag <key>=<regexp>       Only members whose tag <key> matches; repeatable.";

/// `serf members`
pub async fn members(args: &[String]) -> i32 {
    let own = [
        flag("detailed", Kind::Bool),
        flag("format", Kind::Value),
        flag("name", Kind::Value),
        flag("role", Kind::Value),
        flag("status", Kind::Value),
        flag("tag", Kind::Repeated),
    ];
    let help = format!("{MEMBERS_HELP}\n{RPC_HELP}");
    let p = match parse_flags(args, &own, &help) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut tag_pairs = p.values("tag");
    if let Some(role) = p.value("role").filter(|r| !r.is_empty()) {
        println!("Deprecation warning: 'Role' has been replaced with 'Tags'");
        tag_pairs.push(format!("role={role}"));
    }
    let tags = match parse_tags(&tag_pairs) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("Error: {e}");
            return 1;
        }
    };
    let format = p.value("format").unwrap_or("text").to_owned();
    let mut client = match connect(&p).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let list = match client
        .members_filtered(
            &tags,
            p.value("status").unwrap_or(""),
            p.value("name").unwrap_or(""),
        )
        .await
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("Error retrieving members: {e}");
            return 1;
        }
    };
    match format.as_str() {
        "text" => {
            let detailed = p.bool("detailed", false);
            let lines: Vec<String> = list.iter().map(|m| member_line(m, detailed)).collect();
            println!("{}", columnize(&lines).trim());
        }
        "json" => {
            let members = if list.is_empty() {
                Json::Null
            } else {
                Json::Arr(list.iter().map(member_json).collect())
            };
            println!(
                "{}",
                to_json(&Json::Struct(vec![("members".into(), members)]))
            );
        }
        other => {
            eprintln!("Encoding error: Invalid output format \"{other}\"");
            return 1;
        }
    }
    0
}

/// `serf join`
pub async fn join(args: &[String]) -> i32 {
    let help = format!(
        "Usage: serf join [options] address ...

  Tells a running Serf agent (started with \"serf agent\") to join the cluster
  through at least one existing member (host:port, or host for port 7946).

Options:

  -replay                   Replay past user events.
{RPC_HELP}"
    );
    let p = match parse_flags(args, &[flag("replay", Kind::Bool)], &help) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if p.args.is_empty() {
        return usage_error("At least one address to join must be specified.", &help);
    }
    let mut client = match connect(&p).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.join(&p.args, p.bool("replay", false)).await {
        Ok(n) => {
            println!("Successfully joined cluster by contacting {n} nodes.");
            0
        }
        Err(e) => {
            eprintln!("Error joining the cluster: {e}");
            1
        }
    }
}

/// `serf leave`
pub async fn leave(args: &[String]) -> i32 {
    let help = format!(
        "Usage: serf leave

  Causes the agent to gracefully leave the Serf cluster and shut down.

Options:

{RPC_HELP}"
    );
    let p = match parse_flags(args, &[], &help) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut client = match connect(&p).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.leave().await {
        Ok(()) => {
            println!("Graceful leave complete");
            0
        }
        Err(e) => {
            eprintln!("Error leaving: {e}");
            1
        }
    }
}

/// `serf force-leave`
pub async fn force_leave(args: &[String]) -> i32 {
    let help = format!(
        "Usage: serf force-leave [options] name

  Forces a member of a Serf cluster into the \"left\" state. A member that is in
  fact alive will rejoin; this is for clearing out failed nodes that will never
  come back, instead of waiting for the reconnect timeout to reap them.

Options:

  -prune                    Also erase the member from the list at once.
{RPC_HELP}"
    );
    let p = match parse_flags(args, &[flag("prune", Kind::Bool)], &help) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if p.args.len() != 1 {
        return usage_error("A node name must be specified to force leave.", &help);
    }
    let mut client = match connect(&p).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.force_leave(&p.args[0], p.bool("prune", false)).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error force leaving: {e}");
            1
        }
    }
}

/// `serf tags`
pub async fn tags(args: &[String]) -> i32 {
    let help = format!(
        "Usage: serf tags [options] ...

  Modifies tags on a running Serf agent.

Options:

  -set key=value            Creates or modifies the value of a tag; repeatable.
  -delete key               Removes a tag, if present; repeatable.
{RPC_HELP}"
    );
    let p = match parse_flags(
        args,
        &[flag("set", Kind::Repeated), flag("delete", Kind::Repeated)],
        &help,
    ) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (set, delete) = (p.values("set"), p.values("delete"));
    if set.is_empty() && delete.is_empty() {
        println!("{help}");
        return 1;
    }
    let mut client = match connect(&p).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let set = match parse_tags(&set) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("Error: {e}");
            return 1;
        }
    };
    match client.update_tags(&set, &delete).await {
        Ok(()) => {
            println!("Successfully updated agent tags");
            0
        }
        Err(e) => {
            eprintln!("Error setting tags: {e}");
            1
        }
    }
}

/// `serf info`
pub async fn info(args: &[String]) -> i32 {
    let help = format!(
        "Usage: serf info [options]

  Provides debugging information for operators.

Options:

  -format=text              Output format: 'text' (default) or 'json'.
{RPC_HELP}"
    );
    let p = match parse_flags(args, &[flag("format", Kind::Value)], &help) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut client = match connect(&p).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stats = match client.stats().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error querying agent: {e}");
            return 1;
        }
    };
    match p.value("format").unwrap_or("text") {
        "text" => {
            let mut out = String::new();
            for (section, entries) in &stats {
                out.push_str(&format!("{section}:\n"));
                for (k, v) in entries {
                    out.push_str(&format!("\t{k} = {v}\n"));
                }
            }
            println!("{}", out.trim());
        }
        "json" => {
            let v = Json::Map(
                stats
                    .iter()
                    .map(|(s, e)| (s.clone(), string_map(e)))
                    .collect(),
            );
            println!("{}", to_json(&v));
        }
        other => {
            eprintln!("Encoding error: Invalid output format \"{other}\"");
            return 1;
        }
    }
    0
}

/// `serf rtt`
pub async fn rtt(args: &[String]) -> i32 {
    let help = format!(
        "Usage: serf rtt [options] node1 [node2]

  Estimates the round trip time between two nodes from Serf's network
  coordinates. Without node2, the agent's own node is used. Names are node names
  as \"serf members\" shows them, not addresses.

Options:

{RPC_HELP}"
    );
    let p = match parse_flags(args, &[], &help) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut client = match connect(&p).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut nodes = p.args.clone();
    if nodes.len() == 1 {
        match client.stats().await {
            Ok(stats) => {
                let name = stats
                    .iter()
                    .find(|(s, _)| s == "agent")
                    .and_then(|(_, e)| e.iter().find(|(k, _)| k == "name"))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                nodes.push(name);
            }
            Err(e) => {
                eprintln!("Error querying agent: {e}");
                return 1;
            }
        }
    } else if nodes.len() != 2 {
        return usage_error("One or two node names must be specified", &help);
    }
    let mut coords = Vec::new();
    for n in &nodes {
        match client.get_coordinate(n).await {
            Ok(Some(c)) => coords.push(c),
            Ok(None) => {
                eprintln!("Could not find a coordinate for node {n:?}");
                return 1;
            }
            Err(e) => {
                eprintln!("Error getting coordinates: {e}");
                return 1;
            }
        }
    }
    let ms = coords[0].distance_to(&coords[1]) * 1000.0;
    println!("Estimated {} <-> {} rtt: {ms:.3} ms", nodes[0], nodes[1]);
    0
}
