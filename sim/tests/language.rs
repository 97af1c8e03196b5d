//! What users of the scenario language needed and could not say (issue 11, item 5):
//! permanent seeds, repeated actions, timed per-link settings, the per-node timeline,
//! expectations over a time window.

use serf_proto::Instant;
use sim::node::MemberState;
use sim::{MemberlistNode, Report, Scenario, SerfNode, Simulation};

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

fn parse(body: &str) -> Result<Scenario, String> {
    Scenario::from_toml(&format!(
        "name = 't'\nnodes = 20\nduration = '300s'\n{body}"
    ))
}

/// A flapping link: a 5 s partition every 20 s, ten times. Each repeat is a fault like
/// the first: the last one ends at 225 s, and convergence is measured from there.
#[test]
fn a_flapping_partition_repeats_and_each_repeat_is_a_fault() {
    let flap = "[[actions]]\nat = '40s'\nkind = 'partition'\ngroups = ['0..10']\n\
                for = '5s'\nevery = '20s'\ntimes = 10\n";
    let s = parse(flap).unwrap();
    let r = Simulation::<sim::MemberlistNode>::new(&s, 1)
        .unwrap()
        .run(&mut |_| {});
    assert!(r.passed, "{}", r.table());
    // The tenth partition starts at 220 s and ends (a fault too) at 225 s.
    assert_eq!(r.convergence.last_fault, 225.0, "{}", r.table());
    // One span of uncounted reports: every 15 s heal is shorter than the aftermath.
    assert_eq!(r.false_positives.uncounted.len(), 1, "{}", r.table());
}

/// `every` and `times` go together, a repeat past the end is an error like any action
/// past the end, and kinds whose `every` spaces their own series take no `times`.
#[test]
fn repeats_are_checked_like_any_action() {
    let part = "[[actions]]\nat = '40s'\nkind = 'partition'\ngroups = ['0..10']\nfor = '5s'\n";
    for (extra, says) in [
        ("every = '20s'", "needs `times"),
        ("times = 3", "needs `every"),
        ("times = 3\nevery = '0s'", "needs `every"),
        ("times = 0\nevery = '1s'", "`times` is 0"),
        (
            "times = 20\nevery = '20s'",
            "action 0 (Partition) repeats until 420s, after the end of the run (300s)",
        ),
    ] {
        let e = parse(&format!("{part}{extra}\n")).unwrap_err();
        assert!(e.contains(says), "{extra}: {e}");
    }
    assert!(parse(&format!("{part}times = 13\nevery = '20s'\n")).is_ok());
    let e = parse(
        "[[actions]]\nat = '1s'\nkind = 'user_events'\nnodes = 'all'\ncount = 2\ntimes = 2\n",
    )
    .unwrap_err();
    assert!(e.contains("`times` does not apply to this kind"), "{e}");
    // `--duration` drops the repeats past the new end and says so.
    let mut s = parse(&format!("{part}times = 13\nevery = '20s'\n")).unwrap();
    let w = s.truncate(std::time::Duration::from_secs(90));
    assert!(
        w[0].contains("10 of its 13 repeats fall after the end"),
        "{w:?}"
    );
    assert_eq!(s.actions[0].times, Some(3));
}

/// A `link` action: one-way loss from node 5 to everyone for 40 s. Node 5's acks never
/// get out, so every other view fails it (a false positive: it never stopped); the
/// other way still works, so node 5 hears the accusations and refutes them, which gets
/// out once the action ends, and the views agree again.
#[test]
fn one_way_loss_as_a_timed_link_action_mutes_one_node_and_ends_by_itself() {
    use sim::node::SimNode;
    let s = parse(
        "[[actions]]\nat = '60s'\nkind = 'link'\nfrom = [5]\nto = 'all'\nloss = 1.0\n\
         for = '40s'\n[[expect]]\nkind = 'converged'\nafter = '100s'\nwithin = '60s'\n",
    )
    .unwrap();
    let mut sim = Simulation::<sim::MemberlistNode>::new(&s, 1).unwrap();
    sim.run_until(serf_proto::Instant::from_secs(99), &mut |_| {});
    for i in (0..20).filter(|&i| i != 5) {
        let seen = sim.node(i).unwrap().member("node-5").map(|m| m.state);
        assert!(!seen.is_some_and(|s| s.is_member()), "node {i}: {seen:?}");
    }
    // Only what node 5 receives can tell it that it was suspected.
    assert!(sim.node(5).unwrap().counters().refutes > 0);
    let r = sim.run(&mut |_| {});
    assert!(r.passed, "{}", r.table());
    assert!(r.false_positives.healthy >= 19, "{}", r.table());
}

