//! The running agent.
