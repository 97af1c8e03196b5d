//! The running agent (`serf agent`): the node, its RPC server, the event loop feeding
//! event handlers and RPC streams, joins at start and in the background, and the
//! signals (go-serf.md §5; Go's `agent/command.go` and `agent/agent.go`).
//!
//! ```no_run
//! # async fn f() -> Result<(), serf_agent::agent::AgentError> {
//! use serf_agent::agent::Agent;
//! use serf_agent::config::AgentConfig;
//! use serf_agent::log::Logger;
//! let cfg = AgentConfig { node_name: "web-1".into(), bind: "127.0.0.1:7946".parse().unwrap(), ..AgentConfig::default() };
//! let logger = Logger::new(cfg.log_level, true);
//! let agent = Agent::start(cfg, serf_proto::serf::Config::lan(), logger).await?;
//! let code = agent.run(true, None).await; // until SIGINT, SIGTERM or `serf leave`
//! # let _ = code; Ok(()) }
//! ```

mod join;

use crate::config::{AgentConfig, Profile};
use crate::handlers::{HandlerError, HandlerOptions, Handlers, SelfInfo};
use crate::log::{Logger, level_name};
use crate::rpc::server::{RpcContext, RpcServer};
use crate::rpc::stream::EventHub;
use serf_driver_tokio::{Builder, Events, SerfHandle, StartError};
use serf_proto::serf::Event;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long a graceful leave may take after SIGINT before the agent exits anyway (Go's
/// `gracefulTimeout`).
pub const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(3);

/// The most RPC connections served at once.
pub const MAX_RPC_CONNECTIONS: usize = 256;

/// Why the agent could not start. Each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The node could not start (bind, snapshot, configuration).
    #[error("Failed to start the Serf agent: {0}")]
    Start(#[from] StartError),
    /// The RPC address could not be bound.
    #[error(
        "Error starting RPC listener: listen tcp {addr}: {source} (is another agent using it? pick another with -rpc-addr)"
    )]
    Rpc {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// `start_join` (`-join`) reached no node.
    #[error("Error joining the cluster: {0}")]
    Join(String),
    /// The node name is empty and the host name could not be read.
    #[error("Error determining hostname: {0}; set one with -node")]
    NodeName(String),
    /// mDNS discovery could not start.
    #[error("{0}")]
    Discover(#[from] crate::discover::DiscoverError),
    /// An event handler spec is invalid.
    #[error("{0}")]
    Handler(#[from] HandlerError),
    /// A metrics exporter could not start.
    #[error("Failed to start the metrics exporter on {addr}: {source}")]
    Telemetry {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Re-reads the configuration on SIGHUP (the same flags and files as at start).
pub type Reload = Box<dyn Fn() -> Result<AgentConfig, String> + Send>;

/// A started agent.
pub struct Agent {
    config: AgentConfig,
    handle: SerfHandle,
    events: Events,
    logger: Logger,
    rpc: RpcServer,
    ctx: Arc<RpcContext>,
    shutdown_rx: watch::Receiver<bool>,
    /// The core's log records since the node started, routed to the agent's log by
    /// [`Agent::run`].
    core_logs: Option<serf_driver_tokio::LogStream>,
    handlers: Handlers,
    /// mDNS discovery (`-discover`): the running announcer and the batches it finds.
    discovery: Option<(
        crate::discover::Discovery,
        tokio::sync::mpsc::Receiver<Vec<SocketAddr>>,
    )>,
    /// Metrics exporters; they stop when the agent is dropped.
    telemetry: Telemetry,
}

/// The exporters that run (each optional).
#[derive(Default)]
struct Telemetry {
    prometheus: Option<crate::telemetry::PrometheusServer>,
    _statsd: Option<crate::telemetry::PushSink>,
    _statsite: Option<crate::telemetry::PushSink>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("node", &self.handle.name())
            .field("rpc", &self.rpc.local_addr())
            .finish_non_exhaustive()
    }
}

/// The address others reach a node bound to an unspecified address at: the source
/// address the kernel would use for an outside destination (a UDP `connect` sends no
/// packet), else loopback. Go picks the first private IPv4 address of the interfaces.
fn default_advertise(bind: SocketAddr) -> SocketAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        // TEST-NET-1 (RFC 5737): routed like any outside address, never answered.
        s.connect("192.0.2.1:7946")?;
        Ok(s.local_addr()?.ip())
    };
    let ip = probe()
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    SocketAddr::new(ip, bind.port())
}

fn host_name() -> Result<String, String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .map_err(|e| e.to_string())
        .and_then(|s| {
            if s.is_empty() {
                Err("empty host name".into())
            } else {
                Ok(s)
            }
        })
}

