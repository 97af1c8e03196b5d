//! Node sets: which nodes an action, a group or a link rule applies to.

use serde::{Deserialize, Serialize};

/// A set of nodes. In TOML: an array of indices, or a string:
/// `"all"`, `"seeds"`, `"3..10"`, `"0%..50%"`, `"random 5"`, `"random 5%"` (or just
/// `"5%"`), a group name, or `"@label"` (the nodes an earlier action chose).
#[derive(Debug, Clone, PartialEq)]
pub enum NodeSet {
    /// Every node.
    All,
    /// The bootstrap seeds.
    Seeds,
    /// These nodes.
    List(Vec<u32>),
    /// A range of indices, end exclusive.
    Range(Bound, Bound),
    /// This many nodes drawn at random, when the action fires, from the eligible ones
    /// (seeds excluded, so the cluster keeps its entry points).
    Random(Bound),
    /// A named group.
    Group(String),
    /// The nodes an earlier action with this `label` chose.
    Label(String),
}

/// A count or index, absolute or as a percentage of the cluster size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// An absolute number.
    Abs(usize),
    /// Percent of the number of nodes.
    Pct(f64),
}

impl Bound {
    /// The value for a cluster of `n`.
    pub fn of(self, n: usize) -> usize {
        match self {
            Bound::Abs(v) => v,
            Bound::Pct(p) => ((p / 100.0) * n as f64).round() as usize,
        }
    }

    fn parse(s: &str) -> Result<Bound, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("bad percentage `{s}`"))?;
            return Ok(Bound::Pct(v));
        }
        s.parse()
            .map(Bound::Abs)
            .map_err(|_| format!("bad number `{s}`"))
    }

    fn show(self) -> String {
        match self {
            Bound::Abs(v) => v.to_string(),
            Bound::Pct(p) => format!("{p}%"),
        }
    }
}

impl NodeSet {
    /// Parses the string form.
    pub fn parse(s: &str) -> Result<NodeSet, String> {
        let s = s.trim();
        if s == "all" {
            return Ok(NodeSet::All);
        }
        if s == "seeds" {
            return Ok(NodeSet::Seeds);
        }
        if let Some(l) = s.strip_prefix('@') {
            return Ok(NodeSet::Label(l.to_string()));
        }
        if let Some(r) = s.strip_prefix("random ") {
            return Bound::parse(r).map(NodeSet::Random);
        }
        if let Some((a, b)) = s.split_once("..") {
            return Ok(NodeSet::Range(Bound::parse(a)?, Bound::parse(b)?));
        }
        if s.ends_with('%') {
            return Bound::parse(s).map(NodeSet::Random);
        }
        if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() {
            return Ok(NodeSet::List(vec![s.parse().map_err(|_| "bad index")?]));
        }
        if s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("`{s}` is not a node set"));
        }
        Ok(NodeSet::Group(s.to_string()))
    }

    /// Checks that the set fits a cluster of `n` nodes: every index below `n`, a range
    /// that ends at `n` at most and does not run backwards, percentages up to 100, a
    /// random draw of at most `n`. A set that names nodes the cluster does not have
    /// would otherwise do less than it says, without a word.
    pub fn check_bounds(&self, n: usize) -> Result<(), String> {
        let pct = |b: Bound| match b {
            Bound::Pct(p) if !(0.0..=100.0).contains(&p) => Err(format!(
                "`{}`: {p}% is not a percentage between 0 and 100",
                self.show()
            )),
            _ => Ok(()),
        };
        match *self {
            NodeSet::List(ref v) => match v.iter().find(|&&i| i as usize >= n) {
                Some(i) => Err(format!(
                    "node {i} does not exist: the run has {n} nodes, numbered 0 to {}; use \
                     an index below {n} or a percentage (`\"50%..100%\"`)",
                    n - 1
                )),
                None => Ok(()),
            },
            NodeSet::Range(a, b) => {
                pct(a)?;
                pct(b)?;
                let (lo, hi) = (a.of(n), b.of(n));
                if hi > n {
                    Err(format!(
                        "`{}` runs past the last node: the run has {n} nodes, so a range \
                         ends at {n} at most (or write it in percent, `\"..100%\"`)",
                        self.show()
                    ))
                } else if lo > hi {
                    Err(format!("`{}` runs backwards ({lo} > {hi})", self.show()))
                } else {
                    Ok(())
                }
            }
            NodeSet::Random(k) => {
                pct(k)?;
                if k.of(n) > n {
                    Err(format!(
                        "`{}` draws more nodes than the run has ({n})",
                        self.show()
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// The set as a scenario file writes it.
    pub fn show(&self) -> String {
        match self {
            NodeSet::All => "all".into(),
            NodeSet::Seeds => "seeds".into(),
            NodeSet::List(v) => format!("{v:?}"),
            NodeSet::Range(a, b) => format!("{}..{}", a.show(), b.show()),
            NodeSet::Random(b) => format!("random {}", b.show()),
            NodeSet::Group(g) => g.clone(),
            NodeSet::Label(l) => format!("@{l}"),
        }
    }
}

impl Serialize for NodeSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            NodeSet::List(v) => v.serialize(s),
            other => s.serialize_str(&other.show()),
        }
    }
}

impl<'de> Deserialize<'de> for NodeSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            List(Vec<u32>),
            One(u32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::List(v) => Ok(NodeSet::List(v)),
            Raw::One(i) => Ok(NodeSet::List(vec![i])),
            Raw::Text(s) => NodeSet::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_sets_parse() {
        assert_eq!(NodeSet::parse("all").unwrap(), NodeSet::All);
        assert_eq!(
            NodeSet::parse("0%..50%").unwrap(),
            NodeSet::Range(Bound::Pct(0.0), Bound::Pct(50.0))
        );
        assert_eq!(
            NodeSet::parse("5%").unwrap(),
            NodeSet::Random(Bound::Pct(5.0))
        );
        assert_eq!(
            NodeSet::parse("random 4").unwrap(),
            NodeSet::Random(Bound::Abs(4))
        );
        assert_eq!(
            NodeSet::parse("@gone").unwrap(),
            NodeSet::Label("gone".into())
        );
        assert_eq!(
            NodeSet::parse("slow").unwrap(),
            NodeSet::Group("slow".into())
        );
        assert!(NodeSet::parse("a b").is_err());
        assert_eq!(Bound::Pct(5.0).of(1000), 50);
    }
}
