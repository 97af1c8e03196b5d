//! `serf-sim`: runs simulator scenarios from the command line.
//!
//! ```text
//! serf-sim run SCENARIO.toml [--seed N] [--nodes N] [--json FILE] [--svg DIR]
//! serf-sim bench [--nodes N] [--secs S] [--seed N]
//! ```
//!
//! This front end is the only part of the simulator that reads the wall clock (to report
//! progress and speed) and `/proc` (peak memory, in `bench`).

use clap::{Parser, Subcommand};
use sim::{MemberlistNode, Progress, Scenario, Simulation};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant as WallClock;

#[derive(Parser)]
#[command(
    name = "serf-sim",
    about = "Deterministic simulator of serf-proto clusters",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a scenario file; exits non-zero if an invariant or expectation fails.
    Run {
        /// The scenario (TOML).
        scenario: PathBuf,
        /// Seed (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Number of nodes (default: the scenario's).
        #[arg(long)]
        nodes: Option<usize>,
        /// Simulated duration, e.g. 10m (default: the scenario's).
        #[arg(long)]
        duration: Option<String>,
        /// Write the measurements as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write SVG plots into this directory.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Scale benchmark: a steady cluster of N nodes for S simulated seconds; reports wall
    /// time, simulated seconds per wall second, peak memory and bytes per member entry.
    Bench {
        /// Nodes.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Simulated seconds after the cluster formed.
        #[arg(long, default_value_t = 300)]
        secs: u64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Keep the per-view table for the incarnation invariants (8 bytes per pair).
        #[arg(long)]
        views: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run {
            scenario,
            seed,
            nodes,
            duration,
            json,
            svg,
            quiet,
        } => run(scenario, seed, nodes, duration, json, svg, quiet),
        Command::Bench {
            nodes,
            secs,
            seed,
            views,
        } => bench(nodes, secs, seed, views),
    }
}

fn progress_printer(quiet: bool) -> impl FnMut(&Progress) {
    let started = WallClock::now();
    let mut last = WallClock::now();
    move |p: &Progress| {
        if quiet || last.elapsed().as_secs_f64() < 2.0 {
            return;
        }
        last = WallClock::now();
        let wall = started.elapsed().as_secs_f64();
        let sim = p.now.as_duration().as_secs_f64();
        eprintln!(
            "  [{:>6.0}s / {:.0}s simulated, {:.0}s wall, {:.1}x] {} up, {} disagreeing, {} steps",
            sim,
            p.end.as_duration().as_secs_f64(),
            wall,
            sim / wall.max(1e-9),
            p.up,
            p.disagreeing,
            p.steps
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    path: PathBuf,
    seed: Option<u64>,
    nodes: Option<usize>,
    duration: Option<String>,
    json: Option<PathBuf>,
    svg: Option<PathBuf>,
    quiet: bool,
) -> ExitCode {
    let mut scenario = match Scenario::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(n) = nodes {
        scenario.nodes = n;
    }
    if let Some(d) = &duration {
        match sim::duration::parse(d) {
            Ok(d) => scenario.duration = d,
            Err(e) => {
                eprintln!("error: --duration: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let seed = seed.unwrap_or(scenario.seed);
    let sim = match Simulation::<MemberlistNode>::new(&scenario, seed) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let started = WallClock::now();
    let report = sim.run(&mut progress_printer(quiet));
    let wall = started.elapsed().as_secs_f64();
    print!("{}", report.table());
    println!(
        "  {:<38} {:.2}s ({:.1} simulated s per wall s)",
        "wall time",
        wall,
        report.simulated_seconds / wall.max(1e-9)
    );
    if let Some(path) = json
        && let Err(e) = std::fs::write(&path, report.to_json())
    {
        eprintln!("error: cannot write {}: {e}", path.display());
        return ExitCode::from(2);
    }
    if let Some(dir) = svg
        && let Err(e) = sim::svg::write_all(&report, &dir)
    {
        eprintln!("error: cannot write plots to {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    if report.passed {
        ExitCode::SUCCESS
    } else {
        let mut cmd = format!("serf-sim run {} --seed {seed}", path.display());
        if let Some(n) = nodes {
            cmd.push_str(&format!(" --nodes {n}"));
        }
        if let Some(d) = duration {
            cmd.push_str(&format!(" --duration {d}"));
        }
        eprintln!("FAILED with seed {seed}; replay exactly with:\n  {cmd}");
        ExitCode::from(1)
    }
}

/// Peak resident memory of this process, from /proc/self/status (VmHWM), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn current_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn bench(nodes: usize, secs: u64, seed: u64, views: bool) -> ExitCode {
    let scenario = sim::scenario::bench(nodes, secs, views);
    let rss_before = current_rss().unwrap_or(0);
    let started = WallClock::now();
    let mut sim = match Simulation::<MemberlistNode>::new(&scenario, seed) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut progress = progress_printer(false);
    let formed_at = serf_proto::Instant::from_duration(scenario.bootstrap.spread);
    // Let the cluster form, then measure the steady run.
    let formed = sim.run_until(formed_at, &mut progress);
    let form_wall = started.elapsed().as_secs_f64();
    let steady_started = WallClock::now();
    let ok = formed && sim.run_until(serf_proto::Instant::MAX, &mut progress);
    let steady_wall = steady_started.elapsed().as_secs_f64();
    let members: usize = (0..nodes as u32)
        .filter_map(|i| sim.node(i))
        .map(|n| sim::node::SimNode::counters(n).members)
        .sum();
    let rss_end = current_rss().unwrap_or(0);
    let peak = peak_rss().unwrap_or(0);
    let report = sim.finish();
    let wall = started.elapsed().as_secs_f64();
    let steady_secs = secs as f64;
    println!("{}", report.table());
    println!(
        "bench: {nodes} nodes, {steady_secs:.0} simulated s after {:.0} s of forming",
        scenario.bootstrap.spread.as_secs_f64()
    );
    println!("  wall seconds (total)                  {wall:.1}");
    println!("  wall seconds (forming)                {form_wall:.1}");
    println!("  wall seconds (steady)                 {steady_wall:.1}");
    println!(
        "  simulated s per wall s (steady)       {:.2}",
        steady_secs / steady_wall.max(1e-9)
    );
    println!(
        "  simulated s per wall s (whole run)    {:.2}",
        report.simulated_seconds / wall.max(1e-9)
    );
    println!(
        "  steps per wall second                 {:.0}",
        report.steps as f64 / wall.max(1e-9)
    );
    println!(
        "  peak RSS (VmHWM)                      {:.2} GiB",
        peak as f64 / (1u64 << 30) as f64
    );
    println!("  member entries (all views)            {members}");
    println!(
        "  bytes per member entry (RSS at end)   {:.0}",
        rss_end.saturating_sub(rss_before) as f64 / members.max(1) as f64
    );
    if ok && report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
