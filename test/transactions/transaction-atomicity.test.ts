/**
 * A transaction is all or nothing (FHIR R4 http.html#transaction): one failing entry
 * fails the whole Bundle with one OperationOutcome naming it, and nothing is written.
 * Also conditional references (exactly one match), ifNoneExist and ifMatch per entry,
 * and the same resource touched twice.
 */
import t from 'tap';
import { definitions } from '../../src/domain/definitions.js';
import { buildTestApp } from '../helper.js';
import { assertOutcome, create, type Json } from '../support.js';
import {
  astymSession,
  bundle,
  byMrn,
  expectClientError,
  expectStatus,
  locationRef,
  MRN_SYSTEM,
  outcomeText,
  painScore,
  patientsWithMrn,
  patientWithMrn,
  postBundle,
  postEntry,
  putEntry,
  SNOMED,
  storedRows,
  urn,
} from '../transaction-fixtures.js';

const { app, database } = await buildTestApp(t);

/** A whole course synced at once: Patient, 9 sessions, 190 pain scores: 200 entries. */
function courseBundle(invalidAt?: number): Json {
  const patientUrn = urn();
  const sessions = Array.from({ length: 9 }, () => urn());
  const entries: Json[] = [postEntry(patientWithMrn('MRN-200'), { fullUrl: patientUrn })];
  sessions.forEach((s) => entries.push(postEntry(astymSession(patientUrn), { fullUrl: s })));
  while (entries.length < 200) {
    const i = entries.length;
    const obs = painScore(patientUrn, sessions[i % sessions.length], i % 11, i % 2 ? 'before' : 'after');
    entries.push(postEntry(i === invalidAt ? { ...obs, status: 'bogus' } : obs, { fullUrl: urn() }));
  }
  return bundle('transaction', entries);
}

t.test('transaction of 200 entries with an invalid Observation at entry 180: 400 naming Bundle.entry[180], and nothing stored', async (t) => {
  // Only Fascia's own definitions, stored at start, are there before the Bundle.
  const before = await storedRows(database);
  const res = await postBundle(app, courseBundle(180));
  const outcome = assertOutcome(t, res, 400);
  t.match(outcomeText(outcome), /Bundle\.entry\[180\]/, 'the OperationOutcome names Bundle.entry[180]');
  t.notMatch(outcomeText(outcome), /Bundle\.entry\[(?!180\])\d+\]/, 'and no other entry');
  t.same(await storedRows(database), before, 'no row added to resources or resource_history');
  for (const type of ['Patient', 'Procedure', 'Observation']) {
    const search = await app.inject({ url: `/fhir/${type}` });
    t.equal(((search.json().entry ?? []) as Json[]).length, 0, `GET /fhir/${type} finds nothing`);
  }
});

t.test('the same 200 entries, all valid: every one is stored', async (t) => {
  const res = await postBundle(app, courseBundle());
  expectStatus(t, res, 200);
  t.equal(((res.json().entry ?? []) as Json[]).length, 200);
  const { resources, history } = await storedRows(database);
  const before = definitions.length; // Fascia's own definitions, stored at start
  t.same({ resources: resources - before, history: history - before }, { resources: 200, history: 200 }, '200 resources, one version each');
});

t.test('conditional reference Patient?identifier=…|MRN-1 resolves to the one matching Patient', async (t) => {
  const patient = await create(app, patientWithMrn('MRN-1'));
  const sessionUrn = urn();
  const res = await postBundle(
    app,
    bundle('transaction', [
      postEntry(astymSession(`Patient?${byMrn('MRN-1')}`), { fullUrl: sessionUrn }),
      postEntry(painScore(`Patient?${byMrn('MRN-1')}`, sessionUrn, 5), { fullUrl: urn() }),
    ]),
  );
  expectStatus(t, res, 200);
  const entries = (res.json().entry ?? []) as Json[];
  for (const e of entries) {
    const stored = (await app.inject({ url: `/fhir/${locationRef(e.response?.location)}` })).json() as Json;
    t.equal(stored.subject?.reference, `Patient/${String(patient.id)}`, `${String(stored.resourceType)}.subject is the matching Patient`);
  }
});