/// A `link` needs both ends and a setting, chooses no nodes, and its probabilities
/// are checked like the others.
#[test]
fn link_actions_are_checked_like_any_action() {
    let link = "[[actions]]\nat = '10s'\nkind = 'link'\n";
    for (body, says) in [
        ("from = [1]\nloss = 0.5", "needs `from and to`"),
        ("from = [1]\nto = [2]", "needs `one of `latency`"),
        (
            "from = [1]\nto = [2]\nloss = 1.5",
            "a probability is between 0 and 1",
        ),
        (
            "from = [1]\nto = [2]\nloss = 0.5\nlabel = 'x'",
            "this kind chooses none",
        ),
        (
            "from = [1]\nto = [20]\nloss = 0.5",
            "`to`: node 20 does not exist",
        ),
        (
            "from = [1]\nto = [2]\nloss = 0.5\nnodes = [3]",
            "`nodes` does not apply",
        ),
    ] {
        let e = parse(&format!("{link}{body}\n")).unwrap_err();
        assert!(e.contains(says), "{body}: {e}");
    }
    let ok = "from = '0..10'\nto = '10..20'\nlatency = '80ms'\njitter = '5ms'\nduplicate = 0.1\n\
              reorder = 0.1\nfor = '30s'\nevery = '60s'\ntimes = 3";
    assert!(parse(&format!("{link}{ok}\n")).is_ok());
}

