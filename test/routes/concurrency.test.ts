/**
 * Versioning under concurrent writes (FHIR R4 http.html "Managing Resource
 * Contention", versioned-update). Requests go over a real HTTP connection so they
 * truly overlap inside the server.
 */
import t from 'tap';
import { buildTestApp, patient } from '../helper.js';
import { inParallel, type Json } from '../support.js';

const { app, token } = await buildTestApp(t);
const address = await app.listen({ port: 0, host: '127.0.0.1' });

interface Answer {
  status: number;
  etag: string | null;
  body: Json;
}

async function send(method: string, path: string, body?: Json, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${address}${path}`, {
    method,
    // AUTH is on: real HTTP carries the admin token buildTestApp made.
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/fhir+json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, etag: res.headers.get('etag'), body: text ? (JSON.parse(text) as Json) : {} };
}

const count = (answers: Answer[], status: number) => answers.filter((a) => a.status === status).length;
const statuses = (answers: Answer[]) => [...new Set(answers.map((a) => a.status))].sort().join(',');
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

t.test('30 concurrent PUTs with If-Match W/"1": exactly one 200, the others 412', async (t) => {
  const created = await send('POST', '/fhir/Patient', patient('Race'));
  t.equal(created.status, 201);
  const id = String(created.body.id);
  const answers = await inParallel(30, (i) =>
    send('PUT', `/fhir/Patient/${id}`, { ...patient(`Writer${i}`), id }, { 'if-match': 'W/"1"' }),
  );
  t.equal(count(answers, 200), 1, `one winner (statuses ${statuses(answers)})`);
  t.equal(count(answers, 412), 29, 'every other writer gets 412');
  t.ok(
    answers.filter((a) => a.status === 412).every((a) => a.body.resourceType === 'OperationOutcome'),
    'every 412 carries an OperationOutcome',
  );
  const winner = answers.find((a) => a.status === 200);
  t.equal(winner?.etag, 'W/"2"');
  const read = await send('GET', `/fhir/Patient/${id}`);
  t.equal(read.etag, 'W/"2"', 'only one version was added');
  t.equal(read.body.name?.[0]?.family, winner?.body.name?.[0]?.family, 'the stored content is the winner’s');
  const history = await send('GET', `/fhir/Patient/${id}/_history?_count=100`);
  t.equal(history.body.entry?.length, 2, 'history holds the create and the single winning update');
});

t.test('40 concurrent PUTs without If-Match: all 200, versions 2..41, none lost', async (t) => {
  const created = await send('POST', '/fhir/Patient', patient('Busy'));
  const id = String(created.body.id);
  const answers = await inParallel(40, (i) => send('PUT', `/fhir/Patient/${id}`, { ...patient(`Writer${i}`), id }));
  t.equal(count(answers, 200), 40, `all succeed (statuses ${statuses(answers)})`);
  const versions = answers.map((a) => Number(a.body.meta?.versionId)).sort((a, b) => a - b);
  t.same(versions, range(2, 41), 'each update got its own versionId, 2..41');
  t.same(
    answers.map((a) => Number(/^W\/"(\d+)"$/.exec(a.etag ?? '')?.[1])).sort((a, b) => a - b),
    range(2, 41),
    'ETags agree with the bodies',
  );
  const read = await send('GET', `/fhir/Patient/${id}`);
  t.equal(read.body.meta?.versionId, '41');
  t.equal(read.etag, 'W/"41"');

  const history = await send('GET', `/fhir/Patient/${id}/_history?_count=100`);
  t.equal(history.status, 200);
  const historyVersions: number[] = (history.body.entry ?? []).map((e: Json) => Number(e.resource?.meta?.versionId));
  t.equal(historyVersions.length, 41, 'instance history has 41 entries');
  t.equal(new Set(historyVersions).size, 41, 'no versionId appears twice');
  t.same(historyVersions, range(1, 41).reverse(), 'newest first: 41 down to 1');
  const stamps: number[] = (history.body.entry ?? []).map((e: Json) => Date.parse(e.resource?.meta?.lastUpdated));
  t.ok(
    stamps.every((s, i) => i === 0 || stamps[i - 1]! >= s),
    'a later version never has an earlier meta.lastUpdated',
  );
  // Each version's content is the one its writer sent.
  for (const a of answers) {
    const v = await send('GET', `/fhir/Patient/${id}/_history/${String(a.body.meta?.versionId)}`);
    if (v.body.name?.[0]?.family !== a.body.name?.[0]?.family) {
      t.fail(`version ${String(a.body.meta?.versionId)} holds another writer’s content`);
      return;
    }
  }
  t.pass('every version holds the content its writer was told it holds');
});

t.test('20 concurrent PUTs creating the same new id: one 201, the rest 200, versions 1..20', async (t) => {
  const id = 'concurrent-create-1';
  const answers = await inParallel(20, (i) => send('PUT', `/fhir/Patient/${id}`, { ...patient(`Creator${i}`), id }));
  t.equal(count(answers, 201), 1, `exactly one create (statuses ${statuses(answers)})`);
  t.equal(count(answers, 200), 19, 'the others update it');
  t.same(
    answers.map((a) => Number(a.body.meta?.versionId)).sort((a, b) => a - b),
    range(1, 20),
    'versions 1..20, each once',
  );
  t.equal(answers.find((a) => a.status === 201)?.body.meta?.versionId, '1', 'the 201 is version 1');
  const read = await send('GET', `/fhir/Patient/${id}`);
  t.equal(read.body.meta?.versionId, '20');
  const history = await send('GET', `/fhir/Patient/${id}/_history?_count=100`);
  t.equal(history.body.entry?.length, 20);
});

t.test('concurrent deletes and updates of one resource keep a gap-free version sequence', async (t) => {
  const created = await send('POST', '/fhir/Observation', { resourceType: 'Observation', status: 'final', code: { text: 'pain' } });
  const id = String(created.body.id);
  const body = { resourceType: 'Observation', id, status: 'amended', code: { text: 'pain' } };
  const answers = await inParallel(20, (i) =>
    i % 2 ? send('DELETE', `/fhir/Observation/${id}`) : send('PUT', `/fhir/Observation/${id}`, body),
  );
  t.ok(
    answers.every((a) => a.status === 200 || a.status === 201),
    `deletes and updates all succeed (statuses ${statuses(answers)})`,
  );
  const history = await send('GET', `/fhir/Observation/${id}/_history?_count=100`);
  const entries: Json[] = history.body.entry ?? [];
  const n = entries.length;
  t.ok(n >= 11, `every update wrote a version: 10 PUTs + the create at least (got ${n})`);
  const deletions = entries.filter((e) => e.request?.method === 'DELETE' && !e.resource).length;
  const kept = entries.filter((e) => e.resource).map((e) => Number(e.resource.meta?.versionId));
  t.equal(deletions + kept.length, n, 'each entry is a version with content or a deletion without');
  t.equal(new Set(kept).size, kept.length, 'no versionId appears twice');
  // vread tells version by version what the history must contain: 1..n, no gap.
  const vreads = await Promise.all(range(1, n + 1).map((v) => send('GET', `/fhir/Observation/${id}/_history/${v}`)));
  t.same(
    vreads.slice(0, n).map((r) => r.status).filter((s) => s !== 200 && s !== 410),
    [],
    'every version 1..n exists (200, or 410 for a deletion)',
  );
  t.equal(vreads.filter((r) => r.status === 410).length, deletions, 'as many deletion versions as DELETE entries');
  t.equal(vreads[n]?.status, 404, `version ${n + 1} does not exist`);
  const last = entries[0];
  const read = await send('GET', `/fhir/Observation/${id}`);
  t.equal(read.status, last?.request?.method === 'DELETE' ? 410 : 200, 'read agrees with the newest history entry');
});
