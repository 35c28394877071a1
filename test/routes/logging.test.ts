import t from 'tap';
import { buildApp } from '../../src/app.js';
import { authorizeTestApp, fhirHeaders, testConfig, testDatabase } from '../helper.js';
import { checkAnswers } from '../schema-check.js';

// Logs carry a request id on every request line and never a name, a search value,
// a resource body or a token (DESIGN.md: no PHI, no secrets in logs).
t.test('log lines: request id, no PHI, no token', async (t) => {
  const lines: string[] = [];
  const database = await testDatabase(t);
  const app = await buildApp({ config: testConfig({ logLevel: 'info' }), database, logStream: { write: (l) => void lines.push(l) } });
  checkAnswers(app, t);
  t.teardown(() => app.close());
  await authorizeTestApp(app);
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

// A real database failure, forced in this test's own database: the 500's log line names
// the error class, the SQLSTATE and the route, never the SQL, its parameters (index rows
// with the name), the resource or the search value.
t.test('a 500 from the database logs what failed, not the data', async (t) => {
  const lines: string[] = [];
  const database = await testDatabase(t);
  const app = await buildApp({ config: testConfig({ logLevel: 'info' }), database, logStream: { write: (l) => void lines.push(l) } });
  checkAnswers(app, t);
  t.teardown(() => app.close());
  await authorizeTestApp(app);
  await app.ready();
  const name = 'Vandermeulenqx';
  const given = 'Ottilienne';

  // Only new rows are checked: the family index row of the next Patient breaks it (23514).
  await database.pool.query(`ALTER TABLE search_string ADD CONSTRAINT logging_probe CHECK (param <> 'family') NOT VALID`);
  const write = await app.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: fhirHeaders(),
    payload: { resourceType: 'Patient', name: [{ family: name, given: [given] }], birthDate: '1958-03-09' },
  });
  t.equal(write.statusCode, 500, 'the write fails in Postgres: 500');
  await database.pool.query('ALTER TABLE search_string DROP CONSTRAINT logging_probe');

  // A search whose SQL fails (42P01): its parameters carry the search value.
  await database.pool.query('ALTER TABLE search_string RENAME TO search_string_away');
  const search = await app.inject({ url: `/fhir/Patient?family=${name}&given=${given}` });
  t.equal(search.statusCode, 500, 'the search fails in Postgres: 500');
  await database.pool.query('ALTER TABLE search_string_away RENAME TO search_string');

  const log = lines.join('');
  for (const leak of [name, name.toLowerCase(), given, given.toLowerCase(), '1958-03-09']) t.notOk(log.includes(leak), `"${leak}" is not in the log`);
  t.notMatch(log, /insert into|select .* from|params:|json_to_recordset/i, 'no SQL text in the log');
  const failures = lines.map((l) => JSON.parse(l) as Record<string, any>).filter((l) => l.level >= 50);
  t.equal(failures.length, 2, 'one error line per 500');
  t.same(
    failures.map((l) => [l.err?.code, l.route]),
    [
      ['23514', '/fhir/Patient'],
      ['42P01', '/fhir/Patient'],
    ],
    'each names the SQLSTATE and the route',
  );
  t.ok(failures.every((l) => typeof l.err?.type === 'string' && l.err.type.length > 0), 'each names the error class');
});
