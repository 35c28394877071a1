/**
 * How search is declared (FHIR R4 capabilitystatement.html#search, searchparameter.html):
 * Procedure's body-site, which R4 lacks, is a SearchParameter the server serves and the
 * CapabilityStatement points at; every parameter the CapabilityStatement declares is a
 * documented query parameter in the OpenAPI document; and body-site actually searches.
 */
import t from 'tap';
import { buildTestApp } from '../helper.js';
import { ACHILLES_TENDON, Fixture, patientBody, q, sessionBody, SNOMED } from '../search-fixtures.js';
import { entries, type Json } from '../support.js';

const { app } = await buildTestApp(t);
const f = new Fixture(app);

const pat = (await f.add('pat', patientBody('Okafor'))).id as string;
await f.add('sess-achilles', sessionBody(pat, 'astym', '2026-03-10T09:00:00Z', '2026-03-10T09:40:00Z'));
await f.add('sess-elbow', sessionBody(pat, 'graston', '2026-03-12T09:00:00Z', '2026-03-12T09:30:00Z', { bodySite: [{ coding: [{ system: SNOMED, code: '127949000', display: 'Elbow region structure' }], text: 'Right lateral elbow' }] }));
// A soft-tissue session must name its site (the session profile), so the Procedure
// without one is the exercise done afterwards, which carries no technique code.
const { bodySite: _omitted, ...noSite } = sessionBody(pat, 'graston', '2026-03-14T09:00:00Z', '2026-03-14T09:30:00Z', {
  code: { coding: [{ system: SNOMED, code: '229065009' }], text: 'Exercise therapy' },
});
await f.add('sess-nosite', noSite);

const metadata = await app.inject({ url: '/fhir/metadata' });
const statement = metadata.json() as Json;
const resources = ((statement.rest as Json[] | undefined)?.[0]?.resource ?? []) as Json[];
const declared = (type: string) => resources.find((r) => r.type === type);

t.test('GET /fhir/metadata is a CapabilityStatement', async (t) => {
  t.equal(metadata.statusCode, 200);
  t.equal(statement.resourceType, 'CapabilityStatement');
  for (const type of ['Patient', 'Condition', 'Procedure', 'Observation']) t.ok(declared(type), `${type} is declared`);
});

t.test('every declared searchParam has a name, a type and a definition', async (t) => {
  for (const r of resources) {
    const params = (r.searchParam ?? []) as Json[];
    t.ok(params.length > 0, `${String(r.type)} declares search parameters`);
    const incomplete = params.filter((p) => !p.name || !p.type || typeof p.definition !== 'string' || !p.definition);
    t.same(incomplete.map((p) => p.name), [], `${String(r.type)}: no searchParam without name, type or definition`);
  }
});

t.test('Procedure declares body-site (token) defined by a SearchParameter the server serves', async (t) => {
  const bodySite = ((declared('Procedure')?.searchParam ?? []) as Json[]).find((p) => p.name === 'body-site');
  t.ok(bodySite, 'Procedure has a searchParam body-site');
  t.equal(bodySite?.type, 'token', 'of type token');
  const url = String(bodySite?.definition);
  t.match(url, /^https?:\/\/\S+$/, 'definition is a canonical URL');
  const res = await app.inject({ url: `/fhir/SearchParameter?url=${q(url)}` });
  t.equal(res.statusCode, 200, 'GET /fhir/SearchParameter?url=… → 200');
  const bundle = res.json() as Json;
  t.equal(bundle.resourceType, 'Bundle');
  t.equal(entries(bundle).length, 1, 'one SearchParameter with that url');
  const sp = entries(bundle)[0]?.resource as Json | undefined;
  t.equal(sp?.resourceType, 'SearchParameter');
  t.equal(sp?.url, url, 'its url is the definition');
  t.equal(sp?.code, 'body-site');
  t.equal(sp?.type, 'token');
  t.ok(((sp?.base ?? []) as string[]).includes('Procedure'), 'base includes Procedure');
  t.ok(sp?.expression, 'it has an expression');
  const other = await app.inject({ url: `/fhir/SearchParameter?url=${q('https://fhir.fascia.example/SearchParameter/none')}` });
  t.equal(entries(other.json() as Json).length, 0, 'another url finds nothing');
});

