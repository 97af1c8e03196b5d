//! The driver half that lives in wasm: one [`Serf`] core, drained after every input into
//! the output buffer ([`crate::ops`]) and the event queue, with the host's time in
//! milliseconds and its addresses as strings.
//!
//! Plain Rust with no JavaScript types, so it runs and is tested on any target; the
//! `wasm-bindgen` layer ([`crate::js`]) only converts arguments.

use crate::event::{JsEvent, JsMember, JsStats, instant_ms};
use crate::ops::{OP_ABORT, OP_CLOSE, OP_FRAME, OP_OPEN, OP_TRANSMIT, put_addr, put_id};
use crate::options::{MAX_SAFE_INTEGER, NodeOptions, OptionsError, duration_ms, parse_addr};
use serde::Serialize;
use serf_proto::framing::{FrameDecoder, HEADER_LEN, encode_header};
use serf_proto::serf::{QueryHandle, QueryParams, SerfError, Tags};
use serf_proto::{Instant, Output, Serf, StreamEvent, StreamId};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

const DEFAULT_EVENT_CAPACITY: usize = 4096;
const DEFAULT_OUTPUT_CAPACITY: usize = 16 << 20;
/// The most bytes an operation adds in front of its datagram or frame.
const OP_HEADER_MAX: usize = 1 + 19 + 4 + HEADER_LEN;

/// What the driver itself counted (the core counts the rest: [`Serf::metrics`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriverCounters {
    /// Datagrams fed in.
    pub datagrams_received: u64,
    /// Datagrams handed to the host to send.
    pub datagrams_sent: u64,
    /// Datagrams dropped because the host had not taken the output buffer and it was
    /// full.
    pub datagrams_dropped: u64,
    /// Inputs with an address that is not `ip` + port: dropped.
    pub bad_addresses: u64,
    /// Inputs whose time was NaN, infinite, negative or absurdly late: the last good
    /// time was used instead.
    pub bad_times: u64,
    /// Inputs naming a stream id that is not an integer, or one this driver does not
    /// know (already ended): dropped.
    pub unknown_streams: u64,
    /// Streams whose peer announced a frame above the limit: failed and aborted.
    pub frames_too_long: u64,
    /// Streams failed because the output buffer was full when a frame was due.
    pub streams_failed_output_full: u64,
    /// Streams accepted from peers.
    pub streams_accepted: u64,
    /// Streams from peers the core refused (too many open).
    pub streams_refused: u64,
    /// Events dropped because the host had not taken them and the queue was full.
    pub events_dropped: u64,
}

/// A node driven by a host that owns sockets and time. Every input takes `now`: the
/// host's monotonic clock in milliseconds (in Node.js, `performance.now()`), from any
/// origin as long as it never changes.
///
/// ```
/// use serf_driver_wasm::{Node, NodeOptions};
/// use serf_driver_wasm::ops::{Op, OpReader};
///
/// let opts = NodeOptions {
///     name: "a".into(),
///     address: "127.0.0.1:7946".into(),
///     seed: Some(serf_driver_wasm::Seed::Number(7)),
///     ..NodeOptions::default()
/// };
/// let mut node = Node::new(&opts, 0.0).unwrap();
/// node.join(0.0, &["127.0.0.1:7947"], false).unwrap();
/// // A join is a push-pull over a stream: the host is asked to open one and write a frame.
/// let out = node.take_output();
/// let ops: Vec<Op<'_>> = OpReader::new(&out).collect();
/// assert!(matches!(ops[0], Op::Open { .. }));
/// assert!(matches!(ops[1], Op::Frame { .. }));
/// assert!(node.next_deadline() > 0.0);
/// ```
#[derive(Debug)]
pub struct Node {
    serf: Serf,
    /// Operations waiting for the host.
    out: Vec<u8>,
    out_capacity: usize,
    /// The buffer lent to the core's drain.
    scratch: Vec<u8>,
    events: VecDeque<JsEvent>,
    event_capacity: usize,
    /// A decoder per stream the host may still report bytes for.
    decoders: HashMap<u64, FrameDecoder>,
    /// Streams to report failed once the drain is over.
    failed: Vec<StreamId>,
    deadline: Instant,
    last_now: Instant,
    counters: DriverCounters,
}