/// `"<event>:<name>" → script` for `stats`, from the `[filter=]script` specs (Go's
/// `EventScripts` flattened; one entry per filter term).
pub fn handler_stats(specs: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for spec in specs {
        let (filter, script) = match spec.split_once('=') {
            Some((f, s)) => (f, s),
            None => ("", spec.as_str()),
        };
        let filter = if filter.is_empty() { "*" } else { filter };
        for term in filter.split(',') {
            let (event, name) = match term.split_once(':') {
                Some((e, n)) => (e, n),
                None => (term, ""),
            };
            out.push((format!("{event}:{name}"), script.to_owned()));
        }
    }
    out
}

impl Agent {
    /// Starts the node described by `config` with the core settings `core` (built from
    /// it by [`crate::config`]), then the RPC server, then joins `start_join` (failing
    /// the start if none is reached, as Go does).
    pub async fn start(
        mut config: AgentConfig,
        mut core: serf_proto::serf::Config,
        logger: Logger,
    ) -> Result<Agent, AgentError> {
        // Every level is kept, as in Go: stderr filters by -log-level, while the ring and
        // `serf monitor` may ask for DEBUG.
        core.memberlist.log_level = Some(serf_proto::log::Level::Debug);
        if config.node_name.is_empty() {
            config.node_name = host_name().map_err(AgentError::NodeName)?;
        }
        logger.info("agent", "Serf agent starting");
        let mut builder = Builder::new(config.node_name.clone())
            .bind(config.bind)
            .config(core);
        match config.advertise {
            Some(a) => builder = builder.advertise(a),
            None if config.bind.ip().is_unspecified() => {
                builder = builder.advertise(default_advertise(config.bind));
            }
            None => {}
        }
        if let Some(path) = &config.snapshot_path {
            builder = builder.snapshot_path(path);
        }
        let (handle, events) = builder.start().await?;
        let core_logs = Some(handle.logs());
        logger.info(
            "serf",
            &format!(
                "Serf agent {} listening on {}",
                handle.name(),
                handle.local_addr()
            ),
        );
        let respond_handle = handle.clone();
        let respond_log = logger.clone();
        let log = logger.clone();
        let handlers = match Handlers::with_options(
            &config.event_handlers,
            // Handler output answers the query; the send happens on the node's task.
            Arc::new(move |query, payload| {
                let (h, log) = (respond_handle.clone(), respond_log.clone());
                tokio::spawn(async move {
                    if let Err(e) = h.respond(query, payload).await {
                        log.warn("agent", &format!("failed to respond to query: {e}"));
                    }
                });
            }),
            Arc::new(move |level, line| log.log_line(level, &line)),
            HandlerOptions {
                response_size_limit: config.query_response_size_limit,
                ..HandlerOptions::default()
            },
        ) {
            Ok(h) => h,
            Err(e) => {
                let _ = handle.shutdown().await;
                return Err(e.into());
            }
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let ctx = Arc::new(RpcContext {
            handle: handle.clone(),
            logger: logger.clone(),
            auth: config.rpc_auth.clone(),
            events: EventHub::new(),
            event_handlers: Arc::new(Mutex::new(handler_stats(&config.event_handlers))),
            tags_file: config.tags_file.clone(),
            shutdown,
            max_connections: MAX_RPC_CONNECTIONS,
            clients: Arc::new(AtomicUsize::new(0)),
            limits: crate::rpc::server::REQUEST_LIMITS,
        });
        let rpc = match RpcServer::bind(config.rpc_addr, ctx.clone()).await {
            Ok(r) => r,
            Err(source) => {
                let _ = handle.shutdown().await;
                return Err(AgentError::Rpc {
                    addr: config.rpc_addr,
                    source,
                });
            }
        };
        let telemetry = match start_telemetry(&config, &handle, &handlers, &ctx, &logger).await {
            Ok(t) => t,
            Err(e) => {
                let _ = handle.shutdown().await;
                return Err(e);
            }
        };
        let discovery =
            match crate::discover::DiscoverConfig::from_agent(&config, handle.local_addr()) {
                None => None,
                Some(dc) => {
                    let log = logger.clone();
                    match crate::discover::start_discovery(
                        dc,
                        Arc::new(move |level, line| log.log_line(level, &line)),
                    ) {
                        Ok(d) => Some(d),
                        Err(e) => {
                            let _ = handle.shutdown().await;
                            return Err(e.into());
                        }
                    }
                }
            };
        let agent = Agent {
            config,
            handle,
            events,
            logger,
            rpc,
            ctx,
            shutdown_rx,
            core_logs,
            handlers,
            discovery,
            telemetry,
        };
        if !agent.config.start_join.is_empty() {
            println!(
                "==> Joining cluster...(replay: {})",
                agent.config.replay_on_join
            );
            let (n, err) = crate::rpc::server::join_addresses(
                &agent.handle,
                &agent.config.start_join,
                agent.config.replay_on_join,
            )
            .await;
            if !err.is_empty() {
                let _ = agent.handle.shutdown().await;
                return Err(AgentError::Join(err));
            }
            println!("    Join completed. Synced with {n} initial agents");
        }
        Ok(agent)
    }

    /// The node.
    pub fn handle(&self) -> &SerfHandle {
        &self.handle
    }

    /// Where the RPC listens.
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc.local_addr()
    }

