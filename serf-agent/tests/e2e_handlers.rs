//! Event handlers end to end: real agents, real scripts, driven by the CLI.

mod cli;

use cli::*;
use std::path::Path;

fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    let mut perm = std::fs::metadata(&p).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&p, perm).unwrap();
    p.display().to_string()
}

#[test]
fn events_reach_handlers_with_gos_environment_and_stdin() {
    let dir = tempdir();
    let d = dir.path();
    let out = d.join("events.out");
    let h = script(
        d,
        "h.sh",
        &format!(
            "{{ echo \"EVENT=$SERF_EVENT SELF=$SERF_SELF_NAME ROLE=$SERF_SELF_ROLE TAG=$SERF_TAG_DC UE=$SERF_USER_EVENT\"; cat; echo END; }} >> {}",
            out.display()
        ),
    );
    let bin = ours();
    let a = start(
        &bin,
        d,
        "a",
        &[
            "-profile=local",
            "-tag",
            "role=web",
            "-tag",
            "dc=east",
            &format!("-event-handler=member-join,user:deploy={h}"),
        ],
    );
    let _b = start(
        &bin,
        d,
        "b",
        &["-profile=local", &format!("-join={}", a.bind)],
    );
    cli(&bin, &a.rpc, &["event", "other", "ignored"]);
    cli(&bin, &a.rpc, &["event", "deploy", "v2"]);
    eventually(
        "the join and the deploy event in the handler's output",
        || {
            let t = std::fs::read_to_string(&out).unwrap_or_default();
            t.contains("UE=deploy") && t.contains("b\t127.0.0.1")
        },
    );
    let t = std::fs::read_to_string(&out).unwrap();
    assert!(
        t.contains("EVENT=member-join SELF=a ROLE=web TAG=east"),
        "{t}"
    );
    // Member events: name, IP, role, tags per line on stdin.
    assert!(t.contains("b\t127.0.0.1\t\t"), "{t}");
    assert!(
        t.contains("EVENT=user SELF=a ROLE=web TAG=east UE=deploy\nv2\nEND"),
        "{t}"
    );
    assert!(
        !t.contains("ignored"),
        "the filter keeps only user:deploy: {t}"
    );
}

#[test]
fn queries_are_answered_by_handler_output() {
    let dir = tempdir();
    let d = dir.path();
    let h = script(d, "q.sh", "echo \"up from $SERF_SELF_NAME: $(cat)\"");
    let bin = ours();
    let a = start(
        &bin,
        d,
        "a",
        &[
            "-profile=local",
            &format!("-event-handler=query:uptime={h}"),
        ],
    );
    let (code, out, err) = cli(&bin, &a.rpc, &["query", "-timeout=2s", "uptime", "please"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Response from 'a': up from a: please"),
        "{out}"
    );
    assert!(out.contains("Total Responses: 1"), "{out}");
    // HashiCorp's JSON format.
    let (_, out, _) = cli(
        &bin,
        &a.rpc,
        &["query", "-timeout=2s", "-format=json", "uptime", "x"],
    );
    assert!(
        out.contains("\"Responses\": {\n    \"a\": \"up from a: x\\n\"\n  }"),
        "{out}"
    );
}

#[test]
fn a_slow_handler_delays_neither_another_handler_nor_the_agent() {
    let dir = tempdir();
    let d = dir.path();
    let fast_out = d.join("fast.out");
    // Slow until the test says stop (at most 30 s), so no script outlives the test.
    let stop = d.join("stop");
    let slow = script(
        d,
        "slow.sh",
        &format!(
            "i=0; while [ ! -e {} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done",
            stop.display()
        ),
    );
    let fast = script(
        d,
        "fast.sh",
        &format!("echo \"$SERF_USER_EVENT\" >> {}", fast_out.display()),
    );
    let bin = ours();
    let a = start(
        &bin,
        d,
        "a",
        &[
            "-profile=local",
            &format!("-event-handler=user:slow={slow}"),
            &format!("-event-handler=user={fast}"),
        ],
    );
    cli(&bin, &a.rpc, &["event", "-coalesce=false", "slow"]);
    cli(&bin, &a.rpc, &["event", "-coalesce=false", "next"]);
    // Within a few seconds, far less than the slow script's 30 s.
    let start = std::time::Instant::now();
    eventually("the fast handler ran for both events", || {
        std::fs::read_to_string(&fast_out)
            .map(|t| t.contains("slow") && t.contains("next"))
            .unwrap_or(false)
    });
    assert!(start.elapsed() < std::time::Duration::from_secs(25));
    // The agent still answers while the slow script runs.
    let (code, _, _) = cli(&bin, &a.rpc, &["members"]);
    assert_eq!(code, 0);
    std::fs::write(&stop, "").unwrap();
}

#[test]
fn sighup_reloads_handlers_and_tags_from_the_config_file() {
    let dir = tempdir();
    let d = dir.path();
    let out = d.join("reload.out");
    let h = script(
        d,
        "r.sh",
        &format!("echo \"$SERF_USER_EVENT\" >> {}", out.display()),
    );
    let cfg = d.join("agent.json");
    std::fs::write(&cfg, r#"{"tags": {"v": "1"}}"#).unwrap();
    let bin = ours();
    let a = start(
        &bin,
        d,
        "a",
        &["-profile=local", &format!("-config-file={}", cfg.display())],
    );
    std::fs::write(
        &cfg,
        format!(r#"{{"tags": {{"v": "2"}}, "event_handlers": ["user={h}"]}}"#),
    )
    .unwrap();
    a.signal("HUP");
    eventually("the new tags", || {
        cli(&bin, &a.rpc, &["members"]).1.contains("v=2")
    });
    cli(&bin, &a.rpc, &["event", "after-reload"]);
    eventually("the new handler to run", || {
        std::fs::read_to_string(&out)
            .map(|t| t.contains("after-reload"))
            .unwrap_or(false)
    });
}
