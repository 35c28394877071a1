// The audit's promise for writes (docs/security.md, "Audit"): a write's audit log row
// commits with the write, so a crash (SIGKILL of the server's whole group, as an OOM
// kill does) right after the answers loses none of them; the reads answered just before
// it may lose theirs (they are logged after the answer, in batches).
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { build, freshStore, observation, request, startServer, storedIdentifiers } from './server-process.js';

const WRITES = 40;

t.before(build);

t.test(`SIGKILL right after ${WRITES} creates were answered: every one of them has its audit row`, async (t) => {
  const store = await freshStore(t);
  const system = `urn:fascia:test:audit-crash:${randomBytes(4).toString('hex')}`;
  const server = await startServer(t, store, 'node');
  await server.ready();

  // Four writers at once, so rows commit while other writes are in flight.
  const created: string[] = [];
  await Promise.all(
    Array.from({ length: 4 }, async (_, w) => {
      for (let i = w; i < WRITES; i += 4) {
        const answer = await request(server.port, 'POST', '/fhir/Observation', observation(system, `w-${i}`));
        if (answer.status !== 201) throw new Error(`create → ${answer.status}: ${answer.body}`);
        created.push(String((JSON.parse(answer.body) as { id: string }).id));
      }
    }),
  );
  server.signalGroup('SIGKILL');
  t.same(await server.exited, { code: null, signal: 'SIGKILL' }, 'the server was killed');
  await store.afterKill();

  t.equal((await storedIdentifiers(store, 'Observation', system)).size, WRITES, 'every answered create is stored');
  const database = await store.open();
  try {
    const { rows } = await database.pool.query<{ entity: string }>(
      `SELECT DISTINCT e AS entity FROM audit_log a CROSS JOIN LATERAL unnest(a.entities) e
        WHERE a.interaction = 'create' AND a.status < 400 AND e = ANY($1::text[])`,
      [created.map((id) => `Observation/${id}`)],
    );
    t.equal(rows.length, WRITES, `each create has its success row in the audit log (${rows.length} of ${WRITES})`);
  } finally {
    await database.close();
  }
});
