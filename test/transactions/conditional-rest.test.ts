/**
 * Conditional interactions over REST (FHIR R4 http.html#ccreate, #cond-update,
 * #cdelete, #patch): If-None-Exist, PUT/DELETE/PATCH [type]?criteria with 0, 1 and
 * more matches, and the CapabilityStatement declaring what is supported.
 */
import t from 'tap';
import { buildTestApp, fhirHeaders } from '../helper.js';
import { assertOutcome, create, type Json } from '../support.js';
import { byMrn, expectClientError, expectStatus, MRN_SYSTEM, patientsWithMrn, patientWithMrn } from '../transaction-fixtures.js';

const { app, database } = await buildTestApp(t);

const conditionalCreate = (mrn: string, family = 'Okafor') =>
  app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders({ 'if-none-exist': byMrn(mrn) }), payload: patientWithMrn(mrn, family) });
const conditionalPut = (mrn: string, body: Json) =>
  app.inject({ method: 'PUT', url: `/fhir/Patient?${byMrn(mrn)}`, headers: fhirHeaders(), payload: body });
const conditionalDelete = (mrn: string) => app.inject({ method: 'DELETE', url: `/fhir/Patient?${byMrn(mrn)}` });
const conditionalPatch = (mrn: string, ops: Json[]) =>
  app.inject({ method: 'PATCH', url: `/fhir/Patient?${byMrn(mrn)}`, headers: { 'content-type': 'application/json-patch+json' }, payload: JSON.stringify(ops) });

/** Two Patients sharing one MRN: the "more than one match" case of every conditional interaction. */
async function twins(mrn: string): Promise<void> {
  await create(app, patientWithMrn(mrn, 'Twin'));
  await create(app, patientWithMrn(mrn, 'Twin'));
}

t.test('If-None-Exist: 0 matches → 201; 1 match → 200 with the existing resource and nothing created; 2 matches → 412', async (t) => {
  const first = await conditionalCreate('MRN-400');
  expectStatus(t, first, 201, 'no match');
  const id = String(first.json().id);
  const second = await conditionalCreate('MRN-400', 'Other');
  expectStatus(t, second, 200, 'one match');
  t.equal(second.json().id, id, 'the answer is the existing Patient');
  t.equal(second.json().name?.[0]?.family, 'Okafor', 'with its stored content, not the sent one');
  t.equal(second.json().meta?.versionId, '1');
  t.equal(await patientsWithMrn(database, 'MRN-400'), 1, 'nothing new was created');

  await twins('MRN-401');
  assertOutcome(t, await conditionalCreate('MRN-401'), 412);
  t.equal(await patientsWithMrn(database, 'MRN-401'), 2, 'no third Patient');
});

t.test('conditional update PUT Patient?identifier=…: 0 → 201 created, 1 → 200 updating it, 2 → 412', async (t) => {
  const created = await conditionalPut('MRN-410', patientWithMrn('MRN-410', 'New'));
  expectStatus(t, created, 201, 'no match creates');
  const id = String(created.json().id);
  t.ok(id, 'the created Patient has an id');
  t.equal(created.json().meta?.versionId, '1');

  const updated = await conditionalPut('MRN-410', patientWithMrn('MRN-410', 'Updated'));
  expectStatus(t, updated, 200, 'one match updates');
  t.equal(updated.json().id, id, 'the matching Patient was updated, no new one');
  t.equal(updated.json().meta?.versionId, '2');
  t.equal(updated.headers.etag, 'W/"2"');
  const read = (await app.inject({ url: `/fhir/Patient/${id}` })).json() as Json;
  t.equal(read.name?.[0]?.family, 'Updated');
  t.equal(await patientsWithMrn(database, 'MRN-410'), 1);

  const withSameId = await conditionalPut('MRN-410', { ...patientWithMrn('MRN-410', 'Again'), id });
  expectStatus(t, withSameId, 200, 'a body id equal to the match is fine');

  await twins('MRN-411');
  assertOutcome(t, await conditionalPut('MRN-411', patientWithMrn('MRN-411', 'Which')), 412);
  t.equal(await patientsWithMrn(database, 'MRN-411'), 2);
});

