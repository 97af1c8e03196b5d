'use strict';
// The wasm side of tests/tests/wasm_interop.rs: a Serf node in Node.js (the wasm core
// behind serf-driver-wasm/js) that joins native nodes over real UDP and TCP.
//
// It reports each step as one JSON line on stdout and takes commands as JSON lines on
// stdin: {"cmd":"event","name":...,"payload":...} and {"cmd":"leave"}. It exits when
// stdin closes, so it never outlives the test.
//
// Environment: SERF_WASM_MODULE (path of the package's index.js), SERF_SEEDS (comma-
// separated "ip:port"), SERF_KEY (base64), SERF_LABEL, SERF_NAME, SERF_PROFILE,
// SERF_EXPECT_ALIVE.

const readline = require('node:readline');
const { performance } = require('node:perf_hooks');

const serf = require(process.env.SERF_WASM_MODULE);
const started = performance.now();

function say(step, fields) {
  const ms = Math.round(performance.now() - started);
  process.stdout.write(JSON.stringify({ step, ms, ...fields }) + '\n');
}

function text(payload) {
  return Buffer.from(payload).toString('utf8');
}

async function main() {
  const name = process.env.SERF_NAME;
  const node = await serf.start({
    name,
    bind: '127.0.0.1:0',
    profile: process.env.SERF_PROFILE,
    keys: [process.env.SERF_KEY],
    label: process.env.SERF_LABEL,
  });
  say('started', { address: node.address });

  node.on('member-join', (e) => say('member-join', { members: e.members.map((m) => m.name) }));
  node.on('user', (e) => say('user-event', { name: e.name, payload: text(e.payload) }));
  node.on('query', (e) => {
    e.respond(`${name} answers ${text(e.payload)}`);
    say('query-answered', { name: e.name, from: e.source });
  });

  const rl = readline.createInterface({ input: process.stdin });
  // The test is gone: stop at once rather than linger.
  rl.on('close', () => process.exit(3));
  rl.on('line', async (line) => {
    const cmd = JSON.parse(line);
    try {
      if (cmd.cmd === 'event') {
        node.userEvent(cmd.name, cmd.payload);
        say('event-sent', { name: cmd.name });
      } else if (cmd.cmd === 'leave') {
        await node.leave();
        say('left', { state: node.stats().state });
        const metrics = node.metrics();
        await node.shutdown();
        // Every counter that moved, for the test's log.
        const moved = Object.fromEntries(Object.entries(metrics).filter(([, v]) => v !== 0));
        say('stopped', {
          datagramsSent: metrics['driver.datagramsSent'],
          datagramsReceived: metrics['driver.datagramsReceived'],
          metrics: moved,
        });
        process.exit(0);
      } else {
        say('error', { error: `unknown command ${line}` });
      }
    } catch (e) {
      say('error', { error: String(e && e.stack) });
      process.exit(1);
    }
  });

  const joined = await node.join(process.env.SERF_SEEDS.split(','));
  say('joined', { joined });

  const want = Number(process.env.SERF_EXPECT_ALIVE);
  const poll = setInterval(() => {
    const alive = node.members().filter((m) => m.status === 'alive');
    if (alive.length === want) {
      clearInterval(poll);
      say('all-alive', { members: alive.map((m) => m.name).sort() });
    }
  }, 20);
}

main().catch((e) => {
  say('error', { error: String(e && e.stack) });
  process.exit(1);
});
