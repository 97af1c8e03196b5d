//! `serf agent`'s configuration through the public API: flags and files merged by Go's
//! rules, errors that name the key and the file, the core's config built from it, and the
//! tags and keyring files written back.

use serf_agent::config::{
    AgentConfig, ConfigError, LogLevel, Profile, load_keyring_file, load_tags_file,
    parse_agent_args, save_keyring_file, save_tags_file, serf_config,
};
use serf_proto::SecretKey;
use std::path::Path;
use std::time::Duration;

const KEY_A: &str = "QHOYjmYlxSCBhdfiolhtDQ+Jg9pcn4WEjqHR+PbSaMs=";
const KEY_B: &str = "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8hISE=";

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn parse(a: &[&str]) -> Result<AgentConfig, ConfigError> {
    parse_agent_args(&args(a))
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn defaults_are_gos() {
    let c = parse(&["-node=n"]).unwrap();
    assert_eq!(c.bind, "0.0.0.0:7946".parse().unwrap());
    assert_eq!(c.rpc_addr, "127.0.0.1:7373".parse().unwrap());
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.profile, Profile::Lan);
    assert_eq!(c.protocol, 5);
    assert_eq!(c.retry_interval, Duration::from_secs(30));
    assert_eq!(c.broadcast_timeout, Duration::from_secs(5));
    assert_eq!(c.reconnect_timeout, Duration::from_secs(86_400));
    assert_eq!((c.query_size_limit, c.user_event_size_limit), (1024, 512));
    assert!(c.enable_compression);
    assert_eq!(c.syslog_facility, "LOCAL0");
    assert!(c.warnings.is_empty());
}

#[test]
fn node_name_defaults_to_the_host_name() {
    let c = parse(&[]).unwrap();
    assert!(!c.node_name.is_empty());
    assert_eq!(c.node_name, gethostname());
}

fn gethostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[test]
fn files_merge_in_order_then_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let confd = dir.path().join("conf.d");
    std::fs::create_dir(&confd).unwrap();
    // Alphabetical order inside the directory: 10-b after 01-a, and non-JSON ignored.
    write(
        &confd,
        "10-b.json",
        r#"{"node_name": "from-b", "tags": {"b": "2", "shared": "b"}, "event_handlers": ["b.sh"]}"#,
    );
    write(
        &confd,
        "01-a.json",
        r#"{"node_name": "from-a", "log_level": "debug", "tags": {"a": "1", "shared": "a"},
            "event_handlers": ["a.sh"], "start_join": ["10.0.0.1"], "retry_join": ["r1"]}"#,
    );
    write(&confd, "zz.txt", "not json at all");
    std::fs::create_dir(confd.join("sub.json")).unwrap();
    let first = write(
        dir.path(),
        "first.json",
        r#"{"node_name": "from-first", "profile": "wan", "event_handlers": ["first.sh"]}"#,
    );
    let c = parse(&[
        "-config-file",
        &first,
        "-config-dir",
        confd.to_str().unwrap(),
        "-event-handler=flag.sh",
        "-tag",
        "shared=flag",
        "-join",
        "10.0.0.2",
        "-retry-join=r2",
    ])
    .unwrap();
    // Later files win, the directory after the file named first.
    assert_eq!(c.node_name, "from-b");
    assert_eq!(c.log_level, LogLevel::Debug);
    assert_eq!(c.profile, Profile::Wan);
    // Appended in order: files, then flags.
    assert_eq!(c.event_handlers, ["first.sh", "a.sh", "b.sh", "flag.sh"]);
    assert_eq!(c.start_join, ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(c.retry_join, ["r1", "r2"]);
    // Tags merge key by key; the flag wins for the shared key.
    assert_eq!(c.tags["a"], "1");
    assert_eq!(c.tags["b"], "2");
    assert_eq!(c.tags["shared"], "flag");
    // A flag over a file.
    let c = parse(&["-config-file", &first, "-node", "from-flag"]).unwrap();
    assert_eq!(c.node_name, "from-flag");
}

