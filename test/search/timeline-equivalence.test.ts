/**
 * Issue 18: the patient-timeline plan (src/fhir/search/timeline.ts) and the general plan
 * return the same ids in the same order. A property (fast-check) over random records of
 * two patients (codes in one or two systems, several codes, categories, dated, undated,
 * periods, month-precision dates, ties at one instant, a Group subject) and random
 * searches (patient or subject=Patient/, one code or category, date bounds of every
 * prefix, _sort=-date / date / none, _count, a status filter, _total=accurate) under
 * three callers (admin, a granular scope, a patient/ token): every page through the next
 * links, then back through the previous links, with the timeline on and then off
 * (`planner.timeline`, the switch this test alone turns). Then keyset paging under
 * concurrent writes: each resource that existed before the walk and was not touched is
 * seen exactly once, forwards and backwards, and no page repeats a resource.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import t from 'tap';
import { PgDialect } from 'drizzle-orm/pg-core';
import { pageQuery } from '../../src/fhir/search/engine.js';
import { parseSearchRequest } from '../../src/fhir/search/request.js';
import { planner } from '../../src/fhir/search/timeline.js';
import { EVERYTHING } from '../../src/fhir/visibility.js';
import { withToken } from '../helper.js';
import { securityApp } from '../security/helper.js';
import { BASE, entries, link, localPath, type Json } from '../support.js';

const NUM_RUNS = Number(process.env.FASCIA_PROPERTY_RUNS ?? 25);
const s = await securityApp(t);
withToken(s.app, s.admin);
const granular = await s.system('system/Observation.rs?status=final system/Patient.rs');

const S1 = `https://codes.fascia.test/${randomBytes(3).toString('hex')}/one`;
const S2 = `https://codes.fascia.test/${randomBytes(3).toString('hex')}/two`;
const CAT = 'http://terminology.hl7.org/CodeSystem/observation-category';
const CODINGS = [
  { system: S1, code: 'c1' },
  { system: S2, code: 'c1' },
  { system: S1, code: 'c2' },
  { code: 'c2' },
  { system: S2, code: 'c3' },
];
const CATEGORIES = [
  { system: CAT, code: 'vital-signs' },
  { system: CAT, code: 'exam' },
  { system: S1, code: 'vital-signs' },
];

// Dates close together, so ties and overlaps are common.
const day = fc.integer({ min: 1, max: 6 }).map((d) => `2026-01-0${d}`);
const instant = fc.tuple(day, fc.constantFrom('00', '06', '12')).map(([d, h]) => `${d}T${h}:00:00Z`);
const effective = fc.oneof(
  fc.constant({}),
  day.map((d) => ({ effectiveDateTime: d })),
  instant.map((d) => ({ effectiveDateTime: d })),
  fc.constant({ effectiveDateTime: '2026-01' }),
  fc.tuple(instant, fc.option(instant, { nil: undefined })).map(([a, b]) => ({ effectivePeriod: b && b > a ? { start: a, end: b } : { start: a } })),
);
const record = fc.record({
  subject: fc.constantFrom(0, 0, 1, 2),
  codings: fc.subarray(CODINGS, { minLength: 1 }),
  categories: fc.subarray(CATEGORIES),
  effective,
  status: fc.constantFrom('final', 'preliminary'),
});

const tokenArb = (list: { system?: string; code: string }[]) =>
  fc.tuple(fc.constantFrom(...list), fc.constantFrom('system', 'code', 'nosystem')).map(([c, form]) =>
    form === 'code' ? c.code : form === 'nosystem' ? `|${c.code}` : `${c.system ?? ''}|${c.code}`,
  );
const dateParam = fc.tuple(fc.constantFrom('', 'eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb'), fc.oneof(day, instant, fc.constant('2026-01'))).map(([p, v]) => p + v);
const query = fc.record({
  patientForm: fc.constantFrom('patient=ID', 'subject=Patient/ID', 'patient=Patient/ID'),
  key: fc.oneof(tokenArb(CODINGS).map((v) => `code=${encodeURIComponent(v)}`), tokenArb(CATEGORIES).map((v) => `category=${encodeURIComponent(v)}`), fc.constant('')),
  dates: fc.array(dateParam, { maxLength: 2 }),
  sort: fc.constantFrom('', '', '_sort=-date', '_sort=date'),
  count: fc.integer({ min: 1, max: 5 }),
  status: fc.constantFrom('', '', 'status=final'),
  caller: fc.constantFrom('admin', 'admin', 'granular', 'patient'),
});

/** Every page from `url` through next links, then back through previous links. */
async function walk(url: string, authorization: string | undefined): Promise<{ forward: string[][]; backward: string[][]; total: unknown }> {
  const headers = authorization ? { authorization } : {};
  const get = async (u: string) => {
    const res = await s.app.inject({ url: u, headers });
    if (res.statusCode !== 200) throw new Error(`GET ${u} → ${res.statusCode} ${res.body}`);
    return res.json() as Json;
  };
  const ids = (b: Json) => entries(b).filter((e) => e.search?.mode === 'match').map((e) => String(e.resource.id));
  const forward: string[][] = [];
  let bundle = await get(url);
  const total = bundle.total;
  for (;;) {
    forward.push(ids(bundle));
    const next = link(bundle, 'next');
    if (!next || forward.length > 60) break;
    bundle = await get(localPath(next));
  }
  const backward: string[][] = [ids(bundle)];
  for (;;) {
    const previous = link(bundle, 'previous');
    if (!previous || backward.length > 60) break;
    bundle = await get(localPath(previous));
    backward.unshift(ids(bundle));
  }
  return { forward, backward, total };
}

