// FHIR Bulk Data Access 2.0 $export over HTTP (inject): kick-off variants and errors, the
// manifest, the NDJSON files (gzip), _outputFormat, _type, _typeFilter, _elements, Patient
// and Group level, authorisation, the CapabilityStatement. test/bulk/jobs.test.ts has the
// job lifecycle (polling, _since and the snapshot, splitting, cancel, expiry, the limit).
import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { buildTestApp, fhirHeaders, patient, testDatabase } from '../helper.js';
import { assertOutcome, BASE, type Json } from '../support.js';
import { ASYNC, contents, download, exportAll, kickoff, kickoffPost, pathOf, poll, type Manifest } from './support.js';

const bulk = { retryAfterSeconds: 1, maxPerClient: 1000, expirySeconds: 3600, fileBytes: 100 * 1024 * 1024, batchSize: 1000, workers: 1, pauseMs: 0 };
const database = await testDatabase(t);
const { app } = await buildTestApp(t, { database, config: { bulk } });


const LOINC = 'http://loinc.org';
const obs = (patientId: string, code: string, value: number) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: LOINC, code }] },
  subject: { reference: `Patient/${patientId}` },
  valueQuantity: { value, unit: '{score}', system: 'http://unitsofmeasure.org', code: '{score}' },
});

async function create(a: FastifyInstance, resource: Json): Promise<Json> {
  const res = await a.inject({ method: 'POST', url: `/fhir/${resource.resourceType}`, headers: fhirHeaders(), payload: resource });
  if (res.statusCode !== 201) throw new Error(`create → ${res.statusCode}: ${res.body}`);
  return res.json() as Json;
}

// Two patients, each with pain scores (72514-3) and heart rates (8867-4); a Practitioner outside any compartment.
const ada = await create(app, patient('Okafor'));
const ben = await create(app, patient('Brandt'));
const adaObs: Json[] = [];
const benObs: Json[] = [];
for (let i = 0; i < 12; i++) adaObs.push(await create(app, obs(ada.id, i % 2 ? '72514-3' : '8867-4', i % 10)));
for (let i = 0; i < 5; i++) benObs.push(await create(app, obs(ben.id, '72514-3', i)));
const practitioner = await create(app, { resourceType: 'Practitioner', name: [{ family: 'Lindqvist' }] });

const ids = (list: Json[] | undefined) => (list ?? []).map((r) => r.id as string).sort();

t.test('kick-off needs Prefer: respond-async (400), answers 202 with an absolute Content-Location', async (t) => {
  const without = await app.inject({ method: 'GET', url: '/fhir/$export' });
  assertOutcome(t, without, 400, 'invalid', 'no Prefer');
  const res = await kickoff(app, '/fhir/$export?_type=Practitioner');
  t.equal(res.statusCode, 202);
  t.match(String(res.headers['content-location']), /^http:\/\/fascia\.test\/fhir\/\$export-status\/[0-9a-f-]{36}$/);
  t.equal(res.json().resourceType, 'OperationOutcome', 'the 202 body is an OperationOutcome');
  const done = await poll(app, String(res.headers['content-location']));
  t.equal(done.statusCode, 200);
});

