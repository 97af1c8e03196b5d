//! Tests that look inside the engine (hosts, network, queue, recorder).

use crate::engine::{Ev, Simulation};
use crate::node::MemberlistNode;
use crate::scenario::{Action, ActionKind, NodeSet, Scenario};
use core::time::Duration;
use serf_proto::Instant;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn list(v: &[u32]) -> Option<NodeSet> {
    Some(NodeSet::List(v.to_vec()))
}

fn sim(s: &Scenario) -> Simulation<MemberlistNode> {
    Simulation::<MemberlistNode>::new(s, 1).unwrap()
}

fn run_to(sim: &mut Simulation<MemberlistNode>, t: Duration) {
    assert!(sim.run_until(Instant::from_duration(t), &mut |_| {}));
}

#[test]
fn a_short_cut_does_not_end_a_longer_partition() {
    let mut s = Scenario::new("overlap", 20, secs(120));
    s.invariants.convergence = false;
    let mut p = Action::new(secs(30), ActionKind::Partition, None);
    p.groups = Some(vec![
        NodeSet::parse("0..10").unwrap(),
        NodeSet::parse("10..20").unwrap(),
    ]);
    p.lasts = Some(secs(200));
    s.actions.push(p);
    let mut o = Action::new(secs(40), ActionKind::OneWay, None);
    o.from = list(&[0]);
    o.to = list(&[1]);
    o.lasts = Some(secs(5));
    s.actions.push(o);
    let mut sim = sim(&s);
    run_to(&mut sim, secs(42));
    assert!(!sim.net.reachable(0, 1) && sim.net.reachable(1, 0));
    run_to(&mut sim, secs(50));
    assert!(sim.net.reachable(0, 1), "the cut ended at 45 s");
    assert!(
        !sim.net.reachable(0, 15),
        "the 200 s partition ended at 45 s"
    );
    assert!(sim.net.is_split());
}

#[test]
fn a_heal_ends_every_split_and_their_timed_ends_change_nothing_after() {
    let mut s = Scenario::new("heal", 10, secs(60));
    s.invariants.convergence = false;
    let mut p = Action::new(secs(10), ActionKind::Partition, None);
    p.groups = Some(vec![NodeSet::parse("0..5").unwrap()]);
    p.lasts = Some(secs(20));
    s.actions.push(p);
    s.actions
        .push(Action::new(secs(15), ActionKind::Heal, None));
    let mut p2 = Action::new(secs(20), ActionKind::Partition, None);
    p2.groups = Some(vec![NodeSet::parse("0..3").unwrap()]);
    s.actions.push(p2);
    let mut sim = sim(&s);
    run_to(&mut sim, secs(35));
    // The first partition's end at 30 s does not end the second one.
    assert!(!sim.net.reachable(0, 5) && sim.net.reachable(3, 5));
}

#[test]
fn the_end_of_a_pause_does_not_end_a_slow() {
    let mut s = Scenario::new("slowpause", 10, secs(60));
    s.invariants.convergence = false;
    let mut sl = Action::new(secs(10), ActionKind::Slow, list(&[5]));
    sl.delay = Some((secs(1), secs(2)));
    s.actions.push(sl); // no `for`: slow until the end
    let mut pa = Action::new(secs(20), ActionKind::Pause, list(&[5]));
    pa.lasts = Some(secs(3));
    s.actions.push(pa);
    let mut sim = sim(&s);
    run_to(&mut sim, secs(30));
    assert_eq!(sim.hosts[5].slow, Some((secs(1), secs(2))));
}

