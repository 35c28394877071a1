/**
 * Hostile strings, answered at the right depth (issue 9, point 4).
 *
 * FHIR R4 datatypes.html: a string is "a sequence of Unicode characters", and JSON text
 * is Unicode (RFC 8259 §8.2): an unpaired surrogate (`"\ud800"` as a JSON escape) is no
 * character at all, so the body is refused with a 400 OperationOutcome naming the element,
 * before anything is written. Length is not a reason to fail: R4 bounds a string only by
 * 1 MB as a SHALL NOT for senders (not a limit on receivers) and an id by 64 characters, so
 * a very long name, identifier, uri, reference or code is stored, read back as written and
 * found by search (search.html: string = starts with, ignoring case and accents; :exact
 * = the whole value; token = system|code; uri = exact, :below = starts with).
 */
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { FhirError } from '../../src/fhir/outcome.js';
import { parseFilter } from '../../src/fhir/search/parse.js';
import { buildTestApp, fhirHeaders } from '../helper.js';
import { assertOutcome, expressions, type Json } from '../support.js';

const { app } = await buildTestApp(t);

const post = (url: string, body: unknown, headers = fhirHeaders()) =>
  app.inject({ method: 'POST', url, headers, payload: typeof body === 'string' ? body : JSON.stringify(body) });
/** POST [type]/_search with a form body: the way to send values too long for a URL. */
const searchForm = (type: string, params: Record<string, string>) =>
  app.inject({
    method: 'POST',
    url: `/fhir/${type}/_search`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams(params).toString(),
  });
const ids = (res: { json(): Json }) => ((res.json().entry ?? []) as Json[]).filter((e) => e.search?.mode !== 'outcome').map((e) => e.resource.id as string);
const unique = (label: string) => `${label}${randomBytes(6).toString('hex')}`;
/** Random letters: incompressible, so Postgres cannot squeeze a long value into an index row. */
const letters = (n: number) => Array.from(randomBytes(n), (b) => String.fromCharCode((b % 26) + (b & 32 ? 97 : 65))).join('');
const hex = (n: number) => randomBytes(Math.ceil(n / 2)).toString('hex').slice(0, n);

// JSON.stringify writes an unpaired surrogate as the escape `\ud800`, exactly what a hostile client sends.
const HIGH = '\ud800';
const LOW = '\udc00';

async function refused(t: Test, res: Awaited<ReturnType<typeof post>>, path: string) {
  const body = assertOutcome(t, res, 400);
  t.ok(expressions(body).includes(path), `names ${path} (got ${expressions(body).join(', ')})`);
  t.notOk(/[\ud800-\udfff]/.test(res.body.replace(/[\ud800-\udbff][\udc00-\udfff]/g, '')), 'the answer carries no unpaired surrogate');
  t.notOk(/\\ud[89a-f]/i.test(res.body), 'nor its escape');
}

async function noPatient(t: Test, family: string) {
  t.same(ids(await app.inject({ url: `/fhir/Patient?family:exact=${family}` })), [], `nothing was written for ${family}`);
}

t.test('unpaired surrogates in a body → 400 naming the element, nothing written', async (t) => {
  const family = unique('Sur');
  await refused(t, await post('/fhir/Patient', { resourceType: 'Patient', name: [{ family }, { family: `x${HIGH}` }] }), 'Patient.name[1].family');
  await noPatient(t, family);
  await refused(t, await post('/fhir/Patient', { resourceType: 'Patient', name: [{ family, given: ['Ada', `${LOW}y`] }] }), 'Patient.name[0].given[1]');
  await refused(t, await post('/fhir/Patient', { resourceType: 'Patient', name: [{ family: `${LOW}${HIGH}` }] }), 'Patient.name[0].family');
  await refused(t, await post('/fhir/Patient', `{"resourceType":"Patient","name":[{"family":"${family}\\uD800"}]}`), 'Patient.name[0].family');
  await noPatient(t, family);
});

