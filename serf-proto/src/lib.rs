//! # serf-proto
//!
//! The sans-IO core of a Rust port of HashiCorp Serf: cluster membership and failure
//! detection with SWIM and HashiCorp's Lifeguard extensions (the [`memberlist`] layer),
//! and on top of it the [`serf`] layer: member statuses, Lamport-ordered intents, user
//! events, queries, tags, network coordinates, keyring rotation, reaping, reconnection and
//! snapshots.
//!
//! The core is a pure, deterministic state machine. It never reads a clock, never touches
//! a socket and never draws OS randomness: time comes in with every input, randomness from
//! a seed the driver gives, and everything it wants done comes out of one drain loop. The
//! same core runs under the tokio driver, in a browser or node through wasm, and by the
//! thousand in the deterministic simulator.
//!
//! ## The contract
//!
//! [`Serf`] and [`memberlist::Memberlist`] are driven the same way; the example below uses
//! the memberlist layer, and works unchanged with `Serf` (whose `join` takes an extra
//! `ignore_old` flag and whose events are [`serf::Event`]).
//!
//! - **Construct** a node from a config, its name and address, a `u64` seed and `now`.
//! - **Inputs**, each with `now`: a datagram ([`Memberlist::handle_datagram`]); a stream
//!   opened by a peer ([`Memberlist::accept_stream`]) and what happens on streams
//!   ([`Memberlist::handle_stream`]: a frame, closed, failed); time passing
//!   ([`Memberlist::handle_timeout`]); and commands (`join`, `leave`, `set_meta`,
//!   `broadcast`, `send_user_message`).
//! - **Outputs**: after every input, call [`Memberlist::poll_output`] until it returns
//!   [`Output::Timeout`]. It yields, in the order the protocol needs, datagrams to send,
//!   stream operations (open, send a frame, close), events for the application, and
//!   finally the next deadline. A driver that drains after every input is correct by
//!   construction. Datagrams and frames are written into a buffer the driver lends, so the
//!   hot path allocates nothing.
//! - **Time** is an [`Instant`]: a duration since an origin the driver picks. Late, early
//!   or repeated `handle_timeout` calls are harmless.
//! - **Bad input** from the network never panics: it is dropped and counted in
//!   [`Metrics`]. A panic is a bug in this crate.
//! - **Snapshot records** ([`serf::Record`], with [`serf::Config::snapshot`] on) are not
//!   outputs: take them with [`Serf::poll_persist`] each time a drain ends, and append
//!   them to the snapshot file in order. The core never drops them, and unlike
//!   application events a driver must not either. `poll_persist` documents the file's
//!   flush and compaction policy.
//! - **Log records** ([`log::LogRecord`]): what Go's memberlist and serf would log, in
//!   their wording, with a level and the `now` that caused it. Take them with
//!   [`Serf::poll_log`] when a drain ends and route them to a logger; at most 1,024 wait,
//!   the oldest dropped and counted. `memberlist::Config::log_level` (default INFO) picks
//!   what is recorded; recording never changes the protocol.
//! - **Counters**: [`Metrics`] (and [`serf::SerfMetrics`] for the Serf layer) count
//!   what the core did and shed. Export them with `iter()`, which lists every counter
//!   by name with its doc as help text, so an exporter never misses a new one.
//! - **Commands answered later** are answered by an event: a `join` by `JoinCompleted`,
//!   and every `Ok` from [`Serf::leave`] by `LeaveCompleted` (a second leave while
//!   leaving shares the first one's; a leave once left gets another at once).
//!
//! ## Streams
//!
//! The core names streams ([`StreamId`]) and speaks in whole frames; the driver maps each
//! onto a connection with [`framing`]'s length prefix and reports what happens on it
//! ([`StreamEvent`]). A stream ends in one of two ways, and the driver must tell them apart:
//!
//! - [`Output::OpenStream`] carries the core's `deadline` for the stream and, when the
//!   core knows who is at the address, the `peer`'s node name. Use the deadline as the
//!   connect timeout: the core aborts the stream then, and it is not always
//!   `stream_timeout` away (a fallback ping's stream lasts only its probe window, about
//!   a second). A TLS or QUIC driver checks the peer's identity against `peer`; it is
//!   `None` for a join by address and for messages sent to an address.
//! - [`Output::CloseStream`]: an orderly end. Write every frame queued for the stream,
//!   then close our side (TCP `shutdown`, QUIC `finish`). Used when an exchange is over,
//!   and for send-only streams right after their one frame.
//! - [`Output::AbortStream`]: give up. Drop what is still queued and tear the connection
//!   down at once, so the peer's end fails. Used when a stream's deadline passes, an idle
//!   inbound stream is evicted, an answer is broken, and on shutdown.
//!
//! What holds on every stream, and what the driver does about it:
//!
//! - **One frame each way.** A push-pull carries our state and the peer's answer; a
//!   fallback ping, the ping and its ack; a send-only stream (a user message too large for
//!   a datagram: large user events, query responses, relays) one message and no answer.
//!   An inbound stream is ended after its first frame is answered.
//! - **Keep reporting after a close.** After `CloseStream`, report `Closed` when the peer
//!   closes its end, or `Failed` if the connection fails first (a connect that never
//!   succeeds included). For a send-only stream that is how the core learns whether the
//!   message arrived: a failure, or no word by the stream's deadline, is counted in
//!   [`Metrics::stream_sends_failed`]. Anything else reported on a stream the core has
//!   closed or aborted is ignored and not counted; only an id the core never issued
//!   counts in [`Metrics::streams_unknown`] (a driver bug).
//! - **Unknown ids are harmless.** A `CloseStream`, `AbortStream` or `SendFrame` for an
//!   id the driver no longer has (its connection failed first and was reported) or never
//!   opened (an `AbortStream` may follow a `CloseStream` on shutdown) is ignored.
//!
//! ## The canonical driver loop
//!
//! Two nodes on an in-memory network. A real driver does the same with a UDP socket, TCP
//! connections and a timer: feed an input, drain to `Timeout`, sleep until the earliest
//! deadline or the next input.
//!
//! ```
//! use serf_proto::memberlist::{Config, Event, Memberlist};
//! use serf_proto::{Instant, Output, StreamEvent, StreamId};
//! use std::collections::{HashMap, VecDeque};
//! use std::net::SocketAddr;
//!
//! let addrs: [SocketAddr; 2] = ["10.0.0.1:7946".parse().unwrap(), "10.0.0.2:7946".parse().unwrap()];
//! let mut now = Instant::ZERO;
//! let mut nodes = [
//!     Memberlist::new(Config::lan(), "a", addrs[0], b"", 1, now).unwrap(),
//!     Memberlist::new(Config::lan(), "b", addrs[1], b"", 2, now).unwrap(),
//! ];
//! nodes[0].join(now, &[addrs[1]]).unwrap();
//!
//! enum Wire {
//!     Datagram { from: usize, data: Vec<u8> },
//!     Open { from: usize, id: StreamId },
//!     Frame { from: usize, id: StreamId, data: Vec<u8> },
//! }
//! let node_at = |a: SocketAddr| addrs.iter().position(|x| *x == a).unwrap();
//! let mut net: VecDeque<(usize, Wire)> = VecDeque::new(); // (destination, what)
//! let mut links = HashMap::new(); // (node, its stream) -> the peer's name for it
//! let mut deadlines = [Instant::ZERO; 2];
//! let mut buf = Vec::new();
//!
//! for _ in 0..500 {
//!     // The contract: after every input, drain each node until it returns Timeout.
//!     for i in 0..2 {
//!         loop {
//!             match nodes[i].poll_output(&mut buf) {
//!                 Output::Transmit { to } => {
//!                     net.push_back((node_at(to), Wire::Datagram { from: i, data: buf.clone() }))
//!                 }
//!                 Output::OpenStream { id, to, .. } => net.push_back((node_at(to), Wire::Open { from: i, id })),
//!                 Output::SendFrame { id } => {
//!                     let peer = if i == 0 { 1 } else { 0 };
//!                     net.push_back((peer, Wire::Frame { from: i, id, data: buf.clone() }))
//!                 }
//!                 Output::CloseStream { .. } | Output::AbortStream { .. } => {}
//!                 Output::Event(Event::NodeJoined(n)) => println!("node {i} sees {} join", n.name()),
//!                 Output::Event(_) => {}
//!                 Output::Timeout(at) => {
//!                     deadlines[i] = at;
//!                     break;
//!                 }
//!             }
//!         }
//!     }
//!     // Deliver one message, or sleep until the earliest deadline.
//!     match net.pop_front() {
//!         Some((to, Wire::Datagram { from, data })) => nodes[to].handle_datagram(now, addrs[from], &data),
//!         Some((to, Wire::Open { from, id })) => {
//!             let theirs = nodes[to].accept_stream(now, addrs[from]).unwrap();
//!             links.insert((from, id), theirs);
//!             links.insert((to, theirs), id);
//!         }
//!         Some((to, Wire::Frame { from, id, data })) => {
//!             let theirs = links[&(from, id)];
//!             nodes[to].handle_stream(now, theirs, StreamEvent::Frame(&data));
//!         }
//!         None => {
//!             now = deadlines[0].min(deadlines[1]);
//!             nodes.iter_mut().for_each(|n| n.handle_timeout(now));
//!         }
//!     }
//! }
//! assert_eq!(nodes[0].num_alive(), 2);
//! assert_eq!(nodes[1].num_alive(), 2);
//! ```
//!
//! ## Layout
//!
//! - [`wire`]: encoding and decoding of every message; compact, tagged, forward compatible.
//! - [`transform`]: label, checksum, compression, encryption and keyring; pure functions.
//! - [`memberlist`]: SWIM + Lifeguard: member table, probes, suspicion, awareness,
//!   broadcast queue, push-pull. Usable alone for membership only.
//! - [`serf`]: Lamport clocks, intents, user events, queries, tags, coordinates, keyring
//!   queries, reap and reconnect, snapshot records.
//!
//! The `serde` feature derives `Serialize` on the types an agent or a JS host renders
//! (events, members, stats, metrics, coordinates, key responses, query parameters,
//! snapshot records), and `Deserialize` on those that are plain data.
//!
//! ## Determinism
//!
//! Same seed, same inputs: same outputs, byte for byte. All randomness (probe order, gossip
//! targets, jitter, encryption nonces) comes from the node's [`NodeRng`]; hash tables use
//! hashers keyed from it and are never iterated where order matters.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod framing;
pub mod log;
pub mod memberlist;
pub mod metrics;
pub mod name;
pub mod output;
pub mod rng;
#[cfg(feature = "serde")]
mod serde_impls;
pub mod serf;
pub mod time;
pub mod transform;
pub mod wire;

pub use metrics::Metrics;
pub use name::{Name, NameError};
pub use output::{Output, StreamEvent, StreamId};
pub use rng::NodeRng;
pub use serf::Serf;
pub use time::Instant;
pub use transform::{Checksum, Compressor, Keyring, KeyringError, SecretKey};
