/**
 * Plain R4 as an EHR sends it (issue 8, point 3): no Fascia extension, no profile claim.
 * An Observation partOf a Procedure that is not a session is a plain Observation; partOf a
 * session, it is a measurement whose before/after timing is inferred from effective[x]
 * against the session's performedPeriod, in `measurement-timing` search and in
 * $course-summary, whichever arrives first. Impossible values are still refused (422);
 * a pain score whose timing cannot be inferred is stored with a warning.
 */
import { existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import { LOINC, MANUAL_THERAPY_CPT, TECHNIQUE_SYSTEM, TIMING_EXTENSION, UCUM } from '../../src/domain/codes.js';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';
import { assertOutcome, create, entries, type Json } from '../support.js';
import { body, exprs, issues, issuesOf, post, postResource, PREFER_OUTCOME, show } from './fixtures.js';

const { app } = await buildTestApp(t);
const pat = (await create(app, patient('PlainR4'))).id as string;

/** A session as an EHR maps it: technique and CPT codings, a period, no body site, no indication, no extension. */
const ehrSession = (subject: string, start: string, end: string, extra: Json = {}): Json => ({
  resourceType: 'Procedure',
  status: 'completed',
  code: { coding: [{ system: TECHNIQUE_SYSTEM, code: 'graston' }, { ...MANUAL_THERAPY_CPT }], text: 'Graston technique' },
  subject: { reference: `Patient/${subject}` },
  performedPeriod: { start, end },
  ...extra,
});

/** An EHR's pain score: LOINC 72514-3 in UCUM {score}, category survey, no timing extension. */
const ehrPain = (subject: string, procedure: string, value: number, effectiveDateTime: string, extra: Json = {}): Json => ({
  resourceType: 'Observation',
  status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'survey', display: 'Survey' }] }],
  code: { coding: [{ system: LOINC, code: '72514-3', display: 'Pain severity - 0-10 verbal numeric rating [Score] - Reported' }], text: 'Pain score' },
  subject: { reference: `Patient/${subject}` },
  partOf: [{ reference: `Procedure/${procedure}` }],
  effectiveDateTime,
  valueQuantity: { value, unit: '{score}', system: UCUM, code: '{score}' },
  ...extra,
});

const createWithOutcome = async (resource: Json) => {
  const res = await postResource(app, resource, PREFER_OUTCOME);
  return { status: res.statusCode, outcome: body(res), res };
};
const idOf = (r: { res: { headers: Json } }) => String(r.res.headers.location).match(/(?:Observation|Procedure)\/([^/]+)/)?.[1] as string;
const search = async (query: string) => entries(body(await app.inject({ url: `/fhir/Observation?${query}` }))).map((e: Json) => e.resource.id as string);

type Part = Json & { name: string };
const parts = (p: Json): Part[] => (p.part ?? []) as Part[];
const part = (p: Json, name: string) => parts(p).find((x) => x.name === name);
async function course(subject: string): Promise<Json> {
  const res = await app.inject({ url: `/fhir/Patient/${subject}/$course-summary` });
  return ((body(res).parameter ?? []) as Json[]).find((p) => p.name === 'course') ?? {};
}
const perSession = (c: Json) =>
  parts(c)
    .filter((p) => p.name === 'session')
    .map((s) => ({ before: part(s, 'painBefore')?.valueDecimal, after: part(s, 'painAfter')?.valueDecimal }));

// Two EHR sessions with a pain score before and after each, none with Fascia's extension.
const SESSION_1 = ['2026-04-06T09:00:00Z', '2026-04-06T09:30:00Z'] as const;
const SESSION_2 = ['2026-04-08T09:00:00Z', '2026-04-08T09:30:00Z'] as const;
const s1 = await createWithOutcome(ehrSession(pat, ...SESSION_1));
const s2 = (await create(app, ehrSession(pat, ...SESSION_2))).id as string;

const sess1 = idOf(s1);
const before1 = await createWithOutcome(ehrPain(pat, sess1, 7, '2026-04-06T08:50:00Z'));
const after1 = await createWithOutcome(ehrPain(pat, sess1, 4, '2026-04-06T09:45:00Z'));
const before2 = (await create(app, ehrPain(pat, s2, 5, '2026-04-08T08:55:00+00:00'))).id as string;
const after2 = (await create(app, ehrPain(pat, s2, 3, '2026-04-08T10:00:00Z'))).id as string;

