//! What users of the scenario language needed and could not say (issue 11, item 5):
//! permanent seeds, repeated actions, timed per-link settings, the per-node timeline,
//! expectations over a time window.

use sim::{Report, Scenario, SerfNode, Simulation};

fn run_serf(toml: &str) -> Report {
    let s = Scenario::from_toml(toml).unwrap();
    Simulation::<SerfNode>::new(&s, s.seed)
        .unwrap()
        .run(&mut |_| {})
}

/// Node 9 alone for 200 s: every view fails it and reaps it after `reconnect_timeout`,
/// and it reaps every other member; memberlist forgets them all. Nothing then ever
/// talks across again unless someone retries an address it no longer knows.
fn cut_off_longer_than_every_timeout(serf: &str) -> String {
    format!(
        r#"
        name = "cut-off"
        layer = "serf"
        nodes = 10
        duration = "420s"
        [serf]
        reconnect_interval = "10s"
        reconnect_timeout = "60s"
        reap_interval = "5s"
        {serf}
        [[actions]]
        at = "30s"
        kind = "partition"
        groups = [[9]]
        for = "200s"
        [[expect]]
        kind = "converged"
        after = "230s"
        within = "40s"
        "#
    )
}

/// `[serf] seeds`: the node retries the permanent seeds for ever and comes back by
/// itself once the network heals, with no `join` action.
#[test]
fn a_node_cut_off_longer_than_every_timeout_comes_back_through_the_permanent_seeds() {
    let r = run_serf(&cut_off_longer_than_every_timeout("seeds = \"0..3\""));
    assert!(r.passed, "{}", r.table());
    assert!(r.convergence.agreed_at_end);
}

/// The same without permanent seeds never heals (memberlist #222): the test above is
/// not vacuous.
#[test]
fn without_permanent_seeds_the_cut_off_node_stays_out() {
    let r = run_serf(&cut_off_longer_than_every_timeout(""));
    assert!(!r.passed, "{}", r.table());
    assert!(!r.convergence.agreed_at_end);
}

/// `[serf] seeds` takes any node set resolved at the start, and names the key when it
/// is wrong.
#[test]
fn permanent_seeds_are_checked_like_any_node_set() {
    let parse = |seeds: &str| {
        Scenario::from_toml(&format!(
            "name = 't'\nnodes = 10\nduration = '60s'\n[serf]\nseeds = {seeds}\n"
        ))
    };
    assert!(parse("[0, 1]").is_ok());
    assert!(parse("'0..3'").is_ok());
    for (seeds, says) in [
        ("[10]", "serf.seeds: node 10 does not exist"),
        ("'nope'", "serf.seeds: unknown group `nope`"),
        (
            "'@x'",
            "serf.seeds: `@x`: this set is resolved at the start",
        ),
    ] {
        let e = parse(seeds).unwrap_err();
        assert!(e.contains(says), "{seeds}: {e}");
    }
}
