'use strict';
// The Node.js host of the Serf core compiled to wasm: it owns the UDP socket, the TCP
// listener and connections, and the timer, and feeds them to the core (`SerfCore`),
// which is pure and never touches I/O or clocks.
//
// One turn of the loop: an input (a datagram, stream bytes, a timer, a command) goes into
// the core with `performance.now()`; at the end of the event-loop turn (`setImmediate`) the
// host takes the packed output once, carries it out, delivers the events, and re-arms the
// timer for the core's next deadline. Many datagrams in one turn cost one crossing.

const dgram = require('node:dgram');
const net = require('node:net');
const crypto = require('node:crypto');
const { EventEmitter } = require('node:events');
const { performance } = require('node:perf_hooks');

let core;
try {
  core = require('./pkg/serf_driver_wasm.js');
} catch (e) {
  throw new Error(
    'serf-wasm: the wasm build is missing (' + e.message + '). ' +
      'Build it from the repository root with: scripts/build-wasm.sh'
  );
}

// Operation bytes of the packed output (serf-driver-wasm/src/ops.rs).
const OP_TRANSMIT = 1;
const OP_OPEN = 2;
const OP_FRAME = 3;
const OP_CLOSE = 4;
const OP_ABORT = 5;

// A stream with no traffic for this long is torn down (and reported failed): the core
// ends its exchanges within its stream deadlines, so this only reaps peers that never
// close their end.
const STREAM_IDLE_MS = 60_000;
// setTimeout's longest delay.
const MAX_TIMER_MS = 2 ** 31 - 1;

const encoder = new TextEncoder();

/** A payload as bytes: strings are UTF-8. */
function bytes(payload) {
  if (payload === undefined || payload === null) return new Uint8Array(0);
  if (typeof payload === 'string') return encoder.encode(payload);
  if (payload instanceof Uint8Array) return payload;
  if (ArrayBuffer.isView(payload)) {
    return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
  }
  throw new TypeError('payload must be a string or a Uint8Array');
}

/**
 * Tears a connection down so the peer sees a reset. Only on an open socket whose write
 * side is not ended: Node's resetAndDestroy on an ended or connecting socket can spin
 * (seen with Node 20); a plain destroy is the fallback.
 */
function abort(socket) {
  if (socket.readyState === 'open' && !socket.writableEnded) socket.resetAndDestroy();
  else socket.destroy();
}

/** Splits "ip:port" (IPv6 as "[::1]:7946"). */
function splitAddr(addr) {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(addr);
  if (!m || Number(m[2]) > 65535 || net.isIP(m[1]) === 0) {
    throw new Error(`${JSON.stringify(addr)} is not an "ip:port" address (e.g. "127.0.0.1:7946")`);
  }
  return { host: m[1], port: Number(m[2]) };
}

