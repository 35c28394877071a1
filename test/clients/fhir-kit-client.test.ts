/**
 * Fascia seen from outside by a third-party FHIR client, as an EHR integrator would use
 * it: fhir-kit-client over real HTTP against a listening server, no app.inject.
 * Expectations come from R4 http.html and search.html (and, for $course-summary, from
 * the documented example session), not from what the server happens to answer.
 */
import net from 'node:net';
import t from 'tap';
import { Client, type FhirResource, type PaginationParams } from 'fhir-kit-client';
import { exampleObservation, exampleProcedure } from '../../src/openapi/examples.js';
import { buildTestApp, patient } from '../helper.js';
import type { Json } from '../support.js';

/** A port nobody listens on now, so the configured base URL can be the real one. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const port = await freePort();
const baseUrl = `http://127.0.0.1:${port}`;
// AUTH is on: the client sends the admin token the helper made, as an integrator would send theirs.
const { app, token } = await buildTestApp(t, { config: { baseUrl } });
await app.listen({ port, host: '127.0.0.1' });

const FHIR_BASE = `${baseUrl}/fhir`;
const client = new Client({ baseUrl: FHIR_BASE, bearerToken: token });

/** The HTTP status and headers behind a value the client returned. */
function http(result: FhirResource): Response {
  const { response } = Client.httpFor(result);
  if (!response) throw new Error('no HTTP response attached');
  return response;
}

/** What the client answers, read as loosely as the tests read JSON. */
type Answer = FhirResource & Json;

/** The error fhir-kit-client rejects with: `response.status` and the parsed body. */
interface ClientError {
  response: { status: number; data: Json };
}

/** Awaits a call that must fail and hands back the client's error. */
async function rejection(call: Promise<unknown>): Promise<ClientError> {
  try {
    await call;
  } catch (err) {
    if ((err as ClientError).response) return err as ClientError;
    throw err;
  }
  throw new Error('expected the request to fail');
}

const patientBody = (family: string) => patient(family) as FhirResource;

const entryResources = (bundle: FhirResource): Json[] => ((bundle.entry ?? []) as Json[]).map((e) => e.resource as Json);

t.test('capabilityStatement: R4 4.0.1, the soft-tissue types and the other R4 types', async (t) => {
  const cs = (await client.capabilityStatement()) as Answer;
  t.equal(cs.resourceType, 'CapabilityStatement');
  t.equal(cs.fhirVersion, '4.0.1', 'fhirVersion 4.0.1');
  t.ok((cs.format as string[]).some((f) => /json/.test(f)), 'a JSON format is listed');
  const types = (cs.rest[0].resource as Json[]).map((r) => r.type);
  for (const type of ['Patient', 'Procedure', 'Observation', 'Condition', 'Encounter', 'Practitioner', 'Organization']) {
    t.ok(types.includes(type), `${type} is listed`);
  }
});

