/**
 * _sort and paging (FHIR R4 search.html#sort, #count, http.html#paging): sort keys
 * ascending and descending, several keys, ties broken so that paging through a sorted
 * set returns each match exactly once in order; _count with its default and its cap;
 * next/previous links; writes landing between pages.
 */
import t from 'tap';
import { parseFhirJson } from '../../src/fhir/json.js';
import { buildTestApp } from '../helper.js';
import { type Asserts, Fixture, linkPath, MEASURE, painBody, patientBody, q, sleep, UCUM } from '../search-fixtures.js';
import { entries, inParallel, pages, type Json } from '../support.js';

const { app } = await buildTestApp(t);
const f = new Fixture(app);

const INITIAL_PATIENTS = 25;
await inParallel(INITIAL_PATIENTS, (i) => f.add(`pg${i}`, patientBody(`Paging${i}`, ['Pat'])));
const pat = f.id('pg0');

// Pain scores with distinct dates and statuses, created in this order (distinct lastUpdated).
const scores: [string, string, string][] = [
  ['s1', 'final', '2026-03-01T10:00:00Z'],
  ['s2', 'preliminary', '2026-03-05T10:00:00Z'],
  ['s3', 'amended', '2026-03-03T10:00:00Z'],
  ['s4', 'final', '2026-03-07T10:00:00Z'],
  ['s5', 'preliminary', '2026-03-02T10:00:00Z'],
];
for (const [label, status, date] of scores) {
  await f.add(label, painBody(pat, 4, date, undefined, { status }));
  await sleep(3);
}

// Range-of-motion measurements: seven at the same moment, created at once, between two others.
const rom = (date: string) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: MEASURE, code: 'ankle-dorsiflexion-rom' }] },
  subject: { reference: `Patient/${pat}` },
  effectiveDateTime: date,
  valueQuantity: { value: 35, system: UCUM, code: 'deg' },
});
await f.add('rom-first', rom('2026-03-03T10:00:00Z'));
await sleep(3);
await inParallel(7, (i) => f.add(`tie${i}`, rom('2026-03-04T10:00:00Z')));
await sleep(3);
await f.add('rom-last', rom('2026-03-05T10:00:00Z'));
// Grip strength: three with a date, two without (a sort key some matches lack).
const grip = (date?: string) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: MEASURE, code: 'grip-strength' }] },
  subject: { reference: `Patient/${pat}` },
  ...(date ? { effectiveDateTime: date } : {}),
  valueQuantity: { value: 30, system: UCUM, code: 'kg' },
});
for (const [label, date] of [['g1', '2026-03-01T10:00:00Z'], ['g2', '2026-03-02T10:00:00Z'], ['g3', '2026-03-03T10:00:00Z'], ['g-none-1', undefined], ['g-none-2', undefined]] as const) {
  await f.add(label, grip(date));
}
const GRIP = `code=${q(`${MEASURE}|grip-strength`)}`;
const ROM = `code=${q(`${MEASURE}|ankle-dorsiflexion-rom`)}`;
const PAIN = `code=${q('http://loinc.org|72514-3')}`;

const ordered = async (t: Asserts, url: string, expected: string[]) => {
  const bundle = await f.search(t, url);
  t.same(f.labels(bundle), expected, `${url} lists [${expected.join(', ')}] in that order`);
};

/** Every match of a search, following next links, as labels in order. */
const walk = async (url: string) => (await pages(app, url, { maxPages: 50 })).flatMap((b) => f.labels(b));

t.test('_sort on date ascending and descending', async (t) => {
  await ordered(t, `/fhir/Observation?${PAIN}&_sort=date`, ['s1', 's5', 's3', 's2', 's4']);
  await ordered(t, `/fhir/Observation?${PAIN}&_sort=-date`, ['s4', 's2', 's3', 's5', 's1']);
});

t.test('_sort on _lastUpdated ascending and descending', async (t) => {
  await ordered(t, `/fhir/Observation?${PAIN}&_sort=_lastUpdated`, ['s1', 's2', 's3', 's4', 's5']);
  await ordered(t, `/fhir/Observation?${PAIN}&_sort=-_lastUpdated`, ['s5', 's4', 's3', 's2', 's1']);
});

