//! The end of a run: measurements summarized, expectations checked, printed as a table
//! and written as JSON.

use crate::engine::{NetCounters, Simulation, Status};
use crate::measure::{Broadcast, CrashRecord, Sample, Stats};
use crate::node::SimNode;
use crate::scenario::{ExpectKind, Expectation, Subjects};
use core::fmt::Write as _;
use serde::Serialize;
use serf_proto::Instant;

/// An invariant that broke.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// Simulated seconds.
    pub at: f64,
    /// The exact simulated instant, in nanoseconds (see [`Violation::instant`]).
    pub at_nanos: u64,
    /// The node whose step broke it, if one did.
    pub node: Option<u32>,
    /// Which invariant.
    pub kind: String,
    /// What happened.
    pub message: String,
}

impl Violation {
    /// The simulated instant of the step that broke the invariant. To look at the nodes
    /// just before it, replay with `Simulation::run_until(v.instant() - 1 ns)`, which
    /// runs every event up to and including that earlier instant; `run_until` on the
    /// instant itself stops right after the violating step.
    pub fn instant(&self) -> Instant {
        Instant::from_nanos(self.at_nanos)
    }
}

/// One expectation's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectResult {
    /// The expectation, in words.
    pub what: String,
    /// Whether it held.
    pub ok: bool,
    /// The measured value.
    pub detail: String,
}

/// Convergence.
#[derive(Debug, Clone, Serialize)]
pub struct Convergence {
    /// The deadline in force (seconds after the last fault).
    pub deadline: f64,
    /// When the last fault or membership action happened.
    pub last_fault: f64,
    /// Seconds from the last fault until every live view agreed, if it did.
    pub converged_after: Option<f64>,
    /// Whether the views agreed at the end.
    pub agreed_at_end: bool,
    /// Every quiet period: (start, seconds to agreement).
    pub epochs: Vec<(f64, Option<f64>)>,
    /// What became of the convergence invariant after the last fault, in words: held,
    /// violated, or why it was not checked (off, the deadline past the end of the run,
    /// faults still in force).
    pub invariant: String,
}

/// Failure detection.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// Crashes.
    pub crashes: usize,
    /// Crashes every live view failed.
    pub detected: usize,
    /// Seconds until a first view suspected the crashed node.
    pub first_suspect: Stats,
    /// The same in protocol periods, counted as SWIM does: the first probe that failed
    /// started in period `floor(t / probe_interval)` after the crash.
    pub first_suspect_periods: Stats,
    /// Seconds until a first view declared it failed.
    pub first: Stats,
    /// Seconds until every live view had.
    pub all: Stats,
    /// Crashes counted: not restarted before every view failed them (the `detection`
    /// expectation's denominator; `detected` is out of these).
    pub counted: usize,
    /// Crashes restarted before every view failed them (not counted).
    pub restarted_first: usize,
    /// SWIM's mean first-suspicion period for one failure, e/(e−1) ≈ 1.582, when it
    /// describes this run: a LAN or local profile and at least 10 crashes, none
    /// overlapping another's detection. `None` otherwise.
    pub swim_reference: Option<f64>,
    /// Why there is no SWIM reference, if there is none.
    pub swim_reference_not_applicable: Option<String>,
    /// Every crash.
    pub records: Vec<CrashRecord>,
}

/// False failure reports (a live member reported failed by a live node).
#[derive(Debug, Clone, Serialize)]
pub struct FalsePositives {
    /// Reports about healthy members, one per reporting view.
    pub healthy: u64,
    /// Reports about members slow or paused at some point of their current life.
    pub slow: u64,
    /// Distinct (member, incarnation) pairs wrongly failed: healthy members.
    pub healthy_distinct: usize,
    /// Reports about live members while a partition or cut was in force, or within the
    /// longest suspicion timeout plus a probe interval after it ended (not counted
    /// above).
    pub during_partition: u64,
    /// Reports about a restarted member at an incarnation an earlier life reached: the
    /// crashed life's detection finishing after the restart (not counted above).
    pub previous_life: u64,
    /// The same for slow members.
    pub slow_distinct: usize,
    /// The spans, in seconds, in which failure reports were put down to partitions
    /// (`during_partition`) rather than counted: each partition or cut and the aftermath
    /// after it; splits that heal for less than the aftermath make one span.
    pub uncounted: Vec<(f64, f64)>,
    /// Seconds of the run in `uncounted`.
    pub uncounted_seconds: f64,
    /// Spans that swallowed heal windows (a flapping partition healed each time for less
    /// than the aftermath): no report in them was counted, so a 0 above says nothing
    /// about them. In words, one per span.
    pub vacuous: Vec<String>,
}

