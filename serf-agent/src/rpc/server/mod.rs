//! The RPC server: HashiCorp's IPC protocol over TCP (go-serf-agent.md §1), serving a
//! running node through its [`SerfHandle`].
//!
//! Each connection has a reader (this module's [`Connection`]) and a writer task that
//! owns the socket's write half; replies and stream records reach the writer through
//! one queue, so a header and its body are never split, and an ack queued before a
//! stream registers always precedes the stream's records. Hostile input closes that
//! connection only: every value is bounded by [`Limits`] before it is decoded, and the
//! number of connections is capped.

use super::messages::{self, RequestHeader, ResponseHeader, RpcCoordinate, RpcMember};
use super::msgpack::{DecodeError, Fields, Limits, Scanner, TypeError, Value, Writer, decode};
use super::stream::{EventHub, Subscription};

mod support;

use crate::log::{Logger, MonitorGuard, parse_level};
use serf_driver_tokio::{QueryEvent, SerfHandle};
use serf_proto::serf::{QueryHandle, QueryParams, Tags};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
pub use support::{agent_stats, join_addresses, resolve};
use support::{event_record, key_reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Go's error strings (`client/const.go`, `ipc.go`), which clients match on.
pub mod errors {
    /// A command before `handshake`.
    pub const HANDSHAKE_REQUIRED: &str = "Handshake required";
    /// A `handshake` version other than 1.
    pub const UNSUPPORTED_VERSION: &str = "Unsupported IPC version";
    /// A second `handshake`.
    pub const DUPLICATE_HANDSHAKE: &str = "Handshake already performed";
    /// A command before `auth` on an agent with `rpc_auth`.
    pub const AUTH_REQUIRED: &str = "Authentication required";
    /// A wrong `auth` key.
    pub const INVALID_AUTH: &str = "Invalid authentication token";
    /// A command this protocol does not have.
    pub const UNSUPPORTED_COMMAND: &str = "Unsupported command";
    /// A second `monitor` on one connection.
    pub const MONITOR_EXISTS: &str = "Monitor already exists";
    /// A `stream` filter with an unknown event type.
    pub const INVALID_FILTER: &str = "Invalid event filter";
    /// A `stream` whose seq is already streaming.
    pub const STREAM_EXISTS: &str = "Stream with given sequence exists";
    /// A `respond` to an unknown or expired query ID.
    pub const INVALID_QUERY_ID: &str = "No pending queries matching ID";
}

/// The IPC protocol version this server speaks (Go's `MinIPCVersion` = `MaxIPCVersion`).
pub const IPC_VERSION: i64 = 1;

/// Queries received through a stream and not yet answered, per connection; the oldest
/// are forgotten past this (Go keeps them until their deadline).
const MAX_PENDING_QUERIES: usize = 1024;

/// Bounds on one request value. Requests are small (a user event is at most 9 KiB, tags
/// 512 bytes): 256 KiB leaves room for long join lists while 256 connections can hold at
/// most 64 MiB of unfinished requests.
pub const REQUEST_LIMITS: Limits = Limits {
    max_value_bytes: 256 << 10,
    max_depth: 32,
    max_collection: 1 << 16,
};

/// Replies and records queued for one connection's writer.
const WRITE_QUEUE: usize = 64;

/// What the server needs from the agent around it.
#[derive(Debug)]
pub struct RpcContext {
    /// The node.
    pub handle: SerfHandle,
    /// The agent's log (for `monitor`, and the server's own lines).
    pub logger: Logger,
    /// `rpc_auth`: the token `auth` must present, if set.
    pub auth: Option<String>,
    /// The agent's events, fanned out to `stream`s.
    pub events: EventHub,
    /// `"<event>:<name>" → script` for `stats`' `event_handlers` section.
    pub event_handlers: Arc<Mutex<Vec<(String, String)>>>,
    /// Where `tags` changes are saved (`tags_file`), if anywhere.
    pub tags_file: Option<PathBuf>,
    /// Set to true after an RPC `leave` completes: the agent then shuts down.
    pub shutdown: watch::Sender<bool>,
    /// The most connections served at once; more are closed at once (logged).
    pub max_connections: usize,
    /// Connections open now (a metric).
    pub clients: Arc<AtomicUsize>,
    /// Bounds on every value read.
    pub limits: Limits,
}

/// A running RPC server; dropping it stops accepting (open connections finish on their
/// own when the node shuts down).
#[derive(Debug)]
pub struct RpcServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl RpcServer {
    /// Listens on `addr` (Go: `net.Listen("tcp", rpc_addr)`).
    pub async fn bind(addr: SocketAddr, ctx: Arc<RpcContext>) -> std::io::Result<RpcServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, ctx));
        Ok(RpcServer { addr, task })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, ctx: Arc<RpcContext>) {
    let open = ctx.clients.clone();
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                ctx.logger
                    .err("agent.ipc", &format!("Failed to accept client: {e}"));
                // Out of file descriptors, usually: give the system a moment.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.load(Relaxed) >= ctx.max_connections {
            ctx.logger.warn(
                "agent.ipc",
                &format!(
                    "Refusing client {peer}: {} RPC connections already open",
                    ctx.max_connections
                ),
            );
            drop(sock);
            continue;
        }
        ctx.logger
            .info("agent.ipc", &format!("Accepted client: {peer}"));
        open.fetch_add(1, Relaxed);
        let (ctx, open) = (ctx.clone(), open.clone());
        tokio::spawn(async move {
            serve(sock, peer, ctx).await;
            open.fetch_sub(1, Relaxed);
        });
    }
}

