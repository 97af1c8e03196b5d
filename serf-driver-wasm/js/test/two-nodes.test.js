'use strict';
// Two wasm nodes in one Node.js process over real loopback sockets.
//   node --test test/        (after scripts/build-wasm.sh)
const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const serf = require('..');

const text = (payload) => Buffer.from(payload).toString('utf8');

function next(node, type) {
  return new Promise((resolve) => node.once(type, resolve));
}

test('two nodes join, exchange an event and a query, and one leaves', { timeout: 30_000 }, async () => {
  const key = serf.keygen();
  const common = { bind: '127.0.0.1:0', keys: [key], label: 't', profile: 'local' };
  const a = await serf.start({ name: 'a', ...common });
  const b = await serf.start({ name: 'b', ...common });
  try {
    assert.strictEqual(await b.join([a.address]), 1);
    const event = next(a, 'user');
    b.userEvent('hello', 'from b');
    const e = await event;
    assert.strictEqual(e.name, 'hello');
    assert.strictEqual(text(e.payload), 'from b');

    b.on('query', (q) => q.respond(`b got ${text(q.payload)}`));
    const r = await a.query('ping', 'x', { filterNodes: ['b'], requestAck: true, timeoutMs: 5000 });
    assert.deepStrictEqual(r.acks, ['b']);
    assert.deepStrictEqual(r.responses.map((x) => [x.from, text(x.payload)]), [['b', 'b got x']]);
    assert.strictEqual(r.complete, true);

    const left = next(a, 'member-leave');
    await b.leave();
    await b.shutdown();
    const ev = await left;
    assert.deepStrictEqual(ev.members.map((m) => [m.name, m.status]), [['b', 'left']]);
    assert.strictEqual(a.stats().encrypted, true);
  } finally {
    await a.shutdown();
    await b.shutdown();
  }
});

test('a node with another key cannot join', { timeout: 30_000 }, async () => {
  const a = await serf.start({ name: 'a', bind: '127.0.0.1:0', keys: [serf.keygen()], profile: 'local' });
  const b = await serf.start({ name: 'b', bind: '127.0.0.1:0', keys: [serf.keygen()], profile: 'local' });
  try {
    await assert.rejects(b.join(a.address), /join failed/);
    assert.strictEqual(a.members().length, 1);
  } finally {
    await a.shutdown();
    await b.shutdown();
  }
});

test('wrong options are refused with their name', async () => {
  await assert.rejects(serf.start({ name: 'a', bind: '127.0.0.1:0', profile: 'fast' }), /options.profile/);
  await assert.rejects(serf.start({ name: 'a', bind: '127.0.0.1:0', keys: ['short'] }), /options.keys\[0\]/);
  await assert.rejects(serf.start({ name: 'a', bind: 'nowhere' }), /ip:port/);
  await assert.rejects(serf.start({ bind: '127.0.0.1:0' }), /options.name/);
});

test('the exported framing helpers speak the core framing', () => {
  const frame = Buffer.from('push-pull state');
  const wire = Buffer.concat([Buffer.from(serf.encodeFrameHeader(frame.length)), frame]);
  assert.deepStrictEqual([...wire.subarray(0, 4)], [0, 0, 0, 15]);
  const d = new serf.FrameDecoder(100);
  for (let i = 0; i < wire.length; i += 3) {
    assert.strictEqual(d.nextFrame(), undefined);
    d.push(wire.subarray(i, i + 3));
  }
  assert.strictEqual(Buffer.from(d.nextFrame()).toString(), 'push-pull state');
  assert.strictEqual(d.nextFrame(), undefined);
  d.push(Buffer.from([0, 0, 1, 0]));
  assert.throws(() => d.nextFrame(), /at most 100 accepted/);
  d.free();
});

test('the .wasm imports nothing but its wasm-bindgen glue (no host code leaked in)', () => {
  const fs = require('node:fs');
  const path = require('node:path');
  const wasm = fs.readFileSync(path.join(__dirname, '..', 'pkg', 'serf_driver_wasm_bg.wasm'));
  const modules = new Set(WebAssembly.Module.imports(new WebAssembly.Module(wasm)).map((i) => i.module));
  assert.deepStrictEqual([...modules], ['./serf_driver_wasm_bg.js']);
});

test('hostile bytes on the sockets are dropped and counted, and the node keeps working', { timeout: 30_000 }, async () => {
  const net = require('node:net');
  const dgram = require('node:dgram');
  const a = await serf.start({ name: 'a', bind: '127.0.0.1:0', profile: 'local' });
  const b = await serf.start({ name: 'b', bind: '127.0.0.1:0', profile: 'local' });
  try {
    const [host, port] = [a.address.split(':')[0], Number(a.address.split(':')[1])];
    // Garbage datagrams.
    const udp = dgram.createSocket('udp4');
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => udp.send(crypto.getRandomValues(new Uint8Array(1 + i * 20)), port, host, r));
    }
    udp.close();
    // A stream announcing a frame far above the limit: torn down without reading it.
    const closed = await new Promise((resolve) => {
      const s = net.connect({ host, port }, () => s.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3])));
      s.on('error', () => {});
      s.on('close', () => resolve(true));
    });
    assert.strictEqual(closed, true);
    await new Promise((r) => setTimeout(r, 100));
    const m = a.metrics();
    assert.strictEqual(m['driver.framesTooLong'], 1);
    assert.ok(m['driver.datagramsReceived'] >= 1);
    // Still a working node.
    assert.strictEqual(await b.join(a.address), 1);
  } finally {
    await a.shutdown();
    await b.shutdown();
  }
});

test('a shutdown while streams are still open ends cleanly and lets the process exit', { timeout: 30_000 }, () => {
  // In a child process, so a node that kept the event loop busy fails here instead of
  // hanging the run.
  const { spawnSync } = require('node:child_process');
  const script = `
    const serf = require(${JSON.stringify(require('node:path').join(__dirname, '..'))});
    (async () => {
      const a = await serf.start({ name: 'a', bind: '127.0.0.1:0', profile: 'local' });
      const b = await serf.start({ name: 'b', bind: '127.0.0.1:0', profile: 'local' });
      await b.join(a.address); // its push-pull stream is still closing
      await b.shutdown();
      await a.shutdown();
      console.log('down');
    })();`;
  const r = spawnSync(process.execPath, ['-e', script], { timeout: 10_000, encoding: 'utf8' });
  assert.strictEqual(r.stdout.trim(), 'down', r.stderr);
  assert.strictEqual(r.status, 0, `exit ${r.status} ${r.signal ?? ''}: the process did not end by itself`);
});