t.test('a surrogate pair is one character: stored and read back', async (t) => {
  const family = unique('Emoji');
  const res = await post('/fhir/Patient', `{"resourceType":"Patient","name":[{"family":"${family}\\ud83d\\ude00"}]}`);
  t.equal(res.statusCode, 201);
  const read = await app.inject({ url: `/fhir/Patient/${res.json().id}` });
  t.equal(read.json().name[0].family, `${family}😀`);
});

t.test('unpaired surrogates in extensions, contained resources, keys and resourceType', async (t) => {
  const ext = (valueString: string) => [{ url: 'http://example.org/fhir/StructureDefinition/nickname', valueString }];
  await refused(t, await post('/fhir/Patient', { resourceType: 'Patient', extension: ext(HIGH) }), 'Patient.extension[0].valueString');
  await refused(
    t,
    await post('/fhir/Patient', { resourceType: 'Patient', birthDate: '1984-06-02', _birthDate: { extension: ext(LOW) } }),
    'Patient.birthDate.extension[0].valueString',
  );
  await refused(
    t,
    await post('/fhir/Patient', { resourceType: 'Patient', name: [{ given: ['Ada', 'Ngozi'], _given: [null, { extension: ext(HIGH) }] }] }),
    'Patient.name[0].given[1].extension[0].valueString',
  );
  const observation = {
    resourceType: 'Observation',
    status: 'final',
    code: { text: 'pain' },
    subject: { reference: '#p' },
    contained: [{ resourceType: 'Patient', id: 'p', name: [{ family: HIGH }] }],
  };
  await refused(t, await post('/fhir/Observation', observation), 'Observation.contained[0].name[0].family');
  await refused(t, await post('/fhir/Patient', { resourceType: 'Patient', [`nick${HIGH}`]: 'x' }), 'Patient');
  assertOutcome(t, await post('/fhir/Patient', { resourceType: `Patient${HIGH}` }), 400);
});

t.test('unpaired surrogates in a Bundle: the whole Bundle is refused, nothing written', async (t) => {
  const family = unique('Bundle');
  for (const type of ['transaction', 'batch']) {
    const bundle = {
      resourceType: 'Bundle',
      type,
      entry: [
        { fullUrl: 'urn:uuid:8a1f3c52-9d0e-4c67-b1a4-2f5e6d7c8b90', resource: { resourceType: 'Patient', name: [{ family }] }, request: { method: 'POST', url: 'Patient' } },
        { resource: { resourceType: 'Patient', name: [{ family: LOW }] }, request: { method: 'POST', url: 'Patient' } },
      ],
    };
    await refused(t, await post('/fhir', bundle), 'Bundle.entry[1].resource.name[0].family');
  }
  await noPatient(t, family);
});

t.test('search parameters: an unpaired surrogate is refused wherever it can arrive; no 500', async (t) => {
  const get = (url: string) => ({ resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url } }] });
  await refused(t, await post('/fhir', get(`Patient?family=${HIGH}`)), 'Bundle.entry[0].request.url');
  const conditional = { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient', ifNoneExist: `family=${LOW}` } }] };
  await refused(t, await post('/fhir', conditional), 'Bundle.entry[0].request.ifNoneExist');

  // A URL is percent-encoded UTF-8; %ED%A0%80 (U+D800 encoded) is not UTF-8, and URL decoding
  // (WHATWG, what URLSearchParams does) turns each bad byte into U+FFFD: an ordinary search.
  for (const url of ['/fhir/Patient?family=%ED%A0%80', '/fhir/Patient?given:exact=%ED%B0%80x', '/fhir/Patient?identifier=%ED%A0%80|%ED%A0%80', '/fhir/Patient?fam%ED%A0%80ily=x']) {
    const res = await app.inject({ url });
    t.equal(res.statusCode, 200, url);
    t.equal(res.json().resourceType, 'Bundle', `${url}: a searchset`);
  }
  const form = await searchForm('Patient', {});
  t.equal(form.statusCode, 200);
  const encoded = await app.inject({ method: 'POST', url: '/fhir/Patient/_search', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'family=%ED%A0%80' });
  t.equal(encoded.statusCode, 200, 'the same in a _search form body');
  const inBatch = await post('/fhir', get('Patient?family=%ED%A0%80'));
  t.equal(inBatch.statusCode, 200, 'and in a batch entry url');

  // The engine is HTTP-free: a caller that hands it an unpaired surrogate gets a 400 naming the parameter.
  try {
    parseFilter('Patient', 'family', `a${HIGH}`, 'http://fascia.test');
    t.fail('parseFilter accepted an unpaired surrogate');
  } catch (err) {
    t.ok(err instanceof FhirError && err.status === 400 && err.issues[0]?.expression?.includes('family'), 'parseFilter → 400 naming family');
  }
});

