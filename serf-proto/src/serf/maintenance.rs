//! Periodic maintenance: reaping failed and left members, reconnecting to failed members
//! and permanent seeds, queue limits, the snapshot clock, and the one-shot deadlines of
//! queries and leaves (serf `serf.go` `handleReap`, `handleReconnect`, `checkQueueDepth`).

use super::core::{Action, Core, JoinPurpose, LeaveStage, SerfTimer};
use super::member::MemberStatus;
use super::snapshot::Record;
use crate::log::LogMessage;
use crate::name::Name;
use crate::time::Instant;
use core::net::SocketAddr;
use core::time::Duration;

/// How often the member clock is persisted when it changed (Go's `clockUpdateInterval`).
pub(crate) const SNAPSHOT_CLOCK_INTERVAL: Duration = Duration::from_millis(500);

impl Core {
    /// Runs every Serf timer due at `now`. `n` is the memberlist's alive count.
    pub fn handle_timeout(&mut self, now: Instant, n: usize) {
        self.last_now = now;
        if self.state == super::SerfState::Shutdown {
            return;
        }
        while let Some(t) = self.pop_due(now) {
            match t {
                SerfTimer::Reap => {
                    self.reap(now);
                    self.schedule(now + self.config.reap_interval, SerfTimer::Reap);
                }
                SerfTimer::Reconnect => {
                    self.reconnect();
                    self.schedule(now + self.config.reconnect_interval, SerfTimer::Reconnect);
                }
                SerfTimer::QueueCheck => {
                    self.queue_check();
                    self.schedule(
                        now + self.config.queue_check_interval,
                        SerfTimer::QueueCheck,
                    );
                }
                SerfTimer::SnapshotClock => {
                    // The clock minus one: the last time actually used (Go's snapshotter).
                    let c = self.clock.time().saturating_sub(1);
                    if c > self.last_clock_persisted {
                        self.last_clock_persisted = c;
                        self.persist(Record::Clock(c));
                    }
                    self.schedule(now + SNAPSHOT_CLOCK_INTERVAL, SerfTimer::SnapshotClock);
                }
                SerfTimer::MemberFlush(batch, quiet) => self.on_member_flush(batch, quiet),
                SerfTimer::UserFlush(batch, quiet) => self.on_user_flush(batch, quiet),
                SerfTimer::QueryDeadline(id) => self.finish_query(now, id, false),
                SerfTimer::QueryRetry(id) => self.retry_query(id),
                SerfTimer::IncomingSweep => self.sweep_incoming(now),
                SerfTimer::LeaveIntentTimeout(notify) => {
                    // The intent has had its time (see `leave`); Go only warns here.
                    if self.leave == LeaveStage::Intent(notify) {
                        self.leave_memberlist();
                    }
                }
                SerfTimer::LeavePropagated => {
                    if self.leave == LeaveStage::Propagating {
                        self.leave_done();
                    }
                }
                SerfTimer::Prune(name, ltime) => self.delayed_prune(&name, ltime),
                SerfTimer::LeavingCheck(name, ltime) => {
                    let still = self.members.get(name.as_str()).is_some_and(|m| {
                        m.status_ltime == ltime && m.member.status == MemberStatus::Leaving
                    });
                    if still {
                        self.outbox.push_back(Action::ProbeSoon(name));
                    }
                }
            }
        }
        let _ = n;
    }

    /// Forgets failed members after the reconnect timeout (per member if overridden) and
    /// left members after the tombstone timeout; drops old buffered intents.
    fn reap(&mut self, now: Instant) {
        let reconnect = self.config.reconnect_timeout;
        let tombstone = self.config.tombstone_timeout;
        let mut gone: Vec<Name> = Vec::new();
        for name in self.failed_names().iter() {
            let Some(m) = self.member_state(name) else {
                continue;
            };
            let timeout = self
                .config
                .reconnect_timeout_override
                .as_ref()
                .and_then(|o| (o.0)(&m.member))
                .unwrap_or(reconnect);
            if m.leave_time.is_some_and(|t| now - t > timeout) {
                gone.push(name.clone());
            }
        }
        for m in self.members() {
            if m.status == MemberStatus::Left {
                let st = self.member_state(&m.name).expect("iterating members");
                if st.leave_time.is_some_and(|t| now - t > tombstone) {
                    gone.push(m.name.clone());
                }
            }
        }
        gone.sort_unstable();
        for name in gone {
            self.erase(&name);
        }
        self.reap_intents(now);
    }

    /// Tries to reconnect to one failed member, with a probability that makes the whole
    /// cluster try each failed member about once per interval; and retries the permanent
    /// seeds that are not members (serf `reconnect`, memberlist #222).
    ///
    /// Serf's probability, failed / alive, assumes every node holds the same members
    /// failed. After a partition heals they do not: the other side's alive messages reach
    /// most views by gossip, but an epidemic misses a few (node, member) pairs — more on
    /// the smaller side, whose news only its own nodes re-gossip — and a node left with
    /// one failed member of 100 would try it with p = 1/99, so only its next push-pull
    /// (90 s at 100 nodes) completed its view. So a round that follows the recovery of a
    /// failed member (the partition healed; the rest may be reachable too) always tries:
    /// one push-pull per node and round while members recover, and a success completes
    /// the whole view. Rounds without recoveries keep Go's rate.
    fn reconnect(&mut self) {
        let recovered = core::mem::take(&mut self.failed_recovered);
        if !self.may_act_on_its_own() {
            // Leaving or left: a join would cancel the leave (see `LeaveStage`).
            return;
        }
        let failed = self.num_failed();
        if failed > 0 {
            let alive = self
                .num_members()
                .saturating_sub(failed + self.num_left())
                .max(1);
            let p = if recovered {
                1.0
            } else {
                failed as f64 / alive as f64
            };
            if self.rng.chance(p) {
                let i = self.rng.index(failed);
                let name = self.failed_names().get(i).clone();
                if let Some(m) = self.member(&name) {
                    let addr = m.addr;
                    self.metrics.reconnects += 1;
                    self.log(LogMessage::Reconnecting { node: name, addr });
                    self.outbox.push_back(Action::Join {
                        seeds: vec![addr],
                        purpose: JoinPurpose::Reconnect,
                    });
                }
            }
        }
        if !self.config.seeds.is_empty() {
            let seeds: Vec<SocketAddr> = self
                .config
                .seeds
                .iter()
                .copied()
                .filter(|s| *s != self.addr && !self.is_alive_addr(*s))
                .collect();
            if !seeds.is_empty() {
                self.metrics.seed_joins += seeds.len() as u64;
                self.outbox.push_back(Action::Join {
                    seeds,
                    purpose: JoinPurpose::Seed,
                });
            }
        }
    }

    fn is_alive_addr(&self, addr: SocketAddr) -> bool {
        self.members()
            .any(|m| m.addr == addr && m.status == MemberStatus::Alive)
    }

    /// Resizes the queues when dynamic sizing is on, and counts deep queues (serf
    /// `checkQueueDepth`).
    fn queue_check(&mut self) {
        if self.config.min_queue_depth > 0 {
            let depth = self.config.min_queue_depth.max(2 * self.num_members());
            self.outbox.push_back(Action::SetQueueDepth(depth));
        }
    }
}

impl Core {
    /// Drops buffered intents older than `recent_intent_timeout`.
    fn reap_intents(&mut self, now: Instant) {
        let timeout = self.config.recent_intent_timeout;
        self.retain_intents(|i| now - i.at <= timeout);
    }
}
