//! The agent's log, in HashiCorp's format: `YYYY/MM/DD HH:MM:SS [LEVEL] module: message`.
//!
//! As in Go's agent (`command.go` `setupLoggers`), every line goes to a 512-line ring
//! and to the monitors whatever its level, and to stderr only at or above the configured
//! level (`-log-level`, changed by SIGHUP). `serf monitor` filters by its own level and
//! first replays the ring. A monitor that cannot keep up loses lines (counted), never
//! slowing the agent.

use crate::config::LogLevel;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Lines kept for `serf monitor`'s replay (Go's `NewLogWriter(512)`).
pub const RING_LINES: usize = 512;

/// Lines queued per monitor before new ones are dropped (Go's 512-entry log stream).
pub const MONITOR_BUFFER: usize = 512;

/// HashiCorp's tag for a level: `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERR`.
pub fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "TRACE",
        LogLevel::Debug => "DEBUG",
        LogLevel::Info => "INFO",
        LogLevel::Warn => "WARN",
        LogLevel::Err => "ERR",
    }
}

/// Parses a level name, any case (`Unknown log level` otherwise, as Go's monitor says).
pub fn parse_level(s: &str) -> Option<LogLevel> {
    Some(match s.to_ascii_uppercase().as_str() {
        "TRACE" => LogLevel::Trace,
        "DEBUG" => LogLevel::Debug,
        "INFO" => LogLevel::Info,
        "WARN" => LogLevel::Warn,
        "ERR" => LogLevel::Err,
        _ => return None,
    })
}

fn level_index(level: LogLevel) -> u8 {
    level as u8
}

/// The level of a formatted line, from its `[LEVEL]` tag; lines without one pass every
/// filter, as with logutils.
pub fn line_level(line: &str) -> Option<LogLevel> {
    let start = line.find('[')?;
    let end = start + line[start..].find(']')?;
    parse_level(&line[start + 1..end])
}

struct Monitor {
    id: u64,
    min: LogLevel,
    tx: mpsc::Sender<String>,
}

struct Inner {
    stderr_level: AtomicU8,
    to_stderr: bool,
    /// `enable_syslog`: lines at or above the stderr level also go to syslog.
    syslog: Mutex<Option<Syslog>>,
    ring: Mutex<VecDeque<String>>,
    monitors: Mutex<Vec<Monitor>>,
    next_id: AtomicU64,
    dropped: AtomicU64,
}

/// The agent's logger: cheap to clone, shared by every part of the agent.
#[derive(Clone)]
pub struct Logger {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger").finish_non_exhaustive()
    }
}

/// A registered monitor; dropping it deregisters.
#[derive(Debug)]
pub struct MonitorGuard {
    logger: Logger,
    id: u64,
}

impl Drop for MonitorGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.logger.inner.monitors.lock() {
            m.retain(|m| m.id != self.id);
        }
    }
}

