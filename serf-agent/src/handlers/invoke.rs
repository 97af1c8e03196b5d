//! One run of a handler script: its environment and stdin from the event (Go's
//! `invoke.go`), `/bin/sh -c`, and the last 8 KiB of its combined output.

use super::SelfInfo;
use bytes::Bytes;
use serf_proto::serf::{Event, Member, QueryHandle};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Go's `maxBufSize`: the most output kept from one run (the last bytes win).
pub const MAX_OUTPUT: usize = 8 * 1024;

/// After the script exits, how long to keep reading output still buffered in the pipe. A
/// script that forks a background process (Go's documented workaround for its blocking
/// handlers) leaves the pipe open; Go then waits for that process too, we do not.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// What a run needs from the event, built once per event and shared by every handler
/// it matches.
#[derive(Debug)]
pub(super) struct Job {
    /// `SERF_EVENT`'s value, also used in logs.
    pub event_type: &'static str,
    /// The variables added to the agent's environment.
    pub env: Vec<(String, String)>,
    /// What the script reads on stdin.
    pub stdin: Bytes,
    /// For a query: where the response goes.
    pub query: Option<QueryHandle>,
}

impl Job {
    /// The job for `event`, or `None` for events handlers never see (acks, responses,
    /// key operations, ...).
    pub fn for_event(event: &Event, me: &SelfInfo) -> Option<Job> {
        let mut env = vec![
            ("SERF_SELF_NAME".to_owned(), me.name.clone()),
            ("SERF_SELF_ROLE".to_owned(), me.role().to_owned()),
        ];
        for (k, v) in &me.tags {
            env.push((format!("SERF_TAG_{}", sanitize_tag_name(k)), v.clone()));
        }
        let (event_type, stdin, query) = match event {
            Event::Member { kind, members } => (kind.as_str(), member_lines(members), None),
            Event::User(u) => {
                env.push(("SERF_USER_EVENT".to_owned(), u.name.clone()));
                env.push(("SERF_USER_LTIME".to_owned(), u.ltime.to_string()));
                ("user", with_newline(&u.payload), None)
            }
            Event::Query(q) => {
                env.push(("SERF_QUERY_NAME".to_owned(), q.name.clone()));
                env.push(("SERF_QUERY_LTIME".to_owned(), q.ltime.to_string()));
                ("query", with_newline(&q.payload), Some(q.handle))
            }
            _ => return None,
        };
        env.insert(0, ("SERF_EVENT".to_owned(), event_type.to_owned()));
        Some(Job {
            event_type,
            env,
            stdin,
            query,
        })
    }
}

/// Go's tag-name rule for `SERF_TAG_<NAME>`: upper-cased, and every character outside
/// `[A-Z0-9_]` becomes `_`.
pub(super) fn sanitize_tag_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Go's `eventClean`: tabs and newlines escaped so each member stays one line of
/// tab-separated fields.
fn clean(v: &str) -> String {
    v.replace('\t', "\\t").replace('\n', "\\n")
}

/// Go's `memberEventStdin`: `name\tip\trole\ttags\n` per member, `tags` as `k=v` joined
/// by `,` (sorted here; Go's order is random).
fn member_lines(members: &[Member]) -> Bytes {
    let mut out = String::new();
    for m in members {
        let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let role = m.tags.get("role").map(String::as_str).unwrap_or("");
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            clean(m.name.as_str()),
            m.addr.ip(),
            clean(role),
            clean(&tags.join(","))
        ));
    }
    Bytes::from(out)
}

/// Go's `streamPayload`: the payload with a newline added when it lacks one; nothing for
/// an empty payload.
fn with_newline(payload: &Bytes) -> Bytes {
    if payload.is_empty() || payload.ends_with(b"\n") {
        return payload.clone();
    }
    let mut v = Vec::with_capacity(payload.len() + 1);
    v.extend_from_slice(payload);
    v.push(b'\n');
    Bytes::from(v)
}

/// How a run ended.
#[derive(Debug)]
pub(super) struct RunOutcome {
    /// The exit status, or why the script could not run.
    pub status: Result<ExitStatus, std::io::Error>,
    /// The last [`MAX_OUTPUT`] bytes of stdout and stderr together.
    pub output: Vec<u8>,
    /// Bytes written in all (more than `output.len()` when truncated).
    pub total_output: u64,
}