/** Whether the engine answers a search with the timeline (the SQL it builds). */
const usesTimeline = (q: string) =>
  new PgDialect().sqlToQuery(pageQuery(parseSearchRequest('Observation', [...new URLSearchParams(q)], BASE, EVERYTHING)).query).sql.includes('search_timeline');

t.test('the timeline and the general plan return the same ids in the same order', async (t) => {
  let compared = 0;
  let timeline = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(record, { minLength: 1, maxLength: 16 }), fc.array(query, { minLength: 1, maxLength: 4 }), async (records, queries) => {
      const entry = (resource: Json, fullUrl: string) => ({ fullUrl, resource, request: { method: 'POST', url: resource.resourceType } });
      const patients = [0, 1].map((i) => entry({ resourceType: 'Patient', name: [{ family: `Timeline${i}` }] }, `urn:uuid:${crypto.randomUUID()}`));
      const group = entry({ resourceType: 'Group', type: 'person', actual: true }, `urn:uuid:${crypto.randomUUID()}`);
      const observations = records.map((r) =>
        entry(
          {
            resourceType: 'Observation',
            status: r.status,
            code: { coding: r.codings },
            ...(r.categories.length ? { category: r.categories.map((c) => ({ coding: [c] })) } : {}),
            subject: { reference: r.subject === 2 ? group.fullUrl : patients[r.subject]!.fullUrl },
            ...r.effective,
          },
          `urn:uuid:${crypto.randomUUID()}`,
        ),
      );
      const res = await s.app.inject({
        method: 'POST',
        url: '/fhir',
        headers: { 'content-type': 'application/fhir+json' },
        payload: { resourceType: 'Bundle', type: 'transaction', entry: [...patients, group, ...observations] },
      });
      if (res.statusCode !== 200) throw new Error(`transaction → ${res.statusCode} ${res.body}`);
      const ids = (res.json() as Json).entry.map((e: Json) => String(e.response.location).split('/')[1]) as string[];
      const patientIds = ids.slice(0, 2);
      const patientToken = await s.patientToken(patientIds[0]!);
      for (const q of queries) {
        const params = [q.patientForm.replace('ID', patientIds[0]!), q.key, ...q.dates.map((d) => `date=${encodeURIComponent(d)}`), q.sort, q.status, `_count=${q.count}`, '_total=accurate'];
        const search = params.filter(Boolean).join('&');
        const url = `/fhir/Observation?${search}`;
        const authorization = q.caller === 'granular' ? `Bearer ${granular}` : q.caller === 'patient' ? `Bearer ${patientToken}` : undefined;
        if (usesTimeline(search)) timeline++;
        planner.timeline = true;
        const fast = await walk(url, authorization);
        planner.timeline = false;
        let general: Awaited<ReturnType<typeof walk>>;
        try {
          general = await walk(url, authorization);
        } finally {
          planner.timeline = true;
        }
        compared++;
        const flat = fast.forward.flat();
        const context = `${url} (${q.caller})`;
        if (new Set(flat).size !== flat.length) throw new Error(`${context}: a resource on two pages: ${JSON.stringify(fast.forward)}`);
        if (JSON.stringify(flat) !== JSON.stringify(general.forward.flat())) {
          throw new Error(`${context}: timeline ${JSON.stringify(fast.forward)} ≠ general ${JSON.stringify(general.forward)}`);
        }
        if (JSON.stringify(fast.backward.flat()) !== JSON.stringify(flat)) throw new Error(`${context}: previous links ${JSON.stringify(fast.backward)} ≠ ${JSON.stringify(fast.forward)}`);
        if (JSON.stringify(general.backward.flat()) !== JSON.stringify(flat)) throw new Error(`${context}: general previous links differ`);
        if (fast.total !== flat.length || general.total !== flat.length) throw new Error(`${context}: _total ${String(fast.total)} / ${String(general.total)}, ${flat.length} matches`);
      }
    }),
    { numRuns: NUM_RUNS },
  );
  t.ok(compared > 0, `${compared} searches compared`);
  t.ok(timeline > compared / 2, `${timeline} of them answered by the timeline`);
});

