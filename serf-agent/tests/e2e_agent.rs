//! End to end, as an operator runs it: real `serf agent` processes on 127.0.0.1 driven
//! by the `serf` command line.

mod cli;

use cli::*;

/// HashiCorp's README quick start, with our binary and OS-picked ports: two agents,
/// `serf join`, `serf members` shows both alive; ctrl-C on one shows it left; kill -9
/// on another shows it failed.
#[test]
fn readme_quick_start() {
    let dir = tempdir();
    let bin = ours();
    let foo = start(&bin, dir.path(), "foo", &[]);
    let mut bar = start(&bin, dir.path(), "bar", &[]);
    let (code, out, err) = cli(&bin, &foo.rpc, &["join", &bar.bind]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "Successfully joined cluster by contacting 1 nodes."
    );
    eventually("both alive in foo's members", || {
        let m = members(&bin, &foo.rpc);
        m.len() == 2 && m.iter().all(|(_, s)| s == "alive")
    });

    // ctrl-C: a graceful leave, exit code 0, and `left` on the other side.
    bar.signal("INT");
    assert_eq!(bar.wait_exit(), Some(0), "{}", bar.log_text());
    assert!(bar.log_text().contains("Gracefully shutting down agent..."));
    eventually("bar left", || {
        status_of(&bin, &foo.rpc, "bar").as_deref() == Some("left")
    });

    // kill -9: failure detection marks it failed.
    let baz = start(&bin, dir.path(), "baz", &["-join", &foo.bind]);
    eventually("baz alive", || {
        status_of(&bin, &foo.rpc, "baz").as_deref() == Some("alive")
    });
    baz.signal("KILL");
    eventually("baz failed", || {
        status_of(&bin, &foo.rpc, "baz").as_deref() == Some("failed")
    });
}

