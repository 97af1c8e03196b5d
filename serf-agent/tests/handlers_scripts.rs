//! Event handlers running real `/bin/sh` scripts: Go's environment and stdin, query
//! responses from output, and what Go lacks (serf #369): handlers that never block each
//! other, in-order delivery per handler, a bound on running scripts, bounded queues.
//!
//! Waits are bounded polls of files the scripts write; nothing asserts how fast anything
//! is.

use bytes::Bytes;
use serf_agent::config::LogLevel;
use serf_agent::handlers::{HandlerOptions, Handlers, SelfInfo};
use serf_proto::serf::{
    Event, Member, MemberEventKind, MemberStatus, QueryEvent, QueryHandle, Tags, UserEvent,
};
use serf_proto::{Instant, Name};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Logs = Arc<Mutex<Vec<(LogLevel, String)>>>;
type Responses = Arc<Mutex<Vec<(QueryHandle, Bytes)>>>;

struct Harness {
    handlers: Handlers,
    logs: Logs,
    responses: Responses,
}

fn harness(specs: &[String], options: HandlerOptions) -> Harness {
    let logs: Logs = Arc::default();
    let responses: Responses = Arc::default();
    let (l, r) = (Arc::clone(&logs), Arc::clone(&responses));
    let handlers = Handlers::with_options(
        specs,
        Arc::new(move |h, b| r.lock().unwrap().push((h, b))),
        Arc::new(move |level, line| l.lock().unwrap().push((level, line))),
        options,
    )
    .unwrap();
    Harness {
        handlers,
        logs,
        responses,
    }
}

fn me() -> SelfInfo {
    let mut tags = Tags::new();
    tags.insert("role".into(), "web".into());
    tags.insert("dc-name.x".into(), "eu west".into());
    SelfInfo {
        name: "node-1".into(),
        tags,
    }
}

fn user(name: &str, ltime: u64, payload: &str) -> Event {
    Event::User(UserEvent {
        ltime,
        name: name.into(),
        payload: Bytes::from(payload.to_owned()),
        coalesce: false,
    })
}

fn query(name: &str, handle: u64, payload: &str) -> Event {
    Event::Query(QueryEvent {
        handle: QueryHandle(handle),
        ltime: 42,
        name: name.into(),
        payload: Bytes::from(payload.to_owned()),
        source: Name::new("asker").unwrap(),
        deadline: Instant::from_secs(100),
    })
}

fn member(name: &str, ip: &str, tags: &[(&str, &str)]) -> Member {
    Member {
        name: Name::new(name).unwrap(),
        addr: format!("{ip}:7946").parse().unwrap(),
        tags: Arc::new(
            tags.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        status: MemberStatus::Alive,
        protocol: [1, 1, 1, 1, 1, 1],
    }
}

/// Polls until `f` holds, for at most 20 s (a loaded machine is slow; a bug never passes).
async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

#[tokio::test]
async fn user_event_gets_gos_environment_and_payload_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let script = format!(
        "{{ env | grep '^SERF_' | sort; echo ---; cat; }} > {}",
        q(&out)
    );
    let h = harness(
        &[format!("user:deploy={script}")],
        HandlerOptions::default(),
    );
    h.handlers.dispatch(&user("other", 1, "ignored"), &me());
    h.handlers.dispatch(&user("deploy", 7, "v1.2"), &me());
    h.handlers.wait_idle().await;
    let text = read(&out);
    let expected = "SERF_EVENT=user\nSERF_SELF_NAME=node-1\nSERF_SELF_ROLE=web\n\
                    SERF_TAG_DC_NAME_X=eu west\nSERF_TAG_ROLE=web\nSERF_USER_EVENT=deploy\n\
                    SERF_USER_LTIME=7\n---\nv1.2\n";
    assert_eq!(text, expected);
    assert_eq!(h.handlers.stats().runs, 1, "the other event does not match");
}

#[tokio::test]
async fn member_event_lines_escape_tabs_and_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let script = format!("{{ echo $SERF_EVENT; cat; }} > {}", q(&out));
    let h = harness(
        &[format!("member-join,member-leave={script}")],
        HandlerOptions::default(),
    );
    let members = vec![
        member("a", "10.0.0.1", &[("role", "db"), ("dc", "eu")]),
        member("b", "10.0.0.2", &[("role", "r\tx"), ("note", "two\nlines")]),
    ];
    h.handlers.dispatch(
        &Event::Member {
            kind: MemberEventKind::Failed,
            members: members.clone(),
        },
        &me(),
    );
    h.handlers.dispatch(
        &Event::Member {
            kind: MemberEventKind::Join,
            members,
        },
        &me(),
    );
    h.handlers.wait_idle().await;
    assert_eq!(
        read(&out),
        "member-join\na\t10.0.0.1\tdb\tdc=eu,role=db\nb\t10.0.0.2\tr\\tx\tnote=two\\nlines,role=r\\tx\n"
    );
}

