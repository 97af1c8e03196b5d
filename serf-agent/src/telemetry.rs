//! Metrics exporters: every counter and gauge of the core, the driver and the agent, in
//! the Prometheus text format (0.0.4) on an optional HTTP address (`prometheus_addr`,
//! ours), and pushed to Go's `statsd_addr` (UDP) and `statsite_addr` (TCP) sinks.
//!
//! The figures come from a [`Snapshot`]: the core's [`Metrics`] and [`SerfMetrics`] (walked
//! with their `iter`, so a counter added to the core is exported without a change here),
//! the driver's [`DriverStats`], Go's `Stats()` (health score, queue depths, clocks), the
//! members by status, and the agent's own figures (handler runs and failures, RPC
//! clients). The agent gives the exporters a [`Collect`] function that builds one.
//!
//! ```no_run
//! # async fn demo(node: serf_driver_tokio::SerfHandle) -> std::io::Result<()> {
//! use serf_agent::telemetry::{Collect, Snapshot, serve_prometheus};
//! use std::sync::Arc;
//! let collect: Collect = Arc::new(move || {
//!     let node = node.clone();
//!     Box::pin(async move { Snapshot::from_node(&node).await.unwrap_or_default() })
//! });
//! let server = serve_prometheus("127.0.0.1:9100".parse().unwrap(), collect).await?;
//! println!("metrics at http://{}/metrics", server.local_addr());
//! # Ok(()) }
//! ```

mod http;
mod push;

pub use http::{PrometheusServer, serve_prometheus};
pub use push::{PushSink, spawn_statsd, spawn_statsite};

use crate::handlers::HandlerStats;
use serf_driver_tokio::{DriverStats, SerfHandle};
use serf_proto::Metrics;
use serf_proto::serf::{MemberStatus, SerfMetrics, Stats};
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Builds a fresh [`Snapshot`] each time an exporter needs one.
pub type Collect = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Snapshot> + Send>> + Send + Sync>;

/// Whether a figure only grows (a counter) or goes up and down (a gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonically increasing from zero.
    Counter,
    /// A level at this instant.
    Gauge,
}

/// One exported figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric's name, `serf_...` (counters end in `_total`).
    pub name: String,
    /// One line saying what it counts.
    pub help: String,
    /// Counter or gauge.
    pub kind: Kind,
    /// Labels, such as `status="alive"`.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

/// Everything the exporters publish, read at one instant.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The memberlist layer's counters.
    pub core: Metrics,
    /// The Serf layer's counters.
    pub serf: SerfMetrics,
    /// The driver's counters.
    pub driver: DriverStats,
    /// Go's `Stats()`: health score, queue depths, clocks (None if the node is gone).
    pub stats: Option<Stats>,
    /// Members by status (`alive`, `leaving`, `left`, `failed`).
    pub members: Vec<(MemberStatus, usize)>,
    /// The event handlers' counters.
    pub handlers: HandlerStats,
    /// RPC clients connected now.
    pub rpc_clients: u64,
    /// Events RPC `stream`s lost because their client read too slowly
    /// ([`crate::rpc::stream::EventHub::dropped`]).
    pub rpc_stream_dropped: u64,
    /// Log lines `monitor`s lost because their client read too slowly
    /// ([`crate::log::Logger::dropped`]).
    pub rpc_monitor_dropped: u64,
}

impl Snapshot {
    /// Reads the node's counters, statistics and members. The agent then fills in
    /// `handlers` and the `rpc_` figures.
    pub async fn from_node(node: &SerfHandle) -> Result<Snapshot, serf_driver_tokio::Error> {
        let (core, serf, driver) = node.metrics().await?;
        let stats = node.stats().await.ok();
        let members = node.members();
        let members = [
            MemberStatus::Alive,
            MemberStatus::Leaving,
            MemberStatus::Left,
            MemberStatus::Failed,
        ]
        .into_iter()
        .map(|s| (s, members.count(s)))
        .collect();
        Ok(Snapshot {
            core,
            serf,
            driver,
            stats,
            members,
            ..Snapshot::default()
        })
    }

