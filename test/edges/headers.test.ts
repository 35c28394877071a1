import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { buildTestApp } from '../helper.js';

t.test('helmet: security headers on answers and errors; the API forbids loading anything, /docs allows its own assets', async (t) => {
  const { app } = await buildTestApp(t);
  for (const [url, status] of [['/fhir/metadata', 200], ['/fhir/Patient', 200], ['/fhir/Patient/nope', 404], ['/nowhere', 404]] as const) {
    const res = await app.inject({ url });
    t.equal(res.statusCode, status, url);
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${url}: nosniff`);
    t.equal(res.headers['x-frame-options'], 'SAMEORIGIN', `${url}: x-frame-options`);
    t.match(res.headers['strict-transport-security'], /max-age=\d+/, `${url}: HSTS`);
    t.equal(res.headers['content-security-policy'], "default-src 'none';frame-ancestors 'none'", `${url}: API policy`);
  }
  const unauthorised = await app.inject({ url: '/fhir/Patient', headers: { authorization: 'Bearer nope' } });
  t.equal(unauthorised.statusCode, 401);
  t.equal(unauthorised.headers['x-content-type-options'], 'nosniff', '401: nosniff');
  const docs = await app.inject({ url: '/docs/' });
  t.equal(docs.statusCode, 200);
  t.match(docs.headers['content-security-policy'], /script-src 'self'/, '/docs has a page policy');
  t.match(docs.headers['content-security-policy'], /connect-src 'self' http:\/\/fascia\.test/, 'Swagger UI may call the API at BASE_URL');
  t.notMatch(docs.headers['content-security-policy'], /upgrade-insecure-requests/, 'no upgrade of http calls (local use)');
});

t.test('CORS_ORIGINS: parsed into a list, off when empty', async (t) => {
  t.same(loadConfig({}).corsOrigins, []);
  t.same(loadConfig({ CORS_ORIGINS: 'https://app.example, http://localhost:3000/' }).corsOrigins, ['https://app.example', 'http://localhost:3000']);
  t.throws(() => loadConfig({ CORS_ORIGINS: 'app.example' }), /CORS_ORIGINS/);
});

t.test('CORS is off by default', async (t) => {
  const { app } = await buildTestApp(t);
  const res = await app.inject({ url: '/fhir/Patient', headers: { origin: 'https://app.example' } });
  t.equal(res.statusCode, 200);
  t.notOk(res.headers['access-control-allow-origin']);
});

t.test('CORS for the configured origins only; a preflight needs no token', async (t) => {
  const { app } = await buildTestApp(t, { config: { corsOrigins: ['https://app.example'] } });
  const allowed = await app.inject({ url: '/fhir/Patient', headers: { origin: 'https://app.example' } });
  t.equal(allowed.statusCode, 200);
  t.equal(allowed.headers['access-control-allow-origin'], 'https://app.example');
  t.match(allowed.headers['access-control-expose-headers'], /location/);
  const other = await app.inject({ url: '/fhir/Patient', headers: { origin: 'https://evil.example' } });
  t.notOk(other.headers['access-control-allow-origin'], 'another origin is not allowed');
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/fhir/Patient',
    headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type', authorization: '' },
  });
  t.equal(preflight.statusCode, 204, 'preflight answered');
  t.equal(preflight.headers['access-control-allow-origin'], 'https://app.example');
});