#[test]
fn the_json_report_has_each_nodes_timeline_in_order() {
    let r = run_serf(
        r#"
        name = "timeline"
        nodes = 6
        duration = "3m"
        [[actions]]
        at = "20s"
        kind = "pause"
        nodes = [1]
        for = "5s"
        [[actions]]
        at = "40s"
        kind = "restart"
        nodes = [2]
        downtime = "10s"
        [[actions]]
        at = "60s"
        kind = "leave"
        nodes = [3]
        [[actions]]
        at = "70s"
        kind = "crash"
        nodes = [4]
        "#,
    );
    let of = |i: u32| -> Vec<String> {
        r.timeline
            .iter()
            .find(|t| t.node == i)
            .unwrap()
            .events
            .iter()
            .map(|e| e.what.clone())
            .collect()
    };
    assert_eq!(of(0), ["started"]);
    assert_eq!(
        of(1),
        ["started", "paused for 5s", "running again after its pause"]
    );
    assert_eq!(of(2), ["started", "crashed", "restarted fresh"]);
    assert_eq!(of(3), ["started", "leaving", "leave completed", "stopped"]);
    assert_eq!(of(4), ["started", "crashed"]);
    let at = |i: u32, what: &str| {
        r.timeline[i as usize]
            .events
            .iter()
            .find(|e| e.what == what)
            .unwrap()
            .at
    };
    assert_eq!(at(1, "paused for 5s"), 20.0);
    assert_eq!(at(1, "running again after its pause"), 25.0);
    assert_eq!(at(2, "restarted fresh"), 50.0);
    assert!(at(3, "leave completed") > 60.0 && at(3, "leave completed") < 70.0);
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains(r#""what":"leave completed""#));
}

/// Stalled nodes without Lifeguard from 30 s to 90 s: they report healthy members failed
/// while the stall lasts, and not once the run has settled.
fn stalls_then_calm(expect: &str) -> Report {
    let s = Scenario::from_toml(&format!(
        r#"
        name = "stalls"
        nodes = 30
        duration = "240s"
        [config]
        lifeguard = false
        [[actions]]
        at = "30s"
        kind = "slow"
        nodes = [0, 1, 2, 3]
        delay = ["5s", "15s"]
        for = "60s"
        [[expect]]
        kind = "false_positives"
        subjects = "healthy"
        {expect}
        "#
    ))
    .unwrap();
    Simulation::<MemberlistNode>::new(&s, 1)
        .unwrap()
        .run(&mut |_| {})
}

/// `from` and `until` on `false_positives`: only reports made within the window count.
#[test]
fn a_false_positive_expectation_over_a_window_counts_only_the_reports_in_it() {
    let all = stalls_then_calm("");
    assert!(all.false_positives.healthy > 0, "{}", all.table());
    assert!(!all.passed, "{}", all.table());
    let after = stalls_then_calm("from = \"150s\"");
    assert!(after.passed, "{}", after.table());
    assert!(
        after.table().contains("in [150s, end]"),
        "{}",
        after.table()
    );
    let during = stalls_then_calm("from = \"30s\"\nuntil = \"120s\"");
    assert!(!during.passed, "{}", during.table());
    let before = stalls_then_calm("until = \"29s\"");
    assert!(before.passed, "{}", before.table());
}

/// Node 9 cut off from 20 s to 50 s: user events sent meanwhile reach it only after the
/// heal (Serf merges the sides again); those sent well after reach everyone at once.
fn events_across_a_cut(expect: &str) -> Report {
    run_serf(&format!(
        r#"
        name = "events-window"
        layer = "serf"
        nodes = 10
        duration = "200s"
        [serf]
        reconnect_interval = "10s"
        [[actions]]
        at = "20s"
        kind = "partition"
        groups = [[9]]
        for = "30s"
        [[actions]]
        at = "25s"
        kind = "user_events"
        nodes = "0..9"
        count = 5
        every = "1s"
        [[actions]]
        at = "150s"
        kind = "user_events"
        nodes = "0..9"
        count = 5
        every = "1s"
        [[expect]]
        kind = "delivery"
        p99_max = "5s"
        {expect}
        "#
    ))
}

/// `from` and `until` on `delivery` (and `queries`): only what was sent within counts.
#[test]
fn a_delivery_expectation_over_a_window_counts_only_what_was_sent_in_it() {
    let all = events_across_a_cut("");
    assert!(!all.passed, "{}", all.table());
    let after = events_across_a_cut("from = \"100s\"");
    assert!(after.passed, "{}", after.table());
    let nothing = events_across_a_cut("from = \"60s\"\nuntil = \"100s\"");
    assert!(!nothing.passed, "{}", nothing.table());
    assert!(
        nothing
            .table()
            .contains("no user event was sent in [60s, 100s]"),
        "{}",
        nothing.table()
    );
}

/// A window must lie within the run, end after it starts, and be on a kind that takes one.
#[test]
fn expectation_windows_are_checked() {
    let fp = "[[expect]]\nkind = 'false_positives'\n";
    for (body, msg) in [
        (
            format!("{fp}from = '100s'\nuntil = '50s'\n"),
            "`until` (50s) is before `from` (100s)",
        ),
        (
            format!("{fp}until = '400s'\n"),
            "`until` is 400s, after the end",
        ),
        (
            format!("{fp}from = '301s'\n"),
            "`from` is 301s, after the end",
        ),
        (
            "[[expect]]\nkind = 'converged'\nfrom = '10s'\n".to_string(),
            "`from` does not apply to this kind",
        ),
        (
            "[[expect]]\nkind = 'detection'\nuntil = '10s'\n".to_string(),
            "`until` does not apply to this kind",
        ),
    ] {
        let e = parse(&body).unwrap_err();
        assert!(e.contains(msg), "{body}: {e}");
    }
    assert!(parse(&format!("{fp}from = '100s'\nuntil = '300s'\n")).is_ok());
}

fn moved(layer: &str, downtime: &str) -> String {
    format!(
        r#"
        name = "moved"
        layer = "{layer}"
        nodes = 10
        duration = "200s"
        [[actions]]
        at = "30s"
        kind = "restart"
        nodes = [5]
        downtime = "{downtime}"
        new_address = true
        [[expect]]
        kind = "converged"
        "#
    )
}

/// Runs `toml` on the node type `N` and checks that every view ends with node 5 alive at
/// its new address.
fn every_view_follows_the_move<N: sim::node::SimNode>(toml: &str) {
    let s = Scenario::from_toml(toml).unwrap();
    let mut sim = Simulation::<N>::new(&s, 1).unwrap();
    assert!(sim.run_until(Instant::from_secs(200), &mut |_| {}));
    let addr = sim.address(5);
    assert_ne!(addr, sim.address(4), "{addr}");
    assert_eq!(addr.to_string(), "10.0.0.11:7946");
    for i in 0..10 {
        let m = sim.node(i).unwrap().member("node-5").unwrap();
        assert_eq!(
            (m.state, m.addr),
            (MemberState::Alive, addr),
            "view of node {i}"
        );
    }
    let r = sim.run(&mut |_| {});
    assert!(r.passed, "{}", r.table());
    let five = r.timeline.iter().find(|t| t.node == 5).unwrap();
    assert!(
        five.events
            .iter()
            .any(|e| e.what == "moved to 10.0.0.11:7946"),
        "{:?}",
        five.events
    );
}

/// `new_address` on `restart`: node 5 comes back with its name at another address,
/// after every view failed it (30 s down) or before any did (1 s: the views refuse the
/// new address as a name conflict until the old one is failed and forgotten, then take
/// it); every view ends with it alive there.
#[test]
fn a_node_restarted_at_a_new_address_is_followed_by_every_view() {
    for downtime in ["30s", "1s"] {
        every_view_follows_the_move::<MemberlistNode>(&moved("memberlist", downtime));
    }
    every_view_follows_the_move::<SerfNode>(&moved("serf", "30s"));
}

/// The same on the Serf layer with a restart quicker than detection. Found with
/// `new_address`: Go's name-conflict vote asked views that all still held the crashed
/// process alive, so the restarted node lost and shut itself down, and every view kept
/// the name failed at the dead address. The old claimant must now answer the vote itself.
#[test]
fn a_serf_node_restarted_quickly_at_a_new_address_is_followed_by_every_view() {
    every_view_follows_the_move::<SerfNode>(&moved("serf", "1s"));
}

/// `new_address` applies to `start` and `restart` only.
#[test]
fn new_address_is_checked_like_any_key() {
    let e = parse("[[actions]]\nat = '10s'\nkind = 'crash'\nnodes = [1]\nnew_address = true\n")
        .unwrap_err();
    assert!(
        e.contains("`new_address` does not apply to this kind"),
        "{e}"
    );
    assert!(
        parse("[[actions]]\nat = '10s'\nkind = 'start'\nnodes = [1]\nnew_address = true\n").is_ok()
    );
}

/// `burst` on `network` and `link` (and `[[network.links]]`): the same four keys as
/// `[network.burst]`, as an inline table or an `[actions.burst]` table, each checked
/// and named when wrong.
#[test]
fn burst_keys_are_checked_like_any_setting() {
    let link = "[[actions]]\nat = '10s'\nkind = 'link'\nfrom = 'all'\nto = [7]\nfor = '20s'\n";
    for (body, says) in [
        (
            format!("{link}burst = {{ p_enter = 1.5 }}\n"),
            "action 0: burst.p_enter is 1.5; a probability is between 0 and 1",
        ),
        (
            "[[actions]]\nat = '10s'\nkind = 'network'\nburst = { p_exit = -0.1 }\n".into(),
            "action 0: burst.p_exit is -0.1",
        ),
        (
            format!("{link}[actions.burst]\nloss_bad = nan\n"),
            "action 0: burst.loss_bad is NaN",
        ),
        (
            format!("{link}burst = {{ p_entre = 0.1 }}\n"),
            "unknown field `p_entre`",
        ),
        (
            "[[actions]]\nat = '10s'\nkind = 'crash'\nnodes = [1]\nburst = { p_enter = 0.1 }\n"
                .into(),
            "`burst` does not apply to this kind",
        ),
        (
            "[[network.links]]\nfrom = 'all'\nto = [3]\nburst = { loss_good = 2.0 }\n".into(),
            "network.links[0].burst.loss_good is 2",
        ),
    ] {
        let e = parse(&body).unwrap_err();
        assert!(e.contains(says), "{body}: {e}");
    }
    // A burst alone is a setting: a `link` needs nothing else.
    let s = parse(&format!(
        "{link}[actions.burst]\np_enter = 0.05\np_exit = 0.25\nloss_bad = 0.8\n"
    ))
    .unwrap();
    let b = s.actions[0].burst.unwrap();
    assert_eq!(
        (b.p_enter, b.p_exit, b.loss_bad, b.loss_good),
        (0.05, 0.25, 0.8, 0.0)
    );
    assert!(
        parse(&format!(
            "{link}burst = {{ p_enter = 0.1 }}\nevery = '30s'\ntimes = 3\n"
        ))
        .is_ok()
    );
}

/// Bursts on node 7's inbound links from 60 s to 90 s, nothing else lossy: datagrams are
/// lost in the window only, and the run passes with the convergence invariant checked
/// after it.
fn burst_window() -> Scenario {
    parse(
        "[[actions]]\nat = '60s'\nkind = 'link'\nfrom = 'all'\nto = [7]\nfor = '30s'\n\
         burst = { p_enter = 0.1, p_exit = 0.2, loss_bad = 1.0 }\n\
         [[expect]]\nkind = 'converged'\n",
    )
    .unwrap()
}

#[test]
fn a_burst_window_on_one_nodes_inbound_links_loses_datagrams_only_while_in_force() {
    let s = burst_window();
    let mut sim = Simulation::<MemberlistNode>::new(&s, 1).unwrap();
    let lost_by = |sim: &mut Simulation<MemberlistNode>, t: u64| {
        assert!(sim.run_until(Instant::from_secs(t), &mut |_| {}));
        sim.net_counters().lost
    };
    assert_eq!(lost_by(&mut sim, 59), 0, "before the window");
    let during = lost_by(&mut sim, 90);
    // Node 7 receives about 2 datagrams a second, a third of them in the bad state
    // (p_enter / (p_enter + p_exit)) where all are lost: about 20 over the window (28
    // with this seed; 12 to 49 over seeds 1 to 6).
    assert!(during >= 10, "lost in the window: {during}");
    assert_eq!(lost_by(&mut sim, 91), during, "none after the window");
    let r = sim.run(&mut |_| {});
    assert_eq!(r.network.lost, during, "{}", r.table());
    assert!(r.passed, "{}", r.table());
    assert!(r.convergence.invariant.starts_with("held"), "{}", r.table());
    assert_eq!(
        r.convergence.last_fault, 90.0,
        "the window's end is the last fault"
    );
}

/// Same seed, same report; another seed, another trace.
#[test]
fn a_burst_window_is_a_pure_function_of_the_seed() {
    let s = burst_window();
    let run = |seed| {
        Simulation::<MemberlistNode>::new(&s, seed)
            .unwrap()
            .run(&mut |_| {})
    };
    let (a, b, c) = (run(3), run(3), run(4));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.to_json(), b.to_json());
    assert_ne!(a.trace_hash, c.trace_hash);
    assert_ne!(a.network.lost, 0);
}

