/**
 * Date, quantity and composite search (FHIR R4 search.html#date, #quantity,
 * #composite, #prefix, #lastUpdated). Every expected set below follows from the rules
 * applied to the values seeded here: a date or dateTime is the range it covers (a day, a
 * second…), a Period is [start, end] with a missing end as ongoing, and a decimal
 * without a prefix covers its implicit precision (5.4 → [5.35, 5.45)).
 */
import t from 'tap';
import { buildTestApp } from '../helper.js';
import { Fixture, LOINC, MEASURE, PAIN_CODE, painBody, patientBody, q, sessionBody, sleep, UCUM } from '../search-fixtures.js';

const { app } = await buildTestApp(t);
const f = new Fixture(app);

const pat = (await f.add('pat', patientBody('Okafor'))).id as string;

// Pain scores (LOINC 72514-3, {score}) at these moments.
await f.add('old', painBody(pat, 1, '2015-06-01T08:00:00Z'));
await f.add('nov', painBody(pat, 2, '2025-11-05'));
await f.add('feb', painBody(pat, 5.4, '2026-02-20T10:00:00Z'));
await f.add('mar10', painBody(pat, 5.44, '2026-03-10T09:30:00Z'));
await f.add('mar24', painBody(pat, 5.5, '2026-03-24T14:00:00Z'));
await f.add('apr02', painBody(pat, 6, '2026-04-02T08:00:00Z'));
await f.add('may', painBody(pat, 9, '2026-05-15T08:00:00Z'));
// Ankle dorsiflexion range of motion, 40 degrees, no effective time recorded.
await f.add('rom', {
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: MEASURE, code: 'ankle-dorsiflexion-rom' }] },
  subject: { reference: `Patient/${pat}` },
  valueQuantity: { value: 40, unit: 'degrees', system: UCUM, code: 'deg' },
});
// Pain panels: at rest and on loading, in components of one Observation.
const component = (code: object, value: number) => ({ code, valueQuantity: { value, system: UCUM, code: '{score}' } });
const panel = (components: object[]) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: MEASURE, code: 'pain-panel' }] },
  subject: { reference: `Patient/${pat}` },
  component: components,
});
await f.add('panel-a', panel([component({ coding: [PAIN_CODE] }, 2), component({ coding: [{ system: MEASURE, code: 'pain-loading' }] }, 8)]));
await f.add('panel-b', panel([component({ coding: [PAIN_CODE] }, 7)]));

// Sessions (Procedure.performedPeriod).
await f.add('p1', sessionBody(pat, 'graston', '2026-03-10T09:00:00Z', '2026-03-10T09:45:00Z'));
await f.add('p2', sessionBody(pat, 'astym', '2026-03-31T23:30:00Z', '2026-04-01T00:15:00Z'));
await f.add('p3', sessionBody(pat, 'astym', '2026-05-05T10:00:00Z', '2026-05-05T10:40:00Z'));
await f.add('p4', sessionBody(pat, 'graston', '2026-06-01T10:00:00Z', undefined, { status: 'in-progress' }));

const obs = (query: string) => `/fhir/Observation?${query}`;

t.test('date: a partial date is the range it covers (eq means the value lies fully inside)', async (t) => {
  await f.expect(t, obs('date=2026-03-10'), ['mar10']);
  await f.expect(t, obs('date=2026-03'), ['mar10', 'mar24']);
  await f.expect(t, obs('date=eq2026-03'), ['mar10', 'mar24']);
  await f.expect(t, obs('date=2026'), ['feb', 'mar10', 'mar24', 'apr02', 'may']);
  await f.expect(t, obs('date=2025-11-05'), ['nov']);
});