t.test('searchInclude and searchRevInclude are declared, naming the includes that work', async (t) => {
  for (const r of resources) {
    if (r.type === 'AuditEvent') continue; // served from the audit log, which no include reaches: below
    t.ok(Array.isArray(r.searchInclude) && r.searchInclude.length > 0, `${String(r.type)} has searchInclude`);
    t.ok(Array.isArray(r.searchRevInclude) && r.searchRevInclude.length > 0, `${String(r.type)} has searchRevInclude`);
  }
  t.notOk(declared('AuditEvent')?.searchInclude?.length, 'AuditEvent (the audit log) declares no _include');
  t.notOk(declared('AuditEvent')?.searchRevInclude?.length, 'nor _revinclude');
  t.notOk(resources.some((r) => ((r.searchRevInclude ?? []) as string[]).some((x) => x.startsWith('AuditEvent:'))), 'and no type declares a _revinclude of AuditEvent');
  t.ok(((declared('Observation')?.searchInclude ?? []) as string[]).includes('Observation:patient'), 'Observation: searchInclude Observation:patient');
  t.ok(((declared('Observation')?.searchInclude ?? []) as string[]).includes('Observation:part-of'), 'Observation: searchInclude Observation:part-of');
  t.ok(((declared('Procedure')?.searchRevInclude ?? []) as string[]).includes('Observation:part-of'), 'Procedure: searchRevInclude Observation:part-of');
  t.ok(((declared('Patient')?.searchRevInclude ?? []) as string[]).includes('Procedure:patient'), 'Patient: searchRevInclude Procedure:patient');
});

t.test('body-site searches Procedure.bodySite as a token', async (t) => {
  await f.expect(t, `/fhir/Procedure?body-site=${q(`${SNOMED}|${ACHILLES_TENDON.code}`)}`, ['sess-achilles']);
  await f.expect(t, '/fhir/Procedure?body-site=127949000', ['sess-elbow']);
  await f.expect(t, `/fhir/Procedure?body-site=${q(`${SNOMED}|`)}`, ['sess-achilles', 'sess-elbow']);
  await f.expect(t, '/fhir/Procedure?body-site:text=right', ['sess-elbow']);
  await f.expect(t, `/fhir/Procedure?body-site:not=${q(`${SNOMED}|${ACHILLES_TENDON.code}`)}`, ['sess-elbow', 'sess-nosite']);
  await f.expect(t, '/fhir/Procedure?body-site:missing=true', ['sess-nosite']);
});

t.test('the OpenAPI document lists a described query parameter for every searchParam of Observation and Procedure', async (t) => {
  const res = await app.inject({ url: '/openapi.json' });
  t.equal(res.statusCode, 200, 'GET /openapi.json → 200');
  const doc = res.json() as Json;
  for (const type of ['Observation', 'Procedure']) {
    const operation = doc.paths?.[`/fhir/${type}`]?.get as Json | undefined;
    t.ok(operation, `GET /fhir/${type} is documented`);
    const query = new Map(((operation?.parameters ?? []) as Json[]).filter((p) => p.in === 'query').map((p) => [p.name as string, p]));
    const names = ((declared(type)?.searchParam ?? []) as Json[]).map((p) => p.name as string);
    t.ok(names.length > 0, `the CapabilityStatement declares ${type} search parameters`);
    t.same(names.filter((n) => !query.has(n)), [], `${type}: every declared searchParam is an OpenAPI query parameter`);
    t.same(names.filter((n) => !String(query.get(n)?.description ?? '').trim()), [], `${type}: each has a description`);
  }
});
