//! The member table.
//!
//! Members live in one vector whose order is also the probe order (as Go's `m.nodes`): new
//! members are inserted at a random position, and the order is reshuffled on every full
//! pass. A hash table of indices, keyed by name through a hasher seeded from the node's
//! seed, finds a member by name without storing the name twice.

use super::suspicion::Suspicion;
use crate::name::Name;
use crate::rng::NodeRng;
use crate::time::Instant;
use crate::wire::{Versions, WireState};
use core::hash::BuildHasher;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// The state of a member in this node's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeState {
    /// Answering probes.
    Alive,
    /// Failed a probe; will be declared dead unless it refutes in time.
    Suspect,
    /// Declared failed.
    Dead,
    /// Left gracefully.
    Left,
}

impl NodeState {
    /// Dead or left: not probed, no longer a member for most purposes.
    pub fn is_dead_or_left(self) -> bool {
        matches!(self, NodeState::Dead | NodeState::Left)
    }

    pub(crate) fn to_wire(self) -> WireState {
        match self {
            NodeState::Alive => WireState::Alive,
            NodeState::Suspect => WireState::Suspect,
            NodeState::Dead => WireState::Dead,
            NodeState::Left => WireState::Left,
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// A socket address in 20 bytes (`SocketAddr` takes 32): the member table holds one per
/// member per node, millions of them in a large simulation. IPv6 flow information and
/// scope are not kept (the wire does not carry them either).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CompactAddr {
    ip: [u8; 16],
    port: u16,
    v6: bool,
}

impl From<SocketAddr> for CompactAddr {
    fn from(a: SocketAddr) -> Self {
        let (ip, v6) = match a.ip() {
            IpAddr::V4(v4) => {
                let mut ip = [0u8; 16];
                ip[..4].copy_from_slice(&v4.octets());
                (ip, false)
            }
            IpAddr::V6(v6) => (v6.octets(), true),
        };
        CompactAddr {
            ip,
            port: a.port(),
            v6,
        }
    }
}

impl CompactAddr {
    pub(crate) fn get(self) -> SocketAddr {
        let ip = if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.ip))
        } else {
            IpAddr::V4(Ipv4Addr::new(
                self.ip[0], self.ip[1], self.ip[2], self.ip[3],
            ))
        };
        SocketAddr::new(ip, self.port)
    }
}

impl PartialEq<SocketAddr> for CompactAddr {
    fn eq(&self, other: &SocketAddr) -> bool {
        *self == CompactAddr::from(*other)
    }
}

impl core::fmt::Debug for CompactAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&self.get(), f)
    }
}

/// Node metadata, shared between the table and events; empty metadata costs nothing.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Meta(Option<Arc<[u8]>>);

impl Meta {
    pub(crate) fn new(b: &[u8]) -> Meta {
        Meta((!b.is_empty()).then(|| Arc::from(b)))
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

impl core::fmt::Debug for Meta {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_slice(), f)
    }
}

/// A member as this node sees it. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub(crate) name: Name,
    pub(crate) addr: CompactAddr,
    pub(crate) meta: Meta,
    pub(crate) incarnation: u32,
    pub(crate) state: NodeState,
    pub(crate) versions: Versions,
}

impl Node {
    /// The member's name, unique in the cluster.
    pub fn name(&self) -> &Name {
        &self.name
    }
    /// Where it listens for datagrams and streams.
    pub fn addr(&self) -> SocketAddr {
        self.addr.get()
    }
    /// Its metadata (for Serf, its encoded tags).
    pub fn meta(&self) -> &[u8] {
        self.meta.as_slice()
    }
    /// Its incarnation: bumped by the member itself to refute or update.
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }
    /// Its state in this node's view.
    pub fn state(&self) -> NodeState {
        self.state
    }
    /// Protocol versions: memberlist `[min, max, cur]` then the layer above's.
    pub fn versions(&self) -> Versions {
        self.versions
    }
}

/// A member table entry: the public view plus bookkeeping.
#[derive(Debug)]
pub(crate) struct Entry {
    pub node: Node,
    /// When `node.state` last changed.
    pub state_change: Instant,
    pub suspicion: Option<Box<Suspicion>>,
    /// When we last told this member directly that we hold it suspect or dead (rate limit
    /// of the mass-restart fix, memberlist #311); [`NEVER`] if never.
    pub last_accused: Instant,
}

impl Entry {
    /// Whether we told this member something directly less than `interval` ago.
    pub fn accused_within(&self, now: Instant, interval: core::time::Duration) -> bool {
        self.last_accused != NEVER && now - self.last_accused < interval
    }
}

/// "Never", for [`Entry::last_accused`].
pub(crate) const NEVER: Instant = Instant::MAX;

/// The member table.
#[derive(Debug)]
pub(crate) struct Members {
    entries: Vec<Entry>,
    index: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::FixedState,
    counts: [usize; 4],
}

impl Members {
    pub fn new(seed: u64) -> Self {
        Members {
            entries: Vec::new(),
            index: hashbrown::HashTable::new(),
            hasher: foldhash::fast::FixedState::with_seed(seed),
            counts: [0; 4],
        }
    }

    fn hash(&self, name: &str) -> u64 {
        self.hasher.hash_one(name)
    }

    /// The position of a member.
    pub fn find(&self, name: &str) -> Option<usize> {
        let h = self.hash(name);
        let entries = &self.entries;
        self.index
            .find(h, |&i| {
                entries[i as usize].node.name.as_bytes() == name.as_bytes()
            })
            .map(|&i| i as usize)
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.find(name).map(|i| &self.entries[i])
    }