t.test('keyset paging stays exact under concurrent writes, in both directions', async (t) => {
  const patient = (await s.app.inject({ method: 'POST', url: '/fhir/Patient', headers: { 'content-type': 'application/fhir+json' }, payload: { resourceType: 'Patient' } })).json() as Json;
  const obs = (date: string | undefined) => ({
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [CODINGS[0]] },
    category: [{ coding: [CATEGORIES[0]] }],
    subject: { reference: `Patient/${patient.id}` },
    ...(date ? { effectiveDateTime: date } : {}),
  });
  const create = async (date: string | undefined) =>
    String(((await s.app.inject({ method: 'POST', url: '/fhir/Observation', headers: { 'content-type': 'application/fhir+json' }, payload: obs(date) })).json() as Json).id);
  const dateAt = (i: number) => (i % 7 === 0 ? undefined : `2026-02-${String(1 + (i % 20)).padStart(2, '0')}T${i % 2 ? '08' : '20'}:00:00Z`);
  const before: string[] = [];
  for (let i = 0; i < 40; i++) before.push(await create(dateAt(i)));
  let n = 1000;
  for (const search of [`code=${encodeURIComponent(`${S1}|c1`)}`, `category=vital-signs`, '_sort=-date', `code=c1&_sort=date`]) {
    const url = `/fhir/Observation?patient=${patient.id}&${search}&_count=3`;
    t.ok(usesTimeline(`patient=${patient.id}&${search}`), `${search}: the timeline`);
    // A writer running beside the walk, and a write between every two pages, on both sides of the boundary.
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing && i < 20; i++) await create(dateAt(n++));
    })();
    const seen: string[] = [];
    let bundle = (await s.app.inject({ url })).json() as Json;
    for (;;) {
      seen.push(...entries(bundle).map((e) => String(e.resource.id)));
      await create(dateAt(n++));
      const next = link(bundle, 'next');
      if (!next) break;
      bundle = (await s.app.inject({ url: localPath(next) })).json() as Json;
    }
    const back: string[] = [];
    for (;;) {
      back.unshift(...entries(bundle).map((e) => String(e.resource.id)));
      await create(dateAt(n++));
      const previous = link(bundle, 'previous');
      if (!previous) break;
      bundle = (await s.app.inject({ url: localPath(previous) })).json() as Json;
    }
    writing = false;
    await writer;
    t.equal(new Set(seen).size, seen.length, `${search}: forwards, no resource twice`);
    t.same(before.filter((id) => !seen.includes(id)), [], `${search}: forwards, every resource that was there before`);
    t.equal(new Set(back).size, back.length, `${search}: backwards, no resource twice`);
    t.same(before.filter((id) => !back.includes(id)), [], `${search}: backwards, every resource that was there before`);
  }
});
