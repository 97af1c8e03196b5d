//! mDNS discovery (`-discover=CLUSTER`, go-serf.md §5.4, Go's `agent/mdns.go`): announce
//! this agent as the service `_serf_<cluster>._tcp.local.` at its advertise address, browse
//! for the same service, and hand the agent batches of new addresses to join.
//!
//! As in Go: hosts found within 100 ms of each other form one batch (so a cluster that
//! comes up together is joined in one call), and an address handed out once is never
//! handed out again. Unlike Go, our own address is never handed out.
//!
//! The multicast work is done by the `mdns-sd` crate's daemon thread; a small thread here
//! batches what it finds and passes the batches to the agent over a tokio channel.

use crate::config::{AgentConfig, LogLevel};
use crate::handlers::LogFn;
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Go's `mdnsPollInterval`: the browse restarts this often, sending a fresh query. (The
/// mDNS library's own re-queries back off up to an hour.)
pub const POLL_INTERVAL: Duration = Duration::from_secs(60);
/// Go's `mdnsQuietInterval`: addresses found this close together are joined as one batch.
pub const QUIET_INTERVAL: Duration = Duration::from_millis(100);
/// The longest cluster name: the service label `serf_<cluster>` must fit the 30 bytes the
/// mDNS library allows (RFC 6335 allows 15; Go's library did not check).
pub const MAX_CLUSTER_NAME: usize = 25;
/// Batches waiting for the agent; the discovery thread waits when the agent falls behind.
const BATCH_QUEUE: usize = 16;

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// The cluster name cannot be an mDNS service name.
    #[error(
        "invalid discover name \"{0}\": use 1 to {MAX_CLUSTER_NAME} letters, digits, '-' or \
         '_', not starting or ending with '-' and without \"--\""
    )]
    ClusterName(String),
    /// The mDNS daemon refused (no multicast interface, socket errors, ...).
    #[error("Error starting mDNS listener: {0}")]
    Mdns(String),
}

/// What discovery needs.
#[derive(Debug, Clone)]
pub struct DiscoverConfig {
    /// The cluster name (`discover`).
    pub cluster: String,
    /// This node's name: the service instance announced.
    pub node_name: String,
    /// The address announced; an unspecified IP announces every address of the enabled
    /// interfaces.
    pub advertise: SocketAddr,
    /// Only this interface (`mdns.interface`, else `interface`).
    pub interface: Option<String>,
    /// Do not use IPv4.
    pub disable_ipv4: bool,
    /// Do not use IPv6.
    pub disable_ipv6: bool,
    /// How often the browse restarts with a fresh query: [`POLL_INTERVAL`] (Go's 60 s).
    pub poll_interval: Duration,
}

impl DiscoverConfig {
    /// The discovery settings of an agent configuration, or `None` without `discover`.
    /// `advertise` is the address the node actually advertises (known once it is bound).
    pub fn from_agent(cfg: &AgentConfig, advertise: SocketAddr) -> Option<DiscoverConfig> {
        let cluster = cfg.discover.clone()?;
        Some(DiscoverConfig {
            cluster,
            node_name: cfg.node_name.clone(),
            advertise,
            interface: cfg.mdns.interface.clone().or_else(|| cfg.interface.clone()),
            disable_ipv4: cfg.mdns.disable_ipv4,
            disable_ipv6: cfg.mdns.disable_ipv6,
            poll_interval: POLL_INTERVAL,
        })
    }

    /// The service type announced and browsed: `_serf_<cluster>._tcp.local.`.
    pub fn service_type(&self) -> String {
        format!("_serf_{}._tcp.local.", self.cluster)
    }
}

/// Checks that a cluster name can be an mDNS service name.
pub fn validate_cluster_name(name: &str) -> Result<(), DiscoverError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CLUSTER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(DiscoverError::ClusterName(name.to_owned()))
    }
}

/// Running discovery: announcing and browsing until dropped.
pub struct Discovery {
    daemon: ServiceDaemon,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery").finish_non_exhaustive()
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unregistering sends the goodbye packets; shutting down ends the daemon thread and
        // closes the browse channel, which ends the batching thread.
        let _ = self.daemon.shutdown();
    }
}

/// Starts announcing this node and browsing for its cluster. Each item of the returned
/// channel is a batch of new peer addresses to join (with `replay_on_join`, as Go does).
pub fn start_discovery(
    cfg: DiscoverConfig,
    log: LogFn,
) -> Result<(Discovery, mpsc::Receiver<Vec<SocketAddr>>), DiscoverError> {
    validate_cluster_name(&cfg.cluster)?;
    let mdns = |e: mdns_sd::Error| DiscoverError::Mdns(e.to_string());
    let daemon = ServiceDaemon::new().map_err(mdns)?;
    daemon
        .set_service_name_len_max(5 + MAX_CLUSTER_NAME as u8)
        .map_err(mdns)?;
    if let Some(iface) = &cfg.interface {
        daemon.disable_interface(IfKind::All).map_err(mdns)?;
        daemon
            .enable_interface(IfKind::Name(iface.clone()))
            .map_err(mdns)?;
    }
    if cfg.disable_ipv4 {
        daemon.disable_interface(IfKind::IPv4).map_err(mdns)?;
    }
    if cfg.disable_ipv6 {
        daemon.disable_interface(IfKind::IPv6).map_err(mdns)?;
    }

    let ty = cfg.service_type();
    let host = format!("{}.local.", host_label(&cfg.node_name));
    let txt = [("cluster", cfg.cluster.as_str())];
    let ip = cfg.advertise.ip();
    let info = if ip.is_unspecified() {
        ServiceInfo::new(
            &ty,
            &cfg.node_name,
            &host,
            (),
            cfg.advertise.port(),
            &txt[..],
        )
        .map(ServiceInfo::enable_addr_auto)
    } else {
        ServiceInfo::new(
            &ty,
            &cfg.node_name,
            &host,
            ip,
            cfg.advertise.port(),
            &txt[..],
        )
    }
    .map_err(mdns)?;
    daemon.register(info).map_err(mdns)?;
    let found = daemon.browse(&ty).map_err(mdns)?;
    let browser = daemon.clone();

    let (tx, rx) = mpsc::channel(BATCH_QUEUE);
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let own = cfg.advertise;
    std::thread::Builder::new()
        .name("serf-mdns".to_owned())
        .spawn(move || batch_loop(&browser, found, tx, own, &cfg, &thread_stop, &log))
        .map_err(|e| DiscoverError::Mdns(e.to_string()))?;
    Ok((Discovery { daemon, stop }, rx))
}

