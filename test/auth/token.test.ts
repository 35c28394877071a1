import t from 'tap';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { assertion, authApp, FORM, jsonServer, keyPair, TOKEN_URL, tokenForm, unsecured } from './helper.js';

const { app, auth } = await authApp(t);
const rsa = await keyPair('RS384');
const ec = await keyPair('ES384');
const rsClient = await auth.clients.add({ name: 'rs', scope: 'system/*.rs', jwks: { keys: [rsa.publicJwk] } });
const ecClient = await auth.clients.add({ name: 'ec', scope: 'system/Observation.cruds system/Patient.rs', jwks: { keys: [ec.publicJwk] } });

const post = (payload: string, headers: Record<string, string> = FORM) => app.inject({ method: 'POST', url: '/auth/token', headers, payload });

t.test('an RS384 assertion gets a bearer token signed by Fascia', async (t) => {
  const res = await post(tokenForm(await assertion(rsClient.id, rsa), 'system/Patient.rs'));
  t.equal(res.statusCode, 200, `token endpoint: ${res.statusCode === 200 ? 'issued' : res.body}`);
  t.equal(res.headers['cache-control'], 'no-store');
  const body = res.json();
  t.match(body, { token_type: 'bearer', expires_in: 300, scope: 'system/Patient.rs' });
  const claims = decodeJwt(body.access_token);
  t.match(claims, { iss: TOKEN_URL, aud: 'http://fascia.test/fhir', sub: rsClient.id, client_id: rsClient.id, scope: 'system/Patient.rs' });
  t.type(claims.jti, 'string');
  t.equal(claims.exp! - claims.iat!, 300);
  t.equal(decodeProtectedHeader(body.access_token).alg, 'ES384');
  const access = await auth.verify(body.access_token);
  t.equal(access.clientId, rsClient.id);
  t.equal(access.grants.length, 1);
});

t.test('an ES384 assertion works too, and scopes are intersected', async (t) => {
  const res = await post(tokenForm(await assertion(ecClient.id, ec), 'system/Observation.cruds system/Patient.cruds system/Condition.rs'));
  t.equal(res.statusCode, 200, `token endpoint: ${res.statusCode === 200 ? 'issued' : res.body}`);
  t.same(res.json().scope.split(' ').sort(), ['system/Observation.cruds', 'system/Patient.rs']);
  const wildcard = await post(tokenForm(await assertion(ecClient.id, ec), 'system/*.cruds'));
  t.same(wildcard.json().scope?.split(' ').sort(), ['system/Observation.cruds', 'system/Patient.rs'], 'a wildcard ask narrows to the allowed types');
  const narrow = await post(tokenForm(await assertion(rsClient.id, rsa), 'system/Observation.cruds'));
  t.equal(narrow.json().scope, 'system/Observation.rs');
});

t.test('the wildcard does not cover AuditEvent even when it is asked for by name', async (t) => {
  const res = await post(tokenForm(await assertion(rsClient.id, rsa), 'system/AuditEvent.rs'));
  t.equal(res.statusCode, 400, 'system/*.rs does not yield system/AuditEvent.rs');
  t.equal(res.json().error, 'invalid_scope');
  const mixed = await post(tokenForm(await assertion(rsClient.id, rsa), 'system/AuditEvent.rs system/Patient.rs'));
  t.equal(mixed.json().scope, 'system/Patient.rs', 'only the covered scope is granted');
  const auditor = await auth.clients.add({ name: 'auditor', scope: 'system/AuditEvent.rs', jwks: { keys: [rsa.publicJwk] } });
  const named = await post(tokenForm(await assertion(auditor.id, rsa), 'system/AuditEvent.rs'));
  t.equal(named.json().scope, 'system/AuditEvent.rs', 'a client registered for AuditEvent by name gets it');
});

t.test('user/ scopes are never granted to a backend client: there is no user context', async (t) => {
  const res = await post(tokenForm(await assertion(rsClient.id, rsa), 'user/Patient.rs'));
  t.equal(res.statusCode, 400);
  t.match(res.json(), { error: 'invalid_scope', error_description: /user\/ scopes need an end-user context/ });
  const both = await post(tokenForm(await assertion(rsClient.id, rsa), 'user/*.cruds system/Patient.rs'));
  t.equal(both.json().scope, 'system/Patient.rs', 'a system/ allowance yields no user/ grant');
  const registered = await auth.clients.add({ name: 'user-scoped', scope: 'user/*.cruds', jwks: { keys: [rsa.publicJwk] } });
  const asUser = await post(tokenForm(await assertion(registered.id, rsa), 'user/Patient.rs'));
  t.equal(asUser.statusCode, 400, 'not even for a client registered with user/ scopes');
});