t.test('Patient lifecycle: create, read, update with If-Match, vread, history, delete → 410', async (t) => {
  const created = (await client.create({ resourceType: 'Patient', body: patientBody('Mensah') })) as Answer;
  const createdHttp = http(created);
  t.equal(createdHttp.status, 201, 'create answers 201');
  const id = created.id as string;
  t.ok(id, 'the server assigned an id');
  t.equal(createdHttp.headers.get('location'), `${FHIR_BASE}/Patient/${id}/_history/1`, 'Location is [base]/Patient/[id]/_history/1 on the real base');
  t.equal(createdHttp.headers.get('etag'), 'W/"1"', 'ETag W/"1"');

  const read = (await client.read({ resourceType: 'Patient', id })) as Answer;
  t.equal(read.id, id);
  t.equal(read.meta.versionId, '1');
  t.same(read.name, [{ family: 'Mensah', given: ['Ada'] }], 'read returns what was created');
  t.equal(http(read).headers.get('etag'), 'W/"1"', 'read carries the ETag');

  const stale = await rejection(
    client.update({ resourceType: 'Patient', id, body: { ...read, gender: 'other' }, options: { headers: { 'If-Match': 'W/"7"' } } }),
  );
  t.equal(stale.response.status, 412, 'a stale If-Match answers 412');
  t.equal(stale.response.data.resourceType, 'OperationOutcome');

  const updated = (await client.update({
    resourceType: 'Patient',
    id,
    body: { ...read, birthDate: '1984-06-03' },
    options: { headers: { 'If-Match': 'W/"1"' } },
  })) as Answer;
  t.equal(http(updated).status, 200, 'update of an existing resource answers 200');
  t.equal(updated.meta.versionId, '2', 'the update is version 2');
  t.equal(updated.birthDate, '1984-06-03');
  t.equal(http(updated).headers.get('etag'), 'W/"2"');

  const v1 = (await client.vread({ resourceType: 'Patient', id, version: '1' })) as Answer;
  t.equal(v1.meta.versionId, '1', 'vread gives version 1');
  t.equal(v1.birthDate, '1984-06-02', 'version 1 still has the old birthDate');

  const history = (await client.history({ resourceType: 'Patient', id })) as Answer;
  t.equal(history.resourceType, 'Bundle');
  t.equal(history.type, 'history');
  t.same(
    entryResources(history).map((r) => r.meta.versionId),
    ['2', '1'],
    'instance history holds both versions, newest first',
  );

  const deleted = await client.delete({ resourceType: 'Patient', id });
  t.ok([200, 204].includes(http(deleted).status), 'delete answers 200 or 204');
  const gone = await rejection(client.read({ resourceType: 'Patient', id }));
  t.equal(gone.response.status, 410, 'a read after delete answers 410 Gone');
  t.equal(gone.response.data.resourceType, 'OperationOutcome', 'with an OperationOutcome');
  const afterDelete = (await client.history({ resourceType: 'Patient', id })) as Answer;
  const newest = (afterDelete.entry as Json[])[0];
  t.equal(newest.request?.method, 'DELETE', 'history starts with the deletion');
  t.notOk(newest.resource, 'the deletion entry carries no resource');
});

t.test('conditional create with If-None-Exist twice gives one Practitioner', async (t) => {
  const npi = { system: 'http://hl7.org/fhir/sid/us-npi', value: '9999955501' };
  const body = { resourceType: 'Practitioner', identifier: [npi], name: [{ family: 'Lindqvist', given: ['Maja'] }] };
  const options = { headers: { 'If-None-Exist': `identifier=${npi.system}|${npi.value}` } };
  const first = (await client.create({ resourceType: 'Practitioner', body, options })) as Answer;
  t.equal(http(first).status, 201, 'no match: 201 Created');
  const second = (await client.create({ resourceType: 'Practitioner', body, options })) as Answer;
  t.equal(http(second).status, 200, 'one match: 200 OK, nothing created');
  t.equal(second.id, first.id, 'the second answer is the existing Practitioner');
  const found = (await client.resourceSearch({ resourceType: 'Practitioner', searchParams: { identifier: `${npi.system}|${npi.value}` } })) as Answer;
  t.same(entryResources(found).map((r) => r.id), [first.id], 'exactly one Practitioner has that NPI');
});

