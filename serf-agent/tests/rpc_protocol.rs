//! The agent's RPC against a reference client written from go-serf-agent.md §1: session
//! rules, Go's error strings, bodies exactly where Go sends them, streams and stop.

mod common;

use common::*;
use serf_agent::rpc::msgpack::Value;

#[tokio::test]
async fn commands_before_the_handshake_are_refused_and_the_connection_closed() {
    let a = start_agent("a", None).await;
    let mut c = Raw::connect(a.rpc).await;
    c.send(&[header("members", 0)]).await;
    assert_eq!(c.header(0).await, "Handshake required");
    assert!(c.closed().await);
}

#[tokio::test]
async fn handshake_versions_and_repeats_follow_go() {
    let a = start_agent("a", None).await;
    let mut c = Raw::connect(a.rpc).await;
    c.send(&[header("handshake", 0), map(&[("Version", Value::Uint(2))])])
        .await;
    assert_eq!(c.header(0).await, "Unsupported IPC version");
    // Still open, still version 0.
    c.handshake(1).await;
    c.send(&[header("handshake", 2), map(&[("Version", Value::Uint(1))])])
        .await;
    assert_eq!(c.header(2).await, "Handshake already performed");
    // Seq 0 is echoed too, and `members` always has a body.
    c.send(&[header("members", 0)]).await;
    assert_eq!(c.header(0).await, "");
    let body = c.read().await.unwrap();
    let Some(Value::Array(members)) = body.get("Members") else {
        panic!("members body {body:?}");
    };
    assert_eq!(members.len(), 1);
    let m = &members[0];
    assert_eq!(m.get("Name"), Some(&s("a")));
    // Addr is 16 bytes, IPv4-mapped, as Go's default agent sends it.
    let Some(Value::Bin(addr)) = m.get("Addr") else {
        panic!("Addr must be bin: {m:?}");
    };
    assert_eq!(addr.len(), 16);
    assert_eq!(&addr[10..], &[0xff, 0xff, 127, 0, 0, 1]);
    assert_eq!(m.get("Status"), Some(&s("alive")));
    assert_eq!(
        m.get("Port"),
        Some(&Value::Uint(u64::from(a.gossip.port())))
    );
}

#[tokio::test]
async fn unknown_commands_close_the_connection() {
    let a = start_agent("a", None).await;
    let mut c = Raw::connect(a.rpc).await;
    c.handshake(1).await;
    c.send(&[header("bogus", 2)]).await;
    assert_eq!(c.header(2).await, "Unsupported command");
    assert!(c.closed().await);
}

#[tokio::test]
async fn auth_is_enforced_with_gos_strings() {
    let a = start_agent("a", Some("sekret")).await;
    let mut c = Raw::connect(a.rpc).await;
    c.handshake(1).await;
    // Go does not read the body of a request refused for auth: send none.
    c.send(&[header("members", 2)]).await;
    assert_eq!(c.header(2).await, "Authentication required");
    c.send(&[header("auth", 3), map(&[("AuthKey", s("wrong"))])])
        .await;
    assert_eq!(c.header(3).await, "Invalid authentication token");
    c.send(&[header("auth", 4), map(&[("AuthKey", s("sekret"))])])
        .await;
    assert_eq!(c.header(4).await, "");
    c.send(&[header("members", 5)]).await;
    assert_eq!(c.header(5).await, "");
    assert!(c.read().await.unwrap().get("Members").is_some());

    // Our own client and the CLI's path: a wrong token is refused at connect.
    let err = serf_agent::rpc::client::RpcClient::connect(&a.rpc.to_string(), Some("nope"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "Invalid authentication token");
}

#[tokio::test]
async fn partial_bodies_bin_keys_and_any_integer_width_are_accepted() {
    let a = start_agent("a", None).await;
    let mut c = Raw::connect(a.rpc).await;
    // Handshake with the version as int32 and the key as bin, as some clients send.
    c.send(&[
        header("handshake", 1),
        Value::Map(vec![(Value::Bin(b"Version".to_vec()), Value::Uint(1))]),
    ])
    .await;
    assert_eq!(c.header(1).await, "");
    // An event with only a name: payload missing, coalesce missing.
    c.send(&[header("event", 2), map(&[("Name", s("deploy"))])])
        .await;
    assert_eq!(c.header(2).await, "");
    // A nil body is an empty struct.
    c.send(&[header("event", 3), Value::Nil]).await;
    assert_eq!(c.header(3).await, "");
}

#[tokio::test]
async fn join_always_has_a_body_even_on_error() {
    let a = start_agent("a", None).await;
    let b = start_agent("b", None).await;
    let mut c = Raw::connect(a.rpc).await;
    c.handshake(1).await;
    c.send(&[
        header("join", 2),
        map(&[
            ("Existing", Value::Array(vec![s(&b.gossip.to_string())])),
            ("Replay", Value::Bool(false)),
        ]),
    ])
    .await;
    assert_eq!(c.header(2).await, "");
    assert_eq!(c.read().await.unwrap().get("Num"), Some(&Value::Uint(1)));
    // A port nobody listens on: an error, and the body still follows.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    c.send(&[
        header("join", 3),
        map(&[("Existing", Value::Array(vec![s(&dead_addr.to_string())]))]),
    ])
    .await;
    assert_ne!(c.header(3).await, "");
    assert_eq!(c.read().await.unwrap().get("Num"), Some(&Value::Uint(0)));
}

