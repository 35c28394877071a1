// A Bulk export process killed with SIGKILL mid-export leaves its job to the next process,
// which resumes after the last committed batch to a complete, duplicate-free output.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { build, freshStore, startServer } from '../process/server-process.js';
import { ENTRIES, SLOW, call, jobRow, manifestOf, outputOf, seed, sleep, tokenFor, writers } from './processes.js';

t.before(build);

t.test('SIGKILL mid-export: the next process resumes after the last committed batch; complete and duplicate-free', async (t) => {
  const store = await freshStore(t);
  const system = `urn:fascia:test:bulk:${randomBytes(4).toString('hex')}`;
  const first = await startServer(t, store, 'node', SLOW);
  await first.ready();
  await seed(first, system);
  const token = await tokenFor(store, first);
  const kick = await call(first, token, 'GET', '/fhir/$export?_type=Observation', { prefer: 'respond-async' });
  t.equal(kick.status, 202);
  const id = String(kick.headers['content-location']).split('/').pop()!;
  // Kill once part of it is committed, well before the end.
  let row = await jobRow(store, id);
  for (let i = 0; i < 600 && !(row && row.exported >= 200); i++) {
    await sleep(20);
    row = await jobRow(store, id);
  }
  t.ok(row && row.exported >= 200 && row.exported < ENTRIES, `killed at ${row?.exported} of ${ENTRIES}`);
  first.signalGroup('SIGKILL');
  await first.exited;
  await store.afterKill();

  const second = await startServer(t, store, 'node', SLOW);
  await second.ready();
  const token2 = await tokenFor(store, second);
  const manifest = await manifestOf(second, token2, id);
  const out = await outputOf(second, token2, manifest, system);
  t.same(out.problems, [], 'every line a schema-valid R4 resource; counts match');
  t.equal(out.values.length, ENTRIES, 'every Observation exported');
  t.equal(out.distinct, ENTRIES, 'none twice');
  const done = await jobRow(store, id);
  t.ok(done!.claims >= 2, `claimed ${done!.claims} times`);
  t.equal((await writers(store, id)).length, 2, 'chunks from both processes: resumed, not started again');
  second.child.kill('SIGTERM');
  t.equal((await second.exited).code, 0, 'the second process stops cleanly');
});