#[test]
fn bad_flags_are_rejected_naming_the_flag() {
    let bin = ours();
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(["agent", "-bogus-flag=1"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(err.contains("bogus-flag"), "{err}");

    let (code, _, err) = cli(&bin, "127.0.0.1:1", &["members", "-nope"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("flag provided but not defined: -nope"),
        "{err}"
    );

    let mut cmd = std::process::Command::new(&bin);
    cmd.args(["agent", "-node=x", "-bind=127.0.0.1:1", "-log-level=loud"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(err.to_lowercase().contains("log"), "{err}");

    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("frobnicate");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(
        err.contains("frobnicate") && err.contains("Available commands"),
        "{err}"
    );
}

#[test]
fn bad_config_files_are_rejected_naming_the_problem() {
    let dir = tempdir();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, r#"{"node_name": "x", "no_such_key": 1}"#).unwrap();
    let mut cmd = std::process::Command::new(ours());
    cmd.arg("agent")
        .arg(format!("-config-file={}", path.display()));
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(
        err.contains("no_such_key") && err.contains("bad.json"),
        "{err}"
    );
}

#[test]
fn rpc_auth_from_a_config_file_is_enforced_for_the_cli() {
    let dir = tempdir();
    let cfg = dir.path().join("auth.json");
    std::fs::write(&cfg, r#"{"rpc_auth": "s3cret"}"#).unwrap();
    let bin = ours();
    let a = start(
        &bin,
        dir.path(),
        "a",
        &[&format!("-config-file={}", cfg.display())],
    );
    let (code, _, err) = cli(&bin, &a.rpc, &["members"]);
    assert_eq!(code, 1);
    assert!(err.contains("Authentication required"), "{err}");
    let (code, _, err) = cli(&bin, &a.rpc, &["members", "-rpc-auth=wrong"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "Error connecting to Serf agent: Invalid authentication token"
    );
    let (code, out, _) = cli(&bin, &a.rpc, &["members", "-rpc-auth=s3cret"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("a "), "{out}");
    // SERF_RPC_AUTH and SERF_RPC_ADDR stand in for the flags.
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("members")
        .env("SERF_RPC_ADDR", &a.rpc)
        .env("SERF_RPC_AUTH", "s3cret");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("alive"));
}

#[test]
fn retry_join_waits_for_the_seed_to_appear() {
    let dir = tempdir();
    let bin = ours();
    let seed_bind = addr(free_port());
    let b = start(
        &bin,
        dir.path(),
        "b",
        &[
            &format!("-retry-join={seed_bind}"),
            "-retry-interval=1s",
            "-profile=local",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let a = start_at(
        &bin,
        dir.path(),
        "a",
        &seed_bind,
        &addr(free_port()),
        &["-profile=local"],
    );
    eventually("b joined a through retry-join", || {
        status_of(&bin, &a.rpc, "b").as_deref() == Some("alive")
    });
    assert!(b.log_text().contains("Join failed"), "{}", b.log_text());
}

#[test]
fn retry_join_gives_up_after_max_attempts_and_exits_1() {
    let dir = tempdir();
    let bin = ours();
    let nobody = addr(free_port());
    let mut b = start(
        &bin,
        dir.path(),
        "b",
        &[
            &format!("-retry-join={nobody}"),
            "-retry-interval=1s",
            "-retry-max=1",
            "-profile=local",
        ],
    );
    assert_eq!(b.wait_exit(), Some(1));
    assert!(b.log_text().contains("maximum retry join attempts made"));
}

#[test]
fn snapshot_rejoins_after_a_restart() {
    let dir = tempdir();
    let bin = ours();
    let a = start(&bin, dir.path(), "a", &["-profile=local"]);
    let snap = dir.path().join("b.snapshot");
    let snap_flag = format!("-snapshot={}", snap.display());
    let (b_bind, b_rpc) = (addr(free_port()), addr(free_port()));
    let mut b = start_at(
        &bin,
        dir.path(),
        "b",
        &b_bind,
        &b_rpc,
        &["-profile=local", &snap_flag, &format!("-join={}", a.bind)],
    );
    eventually("b alive", || {
        status_of(&bin, &a.rpc, "b").as_deref() == Some("alive")
    });
    // SIGTERM without leave_on_terminate: no leave, exit 1 (Go's rule).
    b.signal("TERM");
    assert_eq!(b.wait_exit(), Some(1));
    drop(b);
    // Restart with no -join: the snapshot brings it back.
    let b = start_at(
        &bin,
        dir.path(),
        "b",
        &b_bind,
        &b_rpc,
        &["-profile=local", &snap_flag],
    );
    eventually("b sees a again from its snapshot", || {
        status_of(&bin, &b.rpc, "a").as_deref() == Some("alive")
    });
}

#[test]
fn cli_commands_work_end_to_end() {
    let dir = tempdir();
    let bin = ours();
    let a = start(
        &bin,
        dir.path(),
        "a",
        &["-profile=local", "-tag", "role=web"],
    );
    let b = start(
        &bin,
        dir.path(),
        "b",
        &["-profile=local", &format!("-join={}", a_bind(&a))],
    );
    eventually("two members", || members(&bin, &a.rpc).len() == 2);

    let (code, out, _) = cli(&bin, &a.rpc, &["members", "-tag", "role=w.*"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("a ") && !out.contains("\nb "), "{out}");
    let (code, out, _) = cli(&bin, &a.rpc, &["members", "-format=json"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"role\": \"web\""), "{out}");

    let (code, out, _) = cli(&bin, &a.rpc, &["event", "-coalesce=false", "deploy", "v1"]);
    assert_eq!(
        (code, out.trim()),
        (0, "Event 'deploy' dispatched! Coalescing enabled: false")
    );

    let (code, out, _) = cli(&bin, &a.rpc, &["query", "-timeout=1s", "ping-q"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Query 'ping-q' dispatched"), "{out}");
    assert!(
        out.contains("Ack from 'b'") && out.contains("Total Acks: 2"),
        "{out}"
    );

    let (code, out, _) = cli(&bin, &a.rpc, &["reachability", "-verbose"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Successfully contacted all live nodes"),
        "{out}"
    );

    let (code, out, _) = cli(
        &bin,
        &a.rpc,
        &["tags", "-set", "dc=east", "-delete", "role"],
    );
    assert_eq!((code, out.trim()), (0, "Successfully updated agent tags"));
    let (_, out, _) = cli(&bin, &a.rpc, &["info"]);
    assert!(out.contains("tags:\n\tdc = east"), "{out}");
    assert!(out.starts_with("agent:\n\tname = a"), "{out}");

    eventually("a coordinate for b", || {
        cli(&bin, &a.rpc, &["rtt", "b"]).0 == 0
    });
    let (_, out, _) = cli(&bin, &a.rpc, &["rtt", "b"]);
    assert!(
        out.starts_with("Estimated b <-> a rtt: ") && out.trim().ends_with(" ms"),
        "{out}"
    );

    let (code, out, _) = cli(&bin, &a.rpc, &["version"]);
    assert_eq!(code, 0);
    assert!(out.contains("Agent Protocol:"));
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("keygen");
    let (code, out, _) = run(cmd);
    assert_eq!(code, 0);
    assert_eq!(out.trim().len(), 44, "32 bytes in base64: {out}");

    // serf leave: the agent leaves and exits; the other side sees it left.
    let (code, out, err) = cli(&bin, &b.rpc, &["leave"]);
    assert_eq!((code, out.trim()), (0, "Graceful leave complete"), "{err}");
    eventually("b left", || {
        status_of(&bin, &a.rpc, "b").as_deref() == Some("left")
    });
    let (code, _, _) = cli(&bin, &a.rpc, &["force-leave", "-prune", "b"]);
    assert_eq!(code, 0);
}

fn a_bind(a: &AgentProc) -> String {
    a.bind.clone()
}

#[test]
fn keys_rotate_across_three_agents() {
    let dir = tempdir();
    let bin = ours();
    let key1 = "T9jncgl9mbLus+baTTa7q7nPSUrXwbDi2dhbtqir37s=";
    let enc = format!("-encrypt={key1}");
    let a = start(&bin, dir.path(), "a", &["-profile=local", &enc]);
    let join = format!("-join={}", a.bind);
    let _b = start(&bin, dir.path(), "b", &["-profile=local", &enc, &join]);
    let _c = start(&bin, dir.path(), "c", &["-profile=local", &enc, &join]);
    eventually("three members", || {
        members(&bin, &a.rpc)
            .iter()
            .filter(|(_, s)| s == "alive")
            .count()
            == 3
    });
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("keygen");
    let key2 = run(cmd).1.trim().to_owned();
    let (code, out, err) = cli(&bin, &a.rpc, &["keys", "-install", &key2]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("==> Successfully installed key!"), "{out}");
    let (code, out, _) = cli(&bin, &a.rpc, &["keys", "-list"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("{key2}  [3/3]")), "{out}");
    assert!(out.contains(&format!("{key1}  [3/3]")), "{out}");
    let (code, _, _) = cli(&bin, &a.rpc, &["keys", "-use", &key2]);
    assert_eq!(code, 0);
    let (code, _, _) = cli(&bin, &a.rpc, &["keys", "-remove", key1]);
    assert_eq!(code, 0);
    let (_, out, _) = cli(&bin, &a.rpc, &["keys", "-list"]);
    assert!(
        !out.contains(key1) && out.contains(&format!("{key2}  [3/3]")),
        "{out}"
    );
    // Still one cluster on the new key.
    let (code, out, _) = cli(&bin, &a.rpc, &["reachability"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn monitor_replays_and_follows_the_log() {
    let dir = tempdir();
    let bin = ours();
    let a = start(&bin, dir.path(), "a", &["-profile=local"]);
    let out_path = dir.path().join("monitor.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut mon = std::process::Command::new(&bin)
        .args([
            "monitor",
            "-log-level=debug",
            &format!("-rpc-addr={}", a.rpc),
        ])
        .stdout(out)
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(&mut mon);
    eventually("the replayed start-up lines, the core's included", || {
        let t = std::fs::read_to_string(&out_path).unwrap_or_default();
        t.contains("[INFO] agent: Serf agent starting")
            && t.contains("[INFO] serf: EventMemberJoin: a 127.0.0.1")
    });
    cli(&bin, &a.rpc, &["event", "hello"]);
    eventually("the live event", || {
        let t = std::fs::read_to_string(&out_path).unwrap_or_default();
        t.contains("Event Info:") && t.contains("\"hello\"")
    });
}

struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigterm_leaves_only_with_leave_on_terminate_and_sigint_can_skip_the_leave() {
    let dir = tempdir();
    let d = dir.path();
    let bin = ours();
    let cfg = d.join("term.json");
    std::fs::write(&cfg, r#"{"leave_on_terminate": true}"#).unwrap();
    let skip = d.join("skip.json");
    std::fs::write(&skip, r#"{"skip_leave_on_interrupt": true}"#).unwrap();
    let a = start(&bin, d, "a", &["-profile=local"]);
    let join = format!("-join={}", a.bind);
    let mut t = start(
        &bin,
        d,
        "t",
        &[
            "-profile=local",
            &join,
            &format!("-config-file={}", cfg.display()),
        ],
    );
    let mut i = start(
        &bin,
        d,
        "i",
        &[
            "-profile=local",
            &join,
            &format!("-config-file={}", skip.display()),
        ],
    );
    eventually("three alive", || {
        members(&bin, &a.rpc)
            .iter()
            .filter(|(_, s)| s == "alive")
            .count()
            == 3
    });
    t.signal("TERM");
    assert_eq!(t.wait_exit(), Some(0), "{}", t.log_text());
    eventually("t left", || {
        status_of(&bin, &a.rpc, "t").as_deref() == Some("left")
    });
    // skip_leave_on_interrupt: exit 1 at once, no leave: the others see a failure.
    i.signal("INT");
    assert_eq!(i.wait_exit(), Some(1));
    eventually("i failed", || {
        status_of(&bin, &a.rpc, "i").as_deref() == Some("failed")
    });
}

#[test]
fn prometheus_metrics_count_members_handlers_and_rpc_clients() {
    use std::io::{Read, Write};
    let dir = tempdir();
    let bin = ours();
    let metrics = addr(free_port());
    let a = start(
        &bin,
        dir.path(),
        "a",
        &[
            "-profile=local",
            &format!("-prometheus-addr={metrics}"),
            "-event-handler=user=true",
        ],
    );
    cli(&bin, &a.rpc, &["event", "-coalesce=false", "x"]);
    // An RPC client held open while the metrics are read.
    let _held = std::net::TcpStream::connect(&a.rpc).unwrap();
    let scrape = || {
        let mut s = std::net::TcpStream::connect(&metrics).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body
    };
    eventually("the handler run and the held client in the metrics", || {
        let m = scrape();
        m.contains("serf_members{status=\"alive\"} 1")
            && m.contains("serf_agent_rpc_clients 1")
            && m.lines()
                .any(|l| l.starts_with("serf_agent_handler_runs_total 1"))
    });
}