#[tokio::test]
async fn members_filtered_anchors_by_concatenation_and_bad_regex_closes() {
    let a = start_agent("web-1", None).await;
    let mut c = Raw::connect(a.rpc).await;
    c.handshake(1).await;
    let filtered = |name: &str| {
        vec![
            header("members-filtered", 2),
            map(&[
                ("Name", s(name)),
                ("Status", s("alive|failed")),
                ("Tags", map(&[])),
            ]),
        ]
    };
    c.send(&filtered("web-.*")).await;
    assert_eq!(c.header(2).await, "");
    let Some(Value::Array(m)) = c.read().await.unwrap().get("Members").cloned() else {
        panic!()
    };
    assert_eq!(m.len(), 1);
    c.send(&filtered("web")).await;
    assert_eq!(c.header(2).await, "");
    let Some(Value::Array(m)) = c.read().await.unwrap().get("Members").cloned() else {
        panic!()
    };
    assert!(m.is_empty(), "the name must match in full");
    // A regex that does not compile: closed with no reply (Go's decode-failure rule).
    c.send(&filtered("(")).await;
    assert!(c.closed().await);
}

#[tokio::test]
async fn key_commands_without_encryption_reply_with_an_error_and_a_body() {
    let a = start_agent("a", None).await;
    let mut c = Raw::connect(a.rpc).await;
    c.handshake(1).await;
    c.send(&[header("list-keys", 2)]).await;
    assert_ne!(c.header(2).await, "");
    let body = c.read().await.unwrap();
    assert!(body.get("NumNodes").is_some() && body.get("Messages").is_some());
    c.send(&[header("install-key", 3), map(&[("Key", s("not base64!"))])])
        .await;
    assert_ne!(c.header(3).await, "");
    assert_eq!(c.read().await.unwrap().get("Keys"), Some(&Value::Nil));
}

#[tokio::test]
async fn stats_has_gos_five_sections_and_coordinates_answer_for_any_name() {
    let a = start_agent("a", None).await;
    let mut c = Raw::connect(a.rpc).await;
    c.handshake(1).await;
    c.send(&[header("stats", 2)]).await;
    assert_eq!(c.header(2).await, "");
    let stats = c.read().await.unwrap();
    for section in ["agent", "runtime", "serf", "tags", "event_handlers"] {
        assert!(stats.get(section).is_some(), "missing {section}: {stats:?}");
    }
    let serf = stats.get("serf").unwrap();
    for key in [
        "members",
        "failed",
        "left",
        "health_score",
        "member_time",
        "event_time",
        "query_time",
        "intent_queue",
        "event_queue",
        "query_queue",
        "encrypted",
        "coordinate_resets",
    ] {
        assert!(serf.get(key).is_some(), "serf.{key} missing");
    }
    assert_eq!(stats.get("agent").unwrap().get("name"), Some(&s("a")));
    c.send(&[header("get-coordinate", 3), map(&[("Node", s("a"))])])
        .await;
    assert_eq!(c.header(3).await, "");
    let body = c.read().await.unwrap();
    assert_eq!(body.get("Ok"), Some(&Value::Bool(true)));
    c.send(&[header("get-coordinate", 4), map(&[("Node", s("nobody"))])])
        .await;
    assert_eq!(c.header(4).await, "");
    let body = c.read().await.unwrap();
    assert_eq!(body.get("Ok"), Some(&Value::Bool(false)));
    assert_eq!(body.get("Coord").unwrap().get("Vec"), Some(&Value::Nil));
}

