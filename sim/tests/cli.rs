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

#[test]
fn the_replay_command_quotes_a_path_with_spaces() {
    let dir = tempdir("quote").join("my scenarios");
    std::fs::create_dir_all(&dir).unwrap();
    let s = scenario(
        &dir,
        "[[expect]]\nkind = \"detection\"\nall_within = \"1s\"\n",
    );
    let out = bin()
        .args(["run", s.to_str().unwrap(), "--seed", "9", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("serf-sim run '{}' --seed 9\n", s.display())),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn a_shorter_duration_drops_what_falls_after_it_loudly() {
    let dir = tempdir("truncate");
    // The crash at 30 s and the events at 35 s fall after a 20 s run.
    let s = scenario(&dir, "");
    let out = bin()
        .args(["run", s.to_str().unwrap(), "--duration", "20s", "--quiet"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: --duration 20s: action 0 (Crash at 30s) is after the end"),
        "{stderr}"
    );
    assert!(stderr.contains("action 1 (UserEvents at 35s)"), "{stderr}");
    // In a file, the same is an error.
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\nnodes = 3\nduration = \"1m\"\n[[actions]]\nat = \"2m\"\nkind = \"heal\"\n",
    )
    .unwrap();
    let out = bin().args(["run", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("after the end of the run"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two separate processes, same scenario and seed: the same trace hash (nothing in a
/// run depends on the process: addresses, hash seeds, the wall clock). Another seed
/// gives another hash. On both layers.
#[test]
fn two_processes_with_one_seed_give_one_trace() {
    let dir = tempdir("determinism");
    let chaos = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/chaos.toml");
    let hash = |layer: &str, seed: &str, k: u32| {
        let json = dir.join(format!("{layer}-{seed}-{k}.json"));
        let out = bin()
            .args([
                "run",
                chaos,
                "--nodes",
                "20",
                "--duration",
                "200s",
                "--layer",
                layer,
                "--seed",
                seed,
                "--quiet",
                "--json",
            ])
            .arg(&json)
            .output()
            .unwrap();
        assert!(out.status.code().is_some_and(|c| c <= 1), "{out:?}");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        report["trace_hash"].as_str().unwrap().to_string()
    };
    for layer in ["memberlist", "serf"] {
        let a = hash(layer, "11", 1);
        assert_eq!(a, hash(layer, "11", 2), "{layer}");
        assert_ne!(a, hash(layer, "12", 1), "{layer}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
