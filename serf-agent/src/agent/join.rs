//! `retry_join` (`-retry-join`): joined in the background until one join succeeds, or
//! `retry_max_attempts` failures end the agent (Go's `retryJoin`).

use crate::log::Logger;
use crate::rpc::server::join_addresses;
use serf_driver_tokio::SerfHandle;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Starts retrying when `addrs` is not empty; `failed` is set when the attempts ran out.
pub(super) fn spawn_retry_join(
    handle: SerfHandle,
    logger: Logger,
    addrs: Vec<String>,
    replay: bool,
    interval: Duration,
    max_attempts: u32,
    failed: watch::Sender<bool>,
) -> Option<JoinHandle<()>> {
    if addrs.is_empty() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut attempt = 0u32;
        loop {
            logger.info("agent", &format!("Joining cluster...(replay: {replay})"));
            let (n, err) = join_addresses(&handle, &addrs, replay).await;
            if err.is_empty() {
                logger.info(
                    "agent",
                    &format!("Join completed. Synced with {n} initial agents"),
                );
                return;
            }
            attempt += 1;
            if max_attempts > 0 && attempt > max_attempts {
                logger.err("agent", "maximum retry join attempts made, exiting");
                let _ = failed.send(true);
                return;
            }
            logger.warn(
                "agent",
                &format!(
                    "Join failed: {err}, retrying in {}",
                    crate::command::go_duration(interval)
                ),
            );
            tokio::time::sleep(interval).await;
        }
    }))
}
