/**
 * The history interaction at instance, type and system level (FHIR R4 http.html#history):
 * a Bundle of type history, newest first, deletions as entries with request.method
 * DELETE and no resource, _since (versions at or after an instant), _count with next
 * links. This file's database holds what its tests write, after Fascia's own
 * definitions (CodeSystems, ValueSets, profiles…), which the server stores at start.
 */
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { definitions } from '../../src/domain/definitions.js';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';
import { BASE, FHIR_CONTENT_TYPE, assertOutcome, create, entries, link, localPath, pages, put, versionKey, type Json } from '../support.js';

const { app, database } = await buildTestApp(t);

async function history(url: string): Promise<Json> {
  const res = await app.inject({ url });
  if (res.statusCode !== 200) throw new Error(`GET ${url} → ${res.statusCode} ${res.body}`);
  return res.json() as Json;
}

/** Patient created, updated, deleted; an Observation created in between. */
const p = await create(app, patient('First'));
const observation = await create(app, { resourceType: 'Observation', status: 'final', code: { text: 'pain' } });
await put(app, { ...p, name: [{ family: 'Second' }] });
await app.inject({ method: 'DELETE', url: `/fhir/Patient/${p.id}` });

t.test('instance history: Bundle type history, newest first, the deletion without a resource', async (t) => {
  const res = await app.inject({ url: `/fhir/Patient/${p.id}/_history` });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], FHIR_CONTENT_TYPE);
  const bundle = res.json();
  t.equal(bundle.resourceType, 'Bundle');
  t.equal(bundle.type, 'history');
  const [deletion, update, creation] = entries(bundle);
  t.equal(entries(bundle).length, 3);
  t.equal(deletion?.request?.method, 'DELETE', 'newest entry is the deletion');
  t.notOk(deletion?.resource, 'a deletion entry has no resource');
  t.match(deletion?.request?.url, new RegExp(`Patient/${p.id}$`), 'the deletion names the resource');
  t.equal(update?.request?.method, 'PUT');
  t.equal(update?.resource?.meta?.versionId, '2');
  t.equal(update?.resource?.name?.[0]?.family, 'Second');
  t.equal(creation?.request?.method, 'POST');
  t.equal(creation?.resource?.meta?.versionId, '1');
  t.equal(creation?.resource?.name?.[0]?.family, 'First');
  t.equal(update?.fullUrl, `${BASE}/fhir/Patient/${p.id}`, 'fullUrl is the absolute resource URL');
  t.ok(link(bundle, 'self'), 'a self link');
});

t.test('instance history of a deleted resource is still 200; of an unknown one 404', async (t) => {
  t.equal((await app.inject({ url: `/fhir/Patient/${p.id}/_history` })).statusCode, 200);
  assertOutcome(t, await app.inject({ url: '/fhir/Patient/never-was/_history' }), 404, 'not-found');
});

