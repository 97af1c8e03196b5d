//! The transmit-limited broadcast queue (memberlist `queue.go`).
//!
//! Messages are piggybacked on outgoing packets, least-sent first, and within that the
//! largest that fits, newest first. Each message is retired after
//! `retransmit_mult * ceil(log10(n + 1))` sends. A message about a node replaces any queued
//! message about the same node ("named" broadcasts); the layer above's broadcasts are unique
//! and never replace each other.
//!
//! The queue is bounded: beyond its depth the most-sent, oldest messages are dropped and
//! counted, as Serf's queue monitor does.

use crate::name::Name;
use bytes::Bytes;
use core::cmp::Reverse;
use std::collections::BTreeMap;

type Key = (u32, Reverse<u32>, Reverse<u64>);

#[derive(Debug)]
struct Item {
    msg: Bytes,
    name: Option<Name>,
    notify: Option<u64>,
}

/// A queue of framed messages waiting to be piggybacked.
#[derive(Debug)]
pub struct BroadcastQueue {
    items: BTreeMap<Key, Item>,
    by_name: hashbrown::HashMap<Name, Key, foldhash::fast::FixedState>,
    next_id: u64,
    bytes: usize,
    max_depth: usize,
    dropped: u64,
    finished: Vec<u64>,
    /// Messages taken during a fill, reinserted with one more transmit at its end (reused
    /// so that filling a packet does not allocate).
    reinsert: Vec<(Key, Item)>,
}

impl BroadcastQueue {
    /// An empty queue holding at most `max_depth` messages. `seed` keys the name index's
    /// hasher.
    pub fn new(max_depth: usize, seed: u64) -> Self {
        BroadcastQueue {
            items: BTreeMap::new(),
            by_name: hashbrown::HashMap::with_hasher(foldhash::fast::FixedState::with_seed(seed)),
            next_id: 0,
            bytes: 0,
            max_depth: max_depth.max(1),
            dropped: 0,
            finished: Vec::new(),
            reinsert: Vec::new(),
        }
    }

    /// Queued messages.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The length of the message the next fill would take first, if any.
    pub fn head_len(&self) -> Option<usize> {
        self.items.first_key_value().map(|(k, _)| k.1.0 as usize)
    }

    /// Messages dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Changes the depth limit (used by dynamic sizing); excess is pruned at once.
    pub fn set_max_depth(&mut self, max_depth: usize) {
        self.max_depth = max_depth.max(1);
        self.prune(self.max_depth);
    }

    /// Takes the notification ids of messages retired since the last call.
    pub fn take_finished(&mut self, out: &mut Vec<u64>) {
        out.append(&mut self.finished);
    }

    /// Queues a framed message. A `name` makes it replace any queued message with the same
    /// name. `notify` is reported through [`Self::take_finished`] once the message is
    /// retired, replaced or dropped.
    pub fn push(&mut self, msg: Bytes, name: Option<Name>, notify: Option<u64>) {
        if let Some(n) = &name
            && let Some(old) = self.by_name.remove(n.as_str())
            && let Some(item) = self.items.remove(&old)
        {
            self.retire(item);
        }
        let id = self.next_id;
        self.next_id += 1;
        // A message longer than 4 GiB cannot be queued: messages are at most a packet.
        let key = (0, Reverse(msg.len() as u32), Reverse(id));
        if let Some(n) = &name {
            self.by_name.insert(n.clone(), key);
        }
        self.bytes += msg.len();
        self.items.insert(key, Item { msg, name, notify });
        if self.items.len() > self.max_depth {
            let before = self.items.len();
            self.prune(self.max_depth);
            self.dropped += (before - self.items.len()) as u64;
        }
    }

    /// Drops the most-sent, oldest messages until at most `keep` remain.
    pub fn prune(&mut self, keep: usize) {
        while self.items.len() > keep {
            let Some((_, item)) = self.items.pop_last() else {
                break;
            };
            self.retire(item);
        }
    }

    fn retire(&mut self, item: Item) {
        self.bytes -= item.msg.len();
        if let Some(n) = &item.name {
            self.by_name.remove(n.as_str());
        }
        if let Some(id) = item.notify {
            self.finished.push(id);
        }
    }

