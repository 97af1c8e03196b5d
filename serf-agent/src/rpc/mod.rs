//! HashiCorp's agent RPC (IPC) protocol: msgpack over TCP, byte-compatible with Go's
//! agent and client (go-serf-agent.md §1–2).
//!
//! - [`msgpack`]: the codec, written as go-msgpack writes and read within bounds;
//! - [`messages`]: the commands' bodies and stream records with Go's field names;
//! - [`stream`]: event filters and the fan-out to `stream` subscribers;
//! - [`server`]: the agent's side;
//! - [`client`]: the client the `serf` commands use.

pub mod client;
pub mod messages;
pub mod msgpack;
pub mod server;
pub mod stream;
