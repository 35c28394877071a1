import t, { type Test } from 'tap';
import { examplePetechiae, exampleProcedure } from '../../src/openapi/examples.js';
import { buildTestApp, fhirHeaders } from '../helper.js';

// Inputs the fuzz test (routes.test.ts) found, kept as plain cases. buildTestApp checks
// every FHIR JSON answer against the R4 schema, so an invalid OperationOutcome fails too.

// One app for the whole file: the cases do not depend on each other's data.
const { app } = await buildTestApp(t);

const errorOutcome = (t: Pick<Test, 'equal' | 'ok'>, res: { statusCode: number; json(): unknown }, status: number, what: string) => {
  t.equal(res.statusCode, status, what);
  const body = res.json() as { resourceType?: string; issue?: { severity?: string }[] };
  t.equal(body.resourceType, 'OperationOutcome', `${what}: an OperationOutcome`);
  t.ok(body.issue?.some((i) => i.severity === 'error'), `${what}: with an error issue`);
};

const skinWith = (valueCodeableConcept: unknown) => ({ ...examplePetechiae, subject: { reference: 'Patient/p1' }, valueCodeableConcept });
const sessionWith = (extension: unknown) => ({ ...exampleProcedure, subject: { reference: 'Patient/p1' }, extension });

t.test('null is no value: a null complex element or array item is a 400 naming it, never stored, never a 500', async (t) => {
  const create = (payload: object) => app.inject({ method: 'POST', url: `/fhir/${(payload as { resourceType: string }).resourceType}`, headers: fhirHeaders(), payload });
  const cases: [string, object, string][] = [
    // R4's JSON schema gives complex types no `type: object`, so these passed it; the indexer and the profile rules then threw.
    ['a null in Condition.clinicalStatus.coding', { resourceType: 'Condition', subject: { reference: 'Patient/p1' }, clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }, null] } }, 'Condition.clinicalStatus.coding[1]'],
    ['a null in a skin response coding', skinWith({ coding: [null] }), 'Observation.valueCodeableConcept.coding[0]'],
    ['a null in a session extension list', sessionWith([null]), 'Procedure.extension[0]'],
    // These were stored as given (invalid R4 read back).
    ['Encounter.class null', { resourceType: 'Encounter', status: 'finished', class: null }, 'Encounter.class'],
    ['Patient.name [null]', { resourceType: 'Patient', name: [null] }, 'Patient.name[0]'],
    ['Patient.meta null', { resourceType: 'Patient', meta: null }, 'Patient.meta'],
  ];
  for (const [what, body, at] of cases) {
    const res = await create(body);
    errorOutcome(t, res, 400, what);
    t.ok(JSON.stringify(res.json()).includes(at), `${what}: names ${at}`);
  }
  const aligned = { resourceType: 'Patient', name: [{ family: 'Okafor', _family: { extension: [{ url: 'http://example.org/x', valueString: 'y' }] } }], _birthDate: { id: 'b' } };
  t.equal((await create(aligned)).statusCode, 201, 'primitive extensions (`_x`) are still accepted');
});

t.test('$validate lists structural errors of a resource the profile rules cannot read, never a 500', async (t) => {
  const validate = (type: string, payload: object) => app.inject({ method: 'POST', url: `/fhir/${type}/$validate`, headers: fhirHeaders(), payload });
  const bodies: [string, string, object][] = [
    ['an Observation with coding [null]', 'Observation', skinWith({ coding: [null] })],
    // coding is a string: the schema says so, and the measurement rules call coding.some().
    ['an Observation with a string for coding', 'Observation', skinWith({ coding: 'petechiae' })],
    ['the same in a Parameters body', 'Observation', { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: skinWith({ coding: 'petechiae' }) }] }],
    ['a Procedure with extension [null]', 'Procedure', sessionWith([null])],
    ['a Procedure with a string for extension', 'Procedure', sessionWith('dose')],
  ];
  for (const [what, type, body] of bodies) {
    const res = await validate(type, body);
    t.equal(res.statusCode, 200, what);
    t.ok(res.json().issue.some((i: { severity: string }) => i.severity === 'error'), `${what}: its structural error is listed`);
  }
});