impl Logger {
    /// A logger writing to stderr at `level` and above (`to_stderr` false keeps lines
    /// only for the ring and monitors, for tests).
    pub fn new(level: LogLevel, to_stderr: bool) -> Logger {
        Logger {
            inner: Arc::new(Inner {
                stderr_level: AtomicU8::new(level_index(level)),
                to_stderr,
                syslog: Mutex::new(None),
                ring: Mutex::new(VecDeque::with_capacity(RING_LINES)),
                monitors: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Changes the stderr level (SIGHUP reload).
    pub fn set_level(&self, level: LogLevel) {
        self.inner.stderr_level.store(level_index(level), Relaxed);
    }

    /// Lines monitors could not take in time.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Relaxed)
    }

    /// Logs `message` from `module` (`agent`, `agent.ipc`, `serf`, `memberlist`, …).
    pub fn log(&self, level: LogLevel, module: &str, message: &str) {
        let line = format!(
            "{} [{}] {}: {}",
            timestamp(SystemTime::now()),
            level_name(level),
            module,
            message
        );
        self.write_line(level, line);
    }

    /// Also sends lines at or above the stderr level to the syslog socket at `path`
    /// (`/dev/log` for the system's) with `facility` (`LOCAL0`…`LOCAL7`, `USER`,
    /// `DAEMON`, …), as Go's `enable_syslog` does.
    #[cfg(unix)]
    pub fn enable_syslog(&self, path: &std::path::Path, facility: &str) -> Result<(), String> {
        let code = facility_code(facility).ok_or_else(|| {
            format!(
                "unknown syslog facility {facility:?}: use LOCAL0 to LOCAL7, USER, DAEMON, \
                 AUTH, SYSLOG, KERN, MAIL, LPR, NEWS, UUCP or CRON"
            )
        })?;
        let sock = std::os::unix::net::UnixDatagram::unbound().map_err(|e| e.to_string())?;
        sock.connect(path)
            .map_err(|e| format!("cannot reach syslog at {}: {e}", path.display()))?;
        if let Ok(mut s) = self.inner.syslog.lock() {
            *s = Some(Syslog {
                sock,
                facility: code,
            });
        }
        Ok(())
    }

    fn write_line(&self, level: LogLevel, line: String) {
        let shown = level_index(level) >= self.inner.stderr_level.load(Relaxed);
        if self.inner.to_stderr && shown {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
        if shown
            && let Ok(s) = self.inner.syslog.lock()
            && let Some(s) = s.as_ref()
        {
            s.send(level, &line);
        }
        if let Ok(mut monitors) = self.inner.monitors.lock() {
            for m in monitors.iter_mut() {
                if level >= m.min && m.tx.try_send(line.clone()).is_err() {
                    self.inner.dropped.fetch_add(1, Relaxed);
                }
            }
        }
        if let Ok(mut ring) = self.inner.ring.lock() {
            if ring.len() == RING_LINES {
                ring.pop_front();
            }
            ring.push_back(line);
        }
    }

    /// Logs a line that already names its module (`"agent: …"`), as the handlers and
    /// exporters write them.
    pub fn log_line(&self, level: LogLevel, line: &str) {
        let (module, message) = line.split_once(": ").unwrap_or(("agent", line));
        self.log(level, module, message);
    }

    /// `[INFO]`
    pub fn info(&self, module: &str, message: &str) {
        self.log(LogLevel::Info, module, message);
    }

    /// `[WARN]`
    pub fn warn(&self, module: &str, message: &str) {
        self.log(LogLevel::Warn, module, message);
    }

    /// `[ERR]`
    pub fn err(&self, module: &str, message: &str) {
        self.log(LogLevel::Err, module, message);
    }

    /// `[DEBUG]`
    pub fn debug(&self, module: &str, message: &str) {
        self.log(LogLevel::Debug, module, message);
    }

    /// Registers a monitor at `min` and above: the ring's matching lines first, then new
    /// lines as they are logged. The ring is replayed under the monitors' lock, so no
    /// line is missed or repeated between the replay and the live lines.
    pub fn monitor(&self, min: LogLevel) -> (MonitorGuard, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(MONITOR_BUFFER);
        let id = self.inner.next_id.fetch_add(1, Relaxed);
        let mut monitors = self
            .inner
            .monitors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Ok(ring) = self.inner.ring.lock() {
            for line in ring.iter() {
                if line_level(line).is_none_or(|l| l >= min) && tx.try_send(line.clone()).is_err() {
                    self.inner.dropped.fetch_add(1, Relaxed);
                }
            }
        }
        monitors.push(Monitor { id, min, tx });
        drop(monitors);
        (
            MonitorGuard {
                logger: self.clone(),
                id,
            },
            rx,
        )
    }
}

/// A connected syslog socket.
struct Syslog {
    #[cfg(unix)]
    sock: std::os::unix::net::UnixDatagram,
    facility: u8,
}

impl Syslog {
    /// RFC 3164 over the local socket: `<PRI>serf[PID]: line`; the daemon adds the time
    /// and host. A full or gone socket loses the line: logging never blocks the agent.
    fn send(&self, level: LogLevel, line: &str) {
        // Go's SyslogWrapper: ERR → err, WARN → warning, INFO → info, DEBUG and TRACE →
        // debug.
        let severity = match level {
            LogLevel::Err => 3,
            LogLevel::Warn => 4,
            LogLevel::Info => 6,
            LogLevel::Debug | LogLevel::Trace => 7,
        };
        let msg = format!(
            "<{}>serf[{}]: {line}",
            u32::from(self.facility) * 8 + severity,
            std::process::id()
        );
        #[cfg(unix)]
        let _ = self.sock.send(msg.as_bytes());
    }
}

/// Syslog facility numbers by the names Go's `syslog_facility` takes.
fn facility_code(name: &str) -> Option<u8> {
    Some(match name.to_ascii_uppercase().as_str() {
        "KERN" => 0,
        "USER" => 1,
        "MAIL" => 2,
        "DAEMON" => 3,
        "AUTH" => 4,
        "SYSLOG" => 5,
        "LPR" => 6,
        "NEWS" => 7,
        "UUCP" => 8,
        "CRON" => 9,
        "LOCAL0" => 16,
        "LOCAL1" => 17,
        "LOCAL2" => 18,
        "LOCAL3" => 19,
        "LOCAL4" => 20,
        "LOCAL5" => 21,
        "LOCAL6" => 22,
        "LOCAL7" => 23,
        _ => return None,
    })
}

/// `YYYY/MM/DD HH:MM:SS`, as Go's `log.LstdFlags`, in UTC (Go prints local time; agents
/// run with TZ=UTC in practice, and UTC needs no time-zone database).
pub fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_go_lstdflags() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(timestamp(t), "2023/11/14 22:13:20");
        assert_eq!(timestamp(UNIX_EPOCH), "1970/01/01 00:00:00");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap), "2000/02/29 00:00:00");
    }

