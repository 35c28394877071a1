/**
 * Issue 17, findings 6, 9 and 10, through HTTP: token lifetimes have a ceiling
 * (AUTH_TOKEN_TTL for Fascia's own, AUTH_MAX_TOKEN_LIFETIME for an external issuer's),
 * `user/` scopes give nothing, and a token verified before does not outlive its key
 * (`key rotate` past the retention, a key dropped from the external issuer's JWKS).
 */
import t from 'tap';
import { SignJWT } from 'jose';
import { buildApp } from '../../src/app.js';
import { createAuth } from '../../src/auth/tokens.js';
import { testConfig, testDatabase } from '../helper.js';
import { BASE, jsonServer, keyPair, signed, TOKEN_URL } from './helper.js';

const now = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const k1 = await keyPair('ES384');
const k2 = await keyPair('RS384');
// The JWKS server answers this object as it is at each request: the test changes it.
const published = { keys: [k1.publicJwk, k2.publicJwk] };
const { base: idp } = await jsonServer(t, () => ({ '/keys': published }));
const issuer = `${idp}/realm`;

const database = await testDatabase(t);
const config = testConfig({ authIssuer: issuer, authJwksUrl: `${idp}/keys`, authTokenTtl: 300, authMaxTokenLifetime: 3600, rateLimit: 0 });
// Re-verification and JWKS refresh shortened from 30 s to half a second, so the test need not wait a minute.
const auth = createAuth(database.db, config, { recheckMs: 500, jwksMaxAgeMs: 500 });
const app = await buildApp({ config, database, logger: false, auth });
t.teardown(() => app.close());
await app.ready();

const get = (token: string, url = '/fhir/Patient') => app.inject({ url, headers: { authorization: `Bearer ${token}` } });
const external = (key = k1, claims: Record<string, unknown> = {}) =>
  signed(key, { iss: issuer, aud: `${BASE}/fhir`, sub: 'user-7', azp: 'portal', scope: 'system/Patient.rs', iat: now(), exp: now() + 120, ...claims });

/** Polls until the token is refused; the time it took, in ms. */
async function refusedWithin(token: string, limitMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const res = await get(token);
    if (res.statusCode === 401) return Date.now() - started;
    if (Date.now() - started > limitMs) return Infinity;
    await sleep(100);
  }
}

t.test("an external token living longer than AUTH_MAX_TOKEN_LIFETIME is refused 401 invalid_token", async (t) => {
  t.equal((await get(await external(k1, { exp: now() + 3600 }))).statusCode, 200, 'exp − iat = the maximum: accepted');
  const long = await get(await external(k1, { exp: now() + 3601 }));
  t.equal(long.statusCode, 401, 'exp − iat one second over');
  t.match(long.headers['www-authenticate'], /error="invalid_token"/);
  t.match(long.json().issue[0].details.text, /longer than this server allows/);
  t.equal((await get(await external(k1, { iat: null, exp: now() + 86_400 }))).statusCode, 401, 'no iat: exp − now over the maximum');
  t.equal((await get(await external(k1, { iat: null, exp: now() + 600 }))).statusCode, 200, 'no iat: exp − now within it');
  t.equal((await get(await external(k1, { iat: now() - 3000, exp: now() + 3000 }))).statusCode, 401, 'an old iat does not hide a long life');
});

t.test("Fascia's own tokens live at most AUTH_TOKEN_TTL, whoever signed them", async (t) => {
  const client = await auth.clients.add({ name: 'ttl', scope: 'system/*.rs' });
  t.equal((await get((await auth.issue(client, 'system/Patient.rs')).access_token)).statusCode, 200, 'as issued: accepted');
  // Minted under a longer AUTH_TOKEN_TTL (another process, an older configuration), with the same keys.
  const generous = createAuth(database.db, { ...config, authTokenTtl: 3600 });
  const res = await get((await generous.issue(client, 'system/Patient.rs')).access_token);
  t.equal(res.statusCode, 401);
  t.match(res.json().issue[0].details.text, /exp − iat > 300 s/);
});