/// User events or queries.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// How many were sent.
    pub sent: usize,
    /// Receipts expected: nodes live from the send to the end, the sender excluded.
    pub expected: u64,
    /// Receipts seen among those.
    pub delivered: u64,
    /// `delivered / expected`.
    pub completeness: f64,
    /// Seconds from send to receipt.
    pub latency: Stats,
    /// Queries only: answers the asker got among the expected.
    pub answered: u64,
    /// Queries only: seconds from the query to each answer.
    pub response_latency: Stats,
    /// How many were lost with their sender: it stopped (crashed, left) before any other
    /// node had received them, so no protocol could deliver them. Not counted in
    /// `expected`.
    pub lost_with_sender: usize,
    /// How many the sending node refused (e.g. a payload over its size limit). Any
    /// refusal fails the run: the scenario asked for something the nodes cannot do.
    pub refused: u64,
    /// Queries on the Serf layer: how many ended at the asker before the run did.
    pub finished: usize,
    /// Of those, how many ended before their timeout with every answer: Serf called the
    /// query complete (every member alive in the asker's view answered) *and* every
    /// node live from the query to the end of the run did answer. A query that ends
    /// because the asker gave up on unreachable members is not counted.
    pub finished_complete: usize,
    /// Seconds from each query to its end at the asker (every query that ended).
    pub finish_latency: Stats,
    /// Each ended query's end as a fraction of its timeout (1.0: it waited the whole
    /// timeout, as Go's queries always do).
    pub finish_fraction: Stats,
}

/// Traffic per node and second of uptime.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficReport {
    /// Node-seconds of uptime.
    pub node_seconds: f64,
    /// Datagrams sent per node per second.
    pub datagrams: f64,
    /// Datagram bytes sent per node per second.
    pub datagram_bytes: f64,
    /// Stream frames sent per node per second.
    pub frames: f64,
    /// Stream bytes sent per node per second.
    pub frame_bytes: f64,
    /// Datagrams plus frames per node per second.
    pub messages: f64,
    /// All bytes per node per second.
    pub bytes: f64,
}

/// Protocol counters summed over the nodes running at the end (a crashed node's
/// counters go with it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProtocolTotals {
    /// Suspicions started or learned.
    pub suspicions: u64,
    /// Probes that failed.
    pub probes_failed: u64,
    /// Refutations.
    pub refutes: u64,
    /// Deaths declared after a suspicion expired.
    pub deaths_declared: u64,
    /// Broadcasts dropped by full queues.
    pub broadcasts_dropped: u64,
    /// The deepest broadcast queue at the end.
    pub max_queue_depth: usize,
    /// The highest local health score at the end.
    pub max_health: u32,
}

/// What the network did.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)] // See `NetCounters`.
pub struct NetReport {
    pub delivered: u64,
    pub lost: u64,
    pub cut: u64,
    pub to_down: u64,
    pub duplicated: u64,
    pub inbox_full: u64,
    pub uplink_full: u64,
    pub unroutable: u64,
    pub streams_opened: u64,
    pub streams_failed: u64,
}

impl From<NetCounters> for NetReport {
    fn from(c: NetCounters) -> Self {
        NetReport {
            delivered: c.delivered,
            lost: c.lost,
            cut: c.cut,
            to_down: c.to_down,
            duplicated: c.duplicated,
            inbox_full: c.inbox_full,
            uplink_full: c.uplink_full,
            unroutable: c.unroutable,
            streams_opened: c.streams_opened,
            streams_failed: c.streams_failed,
        }
    }
}

/// Curves kept for the plots (not written to JSON).
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Detection latencies, first view (seconds), of the counted crashes.
    pub detect_first: Vec<f64>,
    /// Detection latencies, all views (seconds), of the counted crashes.
    pub detect_all: Vec<f64>,
    /// Crashes counted for detection (not restarted before every view failed them),
    /// detected or not: the CDFs' denominator, so undetected crashes show.
    pub crashes_counted: usize,
    /// Per user event: sorted receipt latencies (seconds) and the expected count.
    pub dissemination: Vec<(Vec<f64>, u64)>,
}

/// One node's state changes, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeTimeline {
    /// The node's index.
    pub node: u32,
    /// What happened to it, when.
    pub events: Vec<TimelineEvent>,
}

