/**
 * The patient timeline (src/fhir/search/timeline.ts): `patient + code [+ date]` searches
 * read search_timeline. They must find exactly what the general plan finds (search.html:
 * a reference matches its target, a token system|code one coding, a date prefix the
 * value's range), newest first without _sort (FHIR R4 defines no default order), page
 * exactly once in both directions, count for _total, follow updates and deletes, and keep
 * to what the caller may see. The general plan answers the same question when the code
 * is given twice (`code=a,a`): a second opinion on the same data.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import { buildTestApp } from '../helper.js';
import { Fixture, LOINC, MEASURE, PAIN_CODE, painBody, patientBody, q, sessionBody, TECHNIQUE } from '../search-fixtures.js';
import { entries, link, localPath, pages, put, type Json } from '../support.js';

const { app, database } = await buildTestApp(t);
const f = new Fixture(app);

await f.add('ada', patientBody('Achebe', ['Ada']));
await f.add('ben', patientBody('Brandt', ['Ben']));
const ada = f.id('ada');
const ben = f.id('ben');

// Ada's pain scores on distinct days (created out of date order), one at the same instant as another, one undated.
const days: [string, string][] = [
  ['p-0301', '2026-03-01T10:00:00Z'],
  ['p-0305', '2026-03-05T10:00:00Z'],
  ['p-0303', '2026-03-03T10:00:00Z'],
  ['p-0307', '2026-03-07T10:00:00Z'],
  ['p-0302', '2026-03-02T10:00:00Z'],
  ['p-0303b', '2026-03-03T10:00:00Z'],
  ['p-0310', '2026-03-10'],
];
for (const [label, date] of days) await f.add(label, painBody(ada, 4, date));
await f.add('p-undated', painBody(ada, 5));
// Coded twice with the same code under two systems: one match, not two.
await f.add('p-dual', painBody(ada, 6, '2026-03-04T10:00:00Z', undefined, { code: { coding: [PAIN_CODE, { system: MEASURE, code: '72514-3' }] } }));
// A period: matches a date when any part of it does.
await f.add('p-period', painBody(ada, 3, undefined, undefined, { effectivePeriod: { start: '2026-02-27T08:00:00Z', end: '2026-03-02T08:00:00Z' } }));
// Other codes and other patients stay out.
await f.add('grip', { resourceType: 'Observation', status: 'final', code: { coding: [{ system: MEASURE, code: 'grip-strength' }] }, subject: { reference: `Patient/${ada}` }, effectiveDateTime: '2026-03-06T10:00:00Z' });
await f.add('ben-0306', painBody(ben, 7, '2026-03-06T10:00:00Z'));
await f.add('ben-0308', painBody(ben, 2, '2026-03-08T10:00:00Z', undefined, { status: 'preliminary' }));
await f.add('group-subject', painBody(ada, 1, '2026-03-06T12:00:00Z', undefined, { subject: { reference: `Group/${ada}` } }));

const PAIN = `code=${q(`${LOINC}|72514-3`)}`;
/** The same filter, given twice: the general plan's answer. */
const PAIN_GENERAL = `code=${q(`${LOINC}|72514-3,${LOINC}|72514-3`)}`;
const ADA_PAIN = ['p-0301', 'p-0302', 'p-0303', 'p-0303b', 'p-0305', 'p-0307', 'p-0310', 'p-undated', 'p-dual', 'p-period'];

const dateOf = (r: Json) => Date.parse(String(r.effectiveDateTime ?? r.effectivePeriod?.start ?? ''));

t.test('patient + code finds each of the patient\'s matches once, newest first, the undated last', async (t) => {
  const bundle = await f.expect(t, `/fhir/Observation?patient=${ada}&${PAIN}`, ADA_PAIN);
  const labels = f.labels(bundle);
  t.equal(labels[0], 'p-0310', 'the newest first');
  t.equal(labels.at(-1), 'p-undated', 'the one without a date last');
  const dates = entries(bundle).slice(0, -1).map((e) => dateOf(e.resource as Json));
  t.ok(dates.every((d, i) => i === 0 || d <= dates[i - 1]!), 'dates never rise');
  await f.expect(t, `/fhir/Observation?patient=${ada}&${PAIN_GENERAL}`, ADA_PAIN);
  await f.expect(t, `/fhir/Observation?subject=Patient/${ada}&${PAIN}`, ADA_PAIN);
  await f.expect(t, `/fhir/Observation?patient:Patient=${ada}&${PAIN}`, ADA_PAIN);
  await f.expect(t, `/fhir/Observation?patient=Patient/${ada}&code=72514-3`, [...ADA_PAIN]);
  await f.expect(t, `/fhir/Observation?patient=${ada}&code=${q(`${MEASURE}|72514-3`)}`, ['p-dual']);
  await f.expect(t, `/fhir/Observation?patient=${ben}&${PAIN}`, ['ben-0306', 'ben-0308']);
  await f.expect(t, `/fhir/Observation?patient=Group/${ada}&${PAIN}`, []);
  await f.expect(t, `/fhir/Observation?subject=Group/${ada}&${PAIN}`, ['group-subject']);
});