#[tokio::test]
async fn query_is_answered_with_combined_output_on_success_only() {
    let h = harness(
        &[
            "query:ping=echo pong; echo warn >&2".to_owned(),
            "query:fail=echo broken; exit 3".to_owned(),
            "query:silent=true".to_owned(),
            "query:big=head -c 2000 /dev/zero | tr '\\0' x".to_owned(),
            "query:stdin=read line; echo got $line $SERF_QUERY_NAME $SERF_QUERY_LTIME".to_owned(),
        ],
        HandlerOptions::default(),
    );
    for (i, name) in ["ping", "fail", "silent", "big", "stdin"]
        .iter()
        .enumerate()
    {
        h.handlers.dispatch(&query(name, i as u64, "hello"), &me());
    }
    h.handlers.wait_idle().await;
    let mut responses = h.responses.lock().unwrap().clone();
    responses.sort_by_key(|(h, _)| *h);
    assert_eq!(
        responses,
        vec![
            (QueryHandle(0), Bytes::from("pong\nwarn\n")),
            (QueryHandle(4), Bytes::from("got hello stdin 42\n")),
        ]
    );
    let stats = h.handlers.stats();
    assert_eq!((stats.runs, stats.failures, stats.responses), (5, 1, 2));
    let logs = h.logs.lock().unwrap();
    assert!(
        logs.iter().any(|(l, m)| *l == LogLevel::Err
            && m.contains("exit status: 3")
            && m.contains("broken")),
        "the failure is logged with its output: {logs:?}"
    );
    assert!(
        logs.iter()
            .any(|(l, m)| *l == LogLevel::Warn && m.contains("2000 bytes") && m.contains("1024")),
        "an over-size response is logged, not sent: {logs:?}"
    );
}

#[tokio::test]
async fn each_handler_sees_its_events_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // A random short sleep makes any reordering show.
    let script = format!(
        "sleep 0.0$(( $SERF_USER_LTIME % 3 )); echo $SERF_USER_LTIME >> {}",
        q(&out)
    );
    let h = harness(&[script], HandlerOptions::default());
    for t in 1..=30 {
        h.handlers.dispatch(&user("e", t, ""), &me());
    }
    h.handlers.wait_idle().await;
    let seen: Vec<u64> = read(&out).lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(seen, (1..=30).collect::<Vec<_>>());
}

/// A handler (for every event) that records it started, then waits (bounded) for a
/// release file. The `*=` filter is needed because the script holds a '=': a spec is split
/// at its first '='.
fn blocking_script(started: &Path, release: &Path) -> String {
    format!(
        "*=touch {}; i=0; while [ ! -e {} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done",
        q(started),
        q(release)
    )
}

#[tokio::test]
async fn a_slow_handler_does_not_delay_another_and_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let (started, release, fast) = (
        dir.path().join("started"),
        dir.path().join("release"),
        dir.path().join("fast"),
    );
    let h = harness(
        &[
            blocking_script(&started, &release),
            format!("echo $SERF_USER_LTIME >> {}", q(&fast)),
        ],
        HandlerOptions {
            slow_after: Duration::from_millis(100),
            ..HandlerOptions::default()
        },
    );
    h.handlers.dispatch(&user("e", 1, ""), &me());
    wait_for("the slow handler to start", || started.exists()).await;
    h.handlers.dispatch(&user("e", 2, ""), &me());
    // The fast handler runs both events while the slow one is still on its first.
    wait_for("the fast handler", || read(&fast) == "1\n2\n").await;
    assert!(!release.exists());
    assert!(
        h.handlers.stats().running >= 1,
        "the slow handler still runs"
    );
    wait_for("the slow warning", || {
        h.logs
            .lock()
            .unwrap()
            .iter()
            .any(|(l, m)| *l == LogLevel::Warn && m.contains("slow"))
    })
    .await;
    std::fs::write(&release, "").unwrap();
    h.handlers.wait_idle().await;
    assert_eq!(h.handlers.stats().runs, 4);
}