/// Runs `shell -c script` with the job's environment and stdin, and collects its output.
/// `on_slow` is called once if the script is still running after `slow_after`.
pub(super) async fn run(
    shell: &str,
    script: &str,
    job: &Job,
    slow_after: Duration,
    on_slow: impl FnOnce(),
) -> RunOutcome {
    let failed = |e| RunOutcome {
        status: Err(e),
        output: Vec::new(),
        total_output: 0,
    };
    // One pipe for stdout and stderr, so their output interleaves as the script wrote it
    // (Go gives both the same buffer).
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return failed(e),
    };
    let mut cmd = tokio::process::Command::new(shell);
    cmd.arg("-c")
        .arg(script)
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(writer)
        .stderr(writer2)
        .kill_on_drop(false);
    let spawned = cmd.spawn();
    // The command holds the pipe's write ends; drop them so the reader sees EOF when the
    // script (and whatever it started) closes its own.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return failed(e),
    };

    // Feed stdin in the background: a script that never reads it must not block us.
    if let Some(mut stdin) = child.stdin.take() {
        let data = job.stdin.clone();
        tokio::spawn(async move {
            // A script may exit without reading stdin (broken pipe): not an error.
            let _ = stdin.write_all(&data).await;
        });
    }

    let mut output = match tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into()) {
        Ok(r) => r,
        Err(e) => {
            let _ = child.start_kill();
            return failed(e);
        }
    };
    let mut ring = Ring::default();
    let mut buf = [0u8; 4096];
    let mut eof = false;
    let mut status = None;
    let slow = tokio::time::sleep(slow_after);
    tokio::pin!(slow);
    let mut on_slow = Some(on_slow);
    let drain = tokio::time::sleep(Duration::MAX);
    tokio::pin!(drain);
    loop {
        tokio::select! {
            r = output.read(&mut buf), if !eof => match r {
                Ok(n) if n > 0 => ring.push(&buf[..n]),
                _ => {
                    eof = true;
                    if status.is_some() { break; }
                }
            },
            s = child.wait(), if status.is_none() => {
                status = Some(s);
                if eof { break; }
                drain.as_mut().reset(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
            }
            () = &mut drain, if status.is_some() => break,
            () = &mut slow, if on_slow.is_some() => {
                if let Some(f) = on_slow.take() { f(); }
            }
        }
    }
    RunOutcome {
        // Cannot be None: the loop only ends after the child was waited for.
        status: status.unwrap_or_else(|| Err(std::io::Error::other("not waited for"))),
        total_output: ring.total,
        output: ring.into_bytes(),
    }
}

/// The last [`MAX_OUTPUT`] bytes written (armon/circbuf in Go).
#[derive(Default)]
struct Ring {
    buf: std::collections::VecDeque<u8>,
    total: u64,
}

impl Ring {
    fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let data = &data[data.len().saturating_sub(MAX_OUTPUT)..];
        let overflow = (self.buf.len() + data.len()).saturating_sub(MAX_OUTPUT);
        self.buf.drain(..overflow);
        self.buf.extend(data);
    }

    fn into_bytes(self) -> Vec<u8> {
        self.buf.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_are_sanitised_as_go_does() {
        assert_eq!(sanitize_tag_name("role"), "ROLE");
        assert_eq!(sanitize_tag_name("dc-name.x"), "DC_NAME_X");
        assert_eq!(sanitize_tag_name("a_1 é"), "A_1__");
    }

    #[test]
    fn the_ring_keeps_the_last_8_kib() {
        let mut r = Ring::default();
        r.push(&[b'a'; 5000]);
        r.push(&[b'b'; 5000]);
        assert_eq!(r.total, 10_000);
        let out = r.into_bytes();
        assert_eq!(out.len(), MAX_OUTPUT);
        assert_eq!(out.iter().filter(|&&c| c == b'b').count(), 5000);
        assert_eq!(out[0], b'a');
        let mut r = Ring::default();
        r.push(&[b'c'; 20_000]);
        assert_eq!(r.into_bytes().len(), MAX_OUTPUT);
    }

    #[test]
    fn payloads_get_one_trailing_newline() {
        assert_eq!(with_newline(&Bytes::from("x")), Bytes::from("x\n"));
        assert_eq!(with_newline(&Bytes::from("x\n")), Bytes::from("x\n"));
        assert_eq!(with_newline(&Bytes::new()), Bytes::new());
    }
}
