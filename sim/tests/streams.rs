//! The stream model, seen through a minimal `SimNode` that logs what happens to it:
//! set-up takes a round trip, frames arrive in order, close follows the frames, and a
//! partition or a crash fails a stream after its timeout. (It also shows that the trait
//! is small enough for another layer to implement.)

use serf_proto::{Instant, StreamEvent, StreamId};
use sim::node::{MemberView, NodeCounters, NodeSpec, SimNode, SimOutput};
use sim::scenario::{Action, ActionKind, NodeSet};
use sim::{Scenario, Simulation};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

/// Logs its inputs. `user_event` opens a stream to node 1, sends three frames and
/// closes it; `query` opens one and sends one frame without closing; a `user_event`
/// while that one is open sends one more frame (`late`) on it.
#[derive(Debug, Default)]
struct LogNode {
    out: VecDeque<(SimOutput, Vec<u8>)>,
    log: Vec<(Instant, String)>,
    next_inbound: u64,
    open: Option<StreamId>,
}

impl LogNode {
    fn open(&mut self, id: u64, frames: usize, close: bool) {
        let (id, to) = (StreamId(id), sim::engine::addr_of(1));
        self.out
            .push_back((SimOutput::OpenStream { id, to }, Vec::new()));
        for k in 0..frames {
            self.out
                .push_back((SimOutput::SendFrame { id }, format!("f{k}").into_bytes()));
        }
        if close {
            self.out
                .push_back((SimOutput::CloseStream { id }, Vec::new()));
        }
    }
}

impl SimNode for LogNode {
    const KIND: &'static str = "log";
    type Config = ();
    type Snapshot = ();