/// A burst that never ends once entered and loses everything cuts node 7 off from
/// 60 s to 180 s (no stream pings, no push-pull in that time: only datagrams, which
/// the burst takes), so every other view fails it and views and truth disagree until
/// it re-joins at 185 s. Node 12 crashes at 100 s; its convergence check, 60 s later,
/// falls inside the window.
fn blackout(lasts: &str) -> Scenario {
    Scenario::from_toml(&format!(
        r#"
        name = "blackout"
        nodes = 20
        duration = "300s"
        [config]
        disable_stream_pings = true
        push_pull_interval = "10m"
        [invariants]
        convergence_deadline = "60s"
        [[actions]]
        at = "60s"
        kind = "link"
        from = "all"
        to = [7]
        burst = {{ p_enter = 1.0, p_exit = 0.0, loss_bad = 1.0 }}
        {lasts}
        [[actions]]
        at = "100s"
        kind = "crash"
        nodes = [12]
        [[actions]]
        at = "185s"
        kind = "join"
        nodes = [7]
        "#
    ))
    .unwrap()
}

/// A timed burst is a fault in force: the check due at 160 s is skipped, not failed,
/// and the check after the window (and the re-join) holds.
#[test]
fn the_convergence_invariant_waits_for_a_burst_window_to_end() {
    let s = blackout("for = '120s'");
    let mut sim = Simulation::<MemberlistNode>::new(&s, 1).unwrap();
    assert!(sim.run_until(Instant::from_secs(161), &mut |_| {}));
    assert!(!sim.agreed(), "node 7 is cut off: views disagree");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    let r = sim.run(&mut |_| {});
    assert!(r.passed, "{}", r.table());
    assert_eq!(r.convergence.last_fault, 185.0, "{}", r.table());
    assert!(r.convergence.invariant.starts_with("held"), "{}", r.table());
}

/// The test above is not vacuous: the same burst without `for` is the network from
/// then on, not a fault, and the check at 160 s fails.
#[test]
fn a_burst_without_for_is_the_network_and_the_invariant_fires_during_it() {
    let r = Simulation::<MemberlistNode>::new(&blackout(""), 1)
        .unwrap()
        .run(&mut |_| {});
    assert!(!r.passed, "{}", r.table());
    let v = &r.violations[0];
    assert_eq!(
        (v.kind.as_str(), v.at),
        ("convergence", 160.0),
        "{}",
        r.table()
    );
}
