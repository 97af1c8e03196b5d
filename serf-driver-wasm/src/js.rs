//! The `wasm-bindgen` surface: [`SerfCore`] (a [`Node`] for JavaScript), the stream
//! framing helpers, and the TypeScript types of the objects that cross.
//!
//! Only argument conversion lives here; the behaviour is [`Node`]'s, tested on the host.

use crate::node::{JsQueryParams, Node};
use crate::options::NodeOptions;
use serde::Serialize;
use serf_proto::framing::{self, FrameDecoder as CoreFrameDecoder};
use serf_proto::serf::Tags;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Options of a node. */
export interface NodeOptions {
  /** Unique name in the cluster. */
  name: string;
  /** Where other nodes reach this one, "ip:port" (the host's UDP and TCP port). */
  address: string;
  /** 8 random bytes (crypto.getRandomValues(new Uint8Array(8))), or an integer below 2^53 for tests. */
  seed: Uint8Array | number[] | number;
  /** Encryption keys, primary first, 32 bytes each in base64 (`serf keygen`). */
  keys?: string[];
  /** Cluster label: nodes with another label are refused. */
  label?: string;
  /** Timing profile. Default "lan". */
  profile?: "lan" | "wan" | "local";
  /** This node's tags. */
  tags?: Record<string, string>;
  /** Events kept for the host before new ones are dropped. Default 4096. */
  eventCapacity?: number;
  /** Output bytes kept for the host before datagrams drop. Default 16 MiB. */
  outputCapacity?: number;
  probeIntervalMs?: number;
  gossipIntervalMs?: number;
  pushPullIntervalMs?: number;
}

/** A member as this node sees it. */
export interface Member {
  name: string;
  /** "ip:port" */
  addr: string;
  tags: Record<string, string>;
  status: "alive" | "leaving" | "left" | "failed" | "none";
  /** memberlist [min, max, cur], then Serf's. */
  protocol: number[];
}

/** How a query is sent. */
export interface QueryParams {
  filterNodes?: string[];
  /** Tag name to a regular expression its value must match. */
  filterTags?: Record<string, string>;
  requestAck?: boolean;
  relayFactor?: number;
  /** Default: from the cluster size. */
  timeoutMs?: number;
}

export interface KeyResponse {
  messages: Record<string, string>;
  numNodes: number;
  numResp: number;
  numErr: number;
  keys: Record<string, number>;
  primaryKeys: Record<string, number>;
}

/** Events for the application; times are host milliseconds. */
export type SerfEvent =
  | { type: "member-join" | "member-leave" | "member-failed" | "member-update" | "member-reap"; members: Member[] }
  | { type: "user"; name: string; payload: Uint8Array; ltime: number; coalesce: boolean }
  | { type: "query"; handle: number; name: string; payload: Uint8Array; source: string; ltime: number; deadline: number }
  | { type: "query-ack"; id: number; from: string }
  | { type: "query-response"; id: number; from: string; payload: Uint8Array }
  | { type: "query-done"; id: number; acks: number; responses: number; complete: boolean }
  | { type: "key-response"; id: number; response: KeyResponse }
  | { type: "keyring-changed"; keys: string[] }
  | { type: "join-completed"; id: number; joined: number; failed: { addr: string; error: string }[] }
  | { type: "leave-completed" }
  | { type: "shutdown"; reason: "name-conflict-lost" };

export interface Stats {
  state: "alive" | "leaving" | "left" | "shutdown";
  members: number;
  alive: number;
  failed: number;
  left: number;
  healthScore: number;
  memberTime: number;
  eventTime: number;
  queryTime: number;
  intentQueue: number;
  queryQueue: number;
  eventQueue: number;
  encrypted: boolean;
  coordinateResets: number;
}
"#;

fn to_js<T: Serialize>(v: &T) -> JsValue {
    // Maps become plain objects and byte strings `Uint8Array`s. Our types hold only
    // strings, finite-or-infinite numbers, booleans, bytes and maps of those, which
    // always convert.
    v.serialize(&serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true))
        .unwrap_or(JsValue::UNDEFINED)
}

