//! # serf-driver-tokio
//!
//! The tokio driver for [`serf_proto`]: it will own the UDP socket, TCP (and QUIC) streams
//! and the timer, feed the core and drain its outputs, and offer a cheap cloneable handle
//! to applications, plus the `serf` agent binary.
//!
//! **Status: not started.** Nothing here works yet; the crate exists so the workspace has
//! its final shape. Until it lands, drive [`serf_proto::memberlist::Memberlist`] yourself
//! with the loop shown in the serf-proto crate docs.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
