//! A run is a pure function of (scenario, seed): the same seed gives the same trace hash
//! (every delivery and event), byte for byte; another seed gives another trace. On both
//! layers. (`tests/cli.rs` checks the same across two processes.)

use serf_proto::Instant;
use sim::{MemberlistNode, Scenario, SerfNode, SimNode, Simulation};
use std::path::Path;

fn chaos() -> Scenario {
    let mut s = Scenario::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/chaos.toml"
    )))
    .unwrap();
    s.nodes = 30;
    s.duration = std::time::Duration::from_secs(300);
    s.expect.clear();
    s
}

fn run(s: &Scenario, seed: u64) -> (String, String) {
    run_on::<MemberlistNode>(s, seed)
}

fn run_on<N: SimNode>(s: &Scenario, seed: u64) -> (String, String) {
    let r = Simulation::<N>::new(s, seed).unwrap().run(&mut |_| {});
    assert!(r.violations.is_empty(), "{}", r.table());
    (r.trace_hash.clone(), r.to_json())
}

#[test]
fn same_seed_gives_the_same_trace_and_measurements() {
    let s = chaos();
    let (hash_a, json_a) = run(&s, 7);
    let (hash_b, json_b) = run(&s, 7);
    assert_eq!(hash_a, hash_b);
    assert_eq!(json_a, json_b, "the whole report is reproducible");
}

#[test]
fn another_seed_gives_another_trace() {
    let s = chaos();
    let (a, _) = run(&s, 7);
    let (b, _) = run(&s, 8);
    assert_ne!(a, b);
}

#[test]
fn incremental_view_counts_match_a_full_recount() {
    let s = chaos();
    let mut sim = Simulation::<MemberlistNode>::new(&s, 3).unwrap();
    for t in (10..=300).step_by(10) {
        assert!(sim.run_until(Instant::from_secs(t), &mut |_| {}));
        sim.verify_views()
            .unwrap_or_else(|e| panic!("at {t}s: {e}"));
    }
    assert!(sim.agreed());
}

#[test]
fn the_serf_layer_is_deterministic_too() {
    let s = chaos();
    let (hash_a, json_a) = run_on::<SerfNode>(&s, 7);
    let (hash_b, json_b) = run_on::<SerfNode>(&s, 7);
    assert_eq!(hash_a, hash_b);
    assert_eq!(json_a, json_b);
    let (hash_c, _) = run_on::<SerfNode>(&s, 8);
    assert_ne!(hash_a, hash_c);
}

#[test]
fn serf_view_counts_match_a_full_recount() {
    let s = chaos();
    let mut sim = Simulation::<SerfNode>::new(&s, 3).unwrap();
    for t in (10..=300).step_by(10) {
        assert!(sim.run_until(Instant::from_secs(t), &mut |_| {}));
        sim.verify_views()
            .unwrap_or_else(|e| panic!("at {t}s: {e}"));
    }
}
