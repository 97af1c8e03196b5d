//! Handler specs (`[filter=]script`) and event filters, parsed as Go parses them
//! (`event_handler.go` `ParseEventScript`, `ParseEventFilter`). The same filter syntax
//! serves the RPC `stream` command.

use serf_proto::serf::{Event, MemberEventKind};
use std::fmt;

/// Why a handler spec or an event filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// An event type that does not exist.
    #[error(
        "Invalid event script: {spec}: unknown event type \"{event}\"; use member-join, \
         member-leave, member-failed, member-update, member-reap, user, user:NAME, query, \
         query:NAME or * (a spec is [filter=]script, split at the first '=')"
    )]
    InvalidEventType {
        /// The whole spec or filter.
        spec: String,
        /// The unknown type.
        event: String,
    },
    /// A spec with no script.
    #[error("Invalid event script: \"{0}\" has no script after the filter")]
    EmptyScript(String),
    /// [`super::Handlers::new`] was called outside a tokio runtime.
    #[error("event handlers need a tokio runtime: create them inside one")]
    NoRuntime,
}

/// The kinds of event a filter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `*`: every event.
    Any,
    /// A member event of this kind.
    Member(MemberEventKind),
    /// `user`: user events.
    User,
    /// `query`: queries.
    Query,
}

/// One filter: an event type, and for `user:NAME` or `query:NAME` the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    /// The type matched.
    pub kind: EventKind,
    /// For user events and queries, only this name (`user:deploy`).
    pub name: Option<String>,
}

impl EventFilter {
    /// Whether `event` passes this filter. Events an agent never hands to handlers
    /// (acks, responses, key operations) pass no filter.
    pub fn matches(&self, event: &Event) -> bool {
        let name_ok = |n: &str| self.name.as_deref().is_none_or(|want| want == n);
        match (self.kind, event) {
            (EventKind::Any, Event::Member { .. } | Event::User(_) | Event::Query(_)) => true,
            (EventKind::Member(k), Event::Member { kind, .. }) => k == *kind,
            (EventKind::User, Event::User(u)) => name_ok(&u.name),
            (EventKind::Query, Event::Query(q)) => name_ok(&q.name),
            _ => false,
        }
    }
}

impl fmt::Display for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            EventKind::Any => "*",
            EventKind::Member(k) => k.as_str(),
            EventKind::User => "user",
            EventKind::Query => "query",
        };
        match &self.name {
            Some(n) => write!(f, "{kind}:{n}"),
            None => f.write_str(kind),
        }
    }
}

/// Parses a filter list such as `member-join,user:deploy` (empty means `*`). An unknown
/// type is an error naming it.
///
/// ```
/// use serf_agent::handlers::parse_event_filter;
/// let f = parse_event_filter("member-join,user:deploy").unwrap();
/// assert_eq!(f.len(), 2);
/// assert!(parse_event_filter("member-joined").is_err());
/// ```
pub fn parse_event_filter(filter: &str) -> Result<Vec<EventFilter>, HandlerError> {
    let filter = if filter.is_empty() { "*" } else { filter };
    filter
        .split(',')
        .map(|part| {
            let (kind, name) = match part.split_once(':') {
                Some((k, n)) => (k, Some(n.to_owned())),
                None => (part, None),
            };
            let kind = match kind {
                "*" => EventKind::Any,
                "member-join" => EventKind::Member(MemberEventKind::Join),
                "member-leave" => EventKind::Member(MemberEventKind::Leave),
                "member-failed" => EventKind::Member(MemberEventKind::Failed),
                "member-update" => EventKind::Member(MemberEventKind::Update),
                "member-reap" => EventKind::Member(MemberEventKind::Reap),
                "user" => EventKind::User,
                "query" => EventKind::Query,
                _ => {
                    return Err(HandlerError::InvalidEventType {
                        spec: filter.to_owned(),
                        event: part.to_owned(),
                    });
                }
            };
            // Go ignores a name on other types (`member-join:x` matches every join);
            // keeping it would make such a filter never match, so it is dropped too.
            let name = match kind {
                EventKind::User | EventKind::Query => name,
                _ => None,
            };
            Ok(EventFilter { kind, name })
        })
        .collect()
}

/// A parsed handler spec: its filters and the script to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerSpec {
    /// The event filters; the script runs for an event that passes any of them.
    pub filters: Vec<EventFilter>,
    /// The command, run with `/bin/sh -c`.
    pub script: String,
    /// The spec as written, for logs and `serf info`.
    pub spec: String,
}

impl HandlerSpec {
    /// Whether this handler runs for `event`.
    pub fn matches(&self, event: &Event) -> bool {
        self.filters.iter().any(|f| f.matches(event))
    }
}

/// Parses `[filter=]script`, split at the first `=` as Go does (so `FOO=1 ./h.sh` reads
/// as the filter `FOO` and is refused, naming it).
///
/// Unlike Go, a spec with several filters (`user,user:deploy=x.sh`) runs its script once
/// per event, not once per matching filter.
///
/// ```
/// use serf_agent::handlers::parse_spec;
/// let s = parse_spec("user:deploy=./deploy.sh --now").unwrap();
/// assert_eq!(s.script, "./deploy.sh --now");
/// assert_eq!(parse_spec("./all.sh").unwrap().filters.len(), 1);
/// ```
pub fn parse_spec(spec: &str) -> Result<HandlerSpec, HandlerError> {
    let (filter, script) = match spec.split_once('=') {
        Some((f, s)) => (f, s),
        None => ("*", spec),
    };
    if script.trim().is_empty() {
        return Err(HandlerError::EmptyScript(spec.to_owned()));
    }
    let filters = parse_event_filter(filter).map_err(|e| match e {
        HandlerError::InvalidEventType { event, .. } => HandlerError::InvalidEventType {
            spec: spec.to_owned(),
            event,
        },
        other => other,
    })?;
    Ok(HandlerSpec {
        filters,
        script: script.to_owned(),
        spec: spec.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serf_proto::serf::UserEvent;

    fn user(name: &str) -> Event {
        Event::User(UserEvent {
            ltime: 1,
            name: name.to_owned(),
            payload: Bytes::new(),
            coalesce: false,
        })
    }

    #[test]
    fn specs_split_at_the_first_equals() {
        let s = parse_spec("member-join,member-leave=a.sh x=y").unwrap();
        assert_eq!(s.script, "a.sh x=y");
        assert_eq!(s.filters.len(), 2);
        let e = parse_spec("FOO=1 ./h.sh").unwrap_err().to_string();
        assert!(e.contains("\"FOO\""), "{e}");
        assert!(parse_spec("user=").is_err());
        assert!(
            parse_spec("=x.sh").is_ok(),
            "an empty filter means every event"
        );
    }

    #[test]
    fn named_user_filters_match_only_that_name() {
        let s = parse_spec("user:deploy=x").unwrap();
        assert!(s.matches(&user("deploy")));
        assert!(!s.matches(&user("other")));
        let all = parse_spec("x").unwrap();
        assert!(all.matches(&user("other")));
        let joins = parse_spec("member-join=x").unwrap();
        assert!(!joins.matches(&user("deploy")));
        assert!(joins.matches(&Event::Member {
            kind: MemberEventKind::Join,
            members: vec![]
        }));
    }

    #[test]
    fn filters_print_as_written() {
        let f = parse_event_filter("member-join,user:deploy,*,query").unwrap();
        let s: Vec<String> = f.iter().map(ToString::to_string).collect();
        assert_eq!(s, ["member-join", "user:deploy", "*", "query"]);
    }
}
