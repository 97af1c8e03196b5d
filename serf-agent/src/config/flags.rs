//! `serf agent`'s command-line flags, parsed as Go's `flag` package parses them, so
//! HashiCorp's spellings keep working: `-node=foo`, `-node foo`, `--node foo`,
//! `--node=foo`; a boolean flag alone means true (`-replay`) and takes a value only after
//! `=` (`-replay=false`); `--` ends the flags.

use super::duration::parse_go_duration;
use super::file::read_config_paths;
use super::merge::Partial;
use super::{AgentConfig, ConfigError};
use std::path::PathBuf;

/// What a flag takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A value (`-node=foo` or `-node foo`).
    Value,
    /// A switch (`-replay`, `-replay=true`, `-replay=false`).
    Switch,
}

/// Every flag of `serf agent` (Go's `readConfig`, plus `-prometheus-addr`, ours).
pub(super) const FLAGS: &[(&str, Kind)] = &[
    ("advertise", Kind::Value),
    ("bind", Kind::Value),
    ("broadcast-timeout", Kind::Value),
    ("config-dir", Kind::Value),
    ("config-file", Kind::Value),
    ("disable-compression", Kind::Switch),
    ("discover", Kind::Value),
    ("encrypt", Kind::Value),
    ("event-handler", Kind::Value),
    ("iface", Kind::Value),
    ("join", Kind::Value),
    ("keyring-file", Kind::Value),
    ("log-level", Kind::Value),
    ("mdns-disable-ipv4", Kind::Switch),
    ("mdns-disable-ipv6", Kind::Switch),
    ("mdns-iface", Kind::Value),
    ("node", Kind::Value),
    ("profile", Kind::Value),
    ("prometheus-addr", Kind::Value),
    ("protocol", Kind::Value),
    ("rejoin", Kind::Switch),
    ("replay", Kind::Switch),
    ("retry-interval", Kind::Value),
    ("retry-join", Kind::Value),
    ("retry-max", Kind::Value),
    ("role", Kind::Value),
    ("rpc-addr", Kind::Value),
    ("snapshot", Kind::Value),
    ("syslog", Kind::Switch),
    ("tag", Kind::Value),
    ("tags-file", Kind::Value),
];

/// Parses the arguments after `serf agent`, reads the configuration files they name, and
/// merges everything by Go's rules into a checked [`AgentConfig`].
///
/// - Flags: every flag of HashiCorp's `serf agent` (see [`super::agent_help`]), spelled
///   `-node=foo`, `-node foo`, `--node foo` or `--node=foo`. `-tag`, `-event-handler`,
///   `-join`, `-retry-join`, `-config-file` and `-config-dir` repeat.
/// - Files: `-config-file` and `-config-dir` are read in the order given (a directory's
///   `*.json` files alphabetically); each file is merged over the previous ones, and the
///   flags over all files (Go's `readConfig`). A later value wins; `event_handlers`,
///   `start_join` and `retry_join` are appended; tags merge key by key. Unknown keys are an
///   error naming the key and the file.
/// - Defaults are Go's; the node name defaults to the host name.
/// - Checks: log level, profile, protocol, addresses, encryption key (base64 of 32 bytes),
///   `encrypt_key` with `keyring_file`, tags with `tags_file`, handler specs (an unknown
///   event type is named), `-iface` and the mDNS settings. What Go only warns about (a
///   too short retry interval or broadcast timeout, raised to 1 s; the deprecated `role`)
///   is in [`AgentConfig::warnings`].
///
/// `-h`, `-help` and `--help` return [`ConfigError::HelpRequested`]: print
/// [`super::agent_help`].
///
/// The key files named by `tags_file` and `keyring_file` are read later, by
/// [`super::serf_config`], because the agent rewrites them while it runs.
pub fn parse_agent_args(args: &[String]) -> Result<AgentConfig, ConfigError> {
    let (cmd, config_paths) = parse_flags(args)?;
    let mut merged = read_config_paths(&config_paths)?;
    merged.merge(cmd);
    merged.finish(hostname)
}