t.test('_sort on _id ascending and descending', async (t) => {
  const byId = ['s1', 's2', 's3', 's4', 's5'].sort((a, b) => (f.id(a) < f.id(b) ? -1 : 1));
  await ordered(t, `/fhir/Observation?${PAIN}&_sort=_id`, byId);
  await ordered(t, `/fhir/Observation?${PAIN}&_sort=-_id`, [...byId].reverse());
});

t.test('_sort with several keys: status ascending, then date descending within a status', async (t) => {
  await ordered(t, `/fhir/Observation?${PAIN}&_sort=status,-date`, ['s3', 's4', 's1', 's2', 's5']);
  await ordered(t, `/fhir/Observation?${PAIN}&_sort=-status,date`, ['s5', 's2', 's1', 's4', 's3']);
});

t.test('_sort with ties: paging by 2 returns each match once, dates never going backwards', async (t) => {
  for (const [sort, direction] of [['date', 1], ['-date', -1]] as const) {
    const url = `/fhir/Observation?${ROM}&_sort=${sort}&_count=2`;
    const all = await pages(app, url, { maxPages: 50 });
    t.equal(all.length, 5, `${url}: 9 matches in 5 pages`);
    const list = all.flatMap((b) => entries(b).filter((e) => e.search?.mode === 'match'));
    const labels = list.map((e) => f.labelOf(e.resource as Json));
    t.same([...labels].sort(), ['rom-first', 'rom-last', ...Array.from({ length: 7 }, (_, i) => `tie${i}`)].sort(), `${url}: each match exactly once`);
    const dates = list.map((e) => Date.parse(String(e.resource.effectiveDateTime)));
    t.ok(dates.every((d, i) => i === 0 || (d - dates[i - 1]!) * direction >= 0), `${url}: dates in ${sort} order across pages`);
    t.equal(labels[0], direction === 1 ? 'rom-first' : 'rom-last', `${url}: starts with the ${direction === 1 ? 'earliest' : 'latest'}`);
  }
});

t.test('_sort=_lastUpdated with ties (created at once): paging by 2 returns each once', async (t) => {
  const labels = await walk(`/fhir/Observation?${ROM}&_sort=_lastUpdated&_count=2`);
  t.equal(labels.length, 9, '9 matches');
  t.equal(new Set(labels).size, 9, 'no match twice');
  t.equal(labels[0], 'rom-first', 'the first created comes first');
  t.equal(labels[8], 'rom-last', 'the last created comes last');
});

/** Every page from the last one back to the first, following previous links. */
async function backwards(t: Asserts, last: Json): Promise<string[][]> {
  const out: string[][] = [];
  let page: Json | undefined = last;
  while (page && out.length < 50) {
    out.unshift(f.labels(page));
    const previous = linkPath(page, 'previous');
    page = previous ? await f.search(t, previous) : undefined;
  }
  return out;
}

t.test('paging back with previous links gives the same pages as paging forward', async (t) => {
  for (const url of [
    `/fhir/Observation?${PAIN}&_sort=status,-date&_count=2`,
    `/fhir/Observation?${ROM}&_sort=-date&_count=2`,
    `/fhir/Observation?${GRIP}&_sort=date&_count=2`,
    `/fhir/Observation?${GRIP}&_sort=-date&_count=2`,
  ]) {
    const forward = await pages(app, url, { maxPages: 50 });
    const labels = forward.map((b) => f.labels(b));
    const back = await backwards(t, forward[forward.length - 1]!);
    t.same(back, labels, `${url}: previous links from the last page retrace the same pages`);
  }
});

