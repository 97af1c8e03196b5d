//! Node names: the identity of a member across the cluster.
//!
//! Every member table entry, message and event carries names, so the type is small (24
//! bytes) and cheap to clone: names up to 22 bytes live inline with no allocation (typical
//! host names and simulator names), longer ones share one reference-counted buffer.

use core::borrow::Borrow;
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::ops::Deref;
use std::sync::Arc;

/// The longest node name accepted, in bytes. Go memberlist has no limit on the wire; we
/// bound it so that hostile input cannot make us keep huge names.
pub const MAX_NAME_LEN: usize = 255;

const INLINE: usize = 22;

/// A node name. Cheap to clone; compares and hashes as its string.
#[derive(Clone)]
pub struct Name(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<str>),
}

/// Why a string is not a valid node name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("node name is empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("node name is {0} bytes long; the limit is {MAX_NAME_LEN}")]
    TooLong(usize),
    /// The name contains a control character (a newline, a carriage return, NUL, ...),
    /// which would let it forge lines in snapshot files and logs.
    #[error("node name contains a control character; use printable characters only")]
    Control,
}

/// Whether `s` has a control character (Unicode `Cc`: C0, DEL and C1).
pub(crate) fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

impl Name {
    /// A validated name.
    pub fn new(s: &str) -> Result<Name, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong(s.len()));
        }
        if has_control(s) {
            return Err(NameError::Control);
        }
        Ok(Name::from_str_unchecked(s))
    }

    /// A name from a string already known to be within limits (or empty, used as "none").
    pub(crate) fn from_str_unchecked(s: &str) -> Name {
        if s.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            // Cannot truncate: s.len() <= INLINE < 256.
            Name(Repr::Inline {
                len: s.len() as u8,
                bytes,
            })
        } else {
            Name(Repr::Shared(Arc::from(s)))
        }
    }

    /// The name's bytes (UTF-8), without re-checking them: comparisons and hashing use
    /// this on hot paths (member lookups in every push-pull merge).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..*len as usize],
            Repr::Shared(s) => s.as_bytes(),
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                // The bytes were copied from a &str, so they are valid UTF-8; a failure here
                // would be a bug in this module.
                core::str::from_utf8(&bytes[..*len as usize]).expect("inline name is utf-8")
            }
            Repr::Shared(s) => s,
        }
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for Name {}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Name {
    fn cmp(&self, other: &Name) -> Ordering {
        // UTF-8 byte order is code point order, as `str`'s.
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Exactly what `str`'s Hash does (bytes, then a 0xff terminator), so that maps keyed
        // by `Name` can be searched with a `&str` (`Borrow<str>`); a test checks it.
        state.write(self.as_bytes());
        state.write_u8(0xff);
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<&str> for Name {
    type Error = NameError;
    fn try_from(s: &str) -> Result<Name, NameError> {
        Name::new(s)
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;
    fn try_from(s: String) -> Result<Name, NameError> {
        Name::new(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused() {
        for bad in ["a\nleave", "x\r", "nul\0", "del\u{7f}", "c1\u{85}"] {
            assert_eq!(Name::new(bad), Err(NameError::Control), "{bad:?}");
        }
        assert!(Name::new("ünïcode name.example").is_ok());
    }

    #[test]
    fn inline_and_shared_compare_equal_to_their_strings() {
        let short = Name::new("node-1").unwrap();
        let long = Name::new("a-rather-long-node-name-that-is-shared.example.com").unwrap();
        assert_eq!(short.as_str(), "node-1");
        assert_eq!(
            long.as_str(),
            "a-rather-long-node-name-that-is-shared.example.com"
        );
        assert_eq!(short, Name::new("node-1").unwrap());
        assert!(long < short, "names order as their strings");
        assert_eq!(core::mem::size_of::<Name>(), 24);
    }

    #[test]
    fn hashes_like_its_string() {
        use core::hash::BuildHasher;
        let h = foldhash::fast::FixedState::with_seed(7);
        for s in [
            "a",
            "node-1",
            "a-rather-long-node-name-that-is-shared.example.com",
            "é",
        ] {
            let n = Name::new(s).unwrap();
            assert_eq!(h.hash_one(&n), h.hash_one(s));
            let mut m: hashbrown::HashMap<Name, u8, _> = hashbrown::HashMap::with_hasher(h.clone());
            m.insert(n, 1);
            assert_eq!(m.get(s), Some(&1));
        }
    }

    #[test]
    fn rejects_empty_and_too_long() {
        assert_eq!(Name::new(""), Err(NameError::Empty));
        let s = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(Name::new(&s), Err(NameError::TooLong(MAX_NAME_LEN + 1)));
        assert!(Name::new(&"x".repeat(MAX_NAME_LEN)).is_ok());
    }
}
