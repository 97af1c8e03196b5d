//! Event handlers: `[filter=]script` specs run for events and queries (go-serf.md §5.3,
//! go-serf-agent.md §4), with Go's filters, environment, stdin and query responses.
//!
//! Unlike Go's agent, where every handler runs one after another on the event loop and a
//! slow one delays everything (serf #369), here:
//!
//! - [`Handlers::dispatch`] never blocks: it queues the event for each matching handler
//!   and returns;
//! - each handler has its own queue and task, so it sees its events in order while a slow
//!   handler never delays another one or the agent;
//! - at most [`HandlerOptions::max_running`] scripts run at once across all handlers;
//! - a queue holds at most [`HandlerOptions::queue_len`] events; beyond that new events
//!   for that handler are dropped, counted and logged;
//! - a script still running after 1 s is logged as slow; a failing one is logged with its
//!   output. Neither is ever fatal.
//!
//! A handler for a query answers it with its output (stdout and stderr together, the last
//! 8 KiB) when it exits 0 and printed something, through the respond callback given at
//! construction.
//!
//! ```no_run
//! # async fn demo(event: serf_proto::serf::Event) {
//! use serf_agent::handlers::{Handlers, SelfInfo};
//! use std::sync::Arc;
//! let handlers = Handlers::new(
//!     &["member-join,member-leave=./membership.sh".to_owned(), "query:uptime=uptime".to_owned()],
//!     Arc::new(|handle, response| { /* node.respond(handle, response) */ }),
//!     Arc::new(|level, line| eprintln!("[{}] agent: {line}", level.as_str())),
//! )
//! .unwrap();
//! let me = SelfInfo { name: "web-1".into(), tags: Default::default() };
//! handlers.dispatch(&event, &me);
//! # }
//! ```

mod invoke;
mod spec;

pub use invoke::MAX_OUTPUT;
pub use spec::{EventFilter, EventKind, HandlerError, HandlerSpec, parse_event_filter, parse_spec};

use crate::config::LogLevel;
use bytes::Bytes;
use invoke::Job;
use serf_proto::serf::{Event, QueryHandle, Tags};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc};

/// Sends a query response: the agent passes it on to the node (`SerfHandle::respond`).
pub type RespondFn = Arc<dyn Fn(QueryHandle, Bytes) + Send + Sync>;
/// Writes one line to the agent's log at a level.
pub type LogFn = Arc<dyn Fn(LogLevel, String) + Send + Sync>;

/// The agent's own identity, as handlers see it in `SERF_SELF_*` and `SERF_TAG_*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfInfo {
    /// This node's name (`SERF_SELF_NAME`).
    pub name: String,
    /// This node's tags (`SERF_TAG_<NAME>`); the `role` tag is `SERF_SELF_ROLE`.
    pub tags: Tags,
}

impl SelfInfo {
    /// The `role` tag, or empty.
    pub fn role(&self) -> &str {
        self.tags.get("role").map(String::as_str).unwrap_or("")
    }
}

/// Limits and timings of the handlers. [`Default`] gives the values documented on each
/// field.
#[derive(Debug, Clone)]
pub struct HandlerOptions {
    /// Most scripts running at once, over all handlers. 16: enough that a few slow
    /// handlers do not hold up the others, few enough that an event storm cannot fork
    /// hundreds of shells.
    pub max_running: usize,
    /// Most events waiting per handler. 256; beyond it new events for that handler are
    /// dropped and counted.
    pub queue_len: usize,
    /// After this long a running script is logged as slow. 1 s (Go's `warnSlow`).
    pub slow_after: Duration,
    /// A query response larger than this is not sent (logged instead). 1024, Go's
    /// `query_response_size_limit`; the agent passes its configured value.
    pub response_size_limit: usize,
    /// The shell scripts run with, as `shell -c script`. `/bin/sh`.
    pub shell: String,
}

impl Default for HandlerOptions {
    fn default() -> Self {
        HandlerOptions {
            max_running: 16,
            queue_len: 256,
            slow_after: Duration::from_secs(1),
            response_size_limit: 1024,
            shell: "/bin/sh".to_owned(),
        }
    }
}

/// Counters of the handlers, for `serf info` and the metrics exporters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandlerStats {
    /// Scripts started.
    pub runs: u64,
    /// Scripts that could not start, or exited with an error.
    pub failures: u64,
    /// Events not handed to a handler because its queue was full.
    pub drops: u64,
    /// Scripts running now.
    pub running: u64,
    /// Events waiting in the queues now.
    pub queued: u64,
    /// Query responses sent from handler output.
    pub responses: u64,
}

