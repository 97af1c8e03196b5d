//! The hub that fans the agent's events out to every RPC `stream`, each with its filter
//! (Go's `ParseEventFilter`, shared with event handlers: [`crate::handlers`]).

use crate::handlers::EventFilter;
use serf_proto::serf::Event;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Events queued per stream before new ones are dropped (Go's 512-entry event stream).
pub const STREAM_BUFFER: usize = 512;

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
                if s.filters.iter().any(|f| f.matches(event))
                    && s.tx.try_send(event.clone()).is_err()
                {
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
    use serf_proto::serf::UserEvent;

    fn user(name: &str) -> Event {
        Event::User(UserEvent {
            ltime: 1,
            name: name.into(),
            payload: Bytes::new(),
            coalesce: false,
        })
    }

    #[test]
    fn a_full_stream_loses_events_without_blocking() {
        let hub = EventHub::new();
        let (_sub, _rx) = hub.subscribe(crate::handlers::parse_event_filter("*").unwrap());
        for _ in 0..STREAM_BUFFER + 3 {
            hub.publish(&user("x"));
        }
        assert_eq!(hub.dropped(), 3);
        drop(_sub);
        assert!(hub.is_empty());
    }
}