t.test('patient + code + date: each prefix as the general plan answers it', async (t) => {
  const cases: [string, string[]][] = [
    ['ge2026-03-05', ['p-0305', 'p-0307', 'p-0310']],
    ['gt2026-03-05', ['p-0307', 'p-0310']],
    ['le2026-03-02', ['p-0301', 'p-0302', 'p-period']],
    ['lt2026-03-02', ['p-0301', 'p-period']],
    ['eq2026-03-03', ['p-0303', 'p-0303b']],
    ['2026-03', ['p-0301', 'p-0302', 'p-0303', 'p-0303b', 'p-0305', 'p-0307', 'p-0310', 'p-dual']],
    ['ne2026-03-03', ['p-0301', 'p-0302', 'p-0305', 'p-0307', 'p-0310', 'p-dual', 'p-period']],
    ['sa2026-03-07', ['p-0310']],
    ['eb2026-03-02', ['p-0301']],
    ['ge2026-03-01T09:00:00Z', ['p-0301', 'p-0302', 'p-0303', 'p-0303b', 'p-0305', 'p-0307', 'p-0310', 'p-dual', 'p-period']],
  ];
  for (const [value, expected] of cases) {
    await f.expect(t, `/fhir/Observation?patient=${ada}&${PAIN}&date=${q(value)}`, expected);
    await f.expect(t, `/fhir/Observation?patient=${ada}&${PAIN_GENERAL}&date=${q(value)}`, expected);
  }
  await f.expect(t, `/fhir/Observation?patient=${ada}&${PAIN}&date=ge2026-03-02&date=lt2026-03-05`, ['p-0302', 'p-0303', 'p-0303b', 'p-dual', 'p-period']);
  await f.expect(t, `/fhir/Observation?patient=${ada}&${PAIN}&date=lt2026-03-02,ge2026-03-07`, ['p-0301', 'p-period', 'p-0307', 'p-0310']);
  await f.expect(t, `/fhir/Observation?patient=${ada}&${PAIN}&date:missing=true`, ['p-undated']);
  await f.expect(t, `/fhir/Observation?patient=${ben}&${PAIN}&date=ge2026-03-07&status=final`, []);
  await f.expect(t, `/fhir/Observation?patient=${ben}&${PAIN}&status=final`, ['ben-0306']);
});

t.test('the latest pain score: _sort=-date&_count=1, and _sort=date oldest first with the undated last', async (t) => {
  t.same(f.labels(await f.search(t, `/fhir/Observation?patient=${ada}&${PAIN}&_sort=-date&_count=1`)), ['p-0310']);
  t.same(f.labels(await f.search(t, `/fhir/Observation?patient=${ben}&${PAIN}&_sort=-date&_count=1`)), ['ben-0308']);
  const asc = f.labels(await f.search(t, `/fhir/Observation?patient=${ada}&${PAIN}&_sort=date`));
  t.equal(asc[0], 'p-period', 'the period starting first comes first');
  t.equal(asc.at(-1), 'p-undated', 'the undated last, oldest first too');
  const general = f.labels(await f.search(t, `/fhir/Observation?patient=${ada}&${PAIN_GENERAL}&_sort=date`));
  t.same(asc, general, 'the same order as the general plan, ties by id');
  const desc = f.labels(await f.search(t, `/fhir/Observation?patient=${ada}&${PAIN}&_sort=-date`));
  t.same(desc, f.labels(await f.search(t, `/fhir/Observation?patient=${ada}&${PAIN}`)), 'no _sort is -date');
});