/// A state change of a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEvent {
    /// Simulated seconds.
    pub at: f64,
    /// What: "started", "crashed", "paused for 5s", "leaving", "leave completed", ...
    pub what: String,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The layer simulated.
    pub layer: &'static str,
    /// The seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Simulated seconds run.
    pub simulated_seconds: f64,
    /// Queue entries processed.
    pub steps: u64,
    /// The trace hash, as 16 hex digits.
    pub trace_hash: String,
    /// No violation and every expectation held.
    pub passed: bool,
    /// Invariant violations (the run stops at the first).
    pub violations: Vec<Violation>,
    /// Expectations.
    pub expectations: Vec<ExpectResult>,
    /// What the scenario asked for that could not happen at run time, in order (e.g. a
    /// `start` of a node still running or still leaving): each says when and which
    /// action.
    pub warnings: Vec<String>,
    /// Per node, its state changes in order (JSON only).
    pub timeline: Vec<NodeTimeline>,
    /// Convergence.
    pub convergence: Convergence,
    /// Failure detection.
    pub detection: Detection,
    /// False positives.
    pub false_positives: FalsePositives,
    /// User events.
    pub user_events: Delivery,
    /// Queries.
    pub queries: Delivery,
    /// Traffic.
    pub traffic: TrafficReport,
    /// The network.
    pub network: NetReport,
    /// Protocol counters.
    pub protocol: ProtocolTotals,
    /// Keyring operations (`install_key`, `use_key`, `remove_key`), in order.
    pub key_operations: Vec<crate::measure::KeyOpRecord>,
    /// Joins that reached a seed.
    pub joins_ok: u64,
    /// Joins that reached none.
    pub joins_failed: u64,
    /// Views over time.
    pub samples: Vec<Sample>,
    /// Curves for the plots.
    #[serde(skip)]
    pub series: Series,
}

fn secs(t: Instant) -> f64 {
    t.as_duration().as_secs_f64()
}

impl<N: SimNode> Simulation<N> {
    fn delivery(&self, list: &[Broadcast]) -> (Delivery, Vec<(Vec<f64>, u64)>) {
        let mut expected = 0u64;
        let mut delivered = 0u64;
        let mut answered = 0u64;
        let mut lat = Vec::new();
        let mut resp = Vec::new();
        let mut curves = Vec::new();
        let (mut finished, mut finished_complete) = (0, 0);
        let (mut fin, mut frac) = (Vec::new(), Vec::new());
        let mut lost_with_sender = 0;
        for b in list {
            let live_since = |n: u32, t: Instant| {
                let h = &self.hosts[n as usize];
                h.status == Status::Up && h.up_since <= t
            };
            let live = |n: u32| n != b.origin && live_since(n, b.sent_at);
            // The sender stopped before any other node got it: no protocol could have
            // delivered it, so it is reported apart rather than missing everywhere.
            if !live_since(b.origin, b.sent_at) && b.received.iter().all(|&(n, _)| n == b.origin) {
                lost_with_sender += 1;
                continue;
            }
            let exp = (0..self.hosts.len() as u32).filter(|&n| live(n)).count() as u64;
            expected += exp;
            let mut curve = Vec::new();
            for &(n, t) in &b.received {
                if live(n) {
                    delivered += 1;
                    let l = (t - b.sent_at).as_secs_f64();
                    lat.push(l);
                    curve.push(l);
                }
            }
            let mut live_answers = 0u64;
            for &(n, t) in &b.responses {
                if live(n) {
                    live_answers += 1;
                    resp.push((t - b.sent_at).as_secs_f64());
                }
            }
            answered += live_answers;
            if let Some((t, complete, timeout)) = b.done {
                finished += 1;
                finished_complete += usize::from(complete && live_answers == exp);
                let l = (t - b.sent_at).as_secs_f64();
                fin.push(l);
                if !timeout.is_zero() {
                    frac.push(l / timeout.as_secs_f64());
                }
            }
            curve.sort_by(f64::total_cmp);
            curves.push((curve, exp));
        }
        let d = Delivery {
            sent: list.len(),
            expected,
            delivered,
            completeness: if expected == 0 {
                1.0
            } else {
                delivered as f64 / expected as f64
            },
            latency: Stats::of(&lat),
            answered,
            response_latency: Stats::of(&resp),
            refused: 0,
            lost_with_sender,
            finished,
            finished_complete,
            finish_latency: Stats::of(&fin),
            finish_fraction: Stats::of(&frac),
        };
        (d, curves)
    }