    /// Whether `name` is a member we know at `addr`.
    pub fn holds_at(&self, name: &str, addr: SocketAddr) -> bool {
        self.get(name).is_some_and(|e| e.node.addr() == addr)
    }

    pub fn at(&self, i: usize) -> &Entry {
        &self.entries[i]
    }

    pub fn at_mut(&mut self, i: usize) -> &mut Entry {
        &mut self.entries[i]
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Members in `state`.
    pub fn count(&self, state: NodeState) -> usize {
        self.counts[state.slot()]
    }

    /// Adds a member at a random position (so that a new member is probed at a random point
    /// of the current pass) and returns its position.
    pub fn insert_random(&mut self, entry: Entry, rng: &mut NodeRng) -> usize {
        debug_assert!(self.find(&entry.node.name).is_none());
        let n = self.entries.len();
        let h = self.hash(&entry.node.name);
        self.counts[entry.node.state.slot()] += 1;
        if self.entries.len() == self.entries.capacity() {
            // Grow by a quarter rather than doubling: a node holds one entry per member, so
            // in a large simulation doubling could leave half of all entries' memory unused.
            self.entries.reserve_exact(n / 4 + 8);
        }
        let offset = rng.index(n + 1);
        // Move the member at `offset` to the end, then put the new one at `offset`. Index
        // values stay unique at every step, so looking a slot up by value is exact. Sizes are
        // bounded by max_members, far below u32::MAX.
        if offset != n {
            let ho = self.hash(&self.entries[offset].node.name);
            if let Some(slot) = self.index.find_mut(ho, |&i| i == offset as u32) {
                *slot = n as u32;
            }
        }
        self.entries.push(entry);
        self.entries.swap(offset, n);
        let hasher = &self.hasher;
        let entries = &self.entries;
        self.index.insert_unique(h, offset as u32, |&i| {
            hasher.hash_one(entries[i as usize].node.name.as_str())
        });
        offset
    }

    /// Changes a member's state, keeping the counts right.
    pub fn set_state(&mut self, i: usize, state: NodeState, now: Instant) {
        let e = &mut self.entries[i];
        if e.node.state != state {
            self.counts[e.node.state.slot()] -= 1;
            self.counts[state.slot()] += 1;
            e.node.state = state;
            e.state_change = now;
        }
    }

    /// Removes every member for which `remove` is true, then shuffles the rest (the probe
    /// order of the next pass). Returns the removed entries' names.
    pub fn retain_and_shuffle(
        &mut self,
        mut remove: impl FnMut(&Entry) -> bool,
        rng: &mut NodeRng,
        removed: &mut Vec<Name>,
    ) {
        let counts = &mut self.counts;
        self.entries.retain(|e| {
            if remove(e) {
                counts[e.node.state.slot()] -= 1;
                removed.push(e.node.name.clone());
                false
            } else {
                true
            }
        });
        rng.shuffle(&mut self.entries);
        self.rebuild_index();
    }

    fn rebuild_index(&mut self) {
        self.index.clear();
        let hasher = &self.hasher;
        let entries = &self.entries;
        for (i, e) in entries.iter().enumerate() {
            let h = hasher.hash_one(e.node.name.as_str());
            self.index.insert_unique(h, i as u32, |&j| {
                hasher.hash_one(entries[j as usize].node.name.as_str())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, state: NodeState) -> Entry {
        Entry {
            node: Node {
                name: Name::new(name).unwrap(),
                addr: SocketAddr::from(([127, 0, 0, 1], 1)).into(),
                meta: Meta::default(),
                incarnation: 1,
                state,
                versions: [1; 6],
            },
            state_change: Instant::ZERO,
            suspicion: None,
            last_accused: NEVER,
        }
    }

    #[test]
    fn random_inserts_keep_the_index_consistent() {
        let mut m = Members::new(3);
        let mut rng = NodeRng::new(5);
        for i in 0..200 {
            m.insert_random(entry(&format!("n{i}"), NodeState::Alive), &mut rng);
        }
        for i in 0..200 {
            let name = format!("n{i}");
            let at = m.find(&name).unwrap();
            assert_eq!(m.at(at).node.name.as_str(), name);
        }
        assert_eq!(m.count(NodeState::Alive), 200);
        assert!(m.find("nope").is_none());
    }

    #[test]
    fn entries_stay_small() {
        // The budget of the 10,000-node simulation: 10^8 entries in under 16 GiB.
        assert!(
            core::mem::size_of::<Entry>() <= 96,
            "{}",
            core::mem::size_of::<Entry>()
        );
        for a in ["10.1.2.3:7946", "[2001:db8::1]:1"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(CompactAddr::from(a).get(), a);
        }
    }

    #[test]
    fn retain_removes_and_recounts() {
        let mut m = Members::new(3);
        let mut rng = NodeRng::new(5);
        for i in 0..50 {
            let s = if i % 5 == 0 {
                NodeState::Dead
            } else {
                NodeState::Alive
            };
            m.insert_random(entry(&format!("n{i}"), s), &mut rng);
        }
        let i = m.find("n1").unwrap();
        m.set_state(i, NodeState::Left, Instant::from_secs(1));
        let mut removed = Vec::new();
        m.retain_and_shuffle(|e| e.node.state.is_dead_or_left(), &mut rng, &mut removed);
        assert_eq!(removed.len(), 11);
        assert_eq!(m.len(), 39);
        assert_eq!(m.count(NodeState::Dead), 0);
        assert_eq!(m.count(NodeState::Alive), 39);
        for e in m.iter() {
            assert_eq!(
                m.find(&e.node.name).map(|i| &m.at(i).node.name),
                Some(&e.node.name)
            );
        }
    }
}