t.test("Fascia's own token stamped with a future iat is refused; an iat within the clock tolerance is not", async (t) => {
  const client = await auth.clients.add({ name: 'future iat', scope: 'system/*.rs' });
  const key = await auth.keys.current();
  const mint = (iat: number, exp: number) =>
    new SignJWT({ client_id: client.id, scope: 'system/Patient.rs' })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
      .setIssuer(auth.tokenUrl).setSubject(client.id).setAudience(auth.audience)
      .setIssuedAt(iat).setExpirationTime(exp).sign(key.privateKey);
  const day = now() + 86_400;
  const res = await get(await mint(day - 100, day));
  t.equal(res.statusCode, 401, 'iat a day ahead, exp − iat 100 s: refused');
  t.match(res.json().issue[0].details.text, /iat is in the future/);
  t.equal((await get(await mint(now() + 3, now() + 300))).statusCode, 200, 'iat 3 s ahead (clock skew), exp − iat = AUTH_TOKEN_TTL − 3: accepted');
  t.equal((await get(await external(k1, { iat: now() + 3, exp: now() + 3600 }))).statusCode, 200, 'external: iat 3 s ahead, exp − now = the maximum');
});

t.test('user/ scopes give no access: there is no user context', async (t) => {
  const client = await auth.clients.add({ name: 'user-ish', scope: 'system/*.rs' });
  // The token endpoint never grants user/ scopes; a token holding them anyway (or an external one) gets nothing from them.
  const own = (await auth.issue(client, 'user/*.cruds')).access_token;
  t.equal((await get(own)).statusCode, 403, "Fascia's token with user/*.cruds reads no Patient");
  const ext = await external(k1, { scope: 'user/*.cruds' });
  t.equal((await get(ext)).statusCode, 403, "an external token with user/*.cruds reads no Patient");
  const create = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: { authorization: `Bearer ${ext}`, 'content-type': 'application/fhir+json' }, payload: { resourceType: 'Patient' } });
  t.equal(create.statusCode, 403, 'nor creates one');
});

t.test('after `key rotate` past the retention, a token verified before stops working (within seconds)', async (t) => {
  const client = await auth.clients.add({ name: 'rotated', scope: 'system/*.rs' });
  const before = (await auth.issue(client, 'system/Patient.rs')).access_token;
  t.equal((await get(before)).statusCode, 200);
  t.ok(auth.known(before), 'remembered after its first use');
  // In this process: a rotation forgets the remembered tokens at once (the retired key still verifies them).
  await auth.keys.rotate();
  t.notOk(auth.known(before), 'forgotten on rotation');
  t.equal((await get(before)).statusCode, 200, 'verified again: the retired key is kept for its tokens');
  // In another process (`cli key rotate`), and the old key past its retention.
  const cli = createAuth(database.db, config);
  await cli.keys.rotate();
  await database.pool.query(`UPDATE auth_keys SET retired_at = now() - interval '1 hour' WHERE retired_at IS NOT NULL`);
  const took = await refusedWithin(before, 60_000);
  t.ok(took <= 10_000, `refused ${took} ms after its key went (KeyStore re-reads keys every 5 s)`);
  t.match((await get(before)).json().issue[0].details.text, /kid/);
});

t.test('after the external issuer drops a key from its JWKS, a token verified before stops working', async (t) => {
  const byK1 = await external(k1);
  const byK2 = await external(k2);
  t.equal((await get(byK1)).statusCode, 200);
  t.equal((await get(byK2)).statusCode, 200);
  t.ok(auth.known(byK1));
  published.keys = [k2.publicJwk];
  const took = await refusedWithin(byK1, 60_000);
  t.ok(took <= 5_000, `refused ${took} ms after the JWKS dropped its key`);
  t.equal((await get(byK2)).statusCode, 200, 'a token signed by a key still published keeps working');

  // A changed JWKS forgets every remembered token of that issuer (each is verified again at its next use).
  const another = await external(k2, { sub: 'user-8' });
  t.equal((await get(another)).statusCode, 200);
  t.ok(auth.known(another));
  published.keys = [k2.publicJwk, k1.publicJwk];
  await sleep(600);
  t.equal((await get(await external(k2, { sub: 'user-9' }))).statusCode, 200, 'a new token: the JWKS is fetched again');
  t.notOk(auth.known(another), 'the change forgot the tokens remembered before it');
});

t.test('AUTH_MAX_TOKEN_LIFETIME: default 3600 s, checked at start', async (t) => {
  const { loadConfig } = await import('../../src/config.js');
  t.equal(loadConfig({}).authMaxTokenLifetime, 3600);
  t.equal(loadConfig({ AUTH_MAX_TOKEN_LIFETIME: '600' }).authMaxTokenLifetime, 600);
  t.throws(() => loadConfig({ AUTH_MAX_TOKEN_LIFETIME: '0' }), /AUTH_MAX_TOKEN_LIFETIME/);
  t.equal(TOKEN_URL, `${BASE}/auth/token`);
});
