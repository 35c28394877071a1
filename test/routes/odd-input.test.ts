import t from 'tap';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';

// Inputs found by probing the running server for 500s. Each must get a 4xx
// OperationOutcome (or a correct 200), never a 500.
t.test('odd inputs are answered, never with a 500', async (t) => {
  const { app } = await buildTestApp(t);
  const created = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: patient() });
  const id = created.json().id as string;
  const status = async (method: 'GET' | 'POST', url: string, payload?: string) =>
    (await app.inject({ method, url, headers: payload ? fhirHeaders() : {}, payload })).statusCode;

  t.equal(await status('GET', '/fhir/Patient?name:exact=%00'), 400, 'a NUL in a search value (Postgres text cannot hold it)');
  t.equal(await status('POST', '/fhir/Patient', '{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}'), 400, 'an escaped NUL in a FHIR string');
  t.equal(await status('POST', '/fhir/Patient', '{"resourceType":"Patient","name":[{"family":"a\\\\u0000b"}]}'), 201, 'a backslash followed by the text u0000 is just text');
  t.equal(await status('GET', `/fhir/Patient/${id}/_history/99999999999`), 400, 'a version id beyond the integer range');
  const bundle = { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'GET', url: `Patient/${id}/_history/99999999999` } }] };
  t.equal(await status('POST', '/fhir', JSON.stringify(bundle)), 400, 'the same inside a transaction');
  t.equal(await status('GET', '/fhir/Observation?date=9999-12-31T23:59:59Z'), 200, 'the last second of year 9999 (its range ends past 9999)');
  t.equal(await status('GET', `/fhir/Patient/${id}/$course-summary?technique=a|b|c`), 200, 'a technique token with an unknown system matches nothing');
});

t.test('years below 100 are those years, not 1900–1999', async (t) => {
  const { app } = await buildTestApp(t);
  const obs = { resourceType: 'Observation', status: 'final', code: { text: 'historic' }, effectiveDateTime: '0050-06-01' };
  const created = await app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: obs });
  t.equal(created.statusCode, 201);
  const ids = async (url: string) => ((await app.inject({ url })).json().entry ?? []).map((e: { resource: { id: string } }) => e.resource.id);
  t.same(await ids('/fhir/Observation?date=0050'), [created.json().id], 'date=0050 finds it');
  t.same(await ids('/fhir/Observation?date=1950'), [], 'date=1950 does not');
});
