//! Event handlers: `[filter=]script` specs run for events and queries (go-serf.md §5.3,
//! go-serf-agent.md §4).
