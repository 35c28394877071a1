/**
 * PATCH [type]/[id] with JSON Patch (FHIR R4 http.html#patch, RFC 6902): processed like
 * an update afterwards (new versionId, If-Match, validation), malformed patch → 400,
 * a failing test or an invalid result → 422, deleted → 410, other formats → 415, and
 * decimals elsewhere in the resource keep their text.
 */
import t from 'tap';
import { buildTestApp, fhirHeaders } from '../helper.js';
import { assertOutcome, create, type Asserts, type Json } from '../support.js';
import { expectStatus, patientWithMrn, painScore } from '../transaction-fixtures.js';

const { app } = await buildTestApp(t);

const JSON_PATCH = 'application/json-patch+json';

function patch(path: string, ops: unknown, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'PATCH',
    url: `/fhir/${path}`,
    headers: { 'content-type': JSON_PATCH, ...headers },
    payload: typeof ops === 'string' ? ops : JSON.stringify(ops),
  });
}

const read = async (path: string): Promise<Json> => (await app.inject({ url: `/fhir/${path}` })).json() as Json;

/** Asserts the resource is still at `version` with its original gender: a refused patch changed nothing. */
async function unchanged(t: Asserts, path: string, version: string): Promise<void> {
  const current = await read(path);
  t.equal(current.meta?.versionId, version, `${path} is still version ${version}`);
  t.equal(current.gender, 'female', 'gender unchanged');
}

const patient = await create(app, patientWithMrn('MRN-500'));
const P = `Patient/${String(patient.id)}`;

t.test('replace applies and bumps versionId, ETag and history like an update', async (t) => {
  const res = await patch(P, [{ op: 'replace', path: '/birthDate', value: '1984-06-03' }]);
  expectStatus(t, res, 200);
  const body = res.json() as Json;
  t.equal(body.birthDate, '1984-06-03');
  t.equal(body.meta?.versionId, '2');
  t.equal(res.headers.etag, 'W/"2"');
  t.equal(body.name?.[0]?.family, 'Okafor', 'untouched elements are kept');
  t.equal((await read(P)).birthDate, '1984-06-03', 'a read sees the patch');
  const history = (await app.inject({ url: `/fhir/${P}/_history` })).json() as Json;
  t.equal(((history.entry ?? []) as Json[]).length, 2, 'history has the create and the patch');
});

t.test('test then replace, with If-Match of the current version: applied', async (t) => {
  const res = await patch(
    P,
    [
      { op: 'test', path: '/birthDate', value: '1984-06-03' },
      { op: 'add', path: '/telecom', value: [{ system: 'phone', value: '+1 555 0100', use: 'mobile' }] },
    ],
    { 'if-match': 'W/"2"' },
  );
  expectStatus(t, res, 200);
  t.equal(res.json().meta?.versionId, '3');
  t.equal(res.json().telecom?.[0]?.value, '+1 555 0100');
});

t.test('If-Match with a stale version → 412, nothing changed', async (t) => {
  const res = await patch(P, [{ op: 'replace', path: '/gender', value: 'other' }], { 'if-match': 'W/"1"' });
  assertOutcome(t, res, 412);
  await unchanged(t, P, '3');
});

t.test('malformed patch documents → 400: not an array, unknown op, op without value, not JSON', async (t) => {
  const cases: [string, unknown][] = [
    ['an object, not an array', { op: 'replace', path: '/gender', value: 'other' }],
    ['an unknown op', [{ op: 'frobnicate', path: '/gender', value: 'other' }]],
    ['replace without value', [{ op: 'replace', path: '/gender' }]],
    ['an op without path', [{ op: 'remove' }]],
    ['text that is not JSON', '[{"op":"replace",'],
  ];
  for (const [what, ops] of cases) {
    const res = await patch(P, ops);
    t.equal(res.statusCode, 400, `${what}: 400`);
    t.equal(res.json().resourceType, 'OperationOutcome', `${what}: an OperationOutcome`);
  }
  await unchanged(t, P, '3');
});

t.test('a failing test operation → 422, nothing changed', async (t) => {
  const res = await patch(P, [
    { op: 'test', path: '/gender', value: 'male' },
    { op: 'replace', path: '/gender', value: 'other' },
  ]);
  assertOutcome(t, res, 422);
  await unchanged(t, P, '3');
});

