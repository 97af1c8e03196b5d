//! The task that owns the core: it reads the UDP socket, accepts TCP connections, takes
//! what connections read and what handles ask, feeds each to the core with the current
//! time, drains the core's outputs, and sleeps until the core's deadline.
//!
//! Nothing here awaits while the core is borrowed: outputs are carried out with
//! non-blocking calls (a full socket buffer drops the datagram, as UDP would; a full
//! write queue fails the stream), so a slow peer or application never stalls the
//! protocol. Work per wake-up is bounded, and the deadline is checked after every batch,
//! so a flood of datagrams or connections cannot starve timers or commands.

use crate::Error;
use crate::events::QueryEvent;
use crate::handle::Command;
use crate::inbound::Accepted;
use crate::members::Members;
use crate::metrics::DriverMetrics;
use crate::socket::GossipSocket;
use crate::stream::{self, StreamMsg, StreamShared, WRITE_QUEUE, Write};
use crate::transport::Inbound;
use crate::view::Republish;
use serf_proto::serf::{Event, KeyResponse, QueryId};
use serf_proto::{Instant, Output, Serf, StreamEvent, StreamId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

/// Datagrams, stream messages or commands handled per wake-up before the deadline is
/// checked again.
const BATCH: usize = 64;

/// How long accepting rests after its first failure; each failure in a row doubles it,
/// up to [`ACCEPT_PAUSE_MAX`]. A failed accept (most often: out of file descriptors)
/// leaves the connection in the backlog, so the listener stays ready and retrying at
/// once would spin the task.
const ACCEPT_PAUSE_MIN: Duration = Duration::from_millis(10);
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);

/// The largest datagram the core accepts (a body of up to 64 KiB).
const RECV_BUFFER: usize = 65_536;

/// The core's clock: a duration since the driver started, read from tokio's clock (so
/// tests can pause time).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin: tokio::time::Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            origin: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Instant {
        Instant::from_duration(tokio::time::Instant::now().saturating_duration_since(self.origin))
    }

    /// The tokio instant of a core deadline; "never" becomes an hour from now.
    pub fn deadline(&self, at: Instant) -> tokio::time::Instant {
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        if at == Instant::MAX {
            return far;
        }
        self.origin
            .checked_add(at.as_duration())
            .map_or(far, |t| t.min(far))
    }
}

/// Who waits for what the core reports later.
#[derive(Debug, Default)]
struct Waiters {
    joins: HashMap<u64, oneshot::Sender<Result<usize, Error>>>,
    leaves: Vec<oneshot::Sender<Result<(), Error>>>,
    queries: HashMap<QueryId, mpsc::UnboundedSender<QueryEvent>>,
    keys: HashMap<QueryId, oneshot::Sender<Result<KeyResponse, Error>>>,
}

pub(crate) struct Task {
    pub serf: Serf,
    pub clock: Clock,
    /// Shared with the QUIC endpoint, which holds it weakly (`quic.rs`).
    pub udp: Arc<GossipSocket>,
    /// None when the stream transport needs no listener (QUIC).
    pub tcp: Option<TcpListener>,
    pub inbound: Inbound,
    /// Inbound TLS and QUIC connections whose handshake succeeded.
    pub accepted: mpsc::Receiver<Accepted>,
    pub commands: mpsc::Receiver<Command>,
    pub events: mpsc::Sender<Event>,
    pub view: watch::Sender<Arc<Members>>,
    pub metrics: Arc<DriverMetrics>,
    pub stream_shared: StreamShared,
    pub stream_events: mpsc::Receiver<(StreamId, StreamMsg)>,
    pub snapshot: Option<crate::snapshot::Writer>,
    pub logs: tokio::sync::broadcast::Sender<serf_proto::log::LogRecord>,
}

/// Per-run state of the task.
struct Run {
    conns: HashMap<StreamId, mpsc::Sender<Write>>,
    tasks: JoinSet<()>,
    waiters: Waiters,
    /// Streams whose writes could not be queued: reported to the core as failed.
    failed: Vec<StreamId>,
    buf: Vec<u8>,
    republish: Republish,
    /// A command ran since the last drain: publish its effect at once.
    commanded: bool,
    /// Whether authenticated connections may still arrive (TLS, QUIC).
    accepting: bool,
    /// The rest after the latest failed accept (zero after a success).
    accept_pause: Duration,
    /// Until when the TCP listener rests after a failed accept.
    accept_resume: Option<tokio::time::Instant>,
}

