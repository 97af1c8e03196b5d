'use strict';
// Two nodes in one process on 127.0.0.1, encrypted and labelled: a join, a user event,
// a query, a graceful leave.
//
//   node examples/two-nodes.js        (after scripts/build-wasm.sh)
const serf = require('..');

async function main() {
  const key = serf.keygen();
  const common = { bind: '127.0.0.1:0', keys: [key], label: 'example', profile: 'local' };
  const a = await serf.start({ name: 'a', ...common });
  const b = await serf.start({ name: 'b', ...common, tags: { role: 'worker' } });
  console.log(`a at ${a.address}, b at ${b.address}`);

  a.on('member-join', (e) => console.log('a sees join:', e.members.map((m) => m.name).join(', ')));
  a.on('member-leave', (e) => console.log('a sees leave:', e.members.map((m) => m.name).join(', ')));
  a.on('user', (e) => console.log(`a got user event ${e.name}: ${Buffer.from(e.payload)}`));
  b.on('query', (e) => e.respond(`b has role ${b.localMember().tags.role}`));

  await b.join(a.address);
  b.userEvent('deploy', 'v2');

  const result = await a.query('role', '', { filterNodes: ['b'], timeoutMs: 2000 });
  for (const r of result.responses) console.log(`a got answer from ${r.from}: ${Buffer.from(r.payload)}`);

  const seen = new Promise((resolve) => a.once('member-leave', resolve));
  await b.leave();
  await b.shutdown();
  await seen;
  console.log('a now sees:', a.members().map((m) => `${m.name}=${m.status}`).join(' '));
  await a.shutdown();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
