/**
 * The audit log (issue 19): AuditEvents are rows of an append-only log, served as R4
 * AuditEvent resources — read, vread, history, search by the AuditEvent parameters
 * (R4 AuditEvent search parameters: date, agent, entity, patient, type, subtype,
 * outcome, action, address, altid) and Bulk export — under the caller's scopes.
 * Expectations come from R4's AuditEvent definitions (the parameters' expressions, the
 * outcome and action codes) and from the README's audit promises (docs/security.md).
 */
import t from 'tap';
import { fhirHeaders, patient } from '../helper.js';
import { validateResource } from '../../src/fhir/validation.js';
import { entries, type Json } from '../support.js';
import { securityApp } from '../security/helper.js';
import { contents, exportAll } from '../bulk/support.js';

const INTERACTION = 'http://hl7.org/fhir/restful-interaction';
const s = await securityApp(t);
const { app, database } = s;
const auth = (token: string) => ({ authorization: `Bearer ${token}` });
const admin = auth(s.admin);
const adminClient = (JSON.parse(Buffer.from(s.admin.split('.')[1]!, 'base64url').toString()) as { client_id: string }).client_id;

async function make(resource: Json): Promise<Json> {
  const res = await app.inject({ method: 'POST', url: `/fhir/${resource.resourceType}`, headers: fhirHeaders(admin), payload: resource });
  if (res.statusCode !== 201) throw new Error(`create → ${res.statusCode}: ${res.body}`);
  return res.json() as Json;
}

