//! The client commands.