impl HandlerStats {
    /// Every figure as (name, help, value, is_counter); `running` and `queued` are gauges.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &'static str, u64, bool)> {
        [
            (
                "handler_runs",
                "Event handler scripts started.",
                self.runs,
                true,
            ),
            (
                "handler_failures",
                "Event handler scripts that failed to start or exited with an error.",
                self.failures,
                true,
            ),
            (
                "handler_drops",
                "Events dropped because a handler's queue was full.",
                self.drops,
                true,
            ),
            (
                "handler_running",
                "Event handler scripts running now.",
                self.running,
                false,
            ),
            (
                "handler_queued",
                "Events waiting for their handler now.",
                self.queued,
                false,
            ),
            (
                "handler_query_responses",
                "Query responses sent from handler output.",
                self.responses,
                true,
            ),
        ]
        .into_iter()
    }
}

#[derive(Default)]
struct Counters {
    runs: AtomicU64,
    failures: AtomicU64,
    drops: AtomicU64,
    running: AtomicU64,
    queued: AtomicU64,
    responses: AtomicU64,
}

/// The agent's event handlers. Cheap to clone (all clones share the handlers). Created
/// inside a tokio runtime, whose tasks run the handlers; after that any thread may
/// dispatch or reload.
#[derive(Clone)]
pub struct Handlers {
    inner: Arc<Inner>,
    /// Kept apart from `inner`, which the handler tasks hold: when the last `Handlers` is
    /// dropped the queues' senders go with it, and each task ends once its queue is empty.
    workers: Arc<Mutex<Vec<Worker>>>,
}

/// What the handler tasks share with the `Handlers`.
struct Inner {
    runtime: tokio::runtime::Handle,
    permits: Arc<Semaphore>,
    counters: Counters,
    idle: Notify,
    respond: RespondFn,
    log: LogFn,
    options: HandlerOptions,
}

/// One handler: its spec and the queue its task reads.
struct Worker {
    spec: Arc<HandlerSpec>,
    queue: mpsc::Sender<Arc<Job>>,
    /// When a drop was last logged, so a storm logs one line a second, not one per event.
    last_drop_log: Arc<Mutex<Option<std::time::Instant>>>,
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handlers")
            .field("specs", &self.specs())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Handlers {
    /// Handlers for `specs` (`[filter=]script` each) with the default options. An invalid
    /// spec is refused with a message naming it, and nothing starts.
    pub fn new(specs: &[String], respond: RespondFn, log: LogFn) -> Result<Handlers, HandlerError> {
        Handlers::with_options(specs, respond, log, HandlerOptions::default())
    }

    /// Handlers with explicit limits.
    pub fn with_options(
        specs: &[String],
        respond: RespondFn,
        log: LogFn,
        options: HandlerOptions,
    ) -> Result<Handlers, HandlerError> {
        let parsed = parse_all(specs)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| HandlerError::NoRuntime)?;
        let handlers = Handlers {
            workers: Arc::default(),
            inner: Arc::new(Inner {
                runtime,
                permits: Arc::new(Semaphore::new(options.max_running.max(1))),
                counters: Counters::default(),
                idle: Notify::new(),
                respond,
                log,
                options,
            }),
        };
        let workers = parsed
            .into_iter()
            .map(|s| handlers.start_worker(s))
            .collect();
        *handlers.workers() = workers;
        Ok(handlers)
    }

    /// Replaces the handlers (SIGHUP). All specs are checked first; on error the old
    /// handlers stay. A handler whose spec is unchanged keeps its queue; a removed one
    /// finishes the events already queued for it.
    pub fn reload(&self, specs: &[String]) -> Result<(), HandlerError> {
        let parsed = parse_all(specs)?;
        let mut old: Vec<Worker> = std::mem::take(&mut *self.workers());
        let mut next = Vec::with_capacity(parsed.len());
        for spec in parsed {
            match old.iter().position(|w| w.spec.spec == spec.spec) {
                Some(i) => next.push(old.swap_remove(i)),
                None => next.push(self.start_worker(spec)),
            }
        }
        *self.workers() = next;
        // Dropping the old senders lets their tasks end once their queues are empty.
        drop(old);
        Ok(())
    }