t.test('no allowed scope → invalid_scope', async (t) => {
  const res = await post(tokenForm(await assertion(ecClient.id, ec), 'system/Condition.rs'));
  t.equal(res.statusCode, 400);
  t.equal(res.json().error, 'invalid_scope');
  const none = await post(tokenForm(await assertion(ecClient.id, ec), ''));
  t.equal(none.json().error, 'invalid_scope');
});

t.test('a bad assertion → 401 invalid_client', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const other = await keyPair('RS384');
  const forged = await assertion(rsClient.id, { ...other, kid: rsa.kid });
  const cases: [string, string, RegExp][] = [
    ['wrong aud', await assertion(rsClient.id, rsa, { aud: 'http://fascia.test/fhir' }), /aud/],
    ['exp more than 5 minutes ahead', await assertion(rsClient.id, rsa, { exp: now + 600 }), /5 minutes/],
    ['expired', await assertion(rsClient.id, rsa, { exp: now - 60, iat: now - 120 }), /expired/],
    ['no jti', await assertion(rsClient.id, rsa, { jti: null }), /jti/],
    // Before the signature verifies, one answer: it must not tell which client ids exist.
    ['unknown client', await assertion('nobody', rsa), /^Client authentication failed$/],
    ['bad signature', forged, /^Client authentication failed$/],
    ['alg none', unsecured({ iss: rsClient.id, sub: rsClient.id, aud: TOKEN_URL, exp: now + 60, jti: 'x' }), /^Client authentication failed$/],
    ['iss ≠ sub', await assertion(rsClient.id, rsa, { sub: ecClient.id }), /iss and sub/],
    ['signed by another client’s key', await assertion(rsClient.id, ec), /^Client authentication failed$/],
  ];
  for (const [what, jwt, why] of cases) {
    const res = await post(tokenForm(jwt, 'system/*.rs'));
    t.equal(res.statusCode, 401, what);
    t.equal(res.json().error, 'invalid_client', what);
    t.match(res.json().error_description, why, what);
  }
});

t.test('a replayed jti → invalid_client, and the jti is in Postgres', async (t) => {
  const jwt = await assertion(rsClient.id, rsa);
  t.equal((await post(tokenForm(jwt, 'system/*.rs'))).statusCode, 200);
  const again = await post(tokenForm(jwt, 'system/*.rs'));
  t.equal(again.statusCode, 401);
  t.match(again.json(), { error: 'invalid_client', error_description: /already used/ });
});

t.test('a revoked client gets no token, and its tokens stop verifying at once', async (t) => {
  const key = await keyPair('ES384');
  const c = await auth.clients.add({ name: 'soon revoked', scope: 'system/*.rs', jwks: { keys: [key.publicJwk] } });
  const ok = await post(tokenForm(await assertion(c.id, key), 'system/*.rs'));
  const token = ok.json().access_token;
  t.ok(await auth.verify(token));
  t.ok(await auth.clients.revoke(c.id));
  await t.rejects(auth.verify(token), { status: 401, error: 'invalid_token', message: /revoked/ });
  const res = await post(tokenForm(await assertion(c.id, key), 'system/*.rs'));
  t.equal(res.statusCode, 401);
  t.match(res.json(), { error: 'invalid_client', error_description: 'Client authentication failed' }, 'the same words as for an unknown client');
  const unknown = await post(tokenForm(await assertion('a-client-that-never-was', key), 'system/*.rs'));
  t.same([unknown.statusCode, unknown.json()], [res.statusCode, res.json()], 'unknown and revoked are indistinguishable');
});