    /// Every figure, named for Prometheus.
    pub fn samples(&self) -> Vec<Sample> {
        let mut out = Vec::new();
        let counter = |prefix: &str, name: &str, help: &str, v: u64| Sample {
            name: format!("{prefix}{name}_total"),
            help: help.to_owned(),
            kind: Kind::Counter,
            labels: Vec::new(),
            value: v as f64,
        };
        let gauge = |name: &str, help: &str, labels: Vec<(&'static str, String)>, v: f64| Sample {
            name: name.to_owned(),
            help: help.to_owned(),
            kind: Kind::Gauge,
            labels,
            value: v,
        };
        for (name, help, v) in self.core.iter() {
            out.push(counter("serf_memberlist_", name, help, v));
        }
        for (name, help, v) in self.serf.iter() {
            out.push(counter("serf_", name, help, v));
        }
        for (name, help, v, is_counter) in driver_iter(&self.driver) {
            if is_counter {
                out.push(counter("serf_driver_", name, help, v));
            } else {
                out.push(gauge(
                    &format!("serf_driver_{name}"),
                    help,
                    Vec::new(),
                    v as f64,
                ));
            }
        }
        for (status, n) in &self.members {
            out.push(gauge(
                "serf_members",
                "Members known, by status.",
                vec![("status", status.as_str().to_owned())],
                *n as f64,
            ));
        }
        if let Some(s) = &self.stats {
            out.push(gauge(
                "serf_health_score",
                "Local health (Lifeguard awareness): 0 is healthy; higher stretches probe \
                 timeouts.",
                Vec::new(),
                f64::from(s.health_score),
            ));
            for (queue, depth) in [
                ("intent", s.intent_queue),
                ("query", s.query_queue),
                ("event", s.event_queue),
            ] {
                out.push(gauge(
                    "serf_queue_depth",
                    "Broadcasts waiting to be gossiped, by queue.",
                    vec![("queue", queue.to_owned())],
                    depth as f64,
                ));
            }
            for (clock, t) in [
                ("member", s.member_time),
                ("event", s.event_time),
                ("query", s.query_time),
            ] {
                out.push(gauge(
                    "serf_lamport_time",
                    "Lamport clocks, by clock.",
                    vec![("clock", clock.to_owned())],
                    t as f64,
                ));
            }
            out.push(gauge(
                "serf_encrypted",
                "1 when gossip is encrypted.",
                Vec::new(),
                f64::from(u8::from(s.encrypted)),
            ));
            out.push(counter(
                "serf_",
                "coordinate_resets",
                "Network coordinate resets.",
                s.coordinate_resets,
            ));
        }
        for (name, help, v, is_counter) in self.handlers.iter() {
            if is_counter {
                out.push(counter("serf_agent_", name, help, v));
            } else {
                out.push(gauge(
                    &format!("serf_agent_{name}"),
                    help,
                    Vec::new(),
                    v as f64,
                ));
            }
        }
        out.push(gauge(
            "serf_agent_rpc_clients",
            "RPC clients connected now.",
            Vec::new(),
            self.rpc_clients as f64,
        ));
        out.push(counter(
            "serf_agent_",
            "rpc_stream_dropped",
            "Events lost by RPC event streams whose client read too slowly (each stream \
             queues 512).",
            self.rpc_stream_dropped,
        ));
        out.push(counter(
            "serf_agent_",
            "rpc_monitor_dropped",
            "Log lines lost by RPC monitors whose client read too slowly (each monitor \
             queues 512).",
            self.rpc_monitor_dropped,
        ));
        out
    }
}