// HL7's own physical-therapy example (a range-of-motion assessment): an ordinary Procedure, not a session.
const CORPUS = new URL('../../../shared/fhir-corpora/r4-examples/Procedure/Procedure-physical-therapy.json', import.meta.url);
t.test('partOf an ordinary Procedure (HL7 example physical-therapy): a plain Observation, no domain rules', { skip: !existsSync(CORPUS) && 'shared corpus absent' }, async (t) => {
  const { id: _id, basedOn: _basedOn, ...hl7 } = JSON.parse(readFileSync(CORPUS, 'utf8')) as Json;
  const procedure = await create(app, { ...hl7, subject: { reference: `Patient/${pat}` } });
  const plain = await createWithOutcome(ehrPain(pat, procedure.id, 6, '2016-09-27'));
  t.equal(plain.status, 201, `pain partOf an ordinary Procedure: 201 (${show(plain.res)})`);
  t.same(issuesOf(plain.outcome, 'warning'), [], 'no warning: it is not a session measurement');
  const odd = await createWithOutcome(ehrPain(pat, procedure.id, 6, '2016-09-27', { valueQuantity: { value: 6, unit: 'mm', system: UCUM, code: 'mm' } }));
  t.equal(odd.status, 201, 'not a session measurement: the measurement rules do not apply');
  t.same(issuesOf(odd.outcome, 'warning'), []);
  t.notOk((await search('measurement-timing=before,after')).includes(idOf(plain)), 'no timing indexed');
});

t.test('an EHR session without body site or indication is stored, with warnings', async (t) => {
  t.equal(s1.status, 201, show(s1.res));
  t.same(issuesOf(s1.outcome, 'error'), []);
  const warned = exprs(issuesOf(s1.outcome, 'warning'));
  t.ok(warned.includes('Procedure.bodySite') && warned.includes('Procedure.reasonCode'), `warnings at bodySite and reasonCode (got ${JSON.stringify(warned)})`);
});

t.test('partOf a session without the timing extension: accepted, no warning', async (t) => {
  for (const [label, r] of [['before', before1], ['after', after1]] as const) {
    t.equal(r.status, 201, `${label}: ${show(r.res)}`);
    t.same(issuesOf(r.outcome, 'warning'), [], `${label}: no warning, the timing was inferred`);
  }
});

t.test('the inferred timing answers Observation?measurement-timing=', async (t) => {
  const before = await search(`measurement-timing=before&subject=Patient/${pat}`);
  const after = await search(`measurement-timing=after&subject=Patient/${pat}`);
  t.same(before.sort(), [idOf(before1), before2].sort(), 'effective before the start → before');
  t.same(after.sort(), [idOf(after1), after2].sort(), 'effective after the end → after');
});

t.test('the inferred timing feeds $course-summary', async (t) => {
  const c = await course(pat);
  t.equal(part(c, 'painFirstBefore')?.valueDecimal, 7, 'painFirstBefore 7');
  t.equal(part(c, 'painLastBefore')?.valueDecimal, 5, 'painLastBefore 5');
  t.same(perSession(c), [{ before: 7, after: 4 }, { before: 5, after: 3 }], 'per session before/after');
  t.equal(part(c, 'meanSessionPainChange')?.valueDecimal, -2.5, '(−3 −2) / 2');
});

t.test('impossible values partOf a session are still refused (422)', async (t) => {
  const high = await postResource(app, ehrPain(pat, sess1, 11, '2026-04-06T08:50:00Z'));
  const outcome = assertOutcome(t, high, 422, 'business-rule', 'pain 11');
  t.ok(exprs(issuesOf(outcome, 'error')).includes('Observation.valueQuantity.value'), 'at Observation.valueQuantity.value');
  const asInteger = { ...ehrPain(pat, sess1, 0, '2026-04-06T08:50:00Z'), valueQuantity: undefined, valueInteger: -2 };
  assertOutcome(t, await postResource(app, asInteger), 422, 'business-rule', 'pain −2 as valueInteger');
  const backwards = ehrSession(pat, '2026-04-10T09:30:00Z', '2026-04-10T09:00:00Z');
  const res = await postResource(app, backwards);
  t.ok(exprs(issuesOf(assertOutcome(t, res, 422, 'business-rule', 'period ending before it starts'), 'error')).includes('Procedure.performedPeriod'));
});