t.test('a patch whose result is invalid (gender "alien") → 422, nothing changed', async (t) => {
  assertOutcome(t, await patch(P, [{ op: 'replace', path: '/gender', value: 'alien' }]), 422);
  assertOutcome(t, await patch(P, [{ op: 'add', path: '/favouriteColour', value: 'teal' }]), 422);
  await unchanged(t, P, '3');
});

t.test('a patch changing the id → 422, nothing changed and no resource under the new id', async (t) => {
  assertOutcome(t, await patch(P, [{ op: 'replace', path: '/id', value: 'stolen-id' }]), 422);
  await unchanged(t, P, '3');
  t.equal((await app.inject({ url: '/fhir/Patient/stolen-id' })).statusCode, 404);
});

t.test('PATCH of an unknown id → 404; of a deleted resource → 410', async (t) => {
  assertOutcome(t, await patch('Patient/no-such-patient', [{ op: 'replace', path: '/gender', value: 'other' }]), 404);
  const doomed = await create(app, patientWithMrn('MRN-501'));
  await app.inject({ method: 'DELETE', url: `/fhir/Patient/${String(doomed.id)}` });
  assertOutcome(t, await patch(`Patient/${String(doomed.id)}`, [{ op: 'replace', path: '/gender', value: 'other' }]), 410);
});

t.test('PATCH with Content-Type application/fhir+json → 415 (only JSON Patch is supported)', async (t) => {
  // A FHIRPath Patch: a Parameters resource sent as application/fhir+json.
  const fhirPathPatch = {
    resourceType: 'Parameters',
    parameter: [
      {
        name: 'operation',
        part: [
          { name: 'type', valueCode: 'replace' },
          { name: 'path', valueString: 'Patient.gender' },
          { name: 'value', valueCode: 'other' },
        ],
      },
    ],
  };
  const asParameters = await app.inject({ method: 'PATCH', url: `/fhir/${P}`, headers: fhirHeaders(), payload: fhirPathPatch });
  assertOutcome(t, asParameters, 415, 'not-supported');
  const opsAsFhirJson = await app.inject({
    method: 'PATCH',
    url: `/fhir/${P}`,
    headers: fhirHeaders(),
    payload: JSON.stringify([{ op: 'replace', path: '/gender', value: 'other' }]),
  });
  assertOutcome(t, opsAsFhirJson, 415, 'not-supported');
  await unchanged(t, P, '3');
});

t.test('decimals elsewhere keep their text: valueQuantity.value 1.50 still reads 1.50 after patching status', async (t) => {
  const obs = JSON.stringify(painScore(P, undefined, 0)).replace('"value":0,', '"value":1.50,');
  t.match(obs, /"value":1\.50,/, 'the body carries the text 1.50');
  const created = await app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: obs });
  expectStatus(t, created, 201);
  const id = String(created.json().id);
  const res = await patch(`Observation/${id}`, [{ op: 'replace', path: '/status', value: 'amended' }]);
  expectStatus(t, res, 200);
  t.match(res.body, /"value"\s*:\s*1\.50\s*[,}]/, 'the patch answer keeps 1.50');
  const after = await app.inject({ url: `/fhir/Observation/${id}` });
  t.equal(after.json().status, 'amended');
  t.match(after.body, /"value"\s*:\s*1\.50\s*[,}]/, 'a read after the patch keeps 1.50');
});

t.test('a test op comparing a decimal by value passes whatever its text (1.50 = 1.5)', async (t) => {
  const obs = JSON.stringify(painScore(P, undefined, 0)).replace('"value":0,', '"value":2.50,');
  const created = await app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: obs });
  const id = String(created.json().id);
  const res = await patch(`Observation/${id}`, [
    { op: 'test', path: '/valueQuantity/value', value: 2.5 },
    { op: 'replace', path: '/status', value: 'corrected' },
  ]);
  expectStatus(t, res, 200);
  t.match(res.body, /"value"\s*:\s*2\.50\s*[,}]/, 'and the text 2.50 is kept');
});