    /// Where the Prometheus endpoint listens (`prometheus_addr`), if it runs.
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.telemetry.prometheus.as_ref().map(|p| p.local_addr())
    }

    /// The agent's log.
    pub fn logger(&self) -> &Logger {
        &self.logger
    }

    /// The event handlers.
    pub fn handlers(&self) -> &Handlers {
        &self.handlers
    }

    /// Prints Go's start-up banner to stdout.
    pub fn print_banner(&self) {
        let c = &self.config;
        let profile = match c.profile {
            Profile::Lan => "lan",
            Profile::Wan => "wan",
            Profile::Local => "local",
        };
        println!("==> Starting Serf agent RPC...");
        println!("==> Serf agent running!");
        println!("                  Node name: '{}'", self.handle.name());
        println!("                  Bind addr: '{}'", c.bind);
        if let Some(a) = c.advertise {
            println!("             Advertise addr: '{a}'");
        }
        println!("                   RPC addr: '{}'", self.rpc.local_addr());
        println!(
            "                  Encrypted: {}",
            c.encrypt_key.is_some() || c.keyring_file.is_some()
        );
        println!("                   Snapshot: {}", c.snapshot_path.is_some());
        println!("                    Profile: {profile}");
        println!("Message Compression Enabled: {}", c.enable_compression);
        if let Some(d) = &c.discover {
            println!("               mDNS cluster: {d}");
        }
        println!();
        println!("==> Log data will now stream in as it occurs:\n");
    }

    fn on_event(&mut self, event: &Event) {
        match event {
            // The core logs each member's `EventMemberJoin: name ip` itself.
            Event::Member { kind, .. } => {
                self.logger
                    .info("agent", &format!("Received event: {}", kind.as_str()));
            }
            Event::User(u) => {
                self.logger
                    .info("agent", &format!("Received event: user-event: {}", u.name));
            }
            Event::Query(q) => {
                self.logger
                    .info("agent", &format!("Received event: query: {}", q.name));
            }
            Event::Shutdown { reason } => {
                self.logger
                    .err("agent", &format!("the node shut itself down: {reason:?}"));
            }
            _ => {}
        }
        let lost = self.ctx.events.publish(event);
        if lost > 0 {
            self.logger.warn(
                "agent.ipc",
                &format!("Dropping event to {lost} RPC stream(s): their buffers are full"),
            );
        }
        let me = self.handle.local_member();
        self.handlers.dispatch(
            event,
            &SelfInfo {
                name: me.name.as_str().to_owned(),
                tags: (*me.tags).clone(),
            },
        );
    }

    /// Runs until the agent should exit and returns the process exit code: 0 after a
    /// graceful leave (SIGINT, SIGTERM with `leave_on_terminate`, or RPC `leave`), 1
    /// otherwise (Go's `handleSignals`). With `signals` false, only RPC `leave`, a
    /// failed retry-join or the node's own shutdown end it (for tests).
    pub async fn run(mut self, signals: bool, reload: Option<Reload>) -> i32 {
        let (retry_failed_tx, mut retry_failed) = watch::channel(false);
        let retry = join::spawn_retry_join(
            self.handle.clone(),
            self.logger.clone(),
            self.config.retry_join.clone(),
            self.config.replay_on_join,
            self.config.retry_interval,
            self.config.retry_max_attempts,
            retry_failed_tx,
        );
        let mut sig = Signals::new(signals, &self.logger);
        let mut shutdown_rx = self.shutdown_rx.clone();
        let mut core_logs = self.core_logs.take().unwrap_or_else(|| self.handle.logs());
        let (_discovery, mut discovered) = match self.discovery.take() {
            Some((d, rx)) => (Some(d), Some(rx)),
            None => (None, None),
        };
        let code = loop {
            tokio::select! {
                Some(batch) = async {
                    match &mut discovered {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    // Go's mDNS joins replay per `replay_on_join`; joined in the
                    // background so the event loop never waits on the network.
                    let (handle, logger) = (self.handle.clone(), self.logger.clone());
                    let addrs: Vec<String> = batch.iter().map(|a| a.to_string()).collect();
                    let replay = self.config.replay_on_join;
                    tokio::spawn(async move {
                        let (n, err) = crate::rpc::server::join_addresses(&handle, &addrs, replay).await;
                        if err.is_empty() {
                            logger.info("agent.mdns", &format!("Joined {n} hosts"));
                        } else {
                            logger.warn("agent.mdns", &format!("Failed to join: {err}"));
                        }
                    });
                }
                Some(record) = core_logs.recv() => {
                    let level = match record.level {
                        serf_proto::log::Level::Trace => crate::config::LogLevel::Trace,
                        serf_proto::log::Level::Debug => crate::config::LogLevel::Debug,
                        serf_proto::log::Level::Info => crate::config::LogLevel::Info,
                        serf_proto::log::Level::Warn => crate::config::LogLevel::Warn,
                        serf_proto::log::Level::Error => crate::config::LogLevel::Err,
                    };
                    self.logger.log(level, record.target(), &record.message.to_string());
                }
                event = self.events.recv() => match event {
                    Some(e) => self.on_event(&e),
                    None => break 0,
                },
                Ok(()) = shutdown_rx.changed() => {
                    // An RPC `leave` completed (it already left gracefully).
                    break 0;
                }
                // Disabled (not fired) when no retry-join runs and its sender is gone.
                Ok(()) = retry_failed.changed() => break 1,
                s = sig.next() => {
                    println!("==> Caught signal: {}", s.name());
                    self.logger.info("agent", &format!("Caught signal: {}", s.name()));
                    match s {
                        Signal::Hangup => {
                            self.reload(reload.as_ref());
                            continue;
                        }
                        Signal::Interrupt if !self.config.skip_leave_on_interrupt => {}
                        Signal::Terminate if self.config.leave_on_terminate => {}
                        _ => break 1,
                    }
                    println!("==> Gracefully shutting down agent...");
                    self.logger.info("agent", "requesting graceful leave from Serf");
                    let leave = self.handle.leave();
                    tokio::pin!(leave);
                    break tokio::select! {
                        r = &mut leave => match r {
                            Ok(()) => 0,
                            Err(e) => {
                                eprintln!("==> Error: {e}");
                                1
                            }
                        },
                        _ = tokio::time::sleep(GRACEFUL_TIMEOUT) => 1,
                        _ = sig.next() => 1,
                    };
                }
            }
        };
        if let Some(r) = retry {
            r.abort();
        }
        self.logger.info("agent", "requesting serf shutdown");
        let _ = self.handle.shutdown().await;
        self.logger.info("agent", "shutdown complete");
        code
    }

    fn reload(&mut self, reload: Option<&Reload>) {
        println!("==> Reloading configuration...");
        let Some(reload) = reload else {
            return;
        };
        let new = match reload() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("==> Failed to reload configs: {e}");
                self.logger
                    .err("agent", &format!("Failed to reload configs: {e}"));
                return;
            }
        };
        self.logger.set_level(new.log_level);
        self.logger.info(
            "agent",
            &format!("log level now {}", level_name(new.log_level)),
        );
        match self.handlers.reload(&new.event_handlers) {
            Ok(()) => {
                if let Ok(mut h) = self.ctx.event_handlers.lock() {
                    *h = handler_stats(&new.event_handlers);
                }
            }
            Err(e) => {
                eprintln!("==> {e}");
                self.logger
                    .err("agent", &format!("keeping the old event handlers: {e}"));
            }
        }
        let mut tags = new.tags.clone();
        if let Some(role) = &new.role {
            tags.insert("role".into(), role.clone());
        }
        let handle = self.handle.clone();
        let logger = self.logger.clone();
        tokio::spawn(async move {
            if let Err(e) = handle.set_tags(tags).await {
                eprintln!("==> Failed to update tags: {e}");
                logger.err("agent", &format!("Failed to update tags: {e}"));
            }
        });
        self.config = new;
    }
}

