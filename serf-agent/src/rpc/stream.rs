//! Event streams: the RPC's `stream {Type}` filter (Go's `ParseEventFilter`, shared with
//! event handlers) and the hub that fans the agent's events out to every stream.

use serf_proto::serf::Event;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Events queued per stream before new ones are dropped (Go's 512-entry event stream).
pub const STREAM_BUFFER: usize = 512;

/// One term of a filter: an event type, and for `user` and `query` an optional name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    /// `member-join` … `member-reap`, `user`, `query` or `*`.
    pub event: String,
    /// For `user:NAME` and `query:NAME`.
    pub name: String,
}

const VALID: [&str; 8] = [
    "member-join",
    "member-leave",
    "member-failed",
    "member-update",
    "member-reap",
    "user",
    "query",
    "*",
];

/// Parses `type[:name],…` (empty means `*`); `None` if a type is not one of Go's.
pub fn parse_filter(spec: &str) -> Option<Vec<EventFilter>> {
    let spec = if spec.is_empty() { "*" } else { spec };
    spec.split(',')
        .map(|term| {
            let (event, name) = if let Some(n) = term.strip_prefix("user:") {
                ("user", n)
            } else if let Some(n) = term.strip_prefix("query:") {
                ("query", n)
            } else {
                (term, "")
            };
            VALID.contains(&event).then(|| EventFilter {
                event: event.to_owned(),
                name: name.to_owned(),
            })
        })
        .collect()
}

/// Whether any term of `filters` takes `event` (Go's `EventFilter.Invoke`).
pub fn matches(filters: &[EventFilter], event: &Event) -> bool {
    let (kind, name) = match event {
        Event::Member { kind, .. } => (kind.as_str(), None),
        Event::User(u) => ("user", Some(u.name.as_str())),
        Event::Query(q) => ("query", Some(q.name.as_str())),
        _ => return false,
    };
    filters.iter().any(|f| {
        f.event == "*"
            || (f.event == kind && (f.name.is_empty() || name.is_some_and(|n| n == f.name)))
    })
}

struct Subscriber {
    id: u64,
    filters: Vec<EventFilter>,
    tx: mpsc::Sender<Event>,
}

/// Fans events out to streams. Publishing never waits: a full stream loses the event,
/// counted in [`EventHub::dropped`].
#[derive(Clone, Default)]
pub struct EventHub {
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
    next_id: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub").finish_non_exhaustive()
    }
}

/// A subscription; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    hub: EventHub,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Ok(mut subs) = self.hub.subscribers.lock() {
            subs.retain(|s| s.id != self.id);
        }
    }
}

impl EventHub {
    /// An empty hub.
    pub fn new() -> EventHub {
        EventHub::default()
    }

    /// Subscribes to the events `filters` take.
    pub fn subscribe(&self, filters: Vec<EventFilter>) -> (Subscription, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let id = self.next_id.fetch_add(1, Relaxed);
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.push(Subscriber { id, filters, tx });
        }
        (
            Subscription {
                hub: self.clone(),
                id,
            },
            rx,
        )
    }

    /// Hands `event` to every matching stream; returns how many were full and lost it.
    pub fn publish(&self, event: &Event) -> usize {
        let mut lost = 0;
        if let Ok(subs) = self.subscribers.lock() {
            for s in subs.iter() {
                if matches(&s.filters, event) && s.tx.try_send(event.clone()).is_err() {
                    lost += 1;
                }
            }
        }
        self.dropped.fetch_add(lost as u64, Relaxed);
        lost
    }

    /// Streams currently subscribed.
    pub fn len(&self) -> usize {
        self.subscribers.lock().map_or(0, |s| s.len())
    }

    /// Whether no stream is subscribed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events lost to full streams since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serf_proto::serf::{MemberEventKind, UserEvent};

    fn user(name: &str) -> Event {
        Event::User(UserEvent {
            ltime: 1,
            name: name.into(),
            payload: Bytes::new(),
            coalesce: false,
        })
    }

    #[test]
    fn filters_follow_go() {
        assert_eq!(parse_filter("").unwrap()[0].event, "*");
        assert!(parse_filter("member-join,user:deploy").is_some());
        assert!(parse_filter("bogus").is_none());
        assert!(parse_filter("member-join,").is_none());
        let f = parse_filter("user:deploy").unwrap();
        assert!(matches(&f, &user("deploy")));
        assert!(!matches(&f, &user("other")));
        let joins = parse_filter("member-join").unwrap();
        let ev = Event::Member {
            kind: MemberEventKind::Join,
            members: vec![],
        };
        assert!(matches(&joins, &ev));
        assert!(!matches(&joins, &user("x")));
    }

    #[test]
    fn a_full_stream_loses_events_without_blocking() {
        let hub = EventHub::new();
        let (_sub, _rx) = hub.subscribe(parse_filter("*").unwrap());
        for _ in 0..STREAM_BUFFER + 3 {
            hub.publish(&user("x"));
        }
        assert_eq!(hub.dropped(), 3);
        drop(_sub);
        assert!(hub.is_empty());
    }
}