t.test('a pain score whose timing cannot be inferred is stored with a warning', async (t) => {
  const during = await createWithOutcome(ehrPain(pat, sess1, 6, '2026-04-06T09:10:00Z'));
  t.equal(during.status, 201, show(during.res));
  const warned = issuesOf(during.outcome, 'warning');
  t.ok(exprs(warned).includes('Observation.effective'), `a warning at Observation.effective (got ${JSON.stringify(issues(during.outcome))})`);
  const sameDay = await createWithOutcome(ehrPain(pat, sess1, 6, '2026-04-06'));
  t.ok(exprs(issuesOf(sameDay.outcome, 'warning')).includes('Observation.effective'), 'a date covering the session: cannot tell');
  const none = await createWithOutcome(ehrPain(pat, sess1, 6, '2026-04-06T08:50:00Z', { effectiveDateTime: undefined }));
  t.ok(exprs(issuesOf(none.outcome, 'warning')).includes('Observation.effective'), 'no effective[x]: cannot tell');
  const timed = await search(`measurement-timing=before,after&subject=Patient/${pat}`);
  t.notOk([idOf(during), idOf(sameDay), idOf(none)].some((id) => timed.includes(id)), 'none of them has a timing');
  t.same(perSession(await course(pat))[0], { before: 7, after: 4 }, 'nor a place in the course summary');
});

t.test('unusual but possible: pain in another unit is a warning, not an error', async (t) => {
  const r = await createWithOutcome(ehrPain(pat, sess1, 6, '2026-04-06T08:50:00Z', { valueQuantity: { value: 6, unit: 'score' } }));
  t.equal(r.status, 201, show(r.res));
  t.ok(exprs(issuesOf(r.outcome, 'warning')).includes('Observation.valueQuantity'), 'warning at Observation.valueQuantity');
});

t.test('the measurement before its session: plain until the session arrives, then timed', async (t) => {
  const p = (await create(app, patient('OutOfOrder'))).id as string;
  const sessionId = `ehr-${crypto.randomUUID()}`;
  const early = await createWithOutcome(ehrPain(p, sessionId, 8, '2026-05-04T08:45:00Z'));
  t.equal(early.status, 201, show(early.res));
  t.same(issuesOf(early.outcome, 'warning'), [], 'no warning');
  t.ok(issuesOf(early.outcome, 'information').some((i) => exprs([i]).includes('Observation.partOf')), 'an informational issue says the Procedure is not stored yet');
  const late = (await create(app, ehrPain(p, sessionId, 6, '2026-05-04T10:00:00Z'))).id as string;
  t.same(await search(`measurement-timing=before,after&subject=Patient/${p}`), [], 'no timing yet');

  const put = await app.inject({ method: 'PUT', url: `/fhir/Procedure/${sessionId}`, headers: fhirHeaders(), payload: { ...ehrSession(p, '2026-05-04T09:00:00Z', '2026-05-04T09:30:00Z'), id: sessionId } });
  t.equal(put.statusCode, 201, `the session arrives: ${show(put)}`);
  t.same(await search(`measurement-timing=before&subject=Patient/${p}`), [idOf(early)], 'now before');
  t.same(await search(`measurement-timing=after&subject=Patient/${p}`), [late], 'now after');
  t.same(perSession(await course(p)), [{ before: 8, after: 6 }], 'and in the course summary');

  // The session moves to the afternoon: both measurements are now before it.
  const moved = { ...ehrSession(p, '2026-05-04T14:00:00Z', '2026-05-04T14:30:00Z'), id: sessionId };
  t.equal((await app.inject({ method: 'PUT', url: `/fhir/Procedure/${sessionId}`, headers: fhirHeaders(), payload: moved })).statusCode, 200);
  t.same((await search(`measurement-timing=before&subject=Patient/${p}`)).sort(), [idOf(early), late].sort(), 're-inferred when the session changes');
  t.same(await search(`measurement-timing=after&subject=Patient/${p}`), []);

  // Recoded as an ordinary Procedure, it is no session: its Observations lose the inferred timing.
  const ordinary = { ...moved, code: { coding: [{ ...MANUAL_THERAPY_CPT }] } };
  t.equal((await app.inject({ method: 'PUT', url: `/fhir/Procedure/${sessionId}`, headers: fhirHeaders(), payload: ordinary })).statusCode, 200);
  t.same(await search(`measurement-timing=before,after&subject=Patient/${p}`), [], 'no timing once it is not a session');
});

