import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { buildTestApp } from '../helper.js';
import { keyPair } from '../auth/helper.js';

/** Counts are per fixed minute: a test that counts starts early in one, so it ends in the same. */
async function earlyInWindow(): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 20_000) await new Promise((r) => setTimeout(r, left + 50));
}

t.test('RATE_LIMIT: default 6000 a minute, 0 turns it off', async (t) => {
  t.equal(loadConfig({}).rateLimit, 6000);
  t.equal(loadConfig({ RATE_LIMIT: '0' }).rateLimit, 0);
  t.throws(() => loadConfig({ RATE_LIMIT: '-1' }), /RATE_LIMIT/);
});

t.test('past the limit a client gets 429 with Retry-After and an OperationOutcome; others and probes are not held back', async (t) => {
  const { app, database } = await buildTestApp(t, { config: { rateLimit: 3 } });
  await earlyInWindow();
  for (let i = 1; i <= 3; i++) {
    const res = await app.inject({ url: '/fhir/Patient' });
    t.equal(res.statusCode, 200, `request ${i} is served`);
    t.equal(res.headers['x-ratelimit-remaining'], String(3 - i));
  }
  const refused = await app.inject({ url: '/fhir/Patient' });
  t.equal(refused.statusCode, 429);
  const retryAfter = Number(refused.headers['retry-after']);
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After is the rest of the window (${retryAfter} s)`);
  t.match(refused.headers['content-type'], /^application\/fhir\+json/);
  t.match(refused.json(), { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'throttled' }] });

  // Another client has its own count.
  const other = await app.auth!.clients.add({ name: 'other', scope: 'system/*.rs', jwks: { keys: [(await keyPair('ES384')).publicJwk] } });
  const token = (await app.auth!.issue(other, 'system/*.rs')).access_token;
  t.equal((await app.inject({ url: '/fhir/Patient', headers: { authorization: `Bearer ${token}` } })).statusCode, 200, 'another client is served');
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'liveness is never limited');
  t.equal((await app.inject({ url: '/readyz' })).statusCode, 200, 'readiness is never limited');

  // A second replica on the same database sees the same count.
  const { app: replica } = await buildTestApp(t, { database, config: { rateLimit: 3 } });
  t.equal((await replica.inject({ url: '/fhir/Patient' })).statusCode, 429, 'the other replica refuses the same client');
  const rows = await database.pool.query<{ key: string; count: number }>('SELECT key, count FROM rate_limits ORDER BY count DESC');
  t.equal(rows.rows.length, 2, 'one row per client in the current window');
  t.match(rows.rows[0], { key: /^client:/, count: 5 });
});

t.test('without a token the address is counted (token endpoint, metadata)', async (t) => {
  const { app, database } = await buildTestApp(t, { config: { rateLimit: 2 }, token: false });
  await earlyInWindow();
  t.equal((await app.inject({ url: '/fhir/metadata' })).statusCode, 200);
  t.equal((await app.inject({ url: '/fhir/metadata' })).statusCode, 200);
  t.equal((await app.inject({ url: '/fhir/metadata' })).statusCode, 429);
  const rows = await database.pool.query<{ key: string }>('SELECT key FROM rate_limits');
  t.same(rows.rows.map((r) => r.key), ['ip:127.0.0.1']);
});

t.test('RATE_LIMIT=0: no counting, no headers', async (t) => {
  const { app, database } = await buildTestApp(t, { config: { rateLimit: 0 } });
  const res = await app.inject({ url: '/fhir/Patient' });
  t.equal(res.statusCode, 200);
  t.notOk(res.headers['x-ratelimit-limit']);
  t.equal((await database.pool.query('SELECT 1 FROM rate_limits')).rowCount, 0);
});

t.test('an unreachable counter does not turn requests away', async (t) => {
  const { app, database } = await buildTestApp(t, { config: { rateLimit: 5 } });
  await database.pool.query('ALTER TABLE rate_limits RENAME TO rate_limits_away');
  t.teardown(() => database.pool.query('ALTER TABLE IF EXISTS rate_limits_away RENAME TO rate_limits'));
  t.equal((await app.inject({ url: '/fhir/Patient' })).statusCode, 200);
});

t.test('past windows are deleted', async (t) => {
  const { database } = await buildTestApp(t, { config: { rateLimit: 5 } });
  await database.pool.query(`INSERT INTO rate_limits VALUES ('client:old', now() - interval '1 hour', 7)`);
  const { app } = await buildTestApp(t, { database, config: { rateLimit: 5 } });
  await app.inject({ url: '/fhir/Patient' });
  await new Promise((r) => setTimeout(r, 200));
  t.equal((await database.pool.query(`SELECT 1 FROM rate_limits WHERE key = 'client:old'`)).rowCount, 0);
});