t.test('the request itself: grant type, content type, repeated parameters, no client authentication', async (t) => {
  const jwt = await assertion(rsClient.id, rsa);
  let res = await post(tokenForm(jwt, 'system/*.rs', { grant_type: 'authorization_code' }));
  t.match([res.statusCode, res.json().error], [400, 'unsupported_grant_type']);
  res = await post(new URLSearchParams({ scope: 'system/*.rs' }).toString());
  t.match([res.statusCode, res.json().error], [400, 'invalid_request']);
  res = await post(`${tokenForm(jwt, 'system/*.rs')}&scope=system/*.rs`);
  t.match([res.statusCode, res.json().error], [400, 'invalid_request']);
  res = await post(JSON.stringify({ grant_type: 'client_credentials' }), { 'content-type': 'application/json' });
  t.match([res.statusCode, res.json().error], [400, 'invalid_request']);
  res = await post(new URLSearchParams({ grant_type: 'client_credentials', scope: 'system/*.rs' }).toString());
  t.match([res.statusCode, res.json().error], [401, 'invalid_client']);
  res = await post(tokenForm(jwt, 'system/*.rs', { client_assertion_type: 'urn:other' }));
  t.match([res.statusCode, res.json().error], [401, 'invalid_client']);
});

t.test('client keys registered by URL (a JWKS server on 127.0.0.1)', async (t) => {
  const key = await keyPair('RS384');
  const { base, hits } = await jsonServer(t, () => ({ '/jwks.json': { keys: [key.publicJwk] } }));
  const c = await auth.clients.add({ name: 'by url', scope: 'system/*.rs', jwksUrl: `${base}/jwks.json` });
  const res = await post(tokenForm(await assertion(c.id, key), 'system/Patient.rs'));
  t.equal(res.statusCode, 200, `token endpoint: ${res.statusCode === 200 ? 'issued' : res.body}`);
  t.equal(hits.get('/jwks.json'), 1);
  const wrong = await post(tokenForm(await assertion(c.id, { ...ec, kid: key.kid }), 'system/Patient.rs'));
  t.equal(wrong.statusCode, 401);
});

t.test('client_secret_basic: off by default, on with AUTH_CLIENT_SECRETS', async (t) => {
  const c = await auth.clients.add({ name: 'simple', scope: 'system/*.rs', secret: 's3cret:+/ é' });
  t.match(c.secretHash, /^scrypt\$/);
  const basic = (id: string, secret: string) => ({
    ...FORM,
    authorization: `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`,
  });
  const form = new URLSearchParams({ grant_type: 'client_credentials', scope: 'system/*.rs' }).toString();
  const off = await post(form, basic(c.id, 's3cret:+/ é'));
  t.equal(off.statusCode, 401);
  t.match(off.json(), { error: 'invalid_client', error_description: /not enabled/ });
  t.match(off.headers['www-authenticate'], /^Basic/);

  const on = await authApp(t, { authClientSecrets: true });
  const c2 = await on.auth.clients.add({ name: 'simple', scope: 'system/*.rs', secret: 's3cret:+/ é' });
  const good = await on.app.inject({ method: 'POST', url: '/auth/token', headers: basic(c2.id, 's3cret:+/ é'), payload: form });
  t.equal(good.statusCode, 200, `token endpoint: ${good.statusCode === 200 ? 'issued' : good.body}`);
  t.equal(good.json().scope, 'system/*.rs');
  const bad = await on.app.inject({ method: 'POST', url: '/auth/token', headers: basic(c2.id, 'guess'), payload: form });
  t.match([bad.statusCode, bad.json().error], [401, 'invalid_client']);
  const discovery = (await on.app.inject('/.well-known/smart-configuration')).json();
  t.ok(discovery.token_endpoint_auth_methods_supported.includes('client_secret_basic'));
});

t.test('discovery and JWKS are readable without a token', async (t) => {
  for (const url of ['/.well-known/smart-configuration', '/fhir/.well-known/smart-configuration']) {
    const res = await app.inject(url);
    t.equal(res.statusCode, 200);
    t.match(res.json(), {
      token_endpoint: TOKEN_URL,
      jwks_uri: 'http://fascia.test/auth/jwks',
      grant_types_supported: ['client_credentials'],
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
      capabilities: ['client-confidential-asymmetric', 'permission-v1', 'permission-v2'],
    });
    t.ok(res.json().scopes_supported.includes('system/*.cruds'));
  }
  const jwks = await app.inject('/auth/jwks');
  t.equal(jwks.statusCode, 200);
  const { keys } = jwks.json();
  t.equal(keys.length, 1);
  t.match(keys[0], { kty: 'EC', crv: 'P-384', alg: 'ES384', use: 'sig' });
  t.notOk('d' in keys[0], 'no private part');
});
