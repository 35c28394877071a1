import { RATE_FLUSH_MS } from '../../src/routes/edges.js';
import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { buildTestApp } from '../helper.js';
import { keyPair, signed } from '../auth/helper.js';

/** Counts are per fixed minute: a test that counts starts early in one, so it ends in the same. */
async function earlyInWindow(): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 20_000) await new Promise((r) => setTimeout(r, left + 50));
}

/** Long enough for every process's counts to be added to the shared rows. */
const flushed = () => new Promise((resolve) => setTimeout(resolve, 5 * RATE_FLUSH_MS));

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

  // A second replica on the same database sees the same count, once the first has added its
  // counts to the shared rows (every RATE_FLUSH_MS; until then each counts its own).
  await flushed();
  const { app: replica } = await buildTestApp(t, { database, config: { rateLimit: 3 } });
  t.equal((await replica.inject({ url: '/fhir/Patient' })).statusCode, 429, 'the other replica refuses the same client');
  await flushed(); // the counts reach Postgres every RATE_FLUSH_MS
  const rows = await database.pool.query<{ key: string; count: number }>(`SELECT key, count FROM rate_limits WHERE key LIKE 'identity:%' ORDER BY count DESC`);
  t.equal(rows.rows.length, 2, 'one row per identity in the current window');
  t.match(rows.rows[0], { key: /^identity:\["fascia",/, count: 5 });
  // A token's first use in a process is counted by address too (it was not verified yet); later uses are not.
  const address = await database.pool.query<{ count: number }>(`SELECT count FROM rate_limits WHERE key = 'ip:127.0.0.1'`);
  t.equal(address.rows[0]?.count, 3, 'one address count per token first seen by a process');
});

t.test('requests with no token or a bad one are limited by address, before authentication', async (t) => {
  const { app, database } = await buildTestApp(t, { config: { rateLimit: 3 }, token: false });
  await earlyInWindow();
  const stranger = await keyPair('ES384');
  const forged = await signed(stranger, { iss: 'http://fascia.test/auth/token', aud: 'http://fascia.test/fhir', sub: 'x', exp: Math.floor(Date.now() / 1000) + 60 });
  t.equal((await app.inject({ url: '/fhir/Patient' })).statusCode, 401, 'no token: 401');
  t.equal((await app.inject({ url: '/fhir/Patient', headers: { authorization: `Bearer ${forged}` } })).statusCode, 401, 'an unknown kid: 401');
  t.equal((await app.inject({ url: '/fhir/%50atient', headers: { authorization: 'Bearer x.y.z' } })).statusCode, 401, 'not a JWT: 401');
  const refused = await app.inject({ url: '/fhir/Patient', headers: { authorization: `Bearer ${forged}` } });
  t.equal(refused.statusCode, 429, 'the fourth is refused before its token is looked at');
  t.ok(Number(refused.headers['retry-after']) >= 1, 'with Retry-After');
  t.match(refused.json(), { resourceType: 'OperationOutcome', issue: [{ code: 'throttled' }] });
  await flushed(); // the counts reach Postgres every RATE_FLUSH_MS
  const rows = await database.pool.query<{ key: string; count: number }>('SELECT key, count FROM rate_limits');
  t.same(rows.rows, [{ key: 'ip:127.0.0.1', count: 4 }]);

  // A verified token has its own count: the address being over its limit does not hold it back.
  const client = await app.auth!.clients.add({ name: 'c', scope: 'system/*.rs', jwks: { keys: [stranger.publicJwk] } });
  const token = (await app.auth!.issue(client, 'system/*.rs')).access_token;
  await app.auth!.verify(token); // as a first request to this process would have
  const ok = await app.inject({ url: '/fhir/Patient', headers: { authorization: `Bearer ${token}` } });
  t.equal(ok.statusCode, 200, 'a token this process verified before is counted by its identity only');
});

t.test("the token endpoint's limit answers 429 with Retry-After and an OAuth error body", async (t) => {
  const { app } = await buildTestApp(t, { config: { rateLimit: 2 }, token: false });
  await earlyInWindow();
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const payload = 'grant_type=client_credentials&scope=system/*.rs';
  t.equal((await app.inject({ method: 'POST', url: '/auth/token', headers: form, payload })).statusCode, 401);
  t.equal((await app.inject({ method: 'POST', url: '/auth/token', headers: form, payload })).statusCode, 401);
  const refused = await app.inject({ method: 'POST', url: '/auth/token', headers: form, payload });
  t.equal(refused.statusCode, 429);
  t.ok(Number(refused.headers['retry-after']) >= 1, 'Retry-After');
  t.match(refused.headers['content-type'], /^application\/json/);
  t.equal(refused.headers['cache-control'], 'no-store');
  t.match(refused.json(), { error: 'temporarily_unavailable', error_description: /retry in \d+ s/ });
});

t.test('without a token the address is counted (token endpoint, metadata)', async (t) => {
  const { app, database } = await buildTestApp(t, { config: { rateLimit: 2 }, token: false });
  await earlyInWindow();
  t.equal((await app.inject({ url: '/fhir/metadata' })).statusCode, 200);
  t.equal((await app.inject({ url: '/fhir/metadata' })).statusCode, 200);
  t.equal((await app.inject({ url: '/fhir/metadata' })).statusCode, 429);
  await flushed(); // the counts reach Postgres every RATE_FLUSH_MS
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