/// The host name, Go's `os.Hostname`.
fn hostname() -> Result<String, String> {
    let h = gethostname::gethostname();
    match h.into_string() {
        Ok(s) if !s.is_empty() => Ok(s),
        Ok(_) => Err("the host name is empty".to_owned()),
        Err(_) => Err("the host name is not valid UTF-8".to_owned()),
    }
}

/// The flags alone: their settings, and the config paths in the order given.
pub(super) fn parse_flags(args: &[String]) -> Result<(Partial, Vec<PathBuf>), ConfigError> {
    let mut p = Partial::default();
    let mut config_paths = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            if let Some(extra) = args.get(i) {
                return Err(unexpected(extra));
            }
            break;
        }
        let Some(stripped) = arg.strip_prefix('-').filter(|s| !s.is_empty()) else {
            return Err(unexpected(arg));
        };
        let body = stripped.strip_prefix('-').unwrap_or(stripped);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(ConfigError::Flag(format!("bad flag syntax: {arg}")));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(&(name, kind)) = FLAGS.iter().find(|(n, _)| *n == name) else {
            if name == "h" || name == "help" {
                return Err(ConfigError::HelpRequested);
            }
            return Err(ConfigError::Flag(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let value: String = match (kind, inline) {
            (Kind::Switch, None) => "true".to_owned(),
            (_, Some(v)) => v.to_owned(),
            (Kind::Value, None) => match args.get(i) {
                // As in Go, the next argument is the value even if it starts with '-'.
                Some(v) => {
                    i += 1;
                    v.clone()
                }
                None => {
                    return Err(ConfigError::Flag(format!(
                        "flag needs an argument: -{name}"
                    )));
                }
            },
        };
        apply(&mut p, &mut config_paths, name, kind, &value)?;
    }
    Ok((p, config_paths))
}

fn unexpected(arg: &str) -> ConfigError {
    ConfigError::Flag(format!(
        "unexpected argument \"{arg}\": `serf agent` takes only flags (join addresses go in \
         -join=ADDR)"
    ))
}

fn apply(
    p: &mut Partial,
    config_paths: &mut Vec<PathBuf>,
    name: &str,
    kind: Kind,
    value: &str,
) -> Result<(), ConfigError> {
    let bad = |why: String| {
        ConfigError::Flag(format!("invalid value \"{value}\" for flag -{name}: {why}"))
    };
    let text = || (!value.is_empty()).then(|| value.to_owned());
    if kind == Kind::Switch {
        let on = parse_bool(value).ok_or_else(|| bad("use true or false".to_owned()))?;
        // As in Go's merge, a switch that is off does not override a file's true.
        let on = on.then_some(true);
        match name {
            "disable-compression" => p.enable_compression = on.map(|_| false),
            "mdns-disable-ipv4" => p.mdns_disable_ipv4 = on,
            "mdns-disable-ipv6" => p.mdns_disable_ipv6 = on,
            "rejoin" => p.rejoin_after_leave = on,
            "replay" => p.replay_on_join = on,
            "syslog" => p.enable_syslog = on,
            _ => unreachable!("every switch of FLAGS is handled: {name}"),
        }
        return Ok(());
    }
    match name {
        "advertise" => p.advertise = text(),
        "bind" => p.bind = text(),
        "broadcast-timeout" | "retry-interval" => {
            let d = match text() {
                Some(v) => Some(parse_go_duration(&v).map_err(bad)?),
                None => None,
            };
            if name == "retry-interval" {
                p.retry_interval = d;
            } else {
                p.broadcast_timeout = d;
            }
        }
        "config-dir" | "config-file" => config_paths.push(PathBuf::from(value)),
        "discover" => p.discover = text(),
        "encrypt" => p.encrypt_key = text(),
        "event-handler" => p.event_handlers.push(value.to_owned()),
        "iface" => p.interface = text(),
        "join" => p.start_join.push(value.to_owned()),
        "keyring-file" => p.keyring_file = text(),
        "log-level" => p.log_level = text(),
        "mdns-iface" => p.mdns_interface = text(),
        "node" => p.node_name = text(),
        "profile" => p.profile = text(),
        "prometheus-addr" => p.prometheus_addr = text(),
        "protocol" => {
            p.protocol = Some(
                value
                    .parse::<i64>()
                    .map_err(|_| bad("a number between 2 and 5".to_owned()))?,
            )
        }
        "retry-join" => p.retry_join.push(value.to_owned()),
        "retry-max" => {
            let n: u32 = value
                .parse()
                .map_err(|_| bad("a whole number, 0 for no limit".to_owned()))?;
            p.retry_max_attempts = (n != 0).then_some(n);
        }
        "role" => p.role = text(),
        "rpc-addr" => p.rpc_addr = text(),
        "snapshot" => p.snapshot_path = text(),
        "tag" => {
            let (k, v) = value
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| {
                    ConfigError::Flag(format!("Invalid tag: '{value}' (write -tag key=value)"))
                })?;
            p.tags.insert(k.to_owned(), v.to_owned());
        }
        "tags-file" => p.tags_file = text(),
        _ => unreachable!("every flag of FLAGS is handled: {name}"),
    }
    Ok(())
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_spelling_of_a_flag_works() {
        for a in [
            args(&["-node=foo"]),
            args(&["-node", "foo"]),
            args(&["--node", "foo"]),
            args(&["--node=foo"]),
        ] {
            let (p, _) = parse_flags(&a).unwrap();
            assert_eq!(p.node_name.as_deref(), Some("foo"), "{a:?}");
        }
    }

    #[test]
    fn switches_take_a_value_only_after_equals() {
        let (p, _) = parse_flags(&args(&["-replay", "-syslog=false", "-rejoin"])).unwrap();
        assert_eq!(p.replay_on_join, Some(true));
        assert_eq!(p.enable_syslog, None);
        assert_eq!(p.rejoin_after_leave, Some(true));
        let e = parse_flags(&args(&["-replay", "false"])).unwrap_err();
        assert!(
            e.to_string().contains("unexpected argument \"false\""),
            "{e}"
        );
        let e = parse_flags(&args(&["-replay=maybe"])).unwrap_err();
        assert!(e.to_string().contains("-replay"), "{e}");
    }

    #[test]
    fn repeatable_flags_accumulate_in_order() {
        let (p, paths) = parse_flags(&args(&[
            "-tag",
            "a=1",
            "-tag=b=2=3",
            "-join",
            "x",
            "--join=y",
            "-event-handler",
            "h1",
            "-event-handler=user:deploy=h2",
            "-retry-join",
            "z",
            "-config-file",
            "f1",
            "-config-dir",
            "d",
            "-config-file=f2",
        ]))
        .unwrap();
        assert_eq!(p.tags["a"], "1");
        assert_eq!(p.tags["b"], "2=3");
        assert_eq!(p.start_join, ["x", "y"]);
        assert_eq!(p.event_handlers, ["h1", "user:deploy=h2"]);
        assert_eq!(p.retry_join, ["z"]);
        assert_eq!(paths, [PathBuf::from("f1"), "d".into(), "f2".into()]);
    }

    #[test]
    fn bad_flags_are_named() {
        for (a, want) in [
            (args(&["-nodes=x"]), "flag provided but not defined: -nodes"),
            (args(&["-node"]), "flag needs an argument: -node"),
            (args(&["---node=x"]), "bad flag syntax"),
            (args(&["-tag", "novalue"]), "Invalid tag: 'novalue'"),
            (args(&["-tag", "=v"]), "Invalid tag"),
            (args(&["-retry-interval", "30"]), "missing unit"),
            (args(&["-protocol", "x"]), "-protocol"),
            (args(&["-retry-max", "-1"]), "-retry-max"),
            (args(&["extra"]), "unexpected argument \"extra\""),
        ] {
            let e = parse_flags(&a).unwrap_err().to_string();
            assert!(e.contains(want), "{a:?}: {e}");
            assert!(e.contains("serf agent -h"), "{e}");
        }
    }

    #[test]
    fn help_is_a_request_not_an_error() {
        for h in ["-h", "-help", "--help", "--h"] {
            assert!(matches!(
                parse_flags(&args(&["-node=x", h])),
                Err(ConfigError::HelpRequested)
            ));
        }
    }

    #[test]
    fn a_value_flag_takes_the_next_argument_even_with_a_dash() {
        let (p, _) = parse_flags(&args(&["-role", "-weird"])).unwrap();
        assert_eq!(p.role.as_deref(), Some("-weird"));
    }
}
