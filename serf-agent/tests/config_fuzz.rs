//! Hostile configuration never panics: arbitrary bytes and arbitrary JSON (with the real
//! keys and random values) as a config file, and arbitrary flag lists, give a config or a
//! clear error; whatever parses also builds a core config or a clear error.
//!
//! Address settings are left out of the random input: a random host name would be looked
//! up in DNS, and tests send no traffic off the machine (they are covered by unit tests
//! with IP literals and `localhost`).

use proptest::prelude::*;
use serde_json::Value;
use serf_agent::config::{parse_agent_args, serf_config};

const KEYS: &[&str] = &[
    "node_name",
    "role",
    "tags",
    "tags_file",
    "encrypt_key",
    "log_level",
    "rpc_addr",
    "protocol",
    "replay_on_join",
    "query_size_limit",
    "query_response_size_limit",
    "user_event_size_limit",
    "start_join",
    "event_handlers",
    "retry_join",
    "profile",
    "leave_on_terminate",
    "discover",
    "mdns",
    "reconnect_interval",
    "reconnect_timeout",
    "tombstone_timeout",
    "retry_interval",
    "broadcast_timeout",
    "retry_max_attempts",
    "enable_compression",
    "statsd_addr",
    "Node_Name",
    "unknown",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z0-9:.=,*\\-\\[\\] ]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("30s"),
            Just("1m30s"),
            Just("-1s"),
            Just("lan"),
            Just("debug"),
            Just("127.0.0.1:0"),
            Just("5"),
            Just("user:x=y.sh"),
            Just("9999999999h"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn config_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(prop::sample::select(KEYS), json_value(), 0..8)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

fn check_file(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    std::fs::write(&path, bytes).unwrap();
    let args = vec![
        "-node=n".to_owned(),
        "-config-file".to_owned(),
        path.to_str().unwrap().to_owned(),
    ];
    match parse_agent_args(&args) {
        Ok(cfg) => {
            let _ = serf_config(&cfg);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_file(&bytes);
    }

    #[test]
    fn arbitrary_json_with_real_keys_never_panics(v in config_object()) {
        check_file(&serde_json::to_vec(&v).unwrap());
    }

    #[test]
    fn arbitrary_flags_never_panic(
        flags in prop::collection::vec(
            prop_oneof![
                "-{1,3}[a-z\\-]{0,12}(=[a-z0-9.:=]{0,8})?",
                "[a-z0-9.:=]{0,8}",
                prop::sample::select(vec![
                    "-tag", "-join", "-retry-interval", "-encrypt", "-protocol", "-log-level",
                    "-replay", "--", "-h",
                ]).prop_map(str::to_owned),
            ],
            0..6,
        ).prop_filter("no address flags (they resolve host names)", |f| {
            !f.iter().any(|a| ["bind", "advertise", "rpc-addr", "prometheus"]
                .iter().any(|n| a.contains(n)))
        })
    ) {
        let mut args = vec!["-node=n".to_owned()];
        args.extend(flags);
        if let Ok(cfg) = parse_agent_args(&args) {
            let _ = serf_config(&cfg);
        }
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let mut doc = String::from("{\"tags\":");
    doc.push_str(&"[".repeat(100_000));
    check_file(doc.as_bytes());
}
