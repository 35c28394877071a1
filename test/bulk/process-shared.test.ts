// Two Fascia processes on one database share the Bulk export jobs.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { build, freshStore, startServer } from '../process/server-process.js';
import { ENTRIES, SLOW, call, manifestOf, outputOf, seed, tokenFor, writers } from './processes.js';

t.before(build);

t.test('two processes on one database share the jobs', async (t) => {
  const store = await freshStore(t);
  const system = `urn:fascia:test:bulk:${randomBytes(4).toString('hex')}`;
  const a = await startServer(t, store, 'node', SLOW);
  await a.ready();
  // The embedded Postgres belongs to the first process; the second reaches it as an external database.
  const b = await startServer(t, { ...store, env: store.kind === 'embedded' ? { DATABASE_URL: store.liveUrl() } : store.env }, 'node', SLOW);
  await b.ready();
  await seed(a, system);
  const tokenA = await tokenFor(store, a);
  const tokenB = await tokenFor(store, b);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const kick = await call(i % 2 ? b : a, i % 2 ? tokenB : tokenA, 'GET', '/fhir/$export?_type=Observation', { prefer: 'respond-async' });
    t.equal(kick.status, 202);
    ids.push(String(kick.headers['content-location']).split('/').pop()!);
  }
  const workersSeen = new Set<string>();
  for (const id of ids) {
    const manifest = await manifestOf(b, tokenB, id);
    const out = await outputOf(a, tokenA, manifest, system);
    t.same(out.problems, []);
    t.equal(out.distinct, ENTRIES, `export ${id}: every Observation once`);
    t.equal(out.values.length, ENTRIES);
    for (const w of await writers(store, id)) workersSeen.add(w.split(':').slice(0, 2).join(':'));
  }
  t.equal(workersSeen.size, 2, `both processes worked: ${[...workersSeen].join(', ')}`);
  b.child.kill('SIGTERM');
  a.child.kill('SIGTERM');
  t.equal((await b.exited).code, 0);
  t.equal((await a.exited).code, 0);
});