t.test('a transaction with urn:uuid references, then a search by subject finds its Observation', async (t) => {
  const patientUrn = 'urn:uuid:3a1f0c52-8d4e-4b6a-9c7d-1e2f3a4b5c6d';
  const encounterUrn = 'urn:uuid:7b2e1d63-9e5f-4c7b-8d8e-2f3a4b5c6d7e';
  const observationUrn = 'urn:uuid:8c3f2e74-af60-4d8c-9e9f-3a4b5c6d7e8f';
  const bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: patientUrn, resource: patientBody('Adeyemi'), request: { method: 'POST', url: 'Patient' } },
      {
        fullUrl: encounterUrn,
        resource: {
          resourceType: 'Encounter',
          status: 'finished',
          class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
          subject: { reference: patientUrn },
          period: { start: '2026-03-12T10:00:00Z', end: '2026-03-12T10:40:00Z' },
        },
        request: { method: 'POST', url: 'Encounter' },
      },
      {
        fullUrl: observationUrn,
        resource: {
          resourceType: 'Observation',
          status: 'final',
          category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
          code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
          subject: { reference: patientUrn },
          encounter: { reference: encounterUrn },
          effectiveDateTime: '2026-03-12T10:05:00Z',
          valueQuantity: { value: 64, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
        },
        request: { method: 'POST', url: 'Observation' },
      },
    ],
  };
  const response = (await client.transaction({ body: bundle })) as Answer;
  t.equal(http(response).status, 200, 'a transaction answers 200');
  t.equal(response.type, 'transaction-response');
  const results = response.entry as Json[];
  t.equal(results.length, 3, 'one response entry per request, in order');
  const locations = results.map((e) => e.response.location as string);
  t.ok(results.every((e) => /^201/.test(e.response.status)), 'each POST answers 201');
  t.match(locations[0], /(^|\/)Patient\/[^/]+\/_history\/1$/, 'Patient location');
  t.match(locations[1], /(^|\/)Encounter\/[^/]+\/_history\/1$/, 'Encounter location');
  t.match(locations[2], /(^|\/)Observation\/[^/]+\/_history\/1$/, 'Observation location');
  const idOf = (location: string) => location.split('/').at(-3)!;
  const [patientId, encounterId, observationId] = locations.map(idOf);

  const observation = (await client.read({ resourceType: 'Observation', id: observationId! })) as Answer;
  t.equal(observation.subject.reference, `Patient/${patientId}`, 'the urn:uuid subject was rewritten to the new Patient');
  t.equal(observation.encounter.reference, `Encounter/${encounterId}`, 'the urn:uuid encounter was rewritten to the new Encounter');

  const bySubject = (await client.resourceSearch({ resourceType: 'Observation', searchParams: { subject: `Patient/${patientId}` } })) as Answer;
  t.equal(bySubject.type, 'searchset');
  t.same(entryResources(bySubject).map((r) => r.id), [observationId], 'subject=Patient/[id] finds the Observation');
  const byBareId = (await client.resourceSearch({ resourceType: 'Observation', searchParams: { subject: patientId! } })) as Answer;
  t.same(entryResources(byBareId).map((r) => r.id), [observationId], 'subject=[id] finds the same');
});

t.test('paging: 25 heart rates, _count=10, nextPage until none → 25 distinct ids', async (t) => {
  const subject = (await client.create({ resourceType: 'Patient', body: patientBody('Okonkwo') })) as Answer;
  const created = new Set<string>();
  for (let i = 0; i < 25; i++) {
    const minute = String(i).padStart(2, '0');
    const obs = (await client.create({
      resourceType: 'Observation',
      body: {
        resourceType: 'Observation',
        status: 'final',
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
        code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
        subject: { reference: `Patient/${subject.id}` },
        effectiveDateTime: `2026-03-14T08:${minute}:00Z`,
        valueQuantity: { value: 60 + i, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
      },
    })) as Answer;
    created.add(obs.id as string);
  }
  t.equal(created.size, 25, '25 Observations created');

  const seen: string[] = [];
  const pageSizes: number[] = [];
  let page: Answer | undefined = (await client.resourceSearch({
    resourceType: 'Observation',
    searchParams: { subject: `Patient/${subject.id}`, _count: 10 },
  })) as Answer;
  for (let guard = 0; page && guard < 10; guard++) {
    t.equal(page.type, 'searchset');
    if (page.total !== undefined) t.equal(page.total, 25, 'Bundle.total, when given, counts every match');
    const ids = entryResources(page).map((r) => r.id as string);
    pageSizes.push(ids.length);
    seen.push(...ids);
    const next = (page.link as Json[] | undefined)?.find((l) => l.relation === 'next');
    if (next) t.ok(String(next.url).startsWith(`${FHIR_BASE}/`), 'the next link points back at the server');
    page = (await client.nextPage({ bundle: page as PaginationParams['bundle'] })) as Answer | undefined;
  }
  t.same(pageSizes, [10, 10, 5], 'pages of 10, 10 and 5');
  t.equal(seen.length, 25, '25 entries over all pages');
  t.equal(new Set(seen).size, 25, 'no id repeated');
  t.same([...seen].sort(), [...created].sort(), 'exactly the 25 created');
});

t.test('resourceSearch on a shared-route type: Encounter?status=finished', async (t) => {
  const subject = (await client.create({ resourceType: 'Patient', body: patientBody('Haddad') })) as Answer;
  const encounter = (status: string) => ({
    resourceType: 'Encounter',
    status,
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: `Patient/${subject.id}` },
  });
  const finished = (await client.create({ resourceType: 'Encounter', body: encounter('finished') })) as Answer;
  const ongoing = (await client.create({ resourceType: 'Encounter', body: encounter('in-progress') })) as Answer;
  const result = (await client.resourceSearch({ resourceType: 'Encounter', searchParams: { status: 'finished', subject: `Patient/${subject.id}` } })) as Answer;
  t.same(entryResources(result).map((r) => r.id), [finished.id], 'only the finished Encounter');
  const all = (await client.resourceSearch({ resourceType: 'Encounter', searchParams: { status: 'finished' } })) as Answer;
  const ids = entryResources(all).map((r) => r.id);
  t.ok(ids.includes(finished.id), 'status=finished alone finds it');
  t.notOk(ids.includes(ongoing.id), 'and not the in-progress one');
  t.ok(entryResources(all).every((r) => r.status === 'finished'), 'every match is finished');
});

