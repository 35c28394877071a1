/**
 * Chained parameters and reverse chaining (FHIR R4 search.html 3.1.1.4.15–16): the
 * spec's own examples, chains of several links, _has nested, the error cases, and
 * visibility (a chain never tells a caller about a resource it may not search).
 */
import t from 'tap';
import { buildTestApp } from '../helper.js';
import { conditionBody, Fixture, LOINC, painBody, q, sessionBody } from '../search-fixtures.js';
import { entries, type Json } from '../support.js';

const { app } = await buildTestApp(t);
const f = new Fixture(app);
const MRN = 'urn:oid:2.16.840.1.113883.19.5';

await f.add('org', { resourceType: 'Organization', name: 'Northside Physio' });
await f.add('peter', {
  resourceType: 'Patient',
  identifier: [{ system: MRN, value: 'MRN-1' }],
  name: [{ family: 'Peterson', given: ['Peter'] }],
  gender: 'male',
  birthDate: '1950-04-01',
  managingOrganization: { reference: `Organization/${f.id('org')}` },
});
await f.add('maria', { resourceType: 'Patient', identifier: [{ system: MRN, value: 'MRN-2' }], name: [{ family: 'Lopez', given: ['Maria'] }], gender: 'female', birthDate: '1990-09-09' });
// A place named Peter: DiagnosticReport.subject may point at a Location too.
await f.add('peter-street', { resourceType: 'Location', name: 'Peter Street clinic' });
const peter = f.id('peter');
const maria = f.id('maria');

await f.add('sess-peter', sessionBody(peter, 'graston', '2026-03-10T09:00:00Z', '2026-03-10T09:45:00Z'));
await f.add('sess-maria', sessionBody(maria, 'astym', '2026-03-11T09:00:00Z', '2026-03-11T09:45:00Z'));
await f.add('pain-peter', painBody(peter, 6, '2026-03-10T09:40:00Z', f.id('sess-peter')));
await f.add('pain-peter-2', painBody(peter, 3, '2026-03-17T09:00:00Z'));
await f.add('pain-maria', painBody(maria, 5, '2026-03-11T09:40:00Z', f.id('sess-maria')));
await f.add('loinc-1234', { resourceType: 'Observation', status: 'final', code: { coding: [{ system: LOINC, code: '1234-5' }] }, subject: { reference: `Patient/${maria}` } });
await f.add('report-peter', { resourceType: 'DiagnosticReport', status: 'final', code: { text: 'MRI' }, subject: { reference: `Patient/${peter}` }, result: [{ reference: `Observation/${f.id('pain-peter')}` }] });
await f.add('report-street', { resourceType: 'DiagnosticReport', status: 'final', code: { text: 'Survey' }, subject: { reference: `Location/${f.id('peter-street')}` } });
await f.add('cond-maria', conditionBody(maria, { text: 'Plantar fasciitis' }));

t.test('search.html: DiagnosticReport?subject:Patient.name=peter — the reports whose subject is a Patient named peter', async (t) => {
  await f.expect(t, '/fhir/DiagnosticReport?subject:Patient.name=peter', ['report-peter']);
  await f.expect(t, '/fhir/DiagnosticReport?subject:Location.name=peter', ['report-street']);
});

t.test('search.html: DiagnosticReport?subject.name=peter is ambiguous (Patient and Location both have name): 400 asking for the type', async (t) => {
  const res = await f.get('/fhir/DiagnosticReport?subject.name=peter');
  t.equal(res.statusCode, 400);
  const o = res.json() as Json;
  t.equal(o.resourceType, 'OperationOutcome');
  t.match(JSON.stringify(o), /Patient/);
  t.match(JSON.stringify(o), /Location/);
  t.match(JSON.stringify(o), /subject:/, 'the diagnostics show the typed form');
});

t.test('subject:Patient.identifier=system|value finds the Observations of the patient with that MRN', async (t) => {
  await f.expect(t, `/fhir/Observation?subject:Patient.identifier=${q(`${MRN}|MRN-1`)}`, ['pain-peter', 'pain-peter-2']);
  await f.expect(t, `/fhir/Observation?subject:Patient.identifier=${q(`${MRN}|MRN-9`)}`, []);
});

