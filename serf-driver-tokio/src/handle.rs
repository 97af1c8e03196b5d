//! The application's side: a cheap, cloneable [`SerfHandle`] whose commands go to the
//! task that owns the core, the [`Events`] stream, and [`QueryStream`]s.

use crate::Error;
use crate::metrics::{DriverMetrics, DriverStats};
use bytes::Bytes;
use serf_proto::serf::{
    Coordinate, Event, KeyResponse, Member, MemberStatus, QueryHandle, QueryId, QueryParams,
    SerfError, SerfMetrics, SerfState, Stats, Tags,
};
use serf_proto::{Instant, Metrics, Name, SecretKey, Serf};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

type Call = Box<dyn FnOnce(&mut Serf, Instant) + Send>;
type KeyOp = Box<dyn FnOnce(&mut Serf, Instant) -> Result<QueryId, SerfError> + Send>;

/// What a handle asks of the task.
pub(crate) enum Command {
    /// Runs on the core; the closure sends its own answer.
    Call(Call),
    Join {
        seeds: Vec<SocketAddr>,
        ignore_old: bool,
        reply: oneshot::Sender<Result<usize, Error>>,
    },
    Leave {
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Query {
        name: String,
        payload: Bytes,
        params: QueryParams,
        /// A reachability ping (`_serf_ping`) instead of a user query: `name` and
        /// `payload` are ignored.
        ping: bool,
        reply: oneshot::Sender<Result<mpsc::UnboundedReceiver<QueryEvent>, Error>>,
    },
    Key {
        op: KeyOp,
        reply: oneshot::Sender<Result<KeyResponse, Error>>,
    },
    Shutdown,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Call(_) => "Call",
            Command::Join { .. } => "Join",
            Command::Leave { .. } => "Leave",
            Command::Query { .. } => "Query",
            Command::Key { .. } => "Key",
            Command::Shutdown => "Shutdown",
        })
    }
}

/// The members as the node last saw them: a copy the task republishes whenever
/// membership or the node's state changed, read without waiting on the task.
#[derive(Debug, Clone)]
pub struct Members {
    /// This node.
    pub local: Member,
    /// Every member known, this node included, in no particular order.
    pub members: Vec<Member>,
    /// This node's state.
    pub state: SerfState,
    /// The core's membership change counter when this copy was made.
    pub version: u64,
}

impl Members {
    /// The member named `name`, if known.
    pub fn get(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name.as_str() == name)
    }

    /// The status of the member named `name`, if known.
    pub fn status_of(&self, name: &str) -> Option<MemberStatus> {
        self.get(name).map(|m| m.status)
    }

    /// How many members have `status`.
    pub fn count(&self, status: MemberStatus) -> usize {
        self.members.iter().filter(|m| m.status == status).count()
    }
}

/// What happens to one of our queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryEvent {
    /// A node acknowledged it (when acks were requested).
    Ack {
        /// The node.
        from: Name,
    },
    /// A node answered.
    Response {
        /// The node.
        from: Name,
        /// Its answer.
        payload: Bytes,
    },
    /// The query ended: every node expected answered, or the timeout passed. Last.
    Done {
        /// Acks received.
        acks: usize,
        /// Responses received.
        responses: usize,
        /// Whether every node expected to answer did, before the timeout.
        complete: bool,
    },
}

/// The acks and responses to one query, then [`QueryEvent::Done`].
#[derive(Debug)]
pub struct QueryStream {
    rx: mpsc::UnboundedReceiver<QueryEvent>,
}

impl QueryStream {
    /// The next ack or response, or the end; `None` after the end.
    pub async fn recv(&mut self) -> Option<QueryEvent> {
        self.rx.recv().await
    }

    /// Collects every response until the query ends: (node, answer) pairs, and whether
    /// every node expected to answer did.
    pub async fn collect(mut self) -> (Vec<(Name, Bytes)>, bool) {
        let mut out = Vec::new();
        while let Some(e) = self.rx.recv().await {
            match e {
                QueryEvent::Response { from, payload } => out.push((from, payload)),
                QueryEvent::Ack { .. } => {}
                QueryEvent::Done { complete, .. } => return (out, complete),
            }
        }
        (out, false)
    }
}

