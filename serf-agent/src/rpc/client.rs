//! An RPC client for HashiCorp's IPC protocol: what the `serf` client commands use, and
//! a reference for programs that drive an agent. It talks to HashiCorp's agent as well
//! as ours.
//!
//! ```no_run
//! # async fn f() -> Result<(), serf_agent::rpc::client::ClientError> {
//! use serf_agent::rpc::client::RpcClient;
//! let mut c = RpcClient::connect("127.0.0.1:7373", None).await?;
//! for m in c.members().await? {
//!     println!("{} {}", m.name, m.status);
//! }
//! # Ok(()) }
//! ```

use super::messages::{self, KeyReply, RequestHeader, ResponseHeader, RpcCoordinate, RpcMember};
use super::msgpack::{DecodeError, Limits, Scanner, TypeError, Value, Writer, decode};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed; the message reads like Go's (`dial tcp ADDR: connect: …`).
    #[error("dial tcp {addr}: connect: {reason}")]
    Connect {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The socket failed or closed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The agent sent something that is not msgpack.
    #[error("malformed reply: {0}")]
    Decode(#[from] DecodeError),
    /// The agent sent msgpack of the wrong shape.
    #[error("malformed reply: {0}")]
    Type(#[from] TypeError),
    /// The agent answered with an error string.
    #[error("{0}")]
    Remote(String),
    /// The agent closed the connection.
    #[error("EOF")]
    Closed,
}

/// One record of a stream: the stream's seq and the record body.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The seq of the `stream`, `monitor` or `query` request.
    pub seq: u64,
    /// The body.
    pub body: Value,
}

/// A connection to an agent's RPC, after handshake (and auth).
#[derive(Debug)]
pub struct RpcClient {
    sock: TcpStream,
    buf: Vec<u8>,
    seq: u64,
    limits: Limits,
    /// Records read while waiting for a reply, handed out by [`RpcClient::next_record`].
    queued: VecDeque<Record>,
}

/// Parameters of [`RpcClient::query`], as `serf query` sets them.
#[derive(Debug, Clone, Default)]
pub struct QueryRequest {
    /// `FilterNodes`
    pub filter_nodes: Vec<String>,
    /// `FilterTags`: tag → regexp.
    pub filter_tags: Vec<(String, String)>,
    /// `RequestAck`
    pub request_ack: bool,
    /// `RelayFactor`
    pub relay_factor: u8,
    /// `Timeout` (zero: the agent's default).
    pub timeout: Duration,
    /// `Name`
    pub name: String,
    /// `Payload`; `None` is sent as nil (needed for `_serf_ping`).
    pub payload: Option<Vec<u8>>,
}

/// The answer to `join`.
pub type JoinReply = (i64, Option<String>);

impl RpcClient {
    /// Connects, performs the handshake and, with `auth`, authenticates.
    pub async fn connect(addr: &str, auth: Option<&str>) -> Result<RpcClient, ClientError> {
        let sock = TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connect {
                addr: addr.to_owned(),
                reason: match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                    _ => e.to_string(),
                },
            })?;
        let _ = sock.set_nodelay(true);
        let mut c = RpcClient {
            sock,
            buf: Vec::new(),
            seq: 0,
            // Replies can be large (the members of a big cluster): 64 MiB and a million
            // entries, still bounded against a hostile listener on the port.
            limits: Limits {
                max_value_bytes: 64 << 20,
                max_depth: 32,
                max_collection: 1 << 20,
            },
            queued: VecDeque::new(),
        };
        c.call(
            "handshake",
            Some(&|w: &mut Writer| {
                w.map(1).str("Version").int(1);
            }),
        )
        .await?;
        if let Some(key) = auth.filter(|k| !k.is_empty()) {
            c.call(
                "auth",
                Some(&|w: &mut Writer| {
                    w.map(1).str("AuthKey").str(key);
                }),
            )
            .await?;
        }
        Ok(c)
    }

    /// Sends a request: a header and, if given, a body. Returns its seq.
    pub async fn send(
        &mut self,
        command: &str,
        body: Option<&dyn Fn(&mut Writer)>,
    ) -> Result<u64, ClientError> {
        self.seq += 1;
        let mut w = Writer::new();
        RequestHeader {
            command: command.to_owned(),
            seq: self.seq,
        }
        .encode(&mut w);
        if let Some(body) = body {
            body(&mut w);
        }
        self.sock.write_all(&w.buf).await?;
        Ok(self.seq)
    }

    /// Reads one msgpack value.
    pub async fn read_value(&mut self) -> Result<Value, ClientError> {
        let mut scanner = Scanner::new();
        loop {
            if let Some(end) = scanner.scan(&self.buf, &self.limits)? {
                let (v, _) = decode(&self.buf[..end], &self.limits)?;
                self.buf.drain(..end);
                return Ok(v);
            }
            self.buf.reserve(4096);
            if self.sock.read_buf(&mut self.buf).await? == 0 {
                return Err(ClientError::Closed);
            }
        }
    }

    /// Waits for the reply header to `seq`, queueing stream records that come first
    /// (they always carry a body). With `body`, reads the reply's body too.
    async fn reply(
        &mut self,
        seq: u64,
        body: bool,
    ) -> Result<(ResponseHeader, Value), ClientError> {
        loop {
            let h = ResponseHeader::decode(&self.read_value().await?)?;
            if h.seq == seq {
                // Go's server skips the body on "Authentication required".
                let b = if body && h.error != super::server::errors::AUTH_REQUIRED {
                    self.read_value().await?
                } else {
                    Value::Nil
                };
                return Ok((h, b));
            }
            let body = self.read_value().await?;
            self.queued.push_back(Record { seq: h.seq, body });
        }
    }

    /// A command with no reply body; its error string becomes [`ClientError::Remote`].
    pub async fn call(
        &mut self,
        command: &str,
        body: Option<&dyn Fn(&mut Writer)>,
    ) -> Result<(), ClientError> {
        let seq = self.send(command, body).await?;
        let (h, _) = self.reply(seq, false).await?;
        remote(h.error)
    }

    /// A command whose reply always has a body (even with an error).
    async fn call_body(
        &mut self,
        command: &str,
        body: Option<&dyn Fn(&mut Writer)>,
    ) -> Result<(String, Value), ClientError> {
        let seq = self.send(command, body).await?;
        let (h, b) = self.reply(seq, true).await?;
        Ok((h.error, b))
    }

    /// `members`
    pub async fn members(&mut self) -> Result<Vec<RpcMember>, ClientError> {
        let (err, b) = self.call_body("members", None).await?;
        remote(err)?;
        Ok(messages::decode_members(&b)?)
    }

    /// `members-filtered`: tag, status and name regexps (anchored by the agent).
    pub async fn members_filtered(
        &mut self,
        tags: &[(String, String)],
        status: &str,
        name: &str,
    ) -> Result<Vec<RpcMember>, ClientError> {
        let body = |w: &mut Writer| {
            w.map(3)
                .str("Name")
                .str(name)
                .str("Status")
                .str(status)
                .str("Tags");
            w.string_map(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        };
        let (err, b) = self.call_body("members-filtered", Some(&body)).await?;
        remote(err)?;
        Ok(messages::decode_members(&b)?)
    }

    /// `join`: how many nodes were contacted.
    pub async fn join(&mut self, addrs: &[String], replay: bool) -> Result<i64, ClientError> {
        let body = |w: &mut Writer| {
            w.map(2).str("Existing").array(addrs.len());
            for a in addrs {
                w.str(a);
            }
            w.str("Replay").bool(replay);
        };
        let (err, b) = self.call_body("join", Some(&body)).await?;
        remote(err)?;
        Ok(super::msgpack::Fields(&b).int("Num")?)
    }

    /// `leave`
    pub async fn leave(&mut self) -> Result<(), ClientError> {
        self.call("leave", None).await
    }

    /// `force-leave`
    pub async fn force_leave(&mut self, node: &str, prune: bool) -> Result<(), ClientError> {
        self.call(
            "force-leave",
            Some(&|w: &mut Writer| {
                w.map(2).str("Node").str(node).str("Prune").bool(prune);
            }),
        )
        .await
    }

    /// `event`
    pub async fn user_event(
        &mut self,
        name: &str,
        payload: Option<&[u8]>,
        coalesce: bool,
    ) -> Result<(), ClientError> {
        self.call(
            "event",
            Some(&|w: &mut Writer| {
                w.map(3)
                    .str("Coalesce")
                    .bool(coalesce)
                    .str("Name")
                    .str(name)
                    .str("Payload")
                    .opt_bin(payload);
            }),
        )
        .await
    }

    /// `tags`
    pub async fn update_tags(
        &mut self,
        set: &[(String, String)],
        delete: &[String],
    ) -> Result<(), ClientError> {
        self.call(
            "tags",
            Some(&|w: &mut Writer| {
                w.map(2).str("DeleteTags").array(delete.len());
                for d in delete {
                    w.str(d);
                }
                w.str("Tags")
                    .string_map(set.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            }),
        )
        .await
    }

    /// `install-key`, `use-key` or `remove-key`: the reply and the error, if any.
    pub async fn key_op(
        &mut self,
        command: &str,
        key: &str,
    ) -> Result<(KeyReply, String), ClientError> {
        let (err, b) = self
            .call_body(
                command,
                Some(&|w: &mut Writer| {
                    w.map(1).str("Key").str(key);
                }),
            )
            .await?;
        Ok((KeyReply::decode(&b)?, err))
    }

    /// `list-keys`: the reply and the error, if any.
    pub async fn list_keys(&mut self) -> Result<(KeyReply, String), ClientError> {
        let (err, b) = self.call_body("list-keys", None).await?;
        Ok((KeyReply::decode(&b)?, err))
    }

    /// `stats`: sections of key/value pairs, sorted.
    pub async fn stats(&mut self) -> Result<messages::StatsSections, ClientError> {
        let (err, b) = self.call_body("stats", None).await?;
        remote(err)?;
        Ok(messages::decode_stats(&b)?)
    }

    /// `get-coordinate`: `None` when the agent has none for `node`.
    pub async fn get_coordinate(
        &mut self,
        node: &str,
    ) -> Result<Option<RpcCoordinate>, ClientError> {
        let (err, b) = self
            .call_body(
                "get-coordinate",
                Some(&|w: &mut Writer| {
                    w.map(1).str("Node").str(node);
                }),
            )
            .await?;
        remote(err)?;
        Ok(messages::decode_coordinate(&b)?)
    }

    /// `stream {Type}`: returns the stream's seq; records come from
    /// [`RpcClient::next_record`].
    pub async fn stream(&mut self, filter: &str) -> Result<u64, ClientError> {
        let seq = self
            .send(
                "stream",
                Some(&|w: &mut Writer| {
                    w.map(1).str("Type").str(filter);
                }),
            )
            .await?;
        let (h, _) = self.reply(seq, false).await?;
        remote(h.error).map(|()| seq)
    }

    /// `monitor {LogLevel}`: returns the monitor's seq.
    pub async fn monitor(&mut self, level: &str) -> Result<u64, ClientError> {
        let seq = self
            .send(
                "monitor",
                Some(&|w: &mut Writer| {
                    w.map(1).str("LogLevel").str(level);
                }),
            )
            .await?;
        let (h, _) = self.reply(seq, false).await?;
        remote(h.error).map(|()| seq)
    }

    /// `query`: returns the query's seq; its records (`ack`, `response`, `done`) come
    /// from [`RpcClient::next_record`].
    pub async fn query(&mut self, q: &QueryRequest) -> Result<u64, ClientError> {
        let body = |w: &mut Writer| {
            w.map(7).str("FilterNodes").array(q.filter_nodes.len());
            for n in &q.filter_nodes {
                w.str(n);
            }
            w.str("FilterTags")
                .string_map(q.filter_tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            w.str("Name")
                .str(&q.name)
                .str("Payload")
                .opt_bin(q.payload.as_deref())
                .str("RelayFactor")
                .uint(q.relay_factor.into())
                .str("RequestAck")
                .bool(q.request_ack)
                .str("Timeout")
                .int(q.timeout.as_nanos().min(i64::MAX as u128) as i64);
        };
        let seq = self.send("query", Some(&body)).await?;
        let (h, _) = self.reply(seq, false).await?;
        remote(h.error).map(|()| seq)
    }

    /// `respond {ID, Payload}`
    pub async fn respond(&mut self, id: u64, payload: &[u8]) -> Result<(), ClientError> {
        self.call(
            "respond",
            Some(&|w: &mut Writer| {
                w.map(2).str("ID").uint(id).str("Payload").bin(payload);
            }),
        )
        .await
    }

    /// `stop {Stop}`
    pub async fn stop(&mut self, stream_seq: u64) -> Result<(), ClientError> {
        self.call(
            "stop",
            Some(&|w: &mut Writer| {
                w.map(1).str("Stop").uint(stream_seq);
            }),
        )
        .await
    }

    /// The next stream record (of any stream on this connection).
    pub async fn next_record(&mut self) -> Result<Record, ClientError> {
        if let Some(r) = self.queued.pop_front() {
            return Ok(r);
        }
        let h = ResponseHeader::decode(&self.read_value().await?)?;
        let body = self.read_value().await?;
        Ok(Record { seq: h.seq, body })
    }
}

fn remote(error: String) -> Result<(), ClientError> {
    if error.is_empty() {
        Ok(())
    } else {
        Err(ClientError::Remote(error))
    }
}