t.test('an invalid create rejects with 400 and an OperationOutcome naming Observation.status', async (t) => {
  const error = await rejection(
    client.create({
      resourceType: 'Observation',
      body: {
        resourceType: 'Observation',
        status: 'bogus',
        code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
        valueQuantity: { value: 70, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
      },
    }),
  );
  t.equal(error.response.status, 400, '400 Bad Request');
  const outcome = error.response.data;
  t.equal(outcome.resourceType, 'OperationOutcome');
  const issues = (outcome.issue ?? []) as Json[];
  t.ok(issues.some((i) => i.severity === 'error' || i.severity === 'fatal'), 'an error issue');
  t.ok(
    issues.some((i) => ((i.expression ?? []) as string[]).some((e) => e.startsWith('Observation.status'))),
    `an issue's expression names Observation.status (got ${JSON.stringify(issues.map((i) => i.expression))})`,
  );
});

t.test('a soft-tissue session from the documented example, then $course-summary', async (t) => {
  const subject = (await client.create({ resourceType: 'Patient', body: patientBody('Okafor') })) as Answer;
  const patientId = subject.id as string;
  const session = (await client.create({
    resourceType: 'Procedure',
    body: { ...exampleProcedure, subject: { reference: `Patient/${patientId}` } } as FhirResource,
  })) as Answer;
  t.equal(http(session).status, 201, 'the documented session is accepted');
  const pain = (await client.create({
    resourceType: 'Observation',
    body: { ...exampleObservation, subject: { reference: `Patient/${patientId}` }, partOf: [{ reference: `Procedure/${session.id}` }] } as FhirResource,
  })) as Answer;
  t.equal(http(pain).status, 201, 'the documented pain score before it is accepted');

  const summary = (await client.operation({ name: 'course-summary', resourceType: 'Patient', id: patientId, method: 'GET' })) as Answer;
  t.equal(http(summary).status, 200);
  t.equal(summary.resourceType, 'Parameters');
  const params = summary.parameter as Json[];
  t.same(params.find((p) => p.name === 'patient')?.valueReference, { reference: `Patient/${patientId}` }, 'names the patient');
  const courses = params.filter((p) => p.name === 'course');
  t.equal(courses.length, 1, 'one course: Graston on the right elbow');
  const part = (name: string) => (courses[0]?.part as Json[] | undefined)?.find((p) => p.name === name);
  t.match(part('technique')?.valueCoding, { code: 'graston' }, 'technique graston');
  t.equal(part('sessions')?.valueInteger, 1, 'one session');
  t.equal(Date.parse(part('firstSession')?.valueDateTime), Date.parse('2026-03-10T09:00:00Z'), 'first session at the example start');
  t.equal(part('painFirstBefore')?.valueDecimal, 6, 'pain before the first session is the example 6');
});

t.test(
  '$validate invoked the R4 way: POST a Parameters body whose `resource` parameter is the Patient',
  async (t) => {
    const outcome = (await client.operation({
      name: 'validate',
      resourceType: 'Patient',
      input: { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: patient('Valid') }] },
    })) as Answer;
    t.equal(outcome.resourceType, 'OperationOutcome');
    t.notOk(((outcome.issue ?? []) as Json[]).some((i) => i.severity === 'error' || i.severity === 'fatal'), 'a valid Patient has no error issue');
    const invalid = (await client.operation({
      name: 'validate',
      resourceType: 'Patient',
      input: { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: { ...patient('Invalid'), gender: 'x' } }] },
    })) as Answer;
    const errors = ((invalid.issue ?? []) as Json[]).filter((i) => i.severity === 'error');
    t.ok(errors.some((i) => ((i.expression ?? []) as string[]).includes('Patient.gender')), 'an invalid gender in the resource parameter is an error at Patient.gender');
  },
);
