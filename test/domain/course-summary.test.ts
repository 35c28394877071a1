/**
 * GET /fhir/Patient/{id}/$course-summary: a Parameters resource with one `course` per
 * technique + body site. The figures are checked against a small course computed by
 * hand: four Astym sessions on the left Achilles tendon (Achilles tendinopathy) and two
 * Graston sessions on the right elbow for the same patient.
 */
import t from 'tap';
import { EXERCISE_THERAPY, LATERALITY, SKIN, SNOMED, TECHNIQUE_SYSTEM } from '../../src/domain/codes.js';
import { buildTestApp, patient } from '../helper.js';
import { assertOutcome, create, type Json } from '../support.js';
import {
  ACHILLES_TENDON,
  body,
  doseExtension,
  ELBOW_REGION,
  LATERAL_EPICONDYLITIS,
  measurement,
  pain,
  session,
  show,
  sidedSite,
  skin,
} from './fixtures.js';

const { app } = await buildTestApp(t);
const pat = (await create(app, patient('Course'))).id as string;

/** One session at 09:00 on `day` lasting `minutes`, with its measurements and adjuncts. */
async function visit(
  subject: string,
  technique: 'astym' | 'graston',
  day: string,
  minutes: number,
  opts: { painBefore?: number; painAfter?: number; exercise?: boolean; skinCode?: Json; extra?: Json } = {},
): Promise<string> {
  const start = `${day}T09:00:00Z`;
  const end = new Date(Date.parse(start) + minutes * 60_000).toISOString().replace('.000Z', 'Z');
  const id = (await create(app, session(subject, technique, { performedPeriod: { start, end }, extension: [doseExtension(minutes)], ...opts.extra }))).id as string;
  if (opts.painBefore !== undefined) await create(app, pain(subject, id, opts.painBefore, 'before', { effectiveDateTime: start }));
  if (opts.painAfter !== undefined) await create(app, pain(subject, id, opts.painAfter, 'after', { effectiveDateTime: end }));
  if (opts.skinCode) await create(app, measurement(subject, id, 'skin-response', skin(opts.skinCode), { effectiveDateTime: end }));
  if (opts.exercise) {
    await create(app, {
      resourceType: 'Procedure',
      status: 'completed',
      code: { coding: [{ ...EXERCISE_THERAPY }], text: 'Eccentric calf raises' },
      subject: { reference: `Patient/${subject}` },
      partOf: [{ reference: `Procedure/${id}` }],
      performedDateTime: end,
    });
  }
  return id;
}

// The Astym course (left Achilles tendon), by hand:
//   dates 03-02, 03-04, 03-07, 03-09 → gaps 2, 3, 2 days → sorted 2, 2, 3 → median 2
//   Astym is every other day or every two days → cadence fits
//   4 × 25 minutes = 100 minutes
//   pain before 7, 6, 5, 3 → first 7, last 3, change 3 − 7 = −4
//   pain after  5, 5, 4, 2 → per session (after − before) −2, −1, −1, −1 → sum −5 → mean −5 / 4 = −1.25
//   exercise on sessions 1, 2 and 4 → 3 sessions with exercise → paired with exercise
//   skin: petechiae on sessions 1 and 3 (2), erythema on session 2 (1)
await visit(pat, 'astym', '2026-03-02', 25, { painBefore: 7, painAfter: 5, exercise: true, skinCode: SKIN.petechiae });
await visit(pat, 'astym', '2026-03-04', 25, { painBefore: 6, painAfter: 5, exercise: true, skinCode: SKIN.erythema });
await visit(pat, 'astym', '2026-03-07', 25, { painBefore: 5, painAfter: 4, skinCode: SKIN.petechiae });
await visit(pat, 'astym', '2026-03-09', 25, { painBefore: 3, painAfter: 2, exercise: true });
// The Graston course (right elbow, lateral epicondylitis): 03-03 and 03-10, no exercise.
const elbow = { bodySite: [sidedSite(ELBOW_REGION, LATERALITY.right)], reasonCode: [{ coding: [LATERAL_EPICONDYLITIS] }] };
await visit(pat, 'graston', '2026-03-03', 2, { extra: elbow });
await visit(pat, 'graston', '2026-03-10', 2, { extra: elbow });
// Another patient's session must not leak into this summary.
const stranger = (await create(app, patient('Stranger'))).id as string;
await visit(stranger, 'astym', '2026-03-05', 25, { painBefore: 9, painAfter: 1 });