t.test('paging by 2 returns every match once, forwards and back through previous links', async (t) => {
  for (const sort of ['', '&_sort=-date', '&_sort=date']) {
    const url = `/fhir/Observation?patient=${ada}&${PAIN}${sort}&_count=2`;
    const all = await pages(app, url, { maxPages: 20 });
    const forward = all.map((b) => f.labels(b));
    t.same(forward.flat().sort(), [...ADA_PAIN].sort(), `${url}: each match exactly once`);
    t.equal(all.length, 5, `${url}: 10 matches in 5 pages`);
    const single = f.labels(await f.search(t, `/fhir/Observation?patient=${ada}&${PAIN}${sort}&_count=100`));
    t.same(forward.flat(), single, `${url}: pages in the order of one big page`);
    // Back from the last page.
    const back: string[][] = [];
    let page: Json | undefined = all.at(-1);
    while (page) {
      back.unshift(f.labels(page));
      const previous = link(page, 'previous');
      page = previous ? (await app.inject({ url: localPath(previous) })).json() : undefined;
      if (back.length > 10) break;
    }
    t.same(back, forward, `${url}: previous links give the same pages`);
  }
});

t.test('_total=accurate counts the matches; _summary=count too', async (t) => {
  const bundle = await f.search(t, `/fhir/Observation?patient=${ada}&${PAIN}&_total=accurate&_count=1`);
  t.equal(bundle.total, ADA_PAIN.length);
  const dated = await f.search(t, `/fhir/Observation?patient=${ada}&${PAIN}&date=ge2026-03-05&_summary=count`);
  t.equal(dated.total, 3);
});

t.test('writes move the timeline: a new code, a new date, a new subject, a deletion, a revival', async (t) => {
  await f.add('moving', painBody(ada, 4, '2026-04-01T10:00:00Z'));
  const base = f.resource('moving');
  t.same(f.labels(await f.search(t, `/fhir/Observation?patient=${ada}&${PAIN}&_count=1`)), ['moving'], 'the newest');
  let res = await put(app, { ...base, effectiveDateTime: '2025-01-01T10:00:00Z' });
  t.equal(res.statusCode, 200);
  await f.expect(t, `/fhir/Observation?patient=${ada}&${PAIN}&date=lt2026-01-01`, ['moving']);
  res = await put(app, { ...base, code: { coding: [{ system: MEASURE, code: 'grip-strength' }] } });
  await f.expect(t, `/fhir/Observation?patient=${ada}&code=${q(`${MEASURE}|grip-strength`)}`, ['grip', 'moving']);
  await f.expect(t, `/fhir/Observation?patient=${ada}&${PAIN}&date=lt2026-01-01`, []);
  res = await put(app, { ...base, subject: { reference: `Patient/${ben}` } });
  await f.expect(t, `/fhir/Observation?patient=${ben}&${PAIN}&date=ge2026-04-01`, ['moving']);
  const del = await app.inject({ method: 'DELETE', url: `/fhir/Observation/${f.id('moving')}` });
  t.ok(del.statusCode === 200 || del.statusCode === 204, 'deleted');
  await f.expect(t, `/fhir/Observation?patient=${ben}&${PAIN}&date=ge2026-04-01`, []);
  res = await put(app, base);
  t.ok(res.statusCode === 200 || res.statusCode === 201, `revived (${res.statusCode})`);
  await f.expect(t, `/fhir/Observation?patient=${ada}&${PAIN}&date=ge2026-04-01`, ['moving']);
  const rows = await database.db.execute(sql`SELECT param, count(*)::int AS n FROM search_timeline WHERE resource_id = ${f.id('moving')} GROUP BY param ORDER BY param`);
  t.same(rows.rows, [{ param: 'timeline:any', n: 1 }, { param: 'timeline:code', n: 1 }], 'one row of each walk after all that');
});

t.test('Procedure sessions: patient + code + date, newest first', async (t) => {
  await f.add('s1', sessionBody(ada, 'astym', '2026-03-01T10:00:00Z', '2026-03-01T10:30:00Z'));
  await f.add('s2', sessionBody(ada, 'astym', '2026-03-04T10:00:00Z', '2026-03-04T10:30:00Z'));
  await f.add('s3', sessionBody(ada, 'graston', '2026-03-05T10:00:00Z', '2026-03-05T10:30:00Z'));
  const bundle = await f.search(t, `/fhir/Procedure?patient=${ada}&code=${q(`${TECHNIQUE}|astym`)}`);
  t.same(f.labels(bundle), ['s2', 's1']);
  await f.expect(t, `/fhir/Procedure?patient=${ada}&code=${q(`${TECHNIQUE}|astym`)}&date=ge2026-03-02`, ['s2']);
});