#[test]
fn unknown_keys_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "bad.json",
        r#"{"node_name": "x", "bind_addr": "1.2.3.4"}"#,
    );
    let e = parse(&["-config-file", &f]).unwrap_err().to_string();
    assert!(e.contains("bad.json"), "{e}");
    assert!(e.contains("\"bind_addr\""), "{e}");
    // In a directory too.
    let e = parse(&["-config-dir", dir.path().to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.json") && e.contains("bind_addr"), "{e}");
    // A missing file is named.
    let e = parse(&["-config-file=/nonexistent/serf.json"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/serf.json"), "{e}");
}

#[test]
fn settings_that_cannot_work_together_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let tags_file = dir.path().join("tags.json");
    let ring = dir.path().join("ring.json");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["-tag", "a=b", "-tags-file", tags_file.to_str().unwrap()],
            "Tags config not allowed while using tag files",
        ),
        (
            vec!["-role", "web", "-tags-file", tags_file.to_str().unwrap()],
            "tag files",
        ),
        (
            vec!["-encrypt", KEY_A, "-keyring-file", ring.to_str().unwrap()],
            "not both",
        ),
        (vec!["-encrypt", "@@@"], "serf keygen"),
        (vec!["-encrypt", "5K9OtfP7efFrNKe5WCQvXw=="], "32 bytes"),
        (
            vec!["-discover", "c", "-mdns-disable-ipv4", "-mdns-disable-ipv6"],
            "both IPv4 and IPv6 are disabled",
        ),
        (vec!["-mdns-iface", "lo"], "without enabling mDNS discovery"),
        (vec!["-discover", "two words"], "invalid discover name"),
        (
            vec!["-event-handler", "member-joined=x.sh"],
            "\"member-joined\"",
        ),
        (vec!["-log-level", "loud"], "Invalid log level: LOUD"),
        (vec!["-profile", "moon"], "Unknown profile: moon"),
        (vec!["-protocol", "9"], "between 2 and 5"),
        (vec!["-bind", "1.2.3.4:notaport"], "Invalid bind address"),
        (vec!["-rpc-addr", "127.0.0.1"], "missing port"),
        (vec!["-iface", "no-such-if0"], "no-such-if0"),
    ];
    for (a, want) in cases {
        let mut a = a;
        a.push("-node=n");
        let e = parse(&a).unwrap_err().to_string();
        assert!(e.contains(want), "{a:?}: {e}");
    }
}

#[test]
fn what_go_only_warns_about_is_raised_and_reported() {
    let c = parse(&[
        "-node=n",
        "-retry-interval=100ms",
        "-broadcast-timeout=10ms",
        "-role=web",
        "-rejoin",
    ])
    .unwrap();
    assert_eq!(c.retry_interval, Duration::from_secs(1));
    assert_eq!(c.broadcast_timeout, Duration::from_secs(1));
    assert_eq!(c.tags["role"], "web");
    let w = c.warnings.join("\n");
    for want in [
        "RetryInterval",
        "BroadcastTimeout",
        "Role",
        "RejoinAfterLeave",
    ] {
        assert!(w.contains(want), "{want} in {w}");
    }
}

#[test]
fn iface_picks_the_loopback_address() {
    let c = parse(&["-node=n", "-iface=lo", "-bind=0.0.0.0:5000"]).unwrap();
    assert!(c.bind.ip().is_loopback(), "{}", c.bind);
    assert_eq!(c.bind.port(), 5000);
    assert!(parse(&["-node=n", "-iface=lo", "-bind=127.0.0.1"]).is_ok());
    let e = parse(&["-node=n", "-iface=lo", "-bind=10.9.9.9"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("has no '10.9.9.9' address"), "{e}");
}

#[test]
fn the_core_config_follows_profile_limits_and_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "c.json",
        r#"{"profile": "local", "reconnect_timeout": "1h", "tombstone_timeout": "2h",
            "reconnect_interval": "10s", "query_response_size_limit": 2048,
            "user_event_size_limit": 1024, "enable_compression": false,
            "disable_name_resolution": true, "rejoin_after_leave": true,
            "snapshot_path": "/tmp/x", "broadcast_timeout": "7s"}"#,
    );
    let c = parse(&["-node=n", "-config-file", &f, "-tag", "dc=eu", "-role=web"]).unwrap();
    let core = serf_config(&c).unwrap();
    let local = serf_proto::memberlist::Config::local();
    assert_eq!(core.memberlist.probe_timeout, local.probe_timeout);
    assert_eq!(core.memberlist.gossip_interval, local.gossip_interval);
    assert_eq!(core.reconnect_timeout, Duration::from_secs(3600));
    assert_eq!(core.tombstone_timeout, Duration::from_secs(7200));
    assert_eq!(core.reconnect_interval, Duration::from_secs(10));
    assert_eq!(core.broadcast_timeout, Duration::from_secs(7));
    assert_eq!(core.query_response_size_limit, 2048);
    assert_eq!(core.user_event_size_limit, 1024);
    assert!(core.memberlist.compression.is_none());
    assert!(!core.enable_name_conflict_resolution);
    assert!(core.rejoin_after_leave && core.snapshot);
    assert_eq!(core.coalesce_period, Duration::from_secs(3));
    assert_eq!(core.user_quiescent_period, Duration::from_secs(1));
    assert_eq!(core.tags["dc"], "eu");
    assert_eq!(core.tags["role"], "web");
    assert!(core.memberlist.keyring.is_none());
    // The flag clears compression too, and by default it is on.
    let core = serf_config(&parse(&["-node=n", "-disable-compression"]).unwrap()).unwrap();
    assert!(core.memberlist.compression.is_none());
    let core = serf_config(&parse(&["-node=n"]).unwrap()).unwrap();
    assert!(core.memberlist.compression.is_some());
}

