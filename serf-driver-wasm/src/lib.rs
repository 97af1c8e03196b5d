//! # serf-driver-wasm
//!
//! serf-proto compiled for `wasm32-unknown-unknown`, with a JavaScript-facing API where the
//! host supplies time, the random seed and I/O.
//!
//! **Status: not started.** Nothing here works yet; the crate exists so the workspace has
//! its final shape.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
