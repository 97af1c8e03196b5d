//! HashiCorp's `serf` command line against our agent, and ours against HashiCorp's agent
//! (Debian package `serf`). Skipped, with a message, when it is not installed.

mod cli;

use cli::*;
use std::path::Path;

/// Runs the same command with both CLIs against one agent; both outputs.
fn both(go: &Path, rpc: &str, args: &[&str]) -> ((i32, String, String), (i32, String, String)) {
    (cli(&ours(), rpc, args), cli(go, rpc, args))
}

/// Go's agent lists members in map order, different on every call: compare outputs with
/// lines, or JSON members, in a canonical order.
fn canonical(out: &str) -> String {
    if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(out) {
        if let Some(serde_json::Value::Array(m)) = v.get_mut("members") {
            m.sort_by_key(|x| x["name"].as_str().unwrap_or_default().to_owned());
        }
        return v.to_string();
    }
    // The whole output is trimmed, so only the last line loses its trailing blanks.
    let mut lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    lines.sort();
    lines.join("\n")
}

const KEY: &str = "T9jncgl9mbLus+baTTa7q7nPSUrXwbDi2dhbtqir37s=";

#[test]
fn hashicorps_cli_drives_our_agent() {
    let Some(go) = hashicorp() else { return };
    let dir = tempdir();
    let d = dir.path();
    let h = d.join("answer.sh");
    std::fs::write(&h, "#!/bin/sh\necho \"42 from $SERF_SELF_NAME\"\n").unwrap();
    let mut perm = std::fs::metadata(&h).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&h, perm).unwrap();
    let bin = ours();
    let enc = format!("-encrypt={KEY}");
    let handler = format!("-event-handler=query:answer={}", h.display());
    let a = start(
        &bin,
        d,
        "a",
        &["-profile=local", &enc, "-tag", "role=web", &handler],
    );
    let b = start(&bin, d, "b", &["-profile=local", &enc]);

    let (code, out, err) = cli(&go, &a.rpc, &["join", &b.bind]);
    assert_eq!(
        (code, out.trim()),
        (0, "Successfully joined cluster by contacting 1 nodes."),
        "{err}"
    );
    eventually("both alive", || {
        let (_, out, _) = cli(&go, &a.rpc, &["members", "-status=alive"]);
        out.lines().count() == 2
    });
    // Both CLIs print the same bytes from our agent.
    for args in [
        &["members"][..],
        &["members", "-detailed"],
        &["members", "-format=json"],
        &["members", "-tag", "role=w.*"],
        &["info", "-format=json"],
    ] {
        let ((c1, o1, _), (c2, o2, e2)) = both(&go, &a.rpc, args);
        assert_eq!((c1, &o1), (c2, &o2), "{args:?}: {e2}");
    }
    let (code, out, _) = cli(&go, &a.rpc, &["event", "deploy", "v1"]);
    assert_eq!(
        (code, out.trim()),
        (0, "Event 'deploy' dispatched! Coalescing enabled: true")
    );
    let (code, out, err) = cli(&go, &a.rpc, &["query", "-timeout=2s", "answer"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Response from 'a': 42 from a"), "{out}");
    assert!(out.contains("Total Acks: 2"), "{out}");
    let (code, out, _) = cli(&go, &a.rpc, &["reachability"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Successfully contacted all live nodes"));
    let (code, out, _) = cli(&go, &a.rpc, &["tags", "-set", "dc=x"]);
    assert_eq!((code, out.trim()), (0, "Successfully updated agent tags"));
    let (code, out, _) = cli(&go, &a.rpc, &["keys", "-list"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{KEY}  [2/2]")), "{out}");
    eventually("an rtt estimate", || cli(&go, &a.rpc, &["rtt", "b"]).0 == 0);
    let (code, out, _) = cli(&go, &b.rpc, &["leave"]);
    assert_eq!((code, out.trim()), (0, "Graceful leave complete"));
    eventually("b left", || {
        status_of(&go, &a.rpc, "b").as_deref() == Some("left")
    });
}

#[test]
fn our_cli_drives_hashicorps_agent() {
    let Some(go) = hashicorp() else { return };
    let dir = tempdir();
    let d = dir.path();
    let bin = ours();
    let enc = format!("-encrypt={KEY}");
    let a = start(&go, d, "ga", &[&enc, "-tag", "role=db"]);
    let b = start(&go, d, "gb", &[&enc]);
    let (code, out, err) = cli(&bin, &a.rpc, &["join", &b.bind]);
    assert_eq!(
        (code, out.trim()),
        (0, "Successfully joined cluster by contacting 1 nodes."),
        "{err}"
    );
    eventually("both alive", || {
        members(&bin, &a.rpc)
            .iter()
            .filter(|(_, s)| s == "alive")
            .count()
            == 2
    });
    for args in [
        &["members"][..],
        &["members", "-detailed"],
        &["members", "-format=json"],
        &["members", "-status=alive", "-name=g.*"],
        &["keys", "-list"],
    ] {
        let ((c1, o1, e1), (c2, o2, _)) = both(&go, &a.rpc, args);
        assert_eq!((c1, canonical(&o1)), (c2, canonical(&o2)), "{args:?}: {e1}");
    }
    let (code, out, _) = cli(&bin, &a.rpc, &["info"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("agent:\n\tname = ga"), "{out}");
    let (code, out, _) = cli(&bin, &a.rpc, &["query", "-timeout=1s", "-format=json", "q"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("\"Acks\": [") && out.contains("\"Responses\": {}"),
        "{out}"
    );
    let (code, out, _) = cli(&bin, &a.rpc, &["reachability"]);
    assert_eq!(code, 0, "{out}");
    let (code, _, _) = cli(&bin, &a.rpc, &["event", "e", "p"]);
    assert_eq!(code, 0);
    let (code, _, _) = cli(&bin, &a.rpc, &["tags", "-set", "x=y", "-delete", "role"]);
    assert_eq!(code, 0);
    eventually("an rtt estimate", || {
        cli(&bin, &a.rpc, &["rtt", "gb"]).0 == 0
    });
    let (code, out, _) = cli(&bin, &b.rpc, &["leave"]);
    assert_eq!((code, out.trim()), (0, "Graceful leave complete"));
    eventually("gb left", || {
        status_of(&bin, &a.rpc, "gb").as_deref() == Some("left")
    });
}
