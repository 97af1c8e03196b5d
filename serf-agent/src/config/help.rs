//! The text of `serf agent -h`.

/// The help of `serf agent`: what it does, every flag with its default, the config-file
/// keys that have no flag, the event-handler syntax and examples.
pub fn agent_help() -> &'static str {
    HELP.trim_ascii()
}

const HELP: &str = r#"
Usage: serf agent [options]

  Runs a Serf agent: one node of a cluster. It gossips membership with its
  peers, detects failures, delivers user events and queries to event-handler
  scripts, and serves the RPC that `serf members`, `serf event` and the other
  commands use. It runs until interrupted: Ctrl-C (SIGINT) leaves the cluster
  gracefully, SIGTERM stops it (leaving first if leave_on_terminate is set),
  SIGHUP reloads the log level, the event handlers and the tags.

  Flags are written -flag=value, -flag value, --flag value or --flag=value.
  A switch such as -replay takes a value only after '=' (-replay=false).

Identity:
  -node=NAME              Name of this node, unique in the cluster.
                          Default: the host name.
  -tag key=value          A tag of this node (repeatable). Tags are gossiped
                          with membership; at most 512 bytes in all.
  -tags-file=PATH         Persist the tags in this JSON file: read at start,
                          rewritten by `serf tags`. Not with -tag or tags.
  -role=NAME              Deprecated: the same as -tag role=NAME.

Network:
  -bind=0.0.0.0:7946      Address for gossip, UDP and TCP. Without a port,
                          7946. IPv6 as [::1]:7946.
  -iface=NAME             Bind to this interface's first address that is not
                          link-local; with -bind=IP, check that the interface
                          has that IP. Also the default interface for mDNS.
  -advertise=IP[:PORT]    Address the other members reach this node at (NAT).
                          Default: the bind address.
  -rpc-addr=127.0.0.1:7373
                          Address of the RPC listener the serf commands use.
  -profile=lan            Timing profile: lan (default), wan (slower probes,
                          more tolerance) or local (fast, for one machine).
  -protocol=5             Serf protocol version, 2 to 5 (accepted for
                          compatibility; our wire format has its own version).
  -disable-compression    Do not compress gossip. Compression is on by default.
  -broadcast-timeout=5s   How long a leave or force-leave waits for its
                          broadcast. At least 1s.

Joining:
  -join=ADDR              Join this agent at start (repeatable). The agent
                          exits if none can be joined.
  -replay                 Replay past user events when joining with -join.
  -retry-join=ADDR        Join this agent in the background, retrying until
                          one join works (repeatable).
  -retry-interval=30s     Time between -retry-join attempts. At least 1s.
  -retry-max=0            Attempts before the agent gives up and exits;
                          0 retries for ever.
  -discover=CLUSTER       Find and join peers on the local network with mDNS,
                          announcing the service _serf_CLUSTER._tcp.
  -mdns-iface=NAME        Interface for mDNS (default: -iface, else all).
  -mdns-disable-ipv4      Do not use IPv4 for mDNS.
  -mdns-disable-ipv6      Do not use IPv6 for mDNS.
  -snapshot=PATH          Record members and clocks in this file, so a restart
                          rejoins the cluster and does not replay old events.
  -rejoin                 After a graceful leave, still rejoin from the
                          snapshot on the next start.

Security:
  -encrypt=KEY            Encrypt gossip with this key: 32 bytes, base64, as
                          printed by `serf keygen`. Not with -keyring-file.
  -keyring-file=PATH      Read the keys from this JSON array of base64 keys
                          (the first is the primary); rewritten when keys are
                          installed, used or removed with `serf keys`.

Handlers and logs:
  -event-handler=[FILTER=]SCRIPT
                          Run SCRIPT with /bin/sh -c for events (repeatable).
                          See "Event handlers" below.
  -log-level=info         trace, debug, info, warn or err.
  -syslog                 Also send the logs to syslog.
  -prometheus-addr=ADDR   Serve every metric in the Prometheus text format at
                          http://ADDR/metrics (ours; off by default).

Configuration files:
  -config-file=PATH       Read a JSON configuration file (repeatable).
  -config-dir=DIR         Read every *.json file in DIR, in alphabetical order.

  Files are read in the order given and the flags are applied last. A later
  value replaces an earlier one, except event_handlers, start_join and
  retry_join, which add up, and tags, which merge key by key. Unknown keys are
  an error. Durations are written like "30s", "1m30s" or "24h".

  Keys, with their flags and defaults:
    node_name (-node), role (-role), tags (-tag), tags_file (-tags-file),
    bind (-bind), interface (-iface), advertise (-advertise),
    rpc_addr (-rpc-addr), rpc_auth (token the RPC `auth` command must give),
    encrypt_key (-encrypt), keyring_file (-keyring-file),
    event_handlers (-event-handler), start_join (-join),
    replay_on_join (-replay), retry_join (-retry-join),
    retry_interval (-retry-interval, "30s"), retry_max_attempts (-retry-max),
    log_level (-log-level, "INFO"), enable_syslog (-syslog),
    syslog_facility ("LOCAL0"), protocol (-protocol, 5),
    profile (-profile, "lan"), snapshot_path (-snapshot),
    rejoin_after_leave (-rejoin), discover (-discover),
    mdns {interface, disable_ipv4, disable_ipv6} (-mdns-*),
    broadcast_timeout (-broadcast-timeout, "5s"),
    enable_compression (true; -disable-compression),
    leave_on_terminate (false: SIGTERM stops without leaving),
    skip_leave_on_interrupt (false: SIGINT leaves gracefully),
    reconnect_interval ("30s"), reconnect_timeout ("24h"),
    tombstone_timeout ("24h"), disable_name_resolution (false),
    query_size_limit (1024), query_response_size_limit (1024),
    user_event_size_limit (512), statsd_addr, statsite_addr,
    prometheus_addr (-prometheus-addr), disable_coordinates,
    validate_node_names (both read but unused, as in HashiCorp's agent).

Event handlers:
  A handler is [FILTER=]SCRIPT. Without a filter it gets every event. FILTER
  is a comma-separated list of member-join, member-leave, member-failed,
  member-update, member-reap, user, user:NAME, query, query:NAME or *.

  The script gets SERF_EVENT, SERF_SELF_NAME, SERF_SELF_ROLE and SERF_TAG_<KEY>
  for each tag of this node; user events add SERF_USER_EVENT and
  SERF_USER_LTIME, queries SERF_QUERY_NAME and SERF_QUERY_LTIME. On stdin, a
  member event gives one line per member, "name<TAB>ip<TAB>role<TAB>tags"; a
  user event or query gives its payload. What a query's handler prints, when
  it exits 0, is the query's response. Handlers run in the background, each
  seeing its events in order; a slow handler never holds up another or the
  agent.

Examples:
  serf agent -node=foo -bind=127.0.0.1:5000 -rpc-addr=127.0.0.1:7373
  serf agent -node=bar -bind=127.0.0.1:5001 -rpc-addr=127.0.0.1:7374 \
             -join=127.0.0.1:5000
  serf agent -config-dir=/etc/serf -event-handler=user:deploy=/opt/deploy.sh
  serf agent -encrypt=$(serf keygen) -tag role=web -tag dc=eu -profile=wan
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_mentions_every_flag() {
        for (flag, _) in super::super::flags::FLAGS {
            assert!(agent_help().contains(&format!("-{flag}")), "{flag}");
        }
    }
}