    /// Queues `event` for every handler whose filter matches, and returns at once. Events
    /// handlers do not take (query acks and responses, key operations) are ignored.
    pub fn dispatch(&self, event: &Event, me: &SelfInfo) {
        let workers = self.workers();
        let mut job = None;
        for w in workers.iter().filter(|w| w.spec.matches(event)) {
            let job = match &job {
                Some(j) => Arc::clone(j),
                None => match Job::for_event(event, me) {
                    Some(j) => Arc::clone(job.insert(Arc::new(j))),
                    None => return,
                },
            };
            let c = &self.inner.counters;
            c.queued.fetch_add(1, Relaxed);
            if w.queue.try_send(job).is_err() {
                c.queued.fetch_sub(1, Relaxed);
                c.drops.fetch_add(1, Relaxed);
                let now = std::time::Instant::now();
                let mut last = w.last_drop_log.lock().unwrap_or_else(|e| e.into_inner());
                if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                    *last = Some(now);
                    (self.inner.log)(
                        LogLevel::Warn,
                        format!(
                            "agent: Event handler '{}' is {} events behind; dropping events \
                             for it ({} dropped in all)",
                            w.spec.spec,
                            self.inner.options.queue_len,
                            c.drops.load(Relaxed)
                        ),
                    );
                }
            }
        }
    }

    /// The specs as given, for `serf info`.
    pub fn specs(&self) -> Vec<String> {
        self.workers().iter().map(|w| w.spec.spec.clone()).collect()
    }

    /// The counters now.
    pub fn stats(&self) -> HandlerStats {
        let c = &self.inner.counters;
        HandlerStats {
            runs: c.runs.load(Relaxed),
            failures: c.failures.load(Relaxed),
            drops: c.drops.load(Relaxed),
            running: c.running.load(Relaxed),
            queued: c.queued.load(Relaxed),
            responses: c.responses.load(Relaxed),
        }
    }

    /// Waits until no event is queued and no script runs (for a graceful shutdown, and
    /// tests). Returns at once when already idle.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            let s = self.stats();
            if s.queued == 0 && s.running == 0 {
                return;
            }
            notified.await;
        }
    }

    fn workers(&self) -> std::sync::MutexGuard<'_, Vec<Worker>> {
        // A panic while holding this lock cannot leave the list half-changed: every
        // change is one assignment.
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start_worker(&self, spec: HandlerSpec) -> Worker {
        let (tx, mut rx) = mpsc::channel::<Arc<Job>>(self.inner.options.queue_len.max(1));
        let spec = Arc::new(spec);
        let inner = Arc::clone(&self.inner);
        let task_spec = Arc::clone(&spec);
        self.inner.runtime.spawn(async move {
            while let Some(job) = rx.recv().await {
                // Cannot fail: the semaphore is never closed.
                let Ok(permit) = Arc::clone(&inner.permits).acquire_owned().await else {
                    break;
                };
                // Running first, then no longer queued, so wait_idle never sees both at 0
                // while a job moves from one to the other.
                inner.counters.running.fetch_add(1, Relaxed);
                inner.counters.queued.fetch_sub(1, Relaxed);
                run_one(&inner, &task_spec, &job).await;
                drop(permit);
                inner.counters.running.fetch_sub(1, Relaxed);
                inner.idle.notify_waiters();
            }
        });
        Worker {
            spec,
            queue: tx,
            last_drop_log: Arc::default(),
        }
    }
}

fn parse_all(specs: &[String]) -> Result<Vec<HandlerSpec>, HandlerError> {
    specs.iter().map(|s| parse_spec(s)).collect()
}

/// Runs one script for one event, logs how it went, and answers a query with its output.
async fn run_one(inner: &Inner, spec: &HandlerSpec, job: &Job) {
    let log = &inner.log;
    let opts = &inner.options;
    inner.counters.runs.fetch_add(1, Relaxed);
    let slow_after = opts.slow_after;
    let outcome = invoke::run(&opts.shell, &spec.script, job, slow_after, || {
        log(
            LogLevel::Warn,
            format!(
                "agent: Script '{}' slow, execution exceeding {:?}",
                spec.script, slow_after
            ),
        );
    })
    .await;
    let text = String::from_utf8_lossy(&outcome.output);
    if outcome.total_output > outcome.output.len() as u64 {
        log(
            LogLevel::Warn,
            format!(
                "agent: Script '{}' generated {} bytes of output, truncated to {}",
                spec.script, outcome.total_output, MAX_OUTPUT
            ),
        );
    }
    match outcome.status {
        Ok(status) if status.success() => {
            log(
                LogLevel::Debug,
                format!("agent: Event '{}' script output: {text}", job.event_type),
            );
            if let Some(handle) = job.query.filter(|_| !outcome.output.is_empty()) {
                if outcome.output.len() > opts.response_size_limit {
                    log(
                        LogLevel::Warn,
                        format!(
                            "agent: Failed to respond to query from script '{}': the response \
                             is {} bytes; the limit is {} (query_response_size_limit)",
                            spec.script,
                            outcome.output.len(),
                            opts.response_size_limit
                        ),
                    );
                } else {
                    inner.counters.responses.fetch_add(1, Relaxed);
                    (inner.respond)(handle, Bytes::from(outcome.output));
                }
            }
        }
        Ok(status) => {
            inner.counters.failures.fetch_add(1, Relaxed);
            log(
                LogLevel::Err,
                format!(
                    "agent: Error invoking script '{}' for event '{}': {status}; output: {text}",
                    spec.script, job.event_type
                ),
            );
        }
        Err(e) => {
            inner.counters.failures.fetch_add(1, Relaxed);
            log(
                LogLevel::Err,
                format!(
                    "agent: Error invoking script '{}' for event '{}': {e}",
                    spec.script, job.event_type
                ),
            );
        }
    }
}