    /// Appends messages to `out` while they fit in `space` bytes, and returns the bytes
    /// used. Each message taken counts one transmission; it is retired on reaching `limit`.
    pub fn fill(&mut self, limit: u32, space: usize, out: &mut Vec<u8>) -> usize {
        let mut used = 0usize;
        let mut reinsert = core::mem::take(&mut self.reinsert);
        let mut tier = match self.items.first_key_value() {
            Some((k, _)) => k.0,
            None => {
                self.reinsert = reinsert;
                return 0;
            }
        };
        loop {
            let free = space - used;
            if free == 0 {
                break;
            }
            let free32 = u32::try_from(free).unwrap_or(u32::MAX);
            // Within this tier, the largest message not longer than `free`, newest first.
            let lo = (tier, Reverse(free32), Reverse(u64::MAX));
            let hi = (tier, Reverse(0), Reverse(0));
            let found = self.items.range(lo..=hi).next().map(|(k, _)| *k);
            match found {
                Some(key) => {
                    // The key was just found in the map.
                    let item = self.items.remove(&key).expect("key present");
                    out.extend_from_slice(&item.msg);
                    used += item.msg.len();
                    let transmits = key.0 + 1;
                    if transmits >= limit {
                        self.retire(item);
                    } else {
                        reinsert.push(((transmits, key.1, key.2), item));
                    }
                }
                None => {
                    // Next tier with more transmits, if any.
                    let next = (tier.saturating_add(1), Reverse(u32::MAX), Reverse(u64::MAX));
                    match self.items.range(next..).next() {
                        Some((k, _)) => tier = k.0,
                        None => break,
                    }
                }
            }
        }
        for (key, item) in reinsert.drain(..) {
            if let Some(n) = &item.name {
                self.by_name.insert(n.clone(), key);
            }
            self.items.insert(key, item);
        }
        self.reinsert = reinsert;
        if self.items.is_empty() && self.by_name.capacity() > 64 {
            // A burst (a join storm) is over: give the index's memory back.
            self.by_name.shrink_to(0);
        }
        used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(len: usize, tag: u8) -> Bytes {
        Bytes::from(vec![tag; len])
    }

    #[test]
    fn least_sent_then_largest_first_and_retired_at_limit() {
        let mut q = BroadcastQueue::new(100, 0);
        q.push(msg(10, 1), None, Some(1));
        q.push(msg(30, 2), None, Some(2));
        q.push(msg(20, 3), None, Some(3));
        let mut out = Vec::new();
        // Space for 50: takes 30 then 20, not 10.
        assert_eq!(q.fill(2, 50, &mut out), 50);
        assert_eq!(&out[..30], &[2u8; 30][..]);
        assert_eq!(&out[30..], &[3u8; 20][..]);
        // Next packet: the unsent 10 first (fewer transmits), then the 30 again.
        out.clear();
        assert_eq!(q.fill(2, 45, &mut out), 40);
        assert_eq!(out[0], 1);
        let mut fin = Vec::new();
        q.take_finished(&mut fin);
        assert_eq!(fin, vec![2]);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn a_message_is_not_sent_twice_in_one_packet() {
        let mut q = BroadcastQueue::new(100, 0);
        q.push(msg(10, 1), None, None);
        let mut out = Vec::new();
        assert_eq!(q.fill(10, 1000, &mut out), 10);
    }

    #[test]
    fn named_messages_replace_older_ones() {
        let mut q = BroadcastQueue::new(100, 0);
        let a = Name::new("a").unwrap();
        q.push(msg(10, 1), Some(a.clone()), Some(7));
        q.push(msg(12, 2), Some(a.clone()), None);
        q.push(msg(5, 3), None, None);
        assert_eq!(q.len(), 2);
        assert_eq!(q.bytes(), 17);
        let mut fin = Vec::new();
        q.take_finished(&mut fin);
        assert_eq!(fin, vec![7]);
        let mut out = Vec::new();
        q.fill(1, 100, &mut out);
        assert!(q.is_empty());
        // After retirement, the name index is clean.
        q.push(msg(10, 4), Some(a), None);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn overflow_drops_the_most_sent_and_counts() {
        let mut q = BroadcastQueue::new(3, 0);
        for i in 0..3 {
            q.push(msg(10, i), None, None);
        }
        let mut out = Vec::new();
        q.fill(100, 10, &mut out); // the newest goes out once
        q.push(msg(10, 9), None, None);
        assert_eq!(q.len(), 3);
        assert_eq!(q.dropped(), 1);
        out.clear();
        q.fill(100, 1000, &mut out);
        assert!(!out.contains(&2), "the most-sent message was dropped");
    }

    #[test]
    fn zero_limit_sends_once() {
        let mut q = BroadcastQueue::new(10, 0);
        q.push(msg(4, 1), None, None);
        let mut out = Vec::new();
        assert_eq!(q.fill(0, 100, &mut out), 4);
        assert!(q.is_empty());
    }
}
