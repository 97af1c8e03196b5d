//! # serf-driver-wasm
//!
//! The serf-proto core compiled to WebAssembly (`wasm32-unknown-unknown`, and
//! `wasm32-wasip1`), driven by a JavaScript host that owns the sockets and the clock.
//! The npm package in `js/` wraps it for Node.js (`dgram` for UDP, `net` for TCP), so a
//! JavaScript program joins a cluster of native nodes in a few lines; see `js/README.md`.
//!
//! ## The host contract
//!
//! The core is sans-IO; this crate is the half of a driver that lives inside wasm:
//!
//! - **Time** crosses as milliseconds of the host's monotonic clock (`performance.now()`),
//!   an `f64`, on every input. The host picks the origin; the node never reads a clock.
//! - **Randomness**: the host gives a seed (8 bytes of `crypto.getRandomValues`) at
//!   creation; the core draws everything, encryption nonces included, from it.
//! - **Inputs**: datagrams (`ip`, `port`, bytes), streams (accepted, bytes or whole
//!   frames, closed, failed), timeouts, and the application's commands.
//! - **Outputs**: after every input the node drains the core into one packed buffer of
//!   operations ([`ops`]: send a datagram, open/write/close/abort a stream), an event
//!   queue, and the next deadline. The host takes the buffer once per turn of its event
//!   loop: one copy across the boundary however many datagrams it holds, and no
//!   JavaScript object per datagram.
//! - **Streams** use the core's framing ([`serf_proto::framing`]): the node writes the
//!   4-byte length prefix into each frame operation and decodes the bytes the host reads
//!   (or takes whole frames from transports that keep boundaries, with
//!   [`js::FrameDecoder`] and [`js::encode_frame_header`] exported for such hosts).
//! - **Bounded**: a host that stops taking output loses datagrams (counted) and fails
//!   streams rather than letting memory grow; events beyond the queue's capacity are
//!   dropped and counted; hostile addresses and stream ids are dropped and counted.
//!
//! [`Node`] is that driver half in plain Rust (tested on any target); [`js::SerfCore`]
//! is its `wasm-bindgen` face.
//!
//! ```
//! use serf_driver_wasm::ops::{Op, OpReader};
//! use serf_driver_wasm::{Node, NodeOptions, Seed};
//!
//! // Two nodes; the "host" here is a loop that carries datagrams and stream bytes.
//! let opts = |name: &str, port: u16| NodeOptions {
//!     name: name.into(),
//!     address: format!("127.0.0.1:{port}"),
//!     seed: Some(Seed::Number(port.into())),
//!     profile: Some("local".into()),
//!     ..NodeOptions::default()
//! };
//! let mut a = Node::new(&opts("a", 1), 0.0).unwrap();
//! let mut b = Node::new(&opts("b", 2), 0.0).unwrap();
//! b.join(0.0, &["127.0.0.1:1"], false).unwrap();
//! // b asks to open stream `id` to a and write its push-pull frame on it.
//! let out = b.take_output();
//! let ops: Vec<Op<'_>> = OpReader::new(&out).collect();
//! let (Op::Open { id: b_side, .. }, Op::Frame { data, .. }) = (&ops[0], &ops[1]) else { panic!() };
//! let a_side = a.accept_stream(1.0, "127.0.0.1", 2).unwrap();
//! a.stream_data(1.0, a_side, data);
//! // a answers on the same stream and closes it.
//! let out = a.take_output();
//! for op in OpReader::new(&out) {
//!     if let Op::Frame { data, .. } = op {
//!         b.stream_data(2.0, *b_side, data);
//!     }
//! }
//! assert_eq!(b.serf().num_members(), 2);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod event;
pub mod js;
mod node;
pub mod ops;
mod options;

pub use event::{JsEvent, JsJoinFailure, JsKeyResponse, JsMember, JsStats, instant_ms};
pub use node::{CommandError, DriverCounters, JsQueryParams, Node};
pub use options::{NodeOptions, OptionsError, Seed};