function joinAddr(host, port) {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Binds UDP and TCP on one port; with port 0, retries until the OS's UDP port is free for TCP too. */
async function bindBoth(host, port) {
  const attempts = port === 0 ? 16 : 1;
  let lastError;
  for (let i = 0; i < attempts; i++) {
    const udp = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
    await new Promise((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, host, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    const bound = udp.address().port;
    const tcp = net.createServer({ allowHalfOpen: true });
    try {
      await new Promise((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ port: bound, host, exclusive: true }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
      return { udp, tcp, port: bound };
    } catch (e) {
      lastError = e;
      udp.close();
    }
  }
  throw lastError;
}

/**
 * A Serf node on Node.js sockets. Create with `start(options)`.
 *
 * Events: every event is emitted as 'event' and under its own type ('member-join',
 * 'member-leave', 'member-failed', 'member-update', 'member-reap', 'user', 'query',
 * 'keyring-changed', 'shutdown', ...). A 'query' event has `respond(payload)`.
 */
class SerfNode extends EventEmitter {
  constructor(serf, udp, tcp, address) {
    super();
    this._core = serf;
    this._udp = udp;
    this._tcp = tcp;
    /** "ip:port" other nodes reach this one at. */
    this.address = address;
    /** This node's name. */
    this.name = serf.localMember().name;
    this._conns = new Map(); // stream id -> { socket, ended }
    this._addrCache = new Map(); // numeric IPv4 address + port -> { host, port }
    this._flushQueued = false;
    this._timer = null;
    this._timerAt = Infinity;
    this._joins = new Map(); // join id -> { resolve, reject }
    this._leaves = [];
    this._queries = new Map(); // query id -> collector
    this._keyOps = new Map(); // key query id -> { resolve }
    this._closed = false;

    udp.on('message', (msg, rinfo) => {
      if (this._closed) return;
      this._core.handleDatagram(performance.now(), rinfo.address, rinfo.port, msg);
      this._schedule();
    });
    // A send error (no route, buffer full) loses the datagram, as the network could.
    udp.on('error', () => {});
    tcp.on('connection', (socket) => this._accept(socket));
    tcp.on('error', () => {});
    this._flush();
  }

  // ---- the loop ---------------------------------------------------------------------

  _schedule() {
    if (this._flushQueued || this._closed) return;
    this._flushQueued = true;
    setImmediate(() => {
      this._flushQueued = false;
      this._flush();
    });
  }

  /** Carries out what the core asked, delivers its events, re-arms the timer. */
  _flush() {
    if (this._closed) return;
    // Event handlers may call commands, which produce more output: loop until quiet.
    for (;;) {
      const ops = this._core.takeOutput();
      if (ops !== undefined) this._execute(ops);
      const event = this._core.takeEvent();
      if (event === undefined && ops === undefined) break;
      if (event !== undefined) this._dispatch(event);
      if (this._closed) return;
    }
    this._armTimer();
  }

  _armTimer() {
    const at = this._core.nextDeadline();
    if (at === this._timerAt && this._timer !== null) return;
    if (this._timer !== null) clearTimeout(this._timer);
    this._timerAt = at;
    if (!Number.isFinite(at)) {
      this._timer = null;
      return;
    }
    const delay = Math.min(Math.max(0, at - performance.now()), MAX_TIMER_MS);
    this._timer = setTimeout(() => {
      this._timer = null;
      if (this._closed) return;
      this._core.handleTimeout(performance.now());
      this._flush();
    }, Math.ceil(delay));
  }

  _addr(view, off) {
    const family = view.getUint8(off);
    if (family === 4) {
      const ip = view.getUint32(off + 1, false);
      const port = view.getUint16(off + 5, true);
      // Datagrams go to few addresses: cache their strings rather than make one each time.
      const key = ip * 65536 + port;
      let a = this._addrCache.get(key);
      if (a === undefined) {
        a = { host: `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`, port };
        if (this._addrCache.size >= 4096) this._addrCache.clear();
        this._addrCache.set(key, a);
      }
      return [a, off + 7];
    }
    const parts = [];
    for (let i = 0; i < 8; i++) parts.push(view.getUint16(off + 1 + 2 * i, false).toString(16));
    const port = view.getUint16(off + 17, true);
    return [{ host: parts.join(':'), port }, off + 19];
  }

  _execute(ops) {
    const view = new DataView(ops.buffer, ops.byteOffset, ops.byteLength);
    let off = 0;
    while (off < ops.byteLength) {
      const op = view.getUint8(off);
      off += 1;
      if (op === OP_TRANSMIT) {
        let to;
        [to, off] = this._addr(view, off);
        const len = view.getUint32(off, true);
        off += 4;
        // `ops` is a fresh copy per flush, so the socket may keep referring to it.
        this._udp.send(ops, off, len, to.port, to.host);
        off += len;
      } else if (op === OP_OPEN) {
        const id = view.getFloat64(off, true);
        let to;
        [to, off] = this._addr(view, off + 8);
        const deadline = view.getFloat64(off, true);
        const peerLen = view.getUint8(off + 8);
        off += 9 + peerLen;
        this._open(id, to, deadline);
      } else if (op === OP_FRAME) {
        const id = view.getFloat64(off, true);
        const len = view.getUint32(off + 8, true);
        off += 12;
        const c = this._conns.get(id);
        // Writes before the connection is up are queued by the socket itself.
        if (c !== undefined) c.socket.write(ops.subarray(off, off + len));
        off += len;
      } else if (op === OP_CLOSE) {
        const id = view.getFloat64(off, true);
        off += 8;
        const c = this._conns.get(id);
        // Orderly: what is queued is written, then our side ends; the peer's end or a
        // failure is still reported.
        if (c !== undefined) c.socket.end();
      } else if (op === OP_ABORT) {
        const id = view.getFloat64(off, true);
        off += 8;
        const c = this._conns.get(id);
        if (c !== undefined) {
          // Given up: nothing more is reported, and the peer sees a reset.
          c.done = true;
          this._conns.delete(id);
          abort(c.socket);
        }
      } else {
        throw new Error(`serf-wasm: unknown output operation ${op} (package and wasm build differ?)`);
      }
    }
  }

  _open(id, to, deadline) {
    const socket = net.connect({ host: to.host, port: to.port, allowHalfOpen: true });
    const c = this._track(id, socket);
    // The core gives up on the stream at its deadline; connecting longer is pointless.
    const wait = Math.max(0, deadline - performance.now());
    if (Number.isFinite(wait)) {
      c.connectTimer = setTimeout(() => {
        if (socket.connecting) this._fail(id, c);
      }, Math.min(wait, MAX_TIMER_MS));
      socket.once('connect', () => clearTimeout(c.connectTimer));
    }
  }

  _accept(socket) {
    if (this._closed) {
      socket.destroy();
      return;
    }
    const id = this._core.acceptStream(performance.now(), socket.remoteAddress, socket.remotePort);
    if (id === undefined) {
      // Refused (too many open): the core counted it.
      socket.destroy();
      this._schedule();
      return;
    }
    this._track(id, socket);
    this._schedule();
  }

  _track(id, socket) {
    const c = { socket, done: false, connectTimer: null };
    this._conns.set(id, c);
    socket.setNoDelay(true);
    socket.setTimeout(STREAM_IDLE_MS, () => this._fail(id, c));
    socket.on('data', (chunk) => {
      if (c.done) return;
      this._core.streamData(performance.now(), id, chunk);
      this._schedule();
    });
    socket.on('end', () => {
      if (c.done) return;
      c.done = true;
      this._core.streamClosed(performance.now(), id);
      // Our side may still be open (a peer that ends first): end it too.
      socket.end();
      this._schedule();
    });
    socket.on('error', () => this._fail(id, c));
    socket.on('close', () => {
      clearTimeout(c.connectTimer);
      if (this._conns.get(id) === c) this._conns.delete(id);
      // Closed without an end or error we saw (e.g. reset while idle): a failure.
      this._fail(id, c);
    });
    return c;
  }

  _fail(id, c) {
    clearTimeout(c.connectTimer);
    if (!c.done) {
      c.done = true;
      if (!this._closed) {
        this._core.streamFailed(performance.now(), id);
        this._schedule();
      }
    }
    if (!c.socket.destroyed) c.socket.destroy();
  }

  _dispatch(event) {
    switch (event.type) {
      case 'join-completed': {
        const w = this._joins.get(event.id);
        if (w !== undefined) {
          this._joins.delete(event.id);
          if (event.joined > 0) w.resolve(event.joined);
          else {
            const why = event.failed.map((f) => `${f.addr}: ${f.error}`).join('; ');
            w.reject(new Error(`join failed: ${why || 'no address answered'}`));
          }
        }
        break;
      }
      case 'leave-completed':
        for (const w of this._leaves.splice(0)) w.resolve();
        break;
      case 'query': {
        const handle = event.handle;
        event.respond = (payload) =>
          this._command(() => this._core.respond(performance.now(), handle, bytes(payload)));
        break;
      }
      case 'query-ack':
      case 'query-response':
      case 'query-done': {
        const q = this._queries.get(event.id);
        if (q === undefined) break;
        if (event.type === 'query-ack') q.acks.push(event.from);
        else if (event.type === 'query-response') {
          q.responses.push({ from: event.from, payload: event.payload });
          if (q.onResponse) q.onResponse({ from: event.from, payload: event.payload });
        } else {
          this._queries.delete(event.id);
          q.resolve({ acks: q.acks, responses: q.responses, complete: event.complete });
        }
        return; // answered through the query's promise only
      }
      case 'key-response': {
        const w = this._keyOps.get(event.id);
        if (w !== undefined) {
          this._keyOps.delete(event.id);
          w.resolve(event.response);
          return;
        }
        break;
      }
      default:
        break;
    }
    this.emit('event', event);
    this.emit(event.type, event);
  }

  /** Runs a command on the core, then carries out what it caused. */
  _command(f) {
    if (this._closed) throw new Error('serf-wasm: the node is shut down');
    const r = f();
    this._schedule();
    return r;
  }

  // ---- the application's API ----------------------------------------------------------

  /**
   * Joins the cluster through one or more "ip:port" seeds. Resolves with the number of
   * seeds joined; rejects if none answered.
   */
  join(seeds, { ignoreOld = false } = {}) {
    const list = Array.isArray(seeds) ? seeds : [seeds];
    return new Promise((resolve, reject) => {
      const id = this._command(() => this._core.join(performance.now(), list, ignoreOld));
      this._joins.set(id, { resolve, reject });
    });
  }

  /** Leaves gracefully; resolves once the cluster has been told. Then call `shutdown()`. */
  leave() {
    return new Promise((resolve, reject) => {
      try {
        this._leaves.push({ resolve, reject });
        this._command(() => this._core.leave(performance.now()));
      } catch (e) {
        this._leaves.pop();
        reject(e);
      }
    });
  }

  /** Sends a user event (payload: string or Uint8Array) to every member. */
  userEvent(name, payload, { coalesce = false } = {}) {
    this._command(() => this._core.userEvent(performance.now(), name, bytes(payload), coalesce));
  }

  /**
   * Sends a query. Resolves when it ends with `{acks, responses: [{from, payload}],
   * complete}`; `onResponse` sees each response as it comes.
   */
  query(name, payload, { filterNodes, filterTags, requestAck, relayFactor, timeoutMs, onResponse } = {}) {
    const params = { filterNodes, filterTags, requestAck, relayFactor, timeoutMs };
    for (const k of Object.keys(params)) if (params[k] === undefined) delete params[k];
    return new Promise((resolve) => {
      const id = this._command(() => this._core.query(performance.now(), name, bytes(payload), params));
      this._queries.set(id, { acks: [], responses: [], onResponse, resolve });
    });
  }

  /** Answers a query event (or use `event.respond(payload)`). */
  respond(handle, payload) {
    this._command(() => this._core.respond(performance.now(), handle, bytes(payload)));
  }

  /** Replaces this node's tags. */
  setTags(tags) {
    this._command(() => this._core.setTags(performance.now(), tags));
  }

  /** Forces a failed member out (`prune`: forget it at once). */
  forceLeave(name, { prune = false } = {}) {
    this._command(() => this._core.forceLeave(performance.now(), name, prune));
  }

  /** Keyring operations across the cluster; each resolves with the aggregated answer. */
  installKey(key) {
    return this._keyOp('install', key);
  }
  useKey(key) {
    return this._keyOp('use', key);
  }
  removeKey(key) {
    return this._keyOp('remove', key);
  }
  listKeys() {
    return this._keyOp('list', undefined);
  }
  _keyOp(op, key) {
    return new Promise((resolve) => {
      const id = this._command(() => this._core.keyOp(performance.now(), op, key));
      this._keyOps.set(id, { resolve });
    });
  }

  /** Every member known, in any status. */
  members() {
    return this._core.members();
  }

  /** This node as a member. */
  localMember() {
    return this._core.localMember();
  }

  /** Go's Stats() and the local state. */
  stats() {
    return this._core.stats();
  }

  /** Every counter by name: the core's and the driver's. */
  metrics() {
    return this._core.metrics();
  }

  /** Stops at once (call `leave()` first to go gracefully); closes every socket. */
  async shutdown() {
    if (this._closed) return;
    this._core.shutdown();
    const ops = this._core.takeOutput();
    if (ops !== undefined) this._execute(ops);
    this._closed = true;
    if (this._timer !== null) clearTimeout(this._timer);
    for (const c of this._conns.values()) {
      c.done = true;
      c.socket.destroy();
    }
    this._conns.clear();
    for (const w of this._leaves.splice(0)) w.reject(new Error('serf-wasm: shut down'));
    for (const w of this._joins.values()) w.reject(new Error('serf-wasm: shut down'));
    this._joins.clear();
    await Promise.all([
      new Promise((resolve) => this._udp.close(resolve)),
      new Promise((resolve) => this._tcp.close(resolve)),
    ]);
    this._core.free();
  }
}

/**
 * Starts a node: binds UDP and TCP on one port, creates the core with a seed from
 * Node's crypto, and runs the loop.
 *
 * @param {object} options the core's options (see index.d.ts) plus `bind` ("ip:port",
 *   default "0.0.0.0:7946"; port 0 picks a free port) and `advertise` ("ip:port" others
 *   reach this node at; default the bound address; required when binding 0.0.0.0).
 */
async function start(options) {
  const { bind = '0.0.0.0:7946', advertise, ...rest } = options || {};
  if (typeof rest.name !== 'string' || rest.name === '') {
    throw new Error('serf-wasm: options.name is required (a name unique in the cluster)');
  }
  const where = splitAddr(bind);
  const { udp, tcp, port } = await bindBoth(where.host, where.port);
  try {
    let address;
    if (advertise !== undefined) {
      const a = splitAddr(advertise);
      address = joinAddr(a.host, a.port === 0 ? port : a.port);
    } else if (where.host === '0.0.0.0' || where.host === '::') {
      throw new Error(
        'serf-wasm: bound to all interfaces; set options.advertise to the "ip:port" other nodes reach this one at'
      );
    } else {
      address = joinAddr(where.host, port);
    }
    const seed = rest.seed === undefined ? crypto.getRandomValues(new Uint8Array(8)) : rest.seed;
    const serf = new core.SerfCore({ ...rest, address, seed }, performance.now());
    return new SerfNode(serf, udp, tcp, address);
  } catch (e) {
    udp.close();
    tcp.close();
    throw e;
  }
}

/** A new random 32-byte key in base64, as `serf keygen` prints. */
function keygen() {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64');
}

module.exports = {
  start,
  keygen,
  SerfNode,
  SerfCore: core.SerfCore,
  FrameDecoder: core.FrameDecoder,
  encodeFrameHeader: core.encodeFrameHeader,
};