/// Events for the application: member changes, user events, queries to answer, and
/// the rest of [`serf_proto::serf::Event`] (query acks, responses and key answers go to
/// the caller that asked instead).
///
/// **Overflow**: the queue holds `Builder::event_capacity` events (1,024 by default). The
/// protocol never waits for the application: when the queue is full, new events are
/// dropped and counted in [`DriverStats::events_dropped`]. Read promptly, or raise the
/// capacity.
#[derive(Debug)]
pub struct Events {
    pub(crate) rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event; `None` once the node has shut down and every event was read.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// An event if one is queued now.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

/// A handle on a running node. Cheap to clone; every clone drives the same node. When the
/// last handle is dropped the node shuts down (without leaving: call
/// [`SerfHandle::leave`] first for a graceful exit).
#[derive(Debug, Clone)]
pub struct SerfHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) view: watch::Receiver<Arc<Members>>,
    pub(crate) metrics: Arc<DriverMetrics>,
    pub(crate) addr: SocketAddr,
    pub(crate) name: Name,
    pub(crate) done: watch::Receiver<bool>,
    pub(crate) logs: tokio::sync::broadcast::Sender<serf_proto::log::LogRecord>,
}

impl SerfHandle {
    async fn send(&self, cmd: Command) -> Result<(), Error> {
        self.commands.send(cmd).await.map_err(|_| Error::Shutdown)
    }