    fn configure(
        _: serf_proto::memberlist::Config,
        _: &sim::scenario::SerfOverrides,
    ) -> Result<(), String> {
        Ok(())
    }
    fn start(_: &NodeSpec<()>, _: Instant, _: Option<()>) -> Result<Self, String> {
        Ok(LogNode::default())
    }
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, _: &[u8]) {
        self.log.push((now, format!("datagram from {from}")));
    }
    fn accept_stream(&mut self, now: Instant, from: SocketAddr) -> Option<StreamId> {
        self.next_inbound += 1;
        self.log.push((now, format!("accept from {from}")));
        Some(StreamId(1000 + self.next_inbound))
    }
    fn handle_stream(&mut self, now: Instant, id: StreamId, event: StreamEvent<'_>) {
        let what = match event {
            StreamEvent::Frame(f) => String::from_utf8_lossy(f).into_owned(),
            StreamEvent::Closed => "closed".into(),
            StreamEvent::Failed => "failed".into(),
        };
        self.log.push((now, format!("{} {what}", id.0)));
    }
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll(&mut self, _: Instant, buf: &mut Vec<u8>) -> SimOutput {
        match self.out.pop_front() {
            Some((o, data)) => {
                buf.clear();
                buf.extend_from_slice(&data);
                o
            }
            None => SimOutput::Timeout(Instant::MAX),
        }
    }
    fn join(&mut self, _: Instant, _: &[SocketAddr]) -> bool {
        true
    }
    fn leave(&mut self, _: Instant) {}
    fn shutdown(&mut self) -> Option<()> {
        None
    }
    fn user_event(&mut self, _: Instant, id: u64) -> bool {
        match self.open {
            Some(id) => self
                .out
                .push_back((SimOutput::SendFrame { id }, b"late".to_vec())),
            None => self.open(id, 3, true),
        }
        true
    }
    fn query(&mut self, _: Instant, id: u64) -> bool {
        self.open(id, 1, false);
        self.open = Some(StreamId(id));
        true
    }
    fn incarnation(&self) -> u32 {
        1
    }
    fn member(&self, _: &str) -> Option<MemberView> {
        None
    }
    fn num_alive(&self) -> usize {
        1
    }
    fn counters(&self) -> NodeCounters {
        NodeCounters {
            queue_limit: 1,
            members_limit: 1,
            ..NodeCounters::default()
        }
    }
    fn forget_after(_: &()) -> Duration {
        Duration::from_secs(30)
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Two nodes, 10 ms apart, no jitter; `actions` added; run for 20 s.
fn run(actions: Vec<Action>) -> Simulation<LogNode> {
    let mut s = Scenario::new("streams", 2, Duration::from_secs(20));
    s.bootstrap.spread = Duration::ZERO;
    s.network.latency = ms(10);
    s.network.jitter = Duration::ZERO;
    s.invariants.convergence = false;
    s.actions = actions;
    let mut sim = Simulation::<LogNode>::new(&s, 1).unwrap();
    assert!(sim.run_until(Instant::from_secs(20), &mut |_| {}));
    sim
}

fn at(t: Duration, kind: ActionKind, nodes: &[u32]) -> Action {
    let mut a = Action::new(t, kind, Some(NodeSet::List(nodes.to_vec())));
    if matches!(kind, ActionKind::UserEvents | ActionKind::Queries) {
        a.count = Some(1);
    }
    a
}

fn log(sim: &Simulation<LogNode>, i: u32) -> Vec<(u64, String)> {
    sim.node(i)
        .unwrap()
        .log
        .iter()
        .map(|(t, s)| (t.as_duration().as_millis() as u64, s.clone()))
        .collect()
}

#[test]
fn accept_takes_a_round_trip_frames_arrive_in_order_and_close_follows() {
    let sim = run(vec![at(ms(1000), ActionKind::UserEvents, &[0])]);
    let peer = log(&sim, 1);
    assert_eq!(
        peer,
        vec![
            (1020, "accept from 10.0.0.1:7946".to_string()),
            (1020, "1001 f0".into()),
            (1020, "1001 f1".into()),
            (1020, "1001 f2".into()),
            (1020, "1001 closed".into()),
        ]
    );
}

#[test]
fn a_connect_across_a_partition_fails_after_the_connect_timeout() {
    let mut cut = Action::new(ms(500), ActionKind::Partition, None);
    cut.groups = Some(vec![NodeSet::List(vec![0]), NodeSet::List(vec![1])]);
    let sim = run(vec![cut, at(ms(1000), ActionKind::Queries, &[0])]);
    // The default connect timeout is 3 s.
    assert_eq!(log(&sim, 0), vec![(4000, "1 failed".to_string())]);
    assert!(log(&sim, 1).is_empty());
}

#[test]
fn a_crash_fails_an_established_stream_after_the_break_timeout() {
    let sim = run(vec![
        at(ms(1000), ActionKind::Queries, &[0]),
        at(ms(2000), ActionKind::Crash, &[1]),
    ]);
    // Established at 1.020 s; the peer crashes at 2 s; the default break timeout is 5 s.
    assert_eq!(log(&sim, 0), vec![(7000, "1 failed".to_string())]);
}

#[test]
fn a_paused_node_runs_its_queued_inputs_when_it_resumes() {
    let mut pause = at(ms(900), ActionKind::Pause, &[1]);
    pause.lasts = Some(ms(1500));
    let sim = run(vec![pause, at(ms(1000), ActionKind::UserEvents, &[0])]);
    let peer = log(&sim, 1);
    assert_eq!(peer.len(), 5);
    assert!(peer.iter().all(|(t, _)| *t == 2400), "{peer:?}");
    let order: Vec<&str> = peer.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        order,
        [
            "accept from 10.0.0.1:7946",
            "1001 f0",
            "1001 f1",
            "1001 f2",
            "1001 closed"
        ]
    );
}

