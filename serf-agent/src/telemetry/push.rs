//! Go's push sinks: `statsd_addr` (statsd lines over UDP) and `statsite_addr` (the same
//! lines over TCP), sent every interval. Counters go out as the increase since the last
//! push (`|c`), gauges as their level (`|g`), so statsd's own aggregation stays right.

use super::{Collect, Kind, Sample};
use crate::config::LogLevel;
use crate::handlers::LogFn;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// A datagram stays below a common path MTU (statsd's usual limit), so no line is lost to
/// fragmentation.
const MAX_DATAGRAM: usize = 1432;
/// Time allowed for one push, connecting included.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A running push sink; it stops when dropped.
#[derive(Debug)]
pub struct PushSink {
    task: JoinHandle<()>,
}

impl Drop for PushSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends every figure to a statsd server at `addr` (`host:port`) over UDP every
/// `interval`. Errors (an unresolvable name, a refused datagram) are logged once until
/// the next success; the sink keeps trying. Must be called inside a tokio runtime.
pub fn spawn_statsd(addr: String, interval: Duration, collect: Collect, log: LogFn) -> PushSink {
    spawn_push("statsd", addr, interval, collect, log, Statsd(None))
}

/// Sends every figure to a statsite server at `addr` over TCP every `interval`, one line
/// per figure, reconnecting after an error.
pub fn spawn_statsite(addr: String, interval: Duration, collect: Collect, log: LogFn) -> PushSink {
    spawn_push("statsite", addr, interval, collect, log, Statsite(None))
}

/// How one sink delivers a push; it connects lazily and is reset after an error.
trait Transport: Send + 'static {
    fn send<'a>(
        &'a mut self,
        addr: &'a str,
        lines: &'a [String],
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'a;
    fn reset(&mut self);
}

struct Statsd(Option<UdpSocket>);

impl Transport for Statsd {
    async fn send(&mut self, addr: &str, lines: &[String]) -> std::io::Result<()> {
        if self.0.is_none() {
            let target = resolve(addr).await?;
            let any: SocketAddr = if target.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let s = UdpSocket::bind(any).await?;
            s.connect(target).await?;
            self.0 = Some(s);
        }
        let s = self.0.as_ref().ok_or(std::io::ErrorKind::NotConnected)?;
        for datagram in pack(lines, MAX_DATAGRAM) {
            s.send(datagram.as_bytes()).await?;
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.0 = None;
    }
}

struct Statsite(Option<TcpStream>);

impl Transport for Statsite {
    async fn send(&mut self, addr: &str, lines: &[String]) -> std::io::Result<()> {
        if self.0.is_none() {
            let target = resolve(addr).await?;
            self.0 = Some(TcpStream::connect(target).await?);
        }
        let c = self.0.as_mut().ok_or(std::io::ErrorKind::NotConnected)?;
        let mut text = lines.join("\n");
        text.push('\n');
        c.write_all(text.as_bytes()).await
    }

    fn reset(&mut self) {
        self.0 = None;
    }
}

/// The push loop shared by the sinks: collect, turn into lines, send within a timeout;
/// log the first error of a streak and the recovery.
fn spawn_push(
    sink: &'static str,
    addr: String,
    interval: Duration,
    collect: Collect,
    log: LogFn,
    mut transport: impl Transport,
) -> PushSink {
    let task = tokio::spawn(async move {
        let mut deltas = Deltas::default();
        let mut failing = false;
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let lines = deltas.lines(&collect().await.samples());
            let result = tokio::time::timeout(IO_TIMEOUT, transport.send(&addr, &lines))
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
            match result {
                Err(e) => {
                    transport.reset();
                    if !failing {
                        log(
                            LogLevel::Warn,
                            format!(
                                "agent: cannot send metrics to {sink} at {addr}: {e}; retrying"
                            ),
                        );
                    }
                    failing = true;
                }
                Ok(()) if failing => {
                    failing = false;
                    log(
                        LogLevel::Info,
                        format!("agent: sending metrics to {sink} at {addr} again"),
                    );
                }
                Ok(()) => {}
            }
        }
    });
    PushSink { task }
}