/// Starts the exporters the configuration asks for: Prometheus over HTTP, statsd, statsite.
async fn start_telemetry(
    config: &AgentConfig,
    handle: &SerfHandle,
    handlers: &Handlers,
    ctx: &Arc<RpcContext>,
    logger: &Logger,
) -> Result<Telemetry, AgentError> {
    use crate::telemetry::{Collect, Snapshot, serve_prometheus, spawn_statsd, spawn_statsite};
    let mut t = Telemetry::default();
    if config.prometheus_addr.is_none()
        && config.statsd_addr.is_none()
        && config.statsite_addr.is_none()
    {
        return Ok(t);
    }
    let (node, hs, clients) = (handle.clone(), handlers.clone(), ctx.clients.clone());
    let (streams, monitors) = (ctx.events.clone(), ctx.logger.clone());
    let collect: Collect = Arc::new(move || {
        let (node, hs, clients) = (node.clone(), hs.clone(), clients.clone());
        let (streams, monitors) = (streams.clone(), monitors.clone());
        Box::pin(async move {
            let mut s = Snapshot::from_node(&node).await.unwrap_or_default();
            s.handlers = hs.stats();
            s.rpc_clients = clients.load(Relaxed) as u64;
            s.rpc_stream_dropped = streams.dropped();
            s.rpc_monitor_dropped = monitors.dropped();
            s
        })
    });
    if let Some(addr) = config.prometheus_addr {
        let server = serve_prometheus(addr, collect.clone())
            .await
            .map_err(|source| AgentError::Telemetry { addr, source })?;
        logger.info(
            "agent",
            &format!(
                "Prometheus metrics at http://{}/metrics",
                server.local_addr()
            ),
        );
        t.prometheus = Some(server);
    }
    let log = {
        let logger = logger.clone();
        Arc::new(move |level, line: String| logger.log_line(level, &line))
    };
    // Go's go-metrics sinks flush every 10 s.
    let interval = Duration::from_secs(10);
    if let Some(addr) = &config.statsd_addr {
        t._statsd = Some(spawn_statsd(
            addr.clone(),
            interval,
            collect.clone(),
            log.clone(),
        ));
    }
    if let Some(addr) = &config.statsite_addr {
        t._statsite = Some(spawn_statsite(addr.clone(), interval, collect, log));
    }
    Ok(t)
}

