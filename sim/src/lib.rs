//! # sim
//!
//! A deterministic discrete-event simulator for serf-proto: thousands of real protocol
//! cores (the same code and wire bytes as production) on one virtual clock, over a
//! seeded network with latency, jitter, loss, duplication, reordering, partitions,
//! crashes, pauses, slow nodes and restarts.
//!
//! - [`engine`]: the event queue ordered by `(time, sequence)` and the step loop. A run
//!   is a pure function of the scenario and the seed; [`trace`] hashes every delivery and
//!   event so two runs can be compared by one number.
//! - [`network`]: the link model (str0m-netem style) and partitions; streams are
//!   modelled too (round-trip set-up, in-order frames, failure after a timeout).
//! - [`node`]: the [`SimNode`] trait, the only seam to a protocol core, implemented for
//!   the memberlist layer by [`MemberlistNode`].
//! - [`scenario`]: scenarios as TOML files or Rust values; `sim/README.md` documents
//!   every key.
//! - [`invariants`]: checks run at every step, incrementally (no resurrection, monotonic
//!   incarnations, bounded queues, convergence by a deadline the protocol implies).
//! - [`measure`], [`report`], [`svg`]: convergence, detection latency, false positives,
//!   event delivery, traffic; as a table, JSON and SVG plots.
//!
//! ```
//! use sim::scenario::{Action, ActionKind, ExpectKind, Expectation, NodeSet};
//! use sim::{MemberlistNode, Scenario, Simulation};
//! use std::time::Duration;
//!
//! // 20 nodes; one crashes at 30 s; every live node must have noticed within 40 s.
//! let mut detected = Expectation::new(ExpectKind::Detection);
//! detected.all_within = Some(Duration::from_secs(40));
//! let scenario = Scenario::new("doc", 20, Duration::from_secs(90))
//!     .with_action(Action::new(Duration::from_secs(30), ActionKind::Crash, Some(NodeSet::List(vec![7]))))
//!     .with_expectation(detected);
//! let report = Simulation::<MemberlistNode>::new(&scenario, 42).unwrap().run(&mut |_| {});
//! assert!(report.passed, "{}", report.table());
//! assert_eq!(report.detection.crashes, 1);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod duration;
pub mod engine;
pub mod invariants;
pub mod measure;
pub mod network;
pub mod node;
pub mod nodeset;
mod observe;
mod ops;
pub mod report;
pub mod scenario;
pub mod serf_node;
mod streams;
#[cfg(test)]
mod tests;
pub mod trace;

pub use engine::{Progress, Simulation, Status};
pub use node::{MemberlistNode, SimNode};
pub use report::Report;
pub use scenario::Scenario;
pub use serf_node::SerfNode;
pub mod svg;