t.test('date prefixes ne gt lt ge le sa eb against month and day ranges', async (t) => {
  await f.expect(t, obs('date=ne2026-03'), ['old', 'nov', 'feb', 'apr02', 'may']);
  await f.expect(t, obs('date=gt2026-03'), ['apr02', 'may']);
  await f.expect(t, obs('date=lt2026-03'), ['old', 'nov', 'feb']);
  await f.expect(t, obs('date=ge2026-03-10'), ['mar10', 'mar24', 'apr02', 'may']);
  await f.expect(t, obs('date=le2026-03-10'), ['old', 'nov', 'feb', 'mar10']);
  await f.expect(t, obs('date=sa2026-03-10'), ['mar24', 'apr02', 'may']);
  await f.expect(t, obs('date=eb2026-03-10'), ['old', 'nov', 'feb']);
});

t.test('date prefixes with a time: the search value is the second it names', async (t) => {
  await f.expect(t, obs(`date=${q('ge2026-03-10T10:00:00Z')}`), ['mar24', 'apr02', 'may']);
  await f.expect(t, obs(`date=${q('lt2026-03-10T09:30:00Z')}`), ['old', 'nov', 'feb']);
  await f.expect(t, obs(`date=${q('2026-03-10T09:30:00Z')}`), ['mar10']);
  await f.expect(t, obs(`date=${q('2026-03-10T10:30:00+01:00')}`), ['mar10']);
});

t.test('date ap: approximately the same (a date in the same day matches, one years away does not)', async (t) => {
  const bundle = await f.search(t, obs('date=ap2026-03-10'));
  const found = f.labels(bundle);
  t.ok(found.includes('mar10'), `ap2026-03-10 includes mar10 (got ${found.join(', ')})`);
  t.notOk(found.includes('old'), 'ap2026-03-10 excludes a value from 2015');
  t.notOk(found.includes('rom'), 'ap2026-03-10 excludes an Observation without a date');
});

t.test('date: comma is OR, a repeated parameter is AND', async (t) => {
  await f.expect(t, obs('date=2026-02,2026-04'), ['feb', 'apr02']);
  await f.expect(t, obs('date=ge2026-03-01&date=lt2026-04-01'), ['mar10', 'mar24']);
  await f.expect(t, obs('date=ge2026-03-01&date=lt2026-03-01'), []);
});

t.test('date on Period values (Procedure performedPeriod; a missing end means ongoing)', async (t) => {
  const proc = (query: string) => `/fhir/Procedure?${query}`;
  await f.expect(t, proc('date=2026-03'), ['p1']);
  await f.expect(t, proc('date=2026-03-31'), []);
  await f.expect(t, proc('date=2026'), ['p1', 'p2', 'p3']);
  await f.expect(t, proc('date=ne2026-03'), ['p2', 'p3', 'p4']);
  await f.expect(t, proc('date=ge2026-04-01'), ['p2', 'p3', 'p4']);
  await f.expect(t, proc('date=lt2026-04'), ['p1', 'p2']);
  await f.expect(t, proc(`date=${q('le2026-03-31T23:45:00Z')}`), ['p1', 'p2']);
  await f.expect(t, proc('date=sa2026-03-31'), ['p3', 'p4']);
  await f.expect(t, proc('date=eb2026-04-01'), ['p1']);
  await f.expect(t, proc('date=gt2026-12-31'), ['p4']);
});

t.test('_lastUpdated with prefixes compares meta.lastUpdated', async (t) => {
  const early = await f.add('c-early', { resourceType: 'Condition', subject: { reference: `Patient/${pat}` } });
  await sleep(25);
  const late = await f.add('c-late', { resourceType: 'Condition', subject: { reference: `Patient/${pat}` } });
  const stamp = (r: typeof late) => q(String(r.meta.lastUpdated));
  await f.expect(t, `/fhir/Condition?_lastUpdated=ge${stamp(late)}`, ['c-late']);
  await f.expect(t, `/fhir/Condition?_lastUpdated=lt${stamp(late)}`, ['c-early']);
  await f.expect(t, `/fhir/Condition?_lastUpdated=gt${stamp(early)}`, ['c-late']);
  await f.expect(t, `/fhir/Condition?_lastUpdated=le${stamp(early)}`, ['c-early']);
  await f.expect(t, `/fhir/Condition?_lastUpdated=${stamp(early)}`, ['c-early']);
  await f.expect(t, '/fhir/Condition?_lastUpdated=ge2000-01-01', ['c-early', 'c-late']);
  await f.expect(t, '/fhir/Condition?_lastUpdated=lt2000-01-01', []);
});