t.test('Procedure/$screen checks the Procedure\'s structure before screening it', async (t) => {
  const screen = (payload: string) => app.inject({ method: 'POST', url: '/fhir/Procedure/$screen', headers: fhirHeaders(), payload });
  errorOutcome(t, await screen('null'), 400, 'a body of null');
  errorOutcome(t, await screen(JSON.stringify({ ...exampleProcedure, code: { coding: [null] } })), 400, 'a Procedure whose code.coding holds a null');
  errorOutcome(t, await screen(JSON.stringify({ ...exampleProcedure, code: { coding: 'graston' } })), 400, 'a Procedure whose code.coding is a string');
});

t.test('Patient/$course-summary refuses a NUL in its code parameters', async (t) => {
  const created = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: { resourceType: 'Patient', name: [{ family: 'Okafor' }] } });
  const id = created.json().id as string;
  // Postgres refused the NUL (SQLSTATE 22021) and the request failed with a 500.
  for (const query of ['technique=%00', 'technique=astym%00', 'body-site=%00']) {
    errorOutcome(t, await app.inject({ url: `/fhir/Patient/${id}/$course-summary?${query}` }), 400, query);
  }
  t.equal((await app.inject({ url: `/fhir/Patient/${id}/$course-summary?technique=astym` })).statusCode, 200, 'an ordinary technique still answers');
});
t.test('echoed input with whitespace R4 strings forbid gives a valid OperationOutcome', async (t) => {
  // U+00A0 arrives in a header as the byte 0xA0 (the UTF-8 of "à" read as Latin-1 holds one).
  errorOutcome(t, await app.inject({ url: '/fhir/metadata', headers: { accept: 'Ã\u00a0' } }), 406, 'an Accept holding a no-break space');
  errorOutcome(t, await app.inject({ url: '/fhir/Patient?_format=%C2%A0' }), 406, 'a _format holding a no-break space');
  // Unknown parameter names are listed as expressions; an empty name is none.
  const strict = { prefer: 'handling=strict' };
  errorOutcome(t, await app.inject({ url: '/fhir/Patient?=x&=y', headers: strict }), 400, 'handling=strict with empty parameter names');
  errorOutcome(t, await app.inject({ url: '/fhir/Patient?%E2%80%A8=x', headers: strict }), 400, 'handling=strict with a U+2028 parameter name');
});


t.test('a body of JSON null, a string or a number is a 400, on every route that takes a resource', async (t) => {
  await app.inject({ method: 'PUT', url: '/fhir/Observation/o1', headers: fhirHeaders(), payload: { ...examplePetechiae, id: 'o1', subject: { reference: 'Patient/p1' } } });
  for (const payload of ['null', '"Observation"', '42', 'true']) {
    // The conditional PUT read the body's id before anything checked it: a 500.
    errorOutcome(t, await app.inject({ method: 'PUT', url: '/fhir/Observation?_id=o1', headers: fhirHeaders(), payload }), 400, `conditional PUT with ${payload}`);
    errorOutcome(t, await app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload }), 400, `POST with ${payload}`);
    errorOutcome(t, await app.inject({ method: 'PATCH', url: '/fhir/Observation/o1', headers: { 'content-type': 'application/json-patch+json' }, payload }), 400, `PATCH with ${payload}`);
  }
});
t.test('a path that is not percent-encoded UTF-8 is a 400 OperationOutcome', async (t) => {
  for (const url of ['/%', '/fhir/%E0%A4%A', '/fhir/Patient/%ED%A0%80', '/fhir/Patient/%E0%A4%A/_history']) {
    errorOutcome(t, await app.inject({ url }), 400, `GET ${url}`);
  }
});