type Part = Json & { name: string };
const parts = (p: Json): Part[] => (p.part ?? []) as Part[];
const part = (p: Json, name: string): Part | undefined => parts(p).find((x) => x.name === name);
const courses = (params: Json): Json[] => ((params.parameter ?? []) as Json[]).filter((p) => p.name === 'course');
const techniqueOf = (c: Json) => part(c, 'technique')?.valueCoding?.code as string | undefined;
const num = (c: Json, name: string): number | undefined => {
  const p = part(c, name);
  const v = p?.valueDecimal ?? p?.valueInteger;
  return v === undefined ? undefined : Number(v);
};
/** skinResponse parts as { code: count }. */
const skinCounts = (c: Json): Record<string, number> =>
  Object.fromEntries(parts(c).filter((p) => p.name === 'skinResponse').map((p) => [String(part(p, 'code')?.valueCoding?.code), Number(part(p, 'count')?.valueInteger)]));

async function summary(subject: string, query = ''): Promise<{ status: number; params: Json }> {
  const res = await app.inject({ url: `/fhir/Patient/${subject}/$course-summary${query}` });
  return { status: res.statusCode, params: body(res) };
}

const whole = await summary(pat);
const astym = courses(whole.params).find((c) => techniqueOf(c) === 'astym') ?? {};
const graston = courses(whole.params).find((c) => techniqueOf(c) === 'graston') ?? {};

t.test('GET $course-summary answers a Parameters resource with one course per technique + body site', async (t) => {
  t.equal(whole.status, 200, JSON.stringify(whole.params).slice(0, 300));
  t.equal(whole.params.resourceType, 'Parameters');
  t.equal(courses(whole.params).length, 2, 'Astym on the Achilles tendon and Graston on the elbow');
  t.same(courses(whole.params).map(techniqueOf).sort(), ['astym', 'graston']);
});

t.test('a course names its technique and body site as Codings', async (t) => {
  t.equal(part(astym, 'technique')?.valueCoding?.system, TECHNIQUE_SYSTEM);
  t.equal(part(astym, 'technique')?.valueCoding?.code, 'astym');
  t.equal(part(astym, 'bodySite')?.valueCoding?.system, SNOMED);
  t.equal(part(astym, 'bodySite')?.valueCoding?.code, ACHILLES_TENDON.code, 'Achilles tendon 61352006');
  t.equal(part(graston, 'bodySite')?.valueCoding?.code, ELBOW_REGION.code, 'elbow region 127949000');
});

t.test('sessions, first and last session: 4, 2026-03-02, 2026-03-09', async (t) => {
  t.equal(part(astym, 'sessions')?.valueInteger, 4, 'sessions (valueInteger)');
  t.match(String(part(astym, 'firstSession')?.valueDateTime), /^2026-03-02/, 'firstSession');
  t.match(String(part(astym, 'lastSession')?.valueDateTime), /^2026-03-09/, 'lastSession');
  t.equal(part(graston, 'sessions')?.valueInteger, 2, 'the Graston course has 2 sessions');
});

t.test('cadence: gaps 2, 3, 2 days → median 2; fits Astym (every other day or every two days)', async (t) => {
  t.equal(part(astym, 'medianDaysBetweenSessions')?.valueDecimal, 2, 'medianDaysBetweenSessions (valueDecimal)');
  t.equal(part(astym, 'cadenceFits')?.valueBoolean, true, 'cadenceFits (valueBoolean)');
  t.equal(num(graston, 'medianDaysBetweenSessions'), 7, 'Graston: one gap of 7 days');
});

t.test('totalMinutes: 4 × 25 = 100', async (t) => {
  t.equal(part(astym, 'totalMinutes')?.valueDecimal, 100, 'totalMinutes (valueDecimal)');
});