impl Task {
    pub async fn run(mut self) {
        let mut run = Run {
            conns: HashMap::new(),
            tasks: JoinSet::new(),
            waiters: Waiters::default(),
            failed: Vec::new(),
            buf: Vec::with_capacity(RECV_BUFFER),
            republish: Republish::new(),
            commanded: false,
            accepting: true,
            accept_pause: Duration::ZERO,
            accept_resume: None,
        };
        let mut recv = vec![0u8; RECV_BUFFER];
        self.drain(&mut run);
        loop {
            let mut deadline = self.clock.deadline(self.serf.next_deadline());
            if let Some(due) = run.republish.due() {
                deadline = deadline.min(due);
            }
            if let Some(resume) = run.accept_resume {
                if resume <= tokio::time::Instant::now() {
                    run.accept_resume = None;
                } else {
                    deadline = deadline.min(resume);
                }
            }
            let stop = tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    // Every handle is gone: nobody can use the node any more.
                    None => true,
                    Some(cmd) => self.command(&mut run, cmd),
                },
                r = self.udp.recv_from(&mut recv) => {
                    if let Ok((n, from)) = r {
                        self.datagram(&recv[..n], from);
                        // More that are already queued, up to a batch.
                        for _ in 1..BATCH {
                            match self.udp.try_recv_from(&mut recv) {
                                Ok((n, from)) => self.datagram(&recv[..n], from),
                                Err(_) => break,
                            }
                        }
                    }
                    false
                }
                msg = self.stream_events.recv() => {
                    if let Some((id, msg)) = msg {
                        self.stream_msg(&mut run, id, msg);
                        for _ in 1..BATCH {
                            match self.stream_events.try_recv() {
                                Ok((id, msg)) => self.stream_msg(&mut run, id, msg),
                                Err(_) => break,
                            }
                        }
                    }
                    false
                }
                accepted = accept_tcp(&self.tcp), if run.accept_resume.is_none() => {
                    match accepted {
                        Ok((stream, from)) => {
                            run.accept_pause = Duration::ZERO;
                            if let Some(stream) = self.inbound.tcp_accepted(stream, from) {
                                self.accept(&mut run, stream, from);
                            }
                        }
                        Err(_) => {
                            self.metrics.accept_errors.fetch_add(1, Relaxed);
                            run.accept_pause =
                                (run.accept_pause * 2).clamp(ACCEPT_PAUSE_MIN, ACCEPT_PAUSE_MAX);
                            run.accept_resume =
                                Some(tokio::time::Instant::now() + run.accept_pause);
                        }
                    }
                    false
                }
                accepted = self.accepted.recv(), if run.accepting => {
                    match accepted {
                        Some(a) => {
                            self.accept_secure(&mut run, a);
                            for _ in 1..BATCH {
                                match self.accepted.try_recv() {
                                    Ok(a) => self.accept_secure(&mut run, a),
                                    Err(_) => break,
                                }
                            }
                        }
                        // Plain TCP has no handshakes: a closed channel would be ready
                        // at every turn of the loop.
                        None => run.accepting = false,
                    }
                    false
                }
                _ = tokio::time::sleep_until(deadline) => false,
            };
            self.metrics.task_wakeups.fetch_add(1, Relaxed);
            if stop {
                break;
            }
            // Timers run whenever they are due, whatever else keeps the task busy.
            let now = self.clock.now();
            if self.serf.next_deadline() <= now {
                self.serf.handle_timeout(now);
            }
            self.drain(&mut run);
            // A finished connection's task stays in the set, with its memory, until it
            // is taken out; each wake-up takes out those that finished since the last.
            while run.tasks.try_join_next().is_some() {}
            self.metrics
                .connections
                .store(run.tasks.len() as u64, Relaxed);
        }
        self.serf.shutdown();
        // The final view (state: shut down) is published, so handles read it and
        // `members_changed` waiters are handed it; the core's last records are routed.
        self.drain(&mut run);
        // Every connection ends (aborted) before the shutdown's reply is seen.
        run.tasks.shutdown().await;
        self.metrics.connections.store(0, Relaxed);
        self.inbound.close().await;
        for w in run.waiters.leaves.drain(..) {
            let _ = w.send(Err(Error::Shutdown));
        }
        // The snapshot is flushed and synced before the shutdown's reply is seen, and
        // the sockets close when `self` drops.
        if let Some(thread) = self.snapshot.take().and_then(|w| w.finish()) {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    fn datagram(&mut self, data: &[u8], from: SocketAddr) {
        self.metrics.datagrams_received.fetch_add(1, Relaxed);
        if self.inbound.datagram(data, from, &self.metrics) {
            return;
        }
        let now = self.clock.now();
        self.serf.handle_datagram(now, from, data);
    }

    fn stream_msg(&mut self, run: &mut Run, id: StreamId, msg: StreamMsg) {
        // Reported even after the core closed the stream: that is how it learns whether
        // a send-only stream delivered its message (it ignores the rest).
        let now = self.clock.now();
        match msg {
            StreamMsg::Frame(body, _permit) => {
                self.serf.handle_stream(now, id, StreamEvent::Frame(&body));
            }
            StreamMsg::Closed => self.serf.handle_stream(now, id, StreamEvent::Closed),
            StreamMsg::Failed => {
                run.conns.remove(&id);
                self.serf.handle_stream(now, id, StreamEvent::Failed);
            }
        }
    }

    fn accept(&mut self, run: &mut Run, stream: tokio::net::TcpStream, from: SocketAddr) {
        let now = self.clock.now();
        match self.serf.accept_stream(now, from) {
            Some(id) => {
                self.metrics.streams_accepted.fetch_add(1, Relaxed);
                let (tx, rx) = mpsc::channel(WRITE_QUEUE);
                run.conns.insert(id, tx);
                run.tasks
                    .spawn(stream::run(id, stream, rx, self.stream_shared.clone()));
            }
            None => {
                self.metrics.streams_refused.fetch_add(1, Relaxed);
            }
        }
    }

    /// An authenticated TLS or QUIC connection: the core takes it as a stream, or
    /// refuses it (too many inbound streams) as it would a TCP connection.
    fn accept_secure(&mut self, run: &mut Run, a: Accepted) {
        let now = self.clock.now();
        match self.serf.accept_stream(now, a.from) {
            Some(id) => {
                self.metrics.streams_accepted.fetch_add(1, Relaxed);
                let (tx, rx) = mpsc::channel(WRITE_QUEUE);
                run.conns.insert(id, tx);
                Inbound::run(a.conn, id, rx, self.stream_shared.clone(), &mut run.tasks);
            }
            None => {
                self.metrics.streams_refused.fetch_add(1, Relaxed);
                a.conn.refuse();
            }
        }
    }

    /// Carries out a command; returns whether the task must stop.
    fn command(&mut self, run: &mut Run, cmd: Command) -> bool {
        run.commanded = true;
        let now = self.clock.now();
        match cmd {
            Command::Call(f) => f(&mut self.serf, now),
            Command::Join {
                seeds,
                ignore_old,
                reply,
            } => match self.serf.join(now, &seeds, ignore_old) {
                Ok(id) => {
                    run.waiters.joins.insert(id.0, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::Leave { reply } => match self.serf.leave(now) {
                // Started now, under way, or done: each ends with a LeaveCompleted.
                Ok(()) => run.waiters.leaves.push(reply),
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::Query {
                name,
                payload,
                params,
                ping,
                reply,
            } => match if ping {
                self.serf.reachability(now, params.timeout)
            } else {
                self.serf.query(now, &name, &payload, &params)
            } {
                Ok(id) => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    run.waiters.queries.insert(id, tx);
                    let _ = reply.send(Ok(rx));
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::Key { op, reply } => match op(&mut self.serf, now) {
                Ok(id) => {
                    run.waiters.keys.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::Shutdown => return true,
        }
        false
    }

    /// Drains the core until its deadline, then republishes the member view if it moved.
    fn drain(&mut self, run: &mut Run) {
        loop {
            match self.serf.poll_output(&mut run.buf) {
                Output::Transmit { to } => match self.udp.try_send_to(&run.buf, to) {
                    Ok(_) => {
                        self.metrics.datagrams_sent.fetch_add(1, Relaxed);
                    }
                    // A full socket buffer (or an unreachable address) loses the
                    // datagram, as the network could; the protocol copes.
                    Err(_) => {
                        self.metrics.datagrams_send_dropped.fetch_add(1, Relaxed);
                    }
                },
                Output::OpenStream {
                    id,
                    to,
                    peer,
                    deadline,
                } => {
                    // Connecting past the core's deadline for the stream is pointless: it
                    // aborts the stream then (for a fallback ping, about a second away).
                    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
                    run.conns.insert(id, tx);
                    let open = stream::Open {
                        id,
                        to,
                        peer,
                        deadline: self.clock.deadline(deadline),
                        writes: rx,
                    };
                    run.tasks
                        .spawn(stream::run_outbound(open, self.stream_shared.clone()));
                }
                Output::SendFrame { id } => {
                    let Some(tx) = run.conns.get(&id) else {
                        continue;
                    };
                    match tx.try_send(Write::Frame(stream::framed(&run.buf))) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            self.metrics.stream_write_queue_full.fetch_add(1, Relaxed);
                            run.conns.remove(&id);
                            run.failed.push(id);
                        }
                        // The connection already ended; it reports how itself (a peer
                        // not reading is not the cause, so nothing is counted here).
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            run.conns.remove(&id);
                        }
                    }
                }
                Output::CloseStream { id } => {
                    // Closing never waits: a full queue just drops, which aborts.
                    if let Some(tx) = run.conns.remove(&id) {
                        let _ = tx.try_send(Write::Close);
                    }
                }
                Output::AbortStream { id } => {
                    // Dropping the sender ends the connection too, if the queue is full.
                    if let Some(tx) = run.conns.remove(&id) {
                        let _ = tx.try_send(Write::Abort);
                    }
                }
                Output::Event(e) => self.event(run, e),
                Output::Timeout(_) => {
                    // Snapshot records go to the file on a queue of their own that never
                    // drops (the application's events may be dropped).
                    while let Some(record) = self.serf.poll_persist() {
                        if let Some(w) = &self.snapshot {
                            w.append(record);
                        }
                    }
                    while let Some(record) = self.serf.poll_log() {
                        crate::logs::route(&self.logs, record);
                    }
                    if run.failed.is_empty() {
                        break;
                    }
                    let now = self.clock.now();
                    for id in std::mem::take(&mut run.failed) {
                        self.serf.handle_stream(now, id, StreamEvent::Failed);
                    }
                }
            }
        }
        let force = std::mem::take(&mut run.commanded);
        self.publish(run, force);
    }

    /// Routes an event to whoever waits for it, or to the application.
    fn event(&mut self, run: &mut Run, e: Event) {
        match e {
            Event::JoinCompleted { id, joined, failed } => {
                if let Some(w) = run.waiters.joins.remove(&id.0) {
                    // The joiner reads the members its push-pull brought.
                    self.publish(run, true);
                    let r = if joined > 0 {
                        Ok(joined)
                    } else {
                        Err(Error::JoinFailed(failed))
                    };
                    let _ = w.send(r);
                    return;
                }
                self.to_application(Event::JoinCompleted { id, joined, failed });
            }
            Event::LeaveCompleted => {
                for w in run.waiters.leaves.drain(..) {
                    let _ = w.send(Ok(()));
                }
                self.to_application(Event::LeaveCompleted);
            }
            Event::QueryAck { id, from } => {
                if let Some(q) = run.waiters.queries.get(&id) {
                    let _ = q.send(QueryEvent::Ack { from });
                }
            }
            Event::QueryResponse { id, from, payload } => {
                if let Some(q) = run.waiters.queries.get(&id) {
                    let _ = q.send(QueryEvent::Response { from, payload });
                }
            }
            Event::QueryDone {
                id,
                acks,
                responses,
                complete,
            } => {
                if let Some(q) = run.waiters.queries.remove(&id) {
                    let _ = q.send(QueryEvent::Done {
                        acks,
                        responses,
                        complete,
                    });
                }
            }
            Event::KeyResponse { id, response } => {
                if let Some(w) = run.waiters.keys.remove(&id) {
                    let _ = w.send(Ok(response));
                }
            }
            other => self.to_application(other),
        }
    }

    /// The application's queue never blocks the protocol: when it is full the event is
    /// dropped and counted.
    fn to_application(&self, e: Event) {
        if self.events.try_send(e).is_err() {
            self.metrics.events_dropped.fetch_add(1, Relaxed);
        }
    }

    /// Republishes the member view if it changed, at most once per
    /// [`crate::view::REPUBLISH_INTERVAL`] during a storm of changes (`view.rs`).
    fn publish(&mut self, run: &mut Run, force: bool) {
        let now = (self.serf.members_version(), self.serf.state());
        if !run.republish.check(now, tokio::time::Instant::now(), force) {
            return;
        }
        let view = Members {
            local: self.serf.local_member().clone(),
            members: self.serf.members().cloned().collect(),
            state: now.1,
            version: now.0,
        };
        self.view.send_replace(Arc::new(view));
    }
}

/// The next connection on the TCP listener; never, when there is none (QUIC).
async fn accept_tcp(
    listener: &Option<TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}
