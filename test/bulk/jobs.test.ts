// Bulk Data export jobs over HTTP (inject), several apps on one database standing in for
// processes: polling (202/429/200), _since with deletions and the snapshot against later
// writes, one export per client. jobs-files.test.ts: splitting, cancel, expiry.
import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { buildTestApp, fhirHeaders, patient, testDatabase } from '../helper.js';
import { assertOutcome, BASE, type Json } from '../support.js';
import { ASYNC, contents, download, exportAll, kickoff, kickoffPost, pathOf, poll, type Manifest } from './support.js';

const bulk = { retryAfterSeconds: 1, maxPerClient: 1000, expirySeconds: 3600, fileBytes: 100 * 1024 * 1024, batchSize: 7, workers: 1, pauseMs: 0 };
const database = await testDatabase(t);
// No export worker here: its exports stay queued until a test starts one with `work()`, another "process" on the same database.
const { app: a } = await buildTestApp(t, { database, config: { bulk: { ...bulk, workers: 0 } } });
/** A worker app on the same database for the rest of subtest `t` (closed, its worker stopped, at the subtest's end). */
const work = async (t: Test, extra: Partial<typeof bulk> = {}) => (await buildTestApp(t, { database, config: { bulk: { ...bulk, ...extra } } })).app;

const obs = (patientId: string, value: number) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '72514-3' }] },
  subject: { reference: `Patient/${patientId}` },
  valueQuantity: { value, unit: '{score}', system: 'http://unitsofmeasure.org', code: '{score}' },
});

async function create(app: FastifyInstance, resource: Json): Promise<Json> {
  const res = await app.inject({ method: 'POST', url: `/fhir/${resource.resourceType}`, headers: fhirHeaders(), payload: resource });
  if (res.statusCode !== 201) throw new Error(`create → ${res.statusCode}: ${res.body}`);
  return res.json() as Json;
}

const ids = (list: Json[] | undefined) => (list ?? []).map((r) => r.id as string).sort();

t.test('status: 202 with X-Progress and Retry-After, 429 when polled sooner, then 200 with the manifest', async (t) => {
  await create(a, patient('Queued'));
  const res = await kickoff(a, '/fhir/$export?_type=Patient');
  const status = pathOf(String(res.headers['content-location']));
  const first = await a.inject(status);
  t.equal(first.statusCode, 202, 'in progress');
  t.equal(first.headers['x-progress'], 'queued');
  t.equal(first.headers['retry-after'], '1');
  const soon = await a.inject(status);
  assertOutcome(t, soon, 429, 'throttled', 'polled at once again');
  t.equal(soon.headers['retry-after'], '1');
  await work(t);
  const done = await poll(a, status);
  t.equal(done.statusCode, 200, 'another process worked it');
  t.match(done.headers['content-type'], /^application\/json/);
  t.ok(done.headers.expires, 'Expires says when the files go');
});

t.test('_since: changes after it, and deletions in the window as DELETE Bundles; the snapshot holds against later writes', async (t) => {
  const before = await create(a, patient('Kept'));
  const doomed = await create(a, patient('Doomed'));
  const untouched = await create(a, patient('Untouched'));
  await new Promise((r) => setTimeout(r, 5));
  const since = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 5));
  const changed = await a.inject({ method: 'PUT', url: `/fhir/Patient/${before.id}`, headers: fhirHeaders(), payload: { ...patient('Kept'), id: before.id, gender: 'male' } });
  t.equal(changed.statusCode, 200);
  t.equal((await a.inject({ method: 'DELETE', url: `/fhir/Patient/${doomed.id}` })).statusCode, 200);
  const fresh = await create(a, patient('Fresh'));

  const res = await kickoff(a, `/fhir/$export?_type=Patient&_since=${encodeURIComponent(since)}`);
  t.equal(res.statusCode, 202);
  // Written after the kick-off, before any worker runs: none of it may show.
  const late = await create(a, patient('Late'));
  await a.inject({ method: 'PUT', url: `/fhir/Patient/${fresh.id}`, headers: fhirHeaders(), payload: { ...patient('Fresh'), id: fresh.id, gender: 'other' } });
  await a.inject({ method: 'DELETE', url: `/fhir/Patient/${before.id}` });
  await work(t);
  const m = (await poll(a, String(res.headers['content-location']))).json() as Manifest;
  const { byType, invalid } = await contents(a, m);
  t.same(invalid, []);
  const patients = byType.get('Patient') ?? [];
  t.same(ids(patients), ids([before, fresh]), 'the updated and the new patient; not the untouched one, not the one created after the kick-off');
  t.notOk(patients.some((p) => p.id === untouched.id || p.id === late.id));
  t.equal(patients.find((p) => p.id === before.id)?.gender, 'male', 'the update is in (its deletion after the kick-off is not)');
  t.equal(patients.find((p) => p.id === fresh.id)?.meta.versionId, '1', 'the version current at transactionTime, not the later update');
  for (const p of patients) t.ok(p.meta.lastUpdated > since && p.meta.lastUpdated <= m.transactionTime, 'lastUpdated in (_since, transactionTime]');
  t.ok(m.deleted, 'deleted is listed for a _since export');
  const deleted = await contents(a, m, 'deleted');
  t.same(deleted.invalid, []);
  t.same(m.deleted!.map((d) => d.type), ['Bundle'], 'deleted files are of Bundles');
  const bundles = deleted.byType.get('Bundle') ?? [];
  t.same(
    bundles.map((b) => b.entry.map((e: Json) => e.request)),
    [[{ method: 'DELETE', url: `Patient/${doomed.id}` }]],
    'one transaction Bundle per deleted resource, its request DELETE Type/id',
  );
  t.ok(bundles.every((b) => b.resourceType === 'Bundle' && b.type === 'transaction'));
});

t.test('one export per client at a time (BULK_MAX_PER_CLIENT): a second → 429 with Retry-After', async (t) => {
  const { app: one } = await buildTestApp(t, { database, config: { bulk: { ...bulk, maxPerClient: 1, workers: 0 } } });
  const client = await one.auth!.clients.add({ name: 'analytics', scope: 'system/*.rs' });
  const headers = { authorization: `Bearer ${(await one.auth!.issue(client, 'system/*.rs')).access_token}` };
  const first = await kickoff(one, '/fhir/$export?_type=Patient', headers);
  t.equal(first.statusCode, 202);
  const second = await kickoff(one, '/fhir/$export?_type=Patient', headers);
  assertOutcome(t, second, 429, 'throttled', 'second export of the same client');
  t.equal(second.headers['retry-after'], '1');
  t.equal((await kickoff(one, '/fhir/$export?_type=Patient')).statusCode, 202, 'another client is not held back');
  await one.inject({ method: 'DELETE', url: pathOf(String(first.headers['content-location'])), headers });
  t.equal((await kickoff(one, '/fhir/$export?_type=Patient', headers)).statusCode, 202, 'once its export is cancelled, the client may start another');
});

