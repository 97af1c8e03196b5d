//! Snapshot records: what a node must remember across restarts (serf `snapshot.go`).
//!
//! The core never writes files. It emits [`Record`]s as events; the driver appends them to
//! a file, and on restart replays the file into a [`SnapshotState`] that the core starts
//! from: it rejoins the members it last saw alive and does not replay old events.
//!
//! The line format is Go serf's, so existing snapshot files can be read:
//!
//! ```text
//! alive: node-1 10.0.0.1:7946
//! not-alive: node-2
//! clock: 42
//! event-clock: 7
//! query-clock: 3
//! leave
//! # comments and "coordinate:" lines are ignored
//! ```

use crate::name::Name;
use core::net::SocketAddr;
use std::collections::BTreeMap;

/// One fact to persist.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A member is alive at this address.
    Alive {
        /// The member.
        name: Name,
        /// Its address.
        addr: SocketAddr,
    },
    /// A member failed or left.
    NotAlive {
        /// The member.
        name: Name,
    },
    /// The member (intent) clock.
    Clock(u64),
    /// The user-event clock.
    EventClock(u64),
    /// The query clock.
    QueryClock(u64),
    /// This node left gracefully.
    Leave,
}

/// A line that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot line {line}: {reason}")]
pub struct SnapshotError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl Record {
    /// The record as one line of the snapshot file (without the newline).
    pub fn to_line(&self) -> String {
        match self {
            Record::Alive { name, addr } => format!("alive: {name} {addr}"),
            Record::NotAlive { name } => format!("not-alive: {name}"),
            Record::Clock(c) => format!("clock: {c}"),
            Record::EventClock(c) => format!("event-clock: {c}"),
            Record::QueryClock(c) => format!("query-clock: {c}"),
            Record::Leave => "leave".to_string(),
        }
    }

    /// Parses a line; `Ok(None)` for blank lines, comments and ignored record kinds.
    pub fn parse_line(line: &str) -> Result<Option<Record>, String> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() || line.starts_with('#') || line.starts_with("coordinate: ") {
            return Ok(None);
        }
        if line == "leave" {
            return Ok(Some(Record::Leave));
        }
        let clock = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|e| format!("bad clock {s:?}: {e}"))
        };
        if let Some(rest) = line.strip_prefix("alive: ") {
            let (name, addr) = rest
                .rsplit_once(' ')
                .ok_or_else(|| "alive line without an address".to_string())?;
            let name = Name::new(name).map_err(|e| e.to_string())?;
            let addr = addr
                .parse()
                .map_err(|e| format!("bad address {addr:?}: {e}"))?;
            return Ok(Some(Record::Alive { name, addr }));
        }
        if let Some(name) = line.strip_prefix("not-alive: ") {
            let name = Name::new(name).map_err(|e| e.to_string())?;
            return Ok(Some(Record::NotAlive { name }));
        }
        if let Some(c) = line.strip_prefix("clock: ") {
            return Ok(Some(Record::Clock(clock(c)?)));
        }
        if let Some(c) = line.strip_prefix("event-clock: ") {
            return Ok(Some(Record::EventClock(clock(c)?)));
        }
        if let Some(c) = line.strip_prefix("query-clock: ") {
            return Ok(Some(Record::QueryClock(clock(c)?)));
        }
        Err(format!("unknown record {line:?}"))
    }
}

/// The lines of a snapshot file with their 1-based numbers; a last line that does not
/// end in a newline is an error (a torn append).
fn lines(text: &str) -> impl Iterator<Item = (usize, Result<&str, String>)> {
    let torn = !text.is_empty() && !text.ends_with('\n');
    let count = text.lines().count();
    text.lines().enumerate().map(move |(i, line)| {
        let line = if torn && i + 1 == count {
            Err(format!("torn last line (no newline): {line:?}"))
        } else {
            Ok(line)
        };
        (i + 1, line)
    })
}

/// What a snapshot says, after replaying its records: the compacted state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotState {
    /// Members last seen alive, with their addresses.
    pub alive: BTreeMap<Name, SocketAddr>,
    /// The member clock.
    pub clock: u64,
    /// The user-event clock.
    pub event_clock: u64,
    /// The query clock.
    pub query_clock: u64,
    /// Whether the last thing this node did was leave.
    pub left: bool,
}

