/**
 * Search errors and leniency (FHIR R4 search.html#errors, http.html#search), POST
 * [type]/_search with a form body, and how writes show in search: a deleted resource
 * is no longer found, an updated one is found by its new values only.
 */
import t from 'tap';
import { buildTestApp } from '../helper.js';
import { Fixture, painBody, patientBody, q } from '../search-fixtures.js';
import { assertOutcome, put, type Json } from '../support.js';

const { app } = await buildTestApp(t);
const f = new Fixture(app);

const ada = (await f.add('ada', patientBody('Okafor', ['Ada']))).id as string;
await f.add('o1', painBody(ada, 6, '2026-03-10T09:30:00Z'));
await f.add('o2', painBody(ada, 3, '2026-03-12T09:30:00Z'));
await f.add('o3', painBody(ada, 8, '2026-02-01T09:30:00Z'));
const ALL = ['o1', 'o2', 'o3'];

const form = { 'content-type': 'application/x-www-form-urlencoded' };
const postSearch = (url: string, body: string) => app.inject({ method: 'POST', url, headers: form, payload: body });

t.test('an unknown parameter is ignored by default (200, the other parameters still apply)', async (t) => {
  await f.expect(t, '/fhir/Observation?foo=bar', ALL);
  await f.expect(t, `/fhir/Observation?foo=bar&date=${q('ge2026-03-01')}`, ['o1', 'o2']);
  await f.expect(t, '/fhir/Observation?foo=bar', ALL, { prefer: 'handling=lenient' });
});

t.test('Prefer: handling=strict turns an unknown parameter into 400 OperationOutcome', async (t) => {
  const res = await f.get('/fhir/Observation?foo=bar', { prefer: 'handling=strict' });
  assertOutcome(t, res, 400);
  await f.expect(t, '/fhir/Observation?date=ge2026-03-01', ['o1', 'o2'], { prefer: 'handling=strict' });
});

t.test('malformed dates and date prefixes → 400 OperationOutcome', async (t) => {
  for (const value of ['2026-13-45', 'xx2026', '2026-02-30', 'ge', 'next-tuesday', '2026-03-10T25:00:00Z']) {
    const res = await f.get(`/fhir/Observation?date=${q(value)}`);
    t.test(`date=${value}`, async (t) => void assertOutcome(t, res, 400));
  }
});

t.test('malformed quantities and numbers → 400 OperationOutcome', async (t) => {
  const urls = [
    '/fhir/Observation?value-quantity=abc',
    '/fhir/Observation?value-quantity=gt',
    `/fhir/Observation?value-quantity=${q('5..4||{score}')}`,
    `/fhir/Observation?code-value-quantity=${q('http://loinc.org|72514-3$abc')}`,
    '/fhir/Observation?_count=abc',
    '/fhir/Observation?_count=-5',
  ];
  for (const url of urls) {
    const res = await f.get(url);
    t.test(url, async (t) => void assertOutcome(t, res, 400));
  }
});

t.test('an unsupported modifier → 400 OperationOutcome', async (t) => {
  for (const url of ['/fhir/Observation?code:below=72514-3', '/fhir/Patient?family:not=Okafor', '/fhir/Observation?date:exact=2026', '/fhir/Observation?code:nonsense=x']) {
    const res = await f.get(url);
    t.test(url, async (t) => void assertOutcome(t, res, 400));
  }
});

t.test('odd inputs never produce a 500', async (t) => {
  const urls = [
    '/fhir/Observation?patient=',
    '/fhir/Observation?code=%5C',
    `/fhir/Observation?code=${q('|')}`,
    '/fhir/Observation?date=ap',
    '/fhir/Observation?_count=99999999999999999999',
    '/fhir/Observation?_sort=',
    '/fhir/Observation?_sort=nonsense',
    '/fhir/Observation?_include=Nope',
    '/fhir/Observation?_summary=maybe',
    '/fhir/Observation?_total=some',
    `/fhir/Observation?code-value-quantity=${q('http://loinc.org|72514-3')}`,
    `/fhir/Observation?patient=${q("Patient/1' OR '1'='1")}`,
    '/fhir/Observation?_cursor=not-a-cursor',
  ];
  for (const url of urls) {
    const res = await f.get(url);
    t.ok(res.statusCode === 200 || (res.statusCode >= 400 && res.statusCode < 500), `${url} → ${res.statusCode} (200 or 4xx)`);
    if (res.statusCode !== 200) t.equal((res.json() as Json).resourceType, 'OperationOutcome', `${url}: an OperationOutcome`);
  }
});

