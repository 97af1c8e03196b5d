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
use sim::scenario::Layer;
use sim::{MemberlistNode, Progress, Scenario, SerfNode, SimNode, Simulation};
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
        /// Protocol layer: memberlist or serf (default: the scenario's `layer`).
        #[arg(long, value_parser = parse_layer)]
        layer: Option<Layer>,
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
        /// Override `max_queue_depth` (default 4096): bounds the alive-message flood of
        /// forming a large cluster, and the memory it takes.
        #[arg(long)]
        max_queue_depth: Option<usize>,
        /// Seconds over which nodes start and join (default nodes/100, at least 10).
        #[arg(long)]
        spread: Option<u64>,
        /// Protocol layer: memberlist (the default: membership only) or serf.
        #[arg(long, value_parser = parse_layer, default_value = "memberlist")]
        layer: Layer,
    },
}

fn parse_layer(s: &str) -> Result<Layer, String> {
    match s {
        "memberlist" => Ok(Layer::Memberlist),
        "serf" => Ok(Layer::Serf),
        other => Err(format!("unknown layer {other:?}: use memberlist or serf")),
    }
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
            layer,
        } => match Scenario::load(&scenario) {
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
            Ok(loaded) => {
                let args = RunArgs {
                    path: scenario,
                    seed,
                    nodes,
                    duration,
                    json,
                    svg,
                    quiet,
                    layer,
                };
                match layer.unwrap_or(loaded.layer) {
                    Layer::Memberlist => run::<MemberlistNode>(loaded, args),
                    Layer::Serf => run::<SerfNode>(loaded, args),
                }
            }
        },
        Command::Bench {
            nodes,
            secs,
            seed,
            views,
            max_queue_depth,
            spread,
            layer,
        } => match layer {
            Layer::Memberlist => {
                bench::<MemberlistNode>(nodes, secs, seed, views, max_queue_depth, spread)
            }
            Layer::Serf => bench::<SerfNode>(nodes, secs, seed, views, max_queue_depth, spread),
        },
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

/// The options of `serf-sim run`.
struct RunArgs {
    path: PathBuf,
    seed: Option<u64>,
    nodes: Option<usize>,
    duration: Option<String>,
    json: Option<PathBuf>,
    svg: Option<PathBuf>,
    quiet: bool,
    layer: Option<Layer>,
}

fn run<N: SimNode>(mut scenario: Scenario, args: RunArgs) -> ExitCode {
    let RunArgs {
        path,
        seed,
        nodes,
        duration,
        json,
        svg,
        quiet,
        layer,
    } = args;
    if let Some(n) = nodes {
        scenario.nodes = n;
    }
    if let Some(d) = &duration {
        match sim::duration::parse(d) {
            Ok(d) => {
                for w in scenario.truncate(d) {
                    eprintln!("warning: --duration {}s: {w}", d.as_secs_f64());
                }
            }
            Err(e) => {
                eprintln!("error: --duration: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let seed = seed.unwrap_or(scenario.seed);
    let sim = match Simulation::<N>::new(&scenario, seed) {
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
        let mut cmd = format!(
            "serf-sim run {} --seed {seed}",
            shell_quote(&path.display().to_string())
        );
        if let Some(n) = nodes {
            cmd.push_str(&format!(" --nodes {n}"));
        }
        if let Some(d) = duration {
            cmd.push_str(&format!(" --duration {}", shell_quote(&d)));
        }
        if layer.is_some() {
            cmd.push_str(&format!(" --layer {}", N::KIND));
        }
        eprintln!("FAILED with seed {seed}; replay exactly with:\n  {cmd}");
        ExitCode::from(1)
    }
}

/// `s` as one shell word: unchanged if it has nothing a shell would interpret, else in
/// single quotes (a quote inside becomes `'\''`).
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,=@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
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

fn bench<N: SimNode>(
    nodes: usize,
    secs: u64,
    seed: u64,
    views: bool,
    max_queue_depth: Option<usize>,
    spread: Option<u64>,
) -> ExitCode {
    let form_limit = std::time::Duration::from_secs(3600);
    let mut scenario = sim::scenario::bench(nodes, secs, views, form_limit);
    scenario.config.max_queue_depth = max_queue_depth;
    if let Some(s) = spread {
        scenario.bootstrap.spread = std::time::Duration::from_secs(s);
    }
    let rss_before = current_rss().unwrap_or(0);
    let started = WallClock::now();
    let mut sim = match Simulation::<N>::new(&scenario, seed) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut progress = progress_printer(false);
    // Forming: every node joins through the seeds; each join's alive message is gossiped
    // by every node (retransmit limit times), an O(n² log n) flood. The cluster is formed
    // once every view agrees and every broadcast queue is empty.
    let step = std::time::Duration::from_secs(5);
    let mut t = serf_proto::Instant::from_duration(scenario.bootstrap.spread);
    let mut ok = sim.run_until(t, &mut progress);
    while ok {
        let quiet = sim.agreed()
            && (0..nodes as u32)
                .filter_map(|i| sim.node(i))
                .all(|n| n.counters().queue_depth == 0);
        if quiet || t.as_duration() >= form_limit {
            break;
        }
        t += step;
        ok = sim.run_until(t, &mut progress);
    }
    let formed_at = t.as_duration().as_secs_f64();
    let form_wall = started.elapsed().as_secs_f64();
    let rss_formed = current_rss().unwrap_or(0);
    let members: usize = (0..nodes as u32)
        .filter_map(|i| sim.node(i))
        .map(|n| n.counters().members)
        .sum();
    let steady_started = WallClock::now();
    let steady_steps = sim.steps();
    ok = ok && sim.run_until(t + std::time::Duration::from_secs(secs), &mut progress);
    let steady_wall = steady_started.elapsed().as_secs_f64();
    let steady_steps = sim.steps() - steady_steps;
    let peak = peak_rss().unwrap_or(0);
    let report = sim.finish();
    let wall = started.elapsed().as_secs_f64();
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    println!("{}", report.table());
    println!(
        "bench: {nodes} nodes (seed {seed}), formed at {formed_at:.0} s, then {secs} s steady"
    );
    println!("  wall seconds, forming                 {form_wall:.1}");
    println!("  wall seconds, steady                  {steady_wall:.1}");
    println!("  wall seconds, total                   {wall:.1}");
    println!(
        "  simulated s per wall s, steady        {:.2}",
        secs as f64 / steady_wall.max(1e-9)
    );
    println!(
        "  simulated s per wall s, forming       {:.2}",
        formed_at / form_wall.max(1e-9)
    );
    println!(
        "  steps per wall second, steady         {:.0}",
        steady_steps as f64 / steady_wall.max(1e-9)
    );
    println!(
        "  peak RSS (VmHWM)                      {:.2} GiB",
        gib(peak)
    );
    println!(
        "  RSS once formed                       {:.2} GiB",
        gib(rss_formed)
    );
    println!("  member entries, all views             {members}");
    println!(
        "  bytes per member entry (peak RSS)     {:.0}",
        peak.saturating_sub(rss_before) as f64 / members.max(1) as f64
    );
    println!(
        "  bytes per member entry (RSS formed)   {:.0}",
        rss_formed.saturating_sub(rss_before) as f64 / members.max(1) as f64
    );
    if ok && report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(
            shell_quote("sim/scenarios/chaos.toml"),
            "sim/scenarios/chaos.toml"
        );
        assert_eq!(shell_quote("/tmp/my runs/a.toml"), "'/tmp/my runs/a.toml'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote(""), "''");
    }
}