#[test]
fn overlapping_slows_and_pauses_end_one_at_a_time() {
    let mut s = Scenario::new("overlap", 10, secs(60));
    s.invariants.convergence = false;
    let mut a = Action::new(secs(10), ActionKind::Slow, list(&[5]));
    a.delay = Some((secs(1), secs(2)));
    s.actions.push(a);
    let mut b = Action::new(secs(12), ActionKind::Slow, list(&[5, 6]));
    b.delay = Some((secs(3), secs(4)));
    b.lasts = Some(secs(5));
    s.actions.push(b);
    let mut p1 = Action::new(secs(20), ActionKind::Pause, list(&[7]));
    p1.lasts = Some(secs(10));
    s.actions.push(p1);
    let mut p2 = Action::new(secs(22), ActionKind::Pause, list(&[7]));
    p2.lasts = Some(secs(3));
    s.actions.push(p2);
    let mut sim = sim(&s);
    run_to(&mut sim, secs(13));
    assert_eq!(
        sim.hosts[5].slow,
        Some((secs(3), secs(4))),
        "the later slow wins"
    );
    run_to(&mut sim, secs(18));
    assert_eq!(
        sim.hosts[5].slow,
        Some((secs(1), secs(2))),
        "the earlier is back"
    );
    assert_eq!(sim.hosts[6].slow, None);
    run_to(&mut sim, secs(26));
    assert!(sim.hosts[7].impaired(sim.now), "paused until 30 s");
    run_to(&mut sim, secs(31));
    assert!(!sim.hosts[7].impaired(sim.now));
    assert_eq!(sim.hosts[7].paused_until, None);
}

#[test]
fn a_restarted_node_is_not_slow_by_its_previous_life() {
    let mut s = Scenario::new("slow-restart", 10, secs(60));
    s.invariants.convergence = false;
    let mut a = Action::new(secs(10), ActionKind::Slow, list(&[5]));
    a.delay = Some((secs(1), secs(2)));
    s.actions.push(a);
    let mut r = Action::new(secs(15), ActionKind::Restart, list(&[5]));
    r.downtime = Some(secs(1));
    s.actions.push(r);
    let mut b = Action::new(secs(20), ActionKind::Slow, list(&[5]));
    b.delay = Some((secs(3), secs(4)));
    b.lasts = Some(secs(5));
    s.actions.push(b);
    let mut sim = sim(&s);
    run_to(&mut sim, secs(17));
    assert_eq!(sim.hosts[5].slow, None);
    run_to(&mut sim, secs(30));
    assert_eq!(
        sim.hosts[5].slow, None,
        "the first slow died with the first life"
    );
}

/// A queued deferred input of a previous life must not be counted in the new life's
/// lanes (each lane's counter equals the current life's deferred inputs queued).
#[test]
fn deferred_inputs_of_a_previous_life_do_not_touch_the_new_lifes_lanes() {
    let mut s = Scenario::new("stale", 10, secs(60));
    s.invariants.convergence = false;
    let mut sl = Action::new(secs(10), ActionKind::Slow, list(&[5]));
    sl.delay = Some((secs(4), secs(4)));
    s.actions.push(sl);
    let mut c = Action::new(secs(20), ActionKind::Crash, list(&[5]));
    c.label = Some("x".into());
    s.actions.push(c);
    s.actions.push(Action::new(
        Duration::from_millis(20_100),
        ActionKind::Start,
        Some(NodeSet::Label("x".into())),
    ));
    let mut sl2 = Action::new(Duration::from_millis(20_200), ActionKind::Slow, list(&[5]));
    sl2.delay = Some((secs(4), secs(4)));
    s.actions.push(sl2);
    let mut sim = sim(&s);
    for ms in (20_300..26_000).step_by(100) {
        run_to(&mut sim, Duration::from_millis(ms));
        let life = sim.hosts[5].life;
        let mut pending = [0u32; 3];
        for it in sim.queue.iter() {
            if let Ev::Deferred {
                node: 5,
                life: l,
                ev,
            } = &it.ev
                && *l == life
            {
                pending[crate::engine::lane(ev)] += 1;
            }
        }
        assert_eq!(
            sim.hosts[5].inbox_len, pending,
            "at {ms} ms: lane counters vs queued deferred inputs of the current life"
        );
    }
}