    fn convergence_invariant(&self) -> String {
        use crate::observe::ConvergenceCheck as C;
        match &self.convergence_check {
            C::Off => "off".into(),
            C::Due(at) => format!("not checked: the run stopped before it was due at {at}"),
            C::PastEnd(at) => format!(
                "not checked: the last fault at {} + deadline {:.3}s = {at} is past the end \
                 ({})",
                self.last_disturbance,
                self.deadline.as_secs_f64(),
                self.end
            ),
            C::FaultsActive(at, faults) => {
                format!("not checked: {faults} still in force when it was due at {at}")
            }
            C::Held(at) => format!("held (checked at {at})"),
            C::Violated(at) => format!("violated at {at}"),
        }
    }

    /// Summarizes the run and checks the expectations.
    pub fn finish(self) -> Report {
        let now = self.now;
        let probe = self.ml_config.probe_interval.as_secs_f64();
        let crashes = &self.rec.crashes;
        let pick = |f: fn(&CrashRecord) -> Option<f64>| -> Vec<f64> {
            crashes.iter().filter_map(f).collect()
        };
        let first_suspect = pick(|c| c.first_suspect);
        let periods: Vec<f64> = first_suspect.iter().map(|t| (t / probe).floor()).collect();
        let counted = |f: fn(&CrashRecord) -> Option<f64>| -> Vec<f64> {
            crashes
                .iter()
                .filter(|c| !c.restarted_first)
                .filter_map(f)
                .collect()
        };
        // Detection is measured over the counted crashes, as the expectation checks it.
        let detect_first = counted(|c| c.first_failed);
        let detect_all = counted(|c| c.all_failed);
        let restarted_first = crashes.iter().filter(|c| c.restarted_first).count();
        let not_swim = if crashes.is_empty() {
            Some("no crash".to_string())
        } else if self.scenario.profile == crate::scenario::Profile::Wan {
            Some("the WAN profile (a probe timeout of most of a period, long latencies)".into())
        } else if crashes.iter().any(|c| c.concurrent) {
            Some("crashes overlapped (SWIM's figure is for one failure at a time)".into())
        } else if first_suspect.len() < 10 {
            Some(format!(
                "{} crashes suspected (the mean of fewer than 10 is too noisy to compare)",
                first_suspect.len()
            ))
        } else {
            None
        };
        let detection = Detection {
            crashes: crashes.len(),
            detected: detect_all.len(),
            first_suspect: Stats::of(&first_suspect),
            first_suspect_periods: Stats::of(&periods),
            first: Stats::of(&detect_first),
            all: Stats::of(&detect_all),
            counted: crashes.len() - restarted_first,
            restarted_first,
            swim_reference: not_swim
                .is_none()
                .then_some(core::f64::consts::E / (core::f64::consts::E - 1.0)),
            swim_reference_not_applicable: not_swim,
            records: crashes.clone(),
        };
        let (mut user_events, curves) = self.delivery(&self.rec.events);
        let (mut queries, _) = self.delivery(&self.rec.queries);
        user_events.refused = self.rec.refused_events;
        queries.refused = self.rec.refused_queries;
        let mut node_seconds = 0.0;
        let (mut dg, mut db, mut fr, mut fb) = (0u64, 0u64, 0u64, 0u64);
        for h in &self.hosts {
            let mut up = h.up_time;
            if h.running() {
                up += now - h.up_since;
            }
            node_seconds += up.as_secs_f64();
            dg += h.traffic.datagrams;
            db += h.traffic.bytes;
            fr += h.traffic.frames;
            fb += h.traffic.frame_bytes;
        }
        let per = |x: u64| {
            if node_seconds > 0.0 {
                x as f64 / node_seconds
            } else {
                0.0
            }
        };
        let traffic = TrafficReport {
            node_seconds,
            datagrams: per(dg),
            datagram_bytes: per(db),
            frames: per(fr),
            frame_bytes: per(fb),
            messages: per(dg + fr),
            bytes: per(db + fb),
        };
        let last_fault = self.last_disturbance;
        let epochs = self.rec.epoch_convergence(now);
        let converged_after = epochs
            .last()
            .and_then(|&(_, took)| took)
            .map(|d| d.as_secs_f64());
        let convergence = Convergence {
            deadline: self.deadline.as_secs_f64(),
            last_fault: secs(last_fault),
            converged_after,
            agreed_at_end: self.views.agreed(),
            invariant: self.convergence_invariant(),
            epochs: epochs
                .iter()
                .map(|&(t, d)| (secs(t), d.map(|d| d.as_secs_f64())))
                .collect(),
        };
        let false_positives = FalsePositives {
            healthy: self.rec.fp_healthy,
            slow: self.rec.fp_slow,
            healthy_distinct: self.rec.fp_healthy_distinct.len(),
            during_partition: self.rec.fp_partitioned,
            previous_life: self.rec.fp_previous_life,
            slow_distinct: self.rec.fp_slow_distinct.len(),
            uncounted: Vec::new(),
            uncounted_seconds: 0.0,
            vacuous: Vec::new(),
        };
        let mut false_positives = false_positives;
        for &(from, to, splits) in &self.uncounted {
            let to = to.map_or(now, |t| t.min(now));
            false_positives.uncounted.push((secs(from), secs(to)));
            false_positives.uncounted_seconds += secs(to) - secs(from);
            if splits > 1 {
                false_positives.vacuous.push(format!(
                    "no failure report was counted from {from} to {to}: the {splits} \
                     partitions or cuts in that span each healed for less than {:.0}s (the \
                     longest suspicion plus a probe interval), so their heal windows count as \
                     partition time and 0 says nothing about them",
                    self.split_aftermath.as_secs_f64()
                ));
            }
        }
        let mut protocol = ProtocolTotals::default();
        for node in self.nodes.iter().flatten() {
            let c = node.counters();
            protocol.suspicions += c.suspicions;
            protocol.probes_failed += c.probes_failed;
            protocol.refutes += c.refutes;
            protocol.deaths_declared += c.deaths_declared;
            protocol.broadcasts_dropped += c.broadcasts_dropped;
            protocol.max_queue_depth = protocol.max_queue_depth.max(c.queue_depth);
            protocol.max_health = protocol.max_health.max(c.health);
        }
        let mut report = Report {
            scenario: self.scenario.name.clone(),
            layer: N::KIND,
            seed: self.seed,
            nodes: self.hosts.len(),
            simulated_seconds: secs(now),
            steps: self.steps,
            trace_hash: format!("{:016x}", self.trace.value()),
            passed: false,
            violations: self.violations.clone(),
            expectations: Vec::new(),
            warnings: self.warnings.clone(),
            timeline: self
                .timeline
                .iter()
                .enumerate()
                .map(|(i, t)| NodeTimeline {
                    node: i as u32,
                    events: t
                        .iter()
                        .map(|(at, what)| TimelineEvent {
                            at: secs(*at),
                            what: what.clone(),
                        })
                        .collect(),
                })
                .collect(),
            convergence,
            detection,
            false_positives,
            user_events,
            queries,
            traffic,
            network: self.net_counters.into(),
            protocol,
            key_operations: self.rec.key_ops.clone(),
            joins_ok: self.rec.joins_ok,
            joins_failed: self.rec.joins_failed,
            samples: self.rec.samples.clone(),
            series: Series {
                detect_first: counted(|c| c.first_failed),
                detect_all: counted(|c| c.all_failed),
                crashes_counted: crashes.iter().filter(|c| !c.restarted_first).count(),
                dissemination: curves,
            },
        };
        if report.violations.is_empty() {
            report.expectations = self
                .scenario
                .expect
                .iter()
                .map(|e| self.check(e, &report))
                .collect();
        }
        let (ev, q) = (report.user_events.refused, report.queries.refused);
        if ev + q > 0 {
            report.expectations.push(ExpectResult {
                what: "every user event and query accepted by its sender".into(),
                ok: false,
                detail: format!(
                    "{ev} user events and {q} queries refused: a payload of [measure] \
                     event_size bytes is over the nodes' limits (on the Serf layer raise \
                     [serf] user_event_size_limit or query_size_limit, which count the \
                     name and header too, or lower event_size)"
                ),
            });
        }
        report.passed = report.violations.is_empty() && report.expectations.iter().all(|e| e.ok);
        report
    }

