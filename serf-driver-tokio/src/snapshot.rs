//! The snapshot file: the core's [`Record`]s appended in Go serf's line format, replayed
//! at start so a restarted node rejoins the members it knew without a seed (go-serf.md
//! §1.11).
//!
//! Policy, as Go's: records are appended to a buffer flushed every 500 ms; when the file
//! passes `max(2 × 128 B × alive members, 128 KiB)` it is compacted (the alive members and
//! the three clocks written to `<path>.compact`, synced, renamed over the file); shutdown
//! flushes and syncs. Unlike Go, records never pass through a channel that drops: they go
//! to the writer thread on their own unbounded queue, and the writer keeps the replayed
//! state in memory, so after a write error the next compaction (retried every 30 s)
//! rewrites everything that was lost.

use serf_proto::serf::{Record, SnapshotState};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
const BYTES_PER_NODE: u64 = 128;
const COMPACTION_THRESHOLD: u64 = 2;
const SIZE_LIMIT: u64 = 128 * 1024;
const RETRY_INTERVAL: Duration = Duration::from_secs(30);

/// Why a snapshot file could not be used. The node did not start.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// The file exists but could not be read, or could not be written.
    #[error("snapshot {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line of the file is not a snapshot record. The file is left as it is: fix or
    /// remove the line (or the file, losing the rejoin and the event clocks).
    #[error(
        "snapshot {path} line {line}: {reason}; fix or delete that line, or move the file away"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads the snapshot at `path`: an absent file is an empty state; a torn last line (no
/// newline: the process died while appending it) is ignored; any other bad line is an
/// error naming the file and the line.
pub fn replay(path: &Path, rejoin_after_leave: bool) -> Result<SnapshotState, SnapshotFileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SnapshotState::default()),
        Err(source) => {
            return Err(SnapshotFileError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    // Drop a torn tail before reading: everything up to the last newline was written
    // whole.
    let whole = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => &bytes[..=i],
        None => &[][..],
    };
    let corrupt = |line: usize, reason: String| SnapshotFileError::Corrupt {
        path: path.to_owned(),
        line,
        reason,
    };
    let text = std::str::from_utf8(whole).map_err(|e| {
        let line = whole[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        corrupt(line, "not UTF-8 text".into())
    })?;
    SnapshotState::parse(text, rejoin_after_leave).map_err(|e| corrupt(e.line, e.reason))
}

/// The writer: a thread that owns the file.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: Option<mpsc::Sender<Record>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Compacts the file to `state` at once (which also drops a torn tail), then appends
    /// what follows.
    pub fn start(
        path: PathBuf,
        state: SnapshotState,
        rejoin_after_leave: bool,
    ) -> Result<Writer, SnapshotFileError> {
        let mut file = SnapshotFile {
            path,
            state,
            rejoin_after_leave,
            out: None,
            offset: 0,
            last_attempt: None,
        };
        file.compact().map_err(|source| SnapshotFileError::Io {
            path: file.path.clone(),
            source,
        })?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("serf-snapshot".into())
            .spawn(move || file.run(rx))
            .map_err(|source| SnapshotFileError::Io {
                path: PathBuf::from("<snapshot thread>"),
                source,
            })?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues a record; never blocks, never drops.
    pub fn append(&self, record: Record) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(record);
        }
    }

    /// Flushes, syncs and stops the thread; returns once the file is closed.
    pub fn finish(mut self) -> Option<std::thread::JoinHandle<()>> {
        self.tx = None;
        self.thread.take()
    }
}

struct SnapshotFile {
    path: PathBuf,
    state: SnapshotState,
    rejoin_after_leave: bool,
    out: Option<BufWriter<File>>,
    offset: u64,
    last_attempt: Option<Instant>,
}

impl SnapshotFile {
    fn run(mut self, rx: mpsc::Receiver<Record>) {
        let mut last_flush = Instant::now();
        loop {
            match rx.recv_timeout(FLUSH_INTERVAL) {
                Ok(record) => self.append(&record),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if last_flush.elapsed() >= FLUSH_INTERVAL {
                self.flush();
                last_flush = Instant::now();
            }
        }
        self.flush();
        if let Some(out) = &self.out {
            let _ = out.get_ref().sync_all();
        }
    }

    fn append(&mut self, record: &Record) {
        self.state.apply(record, self.rejoin_after_leave);
        let line = record.to_line();
        let ok = match self.out.as_mut() {
            Some(out) => writeln!(out, "{line}").is_ok(),
            None => false,
        };
        if ok {
            self.offset += line.len() as u64 + 1;
        } else {
            // The file is broken: the state in memory has everything; rewrite it by
            // compaction, not more often than every 30 s.
            self.out = None;
        }
        let limit =
            (COMPACTION_THRESHOLD * BYTES_PER_NODE * self.state.alive.len() as u64).max(SIZE_LIMIT);
        let retry = self.out.is_none()
            && self
                .last_attempt
                .is_none_or(|t| t.elapsed() >= RETRY_INTERVAL);
        if self.offset > limit || retry {
            let _ = self.compact();
        }
    }

    fn flush(&mut self) {
        if let Some(out) = self.out.as_mut()
            && out.flush().is_err()
        {
            self.out = None;
        }
    }

    /// Writes `<path>.compact` with the state, syncs it, and renames it over the file.
    fn compact(&mut self) -> std::io::Result<()> {
        self.last_attempt = Some(Instant::now());
        self.flush();
        self.out = None;
        let tmp = self.path.with_extension("compact");
        let mut text = String::new();
        for r in self.state.records() {
            text.push_str(&r.to_line());
            text.push('\n');
        }
        if self.state.left {
            text.push_str("leave\n");
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        let f = OpenOptions::new().append(true).open(&self.path)?;
        self.offset = text.len() as u64;
        self.out = Some(BufWriter::new(f));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serf_proto::Name;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("serf-snapshot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn records_survive_a_restart_and_a_torn_tail_is_ignored() {
        let d = dir("roundtrip");
        let path = d.join("snap");
        let w = Writer::start(path.clone(), SnapshotState::default(), false).unwrap();
        w.append(Record::Alive {
            name: Name::new("a").unwrap(),
            addr: "127.0.0.1:7946".parse().unwrap(),
        });
        w.append(Record::Clock(9));
        w.finish().unwrap().join().unwrap();
        // A crash in the middle of an append.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"alive: b 127.0.0.1:79").unwrap();
        let s = replay(&path, false).unwrap();
        assert_eq!(s.alive.len(), 1, "the torn line is not believed");
        assert_eq!(s.clock, 9);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_corrupt_line_is_an_error_naming_the_file_and_line() {
        let d = dir("corrupt");
        let path = d.join("snap");
        std::fs::write(&path, "clock: 3\nalive: a 127.0.0.1:1\nbogus record\n").unwrap();
        let e = replay(&path, false).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("snap"), "{e}");
        std::fs::write(&path, b"clock: 3\n\xff\xfe\n").unwrap();
        let e = replay(&path, false).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("UTF-8"), "{e}");
        assert!(replay(&d.join("absent"), false).unwrap().alive.is_empty());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn the_file_is_compacted_past_its_limit() {
        let d = dir("compact");
        let path = d.join("snap");
        let w = Writer::start(path.clone(), SnapshotState::default(), false).unwrap();
        for c in 0..20_000 {
            w.append(Record::Clock(c));
        }
        w.finish().unwrap().join().unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len <= SIZE_LIMIT + 64, "compacted: {len} bytes");
        assert_eq!(replay(&path, false).unwrap().clock, 19_999);
        std::fs::remove_dir_all(d).unwrap();
    }
}