t.test('conditional update with a body id different from the matching resource → 400, nothing changed', async (t) => {
  const existing = await create(app, patientWithMrn('MRN-412'));
  const res = await conditionalPut('MRN-412', { ...patientWithMrn('MRN-412', 'Hijack'), id: 'some-other-id' });
  assertOutcome(t, res, 400);
  const read = (await app.inject({ url: `/fhir/Patient/${String(existing.id)}` })).json() as Json;
  t.equal(read.meta?.versionId, '1');
  const other = await app.inject({ url: '/fhir/Patient/some-other-id' });
  t.equal(other.statusCode, 404, 'no Patient was created under the body id');
});

t.test('conditional delete: 1 match → deleted (read → 410); 2 matches → 412; 0 matches → 200/204', async (t) => {
  const patient = await create(app, patientWithMrn('MRN-420'));
  const res = await conditionalDelete('MRN-420');
  t.ok([200, 204].includes(res.statusCode), `one match: 200 or 204 (got ${res.statusCode})`);
  const read = await app.inject({ url: `/fhir/Patient/${String(patient.id)}` });
  t.equal(read.statusCode, 410, 'the deleted Patient reads 410 Gone');
  t.equal(await patientsWithMrn(database, 'MRN-420'), 0);

  await twins('MRN-421');
  assertOutcome(t, await conditionalDelete('MRN-421'), 412);
  t.equal(await patientsWithMrn(database, 'MRN-421'), 2, 'both Patients are still there');

  const none = await conditionalDelete('MRN-422');
  t.ok([200, 204].includes(none.statusCode), `no match: 200 or 204 (got ${none.statusCode})`);
});

t.test('conditional patch: 0 matches → 404, 1 → 200 patched, 2 → 412', async (t) => {
  const ops = [{ op: 'replace', path: '/gender', value: 'other' }];
  assertOutcome(t, await conditionalPatch('MRN-430', ops), 404);

  const patient = await create(app, patientWithMrn('MRN-431'));
  const patched = await conditionalPatch('MRN-431', ops);
  expectStatus(t, patched, 200, 'one match');
  t.equal(patched.json().id, patient.id);
  t.equal(patched.json().gender, 'other');
  t.equal(patched.json().meta?.versionId, '2');
  t.same(patched.json().identifier, [{ system: MRN_SYSTEM, value: 'MRN-431' }], 'the rest of the Patient is kept');

  await twins('MRN-432');
  assertOutcome(t, await conditionalPatch('MRN-432', ops), 412);
  const search = await app.inject({ url: `/fhir/Patient?${byMrn('MRN-432')}` });
  t.ok(((search.json().entry ?? []) as Json[]).every((e) => e.resource?.gender === 'female'), 'neither twin was patched');
});

t.test('a conditional delete without criteria is refused (4xx), not applied to every resource', async (t) => {
  const before = await patientsWithMrn(database, 'MRN-431');
  const res = await app.inject({ method: 'DELETE', url: '/fhir/Patient' });
  expectClientError(t, res, 'DELETE /fhir/Patient');
  t.equal(await patientsWithMrn(database, 'MRN-431'), before, 'nothing deleted');
});

t.test('CapabilityStatement declares conditionalCreate, conditionalUpdate, conditionalDelete single, json-patch, transaction and batch', async (t) => {
  const res = await app.inject({ url: '/fhir/metadata' });
  expectStatus(t, res, 200);
  const cs = res.json() as Json;
  t.ok(((cs.patchFormat ?? []) as string[]).includes('application/json-patch+json'), 'patchFormat includes application/json-patch+json');
  const rest = (cs.rest?.[0] ?? {}) as Json;
  const system = ((rest.interaction ?? []) as Json[]).map((i) => i.code);
  t.ok(system.includes('transaction'), 'rest.interaction has transaction');
  t.ok(system.includes('batch'), 'rest.interaction has batch');
  const resources = (rest.resource ?? []) as Json[];
  for (const type of ['Patient', 'Procedure', 'Observation', 'Condition']) {
    const r = resources.find((x) => x.type === type);
    t.ok(r, `${type} is listed`);
    t.equal(r?.conditionalCreate, true, `${type}: conditionalCreate true`);
    t.equal(r?.conditionalUpdate, true, `${type}: conditionalUpdate true`);
    t.equal(r?.conditionalDelete, 'single', `${type}: conditionalDelete single`);
    t.ok(((r?.interaction ?? []) as Json[]).some((i) => i.code === 'patch'), `${type}: interaction patch`);
  }
});
