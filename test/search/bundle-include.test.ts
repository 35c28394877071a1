/**
 * The searchset Bundle (FHIR R4 search.html#return, #summary, #elements, #total,
 * bundle.html#searchset) and _include/_revinclude (search.html#include), on two
 * patients, their sessions and the pain scores measured during them.
 */
import t from 'tap';
import { buildTestApp } from '../helper.js';
import { Fixture, painBody, patientBody, q, sessionBody, SUBSETTED } from '../search-fixtures.js';
import { BASE, entries, type Json } from '../support.js';

const { app } = await buildTestApp(t);
const f = new Fixture(app);

const ada = (await f.add('ada', patientBody('Okafor', ['Ada']))).id as string;
const ben = (await f.add('ben', patientBody('Brandt', ['Ben']))).id as string;
const s1 = (await f.add('sess-ada-1', sessionBody(ada, 'graston', '2026-03-10T09:00:00Z', '2026-03-10T09:45:00Z'))).id as string;
const s2 = (await f.add('sess-ada-2', sessionBody(ada, 'astym', '2026-03-17T09:00:00Z', '2026-03-17T09:40:00Z'))).id as string;
const sb = (await f.add('sess-ben', sessionBody(ben, 'astym', '2026-03-18T09:00:00Z', '2026-03-18T09:40:00Z'))).id as string;
await f.add('obs-1a', painBody(ada, 7, '2026-03-10T09:05:00Z', s1));
await f.add('obs-1b', painBody(ada, 4, '2026-03-10T09:44:00Z', s1));
await f.add('obs-2a', painBody(ada, 3, '2026-03-17T09:35:00Z', s2));
await f.add('obs-ada-home', painBody(ada, 2, '2026-03-20T19:00:00Z', undefined, {
  text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Pain 2/10, reported by phone</div>' },
  note: [{ text: 'Reported by phone' }],
}));
await f.add('obs-ben', painBody(ben, 5, '2026-03-18T09:30:00Z', sb));

const hasSubsetted = (r: Json | undefined) =>
  ((r?.meta?.tag ?? []) as Json[]).some((tag) => tag.system === SUBSETTED.system && tag.code === SUBSETTED.code);

t.test('a search answers a Bundle of type searchset with fullUrl and search.mode match on each entry', async (t) => {
  const bundle = await f.expect(t, `/fhir/Observation?patient=${ada}`, ['obs-1a', 'obs-1b', 'obs-2a', 'obs-ada-home']);
  t.equal(bundle.resourceType, 'Bundle');
  t.equal(bundle.type, 'searchset');
  for (const e of entries(bundle).filter((e) => e.search?.mode === 'match')) {
    t.equal(e.fullUrl, `${BASE}/fhir/Observation/${String(e.resource.id)}`, `fullUrl of ${f.labelOf(e.resource)}`);
  }
});

t.test('the self link is present and lists only the parameters applied (an unknown one is left out)', async (t) => {
  const bundle = await f.search(t, `/fhir/Observation?patient=${ada}&foo=bar&date=ge2026-03-01`);
  t.same(f.labels(bundle).sort(), ['obs-1a', 'obs-1b', 'obs-2a', 'obs-ada-home'], 'foo=bar is ignored');
  const self = ((bundle.link ?? []) as Json[]).find((l) => l.relation === 'self')?.url as string | undefined;
  t.ok(self, 'a self link');
  const url = new URL(self ?? 'http://invalid/');
  t.equal(url.origin + url.pathname, `${BASE}/fhir/Observation`, 'self points at the type search');
  t.equal(url.searchParams.get('patient'), ada, 'self carries patient');
  t.equal(url.searchParams.get('date'), 'ge2026-03-01', 'self carries date');
  t.notOk(url.searchParams.has('foo'), 'self leaves out the unknown parameter foo');
});

t.test('_total=accurate gives the number of matches, whatever the page size', async (t) => {
  const bundle = await f.search(t, `/fhir/Observation?patient=${ada}&_count=1&_total=accurate`);
  t.equal(bundle.total, 4, 'total 4');
  t.equal(entries(bundle).filter((e) => e.search?.mode === 'match').length, 1, 'one match on the page');
});

t.test('total counts matches only, not included resources', async (t) => {
  const bundle = await f.search(t, `/fhir/Procedure?patient=${ada}&_revinclude=Observation:part-of&_total=accurate`);
  t.equal(bundle.total, 2, 'total is the 2 sessions');
});

t.test('_summary=count returns the total and no entries', async (t) => {
  const bundle = await f.search(t, `/fhir/Observation?patient=${ada}&_summary=count`);
  t.equal(bundle.type, 'searchset');
  t.equal(bundle.total, 4, 'total 4');
  t.equal(entries(bundle).filter((e) => e.resource?.resourceType === 'Observation').length, 0, 'no resources');
});

t.test('_summary=true returns summary elements only, tagged SUBSETTED', async (t) => {
  const bundle = await f.search(t, `/fhir/Observation?_id=${f.id('obs-ada-home')}&_summary=true`);
  const r = entries(bundle)[0]?.resource as Json | undefined;
  t.equal(r?.id, f.id('obs-ada-home'));
  t.ok(hasSubsetted(r), 'meta.tag has SUBSETTED');
  t.equal(r?.status, 'final', 'status (a summary element) is kept');
  t.ok(r?.code, 'code (a summary element) is kept');
  t.notOk(r?.note, 'note (not a summary element) is left out');
});