    #[test]
    fn monitor_replays_the_ring_at_its_level_then_follows() {
        let log = Logger::new(LogLevel::Info, false);
        for i in 0..600 {
            log.debug("agent", &format!("debug {i}"));
            log.info("agent", &format!("info {i}"));
        }
        let (_guard, mut rx) = log.monitor(LogLevel::Info);
        let mut replayed = Vec::new();
        while let Ok(l) = rx.try_recv() {
            replayed.push(l);
        }
        // The ring holds the last 512 lines of both levels; INFO keeps half.
        assert_eq!(replayed.len(), 256);
        assert!(replayed[0].ends_with("[INFO] agent: info 344"));
        log.warn("agent.ipc", "live");
        log.debug("agent", "filtered");
        assert!(rx.try_recv().unwrap().ends_with("[WARN] agent.ipc: live"));
        assert!(rx.try_recv().is_err());
    }

    #[cfg(unix)]
    #[test]
    fn syslog_gets_lines_at_the_level_with_the_facility() {
        let dir = std::env::temp_dir().join(format!("serf-syslog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        server.set_nonblocking(true).unwrap();
        let log = Logger::new(LogLevel::Info, false);
        assert!(log.enable_syslog(&path, "LOCAL9").is_err());
        log.enable_syslog(&path, "local0").unwrap();
        log.debug("agent", "hidden");
        log.warn("agent", "shown");
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        // LOCAL0 (16) * 8 + warning (4) = 132.
        assert!(got.starts_with("<132>serf["), "{got}");
        assert!(got.ends_with("[WARN] agent: shown"), "{got}");
        assert!(server.recv(&mut buf).is_err(), "DEBUG is below the level");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_slow_monitor_loses_lines_without_blocking() {
        let log = Logger::new(LogLevel::Info, false);
        let (_guard, _rx) = log.monitor(LogLevel::Trace);
        for i in 0..(MONITOR_BUFFER + 10) {
            log.info("agent", &format!("{i}"));
        }
        assert_eq!(log.dropped(), 10);
    }
}
