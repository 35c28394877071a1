import t from 'tap';
import { createAuth } from '../../src/auth/tokens.js';
import { authApp, BASE, jsonServer, keyPair, signed, TOKEN_URL, unsecured } from './helper.js';

const { app, auth, database } = await authApp(t);
const client = await auth.clients.add({ name: 'verify', scope: 'system/*.cruds', jwks: { keys: [] } });
const now = () => Math.floor(Date.now() / 1000);

/** A token as Fascia would sign it, with the current key, claims overridden. */
async function fasciaToken(claims: Record<string, unknown> = {}) {
  const key = await auth.keys.current();
  const sign = { alg: 'ES384' as const, kid: key.kid, privateKey: key.privateKey, publicJwk: {} };
  return signed(sign, { iss: TOKEN_URL, aud: `${BASE}/fhir`, sub: client.id, client_id: client.id, scope: 'system/Patient.rs', exp: now() + 60, iat: now(), jti: 'j1', ...claims });
}

t.test("Fascia's own token gives an AccessContext", async (t) => {
  const { access_token } = await auth.issue(client, 'system/Patient.rs system/Observation.cruds');
  const access = await auth.verify(access_token);
  t.match(access, { clientId: client.id, scope: 'system/Patient.rs system/Observation.cruds', issuer: TOKEN_URL });
  t.equal(access.grants.length, 2);
  t.type(access.tokenId, 'string');
  t.ok(access.expiresAt > now());
  t.notOk('patient' in access);
  t.ok(await auth.verify(`Bearer ${access_token}`), 'the header form is accepted too');
});

t.test('bad tokens → AuthError 401 invalid_token', async (t) => {
  const other = await keyPair('ES384');
  const key = await auth.keys.current();
  const cases: [string, string, RegExp][] = [
    ['expired', await fasciaToken({ exp: now() - 60, iat: now() - 120 }), /expired/],
    ['nbf in the future', await fasciaToken({ nbf: now() + 120 }), /not yet valid/],
    ['wrong aud', await fasciaToken({ aud: 'http://elsewhere.test/fhir' }), /aud/],
    ['wrong iss', await fasciaToken({ iss: 'http://elsewhere.test/auth/token' }), /issuer/],
    ['no exp', await fasciaToken({ exp: null }), /exp/],
    ['forged signature (another key, same kid)', await signed({ ...other, kid: key.kid }, { iss: TOKEN_URL, aud: `${BASE}/fhir`, sub: client.id, exp: now() + 60 }), /signature/],
    ['unknown kid', await signed(other, { iss: TOKEN_URL, aud: `${BASE}/fhir`, sub: client.id, exp: now() + 60 }), /kid/],
    ['alg none', unsecured({ iss: TOKEN_URL, aud: `${BASE}/fhir`, sub: client.id, client_id: client.id, scope: 'system/*.cruds', exp: now() + 60 }), /algorithm/],
    ['HS256', await signed({ alg: 'HS256' as never, kid: key.kid, privateKey: new Uint8Array(32) as never, publicJwk: {} }, { iss: TOKEN_URL, exp: now() + 60 }), /algorithm/],
    ['unknown client', await fasciaToken({ sub: 'ghost', client_id: 'ghost' }), /no longer exists/],
    ['not a JWT', 'abc.def', /not a JWT/],
  ];
  for (const [what, token, why] of cases) {
    await t.rejects(auth.verify(token), { status: 401, error: 'invalid_token', message: why }, what);
  }
});

t.test('revocation takes effect at once (another process revoking: within a second)', async (t) => {
  const c = await auth.clients.add({ name: 'to revoke', scope: 'system/*.rs' });
  const { access_token } = await auth.issue(c, 'system/*.rs');
  t.ok(await auth.verify(access_token));
  const elsewhere = createAuth(database.db, auth.config); // as the CLI would
  t.ok(await elsewhere.clients.revoke(c.id));
  await new Promise((r) => setTimeout(r, 1_100));
  await t.rejects(auth.verify(access_token), { status: 401, error: 'invalid_token', message: /revoked/ });
});

