// READ_DATABASE_URL against a real streaming replica: a throwaway primary cluster and a
// hot standby made from it with pg_basebackup (Debian Postgres). Brings its own
// clusters, so it runs the same in both CI passes (embedded and DATABASE_URL).
import t from 'tap';
import pg from 'pg';
import type { FastifyInstance } from 'fastify';
import { ReadRouter } from '../../src/db/replica.js';
import { clusterDatabase, clusterUnavailable, startCluster, startReplica } from '../faults/cluster.js';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';

const skip = clusterUnavailable();
const MAX_LAG_MS = 1500;

/** Polls `check` every 100 ms until it is true, for `ms` at most. */
async function until(what: string, check: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; ) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Requests from two different callers (AUTH off: a reader's writes are known by its address). */
const from = (address: string) => ({ remoteAddress: address });
const WRITER = '10.0.0.1';
const READER = '10.0.0.2';
const OTHER = '10.0.0.3';

async function create(app: FastifyInstance, address: string, family: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: patient(family), ...from(address) });
  if (res.statusCode !== 201) throw new Error(`create → ${res.statusCode} ${res.body}`);
  return res.json().id as string;
}

/** The ids a caller's search for a family name finds. */
async function found(app: FastifyInstance, address: string, family: string): Promise<string[]> {
  const res = await app.inject({ url: `/fhir/Patient?family=${family}&_count=100`, ...from(address) });
  if (res.statusCode !== 200) throw new Error(`search → ${res.statusCode} ${res.body}`);
  return ((res.json().entry ?? []) as { resource: { id: string } }[]).map((e) => e.resource.id).sort();
}

t.test('searches and history read from a real streaming replica, and each client reads its own writes', { skip }, async (t) => {
  const primary = await startCluster(t);
  const database = await clusterDatabase(t, primary);
  const replica = await startReplica(t, primary);
  // Straight to each server, to look at them from the side (not through Fascia).
  const onReplica = new pg.Pool({ connectionString: replica.url('fascia'), max: 2 });
  const onPrimary = new pg.Pool({ connectionString: primary.url('fascia'), max: 2 });
  let replicaPoolOpen = true;
  t.teardown(() => Promise.all([replicaPoolOpen ? onReplica.end() : undefined, onPrimary.end()]));
  const replicaHas = async (id: string) => (await onReplica.query('SELECT 1 FROM resources WHERE id = $1', [id])).rowCount === 1;
  t.equal((await onReplica.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true, 'the replica is a hot standby (in recovery)');

  const reads = new ReadRouter({ db: database.db, pool: database.pool }, { url: replica.url('fascia'), poolSize: 4, maxLagMs: MAX_LAG_MS, probeMs: 100 });
  t.teardown(() => reads.close());
  const { app } = await buildTestApp(t, { database: { ...database, reads }, config: { auth: 'off' } });
  await until('the replica to be streaming', () => reads.status()?.state === 'streaming');
  const ready = await app.inject({ url: '/readyz' });
  t.match(ready.json(), { status: 'ready', replica: 'streaming' }, '/readyz names the replica as streaming');

  const first = await create(app, WRITER, 'Replicated');
  await until('the first Patient to reach the replica', () => replicaHas(first));

  // Replay paused: from here the replica lacks whatever the primary commits.
  await onReplica.query('SELECT pg_wal_replay_pause()');
  const marker = await create(app, WRITER, 'Marker');
  t.equal((await onPrimary.query('SELECT 1 FROM resources WHERE id = $1', [marker])).rowCount, 1, 'the marker Patient is on the primary');
  t.notOk(await replicaHas(marker), 'and not on the paused replica');

  t.same(await found(app, READER, 'Marker'), [], "another client's search is answered by the replica: it lacks the marker the primary has");
  t.same(await found(app, READER, 'Replicated'), [first], 'and finds what the replica has');
  const read = await app.inject({ url: `/fhir/Patient/${marker}`, ...from(READER) });
  t.equal(read.statusCode, 200, 'a read by id stays on the primary: it finds the marker');
  t.same(await found(app, WRITER, 'Marker'), [marker], "the writer's own search sees its write while the replica has not replayed it (primary)");
  const history = await app.inject({ url: '/fhir/Patient/_history?_count=50', ...from(READER) });
  const historyIds = (history.json().entry as { resource?: { id: string } }[]).map((e) => e.resource?.id);
  t.ok(historyIds.includes(marker), "history's window includes every version before its end: the lagging replica is not used for it");

  // Replay resumed: once the replica has the writer's writes, its searches go there again.
  await onReplica.query('SELECT pg_wal_replay_resume()');
  await until('the marker to reach the replica', () => replicaHas(marker));
  // And everything the primary wrote until now (the writer's position is taken after its commit).
  const now = (await onPrimary.query('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0].l as string;
  await until('the replica to replay past the writer', async () => (await onReplica.query('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [now])).rows[0].ok === true);
  t.same(await found(app, READER, 'Marker'), [marker], 'after replay the replica answers with the marker');
  await onReplica.query('SELECT pg_wal_replay_pause()');
  const third = await create(app, OTHER, 'Marker');
  t.same(await found(app, WRITER, 'Marker'), [marker], "the writer's search is on the replica again (it lacks a third client's newer write), within its own writes");
  t.same(await found(app, OTHER, 'Marker'), [marker, third].sort(), 'the third client sees its own write (primary)');

  // Lagging past the bound (replay still paused, the primary moved on): every read on the primary.
  await until('the replica to count as lagging', () => reads.status()?.state === 'lagging', 30_000);
  t.ok((reads.status()?.lagMs ?? 0) > MAX_LAG_MS, `lag measured past the bound (${reads.status()?.lagMs} ms)`);
  t.same(await found(app, READER, 'Marker'), [marker, third].sort(), 'a lagging replica is not read from: the primary answers');
  const lagging = await app.inject({ url: '/readyz' });
  t.equal(lagging.statusCode, 200, '/readyz stays 200 (the primary serves)');
  t.match(lagging.json(), { status: 'ready', replica: 'lagging' }, '/readyz reports the lag');

  // Down: stopped outright. Searches are answered from the primary, never a 500.
  await onReplica.query('SELECT pg_wal_replay_resume()');
  await until('the replica to catch up', () => reads.status()?.state === 'streaming');
  replicaPoolOpen = false;
  await onReplica.end();
  await replica.stop('immediate');
  t.same(await found(app, READER, 'Marker'), [marker, third].sort(), 'with the replica down the search is answered (from the primary)');
  await until('the probe to notice', () => reads.status()?.state === 'unreachable', 10_000);
  const down = await app.inject({ url: '/readyz' });
  t.equal(down.statusCode, 200, '/readyz stays 200 with the replica down');
  t.match(down.json(), { status: 'ready', replica: 'unreachable' }, '/readyz reports the replica unreachable');
  const history2 = await app.inject({ url: '/fhir/_history?_count=10', ...from(READER) });
  t.equal(history2.statusCode, 200, 'history is answered too');
});