/// The driver's figures as (name, help, value, is_counter); `DriverStats` has no `iter` of
/// its own. The struct is destructured without `..` so that a field added to the driver
/// fails to compile here until it is exported.
fn driver_iter(d: &DriverStats) -> [(&'static str, &'static str, u64, bool); 20] {
    let DriverStats {
        datagrams_received,
        datagrams_sent,
        datagrams_send_dropped,
        events_dropped,
        streams_accepted,
        streams_refused,
        connects_failed,
        frames_too_long,
        frames_received,
        frames_waited_for_budget,
        stream_write_queue_full,
        stream_write_errors,
        secure_streams_opened,
        secure_streams_accepted,
        handshakes_failed,
        handshakes_refused,
        quic_datagrams_dropped,
        task_wakeups,
        connections,
        accept_errors,
    } = *d;
    [
        (
            "datagrams_received",
            "Datagrams read from the UDP socket.",
            datagrams_received,
            true,
        ),
        ("datagrams_sent", "Datagrams sent.", datagrams_sent, true),
        (
            "datagrams_send_dropped",
            "Datagrams dropped because the socket's send buffer was full or the send failed.",
            datagrams_send_dropped,
            true,
        ),
        (
            "events_dropped",
            "Events the agent did not take in time (its queue was full).",
            events_dropped,
            true,
        ),
        (
            "streams_accepted",
            "Inbound streams handed to the core (TCP, or TLS and QUIC once their handshake \
             succeeded).",
            streams_accepted,
            true,
        ),
        (
            "streams_refused",
            "Inbound streams refused (too many at once, or shutting down).",
            streams_refused,
            true,
        ),
        (
            "connects_failed",
            "Outbound streams that could not be set up: the connect or handshake failed or \
             timed out.",
            connects_failed,
            true,
        ),
        (
            "frames_too_long",
            "Connections dropped for announcing a frame above the limit.",
            frames_too_long,
            true,
        ),
        (
            "frames_received",
            "Frames read from streams.",
            frames_received,
            true,
        ),
        (
            "frames_waited_for_budget",
            "Frames that waited for the budget of bytes in flight.",
            frames_waited_for_budget,
            true,
        ),
        (
            "stream_write_queue_full",
            "Streams failed because their write queue was full.",
            stream_write_queue_full,
            true,
        ),
        (
            "stream_write_errors",
            "Streams whose writes failed.",
            stream_write_errors,
            true,
        ),
        (
            "secure_streams_opened",
            "Outbound TLS or QUIC streams whose handshake succeeded.",
            secure_streams_opened,
            true,
        ),
        (
            "secure_streams_accepted",
            "Inbound TLS or QUIC streams whose handshake succeeded and that the core took.",
            secure_streams_accepted,
            true,
        ),
        (
            "handshakes_failed",
            "TLS or QUIC handshakes that failed, either way (wrong CA or name, non-TLS peer, \
             timeout).",
            handshakes_failed,
            true,
        ),
        (
            "handshakes_refused",
            "Inbound TLS or QUIC handshakes refused because max_inbound_streams were already \
             under way.",
            handshakes_refused,
            true,
        ),
        (
            "quic_datagrams_dropped",
            "QUIC datagrams dropped because the QUIC endpoint's queue was full or they were \
             too long.",
            quic_datagrams_dropped,
            true,
        ),
        (
            "task_wakeups",
            "Times the node's task woke (an input, a command or a deadline).",
            task_wakeups,
            true,
        ),
        (
            "connections",
            "Connections the node holds for its streams now.",
            connections,
            false,
        ),
        (
            "accept_errors",
            "Times accepting a TCP connection failed (most often for want of file \
             descriptors).",
            accept_errors,
            true,
        ),
    ]
}

/// Renders samples in the Prometheus text exposition format, version 0.0.4: a `# HELP`
/// and `# TYPE` line per metric name, then its samples.
pub fn render_prometheus(samples: &[Sample]) -> String {
    let mut out = String::new();
    let mut last_name: Option<&str> = None;
    for s in samples {
        if last_name != Some(&s.name) {
            let kind = match s.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {} {}", s.name, escape_help(&s.help));
            let _ = writeln!(out, "# TYPE {} {kind}", s.name);
            last_name = Some(&s.name);
        }
        out.push_str(&s.name);
        if !s.labels.is_empty() {
            out.push('{');
            for (i, (k, v)) in s.labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{k}=\"{}\"", escape_label(v));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {}", format_value(s.value));
    }
    out
}

