// Issue 17, findings 5 and 11, over HTTP (inject): export jobs belong to the token's whole
// identity (issuer, client, subject, patient), not to a bare client id; and an export
// fails alone: a _typeFilter the worker cannot run is refused at kick-off, a job that
// throws is failed (500 with an OperationOutcome on its status URL) and blocks nothing.
import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import { identityOf } from '../../src/auth/context.js';
import { MAX_CLAIMS } from '../../src/bulk/worker.js';
import { buildTestApp, fhirHeaders, patient, testDatabase } from '../helper.js';
import { assertOutcome, BASE, type Json } from '../support.js';
import { jsonServer, keyPair, signed } from '../auth/helper.js';
import { exportAll, kickoff, pathOf, poll } from './support.js';

const bulk = { retryAfterSeconds: 1, maxPerClient: 1, expirySeconds: 3600, fileBytes: 100 * 1024 * 1024, batchSize: 100, workers: 1, pauseMs: 0 };
const idpKey = await keyPair('ES384');
const { base: idp } = await jsonServer(t, () => ({ '/keys': { keys: [idpKey.publicJwk] } }));
const issuer = `${idp}/realm`;
const authConfig = { authIssuer: issuer, authJwksUrl: `${idp}/keys`, rateLimit: 0 };

const database = await testDatabase(t);
// No worker here: its exports stay queued (as a long export would stay running).
const { app: queued, token: admin } = await buildTestApp(t, { database, config: { ...authConfig, bulk: { ...bulk, workers: 0 } } });
const work = async (t: Test) => (await buildTestApp(t, { database, config: { ...authConfig, bulk } })).app;

async function create(app: FastifyInstance, resource: Json): Promise<Json> {
  const res = await app.inject({ method: 'POST', url: `/fhir/${resource.resourceType}`, headers: fhirHeaders(), payload: resource });
  if (res.statusCode !== 201) throw new Error(`create → ${res.statusCode}: ${res.body}`);
  return res.json() as Json;
}
const ada = await create(queued, patient('Okafor'));
const ben = await create(queued, patient('Brandt'));
const pain = (p: Json) => ({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '72514-3' }] }, subject: { reference: `Patient/${p.id}` } });
await create(queued, pain(ada));
await create(queued, pain(ben));

const now = () => Math.floor(Date.now() / 1000);
/** A token of the external app `portal` (one azp) for one patient. */
const portal = (p: Json, sub: string) =>
  signed(idpKey, { iss: issuer, aud: `${BASE}/fhir`, sub, azp: 'portal', scope: 'patient/*.rs', patient: p.id, iat: now(), exp: now() + 300 });
const as = (token: string) => ({ authorization: `Bearer ${token}` });

t.test("two patients of one external app: B neither sees, polls nor cancels A's export, and A's does not hold B's back", async (t) => {
  const forAda = as(await portal(ada, 'user-ada'));
  const forBen = as(await portal(ben, 'user-ben'));
  const a = await kickoff(queued, '/fhir/Patient/$export', forAda);
  t.equal(a.statusCode, 202, a.body);
  const status = pathOf(String(a.headers['content-location']));
  t.equal((await queued.inject({ url: status, headers: forAda })).statusCode, 202, 'A polls its own');
  assertOutcome(t, await queued.inject({ url: status, headers: forBen }), 404, 'not-found', "B polls A's: 404");
  assertOutcome(t, await queued.inject({ method: 'DELETE', url: status, headers: forBen }), 404, 'not-found', "B cancels A's: 404");
  const b = await kickoff(queued, '/fhir/Patient/$export', forBen);
  t.equal(b.statusCode, 202, "B's kick-off is not refused for A's export in progress");
  assertOutcome(t, await kickoff(queued, '/fhir/Patient/$export', forAda), 429, 'throttled', 'A itself still has one export at a time');
  for (const h of [forAda, forBen]) {
    const url = pathOf(String((h === forAda ? a : b).headers['content-location']));
    t.equal((await queued.inject({ method: 'DELETE', url, headers: h })).statusCode, 202, 'each cancels its own');
  }
});

