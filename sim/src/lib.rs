//! # sim
//!
//! The deterministic cluster simulator: many real serf-proto cores, real wire bytes,
//! virtual time, a seeded network with loss, latency, partitions and crashes.
//!
//! **Status: in progress.** Until it lands, serf-proto's own tests use a small harness
//! (`serf-proto/tests/harness`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