fn escape_help(s: &str) -> String {
    // Help text is one line: collapse the doc comments' line breaks.
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('\\', "\\\\")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_counter_is_exported_once_with_help_and_type() {
        let snap = Snapshot {
            members: vec![(MemberStatus::Alive, 3), (MemberStatus::Failed, 1)],
            rpc_clients: 2,
            rpc_stream_dropped: 4,
            rpc_monitor_dropped: 5,
            ..Snapshot::default()
        };
        let text = render_prometheus(&snap.samples());
        for (name, _, _) in Metrics::default().iter() {
            let metric = format!("serf_memberlist_{name}_total");
            assert!(
                text.contains(&format!("# TYPE {metric} counter\n")),
                "{metric}"
            );
            assert!(text.contains(&format!("\n{metric} 0\n")), "{metric}");
        }
        for (name, _, _) in SerfMetrics::default().iter() {
            assert!(
                text.contains(&format!("# TYPE serf_{name}_total counter\n")),
                "{name}"
            );
        }
        assert!(text.contains("serf_members{status=\"alive\"} 3\n"));
        assert!(text.contains("serf_members{status=\"failed\"} 1\n"));
        assert_eq!(text.matches("# TYPE serf_members gauge").count(), 1);
        assert!(text.contains("serf_agent_rpc_clients 2\n"));
        assert!(text.contains("# TYPE serf_agent_rpc_stream_dropped_total counter\n"));
        assert!(text.contains("\nserf_agent_rpc_stream_dropped_total 4\n"));
        assert!(text.contains("\nserf_agent_rpc_monitor_dropped_total 5\n"));
        assert!(text.contains("# TYPE serf_agent_handler_runs_total counter\n"));
        for line in text.lines().filter(|l| l.starts_with("# HELP")) {
            assert!(line.split(' ').count() > 3, "help text present: {line}");
        }
    }

    /// The driver's fields as (name, value), read from its `Debug` output: `DriverStats`
    /// has no list of its fields, and `derive(Debug)` prints every one, so a field added
    /// to the driver shows up here without anyone remembering to add it.
    fn driver_fields(d: &DriverStats) -> Vec<(String, u64)> {
        let debug = format!("{d:?}");
        let inner = debug
            .strip_prefix("DriverStats { ")
            .and_then(|s| s.strip_suffix(" }"))
            .unwrap_or_else(|| panic!("unexpected Debug output: {debug}"));
        inner
            .split(", ")
            .map(|field| {
                let (name, value) = field.split_once(": ").expect("name: value");
                (name.to_owned(), value.parse().expect("a u64"))
            })
            .collect()
    }

    #[test]
    fn every_driver_field_is_exported_once_with_its_own_value() {
        // Distinct values, so a figure exported under another field's name is caught.
        let driver = DriverStats {
            datagrams_received: 1,
            datagrams_sent: 2,
            datagrams_send_dropped: 3,
            events_dropped: 4,
            streams_accepted: 5,
            streams_refused: 6,
            connects_failed: 7,
            frames_too_long: 8,
            frames_received: 9,
            frames_waited_for_budget: 10,
            stream_write_queue_full: 11,
            stream_write_errors: 12,
            secure_streams_opened: 13,
            secure_streams_accepted: 14,
            handshakes_failed: 15,
            handshakes_refused: 16,
            quic_datagrams_dropped: 17,
            task_wakeups: 18,
            connections: 19,
            accept_errors: 20,
        };
        let fields = driver_fields(&driver);
        let samples = Snapshot {
            driver,
            ..Snapshot::default()
        }
        .samples();
        let exported: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name.starts_with("serf_driver_"))
            .collect();
        assert_eq!(
            exported.len(),
            fields.len(),
            "one sample per driver field: {:?}",
            exported.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        let text = render_prometheus(&samples);
        for (name, value) in &fields {
            // `connections` is a level, not a count; every other field only grows.
            let (metric, kind) = if name == "connections" {
                (format!("serf_driver_{name}"), "gauge")
            } else {
                (format!("serf_driver_{name}_total"), "counter")
            };
            assert!(
                text.contains(&format!("# TYPE {metric} {kind}\n")),
                "{metric} as a {kind}"
            );
            assert_eq!(
                text.matches(&format!("# HELP {metric} ")).count(),
                1,
                "{metric} has one help line"
            );
            assert!(
                text.contains(&format!("\n{metric} {value}\n")),
                "{metric} is {value}"
            );
        }
    }

    #[test]
    fn labels_and_help_are_escaped() {
        let s = Sample {
            name: "x".into(),
            help: "a\\b\n  c".into(),
            kind: Kind::Gauge,
            labels: vec![("l", "q\"\\\n".into())],
            value: 1.5,
        };
        assert_eq!(
            render_prometheus(&[s]),
            "# HELP x a\\\\b c\n# TYPE x gauge\nx{l=\"q\\\"\\\\\\n\"} 1.5\n"
        );
    }
}
