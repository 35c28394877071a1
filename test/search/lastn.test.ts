/**
 * Observation/$lastn (R4 OperationDefinition Observation-lastn; src/fhir/search/lastn.ts),
 * after R4's examples: the last vitals of a patient (category=vital-signs), the last 3
 * (max=3), the last results of several codes (code=a,b), a category filter; and what
 * Fascia chose where R4 leaves room: no patient → 400; each code value is a group; an
 * Observation with several codes is in each of their groups and returned once; the
 * result is ordered by code, then newest first, paged by keyset both ways; the caller's
 * scopes apply. A property checks $lastn against the general search it stands for: for
 * each code, `patient&code&_sort=-date&_count=max`.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import t from 'tap';
import { planner } from '../../src/fhir/search/timeline.js';
import { buildTestApp } from '../helper.js';
import { Fixture, LOINC, MEASURE, patientBody, q } from '../search-fixtures.js';
import { entries, link, localPath, type Json } from '../support.js';

const { app } = await buildTestApp(t);
const f = new Fixture(app);
const CAT = 'http://terminology.hl7.org/CodeSystem/observation-category';

const HR = { system: LOINC, code: '8867-4', display: 'Heart rate' };
const BP = { system: LOINC, code: '85354-9', display: 'Blood pressure panel' };
const TEMP = { system: LOINC, code: '8310-5', display: 'Body temperature' };
const GLUCOSE = { system: LOINC, code: '2339-0', display: 'Glucose' };
const SODIUM = { system: LOINC, code: '2951-2', display: 'Sodium' };

const obs = (patient: string, coding: Json[], category: string, date?: string, extra: Json = {}): Json => ({
  resourceType: 'Observation',
  status: 'final',
  category: [{ coding: [{ system: CAT, code: category }] }],
  code: { coding },
  subject: { reference: `Patient/${patient}` },
  ...(date ? { effectiveDateTime: date } : {}),
  ...extra,
});

await f.add('ann', patientBody('Anders', ['Ann']));
await f.add('bo', patientBody('Berg', ['Bo']));
const ann = f.id('ann');
const bo = f.id('bo');
await f.add('hr1', obs(ann, [HR], 'vital-signs', '2026-01-01T08:00:00Z'));
await f.add('hr3', obs(ann, [HR], 'vital-signs', '2026-01-03T08:00:00Z'));
await f.add('hr2', obs(ann, [HR], 'vital-signs', '2026-01-02T08:00:00Z'));
await f.add('hr4', obs(ann, [HR], 'vital-signs', '2026-01-04T08:00:00Z', { status: 'preliminary' }));
await f.add('bp1', obs(ann, [BP], 'vital-signs', '2026-01-01T09:00:00Z'));
await f.add('bp2', obs(ann, [BP], 'vital-signs', '2026-01-02T09:00:00Z'));
await f.add('temp-undated', obs(ann, [TEMP], 'vital-signs'));
await f.add('temp1', obs(ann, [TEMP], 'vital-signs', '2025-12-30'));
await f.add('glu1', obs(ann, [GLUCOSE], 'laboratory', '2026-01-01'));
await f.add('glu2', obs(ann, [GLUCOSE], 'laboratory', '2026-01-05'));
await f.add('na1', obs(ann, [SODIUM], 'laboratory', '2026-01-02'));
await f.add('bo-hr', obs(bo, [HR], 'vital-signs', '2026-02-01T08:00:00Z'));

const lastn = (query: string) => `/fhir/Observation/$lastn?${query}`;
const labels = async (t: Parameters<typeof f.search>[0], query: string, headers: Record<string, string> = {}) => f.labels(await f.search(t, lastn(query), headers));

t.test("R4's examples: the last vitals, the last 3, several codes, a category", async (t) => {
  // Ordered by code text (2339-0, 2951-2, 8310-5, 85354-9, 8867-4), then newest first.
  t.same(await labels(t, `patient=${ann}&category=vital-signs`), ['temp1', 'bp2', 'hr4']);
  t.same(await labels(t, `patient=Patient/${ann}&category=vital-signs&max=3`), ['temp1', 'temp-undated', 'bp2', 'bp1', 'hr4', 'hr3', 'hr2']);
  t.same(await labels(t, `subject=Patient/${ann}&code=${q(`${LOINC}|2339-0,${LOINC}|2951-2`)}`), ['glu2', 'na1']);
  t.same(await labels(t, `patient=${ann}&category=${q(`${CAT}|laboratory`)}&max=2`), ['glu2', 'glu1', 'na1']);
  t.same(await labels(t, `patient=${ann}`), ['glu2', 'na1', 'temp1', 'bp2', 'hr4'], 'no filter: every code of the patient');
  t.same(await labels(t, `patient=${bo}&max=5`), ['bo-hr'], "only the patient's own");
});

t.test('the usual search parameters narrow the Observations first', async (t) => {
  t.same(await labels(t, `patient=${ann}&code=${q(`${LOINC}|8867-4`)}&status=final`), ['hr3'], 'the last final heart rate');
  t.same(await labels(t, `patient=${ann}&code=8867-4&date=lt2026-01-03&max=5`), ['hr2', 'hr1'], 'the last before a date');
  t.same(await labels(t, `patient=${ann}&category=vital-signs&date=ge2026-01-02`), ['bp2', 'hr4']);
  const bundle = await f.search(t, lastn(`patient=${ann}&category=vital-signs&max=2&_total=accurate&_count=1`));
  t.equal(bundle.total, 6, '_total counts every Observation returned over all pages');
  const count = await f.search(t, lastn(`patient=${ann}&max=2&_summary=count`));
  t.equal(count.total, 9);
  const included = await f.search(t, lastn(`patient=${bo}&_include=Observation:patient`));
  t.same(f.labels(included, 'include'), ['bo'], '_include');
});

t.test('a multi-coded Observation is in each of its codes’ groups, returned once', async (t) => {
  await f.add('cy', patientBody('Cole', ['Cy']));
  const cy = f.id('cy');
  const PAIN = { system: LOINC, code: '72514-3' };
  const LOCAL = { system: MEASURE, code: 'pain-nrs' };
  await f.add('pain-both', obs(cy, [PAIN, LOCAL], 'survey', '2026-03-02'));
  await f.add('pain-loinc', obs(cy, [PAIN], 'survey', '2026-03-01'));
  await f.add('pain-local-old', obs(cy, [LOCAL], 'survey', '2026-02-01'));
  await f.add('pain-two-systems', obs(cy, [PAIN, { system: MEASURE, code: '72514-3' }], 'survey', '2026-01-01'));
  // Groups 72514-3 and pain-nrs both pick pain-both: listed once, under the first.
  t.same(await labels(t, `patient=${cy}`), ['pain-both']);
  t.same(await labels(t, `patient=${cy}&max=2`), ['pain-both', 'pain-loinc', 'pain-local-old']);
  // One code value in two systems is one group.
  t.same(await labels(t, `patient=${cy}&code=72514-3&max=5`), ['pain-both', 'pain-loinc', 'pain-two-systems']);
  t.same(await labels(t, `patient=${cy}&code=${q(`${MEASURE}|72514-3`)}&max=5`), ['pain-two-systems'], 'system|code: that coding only');
  t.same(await labels(t, `patient=${cy}&code=${q(`${MEASURE}|pain-nrs,${LOINC}|72514-3`)}&max=1`), ['pain-both'], 'two named codes, one Observation');
});

t.test('paging by keyset, forwards and back through previous links', async (t) => {
  const all = await labels(t, `patient=${ann}&max=3`);
  t.equal(all.length, 10);
  const forward: string[][] = [];
  let bundle = await f.search(t, lastn(`patient=${ann}&max=3&_count=3`));
  for (;;) {
    forward.push(f.labels(bundle));
    const next = link(bundle, 'next');
    if (!next || forward.length > 10) break;
    t.match(next, /\/fhir\/Observation\/\$lastn\?.*max=3/, 'the next link stays on $lastn with its max');
    bundle = (await app.inject({ url: localPath(next) })).json() as Json;
  }
  t.same(forward.flat(), all, 'pages in the order of one page');
  const back: string[][] = [f.labels(bundle)];
  for (;;) {
    const previous = link(bundle, 'previous');
    if (!previous || back.length > 10) break;
    bundle = (await app.inject({ url: localPath(previous) })).json() as Json;
    back.unshift(f.labels(bundle));
  }
  t.same(back, forward, 'previous links give the same pages');
});

t.test("the caller's scopes: the last n the caller may see", async (t) => {
  const final = (await app.auth!.operatorToken('system/Observation.rs?status=final')).access_token;
  t.same(await labels(t, `patient=${ann}&category=vital-signs`, { authorization: `Bearer ${final}` }), ['temp1', 'bp2', 'hr3']);
  const labOnly = (await app.auth!.operatorToken(`system/Observation.rs?category=${CAT}|laboratory`)).access_token;
  t.same(await labels(t, `patient=${ann}`, { authorization: `Bearer ${labOnly}` }), ['glu2', 'na1']);
  const noObservations = (await app.auth!.operatorToken('system/Patient.rs')).access_token;
  const res = await app.inject({ url: lastn(`patient=${ann}`), headers: { authorization: `Bearer ${noObservations}` } });
  t.equal(res.statusCode, 403, 'no Observation scope: 403');
});

t.test('what $lastn refuses (400)', async (t) => {
  for (const query of ['category=vital-signs', '', `patient=${ann},${bo}`, `subject=Group/${ann}`, `subject=${ann}`, `patient=${ann}&max=0`, `patient=${ann}&max=x`, `patient=${ann}&max=1&max=2`, `patient=${ann}&_sort=-date`]) {
    const res = await app.inject({ url: lastn(query) });
    t.equal(res.statusCode, 400, `$lastn?${query} → 400`);
    t.equal((res.json() as Json).resourceType, 'OperationOutcome');
  }
});

t.test('property: $lastn is, per code, the general search patient&code&_sort=-date&_count=max', async (t) => {
  const S = `https://codes.fascia.test/${randomBytes(3).toString('hex')}`;
  const CODES = [{ system: S, code: 'a' }, { system: S, code: 'b' }, { system: `${S}/other`, code: 'a' }, { system: S, code: 'c' }];
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ codes: fc.subarray(CODES, { minLength: 1 }), day: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }), final: fc.boolean(), lab: fc.boolean() }), { minLength: 1, maxLength: 12 }),
      fc.integer({ min: 1, max: 3 }),
      fc.constantFrom('', '&category=laboratory', '&status=final', '&date=ge2026-04-02'),
      async (records, max, filter) => {
        const patient = (await app.inject({ method: 'POST', url: '/fhir/Patient', headers: { 'content-type': 'application/fhir+json' }, payload: { resourceType: 'Patient' } })).json() as Json;
        for (const r of records) {
          const body = obs(String(patient.id), r.codes, r.lab ? 'laboratory' : 'vital-signs', r.day ? `2026-04-0${r.day}` : undefined, { status: r.final ? 'final' : 'preliminary' });
          const res = await app.inject({ method: 'POST', url: '/fhir/Observation', headers: { 'content-type': 'application/fhir+json' }, payload: body });
          if (res.statusCode !== 201) throw new Error(res.body);
        }
        const ids = (b: Json) => entries(b).filter((e) => e.search?.mode === 'match').map((e) => String(e.resource.id));
        const got = ids((await app.inject({ url: lastn(`patient=${patient.id}&max=${max}&_count=1000${filter}`) })).json() as Json);
        // Expected: for each code value in code order, the general search's first max; each id once, at its first group.
        const expected: string[] = [];
        planner.timeline = false;
        try {
          for (const code of [...new Set(records.flatMap((r) => r.codes.map((c) => c.code)))].sort()) {
            const general = ids((await app.inject({ url: `/fhir/Observation?patient=${patient.id}&code=${code}&_sort=-date&_count=${max}${filter}` })).json() as Json);
            for (const id of general) if (!expected.includes(id)) expected.push(id);
          }
        } finally {
          planner.timeline = true;
        }
        // Within the result, each group's ids come newest first; compare as sets per position-free check, then order.
        if (JSON.stringify([...got].sort()) !== JSON.stringify([...expected].sort())) throw new Error(`$lastn ${JSON.stringify(got)} ≠ general ${JSON.stringify(expected)}`);
        if (JSON.stringify(got) !== JSON.stringify(expected)) throw new Error(`order: $lastn ${JSON.stringify(got)} ≠ ${JSON.stringify(expected)}`);
      },
    ),
    { numRuns: Number(process.env.FASCIA_PROPERTY_RUNS ?? 15) },
  );
  t.pass('agreed');
});