t.test('_summary=text returns text, id, meta and mandatory elements only, tagged SUBSETTED', async (t) => {
  const bundle = await f.search(t, `/fhir/Observation?_id=${f.id('obs-ada-home')}&_summary=text`);
  const r = entries(bundle)[0]?.resource as Json | undefined;
  t.ok(r?.text?.div, 'text kept');
  t.ok(hasSubsetted(r), 'meta.tag has SUBSETTED');
  t.equal(r?.status, 'final', 'status (mandatory) kept');
  t.ok(r?.code, 'code (mandatory) kept');
  t.notOk(r?.valueQuantity, 'valueQuantity left out');
  t.notOk(r?.note, 'note left out');
});

t.test('_summary=data leaves out the narrative only; _summary=false returns the whole resource', async (t) => {
  const data = entries(await f.search(t, `/fhir/Observation?_id=${f.id('obs-ada-home')}&_summary=data`))[0]?.resource as Json | undefined;
  t.notOk(data?.text, '_summary=data: no text');
  t.equal(data?.valueQuantity?.value, 2, '_summary=data: valueQuantity kept');
  t.equal(data?.note?.[0]?.text, 'Reported by phone', '_summary=data: note kept');
  const full = entries(await f.search(t, `/fhir/Observation?_id=${f.id('obs-ada-home')}&_summary=false`))[0]?.resource as Json | undefined;
  t.ok(full?.text?.div, '_summary=false: text kept');
  t.equal(full?.note?.[0]?.text, 'Reported by phone', '_summary=false: note kept');
  t.notOk(hasSubsetted(full), '_summary=false: not SUBSETTED');
});

t.test('_elements=status returns status, id and meta (plus mandatory elements), tagged SUBSETTED', async (t) => {
  const bundle = await f.search(t, `/fhir/Observation?_id=${f.id('obs-ada-home')}&_elements=status`);
  const r = entries(bundle)[0]?.resource as Json | undefined;
  t.equal(r?.resourceType, 'Observation');
  t.equal(r?.id, f.id('obs-ada-home'), 'id kept');
  t.equal(r?.status, 'final', 'status kept');
  t.ok(hasSubsetted(r), 'meta.tag has SUBSETTED');
  t.notOk(r?.valueQuantity, 'valueQuantity left out');
  t.notOk(r?.subject, 'subject left out');
  t.notOk(r?.note, 'note left out');
});

t.test('_revinclude=Observation:part-of adds the measurements of the matched sessions, as mode include', async (t) => {
  const bundle = await f.expect(t, `/fhir/Procedure?patient=${ada}&_revinclude=Observation:part-of`, ['sess-ada-1', 'sess-ada-2']);
  t.same(f.labels(bundle, 'include').sort(), ['obs-1a', 'obs-1b', 'obs-2a'], 'included: the three measurements taken during those sessions');
});

t.test('_include=Observation:patient includes the Patient once however many matches point at it', async (t) => {
  const bundle = await f.expect(t, `/fhir/Observation?patient=${ada}&_include=Observation:patient`, ['obs-1a', 'obs-1b', 'obs-2a', 'obs-ada-home']);
  t.same(f.labels(bundle, 'include'), ['ada'], 'Ada included exactly once');
  const all = await f.search(t, '/fhir/Observation?_include=Observation:patient');
  t.same(f.labels(all, 'include').sort(), ['ada', 'ben'], 'each patient once across all observations');
});

t.test('_include without :iterate does not follow references of included resources', async (t) => {
  const bundle = await f.expect(t, `/fhir/Observation?_id=${f.id('obs-1a')}&_include=Observation:part-of`, ['obs-1a']);
  t.same(f.labels(bundle, 'include'), ['sess-ada-1'], 'only the session');
  const typed = await f.search(t, `/fhir/Observation?_id=${f.id('obs-1a')}&_include=Observation:part-of:Procedure`);
  t.same(f.labels(typed, 'include'), ['sess-ada-1'], 'with a target type, the same session');
});

t.test('_include:iterate follows references of included resources', async (t) => {
  const url = `/fhir/Observation?_id=${f.id('obs-1a')}&_include=Observation:part-of&_include:iterate=Procedure:patient`;
  const bundle = await f.expect(t, url, ['obs-1a']);
  t.same(f.labels(bundle, 'include').sort(), ['ada', 'sess-ada-1'], 'the session, then its patient');
});

t.test('_revinclude:iterate: a patient, her sessions, and the measurements of those sessions', async (t) => {
  const url = `/fhir/Patient?_id=${ada}&_revinclude=Procedure:patient&_revinclude:iterate=Observation:part-of`;
  const bundle = await f.expect(t, url, ['ada']);
  t.same(f.labels(bundle, 'include').sort(), ['obs-1a', 'obs-1b', 'obs-2a', 'sess-ada-1', 'sess-ada-2'], 'not the home measurement (no part-of), nothing of Ben');
});

t.test('_include=Observation:* follows every reference parameter', async (t) => {
  const bundle = await f.expect(t, `/fhir/Observation?_id=${f.id('obs-1a')}&_include=${q('Observation:*')}`, ['obs-1a']);
  t.same(f.labels(bundle, 'include').sort(), ['ada', 'sess-ada-1'], 'the subject and the session');
});