    /// Whether `t` is in the expectation's `[from, until]` window (an open end is the
    /// run's start or end).
    fn in_window(e: &Expectation, t: Instant) -> bool {
        e.from.is_none_or(|f| t >= Instant::from_duration(f))
            && e.until.is_none_or(|u| t <= Instant::from_duration(u))
    }

    /// The delivery figures over the events or queries sent within the expectation's
    /// window; `None` without a window (the report's figures stand).
    fn windowed(&self, e: &Expectation, list: &[Broadcast]) -> Option<Delivery> {
        if e.from.is_none() && e.until.is_none() {
            return None;
        }
        let sent: Vec<Broadcast> = list
            .iter()
            .filter(|b| Self::in_window(e, b.sent_at))
            .cloned()
            .collect();
        Some(self.delivery(&sent).0)
    }

    fn check(&self, e: &Expectation, r: &Report) -> ExpectResult {
        let fmt = |d: Option<f64>| d.map_or("never".to_string(), |d| format!("{d:.1}s"));
        let in_window = |t: Instant| Self::in_window(e, t);
        let window = match (e.from, e.until) {
            (None, None) => String::new(),
            (f, u) => format!(
                " in [{:.0}s, {}]",
                f.map_or(0.0, |f| f.as_secs_f64()),
                u.map_or("end".to_string(), |u| format!("{:.0}s", u.as_secs_f64()))
            ),
        };
        match e.kind {
            ExpectKind::Converged => {
                let after = e
                    .after
                    .map(Instant::from_duration)
                    .unwrap_or(self.last_disturbance);
                let within = e.within.unwrap_or(self.deadline);
                let to = (after + within).min(self.now);
                let got = self.rec.agreed_within(after, to);
                ExpectResult {
                    what: format!(
                        "all live nodes agree within {:.0}s after {:.0}s",
                        within.as_secs_f64(),
                        secs(after)
                    ),
                    ok: got.is_some(),
                    detail: format!(
                        "agreed after {}",
                        fmt(got.map(|t| (t - after).as_secs_f64()))
                    ),
                }
            }
            ExpectKind::FalsePositives => {
                let fp = &r.false_positives;
                let (healthy, slow) = if e.from.is_some() || e.until.is_some() {
                    let counted = self.rec.fp_times.iter().filter(|&&(t, _)| in_window(t));
                    let n = counted.clone().count() as u64;
                    let s = counted.filter(|&&(_, s)| s).count() as u64;
                    (n - s, s)
                } else {
                    (fp.healthy, fp.slow)
                };
                let got = match e.subjects {
                    Subjects::All => healthy + slow,
                    Subjects::Healthy => healthy,
                    Subjects::Slow => slow,
                };
                let max = e.max.unwrap_or(0);
                let mut detail = format!("{got}");
                if fp.uncounted_seconds > 0.0 {
                    let _ = write!(
                        detail,
                        " (reports around partitions not counted, for {:.0}s of the run{})",
                        fp.uncounted_seconds,
                        if fp.vacuous.is_empty() {
                            ""
                        } else {
                            "; see the note: the count says nothing about a flapping partition"
                        }
                    );
                }
                ExpectResult {
                    what: format!(
                        "at most {max} false failure reports ({:?} members){window}",
                        e.subjects
                    ),
                    ok: got <= max,
                    detail,
                }
            }
            ExpectKind::Detection => {
                let d = &r.detection;
                // Crashes restarted before they were detected are not counted (README).
                let counted = d.records.iter().filter(|c| !c.restarted_first).count();
                let detected = d
                    .records
                    .iter()
                    .filter(|c| !c.restarted_first && c.all_failed.is_some())
                    .count();
                let mut ok = detected == counted;
                let mut detail = format!("{detected}/{counted} crashes detected by all");
                if let Some(f) = e.first_within {
                    let first = d
                        .records
                        .iter()
                        .filter(|c| !c.restarted_first && c.first_failed.is_some())
                        .count();
                    ok &= first == counted && d.first.max <= f.as_secs_f64();
                    let _ = write!(detail, ", first max {:.1}s", d.first.max);
                }
                if let Some(a) = e.all_within {
                    ok &= d.all.max <= a.as_secs_f64();
                    let _ = write!(detail, ", all max {:.1}s", d.all.max);
                }
                let bound = |d: Option<core::time::Duration>| {
                    d.map_or("any time".to_string(), |d| {
                        format!("{:.1}s", d.as_secs_f64())
                    })
                };
                ExpectResult {
                    what: format!(
                        "every crash detected (first within {}, all within {})",
                        bound(e.first_within),
                        bound(e.all_within)
                    ),
                    ok,
                    detail,
                }
            }
            ExpectKind::Delivery => {
                let windowed = self.windowed(e, &self.rec.events);
                let d = windowed.as_ref().unwrap_or(&r.user_events);
                let min = e.completeness.unwrap_or(1.0);
                // None sent (every sender down when its turn came): 100% of nothing.
                let mut ok = d.sent > 0 && d.completeness >= min;
                if let Some(p) = e.p99_max {
                    ok &= d.latency.p99 <= p.as_secs_f64();
                }
                ExpectResult {
                    what: format!(
                        "user events{window} reach {:.1}% of live nodes, p99 within {}",
                        min * 100.0,
                        e.p99_max.map_or("any time".to_string(), |d| format!(
                            "{:.1}s",
                            d.as_secs_f64()
                        ))
                    ),
                    ok,
                    detail: if d.sent == 0 {
                        format!("no user event was sent{window} (see the warnings)")
                    } else {
                        format!(
                            "{:.2}% reached, p99 {:.2}s",
                            d.completeness * 100.0,
                            d.latency.p99
                        )
                    },
                }
            }
            ExpectKind::Queries => {
                let windowed = self.windowed(e, &self.rec.queries);
                let q = windowed.as_ref().unwrap_or(&r.queries);
                let min = e.completeness.unwrap_or(1.0);
                let answered = if q.expected == 0 {
                    1.0
                } else {
                    q.answered as f64 / q.expected as f64
                };
                let early = if q.sent == 0 {
                    1.0
                } else {
                    q.finished_complete as f64 / q.sent as f64
                };
                let mut what = format!(
                    "queries{window} answered by {:.1}% of live nodes",
                    min * 100.0
                );
                let mut detail = if q.sent == 0 {
                    format!("no query was sent{window} (see the warnings)")
                } else {
                    format!("{:.2}% answered", answered * 100.0)
                };
                if let Some(e) = e.ended_early {
                    what += &format!(", {:.1}% ended early with every answer", e * 100.0);
                    detail += &format!(
                        ", {}/{} ended early with every answer",
                        q.finished_complete, q.sent
                    );
                    if q.finished > 0 {
                        detail += &format!(
                            " (the {} that ended did at {:.2} of their timeout on average)",
                            q.finished, q.finish_fraction.mean
                        );
                    }
                }
                ExpectResult {
                    what,
                    ok: q.sent > 0 && answered >= min && e.ended_early.is_none_or(|m| early >= m),
                    detail,
                }
            }
        }
    }
}

