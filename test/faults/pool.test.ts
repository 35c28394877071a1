/**
 * The pool under pressure (issue 9, point 2): when every connection is busy a request
 * waits at most DB_POOL_WAIT_MS, then gets 503 transient with Retry-After instead of
 * queueing without end; a checked-out client whose connection dies goes back to the
 * pool rather than holding its slot for good. Runs on this file's own test database.
 */
import t from 'tap';
import { drizzle } from 'drizzle-orm/node-postgres';
import { openPool, type Database } from '../../src/db/client.js';
import * as schema from '../../src/db/schema.js';
import { buildTestApp, patient, testDatabase } from '../helper.js';
import { assertOutcome, create } from '../support.js';

const migrated = await testDatabase(t);
const url = migrated.pool.options.connectionString!;

function smallPool(max: number, waitMs: number): Database {
  const pool = openPool(url, { max, waitMs });
  const database: Database = { db: drizzle(pool, { schema }), pool, kind: 'external', close: () => pool.end() };
  t.teardown(() => database.close());
  return database;
}

t.test('every connection busy: 503 transient after the bounded wait, then served again', async (t) => {
  const database = smallPool(2, 300);
  const { app } = await buildTestApp(t, { database });
  const stored = await create(app, patient('Pooled'));
  const held = [await database.pool.connect(), await database.pool.connect()];

  const started = Date.now();
  const answers = await Promise.all(Array.from({ length: 20 }, () => app.inject({ url: `/fhir/Patient/${stored.id}` })));
  const ms = Date.now() - started;
  for (const res of answers.slice(0, 3)) assertOutcome(t, res, 503, 'transient');
  t.ok(answers.every((r) => r.statusCode === 503 && r.headers['retry-after'] === '5'), '20 waiting reads: all 503 with Retry-After: 5');
  t.ok(ms < 10_000, `answered within 10 s, not queued for good (${ms} ms for 20 with a 300 ms wait)`);
  t.equal((await app.inject({ url: '/readyz' })).statusCode, 503, '/readyz: 503 while no connection is free');
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, '/healthz: 200');

  for (const c of held) c.release();
  t.equal((await app.inject({ url: `/fhir/Patient/${stored.id}` })).statusCode, 200, 'a free connection: served again');
  t.equal(database.pool.waitingCount, 0, 'nothing left waiting in the pool');
});

// drizzle's transaction() sends BEGIN outside its try/finally: a client whose connection
// dies there is never released. openPool releases a checked-out client when its
// connection ends, and a later release is harmless.
t.test('a checked-out client whose connection is killed goes back to the pool', async (t) => {
  const database = smallPool(1, 1_000);
  const client = await database.pool.connect();
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const ended = new Promise((resolve) => client.once('end', resolve));
  await migrated.pool.query('SELECT pg_terminate_backend($1)', [pid]);
  await ended;
  await new Promise((r) => setImmediate(r));
  t.equal(database.pool.totalCount, 0, 'the dead client left the pool without a release');
  t.doesNotThrow(() => client.release(), 'releasing it afterwards is harmless');
  const again = await database.pool.query<{ n: number }>('SELECT 1 AS n');
  t.equal(again.rows[0]!.n, 1, 'the pool of one connects anew and serves');
});