t.test('key rotation: the previous key verifies until its tokens expire, and the JWKS lists both', async (t) => {
  const before = await auth.keys.current();
  const { access_token } = await auth.issue(client, 'system/*.rs');
  const elsewhere = createAuth(database.db, auth.config);
  const kid = await elsewhere.keys.rotate(); // `cli key rotate`, another process
  t.not(kid, before.kid);
  t.ok(await auth.verify(access_token), 'old token still good');
  const after = await auth.issue(client, 'system/*.rs'); // within the cache window this may still be the old key
  t.ok(await auth.verify(after.access_token));
  auth.keys.forget();
  t.equal((await auth.keys.current()).kid, kid, 'the new key signs');
  t.ok(await auth.verify((await auth.issue(client, 'system/*.rs')).access_token));
  const { keys } = (await app.inject('/auth/jwks')).json();
  t.same(keys.map((k: { kid: string }) => k.kid).sort(), [before.kid, kid].sort());

  // Once the old key's tokens can no longer be alive, it is gone from the JWKS and verifies nothing.
  const shortLived = createAuth(database.db, { ...auth.config, authTokenTtl: 10 });
  await database.pool.query(`UPDATE auth_keys SET retired_at = now() - interval '2 minutes' WHERE kid = $1`, [before.kid]);
  shortLived.keys.forget();
  t.same((await shortLived.keys.jwks()).keys.map((k) => k.kid), [kid]);
  await t.rejects(shortLived.verify(access_token), { status: 401, error: 'invalid_token', message: /kid/ });
});

t.test('an external issuer: its own keys and JWKS server, patient/ scopes and a patient claim', async (t) => {
  const idpKey = await keyPair('RS384');
  const { base: idp, hits } = await jsonServer(t, (base) => ({
    '/realm/.well-known/openid-configuration': { issuer: `${base}/realm`, jwks_uri: `${base}/keys` },
    '/keys': { keys: [idpKey.publicJwk] },
  }));
  const issuer = `${idp}/realm`;
  const claims = { iss: issuer, aud: `${BASE}/fhir`, sub: 'user-7', azp: 'ehr-app', scope: 'patient/Observation.rs patient/Patient.r', patient: 'p123', exp: now() + 60 };
  for (const [what, config] of [
    ['discovered from openid-configuration', { authIssuer: issuer }],
    ['AUTH_JWKS_URL', { authIssuer: issuer, authJwksUrl: `${idp}/keys` }],
  ] as const) {
    const ext = (await authApp(t, config, database)).auth;
    const access = await ext.verify(await signed(idpKey, claims));
    t.match(access, { clientId: 'ehr-app', patient: 'p123', issuer, scope: 'patient/Observation.rs patient/Patient.r' }, what);
    t.match(access.grants, [{ context: 'patient', type: 'Observation' }, { context: 'patient', type: 'Patient' }], what);
    // scp as a list, as some providers send it
    const scp = await ext.verify(await signed(idpKey, { ...claims, scope: null, scp: ['patient/Observation.rs'] }));
    t.equal(scp.scope, 'patient/Observation.rs');
    await t.rejects(ext.verify(await signed(await keyPair('RS384'), claims)), { status: 401, error: 'invalid_token', message: /signature|kid/ }, `${what}: a key the issuer does not publish`);
    await t.rejects(ext.verify(await signed(idpKey, { ...claims, aud: 'http://other/fhir' })), { status: 401, error: 'invalid_token', message: /aud/ }, `${what}: wrong aud`);
    await t.rejects(ext.verify(await signed(idpKey, { ...claims, exp: now() - 30 })), { status: 401, error: 'invalid_token', message: /expired/ });
    t.ok(await ext.verify((await ext.issue(client, 'system/*.rs')).access_token), "Fascia's own tokens still verify");
  }
  t.equal(hits.get('/realm/.well-known/openid-configuration'), 1);
  await t.rejects(auth.verify(await signed(idpKey, claims)), { status: 401, error: 'invalid_token', message: /issuer/ }, 'not trusted without AUTH_ISSUER');
});