t.test('the manifest and its files', async (t) => {
  const res = await kickoff(app, '/fhir/$export?_type=Observation,Patient,Practitioner');
  const done = await poll(app, String(res.headers['content-location']));
  const m = done.json() as Manifest;
  t.equal(m.request, `${BASE}/fhir/$export?_type=Observation,Patient,Practitioner`);
  t.equal(m.requiresAccessToken, true);
  t.same(m.error, []);
  t.notOk('deleted' in m, 'no deleted array without _since');
  t.ok(Date.parse(m.transactionTime) <= Date.now() && /Z$/.test(m.transactionTime), 'transactionTime is an instant');
  for (const o of m.output) t.match(o.url, /^http:\/\/fascia\.test\/fhir\/\$export-file\//);
  const { byType, invalid } = await contents(app, m);
  t.same(invalid, [], 'every line a schema-valid R4 resource of its file type; counts match');
  t.same(ids(byType.get('Observation')), ids([...adaObs, ...benObs]));
  t.same(ids(byType.get('Patient')), ids([ada, ben]));
  t.same(ids(byType.get('Practitioner')), [practitioner.id]);
  // The stored text is served as is: the line is the resource as read.
  const read = (await app.inject(`/fhir/Observation/${adaObs[0]!.id}`)).json();
  t.same(byType.get('Observation')!.find((o) => o.id === adaObs[0]!.id), read);
});

t.test('each _outputFormat value is accepted; another is a 400 unless handling=lenient', async (t) => {
  for (const format of ['application/fhir+ndjson', 'application/ndjson', 'ndjson']) {
    const m = await exportAll(app, `/fhir/$export?_type=Practitioner&_outputFormat=${encodeURIComponent(format)}`);
    t.equal(m.output[0]?.count, 1, format);
  }
  assertOutcome(t, await kickoff(app, '/fhir/$export?_outputFormat=text/csv'), 400, 'invalid', 'text/csv');
  const lenient = await kickoff(app, '/fhir/$export?_type=Practitioner&_outputFormat=text/csv', { prefer: 'respond-async, handling=lenient' });
  t.equal(lenient.statusCode, 202, 'lenient: ignored');
  t.match(JSON.stringify(lenient.json()), /text\/csv/, 'and said so in the 202 OperationOutcome');
  await poll(app, String(lenient.headers['content-location']));
});

t.test('unsupported parameters: 400 OperationOutcome, unless lenient', async (t) => {
  assertOutcome(t, await kickoff(app, '/fhir/$export?_type=Nonsense'), 400, 'invalid', 'unknown type');
  assertOutcome(t, await kickoff(app, '/fhir/$export?includeAssociatedData=LatestProvenanceResources'), 400, 'invalid', 'includeAssociatedData');
  assertOutcome(t, await kickoff(app, '/fhir/$export?_since=yesterday'), 400, 'invalid', 'bad _since');
  assertOutcome(t, await kickoff(app, '/fhir/$export?_typeFilter=Observation%3Fnope%3D1&_type=Observation'), 400, 'invalid', 'unknown search parameter in _typeFilter');
  assertOutcome(t, await kickoff(app, '/fhir/$export?_typeFilter=Observation%3F_count%3D1&_type=Observation'), 400, 'invalid', 'result parameter in _typeFilter');
  assertOutcome(t, await kickoff(app, '/fhir/$export?_elements=a.b.c'), 400, 'invalid', 'bad _elements');
  assertOutcome(t, await kickoff(app, '/fhir/$export?foo=bar'), 400, 'invalid', 'unknown parameter');
  assertOutcome(t, await kickoff(app, '/fhir/Patient/$export?_type=Practitioner'), 400, 'invalid', 'a type outside the Patient compartment');
  const m = await exportAll(app, '/fhir/$export?_type=Practitioner,Nonsense&includeAssociatedData=LatestProvenanceResources', { prefer: 'respond-async; handling=lenient' });
  t.same(m.output.map((o) => o.type), ['Practitioner'], 'lenient: the unknown type and includeAssociatedData are ignored');
});

t.test('_type limits the types; without it every type is exported', async (t) => {
  const only = await exportAll(app, '/fhir/$export?_type=Patient');
  t.same([...new Set(only.output.map((o) => o.type))], ['Patient']);
  const all = await exportAll(app, '/fhir/$export');
  const types = new Set(all.output.map((o) => o.type));
  for (const type of ['Patient', 'Observation', 'Practitioner']) t.ok(types.has(type), `${type} in a system export`);
  t.notOk(types.has('AuditEvent'), 'AuditEvents need a scope naming them (system/*.cruds does not)');
});

t.test('_typeFilter: ordinary searches, several OR’d', async (t) => {
  const pain = await exportAll(app, `/fhir/$export?_type=Observation&_typeFilter=${encodeURIComponent(`Observation?code=${LOINC}|72514-3&subject=Patient/${ada.id}`)}`);
  const { byType } = await contents(app, pain);
  t.same(ids(byType.get('Observation')), ids(adaObs.filter((o) => o.code.coding[0].code === '72514-3')));
  const either = await exportAll(app, `/fhir/$export?_type=Observation&_typeFilter=${encodeURIComponent(`Observation?subject=Patient/${ben.id},Observation?code=8867-4`)}`);
  const got = (await contents(app, either)).byType.get('Observation');
  t.same(ids(got), ids([...benObs, ...adaObs.filter((o) => o.code.coding[0].code === '8867-4')]), 'two queries in one value, OR’d');
});

t.test('_elements keeps the listed elements and the mandatory ones, marked SUBSETTED', async (t) => {
  const m = await exportAll(app, '/fhir/$export?_type=Observation,Patient&_elements=Observation.subject,name');
  const { byType, invalid } = await contents(app, m);
  t.same(invalid, [], 'subsetted resources are still schema-valid');
  const o = byType.get('Observation')![0]!;
  t.same(Object.keys(o).sort(), ['code', 'id', 'meta', 'resourceType', 'status', 'subject'], 'Observation: subject and the mandatory status and code');
  t.ok(o.meta.tag.some((tag: Json) => tag.code === 'SUBSETTED'));
  t.ok(byType.get('Patient')!.every((p) => p.name && !p.gender), 'Patient: name (an element without a type applies to every type)');
});

t.test('Patient-level: every compartment; Group-level: the members’ compartments; POST with patient', async (t) => {
  const everyone = await exportAll(app, '/fhir/Patient/$export?_type=Patient,Observation,Practitioner'.replace(',Practitioner', ''));
  const all = (await contents(app, everyone)).byType;
  t.same(ids(all.get('Observation')), ids([...adaObs, ...benObs]));
  t.ok(ids(all.get('Patient')).includes(ada.id) && ids(all.get('Patient')).includes(ben.id));
  t.notOk(everyone.output.some((o) => o.type === 'Practitioner'), 'no Practitioner: it has no Patient compartment here');

  const group = await create(app, { resourceType: 'Group', type: 'person', actual: true, member: [{ entity: { reference: `Patient/${ben.id}` } }] });
  const g = await exportAll(app, `/fhir/Group/${group.id}/$export?_type=Patient,Observation`);
  const gTypes = (await contents(app, g)).byType;
  t.same(ids(gTypes.get('Patient')), [ben.id], 'only the member');
  t.same(ids(gTypes.get('Observation')), ids(benObs), "only the member's Observations");
  assertOutcome(t, await kickoff(app, '/fhir/Group/no-such-group/$export'), 404, undefined, 'unknown Group');

  const res = await kickoffPost(app, '/fhir/Patient/$export', [
    { name: '_type', valueString: 'Observation' },
    { name: 'patient', valueReference: { reference: `Patient/${ada.id}` } },
  ]);
  t.equal(res.statusCode, 202, 'POST kick-off with a Parameters body');
  const p = (await poll(app, String(res.headers['content-location']))).json() as Manifest;
  t.same(ids((await contents(app, p)).byType.get('Observation')), ids(adaObs), 'patient narrows to that patient');
  t.match(p.request, /\/fhir\/Patient\/\$export$/, 'request: the kick-off URL (POST parameters are in the body)');
  assertOutcome(t, await kickoff(app, `/fhir/Patient/$export?patient=Patient/${ada.id}`), 400, 'invalid', 'patient in a GET');
});

t.test('files: NDJSON, gzip when asked', async (t) => {
  const m = await exportAll(app, '/fhir/$export?_type=Observation');
  const first = await download(app, m.output[0]!.url);
  t.equal(first.res.statusCode, 200);
  t.equal(first.res.headers['content-type'], 'application/fhir+ndjson');
  t.notOk(first.res.headers['content-encoding']);
  t.equal(first.invalid.length, 0);
  const zipped = await download(app, m.output[0]!.url, { 'accept-encoding': 'gzip, deflate' });
  t.equal(zipped.res.headers['content-encoding'], 'gzip');
  t.same(zipped.resources, first.resources, 'the same lines, gzipped');
  const notZipped = await download(app, m.output[0]!.url, { 'accept-encoding': 'gzip;q=0, identity' });
  t.notOk(notZipped.res.headers['content-encoding'], 'gzip;q=0 is a refusal');
  const ndjsonAccept = await download(app, m.output[0]!.url, { accept: 'application/fhir+ndjson' });
  t.equal(ndjsonAccept.res.statusCode, 200, 'Accept: application/fhir+ndjson is fine');
});

t.test('authorisation: only the client that started an export reads it; scopes limit the types', async (t) => {
  const mine = await app.auth!.clients.add({ name: 'lab', scope: 'system/Observation.rs system/Patient.rs' });
  const other = await app.auth!.clients.add({ name: 'other', scope: 'system/*.rs' });
  const mineH = { authorization: `Bearer ${(await app.auth!.issue(mine, 'system/Observation.rs')).access_token}` };
  const otherH = { authorization: `Bearer ${(await app.auth!.issue(other, 'system/*.rs')).access_token}` };
  const noToken = await app.inject({ method: 'GET', url: '/fhir/$export', headers: { ...ASYNC, authorization: '' } });
  t.equal(noToken.statusCode, 401, 'kick-off needs a token');
  assertOutcome(t, await kickoff(app, '/fhir/$export?_type=Patient', mineH), 403, 'forbidden', 'a type outside the scopes');
  const res = await kickoff(app, '/fhir/$export', mineH);
  const status = String(res.headers['content-location']);
  assertOutcome(t, await app.inject({ method: 'GET', url: pathOf(status), headers: otherH }), 404, 'not-found', "another client's status");
  const m = (await poll(app, status, mineH)).json() as Manifest;
  t.same([...new Set(m.output.map((o) => o.type))], ['Observation'], 'only the types the token may search');
  const url = pathOf(m.output[0]!.url);
  t.equal((await app.inject({ method: 'GET', url, headers: { authorization: '' } })).statusCode, 401, 'a file needs a token');
  assertOutcome(t, await app.inject({ method: 'GET', url, headers: otherH }), 404, 'not-found', "another client's file");
  t.equal((await app.inject({ method: 'GET', url, headers: mineH })).statusCode, 200);
  assertOutcome(t, await app.inject({ method: 'DELETE', url: pathOf(status), headers: otherH }), 404, 'not-found', "another client cannot cancel it");

  const granular = await app.auth!.clients.add({ name: 'pain only', scope: `system/Observation.rs?code=${LOINC}|72514-3` });
  const gH = { authorization: `Bearer ${(await app.auth!.issue(granular, `system/Observation.rs?code=${LOINC}|72514-3`)).access_token}` };
  const gm = await exportAll(app, '/fhir/$export', gH);
  const got = (await contents(app, gm, 'output', gH)).byType.get('Observation') ?? [];
  t.ok(got.length > 0 && got.every((o) => o.code.coding[0].code === '72514-3'), 'a granular scope narrows the export');
});

t.test('the CapabilityStatement names the export operations and instantiates Bulk Data', async (t) => {
  const cs = (await app.inject('/fhir/metadata')).json();
  t.ok(cs.instantiates.includes('http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data'));
  t.ok(cs.rest[0].operation.some((o: Json) => o.name === 'export' && o.definition === 'http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export'));
  const op = (type: string) => cs.rest[0].resource.find((r: Json) => r.type === type).operation.map((o: Json) => o.definition);
  t.ok(op('Patient').includes('http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export'));
  t.ok(op('Group').includes('http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export'));
});
