//! Queries: sending, receiving with filters and deduplication, responses (direct, relayed,
//! over a stream when large), early completion, and the internal queries (serf `query.go`,
//! `internal_query.go`, `keymanager.go`).

use super::clock::LamportTime;
use super::core::{Action, Core, KeyNodeResponse, KeyOp, QueryKind, SerfTimer};
use super::member::{MemberStatus, decode_tags};
use super::messages::{
    Filter, FilterRef, QUERY_FLAG_ACK, QUERY_FLAG_NO_BROADCAST, QueryMsg, QueryResponseMsg,
    RelayMsg,
};
use super::snapshot::Record;
use super::{
    Event, INTERNAL_QUERY_PREFIX, KeyResponse, QueryEvent, QueryHandle, QueryId, QueryParams,
    SerfError, ShutdownReason, TIER_QUERY,
};
use crate::log::{Level, LogMessage};
use crate::memberlist::suspicion::retransmit_limit;
use crate::name::Name;
use crate::time::Instant;
use crate::transform::SecretKey;
use crate::wire::codec::{Decoder, Encoder};
use bytes::Bytes;
use core::net::SocketAddr;
use core::time::Duration;
use std::collections::BTreeSet;

/// Most received queries awaiting an answer at once; the oldest are forgotten beyond it.
const MAX_INCOMING: usize = 2048;
/// Most relay copies an answer is sent through. Go honours up to 255, so one query could
/// make every member send 256 packets toward its origin.
pub const MAX_RELAY_FACTOR: u8 = 5;
/// Longest timeout honoured from a peer's query, so a bad peer cannot pin state.
const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(3600);
/// How often received queries past their deadline are forgotten (one timer for all, so a
/// flood of queries cannot grow the timer heap).
const INCOMING_SWEEP: Duration = Duration::from_secs(1);
/// Regex programs from the network are compiled with this size limit.
const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// The query ids seen at one Lamport time (a slot of the dedup ring).
#[derive(Debug, Clone)]
pub(crate) struct QuerySlot {
    pub ltime: LamportTime,
    pub ids: Vec<u32>,
}

/// A query we sent.
#[derive(Debug)]
pub(crate) struct OutQuery {
    pub ltime: LamportTime,
    pub kind: QueryKind,
    pub request_ack: bool,
    pub acks: BTreeSet<Name>,
    pub responses: BTreeSet<Name>,
    /// The members that can answer, in our view when it was sent.
    pub expected: BTreeSet<Name>,
    pub key: KeyResponse,
    pub conflict_responses: usize,
    pub conflict_matching: usize,
    /// The other claimant of our name answered the vote itself: it is alive.
    pub conflict_holder_answered: bool,
    /// The encoded query, for direct re-sends.
    pub msg: Vec<u8>,
}

/// A query we received and may still answer.
#[derive(Debug)]
pub(crate) struct InQuery {
    pub ltime: LamportTime,
    pub id: u32,
    pub origin: SocketAddr,
    pub source: Name,
    pub deadline: Instant,
    pub relay_factor: u8,
    /// Answered already.
    pub responded: bool,
}

fn compile(expr: &str) -> Result<regex_lite::Regex, String> {
    regex_lite::RegexBuilder::new(expr)
        .size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(64)
        .build()
        .map_err(|e| e.to_string())
}

impl Core {
    /// The default query timeout: `gossip_interval * mult * ceil(log10(n + 1))`.
    pub fn default_query_timeout(&self, n: usize) -> Duration {
        let scale = retransmit_limit(1, n).max(1);
        self.config
            .memberlist
            .gossip_interval
            .saturating_mul(self.config.query_timeout_mult.saturating_mul(scale))
    }