#[test]
fn overlapping_network_actions_restore_only_their_own_settings() {
    let mut s = Scenario::new("net-overlap", 10, secs(80));
    s.invariants.convergence = false;
    let mut a = Action::new(secs(30), ActionKind::Network, None);
    a.loss = Some(0.3);
    a.lasts = Some(secs(20)); // 30..50 s
    s.actions.push(a);
    let mut b = Action::new(secs(40), ActionKind::Network, None);
    b.latency = Some(Duration::from_millis(50));
    b.lasts = Some(secs(20)); // 40..60 s
    s.actions.push(b);
    let mut sim = sim(&s);
    run_to(&mut sim, secs(45));
    assert_eq!(sim.net.base().loss, 0.3);
    assert_eq!(sim.net.base().latency, Duration::from_millis(50));
    run_to(&mut sim, secs(55));
    assert_eq!(sim.net.base().loss, 0.0, "the loss ended at 50 s");
    assert_eq!(sim.net.base().latency, Duration::from_millis(50));
    run_to(&mut sim, secs(65));
    assert_eq!(
        *sim.net.base(),
        s.network.link(),
        "30% loss came back at 60 s"
    );
}
/// A disturbance that changes no view at once (here a network change) is not
/// "converged after 0 s" when it breaks agreement later.
#[test]
fn an_epoch_is_not_converged_at_its_start_if_agreement_breaks_later() {
    let mut s = Scenario::new("v", 10, secs(60));
    s.invariants.convergence = false;
    let mut a = Action::new(secs(20), ActionKind::Network, None);
    a.loss = Some(1.0);
    s.actions.push(a);
    let mut sim = sim(&s);
    run_to(&mut sim, secs(60));
    assert!(!sim.views.agreed());
    let epochs = sim.rec.epoch_convergence(sim.now);
    assert_eq!(epochs.last().unwrap(), &(Instant::from_secs(20), None));
    assert_eq!(sim.rec.agreed_within(Instant::from_secs(20), sim.now), None);
}

#[test]
fn a_query_keeps_the_first_answer_of_each_node() {
    let mut rec = crate::measure::Recorder::default();
    rec.sent(true, 7, 0, Instant::from_secs(1));
    for (from, t) in [(3, 2), (4, 3), (3, 4), (4, 5), (5, 6)] {
        rec.responded(7, from, Instant::from_secs(t));
    }
    let answers: Vec<(u32, u64)> = rec.queries[0]
        .responses
        .iter()
        .map(|&(n, t)| (n, t.as_duration().as_secs()))
        .collect();
    assert_eq!(answers, [(3, 2), (4, 3), (5, 6)]);
}

#[test]
fn the_report_says_why_convergence_was_not_checked() {
    // The last fault at 40 s plus the deadline is past the end at 60 s.
    let mut s = Scenario::new("unchecked", 10, secs(60));
    s.actions
        .push(Action::new(secs(40), ActionKind::Crash, list(&[4])));
    let r = sim(&s).run(&mut |_| {});
    let why = &r.convergence.invariant;
    assert!(
        why.starts_with("not checked: the last fault at 40.000s + deadline"),
        "{why}"
    );
    assert!(why.ends_with("is past the end (60.000s)"), "{why}");
    assert!(r.table().contains("convergence invariant"));
    // A slow node still slow when it is due.
    let mut s = Scenario::new("slow", 10, secs(200));
    s.invariants.convergence_deadline = Some(secs(30));
    let mut a = Action::new(secs(20), ActionKind::Slow, list(&[4]));
    a.delay = Some((secs(1), secs(2)));
    s.actions.push(a);
    let r = sim(&s).run(&mut |_| {});
    assert_eq!(
        r.convergence.invariant,
        "not checked: 1 slow or paused nodes still in force when it was due at 50.000s"
    );
    // Checked and held.
    let mut s = Scenario::new("held", 10, secs(200));
    s.invariants.convergence_deadline = Some(secs(60));
    s.actions
        .push(Action::new(secs(40), ActionKind::Crash, list(&[4])));
    let r = sim(&s).run(&mut |_| {});
    assert_eq!(r.convergence.invariant, "held (checked at 100.000s)");
}

#[test]
fn a_violation_gives_its_exact_instant_and_run_until_stops_at_or_before_it() {
    // Nobody can agree 1 s after a crash: the convergence invariant breaks at 30.5 s.
    let mut s = Scenario::new("violation", 10, secs(60));
    s.invariants.convergence_deadline = Some(secs(1));
    s.actions.push(Action::new(
        Duration::from_millis(29_500),
        ActionKind::Crash,
        list(&[4]),
    ));
    let r = sim(&s).run(&mut |_| {});
    let v = &r.violations[0];
    assert_eq!(v.kind, "convergence");
    assert_eq!(v.instant(), Instant::from_nanos(30_500_000_000));
    let mut replay = sim(&s);
    let before = v.instant() - Duration::from_nanos(1);
    assert!(replay.run_until(before, &mut |_| {}));
    assert!(replay.violations().is_empty());
    assert!(!replay.run_until(v.instant(), &mut |_| {}));
    assert_eq!(replay.violations(), r.violations.as_slice());
}