async fn resolve(addr: &str) -> std::io::Result<SocketAddr> {
    tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{addr} resolves to no address")))
}

/// Remembers each counter's last value, to send increases.
#[derive(Default)]
struct Deltas {
    last: HashMap<String, f64>,
}

impl Deltas {
    /// statsd lines for `samples`: `serf.memberlist.packets_received:12|c`,
    /// `serf.members.alive:3|g`.
    fn lines(&mut self, samples: &[Sample]) -> Vec<String> {
        let mut out = Vec::with_capacity(samples.len());
        for s in samples {
            let key = statsd_key(s);
            match s.kind {
                Kind::Gauge => out.push(format!("{key}:{}|g", s.value)),
                Kind::Counter => {
                    let prev = self.last.insert(key.clone(), s.value).unwrap_or(0.0);
                    // A counter that went down was reset (the node restarted): send its
                    // whole value, as it all happened since.
                    let delta = if s.value >= prev {
                        s.value - prev
                    } else {
                        s.value
                    };
                    out.push(format!("{key}:{delta}|c"));
                }
            }
        }
        out
    }
}

/// `serf_memberlist_packets_received_total` → `serf.memberlist.packets_received`; label
/// values become further segments (`serf.members.alive`).
fn statsd_key(s: &Sample) -> String {
    let base = s.name.strip_suffix("_total").unwrap_or(&s.name);
    let mut key = match base.split_once('_') {
        Some(("serf", rest)) => match rest.split_once('_') {
            Some((layer, name)) if ["memberlist", "driver", "agent"].contains(&layer) => {
                format!("serf.{layer}.{name}")
            }
            _ => format!("serf.{rest}"),
        },
        _ => base.to_owned(),
    };
    for (_, v) in &s.labels {
        key.push('.');
        key.extend(v.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        }));
    }
    key
}

/// Joins lines with `\n` into payloads of at most `max` bytes (a longer line alone).
fn pack(lines: &[String], max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for l in lines {
        if !cur.is_empty() && cur.len() + 1 + l.len() > max {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push('\n');
        }
        cur.push_str(l);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, kind: Kind, labels: Vec<(&'static str, String)>, value: f64) -> Sample {
        Sample {
            name: name.into(),
            help: String::new(),
            kind,
            labels,
            value,
        }
    }

    #[test]
    fn counters_are_sent_as_increases_and_gauges_as_levels() {
        let mut d = Deltas::default();
        let c = |v| {
            sample(
                "serf_memberlist_packets_sent_total",
                Kind::Counter,
                vec![],
                v,
            )
        };
        let g = sample(
            "serf_members",
            Kind::Gauge,
            vec![("status", "alive".into())],
            3.0,
        );
        assert_eq!(
            d.lines(&[c(10.0), g.clone()]),
            [
                "serf.memberlist.packets_sent:10|c",
                "serf.members.alive:3|g"
            ]
        );
        assert_eq!(d.lines(&[c(15.0)]), ["serf.memberlist.packets_sent:5|c"]);
        assert_eq!(d.lines(&[c(2.0)]), ["serf.memberlist.packets_sent:2|c"]);
    }

    #[test]
    fn datagrams_stay_under_the_limit() {
        let lines: Vec<String> = (0..100).map(|i| format!("serf.metric_{i}:1|c")).collect();
        let packed = pack(&lines, 100);
        assert!(packed.iter().all(|p| p.len() <= 100));
        let rejoined: Vec<&str> = packed.iter().flat_map(|p| p.split('\n')).collect();
        assert_eq!(
            rejoined,
            lines.iter().map(String::as_str).collect::<Vec<_>>()
        );
    }
}