    /// Sends a query (serf `Query`). `n` is the memberlist's alive count.
    pub fn query(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        params: &QueryParams,
        n: usize,
        kind: QueryKind,
    ) -> Result<QueryId, SerfError> {
        let mut filters = Vec::new();
        if !params.filter_nodes.is_empty() {
            for n in &params.filter_nodes {
                Name::new(n).map_err(|e| SerfError::BadFilter {
                    tag: "node".into(),
                    reason: format!("{n:?}: {e}"),
                })?;
            }
            filters.push(Filter::Nodes(params.filter_nodes.clone()));
        }
        let mut tag_filters = Vec::new();
        for (tag, expr) in &params.filter_tags {
            let re = compile(expr).map_err(|reason| SerfError::BadFilter {
                tag: tag.clone(),
                reason,
            })?;
            tag_filters.push((tag.clone(), re));
            filters.push(Filter::Tag {
                tag: tag.clone(),
                expr: expr.clone(),
            });
        }
        let timeout = params
            .timeout
            .unwrap_or_else(|| self.default_query_timeout(n));
        let flags = if params.request_ack {
            QUERY_FLAG_ACK
        } else {
            0
        };
        let ltime = self.query_clock.time();
        let id = loop {
            let id = self.rng.next_u32() & 0x7fff_ffff;
            if !self.queries.contains_key(&id) {
                break id;
            }
        };
        let mut msg = Vec::new();
        QueryMsg::encode(
            &mut msg,
            ltime,
            id,
            self.addr,
            &self.name,
            &filters,
            flags,
            params.relay_factor,
            timeout,
            name,
            payload,
        );
        if msg.len() > self.config.query_size_limit {
            return Err(SerfError::QueryTooLarge {
                size: msg.len(),
                limit: self.config.query_size_limit,
            });
        }
        // Who can answer: alive members passing the filters, in our view (serf #509).
        let node_filter: Option<BTreeSet<&str>> = (!params.filter_nodes.is_empty())
            .then(|| params.filter_nodes.iter().map(String::as_str).collect());
        let expected: BTreeSet<Name> = self
            .members()
            .filter(|m| m.status == MemberStatus::Alive)
            .filter(|m| {
                node_filter
                    .as_ref()
                    .is_none_or(|f| f.contains(m.name.as_str()))
            })
            .filter(|m| {
                tag_filters
                    .iter()
                    .all(|(tag, re)| re.is_match(m.tags.get(tag).map(String::as_str).unwrap_or("")))
            })
            .filter(|m| kind != QueryKind::Conflict || m.name != self.name)
            .map(|m| m.name.clone())
            .collect();
        // Members named by a node filter get it directly too: gossip alone misses a given
        // member with probability about e^-retransmits.
        let direct: Vec<SocketAddr> = match &node_filter {
            Some(f) => self
                .members()
                .filter(|m| m.status == MemberStatus::Alive && m.name != self.name)
                .filter(|m| f.contains(m.name.as_str()))
                .map(|m| m.addr)
                .collect(),
            None => Vec::new(),
        };
        for to in direct {
            self.outbox.push_back(Action::Send {
                to,
                msg: msg.clone(),
            });
        }
        // Answers are expected (acks asked for, an internal query, or a filter naming who
        // should answer): re-send directly to members that have not answered a third and
        // two thirds into the timeout. In a small cluster the retransmit limit is low
        // (2 at 4 nodes with the local profile), and gossip misses a given member often.
        let filtered = node_filter.is_some() || !tag_filters.is_empty();
        if params.request_ack || kind != QueryKind::User || filtered {
            self.schedule(now + timeout / 3, SerfTimer::QueryRetry(id));
            self.schedule(now + (timeout - timeout / 3), SerfTimer::QueryRetry(id));
        }
        self.queries.insert(
            id,
            OutQuery {
                ltime,
                kind,
                request_ack: params.request_ack,
                acks: BTreeSet::new(),
                responses: BTreeSet::new(),
                expected,
                key: KeyResponse::default(),
                conflict_responses: 0,
                conflict_matching: 0,
                conflict_holder_answered: false,
                msg: msg.clone(),
            },
        );
        self.schedule(now + timeout, SerfTimer::QueryDeadline(id));
        self.last_now = now;
        // Process it locally too, then gossip it. (It decodes: every field was validated
        // above; if that ever failed, other nodes could not read it either.)
        if let Ok(Some(super::messages::SerfMessage::Query(q))) =
            super::messages::SerfMessage::decode(&msg)
        {
            self.handle_query(now, &q);
        }
        self.outbox
            .push_back(Action::broadcast(TIER_QUERY, &msg, None));
        Ok(QueryId(id))
    }