/// A refused command: the message says why and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError(pub String);

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CommandError {}

impl From<SerfError> for CommandError {
    fn from(e: SerfError) -> CommandError {
        CommandError(e.to_string())
    }
}

impl From<OptionsError> for CommandError {
    fn from(e: OptionsError) -> CommandError {
        CommandError(e.0)
    }
}

/// How a query is sent, from JavaScript (`{filterNodes, filterTags, requestAck,
/// relayFactor, timeoutMs}`, every field optional).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JsQueryParams {
    /// Only these nodes answer.
    #[serde(default)]
    pub filter_nodes: Vec<String>,
    /// Only nodes whose tag matches the regular expression answer (`{tag: regex}`).
    #[serde(default)]
    pub filter_tags: std::collections::BTreeMap<String, String>,
    /// Ask every node that processes it to ack at once.
    #[serde(default)]
    pub request_ack: bool,
    /// Also relay each response through this many members (at most 5 are used).
    #[serde(default)]
    pub relay_factor: u8,
    /// How long to wait, in ms; default from the cluster size.
    #[serde(default)]
    pub timeout_ms: Option<f64>,
}

impl Node {
    /// A node from the host's options, at host time `now` (ms).
    pub fn new(opts: &NodeOptions, now: f64) -> Result<Node, OptionsError> {
        let config = opts.config()?;
        let addr = opts.socket_addr()?;
        let seed = opts.seed_u64()?;
        let now = instant(now).ok_or_else(|| {
            OptionsError(format!(
                "now is {now}; give the host's monotonic time in ms (performance.now())"
            ))
        })?;
        let serf = Serf::new(config, &opts.name, addr, seed, now)
            .map_err(|e| OptionsError(format!("cannot start the node: {e}")))?;
        let mut node = Node {
            serf,
            out: Vec::new(),
            out_capacity: opts.output_capacity.unwrap_or(DEFAULT_OUTPUT_CAPACITY),
            scratch: Vec::new(),
            events: VecDeque::new(),
            event_capacity: opts.event_capacity.unwrap_or(DEFAULT_EVENT_CAPACITY).max(1),
            decoders: HashMap::new(),
            failed: Vec::new(),
            deadline: Instant::ZERO,
            last_now: now,
            counters: DriverCounters::default(),
        };
        node.drain();
        Ok(node)
    }

    /// The core, for reading (members, metrics, keys).
    pub fn serf(&self) -> &Serf {
        &self.serf
    }

    /// What the driver counted.
    pub fn counters(&self) -> &DriverCounters {
        &self.counters
    }

    /// Host time to the core's, never going back: a host clock that steps back, or a
    /// time that is no time (NaN, infinite, negative), is held where it was and counted.
    fn now(&mut self, ms: f64) -> Instant {
        match instant(ms) {
            Some(t) => self.last_now = self.last_now.max(t),
            None => self.counters.bad_times += 1,
        }
        self.last_now
    }

    // ---- inputs -------------------------------------------------------------------------

    /// A datagram arrived from `ip`:`port`.
    pub fn handle_datagram(&mut self, now: f64, ip: &str, port: u16, data: &[u8]) {
        let Ok(ip) = ip.parse::<IpAddr>() else {
            self.counters.bad_addresses += 1;
            return;
        };
        self.counters.datagrams_received += 1;
        let now = self.now(now);
        self.serf
            .handle_datagram(now, SocketAddr::new(ip, port), data);
        self.drain();
    }

    /// A peer connected from `ip`:`port`. Returns the stream's id, or `None`: refused
    /// (close the connection).
    pub fn accept_stream(&mut self, now: f64, ip: &str, port: u16) -> Option<f64> {
        let Ok(ip) = ip.parse::<IpAddr>() else {
            self.counters.bad_addresses += 1;
            return None;
        };
        let now = self.now(now);
        let Some(id) = self.serf.accept_stream(now, SocketAddr::new(ip, port)) else {
            self.counters.streams_refused += 1;
            return None;
        };
        self.counters.streams_accepted += 1;
        self.decoders
            .insert(id.0, FrameDecoder::new(self.serf.max_frame_len()));
        self.drain();
        Some(id.0 as f64)
    }