async fn serve(sock: TcpStream, peer: SocketAddr, ctx: Arc<RpcContext>) {
    let _ = sock.set_nodelay(true);
    let (reader, mut writer) = sock.into_split();
    let (out, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    let writer_task = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut conn = Connection {
        ctx: ctx.clone(),
        peer,
        reader,
        buf: Vec::new(),
        scanner: Scanner::new(),
        out,
        version: 0,
        authed: false,
        streams: HashMap::new(),
        monitor: None,
        queries: Arc::new(Mutex::new(PendingQueries::default())),
        tasks: Vec::new(),
    };
    match conn.run().await {
        Ok(()) | Err(ConnError::Eof) => {}
        Err(ConnError::Closed(why)) => ctx
            .logger
            .err("agent.ipc", &format!("Failed to evaluate request: {why}")),
        Err(ConnError::Io(e)) => ctx.logger.err(
            "agent.ipc",
            &format!("failed to read request from {peer}: {e}"),
        ),
        Err(ConnError::Decode(e)) => ctx.logger.err(
            "agent.ipc",
            &format!("failed to decode request header: {e}"),
        ),
    }
    // Streams, the monitor and query forwarders end with the connection; a leave in
    // flight does not (it was spawned detached).
    for (_, (_, task)) in conn.streams.drain() {
        task.abort();
    }
    if let Some((_, _, task)) = conn.monitor.take() {
        task.abort();
    }
    for t in conn.tasks.drain(..) {
        t.abort();
    }
    drop(conn);
    let _ = writer_task.await;
}

#[derive(Debug)]
enum ConnError {
    /// The client closed the connection between messages.
    Eof,
    Io(std::io::Error),
    Decode(DecodeError),
    /// Go's rule: a request that cannot be served closes the connection.
    Closed(String),
}

impl From<TypeError> for ConnError {
    fn from(e: TypeError) -> ConnError {
        ConnError::Closed(format!("decode failed: {e}"))
    }
}

#[derive(Debug, Default)]
struct PendingQueries {
    next_id: u64,
    by_id: BTreeMap<u64, QueryHandle>,
}

impl PendingQueries {
    fn insert(&mut self, q: QueryHandle) -> u64 {
        self.next_id += 1;
        if self.by_id.len() >= MAX_PENDING_QUERIES {
            self.by_id.pop_first();
        }
        self.by_id.insert(self.next_id, q);
        self.next_id
    }
}

struct Connection {
    ctx: Arc<RpcContext>,
    peer: SocketAddr,
    reader: OwnedReadHalf,
    buf: Vec<u8>,
    scanner: Scanner,
    out: mpsc::Sender<Vec<u8>>,
    version: i64,
    authed: bool,
    streams: HashMap<u64, (Subscription, JoinHandle<()>)>,
    monitor: Option<(u64, MonitorGuard, JoinHandle<()>)>,
    queries: Arc<Mutex<PendingQueries>>,
    tasks: Vec<JoinHandle<()>>,
}

fn frame(seq: u64, error: &str, body: Option<&dyn Fn(&mut Writer)>) -> Vec<u8> {
    let mut w = Writer::new();
    ResponseHeader::encode(seq, error, &mut w);
    if let Some(body) = body {
        body(&mut w);
    }
    w.buf
}

impl Connection {
    /// The next whole value from the socket.
    async fn next_value(&mut self) -> Result<Value, ConnError> {
        loop {
            if let Some(end) = self
                .scanner
                .scan(&self.buf, &self.ctx.limits)
                .map_err(ConnError::Decode)?
            {
                let (v, n) =
                    decode(&self.buf[..end], &self.ctx.limits).map_err(ConnError::Decode)?;
                debug_assert_eq!(n, end);
                self.buf.drain(..end);
                self.scanner = Scanner::new();
                return Ok(v);
            }
            self.buf.reserve(4096);
            let n = self
                .reader
                .read_buf(&mut self.buf)
                .await
                .map_err(ConnError::Io)?;
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    ConnError::Eof
                } else {
                    ConnError::Decode(DecodeError::Incomplete)
                });
            }
        }
    }

    async fn send(&self, frame: Vec<u8>) -> Result<(), ConnError> {
        self.out
            .send(frame)
            .await
            .map_err(|_| ConnError::Closed("connection closed".into()))
    }

    async fn reply(&self, seq: u64, error: &str) -> Result<(), ConnError> {
        self.send(frame(seq, error, None)).await
    }

    async fn reply_body(
        &self,
        seq: u64,
        error: &str,
        body: impl Fn(&mut Writer),
    ) -> Result<(), ConnError> {
        self.send(frame(seq, error, Some(&body))).await
    }

    async fn run(&mut self) -> Result<(), ConnError> {
        loop {
            let v = self.next_value().await?;
            let header = RequestHeader::decode(&v)?;
            self.request(header).await?;
        }
    }

    async fn request(&mut self, h: RequestHeader) -> Result<(), ConnError> {
        let seq = h.seq;
        let cmd = h.command.as_str();
        if cmd != "handshake" && self.version == 0 {
            self.reply(seq, errors::HANDSHAKE_REQUIRED).await?;
            return Err(ConnError::Closed(errors::HANDSHAKE_REQUIRED.into()));
        }
        if self.ctx.auth.as_deref().is_some_and(|a| !a.is_empty())
            && !self.authed
            && cmd != "auth"
            && cmd != "handshake"
        {
            // Go does not read this request's body (go-serf-agent.md §1.2, quirk).
            self.ctx
                .logger
                .warn("agent.ipc", "Client sending commands before auth");
            return self.reply(seq, errors::AUTH_REQUIRED).await;
        }
        match cmd {
            "handshake" => self.handshake(seq).await,
            "auth" => self.auth(seq).await,
            "event" => self.event(seq).await,
            "force-leave" => self.force_leave(seq).await,
            "join" => self.join(seq).await,
            "members" => self.members(seq, None).await,
            "members-filtered" => {
                let body = self.next_value().await?;
                self.members(seq, Some(body)).await
            }
            "tags" => self.tags(seq).await,
            "stream" => self.stream(seq).await,
            "monitor" => self.monitor(seq).await,
            "stop" => self.stop(seq).await,
            "leave" => self.leave(seq).await,
            "query" => self.query(seq).await,
            "respond" => self.respond(seq).await,
            "install-key" | "use-key" | "remove-key" => self.key_op(seq, cmd).await,
            "list-keys" => self.list_keys(seq).await,
            "stats" => self.stats(seq).await,
            "get-coordinate" => self.get_coordinate(seq).await,
            _ => {
                self.reply(seq, errors::UNSUPPORTED_COMMAND).await?;
                Err(ConnError::Closed(format!(
                    "{}: {:?}",
                    errors::UNSUPPORTED_COMMAND,
                    h.command
                )))
            }
        }
    }

    async fn body(&mut self) -> Result<Value, ConnError> {
        let v = self.next_value().await?;
        if !v.is_struct() {
            return Err(ConnError::Closed(
                "decode failed: request body is not a map".into(),
            ));
        }
        Ok(v)
    }

    async fn handshake(&mut self, seq: u64) -> Result<(), ConnError> {
        let b = self.body().await?;
        let version = Fields(&b).int("Version")?;
        let error = if self.version != 0 {
            errors::DUPLICATE_HANDSHAKE
        } else if version != IPC_VERSION {
            errors::UNSUPPORTED_VERSION
        } else {
            self.version = version;
            ""
        };
        self.reply(seq, error).await
    }

    async fn auth(&mut self, seq: u64) -> Result<(), ConnError> {
        let b = self.body().await?;
        let key = Fields(&b).string("AuthKey")?;
        // Go compares with the configured token, empty when none is set.
        let error = if key == self.ctx.auth.as_deref().unwrap_or("") {
            self.authed = true;
            ""
        } else {
            errors::INVALID_AUTH
        };
        self.reply(seq, error).await
    }

    async fn event(&mut self, seq: u64) -> Result<(), ConnError> {
        let b = self.body().await?;
        let f = Fields(&b);
        let (name, payload, coalesce) = (
            f.string("Name")?,
            f.bytes("Payload")?.unwrap_or_default(),
            f.bool("Coalesce")?,
        );
        self.ctx.logger.debug(
            "agent",
            &format!(
                "Requesting user event send: {name}. Coalesced: {coalesce}. Payload: {:?}",
                String::from_utf8_lossy(&payload)
            ),
        );
        let err = match self.ctx.handle.user_event(&name, payload, coalesce).await {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        };
        self.reply(seq, &err).await
    }

    async fn force_leave(&mut self, seq: u64) -> Result<(), ConnError> {
        let b = self.body().await?;
        let f = Fields(&b);
        let (node, prune) = (f.string("Node")?, f.bool("Prune")?);
        self.ctx
            .logger
            .info("agent", &format!("Force leaving node: {node}"));
        let err = match self.ctx.handle.force_leave(&node, prune).await {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        };
        self.reply(seq, &err).await
    }

    async fn join(&mut self, seq: u64) -> Result<(), ConnError> {
        let b = self.body().await?;
        let f = Fields(&b);
        let (existing, replay) = (f.strings("Existing")?, f.bool("Replay")?);
        self.ctx
            .logger
            .info("agent", &format!("joining: {existing:?} replay: {replay}"));
        let (num, err) = join_addresses(&self.ctx.handle, &existing, replay).await;
        if !err.is_empty() {
            self.ctx
                .logger
                .warn("agent", &format!("error joining: {err}"));
        }
        self.reply_body(seq, &err, |w| {
            w.map(1).str("Num").int(num as i64);
        })
        .await
    }

    async fn members(&mut self, seq: u64, filter: Option<Value>) -> Result<(), ConnError> {
        let view = self.ctx.handle.members();
        let mut list: Vec<RpcMember> = view.members.iter().map(RpcMember::from_member).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(body) = filter {
            if !body.is_struct() {
                return Err(ConnError::Closed(
                    "decode failed: request body is not a map".into(),
                ));
            }
            let f = Fields(&body);
            let (tags, status, name) = (
                f.string_map("Tags")?,
                f.string("Status")?,
                f.string("Name")?,
            );
            let anchored = |expr: &str| {
                // Go concatenates "^" + expr + "$": `a|b` anchors only its ends.
                regex_lite::Regex::new(&format!("^{expr}$"))
                    .map_err(|e| ConnError::Closed(format!("failed to compile {expr:?}: {e}")))
            };
            let tag_res = tags
                .iter()
                .map(|(k, v)| Ok((k.clone(), anchored(v)?)))
                .collect::<Result<Vec<_>, ConnError>>()?;
            let (status_re, name_re) = (anchored(&status)?, anchored(&name)?);
            list.retain(|m| {
                tag_res.iter().all(|(k, re)| {
                    let v = m
                        .tags
                        .iter()
                        .find(|(tk, _)| tk == k)
                        .map_or("", |(_, v)| v.as_str());
                    re.is_match(v)
                }) && (status.is_empty() || status_re.is_match(&m.status))
                    && (name.is_empty() || name_re.is_match(&m.name))
            });
        }
        self.reply_body(seq, "", |w| messages::encode_members(&list, w))
            .await
    }

    async fn tags(&mut self, seq: u64) -> Result<(), ConnError> {
        let b = self.body().await?;
        let f = Fields(&b);
        let (set, delete) = (f.string_map("Tags")?, f.strings("DeleteTags")?);
        let mut tags: Tags = (*self.ctx.handle.local_member().tags).clone();
        for k in &delete {
            tags.remove(k);
        }
        for (k, v) in set {
            tags.insert(k, v);
        }
        let mut err = String::new();
        if let Some(path) = &self.ctx.tags_file
            && let Err(e) = crate::config::save_tags_file(path, &tags)
        {
            err = format!("Failed to write tags file: {e}");
        }
        if err.is_empty()
            && let Err(e) = self.ctx.handle.set_tags(tags).await
        {
            err = e.to_string();
        }
        self.reply(seq, &err).await
    }

    async fn stream(&mut self, seq: u64) -> Result<(), ConnError> {
        let b = self.body().await?;
        let kind = Fields(&b).string("Type")?;
        let Ok(filters) = crate::handlers::parse_event_filter(&kind) else {
            return self.reply(seq, errors::INVALID_FILTER).await;
        };
        if self.streams.contains_key(&seq) {
            return self.reply(seq, errors::STREAM_EXISTS).await;
        }
        // The ack goes first; only then does the stream register (Go: `defer`).
        self.reply(seq, "").await?;
        let (sub, mut rx) = self.ctx.events.subscribe(filters);
        let out = self.out.clone();
        let queries = self.queries.clone();
        let logger = self.ctx.logger.clone();
        let peer = self.peer;
        let task = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let Some(record) = event_record(&event, &queries) else {
                    continue;
                };
                let frame = frame(
                    seq,
                    "",
                    Some(&|w: &mut Writer| w.buf.extend_from_slice(&record)),
                );
                if out.send(frame).await.is_err() {
                    break;
                }
            }
            logger.debug("agent.ipc", &format!("event stream to {peer} ended"));
        });
        self.streams.insert(seq, (sub, task));
        Ok(())
    }

    async fn monitor(&mut self, seq: u64) -> Result<(), ConnError> {
        let b = self.body().await?;
        let level = Fields(&b).string("LogLevel")?.to_ascii_uppercase();
        let Some(min) = parse_level(&level) else {
            return self
                .reply(seq, &format!("Unknown log level: {level}"))
                .await;
        };
        if self.monitor.is_some() {
            return self.reply(seq, errors::MONITOR_EXISTS).await;
        }
        self.reply(seq, "").await?;
        let (guard, mut rx) = self.ctx.logger.monitor(min);
        let out = self.out.clone();
        let task = tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                let frame = frame(
                    seq,
                    "",
                    Some(&|w: &mut Writer| messages::encode_log(&line, w)),
                );
                if out.send(frame).await.is_err() {
                    break;
                }
            }
        });
        self.monitor = Some((seq, guard, task));
        Ok(())
    }

    async fn stop(&mut self, seq: u64) -> Result<(), ConnError> {
        let b = self.body().await?;
        let target = Fields(&b).uint("Stop")?;
        if self.monitor.as_ref().is_some_and(|(s, _, _)| *s == target)
            && let Some((_, _, task)) = self.monitor.take()
        {
            task.abort();
        }
        if let Some((_, task)) = self.streams.remove(&target) {
            task.abort();
        }
        self.reply(seq, "").await
    }

    async fn leave(&mut self, seq: u64) -> Result<(), ConnError> {
        self.ctx
            .logger
            .info("agent.ipc", "Graceful leave triggered");
        // Detached: a client that half-closes right after sending `leave` must not
        // cancel it (go-serf-agent.md §1.4).
        let ctx = self.ctx.clone();
        let out = self.out.clone();
        tokio::spawn(async move {
            let err = match ctx.handle.leave().await {
                Ok(()) => String::new(),
                Err(e) => e.to_string(),
            };
            let _ = out.send(frame(seq, &err, None)).await;
            // Give the writer a moment to flush the reply before the agent exits.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = ctx.shutdown.send(true);
        });
        Ok(())
    }

    async fn query(&mut self, seq: u64) -> Result<(), ConnError> {
        let b = self.body().await?;
        let f = Fields(&b);
        let filter_nodes = f.strings("FilterNodes")?;
        let filter_tags = f.string_map("FilterTags")?;
        let request_ack = f.bool("RequestAck")?;
        let relay_factor = f.uint("RelayFactor")?.min(255) as u8;
        let timeout_ns = f.int("Timeout")?;
        let name = f.string("Name")?;
        let payload = f.bytes("Payload")?;
        let timeout = (timeout_ns > 0).then(|| Duration::from_nanos(timeout_ns as u64));
        let prefix = serf_proto::serf::INTERNAL_QUERY_PREFIX;
        let started = if name.starts_with(prefix) {
            if name == format!("{prefix}ping") && payload.is_none() {
                self.ctx.handle.reachability(timeout).await
            } else {
                return self
                    .reply(
                        seq,
                        &format!("Queries cannot contain the '{prefix}' prefix"),
                    )
                    .await;
            }
        } else {
            self.ctx.logger.debug(
                "agent",
                &format!(
                    "Requesting query send: {name}. Payload: {:?}",
                    String::from_utf8_lossy(payload.as_deref().unwrap_or_default())
                ),
            );
            let params = QueryParams {
                filter_nodes,
                filter_tags,
                request_ack,
                relay_factor,
                timeout,
            };
            self.ctx
                .handle
                .query(&name, payload.unwrap_or_default(), params)
                .await
        };
        let mut stream = match started {
            Ok(s) => s,
            Err(e) => {
                self.ctx
                    .logger
                    .warn("agent", &format!("failed to start user query: {e}"));
                return self.reply(seq, &e.to_string()).await;
            }
        };
        self.reply(seq, "").await?;
        let out = self.out.clone();
        let task = tokio::spawn(async move {
            while let Some(e) = stream.recv().await {
                let record = |kind: &str, from: &str, payload: Option<&[u8]>| {
                    let mut w = Writer::new();
                    ResponseHeader::encode(seq, "", &mut w);
                    messages::encode_query_record(kind, from, payload, &mut w);
                    w.buf
                };
                let (frame, done) = match &e {
                    QueryEvent::Ack { from } => (record("ack", from.as_str(), None), false),
                    QueryEvent::Response { from, payload } => {
                        (record("response", from.as_str(), Some(payload)), false)
                    }
                    QueryEvent::Done { .. } => (record("done", "", None), true),
                };
                if out.send(frame).await.is_err() || done {
                    break;
                }
            }
        });
        self.tasks.retain(|t| !t.is_finished());
        self.tasks.push(task);
        Ok(())
    }

    async fn respond(&mut self, seq: u64) -> Result<(), ConnError> {
        let b = self.body().await?;
        let f = Fields(&b);
        let (id, payload) = (f.uint("ID")?, f.bytes("Payload")?.unwrap_or_default());
        let handle = self
            .queries
            .lock()
            .map_err(|_| ConnError::Closed("poisoned".into()))?
            .by_id
            .get(&id)
            .copied();
        let err = match handle {
            None => errors::INVALID_QUERY_ID.to_string(),
            Some(h) => match self.ctx.handle.respond(h, payload).await {
                // Kept until evicted, as Go keeps it until the deadline: a second
                // respond gets the node's "already sent" error.
                Ok(()) => String::new(),
                Err(e) => e.to_string(),
            },
        };
        self.reply(seq, &err).await
    }

    async fn key_op(&mut self, seq: u64, cmd: &str) -> Result<(), ConnError> {
        let b = self.body().await?;
        let key = Fields(&b).string("Key")?;
        let verb = match cmd {
            "install-key" => "Installing",
            "use-key" => "Changing primary",
            _ => "Removing",
        };
        self.ctx
            .logger
            .info("agent", &format!("{verb} key (on all members)"));
        use base64::Engine as _;
        let parsed = base64::engine::general_purpose::STANDARD
            .decode(&key)
            .map_err(|e| format!("Failed to decode key: {e}"))
            .and_then(|raw| serf_proto::SecretKey::from_slice(&raw).map_err(|e| e.to_string()));
        let result = match parsed {
            Err(e) => Err(e),
            Ok(k) => {
                let h = &self.ctx.handle;
                match cmd {
                    "install-key" => h.install_key(k).await,
                    "use-key" => h.use_key(k).await,
                    _ => h.remove_key(k).await,
                }
                .map_err(|e| e.to_string())
            }
        };
        let (reply, err) = key_reply(result, false);
        self.reply_body(seq, &err, |w| reply.encode(w)).await
    }

    async fn list_keys(&mut self, seq: u64) -> Result<(), ConnError> {
        self.ctx
            .logger
            .info("agent", "Requesting list of keys (on all members)");
        let result = self.ctx.handle.list_keys().await.map_err(|e| e.to_string());
        let (reply, err) = key_reply(result, true);
        self.reply_body(seq, &err, |w| reply.encode(w)).await
    }

    async fn stats(&mut self, seq: u64) -> Result<(), ConnError> {
        let stats = agent_stats(&self.ctx).await;
        self.reply_body(seq, "", |w| messages::encode_stats(&stats, w))
            .await
    }

    async fn get_coordinate(&mut self, seq: u64) -> Result<(), ConnError> {
        let b = self.body().await?;
        let node = Fields(&b).string("Node")?;
        let coord = self
            .ctx
            .handle
            .cached_coordinate(&node)
            .await
            .ok()
            .flatten()
            .map(|c| RpcCoordinate::from_core(&c));
        self.reply_body(seq, "", |w| messages::encode_coordinate(coord.as_ref(), w))
            .await
    }
}
