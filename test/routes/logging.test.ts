import t from 'tap';
import { buildApp } from '../../src/app.js';
import { fhirHeaders, testConfig, testDatabase } from '../helper.js';
import { checkAnswers } from '../schema-check.js';

// Logs carry a request id on every request line and never a name, a search value,
// a resource body or a token (DESIGN.md: no PHI, no secrets in logs).
t.test('log lines: request id, no PHI, no token', async (t) => {
  const lines: string[] = [];
  const database = await testDatabase(t);
  const app = await buildApp({ config: testConfig({ logLevel: 'info' }), database, logStream: { write: (l) => void lines.push(l) } });
  checkAnswers(app, t);
  t.teardown(() => app.close());
  const secret = 'Bearer eyJhbGciOiJSUzM4NCJ9.secret-token';
  await app.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: fhirHeaders({ authorization: secret }),
    payload: { resourceType: 'Patient', name: [{ family: 'Zyxwvutsrq', given: ['Qponmlk'] }], birthDate: '1961-07-04' },
  });
  await app.inject({ url: '/fhir/Patient?family=Zyxwvutsrq&birthdate=1961-07-04', headers: { authorization: secret, 'x-request-id': 'req-fixed-42' } });
  await app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: { resourceType: 'Patient', gender: 'Zyxwvutsrq' } });
  const log = lines.join('');
  t.ok(lines.length >= 6, `requests were logged (${lines.length} lines)`);
  for (const leak of ['Zyxwvutsrq', 'Qponmlk', '1961-07-04', 'secret-token']) t.notOk(log.includes(leak), `"${leak}" is not in the log`);
  const requestLines = lines.map((l) => JSON.parse(l) as { reqId?: string; req?: unknown; res?: unknown }).filter((l) => l.req || l.res);
  t.ok(requestLines.every((l) => typeof l.reqId === 'string' && l.reqId.length > 0), 'every request line has a reqId');
  t.ok(requestLines.some((l) => l.reqId === 'req-fixed-42'), 'an incoming x-request-id is kept');
});
