// SIGKILL in the middle of a large transaction: after a restart on the same database the
// Bundle's resources are all there or none of them (issue 9, point 7).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import t from 'tap';
import { build, freshStore, observation, request, startServer, storedIdentifiers } from './server-process.js';

const ENTRIES = 2_000;

t.before(build);

const transaction = (system: string) => ({
  resourceType: 'Bundle',
  type: 'transaction',
  entry: Array.from({ length: ENTRIES }, (_, i) => ({
    fullUrl: `urn:uuid:${randomBytes(16).toString('hex').replace(/(.{8})(.{4})(.{4})(.{4})(.{12})/, '$1-$2-$3-$4-$5')}`,
    resource: observation(system, `entry-${i}`),
    request: { method: 'POST', url: 'Observation' },
  })),
});

/** Resolves once a backend of the server's database is inside a transaction that has written (holds an xid). */
async function writing(url: string, exited: Promise<unknown>): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let gone = false;
  void exited.then(() => (gone = true));
  try {
    while (!gone) {
      const { rows } = await client.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL`,
      );
      if ((rows[0] as { n: number }).n > 0) return;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error('the server ended before its transaction began writing');
  } finally {
    await client.end();
  }
}

t.test(`SIGKILL while a ${ENTRIES}-entry transaction writes: after restart, all or nothing`, async (t) => {
  const store = await freshStore(t);
  const system = `urn:fascia:test:crash:${randomBytes(4).toString('hex')}`;
  const first = await startServer(t, store, 'node');
  await first.ready();

  const answer = request(first.port, 'POST', '/fhir', transaction(system), { agent: false, timeoutMs: 60_000 }).then(
    (a) => a.status,
    (err: NodeJS.ErrnoException) => err.code ?? err.message,
  );
  await writing(store.liveUrl(), first.exited);
  // The whole group, as a container runtime or the OOM killer's cgroup kill does: node and, when embedded, its Postgres.
  first.signalGroup('SIGKILL');
  t.same(await first.exited, { code: null, signal: 'SIGKILL' }, 'the server was killed');
  t.equal(await answer, 'ECONNRESET', 'killed before it answered');
  await store.afterKill();

  const stored = await storedIdentifiers(store, 'Observation', system);
  t.ok(stored.size === 0 || stored.size === ENTRIES, `all or nothing: ${stored.size} of ${ENTRIES} stored`);

  const second = await startServer(t, store, 'node');
  await second.ready();
  const probe = await request(second.port, 'GET', `/fhir/Observation?identifier=${encodeURIComponent(`${system}|entry-0`)}`);
  const found = (JSON.parse(probe.body) as { entry?: unknown[] }).entry?.length ?? 0;
  t.equal(found, stored.size === 0 ? 0 : 1, 'the restarted server searches, and its index agrees with the rows');
  // The same Bundle, uninterrupted, commits: the kill, not the Bundle, is why nothing was stored.
  const again = `${system}:again`;
  const replay = await request(second.port, 'POST', '/fhir', transaction(again), { agent: false, timeoutMs: 60_000 });
  t.equal(replay.status, 200, 'the same transaction, not interrupted, answers 200');
  second.child.kill('SIGTERM');
  t.equal((await second.exited).code, 0, 'the restarted server stops cleanly');
  t.equal((await storedIdentifiers(store, 'Observation', again)).size, ENTRIES, 'and stores every entry');
});