t.test('type history: only that type, newest first', async (t) => {
  const bundle = await history('/fhir/Patient/_history');
  t.equal(bundle.type, 'history');
  const list = entries(bundle);
  t.equal(list.length, 3, 'the three Patient versions');
  t.ok(list.every((e) => e.resource?.resourceType === 'Patient' || /^Patient\//.test(e.request?.url)), 'only Patients');
  t.same(
    list.map((e) => e.request?.method),
    ['DELETE', 'PUT', 'POST'],
    'newest first',
  );
  const observations = entries(await history('/fhir/Observation/_history'));
  t.equal(observations.length, 1);
  t.equal(observations[0]?.resource?.id, observation.id);
  t.equal(entries(await history('/fhir/Procedure/_history')).length, 0, 'no Procedure written → no entries');
});

t.test('system history: every type, newest first', async (t) => {
  const all = entries(await history(`/fhir/_history?_count=${definitions.length + 10}`));
  // Fascia's definitions were stored at start, before anything the tests wrote: the oldest entries.
  const installed = all.slice(4);
  t.same(
    installed.map((e) => `${e.resource?.resourceType}/${e.resource?.id}`).sort(),
    definitions.map((d) => `${d.resourceType}/${d.id}`).sort(),
    'below the test writes: each of Fascia’s definitions once',
  );
  const list = all.slice(0, 4);
  t.same(
    list.map((e) => e.request?.method),
    ['DELETE', 'PUT', 'POST', 'POST'],
  );
  t.equal(list[2]?.resource?.resourceType, 'Observation', 'the Observation sits between the Patient’s create and update');
  const stamps = list.filter((e) => e.resource).map((e) => Date.parse(e.resource.meta.lastUpdated));
  t.ok(stamps.every((s, i) => i === 0 || stamps[i - 1]! >= s), 'meta.lastUpdated never increases down the list');
});

t.test('_since keeps versions at or after the instant', async (t) => {
  const a = await create(app, { resourceType: 'Condition', subject: { reference: 'Patient/x' }, code: { text: 'A' } });
  await sleep(20);
  const b = await create(app, { resourceType: 'Condition', subject: { reference: 'Patient/x' }, code: { text: 'B' } });
  const since = encodeURIComponent(b.meta.lastUpdated);
  const list = entries(await history(`/fhir/Condition/_history?_since=${since}`));
  t.same(list.map((e) => e.resource?.id), [b.id], 'B (exactly at _since) in, A (before) out');
  const all = entries(await history(`/fhir/Condition/_history?_since=${encodeURIComponent(a.meta.lastUpdated)}`));
  t.same(all.map((e) => e.resource?.id), [b.id, a.id]);
  const system = entries(await history(`/fhir/_history?_since=${since}`));
  t.same(system.map((e) => e.resource?.id), [b.id], 'system level honours _since');
  const instance = entries(await history(`/fhir/Condition/${a.id}/_history?_since=${since}`));
  t.equal(instance.length, 0, 'instance level honours _since');
  const future = entries(await history(`/fhir/_history?_since=${encodeURIComponent('2999-01-01T00:00:00Z')}`));
  t.equal(future.length, 0, 'nothing after a future instant');
  const offset = new Date(Date.parse(b.meta.lastUpdated)).toISOString().replace('Z', '+00:00');
  t.same(entries(await history(`/fhir/Condition/_history?_since=${encodeURIComponent(offset)}`)).map((e) => e.resource?.id), [b.id], 'a +00:00 offset is the same instant');
});

t.test('a malformed _since is 400', async (t) => {
  for (const bad of ['yesterday', '2024-13-01T00:00:00Z', '2024-02-30T00:00:00Z', '2024-01-01T25:00:00Z']) {
    assertOutcome(t, await app.inject({ url: `/fhir/_history?_since=${encodeURIComponent(bad)}` }), 400);
    assertOutcome(t, await app.inject({ url: `/fhir/Patient/_history?_since=${encodeURIComponent(bad)}` }), 400);
  }
});

t.test('_count pages through next links; each version once', async (t) => {
  const r = await create(app, { resourceType: 'Procedure', status: 'preparation', subject: { reference: 'Patient/x' } });
  for (const status of ['in-progress', 'completed', 'entered-in-error', 'completed']) {
    await put(app, { ...r, status });
  }
  const all = await pages(app, `/fhir/Procedure/${r.id}/_history?_count=2`, { maxPages: 10 });
  t.same(all.map((b) => entries(b).length), [2, 2, 1], '5 versions in pages of 2');
  t.same(
    all.flatMap(entries).map((e) => e.resource?.meta?.versionId),
    ['5', '4', '3', '2', '1'],
    'newest first across pages, none twice',
  );
  t.notOk(link(all[2]!, 'next'), 'the last page has no next link');
  for (const b of all) {
    for (const l of b.link ?? []) t.ok(String(l.url).startsWith(`${BASE}/fhir/`), `${l.relation} link is absolute: ${l.url}`);
  }
  const typePages = await pages(app, '/fhir/Procedure/_history?_count=1', { maxPages: 10 });
  t.equal(typePages.length, 5);
  t.equal(new Set(typePages.flatMap(entries).map(versionKey)).size, 5, 'type level: 5 distinct versions');
});

t.test('a tampered paging position in a next link is 400', async (t) => {
  const first = await history('/fhir/_history?_count=1');
  const next = link(first, 'next');
  t.ok(next, 'there is a next link');
  const url = new URL(localPath(String(next)), BASE);
  const original = new URLSearchParams(`_count=1`);
  // Whatever parameter the server added to carry the position, corrupt it.
  const added = [...url.searchParams.keys()].filter((k) => !original.has(k));
  t.ok(added.length > 0, 'the next link carries a position parameter');
  for (const bad of ['garbage', 'e30', '%%%']) {
    const u = new URL(url);
    for (const k of added) u.searchParams.set(k, bad);
    const res = await app.inject({ url: `${u.pathname}${u.search}` });
    assertOutcome(t, res, 400);
  }
});

t.test('history answers JSON Accept variants like the other interactions', async (t) => {
  const res = await app.inject({ url: '/fhir/_history', headers: { accept: 'application/json' } });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/json/);
  assertOutcome(t, await app.inject({ url: '/fhir/_history?_format=xml' }), 406, 'not-supported');
  const post = await app.inject({ method: 'POST', url: '/fhir/_history', headers: fhirHeaders(), payload: {} });
  assertOutcome(t, post, 405);
});

t.test('a committed version is in history even while an unrelated transaction is open', async (t) => {
  // Another client of the same database (a report, a migration, another service on a
  // shared server) holds a transaction open. It touches no FHIR data.
  const other = await database.pool.connect();
  try {
    await other.query('BEGIN');
    await other.query('SELECT pg_current_xact_id()');
    const r = await create(app, patient('Visible'));
    t.equal((await app.inject({ url: `/fhir/Patient/${r.id}` })).statusCode, 200, 'read sees the new resource');
    const instance = entries(await history(`/fhir/Patient/${r.id}/_history`));
    t.same(instance.map((e) => e.resource?.meta?.versionId), ['1'], 'instance history lists the committed version');
    const type = entries(await history('/fhir/Patient/_history?_count=1'));
    t.equal(type[0]?.resource?.id, r.id, 'type history lists it first');
    const system = entries(await history('/fhir/_history?_count=1'));
    t.equal(system[0]?.resource?.id, r.id, 'system history lists it first');
  } finally {
    await other.query('ROLLBACK');
    other.release();
  }
});
