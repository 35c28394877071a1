// Bulk Data export files over HTTP (inject), apps on one database standing in for
// processes: split at BULK_FILE_BYTES, cancel (queued and finished), expiry.
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

t.test('file splitting: no file over BULK_FILE_BYTES unless one resource is larger, nothing lost or repeated', async (t) => {
  const p = await create(a, patient('Split'));
  const made: Json[] = [];
  for (let i = 0; i < 30; i++) made.push(await create(a, obs(p.id, i % 10)));
  const res = await kickoff(a, '/fhir/$export?_type=Observation');
  await work(t, { fileBytes: 1500, batchSize: 4 });
  const m = (await poll(a, String(res.headers['content-location']))).json() as Manifest;
  t.ok(m.output.length > 3, `${m.output.length} files`);
  for (const o of m.output) {
    const { res, resources } = await download(a, o.url);
    t.ok(Buffer.byteLength(res.body) <= 1500 || resources.length === 1, `${o.url}: ${Buffer.byteLength(res.body)} bytes`);
  }
  const { byType, invalid } = await contents(a, m);
  t.same(invalid, []);
  t.same(ids(byType.get('Observation')), ids(made), 'every Observation once');
});

t.test('cancel: DELETE → 202, then the status URL and the files are 404', async (t) => {
  // One not finished: cancelled while queued, and no worker takes it afterwards.
  const queued = await kickoff(a, '/fhir/$export');
  const id = String(queued.headers['content-location']).split('/').pop()!;
  const s1 = pathOf(String(queued.headers['content-location']));
  t.equal((await a.inject({ method: 'DELETE', url: s1 })).statusCode, 202);
  assertOutcome(t, await a.inject(s1), 404, 'not-found', 'cancelled while queued');
  // A finished one: its files go too.
  const done = await kickoff(a, '/fhir/$export?_type=Patient');
  const s2 = pathOf(String(done.headers['content-location']));
  await work(t);
  const manifest = (await poll(a, s2)).json() as Manifest;
  t.equal((await database.pool.query('SELECT count(*)::int AS n FROM bulk_files WHERE job_id = $1', [id])).rows[0].n, 0, 'no worker wrote a file for the cancelled one');
  t.equal((await a.inject({ method: 'DELETE', url: s2 })).statusCode, 202);
  assertOutcome(t, await a.inject(s2), 404, 'not-found', 'status after cancel');
  assertOutcome(t, await a.inject(pathOf(manifest.output[0]!.url)), 404, 'not-found', 'file after cancel');
  assertOutcome(t, await a.inject({ method: 'DELETE', url: s2 }), 404, 'not-found', 'cancel twice');
});

t.test('expiry: after BULK_EXPIRY the status URL and the files are 404, and the rows are swept', async (t) => {
  await create(a, patient('Brief'));
  const res = await kickoff(a, '/fhir/$export?_type=Patient');
  const id = String(res.headers['content-location']).split('/').pop()!;
  const status = String(res.headers['content-location']);
  await work(t, { expirySeconds: 1 });
  const m = (await poll(a, status)).json() as Manifest;
  await new Promise((r) => setTimeout(r, 1200));
  assertOutcome(t, await a.inject(pathOf(status)), 404, 'not-found', 'status after expiry');
  assertOutcome(t, await a.inject(pathOf(m.output[0]!.url)), 404, 'not-found', 'file after expiry');
  let left = 1;
  for (let i = 0; i < 50 && left; i++) {
    await new Promise((r) => setTimeout(r, 200));
    left = (await database.pool.query('SELECT count(*)::int AS n FROM bulk_chunks WHERE job_id = $1', [id])).rows[0].n;
  }
  t.equal(left, 0, 'its chunks are deleted');
});