#[test]
fn oversized_tags_and_limits_are_refused_by_serf_config() {
    let big = format!("big={}", "x".repeat(600));
    let c = parse(&["-node=n", "-tag", &big]).unwrap();
    let e = serf_config(&c).unwrap_err().to_string();
    assert!(e.contains("tags take") && e.contains("512"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "c.json", r#"{"user_event_size_limit": 100000}"#);
    let c = parse(&["-node=n", "-config-file", &f]).unwrap();
    let e = serf_config(&c).unwrap_err().to_string();
    assert!(e.contains("user_event_size_limit"), "{e}");
}

#[test]
fn keyring_comes_from_the_key_or_the_file_and_is_written_back() {
    let c = parse(&["-node=n", "-encrypt", KEY_A]).unwrap();
    let core = serf_config(&c).unwrap();
    let ring = core.memberlist.keyring.unwrap();
    assert_eq!(ring.keys().len(), 1);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    // A keyring file must exist, as in Go.
    let c = parse(&["-node=n", "-keyring-file", path.to_str().unwrap()]).unwrap();
    let e = serf_config(&c).unwrap_err().to_string();
    assert!(e.contains("keyring.json"), "{e}");
    std::fs::write(&path, "[]").unwrap();
    let e = serf_config(&c).unwrap_err().to_string();
    assert!(e.contains("no keys"), "{e}");
    std::fs::write(&path, format!("[\"{KEY_B}\", \"{KEY_A}\"]")).unwrap();
    let core = serf_config(&c).unwrap();
    let ring = core.memberlist.keyring.unwrap();
    assert_eq!(ring.keys().len(), 2);
    let b = serf_agent::config::parse_agent_args(&args(&["-node=n", "-encrypt", KEY_B]))
        .unwrap()
        .encrypt_key
        .unwrap();
    assert_eq!(ring.primary(), &b, "the first key is the primary");

    // Written back primary first, mode 0600, and read again.
    let keys: Vec<SecretKey> = ring.keys().iter().rev().cloned().collect();
    save_keyring_file(&path, &keys).unwrap();
    let back = load_keyring_file(&path).unwrap();
    assert_eq!(back.keys(), &keys[..]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(KEY_A) && text.contains(KEY_B), "{text}");
    assert_private(&path);
}

#[test]
fn tags_file_is_read_at_start_and_written_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tags.json");
    let c = parse(&["-node=n", "-tags-file", path.to_str().unwrap()]).unwrap();
    // Missing: no tags, no error.
    assert!(load_tags_file(&path).unwrap().is_none());
    assert!(serf_config(&c).unwrap().tags.is_empty());
    let mut tags = serf_proto::serf::Tags::new();
    tags.insert("role".into(), "db".into());
    tags.insert("dc".into(), "eu\tw".into());
    save_tags_file(&path, &tags).unwrap();
    assert_private(&path);
    assert_eq!(serf_config(&c).unwrap().tags, tags);
    std::fs::write(&path, r#"{"a": 1}"#).unwrap();
    let e = serf_config(&c).unwrap_err().to_string();
    assert!(
        e.contains("tags.json") && e.contains("Failed to decode tags file"),
        "{e}"
    );
}

fn assert_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", path.display());
}

#[test]
fn a_huge_file_is_refused_without_reading_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.json");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(64 << 20).unwrap();
    let e = parse(&["-node=n", "-config-file", path.to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("huge.json") && e.contains("larger than"), "{e}");
}

#[test]
fn help_is_requested_and_teaches() {
    assert!(matches!(
        parse(&["--help"]),
        Err(ConfigError::HelpRequested)
    ));
    let h = serf_agent::config::agent_help();
    assert!(h.starts_with("Usage: serf agent [options]"));
    assert!(h.contains("Examples:") && h.contains("user:NAME"));
}