    /// Bytes read from stream `id`, in any pieces: the core's framing
    /// ([`serf_proto::framing`]) cuts them into frames. A length above the limit fails
    /// the stream and asks the host to abort it.
    pub fn stream_data(&mut self, now: f64, id: f64, data: &[u8]) {
        let Some(id) = self.known_stream(id) else {
            return;
        };
        let now = self.now(now);
        let Some(decoder) = self.decoders.get_mut(&id.0) else {
            return;
        };
        decoder.push(data);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => self.serf.handle_stream(now, id, StreamEvent::Frame(frame)),
                Ok(None) => break,
                Err(_) => {
                    // Nothing after a bad length can be trusted: fail it and tear it down.
                    self.counters.frames_too_long += 1;
                    self.decoders.remove(&id.0);
                    self.serf.handle_stream(now, id, StreamEvent::Failed);
                    self.out.push(OP_ABORT);
                    put_id(&mut self.out, id.0);
                    break;
                }
            }
        }
        self.drain();
    }

    /// One whole frame arrived on stream `id`, for hosts whose transport keeps message
    /// boundaries (a WebSocket, a WebRTC data channel) instead of [`Node::stream_data`].
    pub fn stream_frame(&mut self, now: f64, id: f64, frame: &[u8]) {
        let Some(id) = self.known_stream(id) else {
            return;
        };
        let now = self.now(now);
        self.serf.handle_stream(now, id, StreamEvent::Frame(frame));
        self.drain();
    }

    /// The peer ended stream `id` in an orderly way.
    pub fn stream_closed(&mut self, now: f64, id: f64) {
        self.stream_ended(now, id, StreamEvent::Closed);
    }

    /// Stream `id` broke: connect failure or timeout, reset, I/O error.
    pub fn stream_failed(&mut self, now: f64, id: f64) {
        self.stream_ended(now, id, StreamEvent::Failed);
    }

    fn stream_ended(&mut self, now: f64, id: f64, event: StreamEvent<'_>) {
        let Some(id) = self.known_stream(id) else {
            return;
        };
        self.decoders.remove(&id.0);
        let now = self.now(now);
        self.serf.handle_stream(now, id, event);
        self.drain();
    }

    /// The id as the core's, if it names a stream the host may still report on.
    fn known_stream(&mut self, id: f64) -> Option<StreamId> {
        let known = id.fract() == 0.0
            && (0.0..=MAX_SAFE_INTEGER).contains(&id)
            && self.decoders.contains_key(&(id as u64));
        if !known {
            self.counters.unknown_streams += 1;
            return None;
        }
        Some(StreamId(id as u64))
    }

    /// Time passed: call at [`Node::next_deadline`] (early or late calls are harmless).
    pub fn handle_timeout(&mut self, now: f64) {
        let now = self.now(now);
        self.serf.handle_timeout(now);
        self.drain();
    }

    // ---- outputs ------------------------------------------------------------------------

    /// The operations waiting for the host, in order ([`crate::ops`]); empties the
    /// buffer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// The operations waiting for the host, without taking them; clear with
    /// [`Node::clear_output`] once carried out (saves an allocation per drain).
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Forgets the operations returned by [`Node::output`].
    pub fn clear_output(&mut self) {
        self.out.clear();
    }

    /// The next event for the application, oldest first.
    pub fn take_event(&mut self) -> Option<JsEvent> {
        self.events.pop_front()
    }

    /// When to call [`Node::handle_timeout`], in host ms (`f64::INFINITY`: no timer).
    pub fn next_deadline(&self) -> f64 {
        instant_ms(self.deadline)
    }

    /// Drains the core until its deadline (the contract: after every input).
    fn drain(&mut self) {
        loop {
            match self.serf.poll_output(&mut self.scratch) {
                Output::Transmit { to } => {
                    if self.out.len() + OP_HEADER_MAX + self.scratch.len() > self.out_capacity {
                        // The host is not keeping up: lose the datagram, as a full socket
                        // buffer would; the protocol copes.
                        self.counters.datagrams_dropped += 1;
                        continue;
                    }
                    self.counters.datagrams_sent += 1;
                    self.out.push(OP_TRANSMIT);
                    put_addr(&mut self.out, to);
                    self.out
                        .extend_from_slice(&(self.scratch.len() as u32).to_le_bytes());
                    self.out.extend_from_slice(&self.scratch);
                }
                Output::OpenStream {
                    id,
                    to,
                    peer,
                    deadline,
                } => {
                    self.decoders
                        .insert(id.0, FrameDecoder::new(self.serf.max_frame_len()));
                    self.out.push(OP_OPEN);
                    put_id(&mut self.out, id.0);
                    put_addr(&mut self.out, to);
                    self.out
                        .extend_from_slice(&instant_ms(deadline).to_le_bytes());
                    // Names are at most 255 bytes (serf_proto::Name).
                    let peer = peer.as_ref().map_or(&b""[..], |p| p.as_str().as_bytes());
                    let peer = &peer[..peer.len().min(255)];
                    self.out.push(peer.len() as u8);
                    self.out.extend_from_slice(peer);
                }
                Output::SendFrame { id } => {
                    if !self.decoders.contains_key(&id.0) {
                        // Ended already (reported failed): nothing to write to.
                        continue;
                    }
                    if self.out.len() + OP_HEADER_MAX + self.scratch.len() > self.out_capacity {
                        // A frame must not be lost silently: fail the stream instead.
                        self.counters.streams_failed_output_full += 1;
                        self.decoders.remove(&id.0);
                        self.out.push(OP_ABORT);
                        put_id(&mut self.out, id.0);
                        self.failed.push(id);
                        continue;
                    }
                    self.out.push(OP_FRAME);
                    put_id(&mut self.out, id.0);
                    let len = HEADER_LEN + self.scratch.len();
                    self.out.extend_from_slice(&(len as u32).to_le_bytes());
                    self.out
                        .extend_from_slice(&encode_header(self.scratch.len()));
                    self.out.extend_from_slice(&self.scratch);
                }
                Output::CloseStream { id } => {
                    // The decoder stays: the peer's close (or failure) is still reported.
                    self.out.push(OP_CLOSE);
                    put_id(&mut self.out, id.0);
                }
                Output::AbortStream { id } => {
                    self.decoders.remove(&id.0);
                    self.out.push(OP_ABORT);
                    put_id(&mut self.out, id.0);
                }
                Output::Event(e) => {
                    if self.events.len() >= self.event_capacity {
                        // Events never block the protocol: the oldest unread are kept.
                        self.counters.events_dropped += 1;
                    } else {
                        self.events.push_back(e.into());
                    }
                }
                Output::Timeout(at) => {
                    // No snapshot file in a JavaScript host (Config::snapshot stays off),
                    // so the core keeps no records; take any to keep its queue empty.
                    while self.serf.poll_persist().is_some() {}
                    if self.failed.is_empty() {
                        self.deadline = at;
                        return;
                    }
                    let now = self.last_now;
                    for id in std::mem::take(&mut self.failed) {
                        self.serf.handle_stream(now, id, StreamEvent::Failed);
                    }
                }
            }
        }
    }

    // ---- commands -----------------------------------------------------------------------

    /// Joins through `seeds` (`"ip:port"`); returns the id that the `join-completed`
    /// event carries.
    pub fn join(
        &mut self,
        now: f64,
        seeds: &[&str],
        ignore_old: bool,
    ) -> Result<f64, CommandError> {
        let seeds = seeds
            .iter()
            .map(|s| parse_addr(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(CommandError)?;
        if seeds.is_empty() {
            return Err(CommandError(
                "join needs at least one \"ip:port\" address".into(),
            ));
        }
        let now = self.now(now);
        let r = self.serf.join(now, &seeds, ignore_old);
        self.drain();
        Ok(r?.0 as f64)
    }

    /// Leaves gracefully; `leave-completed` follows.
    pub fn leave(&mut self, now: f64) -> Result<(), CommandError> {
        let now = self.now(now);
        let r = self.serf.leave(now);
        self.drain();
        Ok(r?)
    }

    /// Sends a user event to the cluster.
    pub fn user_event(
        &mut self,
        now: f64,
        name: &str,
        payload: &[u8],
        coalesce: bool,
    ) -> Result<(), CommandError> {
        let now = self.now(now);
        let r = self.serf.user_event(now, name, payload, coalesce);
        self.drain();
        Ok(r?)
    }

    /// Sends a query; returns the id its `query-ack`, `query-response` and `query-done`
    /// events carry.
    pub fn query(
        &mut self,
        now: f64,
        name: &str,
        payload: &[u8],
        params: &JsQueryParams,
    ) -> Result<u32, CommandError> {
        let timeout = match params.timeout_ms {
            None => None,
            Some(ms) => Some(duration_ms(ms).ok_or_else(|| {
                CommandError(format!(
                    "timeoutMs is {ms}; give a non-negative number of milliseconds"
                ))
            })?),
        };
        let params = QueryParams {
            filter_nodes: params.filter_nodes.clone(),
            filter_tags: params
                .filter_tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            request_ack: params.request_ack,
            relay_factor: params.relay_factor,
            timeout,
        };
        let now = self.now(now);
        let r = self.serf.query(now, name, payload, &params);
        self.drain();
        Ok(r?.0)
    }

    /// Answers the query whose event carried `handle`.
    pub fn respond(&mut self, now: f64, handle: f64, payload: &[u8]) -> Result<(), CommandError> {
        if !(handle.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&handle)) {
            return Err(CommandError(format!(
                "{handle} is not a query handle (use the handle of a query event)"
            )));
        }
        let now = self.now(now);
        let r = self.serf.respond(now, QueryHandle(handle as u64), payload);
        self.drain();
        Ok(r?)
    }

    /// Replaces this node's tags.
    pub fn set_tags(&mut self, now: f64, tags: Tags) -> Result<(), CommandError> {
        let now = self.now(now);
        let r = self.serf.set_tags(now, tags);
        self.drain();
        Ok(r?)
    }

    /// Forces a failed member out (`prune`: erase it at once).
    pub fn force_leave(&mut self, now: f64, name: &str, prune: bool) -> Result<(), CommandError> {
        let now = self.now(now);
        let r = self.serf.force_leave(now, name, prune);
        self.drain();
        Ok(r?)
    }

    /// A keyring operation across the cluster (`"install"`, `"use"`, `"remove"` with a
    /// base64 key; `"list"` without); a `key-response` event with the returned id follows.
    pub fn key_op(&mut self, now: f64, op: &str, key: Option<&str>) -> Result<u32, CommandError> {
        let key = match key {
            None => None,
            Some(k) => {
                let bytes = crate::options::decode_base64(k)
                    .ok_or_else(|| CommandError("the key is not valid base64".into()))?;
                Some(serf_proto::SecretKey::from_slice(&bytes).map_err(SerfError::from)?)
            }
        };
        let now = self.now(now);
        let r = match (op, &key) {
            ("list", _) => self.serf.list_keys(now),
            ("install", Some(k)) => self.serf.install_key(now, k),
            ("use", Some(k)) => self.serf.use_key(now, k),
            ("remove", Some(k)) => self.serf.remove_key(now, k),
            ("install" | "use" | "remove", None) => {
                return Err(CommandError(format!("keys {op} needs a key")));
            }
            _ => {
                return Err(CommandError(format!(
                    "unknown key operation {op:?}: use install, use, remove or list"
                )));
            }
        };
        self.drain();
        Ok(r?.0)
    }

    /// Stops at once (not graceful: leave first). Every open stream is aborted.
    pub fn shutdown(&mut self) {
        self.serf.shutdown();
        self.drain();
        for id in std::mem::take(&mut self.decoders).into_keys() {
            self.out.push(OP_ABORT);
            put_id(&mut self.out, id);
        }
    }

    // ---- reads --------------------------------------------------------------------------

    /// Every member known, in any status.
    pub fn members(&self) -> Vec<JsMember> {
        self.serf.members().map(JsMember::from).collect()
    }

    /// This node as a member.
    pub fn local_member(&self) -> JsMember {
        JsMember::from(self.serf.local_member())
    }

    /// Go's `Stats()` and the local state.
    pub fn stats(&self) -> JsStats {
        JsStats::of(&self.serf)
    }

    /// Every counter, by name: the memberlist layer's, the Serf layer's and the driver's.
    pub fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        let mut all = std::collections::BTreeMap::new();
        for (name, _, v) in self.serf.metrics().iter() {
            all.insert(name.to_string(), v as f64);
        }
        for (name, _, v) in self.serf.serf_metrics().iter() {
            all.insert(name.to_string(), v as f64);
        }
        all.extend(driver_counter_pairs(&self.counters));
        all
    }

    /// The keys installed here, primary first (base64).
    pub fn keys(&self) -> Vec<String> {
        self.serf
            .keys()
            .unwrap_or_default()
            .iter()
            .map(|k| crate::options::encode_base64(k.as_bytes()))
            .collect()
    }

    /// The largest frame a stream accepts, header excluded.
    pub fn max_frame_len(&self) -> usize {
        self.serf.max_frame_len()
    }
}