t.test('a JSON Patch carrying an unpaired surrogate → 400', async (t) => {
  const created = await post('/fhir/Patient', { resourceType: 'Patient', name: [{ family: unique('Patch') }] });
  const res = await app.inject({
    method: 'PATCH',
    url: `/fhir/Patient/${created.json().id}`,
    headers: { 'content-type': 'application/json-patch+json' },
    payload: JSON.stringify([{ op: 'replace', path: '/name/0/family', value: HIGH }]),
  });
  assertOutcome(t, res, 400);
  // In a transaction the patch is a base64 Binary, parsed past the body's check: refused before Postgres sees it.
  const data = Buffer.from(JSON.stringify([{ op: 'replace', path: '/name/0/family', value: LOW }])).toString('base64');
  const bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [{ resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data }, request: { method: 'PATCH', url: `Patient/${created.json().id}` } }],
  };
  const inBundle = await post('/fhir', bundle);
  t.ok(inBundle.statusCode >= 400 && inBundle.statusCode < 500, `a Binary patch in a transaction → 4xx, not a 500 (${inBundle.statusCode})`);
  t.match(inBundle.json().issue?.[0]?.details?.text, /not Unicode text/, 'saying why');
  t.equal((await app.inject({ url: `/fhir/Patient/${created.json().id}` })).json().meta.versionId, '1', 'the resource is unchanged');
});

t.test('a 5 MB family name is stored, read back byte for byte, found by prefix and :exact', async (t) => {
  const marker = unique('Ñandú');
  // Accents and mixed case, so the normalised (searched) form differs from the raw one.
  const family = `${marker}Élan-${letters(5 * 1024 * 1024)}`;
  const created = await post('/fhir/Patient', { resourceType: 'Patient', name: [{ family, given: ['Ada'] }] });
  t.equal(created.statusCode, 201, `created (${created.body.slice(0, 200)})`);
  const id = created.json().id as string;
  const read = await app.inject({ url: `/fhir/Patient/${id}` });
  t.equal(read.statusCode, 200);
  t.ok(read.body.includes(JSON.stringify(family)), 'the read carries the name as written');
  t.equal(read.json().name[0].family, family, 'byte for byte');
  t.equal(read.body, created.body, 'the read is the body the create answered');

  const folded = marker.normalize('NFD').replace(/\p{M}/gu, '').toUpperCase();
  t.same(ids(await app.inject({ url: `/fhir/Patient?family=${encodeURIComponent(folded)}` })), [id], 'a short prefix, other case, no accents');
  const long = family.slice(0, 3000);
  t.same(ids(await searchForm('Patient', { family: long.toLowerCase() })), [id], 'a 3,000-character prefix');
  t.same(ids(await searchForm('Patient', { name: long })), [id], 'name= too');
  // Another letter even after case folding (search compares folded forms: 'X' and 'x' are one).
  const wrongTail = `${long.slice(0, 2999)}${long.at(-1)!.toLowerCase() === 'x' ? 'y' : 'x'}`;
  t.same(ids(await searchForm('Patient', { family: wrongTail })), [], 'a long prefix that differs past the indexed part does not match');
  t.same(ids(await searchForm('Patient', { 'family:exact': family })), [id], ':exact with the whole 5 MB value');
  t.same(ids(await searchForm('Patient', { 'family:exact': family.slice(0, -1) })), [], ':exact with one character less');
  t.same(ids(await searchForm('Patient', { 'family:exact': family.toLowerCase() })), [], ':exact is case-sensitive');
  t.same(ids(await searchForm('Patient', { 'family:contains': family.slice(4_000_000, 4_000_400) })), [id], ':contains deep inside');
  t.same(ids(await app.inject({ url: `/fhir/Patient?family=${encodeURIComponent(marker)}&_sort=family` })), [id], 'sorted by family');
});

