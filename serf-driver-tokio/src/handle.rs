//! The application's side: a cheap, cloneable [`SerfHandle`] whose commands go to the
//! task that owns the core. Its reads and streams are in `members.rs` and `events.rs`.

use crate::Error;
use crate::events::{QueryEvent, QueryStream};
use crate::members::Members;
use crate::metrics::{DriverMetrics, DriverStats};
use bytes::Bytes;
use serf_proto::serf::{
    Coordinate, KeyResponse, Member, QueryHandle, QueryId, QueryParams, SerfError, SerfMetrics,
    Stats, Tags,
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
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// assert_eq!(node.name().as_str(), "a");
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The address other nodes reach this one at (UDP and TCP share the port).
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// let addr = node.local_addr();
    /// assert!(addr.ip().is_loopback());
    /// assert_ne!(addr.port(), 0, "the port the OS picked");
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The members as last published; never waits on the node's task.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// let view = node.members();
    /// assert_eq!(view.members.len(), 1);
    /// assert_eq!(view.local.name.as_str(), "a");
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn members(&self) -> Arc<Members> {
        self.view.borrow().clone()
    }

    /// This node as a member.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// use serf_proto::serf::MemberStatus;
    ///
    /// let me = node.local_member();
    /// assert_eq!((me.name.as_str(), me.status), ("a", MemberStatus::Alive));
    /// assert_eq!(me.addr, node.local_addr());
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_member(&self) -> Member {
        self.view.borrow().local.clone()
    }

    /// Waits until the member view changes (after the copy last read by this handle).
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (a, _a_events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # let (b, _b_events) = Builder::new("b").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// let mut watch = a.clone();
    /// b.join(&[a.local_addr()], false).await?;
    /// // Sleep until a's view holds b, without polling.
    /// let mut view = watch.members();
    /// while view.get("b").is_none() {
    ///     view = watch.members_changed().await?;
    /// }
    /// # a.shutdown().await?;
    /// # b.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn members_changed(&mut self) -> Result<Arc<Members>, Error> {
        self.view.changed().await.map_err(|_| Error::Shutdown)?;
        Ok(self.view.borrow_and_update().clone())
    }

    /// Joins the cluster through `seeds` (a push-pull with each); returns how many were
    /// reached. With `ignore_old`, user events from before the join are not delivered.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (a, _a_events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # let (b, _b_events) = Builder::new("b").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// let reached = b.join(&[a.local_addr()], false).await?;
    /// assert_eq!(reached, 1);
    /// assert!(b.members().get("a").is_some(), "the push-pull brought a's members");
    ///
    /// // A seed nobody listens on fails, saying why.
    /// let (c, _c_events) = Builder::new("c").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// let nobody = c.local_addr();
    /// c.shutdown().await?;
    /// assert!(b.join(&[nobody], false).await.is_err());
    /// # a.shutdown().await?;
    /// # b.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
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
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (a, _a_events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # let (b, mut b_events) = Builder::new("b").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # b.join(&[a.local_addr()], false).await?;
    /// use serf_proto::serf::MemberStatus;
    ///
    /// b.leave().await?;
    /// // a learns that b left (not failed).
    /// let mut watch = a.clone();
    /// while watch.members().status_of("b") != Some(MemberStatus::Left) {
    ///     watch.members_changed().await?;
    /// }
    /// # a.shutdown().await?;
    /// # b.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn leave(&self) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Leave { reply }).await?;
        rx.await.map_err(|_| Error::Shutdown)?
    }

    /// Stops the node now (not gracefully: [`SerfHandle::leave`] first) and waits until
    /// its sockets are closed, so the port can be bound again at once.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// let addr = node.local_addr();
    /// node.shutdown().await?;
    /// // The port is free at once: a new node can bind it.
    /// let (again, _events) = Builder::new("a").bind(addr).config(Config::local()).start().await?;
    /// assert_eq!(again.local_addr(), addr);
    /// # again.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
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
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (a, _a_events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # let (b, mut b_events) = Builder::new("b").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # b.join(&[a.local_addr()], false).await?;
    /// use serf_proto::serf::Event;
    ///
    /// a.user_event("deploy", &b"v2"[..], false).await?;
    /// loop {
    ///     if let Some(Event::User(e)) = b_events.recv().await {
    ///         assert_eq!((e.name.as_str(), &e.payload[..]), ("deploy", &b"v2"[..]));
    ///         break;
    ///     }
    /// }
    /// # a.shutdown().await?;
    /// # b.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
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
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (a, _a_events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # let (b, mut b_events) = Builder::new("b").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # b.join(&[a.local_addr()], false).await?;
    /// # let responder = b.clone();
    /// # tokio::spawn(async move {
    /// #     while let Some(e) = b_events.recv().await {
    /// #         if let serf_proto::serf::Event::Query(q) = e {
    /// #             let _ = responder.respond(q.handle, &b"b is here"[..]).await;
    /// #         }
    /// #     }
    /// # });
    /// use serf_proto::serf::QueryParams;
    ///
    /// // Ask b only (a filter names who must answer, so the query ends when b has).
    /// let params = QueryParams { filter_nodes: vec!["b".into()], ..QueryParams::default() };
    /// let (answers, complete) = a.query("where", &b""[..], params).await?.collect().await;
    /// assert!(complete);
    /// assert_eq!(answers[0].0.as_str(), "b");
    /// assert_eq!(&answers[0].1[..], b"b is here");
    /// # a.shutdown().await?;
    /// # b.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
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

    /// Answers a query received as [`Event::Query`](serf_proto::serf::Event::Query), once, before its deadline.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (a, _a_events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # let (b, mut b_events) = Builder::new("b").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # b.join(&[a.local_addr()], false).await?;
    /// use serf_proto::serf::{Event, QueryParams};
    ///
    /// // b answers the queries it receives with its name.
    /// let responder = b.clone();
    /// tokio::spawn(async move {
    ///     while let Some(e) = b_events.recv().await {
    ///         if let Event::Query(q) = e {
    ///             let _ = responder.respond(q.handle, responder.name().to_string()).await;
    ///         }
    ///     }
    /// });
    /// let params = QueryParams { filter_nodes: vec!["b".into()], ..QueryParams::default() };
    /// let (answers, _) = a.query("who", &b""[..], params).await?.collect().await;
    /// assert_eq!(&answers[0].1[..], b"b");
    /// # a.shutdown().await?;
    /// # b.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
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
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (a, _a_events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # let (b, mut b_events) = Builder::new("b").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # b.join(&[a.local_addr()], false).await?;
    /// use serf_proto::serf::Tags;
    ///
    /// let mut tags = Tags::new();
    /// tags.insert("role".into(), "web".into());
    /// a.set_tags(tags).await?;
    /// // The change reaches b.
    /// let mut watch = b.clone();
    /// while watch.members().get("a").and_then(|m| m.tags.get("role").cloned()).as_deref() != Some("web") {
    ///     watch.members_changed().await?;
    /// }
    /// # a.shutdown().await?;
    /// # b.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_tags(&self, tags: Tags) -> Result<(), Error> {
        self.call(move |s, now| s.set_tags(now, tags))
            .await?
            .map_err(Error::from)
    }

    /// Forces a failed member out (`serf force-leave`); with `prune`, erases it at once.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::{Config, MemberStatus};
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Fast failure detection, for the example.
    /// let mut config = Config::local();
    /// config.memberlist.probe_interval = Duration::from_millis(100);
    /// config.memberlist.probe_timeout = Duration::from_millis(50);
    /// config.memberlist.suspicion_mult = 1;
    /// # let (a, _a_events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(config.clone()).start().await?;
    /// # let (b, _b_events) = Builder::new("b").bind("127.0.0.1:0".parse()?).config(config).start().await?;
    /// # b.join(&[a.local_addr()], false).await?;
    /// // b dies without leaving; a sees it failed, then forces it out and forgets it.
    /// b.shutdown().await?;
    /// let mut watch = a.clone();
    /// while watch.members().status_of("b") != Some(MemberStatus::Failed) {
    ///     watch.members_changed().await?;
    /// }
    /// a.force_leave("b", true).await?;
    /// while watch.members().get("b").is_some() {
    ///     watch.members_changed().await?;
    /// }
    /// # a.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
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
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # use serf_proto::{Keyring, SecretKey};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut config = Config::local();
    /// config.memberlist.keyring = Some(Keyring::new(SecretKey([1; 32])));
    /// let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(config).start().await?;
    /// let r = node.install_key(SecretKey([2; 32])).await?;
    /// assert_eq!((r.num_nodes, r.num_resp, r.num_err), (1, 1, 0));
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn install_key(&self, key: SecretKey) -> Result<KeyResponse, Error> {
        self.key_op(move |s, now| s.install_key(now, &key)).await
    }

    /// Makes `key` the primary (encrypting) key on every node.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # use serf_proto::{Keyring, SecretKey};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut config = Config::local();
    /// # config.memberlist.keyring = Some(Keyring::new(SecretKey([1; 32])));
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(config).start().await?;
    /// // A key must be installed everywhere before it becomes the primary.
    /// node.install_key(SecretKey([2; 32])).await?;
    /// let r = node.use_key(SecretKey([2; 32])).await?;
    /// assert_eq!(r.num_err, 0);
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn use_key(&self, key: SecretKey) -> Result<KeyResponse, Error> {
        self.key_op(move |s, now| s.use_key(now, &key)).await
    }

    /// Removes `key` from every node.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # use serf_proto::{Keyring, SecretKey};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut config = Config::local();
    /// # config.memberlist.keyring = Some(Keyring::new(SecretKey([1; 32])));
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(config).start().await?;
    /// // Rotation: install, use, then remove the old key.
    /// node.install_key(SecretKey([2; 32])).await?;
    /// node.use_key(SecretKey([2; 32])).await?;
    /// let r = node.remove_key(SecretKey([1; 32])).await?;
    /// assert_eq!(r.num_err, 0);
    /// // The primary key cannot be removed: the node says so.
    /// let r = node.remove_key(SecretKey([2; 32])).await?;
    /// assert_eq!(r.num_err, 1);
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn remove_key(&self, key: SecretKey) -> Result<KeyResponse, Error> {
        self.key_op(move |s, now| s.remove_key(now, &key)).await
    }

    /// Lists the keys every node holds.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # use serf_proto::{Keyring, SecretKey};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut config = Config::local();
    /// # config.memberlist.keyring = Some(Keyring::new(SecretKey([1; 32])));
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(config).start().await?;
    /// let r = node.list_keys().await?;
    /// // Each key, and on how many nodes it is installed.
    /// assert_eq!(r.keys.get(&[1; 32]), Some(&1));
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_keys(&self) -> Result<KeyResponse, Error> {
        self.key_op(|s, now| s.list_keys(now)).await
    }

    /// This node's network coordinate, if coordinates are on.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// let coordinate = node.coordinate().await?;
    /// assert!(coordinate.is_some(), "coordinates are on by default");
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
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
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (a, _a_events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # let (b, mut b_events) = Builder::new("b").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// # b.join(&[a.local_addr()], false).await?;
    /// use std::time::Duration;
    ///
    /// // Coordinates settle as probes go back and forth (a probe a second here).
    /// let mut estimate = None;
    /// for _ in 0..100 {
    ///     estimate = a.rtt("a", "b").await?;
    ///     if estimate.is_some() {
    ///         break;
    ///     }
    ///     tokio::time::sleep(Duration::from_millis(50)).await;
    /// }
    /// assert!(estimate.is_some());
    /// // Unknown members have no estimate.
    /// assert_eq!(a.rtt("a", "nobody").await?, None);
    /// # a.shutdown().await?;
    /// # b.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn rtt(&self, a: &str, b: &str) -> Result<Option<Duration>, Error> {
        let (a, b) = (a.to_string(), b.to_string());
        self.call(move |s, _| s.rtt(&a, &b)).await
    }

    /// Go's `Stats()`: member counts, clocks, queue depths.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// let stats = node.stats().await?;
    /// assert_eq!((stats.members, stats.failed, stats.left), (1, 0, 0));
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn stats(&self) -> Result<Stats, Error> {
        self.call(|s, _| s.stats()).await
    }

    /// Every counter: the memberlist layer's, the Serf layer's, and the driver's.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// let (memberlist, serf, driver) = node.metrics().await?;
    /// // Every counter by name, with its help text: what a Prometheus exporter needs.
    /// for (name, help, value) in memberlist.iter().chain(serf.iter()) {
    ///     assert!(!name.is_empty() && !help.is_empty());
    ///     let _ = value;
    /// }
    /// assert_eq!(driver.events_dropped, 0);
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
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
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// let stats = node.driver_stats();
    /// assert_eq!(stats.streams_refused, 0);
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn driver_stats(&self) -> DriverStats {
        self.metrics.snapshot()
    }

    /// Where and why the latest TLS or QUIC handshake failed, either way (a peer's
    /// certificate from another CA, or not naming the node expected; ours refused by
    /// the peer; a timeout); `None` if none has. The first thing to read when a node
    /// with secure streams cannot join.
    ///
    /// ```
    /// # use serf_driver_tokio::Builder;
    /// # use serf_proto::serf::Config;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (node, _events) = Builder::new("a").bind("127.0.0.1:0".parse()?).config(Config::local()).start().await?;
    /// // Plain TCP streams have no handshake to fail.
    /// assert_eq!(node.last_handshake_failure(), None);
    /// # node.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn last_handshake_failure(&self) -> Option<String> {
        self.metrics.last_handshake_failure()
    }
}