#[test]
fn an_idle_stream_cut_by_a_partition_fails_after_the_break_timeout() {
    let mut cut = Action::new(ms(2000), ActionKind::Partition, None);
    cut.groups = Some(vec![NodeSet::List(vec![0]), NodeSet::List(vec![1])]);
    // Established at 1.020 s with one frame, never closed, idle; partition at 2 s.
    let sim = run(vec![at(ms(1000), ActionKind::Queries, &[0]), cut]);
    assert_eq!(log(&sim, 0), vec![(7000, "1 failed".to_string())]);
    assert_eq!(
        log(&sim, 1).last().unwrap(),
        &(7000, "1001 failed".to_string())
    );
    assert_eq!(sim.open_streams(), 0);
    assert_eq!(sim.finish().network.streams_failed, 1);
}

#[test]
fn a_one_way_cut_fails_an_idle_stream_both_ways() {
    let mut cut = Action::new(ms(2000), ActionKind::OneWay, None);
    cut.from = Some(NodeSet::List(vec![1]));
    cut.to = Some(NodeSet::List(vec![0]));
    let sim = run(vec![at(ms(1000), ActionKind::Queries, &[0]), cut]);
    assert_eq!(log(&sim, 0), vec![(7000, "1 failed".to_string())]);
    assert_eq!(
        log(&sim, 1).last().unwrap(),
        &(7000, "1001 failed".to_string())
    );
}

#[test]
fn a_partition_loses_what_is_in_flight() {
    // Opened at 1 s: frames and close land at 1.020 s; the partition at 1.015 s cuts
    // the handshake, so the peer never sees the stream and the opener's connect fails.
    let mut cut = Action::new(ms(1015), ActionKind::Partition, None);
    cut.groups = Some(vec![NodeSet::List(vec![0]), NodeSet::List(vec![1])]);
    let sim = run(vec![at(ms(1000), ActionKind::UserEvents, &[0]), cut]);
    assert!(log(&sim, 1).is_empty(), "{:?}", log(&sim, 1));
    // The opener closed its end at once, but a closed end still learns how the stream
    // ended (that is how a send-only stream's lost message is counted).
    assert_eq!(log(&sim, 0), vec![(4015, "1 failed".to_string())]);
    assert_eq!(sim.open_streams(), 0);
    assert_eq!(sim.finish().network.streams_failed, 1);
}

#[test]
fn a_connect_to_an_unreachable_peer_counts_as_a_failed_stream() {
    let mut cut = Action::new(ms(500), ActionKind::Partition, None);
    cut.groups = Some(vec![NodeSet::List(vec![0]), NodeSet::List(vec![1])]);
    let sim = run(vec![cut, at(ms(1000), ActionKind::Queries, &[0])]);
    assert_eq!(sim.open_streams(), 0);
    let net = sim.finish().network;
    assert_eq!((net.streams_opened, net.streams_failed), (1, 1));
}

#[test]
fn frames_a_node_sent_before_it_crashed_still_arrive() {
    // Established at 1.020 s; at 1.100 s the opener sends one more frame (landing at
    // 1.110 s) and crashes at 1.105 s: the frame was on the wire. The peer's end then
    // fails after the break timeout.
    let sim = run(vec![
        at(ms(1000), ActionKind::Queries, &[0]),
        at(ms(1100), ActionKind::UserEvents, &[0]),
        at(ms(1105), ActionKind::Crash, &[0]),
    ]);
    assert_eq!(
        log(&sim, 1),
        vec![
            (1020, "accept from 10.0.0.1:7946".to_string()),
            (1020, "1001 f0".into()),
            (1110, "1001 late".into()),
            (6105, "1001 failed".into()),
        ]
    );
    assert_eq!(sim.open_streams(), 0);
}

#[test]
fn an_open_still_in_its_handshake_when_the_opener_crashes_never_reaches_the_peer() {
    // The accept would run at 1.020 s (one round trip); the opener crashes at 1.005 s,
    // before the handshake completes, so its frames never leave either.
    let sim = run(vec![
        at(ms(1000), ActionKind::Queries, &[0]),
        at(ms(1005), ActionKind::Crash, &[0]),
    ]);
    assert!(log(&sim, 1).is_empty(), "{:?}", log(&sim, 1));
    assert_eq!(sim.open_streams(), 0);
}
