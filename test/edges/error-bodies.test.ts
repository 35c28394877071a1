import t from 'tap';
import type { InjectOptions } from 'fastify';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';

/** What must never reach a client: stack frames, paths of this machine, SQL. */
function leaks(body: string): string[] {
  const found: string[] = [];
  // `    at fn (/x/y.js:1:2)`, `at async /x/y.js:1:2`, `at node:internal/…:1:2`
  if (/\bat (async )?[^\s(]+ \([^)]*:\d+:\d+\)|\bat (async )?(node:|file:|\/)\S*:\d+:\d+|\\n\s+at /.test(body)) found.push('a stack frame');
  if (/\/work\/|node_modules|\/src\/|\.ts\b|file:\/\//.test(body)) found.push('an internal path');
  if (/\b(SELECT|INSERT|UPDATE\s+\w+\s+SET|DELETE FROM|params:|relation "|search_string)\b/i.test(body)) found.push('SQL');
  return found;
}

t.test('the leak detector sees a real stack, path and SQL', async (t) => {
  const err = new Error('boom');
  t.same(leaks(JSON.stringify({ text: err.stack })), ['a stack frame', 'an internal path']);
  t.same(leaks(JSON.stringify({ text: 'Failed query: select "id" from "resources" where x = $1' })), ['SQL']);
});

t.test('error bodies are OperationOutcomes with safe text only', async (t) => {
  const { app, database } = await buildTestApp(t);
  const answers: { what: string; status: number; body: string }[] = [];
  const ask = async (what: string, opts: InjectOptions) => {
    const res = await app.inject(opts);
    answers.push({ what, status: res.statusCode, body: res.body });
    return res;
  };

  // Forced 500s: a write whose index row Postgres refuses, a search whose table is gone.
  await database.pool.query(`ALTER TABLE search_string ADD CONSTRAINT edges_probe CHECK (param <> 'family') NOT VALID`);
  t.equal((await ask('write failing in Postgres', { method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: patient() })).statusCode, 500);
  await database.pool.query('ALTER TABLE search_string DROP CONSTRAINT edges_probe');
  await database.pool.query('ALTER TABLE search_string RENAME TO search_string_away');
  t.equal((await ask('search failing in Postgres', { url: '/fhir/Patient?family=Okafor' })).statusCode, 500);
  await database.pool.query('ALTER TABLE search_string_away RENAME TO search_string');

  // 4xx of every kind.
  await ask('broken JSON', { method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: '{"resourceType": "Patient",' });
  await ask('invalid resource', { method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: { resourceType: 'Patient', gender: 7, bogus: true } });
  await ask('wrong media type', { method: 'POST', url: '/fhir/Patient', headers: { 'content-type': 'text/plain' }, payload: 'x' });
  await ask('unknown search parameter value', { url: '/fhir/Patient?birthdate=notadate&_count=-1' });
  await ask('unknown route', { url: '/fhir/Nope/1/2/3' });
  await ask('bad token', { url: '/fhir/Patient', headers: { authorization: 'Bearer a.b.c' } });
  await ask('bad path encoding', { url: '/fhir/%E0%A4%A' });
  await ask('unknown id', { url: '/fhir/Patient/does-not-exist' });

  for (const a of answers) {
    t.ok(a.status >= 400, `${a.what}: ${a.status}`);
    t.equal(JSON.parse(a.body).resourceType, 'OperationOutcome', `${a.what}: an OperationOutcome`);
    t.same(leaks(a.body), [], `${a.what}: no stack, path or SQL in ${a.body.slice(0, 300)}`);
  }
  t.ok(answers.filter((a) => a.status === 500).every((a) => JSON.parse(a.body).issue[0].diagnostics === undefined), 'a 500 says no more than "Internal server error"');
});