fn from_js<T: serde::de::DeserializeOwned>(v: JsValue, what: &str) -> Result<T, JsError> {
    serde_wasm_bindgen::from_value(v).map_err(|e| JsError::new(&format!("{what}: {e}")))
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// A Serf node whose host (JavaScript) owns the sockets and the clock.
///
/// Every input takes `now`, the host's monotonic time in ms (`performance.now()`). After
/// inputs, take what to do with `takeOutput()` (the packed operations of
/// [`crate::ops`]), the events with `takeEvent()`, and arm a timer for
/// `nextDeadline()`. The package's `index.js` does all of this over Node.js sockets.
#[wasm_bindgen]
#[derive(Debug)]
pub struct SerfCore {
    node: Node,
}

#[wasm_bindgen]
impl SerfCore {
    /// A node from its options, at host time `now`. Throws on a wrong option, naming it.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "NodeOptions")] options: JsValue,
        now: f64,
    ) -> Result<SerfCore, JsError> {
        let opts: NodeOptions = from_js(options, "options")?;
        let node = Node::new(&opts, now).map_err(js_err)?;
        Ok(SerfCore { node })
    }

    /// A datagram arrived from `ip`:`port`.
    #[wasm_bindgen(js_name = handleDatagram)]
    pub fn handle_datagram(&mut self, now: f64, ip: &str, port: u16, data: &[u8]) {
        self.node.handle_datagram(now, ip, port, data);
    }

    /// A peer connected; returns the stream id, or `undefined` to refuse (close it).
    #[wasm_bindgen(js_name = acceptStream)]
    pub fn accept_stream(&mut self, now: f64, ip: &str, port: u16) -> Option<f64> {
        self.node.accept_stream(now, ip, port)
    }

    /// Bytes read from stream `id`, in any pieces (the node undoes the framing).
    #[wasm_bindgen(js_name = streamData)]
    pub fn stream_data(&mut self, now: f64, id: f64, data: &[u8]) {
        self.node.stream_data(now, id, data);
    }

    /// One whole frame from stream `id`, for transports that keep message boundaries.
    #[wasm_bindgen(js_name = streamFrame)]
    pub fn stream_frame(&mut self, now: f64, id: f64, frame: &[u8]) {
        self.node.stream_frame(now, id, frame);
    }

    /// The peer ended stream `id`.
    #[wasm_bindgen(js_name = streamClosed)]
    pub fn stream_closed(&mut self, now: f64, id: f64) {
        self.node.stream_closed(now, id);
    }

    /// Stream `id` failed (connect error or timeout, reset, I/O error).
    #[wasm_bindgen(js_name = streamFailed)]
    pub fn stream_failed(&mut self, now: f64, id: f64) {
        self.node.stream_failed(now, id);
    }

    /// Time passed; call at `nextDeadline()`.
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self, now: f64) {
        self.node.handle_timeout(now);
    }

    /// The packed operations waiting for the host, or `undefined` if none. One copy per
    /// call, however many datagrams it holds.
    #[wasm_bindgen(js_name = takeOutput)]
    pub fn take_output(&mut self) -> Option<js_sys::Uint8Array> {
        if self.node.output().is_empty() {
            return None;
        }
        let out = js_sys::Uint8Array::from(self.node.output());
        self.node.clear_output();
        Some(out)
    }

    /// The next event, or `undefined`.
    #[wasm_bindgen(js_name = takeEvent, unchecked_return_type = "SerfEvent | undefined")]
    pub fn take_event(&mut self) -> JsValue {
        match self.node.take_event() {
            Some(e) => to_js(&e),
            None => JsValue::UNDEFINED,
        }
    }

    /// When to call `handleTimeout`, in host ms (`Infinity`: never).
    #[wasm_bindgen(js_name = nextDeadline)]
    pub fn next_deadline(&self) -> f64 {
        self.node.next_deadline()
    }

    /// Joins through `seeds` ("ip:port"); returns the id of the `join-completed` event.
    pub fn join(&mut self, now: f64, seeds: Vec<String>, ignore_old: bool) -> Result<f64, JsError> {
        let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
        self.node.join(now, &seeds, ignore_old).map_err(js_err)
    }

    /// Leaves gracefully; `leave-completed` follows.
    pub fn leave(&mut self, now: f64) -> Result<(), JsError> {
        self.node.leave(now).map_err(js_err)
    }

    /// Sends a user event.
    #[wasm_bindgen(js_name = userEvent)]
    pub fn user_event(
        &mut self,
        now: f64,
        name: &str,
        payload: &[u8],
        coalesce: bool,
    ) -> Result<(), JsError> {
        self.node
            .user_event(now, name, payload, coalesce)
            .map_err(js_err)
    }

    /// Sends a query; returns the id its events carry.
    pub fn query(
        &mut self,
        now: f64,
        name: &str,
        payload: &[u8],
        #[wasm_bindgen(unchecked_param_type = "QueryParams | undefined")] params: JsValue,
    ) -> Result<u32, JsError> {
        let params: JsQueryParams = if params.is_undefined() || params.is_null() {
            JsQueryParams::default()
        } else {
            from_js(params, "query params")?
        };
        self.node.query(now, name, payload, &params).map_err(js_err)
    }

    /// Answers the query whose event carried `handle`.
    pub fn respond(&mut self, now: f64, handle: f64, payload: &[u8]) -> Result<(), JsError> {
        self.node.respond(now, handle, payload).map_err(js_err)
    }

    /// Replaces this node's tags.
    #[wasm_bindgen(js_name = setTags)]
    pub fn set_tags(
        &mut self,
        now: f64,
        #[wasm_bindgen(unchecked_param_type = "Record<string, string>")] tags: JsValue,
    ) -> Result<(), JsError> {
        let tags: Tags = from_js(tags, "tags")?;
        self.node.set_tags(now, tags).map_err(js_err)
    }

    /// Forces a failed member out; `prune` erases it at once.
    #[wasm_bindgen(js_name = forceLeave)]
    pub fn force_leave(&mut self, now: f64, name: &str, prune: bool) -> Result<(), JsError> {
        self.node.force_leave(now, name, prune).map_err(js_err)
    }

    /// A keyring operation across the cluster: "install", "use", "remove" (with a base64
    /// key) or "list"; a `key-response` event with the returned id follows.
    #[wasm_bindgen(js_name = keyOp)]
    pub fn key_op(&mut self, now: f64, op: &str, key: Option<String>) -> Result<u32, JsError> {
        self.node.key_op(now, op, key.as_deref()).map_err(js_err)
    }

    /// Stops at once (leave first for a graceful exit); aborts every stream.
    pub fn shutdown(&mut self) {
        self.node.shutdown();
    }

    /// Every member known, in any status.
    #[wasm_bindgen(unchecked_return_type = "Member[]")]
    pub fn members(&self) -> JsValue {
        to_js(&self.node.members())
    }

    /// This node as a member.
    #[wasm_bindgen(js_name = localMember, unchecked_return_type = "Member")]
    pub fn local_member(&self) -> JsValue {
        to_js(&self.node.local_member())
    }

    /// Go's `Stats()` and the local state.
    #[wasm_bindgen(unchecked_return_type = "Stats")]
    pub fn stats(&self) -> JsValue {
        to_js(&self.node.stats())
    }

    /// Every counter by name (core and driver).
    #[wasm_bindgen(unchecked_return_type = "Record<string, number>")]
    pub fn metrics(&self) -> JsValue {
        to_js(&self.node.metrics())
    }

    /// The keys installed here, primary first (base64).
    pub fn keys(&self) -> Vec<String> {
        self.node.keys()
    }

    /// The largest stream frame accepted, header excluded.
    #[wasm_bindgen(js_name = maxFrameLen)]
    pub fn max_frame_len(&self) -> usize {
        self.node.max_frame_len()
    }
}