t.test('pain before treatment: first 7, last 3, change 3 − 7 = −4', async (t) => {
  t.equal(part(astym, 'painFirstBefore')?.valueDecimal, 7, 'painFirstBefore');
  t.equal(part(astym, 'painLastBefore')?.valueDecimal, 3, 'painLastBefore');
  t.equal(part(astym, 'painChange')?.valueDecimal, -4, 'painChange = last − first');
});

t.test('mean in-session pain change: (−2 −1 −1 −1) / 4 = −1.25', async (t) => {
  t.equal(part(astym, 'meanSessionPainChange')?.valueDecimal, -1.25, 'meanSessionPainChange (after − before)');
});

t.test('exercise: 3 of 4 Astym sessions have an exercise child Procedure → paired; Graston none → not paired', async (t) => {
  t.equal(part(astym, 'sessionsWithExercise')?.valueInteger, 3, 'sessionsWithExercise');
  t.equal(part(astym, 'pairedWithExercise')?.valueBoolean, true, 'pairedWithExercise');
  t.equal(part(graston, 'sessionsWithExercise')?.valueInteger, 0, 'Graston sessionsWithExercise');
  t.equal(part(graston, 'pairedWithExercise')?.valueBoolean, false, 'Graston pairedWithExercise');
});

t.test('skin responses: petechiae 271813007 twice, erythema 247441003 once', async (t) => {
  t.same(skinCounts(astym), { [SKIN.petechiae.code]: 2, [SKIN.erythema.code]: 1 });
  const codings = parts(astym).filter((p) => p.name === 'skinResponse').map((p) => part(p, 'code')?.valueCoding?.system);
  t.same([...new Set(codings)], [SNOMED], 'skin response codes are SNOMED CT Codings');
  t.same(skinCounts(graston), {}, 'none recorded for Graston');
});

t.test('technique=astym filters to the Astym course', async (t) => {
  const { status, params } = await summary(pat, '?technique=astym');
  t.equal(status, 200);
  t.same(courses(params).map(techniqueOf), ['astym']);
  t.equal(num(courses(params)[0] ?? {}, 'sessions'), 4, 'with all its sessions');
  const token = await summary(pat, `?technique=${encodeURIComponent(`${TECHNIQUE_SYSTEM}|graston`)}`);
  t.same(courses(token.params).map(techniqueOf), ['graston'], 'technique=<system>|graston (token form)');
  const none = await summary(pat, '?technique=astr');
  t.equal(none.status, 200);
  t.same(courses(none.params), [], 'technique=astr: no course');
});

t.test('body-site filters by the SNOMED site (code or system|code)', async (t) => {
  const byCode = await summary(pat, `?body-site=${ACHILLES_TENDON.code}`);
  t.equal(byCode.status, 200);
  t.same(courses(byCode.params).map(techniqueOf), ['astym'], 'body-site=61352006');
  const byToken = await summary(pat, `?body-site=${encodeURIComponent(`${SNOMED}|${ELBOW_REGION.code}`)}`);
  t.same(courses(byToken.params).map(techniqueOf), ['graston'], 'body-site=http://snomed.info/sct|127949000');
});

t.test('start and end limit the sessions counted', async (t) => {
  // From 03-05: Astym 03-07 (before 5) and 03-09 (before 3) → 2 sessions, change 3 − 5 = −2; Graston 03-10 only.
  const from = await summary(pat, '?start=2026-03-05');
  t.equal(from.status, 200);
  const a = courses(from.params).find((c) => techniqueOf(c) === 'astym') ?? {};
  t.equal(num(a, 'sessions'), 2, 'Astym from 03-05: 2 sessions');
  t.equal(num(a, 'painFirstBefore'), 5, 'first pain before in the window: 5');
  t.equal(num(a, 'painChange'), -2, 'change 3 − 5 = −2');
  t.equal(num(a, 'totalMinutes'), 50, '2 × 25 minutes');
  t.equal(num(courses(from.params).find((c) => techniqueOf(c) === 'graston') ?? {}, 'sessions'), 1, 'Graston from 03-05: 1 session');
  // Up to 03-05: Astym 03-02 and 03-04 → gap 2; Graston 03-03.
  const to = await summary(pat, '?end=2026-03-05');
  const b = courses(to.params).find((c) => techniqueOf(c) === 'astym') ?? {};
  t.equal(num(b, 'sessions'), 2, 'Astym up to 03-05: 2 sessions');
  t.match(String(part(b, 'lastSession')?.valueDateTime), /^2026-03-04/, 'last session 03-04');
  const window = await summary(pat, '?start=2026-03-04&end=2026-03-07&technique=astym');
  t.equal(num(courses(window.params)[0] ?? {}, 'sessions'), 2, '03-04 to 03-07 inclusive: 2 Astym sessions');
});