t.test('patient.birthdate=ge… (patient can point only at a Patient, so no type is needed)', async (t) => {
  await f.expect(t, '/fhir/Observation?patient.birthdate=ge1980-01-01', ['pain-maria', 'loinc-1234']);
  await f.expect(t, '/fhir/Observation?patient.birthdate=lt1980-01-01', ['pain-peter', 'pain-peter-2']);
});

t.test('subject.birthdate: only Patient among subject\'s targets has birthdate, so the chain is not ambiguous', async (t) => {
  await f.expect(t, '/fhir/Observation?subject.birthdate=1950-04-01', ['pain-peter', 'pain-peter-2']);
});

t.test('part-of:Procedure.code=… finds the pain scores taken in a Graston session', async (t) => {
  await f.expect(t, `/fhir/Observation?part-of:Procedure.code=${q('https://fhir.fascia.example/CodeSystem/technique|graston')}`, ['pain-peter']);
});

t.test('a chain of three links: report → result Observation → subject Patient → managing organization name', async (t) => {
  await f.expect(t, '/fhir/DiagnosticReport?result.subject:Patient.organization.name=northside', ['report-peter']);
  await f.expect(t, '/fhir/Observation?subject:Patient.organization.name=northside', ['pain-peter', 'pain-peter-2']);
});

t.test('chains are evaluated independently and ANDed with other parameters; modifiers apply to the last link', async (t) => {
  await f.expect(t, `/fhir/Observation?patient.gender=male&code=${q(`${LOINC}|72514-3`)}`, ['pain-peter', 'pain-peter-2']);
  await f.expect(t, '/fhir/Observation?patient.gender:not=male', ['pain-maria', 'loinc-1234']);
  await f.expect(t, '/fhir/Observation?patient.name:exact=Peter', ['pain-peter', 'pain-peter-2']);
  await f.expect(t, '/fhir/Observation?patient.name=peter,maria', ['pain-peter', 'pain-peter-2', 'pain-maria', 'loinc-1234']);
});

t.test('search.html: Patient?_has:Observation:patient:code=1234-5 — the patients some Observation with that code refers to', async (t) => {
  await f.expect(t, '/fhir/Patient?_has:Observation:patient:code=1234-5', ['maria']);
  await f.expect(t, '/fhir/Patient?_has:Observation:patient:code=1234-5,72514-3', ['maria', 'peter']);
  // Each _has on its own (search.html): both hold for Maria, one each would not do for Peter.
  await f.expect(t, '/fhir/Patient?_has:Observation:patient:code=1234-5&_has:Observation:patient:code=72514-3', ['maria']);
  await f.expect(t, '/fhir/Patient?_has:Condition:subject:code:text=plantar', ['maria']);
});

t.test('nested _has: patients with an Observation that a final DiagnosticReport lists as a result', async (t) => {
  await f.expect(t, '/fhir/Patient?_has:Observation:patient:_has:DiagnosticReport:result:status=final', ['peter']);
  await f.expect(t, '/fhir/Patient?_has:Observation:patient:_has:DiagnosticReport:result:status=cancelled', []);
});

t.test('_has ending in a chain, and a chain through _has both compile', async (t) => {
  await f.expect(t, `/fhir/Procedure?_has:Observation:part-of:patient.name=peter`, ['sess-peter']);
});

t.test('a deleted target no longer matches', async (t) => {
  const gone = await f.add('ghost', { resourceType: 'Patient', identifier: [{ system: MRN, value: 'MRN-GHOST' }], name: [{ family: 'Ghost' }] });
  await f.add('pain-ghost', painBody(String(gone.id), 2, '2026-03-10T09:00:00Z'));
  await f.expect(t, `/fhir/Observation?subject:Patient.identifier=${q(`${MRN}|MRN-GHOST`)}`, ['pain-ghost']);
  t.equal((await app.inject({ method: 'DELETE', url: `/fhir/Patient/${String(gone.id)}` })).statusCode, 200);
  await f.expect(t, `/fhir/Observation?subject:Patient.identifier=${q(`${MRN}|MRN-GHOST`)}`, []);
});