/// Collects resolved peers into batches separated by [`QUIET_INTERVAL`] of silence, and
/// restarts the browse every `poll_interval`.
fn batch_loop(
    daemon: &ServiceDaemon,
    mut found: mdns_sd::Receiver<ServiceEvent>,
    tx: mpsc::Sender<Vec<SocketAddr>>,
    own: SocketAddr,
    cfg: &DiscoverConfig,
    stop: &AtomicBool,
    log: &LogFn,
) {
    let mut seen: HashSet<SocketAddr> = HashSet::new();
    let mut batch: Vec<SocketAddr> = Vec::new();
    let mut quiet_until: Option<Instant> = None;
    let poll = cfg.poll_interval.max(Duration::from_millis(100));
    let mut next_poll = Instant::now() + poll;
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_poll {
            next_poll = Instant::now() + poll;
            let ty = cfg.service_type();
            let _ = daemon.stop_browse(&ty);
            match daemon.browse(&ty) {
                Ok(r) => found = r,
                // The daemon is shutting down.
                Err(_) => return,
            }
        }
        // Wake at least every second to notice `stop`.
        let wait = quiet_until
            .unwrap_or(next_poll)
            .min(Instant::now() + Duration::from_secs(1))
            .saturating_duration_since(Instant::now());
        match found.recv_timeout(wait) {
            Ok(ServiceEvent::ServiceResolved(service)) => {
                for ip in service.get_addresses().iter().map(|a| a.to_ip_addr()) {
                    if !usable(ip, cfg) {
                        continue;
                    }
                    let addr = SocketAddr::new(ip, service.get_port());
                    if addr == own || !seen.insert(addr) {
                        continue;
                    }
                    batch.push(addr);
                    quiet_until = Some(Instant::now() + QUIET_INTERVAL);
                }
            }
            Ok(_) => {}
            Err(mdns_sd::RecvTimeoutError::Timeout) => {}
            Err(mdns_sd::RecvTimeoutError::Disconnected) => return,
        }
        if quiet_until.is_some_and(|t| Instant::now() >= t) {
            quiet_until = None;
            let n = batch.len();
            log(
                LogLevel::Info,
                format!(
                    "agent.mdns: found {n} new host(s) for cluster '{}'",
                    cfg.cluster
                ),
            );
            let mut pending = std::mem::take(&mut batch);
            // Wait while the agent is behind, but notice a stop meanwhile.
            loop {
                match tx.try_send(pending) {
                    Ok(()) => break,
                    Err(mpsc::error::TrySendError::Full(b)) if !stop.load(Ordering::Relaxed) => {
                        pending = b;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    // The agent is gone, or discovery stopped.
                    Err(_) => return,
                }
            }
        }
    }
}

/// Addresses worth joining: of an enabled family, and not IPv6 link-local (which needs a
/// scope the join address cannot carry).
fn usable(ip: IpAddr, cfg: &DiscoverConfig) -> bool {
    match ip {
        IpAddr::V4(v4) => !cfg.disable_ipv4 && !v4.is_unspecified(),
        IpAddr::V6(v6) => {
            !cfg.disable_ipv6 && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
    }
}

/// A DNS label from a node name: letters, digits and '-' (others become '-'), at most 63.
fn host_label(name: &str) -> String {
    let label: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    let label = label.trim_matches('-');
    if label.is_empty() {
        "serf".to_owned()
    } else {
        label.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_must_make_a_service_name() {
        for ok in ["prod", "eu-west_1", "a", &"x".repeat(MAX_CLUSTER_NAME)] {
            assert!(validate_cluster_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "x-",
            "a--b",
            "has space",
            "dot.ted",
            &"x".repeat(26),
        ] {
            let e = validate_cluster_name(bad).unwrap_err().to_string();
            assert!(e.contains("invalid discover name"), "{bad}: {e}");
        }
    }

    #[test]
    fn host_labels_are_dns_safe() {
        assert_eq!(host_label("web-1"), "web-1");
        assert_eq!(host_label("a.b_c"), "a-b-c");
        assert_eq!(host_label("__"), "serf");
        assert_eq!(host_label(&"x".repeat(100)).len(), 63);
    }

    #[test]
    fn link_local_and_disabled_families_are_skipped() {
        let cfg = DiscoverConfig {
            cluster: "c".into(),
            node_name: "n".into(),
            advertise: "10.0.0.1:7946".parse().unwrap(),
            interface: None,
            disable_ipv4: false,
            disable_ipv6: true,
            poll_interval: POLL_INTERVAL,
        };
        assert!(usable("10.0.0.2".parse().unwrap(), &cfg));
        assert!(!usable("fd00::1".parse().unwrap(), &cfg));
        let cfg = DiscoverConfig {
            disable_ipv6: false,
            ..cfg
        };
        assert!(usable("fd00::1".parse().unwrap(), &cfg));
        assert!(!usable("fe80::1".parse().unwrap(), &cfg));
    }
}
