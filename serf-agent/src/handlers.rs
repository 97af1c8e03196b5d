//! Event handlers: `[filter=]script` specs run for events and queries (go-serf.md §5.3,
//! go-serf-agent.md §4).

mod spec;

pub use spec::{EventFilter, EventKind, HandlerError, HandlerSpec, parse_event_filter, parse_spec};