/// A payload over the Serf limit is refused by the sender: the run fails and says what
/// to change, instead of reporting 0% delivered with no reason. With the limit raised
/// through `[serf]`, the same events go through.
#[test]
fn refused_sends_fail_the_run_and_serf_overrides_lift_the_limit() {
    let toml = |extra: &str| {
        format!(
            "name = 'refuse'\nlayer = 'serf'\nnodes = 10\nduration = '60s'\n{extra}\n\
             [measure]\nevent_size = 510\n\
             [[actions]]\nat = '20s'\nkind = 'user_events'\nnodes = 'all'\ncount = 3\n"
        )
    };
    let s = Scenario::from_toml(&toml("")).unwrap();
    let r = Simulation::<crate::SerfNode>::new(&s, 1)
        .unwrap()
        .run(&mut |_| {});
    assert_eq!(r.user_events.refused, 3);
    assert!(!r.passed);
    let last = r.expectations.last().unwrap();
    assert!(
        !last.ok && last.detail.contains("user_event_size_limit"),
        "{}",
        last.detail
    );

    let s = Scenario::from_toml(&toml("[serf]\nuser_event_size_limit = 1024")).unwrap();
    let r = Simulation::<crate::SerfNode>::new(&s, 1)
        .unwrap()
        .run(&mut |_| {});
    assert_eq!(r.user_events.refused, 0);
    assert_eq!(r.user_events.delivered, r.user_events.expected);
    assert!(r.passed, "{}", r.table());
}

/// Issue 11, item 2: a timed `network` action is a fault until its `for` ends, so the
/// convergence deadline cannot expire inside the loss window; the deadline counts from
/// the window's end, which the report names as the last fault.
#[test]
fn a_timed_network_fault_is_in_force_until_it_ends() {
    let mut s = Scenario::new("loss-window", 20, secs(200));
    s.invariants.convergence_deadline = Some(secs(30));
    let mut a = Action::new(secs(40), ActionKind::Network, None);
    a.loss = Some(1.0); // nobody can agree while it lasts
    a.lasts = Some(secs(60)); // 40..100 s
    s.actions.push(a);
    let mut sim = sim(&s);
    // Due at 70 s, inside the window: skipped, not violated.
    run_to(&mut sim, secs(75));
    assert!(
        !sim.views.agreed(),
        "the views do disagree inside the window"
    );
    assert_eq!(
        sim.convergence_check,
        crate::observe::ConvergenceCheck::FaultsActive(
            Instant::from_secs(70),
            "a timed network change".into()
        )
    );
    // The window's end starts the next quiet period.
    run_to(&mut sim, secs(101));
    assert_eq!(sim.last_disturbance, Instant::from_secs(100));
    assert_eq!(
        sim.convergence_check,
        crate::observe::ConvergenceCheck::Due(Instant::from_secs(130))
    );
}

/// Issue 11, item 4: a node whose leave never completed still runs; the convergence
/// violation must not call it "down".
#[test]
fn a_node_stuck_leaving_is_not_described_as_down() {
    let mut s = Scenario::new("stuck-leaving", 10, secs(60));
    s.invariants.convergence_deadline = Some(secs(5));
    let mut sim = sim(&s);
    run_to(&mut sim, secs(30));
    // What a leave that never completes looks like: out of the truth, still running,
    // and every view still holds it (no leave message went out).
    sim.leave_truth(4);
    sim.hosts[4].status = crate::engine::Status::Leaving;
    sim.disturbed();
    assert!(!sim.run_until(Instant::from_secs(40), &mut |_| {}));
    let v = &sim.violations()[0];
    assert!(
        v.message
            .contains("node 4 (leaving, still running: its leave has not completed) is a member in 9 of 9 live views"),
        "{}",
        v.message
    );
}