t.test('POST _search with a form body returns the same matches as GET', async (t) => {
  const query = `patient=${ada}&date=${q('ge2026-03-01')}&code=${q('http://loinc.org|72514-3')}`;
  const get = await f.expect(t, `/fhir/Observation?${query}`, ['o1', 'o2']);
  const res = await postSearch('/fhir/Observation/_search', query);
  t.equal(res.statusCode, 200, `POST _search → 200${res.statusCode === 200 ? '' : `: ${res.body.slice(0, 300)}`}`);
  const post = res.json() as Json;
  t.equal(post.type, 'searchset');
  t.same(f.labels(post).sort(), f.labels(get).sort(), 'same matches as GET');
  const charset = await app.inject({
    method: 'POST',
    url: '/fhir/Observation/_search',
    headers: { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' },
    payload: query,
  });
  t.equal(charset.statusCode, 200, 'a charset parameter on the form content-type is accepted');
  t.same(f.labels(charset.json() as Json).sort(), ['o1', 'o2'], 'and gives the same matches');
});

t.test('POST _search combines URL and body parameters (AND)', async (t) => {
  const res = await postSearch(`/fhir/Observation/_search?patient=${ada}`, `value-quantity=gt5`);
  t.equal(res.statusCode, 200, 'POST _search → 200');
  t.same(f.labels(res.json() as Json).sort(), ['o1', 'o3'], 'patient from the URL and value-quantity from the body');
  const split = await postSearch(`/fhir/Observation/_search?date=${q('ge2026-03-01')}`, `date=${q('lt2026-03-11')}`);
  t.same(f.labels(split.json() as Json).sort(), ['o1'], 'the same parameter in URL and body is ANDed');
});

t.test('a deleted resource is not found by search, nor included', async (t) => {
  const gone = await f.add('gone', painBody(ada, 9, '2026-03-11T09:30:00Z'));
  await f.expect(t, '/fhir/Observation?value-quantity=gt8.5', ['gone']);
  const del = await app.inject({ method: 'DELETE', url: `/fhir/Observation/${String(gone.id)}` });
  t.ok(del.statusCode === 200 || del.statusCode === 204, 'deleted');
  await f.expect(t, '/fhir/Observation?value-quantity=gt8.5', []);
  await f.expect(t, `/fhir/Observation?_id=${String(gone.id)}`, []);
  await f.expect(t, `/fhir/Observation?patient=${ada}`, ALL);

  const ben = await f.add('ben', patientBody('Brandt', ['Ben']));
  await f.add('o-ben', painBody(String(ben.id), 5, '2026-03-11T10:00:00Z'));
  await app.inject({ method: 'DELETE', url: `/fhir/Patient/${String(ben.id)}` });
  const bundle = await f.expect(t, `/fhir/Observation?_id=${f.id('o-ben')}&_include=Observation:patient`, ['o-ben']);
  t.same(f.labels(bundle, 'include'), [], 'the deleted patient is not included');
  await f.expect(t, '/fhir/Patient?family=brandt', []);
});

t.test('a resource revived by PUT after deletion is found again', async (t) => {
  const body = { ...painBody(ada, 9, '2026-03-11T09:30:00Z'), id: f.id('gone') };
  const res = await put(app, body);
  t.ok(res.statusCode === 200 || res.statusCode === 201, `PUT revives (${res.statusCode})`);
  await f.expect(t, '/fhir/Observation?value-quantity=gt8.5', ['gone']);
});

t.test('an updated resource is found by its new values only', async (t) => {
  const renamed = await f.add('renamed', patientBody('Mensah', ['Efua'], { gender: 'female' }));
  await f.expect(t, '/fhir/Patient?family=mensah', ['renamed']);
  const res = await put(app, { ...patientBody('Asante', ['Efua'], { gender: 'female' }), id: renamed.id });
  t.equal(res.statusCode, 200, 'updated');
  await f.expect(t, '/fhir/Patient?family=mensah', []);
  await f.expect(t, '/fhir/Patient?family=asante', ['renamed']);
  await f.expect(t, '/fhir/Patient?given=efua', ['renamed']);

  const o2 = f.resource('o2');
  const upd = await put(app, { ...painBody(ada, 7, '2026-04-12T09:30:00Z'), id: o2.id });
  t.equal(upd.statusCode, 200, 'Observation updated');
  await f.expect(t, '/fhir/Observation?date=2026-03-12', []);
  await f.expect(t, '/fhir/Observation?date=2026-04-12', ['o2']);
  await f.expect(t, `/fhir/Observation?value-quantity=${q('3||{score}')}`, []);
  await f.expect(t, `/fhir/Observation?value-quantity=${q('7||{score}')}`, ['o2']);
});