#[tokio::test]
async fn streams_ack_first_then_deliver_records_until_stopped() {
    let a = start_agent("a", None).await;
    let mut listener = Raw::connect(a.rpc).await;
    listener.handshake(1).await;
    listener
        .send(&[header("stream", 7), map(&[("Type", s("bogus"))])])
        .await;
    assert_eq!(listener.header(7).await, "Invalid event filter");
    listener
        .send(&[header("stream", 7), map(&[("Type", s("user:deploy"))])])
        .await;
    assert_eq!(listener.header(7).await, "");
    listener
        .send(&[header("stream", 7), map(&[("Type", s("*"))])])
        .await;
    assert_eq!(
        listener.header(7).await,
        "Stream with given sequence exists"
    );

    let mut sender = Raw::connect(a.rpc).await;
    sender.handshake(1).await;
    for (name, payload) in [("other", "x"), ("deploy", "v2")] {
        sender
            .send(&[
                header("event", 2),
                map(&[
                    ("Name", s(name)),
                    ("Payload", Value::Bin(payload.as_bytes().to_vec())),
                    ("Coalesce", Value::Bool(false)),
                ]),
            ])
            .await;
        assert_eq!(sender.header(2).await, "");
    }
    // Only `deploy` passes the filter.
    assert_eq!(listener.header(7).await, "");
    let rec = listener.read().await.unwrap();
    assert_eq!(rec.get("Event"), Some(&s("user")));
    assert_eq!(rec.get("Name"), Some(&s("deploy")));
    assert_eq!(rec.get("Payload"), Some(&Value::Bin(b"v2".to_vec())));
    assert_eq!(rec.get("Coalesce"), Some(&Value::Bool(false)));
    assert!(matches!(rec.get("LTime"), Some(Value::Uint(_))));

    // stop always succeeds; afterwards no record arrives for seq 7.
    listener
        .send(&[header("stop", 8), map(&[("Stop", Value::Uint(7))])])
        .await;
    assert_eq!(listener.header(8).await, "");
    sender
        .send(&[header("event", 3), map(&[("Name", s("deploy"))])])
        .await;
    assert_eq!(sender.header(3).await, "");
    listener
        .send(&[header("stop", 9), map(&[("Stop", Value::Uint(99))])])
        .await;
    assert_eq!(
        listener.header(9).await,
        "",
        "no stream record before this reply"
    );
}