t.test('quantity value|system|code uses the implicit precision of the value (5.4 covers [5.35, 5.45))', async (t) => {
  await f.expect(t, obs(`value-quantity=${q('5.4|http://unitsofmeasure.org|{score}')}`), ['feb', 'mar10']);
  await f.expect(t, obs('value-quantity=5.4'), ['feb', 'mar10']);
  await f.expect(t, obs('value-quantity=5.5'), ['mar24']);
  await f.expect(t, obs(`value-quantity=${q('40|http://unitsofmeasure.org|deg')}`), ['rom']);
  await f.expect(t, obs(`value-quantity=${q('40|http://unitsofmeasure.org|{score}')}`), []);
});

t.test('quantity prefixes gt lt ge le ne, with and without system and unit', async (t) => {
  await f.expect(t, obs('value-quantity=gt5'), ['feb', 'mar10', 'mar24', 'apr02', 'may', 'rom']);
  await f.expect(t, obs(`value-quantity=${q('gt5||{score}')}`), ['feb', 'mar10', 'mar24', 'apr02', 'may']);
  await f.expect(t, obs(`value-quantity=${q('gt5|http://unitsofmeasure.org|deg')}`), ['rom']);
  await f.expect(t, obs('value-quantity=lt5.5'), ['old', 'nov', 'feb', 'mar10']);
  await f.expect(t, obs('value-quantity=ge6'), ['apr02', 'may', 'rom']);
  await f.expect(t, obs(`value-quantity=${q('le6||{score}')}`), ['old', 'nov', 'feb', 'mar10', 'mar24', 'apr02']);
  // ne is the negation of eq, whose range is the implicit precision: 9 covers [8.5, 9.5).
  await f.expect(t, obs(`value-quantity=${q('ne9||{score}')}`), ['old', 'nov', 'feb', 'mar10', 'mar24', 'apr02']);
  await f.expect(t, obs('value-quantity=6'), ['mar24', 'apr02']);
  await f.expect(t, obs(`value-quantity=${q('9||{score}')},${q('40||deg')}`), ['may', 'rom']);
});

t.test('composite code-value-quantity: code and value must belong to the same Observation', async (t) => {
  await f.expect(t, obs(`code-value-quantity=${q(`${LOINC}|72514-3$gt5`)}`), ['feb', 'mar10', 'mar24', 'apr02', 'may']);
  await f.expect(t, obs(`code-value-quantity=${q(`${LOINC}|72514-3$gt8`)}`), ['may']);
  await f.expect(t, obs(`code-value-quantity=${q(`${LOINC}|72514-3$40`)}`), []);
  await f.expect(t, obs(`code-value-quantity=${q(`${MEASURE}|ankle-dorsiflexion-rom$gt5`)}`), ['rom']);
});

t.test('composite component-code-value-quantity pairs code and value within one component', async (t) => {
  await f.expect(t, obs(`component-code-value-quantity=${q(`${LOINC}|72514-3$gt5`)}`), ['panel-b']);
  await f.expect(t, obs(`component-code-value-quantity=${q(`${MEASURE}|pain-loading$gt5`)}`), ['panel-a']);
  // Two separate parameters are ANDed over the resource, not the component: both panels.
  await f.expect(t, obs(`component-code=${q(`${LOINC}|72514-3`)}&component-value-quantity=gt5`), ['panel-a', 'panel-b']);
});