    /// A stream of the node's log records from now on: what Go's memberlist and serf would
    /// log (suspicions, failures, refutations, member events, …), at or above the level
    /// set by `Config::memberlist.log_level` or [`SerfHandle::set_log_level`]. Every
    /// record also goes to `tracing` (targets `serf::memberlist` and `serf::serf`).
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// let (b, _) = Builder::new("b").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// let mut logs = a.logs();
    /// b.join(&[a.local_addr()], false).await?;
    /// // Go's line, without the timestamp: `[INFO] serf: EventMemberJoin: b 127.0.0.1`.
    /// while let Some(record) = logs.recv().await {
    ///     if record.to_string() == "[INFO] serf: EventMemberJoin: b 127.0.0.1" {
    ///         break;
    ///     }
    /// }
    /// # a.shutdown().await?; b.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn logs(&self) -> crate::LogStream {
        crate::LogStream {
            rx: self.logs.subscribe(),
            missed: 0,
        }
    }

    /// Changes the least important level of log record the node keeps (`None`: none).
    pub async fn set_log_level(&self, level: Option<serf_proto::log::Level>) -> Result<(), Error> {
        self.call(move |s, _| s.set_log_level(level)).await
    }

    /// Runs `f` on the core and returns its result.
    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Serf, Instant) -> R + Send + 'static,
    ) -> Result<R, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Call(Box::new(move |s, now| {
            let _ = tx.send(f(s, now));
        })))
        .await?;
        rx.await.map_err(|_| Error::Shutdown)
    }

    /// This node's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The address other nodes reach this one at (UDP and TCP share the port).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The members as last published; never waits on the node's task.
    pub fn members(&self) -> Arc<Members> {
        self.view.borrow().clone()
    }

    /// This node as a member.
    pub fn local_member(&self) -> Member {
        self.view.borrow().local.clone()
    }

    /// Waits until the member view changes (after the copy last read by this handle).
    pub async fn members_changed(&mut self) -> Result<Arc<Members>, Error> {
        self.view.changed().await.map_err(|_| Error::Shutdown)?;
        Ok(self.view.borrow_and_update().clone())
    }

    /// Joins the cluster through `seeds` (a push-pull with each); returns how many were
    /// reached. With `ignore_old`, user events from before the join are not delivered.
    pub async fn join(&self, seeds: &[SocketAddr], ignore_old: bool) -> Result<usize, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Join {
            seeds: seeds.to_vec(),
            ignore_old,
            reply,
        })
        .await?;
        rx.await.map_err(|_| Error::Shutdown)?
    }

    /// Leaves gracefully and waits until the leave went out: other members then see this
    /// node as left, not failed. The node keeps running until [`SerfHandle::shutdown`].
    /// Calling it again while leaving waits for the same leave.
    pub async fn leave(&self) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Leave { reply }).await?;
        rx.await.map_err(|_| Error::Shutdown)?
    }

    /// Stops the node now (not gracefully: [`SerfHandle::leave`] first) and waits until
    /// its sockets are closed, so the port can be bound again at once.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let _ = self.commands.send(Command::Shutdown).await;
        let mut done = self.done.clone();
        while !*done.borrow_and_update() {
            if done.changed().await.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Fires a user event to the whole cluster.
    pub async fn user_event(
        &self,
        name: &str,
        payload: impl Into<Bytes>,
        coalesce: bool,
    ) -> Result<(), Error> {
        let (name, payload) = (name.to_string(), payload.into());
        self.call(move |s, now| s.user_event(now, &name, &payload, coalesce))
            .await?
            .map_err(Error::from)
    }

    /// Sends a query; the returned stream yields acks and responses, then the end.
    pub async fn query(
        &self,
        name: &str,
        payload: impl Into<Bytes>,
        params: QueryParams,
    ) -> Result<QueryStream, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Query {
            name: name.to_string(),
            payload: payload.into(),
            params,
            ping: false,
            reply,
        })
        .await?;
        let rx = rx.await.map_err(|_| Error::Shutdown)??;
        Ok(QueryStream { rx })
    }

    /// Asks every member to ack a ping query (`serf reachability`, the agent RPC's
    /// `_serf_ping`); the stream yields acks, then the end, which comes as soon as every
    /// alive member acked. `None` uses the default query timeout.
    pub async fn reachability(&self, timeout: Option<Duration>) -> Result<QueryStream, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Query {
            name: String::new(),
            payload: Bytes::new(),
            params: QueryParams {
                request_ack: true,
                timeout,
                ..QueryParams::default()
            },
            ping: true,
            reply,
        })
        .await?;
        let rx = rx.await.map_err(|_| Error::Shutdown)??;
        Ok(QueryStream { rx })
    }

    /// Answers a query received as [`Event::Query`], once, before its deadline.
    pub async fn respond(
        &self,
        query: QueryHandle,
        payload: impl Into<Bytes>,
    ) -> Result<(), Error> {
        let payload = payload.into();
        self.call(move |s, now| s.respond(now, query, &payload))
            .await?
            .map_err(Error::from)
    }

    /// Replaces this node's tags; other members see a member update.
    pub async fn set_tags(&self, tags: Tags) -> Result<(), Error> {
        self.call(move |s, now| s.set_tags(now, tags))
            .await?
            .map_err(Error::from)
    }

    /// Forces a failed member out (`serf force-leave`); with `prune`, erases it at once.
    pub async fn force_leave(&self, name: &str, prune: bool) -> Result<(), Error> {
        let name = name.to_string();
        self.call(move |s, now| s.force_leave(now, &name, prune))
            .await?
            .map_err(Error::from)
    }

    async fn key_op(
        &self,
        op: impl FnOnce(&mut Serf, Instant) -> Result<QueryId, SerfError> + Send + 'static,
    ) -> Result<KeyResponse, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Key {
            op: Box::new(op),
            reply,
        })
        .await?;
        rx.await.map_err(|_| Error::Shutdown)?
    }

    /// Installs `key` on every node; the answer says how many did and any errors.
    pub async fn install_key(&self, key: SecretKey) -> Result<KeyResponse, Error> {
        self.key_op(move |s, now| s.install_key(now, &key)).await
    }

    /// Makes `key` the primary (encrypting) key on every node.
    pub async fn use_key(&self, key: SecretKey) -> Result<KeyResponse, Error> {
        self.key_op(move |s, now| s.use_key(now, &key)).await
    }

    /// Removes `key` from every node.
    pub async fn remove_key(&self, key: SecretKey) -> Result<KeyResponse, Error> {
        self.key_op(move |s, now| s.remove_key(now, &key)).await
    }

    /// Lists the keys every node holds.
    pub async fn list_keys(&self) -> Result<KeyResponse, Error> {
        self.key_op(|s, now| s.list_keys(now)).await
    }

    /// This node's network coordinate, if coordinates are on.
    pub async fn coordinate(&self) -> Result<Option<Coordinate>, Error> {
        self.call(|s, _| s.coordinate().cloned()).await
    }

    /// The last network coordinate heard from the member `name` (this node's own when
    /// `name` is ours), for the agent RPC's `get-coordinate`.
    pub async fn cached_coordinate(&self, name: &str) -> Result<Option<Coordinate>, Error> {
        let name = name.to_string();
        self.call(move |s, _| {
            if s.local_name().as_str() == name {
                s.coordinate().cloned()
            } else {
                s.cached_coordinate(&name).cloned()
            }
        })
        .await
    }

    /// The estimated round-trip time between two members, from their coordinates.
    pub async fn rtt(&self, a: &str, b: &str) -> Result<Option<Duration>, Error> {
        let (a, b) = (a.to_string(), b.to_string());
        self.call(move |s, _| s.rtt(&a, &b)).await
    }

    /// Go's `Stats()`: member counts, clocks, queue depths.
    pub async fn stats(&self) -> Result<Stats, Error> {
        self.call(|s, _| s.stats()).await
    }

    /// Every counter: the memberlist layer's, the Serf layer's, and the driver's.
    pub async fn metrics(&self) -> Result<(Metrics, SerfMetrics, DriverStats), Error> {
        let driver = self.metrics.clone();
        self.call(move |s, _| {
            (
                s.metrics().clone(),
                s.serf_metrics().clone(),
                driver.snapshot(),
            )
        })
        .await
    }

    /// The driver's own counters, read without waiting on the task.
    pub fn driver_stats(&self) -> DriverStats {
        self.metrics.snapshot()
    }
}