impl SnapshotState {
    /// Applies one record. A leave forgets the members and clocks unless
    /// `rejoin_after_leave` is set (as Go's replay does).
    pub fn apply(&mut self, record: &Record, rejoin_after_leave: bool) {
        match record {
            Record::Alive { name, addr } => {
                self.alive.insert(name.clone(), *addr);
                self.left = false;
            }
            Record::NotAlive { name } => {
                self.alive.remove(name);
            }
            Record::Clock(c) => self.clock = self.clock.max(*c),
            Record::EventClock(c) => self.event_clock = self.event_clock.max(*c),
            Record::QueryClock(c) => self.query_clock = self.query_clock.max(*c),
            Record::Leave => {
                if !rejoin_after_leave {
                    self.alive.clear();
                    self.clock = 0;
                    self.event_clock = 0;
                    self.query_clock = 0;
                }
                self.left = true;
            }
        }
    }

    /// Replays a snapshot file's text, skipping lines that cannot be parsed, as Go's
    /// replay does: one bad record must not cost the node every member it knew. A last
    /// line without its newline is a torn append (the process died while writing it) and
    /// is skipped even when what is left of it parses: `alive: a 10.0.0.3:79` may be
    /// the start of `:7946`. Returns the state and each skipped line's error, for the
    /// driver to log.
    pub fn parse_lossy(
        text: &str,
        rejoin_after_leave: bool,
    ) -> (SnapshotState, Vec<SnapshotError>) {
        let mut s = SnapshotState::default();
        let mut skipped = Vec::new();
        for (i, line) in lines(text) {
            match line.and_then(Record::parse_line) {
                Ok(Some(r)) => s.apply(&r, rejoin_after_leave),
                Ok(None) => {}
                Err(reason) => skipped.push(SnapshotError { line: i, reason }),
            }
        }
        (s, skipped)
    }