t.test('an impossible value stored before its session is not refused later: it gets no timing and the session warns', async (t) => {
  const p = (await create(app, patient('EarlyBad'))).id as string;
  const sessionId = `ehr-${crypto.randomUUID()}`;
  const bad = (await create(app, ehrPain(p, sessionId, 12, '2026-05-04T08:45:00Z'))).id as string;
  const put = await app.inject({
    method: 'PUT',
    url: `/fhir/Procedure/${sessionId}`,
    headers: fhirHeaders(PREFER_OUTCOME),
    payload: { ...ehrSession(p, '2026-05-04T09:00:00Z', '2026-05-04T09:30:00Z'), id: sessionId },
  });
  t.equal(put.statusCode, 201, show(put));
  t.ok(issuesOf(body(put), 'warning').some((i) => String(i.details?.text).includes(`Observation/${bad}`)), 'the session write names the Observation');
  t.same(await search(`measurement-timing=before&subject=Patient/${p}`), [], 'no timing');
  t.same(perSession(await course(p)), [{ before: undefined, after: undefined }], 'not in the course summary');
});

t.test('in one transaction Bundle: the session and its plain measurements, in any entry order', async (t) => {
  const p = (await create(app, patient('TxPlain'))).id as string;
  const urn = `urn:uuid:${crypto.randomUUID()}`;
  const entry = (resource: Json, fullUrl = `urn:uuid:${crypto.randomUUID()}`) => ({ fullUrl, resource, request: { method: 'POST', url: String(resource.resourceType) } });
  const painIn = (value: number, at: string) => ({ ...ehrPain(p, 'x', value, at), partOf: [{ reference: urn }] });
  const bundle = (value: number) => ({
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [entry(painIn(value, '2026-06-01T08:50:00Z')), entry(painIn(2, '2026-06-01T09:40:00Z')), entry(ehrSession(p, '2026-06-01T09:00:00Z', '2026-06-01T09:30:00Z'), urn)],
  });
  const bad = await post(app, '/fhir', bundle(15));
  const outcome = assertOutcome(t, bad, 422, 'business-rule', 'pain 15 in a transaction');
  t.ok(exprs(issuesOf(outcome, 'error')).some((e) => e.startsWith('Bundle.entry[0]')), `names entry 0 (got ${JSON.stringify(exprs(issues(outcome)))})`);
  t.equal(entries(body(await app.inject({ url: `/fhir/Procedure?subject=Patient/${p}` }))).length, 0, 'nothing written');
  const good = await post(app, '/fhir', bundle(5));
  t.equal(good.statusCode, 200, show(good));
  t.same(perSession(await course(p)), [{ before: 5, after: 2 }], 'timing inferred within the transaction');
});

t.test('the measurement-timing extension, when given, wins over inference', async (t) => {
  const p = (await create(app, patient('Given'))).id as string;
  const s = (await create(app, ehrSession(p, '2026-07-01T09:00:00Z', '2026-07-01T09:30:00Z'))).id as string;
  const given = (await create(app, ehrPain(p, s, 4, '2026-07-01T09:10:00Z', { extension: [{ url: TIMING_EXTENSION, valueCode: 'after' }] }))).id as string;
  t.same(await search(`measurement-timing=after&subject=Patient/${p}`), [given]);
});

t.test('a session and its measurement written at the same moment: the timing is still inferred', async (t) => {
  const p = (await create(app, patient('Concurrent'))).id as string;
  const ids = Array.from({ length: 12 }, () => `ehr-${crypto.randomUUID()}`);
  const day = (i: number) => `2026-08-${String(i + 1).padStart(2, '0')}`;
  const writes = ids.flatMap((id, i) => [
    app.inject({ method: 'PUT', url: `/fhir/Procedure/${id}`, headers: fhirHeaders(), payload: { ...ehrSession(p, `${day(i)}T09:00:00Z`, `${day(i)}T09:30:00Z`), id } }),
    postResource(app, ehrPain(p, id, 5, `${day(i)}T08:50:00Z`)),
  ]);
  const statuses = (await Promise.all(writes)).map((r) => r.statusCode);
  t.same(statuses, statuses.map(() => 201), 'all written');
  t.equal((await search(`measurement-timing=before&subject=Patient/${p}&_count=100`)).length, ids.length, 'every measurement has its timing');
});

t.test('the served profiles say which rules are errors and which warnings', async (t) => {
  for (const id of ['soft-tissue-session', 'session-measurement']) {
    const sd = body(await app.inject({ url: `/fhir/StructureDefinition/${id}` }));
    t.equal(sd.resourceType, 'StructureDefinition', id);
    t.match(String(sd.description), /Errors \(422\)[\s\S]*Warnings/, `${id}: errors and warnings, and why`);
  }
});