t.test('conditional reference with no match or two matches: the transaction fails (4xx) and writes nothing', async (t) => {
  await create(app, patientWithMrn('MRN-DUP', 'Twin'));
  await create(app, patientWithMrn('MRN-DUP', 'Twin'));
  for (const mrn of ['MRN-NONE', 'MRN-DUP']) {
    const before = await storedRows(database);
    const sessionUrn = urn();
    const res = await postBundle(
      app,
      bundle('transaction', [
        postEntry(patientWithMrn('MRN-COND'), { fullUrl: urn() }),
        postEntry(astymSession(`Patient?${byMrn(mrn)}`), { fullUrl: sessionUrn }),
      ]),
    );
    expectClientError(t, res, mrn);
    t.same(await storedRows(database), before, `${mrn}: nothing written`);
    t.equal(await patientsWithMrn(database, 'MRN-COND'), 0, `${mrn}: the Patient entry of the failed transaction is not stored`);
  }
});

t.test('ifNoneExist matching one Patient: entry status 200, and the other entries reference the existing Patient', async (t) => {
  const existing = await app.inject({ url: `/fhir/Patient?${byMrn('MRN-1')}` });
  const patientId = String((existing.json().entry as Json[])[0]?.resource?.id);
  const patientUrn = urn();
  const sessionUrn = urn();
  const res = await postBundle(
    app,
    bundle('transaction', [
      postEntry(patientWithMrn('MRN-1', 'Resent'), { fullUrl: patientUrn, ifNoneExist: byMrn('MRN-1') }),
      postEntry(astymSession(patientUrn), { fullUrl: sessionUrn }),
      postEntry(painScore(patientUrn, sessionUrn, 2), { fullUrl: urn() }),
    ]),
  );
  expectStatus(t, res, 200);
  const [p, s, o] = (res.json().entry ?? []) as Json[];
  t.match(String(p?.response?.status), /^200/, 'the Patient entry answers 200: it already existed');
  t.equal(locationRef(p?.response?.location), `Patient/${patientId}`, 'its location is the existing Patient');
  t.match(String(s?.response?.status), /^201/);
  for (const e of [s, o]) {
    const stored = (await app.inject({ url: `/fhir/${locationRef(e?.response?.location)}` })).json() as Json;
    t.equal(stored.subject?.reference, `Patient/${patientId}`, `${String(stored.resourceType)}.subject is the existing Patient`);
  }
  t.equal(await patientsWithMrn(database, 'MRN-1'), 1, 'still one Patient with MRN-1');
  const patient = (await app.inject({ url: `/fhir/Patient/${patientId}` })).json() as Json;
  t.equal(patient.meta?.versionId, '1', 'the existing Patient was not changed');
  t.equal(patient.name?.[0]?.family, 'Okafor');
});

t.test('ifNoneExist with no match creates the Patient (201)', async (t) => {
  const res = await postBundle(app, bundle('transaction', [postEntry(patientWithMrn('MRN-2'), { fullUrl: urn(), ifNoneExist: byMrn('MRN-2') })]));
  expectStatus(t, res, 200);
  t.match(String(res.json().entry?.[0]?.response?.status), /^201/);
  t.equal(await patientsWithMrn(database, 'MRN-2'), 1);
});

t.test('ifMatch stale on a PUT entry: the transaction fails with 412 and nothing is written', async (t) => {
  const patient = await create(app, patientWithMrn('MRN-3'));
  const id = String(patient.id);
  const before = await storedRows(database);
  const res = await postBundle(
    app,
    bundle('transaction', [
      postEntry(astymSession(`Patient/${id}`), { fullUrl: urn() }),
      putEntry(`Patient/${id}`, { ...patientWithMrn('MRN-3', 'Renamed'), id }, { ifMatch: 'W/"7"' }),
    ]),
  );
  const outcome = assertOutcome(t, res, 412);
  t.match(outcomeText(outcome), /Bundle\.entry\[1\]/, 'the OperationOutcome names the PUT entry');
  t.same(await storedRows(database), before, 'the POSTed Procedure was rolled back too');
  const read = (await app.inject({ url: `/fhir/Patient/${id}` })).json() as Json;
  t.equal(read.meta?.versionId, '1');
  t.equal(read.name?.[0]?.family, 'Okafor');
});