#[tokio::test]
async fn running_scripts_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let h = harness(
        &[blocking_script(&a, &release), blocking_script(&b, &release)],
        HandlerOptions {
            max_running: 1,
            ..HandlerOptions::default()
        },
    );
    h.handlers.dispatch(&user("e", 1, ""), &me());
    wait_for("one script to start", || a.exists() || b.exists()).await;
    // Only one may run until it is released: the other cannot have started.
    assert_eq!(h.handlers.stats().running, 1);
    assert!(!(a.exists() && b.exists()));
    std::fs::write(&release, "").unwrap();
    h.handlers.wait_idle().await;
    assert!(a.exists() && b.exists());
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_new_events() {
    let dir = tempfile::tempdir().unwrap();
    let (started, release, seen) = (
        dir.path().join("started"),
        dir.path().join("release"),
        dir.path().join("seen"),
    );
    let script = format!(
        "{}; echo $SERF_USER_LTIME >> {}",
        blocking_script(&started, &release),
        q(&seen)
    );
    let h = harness(
        &[script],
        HandlerOptions {
            queue_len: 2,
            ..HandlerOptions::default()
        },
    );
    h.handlers.dispatch(&user("e", 1, ""), &me());
    wait_for("the first run", || started.exists()).await;
    for t in 2..=6 {
        h.handlers.dispatch(&user("e", t, ""), &me());
    }
    let stats = h.handlers.stats();
    assert_eq!((stats.drops, stats.queued), (3, 2));
    std::fs::write(&release, "").unwrap();
    h.handlers.wait_idle().await;
    assert_eq!(read(&seen), "1\n2\n3\n");
    let logs = h.logs.lock().unwrap();
    let drop_lines = logs.iter().filter(|(_, m)| m.contains("dropping")).count();
    assert_eq!(drop_lines, 1, "a burst of drops logs one line: {logs:?}");
}

#[tokio::test]
async fn invalid_specs_are_refused_and_reload_keeps_the_old_handlers() {
    let noop: Arc<dyn Fn(QueryHandle, Bytes) + Send + Sync> = Arc::new(|_, _| {});
    let e = Handlers::new(
        &["member-joined=x.sh".to_owned()],
        noop,
        Arc::new(|_, _| {}),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("\"member-joined\""), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let h = harness(
        &[format!("user=echo x >> {}", q(&one))],
        HandlerOptions::default(),
    );
    assert!(h.handlers.reload(&["bogus=x".to_owned()]).is_err());
    assert_eq!(h.handlers.specs().len(), 1);
    h.handlers.dispatch(&user("e", 1, ""), &me());
    h.handlers.wait_idle().await;
    h.handlers
        .reload(&[format!("user=echo y >> {}", q(&two))])
        .unwrap();
    h.handlers.dispatch(&user("e", 2, ""), &me());
    h.handlers.wait_idle().await;
    assert_eq!(
        (read(&one), read(&two)),
        ("x\n".to_owned(), "y\n".to_owned())
    );
}

#[tokio::test]
async fn a_script_that_leaves_a_background_process_does_not_hang_its_handler() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("out");
    // Go's documented workaround for its blocking handlers: fork. The child keeps the
    // output pipe open; the handler must still finish and run the next event.
    let pids = dir.path().join("pids");
    let script = format!(
        "echo $SERF_USER_LTIME >> {}; sleep 30 & echo $! >> {}",
        q(&out),
        q(&pids)
    );
    let h = harness(&[script], HandlerOptions::default());
    h.handlers.dispatch(&user("e", 1, ""), &me());
    h.handlers.dispatch(&user("e", 2, ""), &me());
    h.handlers.wait_idle().await;
    assert_eq!(read(&out), "1\n2\n");
    // The sleeps are orphaned children of /bin/sh; end them so nothing outlives the test.
    for pid in read(&pids).lines() {
        let _ = std::process::Command::new("kill").arg(pid).status();
    }
}

#[tokio::test]
async fn dropping_the_handlers_lets_queued_events_finish_and_ends_the_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let h = harness(
        &[format!("echo $SERF_USER_LTIME >> {}", q(&out))],
        HandlerOptions::default(),
    );
    for t in 1..=3 {
        h.handlers.dispatch(&user("e", t, ""), &me());
    }
    // The respond callback is shared by the tasks only: once they end, only the
    // harness holds it.
    let responses = Arc::clone(&h.responses);
    drop(h);
    wait_for("the queued events to run", || read(&out) == "1\n2\n3\n").await;
    wait_for("the handler tasks to end", || {
        Arc::strong_count(&responses) == 1
    })
    .await;
}

#[test]
fn handlers_outside_a_runtime_are_an_error_not_a_panic() {
    let e = Handlers::new(
        &["x.sh".to_owned()],
        Arc::new(|_, _| {}),
        Arc::new(|_, _| {}),
    )
    .unwrap_err();
    assert!(e.to_string().contains("tokio runtime"), "{e}");
}