t.test("B cannot download A's finished export; an external token claiming a Fascia client's id gets nothing of that client's", async (t) => {
  await work(t);
  const forAda = as(await portal(ada, 'user-ada'));
  const forBen = as(await portal(ben, 'user-ben'));
  const kicked = await kickoff(queued, '/fhir/Patient/$export?_type=Observation', forAda);
  const done = await poll(queued, String(kicked.headers['content-location']), forAda);
  t.equal(done.statusCode, 200, done.body);
  const file = pathOf(done.json().output[0].url);
  t.equal((await queued.inject({ url: file, headers: forAda })).statusCode, 200, 'A downloads its file');
  assertOutcome(t, await queued.inject({ url: file, headers: forBen }), 404, 'not-found', "B does not download A's file");

  // The admin's system export, and an external token that says client_id = the admin's client id.
  const adminAccess = await queued.auth!.verify(admin!);
  const manifest = await exportAll(queued, '/fhir/$export?_type=Patient');
  const impostor = as(await signed(idpKey, {
    iss: issuer, aud: `${BASE}/fhir`, sub: adminAccess.clientId, client_id: adminAccess.clientId, scope: 'system/*.rs', iat: now(), exp: now() + 300,
  }));
  const claimed = await queued.auth!.verify(impostor.authorization.slice(7));
  t.equal(claimed.clientId, adminAccess.clientId, 'the same client id…');
  t.not(identityOf(claimed), identityOf(adminAccess), '…but another identity: the issuer is part of it');
  assertOutcome(t, await queued.inject({ url: pathOf(manifest.output[0]!.url), headers: impostor }), 404, 'not-found', "no download of the Fascia client's file");
  const status = `/fhir/$export-status/${manifest.output[0]!.url.split('/').at(-2)}`;
  assertOutcome(t, await queued.inject({ url: status, headers: impostor }), 404, 'not-found', 'nor its status');
  t.equal((await queued.inject({ url: status })).statusCode, 200, 'the admin still reads it');
});

t.test('a _typeFilter the worker cannot run (a chain, _has) is refused at kick-off with 400', async (t) => {
  for (const filter of ['Observation?subject:Patient.name=Okafor', 'Observation?patient.name=Okafor', 'Patient?_has:Observation:subject:code=72514-3']) {
    const res = await kickoff(queued, `/fhir/$export?_type=Observation,Patient&_typeFilter=${encodeURIComponent(filter)}`);
    assertOutcome(t, res, 400, 'invalid', filter);
  }
  const fine = await kickoff(queued, `/fhir/$export?_type=Observation&_typeFilter=${encodeURIComponent('Observation?code=72514-3')}`);
  t.equal(fine.statusCode, 202, 'an ordinary search still filters');
  await queued.inject({ method: 'DELETE', url: pathOf(String(fine.headers['content-location'])) });
});

t.test('a job that throws is failed (500 with an OperationOutcome) and every other export goes on', async (t) => {
  const owner = identityOf(await queued.auth!.verify(admin!));
  // As a kick-off from before the check would have stored it: a chained _typeFilter the worker cannot build.
  const broken = randomUUID();
  const plan = { level: 'system', types: [{ type: 'Observation', access: { kind: 'all' }, filters: [[['subject:Patient.name', 'Okafor']]] }], outputFormat: 'application/fhir+ndjson', ignored: [] };
  // And one taken over MAX_CLAIMS times already (its workers died on it).
  const crashing = randomUUID();
  const fine = { ...plan, types: [{ type: 'Patient', access: { kind: 'all' }, filters: [] }] };
  for (const [id, p, claims] of [[broken, plan, 0], [crashing, fine, MAX_CLAIMS]] as const) {
    await database.pool.query(`INSERT INTO bulk_jobs (id, owner, client_id, status, request, plan, snapshot, claims, created_at)
      VALUES ($1, $2, 'admin', 'queued', $3, $4, now(), $5, now() - interval '1 hour')`, [id, owner, `${BASE}/fhir/$export`, JSON.stringify(p), claims]);
  }
  await work(t);
  const other = await queued.auth!.clients.add({ name: 'another client', scope: 'system/*.rs' });
  const manifest = await exportAll(queued, '/fhir/$export?_type=Patient', as((await queued.auth!.issue(other, 'system/*.rs')).access_token));
  t.equal(manifest.output[0]?.count, 2, 'an export queued after them is worked and finishes');
  for (const id of [broken, crashing]) {
    const res = await poll(queued, `${BASE}/fhir/$export-status/${id}`);
    assertOutcome(t, res, 500, 'exception', `job ${id === broken ? 'that throws' : 'claimed too often'}: failed`);
    const row = await database.pool.query(`SELECT status, worker_pid FROM bulk_jobs WHERE id = $1`, [id]);
    t.same(row.rows[0], { status: 'failed', worker_pid: null }, 'failed, held by no worker');
  }
});