    /// Starts a keyring query (serf `KeyManager`).
    pub fn key_query(
        &mut self,
        now: Instant,
        op: KeyOp,
        key: Option<&SecretKey>,
        n: usize,
    ) -> Result<QueryId, SerfError> {
        let mut payload = Vec::new();
        if let Some(k) = key {
            Encoder::new(&mut payload).bytes(1, k.as_bytes());
        }
        let id = self.query(
            now,
            op.query_name(),
            &payload,
            &QueryParams::default(),
            n,
            QueryKind::Key(op),
        )?;
        Ok(id)
    }

    /// Whether this node passes the query's filters (serf `shouldProcessQuery`).
    fn passes_filters(&self, q: &QueryMsg<'_>) -> bool {
        for f in q.filters() {
            match f {
                FilterRef::Nodes(list) => {
                    if !list.iter().any(|n| n == self.name.as_str()) {
                        return false;
                    }
                }
                // A filter kind from a newer node: we cannot tell whether we match.
                FilterRef::Unknown => return false,
                FilterRef::Tag { tag, expr } => {
                    let Ok(re) = compile(expr) else {
                        return false;
                    };
                    let value = self.tags.get(tag).map(String::as_str).unwrap_or("");
                    if !re.is_match(value) {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// A query arrived (or was sent here). Returns whether to re-gossip it.
    pub fn handle_query(&mut self, now: Instant, q: &QueryMsg<'_>) -> bool {
        if !self.query_clock.plausible(q.ltime) {
            self.metrics.implausible_times += 1;
            return false;
        }
        self.query_clock.witness(q.ltime);
        if q.ltime < self.query_min_time {
            self.metrics.queries_too_old += 1;
            return false;
        }
        let window = self.query_buffer.len() as LamportTime;
        let cur = self.query_clock.time();
        if cur > window && q.ltime < cur - window {
            self.metrics.queries_too_old += 1;
            return false;
        }
        let idx = (q.ltime % window) as usize;
        match &mut self.query_buffer[idx] {
            Some(s) if s.ltime == q.ltime => {
                if s.ids.contains(&q.id) {
                    self.metrics.queries_duplicate += 1;
                    return false;
                }
                if s.ids.len() >= 256 {
                    self.metrics.queries_time_full += 1;
                    return false;
                }
                s.ids.push(q.id);
            }
            slot => {
                *slot = Some(QuerySlot {
                    ltime: q.ltime,
                    ids: vec![q.id],
                })
            }
        }
        if q.ltime > self.last_query_persisted {
            self.last_query_persisted = q.ltime;
            self.persist(Record::QueryClock(q.ltime));
        }
        // Re-gossip even if we do not process it: it is new to us.
        let rebroadcast = q.flags & QUERY_FLAG_NO_BROADCAST == 0;
        if !self.passes_filters(q) {
            return rebroadcast;
        }
        self.metrics.queries_delivered += 1;
        if self.logs_enabled(Level::Debug) {
            self.log(LogMessage::QueryReceived {
                name: q.name.to_string(),
            });
        }
        let source = Name::from_str_unchecked(q.source_node);
        // Answers go to the address the query gives (a node that joined a moment ago, or
        // the other claimant in a name conflict, is not known at it). Relayed copies,
        // which multiply what one query makes the cluster send there, only when the
        // source is a member we know at that address, and at most MAX_RELAY_FACTOR.
        let origin = q.addr;
        let relay_factor = match self.member_state(q.source_node) {
            Some(m) if m.member.addr == q.addr => q.relay_factor.min(MAX_RELAY_FACTOR),
            Some(_) => {
                self.metrics.query_origin_mismatch += 1;
                0
            }
            None => 0,
        };
        if q.flags & QUERY_FLAG_ACK != 0 {
            let mut ack = Vec::new();
            QueryResponseMsg {
                ltime: q.ltime,
                id: q.id,
                from: &self.name,
                flags: QUERY_FLAG_ACK,
                payload: &[],
            }
            .encode(&mut ack);
            self.send_response(origin, &source, ack, relay_factor);
        }
        let handle = self.next_handle;
        self.next_handle += 1;
        let deadline = now + q.timeout.min(MAX_QUERY_TIMEOUT);
        if self.incoming.len() >= MAX_INCOMING {
            self.incoming.pop_first();
        }
        self.incoming.insert(
            handle,
            InQuery {
                ltime: q.ltime,
                id: q.id,
                origin,
                source: source.clone(),
                deadline,
                relay_factor,
                responded: false,
            },
        );
        if !self.incoming_sweep_scheduled {
            self.incoming_sweep_scheduled = true;
            self.schedule(now + INCOMING_SWEEP, SerfTimer::IncomingSweep);
        }
        if q.name.starts_with(INTERNAL_QUERY_PREFIX) {
            self.handle_internal_query(handle, q);
        } else {
            self.events.push_back(Event::Query(QueryEvent {
                handle: QueryHandle(handle),
                ltime: q.ltime,
                name: q.name.to_string(),
                payload: Bytes::copy_from_slice(q.payload),
                source,
                deadline,
            }));
        }
        rebroadcast
    }

    /// Internal queries never reach the application.
    fn handle_internal_query(&mut self, handle: u64, q: &QueryMsg<'_>) {
        let now = self.last_now;
        if q.name == "_serf_ping" {
            // Acked above if asked; nothing else to do.
            self.incoming.remove(&handle);
        } else if q.name == "_serf_conflict" {
            // Answer with our view of the contested name, unless it is ours.
            let Ok(node) = core::str::from_utf8(q.payload) else {
                return;
            };
            let mut out = Vec::new();
            let about_us = node == self.name.as_str();
            let origin = self.incoming.get(&handle).map(|q| q.origin);
            if about_us && origin == Some(self.addr) {
                // Our own vote.
                self.incoming.remove(&handle);
                return;
            }
            // About us from elsewhere: we are the other claimant, and answer with our own
            // record, which proves we are alive. Go stays silent here, so a node that
            // restarted at a new address before anyone noticed the old one was gone lost
            // its vote to the views of a dead process and shut itself down.
            let m = if about_us {
                self.member_state(self.name.as_str())
            } else {
                self.member_state(node)
            };
            if let Some(m) = m {
                let mut meta = Vec::new();
                super::member::encode_tags(&m.member.tags, &mut meta);
                Encoder::new(&mut out)
                    .str(1, &m.member.name)
                    .addr(2, &m.member.addr)
                    .bytes(3, &meta)
                    .uint(4, m.member.status as u64);
            }
            let _ = self.respond_internal(now, QueryHandle(handle), &out);
        } else if let Some(op) = KeyOp::from_query_name(q.name) {
            let key = {
                let mut key = None;
                let mut d = Decoder::new(q.payload);
                while let Ok(Some((n, v))) = d.next_field() {
                    if n == 1 {
                        key = v
                            .as_bytes()
                            .ok()
                            .and_then(|b| SecretKey::from_slice(b).ok());
                    }
                }
                key
            };
            self.outbox.push_back(Action::KeyOp { op, key, handle });
        } else {
            self.incoming.remove(&handle);
        }
    }

    /// Sends a response or ack to a query's origin, plus relayed copies.
    fn send_response(&mut self, origin: SocketAddr, source: &Name, msg: Vec<u8>, relay: u8) {
        if relay > 0 && self.num_members() > usize::from(relay) {
            let mut relayed = Vec::new();
            RelayMsg {
                dest: origin,
                dest_name: source,
                inner: &msg,
            }
            .encode(&mut relayed);
            let seed = self.rng.next_u64();
            // Relaying through the origin itself would be no detour.
            let peers = self.random_alive_peers(usize::from(relay) + 1, seed);
            for peer in peers
                .into_iter()
                .filter(|&p| p != origin)
                .take(usize::from(relay))
            {
                self.outbox.push_back(Action::Send {
                    to: peer,
                    msg: relayed.clone(),
                });
            }
        }
        self.outbox.push_back(Action::Send { to: origin, msg });
    }

    /// Answers a received query on behalf of the application.
    pub fn respond(
        &mut self,
        now: Instant,
        handle: super::QueryHandle,
        payload: &[u8],
    ) -> Result<(), SerfError> {
        let limit = self.config.query_response_size_limit;
        self.answer(now, handle, payload, Some(limit))
    }

    /// Answers an internal query (no size limit beyond the stream frame).
    pub fn respond_internal(
        &mut self,
        now: Instant,
        handle: QueryHandle,
        payload: &[u8],
    ) -> Result<(), SerfError> {
        self.answer(now, handle, payload, None)
    }

    /// Sends the answer to a received query, once, before its deadline. An answer over
    /// `limit` is refused and the query stays open for a smaller one.
    fn answer(
        &mut self,
        now: Instant,
        handle: QueryHandle,
        payload: &[u8],
        limit: Option<usize>,
    ) -> Result<(), SerfError> {
        let q = self
            .incoming
            .get(&handle.0)
            .ok_or(SerfError::QueryExpired)?;
        if now > q.deadline {
            self.incoming.remove(&handle.0);
            return Err(SerfError::QueryExpired);
        }
        if q.responded {
            return Err(SerfError::AlreadyResponded);
        }
        let mut msg = Vec::new();
        QueryResponseMsg {
            ltime: q.ltime,
            id: q.id,
            from: &self.name,
            flags: 0,
            payload,
        }
        .encode(&mut msg);
        if let Some(limit) = limit
            && msg.len() > limit
        {
            return Err(SerfError::ResponseTooLarge {
                size: msg.len(),
                limit,
            });
        }
        // Kept, marked, until the sweep after its deadline: a second answer is refused
        // as such, not as expired.
        let q = self.incoming.get_mut(&handle.0).expect("looked up above");
        q.responded = true;
        let (origin, source, relay) = (q.origin, q.source.clone(), q.relay_factor);
        self.send_response(origin, &source, msg, relay);
        Ok(())
    }

    /// An ack or response to one of our queries.
    pub fn handle_query_response(&mut self, now: Instant, r: &QueryResponseMsg<'_>) {
        // In a name-conflict vote only members we hold alive count: made-up names must
        // not outvote them.
        let voter = r.from != self.name.as_str()
            && self
                .member_state(r.from)
                .is_some_and(|m| m.member.status == MemberStatus::Alive);
        let Some(q) = self.queries.get_mut(&r.id) else {
            self.metrics.query_late += 1;
            return;
        };
        if q.ltime != r.ltime {
            self.metrics.query_late += 1;
            return;
        }
        let from = Name::from_str_unchecked(r.from);
        let id = QueryId(r.id);
        if r.is_ack() {
            if !q.acks.insert(from.clone()) {
                self.metrics.query_duplicates += 1;
                return;
            }
            self.metrics.query_acks += 1;
            if q.kind == QueryKind::User || q.kind == QueryKind::Ping {
                self.events.push_back(Event::QueryAck { id, from });
            }
        } else {
            if !q.responses.insert(from.clone()) {
                self.metrics.query_duplicates += 1;
                return;
            }
            self.metrics.query_responses += 1;
            match q.kind {
                QueryKind::User | QueryKind::Ping => {
                    self.events.push_back(Event::QueryResponse {
                        id,
                        from,
                        payload: Bytes::copy_from_slice(r.payload),
                    });
                }
                QueryKind::Key(_) => aggregate_key_response(&mut q.key, from, r.payload),
                QueryKind::Conflict if r.from == self.name.as_str() => {
                    if conflict_response_addr(r.payload).is_some_and(|a| a != self.addr) {
                        q.conflict_holder_answered = true;
                    }
                }
                QueryKind::Conflict if voter => {
                    if let Some(addr) = conflict_response_addr(r.payload) {
                        q.conflict_responses += 1;
                        if addr == self.addr {
                            q.conflict_matching += 1;
                        }
                    }
                }
                QueryKind::Conflict => {}
            }
        }
        self.check_query_complete(now, r.id);
    }

    /// Ends a query early once every member that can answer has (serf #509, #398).
    pub fn check_query_complete(&mut self, now: Instant, id: u32) {
        let Some(q) = self.queries.get(&id) else {
            return;
        };
        let still_alive = |n: &Name| {
            self.member(n)
                .is_some_and(|m| m.status == MemberStatus::Alive)
        };
        let answered = if q.kind == QueryKind::Ping {
            &q.acks
        } else {
            &q.responses
        };
        let mut waiting = q.expected.iter().filter(|n| still_alive(n));
        let complete = waiting.all(|n| {
            answered.contains(n)
                && (!q.request_ack || q.kind == QueryKind::Ping || q.acks.contains(n))
        });
        if complete && !q.expected.is_empty() {
            self.finish_query(now, id, true);
        }
    }

    /// Re-sends a query directly to the expected members that have not answered yet.
    pub fn retry_query(&mut self, id: u32) {
        let Some(q) = self.queries.get(&id) else {
            return;
        };
        let answered = |n: &Name| q.acks.contains(n) || q.responses.contains(n);
        let targets: Vec<SocketAddr> = q
            .expected
            .iter()
            .filter(|n| !answered(n) && **n != self.name)
            .filter_map(|n| self.member(n))
            .filter(|m| m.status == MemberStatus::Alive)
            .map(|m| m.addr)
            .collect();
        let msg = q.msg.clone();
        self.metrics.query_retries += targets.len() as u64;
        for to in targets {
            self.outbox.push_back(Action::Send {
                to,
                msg: msg.clone(),
            });
        }
    }

    /// Forgets received queries past their deadline; re-arms while any remain.
    pub fn sweep_incoming(&mut self, now: Instant) {
        self.incoming.retain(|_, q| q.deadline > now);
        self.incoming_sweep_scheduled = !self.incoming.is_empty();
        if self.incoming_sweep_scheduled {
            self.schedule(now + INCOMING_SWEEP, SerfTimer::IncomingSweep);
        }
    }

    /// Members failed or left: queries waiting on them may be complete now.
    pub fn recheck_queries(&mut self, now: Instant) {
        let ids: Vec<u32> = self.queries.keys().copied().collect();
        for id in ids {
            self.check_query_complete(now, id);
        }
    }

    /// Ends a query: reports it, and acts on internal ones.
    pub fn finish_query(&mut self, _now: Instant, id: u32, complete: bool) {
        let Some(mut q) = self.queries.remove(&id) else {
            return;
        };
        let qid = QueryId(id);
        match q.kind {
            QueryKind::Key(_) => {
                q.key.num_nodes = self.num_alive();
                self.events.push_back(Event::KeyResponse {
                    id: qid,
                    response: q.key,
                });
            }
            QueryKind::Conflict => {
                // Stay only with a majority of the answers on our side (serf
                // resolveNodeConflict).
                // Stay when nobody answered: no vote is no evidence against us (Go shuts
                // down then, so a forged alive alone could stop a node). Stay too when the
                // other claimant did not answer: the views that hold it may only not have
                // noticed yet that it is gone (a process restarted at a new address); once
                // they fail it and forget it, they take our address.
                let majority = q.conflict_responses / 2 + 1;
                let won = q.conflict_responses == 0
                    || q.conflict_matching >= majority
                    || !q.conflict_holder_answered;
                self.log(LogMessage::NameConflictResolved {
                    won,
                    votes: q.conflict_matching,
                    responses: q.conflict_responses,
                });
                if !won {
                    self.outbox
                        .push_back(Action::Shutdown(ShutdownReason::NameConflictLost));
                }
            }
            QueryKind::User | QueryKind::Ping => {}
        }
        self.events.push_back(Event::QueryDone {
            id: qid,
            acks: q.acks.len(),
            responses: q.responses.len(),
            complete,
        });
    }

    /// Another node claims our name: vote (serf `resolveNodeConflict`).
    pub fn on_conflict(
        &mut self,
        now: Instant,
        existing: &crate::memberlist::Node,
        other: &crate::memberlist::Node,
    ) {
        if existing.name() != &self.name
            || !self.config.enable_name_conflict_resolution
            || !self.may_act_on_its_own()
        {
            return;
        }
        if self.queries.values().any(|q| q.kind == QueryKind::Conflict) {
            return;
        }
        self.log(LogMessage::NameConflict {
            theirs: other.addr(),
        });
        let n = self.num_alive();
        let name = self.name.clone();
        let _ = self.query(
            now,
            "_serf_conflict",
            name.as_bytes(),
            &QueryParams::default(),
            n,
            QueryKind::Conflict,
        );
    }
}

/// Adds one node's keyring answer to the aggregate (serf `streamKeyResp`).
fn aggregate_key_response(agg: &mut KeyResponse, from: Name, payload: &[u8]) {
    agg.num_resp += 1;
    let Some(r) = KeyNodeResponse::decode(payload) else {
        agg.messages
            .insert(from, "Failed to decode key query response".into());
        agg.num_err += 1;
        return;
    };
    if !r.result {
        agg.messages.insert(from.clone(), r.message.clone());
        agg.num_err += 1;
    } else if !r.message.is_empty() {
        agg.messages.insert(from.clone(), r.message.clone());
    }
    for k in &r.keys {
        *agg.keys.entry(*k).or_default() += 1;
    }
    if let Some(p) = r.primary {
        *agg.primary_keys.entry(p).or_default() += 1;
    }
}

/// The address in a conflict answer, if it holds a member.
fn conflict_response_addr(payload: &[u8]) -> Option<SocketAddr> {
    let mut d = Decoder::new(payload);
    let mut addr = None;
    while let Ok(Some((n, v))) = d.next_field() {
        if n == 2 {
            addr = v.as_addr().ok();
        }
        if n == 3 {
            let _ = decode_tags(v.as_bytes().ok()?);
        }
    }
    addr
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serf::Config;
    use crate::serf::messages::SerfMessage;

    fn core() -> Core {
        Core::new(
            Config::default(),
            Name::new("me").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 1)),
            1,
            Instant::ZERO,
            None,
        )
    }

    #[test]
    fn default_query_timeout_matches_the_reference_table() {
        let c = core();
        let got: Vec<u128> = [5, 50, 500, 5000]
            .iter()
            .map(|&n| c.default_query_timeout(n).as_millis())
            .collect();
        assert_eq!(got, vec![3200, 6400, 9600, 12800]);
    }

    #[test]
    fn a_full_lamport_time_is_counted_apart_from_old_messages() {
        let mut c = core();
        for i in 0..=crate::serf::events::MAX_EVENTS_PER_LTIME {
            c.handle_user_event(5, &format!("e{i}"), b"", false);
        }
        assert_eq!(
            (c.metrics.events_time_full, c.metrics.events_too_old),
            (1, 0)
        );
        for id in 0..=256u32 {
            let mut buf = Vec::new();
            let origin = SocketAddr::from(([127, 0, 0, 1], 2));
            let timeout = Duration::from_secs(1);
            QueryMsg::encode(&mut buf, 5, id, origin, "o", &[], 0, 0, timeout, "q", b"");
            let Ok(Some(SerfMessage::Query(q))) = SerfMessage::decode(&buf) else {
                panic!("a query")
            };
            c.handle_query(Instant::ZERO, &q);
        }
        assert_eq!(
            (c.metrics.queries_time_full, c.metrics.queries_too_old),
            (1, 0)
        );
    }

    #[test]
    fn intents_about_unknown_members_are_buffered_and_bounded() {
        let mut c = core();
        let now = Instant::ZERO;
        assert!(c.handle_join_intent(now, 5, "later"));
        assert!(!c.handle_join_intent(now, 5, "later"), "not news twice");
        assert!(
            c.handle_leave_intent(now, 7, "later", false),
            "a newer intent replaces it"
        );
        for i in 0..5000 {
            c.handle_join_intent(now, 1, &format!("ghost-{i}"));
        }
        assert!(c.metrics.intents_dropped > 0, "the buffer is bounded");
        assert!(c.clock.time() > 7, "intents advance the clock");
    }
}
