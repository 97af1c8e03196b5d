//! The `serf` command line: `serf agent` and the client commands, with HashiCorp's
//! flags, messages and output (go-serf-agent.md §3), so scripts written for HashiCorp's
//! `serf` keep working.
//!
//! Every client command takes `-rpc-addr` (default `$SERF_RPC_ADDR`, else
//! `127.0.0.1:7373`) and `-rpc-auth` (default `$SERF_RPC_AUTH`). Output goes to stdout,
//! errors to stderr; the exit code is 0 on success and 1 on failure, as in Go.

pub mod flags;
pub mod output;

mod cluster;
mod events;
mod keys;

use crate::rpc::client::RpcClient;
use flags::{Flag, Kind, Parsed};
use std::time::Duration;

/// The client commands and what each does, for `serf --help`.
pub const COMMANDS: &[(&str, &str)] = &[
    ("agent", "Runs a Serf agent"),
    ("event", "Send a custom event through the Serf cluster"),
    (
        "force-leave",
        "Forces a member of the cluster to enter the \"left\" state",
    ),
    ("info", "Provides debugging information for operators"),
    ("join", "Tell Serf agent to join cluster"),
    ("keygen", "Generates a new encryption key"),
    (
        "keys",
        "Manipulate the internal encryption keyring used by Serf",
    ),
    ("leave", "Gracefully leaves the Serf cluster and shuts down"),
    ("members", "Lists the members of a Serf cluster"),
    ("monitor", "Stream logs from a Serf agent"),
    ("query", "Send a query to the Serf cluster"),
    ("reachability", "Test network reachability"),
    ("rtt", "Estimates network round trip time between nodes"),
    ("tags", "Modify tags of a running Serf agent"),
    ("version", "Prints the Serf version"),
];

/// `serf --help`.
pub fn main_help() -> String {
    let mut s = String::from(
        "Usage: serf [--version] [--help] <command> [<args>]\n\nAvailable commands are:\n",
    );
    for (name, what) in COMMANDS {
        s.push_str(&format!("    {name:<16}{what}\n"));
    }
    s.push_str(
        "\nRun `serf <command> -h` for a command's flags. Client commands reach the agent at\n\
         -rpc-addr (default $SERF_RPC_ADDR, else 127.0.0.1:7373), authenticating with\n\
         -rpc-auth (default $SERF_RPC_AUTH) when the agent sets rpc_auth.",
    );
    s
}

/// `serf version`'s first line.
pub fn version_line() -> String {
    format!("Serf v{} (serf-rs)", env!("CARGO_PKG_VERSION"))
}

/// The two flags every client command has.
pub const RPC_FLAGS: [Flag; 2] = [
    Flag {
        name: "rpc-addr",
        kind: Kind::Value,
    },
    Flag {
        name: "rpc-auth",
        kind: Kind::Value,
    },
];

/// Help text for the two RPC flags, appended to each command's help.
pub const RPC_HELP: &str = "  -rpc-addr=127.0.0.1:7373  RPC address of the Serf agent (or $SERF_RPC_ADDR).\n  -rpc-auth=\"\"              RPC auth token of the Serf agent (or $SERF_RPC_AUTH).";

/// Parses a command's flags (its own plus the RPC ones). On `-h` prints `help` and
/// returns `Err(0)`; on a bad flag prints Go's message and `help` to stderr, `Err(1)`.
pub fn parse_flags(args: &[String], own: &[Flag], help: &str) -> Result<Parsed, i32> {
    let all: Vec<Flag> = own.iter().chain(RPC_FLAGS.iter()).copied().collect();
    match flags::parse(args, &all) {
        Ok(p) if p.help => {
            println!("{help}");
            Err(0)
        }
        Ok(p) => Ok(p),
        Err(e) => {
            eprintln!("{e}");
            eprintln!("{help}");
            Err(1)
        }
    }
}

/// Prints a usage error as Go's commands do (the message, a blank line, the help) and
/// returns exit code 1.
pub fn usage_error(message: &str, help: &str) -> i32 {
    eprintln!("{message}");
    eprintln!();
    eprintln!("{help}");
    1
}

/// Connects to the agent named by `-rpc-addr`/`-rpc-auth` or the environment, printing
/// Go's "Error connecting to Serf agent: …" on failure.
pub async fn connect(p: &Parsed) -> Result<RpcClient, i32> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let addr = p
        .value("rpc-addr")
        .map(str::to_owned)
        .or_else(|| env("SERF_RPC_ADDR"))
        .unwrap_or_else(|| "127.0.0.1:7373".to_owned());
    let auth = p
        .value("rpc-auth")
        .map(str::to_owned)
        .or_else(|| env("SERF_RPC_AUTH"));
    match RpcClient::connect(&addr, auth.as_deref()).await {
        Ok(c) => Ok(c),
        Err(e) => {
            eprintln!("Error connecting to Serf agent: {e}");
            Err(1)
        }
    }
}

/// `k=v` pairs as Go's `UnmarshalTags` reads them (split on the first `=`).
pub fn parse_tags(pairs: &[String]) -> Result<Vec<(String, String)>, String> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(format!("Invalid tag: '{p}'")),
        })
        .collect()
}

/// A duration as Go prints it (`30s`, `1m0s`, `1.5s`, `500ms`).
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (v, unit) = if ns < 1_000 {
            (ns as f64, "ns")
        } else if ns < 1_000_000 {
            (ns as f64 / 1e3, "µs")
        } else {
            (ns as f64 / 1e6, "ms")
        };
        return format!("{}{unit}", trim_float(v));
    }
    let secs = d.as_secs_f64();
    let h = (secs / 3600.0).floor();
    let m = ((secs - h * 3600.0) / 60.0).floor();
    let s = secs - h * 3600.0 - m * 60.0;
    let s = trim_float((s * 1e9).round() / 1e9);
    if h > 0.0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0.0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// Runs a client command by name with its arguments; `None` if there is no such
/// command (the caller prints the main help).
pub async fn run_client(name: &str, args: &[String]) -> Option<i32> {
    Some(match name {
        "members" => cluster::members(args).await,
        "join" => cluster::join(args).await,
        "leave" => cluster::leave(args).await,
        "force-leave" => cluster::force_leave(args).await,
        "tags" => cluster::tags(args).await,
        "info" => cluster::info(args).await,
        "rtt" => cluster::rtt(args).await,
        "event" => events::event(args).await,
        "query" => events::query(args).await,
        "reachability" => events::reachability(args).await,
        "monitor" => events::monitor(args).await,
        "keys" => keys::keys(args).await,
        "keygen" => keys::keygen(args),
        "version" => {
            let [min, max, _] = serf_proto::serf::PROTOCOL_VERSIONS;
            println!("{}", version_line());
            println!("Agent Protocol: {max} (Understands back to: {min})");
            0
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn tags_split_on_the_first_equals() {
        assert_eq!(
            parse_tags(&["a=b=c".into()]).unwrap(),
            vec![("a".to_owned(), "b=c".to_owned())]
        );
        assert_eq!(
            parse_tags(&["nope".into()]).unwrap_err(),
            "Invalid tag: 'nope'"
        );
    }
}