t.test('the caller\'s visibility still applies (a granular scope)', async (t) => {
  const token = (await app.auth!.operatorToken('system/Observation.rs?status=preliminary')).access_token;
  const bundle = await f.search(t, `/fhir/Observation?patient=${ben}&${PAIN}`, { authorization: `Bearer ${token}` });
  t.same(f.labels(bundle), ['ben-0308'], 'only what the scope allows');
  const latest = await f.search(t, `/fhir/Observation?patient=${ben}&${PAIN}&_sort=-date&_count=1&_total=accurate`, { authorization: `Bearer ${token}` });
  t.same(f.labels(latest), ['ben-0308']);
  t.equal(latest.total, 1, 'the total counts only the visible');
});

t.test('migration 0010 derives the rows the indexer writes', async (t) => {
  const rowsNow = async () =>
    (await database.db.execute(sql`SELECT resource_type, resource_id, param, patient_id, code, systems, start, "end" FROM search_timeline ORDER BY 1, 2, 3, 5`)).rows;
  const written = await rowsNow();
  t.ok(written.length > 10, `${written.length} rows written`);
  const migration = readFileSync(new URL('../../drizzle/0010_patient_timeline.sql', import.meta.url), 'utf8');
  const insert = migration.split('--> statement-breakpoint').find((s) => s.includes('INSERT INTO "search_timeline"'))!;
  await database.db.transaction(async (tx) => {
    await tx.execute(sql`DELETE FROM search_timeline`);
    await tx.execute(sql.raw(insert));
    t.same(await (async () => (await tx.execute(sql`SELECT resource_type, resource_id, param, patient_id, code, systems, start, "end" FROM search_timeline ORDER BY 1, 2, 3, 5`)).rows)(), written, 'the same rows');
  });
});

t.test('which searches the timeline answers (the SQL the engine builds)', async (t) => {
  const { pageQuery } = await import('../../src/fhir/search/engine.js');
  const { parseSearchRequest } = await import('../../src/fhir/search/request.js');
  const { PgDialect } = await import('drizzle-orm/pg-core');
  const { EVERYTHING } = await import('../../src/fhir/visibility.js');
  const text = (type: string, query: string) =>
    new PgDialect().sqlToQuery(pageQuery(parseSearchRequest(type, [...new URLSearchParams(query)], 'http://fascia.test', EVERYTHING)).query).sql;
  const uses = (type: string, query: string) => text(type, query).includes('search_timeline');
  for (const query of [`patient=${ada}&${PAIN}`, `patient=${ada}&${PAIN}&date=ge2026-01-01`, `patient=${ada}&code=72514-3&_sort=-date&_count=1`, `subject=Patient/${ada}&${PAIN}&status=final`, `patient=${ada}&${PAIN}&_sort=date`, `patient=${ada}&_sort=-date`, `patient=${ada}&category=vital-signs`, `patient=${ada}&category=vital-signs&_sort=date&date=ge2026`]) {
    t.ok(uses('Observation', query), `Observation?${query}: the timeline`);
  }
  t.ok(uses('Procedure', `patient=${ada}&code=astym`), 'Procedure too');
  for (const [type, query] of [
    ['Observation', `patient=${ada}`],
    ['Observation', PAIN],
    ['Observation', `patient=${ada}&${PAIN_GENERAL}`],
    ['Observation', `patient=${ada},${ben}&${PAIN}`],
    ['Observation', `subject=${ada}&${PAIN}`],
    ['Observation', `patient=${ada}&code:not=${q(`${LOINC}|72514-3`)}`],
    ['Observation', `patient=${ada}&${PAIN}&_sort=status`],
    ['Observation', `patient=${ada}&_sort=-date,_id`],
    ['Observation', `patient=${ada}&category=a,b`],
    ['Observation', `patient=${ada}&code=${q(`${LOINC}|`)}`],
    ['Condition', `patient=${ada}&code=x`],
  ] as const) {
    t.notOk(uses(type, query), `${type}?${query}: the general plan`);
  }
});