t.test('long token codes and systems are stored and searchable', async (t) => {
  const system = `http://example.org/mrn/${hex(20_000)}`;
  const value = hex(100_000);
  const body = { resourceType: 'Patient', identifier: [{ system, value, type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] } }] };
  const created = await post('/fhir/Patient', body);
  t.equal(created.statusCode, 201, `created (${created.body.slice(0, 200)})`);
  const id = created.json().id as string;
  t.same(ids(await searchForm('Patient', { identifier: `${system}|${value}` })), [id], 'system|value');
  t.same(ids(await searchForm('Patient', { identifier: value })), [id], 'value alone');
  t.same(ids(await searchForm('Patient', { identifier: `|${value}` })), [], '|value means no system');
  t.same(ids(await searchForm('Patient', { identifier: `${system}|` })), [id], 'system|');
  t.same(ids(await searchForm('Patient', { identifier: `${system}|${value.slice(0, -1)}` })), [], 'a value one character short');
  t.same(ids(await searchForm('Patient', { identifier: `${system.slice(0, -1)}|${value}` })), [], 'a system one character short');
  t.same(ids(await searchForm('Patient', { 'identifier:of-type': `http://terminology.hl7.org/CodeSystem/v2-0203|MR|${value}` })), [id], ':of-type');

  const code = hex(50_000);
  const obs = { resourceType: 'Observation', status: 'final', code: { coding: [{ system, code }] }, valueQuantity: { value: 7, system: 'http://unitsofmeasure.org', code: '{score}' } };
  const o = await post('/fhir/Observation', obs);
  t.equal(o.statusCode, 201, `observation created (${o.body.slice(0, 200)})`);
  t.same(ids(await searchForm('Observation', { code: `${system}|${code}` })), [o.json().id], 'a long code');
  t.same(ids(await searchForm('Observation', { 'code-value-quantity': `${system}|${code}$7` })), [o.json().id], 'composite with a long code');
  t.same(ids(await searchForm('Observation', { 'code-value-quantity': `${system}|${code}$8` })), [], 'composite: the value decides');
  t.same(ids(await searchForm('Observation', { 'code-value-quantity': `${system}|${code.slice(0, -1)}$7` })), [], 'composite: a code one character short');
});

t.test('long uris and references are stored and searchable', async (t) => {
  const base = `http://example.org/fhir/Questionnaire/${hex(60_000)}`;
  const url = `${base}/v1`;
  const q = await post('/fhir/Questionnaire', { resourceType: 'Questionnaire', status: 'draft', url });
  t.equal(q.statusCode, 201, `created (${q.body.slice(0, 200)})`);
  t.same(ids(await searchForm('Questionnaire', { url })), [q.json().id], 'uri: the exact value');
  t.same(ids(await searchForm('Questionnaire', { url: base })), [], 'uri: a prefix is not the value');
  t.same(ids(await searchForm('Questionnaire', { 'url:below': base })), [q.json().id], 'uri :below a long prefix');
  t.same(ids(await searchForm('Questionnaire', { 'url:below': `${base.slice(0, -1)}x/` })), [], 'uri :below a long prefix that differs at its end');

  const far = `http://other.example/fhir/Patient/${hex(80_000)}`;
  const bogusType = `${letters(70_000)}/1`;
  const longId = `Patient/${hex(100)}`;
  const made: Record<string, string> = {};
  for (const reference of [far, bogusType, longId]) {
    const res = await post('/fhir/Observation', { resourceType: 'Observation', status: 'final', code: { text: 'pain' }, subject: { reference } });
    t.equal(res.statusCode, 201, `created with a ${reference.length}-character reference (${res.body.slice(0, 200)})`);
    made[reference] = res.json().id;
  }
  for (const reference of [far, bogusType, longId]) {
    t.same(ids(await searchForm('Observation', { subject: reference })), [made[reference]], `found by its ${reference.length}-character reference`);
  }
  t.same(ids(await searchForm('Observation', { subject: far.slice(0, -1) })), [], 'a reference one character short');
});