t.test('ifMatch current on a PUT entry: the update applies (200, W/"2")', async (t) => {
  const patient = await create(app, patientWithMrn('MRN-4'));
  const id = String(patient.id);
  const res = await postBundle(app, bundle('transaction', [putEntry(`Patient/${id}`, { ...patientWithMrn('MRN-4', 'Renamed'), id }, { ifMatch: 'W/"1"' })]));
  expectStatus(t, res, 200);
  t.match(String(res.json().entry?.[0]?.response?.status), /^200/);
  t.equal(res.json().entry?.[0]?.response?.etag, 'W/"2"');
});

t.test('the same resource twice (two PUTs of Patient/x): 400 and nothing written', async (t) => {
  const patient = await create(app, patientWithMrn('MRN-5'));
  const id = String(patient.id);
  const before = await storedRows(database);
  const res = await postBundle(
    app,
    bundle('transaction', [
      putEntry(`Patient/${id}`, { ...patientWithMrn('MRN-5', 'First'), id }),
      putEntry(`Patient/${id}`, { ...patientWithMrn('MRN-5', 'Second'), id }),
    ]),
  );
  assertOutcome(t, res, 400);
  t.same(await storedRows(database), before, 'nothing written');
  const read = (await app.inject({ url: `/fhir/Patient/${id}` })).json() as Json;
  t.equal(read.meta?.versionId, '1');
  t.same(read.identifier, [{ system: MRN_SYSTEM, value: 'MRN-5' }]);
});

t.test('a DELETE and a PUT of the same Patient in one transaction: 400, nothing written', async (t) => {
  const patient = await create(app, patientWithMrn('MRN-6'));
  const id = String(patient.id);
  const before = await storedRows(database);
  const res = await postBundle(
    app,
    bundle('transaction', [putEntry(`Patient/${id}`, { ...patientWithMrn('MRN-6', 'Kept'), id }), { request: { method: 'DELETE', url: `Patient/${id}` } }]),
  );
  assertOutcome(t, res, 400);
  t.same(await storedRows(database), before, 'nothing written');
});

t.test('identities overlap once conditionals resolve (DELETE Patient?identifier=… and PUT Patient/<that id>): the transaction fails, nothing written', async (t) => {
  // http.html: "If any resource identities (including resolved identities from
  // conditional update/delete) overlap in steps 1-3, then the transaction SHALL fail."
  const patient = await create(app, patientWithMrn('MRN-7'));
  const id = String(patient.id);
  const before = await storedRows(database);
  const res = await postBundle(
    app,
    bundle('transaction', [
      { request: { method: 'DELETE', url: `Patient?${byMrn('MRN-7')}` } },
      putEntry(`Patient/${id}`, { ...patientWithMrn('MRN-7', 'Revived'), id }),
    ]),
  );
  expectClientError(t, res, 'the overlapping transaction');
  t.same(await storedRows(database), before, 'nothing written');
  const read = (await app.inject({ url: `/fhir/Patient/${id}` })).json() as Json;
  t.equal(read.meta?.versionId, '1', 'the Patient is still at version 1');
});

t.test('a business rule failing late (session contraindicated by a Condition in the same Bundle): 422, nothing written', async (t) => {
  const before = await storedRows(database);
  const patientUrn = urn();
  const openWound = {
    resourceType: 'Condition',
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
    verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
    code: { coding: [{ system: SNOMED, code: '125643001' }], text: 'Open wound, left calf' },
    subject: { reference: patientUrn },
  };
  const res = await postBundle(
    app,
    bundle('transaction', [
      postEntry(patientWithMrn('MRN-8'), { fullUrl: patientUrn }),
      postEntry(openWound, { fullUrl: urn() }),
      postEntry(astymSession(patientUrn), { fullUrl: urn() }),
    ]),
  );
  assertOutcome(t, res, 422, 'business-rule');
  t.same(await storedRows(database), before, 'the Patient and Condition were rolled back with the session');
  t.equal(await patientsWithMrn(database, 'MRN-8'), 0);
});
