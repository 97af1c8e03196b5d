//! The `serf-sim` binary: exit codes, the replay line, JSON and SVG output.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_serf-sim"))
}

fn scenario(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("s.toml");
    let text = format!(
        "name = \"cli\"\nnodes = 12\nduration = \"90s\"\n\
         [[actions]]\nat = \"30s\"\nkind = \"crash\"\nnodes = [5]\n\
         [[actions]]\nat = \"35s\"\nkind = \"user_events\"\nnodes = \"all\"\ncount = 3\n{extra}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("serf-sim-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_passing_run_writes_json_and_plots() {
    let dir = tempdir("pass");
    let s = scenario(
        &dir,
        "[[expect]]\nkind = \"detection\"\nall_within = \"60s\"\n",
    );
    let json = dir.join("out.json");
    let out = bin()
        .args([
            "run",
            s.to_str().unwrap(),
            "--seed",
            "3",
            "--quiet",
            "--json",
        ])
        .arg(&json)
        .arg("--svg")
        .arg(dir.join("plots"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("result: PASS"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["seed"], 3);
    assert_eq!(report["trace_hash"].as_str().unwrap().len(), 16);
    assert_eq!(report["detection"]["crashes"], 1);
    for f in [
        "cli-views.svg",
        "cli-detection.svg",
        "cli-dissemination.svg",
    ] {
        let svg = std::fs::read_to_string(dir.join("plots").join(f)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{f}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_expectation_exits_non_zero_with_the_replay_command() {
    let dir = tempdir("fail");
    // Nobody detects a crash within 1 s.
    let s = scenario(
        &dir,
        "[[expect]]\nkind = \"detection\"\nall_within = \"1s\"\n",
    );
    let out = bin()
        .args([
            "run",
            s.to_str().unwrap(),
            "--seed",
            "9",
            "--nodes",
            "10",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("serf-sim run {} --seed 9 --nodes 10", s.display())),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_scenario_exits_with_two() {
    let dir = tempdir("bad");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "name = \"x\"\nnodes = 3\nduration = \"1m\"\nnoise = 1\n",
    )
    .unwrap();
    let out = bin()
        .args(["run", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