/// The 4-byte big-endian length prefix of a frame of `len` bytes (the core's framing).
#[wasm_bindgen(js_name = encodeFrameHeader)]
pub fn encode_frame_header(len: u32) -> Vec<u8> {
    framing::encode_header(len as usize).to_vec()
}

/// The core's incremental frame decoder, for hosts that carry streams themselves:
/// `push` bytes as they come, then take `nextFrame()` until `undefined`. Throws once a
/// length above `max` was announced: drop the connection then.
#[wasm_bindgen]
#[derive(Debug)]
pub struct FrameDecoder {
    inner: CoreFrameDecoder,
}

#[wasm_bindgen]
impl FrameDecoder {
    /// A decoder for frames of at most `max` bytes (`SerfCore.maxFrameLen()`).
    #[wasm_bindgen(constructor)]
    pub fn new(max: usize) -> FrameDecoder {
        FrameDecoder {
            inner: CoreFrameDecoder::new(max),
        }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.inner.push(data);
    }

    /// The next whole frame, or `undefined` if more bytes are needed.
    #[wasm_bindgen(js_name = nextFrame)]
    pub fn next_frame(&mut self) -> Result<Option<js_sys::Uint8Array>, JsError> {
        match self.inner.next_frame() {
            Ok(Some(f)) => Ok(Some(js_sys::Uint8Array::from(f))),
            Ok(None) => Ok(None),
            Err(e) => Err(js_err(e)),
        }
    }
}
