//! # serf-agent
//!
//! The `serf` agent and its command line, a drop-in for HashiCorp's: the same flags and
//! JSON configuration keys, the same RPC (msgpack over TCP), the same CLI output and the
//! same event-handler contract, on the tokio driver.
//!
//! Modules, along the agent's seams:
//! - [`config`]: flags and configuration files into one [`config::AgentConfig`];
//! - [`handlers`]: event-handler scripts (filters, environment, stdin, query responses);
//! - [`rpc`]: HashiCorp's RPC protocol, server and client;
//! - [`command`]: the client commands (`members`, `event`, `query`, …);
//! - [`agent`]: the running agent that ties them together;
//! - [`log`]: HashiCorp's log line format, the ring `serf monitor` replays;
//! - [`telemetry`]: metrics for Prometheus, statsd and statsite.
#![forbid(unsafe_code)]

pub mod agent;
pub mod command;
pub mod config;
pub mod discover;
pub mod handlers;
pub mod log;
pub mod rpc;
pub mod telemetry;
