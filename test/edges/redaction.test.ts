import t from 'tap';
import { buildApp } from '../../src/app.js';
import { testConfig, testDatabase } from '../helper.js';
import { checkAnswers } from '../schema-check.js';
import { assertion, FORM, keyPair, tokenForm } from '../auth/helper.js';

// Bearer tokens, client assertions and issued access tokens never reach the log: the request
// serializer leaves headers and bodies out, and pino's redact censors them should one be logged.
t.test('no token or client assertion in the log', async (t) => {
  const lines: string[] = [];
  const database = await testDatabase(t);
  const app = await buildApp({ config: testConfig({ logLevel: 'trace' }), database, logStream: { write: (l) => void lines.push(l) } });
  checkAnswers(app, t);
  t.teardown(() => app.close());
  await app.ready();

  const key = await keyPair('ES384');
  const client = await app.auth!.clients.add({ name: 'integrator', scope: 'system/*.rs', jwks: { keys: [key.publicJwk] } });
  const clientAssertion = await assertion(client.id, key);
  const issued = await app.inject({ method: 'POST', url: '/auth/token', headers: FORM, payload: tokenForm(clientAssertion, 'system/Patient.rs') });
  // The label names the error only: on success the body is a token, which has no place in the test output either.
  t.equal(issued.statusCode, 200, `token endpoint: ${issued.statusCode === 200 ? 'issued' : issued.body}`);
  const accessToken = issued.json().access_token as string;
  const read = await app.inject({ url: '/fhir/Patient', headers: { authorization: `Bearer ${accessToken}` } });
  t.equal(read.statusCode, 200);
  const refused = await app.inject({ url: '/fhir/Patient', headers: { authorization: `Bearer ${accessToken}x` } });
  t.equal(refused.statusCode, 401);

  // Should a header or a token form be logged after all, redact censors it.
  app.log.info({ request: { headers: { authorization: `Bearer ${accessToken}` } }, body: { client_assertion: clientAssertion, access_token: accessToken } }, 'probe');
  app.log.info({ headers: { authorization: `Bearer ${accessToken}` }, client_assertion: clientAssertion, access_token: accessToken }, 'probe');

  const log = lines.join('');
  const paths = lines.map((l) => JSON.parse(l) as { req?: { path?: string } }).map((l) => l.req?.path);
  t.ok(paths.includes('/auth/token') && paths.includes('/fhir/Patient'), `the requests were logged (${lines.length} lines)`);
  const secrets = { 'the client assertion': clientAssertion, 'the access token': accessToken, 'its signature': accessToken.split('.')[2]!, 'the assertion signature': clientAssertion.split('.')[2]! };
  for (const [what, secret] of Object.entries(secrets)) t.notOk(log.includes(secret), `${what} is not in the log`);
  const probes = lines.map((l) => JSON.parse(l) as Record<string, any>).filter((l) => l.msg === 'probe');
  t.same(probes.map((p) => [p.request?.headers?.authorization ?? p.headers?.authorization, p.body?.client_assertion ?? p.client_assertion, p.body?.access_token ?? p.access_token]), [
    ['[redacted]', '[redacted]', '[redacted]'],
    ['[redacted]', '[redacted]', '[redacted]'],
  ], 'the probes were censored');
});
