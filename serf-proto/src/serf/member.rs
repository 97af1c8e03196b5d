//! Serf members: status, tags, and their encoding as memberlist metadata.

use super::clock::LamportTime;
use crate::name::Name;
use crate::time::Instant;
use crate::wire::WireError;
use crate::wire::codec::{Decoder, Encoder};
use core::fmt;
use core::net::SocketAddr;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A member's tags: free key/value metadata, gossiped as the memberlist metadata.
pub type Tags = BTreeMap<String, String>;

/// Encodes tags as memberlist metadata: one nested `{1 key, 2 value}` per tag, sorted.
pub fn encode_tags(tags: &Tags, out: &mut Vec<u8>) {
    let mut e = Encoder::new(out);
    for (k, v) in tags {
        e.message(1, |e| {
            e.bytes_always(1, k.as_bytes())
                .bytes_always(2, v.as_bytes());
        });
    }
}

/// Decodes tags from memberlist metadata.
pub fn decode_tags(meta: &[u8]) -> Result<Tags, WireError> {
    let mut tags = Tags::new();
    let mut d = Decoder::new(meta);
    while let Some((n, v)) = d.next_field()? {
        if n != 1 {
            continue;
        }
        let mut inner = Decoder::new(v.as_bytes()?);
        let (mut k, mut val) = ("", "");
        while let Some((n, v)) = inner.next_field()? {
            match n {
                1 => k = v.as_str()?,
                2 => val = v.as_str()?,
                _ => {}
            }
        }
        tags.insert(k.to_string(), val.to_string());
    }
    Ok(tags)
}

/// A member's status in Serf's view (serf `MemberStatus`).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberStatus {
    /// Not known.
    None,
    /// Alive.
    Alive,
    /// Announced it is leaving (or was force-left while alive).
    Leaving,
    /// Left gracefully.
    Left,
    /// Failed: declared dead by the failure detector without having left.
    Failed,
}

impl MemberStatus {
    /// The name the agent and RPC use: "alive", "leaving", "left", "failed", "none".
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::None => "none",
            MemberStatus::Alive => "alive",
            MemberStatus::Leaving => "leaving",
            MemberStatus::Left => "left",
            MemberStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member of the cluster as this node sees it. Cheap to clone.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its unique name.
    pub name: Name,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its tags.
    pub tags: Arc<Tags>,
    /// Its status.
    pub status: MemberStatus,
    /// Protocol versions: memberlist `[min, max, cur]`, then Serf's.
    pub protocol: [u8; 6],
}

/// An insertion-ordered set of names with O(1) insert, remove and random access: removal
/// moves the last name into the hole. Used for the failed, left and alive lists, which
/// change on every status change and are sampled at random.
#[derive(Debug)]
pub(crate) struct NameSet {
    names: Vec<Name>,
    index: hashbrown::HashMap<Name, usize, foldhash::fast::FixedState>,
}

impl NameSet {
    pub fn new(seed: u64) -> Self {
        NameSet {
            names: Vec::new(),
            index: hashbrown::HashMap::with_hasher(foldhash::fast::FixedState::with_seed(seed)),
        }
    }

    pub fn insert(&mut self, name: Name) -> bool {
        if self.index.contains_key(name.as_str()) {
            return false;
        }
        self.index.insert(name.clone(), self.names.len());
        self.names.push(name);
        true
    }

    pub fn remove(&mut self, name: &str) -> bool {
        let Some(i) = self.index.remove(name) else {
            return false;
        };
        self.names.swap_remove(i);
        if let Some(moved) = self.names.get(i) {
            // The name that filled the hole is in the index: it was in the set.
            *self.index.get_mut(moved.as_str()).expect("indexed") = i;
        }
        true
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn get(&self, i: usize) -> &Name {
        &self.names[i]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Name> {
        self.names.iter()
    }
}

/// A member table entry.
#[derive(Debug, Clone)]
pub(crate) struct MemberState {
    pub member: Member,
    /// The Lamport time of the last join or leave intent applied.
    pub status_ltime: LamportTime,
    /// When it failed or left (for reaping).
    pub leave_time: Option<Instant>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn name_set_keeps_its_index_through_removals() {
        let mut s = NameSet::new(1);
        for i in 0..50 {
            assert!(s.insert(Name::new(&format!("n{i}")).unwrap()));
        }
        assert!(!s.insert(Name::new("n3").unwrap()));
        for i in (0..50).step_by(3) {
            assert!(s.remove(&format!("n{i}")));
        }
        assert!(!s.remove("n0"));
        assert_eq!(s.len(), 33);
        for i in 0..s.len() {
            let n = s.get(i).clone();
            assert!(s.remove(&n));
            assert!(s.insert(n));
        }
        assert_eq!(s.len(), 33);
    }

    proptest! {
        #[test]
        fn tags_roundtrip(tags in proptest::collection::btree_map("[a-z_]{0,10}", ".{0,20}", 0..8)) {
            let mut out = Vec::new();
            encode_tags(&tags, &mut out);
            prop_assert_eq!(decode_tags(&out).unwrap(), tags);
        }

        #[test]
        fn arbitrary_meta_never_panics(meta in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_tags(&meta);
        }
    }
}