t.test('weekly Astym does not fit its cadence; a course without exercise is not paired', async (t) => {
  const weekly = (await create(app, patient('Weekly'))).id as string;
  // 03-02, 03-09, 03-16 → gaps 7, 7 → median 7: not every other day or every two days.
  for (const day of ['2026-03-02', '2026-03-09', '2026-03-16']) await visit(weekly, 'astym', day, 20);
  const c = courses((await summary(weekly)).params)[0] ?? {};
  t.equal(num(c, 'medianDaysBetweenSessions'), 7);
  t.equal(part(c, 'cadenceFits')?.valueBoolean, false, 'cadenceFits false');
  t.equal(part(c, 'pairedWithExercise')?.valueBoolean, false, 'pairedWithExercise false');
  t.equal(num(c, 'totalMinutes'), 60, '3 × 20 minutes');
});

t.test('sessions that did not happen (not-done, entered-in-error) are not counted', async (t) => {
  const p = (await create(app, patient('NotDone'))).id as string;
  await visit(p, 'astym', '2026-03-02', 25);
  await visit(p, 'astym', '2026-03-04', 25);
  await create(app, session(p, 'astym', { status: 'not-done', performedPeriod: undefined, statusReason: { text: 'patient cancelled' } }));
  await create(app, session(p, 'astym', { status: 'entered-in-error', performedPeriod: { start: '2026-03-03T09:00:00Z', end: '2026-03-03T09:25:00Z' } }));
  const c = courses((await summary(p)).params)[0] ?? {};
  t.equal(num(c, 'sessions'), 2, 'two completed sessions');
  t.equal(num(c, 'medianDaysBetweenSessions'), 2, 'gap 03-02 → 03-04 = 2 days');
  t.equal(num(c, 'totalMinutes'), 50);
  const gone = await visit(p, 'astym', '2026-03-06', 25, { painBefore: 8, painAfter: 8 });
  t.equal((await app.inject({ method: 'DELETE', url: `/fhir/Procedure/${gone}` })).statusCode < 300, true, 'a third session is deleted');
  const after = courses((await summary(p)).params)[0] ?? {};
  t.equal(num(after, 'sessions'), 2, 'a deleted session is not counted');
  t.equal(num(after, 'painLastBefore'), undefined, 'nor its pain scores (the two remaining sessions have none)');
});

t.test('a patient without sessions has no course; another patient is never mixed in', async (t) => {
  const empty = (await create(app, patient('Empty'))).id as string;
  const res = await summary(empty);
  t.equal(res.status, 200);
  t.equal(res.params.resourceType, 'Parameters');
  t.same(courses(res.params), [], 'no course');
  t.equal(num(astym, 'painFirstBefore'), 7, "the stranger's pain 9 is not this patient's first pain");
});

t.test('unknown patient → 404 OperationOutcome', async (t) => {
  const res = await app.inject({ url: '/fhir/Patient/no-such-patient/$course-summary' });
  assertOutcome(t, res, 404, ['not-found', 'processing'], 'unknown patient');
});

t.test('a malformed start date is a 400 OperationOutcome', async (t) => {
  const res = await app.inject({ url: `/fhir/Patient/${pat}/$course-summary?start=last-tuesday` });
  t.equal(res.statusCode, 400, show(res));
  t.equal(body(res).resourceType, 'OperationOutcome');
});
