/**
 * Paging history (FHIR R4 http.html#history) when many versions share a timestamp and
 * when writes land between pages: every version is listed exactly once, newest first,
 * and nothing that existed when paging started goes missing.
 */
import t from 'tap';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';
import { create, entries, inParallel, link, pages, versionKey, type Json } from '../support.js';

const { app } = await buildTestApp(t);
const TOTAL = 400;

/** 400 Patients created at once, so many share one millisecond. */
const created = await inParallel(TOTAL, async (i) => {
  const res = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: patient(`Bulk${i}`) });
  if (res.statusCode !== 201) throw new Error(`create ${i} → ${res.statusCode} ${res.body}`);
  return res.json() as Json;
});

/** Entries whose meta.lastUpdated is later than the entry listed before them (newest first means none). */
function inversions(list: Json[]): string[] {
  const out: string[] = [];
  list.forEach((e, i) => {
    const prev = list[i - 1]?.resource?.meta?.lastUpdated;
    const here = e.resource?.meta?.lastUpdated;
    if (i > 0 && prev && here && Date.parse(here) > Date.parse(prev)) out.push(`#${i} ${here} after ${prev}`);
  });
  return out;
}

t.test('400 concurrent creates: 400 distinct server-assigned ids', async (t) => {
  t.equal(new Set(created.map((r) => r.id)).size, TOTAL, 'all ids distinct');
  // How hard the case is: the fewer distinct timestamps, the more versions share one.
  t.comment(`${TOTAL} creates over ${new Set(created.map((r) => r.meta.lastUpdated)).size} distinct lastUpdated values`);
});

t.test('type history in pages of 37: each of the 400 versions exactly once, newest first', async (t) => {
  const all = await pages(app, '/fhir/Patient/_history?_count=37', { maxPages: 50 });
  t.equal(all.length, Math.ceil(TOTAL / 37), '11 pages');
  t.ok(all.every((b) => b.type === 'history' && entries(b).length <= 37), 'each page is a history Bundle of at most 37');
  t.notOk(link(all[all.length - 1]!, 'next'), 'the last page has no next link');
  const list = all.flatMap(entries);
  const keys = list.map(versionKey);
  t.equal(keys.length, TOTAL, 'exactly 400 entries');
  t.equal(new Set(keys).size, TOTAL, 'no entry twice');
  const ids = new Set(list.map((e) => e.resource?.id));
  t.ok(
    created.every((r) => ids.has(r.id)),
    'every created Patient is listed',
  );
  const wrong = inversions(list);
  t.same(wrong.slice(0, 3), [], `meta.lastUpdated never increases down the list (${wrong.length} inversions)`);
});

t.test('other page sizes agree on the same 400 versions', async (t) => {
  const reference = new Set(created.map((r) => `Patient/${r.id}/1`));
  for (const count of [1000, 399, 100]) {
    const keys = (await pages(app, `/fhir/Patient/_history?_count=${count}`, { maxPages: 10 })).flatMap(entries).map(versionKey);
    t.equal(keys.length, TOTAL, `_count=${count}: 400 entries`);
    t.ok(
      keys.every((k) => reference.has(k)) && new Set(keys).size === TOTAL,
      `_count=${count}: the same versions, each once`,
    );
  }
});

t.test('system history paged while resources are being written: no duplicates, nothing old missing', async (t) => {
  const before = new Set(created.map((r) => `Patient/${r.id}/1`));
  const extra = await create(app, { resourceType: 'Observation', status: 'final', code: { text: 'pre-existing' } });
  before.add(`Observation/${extra.id}/1`);
  let written = 0;
  const racing: Promise<unknown>[] = [];
  const writeSome = async () => {
    // Writes between pages, some awaited before the next page, some still running during it.
    await inParallel(5, (i) => create(app, { resourceType: 'Observation', status: 'final', code: { text: `during ${written}-${i}` } }));
    racing.push(inParallel(3, () => create(app, patient(`Racing${written}`))));
    written += 1;
  };
  const all = await pages(app, '/fhir/_history?_count=50', { maxPages: 100, between: writeSome });
  t.ok(written >= 8, `writes happened between ${written} page turns`);
  const keys = all.flatMap(entries).map(versionKey);
  t.equal(new Set(keys).size, keys.length, 'no version listed twice');
  const seen = new Set(keys);
  const missing = [...before].filter((k) => !seen.has(k));
  t.same(missing, [], 'every version that existed at the start is listed');
  const wrong = inversions(all.flatMap(entries));
  t.same(wrong.slice(0, 3), [], `newest first across pages (${wrong.length} inversions)`);
  await Promise.all(racing);
});