t.test('paging a sort on a parameter some matches lack: each match exactly once, dated ones in order', async (t) => {
  for (const sort of ['date', '-date']) {
    const labels = await walk(`/fhir/Observation?${GRIP}&_sort=${sort}&_count=2`);
    t.same([...labels].sort(), ['g-none-1', 'g-none-2', 'g1', 'g2', 'g3'], `_sort=${sort}: each of the 5 once`);
    const dated = labels.filter((l) => !l.startsWith('g-none'));
    t.same(dated, sort === 'date' ? ['g1', 'g2', 'g3'] : ['g3', 'g2', 'g1'], `_sort=${sort}: the dated ones in order`);
  }
  const unpaged = f.labels(await f.search(t, `/fhir/Observation?${PAIN}&_sort=status,-date`));
  t.same(await walk(`/fhir/Observation?${PAIN}&_sort=status,-date&_count=2`), unpaged, 'status,-date paged by 2 = unpaged order');
});

t.test('_count defaults to 20: 25 Patients give a first page of 20 and a next link', async (t) => {
  const first = await f.search(t, '/fhir/Patient');
  t.equal(entries(first).length, 20, 'first page has 20 entries');
  t.ok(linkPath(first, 'next'), 'first page has a next link');
  const all = await walk('/fhir/Patient');
  t.equal(all.length, INITIAL_PATIENTS, 'following next returns all 25');
  t.equal(new Set(all).size, INITIAL_PATIENTS, 'each once');
});

t.test('_count=n gives pages of n; next then previous returns the first page again', async (t) => {
  const first = await f.search(t, '/fhir/Patient?_count=10');
  t.equal(entries(first).length, 10, 'first page has 10 entries');
  t.notOk(linkPath(first, 'previous'), 'the first page has no previous link');
  const second = await f.search(t, linkPath(first, 'next') ?? '/missing-next-link');
  t.equal(entries(second).length, 10, 'second page has 10 entries');
  t.same(f.labels(second).filter((l) => f.labels(first).includes(l)), [], 'no overlap between pages 1 and 2');
  const previous = linkPath(second, 'previous');
  t.ok(previous, 'the second page has a previous link');
  const back = await f.search(t, previous ?? '/missing-previous-link');
  t.same(f.labels(back), f.labels(first), 'previous of page 2 is page 1, same entries in the same order');
  const third = await f.search(t, linkPath(second, 'next') ?? '/missing-next-link');
  t.equal(entries(third).length, 5, 'third page has the last 5');
  t.notOk(linkPath(third, 'next'), 'the last page has no next link');
});

t.test('paging while matching resources are created between pages: no duplicates, nothing that existed is lost', async (t) => {
  for (const sort of ['', '&_sort=_lastUpdated', '&_sort=-_lastUpdated', '&_sort=family']) {
    const before = new Set((await walk(`/fhir/Patient?_count=50`)));
    let n = 0;
    const all = await pages(app, `/fhir/Patient?_count=7${sort}`, {
      maxPages: 50,
      between: async () => {
        await inParallel(2, () => f.add(`new-${sort}-${n++}`, patientBody(`Paging${String(n).padStart(3, '0')}`, ['New'])));
      },
    });
    const seen = all.flatMap((b) => f.labels(b));
    t.equal(new Set(seen).size, seen.length, `_count=7${sort}: no resource on two pages`);
    const missing = [...before].filter((l) => !seen.includes(l));
    t.same(missing, [], `_count=7${sort}: every Patient that existed at the start is seen`);
    t.ok(n > 0, 'resources were created between pages');
  }
});

t.test('_count above 1000 is capped at 1000', async (t) => {
  const items = Array.from({ length: 1005 }, (_, i) => ({
    type: 'Condition',
    body: parseFhirJson(JSON.stringify({ resourceType: 'Condition', subject: { reference: `Patient/${pat}` }, note: [{ text: `bulk ${i}` }] })),
  }));
  await app.repo.createMany(items);
  const bundle = await f.search(t, '/fhir/Condition?_count=5000');
  t.equal(entries(bundle).length, 1000, '_count=5000 returns a page of 1000');
  const next = linkPath(bundle, 'next');
  t.ok(next, 'and a next link to the rest');
  const rest = await f.search(t, next ?? '/missing-next-link');
  t.equal(entries(rest).length, 5, 'the next page has the remaining 5');
  const exact = await f.search(t, '/fhir/Condition?_count=1000&_total=accurate');
  t.equal(entries(exact).length, 1000, '_count=1000 is honoured');
  t.equal(exact.total, 1005, '_total=accurate counts every match');
});