/// The signals the agent acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Interrupt,
    Terminate,
    Hangup,
}

impl Signal {
    /// Go's `os.Signal` names, as its agent prints them.
    fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "interrupt",
            Signal::Terminate => "terminated",
            Signal::Hangup => "hangup",
        }
    }
}

struct Signals {
    #[cfg(unix)]
    streams: Option<(
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
    )>,
}

impl Signals {
    fn new(enabled: bool, logger: &Logger) -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = if enabled {
                match (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                    signal(SignalKind::hangup()),
                ) {
                    (Ok(i), Ok(t), Ok(h)) => Some((i, t, h)),
                    _ => {
                        logger.err("agent", "could not install signal handlers");
                        None
                    }
                }
            } else {
                None
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        {
            let _ = (enabled, logger);
            Signals {}
        }
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        if let Some((i, t, h)) = &mut self.streams {
            return tokio::select! {
                _ = i.recv() => Signal::Interrupt,
                _ = t.recv() => Signal::Terminate,
                _ = h.recv() => Signal::Hangup,
            };
        }
        std::future::pending().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_stats_flatten_filters_as_go() {
        let s = handler_stats(&["handler.sh".into(), "user:deploy,member-join=./x.sh".into()]);
        assert_eq!(
            s,
            vec![
                ("*:".to_owned(), "handler.sh".to_owned()),
                ("user:deploy".to_owned(), "./x.sh".to_owned()),
                ("member-join:".to_owned(), "./x.sh".to_owned()),
            ]
        );
    }
}