    /// Replays a snapshot file's text; the first line that cannot be parsed, or a last
    /// line without its newline, is an error. See [`SnapshotState::parse_lossy`] to skip
    /// such lines instead.
    pub fn parse(text: &str, rejoin_after_leave: bool) -> Result<SnapshotState, SnapshotError> {
        let (state, skipped) = SnapshotState::parse_lossy(text, rejoin_after_leave);
        match skipped.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(state),
        }
    }

    /// The records that recreate this state: what a compacted snapshot file holds.
    pub fn records(&self) -> Vec<Record> {
        let mut out: Vec<Record> = self
            .alive
            .iter()
            .map(|(name, addr)| Record::Alive {
                name: name.clone(),
                addr: *addr,
            })
            .collect();
        out.push(Record::Clock(self.clock));
        out.push(Record::EventClock(self.event_clock));
        out.push(Record::QueryClock(self.query_clock));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes, however corrupt, give an error or a state, never a panic.
        #[test]
        fn arbitrary_text_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = SnapshotState::parse_lossy(&text, false);
            let _ = SnapshotState::parse(&text, true);
        }

        /// A file of good records with garbage lines among them: the lossy replay applies
        /// exactly the good records (a torn last line excepted) and reports exactly the
        /// bad lines by number; the strict replay fails at the first bad line.
        #[test]
        fn lossy_replay_skips_exactly_the_bad_lines(
            lines in proptest::collection::vec(
                prop_oneof![
                    3 => arb_record().prop_map(Ok),
                    1 => "![^\n]{0,30}".prop_map(Err),
                ],
                0..30,
            ),
            newline_at_end in any::<bool>(),
        ) {
            let mut text: String = lines
                .iter()
                .map(|l| match l {
                    Ok(r) => r.to_line(),
                    Err(garbage) => garbage.clone(),
                })
                .collect::<Vec<_>>()
                .join("\n");
            let torn = !newline_at_end && !lines.is_empty();
            if newline_at_end && !lines.is_empty() {
                text.push('\n');
            }
            let mut want = SnapshotState::default();
            let mut bad = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                match l {
                    Ok(_) if torn && i + 1 == lines.len() => bad.push(i + 1),
                    Ok(r) => want.apply(r, false),
                    Err(_) => bad.push(i + 1),
                }
            }
            let (state, skipped) = SnapshotState::parse_lossy(&text, false);
            prop_assert_eq!(&state, &want);
            prop_assert_eq!(skipped.iter().map(|e| e.line).collect::<Vec<_>>(), bad.clone());
            match SnapshotState::parse(&text, false) {
                Ok(strict) => {
                    prop_assert!(bad.is_empty());
                    prop_assert_eq!(strict, want);
                }
                Err(e) => prop_assert_eq!(Some(e.line), bad.first().copied()),
            }
        }

        /// Records written by `to_line` read back as themselves.
        #[test]
        fn records_round_trip(r in arb_record()) {
            prop_assert_eq!(Record::parse_line(&r.to_line()), Ok(Some(r)));
        }
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        // Any printable name, spaces inside and at the ends included.
        let name = "[^\\p{Cc}]{1,40}".prop_map(|n| Name::new(&n).unwrap());
        let addr = prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        ];
        prop_oneof![
            (name.clone(), addr).prop_map(|(name, addr)| Record::Alive { name, addr }),
            name.prop_map(|name| Record::NotAlive { name }),
            any::<u64>().prop_map(Record::Clock),
            any::<u64>().prop_map(Record::EventClock),
            any::<u64>().prop_map(Record::QueryClock),
            Just(Record::Leave),
        ]
    }

    #[test]
    fn a_torn_last_line_costs_only_itself_in_the_lossy_replay() {
        // Cut from "alive: c 10.0.0.3:7946\n": what is left still parses, but must not
        // be believed.
        let text = "alive: a 10.0.0.1:1\nalive: b 10.0.0.2:1\nclock: 9\nalive: c 10.0.0.3:79";
        assert_eq!(SnapshotState::parse(text, false).unwrap_err().line, 4);
        let (s, skipped) = SnapshotState::parse_lossy(text, false);
        assert_eq!(s.alive.len(), 2);
        assert_eq!(s.clock, 9);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].line, 4);
        assert!(skipped[0].reason.contains("torn"), "{}", skipped[0].reason);
        // A bad line in the middle costs only itself too.
        let text = "alive: a 10.0.0.1:1\nalive: b 10.0.0.2:bad\nnot-alive: a\nclock: 3\n";
        let (s, skipped) = SnapshotState::parse_lossy(text, false);
        assert!(s.alive.is_empty());
        assert_eq!(s.clock, 3);
        assert_eq!(skipped.iter().map(|e| e.line).collect::<Vec<_>>(), [2]);
        assert!(
            skipped[0].reason.contains("bad address"),
            "{}",
            skipped[0].reason
        );
    }

    #[test]
    fn a_name_cannot_forge_snapshot_lines() {
        // Names with control characters are refused everywhere (Name::new and the wire
        // decoder), so a record's line is always one line.
        assert!(Name::new("x 10.0.0.9:1\nleave").is_err());
        assert!(Record::parse_line("not-alive: x\rleave").is_err());
    }

    #[test]
    fn reads_go_snapshot_lines_and_compacts() {
        let text = "# serf snapshot\nalive: node-1 10.0.0.1:7946\nalive: with space 10.0.0.9:1\n\
                    alive: node-2 [::1]:7946\nclock: 10\nevent-clock: 4\nnot-alive: node-2\n\
                    coordinate: {}\nquery-clock: 2\nclock: 12\n";
        let s = SnapshotState::parse(text, false).unwrap();
        assert_eq!(s.alive.len(), 2);
        assert_eq!(s.alive[&Name::new("with space").unwrap()].port(), 1);
        assert_eq!((s.clock, s.event_clock, s.query_clock), (12, 4, 2));
        let again: String = s.records().iter().map(|r| r.to_line() + "\n").collect();
        assert_eq!(SnapshotState::parse(&again, false).unwrap(), s);
    }

    #[test]
    fn leave_forgets_unless_rejoining_and_errors_name_the_line() {
        let text = "alive: a 10.0.0.1:1\nclock: 5\nleave\n";
        assert!(SnapshotState::parse(text, false).unwrap().alive.is_empty());
        let kept = SnapshotState::parse(text, true).unwrap();
        assert_eq!(kept.alive.len(), 1);
        assert!(kept.left);
        let err = SnapshotState::parse("clock: 1\nbogus\n", false).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(SnapshotState::parse("alive: a nowhere\n", false).is_err());
    }
}