const logCount = async () => Number((await database.pool.query<{ n: string }>('SELECT count(*) AS n FROM audit_log')).rows[0]!.n);
/** Reads and failures are logged just after the answer, in batches: wait until the log stops growing. */
async function settled(): Promise<number> {
  let last = -1;
  for (;;) {
    const n = await logCount();
    if (n === last) return n;
    last = n;
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

const before = new Date(Date.now() - 1000).toISOString();
const a = await make(patient('Larkspur'));
const b = await make(patient('Thistledown'));
await make({ resourceType: 'Observation', status: 'final', code: { text: 'pain' }, subject: { reference: `Patient/${a.id}` } });
const patientA = await s.patientToken(String(a.id), 'patient/*.rs patient/AuditEvent.rs');
/** Setup steps, checked without assertions (the tests below assert). */
async function expectStatus(url: string, headers: Record<string, string>, status: number): Promise<void> {
  const res = await app.inject({ url, headers });
  if (res.statusCode !== status) throw new Error(`GET ${url} → ${res.statusCode}, expected ${status}: ${res.body}`);
}
await expectStatus(`/fhir/Patient/${a.id}`, auth(patientA), 200); // a patient/ token reads its patient
await expectStatus(`/fhir/Patient/${b.id}`, admin, 200);
await expectStatus('/fhir/Patient/no-such-patient', admin, 404);
await expectStatus(`/fhir/Observation?patient=${a.id}`, admin, 200);
const total = await settled();
const auditor = auth(await s.system('system/AuditEvent.rs'));

async function search(query: string, headers: Record<string, string> = auditor): Promise<{ status: number; bundle: Json; events: Json[] }> {
  const res = await app.inject({ url: `/fhir/AuditEvent${query}`, headers });
  const bundle = res.json() as Json;
  return { status: res.statusCode, bundle, events: entries(bundle).filter((e) => e.search?.mode === 'match').map((e) => e.resource as Json) };
}
const subtype = (e: Json) => e.subtype?.[0]?.code as string;
const entities = (e: Json) => ((e.entity ?? []) as Json[]).map((x) => x.what?.reference ?? x.what?.type);
const patientAgent = (e: Json) => ((e.agent ?? []) as Json[]).find((g) => String(g.who?.reference ?? '').startsWith('Patient/'))?.who.reference;

t.test('every AuditEvent the log serves is valid R4 and says what the request was', async (t) => {
  const { status, events } = await search('?_count=1000');
  t.equal(status, 200);
  t.ok(events.length >= total, `${events.length} served (the log held ${total} before this search)`);
  for (const e of events) t.doesNotThrow(() => validateResource(e, 'AuditEvent'), `${subtype(e)}: valid`);
  const create = events.find((e) => subtype(e) === 'create' && entities(e).includes(`Patient/${a.id}`));
  t.match(create, { action: 'C', outcome: '0', meta: { versionId: '1' }, agent: [{ who: { identifier: { value: adminClient } }, requestor: true }] });
  t.equal(create!.meta.lastUpdated, create!.recorded, 'lastUpdated is when it was recorded');
  const missing = events.find((e) => subtype(e) === 'read' && entities(e).includes('Patient/no-such-patient'));
  t.match(missing, { action: 'R', outcome: '4', outcomeDesc: 'HTTP 404' });
});

t.test('search by each parameter returns exactly what the parameter selects', async (t) => {
  const all = (await search('?_count=1000')).events;
  const check = async (query: string, expected: (e: Json) => boolean, label: string) => {
    const { status, events } = await search(`${query}&_count=1000`);
    t.equal(status, 200, `${label}: 200`);
    const want = all.filter(expected).map((e) => e.id).sort();
    t.ok(want.length > 0, `${label}: some AuditEvent matches (the test is not vacuous)`);
    t.same(events.map((e) => e.id).filter((id) => all.some((x) => x.id === id)).sort(), want, label);
  };
  await check(`?entity=Patient/${a.id}`, (e) => entities(e).includes(`Patient/${a.id}`), 'entity');
  await check('?subtype=create', (e) => subtype(e) === 'create', 'subtype');
  await check(`?subtype=${INTERACTION}|read`, (e) => subtype(e) === 'read', 'subtype with its system');
  await check('?subtype=read,create', (e) => ['read', 'create'].includes(subtype(e)), 'subtype, either value');
  await check('?action=C', (e) => e.action === 'C', 'action C');
  await check('?action=R', (e) => e.action === 'R', 'action R');
  await check('?outcome=4', (e) => e.outcome === '4', 'outcome 4');
  await check('?outcome=0', (e) => e.outcome === '0', 'outcome 0');
  await check(`?agent=Patient/${a.id}`, (e) => patientAgent(e) === `Patient/${a.id}`, 'agent (the patient of a patient/ token)');
  await check(`?agent:identifier=${adminClient}`, (e) => e.agent?.[0]?.who?.identifier?.value === adminClient, 'agent:identifier (the client)');
  // R4: patient = agent.who or entity.what that is a Patient.
  await check(`?patient=${a.id}`, (e) => patientAgent(e) === `Patient/${a.id}` || entities(e).includes(`Patient/${a.id}`), 'patient');
  await check('?type=rest', () => true, 'type');
  await check('?address=127.0.0', (e) => String(e.agent?.[0]?.network?.address).startsWith('127.0.0'), 'address');
  await check(`?_id=${all[0]!.id}`, (e) => e.id === all[0]!.id, '_id');
  await check(`?date=ge${before}&subtype=create`, (e) => subtype(e) === 'create' && e.recorded >= before, 'date ge, with another parameter (AND)');

  t.equal((await search('?type=http://example.org/other|rest')).events.length, 0, 'type in another system: none');
  t.equal((await search(`?subtype=http://example.org/other|read`)).events.length, 0, 'subtype in another system: none');
  t.equal((await search(`?date=lt${before}`)).events.filter((e) => all.some((x) => x.id === e.id)).length, 0, 'date lt: none before the test began');
  t.equal((await search('?entity=Patient/nobody')).events.length, 0, 'an entity nobody touched');
});

t.test('paging, sorting, totals and what the log does not answer', async (t) => {
  const count = (await search('?_summary=count')).bundle.total as number;
  t.ok(count >= total, '_summary=count');
  const seen: Json[] = [];
  let url: string | undefined = '/fhir/AuditEvent?_count=3';
  while (url) {
    const res = await app.inject({ url, headers: auditor });
    t.equal(res.statusCode, 200);
    const bundle = res.json() as Json;
    seen.push(...entries(bundle).map((e) => e.resource as Json));
    const next = (bundle.link as Json[]).find((l) => l.relation === 'next')?.url as string | undefined;
    url = next ? next.slice(next.indexOf('/fhir/')) : undefined;
  }
  t.equal(new Set(seen.map((e) => e.id)).size, seen.length, 'no AuditEvent on two pages');
  t.ok(seen.length >= count, 'every AuditEvent reached by next links');
  const times = seen.map((e) => e.recorded as string);
  t.same(times, [...times].sort().reverse(), 'newest first by default');
  const ascending = (await search('?_sort=date&_count=1000')).events.map((e) => e.recorded as string);
  t.same(ascending, [...ascending].sort(), '_sort=date: oldest first');
  // Of creates: each search is itself logged (after its answer), so a count of everything moves between two searches.
  const creates = (await search('?subtype=create&_summary=count')).bundle.total as number;
  t.ok(creates >= 3, 'creates counted');
  t.equal((await search('?subtype=create&_total=accurate&_count=1')).bundle.total, creates, '_total=accurate');

  const unknown = await search('?agent-name=anyone');
  t.equal(unknown.status, 200, 'a parameter the log does not answer is ignored (lenient)');
  t.ok(entries(unknown.bundle).some((e) => e.search?.mode === 'outcome' && JSON.stringify(e.resource).includes('agent-name')), 'and named in a warning');
  const strict = await app.inject({ url: '/fhir/AuditEvent?agent-name=anyone', headers: { ...auditor, prefer: 'handling=strict' } });
  t.equal(strict.statusCode, 400, 'Prefer: handling=strict refuses it');
  for (const bad of ['date=yesterday', 'subtype:not=read', '_sort=outcome', '_count=many', `_cursor=nonsense`]) {
    const res = await app.inject({ url: `/fhir/AuditEvent?${bad}`, headers: auditor });
    t.equal(res.statusCode, 400, `${bad}: 400`);
    t.equal(res.json().resourceType, 'OperationOutcome');
  }
});

t.test('read, vread and history of an AuditEvent', async (t) => {
  const [e] = (await search(`?subtype=create&entity=Patient/${a.id}`)).events;
  const read = await app.inject({ url: `/fhir/AuditEvent/${e!.id}`, headers: auditor });
  t.equal(read.statusCode, 200);
  t.same(read.json(), e, 'the read serves what the search served');
  t.equal(read.headers.etag, 'W/"1"');
  t.equal((await app.inject({ url: `/fhir/AuditEvent/${e!.id}/_history/1`, headers: auditor })).statusCode, 200, 'vread of version 1');
  t.equal((await app.inject({ url: `/fhir/AuditEvent/${e!.id}/_history/2`, headers: auditor })).statusCode, 404, 'there is no other version');
  t.equal((await app.inject({ url: '/fhir/AuditEvent/no-such-event', headers: auditor })).statusCode, 404);
  const history = await app.inject({ url: `/fhir/AuditEvent/${e!.id}/_history`, headers: auditor });
  t.equal(history.statusCode, 200);
  t.same(entries(history.json()).map((x) => x.resource?.id), [e!.id], 'instance history: the one version');
  const typeHistory = await app.inject({ url: '/fhir/AuditEvent/_history?_count=1000', headers: auditor });
  t.ok(entries(typeHistory.json()).some((x) => x.resource?.id === e!.id), 'type history lists it');
  for (const [method, url] of [['PUT', `/fhir/AuditEvent/${e!.id}`], ['DELETE', `/fhir/AuditEvent/${e!.id}`], ['POST', '/fhir/AuditEvent']] as const) {
    const writer = auth(await s.system('system/AuditEvent.cruds'));
    const res = method === 'DELETE' ? await app.inject({ method, url, headers: writer }) : await app.inject({ method, url, headers: fhirHeaders(writer), payload: { ...e, ...(method === 'POST' ? { id: undefined } : {}) } });
    t.equal(res.statusCode, 403, `${method}: no client writes the log`);
  }
  t.equal((await database.pool.query(`SELECT 1 FROM resources WHERE resource_type = 'AuditEvent'`)).rowCount, 0, 'nothing of the audit is stored as a resource');
});

t.test("what a scope does not cover is not served, and is answered as if it did not exist", async (t) => {
  const mine = await search('?_count=1000', auth(patientA));
  t.equal(mine.status, 200);
  t.ok(mine.events.length > 0, 'a patient/ token with patient/AuditEvent.rs sees some');
  for (const e of mine.events) {
    t.ok(patientAgent(e) === `Patient/${a.id}` || entities(e).includes(`Patient/${a.id}`), `${subtype(e)}: in its patient's compartment`);
  }
  const [other] = (await search(`?entity=Patient/${b.id}&subtype=create`)).events;
  t.equal((await app.inject({ url: `/fhir/AuditEvent/${other!.id}`, headers: auth(patientA) })).statusCode, 404, "another patient's AuditEvent: 404, as an unknown id");
  t.equal((await app.inject({ url: `/fhir/AuditEvent/${other!.id}/_history`, headers: auth(patientA) })).statusCode, 404, 'and its history');

  const failures = auth(await s.system('system/AuditEvent.rs?outcome=4'));
  const seen = await search('?_count=1000', failures);
  t.ok(seen.events.length > 0, 'a granular token sees some');
  t.ok(seen.events.every((e) => e.outcome === '4'), 'only what its scope names');
  t.equal((await app.inject({ url: `/fhir/AuditEvent/${other!.id}`, headers: failures })).statusCode, 404, 'a success, read by id: 404');

  const wildcard = auth(await s.system('system/*.rs'));
  t.equal((await search('', wildcard)).status, 403, 'system/*.rs does not cover AuditEvent');
  t.equal((await app.inject({ url: `/fhir/AuditEvent/${other!.id}`, headers: wildcard })).statusCode, 403);
});

t.test('Bulk export serves the log as AuditEvents, each valid R4, under the same scopes', async (t) => {
  const exporter = auth(await s.system('system/AuditEvent.rs system/Patient.rs'));
  const count = (await search('?_summary=count')).bundle.total as number;
  const manifest = await exportAll(app, '/fhir/$export?_type=AuditEvent', exporter);
  const { byType, invalid } = await contents(app, manifest, 'output', exporter);
  t.same(invalid, [], 'every line a valid R4 resource');
  const exported = byType.get('AuditEvent') ?? [];
  t.ok(exported.length >= count, `${exported.length} exported, ${count} in the log at kick-off`);
  t.equal(new Set(exported.map((e) => e.id)).size, exported.length, 'each once');
  const [one] = (await search(`?subtype=create&entity=Patient/${a.id}`)).events;
  t.same(exported.find((e) => e.id === one!.id), one, 'the same AuditEvent as a read serves');

  const filtered = await exportAll(app, '/fhir/$export?_type=AuditEvent&_typeFilter=AuditEvent%3Foutcome%3D4', exporter);
  const failures = (await contents(app, filtered, 'output', exporter)).byType.get('AuditEvent') ?? [];
  t.ok(failures.length > 0 && failures.every((e) => e.outcome === '4'), '_typeFilter on the log');
  const refused = await app.inject({ url: '/fhir/$export?_type=AuditEvent&_typeFilter=AuditEvent%3Fpolicy%3Dx', headers: { ...exporter, prefer: 'respond-async' } });
  t.equal(refused.statusCode, 400, 'a _typeFilter the log cannot answer is refused at kick-off');

  const patientLevel = await exportAll(app, '/fhir/Patient/$export?_type=AuditEvent', exporter);
  const inCompartments = (await contents(app, patientLevel, 'output', exporter)).byType.get('AuditEvent') ?? [];
  t.ok(inCompartments.length > 0, 'Patient-level: some');
  t.ok(inCompartments.every((e) => patientAgent(e) || entities(e).some((x) => String(x).startsWith('Patient/'))), "Patient-level: only AuditEvents in a patient's compartment");
});

t.test('a write and its log row commit together: a rolled-back write leaves none', async (t) => {
  const n = await settled();
  // A transaction whose second entry is invalid: nothing of it is stored, and the log has no success for it.
  const bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { resource: { resourceType: 'Patient', name: [{ family: 'Rolledback' }] }, request: { method: 'POST', url: 'Patient' } },
      { resource: { resourceType: 'Observation', status: 'not-a-status', code: { text: 'x' } }, request: { method: 'POST', url: 'Observation' } },
    ],
  };
  const res = await app.inject({ method: 'POST', url: '/fhir', headers: fhirHeaders(admin), payload: bundle });
  t.ok(res.statusCode >= 400 && res.statusCode < 500, `the transaction fails (${res.statusCode})`);
  await settled();
  const rows = (await database.pool.query<{ status: number; interaction: string }>('SELECT status, interaction FROM audit_log ORDER BY seq OFFSET $1', [n])).rows;
  t.same(rows.map((r) => [r.interaction, r.status >= 400]), [['transaction', true]], 'one row: the failed transaction, as a failure');
});