impl Report {
    /// The human-readable summary table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let row = |s: &mut String, k: &str, v: String| {
            let _ = writeln!(s, "  {k:<38} {v}");
        };
        let st = |x: &Stats| {
            if x.count == 0 {
                "-".to_string()
            } else {
                format!(
                    "mean {:.2}s  p50 {:.2}s  p99 {:.2}s  max {:.2}s  (n={})",
                    x.mean, x.p50, x.p99, x.max, x.count
                )
            }
        };
        let _ = writeln!(
            s,
            "scenario {} ({}), {} nodes, seed {}, {:.0} simulated s, {} steps",
            self.scenario, self.layer, self.nodes, self.seed, self.simulated_seconds, self.steps
        );
        let c = &self.convergence;
        row(
            &mut s,
            "convergence after last fault",
            format!(
                "{} (last fault at {:.0}s, deadline {:.0}s, agreed at end: {})",
                c.converged_after
                    .map_or("not reached".into(), |d| format!("{d:.2}s")),
                c.last_fault,
                c.deadline,
                c.agreed_at_end
            ),
        );
        row(&mut s, "convergence invariant", c.invariant.clone());
        let d = &self.detection;
        if d.crashes > 0 {
            let mut detected = format!("{}/{}", d.detected, d.counted);
            if d.restarted_first > 0 {
                let _ = write!(
                    detected,
                    " ({} more restarted before every view failed them: not counted)",
                    d.restarted_first
                );
            }
            row(&mut s, "crashes detected by all views", detected);
            row(&mut s, "first suspicion", st(&d.first_suspect));
            row(
                &mut s,
                "first suspicion, SWIM periods",
                match (&d.swim_reference, &d.swim_reference_not_applicable) {
                    (Some(r), _) => format!(
                        "mean {:.3} (SWIM: e/(e-1) = {r:.3})",
                        d.first_suspect_periods.mean
                    ),
                    (None, why) => format!(
                        "mean {:.3} (no SWIM reference: {})",
                        d.first_suspect_periods.mean,
                        why.as_deref().unwrap_or("-")
                    ),
                },
            );
            row(&mut s, "detection, first view", st(&d.first));
            row(&mut s, "detection, all views", st(&d.all));
        }
        let fp = &self.false_positives;
        row(
            &mut s,
            "false failure reports: healthy / slow",
            format!(
                "{} / {} (distinct {} / {}); not counted: {} around partitions, {} about \
                 earlier lives",
                fp.healthy,
                fp.slow,
                fp.healthy_distinct,
                fp.slow_distinct,
                fp.during_partition,
                fp.previous_life
            ),
        );
        if fp.uncounted_seconds > 0.0 {
            row(
                &mut s,
                "false reports uncounted (partitions)",
                format!(
                    "for {:.0}s of the run, in {} spans",
                    fp.uncounted_seconds,
                    fp.uncounted.len()
                ),
            );
        }
        for v in &fp.vacuous {
            let _ = writeln!(s, "  note: {v}");
        }
        for (name, e) in [
            ("user events", &self.user_events),
            ("queries", &self.queries),
        ] {
            if e.sent > 0 {
                row(
                    &mut s,
                    &format!("{name}: sent, completeness"),
                    format!(
                        "{}, {:.2}% ({}/{})",
                        e.sent,
                        e.completeness * 100.0,
                        e.delivered,
                        e.expected
                    ),
                );
                if e.lost_with_sender > 0 {
                    row(
                        &mut s,
                        &format!("{name}: lost with the sender"),
                        format!(
                            "{} (their sender stopped before any other node got them: \
                             not counted)",
                            e.lost_with_sender
                        ),
                    );
                }
                row(&mut s, &format!("{name}: latency"), st(&e.latency));
                if name == "queries" {
                    row(
                        &mut s,
                        "queries: answers, latency",
                        format!("{}, {}", e.answered, st(&e.response_latency)),
                    );
                    if e.finished > 0 {
                        row(
                            &mut s,
                            "queries: ended at the asker",
                            format!(
                                "{}/{} ended, {} early with every answer; {}",
                                e.finished,
                                e.sent,
                                e.finished_complete,
                                st(&e.finish_latency)
                            ),
                        );
                        let f = &e.finish_fraction;
                        row(
                            &mut s,
                            "queries: end / timeout",
                            format!(
                                "mean {:.2}  p50 {:.2}  max {:.2} (1.00 = the whole timeout, as in Go)",
                                f.mean, f.p50, f.max
                            ),
                        );
                    }
                }
            }
        }
        let t = &self.traffic;
        row(
            &mut s,
            "per node per second",
            format!(
                "{:.2} msgs, {:.0} B ({:.2} datagrams {:.0} B, {:.3} frames {:.0} B)",
                t.messages, t.bytes, t.datagrams, t.datagram_bytes, t.frames, t.frame_bytes
            ),
        );
        let n = &self.network;
        row(
            &mut s,
            "network: delivered/lost/cut/to-down",
            format!("{}/{}/{}/{}", n.delivered, n.lost, n.cut, n.to_down),
        );
        let p = &self.protocol;
        row(
            &mut s,
            "suspicions/refutes/deaths/dropped",
            format!(
                "{}/{}/{}/{} (nodes running at the end)",
                p.suspicions, p.refutes, p.deaths_declared, p.broadcasts_dropped
            ),
        );
        for k in &self.key_operations {
            row(
                &mut s,
                &format!("key {:?} {} from node {}", k.op, k.key, k.node),
                match k.took {
                    Some(t) => format!(
                        "at {:.1}s: {}/{} answered, {} errors, ended after {t:.2}s{}",
                        k.at,
                        k.answered,
                        k.nodes,
                        k.errors,
                        if k.complete() { "" } else { " (INCOMPLETE)" }
                    ),
                    None => format!("at {:.1}s: did not end before the run did", k.at),
                },
            );
        }
        row(
            &mut s,
            "joins ok / failed",
            format!("{} / {}", self.joins_ok, self.joins_failed),
        );
        row(&mut s, "trace hash", self.trace_hash.clone());
        for e in &self.expectations {
            row(
                &mut s,
                if e.ok { "expect OK" } else { "expect FAILED" },
                format!("{}: {}", e.what, e.detail),
            );
        }
        for w in &self.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
        for v in &self.violations {
            let _ = writeln!(
                s,
                "  VIOLATION at {:.3}s [{}]{}: {}",
                v.at,
                v.kind,
                v.node.map_or(String::new(), |n| format!(" node {n}")),
                v.message
            );
        }
        let _ = writeln!(s, "  result: {}", if self.passed { "PASS" } else { "FAIL" });
        s
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).expect("report serializes")
    }
}