/// The driver's counters as `(camelCase name, value)` pairs.
fn driver_counter_pairs(c: &DriverCounters) -> Vec<(String, f64)> {
    let DriverCounters {
        datagrams_received,
        datagrams_sent,
        datagrams_dropped,
        bad_addresses,
        bad_times,
        unknown_streams,
        frames_too_long,
        streams_failed_output_full,
        streams_accepted,
        streams_refused,
        events_dropped,
    } = c;
    [
        ("datagramsReceived", datagrams_received),
        ("datagramsSent", datagrams_sent),
        ("datagramsDropped", datagrams_dropped),
        ("badAddresses", bad_addresses),
        ("badTimes", bad_times),
        ("unknownStreams", unknown_streams),
        ("framesTooLong", frames_too_long),
        ("streamsFailedOutputFull", streams_failed_output_full),
        ("streamsAccepted", streams_accepted),
        ("streamsRefused", streams_refused),
        ("eventsDropped", events_dropped),
    ]
    .into_iter()
    .map(|(k, v)| (format!("driver.{k}"), *v as f64))
    .collect()
}

/// The latest host time taken (about 146 years after the origin): far enough below
/// [`Instant::MAX`] that the core's deadlines (`now` plus an interval) never saturate.
const MAX_HOST_NANOS: u64 = 1 << 62;

/// Host milliseconds to the core's instant; `None` for a time that cannot be one (NaN,
/// infinite, negative, or past [`MAX_HOST_NANOS`]).
pub fn instant(ms: f64) -> Option<Instant> {
    if !(ms.is_finite() && ms >= 0.0 && ms <= MAX_HOST_NANOS as f64 / 1e6) {
        return None;
    }
    // Rounded, so a deadline handed out as ms (`instant_ms`) comes back as the same
    // instant, not a nanosecond early (a timer that fires just before its deadline, for
    // ever).
    Some(Instant::from_nanos((ms * 1e6).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_in_ms_comes_back_as_the_same_instant() {
        for nanos in [0u64, 1, 999_999, 1_234_567_891, 86_400_000_000_123, 1 << 52] {
            let at = Instant::from_nanos(nanos);
            assert_eq!(instant(instant_ms(at)), Some(at), "{nanos}");
        }
        for bad in [f64::NAN, -3.0, f64::INFINITY, f64::NEG_INFINITY, 1e300] {
            assert_eq!(instant(bad), None);
        }
    }
}
