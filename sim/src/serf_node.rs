//! The Serf layer as a simulated node.
//!
//! Serf statuses map onto the simulator's view as: alive and leaving are members, failed
//! is dead, left is left; reaping needs no event. Incarnations come from the memberlist
//! underneath. User events and queries are real Serf user events and queries carrying the
//! simulator's id in their payload; every node answers every query with its name. The
//! snapshot a restart "with its state" gets back is built from the node's own
//! snapshot records ([`Serf::poll_persist`]), as a driver writing a snapshot file would.

use crate::node::{
    Change, KeyOp, MemberState, MemberView, NodeCounters, NodeSpec, SimEvent, SimNode, SimOutput,
    scenario_key,
};
use crate::scenario::SerfOverrides;
use core::net::SocketAddr;
use serf_proto::memberlist;
use serf_proto::serf::{
    self, Event, MemberEventKind, MemberStatus, QueryId, QueryParams, SnapshotState,
};
use serf_proto::{Instant, Keyring, Name, SecretKey, Serf, StreamEvent, StreamId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A Serf node in the simulator.
#[derive(Debug)]
pub struct SerfNode {
    serf: Serf,
    event_size: usize,
    /// Members in this node's view as reported to the engine (alive or leaving), so that
    /// every reported change is a transition.
    in_view: BTreeSet<Name>,
    /// Events already reported (Serf deduplicates; this guards replays after a restart).
    seen: BTreeSet<u64>,
    /// Our queries: Serf's id to the simulator's, and the timeout each was given.
    asked: BTreeMap<QueryId, (u64, core::time::Duration)>,
    /// Events reported by `poll`, waiting to be returned one at a time.
    pending: VecDeque<SimEvent>,
    /// What a snapshot file would hold.
    snapshot: SnapshotState,
    /// What the keyring file would hold, once the keyring changed (primary first).
    keyring: Option<Vec<SecretKey>>,
    rejoin_after_leave: bool,
}

/// What survives a Serf node's restart "with its state": its snapshot and its keyring
/// file (as the agent's `-keyring-file`), so a node restarted after a key rotation
/// comes back with the rotated keys.
#[derive(Debug, Clone, Default)]
pub struct SerfDisk {
    /// The snapshot.
    pub snapshot: SnapshotState,
    /// The keyring file, if the keyring ever changed.
    pub keyring: Option<Vec<SecretKey>>,
}

impl SerfNode {
    /// The Serf core inside.
    pub fn inner(&self) -> &Serf {
        &self.serf
    }

    fn payload(&self, id: u64) -> Vec<u8> {
        let mut p = id.to_le_bytes().to_vec();
        crate::node::pad_payload(&mut p, id, self.event_size);
        p
    }

    fn id_of(payload: &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
    }

    fn incarnation_of(&self, name: &str) -> u32 {
        self.serf
            .memberlist()
            .member(name)
            .map_or(0, |n| n.incarnation())
    }

    fn on_member_event(&mut self, kind: MemberEventKind, members: &[serf::Member]) {
        for m in members {
            let in_view = self.in_view.contains(&m.name);
            let change = match kind {
                MemberEventKind::Join if !in_view => Change::Joined,
                MemberEventKind::Update if in_view => Change::Updated,
                MemberEventKind::Failed if in_view => Change::Failed,
                MemberEventKind::Leave if in_view => Change::Left,
                // Reaping a failed or left member, or a repeat: no change of view.
                _ => continue,
            };
            match change {
                Change::Joined => {
                    self.in_view.insert(m.name.clone());
                }
                Change::Failed | Change::Left => {
                    self.in_view.remove(&m.name);
                }
                Change::Updated => {}
            }
            self.pending.push_back(SimEvent::Member {
                name: m.name.clone(),
                incarnation: self.incarnation_of(&m.name),
                change,
            });
        }
    }

    fn on_event(&mut self, now: Instant, e: Event) {
        match e {
            Event::Member { kind, members } => self.on_member_event(kind, &members),
            Event::User(u) => {
                if let Some(id) = Self::id_of(&u.payload)
                    && self.seen.insert(id)
                {
                    self.pending.push_back(SimEvent::UserEvent { id });
                }
            }
            Event::Query(q) => {
                let name = self.serf.local_name().to_string();
                let _ = self.serf.respond(now, q.handle, name.as_bytes());
                if let Some(id) = Self::id_of(&q.payload) {
                    self.pending.push_back(SimEvent::QueryReceived { id });
                }
            }
            Event::QueryResponse { id, from, .. } => {
                if let Some(&(sim_id, _)) = self.asked.get(&id) {
                    self.pending
                        .push_back(SimEvent::QueryResponse { id: sim_id, from });
                }
            }
            Event::QueryDone { id, complete, .. } => {
                if let Some((sim_id, timeout)) = self.asked.remove(&id) {
                    self.pending.push_back(SimEvent::QueryDone {
                        id: sim_id,
                        complete,
                        timeout,
                    });
                }
            }
            Event::JoinCompleted { joined, .. } => self
                .pending
                .push_back(SimEvent::JoinDone { ok: joined > 0 }),
            Event::LeaveCompleted => self.pending.push_back(SimEvent::LeaveDone),
            Event::KeyResponse { response, .. } => self.pending.push_back(SimEvent::KeyDone {
                nodes: response.num_nodes,
                answered: response.num_resp,
                errors: response.num_err,
            }),
            Event::KeyringChanged { keys } => self.keyring = Some(keys),
            Event::QueryAck { .. } | Event::Shutdown { .. } => {}
        }
    }
}

impl SerfNode {
    /// Applies the core's snapshot records, as a driver appending them to its file.
    fn take_records(&mut self) {
        while let Some(r) = self.serf.poll_persist() {
            self.snapshot.apply(&r, self.rejoin_after_leave);
        }
    }
}

fn normalize(status: MemberStatus) -> Option<MemberState> {
    match status {
        MemberStatus::Alive | MemberStatus::Leaving => Some(MemberState::Alive),
        MemberStatus::Failed => Some(MemberState::Dead),
        MemberStatus::Left => Some(MemberState::Left),
        MemberStatus::None => None,
    }
}

impl SimNode for SerfNode {
    const KIND: &'static str = "serf";
    const QUERIES_END: bool = true;
    const KEY_OPS: bool = true;
    type Config = serf::Config;
    type Snapshot = SerfDisk;

    fn configure(
        memberlist: memberlist::Config,
        overrides: &SerfOverrides,
    ) -> Result<serf::Config, String> {
        let mut config = serf::Config {
            // Serf sizes the memberlist's queues from its own setting.
            max_queue_depth: memberlist.max_queue_depth,
            memberlist,
            snapshot: true,
            // Query answers are names; the default timeout follows the cluster size.
            ..serf::Config::default()
        };
        overrides.apply(&mut config);
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    fn set_seeds(config: &mut serf::Config, seeds: &[SocketAddr]) {
        config.seeds = seeds.to_vec();
    }

    fn start(
        spec: &NodeSpec<serf::Config>,
        now: Instant,
        disk: Option<SerfDisk>,
    ) -> Result<Self, String> {
        let (snapshot, keyring) = disk.map_or((None, None), |d| (Some(d.snapshot), d.keyring));
        let mut config = spec.config.clone();
        if let Some(keys) = &keyring {
            config.memberlist.keyring =
                Some(Keyring::from_keys(keys.iter().cloned()).map_err(|e| e.to_string())?);
        }
        let serf = Serf::with_snapshot(
            config,
            &spec.name,
            spec.addr,
            spec.seed,
            now,
            snapshot.as_ref(),
        )
        .map_err(|e| e.to_string())?;
        Ok(SerfNode {
            serf,
            event_size: spec.event_size.max(8),
            in_view: BTreeSet::new(),
            seen: BTreeSet::new(),
            asked: BTreeMap::new(),
            pending: VecDeque::new(),
            snapshot: snapshot.unwrap_or_default(),
            keyring,
            rejoin_after_leave: spec.config.rejoin_after_leave,
        })
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.serf.handle_datagram(now, from, data);
    }

    fn accept_stream(&mut self, now: Instant, from: SocketAddr) -> Option<StreamId> {
        self.serf.accept_stream(now, from)
    }

    fn handle_stream(&mut self, now: Instant, id: StreamId, event: StreamEvent<'_>) {
        self.serf.handle_stream(now, id, event);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.serf.handle_timeout(now);
    }

    fn poll(&mut self, now: Instant, buf: &mut Vec<u8>) -> SimOutput {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return SimOutput::Event(e);
            }
            match SimOutput::from_core(self.serf.poll_output(buf)) {
                Ok(out) => {
                    if let SimOutput::Timeout(_) = out {
                        self.take_records();
                    }
                    return out;
                }
                Err(e) => self.on_event(now, e),
            }
        }
    }

    fn join(&mut self, now: Instant, seeds: &[SocketAddr]) -> bool {
        self.serf.join(now, seeds, false).is_ok()
    }

    fn leave(&mut self, now: Instant) {
        let _ = self.serf.leave(now);
    }

    fn shutdown(&mut self) -> Option<SerfDisk> {
        self.serf.shutdown();
        self.take_records();
        Some(SerfDisk {
            snapshot: self.snapshot.clone(),
            keyring: self.keyring.clone(),
        })
    }

    fn key_op(&mut self, now: Instant, op: KeyOp, key: u8) -> bool {
        let key = scenario_key(key);
        let started = match op {
            KeyOp::Install => self.serf.install_key(now, &key),
            KeyOp::Use => self.serf.use_key(now, &key),
            KeyOp::Remove => self.serf.remove_key(now, &key),
        };
        started.is_ok()
    }

    fn user_event(&mut self, now: Instant, id: u64) -> bool {
        self.seen.insert(id);
        let p = self.payload(id);
        self.serf.user_event(now, "sim", &p, false).is_ok()
    }

    fn query(&mut self, now: Instant, id: u64) -> bool {
        let p = self.payload(id);
        let timeout = self.serf.default_query_timeout();
        match self.serf.query(now, "sim", &p, &QueryParams::default()) {
            Ok(qid) => {
                self.asked.insert(qid, (id, timeout));
                true
            }
            Err(_) => false,
        }
    }

    fn incarnation(&self) -> u32 {
        self.serf.memberlist().local_node().incarnation()
    }

    fn member(&self, name: &str) -> Option<MemberView> {
        let m = self.serf.member(name)?;
        let mut state = normalize(m.status)?;
        // Serf has no suspect status; the memberlist underneath knows.
        let suspected = self
            .serf
            .memberlist()
            .member(name)
            .is_some_and(|n| n.state() == memberlist::NodeState::Suspect);
        if state == MemberState::Alive && suspected {
            state = MemberState::Suspect;
        }
        Some(MemberView {
            state,
            incarnation: self.incarnation_of(name),
            addr: m.addr,
        })
    }

    fn num_alive(&self) -> usize {
        self.serf.num_alive()
    }

    fn counters(&self) -> NodeCounters {
        let ml = self.serf.memberlist();
        let m = ml.metrics();
        let c = ml.config();
        NodeCounters {
            suspicions: m.suspicions,
            probes_failed: m.probes_failed,
            refutes: m.refutes,
            deaths_declared: m.deaths_declared,
            broadcasts_dropped: m.broadcasts_dropped,
            queue_depth: ml.queue_depths().into_iter().max().unwrap_or(0),
            queue_limit: c.max_queue_depth,
            members: self.serf.num_members(),
            members_limit: c.max_members,
            health: ml.health_score(),
        }
    }

    fn forget_after(config: &serf::Config) -> core::time::Duration {
        // Incarnations come from the memberlist, which forgets dead members after this.
        config.memberlist.gossip_to_the_dead_time
    }
}