t.test('the self link keeps the chained parameter as sent', async (t) => {
  const bundle = await f.search(t, '/fhir/Patient?_has:Observation:patient:code=1234-5');
  const self = (bundle.link as { relation: string; url: string }[]).find((l) => l.relation === 'self')!.url;
  t.equal(new URL(self).searchParams.get('_has:Observation:patient:code'), '1234-5');
});

async function expect400(t: Tap, url: string, pattern: RegExp, headers: Record<string, string> = {}) {
  const res = await f.get(url, headers);
  t.equal(res.statusCode, 400, `${url} → 400 (${res.body.slice(0, 200)})`);
  t.equal((res.json() as Json).resourceType, 'OperationOutcome');
  t.match(res.body, pattern);
}
type Tap = Pick<typeof t, 'equal' | 'match'>;

t.test('error cases: a chain on a non-reference, a wrong target type, a malformed _has, a too-long chain, a bad value', async (t) => {
  await expect400(t, '/fhir/Observation?code.name=x', /code is a token parameter/);
  await expect400(t, '/fhir/Observation?subject:Medication.code=x', /cannot refer to a Medication/);
  await expect400(t, '/fhir/Observation?subject:missing.name=x', /type modifier/);
  await expect400(t, '/fhir/Patient?_has:Observation:code=x', /_has:Type:reference:parameter/);
  await expect400(t, '/fhir/Patient?_has:Observation:code:status=final', /code is a token parameter of Observation, not a reference/);
  await expect400(t, '/fhir/Patient?_has:Procedure:part-of:status=final', /cannot refer to a Patient/);
  await expect400(t, '/fhir/Patient?_has:Nonsense:subject:code=x', /Nonsense is not a type/);
  await expect400(t, '/fhir/Observation?part-of:Procedure.part-of:Procedure.part-of:Procedure.part-of:Procedure.part-of:Procedure.code=x', /at most 4 links/);
  await expect400(t, '/fhir/Observation?patient.birthdate=notadate', /not a date/);
});

t.test('an unknown parameter in a chain is ignored with a warning, or 400 with Prefer: handling=strict', async (t) => {
  const bundle = await f.search(t, '/fhir/Observation?patient.nonsense=x&code=1234-5');
  t.same(f.labels(bundle), ['loinc-1234'], 'the unknown chain is ignored; the rest still filters');
  const warning = entries(bundle).find((e) => e.search?.mode === 'outcome');
  t.match(JSON.stringify(warning?.resource), /patient\.nonsense/);
  await expect400(t, '/fhir/Observation?patient.nonsense=x', /patient\.nonsense/, { prefer: 'handling=strict' });
  await expect400(t, '/fhir/Patient?_has:Observation:nonsense:code=x', /nonsense/, { prefer: 'handling=strict' });
  await expect400(t, '/fhir/Patient?_has:Observation:patient:nonsense=x', /nonsense/, { prefer: 'handling=strict' });
});

t.test('visibility: every resource along a chain must be one the caller may search', async (t) => {
  const auth = app.auth!;
  const token = async (scope: string) => ({ authorization: `Bearer ${(await auth.operatorToken(scope)).access_token}` });
  // Observations are open to this caller; of the Patients, only the female ones.
  const femaleOnly = await token('system/Observation.rs system/Patient.rs?gender=female');
  await f.expect(t, '/fhir/Observation?patient.name=maria', ['pain-maria', 'loinc-1234'], femaleOnly);
  await f.expect(t, '/fhir/Observation?patient.name=peter', [], femaleOnly);
  await f.expect(t, '/fhir/Observation?patient.gender=male', [], femaleOnly);
  // Patients are open; of the Observations, only those with the LOINC 1234-5 code.
  const someObservations = await token(`system/Patient.rs system/Observation.rs?code=${LOINC}|1234-5`);
  await f.expect(t, '/fhir/Patient?_has:Observation:patient:code=72514-3', [], someObservations);
  await f.expect(t, '/fhir/Patient?_has:Observation:patient:code=1234-5', ['maria'], someObservations);
  // No access to Procedures at all: a chain through them matches nothing.
  const noProcedures = await token('system/Observation.rs system/Patient.rs');
  await f.expect(t, `/fhir/Observation?part-of:Procedure.code=${q('https://fhir.fascia.example/CodeSystem/technique|graston')}`, [], noProcedures);
});