#[tokio::test]
async fn queries_stream_acks_responses_and_done_and_respond_takes_the_id() {
    let a = start_agent("a", None).await;
    let mut answerer = Raw::connect(a.rpc).await;
    answerer.handshake(1).await;
    answerer
        .send(&[header("stream", 5), map(&[("Type", s("query"))])])
        .await;
    assert_eq!(answerer.header(5).await, "");

    let mut asker = Raw::connect(a.rpc).await;
    asker.handshake(1).await;
    asker
        .send(&[header("query", 2), map(&[("Name", s("_serf_x"))])])
        .await;
    assert_eq!(
        asker.header(2).await,
        "Queries cannot contain the '_serf_' prefix"
    );
    asker
        .send(&[
            header("query", 3),
            map(&[
                ("Name", s("load")),
                ("Payload", Value::Bin(b"?".to_vec())),
                ("RequestAck", Value::Bool(true)),
                // 5 s in nanoseconds as go-msgpack writes an int64 (signed marker).
                ("Timeout", Value::Uint(5_000_000_000)),
            ]),
        ])
        .await;
    assert_eq!(asker.header(3).await, "");

    assert_eq!(answerer.header(5).await, "");
    let q = answerer.read().await.unwrap();
    assert_eq!(q.get("Event"), Some(&s("query")));
    assert_eq!(q.get("Name"), Some(&s("load")));
    assert_eq!(q.get("ID"), Some(&Value::Uint(1)));
    answerer
        .send(&[
            header("respond", 6),
            map(&[
                ("ID", Value::Uint(42)),
                ("Payload", Value::Bin(b"x".to_vec())),
            ]),
        ])
        .await;
    assert_eq!(answerer.header(6).await, "No pending queries matching ID");
    answerer
        .send(&[
            header("respond", 7),
            map(&[
                ("ID", Value::Uint(1)),
                ("Payload", Value::Bin(b"0.5".to_vec())),
            ]),
        ])
        .await;
    assert_eq!(answerer.header(7).await, "");

    let mut kinds = Vec::new();
    loop {
        assert_eq!(asker.header(3).await, "");
        let r = asker.read().await.unwrap();
        let kind = r.get("Type").cloned().unwrap();
        if kind == s("response") {
            assert_eq!(r.get("From"), Some(&s("a")));
            assert_eq!(r.get("Payload"), Some(&Value::Bin(b"0.5".to_vec())));
        }
        if kind == s("ack") || kind == s("done") {
            assert_eq!(r.get("Payload"), Some(&Value::Nil));
        }
        kinds.push(kind.clone());
        if kind == s("done") {
            assert_eq!(r.get("From"), Some(&s("")));
            break;
        }
    }
    assert!(
        kinds.contains(&s("ack")) && kinds.contains(&s("response")),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn reachability_ping_is_allowed_with_a_nil_payload() {
    let a = start_agent("a", None).await;
    let mut c = Raw::connect(a.rpc).await;
    c.handshake(1).await;
    c.send(&[
        header("query", 2),
        map(&[
            ("Name", s("_serf_ping")),
            ("Payload", Value::Nil),
            ("RequestAck", Value::Bool(true)),
        ]),
    ])
    .await;
    assert_eq!(c.header(2).await, "");
    let mut acks = 0;
    loop {
        assert_eq!(c.header(2).await, "");
        let r = c.read().await.unwrap();
        if r.get("Type") == Some(&s("ack")) {
            acks += 1;
        }
        if r.get("Type") == Some(&s("done")) {
            break;
        }
    }
    assert_eq!(acks, 1);
}

#[tokio::test]
async fn monitor_replays_the_log_filters_levels_and_is_one_per_connection() {
    let a = start_agent("a", None).await;
    a.logger.debug("agent", "a debug line");
    a.logger.info("agent", "an info line");
    let mut c = Raw::connect(a.rpc).await;
    c.handshake(1).await;
    c.send(&[header("monitor", 2), map(&[("LogLevel", s("verbose"))])])
        .await;
    assert_eq!(c.header(2).await, "Unknown log level: VERBOSE");
    c.send(&[header("monitor", 3), map(&[("LogLevel", s("info"))])])
        .await;
    assert_eq!(c.header(3).await, "");
    let mut lines = Vec::new();
    loop {
        assert_eq!(c.header(3).await, "");
        let Some(Value::Str(l)) = c.read().await.unwrap().get("Log").cloned() else {
            panic!()
        };
        let l = String::from_utf8(l).unwrap();
        assert!(!l.ends_with('\n'));
        let done = l.ends_with("an info line");
        lines.push(l);
        if done {
            break;
        }
    }
    assert!(lines.iter().all(|l| !l.contains("[DEBUG]")), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("[INFO] agent: Serf agent starting"))
    );
    c.send(&[header("monitor", 4), map(&[("LogLevel", s("debug"))])])
        .await;
    // A record may come first; skip to our reply.
    loop {
        let h = c.read().await.unwrap();
        if h.get("Seq") == Some(&Value::Uint(4)) {
            assert_eq!(h.get("Error"), Some(&s("Monitor already exists")));
            break;
        }
        c.read().await.unwrap();
    }
}

#[tokio::test]
async fn leave_replies_then_the_agent_shuts_down() {
    let mut a = start_agent("a", None).await;
    let mut c = Raw::connect(a.rpc).await;
    c.handshake(1).await;
    c.send(&[header("leave", 2)]).await;
    // Half-close at once, as some clients do: the leave must still complete.
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut c.sock).await;
    assert_eq!(c.header(2).await, "");
    let code = tokio::time::timeout(WAIT, &mut a.run)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, 0);
}

#[tokio::test]
async fn tags_overlay_and_delete_and_reach_members() {
    let a = start_agent("a", None).await;
    let mut c = Raw::connect(a.rpc).await;
    c.handshake(1).await;
    c.send(&[
        header("tags", 2),
        map(&[
            ("Tags", map(&[("role", s("web")), ("dc", s("x"))])),
            ("DeleteTags", Value::Array(vec![])),
        ]),
    ])
    .await;
    assert_eq!(c.header(2).await, "");
    c.send(&[
        header("tags", 3),
        map(&[("DeleteTags", Value::Array(vec![s("dc")]))]),
    ])
    .await;
    assert_eq!(c.header(3).await, "");
    let tags = a.handle.local_member().tags;
    assert_eq!(tags.get("role").map(String::as_str), Some("web"));
    assert!(!tags.contains_key("dc"));
}
